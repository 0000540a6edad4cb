import HotPoolCore

/// Whom a dial is for.
enum Dialer: Equatable, BitwiseCopyable {
    /// A caller waiting for a connection.
    case caller(WaiterID)
    /// No caller: a connection kept warm (`minIdlePerHost`, `prewarm`).
    case warming
    /// No caller: a blacklisted IP's recovery probe.
    case recovery

    /// The caller the dial is for, if any.
    var caller: WaiterID? { if case .caller(let id) = self { id } else { nil } }
}

/// Where a slot is in a connection's life.
enum SlotState: UInt8 {
    case free
    /// TCP connect and TLS handshake under way.
    case dialing
    /// Open, in its host's idle list.
    case idle
    /// Handed to a caller (an HTTP/2 connection: to one caller per open stream lease), or taken by
    /// the pool for a health check.
    case leased
}

/// The operation under way on a slot, if any (its deadline is in `operationDeadline`).
enum SlotOperation: UInt8 {
    case none
    /// TCP connect and TLS handshake.
    case dial
    /// A caller's request and response.
    case exchange
    /// The pool's own health-check request.
    case probe
}


/// One column of the table: a value per slot in one allocation made for the table's most slots
/// (its pages are touched only as slots come into use). Reads and writes are plain pointer
/// accesses: no copy-on-write, reference counting or exclusivity checks on the hot path.
struct Column<Value: BitwiseCopyable> {
    fileprivate let base: UnsafeMutablePointer<Value>

    fileprivate init(_ count: Int) { base = .allocate(capacity: max(count, 1)) }

    subscript(slot: Int) -> Value {
        get { base[slot] }
        nonmutating set { base[slot] = newValue }
    }
}

/// A column only the table writes: its transitions keep it in step with the lists and counts.
struct GuardedColumn<Value: BitwiseCopyable> {
    fileprivate let column: Column<Value>

    subscript(slot: Int) -> Value { column[slot] }
}

