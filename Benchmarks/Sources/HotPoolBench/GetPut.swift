@_spi(Benchmarks) import HotPool
import MallocCounter

/// Time and heap allocations per operation.
struct Cost: Sendable {
    var nanos: Double
    var allocations: Double
}

/// The cost of a pool hit: get + put of an idle connection, (a) on the reactor thread, through
/// the benchmark SPI, and (b) from a task through the async API (`getConnection` +
/// `putConnection`, one after the other), which crosses to the reactor and back. With (b), the
/// cost of an empty reactor event awaited from a task: the floor of any async API call.
func getPut(_ options: Options, backend: IOBackendChoice) async throws -> [Metric] {
    let scenario = "get+put (idle connection)", suffix = backend.rowSuffix
    var onReactor = (time: Metric(scenario, "on reactor" + suffix, "ns/pair", goal: .atMost(50)),
                     allocations: Metric(scenario, "on reactor allocations" + suffix, "/pair", goal: .atMost(0)))
    var crossThread = (time: Metric(scenario, "async API, cross-thread" + suffix, "ns/pair", goal: .atMost(2000)),
                       allocations: Metric(scenario, "async API allocations (all threads)" + suffix, "/pair"))
    var onExecutor = (time: Metric(scenario, "async API, on pool executor" + suffix, "ns/pair", goal: .atMost(200)),
                      allocations: Metric(scenario, "async API on pool executor allocations" + suffix, "/pair", goal: .atMost(0)))
    var hop = Metric(scenario, "empty reactor event awaited (hop floor)" + suffix, "ns")
    let pairs = options.quick ? 100_000 : 1_000_000
    let asyncPairs = options.quick ? 20_000 : 100_000
    for _ in 0..<options.runs {
        let pool = try options.makePool(connections: 1, backend: backend)
        // One idle connection, used once.
        let connection = try await pool.getConnection(host: options.host, port: options.port)
        _ = try await connection.roundTrip(HTTPRequest(method: .get, scheme: "https", authority: options.authority, path: "/256"))
        pool.putConnection(connection)

        guard let reactorCost = await reactorGetPut(pool, options, pairs: pairs) else {
            throw BenchError.unexpected("no idle connection on the reactor")
        }
        onReactor.time.samples.append(reactorCost.nanos)
        onReactor.allocations.samples.append(reactorCost.allocations)

        let asyncCost = try await asyncGetPut(pool, options, pairs: asyncPairs)
        crossThread.time.samples.append(asyncCost.nanos)
        crossThread.allocations.samples.append(asyncCost.allocations)
        let executorCost = try await executorGetPut(pool, options, pairs: pairs)
        onExecutor.time.samples.append(executorCost.nanos)
        onExecutor.allocations.samples.append(executorCost.allocations)
        hop.samples.append(await emptyEvent(pool, count: asyncPairs))
        try await pool.close()
    }
    return [onReactor.time, onReactor.allocations, onExecutor.time, onExecutor.allocations,
            crossThread.time, crossThread.allocations, hop]
}

/// `pairs` takeIdle + put pairs inside one reactor event, after a warm-up, timed with the
/// monotonic clock; allocations are the reactor thread's own. nil if no connection was idle.
private func reactorGetPut(_ pool: HotConnPool, _ options: Options, pairs: Int) async -> Cost? {
    let host = options.host, port = options.port
    let cost = await pool.onReactor { access -> Cost? in
        let id = access.hostID(host: host, port: port)
        /// `count` pairs; false if no connection was idle.
        func run(_ count: Int) -> Bool {
            for _ in 0..<count {
                guard let lease = access.takeIdle(hostID: id) else { return false }
                access.put(lease)
            }
            return true
        }
        guard run(1000) else { return nil }
        let allocations0 = mc_thread_allocations(), start = monotonicNanos()
        guard run(pairs) else { return nil }
        let end = monotonicNanos(), allocations1 = mc_thread_allocations()
        return Cost(nanos: Double(end - start) / Double(pairs), allocations: Double(allocations1 - allocations0) / Double(pairs))
    }
    return cost ?? nil
}

/// `pairs` getConnection + putConnection pairs from one task, after a warm-up; allocations are
/// counted over all threads, since each pair runs on the caller's thread and the reactor's.
private func asyncGetPut(_ pool: HotConnPool, _ options: Options, pairs: Int) async throws -> Cost {
    /// `count` pairs in a row.
    func run(_ count: Int) async throws {
        for _ in 0..<count {
            let connection = try await pool.getConnection(host: options.host, port: options.port)
            pool.putConnection(connection)
        }
    }
    try await run(1000)
    let allocations0 = mc_total_allocations(), start = monotonicNanos()
    try await run(pairs)
    let end = monotonicNanos(), allocations1 = mc_total_allocations()
    let opened = await pool.stats().connectionsOpened
    guard opened == 1 else { throw BenchError.unexpected("get+put dialed: \(opened) connections opened, expected 1") }
    return Cost(nanos: Double(end - start) / Double(pairs), allocations: Double(allocations1 - allocations0) / Double(pairs))
}

/// `pairs` getConnection + putConnection pairs from a task on the pool's executor, after a
/// warm-up: each get finds the idle connection without suspending, so the loop runs on the
/// reactor thread, whose allocations are counted.
private func executorGetPut(_ pool: HotConnPool, _ options: Options, pairs: Int) async throws -> Cost {
    let (host, port) = (options.host, options.port)
    return try await Task(executorPreference: pool.executor) {
        /// `count` pairs in a row.
        func run(_ count: Int) async throws {
            for _ in 0..<count { pool.putConnection(try await pool.getConnection(host: host, port: port)) }
        }
        try await run(1000)
        let allocations0 = mc_thread_allocations(), start = monotonicNanos()
        try await run(pairs)
        let end = monotonicNanos(), allocations1 = mc_thread_allocations()
        return Cost(nanos: Double(end - start) / Double(pairs), allocations: Double(allocations1 - allocations0) / Double(pairs))
    }.value
}

/// Nanoseconds per empty event posted to the reactor and awaited, `count` times in a row.
private func emptyEvent(_ pool: HotConnPool, count: Int) async -> Double {
    for _ in 0..<1000 { _ = await pool.onReactor { _ in 0 } }
    let start = monotonicNanos()
    for _ in 0..<count { _ = await pool.onReactor { _ in 0 } }
    return Double(monotonicNanos() - start) / Double(count)
}
