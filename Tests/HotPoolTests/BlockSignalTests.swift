import CShims
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// Block signals from ordinary traffic against the real origin, over HTTP/1.1 and HTTP/2: one IP
/// answers every request with a block status, and callers' `execute`s and round trips carry them.
@Suite struct BlockSignalTests {
    private static let host = Origin.hostName
    private static let threshold = 3
    /// Longer than the test: the blacklisting does not run out under it.
    private static let blacklistTimeout = Duration.seconds(120)

    /// The traffic both tests send, with `blocked` answering `status` to everything: a connection
    /// to it held, a second lease of it (a second connection over HTTP/1.1, put back idle; a
    /// second stream of the same one over HTTP/2), then `threshold` - 1 `execute`s (on the idle
    /// connection, or a stream of the held one: the only ones) and one round trip on the held
    /// connection, all answered `status`. Returns the held connection.
    private func blockedTraffic(_ pool: HotConnPool, _ origin: Origin, blocked: String, status: Int, http2: Bool) async throws -> PooledConnection {
        try await origin.rule(ip: blocked, ["type": "status", "status": status])
        let held = try await pool.getConnection(host: Self.host, port: origin.port, ip: blocked)
        #expect(held.httpVersion == (http2 ? .http2 : .http1_1))
        pool.putConnection(try await pool.getConnection(host: Self.host, port: origin.port, ip: blocked))
        for index in 1..<Self.threshold {
            let response = try await pool.execute(get("/page\(index)"), host: Self.host, port: origin.port)
            #expect(response.head.status.code == status, "answered by the blocking IP")
        }
        #expect(try await held.roundTrip(get("/last")).head.status.code == status)
        return held
    }

    @Test(arguments: zip([false, true], [403, 429]))
    func blockAnswersFromOrdinaryTrafficBlacklistTheirIPWhenConfigured(http2: Bool, status: Int) async throws {
        let baseline = openFDCount()
        let origin = try Origin()
        if http2 { try await origin.setTLSMode("h2") }
        var config = origin.configuration()
        config.blockSignals = BlockSignalPolicy(threshold: Self.threshold, window: .seconds(60))
        config.blacklistTimeout = Self.blacklistTimeout
        let pool = try origin.pool(config)
        let withPool = openFDCount()
        let blocked = origin.ips[0]
        let held = try await blockedTraffic(pool, origin, blocked: blocked, status: status, http2: http2)

        let entries = await pool.blacklistedIPs(forHost: Self.host)
        #expect(entries.map(\.ip) == [blocked] && entries.map(\.reason) == [.blocked], "\(entries)")
        let stats = await pool.ipStats(forHost: Self.host)
        let entry = try #require(stats.first { $0.ip == blocked })
        #expect(entry.blockAnswers == Self.threshold && entry.recentBlockAnswers == 0 && !entry.inRotation && entry.blacklistReason == .blocked)
        #expect(stats.filter { $0.ip != blocked }.allSatisfy { $0.blockAnswers == 0 && $0.inRotation })
        await #expect(throws: HotPoolError.addressBlacklisted(host: Self.host, ip: blocked)) {
            try await pool.getConnection(host: Self.host, port: origin.port, ip: blocked)
        }
        // Over HTTP/1.1 the idle connection to it is closed at once; the held one stays until returned.
        let idleClosed = http2 ? 0 : 1
        #expect(await eventually { await pool.stats().closedByReason[.blacklisted] == idleClosed })
        // The other IPs serve, and nothing more goes to the blocked one.
        for index in 0..<Self.threshold {
            let response = try await pool.execute(get("/after\(index)"), host: Self.host, port: origin.port)
            #expect(response.head.status.code == 200)
        }
        #expect(try await origin.stats().requests[blocked] == Self.threshold)

        pool.putConnection(held)
        let closed = idleClosed + 1
        #expect(await eventually { await pool.stats().closedByReason[.blacklisted] == closed })
        let after = await pool.stats()
        #expect(after.closedByReason.values.reduce(0, +) == closed, "each destroyed once, in one reason: \(after.closedByReason.filter { $0.value > 0 })")
        #expect(try await origin.waitClosed(closed, ip: blocked), "the server saw its connections closed")
        #expect(try await serverSeesThePoolsConnections(pool, origin))
        #expect(await pool.ipStats(forHost: Self.host).first { $0.ip == blocked }?.openConnections == 0)
        #expect(await eventually { openFDCount() == withPool + (await pool.stats().totalConnections) }, "its fds closed")
        try await pool.close()
        #expect(openFDCount() == baseline)
        #expect(hp_tls_live_objects() == 0)
        #expect(hp_h2_live_sessions() == 0)
    }

    @Test(arguments: zip([false, true], [403, 429]))
    func withoutAPolicyTheSameTrafficBlacklistsNothing(http2: Bool, status: Int) async throws {
        let origin = try Origin()
        if http2 { try await origin.setTLSMode("h2") }
        let pool = try origin.pool()
        let blocked = origin.ips[0]
        for _ in 0..<2 {
            pool.putConnection(try await blockedTraffic(pool, origin, blocked: blocked, status: status, http2: http2))
        }
        #expect(await pool.blacklistedIPs(forHost: Self.host).isEmpty)
        let stats = await pool.ipStats(forHost: Self.host)
        #expect(stats.allSatisfy { $0.blockAnswers == 0 && $0.recentBlockAnswers == 0 && $0.inRotation }, "\(stats)")
        let after = await pool.stats()
        #expect(after.closedByReason.values.reduce(0, +) == 0, "\(after.closedByReason.filter { $0.value > 0 })")
        #expect(try await origin.stats().requests[blocked] == 2 * Self.threshold)
        // Its connections are kept and serve on.
        let again = try await pool.getConnection(host: Self.host, port: origin.port, ip: blocked)
        #expect(try await again.roundTrip(get("/again")).head.status.code == status)
        pool.putConnection(again)
        #expect(await pool.stats().connectionsOpened == (http2 ? 1 : 2))
        try await pool.close()
    }

    @Test func aPoolRefusesAPolicyOutOfRange() async throws {
        var config = HotPoolConfiguration()
        config.blockSignals = BlockSignalPolicy(threshold: 0)
        try await expectInvalidConfiguration(config, saying: "blockSignals.threshold must be within 1...256, got 0")
    }
}
