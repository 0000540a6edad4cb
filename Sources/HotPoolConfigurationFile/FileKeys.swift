import Foundation
import HTTPTypes
import HotPoolCore
import Logging
import TOMLKit

/// One key of a configuration file: the field it sets, how its value is read, and how the
/// field is written back.
struct FileKey: Sendable {
    /// As written in the file: the field's name, `table.field` inside a table.
    let name: String
    let read: @Sendable (inout HotPoolConfiguration, TOMLValueConvertible) throws(ValueProblem) -> Void
    /// The field's value as TOML text; nil when a file cannot say it (a policy that is off, a custom profile).
    let write: @Sendable (HotPoolConfiguration) -> String?

    /// The table the key sits in, if any.
    var table: String? { name.contains(".") ? String(name.prefix { $0 != "." }) : nil }
    /// The key inside its table.
    var leaf: String { String(name.split(separator: ".").last!) }
    /// `HOTPOOL_` and the name in upper snake case: `maxConnections` → `HOTPOOL_MAX_CONNECTIONS`,
    /// `trustedCAFile` → `HOTPOOL_TRUSTED_CA_FILE`, `blockSignals.window` → `HOTPOOL_BLOCK_SIGNALS_WINDOW`.
    var environmentName: String {
        let characters = Array(name)
        var snake = "HOTPOOL_"
        for (index, character) in characters.enumerated() {
            if character == "." {
                snake.append("_")
                continue
            }
            let previous = index > 0 ? characters[index - 1] : nil
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            // A word starts at an upper-case letter after a lower-case one or a digit, or at the
            // last capital of an acronym that a lower-case letter follows ("CAFile").
            if character.isUppercase, let previous, previous != ".",
               previous.isLowercase || previous.isNumber || (previous.isUppercase && next?.isLowercase == true) {
                snake.append("_")
            }
            snake.append(contentsOf: character.uppercased())
        }
        return snake
    }

    /// The tables a file may hold, each a policy, and whether the policy is on.
    static let tables: [String: @Sendable (HotPoolConfiguration) -> Bool] = [
        "blockSignals": { $0.blockSignals != nil }, "retryPolicy": { $0.retryPolicy != nil },
    ]

    /// The keys by name.
    static let byName = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// The key an error message of `validate()` is about: the longest name it starts with.
    static func named(in message: String) -> FileKey? {
        // RetryPolicy's messages say "retry <field>".
        let message = message.hasPrefix("retry ") ? "retryPolicy." + message.dropFirst("retry ".count) : message
        return all.filter { key in
            message.hasPrefix(key.name) && message.dropFirst(key.name.count).first.map { " :(.".contains($0) } ?? true
        }.max { $0.name.count < $1.name.count }
    }

    /// The key `name` is likely a misspelling of: the one fewest edits away, if at most two.
    static func closest(to name: String) -> String? {
        let nearest = all.map { ($0.name, editDistance(name.lowercased(), $0.name.lowercased())) }.min { $0.1 < $1.1 }
        return nearest.flatMap { $0.1 <= 2 ? $0.0 : nil }
    }

