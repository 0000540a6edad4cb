import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolDriver
@testable import HotPoolStateMachine

/// What the fake driver and the callers know, kept from the actions alone.
struct PoolModel {
    enum State { case dialing, idle, leased, probing }
    struct Connection {
        let host: String
        /// The IP it was dialed to.
        let address: String
        var state: State
        /// Its callers' leases: one at most over HTTP/1.1, one per stream lease over HTTP/2.
        var leases: Set<LeaseHandle> = []
        /// An HTTP/1.1 exchange, or a health check or recovery probe (a request, or a PING), under way.
        var exchange = false
        /// The check under way is an HTTP/2 PING.
        var pinging = false
        /// An HTTP/2 connection's stream limit as the machine must take it (the server's, within
        /// 1...maxStreamsPerConnection); nil over HTTP/1.1.
        var streamLimit: Int?
        /// HTTP/2: the leases whose stream exchange is under way, and whether the machine aborted it.
        var streams: [LeaseHandle: Bool] = [:]
        /// HTTP/2: the server sent a GOAWAY (the driver reports it once, answers after it say so).
        var goAway = false
        /// HTTP/2: the connection broke (the server closed it, a protocol error, a flood).
        var broken = false
        /// The first fault that dooms it: it refuses requests, takes no new stream, and is
        /// destroyed without a close_notify.
        var doomed: CloseReason?
        /// Past a lifetime (`cleanupExpired`) while leased: it takes no new stream.
        var expired = false
        /// The machine had its socket closed.
        var socketClosed = false
        /// When its dial completed.
        var opened: Int64 = 0

        var multiplexed: Bool { streamLimit != nil }

        mutating func doom(_ reason: CloseReason) {
            if doomed == nil { doomed = reason }
        }
    }
    struct Caller {
        let host: String
        let pinnedIP: String?
        var pinned: Bool { pinnedIP != nil }
        /// The IPs its dials failed on.
        var failedIPs: [String] = []
        /// A `prewarm` or `refreshAddresses` caller: answered once, never leased.
        var asksForAnswer = false
        /// An `execute`: the driver asks for an exchange on its lease at once and puts it back
        /// when the exchange ends.
        var execute = false
        /// An `execute` asked again, after the server did not process its request (never twice).
        var retried = false
        let sequence: Int
        /// The dial started for it, if one is under way.
        var dial: SlotHandle?
    }
    var connections: [SlotHandle: Connection] = [:]
    var callers: [WaiterID: Caller] = [:]
    var held: [LeaseHandle: SlotHandle] = [:]
    /// The leases of `execute`s (the driver holds them): their host, and whether they were retried.
    var executes: [LeaseHandle: (host: String, retried: Bool)] = [:]
    /// Leases that ended, the latest 1,000 to 2,000: in order, and as a set.
    var ended: [LeaseHandle] = []
    var endedSet: Set<LeaseHandle> = []
    /// Handles of connections and dials that ended, the latest 100 to 200.
    var deadSlots: [SlotHandle] = []
    /// HTTP/2 exchanges whose lease ended under them during the current event: each must be reset.
    var abandoned: Set<LeaseHandle> = []
    var lookups: [Int32: HostKey] = [:]
    var timers: [PoolStateMachine.Timer: Int64] = [:]
    var closedByReason: [CloseReason: Int] = [:]
    var failedDials = 0
    /// Requests as the machine must count them: started or refused on a closed connection, less
    /// those the server did not process; and those that failed.
    var totalRequests = 0
    var failedRequests = 0
    var sequence = 0
    var closed = false
    /// Hosts a caller asked for that have addresses: `minIdlePerHost` keeps them warm, so
    /// their records live as long as the pool.
    var keptWarm: Set<String> = []

    mutating func endLease(_ lease: LeaseHandle) {
        held[lease] = nil
        executes[lease] = nil
        ended.append(lease)
        endedSet.insert(lease)
        if ended.count > 2_000 {
            for old in ended.prefix(1_000) { endedSet.remove(old) }
            ended.removeFirst(1_000)
        }
    }
}

/// One randomized run of the machine against `PoolModel`, with a fake driver that answers its
/// actions as `PoolDriver` does; `failures` counts broken rules (each also recorded as an issue).
///
/// The events that name an exchange are sent in one place (`requestExchange`) and the machine's
/// three answers to them read in one (`decided`).
struct ModelRun: ~Copyable {
    typealias Model = PoolModel
    typealias Event = PoolStateMachine.Event
    typealias Action = PoolStateMachine.Action

    static let hosts = ["s0.test", "s1.test", "dns.test", "192.0.2.9"]
    static let staticIPs = ["s0.test": ["192.0.2.1", "192.0.2.2", "192.0.2.3"], "s1.test": ["198.51.100.1", "198.51.100.2"]]

    /// What the fake driver does once the current event's actions ran (in order, as the driver's
    /// trampoline queues events).
    enum Owed {
        /// An event the driver reports (an abort's end, a failed stream's end...).
        case event(Event)
        /// An `execute`'s request, on the lease it was just given.
        case request(LeaseHandle)
        /// An `execute`'s lease, put back once its exchange ended (if the lease still runs).
        case putBack(LeaseHandle)
        /// An `execute` whose request the server did not process asks again for a connection.
        case retry(host: String)
    }