/// The pool's policy state of every connection in struct-of-arrays storage: one column per
/// field, indexed by slot, sized once for the pool's `maxConnections`. Slots are reused through a
/// free list; each host has an intrusive list of its idle slots (oldest first), and all idle
/// slots are on one more list in the order they went idle (least recently used first), so
/// taking an idle connection, returning one and destroying one are O(1), and so is finding the
/// least recently used (past those of the host that asks). Sockets and TLS objects are not here: the driver holds those. Touched only on
/// the reactor thread, so its scalar state skips the runtime's dynamic exclusivity checks.
package final class ConnectionTable {
    static let none: Int32 = -1

    /// The most slots the table holds.
    let maxSlots: Int

    // Columns the state machine reads and writes directly.
    let created: Column<Int64>
    let lastUsed: Column<Int64>
    let lastChecked: Column<Int64>
    let requestCount: Column<UInt32>
    let errorCount: Column<UInt32>
    /// Why the connection is to be destroyed when it comes back; nil while it is not to be.
    let pendingClose: Column<CloseReason?>
    /// The operation under way and its deadline (monotonic ns).
    let operation: Column<SlotOperation>
    let operationDeadline: Column<Int64>
    /// Whom the dial under way is for (meaningful while the slot is dialing).
    let dialer: Column<Dialer>
    /// When the current lease began; 0 once a long lease has been reported.
    let leasedAt: Column<Int64>
    /// An HTTP/2 connection's stream limit: how many callers may lease it at once (the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS within `maxStreamsPerConnection`); 0 for HTTP/1.1.
    let streamLimit: Column<Int32>

    /// True for an HTTP/2 connection: several callers lease it at once, one per stream.
    func isMultiplexed(_ slot: Int32) -> Bool { streamLimit[Int(slot)] > 0 }
    /// An HTTP/2 connection's stream leases, and those with an exchange under way.
    let streams: Column<Int32>
    let exchanges: Column<Int32>

    // Columns only the transitions below change.
    let state: GuardedColumn<SlotState>
    let hostID: GuardedColumn<Int32>
    let ipID: GuardedColumn<Int32>
    /// The proxy the connection goes through (`ProxyStore.direct` for none).
    let proxyID: GuardedColumn<Int32>
    /// Bumped when the slot's connection is destroyed: readiness tokens carry it.
    let generation: GuardedColumn<UInt32>
    /// Bumped whenever a lease ends, so `LeaseHandle`s of ended leases are detected.
    private let lease: Column<UInt32>
    /// Idle list links; `next` doubles as the free list link.
    private let next: Column<Int32>
    private let prev: Column<Int32>
    /// Links of the list of all idle slots, least recently used first.
    private let lruNext: Column<Int32>
    private let lruPrev: Column<Int32>
    /// On its host's list of leased HTTP/2 connections that take more streams (linked through
    /// `next` and `prev`, which a leased slot does not use for the idle list).
    private let isShared: Column<Bool>

    /// Bytes one slot takes across the columns.
    package let bytesPerSlot: Int
    /// Releases every column.
    private let deallocators: [() -> Void]

    // Per host.
    @exclusivity(unchecked) private var idleHead: [Int32] = []
    @exclusivity(unchecked) private var idleTail: [Int32] = []
    /// Slots (dialing, idle or leased) per host.
    @exclusivity(unchecked) private var hostLiveCount: [Int32] = []
    @exclusivity(unchecked) private var hostIdleCount: [Int32] = []
    @exclusivity(unchecked) private var sharedHead: [Int32] = []
    @exclusivity(unchecked) private var sharedTail: [Int32] = []

    @exclusivity(unchecked) private var lruHead: Int32 = none
    @exclusivity(unchecked) private var lruTail: Int32 = none
    @exclusivity(unchecked) private var freeHead: Int32 = none
    /// Slots ever used (live or free); every slot below it is initialized.
    @exclusivity(unchecked) private(set) var slotCount = 0
    @exclusivity(unchecked) package private(set) var idleCount = 0
    @exclusivity(unchecked) private(set) var leasedCount = 0
    @exclusivity(unchecked) private(set) var dialingCount = 0

    init(maxSlots: Int) {
        self.maxSlots = maxSlots
        var bytes = 0
        var deallocators: [() -> Void] = []
        func column<Value: BitwiseCopyable>(_: Value.Type) -> Column<Value> {
            let column = Column<Value>(maxSlots)
            bytes += MemoryLayout<Value>.stride
            deallocators.append { column.base.deallocate() }
            return column
        }
        created = column(Int64.self)
        lastUsed = column(Int64.self)
        lastChecked = column(Int64.self)
        requestCount = column(UInt32.self)
        errorCount = column(UInt32.self)
        pendingClose = column(CloseReason?.self)
        operation = column(SlotOperation.self)
        operationDeadline = column(Int64.self)
        dialer = column(Dialer.self)
        leasedAt = column(Int64.self)
        streamLimit = column(Int32.self)
        streams = column(Int32.self)
        exchanges = column(Int32.self)
        state = GuardedColumn(column: column(SlotState.self))
        hostID = GuardedColumn(column: column(Int32.self))
        ipID = GuardedColumn(column: column(Int32.self))
        proxyID = GuardedColumn(column: column(Int32.self))
        generation = GuardedColumn(column: column(UInt32.self))
        lease = column(UInt32.self)
        next = column(Int32.self)
        prev = column(Int32.self)
        lruNext = column(Int32.self)
        lruPrev = column(Int32.self)
        isShared = column(Bool.self)
        bytesPerSlot = bytes
        self.deallocators = deallocators
    }

    deinit {
        deallocators.forEach { $0() }
    }

    /// Open connections: idle + leased (dialing slots are not connections yet).
    var connectionCount: Int { idleCount + leasedCount }

    /// Live slots: dialing, idle and leased.
    var liveCount: Int { idleCount + leasedCount + dialingCount }

    /// True if `handle` names a live slot (not destroyed since the handle was made).
    package func isCurrent(_ handle: SlotHandle) -> Bool {
        let s = Int(handle.slot)
        return s >= 0 && s < slotCount && generation[s] == handle.generation && state[s] != .free
    }

    /// True if `handle` names the lease the slot is under now.
    func isCurrent(_ handle: LeaseHandle) -> Bool {
        let s = Int(handle.slot)
        return s >= 0 && s < slotCount && lease[s] == handle.lease && state[s] == .leased
    }

    package func handle(_ slot: Int32) -> SlotHandle {
        SlotHandle(slot: slot, generation: generation[Int(slot)])
    }

    /// Starts a new lease of a leased slot for a caller and returns its handle: every hand-out
    /// gets a lease number of its own, so the handle of an earlier holder is stale even when a
    /// put handed the connection straight to the next caller.
    func beginLease(_ slot: Int32) -> LeaseHandle {
        precondition(state[Int(slot)] == .leased)
        lease[Int(slot)] &+= 1
        return LeaseHandle(slot: slot, lease: lease[Int(slot)])
    }

    func liveCount(host: Int32) -> Int {
        Int(host) < hostLiveCount.count ? Int(hostLiveCount[Int(host)]) : 0
    }

    func idleCount(host: Int32) -> Int {
        Int(host) < hostIdleCount.count ? Int(hostIdleCount[Int(host)]) : 0
    }

    // MARK: transitions

    /// Takes a free slot (or a new one) for a connection being dialed. The caller keeps live
    /// slots within `maxSlots`.
    func allocate(host: Int32, ip: Int32, proxy: Int32, now: Int64) -> SlotHandle {
        ensureHost(host)
        let slot: Int32
        if freeHead != Self.none {
            slot = freeHead
            freeHead = next[Int(freeHead)]
        } else {
            precondition(slotCount < maxSlots, "ConnectionTable: more than \(maxSlots) slots")
            slot = Int32(slotCount)
            generation.column[slotCount] = 0
            lease[slotCount] = 0
            slotCount += 1
        }
        let s = Int(slot)
        state.column[s] = .dialing
        hostID.column[s] = host
        ipID.column[s] = ip
        proxyID.column[s] = proxy
        created[s] = now
        lastUsed[s] = now
        lastChecked[s] = now
        requestCount[s] = 0
        errorCount[s] = 0
        pendingClose[s] = nil
        operation[s] = .none
        operationDeadline[s] = 0
        leasedAt[s] = 0
        streamLimit[s] = 0
        streams[s] = 0
        exchanges[s] = 0
        isShared[s] = false
        next[s] = Self.none
        prev[s] = Self.none
        hostLiveCount[Int(host)] += 1
        dialingCount += 1
        return SlotHandle(slot: slot, generation: generation[s])
    }

    /// A dialed connection is handed to a caller.
    func leaseDialed(_ slot: Int32) {
        precondition(state[Int(slot)] == .dialing)
        state.column[Int(slot)] = .leased
        dialingCount -= 1
        leasedCount += 1
    }

    /// Takes an idle connection of `host`, any: the most recently returned one (`.lifo`) or the
    /// longest idle (`.fifo`).
    func takeIdle(host: Int32, order: IdleOrder) -> Int32? {
        takeIdle(host: host, order: order) { _ in true }
    }

    /// Takes an idle connection of `host` that `accepts`: the most recently returned
    /// one (`.lifo`) or the longest idle (`.fifo`).
    @inline(__always)
    func takeIdle(host: Int32, order: IdleOrder, where accepts: (Int32) -> Bool) -> Int32? {
        guard Int(host) < idleHead.count else { return nil }
        let lifo = order == .lifo
        var slot = lifo ? idleTail[Int(host)] : idleHead[Int(host)]
        while slot != Self.none && !accepts(slot) { slot = lifo ? prev[Int(slot)] : next[Int(slot)] }
        guard slot != Self.none else { return nil }
        take(idle: slot)
        return slot
    }

    /// The idle connection that went idle longest ago, of a host other than `host` if given
    /// (walks past that host's idle connections).
    func leastRecentlyUsedIdle(excludingHost host: Int32?) -> Int32? {
        var slot = lruHead
        while slot != Self.none && hostID[Int(slot)] == host { slot = lruNext[Int(slot)] }
        return slot == Self.none ? nil : slot
    }

    /// The idle connection of `host` that went idle longest ago.
    func longestIdle(host: Int32) -> Int32? {
        guard Int(host) < idleHead.count, idleHead[Int(host)] != Self.none else { return nil }
        return idleHead[Int(host)]
    }

    /// Leases one particular idle connection.
    func take(idle slot: Int32) {
        precondition(state[Int(slot)] == .idle)
        unlinkIdle(slot)
        state.column[Int(slot)] = .leased
        idleCount -= 1
        leasedCount += 1
    }

    /// A leased connection goes idle, at the tail of its host's list.
    func makeIdle(_ slot: Int32) {
        let s = Int(slot)
        precondition(state[s] == .leased)
        unshare(slot)
        let host = Int(hostID[s])
        state.column[s] = .idle
        lease[s] &+= 1
        leasedCount -= 1
        idleCount += 1
        next[s] = Self.none
        prev[s] = idleTail[host]
        if idleTail[host] != Self.none { next[Int(idleTail[host])] = slot } else { idleHead[host] = slot }
        idleTail[host] = slot
        hostIdleCount[host] += 1
        lruNext[s] = Self.none
        lruPrev[s] = lruTail
        if lruTail != Self.none { lruNext[Int(lruTail)] = slot } else { lruHead = slot }
        lruTail = slot
    }

    /// Frees a live slot and bumps its generation (and its lease number).
    func free(_ slot: Int32) {
        let s = Int(slot)
        switch state[s] {
        case .free: preconditionFailure("slot \(slot) freed twice")
        case .dialing: dialingCount -= 1
        case .leased:
            unshare(slot)
            leasedCount -= 1
        case .idle:
            unlinkIdle(slot)
            idleCount -= 1
        }
        hostLiveCount[Int(hostID[s])] -= 1
        state.column[s] = .free
        generation.column[s] &+= 1
        lease[s] &+= 1
        operation[s] = .none
        next[s] = freeHead
        freeHead = slot
    }

    // MARK: HTTP/2 connections that take more streams

    /// The first leased HTTP/2 connection of `host` on the list of those that take more streams,
    /// oldest on the list first, that `usable` accepts.
    func sharedConnection(host: Int32, where usable: (Int32) -> Bool) -> Int32? {
        guard Int(host) < sharedHead.count else { return nil }
        var slot = sharedHead[Int(host)]
        while slot != Self.none && !usable(slot) { slot = next[Int(slot)] }
        return slot == Self.none ? nil : slot
    }

    /// Puts a leased HTTP/2 connection on its host's list of those that take more streams
    /// (at the tail), or takes it off, as `takesStreams` says.
    func setShared(_ slot: Int32, _ takesStreams: Bool) {
        let s = Int(slot)
        guard takesStreams != isShared[s] else { return }
        guard takesStreams else { return unshare(slot) }
        precondition(state[s] == .leased)
        let host = Int(hostID[s])
        isShared[s] = true
        next[s] = Self.none
        prev[s] = sharedTail[host]
        if sharedTail[host] != Self.none { next[Int(sharedTail[host])] = slot } else { sharedHead[host] = slot }
        sharedTail[host] = slot
    }

    private func unshare(_ slot: Int32) {
        let s = Int(slot)
        guard isShared[s] else { return }
        let host = Int(hostID[s])
        let (p, n) = (prev[s], next[s])
        if p != Self.none { next[Int(p)] = n } else { sharedHead[host] = n }
        if n != Self.none { prev[Int(n)] = p } else { sharedTail[host] = p }
        next[s] = Self.none
        prev[s] = Self.none
        isShared[s] = false
    }

    /// The idle slots of `host`, oldest first.
    func idleSlots(host: Int32) -> [Int32] {
        guard Int(host) < idleHead.count else { return [] }
        var result: [Int32] = []
        var slot = idleHead[Int(host)]
        while slot != Self.none {
            result.append(slot)
            slot = next[Int(slot)]
        }
        return result
    }

    // MARK: private

    private func unlinkIdle(_ slot: Int32) {
        let s = Int(slot)
        let host = Int(hostID[s])
        let (p, n) = (prev[s], next[s])
        if p != Self.none { next[Int(p)] = n } else { idleHead[host] = n }
        if n != Self.none { prev[Int(n)] = p } else { idleTail[host] = p }
        hostIdleCount[host] -= 1
        next[s] = Self.none
        prev[s] = Self.none
        let (lp, ln) = (lruPrev[s], lruNext[s])
        if lp != Self.none { lruNext[Int(lp)] = ln } else { lruHead = ln }
        if ln != Self.none { lruPrev[Int(ln)] = lp } else { lruTail = lp }
    }

    private func ensureHost(_ host: Int32) {
        while idleHead.count <= Int(host) {
            idleHead.append(Self.none)
            idleTail.append(Self.none)
            hostLiveCount.append(0)
            hostIdleCount.append(0)
            sharedHead.append(Self.none)
            sharedTail.append(Self.none)
        }
    }
}