    /// Levenshtein distance: insertions, deletions and substitutions.
    private static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// Every key, in the order `fileText` writes them.
    static let all: [FileKey] = [
        int("maxConnections", \.maxConnections),
        int("maxConnectionsPerHost", \.maxConnectionsPerHost),
        int("maxIdleConnections", \.maxIdleConnections),
        int("minIdlePerHost", \.minIdlePerHost),
        duration("connectTimeout", \.connectTimeout),
        duration("acquireTimeout", \.acquireTimeout),
        duration("requestTimeout", \.requestTimeout),
        duration("validationTimeout", \.validationTimeout),
        choice("idleOrder", \.idleOrder, [("lifo", .lifo), ("fifo", .fifo)]),
        duration("idleTimeout", \.idleTimeout),
        duration("maxLifetime", \.maxLifetime),
        duration("healthCheckInterval", \.healthCheckInterval),
        optionalString("healthCheckPath", \.healthCheckPath),
        bool("pingsIdleHTTP2Connections", \.pingsIdleHTTP2Connections),
        duration("cleanupInterval", \.cleanupInterval),
        duration("leaseWarningAfter", \.leaseWarningAfter),
        duration("blacklistCheckInterval", \.blacklistCheckInterval),
        duration("blacklistTimeout", \.blacklistTimeout),
        duration("maxBlacklistTime", \.maxBlacklistTime),
        int("consecutiveFailuresToEject", \.consecutiveFailuresToEject),
        double("maxEjectedShare", \.maxEjectedShare),
        int("maxRetries", \.maxRetries),
        duration("dnsUpdateInterval", \.dnsUpdateInterval),
        strings("dnsServers", \.dnsServers),
        int("maxAddressesPerLookup", \.maxAddressesPerLookup),
        strings("localAddresses", \.localAddresses),
        optionalString("trustedCAFile", \.trustedCAFile),
        profile("profile", \.profile),
        profiles("rotatingProfiles", \.rotatingProfiles),
        int("sessionCacheCapacity", \.sessionCacheCapacity),
        set("httpVersions", \.httpVersions, of: HTTPProtocolVersion.allCases.map { ($0.rawValue, $0) }),
        int("maxStreamsPerConnection", \.maxStreamsPerConnection),
        int("maxResponseHeaderBytes", \.maxResponseHeaderBytes),
        int("maxResponseHeaderFields", \.maxResponseHeaderFields),
        int("maxResponseBodyBytes", \.maxResponseBodyBytes),
        int("maxDecompressionRatio", \.maxDecompressionRatio),
        bool("closeDelimitedBodyRequiresCloseNotify", \.closeDelimitedBodyRequiresCloseNotify),
        proxies("proxies", \.proxies),
        choice("proxySelection", \.proxySelection, [("roundRobin", .roundRobin), ("stickyPerIP", .stickyPerIP)]),
        choice("ioBackend", \.ioBackend, [("automatic", .automatic), ("epoll", .epoll), ("io_uring", .ioUring)]),
        reactors("reactors", \.reactors),
        choice("reactorSelection", \.reactorSelection, [("byHost", .byHost), ("perCall", .perCall)]),
        choice("logLevel", \.logger.logLevel, Logger.Level.allCases.map { ($0.rawValue, $0) }),
        policyTable("blockSignals", \.blockSignals, BlockSignalPolicy()),
        statuses("blockSignals.statuses", \.blockSignalsSettings.statuses),
        int("blockSignals.threshold", \.blockSignalsSettings.threshold),
        duration("blockSignals.window", \.blockSignalsSettings.window),
        policyTable("retryPolicy", \.retryPolicy, RetryPolicy()),
        int("retryPolicy.maxAttempts", \.retryPolicySettings.maxAttempts),
        methods("retryPolicy.methods", \.retryPolicySettings.methods),
        statuses("retryPolicy.statuses", \.retryPolicySettings.statuses),
        bool("retryPolicy.retriesTransportFailures", \.retryPolicySettings.retriesTransportFailures),
        duration("retryPolicy.baseDelay", \.retryPolicySettings.baseDelay),
        duration("retryPolicy.maxDelay", \.retryPolicySettings.maxDelay),
        double("retryPolicy.jitter", \.retryPolicySettings.jitter),
        bool("retryPolicy.honoursRetryAfter", \.retryPolicySettings.honoursRetryAfter),
        duration("retryPolicy.maxRetryAfter", \.retryPolicySettings.maxRetryAfter),
    ]
}

// MARK: - Kinds of value

/// A factory per kind of value: the key `name` for `field`, read and written in that kind's form.
extension FileKey {
    typealias Field<Value> = WritableKeyPath<HotPoolConfiguration, Value> & Sendable

    /// A key whose value `parse` reads and `format` writes.
    private static func key<Value>(
        _ name: String, _ field: Field<Value>, _ parse: @escaping @Sendable (TOMLValueConvertible) throws(ValueProblem) -> Value,
        _ format: @escaping @Sendable (Value) -> String?
    ) -> FileKey {
        FileKey(name: name, read: { config, value throws(ValueProblem) in config[keyPath: field] = try parse(value) },
                write: { format($0[keyPath: field]) })
    }

    static func int(_ name: String, _ field: Field<Int>) -> FileKey {
        key(name, field, { value throws(ValueProblem) in try expect(value.int, "an integer", value) }, { String($0) })
    }

    static func double(_ name: String, _ field: Field<Double>) -> FileKey {
        key(name, field, { value throws(ValueProblem) in try expect(value.double ?? value.int.map(Double.init), "a number", value) },
            { String($0) })
    }

