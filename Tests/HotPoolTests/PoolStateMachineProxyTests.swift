import Testing
@testable import HotPoolCore
@testable import HotPoolStateMachine

/// The state machine's proxy decisions without sockets: which proxy each dial goes through, which
/// connections a caller may take, what a proxy's failure is charged to, ejection and recovery, and
/// `setProxies`. Each test ends by closing the pool and checking that every connection was
/// destroyed once, counted once under its reason, and that every slot is free.
@Suite struct PoolStateMachineProxyTests {
    static let a = try! Proxy("http://10.0.0.1:3128")
    static let b = try! Proxy("socks5://10.0.0.2:1080")
    /// A proxy no list names (only pinned), or one a `setProxies` list brings.
    static let c = try! Proxy("http://10.0.0.3:3128")
    /// one.test has a single IP, so a dial's only choice is its proxy.
    static let one = "one.test"
    static let oneIP = "192.0.2.1"
    /// two.test has two IPs.
    static let two = "two.test"
    static let twoIPs = ["198.51.100.1", "198.51.100.2"]

    typealias Action = PoolStateMachine.Action
    typealias Event = PoolStateMachine.Event
    typealias DialTarget = PoolStateMachine.DialTarget

    /// `MachineHarness` with the pool's proxies set, one.test and two.test given addresses, and a
    /// tally of every `destroy` action the machine emits.
    struct ProxyHarness: ~Copyable {
        var h: MachineHarness
        var destroyedHandles: [SlotHandle] = []
        var destroyedByReason: [CloseReason: Int] = [:]

        init(proxies: [Proxy] = [PoolStateMachineProxyTests.a, PoolStateMachineProxyTests.b],
             _ configure: (inout PoolStateMachine.Configuration) -> Void = { _ in }) {
            h = MachineHarness { configuration in
                configuration.proxies = proxies
                configure(&configuration)
            }
            _ = send(.setAddresses([PoolStateMachineProxyTests.oneIP], host: PoolStateMachineProxyTests.one))
            _ = send(.setAddresses(PoolStateMachineProxyTests.twoIPs, host: PoolStateMachineProxyTests.two))
        }

        var now: Int64 {
            get { h.now }
            set { h.now = newValue }
        }

        var stats: PoolStats { h.stats }

        mutating func send(_ event: Event) -> [Action] {
            let actions = h.send(event)
            for case .destroy(let destruction) in actions {
                destroyedHandles.append(destruction.handle)
                if let reason = destruction.reason { destroyedByReason[reason, default: 0] += 1 }
            }
            return actions
        }

        /// A get for `host`, pinned to `ip` and/or `proxy` if given.
        mutating func acquire(_ host: String, ip: String? = nil, proxy: Proxy? = nil) -> (WaiterID, [Action]) {
            let id = h.newWaiter()
            let request = PoolStateMachine.AcquireRequest(key: HostKey(name: host, port: 443), pinnedIP: ip, pinnedProxy: proxy, nameIsAddress: false)
            return (id, send(.acquire(id, request)))
        }

        /// A get that must start a dial: its waiter, the dial's slot and target.
        mutating func startDial(_ host: String, ip: String? = nil, proxy: Proxy? = nil,
                                sourceLocation: SourceLocation = #_sourceLocation) -> (id: WaiterID, slot: SlotHandle, target: DialTarget)? {
            let (id, actions) = acquire(host, ip: ip, proxy: proxy)
            guard let (slot, target) = actions.dials.first else {
                Issue.record("no dial: \(actions)", sourceLocation: sourceLocation)
                return nil
            }
            return (id, slot, target)
        }

        /// A get that dials, and the dial completes: the caller's lease and the dial's target.
        mutating func connect(_ host: String, ip: String? = nil, proxy: Proxy? = nil,
                              sourceLocation: SourceLocation = #_sourceLocation) -> (lease: LeaseHandle, target: DialTarget)? {
            guard let (id, slot, target) = startDial(host, ip: ip, proxy: proxy, sourceLocation: sourceLocation) else { return nil }
            let leased = send(.dialed(slot))
            guard let lease = leased.leaseHandle, leased.contains(.lease(id, lease)) else {
                Issue.record("not leased: \(leased)", sourceLocation: sourceLocation)
                return nil
            }
            return (lease, target)
        }

