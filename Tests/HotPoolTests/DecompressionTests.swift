import CShims
import HTTPTypes
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// Response bodies decoded as they arrive, against the test origin coding them with Python's
/// gzip, zlib, brotli and zstandard modules, over HTTP/1.1 (length-framed and chunked) and
/// HTTP/2: every body compared by SHA-256 with what the origin sent before coding.
@Suite struct DecompressionTests {
    /// How the origin frames the coded body.
    enum Framing: String, CaseIterable {
        case http1Length, http1Chunked, http2

        var http2: Bool { self == .http2 }
        var origin: String { self == .http1Chunked ? "chunked" : "length" }
    }

    /// Codings the origin applies, in order ("deflate-raw" is raw deflate, named "deflate"),
    /// and what the pool must report undone.
    static let codings: [([String], [ContentCoding])] = [
        (["gzip"], [.gzip]), (["deflate"], [.deflate]), (["deflate-raw"], [.deflate]), (["br"], [.br]), (["zstd"], [.zstd]),
        (["gzip", "br"], [.gzip, .br]), (["deflate", "zstd", "gzip"], [.deflate, .zstd, .gzip]),
    ]
    /// Pseudo-random words: compressible as text is.
    static let textBytes = 300_000

    /// An origin (serving h2 when `http2`), a pool, and a connection to its first IP.
    static func connect(_ framing: Framing, _ adjust: (inout HotPoolConfiguration) -> Void = { _ in })
        async throws -> (Origin, HotConnPool, PooledConnection)
    {
        let origin = try Origin()
        if framing.http2 { try await origin.setTLSMode("h2") }
        var config = origin.configuration()
        adjust(&config)
        let pool = try origin.pool(config)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        #expect(connection.httpVersion == (framing.http2 ? .http2 : .http1_1))
        return (origin, pool, connection)
    }

    @Test(arguments: Framing.allCases)
    func everyCodingAndStackIsDecodedToWhatTheOriginSentBeforeCoding(framing: Framing) async throws {
        let (origin, pool, connection) = try await Self.connect(framing)
        for (index, (encodings, expected)) in Self.codings.enumerated() {
            let path = "/coded\(index)"
            try await origin.rule(path: path, ["type": "status", "text": Self.textBytes, "seed": index, "encodings": encodings,
                                               "framing": framing.origin], times: 1)
            let response = try await connection.roundTrip(get(path))
            #expect(response.body.count == Self.textBytes, "\(encodings)")
            #expect(sha256Hex(response.body) == response.head.headerFields[HTTPField.Name("X-Plain-SHA256")!], "\(encodings)")
            #expect(response.decodedContentCodings == expected)
            #expect(response.head.headerFields[.contentEncoding] != nil, "the head stays as sent")
        }
        // The preset's Accept-Encoding went out with every request, and one connection carried them all.
        let requests = try await origin.recentRequests(last: Self.codings.count)
        #expect(requests.allSatisfy { $0.header("accept-encoding") == "gzip, deflate, br, zstd" }, "\(requests.map { $0.headers })")
        #expect(Set(requests.map(\.connection)).count == 1)
        pool.putConnection(connection)
        let stats = await pool.stats()
        #expect(stats.totalRequests == Self.codings.count && stats.failedRequests == 0)
        #expect(stats.closedByReason.values.allSatisfy { $0 == 0 })
        try await pool.close()
    }

    /// `decompress: false`, or a request that sets its own Accept-Encoding, gets the coded bytes
    /// as sent; the preset's header still goes out with the first.
    @Test(arguments: Framing.allCases)
    func bodiesAreAsSentWhenTheCallerAsksOrSetsItsOwnAcceptEncoding(framing: Framing) async throws {
        let (origin, pool, connection) = try await Self.connect(framing)
        try await origin.rule(["type": "status", "text": Self.textBytes, "encodings": ["br"], "framing": framing.origin])
        let off = try await connection.roundTrip(get("/off"), decompress: false)
        #expect(sha256Hex(off.body) == off.head.headerFields[HTTPField.Name("X-Coded-SHA256")!] && off.decodedContentCodings == [])
        var own = get("/own")
        own.headerFields[.acceptEncoding] = "br"
        let ownResponse = try await connection.roundTrip(own)
        #expect(sha256Hex(ownResponse.body) == ownResponse.head.headerFields[HTTPField.Name("X-Coded-SHA256")!])
        #expect(ownResponse.decodedContentCodings == [])
        let requests = try await origin.recentRequests(last: 2)
        #expect(requests.map { $0.header("accept-encoding") } == ["gzip, deflate, br, zstd", "br"])
        pool.putConnection(connection)
        let viaExecute = try await pool.execute(get("/execute"), host: Origin.hostName, port: origin.port, decompress: false)
        #expect(viaExecute.decodedContentCodings == [] && viaExecute.body == off.body)
        try await pool.close()
    }