    static func bool(_ name: String, _ field: Field<Bool>) -> FileKey {
        key(name, field, { value throws(ValueProblem) in try expect(value.bool, "true or false", value) }, { String($0) })
    }

    static func duration(_ name: String, _ field: Field<Duration>) -> FileKey {
        key(name, field, { value throws(ValueProblem) in
            try expect(value.string.flatMap(DurationText.parse), "a duration such as \"250ms\", \"30s\" or \"5m\" (ns, us, ms, s, m, h)", value)
        }, { quoted(DurationText.format($0)) })
    }

    static func optionalString(_ name: String, _ field: Field<String?>) -> FileKey {
        key(name, field, { value throws(ValueProblem) in try expect(value.string, "a string", value) }, { $0.map(quoted) })
    }

    static func strings(_ name: String, _ field: Field<[String]>) -> FileKey {
        key(name, field, { value throws(ValueProblem) in try array(value, "an array of strings") { $0.string } },
            { "[" + $0.map(quoted).joined(separator: ", ") + "]" })
    }

    /// One of `options`, by name.
    static func choice<Value: Equatable & Sendable>(_ name: String, _ field: Field<Value>, _ options: [(String, Value)]) -> FileKey {
        let names = options.map(\.0).joined(separator: ", ")
        return key(name, field, { value throws(ValueProblem) in
            try expect(value.string.flatMap { text in options.first { $0.0 == text }?.1 }, "one of \(names)", value)
        }, { current in options.first { $0.1 == current }.map { quoted($0.0) } })
    }

    /// A set of `options`, by name.
    static func set<Element: Hashable & Sendable>(_ name: String, _ field: Field<Set<Element>>, of options: [(String, Element)]) -> FileKey {
        let expected = "an array of " + options.map { quoted($0.0) }.joined(separator: ", ")
        return set(name, field, expected, { value in value.string.flatMap { text in options.first { $0.0 == text }?.1 } },
                   { item in quoted(options.first { $0.1 == item }!.0) })
    }

    static func statuses(_ name: String, _ field: Field<Set<Int>>) -> FileKey {
        set(name, field, "an array of integers", { $0.int }, { String($0) })
    }

    static func methods(_ name: String, _ field: Field<Set<HTTPRequest.Method>>) -> FileKey {
        set(name, field, "an array of HTTP methods such as \"GET\"", { $0.string.flatMap { HTTPRequest.Method($0) } }, { quoted($0.rawValue) })
    }

    private static func set<Element: Hashable & Sendable>(
        _ name: String, _ field: Field<Set<Element>>, _ expected: String,
        _ element: @escaping @Sendable (TOMLValueConvertible) -> Element?, _ format: @escaping @Sendable (Element) -> String
    ) -> FileKey {
        key(name, field, { value throws(ValueProblem) in Set(try array(value, expected, element)) },
            { "[" + $0.map(format).sorted().joined(separator: ", ") + "]" })
    }

    static func profile(_ name: String, _ field: Field<FingerprintProfile>) -> FileKey {
        key(name, field, { value throws(ValueProblem) in try expect(value.string.flatMap(FingerprintProfile.init(presetName:)), presetNames, value) },
            { $0.presetName.map(quoted) })
    }

    static func profiles(_ name: String, _ field: Field<[FingerprintProfile]>) -> FileKey {
        key(name, field, { value throws(ValueProblem) in
            try array(value, "an array of preset names (\(presetNames))") { $0.string.flatMap(FingerprintProfile.init(presetName:)) }
        }, { profiles in
            let names = profiles.compactMap(\.presetName)
            return names.count == profiles.count ? "[" + names.map(quoted).joined(separator: ", ") + "]" : nil
        })
    }

    static func proxies(_ name: String, _ field: Field<[Proxy]>) -> FileKey {
        key(name, field, { value throws(ValueProblem) in
            let urls = try array(value, "an array of proxy URLs") { $0.string }
            var proxies: [Proxy] = []
            for url in urls {
                do throws(HotPoolError) {
                    proxies.append(try Proxy(url))
                } catch {
                    throw ValueProblem(message: error.configurationMessage ?? error.description)
                }
            }
            return proxies
        }, { proxies in "[" + proxies.map { quoted($0.description) }.joined(separator: ", ") + "]" })
    }

