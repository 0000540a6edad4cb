/// What a response may take: every limit the parser enforces, so that memory stays
/// proportional to them whatever a server sends.
package struct ResponseLimits: Sendable, Equatable {
    /// Bytes of one head (status line, fields and the blank line), and of the trailer section.
    package var maxHeaderBytes: Int
    /// Fields in one head.
    package var maxHeaderFields: Int
    /// Bytes of the (de-chunked) body, as it came and decoded.
    package var maxBodyBytes: Int
    /// How many times larger than what came a decoded body may grow, past `decompressionRatioFloor`.
    package var maxDecompressionRatio: Int

    /// Interim (1xx) responses skipped before the final one.
    package static let maxInterimResponses = 10
    /// Bytes of one chunk-size line, extensions and line end included.
    package static let maxChunkLineBytes = 1024
    /// Body bytes reserved from a Content-Length before they arrive: most bodies in one
    /// allocation, while a larger one grows as it comes, so a length the server never honours
    /// (up to `Int.max` with no body limit) costs nothing up front.
    package static let bodyBytesReservedUpFront = 64 * 1024
    /// Decoded bytes a body may reach whatever its ratio: small bodies of repeated bytes
    /// legitimately shrink far more than real content of any size.
    package static let decompressionRatioFloor = 1 << 20

    package init(maxHeaderBytes: Int, maxHeaderFields: Int, maxBodyBytes: Int, maxDecompressionRatio: Int) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderFields = maxHeaderFields
        self.maxBodyBytes = maxBodyBytes
        self.maxDecompressionRatio = maxDecompressionRatio
    }
}
