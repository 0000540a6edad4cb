import CShims
import HTTPTypes
import HotPoolCore
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine

/// A request in the form its connection speaks.
package enum ExchangeMessage: Sendable {
    /// HTTP/1.1 wire bytes, whether the request is a HEAD (its response has no body), and
    /// whether its response body is decoded by its `Content-Encoding`.
    case http1([UInt8], isHead: Bool, decodesContent: Bool)
    case http2(HTTP2Request)
}

/// One request/response exchange under way on a leased connection.
final class ExchangeOp {
    /// Who waits for the response.
    enum Requester {
        /// A caller's `roundTrip`.
        case caller(Handoff<Result<HotResponse, HotPoolError>>)
        /// A caller's `execute` (the driver puts the connection back once it is answered).
        case execute(Handoff<Result<HotResponse, HotPoolError>>)
        /// A caller's streaming round trip: the head goes to the handoff once it arrives, the body
        /// to the stream as it comes.
        case streaming(Handoff<Result<StreamedHead, HotPoolError>>, BodyStream)
        /// A caller's round trip whose request body it streams: the answer goes to the upload.
        case upload(RequestUpload)
        /// The pool's own health check.
        case healthCheck
    }

    /// The HTTP/1.1 request's bytes, and its response's parser.
    let request: [UInt8]
    var parser: HTTP1ResponseParser
    /// The HTTP/2 request's stream; nil on an HTTP/1.1 connection.
    let http2: HTTP2Exchange?
    let requester: Requester
    /// The connection an `execute` leased for this exchange.
    var lease: LeaseHandle?
    /// The stream lease it runs on, on an HTTP/2 connection (nil for a health check).
    var streamLease: LeaseHandle?
    /// The `execute` this exchange runs, if any: its first attempt is asked again once if a
    /// GOAWAY leaves its request unprocessed, and its retry policy decides on the outcome.
    var execute: PendingExecute?

    /// Asked again if a GOAWAY leaves the request unprocessed: once, on an `execute`'s first
    /// attempt (a later attempt is a retry, whose count an unprocessed request would undo).
    var runsAgainIfUnprocessed: Bool { execute.map { !$0.retried && $0.attempt == 1 } ?? false }

    /// The bound (ns) on the body once the head arrived; nil: the exchange's one deadline covers both.
    let bodyTimeout: Int64?
    /// Its response head arrived (and the machine was told, when it has a `bodyTimeout`).
    var headArrived = false
    /// The streamed body's consumer side, for a streaming round trip.
    let bodyStream: BodyStream?
    /// The request body its caller streams, if it does.
    let upload: RequestUpload?
    /// The connection it runs on, once started.
    var slot: SlotHandle?

    init(_ message: ExchangeMessage, limits: ResponseLimits, requester: Requester, bodyTimeout: Int64? = nil) {
        if case .streaming(_, let stream) = requester { bodyStream = stream } else { bodyStream = nil }
        if case .upload(let upload) = requester { self.upload = upload } else { upload = nil }
        let streams = bodyStream != nil
        switch message {
        case .http1(let bytes, let isHead, let decodesContent):
            (request, http2) = (bytes, nil)
            parser = HTTP1ResponseParser(limits: limits, isHeadRequest: isHead, decodesContent: decodesContent, streamsBody: streams)
        case .http2(let request):
            (self.request, http2) = ([], HTTP2Exchange(request: request, limits: limits))
            parser = HTTP1ResponseParser(limits: limits, isHeadRequest: request.isHead)
        }
        (self.requester, self.bodyTimeout) = (requester, bodyTimeout)
        http2?.reportsHead = watchesHead
        http2?.streamsBody = streams
        bodyStream?.exchange = self
        upload?.exchange = self
    }

    /// The head's arrival matters: it moves the deadline, or is handed to a streaming caller.
    var watchesHead: Bool { bodyTimeout != nil || bodyStream != nil }

    /// What a timeout of the exchange bounded: the wait for the head, or the body after it.
    var timeoutPhase: HotPoolError.Phase { headArrived && bodyTimeout != nil ? .responseBody : .request }

    /// Hands the outcome to the caller who asked (a probe's outcome is the machine's alone). A
    /// streaming caller gets the head now if it did not yet, then the last bytes and the end.
    func finish(_ result: Result<HotResponse, HotPoolError>) {
        switch requester {
        case .caller(let handoff), .execute(let handoff):
            handoff.tryDeliver(result)
        case .streaming(let handoff, let stream):
            switch result {
            case .success(let response):
                handoff.tryDeliver(.success(StreamedHead(head: response.head, decodedContentCodings: response.decodedContentCodings,
                                                         body: stream)))
                stream.push(response.body)
                stream.finish(.success(()))
            case .failure(let error):
                if !handoff.tryDeliver(.failure(error)) { stream.finish(.failure(error)) }
            }
        case .upload(let upload):
            upload.finish(result)
        case .healthCheck:
            break
        }
    }
}