    static func reactors(_ name: String, _ field: Field<ReactorCount>) -> FileKey {
        key(name, field, { value throws(ValueProblem) in
            if value.string == "perCore" { return .perCore }
            return ReactorCount(try expect(value.int, "an integer or \"perCore\"", value))
        }, { $0 == .perCore ? quoted("perCore") : String($0.resolved) })
    }

    /// A table whose presence turns its policy on (`initial`, then its keys).
    static func policyTable<Policy: Sendable>(_ name: String, _ field: Field<Policy?>, _ initial: Policy) -> FileKey {
        FileKey(name: name, read: { config, value throws(ValueProblem) in
            _ = try expect(value.table, "a table", value)
            if config[keyPath: field] == nil { config[keyPath: field] = initial }
        }, write: { _ in nil })
    }

    private static let presetNames = "one of " + FingerprintProfile.presets.map(\.name).joined(separator: ", ")

    private static func expect<T>(_ parsed: T?, _ expected: String, _ value: TOMLValueConvertible) throws(ValueProblem) -> T {
        guard let parsed else { throw ValueProblem(message: "expected \(expected), got \(describe(value))") }
        return parsed
    }

    private static func array<T>(_ value: TOMLValueConvertible, _ expected: String, _ element: (TOMLValueConvertible) -> T?) throws(ValueProblem) -> [T] {
        let items = try expect(value.array, expected, value)
        var parsed: [T] = []
        for item in items {
            parsed.append(try expect(element(item), expected, item))
        }
        return parsed
    }

    /// A value as a message shows it: its TOML text, or its type for a table or array.
    private static func describe(_ value: TOMLValueConvertible) -> String {
        switch value.type {
        case .string: quoted(value.string ?? "")
        case .int, .double, .bool: "\(value)"
        default: "a \(value.type)"
        }
    }
}

/// `text` as a TOML basic string.
func quoted(_ text: String) -> String {
    var escaped = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": escaped += "\\\""
        case "\\": escaped += "\\\\"
        case "\n": escaped += "\\n"
        case "\t": escaped += "\\t"
        case _ where scalar.value < 0x20 || scalar.value == 0x7F: escaped += String(format: "\\u%04X", scalar.value)
        default: escaped.unicodeScalars.append(scalar)
        }
    }
    return escaped + "\""
}

/// Durations as the file writes them: a number and a unit.
enum DurationText {
    private static let units: [(name: String, duration: Duration)] = [
        ("h", .seconds(3600)), ("m", .seconds(60)), ("s", .seconds(1)), ("ms", .milliseconds(1)), ("us", .microseconds(1)), ("ns", .nanoseconds(1)),
    ]

    /// `"250ms"`, `"1.5s"`: a non-negative number and one of ns, us, ms, s, m, h, at most
    /// `Int64.max` nanoseconds (about 292 years); to the nearest nanosecond.
    static func parse(_ text: String) -> Duration? {
        let number = text.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unitName = text.dropFirst(number.count).trimmingCharacters(in: .whitespaces)
        guard let unit = units.first(where: { $0.name == unitName })?.duration.nanoseconds else { return nil }
        if let whole = Int64(number) {
            let (nanoseconds, overflow) = whole.multipliedReportingOverflow(by: unit)
            return overflow ? nil : .nanoseconds(nanoseconds)
        }
        guard let value = Double(number) else { return nil }
        let nanoseconds = (value * Double(unit)).rounded()
        return nanoseconds < Double(Int64.max) ? .nanoseconds(Int64(nanoseconds)) : nil
    }

    /// The largest unit that gives a whole number.
    static func format(_ duration: Duration) -> String {
        // Nanoseconds divide every duration.
        let unit = units.first { duration.nanoseconds % $0.duration.nanoseconds == 0 }!
        return "\(duration.nanoseconds / unit.duration.nanoseconds)\(unit.name)"
    }
}

extension HotPoolConfiguration {
    /// `blockSignals`, read and set as a policy that is on.
    fileprivate var blockSignalsSettings: BlockSignalPolicy {
        get { blockSignals ?? BlockSignalPolicy() }
        set { blockSignals = newValue }
    }

    /// `retryPolicy`, read and set as a policy that is on.
    fileprivate var retryPolicySettings: RetryPolicy {
        get { retryPolicy ?? RetryPolicy() }
        set { retryPolicy = newValue }
    }
}
