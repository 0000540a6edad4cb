import Foundation
import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolStateMachine

/// The pool's decisions without sockets: events in, actions out, a clock the test moves.
extension ExchangeID {
    /// The request the tests' `requestExchange` events ask about (each is decided before the next).
    static let test = ExchangeID(raw: 1)
}

struct MachineHarness: ~Copyable {
    var machine: PoolStateMachine
    var now: Int64 = 1_000_000_000
    private var nextWaiter: UInt64 = 0

    init(_ configure: (inout PoolStateMachine.Configuration) -> Void = { _ in }) {
        var configuration = PoolStateMachine.Configuration(HotPoolConfiguration())  // the pool's defaults
        configure(&configuration)
        machine = PoolStateMachine(configuration: configuration)
        _ = send(.start)
    }

    mutating func send(_ event: PoolStateMachine.Event) -> [PoolStateMachine.Action] {
        var actions: [PoolStateMachine.Action] = []
        machine.handle(event, now: now, into: &actions)
        return actions
    }

    mutating func newWaiter() -> WaiterID {
        nextWaiter += 1
        return WaiterID(raw: nextWaiter)
    }

    static func request(_ host: String, pinned: String? = nil) -> PoolStateMachine.AcquireRequest {
        .init(key: HostKey(name: host, port: 443), pinnedIP: pinned, nameIsAddress: false)
    }

    /// A get for `host`; returns the waiter and the actions.
    mutating func acquire(_ host: String, pinned: String? = nil) -> (WaiterID, [PoolStateMachine.Action]) {
        let id = newWaiter()
        return (id, send(.acquire(id, Self.request(host, pinned: pinned))))
    }

    /// A get that dials and completes: returns the lease.
    mutating func connect(_ host: String) -> LeaseHandle {
        let (id, actions) = acquire(host)
        guard case .dial(let slot, _)? = actions.first(where: \.isDial) else { fatalError("no dial: \(actions)") }
        let leased = send(.dialed(slot))
        guard leased == [.lease(id, leased.leaseHandle!)] else { fatalError("not leased: \(leased)") }
        return leased.leaseHandle!
    }

    var stats: PoolStats { machine.snapshot() }
}

extension PoolStateMachine.Action {
    var isDial: Bool { if case .dial = self { true } else { false } }
}

extension [PoolStateMachine.Action] {
    var hasDial: Bool { contains(where: \.isDial) }

    /// The actions other than timer arming.
    var withoutTimers: [PoolStateMachine.Action] {
        filter { if case .armTimer = $0 { false } else { true } }
    }

    var leaseHandle: LeaseHandle? {
        for action in self { if case .lease(_, let handle) = action { return handle } }
        return nil
    }

    var destroyed: [CloseReason?] {
        compactMap { if case .destroy(let d) = $0 { d.reason } else { nil } }
    }
}

