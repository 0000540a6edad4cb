import AsyncHTTPClient
import Glibc
@_spi(Benchmarks) import HotPool
import MallocCounter
import NIOCore
import NIOPosix
import NIOSSL

/// Requests done in a timed run and the client CPU they took.
struct Load {
    var requestsPerSecond: Double
    /// Client CPU (user + system) per request, in microseconds.
    var cpuMicrosPerRequest: Double
    /// Heap allocations per request (every thread of this process); HotPool's loads only.
    var allocationsPerRequest = 0.0
    /// Work items that crossed to the reactor thread per request; HotPool's loads only.
    var hopsPerRequest = 0.0
    /// The I/O backend's system calls per request; HotPool's loads only.
    var systemCallsPerRequest = 0.0

    init(requests: Int, wallSeconds: Double, cpuSeconds: Double) {
        requestsPerSecond = Double(requests) / wallSeconds
        cpuMicrosPerRequest = cpuSeconds * 1e6 / Double(requests)
    }
}

/// How a HotPool load makes its requests.
enum HotPoolCaller: CaseIterable {
    /// Tasks on the global executor: `withConnection` + `roundTrip` (get, round trip and put are a hop each).
    case global
    /// Tasks on `pool.executor`: the same calls, made on the reactor thread.
    case executor
    /// Tasks on the global executor: `execute` (one hop per request).
    case execute

    /// The row name's prefix: "HotPool", then "io_uring" on that backend, then the caller.
    func label(_ backend: IOBackendChoice) -> String {
        let pool = backend == .ioUring ? "HotPool io_uring" : "HotPool"
        switch self {
        case .global: return pool
        case .executor: return pool + " executor"
        case .execute: return pool + " execute"
        }
    }
}

