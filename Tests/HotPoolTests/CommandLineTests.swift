import Foundation
import OriginControl
import Testing
@testable import HotPool

/// The `hotpool` command as a user runs it: the built binary, against the test origin.
@Suite(.serialized) struct CommandLineTests {
    /// The binary `swift build` made beside this test bundle.
    static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("hotpool").path

    /// What a run of the binary left.
    struct Run {
        let status: Int32
        let output: String
        let errors: String
    }

    /// Runs the binary (or `executable`) with `arguments` to its end (at most `bound`), with pipes
    /// for its output.
    static func run(_ arguments: [String], executable: String = binary, environment: [String: String] = [:],
                    bound: Duration = .seconds(60)) async throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let (output, errors) = (Pipe(), Pipe())
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Read while it runs, so a full pipe never stalls it.
        async let out = output.fileHandleForReading.readToEnd()
        async let err = errors.fileHandleForReading.readToEnd()
        let ended = await eventually(bound) { !process.isRunning }
        if !ended { process.terminate() }
        let (outData, errData) = try await (out, err)
        process.waitUntilExit()
        #expect(ended, "hotpool \(arguments.joined(separator: " ")) ended within \(bound)")
        return Run(status: process.terminationStatus, output: String(decoding: outData ?? Data(), as: UTF8.self),
                   errors: String(decoding: errData ?? Data(), as: UTF8.self))
    }

    /// A file holding `text`, in a folder of its own.
    static func file(_ text: String, named name: String = "hotpool.toml") throws -> String {
        let folder = NSTemporaryDirectory() + "hotpool-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The flags that send requests for the origin's name to its IPs, trusting its CA.
    static func originFlags(_ origin: Origin) throws -> [String] {
        let config = try file("trustedCAFile = \"\(origin.caFile)\"\n")
        return ["--config", config, "--resolve", "\(Origin.hostName):\(origin.ips.joined(separator: ","))"]
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "JSON: \(text)")
    }

    /// `fetch -n 200 -c 16`: the summary's figures are the origin's: requests, statuses, body
    /// bytes, connections (its handshakes, each destroyed once), each IP's requests.
    @Test func fetchSummaryAgreesWithTheOriginsCounters() async throws {
        let origin = try Origin()
        try await origin.rule(path: "/big", ["type": "status", "status": 200, "body_size": 1000])
        try await origin.rule(path: "/missing", ["type": "status", "status": 404])
        let base = "https://\(Origin.hostName):\(origin.port)"
        let run = try await Self.run(["fetch", "-n", "200", "-c", "16", "--json"] + Self.originFlags(origin)
                                     + ["\(base)/a", "\(base)/big", "\(base)/missing", "\(base)/b?x=1"])
        #expect(run.status == 0, "\(run.errors)")
        let summary = try Self.json(run.output)
        #expect(summary["requested"] as? Int == 200 && summary["answered"] as? Int == 200 && summary["failed"] as? Int == 0)
        #expect(summary["statuses"] as? [String: Int] == ["200": 150, "404": 50])
        #expect(summary["body_bytes"] as? Int == 3 * 50 * "ok".count + 50 * 1000)
        let server = try await origin.stats()
        #expect(server.totalRequests == 200)
        let opened = try #require(summary["connections_opened"] as? Int)
        #expect(opened == server.totalHandshakes && (1...16).contains(opened))
        let destroyed = try #require(summary["destroyed"] as? [String: Int])
        #expect(destroyed.values.reduce(0, +) == opened, "each connection destroyed once: \(destroyed)")
        #expect(try await origin.waitClosed(opened), "the origin saw every connection closed")
        let hosts = try #require(summary["hosts"] as? [[String: Any]])
        let ips = try #require(hosts.first?["ips"] as? [[String: Any]])
        let perIP = Dictionary(uniqueKeysWithValues: ips.map { ($0["ip"] as? String ?? "", $0["requests"] as? Int ?? 0) })
        #expect(perIP == server.requests.filter { $0.value > 0 }, "each IP's requests as the origin counted them")
        let latency = try #require(summary["latency_milliseconds"] as? [String: Double])
        let (p50, p90, p99, max) = (latency["p50"] ?? 0, latency["p90"] ?? 0, latency["p99"] ?? 0, latency["max"] ?? 0)
        #expect(0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max)
        origin.stop()
    }

    /// The text summary names what a user looks for, and `--out` keeps each body.
    @Test func fetchPrintsTheSummaryAndWritesTheBodies() async throws {
        let origin = try Origin()
        try await origin.rule(path: "/big", ["type": "status", "status": 200, "body_size": 1000])
        let out = NSTemporaryDirectory() + "hotpool-out-\(UUID().uuidString)"
        let base = "https://\(Origin.hostName):\(origin.port)"
        let run = try await Self.run(["fetch", "-n", "6", "-c", "2", "--out", out] + Self.originFlags(origin) + ["\(base)/big", "\(base)/small"])
        #expect(run.status == 0, "\(run.errors)")
        for line in ["6 of 6 requests", "6 answered, 0 failed", "statuses     200: 6", "body bytes   3006", "destroyed: poolClosed:",
                     "latency      p50 ", Origin.hostName, "127.0.0.2"] {
            #expect(run.output.contains(line), "\(line) in \(run.output)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(out)/4.body")).count == 1000)
        #expect(try String(contentsOfFile: "\(out)/1.body", encoding: .utf8) == "ok")
        let index = try String(contentsOfFile: "\(out)/index.tsv", encoding: .utf8).split(separator: "\n")
        #expect(index.count == 6 && index.contains("5\t200\t2\t\(base)/small"))
        origin.stop()
    }

    /// Requests with no answer (the port refuses) fail the command with status 1, each counted.
    @Test func refusedRequestsExitOne() async throws {
        let origin = try Origin()
        let closedPort = try unusedPort(on: "127.0.0.2")
        let run = try await Self.run(["fetch", "-n", "3", "-c", "1", "--json"] + Self.originFlags(origin)
                                     + ["https://\(Origin.hostName):\(closedPort)/"])
        #expect(run.status == 1)
        let summary = try Self.json(run.output)
        #expect(summary["failed"] as? Int == 3 && summary["answered"] as? Int == 0)
        let errors = try #require(summary["errors"] as? [String: Int])
        #expect(errors.values.reduce(0, +) == 3 && errors.keys.allSatisfy { $0.contains("refused") }, "\(errors)")
        #expect(summary["connections_opened"] as? Int == 0)
        // An IPv6 literal's brackets are the URL's, not the host's.
        let v6 = try await Self.run(["fetch", "-n", "1", "--json", "https://[::1]:\(try unusedPort(on: "::1"))/"])
        let v6Errors = try Self.json(v6.output)["errors"] as? [String: Int]
        #expect(v6.status == 1 && v6Errors?.keys.first?.contains("::1") == true && v6Errors?.keys.first?.contains("refused") == true, "\(v6.output)")
        origin.stop()
    }

    /// On a terminal (a pseudo-terminal from `script`) the progress line is redrawn in place and
    /// ends with the final count; through a pipe there are no terminal controls.
    @Test func theProgressLineIsDrawnOnATerminalOnly() async throws {
        let origin = try Origin()
        let base = "https://\(Origin.hostName):\(origin.port)"
        let command = try ([Self.binary, "fetch", "-n", "300", "-c", "4"] + Self.originFlags(origin) + ["\(base)/"])
            .map { "'\($0)'" }.joined(separator: " ")
        let onTerminal = try await Self.run(["-qfec", command, "/dev/null"], executable: "/usr/bin/script")
        #expect(onTerminal.status == 0, "\(onTerminal.output)")
        #expect(onTerminal.output.contains("\r\u{1B}[K300/300 done"), "the last redraw: \(onTerminal.output.debugDescription)")
        #expect(onTerminal.output.range(of: #"\d+/300 done  \d+ req/s  0 errors  \d+ open"#, options: .regularExpression) != nil)
        #expect(onTerminal.output.contains("300 of 300 requests"))
        // Through a pipe: a plain line a second (8 answers 300 ms late, 2 at a time, take 1.2 s;
        // the origin holds answers over HTTP/2).
        try await origin.setTLSMode("h2")
        try await origin.rule(path: "/slow", ["type": "status", "status": 200, "delay_ms": 300])
        let piped = try await Self.run(["fetch", "-n", "8", "-c", "2"] + Self.originFlags(origin) + ["\(base)/slow"])
        #expect(piped.status == 0 && !piped.errors.contains("\u{1B}") && !piped.output.contains("\u{1B}"))
        #expect(piped.errors.range(of: #"(?m)^\d+/8 done  \d+ req/s  0 errors  \d+ open$"#, options: .regularExpression) != nil,
                "a plain progress line: \(piped.errors)")
        origin.stop()
    }

    /// Ctrl-C with requests the server never answers: the pool closes (every connection it
    /// opened closed at the origin), the summary says what was done, the status is 130.
    @Test func interruptClosesThePoolAndPrintsWhatWasDone() async throws {
        let origin = try Origin()
        try await origin.rule(path: "/stall", ["type": "stall"])
        let base = "https://\(Origin.hostName):\(origin.port)"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["fetch", "-n", "1000", "-c", "4"] + (try Self.originFlags(origin)) + ["\(base)/", "\(base)/stall"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        async let printed = output.fileHandleForReading.readToEnd()
        let stalled = await eventually(.seconds(10)) { (try? await origin.stats().totalRequests) ?? 0 >= 4 }
        #expect(stalled, "the first requests reached the origin")
        kill(process.processIdentifier, SIGINT)
        #expect(await eventually(.seconds(10)) { !process.isRunning }, "exited after Ctrl-C")
        process.waitUntilExit()
        let text = String(decoding: (try await printed) ?? Data(), as: UTF8.self)
        #expect(process.terminationStatus == 130)
        #expect(text.hasPrefix("interrupted: "), "\(text)")
        let opened = try #require(text.firstMatch(of: /connections  (\d+) opened/).map { Int($0.1)! })
        #expect(opened >= 1 && text.contains("poolClosed: "))
        #expect(try await origin.waitClosed(opened), "every connection closed at the origin")
        #expect(try await origin.stats().totalOpen == 0)
        origin.stop()
    }

    /// `fingerprint` prints what the origin saw of the preset (given by the flag, over rotating
    /// profiles from the environment): the JA4, JA4_r and Akamai string the README documents for
    /// it, and its header order.
    @Test(arguments: [("chrome", "chrome150"), ("firefox", "firefox147")])
    func fingerprintPrintsWhatTheOriginSaw(preset: String, documentedName: String) async throws {
        let documented = try FingerprintTests.documented(documentedName)
        // The flag wins over the environment's rotating profiles too.
        let run = try await Self.run(["fingerprint", "--profile", preset, "--json"], environment: ["HOTPOOL_ROTATING_PROFILES": "[\"safari\"]"])
        #expect(run.status == 0, "\(run.errors)")
        let seen = try Self.json(run.output)
        #expect(seen["ja4"] as? String == documented.ja4)
        #expect(seen["ja4_r"] as? String == documented.ja4r)
        #expect(seen["akamai"] as? String == documented.akamai)
        #expect(seen["http_version"] as? String == "h2")
        let profile = try #require(FingerprintProfile(presetName: preset))
        #expect(seen["header_order"] as? [String] == profile.spec.http2.headers.map(\.name), "the preset's header order over HTTP/2")
        let ja3 = try #require(seen["ja3"] as? String)
        #expect(ja3.split(separator: ",", omittingEmptySubsequences: false).count == 5)
        let text = try await Self.run(["fingerprint", "--profile", preset])
        #expect(text.output.contains("JA4           \(documented.ja4)\n") && text.output.contains("JA3 hash      "))
    }

    /// Bad flags are refused before anything runs, with the reason and status 64.
    @Test(arguments: [
        (["fetch"], "give at least one URL"),
        (["fetch", "-c", "0", "https://example.test/"], "-c must be at least 1"),
        (["fetch", "http://example.test/"], "not an https URL"),
        (["fetch", "--bogus", "https://example.test/"], "Unknown option '--bogus'"),
        (["fetch", "--profile", "netscape", "https://example.test/"], "not a preset; the presets are chrome,"),
        (["fetch", "--resolve", "example.test", "https://example.test/"], "expected host:ip"),
        (["fetch", "--resolve", "example.test:443:10.0.0.1", "https://example.test/"], "with IP literals"),
        (["fetch", "--urls", "/nonexistent/urls.txt"], "cannot read the file"),
        (["frobnicate"], "Unexpected argument 'frobnicate'"),
    ])
    func badFlagsAreRefusedWithUsage(arguments: [String], message: String) async throws {
        let run = try await Self.run(arguments)
        #expect(run.status == 64, "\(arguments): \(run.errors)")
        #expect(run.errors.contains(message), "\(message) in \(run.errors)")
    }

    /// A bad configuration file, environment variable or proxy flag: the file, line and key, the
    /// allowed values, and status 78; `fetch --config` refuses it the same way.
    @Test func badConfigurationsAreRefusedWithTheirPlace() async throws {
        let cases: [(String, [String: String], String)] = [
            ("# limits\nmaxConnections = 0\n", [:], ":2: maxConnections must be > 0, got 0"),
            ("maxConection = 3\n", [:], ":1: maxConection: unknown key; did you mean maxConnections?"),
            ("connectTimeout = 5\n", [:], ":1: connectTimeout: expected a duration such as \"250ms\""),
            ("[blockSignals]\nthreshold = 300\n", [:], ":2: blockSignals.threshold must be within 1...256, got 300"),
            ("profile = \"netscape\"\n", [:], ":1: profile: expected one of chrome, chrome131"),
            ("maxConnections = \n", [:], ":1: Error while parsing"),
            ("maxConnections = 10\n", ["HOTPOOL_MAX_CONNECTIONS": "many"], "HOTPOOL_MAX_CONNECTIONS: maxConnections: expected an integer, got \"many\""),
        ]
        for (text, environment, message) in cases {
            let path = try Self.file(text)
            let checked = try await Self.run(["config", "check", path], environment: environment)
            #expect(checked.status == 78 && checked.errors.contains(message), "\(message) in \(checked.errors)")
            let fetched = try await Self.run(["fetch", "--config", path, "https://example.test/"], environment: environment)
            #expect(fetched.status == 78 && fetched.errors.contains(message), "fetch: \(message) in \(fetched.errors)")
        }
        let proxy = try await Self.run(["fetch", "--proxy", "ftp://127.0.0.1:21", "https://example.test/"])
        #expect(proxy.status == 78 && proxy.errors.contains("--proxy"), "\(proxy.errors)")
    }

    /// README.md's sample configuration passes `config check`, whose output (the effective
    /// configuration) passes it again unchanged, with the environment's overrides in it.
    @Test func theReadmesSampleConfigurationChecksAndItsOutputReadsBack() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let sample = try #require(readme.firstMatch(of: /```toml\n(?<body>(?:.|\n)*?)```/)?.body, "README.md has a ```toml block")
        let first = try await Self.run(["config", "check", try Self.file(String(sample))], environment: ["HOTPOOL_MAX_RETRIES": "7"])
        #expect(first.status == 0, "\(first.errors)")
        #expect(first.output.contains("\nmaxRetries = 7\n"))
        let effective = first.output.split(separator: "\n", maxSplits: 1).last.map(String.init) ?? ""
        let second = try await Self.run(["config", "check", try Self.file(effective)])
        #expect(second.status == 0 && second.output.split(separator: "\n", maxSplits: 1).last.map(String.init) == effective)
    }
}

/// A TCP port on `ip` nothing listens on (bound, then released).
func unusedPort(on ip: String) throws -> Int {
    let family = ip.contains(":") ? AF_INET6 : AF_INET
    let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var storage = sockaddr_storage()
    let length = withUnsafeMutableBytes(of: &storage) { bytes -> socklen_t in
        if family == AF_INET6 {
            let address = bytes.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
            address.pointee.sin6_family = sa_family_t(AF_INET6)
            _ = inet_pton(AF_INET6, ip, &address.pointee.sin6_addr)
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
        let address = bytes.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
        address.pointee.sin_family = sa_family_t(AF_INET)
        _ = inet_pton(AF_INET, ip, &address.pointee.sin_addr)
        return socklen_t(MemoryLayout<sockaddr_in>.size)
    }
    var bound = length
    let ok = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &bound) == 0 }
    }
    guard ok else { throw OriginError.failed("cannot bind a port on \(ip): errno \(errno)") }
    // sin_port and sin6_port sit at the same offset.
    return withUnsafeBytes(of: &storage) { Int(UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self))) }
}
