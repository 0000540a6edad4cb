import Foundation
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// The health checker against the real origin: probes off the acquire path, status codes read.
@Suite struct HealthCheckTests {
    private func checking(_ config: inout HotPoolConfiguration) {
        config.healthCheckPath = "/hc"
        config.healthCheckInterval = .milliseconds(100)
        config.validationTimeout = .milliseconds(500)
    }

    /// An answer other than 2xx/3xx, a reset, or no answer in time: the idle connection is destroyed.
    @Test(arguments: [
        ["type": "status", "status": 500],
        ["type": "reset", "after_bytes": 5],
        ["type": "stall"],
    ] as [[String: any Sendable]])
    func failedHealthCheckDestroysTheIdleConnection(answer: [String: any Sendable]) async throws {
        try await expectDestruction(.healthCheckFailed, config: checking, setup: { origin in
            try await origin.rule(path: "/hc", answer)
        }) { pool, _, connection in
            pool.putConnection(connection)
        }
    }

    @Test func healthCheck403AlsoBlacklistsTheIP() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        checking(&config)
        let pool = try origin.pool(config)
        try await origin.rule(ip: origin.ips[0], path: "/hc", ["type": "status", "status": 403])
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        pool.putConnection(connection)
        #expect(await eventually { await pool.stats().closedByReason[.healthCheckFailed] == 1 })
        for _ in 0..<4 {
            let other = try await pool.getConnection(host: Origin.hostName, port: origin.port)
            #expect(other.targetIP != origin.ips[0], "blacklisted IP not dialed")
            pool.removeConnection(other)
        }
        try await pool.close()
    }

    @Test func passingHealthChecksKeepTheConnectionAndItsIdleClock() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        checking(&config)
        config.healthCheckInterval = .milliseconds(50)
        let pool = try origin.pool(config)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        _ = try await connection.roundTrip(get("/work"))
        pool.putConnection(connection)
        let lastUsed = try #require(await pool.connectionStats().first?.lastUsed)
        #expect(try await eventually {
            try await origin.recentPaths(last: 10).filter { $0 == "/hc" }.count >= 3
        }, "several probes answered 200")
        // A probe every 50 ms takes the connection out of the idle list while it runs.
        #expect(await eventually { await pool.stats().idleConnections == 1 }, "idle between probes")
        let stats = await pool.stats()
        #expect(stats.totalConnections == 1 && stats.closedByReason.values.reduce(0, +) == 0)
        #expect(stats.totalRequests == 1, "probes are not callers' requests")
        #expect(await pool.connectionStats().first?.lastUsed == lastUsed, "a probe is not a use: idle timeout still counts")
        #expect(try await origin.stats().totalHandshakes == 1)
        try await pool.close()
    }

    @Test func connectionUnderCheckIsNotHandedToACaller() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        checking(&config)
        let pool = try origin.pool(config)
        try await origin.rule(path: "/hc", ["type": "stall"])
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        let checked = try await serverConnection(of: connection, origin)
        pool.putConnection(connection)
        #expect(try await eventually {
            let last = try await origin.recentRequests(ip: origin.ips[0], last: 1).last
            return last?.path == "/hc" && last?.connection == checked
        }, "the probe is under way")
        #expect(await pool.stats().idleConnections == 0)
        let other = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        #expect(try await serverConnection(of: other, origin) != checked, "the caller's request came on another connection")
        #expect(try await origin.waitHandshakes(2), "a new connection, not the one being checked")
        pool.removeConnection(other)
        #expect(await eventually { await pool.stats().closedByReason[.healthCheckFailed] == 1 }, "the stalled probe timed out")
        try await pool.close()
    }

    @Test func invalidHealthCheckPathIsRejected() {
        var config = HotPoolConfiguration()
        config.healthCheckPath = "hc"
        #expect(throws: HotPoolError.self) { _ = try HotConnPool(configuration: config) }
    }
}
