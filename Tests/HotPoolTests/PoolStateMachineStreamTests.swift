import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolStateMachine

/// The machine's HTTP/2 rules, without sockets: stream leases, limits, and a connection that
/// must go taking no new streams and closing once quiet.
@Suite struct PoolStateMachineStreamTests {
    private func harness(_ configure: (inout PoolStateMachine.Configuration) -> Void = { _ in }) -> MachineHarness {
        var h = MachineHarness(configure)
        _ = h.send(.setAddresses(["192.0.2.1", "192.0.2.2"], host: "a.test"))
        return h
    }

    /// A get that dials an HTTP/2 connection taking `limit` streams: its lease, and the slot.
    private func connect(_ h: inout MachineHarness, limit: Int) -> LeaseHandle {
        let (id, actions) = h.acquire("a.test")
        guard case .dial(let slot, _)? = actions.first(where: \.isDial) else { fatalError("no dial: \(actions)") }
        let leased = h.send(.dialedMultiplexed(slot, streamLimit: limit))
        guard case .lease(id, let lease)? = leased.first else { fatalError("not leased: \(leased)") }
        return lease
    }

    private func leases(_ actions: [PoolStateMachine.Action]) -> [LeaseHandle] {
        actions.compactMap { if case .lease(_, let lease) = $0 { lease } else { nil } }
    }

    @Test func inputNobodyAskedForDuringAPingHealthCheckDestroysTheConnectionOnceWithNoFailureOfItsIP() {
        var h = harness {
            $0.healthCheckInterval = 1_000
            $0.pingsIdleHTTP2Connections = true
        }
        let lease = connect(&h, limit: 100)
        _ = h.send(.release(lease))
        h.now += 1_000
        let slot = SlotHandle(slot: lease.slot, generation: 0)
        #expect(h.send(.timerFired(.healthCheck)).contains(.ping(slot)))
        let ip = h.machine.table.ipID[Int(slot.slot)]
        #expect(h.send(.unreadInput(slot, .unsolicitedData)).destroyed == [.unsolicitedData])
        #expect(h.machine.hostStore[ip: ip].consecutiveFailures == 0)
        #expect(h.send(.exchangeEnded(slot, .failed)) == [], "the check's end, reported late, is ignored")
        #expect(h.stats.closedByReason.values.reduce(0, +) == 1 && h.stats.totalConnections == 0)
    }

    @Test func callersShareAConnectionUpToItsStreamLimitThenWaitForAStream() {
        var h = harness { $0.maxConnectionsPerHost = 1 }
        let first = connect(&h, limit: 3)
        let (_, second) = h.acquire("a.test")
        let (_, third) = h.acquire("a.test")
        #expect(leases(second).map(\.slot) == [first.slot] && leases(third).map(\.slot) == [first.slot])
        #expect(Set([first, leases(second)[0], leases(third)[0]]).count == 3, "a lease of its own each")
        let (fourth, waiting) = h.acquire("a.test")
        #expect(waiting.withoutTimers == [], "at the limit, with no connection to dial: it waits")
        #expect(h.stats.activeConnections == 1 && h.stats.totalConnections == 1)
        // A put frees a stream: the waiter gets it; a second put of the same handle is refused.
        let handedOver = h.send(.release(first))
        #expect(handedOver.count == 1 && leases(handedOver).first?.slot == first.slot)
        if case .lease(let id, _)? = handedOver.first { #expect(id == fourth) }
        #expect(h.send(.release(first)) == [] && h.stats.staleHandleUses == 1)
    }

    @Test func aLowerLimitFromTheServersSettingsStopsNewStreamsUntilBelowIt() {
        var h = harness { $0.maxConnectionsPerHost = 1 }
        let first = connect(&h, limit: 100)
        let second = leases(h.acquire("a.test").1)[0]
        #expect(h.send(.streamLimitChanged(SlotHandle(slot: first.slot, generation: 0), 1)) == [])
        let (_, waiting) = h.acquire("a.test")
        #expect(leases(waiting).isEmpty, "two streams open, the limit is 1")
        #expect(leases(h.send(.release(first))).isEmpty, "one stream still open: still at the limit")
        #expect(leases(h.send(.release(second))).count == 1, "below the limit: the waiter gets a stream")
    }

    @Test func theConfiguredMaximumCapsTheServersLimit() {
        var h = harness { $0.maxConnectionsPerHost = 1; $0.maxStreamsPerConnection = 2 }
        _ = connect(&h, limit: 100)
        #expect(leases(h.acquire("a.test").1).count == 1)
        #expect(leases(h.acquire("a.test").1).isEmpty, "2 streams at most")
    }

    @Test func aFailedExchangeStopsNewStreamsClosesOnceQuietAndDestroysWithTheLastLease() {
        var h = harness()
        let first = connect(&h, limit: 10)
        let second = leases(h.acquire("a.test").1)[0]
        let slot = SlotHandle(slot: first.slot, generation: 0)
        #expect(h.send(.requestExchange(.test, on: first, timeout: 1_000_000)).withoutTimers == [.startStreamExchange(.test, first)])
        #expect(h.send(.requestExchange(.test, on: second, timeout: 1_000_000)).withoutTimers == [.startStreamExchange(.test, second)])
        #expect(h.send(.requestExchange(.test, on: first, timeout: 1_000_000)) == [.refuseExchange(.test, .connectionBusy)], "one exchange per lease")
        // The first fails: the connection must go, but the second exchange is still under way.
        #expect(h.send(.streamExchangeEnded(first, .failed)) == [])
        let (_, other) = h.acquire("a.test")
        #expect(other.hasDial, "no new stream on it: a new connection is dialed")
        #expect(h.send(.streamExchangeEnded(second, .answered(status: 200, unusable: nil))) == [.closeSocket(slot, sendCloseNotify: false)],
                "closed once no exchange is under way")
        #expect(h.send(.requestExchange(.test, on: second, timeout: 1_000)) == [.refuseExchange(.test, .connectionClosed(host: "a.test", ip: "192.0.2.1"))])
        #expect(h.send(.release(first)).destroyed == [])
        #expect(h.send(.release(second)).destroyed == [.unhealthyOnReturn], "destroyed with its last lease, once")
        #expect(h.stats.failedRequests == 2 && h.stats.totalRequests == 3)
    }

