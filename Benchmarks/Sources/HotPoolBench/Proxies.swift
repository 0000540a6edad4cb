import AsyncHTTPClient
import HotPool
import NIOCore
import NIOSSL

/// A way out of the client for the proxy rows: directly, or through one of the local proxies
/// run.sh starts, with the name its rows carry.
private struct Route {
    /// "direct", or "via tinyproxy (http)" and the like.
    let name: String
    let proxy: Proxy?

    static let direct = Route(name: "direct", proxy: nil)

    /// The servers behind each kind, as run.sh starts them.
    static func via(_ proxy: Proxy) -> Route {
        let server = switch proxy.kind {
        case .http: "tinyproxy"
        case .socks5, .socks5h: "Dante"
        case .https: "Squid"
        }
        return Route(name: "via \(server) (\(proxy.kind.rawValue))", proxy: proxy)
    }

    /// True if AsyncHTTPClient can take the route: directly, HTTP CONNECT over TCP and SOCKS5 (it
    /// has no CONNECT inside TLS, and sends SOCKS5 an IP as `socks5://` does).
    var asyncHTTPClientTakes: Bool { proxy.map { $0.kind == .http || $0.kind == .socks5 } ?? true }

    /// The route for AsyncHTTPClient (nil: directly).
    var asyncHTTPClientProxy: HTTPClient.Configuration.Proxy? {
        guard let proxy else { return nil }
        return proxy.kind == .http ? .server(host: proxy.host, port: proxy.port) : .socksServer(host: proxy.host, port: proxy.port)
    }
}

/// Keep-alive GETs through tinyproxy next to the same GETs direct: HotPool (from the global
/// executor and on the pool's executor, epoll) and AsyncHTTPClient, each direct and through
/// `options.httpProxy`, one load after the other in each run against the same nginx. Each
/// HotPool row gets its ratios to AsyncHTTPClient on the same route, and each client its
/// proxied ÷ direct ratios. tinyproxy's CPU is on the same two cores and counted in no client's
/// CPU: the rates show what it takes, the CPU per request what the client spends.
/// AsyncHTTPClient checks nginx's certificate chain on both routes but not its names: asked for
/// an IP literal through a proxy, it looks for the proxy's IP in the certificate (NIOSSL checks a
/// nameless connection against the socket's peer, which is the proxy), so it could not connect.
func proxyThroughput(_ options: Options, concurrency: Int, path: String, bodyBytes: Int) async throws -> [Metric] {
    guard let proxy = options.httpProxy else { return [] }
    let scenario = "proxy throughput C=\(concurrency) \(path)"
    let routes = [Route.direct, Route.via(proxy)]
    let callers: [HotPoolCaller] = [.global, .executor]
    /// One client's rows on both routes; `index` is (client, route).
    struct Figures {
        var rate: [Metric], cpu: [Metric]
    }
    let clients = callers.map { $0.label(.epoll) } + ["AsyncHTTPClient"]
    var figures = clients.map { client in
        Figures(rate: routes.map { Metric(scenario, "\(client) \($0.name)", "req/s") },
                cpu: routes.map { Metric(scenario, "\(client) \($0.name) CPU", "µs/req") })
    }
    let proxied = routes[1].name
    var viaRate = clients.map { Metric(scenario, "\($0) \(proxied)/direct req/s", "×") }
    var viaCPU = clients.map { Metric(scenario, "\($0) \(proxied)/direct CPU per req", "×") }
    var peerRate = callers.map { caller in
        routes.map { Metric(scenario, "\(caller.label(.epoll)) \($0.name)/AsyncHTTPClient \($0.name) req/s", "×") }
    }
    var peerCPU = callers.map { caller in
        routes.map { Metric(scenario, "\(caller.label(.epoll)) \($0.name)/AsyncHTTPClient \($0.name) CPU per req", "×") }
    }
    for _ in 0..<options.runs {
        var loads: [[Load]] = []  // [client][route]
        for caller in callers {
            var byRoute: [Load] = []
            for route in routes {
                byRoute.append(try await hotPoolLoad(options, caller, .epoll, concurrency: concurrency, path: path,
                                                     bodyBytes: bodyBytes, proxy: route.proxy))
            }
            loads.append(byRoute)
        }
        var byRoute: [Load] = []
        for route in routes {
            byRoute.append(try await asyncHTTPClientLoad(options, concurrency: concurrency, path: path, bodyBytes: bodyBytes,
                                                         proxy: route.asyncHTTPClientProxy, checksHostname: false))
        }
        loads.append(byRoute)
        for client in clients.indices {
            for route in routes.indices {
                figures[client].rate[route].samples.append(loads[client][route].requestsPerSecond)
                figures[client].cpu[route].samples.append(loads[client][route].cpuMicrosPerRequest)
            }
            viaRate[client].samples.append(loads[client][1].requestsPerSecond / loads[client][0].requestsPerSecond)
            viaCPU[client].samples.append(loads[client][1].cpuMicrosPerRequest / loads[client][0].cpuMicrosPerRequest)
        }
        let peer = loads[clients.count - 1]
        for caller in callers.indices {
            for route in routes.indices {
                peerRate[caller][route].samples.append(loads[caller][route].requestsPerSecond / peer[route].requestsPerSecond)
                peerCPU[caller][route].samples.append(loads[caller][route].cpuMicrosPerRequest / peer[route].cpuMicrosPerRequest)
            }
        }
    }
    var metrics: [Metric] = figures.flatMap(\.rate)
    metrics += figures.flatMap(\.cpu)
    metrics += viaRate
    metrics += viaCPU
    for (rates, cpus) in zip(peerRate, peerCPU) {
        for (rate, cpu) in zip(rates, cpus) { metrics += [rate, cpu] }
    }
    return metrics
}

