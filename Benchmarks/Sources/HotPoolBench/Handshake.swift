import HotPool

/// A way the pool dials for the handshake rows: its TLS engine and preset, and whether each
/// connection resumes the session of the one before.
private struct Dialer {
    let name: String
    let profile: FingerprintProfile
    let resumes: Bool

    init(_ name: String, _ spec: FingerprintSpec, resumes: Bool) {
        var spec = spec
        spec.resumesSessions = resumes
        (self.name, self.profile, self.resumes) = (name, .custom(spec), resumes)
    }

    static let all = [
        Dialer("HotPool BoringSSL (chrome150) full", .chrome, resumes: false),
        Dialer("HotPool OpenSSL (plain) full", .plain, resumes: false),
        Dialer("HotPool BoringSSL (chrome150) resumed", .chrome, resumes: true),
    ]
}

/// New TLS connections per second, one at a time, against the same nginx: the pool's dial path
/// (getConnection + removeConnection in a loop, so every get dials: TCP connect and a TLS 1.3
/// handshake) on each engine, full and resumed, against `openssl s_time -new` (full) and
/// `-reuse` (resumed), with client CPU per connection (this process's rusage; s_time's from
/// wait4). The harness checks that every get dialed, and that the resumed rows resumed every
/// handshake after the first and the full rows none.
func handshakes(_ options: Options) async throws -> [Metric] {
    let scenario = "handshake, sequential"
    var rates = Dialer.all.map { Metric(scenario, $0.name, "conn/s") }
    var cpus = Dialer.all.map { Metric(scenario, "\($0.name) CPU", "µs/conn") }
    var cpuRatios = Dialer.all.map { Metric(scenario, "\($0.name)/s_time \($0.resumes ? "-reuse" : "-new") CPU per conn", "×") }
    let peers = ["-new", "-reuse"]
    var peerRates = peers.map { Metric(scenario, "openssl s_time \($0)", "conn/s") }
    var peerCPUs = peers.map { Metric(scenario, "openssl s_time \($0) CPU", "µs/conn") }
    for _ in 0..<options.runs {
        var peerCPU: [String: Double] = [:]
        for (index, flag) in peers.enumerated() {
            let (rate, cpu) = try sTime(options, flag)
            peerRates[index].samples.append(rate)
            peerCPUs[index].samples.append(cpu)
            peerCPU[flag] = cpu
        }
        for (index, dialer) in Dialer.all.enumerated() {
            let (rate, cpu) = try await dials(options, dialer)
            rates[index].samples.append(rate)
            cpus[index].samples.append(cpu)
            cpuRatios[index].samples.append(cpu / peerCPU[dialer.resumes ? "-reuse" : "-new"]!)
        }
    }
    return rates + peerRates + cpus + peerCPUs + cpuRatios
}

/// One timed run of `dialer`: connections per second and client CPU per connection.
private func dials(_ options: Options, _ dialer: Dialer) async throws -> (rate: Double, cpu: Double) {
    let pool = try options.makePool(connections: 1, profile: dialer.profile)
    let (connections, span) = try await closedLoop(concurrency: 1, duration: .seconds(options.duration)) {
        pool.removeConnection(try await pool.getConnection(host: options.host, port: options.port))
    }
    let stats = await pool.stats()
    try await pool.close()
    guard stats.connectionsOpened == connections else {
        throw BenchError.unexpected("\(dialer.name): \(connections) gets but \(stats.connectionsOpened) dials")
    }
    let resumed = dialer.resumes ? connections - 1 : 0
    guard stats.resumedHandshakes == resumed else {
        throw BenchError.unexpected("\(dialer.name): \(stats.resumedHandshakes) of \(connections) handshakes resumed, not \(resumed)")
    }
    return (Double(connections) / span.wallSeconds, span.cpuSeconds * 1e6 / Double(connections))
}

/// One timed run of `openssl s_time` with `flag` (`-new` or `-reuse`): connections per second
/// over its wall clock, and its CPU per connection.
private func sTime(_ options: Options, _ flag: String) throws -> (rate: Double, cpu: Double) {
    let command = ["openssl", "s_time", "-connect", "\(options.ips[0]):\(options.port)", flag,
                   "-time", "\(options.duration)", "-CAfile", options.caFile]
    let run = try runChild(command)
    // "1234 connections in 1.23s; 1003.25 connections/user sec, bytes read 0"
    guard run.exitCode == 0,
        let line = run.output.split(separator: "\n").last(where: { $0.contains(" connections in ") }),
        let count = line.split(separator: " ").first.flatMap({ Int($0) }), count > 0
    else { throw BenchError.childFailed(command.joined(separator: " "), run.exitCode, run.output) }
    return (Double(count) / run.wallSeconds, run.cpuSeconds * 1e6 / Double(count))
}

/// Request CPU per TLS engine: keep-alive GETs of `path` with 16 callers, one pool presenting
/// Chrome (BoringSSL) and one presenting `plain` (OpenSSL), one after the other in each run.
func engineRequests(_ options: Options, path: String, bodyBytes: Int) async throws -> [Metric] {
    let concurrency = 16
    let scenario = "requests per TLS engine C=\(concurrency) \(path)"
    let engines: [(name: String, profile: FingerprintProfile)] = [("HotPool BoringSSL (chrome150)", .chrome), ("HotPool OpenSSL (plain)", .plain)]
    var rates = engines.map { Metric(scenario, $0.name, "req/s") }
    var cpus = engines.map { Metric(scenario, "\($0.name) CPU", "µs/req") }
    var ratio = Metric(scenario, "BoringSSL/OpenSSL CPU per req", "×")
    for _ in 0..<options.runs {
        var loads: [Load] = []
        for (index, engine) in engines.enumerated() {
            let load = try await hotPoolLoad(options, .global, .epoll, concurrency: concurrency, path: path, bodyBytes: bodyBytes,
                                             profile: engine.profile)
            rates[index].samples.append(load.requestsPerSecond)
            cpus[index].samples.append(load.cpuMicrosPerRequest)
            loads.append(load)
        }
        ratio.samples.append(loads[0].cpuMicrosPerRequest / loads[1].cpuMicrosPerRequest)
    }
    return rates + cpus + [ratio]
}
