import CShims
import Foundation
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// The IPs behind a host, against real servers: a DNS server (Tests/Origin/dns.py) whose records
/// the tests change, and the TLS origin on several loopback IPs, whose per-IP counts show where
/// connections went.
@Suite struct AddressManagementTests {
    let host = Origin.hostName

    /// A configuration resolving through `dns`, refreshing every `refresh`.
    private func resolving(_ origin: Origin, _ dns: DNSServer, refresh: Duration = .seconds(3600)) -> HotPoolConfiguration {
        var config = origin.configuration()
        config.dnsServers = ["127.0.0.1:\(dns.port)"]
        config.dnsUpdateInterval = refresh
        return config
    }

    private func inRotation(_ pool: HotConnPool, _ ip: String) async -> Bool {
        await pool.ipStats(forHost: host).contains { $0.ip == ip && $0.inRotation }
    }

    // MARK: DNS

    @Test func aRefreshAddsANewIPAndItsFirstConnectionIsCounted() async throws {
        let (origin, dns) = (try Origin(), try DNSServer())
        try await dns.set(host, [origin.ips[0]])
        let pool = try HotConnPool(configuration: resolving(origin, dns, refresh: .milliseconds(100)))
        let first = try await pool.getConnection(host: host, port: origin.port)
        #expect(first.targetIP == origin.ips[0])
        #expect(await pool.stats().newConnectionsFromDNS == 0, "the first answer's IPs are not new")
        try await dns.set(host, [origin.ips[0], origin.ips[1]])
        #expect(await eventually { await inRotation(pool, origin.ips[1]) }, "the refresh picked the new IP up")
        #expect(try await dns.queries(host) >= 2)
        // The rotation goes on to the new IP for the next dial (the first connection stays leased).
        let second = try await pool.getConnection(host: host, port: origin.port)
        #expect(second.targetIP == origin.ips[1])
        #expect(try await eventually { try await origin.stats().handshakes[origin.ips[1]] == 1 }, "a connection landed on it")
        let third = try await pool.getConnection(host: host, port: origin.port)
        #expect(third.targetIP == origin.ips[0])
        let stats = await pool.stats()
        #expect(stats.newConnectionsFromDNS == 1, "one new IP, one first connection")
        let entry = try #require(await pool.ipStats(forHost: host).first { $0.ip == origin.ips[1] })
        #expect(entry.lastResolved != nil && entry.openConnections == 1)
        try await pool.close()
        #expect(hp_tls_live_objects() == 0)
    }

    @Test func anIPGoneFromDNSTakesNoNewConnectionsAndItsConnectionsCloseAsAddressRemoved() async throws {
        let (origin, dns) = (try Origin(), try DNSServer())
        try await dns.set(host, [origin.ips[0], origin.ips[1]])
        let baseline = openFDCount()
        let pool = try HotConnPool(configuration: resolving(origin, dns))
        let fds = openFDCount()
        var held: [PooledConnection] = []
        for _ in 0..<3 { held.append(try await pool.getConnection(host: host, port: origin.port)) }
        #expect(held.map(\.targetIP) == [origin.ips[0], origin.ips[1], origin.ips[0]])
        pool.putConnection(held[0])  // idle, to the IP about to go
        try await dns.set(host, [origin.ips[1]])
        #expect(try await pool.refreshAddresses(host: host, port: origin.port) == [origin.ips[1]])
        #expect(await pool.stats().closedByReason[.addressRemoved] == 1, "the idle connection closed at once")
        #expect(try await origin.waitClosed(1, ip: origin.ips[0]))
        pool.putConnection(held[2])  // leased to the gone IP: closed on return
        #expect(await eventually { await pool.stats().closedByReason[.addressRemoved] == 2 })
        #expect(try await origin.waitClosed(2, ip: origin.ips[0]))
        for _ in 0..<3 {
            let connection = try await pool.getConnection(host: host, port: origin.port)
            #expect(connection.targetIP == origin.ips[1])
            pool.removeConnection(connection)
        }
        #expect(try await origin.stats().handshakes[origin.ips[0]] == 2, "no new connection to the gone IP")
        let stats = await pool.stats()
        #expect(stats.closedByReason.values.reduce(0, +) == 5, "two removed by DNS, three by the caller: each once")
        #expect(stats.failedDials == 0)
        #expect(!(await inRotation(pool, origin.ips[0])))
        // A caller that pins the gone IP still gets a connection to it, closed when returned.
        let pinned = try await pool.getConnection(host: host, port: origin.port, ip: origin.ips[0])
        pool.putConnection(pinned)
        #expect(await eventually { await pool.stats().closedByReason[.addressRemoved] == 3 })
        pool.putConnection(held[1])
        #expect(try await serverSeesThePoolsConnections(pool, origin))
        #expect(openFDCount() == fds + 1, "only the idle connection to the remaining IP is open")
        try await pool.close()
        #expect(openFDCount() == baseline, "every fd of the pool closed")
        #expect(hp_tls_live_objects() == 0)
    }

