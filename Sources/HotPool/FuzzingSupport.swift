import HotPoolCore
import HotPoolDriver
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine

/// Entry point for the fuzz target in `Tests/Fuzz/`, which checks the response parser's
/// contract: the outcome, the decoded body included, never depends on how the bytes are split
/// into reads. One allowance: where a decoder notices corrupt input, and so how much it decoded
/// before, can depend on how its input came (brotli hands output over when it needs more input,
/// so a stream fed whole can fail before any output, and fed in pieces after some; zstd likewise):
/// a body that could not be decoded (corrupt, or its decoded bytes past a limit) agrees with any
/// other that could not, whatever framing error the run that found it corrupt met later. Not
/// part of the public contract: import with `@_spi(Fuzzing) import HotPool`.
@_spi(Fuzzing)
public enum ResponseParserFuzzing {
    /// Parses `input` once whole and once split into feeds at `splits` (offsets into `input`;
    /// those outside `1..<input.count` and repeats are ignored), each run at EOF if incomplete,
    /// with the given limits, decoding the body's content codings when `decodesContent`;
    /// returns a description of the first disagreement, or nil when both runs agree.
    public static func differential(
        _ input: UnsafeRawBufferPointer, splits: [Int], maxHeaderBytes: Int, maxHeaderFields: Int,
        maxBodyBytes: Int, isHeadRequest: Bool, decodesContent: Bool
    ) -> String? {
        let limits = ResponseLimits(maxHeaderBytes: maxHeaderBytes, maxHeaderFields: maxHeaderFields, maxBodyBytes: maxBodyBytes,
                                    maxDecompressionRatio: HotPoolConfiguration().maxDecompressionRatio)
        let cuts = Set(splits.filter { $0 > 0 && $0 < input.count }).sorted()
        let whole = ParseOutcome(input, cuts: [], limits: limits, isHeadRequest: isHeadRequest, decodesContent: decodesContent)
        let split = ParseOutcome(input, cuts: cuts, limits: limits, isHeadRequest: isHeadRequest, decodesContent: decodesContent)
        if let doubled = split.completedTwice ?? whole.completedTwice { return "feed returned a response twice, at offset \(doubled)" }
        if whole == split { return nil }
        return """
            \(input.count) bytes, \(limits), isHeadRequest: \(isHeadRequest), decodesContent: \(decodesContent)
            whole: \(whole)
            split at \(cuts): \(split)
            """
    }
}

/// One run's outcome: the response or the error, and the bytes after the response (after an
/// error, unread bytes depend on where the feeding stopped, so they are not compared).
private struct ParseOutcome: Equatable, CustomStringConvertible {
    var result: Result<HTTP1ResponseParser.Complete, ResponseError>
    var trailingBytes = 0
    /// The run failed after its decoder had found the body undecodable.
    var failedUndecodable = false
    /// The run failed while decoding its body.
    var failedDecoding = false
    /// Where a feed returned a second response, which the parser must never do.
    var completedTwice: Int?

    init(_ input: UnsafeRawBufferPointer, cuts: [Int], limits: ResponseLimits, isHeadRequest: Bool, decodesContent: Bool) {
        var parser = HTTP1ResponseParser(limits: limits, isHeadRequest: isHeadRequest, decodesContent: decodesContent)
        var complete: HTTP1ResponseParser.Complete?
        var start = 0
        var twice: Int?
        do throws(ResponseError) {
            for end in cuts + [input.count] {
                if let response = try parser.feed(UnsafeRawBufferPointer(rebasing: input[start..<end])) {
                    if complete != nil { twice = twice ?? start }
                    complete = complete ?? response
                }
                start = end
            }
            if complete == nil { complete = try parser.finishAtEOF() }
            result = .success(complete!)
            trailingBytes = parser.trailingBytes
        } catch {
            result = .failure(error)
            failedUndecodable = parser.decodingFailure != nil
            failedDecoding = !parser.decodedCodings.isEmpty
        }
        completedTwice = twice
    }

    static func == (a: Self, b: Self) -> Bool {
        (a.result == b.result && a.trailingBytes == b.trailingBytes) || (a.isUndecodable && b.isUndecodable)
    }

    /// The body could not be decoded: corrupt (found before the run ended, however it ended: a
    /// framing error after it is one the other run may never reach), or its bytes past a limit
    /// while it was being decoded (which of the bytes that came and the bytes decoded passes
    /// `maxBodyBytes` first depends on how they came).
    private var isUndecodable: Bool {
        switch result {
        case .success(let complete): complete.decodingFailure != nil
        case .failure(.decodedBodyTooLarge), .failure(.decompressionRatioExceeded): true
        case .failure(.bodyTooLarge): failedDecoding || failedUndecodable
        case .failure: failedUndecodable
        }
    }

    var description: String {
        switch result {
        case .failure(let error): "\(error)"
        case .success(let c):
            "\(c.head.status.code) \(c.head.headerFields), body \(c.body.count) bytes \(c.body), decoded \(c.decodedCodings), "
                + "decoding failure \(String(describing: c.decodingFailure)), keepAlive \(c.keepAlive), trailing \(trailingBytes)"
        }
    }
}

/// Entry point for the request-framing fuzz target in `Tests/Fuzz/`, which checks that every
/// request the pool accepts goes out framed as `RequestFraming` says, read back by an
/// independent reader of the bytes. Not part of the public contract.
@_spi(Fuzzing)
public enum RequestFramingFuzzing {
    /// The Host value requests with neither a Host field nor an authority go out with.
    static let defaultHost = "fuzz.example"

