import OriginControl
import Synchronization
import Testing
@_spi(Benchmarks) @testable import HotPool
@testable import HotPoolCore

/// A flag set on one thread and read on another.
private final class Flag: Sendable {
    private let raised = Atomic<Bool>(false)
    func raise() { raised.store(true, ordering: .releasing) }
    var isRaised: Bool { raised.load(ordering: .acquiring) }
}

/// An actor whose methods run on the pool's reactor thread.
private actor ReactorBoundClient {
    let pool: HotConnPool
    let port: Int
    nonisolated var unownedExecutor: UnownedSerialExecutor { pool.executor.serialExecutor.asUnownedSerialExecutor() }

    init(pool: HotConnPool, port: Int) {
        self.pool = pool
        self.port = port
    }

    /// `count` requests, half through get + round trip + put and half through `execute`; returns
    /// their statuses and the work items that crossed to the reactor from other threads meanwhile.
    func requests(_ count: Int) async throws -> (statuses: [Int], hops: Int) {
        preconditionIsolated()
        let hops0 = pool.executor.reactor.inboundHops
        var statuses: [Int] = []
        for i in 0..<count {
            if i % 2 == 0 {
                let connection = try await pool.getConnection(host: Origin.hostName, port: port)
                statuses.append(try await connection.roundTrip(get()).head.status.code)
                pool.putConnection(connection)
            } else {
                statuses.append(try await pool.execute(get(), host: Origin.hostName, port: port).head.status.code)
            }
            preconditionIsolated()
        }
        return (statuses, pool.executor.reactor.inboundHops - hops0)
    }

    /// `count` gets and puts of an idle connection, with the stats read after each; returns the
    /// work items that crossed to the reactor from other threads meanwhile.
    func getsAndPuts(_ count: Int) async throws -> Int {
        let hops0 = pool.executor.reactor.inboundHops
        for _ in 0..<count {
            pool.putConnection(try await pool.getConnection(host: Origin.hostName, port: port))
            _ = await pool.stats()
        }
        return pool.executor.reactor.inboundHops - hops0
    }
}

/// Callers on the pool's own executor (tasks preferring it, actors isolated to it) and callers
/// anywhere else get the same answers; on the executor, the calls cross no thread.
@Suite struct ExecutorTests {
    /// One request of every kind the seed names, with its outcome as text: answered, refused,
    /// failed by the server, returned, removed, returned twice, used after return, and the same
    /// through `execute`.
    private static func script(_ pool: HotConnPool, port: Int) async -> [String] {
        var log: [String] = []
        func step(_ name: String, _ body: () async throws -> String) async {
            do { log.append("\(name): \(try await body())") } catch { log.append("\(name): error \(error)") }
        }
        func describe(_ response: HotResponse) -> String { "\(response.head.status.code) \(response.body.count)B" }
        let host = Origin.hostName
        await step("two gets, a 200 and a 404") {
            let a = try await pool.getConnection(host: host, port: port)
            let b = try await pool.getConnection(host: host, port: port)
            defer { pool.putConnection(a); pool.putConnection(b) }
            return describe(try await a.roundTrip(get("/body"))) + ", " + describe(try await b.roundTrip(get("/missing")))
        }
        await step("reset by the server") {
            let c = try await pool.getConnection(host: host, port: port)
            defer { pool.putConnection(c) }
            return describe(try await c.roundTrip(get("/reset")))
        }
        await step("removed") {
            let c = try await pool.getConnection(host: host, port: port)
            pool.removeConnection(c)
            return describe(try await c.roundTrip(get()))
        }
        await step("returned twice, then used") {
            let c = try await pool.getConnection(host: host, port: port)
            pool.putConnection(c)
            pool.putConnection(c)
            return describe(try await c.roundTrip(get()))
        }
        await step("execute 200") { describe(try await pool.execute(get("/body"), host: host, port: port)) }
        await step("execute 404") { describe(try await pool.execute(get("/missing"), host: host, port: port)) }
        await step("execute reset") { describe(try await pool.execute(get("/reset"), host: host, port: port)) }
        await step("execute, bad host") { describe(try await pool.execute(get(), host: "bad host", port: port)) }
        await step("withConnection") {
            try await pool.withConnection(host: host, port: port) { describe(try await $0.roundTrip(get("/body"))) }
        }
        let s = await pool.stats()
        log.append("stats: open \(s.totalConnections) idle \(s.idleConnections) leased \(s.activeConnections) opened \(s.connectionsOpened) "
            + "requests \(s.totalRequests) failed \(s.failedRequests) stale \(s.staleHandleUses) "
            + "closed \(s.closedByReason.map { "\($0.key)=\($0.value)" }.sorted())")
        return log
    }

