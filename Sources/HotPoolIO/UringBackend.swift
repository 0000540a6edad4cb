import CShims
import Glibc
import HotPoolCore

/// The io_uring backend: a loop turn's operations are queued as submissions and go to the
/// kernel with one `io_uring_enter` that also waits for completions. Receives are multishot into
/// a ring of provided buffers, so an idle connection holds no receive buffer; a close is one
/// linked chain (cancel, close_notify, close). A submission that must not be lost (a close's
/// chain, a poll's removal, the wake-up read) and finds no room is queued again on a later turn.
package final class UringBackend: IOBackend {
    package let name = "io_uring"
    package var systemCalls: Int { hp_uring_enters(ring) + socketErrorReads }
    package private(set) var closesInFlight = 0

    /// Submission queue entries; completions get four times as many.
    static let entries: UInt32 = 4096
    /// Provided receive buffers: enough for a turn's arrivals on many connections at once.
    static let bufferCount: UInt32 = 256
    static let bufferSize: UInt32 = 16 * 1024
    /// User data of completions nobody waits for (a close's cancels and close_notify, a poll
    /// removal) and of the wake-up read; no operation's user data has these high bits.
    private static let ignored = UInt64.max
    private static let wakeup = UInt64.max - 1

    private let ring: OpaquePointer
    private var completions = [hp_completion](repeating: hp_completion(), count: 1024)
    private var socketErrorReads = 0
    private var wakeFD: Int32 = -1
    /// Where the wake-up read puts the eventfd's count (allocated last in `init`, so a failed
    /// set-up leaks nothing).
    private let wakeBuffer: UnsafeMutableRawBufferPointer
    /// Completions of operations the submission queue had no room for, delivered on the next wait.
    private var refused: [(token: UInt64, completion: IOCompletion)] = []

    /// A submission that must not be lost: when the queue has no room for it (even after a
    /// flush), it is queued again on the next turn, whose wait does not block meanwhile.
    private enum RetriedSubmission {
        /// A close's chain: cancel the operations with user data `cancel`, send `lastBytes` if
        /// any, close the fd of the close operation `op`. Its fd stays open until then, so the
        /// operations in flight on it end before it closes, and `closesInFlight` counts it (the
        /// owner keeps what a send in flight reads until `.closed`).
        case close(op: Int, cancel: [UInt64], lastBytes: UnsafeRawBufferPointer?)
        /// The removal of the poll with user data `target` (one that completed meanwhile is not
        /// found, which is harmless: the generation in the user data names no other poll).
        case pollRemove(target: UInt64)
        /// The cancel of the paused receive with user data `target` (one that ended meanwhile is
        /// not found, harmless for the same reason).
        case cancelReceive(target: UInt64)
        /// The read of the wake-up eventfd: without it, posts from other threads would not end a wait.
        case wakeupRead
    }
    /// Submissions that found no room, in the order they were made.
    private var deferred: [RetriedSubmission] = []
    /// How many submissions of each kind found no room and were queued again (diagnostics: the
    /// tests read them to know the path they mean to take was taken).
    private(set) var deferrals = Deferrals()

    /// Counts of `RetriedSubmission`s that found no room, by kind.
    struct Deferrals {
        var closes = 0
        var pollRemovals = 0
        var receiveCancels = 0
        var wakeupReads = 0
    }

    /// An operation in flight. Its user data is its index in `ops` and its generation, so a
    /// cancel or a late completion aimed at an operation whose index was reused finds nothing.
    private struct Operation {
        enum Kind { case connect, receive, send, close, watch }
        var kind: Kind
        var token: UInt64
        var fd: Int32
        var generation: UInt32 = 0
        /// False once its fd is closed or unwatched: its completions are dropped, it is not re-armed.
        var live = true
        /// A watch's poll is queued or in the kernel (false while its completion is handled).
        var armed = false
        /// A receive paused (`pauseReceiving`): its cancel is queued, and its end is not reported.
        var paused = false
        /// A paused receive asked to go on: a new one starts once it has ended.
        var resumes = false
        var interest: UInt32 = 0
    }
    private var ops: [Operation] = []
    private var freeOps: [Int] = []
    /// Per fd, the operations under way on it (-1: none), so a close or unwatch can end them.
    private struct FDOperations {
        var connect = -1, receive = -1, send = -1, watch = -1
        var all: [Int] { [connect, receive, send, watch].filter { $0 >= 0 } }
    }
    private var byFD: [FDOperations] = []

    /// Makes the ring and its receive buffers, or says why io_uring is unavailable.
    package init() throws(SystemError) {
        // Multishot receive, which the backend is built on, came with Linux 6.0.
        var system = utsname()
        uname(&system)
        let release = withUnsafeBytes(of: &system.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let version = release.split(separator: ".").prefix(2).compactMap { Int($0.prefix { $0.isNumber }) }
        guard version.count == 2, (version[0], version[1]) >= (6, 0) else {
            throw SystemError(call: "io_uring multishot receive (Linux 6.0) on Linux \(release)", errno: ENOSYS)
        }
        var error: Int32 = 0
        guard let ring = hp_uring_create(Self.entries, &error) else {
            throw SystemError(call: "io_uring_queue_init", errno: -error)
        }
        let rc = hp_uring_setup_buffers(ring, Self.bufferCount, Self.bufferSize)
        guard rc == 0 else {
            hp_uring_destroy(ring)
            throw SystemError(call: "io_uring_register_buf_ring", errno: -rc)
        }
        self.ring = ring
        wakeBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
    }

    deinit {
        hp_uring_destroy(ring)
        wakeBuffer.deallocate()
    }

    /// Makes io_uring set-up fail with `errno` (0: no longer), as a kernel or sandbox without it does.
    static func simulateUnavailable(errno: Int32) { hp_uring_simulate_init_error(errno) }

    package func watchWakeups(fd: Int32) throws(SystemError) {
        wakeFD = fd
        guard queue(.wakeupRead) else { throw SystemError(call: "io_uring read", errno: EBUSY) }
    }

    package func start() throws(SystemError) {
        let rc = hp_uring_enable(ring)
        if rc < 0 { throw SystemError(call: "io_uring_enable_rings", errno: -rc) }
    }

    private func newOperation(_ kind: Operation.Kind, _ fd: Int32, _ token: UInt64) -> Int {
        while byFD.count <= Int(fd) { byFD.append(FDOperations()) }
        if let index = freeOps.popLast() {
            let generation = (ops[index].generation &+ 1) & 0x7FFF_FFFF  // clear of `ignored` and `wakeup`
            ops[index] = Operation(kind: kind, token: token, fd: fd, generation: generation)
            return index
        }
        ops.append(Operation(kind: kind, token: token, fd: fd))
        return ops.count - 1
    }

    private func userData(_ op: Int) -> UInt64 { UInt64(op) | UInt64(ops[op].generation) << 32 }

    private func release(_ op: Int) { freeOps.append(op) }

    /// The submission queue had no room (the kernel took nothing when it was flushed): the
    /// operation ends at once with EBUSY.
    private func refuse(_ op: Int, _ completion: IOCompletion) {
        release(op)
        refused.append((ops[op].token, completion))
    }

    package func connect(fd: Int32, token: UInt64) {
        let op = newOperation(.connect, fd, token)
        guard hp_uring_poll_add(ring, fd, HP_EV_OUT, userData(op)) == 0 else { return refuse(op, .connected(errno: EBUSY)) }
        byFD[Int(fd)].connect = op
    }

    package func receive(fd: Int32, token: UInt64) {
        let op = newOperation(.receive, fd, token)
        guard hp_uring_recv_multishot(ring, fd, userData(op)) == 0 else { return refuse(op, .receiveEnded(errno: EBUSY)) }
        byFD[Int(fd)].receive = op
    }

    package func pauseReceiving(fd: Int32) {
        guard Int(fd) < byFD.count, case let op = byFD[Int(fd)].receive, op >= 0, !ops[op].paused else { return }
        ops[op].paused = true
        queueOrDefer(.cancelReceive(target: userData(op)))
    }

    package func resumeReceiving(fd: Int32, token: UInt64) {
        let op = Int(fd) < byFD.count ? byFD[Int(fd)].receive : -1
        guard op >= 0 else { return receive(fd: fd, token: token) }
        // Still ending: a new receive starts after its end (a new one now would race its cancel).
        if ops[op].paused { ops[op].resumes = true }
    }

    package func send(fd: Int32, token: UInt64, bytes: UnsafeRawBufferPointer) {
        let op = newOperation(.send, fd, token)
        guard hp_uring_send(ring, fd, bytes.baseAddress, bytes.count, userData(op)) == 0 else {
            return refuse(op, .sent(-Int(EBUSY)))
        }
        byFD[Int(fd)].send = op
    }

    package func close(fd: Int32, token: UInt64, lastBytes: UnsafeRawBufferPointer?) {
        let under = Int(fd) < byFD.count ? byFD[Int(fd)].all : []
        for op in under { ops[op].live = false }
        if !under.isEmpty { byFD[Int(fd)] = FDOperations() }
        let cancel = under.map(userData)
        let op = newOperation(.close, fd, token)
        closesInFlight += 1
        // Never close(2) here: what is in flight on fd holds the socket open (the peer would see
        // no close) and a send would go on reading bytes its owner frees at `.closed`.
        queueOrDefer(.close(op: op, cancel: cancel, lastBytes: lastBytes))
    }

    package func watch(fd: Int32, token: UInt64, interest: IOEvents) throws(SystemError) {
        let op = newOperation(.watch, fd, token)
        ops[op].interest = interest.rawValue
        guard arm(op) else {
            release(op)
            throw SystemError(call: "io_uring poll", errno: EBUSY)
        }
        byFD[Int(fd)].watch = op
    }

    private func arm(_ op: Int) -> Bool {
        ops[op].armed = hp_uring_poll_add(ring, ops[op].fd, ops[op].interest, userData(op)) == 0
        return ops[op].armed
    }

    package func unwatch(fd: Int32) {
        guard Int(fd) < byFD.count, byFD[Int(fd)].watch >= 0 else { return }
        let op = byFD[Int(fd)].watch
        byFD[Int(fd)].watch = -1
        ops[op].live = false
        // An armed poll is removed, and its completion frees it; one being handled is freed after.
        if ops[op].armed { queueOrDefer(.pollRemove(target: userData(op))) }
    }

    /// Queues `submission`; false when the queue has no room for it.
    private func queue(_ submission: RetriedSubmission) -> Bool {
        switch submission {
        case .close(let op, let cancel, let lastBytes):
            hp_uring_close(ring, ops[op].fd, cancel, Int32(cancel.count), lastBytes?.baseAddress, lastBytes?.count ?? 0,
                           Self.ignored, userData(op)) == 0
        case .pollRemove(let target):
            hp_uring_poll_remove(ring, target, Self.ignored) == 0
        case .cancelReceive(let target):
            hp_uring_cancel(ring, target, Self.ignored) == 0
        case .wakeupRead:
            hp_uring_read(ring, wakeFD, wakeBuffer.baseAddress, UInt32(wakeBuffer.count), Self.wakeup) == 0
        }
    }

    /// Queues `submission`, or keeps it for the next turn when the queue has no room.
    private func queueOrDefer(_ submission: RetriedSubmission) {
        guard !queue(submission) else { return }
        deferred.append(submission)
        switch submission {
        case .close: deferrals.closes += 1
        case .pollRemove: deferrals.pollRemovals += 1
        case .cancelReceive: deferrals.receiveCancels += 1
        case .wakeupRead: deferrals.wakeupReads += 1
        }
    }

    package func wait(timeoutNanos: Int64?, _ handle: (UInt64, IOCompletion) -> Void) throws(SystemError) {
        // What found no room before goes in this submission; what still finds none waits for the next.
        deferred = deferred.filter { !queue($0) }
        // Refused operations' completions are due now, and deferred submissions must not wait for I/O.
        let mustNotBlock = !refused.isEmpty || !deferred.isEmpty
        let n = completions.withUnsafeMutableBufferPointer {
            hp_uring_submit_wait(ring, $0.baseAddress, Int32($0.count), mustNotBlock ? 0 : timeoutNanos ?? -1)
        }
        if n < 0 { throw SystemError(call: "io_uring_enter", errno: -n) }
        if !refused.isEmpty {
            let batch = refused
            refused.removeAll()
            for (token, completion) in batch { handle(token, completion) }
        }
        for i in 0..<Int(n) {
            let c = completions[i]
            switch c.user_data {
            case Self.ignored:
                continue
            case Self.wakeup:
                queueOrDefer(.wakeupRead)
            default:
                let op = Int(c.user_data & 0xFFFF_FFFF)
                guard op < ops.count, ops[op].generation == UInt32(c.user_data >> 32) else { continue }
                complete(op, c.res, c.flags, handle)
            }
        }
    }

    private func complete(_ op: Int, _ res: Int32, _ flags: UInt32, _ handle: (UInt64, IOCompletion) -> Void) {
        let (token, fd) = (ops[op].token, ops[op].fd)
        switch ops[op].kind {
        case .receive:
            if flags & HP_CQE_F_BUFFER != 0 {
                let id = flags >> HP_CQE_BUFFER_SHIFT
                if ops[op].live && res > 0 {
                    handle(token, .received(UnsafeRawBufferPointer(start: hp_uring_buffer(ring, id), count: Int(res))))
                }
                hp_uring_recycle_buffer(ring, id)
            }
            guard flags & HP_CQE_F_MORE == 0 else { return }
            if ops[op].live && ops[op].paused && (res > 0 || res == -ENOBUFS || res == -ECANCELED) {
                // Paused, it ended by its cancel (or before it): nothing to report; a resume
                // asked meanwhile starts a new receive, whose user data the cancel cannot name.
                let resumes = ops[op].resumes
                release(op)
                byFD[Int(fd)].receive = -1
                if resumes { receive(fd: fd, token: token) }
                return
            }
            // The multishot receive ended: go on after data or a moment without buffers.
            if ops[op].live && (res > 0 || res == -ENOBUFS) && hp_uring_recv_multishot(ring, fd, userData(op)) == 0 {
                return
            }
            let live = ops[op].live
            release(op)
            guard live else { return }
            byFD[Int(fd)].receive = -1
            handle(token, .receiveEnded(errno: res > 0 || res == -ENOBUFS ? EBUSY : -res))
        case .connect:
            let live = ops[op].live
            release(op)
            guard live else { return }
            byFD[Int(fd)].connect = -1
            if res >= 0 { socketErrorReads += 1 }
            handle(token, .connected(errno: res < 0 ? -res : hp_socket_error(fd)))
        case .send:
            let live = ops[op].live
            release(op)
            guard live else { return }
            byFD[Int(fd)].send = -1
            handle(token, .sent(Int(res)))
        case .close:
            release(op)
            closesInFlight -= 1
            handle(token, .closed(errno: res < 0 ? -res : 0))
        case .watch:
            ops[op].armed = false
            if ops[op].live {
                handle(token, .ready(res < 0 ? .error : IOEvents(rawValue: UInt32(res))))
            }
            if !ops[op].live || !arm(op) {
                if ops[op].live { byFD[Int(fd)].watch = -1 }  // unwatched for want of room: c-ares times out
                release(op)
            }
        }
    }

    package func shutdown() { hp_uring_exit(ring) }
}
