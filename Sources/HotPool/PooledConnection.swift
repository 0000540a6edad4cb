import HotPoolCore
import HotPoolDriver
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine

/// A connection leased from a `HotConnPool`. A value: copies name the same connection, and a
/// copy used after the connection was returned or destroyed is detected (`staleConnection`).
public struct PooledConnection: Sendable, Hashable {
    let pool: HotConnPool
    /// The number of the pool's reactor that made it: its handle is that reactor's.
    let reactor: Int
    let handle: LeaseHandle
    private let identity: ConnectionIdentity
    /// The HTTP version the server chose for the connection (by ALPN).
    public let httpVersion: HTTPProtocolVersion

    init(pool: HotConnPool, driver: PoolDriver, lease: Lease) {
        self.pool = pool
        self.reactor = driver.reactorIndex
        self.handle = lease.handle
        self.identity = lease.identity
        self.httpVersion = lease.httpVersion
    }

    /// The host name the connection was made for (SNI, Host header).
    public var targetHost: String { identity.host }
    /// The IP it is connected to.
    public var targetIP: String { identity.ip }
    /// The server port.
    public var port: Int { identity.port }
    /// The name of the fingerprint profile the connection was made with.
    public var profile: String { identity.profile }
    /// The proxy the connection goes through; nil = directly.
    public var proxy: Proxy? { identity.proxy }

    /// `request` in the form the connection speaks, with its profile's headers.
    func message(_ request: HTTPRequest, body: [UInt8], streamsBody: Bool, decompress: Bool) -> ExchangeMessage {
        identity.message(request, body: body, streamsBody: streamsBody, http2: httpVersion == .http2, decompress: decompress)
    }

    /// Sends `request` (and `body`) and reads the whole response, within `timeout` (default
    /// `requestTimeout`). With a `bodyTimeout`, `timeout` bounds the wait for the response's head
    /// and `bodyTimeout` the body from then on (a timeout says which, by its `phase`: `request`
    /// or `responseBody`); without one, `timeout` bounds both. A bound that is not positive is
    /// refused with `invalidArgument`.
    /// The profile's headers are added, in the browser's order, where the request does not set
    /// them. A body coded with a coding the profile's `Accept-Encoding` offered (gzip, deflate,
    /// br, zstd, or several) is decoded as it arrives (`HotResponse.decodedContentCodings` says
    /// which), within `maxResponseBodyBytes` and `maxDecompressionRatio`; a corrupt one fails
    /// with `contentDecodingFailed`, and the connection stays usable. `decompress: false`, or a
    /// request that sets its own `Accept-Encoding`, gets the body as sent.
    /// The pool frames the request: one Host (the request's own `Host` field replaces the pool's
    /// value; over HTTP/2 it is `:authority`), and a `Content-Length` equal to the body's length; a
    /// request with several Host fields, a Content-Length that disagrees with the body, a
    /// `Transfer-Encoding`, or a space or control byte in its path or Host throws
    /// `HotPoolError.invalidRequest`, and nothing is sent.
    /// A network or TLS failure, or a malformed answer, closes the connection and marks it
    /// unhealthy: return it with `putConnection`, which destroys it. A cancelled task's call
    /// throws `HotPoolError.cancelled` without sending anything.
    public func roundTrip(
        _ request: HTTPRequest, body: [UInt8] = [], timeout: Duration? = nil, bodyTimeout: Duration? = nil,
        decompress: Bool = true, isolation: isolated (any Actor)? = #isolation
    ) async throws -> HotResponse {
        try await pool.roundTrip(self, request, body: body, timeout: timeout, bodyTimeout: bodyTimeout, decompress: decompress)
    }

    /// Sends `request` with a body read from `body` as the server takes it, and reads the whole
    /// response, as `roundTrip(_:body:)` does. Each chunk is sent as it comes: the next is asked
    /// for once the unsent bytes are under 1 MiB, so the upload holds about that plus one chunk
    /// whatever the size of the body or the pace of the server. With a `Content-Length` in the
    /// request, the body must be exactly that long (else `invalidRequest`, and the connection is
    /// unusable); without one it goes with chunked coding over HTTP/1.1 (HTTP/2 needs neither).
    /// `timeout` (default `requestTimeout`) bounds the whole sending, the sequence's own pace
    /// included, and the wait for the head.
    /// A server that answers before the whole body was sent (over HTTP/2, with the stream ended)
    /// ends it: the answer is returned, and the rest of the body is not asked for (an HTTP/1.1
    /// connection then carries no further request: `requestUnfinished`). A sequence that throws,
    /// or a cancelled task, abandons the exchange (an HTTP/1.1 connection is unusable, an HTTP/2
    /// stream reset; neither counts against the IP), and the sequence's error, or `cancelled`, is
    /// thrown.
    public func roundTrip<Body: AsyncSequence>(
        _ request: HTTPRequest, body: Body, timeout: Duration? = nil, bodyTimeout: Duration? = nil,
        decompress: Bool = true, isolation: isolated (any Actor)? = #isolation
    ) async throws -> HotResponse where Body.Element == [UInt8] {
        try await pool.roundTrip(self, request, streaming: body, timeout: timeout, bodyTimeout: bodyTimeout, decompress: decompress)
    }

    /// Sends `request` (and `body`) as `roundTrip` does, and returns once the response head is in
    /// (within `timeout`), its body to be read as it arrives from `StreamingResponse.body`, with
    /// backpressure and no size limit, within `bodyTimeout` if given (else as long as its reader
    /// takes). Content codings are decoded as `roundTrip` decodes them. The connection carries the
    /// next request once the body was read to its end; a body given up before (dropped, its task
    /// cancelled) leaves an HTTP/1.1 connection unusable and resets an HTTP/2 stream.
    public func streamingRoundTrip(
        _ request: HTTPRequest, body: [UInt8] = [], timeout: Duration? = nil, bodyTimeout: Duration? = nil,
        decompress: Bool = true, isolation: isolated (any Actor)? = #isolation
    ) async throws -> StreamingResponse {
        try await pool.streamingRoundTrip(self, request, body: body, timeout: timeout, bodyTimeout: bodyTimeout, decompress: decompress)
    }

    public static func == (a: Self, b: Self) -> Bool { a.pool === b.pool && a.reactor == b.reactor && a.handle == b.handle }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(pool))
        hasher.combine(reactor)
        hasher.combine(handle)
    }
}