extension PoolDriver {
    /// Socket bytes a connection may receive while nothing was asked on it (since its last
    /// exchange or health check): more than a few TLS records that carry no data (tickets), or on
    /// HTTP/2 a few control frames (SETTINGS, a keep-alive PING), is a server streaming at a
    /// connection it was not asked anything on.
    static let readOnBudget = 64 * 1024

    /// Starts the exchange the machine accepted: the request is encrypted whole and sent (on an
    /// HTTP/2 connection, as a new stream); the answer is read as it arrives (`received`).
    /// Nothing is unread on the connection (see `completeExchange` and `received`).
    func startExchange(_ slot: Int32, _ op: ExchangeOp) {
        if op.http2 != nil { return startHTTP2Exchange(slot, op) }
        let s = Int(slot)
        io[s] = .exchange(op)
        op.slot = machine.table.handle(slot)
        idleBytes[s] = 0
        guard let tls = tls[s], http2[s] == nil else {
            return failExchange(slot, op, .networkError(host: machine.hostName(slot), ip: machine.ipAddress(slot), reason: "HTTP version mismatch"))
        }
        let written = op.request.withUnsafeBytes { writePlaintext(tls, $0) }
        guard written else { return failExchange(slot, op, tlsError(slot, HP_TLS_ERROR)) }
        flush(slot)
        offerRoom(slot, op)
    }

    /// Has the engine encrypt all of `bytes` into its output; false on a TLS failure (a memory
    /// BIO takes every write whole, so nothing else stops it).
    func writePlaintext(_ tls: OpaquePointer, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var written = 0
        while written < bytes.count {
            let rc = hp_tls_write(tls, bytes.baseAddress! + written, Int32(clamping: bytes.count - written))
            guard rc > 0 else { return false }
            written += Int(rc)
        }
        return true
    }

    /// Sends the health-check request on an idle connection the machine took for it.
    func startProbe(_ slot: Int32) {
        let identity = identity[Int(slot)]!
        let request = HTTPRequest(method: .get, scheme: "https", authority: identity.authority, path: config.healthCheckPath!)
        let message = identity.message(request, body: [], http2: http2[Int(slot)] != nil)
        startExchange(slot, ExchangeOp(message, limits: config.responseLimits, requester: .healthCheck))
    }

    /// Reads what was fed into the exchange's response until it is complete, fails, or the
    /// engine wants more.
    func stepExchange(_ slot: Int32, _ op: ExchangeOp) {
        switch readResponse(slot, op) {
        case .complete(let response, let endedWithoutCloseNotify):
            completeExchange(slot, op, response, endedWithoutCloseNotify: endedWithoutCloseNotify)
        case .failed(let error): failExchange(slot, op, error)
        case .wantsMore: flush(slot)  // what reading wrote (a KeyUpdate's answer) goes out
        }
    }

    /// How a round trip's reading ended for now.
    private enum ReadOutcome {
        /// The whole response; `endedWithoutCloseNotify` when its body ran to a close of the
        /// connection that came with no TLS close_notify (it may be cut short).
        case complete(HTTP1ResponseParser.Complete, endedWithoutCloseNotify: Bool)
        case failed(HotPoolError)
        /// Everything fed was read.
        case wantsMore
    }

    /// Reads and parses until the response is complete, fails, or no read can go on now.
    private func readResponse(_ slot: Int32, _ op: ExchangeOp) -> ReadOutcome {
        let tls = tls[Int(slot)]
        let host = machine.hostName(slot), ip = machine.ipAddress(slot)
        while true {
            let rc = hp_tls_read(tls, readBuffer.baseAddress, Int32(readBuffer.count))
            do {
                if rc > 0 {
                    if let response = try op.parser.feed(UnsafeRawBufferPointer(rebasing: readBuffer[..<Int(rc)])) {
                        return .complete(response, endedWithoutCloseNotify: false)
                    }
                    if op.watchesHead && !op.headArrived, let head = op.parser.responseHead {
                        responseHeadArrived(slot, op, head, op.parser.decodedCodings)
                    }
                    if let stream = op.bodyStream, op.headArrived { streamBody(slot, stream, op.parser.takeBody()) }
                } else if rc == HP_TLS_WANT_READ || rc == HP_TLS_WANT_WRITE {
                    return .wantsMore
                } else if rc == HP_TLS_CLOSED {
                    let response = try op.parser.finishAtEOF()  // a close-delimited body, or it throws
                    let unconfirmed = hp_tls_close_notify_received(tls) == 0
                    if unconfirmed && config.closeDelimitedBodyRequiresCloseNotify { return .failed(.unexpectedEOF(host: host, ip: ip)) }
                    return .complete(response, endedWithoutCloseNotify: unconfirmed)
                } else {
                    return .failed(tlsError(slot, rc))
                }
            } catch {
                return .failed(HotPoolError(error, host: host, ip: ip, limits: config.responseLimits))
            }
        }
    }

