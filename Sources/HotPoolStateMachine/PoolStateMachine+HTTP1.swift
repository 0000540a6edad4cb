import HotPoolCore

/// HTTP/1.1 connections, and every connection the pool holds itself for a check: one lease,
/// one exchange (a caller's request, or a probe) at a time. HTTP/2's counterparts are in
/// `PoolStateMachine+HTTP2.swift`; what both share (leases, destruction, counting) in the core.
extension PoolStateMachine {
    /// A caller returned its lease: the connection goes back to the pool (or is destroyed, if it
    /// must go). Returned with its exchange under way, the exchange is abandoned (counted failed
    /// when it ends) and the connection goes.
    @inline(__always) mutating func endLease(_ slot: Int32) {
        if table.operation[Int(slot)] == .exchange { markPendingClose(slot, .unhealthyOnReturn) }
        table.lastUsed[Int(slot)] = now
        takeBack(slot)
    }

    /// A caller's exchange or a probe on the connection ended.
    mutating func exchangeEnded(_ handle: SlotHandle, _ outcome: ExchangeOutcome) {
        guard table.isCurrent(handle) else { return }
        let slot = handle.slot, s = Int(slot)
        let kind = table.operation[s]
        guard kind == .exchange || kind == .probe else { return }
        table.operation[s] = .none
        let ip = table.ipID[s]
        let status: Int?
        let passed: Bool
        switch outcome {
        case .answered(let answered, let unusable):
            (status, passed) = (answered, (200..<400).contains(answered))
            if kind == .exchange { table.lastUsed[s] = now }  // a probe is not a use
            hostStore[ip: ip].consecutiveFailures = 0
            if let unusable { retire(slot, unusable) }
            recordAnswer(answered, from: ip)
        case .acknowledged(let unusable):
            (status, passed) = (nil, true)
            hostStore[ip: ip].consecutiveFailures = 0
            if let unusable { retire(slot, unusable) }
        case .notProcessed where kind == .exchange:
            return uncountRequest(slot)
        case .failed, .streamFailed, .notProcessed, .abandoned:
            (status, passed) = (nil, false)
            table.errorCount[s] &+= 1
            if kind == .exchange { counters.failedRequests += 1 }
            retire(slot, .unhealthyOnReturn)
            if case .abandoned = outcome {} else { recordFailure(ip, via: table.proxyID[s]) }
        }
        guard kind == .probe else { return }
        table.lastChecked[s] = now
        if hostStore[ip: ip].recoverySlot == slot {
            if passed {
                recovered(slot)
            } else {
                destroy(slot, .healthCheckFailed)
                recoveryFailed(ip)
            }
        } else if passed {
            takeBack(slot)
        } else {
            reject(slot, .healthCheckFailed, status: status)
        }
    }
}
