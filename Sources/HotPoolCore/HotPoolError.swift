/// What went wrong (`code`), and with which host and IP.
///
/// A struct, not an enum, so that new codes and new context fields can be added without
/// breaking a caller's exhaustive switch. Errors are made by static members named after their
/// code (`.poolClosed`, `.timeout(host:ip:phase:)`, ...), and matched by code:
/// `catch HotPoolError.Code.poolClosed`, `case HotPoolError.Code.timeout:`, or
/// `error.code == .timeout`. Two errors are equal when their code and every field are.
public struct HotPoolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Which kind of failure this is; one `static let` per kind. New codes may be added, so a
    /// switch over them needs a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Hashable, Sendable {
            case poolClosed, invalidConfiguration, invalidArgument, invalidURL, invalidHostName,
                unsupportedScheme, invalidRequest, noAddresses, allAddressesBlacklisted,
                addressBlacklisted, invalidIP, validationFailed, connectFailed,
                localAddressUnavailable, tlsHandshakeFailed, timeout, staleConnection,
                connectionBusy, connectionClosed, networkError, tlsError, unexpectedEOF,
                streamReset, malformedStatusLine, malformedHeader, responseHeadersTooLarge,
                tooManyResponseHeaderFields, tooManyInterimResponses, responseBodyTooLarge,
                badChunkSize, invalidContentLength, cancelled, proxyConnectFailed,
                proxyAuthenticationRequired, proxyRefused, contentDecodingFailed, decompressionRatioExceeded
        }

        fileprivate let base: Base

        private init(_ base: Base) { self.base = base }

        /// The pool was closed.
        public static let poolClosed = Code(.poolClosed)
        /// A configuration value cannot work, or the pool could not be set up with it.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// An argument of a call is out of its range (a negative prewarm count, a duration or
        /// timeout that is not positive); nothing was done.
        public static let invalidArgument = Code(.invalidArgument)
        /// The URL cannot be parsed, lacks a host, or has a port outside 1...65535.
        public static let invalidURL = Code(.invalidURL)
        /// The host name is empty, longer than 253 bytes, or holds a space, a control byte, a URL
        /// delimiter, or a colon outside an IPv6 literal.
        public static let invalidHostName = Code(.invalidHostName)
        /// Only `https` is supported.
        public static let unsupportedScheme = Code(.unsupportedScheme)
        /// The request cannot be sent as given (nothing was sent): more than one Host field, a
        /// Content-Length that is not the body's length, a Transfer-Encoding (the pool frames
        /// bodies), or a path or Host holding a space or control byte.
        public static let invalidRequest = Code(.invalidRequest)
        /// The host name did not resolve to any address.
        public static let noAddresses = Code(.noAddresses)
        /// Every address of the host is blacklisted.
        public static let allAddressesBlacklisted = Code(.allAddressesBlacklisted)
        /// The IP a get was pinned to is blacklisted for the host, or left out by its allow list.
        public static let addressBlacklisted = Code(.addressBlacklisted)
        /// An IP passed to the pool is not an IP literal.
        public static let invalidIP = Code(.invalidIP)
        /// The server answered the validation request with a status other than 200.
        public static let validationFailed = Code(.validationFailed)
        /// The TCP connection could not be made.
        public static let connectFailed = Code(.connectFailed)
        /// None of the `localAddresses` of the target's family could be bound (each failure is logged).
        public static let localAddressUnavailable = Code(.localAddressUnavailable)
        /// The TLS handshake failed (bad certificate, protocol error, peer closed).
        public static let tlsHandshakeFailed = Code(.tlsHandshakeFailed)
        /// A phase (`HotPoolError.phase`) did not finish within its bound.
        public static let timeout = Code(.timeout)
        /// The handle's lease has ended: the connection was returned, removed, or destroyed.
        public static let staleConnection = Code(.staleConnection)
        /// A round trip is already under way on this connection.
        public static let connectionBusy = Code(.connectionBusy)
        /// The connection was closed earlier (error, server close) and cannot carry requests.
        public static let connectionClosed = Code(.connectionClosed)
        /// Reading or writing the socket failed.
        public static let networkError = Code(.networkError)
        /// A TLS error after the handshake.
        public static let tlsError = Code(.tlsError)
        /// The server closed the connection before the response was complete (or, with
        /// `closeDelimitedBodyRequiresCloseNotify`, ended a close-delimited body with no TLS close_notify).
        public static let unexpectedEOF = Code(.unexpectedEOF)
        /// The server (or nghttp2, for a protocol error) reset the request's HTTP/2 stream.
        public static let streamReset = Code(.streamReset)
        /// The response's status line is not `HTTP/1.x NNN ...`.
        public static let malformedStatusLine = Code(.malformedStatusLine)
        /// A response header line is not `name: value` with a valid name.
        public static let malformedHeader = Code(.malformedHeader)
        /// The response head, or its trailer section, is larger than `maxResponseHeaderBytes`.
        public static let responseHeadersTooLarge = Code(.responseHeadersTooLarge)
        /// The response head has more than `maxResponseHeaderFields` fields.
        public static let tooManyResponseHeaderFields = Code(.tooManyResponseHeaderFields)
        /// The server sent more interim (1xx) responses before its answer than the pool takes.
        public static let tooManyInterimResponses = Code(.tooManyInterimResponses)
        /// The response body is larger than `maxResponseBodyBytes`.
        public static let responseBodyTooLarge = Code(.responseBodyTooLarge)
        /// A chunk size line of a chunked body is not hexadecimal.
        public static let badChunkSize = Code(.badChunkSize)
        /// Content-Length is not a number, or several disagree.
        public static let invalidContentLength = Code(.invalidContentLength)
        /// The caller's task was cancelled while it waited for a connection, or before a round trip
        /// (one already sent runs to its end or to `requestTimeout`).
        public static let cancelled = Code(.cancelled)
        /// The proxy (`HotPoolError.proxy`) could not be reached, or failed to open the tunnel to
        /// the target: a refused or failed connect, a CONNECT answered with a status other than
        /// 2xx or 407, a malformed or oversized answer, a close before the tunnel was up.
        public static let proxyConnectFailed = Code(.proxyConnectFailed)
        /// The proxy asks for credentials it was not given or refused those given (HTTP 407, or
        /// a SOCKS5 authentication failure); `reason` names the scheme it asks for
        /// (its `Proxy-Authenticate`, or the SOCKS5 method).
        public static let proxyAuthenticationRequired = Code(.proxyAuthenticationRequired)
        /// The SOCKS5 proxy refused the tunnel; `reason` names its reply code ("connection refused",
        /// "host unreachable", ...).
        public static let proxyRefused = Code(.proxyRefused)
        /// The response body's content coding could not be undone: a coding the pool does not
        /// decode, corrupt data, or a stream cut short (`reason` names the coding and why). Only
        /// the request failed: the connection stays usable when the body's framing was intact.
        public static let contentDecodingFailed = Code(.contentDecodingFailed)
        /// The decoded response body grew past `maxDecompressionRatio` (`limit`) times the bytes
        /// that came (a decompression bomb); an HTTP/1.1 connection is closed, an HTTP/2 stream reset.
        public static let decompressionRatioExceeded = Code(.decompressionRatioExceeded)

        /// The code's name, as spelled by its `static let` (`"poolClosed"`).
        public var description: String { base.rawValue }

        /// Whether `value` is a `HotPoolError` with this code, so that `catch HotPoolError.Code.poolClosed`
        /// and `case HotPoolError.Code.timeout:` match.
        public static func ~= (pattern: Code, value: any Error) -> Bool {
            (value as? HotPoolError)?.code == pattern
        }
    }

    /// What was under way when a timeout hit.
    public enum Phase: String, Hashable, Sendable {
        /// The TCP connect (to the proxy, for a connection through one).
        case connect
        /// Opening the tunnel through the proxy (CONNECT, or the SOCKS5 exchange; for an `https`
        /// proxy, its TLS handshake too).
        case proxyTunnel
        /// The TLS handshake.
        case tlsHandshake
        /// A caller's wait for a connection (`acquireTimeout`).
        case waitForConnection
        /// A request and its response (up to its head, when a body timeout was given).
        case request
        /// A response's body, after its head, when the request was given a body timeout.
        case responseBody
    }

    /// Which kind of failure this is.
    public let code: Code
    /// The context below, in one allocation made only for errors that have any: an error is two
    /// words wherever it travels (in the state machine's events and actions, in results).
    private let context: Context?

    /// The host name the failure concerns, when there is one (the invalid name, for `invalidHostName`).
    public var host: String? { context?.host }
    /// The IP the failure concerns, when there is one (the invalid text, for `invalidIP`).
    public var ip: String? { context?.ip }
    /// The underlying reason or detail: the OS or TLS error, the DNS answer, the HTTP/2 error
    /// code, what is wrong with a configuration value, argument or request, the URL or scheme refused.
    public var reason: String? { context?.reason }
    /// What was under way, for `timeout`.
    public var phase: Phase? { context?.phase }
    /// The status the server answered, for `validationFailed`.
    public var status: Int? { context?.status }
    /// The limit that was exceeded, for the too-large and too-many codes and `decompressionRatioExceeded`.
    public var limit: Int? { context?.limit }
    /// The proxy the connection went through, for the proxy codes and a timeout of a dial through
    /// one (its URL without credentials).
    public var proxy: String? { context?.proxy }

    /// An error's context fields.
    private final class Context: Hashable, Sendable {
        let host: String?, ip: String?, reason: String?
        let phase: Phase?
        let status: Int?, limit: Int?
        let proxy: String?

        init(host: String?, ip: String?, reason: String?, phase: Phase?, status: Int?, limit: Int?, proxy: String?) {
            (self.host, self.ip, self.reason, self.phase, self.status, self.limit) = (host, ip, reason, phase, status, limit)
            self.proxy = proxy
        }

        static func == (a: Context, b: Context) -> Bool {
            (a.host, a.ip, a.reason, a.phase, a.status, a.limit) == (b.host, b.ip, b.reason, b.phase, b.status, b.limit)
                && a.proxy == b.proxy
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(host)
            hasher.combine(ip)
            hasher.combine(reason)
            hasher.combine(phase)
            hasher.combine(status)
            hasher.combine(limit)
            hasher.combine(proxy)
        }
    }

    private init(
        _ code: Code, host: String? = nil, ip: String? = nil, reason: String? = nil,
        phase: Phase? = nil, status: Int? = nil, limit: Int? = nil, proxy: String? = nil
    ) {
        self.code = code
        let empty = host == nil && ip == nil && reason == nil && phase == nil && status == nil && limit == nil && proxy == nil
        context = empty ? nil : Context(host: host, ip: ip, reason: reason, phase: phase, status: status, limit: limit, proxy: proxy)
    }

    /// The pool was closed.
    public static let poolClosed = HotPoolError(.poolClosed)
    /// A configuration value cannot work, or the pool could not be set up with it; `why` is the `reason`.
    public static func invalidConfiguration(_ why: String) -> HotPoolError { HotPoolError(.invalidConfiguration, reason: why) }
    /// An argument of a call is out of its range; `why` is the `reason`. Nothing was done.
    public static func invalidArgument(_ why: String) -> HotPoolError { HotPoolError(.invalidArgument, reason: why) }
    /// The URL cannot be parsed, lacks a host, or has a port outside 1...65535; the URL is the `reason`.
    public static func invalidURL(_ url: String) -> HotPoolError { HotPoolError(.invalidURL, reason: url) }
    /// The host name is empty, longer than 253 bytes, or holds a space, a control byte, a URL
    /// delimiter, or a colon outside an IPv6 literal; the name is the `host`.
    public static func invalidHostName(_ name: String) -> HotPoolError { HotPoolError(.invalidHostName, host: name) }
    /// Only `https` is supported; the scheme given is the `reason`.
    public static func unsupportedScheme(_ scheme: String) -> HotPoolError { HotPoolError(.unsupportedScheme, reason: scheme) }
    /// The request cannot be sent as given (nothing was sent); `why` is the `reason`. See
    /// `Code.invalidRequest`.
    public static func invalidRequest(_ why: String) -> HotPoolError { HotPoolError(.invalidRequest, reason: why) }
    /// The host name did not resolve to any address.
    public static func noAddresses(host: String, reason: String) -> HotPoolError {
        HotPoolError(.noAddresses, host: host, reason: reason)
    }
    /// Every address of the host is blacklisted.
    public static func allAddressesBlacklisted(host: String) -> HotPoolError { HotPoolError(.allAddressesBlacklisted, host: host) }
    /// The IP a get was pinned to is blacklisted for the host, or left out by its allow list.
    public static func addressBlacklisted(host: String, ip: String) -> HotPoolError {
        HotPoolError(.addressBlacklisted, host: host, ip: ip)
    }
    /// An IP passed to the pool is not an IP literal; the text is the `ip`.
    public static func invalidIP(_ ip: String) -> HotPoolError { HotPoolError(.invalidIP, ip: ip) }
    /// The server at `ip` answered the validation request for `host` with `status` instead of 200.
    public static func validationFailed(host: String, ip: String, status: Int) -> HotPoolError {
        HotPoolError(.validationFailed, host: host, ip: ip, status: status)
    }
    /// A validation request was answered `status` instead of 200, with no host or IP named (the
    /// pool's own errors always name both; this form keeps code written against the enum compiling).
    public static func validationFailed(status: Int) -> HotPoolError {
        HotPoolError(.validationFailed, status: status)
    }
    /// The TCP connection could not be made.
    public static func connectFailed(host: String, ip: String, reason: String) -> HotPoolError {
        HotPoolError(.connectFailed, host: host, ip: ip, reason: reason)
    }
    /// None of the `localAddresses` of the target's family could be bound (each failure is logged).
    public static func localAddressUnavailable(host: String, ip: String) -> HotPoolError {
        HotPoolError(.localAddressUnavailable, host: host, ip: ip)
    }
    /// The TLS handshake failed (bad certificate, protocol error, peer closed).
    public static func tlsHandshakeFailed(host: String, ip: String, reason: String) -> HotPoolError {
        HotPoolError(.tlsHandshakeFailed, host: host, ip: ip, reason: reason)
    }
    /// `phase` did not finish within its bound (`ip` is nil while no connection was chosen;
    /// `proxy` names the proxy of a dial through one).
    public static func timeout(host: String, ip: String?, phase: Phase, proxy: Proxy? = nil) -> HotPoolError {
        HotPoolError(.timeout, host: host, ip: ip, phase: phase, proxy: proxy?.description)
    }
    /// The handle's lease has ended: the connection was returned, removed, or destroyed.
    public static let staleConnection = HotPoolError(.staleConnection)
    /// A round trip is already under way on this connection.
    public static let connectionBusy = HotPoolError(.connectionBusy)
    /// The connection was closed earlier (error, server close) and cannot carry requests.
    public static func connectionClosed(host: String, ip: String) -> HotPoolError {
        HotPoolError(.connectionClosed, host: host, ip: ip)
    }
    /// Reading or writing the socket failed.
    public static func networkError(host: String, ip: String, reason: String) -> HotPoolError {
        HotPoolError(.networkError, host: host, ip: ip, reason: reason)
    }
    /// A TLS error after the handshake.
    public static func tlsError(host: String, ip: String, reason: String) -> HotPoolError {
        HotPoolError(.tlsError, host: host, ip: ip, reason: reason)
    }
    /// The server closed the connection before the response was complete (or, with
    /// `closeDelimitedBodyRequiresCloseNotify`, ended a close-delimited body with no TLS close_notify).
    public static func unexpectedEOF(host: String, ip: String) -> HotPoolError {
        HotPoolError(.unexpectedEOF, host: host, ip: ip)
    }
    /// The server (or nghttp2, for a protocol error) reset the request's HTTP/2 stream; `reason`
    /// names the HTTP/2 error code (`REFUSED_STREAM`: the server did not process the request).
    public static func streamReset(host: String, ip: String, reason: String) -> HotPoolError {
        HotPoolError(.streamReset, host: host, ip: ip, reason: reason)
    }
    /// The response's status line is not `HTTP/1.x NNN ...`.
    public static func malformedStatusLine(host: String, ip: String) -> HotPoolError {
        HotPoolError(.malformedStatusLine, host: host, ip: ip)
    }
    /// A response header line is not `name: value` with a valid name.
    public static func malformedHeader(host: String, ip: String) -> HotPoolError {
        HotPoolError(.malformedHeader, host: host, ip: ip)
    }
    /// The response head, or its trailer section, is larger than `maxResponseHeaderBytes` (`limit`).
    public static func responseHeadersTooLarge(host: String, ip: String, limit: Int) -> HotPoolError {
        HotPoolError(.responseHeadersTooLarge, host: host, ip: ip, limit: limit)
    }
    /// The response head has more than `maxResponseHeaderFields` (`limit`) fields.
    public static func tooManyResponseHeaderFields(host: String, ip: String, limit: Int) -> HotPoolError {
        HotPoolError(.tooManyResponseHeaderFields, host: host, ip: ip, limit: limit)
    }
    /// The server sent more than `limit` interim (1xx) responses before its answer.
    public static func tooManyInterimResponses(host: String, ip: String, limit: Int) -> HotPoolError {
        HotPoolError(.tooManyInterimResponses, host: host, ip: ip, limit: limit)
    }
    /// The response body is larger than `maxResponseBodyBytes` (`limit`).
    public static func responseBodyTooLarge(host: String, ip: String, limit: Int) -> HotPoolError {
        HotPoolError(.responseBodyTooLarge, host: host, ip: ip, limit: limit)
    }
    /// A chunk size line of a chunked body is not hexadecimal.
    public static func badChunkSize(host: String, ip: String) -> HotPoolError {
        HotPoolError(.badChunkSize, host: host, ip: ip)
    }
    /// Content-Length is not a number, or several disagree.
    public static func invalidContentLength(host: String, ip: String) -> HotPoolError {
        HotPoolError(.invalidContentLength, host: host, ip: ip)
    }
    /// The caller's task was cancelled while it waited for a connection, or before a round trip
    /// (one already sent runs to its end or to `requestTimeout`).
    public static let cancelled = HotPoolError(.cancelled)
    /// `proxy` could not be reached or did not open the tunnel to `host` at `ip`; see `Code.proxyConnectFailed`.
    public static func proxyConnectFailed(proxy: Proxy, host: String, ip: String, reason: String) -> HotPoolError {
        HotPoolError(.proxyConnectFailed, host: host, ip: ip, reason: reason, proxy: proxy.description)
    }
    /// `proxy` asks for credentials (`scheme`, its `reason`) before it opens the tunnel to `host` at `ip`.
    public static func proxyAuthenticationRequired(proxy: Proxy, host: String, ip: String, scheme: String) -> HotPoolError {
        HotPoolError(.proxyAuthenticationRequired, host: host, ip: ip, reason: scheme, proxy: proxy.description)
    }
    /// The SOCKS5 `proxy` refused the tunnel to `host` at `ip` with the reply `reason`.
    public static func proxyRefused(proxy: Proxy, host: String, ip: String, reason: String) -> HotPoolError {
        HotPoolError(.proxyRefused, host: host, ip: ip, reason: reason, proxy: proxy.description)
    }

    /// The body from `host` at `ip` could not be decoded; `reason` names the coding and why.
    public static func contentDecodingFailed(host: String, ip: String, reason: String) -> HotPoolError {
        HotPoolError(.contentDecodingFailed, host: host, ip: ip, reason: reason)
    }
    /// The decoded body from `host` at `ip` grew past `limit` times the bytes that came.
    public static func decompressionRatioExceeded(host: String, ip: String, limit: Int) -> HotPoolError {
        HotPoolError(.decompressionRatioExceeded, host: host, ip: ip, limit: limit)
    }

    /// What went wrong, in one line naming the host, IP and reason it concerns.
    public var description: String {
        // Every constructor sets the fields its code's text names (a validation failure made
        // without a connection names none).
        let host = host ?? "?", ip = ip ?? "?", reason = reason ?? "", limit = limit ?? 0
        return switch code.base {
        case .poolClosed: "pool closed"
        case .invalidConfiguration: "invalid configuration: \(reason)"
        case .invalidArgument: "invalid argument: \(reason)"
        case .invalidURL: "invalid URL: \(reason)"
        case .invalidHostName: "invalid host name: \(String(reflecting: host))"
        case .unsupportedScheme: "unsupported scheme \(reason) (only https)"
        case .invalidRequest: "invalid request: \(reason)"
        case .noAddresses: "no addresses for \(host): \(reason)"
        case .allAddressesBlacklisted: "every address of \(host) is blacklisted"
        case .addressBlacklisted: "\(ip) is blacklisted for \(host)"
        case .invalidIP: "not an IP address: \(ip)"
        case .validationFailed where self.host == nil: "validation request answered \(status ?? 0), not 200"
        case .validationFailed: "validation request to \(host) (\(ip)) answered \(status ?? 0), not 200"
        case .connectFailed: "connect to \(host) (\(ip)) failed: \(reason)"
        case .localAddressUnavailable: "no local address could be bound to connect to \(host) (\(ip))"
        case .tlsHandshakeFailed: "TLS handshake with \(host) (\(ip)) failed: \(reason)"
        case .timeout: "\(phase?.rawValue ?? "?") timed out for \(host)\(self.ip.map { " (\($0))" } ?? "")\(self.proxy.map { " through \($0)" } ?? "")"
        case .staleConnection: "connection handle is stale: it was returned, removed or closed"
        case .connectionBusy: "a round trip is already under way on this connection"
        case .connectionClosed: "connection to \(host) (\(ip)) is closed"
        case .networkError: "network error with \(host) (\(ip)): \(reason)"
        case .tlsError: "TLS error with \(host) (\(ip)): \(reason)"
        case .unexpectedEOF: "\(host) (\(ip)) closed the connection mid-response"
        case .streamReset: "\(host) (\(ip)) reset the HTTP/2 stream: \(reason)"
        case .malformedStatusLine: "malformed status line from \(host) (\(ip))"
        case .malformedHeader: "malformed header from \(host) (\(ip))"
        case .responseHeadersTooLarge: "response head or trailers from \(host) (\(ip)) exceed \(limit) bytes"
        case .tooManyResponseHeaderFields: "response head from \(host) (\(ip)) has more than \(limit) fields"
        case .tooManyInterimResponses: "\(host) (\(ip)) sent more than \(limit) interim (1xx) responses"
        case .responseBodyTooLarge: "response body from \(host) (\(ip)) exceeds \(limit) bytes"
        case .badChunkSize: "bad chunk size from \(host) (\(ip))"
        case .invalidContentLength: "invalid Content-Length from \(host) (\(ip))"
        case .cancelled: "cancelled"
        case .proxyConnectFailed: "proxy \(proxy ?? "?") failed to open a tunnel to \(host) (\(ip)): \(reason)"
        case .proxyAuthenticationRequired: "proxy \(proxy ?? "?") asks for authentication (\(reason)) for \(host) (\(ip))"
        case .proxyRefused: "proxy \(proxy ?? "?") refused the tunnel to \(host) (\(ip)): \(reason)"
        case .contentDecodingFailed: "response body from \(host) (\(ip)) could not be decoded: \(reason)"
        case .decompressionRatioExceeded: "response body from \(host) (\(ip)) decodes to more than \(limit) times its size"
        }
    }

    /// A failure on this side, not the server's: no local address could be bound, or the
    /// configuration cannot work (nghttp2 refused a profile's HTTP/2 preface).
    package var isLocal: Bool { code == .localAddressUnavailable || code == .invalidConfiguration }

    package var isTimeout: Bool { code == .timeout }

    /// The proxy's failure, not the target's: it could not be reached, refused or failed the
    /// tunnel, asked for credentials, or timed out before the tunnel was up.
    package var isProxyFault: Bool {
        switch code {
        case .proxyConnectFailed, .proxyAuthenticationRequired, .proxyRefused: true
        case .timeout: proxy != nil && (phase == .connect || phase == .proxyTunnel)
        default: false
        }
    }
}
