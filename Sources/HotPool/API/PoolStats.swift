/// Why a connection was destroyed. Every destroyed connection is counted under exactly one.
public enum CloseReason: Hashable, Sendable, CaseIterable {
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

    /// A compact code for the table's `pendingClose` column (0 = none).
    var code: UInt8 { UInt8(Self.allCases.firstIndex(of: self)! + 1) }

    init?(code: UInt8) {
        guard code > 0, Int(code) <= Self.allCases.count else { return nil }
        self = Self.allCases[Int(code) - 1]
    }
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
    /// Round trips started since the pool was created.
    public var totalRequests: Int
    /// Round trips that failed (network, TLS, malformed answer, timeout).
    public var failedRequests: Int
    /// `(totalRequests - failedRequests) / totalRequests`, 1 when there were none.
    public var successRate: Double
    /// Connections dialed to addresses that came from DNS (not `setAddresses`).
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
}
