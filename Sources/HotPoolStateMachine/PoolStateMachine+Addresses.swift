import HotPoolCore

/// The IPs behind a host: static and resolved addresses with the DNS refresh, blacklisting
/// (403, block signals, outlier ejection, manual) with the recovery pass, allow lists, and
/// pre-warming.
extension PoolStateMachine {
    // MARK: addresses

    mutating func setAddresses(_ addresses: [String], forHost name: String) {
        for host in hostStore.setStaticAddresses(addresses, forName: name) {
            serveQueued(host)
            warm(host)
        }
    }

    /// `refreshAddresses`: a lookup now (joined to one under way); static and literal
    /// addresses are answered as they are.
    mutating func refresh(_ id: WaiterID, _ request: AcquireRequest) {
        guard !closed else { return emit(.fail(id, .poolClosed)) }
        let (host, _) = hostStore.host(for: request.key, nameIsAddress: request.nameIsAddress, now: now)
        let record = hostStore[host: host]
        if record.hasAddresses && !record.addressesFromDNS {
            return emit(.reportAddresses(id, record.ipIDs.map { hostStore[ip: $0].address }))
        }
        answerWaiters[id] = host
        hostStore[host: host].refreshWaiters.append(id)
        resolve(host)
    }

    /// Starts a lookup of the host unless one is under way.
    mutating func resolve(_ host: Int32) {
        guard !hostStore[host: host].resolving else { return }
        hostStore[host: host].resolving = true
        emit(.resolve(hostID: host, hostStore[host: host].key))
    }

    mutating func resolved(_ host: Int32, _ result: Result<[String], HotPoolError>) {
        guard !closed else { return }
        hostStore[host: host].resolving = false
        let refreshWaiters = hostStore[host: host].refreshWaiters
        hostStore[host: host].refreshWaiters = []
        for id in refreshWaiters { answerWaiters[id] = nil }
        let record = hostStore[host: host]
        switch result {
        case .success(let addresses):
            // Addresses set by `setAddresses` meanwhile win over DNS.
            if !record.hasAddresses || record.addressesFromDNS {
                let used = Array(addresses.prefix(configuration.maxAddressesPerLookup))
                for ip in hostStore.applyResolved(used, to: host, now: now) { destroyIdleConnections(to: ip) }
            }
            let current = hostStore[host: host].ipIDs.map { hostStore[ip: $0].address }
            for id in refreshWaiters { emit(.reportAddresses(id, current)) }
            serveQueued(host)
            warm(host)
        case .failure(let error):
            if record.hasAddresses { emit(.reportLookupFailure(host: record.key.name, error)) }  // the last good set stays
            for id in refreshWaiters { emit(.fail(id, error)) }
            if !record.hasAddresses {
                while let id = waiters.first(of: host) { fail(id, error) }
                for (id, _) in hostStore[host: host].prewarmWaiters { failAnswerWaiter(id, error) }
            }
        }
    }

    /// The DNS refresh: every host whose addresses came from DNS is looked up again.
    mutating func refreshResolvedHosts() {
        for host in hostStore.hostIDs where hostStore[host: host].addressesFromDNS { resolve(host) }
    }

    /// Fails a `refreshAddresses` or `prewarm` caller.
    mutating func failAnswerWaiter(_ id: WaiterID, _ error: HotPoolError) {
        guard let host = answerWaiters.removeValue(forKey: id) else { return }
        hostStore[host: host].refreshWaiters.removeAll { $0 == id }
        hostStore[host: host].prewarmWaiters.removeAll { $0.id == id }
        emit(.fail(id, error))
    }

    // MARK: blacklisting

    /// Takes an IP out of rotation for its host, for `period` at least (then the recovery pass
    /// probes it): idle connections to it go now, leased ones on return. A recovery probe under
    /// way no longer decides anything, and a manual blacklisting keeps its reason and the later
    /// expiry. Its block answers count towards `blockSignals`' threshold afresh when it is back.
    mutating func blacklist(_ ip: Int32, _ reason: BlacklistReason, period: Int64) {
        let until = HotPoolCore.deadline(from: now, after: period)
        hostStore[ip: ip].recoverySlot = nil
        hostStore[ip: ip].recentBlockAnswers.removeAll()
        if hostStore[ip: ip].blacklistReason == .manual && reason != .manual {
            hostStore[ip: ip].blacklistedUntil = max(hostStore[ip: ip].blacklistedUntil, until)
        } else {
            hostStore[ip: ip].blacklistReason = reason
            hostStore[ip: ip].blacklistPeriod = period
            hostStore[ip: ip].blacklistedUntil = until
        }
        destroyIdleConnections(to: ip)
    }

