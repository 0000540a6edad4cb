import CShims
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// Runs `cause` on a pool holding one open connection (an HTTP/2 one with `http2`, the origin
/// serving h2) and checks the destruction it causes.
func expectDestruction(
    _ reason: CloseReason, http2: Bool = false, config: (inout HotPoolConfiguration) -> Void = { _ in },
    setup: (Origin) async throws -> Void = { _ in },
    cause: (HotConnPool, Origin, PooledConnection) async throws -> Void
) async throws {
    let origin = try Origin()
    if http2 { try await origin.setTLSMode("h2") }
    var configuration = origin.configuration()
    config(&configuration)
    let pool = try origin.pool(configuration)
    try await setup(origin)
    let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
    #expect(connection.httpVersion == (http2 ? .http2 : .http1_1))
    let before = await pool.stats()
    #expect(before.totalConnections == 1)
    let fds = openFDCount()
    try await cause(pool, origin, connection)
    #expect(await eventually { await pool.stats().closedByReason[reason] == 1 }, "\(reason) counted")
    let after = await pool.stats()
    #expect(after.closedByReason.values.reduce(0, +) == 1, "counted once, in one bucket: \(after.closedByReason)")
    #expect(after.totalConnections == before.totalConnections - 1)
    #expect(try await serverSeesThePoolsConnections(pool, origin), "the server has no connection left open")
    #expect(try await origin.waitClosed(1, ip: origin.ips[0]), "server saw the socket closed")
    #expect(openFDCount() == fds - 1, "fd closed")
    try await pool.close()
    #expect(await pool.stats().closedByReason[reason] == 1, "close did not count it again")
    #expect(hp_tls_live_objects() == 0)
    #expect(hp_h2_live_sessions() == 0)
}
