import Foundation
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolDriver
@testable import HotPoolIO
import Logging
import OriginControl
import Synchronization
import Testing

/// Open file descriptors of this process of the kinds a pool opens: TCP sockets, and the epoll
/// and eventfd of a reactor. Unix sockets and pipes are left out: Foundation's `Process` watches
/// each child through a socket pair that it closes some time after the child exits, so the test
/// origins and nginx servers of earlier tests would make a plain count drift. So are the event
/// loops of libdispatch and Foundation's run loops, which come and go with their threads: an
/// epoll counts only if it holds an epoll reactor's wake-up registration
/// (`EpollBackend.wakeData` as its data), an io_uring ring always (only reactors make them), and
/// an eventfd only unless such a foreign epoll watches it.
func openFDCount() -> Int {
    let directory = "/proc/self/fd"
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return -1 }
    let tcpInodes = tcpSocketInodes()
    var count = 0
    var eventfds: Set<String> = [], watchedByForeignLoops: Set<String> = []
    for entry in entries {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + entry) else { continue }
        switch target {
        case "anon_inode:[eventpoll]":
            // Lines such as "tfd:        5 events:       19 data: ffffffffffffffff  pos:0 ino:...".
            let info = (FileManager.default.contents(atPath: "/proc/self/fdinfo/\(entry)")).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let watches = info.split(separator: "\n").filter { $0.hasPrefix("tfd:") }
            if watches.contains(where: { $0.contains("data: \(String(EpollBackend.wakeData, radix: 16)) ") }) {
                count += 1
            } else {
                for line in watches { if let fd = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first { watchedByForeignLoops.insert(String(fd)) } }
            }
        case "anon_inode:[io_uring]":  // only reactors make rings
            count += 1
        case "anon_inode:[eventfd]":
            eventfds.insert(entry)
        default:
            if target.hasPrefix("socket:[") && tcpInodes.contains(String(target.dropFirst(8).dropLast())) { count += 1 }
        }
    }
    return count + eventfds.subtracting(watchedByForeignLoops).count
}

/// The inodes of this network namespace's TCP sockets (/proc/net/tcp and tcp6, 10th column).
private func tcpSocketInodes() -> Set<String> {
    Set(socketTableRows(["tcp", "tcp6"]).filter { $0.count > 9 }.map { String($0[9]) })
}

/// This network namespace's UDP sockets connected to 127.0.0.1:`port` (/proc/net/udp, whose 3rd
/// column is the remote address): those a descriptor names and those only an operation in
/// flight still holds open.
func udpSocketsConnected(toLoopbackPort port: Int) -> Int {
    let remote = "0100007F:" + String(format: "%04X", port)
    return socketTableRows(["udp"]).filter { $0.count > 2 && $0[2] == remote }.count
}

/// The rows of the socket tables `tables` of /proc/net (one per socket, split into columns).
private func socketTableRows(_ tables: [String]) -> [[Substring]] {
    tables.flatMap { table -> [[Substring]] in
        // procfs files report size 0, so read to the end rather than by size.
        guard let data = FileHandle(forReadingAtPath: "/proc/net/" + table)?.readDataToEndOfFile() else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst().map { $0.split(separator: " ") }
    }
}

/// A socket of `type` bound to a free port of 127.0.0.1 (a listener once listening, a UDP server
/// that never reads), and that port.
func loopbackSocket(_ type: __socket_type) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(type.rawValue), 0)
    try #require(fd >= 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    try #require(bound)
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

extension PooledConnection {
    /// The driver of the reactor that made the connection (read it on that reactor's thread).
    var driver: PoolDriver { pool.drivers[reactor] }
    /// The executor of the reactor that made the connection.
    var executor: HotPoolExecutor { pool.executors[reactor] }
}

/// A GET request for `path`.
func get(_ path: String = "/") -> HTTPRequest {
    HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: path)
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
func eventually(_ timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// Whether `work` ends within `bound` (rethrowing its error). A `work` that hangs is left
/// running, unawaited, so a hang fails the test instead of hanging the run.
func ends(within bound: Duration, _ work: @escaping @Sendable () async throws -> Void) async throws -> Bool {
    let (outcomes, continuation) = AsyncStream.makeStream(of: Result<Void, any Error>?.self)
    Task {
        do {
            try await work()
            continuation.yield(.success(()))
        } catch {
            continuation.yield(.failure(error))
        }
    }
    let timer = Task {
        try? await Task.sleep(for: bound)
        continuation.yield(nil)  // the bound passed first
    }
    var iterator = outcomes.makeAsyncIterator()
    let first = await iterator.next() ?? nil
    timer.cancel()
    continuation.finish()
    guard let first else { return false }
    try first.get()
    return true
}

/// Which of the origin's connections `connection` is: makes a round trip on it and returns the
/// number of the connection the server read that request on.
func serverConnection(of connection: PooledConnection, _ origin: Origin) async throws -> Int {
    let path = "/which-connection-\(UUID().uuidString)"
    _ = try await connection.roundTrip(get(path))
    return try #require(try await origin.recentRequests(last: 100).last { $0.path == path }?.connection)
}

/// Waits (bounded) until the origin has, on each IP, exactly as many connections open as the
/// pool holds to it now; false if it never does. For a quiescent pool: the server sees closes
/// some time after the pool makes them.
func serverSeesThePoolsConnections(_ pool: HotConnPool, _ origin: Origin) async throws -> Bool {
    let held = Dictionary(grouping: await pool.connectionStats(), by: \.targetIP).mapValues(\.count)
    return try await eventually {
        try await origin.stats().open.filter { $0.value != 0 } == held
    }
}

/// A swift-log handler that keeps every message, for tests that check what the pool logs.
final class CapturedLog: Sendable {
    /// One logged message with its level and metadata.
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private let storage = Mutex<[Entry]>([])

    var entries: [Entry] { storage.withLock { $0 } }

    /// A logger that writes here.
    func logger(level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: "test") { _ in Handler(log: self) }
        logger.logLevel = level
        return logger
    }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            let fields = (metadata ?? [:]).mapValues { "\($0)" }
            log.storage.withLock { $0.append(Entry(level: level, message: "\(message)", metadata: fields)) }
        }
    }
}

/// A test origin serving h2 on every IP, and its configuration.
func http2Origin() async throws -> (Origin, HotPoolConfiguration) {
    let origin = try Origin()
    try await origin.setTLSMode("h2")
    return (origin, origin.configuration())
}

/// Expects `HotConnPool.init` to refuse `config` with `invalidConfiguration` saying `reason`; a
/// pool it makes after all is closed (and the test fails).
func expectInvalidConfiguration(_ config: HotPoolConfiguration, saying reason: String,
                                sourceLocation: SourceLocation = #_sourceLocation) async throws {
    do {
        let pool = try HotConnPool(configuration: config)
        try await pool.close()
        Issue.record("accepted; expected invalidConfiguration saying \(reason)", sourceLocation: sourceLocation)
    } catch {
        guard let error = error as? HotPoolError, error.code == .invalidConfiguration, let why = error.reason else { throw error }
        #expect(why.contains(reason), "\(why)", sourceLocation: sourceLocation)
    }
}
