import HotPoolCore

/// Getting, handing out, returning and destroying connections.
extension PoolStateMachine {
    // MARK: get

    mutating func acquire(_ id: WaiterID, _ request: AcquireRequest) {
        guard !closed else { return emit(.fail(id, .poolClosed)) }
        let (host, needsResolve) = hostStore.host(for: request.key, nameIsAddress: request.nameIsAddress, now: now)
        if needsResolve { resolve(host) }
        let pinned = request.pinnedIP.map { hostStore.ipID(host: host, address: $0) }
        let pinnedProxy = request.pinnedProxy.map { proxyStore.id(of: $0) }
        // Another IP when the host has one in rotation; else the avoided one will do.
        let avoided = request.avoidedIP.flatMap { hostStore.existingIPID(host: host, address: $0) }
            .flatMap { hostStore.hasIPInRotation(host, besides: $0) ? $0 : nil }
        // A pool hit: an idle connection, and no earlier caller of the host waiting. No waiter
        // record is made (the path every warm request takes).
        if waiters.queuedCount(host) == 0, let slot = takeConnection(host: host, ip: pinned, proxy: pinnedProxy, avoiding: avoided) {
            return handOut(slot, to: id)
        }
        let deadline = HotPoolCore.deadline(from: now, after: configuration.acquireTimeout)
        waiters.add(id, .init(host: host, pinnedIP: pinned, pinnedProxy: pinnedProxy, deadline: deadline, avoidedIP: avoided))
        if hostStore[host: host].hasAddresses && waiters.queuedCount(host) == 0 && serve(id) { return }
        // Behind earlier waiters of the host, if any: they are served first, in order.
        waiters.enqueue(id)
        armDeadlineTimer(at: deadline)
        serveQueued(host)
    }

    /// Gives the waiter an idle connection, starts a dial for it, or fails it. False if it must
    /// wait (at a cap, with no idle connection it may take the place of).
    mutating func serve(_ id: WaiterID) -> Bool {
        let waiter = waiters[id]!
        let host = waiter.host
        if let slot = takeConnection(host: host, ip: waiter.pinnedIP, proxy: waiter.pinnedProxy, avoiding: waiter.avoidedIP) {
            lease(slot, to: id)
            return true
        }
        // At a cap, the caller takes the place of an idle connection it cannot use rather than wait
        // next to it: one of its own host (to another IP or proxy than it pinned, or, unpinned,
        // through a proxy off its host's route: it would have taken any other above), or else the
        // least recently used one of any host.
        var victim: Int32?
        if table.liveCount(host: host) >= configuration.maxConnectionsPerHost {
            guard let own = table.longestIdle(host: host) else { return false }
            victim = own
        } else if table.liveCount >= configuration.maxConnections {
            guard let other = table.leastRecentlyUsedIdle(excludingHost: nil) else { return false }
            victim = other
        }
        if let pinned = waiter.pinnedIP, hostStore[ip: pinned].exclusion == .blacklisted {
            fail(id, .addressBlacklisted(host: hostStore[host: host].key.name, ip: hostStore[ip: pinned].address))
            return true
        }
        // The avoided IP is dialed only when every other one failed for this caller (or left the rotation).
        let avoiding = waiter.avoidedIP.map { waiter.failedIPs + [$0] } ?? waiter.failedIPs
        guard let ip = waiter.pinnedIP ?? hostStore.pickIP(host, avoiding: avoiding) else {
            fail(id, noIPError(host))
            return true
        }
        if let victim { destroy(victim, .evicted) }
        startDial(host: host, ip: ip, for: id)
        return true
    }

    /// Serves the queued waiters of `host` in order until one must wait. (A pinned waiter must
    /// wait only when an unpinned one would too: it takes the place of any idle connection.)
    mutating func serveQueued(_ host: Int32) {
        guard hostStore[host: host].hasAddresses else { return }
        while let id = waiters.first(of: host), serve(id) {}
    }

