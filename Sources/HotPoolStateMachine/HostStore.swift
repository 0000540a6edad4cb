import HotPoolCore

/// A host as the pool keys it: name and port.
package struct HostKey: Hashable, Sendable {
    package let name: String
    package let port: Int

    package init(name: String, port: Int) {
        (self.name, self.port) = (name, port)
    }

    /// The Host header value: the name (an IPv6 literal in brackets), with the port unless 443.
    var authority: String {
        let host = name.contains(":") ? "[\(name)]" : name
        return port == 443 ? host : "\(host):\(port)"
    }
}

/// What the pool knows of one host.
package struct HostRecord {
    let id: Int32
    let key: HostKey
    /// The Host header value, made once.
    package let authority: String
    /// The host's current addresses, as IP record ids, in rotation order.
    var ipIDs: [Int32] = []
    /// Where the round-robin over `ipIDs` resumes.
    var cursor = 0
    var resolving = false
    /// `refreshAddresses` callers waiting for the lookup under way.
    var refreshWaiters: [WaiterID] = []
    /// `prewarm` callers, with the idle count each asked for; answered when no dial of the host
    /// is warming.
    var prewarmWaiters: [(id: WaiterID, count: Int)] = []
    /// Dials under way with no caller (pre-warming): connections that will go idle.
    var warming = 0
    /// True once addresses are known (set, literal or resolved).
    var hasAddresses = false
    var addressesFromDNS = false
    /// Every IP record made for this host (current addresses, earlier ones, pinned IPs): what
    /// goes when the host's record is reclaimed. Those out of its rotation go earlier, once
    /// nothing refers to them (`freeIPsOutOfRotation`).
    var ipRecords: [Int32] = []
    /// When a caller last asked for the host (monotonic ns).
    var lastUsed: Int64

    init(id: Int32, key: HostKey, now: Int64) {
        self.id = id
        self.key = key
        self.authority = key.authority
        self.lastUsed = now
    }
}

/// One IP of one host. Two hosts sharing an IP have a record each, so they never collide.
package struct IPRecord {
    package let address: String
    let host: Int32
    /// Why the IP is out of rotation for its host; nil = in rotation.
    package var blacklistReason: BlacklistReason?
    /// When a recovery probe may try the blacklisted IP (monotonic ns).
    package var blacklistedUntil: Int64 = 0
    /// How long the current blacklisting lasts: doubled each time a recovery probe fails.
    var blacklistPeriod: Int64 = 0
    /// The slot of the recovery probe under way, if one is.
    var recoverySlot: Int32?
    /// Left out by the host name's allow list (`allowOnly`).
    var disallowed = false
    /// DNS no longer gives it: it takes no new connections, and its connections close.
    var removed = false
    /// Brought by a DNS refresh and not dialed since: its first connection counts in
    /// `newConnectionsFromDNS`.
    var awaitingFirstConnection = false
    /// Network or TLS failures since its last answered request.
    var consecutiveFailures = 0
    /// Times it was ejected for failures: each ejection lasts longer.
    var ejections = 0
    package var requests = 0
    package var failures = 0
    /// Answers with a block status (`BlockSignalPolicy.statuses`) to requests on its connections.
    package var blockAnswers = 0
    /// The latest of those since it was last blacklisted, counting towards the policy's threshold.
    var recentBlockAnswers = BlockAnswerTimes()
    /// When DNS last gave it (monotonic ns); 0 = never.
    package var lastResolved: Int64 = 0
    /// The proxy its dials keep while it is in rotation (`ProxySelection.stickyPerIP`).
    var stickyProxy = ProxyStore.direct

    init(address: String, host: Int32) {
        self.address = address
        self.host = host
    }

    /// Why a connection to this IP must not be kept or made, nil if it may.
    var exclusion: CloseReason? {
        if blacklistReason != nil || disallowed { return .blacklisted }
        return removed ? .addressRemoved : nil
    }
}

/// Host and IP records with their indexes; ids of reclaimed records are reused.
struct HostStore {
    private(set) var hosts: [HostRecord] = []
    private(set) var ips: [IPRecord] = []
    private var hostIndex: [HostKey: Int32] = [:]
    /// The host found last: a run of gets for one host compares its key instead of hashing it.
    private var lastFound: (key: HostKey, id: Int32)?
    /// Host ids by name (one per port), so `setAddresses` reaches only its name's hosts.
    private var hostIDsByName: [String: [Int32]] = [:]
    private var ipIndex: [String: [Int32: Int32]] = [:]
    private var freeHostIDs: [Int32] = []
    private var freeIPIDs: [Int32] = []
    /// The records of IPs not in their host's rotation: DNS or `setAddresses` no longer gives
    /// them (DNS's are marked `removed`), or only a pinned caller or a manual rule named them.
    /// `freeIPsOutOfRotation` frees them once nothing refers to them, without a walk over every
    /// IP record, so a host kept for `minIdlePerHost` does not keep every IP ever pinned.
    private(set) var ipsOutOfRotation: Set<Int32> = []
    /// Addresses given by `setAddresses`, by host name (kept when a host's record is reclaimed).
    private var staticAddresses: [String: [String]] = [:]
    /// The caller's access rules by host name (kept when a host's record is reclaimed): the
    /// allow list, and manual blacklistings with their expiry.
    private(set) var allowLists: [String: Set<String>] = [:]
    private(set) var manualBlacklist: [String: [String: Int64]] = [:]

