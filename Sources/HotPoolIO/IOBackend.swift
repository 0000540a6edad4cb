import CShims
import Glibc
import HotPoolCore

/// Readiness interest and results, in epoll's bit values.
package struct IOEvents: OptionSet {
    package let rawValue: UInt32
    package init(rawValue: UInt32) { self.rawValue = rawValue }
    static let readable = IOEvents(rawValue: HP_EV_IN)
    static let writable = IOEvents(rawValue: HP_EV_OUT)
    static let error = IOEvents(rawValue: HP_EV_ERR)
    static let hangup = IOEvents(rawValue: HP_EV_HUP)
    static let readHangup = IOEvents(rawValue: HP_EV_RDHUP)
}

/// What an operation's completion reports, for the token it was started with.
package enum IOCompletion {
    /// The connect begun by `hp_tcp_connect` ended: 0, or its errno.
    case connected(errno: Int32)
    /// Bytes arrived; the buffer is valid only during the handler's call.
    case received(UnsafeRawBufferPointer)
    /// Receiving ended: 0 at the peer's end of stream, else an errno.
    case receiveEnded(errno: Int32)
    /// A send ended: the bytes sent (maybe fewer than asked), or -errno.
    case sent(Int)
    /// The socket is closed (and every operation on it over): 0, or close(2)'s errno.
    case closed(errno: Int32)
    /// A watched fd is ready (level-triggered).
    case ready(IOEvents)
}

/// The reactor's I/O seam, completion-shaped: operations are started with a token and end as
/// completions carrying it. epoll does each system call when its fd is ready; io_uring queues
/// them and submits a loop turn's worth at once. Everything runs on the reactor thread.
package protocol IOBackend: AnyObject {
    /// "epoll" or "io_uring".
    var name: String { get }
    /// The system calls this backend made (waits, reads, writes, closes), for the harness.
    var systemCalls: Int { get }
    /// Closes started whose completion has not been delivered yet.
    var closesInFlight: Int { get }
    /// Watches the cross-thread wake-up eventfd: a write to it ends the current or next wait.
    func watchWakeups(fd: Int32) throws(SystemError)
    /// Called on the loop's thread before its first wait.
    func start() throws(SystemError)
    /// Waits for the end of the connect `hp_tcp_connect` began on fd (in progress or done).
    func connect(fd: Int32, token: UInt64)
    /// Starts receiving on fd: `.received` per arrival, until one `.receiveEnded`.
    func receive(fd: Int32, token: UInt64)
    /// Stops taking fd's input while its reader lags (the kernel's socket buffer fills, and TCP
    /// stops the peer): a receive already completed may still be delivered, then none until
    /// `resumeReceiving`.
    func pauseReceiving(fd: Int32)
    /// Takes fd's input again after `pauseReceiving`, as `receive` does.
    func resumeReceiving(fd: Int32, token: UInt64)
    /// Sends `bytes` (valid until the `.sent` completion); one send per fd at a time.
    func send(fd: Int32, token: UInt64, bytes: UnsafeRawBufferPointer)
    /// Ends what is under way on fd, sends `lastBytes` (valid until `.closed`) if any, and closes
    /// fd. Completions already due (epoll's, of calls done at once) may still come before
    /// `.closed`; the owner drops them by token.
    func close(fd: Int32, token: UInt64, lastBytes: UnsafeRawBufferPointer?)
    /// Reports fd's readiness for `interest` (level-triggered) as `.ready` until `unwatch`.
    func watch(fd: Int32, token: UInt64, interest: IOEvents) throws(SystemError)
    func unwatch(fd: Int32)
    /// Submits what is queued, waits until completions or `timeoutNanos` (nil = forever), and
    /// calls `handle` per completion.
    func wait(timeoutNanos: Int64?, _ handle: (UInt64, IOCompletion) -> Void) throws(SystemError)
    /// Frees the backend's kernel objects (the loop has ended).
    func shutdown()
}

/// A failed system call: its name and errno.
package struct SystemError: Error, CustomStringConvertible {
    let call: String
    let errno: Int32
    package var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

extension String {
    /// The text of a NUL-terminated C buffer.
    package init(nulTerminated buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
