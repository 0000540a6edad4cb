import Foundation
import HotPoolCore
import Logging
import TOMLKit

extension HotPoolConfiguration {
    /// The configuration a TOML file gives, over the defaults, with `HOTPOOL_…` environment
    /// variables over the file; validated as `HotConnPool.init` validates it.
    ///
    /// Each key is a field's name (`maxConnections = 50`); `blockSignals` and `retryPolicy` are
    /// tables (`[blockSignals]`, whose presence turns the policy on). Durations are strings with a
    /// unit (`"250ms"`, `"30s"`, `"5m"`; ns, us, ms, s, m, h), profiles preset names (`"chrome"`),
    /// proxies URLs. `HotPoolConfiguration.fileKeys` lists the keys. A custom `FingerprintSpec`
    /// and the logger's handler are set in code; the file sets `logLevel`.
    ///
    /// An environment variable `HOTPOOL_` + the key in upper snake case (`HOTPOOL_MAX_CONNECTIONS`,
    /// `HOTPOOL_BLOCK_SIGNALS_THRESHOLD`) overrides the file: its value is a TOML value, and a bare
    /// word is taken as a string (`HOTPOOL_CONNECT_TIMEOUT=5s`).
    ///
    /// Throws `ConfigurationFileError` naming the file (or variable), the line and the key: an
    /// unreadable file, bad TOML, an unknown key, a value of the wrong type, or one the pool
    /// refuses (with its allowed range).
    public init(file path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationFileError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationFileError(source: path, line: nil, key: nil, message: "cannot read the file (\(error.localizedDescription))")
        }
        try self.init(text: text, source: path, environment: environment)
    }

    /// The defaults with the `HOTPOOL_…` environment variables over them (see `init(file:environment:)`).
    public init(environment: [String: String]) throws(ConfigurationFileError) {
        try self.init(text: "", source: "environment", environment: environment)
    }

    /// The configuration `text`, a TOML document read from `source`, gives (see `init(file:environment:)`).
    public init(text: String, source: String, environment: [String: String] = [:]) throws(ConfigurationFileError) {
        self.init()
        let document: TOMLTable
        do {
            document = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationFileError(source: source, line: Int(error.source.begin.line), key: nil, message: error.description)
        } catch {
            throw ConfigurationFileError(source: source, line: nil, key: nil, message: "\(error)")
        }
        let locator = KeyLocator(text: text)
        for (name, value) in Self.entries(of: document) {
            guard let key = FileKey.byName[name] else {
                let guess = FileKey.closest(to: name).map { "; did you mean \($0)?" } ?? " (`hotpool config check --help` lists the keys)"
                throw ConfigurationFileError(source: source, line: locator.line(of: name), key: name, message: "unknown key" + guess)
            }
            do throws(ValueProblem) {
                try key.read(&self, value)
            } catch {
                throw ConfigurationFileError(source: source, line: locator.line(of: name), key: name, message: error.message)
            }
        }
        for key in FileKey.all {
            guard let raw = environment[key.environmentName] else { continue }
            do throws(ValueProblem) {
                try key.read(&self, Self.environmentValue(raw))
            } catch {
                throw ConfigurationFileError(source: key.environmentName, line: nil, key: key.name, message: error.message)
            }
        }
        do {
            try validate()
        } catch {
            let message = error.configurationMessage ?? error.description
            let key = FileKey.named(in: message)
            // The value the pool refuses came from the environment when a variable set its key.
            if let variable = key?.environmentName, environment[variable] != nil {
                throw ConfigurationFileError(source: variable, line: nil, key: key?.name, message: message)
            }
            throw ConfigurationFileError(source: source, line: key.flatMap { locator.line(of: $0.name) }, key: key?.name, message: message)
        }
    }

    /// The configuration as a TOML document, every key in the order of `fileKeys`, which reads
    /// back to the same values except what a file does not say: proxies are written without
    /// their credentials (the text is for printing), and a custom profile, or rotating profiles
    /// with a custom one among them, are left out.
    public var fileText: String {
        var lines: [String] = []
        var section: String?
        for key in FileKey.all {
            let table = key.table
            guard let value = key.write(self), table.map({ FileKey.tables[$0]!(self) }) ?? true else { continue }
            if let table, table != section {
                lines.append("")
                lines.append("[\(table)]")
                section = table
            }
            lines.append("\(key.leaf) = \(value)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Every key a configuration file takes, as written there (`blockSignals.threshold` is
    /// `threshold` in the `[blockSignals]` table), with its environment variable.
    public static var fileKeys: [(key: String, environmentVariable: String)] {
        FileKey.all.map { ($0.name, $0.environmentName) }
    }

    /// The document's values by dotted name; a policy table with no keys turns the policy on.
    private static func entries(of document: TOMLTable) -> [(String, TOMLValueConvertible)] {
        document.flatMap { name, value -> [(String, TOMLValueConvertible)] in
            guard let table = value.table, FileKey.tables[name] != nil else { return [(name, value)] }
            return [(name, value)] + table.map { ("\(name).\($0)", $1) }
        }
    }

    /// An environment variable's value as TOML, or as a string when it is not TOML.
    private static func environmentValue(_ raw: String) -> TOMLValueConvertible {
        (try? TOMLTable(string: "value = \(raw)"))?["value"] ?? raw
    }
}

/// Why a configuration file (or environment variable) was refused.
public struct ConfigurationFileError: Error, Equatable, CustomStringConvertible {
    /// The file's path, or the environment variable's name.
    public let source: String
    /// The line of the file the problem is on, when it has one.
    public let line: Int?
    /// The key, as written in the file.
    public let key: String?
    /// What is wrong, with the allowed values where there is a range.
    public let message: String

    /// An error about `key` on `line` of `source`.
    public init(source: String, line: Int?, key: String?, message: String) {
        (self.source, self.line, self.key, self.message) = (source, line, key, message)
    }

    /// `source:line: key: message` (without the key when the message starts with it).
    public var description: String {
        [source + (line.map { ":\($0)" } ?? ""), key.flatMap { message.hasPrefix($0) ? nil : $0 }, message]
            .compactMap(\.self).joined(separator: ": ")
    }
}

/// A value of the wrong type or form.
struct ValueProblem: Error {
    let message: String
}

/// Finds the line a key is on: `name =` under its table's header, or `table.name =` at the top.
/// Only for messages: TOMLKit reports lines for syntax errors only.
struct KeyLocator {
    private var lines: [(table: String?, key: String, line: Int)] = []

    init(text: String) {
        var table: String?
        // A CRLF is one Character, so this counts it as one line break.
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") && !line.hasPrefix("[[") {
                let name = line.dropFirst().prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                table = name
                lines.append((nil, name, index + 1))
            } else if let equals = line.firstIndex(of: "="), !line.hasPrefix("#") {
                let key = line[..<equals].trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\"", with: "")
                lines.append((table, key, index + 1))
            }
        }
    }

    func line(of name: String) -> Int? {
        let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
        return lines.first { entry in
            entry.table == nil ? entry.key == name : parts.count == 2 && entry.table == parts[0] && entry.key == parts[1]
        }?.line
    }
}

extension HotPoolError {
    /// The text of an `invalidConfiguration`.
    var configurationMessage: String? {
        code == .invalidConfiguration ? reason : nil
    }
}
