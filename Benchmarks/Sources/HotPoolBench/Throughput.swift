import AsyncHTTPClient
import Glibc
import HotPool
import NIOCore
import NIOSSL

/// Requests done in a timed run and the client CPU they took.
struct Load {
    var requestsPerSecond: Double
    /// Client CPU (user + system) per request, in microseconds.
    var cpuMicrosPerRequest: Double

    init(requests: Int, wallSeconds: Double, cpuSeconds: Double) {
        requestsPerSecond = Double(requests) / wallSeconds
        cpuMicrosPerRequest = cpuSeconds * 1e6 / Double(requests)
    }
}

/// Keep-alive HTTPS GETs with `concurrency` connections against the same nginx: HotPool,
/// AsyncHTTPClient and wrk, one after the other in each run, so each run's ratios compare
/// clients under the same machine load. The in-process clients' CPU is this process's rusage;
/// wrk's is its own, from wait4. `goals` are applied to the ratios (the C = 16 targets).
func throughput(_ options: Options, concurrency: Int, path: String, bodyBytes: Int, goals: Bool) async throws -> [Metric] {
    let scenario = "throughput C=\(concurrency) \(path)"
    var hotPool = (rate: Metric(scenario, "HotPool", "req/s"), cpu: Metric(scenario, "HotPool CPU", "µs/req"))
    var ahc = (rate: Metric(scenario, "AsyncHTTPClient", "req/s"), cpu: Metric(scenario, "AsyncHTTPClient CPU", "µs/req"))
    var wrk = (rate: Metric(scenario, "wrk", "req/s"), cpu: Metric(scenario, "wrk CPU", "µs/req"))
    var ratios = (
        wrkRate: Metric(scenario, "HotPool/wrk req/s", "×", goal: goals ? .atLeast(0.9) : nil),
        ahcRate: Metric(scenario, "HotPool/AsyncHTTPClient req/s", "×", goal: goals ? .atLeast(3) : nil),
        wrkCPU: Metric(scenario, "HotPool/wrk CPU per req", "×"),
        ahcCPU: Metric(scenario, "HotPool/AsyncHTTPClient CPU per req", "×"))
    for _ in 0..<options.runs {
        let ours = try await hotPoolLoad(options, concurrency: concurrency, path: path, bodyBytes: bodyBytes)
        let theirs = try await asyncHTTPClientLoad(options, concurrency: concurrency, path: path, bodyBytes: bodyBytes)
        let reference = try wrkLoad(options, concurrency: concurrency, path: path)
        hotPool.rate.samples.append(ours.requestsPerSecond)
        hotPool.cpu.samples.append(ours.cpuMicrosPerRequest)
        ahc.rate.samples.append(theirs.requestsPerSecond)
        ahc.cpu.samples.append(theirs.cpuMicrosPerRequest)
        wrk.rate.samples.append(reference.requestsPerSecond)
        wrk.cpu.samples.append(reference.cpuMicrosPerRequest)
        ratios.wrkRate.samples.append(ours.requestsPerSecond / reference.requestsPerSecond)
        ratios.ahcRate.samples.append(ours.requestsPerSecond / theirs.requestsPerSecond)
        ratios.wrkCPU.samples.append(ours.cpuMicrosPerRequest / reference.cpuMicrosPerRequest)
        ratios.ahcCPU.samples.append(ours.cpuMicrosPerRequest / theirs.cpuMicrosPerRequest)
    }
    return [hotPool.rate, ahc.rate, wrk.rate, hotPool.cpu, ahc.cpu, wrk.cpu,
            ratios.wrkRate, ratios.ahcRate, ratios.wrkCPU, ratios.ahcCPU]
}

/// How long each client warms up (opens its connections) before a timed run.
private let warmUp = Duration.milliseconds(300)

/// HotPool: `concurrency` tasks, each doing withConnection + roundTrip in a loop, on a fresh pool.
private func hotPoolLoad(_ options: Options, concurrency: Int, path: String, bodyBytes: Int) async throws -> Load {
    let pool = try options.makePool(connections: concurrency)
    let request = HTTPRequest(method: .get, scheme: "https", authority: options.authority, path: path)
    let operation: @Sendable () async throws -> Void = {
        try await pool.withConnection(host: options.host, port: options.port) { connection in
            let response = try await connection.roundTrip(request)
            try check(status: response.head.status.code, bodyBytes: response.body.count, expected: bodyBytes)
        }
    }
    _ = try await closedLoop(concurrency: concurrency, duration: warmUp, operation)
    let (requests, span) = try await closedLoop(concurrency: concurrency, duration: .seconds(options.duration), operation)
    try await pool.close()
    return Load(requests: requests, wallSeconds: span.wallSeconds, cpuSeconds: span.cpuSeconds)
}

/// AsyncHTTPClient: its own pool with `concurrency` HTTP/1.1 connections per host, trusting the
/// test CA, and `concurrency` tasks each doing execute + collect in a loop.
private func asyncHTTPClientLoad(_ options: Options, concurrency: Int, path: String, bodyBytes: Int) async throws -> Load {
    var tls = TLSConfiguration.makeClientConfiguration()
    tls.trustRoots = .file(options.caFile)
    var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
    configuration.httpVersion = .http1Only
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = concurrency
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    let request = HTTPClientRequest(url: options.url(path))
    let operation: @Sendable () async throws -> Void = {
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        try check(status: Int(response.status.code), bodyBytes: body.readableBytes, expected: bodyBytes)
    }
    do {
        _ = try await closedLoop(concurrency: concurrency, duration: warmUp, operation)
        let (requests, span) = try await closedLoop(concurrency: concurrency, duration: .seconds(options.duration), operation)
        try await client.shutdown()
        return Load(requests: requests, wallSeconds: span.wallSeconds, cpuSeconds: span.cpuSeconds)
    } catch {
        try? await client.shutdown()
        throw error
    }
}

/// wrk with one thread per core (at most one per connection), as a child process.
private func wrkLoad(_ options: Options, concurrency: Int, path: String) throws -> Load {
    let threads = min(concurrency, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    let command = ["wrk", "-t\(threads)", "-c\(concurrency)", "-d\(options.duration)s", options.url(path)]
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

/// Fails the run unless the answer is a 200 with the whole body.
private func check(status: Int, bodyBytes: Int, expected: Int) throws {
    guard status == 200, bodyBytes == expected else {
        throw BenchError.badResponse("status \(status), \(bodyBytes) body bytes, expected 200 and \(expected)")
    }
}
