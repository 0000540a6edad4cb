import CShims
import Glibc
import HTTPTypes
import Logging

/// An operation under way on a slot.
enum SlotOp {
    case dial(DialOp)
    case roundTrip(RoundTripOp)
}

/// The pool's state and decisions. Lives on the reactor thread: every method runs there, called
/// from posted events, readiness callbacks and timers; `@unchecked Sendable` only so posted
/// closures can carry it. (After the reactor has stopped, its frozen state may be read anywhere.)
/// The state the get/put path touches is marked `@exclusivity(unchecked)`: one thread, and no
/// access held across a call, so the runtime's dynamic exclusivity checks only cost time.
final class PoolCore: @unchecked Sendable {
    let config: HotPoolConfiguration
    /// `config.maxLifetime` and `config.leaseWarningAfter` in nanoseconds, for the put path.
    let maxLifetimeNanos: Int64
    let leaseWarningNanos: Int64
    let reactor: Reactor
    let logger: Logger
    let metrics = PoolMetrics()
    /// One TLS context per fingerprint profile (freed by `close`).
    private(set) var tlsContexts: [OpaquePointer]
    let profiles: [FingerprintSpec]
    /// Per profile, per Accept-Language choice: the request headers a connection adds.
    let profileHeaders: [[ProfileHeaders]]
    /// The profile the next dial takes, when profiles rotate.
    var nextProfile = 0

    let table: ConnectionTable
    /// The operation under way per slot (indexed like the table).
    @exclusivity(unchecked) var ops: [SlotOp?] = []
    @exclusivity(unchecked) var hosts: [HostState] = []
    private var hostIndex: [HostKey: Int32] = [:]
    /// Host ids by name (one per port), so `setAddresses` reaches only its name's hosts.
    private var hostIDsByName: [String: [Int32]] = [:]
    @exclusivity(unchecked) var ips: [IPRecord] = []
    private var ipIndex: [String: [Int32: Int32]] = [:]
    /// Ids of reclaimed host and IP records, reused before the arrays grow.
    private var freeHostIDs: [Int32] = []
    private var freeIPIDs: [Int32] = []
    /// What a reclaimed host's place holds until its id is reused (so its strings are freed).
    private let reclaimedHost = HostState(id: -1, key: HostKey(name: "", port: 0), now: 0)
    /// Addresses given by `setAddresses`, by host name.
    private var staticAddresses: [String: [String]] = [:]
    /// Hosts whose `waiters` is not empty.
    @exclusivity(unchecked) var waitingHosts: Set<Int32> = []
    @exclusivity(unchecked) var closed = false
    /// The errno of the last failed close(2).
    var closeErrno: Int32 = 0

    // Counters (exact: only the reactor writes them).
    @exclusivity(unchecked) var totalRequests = 0
    @exclusivity(unchecked) var failedRequests = 0
    var closedByReason = [Int](repeating: 0, count: CloseReason.allCases.count + 1)
    var failedDials = 0
    @exclusivity(unchecked) var staleHandleUses = 0
    var connectionsOpened = 0
    var connectionsFromDNS = 0

    var tickTimer: TimerID?
    /// When `tickTimer` fires; `.max` while it is not armed.
    @exclusivity(unchecked) var tickAt = Int64.max
    var cleanupTimer: TimerID?
    var healthCheckTimer: TimerID?
    /// Scratch buffer for TLS reads (every read happens on this thread).
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    /// The instant and monotonic time taken together, to turn table times into clock instants.
    private let epochInstant = ContinuousClock.now
    private let epochNanos = hp_monotonic_ns()

    init(config: HotPoolConfiguration, reactor: Reactor, tlsContexts: [OpaquePointer]) {
        self.config = config
        self.maxLifetimeNanos = config.maxLifetime.nanoseconds
        self.leaseWarningNanos = config.leaseWarningAfter.nanoseconds
        self.reactor = reactor
        self.logger = config.logger
        self.tlsContexts = tlsContexts
        self.table = ConnectionTable(maxSlots: config.maxConnections)
        self.profiles = config.profiles
        self.profileHeaders = profiles.map { spec in
            let fields = spec.headers.compactMap { header in HTTPField.Name(header.name).map { HTTPField(name: $0, value: header.value) } }
            guard !spec.acceptLanguages.isEmpty else { return [ProfileHeaders(fields)] }
            return spec.acceptLanguages.map { language in
                ProfileHeaders(fields.map { $0.name == .acceptLanguage ? HTTPField(name: .acceptLanguage, value: language) : $0 })
            }
        }
    }