    /// Host records held now.
    var count: Int { hostIndex.count }

    /// The ids of the host records held now.
    var hostIDs: Dictionary<HostKey, Int32>.Values { hostIndex.values }

    /// The id of the record of `key`, nil if there is none.
    func hostID(for key: HostKey) -> Int32? { hostIndex[key] }

    /// The ids of the hosts (one per port) named `name`.
    func hostIDs(named name: String) -> [Int32] { hostIDsByName[name] ?? [] }

    /// Every IP record of the hosts named `name`, with its host.
    func ipIDs(named name: String) -> [(host: Int32, ip: Int32)] {
        hostIDs(named: name).flatMap { host in hosts[Int(host)].ipRecords.map { (host, $0) } }
    }

    // Borrowing and in-place accessors: reading one field must not copy the record (and retain
    // its strings), on every put.
    subscript(host id: Int32) -> HostRecord {
        _read { yield hosts[Int(id)] }
        _modify { yield &hosts[Int(id)] }
    }

    subscript(ip id: Int32) -> IPRecord {
        _read { yield ips[Int(id)] }
        _modify { yield &ips[Int(id)] }
    }

    /// The host's record, made if new (with the addresses `setAddresses` gave, or the name itself
    /// when it is an IP literal). `needsResolve` is true for a record with no addresses and no
    /// lookup under way.
    mutating func host(for key: HostKey, nameIsAddress: Bool, now: Int64) -> (id: Int32, needsResolve: Bool) {
        if let id = lastFound.flatMap({ $0.key == key ? $0.id : nil }) ?? hostIndex[key] {
            lastFound = (key, id)
            hosts[Int(id)].lastUsed = now
            return (id, !hosts[Int(id)].hasAddresses && !hosts[Int(id)].resolving)
        }
        let id = freeHostIDs.popLast() ?? Int32(hosts.count)
        let record = HostRecord(id: id, key: key, now: now)
        if Int(id) == hosts.count { hosts.append(record) } else { hosts[Int(id)] = record }
        hostIndex[key] = id
        hostIDsByName[key.name, default: []].append(id)
        if let addresses = staticAddresses[key.name] {
            assign(addresses, to: id, fromDNS: false)
        } else if nameIsAddress {
            assign([key.name], to: id, fromDNS: false)
        }
        return (id, !hosts[Int(id)].hasAddresses)
    }

    /// The record of `address` for `host`, made if new.
    mutating func ipID(host: Int32, address: String) -> Int32 {
        if let id = ipIndex[address]?[host] { return id }
        var record = IPRecord(address: address, host: host)
        let name = hosts[Int(host)].key.name
        if let allowed = allowLists[name] { record.disallowed = !allowed.contains(address) }
        if let until = manualBlacklist[name]?[address] {
            record.blacklistReason = .manual
            record.blacklistedUntil = until
        }
        let id: Int32
        if let free = freeIPIDs.popLast() {
            id = free
            ips[Int(id)] = record
        } else {
            id = Int32(ips.count)
            ips.append(record)
        }
        ipIndex[address, default: [:]][host] = id
        hosts[Int(host)].ipRecords.append(id)
        ipsOutOfRotation.insert(id)  // until `assign` puts it in
        return id
    }

    /// The record of `address` for `host`, nil if there is none.
    func existingIPID(host: Int32, address: String) -> Int32? {
        ipIndex[address]?[host]
    }

    /// True if the host has an IP in rotation other than `ip`.
    func hasIPInRotation(_ host: Int32, besides ip: Int32) -> Bool {
        hosts[Int(host)].ipIDs.contains { $0 != ip && ips[Int($0)].exclusion == nil }
    }

    /// Makes `addresses` the host's rotation; the IPs it had and no longer has leave it.
    mutating func assign(_ addresses: [String], to host: Int32, fromDNS: Bool) {
        let ids = addresses.map { ipID(host: host, address: $0) }
        for id in ids {
            ips[Int(id)].removed = false
            ipsOutOfRotation.remove(id)
        }
        let current = Set(ids)
        for id in hosts[Int(host)].ipIDs where !current.contains(id) { ipsOutOfRotation.insert(id) }
        hosts[Int(host)].ipIDs = ids
        hosts[Int(host)].hasAddresses = true
        hosts[Int(host)].addressesFromDNS = fromDNS
    }