    private static func originWithRules() async throws -> Origin {
        let origin = try Origin()
        try await origin.rule(path: "/body", ["type": "status", "status": 200, "body_size": 256])
        try await origin.rule(path: "/missing", ["type": "status", "status": 404])
        try await origin.rule(path: "/reset", ["type": "reset", "after_bytes": 5])
        return origin
    }

    @Test func callersOnTheExecutorAndElsewhereGetTheSameAnswersAndStats() async throws {
        let origin = try await Self.originWithRules()
        let port = origin.port
        let elsewhere = try origin.pool()
        let fromGlobal = await Self.script(elsewhere, port: port)
        try await elsewhere.close()
        let onExecutor = try origin.pool()
        let fromExecutor = await Task(executorPreference: onExecutor.executor) {
            await Self.script(onExecutor, port: port)
        }.value
        try await onExecutor.close()
        #expect(fromExecutor == fromGlobal)
        // What the script must give, in either mode.
        #expect(fromGlobal.count == 10 && fromGlobal[0] == "two gets, a 200 and a 404: 200 256B, 404 2B", "\(fromGlobal)")
        #expect(fromGlobal[4] == "execute 200: 200 256B" && fromGlobal[5] == "execute 404: 404 2B")
        #expect(fromGlobal[6].hasPrefix("execute reset: error network error"))
        #expect(fromGlobal[8] == "withConnection: 200 256B")
        let stats = fromGlobal[9]
        #expect(stats.hasPrefix("stats: open 1 idle 1 leased 0 opened 4 requests 7 failed 2 stale 3 "), "\(stats)")
        #expect(stats.contains("\"removed=1\"") && stats.contains("\"unhealthyOnReturn=2\""), "\(stats)")
        // Both pools did it all for real: the server saw each one's connections and requests.
        let server = try await origin.stats()
        #expect(server.totalHandshakes == 8 && server.totalRequests == 14)
    }