/// Keep-alive HTTPS GETs with `concurrency` connections against the same nginx: HotPool (each
/// caller on each backend), AsyncHTTPClient and wrk, one after the other in each run, so each
/// run's ratios compare clients under the same machine load. The in-process clients' CPU is this
/// process's rusage; wrk's is its own, from wait4. `goals` are applied to the ratios (the C = 16
/// targets), `ioUringGoals` to the io_uring rows (the C = 64 targets). wrk's system calls per
/// request come from one extra run under `strace -c -f`.
func throughput(
    _ options: Options, concurrency: Int, path: String, bodyBytes: Int, goals: Bool, ioUringGoals: Bool = false
) async throws -> [Metric] {
    let scenario = "throughput C=\(concurrency) \(path)"
    /// The rows of one HotPool caller on one backend: its figures and its ratios to the peers.
    struct Rows {
        let caller: HotPoolCaller, backend: IOBackendChoice
        var rate, cpu, allocations, hops, calls, wrkRate, ahcRate, wrkCPU, ahcCPU: Metric
        init(_ scenario: String, _ caller: HotPoolCaller, _ backend: IOBackendChoice, goals: Bool, ioUringGoals: Bool) {
            (self.caller, self.backend) = (caller, backend)
            let name = caller.label(backend)
            let ioUringTarget = ioUringGoals && backend == .ioUring && caller == .global
            let goals = goals && backend == .epoll
            rate = Metric(scenario, name, "req/s")
            cpu = Metric(scenario, "\(name) CPU", "µs/req")
            calls = Metric(scenario, "\(name) syscalls per req", "/req", goal: ioUringTarget ? .atMost(0.3) : nil)
            allocations = Metric(scenario, "\(name) allocations", "/req",
                                 goal: goals && caller == .executor ? .atMost(8) : nil)
            hops = Metric(scenario, "\(name) hops to the reactor", "/req",
                          goal: goals && caller == .execute ? .atMost(1) : nil)
            wrkRate = Metric(scenario, "\(name)/wrk req/s", "×", goal: goals && caller != .execute ? .atLeast(0.9) : nil)
            ahcRate = Metric(scenario, "\(name)/AsyncHTTPClient req/s", "×", goal: goals && caller != .execute ? .atLeast(3) : nil)
            wrkCPU = Metric(scenario, "\(name)/wrk CPU per req", "×",
                            goal: ioUringTarget ? .atMost(1.0)
                                : goals ? (caller == .executor ? .atMost(1.2) : caller == .execute ? .atMost(1.6) : nil) : nil)
            ahcCPU = Metric(scenario, "\(name)/AsyncHTTPClient CPU per req", "×")
        }
        mutating func add(_ ours: Load, wrk: Load, ahc: Load) {
            rate.samples.append(ours.requestsPerSecond)
            cpu.samples.append(ours.cpuMicrosPerRequest)
            allocations.samples.append(ours.allocationsPerRequest)
            hops.samples.append(ours.hopsPerRequest)
            calls.samples.append(ours.systemCallsPerRequest)
            wrkRate.samples.append(ours.requestsPerSecond / wrk.requestsPerSecond)
            ahcRate.samples.append(ours.requestsPerSecond / ahc.requestsPerSecond)
            wrkCPU.samples.append(ours.cpuMicrosPerRequest / wrk.cpuMicrosPerRequest)
            ahcCPU.samples.append(ours.cpuMicrosPerRequest / ahc.cpuMicrosPerRequest)
        }
    }
    var hotPool = backends.flatMap { backend in
        HotPoolCaller.allCases.map { Rows(scenario, $0, backend, goals: goals, ioUringGoals: ioUringGoals) }
    }
    var ahc = (rate: Metric(scenario, "AsyncHTTPClient", "req/s"), cpu: Metric(scenario, "AsyncHTTPClient CPU", "µs/req"))
    var wrk = (rate: Metric(scenario, "wrk", "req/s"), cpu: Metric(scenario, "wrk CPU", "µs/req"))
    var wrkCalls = Metric(scenario, "wrk syscalls per req", "/req")
    wrkCalls.samples = [try wrkSystemCallsPerRequest(options, concurrency: concurrency, path: path)]
    for _ in 0..<options.runs {
        var ours: [Load] = []
        for rows in hotPool {
            ours.append(try await hotPoolLoad(options, rows.caller, rows.backend, concurrency: concurrency, path: path,
                                              bodyBytes: bodyBytes))
        }
        let theirs = try await asyncHTTPClientLoad(options, concurrency: concurrency, path: path, bodyBytes: bodyBytes)
        let reference = try wrkLoad(options, concurrency: concurrency, path: path)
        for index in hotPool.indices { hotPool[index].add(ours[index], wrk: reference, ahc: theirs) }
        ahc.rate.samples.append(theirs.requestsPerSecond)
        ahc.cpu.samples.append(theirs.cpuMicrosPerRequest)
        wrk.rate.samples.append(reference.requestsPerSecond)
        wrk.cpu.samples.append(reference.cpuMicrosPerRequest)
    }
    return hotPool.map(\.rate) + [ahc.rate, wrk.rate] + hotPool.map(\.cpu) + [ahc.cpu, wrk.cpu]
        + hotPool.flatMap { [$0.wrkRate, $0.ahcRate, $0.wrkCPU, $0.ahcCPU] } + hotPool.flatMap { [$0.allocations, $0.hops] }
        + hotPool.map(\.calls) + [wrkCalls]
}

/// How long each client warms up (opens its connections) before a timed run.
private let warmUp = Duration.milliseconds(300)