    /// After capacity changed: every host with waiters, the one waiting longest first.
    mutating func serveWaitingHosts() {
        var order = waiters.hostsWithWaiters.map { ($0, waiters.headSequence(of: $0)) }
        order.sort { $0.1 < $1.1 }
        for (host, _) in order { serveQueued(host) }
    }

    mutating func startDial(host: Int32, ip: Int32, for id: WaiterID) {
        let waiter = waiters[id]!
        let proxy = pickProxy(host: host, ip: ip, pinned: waiter.pinnedProxy, avoiding: waiter.failedProxies)
        // A whole connectTimeout for the dial, within what is left of the caller's acquire timeout.
        startDial(host: host, ip: ip, proxy: proxy, dialer: .caller(id), deadline: waiter.deadline)
        waiters.dequeue(id)
    }

    /// Allocates a slot and has it dialed (through `proxy`, unless `ProxyStore.direct`) for
    /// `dialer` (a caller, `.warming` or `.recovery`), bounded by `connectTimeout` (the whole
    /// dial: connect, tunnel, handshake) and `deadline`; returns the slot.
    @discardableResult
    mutating func startDial(host: Int32, ip: Int32, proxy: Int32, dialer: Dialer, deadline: Int64 = .max) -> Int32 {
        let handle = table.allocate(host: host, ip: ip, proxy: proxy, now: now)
        let s = Int(handle.slot)
        let deadline = min(HotPoolCore.deadline(from: now, after: configuration.connectTimeout), deadline)
        table.operation[s] = .dial
        table.operationDeadline[s] = deadline
        table.dialer[s] = dialer
        var through: Proxy?
        if proxy != ProxyStore.direct {
            proxyStore[proxy].dials += 1
            through = proxyStore[proxy].proxy
        }
        emit(.dial(handle, DialTarget(key: hostStore[host: host].key, address: hostStore[ip: ip].address, proxy: through)))
        armDeadlineTimer(at: deadline)
        return handle.slot
    }

    /// Hands a leased slot to a waiter under a new lease.
    mutating func lease(_ slot: Int32, to id: WaiterID) {
        waiters.finish(id)
        handOut(slot, to: id)
    }

    /// An idle connection of the host (to `ip` and through `proxy` only, if given, and not to
    /// `avoiding`), or else one of its HTTP/2 connections that takes another stream; nil if neither.
    private mutating func takeConnection(host: Int32, ip: Int32?, proxy: Int32?, avoiding: Int32?) -> Int32? {
        // Any idle connection of the host fits a caller pinned to nothing in a pool without
        // proxies: no test per connection (the path every pool hit takes).
        let anyFits = ip == nil && proxy == nil && avoiding == nil && proxyStore.isEmpty
        let idle = anyFits
            ? table.takeIdle(host: host, order: configuration.idleOrder)
            : table.takeIdle(host: host, order: configuration.idleOrder) { fits($0, ip: ip, proxy: proxy, avoiding: avoiding) }
        return idle ?? sharedConnection(host: host, ip: ip, proxy: proxy, avoiding: avoiding)
    }

    /// Starts a new lease of a leased slot for the caller `id` (of one of its streams, on an
    /// HTTP/2 connection).
    private mutating func handOut(_ slot: Int32, to id: WaiterID) {
        let s = Int(slot)
        table.lastUsed[s] = now
        armDeadlineTimer(at: HotPoolCore.deadline(from: now, after: configuration.leaseWarningAfter))
        markForWarming(table.hostID[s])
        let handle = table.beginLease(slot)
        if table.isMultiplexed(slot) {
            table.streams[s] += 1
            streamLeases[slot, default: [:]][handle.lease] = StreamLease(leasedAt: now)
            updateSharing(slot)
        } else {
            table.leasedAt[s] = now
        }
        emit(.lease(id, handle))
    }