    @Test func aGetOnTheExecutorWithAnIdleConnectionReturnsWithoutSuspending() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let port = origin.port
        pool.putConnection(try await pool.getConnection(host: Origin.hostName, port: port))
        let queuedBehind = Flag()
        let (ranBeforeTheGetReturned, hops, behind) = try await Task(executorPreference: pool.executor) {
            let hops0 = pool.executor.reactor.inboundHops
            // Queued on this thread behind the current job: it runs only if the get suspends.
            let behind = Task(executorPreference: pool.executor) { queuedBehind.raise() }
            let connection = try await pool.getConnection(host: Origin.hostName, port: port)
            let ran = queuedBehind.isRaised
            pool.putConnection(connection)
            return (ran, pool.executor.reactor.inboundHops - hops0, behind)
        }.value
        #expect(!ranBeforeTheGetReturned, "the get suspended")
        #expect(hops == 0)
        await behind.value
        #expect(queuedBehind.isRaised, "the job queued behind ran afterwards")
        let stats = await pool.stats()
        #expect(stats.connectionsOpened == 1 && stats.idleConnections == 1)
        try await pool.close()
    }

    @Test func anActorIsolatedToTheExecutorCallsThePoolWithoutHops() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let client = ReactorBoundClient(pool: pool, port: origin.port)
        // Called from a task that prefers the executor, every call and resumption stays there.
        let (statuses, hops) = try await Task(executorPreference: pool.executor) {
            _ = try await client.requests(2)  // dials a connection
            return try await client.requests(20)
        }.value
        #expect(statuses == Array(repeating: 200, count: 20))
        #expect(hops == 0, "work crossed to the reactor from another thread")
        // Called from anywhere, the calls that do not suspend stay on the reactor too; only the
        // answers of other reactors (to `stats()`) may cross to it, when they come after the
        // task suspended.
        #expect(try await client.getsAndPuts(20) <= 20 * (pool.executors.count - 1))
        #expect(await pool.stats().connectionsOpened == 1)
        try await pool.close()
    }

    @Test func executeFromAnotherThreadIsOneHopPerRequest() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let port = origin.port
        _ = try await pool.execute(get(), host: Origin.hostName, port: port)  // dials
        let requests = 50
        let hops0 = try #require(await pool.inboundHops())
        for _ in 0..<requests { #expect(try await pool.execute(get(), host: Origin.hostName, port: port).head.status == .ok) }
        let hops1 = try #require(await pool.inboundHops())
        // The first read's own hops (one per reactor) are counted in the second.
        #expect(hops1 - hops0 - pool.reactorCount == requests)
        for _ in 0..<requests {
            try await pool.withConnection(host: Origin.hostName, port: port) { _ = try await $0.roundTrip(get()) }
        }
        let hops2 = try #require(await pool.inboundHops())
        #expect(hops2 - hops1 - pool.reactorCount == 3 * requests, "get, round trip and put are a hop each")
        #expect(await pool.stats().connectionsOpened == 1)
        try await pool.close()
    }

    @Test func executeWaitsForABusyConnectionAndReturnsIt() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.maxConnectionsPerHost = 2
        let pool = try origin.pool(config)
        let port = origin.port
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask { try await pool.execute(get("/"), host: Origin.hostName, port: port).head.status.code }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses == Array(repeating: 200, count: 16))
        let stats = await pool.stats()
        #expect(stats.connectionsOpened <= 2 && stats.activeConnections == 0 && stats.totalRequests == 16)
        #expect(try await origin.stats().totalHandshakes == stats.connectionsOpened)
        try await pool.close()
    }

    @Test func executeRejectsABadTimeoutAndAClosedPool() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        await #expect {
            _ = try await pool.execute(get(), host: Origin.hostName, port: origin.port, timeout: .zero)
        } throws: { error in
            (error as? HotPoolError)?.code == .invalidArgument
        }
        #expect(await pool.stats().connectionsOpened == 0, "nothing was dialed for it")
        try await pool.close()
        await #expect(throws: HotPoolError.poolClosed) { _ = try await pool.execute(get(), host: Origin.hostName, port: origin.port) }
    }

    @Test func closeFromTheExecutorAndJobsAfterCloseStillRun() async throws {
        let origin = try Origin()
        let pool = try origin.pool()
        let port = origin.port
        let fdsBefore = openFDCount()
        try await Task(executorPreference: pool.executor) {
            pool.putConnection(try await pool.getConnection(host: Origin.hostName, port: port))
            try await pool.close()  // joins the reactor thread from the task that ran on it
        }.value
        // A task that prefers the closed pool's executor still runs, and is told the pool is closed.
        let afterClose = await Task(executorPreference: pool.executor) { () async -> HotPoolError? in
            do {
                _ = try await pool.getConnection(host: Origin.hostName, port: port)
                return nil
            } catch {
                return error as? HotPoolError
            }
        }.value
        #expect(afterClose == .poolClosed)
        #expect(await pool.stats().closedByReason[.poolClosed] == 1)
        #expect(try await origin.waitClosed(1))
        #expect(openFDCount() <= fdsBefore)
    }

    @Test func aClosedPoolCalledFromAnotherPoolsExecutorStaysClosed() async throws {
        let origin = try Origin()
        let first = try origin.pool()
        let port = origin.port
        let held = try await first.getConnection(host: Origin.hostName, port: port)
        try await first.close()
        // The second pool's reactor thread may well get the first one's thread id.
        let second = try origin.pool()
        let closedStats = try await Task(executorPreference: second.executor) {
            first.putConnection(held)
            first.removeConnection(held)
            try await first.close()
            await #expect(throws: HotPoolError.poolClosed) { _ = try await first.getConnection(host: Origin.hostName, port: port) }
            await #expect(throws: HotPoolError.poolClosed) { _ = try await first.execute(get(), host: Origin.hostName, port: port) }
            return await first.stats()
        }.value
        #expect(closedStats.closedByReason[.poolClosed] == 1 && closedStats.connectionsOpened == 1)
        #expect(try await second.execute(get(), host: Origin.hostName, port: port).head.status == .ok, "the second pool is unharmed")
        try await second.close()
    }

    @Test func executeWaitingForAConnectionCanBeCancelled() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.maxConnectionsPerHost = 1
        let pool = try origin.pool(config)
        let port = origin.port
        let held = try await pool.getConnection(host: Origin.hostName, port: port)
        let waiting = Task { try await pool.execute(get(), host: Origin.hostName, port: port) }
        #expect(await eventually { await pool.stats().waitingCallers == 1 })
        waiting.cancel()
        await #expect(throws: HotPoolError.cancelled) { _ = try await waiting.value }
        pool.putConnection(held)
        let stats = await pool.stats()
        #expect(stats.waitingCallers == 0 && stats.idleConnections == 1 && stats.totalRequests == 0)
        try await pool.close()
    }

    @Test func executeThatTimesOutDestroysItsConnectionOnce() async throws {
        let origin = try Origin()
        try await origin.rule(path: "/stall", ["type": "stall"])
        let pool = try origin.pool()
        let fdsBefore = openFDCount()
        await #expect {
            _ = try await pool.execute(get("/stall"), host: Origin.hostName, port: origin.port, timeout: .milliseconds(300))
        } throws: { error in
            guard let error = error as? HotPoolError, error.code == .timeout else { return false }
            return error.phase == .request
        }
        let stats = await pool.stats()
        #expect(stats.closedByReason[.unhealthyOnReturn] == 1 && stats.totalConnections == 0 && stats.failedRequests == 1)
        #expect(stats.activeConnections == 0, "execute put its connection back")
        #expect(try await origin.waitClosed(1))
        #expect(openFDCount() == fdsBefore)
        try await pool.close()
    }
}
