import Foundation
import OriginControl
import Testing
@_spi(Benchmarks) @testable import HotPool
@testable import HotPoolDriver
@testable import HotPoolIO

/// A pool of several reactors: each host at home on one, tasks on each reactor's executor served
/// there, one pool's figures, decisions the reactors agree on, one close for all.
@Suite(.serialized)  // the close test counts the process's fds and threads
struct MultipleReactorsTests {
    /// `origin`'s configuration with two reactors.
    private static func twoReactors(_ origin: Origin, _ selection: ReactorSelection = .byHost) -> HotPoolConfiguration {
        var config = origin.configuration()
        config.reactors = 2
        config.reactorSelection = selection
        return config
    }

    /// The number of the reactor whose executor `executor` is.
    private static func number(of executor: HotPoolExecutor, in pool: HotConnPool) -> Int {
        pool.executors.firstIndex { $0 === executor }!
    }

    /// The origin's IPs as host names (its certificate names them, and each is its own address):
    /// four hosts, from callers off the reactors, each only on its home reactor.
    @Test func eachHostLivesOnItsHomeReactor() async throws {
        let origin = try Origin(ips: ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"])
        let pool = try HotConnPool(configuration: Self.twoReactors(origin))
        let homes = Dictionary(uniqueKeysWithValues: origin.ips.map { ($0, Self.number(of: pool.executor(forHost: $0), in: pool)) })
        try #require(Set(homes.values) == [0, 1], "the hosts have homes on both reactors: \(homes)")
        try await withThrowingTaskGroup { group in
            for host in origin.ips {
                for _ in 0..<6 {
                    group.addTask {
                        let connection = try await pool.getConnection(host: host, port: origin.port)
                        #expect(connection.reactor == homes[host], "\(host)'s connection is on its home reactor")
                        #expect(try await connection.roundTrip(get()).head.status == .ok)
                        pool.putConnection(connection)
                    }
                }
            }
            try await group.waitForAll()
        }
        for index in 0..<2 {
            let hosts = await pool.onReactor(index) { Set($0.driver.connectionSnapshots().map(\.targetHost)) }
            #expect(hosts == Set(homes.filter { $0.value == index }.keys), "reactor \(index) holds its hosts' connections only")
        }
        let stats = await pool.stats()
        #expect(stats.totalRequests == 24 && stats.failedRequests == 0)
        #expect(stats.totalConnections == (await pool.connectionStats()).count)
        try await pool.close()
    }

    /// Tasks on each reactor's executor make gets, round trips, puts and `execute`s: each reactor
    /// serves its own tasks with its own connections, and no work crosses to it from another
    /// thread meanwhile.
    @Test func tasksOnEachReactorsExecutorCrossNothing() async throws {
        let origin = try Origin()
        let pool = try origin.pool(Self.twoReactors(origin))
        let outcomes = try await withThrowingTaskGroup(of: (reactor: Int, hops: Int, served: Set<Int>).self) { group in
            for (index, executor) in pool.executors.enumerated() {
                group.addTask(executorPreference: executor) {
                    let reactor = executor.reactor
                    let hops = reactor.inboundHops
                    var served: Set<Int> = []
                    for _ in 0..<50 {
                        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
                        served.insert(connection.reactor)
                        #expect(try await connection.roundTrip(get()).head.status == .ok)
                        pool.putConnection(connection)
                        #expect(try await pool.execute(get(), host: Origin.hostName, port: origin.port).head.status == .ok)
                    }
                    return (index, reactor.inboundHops - hops, served)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for outcome in outcomes {
            #expect(outcome.served == [outcome.reactor], "reactor \(outcome.reactor) leased its own connections")
            #expect(outcome.hops == 0, "no work crossed to reactor \(outcome.reactor)")
        }
        let stats = await pool.stats()
        #expect(stats.totalRequests == 200 && stats.connectionsOpened == 2, "one connection each, reused")
        try await pool.close()
    }

    /// `.perCall` spreads a host over both reactors, each within its share of the host's limits:
    /// a prewarm of more than the limit fills each reactor's share, and no more.
    @Test func spreadPerCallEachReactorKeepsItsShareOfTheHostsLimit() async throws {
        let origin = try Origin()
        var config = Self.twoReactors(origin, .perCall)
        config.maxConnectionsPerHost = 5
        let pool = try origin.pool(config)
        #expect(try await pool.prewarm(host: Origin.hostName, port: origin.port, count: 8) == 5)
        let idle = [await pool.onReactor(0) { $0.driver.stats.idleConnections }, await pool.onReactor(1) { $0.driver.stats.idleConnections }]
        #expect(idle == [3, 2], "the limit of 5 split 3 and 2")
        let leases = try await (0..<4).asyncMap { _ in try await pool.getConnection(host: Origin.hostName, port: origin.port) }
        #expect(Set(leases.map(\.reactor)) == [0, 1], "calls take the reactors in turn")
        for lease in leases { pool.putConnection(lease) }
        #expect(await pool.stats().connectionsOpened == 5)
        try await pool.close()
    }

    /// A 403 that blacklists an IP on one reactor reaches the other, which takes the IP out too
    /// (the host is spread over both); once a recovery brings it back, it is back on both.
    @Test func aBlacklistingOnOneReactorReachesTheOther() async throws {
        let origin = try Origin()
        try await origin.rule(ip: origin.ips[0], path: "/check", ["type": "status", "status": 403])
        var config = Self.twoReactors(origin)
        config.blacklistTimeout = .seconds(2)  // far longer than a post between the reactors takes
        config.blacklistCheckInterval = .milliseconds(100)
        config.maxRetries = 0
        let pool = try origin.pool(config)
        // Both reactors know the host and its IPs.
        for executor in pool.executors {
            try await Task(executorPreference: executor) {
                pool.putConnection(try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[1]))
            }.value
        }
        let blacklisted = origin.ips[0]
        await #expect(throws: HotPoolError.validationFailed(host: Origin.hostName, ip: blacklisted, status: 403)) {
            try await Task(executorPreference: pool.executors[0]) {
                let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: blacklisted)
                pool.putConnection(connection)
                // The validation's get takes the idle connection to the first IP.
                _ = try await pool.getConnection(validating: "https://\(Origin.hostName):\(origin.port)/check")
            }.value
        }
        #expect(await pool.blacklistedIPs(forHost: Origin.hostName).map(\.ip) == [blacklisted])
        let onOther = await eventually {
            await pool.onReactor(1) { $0.driver.blacklistEntries(forHost: Origin.hostName).map(\.reason) } == [.forbidden]
        }
        #expect(onOther, "the other reactor took the IP out too")
        try await origin.rule(ip: blacklisted, path: "/check", ["type": "status", "status": 200])
        let back = await eventually {
            await pool.blacklistedIPs(forHost: Origin.hostName).isEmpty
        }
        #expect(back, "recovered on both reactors")
        try await pool.close()
    }

    /// Callers in flight on every reactor (an exchange the server never answers, a caller waiting
    /// for a connection) when the pool closes: each is answered, every fd is closed, and every
    /// reactor thread is gone once `close()` returns.
    @Test func closeWithCallersInFlightOnEveryReactorAnswersEachAndJoinsEveryThread() async throws {
        let origin = try Origin()
        try await origin.rule(path: "/stall", ["type": "stall"])
        let fdsBefore = openFDCount()
        let threadsBefore = reactorThreads()
        var config = Self.twoReactors(origin)
        config.maxConnectionsPerHost = 1
        config.requestTimeout = .seconds(60)
        config.acquireTimeout = .seconds(60)
        let pool = try origin.pool(config)
        #expect(await eventually { reactorThreads() == threadsBefore + 2 }, "two reactor threads run")
        let callers = (0..<2).flatMap { index in
            (0..<2).map { _ in
                Task(executorPreference: pool.executors[index]) { () -> Result<Int, HotPoolError> in
                    do {
                        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
                        defer { pool.putConnection(connection) }
                        return .success(try await connection.roundTrip(get("/stall")).head.status.code)
                    } catch {
                        return .failure(error as? HotPoolError ?? .cancelled)
                    }
                }
            }
        }
        let inFlight = await eventually {
            let stats = await pool.stats()
            return stats.activeConnections == 2 && stats.waitingCallers == 2
        }
        #expect(inFlight, "an exchange and a waiter on each reactor")
        try await pool.close()
        for caller in callers {
            let outcome = await caller.value
            #expect(outcome == .failure(.poolClosed) || outcome == .failure(.connectionClosed(host: Origin.hostName, ip: origin.ips[0]))
                    || { if case .failure = outcome { true } else { false } }(), "answered with a failure: \(outcome)")
        }
        #expect(pool.drivers.allSatisfy { $0.reactor.threadReleased }, "every reactor thread joined")
        // A joined thread's /proc entry can outlive the join by a moment: the kernel wakes the
        // joiner before it reaps the task.
        #expect(await eventually { reactorThreads() == threadsBefore }, "every reactor thread ended")
        let stats = await pool.stats()
        #expect(stats.closedByReason[.poolClosed] == 2 && stats.connectionsOpened == 2)
        #expect(try await origin.waitClosed(2))
        #expect(openFDCount() == fdsBefore)
    }

