import CShims
import Foundation
import OriginControl
import Testing
@_spi(Benchmarks) @testable import HotPool
@testable import HotPoolCore

/// The seed's lifecycle: get, put, remove, close, cleanup, against the real origin.
@Suite struct LifecycleTests {
    @Test func sequentialGetRoundTripPutReusesOneConnection() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        for _ in 0..<100 {
            let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
            #expect(try await connection.roundTrip(get()).head.status == .ok)
            pool.putConnection(connection)
        }
        #expect(try await origin.stats().totalHandshakes == 1)
        let stats = await pool.stats()
        #expect(stats.totalConnections == 1 && stats.idleConnections == 1 && stats.totalRequests == 100)
        try await pool.close()
    }

    @Test func concurrentCallersSpreadOverEveryIP() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        // Each caller holds its connection until all three have one, so the three overlap.
        let connections = try await withThrowingTaskGroup(of: PooledConnection.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
                    _ = try await connection.roundTrip(get())
                    return connection
                }
            }
            return try await group.reduce(into: [PooledConnection]()) { $0.append($1) }
        }
        #expect(Set(connections.map(\.targetIP)) == Set(origin.ips))
        let handshakes = try await origin.stats().handshakes
        #expect(origin.ips.allSatisfy { handshakes[$0] == 1 })
        for connection in connections { pool.putConnection(connection) }
        try await pool.close()
    }

    // MARK: each destruction path: server sees the close, one more in the right bucket, total drops by one

    @Test func validationNon200DestroysTheConnectionAndRetries() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        try await origin.rule(path: "/health", ["type": "status", "status": 500], times: 1)
        let first = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        let firstOnServer = try await serverConnection(of: first, origin)
        pool.putConnection(first)  // idle: the validation takes it
        let fds = openFDCount()
        let validated = try await pool.getConnection(validating: "https://\(Origin.hostName):\(origin.port)/health")
        let validations = try await origin.recentRequests(last: 2)
        #expect(validations.map(\.path) == ["/health", "/health"] && validations.first?.connection == firstOnServer,
                "the idle connection was validated first, and answered 500")
        #expect(try await serverConnection(of: validated, origin) != firstOnServer, "the 500 destroyed the first connection; a new one passed")
        let stats = await pool.stats()
        #expect(stats.closedByReason[.validationFailed] == 1 && stats.closedByReason.values.reduce(0, +) == 1)
        #expect(stats.totalConnections == 1 && stats.connectionsOpened == 2)
        #expect(try await origin.waitClosed(1))
        #expect(openFDCount() == fds, "one socket closed, one opened")
        await #expect(throws: HotPoolError.staleConnection) { _ = try await first.roundTrip(get()) }
        // When every try is answered 500, the error names the status, the host and the IP of
        // the last connection tried.
        try await origin.rule(path: "/health", ["type": "status", "status": 500])
        await #expect {
            _ = try await pool.getConnection(validating: "https://\(Origin.hostName):\(origin.port)/health")
        } throws: { error in
            guard let error = error as? HotPoolError, error.code == .validationFailed else { return false }
            #expect(error.host == Origin.hostName && error.ip.map(origin.ips.contains) == true, "\(error)")
            #expect(error.description == "validation request to \(Origin.hostName) (\(error.ip ?? "")) answered 500, not 200")
            return error.status == 500
        }
        pool.putConnection(validated)
        try await pool.close()
    }

    @Test func validation403BlacklistsTheIPAndDestroysItsIdleConnections() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.idleOrder = .fifo  // so the validation takes the longest idle connection
        let pool = try origin.pool(config)
        try await origin.rule(ip: origin.ips[0], path: "/check", ["type": "status", "status": 403])
        // One idle connection to each IP.
        var held: [PooledConnection] = []
        for ip in origin.ips { held.append(try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: ip)) }
        let spare = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        for c in held { pool.putConnection(c) }
        let fds = openFDCount()
        // The validation takes the oldest idle connection: ips[0] → 403.
        let validated = try await pool.getConnection(validating: "https://\(Origin.hostName):\(origin.port)/check")
        #expect(validated.targetIP != origin.ips[0])
        var stats = await pool.stats()
        #expect(stats.closedByReason[.validationFailed] == 1)
        // The leased spare on the blacklisted IP goes when returned, as `blacklisted`.
        pool.putConnection(spare)
        stats = await pool.stats()
        #expect(stats.closedByReason[.blacklisted] == 1)
        #expect(openFDCount() == fds - 2)
        #expect(try await origin.waitClosed(2, ip: origin.ips[0]))
        // New connections avoid the blacklisted IP.
        for _ in 0..<6 {
            let c = try await pool.getConnection(host: Origin.hostName, port: origin.port)
            #expect(c.targetIP != origin.ips[0])
            pool.removeConnection(c)
        }
        await #expect(throws: HotPoolError.allAddressesBlacklisted(host: Origin.hostName)) {
            pool.setAddresses([origin.ips[0]], forHost: Origin.hostName)
            _ = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        }
        pool.putConnection(validated)
        try await pool.close()
    }

    @Test func networkErrorThenPutDestroysAsUnhealthyOnReturn() async throws {
        try await expectDestruction(.unhealthyOnReturn, setup: { origin in
            try await origin.rule(path: "/reset", ["type": "reset", "after_bytes": 10])
        }) { pool, _, connection in
            await #expect(throws: HotPoolError.self) { _ = try await connection.roundTrip(get("/reset")) }
            let stats = await pool.stats()
            #expect(stats.failedRequests == 1 && stats.healthyConnections == 0)
            #expect(await pool.connectionStats().first?.errorCount == 1)
            pool.putConnection(connection)
        }
    }

    @Test func serverCloseWhileIdleIsNoticedAtOnce() async throws {
        try await expectDestruction(.remoteClosed) { pool, origin, connection in
            _ = try await connection.roundTrip(get())
            pool.putConnection(connection)
            #expect(await pool.stats().idleConnections == 1)
            #expect(try await origin.closeIdle(ip: origin.ips[0], mode: "notify") == 1)
        }
    }

    @Test func serverFINWithoutCloseNotifyWhileIdleIsRemoteClosed() async throws {
        try await expectDestruction(.remoteClosed) { pool, origin, connection in
            _ = try await connection.roundTrip(get())
            pool.putConnection(connection)
            #expect(try await origin.closeIdle(ip: origin.ips[0], mode: "fin") == 1)
        }
    }

    @Test func serverResetWhileIdleIsANetworkError() async throws {
        try await expectDestruction(.networkError) { pool, origin, connection in
            _ = try await connection.roundTrip(get())
            pool.putConnection(connection)
            #expect(try await origin.closeIdle(ip: origin.ips[0], mode: "reset") == 1)
        }
    }

    @Test func idleTimeoutFromTheCleanupTimer() async throws {
        try await expectDestruction(.idleTimeout, config: {
            $0.idleTimeout = .milliseconds(200)
            $0.cleanupInterval = .milliseconds(100)
        }) { pool, _, connection in
            pool.putConnection(connection)
        }
    }

    @Test func maxLifetimeDestroysIdleAtOnceAndLeasedOnReturn() async throws {
        try await expectDestruction(.maxLifetime) { pool, _, connection in
            #expect(await pool.cleanupExpiredConnections(maxLifetime: .zero) == 0, "leased: marked, not destroyed")
            #expect(await pool.stats().totalConnections == 1)
            pool.putConnection(connection)
        }
    }

    @Test func maxLifetimeFromTheCleanupTimer() async throws {
        try await expectDestruction(.maxLifetime, config: {
            $0.maxLifetime = .milliseconds(200)
            $0.cleanupInterval = .milliseconds(100)
        }) { pool, _, connection in
            pool.putConnection(connection)
        }
    }

    @Test func explicitRemove() async throws {
        try await expectDestruction(.removed) { pool, _, connection in
            pool.removeConnection(connection)
        }
    }

    @Test func poolCloseWithALeasedConnection() async throws {
        let origin = try Origin()
        let fds = openFDCount()
        let pool = try origin.pool()
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        try await pool.close()
        let stats = await pool.stats()
        #expect(stats.closedByReason[.poolClosed] == 1 && stats.totalConnections == 0)
        #expect(try await origin.waitClosed(1))
        await #expect(throws: HotPoolError.poolClosed) { _ = try await connection.roundTrip(get()) }
        pool.putConnection(connection)  // ignored
        #expect(openFDCount() == fds, "no fd left: sockets, epoll and eventfd")
    }

    // MARK: misuse

    @Test func doublePutAndUseAfterRemoveAreDetectedNotFatal() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        let onServer = try await serverConnection(of: connection, origin)
        pool.putConnection(connection)
        pool.putConnection(connection)  // double put: ignored, counted
        var stats = await pool.stats()
        #expect(stats.staleHandleUses == 1 && stats.idleConnections == 1)
        // The same connection goes to another caller under a new lease: the first caller's late
        // put and round trip must not touch it.
        let again = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        #expect(try await serverConnection(of: again, origin) == onServer, "the same connection")
        pool.putConnection(connection)
        await #expect(throws: HotPoolError.staleConnection) { _ = try await connection.roundTrip(get()) }
        stats = await pool.stats()
        #expect(stats.staleHandleUses == 3 && stats.activeConnections == 1, "the new lease survived")
        #expect(try await again.roundTrip(get()).head.status == .ok)
        pool.removeConnection(again)
        await #expect(throws: HotPoolError.staleConnection) { _ = try await again.roundTrip(get()) }
        pool.putConnection(again)
        pool.removeConnection(again)
        stats = await pool.stats()
        #expect(stats.staleHandleUses == 6 && stats.closedByReason[.removed] == 1 && stats.totalConnections == 0)
        // A new connection reuses the slot: the old handles stay stale.
        let fresh = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        #expect(try await serverConnection(of: fresh, origin) != onServer, "a new connection")
        pool.putConnection(again)
        pool.removeConnection(connection)
        #expect(await pool.stats().activeConnections == 1)
        pool.putConnection(fresh)
        #expect(try await origin.waitHandshakes(2))
        try await pool.close()
    }

    /// Host and IP records nobody uses are reclaimed (a crawler touching millions of hosts stays
    /// bounded); a host with a live connection keeps its record; addresses given by
    /// `setAddresses` survive, and a later get makes the record anew.
    @Test func idleHostRecordsAreReclaimedAndMadeAnew() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.idleTimeout = .milliseconds(100)
        let pool = try origin.pool(config)
        let held = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        let touched = await pool.onReactor { access in
            for i in 0..<1000 { _ = access.hostID(host: "h\(i).test", port: 443) }
            return access.hostRecords
        }
        #expect(touched == 1001)
        #expect(await eventually {
            _ = await pool.cleanupIdleConnections()
            return await pool.onReactor { $0.hostRecords } == 1
        }, "all but the host with a leased connection")
        pool.putConnection(held)
        #expect(await eventually {
            _ = await pool.cleanupIdleConnections()
            return await pool.onReactor { $0.hostRecords } == 0
        })
        #expect(await pool.stats().closedByReason[.idleTimeout] == 1)
        let again = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        #expect(try await again.roundTrip(get()).head.status == .ok)
        pool.putConnection(again)
        try await pool.close()
    }

    /// TLS 1.3 session tickets arriving while idle are read through OpenSSL and keep the
    /// connection; application bytes nobody asked for destroy it once, as `unsolicitedData`.
    @Test func idleConnectionSurvivesSessionTicketsButNotStrayBytes() async throws {
        try await expectDestruction(.unsolicitedData) { pool, origin, connection in
            pool.putConnection(connection)  // idle before reading anything: the tickets arrive while idle
            #expect(try await origin.waitHandshakes(1))
            let again = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
            #expect(try await again.roundTrip(get()).head.status == .ok, "tickets did not break it")
            pool.putConnection(again)
            #expect(await pool.stats().idleConnections == 1)
            #expect(try await origin.sendIdle(ip: origin.ips[0], data: "x") == 1)
        }
    }

    /// A server that streams records carrying no data at a connection nobody reads (1,000 TLS 1.3
    /// session tickets, about 200 KB) has it retired as `unsolicitedData` once more than
    /// `readOnBudget` (64 KiB) arrived, rather than read for ever.
    @Test func idleConnectionFloodedWithTicketsIsRetired() async throws {
        let origin = try Origin()
        _ = try await origin.send(["cmd": "tls", "ip": origin.ips[0], "mode": "tickets"])
        let fds = openFDCount()
        let pool = try origin.pool()
        // The tickets stream in while the connection is leased or idle: either way nobody reads it.
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        pool.putConnection(connection)
        #expect(await eventually { await pool.stats().closedByReason[.unsolicitedData] == 1 }, "retired")
        let stats = await pool.stats()
        #expect(stats.closedByReason.values.reduce(0, +) == 1 && stats.totalConnections == 0, "counted once")
        #expect(try await origin.waitClosed(1, ip: origin.ips[0]), "the server saw it closed")
        try await pool.close()
        #expect(openFDCount() == fds, "its fd closed")
        #expect(hp_tls_live_objects() == 0)
    }

    /// A lease held past `leaseWarningAfter` is reported once; one returned in time is not. Each
    /// lease is on its own IP, so a report names its lease.
    @Test func longLeaseIsReportedOnceWithHostIPAndAge() async throws {
        let origin = try Origin()
        let log = CapturedLog()
        var config = origin.configuration()
        config.leaseWarningAfter = .milliseconds(200)
        config.logger = log.logger(level: .warning)
        let pool = try origin.pool(config)
        let warnings = { log.entries.filter { $0.level == .warning } }
        let held = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        #expect(await eventually { !warnings().isEmpty }, "the long lease is reported")
        #expect(warnings().first?.metadata["host"] == Origin.hostName && warnings().first?.metadata["ip"] == origin.ips[0])
        #expect(warnings().first?.message.contains("leased for") == true)
        let quick = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[1])
        pool.putConnection(quick)  // a short lease: not reported
        // A lease that starts after the short one and is held too long: the sweep that reports it
        // comes after the short one would have been due and after the first report, so a report
        // of either could not be missed.
        let late = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[2])
        #expect(await eventually { warnings().count >= 2 })
        #expect(warnings().map { $0.metadata["ip"] } == [origin.ips[0], origin.ips[2]],
                "the held lease reported once, the late one too, the returned one never")
        pool.putConnection(held)
        pool.putConnection(late)
        try await pool.close()
    }

    @Test func lifecycleEventsAreLoggedAtDebug() async throws {
        let origin = try Origin()
        let log = CapturedLog()
        var config = origin.configuration()
        config.logger = log.logger()
        let pool = try origin.pool(config)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        pool.removeConnection(connection)
        try await pool.close()
        let debug = log.entries.filter { $0.level == .debug }
        #expect(debug.contains { $0.message == "connected" && $0.metadata["ip"] == connection.targetIP })
        #expect(debug.contains { $0.message == "connection destroyed" && $0.metadata["reason"] == "removed" })
    }

    // MARK: limits and waiting

    @Test func perHostLimitMakesCallersWaitAndAllComplete() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.maxConnectionsPerHost = 4
        let pool = try origin.pool(config)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<50 {
                group.addTask {
                    try await pool.withConnection(host: Origin.hostName, port: origin.port) { connection in
                        try await connection.roundTrip(get("/c\(i)")).head.status.code
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.count == 50 && statuses.allSatisfy { $0 == 200 })
        let server = try await origin.stats()
        #expect(server.accepted.values.reduce(0, +) <= 4)
        let stats = await pool.stats()
        #expect(stats.totalConnections <= 4 && stats.waitingCallers == 0)
        try await pool.close()
    }

    @Test func cancelledWaiterLeavesTheQueueAtOnce() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.maxConnectionsPerHost = 1
        let pool = try origin.pool(config)
        let held = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        let heldOnServer = try await serverConnection(of: held, origin)
        let waiter = Task { try await pool.getConnection(host: Origin.hostName, port: origin.port) }
        #expect(await eventually { await pool.stats().waitingCallers == 1 })
        waiter.cancel()
        await #expect(throws: HotPoolError.cancelled) { _ = try await waiter.value }
        #expect(await pool.stats().waitingCallers == 0)
        // The next caller is served by the put.
        let next = Task { try await pool.getConnection(host: Origin.hostName, port: origin.port) }
        #expect(await eventually { await pool.stats().waitingCallers == 1 })
        pool.putConnection(held)
        let served = try await next.value
        #expect(try await serverConnection(of: served, origin) == heldOnServer, "the same connection")
        #expect(try await origin.stats().totalHandshakes == 1)
        pool.putConnection(served)
        try await pool.close()
    }

    /// A put that hands the connection straight to a waiting caller starts a new lease: the
    /// first caller's handle is stale, so its late put, remove and round trip touch nothing of
    /// the second caller's, and each is counted.
    @Test func aPutHandedStraightToAWaiterMakesTheOldHandleStale() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.maxConnectionsPerHost = 1
        let pool = try origin.pool(config)
        let first = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        let waiting = Task { try await pool.getConnection(host: Origin.hostName, port: origin.port) }
        #expect(await eventually { await pool.stats().waitingCallers == 1 })
        pool.putConnection(first)
        let second = try await waiting.value
        // The origin counts a handshake once it has read the client's Finished, which may come
        // after the client is done: waited for, and exactly one.
        #expect(try await origin.waitHandshakes(1), "the waiter got the same connection")
        pool.putConnection(first)
        pool.removeConnection(first)
        await #expect(throws: HotPoolError.staleConnection) { _ = try await first.roundTrip(get()) }
        #expect(try await second.roundTrip(get()).body == Array("ok".utf8), "the second caller's connection is untouched")
        let stats = await pool.stats()
        #expect(stats.staleHandleUses == 3 && stats.activeConnections == 1)
        #expect(stats.closedByReason.values.reduce(0, +) == 0)
        #expect(try await origin.stats().totalClosed == 0, "the server saw no close")
        pool.putConnection(second)
        try await pool.close()
    }

    /// A handle of another pool, even one with the same slot and lease numbers, is rejected by
    /// put and remove, and counted by the pool it was given to.
    @Test func aHandleOfAnotherPoolIsRejected() async throws {
        let origin = try Origin()
        let poolA = try origin.pool()
        let poolB = try origin.pool()
        let a = try await poolA.getConnection(host: Origin.hostName, port: origin.port)
        let b = try await poolB.getConnection(host: Origin.hostName, port: origin.port)
        poolB.putConnection(a)
        poolB.removeConnection(a)
        await #expect(throws: HotPoolError.staleConnection) {
            _ = try await poolB.roundTrip(a, get(), body: [], timeout: .seconds(5))
        }
        let statsB = await poolB.stats()
        #expect(statsB.staleHandleUses == 3 && statsB.activeConnections == 1 && statsB.closedByReason.values.reduce(0, +) == 0)
        #expect(statsB.totalRequests == 0, "nothing was sent for the foreign handle")
        #expect(try await b.roundTrip(get()).body == Array("ok".utf8))
        #expect(try await a.roundTrip(get()).body == Array("ok".utf8))
        #expect(await poolA.stats().staleHandleUses == 0)
        poolA.putConnection(a)
        poolB.putConnection(b)
        #expect(try await origin.stats().totalClosed == 0)
        try await poolA.close()
        try await poolB.close()
    }

    @Test func waiterTimesOutAfterAcquireTimeout() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.maxConnectionsPerHost = 1
        config.acquireTimeout = .milliseconds(200)
        let pool = try origin.pool(config)
        let held = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        await #expect(throws: HotPoolError.timeout(host: Origin.hostName, ip: nil, phase: .waitForConnection)) {
            _ = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        }
        pool.putConnection(held)
        try await pool.close()
    }

    @Test func closeWithManyIdleAndLeasedConnections() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        // The pool-wide limits are split between the reactors, and one of them serves the host.
        config.maxConnections = 300 * config.reactors.resolved
        config.maxConnectionsPerHost = 300
        config.maxIdleConnections = 300 * config.reactors.resolved
        let fds = openFDCount()
        let pool = try origin.pool(config)
        let connections = try await withThrowingTaskGroup(of: PooledConnection.self) { group in
            for _ in 0..<220 { group.addTask { try await pool.getConnection(host: Origin.hostName, port: origin.port) } }
            return try await group.reduce(into: [PooledConnection]()) { $0.append($1) }
        }
        for c in connections.dropFirst(20) { pool.putConnection(c) }
        let before = await pool.stats()
        #expect(before.idleConnections == 200 && before.activeConnections == 20)
        try await pool.close()
        #expect(try await origin.waitClosed(220, timeout: 10))
        #expect(await pool.stats().closedByReason[.poolClosed] == 220)
        await #expect(throws: HotPoolError.poolClosed) { _ = try await pool.getConnection(host: Origin.hostName, port: origin.port) }
        await #expect(throws: HotPoolError.poolClosed) { _ = try await connections[0].roundTrip(get()) }
        for c in connections.prefix(20) { pool.putConnection(c) }  // late puts: ignored
        try await pool.close()  // idempotent
        #expect(openFDCount() == fds)
        #expect(hp_tls_live_objects() == 0)
    }

    @Test func invalidInputsGiveClearErrors() async throws {
        var config = HotPoolConfiguration()
        config.cleanupInterval = .zero
        #expect(throws: HotPoolError.self) { _ = try HotConnPool(configuration: config) }
        config = HotPoolConfiguration()
        config.maxConnections = 0
        #expect(throws: HotPoolError.self) { _ = try HotConnPool(configuration: config) }
        config.maxConnections = HotPoolConfiguration.maxConnectionsLimit + 1
        #expect(throws: HotPoolError.self) { _ = try HotConnPool(configuration: config) }
        config = HotPoolConfiguration()
        config.trustedCAFile = "/nonexistent/ca.pem"
        #expect(throws: HotPoolError.self) { _ = try HotConnPool(configuration: config) }
        let pool = try HotConnPool()
        await #expect(throws: HotPoolError.unsupportedScheme("http")) { _ = try await pool.getConnection(validating: "http://x.test/") }
        await #expect(throws: HotPoolError.invalidURL("::not a url")) { _ = try await pool.getConnection(validating: "::not a url") }
        await #expect(throws: HotPoolError.invalidIP("not-an-ip")) { _ = try await pool.getConnection(host: "x.test", ip: "not-an-ip") }
        await #expect { _ = try await pool.getConnection(host: "no-such-host.invalid") } throws: { error in
            guard let error = error as? HotPoolError else { return false }
            return error.code == .noAddresses && error.host == "no-such-host.invalid"
        }
        try await pool.close()
    }
}