    deinit {
        readBuffer.deallocate()
        tlsContexts.forEach(hp_tls_ctx_free)
    }

    var now: Int64 { reactor.now }

    /// The instant `duration` from now; `Int64.max` ("never") past the clock's range.
    func deadline(after duration: Duration) -> Int64 {
        HotPool.deadline(from: now, after: duration.nanoseconds)
    }

    func instant(_ nanos: Int64) -> ContinuousClock.Instant {
        epochInstant + .nanoseconds(nanos - epochNanos)
    }

    /// Starts the periodic cleanup and health check.
    func start() {
        scheduleCleanup()
        scheduleHealthCheck()
    }

    // MARK: hosts and addresses

    func host(for key: HostKey) -> HostState {
        if let id = hostIndex[key] {
            let host = hosts[Int(id)]
            host.lastUsed = now
            return host
        }
        let host = HostState(id: freeHostIDs.popLast() ?? Int32(hosts.count), key: key, now: now)
        if Int(host.id) == hosts.count { hosts.append(host) } else { hosts[Int(host.id)] = host }
        hostIndex[key] = host.id
        hostIDsByName[key.name, default: []].append(host.id)
        if let addresses = staticAddresses[key.name] {
            assign(addresses, to: host, fromDNS: false)
        } else if hp_ip_family(key.name) != 0 {
            assign([key.name], to: host, fromDNS: false)
        }
        return host
    }

    func ipID(host: Int32, address: String) -> Int32 {
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

    /// Host records held now.
    var hostRecordCount: Int { hostIndex.count }

    /// Frees the records of hosts with nothing going on for `idleTimeout` (no connection, waiter,
    /// lookup or blacklisted IP), so a crawler touching millions of hosts stays bounded. A later
    /// get makes the record anew (with the addresses `setAddresses` gave, which stay). Returns
    /// how many were reclaimed.
    @discardableResult
    func reclaimIdleHosts() -> Int {
        let t = now, idleTimeout = config.idleTimeout.nanoseconds
        let idle = hostIndex.values.filter { id in
            let host = hosts[Int(id)]
            return table.liveCount(host: id) == 0 && host.waiters.isEmpty && !host.resolving
                && t - host.lastUsed >= idleTimeout
                && !host.ipRecords.contains { ips[Int($0)].blacklistedUntil > t }
        }
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
            hosts[Int(id)] = reclaimedHost
            freeHostIDs.append(id)
        }
        return idle.count
    }

    private func assign(_ addresses: [String], to host: HostState, fromDNS: Bool) {
        host.ipIDs = addresses.map { ipID(host: host.id, address: $0) }
        host.hasAddresses = true
        host.addressesFromDNS = fromDNS
    }

    func setAddresses(_ addresses: [String], forHost name: String) {
        guard isValidHostName(name) else {
            return logger.warning("setAddresses ignored an invalid host name", metadata: ["host": "\(String(reflecting: name))"])
        }
        let valid = addresses.filter { hp_ip_family($0) != 0 }
        if valid.count != addresses.count {
            logger.warning("setAddresses ignored non-IP entries", metadata: ["host": "\(name)", "given": "\(addresses)"])
        }
        staticAddresses[name] = valid
        let named = hostIDsByName[name] ?? []
        for id in named {
            assign(valid, to: hosts[Int(id)], fromDNS: false)
        }
        serviceWaiters(named)
    }

    /// Resolves `host` on a helper thread; the answer comes back as a reactor event.
    private func resolve(_ host: HostState) {
        host.resolving = true
        let key = host.key, id = host.id
        do {
            let thread = try startThread { [reactor] in
                let result = resolveAddresses(key.name, port: key.port)
                reactor.post { self.resolved(id, result) }
            }
            pthread_detach(thread)
        } catch {
            resolved(host.id, .failure(.noAddresses(host: key.name, reason: "\(error)")))
        }
    }

    private func resolved(_ id: Int32, _ result: Result<[String], HotPoolError>) {
        guard !closed else { return }
        let host = hosts[Int(id)]
        host.resolving = false
        switch result {
        case .success(let addresses):
            if !host.hasAddresses { assign(addresses, to: host, fromDNS: true) }
            serviceWaiters([id])
        case .failure(let error):
            for waiter in host.waiters { waiter.finish(.failure(error)) }
            host.waiters.removeAll()
            waitingHosts.remove(id)
        }
    }

    // MARK: get

