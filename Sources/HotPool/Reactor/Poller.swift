import CShims
import Glibc

/// Readiness interest and results, in epoll's bit values.
struct IOEvents: OptionSet {
    let rawValue: UInt32
    static let readable = IOEvents(rawValue: HP_EV_IN)
    static let writable = IOEvents(rawValue: HP_EV_OUT)
    static let error = IOEvents(rawValue: HP_EV_ERR)
    static let hangup = IOEvents(rawValue: HP_EV_HUP)
    static let readHangup = IOEvents(rawValue: HP_EV_RDHUP)
}

/// The reactor's readiness backend: the seam behind which epoll (and later io_uring) sits.
/// An edge-triggered registration reports readiness when it changes, and its owner reads or
/// writes until the call would block; a level-triggered one reports it while it lasts.
protocol Poller {
    func register(fd: Int32, token: UInt64, interest: IOEvents, edgeTriggered: Bool) throws(SystemError)
    func unregister(fd: Int32)
    /// Waits until readiness or `timeoutNanos` (nil = forever) and calls `handle` per event.
    func wait(timeoutNanos: Int64?, _ handle: (UInt64, IOEvents) -> Void) throws(SystemError)
    func close()
}

/// A failed system call: its name and errno.
struct SystemError: Error, CustomStringConvertible {
    let call: String
    let errno: Int32
    var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// epoll.
final class EpollPoller: Poller {
    private let epfd: Int32
    private var events = [hp_event](repeating: hp_event(), count: 256)

    init() throws(SystemError) {
        let fd = hp_epoll_create()
        guard fd >= 0 else { throw SystemError(call: "epoll_create1", errno: -fd) }
        epfd = fd
    }

    func register(fd: Int32, token: UInt64, interest: IOEvents, edgeTriggered: Bool) throws(SystemError) {
        let rc = hp_epoll_add(epfd, fd, interest.rawValue | (edgeTriggered ? HP_EV_ET : 0), token)
        if rc < 0 { throw SystemError(call: "epoll_ctl", errno: -rc) }
    }

    func unregister(fd: Int32) {
        _ = hp_epoll_del(epfd, fd)
    }

    func wait(timeoutNanos: Int64?, _ handle: (UInt64, IOEvents) -> Void) throws(SystemError) {
        // Round up so a timer is never woken for early.
        let ms = timeoutNanos.map { Int32(clamping: $0 / 1_000_000 + ($0 % 1_000_000 == 0 ? 0 : 1)) } ?? -1
        let n = events.withUnsafeMutableBufferPointer { hp_epoll_wait(epfd, $0.baseAddress, Int32($0.count), ms) }
        if n < 0 { throw SystemError(call: "epoll_wait", errno: -n) }
        for i in 0..<Int(n) { handle(events[i].token, IOEvents(rawValue: events[i].events)) }
    }

    func close() { _ = hp_close(epfd) }
}

extension String {
    /// The text of a NUL-terminated C buffer.
    init(nulTerminated buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
