extension Duration {
    /// Whole nanoseconds, saturating at `Int64.max` / `Int64.min`.
    package var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, sumOverflow) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        guard !overflow && !sumOverflow else { return seconds < 0 ? .min : .max }
        return sum
    }
}

/// The monotonic instant `nanos` after `start`; `Int64.max` ("never") when it is past the
/// clock's range. Every deadline is made here, so no deadline arithmetic can overflow.
package func deadline(from start: Int64, after nanos: Int64) -> Int64 {
    let (sum, overflow) = start.addingReportingOverflow(max(0, nanos))
    return overflow ? .max : sum
}