    let seed: UInt64
    var rng: SeededGenerator
    var h: MachineHarness
    var model = Model()
    /// Broken rules so far (a box, so `check` need not be mutating while it reads the run).
    let broken = Tally()
    var failures: Int { broken.count }
    /// What the run exercised.
    var leases = 0
    var destroyed = 0
    /// Leases of an HTTP/2 connection that other callers held too.
    var sharedLeases = 0
    var streamExchanges = 0
    var retriedRequests = 0
    var goAways = 0
    var pingsAnswered = 0
    var owed: [Owed] = []
    /// Callers that began to be served during the current event (a dial for them, or a lease
    /// that is not their own dial's).
    var startedServing: [WaiterID] = []
    /// Connections a put, a dial or a probe's end hands back: idle unless the actions say otherwise.
    var returning: [SlotHandle] = []
    /// Callers answered during the current event, as they were before the answer.
    var answeredThisEvent: [WaiterID: Model.Caller] = [:]
    /// The current event's answers to a `requestExchange`, and the lease it named.
    var decisions: [Action] = []
    var requesting: LeaseHandle?
    /// The id of the last `requestExchange` (each names a new request, as the driver's do).
    var lastExchangeID: UInt64 = 0
    /// What the fake driver does after the current event (appended to `owed` once its actions ran).
    var afterEvent: [Owed] = []
    /// The current event names a connection, lease or exchange that has ended: the machine must ignore it.
    var expectIgnored = false
    /// The actions of the last event sent (not of the events owed after it).
    var lastActions: [Action] = []

    static func configure(_ c: inout PoolStateMachine.Configuration) {
        c.maxConnections = 12
        c.maxConnectionsPerHost = 5
        c.maxIdleConnections = 6
        c.maxRetries = 2
        c.connectTimeout = 50
        c.acquireTimeout = 200
        c.idleTimeout = 300
        c.maxLifetime = 2_000
        c.validationTimeout = 40
        c.healthCheckInterval = 150
        c.cleanupInterval = 250
        c.blacklistTimeout = 500
        c.maxBlacklistTime = 2_000
        c.blacklistCheckInterval = 300
        c.dnsUpdateInterval = 700
        c.consecutiveFailuresToEject = 5
        // The 403s the fake driver answers HTTP/1.1 exchanges and probes with, and the 503s it
        // answers streams with, blacklist IPs as block signals too.
        c.blockSignals = .init(statuses: [403, 503], threshold: 2, window: 1_000)
        c.minIdlePerHost = 1
        c.maxAddressesPerLookup = 2
        c.probesWithRequest = true
        c.pingsIdleHTTP2Connections = true
        c.maxStreamsPerConnection = 4
        c.leaseWarningAfter = 400
    }

    init(seed: UInt64) {
        self.seed = seed
        rng = SeededGenerator(state: seed)
        h = MachineHarness(Self.configure)
        start()
    }

    mutating func start() {
        model = Model()
        h.now = 1_000
        apply(h.send(.start))
        for (host, ips) in Self.staticIPs { apply(h.send(.setAddresses(ips, host: host))) }
    }

    func check(_ condition: Bool, _ what: @autoclosure () -> String) {
        guard !condition else { return }
        broken.count += 1
        Issue.record("seed \(seed): \(what())")
    }

    // MARK: exchanges (the one place each)

    /// Asks for an exchange on `lease`, as a caller's round trip or an `execute` does: the
    /// machine must answer exactly once, as the model predicts (`send` checks).
    mutating func requestExchange(_ lease: LeaseHandle) {
        lastExchangeID += 1
        send(.requestExchange(ExchangeID(raw: lastExchangeID), on: lease, timeout: 30))
    }

    /// The answer the machine owes the request `id` on `lease` now: it names `id`.
    func predictedDecision(_ id: ExchangeID, on lease: LeaseHandle) -> Action {
        if model.closed { return .refuseExchange(id, .poolClosed) }
        guard let slot = model.held[lease], let c = model.connections[slot] else { return .refuseExchange(id, .staleConnection) }
        if c.multiplexed ? c.streams[lease] != nil : c.exchange { return .refuseExchange(id, .connectionBusy) }
        if c.doomed != nil { return .refuseExchange(id, .connectionClosed(host: c.host, ip: c.address)) }
        return c.multiplexed ? .startStreamExchange(id, lease) : .startExchange(id, slot)
    }

    /// The machine answered the `requestExchange` under way (`startExchange`,
    /// `startStreamExchange` or `refuseExchange`).
    mutating func decided(_ action: Action) {
        decisions.append(action)
        switch action {
        case .startExchange(_, let slot):
            model.connections[slot]?.exchange = true
            model.totalRequests += 1
        case .startStreamExchange(_, let lease):
            if let slot = model.held[lease] { model.connections[slot]?.streams[lease] = false }
            model.totalRequests += 1
            streamExchanges += 1
        case .refuseExchange(_, let error):
            if case .connectionClosed = error {
                model.totalRequests += 1
                model.failedRequests += 1
            }
            if let lease = requesting, model.executes[lease] != nil { afterEvent.append(.putBack(lease)) }
        default:
            break
        }
    }

    // MARK: events

