import Foundation
import Glibc
import HTTPTypes
import OriginControl
import Testing
@_spi(Benchmarks) @testable import HotPool
@testable import HotPoolCore
@testable import HotPoolDriver
@testable import HotPoolIO

/// Streamed response bodies against the test origin, over HTTP/1.1 and HTTP/2: a body far larger
/// than memory read with the client's RSS flat, a slow reader that never makes the pool hold more
/// than its bound, and bodies given up (dropped, cancelled, the pool closed) counted once.
@Suite struct StreamingTests {
    /// The big download's size: 2 GiB, or `HOTPOOL_STREAM_BYTES`.
    static let bigBody = ProcessInfo.processInfo.environment["HOTPOOL_STREAM_BYTES"].flatMap(Int.init) ?? 2 << 30
    /// The origin's bulk bodies: byte i is i % 251.
    static let period = 251
    /// Every offset's expected bytes: a window into this, long enough for any chunk.
    static let pattern: [UInt8] = (0..<(4 << 20) + period).map { UInt8($0 % period) }

    /// Whether `chunk`, starting at body offset `offset`, is the bulk pattern (memcmp: a debug
    /// build compares 2 GiB in seconds).
    static func matches(_ chunk: [UInt8], at offset: Int) -> Bool {
        var done = 0
        while done < chunk.count {
            let n = min(chunk.count - done, pattern.count - period)
            let start = (offset + done) % period
            let equal = chunk.withUnsafeBytes { c in pattern.withUnsafeBytes { p in memcmp(c.baseAddress! + done, p.baseAddress! + start, n) == 0 } }
            guard equal else { return false }
            done += n
        }
        return true
    }

    static func connect(http2: Bool, _ adjust: (inout HotPoolConfiguration) -> Void = { _ in })
        async throws -> (Origin, HotConnPool, PooledConnection)
    {
        let origin = try Origin()
        if http2 { try await origin.setTLSMode("h2") }
        var config = origin.configuration()
        adjust(&config)
        let pool = try origin.pool(config)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        #expect(connection.httpVersion == (http2 ? .http2 : .http1_1))
        return (origin, pool, connection)
    }

    static func bulkSent(_ origin: Origin) async throws -> Int {
        try await origin.send(["cmd": "bulk_sent"]).object["sent"] as? Int ?? -1
    }

    /// What the body's stream holds for its reader now (read on the reactor).
    static func buffered(_ pool: HotConnPool, _ body: ResponseBodyStream) async -> Int {
        let stream = body.stream
        return await Task(executorPreference: pool.executor) { stream.bufferedBytes }.value
    }

    @Test(arguments: [false, true])
    func aBodyLargerThanMemoryStreamsWithTheClientsRSSFlat(http2: Bool) async throws {
        let (origin, pool, connection) = try await Self.connect(http2: http2)
        try await origin.rule(path: "/big", ["type": "bulk", "size": Self.bigBody])
        let response = try await connection.streamingRoundTrip(get("/big"))
        #expect(response.head.status == .ok && response.head.headerFields[.contentLength] == String(Self.bigBody))
        let baseline = try resetPeakRSS()
        var received = 0, mismatches = 0
        for try await chunk in response.body {
            if !Self.matches(chunk, at: received) { mismatches += 1 }
            received += chunk.count
        }
        let growth = try peakRSS() - baseline
        #expect(received == Self.bigBody && mismatches == 0, "\(received) bytes, \(mismatches) chunks not as sent")
        // The bound (1 MiB), the receives in flight or an HTTP/2 stream window (6 MiB), and the
        // allocator's slack (under AddressSanitizer, its quarantine and shadow too: 37 MiB at most seen).
        #expect(growth < 48 << 20, "peak RSS grew by \(growth >> 20) MiB over \(Self.bigBody >> 20) MiB")
        try await Self.expectItCarriesOn(pool, connection)
    }

    /// The exchange ended whole: the connection carries the next request, and nothing failed or
    /// was destroyed; the pool is then closed.
    static func expectItCarriesOn(_ pool: HotConnPool, _ connection: PooledConnection) async throws {
        #expect(try await connection.roundTrip(get("/after")).body == Array("ok".utf8))
        pool.putConnection(connection)
        let stats = await pool.stats()
        #expect(stats.totalRequests == 2 && stats.failedRequests == 0 && stats.closedByReason.values.allSatisfy { $0 == 0 })
        try await pool.close()
    }

