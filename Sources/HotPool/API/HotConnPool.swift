@_exported import HTTPTypes
import CShims
import FoundationEssentials

/// A pool of warm TLS connections to the IPs behind hosts, with HTTP/1.1 round trips over them.
///
/// Each pool runs one reactor thread that owns all of its state; every method here posts an
/// event to that thread and awaits the answer, so nothing is shared and nothing is locked.
/// Call `close()` when done: it destroys every connection and ends the thread.
public final class HotConnPool: Sendable {
    let reactor: Reactor
    let core: PoolCore
    /// The configuration the pool was made with.
    public let configuration: HotPoolConfiguration

    /// Creates the pool and starts its reactor thread.
    /// - Throws: `HotPoolError.invalidConfiguration` for unusable values or an unreadable CA file.
    public init(configuration: HotPoolConfiguration = .init()) throws {
        try configuration.validate()
        var contexts: [OpaquePointer] = []
        do {
            for spec in configuration.profiles {
                contexts.append(try TLSContext.make(spec, trustedCAFile: configuration.trustedCAFile))
            }
        } catch {
            contexts.forEach(hp_tls_ctx_free)
            throw error
        }
        let reactor: Reactor
        do {
            reactor = try Reactor(poller: EpollPoller())
        } catch {
            contexts.forEach(hp_tls_ctx_free)
            throw HotPoolError.invalidConfiguration("reactor: \(error)")
        }
        let core = PoolCore(config: configuration, reactor: reactor, tlsContexts: contexts)
        reactor.ioHandler = { core.handleIO($0, $1) }
        try reactor.start()
        reactor.post { core.start() }
        self.reactor = reactor
        self.core = core
        self.configuration = configuration
    }

    deinit {
        reactor.post { [core] in _ = core.close() }
        if reactor.isOnReactorThread { reactor.detach() } else { reactor.stop() }
    }

    /// Runs `work` on the reactor and returns its result; `whenClosed` once the reactor has stopped.
    private func onReactor<T: Sendable>(whenClosed: @autoclosure () -> T, _ work: @escaping @Sendable (PoolCore) -> T) async -> T {
        let core = core
        let result = await Handoff<T?>.wait { handoff in
            if !reactor.post({ handoff.deliver(work(core)) }) { handoff.deliver(nil) }
        }
        return result ?? whenClosed()
    }

    /// Uses these IPs for `host` instead of resolving its name (replaces earlier ones). Entries
    /// that are not IP literals are left out, and an invalid host name is ignored, each with a
    /// warning in the log.
    public func setAddresses(_ ips: [String], forHost host: String) {
        reactor.post { [core] in core.setAddresses(ips, forHost: host) }
    }

    /// An idle connection to `host:port` (round-robin over its IPs) or a new one. Past the pool's
    /// limits the caller waits, oldest first, at most `connectTimeout`.
    public func getConnection(host: String, port: Int = 443) async throws -> PooledConnection {
        try await acquire(host: host, port: port, ip: nil)
    }

    /// Like `getConnection(host:port:)`, but only a connection to `ip`.
    public func getConnection(host: String, port: Int = 443, ip: String) async throws -> PooledConnection {
        guard hp_ip_family(ip) != 0 else { throw HotPoolError.invalidIP(ip) }
        return try await acquire(host: host, port: port, ip: ip)
    }

