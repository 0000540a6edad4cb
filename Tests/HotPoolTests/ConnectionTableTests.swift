import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolStateMachine

/// A deterministic generator (SplitMix64), so a failing run can be replayed from its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct ConnectionTableTests {
    /// The reference model: live connections by handle, handles by state, per-host FIFO idle lists.
    struct Model {
        enum State { case dialing, idle, leased }
        var live: [SlotHandle: (host: Int32, ip: Int32, state: State)] = [:]
        var byState: [State: [SlotHandle]] = [.dialing: [], .idle: [], .leased: []]
        var idle: [Int32: [SlotHandle]] = [:]
        /// Every idle connection, in the order it went idle.
        var lru: [SlotHandle] = []

        mutating func move(_ h: SlotHandle, to state: State?) {
            if let old = live[h]?.state { byState[old]!.removeAll { $0 == h } }
            if let state {
                live[h]!.state = state
                byState[state]!.append(h)
            } else {
                live[h] = nil
            }
        }
    }

    @Test func randomizedOperationsMatchAReferenceModel() {
        let operations = Int(environment("HOTPOOL_TABLE_OPS") ?? "") ?? 1_000_000
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededGenerator(state: seed)
        let table = ConnectionTable(maxSlots: 300)
        var model = Model()
        var retired: [SlotHandle] = []  // handles of destroyed connections
        var endedLeases: [LeaseHandle] = []  // handles of leases that ended (put, hand-over or destroy)
        var leases: [SlotHandle: LeaseHandle] = [:]  // the current lease of each leased connection
        for step in 0..<operations {
            let host = Int32.random(in: 0..<5, using: &rng)
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<25:  // allocate (start a dial)
                guard model.live.count < 300 else { continue }
                let ip = Int32.random(in: 0..<3, using: &rng)
                let handle = table.allocate(host: host, ip: ip, proxy: ProxyStore.direct, now: Int64(step))
                #expect(model.live[handle] == nil, "seed \(seed): handle reused while live")
                model.live[handle] = (host, ip, .dialing)
                model.byState[.dialing]!.append(handle)
            case 25..<45:  // a dial completes: leased
                guard let h = model.byState[.dialing]!.randomElement(using: &rng) else { continue }
                table.leaseDialed(h.slot)
                leases[h] = table.beginLease(h.slot)
                model.move(h, to: .leased)
            case 45..<50:  // a put hands a leased connection straight to the next caller: a new lease
                guard let h = model.byState[.leased]!.randomElement(using: &rng) else { continue }
                endedLeases.append(leases[h]!)
                leases[h] = table.beginLease(h.slot)
                #expect(table.isCurrent(leases[h]!) && leases[h] != endedLeases.last, "seed \(seed): hand-over lease")
            case 50..<65:  // take idle for a host, in either order, sometimes pinned to an IP
                let ip: Int32? = Bool.random(using: &rng) ? Int32.random(in: 0..<3, using: &rng) : nil
                let order: IdleOrder = Bool.random(using: &rng) ? .lifo : .fifo
                let taken = table.takeIdle(host: host, order: order) { ip == nil || table.ipID[Int($0)] == ip }
                let candidates = (model.idle[host] ?? []).filter { ip == nil || model.live[$0]!.ip == ip }
                let expected = order == .lifo ? candidates.last : candidates.first
                #expect(taken.map(table.handle) == expected, "seed \(seed) step \(step): take-idle \(order)")
                if let e = expected {
                    model.idle[host]!.removeAll { $0 == e }
                    model.lru.removeAll { $0 == e }
                    model.move(e, to: .leased)
                    leases[e] = table.beginLease(e.slot)
                }
            case 65..<85:  // return a leased connection
                guard let h = model.byState[.leased]!.randomElement(using: &rng) else { continue }
                let lease = leases.removeValue(forKey: h)!
                #expect(table.isCurrent(lease), "seed \(seed): current lease rejected")
                table.makeIdle(h.slot)
                endedLeases.append(lease)
                model.move(h, to: .idle)
                model.idle[model.live[h]!.host, default: []].append(h)
                model.lru.append(h)
            case 85..<95:  // destroy a live connection in any state
                let states: [Model.State] = [.dialing, .idle, .leased]
                guard let h = model.byState[states.randomElement(using: &rng)!]!.randomElement(using: &rng) else { continue }
                model.idle[model.live[h]!.host]?.removeAll { $0 == h }
                model.lru.removeAll { $0 == h }
                if model.live[h]!.state == .leased { endedLeases.append(leases.removeValue(forKey: h)!) }
                model.move(h, to: nil)
                table.free(h.slot)
                retired.append(h)
                if retired.count > 1000 { retired.removeFirst(500) }
            case 95..<97:  // the least recently used idle connection of another host
                let expected = model.lru.first { model.live[$0]!.host != host }
                #expect(table.leastRecentlyUsedIdle(excludingHost: host).map(table.handle) == expected, "seed \(seed): LRU")
            default:  // stale handles must be rejected: of destroyed connections, of ended leases
                if let h = retired.randomElement(using: &rng) {
                    #expect(!table.isCurrent(h), "seed \(seed): stale handle accepted")
                }
                if let lease = endedLeases.randomElement(using: &rng) {
                    #expect(!table.isCurrent(lease), "seed \(seed): ended lease accepted")
                }
                if endedLeases.count > 1000 { endedLeases.removeFirst(500) }
            }
            if step % 997 == 0 || step == operations - 1 {
                check(table, model, seed: seed)
            }
        }
    }

    private func check(_ table: ConnectionTable, _ model: Model, seed: UInt64) {
        let states = model.live.values.map(\.state)
        #expect(table.idleCount == states.filter { $0 == .idle }.count, "seed \(seed)")
        #expect(table.leasedCount == states.filter { $0 == .leased }.count, "seed \(seed)")
        #expect(table.dialingCount == states.filter { $0 == .dialing }.count, "seed \(seed)")
        for (handle, entry) in model.live {
            #expect(table.isCurrent(handle))
            #expect(table.hostID[Int(handle.slot)] == entry.host && table.ipID[Int(handle.slot)] == entry.ip)
        }
        for host: Int32 in 0..<5 {
            #expect(table.idleSlots(host: host).map(table.handle) == (model.idle[host] ?? []), "seed \(seed): idle order")
            #expect(table.liveCount(host: host) == model.live.values.filter { $0.host == host }.count)
        }
    }

    @Test func tokenRoundTripsSlotAndGeneration() {
        let h = SlotHandle(slot: 123_456, generation: 0xFFFF_FFF0)
        #expect(SlotHandle(token: h.token) == h)
    }
}
