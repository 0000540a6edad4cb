// Differential fuzzing of the HTTP/1.1 response parser: each input is parsed whole and split
// into feeds, and the two outcomes must agree (the parser's contract). Input layout:
//   byte 0      the limits, an entry of `limitTable` (index modulo its count)
//   byte 1      bit 0: a response to HEAD; bit 1: its content codings are decoded
//   byte 2      the longest feed of the split run, minus one (0: one byte per feed)
//   bytes 3..9  the feed lengths, taken in turn (each 1 + byte % (byte 2 + 1))
//   bytes 10... the response bytes
// A missing byte of the first ten reads as 0.
@_spi(Fuzzing) import HotPool

/// (maxHeaderBytes, maxHeaderFields, maxBodyBytes): tiny ones so that limits are hit, down to
/// none at all, and roomy ones so that whole responses get through.
private let limitTable: [(Int, Int, Int)] = [
    (16, 2, 8),
    (40, 0, 0),
    (64, 4, 32),
    (100, 1, 1),
    (256, 8, 256),
    (512, 16, 64),
    (1024, 32, 4096),
    (8192, 100, 1 << 20),
]

private let headerSize = 10

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let all = UnsafeBufferPointer(start: data, count: size)
    func byte(_ i: Int) -> UInt8 { i < size ? all[i] : 0 }
    let (maxHeaderBytes, maxHeaderFields, maxBodyBytes) = limitTable[Int(byte(0)) % limitTable.count]
    let isHeadRequest = byte(1) & 1 != 0
    let decodesContent = byte(1) & 2 != 0
    let longestFeed = Int(byte(2)) + 1
    let lengths = (3..<headerSize).map { 1 + Int(byte($0)) % longestFeed }
    let response = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: all[min(size, headerSize)...]))

    var splits: [Int] = []
    var offset = 0
    while true {
        offset += lengths[splits.count % lengths.count]
        guard offset < response.count else { break }
        splits.append(offset)
    }
    if let disagreement = ResponseParserFuzzing.differential(
        response, splits: splits, maxHeaderBytes: maxHeaderBytes, maxHeaderFields: maxHeaderFields,
        maxBodyBytes: maxBodyBytes, isHeadRequest: isHeadRequest, decodesContent: decodesContent)
    {
        // fatalError's message goes to stderr at once (stdout is buffered, and lost in the crash).
        fatalError("the parser's outcome depends on the split\n\(disagreement)")
    }
    return 0
}
