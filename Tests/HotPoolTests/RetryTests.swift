import CShims
import Foundation
import OriginControl
import Testing
@_spi(Benchmarks) @testable import HotPool
@testable import HotPoolCore

/// `execute`'s retry policy against the real origin, over HTTP/1.1 and HTTP/2: what the server
/// saw (attempts, their IPs and spacing), what the caller got, and what the pool counted.
@Suite struct RetryTests {
    /// The `Retry-After` the origin sends, in seconds (small: the suite waits it out).
    static let retryAfterSeconds = 1
    /// A backoff far below `Retry-After`, so the spacing the test sees is the server's.
    static let quickBackoff = RetryPolicy(baseDelay: .milliseconds(10), maxDelay: .milliseconds(50), jitter: 0)

    /// An origin serving HTTP/2 (`http2`) or HTTP/1.1, and its pool's configuration.
    private func makeOrigin(http2: Bool) async throws -> (Origin, HotPoolConfiguration) {
        if http2 { return try await http2Origin() }
        let origin = try Origin()
        return (origin, origin.configuration())
    }

    /// The origin answers `path` with 429 and `Retry-After` (`times` times; nil: always).
    private func refuse(_ origin: Origin, path: String, times: Int?) async throws {
        try await origin.rule(path: path, ["type": "status", "status": 429, "body": "slow down",
                                           "headers": [["Retry-After", "\(Self.retryAfterSeconds)"]]], times: times)
    }

    /// The code of the error `task` ended with, nil if it was answered.
    private static func errorCode(_ task: Task<HotResponse, any Error>) async -> HotPoolError.Code? {
        if case .failure(let error as HotPoolError) = await task.result { error.code } else { nil }
    }

    /// The requests the origin read for `path`, oldest first.
    private func attempts(_ origin: Origin, path: String) async throws -> [OriginRequest] {
        try await origin.recentRequests(last: 100).filter { $0.path == path }
    }

    @Test(arguments: [false, true])
    func retriesOn429HonouringRetryAfterOnAnotherIP(http2: Bool) async throws {
        let (origin, config) = try await makeOrigin(http2: http2)
        try await refuse(origin, path: "/busy", times: 2)
        let baseline = openFDCount()
        let pool = try origin.pool(config)
        let response = try await pool.execute(get("/busy"), host: Origin.hostName, port: origin.port, retry: Self.quickBackoff)
        #expect(response.head.status.code == 200)
        let seen = try await attempts(origin, path: "/busy")
        #expect(seen.count == 3, "two refused, the third answered")
        for (earlier, later) in zip(seen, seen.dropFirst()) {
            #expect(later.arrival - earlier.arrival >= Double(Self.retryAfterSeconds), "Retry-After waited out: \(seen.map(\.arrival))")
            #expect(later.ip != earlier.ip, "the next attempt went to another IP: \(seen.map(\.ip))")
        }
        let perIP = try await origin.stats().requests
        #expect(perIP.values.reduce(0, +) == 3 && perIP.values.filter { $0 > 0 }.count >= 2, "\(perIP)")
        let stats = await pool.stats()
        #expect(stats.totalRequests == 1 && stats.retries == 2 && stats.failedRequests == 0, "\(stats)")
        let ipStats = await pool.ipStats(forHost: Origin.hostName)
        #expect(ipStats.map(\.requests).reduce(0, +) == 3, "each attempt counts for its IP: \(ipStats)")
        try await pool.close()
        #expect(openFDCount() == baseline, "every fd of the pool closed")
        #expect(hp_tls_live_objects() == 0)
    }

    @Test(arguments: [false, true])
    func theLastAnswerIsReturnedWhenNoAttemptIsLeft(http2: Bool) async throws {
        let (origin, config) = try await makeOrigin(http2: http2)
        try await refuse(origin, path: "/busy", times: nil)
        let pool = try origin.pool(config)
        var policy = Self.quickBackoff
        policy.maxAttempts = 2
        let response = try await pool.execute(get("/busy"), host: Origin.hostName, port: origin.port, retry: policy)
        #expect(response.head.status.code == 429 && response.body == Array("slow down".utf8))
        #expect(try await attempts(origin, path: "/busy").count == 2)
        let stats = await pool.stats()
        #expect(stats.totalRequests == 1 && stats.retries == 1 && stats.failedRequests == 0, "\(stats)")
        try await pool.close()
    }

    @Test(arguments: [false, true])
    func aPostIsNotRetriedByDefault(http2: Bool) async throws {
        let (origin, config) = try await makeOrigin(http2: http2)
        try await refuse(origin, path: "/form", times: nil)
        let pool = try origin.pool(config)
        let post = HTTPRequest(method: .post, scheme: "https", authority: Origin.hostName, path: "/form")
        let response = try await pool.execute(post, body: Array("a=1".utf8), host: Origin.hostName, port: origin.port,
                                              retry: Self.quickBackoff)
        #expect(response.head.status.code == 429)
        #expect(try await attempts(origin, path: "/form").count == 1)
        let stats = await pool.stats()
        #expect(stats.totalRequests == 1 && stats.retries == 0)
        try await pool.close()
    }

