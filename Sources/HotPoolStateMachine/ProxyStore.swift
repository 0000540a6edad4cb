import HotPoolCore

/// What the pool knows of one proxy: its ledger (dials, failures, ejection) and, per target IP,
/// what went through it.
package struct ProxyRecord {
    package let proxy: Proxy
    /// Dials through it, and those that failed for its fault.
    package var dials = 0
    package var failedDials = 0
    /// Dial failures for its fault since its last tunnel that opened.
    package var consecutiveFailures = 0
    /// Times it was ejected for failures: each ejection lasts longer.
    var ejections = 0
    /// When a recovery dial may try it again (monotonic ns); nil while it is in rotation.
    package var ejectedUntil: Int64?
    /// How long the current ejection lasts: doubled each time a recovery dial fails.
    var ejectionPeriod: Int64 = 0
    /// The slot of the recovery dial under way, if one is.
    var recoverySlot: Int32?
    /// Some list named it: its connections are the lists' (closed once their host's list no
    /// longer names it), not kept for callers pinning it.
    var wasListed = false
    /// Per target IP address: requests sent through this proxy, and those that failed.
    package var targets: [String: (requests: Int, failures: Int)] = [:]

    init(proxy: Proxy) { self.proxy = proxy }
}

/// The proxies the pool was given (pool-wide, per host name, pinned by a get), their ledgers, and
/// the lists dials take them from. A record stays while a list names it or a connection uses it.
struct ProxyStore {
    /// The proxy id of a connection made directly, through no proxy.
    static let direct: Int32 = -1

    private(set) var records: [ProxyRecord?] = []
    private var index: [Proxy: Int32] = [:]
    private var freeIDs: [Int32] = []
    /// The pool-wide list (`HotPoolConfiguration.proxies`).
    private var poolList: [Int32] = []
    /// Lists set by `setProxies(_:forHost:)`, by host name (empty = direct).
    private var hostLists: [String: [Int32]] = [:]
    /// Where the round-robin over each list resumes: the pool list's, and each host name's.
    private var poolCursor = 0
    private var hostCursors: [String: Int] = [:]

    init(poolProxies: [Proxy]) {
        poolList = poolProxies.map { listedID(of: $0) }
    }

    subscript(id: Int32) -> ProxyRecord {
        _read { yield records[Int(id)]! }
        _modify { yield &records[Int(id)]! }
    }

    /// The ids of every proxy record held, oldest first.
    var ids: [Int32] { index.values.sorted() }

    /// True while the pool has no proxy at all (no list, none pinned): every connection is direct.
    var isEmpty: Bool { index.isEmpty }

    /// The lists that name the proxy (the pool's, hosts' own).
    func lists(naming id: Int32) -> [[Int32]] {
        ([poolList] + hostLists.values).filter { $0.contains(id) }
    }

    /// True if the list for `name` has a proxy that is not ejected.
    func hasProxyInRotation(forName name: String) -> Bool {
        list(forName: name).contains { self[$0].ejectedUntil == nil }
    }

    /// True if some record is named by no list (a pinned proxy, or one a list dropped).
    var hasUnlisted: Bool { index.values.contains { !isListed($0) } }

    /// The id of `proxy`'s record, made if new.
    mutating func id(of proxy: Proxy) -> Int32 {
        if let id = index[proxy] { return id }
        let id = freeIDs.popLast() ?? Int32(records.count)
        if Int(id) == records.count { records.append(nil) }
        records[Int(id)] = ProxyRecord(proxy: proxy)
        index[proxy] = id
        return id
    }

    /// The id of `proxy`'s record, made if new, marked as named by a list.
    private mutating func listedID(of proxy: Proxy) -> Int32 {
        let id = id(of: proxy)
        self[id].wasListed = true
        return id
    }

    /// The proxies dials to hosts named `name` go through: the host's own list if set, else the
    /// pool's; empty = direct.
    func list(forName name: String) -> [Int32] { hostLists.isEmpty ? poolList : hostLists[name] ?? poolList }

    /// True if some list names the proxy.
    func isListed(_ id: Int32) -> Bool { poolList.contains(id) || hostLists.values.contains { $0.contains(id) } }

    /// Gives hosts named `name` their own list (nil: the pool's list again).
    mutating func setList(_ proxies: [Proxy]?, forName name: String) {
        hostLists[name] = proxies.map { $0.map { listedID(of: $0) } }
        hostCursors[name] = nil
    }

    /// The next proxy of the list for `name` in rotation, preferring ones not in `avoiding`; if
    /// every one is ejected, the one whose ejection ends first. `direct` for an empty list.
    mutating func nextInRotation(forName name: String, avoiding: [Int32]) -> Int32 {
        let list = list(forName: name)
        guard !list.isEmpty else { return Self.direct }
        var cursor = hostLists[name] != nil ? hostCursors[name, default: 0] : poolCursor
        defer { if hostLists[name] != nil { hostCursors[name] = cursor } else { poolCursor = cursor } }
        var fallback: Int32?
        for step in 0..<list.count {
            let id = list[(cursor + step) % list.count]
            guard self[id].ejectedUntil == nil else { continue }
            if avoiding.contains(id) {
                if fallback == nil { fallback = id }
                continue
            }
            cursor = (cursor + step + 1) % list.count
            return id
        }
        return fallback ?? list.min { self[$0].ejectedUntil! < self[$1].ejectedUntil! }!
    }

    /// True if `id` is in rotation in the list for `name`.
    func isInRotation(_ id: Int32, forName name: String) -> Bool {
        list(forName: name).contains(id) && self[id].ejectedUntil == nil
    }

    /// Counts a request (and whether it failed) through `id` to the IP `address`.
    mutating func count(through id: Int32, to address: String, requests: Int = 0, failures: Int = 0) {
        let counts = self[id].targets[address] ?? (0, 0)
        self[id].targets[address] = (counts.requests + requests, counts.failures + failures)
    }

    /// Frees the records no list names for which `isUnused` holds.
    mutating func reclaim(where isUnused: (Int32) -> Bool) {
        for (proxy, id) in index where !isListed(id) && isUnused(id) {
            index[proxy] = nil
            records[Int(id)] = nil
            freeIDs.append(id)
        }
    }
}
