/// A connection's place in the table: its slot and the generation the slot had when the
/// connection was created. A slot's generation changes when its connection is destroyed, so a
/// handle to a destroyed connection is detected, never confused with the slot's next tenant.
struct SlotHandle: Hashable, Sendable {
    let slot: Int32
    let generation: UInt32

    /// The handle packed into a readiness-event token (slot in the low half).
    var token: UInt64 { UInt64(UInt32(bitPattern: slot)) | UInt64(generation) << 32 }

    init(slot: Int32, generation: UInt32) {
        self.slot = slot
        self.generation = generation
    }

    init(token: UInt64) {
        self.init(slot: Int32(bitPattern: UInt32(truncatingIfNeeded: token)), generation: UInt32(token >> 32))
    }
}

/// One lease of a connection: its slot and the slot's lease number when it was handed out. The
/// number changes whenever a lease ends (return or destruction), so a caller's handle is good
/// for its own lease only: a second put, or a put after the connection went to someone else,
/// is detected.
struct LeaseHandle: Hashable, Sendable {
    let slot: Int32
    let lease: UInt32
}

/// Where a slot is in a connection's life.
enum SlotState: UInt8 {
    case free
    /// TCP connect and TLS handshake under way.
    case dialing
    /// Open, in its host's idle list.
    case idle
    /// Handed to a caller.
    /// Handed to a caller, or taken by the pool for a health check.
    case leased
}

/// Connection state in struct-of-arrays storage: one array per field, indexed by slot. Slots are
/// reused through a free list; each host has an intrusive FIFO list of its idle slots, so taking
/// an idle connection for a host, returning one and destroying one are O(1).
/// Touched only on the reactor thread.
struct ConnectionTable {
    static let none: Int32 = -1

    // Columns. The pool reads and writes the plain data columns directly; the state, lists and
    // generation change only through the transitions below.
    var fd: [Int32] = []
    var ssl: [OpaquePointer?] = []
    private(set) var state: [SlotState] = []
    private(set) var hostID: [Int32] = []
    private(set) var ipID: [Int32] = []
    var created: [Int64] = []
    var lastUsed: [Int64] = []
    var lastChecked: [Int64] = []
    var requestCount: [Int64] = []
    var errorCount: [Int32] = []
    var healthy: [Bool] = []
    /// A reason (`CloseReason.code`) to destroy the connection when it comes back; 0 = none.
    var closeOnReturn: [UInt8] = []
    /// Deadline (monotonic ns) of the I/O under way on the slot; 0 = none.
    var deadline: [Int64] = []
    /// When the current lease began; 0 once a long lease has been reported.
    var leasedAt: [Int64] = []
    /// Input arrived while leased with no round trip reading it; checked when it comes back.
    var pendingInput: [Bool] = []
    /// The fingerprint profile (index into the pool's list) and its Accept-Language choice.
    var profile: [UInt8] = []
    var language: [UInt8] = []
    private(set) var generation: [UInt32] = []
    /// Bumped whenever a lease ends, so `LeaseHandle`s of ended leases are detected.
    private var lease: [UInt32] = []
    /// Idle list links; `next` doubles as the free list link.
    private var next: [Int32] = []
    private var prev: [Int32] = []

    // Per host.
    private var idleHead: [Int32] = []
    private var idleTail: [Int32] = []
    private(set) var hostIdleCount: [Int32] = []
    /// Slots (dialing, idle or leased) per host.
    private(set) var hostLiveCount: [Int32] = []

    private var freeHead: Int32 = none
    private(set) var idleCount = 0
    private(set) var leasedCount = 0
    private(set) var dialingCount = 0

    /// Bytes one slot takes across the columns (per-host arrays left out). Keep in step with
    /// `appendSlot`: fd, hostID, ipID, errorCount, next, prev; ssl; state; created, lastUsed,
    /// lastChecked, requestCount, deadline, leasedAt; healthy, pendingInput; closeOnReturn,
    /// profile, language; generation, lease.
    static let bytesPerSlot = MemoryLayout<Int32>.stride * 6 + MemoryLayout<OpaquePointer?>.stride
        + MemoryLayout<SlotState>.stride + MemoryLayout<Int64>.stride * 6 + MemoryLayout<Bool>.stride * 2
        + MemoryLayout<UInt8>.stride * 3 + MemoryLayout<UInt32>.stride * 2

    /// Slots ever allocated (live or free).
    var capacity: Int { state.count }
    /// Open connections: idle + leased (dialing slots are not connections yet).
    var connectionCount: Int { idleCount + leasedCount }

    /// True if `handle` names a live slot (not destroyed since the handle was made).
    func isCurrent(_ handle: SlotHandle) -> Bool {
        let s = Int(handle.slot)
        return s >= 0 && s < state.count && generation[s] == handle.generation && state[s] != .free
    }

    /// True if `handle` names the lease the slot is under now.
    func isCurrent(_ handle: LeaseHandle) -> Bool {
        let s = Int(handle.slot)
        return s >= 0 && s < state.count && lease[s] == handle.lease && state[s] == .leased
    }

    func handle(_ slot: Int32) -> SlotHandle {
        SlotHandle(slot: slot, generation: generation[Int(slot)])
    }

