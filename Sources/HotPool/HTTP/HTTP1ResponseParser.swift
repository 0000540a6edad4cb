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
        var lines = buffer[position..<end].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map { $0.last == UInt8(ascii: "\r") ? $0.dropLast() : $0 }
        position = end + 4
        let (status, version) = try Self.parseStatusLine(lines.removeFirst())
        var fields = HTTPFields()
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")),
                let name = HTTPField.Name(String(decoding: line[..<colon], as: UTF8.self))
            else { throw .malformedHeader }
            let value = line[(colon + 1)...].drop { $0 == 0x20 || $0 == 0x09 }
            let trimmed = value.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed()
            fields.append(HTTPField(name: name, lenientValue: Array(trimmed)))
        }
        // 1xx answers (other than 101) precede the real response: skip them.
        if (100..<200).contains(status) && status != 101 { return true }
        head = HTTPResponse(status: .init(code: status), headerFields: fields)
        let connection = fields[values: .connection].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingSpaces.lowercased() }
        keepAlive = version == 1 ? !connection.contains("close") : connection.contains("keep-alive")
        if isHeadRequest || status == 204 || status == 304 || status == 101 {
            if status == 101 { keepAlive = false }
            phase = .fixed(remaining: 0)
            return true
        }
        let codings = fields[values: .transferEncoding].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingSpaces.lowercased() }
        if !codings.isEmpty {
            if fields[.contentLength] != nil { keepAlive = false }
            phase = codings.last == "chunked" ? .chunkSize : .untilClose
            if codings.last != "chunked" { keepAlive = false }
            return true
        }
        let lengths = fields[values: .contentLength].flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces }
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), first.allSatisfy(\.isASCIIDigit), let n = Int(first)
            else { throw .invalidContentLength }
            guard n <= maxBodyBytes else { throw .bodyTooLarge }
            phase = .fixed(remaining: n)
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

    private static func parseStatusLine(_ line: ArraySlice<UInt8>) throws(ResponseError) -> (status: Int, minorVersion: Int) {
        let bytes = Array(line)
        // "HTTP/1.x SSS" then optionally " reason".
        guard bytes.count >= 12, bytes.starts(with: Array("HTTP/1.".utf8)),
            bytes[7] == UInt8(ascii: "0") || bytes[7] == UInt8(ascii: "1"), bytes[8] == 0x20,
            bytes[9...11].allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            bytes.count == 12 || bytes[12] == 0x20
        else { throw .malformedStatusLine }
        let status = bytes[9...11].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard status >= 100 else { throw .malformedStatusLine }
        return (status, Int(bytes[7] - UInt8(ascii: "0")))
    }

    private static func parseHex(_ digits: ArraySlice<UInt8>) -> Int? {
        let trimmed = digits.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed()
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

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
