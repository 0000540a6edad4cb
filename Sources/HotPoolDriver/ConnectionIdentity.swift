import CShims
import DequeModule
import Glibc
import HTTPTypes
import HotPoolCore
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine
import Logging
import Synchronization

/// What a connection is, fixed when it is dialed: one object per connection, so handing it to
/// callers costs a reference, not a copy of each name.
package final class ConnectionIdentity: Sendable {
    package let host: String
    package let port: Int
    /// The Host header value for requests that give no authority.
    let authority: String
    package let ip: String
    /// The proxy it goes through, if any.
    package let proxy: Proxy?
    /// The local address it is bound to (of its connection to the proxy, through one); nil = chosen by the system.
    let localAddress: String?
    /// The fingerprint profile: its index in the configuration's `profiles`, and its name.
    let profileIndex: Int
    package let profile: String
    /// The profile's request headers, HTTP/1.1 and HTTP/2 forms, with this connection's Accept-Language.
    let headers: ProfileHeaders
    let http2Headers: ProfileHeaders
    let pseudoHeaderOrder: [HTTP2PseudoHeader]

    init(host: String, port: Int, authority: String, ip: String, proxy: Proxy?, localAddress: String?, profileIndex: Int, profile: String,
         headers: ProfileHeaders, http2Headers: ProfileHeaders, pseudoHeaderOrder: [HTTP2PseudoHeader]) {
        (self.host, self.port, self.authority, self.ip, self.localAddress) = (host, port, authority, ip, localAddress)
        self.proxy = proxy
        (self.profileIndex, self.profile) = (profileIndex, profile)
        (self.headers, self.http2Headers, self.pseudoHeaderOrder) = (headers, http2Headers, pseudoHeaderOrder)
    }

    /// Where a session this connection receives may be offered again.
    var sessionPlace: SessionCache.Place {
        SessionCache.Place(host: host, port: port, ip: ip, proxy: proxy, localAddress: localAddress, profileIndex: profileIndex)
    }

    /// `request` in the form the connection speaks, with the profile's headers. Its response body
    /// is decoded when `decompress` and the profile's `Accept-Encoding` went with it (a request
    /// that sets its own asked for the codings it will undo itself).
    package func message(_ request: HTTPRequest, body: [UInt8], streamsBody: Bool = false, http2: Bool,
                         decompress: Bool = true) -> ExchangeMessage {
        let decodes = decompress && request.headerFields[.acceptEncoding] == nil && headers.acceptsEncodings
        guard http2 else {
            return .http1(HTTP1Request.serialize(request, body: body, streamsBody: streamsBody, defaultHost: authority, profile: headers),
                          isHead: request.method == .head, decodesContent: decodes)
        }
        var message = HTTP2Request(request, body: body, streamsBody: streamsBody, defaultAuthority: authority, profile: http2Headers,
                                   pseudoHeaderOrder: pseudoHeaderOrder)
        message.decodesContent = decodes
        return .http2(message)
    }
}

/// A connection handed to a caller: its handle, what it is, and the HTTP version the server chose.
package struct Lease: Sendable {
    package let handle: LeaseHandle
    package let identity: ConnectionIdentity
    package let httpVersion: HTTPProtocolVersion
}
