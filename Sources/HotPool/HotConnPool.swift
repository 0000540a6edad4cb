import FoundationEssentials
@_exported import HTTPTypes
@_exported import HotPoolCore
import HotPoolDriver
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine
import ServiceLifecycle
import Synchronization

/// A pool of warm TLS connections to the IPs behind hosts, with HTTP/1.1 and HTTP/2 round trips
/// over them.
///
/// Each pool runs one reactor thread (or `HotPoolConfiguration.reactors` of them), which owns
/// its part of the pool's state, so nothing is shared and nothing is locked. A call made on a
/// reactor thread (from a task or actor on one of `executors`) is served there directly; a call
/// from any other thread posts an event to the reactor that serves it (see
/// `HotPoolConfiguration.reactorSelection`) and awaits the answer. `execute` does a whole request
/// (get, round trip, put) in one such hop. A connection stays with the reactor that made it.
/// Call `close()` when done (or run the pool as a swift-service-lifecycle `Service`): it
/// destroys every connection and ends the threads.
public final class HotConnPool: Sendable {
    /// The reactors' drivers, by reactor number: each owns its part of the pool.
    let drivers: [PoolDriver]
    /// The configuration the pool was made with.
    public let configuration: HotPoolConfiguration
    /// Each reactor thread as a task and serial executor, by reactor number: tasks and actors
    /// running on one call the pool there, with no thread hop and with that reactor's
    /// connections (see `HotPoolExecutor`). Keep the pool alive, and open, for as long as they
    /// use it.
    public let executors: [HotPoolExecutor]
    /// The first reactor's executor (the pool's only one unless `reactors` says more).
    public var executor: HotPoolExecutor { executors[0] }
    /// Set once a close has begun.
    private let closing = Atomic<Bool>(false)
    /// Calls that `.perCall` spreads take the reactors in turn by this count.
    private let callsSpread = Atomic<UInt>(0)

    /// Creates the pool and starts its reactor threads.
    /// - Throws: `HotPoolError.invalidConfiguration` for unusable values or an unreadable CA file.
    public init(configuration: HotPoolConfiguration = .init()) throws {
        try configuration.validate()
        let count = configuration.reactors.resolved
        var drivers: [PoolDriver] = []
        var started = 0
        do {
            var settled = configuration
            settled.reactors = ReactorCount(count)  // `.perCore` counted once
            for index in 0..<count {
                let driver = try PoolDriver.make(settled.share(forReactor: index, of: count), reactorIndex: index)
                drivers.append(driver)
                // Where the first reactor finds io_uring out under `.automatic` (and says why,
                // once), the others take epoll at once; where it has a ring, each other still
                // falls back on its own should its ring fail.
                if !(driver.reactor.io is UringBackend) { settled.ioBackend = .epoll }
            }
            for driver in drivers { driver.peers = drivers.filter { $0 !== driver } }
            // The reactors' executors, before they start.
            self.executors = drivers.map { HotPoolExecutor(reactor: $0.reactor) }
            for driver in drivers {
                try driver.start()
                started += 1
            }
        } catch {
            for (index, driver) in drivers.enumerated() {
                if index < started {
                    driver.reactor.post { _ = driver.close() }
                    driver.reactor.detach()
                } else {
                    driver.discard()
                }
            }
            throw error
        }
        self.drivers = drivers
        self.configuration = configuration
    }

    /// A pool dropped without `close()` is a leak of the caller's (asserted in debug builds, as
    /// AsyncHTTPClient does); it is still cleaned up, on the reactor threads, and this never blocks.
    deinit {
        assert(closing.load(ordering: .relaxed), "HotConnPool deinitialized without close()")
        beginClose()
        for driver in drivers { driver.reactor.detach() }
    }

    // MARK: which reactor

    /// The driver of the reactor the caller runs on, if it is one of this pool's.
    private var currentDriver: PoolDriver? {
        drivers.first { $0.reactor.isOnReactorThread }
    }

    /// The driver that serves a call about `host`: the caller's own reactor's, else the host's
    /// home (`.byHost`) or the next in turn (`.perCall`).
    func driver(forHost host: String) -> PoolDriver {
        if drivers.count == 1 { return drivers[0] }
        if let current = currentDriver { return current }
        switch configuration.reactorSelection {
        case .byHost: return drivers[homeReactor(of: host)]
        case .perCall: return drivers[Int(callsSpread.wrappingAdd(1, ordering: .relaxed).oldValue % UInt(drivers.count))]
        }
    }

