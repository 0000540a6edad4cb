import HotPool

/// New TLS connections per second, one at a time, against the same nginx: the pool's dial path
/// (getConnection + removeConnection in a loop, so every get dials: TCP connect and a full TLS 1.3
/// handshake, no session resumption) against `openssl s_time -new`, with client CPU per connection
/// (this process's rusage; s_time's from wait4).
func handshakes(_ options: Options) async throws -> [Metric] {
    let scenario = "handshake, sequential"
    var hotPool = (rate: Metric(scenario, "HotPool get+remove", "conn/s"), cpu: Metric(scenario, "HotPool CPU", "µs/conn"))
    var sTime = (rate: Metric(scenario, "openssl s_time -new", "conn/s"), cpu: Metric(scenario, "openssl s_time CPU", "µs/conn"))
    var ratios = (rate: Metric(scenario, "HotPool/s_time conn/s", "×"), cpu: Metric(scenario, "HotPool/s_time CPU per conn", "×"))
    for _ in 0..<options.runs {
        let pool = try options.makePool(connections: 1)
        let (connections, span) = try await closedLoop(concurrency: 1, duration: .seconds(options.duration)) {
            pool.removeConnection(try await pool.getConnection(host: options.host, port: options.port))
        }
        let opened = await pool.stats().connectionsOpened
        try await pool.close()
        guard opened == connections else { throw BenchError.unexpected("\(connections) gets but \(opened) dials") }

        let command = ["openssl", "s_time", "-connect", "\(options.ips[0]):\(options.port)", "-new",
                       "-time", "\(options.duration)", "-CAfile", options.caFile]
        let run = try runChild(command)
        // "1234 connections in 1.23s; 1003.25 connections/user sec, bytes read 0"
        guard run.exitCode == 0,
            let line = run.output.split(separator: "\n").first(where: { $0.contains(" connections in ") }),
            let count = line.split(separator: " ").first.flatMap({ Int($0) }), count > 0
        else { throw BenchError.childFailed(command.joined(separator: " "), run.exitCode, run.output) }

        let ours = (rate: Double(connections) / span.wallSeconds, cpu: span.cpuSeconds * 1e6 / Double(connections))
        let theirs = (rate: Double(count) / run.wallSeconds, cpu: run.cpuSeconds * 1e6 / Double(count))
        hotPool.rate.samples.append(ours.rate)
        hotPool.cpu.samples.append(ours.cpu)
        sTime.rate.samples.append(theirs.rate)
        sTime.cpu.samples.append(theirs.cpu)
        ratios.rate.samples.append(ours.rate / theirs.rate)
        ratios.cpu.samples.append(ours.cpu / theirs.cpu)
    }
    return [hotPool.rate, sTime.rate, hotPool.cpu, sTime.cpu, ratios.rate, ratios.cpu]
}
