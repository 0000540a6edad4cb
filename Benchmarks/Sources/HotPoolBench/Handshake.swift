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

/// New TLS connections per second, one at a time, against the same nginx, each answering one
/// GET of /256 and closed: the pool's dial path (getConnection, roundTrip, removeConnection in a
/// loop, so every get dials: TCP connect and a TLS 1.3 handshake) on each engine, full and
/// resumed, against `openssl s_time -www /256` with `-new` (full) and `-reuse` (resumed), with
/// client CPU per connection (this process's rusage; s_time's from wait4). The GET is what lets
/// a connection resume the one before: a TLS 1.3 server sends its ticket after the handshake,
/// and a ticket is offered once. The harness checks that every get dialed, that the full rows
/// resumed no handshake and that the resumed row resumed at least `resumedShareFloor` of them
/// (nginx declines a ticket now and then), and reports the share.
func handshakes(_ options: Options) async throws -> [Metric] {
    let scenario = "handshake, sequential"
    var resumedShare = Metric(scenario, "resumed share of the resumed row's handshakes", "")
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
            let (rate, cpu, share) = try await dials(options, dialer)
            if dialer.resumes { resumedShare.samples.append(share) }
            rates[index].samples.append(rate)
            cpus[index].samples.append(cpu)
            cpuRatios[index].samples.append(cpu / peerCPU[dialer.resumes ? "-reuse" : "-new"]!)
        }
    }
    return rates + peerRates + cpus + peerCPUs + cpuRatios + [resumedShare]
}

/// The least share of handshakes after the first that the resumed row must have resumed.
private let resumedShareFloor = 0.99

/// What each new connection of the handshake rows GETs.
private let handshakePage = "/256"

/// One timed run of `dialer`: connections per second, client CPU per connection, and the share
/// of handshakes after the first that resumed.
private func dials(_ options: Options, _ dialer: Dialer) async throws -> (rate: Double, cpu: Double, resumed: Double) {
    let pool = try options.makePool(connections: 1, profile: dialer.profile)
    let request = HTTPRequest(method: .get, scheme: "https", authority: options.authority, path: handshakePage)
    let (connections, span) = try await closedLoop(concurrency: 1, duration: .seconds(options.duration)) {
        let connection = try await pool.getConnection(host: options.host, port: options.port)
        let status = try await connection.roundTrip(request).head.status.code
        pool.removeConnection(connection)
        guard status == 200 else { throw BenchError.badResponse("status \(status)") }
    }
    let stats = await pool.stats()
    try await pool.close()
    guard stats.connectionsOpened == connections else {
        throw BenchError.unexpected("\(dialer.name): \(connections) gets but \(stats.connectionsOpened) dials")
    }
    let share = Double(stats.resumedHandshakes) / Double(max(connections - 1, 1))
    guard dialer.resumes ? share >= resumedShareFloor : stats.resumedHandshakes == 0 else {
        throw BenchError.unexpected("\(dialer.name): \(stats.resumedHandshakes) of \(connections) handshakes resumed")
    }
    return (Double(connections) / span.wallSeconds, span.cpuSeconds * 1e6 / Double(connections), share)
}

/// One timed run of `openssl s_time` with `flag` (`-new` or `-reuse`): connections per second
/// over its wall clock, and its CPU per connection.
private func sTime(_ options: Options, _ flag: String) throws -> (rate: Double, cpu: Double) {
    let command = ["openssl", "s_time", "-connect", "\(options.ips[0]):\(options.port)", flag, "-www", handshakePage,
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
