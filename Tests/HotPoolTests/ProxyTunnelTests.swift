import HTTPTypes
import Testing
@testable import HotPoolCore
@testable import HotPoolHTTP

/// The tunnel codec against the bytes a proxy would see and send: requests compared byte for
/// byte, answers fed whole and split at every byte.
@Suite struct ProxyTunnelTests {
    static let host = "example.com", ipv4 = "93.184.216.34", ipv6 = "2606:2800:220:1:248:1893:25c8:1946"
    static let password = "s3cr3t-PW"

    private func tunnel(_ url: String, headers: HTTPFields = [:], host: String = host, ip: String = ipv4,
                        port: Int = 443) throws -> ProxyTunnel {
        try ProxyTunnel(proxy: Proxy(url, connectHeaders: headers), targetHost: host, targetIP: ip, targetPort: port)
    }

    /// The steps of feeding `bytes` in pieces of `chunk` bytes, one per piece.
    private func feed(_ tunnel: inout ProxyTunnel, _ bytes: [UInt8], chunk: Int = .max) -> [ProxyTunnel.Step] {
        stride(from: 0, to: bytes.count, by: min(chunk, bytes.count)).map { start in
            Array(bytes[start..<min(bytes.count, start + chunk)]).withUnsafeBytes { tunnel.receive($0) }
        }
    }

    /// The step after feeding all of `bytes` in pieces of `chunk`: each piece before the one that
    /// decides must ask for more, and a failure, once returned, is returned for every later piece.
    private func outcome(_ tunnel: inout ProxyTunnel, _ bytes: [UInt8], chunk: Int = .max) -> ProxyTunnel.Step? {
        let steps = feed(&tunnel, bytes, chunk: chunk)
        guard let decided = steps.firstIndex(where: { $0 != .needMore }) else { return steps.last }
        if case .failed = steps[decided] {
            #expect(steps[decided...].allSatisfy { $0 == steps[decided] }, "steps \(steps)")
        } else {
            #expect(decided == steps.count - 1, "decided at piece \(decided) of \(steps.count): \(steps[decided])")
        }
        return steps[decided]
    }

    private func outcome(_ tunnel: inout ProxyTunnel, _ text: String, chunk: Int = .max) -> ProxyTunnel.Step? {
        outcome(&tunnel, Array(text.utf8), chunk: chunk)
    }

    /// The CONNECT answer `answer` to a fresh http tunnel, fed in pieces of `chunk`.
    private func answerConnect(_ answer: String, chunk: Int = .max) throws -> ProxyTunnel.Step? {
        var t = try tunnel("http://proxy.local:3128")
        _ = t.start()
        return outcome(&t, answer, chunk: chunk)
    }

    private func error(_ step: ProxyTunnel.Step?) -> HotPoolError? {
        if case .failed(let error) = step { return error }
        return nil
    }

    // MARK: HTTP CONNECT

