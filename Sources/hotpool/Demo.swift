import ArgumentParser
import Foundation
import HotPool
import OriginControl

/// `hotpool demo`: the pool's whole lifecycle against an embedded local TLS origin.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the pool's whole lifecycle against an embedded local TLS origin.",
        discussion: """
            Starts a TLS origin on 127.0.0.2-4 (and 127.0.0.5-7, a local DNS server and tinyproxy), then walks \
            through pre-warming, load spread over the IPs, a 403 that blacklists an IP, a server closing idle \
            connections, failed health checks, a DNS change, idle expiry, close with a connection leased, \
            HTTP/2, decoded and streamed bodies, and a proxy. Exits 1 if any figure does not balance.
            """)

    func run() async throws {
        do {
            try await Self.demo()
        } catch {
            print("demo failed: \(error)")
            throw ExitCode.failure
        }
    }

    static func demo() async throws {
        let origin = try Origin(ips: ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        defer { origin.stop() }
        let dns = try DNSServer()
        defer { dns.stop() }
        try await dns.set(Origin.hostName, origin.ips)
        print("origin: \(Origin.hostName) on \(origin.ips.joined(separator: ", ")) port \(origin.port), in DNS at 127.0.0.1:\(dns.port)")
        var config = origin.configuration()
        config.dnsServers = ["127.0.0.1:\(dns.port)"]
        config.maxConnectionsPerHost = 6
        // Connections take turns (the default, LIFO, would keep reusing the latest one), so each
        // IP's misbehaviour below meets the pool.
        config.idleOrder = .fifo
        config.idleTimeout = .milliseconds(800)
        config.cleanupInterval = .milliseconds(200)
        config.healthCheckPath = "/ping"
        config.healthCheckInterval = .milliseconds(250)
        let pool = try HotConnPool(configuration: config)
        let base = "https://\(Origin.hostName):\(origin.port)"

        step("pre-warm 6 connections (the name resolved through DNS on the reactor)")
        let warm = try await pool.prewarm(host: Origin.hostName, port: origin.port, count: 6)
        print("  \(warm) idle before any request; server saw \(try await origin.stats().totalRequests) requests")

        step("300 requests, 6 at a time")
        let perIP = try await withThrowingTaskGroup(of: String.self) { group in
            var perIP: [String: Int] = [:]
            for i in 0..<300 {
                if i >= 6, let ip = try await group.next() { perIP[ip, default: 0] += 1 }
                group.addTask {
                    try await pool.withConnection(host: Origin.hostName, port: origin.port) { connection in
                        let response = try await connection.roundTrip(
                            HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: "/item/\(i)"))
                        guard response.head.status == .ok else {
                            throw HotPoolError.validationFailed(
                                host: connection.targetHost, ip: connection.targetIP, status: response.head.status.code)
                        }
                        return connection.targetIP
                    }
                }
            }
            return try await group.reduce(into: perIP) { $0[$1, default: 0] += 1 }
        }
        let server = try await origin.stats()
        print("  requests per IP: \(perIP.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        print("  server: \(server.totalRequests) requests over \(server.totalHandshakes) TLS handshakes")

        step("\(origin.ips[0]) starts answering 403: validation blacklists it")
        try await origin.rule(ip: origin.ips[0], path: "/health", ["type": "status", "status": 403])
        // Each validation takes the longest-idle connection and puts it back last, so within six
        // (the pool's connections) one meets the 403.
        for _ in 0..<6 where await pool.stats().closedByReason[.validationFailed] == 0 {
            let connection = try await pool.getConnection(validating: "\(base)/health")
            print("  validated connection on \(connection.targetIP)")
            pool.putConnection(connection)
        }
        print("  rejected by validation: \(await pool.stats().closedByReason[.validationFailed] ?? 0)")

        step("\(origin.ips[1]) closes its idle connections")
        let closed = try await origin.closeIdle(ip: origin.ips[1], mode: "notify")
        print("  server closed \(closed) idle connections")
        try await Task.sleep(for: .milliseconds(200))

        step("\(origin.ips[2]) starts failing health checks (500 on /ping)")
        try await origin.rule(ip: origin.ips[2], path: "/ping", ["type": "status", "status": 500])
        try await Task.sleep(for: .milliseconds(600))
        let checked = await pool.stats()
        print("  destroyed by failed health checks: \(checked.closedByReason[.healthCheckFailed] ?? 0)")
        try await origin.send(["cmd": "clear_rules"])
        for i in 0..<6 {
            _ = try await pool.withConnection(host: Origin.hostName, port: origin.port) { connection in
                try await connection.roundTrip(HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: "/more/\(i)"))
            }
        }
        print("  6 more requests; \(await pool.stats().idleConnections) connections idle")

        step("DNS stops giving \(origin.ips[1])")
        try await dns.set(Origin.hostName, [origin.ips[0], origin.ips[2]])
        let addresses = try await pool.refreshAddresses(host: Origin.hostName, port: origin.port)
        print("  addresses now \(addresses.joined(separator: ", ")); idle connections to \(origin.ips[1]) closed: "
              + "\(await pool.stats().closedByReason[.addressRemoved] ?? 0)")
        for entry in await pool.ipStats(forHost: Origin.hostName).sorted(by: { $0.ip < $1.ip }) {
            let state = entry.inRotation ? "in rotation" : entry.blacklistReason.map { "blacklisted (\($0))" } ?? "out of rotation"
            print("  \(entry.ip): \(entry.requests) requests, \(entry.failures) failures, \(entry.openConnections) open, \(state)")
        }

        step("idle connections expire (idleTimeout 800 ms)")
        try await Task.sleep(for: .milliseconds(1500))
        let idle = await pool.stats()
        print("  open connections now: \(idle.totalConnections)")

        step("close the pool")
        let leased = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        print("  closing with one connection still leased (\(leased.targetIP))")
        try await pool.close()
        pool.putConnection(leased)  // a late put: ignored

        let stats = await pool.stats()
        let final = try await origin.stats()
        print("\nfinal pool stats")
        print("  total \(stats.totalConnections)  active \(stats.activeConnections)  idle \(stats.idleConnections)")
        print("  requests \(stats.totalRequests)  failed \(stats.failedRequests)  success rate \(String(format: "%.3f", stats.successRate))")
        print("  connections opened \(stats.connectionsOpened)  stale handle uses \(stats.staleHandleUses)")
        print("\n  destroyed by reason")
        for reason in CloseReason.allCases {
            print("    \(String(describing: reason).padding(toLength: 18, withPad: " ", startingAt: 0)) \(stats.closedByReason[reason] ?? 0)")
        }
        let destroyed = stats.closedByReason.values.reduce(0, +)
        print("    \("total".padding(toLength: 18, withPad: " ", startingAt: 0)) \(destroyed)")
        _ = try await origin.waitClosed(final.totalHandshakes)
        let server2 = try await origin.stats()
        print("\n  server saw \(server2.totalHandshakes) handshakes and \(server2.totalClosed) closed connections")
        guard destroyed == stats.connectionsOpened, server2.totalOpen == 0 else {
            throw DemoError.unbalanced("opened \(stats.connectionsOpened), destroyed \(destroyed), server open \(server2.totalOpen)")
        }
        try await http2()
        try await bodies()
        try await throughProxy()
    }

    /// Bodies: a coded answer decoded as it arrives, and a 256 MiB one read as a stream and sent
    /// straight back up as another request's body, the process's memory staying flat.
    static func bodies() async throws {
        step("bodies: a brotli-coded answer decoded, and 256 MiB streamed down and up again (a third origin, on 127.0.0.7)")
        let origin = try Origin(ips: ["127.0.0.7"])
        defer { origin.stop() }
        let textBytes = 200_000, bulkBytes = 256 << 20
        try await origin.rule(path: "/coded", ["type": "status", "text": textBytes, "encodings": ["br"]])
        try await origin.rule(path: "/bulk", ["type": "bulk", "size": bulkBytes])
        let pool = try origin.pool()
        try await pool.withConnection(host: Origin.hostName, port: origin.port) { connection in
            let coded = try await connection.roundTrip(HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: "/coded"))
            let raw = try await connection.roundTrip(HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: "/coded"),
                                                     decompress: false)
            print("  \(raw.body.count) bytes came (Content-Encoding: \(coded.head.headerFields[.contentEncoding] ?? "none")), "
                  + "\(coded.body.count) handed over decoded (\(coded.decodedContentCodings.map(\.rawValue).joined(separator: ", ")))")
            guard coded.body.count == textBytes, coded.decodedContentCodings == [.br] else {
                throw DemoError.unbalanced("the coded body was not decoded whole")
            }
            let before = peakResidentBytes()
            let streamed = try await connection.streamingRoundTrip(
                HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: "/bulk"))
            // Each chunk read is sent on as it comes, on a second connection: a relay.
            let upload = try await pool.getConnection(host: Origin.hostName, port: origin.port)
            defer { pool.putConnection(upload) }
            let answer = try await upload.roundTrip(HTTPRequest(method: .post, scheme: "https", authority: Origin.hostName, path: "/relayed"),
                                                    body: streamed.body)
            let relayed = try await origin.recentRequests(last: 1).first { $0.path == "/relayed" }
            print("  streamed \(bulkBytes >> 20) MiB down and up again (\(upload.httpVersion), answered \(answer.head.status.code)); "
                  + "the origin read \((relayed?.bodyLength ?? 0) >> 20) MiB, SHA-256 \(relayed?.bodySHA256.prefix(16) ?? "none")…; "
                  + "the process's peak memory grew by \((peakResidentBytes() - before) >> 20) MiB")
            guard relayed?.bodyLength == bulkBytes else { throw DemoError.unbalanced("relayed \(relayed?.bodyLength ?? 0) of \(bulkBytes) bytes") }
        }
        try await pool.close()
    }

    /// This process's peak resident memory so far (VmHWM), in bytes.
    static func peakResidentBytes() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return (line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
    }

    /// Proxies: the same requests through a local tinyproxy (HTTP CONNECT), with the preset's
    /// ClientHello inside the tunnel; the proxy's ledger; a dead proxy is the proxy's failure.
    static func throughProxy() async throws {
        step("through a local proxy: tinyproxy (HTTP CONNECT) on 127.0.0.1, then the proxy dies")
        let origin = try Origin(ips: ["127.0.0.6"])
        defer { origin.stop() }
        let proxy = try TinyProxy()
        defer { proxy.stop() }
        var config = origin.configuration()
        config.proxies = [try Proxy(proxy.url)]
        config.maxRetries = 0
        let pool = try origin.pool(config)
        for i in 0..<20 {
            let request = HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: "/proxied/\(i)")
            guard try await pool.execute(request, host: Origin.hostName, port: origin.port).head.status == .ok else {
                throw DemoError.unbalanced("a request through the proxy was not answered 200")
            }
        }
        let hello = try await origin.send(["cmd": "hellos", "ip": origin.ips[0], "last": 1]).object["hellos"] as? [[String: Any]]
        print("  20 requests answered over \(proxy.tunnelsOpened()) tunnel; the origin saw them from "
              + "\(try await origin.recentSources(last: 1).joined()), JA4 \(hello?.last?["ja4"] as? String ?? "?")")
        proxy.kill()
        // Its tunnel closed: the pool reads that on the idle connection and destroys it.
        for _ in 0..<100 where await pool.stats().totalConnections > 0 { try await Task.sleep(for: .milliseconds(10)) }
        do {
            _ = try await pool.execute(HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: "/"),
                                       host: Origin.hostName, port: origin.port)
        } catch {
            print("  after the proxy died: \(error)")
        }
        for ledger in await pool.proxyStats() {
            print("  \(ledger.proxy): \(ledger.dials) dials, \(ledger.failedDials) failed, \(ledger.openConnections) open, "
                  + "requests through it per IP \(ledger.targets.mapValues(\.requests))")
        }
        let failures = await pool.ipStats(forHost: Origin.hostName).map(\.failures).reduce(0, +)
        print("  failures charged to the origin's IP: \(failures)")
        try await pool.close()
        guard failures == 0 else { throw DemoError.unbalanced("a proxy failure was charged to the target IP") }
    }

    /// HTTP/2: a second origin speaks h2 and holds each answer 100 ms; 64 callers at once share two
    /// connections, one stream each.
    static func http2() async throws {
        step("HTTP/2: 64 requests at once, at most 2 connections (a second origin, on 127.0.0.5, speaking h2)")
        let origin = try Origin(ips: ["127.0.0.5"])
        defer { origin.stop() }
        try await origin.setTLSMode("h2")
        try await origin.rule(["type": "status", "status": 200, "body": "ok", "delay_ms": 100])
        var config = origin.configuration()
        config.maxConnectionsPerHost = 2
        let pool = try origin.pool(config)
        let answered = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<64 {
                group.addTask {
                    let request = HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: "/h2/\(i)")
                    return try await pool.execute(request, host: Origin.hostName, port: origin.port).head.status.code
                }
            }
            return try await group.reduce(into: 0) { count, status in if status == 200 { count += 1 } }
        }
        let versions = Set(await pool.connectionStats().map { $0.httpVersion.rawValue })
        let peaks = try await origin.send(["cmd": "h2_peaks"]).object["peaks"] as? [String: Int] ?? [:]
        let server = try await origin.stats()
        print("  \(answered) of 64 answered 200 over \(server.totalHandshakes) connections (\(versions.sorted().joined(separator: ", "))); "
              + "streams open at once per connection at the server: \(peaks.values.sorted(by: >).map(String.init).joined(separator: ", "))")
        try await pool.close()
        let stats = await pool.stats()
        _ = try await origin.waitClosed(server.totalHandshakes)
        let after = try await origin.stats()
        let destroyed = stats.closedByReason.values.reduce(0, +)
        print("  pool closed: \(destroyed) connections destroyed (\(stats.closedByReason[.poolClosed] ?? 0) poolClosed), server has \(after.totalOpen) open")
        guard answered == 64, destroyed == stats.connectionsOpened, after.totalOpen == 0 else {
            throw DemoError.unbalanced("HTTP/2: answered \(answered), opened \(stats.connectionsOpened), destroyed \(destroyed)")
        }
    }

    static func step(_ title: String) { print("\n== \(title)") }
}

enum DemoError: Error {
    case unbalanced(String)
}