/// What each new connection of the dial rows GETs.
private let dialPage = "/256"
/// Dials before each timed run, not counted (the first dial of a client sets things up).
private let warmUpDials = 3

/// New connections, one at a time, each answering one GET of /256 and closed, directly and
/// through each local proxy given: HotPool (BoringSSL, the `chrome` preset, session resumption
/// off, so every dial is a full handshake; `getConnection` + `roundTrip` + `removeConnection`,
/// so every get dials, which the harness checks, and the proxy's ledger must count every dial and
/// no failed one) and AsyncHTTPClient where it has the route (HTTP CONNECT and SOCKS5; one use
/// per connection and `Connection: close`, so nginx closes each after its answer; NIOSSL resumes
/// no session). Per route: dials per second, client CPU per dial, its ratios to the same
/// client's direct dial of the same run, and HotPool's ratios to AsyncHTTPClient on the route.
func proxyDials(_ options: Options) async throws -> [Metric] {
    let proxies = [options.httpProxy, options.socks5Proxy, options.httpsProxy].compactMap { $0 }
    guard !proxies.isEmpty else { return [] }
    let scenario = "proxy dials, sequential"
    let routes = [Route.direct] + proxies.map(Route.via)
    let peerRoutes = routes.filter(\.asyncHTTPClientTakes)
    let clients: [(name: String, routes: [Route])] = [("HotPool", routes), ("AsyncHTTPClient", peerRoutes)]
    var rates = clients.map { client in client.routes.map { Metric(scenario, "\(client.name) dial \($0.name)", "conn/s") } }
    var cpus = clients.map { client in client.routes.map { Metric(scenario, "\(client.name) dial \($0.name) CPU", "µs/conn") } }
    var directRate = clients.map { client in
        client.routes.dropFirst().map { Metric(scenario, "\(client.name) dial \($0.name)/direct conn/s", "×") }
    }
    var directCPU = clients.map { client in
        client.routes.dropFirst().map { Metric(scenario, "\(client.name) dial \($0.name)/direct CPU per conn", "×") }
    }
    var peerRate = peerRoutes.map { Metric(scenario, "HotPool dial \($0.name)/AsyncHTTPClient's conn/s", "×") }
    var peerCPU = peerRoutes.map { Metric(scenario, "HotPool dial \($0.name)/AsyncHTTPClient's CPU per conn", "×") }
    for _ in 0..<options.runs {
        var ours: [(rate: Double, cpu: Double)] = [], theirs: [(rate: Double, cpu: Double)] = []
        for route in routes { ours.append(try await hotPoolDials(options, route)) }
        for route in peerRoutes { theirs.append(try await asyncHTTPClientDials(options, route)) }
        let runs = [ours, theirs]  // as `clients`
        for client in clients.indices {
            for route in clients[client].routes.indices {
                rates[client][route].samples.append(runs[client][route].rate)
                cpus[client][route].samples.append(runs[client][route].cpu)
                if route > 0 {
                    directRate[client][route - 1].samples.append(runs[client][route].rate / runs[client][0].rate)
                    directCPU[client][route - 1].samples.append(runs[client][route].cpu / runs[client][0].cpu)
                }
            }
        }
        for (index, route) in peerRoutes.enumerated() {
            let ours = runs[0][routes.firstIndex { $0.name == route.name }!]
            peerRate[index].samples.append(ours.rate / runs[1][index].rate)
            peerCPU[index].samples.append(ours.cpu / runs[1][index].cpu)
        }
    }
    var metrics: [Metric] = rates.flatMap { $0 }
    metrics += cpus.flatMap { $0 }
    metrics += directRate.flatMap { $0 }
    metrics += directCPU.flatMap { $0 }
    for (rate, cpu) in zip(peerRate, peerCPU) { metrics += [rate, cpu] }
    return metrics
}

