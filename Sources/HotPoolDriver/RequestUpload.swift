import CShims
import HotPoolCore
import HotPoolHTTP
import HotPoolIO

/// A request body its caller hands over piece by piece while the exchange runs, and the answer
/// the caller reads once it handed the last piece. Confined to the reactor thread, as `BodyStream`
/// is: the caller reaches it only through the driver (`writeRequestBody`, `endRequestBody`,
/// `abandonUpload`), so it needs no lock.
///
/// The caller hands the next piece only once told to (`ready`): at once while the bytes not yet
/// sent (the TLS engine's output, and over HTTP/2 what waits for the stream's flow-control
/// window) are under `bufferBound`, else once sends bring them under it. So the pool holds at
/// most the bound plus one piece, however slowly the server reads.
package final class RequestUpload: @unchecked Sendable {
    /// Unsent body bytes under which the caller is asked for the next piece.
    package static let bufferBound = 1 << 20

    /// The body's length by the request's `Content-Length`; nil: unknown (HTTP/1.1 sends it with
    /// chunked coding; HTTP/2's DATA frames need none).
    let declaredLength: Int?
    /// Body bytes handed over so far.
    var handedBytes = 0
    /// The body's end was written (with its last piece, or after it).
    var bodyEnded = false
    /// The exchange, while it runs.
    weak var exchange: ExchangeOp?
    /// The caller waiting to hand the next piece: true, go on; false, the exchange ended (the
    /// answer, or why it failed, is for `endRequestBody`).
    private var ready: Handoff<Bool>?
    private var result: Result<HotResponse, HotPoolError>?
    private var answerWaiter: Handoff<Result<HotResponse, HotPoolError>>?

    package init(declaredLength: Int?) {
        self.declaredLength = declaredLength
    }

    /// The caller waits to hand its next piece.
    func waitForRoom(_ handoff: Handoff<Bool>) {
        if result != nil {
            handoff.tryDeliver(false)
        } else {
            ready = handoff
        }
    }

    /// A caller waits for room.
    var isWaitingForRoom: Bool { ready != nil }

    /// There is room for the next piece: the caller waiting hands it.
    func makeRoom() {
        ready.take()?.tryDeliver(true)
    }

    /// The exchange ended: a caller waiting for room stops handing pieces, and the answer goes to
    /// the caller once it asks (`awaitAnswer`). Once only.
    func finish(_ result: Result<HotResponse, HotPoolError>) {
        guard self.result == nil else { return }
        self.result = result
        exchange = nil
        ready.take()?.tryDeliver(false)
        if let answerWaiter { answerWaiter.tryDeliver(result) }
    }

    /// The caller waits for the answer.
    func awaitAnswer(_ handoff: Handoff<Result<HotResponse, HotPoolError>>) {
        if let result {
            handoff.tryDeliver(result)
        } else {
            answerWaiter = handoff
        }
    }
}

extension PoolDriver {
    /// A caller's round trip of `message` with a body it streams: `ready` is told once the head
    /// went out and the first piece may follow (`writeRequestBody`), or that the exchange ended.
    package func requestUploadExchange(_ handle: LeaseHandle, _ message: ExchangeMessage, timeout: Duration, bodyTimeout: Duration?,
                                       _ upload: RequestUpload, _ ready: Handoff<Bool>) {
        upload.waitForRoom(ready)
        let op = ExchangeOp(message, limits: config.responseLimits, requester: .upload(upload), bodyTimeout: bodyTimeout?.nanoseconds)
        decide(op, on: handle, timeout: timeout.nanoseconds)
    }

    /// The next piece of the body: written, and `ready` told once the next may follow. The piece
    /// that completes the `Content-Length` ends the body (the answer may come before the sequence
    /// says it ended); one past it fails the exchange (its connection cannot carry another request).
    package func writeRequestBody(_ upload: RequestUpload, _ piece: [UInt8], _ ready: Handoff<Bool>) {
        upload.waitForRoom(ready)
        guard let op = upload.exchange, let slot = op.slot, machine.table.isCurrent(slot) else { return }
        if piece.isEmpty { return offerRoom(slot.slot, op) }
        if let declared = upload.declaredLength, upload.handedBytes + piece.count > declared {
            return abandonExchange(op, .invalidRequest("the streamed body is longer than its Content-Length, \(declared)"))
        }
        upload.handedBytes += piece.count
        upload.bodyEnded = upload.handedBytes == upload.declaredLength
        sendBody(slot.slot, op, piece, end: upload.bodyEnded)
    }

