import Foundation
import OriginControl
import Testing
@testable import HotPool

@Suite struct StressTests {
    /// 16 tasks mixing get, round trip (some answered by a reset), put, double put, remove and
    /// stats over 4 IPs. Every snapshot stays within the limits; once quiet, the server has open
    /// on each IP just what the pool holds there, and closing must give back every fd.
    /// HOTPOOL_STRESS_OPS raises the operation count (default 100,000). Run twice: from tasks on
    /// the global executor (every call a hop to the reactor) and from tasks on the pool's executor
    /// (every call made on the reactor thread itself).
    @Test(.serialized, arguments: [false, true])  // one at a time: each counts the process's fds
    func concurrentMixedOperationsKeepTheBooksExact(onPoolExecutor: Bool) async throws {
        let origin = try Origin(ips: ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"])
        try await origin.rule(path: "/reset", ["type": "reset", "after_bytes": 5])
        let operations = Int(environment("HOTPOOL_STRESS_OPS") ?? "") ?? 100_000
        let tasks = 16
        let fdsBefore = openFDCount()
        var config = origin.configuration()
        config.maxConnections = 24
        config.maxConnectionsPerHost = 24
        config.maxIdleConnections = 12
        config.connectTimeout = .seconds(20)
        let pool = try origin.pool(config)
        let (snapshots, roundTrips) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for t in 0..<tasks {
                group.addTask(executorPreference: onPoolExecutor ? pool.executor : nil) {
                    var rng = SeededGenerator(state: UInt64(t) &* 0x1234_5678_9ABC)
                    var held: PooledConnection?
                    var snapshots = 0, roundTrips = 0
                    for _ in 0..<(operations / tasks) {
                        switch Int.random(in: 0..<100, using: &rng) {
                        case 0..<30:
                            if held == nil { held = try await pool.getConnection(host: Origin.hostName, port: origin.port) }
                        case 30..<55:
                            guard let c = held else { continue }
                            let path = Int.random(in: 0..<100, using: &rng) < 3 ? "/reset" : "/"
                            _ = try? await c.roundTrip(get(path))
                            roundTrips += 1
                        case 55..<82:
                            if let c = held { pool.putConnection(c) }
                            held = nil
                        case 82..<84:
                            if let c = held { pool.removeConnection(c) }
                            held = nil
                        case 84..<86:
                            if let c = held {
                                pool.putConnection(c)
                                pool.putConnection(c)  // misuse: must be ignored
                            }
                            held = nil
                        default:
                            let s = await pool.stats()
                            #expect(s.failedRequests <= s.totalRequests)
                            #expect(s.totalConnections + s.dialingConnections <= 24)
                            snapshots += 1
                        }
                    }
                    if let c = held { pool.putConnection(c) }
                    return (snapshots, roundTrips)
                }
            }
            return try await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        }
        let stats = await pool.stats()
        #expect(snapshots > 0 && stats.totalRequests == roundTrips)
        #expect(stats.activeConnections == 0)
        let destroyed = stats.closedByReason.values.reduce(0, +)
        #expect(stats.connectionsOpened == destroyed + stats.totalConnections, "every connection opened is open or destroyed once")
        #expect(try await serverSeesThePoolsConnections(pool, origin), "the server has open what the pool holds, per IP")
        let open = stats.totalConnections
        try await pool.close()
        let final = await pool.stats()
        #expect(final.closedByReason[.poolClosed] == open)
        #expect(final.connectionsOpened == final.closedByReason.values.reduce(0, +))
        #expect(try await origin.waitClosed(final.connectionsOpened, timeout: 10))
        #expect(try await origin.stats().totalHandshakes == final.connectionsOpened, "the server saw each connection the pool counts")
        #expect(openFDCount() == fdsBefore)
    }
}