    mutating func send(_ event: Event) {
        startedServing = []
        returning = []
        answeredThisEvent = [:]
        decisions = []
        requesting = nil
        afterEvent = []
        expectIgnored = false
        var predicted: Action?
        switch event {
        case .requestExchange(let id, let lease, _, _):
            requesting = lease
            predicted = predictedDecision(id, on: lease)
        case .release(let lease), .remove(let lease), .rejectValidation(let lease, _):
            leaseEnds(lease, event)
        case .dialed(let slot):
            opened(slot, streamLimit: nil)
        case .dialedMultiplexed(let slot, let limit):
            opened(slot, streamLimit: limit)
        case .streamLimitChanged(let slot, let limit):
            if model.connections[slot]?.multiplexed == true {
                model.connections[slot]!.streamLimit = effectiveLimit(limit)
            } else {
                expectIgnored = model.connections[slot] == nil
            }
        case .exchangeEnded(let slot, let outcome):
            exchangeEnds(slot, outcome)
        case .streamExchangeEnded(let lease, let outcome):
            streamExchangeEnds(lease, outcome)
        case .unreadInput(let slot, let reason):
            if var c = model.connections[slot] {
                // Idle: destroyed. Leased with nothing under way: it must go. A probe: ended by a flood.
                if c.state == .leased && !c.exchange { c.doom(reason) }
                model.connections[slot] = c
            } else {
                expectIgnored = true
            }
        case .timerFired(.cleanup):
            expire(olderThan: h.machine.configuration.maxLifetime)
        case .cleanupExpired(let lifetime):
            expire(olderThan: lifetime)
        case .close:
            model.keptWarm = []  // only while the pool is open
            model.closed = true
        case .dialFailed(let slot, _):
            let address = model.connections.removeValue(forKey: slot)?.address
            if address != nil { model.failedDials += 1 } else { expectIgnored = true }
            for (id, caller) in model.callers where caller.dial == slot {
                model.callers[id]!.dial = nil
                if let address { model.callers[id]!.failedIPs.append(address) }
            }
        default:
            break
        }
        let isCleanup = switch event {
        case .timerFired(.cleanup), .cleanupIdle: true
        default: false
        }
        let runningBlacklistings = isCleanup ? blacklistings() : []
        let countersBefore = expectIgnored ? counters() : []
        let actions = h.send(event)
        lastActions = actions
        apply(actions)
        if expectIgnored {
            check(actions.isEmpty && counters() == countersBefore, "an event naming what has ended acted: \(event) -> \(actions)")
        }
        for slot in returning where model.connections[slot]?.state == .leased && model.connections[slot]?.leases.isEmpty == true
            || model.connections[slot]?.state == .probing {
            model.connections[slot]!.state = .idle
        }
        if let predicted {
            check(decisions == [predicted], "requestExchange answered \(decisions), expected \(predicted)")
        } else {
            check(decisions.isEmpty, "exchange decisions with no requestExchange: \(decisions)")
        }
        check(model.abandoned.isEmpty, "the exchanges of ended stream leases not reset: \(model.abandoned)")
        model.abandoned = []
        owed += afterEvent
        checkRules()
        if isCleanup {
            checkIPsOutOfRotationFreed()
            check(runningBlacklistings.isSubset(of: blacklistings()), "a cleanup forgot a blacklisting that still runs")
        }
        while !owed.isEmpty { settle(owed.removeFirst()) }
    }

    /// Does what the fake driver owes.
    mutating func settle(_ owed: Owed) {
        switch owed {
        case .event(let event): send(event)
        case .request(let lease): requestExchange(lease)
        case .putBack(let lease): if model.held[lease] != nil { send(.release(lease)) }
        case .retry(let host):
            retriedRequests += 1
            acquire(host, execute: true, retried: true)
        }
    }

    /// The machine's counters, to tell that an event changed none.
    func counters() -> [Int] {
        let c = h.machine.counters
        return [c.totalRequests, c.failedRequests, c.failedDials, c.staleHandleUses, c.connectionsOpened]
            + CloseReason.allCases.map { c.closedByReason[$0, default: 0] }
    }

    /// A stream limit as the machine takes it.
    func effectiveLimit(_ limit: Int) -> Int {
        max(1, min(limit, h.machine.configuration.maxStreamsPerConnection))
    }

    /// A dial completed (over HTTP/2 with `streamLimit`).
    mutating func opened(_ slot: SlotHandle, streamLimit: Int?) {
        guard model.connections[slot]?.state == .dialing else {
            expectIgnored = model.connections[slot] == nil
            return
        }
        returning.append(slot)
        model.connections[slot]!.state = .leased
        model.connections[slot]!.opened = h.now
        if let streamLimit { model.connections[slot]!.streamLimit = effectiveLimit(streamLimit) }
    }

    /// A put, remove or failed validation of `lease` (a stale one changes nothing here).
    mutating func leaseEnds(_ lease: LeaseHandle, _ event: Event) {
        guard let slot = model.held[lease] else { return }
        model.endLease(lease)
        var c = model.connections[slot]!
        c.leases.remove(lease)
        let isRelease = if case .release = event { true } else { false }
        if c.multiplexed {
            // An exchange under way on its stream is abandoned: reset, and counted failed.
            if c.streams.removeValue(forKey: lease) != nil {
                model.failedRequests += 1
                model.abandoned.insert(lease)
            }
            // The other callers' streams run on; the connection goes with its last lease.
            if case .remove = event { c.doom(.removed) }
            if case .rejectValidation = event { c.doom(.validationFailed) }
            if isRelease && c.leases.isEmpty { returning.append(slot) }
        } else if isRelease {
            // Put back with its exchange under way: destroyed (the exchange counted failed then).
            if c.exchange { c.doom(.unhealthyOnReturn) }
            returning.append(slot)
        }
        model.connections[slot] = c
    }

    /// An HTTP/1.1 exchange, a probe or a PING ended.
    mutating func exchangeEnds(_ slot: SlotHandle, _ outcome: PoolStateMachine.ExchangeOutcome) {
        guard var c = model.connections[slot], c.exchange else {
            expectIgnored = model.connections[slot] == nil
            return
        }
        let probe = c.state == .probing
        c.exchange = false
        if c.pinging { pingsAnswered += 1 }
        c.pinging = false
        if probe { returning.append(slot) }
        switch outcome {
        case .answered(_, let unusable), .acknowledged(let unusable): if let unusable { c.doom(unusable) }
        case .failed, .streamFailed, .notProcessed, .abandoned:
            c.doom(.unhealthyOnReturn)
            if !probe { model.failedRequests += 1 }
        }
        model.connections[slot] = c
        if !probe, let lease = c.leases.first, model.executes[lease] != nil { afterEvent.append(.putBack(lease)) }
    }

