import HotPoolCore
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

    /// The machine's counts exported so far. The counters follow the machine's own counting
    /// (the figures `PoolStats` shows), so no counting rule is written twice; a request the
    /// machine stops counting (its stream was refused unprocessed) and counts again where it is
    /// retried is exported once.
    private var exportedRequests = 0, exportedFailures = 0, exportedOpened = 0

    package init() {}

    func closed(_ reason: CloseReason) { closedCounters[reason]?.increment() }

    /// Brings the counters up to the machine's counts (three comparisons).
    mutating func follow(requests: Int, failures: Int, opened: Int) {
        func advance(_ counter: Counter, _ exported: inout Int, to count: Int) {
            guard count > exported else { return }
            counter.increment(by: count - exported)
            exported = count
        }
        advance(requestCounter, &exportedRequests, to: requests)
        advance(failedRequestCounter, &exportedFailures, to: failures)
        advance(openedCounter, &exportedOpened, to: opened)
    }

    /// Updates the gauges from a snapshot (on stats reads, cleanup ticks and close).
    package func record(_ stats: PoolStats) {
        totalGauge.record(stats.totalConnections)
        activeGauge.record(stats.activeConnections)
        idleGauge.record(stats.idleConnections)
        healthyGauge.record(stats.healthyConnections)
    }
}
