import CShims
import DequeModule
import Glibc
import HTTPTypes
import HotPoolCore
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine
import Logging
import Synchronization

/// What the API reads, on the reactor thread: figures, blacklists, per-IP and per-connection records.
extension PoolDriver {
    // MARK: statistics

    package func instant(_ nanos: Int64) -> ContinuousClock.Instant {
        epochInstant + .nanoseconds(nanos - epochNanos)
    }

    /// The pool's figures now; once it is closed, those frozen at close.
    package var stats: PoolStats {
        if let frozenStats { return frozenStats }
        var stats = machine.snapshot()
        stats.resumedHandshakes = resumedHandshakes
        return stats
    }

    /// The pool was closed.
    package var isClosed: Bool { machine.closed }

    /// Idle connections the last `cleanupIdle` or `cleanupExpired` event destroyed.
    package var lastCleanupCount: Int { machine.lastCleanupCount }

    /// Host records the pool holds.
    package var hostRecordCount: Int { machine.hostRecordCount }

    /// Idle connections, across hosts.
    package var idleConnectionCount: Int { machine.idleConnectionCount }

    /// The IPs out of rotation for the host name (any port).
    package func blacklistEntries(forHost host: String) -> [BlacklistEntry] {
        machine.blacklistedIPs(forName: host).map { BlacklistEntry(ip: $0.address, reason: $0.reason, until: instant($0.until)) }
    }

    /// What the pool knows of each IP of the host name, per port.
    package func ipStats(forHost host: String) -> [IPStats] {
        machine.ipRecords(forName: host).map { entry in
            let record = entry.record
            return IPStats(
                ip: record.address, port: entry.port, requests: record.requests, failures: record.failures,
                openConnections: entry.open, inRotation: entry.inRotation, blacklistReason: record.blacklistReason,
                blacklistedUntil: record.blacklistReason == nil ? nil : instant(record.blacklistedUntil),
                lastResolved: record.lastResolved == 0 ? nil : instant(record.lastResolved),
                blockAnswers: record.blockAnswers, recentBlockAnswers: machine.recentBlockAnswers(of: record, at: reactor.now))
        }
    }

    /// Every proxy's ledger.
    package func proxyStats() -> [ProxyStats] {
        machine.proxyLedger().map { record, open in
            ProxyStats(
                proxy: record.proxy, dials: record.dials, failedDials: record.failedDials,
                consecutiveFailures: record.consecutiveFailures, openConnections: open, inRotation: record.ejectedUntil == nil,
                ejectedUntil: record.ejectedUntil.map(instant),
                targets: record.targets.mapValues { ProxyTargetStats(requests: $0.requests, failures: $0.failures) })
        }
    }

    package func connectionSnapshots() -> [ConnectionStats] {
        machine.connectionRecords().map { record in
            ConnectionStats(
                targetHost: record.host, targetIP: record.ip, requestCount: record.requestCount,
                errorCount: record.errorCount, isHealthy: record.isHealthy, created: instant(record.created),
                lastUsed: instant(record.lastUsed), isLeased: record.isLeased,
                profile: identity[Int(record.slot)]?.profile ?? "", localAddress: identity[Int(record.slot)]?.localAddress,
                httpVersion: http2[Int(record.slot)] == nil ? .http1_1 : .http2, proxy: identity[Int(record.slot)]?.proxy)
        }
    }
}
