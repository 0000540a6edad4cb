import Foundation
import HotPool
import Synchronization

/// Drives the test origin (Tests/Origin/server.py): a real TLS server, independent of HotPool,
/// on several loopback IPs of one host name, controlled by JSON lines over its stdin/stdout.
/// Used by the tests and the demo; the server stops when this object is stopped or released.
public final class Origin: @unchecked Sendable {
    /// The host name the origin's certificate is for.
    public static let hostName = "origin.hotpool.test"

    /// The loopback IPs it listens on.
    public let ips: [String]
    /// The port it listens on (the same on every IP).
    public let port: Int
    /// The PEM file of its test CA.
    public let caFile: String
    private let server: ScriptServer

    /// Starts the origin and waits until it listens.
    /// Its certificate names `host` (`hostName` unless given: a name another resolver knows,
    /// such as `localhost` for a SOCKS5 proxy that resolves it).
    public init(ips: [String] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"], host: String = Origin.hostName) throws {
        self.ips = ips
        server = try ScriptServer(executable: "/usr/bin/env", arguments: [
            "python3", ScriptServer.path("server.py"), "--ips", ips.joined(separator: ","), "--host", host,
        ])
        guard let ca = server.ready["ca"] as? String else { throw OriginError.notReady("\(server.ready)") }
        port = server.port
        caFile = ca
    }

    /// Sends one command and returns the reply. One command at a time: concurrent use is a bug.
    @discardableResult
    public func send(_ command: [String: Any]) async throws -> Reply {
        Reply(object: try await server.send(command))
    }

    /// A configuration trusting the origin's CA, with short bounds for tests.
    /// The I/O backend the tests run on: `HOTPOOL_TEST_IO_BACKEND` = `epoll` or `io_uring`
    /// (unset: `.automatic`). `make test` runs the suite once with each.
    public static var ioBackendUnderTest: IOBackendChoice {
        switch getenv("HOTPOOL_TEST_IO_BACKEND").map({ String(cString: $0) }) {
        case "epoll": .epoll
        case "io_uring": .ioUring
        default: .automatic
        }
    }

    /// The reactors the tests' pools run: `HOTPOOL_TEST_REACTORS` (unset: 1). `make test` runs
    /// the suite once more with 2.
    public static var reactorsUnderTest: ReactorCount {
        ReactorCount(getenv("HOTPOOL_TEST_REACTORS").flatMap { Int(String(cString: $0)) } ?? 1)
    }

    public func configuration() -> HotPoolConfiguration {
        var config = HotPoolConfiguration()
        config.ioBackend = Self.ioBackendUnderTest
        config.reactors = Self.reactorsUnderTest
        config.trustedCAFile = caFile
        config.connectTimeout = .seconds(5)
        config.requestTimeout = .seconds(5)
        return config
    }

    /// A pool for the origin's host with all its IPs set.
    public func pool(_ config: HotPoolConfiguration? = nil) throws -> HotConnPool {
        let pool = try HotConnPool(configuration: config ?? configuration())
        pool.setAddresses(ips, forHost: Self.hostName)
        return pool
    }

    /// The server's counters.
    public func stats() async throws -> OriginStats { OriginStats(try await send(["cmd": "stats"]).object) }

    /// Waits (bounded) until the server has seen `count` closed connections in all.
    public func waitClosed(_ count: Int, ip: String = "*", timeout: Double = 5) async throws -> Bool {
        try await send(["cmd": "wait_closed", "ip": ip, "count": count, "timeout": timeout]).object["ok"] as? Bool ?? false
    }

    /// Has the server close its idle connections on `ip` ("notify": close_notify then FIN, "fin":
    /// FIN only, "reset": RST), once at least `count` are idle there (waiting at most 5 s).
    /// Returns how many it closed.
    @discardableResult
    public func closeIdle(ip: String, mode: String, count: Int = 1) async throws -> Int {
        try await send(["cmd": "close_idle", "ip": ip, "mode": mode, "count": count]).object["closed"] as? Int ?? 0
    }

    /// Has the server send `data` on its idle connections on `ip`, once at least `count` are idle
    /// there (waiting at most 5 s). Returns on how many it sent.
    @discardableResult
    public func sendIdle(ip: String, data: String, count: Int = 1) async throws -> Int {
        try await send(["cmd": "send_idle", "ip": ip, "data": data, "count": count]).object["sent"] as? Int ?? 0
    }

