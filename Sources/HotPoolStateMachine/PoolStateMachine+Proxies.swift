import HotPoolCore

/// Upstream proxies: which proxy a dial goes through, which connections a caller may take, and
/// the proxies' ledger. A proxy's failure (unreachable, refused, no tunnel, a 407) is charged to
/// the proxy, never to the target IP; after `consecutiveFailuresToEject` in a row it is ejected
/// and recovered with the IPs' rules (backed-off periods, a recovery dial through it).
extension PoolStateMachine {
    // MARK: routes

    /// True if unpinned callers of the slot's host may take it: it goes through a proxy of the
    /// host's list that is in rotation, or directly when the list is empty.
    func isOnRoute(_ slot: Int32) -> Bool {
        let proxy = table.proxyID[Int(slot)]
        if proxyStore.isEmpty { return proxy == ProxyStore.direct }
        let list = proxyStore.list(forName: hostName(slot))
        guard !list.isEmpty else { return proxy == ProxyStore.direct }
        return list.contains(proxy) && (proxyStore[proxy].ejectedUntil == nil || !proxyStore.hasProxyInRotation(forName: hostName(slot)))
    }

    /// The oldest queued waiter of the slot's host that may take it.
    mutating func waiterTaking(_ slot: Int32) -> WaiterID? {
        let ip = table.ipID[Int(slot)], proxy = table.proxyID[Int(slot)], onRoute = isOnRoute(slot)
        return waiters.first(of: table.hostID[Int(slot)]) { $0.takes(ip: ip, proxy: proxy, onRoute: onRoute) }
    }

    /// True if a caller pinned to `ip` and `proxy` (each nil: not pinned), avoiding the IP
    /// `avoiding` (nil: none), may take the slot.
    func fits(_ slot: Int32, ip: Int32?, proxy: Int32?, avoiding: Int32?) -> Bool {
        if let ip, table.ipID[Int(slot)] != ip { return false }
        if let avoiding, table.ipID[Int(slot)] == avoiding { return false }
        if let proxy { return table.proxyID[Int(slot)] == proxy }
        return isOnRoute(slot)
    }

    /// Why the connection must not be kept (its IP, or its proxy, is out), nil if it may. A
    /// connection through a proxy no list ever named (a pinned one) is kept for the callers
    /// pinning it; one through a proxy the lists dropped goes.
    func exclusion(_ slot: Int32) -> CloseReason? {
        if let reason = hostStore[ip: table.ipID[Int(slot)]].exclusion { return reason }
        let proxy = table.proxyID[Int(slot)]
        if proxyStore.isEmpty { return nil }
        if proxy == ProxyStore.direct { return proxyStore.list(forName: hostName(slot)).isEmpty ? nil : .proxyRemoved }
        // With every proxy of its list ejected, dials go through one anyway (`nextInRotation`):
        // its connections are kept.
        if proxyStore[proxy].ejectedUntil != nil && proxyStore.hasProxyInRotation(forName: hostName(slot)) { return .proxyEjected }
        return proxyStore[proxy].wasListed && !proxyStore.list(forName: hostName(slot)).contains(proxy) ? .proxyRemoved : nil
    }

    /// The proxy a dial to `ip` of `host` goes through (`ProxyStore.direct` for none): the pinned
    /// one, else one of the host's list in rotation, the IP's own under `stickyPerIP`, avoiding
    /// those the caller's dials failed on.
    mutating func pickProxy(host: Int32, ip: Int32, pinned: Int32?, avoiding: [Int32]) -> Int32 {
        if let pinned { return pinned }
        if proxyStore.isEmpty { return ProxyStore.direct }
        let name = hostStore[host: host].key.name
        let sticky = configuration.proxySelection == .stickyPerIP
        let kept = hostStore[ip: ip].stickyProxy
        if sticky && kept != ProxyStore.direct && proxyStore.isInRotation(kept, forName: name) && !avoiding.contains(kept) {
            return kept
        }
        let chosen = proxyStore.nextInRotation(forName: name, avoiding: avoiding)
        if sticky && chosen != ProxyStore.direct && proxyStore.isInRotation(chosen, forName: name) {
            hostStore[ip: ip].stickyProxy = chosen
        }
        return chosen
    }

    /// `setProxies(_:forHost:)`: hosts named `name` dial through `proxies` (nil: the pool's list);
    /// their idle connections off the new route go now, leased ones when returned.
    mutating func setProxies(_ proxies: [Proxy]?, forName name: String) {
        guard !closed else { return }
        proxyStore.setList(proxies, forName: name)
        for host in hostStore.hostIDs(named: name) {
            for slot in table.idleSlots(host: host) {
                if let reason = exclusion(slot) { destroy(slot, reason) }
            }
            serveQueued(host)
            warm(host)
        }
    }

    // MARK: the ledger

    /// Counts round trips (and failures) on the slot's connection against its (proxy, IP) pair.
    mutating func countThroughProxy(_ slot: Int32, requests: Int = 0, failures: Int = 0) {
        let proxy = table.proxyID[Int(slot)]
        guard proxy != ProxyStore.direct else { return }
        proxyStore.count(through: proxy, to: ipAddress(slot), requests: requests, failures: failures)
    }

