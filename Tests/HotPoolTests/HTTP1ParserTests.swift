import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolHTTP

@Suite struct HTTP1ParserTests {
    static let ratio = HotPoolConfiguration().maxDecompressionRatio

    private func parse(_ wire: String, chunkSize: Int = .max, isHead: Bool = false, eof: Bool = false,
                       maxHeader: Int = 65536, maxFields: Int = 100, maxBody: Int = 1 << 20) throws -> HTTP1ResponseParser.Complete? {
        var parser = HTTP1ResponseParser(
            limits: ResponseLimits(maxHeaderBytes: maxHeader, maxHeaderFields: maxFields, maxBodyBytes: maxBody, maxDecompressionRatio: Self.ratio), isHeadRequest: isHead)
        let bytes = Array(wire.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunkSize)
            let slice = Array(bytes[offset..<end])
            offset = end
            let done = try slice.withUnsafeBytes { try parser.feed($0) }
            if let done { return done }
        }
        return eof ? try parser.finishAtEOF() : nil
    }

    @Test(arguments: [1, 3, 1000])
    func framingKindsParseAcrossAnyReadBoundaries(chunk: Int) throws {
        let fixed = try #require(try parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello", chunkSize: chunk))
        #expect(fixed.body == Array("hello".utf8) && fixed.keepAlive)
        #expect(fixed.head.headerFields[HTTPField.Name("X-A")!] == "1")

        let chunked = try #require(try parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
            chunkSize: chunk))
        #expect(String(decoding: chunked.body, as: UTF8.self) == "hello, world" && chunked.keepAlive)

        let closeDelimited = try #require(try parse("HTTP/1.1 200 OK\r\n\r\nuntil close", chunkSize: chunk, eof: true))
        #expect(String(decoding: closeDelimited.body, as: UTF8.self) == "until close" && !closeDelimited.keepAlive)
    }

    @Test func noBodyForHeadAnd204And304AndSkipsInterim100() throws {
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", isHead: true)?.body == [])
        #expect(try parse("HTTP/1.1 204 No Content\r\n\r\n")?.head.status.code == 204)
        #expect(try parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\n")?.body == [])
        let afterContinue = try parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        #expect(afterContinue?.head.status.code == 201 && afterContinue?.body == Array("ok".utf8))
    }

    @Test func framingFieldsAreReadCaseInsensitivelyAndListsAreSplit() throws {
        #expect(try parse("HTTP/1.1 200 OK\r\nconnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n")?.keepAlive == false)
        #expect(try parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")?.keepAlive == true)
        #expect(try parse("HTTP/1.0 200 OK\r\nConnection: keep\ralive\r\nContent-Length: 0\r\n\r\n")?.keepAlive == false)
        let listed = try parse("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc")
        #expect(listed?.body == Array("abc".utf8) && listed?.keepAlive == true)
        let coded = try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n")
        #expect(coded?.body == Array("z".utf8) && coded?.keepAlive == true)
        let notChunkedLast = try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw", eof: true)
        #expect(notChunkedLast?.body == Array("raw".utf8) && notChunkedLast?.keepAlive == false)
        #expect(throws: ResponseError.invalidContentLength) { try parse("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n") }
        #expect(throws: ResponseError.invalidContentLength) { try parse("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n") }
        let fields = try #require(try parse("HTTP/1.1 200 OK\r\nX-Spaced: \t value with  inner  spaces \t\r\nContent-Length: 0\r\n\r\n"))
        #expect(fields.head.headerFields[HTTPField.Name("X-Spaced")!] == "value with  inner  spaces")
    }

    @Test func connectionCloseAndHTTP10MakeTheConnectionNotReusable() throws {
        #expect(try parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?.keepAlive == false)
        #expect(try parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")?.keepAlive == false)
        #expect(try parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")?.keepAlive == true)
    }

    @Test func eachMalformedAnswerHasItsOwnError() {
        #expect(throws: ResponseError.malformedStatusLine) { try parse("HTTP/2 200 OK\r\n\r\n") }
        #expect(throws: ResponseError.malformedStatusLine) { try parse("HTTP/1.1 2x0 OK\r\n\r\n") }
        #expect(throws: ResponseError.malformedStatusLine) { try parse("garbage\r\n\r\n") }
        #expect(throws: ResponseError.malformedHeader) { try parse("HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n") }
        #expect(throws: ResponseError.malformedHeader) { try parse("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n") }
        #expect(throws: ResponseError.invalidContentLength) { try parse("HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n") }
        #expect(throws: ResponseError.invalidContentLength) {
            try parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        }
        #expect(throws: ResponseError.badChunkSize) { try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") }
        #expect(throws: ResponseError.badChunkSize) {
            try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n")
        }
        #expect(throws: ResponseError.unexpectedEOF) { try parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", eof: true) }
        #expect(throws: ResponseError.invalidContentLength) {
            try parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: \r\n\r\nabc")
        }
        #expect(throws: ResponseError.malformedHeader) {
            try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n")
        }
    }

    /// Transfer-Encoding in an HTTP/1.0 answer is faulty framing: parsed, then the connection closes.
    @Test func transferEncodingInHTTP10EndsTheConnection() throws {
        let response = try #require(try parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"))
        #expect(response.body == Array("x".utf8) && !response.keepAlive)
    }

    @Test func limitsOnHeadAndBody() {
        let bigHead = "HTTP/1.1 200 OK\r\n" + String(repeating: "X-Pad: aaaaaaaaaa\r\n", count: 100) + "\r\n"
        #expect(throws: ResponseError.headersTooLarge) { try parse(bigHead, chunkSize: 100, maxHeader: 1024) }
        #expect(throws: ResponseError.headersTooLarge) { try parse(String(repeating: "a", count: 5000), maxHeader: 1024) }
        #expect(throws: ResponseError.bodyTooLarge) { try parse("HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", maxBody: 1000) }
        #expect(throws: ResponseError.bodyTooLarge) {
            try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n", maxBody: 1000)
        }
        #expect(throws: ResponseError.bodyTooLarge) {
            try parse("HTTP/1.1 200 OK\r\n\r\n" + String(repeating: "b", count: 2000), maxBody: 1000)
        }
    }

    /// The outcome of parsing `wire` fed in pieces of `chunkSize` bytes: the response or the error.
    private func outcome(_ wire: String, chunkSize: Int, maxHeader: Int) -> Result<HTTP1ResponseParser.Complete?, ResponseError> {
        do {
            return .success(try parse(wire, chunkSize: chunkSize, maxHeader: maxHeader))
        } catch {
            return .failure(error as! ResponseError)
        }
    }

    /// A head of exactly `limit + delta` bytes (blank line included) passes if and only if it fits,
    /// whether it arrives whole or a byte at a time, with CRLF or bare-LF line ends.
    @Test(arguments: [-3, -2, -1, 0, 1], ["\r\n", "\n"])
    func headLimitHoldsExactlyWhateverTheReadSplit(delta: Int, lineEnd: String) throws {
        let limit = 200
        let start = "HTTP/1.1 200 OK" + lineEnd + "Content-Length: 0" + lineEnd + "X-Pad: "
        let end = lineEnd + lineEnd
        let wire = start + String(repeating: "a", count: limit + delta - start.utf8.count - end.utf8.count) + end
        #expect(wire.utf8.count == limit + delta)
        let whole = outcome(wire, chunkSize: .max, maxHeader: limit)
        let byByte = outcome(wire, chunkSize: 1, maxHeader: limit)
        if delta <= 0 {
            #expect(try whole.get()?.head.status == .ok)
        } else {
            #expect(throws: ResponseError.headersTooLarge) { try whole.get() }
        }
        #expect(whole == byByte)
    }

    @Test(arguments: [1, 1000])
    func bareLineFeedsFrameHeadChunksAndTrailers(chunk: Int) throws {
        let fixed = try #require(try parse("HTTP/1.1 200 OK\nContent-Length: 2\n\nok", chunkSize: chunk))
        #expect(fixed.body == Array("ok".utf8) && fixed.keepAlive)
        let chunked = try #require(try parse(
            "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\r\n\n3\nabc\n0\nX-T: 1\n\n", chunkSize: chunk))
        #expect(chunked.body == Array("abc".utf8))
    }

    /// Keep-alive is what the head says; bytes after the response are reported apart, in
    /// whatever read they came.
    @Test(arguments: [1, 1000])
    func bytesAfterTheResponseAreCountedNotFoldedIntoKeepAlive(chunk: Int) throws {
        var parser = HTTP1ResponseParser(
            limits: ResponseLimits(maxHeaderBytes: 1000, maxHeaderFields: 10, maxBodyBytes: 1000, maxDecompressionRatio: Self.ratio), isHeadRequest: false)
        let bytes = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nokHTTP/1.1 200 OK\r\n".utf8)
        var complete: HTTP1ResponseParser.Complete?
        for start in stride(from: 0, to: bytes.count, by: chunk) {
            let piece = Array(bytes[start..<min(bytes.count, start + chunk)])
            if let done = try piece.withUnsafeBytes({ try parser.feed($0) }) { complete = done }
        }
        #expect(complete?.keepAlive == true && complete?.body == Array("ok".utf8))
        #expect(parser.trailingBytes == "HTTP/1.1 200 OK\r\n".utf8.count)
    }

    @Test func interimResponsesFieldsAndTrailersAreBounded() throws {
        let interim = String(repeating: "HTTP/1.1 100 Continue\r\n\r\n", count: ResponseLimits.maxInterimResponses)
        #expect(try parse(interim + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?.head.status == .ok)
        #expect(throws: ResponseError.tooManyInterimResponses) {
            try parse(interim + "HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        }
        let fields = { (n: Int) in "HTTP/1.1 200 OK\r\n" + String(repeating: "X: y\r\n", count: n) + "Content-Length: 0\r\n\r\n" }
        #expect(try parse(fields(9), maxFields: 10)?.head.headerFields.count == 10)
        #expect(throws: ResponseError.tooManyHeaderFields) { try parse(fields(10), maxFields: 10) }
        // Far past what HTTPFields holds (65,535): a clear error, no trap.
        #expect(throws: ResponseError.tooManyHeaderFields) { try parse(fields(70_000), maxHeader: 4 << 20, maxFields: 10_000) }
        let trailers = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + String(repeating: "T: v\r\n", count: 300) + "\r\n"
        #expect(throws: ResponseError.headersTooLarge) { try parse(trailers, chunkSize: 7, maxHeader: 1024) }
        #expect(try parse(trailers, maxHeader: 2048)?.body == [])
    }

    /// Consumed bytes are dropped after every feed, in every phase: an endless run of tiny
    /// chunks or trailer lines keeps the buffer at one unfinished element.
    @Test func bufferHoldsOnlyWhatIsUnfinished() throws {
        var parser = HTTP1ResponseParser(
            limits: ResponseLimits(maxHeaderBytes: 4096, maxHeaderFields: 10, maxBodyBytes: 1 << 30, maxDecompressionRatio: Self.ratio), isHeadRequest: false)
        let head = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        _ = try head.withUnsafeBytes { try parser.feed($0) }
        let chunks = Array(String(repeating: "1;e=1\r\nx\r\n", count: 5000).utf8)
        for start in stride(from: 0, to: chunks.count, by: 4093) {
            let piece = Array(chunks[start..<min(chunks.count, start + 4093)])
            #expect(try piece.withUnsafeBytes { try parser.feed($0) } == nil)
            #expect(parser.bufferedBytes <= ResponseLimits.maxChunkLineBytes)
        }
    }

    @Test func requestSerializationKeepsFieldOrderAndFramesTheBody() {
        var request = HTTPRequest(method: .post, scheme: "https", authority: "example.test", path: "/p?q=1")
        request.headerFields.append(HTTPField(name: .userAgent, value: "ua"))
        request.headerFields.append(HTTPField(name: .accept, value: "*/*"))
        let wire = String(decoding: HTTP1Request.serialize(request, body: Array("abc".utf8), defaultHost: "x", profile: ProfileHeaders([])), as: UTF8.self)
        #expect(wire == "POST /p?q=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ua\r\nAccept: */*\r\nContent-Length: 3\r\n\r\nabc")
        let get = HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/")
        #expect(String(decoding: HTTP1Request.serialize(get, body: [], defaultHost: "h:8443", profile: ProfileHeaders([])), as: UTF8.self)
            == "GET / HTTP/1.1\r\nHost: h:8443\r\n\r\n")
    }

    @Test func profileHeadersComeFirstAndTheRequestsOwnValuesTakeTheirPlace() {
        let profile = ProfileHeaders([HTTPField(name: .userAgent, value: "browser"), HTTPField(name: .accept, value: "text/html")])
        var plain = HTTPRequest(method: .get, scheme: "https", authority: "a.test", path: "/")
        plain.headerFields.append(HTTPField(name: HTTPField.Name("X-Extra")!, value: "1"))
        #expect(String(decoding: HTTP1Request.serialize(plain, body: [], defaultHost: "a.test", profile: profile), as: UTF8.self)
            == "GET / HTTP/1.1\r\nHost: a.test\r\nUser-Agent: browser\r\nAccept: text/html\r\nX-Extra: 1\r\n\r\n")
        var own = plain
        own.headerFields.append(HTTPField(name: .accept, value: "application/json"))
        #expect(String(decoding: HTTP1Request.serialize(own, body: [], defaultHost: "a.test", profile: profile), as: UTF8.self)
            == "GET / HTTP/1.1\r\nHost: a.test\r\nUser-Agent: browser\r\nAccept: application/json\r\nX-Extra: 1\r\n\r\n")
    }

    /// A gzip body in 5-byte chunks, fed a byte at a time: decoded when asked, kept as sent
    /// otherwise; corrupt, it fails only the body (the response is framed to its end and the
    /// connection may carry the next request).
    @Test func bodiesAreDecodedInsideTheirFramingAndACorruptOneKeepsTheConnection() throws {
        let gzip = ContentDecoderTests.coded[0].bytes
        func wire(_ body: [UInt8]) -> [UInt8] {
            var out = Array("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            for start in stride(from: 0, to: body.count, by: 5) {
                let chunk = body[start..<min(body.count, start + 5)]
                out += Array(String(chunk.count, radix: 16).utf8) + [13, 10] + chunk + [13, 10]
            }
            return out + Array("0\r\n\r\n".utf8)
        }
        func parse(_ bytes: [UInt8], decodes: Bool) throws -> HTTP1ResponseParser.Complete? {
            var parser = HTTP1ResponseParser(limits: ResponseLimits(maxHeaderBytes: 4096, maxHeaderFields: 10, maxBodyBytes: 1 << 20,
                                                                    maxDecompressionRatio: Self.ratio),
                                             isHeadRequest: false, decodesContent: decodes)
            var complete: HTTP1ResponseParser.Complete?
            for byte in bytes { complete = try [byte].withUnsafeBytes { try parser.feed($0) } ?? complete }
            #expect(parser.trailingBytes == 0)
            return complete
        }
        let decoded = try #require(try parse(wire(gzip), decodes: true))
        #expect(decoded.body == ContentDecoderTests.plain && decoded.decodedCodings == [.gzip] && decoded.keepAlive)
        let asSent = try #require(try parse(wire(gzip), decodes: false))
        #expect(asSent.body == gzip && asSent.decodedCodings == [] && asSent.decodingFailure == nil)
        var corrupt = gzip
        corrupt[20] ^= 0x5a
        let failed = try #require(try parse(wire(corrupt), decodes: true))
        #expect(failed.decodingFailure != nil && failed.body == [] && failed.keepAlive, "\(String(describing: failed.decodingFailure))")
    }
}
