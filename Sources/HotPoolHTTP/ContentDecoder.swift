import CShims
import HTTPTypes
import HotPoolCore

/// Undoes a body's content codings as its bytes arrive (sans I/O): one C decoder per coding
/// (zlib, brotli, zstd), the last applied undone first, each handing what it decodes to the next
/// through a buffer of its own. Memory per body is those buffers and the decoders' windows (32
/// KiB for deflate, up to 16 MiB for brotli and 8 MiB for zstd, as the server's stream asks),
/// whatever the server sends; how much decoded output is taken is the caller's limit (`emit`).
package final class ContentDecoder {
    /// The codings undone, in the order the server applied them.
    package let codings: [ContentCoding]
    /// One decoder per coding, in decoding order (the reverse of `codings`), and its output buffer.
    private let stages: [OpaquePointer]
    private let outputs: [UnsafeMutableRawBufferPointer]
    /// Coded bytes taken so far.
    package private(set) var consumedBytes = 0

    /// Content codings stacked on one body past which it is refused.
    package static let maxStackedCodings = 4
    /// Bytes each stage decodes into before handing them on.
    static let stageOutputBytes = 16 * 1024

    /// The decoder for a response whose `Content-Encoding` fields are `fields`; nil when they
    /// name no coding (or only `identity`). Throws `contentDecodingFailed` for a coding it does
    /// not know, or more than `maxStackedCodings`.
    package static func make(for fields: HTTPFields) throws(ResponseError) -> ContentDecoder? {
        var codings: [ContentCoding] = []
        for value in fields[values: .contentEncoding] {
            for token in value.split(separator: ",") {
                let name = String(token.filter { $0 != " " && $0 != "\t" })
                if name.isEmpty || name.lowercased() == "identity" { continue }
                guard let coding = ContentCoding(token: name) else {
                    throw .contentDecodingFailed(coding: name, reason: "the pool does not decode this coding")
                }
                codings.append(coding)
            }
        }
        guard !codings.isEmpty else { return nil }
        guard codings.count <= maxStackedCodings else {
            throw .contentDecodingFailed(coding: codings.map(\.rawValue).joined(separator: ", "),
                                         reason: "more than \(maxStackedCodings) codings stacked")
        }
        return try ContentDecoder(codings)
    }

    private init(_ codings: [ContentCoding]) throws(ResponseError) {
        self.codings = codings
        var stages: [OpaquePointer] = []
        for coding in codings.reversed() {
            guard let stage = hp_decoder_new(coding.shimCoding) else {
                stages.forEach { hp_decoder_free($0) }
                throw .contentDecodingFailed(coding: coding.rawValue, reason: "out of memory")
            }
            stages.append(stage)
        }
        self.stages = stages
        outputs = stages.map { _ in .allocate(byteCount: Self.stageOutputBytes, alignment: 1) }
    }

    deinit {
        stages.forEach { hp_decoder_free($0) }
        outputs.forEach { $0.deallocate() }
    }

    /// Decodes `input`, handing each decoded piece to `emit` as it comes (a piece is at most
    /// `stageOutputBytes`, so the caller bounds what it takes between pieces). Throws
    /// `contentDecodingFailed` for corrupt input, or what `emit` throws.
    package func decode(_ input: UnsafeRawBufferPointer,
                        _ emit: (UnsafeRawBufferPointer) throws(ResponseError) -> Void) throws(ResponseError) {
        consumedBytes += input.count
        try run(0, input, emit)
    }

    /// The body ended: throws `contentDecodingFailed` if it was cut short (a stage is inside a
    /// stream). An empty body is an empty body, whatever its coding says.
    package func finish() throws(ResponseError) {
        guard consumedBytes > 0 else { return }
        for (stage, coding) in zip(stages, codings.reversed()) where hp_decoder_at_end(stage) == 0 {
            throw .contentDecodingFailed(coding: coding.rawValue, reason: "the stream was cut short")
        }
    }

    /// Runs stage `index` over `input`, passing its output on, until it took all of the input and
    /// has no output left.
    private func run(_ index: Int, _ input: UnsafeRawBufferPointer,
                     _ emit: (UnsafeRawBufferPointer) throws(ResponseError) -> Void) throws(ResponseError) {
        guard index < stages.count else { return try emit(input) }
        let stage = stages[index], output = outputs[index]
        var rest = input
        while true {
            var consumed = 0, produced = 0
            let rc = hp_decoder_run(stage, rest.baseAddress?.assumingMemoryBound(to: UInt8.self), rest.count, &consumed,
                                    output.baseAddress!.assumingMemoryBound(to: UInt8.self), output.count, &produced)
            // What came before a corrupt byte is handed on first, so that how the input was split
            // never changes what is decoded before the failure.
            if produced > 0 { try run(index + 1, UnsafeRawBufferPointer(rebasing: output[..<produced]), emit) }
            guard rc == HP_DECODE_OK else {
                throw .contentDecodingFailed(coding: codings[codings.count - 1 - index].rawValue,
                                             reason: String(cString: hp_decoder_error(stage)))
            }
            rest = UnsafeRawBufferPointer(rebasing: rest[consumed...])
            if produced == output.count { continue }  // it may hold more output
            if rest.isEmpty { return }
            if consumed == 0 && produced == 0 {
                throw .contentDecodingFailed(coding: codings[codings.count - 1 - index].rawValue, reason: "the decoder stalled")
            }
        }
    }
}

extension ContentCoding {
    /// The shim's constant for the coding.
    var shimCoding: Int32 {
        switch self {
        case .gzip: HP_CODING_GZIP
        case .deflate: HP_CODING_DEFLATE
        case .br: HP_CODING_BR
        case .zstd: HP_CODING_ZSTD
        }
    }
}
