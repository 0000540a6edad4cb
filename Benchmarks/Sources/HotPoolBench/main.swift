// The HotPool benchmark harness. `run.sh` starts nginx with a throwaway CA and runs this with
// its address; it prints a table of every scenario and writes the figures as JSON.
import Foundation
import MallocCounter

/// What the interposer check allocates, kept in globals so the optimizer cannot drop the allocations.
private final class Probe {}
nonisolated(unsafe) private var probeObject: AnyObject?
nonisolated(unsafe) private var probeMemory: UnsafeMutableRawPointer?

/// True if a `malloc` called here and an object allocated by the Swift runtime (libswiftCore)
/// both reach the counting malloc, on this thread's counter and on the global one.
func mallocInterposerHit() -> Bool {
    let thread0 = mc_thread_allocations(), total0 = mc_total_allocations()
    probeMemory = malloc(64)
    probeObject = Probe()
    let hit = mc_thread_allocations() - thread0 >= 2 && mc_total_allocations() - total0 >= 2
    free(probeMemory)
    probeMemory = nil
    probeObject = nil
    return hit
}

/// Prints a line to stderr at once (progress, next to the table on stdout).
func progress(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Runs one scenario group, reporting its progress and duration.
func step(_ name: String, _ body: () async throws -> [Metric]) async throws -> [Metric] {
    progress("running \(name)...")
    let start = monotonicNanos()
    let metrics = try await body()
    progress(String(format: "  %@ done in %.1f s", name, Double(monotonicNanos() - start) / 1e9))
    return metrics
}

let options: Options
do {
    options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    progress("\(error)")
    exit(2)
}

var report = Report(mode: options.quick ? "quick" : "full", runs: options.runs, durationSeconds: options.duration,
                    mallocInterposerHit: mallocInterposerHit())
if !report.mallocInterposerHit {
    let note = "the malloc interposer was NOT hit: the allocation counts below are not valid"
    report.notes.append(note)
    progress("warning: \(note)")
}
do {
    if options.groups.contains("getput") {
        for backend in backends {
            report.metrics += try await step("get+put\(backend.rowSuffix)") { try await getPut(options, backend: backend) }
        }
    }
    if options.groups.contains("throughput") {
        for concurrency in [1, 16, 64] {
            report.metrics += try await step("throughput C=\(concurrency)") {
                try await throughput(options, concurrency: concurrency, path: "/256", bodyBytes: 256, goals: concurrency == 16,
                                     ioUringGoals: concurrency == 64)
            }
        }
        report.metrics += try await step("throughput C=16 /16k") {
            try await throughput(options, concurrency: 16, path: "/16k", bodyBytes: 16 * 1024, goals: false)
        }
    }
    if options.groups.contains("codings") {
        report.metrics += try await step("codings C=16 /text16k") { try await codingThroughput(options) }
    }
    if options.groups.contains("streaming") {
        report.metrics += try await step("streaming download /1g") { try await streamingDownload(options) }
        report.metrics += try await step("streaming upload 1 GiB") { try await streamingUpload(options) }
    }
    if options.groups.contains("http2") && options.http2Port > 0 {
        report.metrics += try await step("HTTP/2 C=4×16") {
            try await http2Throughput(options, connections: 4, streams: 16, path: "/256", bodyBytes: 256)
        }
    }
    if options.groups.contains("reactors") {
        report.metrics += try await step("reactors") { try await reactorScaling(options) }
    }
    if options.groups.contains("handshake") {
        report.metrics += try await step("handshake") { try await handshakes(options) }
        report.metrics += try await step("requests per TLS engine") {
            try await engineRequests(options, path: "/256", bodyBytes: 256)
        }
    }
    if options.groups.contains("proxy") {
        if options.httpProxy == nil {
            report.notes.append("proxy group skipped: no --http-proxy (run.sh starts the proxies)")
        } else {
            report.metrics += try await step("proxy throughput C=16") {
                try await proxyThroughput(options, concurrency: 16, path: "/256", bodyBytes: 256)
            }
            report.metrics += try await step("proxy dials") { try await proxyDials(options) }
        }
    }
    if options.groups.contains("destruction") {
        for count in [1000, 10_000] {
            report.metrics += try await step("close() of \(count)") { try await destruction(options, count: count) }
        }
        report.metrics += try await step("remove") { try await removeOnReactor(options) }
        report.metrics += try await slotState(options)
    }
    if options.groups.contains("hosts") {
        let count = options.quick ? 30_000 : 300_000
        report.metrics += try await step("host records") { try await hostRecords(options, count: count) }
    }
} catch {
    progress("harness failed: \(error)")
    report.notes.append("failed: \(error)")
    try? report.write(to: options.jsonPath)
    exit(1)
}

print(report.table, terminator: "")
for note in report.notes { print("note: \(note)") }
let missed = report.metrics.filter { $0.met == false }.map { "\($0.scenario): \($0.name)" }
print(missed.isEmpty ? "every target met" : "targets missed: \(missed.joined(separator: "; "))")
try report.write(to: options.jsonPath)
print("figures written to \(options.jsonPath)")
