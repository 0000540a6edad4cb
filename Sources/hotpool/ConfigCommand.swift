import ArgumentParser
import HotPool
import HotPoolConfigurationFile

/// `hotpool config`: configuration files.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Work with configuration files.", subcommands: [Check.self])

    /// `hotpool config check FILE`.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a configuration file and print the configuration it gives.",
            discussion: """
                The file is TOML. Each key is a HotPoolConfiguration field; keys left out keep their defaults. \
                Durations are strings with a unit (ns, us, ms, s, m, h): "250ms", "30s". `profile` takes a preset \
                name (\(PoolOptions.presetList)); `proxies` takes URLs (http://, https://, socks5://, with \
                user:password@ if the proxy asks). A [blockSignals] or [retryPolicy] table turns that policy on.

                Environment variables override the file: HOTPOOL_ and the key in upper snake case, with a TOML \
                value or a bare word (HOTPOOL_MAX_CONNECTIONS=50, HOTPOOL_CONNECT_TIMEOUT=5s).

                On success, prints the effective configuration as a file (proxies without their credentials) \
                and exits 0; otherwise prints FILE:LINE: KEY: what is wrong, and exits 78.

                The keys, with their environment variables:
                \(HotPoolConfiguration.fileKeys.map { "  \($0.key)  (\($0.environmentVariable))" }.joined(separator: "\n"))
                """)

        @Argument(help: ArgumentHelp("The TOML file to check.", valueName: "file"))
        var file: String

        func run() throws {
            do {
                let configuration = try HotPoolConfiguration(file: file)
                print("# \(file): valid; the configuration it gives, with the environment's HOTPOOL_ variables over it")
                print(configuration.fileText, terminator: "")
            } catch {
                throw badConfiguration("\(error)")
            }
        }
    }
}
