import Foundation
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// Connections through real proxies (tinyproxy for HTTP CONNECT, Squid for CONNECT inside TLS,
/// Dante for SOCKS5), started by each test on loopback, against the test origin.
@Suite(.serialized) struct ProxyTests {
    /// A proxy kind with the server that provides it.
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case http, httpWithBasicAuth, https, httpsWithBasicAuth, socks5, socks5WithPassword

        var testDescription: String { rawValue }

        /// The server, and the URL with the credentials it takes.
        func start(_ origin: Origin) throws -> (server: any ProxyServer, url: String) {
            switch self {
            case .http: let server = try TinyProxy(); return (server, server.url)
            case .httpWithBasicAuth:
                let server = try TinyProxy(basicAuth: ("hotpool", "s3cret")); return (server, server.url)
            case .https: let server = try Squid(signedBy: Squid.originCA(origin)); return (server, server.url)
            case .httpsWithBasicAuth:
                let server = try Squid(basicAuth: ("hotpool", "s3cret"), signedBy: Squid.originCA(origin)); return (server, server.url)
            case .socks5: let server = try Dante(); return (server, server.url)
            case .socks5WithPassword: let server = try Dante(usernameAuth: true); return (server, server.url)
            }
        }
    }

    /// The source IP the pool's connections leave from (to the proxy, through one): a local
    /// address the origin never sees through a proxy, which connects from 127.0.0.1.
    static let localAddress = "127.0.0.5"

    /// A configuration for `origin` presenting `profile` (Chrome unless given), bound to
    /// `localAddress`, through `proxies`.
    static func configuration(_ origin: Origin, proxies: [String] = [], profile: FingerprintProfile = .chrome) throws -> HotPoolConfiguration {
        var config = origin.configuration()
        config.profile = profile
        config.localAddresses = [localAddress]
        config.proxies = try proxies.map { try Proxy($0) }
        return config
    }

    /// The JA4 of the newest ClientHello on `ip`, and the Akamai string of the newest h2 connection there.
    static func fingerprint(_ origin: Origin, ip: String) async throws -> (ja4: String, akamai: String) {
        let hellos = try await origin.send(["cmd": "hellos", "ip": ip, "last": 1]).object["hellos"] as? [[String: Any]]
        let ja4 = try #require(hellos?.last?["ja4"] as? String)
        return (ja4, try await origin.akamai(ip: ip))
    }

    /// Every kind with Chrome; Safari, whose ClientHello is rewritten on its way out (its offered
    /// code points), inside a passthrough and inside TLS to the proxy.
    static let kindsAndProfiles = Kind.allCases.map { ($0, FingerprintProfile.chrome) } + [(.http, .safari), (.https, .safari)]

    @Test(arguments: kindsAndProfiles)
    func eachKindCarriesRequestsWithTheSameFingerprintAsDirect(kind: Kind, profile: FingerprintProfile) async throws {
        let origin = try Origin()
        try await origin.setTLSMode("h2")
        let ip = origin.ips[0]
        let direct = try origin.pool(try Self.configuration(origin, profile: profile))
        let directConnection = try await direct.getConnection(host: Origin.hostName, port: origin.port, ip: ip)
        #expect(try await directConnection.roundTrip(get()).head.status == .ok)
        direct.putConnection(directConnection)
        try await direct.close()
        let expected = try await Self.fingerprint(origin, ip: ip)
        #expect(try await origin.recentSources(ip: ip, last: 1) == [Self.localAddress])

        let (proxy, url) = try kind.start(origin)
        defer { proxy.stop() }
        let fds = openFDCount()
        let pool = try origin.pool(try Self.configuration(origin, proxies: [url], profile: profile))
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: ip)
        #expect(connection.proxy == (try Proxy(url)) && connection.httpVersion == .http2)
        for i in 0..<3 { #expect(try await connection.roundTrip(get("/through/\(i)")).head.status == .ok) }
        pool.putConnection(connection)
        // The origin sees the proxy, the proxy sees the pool's local address, and the target sees
        // the preset's ClientHello and HTTP/2 shape, as without a proxy.
        #expect(try await origin.recentSources(ip: ip, last: 1) == ["127.0.0.1"])
        #expect(proxy.log().contains(Self.localAddress), "the proxy saw the client's local address")
        let seen = try await Self.fingerprint(origin, ip: ip)
        #expect(seen.ja4 == expected.ja4 && seen.akamai == expected.akamai, "\(seen) through \(kind), \(expected) direct")
        let ledger = try #require(await pool.proxyStats().first)
        #expect(ledger.dials == 1 && ledger.failedDials == 0 && ledger.openConnections == 1 && ledger.inRotation)
        #expect(ledger.targets[ip] == ProxyTargetStats(requests: 3, failures: 0))
        #expect(!ledger.proxy.description.contains("s3cret"))
        try await pool.close()
        #expect(await proxy.sawTunnels(opened: 1, closed: 1), "\(proxy.log())")
        #expect(openFDCount() == fds)
    }

    /// socks5h: the proxy is sent the host's name and resolves it itself (Dante, from /etc/hosts):
    /// the pool's own address for the name, where nothing listens, is never connected to.
    @Test func socks5hHasTheProxyResolveTheName() async throws {
        let origin = try Origin(ips: ["127.0.0.1"], host: "localhost")
        let proxy = try Dante()
        defer { proxy.stop() }
        var config = try Self.configuration(origin, proxies: [proxy.hostnameURL])
        config.localAddresses = []
        let pool = try HotConnPool(configuration: config)
        pool.setAddresses(["127.0.0.9"], forHost: "localhost")
        let connection = try await pool.getConnection(host: "localhost", port: origin.port)
        #expect(try await connection.roundTrip(
            HTTPRequest(method: .get, scheme: "https", authority: "localhost", path: "/by-name")).head.status == .ok)
        pool.putConnection(connection)
        #expect(try await origin.recentPaths(last: 1) == ["/by-name"])
        try await pool.close()
        #expect(await proxy.sawTunnels(opened: 1, closed: 1))
    }

    /// Wrong or missing credentials: `proxyAuthenticationRequired`, charged to the proxy on every
    /// try, never to a target IP.
    @Test(arguments: [Kind.httpWithBasicAuth, .httpsWithBasicAuth, .socks5WithPassword], [true, false])
    func refusedCredentialsAreTheProxysFailure(kind: Kind, withWrongPassword: Bool) async throws {
        let origin = try Origin()
        let (proxy, url) = try kind.start(origin)
        defer { proxy.stop() }
        var proxyURL = try #require(URLComponents(string: url))
        if withWrongPassword { proxyURL.password = "wrong" } else { (proxyURL.user, proxyURL.password) = (nil, nil) }
        let fds = openFDCount()
        var config = try Self.configuration(origin, proxies: [try #require(proxyURL.string)])
        config.maxRetries = 1
        let pool = try origin.pool(config)
        do {
            _ = try await pool.getConnection(host: Origin.hostName, port: origin.port)
            Issue.record("a get through \(kind) with bad credentials succeeded")
        } catch let error as HotPoolError {
            // SOCKS5 without credentials offers no method Dante takes: no acceptable method.
            #expect(error.code == .proxyAuthenticationRequired, "\(error)")
            #expect(error.proxy == "\(try Proxy(url))" && error.host == Origin.hostName && origin.ips.contains(error.ip ?? ""))
            #expect(!error.description.contains("s3cret") && !error.description.contains("wrong"))
        }
        let ledger = try #require(await pool.proxyStats().first)
        #expect(ledger.dials == 2 && ledger.failedDials == 2 && ledger.openConnections == 0)
        #expect(await pool.ipStats(forHost: Origin.hostName).allSatisfy { $0.failures == 0 && $0.inRotation })
        #expect(await pool.stats().failedDials == 2)
        try await pool.close()
        #expect(openFDCount() == fds)
    }

    /// A proxy that refuses connections, and one that accepts and never answers: each dial fails
    /// for the proxy (`proxyConnectFailed`, a `proxyTunnel` timeout within `connectTimeout`).
    @Test func unreachableAndSilentProxiesFailTheDialNotTheIP() async throws {
        let origin = try Origin()
        let (closed, closedPort) = try loopbackSocket(SOCK_STREAM)
        Glibc.close(closed)  // nothing listens there now
        let (silent, silentPort) = try loopbackSocket(SOCK_STREAM)
        defer { Glibc.close(silent) }
        #expect(listen(silent, 16) == 0)  // connects complete in the backlog; nothing is ever read
        let fds = openFDCount()
        var config = try Self.configuration(origin)
        config.maxRetries = 0
        config.connectTimeout = .milliseconds(300)
        let pool = try origin.pool(config)
        let refused = try Proxy("http://127.0.0.1:\(closedPort)"), mute = try Proxy("socks5://127.0.0.1:\(silentPort)")
        await #expect(throws: HotPoolError.proxyConnectFailed(proxy: refused, host: Origin.hostName, ip: origin.ips[0],
                                                             reason: "connect to the proxy failed: Connection refused")) {
            _ = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0], proxy: refused)
        }
        await #expect(throws: HotPoolError.timeout(host: Origin.hostName, ip: origin.ips[1], phase: .proxyTunnel, proxy: mute)) {
            _ = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[1], proxy: mute)
        }
        #expect(await pool.proxyStats().map(\.failedDials) == [1, 1])
        #expect(await pool.ipStats(forHost: Origin.hostName).allSatisfy { $0.failures == 0 && $0.inRotation })
        try await pool.close()
        #expect(openFDCount() == fds)
    }

    /// Two proxies, sticky per IP: each IP's connections go through one proxy and are reused
    /// there; a dead proxy is ejected, its IPs' dials go through the other, no IP is charged.
    @Test func stickyPerIPThenADeadProxyIsEjected() async throws {
        let origin = try Origin()
        let (a, b) = (try TinyProxy(), try TinyProxy())
        defer { a.stop(); b.stop() }
        var config = try Self.configuration(origin, proxies: [a.url, b.url])
        config.proxySelection = .stickyPerIP
        config.consecutiveFailuresToEject = 1
        config.httpVersions = [.http1_1]
        let pool = try origin.pool(config)
        func holdSix() async throws -> [PooledConnection] {
            var held: [PooledConnection] = []
            for _ in 0..<6 { held.append(try await pool.getConnection(host: Origin.hostName, port: origin.port)) }
            return held
        }
        for round in 0..<2 {
            let held = try await holdSix()
            let proxiesByIP = Dictionary(grouping: held, by: \.targetIP).mapValues { Set($0.map { $0.proxy!.port }) }
            #expect(proxiesByIP.count == 3 && proxiesByIP.values.allSatisfy { $0.count == 1 }, "round \(round): \(proxiesByIP)")
            #expect(Set(proxiesByIP.values.map(\.first)) == [a.port, b.port], "both proxies carry IPs")
            held.forEach(pool.putConnection)
        }
        #expect(await pool.stats().connectionsOpened == 6, "the second round reused every connection")
        let deadIPs = Set(await pool.connectionStats().filter { $0.proxy?.port == a.port }.map(\.targetIP))
        a.kill()
        // Its tunnels are gone: the idle connections through it are destroyed, each once.
        #expect(await eventually { await pool.stats().totalConnections == 6 - 2 * deadIPs.count })
        let held = try await holdSix()
        #expect(held.allSatisfy { $0.proxy?.port == b.port })
        held.forEach(pool.putConnection)
        let ledger = await pool.proxyStats()
        let dead = try #require(ledger.first { $0.proxy.port == a.port })
        #expect(!dead.inRotation && dead.failedDials >= 1 && dead.openConnections == 0)
        #expect(ledger.first { $0.proxy.port == b.port }?.inRotation == true)
        #expect(await pool.blacklistedIPs(forHost: Origin.hostName).isEmpty)
        #expect(await pool.ipStats(forHost: Origin.hostName).allSatisfy { $0.failures == 0 })
        let stats = await pool.stats()
        #expect(stats.closedByReason.values.reduce(0, +) == 2 * deadIPs.count)
        try await pool.close()
        #expect(await b.sawTunnels(opened: b.tunnelsOpened(), closed: b.tunnelsOpened()))
    }

    /// A get pinned to a proxy gets only connections through it; unpinned gets never get those.
    @Test func aPinnedProxyKeepsItsOwnConnections() async throws {
        let origin = try Origin()
        let (listed, pinned) = (try TinyProxy(), try Dante())
        defer { listed.stop(); pinned.stop() }
        let pool = try origin.pool(try Self.configuration(origin, proxies: [listed.url]))
        let pin = try Proxy(pinned.url)
        let first = try await pool.getConnection(host: Origin.hostName, port: origin.port, proxy: pin)
        #expect(first.proxy == pin)
        pool.putConnection(first)
        let unpinned = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        #expect(unpinned.proxy == (try Proxy(listed.url)), "not the pinned proxy's idle connection")
        pool.putConnection(unpinned)
        let again = try await pool.getConnection(host: Origin.hostName, port: origin.port, proxy: pin)
        #expect(again.proxy == pin)
        pool.putConnection(again)
        #expect(await pool.stats().connectionsOpened == 2)
        try await pool.close()
    }

    /// `setProxies`: a host's own list replaces the pool's; idle connections off it close.
    @Test func setProxiesMovesAHostToItsOwnList() async throws {
        let origin = try Origin()
        let proxy = try TinyProxy()
        defer { proxy.stop() }
        let pool = try origin.pool(try Self.configuration(origin))
        let direct = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        #expect(direct.proxy == nil)
        pool.putConnection(direct)
        try pool.setProxies([try Proxy(proxy.url)], forHost: Origin.hostName)
        #expect(await eventually { await pool.stats().closedByReason[.proxyRemoved] == 1 })
        let proxied = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        #expect(proxied.proxy == (try Proxy(proxy.url)))
        pool.putConnection(proxied)
        try pool.setProxies([], forHost: Origin.hostName)
        #expect(await eventually { await pool.stats().closedByReason[.proxyRemoved] == 2 })
        #expect(try await pool.getConnection(host: Origin.hostName, port: origin.port).proxy == nil)
        #expect(throws: HotPoolError.invalidConfiguration("proxies: a proxy is listed twice")) {
            try pool.setProxies([try Proxy(proxy.url), try Proxy(proxy.url)], forHost: Origin.hostName)
        }
        try await pool.close()
    }

    /// A close from the target through the tunnel is a close, as without a proxy: a bare FIN
    /// (`remoteClosed`, not a TLS error), and a close_notify.
    @Test(arguments: [Kind.http, .https, .socks5], ["fin", "notify"])
    func theTargetsCloseThroughTheTunnelIsAClose(kind: Kind, mode: String) async throws {
        let origin = try Origin()
        let (proxy, url) = try kind.start(origin)
        defer { proxy.stop() }
        var config = try Self.configuration(origin, proxies: [url])
        config.httpVersions = [.http1_1]
        let pool = try origin.pool(config)
        pool.putConnection(try await pool.getConnection(host: Origin.hostName, port: origin.port))
        #expect(try await origin.closeIdle(ip: "*", mode: mode) == 1)
        #expect(await eventually { await pool.stats().totalConnections == 0 })
        let closed = await pool.stats().closedByReason.filter { $0.value > 0 }
        #expect(closed == [.remoteClosed: 1], "\(closed)")
        try await pool.close()
    }

    /// HTTP/2 through a tunnel: many streams at once on one tunnelled connection.
    @Test(arguments: [Kind.http, .https, .socks5])
    func http2StreamsShareOneTunnel(kind: Kind) async throws {
        let origin = try Origin()
        try await origin.setTLSMode("h2")
        let (proxy, url) = try kind.start(origin)
        defer { proxy.stop() }
        let pool = try origin.pool(try Self.configuration(origin, proxies: [url]))
        // One connection first: callers that all arrived before it would each dial their own.
        #expect(try await pool.execute(get(), host: Origin.hostName, port: origin.port).head.status == .ok)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<32 {
                group.addTask {
                    try await pool.execute(get("/stream/\(i)"), host: Origin.hostName, port: origin.port).head.status.code
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.count == 32 && statuses.allSatisfy { $0 == 200 })
        #expect(await pool.stats().connectionsOpened == 1)
        #expect(proxy.tunnelsOpened() == 1)
        try await pool.close()
        #expect(await proxy.sawTunnels(opened: 1, closed: 1))
    }

    /// The seed's destruction paths through a proxy: it drops the tunnel while the connection is
    /// idle, then while it is leased; the pool closes with tunnels open. Each connection destroyed
    /// once, counted once, its fd closed; the proxy sees the pool's closes.
    @Test(arguments: [Kind.http, .https, .socks5])
    func destructionThroughAProxy(kind: Kind) async throws {
        let origin = try Origin()
        let (proxy, url) = try kind.start(origin)
        defer { proxy.stop() }
        var config = try Self.configuration(origin, proxies: [url])
        config.httpVersions = [.http1_1]
        let fds = openFDCount()
        let pool = try origin.pool(config)
        let fdsWithThePool = openFDCount()
        // Idle: the proxy dies, the pool reads the close at once.
        pool.putConnection(try await pool.getConnection(host: Origin.hostName, port: origin.port))
        proxy.kill()
        #expect(await eventually { await pool.stats().totalConnections == 0 })
        var closed = await pool.stats().closedByReason
        #expect((closed[.remoteClosed] ?? 0) + (closed[.networkError] ?? 0) == 1, "\(closed)")
        #expect(await eventually { openFDCount() == fdsWithThePool }, "the connection's socket is closed")
        // Leased: a round trip after the proxy died fails; the put destroys the connection once.
        try proxy.restart()
        let leased = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        proxy.kill()
        await #expect(throws: HotPoolError.self) { _ = try await leased.roundTrip(get("/after-the-proxy-died")) }
        pool.putConnection(leased)
        closed = await pool.stats().closedByReason
        let leasedReasons: [CloseReason] = [.unhealthyOnReturn, .remoteClosed, .networkError]
        #expect(closed.values.reduce(0, +) == 2 && leasedReasons.reduce(0) { $0 + (closed[$1] ?? 0) } == 2, "\(closed)")
        // Close with tunnels open: each counted poolClosed, and the proxy sees each close.
        try proxy.restart()
        let (opened, closedBefore) = (proxy.tunnelsOpened(), proxy.tunnelsClosed())
        let held = [try await pool.getConnection(host: Origin.hostName, port: origin.port),
                    try await pool.getConnection(host: Origin.hostName, port: origin.port)]
        pool.putConnection(held[0])
        try await pool.close()
        #expect(await pool.stats().closedByReason[.poolClosed] == 2)
        #expect(await proxy.sawTunnels(opened: opened + 2, closed: closedBefore + 2), "\(proxy.log())")
        #expect(openFDCount() == fds)
    }
}