/// HotPool: `concurrency` tasks on a fresh pool, each making requests in a loop as `caller` says.
/// With `http2`, the pool holds `http2.connections` connections to nginx's HTTP/2 port on its
/// first IP, each leased to at most `http2.streams` tasks at once, and the load fails unless
/// every connection spoke h2. With `proxy`, every connection goes through it, and the load fails
/// unless the proxy's ledger counts every dial and no failed one. With `acceptEncoding`, requests
/// carry it instead of the profile's (which asks for gzip, deflate, br and zstd, and has the body decoded).
func hotPoolLoad(
    _ options: Options, _ caller: HotPoolCaller, _ backend: IOBackendChoice, concurrency: Int, path: String, bodyBytes: Int,
    http2: (connections: Int, streams: Int)? = nil, profile: FingerprintProfile = .chrome, proxy: Proxy? = nil,
    acceptEncoding: String? = nil, reactors: Int = 1
) async throws -> Load {
    let pool = try options.makePool(
        connections: http2?.connections ?? concurrency, backend: backend, streams: http2?.streams, profile: profile,
        proxies: proxy.map { [$0] } ?? [], reactors: reactors)
    let port = http2 == nil ? options.port : options.http2Port
    let authority = port == 443 ? options.host : "\(options.host):\(port)"
    var asked = HTTPRequest(method: .get, scheme: "https", authority: authority, path: path)
    if let acceptEncoding { asked.headerFields[.acceptEncoding] = acceptEncoding }
    let request = asked
    let operation: @Sendable () async throws -> Void = switch caller {
    case .global, .executor: {
        try await pool.withConnection(host: options.host, port: port) { connection in
            let response = try await connection.roundTrip(request)
            try check(status: response.head.status.code, bodyBytes: response.body.count, expected: bodyBytes)
        }
    }
    case .execute: {
        let response = try await pool.execute(request, host: options.host, port: port)
        try check(status: response.head.status.code, bodyBytes: response.body.count, expected: bodyBytes)
    }
    }
    // On the executors, each reactor's share of the tasks runs on it.
    let executors: [any TaskExecutor] = caller == .executor ? pool.executors : []
    _ = try await closedLoop(concurrency: concurrency, duration: warmUp, executors: executors, operation)
    let calls0 = await pool.ioSystemCalls()
    let hops0 = await pool.inboundHops() ?? 0, allocations0 = mc_total_allocations()
    let (requests, span) = try await closedLoop(
        concurrency: concurrency, duration: .seconds(options.duration), executors: executors, operation)
    let allocations1 = mc_total_allocations()
    // The second read's own hops (one per reactor) are not counted in it; the first one's are.
    let hops = (await pool.inboundHops() ?? 0) - hops0 - reactors
    let calls = await pool.ioSystemCalls() - calls0
    if let http2 {
        let versions = await pool.connectionStats().map(\.httpVersion)
        guard versions.count <= http2.connections, versions.allSatisfy({ $0 == .http2 }) else {
            try await pool.close()
            throw BenchError.unexpected("expected at most \(http2.connections) HTTP/2 connections, had \(versions)")
        }
    }
    if let proxy {
        let opened = await pool.stats().connectionsOpened
        let ledger = await pool.proxyStats()
        guard ledger.count == 1, ledger[0].proxy == proxy, ledger[0].dials == opened, ledger[0].failedDials == 0 else {
            try await pool.close()
            throw BenchError.unexpected("\(opened) dials, but the proxy ledger says \(ledger.map { ($0.proxy.description, $0.dials, $0.failedDials) })")
        }
    }
    try await pool.close()
    var load = Load(requests: requests, wallSeconds: span.wallSeconds, cpuSeconds: span.cpuSeconds)
    load.allocationsPerRequest = Double(allocations1 - allocations0) / Double(requests)
    load.hopsPerRequest = Double(hops) / Double(requests)
    load.systemCallsPerRequest = Double(calls) / Double(requests)
    return load
}

/// AsyncHTTPClient: its own pool, trusting the test CA, and `concurrency` tasks each doing
/// execute + collect in a loop: over `concurrency` HTTP/1.1 connections, or with `http2` over
/// HTTP/2 to nginx's `http2` port (ALPN picks it; the load fails if a response came over HTTP/1.1).
/// With `proxy`, every connection goes through it (`configuration.proxy`); without
/// `checksHostname`, the certificate's chain is checked but not its names (see `proxyThroughput`).
/// With `decompresses`, it asks for gzip and deflate and decodes the body (its `decompression`).
/// With `eventLoops`, it runs on a group of that many event loops of its own (else NIO's singleton).
func asyncHTTPClientLoad(
    _ options: Options, concurrency: Int, path: String, bodyBytes: Int, http2: Bool = false,
    proxy: HTTPClient.Configuration.Proxy? = nil, checksHostname: Bool = true, decompresses: Bool = false,
    eventLoops: Int? = nil
) async throws -> Load {
    var tls = TLSConfiguration.makeClientConfiguration()
    tls.trustRoots = .file(options.caFile)
    if !checksHostname { tls.certificateVerification = .noHostnameVerification }
    var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
    configuration.proxy = proxy
    configuration.httpVersion = http2 ? .automatic : .http1Only
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = concurrency
    if decompresses { configuration.decompression = .enabled(limit: .none) }
    let group = eventLoops.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
    let client = HTTPClient(eventLoopGroupProvider: group.map { .shared($0) } ?? .singleton, configuration: configuration)
    var asked = HTTPClientRequest(url: http2 ? "https://\(options.ips[0]):\(options.http2Port)\(path)" : options.url(path))
    if decompresses { asked.headers.add(name: "Accept-Encoding", value: "gzip, deflate") }
    let request = asked
    let operation: @Sendable () async throws -> Void = {
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.version.major == (http2 ? 2 : 1) else {
            throw BenchError.unexpected("AsyncHTTPClient spoke HTTP/\(response.version.major)")
        }
        try check(status: Int(response.status.code), bodyBytes: body.readableBytes, expected: bodyBytes)
    }
    do {
        _ = try await closedLoop(concurrency: concurrency, duration: warmUp, operation)
        let (requests, span) = try await closedLoop(concurrency: concurrency, duration: .seconds(options.duration), operation)
        try await client.shutdown()
        try await group?.shutdownGracefully()
        return Load(requests: requests, wallSeconds: span.wallSeconds, cpuSeconds: span.cpuSeconds)
    } catch {
        try? await client.shutdown()
        try? await group?.shutdownGracefully()
        throw error
    }
}