    @Test func aDNSServerThatIsDownLeavesTheLastGoodAddresses() async throws {
        let (origin, dns) = (try Origin(), try DNSServer())
        try await dns.set(host, [origin.ips[2]])
        let log = CapturedLog()
        var config = resolving(origin, dns)
        config.logger = log.logger(level: .warning)
        let pool = try HotConnPool(configuration: config)
        pool.removeConnection(try await pool.getConnection(host: host, port: origin.port))
        try await dns.down()
        await #expect {
            try await pool.refreshAddresses(host: host, port: origin.port)
        } throws: { error in
            guard let error = error as? HotPoolError else { return false }
            return error.code == .noAddresses && error.host == Origin.hostName
        }
        #expect(log.entries.contains { $0.message.contains("DNS lookup failed") })
        let connection = try await pool.getConnection(host: host, port: origin.port)
        #expect(connection.targetIP == origin.ips[2], "dialed to the last good address")
        pool.putConnection(connection)
        try await dns.up()
        try await pool.close()
    }

    @Test func aNameThatDoesNotExistFailsCleanly() async throws {
        let (origin, dns) = (try Origin(), try DNSServer())
        let pool = try HotConnPool(configuration: resolving(origin, dns))
        let fds = openFDCount()
        var queries: [Int] = []
        for _ in 0..<2 {
            await #expect {
                _ = try await pool.getConnection(host: "missing.hotpool.test", port: origin.port)
            } throws: { error in
                guard let error = error as? HotPoolError, error.code == .noAddresses, error.host == "missing.hotpool.test" else {
                    return false
                }
                return error.reason?.lowercased().contains("not found") == true
            }
            queries.append(try await dns.queries("missing.hotpool.test"))
        }
        #expect(queries[0] > 0 && queries[1] == 2 * queries[0], "each get after a failure asks again: \(queries)")
        let stats = await pool.stats()
        #expect(stats.waitingCallers == 0 && stats.dialingConnections == 0 && stats.failedDials == 0)
        #expect(openFDCount() == fds)
        try await pool.close()
    }

    @Test func aLookupGivesIPv4AndIPv6Addresses() async throws {
        let (origin, dns) = (try Origin(), try DNSServer())
        try await dns.set(host, [origin.ips[0], "::1", origin.ips[1]])
        let pool = try HotConnPool(configuration: resolving(origin, dns))
        #expect(Set(try await pool.refreshAddresses(host: host, port: origin.port)) == [origin.ips[0], origin.ips[1], "::1"])
        #expect(Set(await pool.ipStats(forHost: host).map(\.ip)) == [origin.ips[0], origin.ips[1], "::1"])
        try await pool.close()
    }

    @Test func aHostUsesAtMostMaxAddressesPerLookupOfAnAnswerTheFirstOnesWithoutRepeats() async throws {
        let (origin, dns) = (try Origin(), try DNSServer())
        let distinct = (0..<300).map { "127.1.\($0 / 100).\($0 % 100 + 1)" }
        // The first ten thrice each: a cap applied before the repeats are dropped would keep fewer.
        // (Too big for a UDP reply: c-ares asks again over TCP.)
        try await dns.set(host, distinct.prefix(10).flatMap { [$0, $0, $0] } + distinct.dropFirst(10) + distinct.prefix(50))
        for cap in [HotPoolConfiguration().maxAddressesPerLookup, 8] {
            var config = resolving(origin, dns)
            config.maxAddressesPerLookup = cap
            let pool = try HotConnPool(configuration: config)
            #expect(try await pool.refreshAddresses(host: host, port: origin.port) == Array(distinct.prefix(cap)))
            #expect(await pool.ipStats(forHost: host).map(\.ip).sorted() == distinct.prefix(cap).sorted(), "no record of the others")
            try await pool.close()
        }
        var zero = resolving(origin, dns)
        zero.maxAddressesPerLookup = 0
        #expect(throws: HotPoolError.invalidConfiguration("maxAddressesPerLookup must be > 0, got 0")) {
            try HotConnPool(configuration: zero)
        }
    }

    @Test func theRecordOfAnIPDNSDroppedGoesAtTheCleanupOnceNoConnectionUsesIt() async throws {
        let (origin, dns) = (try Origin(), try DNSServer())
        let (a, b, c) = (origin.ips[0], origin.ips[1], origin.ips[2])
        let never = "127.0.0.201"  // given by DNS, never dialed
        try await dns.set(host, [a, b, c, never])
        var config = resolving(origin, dns)
        config.cleanupInterval = .milliseconds(100)
        let baseline = openFDCount()
        let pool = try HotConnPool(configuration: config)
        func recorded() async -> Set<String> { Set(await pool.ipStats(forHost: host).map(\.ip)) }
        let held = try await pool.getConnection(host: host, port: origin.port)
        #expect(held.targetIP == a)
        // c goes from DNS with no connection: its record goes at the next cleanup, while the host
        // has a connection (and so keeps its own record).
        try await dns.set(host, [a, b, never])
        #expect(try await pool.refreshAddresses(host: host, port: origin.port) == [a, b, never])
        #expect(await eventually { await recorded() == [a, b, never] }, "c's record freed")
        // a goes while leased, with `never`: the cleanup that frees `never` keeps a's record.
        try await dns.set(host, [b])
        #expect(try await pool.refreshAddresses(host: host, port: origin.port) == [b])
        #expect(await eventually { await recorded() == [a, b] }, "never's record freed")
        let entry = try #require(await pool.ipStats(forHost: host).first { $0.ip == a })
        #expect(entry.openConnections == 1 && !entry.inRotation && entry.requests == 0)
        pool.putConnection(held)
        #expect(await eventually { await pool.stats().closedByReason[.addressRemoved] == 1 })
        #expect(await eventually { await recorded() == [b] }, "a's record freed once its connection was destroyed")
        #expect(try await origin.waitClosed(1, ip: a))
        // The host's next connection goes to b.
        let next = try await pool.getConnection(host: host, port: origin.port)
        #expect(next.targetIP == b)
        pool.putConnection(next)
        try await pool.close()
        #expect(openFDCount() == baseline)
        #expect(hp_tls_live_objects() == 0)
    }

    @Test func setAddressesOverridesDNSAndRefreshReturnsThem() async throws {
        let (origin, dns) = (try Origin(), try DNSServer())
        try await dns.set(host, [origin.ips[0]])
        let pool = try HotConnPool(configuration: resolving(origin, dns))
        pool.setAddresses([origin.ips[1]], forHost: host)
        #expect(try await pool.refreshAddresses(host: host, port: origin.port) == [origin.ips[1]])
        #expect(try await dns.queries(host) == 0, "a host with static addresses is not looked up")
        let connection = try await pool.getConnection(host: host, port: origin.port)
        #expect(connection.targetIP == origin.ips[1])
        pool.putConnection(connection)
        try await pool.close()
        await #expect(throws: HotPoolError.poolClosed) { try await pool.refreshAddresses(host: host) }
    }

    // MARK: blacklisting and recovery

    @Test func a403BlacklistsTheIPAndOnlyAPassedRecoveryProbeBringsItBack() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.healthCheckPath = "/hc"
        config.healthCheckInterval = .milliseconds(50)
        config.validationTimeout = .seconds(2)
        config.blacklistTimeout = .milliseconds(200)
        config.blacklistCheckInterval = .milliseconds(50)
        let pool = try origin.pool(config)
        let ip = origin.ips[0]
        // The health check and the first recovery probe are refused; the second probe passes.
        try await origin.rule(ip: ip, path: "/hc", ["type": "status", "status": 403], times: 2)
        pool.putConnection(try await pool.getConnection(host: host, port: origin.port, ip: ip))
        #expect(await eventually { await pool.blacklistedIPs(forHost: host).map(\.reason) == [.forbidden] })
        await #expect(throws: HotPoolError.addressBlacklisted(host: host, ip: ip)) {
            try await pool.getConnection(host: host, port: origin.port, ip: ip)
        }
        let first = try #require(await pool.blacklistedIPs(forHost: host).first)
        // The failed probe doubles the time out (200 ms, then 400 ms).
        #expect(await eventually { await pool.stats().closedByReason[.healthCheckFailed] == 2 })
        let second = try #require(await pool.blacklistedIPs(forHost: host).first)
        #expect(second.until - first.until >= .milliseconds(350), "backed off: \(second.until - first.until)")
        #expect(await eventually { await pool.blacklistedIPs(forHost: host).isEmpty }, "the passed probe brought it back")
        #expect(try await origin.recentRequests(ip: ip, last: 10).filter { $0.path == "/hc" }.count >= 3)
        // The probe's connection joined the pool; the IP takes connections again.
        let back = try await pool.getConnection(host: host, port: origin.port, ip: ip)
        pool.putConnection(back)
        let stats = await pool.stats()
        #expect(stats.closedByReason[.healthCheckFailed] == 2 && stats.closedByReason.values.reduce(0, +) == 2)
        #expect(await inRotation(pool, ip))
        try await pool.close()
        #expect(hp_tls_live_objects() == 0)
    }

    /// Resets on every request to `ips`, and `perIP` pinned requests to each.
    private func failRequests(_ pool: HotConnPool, _ origin: Origin, ips: [String], perIP: Int) async throws {
        for ip in ips {
            try await origin.rule(ip: ip, ["type": "reset", "after_bytes": 0])
            for _ in 0..<perIP {
                guard let connection = try? await pool.getConnection(host: host, port: origin.port, ip: ip) else { continue }
                _ = try? await connection.roundTrip(get("/fail"))
                pool.putConnection(connection)
            }
        }
    }

    @Test func fiveResetsInARowOnOneIPEjectIt() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let ip = origin.ips[0]
        try await failRequests(pool, origin, ips: [ip], perIP: 4)
        #expect(await pool.blacklistedIPs(forHost: host).isEmpty, "four failures are not enough")
        try await failRequests(pool, origin, ips: [ip], perIP: 1)
        let entries = await pool.blacklistedIPs(forHost: host)
        #expect(entries.map(\.ip) == [ip] && entries.map(\.reason) == [.failures])
        let stats = try #require(await pool.ipStats(forHost: host).first { $0.ip == ip })
        #expect(stats.failures == 5 && stats.requests == 5 && !stats.inRotation && stats.blacklistReason == .failures)
        #expect(await pool.stats().closedByReason[.unhealthyOnReturn] == 5, "each failed connection destroyed once")
        var held: [PooledConnection] = []
        for _ in 0..<4 { held.append(try await pool.getConnection(host: host, port: origin.port)) }
        #expect(!held.contains { $0.targetIP == ip }, "no new connection to the ejected IP")
        #expect(try await origin.stats().handshakes[ip] == 5)
        for connection in held { pool.putConnection(connection) }
        try await pool.close()
        #expect(hp_tls_live_objects() == 0)
    }

    @Test func atMostHalfOfAHostsIPsAreEjectedForFailures() async throws {
        let origin = try Origin(ips: ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"])
        let pool = try origin.pool()
        try await failRequests(pool, origin, ips: origin.ips, perIP: 5)
        let entries = await pool.blacklistedIPs(forHost: host)
        #expect(entries.count == 2 && entries.allSatisfy { $0.reason == .failures }, "\(entries)")
        #expect(await pool.ipStats(forHost: host).filter(\.inRotation).count == 2)
        try await pool.close()
    }

    @Test func aManualBlacklistClosesTheConnectionOnReturn() async throws {
        try await expectDestruction(.blacklisted) { pool, origin, connection in
            try pool.blacklist(ip: origin.ips[0], forHost: Origin.hostName, for: .seconds(60))
            pool.putConnection(connection)
        }
    }

    @Test func manualBlacklistUnblacklistAndAllowListsChangeWhereNewConnectionsGo() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let (a, b, c) = (origin.ips[0], origin.ips[1], origin.ips[2])
        /// Opens `count` connections at once and returns the server's new handshakes per IP.
        func dial(_ count: Int) async throws -> [String: Int] {
            let before = try await origin.stats().handshakes
            var held: [PooledConnection] = []
            for _ in 0..<count { held.append(try await pool.getConnection(host: host, port: origin.port)) }
            for connection in held { pool.removeConnection(connection) }
            // The server counts a handshake a moment after the client has finished it.
            #expect(try await origin.waitHandshakes(before.values.reduce(0, +) + count))
            let after = try await origin.stats().handshakes
            var added: [String: Int] = [:]
            for (ip, count) in after where count > before[ip] ?? 0 { added[ip] = count - (before[ip] ?? 0) }
            return added
        }
        try pool.blacklist(ip: a, forHost: host, for: .seconds(3600))
        #expect(await pool.blacklistedIPs(forHost: host).map(\.reason) == [.manual])
        #expect(try await dial(4) == [b: 2, c: 2])
        try pool.unblacklist(ip: a, forHost: host)
        #expect(await pool.blacklistedIPs(forHost: host).isEmpty)
        #expect(try await dial(3).keys.sorted() == [a, b, c])
        try pool.allowOnly(ips: [c], forHost: host)
        #expect(try await dial(3) == [c: 3])
        try pool.allowOnly(ips: nil, forHost: host)
        #expect(try await dial(3).keys.sorted() == [a, b, c])
        for ip in origin.ips { try pool.blacklist(ip: ip, forHost: host, for: .seconds(3600)) }
        await #expect(throws: HotPoolError.allAddressesBlacklisted(host: host)) {
            try await pool.prewarm(host: host, port: origin.port, count: 2)
        }
        await #expect(throws: HotPoolError.allAddressesBlacklisted(host: host)) {
            try await pool.getConnection(host: host, port: origin.port)
        }
        #expect(throws: HotPoolError.invalidIP("nope")) { try pool.blacklist(ip: "nope", forHost: host, for: .seconds(1)) }
        #expect(throws: HotPoolError.invalidHostName("a b")) { try pool.unblacklist(ip: a, forHost: "a b") }
        try await pool.close()
    }

    // MARK: pre-warming

    @Test func prewarmOpensConnectionsBeforeAnyRequestSpreadOverTheIPs() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        #expect(try await pool.prewarm(host: host, port: origin.port, count: 8) == 8)
        #expect(try await origin.waitHandshakes(8))
        let server = try await origin.stats()
        #expect(server.totalHandshakes == 8 && server.totalRequests == 0)
        #expect(server.handshakes.values.sorted() == [2, 3, 3], "round-robin over the IPs: \(server.handshakes)")
        #expect(await pool.stats().idleConnections == 8)
        #expect(try await pool.prewarm(host: host, port: origin.port, count: 8) == 8, "already warm: no dial")
        #expect(try await origin.stats().totalHandshakes == 8)
        var limited = origin.configuration()
        limited.maxConnectionsPerHost = 3
        let small = try origin.pool(limited)
        #expect(try await small.prewarm(host: host, port: origin.port, count: 8) == 3, "within the per-host limit")
        await #expect(throws: HotPoolError.invalidArgument("prewarm count must be >= 0, not -1")) {
            try await small.prewarm(host: host, count: -1)
        }
        try await small.close()
        try await pool.close()
        #expect(hp_tls_live_objects() == 0)
    }

    @Test func minIdlePerHostRestoresIdleConnectionsAfterTheServerClosesThem() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.minIdlePerHost = 4
        config.cleanupInterval = .milliseconds(100)  // connections the server closed are replaced then
        let pool = try origin.pool(config)
        #expect(try await pool.prewarm(host: host, port: origin.port, count: 0) == 4, "the host is kept at 4 idle")
        #expect(try await origin.waitHandshakes(4), "topped up to 4, no more")
        #expect(try await origin.closeIdle(ip: "*", mode: "notify", count: 4) == 4)
        #expect(await eventually { await pool.stats().closedByReason[.remoteClosed] == 4 })
        #expect(await eventually { await pool.stats().idleConnections == 4 }, "re-dialed to 4 idle")
        #expect(try await origin.waitHandshakes(8))
        try await pool.close()
        #expect(hp_tls_live_objects() == 0)
    }

    @Test func minIdlePerHostKeepsAHostWhoseIdleConnectionsTheServerClosedLongAfterItsLastRequest() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.minIdlePerHost = 3
        config.cleanupInterval = .milliseconds(300)
        config.idleTimeout = .milliseconds(600)
        let baseline = openFDCount()
        let pool = try origin.pool(config)
        let fds = openFDCount()
        let connection = try await pool.getConnection(host: host, port: origin.port)
        _ = try await connection.roundTrip(get("/once"))
        pool.putConnection(connection)
        // Three dialed to keep 3 idle beside the leased one; the cleanup then closes the fourth.
        #expect(try await origin.waitHandshakes(4))
        #expect(await eventually {
            let stats = await pool.stats()
            return stats.idleConnections == 3 && stats.totalConnections == 3
        })
        // The host's last request is older than idleTimeout once every connection has been idle
        // that long (each was last used after it).
        #expect(await eventually {
            await pool.connectionStats().allSatisfy { ContinuousClock.now - $0.lastUsed >= config.idleTimeout }
        })
        #expect(try await origin.closeIdle(ip: "*", mode: "notify", count: 3) == 3)
        #expect(try await origin.waitHandshakes(7), "the 3 connections the server closed are replaced, no more")
        #expect(await eventually { await pool.stats().idleConnections == 3 })
        let stats = await pool.stats()
        #expect(stats.closedByReason[.remoteClosed] == 3 && stats.closedByReason[.idleTimeout] == 1, "\(stats.closedByReason)")
        #expect(stats.closedByReason.values.reduce(0, +) == 4, "each closed connection counted once")
        #expect(try await serverSeesThePoolsConnections(pool, origin))
        #expect(openFDCount() == fds + 3, "the closed connections' fds are closed")
        try await pool.close()
        #expect(openFDCount() == baseline)
        #expect(hp_tls_live_objects() == 0)
    }

    // MARK: local addresses

    @Test func localAddressesAreUsedInTurnAndOneThatCannotBindIsSkipped() async throws {
        let origin = try Origin()
        let log = CapturedLog()
        var config = origin.configuration()
        // 192.0.2.1 (TEST-NET-1) is on no interface of this machine: bind fails.
        config.localAddresses = ["127.0.0.50", "192.0.2.1", "127.0.0.51"]
        config.logger = log.logger(level: .warning)
        let pool = try origin.pool(config)
        var held: [PooledConnection] = []
        for _ in 0..<4 { held.append(try await pool.getConnection(host: host, port: origin.port)) }
        #expect(try await origin.recentSources(last: 4) == ["127.0.0.50", "127.0.0.51", "127.0.0.50", "127.0.0.51"])
        #expect(await pool.connectionStats().compactMap(\.localAddress).sorted() == ["127.0.0.50", "127.0.0.50", "127.0.0.51", "127.0.0.51"])
        #expect(log.entries.contains { $0.message.contains("local address skipped") && $0.metadata["local"] == "192.0.2.1" })
        for connection in held { pool.putConnection(connection) }
        try await pool.close()
        var bad = origin.configuration()
        bad.localAddresses = ["192.0.2.1"]
        let failing = try origin.pool(bad)
        await #expect {
            try await failing.getConnection(host: host, port: origin.port)
        } throws: { error in
            guard let error = error as? HotPoolError else { return false }
            return error.code == .localAddressUnavailable && error.host == Origin.hostName
        }
        try await failing.close()
    }
}
