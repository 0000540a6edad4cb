import OriginControl
import Testing
@_spi(Benchmarks) @testable import HotPool
@testable import HotPoolCore

/// The machine's answers name the request they decide on: a decision for a request the driver
/// does not have (here, a `requestExchange` the driver never registered) is the defined error
/// path: counted, logged, and reported back as not processed, so the connection is free again
/// and the request is not counted. Nothing is sent for it.
@Suite struct DecisionTests {
    /// An id no request of the driver's has (its ids count up from 1).
    static let unknown = ExchangeID(raw: .max)

    /// Sends a `requestExchange` for `unknown` on the lease, on the reactor; returns the
    /// driver's count of unknown decisions after it.
    private func decideUnknown(_ pool: HotConnPool, on connection: PooledConnection) async -> Int? {
        await pool.onReactor(connection.reactor) { access in
            access.driver.send(.requestExchange(Self.unknown, on: connection.handle, timeout: Int64(1_000_000_000)))
            return access.driver.unknownDecisions
        }
    }

    @Test(arguments: [HTTPProtocolVersion.http1_1, .http2])
    func anUnknownStartIsCountedAndLeavesTheLeaseFree(_ version: HTTPProtocolVersion) async throws {
        let origin = try Origin()
        if version == .http2 { try await origin.setTLSMode("h2") }
        let pool = try origin.pool()
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        #expect(connection.httpVersion == version)
        #expect(await decideUnknown(pool, on: connection) == 1)
        let response = try await connection.roundTrip(get())
        #expect(response.head.status == .ok, "the lease carries the next request")
        pool.putConnection(connection)
        let stats = await pool.stats()
        #expect(stats.totalRequests == 1 && stats.failedRequests == 0 && stats.idleConnections == 1)
        #expect(try await origin.stats().totalRequests == 1, "nothing was sent for the unknown request")
        try await pool.close()
    }
}