    /// A stream's exchange ended; one that has ended already (its lease, its connection) is ignored.
    mutating func streamExchangeEnds(_ lease: LeaseHandle, _ outcome: PoolStateMachine.ExchangeOutcome) {
        guard let slot = model.held[lease], var c = model.connections[slot], c.streams.removeValue(forKey: lease) != nil else {
            expectIgnored = true
            return
        }
        switch outcome {
        case .answered(_, let unusable), .acknowledged(let unusable): if let unusable { c.doom(unusable) }
        case .failed:
            // The connection broke (or the exchange passed its deadline): it must go.
            model.failedRequests += 1
            c.doom(.unhealthyOnReturn)
        case .streamFailed, .abandoned:
            model.failedRequests += 1
        case .notProcessed:
            model.totalRequests -= 1
        }
        model.connections[slot] = c
        guard let execute = model.executes[lease] else { return }
        afterEvent.append(.putBack(lease))
        if case .notProcessed = outcome {
            check(!execute.retried, "a request retried twice")
            afterEvent.append(.retry(host: execute.host))
        }
    }

    /// Connections leased (or probed) past `lifetime` take no new stream and go when returned.
    mutating func expire(olderThan lifetime: Int64) {
        for (slot, c) in model.connections where (c.state == .leased || c.state == .probing) && h.now - c.opened >= lifetime {
            model.connections[slot]!.expired = true
        }
    }

    /// A new caller: a get (an `execute` with `execute`) of `host`.
    mutating func acquire(_ host: String, pinned: String? = nil, execute: Bool = false, retried: Bool = false) {
        let id = h.newWaiter()
        model.sequence += 1
        model.callers[id] = .init(host: host, pinnedIP: pinned, execute: execute, retried: retried, sequence: model.sequence)
        asked(host)
        send(.acquire(id, .init(key: HostKey(name: host, port: 443), pinnedIP: pinned, nameIsAddress: host == "192.0.2.9")))
    }

    /// The blacklistings still running, as host name and address (DNS may have dropped the IP).
    func blacklistings() -> Set<[String]> {
        let store = h.machine.hostStore
        var running = Set<[String]>()
        for host in store.hostIDs {
            for ip in store[host: host].ipRecords where store[ip: ip].blacklistReason != nil && store[ip: ip].blacklistedUntil > h.now {
                running.insert([store[host: host].key.name, store[ip: ip].address])
            }
        }
        return running
    }

    /// A caller asked for `host`: one with set or literal addresses is kept warm from now on
    /// (dns.test once a lookup of it answers).
    mutating func asked(_ host: String) {
        if Self.staticIPs[host] != nil || host == "192.0.2.9" { model.keptWarm.insert(host) }
    }

    // MARK: actions

    mutating func apply(_ actions: [Action]) {
        for action in actions {
            switch action {
            case .resolve(let id, let key):
                model.lookups[id] = key
            case .dial(let slot, let target):
                check(model.connections[slot] == nil, "dial on a live slot \(slot)")
                model.connections[slot] = .init(host: target.key.name, address: target.address, state: .dialing)
                if let waiter = h.machine.table.dialer[Int(slot.slot)].caller, model.callers[waiter] != nil {
                    model.callers[waiter]!.dial = slot
                    startedServing.append(waiter)
                }
            case .lease(let id, let lease):
                leased(id, lease)
            case .fail(let id, _):
                let caller = model.callers.removeValue(forKey: id)
                check(caller != nil, "waiter \(id.raw) answered twice or never asked")
            case .reportAddresses(let id, _), .reportReady(let id, _):
                let caller = model.callers.removeValue(forKey: id)
                check(caller?.asksForAnswer == true, "caller \(id.raw) answered twice, never asked, or not for an answer")
            case .reportLookupFailure:
                break
            case .startExchange, .startStreamExchange, .refuseExchange:
                decided(action)
            case .probe(let slot):
                // An idle HTTP/1.1 connection's health check (an HTTP/2 one gets a PING), or a recovery dial's probe.
                guard let c = model.connections[slot] else { check(false, "probe of a dead slot"); continue }
                check((c.state == .idle && !c.multiplexed) || (c.state == .leased && c.leases.isEmpty),
                      "probe of a connection that is neither an idle HTTP/1.1 one nor a fresh dial")
                model.connections[slot]!.state = .probing
                model.connections[slot]!.exchange = true
                returning.removeAll { $0 == slot }  // a recovery dial probed: not idle yet
            case .ping(let slot):
                check(model.connections[slot]?.state == .idle && model.connections[slot]?.multiplexed == true,
                      "PING of a connection that is not an idle HTTP/2 one")
                model.connections[slot]?.state = .probing
                model.connections[slot]?.exchange = true
                model.connections[slot]?.pinging = true
            case .closeSocket(let slot, let notify):
                guard var c = model.connections[slot] else { continue }  // a dial that failed
                check(c.doomed != nil, "the socket of a sound connection closed")
                check(c.streams.isEmpty && !(c.exchange && c.state == .leased), "a socket closed with an exchange under way")
                check(notify == (c.doomed == .remoteClosed), "close_notify \(notify) for a connection doomed by \(String(describing: c.doomed))")
                check(!c.socketClosed, "a socket closed twice")
                c.socketClosed = true
                model.connections[slot] = c
            case .abort(let slot):
                guard let connection = model.connections[slot] else { check(false, "abort of a dead slot"); continue }
                if connection.state == .dialing {
                    owed.append(.event(.dialFailed(slot, .timeout(host: connection.host, ip: nil, phase: .connect))))
                } else {
                    check(connection.exchange, "abort with nothing under way")
                    owed.append(.event(.exchangeEnded(slot, .failed)))
                }
            case .abortStreamExchange(let lease):
                // The driver resets the stream and reports its end (ignored if its lease ended).
                if model.abandoned.remove(lease) == nil {
                    guard let slot = model.held[lease], model.connections[slot]?.streams[lease] == false else {
                        check(false, "abort of a stream exchange not under way, or aborted twice")
                        continue
                    }
                    model.connections[slot]!.streams[lease] = true
                }
                owed.append(.event(.streamExchangeEnded(lease, .failed)))
            case .destroy(let destruction):
                destroyedConnection(destruction)
            case .armTimer(let timer, let at):
                check(at >= h.now, "timer armed in the past")
                model.timers[timer] = at
            case .reportLongLease(let slot, _):
                check(model.connections[slot]?.state == .leased, "long lease reported for a connection not leased")
            case .shareBlacklisting, .shareRecovery:
                check(false, "a lone machine reported a decision for other reactors")
            }
        }
    }

