/// Entry point for the fuzz target in `Tests/Fuzz/`, which checks the response parser's
/// contract: the outcome never depends on how the bytes are split into reads. Not part of the
/// public contract: import with `@_spi(Fuzzing) import HotPool`.
@_spi(Fuzzing)
public enum ResponseParserFuzzing {
    /// Parses `input` once whole and once split into feeds at `splits` (offsets into `input`;
    /// those outside `1..<input.count` and repeats are ignored), each run at EOF if incomplete,
    /// with the given limits; returns a description of the first disagreement, or nil when both
    /// runs agree.
    public static func differential(
        _ input: UnsafeRawBufferPointer, splits: [Int], maxHeaderBytes: Int, maxHeaderFields: Int,
        maxBodyBytes: Int, isHeadRequest: Bool
    ) -> String? {
        let limits = ResponseLimits(maxHeaderBytes: maxHeaderBytes, maxHeaderFields: maxHeaderFields, maxBodyBytes: maxBodyBytes)
        let cuts = Set(splits.filter { $0 > 0 && $0 < input.count }).sorted()
        let whole = ParseOutcome(input, cuts: [], limits: limits, isHeadRequest: isHeadRequest)
        let split = ParseOutcome(input, cuts: cuts, limits: limits, isHeadRequest: isHeadRequest)
        if let doubled = split.completedTwice ?? whole.completedTwice { return "feed returned a response twice, at offset \(doubled)" }
        if whole == split { return nil }
        return """
            \(input.count) bytes, \(limits), isHeadRequest: \(isHeadRequest)
            whole: \(whole)
            split at \(cuts): \(split)
            """
    }
}

/// One run's outcome: the response or the error, and the bytes after the response (after an
/// error, unread bytes depend on where the feeding stopped, so they are not compared).
private struct ParseOutcome: Equatable, CustomStringConvertible {
    var result: Result<HTTP1ResponseParser.Complete, ResponseError>
    var trailingBytes = 0
    /// Where a feed returned a second response, which the parser must never do.
    var completedTwice: Int?

    init(_ input: UnsafeRawBufferPointer, cuts: [Int], limits: ResponseLimits, isHeadRequest: Bool) {
        var parser = HTTP1ResponseParser(limits: limits, isHeadRequest: isHeadRequest)
        var complete: HTTP1ResponseParser.Complete?
        var start = 0
        var twice: Int?
        do throws(ResponseError) {
            for end in cuts + [input.count] {
                if let response = try parser.feed(UnsafeRawBufferPointer(rebasing: input[start..<end])) {
                    if complete != nil { twice = twice ?? start }
                    complete = complete ?? response
                }
                start = end
            }
            if complete == nil { complete = try parser.finishAtEOF() }
            result = .success(complete!)
            trailingBytes = parser.trailingBytes
        } catch {
            result = .failure(error)
        }
        completedTwice = twice
    }

    static func == (a: Self, b: Self) -> Bool { a.result == b.result && a.trailingBytes == b.trailingBytes }

    var description: String {
        switch result {
        case .failure(let error): "\(error)"
        case .success(let c):
            "\(c.head.status.code) \(c.head.headerFields), body \(c.body.count) bytes \(c.body), keepAlive \(c.keepAlive), trailing \(trailingBytes)"
        }
    }
}
