import CShims
import Foundation
import HTTPTypes
import OriginControl
import Synchronization
import Testing
@_spi(Benchmarks) @testable import HotPool
@testable import HotPoolCore
@testable import HotPoolDriver

/// Request bodies streamed from an `AsyncSequence` to the test origin, which hashes what it reads:
/// a body far larger than memory arrives whole over HTTP/1.1 (chunked, or by its Content-Length)
/// and HTTP/2; a server that stops reading stops the sequence being read; a body that breaks its
/// Content-Length, a sequence that throws and a cancelled task each end the exchange once.
@Suite struct StreamingUploadTests {
    /// The big upload's size: 1 GiB, or `HOTPOOL_UPLOAD_BYTES`.
    static let bigBody = ProcessInfo.processInfo.environment["HOTPOOL_UPLOAD_BYTES"].flatMap(Int.init) ?? 1 << 30
    /// The pieces the sequences hand over.
    static let pieceSize = 64 << 10

    static func post(_ path: String, length: Int? = nil) -> HTTPRequest {
        var request = HTTPRequest(method: .post, scheme: "https", authority: Origin.hostName, path: path)
        if let length { request.headerFields[.contentLength] = String(length) }
        return request
    }

    /// The request as the origin read it, by its path.
    static func received(_ origin: Origin, _ path: String) async throws -> OriginRequest? {
        try await origin.recentRequests(last: 4).last { $0.path == path }
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func aBodyLargerThanMemoryArrivesWhole(http2: Bool, knownLength: Bool) async throws {
        let (origin, pool, connection) = try await StreamingTests.connect(http2: http2)
        // The known-length runs check the framing; the size is the others' to prove.
        let size = knownLength ? 64 << 20 : Self.bigBody
        let body = PatternBody(size: size, pieceSize: Self.pieceSize)
        let baseline = try resetPeakRSS()
        let response = try await connection.roundTrip(Self.post("/upload", length: knownLength ? size : nil), body: body,
                                                      timeout: .seconds(600))
        let growth = try peakRSS() - baseline
        #expect(response.head.status == .ok)
        let request = try #require(try await Self.received(origin, "/upload"))
        #expect(request.bodyLength == size && request.bodySHA256 == body.digest(), "\(request.bodyLength) bytes arrived")
        #expect(request.header("content-length") == (knownLength ? String(size) : nil))
        #expect(request.header("transfer-encoding") == (knownLength || http2 ? nil : "chunked"))
        // The bound (1 MiB), a piece, and the allocator's slack (and a sanitizer's).
        #expect(growth < 48 << 20, "peak RSS grew by \(growth >> 20) MiB over \(size >> 20) MiB")
        try await StreamingTests.expectItCarriesOn(pool, connection)
    }

    /// `execute` with a sequence: a connection got, the body streamed, the connection returned and
    /// reused by the next call.
    @Test(arguments: [false, true])
    func executeStreamsABodyAndReturnsTheConnection(http2: Bool) async throws {
        let (origin, pool, connection) = try await StreamingTests.connect(http2: http2)
        pool.putConnection(connection)
        let body = PatternBody(size: 8 << 20, pieceSize: Self.pieceSize)
        let response = try await pool.execute(Self.post("/upload"), body: body, host: Origin.hostName, port: origin.port)
        #expect(response.head.status == .ok)
        #expect(try await Self.received(origin, "/upload")?.bodySHA256 == body.digest())
        _ = try await pool.execute(Self.post("/again"), body: PatternBody(size: 1 << 20, pieceSize: Self.pieceSize),
                                   host: Origin.hostName, port: origin.port)
        let stats = await pool.stats()
        #expect(stats.totalRequests == 2 && stats.activeConnections == 0 && stats.idleConnections == 1, "\(stats)")
        #expect(try await origin.stats().totalHandshakes == 1, "the connection was reused")
        try await pool.close()
    }

    /// A server that reads nothing of the body: the sequence is read only as far as the bound,
    /// the socket's buffers and one piece, not on to its end; cancelling the task then ends the
    /// exchange, and the connection is destroyed once when returned.
    @Test func aServerThatStopsReadingStopsTheSequence() async throws {
        try await expectDestruction(.unhealthyOnReturn) { pool, origin, connection in
            try await origin.rule(path: "/deaf", ["type": "deaf"])
            let body = PatternBody(size: 256 << 20, pieceSize: Self.pieceSize)
            let upload = Task { try await connection.roundTrip(Self.post("/deaf"), body: body) }
            var last = -1
            #expect(try await eventually(.seconds(20)) {
                let produced = body.produced
                defer { last = produced }
                try await Task.sleep(for: .milliseconds(200))
                return produced == last && produced > 0
            }, "the sequence stopped being read")
            // The bound, one piece, and what the kernel's socket buffers took (the sender's at most
            // 4 MiB here, the receiver's as autotuned): far from the 256 MiB offered.
            #expect(body.produced < 24 << 20, "\(body.produced >> 20) MiB read from the sequence")
            upload.cancel()
            await #expect(throws: HotPoolError.cancelled) { try await upload.value }
            #expect(await pool.stats().failedRequests == 1)
            pool.putConnection(connection)
            // Reading again, the server takes what the kernel had sent, then sees the close.
            #expect(try await origin.hear() == 1)
        }
    }

    /// A server that answers before the body is in (a 413, as servers refuse uploads): the answer
    /// is returned and the rest of the sequence is not read. Over HTTP/1.1 (the request cut short)
    /// the connection carries no further request: destroyed once when returned, `requestUnfinished`;
    /// over HTTP/2 the server resets the stream with NO_ERROR, and the connection carries on.
    @Test(arguments: [false, true])
    func anAnswerBeforeTheBodyEndsTheUpload(http2: Bool) async throws {
        try await expectDestruction(http2 ? .removed : .requestUnfinished, http2: http2) { pool, origin, connection in
            let body = http2 ? "" : "too large"  // over HTTP/2 the answer ends its stream at once
            try await origin.rule(path: "/refused", ["type": "status", "status": 413, "body": body, "early": true])
            let upload = PatternBody(size: 256 << 20, pieceSize: Self.pieceSize)
            let response = try await connection.roundTrip(Self.post("/refused"), body: upload)
            #expect(response.head.status == .contentTooLarge && response.body == Array(body.utf8))
            #expect(response.connectionReusable == http2)
            #expect(upload.produced < 24 << 20, "\(upload.produced >> 20) MiB read from the sequence")
            #expect(await pool.stats().failedRequests == 0)
            if http2 {
                #expect(try await connection.roundTrip(get("/next")).body == Array("ok".utf8))
                pool.removeConnection(connection)
            } else {
                pool.putConnection(connection)
            }
        }
    }

    /// Over HTTP/2 a server may answer early and not reset the stream: the body goes on to its
    /// end, and the END_STREAM that closes the stream completes the exchange at once, though
    /// nothing more comes from the server to be read.
    @Test func anHTTP2AnswerBeforeTheBodyWithNoResetEndsWithTheBody() async throws {
        let (origin, pool, connection) = try await StreamingTests.connect(http2: true)
        try await origin.rule(path: "/early", ["type": "status", "status": 202, "body": "", "early": true, "early_reset": false])
        let (pieces, feed) = AsyncStream.makeStream(of: [UInt8].self)
        feed.yield([UInt8](repeating: 2, count: 1024))  // far below half a window: no WINDOW_UPDATE follows it
        let upload = Task { try await connection.roundTrip(Self.post("/early"), body: pieces, timeout: .seconds(20)) }
        let driver = connection.driver
        #expect(await eventually {
            await Task(executorPreference: connection.executor) {
                driver.http2.contains { $0?.exchanges.values.contains { $0.http2?.responseHead != nil } ?? false }
            }.value
        }, "the answer came before the body's end")
        feed.finish()
        let response = try await upload.value
        #expect(response.head.status == .accepted && response.connectionReusable)
        #expect(try await connection.roundTrip(get("/next")).body == Array("ok".utf8))
        pool.putConnection(connection)
        try await pool.close()
    }

    /// With a Content-Length, the piece that completes it ends the body: an answer that comes
    /// before the sequence says it ended finds the request whole, and the connection carries on.
    @Test(arguments: [false, true])
    func theLastDeclaredByteEndsTheBody(http2: Bool) async throws {
        let (origin, pool, connection) = try await StreamingTests.connect(http2: http2)
        let (pieces, feed) = AsyncStream.makeStream(of: [UInt8].self)
        let size = 1 << 20
        feed.yield([UInt8](repeating: 7, count: size))
        let upload = Task { try await connection.roundTrip(Self.post("/whole", length: size), body: pieces) }
        // The origin answers once it read the declared bytes; only then does the sequence end.
        #expect(try await eventually { try await Self.received(origin, "/whole") != nil }, "the origin read the whole request")
        feed.finish()
        let response = try await upload.value
        #expect(response.head.status == .ok && response.connectionReusable)
        #expect(try await connection.roundTrip(get("/next")).body == Array("ok".utf8))
        pool.putConnection(connection)
        #expect(await pool.stats().closedByReason.values.reduce(0, +) == 0)
        try await pool.close()
    }

    /// A sequence that ends early because its task was cancelled (as `AsyncStream` does) is a body
    /// cut short: the round trip throws `cancelled`, and the server never reads a whole request.
    /// From the pool's executor, where the body's end would be written at once, before the
    /// cancellation's abandonment reaches the reactor.
    @Test(arguments: [false, true])
    func aSequenceEndedByCancellationIsNotAWholeBody(http2: Bool) async throws {
        try await expectDestruction(http2 ? .removed : .unhealthyOnReturn, http2: http2) { pool, origin, connection in
            let (pieces, feed) = AsyncStream.makeStream(of: [UInt8].self)
            feed.yield([UInt8](repeating: 1, count: 4096))
            let upload = Task(executorPreference: pool.executor) { try await connection.roundTrip(Self.post("/cut"), body: pieces) }
            #expect(await eventually { await pool.stats().totalRequests == 1 }, "the upload started")
            upload.cancel()
            await #expect(throws: HotPoolError.cancelled) { try await upload.value }
            #expect(await eventually { await pool.stats().failedRequests == 1 })
            let whole = try await Self.received(origin, "/cut")
            #expect(whole == nil, "the origin read a whole request")
            if http2 { pool.removeConnection(connection) } else { pool.putConnection(connection) }
        }
    }

    /// How a streamed body can go wrong on the caller's side.
    enum Misstep: CaseIterable {
        /// More bytes than its Content-Length.
        case longerThanDeclared
        /// Fewer bytes than its Content-Length.
        case shorterThanDeclared
        /// The sequence throws midway.
        case sequenceThrows
    }

    struct SequenceFailed: Error {}

    /// Each misstep fails only the request, counted once and not against the server's IP: over
    /// HTTP/1.1 the connection is cut short mid-request and destroyed once when returned, its fd
    /// closed; over HTTP/2 the stream is reset and the connection carries the next request.
    @Test(arguments: Misstep.allCases, [false, true])
    func aBodyGoneWrongEndsItsExchangeOnce(misstep: Misstep, http2: Bool) async throws {
        try await expectDestruction(http2 ? .removed : .unhealthyOnReturn, http2: http2) { pool, origin, connection in
            let size = 4 << 20
            let declared: Int? = switch misstep {
            case .longerThanDeclared: size - 1
            case .shorterThanDeclared: size + 1
            case .sequenceThrows: nil
            }
            let body = PatternBody(size: size, pieceSize: Self.pieceSize, failsAfter: misstep == .sequenceThrows ? size / 2 : nil)
            do {
                _ = try await connection.roundTrip(Self.post("/wrong", length: declared), body: body)
                Issue.record("the round trip succeeded")
            } catch let error as HotPoolError {
                #expect(misstep != .sequenceThrows && error.code == .invalidRequest, "\(error)")
            } catch {
                #expect(misstep == .sequenceThrows && error is SequenceFailed, "\(error)")
            }
            #expect(await eventually { await pool.stats().failedRequests == 1 }, "failed once")
            let failures = await pool.ipStats(forHost: Origin.hostName).map(\.failures).reduce(0, +)
            #expect(failures == 0, "the caller's misstep was charged to the server's IP")
            if http2 {
                #expect(try await connection.roundTrip(get("/next")).body == Array("ok".utf8))
                pool.removeConnection(connection)
            } else {
                pool.putConnection(connection)
            }
            let whole = try await Self.received(origin, "/wrong")
            #expect(whole == nil, "the origin read no whole request")
        }
    }

    /// A connection already returned reads nothing of the sequence; a close while a body is being
    /// sent ends the round trip, and the socket with it.
    @Test(arguments: [false, true])
    func aStaleHandleOrAClosingPoolEndsTheUpload(http2: Bool) async throws {
        let (origin, pool, connection) = try await StreamingTests.connect(http2: http2)
        pool.putConnection(connection)
        let unread = PatternBody(size: 1 << 20, pieceSize: Self.pieceSize)
        await #expect(throws: HotPoolError.staleConnection) { try await connection.roundTrip(Self.post("/stale"), body: unread) }
        #expect(unread.produced == 0, "the sequence was read")

        // HTTP/1.1: a server that reads nothing; HTTP/2: one that answers only once the body ended.
        if !http2 { try await origin.rule(path: "/unread", ["type": "deaf"]) }
        let again = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        let body = PatternBody(size: 256 << 20, pieceSize: Self.pieceSize)
        let upload = Task { try await again.roundTrip(Self.post("/unread"), body: body) }
        #expect(await eventually { body.produced > 0 }, "the body is being sent")
        try await pool.close()
        do {
            _ = try await upload.value
            Issue.record("the upload was answered after the pool closed")
        } catch let error as HotPoolError {
            #expect(error.code == .poolClosed || error.code == .connectionClosed, "\(error)")
        }
        #expect(body.produced < 256 << 20, "the whole body was read after the close")
        if !http2 { _ = try await origin.hear() }
        #expect(try await origin.waitClosed(1), "the server saw the connection closed")
        #expect(hp_tls_live_objects() == 0 && hp_h2_live_sessions() == 0)
    }

    /// Bodies from a task on the pool's executor: no hop to the reactor but the task's start.
    @Test(arguments: [false, true])
    func aBodyStreamsFromThePoolsExecutor(http2: Bool) async throws {
        let (origin, pool, connection) = try await StreamingTests.connect(http2: http2)
        let body = PatternBody(size: 8 << 20, pieceSize: Self.pieceSize)
        let hops0 = await pool.inboundHops() ?? 0
        let status = try await Task(executorPreference: pool.executor) {
            try await connection.roundTrip(Self.post("/upload"), body: body).head.status
        }.value
        let hops = (await pool.inboundHops() ?? 0) - hops0 - pool.reactorCount  // this read's own hops, one per reactor
        #expect(status == .ok && hops == 1, "\(hops) hops")
        #expect(try await Self.received(origin, "/upload")?.bodySHA256 == body.digest())
        pool.putConnection(connection)
        try await pool.close()
    }
}

