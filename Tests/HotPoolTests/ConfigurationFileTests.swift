import Foundation
import HotPoolConfigurationFile
import Testing
@testable import HotPool

/// `HotPoolConfiguration(file:)`: every field, the environment over the file, errors with their place.
@Suite struct ConfigurationFileTests {
    /// A configuration with every field a file can set away from its default.
    static var changed: HotPoolConfiguration {
        var config = HotPoolConfiguration()
        config.maxConnections = 50
        config.maxConnectionsPerHost = 5
        config.maxIdleConnections = 7
        config.minIdlePerHost = 1
        config.connectTimeout = .milliseconds(1500)
        config.acquireTimeout = .seconds(9)
        config.requestTimeout = .seconds(8)
        config.validationTimeout = .seconds(7)
        config.idleOrder = .fifo
        config.idleTimeout = .seconds(6)
        config.maxLifetime = .seconds(3601)
        config.healthCheckInterval = .microseconds(5)
        config.healthCheckPath = "/health"
        config.pingsIdleHTTP2Connections = true
        config.cleanupInterval = .nanoseconds(3)
        config.leaseWarningAfter = .seconds(120)
        config.blacklistCheckInterval = .seconds(61)
        config.blacklistTimeout = .seconds(62)
        config.maxBlacklistTime = .seconds(7200)
        config.consecutiveFailuresToEject = 2
        config.maxEjectedShare = 0.25
        config.maxRetries = 1
        config.dnsUpdateInterval = .seconds(99)
        config.dnsServers = ["127.0.0.1:5353", "[::1]:53"]
        config.maxAddressesPerLookup = 8
        config.localAddresses = ["127.0.0.1"]
        config.trustedCAFile = "/etc/ssl/ca \"test\".pem"
        config.profile = .firefox
        config.rotatingProfiles = [.safari, .chrome131]
        config.sessionCacheCapacity = 16
        config.httpVersions = [.http1_1]
        config.maxStreamsPerConnection = 10
        config.maxResponseHeaderBytes = 1000
        config.maxResponseHeaderFields = 20
        config.maxResponseBodyBytes = 2000
        config.maxDecompressionRatio = 30
        config.closeDelimitedBodyRequiresCloseNotify = true
        config.proxies = [try! Proxy("socks5://127.0.0.1:1080"), try! Proxy("http://10.0.0.1:3128")]
        config.proxySelection = .stickyPerIP
        config.ioBackend = .ioUring
        config.reactors = 2
        config.reactorSelection = .perCall
        config.logger.logLevel = .debug
        config.blockSignals = BlockSignalPolicy(statuses: [403], threshold: 2, window: .seconds(10))
        config.retryPolicy = RetryPolicy(maxAttempts: 2, methods: [.get], statuses: [503], retriesTransportFailures: false,
                                         baseDelay: .milliseconds(5), maxDelay: .seconds(1), jitter: 0.5,
                                         honoursRetryAfter: false, maxRetryAfter: .seconds(2))
        return config
    }