    /// The driver of the reactor that made `connection` (and alone knows its handle).
    func driver(of connection: PooledConnection) -> PoolDriver { drivers[connection.reactor] }

    /// The number of `host`'s home reactor: its name's FNV-1a hash modulo the reactor count, the
    /// same for every call in the process.
    private func homeReactor(of host: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a 64-bit offset basis
        for byte in host.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }  // and prime
        return Int(hash % UInt64(drivers.count))
    }

    /// The executor of `host`'s home reactor: tasks on it that call only `host` keep the host's
    /// connections, waiters and IP ledger on one reactor, as calls from off the reactors do with
    /// `.byHost`, with no thread hop.
    public func executor(forHost host: String) -> HotPoolExecutor {
        executors[homeReactor(of: host)]
    }

    /// Runs `work` on `driver`'s reactor and returns its result (at once when called there); once
    /// the reactor has stopped, waits for its loop to end and returns `whenClosed` (read after
    /// that, so never concurrently).
    private func onReactor<T: Sendable>(
        _ driver: PoolDriver, isolation: isolated (any Actor)? = #isolation,
        whenClosed: @escaping @Sendable (PoolDriver) -> T, _ work: @escaping @Sendable (PoolDriver) -> T
    ) async -> T {
        let reactor = driver.reactor
        if reactor.isOnReactorThread { return work(driver) }
        if let result = await Handoff<T?>.wait({ handoff in
            if !reactor.post({ handoff.tryDeliver(work(driver)) }) { handoff.tryDeliver(nil) }
        }) {
            return result
        }
        await reactor.exited()
        return whenClosed(driver)
    }

    /// `onReactor` on every reactor, in turn: their answers, by reactor number.
    private func onEveryReactor<T: Sendable>(
        isolation: isolated (any Actor)? = #isolation,
        whenClosed: @escaping @Sendable (PoolDriver) -> T, _ work: @escaping @Sendable (PoolDriver) -> T
    ) async -> [T] {
        var answers: [T] = []
        for driver in drivers { answers.append(await onReactor(driver, whenClosed: whenClosed, work)) }
        return answers
    }

    /// Runs `start` on `driver`'s reactor (at once when called there) with a handoff, and returns
    /// what it delivers, or `closed` once the pool closed.
    func relay<T: Sendable>(
        _ closed: T, on driver: PoolDriver, isolation: isolated (any Actor)? = #isolation,
        _ start: @escaping @Sendable (Handoff<T>) -> Void
    ) async -> T {
        let reactor = driver.reactor
        return await Handoff<T>.wait { handoff in
            if reactor.isOnReactorThread {
                start(handoff)
            } else if !reactor.post({ start(handoff) }) {
                handoff.tryDeliver(closed)
            }
        }
    }

    // MARK: hosts and addresses

    /// Uses these IPs for `host` instead of resolving its name (replaces earlier ones). Entries
    /// that are not IP literals are left out, and an invalid host name is ignored, each with a
    /// warning in the log.
    public func setAddresses(_ ips: [String], forHost host: String) {
        guard isValidHostName(host) else {
            return configuration.logger.warning("setAddresses ignored an invalid host name", metadata: ["host": "\(String(reflecting: host))"])
        }
        let valid = ips.filter { ipFamily($0) != 0 }
        if valid.count != ips.count {
            configuration.logger.warning("setAddresses ignored non-IP entries", metadata: ["host": "\(host)", "given": "\(ips)"])
        }
        sendEverywhere(.setAddresses(valid, host: host))
    }

    /// Looks `host` up now (joining a lookup under way) and returns its addresses as the pool
    /// then uses them: new IPs join the rotation, IPs no longer given take no new connections.
    /// A host with `setAddresses` or an IP literal for a name is not looked up: its addresses are
    /// returned as they are. With several reactors, this is the lookup of the reactor that serves
    /// the caller's calls to `host`; the others follow their own periodic refresh.
    /// - Throws: `noAddresses` with the resolver's reason when the lookup fails (the host keeps
    ///   its last addresses), `invalidHostName`, `poolClosed`, `cancelled`.
    public func refreshAddresses(
        host: String, port: Int = 443, isolation: isolated (any Actor)? = #isolation
    ) async throws -> [String] {
        let request = try acquireRequest(host: host, port: port, ip: nil)
        return try await ask(driver(forHost: host), { .addresses($0) }, { .refresh($0, request) }).get()
    }

    /// Opens connections to `host:port` until `count` are idle (the seed's
    /// PreWarmConnections), in parallel and round-robin over its IPs, within every limit
    /// (`maxConnectionsPerHost`, `maxConnections`, `maxIdleConnections`); waits for those dials
    /// and returns how many connections of the host are idle and ready. With several reactors,
    /// the reactor that serves the caller's calls to `host` warms them; when `.perCall` spreads
    /// those calls over every reactor, each warms its share of `count` (split as the limits are).
    /// - Throws: `allAddressesBlacklisted` when no IP can be dialed and none is idle,
    ///   `noAddresses`, `invalidHostName`, `invalidArgument` for a negative count,
    ///   `poolClosed`, `cancelled`.
    public func prewarm(
        host: String, port: Int = 443, count: Int, isolation: isolated (any Actor)? = #isolation
    ) async throws -> Int {
        let request = try acquireRequest(host: host, port: port, ip: nil)
        guard count >= 0 else { throw HotPoolError.invalidArgument("prewarm count must be >= 0, not \(count)") }
        guard drivers.count > 1, configuration.reactorSelection == .perCall, currentDriver == nil else {
            return try await ask(driver(forHost: host), { .prewarm($0) }, { .prewarm($0, request, count: count) }).get()
        }
        return try await withThrowingTaskGroup { group in
            for (index, driver) in drivers.enumerated() {
                let share = reactorShare(of: count, forReactor: index, of: drivers.count)
                group.addTask { try await self.ask(driver, { .prewarm($0) }, { .prewarm($0, request, count: share) }).get() }
            }
            return try await group.reduce(0, +)
        }
    }

    /// Takes `ip` out of rotation for every port of `host` for `duration` at least (then the
    /// recovery pass probes it); its idle connections are closed now and leased ones when
    /// returned (`blacklisted`). Kept for the host name until it recovers or is unblacklisted.
    /// - Throws: `invalidIP`, `invalidHostName`, or `invalidArgument` for a duration under 1 ns.
    public func blacklist(ip: String, forHost host: String, for duration: Duration) throws {
        try validate(ip: ip, host: host)
        guard duration >= .nanoseconds(1) else { throw HotPoolError.invalidArgument("blacklist duration must be positive, not \(duration)") }
        sendEverywhere(.blacklistManually(address: ip, host: host, period: duration.nanoseconds))
    }

    /// Puts `ip` back into rotation for every port of `host`, whatever blacklisted it.
    /// - Throws: `invalidIP` or `invalidHostName`.
    public func unblacklist(ip: String, forHost host: String) throws {
        try validate(ip: ip, host: host)
        sendEverywhere(.unblacklist(address: ip, host: host))
    }

    /// New connections to `host` (every port) go only to these of its IPs; connections to the
    /// others are closed (idle now, leased when returned, `blacklisted`). nil lifts the list.
    /// - Throws: `invalidIP` for an entry that is not an IP literal, or `invalidHostName`.
    public func allowOnly(ips: [String]?, forHost host: String) throws {
        for ip in ips ?? [] { try validate(ip: ip, host: host) }
        guard isValidHostName(host) else { throw HotPoolError.invalidHostName(host) }
        sendEverywhere(.allowOnly(ips.map(Set.init), host: host))
    }

    /// The IPs out of rotation for `host` (any port), each with its reason and the earliest time
    /// the recovery pass may probe it.
    public func blacklistedIPs(forHost host: String, isolation: isolated (any Actor)? = #isolation) async -> [BlacklistEntry] {
        BlacklistEntry.merging(await onEveryReactor(whenClosed: { _ in [] }) { $0.blacklistEntries(forHost: host) })
    }

    /// What the pool knows of each IP of `host`: one entry per port and IP, including IPs that
    /// DNS no longer gives or that were pinned.
    public func ipStats(forHost host: String, isolation: isolated (any Actor)? = #isolation) async -> [IPStats] {
        IPStats.merging(await onEveryReactor(whenClosed: { _ in [] }) { $0.ipStats(forHost: host) })
    }

    private func validate(ip: String, host: String) throws(HotPoolError) {
        guard ipFamily(ip) != 0 else { throw .invalidIP(ip) }
        guard isValidHostName(host) else { throw .invalidHostName(host) }
    }

    /// Sends `driver` the event `event(id)` for a caller that waits for one answer (`caller`
    /// wraps its handoff), from any thread.
    private func ask<T: Sendable>(
        _ driver: PoolDriver, isolation: isolated (any Actor)? = #isolation,
        _ caller: (Handoff<Result<T, HotPoolError>>) -> Caller,
        _ event: (WaiterID) -> PoolStateMachine.Event
    ) async -> Result<T, HotPoolError> {
        let id = driver.newWaiterID()
        let reactor = driver.reactor
        return await wait(id, on: driver) { handoff in
            // Made here, so the posted closure captures values, not these closures (an
            // allocation each, on every `execute`).
            let (caller, event) = (caller(handoff), event(id))
            if reactor.isOnReactorThread {
                driver.ask(id, caller, event)
            } else if !reactor.post({ driver.ask(id, caller, event) }) {
                handoff.tryDeliver(.failure(.poolClosed))
            }
        }
    }

    /// An idle connection to `host:port` (the most recently returned, unless `idleOrder` says
    /// otherwise; new ones round-robin over its IPs) or a new one. Past the pool's limits the
    /// caller waits, oldest first, at most `acquireTimeout` in all; each dial is bounded by
    /// `connectTimeout` within that.
    public func getConnection(
        host: String, port: Int = 443, isolation: isolated (any Actor)? = #isolation
    ) async throws -> PooledConnection {
        try await acquire(host: host, port: port, ip: nil, proxy: nil)
    }

    /// Like `getConnection(host:port:)`, but only a connection to `ip`.
    public func getConnection(
        host: String, port: Int = 443, ip: String, isolation: isolated (any Actor)? = #isolation
    ) async throws -> PooledConnection {
        guard ipFamily(ip) != 0 else { throw HotPoolError.invalidIP(ip) }
        return try await acquire(host: host, port: port, ip: ip, proxy: nil)
    }

    /// Like `getConnection(host:port:)`, but only a connection through `proxy` (to `ip` only, if
    /// given), whether or not a list names it: one made through another proxy, or directly, is
    /// never handed out. A failure of a pinned proxy fails the get (no other proxy is tried).
    public func getConnection(
        host: String, port: Int = 443, ip: String? = nil, proxy: Proxy, isolation: isolated (any Actor)? = #isolation
    ) async throws -> PooledConnection {
        if let ip, ipFamily(ip) == 0 { throw HotPoolError.invalidIP(ip) }
        return try await acquire(host: host, port: port, ip: ip, proxy: proxy)
    }

    /// New connections to `host` (every port) go through `proxies`, in turn by `proxySelection`;
    /// an empty list: directly; nil: the pool's `proxies` again. Its connections off the new list
    /// are closed (idle now, leased when returned, `proxyRemoved`).
    /// - Throws: `invalidHostName`, or `invalidConfiguration` for a proxy listed twice.
    public func setProxies(_ proxies: [Proxy]?, forHost host: String) throws {
        guard isValidHostName(host) else { throw HotPoolError.invalidHostName(host) }
        if let proxies, Set(proxies).count != proxies.count { throw HotPoolError.invalidConfiguration("proxies: a proxy is listed twice") }
        sendEverywhere(.setProxies(proxies, host: host))
    }

    /// The ledger of every proxy the pool holds (listed, or pinned by a connection or a caller):
    /// its dials, failures, open connections, whether it is in rotation, and per target IP what
    /// went through it. With several reactors, each ejects a proxy by its own count of failures:
    /// a proxy is in rotation here only while every reactor has it in rotation.
    public func proxyStats(isolation: isolated (any Actor)? = #isolation) async -> [ProxyStats] {
        ProxyStats.merging(await onEveryReactor(whenClosed: { $0.proxyStats() }) { $0.proxyStats() })
    }

    /// A connection whose `GET` of `url` was answered 200. Any other answer destroys that
    /// connection (`validationFailed`; a 403 also blacklists its IP for the host) and another is
    /// tried, at most `maxRetries` more times; so is a 200 after which the connection cannot
    /// carry another request (the server closed it or sent more than was asked).
    public func getConnection(validating url: String, isolation: isolated (any Actor)? = #isolation) async throws -> PooledConnection {
        let target = try ValidationTarget(url)
        // Replaced on every pass (there is at least one) before it can be thrown.
        var lastError: any Error = HotPoolError.validationFailed(host: target.host, ip: "", status: 0)
        for _ in 0...configuration.maxRetries {
            // A cancelled caller stops trying (its last error said why the previous try failed).
            guard !Task.isCancelled else { throw HotPoolError.cancelled }
            let connection = try await getConnection(host: target.host, port: target.port)
            let request = HTTPRequest(method: .get, scheme: "https", authority: target.authority, path: target.path)
            do {
                let response = try await roundTrip(connection, request, body: [], timeout: configuration.validationTimeout)
                if response.head.status.code == 200 {
                    if response.connectionReusable { return connection }
                    lastError = HotPoolError.connectionClosed(host: connection.targetHost, ip: connection.targetIP)
                    putConnection(connection)  // destroyed, with the reason that retired it
                    continue
                }
                lastError = HotPoolError.validationFailed(
                    host: connection.targetHost, ip: connection.targetIP, status: response.head.status.code)
                send(.rejectValidation(connection.handle, status: response.head.status.code), to: driver(of: connection))
            } catch {
                lastError = error
                putConnection(connection)
            }
        }
        throw lastError
    }

    @inline(__always)  // one async frame for a get, not two
    private func acquire(
        host: String, port: Int, ip: String?, proxy: Proxy?, isolation: isolated (any Actor)? = #isolation
    ) async throws -> PooledConnection {
        let request = try acquireRequest(host: host, port: port, ip: ip, proxy: proxy)
        let driver = driver(forHost: host)
        let (id, reactor) = (driver.newWaiterID(), driver.reactor)
        if reactor.isOnReactorThread {
            guard !Task.isCancelled else { throw driver.cancellationError }
            if let answer = driver.acquireNow(id, request) { return PooledConnection(pool: self, driver: driver, lease: try answer.get()) }
            // It waits: its handoff is registered before anything else runs on this thread.
            return PooledConnection(pool: self, driver: driver, lease: try await wait(id, on: driver) { driver.register(id, $0) }.get())
        }
        return PooledConnection(pool: self, driver: driver, lease: try await wait(id, on: driver) { handoff in
            if !reactor.post({ driver.acquire(id, request, handoff) }) { handoff.tryDeliver(.failure(.poolClosed)) }
        }.get())
    }

    /// What a get of `host:port` (pinned to `ip` and `proxy`, if given) asks the state machine for.
    private func acquireRequest(host: String, port: Int, ip: String?, proxy: Proxy? = nil) throws(HotPoolError) -> PoolStateMachine.AcquireRequest {
        guard isValidHostName(host) else { throw .invalidHostName(host) }
        guard (1...65535).contains(port) else { throw .invalidURL("\(host):\(port)") }
        return PoolStateMachine.AcquireRequest(host: host, port: port, pinnedIP: ip, pinnedProxy: proxy)
    }

    /// Runs `start` with a new handoff and awaits what the reactor delivers to it. If the task is
    /// cancelled meanwhile, only the waiter's id crosses: the reactor fails the waiter if it still
    /// waits, and refuses a request that arrives after the cancel.
    ///
    /// Like every async call of the pool, it runs in the caller's isolation (the `isolation`
    /// parameter), so a caller on the reactor thread, such as an actor whose executor is
    /// `executor`, stays there.
    private func wait<T: Sendable>(
        _ id: WaiterID, on driver: PoolDriver, isolation: isolated (any Actor)? = #isolation,
        _ start: (Handoff<Result<T, HotPoolError>>) -> Void
    ) async -> Result<T, HotPoolError> {
        let reactor = driver.reactor
        let handoff = Handoff<Result<T, HotPoolError>>()
        return await withTaskCancellationHandler {
            // Capturing `isolation` keeps the operation on the caller's actor (a closure that
            // does not name it would be nonisolated, and hop to the global executor).
            _ = isolation
            return await handoff.wait(start)
        } onCancel: {
            handoff.requestCancel()
            reactor.post { driver.cancel(id) }
        }
    }

    /// Hands `event` to `driver`: directly on its reactor thread, posted from any other.
    private func send(_ event: PoolStateMachine.Event, to driver: PoolDriver) {
        if driver.reactor.isOnReactorThread {
            driver.send(event)
        } else {
            driver.reactor.post { driver.send(event) }
        }
    }

    /// Hands `event` to every reactor of the pool.
    private func sendEverywhere(_ event: PoolStateMachine.Event) {
        for driver in drivers { send(event, to: driver) }
    }

    /// Returns a connection (the seed's PutConnection). Never throws, never blocks: an unhealthy,
    /// expired or server-closed connection is destroyed, a healthy one goes to the oldest waiter
    /// or idles. A second put (even after the connection went to another caller), or a put after
    /// remove or close, is ignored and counted in `PoolStats.staleHandleUses`.
    public func putConnection(_ connection: PooledConnection) {
        useHandle(of: connection, .release(connection.handle))
    }

    /// Destroys a connection the caller holds now (the seed's abnormal removal, reason `removed`).
    /// A connection already returned, removed or closed is left alone and the misuse counted.
    public func removeConnection(_ connection: PooledConnection) {
        useHandle(of: connection, .remove(connection.handle))
    }

    /// Hands `event`, about `connection`'s handle, to the reactor that made the connection; a
    /// connection of another pool is only counted (`staleHandleUses`).
    private func useHandle(of connection: PooledConnection, _ event: PoolStateMachine.Event) {
        if connection.pool === self {
            send(event, to: driver(of: connection))
        } else {
            send(.foreignHandleUsed, to: currentDriver ?? drivers[0])
        }
    }

    /// Runs `body` with a connection and returns it on every exit path. A network or TLS error
    /// inside has marked the connection unhealthy, so it is destroyed rather than reused. `body`
    /// runs in the caller's isolation, and its result is handed back to it.
    public func withConnection<T>(
        host: String, port: Int = 443, isolation: isolated (any Actor)? = #isolation,
        _ body: (PooledConnection) async throws -> sending T
    ) async throws -> sending T {
        let connection = try await getConnection(host: host, port: port)
        defer { putConnection(connection) }
        return try await body(connection)
    }

    /// Sends `request` (and `body`) to `host:port` and returns the whole response, the get, the
    /// round trip and the put done as one chain on the reactor: one hop from any thread, none
    /// from a task on `executor`. Connections are chosen and returned as `withConnection` and
    /// `roundTrip` do (the profile's headers added, the request framed by the pool, a request it
    /// cannot frame refused with `invalidRequest` before anything is asked, an unhealthy
    /// connection destroyed), within
    /// `acquireTimeout` to get a connection, then `timeout` and `bodyTimeout` for the round trip
    /// as `PooledConnection.roundTrip` takes them. The body is decoded
    /// as `PooledConnection.roundTrip` decodes it, unless `decompress` is false. Cancelling the task
    /// fails a caller still waiting for a connection with `cancelled`; a request already sent is answered.
    ///
    /// With a retry policy (`retry`, else the configuration's `retryPolicy`), an attempt answered
    /// with one of its statuses, or failed on the way, runs again after a backoff, on another IP
    /// of the host when it has one in rotation, within `maxAttempts`; each attempt has the whole
    /// `timeout`, `bodyTimeout` and `acquireTimeout`. The answer is the last attempt's. See `RetryPolicy`. An
    /// unusable policy is refused with `invalidArgument`.
    public func execute(
        _ request: HTTPRequest, body: [UInt8] = [], host: String, port: Int = 443, timeout: Duration? = nil,
        bodyTimeout: Duration? = nil, decompress: Bool = true, retry: RetryPolicy? = nil,
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> HotResponse {
        let acquire = try acquireRequest(host: host, port: port, ip: nil)
        if let problem = RequestFraming.problem(request, bodyCount: body.count) { throw HotPoolError.invalidRequest(problem) }
        let (timeout, bodyTimeout) = try requestTimeouts(timeout, bodyTimeout)
        if let problem = retry?.problem { throw HotPoolError.invalidArgument(problem) }
        let retryPolicy = retry ?? configuration.retryPolicy
        return try await ask(driver(forHost: host), { handoff in
            .execute(PendingExecute(request: request, body: body, timeout: timeout.nanoseconds, bodyTimeout: bodyTimeout?.nanoseconds,
                                    decompress: decompress, handoff: handoff, acquire: acquire, retryPolicy: retryPolicy))
        }, { .acquire($0, acquire) }).get()
    }

    /// A round trip's bounds: `timeout`, or `requestTimeout` when nil, and `bodyTimeout`; one that
    /// is not positive throws `invalidArgument`.
    func requestTimeouts(_ timeout: Duration?, _ bodyTimeout: Duration?) throws(HotPoolError) -> (Duration, Duration?) {
        for (name, value) in [("timeout", timeout), ("bodyTimeout", bodyTimeout)] {
            if let value, value <= .zero { throw .invalidArgument("a request's \(name) must be positive, not \(value)") }
        }
        return (timeout ?? configuration.requestTimeout, bodyTimeout)
    }

    /// `request` as `connection` sends it, once it is checked: the connection is this pool's, the
    /// task is not cancelled, and the pool can frame the request.
    /// A body given as a sequence (`streamsBody`) follows the head in pieces.
    func exchangeMessage(_ connection: PooledConnection, _ request: HTTPRequest, body: [UInt8], streamsBody: Bool = false,
                         decompress: Bool) throws(HotPoolError) -> ExchangeMessage {
        guard connection.pool === self else {
            send(.foreignHandleUsed, to: currentDriver ?? drivers[0])
            throw .staleConnection
        }
        guard !Task.isCancelled else { throw .cancelled }
        if let problem = RequestFraming.problem(request, bodyCount: streamsBody ? nil : body.count) { throw .invalidRequest(problem) }
        return connection.message(request, body: body, streamsBody: streamsBody, decompress: decompress)
    }

    func roundTrip(
        _ connection: PooledConnection, _ request: HTTPRequest, body: [UInt8], timeout: Duration?, bodyTimeout: Duration? = nil,
        decompress: Bool = true, isolation: isolated (any Actor)? = #isolation
    ) async throws -> HotResponse {
        let message = try exchangeMessage(connection, request, body: body, decompress: decompress)
        let (timeout, bodyTimeout) = try requestTimeouts(timeout, bodyTimeout)
        let driver = driver(of: connection)
        let reactor = driver.reactor
        return try await Handoff<Result<HotResponse, HotPoolError>>.wait { handoff in
            if reactor.isOnReactorThread {
                driver.requestExchange(connection.handle, message, timeout: timeout, bodyTimeout: bodyTimeout, handoff)
            } else if !reactor.post({ driver.requestExchange(connection.handle, message, timeout: timeout, bodyTimeout: bodyTimeout, handoff) }) {
                handoff.tryDeliver(.failure(.poolClosed))
            }
        }.get()
    }

    /// A snapshot of the pool's figures, all from one instant (with several reactors, each
    /// reactor's from its own instant, added up); after `close()`, the figures as the pool closed.
    public func stats(isolation: isolated (any Actor)? = #isolation) async -> PoolStats {
        PoolStats(merging: await onEveryReactor(whenClosed: { $0.frozenStats! }) { driver in
            let stats = driver.stats
            driver.metrics.record(stats)
            return stats
        })
    }

    /// One entry per open connection.
    public func connectionStats(isolation: isolated (any Actor)? = #isolation) async -> [ConnectionStats] {
        await onEveryReactor(whenClosed: { _ in [] }) { $0.connectionSnapshots() }.flatMap(\.self)
    }

    /// Destroys idle connections unused for `idleTimeout` now, and frees the records of hosts
    /// with no connection, waiter or blacklisted IP that no caller asked for that long (unless
    /// `minIdlePerHost` keeps them warm) and of IPs out of rotation that nothing uses (as the cleanup
    /// timer does); returns how many connections were destroyed.
    public func cleanupIdleConnections(isolation: isolated (any Actor)? = #isolation) async -> Int {
        await onEveryReactor(whenClosed: { _ in 0 }) { driver in
            driver.send(.cleanupIdle)
            return driver.lastCleanupCount
        }.reduce(0, +)
    }

    /// Destroys idle connections older than `maxLifetime` now and marks leased ones to be
    /// destroyed when returned; returns how many were destroyed now.
    public func cleanupExpiredConnections(maxLifetime: Duration, isolation: isolated (any Actor)? = #isolation) async -> Int {
        await onEveryReactor(whenClosed: { _ in 0 }) { driver in
            driver.send(.cleanupExpired(maxLifetime: maxLifetime.nanoseconds))
            return driver.lastCleanupCount
        }.reduce(0, +)
    }

    /// Closes the pool: stops its timers, fails waiting callers with `poolClosed`, destroys every
    /// connection (leased ones too), frees every fd and SSL object and ends the reactor threads.
    /// Idempotent, and safe to call concurrently: every caller returns only once every reactor
    /// thread has been joined. Afterwards every call fails with `poolClosed` and puts are ignored.
    /// - Throws: the first error met while closing sockets (to every caller).
    public func close() async throws {
        beginClose()
        // Wait for the loops to end before joining their threads, so a caller running on a
        // reactor (this pool's, whose task then resumes on a thread of its late jobs, or another
        // pool's) never blocks it for longer than a thread's last steps.
        for driver in drivers { await driver.reactor.exited() }
        for driver in drivers { await driver.reactor.stop() }
        if let error = drivers.lazy.compactMap(\.closeError).first { throw error }
    }

    /// Starts closing without waiting: each reactor closes its part of the pool, then ends its loop.
    private func beginClose() {
        closing.store(true, ordering: .relaxed)
        for driver in drivers {
            driver.reactor.post { _ = driver.close() }
            driver.reactor.requestStop()
        }
    }
}

