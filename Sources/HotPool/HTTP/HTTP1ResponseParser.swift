import HTTPTypes

/// Why a response could not be read.
enum ResponseError: Error, Equatable {
    case malformedStatusLine
    case malformedHeader
    case headersTooLarge
    case bodyTooLarge
    case badChunkSize
    case invalidContentLength
    case unexpectedEOF
}

/// An incremental HTTP/1.1 response parser: fed bytes as they arrive, it frames the body by
/// Content-Length, chunked coding or connection close, and enforces header and body limits.
struct HTTP1ResponseParser {
    /// A complete response, and whether the connection may carry another request.
    struct Complete {
        var head: HTTPResponse
        var body: [UInt8]
        var keepAlive: Bool
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

    private let maxHeaderBytes: Int
    private let maxBodyBytes: Int
    private let isHeadRequest: Bool
    private var buffer: [UInt8] = []
    private var position = 0
    private var headScanFrom = 0
    private var phase = Phase.head
    private var head: HTTPResponse?
    private var body: [UInt8] = []
    private var keepAlive = true

    init(maxHeaderBytes: Int, maxBodyBytes: Int, isHeadRequest: Bool) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        self.isHeadRequest = isHeadRequest
    }

    /// Bytes received after the end of the response (a server must send none).
    var unexpectedTrailingBytes: Int { buffer.count - position }

    /// Adds bytes; returns the response once it is complete.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(ResponseError) -> Complete? {
        buffer.append(contentsOf: bytes)
        return try advance()
    }

    /// The peer closed the connection: completes a close-delimited body, or fails.
    mutating func finishAtEOF() throws(ResponseError) -> Complete {
        guard case .untilClose = phase else { throw .unexpectedEOF }
        body.append(contentsOf: buffer[position...])
        position = buffer.count
        keepAlive = false
        return finish()
    }

    private mutating func advance() throws(ResponseError) -> Complete? {
        while true {
            switch phase {
            case .head:
                guard try parseHead() else { return nil }
            case .fixed(let remaining):
                let n = min(remaining, buffer.count - position)
                body.append(contentsOf: buffer[position..<position + n])
                position += n
                if remaining == n { return finish() }
                phase = .fixed(remaining: remaining - n)
                compact()
                return nil
            case .chunkSize:
                guard let line = try nextLine(limit: 1024) else { return nil }
                let sizeField = line.prefix { $0 != UInt8(ascii: ";") }
                guard let size = Self.parseHex(sizeField) else { throw .badChunkSize }
                guard body.count + size <= maxBodyBytes else { throw .bodyTooLarge }
                phase = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let n = min(remaining, buffer.count - position)
                body.append(contentsOf: buffer[position..<position + n])
                position += n
                guard remaining == n else {
                    phase = .chunkData(remaining: remaining - n)
                    compact()
                    return nil
                }
                phase = .chunkDataEnd
            case .chunkDataEnd:
                guard let line = try nextLine(limit: 2) else { return nil }
                guard line.isEmpty else { throw .badChunkSize }
                phase = .chunkSize
            case .trailers:
                guard let line = try nextLine(limit: maxHeaderBytes) else { return nil }
                if line.isEmpty { return finish() }
            case .untilClose:
                guard buffer.count - position + body.count <= maxBodyBytes else { throw .bodyTooLarge }
                return nil
            case .done:
                return nil
            }
        }
    }

    /// Parses the status line and fields once the whole head is buffered; false until then.
    private mutating func parseHead() throws(ResponseError) -> Bool {
        guard let end = headEnd() else {
            if buffer.count - position > maxHeaderBytes { throw .headersTooLarge }
            return false
        }
        guard end - position <= maxHeaderBytes else { throw .headersTooLarge }
        let start = position
        let parsed = try buffer.withUnsafeBufferPointer { (bytes) throws(ResponseError) -> ResponseHead in
            try ResponseHead(UnsafeBufferPointer(rebasing: bytes[start..<end]))
        }
        position = end + 4
        let status = parsed.status
        // 1xx answers (other than 101) precede the real response: skip them.
        if (100..<200).contains(status) && status != 101 { return true }
        head = HTTPResponse(status: .init(code: status), headerFields: parsed.fields)
        keepAlive = parsed.minorVersion == 1 ? !parsed.connectionClose : parsed.connectionKeepAlive
        if isHeadRequest || status == 204 || status == 304 || status == 101 {
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
            guard length <= maxBodyBytes else { throw .bodyTooLarge }
            phase = .fixed(remaining: length)
        } else {
            keepAlive = false
            phase = .untilClose
        }
        return true
    }

    /// The offset of the CRLFCRLF ending the head, if buffered. Remembers how far it looked, so a
    /// head arriving in many small reads is scanned once.
    private mutating func headEnd() -> Int? {
        var i = max(position, headScanFrom)
        while i + 4 <= buffer.count {
            if buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 { return i }
            i += 1
        }
        headScanFrom = i
        return nil
    }

    /// The next CRLF-terminated line (without the CRLF), consumed; nil if not complete yet.
    private mutating func nextLine(limit: Int) throws(ResponseError) -> ArraySlice<UInt8>? {
        var i = position
        while i + 1 < buffer.count {
            guard i - position <= limit else { throw limit == maxHeaderBytes ? .headersTooLarge : .badChunkSize }
            if buffer[i] == 13 && buffer[i + 1] == 10 {
                let line = buffer[position..<i]
                position = i + 2
                return line
            }
            i += 1
        }
        return nil
    }

    private mutating func finish() -> Complete {
        phase = .done
        return Complete(head: head!, body: body, keepAlive: keepAlive && unexpectedTrailingBytes == 0)
    }

    /// Drops consumed bytes once they dominate the buffer, so long bodies stay linear.
    private mutating func compact() {
        if position > 65536 && position * 2 > buffer.count {
            buffer.removeFirst(position)
            position = 0
        }
    }

    private static func parseHex(_ digits: ArraySlice<UInt8>) -> Int? {
        let trimmed = digits.reversed().drop(while: isSpaceOrTab).reversed()
        guard !trimmed.isEmpty, trimmed.count <= 15 else { return nil }
        var value = 0
        for d in trimmed {
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

    private static let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")

    /// Parses `head`: the bytes before the blank line, lines ended by CRLF (or a bare LF).
    init(_ head: UnsafeBufferPointer<UInt8>) throws(ResponseError) {
        var lineStart = 0
        var first = true
        while lineStart <= head.count {
            var lineEnd = lineStart
            while lineEnd < head.count && head[lineEnd] != Self.lf { lineEnd += 1 }
            var stop = lineEnd
            if stop > lineStart && head[stop - 1] == Self.cr { stop -= 1 }
            let line = UnsafeBufferPointer(rebasing: head[lineStart..<stop])
            if first {
                try parseStatusLine(line)
                first = false
            } else if !line.isEmpty {
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
            // Several values (or fields) must agree; each is digits only.
            var failed = false
            Self.forEachToken(value) { token in
                guard !failed, let n = Self.decimal(token), contentLength == nil || contentLength == n else {
                    failed = true
                    return
                }
                contentLength = n
            }
            if failed || contentLength == nil { throw .invalidContentLength }
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
