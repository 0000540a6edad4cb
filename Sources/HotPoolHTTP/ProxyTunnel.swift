import Glibc
import HTTPTypes
import HotPoolCore

/// Opens a tunnel to a target through a proxy, sans I/O: HTTP CONNECT for `http` and `https`
/// proxies (the TLS to an `https` proxy is the driver's: the bytes inside it are the same), the
/// SOCKS5 exchange (RFC 1928, with RFC 1929 username/password) for `socks5` and `socks5h`.
///
/// The driver sends what `start()` returns, then feeds each read to `receive` and does what it
/// returns: sends its bytes, reads more, or, at `.established`, starts the TLS handshake with the
/// target on the same socket (the target speaks only after the ClientHello, so a byte after the
/// proxy's answer is an error). At `.failed`, or a close (`endOfStream()`), it closes.
///
/// Input may be split anywhere (one byte per read) and is buffered, at most one answer head
/// (`maxAnswerHeadBytes`) or one SOCKS5 message. The proxy never speaks before it is asked, so
/// bytes beyond the message being read (a SOCKS5 reply before its request was sent) fail the
/// tunnel, as do bytes after the answer that opened it. Errors name the proxy by its
/// `description` and never hold its credentials.
package struct ProxyTunnel {
    /// What the driver does after `receive`.
    package enum Step: Equatable {
        /// Read more from the proxy.
        case needMore
        /// Send these bytes to the proxy, then read its answer.
        case send([UInt8])
        /// The tunnel is open: the next bytes on the socket are the target's (start TLS).
        case established
        /// The tunnel cannot be opened: close the connection and report the error.
        case failed(HotPoolError)
    }

    /// The most bytes of a CONNECT answer head (status line, fields and blank line), each interim one counted alone.
    package static let maxAnswerHeadBytes = 16 * 1024
    /// The most interim (1xx) answers skipped before the CONNECT's final answer.
    package static let maxInterimAnswers = 5
    /// The most bytes of the proxy's reason phrase quoted in an error.
    static let maxQuotedReasonBytes = 128

    private enum Stage {
        /// `start()` not called yet.
        case notStarted
        /// The CONNECT request was sent; its answer is being read.
        case connectAnswer
        /// The SOCKS5 greeting was sent; the method reply is being read.
        case socksMethod
        /// The RFC 1929 username/password request was sent; its reply is being read.
        case socksAuthentication
        /// The SOCKS5 connect request was sent; its reply is being read.
        case socksConnect
        /// The tunnel is open; nothing more is read.
        case established
        /// The tunnel failed with this error, returned again for anything fed after.
        case failed(HotPoolError)
    }

    private let proxy: Proxy
    private let targetHost: String
    private let targetIP: String
    /// The target as SOCKS5 sends it (ATYP, address, port), or the CONNECT authority `ip:port`.
    private let target: [UInt8]
    private var stage = Stage.notStarted
    /// Bytes received and not yet consumed: the unfinished answer head or SOCKS5 message.
    private var buffer: [UInt8] = []
    /// The CONNECT answer being read: where its unfinished line starts, where the search for
    /// that line's LF resumes, the status line once read, the first Proxy-Authenticate scheme,
    /// and the interim answers skipped.
    private var lineStart = 0, scanFrom = 0
    private var status: (code: Int, reason: String)?
    private var authenticateScheme: String?
    private var interimAnswers = 0

    /// A tunnel through `proxy` to `targetHost` at `targetIP`:`targetPort`.
    ///
    /// What the proxy is asked to connect to: the IP for `http`, `https` and `socks5` proxies
    /// (the CONNECT authority is `targetIP:port`, an IPv6 one in brackets, and so is its Host),
    /// so the pool keeps choosing, rotating and blacklisting the IPs; the TLS layer still sends
    /// `targetHost` as SNI and checks the certificate against it. A `socks5h` proxy is sent the
    /// name (ATYP 3; as an IP when the name is an IP literal) and resolves it itself. `targetHost`
    /// is otherwise only named in errors. Throws `invalidIP`, `invalidHostName` (for `socks5h`) or
    /// `invalidArgument` (a port outside 1...65535) before anything is sent.
    package init(proxy: Proxy, targetHost: String, targetIP: String, targetPort: Int) throws(HotPoolError) {
        guard (1...Int(UInt16.max)).contains(targetPort) else {
            throw .invalidArgument("target port \(targetPort) not in 1...65535")
        }
        guard let address = Self.ipBytes(targetIP) else { throw .invalidIP(targetIP) }
        (self.proxy, self.targetHost, self.targetIP) = (proxy, targetHost, targetIP)
        switch proxy.kind {
        case .http, .https:
            let host = address.count == 4 ? targetIP : "[\(targetIP)]"
            target = Array("\(host):\(targetPort)".utf8)
        case .socks5:
            target = Self.socksAddress(address) + Self.bigEndian(targetPort)
        case .socks5h:
            if let literal = Self.ipBytes(targetHost) {
                target = Self.socksAddress(literal) + Self.bigEndian(targetPort)
            } else {
                // isValidHostName bounds the name to 253 bytes: it fits SOCKS5's length byte.
                guard isValidHostName(targetHost) else { throw .invalidHostName(targetHost) }
                target = [SOCKS.addressDomain, UInt8(targetHost.utf8.count)] + Array(targetHost.utf8) + Self.bigEndian(targetPort)
            }
        }
    }

    /// The bytes to send first: the CONNECT request, or the SOCKS5 greeting (offering no
    /// authentication, and username/password when the proxy has credentials). Called once.
    package mutating func start() -> [UInt8] {
        guard case .notStarted = stage else { preconditionFailure("ProxyTunnel.start called twice") }
        if proxy.kind.isSOCKS {
            stage = .socksMethod
            let methods = proxy.username == nil
                ? [SOCKS.methodNoAuthentication] : [SOCKS.methodNoAuthentication, SOCKS.methodUsernamePassword]
            return [SOCKS.version, UInt8(methods.count)] + methods
        }
        stage = .connectAnswer
        var request = Array("CONNECT ".utf8) + target + Array(" HTTP/1.1\r\nHost: ".utf8) + target + Array("\r\n".utf8)
        if let username = proxy.username {
            let credentials = Self.base64(Array("\(username):\(proxy.password ?? "")".utf8))
            request += Array("Proxy-Authorization: Basic \(credentials)\r\n".utf8)
        }
        for field in proxy.connectHeaders {
            request += Array("\(field.name.rawName): \(field.value)\r\n".utf8)
        }
        return request + Array("\r\n".utf8)
    }

    /// Feeds bytes the proxy sent; returns what to do next. After `.established` or `.failed`,
    /// bytes fail the tunnel (an empty feed returns the same step again).
    package mutating func receive(_ bytes: UnsafeRawBufferPointer) -> Step {
        switch stage {
        case .failed(let error):
            return .failed(error)
        case .established:
            return bytes.isEmpty ? .established : fail(Self.bytesAfterEstablished)
        case .notStarted:
            return bytes.isEmpty ? .needMore : fail("the proxy sent bytes before it was asked anything")
        case .connectAnswer, .socksMethod, .socksAuthentication, .socksConnect:
            break
        }
        buffer.append(contentsOf: bytes)
        switch stage {
        case .connectAnswer: return readConnectAnswer()
        case .socksMethod: return readMethodReply()
        case .socksAuthentication: return readAuthenticationReply()
        default: return readConnectReply()
        }
    }

    /// The error for the proxy closing the connection before the tunnel was up.
    package func endOfStream() -> HotPoolError {
        if case .failed(let error) = stage { return error }
        let when = switch stage {
        case .notStarted: "before it was asked anything"
        case .connectAnswer: "before its answer to CONNECT was complete"
        case .socksMethod: "before its SOCKS5 method reply was complete"
        case .socksAuthentication: "before its SOCKS5 authentication reply was complete"
        case .socksConnect: "before its SOCKS5 connect reply was complete"
        case .established: "after the tunnel was established"
        case .failed: "after the tunnel failed"  // not reached: its error is returned above
        }
        return .proxyConnectFailed(proxy: proxy, host: targetHost, ip: targetIP, reason: "the proxy closed the connection \(when)")
    }

    // MARK: HTTP CONNECT

    /// Reads the CONNECT answer line by line: interim 1xx answers are skipped, 2xx opens the
    /// tunnel, 407 asks for credentials (so does a 401: tinyproxy answers wrong credentials with
    /// it and `WWW-Authenticate`), anything else fails.
    private mutating func readConnectAnswer() -> Step {
        while let newline = buffer[scanFrom...].firstIndex(of: ASCII.lf) {
            // The head's length so far, its line end included: over the bound whatever the read split.
            guard newline < Self.maxAnswerHeadBytes else { return fail(Self.headTooLarge) }
            var line = buffer[lineStart..<newline]
            if line.last == ASCII.cr { line = line.dropLast() }
            (lineStart, scanFrom) = (newline + 1, newline + 1)
            guard let (code, reason) = status else {
                guard let parsed = Self.statusLine(line) else { return fail("malformed status line in the answer to CONNECT") }
                status = parsed
                continue
            }
            if !line.isEmpty {
                guard let colon = line.firstIndex(of: ASCII.colon),
                    let name = HTTPField.Name(String(decoding: line[..<colon], as: UTF8.self))
                else { return fail("malformed header line in the answer to CONNECT") }
                if (name == .proxyAuthenticate || name == .wwwAuthenticate) && authenticateScheme == nil {
                    let scheme = line[(colon + 1)...].drop { $0 == ASCII.space || $0 == ASCII.tab }
                        .prefix { $0 != ASCII.space && $0 != ASCII.tab && $0 != ASCII.comma }
                    authenticateScheme = String(decoding: scheme, as: UTF8.self)
                }
                continue
            }
            // The blank line: the head is complete.
            buffer.removeFirst(lineStart)
            (lineStart, scanFrom, status) = (0, 0, nil)
            switch code {
            case 100..<200 where code != 101:
                interimAnswers += 1
                guard interimAnswers <= Self.maxInterimAnswers else {
                    return fail("more than \(Self.maxInterimAnswers) interim (1xx) answers to CONNECT")
                }
                authenticateScheme = nil
            case 200..<300:
                // Whatever a 2xx answer to CONNECT says of a body, none follows (RFC 9110 9.3.6).
                return buffer.isEmpty ? established() : fail(Self.bytesAfterEstablished)
            case 401, 407:
                let scheme = authenticateScheme.flatMap { $0.isEmpty ? nil : $0 } ?? "unknown"
                return fail(.proxyAuthenticationRequired(proxy: proxy, host: targetHost, ip: targetIP, scheme: scheme))
            default:
                return fail("CONNECT answered \(code)\(reason.isEmpty ? "" : " \(reason)")")
            }
        }
        scanFrom = buffer.count
        if status == nil && !buffer.starts(with: Self.statusLinePrefix.prefix(buffer.count)) {
            return fail("malformed status line in the answer to CONNECT")  // not HTTP: say so now
        }
        // Unfinished: the finished head will be at least one byte longer than what is here.
        return buffer.count >= Self.maxAnswerHeadBytes ? fail(Self.headTooLarge) : .needMore
    }

    private static let statusLinePrefix = Array("HTTP/1.".utf8)
    private static let headTooLarge = "answer head over \(maxAnswerHeadBytes) bytes"
    private static let bytesAfterEstablished = "bytes after the tunnel was established"

    /// "HTTP/1.x NNN", then optionally " reason" with no control byte (a tab aside); the code
    /// and the reason, cut to `maxQuotedReasonBytes`.
    private static func statusLine(_ line: ArraySlice<UInt8>) -> (code: Int, reason: String)? {
        let line = Array(line)
        let digits = UInt8(ascii: "0")...UInt8(ascii: "9")
        guard line.count >= 12, line.starts(with: statusLinePrefix), line[7] == UInt8(ascii: "0") || line[7] == UInt8(ascii: "1"),
            line[8] == ASCII.space, line[9...11].allSatisfy(digits.contains), line.count == 12 || line[12] == ASCII.space,
            !line.contains(where: { ($0 < ASCII.space && $0 != ASCII.tab) || $0 == ASCII.delete })
        else { return nil }
        let code = line[9...11].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard code >= 100 else { return nil }
        return (code, String(decoding: line.dropFirst(13).prefix(maxQuotedReasonBytes), as: UTF8.self))
    }

    // MARK: SOCKS5

    /// The method reply `05 METHOD`: no authentication → the connect request; username/password
    /// (when offered) → the RFC 1929 request.
    private mutating func readMethodReply() -> Step {
        guard buffer.count >= SOCKS.methodReplyBytes else { return needMoreUnlessVersionIsWrong("method") }
        guard buffer[0] == SOCKS.version else { return wrongVersion("method", buffer[0]) }
        switch buffer[1] {
        case SOCKS.methodNoAuthentication:
            return sendConnectRequest(after: SOCKS.methodReplyBytes)
        case SOCKS.methodUsernamePassword:
            guard let username = proxy.username else {
                return failAuthentication("SOCKS5 username/password, and no credentials were given")
            }
            let password = Array((proxy.password ?? "").utf8)
            // Proxy's init bounds each to maxSOCKSCredentialBytes, so each length fits a byte.
            let request = [SOCKS.authenticationVersion, UInt8(username.utf8.count)] + Array(username.utf8)
                + [UInt8(password.count)] + password
            return send(request, then: .socksAuthentication, after: SOCKS.methodReplyBytes)
        case SOCKS.methodNoneAcceptable:
            return failAuthentication("SOCKS5: no acceptable method")
        case let method:
            return fail("the SOCKS5 proxy chose method \(Self.hex(method)), which was not offered")
        }
    }

    /// The RFC 1929 reply `VER STATUS`: 0 accepts. Its version byte is not checked (some proxies
    /// send 5 there, as curl allows).
    private mutating func readAuthenticationReply() -> Step {
        guard buffer.count >= SOCKS.authenticationReplyBytes else { return .needMore }
        guard buffer[1] == SOCKS.authenticationSucceeded else { return failAuthentication("SOCKS5 username/password rejected") }
        return sendConnectRequest(after: SOCKS.authenticationReplyBytes)
    }

    /// The connect reply `05 REP 00 ATYP BND.ADDR BND.PORT`: a refusal is reported as soon as its
    /// code arrives; a success once the whole reply (its length set by ATYP) has.
    private mutating func readConnectReply() -> Step {
        guard buffer.count >= 2 else { return needMoreUnlessVersionIsWrong("connect") }
        guard buffer[0] == SOCKS.version else { return wrongVersion("connect", buffer[0]) }
        guard buffer[1] == SOCKS.replySucceeded else {
            return fail(.proxyRefused(proxy: proxy, host: targetHost, ip: targetIP, reason: Self.replyName(buffer[1])))
        }
        let fixedBytes = 4, portBytes = 2  // VER REP RSV ATYP before the address
        guard buffer.count > fixedBytes else { return .needMore }
        let addressBytes: Int
        switch buffer[3] {
        case SOCKS.addressIPv4: addressBytes = 4
        case SOCKS.addressIPv6: addressBytes = 16
        case SOCKS.addressDomain: addressBytes = 1 + Int(buffer[4])
        case let type: return fail("the SOCKS5 connect reply has address type \(Self.hex(type))")
        }
        let replyBytes = fixedBytes + addressBytes + portBytes
        guard buffer.count >= replyBytes else { return .needMore }
        return buffer.count == replyBytes ? established() : fail(Self.bytesAfterEstablished)
    }

    /// Sends the connect request `05 01 00 ATYP DST.ADDR DST.PORT` once the `count` bytes of the
    /// reply before it are consumed.
    private mutating func sendConnectRequest(after count: Int) -> Step {
        send([SOCKS.version, SOCKS.commandConnect, SOCKS.reserved] + target, then: .socksConnect, after: count)
    }

    /// `.send(bytes)` and on to `next`, when the buffer holds only the `count` bytes of the reply
    /// just read. More fail the tunnel: the proxy sent bytes before the request they would answer.
    private mutating func send(_ bytes: [UInt8], then next: Stage, after count: Int) -> Step {
        guard buffer.count == count else { return fail("the SOCKS5 proxy sent \(buffer.count - count) bytes it was not asked for") }
        buffer = []
        stage = next
        return .send(bytes)
    }

    /// `.needMore`, unless the first byte of the reply is already wrong.
    private mutating func needMoreUnlessVersionIsWrong(_ reply: String) -> Step {
        if let first = buffer.first, first != SOCKS.version { return wrongVersion(reply, first) }
        return .needMore
    }

    private mutating func wrongVersion(_ reply: String, _ version: UInt8) -> Step {
        fail("the SOCKS5 \(reply) reply has version \(Self.hex(version)), not \(Self.hex(SOCKS.version))")
    }

    private mutating func failAuthentication(_ scheme: String) -> Step {
        fail(.proxyAuthenticationRequired(proxy: proxy, host: targetHost, ip: targetIP, scheme: scheme))
    }

    /// The RFC 1928 name of a connect reply code other than success.
    static func replyName(_ code: UInt8) -> String {
        switch code {
        case 1: "general SOCKS server failure"
        case 2: "connection not allowed by ruleset"
        case 3: "network unreachable"
        case 4: "host unreachable"
        case 5: "connection refused"
        case 6: "TTL expired"
        case 7: "command not supported"
        case 8: "address type not supported"
        default: "reply code \(hex(code))"
        }
    }

    /// The SOCKS5 protocol numbers (RFC 1928, RFC 1929).
    private enum SOCKS {
        static let version: UInt8 = 0x05
        static let methodNoAuthentication: UInt8 = 0x00
        static let methodUsernamePassword: UInt8 = 0x02
        static let methodNoneAcceptable: UInt8 = 0xFF
        static let commandConnect: UInt8 = 0x01
        static let reserved: UInt8 = 0x00
        static let addressIPv4: UInt8 = 0x01
        static let addressDomain: UInt8 = 0x03
        static let addressIPv6: UInt8 = 0x04
        static let replySucceeded: UInt8 = 0x00
        static let authenticationVersion: UInt8 = 0x01
        static let authenticationSucceeded: UInt8 = 0x00
        static let methodReplyBytes = 2
        static let authenticationReplyBytes = 2
    }

    // MARK: Shared

    private mutating func established() -> Step {
        stage = .established
        buffer = []
        return .established
    }

    private mutating func fail(_ reason: String) -> Step {
        fail(.proxyConnectFailed(proxy: proxy, host: targetHost, ip: targetIP, reason: reason))
    }

    private mutating func fail(_ error: HotPoolError) -> Step {
        stage = .failed(error)
        buffer = []
        return .failed(error)
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 literal; nil for anything else.
    private static func ipBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// ATYP and address of an IP given as its 4 or 16 bytes.
    private static func socksAddress(_ address: [UInt8]) -> [UInt8] {
        [address.count == 4 ? SOCKS.addressIPv4 : SOCKS.addressIPv6] + address
    }

    private static func bigEndian(_ port: Int) -> [UInt8] { [UInt8(port >> 8), UInt8(port & 0xFF)] }

    private static func hex(_ byte: UInt8) -> String {
        "0x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16, uppercase: true)
    }

    private enum ASCII {
        static let tab: UInt8 = 0x09, lf: UInt8 = 0x0A, cr: UInt8 = 0x0D, space: UInt8 = 0x20
        static let comma = UInt8(ascii: ","), colon = UInt8(ascii: ":"), delete: UInt8 = 0x7F
    }

    /// `bytes` in base64 (RFC 4648 section 4, padded), for Basic credentials.
    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var group = 0
            for offset in 0..<3 { group = group << 8 | (offset < count ? Int(bytes[index + offset]) : 0) }
            for sextet in 0..<4 {
                // `count` bytes fill `count + 1` sextets; the rest of the four are padding.
                out.append(sextet <= count ? alphabet[group >> (18 - 6 * sextet) & 0x3F] : UInt8(ascii: "="))
            }
            index += count
        }
        return String(decoding: out, as: UTF8.self)
    }
}
