/// Why a connection was destroyed. Every destroyed connection is counted under exactly one.
public enum CloseReason: Hashable, Sendable, CaseIterable, BitwiseCopyable {
    /// Returned after a network or TLS error marked it unhealthy, or after the server closed it.
    case unhealthyOnReturn
    /// `removeConnection` was called.
    case removed
    /// The validation request was not answered 200.
    case validationFailed
    /// A health check failed.
    case healthCheckFailed
    /// Its IP was blacklisted for its host.
    case blacklisted
    /// Idle longer than `idleTimeout`.
    case idleTimeout
    /// Older than its maximum lifetime.
    case maxLifetime
    /// An idle connection's socket failed.
    case networkError
    /// The server closed it (while idle, or with `Connection: close`).
    case remoteClosed
    /// The pool was closed.
    case poolClosed
    /// Returned while `maxIdleConnections` connections were already idle.
    case excessIdle
    /// The server sent bytes nobody asked for (after a response, or to an idle connection):
    /// they could only be taken for the answer to a later request.
    case unsolicitedData
    /// Idle, and the least recently used, when a caller of another host needed a connection
    /// at the global cap (`maxConnections`).
    case evicted
    /// DNS no longer gives its IP for its host (closed when idle, or when returned).
    case addressRemoved
    /// Its proxy was ejected for failures (closed when idle, or when returned).
    case proxyEjected
    /// Its proxy is no longer in its host's list (`setProxies(_:forHost:)`), or it went directly
    /// and its host now has proxies (closed when idle, or when returned).
    case proxyRemoved
    /// Answered (HTTP/1.1) before its caller handed the whole streamed request body: the rest
    /// cannot follow, so the connection carries no further request.
    case requestUnfinished

    /// The server ended the connection (closed it, reset it, or sent what nobody asked for).
    package var isServerInitiated: Bool { self == .remoteClosed || self == .networkError || self == .unsolicitedData }
}

/// A snapshot of the pool, read on its reactor thread, so every figure is from the same instant.
public struct PoolStats: Sendable {
    /// Open connections: `activeConnections + idleConnections`.
    public var totalConnections: Int
    /// Connections leased to callers.
    public var activeConnections: Int
    /// Connections waiting in the pool.
    public var idleConnections: Int
    /// Open connections not marked unhealthy.
    public var healthyConnections: Int
    /// Round trips started since the pool was created; an `execute` its retry policy ran
    /// several times counts once (its further attempts are in `retries`).
    public var totalRequests: Int
    /// Round trips that failed (network, TLS, malformed answer, timeout); a retried `execute`
    /// counts only if its last attempt failed.
    public var failedRequests: Int
    /// Further attempts `execute`'s retry policy made (a request tried three times counts 2).
    public var retries: Int
    /// `(totalRequests - failedRequests) / totalRequests`, 1 when there were none.
    public var successRate: Double
    /// First connections to IPs a DNS refresh added to a host (not in its first answer, nor
    /// from `setAddresses`): one per IP each time DNS brings it back.
    public var newConnectionsFromDNS: Int
    /// Destroyed connections by reason; each destruction counted once.
    public var closedByReason: [CloseReason: Int]
    /// Connections being dialed (not yet counted in `totalConnections`).
    public var dialingConnections: Int
    /// Dials that failed (refused, timed out, handshake failed).
    public var failedDials: Int
    /// Callers waiting for a connection.
    public var waitingCallers: Int
    /// Puts, removes and round trips on handles whose lease had ended, or of another pool.
    public var staleHandleUses: Int
    /// Connections opened since the pool was created.
    public var connectionsOpened: Int
    /// TLS handshakes that resumed a session an earlier connection received (PSK in TLS 1.3).
    public var resumedHandshakes: Int
    package init(totalConnections: Int, activeConnections: Int, idleConnections: Int, healthyConnections: Int, totalRequests: Int, failedRequests: Int, successRate: Double, newConnectionsFromDNS: Int, closedByReason: [CloseReason: Int], dialingConnections: Int, failedDials: Int, waitingCallers: Int, staleHandleUses: Int, connectionsOpened: Int, resumedHandshakes: Int = 0, retries: Int = 0) {
        self.totalConnections = totalConnections
        self.activeConnections = activeConnections
        self.idleConnections = idleConnections
        self.healthyConnections = healthyConnections
        self.totalRequests = totalRequests
        self.failedRequests = failedRequests
        self.successRate = successRate
        self.newConnectionsFromDNS = newConnectionsFromDNS
        self.closedByReason = closedByReason
        self.dialingConnections = dialingConnections
        self.failedDials = failedDials
        self.waitingCallers = waitingCallers
        self.staleHandleUses = staleHandleUses
        self.connectionsOpened = connectionsOpened
        self.resumedHandshakes = resumedHandshakes
        self.retries = retries
    }
}