    /// The exchange's response head arrived: with a `bodyTimeout`, the machine moves its deadline
    /// (a streamed body with none has none: its consumer decides how long it takes); a streaming
    /// caller gets the head.
    func responseHeadArrived(_ slot: Int32, _ op: ExchangeOp, _ head: HTTPResponse, _ codings: [ContentCoding]) {
        op.headArrived = true
        if case .streaming(let handoff, let stream) = op.requester {
            handoff.tryDeliver(.success(StreamedHead(head: head, decodedContentCodings: codings, body: stream)))
        }
        guard let bodyTimeout = op.bodyTimeout ?? (op.bodyStream != nil ? .max : nil) else { return }
        send(.responseHeadArrived(machine.table.handle(slot), stream: op.streamLease, bodyTimeout: bodyTimeout))
    }

    /// The response is complete and goes to its requester. The connection stays usable only if
    /// its head allows it and nothing else is unread: bytes after the response (in the same
    /// read, or read on here to the end of what arrived) could only be taken for the answer to a
    /// later request, so the machine retires it, as it does after a close from the server.
    private func completeExchange(_ slot: Int32, _ op: ExchangeOp, _ response: HTTP1ResponseParser.Complete,
                                  endedWithoutCloseNotify: Bool) {
        io[Int(slot)] = nil
        if let stream = op.bodyStream, stream.receivePaused { resumeReceiving(slot, stream) }
        let unusable: CloseReason? =
            if op.parser.trailingBytes > 0 { .unsolicitedData }
            else if let upload = op.upload, !upload.bodyEnded { .requestUnfinished }
            else if !response.keepAlive { .remoteClosed }
            else { unreadInput(slot) }
        send(.exchangeEnded(machine.table.handle(slot), .answered(status: response.head.status.code, unusable: unusable)))
        if let failure = response.decodingFailure {
            return finish(op, .failure(HotPoolError(failure, host: machine.hostName(slot), ip: machine.ipAddress(slot), limits: config.responseLimits)))
        }
        let answer = HotResponse(head: response.head, body: response.body, decodedContentCodings: response.decodedCodings,
                                 bodyEndedWithoutCloseNotify: endedWithoutCloseNotify, connectionReusable: unusable == nil)
        finish(op, .success(answer))
    }

    /// The exchange failed (or timed out, or was `abandoned`): the machine marks the connection
    /// unhealthy and has its socket closed; it is destroyed (`unhealthyOnReturn`) when the caller
    /// returns it.
    func failExchange(_ slot: Int32, _ op: ExchangeOp, _ error: HotPoolError,
                      _ outcome: PoolStateMachine.ExchangeOutcome = .failed) {
        io[Int(slot)] = nil
        logger.debug("round trip failed", metadata: [
            "host": "\(machine.hostName(slot))", "ip": "\(machine.ipAddress(slot))", "error": "\(error)",
        ])
        send(.exchangeEnded(machine.table.handle(slot), outcome))
        finish(op, .failure(error))
    }

    func tlsError(_ slot: Int32, _ rc: Int32) -> HotPoolError {
        .tlsError(host: machine.hostName(slot), ip: machine.ipAddress(slot), reason: tlsErrorString(tls[Int(slot)], rc))
    }

    /// Reads what was fed to a connection no exchange is reading, to the end of it (TLS 1.3
    /// session tickets are consumed there and yield no bytes). Returns why the connection can
    /// carry no further request, or nil if nothing was unread.
    func unreadInput(_ slot: Int32) -> CloseReason? {
        guard let tls = tls[Int(slot)] else { return nil }  // its socket is closed already
        let rc = hp_tls_read(tls, readBuffer.baseAddress, Int32(readBuffer.count))
        flush(slot)
        if rc > 0 {
            logger.debug("unsolicited bytes from the server", metadata: ["ip": "\(machine.ipAddress(slot))", "bytes": "\(rc)"])
            return .unsolicitedData
        }
        if rc == HP_TLS_WANT_READ || rc == HP_TLS_WANT_WRITE { return nil }
        return rc == HP_TLS_CLOSED ? .remoteClosed : .networkError
    }
}
