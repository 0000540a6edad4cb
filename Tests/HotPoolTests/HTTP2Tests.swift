import Foundation
import OriginControl
import Testing
@testable import HotPool

/// HTTP/2 connections: multiplexing, stream limits, GOAWAY, and the seed's destruction paths,
/// against the test origin serving h2 (hyper-h2) and nginx.
@Suite struct HTTP2Tests {
    /// A test origin serving h2 on every IP, and its configuration.
    private static func origin() async throws -> (Origin, HotPoolConfiguration) {
        let origin = try Origin()
        try await origin.setTLSMode("h2")
        return (origin, origin.configuration())
    }

    /// The most streams each of the origin's h2 connections had open at once, by connection number.
    private static func peaks(_ origin: Origin) async throws -> [Int] {
        let peaks = try await origin.send(["cmd": "h2_peaks"]).object["peaks"] as? [String: Int] ?? [:]
        return peaks.sorted { Int($0.key)! < Int($1.key)! }.map(\.value)
    }

    @Test func concurrentRequestsShareTwoConnectionsWithinTheServersStreamLimit() async throws {
        let (origin, baseConfig) = try await Self.origin()
        try await origin.send(["cmd": "h2_settings", "max_concurrent_streams": 10])
        try await origin.rule(["type": "status", "status": 200, "body": "slow", "delay_ms": 150])
        var config = baseConfig
        config.maxConnectionsPerHost = 2
        let pool = try origin.pool(config)
        let bodies = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for index in 0..<64 {
                group.addTask {
                    try await pool.execute(get("/m\(index)"), host: Origin.hostName, port: origin.port).body
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(bodies.count == 64 && bodies.allSatisfy { $0 == Array("slow".utf8) })
        let stats = try await origin.stats()
        #expect(stats.accepted.values.reduce(0, +) <= 2, "at most 2 connections at the server")
        let peaks = try await Self.peaks(origin)
        #expect(peaks.allSatisfy { $0 <= 10 }, "the server's limit of 10 streams held: \(peaks)")
        // Both connections carried streams: the pool leased each only as far as the server's limit.
        #expect(peaks.count == 2 && peaks.allSatisfy { $0 > 1 }, "streams ran at once on both connections: \(peaks)")
        let poolStats = await pool.stats()
        #expect(poolStats.totalRequests == 64 && poolStats.failedRequests == 0)
        #expect(await pool.connectionStats().allSatisfy { $0.httpVersion == .http2 })
        try await pool.close()
    }

    @Test func goAwayMidLoadLosesNoRequestAndDestroysTheConnectionOnce() async throws {
        let (origin, baseConfig) = try await Self.origin()
        try await origin.rule(["type": "status", "status": 200, "body": "ok", "delay_ms": 300])
        try await origin.rule(path: "/goaway", ["type": "goaway", "refuse": true], times: 1)
        var config = baseConfig
        config.maxConnectionsPerHost = 1
        let pool = try origin.pool(config)
        let execute: @Sendable (String) async -> (String, Result<HotResponse, any Error>) = { path in
            do { return (path, .success(try await pool.execute(get(path), host: Origin.hostName, port: origin.port))) }
            catch { return (path, .failure(error)) }
        }
        try await withThrowingTaskGroup(of: (String, Result<HotResponse, any Error>).self) { group in
            // Ten requests the server holds for 300 ms, then one it answers with GOAWAY naming the
            // stream before it as the last, then ten more: the server processes the first ten only.
            for index in 0..<10 { group.addTask { await execute("/early\(index)") } }
            #expect(try await eventually { try await Self.peaks(origin).first ?? 0 >= 10 })
            group.addTask { await execute("/goaway") }
            #expect(try await eventually { try await Self.peaks(origin).first ?? 0 >= 11 })
            for index in 0..<10 { group.addTask { await execute("/late\(index)") } }
            var answered = 0
            for try await (path, result) in group {
                #expect((try? result.get())?.head.status == .ok, "\(path): \(result)")
                answered += 1
            }
            #expect(answered == 21)
        }
        // Each request was processed exactly once: the early ones on the first connection, the
        // refused ones retried on the second.
        let requests = try await origin.recentRequests(last: 100)
        #expect(Dictionary(grouping: requests, by: \.path).values.allSatisfy { $0.count == 1 }, "\(requests.map(\.path))")
        #expect(requests.count == 21)
        #expect(Set(requests.filter { $0.path.hasPrefix("/early") }.map(\.connection)) == [1])
        #expect(Set(requests.filter { !$0.path.hasPrefix("/early") }.map(\.connection)) == [2])
        let stats = await pool.stats()
        #expect(stats.closedByReason[.remoteClosed] == 1, "\(stats.closedByReason)")
        #expect(stats.closedByReason.filter { $0.key != .remoteClosed }.values.allSatisfy { $0 == 0 })
        #expect(stats.totalRequests == 21 && stats.failedRequests == 0, "\(stats.totalRequests) \(stats.failedRequests)")
        #expect(try await origin.waitClosed(1))
        try await pool.close()
        #expect(try await origin.waitClosed(2))
    }
}