/// One open connection, as seen on the reactor.
public struct ConnectionStats: Sendable {
    /// The host name the connection was made for.
    public var targetHost: String
    /// The IP it is connected to.
    public var targetIP: String
    /// Round trips made on it.
    public var requestCount: Int
    /// Round trips on it that failed.
    public var errorCount: Int
    /// False once a network or TLS error hit it.
    public var isHealthy: Bool
    /// When it was established.
    public var created: ContinuousClock.Instant
    /// When it was last handed out or returned.
    public var lastUsed: ContinuousClock.Instant
    /// True while a caller holds it.
    public var isLeased: Bool
    /// The name of the fingerprint profile it was made with.
    public var profile: String
    /// The local address it was bound to (from `localAddresses`); nil = chosen by the system.
    public var localAddress: String?
    /// The HTTP version the server chose for it (by ALPN).
    public var httpVersion: HTTPProtocolVersion
    /// The proxy it goes through; nil = directly.
    public var proxy: Proxy?
    package init(targetHost: String, targetIP: String, requestCount: Int, errorCount: Int, isHealthy: Bool, created: ContinuousClock.Instant, lastUsed: ContinuousClock.Instant, isLeased: Bool, profile: String, localAddress: String?, httpVersion: HTTPProtocolVersion, proxy: Proxy?) {
        self.proxy = proxy
        self.targetHost = targetHost
        self.targetIP = targetIP
        self.requestCount = requestCount
        self.errorCount = errorCount
        self.isHealthy = isHealthy
        self.created = created
        self.lastUsed = lastUsed
        self.isLeased = isLeased
        self.profile = profile
        self.localAddress = localAddress
        self.httpVersion = httpVersion
    }
}

/// Why an IP is out of rotation for a host.
public enum BlacklistReason: Hashable, Sendable {
    /// A validation or health check was answered 403 (the seed's rule).
    case forbidden
    /// `consecutiveFailuresToEject` network or TLS failures in a row (outlier ejection).
    case failures
    /// `blacklist(ip:forHost:for:)`.
    case manual
    /// `BlockSignalPolicy.threshold` answers with a block status (403, 429, ...) to its requests
    /// within the policy's window (`HotPoolConfiguration.blockSignals`).
    case blocked
}

/// An IP out of rotation for a host, and until when at least: a recovery probe brings it back
/// only when it succeeds.
public struct BlacklistEntry: Sendable, Hashable {
    /// The IP.
    public var ip: String
    /// Why it is out.
    public var reason: BlacklistReason
    /// When the recovery pass may probe it.
    public var until: ContinuousClock.Instant
    package init(ip: String, reason: BlacklistReason, until: ContinuousClock.Instant) {
        self.ip = ip
        self.reason = reason
        self.until = until
    }
}

