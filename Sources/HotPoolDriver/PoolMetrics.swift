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
    // Gauges of one reactor's connections: a pool's reactors each record their own (the
    // counters above only add up, so they need no such dimension).
    private let totalGauge: Gauge
    private let activeGauge: Gauge
    private let idleGauge: Gauge
    private let healthyGauge: Gauge

    /// The machine's counts exported so far. The counters follow the machine's own counting
    /// (the figures `PoolStats` shows), so no counting rule is written twice; a request the
    /// machine stops counting (its stream was refused unprocessed) and counts again where it is
    /// retried is exported once.
    private var exportedRequests = 0, exportedFailures = 0, exportedOpened = 0

    /// The metrics of the pool's reactor number `reactor`.
    package init(reactor: Int) {
        func gauge(_ state: String) -> Gauge {
            Gauge(label: "hotpool_connections", dimensions: [("state", state), ("reactor", "\(reactor)")])
        }
        (totalGauge, activeGauge, idleGauge, healthyGauge) = (gauge("total"), gauge("active"), gauge("idle"), gauge("healthy"))
    }

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