    /// Why no IP of the host can be dialed.
    func noIPError(_ host: Int32) -> HotPoolError {
        let record = hostStore[host: host]
        return record.ipIDs.isEmpty
            ? .noAddresses(host: record.key.name, reason: "no addresses set") : .allAddressesBlacklisted(host: record.key.name)
    }

    mutating func fail(_ id: WaiterID, _ error: HotPoolError) {
        if let waiter = waiters.finish(id), waiter.ticket != nil, waiters.queuedCount(waiter.host) > 0 {
            shouldServeWaiters = true  // those it held up may go now
        }
        emit(.fail(id, error))
    }

    // MARK: dials

    mutating func dialed(_ handle: SlotHandle) {
        guard table.isCurrent(handle), table.state[Int(handle.slot)] == .dialing else { return }
        let slot = handle.slot, s = Int(slot)
        table.leaseDialed(slot)
        table.operation[s] = .none
        table.created[s] = now
        table.lastUsed[s] = now
        counters.connectionsOpened += 1
        let ip = table.ipID[s]
        if hostStore[ip: ip].awaitingFirstConnection {
            hostStore[ip: ip].awaitingFirstConnection = false
            counters.connectionsFromDNS += 1
        }
        let dialer = table.dialer[s]
        if table.proxyID[s] != ProxyStore.direct { proxyDialed(table.proxyID[s], slot: slot) }
        if dialer == .recovery {
            // A probe a newer blacklisting (or an unblacklist) overtook is an ordinary connection.
            return hostStore[ip: ip].recoverySlot == slot ? recoveryDialed(slot) : takeBack(slot)
        }
        // A warming dial is counted off once its connection is parked (a prewarm is answered
        // with the idle count then).
        defer { if dialer == .warming { endWarmDial(table.hostID[s]) } }
        // The caller it was dialed for, unless it gave up meanwhile.
        let waiter = dialer.caller.flatMap { waiters[$0] != nil ? $0 : nil }
        // A caller pinned to an IP that DNS dropped, or to a proxy off the host's list, still gets
        // its connection (closed on return).
        let pinned = waiter.flatMap { waiters[$0] }
        if let reason = pinned?.pinnedIP == ip ? nil : hostStore[ip: ip].exclusion ?? (pinned?.pinnedProxy != nil ? nil : exclusion(slot)) {
            // Its IP (or proxy) went out of rotation while it dialed: it goes, and its caller waits for another.
            destroy(slot, reason)
            if let waiter { requeue(waiter) }
            return
        }
        // An HTTP/2 connection's other streams go to the host's other waiters.
        if let waiter {
            lease(slot, to: waiter)
            offerStreams(slot)
        } else {
            takeBack(slot)  // closed if its proxy went out of the route while it dialed
        }
    }

    mutating func dialFailed(_ handle: SlotHandle, _ error: HotPoolError) {
        guard table.isCurrent(handle), table.state[Int(handle.slot)] == .dialing else { return }
        let s = Int(handle.slot)
        let ip = table.ipID[s]
        let caller = table.dialer[s].caller
        let probing = hostStore[ip: ip].recoverySlot == handle.slot
        // The IP's fault, or its proxy's (unreachable, refused, no tunnel), unless the failure is
        // on this side (no local address could be bound, a configuration that cannot work) or the
        // caller's own acquire time, shorter than connectTimeout, ran out.
        let someoneAtFault = !error.isLocal && !(error.isTimeout && now - table.created[s] < configuration.connectTimeout)
        let proxy = table.proxyID[s]
        let proxyAtFault = someoneAtFault && proxy != ProxyStore.direct && error.isProxyFault
        let ipAtFault = someoneAtFault && !proxyAtFault
        if proxy != ProxyStore.direct { proxyDialFailed(proxy, slot: handle.slot, atFault: proxyAtFault, opened: !error.isProxyFault && !error.isLocal) }
        endDial(handle.slot)
        table.free(handle.slot)
        counters.failedDials += 1
        emit(.closeSocket(handle, sendCloseNotify: false))
        shouldServeWaiters = true
        if probing {
            // A fault on this side says nothing of the IP: the next pass probes it again.
            guard ipAtFault else {
                hostStore[ip: ip].recoverySlot = nil
                return
            }
            return recoveryFailed(ip)
        }
        if ipAtFault { recordFailure(ip, via: proxy) }
        guard let id = caller, waiters[id] != nil else { return }
        // A caller with retries and acquire time left tries another IP (and profile), or another
        // proxy when the proxy failed, unless it pinned the one that failed.
        waiters.recordFailedDial(id, ip: ip, proxy: proxyAtFault ? proxy : nil)
        let waiter = waiters[id]!
        let pinnedFailed = proxyAtFault ? waiter.pinnedProxy != nil : waiter.pinnedIP != nil
        guard !pinnedFailed, now < waiter.deadline, waiter.failedDials <= configuration.maxRetries else {
            return fail(id, error)
        }
        requeue(id)
    }