/// A body of `size` bytes (byte i is i % 251) as pieces, counting what was read from it and
/// hashing it as it goes; with `failsAfter`, it throws once that many bytes were read.
final class PatternBody: AsyncSequence, Sendable {
    typealias Element = [UInt8]

    let size: Int
    let pieceSize: Int
    let failsAfter: Int?
    private let producedBytes = Atomic<Int>(0)
    /// The digest of what was read (one reader at a time), until `digest()` finishes it.
    nonisolated(unsafe) private var hash: OpaquePointer? = hp_sha256_new()
    nonisolated(unsafe) private var finished: String?

    init(size: Int, pieceSize: Int, failsAfter: Int? = nil) {
        (self.size, self.pieceSize, self.failsAfter) = (size, pieceSize, failsAfter)
    }

    deinit { _ = digest() }

    /// Bytes read from the sequence so far.
    var produced: Int { producedBytes.load(ordering: .acquiring) }

    /// The SHA-256 of what was read, in lower-case hex (after the reading).
    func digest() -> String {
        if let finished { return finished }
        var out = [UInt8](repeating: 0, count: Int(HP_SHA256_BYTES))
        hp_sha256_final(hash, &out)
        hash = nil
        finished = out.map { String(format: "%02x", $0) }.joined()
        return finished!
    }

    func makeAsyncIterator() -> Iterator { Iterator(body: self) }

    struct Iterator: AsyncIteratorProtocol {
        let body: PatternBody

        mutating func next() async throws -> [UInt8]? {
            let offset = body.produced
            if let failsAfter = body.failsAfter, offset >= failsAfter { throw StreamingUploadTests.SequenceFailed() }
            guard offset < body.size else { return nil }
            let count = Swift.min(body.pieceSize, body.size - offset)
            let start = offset % StreamingTests.period
            let piece = Array(StreamingTests.pattern[start..<start + count])
            piece.withUnsafeBytes { hp_sha256_update(body.hash, $0.baseAddress, $0.count) }
            body.producedBytes.store(offset + count, ordering: .releasing)
            return piece
        }
    }
}