    /// Has the server's connections on `ip` that a `deaf` rule stopped reading (they read no
    /// more, a request's body included) read again, everything until the client closes, once at
    /// least `count` are deaf there (waiting at most 5 s). Returns how many.
    @discardableResult
    public func hear(ip: String = "*", count: Int = 1) async throws -> Int {
        try await send(["cmd": "hear", "ip": ip, "count": count]).object["heard"] as? Int ?? 0
    }

    /// The last `last` requests the server read on `ip` ("*" = any), oldest first.
    public func recentRequests(ip: String = "*", last: Int) async throws -> [OriginRequest] {
        let requests = try await send(["cmd": "requests", "ip": ip, "last": last]).object["requests"] as? [[String: Any]]
        return (requests ?? []).compactMap { request in
            guard let path = request["path"] as? String, let connection = request["conn"] as? Int,
                  let ip = request["local"] as? String, let arrival = request["at"] as? Double
            else { return nil }
            let fields = (request["headers"] as? [[String]] ?? []).compactMap { $0.count == 2 ? (name: $0[0], value: $0[1]) : nil }
            return OriginRequest(path: path, connection: connection, headers: fields, ip: ip, arrival: arrival,
                                 bodyLength: request["body_len"] as? Int ?? 0, bodySHA256: request["body_sha256"] as? String ?? "")
        }
    }

    /// The paths of the last `last` requests the server read on `ip` ("*" = any), oldest first.
    public func recentPaths(ip: String = "*", last: Int) async throws -> [String] {
        try await recentRequests(ip: ip, last: last).map(\.path)
    }

    /// Waits (bounded) until the server has completed `count` TLS handshakes in all, and says
    /// whether it has exactly that many.
    public func waitHandshakes(_ count: Int, timeout: Double = 5) async throws -> Bool {
        let reply = try await send(["cmd": "wait_handshakes", "ip": "*", "count": count, "timeout": timeout]).object
        return reply["handshakes"] as? Int == count
    }

    /// The source addresses of the last `last` connections the server accepted on `ip` ("*" =
    /// any), oldest first (in accept order).
    public func recentSources(ip: String = "*", last: Int) async throws -> [String] {
        try await send(["cmd": "sources", "ip": ip, "last": last]).object["sources"] as? [String] ?? []
    }

    /// Has new connections on `ip` ("*" = every IP) handshake in `mode` ("good", "h2" for ALPN
    /// `h2` offered before `http/1.1`, "untrusted", "stall", "greet", "tickets").
    public func setTLSMode(_ mode: String, ip: String = "*") async throws {
        for target in ip == "*" ? ips : [ip] { try await send(["cmd": "tls", "ip": target, "mode": mode]) }
    }

    /// The HTTP/2 frames the server received on `ip` ("*" = any), the last `last` of them, oldest first.
    public func recentFrames(ip: String = "*", last: Int) async throws -> [HTTP2FrameRecord] {
        let frames = try await send(["cmd": "frames", "ip": ip, "last": last]).object["frames"] as? [[String: Any]] ?? []
        return frames.map(HTTP2FrameRecord.init)
    }

    /// Sets how the server answers `path` on `ip` ("*" = any); `times` limits it to the next N requests.
    public func rule(ip: String = "*", path: String = "*", _ action: [String: Any], times: Int? = nil) async throws {
        var command: [String: Any] = ["cmd": "rule", "ip": ip, "path": path, "action": action]
        if let times { command["times"] = times }
        try await send(command)
    }

    /// Stops the server (closing its stdin ends it) and waits for it to exit. Releasing the
    /// origin stops it too.
    /// Requests the origin once through `ip` as curl-impersonate's `target` (e.g. `chrome150`)
    /// does: Tests/Origin/impersonate.py, with PyPI curl-cffi. Returns when it exited.
    public func impersonate(_ target: String, ip: String) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", ScriptServer.path("impersonate.py"), target, Self.hostName, String(port), ip]
        let errors = Pipe()
        (process.standardOutput, process.standardError) = (FileHandle.nullDevice, errors)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw OriginError.failed("curl-impersonate \(target): \(message)")
        }
    }

    /// The Akamai HTTP/2 fingerprint of the newest HTTP/2 connection on `ip`, from the frames received.
    public func akamai(ip: String) async throws -> String {
        try await server.command(["cmd": "akamai", "ip": ip])["akamai"] as? String ?? ""
    }

    public func stop() { server.stop() }
}