    /// A caller whose dial ended without a connection waits again, in its place by arrival.
    mutating func requeue(_ id: WaiterID) {
        let waiter = waiters[id]!
        waiters.enqueue(id, inArrivalOrder: true)
        armDeadlineTimer(at: waiter.deadline)
        serveQueued(waiter.host)
    }

    // MARK: put and remove

    /// The slot a caller's handle names; a handle whose lease has ended is counted and refused.
    mutating func leasedSlot(_ handle: LeaseHandle) -> Int32? {
        guard isCurrent(handle) else {
            counters.staleHandleUses += 1
            return nil
        }
        return handle.slot
    }

    /// A lease ended (a put, a passed health check): the connection is destroyed if it must not
    /// be reused, else handed to a waiter or parked idle.
    mutating func takeBack(_ slot: Int32) {
        let s = Int(slot)
        if let reason = table.pendingClose[s] { return destroy(slot, reason) }
        if now - table.created[s] >= configuration.maxLifetime { return destroy(slot, .maxLifetime) }
        if let reason = exclusion(slot) { return destroy(slot, reason) }
        handOff(slot)
    }

    /// Gives a sound leased connection to the oldest waiter that can take it (an HTTP/2 one to as
    /// many as it takes streams), or parks it idle.
    mutating func handOff(_ slot: Int32) {
        let host = table.hostID[Int(slot)]
        if waiters.queuedCount(host) > 0, let id = waiterTaking(slot) {
            lease(slot, to: id)
            return offerStreams(slot)
        }
        guard table.idleCount < configuration.maxIdleConnections else { return destroy(slot, .excessIdle) }
        table.makeIdle(slot)
        // A waiter of another host at the global cap may take its place.
        if !waiters.hostsWithWaiters.isEmpty { shouldServeWaiters = true }
    }

    /// A check of the connection (validation, health check) failed: it is destroyed (an HTTP/2
    /// connection once its other callers' streams ended; the `lease` that checked it ends now),
    /// and a 403 (the IP refusing us) also blacklists its IP for the host.
    mutating func reject(_ slot: Int32, _ reason: CloseReason, status: Int?, lease: LeaseHandle? = nil) {
        let ip = table.ipID[Int(slot)]
        if let lease, table.isMultiplexed(slot) { retireStreamLease(lease, reason) } else { destroy(slot, reason) }
        if status == 403 { decideBlacklisting(ip, .forbidden, period: configuration.blacklistTimeout) }
    }

    // MARK: destruction

    /// True unless the connection is to be destroyed for a fault (a deferred lifetime end is not one).
    func isSound(_ slot: Int32) -> Bool {
        let pending = table.pendingClose[Int(slot)]
        return pending == nil || pending == .maxLifetime
    }

    /// Records why the connection must go when it comes back. A fault replaces a lifetime end;
    /// otherwise the first reason stays.
    mutating func markPendingClose(_ slot: Int32, _ reason: CloseReason) {
        let s = Int(slot)
        if table.pendingClose[s] == nil || (isSound(slot) && reason != .maxLifetime) { table.pendingClose[s] = reason }
    }