    /// Unusable counts are refused, with the reason.
    @Test func reactorCountsThatCannotWorkAreRefused() {
        var config = HotPoolConfiguration()
        config.reactors = 0
        #expect(throws: HotPoolError.invalidConfiguration("reactors must be within 1...1024, got 0")) { try HotConnPool(configuration: config) }
        config.reactors = 4
        config.maxConnections = 3
        #expect(throws: HotPoolError.invalidConfiguration("maxConnections (3) must be at least reactors (4)")) { try HotConnPool(configuration: config) }
        config.maxConnections = 100
        config.maxIdleConnections = 2
        #expect(throws: HotPoolError.invalidConfiguration("maxIdleConnections (2) must be 0 or at least reactors (4)")) {
            try HotConnPool(configuration: config)
        }
        config.maxIdleConnections = 20
        config.maxConnectionsPerHost = 3
        config.reactorSelection = .perCall
        #expect(throws: HotPoolError.invalidConfiguration(
            "maxConnectionsPerHost (3) must be at least reactors (4) with reactorSelection .perCall")) { try HotConnPool(configuration: config) }
        #expect(ReactorCount.perCore.resolved == ProcessInfo.processInfo.activeProcessorCount)
    }
}

/// The process's reactor threads now (named by `startThread`).
private func reactorThreads() -> Int {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    return tasks.count { task in
        let name = FileManager.default.contents(atPath: "/proc/self/task/\(task)/comm").map { String(decoding: $0, as: UTF8.self) } ?? ""
        return name.hasPrefix(reactorThreadName)
    }
}

extension Sequence {
    /// `transform` of each element in order, awaited one at a time.
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