    /// A lease handed to a caller: within the connection's stream limit, and a new stream only on
    /// a connection that may take one.
    mutating func leased(_ id: WaiterID, _ lease: LeaseHandle) {
        let caller = model.callers.removeValue(forKey: id)
        check(caller != nil, "waiter \(id.raw) answered twice or never asked")
        let slot = SlotHandle(slot: lease.slot, generation: h.machine.table.generation[Int(lease.slot)])
        guard var c = model.connections[slot], c.state != .dialing else {
            check(false, "lease of a slot that is not an open connection")
            return
        }
        if let caller {
            answeredThisEvent[id] = caller
            if caller.dial != slot { startedServing.append(id) }
        }
        check(model.held[lease] == nil && !model.endedSet.contains(lease), "a lease number reused")
        if let limit = c.streamLimit {
            if !c.leases.isEmpty {
                check(c.state == .leased && c.doomed == nil && !c.expired,
                      "a new stream on a connection that must go (\(String(describing: c.doomed))) or is past its lifetime (\(c.expired))")
                sharedLeases += 1
            }
            check(c.leases.count < limit, "a stream lease over the limit \(limit)")
        } else {
            check(c.leases.isEmpty, "an HTTP/1.1 connection leased twice")
        }
        c.state = .leased
        c.leases.insert(lease)
        check(c.leases.count <= h.machine.configuration.maxStreamsPerConnection, "more stream leases than maxStreamsPerConnection")
        model.connections[slot] = c
        model.held[lease] = slot
        leases += 1
        if let caller, caller.execute {
            model.executes[lease] = (caller.host, caller.retried)
            owed.append(.request(lease))
        }
    }

    /// A connection or dial destroyed: counted once, in its reason; what was under way on it failed.
    mutating func destroyedConnection(_ destruction: PoolStateMachine.Destruction) {
        guard let c = model.connections.removeValue(forKey: destruction.handle) else {
            check(false, "destroy of a slot that is not live: \(destruction)")
            return
        }
        let dial = c.state == .dialing
        check(dial == (destruction.reason == nil), "a dial counted as a connection or back")
        if let reason = destruction.reason { model.closedByReason[reason, default: 0] += 1 } else { model.failedDials += 1 }
        check(dial || destruction.sendCloseNotify == (c.doomed == nil),
              "close_notify \(destruction.sendCloseNotify) for a connection doomed by \(String(describing: c.doomed))")
        // A caller's exchange under way fails (a probe is no request).
        model.failedRequests += c.streams.count + (c.exchange && c.state == .leased ? 1 : 0)
        for lease in c.leases { model.endLease(lease) }
        // The driver fails the streams under way; their ends reach a machine that has freed the slot.
        for lease in c.streams.keys { owed.append(.event(.streamExchangeEnded(lease, .failed))) }
        for (id, caller) in model.callers where caller.dial == destruction.handle { model.callers[id]!.dial = nil }
        model.deadSlots.append(destruction.handle)
        if model.deadSlots.count > 200 { model.deadSlots.removeFirst(100) }
        destroyed += 1
    }

    // MARK: rules

    mutating func checkRules() {
        let c = h.machine.configuration, table = h.machine.table
        var idle = 0, active = 0, dialing = 0
        var perHost: [String: Int] = [:]
        for (handle, connection) in model.connections {
            perHost[connection.host, default: 0] += 1
            switch connection.state {
            case .idle: idle += 1
            case .leased, .probing: active += 1
            case .dialing: dialing += 1
            }
            check(connection.state != .leased || !connection.leases.isEmpty, "a leased connection no caller holds")
            if let limit = connection.streamLimit {
                let s = Int(handle.slot)
                check(Int(table.streamLimit[s]) == limit && Int(table.streams[s]) == connection.leases.count,
                      "slot \(handle.slot): the machine has \(table.streams[s]) of \(table.streamLimit[s]) streams, the model \(connection.leases.count) of \(limit)")
            }
        }
        check(model.connections.count <= c.maxConnections, "global cap: \(model.connections.count)")
        for (host, count) in perHost { check(count <= c.maxConnectionsPerHost, "host cap of \(host)") }
        check(idle <= c.maxIdleConnections, "idle cap")
        let stats = h.stats
        check(stats.idleConnections == idle, "idle: machine \(stats.idleConnections), model \(idle)")
        check(stats.activeConnections == active, "active: machine \(stats.activeConnections), model \(active)")
        check(stats.dialingConnections == dialing, "dialing")
        check(stats.failedDials == model.failedDials, "failed dials: \(stats.failedDials) vs \(model.failedDials)")
        for reason in CloseReason.allCases {
            check(stats.closedByReason[reason] == model.closedByReason[reason, default: 0], "closed \(reason)")
        }
        check(stats.totalRequests == model.totalRequests && stats.failedRequests == model.failedRequests,
              "requests: machine \(stats.totalRequests) (\(stats.failedRequests) failed), model \(model.totalRequests) (\(model.failedRequests) failed)")
        for lease in model.held.keys { check(h.machine.isCurrent(lease), "a held lease the machine has ended") }
        // Per host, no caller still waits in the queue behind a later one who began to be served.
        for id in startedServing {
            guard let served = model.callers[id] ?? answeredThisEvent[id], !served.pinned else { continue }
            let overtaken = model.callers.values.contains { waiting in
                waiting.host == served.host && !waiting.pinned && !waiting.asksForAnswer && waiting.dial == nil
                    && waiting.sequence < served.sequence
            }
            check(!overtaken, "a later caller of \(served.host) was served before an earlier one still waiting")
        }
        for host in model.keptWarm {
            check(!h.machine.hostStore.hostIDs(named: host).isEmpty, "the record of \(host), kept warm by minIdlePerHost, was reclaimed")
        }
        checkIPReferences()
        checkBlockAnswersBounded()
    }

