import Logging
import OriginControl
import ServiceLifecycle
import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolDriver

/// A result type that is not `Sendable`: `withConnection` hands it back because it is `sending`.
private final class Unshared {
    var body: [UInt8] = []
}

/// The pool's lifetime in the Swift server idiom: `run()` as a `Service`, `close()` from anywhere,
/// figures frozen at close.
@Suite struct ServiceAndCloseTests {
    private func poolWithOneIdleConnection(_ origin: Origin) async throws -> HotConnPool {
        let pool = try origin.pool()
        pool.putConnection(try await pool.getConnection(host: Origin.hostName, port: origin.port))
        return pool
    }

    @Test func cancellingRunClosesThePool() async throws {
        let origin = try Origin()
        let pool = try await poolWithOneIdleConnection(origin)
        let service = Task { try await pool.run() }
        service.cancel()
        try await service.value
        await #expect(throws: HotPoolError.poolClosed) { _ = try await pool.getConnection(host: Origin.hostName, port: origin.port) }
        #expect(await pool.stats().closedByReason[.poolClosed] == 1)
        #expect(try await origin.waitClosed(1), "the server saw the connection closed")
    }

    @Test func gracefulShutdownOfAServiceGroupClosesThePool() async throws {
        let origin = try Origin()
        let pool = try await poolWithOneIdleConnection(origin)
        let group = ServiceGroup(services: [pool], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        // Served while the group runs.
        let status = try await pool.withConnection(host: Origin.hostName, port: origin.port) { try await $0.roundTrip(get()).head.status }
        #expect(status == .ok)
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(await pool.stats().closedByReason[.poolClosed] == 1)
        #expect(try await origin.stats().totalHandshakes == 1)
        #expect(try await origin.waitClosed(1))
    }

    @Test func closeFromElsewhereEndsRun() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let service = Task { try await pool.run() }
        try await pool.close()
        try await service.value
    }

    /// The figures after close are the pool's as it closed, close's own work included: every
    /// connection (leased ones too) destroyed as `poolClosed`, the exchange under way counted
    /// failed. Handles used after close reach nothing: a put or remove is ignored, a round trip
    /// refused, and the machine itself (read here once the reactor thread is joined) counts none.
    @Test func statsAfterCloseAreTheFiguresFrozenAtClose() async throws {
        let origin = try Origin()
        try await origin.rule(path: "/stall", ["type": "stall"])
        let pool = try await poolWithOneIdleConnection(origin)
        let held = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        _ = try await held.roundTrip(get())
        let stalled = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        let unanswered = Task { try await stalled.roundTrip(get("/stall")) }
        #expect(try await eventually { try await origin.recentPaths(last: 5).contains("/stall") }, "the stalled request reached the server")
        let before = await pool.stats()
        #expect(before.totalConnections == 2 && before.activeConnections == 2 && before.totalRequests == 2 && before.failedRequests == 0)
        try await pool.close()
        await #expect(throws: HotPoolError.poolClosed) { _ = try await unanswered.value }
        func expectClosedFigures(_ stats: PoolStats, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(stats.totalConnections == 0 && stats.activeConnections == 0 && stats.idleConnections == 0
                    && stats.dialingConnections == 0 && stats.waitingCallers == 0, "\(what): nothing open", sourceLocation: sourceLocation)
            #expect(stats.closedByReason[.poolClosed] == 2 && stats.closedByReason.values.reduce(0, +) == 2,
                    "\(what): both connections closed by close, once: \(stats.closedByReason.filter { $0.value > 0 })", sourceLocation: sourceLocation)
            #expect(stats.connectionsOpened == 2 && stats.totalRequests == 2 && stats.failedRequests == 1 && stats.staleHandleUses == 0,
                    "\(what): \(stats.totalRequests) requests, \(stats.failedRequests) failed, \(stats.staleHandleUses) stale handles",
                    sourceLocation: sourceLocation)
        }
        expectClosedFigures(await pool.stats(), "frozen at close")
        pool.putConnection(held)
        pool.removeConnection(stalled)
        await #expect(throws: HotPoolError.poolClosed) { _ = try await held.roundTrip(get()) }
        expectClosedFigures(await pool.stats(), "after uses of closed handles")
        expectClosedFigures(PoolStats(merging: pool.drivers.map { $0.machine.snapshot() }), "the machines' own")
        #expect(try await origin.waitClosed(2), "the server saw both connections closed")
    }

    @Test func concurrentClosesAllReturnAfterTheReactorEnded() async throws {
        let origin = try Origin()
        let pool = try await poolWithOneIdleConnection(origin)
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await pool.close()
                    // Returned only once the reactor is gone: nothing can be posted to it any more.
                    return !pool.executor.reactor.post {}
                }
            }
            for try await refused in group { #expect(refused) }
        }
        #expect(try await origin.waitClosed(1))
    }

    @Test func withConnectionHandsBackANonSendableResult() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let box = try await pool.withConnection(host: Origin.hostName, port: origin.port) { connection in
            let box = Unshared()
            box.body = try await connection.roundTrip(get()).body
            return box
        }
        #expect(box.body == Array("ok".utf8))
        try await pool.close()
    }

    @Test func aCancelledValidationStopsRetrying() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        // Each validation answer comes late and says 500, so the caller would retry.
        try await origin.rule(path: "/check", [
            "type": "raw", "data": "",
            "then": [["delay_ms": 300, "data": "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"]],
        ])
        let validation = Task { try await pool.getConnection(validating: "https://\(Origin.hostName):\(origin.port)/check") }
        #expect(try await eventually { try await origin.recentPaths(last: 5).contains("/check") }, "the first try is under way")
        validation.cancel()
        await #expect(throws: HotPoolError.cancelled) { _ = try await validation.value }
        #expect(try await origin.recentPaths(last: 10).filter { $0 == "/check" }.count == 1, "no retry after the cancel")
        try await pool.close()
    }
}
