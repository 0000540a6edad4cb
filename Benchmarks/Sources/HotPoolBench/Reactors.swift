@_spi(Benchmarks) import HotPool

/// One reactor against two, beside the peers on one thread and on two: HTTP/1.1 C=64 (wrk -t1/-t2,
/// AsyncHTTPClient on 1 and 2 event loops) and HTTP/2 C=4×16 (h2load -t1/-t2, AsyncHTTPClient
/// the same), the pool's tasks on `pool.executors`, every client one after the other in each run.
/// On a machine whose cores nginx shares, throughput cannot double: the targets are that two
/// reactors cost no more client CPU per request than one (≤ 1.05×) and serve at least as many
/// requests a second. Then the CPU-bound part alone, with no server in the loop
/// (`cpuBoundScaling`).
func reactorScaling(_ options: Options) async throws -> [Metric] {
    var metrics: [Metric] = []
    for http2 in [false, true] {
        let scenario = http2 ? "reactors HTTP/2 C=4×16 /256" : "reactors C=64 /256"
        let peer = http2 ? "h2load" : "wrk"
        var rows: [String: (rate: Metric, cpu: Metric)] = [:]
        let names = ["HotPool executors, 1 reactor", "HotPool executors, 2 reactors", "AsyncHTTPClient 1 loop",
                     "AsyncHTTPClient 2 loops", "\(peer) -t1", "\(peer) -t2"]
        for name in names { rows[name] = (Metric(scenario, name, "req/s"), Metric(scenario, "\(name) CPU", "µs/req")) }
        var cpuRatio = Metric(scenario, "HotPool 2 reactors/1 reactor CPU per req", "×", goal: .atMost(1.05))
        var rateRatio = Metric(scenario, "HotPool 2 reactors/1 reactor req/s", "×", goal: .atLeast(1.0))
        var peerRatio = Metric(scenario, "\(peer) -t2/-t1 req/s", "×")
        var peerCPURatio = Metric(scenario, "\(peer) -t2/-t1 CPU per req", "×")
        var ahcRatio = Metric(scenario, "AsyncHTTPClient 2 loops/1 loop req/s", "×")
        var peerShare = Metric(scenario, "HotPool 2 reactors/\(peer) -t2 req/s", "×")
        for _ in 0..<options.runs {
            var loads: [String: Load] = [:]
            for reactors in [1, 2] {
                loads[names[reactors - 1]] = try await hotPoolLoad(
                    options, .executor, .epoll, concurrency: 64, path: "/256", bodyBytes: 256,
                    http2: http2 ? (4, 16) : nil, reactors: reactors)
                loads[names[reactors + 1]] = try await asyncHTTPClientLoad(
                    options, concurrency: 64, path: "/256", bodyBytes: 256, http2: http2, eventLoops: reactors)
                loads[names[reactors + 3]] = http2
                    ? try h2loadLoad(options, connections: 4, streams: 16, path: "/256", threads: reactors)
                    : try wrkLoad(options, concurrency: 64, path: "/256", threads: reactors)
            }
            for (name, load) in loads {
                rows[name]!.rate.samples.append(load.requestsPerSecond)
                rows[name]!.cpu.samples.append(load.cpuMicrosPerRequest)
            }
            let (one, two) = (loads[names[0]]!, loads[names[1]]!)
            cpuRatio.samples.append(two.cpuMicrosPerRequest / one.cpuMicrosPerRequest)
            rateRatio.samples.append(two.requestsPerSecond / one.requestsPerSecond)
            peerRatio.samples.append(loads[names[5]]!.requestsPerSecond / loads[names[4]]!.requestsPerSecond)
            peerCPURatio.samples.append(loads[names[5]]!.cpuMicrosPerRequest / loads[names[4]]!.cpuMicrosPerRequest)
            ahcRatio.samples.append(loads[names[3]]!.requestsPerSecond / loads[names[2]]!.requestsPerSecond)
            peerShare.samples.append(two.requestsPerSecond / loads[names[5]]!.requestsPerSecond)
        }
        metrics += names.map { rows[$0]!.rate } + names.map { rows[$0]!.cpu } + [cpuRatio, peerCPURatio, rateRatio, peerRatio, ahcRatio, peerShare]
    }
    return metrics + (try await cpuBoundScaling(options))
}

/// A whole HTTP/1.1 response as nginx sends `/256`: what the CPU-bound loop parses.
private let cannedResponse = Array((
    "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 07 Dec 2026 12:00:00 GMT\r\nContent-Type: application/octet-stream\r\n"
    + "Content-Length: 256\r\nConnection: keep-alive\r\n\r\n" + String(repeating: "x", count: 256)).utf8)

/// The reactors' own work with no server in the loop, on one reactor and then on two at once:
/// each runs, for the run's duration, pairs of an idle connection's take and put (the state
/// machine's acquire and release events) each followed by a parse of a whole 256-byte response.
/// Target: two reactors do ≥ 1.8× the work of one (the machine's two cores, nothing else running).
func cpuBoundScaling(_ options: Options) async throws -> [Metric] {
    let scenario = "reactors CPU-bound get+put+parse"
    var rates = [Metric(scenario, "1 reactor", "ops/s"), Metric(scenario, "2 reactors", "ops/s")]
    var scaling = Metric(scenario, "2 reactors/1 reactor ops/s", "×", goal: .atLeast(1.8))
    for _ in 0..<options.runs {
        var perSecond: [Double] = []
        for reactors in [1, 2] {
            let pool = try options.makePool(connections: reactors, reactors: reactors)
            let (host, port) = (options.host, options.port)
            // A connection on each reactor, made and returned there.
            for executor in pool.executors {
                try await Task(executorPreference: executor) {
                    pool.putConnection(try await pool.getConnection(host: host, port: port))
                }.value
            }
            let seconds = options.duration
            let counts = await withTaskGroup(of: Int?.self) { group in
                for index in 0..<reactors {
                    group.addTask {
                        await pool.onReactor(index) { access -> Int in
                            let id = access.hostID(host: host, port: port)
                            let end = monotonicNanos() + Int64(seconds) * 1_000_000_000
                            var operations = 0
                            while operations % 1024 != 0 || monotonicNanos() < end {
                                guard let lease = access.takeIdle(hostID: id), access.parseResponse(cannedResponse) == 256 else { return -1 }
                                access.put(lease)
                                operations += 1
                            }
                            return operations
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            try await pool.close()
            guard counts.allSatisfy({ ($0 ?? -1) > 0 }) else { throw BenchError.unexpected("a reactor found no idle connection or could not parse") }
            perSecond.append(Double(counts.reduce(0) { $0 + $1! }) / Double(seconds))
        }
        rates[0].samples.append(perSecond[0])
        rates[1].samples.append(perSecond[1])
        scaling.samples.append(perSecond[1] / perSecond[0])
    }
    return rates + [scaling]
}