    /// No IP keeps the instants of more block answers than the policy's threshold.
    func checkBlockAnswersBounded() {
        guard let threshold = h.machine.configuration.blockSignals?.threshold else { return }
        let store = h.machine.hostStore
        for host in store.hostIDs {
            for ip in store[host: host].ipRecords {
                let kept = store[ip: ip].recentBlockAnswers.count(within: .max, at: h.now)
                check(kept <= threshold, "\(store[ip: ip].address) keeps \(kept) block answers, over the threshold \(threshold)")
            }
        }
    }

    /// Every IP record id the machine holds names the record it was given for (same host, same
    /// address): none was freed, and perhaps reused, while a connection, a dial or a waiter
    /// still referred to it.
    func checkIPReferences() {
        let store = h.machine.hostStore, table = h.machine.table
        func names(_ ip: Int32, host: Int32, _ address: String) -> Bool {
            store[ip: ip].host == host && store[ip: ip].address == address && store[host: host].ipRecords.contains(ip)
        }
        for (handle, connection) in model.connections {
            let s = Int(handle.slot)
            check(names(table.ipID[s], host: table.hostID[s], connection.address), "slot \(handle.slot) refers to a freed IP record")
        }
        for (id, waiter) in h.machine.waiters.waiters {
            guard let caller = model.callers[id] else { check(false, "waiter \(id.raw) unknown to the model"); continue }
            let pinnedOK = switch (caller.pinnedIP, waiter.pinnedIP) {
            case (nil, nil): true
            case (let address?, let ip?): names(ip, host: waiter.host, address)
            default: false
            }
            check(pinnedOK, "waiter \(id.raw)'s pinned IP record is not its pinned IP's")
            check(waiter.failedIPs.count == caller.failedIPs.count
                  && zip(waiter.failedIPs, caller.failedIPs).allSatisfy { names($0, host: waiter.host, $1) },
                  "waiter \(id.raw)'s failed IP records are not the IPs its dials failed on")
        }
        for ip in store.ipsOutOfRotation {
            check(store[ip: ip].host >= 0 && !store[host: store[ip: ip].host].ipIDs.contains(ip), "a record out of rotation is in its host's rotation")
        }
        for host in store.hostIDs {
            for ip in store[host: host].ipRecords where !store[host: host].ipIDs.contains(ip) {
                check(store.ipsOutOfRotation.contains(ip), "the record of \(store[ip: ip].address), out of rotation, will never be freed")
            }
        }
    }

    /// After a cleanup, the record of an IP out of its host's rotation (DNS dropped it, or only a
    /// pinned caller or a manual rule named it) is left only while a connection or dial goes to
    /// it, a caller pinned to it or whose dial failed on it waits, or its blacklisting runs.
    func checkIPsOutOfRotationFreed() {
        let store = h.machine.hostStore
        for host in store.hostIDs {
            let name = store[host: host].key.name
            for ip in store[host: host].ipRecords where !store[host: host].ipIDs.contains(ip) {
                let record = store[ip: ip]
                let used = model.connections.values.contains { $0.host == name && $0.address == record.address }
                    || model.callers.values.contains { $0.host == name && ($0.pinnedIP == record.address || $0.failedIPs.contains(record.address)) }
                check(used || (record.blacklistReason != nil && record.blacklistedUntil > h.now),
                      "the record of \(record.address), out of rotation and unused, outlived the cleanup")
            }
        }
    }

    // MARK: the random events

    /// A random live connection `matches` accepts, if any.
    mutating func randomConnection(where matches: (Model.Connection) -> Bool) -> SlotHandle? {
        var chosen: SlotHandle?, seen = 0
        for (handle, connection) in model.connections where matches(connection) {
            seen += 1
            if Int.random(in: 0..<seen, using: &rng) == 0 { chosen = handle }
        }
        return chosen
    }

    /// A random lease a caller (not an `execute`, whose lease the driver holds) holds.
    mutating func randomCallerLease() -> LeaseHandle? {
        var chosen: LeaseHandle?, seen = 0
        for lease in model.held.keys where model.executes[lease] == nil {
            seen += 1
            if Int.random(in: 0..<seen, using: &rng) == 0 { chosen = lease }
        }
        return chosen
    }

