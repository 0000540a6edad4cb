import CShims
import Foundation
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// HTTP/2 connections: multiplexing, stream limits, GOAWAY, and the seed's destruction paths,
/// against the test origin serving h2 (hyper-h2) and nginx.
@Suite struct HTTP2Tests {
    /// The most streams each of the origin's h2 connections had open at once, by connection number.
    private static func peaks(_ origin: Origin) async throws -> [Int] {
        let peaks = try await origin.send(["cmd": "h2_peaks"]).object["peaks"] as? [String: Int] ?? [:]
        return peaks.sorted { Int($0.key)! < Int($1.key)! }.map(\.value)
    }

    @Test func concurrentRequestsShareTwoConnectionsWithinTheServersStreamLimit() async throws {
        let (origin, baseConfig) = try await http2Origin()
        try await origin.send(["cmd": "h2_settings", "max_concurrent_streams": 10])
        try await origin.rule(["type": "status", "status": 200, "body": "slow", "delay_ms": 150])
        var config = baseConfig
        config.maxConnectionsPerHost = 2
        let pool = try origin.pool(config)
        let bodies = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for index in 0..<64 {
                group.addTask {
                    try await pool.execute(get("/m\(index)"), host: Origin.hostName, port: origin.port).body
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(bodies.count == 64 && bodies.allSatisfy { $0 == Array("slow".utf8) })
        let stats = try await origin.stats()
        #expect(stats.accepted.values.reduce(0, +) <= 2, "at most 2 connections at the server")
        let peaks = try await Self.peaks(origin)
        #expect(peaks.allSatisfy { $0 <= 10 }, "the server's limit of 10 streams held: \(peaks)")
        // Both connections carried streams: the pool leased each only as far as the server's limit.
        #expect(peaks.count == 2 && peaks.allSatisfy { $0 > 1 }, "streams ran at once on both connections: \(peaks)")
        let poolStats = await pool.stats()
        #expect(poolStats.totalRequests == 64 && poolStats.failedRequests == 0)
        #expect(await pool.connectionStats().allSatisfy { $0.httpVersion == .http2 })
        try await pool.close()
    }

    /// A RST_STREAM with NO_ERROR after a response head and part of its body, before END_STREAM,
    /// cuts the response short: the request fails as a reset (it is no answer), and the
    /// connection carries the next request.
    @Test func aResetWithNoErrorBeforeTheEndOfTheResponseIsNoAnswer() async throws {
        let (origin, pool, connection) = try await StreamingTests.connect(http2: true)
        try await origin.rule(path: "/cut", ["type": "status", "body": "abc", "hold_end": true, "reset_code": 0])
        await #expect(throws: HotPoolError.streamReset(host: Origin.hostName, ip: origin.ips[0], reason: "NO_ERROR")) {
            try await connection.roundTrip(get("/cut"))
        }
        #expect(try await connection.roundTrip(get("/next")).body == Array("ok".utf8))
        pool.putConnection(connection)
        #expect(await pool.stats().failedRequests == 1)
        try await pool.close()
    }

    @Test func goAwayMidLoadLosesNoRequestAndDestroysTheConnectionOnce() async throws {
        let (origin, baseConfig) = try await http2Origin()
        try await origin.rule(["type": "status", "status": 200, "body": "ok", "delay_ms": 300])
        try await origin.rule(path: "/goaway", ["type": "goaway", "refuse": true], times: 1)
        var config = baseConfig
        config.maxConnectionsPerHost = 1
        let pool = try origin.pool(config)
        let execute: @Sendable (String) async -> (String, Result<HotResponse, any Error>) = { path in
            do { return (path, .success(try await pool.execute(get(path), host: Origin.hostName, port: origin.port))) }
            catch { return (path, .failure(error)) }
        }
        try await withThrowingTaskGroup(of: (String, Result<HotResponse, any Error>).self) { group in
            // Ten requests the server holds for 300 ms, then one it answers with GOAWAY naming the
            // stream before it as the last, then ten more: the server processes the first ten only.
            for index in 0..<10 { group.addTask { await execute("/early\(index)") } }
            #expect(try await eventually { try await Self.peaks(origin).first ?? 0 >= 10 })
            group.addTask { await execute("/goaway") }
            #expect(try await eventually { try await Self.peaks(origin).first ?? 0 >= 11 })
            for index in 0..<10 { group.addTask { await execute("/late\(index)") } }
            var answered = 0
            for try await (path, result) in group {
                #expect((try? result.get())?.head.status == .ok, "\(path): \(result)")
                answered += 1
            }
            #expect(answered == 21)
        }
        // Each request was processed exactly once: the early ones on the first connection, the
        // refused ones retried on the second.
        let requests = try await origin.recentRequests(last: 100)
        #expect(Dictionary(grouping: requests, by: \.path).values.allSatisfy { $0.count == 1 }, "\(requests.map(\.path))")
        #expect(requests.count == 21)
        #expect(Set(requests.filter { $0.path.hasPrefix("/early") }.map(\.connection)) == [1])
        #expect(Set(requests.filter { !$0.path.hasPrefix("/early") }.map(\.connection)) == [2])
        let stats = await pool.stats()
        #expect(stats.closedByReason[.remoteClosed] == 1, "\(stats.closedByReason)")
        #expect(stats.closedByReason.filter { $0.key != .remoteClosed }.values.allSatisfy { $0 == 0 })
        #expect(stats.totalRequests == 21 && stats.failedRequests == 0, "\(stats.totalRequests) \(stats.failedRequests)")
        #expect(try await origin.waitClosed(1))
        try await pool.close()
        #expect(try await origin.waitClosed(2))
    }

    // MARK: the seed's destruction paths, on HTTP/2 connections

    @Test func validationFailureDestroysAndA403Blacklists() async throws {
        let (origin, config) = try await http2Origin()
        let pool = try origin.pool(config)
        try await origin.rule(ip: origin.ips[0], path: "/check", ["type": "status", "status": 403])
        try await origin.rule(ip: origin.ips[1], path: "/check", ["type": "status", "status": 500], times: 1)
        let first = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        let second = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[1])
        pool.putConnection(first)
        pool.putConnection(second)
        let fds = openFDCount()
        // The validation takes the idle connections in turn (the newest first): 500, then 403.
        let validated = try await pool.getConnection(validating: "https://\(Origin.hostName):\(origin.port)/check")
        #expect(validated.targetIP != origin.ips[0] && validated.httpVersion == .http2)
        let stats = await pool.stats()
        #expect(stats.closedByReason[.validationFailed] == 2 && stats.closedByReason.values.reduce(0, +) == 2, "\(stats.closedByReason.filter { $0.value > 0 })")
        #expect(await pool.blacklistedIPs(forHost: Origin.hostName).map(\.ip) == [origin.ips[0]])
        #expect(try await origin.waitClosed(2))
        #expect(openFDCount() == fds - 1, "two closed, one opened")
        #expect(try await origin.recentRequests(last: 3).map(\.connection) == [2, 1, 3], "both idle connections validated, then a new one")
        pool.putConnection(validated)
        try await pool.close()
        #expect(hp_h2_live_sessions() == 0)
    }