/// One HTTP/2 frame the origin received, as parsed from the wire.
public struct HTTP2FrameRecord: Sendable {
    /// "SETTINGS", "WINDOW_UPDATE", "HEADERS", "PRIORITY", "DATA", "GOAWAY", ...
    public let type: String
    public let stream: Int
    public let flags: [String]
    /// The number of the connection it came on.
    public let connection: Int
    /// SETTINGS parameters in wire order.
    public let settings: [(id: Int, value: Int)]
    /// A WINDOW_UPDATE's increment.
    public let increment: Int?
    /// A HEADERS or PRIORITY frame's priority.
    public let priority: (exclusive: Bool, dependsOn: Int, weight: Int)?

    init(_ object: [String: Any]) {
        type = object["type"] as? String ?? ""
        stream = object["stream"] as? Int ?? -1
        flags = object["flags"] as? [String] ?? []
        connection = object["conn"] as? Int ?? 0
        settings = (object["settings"] as? [[Int]] ?? []).map { (id: $0[0], value: $0[1]) }
        increment = object["increment"] as? Int
        priority = (object["priority"] as? [String: Any]).map {
            (exclusive: $0["exclusive"] as? Bool ?? false, dependsOn: $0["depends_on"] as? Int ?? -1, weight: $0["weight"] as? Int ?? 0)
        }
    }
}

/// Drives the tests' DNS server (Tests/Origin/dns.py): authoritative for the names a test sets,
/// on 127.0.0.1 (UDP and TCP on one port), answering A and AAAA queries with TTL 1 and NXDOMAIN
/// for names it does not have, controlled like `Origin`. Names are compared case-insensitively,
/// a trailing dot ignored. The server stops when this object is stopped or released.
///
/// It runs under /usr/bin/python3, the interpreter Debian's python3-dnslib is installed for
/// (a pyenv `python3` earlier on PATH does not see it).
public final class DNSServer: @unchecked Sendable {
    /// The port it listens on, UDP and TCP, on 127.0.0.1.
    public let port: Int
    private let server: ScriptServer

    /// Starts the DNS server, with an empty table, and waits until it listens.
    public init() throws {
        server = try ScriptServer(executable: "/usr/bin/python3", arguments: [ScriptServer.path("dns.py")])
        port = server.port
    }

    /// Sets `name`'s records, replacing those it had: an A record for each IPv4 literal in `ips`,
    /// an AAAA record for each IPv6 one. With no `ips` the name exists without records (NOERROR,
    /// no answer). Throws `OriginError.failed` for an address that is not an IP literal.
    public func set(_ name: String, _ ips: [String]) async throws {
        try await server.command(["cmd": "set", "name": name, "ips": ips])
    }

    /// Removes `name` from the table: queries for it get NXDOMAIN.
    public func remove(_ name: String) async throws {
        try await server.command(["cmd": "remove", "name": name])
    }

    /// Closes the server's UDP and TCP sockets: queries get no answer (ICMP port unreachable, TCP
    /// connection refused) until `up()`.
    public func down() async throws {
        try await server.command(["cmd": "down"])
    }

    /// Binds the same port again after `down()`, answering from the table as before.
    public func up() async throws {
        try await server.command(["cmd": "up"])
    }

    /// How many queries for `name` (any type) the server has answered since it started.
    public func queries(_ name: String) async throws -> Int {
        let reply = try await server.command(["cmd": "queries", "name": name])
        guard let count = reply["queries"] as? Int else { throw OriginError.failed("\(reply)") }
        return count
    }

    /// Stops the server (closing its stdin ends it) and waits for it to exit. Releasing the
    /// object stops it too.
    public func stop() { server.stop() }
}

/// A test server script (Tests/Origin/*.py) run as a child process and driven by JSON lines: it
/// prints one `{"ready": true, "port": N, …}` line once it listens, answers each command line on
/// its stdin with one line on its stdout, and ends when its stdin closes. `Origin` and
/// `DNSServer` each own one; releasing it stops the script.
final class ScriptServer: @unchecked Sendable {
    /// The ready line, decoded.
    let ready: [String: Any]
    /// The port from the ready line.
    let port: Int
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var pending = Data()
    private var stopped = false
    /// Set while a command is out: exchanges are one at a time (replies come in command order).
    private let exchanging = Atomic<Bool>(false)

