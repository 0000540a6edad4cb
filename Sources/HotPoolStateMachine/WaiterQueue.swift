import DequeModule
import HotPoolCore

/// The callers waiting for a connection: one FIFO queue per host, and every unfinished waiter
/// by id (queued, or with a dial of its own under way). Taking a known waiter out (cancel,
/// timeout) is O(1): its queue entry stays behind as a tombstone, skipped when met. Finding the
/// waiters whose deadline passed is a sweep over all of them, on the deadline timer only. The
/// queue is the only owner of which hosts have waiters.
struct WaiterQueue {
    /// What the pool knows of one unfinished waiter.
    struct Waiter {
        let host: Int32
        /// The IP record the caller pinned, if any.
        let pinnedIP: Int32?
        /// The proxy record the caller pinned, if any.
        let pinnedProxy: Int32?
        /// When the caller stops waiting (monotonic ns).
        let deadline: Int64
        /// The IP record the caller does not take (a retry's last IP); nil for none, or when its
        /// host had no other IP in rotation as it asked.
        let avoidedIP: Int32?
        /// IP records this caller's dials failed on.
        var failedIPs: [Int32] = []
        /// Proxy records this caller's dials failed on (the proxy's fault, not the IP's).
        var failedProxies: [Int32] = []
        /// Arrival order (set by `add`).
        fileprivate(set) var sequence: UInt64 = 0
        /// The ticket of its current queue entry; nil while it is not queued (a dial of its own
        /// is under way).
        var ticket: UInt64?

        /// Dials made for this caller that failed.
        var failedDials: Int { failedIPs.count + failedProxies.count }

        /// True if the caller may take a connection to `ip` through `proxy`; `onRoute` says whether
        /// that proxy is one its host's unpinned callers take.
        func takes(ip: Int32, proxy: Int32, onRoute: Bool) -> Bool {
            (pinnedIP == nil || pinnedIP == ip) && ip != avoidedIP && (pinnedProxy.map { $0 == proxy } ?? onRoute)
        }
    }

    private struct Entry {
        let id: WaiterID
        let ticket: UInt64
    }

    private(set) var waiters: [WaiterID: Waiter] = [:]
    private var queues: [Int32: Deque<Entry>] = [:]
    /// Queued (not dialing) waiters per host id (an array: host ids are dense, and every get
    /// reads it, so no hashing).
    private var queued: [Int] = []
    /// Hosts with queued waiters (changes only when a host's count goes from or to 0).
    private(set) var hostsWithWaiters: Set<Int32> = []
    private var nextTicket: UInt64 = 0
    private var nextSequence: UInt64 = 0

    /// Queued waiters of `host`.
    func queuedCount(_ host: Int32) -> Int {
        Int(host) < queued.count ? queued[Int(host)] : 0
    }

    /// Queued waiters, all hosts.
    var count: Int { hostsWithWaiters.reduce(0) { $0 + queued[Int($1)] } }

    subscript(id: WaiterID) -> Waiter? { waiters[id] }

    /// Registers a new waiter (not queued yet).
    mutating func add(_ id: WaiterID, _ waiter: Waiter) {
        precondition(waiters[id] == nil, "waiter \(id.raw) added twice")
        nextSequence += 1
        var waiter = waiter
        waiter.sequence = nextSequence
        waiters[id] = waiter
    }

    /// Queues a registered waiter at the back of its host's queue, or, for one that waits again
    /// (its dial failed), back in its place by arrival order.
    mutating func enqueue(_ id: WaiterID, inArrivalOrder: Bool = false) {
        guard var waiter = waiters[id], waiter.ticket == nil else { return }
        nextTicket += 1
        waiter.ticket = nextTicket
        waiters[id] = waiter
        let entry = Entry(id: id, ticket: nextTicket)
        var queue = queues.removeValue(forKey: waiter.host) ?? []
        let place = inArrivalOrder
            ? queue.firstIndex { isLive($0) && waiters[$0.id]!.sequence > waiter.sequence } ?? queue.endIndex
            : queue.endIndex
        queue.insert(entry, at: place)
        queues[waiter.host] = queue
        while queued.count <= Int(waiter.host) { queued.append(0) }
        queued[Int(waiter.host)] += 1
        if queued[Int(waiter.host)] == 1 { hostsWithWaiters.insert(waiter.host) }
    }