@Suite struct PoolStateMachineTests {
    static let ips = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]

    private func harness(_ configure: (inout PoolStateMachine.Configuration) -> Void = { _ in }) -> MachineHarness {
        var h = MachineHarness(configure)
        _ = h.send(.setAddresses(Self.ips, host: "a.test"))
        _ = h.send(.setAddresses(["198.51.100.1"], host: "b.test"))
        return h
    }

    @Test func aGetDialsThenLeasesAndAPutParksItIdle() {
        var h = harness()
        let (id, actions) = h.acquire("a.test")
        guard case .dial(let slot, let target) = actions.first(where: \.isDial) else { Issue.record("\(actions)"); return }
        #expect(target == .init(key: HostKey(name: "a.test", port: 443), address: Self.ips[0], proxy: nil))
        let leased = h.send(.dialed(slot))
        #expect(leased == [.lease(id, leased.leaseHandle!)])
        #expect(h.send(.release(leased.leaseHandle!)) == [])
        #expect(h.stats.idleConnections == 1 && h.stats.connectionsOpened == 1)
    }

    @Test func aPutHandedStraightToAWaiterStartsANewLeaseAndTheOldHandleIsRejected() {
        var h = harness { $0.maxConnectionsPerHost = 1 }
        let first = h.connect("a.test")
        let (second, waiting) = h.acquire("a.test")
        #expect(waiting == [], "the second caller waits at the host's cap")
        let handedOver = h.send(.release(first))
        let lease = handedOver.leaseHandle!
        #expect(handedOver == [.lease(second, lease)] && lease.slot == first.slot && lease != first)
        // The first caller's handle is stale: put, remove and round trip are refused and counted.
        #expect(h.send(.release(first)) == [])
        #expect(h.send(.remove(first)) == [])
        #expect(h.send(.requestExchange(.test, on: first, timeout: 1_000)) == [.refuseExchange(.test, .staleConnection)])
        #expect(h.stats.staleHandleUses == 3 && h.stats.activeConnections == 1 && h.stats.closedByReason.values.reduce(0, +) == 0)
        #expect(h.send(.requestExchange(.test, on: lease, timeout: 1_000)).withoutTimers == [.startExchange(.test, SlotHandle(slot: lease.slot, generation: 0))])
    }

    @Test func idleOrderIsLIFOByDefaultAndFIFOOnRequest() {
        for order in [IdleOrder.lifo, .fifo] {
            var h = harness { $0.idleOrder = order }
            let leases = (0..<3).map { _ in h.connect("a.test") }
            for lease in leases { _ = h.send(.release(lease)) }
            let (_, actions) = h.acquire("a.test")
            let expected = order == .lifo ? leases.last!.slot : leases.first!.slot
            #expect(actions.leaseHandle?.slot == expected, "\(order)")
        }
    }

    @Test func atTheGlobalCapTheLeastRecentlyUsedIdleConnectionOfAnotherHostIsEvicted() {
        var h = harness { $0.maxConnections = 2 }
        let a1 = h.connect("a.test"), a2 = h.connect("a.test")
        _ = h.send(.release(a1))
        h.now += 1
        _ = h.send(.release(a2))
        let (_, actions) = h.acquire("b.test")
        #expect(actions.destroyed == [.evicted])
        guard case .destroy(let victim) = actions.first else { Issue.record("\(actions)"); return }
        #expect(victim.handle.slot == a1.slot, "the least recently used one")
        #expect(actions.hasDial)
        #expect(h.stats.closedByReason[.evicted] == 1)
        // Without an idle connection of another host, the caller waits.
        var full = harness { $0.maxConnections = 1 }
        _ = full.connect("a.test")
        #expect(full.acquire("b.test").1 == [])
    }

    @Test func aCallerThatWaitedStillGetsAWholeDialTimeWithinItsAcquireTimeout() {
        var h = harness {
            $0.maxConnectionsPerHost = 1
            $0.connectTimeout = 30_000_000_000
            $0.acquireTimeout = 60_000_000_000
        }
        let held = h.connect("a.test")
        let start = h.now
        let (waiter, _) = h.acquire("a.test")
        h.now = start + 25_000_000_000
        let actions = h.send(.remove(held))
        let dial = actions.compactMap { if case .dial(let s, _) = $0 { s } else { nil } }.first!
        #expect(h.machine.table.operationDeadline[Int(dial.slot)] == start + 55_000_000_000, "25 s waited, then 30 s to dial")
        // Near the acquire deadline, a retry's dial gets only what is left of it.
        h.now = start + 50_000_000_000
        let retry = h.send(.dialFailed(dial, .connectFailed(host: "a.test", ip: Self.ips[0], reason: "refused")))
        let second = retry.compactMap { if case .dial(let s, _) = $0 { s } else { nil } }.first!
        #expect(h.machine.table.operationDeadline[Int(second.slot)] == start + 60_000_000_000)
        #expect(h.machine.table.dialer[Int(second.slot)] == .caller(waiter))
    }

    @Test func waitersAreServedInOrderAndACancelTakesOneOutAtOnce() {
        var h = harness { $0.maxConnectionsPerHost = 1 }
        var lease = h.connect("a.test")
        let waiters = (0..<4).map { _ in h.acquire("a.test").0 }
        #expect(h.stats.waitingCallers == 4)
        #expect(h.send(.cancel(waiters[1])) == [.fail(waiters[1], .cancelled)])
        #expect(h.stats.waitingCallers == 3)
        var served: [WaiterID] = []
        for _ in 0..<3 {
            let actions = h.send(.release(lease))
            guard case .lease(let id, let next)? = actions.first else { Issue.record("\(actions)"); return }
            served.append(id)
            lease = next
        }
        #expect(served == [waiters[0], waiters[2], waiters[3]])
        #expect(h.send(.cancel(waiters[0])) == [], "a cancel after the lease does nothing")
    }

    @Test func anExchangePastItsDeadlineIsAbortedAndTheConnectionDestroyedOnReturn() {
        var h = harness()
        let lease = h.connect("a.test")
        let slot = SlotHandle(slot: lease.slot, generation: 0)
        #expect(h.send(.requestExchange(.test, on: lease, timeout: 1_000_000)) == [.armTimer(.deadlines, at: h.now + 1_000_000), .startExchange(.test, slot)])
        #expect(h.send(.requestExchange(.test, on: lease, timeout: 1_000_000)) == [.refuseExchange(.test, .connectionBusy)])
        h.now += 1_000_000
        #expect(h.send(.timerFired(.deadlines)).contains(.abort(slot)))
        #expect(h.send(.exchangeEnded(slot, .failed)) == [.closeSocket(slot, sendCloseNotify: false)])
        #expect(h.stats.failedRequests == 1 && h.stats.healthyConnections == 0)
        #expect(h.send(.requestExchange(.test, on: lease, timeout: 1_000_000)) == [.refuseExchange(.test, .connectionClosed(host: "a.test", ip: Self.ips[0]))])
        #expect(h.send(.release(lease)).destroyed == [.unhealthyOnReturn])
    }

    @Test func aPutDuringAnExchangeAbandonsItAndCountsTheRequestFailed() {
        var h = harness()
        let lease = h.connect("a.test")
        _ = h.send(.requestExchange(.test, on: lease, timeout: 1_000_000))
        #expect(h.send(.release(lease)).destroyed == [.unhealthyOnReturn])
        #expect(h.stats.failedRequests == 1 && h.stats.totalRequests == 1)
    }

    @Test func aHealthCheckTakesTheConnectionOutOfTheIdleListAndA403BlacklistsItsIP() {
        var h = harness {
            $0.healthCheckInterval = 1_000
            $0.probesWithRequest = true  // a healthCheckPath is set
        }
        let lease = h.connect("a.test")
        _ = h.send(.release(lease))
        h.now += 1_000
        let actions = h.send(.timerFired(.healthCheck))
        let slot = SlotHandle(slot: lease.slot, generation: 0)
        #expect(actions.contains(.probe(slot)))
        #expect(h.stats.idleConnections == 0)
        #expect(h.acquire("a.test").1.hasDial, "the probed connection is not handed out")
        #expect(h.send(.exchangeEnded(slot, .answered(status: 403, unusable: nil))).destroyed == [.healthCheckFailed])
        #expect(h.machine.hostStore[ip: h.machine.table.ipID[Int(slot.slot)]].blacklistedUntil > h.now)
    }

    @Test func closeFailsWaitersAndDestroysEveryConnectionOnce() {
        var h = harness { $0.maxConnectionsPerHost = 2 }
        let leased = h.connect("a.test")
        _ = h.send(.release(h.connect("a.test")))
        #expect(h.acquire("a.test").1.leaseHandle != nil, "the idle one is taken")
        let (dialing, _) = h.acquire("b.test")
        let (waiting, queued) = h.acquire("a.test")
        #expect(queued == [])
        _ = h.send(.requestExchange(.test, on: leased, timeout: 1_000_000))
        let actions = h.send(.close)
        #expect(actions.contains(.fail(dialing, .poolClosed)) && actions.contains(.fail(waiting, .poolClosed)))
        #expect(actions.destroyed.filter { $0 == .poolClosed }.count == 2 && actions.destroyed.filter { $0 == nil }.count == 1)
        let stats = h.stats
        #expect(stats.closedByReason[.poolClosed] == 2 && stats.totalConnections == 0 && stats.failedDials == 1)
        #expect(stats.failedRequests == 1, "the exchange under way failed")
        #expect(h.send(.close) == [] && h.send(.release(leased)) == [])
        #expect(h.acquire("a.test").1 == [.fail(WaiterID(raw: 6), .poolClosed)])
    }

    @Test func aPinnedCallerTakesThePlaceOfAnIdleConnectionToAnotherIPAndOneThatWaitsHoldsUpNoHandOver() {
        // At the host's cap, one connection leased (ips[0]) and one idle (ips[1]): a caller pinned
        // to ips[2] takes the idle one's place.
        var evicting = harness { $0.maxConnectionsPerHost = 2 }
        _ = evicting.connect("a.test")
        _ = evicting.send(.release(evicting.connect("a.test")))
        let actions = evicting.acquire("a.test", pinned: Self.ips[2]).1
        #expect(actions.destroyed == [.evicted] && actions.hasDial, "the pinned caller evicts its host's idle connection to another IP")
        // A caller pinned to an IP, at the cap with nothing idle to evict, waits; an unpinned
        // caller behind it gets the connection a put returns to another IP.
        var blocked = harness { $0.maxConnectionsPerHost = 2 }
        _ = blocked.connect("a.test")
        let idle = blocked.connect("a.test")
        let (first, waits) = blocked.acquire("a.test", pinned: Self.ips[2])
        #expect(waits == [])
        let (second, _) = blocked.acquire("a.test")
        #expect(blocked.stats.waitingCallers == 2)
        let handed = blocked.send(.release(idle))
        #expect(handed == [.lease(second, handed.leaseHandle!)], "the unpinned caller, not the pinned one ahead of it")
        #expect(blocked.send(.cancel(first)) == [.fail(first, .cancelled)])
    }

    @Test func aDialTimeoutWithAcquireTimeLeftTriesAnotherIP() {
        var h = harness {
            $0.connectTimeout = 10_000
            $0.acquireTimeout = 100_000
        }
        let (id, actions) = h.acquire("a.test")
        guard case .dial(let slot, let target)? = actions.first(where: \.isDial) else { Issue.record("\(actions)"); return }
        h.now += 10_000
        #expect(h.send(.timerFired(.deadlines)).contains(.abort(slot)))
        let retry = h.send(.dialFailed(slot, .timeout(host: "a.test", ip: target.address, phase: .connect)))
        guard case .dial(_, let next)? = retry.first(where: \.isDial) else { Issue.record("no retry: \(retry)"); return }
        #expect(next.address != target.address)
        #expect(!retry.contains(.fail(id, .timeout(host: "a.test", ip: target.address, phase: .connect))))
    }

    /// The machine and its table stay pure: no C, no system calls, no clock.
    @Test func ejectionsLastLongerEachTimeAndFailedRecoveryProbesBackOffWithinTheCap() {
        var h = harness {
            $0.consecutiveFailuresToEject = 2
            $0.blacklistTimeout = 100
            $0.maxBlacklistTime = 250
            $0.probesWithRequest = false
        }
        let ip = Self.ips[0]
        /// Failed dials pinned to `ip` until it is ejected; returns how long it is out.
        func eject() -> Int64? {
            var failures = 0
            for _ in 0..<4 where failures < 2 {
                let actions = h.acquire("a.test", pinned: ip).1
                if let lease = actions.leaseHandle { _ = h.send(.remove(lease)) }  // an idle one, taken out
                guard case .dial(let slot, _)? = actions.first(where: \.isDial) else { continue }
                _ = h.send(.dialFailed(slot, .connectFailed(host: "a.test", ip: ip, reason: "refused")))
                failures += 1
            }
            return h.machine.blacklistedIPs(forName: "a.test").first.map { $0.until - h.now }
        }
        /// Lets the blacklisting run out and fires the recovery pass: the dial it starts, if any.
        func recoveryDial() -> SlotHandle? {
            h.now = h.machine.blacklistedIPs(forName: "a.test").first!.until
            guard case .dial(let slot, let target)? = h.send(.timerFired(.recovery)).first(where: \.isDial) else { return nil }
            #expect(target.address == ip)
            return slot
        }
        #expect(eject() == 100, "the first ejection lasts blacklistTimeout")
        #expect(h.machine.blacklistedIPs(forName: "a.test").map(\.reason) == [.failures])
        let local = recoveryDial()!
        _ = h.send(.dialFailed(local, .localAddressUnavailable(host: "a.test", ip: ip)))
        #expect(h.machine.blacklistedIPs(forName: "a.test").first?.until == h.now, "a fault on this side neither doubles it nor stops the next probe")
        let failed = recoveryDial()!
        _ = h.send(.dialFailed(failed, .connectFailed(host: "a.test", ip: ip, reason: "refused")))
        #expect(h.machine.blacklistedIPs(forName: "a.test").first.map { $0.until - h.now } == 200, "a failed probe doubles it")
        _ = h.send(.dialed(recoveryDial()!))
        #expect(h.machine.blacklistedIPs(forName: "a.test").isEmpty, "a passed probe brings it back")
        #expect(h.stats.idleConnections == 1, "and its connection joins the pool")
        #expect(eject() == 200, "the second ejection lasts twice as long")
        _ = h.send(.dialed(recoveryDial()!))
        #expect(eject() == 250, "the third is capped at maxBlacklistTime")
        // Another IP of the three may not go for failures while this one is out (at most half).
        for _ in 0..<3 {
            guard case .dial(let slot, _)? = h.acquire("a.test", pinned: Self.ips[1]).1.first(where: \.isDial) else { break }
            _ = h.send(.dialFailed(slot, .connectFailed(host: "a.test", ip: Self.ips[1], reason: "refused")))
        }
        #expect(h.machine.blacklistedIPs(forName: "a.test").map(\.address) == [ip])
    }

    @Test func aRecoveryProbeOvertakenByANewerBlacklistingDecidesNothing() {
        var h = harness {
            $0.consecutiveFailuresToEject = 1
            $0.blacklistTimeout = 100
            $0.probesWithRequest = false
        }
        let ip = Self.ips[0]
        guard case .dial(let slot, _)? = h.acquire("a.test", pinned: ip).1.first(where: \.isDial) else { Issue.record("no dial"); return }
        _ = h.send(.dialFailed(slot, .connectFailed(host: "a.test", ip: ip, reason: "refused")))
        h.now += 100
        guard case .dial(let probe, _)? = h.send(.timerFired(.recovery)).first(where: \.isDial) else { Issue.record("no probe"); return }
        _ = h.send(.blacklistManually(address: ip, host: "a.test", period: 10_000))
        let actions = h.send(.dialed(probe))
        #expect(actions.destroyed == [.blacklisted], "the probe's connection goes, as any to a blacklisted IP")
        #expect(h.machine.blacklistedIPs(forName: "a.test").map(\.reason) == [.manual])
        #expect(h.machine.blacklistedIPs(forName: "a.test").first?.until == h.now + 10_000, "the manual expiry stands")
    }

    @Test func dialsThatFailOnThisSideOrOnTheCallersBudgetEjectNoIP() {
        var h = harness {
            $0.consecutiveFailuresToEject = 2
            $0.acquireTimeout = 10
            $0.connectTimeout = 1_000
        }
        let ip = Self.ips[0]
        for error in [HotPoolError.localAddressUnavailable(host: "a.test", ip: ip), .localAddressUnavailable(host: "a.test", ip: ip),
                      .timeout(host: "a.test", ip: ip, phase: .connect), .timeout(host: "a.test", ip: ip, phase: .connect),
                      .invalidConfiguration("nghttp2 refused the HTTP/2 preface"), .invalidConfiguration("nghttp2 refused the HTTP/2 preface")] {
            guard case .dial(let slot, _)? = h.acquire("a.test", pinned: ip).1.first(where: \.isDial) else { Issue.record("no dial"); return }
            h.now += 10  // the caller's acquire time, shorter than connectTimeout, runs out
            _ = h.send(.dialFailed(slot, error))
        }
        #expect(h.machine.blacklistedIPs(forName: "a.test").isEmpty)
        #expect(h.stats.failedDials == 6)
    }

    @Test func minIdleReplacesConnectionsTheServerClosedAtTheNextCleanupNotAtOnce() {
        var h = harness {
            $0.minIdlePerHost = 1
            $0.cleanupInterval = 1_000
        }
        guard case .dial(let first, _)? = h.send(.prewarm(h.newWaiter(), MachineHarness.request("a.test"), count: 0)).first(where: \.isDial)
        else { Issue.record("no warming dial"); return }
        _ = h.send(.dialed(first))
        #expect(h.stats.idleConnections == 1)
        let closed = h.send(.unreadInput(first, .remoteClosed))
        #expect(closed.destroyed == [.remoteClosed] && !closed.hasDial, "no dial in the event the server closed it")
        h.now += 1_000
        #expect(h.send(.timerFired(.cleanup)).hasDial, "re-dialed at the cleanup")
    }

    @Test func aHostMinIdlePerHostKeepsWarmIsNeverReclaimedButOneWhoseLookupFailedIs() {
        var h = harness {
            $0.minIdlePerHost = 1
            $0.cleanupInterval = 1_000
            $0.idleTimeout = 1_000
        }
        guard case .dial(let first, _)? = h.send(.prewarm(h.newWaiter(), MachineHarness.request("a.test"), count: 0)).first(where: \.isDial)
        else { Issue.record("no warming dial"); return }
        _ = h.send(.dialed(first))
        let (missing, asked) = h.acquire("missing.test")
        guard case .resolve(let lookup, _)? = asked.first else { Issue.record("no lookup: \(asked)"); return }
        let error = HotPoolError.noAddresses(host: "missing.test", reason: "NXDOMAIN")
        #expect(h.send(.resolved(hostID: lookup, .failure(error))) == [.fail(missing, error)])
        #expect(h.machine.hostStore.count == 2)
        // Long after the last get, the server closes the host's only connection.
        h.now += 2_000
        _ = h.send(.unreadInput(first, .remoteClosed))
        let cleanup = h.send(.timerFired(.cleanup))
        #expect(cleanup.contains { if case .dial(_, let target) = $0 { target.key.name == "a.test" } else { false } }, "\(cleanup)")
        #expect(h.machine.hostStore.count == 1, "the host with no addresses is reclaimed, the warm one kept")
    }

    @Test func aLookupUsesAtMostMaxAddressesPerLookupOfItsAnswerTheFirstOnes() {
        var h = harness { $0.maxAddressesPerLookup = 2 }
        let id = h.newWaiter()
        guard case .resolve(let host, _)? = h.send(.refresh(id, MachineHarness.request("dns.test"))).first
        else { Issue.record("no lookup"); return }
        let answer = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        #expect(h.send(.resolved(hostID: host, .success(answer))) == [.reportAddresses(id, Array(answer.prefix(2)))])
        #expect(h.machine.ipRecords(forName: "dns.test").map(\.record.address) == Array(answer.prefix(2)), "no record of the third")
    }

    /// An IP record DNS dropped stays while a connection, a dial, a waiter (pinned to it, or
    /// whose dial failed on it) or a running blacklisting refers to it, and goes at the first
    /// cleanup after; its id is reused.
    @Test func theRecordOfAnIPDNSDroppedIsFreedAtTheCleanupOnceNothingRefersToIt() {
        var h = harness {
            $0.maxConnectionsPerHost = 3
            $0.cleanupInterval = 1_000
        }
        let (a, b, c, d, e, f, g) = ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5", "203.0.113.6", "203.0.113.7")
        func recorded() -> Set<String> { Set(h.machine.ipRecords(forName: "dns.test").map(\.record.address)) }
        func dial(_ actions: [PoolStateMachine.Action]) -> (SlotHandle, String)? {
            for action in actions { if case .dial(let slot, let target) = action { return (slot, target.address) } }
            return nil
        }
        /// A lookup of dns.test now, answered with `answer`.
        func resolve(_ answer: [String]) -> [PoolStateMachine.Action] {
            guard case .resolve(let host, _)? = h.send(.refresh(h.newWaiter(), MachineHarness.request("dns.test"))).first else { return [] }
            return h.send(.resolved(hostID: host, .success(answer)))
        }
        _ = resolve([a, b, c, d, e, f])
        let leased = h.connect("dns.test")  // to a
        let (retrying, toB) = h.acquire("dns.test")
        guard let (failed, bAddress) = dial(toB),
              let (toC, cAddress) = dial(h.send(.dialFailed(failed, .connectFailed(host: "dns.test", ip: b, reason: "refused"))))
        else { Issue.record("no dials"); return }
        #expect([bAddress, cAddress] == [b, c], "b failed for the caller, who now dials c")
        let (pinnedDialing, toD) = h.acquire("dns.test", pinned: d)
        let (pinnedWaiting, waits) = h.acquire("dns.test", pinned: e)
        guard let (dSlot, _) = dial(toD), waits == [] else { Issue.record("\(toD) \(waits)"); return }
        _ = h.send(.blacklistManually(address: f, host: "dns.test", period: 5_000))
        _ = resolve([g])
        h.now += 1_000
        _ = h.send(.timerFired(.cleanup))
        #expect(recorded() == [a, b, c, d, e, f, g], "each dropped IP is still referred to")
        #expect(h.send(.cancel(pinnedWaiting)) == [.fail(pinnedWaiting, .cancelled)])
        _ = h.send(.remove(leased))
        let refused = HotPoolError.connectFailed(host: "dns.test", ip: d, reason: "refused")
        #expect(h.send(.dialFailed(dSlot, refused)).contains(.fail(pinnedDialing, refused)))
        _ = h.send(.dialFailed(toC, .connectFailed(host: "dns.test", ip: c, reason: "refused")))  // the caller now dials g
        _ = h.send(.cancel(retrying))
        #expect(h.stats.waitingCallers == 0 && h.stats.dialingConnections == 1, "only the dial to g is left")
        h.now += 1_000
        _ = h.send(.timerFired(.cleanup))
        #expect(recorded() == [f, g], "f's blacklisting runs on")
        h.now += 3_000
        _ = h.send(.timerFired(.cleanup))
        #expect(recorded() == [g])
        #expect(h.machine.hostStore.ipsOutOfRotation.isEmpty)
        // An IP DNS gives again takes a freed id (no new one), and is dialed under its own address.
        _ = resolve([g, a])
        #expect(h.machine.hostStore.ips.count == 7)
        let next = dial(h.acquire("dns.test").1)
        #expect(next?.1 == a && recorded() == [g, a])
    }

    /// The record of an IP only a pinned caller named goes once nothing refers to it, though its
    /// host, kept for `minIdlePerHost`, is never reclaimed: a caller pinning many IPs over time
    /// does not grow the host without bound.
    @Test func theRecordOfAPinnedIPOutOfRotationIsFreedOnceUnusedThoughItsHostIsKeptWarm() {
        var h = harness {
            $0.minIdlePerHost = 1
            $0.cleanupInterval = 1_000
        }
        let pinned = "198.51.100.7"
        func recorded() -> Set<String> { Set(h.machine.ipRecords(forName: "a.test").map(\.record.address)) }
        guard case .dial(let slot, let target)? = h.acquire("a.test", pinned: pinned).1.first(where: \.isDial), target.address == pinned,
              let lease = h.send(.dialed(slot)).leaseHandle
        else { Issue.record("no pinned connection"); return }
        h.now += 1_000
        _ = h.send(.timerFired(.cleanup))
        #expect(recorded().contains(pinned), "its connection refers to it")
        _ = h.send(.remove(lease))
        h.now += 1_000
        _ = h.send(.timerFired(.cleanup))
        #expect(recorded() == Set(Self.ips), "freed; the host and its rotation stay")
        #expect(h.machine.hostStore.ipsOutOfRotation.isEmpty)
    }

    /// The target's dependencies keep C and I/O out of the machine; this also keeps the system
    /// module out, which every target may import.
    @Test func theStateMachineImportsNoCAndNoSystemModule() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/HotPoolStateMachine").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".swift") }
        #expect(!files.isEmpty)
        for file in files {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            let imports = text.split(separator: "\n").filter { $0.hasPrefix("import ") }
            #expect(imports.allSatisfy { ["import DequeModule", "import HotPoolCore"].contains($0) }, "\(file): \(imports)")
        }
    }
}