    /// Each key's line, by key.
    static func lines(_ text: String) -> [String: String] {
        var table = ""
        var lines: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if line.hasPrefix("[") { table = line.trimmingCharacters(in: ["[", "]"]) + "."; continue }
            let key = String(line.prefix { $0 != " " })
            lines[table + key] = String(line)
        }
        return lines
    }

    /// Every key is written and read back: a configuration with every field changed writes a
    /// text each of whose keys differs from the defaults' and which reads back to the same text.
    @Test func everyKeyReadsBackWhatItWrites() throws {
        let text = Self.changed.fileText
        let again = try HotPoolConfiguration(text: text, source: "test").fileText
        #expect(again == text)
        let written = Self.lines(text), defaults = Self.lines(HotPoolConfiguration().fileText)
        let keys = Set(HotPoolConfiguration.fileKeys.map(\.key)).subtracting(["blockSignals", "retryPolicy"])
        #expect(Set(written.keys) == keys, "every key written")
        // Every field of the configuration has its key (the logger's is its level), so a field
        // added later without one fails here.
        let fields = Mirror(reflecting: HotPoolConfiguration()).children.compactMap(\.label).map { $0 == "logger" ? "logLevel" : $0 }
        #expect(Set(fields).subtracting(keys.map { String($0.prefix { $0 != "." }) }).isEmpty, "fields with no key")
        for key in keys {
            #expect(written[key] != defaults[key], "\(key) changed: \(written[key] ?? "")")
        }
    }

    /// `HOTPOOL_…` variables override the file, as TOML values or bare words, and a policy's
    /// key in the environment turns the policy on.
    @Test func theEnvironmentOverridesTheFile() throws {
        let config = try HotPoolConfiguration(text: "maxConnections = 50\nconnectTimeout = \"5s\"\n", source: "test", environment: [
            "HOTPOOL_MAX_CONNECTIONS": "70", "HOTPOOL_CONNECT_TIMEOUT": "250ms", "HOTPOOL_DNS_SERVERS": "[\"127.0.0.1:53\"]",
            "HOTPOOL_BLOCK_SIGNALS_THRESHOLD": "4", "HOTPOOL_TRUSTED_CA_FILE": "/ca.pem", "UNRELATED": "x",
        ])
        #expect(config.maxConnections == 70 && config.connectTimeout == .milliseconds(250) && config.dnsServers == ["127.0.0.1:53"])
        #expect(config.blockSignals == BlockSignalPolicy(threshold: 4) && config.trustedCAFile == "/ca.pem")
        // One reactor per core, with limits any core count meets.
        let perCore = try HotPoolConfiguration(text: "maxConnections = 1000000\nmaxIdleConnections = 0\n", source: "test",
                                               environment: ["HOTPOOL_REACTORS": "perCore"])
        #expect(perCore.reactors == .perCore && perCore.fileText.contains("\nreactors = \"perCore\"\n"))
        #expect(HotPoolConfiguration.fileKeys.contains { $0 == ("blockSignals.window", "HOTPOOL_BLOCK_SIGNALS_WINDOW") })
    }

    /// An empty policy table turns the policy on with its defaults; leaving it out leaves it off.
    @Test func aPolicyTableTurnsItsPolicyOn() throws {
        let on = try HotPoolConfiguration(text: "[retryPolicy]\n", source: "test")
        #expect(on.retryPolicy == RetryPolicy() && on.blockSignals == nil)
        #expect(try HotPoolConfiguration(text: "", source: "test").retryPolicy == nil)
    }

    /// Errors name the place: a key in a table on its line, a dotted key at the top, a bad
    /// element of an array, a value the pool refuses, a line of a file with CRLF line ends.
    @Test func errorsNameTheirPlace() {
        #expect(throws: ConfigurationFileError(source: "f", line: 3, key: "maxConnections", message: "maxConnections must be > 0, got 0")) {
            try HotPoolConfiguration(text: "# limits\r\nmaxRetries = 1\r\nmaxConnections = 0\r\n", source: "f")
        }
        #expect(throws: ConfigurationFileError(source: "f", line: 3, key: "retryPolicy.jitter",
                                               message: "retry jitter must be within 0...1, got 2.0")) {
            try HotPoolConfiguration(text: "maxRetries = 1\n[retryPolicy]\njitter = 2.0\n", source: "f")
        }
        #expect(throws: ConfigurationFileError(source: "f", line: 2, key: "blockSignals.window",
                                               message: "expected a duration such as \"250ms\", \"30s\" or \"5m\" (ns, us, ms, s, m, h), got \"soon\"")) {
            try HotPoolConfiguration(text: "maxRetries = 1\nblockSignals.window = \"soon\"\n", source: "f")
        }
        #expect(throws: ConfigurationFileError(source: "f", line: 1, key: "httpVersions",
                                               message: "expected an array of \"http/1.1\", \"h2\", got \"h3\"")) {
            try HotPoolConfiguration(text: "httpVersions = [\"h2\", \"h3\"]\n", source: "f")
        }
        #expect(throws: ConfigurationFileError(source: "f", line: 1, key: "dnsServers",
                                               message: "dnsServers: nameserver is not ip, ip:port or [ipv6]:port")) {
            try HotPoolConfiguration(text: "dnsServers = [\"nameserver\"]\n", source: "f")
        }
    }
}

extension ConfigurationFileTests {
    /// Durations are exact to the nanosecond, fractions included; one past `Int64.max` ns, or
    /// a unit not listed, is refused.
    @Test func durationsAreExact() throws {
        #expect(throws: ConfigurationFileError.self) { try HotPoolConfiguration(text: "idleTimeout = \"5 minutes\"\n", source: "f") }
        let config = try HotPoolConfiguration(text: "idleTimeout = \"1.5s\"\nmaxLifetime = \"3601s\"\nconnectTimeout = \"7ns\"\n", source: "f")
        #expect(config.idleTimeout == .milliseconds(1500) && config.maxLifetime == .seconds(3601) && config.connectTimeout == .nanoseconds(7))
        #expect(throws: ConfigurationFileError.self) { try HotPoolConfiguration(text: "idleTimeout = \"2562048h\"\n", source: "f") }
    }
}