    @Test func networkErrorThenPutDestroysAsUnhealthyOnReturn() async throws {
        try await expectDestruction(.unhealthyOnReturn, http2: true, setup: { origin in
            try await origin.rule(path: "/reset", ["type": "reset"])
        }) { pool, _, connection in
            await #expect(throws: HotPoolError.self) { _ = try await connection.roundTrip(get("/reset")) }
            let stats = await pool.stats()
            #expect(stats.failedRequests == 1 && stats.healthyConnections == 0)
            await #expect(throws: HotPoolError.self) { _ = try await connection.roundTrip(get("/after")) }
            pool.putConnection(connection)
        }
    }

    @Test(arguments: [("notify", CloseReason.remoteClosed), ("fin", .remoteClosed), ("reset", .networkError), ("goaway", .remoteClosed)])
    func serverCloseWhileIdle(mode: String, reason: CloseReason) async throws {
        try await expectDestruction(reason, http2: true) { pool, origin, connection in
            _ = try await connection.roundTrip(get())
            pool.putConnection(connection)
            #expect(await pool.stats().idleConnections == 1)
            #expect(try await origin.closeIdle(ip: origin.ips[0], mode: mode) == 1)
        }
    }

    @Test func goAwayAfterAnAnswerClosesTheSocketBeforeThePut() async throws {
        try await expectDestruction(.remoteClosed, http2: true, setup: { origin in
            try await origin.rule(path: "/bye", ["type": "goaway", "status": 200, "body": "bye"])
        }) { pool, origin, connection in
            let response = try await connection.roundTrip(get("/bye"))
            #expect(response.body == Array("bye".utf8))
            // No exchange is under way, so the socket closes now; the lease ends with the put.
            #expect(try await origin.waitClosed(1, ip: origin.ips[0]))
            #expect(await pool.stats().healthyConnections == 0)
            await #expect(throws: HotPoolError.connectionClosed(host: Origin.hostName, ip: origin.ips[0])) {
                _ = try await connection.roundTrip(get("/after"))
            }
            pool.putConnection(connection)
        }
    }

    @Test func idleTimeoutFromTheCleanupTimer() async throws {
        try await expectDestruction(.idleTimeout, http2: true, config: {
            $0.idleTimeout = .milliseconds(200)
            $0.cleanupInterval = .milliseconds(100)
        }) { pool, _, connection in
            pool.putConnection(connection)
        }
    }

    @Test func maxLifetimeDestroysOnTheLastReturn() async throws {
        try await expectDestruction(.maxLifetime, http2: true) { pool, origin, connection in
            // A second caller shares the connection; the expired connection goes when both returned.
            let second = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
            #expect(await pool.stats().totalConnections == 1)
            #expect(await pool.cleanupExpiredConnections(maxLifetime: .zero) == 0, "leased: marked, not destroyed")
            pool.putConnection(connection)
            #expect(await pool.stats().totalConnections == 1)
            #expect(try await second.roundTrip(get()).head.status == .ok, "its lease still works")
            pool.putConnection(second)
        }
    }

    @Test func removeEndsTheCallersLeaseAndDestroysWithTheLast() async throws {
        try await expectDestruction(.removed, http2: true) { pool, origin, connection in
            let second = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
            pool.removeConnection(connection)
            await #expect(throws: HotPoolError.staleConnection) { _ = try await connection.roundTrip(get()) }
            #expect(await pool.stats().totalConnections == 1, "the other caller's lease keeps it until returned")
            pool.putConnection(second)
        }
    }

    @Test func aConnectionThatMustGoTakesNoNewStreamsAndGoesWithItsLastLease() async throws {
        let (origin, config) = try await http2Origin()
        let pool = try origin.pool(config)
        let first = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        let second = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        #expect(await pool.stats().totalConnections == 1, "two streams of one connection")
        let fds = openFDCount()
        try pool.blacklist(ip: origin.ips[0], forHost: Origin.hostName, for: .seconds(60))
        // A new caller gets a new connection, to another IP.
        let third = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        #expect(third.targetIP != origin.ips[0])
        #expect(await pool.stats().totalConnections == 2)
        pool.putConnection(first)
        #expect(try await second.roundTrip(get()).head.status == .ok, "the other lease still works")
        var stats = await pool.stats()
        #expect(stats.closedByReason[.blacklisted] == 0 && stats.totalConnections == 2, "a lease remains")
        pool.putConnection(second)
        stats = await pool.stats()
        #expect(stats.closedByReason[.blacklisted] == 1 && stats.closedByReason.values.reduce(0, +) == 1)
        #expect(stats.totalConnections == 1)
        #expect(try await origin.waitClosed(1, ip: origin.ips[0]))
        #expect(openFDCount() == fds, "one closed, one opened")
        pool.putConnection(third)
        try await pool.close()
        #expect(hp_h2_live_sessions() == 0)
    }

    @Test func poolCloseWithStreamsOpenFailsThemAndClosesOnce() async throws {
        let (origin, config) = try await http2Origin()
        try await origin.rule(path: "/stall", ["type": "stall"])
        let fds = openFDCount()
        let pool = try origin.pool(config)
        let first = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        let second = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        #expect(await pool.stats().totalConnections == 1, "two leases of one connection")
        async let stalled: HotPoolError? = {
            do { _ = try await first.roundTrip(get("/stall")) } catch { return error as? HotPoolError }
            return nil
        }()
        #expect(try await eventually { try await Self.peaks(origin).first == 1 })
        try await pool.close()
        #expect(await stalled == .poolClosed)
        let stats = await pool.stats()
        #expect(stats.closedByReason[.poolClosed] == 1 && stats.closedByReason.values.reduce(0, +) == 1 && stats.totalConnections == 0)
        #expect(try await origin.waitClosed(1))
        await #expect(throws: HotPoolError.poolClosed) { _ = try await second.roundTrip(get()) }
        #expect(openFDCount() == fds)
        #expect(hp_h2_live_sessions() == 0 && hp_tls_live_objects() == 0)
    }

    // MARK: what a server can make the pool spend, and bytes nobody asked for

    @Test func aResponseOverALimitFailsItsStreamOnlyAndTheConnectionGoesOn() async throws {
        let (origin, baseConfig) = try await http2Origin()
        var config = baseConfig
        config.maxResponseBodyBytes = 1000
        config.maxResponseHeaderFields = 5
        try await origin.rule(path: "/big", ["type": "status", "status": 200, "body_size": 5000])
        try await origin.rule(path: "/fields", ["type": "status", "status": 200, "headers": (0..<10).map { ["x-f\($0)", "v"] }])
        let pool = try origin.pool(config)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        await #expect(throws: HotPoolError.responseBodyTooLarge(host: Origin.hostName, ip: connection.targetIP, limit: 1000)) {
            _ = try await connection.roundTrip(get("/big"))
        }
        await #expect(throws: HotPoolError.tooManyResponseHeaderFields(host: Origin.hostName, ip: connection.targetIP, limit: 5)) {
            _ = try await connection.roundTrip(get("/fields"))
        }
        #expect(try await connection.roundTrip(get("/small")).body == Array("ok".utf8), "the stream was reset, not the connection")
        let stats = await pool.stats()
        #expect(stats.failedRequests == 2 && stats.healthyConnections == 1 && stats.connectionsOpened == 1)
        pool.putConnection(connection)
        try await pool.close()
    }

    @Test func bytesThatAreNotHTTP2OnAnIdleConnectionDestroyItOnce() async throws {
        try await expectDestruction(.networkError, http2: true, cause: { pool, origin, connection in
            pool.putConnection(connection)
            let sent = try await origin.sendIdle(ip: origin.ips[0], data: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
            #expect(sent == 1)
        })
    }

    // MARK: PING health checks

    @Test func idleConnectionsAreCheckedWithPingsAndKept() async throws {
        let (origin, baseConfig) = try await http2Origin()
        var config = baseConfig
        config.pingsIdleHTTP2Connections = true
        config.healthCheckInterval = .milliseconds(100)
        let pool = try origin.pool(config)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        pool.putConnection(connection)
        let checkedTwice = try await eventually {
            try await origin.recentFrames(ip: origin.ips[0], last: 100).filter { $0.type == "PING" && !$0.flags.contains("ACK") }.count >= 2
        }
        #expect(checkedTwice)
        let stats = await pool.stats()
        #expect(stats.idleConnections == 1 && stats.closedByReason.values.reduce(0, +) == 0)
        #expect(try await origin.stats().requests.values.reduce(0, +) == 0, "no request sent")
        try await pool.close()
    }

    @Test func aPingNotAcknowledgedInTimeFailsTheHealthCheck() async throws {
        try await expectDestruction(.healthCheckFailed, http2: true, config: {
            $0.pingsIdleHTTP2Connections = true
            $0.healthCheckInterval = .milliseconds(100)
            $0.validationTimeout = .milliseconds(300)
        }, cause: { pool, origin, connection in
            pool.putConnection(connection)
            let muted = try await origin.closeIdle(ip: origin.ips[0], mode: "mute")
            #expect(muted == 1)
        })
    }
}
