import CShims
import Foundation
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolDriver
@testable import HotPoolHTTP

/// What an HTTP/2 server can make a connection hold, against the test origin misbehaving on
/// purpose: floods of frames to acknowledge, input nobody asked for, response bodies on many
/// streams, and fingerprints whose settings nghttp2 would refuse.
@Suite struct HTTP2BoundsTests {
    /// The server's count of DATA payload bytes it sent, and of body bytes it holds back because
    /// the client's flow-control windows are closed.
    private static func flow(_ origin: Origin) async throws -> (sent: Int, waiting: Int) {
        let reply = try await origin.send(["cmd": "h2_flow"]).object
        return (reply["sent"] as? Int ?? -1, reply["waiting"] as? Int ?? -1)
    }

    // MARK: floods

    /// A server that stops reading and streams PING frames at a connection with a request under
    /// way, paced (100 every half millisecond) so that the client reads each burst on its own and
    /// nghttp2 never holds 1,000 acknowledgements at once while they are drained: the
    /// acknowledgements pile up past the cap on unsent output, nghttp2's flood guard then ends
    /// the session, the request fails with the reason, and memory stays flat; the connection is
    /// destroyed once, as `unsolicitedData`, and the other connection goes on.
    @Test func aPingFloodAtAConnectionThatCannotSendEndsItWithMemoryFlat() async throws {
        let (origin, baseConfig) = try await http2Origin()
        var config = baseConfig
        config.requestTimeout = .seconds(30)  // the flood must end the request, not its deadline
        let pool = try origin.pool(config)
        try await origin.rule(ip: origin.ips[0], path: "/flood", ["type": "ping_flood", "seconds": 30, "batch": 100, "interval_ms": 0.5])
        let other = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[1])
        let hostile = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        let fds = openFDCount()
        let baseline = try resetPeakRSS()
        let start = ContinuousClock.now
        await #expect {
            _ = try await hostile.roundTrip(get("/flood"))
        } throws: { error in
            guard let error = error as? HotPoolError, error.code == .networkError else { return false }
            return error.reason == PoolDriver.floodReason
        }
        let growth = try peakRSS() - baseline
        #expect(growth < 24 << 20, "peak RSS grew by \(growth >> 20) MB (unsent output is capped at 1 MB)")
        #expect(ContinuousClock.now - start < .seconds(8), "ended by the flood guard, not by the server's stopping")
        #expect(try await other.roundTrip(get()).body == Array("ok".utf8), "the other connection is unaffected")
        pool.putConnection(hostile)
        #expect(await eventually { await pool.stats().closedByReason[.unsolicitedData] == 1 })
        let stats = await pool.stats()
        #expect(stats.closedByReason.values.reduce(0, +) == 1 && stats.failedRequests == 1, "\(stats.closedByReason)")
        #expect(try await origin.waitClosed(1, ip: origin.ips[0]), "the server saw the socket closed")
        #expect(openFDCount() == fds - 1, "its fd closed")
        #expect(await pool.ipStats(forHost: Origin.hostName).allSatisfy { $0.failures == 0 }, "a flood charges no IP with a failure")
        pool.putConnection(other)
        try await pool.close()
        #expect(hp_tls_live_objects() == 0 && hp_h2_live_sessions() == 0)
    }

    /// A server that floods a connection with PING frames while the pool's own PING health check
    /// is under way on it: the connection goes once as `unsolicitedData`, not as a failed health
    /// check, and its IP is charged with no failure (the server's misconduct, as with a request).
    @Test func aPingFloodDuringAHealthCheckIsNoFailureOfTheIP() async throws {
        try await expectDestruction(.unsolicitedData, http2: true, config: {
            $0.pingsIdleHTTP2Connections = true
            $0.healthCheckInterval = .milliseconds(100)
            $0.validationTimeout = .seconds(30)  // the flood must end the check, not its deadline
        }, cause: { pool, origin, connection in
            pool.putConnection(connection)
            // Muted, the server acknowledges nothing: a health check's PING that reaches it after
            // that stays under way (one before may have been acknowledged).
            func pings() async throws -> Int {
                try await origin.recentFrames(ip: origin.ips[0], last: 1000).count { $0.type == "PING" && !$0.flags.contains("ACK") }
            }
            #expect(try await origin.closeIdle(ip: origin.ips[0], mode: "mute") == 1)
            let before = try await pings()
            #expect(try await eventually { try await pings() > before }, "a health check's PING reached the muted server")
            // The flood runs on the server's connection thread until the client closes (the
            // command's reply may come first).
            let command: [String: Any] = ["cmd": "ping_idle", "ip": origin.ips[0], "pings": 0, "batch": 100, "interval_ms": 0.5, "seconds": 20]
            _ = try await origin.send(command)
            #expect(await eventually(.seconds(20)) { await pool.stats().closedByReason[.unsolicitedData] == 1 })
            #expect(await pool.ipStats(forHost: Origin.hostName).allSatisfy { $0.failures == 0 }, "a flood charges no IP with a failure")
        })
    }

    /// An idle connection the server streams PING frames at (reading the acknowledgements) has
    /// the budget of input nobody asked for that HTTP/1.1 connections have: it is destroyed
    /// once, as `unsolicitedData`.
    @Test func pingsStreamedAtAnIdleConnectionPassTheBudgetAndDestroyIt() async throws {
        try await expectDestruction(.unsolicitedData, http2: true, cause: { pool, origin, connection in
            pool.putConnection(connection)
            // 5,000 PINGs, 85 KB of frames (over the 64 KB budget), in bursts of 250 (each read
            // and acknowledged on its own, below nghttp2's flood limit).
            let command: [String: Any] = ["cmd": "ping_idle", "ip": origin.ips[0], "pings": 5000, "batch": 250, "interval_ms": 20]
            let sent = try await origin.send(command).object["sent"] as? Int
            #expect(sent == 1)
        })
    }

    /// A few keep-alive PINGs at an idle connection are acknowledged and the connection is kept;
    /// the bytes the backend lent for them are taken back from the TLS engine (they belong to a
    /// receive buffer the backend reuses).
    @Test func aFewPingsAtAnIdleConnectionAreAnsweredAndTheirBytesTakenBack() async throws {
        let (origin, config) = try await http2Origin()
        let pool = try origin.pool(config)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        pool.putConnection(connection)
        let sent = try await origin.send(["cmd": "ping_idle", "ip": origin.ips[0], "pings": 3]).object["sent"] as? Int
        #expect(sent == 1)
        let acknowledged = try await eventually {
            try await origin.recentFrames(ip: origin.ips[0], last: 50).filter { $0.type == "PING" && $0.flags.contains("ACK") }.count == 3
        }
        #expect(acknowledged, "the client acknowledged the server's PINGs")
        let slot = Int(connection.handle.slot)
        let lent = await Task(executorPreference: connection.executor) { hp_tls_input_lent(connection.driver.tls[slot]) }.value
        #expect(lent == 0, "no received bytes stay lent to the engine")
        let stats = await pool.stats()
        #expect(stats.idleConnections == 1 && stats.closedByReason.values.reduce(0, +) == 0)
        try await pool.close()
    }

    /// A stream refused here (its body passed the limit) while the server has DATA in flight on
    /// it, far past the budget of input nobody asked for: those bytes were asked for (the server
    /// may send up to the stream's window before it reads the reset), so the connection, whose
    /// only stream it was, is kept.
    @Test func dataInFlightOnAStreamResetHereIsNoInputNobodyAskedFor() async throws {
        let (origin, baseConfig) = try await http2Origin()
        var config = baseConfig
        config.maxResponseBodyBytes = 16 << 10
        let pool = try origin.pool(config)
        try await origin.rule(path: "/big", ["type": "status", "status": 200, "body_size": 2 << 20])  // within Chrome's 6 MiB window
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        await #expect(throws: HotPoolError.responseBodyTooLarge(host: Origin.hostName, ip: origin.ips[0], limit: 16 << 10)) {
            _ = try await connection.roundTrip(get("/big"))
        }
        let slot = Int(connection.handle.slot)
        let arrived = await eventually {
            await Task(executorPreference: connection.executor) { Int(connection.driver.idleBytes[slot]) > PoolDriver.readOnBudget }.value
        }
        #expect(arrived, "the bytes in flight arrived after the stream ended")
        #expect((try? await connection.roundTrip(get()))?.body == Array("ok".utf8), "the connection is kept")
        let stats = await pool.stats()
        #expect(stats.closedByReason.values.reduce(0, +) == 0 && stats.connectionsOpened == 1, "\(stats.closedByReason)")
        pool.putConnection(connection)
        try await pool.close()
    }

    // MARK: response bodies and flow control

    /// A Chrome spec whose HTTP/2 receive windows are the protocol's initial 65,535 bytes, so
    /// what the flow control lets in shows at the server quickly.
    private static let smallWindows: FingerprintProfile = {
        var spec = FingerprintSpec.chrome
        spec.name = "chrome-small-windows"
        spec.http2.settings = [HTTP2Setting(2, 0), HTTP2Setting(4, 65_535)]
        spec.http2.connectionWindowIncrement = 0
        return .custom(spec)
    }()
    private static let window = 65_535

    /// `config` with `smallWindows`, one connection, and a body limit of 256 KB.
    private static func smallWindowsOneConnection(_ config: HotPoolConfiguration) -> HotPoolConfiguration {
        var config = config
        config.profile = smallWindows
        config.maxResponseBodyBytes = 256 << 10
        config.maxConnectionsPerHost = 1
        return config
    }

    /// Eight streams each given 200 KB of body that never ends, with a 256 KB body limit: the
    /// connection opens its streams' windows again only while they hold at most the limit (and
    /// the oldest stream's), so the server can send about limit + one body + one stream window
    /// per stream, not all 1.6 MB (nghttp2's automatic window updates let everything in).
    @Test func responseBodiesOnManyStreamsAreBoundedPerConnection() async throws {
        let (origin, baseConfig) = try await http2Origin()
        var config = Self.smallWindowsOneConnection(baseConfig)
        config.requestTimeout = .seconds(2)
        let pool = try origin.pool(config)
        let body = 200 << 10, streams = 8
        try await origin.rule(path: "/held", ["type": "status", "status": 200, "body_size": body, "hold_end": true])
        let failures = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<streams {
                group.addTask { (try? await pool.execute(get("/held?\(index)"), host: Origin.hostName, port: origin.port)) == nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(failures == streams, "no held response completes")
        let sent = try await Self.flow(origin).sent
        let bound = config.maxResponseBodyBytes + body + streams * Self.window
        #expect(sent <= bound, "the server sent \(sent) bytes of body; at most \(bound) expected, \(streams * body) without a bound")
        #expect(await pool.stats().connectionsOpened == 1)
        try await pool.close()
    }

    /// Bodies that together pass the limit, on one connection at once, all arrive: the oldest
    /// stream's window always opens, and the others' as streams end. The server sends one frame
    /// per stream in turn, so streams that wait receive more than half the connection's window:
    /// were it held back for them, nghttp2 would never update it and every stream would stall.
    @Test func bodiesThatTogetherPassTheLimitAllArrive() async throws {
        let (origin, baseConfig) = try await http2Origin()
        let pool = try origin.pool(Self.smallWindowsOneConnection(baseConfig))
        let body = 200 << 10, streams = 8
        try await origin.rule(path: "/big", ["type": "status", "status": 200, "body_size": body])
        let sizes = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<streams {
                group.addTask { try await pool.execute(get("/big?\(index)"), host: Origin.hostName, port: origin.port).body.count }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(sizes == Array(repeating: body, count: streams))
        let stats = await pool.stats()
        #expect(stats.connectionsOpened == 1 && stats.failedRequests == 0)
        #expect(try await Self.flow(origin) == (streams * body, 0))
        try await pool.close()
    }

    // MARK: settings

    /// Settings outside RFC 9113's ranges, a window increment past 2^31-1, or a setting sent
    /// twice: `init` throws, naming the setting and what it allows (nghttp2 would refuse the
    /// session after every handshake, and the failures would eject healthy IPs).
    @Test(arguments: [
        ([HTTP2Setting(4, 1 << 31)], UInt32(0), "SETTINGS_INITIAL_WINDOW_SIZE (4) must be within 0...2147483647"),
        ([HTTP2Setting(2, 2)], 0, "SETTINGS_ENABLE_PUSH (2) must be within 0...1"),
        ([HTTP2Setting(5, 16_383)], 0, "SETTINGS_MAX_FRAME_SIZE (5) must be within 16384...16777215"),
        ([HTTP2Setting(5, 1 << 24)], 0, "SETTINGS_MAX_FRAME_SIZE (5) must be within 16384...16777215"),
        ([HTTP2Setting(9, 2)], 0, "SETTINGS_NO_RFC7540_PRIORITIES (9) must be within 0...1"),
        ([HTTP2Setting(1, 4096), HTTP2Setting(1, 65536)], 0, "SETTINGS_HEADER_TABLE_SIZE (1) is sent twice"),
        ([], UInt32(Int32.max), "connection window increment must be within 0...2147418112"),
    ])
    func settingsNghttp2WouldRefuseAreRejectedByInit(settings: [HTTP2Setting], increment: UInt32, message: String) async throws {
        var spec = FingerprintSpec.chrome
        spec.http2.settings = settings
        spec.http2.connectionWindowIncrement = increment
        var config = HotPoolConfiguration()
        config.profile = .custom(spec)
        try await expectInvalidConfiguration(config, saying: message)
    }

    /// The edges of those ranges work against a real server: the largest window, frame size and
    /// increment.
    @Test func settingsAtTheEdgesOfTheirRangesDialAndAnswer() async throws {
        let (origin, baseConfig) = try await http2Origin()
        var spec = FingerprintSpec.chrome
        spec.http2.settings = [HTTP2Setting(2, 1), HTTP2Setting(4, 0x7FFF_FFFF), HTTP2Setting(5, 16_777_215), HTTP2Setting(9, 1)]
        spec.http2.connectionWindowIncrement = HTTP2Fingerprint.maxConnectionWindowIncrement
        var config = baseConfig
        config.profile = .custom(spec)
        let pool = try origin.pool(config)
        let response = try await pool.execute(get(), host: Origin.hostName, port: origin.port)
        #expect(response.body == Array("ok".utf8))
        #expect(await pool.connectionStats().first?.httpVersion == .http2)
        try await pool.close()
    }

    /// A preface nghttp2 refuses (settings that bypassed `init`'s checks) is a clear error naming
    /// nghttp2's reason.
    @Test func aPrefaceNghttp2RefusesIsAClearError() {
        var fingerprint = HTTP2Fingerprint.plain
        fingerprint.settings = [HTTP2Setting(4, 1 << 31)]
        #expect {
            _ = try HTTP2Session(fingerprint: fingerprint, heldBodyLimit: 1)
        } throws: { error in
            guard let error = error as? HTTP2SessionError else { return false }
            return !error.isOutOfMemory && !error.isFlood && error.description == "Invalid argument"
        }
        #expect(hp_h2_live_sessions() == 0)
    }
}