        /// The ledger entry of `proxy`, nil if the machine holds no record of it.
        func ledger(_ proxy: Proxy) -> (record: ProxyRecord, open: Int)? {
            h.machine.proxyLedger().first { $0.record.proxy == proxy }
        }

        /// Dial failures charged to the IPs of `host`, and whether any of them is blacklisted.
        func ipFailures(_ host: String) -> Int {
            h.machine.ipRecords(forName: host).reduce(0) { $0 + $1.record.failures }
        }

        func blacklisted(_ host: String) -> [String] {
            h.machine.blacklistedIPs(forName: host).map(\.address)
        }

        /// Closes the pool, then checks that every connection was destroyed once, each counted in
        /// `closedByReason` under the reason its `destroy` action gave, and that no slot is left.
        mutating func closeAndCheckAccounting(sourceLocation: SourceLocation = #_sourceLocation) {
            _ = send(.close)
            #expect(Set(destroyedHandles).count == destroyedHandles.count, "a connection destroyed twice: \(destroyedHandles)",
                    sourceLocation: sourceLocation)
            let counted = stats.closedByReason.filter { $0.value != 0 }
            #expect(counted == destroyedByReason, "closedByReason \(counted) vs destroy actions \(destroyedByReason)",
                    sourceLocation: sourceLocation)
            #expect(stats.totalConnections == 0 && stats.dialingConnections == 0 && h.machine.table.liveCount == 0,
                    "slots left: \(stats)", sourceLocation: sourceLocation)
        }
    }

    // MARK: 1. routes

    /// Round robin over [A, B]: successive dials alternate A, B, A, B.
    @Test func roundRobinDialsAlternateTheListedProxies() {
        var p = ProxyHarness()
        var through: [Proxy?] = []
        for _ in 0..<4 {
            guard let (_, target) = p.connect(Self.one) else { return }  // leases held: each get dials
            through.append(target.proxy)
        }
        #expect(through == [Self.a, Self.b, Self.a, Self.b])
        #expect(p.ledger(Self.a)?.record.dials == 2 && p.ledger(Self.b)?.record.dials == 2)
        #expect(p.ledger(Self.a)?.open == 2 && p.ledger(Self.b)?.open == 2)
        p.closeAndCheckAccounting()
    }

    /// A get pinned to B is not handed the idle connection through A: a dial through B is made for
    /// it. With idle connections through both, each pinned get takes its own proxy's (not the most
    /// recently parked one, as LIFO alone would).
    @Test func aGetPinnedToAProxyTakesOnlyConnectionsThroughIt() {
        var p = ProxyHarness()
        guard let (throughA, target) = p.connect(Self.one), target.proxy == Self.a else { Issue.record("first dial not through A"); return }
        _ = p.send(.release(throughA))
        #expect(p.stats.idleConnections == 1)
        let (pinned, actions) = p.acquire(Self.one, proxy: Self.b)
        #expect(actions.leaseHandle == nil, "the idle connection through A is not handed to a caller pinned to B")
        guard let (slot, dialTarget) = actions.dials.first else { Issue.record("no dial: \(actions)"); return }
        #expect(dialTarget.proxy == Self.b)
        let leased = p.send(.dialed(slot))
        guard let throughB = leased.leaseHandle else { Issue.record("\(leased)"); return }
        #expect(leased == [.lease(pinned, throughB)])
        _ = p.send(.release(throughB))  // now idle: A, then B (the most recent)
        #expect(p.acquire(Self.one, proxy: Self.a).1.leaseHandle?.slot == throughA.slot)
        #expect(p.acquire(Self.one, proxy: Self.b).1.leaseHandle?.slot == throughB.slot)
        p.closeAndCheckAccounting()
    }

    /// A connection through a pinned proxy no list names is kept for callers pinning it, never
    /// handed to an unpinned get (which dials through the list instead); its record goes at the
    /// cleanup once nothing uses it.
    @Test func anUnpinnedGetNeverTakesAConnectionThroughAnUnlistedPinnedProxy() {
        var p = ProxyHarness()
        guard let (throughC, target) = p.connect(Self.one, proxy: Self.c) else { return }
        #expect(target.proxy == Self.c)
        #expect(p.send(.release(throughC)).destroyed == [], "kept idle for callers pinning C")
        let (_, unpinned) = p.acquire(Self.one)
        #expect(unpinned.leaseHandle == nil)
        #expect(unpinned.dials.map(\.1.proxy) == [Self.a], "the unpinned get dials through the list")
        // A second unpinned get (the first is still dialing) does not take it either.
        #expect(p.acquire(Self.one).1.dials.map(\.1.proxy) == [Self.b])
        let (_, pinnedAgain) = p.acquire(Self.one, proxy: Self.c)
        guard let again = pinnedAgain.leaseHandle else { Issue.record("\(pinnedAgain)"); return }
        #expect(again.slot == throughC.slot, "a get pinned to C takes it")
        #expect(p.ledger(Self.c)?.open == 1)
        _ = p.send(.remove(again))
        p.now += 60_000_000_000  // the cleanup interval
        _ = p.send(.timerFired(.cleanup))
        #expect(p.ledger(Self.c) == nil, "C's record is freed once nothing uses it")
        #expect(p.ledger(Self.a) != nil && p.ledger(Self.b) != nil, "listed proxies keep theirs")
        p.closeAndCheckAccounting()
    }

    // MARK: 2. sticky per IP

    /// `stickyPerIP`: each IP's dials keep the proxy it was first given (gets pinned to an IP, in
    /// an order round robin would spread over both proxies); once that proxy is ejected the IP
    /// moves to the other one, and keeps it after the first comes back.
    @Test func stickyPerIPKeepsEachIPOnItsProxyAndMovesItWhenTheProxyIsEjected() {
        var p = ProxyHarness {
            $0.proxySelection = .stickyPerIP
            $0.consecutiveFailuresToEject = 2
            $0.blacklistTimeout = 100
            $0.maxConnectionsPerHost = 20  // every lease is held
        }
        let (ip1, ip2) = (Self.twoIPs[0], Self.twoIPs[1])
        var through: [String: [Proxy?]] = [:]
        for ip in [ip1, ip1, ip2, ip2, ip1, ip2, ip1] {
            guard let (_, target) = p.connect(Self.two, ip: ip) else { return }
            through[ip, default: []].append(target.proxy)
        }
        #expect(through[ip1] == [Self.a, Self.a, Self.a, Self.a])
        #expect(through[ip2] == [Self.b, Self.b, Self.b])
        // A is ejected: ip1 moves to B, ip2 stays there.
        for _ in 0..<2 {
            guard let (_, slot, _) = p.startDial(Self.two, proxy: Self.a) else { return }
            _ = p.send(.dialFailed(slot, .proxyConnectFailed(proxy: Self.a, host: Self.two, ip: ip1, reason: "connection refused")))
        }
        guard let until = p.ledger(Self.a)?.record.ejectedUntil else { Issue.record("A not ejected"); return }
        #expect(p.connect(Self.two, ip: ip1)?.target.proxy == Self.b)
        #expect(p.connect(Self.two, ip: ip2)?.target.proxy == Self.b)
        // A comes back through a recovery dial; ip1 keeps B, the proxy it now has.
        p.now = until
        guard let (probe, probeTarget) = p.send(.timerFired(.recovery)).dials.first else { Issue.record("no recovery dial"); return }
        #expect(probeTarget.proxy == Self.a)
        _ = p.send(.dialed(probe))
        #expect(p.ledger(Self.a)?.record.ejectedUntil == nil)
        var after: [Proxy?] = []
        for _ in 0..<3 {
            let (_, actions) = p.acquire(Self.two, ip: ip1)
            if actions.leaseHandle != nil { continue }  // the recovery connection, if it went to ip1
            guard let (slot, target) = actions.dials.first else { Issue.record("\(actions)"); return }
            _ = p.send(.dialed(slot))
            after.append(target.proxy)
        }
        #expect(!after.isEmpty && after.allSatisfy { $0 == Self.b }, "\(after)")
        p.closeAndCheckAccounting()
    }

    // MARK: 3. what a failure is charged to

    /// Each proxy fault (connect failed, SOCKS refusal, 407, a timeout in the tunnel phase) is
    /// charged to the proxy, never to the IP; the fourth in a row ejects it: its idle connection
    /// goes at once (`proxyEjected`), its leased one when returned, and dials go to B.
    @Test func proxyFaultsAreChargedToTheProxyNotTheIPAndEjectIt() {
        var p = ProxyHarness {
            $0.consecutiveFailuresToEject = 4
            $0.connectTimeout = 1_000
            $0.blacklistTimeout = 500
        }
        let ip = Self.twoIPs[0]
        // Four dials pinned to A under way.
        var dials: [SlotHandle] = []
        for _ in 0..<4 {
            guard let (_, slot, target) = p.startDial(Self.two, proxy: Self.a) else { return }
            #expect(target.proxy == Self.a)
            dials.append(slot)
        }
        // Connections through A (one idle, one leased) and B.
        guard let (idleA, t1) = p.connect(Self.two), let (leasedB, t2) = p.connect(Self.two), let (leasedA, t3) = p.connect(Self.two),
              [t1.proxy, t2.proxy, t3.proxy] == [Self.a, Self.b, Self.a] else { Issue.record("not A, B, A"); return }
        _ = p.send(.release(idleA))
        let faults: [HotPoolError] = [
            .proxyConnectFailed(proxy: Self.a, host: Self.two, ip: ip, reason: "connection refused"),
            .proxyRefused(proxy: Self.a, host: Self.two, ip: ip, reason: "host unreachable"),
            .timeout(host: Self.two, ip: ip, phase: .proxyTunnel, proxy: Self.a),
            .proxyAuthenticationRequired(proxy: Self.a, host: Self.two, ip: ip, scheme: "Basic"),
        ]
        p.now += 1_000  // the dials ran their whole connectTimeout: the timeout is someone's fault
        for (index, (slot, fault)) in zip(dials, faults).enumerated() {
            let actions = p.send(.dialFailed(slot, fault))
            #expect(actions.contains { if case .fail(_, fault) = $0 { true } else { false } }, "the pinned caller fails")
            let record = p.ledger(Self.a)?.record
            #expect(record?.failedDials == index + 1, "\(fault)")
            if index < 3 {
                #expect(record?.consecutiveFailures == index + 1 && record?.ejectedUntil == nil)
                #expect(actions.destroyed == [])
            } else {
                #expect(record?.ejectedUntil == p.now + 500, "ejected for blacklistTimeout")
                #expect(record?.consecutiveFailures == 0)
                #expect(actions.destroyed == [.proxyEjected], "its idle connection goes at once")
            }
        }
        #expect(p.ipFailures(Self.two) == 0 && p.blacklisted(Self.two).isEmpty, "no IP is charged")
        #expect(p.ledger(Self.a)?.record.targets.values.allSatisfy { $0.failures == 0 } ?? false)
        #expect(p.ledger(Self.b)?.record.failedDials == 0)
        #expect(p.send(.release(leasedA)).destroyed == [.proxyEjected], "the leased one goes when returned")
        #expect(p.send(.release(leasedB)).destroyed == [], "B's stays")
        // Dials now go through B only (the idle one through B is taken first).
        #expect(p.acquire(Self.two).1.leaseHandle?.slot == leasedB.slot)
        var through: [Proxy?] = []
        for _ in 0..<3 {
            guard let (_, target) = p.connect(Self.two) else { return }
            through.append(target.proxy)
        }
        #expect(through == [Self.b, Self.b, Self.b])
        #expect(p.stats.closedByReason[.proxyEjected] == 2)
        p.closeAndCheckAccounting()
    }

    /// With a single listed proxy, ejecting it would put more than `maxEjectedShare` (0.5) of the
    /// list out: it stays in rotation however often it fails.
    @Test func theOnlyListedProxyIsNeverEjected() {
        var p = ProxyHarness(proxies: [Self.a]) {
            $0.consecutiveFailuresToEject = 2
            $0.maxEjectedShare = 0.5
        }
        for _ in 0..<5 {
            guard let (_, slot, target) = p.startDial(Self.one) else { return }
            #expect(target.proxy == Self.a)
            _ = p.send(.dialFailed(slot, .proxyConnectFailed(proxy: Self.a, host: Self.one, ip: Self.oneIP, reason: "connection refused")))
        }
        let record = p.ledger(Self.a)?.record
        #expect(record?.ejectedUntil == nil && record?.consecutiveFailures == 5 && record?.failedDials == 5)
        #expect(p.ipFailures(Self.one) == 0 && p.blacklisted(Self.one).isEmpty)
        #expect(p.startDial(Self.one)?.target.proxy == Self.a)
        p.closeAndCheckAccounting()
    }

    /// The share of ejected proxies is kept per list: a host whose own list is one proxy never has
    /// it ejected, however many proxies the pool's list holds; and if every proxy of a list is out
    /// (`maxEjectedShare` 1), dials go through one and their connections are kept, not closed
    /// and re-dialed in a loop.
    @Test func ejectionKeepsEachListsShareAndAWhollyEjectedListStillServes() {
        var p = ProxyHarness(proxies: [Self.a, Self.b]) { $0.consecutiveFailuresToEject = 1 }
        _ = p.send(.setProxies([Self.c], host: Self.one))
        guard let (_, slot, target) = p.startDial(Self.one) else { return }
        #expect(target.proxy == Self.c)
        _ = p.send(.dialFailed(slot, .proxyConnectFailed(proxy: Self.c, host: Self.one, ip: Self.oneIP, reason: "refused")))
        #expect(p.ledger(Self.c)?.record.ejectedUntil == nil, "the only proxy of one.test's list stays in")
        p.closeAndCheckAccounting()

        var all = ProxyHarness(proxies: [Self.a]) {
            $0.consecutiveFailuresToEject = 1
            $0.maxEjectedShare = 1
        }
        guard let (_, failed, _) = all.startDial(Self.one) else { return }
        _ = all.send(.dialFailed(failed, .proxyConnectFailed(proxy: Self.a, host: Self.one, ip: Self.oneIP, reason: "refused")))
        #expect(all.ledger(Self.a)?.record.ejectedUntil != nil)
        guard let (lease, target2) = all.connect(Self.one) else { return }
        #expect(target2.proxy == Self.a)
        #expect(all.send(.release(lease)).isEmpty, "parked idle, not closed")
        #expect(all.stats.idleConnections == 1)
        all.closeAndCheckAccounting()
    }

    /// A caller's own dial whose proxy left the host's list while it dialed is not handed to it:
    /// the connection goes (`proxyRemoved`) and the caller's next dial takes the new list.
    @Test func aCallersDialWhoseProxyLeftTheListMeanwhileIsRedialed() {
        var p = ProxyHarness(proxies: [Self.a])
        guard let (id, slot, target) = p.startDial(Self.one) else { return }
        #expect(target.proxy == Self.a)
        _ = p.send(.setProxies([Self.b], host: Self.one))
        let actions = p.send(.dialed(slot))
        #expect(!actions.contains { if case .lease(id, _) = $0 { true } else { false } })
        #expect(actions.dials.first?.1.proxy == Self.b, "\(actions)")
        #expect(p.destroyedByReason == [.proxyRemoved: 1])
        p.closeAndCheckAccounting()
    }

    /// A failure after the tunnel opened (the target's TLS handshake) is the IP's: charged to it
    /// and to the (proxy, IP) pair, not to the proxy, whose run of failures it ends.
    @Test func aTargetFailureThroughTheTunnelIsChargedToTheIPAndEndsTheProxysRunOfFailures() {
        var p = ProxyHarness { $0.consecutiveFailuresToEject = 3 }
        let ip = Self.oneIP
        func fail(_ error: HotPoolError) -> [Action] {
            guard let (_, slot, _) = p.startDial(Self.one, proxy: Self.a) else { return [] }
            return p.send(.dialFailed(slot, error))
        }
        let refused = HotPoolError.proxyConnectFailed(proxy: Self.a, host: Self.one, ip: ip, reason: "connection refused")
        _ = fail(refused)
        _ = fail(refused)
        #expect(p.ledger(Self.a)?.record.consecutiveFailures == 2)
        _ = fail(.tlsHandshakeFailed(host: Self.one, ip: ip, reason: "bad certificate"))
        let record = p.ledger(Self.a)?.record
        #expect(record?.consecutiveFailures == 0 && record?.failedDials == 2, "the proxy opened its tunnel: not its fault")
        #expect(record?.targets[ip]?.failures == 1, "charged to the (A, IP) pair")
        #expect(p.ipFailures(Self.one) == 1, "and to the IP")
        // Two more proxy faults: not three in a row, so A stays in.
        _ = fail(refused)
        _ = fail(refused)
        #expect(p.ledger(Self.a)?.record.ejectedUntil == nil)
        #expect(p.ledger(Self.a)?.record.consecutiveFailures == 2)
        #expect(p.ipFailures(Self.one) == 1)
        p.closeAndCheckAccounting()
    }

    // MARK: 4. the caller's retry

    /// A caller whose dial failed for its proxy's fault retries through the other proxy, even
    /// when the rotation has come back round to the one that failed; a caller pinned to the
    /// failing proxy fails with its error, with no retry.
    @Test func aCallerRetriesThroughAnotherProxyUnlessItPinnedTheOneThatFailed() {
        var p = ProxyHarness()
        guard let (first, firstSlot, firstTarget) = p.startDial(Self.one),
              let (_, _, secondTarget) = p.startDial(Self.one) else { return }
        #expect(firstTarget.proxy == Self.a && secondTarget.proxy == Self.b, "the rotation is back at A")
        let error = HotPoolError.proxyConnectFailed(proxy: Self.a, host: Self.one, ip: Self.oneIP, reason: "connection refused")
        let retry = p.send(.dialFailed(firstSlot, error))
        #expect(!retry.contains(.fail(first, error)))
        guard let (retrySlot, retryTarget) = retry.dials.first else { Issue.record("no retry: \(retry)"); return }
        #expect(retryTarget.proxy == Self.b, "the retry avoids A")
        #expect(retryTarget.address == Self.oneIP)
        #expect(p.h.machine.table.dialer[Int(retrySlot.slot)] == .caller(first))
        #expect(p.ipFailures(Self.one) == 0)
        // Pinned to A: its failure is final.
        guard let (pinned, pinnedSlot, pinnedTarget) = p.startDial(Self.one, proxy: Self.a) else { return }
        #expect(pinnedTarget.proxy == Self.a)
        let pinnedFailure = p.send(.dialFailed(pinnedSlot, error))
        #expect(pinnedFailure.contains(.fail(pinned, error)))
        #expect(!pinnedFailure.hasDial)
        p.closeAndCheckAccounting()
    }

    // MARK: 5. recovery

    /// Once its ejection ends, the `.recovery` timer dials through the ejected proxy (once): a
    /// proxy fault keeps it out twice as long; a dial that connects brings it back into rotation,
    /// and its connection joins the pool.
    @Test func theRecoveryTimerDialsThroughAnEjectedProxyAndAFailureDoublesItsPeriod() {
        var p = ProxyHarness {
            $0.consecutiveFailuresToEject = 2
            $0.blacklistTimeout = 100
            $0.maxBlacklistTime = 1_000
        }
        let refused = HotPoolError.proxyConnectFailed(proxy: Self.a, host: Self.one, ip: Self.oneIP, reason: "connection refused")
        for _ in 0..<2 {
            guard let (_, slot, _) = p.startDial(Self.one, proxy: Self.a) else { return }
            _ = p.send(.dialFailed(slot, refused))
        }
        guard let until = p.ledger(Self.a)?.record.ejectedUntil else { Issue.record("A not ejected"); return }
        #expect(until == p.now + 100)
        p.now = until - 1
        #expect(!p.send(.timerFired(.recovery)).hasDial, "not before its time is up")
        p.now = until
        let pass = p.send(.timerFired(.recovery))
        guard let (probe, probeTarget) = pass.dials.first, pass.dials.count == 1 else { Issue.record("\(pass)"); return }
        #expect(probeTarget.proxy == Self.a && probeTarget.address == Self.oneIP)
        #expect(!p.send(.timerFired(.recovery)).hasDial, "one recovery dial at a time")
        _ = p.send(.dialFailed(probe, refused))
        #expect(p.ledger(Self.a)?.record.ejectedUntil == p.now + 200, "a failed recovery dial doubles the period")
        #expect(p.connect(Self.one)?.target.proxy == Self.b, "A is still out")
        p.now += 200
        guard let (second, secondTarget) = p.send(.timerFired(.recovery)).dials.first, secondTarget.proxy == Self.a
        else { Issue.record("no second recovery dial"); return }
        #expect(p.send(.dialed(second)).withoutTimers == [], "its connection is parked idle")
        #expect(p.ledger(Self.a)?.record.ejectedUntil == nil, "A is back in rotation")
        #expect(p.stats.idleConnections == 1)
        #expect(p.acquire(Self.one).1.leaseHandle?.slot == second.slot, "an unpinned get takes the recovery connection")
        var through: [Proxy?] = []
        for _ in 0..<2 {
            guard let (_, target) = p.connect(Self.one) else { return }
            through.append(target.proxy)
        }
        #expect(Set(through) == [Self.a, Self.b], "both in rotation again: \(through)")
        #expect(p.ipFailures(Self.one) == 0 && p.blacklisted(Self.one).isEmpty)
        p.closeAndCheckAccounting()
    }

    // MARK: connections off the route

    /// At the host's cap, an unpinned caller takes the place of an idle connection it may not use
    /// (one through a pinned proxy no list names) rather than wait behind it until it times out.
    @Test func atTheHostsCapAnUnpinnedCallerEvictsAnIdleConnectionOffItsRoute() {
        var p = ProxyHarness { $0.maxConnectionsPerHost = 1 }
        guard let (throughC, _) = p.connect(Self.one, proxy: Self.c) else { return }
        _ = p.send(.release(throughC))
        let (_, actions) = p.acquire(Self.one)
        #expect(actions.destroyed == [.evicted], "\(actions)")
        #expect(actions.dials.map(\.1.proxy) == [Self.a])
        p.closeAndCheckAccounting()
    }

    /// A warming dial (no caller) whose proxy is ejected while it dials is not parked idle where
    /// no unpinned caller may take it (and where it would count as the host's warm connection):
    /// it is closed (`proxyEjected`), and the host is warmed again through B at the next cleanup.
    @Test func aWarmingDialThroughAProxyEjectedMeanwhileIsNotParked() {
        var p = ProxyHarness {
            $0.minIdlePerHost = 1
            $0.consecutiveFailuresToEject = 2
        }
        let prewarm = p.h.newWaiter()
        guard let (warming, target) = p.send(.prewarm(prewarm, MachineHarness.request(Self.one), count: 0)).dials.first,
              target.proxy == Self.a else { Issue.record("no warming dial through A"); return }
        for _ in 0..<2 {
            guard let (_, slot, _) = p.startDial(Self.one, proxy: Self.a) else { return }
            _ = p.send(.dialFailed(slot, .proxyConnectFailed(proxy: Self.a, host: Self.one, ip: Self.oneIP, reason: "connection refused")))
        }
        #expect(p.ledger(Self.a)?.record.ejectedUntil != nil)
        let actions = p.send(.dialed(warming))
        #expect(actions.destroyed == [.proxyEjected], "\(actions)")
        #expect(actions.contains(.reportReady(prewarm, idle: 0)), "the prewarm is not told of a connection nobody may take")
        #expect(p.stats.idleConnections == 0)
        // As after a failed warming dial, the host is topped up at the next cleanup, through B.
        p.now += 60_000_000_000
        #expect(p.send(.timerFired(.cleanup)).dials.map(\.1.proxy) == [Self.b])
        p.closeAndCheckAccounting()
    }

    // MARK: 6. setProxies

    /// `setProxies` gives hosts named one.test their own list: idle connections through proxies
    /// off it go at once, leased ones when returned (`proxyRemoved`), and new dials rotate over
    /// it while two.test keeps the pool's list. An empty list makes dials direct and closes the
    /// proxied idle connections; nil restores the pool's list (closing the direct ones).
    @Test func setProxiesGivesAHostItsOwnListAndClosesConnectionsOffIt() {
        var p = ProxyHarness()
        guard let (leasedA, t1) = p.connect(Self.one), let (idleB, t2) = p.connect(Self.one), let (idleA, t3) = p.connect(Self.one),
              [t1.proxy, t2.proxy, t3.proxy] == [Self.a, Self.b, Self.a] else { Issue.record("not A, B, A"); return }
        _ = p.send(.release(idleB))
        _ = p.send(.release(idleA))
        #expect(p.send(.setProxies([Self.b, Self.c], host: Self.one)).destroyed == [.proxyRemoved], "the idle one through A")
        #expect(p.stats.idleConnections == 1)
        #expect(p.send(.release(leasedA)).destroyed == [.proxyRemoved], "the leased one through A, when returned")
        // one.test: the idle connection through B, then dials through B, C.
        guard let keptB = p.acquire(Self.one).1.leaseHandle, keptB.slot == idleB.slot else { Issue.record("B's idle connection not taken"); return }
        guard let (throughB, t4) = p.connect(Self.one), let (throughC, t5) = p.connect(Self.one) else { return }
        #expect([t4.proxy, t5.proxy] == [Self.b, Self.c])
        // two.test keeps the pool's list.
        guard let (otherHost, t6) = p.connect(Self.two) else { return }
        #expect(t6.proxy == Self.a || t6.proxy == Self.b)
        _ = p.send(.release(otherHost))
        // An empty list: direct.
        for lease in [keptB, throughB, throughC] { _ = p.send(.release(lease)) }
        #expect(p.send(.setProxies([], host: Self.one)).destroyed == [.proxyRemoved, .proxyRemoved, .proxyRemoved])
        #expect(p.stats.idleConnections == 1, "two.test's connection stays")
        guard let (direct, t7) = p.connect(Self.one) else { return }
        #expect(t7.proxy == nil)
        _ = p.send(.release(direct))
        // nil: the pool's list again; the direct connection goes.
        #expect(p.send(.setProxies(nil, host: Self.one)).destroyed == [.proxyRemoved])
        guard let (_, t8) = p.connect(Self.one) else { return }
        #expect(t8.proxy == Self.a || t8.proxy == Self.b)
        // C, named by no list now and used by nothing, is freed at the cleanup.
        p.now += 60_000_000_000
        _ = p.send(.timerFired(.cleanup))
        #expect(p.ledger(Self.c) == nil)
        #expect(p.stats.closedByReason[.proxyRemoved] == 6)
        p.closeAndCheckAccounting()
    }
}

extension [PoolStateMachine.Action] {
    /// The dials among the actions, in order.
    var dials: [(SlotHandle, PoolStateMachine.DialTarget)] {
        compactMap { if case .dial(let slot, let target) = $0 { (slot, target) } else { nil } }
    }
}