    /// A body whose coding cannot be undone fails only its request, with the coding named: the
    /// framing was intact, so the same connection carries the next request, and nothing is destroyed.
    @Test(arguments: Framing.allCases)
    func aCorruptTruncatedOrUnknownCodingFailsOnlyTheRequest(framing: Framing) async throws {
        let (origin, pool, connection) = try await Self.connect(framing)
        let cases: [(action: [String: Any], reason: String)] = [
            (["encodings": ["gzip"], "corrupt": true], "gzip: "),
            (["encodings": ["zstd"], "truncate": 10], "zstd: the stream was cut short"),
            (["encodings": ["compress"]], "compress: the pool does not decode this coding"),
            // Brotli has no checksum: its corrupt bytes decode to wrong ones, which gzip's CRC catches.
            (["encodings": ["gzip", "br"], "corrupt": true], "gzip: "),
        ]
        for (index, (action, reason)) in cases.enumerated() {
            let path = "/bad\(index)"
            try await origin.rule(path: path, action.merging(["type": "status", "text": Self.textBytes, "framing": framing.origin]) { a, _ in a },
                                  times: 1)
            do {
                let response = try await connection.roundTrip(get(path))
                Issue.record("\(action): answered \(response.head.status) with \(response.body.count) bytes")
            } catch let error as HotPoolError {
                #expect(error.code == .contentDecodingFailed && error.ip == origin.ips[0], "\(error)")
                #expect(error.reason?.hasPrefix(reason) == true, "\(action): \(error)")
            }
            let next = try await connection.roundTrip(get("/after\(index)"))
            #expect(next.head.status == .ok && next.body == Array("ok".utf8), "the connection carried the next request")
        }
        #expect(Set(try await origin.recentRequests(last: 2 * cases.count).map(\.connection)).count == 1)
        pool.putConnection(connection)
        let stats = await pool.stats()
        #expect(stats.totalConnections == 1 && stats.closedByReason.values.allSatisfy { $0 == 0 }, "\(stats.closedByReason)")
        try await pool.close()
    }

    /// A decompression bomb (256 MiB of zeros, a few hundred KB coded) ends at the ratio cap, its
    /// decoded bytes never past the cap's floor by more than a piece; with the cap raised, at
    /// `maxResponseBodyBytes` of decoded bytes. Over HTTP/1.1 the connection is destroyed once
    /// (its response was not read to the end), its fd closed; over HTTP/2 the stream is reset and
    /// the connection carries the next request.
    @Test(arguments: Framing.allCases)
    func aDecompressionBombEndsAtTheRatioCapOrTheBodyLimit(framing: Framing) async throws {
        let bombBytes = 256 << 20
        for coding in ["gzip", "br", "zstd"] {
            for raisedCap in [false, true] {
                let limit = 4 << 20
                let expected: HotPoolError.Code = raisedCap ? .responseBodyTooLarge : .decompressionRatioExceeded
                let cause: (HotConnPool, Origin, PooledConnection) async throws -> Void = { pool, origin, connection in
                    try await origin.rule(path: "/bomb", ["type": "status", "bomb": [coding, bombBytes], "framing": framing.origin])
                    do {
                        let response = try await connection.roundTrip(get("/bomb"))
                        Issue.record("\(coding): answered with \(response.body.count) bytes")
                    } catch let error as HotPoolError {
                        #expect(error.code == expected, "\(coding), cap raised: \(raisedCap): \(error)")
                        #expect(error.limit == (raisedCap ? limit : HotPoolConfiguration().maxDecompressionRatio))
                    }
                    if framing.http2 {
                        let next = try await connection.roundTrip(get("/next"))
                        #expect(next.head.status == .ok)
                        pool.removeConnection(connection)
                    } else {
                        pool.putConnection(connection)
                    }
                }
                try await expectDestruction(framing.http2 ? .removed : .unhealthyOnReturn, http2: framing.http2, config: { config in
                    config.maxResponseBodyBytes = limit
                    if raisedCap { config.maxDecompressionRatio = bombBytes }
                }, cause: cause)
            }
        }
    }
}