    /// How long an IP or proxy stays out after a failed recovery that followed an exclusion of
    /// `period`: twice as long, at least `blacklistTimeout`, at most `maxBlacklistTime`.
    func periodAfterFailedRecovery(_ period: Int64) -> Int64 {
        max(cappedBlacklistPeriod(period, times: 2), min(configuration.blacklistTimeout, configuration.maxBlacklistTime))
    }

    /// `base` × `times`, at most `maxBlacklistTime` (and that on overflow).
    func cappedBlacklistPeriod(_ base: Int64, times: Int64) -> Int64 {
        let (product, overflow) = base.multipliedReportingOverflow(by: times)
        return overflow ? configuration.maxBlacklistTime : min(product, configuration.maxBlacklistTime)
    }

    /// Destroys the idle connections to an IP that is out of rotation, with the reason it is.
    private mutating func destroyIdleConnections(to ip: Int32) {
        guard let reason = hostStore[ip: ip].exclusion else { return }
        for slot in table.idleSlots(host: hostStore[ip: ip].host) where table.ipID[Int(slot)] == ip {
            destroy(slot, reason)
        }
    }

    /// A network or TLS failure on the IP: after `consecutiveFailuresToEject` in a row it is
    /// ejected (as Envoy's outlier detection does), for longer each time, unless that would put
    /// more than `maxEjectedShare` of the host's IPs out for failures.
    mutating func recordFailure(_ ip: Int32, via proxy: Int32) {
        hostStore[ip: ip].failures += 1
        if proxy != ProxyStore.direct { proxyStore.count(through: proxy, to: hostStore[ip: ip].address, failures: 1) }
        hostStore[ip: ip].consecutiveFailures += 1
        let record = hostStore[ip: ip]
        guard record.consecutiveFailures >= configuration.consecutiveFailuresToEject, record.blacklistReason == nil else { return }
        let members = hostStore[host: record.host].ipIDs
        guard members.contains(ip) else { return }  // a pinned IP outside the rotation
        guard mayEjectAnother(of: members) else { return }
        hostStore[ip: ip].ejections += 1
        hostStore[ip: ip].consecutiveFailures = 0
        decideBlacklisting(ip, .failures, period: cappedBlacklistPeriod(configuration.blacklistTimeout, times: Int64(hostStore[ip: ip].ejections)))
    }

    /// True while one more of a host's IPs (`members`, its rotation) may be out for failures
    /// within `maxEjectedShare`.
    func mayEjectAnother(of members: [Int32]) -> Bool {
        let ejected = members.count(where: { hostStore[ip: $0].blacklistReason == .failures })
        return Double(ejected + 1) <= configuration.maxEjectedShare * Double(members.count)
    }

    /// Blacklists an IP by this machine's own judgement (a 403, failures, block signals) and, when
    /// other reactors serve the pool, tells them.
    mutating func decideBlacklisting(_ ip: Int32, _ reason: BlacklistReason, period: Int64) {
        blacklist(ip, reason, period: period)
        if configuration.sharesDecisions {
            emit(.shareBlacklisting(hostStore[host: hostStore[ip: ip].host].key, address: hostStore[ip: ip].address, reason, period: period))
        }
    }

    /// Another reactor blacklisted the IP: it is blacklisted here too, as that reactor did it,
    /// if this machine has it in the host's rotation (an IP it does not know, has out already, or
    /// knows only from a pinned caller is left as it is), and, for failures, within
    /// `maxEjectedShare` here too (two reactors may eject different IPs at once). This machine's
    /// recovery pass probes it in its time too; whichever reactor brings it back first tells the
    /// others.
    mutating func adoptBlacklisting(_ address: String, of key: HostKey, _ reason: BlacklistReason, period: Int64) {
        guard !closed, let host = hostStore.hostID(for: key), let ip = hostStore.existingIPID(host: host, address: address),
              hostStore[ip: ip].blacklistReason == nil else { return }
        let members = hostStore[host: host].ipIDs
        guard members.contains(ip), reason != .failures || mayEjectAnother(of: members) else { return }
        blacklist(ip, reason, period: period)
    }

    /// Another reactor's recovery probe brought the IP back: so it is here, unless it is out by
    /// the caller's hand (`blacklist(ip:forHost:for:)` reaches every reactor itself).
    mutating func adoptRecovery(_ address: String, of key: HostKey) {
        guard !closed, let host = hostStore.hostID(for: key), let ip = hostStore.existingIPID(host: host, address: address),
              let reason = hostStore[ip: ip].blacklistReason, reason != .manual else { return }
        restore(ip)
        serveQueued(host)
        warm(host)
    }

