import HTTPTypes
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// Deadlines per request: `timeout` overrides `requestTimeout`; with a `bodyTimeout`, `timeout`
/// bounds the wait for the head and `bodyTimeout` the body after it. Against the test origin over
/// HTTP/1.1 and HTTP/2, the pool's own bound far away (a minute), so only the request's can end it.
@Suite struct RequestDeadlineTests {
    /// The head comes at once, the body this much later: well past `headTimeout`, well within `bodyTimeout`.
    static let bodyDelay = 2000
    static let headTimeout = Duration.seconds(1)
    static let bodyTimeout = Duration.seconds(20)
    /// What a call that ends by a deadline must end within (the pool's own bound is a minute).
    static let callBound = Duration.seconds(15)

    /// An origin (h2 when `http2`), a pool whose own request bound is a minute, and a connection.
    static func connect(http2: Bool) async throws -> (Origin, HotConnPool, PooledConnection) {
        let origin = try Origin()
        if http2 { try await origin.setTLSMode("h2") }
        var config = origin.configuration()
        config.requestTimeout = .seconds(60)
        let pool = try origin.pool(config)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        return (origin, pool, connection)
    }

    /// Expects `call` to fail within `callBound` with a timeout of `phase`.
    static func expectTimeout(_ phase: HotPoolError.Phase, _ call: @escaping @Sendable () async throws -> HotResponse,
                              sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let ended = try await ends(within: callBound) {
            do {
                let response = try await call()
                Issue.record("answered \(response.head.status)", sourceLocation: sourceLocation)
            } catch let error as HotPoolError {
                #expect(error.code == .timeout && error.phase == phase, "\(error)", sourceLocation: sourceLocation)
            }
        }
        #expect(ended, "ended by the request's own deadline", sourceLocation: sourceLocation)
    }

    /// A head that comes at once and a body `bodyDelay` ms later.
    static func slowBody(http2: Bool) -> [String: Any] {
        http2 ? ["type": "status", "body": "abcd", "body_delay_ms": bodyDelay]
            : ["type": "raw", "data": "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", "then": [["delay_ms": bodyDelay, "data": "cd"]]]
    }

    /// A head that comes at once and a body that never ends.
    static func endlessBody(http2: Bool) -> [String: Any] {
        http2 ? ["type": "status", "body": "ab", "hold_end": true] : ["type": "raw", "data": "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"]
    }

    @Test(arguments: [false, true])
    func aRequestsTimeoutReplacesThePoolsBound(http2: Bool) async throws {
        let (origin, pool, connection) = try await Self.connect(http2: http2)
        try await origin.rule(path: "/stall", ["type": "stall"])
        try await Self.expectTimeout(.request) { try await connection.roundTrip(get("/stall"), timeout: Self.headTimeout) }
        // Also through execute, on another connection.
        try await Self.expectTimeout(.request) {
            try await pool.execute(get("/stall"), host: Origin.hostName, port: origin.port, timeout: Self.headTimeout)
        }
        pool.putConnection(connection)
        try await pool.close()
    }

    @Test(arguments: [false, true])
    func aBodyTimeoutBoundsTheBodyAfterTheHeadAndTheTimeoutOnlyTheHead(http2: Bool) async throws {
        let (origin, pool, connection) = try await Self.connect(http2: http2)
        try await origin.rule(path: "/slow", Self.slowBody(http2: http2))
        // The head within a second, the body two seconds later, within its own bound: answered.
        let slow = try await connection.roundTrip(get("/slow"), timeout: Self.headTimeout, bodyTimeout: Self.bodyTimeout)
        #expect(slow.head.status == .ok && slow.body == Array("abcd".utf8))
        // Without a body timeout the request's one bound covers the body too. (A timeout leaves
        // a connection unusable, HTTP/2 ones included: each step leases its own.)
        let whole = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        try await Self.expectTimeout(.request) { try await whole.roundTrip(get("/slow"), timeout: Self.headTimeout) }
        // A body that never ends: the body timeout ends it, named as such.
        try await origin.rule(path: "/endless", Self.endlessBody(http2: http2))
        let endless = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        try await Self.expectTimeout(.responseBody) {
            try await endless.roundTrip(get("/endless"), timeout: Self.bodyTimeout, bodyTimeout: .milliseconds(300))
        }
        try await Self.expectTimeout(.responseBody) {
            try await pool.execute(get("/endless"), host: Origin.hostName, port: origin.port, timeout: Self.bodyTimeout,
                                   bodyTimeout: .milliseconds(300))
        }
        for leased in [connection, whole, endless] { pool.putConnection(leased) }
        let stats = await pool.stats()
        #expect(stats.totalRequests == 4 && stats.failedRequests == 3, "\(stats)")
        try await pool.close()
    }

    @Test func boundsThatAreNotPositiveAreRefused() async throws {
        let (origin, pool, connection) = try await Self.connect(http2: false)
        for (timeout, bodyTimeout) in [(Duration.zero, Duration?.none), (.seconds(1), .zero), (.seconds(1), .seconds(-1))] {
            let refusal = { (error: any Error) in (error as? HotPoolError)?.code == .invalidArgument }
            await #expect(performing: { try await connection.roundTrip(get(), timeout: timeout, bodyTimeout: bodyTimeout) },
                          throws: refusal)
            await #expect(performing: {
                try await pool.execute(get(), host: Origin.hostName, port: origin.port, timeout: timeout, bodyTimeout: bodyTimeout)
            }, throws: refusal)
        }
        #expect(await pool.stats().totalRequests == 0, "nothing was asked")
        pool.putConnection(connection)
        try await pool.close()
    }
}
