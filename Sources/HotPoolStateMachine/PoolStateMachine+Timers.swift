import HotPoolCore

/// Timers as data: deadlines live in the table (`operationDeadline`, `leasedAt`) and the waiter
/// queue and are swept when the earliest is due, so there is no timer object per connection and
/// no sweep while nothing is due; the cleanup, the health check, the blacklist recovery pass and
/// the DNS refresh are periodic.
extension PoolStateMachine {
    /// Makes sure the deadline timer fires by `deadline`.
    mutating func armDeadlineTimer(at deadline: Int64) {
        guard !closed, deadline < deadlineTimerAt else { return }
        deadlineTimerAt = deadline
        emit(.armTimer(.deadlines, at: deadline))
    }

    mutating func armPeriodic(_ timer: Timer) {
        let interval: Int64? = switch timer {
        case .deadlines: nil
        case .cleanup: configuration.cleanupInterval
        case .healthCheck: configuration.healthCheckInterval
        case .recovery: configuration.blacklistCheckInterval
        case .dnsRefresh: configuration.dnsUpdateInterval
        }
        guard !closed, let interval else { return }
        let at = HotPoolCore.deadline(from: now, after: interval)
        if at != .max { emit(.armTimer(timer, at: at)) }
    }

    mutating func timerFired(_ timer: Timer) {
        guard !closed else { return }
        switch timer {
        case .deadlines:
            deadlineTimerAt = .max
            sweepDeadlines()
        case .cleanup:
            cleanupIdle()
            reclaimIdleHosts()
            cleanupExpired(maxLifetime: configuration.maxLifetime)
            freeUnusedIPsOutOfRotation()
            freeUnusedProxies()
            // Hosts whose warming dials failed, or whose connections the server closed, are topped
            // up again once a cleanup interval.
            for host in hostStore.hostIDs { markForWarming(host) }
            armPeriodic(.cleanup)
        case .healthCheck:
            if let interval = configuration.healthCheckInterval { probeIdleConnections(interval: interval) }
            armPeriodic(.healthCheck)
        case .recovery:
            probeBlacklistedIPs()
            probeEjectedProxies()
            armPeriodic(.recovery)
        case .dnsRefresh:
            refreshResolvedHosts()
            armPeriodic(.dnsRefresh)
        }
    }

    /// Aborts operations past their deadline, reports long leases, fails waiters whose time is up,
    /// and arms the timer for the next deadline.
    private mutating func sweepDeadlines() {
        var next = Int64.max
        let warnAfter = configuration.leaseWarningAfter
        for slot in 0..<Int32(table.slotCount) {
            let s = Int(slot)
            guard table.state[s] == .dialing || table.state[s] == .leased else { continue }
            if table.operation[s] != .none {
                if table.operationDeadline[s] <= now {
                    table.operationDeadline[s] = .max  // the driver answers with the operation's end
                    emit(.abort(table.handle(slot)))
                } else {
                    next = min(next, table.operationDeadline[s])
                }
            }
            guard table.state[s] == .leased, table.leasedAt[s] != 0 else { continue }
            if now - table.leasedAt[s] >= warnAfter {
                emit(.reportLongLease(table.handle(slot), nanoseconds: now - table.leasedAt[s]))
                table.leasedAt[s] = 0
            } else {
                next = min(next, HotPoolCore.deadline(from: table.leasedAt[s], after: warnAfter))
            }
        }
        next = min(next, sweepStreamDeadlines())
        for id in waiters.expired(at: now) {
            let waiter = waiters[id]!
            let host = hostStore[host: waiter.host].key.name
            fail(id, .timeout(host: host, ip: waiter.pinnedIP.map { hostStore[ip: $0].address }, phase: .waitForConnection))
        }
        if let earliest = waiters.earliestDeadline { next = min(next, earliest) }
        if next != .max { armDeadlineTimer(at: next) }
    }

    /// Destroys idle connections unused for `idleTimeout`, keeping `minIdlePerHost` of each
    /// host. Returns how many.
    @discardableResult
    mutating func cleanupIdle() -> Int {
        let (idleTimeout, minIdle, now, table) = (configuration.idleTimeout, configuration.minIdlePerHost, now, table)
        return destroyIdle(.idleTimeout) { now - table.lastUsed[$0] >= idleTimeout && table.idleCount(host: table.hostID[$0]) > minIdle }
    }

    /// Destroys idle connections older than `maxLifetime` now, and marks leased ones to be
    /// destroyed when they come back. Returns how many were destroyed now.
    @discardableResult
    mutating func cleanupExpired(maxLifetime: Int64) -> Int {
        for slot in 0..<Int32(table.slotCount)
        where table.state[Int(slot)] == .leased && now - table.created[Int(slot)] >= maxLifetime {
            markPendingClose(slot, .maxLifetime)
        }
        let (now, table) = (now, table)
        return destroyIdle(.maxLifetime) { now - table.created[$0] >= maxLifetime }
    }

    private mutating func destroyIdle(_ reason: CloseReason, where expired: (Int) -> Bool) -> Int {
        var count = 0
        for slot in 0..<Int32(table.slotCount) where table.state[Int(slot)] == .idle && expired(Int(slot)) {
            destroy(slot, reason)
            count += 1
        }
        return count
    }

    /// Frees the records of hosts with nothing going on for `idleTimeout` (no connection, waiter,
    /// lookup or blacklisted IP; manual blacklistings and allow lists are kept by name), so a crawler touching millions of hosts stays bounded. A later
    /// get makes the record anew (with the addresses `setAddresses` gave, which stay). Hosts
    /// `minIdlePerHost` keeps warm are never freed: their connections are replaced by the
    /// cleanup, which needs their records.
    @discardableResult
    mutating func reclaimIdleHosts() -> Int {
        let idleTimeout = configuration.idleTimeout
        let (table, waiters, now, ips, configuration) = (table, waiters, now, hostStore.ips, configuration)
        return hostStore.reclaim { host in
            !configuration.keepsWarm(host) && table.liveCount(host: host.id) == 0 && waiters.queuedCount(host.id) == 0
                && !host.resolving && now - host.lastUsed >= idleTimeout
                && !host.ipRecords.contains { ips[Int($0)].blacklistReason != nil && !ips[Int($0)].removed }
        }
    }

    /// Frees the records of IPs out of their host's rotation (DNS dropped them, or only a pinned
    /// caller named them) that nothing refers to any more: no connection or dial in the table (a
    /// recovery probe is one of those), no waiter pinned to it or whose dial failed on it, and no
    /// blacklisting still running. (One that ran out is forgotten rather than probed: no rotation
    /// waits for the IP. Should it come back, or a caller pin it again, it starts with no
    /// blacklisting and counts from zero; a manual blacklisting is kept by name and applies
    /// again.) A walk over the table's slots and the waiters, on a cleanup with such records only.
    mutating func freeUnusedIPsOutOfRotation() {
        guard !hostStore.ipsOutOfRotation.isEmpty else { return }
        var inUse = waiters.referencedIPs
        for slot in 0..<table.slotCount where table.state[slot] != .free { inUse.insert(table.ipID[slot]) }
        let now = now
        hostStore.freeIPsOutOfRotation { id, record in
            !inUse.contains(id) && (record.blacklistReason == nil || record.blacklistedUntil <= now)
        }
    }
}
