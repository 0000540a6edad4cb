import HTTPTypes
import HotPoolCore
import HotPoolDriver
import HotPoolHTTP
import HotPoolIO

extension HotConnPool {
    /// Sends `request` to `host:port` with a body read from `body` as the server takes it, and
    /// returns the whole response: a connection got and returned as `withConnection` does (an
    /// unusable one destroyed), the round trip as `PooledConnection.roundTrip(_:body:)` makes it.
    /// Never retried: the sequence cannot be read twice.
    public func execute<Body: AsyncSequence>(
        _ request: HTTPRequest, body: Body, host: String, port: Int = 443, timeout: Duration? = nil, bodyTimeout: Duration? = nil,
        decompress: Bool = true, isolation: isolated (any Actor)? = #isolation
    ) async throws -> HotResponse where Body.Element == [UInt8] {
        try await withConnection(host: host, port: port) { connection in
            try await roundTrip(connection, request, streaming: body, timeout: timeout, bodyTimeout: bodyTimeout, decompress: decompress)
        }
    }

    /// Sends `request` on the connection with a body read from `body` piece by piece, and returns
    /// the answer; see `PooledConnection.roundTrip(_:body:timeout:bodyTimeout:decompress:)`.
    func roundTrip<Body: AsyncSequence>(
        _ connection: PooledConnection, _ request: HTTPRequest, streaming body: Body, timeout: Duration?, bodyTimeout: Duration?,
        decompress: Bool, isolation: isolated (any Actor)? = #isolation
    ) async throws -> HotResponse where Body.Element == [UInt8] {
        let message = try exchangeMessage(connection, request, body: [], streamsBody: true, decompress: decompress)
        let (timeout, bodyTimeout) = try requestTimeouts(timeout, bodyTimeout)
        let upload = RequestUpload(declaredLength: RequestFraming.declaredLength(request))
        let driver = driver(of: connection)
        do {
            try await withTaskCancellationHandler {
                var goesOn = await relay(false, on: driver) {
                    driver.requestUploadExchange(connection.handle, message, timeout: timeout, bodyTimeout: bodyTimeout, upload, $0)
                }
                var pieces = body.makeAsyncIterator()
                while goesOn, let piece = try await pieces.next(isolation: isolation) {
                    guard !Task.isCancelled else { throw HotPoolError.cancelled }
                    goesOn = await relay(false, on: driver) { driver.writeRequestBody(upload, piece, $0) }
                }
                // A sequence may end early when its task is cancelled (AsyncStream does): the body
                // is cut short, not whole, and its end must not be sent.
                guard !Task.isCancelled else { throw HotPoolError.cancelled }
            } onCancel: {
                Self.abandonUpload(upload, on: driver, .cancelled)  // a caller waiting for room hears the exchange ended
            }
        } catch {
            Self.abandonUpload(upload, on: driver, error as? HotPoolError ?? .cancelled)
            throw error
        }
        return try await relay(.failure(.poolClosed), on: driver) { driver.endRequestBody(upload, $0) }.get()
    }

    /// Gives a streamed request body up (on `driver`'s reactor; nothing to do once the pool closed).
    private static func abandonUpload(_ upload: RequestUpload, on driver: PoolDriver, _ error: HotPoolError) {
        _ = driver.reactor.post { driver.abandonUpload(upload, error) }
    }
}
