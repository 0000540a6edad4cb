import HTTPTypes

/// A complete response: head and body.
public struct HotResponse: Sendable {
    /// Status and header fields, in the order received.
    public var head: HTTPResponse
    /// The body, de-chunked, and decoded when `decodedContentCodings` names codings.
    public var body: [UInt8]
    /// The content codings the pool undid, in the order the server applied them (its
    /// `Content-Encoding`, which stays in `head` as sent, like its `Content-Length`); empty when
    /// the body is as the server sent it: no coding, a request that set its own
    /// `Accept-Encoding` or passed `decompress: false`, a HEAD, 204, 206 or 304.
    public var decodedContentCodings: [ContentCoding] = []
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

    package init(head: HTTPResponse, body: [UInt8], decodedContentCodings: [ContentCoding] = [],
                 bodyEndedWithoutCloseNotify: Bool = false, connectionReusable: Bool = true) {
        (self.head, self.body, self.decodedContentCodings) = (head, body, decodedContentCodings)
        (self.bodyEndedWithoutCloseNotify, self.connectionReusable) = (bodyEndedWithoutCloseNotify, connectionReusable)
    }
}