    /// The handle of a leased slot's current lease.
    func leaseHandle(_ slot: Int32) -> LeaseHandle {
        LeaseHandle(slot: slot, lease: lease[Int(slot)])
    }

    func liveCount(host: Int32) -> Int {
        Int(host) < hostLiveCount.count ? Int(hostLiveCount[Int(host)]) : 0
    }

    func idleCount(host: Int32) -> Int {
        Int(host) < hostIdleCount.count ? Int(hostIdleCount[Int(host)]) : 0
    }

    // MARK: transitions

    /// Takes a free slot (or a new one) for a connection being dialed.
    mutating func allocate(host: Int32, ip: Int32, fd: Int32, now: Int64) -> SlotHandle {
        ensureHost(host)
        let slot: Int32
        if freeHead != Self.none {
            slot = freeHead
            freeHead = next[Int(slot)]
        } else {
            slot = Int32(state.count)
            appendSlot()
        }
        let s = Int(slot)
        self.fd[s] = fd
        ssl[s] = nil
        state[s] = .dialing
        hostID[s] = host
        ipID[s] = ip
        created[s] = now
        lastUsed[s] = now
        lastChecked[s] = now
        requestCount[s] = 0
        errorCount[s] = 0
        healthy[s] = true
        closeOnReturn[s] = 0
        deadline[s] = 0
        leasedAt[s] = 0
        pendingInput[s] = false
        profile[s] = 0
        language[s] = 0
        next[s] = Self.none
        prev[s] = Self.none
        hostLiveCount[Int(host)] += 1
        dialingCount += 1
        return SlotHandle(slot: slot, generation: generation[s])
    }

    /// A dialed connection is handed to a caller.
    mutating func leaseDialed(_ slot: Int32) {
        precondition(state[Int(slot)] == .dialing)
        state[Int(slot)] = .leased
        dialingCount -= 1
        leasedCount += 1
    }

    /// Takes the longest-idle connection of `host` (of `ip` only, if given).
    mutating func takeIdle(host: Int32, ip: Int32? = nil) -> Int32? {
        guard Int(host) < idleHead.count else { return nil }
        var slot = idleHead[Int(host)]
        if let ip {
            while slot != Self.none && ipID[Int(slot)] != ip { slot = next[Int(slot)] }
        }
        guard slot != Self.none else { return nil }
        take(idle: slot)
        return slot
    }

    /// Leases one particular idle connection.
    mutating func take(idle slot: Int32) {
        precondition(state[Int(slot)] == .idle)
        unlinkIdle(slot)
        state[Int(slot)] = .leased
        idleCount -= 1
        leasedCount += 1
    }

    /// A leased connection goes idle, at the tail of its host's list.
    mutating func makeIdle(_ slot: Int32) {
        let s = Int(slot)
        precondition(state[s] == .leased)
        let host = Int(hostID[s])
        state[s] = .idle
        lease[s] &+= 1
        leasedCount -= 1
        idleCount += 1
        hostIdleCount[host] += 1
        next[s] = Self.none
        prev[s] = idleTail[host]
        if idleTail[host] != Self.none { next[Int(idleTail[host])] = slot } else { idleHead[host] = slot }
        idleTail[host] = slot
    }

    /// Frees a live slot and bumps its generation. The caller has closed its fd and SSL object.
    mutating func free(_ slot: Int32) {
        let s = Int(slot)
        switch state[s] {
        case .free: preconditionFailure("slot \(slot) freed twice")
        case .dialing: dialingCount -= 1
        case .leased: leasedCount -= 1
        case .idle:
            unlinkIdle(slot)
            idleCount -= 1
        }
        hostLiveCount[Int(hostID[s])] -= 1
        fd[s] = -1
        ssl[s] = nil
        state[s] = .free
        generation[s] &+= 1
        lease[s] &+= 1
        deadline[s] = 0
        next[s] = freeHead
        freeHead = slot
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

    private mutating func unlinkIdle(_ slot: Int32) {
        let s = Int(slot)
        let host = Int(hostID[s])
        let (p, n) = (prev[s], next[s])
        if p != Self.none { next[Int(p)] = n } else { idleHead[host] = n }
        if n != Self.none { prev[Int(n)] = p } else { idleTail[host] = p }
        next[s] = Self.none
        prev[s] = Self.none
        hostIdleCount[host] -= 1
    }

    private mutating func ensureHost(_ host: Int32) {
        while idleHead.count <= Int(host) {
            idleHead.append(Self.none)
            idleTail.append(Self.none)
            hostIdleCount.append(0)
            hostLiveCount.append(0)
        }
    }

    private mutating func appendSlot() {
        fd.append(-1)
        ssl.append(nil)
        state.append(.free)
        hostID.append(0)
        ipID.append(0)
        created.append(0)
        lastUsed.append(0)
        lastChecked.append(0)
        requestCount.append(0)
        errorCount.append(0)
        healthy.append(false)
        closeOnReturn.append(0)
        deadline.append(0)
        leasedAt.append(0)
        pendingInput.append(false)
        profile.append(0)
        language.append(0)
        generation.append(0)
        lease.append(0)
        next.append(Self.none)
        prev.append(Self.none)
    }
}
