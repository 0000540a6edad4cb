/// An HTTP content coding the pool undoes (RFC 9110 8.4.1; zstd, RFC 8878): a response body
/// coded with these, to a request whose `Accept-Encoding` came from the fingerprint profile, is
/// returned decoded.
public enum ContentCoding: String, Sendable, Hashable, CaseIterable {
    /// gzip (RFC 1952), one member or several in a row; `x-gzip` is the same coding.
    case gzip
    /// zlib-wrapped deflate (RFC 1950), or raw deflate (RFC 1951) as some servers send it.
    case deflate
    /// Brotli (RFC 7932).
    case br
    /// Zstandard (RFC 8878), one frame or several, windows up to 8 MiB (RFC 9659).
    case zstd

    /// The coding a `Content-Encoding` token names (ASCII case-insensitive), or nil.
    package init?(token: some StringProtocol) {
        switch token.lowercased() {
        case "gzip", "x-gzip": self = .gzip
        case "deflate": self = .deflate
        case "br": self = .br
        case "zstd": self = .zstd
        default: return nil
        }
    }
}
