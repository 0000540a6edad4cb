import CShims
import Foundation
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// TLS dial and HTTP/1.1 over pooled connections, against the real test origin.
@Suite struct DialAndHTTPTests {
    @Test func thousandKeepAliveRequestsOverOneConnectionCostOneHandshake() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        for i in 0..<1000 {
            let response = try await connection.roundTrip(get("/n\(i)"))
            #expect(response.head.status == .ok && response.body == Array("ok".utf8))
        }
        pool.putConnection(connection)
        let stats = try await origin.stats()
        #expect(stats.totalHandshakes == 1)
        #expect(stats.totalRequests == 1000)
        let poolStats = await pool.stats()
        #expect(poolStats.totalRequests == 1000 && poolStats.failedRequests == 0)
        #expect(poolStats.connectionsOpened == 1)
        try await pool.close()
        #expect(try await origin.waitClosed(1))
    }

    @Test(arguments: ["length", "chunked", "close"])
    func eachFramingKindParses(framing: String) async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let body = String(repeating: "0123456789", count: 5000)  // 50 KB: several TLS records
        try await origin.rule(path: "/body", ["type": "status", "status": 200, "body": body, "framing": framing])
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        let response = try await connection.roundTrip(get("/body"))
        #expect(response.head.status == .ok)
        #expect(response.body == Array(body.utf8))
        if framing == "close" {
            // Close-delimited: the connection cannot be reused, so its return destroys it.
            pool.putConnection(connection)
            let stats = await pool.stats()
            #expect(stats.closedByReason[.remoteClosed] == 1 && stats.totalConnections == 0)
        } else {
            let again = try await connection.roundTrip(get("/body"))
            #expect(again.body == Array(body.utf8))
            pool.putConnection(connection)
            #expect(await pool.stats().idleConnections == 1)
        }
        try await pool.close()
    }

    /// Each malformed or oversized answer: its own error, the request counted failed, the socket
    /// closed at once (the server sees it), and the slot destroyed when returned.
    @Test(arguments: [
        ("garbage\r\n\r\n", .malformedStatusLine),
        ("HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n", .malformedHeader),
        ("HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", .invalidContentLength),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", .badChunkSize),
        ("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", .responseBodyTooLarge),
        ("HEADERS", .responseHeadersTooLarge),
    ] as [(String, HotPoolError.Code)])
    func malformedOrOversizedAnswerFailsWithItsOwnError(raw: String, expected: HotPoolError.Code) async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.maxResponseHeaderBytes = 4096
        config.maxResponseBodyBytes = 50_000
        let pool = try origin.pool(config)
        if raw == "HEADERS" {
            try await origin.rule(path: "/bad", [
                "type": "raw", "data": "HTTP/1.1 200 OK\r\n", "repeat": "X-Pad: aaaaaaaaaaaaaaaaaaaa\r\n",
                "repeat_count": 1000, "tail": "\r\n",
            ])
        } else {
            try await origin.rule(path: "/bad", ["type": "raw", "data": raw])
        }
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        let fdsBefore = openFDCount()
        let error = await #expect(throws: HotPoolError.self) { _ = try await connection.roundTrip(get("/bad")) }
        #expect(error?.code == expected, "threw \(error.map { "\($0)" } ?? "no HotPoolError")")
        #expect(openFDCount() == fdsBefore - 1, "socket closed at once")
        #expect(try await origin.waitClosed(1))
        let afterFailure = await pool.stats()
        #expect(afterFailure.failedRequests == 1 && afterFailure.healthyConnections == 0)
        pool.putConnection(connection)
        let stats = await pool.stats()
        #expect(stats.closedByReason[.unhealthyOnReturn] == 1 && stats.totalConnections == 0)
        try await pool.close()
    }

    @Test func untrustedCertificateFailsTheHandshakeWithATLSError() async throws {
        let origin = try Origin()
        try await origin.send(["cmd": "tls", "ip": origin.ips[0], "mode": "untrusted"])
        let pool = try origin.pool()
        await #expect {
            _ = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        } throws: { error in
            guard let error = error as? HotPoolError, error.code == .tlsHandshakeFailed else { return false }
            return error.ip == origin.ips[0] && error.reason?.contains("certificate verify failed") == true
        }
        // The same pool still reaches a sound IP.
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[1])
        #expect(try await connection.roundTrip(get()).head.status == .ok)
        pool.putConnection(connection)
        #expect(await pool.stats().failedDials == 1)
        try await pool.close()
        #expect(hp_tls_live_objects() == 0)
    }

    @Test func wrongHostNameFailsVerification() async throws {
        let origin = try Origin()
        let pool = try HotConnPool(configuration: origin.configuration())
        pool.setAddresses([origin.ips[0]], forHost: "other.hotpool.test")
        await #expect {
            _ = try await pool.getConnection(host: "other.hotpool.test", port: origin.port)
        } throws: { error in
            guard let error = error as? HotPoolError, error.code == .tlsHandshakeFailed else { return false }
            return error.reason?.contains("verify") == true
        }
        try await pool.close()
    }

    @Test func refusedConnectFailsAtOnce() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let start = ContinuousClock.now
        await #expect {
            _ = try await pool.getConnection(host: Origin.hostName, port: 1, ip: origin.ips[0])  // nothing listens on port 1
        } throws: { error in
            guard let error = error as? HotPoolError, error.code == .connectFailed else { return false }
            return error.reason?.contains("refused") == true
        }
        #expect(ContinuousClock.now - start < .seconds(5), "well within connectTimeout")
        try await pool.close()
    }

    @Test func stalledHandshakeFailsAtTheDeadline() async throws {
        let origin = try Origin()
        try await origin.send(["cmd": "tls", "ip": origin.ips[0], "mode": "stall"])
        var config = origin.configuration()
        config.connectTimeout = .milliseconds(300)
        let pool = try origin.pool(config)
        let start = ContinuousClock.now
        await #expect {
            _ = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        } throws: { error in
            guard let error = error as? HotPoolError, error.code == .timeout else { return false }
            return error.phase == .tlsHandshake
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(3))
        #expect(try await origin.waitClosed(1, ip: origin.ips[0]), "the stalled socket was closed")
        try await pool.close()
    }

    @Test func aCancelledTaskSendsNoRequest() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        let request = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await connection.roundTrip(get("/never"))
        }
        await #expect(throws: HotPoolError.cancelled) { _ = try await request.value }
        #expect(try await origin.stats().totalRequests == 0)
        #expect(try await connection.roundTrip(get()).head.status == .ok, "the connection is untouched")
        pool.putConnection(connection)
        try await pool.close()
    }

    @Test func stalledResponseFailsAtTheRequestDeadline() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.requestTimeout = .milliseconds(300)
        let pool = try origin.pool(config)
        try await origin.rule(path: "/stall", ["type": "stall"])
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        await #expect {
            _ = try await connection.roundTrip(get("/stall"))
        } throws: { error in
            guard let error = error as? HotPoolError, error.code == .timeout else { return false }
            return error.phase == .request
        }
        pool.putConnection(connection)
        #expect(await pool.stats().closedByReason[.unhealthyOnReturn] == 1)
        try await pool.close()
    }
}
