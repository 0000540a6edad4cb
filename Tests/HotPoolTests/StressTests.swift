import Foundation
import OriginControl
import Testing
@testable import HotPool

@Suite struct StressTests {
    /// Where the stress test's tasks run.
    enum Callers: CaseIterable {
        /// On the global executor: every call a hop to the reactor that serves it.
        case global
        /// On the pool's (first) executor: every call made on that reactor thread itself.
        case poolExecutor
        /// With two reactors, half the tasks on each one's executor: each reactor serves its own.
        case everyExecutor
        /// With two reactors taking calls in turn (`.perCall`), from the global executor.
        case spreadPerCall
    }

    /// 16 tasks mixing get, round trip (some answered by a reset), put, double put, remove and
    /// stats over 4 IPs. Every snapshot stays within the limits; once quiet, the server has open
    /// on each IP just what the pool holds there, and closing must give back every fd. The
    /// merged figures add up: every connection opened, on whichever reactor, is destroyed once,
    /// and the server saw as many handshakes. HOTPOOL_STRESS_OPS raises the operation count
    /// (default 100,000). Run from each kind of `Callers`.
    @Test(.serialized, arguments: Callers.allCases)  // one at a time: each counts the process's fds
    func concurrentMixedOperationsKeepTheBooksExact(callers: Callers) async throws {
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
        if callers == .everyExecutor || callers == .spreadPerCall { config.reactors = 2 }
        if callers == .spreadPerCall { config.reactorSelection = .perCall }
        let pool = try origin.pool(config)
        let (snapshots, roundTrips) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for t in 0..<tasks {
                let executor: HotPoolExecutor? = switch callers {
                case .global, .spreadPerCall: nil
                case .poolExecutor: pool.executor
                case .everyExecutor: pool.executors[t % pool.executors.count]
                }
                group.addTask(executorPreference: executor) {
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
