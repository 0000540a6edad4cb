import Foundation
import Glibc
import MallocCounter

/// Monotonic nanoseconds (CLOCK_MONOTONIC).
func monotonicNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// User plus system CPU seconds in a `rusage`.
func cpuSeconds(_ usage: rusage) -> Double {
    Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// CPU seconds (user + system, every thread) this process has used.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return cpuSeconds(usage)
}

/// Wall and CPU time of this process over a span of work.
struct Span {
    var wallSeconds: Double
    var cpuSeconds: Double

    /// Runs `body` and measures it.
    static func measure<T>(_ body: () async throws -> T) async rethrows -> (T, Span) {
        let wall0 = monotonicNanos(), cpu0 = processCPUSeconds()
        let result = try await body()
        let span = Span(wallSeconds: Double(monotonicNanos() - wall0) / 1e9, cpuSeconds: processCPUSeconds() - cpu0)
        return (result, span)
    }
}

/// Open file descriptors of this process: the entries of /proc/self/fd, less the one listing it.
func openFDCount() -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { count += 1 }
    }
    return count - 1
}

/// Resident set size in bytes (VmRSS of /proc/self/status), after returning freed heap to the
/// system (malloc_trim) so the figure counts live memory.
func residentBytes() -> Int {
    mc_trim()
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kib = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return -1 }
    return kib * 1024
}

/// What a child process printed and the resources it used.
struct ChildRun {
    var output: String
    var exitCode: Int32
    var wallSeconds: Double
    var cpuSeconds: Double
}

/// Errors of the harness itself.
enum BenchError: Error, CustomStringConvertible {
    case spawn(String, Int32)
    case childFailed(String, Int32, String)
    case badResponse(String)
    case unexpected(String)

    var description: String {
        switch self {
        case .spawn(let command, let code): "cannot start \(command): \(String(cString: strerror(code)))"
        case .childFailed(let command, let code, let output): "\(command) exited with \(code):\n\(output)"
        case .badResponse(let what): "bad response: \(what)"
        case .unexpected(let what): what
        }
    }
}

/// Runs `arguments` (looked up in PATH) to completion, capturing its stdout and stderr, and
/// reads its CPU time from wait4. Blocks the calling thread; the harness runs nothing else meanwhile.
func runChild(_ arguments: [String]) throws -> ChildRun {
    var pipeFDs: [Int32] = [0, 0]
    guard pipe(&pipeFDs) == 0 else { throw BenchError.spawn(arguments[0], errno) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
    posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid = pid_t()
    let wall0 = monotonicNanos()
    let rc = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
    close(pipeFDs[1])
    guard rc == 0 else {
        close(pipeFDs[0])
        throw BenchError.spawn(arguments[0], rc)
    }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(pipeFDs[0], &buffer, buffer.count)
        if n > 0 { output += buffer[0..<n] } else if n == 0 || errno != EINTR { break }
    }
    close(pipeFDs[0])
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
    let wall = Double(monotonicNanos() - wall0) / 1e9
    // WIFEXITED / WEXITSTATUS, which Swift does not import.
    let exitCode: Int32 = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ChildRun(output: String(decoding: output, as: UTF8.self), exitCode: exitCode, wallSeconds: wall, cpuSeconds: cpuSeconds(usage))
}

/// Runs `concurrency` tasks (preferring `executors` in turn, if any) that each repeat `operation`
/// until `duration` has passed (each finishes the operation under way); returns how many
/// operations ran and the span they took.
func closedLoop(
    concurrency: Int, duration: Duration, executors: [any TaskExecutor] = [],
    _ operation: @escaping @Sendable () async throws -> Void
) async throws -> (operations: Int, span: Span) {
    let deadline = ContinuousClock.now + duration
    return try await Span.measure {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<concurrency {
                group.addTask(executorPreference: executors.isEmpty ? nil : executors[task % executors.count]) {
                    var count = 0
                    repeat {
                        try await operation()
                        count += 1
                    } while ContinuousClock.now < deadline
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
    }
}