    @Test func connectRequestNamesTheTargetIPInTheRequestLineAndHost() throws {
        var plain = try tunnel("http://proxy.local:3128")
        #expect(String(decoding: plain.start(), as: UTF8.self)
            == "CONNECT 93.184.216.34:443 HTTP/1.1\r\nHost: 93.184.216.34:443\r\n\r\n")
        var overTLS = try tunnel("https://proxy.local", port: 8443)
        #expect(String(decoding: overTLS.start(), as: UTF8.self)
            == "CONNECT 93.184.216.34:8443 HTTP/1.1\r\nHost: 93.184.216.34:8443\r\n\r\n")
        var v6 = try tunnel("http://proxy.local", ip: Self.ipv6)
        #expect(String(decoding: v6.start(), as: UTF8.self)
            == "CONNECT [\(Self.ipv6)]:443 HTTP/1.1\r\nHost: [\(Self.ipv6)]:443\r\n\r\n")
    }

    /// RFC 7617's example credentials; the connect headers follow in their order.
    @Test func connectRequestCarriesBasicCredentialsThenTheConnectHeaders() throws {
        let headers: HTTPFields = [HTTPField.Name("X-Session")!: "abc", .userAgent: "hotpool/1"]
        var t = try tunnel("http://Aladdin:open%20sesame@proxy.local:3128", headers: headers)
        #expect(String(decoding: t.start(), as: UTF8.self)
            == "CONNECT 93.184.216.34:443 HTTP/1.1\r\nHost: 93.184.216.34:443\r\n"
            + "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\nX-Session: abc\r\nUser-Agent: hotpool/1\r\n\r\n")
        var noPassword = try tunnel("http://user@proxy.local")
        #expect(String(decoding: noPassword.start(), as: UTF8.self).contains("Proxy-Authorization: Basic dXNlcjo=\r\n"))
    }

    /// RFC 4648 section 10.
    @Test func base64MatchesTheRFCVectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors { #expect(ProxyTunnel.base64(Array(plain.utf8)) == encoded, "\(plain)") }
        #expect(ProxyTunnel.base64([0xFF, 0xFE, 0xFD, 0x00]) == "//79AA==")
    }

    @Test(arguments: [1, 2, 7, Int.max])
    func successAnswerEstablishesWhateverTheReadSplit(chunk: Int) throws {
        #expect(try answerConnect("HTTP/1.1 200 Connection established\r\n\r\n", chunk: chunk) == .established)
        #expect(try answerConnect("HTTP/1.0 200 OK\r\nVia: 1.1 proxy\r\nContent-Length: 10\r\n\r\n", chunk: chunk) == .established)
        #expect(try answerConnect("HTTP/1.1 204\n\n", chunk: chunk) == .established)
        #expect(try answerConnect("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
                                  chunk: chunk) == .established)
    }

    @Test func establishedTunnelRefusesAnyByteFromTheProxy() throws {
        let sameRead = try answerConnect("HTTP/1.1 200 OK\r\n\r\n\u{16}")
        #expect(error(sameRead)?.code == .proxyConnectFailed && error(sameRead)?.reason == "bytes after the tunnel was established")
        var t = try tunnel("http://proxy.local")
        _ = t.start()
        #expect(outcome(&t, "HTTP/1.1 200 OK\r\n\r\n") == .established)
        #expect([UInt8]().withUnsafeBytes { t.receive($0) } == .established)
        let late = outcome(&t, "x")
        #expect(error(late)?.reason == "bytes after the tunnel was established")
        #expect(outcome(&t, "y") == late)  // failed stays failed
        #expect(t.endOfStream() == error(late))
    }

    @Test(arguments: [1, Int.max])
    func proxyAuthenticationRequiredNamesTheFirstScheme(chunk: Int) throws {
        let asked = error(try answerConnect(
            "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate:  Negotiate\r\n"
                + "proxy-authenticate: Basic realm=\"p\"\r\nContent-Length: 5\r\n\r\nbody!", chunk: chunk))
        #expect(asked == .proxyAuthenticationRequired(
            proxy: try Proxy("http://proxy.local:3128"), host: Self.host, ip: Self.ipv4, scheme: "Negotiate"))
        let basic = error(try answerConnect("HTTP/1.1 407 x\r\nProxy-Authenticate: Basic realm=\"p\"\r\n\r\n", chunk: chunk))
        #expect(basic?.code == .proxyAuthenticationRequired && basic?.reason == "Basic")
        let none = error(try answerConnect("HTTP/1.1 407 x\r\n\r\n", chunk: chunk))
        #expect(none?.code == .proxyAuthenticationRequired && none?.reason == "unknown")
        // A scheme asked in an interim answer is not the final answer's.
        let interim = error(try answerConnect("HTTP/1.1 100 x\r\nProxy-Authenticate: Digest\r\n\r\nHTTP/1.1 407 x\r\n\r\n", chunk: chunk))
        #expect(interim?.reason == "unknown")
        // tinyproxy answers wrong credentials with 401 and WWW-Authenticate: asked for credentials all the same.
        let unauthorized = error(try answerConnect("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"t\"\r\n\r\n", chunk: chunk))
        #expect(unauthorized?.code == .proxyAuthenticationRequired && unauthorized?.reason == "Basic")
    }

    @Test func otherStatusesFailWithTheStatusAndReason() throws {
        let badGateway = error(try answerConnect("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nabc"))
        #expect(badGateway == .proxyConnectFailed(
            proxy: try Proxy("http://proxy.local:3128"), host: Self.host, ip: Self.ipv4, reason: "CONNECT answered 502 Bad Gateway"))
        #expect(error(try answerConnect("HTTP/1.1 403\r\n\r\n"))?.reason == "CONNECT answered 403")
        #expect(error(try answerConnect("HTTP/1.1 101 Switching Protocols\r\n\r\n"))?.reason
            == "CONNECT answered 101 Switching Protocols")
        #expect(error(try answerConnect("HTTP/1.1 301 Moved\r\nLocation: x\r\n"))?.code == nil)  // head unfinished
        let long = error(try answerConnect("HTTP/1.1 500 " + String(repeating: "r", count: 1000) + "\r\n\r\n"))
        #expect(long?.reason == "CONNECT answered 500 " + String(repeating: "r", count: ProxyTunnel.maxQuotedReasonBytes))
    }

    @Test func tooManyInterimAnswersFail() throws {
        let interim = String(repeating: "HTTP/1.1 100 Continue\r\n\r\n", count: ProxyTunnel.maxInterimAnswers)
        #expect(try answerConnect(interim + "HTTP/1.1 200 OK\r\n\r\n") == .established)
        let tooMany = error(try answerConnect(interim + "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"))
        #expect(tooMany?.reason == "more than \(ProxyTunnel.maxInterimAnswers) interim (1xx) answers to CONNECT")
    }

    /// A head of exactly the bound passes and one byte more fails, whether it arrives whole or
    /// a byte at a time, and whether or not its end has arrived.
    @Test(arguments: [-1, 0, 1], [1, 1000, Int.max])
    func answerHeadIsBoundedWhateverTheReadSplit(delta: Int, chunk: Int) throws {
        let start = "HTTP/1.1 200 OK\r\nX-Pad: ", end = "\r\n\r\n"
        let wire = start + String(repeating: "a", count: ProxyTunnel.maxAnswerHeadBytes + delta - start.utf8.count - end.utf8.count) + end
        let step = try answerConnect(wire, chunk: chunk)
        if delta <= 0 {
            #expect(step == .established)
        } else {
            #expect(error(step)?.reason == "answer head over \(ProxyTunnel.maxAnswerHeadBytes) bytes")
        }
        // The bound's worth of bytes and no end yet: the head can only be longer.
        let endless = try answerConnect(start + String(repeating: "a", count: ProxyTunnel.maxAnswerHeadBytes - start.utf8.count),
                                        chunk: chunk)
        #expect(error(endless)?.reason == "answer head over \(ProxyTunnel.maxAnswerHeadBytes) bytes")
    }

    @Test(arguments: ["HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n",
                      "\r\nHTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 O\u{1}K\r\n\r\n", "garbage\r\n\r\n"])
    func malformedStatusLineFails(answer: String) throws {
        #expect(error(try answerConnect(answer))?.reason == "malformed status line in the answer to CONNECT")
        #expect(error(try answerConnect(answer, chunk: 1))?.reason == "malformed status line in the answer to CONNECT")
    }

    @Test func notHTTPFailsBeforeAnyLineEnd() throws {
        // A SOCKS5 proxy answering, or an SSH server: no need to wait for a line that never comes.
        for answer: [UInt8] in [[0x05, 0xFF], Array("SSH-2.0-OpenSSH".utf8), Array("HTTP/2".utf8)] {
            var t = try tunnel("http://proxy.local")
            _ = t.start()
            #expect(error(outcome(&t, answer))?.reason == "malformed status line in the answer to CONNECT")
        }
    }

    @Test(arguments: ["Bad Name: x", "No colon", ": empty name", " folded: x"])
    func malformedHeaderLineFails(line: String) throws {
        #expect(error(try answerConnect("HTTP/1.1 200 OK\r\n\(line)\r\n\r\n"))?.reason == "malformed header line in the answer to CONNECT")
    }

    @Test func closeBeforeTheAnswerNamesWhere() throws {
        var t = try tunnel("http://proxy.local:3128")
        _ = t.start()
        _ = outcome(&t, "HTTP/1.1 200 OK\r\n")
        #expect(t.endOfStream() == .proxyConnectFailed(
            proxy: try Proxy("http://proxy.local:3128"), host: Self.host, ip: Self.ipv4,
            reason: "the proxy closed the connection before its answer to CONNECT was complete"))
        var s = try tunnel("socks5://proxy.local")
        _ = s.start()
        #expect(s.endOfStream().reason == "the proxy closed the connection before its SOCKS5 method reply was complete")
    }

    @Test func invalidTargetsThrowBeforeAnythingIsSent() throws {
        let proxy = try Proxy("http://proxy.local")
        #expect(throws: HotPoolError.invalidIP("1.2.3.4\r\nX: y")) {
            try ProxyTunnel(proxy: proxy, targetHost: "h", targetIP: "1.2.3.4\r\nX: y", targetPort: 443)
        }
        #expect(throws: HotPoolError.invalidIP("example.com")) {
            try ProxyTunnel(proxy: proxy, targetHost: "h", targetIP: "example.com", targetPort: 443)
        }
        #expect(throws: HotPoolError.invalidArgument("target port 65536 not in 1...65535")) {
            try ProxyTunnel(proxy: proxy, targetHost: "h", targetIP: "1.2.3.4", targetPort: 65536)
        }
        #expect(throws: HotPoolError.invalidHostName("a b")) {
            try ProxyTunnel(proxy: try Proxy("socks5h://p"), targetHost: "a b", targetIP: "1.2.3.4", targetPort: 443)
        }
    }

    // MARK: SOCKS5

    /// The whole no-authentication exchange, byte for byte, with the reply split as `chunk` says.
    @Test(arguments: [1, 3, Int.max])
    func socks5WithoutCredentials(chunk: Int) throws {
        var t = try tunnel("socks5://proxy.local")
        #expect(t.start() == [0x05, 0x01, 0x00])
        #expect(outcome(&t, [0x05, 0x00], chunk: chunk) == .send([0x05, 0x01, 0x00, 0x01, 93, 184, 216, 34, 0x01, 0xBB]))
        #expect(outcome(&t, [0x05, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0x30, 0x39], chunk: chunk) == .established)
    }

    @Test(arguments: [1, Int.max])
    func socks5WithUsernameAndPassword(chunk: Int) throws {
        var t = try tunnel("socks5://us%3Aer:pass@proxy.local", port: 8443)
        #expect(t.start() == [0x05, 0x02, 0x00, 0x02])
        #expect(outcome(&t, [0x05, 0x02], chunk: chunk)
            == .send([0x01, 5] + Array("us:er".utf8) + [4] + Array("pass".utf8)))
        #expect(outcome(&t, [0x01, 0x00], chunk: chunk) == .send([0x05, 0x01, 0x00, 0x01, 93, 184, 216, 34, 0x20, 0xFB]))
        #expect(outcome(&t, [0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0], chunk: chunk) == .established)

        // The proxy may skip authentication it was offered; a user with no password sends an empty one.
        var skip = try tunnel("socks5://u@proxy.local")
        _ = skip.start()
        #expect(outcome(&skip, [0x05, 0x00]) == .send([0x05, 0x01, 0x00, 0x01, 93, 184, 216, 34, 0x01, 0xBB]))
        var empty = try tunnel("socks5://u@proxy.local")
        _ = empty.start()
        #expect(outcome(&empty, [0x05, 0x02]) == .send([0x01, 1, UInt8(ascii: "u"), 0]))
    }

    @Test func socks5SendsTheIPAndSocks5hTheName() throws {
        var v6 = try tunnel("socks5://proxy.local", ip: Self.ipv6)
        _ = v6.start()
        #expect(outcome(&v6, [0x05, 0x00]) == .send([0x05, 0x01, 0x00, 0x04,
            0x26, 0x06, 0x28, 0x00, 0x02, 0x20, 0x00, 0x01, 0x02, 0x48, 0x18, 0x93, 0x25, 0xC8, 0x19, 0x46, 0x01, 0xBB]))
        var named = try tunnel("socks5h://proxy.local")
        _ = named.start()
        #expect(outcome(&named, [0x05, 0x00]) == .send([0x05, 0x01, 0x00, 0x03, 11] + Array("example.com".utf8) + [0x01, 0xBB]))
        var literal = try tunnel("socks5h://proxy.local", host: "10.1.2.3")
        _ = literal.start()
        #expect(outcome(&literal, [0x05, 0x00]) == .send([0x05, 0x01, 0x00, 0x01, 10, 1, 2, 3, 0x01, 0xBB]))
        var literal6 = try tunnel("socks5h://proxy.local", host: "::1")
        _ = literal6.start()
        #expect(outcome(&literal6, [0x05, 0x00]) == .send([0x05, 0x01, 0x00, 0x04] + [UInt8](repeating: 0, count: 15) + [1, 0x01, 0xBB]))
    }

    /// A fresh tunnel whose connect request was sent.
    private func socksAwaitingConnectReply() throws -> ProxyTunnel {
        var t = try tunnel("socks5://proxy.local")
        _ = t.start()
        _ = outcome(&t, [0x05, 0x00])
        return t
    }

    /// Every bound-address form, the whole reply needed before the tunnel is up, whatever the split.
    @Test(arguments: [1, 5, Int.max])
    func connectReplyIsReadWholeForEachAddressType(chunk: Int) throws {
        let replies: [[UInt8]] = [
            [0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0x04, 0x38],
            [0x05, 0x00, 0x00, 0x04] + [UInt8](repeating: 0xAB, count: 16) + [0x04, 0x38],
            [0x05, 0x00, 0x00, 0x03, 9] + Array("proxy.lan".utf8) + [0x04, 0x38],
            [0x05, 0x00, 0x00, 0x03, 0, 0x04, 0x38],
        ]
        for reply in replies {
            var t = try socksAwaitingConnectReply()
            #expect(outcome(&t, reply, chunk: chunk) == .established, "\(reply)")
            // Split, the extra byte comes after `.established`; whole, with it: failed either way.
            var extra = try socksAwaitingConnectReply()
            #expect(feed(&extra, reply + [0x16], chunk: chunk).last
                == .failed(.proxyConnectFailed(proxy: try Proxy("socks5://proxy.local"), host: Self.host, ip: Self.ipv4,
                                               reason: "bytes after the tunnel was established")))
        }
        var badType = try socksAwaitingConnectReply()
        #expect(error(outcome(&badType, [0x05, 0x00, 0x00, 0x02, 0], chunk: chunk))?.reason
            == "the SOCKS5 connect reply has address type 0x02")
    }

    @Test(arguments: [(UInt8(1), "general SOCKS server failure"), (2, "connection not allowed by ruleset"),
                      (3, "network unreachable"), (4, "host unreachable"), (5, "connection refused"), (6, "TTL expired"),
                      (7, "command not supported"), (8, "address type not supported"), (9, "reply code 0x09"),
                      (0xFF, "reply code 0xFF")])
    func eachRefusalIsNamed(code: UInt8, name: String) throws {
        var t = try socksAwaitingConnectReply()
        // Reported when the code arrives, before (or without) the rest of the reply.
        #expect(outcome(&t, [0x05]) == .needMore)
        #expect(outcome(&t, [code]) == .failed(.proxyRefused(
            proxy: try Proxy("socks5://proxy.local"), host: Self.host, ip: Self.ipv4, reason: name)))
    }

    @Test func authenticationFailuresAskForCredentials() throws {
        func afterGreeting(_ url: String, _ reply: [UInt8]) throws -> HotPoolError? {
            var t = try tunnel(url)
            _ = t.start()
            return error(outcome(&t, reply))
        }
        let proxy = try Proxy("socks5://proxy.local")
        #expect(try afterGreeting("socks5://proxy.local", [0x05, 0xFF])
            == .proxyAuthenticationRequired(proxy: proxy, host: Self.host, ip: Self.ipv4, scheme: "SOCKS5: no acceptable method"))
        #expect(try afterGreeting("socks5://proxy.local", [0x05, 0x02])
            == .proxyAuthenticationRequired(proxy: proxy, host: Self.host, ip: Self.ipv4,
                                            scheme: "SOCKS5 username/password, and no credentials were given"))
        #expect(try afterGreeting("socks5://proxy.local", [0x05, 0x01])?.reason
            == "the SOCKS5 proxy chose method 0x01, which was not offered")

        for status: UInt8 in [0x01, 0xFF] {
            var t = try tunnel("socks5://user:\(Self.password)@proxy.local")
            _ = t.start()
            _ = outcome(&t, [0x05, 0x02])
            let rejected = error(outcome(&t, [0x01, status]))
            #expect(rejected?.code == .proxyAuthenticationRequired && rejected?.reason == "SOCKS5 username/password rejected")
            #expect(!(rejected?.description.contains(Self.password) ?? true))
        }
    }

    @Test func wrongVersionOrUnaskedBytesFail() throws {
        var t = try tunnel("socks5://proxy.local")
        _ = t.start()
        // Known wrong at the first byte (an HTTP proxy answering).
        #expect(error(outcome(&t, [0x48]))?.reason == "the SOCKS5 method reply has version 0x48, not 0x05")
        var reply = try socksAwaitingConnectReply()
        #expect(error(outcome(&reply, [0x04, 0x5A]))?.reason == "the SOCKS5 connect reply has version 0x04, not 0x05")
        var ahead = try tunnel("socks5://proxy.local")
        _ = ahead.start()
        // The connect reply cannot come before the connect request was sent.
        #expect(error(outcome(&ahead, [0x05, 0x00, 0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]))?.reason
            == "the SOCKS5 proxy sent 10 bytes it was not asked for")
        var early = try tunnel("socks5://proxy.local")
        #expect(error(outcome(&early, [0x05]))?.reason == "the proxy sent bytes before it was asked anything")
    }

    /// Every failure a proxy with credentials can cause, none of whose texts holds the password.
    @Test func errorsNeverHoldTheCredentials() throws {
        var errors: [HotPoolError] = []
        for answer in ["HTTP/1.1 407 x\r\n\r\n", "HTTP/1.1 502 x\r\n\r\n", "junk\r\n", "HTTP/1.1 200 OK\r\n\r\nx"] {
            var t = try tunnel("http://user:\(Self.password)@proxy.local")
            _ = t.start()
            errors += [error(outcome(&t, answer))].compactMap { $0 }
        }
        for replies: [[UInt8]] in [[[0x05, 0xFF]], [[0x05, 0x02], [0x01, 0x01]], [[0x05, 0x02], [0x01, 0x00], [0x05, 0x05]]] {
            var t = try tunnel("socks5://user:\(Self.password)@proxy.local")
            _ = t.start()
            for reply in replies { if let failed = error(outcome(&t, reply)) { errors.append(failed) } }
            errors.append(t.endOfStream())
        }
        #expect(errors.count == 10)
        for error in errors {
            #expect(!error.description.contains(Self.password) && !(error.reason ?? "").contains(Self.password), "\(error)")
        }
    }
}