    /// The configuration's policy applies to an `execute` that gives none; a connection reset
    /// mid-answer is a failure retried (once counted failed, then no longer).
    @Test(arguments: [false, true])
    func aResetAttemptIsRetriedWithTheConfiguredPolicy(http2: Bool) async throws {
        let (origin, base) = try await makeOrigin(http2: http2)
        var config = base
        config.retryPolicy = Self.quickBackoff
        try await origin.rule(path: "/flaky", ["type": "reset", "after_bytes": 5], times: 1)
        let baseline = openFDCount()
        let pool = try origin.pool(config)
        let response = try await pool.execute(get("/flaky"), host: Origin.hostName, port: origin.port)
        #expect(response.head.status.code == 200)
        let seen = try await attempts(origin, path: "/flaky")
        #expect(seen.count == 2 && seen[0].ip != seen[1].ip, "\(seen.map(\.ip))")
        let stats = await pool.stats()
        #expect(stats.totalRequests == 1 && stats.retries == 1 && stats.failedRequests == 0, "\(stats)")
        #expect(stats.closedByReason[.unhealthyOnReturn] == 1, "the reset connection destroyed once")
        try await pool.close()
        #expect(openFDCount() == baseline, "every fd of the pool closed")
    }

    /// A caller cancelled while it waits out a long `Retry-After` ends at once with `cancelled`,
    /// holding no connection; so does one waiting when the pool closes, with `poolClosed`.
    @Test(arguments: [false, true])
    func aWaitForARetryEndsWithTheCallersCancelAndThePoolsClose(http2: Bool) async throws {
        let (origin, config) = try await makeOrigin(http2: http2)
        try await origin.rule(path: "/busy", ["type": "status", "status": 503, "headers": [["Retry-After", "30"]]])
        let pool = try origin.pool(config)
        let waiting = Task {
            try await pool.execute(get("/busy"), host: Origin.hostName, port: origin.port, retry: Self.quickBackoff)
        }
        #expect(try await eventually { try await attempts(origin, path: "/busy").count == 1 })
        #expect(await eventually { await pool.stats().activeConnections == 0 }, "no connection held while it waits")
        waiting.cancel()
        let endedOnCancel = try await ends(within: .seconds(2)) { #expect(await Self.errorCode(waiting) == .cancelled) }
        #expect(endedOnCancel, "the wait ends at once")
        let closing = Task {
            try await pool.execute(get("/busy"), host: Origin.hostName, port: origin.port, retry: Self.quickBackoff)
        }
        #expect(try await eventually { try await attempts(origin, path: "/busy").count == 2 })
        #expect(await eventually { await pool.stats().activeConnections == 0 })
        try await pool.close()
        let endedOnClose = try await ends(within: .seconds(2)) { #expect(await Self.errorCode(closing) == .poolClosed) }
        #expect(endedOnClose, "the wait ends with the close")
        #expect(try await attempts(origin, path: "/busy").count == 2, "no attempt after the cancel or the close")
    }

    /// The waits run on the reactor's timers: a request tried three times is still one hop from
    /// another thread, and none from a task on the pool's executor.
    @Test func aRetriedExecuteIsOneHopFromAnotherThreadAndNoneOnTheExecutor() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let port = origin.port
        let busy = ["type": "status", "status": 429, "headers": [["Retry-After", "0"]]] as [String: Any]
        try await origin.rule(path: "/busy", busy, times: 2)
        let hops0 = try #require(await pool.inboundHops())
        let fromElsewhere = try await pool.execute(get("/busy"), host: Origin.hostName, port: port, retry: Self.quickBackoff)
        let hops1 = try #require(await pool.inboundHops())
        #expect(fromElsewhere.head.status == .ok)
        #expect(hops1 - hops0 - pool.reactorCount == 1, "the first read's own hops (one per reactor) are counted in the second")
        try await origin.rule(path: "/busy", busy, times: 2)
        let (onExecutor, hops) = try await Task(executorPreference: pool.executor) {
            let hops0 = pool.executor.reactor.inboundHops
            let response = try await pool.execute(get("/busy"), host: Origin.hostName, port: port, retry: Self.quickBackoff)
            return (response, pool.executor.reactor.inboundHops - hops0)
        }.value
        #expect(onExecutor.head.status == .ok && hops == 0)
        #expect(try await attempts(origin, path: "/busy").count == 6)
        #expect(await pool.stats().retries == 4)
        try await pool.close()
    }

    @Test func anUnusablePolicyIsRefusedBeforeAnythingIsAsked() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        await #expect(throws: HotPoolError.invalidArgument("retry maxAttempts must be >= 1, got 0")) {
            try await pool.execute(get("/"), host: Origin.hostName, port: origin.port, retry: RetryPolicy(maxAttempts: 0))
        }
        #expect(try await origin.stats().totalRequests == 0)
        try await pool.close()
    }
}