    mutating func step(_ step: Int) {
        let roll = Int.random(in: 0..<110, using: &rng)
        switch roll {
        case 0..<18:
            let host = Self.hosts.randomElement(using: &rng)!
            var pinned: String?
            if host == "s0.test" && Int.random(in: 0..<7, using: &rng) == 0 {
                pinned = ["192.0.2.2", "203.0.113.7"].randomElement(using: &rng)
            } else if host == "dns.test" && Int.random(in: 0..<7, using: &rng) == 0 {
                pinned = ["203.0.113.1", "203.0.113.4"].randomElement(using: &rng)  // DNS gives them, then drops them
            }
            // One unpinned caller in four is an `execute`, whose exchange the driver runs.
            acquire(host, pinned: pinned, execute: pinned == nil && Int.random(in: 0..<4, using: &rng) == 0)
        case 18..<22:
            if let id = model.callers.keys.randomElement(using: &rng) { send(.cancel(id)) }
        case 22..<34:
            if let lease = randomCallerLease() { send(.release(lease)) }
        case 34..<36:
            if let lease = randomCallerLease() { send(.remove(lease)) }
        case 36..<38:
            staleEvent()
        case 38..<46:
            if let lease = randomCallerLease() { requestExchange(lease) }
        case 46..<56:
            // An HTTP/1.1 exchange, a probe or a PING ends.
            guard let slot = randomConnection(where: \.exchange) else { break }
            let c = model.connections[slot]!
            let outcome: PoolStateMachine.ExchangeOutcome
            if c.pinging {
                outcome = Int.random(in: 0..<5, using: &rng) == 0 ? .failed : .acknowledged(unusable: c.goAway ? .remoteClosed : nil)
            } else {
                outcome = switch Int.random(in: 0..<10, using: &rng) {
                case 0: .failed
                case 1: .answered(status: 403, unusable: c.goAway ? .remoteClosed : nil)
                case 2: .answered(status: 500, unusable: c.goAway ? .remoteClosed : nil)
                case 3: .answered(status: 200, unusable: .remoteClosed)
                case 4 where c.state != .probing: .abandoned  // a streamed body cut short by its caller
                default: .answered(status: 200, unusable: c.goAway ? .remoteClosed : nil)
                }
            }
            send(.exchangeEnded(slot, outcome))
        case 56..<66:
            // Half the dials become HTTP/2 connections, with the server's stream limit (some over
            // maxStreamsPerConnection).
            guard let slot = randomConnection(where: { $0.state == .dialing }) else { break }
            if Bool.random(using: &rng) {
                send(.dialedMultiplexed(slot, streamLimit: [1, 2, 3, 4, 6, 100].randomElement(using: &rng)!))
            } else {
                send(.dialed(slot))
            }
        case 66..<70:
            if let slot = randomConnection(where: { $0.state == .dialing }) {
                send(.dialFailed(slot, .connectFailed(host: "h", ip: "i", reason: "refused")))
            }
        case 70..<72:
            if let lease = randomCallerLease() {
                send(.rejectValidation(lease, status: Bool.random(using: &rng) ? 403 : 500))
            }
        case 72..<74:
            // Input on an HTTP/1.1 connection nobody reads (HTTP/2's: below).
            if Bool.random(using: &rng), let slot = randomConnection(where: { $0.state == .probing && !$0.multiplexed }) {
                send(.unreadInput(slot, .unsolicitedData))  // a flood during a health check or a recovery probe
            } else if let slot = randomConnection(where: {
                !$0.multiplexed && !$0.socketClosed && ($0.state == .idle || ($0.state == .leased && !$0.exchange))
            }) {
                send(.unreadInput(slot, .remoteClosed))
            }
        case 74..<76:
            if let (id, key) = model.lookups.randomElement(using: &rng) {
                model.lookups[id] = nil
                // The last answer is longer than maxAddressesPerLookup.
                let answers = [["203.0.113.1", "203.0.113.2"], ["203.0.113.2", "203.0.113.3"], ["203.0.113.1"],
                               ["203.0.113.3", "203.0.113.1", "203.0.113.4"]]
                let answer: Result<[String], HotPoolError> = Int.random(in: 0..<4, using: &rng) == 0
                    ? .failure(.noAddresses(host: key.name, reason: "NXDOMAIN")) : .success(answers.randomElement(using: &rng)!)
                if case .success = answer { model.keptWarm.insert(key.name) }
                send(.resolved(hostID: id, answer))
                if case .success(let addresses) = answer {
                    let store = h.machine.hostStore
                    let rotation = store[host: id].ipIDs.map { store[ip: $0].address }
                    check(rotation == Array(addresses.prefix(h.machine.configuration.maxAddressesPerLookup)),
                          "rotation \(rotation) after the answer \(addresses)")
                }
            }
        case 76..<86:
            h.now += Int64.random(in: 0...30, using: &rng)
            for (timer, at) in model.timers.sorted(by: { $0.value < $1.value }) where at <= h.now {
                model.timers[timer] = nil
                send(.timerFired(timer))
            }
        case 86..<88:
            send(Bool.random(using: &rng) ? .cleanupIdle : .cleanupExpired(maxLifetime: Int64.random(in: 1...3_000, using: &rng)))
        case 88:
            let ips = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
            send(.setAddresses(Array(ips.prefix(Int.random(in: 1...3, using: &rng))), host: "s1.test"))
        case 89:
            // A prewarm or a refresh, answered exactly once.
            let host = Self.hosts.randomElement(using: &rng)!
            let id = h.newWaiter()
            model.sequence += 1
            model.callers[id] = .init(host: host, pinnedIP: nil, asksForAnswer: true, sequence: model.sequence)
            asked(host)
            let request = PoolStateMachine.AcquireRequest(key: HostKey(name: host, port: 443), pinnedIP: nil, nameIsAddress: host == "192.0.2.9")
            send(Bool.random(using: &rng) ? .prewarm(id, request, count: Int.random(in: 0...6, using: &rng)) : .refresh(id, request))
        case 90:
            let ip = ["192.0.2.1", "192.0.2.2", "203.0.113.1", "203.0.113.2"].randomElement(using: &rng)!
            let host = ip.hasPrefix("192") ? "s0.test" : "dns.test"
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: send(.blacklistManually(address: ip, host: host, period: Int64.random(in: 1...600, using: &rng)))
            case 1: send(.unblacklist(address: ip, host: host))
            case 2: send(.allowOnly(Bool.random(using: &rng) ? [ip] : nil, host: host))
            default: send(.allowOnly(nil, host: host))
            }
        case 91..<100:
            h.now += Int64.random(in: 0...3, using: &rng)
        case 100..<106:
            streamExchangeEnds()
        case 106:
            // The server's GOAWAY, reported once: no new stream, those under way run to their end.
            guard let slot = randomConnection(where: { $0.multiplexed && !$0.socketClosed && !$0.broken && !$0.goAway && $0.state != .dialing })
            else { break }
            model.connections[slot]!.goAway = true
            goAways += 1
            send(.unreadInput(slot, .remoteClosed))
        case 107:
            // The connection breaks: the server closes it or breaks the protocol, or floods it.
            if let slot = randomConnection(where: { $0.multiplexed && !$0.socketClosed && !$0.broken && $0.state != .dialing }) {
                http2ConnectionBroke(slot, [.networkError, .remoteClosed, .unsolicitedData].randomElement(using: &rng)!)
            }
        default:
            // The server's SETTINGS change its stream limit (0 is taken as 1, 100 as maxStreamsPerConnection).
            if let slot = randomConnection(where: { $0.multiplexed && !$0.socketClosed && !$0.broken && $0.state != .dialing }) {
                send(.streamLimitChanged(slot, [0, 1, 2, 3, 5, 100].randomElement(using: &rng)!))
            }
        }
    }

    /// A stream's exchange ends as the server answers it: a response (saying, after a GOAWAY, that
    /// the connection takes no further request), a reset, or a refusal, which the driver retries
    /// elsewhere once for an `execute` (the machine hears `notProcessed`) and fails otherwise.
    mutating func streamExchangeEnds() {
        var chosen: (LeaseHandle, goAway: Bool)?, seen = 0
        for connection in model.connections.values where !connection.streams.isEmpty {
            for (lease, aborted) in connection.streams where !aborted {
                seen += 1
                if Int.random(in: 0..<seen, using: &rng) == 0 { chosen = (lease, connection.goAway) }
            }
        }
        guard let (lease, goAway) = chosen else { return }
        let unusable: CloseReason? = goAway ? .remoteClosed : nil
        let outcome: PoolStateMachine.ExchangeOutcome = switch Int.random(in: 0..<10, using: &rng) {
        case 0..<6: .answered(status: 200, unusable: unusable)
        case 6: .answered(status: 503, unusable: unusable)
        case 7: .streamFailed
        case 8: .abandoned
        default: model.executes[lease]?.retried == false ? .notProcessed : .streamFailed  // REFUSED_STREAM
        }
        send(.streamExchangeEnded(lease, outcome))
    }

    /// An HTTP/2 connection broke (the server closed it, a protocol error, or a flood: the
    /// `reason`), as the driver reports it: a flood first of all; then a check under way (a
    /// PING, or a recovery probe's request) fails; then, with no exchange under way, the machine
    /// hears why, and otherwise each exchange fails.
    mutating func http2ConnectionBroke(_ slot: SlotHandle, _ reason: CloseReason) {
        model.connections[slot]!.broken = true
        if reason == .unsolicitedData {
            send(.unreadInput(slot, reason))
            guard model.connections[slot] != nil else { return }
        }
        if model.connections[slot]!.state == .probing {
            send(.exchangeEnded(slot, .failed))
            guard model.connections[slot] != nil else { return }
        }
        let streams = model.connections[slot]!.streams.keys
        if streams.isEmpty { return send(.unreadInput(slot, reason)) }
        for lease in streams { send(.streamExchangeEnded(lease, .failed)) }
    }

    /// A handle whose lease or connection has ended: a put, remove, failed validation or request
    /// is refused and counted; the end of an exchange, input, a stream limit or a dial's end that
    /// names it is ignored (`send` checks those).
    mutating func staleEvent() {
        let roll = Int.random(in: 0..<9, using: &rng)
        if roll >= 5 {
            guard let dead = model.deadSlots.randomElement(using: &rng) else { return }
            check(model.connections[dead] == nil, "a dead slot is live")
            switch roll {
            case 5: send(.unreadInput(dead, .remoteClosed))
            case 6: send(.streamLimitChanged(dead, 2))
            case 7: send(.exchangeEnded(dead, .failed))
            default: send(.dialedMultiplexed(dead, streamLimit: 3))
            }
            return
        }
        guard let stale = model.ended.randomElement(using: &rng) else { return }
        check(model.held[stale] == nil, "an ended lease is held")
        let before = h.stats.staleHandleUses
        switch roll {
        case 0: send(.release(stale))
        case 1: send(.remove(stale))
        case 2: send(.rejectValidation(stale, status: 500))
        case 3:
            requestExchange(stale)  // refused as stale (`send` checks)
            check(h.stats.staleHandleUses == before + 1, "a stale handle's request not counted")
            return
        default:
            send(.streamExchangeEnded(stale, .answered(status: 200, unusable: nil)))  // ignored, not counted
            return
        }
        check(lastActions.isEmpty, "a stale handle acted: \(lastActions)")
        check(h.stats.staleHandleUses == before + 1, "a stale handle not counted")
    }

    /// Closes the pool: every caller answered, every connection and dial destroyed once; then a fresh pool.
    mutating func closeAndRestart() {
        send(.close)
        check(model.callers.isEmpty, "\(model.callers.count) callers never answered")
        check(model.connections.isEmpty && model.held.isEmpty, "\(model.connections.count) connections left after close")
        let stats = h.stats
        check(stats.connectionsOpened == stats.closedByReason.values.reduce(0, +), "every opened connection destroyed once")
        h = MachineHarness(Self.configure)
        start()
    }
}

/// A count a non-mutating method can raise.
final class Tally {
    var count = 0
}