    /// A caller asks for a connection.
    func acquire(_ waiter: Waiter) {
        guard !closed else { return waiter.finish(.failure(.poolClosed)) }
        guard !waiter.cancelled else { return waiter.finish(.failure(.cancelled)) }
        let host = host(for: waiter.key)
        waiter.deadline = deadline(after: config.connectTimeout)
        if !host.hasAddresses {
            if !host.resolving { resolve(host) }
        } else if serve(waiter, host) {
            return
        }
        host.waiters.append(waiter)
        waitingHosts.insert(host.id)
        armTick(at: waiter.deadline)
    }

    /// Gives `waiter` an idle connection, starts a dial for it, or fails it. False if it must wait.
    func serve(_ waiter: Waiter, _ host: HostState) -> Bool {
        let pinned = waiter.pinnedIP.map { ipID(host: host.id, address: $0) }
        if let slot = table.takeIdle(host: host.id, ip: pinned) {
            leaseOut(slot, to: waiter)
            return true
        }
        guard canDial(host.id) else { return false }
        guard let ip = pinned ?? pickIP(host, avoiding: waiter.failedIPs) else {
            waiter.finish(.failure(host.ipIDs.isEmpty
                ? .noAddresses(host: host.key.name, reason: "no addresses set")
                : .allAddressesBlacklisted(host: host.key.name)))
            return true
        }
        startDial(host: host, ip: ip, for: waiter)
        return true
    }

    func canDial(_ host: Int32) -> Bool {
        table.connectionCount + table.dialingCount < config.maxConnections
            && table.liveCount(host: host) < config.maxConnectionsPerHost
    }

    /// The next IP of the host in rotation that is not blacklisted, preferring ones not in `avoiding`.
    private func pickIP(_ host: HostState, avoiding: [Int32]) -> Int32? {
        let t = now
        var fallback: Int32?
        for step in 0..<host.ipIDs.count {
            let index = (host.cursor + step) % host.ipIDs.count
            let id = host.ipIDs[index]
            guard ips[Int(id)].blacklistedUntil <= t else { continue }
            if avoiding.contains(id) {
                if fallback == nil { fallback = id }
                continue
            }
            host.cursor = index + 1
            return id
        }
        return fallback
    }

    /// Hands a leased slot to `waiter`.
    func leaseOut(_ slot: Int32, to waiter: Waiter) {
        stampLease(slot)
        let profile = Int(table.profile[Int(slot)])
        waiter.finish(.success(Lease(
            handle: table.beginLease(slot), host: waiter.key.name, port: waiter.key.port,
            authority: hosts[Int(table.hostID[Int(slot)])].authority, ip: ipAddress(slot),
            profile: profiles[profile].name, profileHeaders: profileHeaders[profile][Int(table.language[Int(slot)])])))
    }

    /// A lease begins: stamps it and makes sure the tick will report it if it is held too long.
    func stampLease(_ slot: Int32) {
        let t = now
        table.lastUsed[Int(slot)] = t
        table.leasedAt[Int(slot)] = t
        armTick(at: HotPool.deadline(from: t, after: leaseWarningNanos))
    }

    /// Gives a leased, healthy connection to the oldest waiter that can take it, or parks it idle.
    func handOff(_ slot: Int32) {
        let hostID = table.hostID[Int(slot)]
        if waitingHosts.contains(hostID) {
            let host = hosts[Int(hostID)]
            let ip = ipAddress(slot)
            if let index = host.waiters.firstIndex(where: { $0.pinnedIP == nil || $0.pinnedIP == ip }) {
                let waiter = host.waiters.remove(at: index)
                if host.waiters.isEmpty { waitingHosts.remove(host.id) }
                return leaseOut(slot, to: waiter)
            }
        }
        guard table.idleCount < config.maxIdleConnections else { destroy(slot, .excessIdle); return }
        table.makeIdle(slot)
    }

    /// Serves waiters after capacity changed (every waiting host), or after the addresses of
    /// `changed` hosts did (those only).
    func serviceWaiters(_ changed: [Int32]? = nil) {
        guard !closed else { return }
        for id in changed?.filter(waitingHosts.contains) ?? waitingHosts.sorted() {
            let host = hosts[Int(id)]
            // Take the waiter out first: serving it can re-enter (a dial that fails at once).
            while host.hasAddresses, let waiter = host.waiters.first {
                host.waiters.removeFirst()
                guard serve(waiter, host) else {
                    host.waiters.insert(waiter, at: 0)
                    break
                }
            }
            if host.waiters.isEmpty { waitingHosts.remove(id) }
        }
    }

