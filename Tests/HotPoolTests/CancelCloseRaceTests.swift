import Glibc
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// A caller's cancellation racing the pool's close, for real, many times: whichever comes
/// first answers the caller (`cancelled` or `poolClosed`), exactly once, and nothing traps or
/// hangs. Where the order is known (the get waits in the pool, then the cancel is posted before
/// the close, or the close returns before the cancel), the answer must be the first one's.
/// Run under ThreadSanitizer by `make sanitize`.
@Suite struct CancelCloseRaceTests {
    /// A TCP listener on loopback that never accepts: a dial to it connects (the kernel's backlog)
    /// and then waits for a TLS answer that never comes, so a get stays under way until cancelled
    /// or closed.
    private static func silentListener() throws -> (fd: Int32, port: Int) {
        let listener = try loopbackSocket(SOCK_STREAM)
        try #require(listen(listener.fd, 4096) == 0)
        return listener
    }

    @Test func cancelRacingCloseAnswersTheCallerOnceAndNeverTraps() async throws {
        let iterations = Int(environment("HOTPOOL_RACE_ITERATIONS") ?? "") ?? 10_000
        let listener = try Self.silentListener()
        defer { close(listener.fd) }
        // The origin's small CA file: loading the system trust store would dominate each pool's start.
        let origin = try Origin()
        var config = HotPoolConfiguration()
        config.ioBackend = Origin.ioBackendUnderTest
        config.trustedCAFile = origin.caFile
        var answers: [String: Int] = [:]
        for iteration in 0..<iterations {
            let pool = try HotConnPool(configuration: config)
            pool.setAddresses(["127.0.0.1"], forHost: "race.test")
            let get = Task { try await pool.getConnection(host: "race.test", port: listener.port) }
            let order = iteration % 5
            if order < 2 {
                // The get is under way in the pool: its dial waits for a handshake that never comes.
                let end = ContinuousClock.now + .seconds(5)
                while await pool.stats().dialingConnections == 0 && ContinuousClock.now < end { await Task.yield() }
                guard await pool.stats().dialingConnections == 1 else {
                    Issue.record("iteration \(iteration): the get never started its dial")
                    try await pool.close()
                    break
                }
            }
            // Which answer the order decides: nil where either may come first.
            let expected: HotPoolError?
            switch order {
            case 0:
                // The cancel's post goes before close's (the inbox keeps the order of posts made
                // one after the other): the caller is told `cancelled`.
                get.cancel()
                try await pool.close()
                expected = .cancelled
            case 1:
                // Closed first (close returns once every waiter was answered): `poolClosed`, and
                // the late cancel changes nothing.
                try await pool.close()
                get.cancel()
                expected = .poolClosed
            case 2:
                get.cancel()
                try await pool.close()
                expected = nil
            case 3:
                async let closed: Void = pool.close()
                get.cancel()
                try await closed
                expected = nil
            default:
                async let cancelled: Void = Task { get.cancel() }.value
                try await pool.close()
                await cancelled
                expected = nil
            }
            // Answered, and within a bound: a caller nobody answers fails the test instead of hanging it.
            guard try await ends(within: .seconds(10), { _ = await get.result }) else {
                Issue.record("iteration \(iteration) (order \(order)): the caller was never answered")
                break
            }
            switch await get.result {
            case .success:
                Issue.record("iteration \(iteration): a connection was handed out")
            case .failure(let error as HotPoolError) where error == .cancelled || error == .poolClosed:
                answers["\(error)", default: 0] += 1
                if let expected { #expect(error == expected, "iteration \(iteration) (order \(order))") }
            case .failure(let error):
                Issue.record("iteration \(iteration): \(error)")
            }
            let stats = await pool.stats()
            #expect(stats.waitingCallers == 0 && stats.dialingConnections == 0 && stats.totalConnections == 0)
        }
        print("cancel/close race: \(answers)")
    }
}
