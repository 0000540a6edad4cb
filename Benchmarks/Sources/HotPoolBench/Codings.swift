@_spi(Benchmarks) import HotPool

/// Keep-alive GETs, C = 16, of the 16 KiB text nginx serves from `text16k`, gzip-coded by
/// `gzip_static` from `text16k.gz` to a request that accepts gzip, and as it is to one that asks
/// for `identity`: HotPool (its profile's Accept-Encoding, the body decoded on the reactor as it
/// arrives), AsyncHTTPClient (its `decompression`), and wrk (which does not decode: its gzip rows
/// show the transfer alone), one after the other in each run. The ratios say what decoding costs
/// each client per request, and HotPool's cost beside AsyncHTTPClient's.
func codingThroughput(_ options: Options) async throws -> [Metric] {
    let scenario = "codings C=16 /text16k", path = "/text16k", bodyBytes = 16 * 1024, concurrency = 16
    let identity = "identity"
    var rows: [Metric] = []
    func add(_ name: String, _ unit: String, _ value: Double) { rows.add(scenario, name, unit, value) }
    for _ in 0..<options.runs {
        for backend in backends {
            let name = HotPoolCaller.executor.label(backend)
            let gzip = try await hotPoolLoad(options, .executor, backend, concurrency: concurrency, path: path, bodyBytes: bodyBytes)
            let plain = try await hotPoolLoad(options, .executor, backend, concurrency: concurrency, path: path, bodyBytes: bodyBytes,
                                              acceptEncoding: identity)
            add("\(name) gzip", "req/s", gzip.requestsPerSecond)
            add("\(name) identity", "req/s", plain.requestsPerSecond)
            add("\(name) gzip CPU", "µs/req", gzip.cpuMicrosPerRequest)
            add("\(name) identity CPU", "µs/req", plain.cpuMicrosPerRequest)
            add("\(name) gzip/identity CPU per req", "×", gzip.cpuMicrosPerRequest / plain.cpuMicrosPerRequest)
            add("\(name) gzip allocations", "/req", gzip.allocationsPerRequest)
        }
        let ahcGzip = try await asyncHTTPClientLoad(options, concurrency: concurrency, path: path, bodyBytes: bodyBytes, decompresses: true)
        let ahcPlain = try await asyncHTTPClientLoad(options, concurrency: concurrency, path: path, bodyBytes: bodyBytes)
        add("AsyncHTTPClient gzip", "req/s", ahcGzip.requestsPerSecond)
        add("AsyncHTTPClient identity", "req/s", ahcPlain.requestsPerSecond)
        add("AsyncHTTPClient gzip/identity CPU per req", "×", ahcGzip.cpuMicrosPerRequest / ahcPlain.cpuMicrosPerRequest)
        let wrkGzip = try wrkLoad(options, concurrency: concurrency, path: path, headers: ["Accept-Encoding: gzip"])
        let wrkPlain = try wrkLoad(options, concurrency: concurrency, path: path)
        add("wrk gzip (not decoded)", "req/s", wrkGzip.requestsPerSecond)
        add("wrk identity", "req/s", wrkPlain.requestsPerSecond)
        for backend in backends {
            let name = HotPoolCaller.executor.label(backend)
            let ours = rows.first { $0.name == "\(name) gzip CPU" }!.samples.last!
            add("\(name) gzip/AsyncHTTPClient gzip CPU per req", "×", ours / ahcGzip.cpuMicrosPerRequest)
        }
    }
    return rows
}
