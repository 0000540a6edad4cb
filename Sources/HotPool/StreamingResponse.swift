import HotPoolDriver
import HotPoolIO
import Synchronization

/// A response whose body is read as it arrives: `PooledConnection.streamingRoundTrip` returns it
/// once the head is in.
public struct StreamingResponse: Sendable {
    /// Status and header fields, in the order received.
    public let head: HTTPResponse
    /// The content codings the body is decoded from as it comes, in the order the server applied
    /// them; empty when it comes as the server sent it (see `HotResponse.decodedContentCodings`).
    public let decodedContentCodings: [ContentCoding]
    /// The body, as byte chunks in order.
    public let body: ResponseBodyStream
}

/// A response body as byte chunks, in the order they arrive, with backpressure: the pool holds
/// about 1 MiB for the consumer (plus the socket reads under way over HTTP/1.1, or the stream's
/// flow-control window over HTTP/2) and reads on only as the consumer takes chunks. No size limit
/// applies (the consumer decides; `maxDecompressionRatio` still does). Iterate it once, from one
/// task; on the pool's executor each chunk comes with no thread hop.
///
/// The exchange ends when the body has been read to its end (the connection can then carry the
/// next request), or when the consumer gives it up: dropping the body (and its iterator) before
/// the end, or cancelling the task reading it, abandons the exchange. An HTTP/1.1 connection is
/// then unusable (return it, and it is destroyed, `unhealthyOnReturn`); an HTTP/2 stream is
/// reset, and its connection carries on. Either way it is counted once, as a failed request.
/// Closing the pool ends the body with `poolClosed`.
public final class ResponseBodyStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]

    let pool: HotConnPool
    /// The driver of the reactor the exchange runs on.
    let driver: PoolDriver
    let stream: BodyStream
    /// The consumer saw the end (or a failure): nothing is left to abandon.
    let ended = Atomic<Bool>(false)

    init(pool: HotConnPool, driver: PoolDriver, stream: BodyStream) {
        (self.pool, self.driver, self.stream) = (pool, driver, stream)
    }

    deinit {
        if !ended.load(ordering: .acquiring) { HotConnPool.abandonBody(stream, on: driver, .cancelled) }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }

    /// Reads the body's chunks in order; nil once it ended whole. Throws what ended it otherwise:
    /// a network or TLS failure, a timeout (`bodyTimeout`), `contentDecodingFailed`, `cancelled`
    /// (the reading task was cancelled), `poolClosed`.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let body: ResponseBodyStream

        public mutating func next() async throws -> [UInt8]? {
            try await next(isolation: nil)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> [UInt8]? {
            guard !body.ended.load(ordering: .acquiring) else { return nil }
            do {
                let chunk = try await body.pool.nextBodyChunk(body.stream, on: body.driver)
                if chunk == nil { body.ended.store(true, ordering: .releasing) }
                return chunk
            } catch {
                body.ended.store(true, ordering: .releasing)
                throw error
            }
        }
    }
}

extension HotConnPool {
    /// Sends `request` on the connection and returns once the response head is in, its body to be
    /// read from `StreamingResponse.body`; see `PooledConnection.streamingRoundTrip`.
    func streamingRoundTrip(
        _ connection: PooledConnection, _ request: HTTPRequest, body: [UInt8], timeout: Duration?, bodyTimeout: Duration?,
        decompress: Bool, isolation: isolated (any Actor)? = #isolation
    ) async throws -> StreamingResponse {
        let message = try exchangeMessage(connection, request, body: body, decompress: decompress)
        let (timeout, bodyTimeout) = try requestTimeouts(timeout, bodyTimeout)
        let driver = driver(of: connection)
        let head = try await relay(.failure(.poolClosed), on: driver) {
            driver.requestStreamingExchange(connection.handle, message, timeout: timeout, bodyTimeout: bodyTimeout, $0)
        }.get()
        return StreamingResponse(head: head.head, decodedContentCodings: head.decodedContentCodings,
                                 body: ResponseBodyStream(pool: self, driver: driver, stream: head.body))
    }

    /// The next chunk of a streamed body (nil at its end), from the reactor. Cancelling the task
    /// abandons the body.
    func nextBodyChunk(_ stream: BodyStream, on driver: PoolDriver, isolation: isolated (any Actor)? = #isolation) async throws -> [UInt8]? {
        try await withTaskCancellationHandler {
            try await relay(.failure(.poolClosed), on: driver) { driver.nextBodyChunk(stream, $0) }.get()
        } onCancel: {
            Self.abandonBody(stream, on: driver, .cancelled)
        }
    }

    /// Gives a streamed body up (on `driver`'s reactor; nothing to do once the pool closed).
    static func abandonBody(_ stream: BodyStream, on driver: PoolDriver, _ error: HotPoolError) {
        _ = driver.reactor.post { driver.abandonBody(stream, error) }
    }
}