/// The pool as a swift-service-lifecycle `Service`: `run()` holds the reactor's lifetime. It
/// returns once the pool is closed, by `close()` or, when the service group shuts down
/// gracefully or the task is cancelled, by `run()` itself.
extension HotConnPool: Service {
    /// Waits until the pool is closed, closing it on graceful shutdown or cancellation.
    /// - Throws: the first error met while closing sockets.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                for driver in drivers { await driver.reactor.exited() }
            } onCancel: {
                self.beginClose()
            }
        } onGracefulShutdown: {
            self.beginClose()
        }
        try await close()
    }
}

/// The parts of a validation URL.
private struct ValidationTarget {
    let host: String
    let port: Int
    let authority: String
    let path: String

    init(_ url: String) throws(HotPoolError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme else {
            throw .invalidURL(url)
        }
        guard scheme.lowercased() == "https" else { throw .unsupportedScheme(scheme) }
        guard let host = components.host, !host.isEmpty else { throw .invalidURL(url) }
        // URLComponents gives no port for one too large for an Int: read the written one.
        guard let port = Self.port(url), (1...65535).contains(port) else { throw .invalidURL(url) }
        let name = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        guard isValidHostName(name) else { throw .invalidHostName(name) }
        self.host = name
        self.port = port
        self.authority = port == 443 ? host : "\(host):\(port)"
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        self.path = components.percentEncodedQuery.map { "\(path)?\($0)" } ?? path
    }

    /// The port written in `url`'s authority (443 when none or empty); nil if it is not 1 to 5 digits.
    private static func port(_ url: String) -> Int? {
        guard let schemeEnd = url.firstRange(of: "://") else { return nil }
        var authority = url[schemeEnd.upperBound...].prefix { !"/?#".contains($0) }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        let afterHost = authority.hasPrefix("[") ? authority.drop { $0 != "]" }.dropFirst() : authority.drop { $0 != ":" }
        guard afterHost.hasPrefix(":") else { return afterHost.isEmpty ? 443 : nil }
        let digits = afterHost.dropFirst()
        if digits.isEmpty { return 443 }
        guard digits.count <= 5, digits.allSatisfy({ ("0"..."9").contains($0) }), let port = Int(digits) else { return nil }
        return port
    }
}
