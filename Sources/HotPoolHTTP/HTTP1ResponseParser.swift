import HTTPTypes
import HotPoolCore

/// Why a response could not be read.
package enum ResponseError: Error, Equatable {
    case malformedStatusLine
    case malformedHeader
    case headersTooLarge
    case tooManyHeaderFields
    case tooManyInterimResponses
    case bodyTooLarge
    /// The decoded body grew past `maxBodyBytes` (reported as `bodyTooLarge` is).
    case decodedBodyTooLarge
    case badChunkSize
    case invalidContentLength
    case unexpectedEOF
    /// The body's content coding is unknown, corrupt or cut short (`coding` names it).
    case contentDecodingFailed(coding: String, reason: String)
    /// The decoded body grew past `maxDecompressionRatio` times what came.
    case decompressionRatioExceeded
}

extension HotPoolError {
    /// The error a response that could not be read is reported as.
    package init(_ error: ResponseError, host: String, ip: String, limits: ResponseLimits) {
        switch error {
        case .malformedStatusLine: self = .malformedStatusLine(host: host, ip: ip)
        case .malformedHeader: self = .malformedHeader(host: host, ip: ip)
        case .headersTooLarge: self = .responseHeadersTooLarge(host: host, ip: ip, limit: limits.maxHeaderBytes)
        case .tooManyHeaderFields: self = .tooManyResponseHeaderFields(host: host, ip: ip, limit: limits.maxHeaderFields)
        case .tooManyInterimResponses:
            self = .tooManyInterimResponses(host: host, ip: ip, limit: ResponseLimits.maxInterimResponses)
        case .bodyTooLarge, .decodedBodyTooLarge: self = .responseBodyTooLarge(host: host, ip: ip, limit: limits.maxBodyBytes)
        case .badChunkSize: self = .badChunkSize(host: host, ip: ip)
        case .invalidContentLength: self = .invalidContentLength(host: host, ip: ip)
        case .unexpectedEOF: self = .unexpectedEOF(host: host, ip: ip)
        case .contentDecodingFailed(let coding, let reason):
            self = .contentDecodingFailed(host: host, ip: ip, reason: "\(coding): \(reason)")
        case .decompressionRatioExceeded:
            self = .decompressionRatioExceeded(host: host, ip: ip, limit: limits.maxDecompressionRatio)
        }
    }
}

