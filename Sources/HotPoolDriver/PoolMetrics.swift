import HotPoolCore
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine
import Metrics

/// The pool's figures exported through swift-metrics (a no-op until a backend is bootstrapped).
package struct PoolMetrics {
    private let closedCounters: [CloseReason: Counter] = Dictionary(
        uniqueKeysWithValues: CloseReason.allCases.map {
            ($0, Counter(label: "hotpool_connections_closed_total", dimensions: [("reason", "\($0)")]))
        })
    private let openedCounter = Counter(label: "hotpool_connections_opened_total")
    private let requestCounter = Counter(label: "hotpool_requests_total")
    private let failedRequestCounter = Counter(label: "hotpool_requests_failed_total")
    private let totalGauge = Gauge(label: "hotpool_connections", dimensions: [("state", "total")])
    private let activeGauge = Gauge(label: "hotpool_connections", dimensions: [("state", "active")])
    private let idleGauge = Gauge(label: "hotpool_connections", dimensions: [("state", "idle")])
    private let healthyGauge = Gauge(label: "hotpool_connections", dimensions: [("state", "healthy")])

    func closed(_ reason: CloseReason) { closedCounters[reason]?.increment() }
    func opened() { openedCounter.increment() }
    func request() { requestCounter.increment() }
    func requestFailed() { failedRequestCounter.increment() }

    /// Updates the gauges from a snapshot (on stats reads, cleanup ticks and close).
    package func record(_ stats: PoolStats) {
        totalGauge.record(stats.totalConnections)
        activeGauge.record(stats.activeConnections)
        idleGauge.record(stats.idleConnections)
        healthyGauge.record(stats.healthyConnections)
    }
}
