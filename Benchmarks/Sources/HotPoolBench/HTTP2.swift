import HotPool

/// HTTP/2 keep-alive GETs against nginx's `http2` port: `connections` connections carrying up to
/// `streams` requests each at once (`connections × streams` callers in a closed loop), for
/// HotPool (its three callers on epoll, the executor on io_uring), AsyncHTTPClient (HTTP/2, its
/// own connection count) and h2load (`-c connections -m streams`, one thread), one after the
/// other in each run. The targets apply to HotPool on its executor (epoll).
func http2Throughput(_ options: Options, connections: Int, streams: Int, path: String, bodyBytes: Int) async throws -> [Metric] {
    let scenario = "HTTP/2 C=\(connections)×\(streams) \(path)"
    let concurrency = connections * streams
    let loads: [(caller: HotPoolCaller, backend: IOBackendChoice)] = [(.executor, .epoll), (.global, .epoll), (.execute, .epoll),
                                                                        (.executor, .ioUring)]
    struct Rows {
        var rate, cpu, h2loadCPU, ahcRate, calls: Metric
    }
    var rows = loads.map { load in
        let name = load.caller.label(load.backend)
        let target = load.caller == .executor && load.backend == .epoll
        return Rows(rate: Metric(scenario, name, "req/s"), cpu: Metric(scenario, "\(name) CPU", "µs/req"),
                    h2loadCPU: Metric(scenario, "\(name)/h2load CPU per req", "×", goal: target ? .atMost(1.2) : nil),
                    ahcRate: Metric(scenario, "\(name)/AsyncHTTPClient req/s", "×", goal: target ? .atLeast(3) : nil),
                    calls: Metric(scenario, "\(name) syscalls per req", "/req"))
    }
    var ahc = (rate: Metric(scenario, "AsyncHTTPClient", "req/s"), cpu: Metric(scenario, "AsyncHTTPClient CPU", "µs/req"))
    var h2load = (rate: Metric(scenario, "h2load", "req/s"), cpu: Metric(scenario, "h2load CPU", "µs/req"))
    for _ in 0..<options.runs {
        var ours: [Load] = []
        for load in loads {
            ours.append(try await hotPoolLoad(options, load.caller, load.backend, concurrency: concurrency, path: path,
                                              bodyBytes: bodyBytes, http2: (connections, streams)))
        }
        let theirs = try await asyncHTTPClientLoad(options, concurrency: concurrency, path: path, bodyBytes: bodyBytes, http2: true)
        let reference = try h2loadLoad(options, connections: connections, streams: streams, path: path)
        for index in rows.indices {
            rows[index].rate.samples.append(ours[index].requestsPerSecond)
            rows[index].cpu.samples.append(ours[index].cpuMicrosPerRequest)
            rows[index].h2loadCPU.samples.append(ours[index].cpuMicrosPerRequest / reference.cpuMicrosPerRequest)
            rows[index].ahcRate.samples.append(ours[index].requestsPerSecond / theirs.requestsPerSecond)
            rows[index].calls.samples.append(ours[index].systemCallsPerRequest)
        }
        ahc.rate.samples.append(theirs.requestsPerSecond)
        ahc.cpu.samples.append(theirs.cpuMicrosPerRequest)
        h2load.rate.samples.append(reference.requestsPerSecond)
        h2load.cpu.samples.append(reference.cpuMicrosPerRequest)
    }
    return rows.map(\.rate) + [ahc.rate, h2load.rate] + rows.map(\.cpu) + [ahc.cpu, h2load.cpu]
        + rows.flatMap { [$0.h2loadCPU, $0.ahcRate] } + rows.map(\.calls)
}

/// h2load (nghttp2's load tool), `threads` threads, `connections` clients with `streams` streams
/// each, as a child process; its CPU from wait4.
func h2loadLoad(_ options: Options, connections: Int, streams: Int, path: String, threads: Int = 1) throws -> Load {
    let command = ["h2load", "-t\(threads)", "-c\(connections)", "-m\(streams)", "-D\(options.duration)", "--warm-up-time=300ms",
                   "https://\(options.ips[0]):\(options.http2Port)\(path)"]
    let run = try runChild(command)
    guard run.exitCode == 0 else { throw BenchError.childFailed(command.joined(separator: " "), run.exitCode, run.output) }
    // "finished in 5.00s, 61234.20 req/s, 17.01MB/s" and "requests: 306171 total, ... 306171 succeeded, 0 failed, ...".
    let lines = run.output.split(separator: "\n")
    guard let finished = lines.first(where: { $0.hasPrefix("finished in ") })?.split(separator: " "), finished.count >= 4,
          let rate = Double(finished[3]),
          let counts = lines.first(where: { $0.hasPrefix("requests: ") })?.split(separator: " "), counts.count >= 11,
          let succeeded = Int(counts[7]), let failed = Int(counts[9]), succeeded > 0
    else { throw BenchError.unexpected("cannot read h2load's output:\n\(run.output)") }
    guard failed == 0, run.output.contains("Application protocol: h2") else {
        throw BenchError.badResponse("h2load failed requests or did not speak h2:\n\(run.output)")
    }
    return Load(requests: succeeded, wallSeconds: Double(succeeded) / rate, cpuSeconds: run.cpuSeconds)
}