    /// Takes a waiter out of its queue; it stays registered (a dial is started for it).
    mutating func dequeue(_ id: WaiterID) {
        guard var waiter = waiters[id], waiter.ticket != nil else { return }
        waiter.ticket = nil
        waiters[id] = waiter
        decrementQueued(waiter.host)
    }

    /// Forgets a waiter (served, failed, cancelled); returns its record.
    @discardableResult
    mutating func finish(_ id: WaiterID) -> Waiter? {
        guard let waiter = waiters.removeValue(forKey: id) else { return nil }
        if waiter.ticket != nil { decrementQueued(waiter.host) }
        return waiter
    }

    /// The IP records waiters refer to: those they are pinned to or avoid, and those their dials failed on.
    var referencedIPs: Set<Int32> {
        referenced(pinned: \.pinnedIP, failed: \.failedIPs).union(waiters.values.lazy.compactMap(\.avoidedIP))
    }

    /// The proxy records waiters refer to: those they are pinned to and those their dials failed on.
    var referencedProxies: Set<Int32> { referenced(pinned: \.pinnedProxy, failed: \.failedProxies) }

    /// The records waiters name in `pinned` and `failed`.
    private func referenced(pinned: KeyPath<Waiter, Int32?>, failed: KeyPath<Waiter, [Int32]>) -> Set<Int32> {
        var ids = Set<Int32>()
        for waiter in waiters.values {
            if let id = waiter[keyPath: pinned] { ids.insert(id) }
            ids.formUnion(waiter[keyPath: failed])
        }
        return ids
    }

    /// A dial for the waiter failed, by the fault of its IP, or of its proxy when `proxy` is given.
    mutating func recordFailedDial(_ id: WaiterID, ip: Int32, proxy: Int32?) {
        if let proxy { waiters[id]?.failedProxies.append(proxy) } else { waiters[id]?.failedIPs.append(ip) }
    }

    /// The first queued waiter of `host` that `accepts`, oldest first.
    mutating func first(of host: Int32, where accepts: (Waiter) -> Bool = { _ in true }) -> WaiterID? {
        guard queuedCount(host) > 0 else { return nil }
        dropTombstonesAtFront(host)
        for entry in queues[host]! where isLive(entry) && accepts(waiters[entry.id]!) {
            return entry.id
        }
        return nil
    }

    /// The arrival order of the first queued waiter of `host`, for serving hosts in order.
    mutating func headSequence(of host: Int32) -> UInt64 {
        dropTombstonesAtFront(host)
        return queues[host]?.first.map { waiters[$0.id]!.sequence } ?? .max
    }

    /// Queued waiters whose deadline is at or before `now`.
    func expired(at now: Int64) -> [WaiterID] {
        waiters.compactMap { id, waiter in waiter.ticket != nil && waiter.deadline <= now ? id : nil }
    }

    /// The earliest deadline of a queued waiter.
    var earliestDeadline: Int64? {
        waiters.values.lazy.filter { $0.ticket != nil }.map(\.deadline).min()
    }

    /// Forgets every waiter; returns their ids.
    mutating func removeAll() -> [WaiterID] {
        let ids = Array(waiters.keys)
        waiters.removeAll()
        queues.removeAll()
        queued.removeAll()
        hostsWithWaiters.removeAll()
        return ids
    }

    // MARK: private

    private func isLive(_ entry: Entry) -> Bool {
        waiters[entry.id]?.ticket == entry.ticket
    }

    private mutating func decrementQueued(_ host: Int32) {
        queued[Int(host)] -= 1
        let left = queued[Int(host)]
        if left == 0 {
            hostsWithWaiters.remove(host)
            queues[host] = nil  // only tombstones are left
        } else {
            // Tombstones behind a long-lived head would pile up: drop them once they outnumber the live.
            if queues[host]!.count > 2 * left + 16 {
                let waiters = self.waiters
                queues[host]!.removeAll { waiters[$0.id]?.ticket != $0.ticket }
            }
        }
    }

    private mutating func dropTombstonesAtFront(_ host: Int32) {
        while let entry = queues[host]?.first, !isLive(entry) { queues[host]!.removeFirst() }
    }
}