    /// The leased connection can carry no further request: its socket is closed now (with
    /// close_notify only after a clean close by the server) and it is destroyed when it comes back.
    /// An HTTP/2 connection takes no new streams, and its socket closes once no exchange is under
    /// way on it (the server still answers those), then when its last lease ends.
    mutating func retire(_ slot: Int32, _ reason: CloseReason) {
        let wasSound = isSound(slot)
        let notify = reason == .remoteClosed && wasSound
        markPendingClose(slot, reason)
        if table.isMultiplexed(slot) { updateSharing(slot) }
        if wasSound && table.exchanges[Int(slot)] == 0 { emit(.closeSocket(table.handle(slot), sendCloseNotify: notify)) }
    }

    /// Destroys a connection (or a dial) once: counts it under `reason` (a dial as a failed dial),
    /// counts an exchange under way as a failed request, frees the slot.
    mutating func destroy(_ slot: Int32, _ reason: CloseReason) {
        let s = Int(slot)
        let handle = table.handle(slot)
        let wasDial = table.state[s] == .dialing
        if table.operation[s] == .exchange { counters.failedRequests += 1 }
        if let leases = streamLeases.removeValue(forKey: slot) {
            counters.failedRequests += leases.values.count { $0.exchangeDeadline != nil }
        }
        if wasDial { counters.failedDials += 1 } else { counters.closedByReason[reason, default: 0] += 1 }
        let host = hostStore[host: table.hostID[s]].key.name, ip = hostStore[ip: table.ipID[s]].address
        let notify = !wasDial && isSound(slot)
        if wasDial { endDial(slot) }
        if hostStore[ip: table.ipID[s]].recoverySlot == slot { hostStore[ip: table.ipID[s]].recoverySlot = nil }
        let proxy = table.proxyID[s]
        if proxy != ProxyStore.direct && proxyStore[proxy].recoverySlot == slot { proxyStore[proxy].recoverySlot = nil }
        let hostID = table.hostID[s]
        table.free(slot)
        // Connections the server dropped are replaced at the next cleanup, not at once: a server
        // that closes every new connection is not re-dialed in a loop.
        if !reason.isServerInitiated { markForWarming(hostID) }
        emit(.destroy(Destruction(handle: handle, reason: wasDial ? nil : reason, host: host, ip: ip, sendCloseNotify: notify)))
        if !waiters.hostsWithWaiters.isEmpty { shouldServeWaiters = true }
    }

    // MARK: input nobody asked for

    mutating func unreadInput(_ handle: SlotHandle, _ reason: CloseReason) {
        guard table.isCurrent(handle) else { return }
        let slot = handle.slot
        switch (table.state[Int(slot)], table.operation[Int(slot)]) {
        case (.idle, _): destroy(slot, reason)
        case (.leased, .none): if isSound(slot) { retire(slot, reason) }
        // Bytes nobody asked for (a flood) end a health check under way with its connection: the
        // server's misconduct, not a failed check of its IP (a recovery probe's IP stays out).
        // A GOAWAY lets the check finish: its answer still counts.
        case (.leased, .probe) where reason == .unsolicitedData:
            let ip = table.ipID[Int(slot)]
            let recovering = hostStore[ip: ip].recoverySlot == slot
            destroy(slot, reason)
            if recovering { recoveryFailed(ip) }
        default: break
        }
    }

    // MARK: close

    /// Fails every waiter, destroys every connection (leased ones too) and dial, forgets hosts.
    mutating func close() {
        guard !closed else { return }
        closed = true
        for id in waiters.removeAll() { emit(.fail(id, .poolClosed)) }
        for id in answerWaiters.keys { emit(.fail(id, .poolClosed)) }
        answerWaiters.removeAll()
        for slot in 0..<Int32(table.slotCount) where table.state[Int(slot)] != .free {
            destroy(slot, .poolClosed)
        }
        hostStore.removeAll()
        deadlineTimerAt = .max
    }
}
