/// Block signals from ordinary traffic: answers whose status says a server refuses the pool's
/// traffic from an IP (by default 403 and 429), to any request on a connection to that IP: a
/// caller's `roundTrip` or `execute` over HTTP/1.1 or an HTTP/2 stream, a validation request or a
/// health check. `threshold` of them from one IP within `window` take it out of its host's
/// rotation, as a 403 to a validation or health check does (`BlacklistReason.blocked`): its idle
/// connections close at once and leased ones when returned, for `blacklistTimeout`, then until a
/// recovery probe passes (each failed probe doubles the time, up to `maxBlacklistTime`).
///
/// Like 403 blacklisting, and unlike failure ejections, it is not limited by `maxEjectedShare`:
/// a host every IP of which refuses the pool loses them all, and its callers then fail with
/// `allAddressesBlacklisted` rather than go on hammering it.
///
/// The answers count against the IP the connection goes to, through a proxy too (as 403
/// blacklisting does). Answers while the IP is blacklisted count in `IPStats.blockAnswers` only;
/// any blacklisting starts its count towards `threshold` afresh.
public struct BlockSignalPolicy: Sendable, Hashable {
    /// The statuses that count as block answers, each within `validStatuses`; not empty.
    public var statuses: Set<Int>
    /// How many block answers from one IP within `window` take it out of rotation; within
    /// 1...`maxThreshold`.
    public var threshold: Int
    /// The span the `threshold` latest block answers must fall within (the oldest of them less
    /// than this old when the last comes); at least 1 ns.
    public var window: Duration

    /// The statuses a policy counts unless told otherwise: 403 Forbidden and 429 Too Many Requests.
    public static let defaultStatuses: Set<Int> = [403, 429]
    /// The statuses a policy may count: any HTTP status.
    public static let validStatuses = 100...599
    /// The largest `threshold`: the pool keeps the instants of up to `threshold` block answers
    /// per IP (8 bytes each), so this bounds what a server answering block statuses costs.
    public static let maxThreshold = 256

    /// A policy counting `statuses` (403 and 429 unless given); `threshold` (5 unless given) of
    /// them from one IP within `window` (a minute unless given) take it out of rotation.
    public init(statuses: Set<Int> = defaultStatuses, threshold: Int = 5, window: Duration = .seconds(60)) {
        self.statuses = statuses
        self.threshold = threshold
        self.window = window
    }

    /// Throws `invalidConfiguration` naming the field (as `blockSignals.<field>`) and its range.
    package func validate() throws(HotPoolError) {
        if statuses.isEmpty { throw .invalidConfiguration("blockSignals.statuses must not be empty") }
        if let status = statuses.sorted().first(where: { !Self.validStatuses.contains($0) }) {
            throw .invalidConfiguration(
                "blockSignals.statuses must be within \(Self.validStatuses.lowerBound)...\(Self.validStatuses.upperBound), got \(status)")
        }
        if !(1...Self.maxThreshold).contains(threshold) {
            throw .invalidConfiguration("blockSignals.threshold must be within 1...\(Self.maxThreshold), got \(threshold)")
        }
        if window < .nanoseconds(1) { throw .invalidConfiguration("blockSignals.window must be at least 1 ns, got \(window)") }
    }
}