    /// The caller handed its last piece (or stopped, told the exchange ended): the body's end is
    /// written (one shorter than its `Content-Length` fails the exchange instead), and `answer`
    /// gets the response once it is in.
    package func endRequestBody(_ upload: RequestUpload, _ answer: Handoff<Result<HotResponse, HotPoolError>>) {
        upload.awaitAnswer(answer)
        guard let op = upload.exchange, !upload.bodyEnded, let slot = op.slot, machine.table.isCurrent(slot) else { return }
        if let declared = upload.declaredLength, upload.handedBytes != declared {
            let sent = upload.handedBytes
            return abandonExchange(op, .invalidRequest("the streamed body ended after \(sent) of its Content-Length's \(declared) bytes"))
        }
        upload.bodyEnded = true
        sendBody(slot.slot, op, [], end: true)
    }

    /// The caller gave the body up (its task was cancelled, its sequence threw): the exchange is
    /// abandoned with `error`.
    package func abandonUpload(_ upload: RequestUpload, _ error: HotPoolError) {
        guard let op = upload.exchange else { return }
        abandonExchange(op, error)
    }

    /// Writes body bytes (and with `end`, the body's end): over HTTP/1.1 into the TLS engine's
    /// output, as they are or as a chunk; over HTTP/2 to the stream's body, framed as its window
    /// allows. Then the caller may hand the next piece if there is room.
    private func sendBody(_ slot: Int32, _ op: ExchangeOp, _ bytes: [UInt8], end: Bool) {
        let s = Int(slot)
        if let exchange = op.http2 {
            guard let connection = http2[s] else { return }  // closed: its exchanges failed already
            if let why = connection.session.appendBody(exchange, bytes, end: end) {
                let error = HotPoolError.networkError(host: machine.hostName(slot), ip: machine.ipAddress(slot), reason: "HTTP/2: \(why)")
                return abandonExchange(op, error)
            }
            guard sendHTTP2(slot, connection.session) else { return http2Broke(slot, connection, (.networkError, tlsError(slot, HP_TLS_ERROR))) }
            // The END_STREAM that went out may have closed a stream the server had ended.
            guard endClosedStreams(slot, connection, broken: nil) else { return }
        } else {
            guard let tls = tls[s], let upload = op.upload else { return }
            // A chunk is written whole, in one go: its size line and CRLF in records of their own
            // would be records of a few bytes.
            let framed = upload.declaredLength == nil ? HTTP1Request.chunk(bytes, last: end) : bytes
            let written = framed.withUnsafeBytes { writePlaintext(tls, $0) }
            guard written else { return failExchange(slot, op, tlsError(slot, HP_TLS_ERROR)) }
            flush(slot)
        }
        offerRoom(slot, op)
    }

    /// Lets the exchange's caller hand its next piece if there is room now; else, on an HTTP/2
    /// connection, the exchange waits among those the connection's sends make room for.
    func offerRoom(_ slot: Int32, _ op: ExchangeOp) {
        makeRoom(slot, op)
        guard let upload = op.upload, upload.isWaitingForRoom, let connection = http2[Int(slot)],
              !connection.uploadsWaitingForRoom.contains(where: { $0 === op }) else { return }
        connection.uploadsWaitingForRoom.append(op)
    }

    /// Lets the exchange's caller hand its next piece if the bytes not yet sent are under the bound.
    private func makeRoom(_ slot: Int32, _ op: ExchangeOp) {
        guard let upload = op.upload, upload.isWaitingForRoom, let tls = tls[Int(slot)] else { return }
        var unsent = hp_tls_output_pending(tls)
        if let exchange = op.http2, let connection = http2[Int(slot)] { unsent += connection.session.bodyBytesWaiting(exchange) }
        if unsent < RequestUpload.bufferBound { upload.makeRoom() }
    }

    /// A send on the connection ended: the uploads waiting for room on it may get it.
    func makeRoomForUploads(_ slot: Int32) {
        if case .exchange(let op)? = io[Int(slot)] { return makeRoom(slot, op) }
        guard let connection = http2[Int(slot)], !connection.uploadsWaitingForRoom.isEmpty else { return }
        for op in connection.uploadsWaitingForRoom { makeRoom(slot, op) }
        connection.uploadsWaitingForRoom.removeAll { !($0.upload?.isWaitingForRoom ?? false) }
    }
}
