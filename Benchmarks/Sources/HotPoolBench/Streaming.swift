import Foundation
@_spi(Benchmarks) import HotPool

/// One download of the 1 GiB file nginx serves (`/1g`), read as it arrives: HotPool's
/// `streamingRoundTrip` (a task on the pool's executor, each backend) beside curl writing it to
/// /dev/null, one after the other in each run. The figures are the client CPU per GiB (HotPool's
/// from this process's rusage, curl's from wait4) and the rate; the ratio is HotPool's CPU per
/// GiB over curl's.
func streamingDownload(_ options: Options) async throws -> [Metric] {
    let scenario = "streaming download /1g", path = "/1g", size = 1 << 30
    let gib = Double(size) / Double(1 << 30)
    var rows: [Metric] = []
    func add(_ name: String, _ unit: String, _ value: Double) { rows.add(scenario, name, unit, value) }
    for _ in 0..<options.runs {
        let command = ["curl", "-s", "-o", "/dev/null", "--cacert", options.caFile, "-w", "%{size_download}", options.url(path)]
        let curl = try runChild(command)
        guard curl.exitCode == 0, curl.output.trimmingCharacters(in: .whitespacesAndNewlines) == String(size) else {
            throw BenchError.childFailed(command.joined(separator: " "), curl.exitCode, curl.output)
        }
        add("curl CPU", "s/GiB", curl.cpuSeconds / gib)
        add("curl", "GiB/s", gib / curl.wallSeconds)
        for backend in backends {
            let name = HotPoolCaller.executor.label(backend)
            let pool = try options.makePool(connections: 1, backend: backend)
            let authority = options.port == 443 ? options.host : "\(options.host):\(options.port)"
            let request = HTTPRequest(method: .get, scheme: "https", authority: authority, path: path)
            let (received, span) = try await Span.measure {
                try await Task(executorPreference: pool.executor) {
                    try await pool.withConnection(host: options.host, port: options.port) { connection in
                        let response = try await connection.streamingRoundTrip(request)
                        var received = 0
                        for try await chunk in response.body { received += chunk.count }
                        return received
                    }
                }.value
            }
            try await pool.close()
            try check(status: 200, bodyBytes: received, expected: size)
            add("\(name) CPU", "s/GiB", span.cpuSeconds / gib)
            add(name, "GiB/s", gib / span.wallSeconds)
            add("\(name)/curl CPU per GiB", "×", (span.cpuSeconds / gib) / (curl.cpuSeconds / gib))
        }
    }
    return rows
}
