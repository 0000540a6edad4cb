/// What went wrong, and with which host and IP.
public enum HotPoolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The pool was closed.
    case poolClosed
    /// A configuration value cannot work.
    case invalidConfiguration(String)
    /// The URL cannot be parsed, lacks a host, or has a port outside 1...65535.
    case invalidURL(String)
    /// The host name is empty, longer than 253 bytes, or holds a space, a control byte, a URL
    /// delimiter, or a colon outside an IPv6 literal.
    case invalidHostName(String)
    /// Only `https` is supported.
    case unsupportedScheme(String)
    /// The request cannot be sent as given (nothing was sent): more than one Host field, a
    /// Content-Length that is not the body's length, a Transfer-Encoding (the pool frames
    /// bodies), or a path or Host holding a space or control byte.
    case invalidRequest(String)
    /// The host name did not resolve to any address.
    case noAddresses(host: String, reason: String)
    /// Every address of the host is blacklisted.
    case allAddressesBlacklisted(host: String)
    /// The IP a get was pinned to is blacklisted for the host, or left out by its allow list.
    case addressBlacklisted(host: String, ip: String)
    /// The IP passed to `getConnection(host:port:ip:)` is not an IP literal.
    case invalidIP(String)
    /// The server answered the validation request with this status instead of 200.
    case validationFailed(status: Int)
    /// The TCP connection could not be made.
    case connectFailed(host: String, ip: String, reason: String)
    /// None of the `localAddresses` of the target's family could be bound (each failure is logged).
    case localAddressUnavailable(host: String, ip: String)
    /// The TLS handshake failed (bad certificate, protocol error, peer closed).
    case tlsHandshakeFailed(host: String, ip: String, reason: String)
    /// `phase` did not finish within its bound.
    case timeout(host: String, ip: String?, phase: Phase)
    /// The handle's lease has ended: the connection was returned, removed, or destroyed.
    case staleConnection
    /// A round trip is already under way on this connection.
    case connectionBusy
    /// The connection was closed earlier (error, server close) and cannot carry requests.
    case connectionClosed(host: String, ip: String)
    /// Reading or writing the socket failed.
    case networkError(host: String, ip: String, reason: String)
    /// A TLS error after the handshake.
    case tlsError(host: String, ip: String, reason: String)
    /// The server closed the connection before the response was complete (or, with
    /// `closeDelimitedBodyRequiresCloseNotify`, ended a close-delimited body with no TLS close_notify).
    case unexpectedEOF(host: String, ip: String)
    /// The server (or nghttp2, for a protocol error) reset the request's HTTP/2 stream; `reason`
    /// names the HTTP/2 error code (`REFUSED_STREAM`: the server did not process the request).
    case streamReset(host: String, ip: String, reason: String)
    /// The response's status line is not `HTTP/1.x NNN ...`.
    case malformedStatusLine(host: String, ip: String)
    /// A response header line is not `name: value` with a valid name.
    case malformedHeader(host: String, ip: String)
    /// The response head, or its trailer section, is larger than `maxResponseHeaderBytes`.
    case responseHeadersTooLarge(host: String, ip: String, limit: Int)
    /// The response head has more than `maxResponseHeaderFields` fields.
    case tooManyResponseHeaderFields(host: String, ip: String, limit: Int)
    /// The server sent more than `limit` interim (1xx) responses before its answer.
    case tooManyInterimResponses(host: String, ip: String, limit: Int)
    /// The response body is larger than `maxResponseBodyBytes`.
    case responseBodyTooLarge(host: String, ip: String, limit: Int)
    /// A chunk size line of a chunked body is not hexadecimal.
    case badChunkSize(host: String, ip: String)
    /// Content-Length is not a number, or several disagree.
    case invalidContentLength(host: String, ip: String)
    /// The caller's task was cancelled while it waited for a connection, or before a round trip
    /// (one already sent runs to its end or to `requestTimeout`).
    case cancelled

    /// What was under way when a timeout hit.
    public enum Phase: String, Hashable, Sendable {
        case connect, tlsHandshake, waitForConnection, request
    }

    public var description: String {
        switch self {
        case .poolClosed: "pool closed"
        case .invalidConfiguration(let why): "invalid configuration: \(why)"
        case .invalidURL(let url): "invalid URL: \(url)"
        case .invalidHostName(let name): "invalid host name: \(String(reflecting: name))"
        case .unsupportedScheme(let scheme): "unsupported scheme \(scheme) (only https)"
        case .invalidRequest(let why): "invalid request: \(why)"
        case .noAddresses(let host, let reason): "no addresses for \(host): \(reason)"
        case .allAddressesBlacklisted(let host): "every address of \(host) is blacklisted"
        case .addressBlacklisted(let host, let ip): "\(ip) is blacklisted for \(host)"
        case .invalidIP(let ip): "not an IP address: \(ip)"
        case .validationFailed(let status): "validation request answered \(status), not 200"
        case .connectFailed(let host, let ip, let reason): "connect to \(host) (\(ip)) failed: \(reason)"
        case .localAddressUnavailable(let host, let ip): "no local address could be bound to connect to \(host) (\(ip))"
        case .tlsHandshakeFailed(let host, let ip, let reason): "TLS handshake with \(host) (\(ip)) failed: \(reason)"
        case .timeout(let host, let ip, let phase): "\(phase.rawValue) timed out for \(host)\(ip.map { " (\($0))" } ?? "")"
        case .staleConnection: "connection handle is stale: it was returned, removed or closed"
        case .connectionBusy: "a round trip is already under way on this connection"
        case .connectionClosed(let host, let ip): "connection to \(host) (\(ip)) is closed"
        case .networkError(let host, let ip, let reason): "network error with \(host) (\(ip)): \(reason)"
        case .tlsError(let host, let ip, let reason): "TLS error with \(host) (\(ip)): \(reason)"
        case .unexpectedEOF(let host, let ip): "\(host) (\(ip)) closed the connection mid-response"
        case .streamReset(let host, let ip, let reason): "\(host) (\(ip)) reset the HTTP/2 stream: \(reason)"
        case .malformedStatusLine(let host, let ip): "malformed status line from \(host) (\(ip))"
        case .malformedHeader(let host, let ip): "malformed header from \(host) (\(ip))"
        case .responseHeadersTooLarge(let host, let ip, let limit): "response head or trailers from \(host) (\(ip)) exceed \(limit) bytes"
        case .tooManyResponseHeaderFields(let host, let ip, let limit): "response head from \(host) (\(ip)) has more than \(limit) fields"
        case .tooManyInterimResponses(let host, let ip, let limit): "\(host) (\(ip)) sent more than \(limit) interim (1xx) responses"
        case .responseBodyTooLarge(let host, let ip, let limit): "response body from \(host) (\(ip)) exceeds \(limit) bytes"
        case .badChunkSize(let host, let ip): "bad chunk size from \(host) (\(ip))"
        case .invalidContentLength(let host, let ip): "invalid Content-Length from \(host) (\(ip))"
        case .cancelled: "cancelled"
        }
    }

    /// A failure on this side, not the server's: no local address could be bound, or the
    /// configuration cannot work (nghttp2 refused a profile's HTTP/2 preface).
    package var isLocal: Bool {
        switch self {
        case .localAddressUnavailable, .invalidConfiguration: true
        default: false
        }
    }

    package var isTimeout: Bool { if case .timeout = self { true } else { false } }
}