    mutating func blacklistManually(_ address: String, forName name: String, period: Int64) {
        guard !closed else { return }
        hostStore.setManualBlacklist(HotPoolCore.deadline(from: now, after: period), address: address, forName: name)
        for host in hostStore.hostIDs(named: name) {
            blacklist(hostStore.ipID(host: host, address: address), .manual, period: period)
        }
    }

    mutating func unblacklist(_ address: String, forName name: String) {
        guard !closed else { return }
        hostStore.setManualBlacklist(nil, address: address, forName: name)
        for host in hostStore.hostIDs(named: name) {
            restore(hostStore.ipID(host: host, address: address))
            serveQueued(host)
            warm(host)
        }
    }

    mutating func allowOnly(_ allowed: Set<String>?, forName name: String) {
        guard !closed else { return }
        for ip in hostStore.setAllowList(allowed, forName: name) { destroyIdleConnections(to: ip) }
        for host in hostStore.hostIDs(named: name) {
            serveQueued(host)
            warm(host)
        }
    }

    /// The IP is back in rotation.
    private mutating func restore(_ ip: Int32) {
        if hostStore[ip: ip].blacklistReason == .manual {
            let host = hostStore[host: hostStore[ip: ip].host].key.name
            hostStore.setManualBlacklist(nil, address: hostStore[ip: ip].address, forName: host)
        }
        hostStore[ip: ip].blacklistReason = nil
        hostStore[ip: ip].recoverySlot = nil  // a probe under way no longer decides anything
        hostStore[ip: ip].blacklistedUntil = 0
        hostStore[ip: ip].blacklistPeriod = 0
        hostStore[ip: ip].consecutiveFailures = 0
    }

    // MARK: recovery

    /// The recovery pass: each blacklisted IP whose time is up is dialed (and, with a
    /// `healthCheckPath`, probed) within the limits; it returns to rotation only if that succeeds.
    /// IPs out of rotation (DNS dropped them, or only a pinned caller named them) or left out by
    /// the allow list are not probed (no rotation to return to; the cleanup forgets them).
    mutating func probeBlacklistedIPs() {
        for host in hostStore.hostIDs {
            for ip in hostStore[host: host].ipRecords {
                let record = hostStore[ip: ip]
                guard record.blacklistReason != nil, record.blacklistedUntil <= now, record.recoverySlot == nil,
                      !hostStore.ipsOutOfRotation.contains(ip), !record.disallowed,
                      table.liveCount(host: host) < configuration.maxConnectionsPerHost,
                      table.liveCount < configuration.maxConnections else { continue }
                let proxy = pickProxy(host: host, ip: ip, pinned: nil, avoiding: [])
                hostStore[ip: ip].recoverySlot = startDial(host: host, ip: ip, proxy: proxy, dialer: .recovery)
            }
        }
    }

    /// A recovery dial connected: probed with a request if there is a path, else recovered.
    mutating func recoveryDialed(_ slot: Int32) {
        configuration.probesWithRequest ? startProbe(slot) : recovered(slot)
    }

    /// The recovery probe passed: the IP is back, and its connection joins the pool.
    mutating func recovered(_ slot: Int32) {
        let ip = table.ipID[Int(slot)]
        restore(ip)
        if configuration.sharesDecisions {
            emit(.shareRecovery(hostStore[host: hostStore[ip: ip].host].key, address: hostStore[ip: ip].address))
        }
        takeBack(slot)
        serveQueued(hostStore[ip: ip].host)
        markForWarming(hostStore[ip: ip].host)
    }

    /// The recovery probe failed: the IP stays out twice as long (at least `blacklistTimeout`, at
    /// most `maxBlacklistTime`).
    mutating func recoveryFailed(_ ip: Int32) {
        hostStore[ip: ip].recoverySlot = nil
        let period = periodAfterFailedRecovery(hostStore[ip: ip].blacklistPeriod)
        hostStore[ip: ip].blacklistPeriod = period
        hostStore[ip: ip].blacklistedUntil = HotPoolCore.deadline(from: now, after: period)
    }

    // MARK: pre-warming

    /// `prewarm`: dials until `count` connections of the host are idle or warming (within the
    /// limits), and answers with the idle count once no dial of the host is under way.
    mutating func prewarm(_ id: WaiterID, _ request: AcquireRequest, count: Int) {
        guard !closed else { return emit(.fail(id, .poolClosed)) }
        let (host, needsResolve) = hostStore.host(for: request.key, nameIsAddress: request.nameIsAddress, now: now)
        answerWaiters[id] = host
        hostStore[host: host].prewarmWaiters.append((id, count))
        if needsResolve { return resolve(host) }
        warm(host)
    }

