import HTTPTypes

/// An upstream proxy a connection goes through: its kind, where it listens, and the credentials
/// it asks for. Made from a URL (`Proxy("socks5://user:pass@10.0.0.1:1080")`), checked in full
/// when made. Its `description` never holds the credentials, so logs and errors may show it.
public struct Proxy: Hashable, Sendable, CustomStringConvertible, CustomReflectable {
    /// How the tunnel to the target is made.
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// HTTP CONNECT over plain TCP (`http://`), Basic authentication with credentials.
        case http
        /// HTTP CONNECT inside TLS to the proxy (`https://`), whose certificate is checked for its host.
        case https
        /// SOCKS5 (`socks5://`): the target's IP is sent, so the pool still chooses the IP.
        case socks5
        /// SOCKS5 (`socks5h://`): the target's name is sent and the proxy resolves it.
        case socks5h

        /// The port a URL without one means.
        var defaultPort: Int {
            switch self {
            case .http: 80
            case .https: 443
            case .socks5, .socks5h: 1080
            }
        }

        /// True for the SOCKS5 kinds.
        package var isSOCKS: Bool { self == .socks5 || self == .socks5h }
    }

    /// How the tunnel is made.
    public var kind: Kind { storage.kind }
    /// The proxy's host: a name or an IP literal (an IPv6 one without brackets).
    public var host: String { storage.host }
    /// The proxy's port.
    public var port: Int { storage.port }
    /// The user name the proxy asks for (Basic for HTTP, RFC 1929 for SOCKS5), if any.
    public var username: String? { storage.username }
    /// The password that goes with `username`.
    public var password: String? { storage.password }
    /// Fields added to each CONNECT request (HTTP kinds only).
    public var connectHeaders: HTTPFields { storage.connectHeaders }

    /// The fields, in one allocation made when the proxy is: a proxy is one word wherever it
    /// travels (in the state machine's events and actions, on every get), as an error is.
    private let storage: Storage

    private final class Storage: Hashable, Sendable {
        let kind: Kind
        let host: String
        let port: Int
        let username: String?
        let password: String?
        let connectHeaders: HTTPFields

        init(kind: Kind, host: String, port: Int, username: String?, password: String?, connectHeaders: HTTPFields) {
            (self.kind, self.host, self.port) = (kind, host, port)
            (self.username, self.password, self.connectHeaders) = (username, password, connectHeaders)
        }

        static func == (a: Storage, b: Storage) -> Bool {
            a === b || ((a.kind, a.host, a.port, a.username, a.password) == (b.kind, b.host, b.port, b.username, b.password)
                && a.connectHeaders == b.connectHeaders)
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(kind)
            hasher.combine(host)
            hasher.combine(port)
            hasher.combine(username)
            hasher.combine(password)
            hasher.combine(connectHeaders)
        }
    }

    /// The most bytes of a SOCKS5 user name or password (RFC 1929: one length byte).
    static let maxSOCKSCredentialBytes = 255

    /// A proxy from its URL: `http://`, `https://`, `socks5://` or `socks5h://`, then optional
    /// `user[:password]@` (percent-encoded), a host (an IPv6 literal in brackets), an optional port
    /// (else 80, 443 or 1080) and nothing after but an optional `/`. `connectHeaders` go in each
    /// CONNECT request. Throws `invalidConfiguration` saying what is wrong (never the credentials).
    public init(_ url: String, connectHeaders: HTTPFields = [:]) throws(HotPoolError) {
        func invalid(_ why: String) -> HotPoolError { .invalidConfiguration("proxy URL \(Self.redacted(url)): \(why)") }
        guard let schemeEnd = Self.schemeSeparator(url) else { throw invalid("no scheme (http, https, socks5, socks5h)") }
        guard let kind = Kind(rawValue: url[..<schemeEnd.lowerBound].lowercased()) else {
            throw invalid("unsupported scheme \(url[..<schemeEnd.lowerBound]) (http, https, socks5, socks5h)")
        }
        var rest = Substring(url[schemeEnd.upperBound...])
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains(where: { "/?#".contains($0) }) else { throw invalid("a proxy URL has no path, query or fragment") }
        var username: String?, password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let user = Self.percentDecoded(parts[0]), let pass = Self.percentDecoded(parts.count > 1 ? parts[1] : "") else {
                throw invalid("bad percent-encoding in the credentials")
            }
            guard !user.isEmpty else { throw invalid("empty user name") }
            guard !(user + pass).utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
                throw invalid("a control byte in the credentials")
            }
            if kind == .http || kind == .https {
                guard !user.contains(":") else { throw invalid("a Basic user name holds no colon") }
            } else {
                guard user.utf8.count <= Self.maxSOCKSCredentialBytes, pass.utf8.count <= Self.maxSOCKSCredentialBytes else {
                    throw invalid("a SOCKS5 user name or password is at most \(Self.maxSOCKSCredentialBytes) bytes")
                }
            }
            (username, password) = (user, pass)
        }
        var host: Substring, port = kind.defaultPort
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw invalid("unclosed [ in the host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            guard ipFamily(String(host)) == 6 else { throw invalid("not an IPv6 literal in brackets") }
            rest = rest[rest.index(after: close)...]
            guard rest.isEmpty || rest.hasPrefix(":") else { throw invalid("bytes after the IPv6 literal") }
        } else {
            host = rest.prefix { $0 != ":" }
            rest = rest[host.endIndex...]
        }
        if rest.hasPrefix(":") {
            let digits = rest.dropFirst()
            guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(digits), (1...65535).contains(number) else {
                throw invalid("port not in 1...65535")
            }
            port = number
        }
        guard isValidHostName(String(host)) else { throw invalid("invalid host \(String(reflecting: String(host)))") }
        if !connectHeaders.isEmpty && kind.isSOCKS { throw invalid("CONNECT headers apply to http and https proxies only") }
        for field in connectHeaders where field.name.canonicalName == "proxy-authorization" || field.name.canonicalName == "host" {
            throw invalid("\(field.name) is set by the pool, not in connectHeaders")
        }
        storage = Storage(kind: kind, host: String(host), port: port, username: username, password: password,
                          connectHeaders: connectHeaders)
    }

    /// What `dump` and other reflection show: the proxy without its password.
    public var customMirror: Mirror {
        Mirror(self, children: ["kind": kind, "host": host, "port": port, "username": username as Any], displayStyle: .struct)
    }

    /// The proxy's URL without credentials: `socks5://10.0.0.1:1080`.
    public var description: String {
        "\(kind.rawValue)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    /// `url` with anything between its scheme (if any) and its last `@` replaced, for messages
    /// about a URL that may hold credentials (also one with no scheme, or a mistyped one).
    private static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@") else { return url }
        let kept = schemeSeparator(url).map(\.upperBound).flatMap { $0 <= at ? $0 : nil } ?? url.startIndex
        return url[..<kept] + "***" + url[at...]
    }

    /// Where the `://` after `url`'s scheme is, if it starts with one (RFC 3986: a letter, then
    /// letters, digits, `+`, `-` and `.`): a `://` inside credentials is not one.
    private static func schemeSeparator(_ url: String) -> Range<String.Index>? {
        guard let separator = url.firstRange(of: "://"), let first = url.first, first.isASCII && first.isLetter,
            url[..<separator.lowerBound].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
        else { return nil }
        return separator
    }

    /// `text` with its `%XX` escapes decoded; nil for a bad escape or bytes that are not UTF-8.
    private static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// How a dial that may go through several proxies picks one.
public enum ProxySelection: Hashable, Sendable {
    /// Each dial takes the next proxy in rotation.
    case roundRobin
    /// Each target IP keeps the proxy it was first given while that proxy stays in rotation, so a
    /// (proxy, IP) pair keeps its connections (a sticky session per IP).
    case stickyPerIP
}
