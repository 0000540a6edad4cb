import HTTPTypes
import HotPoolCore

/// A response body as its bytes arrive, within the pool's `ResponseLimits`: kept as sent, or,
/// when the exchange decodes content and the head names codings, decoded as it comes. Shared by
/// the HTTP/1.1 parser and HTTP/2 streams.
///
/// The limits end the response (they throw): more than `maxBodyBytes` as sent or decoded (unless
/// the body `streams`: its consumer takes `bytes` as they come, and decides), or a decoded body
/// past `decompressionRatioFloor` that is more than `maxDecompressionRatio` times what came (a
/// decompression bomb). A coding that cannot be decoded (unknown, corrupt, cut
/// short) fails only the request: it is recorded in `decodingFailure`, the rest of the body is
/// taken as framing needs and dropped, and the connection stays usable.
package struct ResponseBody {
    /// The body (what `takeBytes` left of it): decoded, unless `decodingFailure`.
    package private(set) var bytes: [UInt8] = []
    /// Bytes as they came (what framing and flow control count).
    package private(set) var receivedBytes = 0
    /// Bytes decoded in all (`bytes` and those taken).
    private var decodedBytes = 0
    /// Its consumer takes the bytes as they come (`takeBytes`): `maxBodyBytes` does not apply.
    package var streams = false
    /// The codings undone, in the order the server applied them; empty when the body is as sent.
    package private(set) var decodedCodings: [ContentCoding] = []
    /// Why the body could not be decoded (`ResponseError.contentDecodingFailed`).
    package private(set) var decodingFailure: ResponseError?
    private var decoder: ContentDecoder?
    private let limits: ResponseLimits

    package init(limits: ResponseLimits) {
        self.limits = limits
    }

    /// Whether a response with `status` has a body (RFC 9110 6.4.1): none answers a HEAD, and a
    /// 204, a 304 and a 101 (which switches protocols) have none.
    package static func exists(status: Int, isHeadRequest: Bool) -> Bool {
        !(isHeadRequest || status == 204 || status == 304 || status == 101)
    }

    /// The final head came: a body decoded by the head's `Content-Encoding` when `decodes` (a 206
    /// is a range of the coded body, and is kept as sent).
    package mutating func start(_ head: HTTPResponse, decodes: Bool) {
        guard decodes, head.status.code != 206 else { return }
        do {
            decoder = try ContentDecoder.make(for: head.headerFields)
            decodedCodings = decoder?.codings ?? []
        } catch {
            decodingFailure = error
        }
    }

    /// Reserves room for `count` body bytes, the expected size when it is kept as sent.
    package mutating func reserve(_ count: Int) {
        if decoder == nil { bytes.reserveCapacity(count) }
    }

    /// Takes body bytes as they came; throws `bodyTooLarge`, or for their decoded bytes
    /// `decodedBodyTooLarge` or `decompressionRatioExceeded`.
    package mutating func append(_ chunk: UnsafeRawBufferPointer) throws(ResponseError) {
        guard streams || chunk.count <= limits.maxBodyBytes - receivedBytes else { throw .bodyTooLarge }
        receivedBytes += chunk.count
        guard decodingFailure == nil else { return }
        guard let decoder else { return bytes.append(contentsOf: chunk) }
        do {
            try decoder.decode(chunk) { (piece) throws(ResponseError) in try take(decoded: piece) }
        } catch .contentDecodingFailed(let coding, let reason) {
            fail(.contentDecodingFailed(coding: coding, reason: reason))
        }
    }

    /// The body ended: a coded one cut short is recorded as a decoding failure.
    package mutating func end() {
        guard decodingFailure == nil, let decoder else { return }
        do {
            try decoder.finish()
        } catch {
            fail(error)
        }
    }

    /// Hands over the bytes so far (a streamed body's consumer takes them as they come).
    package mutating func takeBytes() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }

    private mutating func take(decoded piece: UnsafeRawBufferPointer) throws(ResponseError) {
        guard streams || piece.count <= limits.maxBodyBytes - bytes.count else { throw .decodedBodyTooLarge }
        bytes.append(contentsOf: piece)
        decodedBytes += piece.count
        if decodedBytes > ResponseLimits.decompressionRatioFloor && decodedBytes / limits.maxDecompressionRatio > receivedBytes {
            throw .decompressionRatioExceeded
        }
    }

    /// Gives up decoding: what was decoded is dropped, and the rest of the body with it.
    private mutating func fail(_ failure: ResponseError) {
        decodingFailure = failure
        decoder = nil
        bytes = []
    }
}
