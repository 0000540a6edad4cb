import HotPoolCore

/// HTTP/2 connections: several callers lease one at once, one per stream. The seed's rules hold
/// per connection: one that must go (a failed exchange, a GOAWAY, a 403-blacklisted IP, a
/// remove, its lifetime) takes no new streams, its socket closes once no exchange is under way
/// on it, and it is destroyed, counted once, when its last lease ends.
extension PoolStateMachine {
    /// True if `handle` names a lease under way (on an HTTP/2 connection, one of its stream leases).
    package func isCurrent(_ handle: LeaseHandle) -> Bool {
        let s = Int(handle.slot)
        guard s >= 0, s < table.slotCount, table.state[s] == .leased else { return false }
        return table.isMultiplexed(handle.slot) ? streamLeases[handle.slot]?[handle.lease] != nil : table.isCurrent(handle)
    }

    /// A stream limit within `maxStreamsPerConnection`, and at least 1 (a server that takes no
    /// stream for now has nghttp2 hold the request).
    func streamLimit(_ limit: Int) -> Int32 {
        Int32(clamping: max(1, min(limit, configuration.maxStreamsPerConnection)))
    }

    /// True if the leased HTTP/2 connection takes another stream now.
    func takesStreams(_ slot: Int32) -> Bool {
        let s = Int(slot)
        return table.state[s] == .leased && table.isMultiplexed(slot) && table.streams[s] < table.streamLimit[s]
            && table.operation[s] == .none && table.pendingClose[s] == nil && exclusion(slot) == nil
    }

    /// Keeps the connection on its host's list of those that take streams exactly while it does.
    mutating func updateSharing(_ slot: Int32) {
        table.setShared(slot, takesStreams(slot))
    }

    /// A leased HTTP/2 connection of the host (to `ip` and through `proxy` only, if given, and not
    /// to `avoiding`) that takes another stream.
    mutating func sharedConnection(host: Int32, ip: Int32?, proxy: Int32?, avoiding: Int32?) -> Int32? {
        table.sharedConnection(host: host) { fits($0, ip: ip, proxy: proxy, avoiding: avoiding) && takesStreams($0) }
    }

    /// Gives the connection's free streams to the host's waiters, oldest first.
    mutating func offerStreams(_ slot: Int32) {
        while takesStreams(slot), let id = waiterTaking(slot) {
            lease(slot, to: id)
        }
        updateSharing(slot)
    }

    /// A caller's stream lease ended (a put, a remove): an exchange still under way on it is
    /// abandoned (counted failed, its stream reset); the connection is taken back when its last
    /// lease ended, and otherwise offers the stream to a waiter.
    mutating func endStreamLease(_ handle: LeaseHandle) {
        let slot = handle.slot, s = Int(slot)
        guard let lease = streamLeases[slot]?.removeValue(forKey: handle.lease) else { return }
        if streamLeases[slot]?.isEmpty == true { streamLeases[slot] = nil }
        table.streams[s] -= 1
        table.lastUsed[s] = now
        if lease.exchangeDeadline != nil {
            counters.failedRequests += 1
            emit(.abortStreamExchange(handle))
            exchangeStopped(slot)
        }
        if table.streams[s] == 0 { return takeBack(slot) }
        offerStreams(slot)
    }

    /// A caller's stream lease ends and the connection must go (a remove, a failed validation):
    /// other callers' streams on it run to their end, and it is destroyed when the last lease ends.
    mutating func retireStreamLease(_ handle: LeaseHandle, _ reason: CloseReason) {
        retire(handle.slot, reason)
        endStreamLease(handle)
    }

    /// One exchange fewer is under way on the connection: one that must go closes its socket
    /// once none is (its close_notify only after the server's GOAWAY).
    private mutating func exchangeStopped(_ slot: Int32) {
        let s = Int(slot)
        table.exchanges[s] -= 1
        if !isSound(slot) && table.exchanges[s] == 0 {
            emit(.closeSocket(table.handle(slot), sendCloseNotify: table.pendingClose[s] == .remoteClosed))
        }
    }

    mutating func streamExchangeEnded(_ handle: LeaseHandle, _ outcome: ExchangeOutcome) {
        let slot = handle.slot, s = Int(slot)
        guard isCurrent(handle), streamLeases[slot]![handle.lease]!.exchangeDeadline != nil else { return }
        streamLeases[slot]![handle.lease]!.exchangeDeadline = nil
        let ip = table.ipID[s]
        switch outcome {
        case .answered(let status, let unusable):
            table.lastUsed[s] = now
            hostStore[ip: ip].consecutiveFailures = 0
            if let unusable { markPendingClose(slot, unusable) }
            recordAnswer(status, from: ip)
        case .acknowledged(let unusable):
            table.lastUsed[s] = now
            hostStore[ip: ip].consecutiveFailures = 0
            if let unusable { markPendingClose(slot, unusable) }
        case .failed:
            table.errorCount[s] &+= 1
            counters.failedRequests += 1
            // One broken connection is one failure of its IP, however many streams it failed.
            if isSound(slot) { recordFailure(ip, via: table.proxyID[s]) }
            markPendingClose(slot, .unhealthyOnReturn)
        case .streamFailed, .abandoned:
            table.errorCount[s] &+= 1
            counters.failedRequests += 1
        case .notProcessed:
            uncountRequest(slot)
        }
        exchangeStopped(slot)
        updateSharing(slot)
    }

    mutating func streamLimitChanged(_ handle: SlotHandle, _ limit: Int) {
        guard table.isCurrent(handle), table.isMultiplexed(handle.slot) else { return }
        table.streamLimit[Int(handle.slot)] = streamLimit(limit)
        if table.state[Int(handle.slot)] == .leased { offerStreams(handle.slot) }
    }

    /// Aborts stream exchanges past their deadline and reports long stream leases; returns the
    /// next of their deadlines (`.max` if none).
    mutating func sweepStreamDeadlines() -> Int64 {
        var next = Int64.max
        let warnAfter = configuration.leaseWarningAfter
        for (slot, leases) in streamLeases {
            for (number, lease) in leases {
                if let deadline = lease.exchangeDeadline {
                    if deadline <= now {
                        streamLeases[slot]![number]!.exchangeDeadline = .max  // the driver answers with the end
                        emit(.abortStreamExchange(LeaseHandle(slot: slot, lease: number)))
                    } else {
                        next = min(next, deadline)
                    }
                }
                guard lease.leasedAt != 0 else { continue }
                if now - lease.leasedAt >= warnAfter {
                    emit(.reportLongLease(table.handle(slot), nanoseconds: now - lease.leasedAt))
                    streamLeases[slot]![number]!.leasedAt = 0
                } else {
                    next = min(next, HotPoolCore.deadline(from: lease.leasedAt, after: warnAfter))
                }
            }
        }
        return next
    }
}
