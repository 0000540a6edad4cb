import ArgumentParser
import Foundation
import HotPool
import HotPoolConfigurationFile

/// `hotpool`: the command line.
@main
struct HotPoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotpool",
        abstract: "A pool of warm, browser-shaped TLS connections: fetch through it, see its fingerprint, check its configuration.",
        discussion: """
            Exit status: 0 success; 1 requests failed or bodies went unwritten (fetch), a run did not balance \
            (demo), or the embedded origin did not start; 64 bad usage (an unknown flag, a bad flag value, a bad \
            URL); 78 a bad configuration (file, environment, --proxy); 130 interrupted.
            """,
        subcommands: [Fetch.self, Fingerprint.self, ConfigCommand.self, Demo.self])
}

/// Exit statuses beyond success and failure (sysexits.h's where there is one).
enum ExitStatus {
    /// A bad configuration file, environment variable or flag value (EX_CONFIG).
    static let badConfiguration = ExitCode(78)
    /// Interrupted by Ctrl-C: 128 + SIGINT, as shells report it.
    static let interrupted = ExitCode(128 + SIGINT)
}

/// Writes `line` to standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Reports a bad configuration on standard error, giving the status to end with.
func badConfiguration(_ problem: String) -> ExitCode {
    printError("hotpool: \(problem)")
    return ExitStatus.badConfiguration
}

/// `value` as one line of JSON, snake_case keys, sorted.
func jsonText(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
}

/// The options that shape the pool, shared by the commands that make one.
struct PoolOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A TOML configuration file (see `hotpool config check --help`).", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("The browser preset connections present: \(presetList).", valueName: "name"))
    var profile: String?

    @Flag(name: .customLong("http1"), help: "Speak HTTP/1.1 only: no h2 in the ClientHello's ALPN.")
    var http1 = false

    static let presetList = FingerprintProfile.presets.map(\.name).joined(separator: ", ")

    func validate() throws {
        if let profile, FingerprintProfile(presetName: profile) == nil {
            throw ValidationError("--profile \(profile): not a preset; the presets are \(Self.presetList)")
        }
    }

    /// The configuration: the file's (or the defaults), the environment's `HOTPOOL_…` over it,
    /// these flags over both. A bad file or variable is reported and ends the command.
    func configuration() throws -> HotPoolConfiguration {
        var configuration: HotPoolConfiguration
        do {
            configuration = try config.map { try HotPoolConfiguration(file: $0) }
                ?? HotPoolConfiguration(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw badConfiguration("\(error)")
        }
        if let profile {
            configuration.profile = FingerprintProfile(presetName: profile)!
            configuration.rotatingProfiles = []  // else they, not the profile, would be presented
        }
        if http1 { configuration.httpVersions = [.http1_1] }
        return configuration
    }
}