/// What the pool knows of one IP of one host (name and port).
public struct IPStats: Sendable {
    /// The IP.
    public var ip: String
    /// The host's port.
    public var port: Int
    /// Round trips started on connections to it.
    public var requests: Int
    /// Failed dials and failed round trips on it.
    public var failures: Int
    /// Open connections to it (idle and leased).
    public var openConnections: Int
    /// True if new connections may go to it: among the host's addresses, not blacklisted, allowed.
    public var inRotation: Bool
    /// Why it is blacklisted, nil if it is not.
    public var blacklistReason: BlacklistReason?
    /// Until when it is blacklisted at least, nil if it is not.
    public var blacklistedUntil: ContinuousClock.Instant?
    /// When DNS last gave it; nil if its addresses never came from DNS.
    public var lastResolved: ContinuousClock.Instant?
    /// Answers with a status of `HotPoolConfiguration.blockSignals` to requests on connections to
    /// it, since its record was made; 0 without a policy.
    public var blockAnswers: Int
    /// Of those, the ones counting towards the policy's `threshold` now: within its `window`,
    /// and since the IP last came back into rotation.
    public var recentBlockAnswers: Int
    package init(ip: String, port: Int, requests: Int, failures: Int, openConnections: Int, inRotation: Bool, blacklistReason: BlacklistReason?, blacklistedUntil: ContinuousClock.Instant?, lastResolved: ContinuousClock.Instant?, blockAnswers: Int, recentBlockAnswers: Int) {
        self.ip = ip
        self.port = port
        self.requests = requests
        self.failures = failures
        self.openConnections = openConnections
        self.inRotation = inRotation
        self.blacklistReason = blacklistReason
        self.blacklistedUntil = blacklistedUntil
        self.lastResolved = lastResolved
        self.blockAnswers = blockAnswers
        self.recentBlockAnswers = recentBlockAnswers
    }
}

/// What went through one proxy to one target IP.
public struct ProxyTargetStats: Sendable, Hashable {
    /// Round trips started on connections to the IP through the proxy.
    public var requests: Int
    /// Of those and of dials through the proxy, the failures charged to the IP (the target's
    /// answer or its connection failed once the tunnel was up).
    public var failures: Int
    package init(requests: Int, failures: Int) {
        self.requests = requests
        self.failures = failures
    }
}

/// One proxy's ledger: its dials, the failures charged to it, its connections and whether dials
/// may take it.
public struct ProxyStats: Sendable {
    /// The proxy (its `description` holds no credentials).
    public var proxy: Proxy
    /// Dials through it.
    public var dials: Int
    /// Dials that failed by its fault (refused, timed out, a 407, a SOCKS5 error, no tunnel).
    public var failedDials: Int
    /// Such failures since its last tunnel that opened.
    public var consecutiveFailures: Int
    /// Open connections through it (idle and leased).
    public var openConnections: Int
    /// True if dials may take it: not ejected for failures.
    public var inRotation: Bool
    /// When its ejection ends and a recovery dial may try it; nil while it is in rotation.
    public var ejectedUntil: ContinuousClock.Instant?
    /// By target IP: what went through it.
    public var targets: [String: ProxyTargetStats]
    package init(proxy: Proxy, dials: Int, failedDials: Int, consecutiveFailures: Int, openConnections: Int, inRotation: Bool, ejectedUntil: ContinuousClock.Instant?, targets: [String: ProxyTargetStats]) {
        self.proxy = proxy
        self.dials = dials
        self.failedDials = failedDials
        self.consecutiveFailures = consecutiveFailures
        self.openConnections = openConnections
        self.inRotation = inRotation
        self.ejectedUntil = ejectedUntil
        self.targets = targets
    }
}

// MARK: one pool's figures from its reactors'

/// `parts` (each reactor's list) as one list: entries with the same key are combined into the
/// first one met, which keeps its place.
package func merged<Entry, Key: Hashable>(
    _ parts: [[Entry]], by key: (Entry) -> Key, _ combine: (inout Entry, Entry) -> Void
) -> [Entry] {
    var result: [Entry] = []
    var positions: [Key: Int] = [:]
    for entry in parts.joined() {
        if let position = positions[key(entry)] {
            combine(&result[position], entry)
        } else {
            positions[key(entry)] = result.count
            result.append(entry)
        }
    }
    return result
}

