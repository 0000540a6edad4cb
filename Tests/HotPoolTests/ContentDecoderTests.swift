import Foundation
import HTTPTypes
import Testing
@testable import HotPoolCore
@testable import HotPoolHTTP

/// The content decoders on their own (no sockets): every coding, fed whole and a byte at a time,
/// several members or frames, data after the end, a stream cut short, and the codings refused.
@Suite struct ContentDecoderTests {
    /// "hello, coded world\n" 40 times, coded by Python's gzip, zlib, brotli and zstandard modules.
    static let plain = Array(String(repeating: "hello, coded world\n", count: 40).utf8)
    static let coded: [(name: String, coding: ContentCoding, bytes: [UInt8])] = [
        ("gzip", .gzip, bytes("H4sIAAAAAAACA8tIzcnJ11FIzk9JTVEozy/KSeHKGBUaFRruQgAyzuq9+AIAAA==")),
        ("deflate (zlib)", .deflate, bytes("eJzLSM3JyddRSM5PSU1RKM8vyknhyhgVGhUa7kIAP64LuA==")),
        ("deflate (raw)", .deflate, bytes("y0jNycnXUUjOT0lNUSjPL8pJ4coYFRoVGu5CAA==")),
        ("br", .br, bytes("G/cCiIxUtb8kG3tLBZCyHGSWxooz9KxpC38i")),
        ("zstd", .zstd, bytes("KLUv/WD4AdUAAJhoZWxsbywgY29kZWQgd29ybGQKAQDFWTXD")),
    ]

    static func bytes(_ base64: String) -> [UInt8] { Array(Data(base64Encoded: base64)!) }

    static func decoder(_ contentEncoding: String) throws(ResponseError) -> ContentDecoder? {
        try ContentDecoder.make(for: HTTPFields([HTTPField(name: .contentEncoding, value: contentEncoding)]))
    }

    /// Decodes `input` fed in pieces of `feed` bytes, then finishes.
    static func decode(_ decoder: ContentDecoder, _ input: [UInt8], feed: Int) throws(ResponseError) -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        while start < input.count {
            let end = min(input.count, start + feed)
            let piece = Array(input[start..<end])
            try piece.withUnsafeBytes { raw in
                Result { () throws(ResponseError) in try decoder.decode(raw) { out.append(contentsOf: $0) } }
            }.get()
            start = end
        }
        try decoder.finish()
        return out
    }

    @Test(arguments: [1, 2, 3, 7, 1 << 20])
    func everyCodingDecodesTheSameWhateverTheFeeds(feed: Int) throws {
        for (name, coding, bytes) in Self.coded {
            let decoder = try #require(try Self.decoder(coding.rawValue))
            #expect(decoder.codings == [coding])
            #expect(try Self.decode(decoder, bytes, feed: feed) == Self.plain, "\(name), fed \(feed) bytes at a time")
        }
    }

    /// Bodies that decode to exactly one and two of a stage's output buffers: the output fills
    /// it before the stream's trailer is read, and the decoder must still be asked for its end.
    @Test func aBodyFillingTheOutputBufferExactlyEnds() throws {
        let line = Array("hello, coded world\n".utf8)
        for (count, coded) in [
            (ContentDecoder.stageOutputBytes, "H4sIAAAAAAACA+3IsQkAIAwAsN0rPMCvrOBQKLj4vl84JWP2yqzRZ8WKfutktK2UUkoppZRSSimllFJKKaWUUkoppZRSSimllFJKKaWUUkoppZRSSqm/9QCNr/DWAEAAAA=="),
            (2 * ContentDecoder.stageOutputBytes, "H4sIAAAAAAACA+3IsQkAIAwAsN0rPMCvrOBQKLj4voeYjNkrs0afFSv6rZPRtlJKKaWUUkoppZRSSimllFJKKaWUUkoppZRSSimllFJKKaWUUkoppZRSSimllFJKKaWUUkoppZRSSimllFJKKaWUUkoppZRSSimllFJKKfVbPZiaLGQAgAAA"),
        ] {
            let plain = Array((0..<count).map { line[$0 % line.count] })
            for feed in [1, 7, 1 << 20] {
                let decoder = try #require(try Self.decoder("gzip"))
                #expect(try Self.decode(decoder, Self.bytes(coded), feed: feed) == plain, "\(count) bytes, fed \(feed) at a time")
            }
        }
    }

    @Test func gzipMembersAndZstdFramesInARowAreOneBody() throws {
        for coding in [ContentCoding.gzip, .zstd] {
            let one = Self.coded.first { $0.coding == coding }!.bytes
            for feed in [1, 1 << 20] {
                let decoder = try #require(try Self.decoder(coding.rawValue))
                #expect(try Self.decode(decoder, one + one, feed: feed) == Self.plain + Self.plain, "\(coding)")
            }
        }
    }

    @Test func dataAfterTheEndOfADeflateOrBrotliStreamIsCorrupt() throws {
        for (name, coding, bytes) in Self.coded where coding == .deflate || coding == .br {
            let decoder = try #require(try Self.decoder(coding.rawValue))
            #expect(throws: ResponseError.contentDecodingFailed(coding: coding.rawValue, reason: "data after the end of the stream"),
                    "\(name)") { try Self.decode(decoder, bytes + [0], feed: 1 << 20) }
        }
    }

    @Test func aStreamCutShortIsCorruptAndAnEmptyBodyIsEmpty() throws {
        for (name, coding, bytes) in Self.coded {
            let cut = try #require(try Self.decoder(coding.rawValue))
            #expect(throws: ResponseError.contentDecodingFailed(coding: coding.rawValue, reason: "the stream was cut short"),
                    "\(name)") { try Self.decode(cut, Array(bytes.dropLast()), feed: 5) }
            let empty = try #require(try Self.decoder(coding.rawValue))
            #expect(try Self.decode(empty, [], feed: 1) == [], "\(name)")
        }
    }

    @Test func corruptDataNamesItsCodingAndKeepsWhatCameBeforeIt() throws {
        let gzip = Self.coded[0].bytes
        var corrupt = gzip
        corrupt[3] = 0xff  // reserved flag bits of the gzip header
        let decoder = try #require(try Self.decoder("gzip"))
        #expect(throws: ResponseError.contentDecodingFailed(coding: "gzip", reason: "unknown header flags set")) {
            try Self.decode(decoder, corrupt, feed: 4)
        }
    }

    @Test func stackedCodingsAreUndoneLastFirst() throws {
        // gzip (Python's) applied to the brotli body above: "br, gzip".
        let gzipOfBr = Self.bytes("H4sIAAAAAAACA5P+ztTRE7J1v4p0tTfrhE0yKdOOdRl/WZPJXa8EAKzmdfobAAAA")
        let decoder = try #require(try Self.decoder("br, gzip"))
        #expect(decoder.codings == [.br, .gzip])
        #expect(try Self.decode(decoder, gzipOfBr, feed: 3) == Self.plain)
    }

    @Test func identityIsNoCodingAndUnknownOrTooManyCodingsAreRefused() throws {
        #expect(try Self.decoder("identity") == nil)
        #expect(try Self.decoder("X-GZIP, identity")?.codings == [.gzip])
        #expect(throws: ResponseError.contentDecodingFailed(coding: "compress", reason: "the pool does not decode this coding")) {
            try Self.decoder("gzip, compress")
        }
        let five = Array(repeating: "gzip", count: ContentDecoder.maxStackedCodings + 1).joined(separator: ", ")
        #expect(throws: ResponseError.contentDecodingFailed(coding: five, reason: "more than 4 codings stacked")) { try Self.decoder(five) }
    }
}
