import CShims
import Foundation
import Glibc
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolDriver
@testable import HotPoolIO

/// Whether this kernel and sandbox let a ring be set up.
private let ioUringAvailable = (try? UringBackend()) != nil

/// `io_uring_enter`'s system call number (calls numbered from 424 on have one number on every
/// architecture).
private let ioUringEnterCall = 426

/// The /proc directory of the calling thread ("<pid>/task/<tid>").
private func currentThreadDirectory() -> String {
    "/proc/" + ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? "")
}

/// Whether the thread whose /proc directory is `thread` is blocked in `io_uring_enter`: its
/// `syscall` file starts with the number of the call a blocked thread is in ("running" while it runs).
private func waitsInIoUringEnter(_ thread: String) -> Bool {
    let call = (try? String(contentsOfFile: thread + "/syscall", encoding: .utf8))?.split(separator: " ").first
    return call == "\(ioUringEnterCall)"
}

/// io_uring submissions that find the submission queue full (made to, by
/// `hp_uring_simulate_full_queue`, as when the kernel cannot take what is queued) and must not be
/// lost: a close's chain, a poll's removal, the wake-up read. Each is queued again on a later
/// turn. Their pools run on io_uring whatever `HOTPOOL_TEST_IO_BACKEND` says.
@Suite(.serialized, .enabled(if: ioUringAvailable, "io_uring is unavailable here"))
struct UringDeferredSubmissionTests {
    /// A request body far larger than what the kernel's socket buffers hold, so its sends stay
    /// in flight while the server does not read.
    static let unsendableBodySize = 16 << 20

    /// How long a few calls to an idle pool and its close may take: far longer than they need,
    /// far shorter than the first of its periodic timers (30 s apart at least by default), so a
    /// reactor that no post wakes is caught.
    static let wakeUpBound = Duration.seconds(5)

    /// Removes `connection` on the reactor thread with the submission queue full for the close
    /// chain it queues, and checks that the chain was deferred.
    private func removeWithNoRoom(_ pool: HotConnPool, _ connection: PooledConnection) async {
        let closes = await Task(executorPreference: connection.executor) {
            hp_uring_simulate_full_queue(1)
            pool.removeConnection(connection)
            return Self.deferrals(connection.driver).closes
        }.value
        #expect(closes == 1, "the close's chain found no room")
    }

    /// What a reactor's io_uring backend deferred so far (on its thread).
    static func deferrals(_ driver: PoolDriver) -> UringBackend.Deferrals {
        (driver.reactor.io as! UringBackend).deferrals
    }

    /// An idle connection (its multishot receive in the kernel) removed while the close chain
    /// finds no room: the chain is queued on a later turn, so the receive is cancelled before the
    /// close and the server sees the socket closed (`close(2)` at once left the receive holding
    /// it open), counted once, its fd and SSL object freed.
    @Test func closeWithNoRoomIsQueuedLaterAndTheServerSeesIt() async throws {
        defer { hp_uring_simulate_full_queue(0) }
        try await expectDestruction(.removed, config: { $0.ioBackend = .ioUring }) { pool, _, connection in
            await removeWithNoRoom(pool, connection)
        }
    }

    /// The same with a send in flight (a body the server does not read): the send is cancelled
    /// before the close, and the bytes it reads (the TLS engine's output) are freed only at
    /// `.closed`. The kernel's reads are invisible to AddressSanitizer, so what this checks is
    /// the close the server sees (`close(2)` at once left the receive and the send holding the
    /// socket open, the send reading freed bytes once the server read again).
    @Test func closeWithNoRoomWhileASendIsInFlightCancelsItAndCloses() async throws {
        defer { hp_uring_simulate_full_queue(0) }
        try await expectDestruction(.removed, config: { $0.ioBackend = .ioUring }, setup: { origin in
            try await origin.rule(path: "/deaf", ["type": "deaf"], times: 1)
        }) { pool, origin, connection async throws in
            let request = HTTPRequest(method: .post, scheme: "https", authority: Origin.hostName, path: "/deaf")
            let body = [UInt8](repeating: UInt8(ascii: "x"), count: Self.unsendableBodySize)
            let exchange = Task { try await connection.roundTrip(request, body: body) }
            #expect(try await eventually { try await origin.recentPaths(last: 1) == ["/deaf"] },
                    "the server read the head and stopped reading")
            await removeWithNoRoom(pool, connection)
            await #expect(throws: HotPoolError.connectionClosed(host: Origin.hostName, ip: origin.ips[0])) {
                try await exchange.value
            }
            // Reading again, the server takes what the kernel had sent, then sees the close.
            #expect(try await origin.hear() == 1)
        }
    }

    /// The wake-up read re-armed after a post from another thread finds no room: it is queued
    /// again on the next turn, so the next post, made while the reactor waits, still wakes it
    /// (when the read was dropped, the second `stats()` waited for the pool's next timer, if any).
    @Test func wakeUpReadWithNoRoomIsQueuedLaterAndPostsStillWakeTheReactor() async throws {
        defer { hp_uring_simulate_full_queue(0) }
        var config = HotPoolConfiguration()
        config.ioBackend = .ioUring
        let pool = try HotConnPool(configuration: config)
        // The reactor's thread; the job's last act makes the next submission, the wake-up read
        // re-armed after the next post from another thread, find no room.
        let reactorThread = await Task(executorPreference: pool.executor) {
            let thread = currentThreadDirectory()
            hp_uring_simulate_full_queue(1)
            return thread
        }.value
        let ended = try await ends(within: Self.wakeUpBound) {
            for _ in 0..<2 {
                // Each post is made while the reactor waits, so only the wake-up read can end the wait.
                #expect(await eventually { waitsInIoUringEnter(reactorThread) }, "the reactor waits")
                _ = await pool.stats()
            }
            #expect(await Task(executorPreference: pool.executor) { Self.deferrals(pool.drivers[0]).wakeupReads }.value == 1,
                    "the wake-up read found no room")
            try await pool.close()
        }
        #expect(ended, "posts from another thread woke the reactor")
    }

    /// c-ares stops watching its socket while the poll is in the kernel (the query to a server
    /// that never answers timed out, and c-ares closed the socket) and the poll's removal finds
    /// no room: it is queued again on the next turn, so the poll ends and lets the socket go
    /// (when the removal was dropped, the poll held the closed socket open for as long as the
    /// pool lived).
    @Test func pollRemovalWithNoRoomIsQueuedLaterAndTheSocketGoes() async throws {
        defer { hp_uring_simulate_full_queue(0) }
        let server = try loopbackSocket(SOCK_DGRAM)  // a DNS server that never answers
        defer { close(server.fd) }
        var config = HotPoolConfiguration()
        config.ioBackend = .ioUring
        config.dnsServers = ["127.0.0.1:\(server.port)"]
        let pool = try HotConnPool(configuration: config)
        // The lookup's job queues the poll on c-ares' socket; the job after it makes the next
        // submission, the poll's removal when the query times out, find no room.
        let lookup = Task(executorPreference: pool.executor) {
            try await pool.refreshAddresses(host: "unanswered.hotpool.test")
        }
        await Task(executorPreference: pool.executor) { hp_uring_simulate_full_queue(1) }.value
        await #expect(throws: HotPoolError.self) { try await lookup.value }
        #expect(await Task(executorPreference: pool.executor) { Self.deferrals(pool.drivers[0]).pollRemovals }.value == 1,
                "the poll's removal found no room")
        #expect(await eventually { udpSocketsConnected(toLoopbackPort: server.port) == 0 },
                "c-ares' socket is gone once it closed it")
        try await pool.close()
    }
}
