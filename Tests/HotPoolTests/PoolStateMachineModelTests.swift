import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolDriver
@testable import HotPoolHTTP
@testable import HotPoolIO
@testable import HotPoolStateMachine

/// The state machine against a small reference model, over a million random events: a fake
/// driver answers its actions (dials complete or fail, exchanges end, lookups answer, timers
/// fire as the test's clock moves), and after every event the model's own books are compared
/// with the machine's and with the rules.
@Suite struct PoolStateMachineModelTests {
    typealias Action = PoolStateMachine.Action
    typealias Event = PoolStateMachine.Event

    /// What the fake driver and the callers know, kept from the actions alone.
    struct Model {
        enum State { case dialing, idle, leased, probing }
        struct Connection {
            let host: String
            /// The IP it was dialed to.
            let address: String
            var state: State
            /// The caller's lease, while a caller holds it.
            var lease: LeaseHandle?
            var exchange = false
        }
        struct Caller {
            let host: String
            let pinnedIP: String?
            var pinned: Bool { pinnedIP != nil }
            /// The IPs its dials failed on.
            var failedIPs: [String] = []
            /// A `prewarm` or `refreshAddresses` caller: answered once, never leased.
            var asksForAnswer = false
            let sequence: Int
            /// The dial started for it, if one is under way.
            var dial: SlotHandle?
        }
        var connections: [SlotHandle: Connection] = [:]
        var callers: [WaiterID: Caller] = [:]
        var held: [LeaseHandle: SlotHandle] = [:]
        var ended: [LeaseHandle] = []
        var lookups: [Int32: HostKey] = [:]
        var timers: [PoolStateMachine.Timer: Int64] = [:]
        var closedByReason: [CloseReason: Int] = [:]
        var failedDials = 0
        var sequence = 0
        /// Hosts a caller asked for that have addresses: `minIdlePerHost` keeps them warm, so
        /// their records live as long as the pool.
        var keptWarm: Set<String> = []

        func count(_ state: State) -> Int { connections.values.filter { $0.state == state }.count }
    }

    static let hosts = ["s0.test", "s1.test", "dns.test", "192.0.2.9"]
    static let staticIPs = ["s0.test": ["192.0.2.1", "192.0.2.2", "192.0.2.3"], "s1.test": ["198.51.100.1", "198.51.100.2"]]

    @Test func randomizedEventsKeepEveryRuleOfAReferenceModel() {
        let total = Int(environment("HOTPOOL_MACHINE_EVENTS") ?? "") ?? 1_000_000
        let seed = environment("HOTPOOL_MACHINE_SEED").flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        var run = ModelRun(seed: seed)
        for step in 0..<total {
            run.step(step)
            if run.failures > 0 { break }
            if step % 50_000 == 49_999 { run.closeAndRestart() }
        }
        run.closeAndRestart()
        #expect(run.failures == 0, "seed \(seed)")
        // (IPs stay blacklisted until a recovery probe passes, so a share of gets fail.)
        #expect(run.leases > total / 40 && run.destroyed > total / 100, "the run exercised the pool (seed \(seed)): \(run.leases) leases, \(run.destroyed) destroyed")
    }
}

