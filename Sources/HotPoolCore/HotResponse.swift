import HTTPTypes

/// A complete response: head and body.
public struct HotResponse: Sendable {
    /// Status and header fields, in the order received.
    public var head: HTTPResponse
    /// The body, de-chunked.
    public var body: [UInt8]
    /// True when the body ran to the close of the connection (an HTTP/1.x response with neither
    /// Content-Length nor chunked coding) and that close was a bare TCP FIN with no TLS
    /// close_notify: the body may have been cut short (a server crash, an injected FIN). Such a
    /// body is returned, as browsers take it, and flagged here; with
    /// `HotPoolConfiguration.closeDelimitedBodyRequiresCloseNotify` it fails with
    /// `unexpectedEOF` instead, as curl reports it. Always false for bodies framed by length,
    /// chunks or HTTP/2.
    public var bodyEndedWithoutCloseNotify = false
    /// Whether the connection can carry another request after this response (the server did
    /// not close it or send more than was asked).
    package var connectionReusable = true

    package init(head: HTTPResponse, body: [UInt8], bodyEndedWithoutCloseNotify: Bool = false, connectionReusable: Bool = true) {
        (self.head, self.body) = (head, body)
        (self.bodyEndedWithoutCloseNotify, self.connectionReusable) = (bodyEndedWithoutCloseNotify, connectionReusable)
    }
}
