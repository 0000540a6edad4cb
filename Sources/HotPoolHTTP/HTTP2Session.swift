import CShims
import HTTPTypes
import HotPoolCore

/// One request's stream on an HTTP/2 connection, and its response as the frames deliver it,
/// within the pool's `ResponseLimits` (interim responses and trailers are read and dropped).
package final class HTTP2Exchange {
    /// How the stream ended.
    package enum Outcome {
        /// A whole response.
        case answered(HTTPResponse, body: ResponseBody)
        /// Refused here: a limit was passed or a field was malformed (the stream was reset).
        case refused(ResponseError)
        /// Reset by the server, or by nghttp2 for a protocol error, with this HTTP/2 error code
        /// (REFUSED_STREAM, 7: the server did not process it).
        case reset(errorCode: UInt32)
    }

    let request: HTTP2Request
    private let limits: ResponseLimits
    /// The stream's id once it is open.
    fileprivate(set) var stream: Int32 = 0
    /// Its head's arrival is reported (`HTTP2Session.takeHeadsArrived`): its requester's deadline
    /// changes then, or it gets the head of a streamed body.
    package var reportsHead = false
    /// Its consumer takes the body as it comes (`takeBody`): `maxBodyBytes` does not apply, and
    /// its stream's window opens only as the consumer takes bytes (`HTTP2Session.openWindow(of:)`).
    package var streamsBody: Bool {
        get { body.streams }
        set { body.streams = newValue }
    }
    /// Bytes received on a streamed body's stream not yet given back to its window.
    fileprivate var bytesNotGivenBack = 0
    /// Set once the stream closed.
    package private(set) var outcome: Outcome?
    /// The server ended the stream (END_STREAM).
    fileprivate var remoteEnded = false

    /// Body bytes received whose flow-control window the session has not opened again yet.
    fileprivate var unconsumedBytes = 0

    private var blockStatus: Int?
    /// The final head's fields, gathered and made into `HTTPFields` once the head ended.
    private var fields: [HTTPField] = []
    private var head: HTTPResponse?
    private var body: ResponseBody
    private var headerBytes = 0
    private var interimResponses = 0
    private var refusal: ResponseError?

    package init(request: HTTP2Request, limits: ResponseLimits) {
        self.request = request
        self.limits = limits
        body = ResponseBody(limits: limits)
    }

    /// One field of a header block; false refuses the stream.
    fileprivate func header(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Bool {
        guard refusal == nil else { return false }
        if name.first == UInt8(ascii: ":") {
            // nghttp2 has checked the response's pseudo-header fields: only :status, 3 digits.
            if name.elementsEqual(":status".utf8) { blockStatus = Int(String(decoding: value, as: UTF8.self)) }
            return true
        }
        guard head == nil, let status = blockStatus, status >= 200 else { return true }  // trailers, 1xx fields
        headerBytes += name.count + value.count + 4  // as "name: value\r\n"
        if headerBytes > limits.maxHeaderBytes { return refuse(.headersTooLarge) }
        if fields.count >= limits.maxHeaderFields { return refuse(.tooManyHeaderFields) }
        guard let fieldName = HTTPField.Name(String(decoding: name, as: UTF8.self)) else { return refuse(.malformedHeader) }
        fields.append(HTTPField(name: fieldName, lenientValue: value))  // nghttp2 has checked the value
        return true
    }

    /// A header block ended: an interim response, the final head, or the trailers.
    fileprivate func headersEnded() {
        guard refusal == nil, head == nil, let status = blockStatus else { return }
        blockStatus = nil
        if status >= 200 {
            let head = HTTPResponse(status: .init(code: status), headerFields: HTTPFields(fields))
            body.start(head, decodes: request.decodesContent && ResponseBody.exists(status: status, isHeadRequest: request.isHead))
            self.head = head
        } else {
            interimResponses += 1
            if interimResponses > ResponseLimits.maxInterimResponses { _ = refuse(.tooManyInterimResponses) }
        }
    }

    /// Body bytes; false refuses the stream.
    fileprivate func data(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard refusal == nil else { return false }
        do {
            try body.append(bytes)
        } catch {
            return refuse(error)
        }
        return true
    }

    /// The final head arrived.
    fileprivate var hasHead: Bool { head != nil }
    /// The final head, once it arrived.
    package var responseHead: HTTPResponse? { head }
    /// The codings the body is decoded from (known with the head).
    package var decodedCodings: [ContentCoding] { body.decodedCodings }
    /// Hands over the body bytes received so far (a streamed body).
    package func takeBody() -> [UInt8] { body.takeBytes() }

    /// Body bytes it holds, as they came (received and not yet handed to its requester); a
    /// streamed body's are bounded by its own window, not counted with the others.
    fileprivate var heldBytes: Int { streamsBody ? 0 : body.receivedBytes }

    /// The stream closed: answered if the server ended it with no error after the final head; a
    /// RST_STREAM with NO_ERROR before its END_STREAM cuts the response short (a reset, NO_ERROR).
    fileprivate func closed(errorCode: UInt32) {
        if let refusal {
            outcome = .refused(refusal)
        } else if errorCode == 0 && remoteEnded, let head {
            body.end()
            outcome = .answered(head, body: body)
        } else if errorCode == 0 && head == nil {
            outcome = .reset(errorCode: HTTP2ErrorCode.protocolError)  // ended with no response
        } else {
            outcome = .reset(errorCode: errorCode)
        }
    }

    private func refuse(_ error: ResponseError) -> Bool {
        refusal = error
        return false
    }
}

/// Why nghttp2 refused a session or broke one: its library code and text.
package struct HTTP2SessionError: Error, CustomStringConvertible {
    /// nghttp2's negative library code (`NGHTTP2_ERR_*`).
    let code: Int32
    /// The server sent more PING or SETTINGS frames than the session could queue acknowledgements
    /// for (its output was not taken: the connection's unsent output is over its cap).
    package var isFlood: Bool { code == HP_H2_ERR_FLOODED }
    package var isOutOfMemory: Bool { code == HP_H2_ERR_NOMEM }
    package var description: String { String(cString: hp_h2_error_string(code)) }
}

/// An HTTP/2 client connection's protocol state: an nghttp2 session (sans I/O) whose preface
/// has the fingerprint's SETTINGS and window increment. The driver feeds it the plaintext it
/// reads and sends what it writes; streams record their responses as `receive` runs.
///
/// Response bodies are bounded per connection through flow control on the streams' windows: a
/// stream's DATA opens its window again (WINDOW_UPDATE) at once while the connection's open
/// streams hold at most `heldBodyLimit` body bytes; past it, only the oldest open stream's does,
/// and the others' wait until streams end. So a connection holds at most about `heldBodyLimit`,
/// plus one response (the oldest, within its own limit), plus one stream window for each other
/// open stream, whatever the server sends. The connection's window opens again for every byte at
/// once: held back for waiting streams it could starve the oldest one (nghttp2 sends the
/// connection's WINDOW_UPDATE only once half the window was given back).
package final class HTTP2Session {
    private var session: OpaquePointer!
    private var streams: [Int32: HTTP2Exchange] = [:]
    /// Exchanges whose stream closed since the last `takeEnded`, in the order they closed.
    private var ended: [HTTP2Exchange] = []
    /// Exchanges whose head arrived since the last `takeHeadsArrived`, of those that report it.
    private var headsArrived: [HTTP2Exchange] = []
    private let priority: HTTP2Priority?
    /// Body bytes the open streams hold, and past which only the oldest one's window opens.
    private var heldBodyBytes = 0
    private let heldBodyLimit: Int
    /// Open streams whose received bytes wait for their window to open.
    private var streamsWaitingForWindow = 0
    /// The last stream the server's GOAWAY said it will process; nil until a GOAWAY comes.
    package private(set) var goAwayLastStream: Int32?
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS (unbounded until its SETTINGS come).
    package private(set) var maxConcurrentStreams: UInt32 = .max
    /// The server's first SETTINGS arrived.
    package private(set) var settingsReceived = false
    /// PINGs sent and not yet acknowledged.
    package private(set) var pingsUnanswered = 0
    /// DATA bytes the server may still send on streams this side reset (their windows when
    /// reset): bytes in flight, not input nobody asked for. Zeroed when a stream or a PING
    /// starts: the server sent what was in flight before it read the reset, so before the
    /// answer to what follows it.
    package private(set) var windowsOfStreamsResetHere = 0

    /// Throws when nghttp2 refuses the fingerprint's preface (a setting out of range) or is out of memory.
    package init(fingerprint: HTTP2Fingerprint, heldBodyLimit: Int) throws(HTTP2SessionError) {
        priority = fingerprint.headersPriority
        self.heldBodyLimit = heldBodyLimit
        let settings = fingerprint.settings.map { hp_h2_setting(id: Int32($0.id), value: $0.value) }
        var callbacks = Self.callbacks
        let user = Unmanaged.passUnretained(self).toOpaque()
        var error: Int32 = 0
        session = settings.withUnsafeBufferPointer {
            hp_h2_new(&callbacks, user, $0.baseAddress, $0.count, fingerprint.connectionWindowIncrement, &error)
        }
        if session == nil { throw HTTP2SessionError(code: error) }
    }

    deinit {
        hp_h2_free(session)
    }

    /// True once the session neither reads nor writes: a GOAWAY it sent for a protocol error
    /// (or the server's GOAWAY, once every stream ended).
    package var hasEnded: Bool { hp_h2_is_open(session) == 0 && goAwayLastStream == nil }

    /// Opens a stream for the exchange's request; returns nil, or nghttp2's reason for refusing it.
    package func open(_ exchange: HTTP2Exchange) -> String? {
        let request = exchange.request
        let stream = request.storage.withUnsafeBufferPointer { storage in
            let base = storage.baseAddress!
            let fields = request.fields.map { field in
                hp_h2_field(name: base + Int(field.nameStart), namelen: Int(field.nameCount),
                            value: base + Int(field.valueStart), valuelen: Int(field.valueCount))
            }
            return fields.withUnsafeBufferPointer { fields in
                request.body.withUnsafeBufferPointer { body in
                    hp_h2_submit_request(session, fields.baseAddress, fields.count, body.baseAddress, body.count, request.streamsBody ? 1 : 0,
                                         Int32(priority?.weight ?? 0), priority?.dependency ?? 0, priority?.exclusive == true ? 1 : 0)
                }
            }
        }
        guard stream > 0 else { return String(cString: hp_h2_error_string(stream)) }
        exchange.stream = stream
        streams[stream] = exchange
        windowsOfStreamsResetHere = 0
        return nil
    }

    /// Adds `bytes` to the streamed body of the exchange's request (and with `end`, ends it); they
    /// go out as DATA as the server's flow control lets them (`drainOutput`). Nil, or nghttp2's
    /// reason for refusing (no streamed body is open on the stream).
    package func appendBody(_ exchange: HTTP2Exchange, _ bytes: [UInt8], end: Bool) -> String? {
        let rc = bytes.withUnsafeBufferPointer { hp_h2_body_append(session, exchange.stream, $0.baseAddress, $0.count, end ? 1 : 0) }
        return rc == 0 ? nil : String(cString: hp_h2_error_string(rc))
    }

    /// Bytes of the exchange's request body not yet framed as DATA.
    package func bodyBytesWaiting(_ exchange: HTTP2Exchange) -> Int { hp_h2_body_waiting(session, exchange.stream) }

    /// The exchanges that report their head (`HTTP2Exchange.reportsHead`) whose head arrived
    /// since the last call.
    package func takeHeadsArrived() -> [HTTP2Exchange] {
        defer { headsArrived.removeAll(keepingCapacity: true) }
        return headsArrived
    }

    /// The exchanges whose stream closed since the last call, in the order they closed.
    package func takeEnded() -> [HTTP2Exchange] {
        defer { ended.removeAll(keepingCapacity: true) }
        return ended
    }

    /// Stops a stream this side gave up on (a timeout): it is reset and forgotten.
    package func cancel(_ exchange: HTTP2Exchange) {
        guard streams.removeValue(forKey: exchange.stream) != nil else { return }
        windowsOfStreamsResetHere += hp_h2_stream_receive_window(session, exchange.stream)
        _ = hp_h2_reset_stream(session, exchange.stream, HTTP2ErrorCode.cancel)
        release(exchange)
    }

    /// Takes plaintext from the server; returns nil, or why the session broke (a protocol error,
    /// a flood).
    package func receive(_ bytes: UnsafeRawBufferPointer) -> HTTP2SessionError? {
        let rc = hp_h2_receive(session, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        return rc < 0 ? HTTP2SessionError(code: rc) : nil
    }

    /// Hands each chunk of what the session has to send to `write` (which takes it whole or
    /// returns false) while `hasRoom` holds; returns false if a write failed. Frames left behind
    /// stay queued in the session for the next call.
    package func drainOutput(while hasRoom: () -> Bool, _ write: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        while hasRoom() {
            var bytes: UnsafePointer<UInt8>?
            let count = hp_h2_output(session, &bytes)
            if count <= 0 { return count == 0 }
            if !write(UnsafeRawBufferPointer(start: bytes, count: count)) { return false }
        }
        return true
    }

    /// Queues a PING; false if nghttp2 refused it.
    package func ping() -> Bool {
        guard hp_h2_ping(session) == 0 else { return false }
        pingsUnanswered += 1
        windowsOfStreamsResetHere = 0
        return true
    }

    /// Queues a GOAWAY: the connection is being closed by this side.
    package func goAway() {
        _ = hp_h2_goaway(session)
    }

    // MARK: flow control

    /// Body bytes arrived on an open stream: its window opens again now if the connection holds
    /// little enough, else once it does (or once the stream is the oldest open one). The
    /// connection's window has them back already.
    private func received(_ count: Int, on exchange: HTTP2Exchange) {
        guard !exchange.streamsBody else { return exchange.bytesNotGivenBack += count }
        heldBodyBytes += count
        if exchange.unconsumedBytes == 0 { streamsWaitingForWindow += 1 }
        exchange.unconsumedBytes += count
        if heldBodyBytes <= heldBodyLimit || exchange.stream == streams.keys.min() { openWindow(exchange) }
    }

    /// The consumer of a streamed body took what it was handed: what its stream received is given
    /// back to the stream's window (a WINDOW_UPDATE goes out once nghttp2 finds enough given back).
    package func openWindow(of exchange: HTTP2Exchange) {
        guard exchange.bytesNotGivenBack > 0, streams[exchange.stream] === exchange else { return }
        _ = hp_h2_consume(session, exchange.stream, exchange.bytesNotGivenBack)
        exchange.bytesNotGivenBack = 0
    }

    /// Gives the exchange's received bytes back to its stream's window (a WINDOW_UPDATE goes out
    /// once nghttp2 finds enough given back).
    private func openWindow(_ exchange: HTTP2Exchange) {
        _ = hp_h2_consume(session, exchange.stream, exchange.unconsumedBytes)
        exchange.unconsumedBytes = 0
        streamsWaitingForWindow -= 1
    }

    /// A stream ended (or was given up): its bytes leave the connection's count, and waiting
    /// streams' windows open, oldest first, as far as the connection may take more.
    private func release(_ exchange: HTTP2Exchange) {
        heldBodyBytes -= exchange.heldBytes
        if exchange.unconsumedBytes > 0 {
            exchange.unconsumedBytes = 0  // its stream is closed: no window to open
            streamsWaitingForWindow -= 1
        }
        guard streamsWaitingForWindow > 0 else { return }
        for (age, stream) in streams.keys.sorted().enumerated() {
            let waiting = streams[stream]!
            if waiting.unconsumedBytes > 0 && (age == 0 || heldBodyBytes <= heldBodyLimit) { openWindow(waiting) }
        }
    }

    // MARK: nghttp2's callbacks (they run inside `receive`)

    private static func of(_ user: UnsafeMutableRawPointer?) -> HTTP2Session {
        Unmanaged<HTTP2Session>.fromOpaque(user!).takeUnretainedValue()
    }

    private static let callbacks = hp_h2_callbacks(
        on_header: { user, stream, name, nameCount, value, valueCount in
            guard let exchange = of(user).streams[stream] else { return 0 }
            return exchange.header(UnsafeRawBufferPointer(start: name, count: nameCount),
                                   UnsafeRawBufferPointer(start: value, count: valueCount)) ? 0 : 1
        },
        on_headers_end: { user, stream in
            let session = of(user)
            guard let exchange = session.streams[stream] else { return }
            let hadHead = exchange.hasHead
            exchange.headersEnded()
            if exchange.reportsHead && !hadHead && exchange.hasHead { session.headsArrived.append(exchange) }
        },
        on_data: { user, stream, bytes, count in
            let session = of(user)
            _ = hp_h2_consume(session.session, 0, count)
            // A stream given up, or refused here, is reset: its own window stays as it is.
            guard let exchange = session.streams[stream] else { return 0 }
            guard exchange.data(UnsafeRawBufferPointer(start: bytes, count: count)) else { return 1 }
            session.received(count, on: exchange)
            return 0
        },
        on_end_stream: { user, stream in of(user).streams[stream]?.remoteEnded = true },
        on_stream_close: { user, stream, errorCode in
            let session = of(user)
            guard let exchange = session.streams.removeValue(forKey: stream) else { return }
            exchange.closed(errorCode: errorCode)
            if case .refused = exchange.outcome { session.windowsOfStreamsResetHere += hp_h2_stream_receive_window(session.session, stream) }
            session.release(exchange)
            session.ended.append(exchange)
        },
        on_goaway: { user, lastStream, _ in of(user).goAwayLastStream = lastStream },
        on_settings: { user, maxStreams in
            let session = of(user)
            session.maxConcurrentStreams = maxStreams
            session.settingsReceived = true
        },
        on_ping_ack: { user in
            let session = of(user)
            session.pingsUnanswered = max(0, session.pingsUnanswered - 1)
        })
}

/// HTTP/2 error codes (RFC 9113 section 7) the pool sends or acts on.
package enum HTTP2ErrorCode {
    /// The stream is no longer needed.
    static let cancel: UInt32 = 0x8
    /// The server did not process the request: it is safe to retry.
    package static let refusedStream: UInt32 = 0x7
    /// A protocol error (what a stream that ended with no response is taken for).
    static let protocolError: UInt32 = 0x1
}