/// One randomized run; `failures` counts broken rules (each also recorded as an issue).
struct ModelRun: ~Copyable {
    typealias Model = PoolStateMachineModelTests.Model
    let seed: UInt64
    var rng: SeededGenerator
    var h: MachineHarness
    var model = Model()
    /// Broken rules so far (a box, so `check` need not be mutating while it reads the run).
    let broken = Tally()
    var failures: Int { broken.count }
    var leases = 0
    var destroyed = 0
    /// Responses the fake driver owes (to aborts), handled before the next random event.
    var owed: [PoolStateMachine.Event] = []
    /// Callers that began to be served during the current event (a dial for them, or a lease
    /// that is not their own dial's).
    var startedServing: [WaiterID] = []
    /// Connections a put, a dial or a probe's end hands back: idle unless the actions say otherwise.
    var returning: [SlotHandle] = []
    /// Callers answered during the current event, as they were before the answer.
    var answeredThisEvent: [WaiterID: Model.Caller] = [:]

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
        c.minIdlePerHost = 1
        c.maxAddressesPerLookup = 2
        c.probesWithRequest = true
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
        for (host, ips) in PoolStateMachineModelTests.staticIPs { apply(h.send(.setAddresses(ips, host: host))) }
    }

    func check(_ condition: Bool, _ what: @autoclosure () -> String) {
        guard !condition else { return }
        broken.count += 1
        Issue.record("seed \(seed): \(what())")
    }

    mutating func send(_ event: PoolStateMachine.Event) {
        startedServing = []
        returning = []
        answeredThisEvent = [:]
        switch event {
        case .release(let lease), .remove(let lease), .rejectValidation(let lease, _):
            if let slot = model.held.removeValue(forKey: lease) {
                model.ended.append(lease)
                model.connections[slot]?.lease = nil
                if case .release = event { returning.append(slot) }
            }
        case .dialed(let slot):
            returning.append(slot)
            model.connections[slot]?.state = .leased
        case .exchangeEnded(let slot, _):
            model.connections[slot]?.exchange = false
            if model.connections[slot]?.state == .probing { returning.append(slot) }
        case .close:
            model.keptWarm = []  // only while the pool is open
        case .dialFailed(let slot, _):
            let address = model.connections.removeValue(forKey: slot)?.address
            if address != nil { model.failedDials += 1 }
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
        apply(h.send(event))
        for slot in returning where model.connections[slot]?.state == .leased && model.connections[slot]?.lease == nil
            || model.connections[slot]?.state == .probing {
            model.connections[slot]!.state = .idle
        }
        checkRules()
        if isCleanup {
            checkIPsOutOfRotationFreed()
            check(runningBlacklistings.isSubset(of: blacklistings()), "a cleanup forgot a blacklisting that still runs")
        }
        while !owed.isEmpty { send(owed.removeFirst()) }
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
        if PoolStateMachineModelTests.staticIPs[host] != nil || host == "192.0.2.9" { model.keptWarm.insert(host) }
    }

    mutating func apply(_ actions: [PoolStateMachine.Action]) {
        for action in actions {
            switch action {
            case .resolve(let id, let key):
                model.lookups[id] = key
            case .dial(let slot, let target):
                check(model.connections[slot] == nil, "dial on a live slot \(slot)")
                model.connections[slot] = .init(host: target.key.name, address: target.address, state: .dialing)
                let dialer = h.machine.table.dialer[Int(slot.slot)]
                if let waiter = dialer.caller, model.callers[waiter] != nil {
                    model.callers[waiter]!.dial = slot
                    startedServing.append(waiter)
                }
            case .lease(let id, let lease):
                check(model.callers[id] != nil, "waiter \(id.raw) answered twice or never asked")
                let slot = SlotHandle(slot: lease.slot, generation: h.machine.table.generation[Int(lease.slot)])
                check(model.connections[slot] != nil && model.connections[slot]!.lease == nil, "lease of a slot not free to lease")
                if let caller = model.callers.removeValue(forKey: id) {
                    answeredThisEvent[id] = caller
                    if caller.dial != slot { startedServing.append(id) }
                }
                check(!model.held.keys.contains(lease) && !model.ended.contains(lease), "a lease number reused")
                model.connections[slot]?.state = .leased
                model.connections[slot]?.lease = lease
                model.held[lease] = slot
                leases += 1
            case .fail(let id, _):
                let caller = model.callers.removeValue(forKey: id)
                check(caller != nil, "waiter \(id.raw) answered twice or never asked")
            case .reportAddresses(let id, _), .reportReady(let id, _):
                let caller = model.callers.removeValue(forKey: id)
                check(caller?.asksForAnswer == true, "caller \(id.raw) answered twice, never asked, or not for an answer")
            case .reportLookupFailure:
                break
            case .startExchange(_, let slot):
                check(model.connections[slot]?.state == .leased && model.connections[slot]?.exchange == false, "exchange on \(slot)")
                model.connections[slot]?.exchange = true
            case .refuseExchange:
                break
            case .startStreamExchange, .abortStreamExchange, .ping:
                check(false, "a stream action, but this model dials HTTP/1.1 connections only")
            case .probe(let slot):
                // An idle connection's health check, or a recovery dial's probe.
                check(model.connections[slot]?.state == .idle
                      || (model.connections[slot]?.state == .leased && model.connections[slot]?.lease == nil),
                      "probe of a connection that is neither idle nor a fresh dial")
                model.connections[slot]?.state = .probing
                model.connections[slot]?.exchange = true
                returning.removeAll { $0 == slot }  // a recovery dial probed: not idle yet
            case .closeSocket:
                break
            case .abort(let slot):
                guard let connection = model.connections[slot] else { check(false, "abort of a dead slot"); continue }
                if connection.state == .dialing {
                    owed.append(.dialFailed(slot, .timeout(host: connection.host, ip: nil, phase: .connect)))
                } else {
                    check(connection.exchange, "abort with nothing under way")
                    owed.append(.exchangeEnded(slot, .failed))
                }
            case .destroy(let destruction):
                guard let connection = model.connections.removeValue(forKey: destruction.handle) else {
                    check(false, "destroy of a slot that is not live: \(destruction)")
                    continue
                }
                check((connection.state == .dialing) == (destruction.reason == nil), "a dial counted as a connection or back")
                if let reason = destruction.reason { model.closedByReason[reason, default: 0] += 1 } else { model.failedDials += 1 }
                if let lease = connection.lease {
                    model.held[lease] = nil
                    model.ended.append(lease)
                }
                for (id, caller) in model.callers where caller.dial == destruction.handle { model.callers[id]!.dial = nil }
                destroyed += 1
            case .armTimer(let timer, let at):
                check(at >= h.now, "timer armed in the past")
                model.timers[timer] = at
            case .reportLongLease(let slot, _):
                check(model.connections[slot]?.state == .leased, "long lease reported for a connection not leased")
            }
        }
        if model.ended.count > 2_000 { model.ended.removeFirst(1_000) }
    }

    mutating func checkRules() {
        let c = h.machine.configuration
        let live = model.connections.values
        check(live.count <= c.maxConnections, "global cap: \(live.count)")
        for host in PoolStateMachineModelTests.hosts {
            check(live.filter { $0.host == host }.count <= c.maxConnectionsPerHost, "host cap of \(host)")
        }
        check(model.count(.idle) <= c.maxIdleConnections, "idle cap")
        let stats = h.stats
        check(stats.idleConnections == model.count(.idle), "idle: machine \(stats.idleConnections), model \(model.count(.idle))")
        check(stats.activeConnections == model.count(.leased) + model.count(.probing), "active")
        check(stats.dialingConnections == model.count(.dialing), "dialing")
        check(stats.failedDials == model.failedDials, "failed dials: \(stats.failedDials) vs \(model.failedDials)")
        for reason in CloseReason.allCases {
            check(stats.closedByReason[reason] == model.closedByReason[reason, default: 0], "closed \(reason)")
        }
        check(stats.failedRequests <= stats.totalRequests, "failed > total")
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

    mutating func step(_ step: Int) {
        let roll = Int.random(in: 0..<100, using: &rng)
        switch roll {
        case 0..<18:
            let host = PoolStateMachineModelTests.hosts.randomElement(using: &rng)!
            var pinned: String?
            if host == "s0.test" && Int.random(in: 0..<7, using: &rng) == 0 {
                pinned = ["192.0.2.2", "203.0.113.7"].randomElement(using: &rng)
            } else if host == "dns.test" && Int.random(in: 0..<7, using: &rng) == 0 {
                pinned = ["203.0.113.1", "203.0.113.4"].randomElement(using: &rng)  // DNS gives them, then drops them
            }
            let id = h.newWaiter()
            model.sequence += 1
            model.callers[id] = .init(host: host, pinnedIP: pinned, sequence: model.sequence)
            asked(host)
            send(.acquire(id, .init(key: HostKey(name: host, port: 443), pinnedIP: pinned, nameIsAddress: host == "192.0.2.9")))
        case 18..<22:
            if let id = model.callers.keys.randomElement(using: &rng) { send(.cancel(id)) }
        case 22..<34:
            if let lease = model.held.keys.randomElement(using: &rng) { send(.release(lease)) }
        case 34..<36:
            if let lease = model.held.keys.randomElement(using: &rng) { send(.remove(lease)) }
        case 36..<38:
            guard let stale = model.ended.randomElement(using: &rng) else { break }
            let before = h.stats.staleHandleUses
            let event: PoolStateMachine.Event = switch Int.random(in: 0..<3, using: &rng) {
            case 0: .release(stale)
            case 1: .remove(stale)
            default: .requestExchange(.test, on: stale, timeout: 30)
            }
            let actions = h.send(event)
            check(actions.isEmpty || actions == [.refuseExchange(.test, .staleConnection)], "a stale handle acted: \(actions)")
            check(h.stats.staleHandleUses == before + 1, "a stale handle not counted")
        case 38..<46:
            if let lease = model.held.keys.randomElement(using: &rng) { send(.requestExchange(.test, on: lease, timeout: 30)) }
        case 46..<56:
            guard let slot = model.connections.filter({ $0.value.exchange }).keys.randomElement(using: &rng) else { break }
            let outcome: PoolStateMachine.ExchangeOutcome = switch Int.random(in: 0..<10, using: &rng) {
            case 0: .failed
            case 1: .answered(status: 403, unusable: nil)
            case 2: .answered(status: 500, unusable: nil)
            case 3: .answered(status: 200, unusable: .remoteClosed)
            default: .answered(status: 200, unusable: nil)
            }
            send(.exchangeEnded(slot, outcome))
        case 56..<66:
            if let slot = model.connections.filter({ $0.value.state == .dialing }).keys.randomElement(using: &rng) {
                send(.dialed(slot))
            }
        case 66..<70:
            if let slot = model.connections.filter({ $0.value.state == .dialing }).keys.randomElement(using: &rng) {
                send(.dialFailed(slot, .connectFailed(host: "h", ip: "i", reason: "refused")))
            }
        case 70..<72:
            if let lease = model.held.keys.randomElement(using: &rng) {
                send(.rejectValidation(lease, status: Bool.random(using: &rng) ? 403 : 500))
            }
        case 72..<74:
            if Bool.random(using: &rng), let slot = model.connections.filter({ $0.value.state == .probing }).keys.randomElement(using: &rng) {
                send(.unreadInput(slot, .unsolicitedData))  // a flood during a health check or a recovery probe
            } else if let slot = model.connections.filter({ $0.value.state == .idle || ($0.value.state == .leased && !$0.value.exchange) })
                .keys.randomElement(using: &rng) {
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
            let host = PoolStateMachineModelTests.hosts.randomElement(using: &rng)!
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
        default:
            h.now += Int64.random(in: 0...3, using: &rng)
        }
    }

    /// Closes the pool: every caller answered, every connection and dial destroyed once; then a fresh pool.
    mutating func closeAndRestart() {
        send(.close)
        check(model.callers.isEmpty, "\(model.callers.count) callers never answered")
        check(model.connections.isEmpty, "\(model.connections.count) connections left after close")
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
