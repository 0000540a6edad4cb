import HotPoolCore

/// Block signals from ordinary traffic (`HotPoolConfiguration.blockSignals`): answers whose status
/// says a server refuses the pool count against their IP, and enough of them within the policy's
/// window blacklist it with the 403 rules.
extension PoolStateMachine {
    /// An answer with `status` to a request on a connection to `ip` (a caller's exchange, over
    /// HTTP/1.1 or an HTTP/2 stream, or a probe). With a policy counting `status`, it counts in
    /// the IP's `blockAnswers`; while the IP is not blacklisted it also counts towards the
    /// policy's threshold, and the answer that reaches it blacklists the IP for its host as a 403
    /// to a validation does: for `blacklistTimeout`, recovery probes backing off to
    /// `maxBlacklistTime`, idle connections closed now and leased ones on return. Like that 403,
    /// it is not limited by `maxEjectedShare`. Any blacklisting starts its count afresh
    /// (`blacklist`).
    mutating func recordAnswer(_ status: Int, from ip: Int32) {
        guard let policy = configuration.blockSignals, policy.statuses.contains(status) else { return }
        hostStore[ip: ip].blockAnswers += 1
        guard hostStore[ip: ip].blacklistReason == nil,
              hostStore[ip: ip].recentBlockAnswers.record(now, threshold: policy.threshold, window: policy.window) else { return }
        decideBlacklisting(ip, .blocked, period: configuration.blacklistTimeout)
    }

    /// The IP's block answers counting towards the policy's threshold at `now` (0 without a policy).
    package func recentBlockAnswers(of record: IPRecord, at now: Int64) -> Int {
        guard let policy = configuration.blockSignals else { return 0 }
        return record.recentBlockAnswers.count(within: policy.window, at: now)
    }
}

/// The instants (monotonic ns) of an IP's latest block answers, at most the policy's threshold of
/// them, in a ring: what an IP record holds is bounded by the configuration, whatever a server
/// sends. Empty (no storage) for an IP that sent none.
struct BlockAnswerTimes {
    private var times: [Int64] = []
    /// Where the oldest instant is once the ring is full (0 until then: they were appended in order).
    private var oldest = 0

    /// Records an answer at `now`; true if it makes `threshold` answers within `window` ns: the
    /// oldest of the latest `threshold` is less than `window` old.
    mutating func record(_ now: Int64, threshold: Int, window: Int64) -> Bool {
        if times.count < threshold {
            if times.isEmpty { times.reserveCapacity(threshold) }
            times.append(now)
            if times.count < threshold { return false }
        } else {
            times[oldest] = now
            oldest = (oldest + 1) % threshold
        }
        return now - times[oldest] < window
    }

    /// How many of them are less than `window` old at `now`.
    func count(within window: Int64, at now: Int64) -> Int {
        times.count { now - $0 < window }
    }

    /// Forgets them, and frees their storage.
    mutating func removeAll() {
        times = []
        oldest = 0
    }
}
