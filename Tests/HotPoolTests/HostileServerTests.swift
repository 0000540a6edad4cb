import CShims
import Foundation
import OriginControl
import Synchronization
import Testing
@testable import HotPool
@testable import HotPoolCore

/// A server that misbehaves on purpose, over real TLS: no caller ever gets an answer that
/// belongs to another request, and no server can stall the reactor or grow memory past the
/// configured limits.
@Suite struct HostileServerTests {
    static let response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    static let stray = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"

    /// How the stray response follows the real one.
    enum StrayTiming: String, CaseIterable {
        case sameRecord, sameSegmentNextRecord, fiftyMillisecondsLater

        var rule: [String: Any] {
            switch self {
            case .sameRecord: ["type": "raw", "data": HostileServerTests.response + HostileServerTests.stray]
            case .sameSegmentNextRecord: ["type": "raw", "records": [HostileServerTests.response, HostileServerTests.stray]]
            case .fiftyMillisecondsLater:
                ["type": "raw", "data": HostileServerTests.response, "then": [["delay_ms": 50, "data": HostileServerTests.stray]]]
            }
        }
    }

    /// On a held lease: the answer is delivered, the stray response never is; the next request
    /// fails at once, and the connection is destroyed once, as `unsolicitedData`.
    @Test(arguments: StrayTiming.allCases)
    func strayResponseOnAHeldLeaseIsNeverTakenForTheNextAnswer(timing: StrayTiming) async throws {
        try await expectDestruction(.unsolicitedData, setup: { origin in
            try await origin.rule(path: "/stray", timing.rule, times: 1)
        }) { pool, origin, connection in
            let first = try await connection.roundTrip(get("/stray"))
            #expect(first.body == Array("ok".utf8))
            // The late stray arrives while nobody reads: the pool reads it at once.
            #expect(await eventually { await pool.connectionStats().first?.isHealthy == false }, "retired when it arrived")
            await #expect {
                let next = try await connection.roundTrip(get("/next"))
                Issue.record("a caller got \(String(decoding: next.body, as: UTF8.self))")
            } throws: { error in
                (error as? HotPoolError)?.code == .connectionClosed
            }
            pool.putConnection(connection)
        }
    }

    /// After a put: the connection never reaches the next caller, who gets a fresh one and its
    /// own answer.
    @Test(arguments: StrayTiming.allCases)
    func strayResponseAfterAPutNeverReachesTheNextCaller(timing: StrayTiming) async throws {
        try await expectFreshConnectionAfter(.unsolicitedData, rule: timing.rule)
    }

    /// A validation answered 200 with a stray response behind it: that connection is destroyed
    /// and another one validated; the caller gets a connection that carries its request.
    @Test func validationAnswerWithStrayBytesIsNotHandedOut() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        try await origin.rule(path: "/check", StrayTiming.sameRecord.rule, times: 1)
        let connection = try await pool.getConnection(validating: "https://\(Origin.hostName):\(origin.port)/check")
        #expect(try await connection.roundTrip(get()).body == Array("ok".utf8))
        pool.putConnection(connection)
        let stats = await pool.stats()
        #expect(stats.closedByReason[.unsolicitedData] == 1 && stats.closedByReason.values.reduce(0, +) == 1)
        #expect(stats.idleConnections == 1 && stats.failedRequests == 0)
        try await pool.close()
    }

    /// A FIN right after a keep-alive answer: found by reading, not by a timer (the cleanup runs
    /// every 60 s here); the next caller gets a fresh connection.
    @Test func finRightAfterTheAnswerDestroysTheConnectionAsRemoteClosed() async throws {
        try await expectFreshConnectionAfter(.remoteClosed, rule: ["type": "raw", "data": Self.response, "fin": true])
    }

    /// The server answers `/once` by `rule`, the caller puts the connection back: it is destroyed
    /// once with `reason` (its fd closed, the server sees the close), and the next caller gets a
    /// new connection and its own answer.
    private func expectFreshConnectionAfter(_ reason: CloseReason, rule: [String: Any]) async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        try await origin.rule(path: "/once", rule, times: 1)
        let ip = origin.ips[0]
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: ip)
        let fds = openFDCount()
        #expect(try await connection.roundTrip(get("/once")).body == Array("ok".utf8))
        pool.putConnection(connection)
        #expect(await eventually { await pool.stats().closedByReason[reason] == 1 }, "\(reason) counted")
        #expect(try await origin.waitClosed(1, ip: ip), "server saw the socket closed")
        #expect(openFDCount() == fds - 1, "fd closed")
        let next = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: ip)
        #expect(try await next.roundTrip(get("/next")).body == Array("ok".utf8))
        let served = try await origin.recentRequests(ip: ip, last: 2)
        #expect(served.map(\.path) == ["/once", "/next"] && served.first?.connection != served.last?.connection,
                "the next request came on a new connection")
        #expect(try await origin.stats().handshakes[ip] == 2)
        pool.putConnection(next)
        let stats = await pool.stats()
        #expect(stats.closedByReason.values.reduce(0, +) == 1 && stats.idleConnections == 1 && stats.failedRequests == 0)
        try await pool.close()
        #expect(hp_tls_live_objects() == 0)
    }

    /// A server that answers before it is asked, in the TCP segment of its TLS 1.2 Finished: the
    /// bytes come with the handshake, and the dial reads on and rejects the connection, so the
    /// caller never gets that answer. (With TLS 1.3 such bytes come a round trip after the
    /// handshake, when the first request may already be out: HTTP/1.1 cannot tell them from its
    /// answer; docs/destruction.md, "Unsolicited bytes". So does a resumed TLS 1.2 handshake,
    /// which ends with the client's Finished: these handshakes are full ones.)
    @Test func answerBeforeAnyRequestIsNeverDelivered() async throws {
        let origin = try Origin()
        try await origin.send(["cmd": "tls", "ip": origin.ips[0], "mode": "greet"])
        var config = origin.configuration()
        config.sessionCacheCapacity = 0
        let pool = try origin.pool(config)
        let fds = openFDCount()
        for _ in 0..<3 {
            await #expect {
                let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
                Issue.record("a caller got a connection whose server answered first")
                pool.putConnection(connection)
            } throws: { error in
                guard let error = error as? HotPoolError, error.code == .networkError else { return false }
                return error.reason?.contains("before any request") == true
            }
        }
        let stats = await pool.stats()
        #expect(stats.failedDials == 3 && stats.connectionsOpened == 0 && openFDCount() == fds)
        #expect(try await origin.waitClosed(3, ip: origin.ips[0]))
        try await pool.close()
        #expect(hp_tls_live_objects() == 0)
    }

    /// A fatal TLS alert in the middle of a body is a TLS error, not an early EOF.
    @Test func fatalAlertMidBodyIsATLSError() async throws {
        try await expectDestruction(.unhealthyOnReturn, setup: { origin in
            try await origin.rule(path: "/alert", ["type": "raw", "data": "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
                                                   "alert": true], times: 1)
        }) { pool, origin, connection in
            await #expect {
                _ = try await connection.roundTrip(get("/alert"))
            } throws: { error in
                if (error as? HotPoolError)?.code == .tlsError { return true }
                Issue.record("got \(error)")
                return false
            }
            pool.putConnection(connection)
        }
    }

    /// What a server streams forever, and the error the call must end with.
    enum Endless: String, CaseIterable {
        case trailers, interimResponses, oneByteChunks, chunkExtensions

        var rule: [String: Any] {
            let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            return switch self {
            case .trailers: ["type": "endless", "head": chunked + "0\r\n", "repeat": "X-Trailer: 0123456789\r\n"]
            case .interimResponses: ["type": "endless", "head": "", "repeat": "HTTP/1.1 100 Continue\r\n\r\n"]
            case .oneByteChunks: ["type": "endless", "head": chunked, "repeat": "1\r\nx\r\n"]
            // 1 body byte per ~1 KB on the wire: the body limit is never reached, the deadline is.
            case .chunkExtensions:
                ["type": "endless", "head": chunked, "repeat": "1;e=" + String(repeating: "a", count: 1000) + "\r\nx\r\n"]
            }
        }

        func isExpected(_ error: HotPoolError) -> Bool {
            switch (self, error.code) {
            // Whether 1 MB of 1-byte chunks (6 MB on the wire) arrives within the deadline depends
            // on the machine: either bound may end it.
            case (.trailers, .responseHeadersTooLarge), (.interimResponses, .tooManyInterimResponses),
                 (.oneByteChunks, .responseBodyTooLarge):
                true
            case (.oneByteChunks, .timeout), (.chunkExtensions, .timeout):
                error.phase == .request
            default:
                false
            }
        }
    }

    /// An endless answer ends within `requestTimeout` plus a margin with its own error; other
    /// connections and `stats()` answer meanwhile; the process's peak RSS grows by a small
    /// multiple of the limits (1 MB body, 64 KB head), not by what the server sent.
    @Test(arguments: Endless.allCases)
    func endlessAnswerIsBoundedInTimeAndMemory(kind: Endless) async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.requestTimeout = .seconds(2)
        config.maxResponseBodyBytes = 1 << 20
        let pool = try origin.pool(config)
        try await origin.rule(ip: origin.ips[0], path: "/endless", kind.rule)
        let hostile = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        let other = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[1])
        let fds = openFDCount()
        let baseline = try resetPeakRSS()
        let finished = Atomic<Bool>(false)
        let start = ContinuousClock.now
        let call = Task {
            defer { finished.store(true, ordering: .releasing) }
            return try await hostile.roundTrip(get("/endless"))
        }
        if kind == .chunkExtensions {
            // While the server streams, the reactor still serves everyone else.
            #expect(try await eventually { try await origin.stats().requests[origin.ips[0]] == 1 })
            #expect(try await other.roundTrip(get()).body == Array("ok".utf8))
            _ = await pool.stats()
            let stillReading = !finished.load(ordering: .acquiring)
            #expect(stillReading, "answered while the endless response was still being read")
        }
        let result = await call.result
        let elapsed = ContinuousClock.now - start
        #expect(throws: HotPoolError.self) { try result.get() }
        if case .failure(let error) = result {
            #expect(kind.isExpected(error as! HotPoolError), "\(error)")
        }
        #expect(elapsed < .seconds(4), "within requestTimeout (2 s) plus a margin: \(elapsed)")
        let growth = try peakRSS() - baseline
        #expect(growth < 48 << 20, "peak RSS grew by \(growth >> 20) MB")
        #expect(openFDCount() == fds - 1, "the hostile socket closed at once")
        pool.putConnection(hostile)
        pool.putConnection(other)
        let stats = await pool.stats()
        #expect(stats.closedByReason[.unhealthyOnReturn] == 1 && stats.closedByReason.values.reduce(0, +) == 1)
        #expect(stats.failedRequests == 1)
        try await pool.close()
        #expect(try await origin.waitClosed(2))
    }

    /// A Content-Length of 999,999,999,999,999,999 with no body limit (`Int.max`): nothing is
    /// reserved up front, so the process does not abort; the body that never comes ends with a
    /// clear error (the deadline, or the server's close), and the pool goes on.
    @Test func aHugeContentLengthWithNoBodyLimitFailsClearlyAndThePoolGoesOn() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.maxResponseBodyBytes = .max
        config.requestTimeout = .seconds(1)
        let pool = try origin.pool(config)
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\nabc"
        try await origin.rule(path: "/huge", ["type": "raw", "data": head], times: 1)
        try await origin.rule(path: "/huge-then-fin", ["type": "raw", "data": head, "fin": true], times: 1)
        let stalled = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        let closed = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[1])
        await #expect(throws: HotPoolError.timeout(host: Origin.hostName, ip: origin.ips[0], phase: .request)) {
            _ = try await stalled.roundTrip(get("/huge"))
        }
        await #expect(throws: HotPoolError.unexpectedEOF(host: Origin.hostName, ip: origin.ips[1])) {
            _ = try await closed.roundTrip(get("/huge-then-fin"))
        }
        pool.putConnection(stalled)
        pool.putConnection(closed)
        #expect(try await pool.execute(get(), host: Origin.hostName, port: origin.port).body == Array("ok".utf8))
        let stats = await pool.stats()
        #expect(stats.closedByReason[.unhealthyOnReturn] == 2 && stats.closedByReason.values.reduce(0, +) == 2)
        try await pool.close()
        #expect(try await origin.waitClosed(3))
    }

    /// A body delimited by the connection's close and cut by a bare FIN (no close_notify) is
    /// returned flagged, as browsers take it; with `closeDelimitedBodyRequiresCloseNotify` it is
    /// `unexpectedEOF`, as curl reports it. One that ends with close_notify is complete either way.
    @Test(arguments: [false, true])
    func aCloseDelimitedBodyCutByABareFINIsFlaggedOrRefused(requiresCloseNotify: Bool) async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.closeDelimitedBodyRequiresCloseNotify = requiresCloseNotify
        let pool = try origin.pool(config)
        try await origin.rule(path: "/cut", ["type": "raw", "data": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial", "fin": true])
        try await origin.rule(path: "/whole", ["type": "status", "status": 200, "body": "whole", "framing": "close"])
        let whole = try await pool.execute(get("/whole"), host: Origin.hostName, port: origin.port)
        #expect(whole.body == Array("whole".utf8) && !whole.bodyEndedWithoutCloseNotify, "close_notify: complete")
        if requiresCloseNotify {
            await #expect {
                _ = try await pool.execute(get("/cut"), host: Origin.hostName, port: origin.port)
            } throws: { error in
                (error as? HotPoolError)?.code == .unexpectedEOF
            }
        } else {
            let cut = try await pool.execute(get("/cut"), host: Origin.hostName, port: origin.port)
            #expect(cut.body == Array("partial".utf8) && cut.bodyEndedWithoutCloseNotify, "a bare FIN: returned, flagged")
        }
        let stats = await pool.stats()
        #expect(stats.closedByReason[.remoteClosed] == (requiresCloseNotify ? 1 : 2), "\(stats.closedByReason)")
        #expect(stats.closedByReason[.unhealthyOnReturn] == (requiresCloseNotify ? 1 : 0))
        #expect(stats.closedByReason.values.reduce(0, +) == 2 && stats.totalConnections == 0)
        try await pool.close()
        #expect(try await origin.waitClosed(2))
    }

    /// 70,000 header fields under a 4 MB head limit: a clear error, no crash.
    @Test func seventyThousandHeaderFieldsFailClearly() async throws {
        try await expectDestruction(.unhealthyOnReturn, config: { config in
            config.maxResponseHeaderBytes = 4 << 20
        }, setup: { origin in
            try await origin.rule(path: "/fields", ["type": "raw", "data": "HTTP/1.1 200 OK\r\n", "repeat": "X-F: v\r\n",
                                                    "repeat_count": 70_000, "tail": "Content-Length: 0\r\n\r\n"], times: 1)
        }) { pool, origin, connection in
            await #expect {
                _ = try await connection.roundTrip(get("/fields"))
            } throws: { error in
                guard let error = error as? HotPoolError, error.code == .tooManyResponseHeaderFields else { return false }
                return error.limit == 1000
            }
            pool.putConnection(connection)
        }
    }

    /// A bare-LF answer is parsed (RFC 9112 lets a client accept it) and the connection reused.
    @Test func bareLineFeedAnswerIsParsedAndTheConnectionKept() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        try await origin.rule(path: "/lf", ["type": "raw", "data": "HTTP/1.1 200 OK\nContent-Length: 2\n\nlf"], times: 1)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        #expect(try await connection.roundTrip(get("/lf")).body == Array("lf".utf8))
        #expect(try await connection.roundTrip(get()).body == Array("ok".utf8))
        pool.putConnection(connection)
        #expect(try await origin.stats().totalHandshakes == 1)
        try await pool.close()
    }

    /// Durations up to `.seconds(Int64.max)` mean "never", and values near the 64-bit wrap of
    /// nanoseconds are not turned into negative (immediate) deadlines.
    @Test(arguments: [Duration.seconds(Int64.max), .seconds(9_223_372_036) + .nanoseconds(900_000_000), .nanoseconds(Int64.max)])
    func hugeDurationsMeanNever(huge: Duration) async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.connectTimeout = huge
        config.idleTimeout = huge
        config.maxLifetime = huge
        config.validationTimeout = huge
        config.healthCheckInterval = huge
        config.cleanupInterval = huge
        config.blacklistCheckInterval = huge
        config.dnsUpdateInterval = huge
        config.requestTimeout = huge
        config.leaseWarningAfter = huge
        config.healthCheckPath = "/health"
        let pool = try origin.pool(config)
        let connection = try await pool.getConnection(validating: "https://\(Origin.hostName):\(origin.port)/check")
        #expect(try await connection.roundTrip(get()).head.status == .ok)
        pool.putConnection(connection)
        #expect(await pool.cleanupIdleConnections() == 0)
        #expect(await pool.cleanupExpiredConnections(maxLifetime: huge) == 0)
        let stats = await pool.stats()
        #expect(stats.idleConnections == 1 && stats.failedRequests == 0)
        try await pool.close()
    }

    /// Negative, zero and sub-nanosecond durations are rejected: deadlines count whole
    /// nanoseconds, and a zero interval would re-arm its timer at the same instant for ever.
    @Test(arguments: [Duration.seconds(-1), .zero, Duration(secondsComponent: 0, attosecondsComponent: 100)])
    func durationsUnderOneNanosecondAreRejected(bad: Duration) {
        var config = HotPoolConfiguration()
        config.cleanupInterval = bad
        #expect(throws: HotPoolError.self) { try HotConnPool(configuration: config) }
        config = HotPoolConfiguration()
        config.requestTimeout = bad
        #expect(throws: HotPoolError.self) { try HotConnPool(configuration: config) }
    }

    /// Bad host names and ports are refused before any connection is made.
    @Test func badHostNamesAndPortsAreRejectedBeforeAnyConnection() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        for name in ["origin\0.hotpool.test", "origin hotpool.test", "origin\r\nX: y", "a\u{7F}b", "a:b", "",
                     String(repeating: "a", count: 254)] {
            pool.setAddresses(origin.ips, forHost: name)  // ignored, with a warning
            await #expect(throws: HotPoolError.invalidHostName(name)) { _ = try await pool.getConnection(host: name, port: origin.port) }
        }
        await #expect(throws: HotPoolError.invalidURL("\(Origin.hostName):70000")) {
            _ = try await pool.getConnection(host: Origin.hostName, port: 70000)
        }
        for url in ["https://\(Origin.hostName):70000/", "https://\(Origin.hostName):99999999999999999999/",
                    "https://\(Origin.hostName):+443/", "https://\(Origin.hostName):0/"] {
            await #expect(throws: HotPoolError.invalidURL(url)) { _ = try await pool.getConnection(validating: url) }
        }
        await #expect(throws: HotPoolError.invalidHostName("a\0b")) { _ = try await pool.getConnection(validating: "https://a%00b/") }
        // An IPv6 literal is a host name too: it reaches the dial (nothing listens on [::1]:1).
        await #expect {
            _ = try await pool.getConnection(host: "::1", port: 1)
        } throws: { error in
            (error as? HotPoolError)?.code == .connectFailed
        }
        #expect(try await origin.stats().accepted.values.reduce(0, +) == 0, "nothing reached the server")
        #expect(await pool.stats().connectionsOpened == 0)
        try await pool.close()
    }
}

/// Resets this process's peak RSS to its current RSS (Linux 4.0+) and returns it.
func resetPeakRSS() throws -> Int {
    try "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    return try peakRSS()
}

/// This process's peak RSS since the last reset, in bytes (VmHWM).
func peakRSS() throws -> Int {
    let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
    return (Int(line.split(separator: " ")[1]) ?? 0) * 1024
}
