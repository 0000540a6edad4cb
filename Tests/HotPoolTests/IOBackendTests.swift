import CShims
import Glibc
import OriginControl
import Testing
@_spi(Benchmarks) @testable import HotPool
@testable import HotPoolCore
@testable import HotPoolIO

/// The choice of I/O backend, and what io_uring does that epoll cannot: one system call for a
/// loop turn's operations. (Every other suite runs on both backends: `make test`.)
@Suite(.serialized) struct IOBackendTests {
    /// Where io_uring cannot be set up (an old kernel, a seccomp filter: simulated here by making
    /// `io_uring_queue_init` fail), `.ioUring` fails `init` with a clear error and `.automatic`
    /// runs on epoll, saying so once with the reason.
    @Test func withoutIoUringAutomaticFallsBackToEpollAndIoUringFailsClearly() async throws {
        let origin = try Origin()
        UringBackend.simulateUnavailable(errno: ENOSYS)
        defer { UringBackend.simulateUnavailable(errno: 0) }
        var config = origin.configuration()
        config.ioBackend = .ioUring
        #expect {
            _ = try origin.pool(config)
        } throws: { error in
            guard let error = error as? HotPoolError, error.code == .invalidConfiguration, let reason = error.reason else { return false }
            return reason.contains("io_uring is unavailable") && reason.contains("Function not implemented")
        }
        let log = CapturedLog()
        config.ioBackend = .automatic
        config.logger = log.logger(level: .notice)
        let pool = try origin.pool(config)
        #expect(pool.ioBackendName == "epoll")
        let said = log.entries.filter { $0.message == "io_uring is unavailable; using epoll" }
        #expect(said.count == 1 && said.first?.metadata["reason"]?.contains("Function not implemented") == true)
        let response = try await pool.execute(get(), host: Origin.hostName, port: origin.port)
        #expect(response.head.status == .ok)
        try await pool.close()
        UringBackend.simulateUnavailable(errno: 0)
        config.ioBackend = .automatic
        let available = try origin.pool(config)
        #expect(available.ioBackendName == "io_uring")
        try await available.close()
    }

    /// Closing 64 idle connections: epoll makes a close_notify write and a close(2) per
    /// connection; io_uring submits all 64 linked chains (cancel, close_notify, close) with the
    /// loop turn's one `io_uring_enter`. Every fd is closed and every SSL object freed either way.
    @Test(arguments: [IOBackendChoice.epoll, .ioUring])
    func closeOfManyIdleConnectionsIsBatchedOnIoUring(backend: IOBackendChoice) async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.ioBackend = backend
        // The pool-wide limits are split between the reactors, and one of them serves the host.
        config.maxConnections = 64 * config.reactors.resolved
        config.maxConnectionsPerHost = 64
        config.maxIdleConnections = 64 * config.reactors.resolved
        let fds = openFDCount()
        let pool = try origin.pool(config)
        #expect(try await pool.prewarm(host: Origin.hostName, port: origin.port, count: 64) == 64)
        let before = await pool.ioSystemCalls()
        try await pool.close()
        let calls = await pool.ioSystemCalls() - before
        if backend == .ioUring {
            // A few turns (the close's own wake-up, completions arriving in more than one wait, more
            // of them on a loaded machine: 18 seen), never one a connection.
            #expect(calls < 32, "\(calls) io_uring_enter calls to close 64 connections")
        } else {
            #expect(calls >= 128, "\(calls) system calls to close 64 connections")
        }
        #expect(hp_tls_live_objects() == 0)
        #expect(openFDCount() == fds)
        #expect(try await origin.waitClosed(64))
    }
}