    /// Builds a request from its parts (fields whose name is not a valid field name are left
    /// out) and, if the pool accepts it, serializes it for HTTP/1.1 and HTTP/2 with the Chrome
    /// preset's headers; returns the first framing rule the output breaks, or nil (also for a
    /// request the pool refuses).
    public static func check(method: String, path: String?, authority: String?, fields: [(name: String, value: String)],
                             body: [UInt8]) -> String? {
        guard let method = HTTPRequest.Method(method) else { return nil }
        var request = HTTPRequest(method: method, scheme: "https", authority: authority, path: path)
        for (name, value) in fields {
            if let name = HTTPField.Name(name) { request.headerFields.append(HTTPField(name: name, value: value)) }
        }
        guard RequestFraming.problem(request, bodyCount: body.count) == nil else { return nil }
        let spec = FingerprintSpec.chrome
        let fieldsOf = { (headers: [ProfileHeader]) in headers.map { HTTPField(name: HTTPField.Name($0.name)!, value: $0.value) } }
        let host = request.headerFields[HTTPField.Name.hostField] ?? request.authority ?? defaultHost
        let framed = !body.isEmpty || [.post, .put, .patch].contains(method)
        let http1 = HTTP1Request.serialize(request, body: body, defaultHost: defaultHost, profile: ProfileHeaders(fieldsOf(spec.headers)))
        if let broken = checkHTTP1(http1, path: request.path ?? "/", host: host, body: body, framed: framed) {
            return "HTTP/1.1: \(broken)\n\(String(decoding: http1, as: UTF8.self))"
        }
        let http2 = HTTP2Request(request, body: body, defaultAuthority: defaultHost, profile: ProfileHeaders(fieldsOf(spec.http2.headers)),
                                 pseudoHeaderOrder: spec.http2.pseudoHeaderOrder)
        if let broken = checkHTTP2(http2, host: host, body: body, framed: framed) { return "HTTP/2: \(broken)" }
        return nil
    }

    /// One request line, one Host line with `host`, at most one Content-Length (present when
    /// `framed`) equal to the body's length, no Transfer-Encoding, no bare CR or LF in the head,
    /// and exactly the body after it.
    private static func checkHTTP1(_ bytes: [UInt8], path: String, host: String, body: [UInt8], framed: Bool) -> String? {
        let end = Array("\r\n\r\n".utf8)
        guard let headEnd = (0...(bytes.count - end.count)).first(where: { bytes[$0..<$0 + end.count].elementsEqual(end) }) else {
            return "no end of head"
        }
        // Lines by bytes (a Character may join a CR or a space to the mark after it).
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for index in 0..<headEnd where bytes[index] == UInt8(ascii: "\r") && bytes[index + 1] == UInt8(ascii: "\n") {
            lines.append(bytes[start..<index])
            start = index + 2
        }
        lines.append(bytes[start..<headEnd])
        if lines.contains(where: { $0.contains(UInt8(ascii: "\r")) || $0.contains(UInt8(ascii: "\n")) }) { return "a bare CR or LF in the head" }
        let requestLine = lines[0].split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard requestLine.count == 3, requestLine[1].elementsEqual(path.utf8), requestLine[2].elementsEqual("HTTP/1.1".utf8) else {
            return "request line \(String(decoding: lines[0], as: UTF8.self))"
        }
        var values: [String: [String]] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return "a field line with no colon" }
            let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
            let value = line[(colon + 1)...].drop(while: isSpace).reversed().drop(while: isSpace).reversed()
            values[String(decoding: line[..<colon], as: UTF8.self).lowercased(), default: []].append(String(decoding: value, as: UTF8.self))
        }
        if values["host"] != [host] { return "Host lines \(values["host"] ?? []), expected [\(host)]" }
        if values["transfer-encoding"] != nil { return "a Transfer-Encoding line" }
        let lengths = values["content-length"] ?? []
        if lengths.count > 1 || (framed && lengths.isEmpty) || lengths.contains(where: { $0 != String(body.count) }) {
            return "Content-Length lines \(lengths) for a body of \(body.count) bytes"
        }
        if !bytes[(headEnd + end.count)...].elementsEqual(body) { return "the bytes after the head are not the body" }
        return nil
    }

    /// The four pseudo-header fields once each, first, `:authority` being `host`; lower-case
    /// names; no `host` or connection-specific field; at most one content-length (present when
    /// `framed`), equal to the body's length; the body as given.
    private static func checkHTTP2(_ request: HTTP2Request, host: String, body: [UInt8], framed: Bool) -> String? {
        let fields = request.fields.map { field in
            (String(decoding: request.storage[Int(field.nameStart)..<Int(field.nameStart + field.nameCount)], as: UTF8.self),
             String(decoding: request.storage[Int(field.valueStart)..<Int(field.valueStart + field.valueCount)], as: UTF8.self))
        }
        let pseudo = fields.prefix { $0.0.hasPrefix(":") }
        if Set(pseudo.map(\.0)) != [":method", ":authority", ":scheme", ":path"] || pseudo.count != 4 { return "pseudo-header fields \(pseudo)" }
        if fields.dropFirst(4).contains(where: { $0.0.hasPrefix(":") }) { return "a pseudo-header field after the others" }
        if pseudo.first(where: { $0.0 == ":authority" })?.1 != host { return ":authority \(pseudo), expected \(host)" }
        if let name = fields.map(\.0).first(where: { $0 != $0.lowercased() }) { return "an upper-case name \(name)" }
        let forbidden: Set<String> = ["host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]
        if let name = fields.map(\.0).first(where: forbidden.contains) { return "a \(name) field" }
        let lengths = fields.filter { $0.0 == "content-length" }.map(\.1)
        if lengths.count > 1 || (framed && lengths.isEmpty) || lengths.contains(where: { $0 != String(body.count) }) {
            return "content-length fields \(lengths) for a body of \(body.count) bytes"
        }
        return request.body == body ? nil : "the body is not the one given"
    }
}