/// An incremental HTTP/1.1 response parser (sans I/O): fed bytes as they arrive, it frames the
/// body by Content-Length, chunked coding or connection close, decodes its content codings as it
/// comes when asked to (`ResponseBody`), and enforces `ResponseLimits`.
///
/// The outcome never depends on how the bytes were split into reads: every limit is checked
/// so that a prefix is refused only when no completion of it could fit. Lines may end in CRLF
/// or a bare LF (RFC 9112 2.2 lets a recipient accept a bare LF). Consumed bytes are dropped
/// after every feed, so the buffer holds at most one unfinished head, line or trailer.
package struct HTTP1ResponseParser {
    /// A complete response, and whether its head lets the connection carry another request.
    package struct Complete: Equatable {
        package var head: HTTPResponse
        /// Decoded, when the parser decodes and the head names codings, unless `decodingFailure`.
        package var body: [UInt8]
        package var keepAlive: Bool
        /// The codings undone, in the order the server applied them.
        package var decodedCodings: [ContentCoding] = []
        /// Why the body could not be decoded (the framing was intact).
        package var decodingFailure: ResponseError?
    }

    private enum Phase {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    private let limits: ResponseLimits
    private let isHeadRequest: Bool
    private let decodesContent: Bool
    private var buffer: [UInt8] = []
    private var position = 0
    /// Where the search for a line end resumes (bytes before it hold none that matters).
    private var scanFrom = 0
    private var phase = Phase.head
    private var interimResponses = 0
    private var trailerBytes = 0
    private var head: HTTPResponse?
    private var body: ResponseBody
    private var keepAlive = true
    /// Bytes fed after the response was complete.
    private var extraBytes = 0

    /// `decodesContent`: the body is decoded by the head's `Content-Encoding` as it comes.
    /// `streamsBody`: its consumer takes it as it comes (`takeBody`), and `maxBodyBytes` does not apply.
    package init(limits: ResponseLimits, isHeadRequest: Bool, decodesContent: Bool = false, streamsBody: Bool = false) {
        self.limits = limits
        self.isHeadRequest = isHeadRequest
        self.decodesContent = decodesContent
        body = ResponseBody(limits: limits)
        body.streams = streamsBody
    }

    /// The final head, once read.
    package var responseHead: HTTPResponse? { head }
    /// The codings the body is decoded from (known with the head).
    package var decodedCodings: [ContentCoding] { body.decodedCodings }
    /// Why the body could not be decoded, once that is known (framing goes on after it).
    package var decodingFailure: ResponseError? { body.decodingFailure }

    /// Hands over the body bytes read so far (a streamed body).
    package mutating func takeBody() -> [UInt8] { body.takeBytes() }

    /// Bytes received after the end of the response: a server must send none.
    package var trailingBytes: Int { buffer.count - position + extraBytes }

    /// The final head was read (the body may still be coming).
    package var hasHead: Bool { head != nil }

    /// Bytes held for an unfinished head, line or trailer (what bounds the parser's memory).
    var bufferedBytes: Int { buffer.count }

    /// Adds bytes; returns the response once it is complete (once only: later bytes only count
    /// in `trailingBytes`).
    package mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(ResponseError) -> Complete? {
        if case .done = phase {
            extraBytes += bytes.count
            return nil
        }
        buffer.append(contentsOf: bytes)
        let complete = try advance()
        if complete == nil { dropConsumed() }
        return complete
    }

    /// The peer closed the connection: completes a close-delimited body, or fails.
    package mutating func finishAtEOF() throws(ResponseError) -> Complete {
        guard case .untilClose = phase else { throw .unexpectedEOF }
        keepAlive = false
        return finish()
    }

    private mutating func advance() throws(ResponseError) -> Complete? {
        while true {
            switch phase {
            case .head:
                guard try parseHead() else { return nil }
            case .fixed(let remaining):
                let n = try takeBody(upTo: remaining)
                if remaining == n { return finish() }
                phase = .fixed(remaining: remaining - n)
                return nil
            case .chunkSize:
                guard let line = try nextLine(limit: ResponseLimits.maxChunkLineBytes, tooLong: .badChunkSize) else { return nil }
                guard let size = Self.chunkSize(line) else { throw .badChunkSize }
                guard body.streams || size <= limits.maxBodyBytes - body.receivedBytes else { throw .bodyTooLarge }
                phase = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let n = try takeBody(upTo: remaining)
                guard remaining == n else {
                    phase = .chunkData(remaining: remaining - n)
                    return nil
                }
                phase = .chunkDataEnd
            case .chunkDataEnd:
                // The CRLF (or LF) after a chunk's data: a line of at most 2 bytes, empty.
                guard let line = try nextLine(limit: 2, tooLong: .badChunkSize) else { return nil }
                guard line.isEmpty else { throw .badChunkSize }
                phase = .chunkSize
            case .trailers:
                // Trailer fields are read and dropped; the section as a whole has the head's limit.
                let start = position
                guard let line = try nextLine(limit: limits.maxHeaderBytes - trailerBytes, tooLong: .headersTooLarge) else {
                    return nil
                }
                trailerBytes += position - start
                if line.isEmpty { return finish() }
                guard line.contains(UInt8(ascii: ":")) else { throw .malformedHeader }
            case .untilClose:
                _ = try takeBody(upTo: buffer.count - position)
                return nil
            case .done:
                return nil
            }
        }
    }

    /// Moves up to `limit` buffered bytes into the body; returns how many.
    private mutating func takeBody(upTo limit: Int) throws(ResponseError) -> Int {
        let n = min(limit, buffer.count - position)
        guard n > 0 else { return 0 }
        let start = position
        // (`withUnsafeBytes` rethrows untyped: the outcome crosses it as a value.)
        try buffer.withUnsafeBytes { bytes in
            Result { () throws(ResponseError) in try body.append(UnsafeRawBufferPointer(rebasing: bytes[start..<start + n])) }
        }.get()
        position += n
        return n
    }

    /// Parses the status line and fields once the whole head is buffered; false until then.
    private mutating func parseHead() throws(ResponseError) -> Bool {
        guard let end = headEnd() else {
            // Unfinished: the finished head will be at least one byte longer than what is here.
            if buffer.count - position >= limits.maxHeaderBytes { throw .headersTooLarge }
            return false
        }
        guard end.next - position <= limits.maxHeaderBytes else { throw .headersTooLarge }
        let start = position
        let maxFields = limits.maxHeaderFields
        let parsed = try buffer.withUnsafeBufferPointer { (bytes) throws(ResponseError) -> ResponseHead in
            try ResponseHead(UnsafeBufferPointer(rebasing: bytes[start..<end.contentEnd]), maxFields: maxFields)
        }
        position = end.next
        scanFrom = position
        let status = parsed.status
        // 1xx answers (other than 101) precede the real response: skip a bounded number of them.
        if (100..<200).contains(status) && status != 101 {
            interimResponses += 1
            guard interimResponses <= ResponseLimits.maxInterimResponses else { throw .tooManyInterimResponses }
            return true
        }
        head = HTTPResponse(status: .init(code: status), headerFields: parsed.fields)
        let hasBody = ResponseBody.exists(status: status, isHeadRequest: isHeadRequest)
        body.start(head!, decodes: decodesContent && hasBody)
        keepAlive = parsed.minorVersion == 1 ? !parsed.connectionClose : parsed.connectionKeepAlive
        // Transfer-Encoding in an HTTP/1.0 message is faulty framing: close after it (RFC 9112 6.1).
        if parsed.minorVersion == 0 && parsed.hasTransferEncoding { keepAlive = false }
        if !hasBody {
            // A 101 switches the connection to a protocol nobody asked for: it cannot be reused.
            if status == 101 { keepAlive = false }
            phase = .fixed(remaining: 0)
            return true
        }
        if parsed.hasTransferEncoding {
            // A body framed by a coding other than chunked, or by both a coding and a length, runs
            // to the connection's close (RFC 9112 6.3).
            if parsed.contentLength != nil || !parsed.chunkedLast { keepAlive = false }
            phase = parsed.chunkedLast ? .chunkSize : .untilClose
            return true
        }
        if let length = parsed.contentLength {
            guard body.streams || length <= limits.maxBodyBytes else { throw .bodyTooLarge }
            body.reserve(min(length, ResponseLimits.bodyBytesReservedUpFront))
            phase = .fixed(remaining: length)
        } else {
            keepAlive = false
            phase = .untilClose
        }
        return true
    }

    /// Where the head ends, if it is buffered: `contentEnd` is the LF ending its last field line
    /// (exclusive), `next` the first byte after the blank line. A line ends in LF, with or
    /// without a CR before it, so the head ends at an LF followed by LF or CR LF.
    private mutating func headEnd() -> (contentEnd: Int, next: Int)? {
        var i = max(position, scanFrom)
        while i < buffer.count {
            if buffer[i] == lf {
                if i + 1 >= buffer.count { break }
                if buffer[i + 1] == lf { return (i, i + 2) }
                if buffer[i + 1] == cr {
                    if i + 2 >= buffer.count { break }
                    if buffer[i + 2] == lf { return (i, i + 3) }
                }
            }
            i += 1
        }
        scanFrom = i  // an LF whose next bytes have not arrived is looked at again
        return nil
    }

    /// The next line (without its CR LF or LF), consumed; nil if it has not all arrived. A line
    /// longer than `limit` bytes, its end included, throws `tooLong`, whatever the read split.
    private mutating func nextLine(limit: Int, tooLong: ResponseError) throws(ResponseError) -> ArraySlice<UInt8>? {
        var i = max(position, scanFrom)
        while i < buffer.count && buffer[i] != lf { i += 1 }
        guard i < buffer.count else {
            scanFrom = i
            if buffer.count - position >= limit { throw tooLong }
            return nil
        }
        guard i + 1 - position <= limit else { throw tooLong }
        let end = i > position && buffer[i - 1] == cr ? i - 1 : i
        let line = buffer[position..<end]
        position = i + 1
        scanFrom = position
        return line
    }

    private mutating func finish() -> Complete {
        phase = .done
        body.end()
        return Complete(head: head!, body: body.bytes, keepAlive: keepAlive, decodedCodings: body.decodedCodings,
                        decodingFailure: body.decodingFailure)
    }

    /// Drops consumed bytes, so the buffer never holds more than an unfinished element.
    private mutating func dropConsumed() {
        guard position > 0 else { return }
        buffer.removeFirst(position)
        scanFrom = max(0, scanFrom - position)
        position = 0
    }

    /// The size of a chunk-size line: 1 to 15 hex digits, optional spaces or tabs, then an
    /// optional `;` and extensions. Index loops: this runs once per chunk.
    private static func chunkSize(_ line: ArraySlice<UInt8>) -> Int? {
        var end = line.startIndex
        while end < line.endIndex && line[end] != UInt8(ascii: ";") { end += 1 }
        while end > line.startIndex && isSpaceOrTab(line[end - 1]) { end -= 1 }
        guard end > line.startIndex, end - line.startIndex <= 15 else { return nil }
        var value = 0
        var i = line.startIndex
        while i < end {
            let d = line[i]
            i += 1
            switch d {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = value * 16 + Int(d - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = value * 16 + Int(d - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = value * 16 + Int(d - UInt8(ascii: "A") + 10)
            default: return nil
            }
        }
        return value
    }
}

private let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")

/// Optional white space in HTTP/1.1 (RFC 9110 5.6.3): a space or a horizontal tab.
private func isSpaceOrTab(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

/// A response head read from its bytes: status line, fields, and what frames the body. Works on
/// the bytes by index: no line arrays, no lowercased copies.
private struct ResponseHead {
    var status = 0
    var minorVersion = 0
    var fields = HTTPFields()
    /// `Connection` carries the token close / keep-alive.
    var connectionClose = false
    var connectionKeepAlive = false
    var hasTransferEncoding = false
    /// The last transfer coding is chunked.
    var chunkedLast = false
    var contentLength: Int?

    /// Parses `head`: the bytes before the blank line, lines ended by CRLF or a bare LF.
    /// More than `maxFields` fields throw `tooManyHeaderFields`.
    init(_ head: UnsafeBufferPointer<UInt8>, maxFields: Int) throws(ResponseError) {
        // One allocation for the fields of a typical response, not one per doubling.
        fields.reserveCapacity(min(maxFields, 24))
        var lineStart = 0
        var first = true
        var fieldCount = 0
        while lineStart <= head.count {
            var lineEnd = lineStart
            while lineEnd < head.count && head[lineEnd] != lf { lineEnd += 1 }
            var stop = lineEnd
            if stop > lineStart && head[stop - 1] == cr { stop -= 1 }
            let line = UnsafeBufferPointer(rebasing: head[lineStart..<stop])
            if first {
                try parseStatusLine(line)
                first = false
            } else {
                fieldCount += 1
                guard fieldCount <= maxFields else { throw .tooManyHeaderFields }
                try parseField(line)
            }
            lineStart = lineEnd + 1
        }
    }

    /// "HTTP/1.x SSS", then optionally " reason".
    private mutating func parseStatusLine(_ line: UnsafeBufferPointer<UInt8>) throws(ResponseError) {
        let digit = UInt8(ascii: "0")...UInt8(ascii: "9")
        guard line.count >= 12, line.starts(with: "HTTP/1.".utf8), line[7] == UInt8(ascii: "0") || line[7] == UInt8(ascii: "1"),
            line[8] == 0x20, digit.contains(line[9]), digit.contains(line[10]), digit.contains(line[11]),
            line.count == 12 || line[12] == 0x20
        else { throw .malformedStatusLine }
        status = line[9...11].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard status >= 100 else { throw .malformedStatusLine }
        minorVersion = Int(line[7] - UInt8(ascii: "0"))
    }

    /// "name: value", the value trimmed of spaces and tabs; notes the fields that frame the body.
    private mutating func parseField(_ line: UnsafeBufferPointer<UInt8>) throws(ResponseError) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")),
            let name = HTTPField.Name(String(decoding: UnsafeBufferPointer(rebasing: line[..<colon]), as: UTF8.self))
        else { throw .malformedHeader }
        let value = Self.trimmed(UnsafeBufferPointer(rebasing: line[(colon + 1)...]))
        fields.append(HTTPField(name: name, lenientValue: value))
        switch name {
        case .connection:
            Self.forEachToken(value) { token in
                if Self.token(token, is: "close") { connectionClose = true }
                if Self.token(token, is: "keep-alive") { connectionKeepAlive = true }
            }
        case .transferEncoding:
            Self.forEachToken(value) { token in
                hasTransferEncoding = true
                chunkedLast = Self.token(token, is: "chunked")
            }
        case .contentLength:
            // Several values (or fields) must agree; each is digits only; a field has one at least.
            var failed = false
            var values = 0
            Self.forEachToken(value) { token in
                values += 1
                guard !failed, let n = Self.decimal(token), contentLength == nil || contentLength == n else {
                    failed = true
                    return
                }
                contentLength = n
            }
            if failed || values == 0 { throw .invalidContentLength }
        default:
            break
        }
    }

    private static func trimmed(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var lower = 0, upper = bytes.count
        while lower < upper && isSpaceOrTab(bytes[lower]) { lower += 1 }
        while upper > lower && isSpaceOrTab(bytes[upper - 1]) { upper -= 1 }
        return UnsafeBufferPointer(rebasing: bytes[lower..<upper])
    }

    /// Calls `body` with each comma-separated element of `value`, trimmed, empty ones skipped.
    private static func forEachToken(_ value: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count && value[end] != UInt8(ascii: ",") { end += 1 }
            let token = trimmed(UnsafeBufferPointer(rebasing: value[start..<end]))
            if !token.isEmpty { body(token) }
            start = end + 1
        }
    }

    /// ASCII case-insensitive comparison with a lowercase token.
    private static func token(_ bytes: UnsafeBufferPointer<UInt8>, is lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        for (byte, want) in zip(bytes, expected) {
            let folded = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
            if folded != want { return false }
        }
        return true
    }

    /// A non-negative decimal of at most 18 digits, or nil.
    private static func decimal(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var n = 0
        for byte in bytes {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            n = n * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return n
    }
}