    /// The path of a script in Tests/Origin.
    static func path(_ script: String) -> String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tests/Origin").appendingPathComponent(script).path
    }

    /// Starts the script and waits for its ready line.
    init(executable: String, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var ready: [String: Any] = [:]
        Self.readLine(output, &pending).map { ready = (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] ?? [:] }
        guard ready["ready"] as? Bool == true, let port = ready["port"] as? Int else {
            process.terminate()
            throw OriginError.notReady("\(ready)")
        }
        self.ready = ready
        self.port = port
    }

    deinit { stop() }

    /// Sends one command and returns the reply. One command at a time: concurrent use is a bug.
    @discardableResult
    func send(_ command: [String: Any]) async throws -> [String: Any] {
        let line = try JSONSerialization.data(withJSONObject: command) + Data("\n".utf8)
        precondition(!exchanging.exchange(true, ordering: .acquiring), "\(process.arguments ?? []) used concurrently")
        defer { exchanging.store(false, ordering: .releasing) }
        // The pipe I/O blocks, so it runs off the caller's executor, on a dispatch worker: a
        // thread made per command would end in Foundation's run-loop teardown, which allocates
        // after ThreadSanitizer has retired the thread and crashes the sanitized test run.
        let data: Data? = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                self.input.fileHandleForWriting.write(line)
                continuation.resume(returning: Self.readLine(self.output, &self.pending))
            }
        }
        guard let data, let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw OriginError.noReply("\(command)")
        }
        return object
    }

    /// `send`, throwing `OriginError.failed` when the reply is an error.
    @discardableResult
    func command(_ command: [String: Any]) async throws -> [String: Any] {
        let reply = try await send(command)
        if let error = reply["error"] { throw OriginError.failed("\(command): \(error)") }
        return reply
    }

    /// Closes the script's stdin, which ends it, and waits for it to exit.
    func stop() {
        guard !stopped else { return }
        stopped = true
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        try? output.fileHandleForReading.close()
    }

    private static func readLine(_ pipe: Pipe, _ pending: inout Data) -> Data? {
        while true {
            if let newline = pending.firstIndex(of: 0x0A) {
                let line = pending[pending.startIndex..<newline]
                pending = Data(pending[(newline + 1)...])
                return Data(line)
            }
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            pending.append(chunk)
        }
    }
}

/// A test server (the origin or the DNS server) did not start, did not answer, or answered a
/// command with an error.
public enum OriginError: Error {
    /// It exited or printed something else before its ready line (what it printed).
    case notReady(String)
    /// It gave no reply to a command (the command).
    case noReply(String)
    /// It answered a command with an error (the command and the error).
    case failed(String)
}

/// A reply from the origin (a JSON object).
public struct Reply: @unchecked Sendable {
    /// The decoded object.
    public let object: [String: Any]
}

/// A request as the server read it.
public struct OriginRequest: Sendable {
    /// The path, without the query.
    public let path: String
    /// The server's number for the connection that carried it (1, 2, … in accept order, over
    /// all IPs): which connection a client used, as the server saw it.
    public let connection: Int
    /// The header fields, in the order received (HTTP/2: lower-case names, no pseudo-header fields).
    public let headers: [(name: String, value: String)]
    /// The server's IP it reached.
    public let ip: String
    /// When the server read it, in seconds on the server's monotonic clock (for spacings).
    public let arrival: Double
    /// The body bytes the server read (HTTP/1.1: by Content-Length or chunked; none under a
    /// "deaf" rule).
    public let bodyLength: Int
    /// The SHA-256 of those bytes, in lower-case hex (hashed as they arrived, never held).
    public let bodySHA256: String

    /// The value of the first field named `name` (ASCII case-insensitive).
    public func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
}

/// The origin's counters, per IP.
public struct OriginStats: Sendable {
    /// Completed TLS handshakes, requests read, connections ended, open now, TCP accepts.
    public let handshakes: [String: Int], requests: [String: Int], closed: [String: Int], open: [String: Int], accepted: [String: Int]

    init(_ o: [String: Any]) {
        handshakes = o["handshakes"] as? [String: Int] ?? [:]
        requests = o["requests"] as? [String: Int] ?? [:]
        closed = o["closed"] as? [String: Int] ?? [:]
        open = o["open"] as? [String: Int] ?? [:]
        accepted = o["accepted"] as? [String: Int] ?? [:]
    }

    public var totalHandshakes: Int { handshakes.values.reduce(0, +) }
    public var totalRequests: Int { requests.values.reduce(0, +) }
    public var totalClosed: Int { closed.values.reduce(0, +) }
    public var totalOpen: Int { open.values.reduce(0, +) }
}
