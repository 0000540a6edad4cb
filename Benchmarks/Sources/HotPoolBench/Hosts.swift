@_spi(Benchmarks) import HotPool

/// Host records at crawler scale, without connections: `setAddresses` plus a first get's record
/// for each of `count` names (its cost grew with the number of hosts before the name index), the
/// resident memory per record, and the growth when `count` other names come after the first
/// ones were reclaimed (their records and ids are reused, so a crawler stays bounded; the
/// addresses `setAddresses` gave are the caller's and stay).
func hostRecords(_ options: Options, count: Int) async throws -> [Metric] {
    let scenario = "\(count) host records"
    var setTime = Metric(scenario, "setAddresses + record, per host", "µs")
    var perHost = Metric("memory", "RSS per host record, N=\(count)", "B")
    var regrowth = Metric("memory", "RSS growth per host, N=\(count) new names after reclaiming", "B", goal: .atMost(50))
    for _ in 0..<options.runs {
        var configuration = HotPoolConfiguration()
        configuration.idleTimeout = .nanoseconds(1)  // every record is idle at once
        let pool = try HotConnPool(configuration: configuration)
        let before = residentBytes()
        let start = monotonicNanos()
        let made = await pool.onReactor { access in
            for i in 0..<count {
                let name = "h\(i).crawl.test"
                access.setAddresses(["192.0.2.\(i % 250 + 1)"], forHost: name)
                _ = access.hostID(host: name, port: 443)
            }
            return access.hostRecords
        }
        let elapsed = monotonicNanos() - start
        guard made == count else { throw BenchError.unexpected("\(made ?? -1) host records, expected \(count)") }
        setTime.samples.append(Double(elapsed) / 1e3 / Double(count))
        perHost.samples.append(Double(residentBytes() - before) / Double(count))
        let reclaimed = await pool.onReactor { $0.reclaimIdleHosts() }
        guard reclaimed == count else { throw BenchError.unexpected("reclaimed \(reclaimed ?? -1) of \(count) host records") }
        let afterReclaim = residentBytes()
        let second = await pool.onReactor { access in
            for i in 0..<count { _ = access.hostID(host: "n\(i).crawl.test", port: 443) }
            return access.hostRecords
        }
        guard second == count else { throw BenchError.unexpected("\(second ?? -1) host records, expected \(count)") }
        regrowth.samples.append(Double(residentBytes() - afterReclaim) / Double(count))
        try await pool.close()
    }
    return [setTime, perHost, regrowth]
}
