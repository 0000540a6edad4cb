import HotPoolCore

/// Requests on leased connections, health-check probes, and reading the state.
extension PoolStateMachine {
    mutating func requestExchange(_ id: ExchangeID, on handle: LeaseHandle, timeout: Int64, retrying: PriorAttempt?) {
        guard !closed else { return emit(.refuseExchange(id, .poolClosed)) }
        guard let slot = leasedSlot(handle) else { return emit(.refuseExchange(id, .staleConnection)) }
        let s = Int(slot)
        let multiplexed = table.isMultiplexed(slot)
        let busy = multiplexed ? streamLeases[slot]?[handle.lease]?.exchangeDeadline != nil : table.operation[s] != .none
        guard !busy else { return emit(.refuseExchange(id, .connectionBusy)) }
        // A retry is the same request again: counted as a retry, and the request is failed
        // only if its last attempt fails. The connection and IP count every attempt.
        switch retrying {
        case nil: counters.totalRequests += 1
        case .answered?: counters.retries += 1
        case .failed?:
            counters.retries += 1
            counters.failedRequests -= 1
        }
        table.requestCount[s] &+= 1
        hostStore[ip: table.ipID[s]].requests += 1
        countThroughProxy(slot, requests: 1)
        guard isSound(slot) else {
            // Closed by an earlier failure or by the server: a request that fails at once.
            table.errorCount[s] &+= 1
            counters.failedRequests += 1
            hostStore[ip: table.ipID[s]].failures += 1
            countThroughProxy(slot, failures: 1)
            return emit(.refuseExchange(id, .connectionClosed(host: hostName(slot), ip: ipAddress(slot))))
        }
        let deadline = HotPoolCore.deadline(from: now, after: timeout)
        armDeadlineTimer(at: deadline)
        if multiplexed {
            streamLeases[slot]![handle.lease]!.exchangeDeadline = deadline
            table.exchanges[s] += 1
            return emit(.startStreamExchange(id, handle))
        }
        table.operation[s] = .exchange
        table.operationDeadline[s] = deadline
        emit(.startExchange(id, table.handle(slot)))
    }

    /// A caller's exchange has its response head: its deadline moves to `bodyTimeout` from now
    /// (unless it passed already, and the driver is ending the exchange).
    mutating func responseHeadArrived(_ handle: SlotHandle, stream: LeaseHandle?, bodyTimeout: Int64) {
        guard table.isCurrent(handle) else { return }
        let s = Int(handle.slot)
        let deadline = HotPoolCore.deadline(from: now, after: bodyTimeout)
        if let stream {
            guard isCurrent(stream), let current = streamLeases[handle.slot]?[stream.lease]?.exchangeDeadline, current != .max else { return }
            streamLeases[handle.slot]![stream.lease]!.exchangeDeadline = deadline
        } else {
            guard table.operation[s] == .exchange, table.operationDeadline[s] != .max else { return }
            table.operationDeadline[s] = deadline
        }
        armDeadlineTimer(at: deadline)
    }

    /// A request counted when it was decided was not processed (the server refused its stream,
    /// or it was never sent): it counts where it runs again, if anywhere. Never a retry: the
    /// driver runs an unprocessed request again only for an `execute`'s first attempt.
    mutating func uncountRequest(_ slot: Int32) {
        counters.totalRequests -= 1
        table.requestCount[Int(slot)] &-= 1
        hostStore[ip: table.ipID[Int(slot)]].requests -= 1
        countThroughProxy(slot, requests: -1)
    }

    /// Starts a probe on every idle connection unused and unchecked for `interval`. The connection
    /// leaves the idle list meanwhile, so no caller can lease it.
    mutating func probeIdleConnections(interval: Int64) {
        for slot in 0..<Int32(table.slotCount) where table.state[Int(slot)] == .idle {
            let s = Int(slot)
            let ping = configuration.pingsIdleHTTP2Connections && table.isMultiplexed(slot)
            guard ping || configuration.probesWithRequest, now - max(table.lastUsed[s], table.lastChecked[s]) >= interval else { continue }
            table.take(idle: slot)
            startProbe(slot, ping: ping)
        }
    }

    /// Sends the probe request (or, for an HTTP/2 health check, a PING) on a slot the pool holds
    /// itself (a health check, a recovery probe), bounded by `validationTimeout`; answered with
    /// `exchangeEnded`.
    mutating func startProbe(_ slot: Int32, ping: Bool = false) {
        let s = Int(slot)
        table.leasedAt[s] = 0  // the pool's own lease, never reported as a leak
        table.operation[s] = .probe
        table.operationDeadline[s] = HotPoolCore.deadline(from: now, after: configuration.validationTimeout)
        armDeadlineTimer(at: table.operationDeadline[s])
        emit(ping ? .ping(table.handle(slot)) : .probe(table.handle(slot)))
    }

    // MARK: reading the state

    package func hostName(_ slot: Int32) -> String { hostStore[host: table.hostID[Int(slot)]].key.name }
    package func ipAddress(_ slot: Int32) -> String { hostStore[ip: table.ipID[Int(slot)]].address }
    package func host(of slot: Int32) -> HostRecord { hostStore[host: table.hostID[Int(slot)]] }

    package func snapshot() -> PoolStats {
        var healthy = 0
        for slot in 0..<Int32(table.slotCount) where table.state[Int(slot)] == .idle || table.state[Int(slot)] == .leased {
            if isSound(slot) { healthy += 1 }
        }
        var byReason = counters.closedByReason
        for reason in CloseReason.allCases where byReason[reason] == nil { byReason[reason] = 0 }
        let requests = counters.totalRequests, failed = counters.failedRequests
        return PoolStats(
            totalConnections: table.connectionCount,
            activeConnections: table.leasedCount,
            idleConnections: table.idleCount,
            healthyConnections: healthy,
            totalRequests: requests,
            failedRequests: failed,
            successRate: requests == 0 ? 1 : Double(requests - failed) / Double(requests),
            newConnectionsFromDNS: counters.connectionsFromDNS,
            closedByReason: byReason,
            dialingConnections: table.dialingCount,
            failedDials: counters.failedDials,
            waitingCallers: waiters.count,
            staleHandleUses: counters.staleHandleUses,
            connectionsOpened: counters.connectionsOpened,
            retries: counters.retries)
    }

    /// One open connection as the machine sees it.
    package struct ConnectionRecord {
        package let slot: Int32
        package let host: String
        package let ip: String
        package let requestCount: Int
        package let errorCount: Int
        package let isHealthy: Bool
        package let created: Int64
        package let lastUsed: Int64
        package let isLeased: Bool
    }

    package func connectionRecords() -> [ConnectionRecord] {
        (0..<Int32(table.slotCount)).compactMap { slot in
            let s = Int(slot)
            guard table.state[s] == .idle || table.state[s] == .leased else { return nil }
            return ConnectionRecord(
                slot: slot, host: hostName(slot), ip: ipAddress(slot), requestCount: Int(table.requestCount[s]),
                errorCount: Int(table.errorCount[s]), isHealthy: isSound(slot), created: table.created[s],
                lastUsed: table.lastUsed[s], isLeased: table.state[s] == .leased)
        }
    }
}