    @Test(arguments: [false, true])
    func aSlowReaderNeverMakesThePoolHoldMoreThanItsBound(http2: Bool) async throws {
        let (origin, pool, connection) = try await Self.connect(http2: http2)
        let size = 64 << 20
        try await origin.rule(path: "/slow", ["type": "bulk", "size": size])
        let response = try await connection.streamingRoundTrip(get("/slow"))
        var iterator = response.body.makeAsyncIterator()
        var received = try #require(try await iterator.next()).count
        // The reader stops; the server sends until flow control (HTTP/2) or TCP (HTTP/1.1) stops it.
        var last = -1
        #expect(try await eventually(.seconds(20)) {
            let sent = try await Self.bulkSent(origin)
            defer { last = sent }
            try await Task.sleep(for: .milliseconds(200))
            return sent == last
        }, "the server stopped sending")
        let held = await Self.buffered(pool, response.body)
        // HTTP/1.1: the bound and what the receives under way when it paused bring (epoll: one
        // read; io_uring: at most its provided buffers); HTTP/2: the stream's window (the preset's 6 MiB).
        let inFlight = pool.ioBackendName == "io_uring"
            ? Int(UringBackend.bufferCount * UringBackend.bufferSize) : EpollBackend.receiveBufferSize
        let bound = http2 ? 6 << 20 : BodyStream.bufferBound + inFlight
        #expect(held > 0 && held <= bound, "holds \(held) bytes")
        #expect(try await Self.bulkSent(origin) < size, "the server could not send it all")
        while let chunk = try await iterator.next() {
            #expect(Self.matches(chunk, at: received))
            received += chunk.count
        }
        #expect(received == size)
        pool.putConnection(connection)
        try await pool.close()
    }

    /// A body whose reader gives up: dropped before its end, over HTTP/1.1 the connection cannot
    /// carry another request and is destroyed once when returned, its fd closed; over HTTP/2 its
    /// stream is reset and the connection carries the next request. Counted once, as a failed request.
    @Test(arguments: [false, true])
    func droppingABodyMidwayAbandonsItsExchangeOnce(http2: Bool) async throws {
        try await expectDestruction(http2 ? .removed : .unhealthyOnReturn, http2: http2) { pool, origin, connection in
            try await origin.rule(path: "/dropped", ["type": "bulk", "size": 256 << 20])
            do {
                let response = try await connection.streamingRoundTrip(get("/dropped"))
                var iterator = response.body.makeAsyncIterator()
                _ = try await iterator.next()
                _ = try await iterator.next()
            }
            #expect(await eventually { await pool.stats().failedRequests == 1 }, "abandoned once")
            if http2 {
                #expect(try await connection.roundTrip(get("/next")).body == Array("ok".utf8))
                pool.removeConnection(connection)
            } else {
                await #expect(performing: { try await connection.roundTrip(get("/next")) },
                              throws: { ($0 as? HotPoolError)?.code == .connectionClosed })
                pool.putConnection(connection)
            }
            #expect(await pool.stats().failedRequests == (http2 ? 1 : 2))
        }
    }

    @Test(arguments: [false, true])
    func cancellingTheReaderEndsTheBodyWithCancelled(http2: Bool) async throws {
        let (origin, pool, connection) = try await Self.connect(http2: http2)
        // Three bytes of the body, then nothing.
        try await origin.rule(path: "/stalled", http2 ? ["type": "status", "body": "abc", "hold_end": true]
                                                      : ["type": "raw", "data": "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"])
        let response = try await connection.streamingRoundTrip(get("/stalled"))
        let reader = Task {
            var bytes: [UInt8] = []
            for try await chunk in response.body { bytes += chunk }
            return bytes
        }
        #expect(await eventually { await Self.buffered(pool, response.body) == 0 }, "the reader took the first bytes")
        reader.cancel()
        await #expect(throws: HotPoolError.cancelled) { try await reader.value }
        #expect(await eventually { await pool.stats().failedRequests == 1 })
        pool.putConnection(connection)
        try await pool.close()
    }

    @Test(arguments: [false, true])
    func closingThePoolEndsABodyBeingReadWithPoolClosed(http2: Bool) async throws {
        let (origin, pool, connection) = try await Self.connect(http2: http2)
        try await origin.rule(path: "/bulk", ["type": "bulk", "size": 256 << 20])
        let response = try await connection.streamingRoundTrip(get("/bulk"))
        var iterator = response.body.makeAsyncIterator()
        _ = try await iterator.next()
        try await pool.close()
        do {
            while try await iterator.next() != nil {}
            Issue.record("the body ended whole after the pool closed")
        } catch let error as HotPoolError {
            #expect(error.code == .poolClosed || error.code == .connectionClosed, "\(error)")
        }
        #expect(try await origin.waitClosed(1))
    }

    /// A coded body streams decoded, from a task on the pool's executor (no hop to the reactor).
    @Test(arguments: [false, true])
    func aCodedBodyStreamsDecodedOnThePoolsExecutor(http2: Bool) async throws {
        let (origin, pool, connection) = try await Self.connect(http2: http2)
        try await origin.rule(path: "/coded", ["type": "status", "text": 4 << 20, "encodings": ["gzip", "br"]])
        let hops0 = await pool.inboundHops() ?? 0
        let (bytes, codings, expected) = try await Task(executorPreference: pool.executor) {
            let response = try await connection.streamingRoundTrip(get("/coded"))
            var bytes: [UInt8] = []
            for try await chunk in response.body { bytes += chunk }
            return (bytes, response.decodedContentCodings, response.head.headerFields[HTTPField.Name("X-Plain-SHA256")!])
        }.value
        let hops = (await pool.inboundHops() ?? 0) - hops0 - pool.reactorCount  // this read's own hops, one per reactor
        #expect(bytes.count == 4 << 20 && sha256Hex(bytes) == expected && codings == [.gzip, .br])
        #expect(hops == 1, "the task's start is the only hop: \(hops)")
        pool.putConnection(connection)
        try await pool.close()
    }
}
