import Glibc
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolDriver
@testable import HotPoolHTTP
@testable import HotPoolIO
@testable import HotPoolStateMachine

/// A caller's cancellation racing the pool's close, for real, many times: whichever comes
/// first answers the caller (`cancelled` or `poolClosed`), exactly once, and nothing traps or
/// hangs. Run under ThreadSanitizer by `make sanitize`.
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
            // Vary which side gets ahead: cancel first, close first, or both from separate tasks.
            switch iteration % 3 {
            case 0:
                get.cancel()
                try await pool.close()
            case 1:
                async let closed: Void = pool.close()
                get.cancel()
                try await closed
            default:
                async let cancelled: Void = Task { get.cancel() }.value
                try await pool.close()
                await cancelled
            }
            do {
                _ = try await get.value
                Issue.record("iteration \(iteration): a connection was handed out")
            } catch let error as HotPoolError {
                switch error.code {
                case .cancelled: answers["cancelled", default: 0] += 1
                case .poolClosed: answers["poolClosed", default: 0] += 1
                default: Issue.record("iteration \(iteration): \(error)")
                }
            }
            let stats = await pool.stats()
            #expect(stats.waitingCallers == 0 && stats.dialingConnections == 0 && stats.totalConnections == 0)
        }
        #expect(answers.values.reduce(0, +) == iterations)
        print("cancel/close race: \(answers)")
    }
}