/// The later of two instants, either of which may be missing.
private func latest(_ a: ContinuousClock.Instant?, _ b: ContinuousClock.Instant?) -> ContinuousClock.Instant? {
    guard let a, let b else { return a ?? b }
    return max(a, b)
}

extension PoolStats {
    /// The pool's figures from its reactors' (each read at its reactor's own instant): counts added.
    package init(merging parts: [PoolStats]) {
        self = parts[0]
        for part in parts.dropFirst() {
            totalConnections += part.totalConnections
            activeConnections += part.activeConnections
            idleConnections += part.idleConnections
            healthyConnections += part.healthyConnections
            totalRequests += part.totalRequests
            failedRequests += part.failedRequests
            retries += part.retries
            newConnectionsFromDNS += part.newConnectionsFromDNS
            closedByReason.merge(part.closedByReason, uniquingKeysWith: +)
            dialingConnections += part.dialingConnections
            failedDials += part.failedDials
            waitingCallers += part.waitingCallers
            staleHandleUses += part.staleHandleUses
            connectionsOpened += part.connectionsOpened
            resumedHandshakes += part.resumedHandshakes
        }
        successRate = totalRequests == 0 ? 1 : Double(totalRequests - failedRequests) / Double(totalRequests)
    }
}

extension BlacklistEntry {
    /// One entry per IP from the reactors' lists, by address: the one out longest (reactors
    /// agree on a blacklisting eventually, each on its own time).
    package static func merging(_ parts: [[BlacklistEntry]]) -> [BlacklistEntry] {
        merged(parts, by: \.ip) { entry, other in if other.until > entry.until { entry = other } }.sorted { $0.ip < $1.ip }
    }
}

extension IPStats {
    /// One entry per IP and port from the reactors' lists: counts added; in rotation only where
    /// every reactor has it in rotation; the blacklisting that lasts longest; the latest lookup.
    package static func merging(_ parts: [[IPStats]]) -> [IPStats] {
        merged(parts, by: { IPAndPort(ip: $0.ip, port: $0.port) }) { entry, other in
            entry.requests += other.requests
            entry.failures += other.failures
            entry.openConnections += other.openConnections
            entry.blockAnswers += other.blockAnswers
            entry.recentBlockAnswers += other.recentBlockAnswers
            entry.inRotation = entry.inRotation && other.inRotation
            if let until = other.blacklistedUntil, entry.blacklistedUntil.map({ until > $0 }) ?? true {
                (entry.blacklistReason, entry.blacklistedUntil) = (other.blacklistReason, until)
            }
            entry.lastResolved = latest(entry.lastResolved, other.lastResolved)
        }
    }
}

/// An IP of a host's port (`IPStats` are per both).
private struct IPAndPort: Hashable {
    let ip: String
    let port: Int
}

extension ProxyStats {
    /// One ledger per proxy from the reactors' (each ejects a proxy by its own count of
    /// failures): counts added, the longest run of failures, in rotation only where every
    /// reactor has it, the latest ejection's end.
    package static func merging(_ parts: [[ProxyStats]]) -> [ProxyStats] {
        merged(parts, by: \.proxy) { entry, other in
            entry.dials += other.dials
            entry.failedDials += other.failedDials
            entry.consecutiveFailures = max(entry.consecutiveFailures, other.consecutiveFailures)
            entry.openConnections += other.openConnections
            entry.inRotation = entry.inRotation && other.inRotation
            entry.ejectedUntil = latest(entry.ejectedUntil, other.ejectedUntil)
            entry.targets.merge(other.targets) { ProxyTargetStats(requests: $0.requests + $1.requests, failures: $0.failures + $1.failures) }
        }
    }
}