    /// Opens connections with no caller until the host has as many idle or warming as its
    /// `prewarm` callers ask or `minIdlePerHost` keeps, within every limit, while none of its
    /// callers waits and it has an IP in rotation; answers its `prewarm` callers when none is
    /// warming.
    mutating func warm(_ host: Int32) {
        guard !closed, hostStore[host: host].hasAddresses else { return }
        let wanted = hostStore[host: host].prewarmWaiters.reduce(configuration.minIdlePerHost) { max($0, $1.count) }
        var missing = wanted - table.idleCount(host: host) - hostStore[host: host].warming
        var ipMissing = false
        while missing > 0, waiters.queuedCount(host) == 0,
              table.liveCount(host: host) < configuration.maxConnectionsPerHost,
              table.liveCount < configuration.maxConnections,
              table.idleCount + warmingCount < configuration.maxIdleConnections {
            guard let ip = hostStore.pickIP(host) else {
                ipMissing = true
                break
            }
            startDial(host: host, ip: ip, proxy: pickProxy(host: host, ip: ip, pinned: nil, avoiding: []), dialer: .warming)
            hostStore[host: host].warming += 1
            warmingCount += 1
            missing -= 1
        }
        if hostStore[host: host].warming == 0 { answerPrewarms(host, noIP: ipMissing) }
    }

    /// Marks a host to be topped up to `minIdlePerHost` at the end of the event, if it is below.
    mutating func markForWarming(_ host: Int32) {
        guard configuration.minIdlePerHost > 0,
              table.idleCount(host: host) + hostStore[host: host].warming < configuration.minIdlePerHost else { return }
        hostsToWarm.insert(host)
    }

    /// The hosts marked since the last event are topped up to `minIdlePerHost`.
    mutating func warmMarkedHosts() {
        swap(&hostsToWarm, &hostsBeingWarmed)  // both keep their storage: no allocation per event
        for host in hostsBeingWarmed where hostStore[host: host].id == host { warm(host) }  // not reclaimed meanwhile
        hostsBeingWarmed.removeAll(keepingCapacity: true)
    }

    /// A dial ends (connected, failed or destroyed): a warming one is counted off.
    mutating func endDial(_ slot: Int32) {
        if table.dialer[Int(slot)] == .warming { endWarmDial(table.hostID[Int(slot)]) }
    }

    /// A dial with no caller ended; its host's `prewarm` callers are answered when it was the last.
    mutating func endWarmDial(_ host: Int32) {
        hostStore[host: host].warming -= 1
        warmingCount -= 1
        if hostStore[host: host].warming == 0 { answerPrewarms(host, noIP: false) }
    }

    private mutating func answerPrewarms(_ host: Int32, noIP: Bool) {
        let idle = table.idleCount(host: host)
        // (Callers the pool's close failed already are not answered again.)
        for (id, _) in hostStore[host: host].prewarmWaiters where answerWaiters.removeValue(forKey: id) != nil {
            emit(noIP && idle == 0 ? .fail(id, noIPError(host)) : .reportReady(id, idle: idle))
        }
        hostStore[host: host].prewarmWaiters = []
    }

    // MARK: reading

    /// One record per IP of the hosts named `name` (one per port).
    package func ipRecords(forName name: String) -> [(port: Int, record: IPRecord, inRotation: Bool, open: Int)] {
        var open: [Int32: Int] = [:]
        for slot in 0..<table.slotCount where table.state[slot] == .idle || table.state[slot] == .leased {
            open[table.ipID[slot], default: 0] += 1
        }
        return hostStore.ipIDs(named: name).map { host, ip in
            let record = hostStore[ip: ip]
            return (hostStore[host: host].key.port, record, hostStore[host: host].ipIDs.contains(ip) && record.exclusion == nil, open[ip] ?? 0)
        }
    }

    /// The blacklisted IPs of the hosts named `name` (the latest expiry of each), with the manual
    /// blacklistings for ports not yet used.
    package func blacklistedIPs(forName name: String) -> [(address: String, reason: BlacklistReason, until: Int64)] {
        var entries: [String: (reason: BlacklistReason, until: Int64)] = [:]
        for (address, until) in hostStore.manualBlacklist[name] ?? [:] { entries[address] = (.manual, until) }
        for (_, ip) in hostStore.ipIDs(named: name) {
            let record = hostStore[ip: ip]
            guard let reason = record.blacklistReason else { continue }
            if let known = entries[record.address], known.until >= record.blacklistedUntil { continue }
            entries[record.address] = (reason, record.blacklistedUntil)
        }
        return entries.map { ($0.key, $0.value.reason, $0.value.until) }.sorted { $0.address < $1.address }
    }
}