/// wrk with `threads` threads (default one per core, at most one per connection), as a child
/// process, sending `headers`.
func wrkLoad(_ options: Options, concurrency: Int, path: String, headers: [String] = [], threads: Int? = nil) throws -> Load {
    let threads = threads ?? min(concurrency, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    let command = ["wrk", "-t\(threads)", "-c\(concurrency)", "-d\(options.duration)s"] + headers.flatMap { ["-H", $0] }
        + [options.url(path)]
    let run = try runChild(command)
    guard run.exitCode == 0 else { throw BenchError.childFailed(command.joined(separator: " "), run.exitCode, run.output) }
    // "  123456 requests in 5.00s, 80.00MB read" and "Requests/sec: 24691.20".
    let lines = run.output.split(separator: "\n")
    guard let total = lines.first(where: { $0.contains(" requests in ") })?.split(separator: " ").first.flatMap({ Int($0) }),
        let rate = lines.first(where: { $0.hasPrefix("Requests/sec:") })?.split(separator: " ").last.flatMap({ Double($0) }),
        total > 0
    else { throw BenchError.unexpected("cannot read wrk's output:\n\(run.output)") }
    if run.output.contains("Non-2xx") || run.output.contains("Socket errors") {
        throw BenchError.badResponse("wrk saw errors:\n\(run.output)")
    }
    return Load(requests: total, wallSeconds: Double(total) / rate, cpuSeconds: run.cpuSeconds)
}

/// wrk's system calls per request: one short run under `strace -c -f` (its CPU and rate are not
/// used: strace slows it), the total of strace's summary over the requests wrk reports.
private func wrkSystemCallsPerRequest(_ options: Options, concurrency: Int, path: String) throws -> Double {
    let threads = min(concurrency, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    let command = ["strace", "-c", "-f", "wrk", "-t\(threads)", "-c\(concurrency)", "-d\(min(options.duration, 2))s",
                   options.url(path)]
    let run = try runChild(command)
    guard run.exitCode == 0 else { throw BenchError.childFailed(command.joined(separator: " "), run.exitCode, run.output) }
    // wrk's "  123456 requests in 2.00s, ..." and strace's last line "100.00 0.123 1 456789 12 total".
    let lines = run.output.split(separator: "\n")
    guard let requests = lines.first(where: { $0.contains(" requests in ") })?.split(separator: " ").first.flatMap({ Int($0) }),
        let totals = lines.last(where: { $0.hasSuffix(" total") })?.split(separator: " "), totals.count >= 5,
        let calls = Int(totals[3]), requests > 0
    else { throw BenchError.unexpected("cannot read strace's or wrk's output:\n\(run.output)") }
    return Double(calls) / Double(requests)
}

/// Fails the run unless the answer is a 200 with the whole body.
func check(status: Int, bodyBytes: Int, expected: Int) throws {
    guard status == 200, bodyBytes == expected else {
        throw BenchError.badResponse("status \(status), \(bodyBytes) body bytes, expected 200 and \(expected)")
    }
}
