/// A host as the pool keys it: name and port.
struct HostKey: Hashable, Sendable {
    let name: String
    let port: Int

    /// The Host header value: the name (an IPv6 literal in brackets), with the port unless 443.
    var authority: String {
        let host = name.contains(":") ? "[\(name)]" : name
        return port == 443 ? host : "\(host):\(port)"
    }
}

/// What the pool knows of one host.
struct HostRecord {
    let id: Int32
    let key: HostKey
    /// The Host header value, made once.
    let authority: String
    /// The host's current addresses, as IP record ids, in rotation order.
    var ipIDs: [Int32] = []
    /// Where the round-robin over `ipIDs` resumes.
    var cursor = 0
    var resolving = false
    /// True once addresses are known (set, literal or resolved).
    var hasAddresses = false
    var addressesFromDNS = false
    /// Every IP record made for this host (current addresses, earlier ones, pinned IPs): what
    /// goes when the host's record is reclaimed.
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
struct IPRecord {
    let address: String
    let host: Int32
    /// Monotonic ns until which the IP is out of rotation for its host; 0 = not blacklisted.
    var blacklistedUntil: Int64 = 0
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
    /// Addresses given by `setAddresses`, by host name (kept when a host's record is reclaimed).
    private var staticAddresses: [String: [String]] = [:]

    /// Host records held now.
    var count: Int { hostIndex.count }

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
        let record = IPRecord(address: address, host: host)
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
        return id
    }

    mutating func assign(_ addresses: [String], to host: Int32, fromDNS: Bool) {
        let ids = addresses.map { ipID(host: host, address: $0) }
        hosts[Int(host)].ipIDs = ids
        hosts[Int(host)].hasAddresses = true
        hosts[Int(host)].addressesFromDNS = fromDNS
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
    mutating func pickIP(_ host: Int32, avoiding: [Int32], now: Int64) -> Int32? {
        let ipIDs = hosts[Int(host)].ipIDs
        var fallback: Int32?
        for step in 0..<ipIDs.count {
            let index = (hosts[Int(host)].cursor + step) % ipIDs.count
            let id = ipIDs[index]
            guard ips[Int(id)].blacklistedUntil <= now else { continue }
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
            for ip in host.ipRecords {
                let address = ips[Int(ip)].address
                ipIndex[address]?[id] = nil
                if ipIndex[address]?.isEmpty == true { ipIndex[address] = nil }
                ips[Int(ip)] = IPRecord(address: "", host: -1)
                freeIPIDs.append(ip)
            }
            // What the place holds until its id is reused (so the strings are freed).
            hosts[Int(id)] = HostRecord(id: -1, key: HostKey(name: "", port: 0), now: 0)
            freeHostIDs.append(id)
        }
        return idle.count
    }

    /// Forgets every record (the pool is closed).
    mutating func removeAll() {
        lastFound = nil
        hostIndex.removeAll()
        hostIDsByName.removeAll()
        ipIndex.removeAll()
        staticAddresses.removeAll()
    }
}
