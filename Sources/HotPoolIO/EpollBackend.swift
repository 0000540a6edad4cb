import CShims
import Glibc
import HotPoolCore

/// The epoll backend: readiness turned into completions by doing each system call when its fd
/// is ready. Connections are registered edge-triggered for reading and writing from their
/// connect on; what a call does at once (a send, a close) completes on the next wait.
package final class EpollBackend: IOBackend {
    package let name = "epoll"
    package private(set) var systemCalls = 0
    package var closesInFlight: Int { ready.count { if case .closed = $0.completion { true } else { false } } }

    private let epfd: Int32
    private var events = [hp_event](repeating: hp_event(), count: 256)
    private var wakeFD: Int32 = -1

    /// Per fd: what it is doing. `registration` changes with every registration, and an event
    /// carries the one it was registered under, so events of a closed fd whose number was reused
    /// in the same turn are dropped.
    private struct FDState {
        var token: UInt64 = 0
        var registration: UInt32 = 0
        var connecting = false
        var receiving = false
        /// Level-triggered readiness watch (c-ares): delivered as `.ready`.
        var watched = false
        /// A send that met EAGAIN: retried when the fd is writable.
        var unsent: UnsafeRawBufferPointer?
    }
    private var fds: [FDState] = []
    /// Completions of calls done at once, delivered on the next wait.
    private var ready: [(token: UInt64, completion: IOCompletion)] = []
    /// Receiving fds whose last read stopped at the per-turn budget (edge-triggered epoll would
    /// not report those bytes again), and fds that start receiving: read on the next wait.
    private var readAgain: [(fd: Int32, registration: UInt32)] = []
    /// The batches being delivered (swapped with `ready` and `readAgain`).
    private var delivering: [(token: UInt64, completion: IOCompletion)] = []
    private var reading: [(fd: Int32, registration: UInt32)] = []
    /// The last wait delivered `ready` without polling.
    private var skippedPoll = false
    /// Bytes one fd may read per turn, so a peer that never stops sending cannot starve the rest.
    static let readBudgetPerTurn = 256 * 1024
    /// What `recv` reads into (allocated last in `init`, so a failed set-up leaks nothing).
    private let receiveBuffer: UnsafeMutableRawBufferPointer
    /// Bytes one `recv` takes: four 16 KiB TLS records.
    static let receiveBufferSize = 64 * 1024

    package init() throws(SystemError) {
        let fd = hp_epoll_create()
        guard fd >= 0 else { throw SystemError(call: "epoll_create1", errno: -fd) }
        epfd = fd
        receiveBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.receiveBufferSize, alignment: 16)
    }

    deinit { receiveBuffer.deallocate() }

    /// The epoll data of the wake-up eventfd (no fd and registration make it).
    static let wakeData = UInt64.max

    package func watchWakeups(fd: Int32) throws(SystemError) {
        let rc = hp_epoll_add(epfd, fd, HP_EV_IN | HP_EV_ET, Self.wakeData)
        if rc < 0 { throw SystemError(call: "epoll_ctl", errno: -rc) }
        wakeFD = fd
    }

    package func start() throws(SystemError) {}

    /// Registers fd under a new registration number, remembering its token.
    private func add(_ fd: Int32, token: UInt64, events: UInt32) throws(SystemError) {
        while fds.count <= Int(fd) { fds.append(FDState()) }
        let registration = fds[Int(fd)].registration &+ 1
        fds[Int(fd)] = FDState(token: token, registration: registration)
        systemCalls += 1
        let rc = hp_epoll_add(epfd, fd, events, UInt64(UInt32(bitPattern: fd)) | UInt64(registration) << 32)
        if rc < 0 { throw SystemError(call: "epoll_ctl", errno: -rc) }
    }

    package func connect(fd: Int32, token: UInt64) {
        do {
            try add(fd, token: token, events: HP_EV_IN | HP_EV_OUT | HP_EV_RDHUP | HP_EV_ET)
            fds[Int(fd)].connecting = true
        } catch {
            ready.append((token, .connected(errno: error.errno)))
        }
    }

    package func receive(fd: Int32, token: UInt64) {
        fds[Int(fd)].token = token
        fds[Int(fd)].receiving = true
        // Bytes may have come since the registration, and their edge passed unread.
        readAgain.append((fd, fds[Int(fd)].registration))
    }

    package func pauseReceiving(fd: Int32) {
        fds[Int(fd)].receiving = false  // the read loop stops at once; readiness is ignored meanwhile
    }

    package func resumeReceiving(fd: Int32, token: UInt64) {
        receive(fd: fd, token: token)  // reads what came meanwhile, its edge passed
    }

    package func send(fd: Int32, token: UInt64, bytes: UnsafeRawBufferPointer) {
        systemCalls += 1
        let n = hp_send(fd, bytes.baseAddress, bytes.count)
        if n == -Int(EAGAIN) {
            fds[Int(fd)].unsent = bytes
        } else {
            ready.append((token, .sent(n)))
        }
    }

    package func close(fd: Int32, token: UInt64, lastBytes: UnsafeRawBufferPointer?) {
        if let lastBytes {  // best effort: a full socket buffer does not hold the close up
            systemCalls += 1
            _ = hp_send(fd, lastBytes.baseAddress, lastBytes.count)
        }
        if Int(fd) < fds.count { fds[Int(fd)] = FDState(registration: fds[Int(fd)].registration &+ 1) }
        systemCalls += 1
        let rc = hp_close(fd)  // also drops it from epoll
        ready.append((token, .closed(errno: rc < 0 ? -rc : 0)))
    }

    package func watch(fd: Int32, token: UInt64, interest: IOEvents) throws(SystemError) {
        try add(fd, token: token, events: interest.rawValue)
        fds[Int(fd)].watched = true
    }

    package func unwatch(fd: Int32) {
        systemCalls += 1
        _ = hp_epoll_del(epfd, fd)
        fds[Int(fd)] = FDState(registration: fds[Int(fd)].registration &+ 1)
    }

    package func wait(timeoutNanos: Int64?, _ handle: (UInt64, IOCompletion) -> Void) throws(SystemError) {
        // Completions of calls done at once need no system call: every other turn delivers only
        // them (a send's `.sent` would otherwise cost an epoll_wait of its own), and the next
        // polls, so readiness is never starved.
        if !ready.isEmpty && !skippedPoll {
            skippedPoll = true
            return deliverReady(handle)
        }
        skippedPoll = false
        let pending = !ready.isEmpty || !readAgain.isEmpty
        // Round up so a timer is never woken for early.
        let ms = pending ? 0 : timeoutNanos.map { Int32(clamping: $0 / 1_000_000 + ($0 % 1_000_000 == 0 ? 0 : 1)) } ?? -1
        systemCalls += 1
        let n = events.withUnsafeMutableBufferPointer { hp_epoll_wait(epfd, $0.baseAddress, Int32($0.count), ms) }
        if n < 0 { throw SystemError(call: "epoll_wait", errno: -n) }
        deliverReady(handle)
        if !readAgain.isEmpty {
            swap(&readAgain, &reading)
            for (fd, registration) in reading { read(fd, registration, handle) }
            reading.removeAll(keepingCapacity: true)
        }
        for i in 0..<Int(n) {
            if events[i].token == Self.wakeData {
                systemCalls += 1
                _ = hp_eventfd_drain(wakeFD)
                continue
            }
            let fd = Int32(truncatingIfNeeded: events[i].token), registration = UInt32(events[i].token >> 32)
            let bits = IOEvents(rawValue: events[i].events)
            guard Int(fd) < fds.count, fds[Int(fd)].registration == registration else { continue }
            let state = fds[Int(fd)]
            if state.watched {
                handle(state.token, .ready(bits))
                continue
            }
            let writableOrFailed = !bits.isDisjoint(with: [.writable, .error, .hangup])
            if state.connecting && writableOrFailed {
                fds[Int(fd)].connecting = false
                systemCalls += 1
                handle(state.token, .connected(errno: hp_socket_error(fd)))
                guard current(fd, registration) else { continue }
            }
            if let unsent = fds[Int(fd)].unsent, writableOrFailed {
                fds[Int(fd)].unsent = nil
                send(fd: fd, token: state.token, bytes: unsent)
            }
            if fds[Int(fd)].receiving && !bits.isDisjoint(with: [.readable, .readHangup, .hangup, .error]) {
                read(fd, registration, handle)
            }
        }
    }

    /// Delivers what the calls done since the last wait completed; completions they cause wait for the next.
    private func deliverReady(_ handle: (UInt64, IOCompletion) -> Void) {
        guard !ready.isEmpty else { return }
        swap(&ready, &delivering)  // no copy: both keep their storage
        for (token, completion) in delivering { handle(token, completion) }
        delivering.removeAll(keepingCapacity: true)
    }

    private func current(_ fd: Int32, _ registration: UInt32) -> Bool {
        Int(fd) < fds.count && fds[Int(fd)].registration == registration
    }

    /// Reads until EAGAIN, the end of the stream, an error, or this turn's budget; each read is a
    /// completion. The handler may close the fd (or reuse its number) meanwhile: checked per read.
    private func read(_ fd: Int32, _ registration: UInt32, _ handle: (UInt64, IOCompletion) -> Void) {
        var budget = Self.readBudgetPerTurn
        while current(fd, registration) && fds[Int(fd)].receiving {
            guard budget > 0 else { return readAgain.append((fd, registration)) }
            let token = fds[Int(fd)].token
            systemCalls += 1
            let n = hp_recv(fd, receiveBuffer.baseAddress, receiveBuffer.count)
            if n > 0 {
                budget -= n
                handle(token, .received(UnsafeRawBufferPointer(rebasing: receiveBuffer[..<n])))
            } else if n == -Int(EAGAIN) {
                return
            } else {
                fds[Int(fd)].receiving = false
                return handle(token, .receiveEnded(errno: Int32(-n)))
            }
        }
    }

    package func shutdown() { _ = hp_close(epfd) }
}
