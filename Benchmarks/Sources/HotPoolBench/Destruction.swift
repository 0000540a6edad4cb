@_spi(Benchmarks) import HotPool
import MallocCounter

/// Opens `count` connections through the pool's dial path from `concurrency` tasks (each keeps
/// what it opened, so every get dials), then returns them all: `count` idle connections.
/// The span is the opening's, for the concurrent dial rate.
func openIdle(_ pool: HotConnPool, _ options: Options, count: Int, concurrency: Int) async throws -> Span {
    let (connections, span) = try await Span.measure {
        try await withThrowingTaskGroup(of: [PooledConnection].self) { group in
            for worker in 0..<concurrency {
                let share = count / concurrency + (worker < count % concurrency ? 1 : 0)
                group.addTask {
                    var held: [PooledConnection] = []
                    held.reserveCapacity(share)
                    for _ in 0..<share { held.append(try await pool.getConnection(host: options.host, port: options.port)) }
                    return held
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }
    connections.forEach(pool.putConnection)
    let stats = await pool.stats()
    guard stats.idleConnections == count, stats.connectionsOpened == count else {
        throw BenchError.unexpected("opened \(stats.connectionsOpened), \(stats.idleConnections) idle, expected \(count)")
    }
    return span
}

/// How many dials run at once when a scenario opens many connections.
private let dialConcurrency = 64

/// `close()` of `count` idle TLS connections on each backend: its wall and CPU time, the backend's
/// system calls, and the fds (against the count before the pool was made) and SSL objects left
/// after it. The same runs give the resident memory per idle connection (VmRSS before the pool and
/// with the connections idle) and the pool's dial rate with `dialConcurrency` dials at once. The
/// backends alternate within each run, so neither always inherits the other's freed heap.
func destruction(_ options: Options, count: Int) async throws -> [Metric] {
    let scenario = "close() of \(count) idle"
    let target = count >= 10_000
    struct Rows {
        var closeTime, closeCPU, closeCalls, fdsLeft, sslLeft, memory, dialRate, dialCPU: Metric
        init(_ scenario: String, _ count: Int, _ target: Bool, _ backend: IOBackendChoice) {
            let suffix = backend.rowSuffix
            closeTime = Metric(scenario, "close() wall time" + suffix, "ms", goal: target ? .atMost(100) : nil)
            closeCPU = Metric(scenario, "close() CPU (all threads)" + suffix, "ms")
            closeCalls = Metric(scenario, "close() system calls" + suffix, "/conn")
            fdsLeft = Metric(scenario, "fds left" + suffix, "fds", goal: .atMost(0))
            sslLeft = Metric(scenario, "SSL objects left" + suffix, "objects", goal: .atMost(0))
            memory = Metric("memory", "RSS per idle TLS connection, N=\(count)" + suffix, "KiB", goal: target ? .atMost(24) : nil)
            dialRate = Metric("handshake", "HotPool dial, \(dialConcurrency) at once, N=\(count)" + suffix, "conn/s")
            dialCPU = Metric("handshake", "HotPool dial CPU, \(dialConcurrency) at once, N=\(count)" + suffix, "µs/conn")
        }
        var all: [Metric] { [closeTime, closeCPU, closeCalls, fdsLeft, sslLeft, memory, dialRate, dialCPU] }
    }
    var rows = backends.map { Rows(scenario, count, target, $0) }
    for _ in 0..<options.runs {
        for (index, backend) in backends.enumerated() {
            let fds = openFDCount(), resident = residentBytes()
            let pool = try options.makePool(connections: count, backend: backend)
            let opening = try await openIdle(pool, options, count: count, concurrency: dialConcurrency)
            rows[index].memory.samples.append(Double(residentBytes() - resident) / Double(count) / 1024)
            let calls = await pool.ioSystemCalls()
            let ((), closing) = try await Span.measure { try await pool.close() }
            rows[index].closeCalls.samples.append(Double(await pool.ioSystemCalls() - calls) / Double(count))
            rows[index].closeTime.samples.append(closing.wallSeconds * 1e3)
            rows[index].closeCPU.samples.append(closing.cpuSeconds * 1e3)
            rows[index].fdsLeft.samples.append(Double(openFDCount() - fds))
            rows[index].sslLeft.samples.append(Double(HotConnPool.liveTLSObjects))
            rows[index].dialRate.samples.append(Double(count) / opening.wallSeconds)
            rows[index].dialCPU.samples.append(opening.cpuSeconds * 1e6 / Double(count))
        }
    }
    return rows.flatMap(\.all)
}

/// `remove` of one leased connection on the reactor (TLS close_notify, close(2), slot freed):
/// `count` connections are opened and taken from the idle list, then removed one by one inside
/// one reactor event, timed with the monotonic clock; allocations are the reactor thread's own.
func removeOnReactor(_ options: Options) async throws -> [Metric] {
    let count = options.quick ? 200 : 1000
    var time = Metric("remove", "remove on reactor, \(count) leased", "ns/conn")
    var allocations = Metric("remove", "remove on reactor allocations", "/conn")
    let host = options.host, port = options.port
    for _ in 0..<options.runs {
        let pool = try options.makePool(connections: count)
        _ = try await openIdle(pool, options, count: count, concurrency: dialConcurrency)
        let cost = await pool.onReactor { access -> Cost? in
            let id = access.hostID(host: host, port: port)
            var leases: [ReactorLease] = []
            leases.reserveCapacity(count)
            while let lease = access.takeIdle(hostID: id) { leases.append(lease) }
            guard leases.count == count else { return nil }
            let allocations0 = mc_thread_allocations(), start = monotonicNanos()
            for lease in leases { access.remove(lease) }
            let end = monotonicNanos(), allocations1 = mc_thread_allocations()
            return Cost(nanos: Double(end - start) / Double(count), allocations: Double(allocations1 - allocations0) / Double(count))
        }
        let removed = await pool.stats().closedByReason[.removed] ?? 0
        try await pool.close()
        guard let cost = cost ?? nil, removed == count else {
            throw BenchError.unexpected("remove on reactor: \(removed) of \(count) connections removed")
        }
        time.samples.append(cost.nanos)
        allocations.samples.append(cost.allocations)
    }
    return [time, allocations]
}

/// Bytes of pool state per connection slot (the table's columns and the per-slot operation).
func slotState(_ options: Options) async throws -> [Metric] {
    var bytes = Metric("memory", "pool state per slot", "B", goal: .atMost(64))
    let pool = try options.makePool(connections: 1)
    bytes.samples = [Double(pool.bytesPerSlot)]
    try await pool.close()
    return [bytes]
}