    /// A waiting caller's task was cancelled.
    func cancel(_ waiter: Waiter) {
        waiter.cancelled = true
        guard waiter.isWaiting else { return }
        if let id = hostIndex[waiter.key] {
            let host = hosts[Int(id)]
            host.waiters.removeAll { $0 === waiter }
            if host.waiters.isEmpty { waitingHosts.remove(id) }
        }
        waiter.finish(.failure(.cancelled))
    }

    // MARK: put and remove

    /// Looks up a caller's handle; counts and rejects one whose lease has ended.
    func leasedSlot(_ handle: LeaseHandle) -> Int32? {
        guard table.isCurrent(handle) else {
            countStaleHandleUse()
            return nil
        }
        return handle.slot
    }

    /// A handle whose lease ended, or of another pool, was used: ignored, and counted.
    func countStaleHandleUse() {
        staleHandleUses += 1
    }

    /// The seed's PutConnection: never fails; destroys what must not be reused.
    func release(_ handle: LeaseHandle) {
        guard let slot = leasedSlot(handle) else { return }
        let s = Int(slot)
        // A deadline is set exactly while an operation is under way.
        if table.deadline[s] != 0, case .roundTrip(let op) = ops[s] {
            // Returned with a round trip still under way: the exchange is abandoned.
            failRoundTrip(slot, op, .connectionClosed(host: hostName(slot), ip: ipAddress(slot)))
        }
        table.lastUsed[s] = now
        takeBack(slot)
    }

    /// A lease ended (a put, a passed health check): destroys the connection if it must not be
    /// reused, else hands it to a waiter or parks it idle.
    func takeBack(_ slot: Int32) {
        let s = Int(slot)
        let t = now
        if let reason = CloseReason(code: table.closeOnReturn[s]) { destroy(slot, reason); return }
        if !table.healthy[s] { destroy(slot, .unhealthyOnReturn); return }
        if t - table.created[s] >= maxLifetimeNanos { destroy(slot, .maxLifetime); return }
        if ips[Int(table.ipID[s])].blacklistedUntil > t { destroy(slot, .blacklisted); return }
        handOff(slot)
    }

    /// The seed's removeFromPool / RemoveConnection, for a connection the caller holds.
    func remove(_ handle: LeaseHandle) {
        guard let slot = leasedSlot(handle) else { return }
        destroy(slot, .removed)
    }

    /// Validation was not answered 200: the connection goes; a 403 blacklists its IP for the host.
    func rejectValidated(_ handle: LeaseHandle, status: Int) {
        guard let slot = leasedSlot(handle) else { return }
        reject(slot, .validationFailed, status: status)
    }

    /// A check of the connection (validation, health check) failed: it is destroyed, and a 403
    /// (the IP refusing us) also blacklists its IP for the host.
    func reject(_ slot: Int32, _ reason: CloseReason, status: Int?) {
        let ip = table.ipID[Int(slot)]
        destroy(slot, reason)
        if status == 403 { blacklist(ip) }
    }

    /// Takes an IP out of rotation for its host: idle connections to it go now, leased ones on return.
    func blacklist(_ ip: Int32) {
        ips[Int(ip)].blacklistedUntil = deadline(after: config.blacklistCheckInterval)
        logger.debug("blacklisted", metadata: ["host": "\(hosts[Int(ips[Int(ip)].host)].key.name)", "ip": "\(ips[Int(ip)].address)"])
        for slot in table.idleSlots(host: ips[Int(ip)].host) where table.ipID[Int(slot)] == ip {
            destroy(slot, .blacklisted)
        }
    }

    // MARK: destruction

    /// Destroys a connection once: fails what was under way on it, closes its socket (sending
    /// close_notify when the connection is sound), frees the slot and counts the reason.
    func destroy(_ slot: Int32, _ reason: CloseReason) {
        let s = Int(slot)
        let state = table.state[s]
        let host = hostName(slot), ip = ipAddress(slot)
        switch ops[s] {
        case .roundTrip(let op):
            ops[s] = nil
            if case .caller(let handoff) = op.requester {
                countFailedRequest()
                handoff.deliver(.failure(reason == .poolClosed ? .poolClosed : .connectionClosed(host: host, ip: ip)))
            }
        case .dial(let op):
            ops[s] = nil
            op.waiter?.dialing = false
            op.waiter?.finish(.failure(reason == .poolClosed ? .poolClosed : .connectionClosed(host: host, ip: ip)))
        case nil:
            break
        }
        closeSocket(slot, sendCloseNotify: state != .dialing && table.healthy[s])
        table.free(slot)
        if state == .dialing {
            failedDials += 1
        } else {
            closedByReason[Int(reason.code)] += 1
            metrics.closed(reason)
            logger.debug("connection destroyed", metadata: ["host": "\(host)", "ip": "\(ip)", "reason": "\(reason)"])
        }
        serviceWaiters()
    }