    /// Takes a DNS answer (without repeats) for a host whose addresses come from DNS: new IPs
    /// join the rotation (each awaiting its first connection, unless this is the host's first
    /// answer), and IPs no longer given are marked removed. Returns the removed ones. O(n) in
    /// the old and new addresses.
    mutating func applyResolved(_ addresses: [String], to host: Int32, now: Int64) -> [Int32] {
        let first = !hosts[Int(host)].hasAddresses
        let old = hosts[Int(host)].ipIDs
        let oldSet = Set(old)
        assign(addresses, to: host, fromDNS: true)
        let current = Set(hosts[Int(host)].ipIDs)
        for id in current {
            ips[Int(id)].lastResolved = now
            if !first && !oldSet.contains(id) { ips[Int(id)].awaitingFirstConnection = true }
        }
        let gone = old.filter { !current.contains($0) }
        for id in gone {
            ips[Int(id)].removed = true
            ips[Int(id)].awaitingFirstConnection = false
        }
        return gone
    }

    /// Uses `addresses` for every host (port) named `name`, now and when made later; returns
    /// the ids of the hosts it changed.
    mutating func setStaticAddresses(_ addresses: [String], forName name: String) -> [Int32] {
        staticAddresses[name] = addresses
        let named = hostIDsByName[name] ?? []
        for id in named { assign(addresses, to: id, fromDNS: false) }
        return named
    }

    /// The next IP of the host in rotation that is not blacklisted, preferring ones not in `avoiding`.
    mutating func pickIP(_ host: Int32, avoiding: [Int32] = []) -> Int32? {
        let ipIDs = hosts[Int(host)].ipIDs
        var fallback: Int32?
        for step in 0..<ipIDs.count {
            let index = (hosts[Int(host)].cursor + step) % ipIDs.count
            let id = ipIDs[index]
            guard ips[Int(id)].exclusion == nil else { continue }
            if avoiding.contains(id) {
                if fallback == nil { fallback = id }
                continue
            }
            hosts[Int(host)].cursor = index + 1
            return id
        }
        return fallback
    }

    /// Frees the records of hosts for which `isIdle` holds, and their IP records; returns how many.
    mutating func reclaim(where isIdle: (HostRecord) -> Bool) -> Int {
        let idle = hostIndex.values.filter { isIdle(hosts[Int($0)]) }
        if !idle.isEmpty { lastFound = nil }
        for id in idle {
            let host = hosts[Int(id)]
            hostIndex[host.key] = nil
            hostIDsByName[host.key.name]?.removeAll { $0 == id }
            if hostIDsByName[host.key.name]?.isEmpty == true { hostIDsByName[host.key.name] = nil }
            for ip in host.ipRecords { freeIP(ip) }
            // What the place holds until its id is reused (so the strings are freed).
            hosts[Int(id)] = HostRecord(id: -1, key: HostKey(name: "", port: 0), now: 0)
            freeHostIDs.append(id)
        }
        return idle.count
    }

    /// Frees the records of IPs out of their host's rotation for which `isUnused` holds (nothing
    /// else may refer to their ids, which are reused); their hosts keep their other records.
    mutating func freeIPsOutOfRotation(where isUnused: (Int32, IPRecord) -> Bool) {
        let unused = ipsOutOfRotation.filter { isUnused($0, ips[Int($0)]) }
        var byHost: [Int32: Set<Int32>] = [:]
        for ip in unused { byHost[ips[Int(ip)].host, default: []].insert(ip) }
        for (host, freed) in byHost { hosts[Int(host)].ipRecords.removeAll { freed.contains($0) } }
        for ip in unused { freeIP(ip) }
    }

    /// Frees one IP record: out of the index, its id free for reuse. Its host's `ipRecords` is
    /// the caller's to update.
    private mutating func freeIP(_ ip: Int32) {
        let (address, host) = (ips[Int(ip)].address, ips[Int(ip)].host)
        ipIndex[address]?[host] = nil
        if ipIndex[address]?.isEmpty == true { ipIndex[address] = nil }
        ipsOutOfRotation.remove(ip)
        // What the place holds until its id is reused (so the string is freed).
        ips[Int(ip)] = IPRecord(address: "", host: -1)
        freeIPIDs.append(ip)
    }

    /// Sets (or, with nil, clears) the allow list of the hosts named `name`; returns the records
    /// of their IPs it now leaves out.
    mutating func setAllowList(_ allowed: Set<String>?, forName name: String) -> [Int32] {
        allowLists[name] = allowed
        var excluded: [Int32] = []
        for host in hostIDs(named: name) {
            for id in hosts[Int(host)].ipRecords {
                let disallowed = allowed.map { !$0.contains(ips[Int(id)].address) } ?? false
                ips[Int(id)].disallowed = disallowed
                if disallowed { excluded.append(id) }
            }
        }
        return excluded
    }

    /// Records (or, with nil, forgets) a manual blacklisting of `address` for hosts named `name`.
    mutating func setManualBlacklist(_ until: Int64?, address: String, forName name: String) {
        manualBlacklist[name, default: [:]][address] = until
        if manualBlacklist[name]?.isEmpty == true { manualBlacklist[name] = nil }
    }

    /// Forgets every record (the pool is closed).
    mutating func removeAll() {
        lastFound = nil
        hostIndex.removeAll()
        hostIDsByName.removeAll()
        ipIndex.removeAll()
        ipsOutOfRotation.removeAll()
        staticAddresses.removeAll()
        allowLists.removeAll()
        manualBlacklist.removeAll()
    }
}