    /// A connection whose `GET` of `url` was answered 200. Any other answer destroys that
    /// connection (`validationFailed`; a 403 also blacklists its IP for the host) and another is
    /// tried, at most `maxRetries` more times; so is a 200 after which the connection cannot
    /// carry another request (the server closed it or sent more than was asked).
    public func getConnection(validating url: String) async throws -> PooledConnection {
        let target = try ValidationTarget(url)
        var lastError: any Error = HotPoolError.validationFailed(status: 0)
        for _ in 0...configuration.maxRetries {
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
                lastError = HotPoolError.validationFailed(status: response.head.status.code)
                reactor.post { [core] in core.rejectValidated(connection.handle, status: response.head.status.code) }
            } catch {
                lastError = error
                putConnection(connection)
            }
        }
        throw lastError
    }

    private func acquire(host: String, port: Int, ip: String?) async throws -> PooledConnection {
        guard isValidHostName(host) else { throw HotPoolError.invalidHostName(host) }
        guard (1...65535).contains(port) else { throw HotPoolError.invalidURL("\(host):\(port)") }
        let waiter = Waiter(key: HostKey(name: host, port: port), pinnedIP: ip)
        let core = core
        let result = await withTaskCancellationHandler {
            await Handoff<Result<Lease, HotPoolError>>.wait { handoff in
                waiter.handoff = handoff
                if !reactor.post({ core.acquire(waiter) }) { waiter.finish(.failure(.poolClosed)) }
            }
        } onCancel: {
            reactor.post { core.cancel(waiter) }
        }
        return PooledConnection(pool: self, lease: try result.get())
    }

    /// Returns a connection (the seed's PutConnection). Never throws, never blocks: an unhealthy,
    /// expired or server-closed connection is destroyed, a healthy one goes to the oldest waiter
    /// or idles. A second put (even after the connection went to another caller), or a put after
    /// remove or close, is ignored and counted in `PoolStats.staleHandleUses`.
    public func putConnection(_ connection: PooledConnection) {
        let handle = connection.pool === self ? connection.handle : nil
        reactor.post { [core] in handle.map(core.release) ?? core.countStaleHandleUse() }
    }

    /// Destroys a connection the caller holds now (the seed's abnormal removal, reason `removed`).
    /// A connection already returned, removed or closed is left alone and the misuse counted.
    public func removeConnection(_ connection: PooledConnection) {
        let handle = connection.pool === self ? connection.handle : nil
        reactor.post { [core] in handle.map(core.remove) ?? core.countStaleHandleUse() }
    }

    /// Runs `body` with a connection and returns it on every exit path. A network or TLS error
    /// inside has marked the connection unhealthy, so it is destroyed rather than reused.
    public func withConnection<T: Sendable>(
        host: String, port: Int = 443, _ body: (PooledConnection) async throws -> T
    ) async throws -> T {
        let connection = try await getConnection(host: host, port: port)
        defer { putConnection(connection) }
        return try await body(connection)
    }

    func roundTrip(_ connection: PooledConnection, _ request: HTTPRequest, body: [UInt8], timeout: Duration) async throws -> HotResponse {
        guard connection.pool === self else { throw HotPoolError.staleConnection }
        guard !Task.isCancelled else { throw HotPoolError.cancelled }
        let bytes = HTTP1Request.serialize(request, body: body, defaultHost: connection.authority, profile: connection.profileHeaders)
        let isHead = request.method == .head
        let core = core
        return try await Handoff<Result<HotResponse, HotPoolError>>.wait { handoff in
            if !reactor.post({ core.roundTrip(connection.handle, request: bytes, isHead: isHead, timeout: timeout, handoff) }) {
                handoff.deliver(.failure(.poolClosed))
            }
        }.get()
    }

    /// A snapshot of the pool's figures, all from one instant.
    public func stats() async -> PoolStats {
        await onReactor(whenClosed: core.snapshot()) { core in
            let stats = core.snapshot()
            core.metrics.record(stats)
            return stats
        }
    }

    /// One entry per open connection.
    public func connectionStats() async -> [ConnectionStats] {
        await onReactor(whenClosed: []) { $0.connectionSnapshots() }
    }

    /// Destroys idle connections unused for `idleTimeout` now, and frees the records of hosts
    /// with no connection, waiter or blacklisted IP that no caller asked for that long (as the
    /// cleanup timer does); returns how many connections were destroyed.
    public func cleanupIdleConnections() async -> Int {
        await onReactor(whenClosed: 0) { core in
            defer { core.reclaimIdleHosts() }
            return core.cleanupIdle()
        }
    }

    /// Destroys idle connections older than `maxLifetime` now and marks leased ones to be
    /// destroyed when returned; returns how many were destroyed now.
    public func cleanupExpiredConnections(maxLifetime: Duration) async -> Int {
        await onReactor(whenClosed: 0) { $0.cleanupExpired(maxLifetime: maxLifetime) }
    }

    /// Closes the pool: stops its timers, fails waiting callers with `poolClosed`, destroys every
    /// connection (leased ones too), frees every fd and SSL object and ends the reactor thread.
    /// Idempotent; afterwards every call fails with `poolClosed` and puts are ignored.
    /// - Throws: the first error met while closing sockets.
    public func close() async throws {
        let error = await onReactor(whenClosed: nil) { $0.close() }
        reactor.stop()
        if let error { throw error }
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