    /// A dial through `proxy` made its connection: the proxy's run of failures ends, and a recovery
    /// dial brings it back.
    mutating func proxyDialed(_ proxy: Int32, slot: Int32) {
        proxyStore[proxy].consecutiveFailures = 0
        if proxyStore[proxy].recoverySlot == slot { restoreProxy(proxy) }
    }

    /// A dial through `proxy` failed: by its fault (`atFault`), or after its tunnel `opened`
    /// (the target failed, which clears the proxy's run of failures). A recovery dial through it
    /// decides its return.
    mutating func proxyDialFailed(_ proxy: Int32, slot: Int32, atFault: Bool, opened: Bool) {
        let probing = proxyStore[proxy].recoverySlot == slot
        if atFault {
            proxyStore[proxy].failedDials += 1
            proxyStore[proxy].consecutiveFailures += 1
            return probing ? proxyRecoveryFailed(proxy) : ejectIfFailing(proxy)
        }
        if opened {
            proxyStore[proxy].consecutiveFailures = 0
            if probing { restoreProxy(proxy) }
        } else if probing {
            proxyStore[proxy].recoverySlot = nil  // a fault on this side: the next pass tries again
        }
    }

    /// Ejects the proxy after `consecutiveFailuresToEject` failures in a row, for longer each
    /// time, unless that would put more than `maxEjectedShare` of a list that names it out.
    private mutating func ejectIfFailing(_ proxy: Int32) {
        let record = proxyStore[proxy]
        guard record.consecutiveFailures >= configuration.consecutiveFailuresToEject, record.ejectedUntil == nil else { return }
        let lists = proxyStore.lists(naming: proxy)
        guard !lists.isEmpty, lists.allSatisfy({ list in
            Double(list.count { proxyStore[$0].ejectedUntil != nil } + 1) <= configuration.maxEjectedShare * Double(list.count)
        }) else { return }
        proxyStore[proxy].ejections += 1
        proxyStore[proxy].consecutiveFailures = 0
        let period = cappedBlacklistPeriod(configuration.blacklistTimeout, times: Int64(proxyStore[proxy].ejections))
        proxyStore[proxy].ejectionPeriod = period
        proxyStore[proxy].ejectedUntil = HotPoolCore.deadline(from: now, after: period)
        proxyStore[proxy].recoverySlot = nil
        for slot in 0..<Int32(table.slotCount) where table.state[Int(slot)] == .idle && table.proxyID[Int(slot)] == proxy {
            destroy(slot, .proxyEjected)
        }
    }

    /// The proxy is back in rotation; callers waiting for it are served.
    private mutating func restoreProxy(_ proxy: Int32) {
        proxyStore[proxy].ejectedUntil = nil
        proxyStore[proxy].ejectionPeriod = 0
        proxyStore[proxy].consecutiveFailures = 0
        proxyStore[proxy].recoverySlot = nil
        shouldServeWaiters = true
    }

    /// The recovery dial through the proxy failed by its fault: it stays out twice as long.
    private mutating func proxyRecoveryFailed(_ proxy: Int32) {
        let period = periodAfterFailedRecovery(proxyStore[proxy].ejectionPeriod)
        proxyStore[proxy].recoverySlot = nil
        proxyStore[proxy].ejectionPeriod = period
        proxyStore[proxy].ejectedUntil = HotPoolCore.deadline(from: now, after: period)
    }

    /// The recovery pass over ejected proxies: each whose time is up is dialed through, to an IP
    /// in rotation of a host whose list names it, within the limits; its tunnel opening brings it back.
    mutating func probeEjectedProxies() {
        for proxy in proxyStore.ids {
            guard table.liveCount < configuration.maxConnections else { return }
            guard let until = proxyStore[proxy].ejectedUntil, until <= now, proxyStore[proxy].recoverySlot == nil else { continue }
            for host in hostStore.hostIDs where table.liveCount(host: host) < configuration.maxConnectionsPerHost
                && proxyStore.list(forName: hostStore[host: host].key.name).contains(proxy) {
                guard let ip = hostStore.pickIP(host) else { continue }
                proxyStore[proxy].recoverySlot = startDial(host: host, ip: ip, proxy: proxy, dialer: .recovery)
                break
            }
        }
    }

    /// Frees the records of proxies no list names, no connection goes through and no caller refers to.
    mutating func freeUnusedProxies() {
        guard proxyStore.hasUnlisted else { return }
        var used = waiters.referencedProxies
        for slot in 0..<table.slotCount where table.state[slot] != .free { used.insert(table.proxyID[slot]) }
        proxyStore.reclaim { !used.contains($0) }
    }

    /// Every proxy record, with its open connections.
    package func proxyLedger() -> [(record: ProxyRecord, open: Int)] {
        var open: [Int32: Int] = [:]
        for slot in 0..<table.slotCount where table.state[slot] == .idle || table.state[slot] == .leased {
            open[table.proxyID[slot], default: 0] += 1
        }
        return proxyStore.ids.map { (proxyStore[$0], open[$0] ?? 0) }
    }
}