    /// Closes the slot's socket and frees its SSL object now; the slot itself stays.
    /// A failed close(2) is kept in `closeErrno` for `close()` to report.
    func closeSocket(_ slot: Int32, sendCloseNotify: Bool) {
        let s = Int(slot)
        if let ssl = table.ssl[s] {
            if sendCloseNotify && table.fd[s] >= 0 { _ = hp_tls_shutdown(ssl) }
            hp_tls_free(ssl)
            table.ssl[s] = nil
        }
        if table.fd[s] >= 0 {
            let rc = hp_close(table.fd[s])  // also drops it from epoll
            if rc < 0 { closeErrno = -rc }
            table.fd[s] = -1
        }
    }

    // MARK: close

    /// The seed's Close: stop timers, fail waiters, destroy every connection (leased ones too),
    /// free every fd and SSL object, clear the maps. Returns the first close error. Idempotent.
    func close() -> HotPoolError? {
        guard !closed else { return nil }
        closed = true
        for timer in [tickTimer, cleanupTimer, healthCheckTimer].compactMap({ $0 }) { reactor.cancel(timer) }
        tickTimer = nil
        tickAt = .max
        cleanupTimer = nil
        healthCheckTimer = nil
        for host in hosts {
            for waiter in host.waiters { waiter.finish(.failure(.poolClosed)) }
            host.waiters.removeAll()
        }
        waitingHosts.removeAll()
        var firstError: HotPoolError?
        for slot in 0..<Int32(table.slotCount) where table.state[Int(slot)] != .free {
            let host = hostName(slot), ip = ipAddress(slot)
            closeErrno = 0
            destroy(slot, .poolClosed)
            if closeErrno != 0 && firstError == nil {
                firstError = .networkError(host: host, ip: ip, reason: "close: \(String(cString: strerror(closeErrno)))")
            }
        }
        hostIndex.removeAll()
        hostIDsByName.removeAll()
        ipIndex.removeAll()
        staticAddresses.removeAll()
        tlsContexts.forEach(hp_tls_ctx_free)
        tlsContexts.removeAll()
        metrics.record(snapshot())
        logger.debug("pool closed")
        return firstError
    }

    // MARK: statistics

    func hostName(_ slot: Int32) -> String { hosts[Int(table.hostID[Int(slot)])].key.name }
    func ipAddress(_ slot: Int32) -> String { ips[Int(table.ipID[Int(slot)])].address }

    func snapshot() -> PoolStats {
        var healthy = 0
        var byReason: [CloseReason: Int] = [:]
        for slot in 0..<table.slotCount where table.state[slot] == .idle || table.state[slot] == .leased {
            if table.healthy[slot] { healthy += 1 }
        }
        for reason in CloseReason.allCases { byReason[reason] = closedByReason[Int(reason.code)] }
        return PoolStats(
            totalConnections: table.connectionCount,
            activeConnections: table.leasedCount,
            idleConnections: table.idleCount,
            healthyConnections: healthy,
            totalRequests: totalRequests,
            failedRequests: failedRequests,
            successRate: totalRequests == 0 ? 1 : Double(totalRequests - failedRequests) / Double(totalRequests),
            newConnectionsFromDNS: connectionsFromDNS,
            closedByReason: byReason,
            dialingConnections: table.dialingCount,
            failedDials: failedDials,
            waitingCallers: waitingHosts.reduce(0) { $0 + hosts[Int($1)].waiters.count },
            staleHandleUses: staleHandleUses,
            connectionsOpened: connectionsOpened)
    }

    func connectionSnapshots() -> [ConnectionStats] {
        (0..<Int32(table.slotCount)).compactMap { slot in
            let s = Int(slot)
            guard table.state[s] == .idle || table.state[s] == .leased else { return nil }
            return ConnectionStats(
                targetHost: hostName(slot), targetIP: ipAddress(slot),
                requestCount: Int(table.requestCount[s]), errorCount: Int(table.errorCount[s]),
                isHealthy: table.healthy[s], created: instant(table.created[s]),
                lastUsed: instant(table.lastUsed[s]), isLeased: table.state[s] == .leased,
                profile: profiles[Int(table.profile[s])].name)
        }
    }
}