/// One timed run of HotPool's dials on `route`: connections per second and client CPU per connection.
private func hotPoolDials(_ options: Options, _ route: Route) async throws -> (rate: Double, cpu: Double) {
    var spec = FingerprintSpec.chrome
    spec.resumesSessions = false
    let pool = try options.makePool(connections: 1, profile: .custom(spec), proxies: route.proxy.map { [$0] } ?? [])
    let request = HTTPRequest(method: .get, scheme: "https", authority: options.authority, path: dialPage)
    let dial: @Sendable () async throws -> Void = {
        let connection = try await pool.getConnection(host: options.host, port: options.port)
        let response = try await connection.roundTrip(request)
        pool.removeConnection(connection)
        try check(status: response.head.status.code, bodyBytes: response.body.count, expected: 256)
    }
    do {
        for _ in 0..<warmUpDials { try await dial() }
        let (connections, span) = try await closedLoop(concurrency: 1, duration: .seconds(options.duration), dial)
        let stats = await pool.stats()
        let ledger = await pool.proxyStats()
        let total = connections + warmUpDials
        guard stats.connectionsOpened == total, stats.resumedHandshakes == 0 else {
            throw BenchError.unexpected(
                "HotPool dial \(route.name): \(total) gets, \(stats.connectionsOpened) dials, \(stats.resumedHandshakes) resumed")
        }
        if let proxy = route.proxy {
            guard ledger.count == 1, ledger[0].proxy == proxy, ledger[0].dials == total, ledger[0].failedDials == 0 else {
                throw BenchError.unexpected("HotPool dial \(route.name): \(total) dials, the proxy ledger says "
                    + "\(ledger.map { ($0.proxy.description, $0.dials, $0.failedDials) })")
            }
        }
        try await pool.close()
        return (Double(connections) / span.wallSeconds, span.cpuSeconds * 1e6 / Double(connections))
    } catch {
        try? await pool.close()
        throw error
    }
}

/// One timed run of AsyncHTTPClient's dials on `route`: a fresh client whose connections take
/// one request each, asking nginx to close them too.
private func asyncHTTPClientDials(_ options: Options, _ route: Route) async throws -> (rate: Double, cpu: Double) {
    var tls = TLSConfiguration.makeClientConfiguration()
    tls.trustRoots = .file(options.caFile)
    tls.certificateVerification = .noHostnameVerification  // see `proxyThroughput`
    var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
    configuration.httpVersion = .http1Only
    configuration.proxy = route.asyncHTTPClientProxy
    configuration.maximumUsesPerConnection = 1
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 1
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    let request = {
        var request = HTTPClientRequest(url: options.url(dialPage))
        request.headers.add(name: "connection", value: "close")
        return request
    }()
    let dial: @Sendable () async throws -> Void = {
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        try check(status: Int(response.status.code), bodyBytes: body.readableBytes, expected: 256)
    }
    do {
        for _ in 0..<warmUpDials { try await dial() }
        let (connections, span) = try await closedLoop(concurrency: 1, duration: .seconds(options.duration), dial)
        try await client.shutdown()
        return (Double(connections) / span.wallSeconds, span.cpuSeconds * 1e6 / Double(connections))
    } catch {
        try? await client.shutdown()
        throw error
    }
}