    @Test func aPutWithItsExchangeUnderWayResetsThatStreamOnly() {
        var h = harness()
        let first = connect(&h, limit: 10)
        let second = leases(h.acquire("a.test").1)[0]
        _ = h.send(.requestExchange(.test, on: first, timeout: 1_000_000))
        #expect(h.send(.release(first)) == [.abortStreamExchange(first)])
        #expect(h.send(.streamExchangeEnded(first, .failed)) == [], "the abandoned exchange's end is ignored")
        #expect(h.stats.healthyConnections == 1 && h.stats.failedRequests == 1)
        #expect(h.send(.requestExchange(.test, on: second, timeout: 1_000)).withoutTimers == [.startStreamExchange(.test, second)])
    }

    @Test func aStreamExchangePastItsDeadlineIsAborted() {
        var h = harness()
        let lease = connect(&h, limit: 10)
        _ = h.send(.requestExchange(.test, on: lease, timeout: 1_000))
        h.now += 2_000
        #expect(h.send(.timerFired(.deadlines)).contains(.abortStreamExchange(lease)))
        h.now += 2_000
        #expect(!h.send(.timerFired(.deadlines)).contains(.abortStreamExchange(lease)), "aborted once")
    }

    @Test func aStreamNotProcessedIsNotCounted() {
        var h = harness()
        let lease = connect(&h, limit: 10)
        _ = h.send(.requestExchange(.test, on: lease, timeout: 1_000_000))
        _ = h.send(.streamExchangeEnded(lease, .notProcessed))
        #expect(h.stats.totalRequests == 0 && h.stats.failedRequests == 0 && h.stats.healthyConnections == 1)
    }

    @Test func closeDestroysAConnectionWithStreamsOnceAndCountsItsExchangesFailed() {
        var h = harness()
        let first = connect(&h, limit: 10)
        let second = leases(h.acquire("a.test").1)[0]
        _ = h.send(.requestExchange(.test, on: first, timeout: 1_000_000))
        _ = h.send(.requestExchange(.test, on: second, timeout: 1_000_000))
        #expect(h.send(.close).destroyed == [.poolClosed])
        #expect(h.stats.failedRequests == 2 && h.stats.totalConnections == 0)
        #expect(h.send(.release(first)) == [] && h.send(.release(second)) == [])
    }

    @Test func aRejectedValidationOnASharedConnectionLetsTheOtherStreamsFinish() {
        var h = harness()
        let first = connect(&h, limit: 10)
        let validating = leases(h.acquire("a.test").1)[0]
        let slot = SlotHandle(slot: first.slot, generation: 0)
        _ = h.send(.requestExchange(.test, on: first, timeout: 1_000_000))
        #expect(h.send(.rejectValidation(validating, status: 403)).destroyed == [], "another caller's exchange is under way")
        #expect(h.machine.hostStore[ip: h.machine.table.ipID[Int(slot.slot)]].blacklistedUntil > h.now, "the 403 blacklists the IP")
        #expect(h.send(.streamExchangeEnded(first, .answered(status: 200, unusable: nil))) == [.closeSocket(slot, sendCloseNotify: false)])
        #expect(h.send(.release(first)).destroyed == [.validationFailed])
        #expect(h.stats.closedByReason.values.reduce(0, +) == 1 && h.stats.failedRequests == 0)
    }

    @Test func oneBrokenConnectionIsOneFailureOfItsIP() {
        var h = harness()
        let held = [connect(&h, limit: 10)] + (0..<4).map { _ in leases(h.acquire("a.test").1)[0] }
        for lease in held { _ = h.send(.requestExchange(.test, on: lease, timeout: 1_000_000)) }
        for lease in held { _ = h.send(.streamExchangeEnded(lease, .failed)) }
        let ip = h.machine.table.ipID[Int(held[0].slot)]
        #expect(h.machine.hostStore[ip: ip].consecutiveFailures == 1)
        #expect(h.stats.failedRequests == 5)
    }
}
