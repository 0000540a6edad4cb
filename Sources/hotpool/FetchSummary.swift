import Foundation
import HotPool

/// What `hotpool fetch` reports when it ends, as text or JSON.
struct FetchSummary: Codable {
    /// The latency percentiles of answered requests, from an HdrHistogram (3 significant digits).
    struct Latency: Codable {
        var p50: Double, p90: Double, p99: Double, max: Double
    }

    /// One IP of a host, as the pool counted it.
    struct IP: Codable {
        var ip: String
        var requests: Int
        var failures: Int
        var state: String
    }

    /// A host's IPs.
    struct Host: Codable {
        var host: String
        var ips: [IP]
    }

    /// Requests to send (`-n`).
    var requested: Int
    /// Requests answered, whatever the status.
    var answered = 0
    /// Requests with no answer.
    var failed = 0
    var interrupted = false
    var seconds = 0.0
    /// Answers by status code.
    var statuses: [String: Int] = [:]
    /// Failures by error.
    var errors: [String: Int] = [:]
    var latencyMilliseconds: Latency?
    /// Body bytes of the answers, as handed over (decoded).
    var bodyBytes = 0
    /// Bodies `--out` could not write.
    var unwrittenBodies = 0
    var connectionsOpened = 0
    /// Connections destroyed, by reason (after the pool closed: every connection opened).
    var destroyed: [String: Int] = [:]
    /// Each host's IPs, as the pool counted them.
    var hosts: [Host] = []

    init(requested: Int) {
        self.requested = requested
    }

    var requestsPerSecond: Double { seconds > 0 ? Double(answered + failed) / seconds : 0 }

    mutating func record(status: Int, bodyBytes: Int) {
        answered += 1
        statuses[String(status), default: 0] += 1
        self.bodyBytes += bodyBytes
    }

    mutating func record(error: HotPoolError) {
        failed += 1
        errors[error.description, default: 0] += 1
    }

    /// The pool's own figures.
    mutating func add(_ stats: PoolStats) {
        connectionsOpened = stats.connectionsOpened
        destroyed = Dictionary(uniqueKeysWithValues: stats.closedByReason.filter { $0.value > 0 }.map { ("\($0.key)", $0.value) })
    }

    /// The summary as one JSON object, snake_case keys.
    var json: String {
        struct Document: Encodable {
            let summary: FetchSummary
            let requestsPerSecond: Double
            func encode(to encoder: any Encoder) throws {
                try summary.encode(to: encoder)
                var container = encoder.container(keyedBy: Key.self)
                try container.encode(requestsPerSecond, forKey: .requestsPerSecond)
            }
            enum Key: CodingKey { case requestsPerSecond }
        }
        return jsonText(Document(summary: self, requestsPerSecond: requestsPerSecond))
    }

    /// The summary as a person reads it.
    var text: String {
        var lines: [String] = []
        let done = answered + failed
        lines.append((interrupted ? "interrupted: " : "") + "\(done) of \(requested) requests in \(String(format: "%.2f", seconds)) s "
                     + "(\(String(format: "%.1f", requestsPerSecond)) req/s): \(answered) answered, \(failed) failed")
        if !statuses.isEmpty {
            lines.append("statuses     " + Self.counts(statuses))
        }
        if let latency = latencyMilliseconds {
            lines.append("latency      " + [("p50", latency.p50), ("p90", latency.p90), ("p99", latency.p99), ("max", latency.max)]
                .map { "\($0.0) \(String(format: "%.2f", $0.1)) ms" }.joined(separator: "  "))
        }
        lines.append("body bytes   \(bodyBytes)" + (unwrittenBodies > 0 ? " (\(unwrittenBodies) bodies not written)" : ""))
        lines.append("connections  \(connectionsOpened) opened; destroyed: " + (destroyed.isEmpty ? "none" : Self.counts(destroyed)))
        for host in hosts where !host.ips.isEmpty {
            lines.append("\(host.host)")
            lines.append("  " + Self.row(["IP", "requests", "failures", "state"]))
            for ip in host.ips {
                lines.append("  " + Self.row([ip.ip, "\(ip.requests)", "\(ip.failures)", ip.state]))
            }
        }
        if !errors.isEmpty {
            lines.append("errors")
            for (error, count) in errors.sorted(by: { $0.value > $1.value }) {
                lines.append("  \(count)  \(error)")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// `key: count` pairs, the largest count first.
    private static func counts(_ counts: [String: Int]) -> String {
        counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.key): \($0.value)" }.joined(separator: "  ")
    }

    /// Columns of the IP table.
    private static func row(_ cells: [String]) -> String {
        zip(cells, [16, 10, 10, 0]).map { $1 > 0 ? $0.padding(toLength: max($1, $0.count + 1), withPad: " ", startingAt: 0) : $0 }.joined()
    }
}
