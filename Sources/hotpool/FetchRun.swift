import Foundation
import Histogram
import HotPool
import Synchronization

/// The requests of one `hotpool fetch`: sent `concurrency` at a time, their outcomes gathered
/// into a summary, the counts the progress line reads kept as they come.
final class FetchRun: Sendable {
    let pool: HotConnPool
    let targets: [FetchTarget]
    let count: Int
    let concurrency: Int
    /// `--out`: the folder bodies go to, and its index.tsv (a line per request: number, status,
    /// body bytes, URL, error).
    let out: (folder: String, index: FileHandle)?
    /// Requests answered and failed so far: written by `start`, read by `reportProgress`.
    private let answered = Atomic<Int>(0), failed = Atomic<Int>(0)
    private let started = ContinuousClock.now

    /// How often the progress line is redrawn on a terminal, and written elsewhere.
    static let terminalRefresh = Duration.milliseconds(200), plainRefresh = Duration.seconds(1)

    init(pool: HotConnPool, targets: [FetchTarget], count: Int, concurrency: Int, out: (folder: String, index: FileHandle)?) {
        (self.pool, self.targets, self.count, self.concurrency, self.out) = (pool, targets, count, concurrency, out)
    }

    /// One request's end.
    private struct Outcome: Sendable {
        let index: Int
        let result: Result<HotResponse, HotPoolError>
        let latency: Duration
    }

    /// Sends the requests and gathers the summary; once cancelled, sends no more, and the
    /// requests in flight end as the pool ends them (a caller still waiting for a connection
    /// fails with `cancelled`).
    func start() async -> FetchSummary {
        var summary = FetchSummary(requested: count)
        var latencies = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        await withTaskGroup(of: Outcome.self) { group in
            var next = 0
            func send() {
                let number = next, target = targets[number % targets.count]
                next += 1
                group.addTask(executorPreference: pool.executor(forHost: target.host)) {
                    let start = ContinuousClock.now
                    do {
                        let response = try await self.pool.execute(target.request, host: target.host, port: target.port)
                        return Outcome(index: number, result: .success(response), latency: .now - start)
                    } catch {
                        return Outcome(index: number, result: .failure(error as? HotPoolError ?? .cancelled), latency: .now - start)
                    }
                }
            }
            while next < min(concurrency, count) { send() }
            while let outcome = await group.next() {
                switch outcome.result {
                case .success(let response):
                    summary.record(status: response.head.status.code, bodyBytes: response.body.count)
                    _ = latencies.record(UInt64(outcome.latency.nanoseconds / 1000))
                    answered.add(1, ordering: .relaxed)
                    if let out {
                        let path = "\(out.folder)/\(outcome.index).body"
                        if !FileManager.default.createFile(atPath: path, contents: Data(response.body)) {
                            printError("hotpool: cannot write \(path)")
                            summary.unwrittenBodies += 1
                        }
                        out.index.write(Data("\(outcome.index)\t\(response.head.status.code)\t\(response.body.count)\t\(targets[outcome.index % targets.count].url)\n".utf8))
                    }
                case .failure(let error):
                    summary.record(error: error)
                    failed.add(1, ordering: .relaxed)
                    out?.index.write(Data("\(outcome.index)\t-\t0\t\(targets[outcome.index % targets.count].url)\t\(error)\n".utf8))
                }
                if next < count && !Task.isCancelled { send() }
            }
        }
        try? out?.index.close()
        summary.seconds = Double((ContinuousClock.now - started).nanoseconds) / 1e9
        if latencies.totalCount > 0 {
            let milliseconds = { (microseconds: UInt64) in Double(microseconds) / 1000 }
            summary.latencyMilliseconds = FetchSummary.Latency(
                p50: milliseconds(latencies.valueAtPercentile(50)), p90: milliseconds(latencies.valueAtPercentile(90)),
                p99: milliseconds(latencies.valueAtPercentile(99)), max: milliseconds(latencies.max))
        }
        return summary
    }

    /// Writes the progress line until cancelled: on a terminal redrawn in place, the last state
    /// staying when cancelled; elsewhere a line at a time.
    func reportProgress() async {
        let terminal = isatty(STDERR_FILENO) == 1
        while !Task.isCancelled {
            try? await Task.sleep(for: terminal ? Self.terminalRefresh : Self.plainRefresh)
            if terminal {
                await redraw()
            } else if !Task.isCancelled {
                FileHandle.standardError.write(Data((await progressLine() + "\n").utf8))
            }
        }
        if terminal {
            await redraw()
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }

    /// Back to the line's start, erase it, draw it again.
    private func redraw() async {
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + (await progressLine())).utf8))
    }

    /// `done/total, req/s, errors, open connections`.
    private func progressLine() async -> String {
        let answered = answered.load(ordering: .relaxed), failed = failed.load(ordering: .relaxed)
        let seconds = Double((ContinuousClock.now - started).nanoseconds) / 1e9
        let open = await pool.stats().totalConnections
        return "\(answered + failed)/\(count) done  \(Int((Double(answered + failed) / max(seconds, 1e-9)).rounded())) req/s  "
            + "\(failed) errors  \(open) open"
    }
}
