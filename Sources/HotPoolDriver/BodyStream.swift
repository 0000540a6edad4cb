import CShims
import DequeModule
import HTTPTypes
import HotPoolCore
import HotPoolHTTP
import HotPoolIO

/// A response head whose body is streamed: what a streaming round trip answers with once the head
/// arrived.
package struct StreamedHead: Sendable {
    package let head: HTTPResponse
    package let decodedContentCodings: [ContentCoding]
    package let body: BodyStream
}

/// A response body handed to its consumer as it arrives. Confined to the reactor thread: the
/// consumer reaches it only through the driver (`nextBodyChunk`, `abandonBody`), on the reactor,
/// so it needs no lock; it crosses threads only as a reference passed back to the reactor.
///
/// It holds what arrived and was not yet taken. Past `bufferBound`, the reading stops: an
/// HTTP/1.1 connection's socket is not read (`pauseReceiving`), and an HTTP/2 stream's window
/// is not opened again, until the consumer takes bytes. So it holds at most the bound plus what
/// the receives under way bring before the pause takes (epoll: one read of 64 KiB; io_uring: at
/// most its provided buffers, 4 MiB) over HTTP/1.1, or the stream's window over HTTP/2, decoded.
package final class BodyStream: @unchecked Sendable {
    /// Bytes held for the consumer past which the connection is not read.
    package static let bufferBound = 1 << 20

    private var chunks = Deque<[UInt8]>()
    private(set) var bufferedBytes = 0
    /// How the body ended, once it did (the consumer is told after the bytes before it).
    private var end: Result<Void, HotPoolError>?
    /// A consumer waiting for the next chunk.
    private var waiter: Handoff<Result<[UInt8]?, HotPoolError>>?
    /// The exchange, while it runs: where taking bytes lets the reading go on.
    weak var exchange: ExchangeOp?
    /// The HTTP/1.1 connection's receiving is paused for this body.
    var receivePaused = false

    init() {}

    var isFull: Bool { bufferedBytes >= Self.bufferBound }
    /// The body ended (its last bytes may wait for the consumer).
    var hasEnded: Bool { end != nil }

    /// Bytes for the consumer, in order: handed at once to one waiting, else held.
    func push(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, end == nil else { return }
        if let waiter {
            self.waiter = nil
            waiter.tryDeliver(.success(bytes))
        } else {
            chunks.append(bytes)
            bufferedBytes += bytes.count
        }
    }

    /// The body ended, whole or failed; the consumer hears it after the bytes held. Once only.
    func finish(_ result: Result<Void, HotPoolError>) {
        guard end == nil else { return }
        end = result
        exchange = nil
        if chunks.isEmpty, let waiter {
            self.waiter = nil
            waiter.tryDeliver(result.map { nil })
        }
    }

    /// The consumer asks for the next chunk: handed now (a chunk, or nil at the end, or the
    /// failure), or when it comes.
    func next(_ handoff: Handoff<Result<[UInt8]?, HotPoolError>>) {
        if let chunk = chunks.popFirst() {
            bufferedBytes -= chunk.count
            handoff.tryDeliver(.success(chunk))
        } else if let end {
            handoff.tryDeliver(end.map { nil })
        } else if waiter != nil {
            // One reader at a time (an iterator is used from one task): a second is refused.
            handoff.tryDeliver(.failure(.invalidArgument("a streamed body read by two tasks at once")))
        } else {
            waiter = handoff
        }
    }

    /// The consumer gave the body up (dropped it, its task was cancelled): what is held goes, and
    /// a consumer waiting hears `error`.
    func abandon(_ error: HotPoolError) {
        chunks.removeAll()
        bufferedBytes = 0
        if end == nil { end = .failure(error) }
        if let waiter {
            self.waiter = nil
            waiter.tryDeliver(.failure(error))
        }
    }
}

extension PoolDriver {
    /// A caller's streaming round trip of `message` on the connection it leases: answered with the
    /// head once it arrives (within `timeout`), its body then taken through `nextBodyChunk`, within
    /// `bodyTimeout` if given.
    package func requestStreamingExchange(_ handle: LeaseHandle, _ message: ExchangeMessage, timeout: Duration, bodyTimeout: Duration?,
                                          _ handoff: Handoff<Result<StreamedHead, HotPoolError>>) {
        let op = ExchangeOp(message, limits: config.responseLimits, requester: .streaming(handoff, BodyStream()),
                            bodyTimeout: bodyTimeout?.nanoseconds)
        decide(op, on: handle, timeout: timeout.nanoseconds)
    }

    /// Body bytes of a streamed HTTP/1.1 exchange go to its consumer; past the bound, the
    /// connection's receiving pauses (an HTTP/2 stream's window stays shut instead: `relieve`).
    func streamBody(_ slot: Int32, _ stream: BodyStream, _ bytes: [UInt8]) {
        stream.push(bytes)
        guard stream.isFull, !stream.receivePaused, fd[Int(slot)] >= 0 else { return }
        stream.receivePaused = true
        reactor.io.pauseReceiving(fd: fd[Int(slot)])
    }

    /// The consumer asks for the next chunk of `stream` (on the reactor).
    package func nextBodyChunk(_ stream: BodyStream, _ handoff: Handoff<Result<[UInt8]?, HotPoolError>>) {
        stream.next(handoff)
        relieve(stream)
    }

    /// Below the bound again, the exchange's reading goes on: the socket's receiving resumes, or
    /// the stream's window opens.
    private func relieve(_ stream: BodyStream) {
        guard !stream.isFull, let op = stream.exchange, let slot = op.slot, machine.table.isCurrent(slot) else { return }
        let s = Int(slot.slot)
        if let exchange = op.http2, let connection = http2[s] {
            connection.session.openWindow(of: exchange)
            sendHTTP2(slot.slot, connection.session)
        } else if stream.receivePaused {
            resumeReceiving(slot.slot, stream)
        }
    }

    /// Takes the socket's input again after a pause for `stream`.
    func resumeReceiving(_ slot: Int32, _ stream: BodyStream) {
        stream.receivePaused = false
        if fd[Int(slot)] >= 0 { reactor.io.resumeReceiving(fd: fd[Int(slot)], token: machine.table.handle(slot).token) }
    }

    /// The consumer gave the body up (`error`: `cancelled`, or `staleConnection` when it was
    /// dropped): an exchange still under way is abandoned.
    package func abandonBody(_ stream: BodyStream, _ error: HotPoolError) {
        let op = stream.exchange
        stream.abandon(error)
        if let op { abandonExchange(op, error) }
    }

    /// Its requester gave the exchange up: one still under way fails with `error`, the HTTP/1.1
    /// one's connection unusable (a request or response is cut short on it), the HTTP/2 one's
    /// stream reset; its IP is not charged.
    func abandonExchange(_ op: ExchangeOp, _ error: HotPoolError) {
        guard let slot = op.slot, machine.table.isCurrent(slot) else { return }
        if op.http2 != nil {
            guard let cancelled = cancelExchange(slot.slot, where: { $0 === op }) else { return }
            endHTTP2Exchange(slot.slot, cancelled, .abandoned, .failure(error))
        } else if case .exchange(let current)? = io[Int(slot.slot)], current === op {
            failExchange(slot.slot, op, error, .abandoned)
        }
    }
}
