import HotPoolCore

/// The pool's decisions, and nothing else: events in, actions out. It owns the policy state
/// (the connection table's columns, hosts, IPs, waiters, counters) and performs no I/O: it
/// imports no C, reads no clock (the driver passes `now` with each event) and keeps its timers
/// as data (`armTimer` actions, `timerFired` events). The driver executes the actions and feeds
/// back what the sockets did. The models are AsyncHTTPClient's `HTTPConnectionPool.StateMachine`
/// and postgres-nio's `PoolStateMachine`.
///
/// Not copyable: it owns its table, which a copy would share.
package struct PoolStateMachine: ~Copyable {
    /// The limits and durations the machine decides with (durations in nanoseconds, `Int64.max`
    /// for "never"), taken from the pool's configuration, whose defaults are the only ones.
    package struct Configuration {
        var maxConnections: Int
        var maxConnectionsPerHost: Int
        var maxIdleConnections: Int
        var maxRetries: Int
        var connectTimeout: Int64
        var acquireTimeout: Int64
        var idleTimeout: Int64
        var maxLifetime: Int64
        var validationTimeout: Int64
        /// nil = no health-check probes (no `healthCheckPath`, no PINGs).
        var healthCheckInterval: Int64?
        var cleanupInterval: Int64
        /// How long a 403 blacklists an IP, and each failure ejection's step.
        var blacklistTimeout: Int64
        /// The longest a blacklisting lasts (backed-off recovery, repeated ejections).
        var maxBlacklistTime: Int64
        var blacklistCheckInterval: Int64
        /// Block signals from ordinary traffic; nil = answers are not counted.
        var blockSignals: BlockSignals?
        var dnsUpdateInterval: Int64
        /// The most addresses of one DNS answer a host uses (the first ones).
        var maxAddressesPerLookup: Int
        var consecutiveFailuresToEject: Int
        var maxEjectedShare: Double
        var minIdlePerHost: Int
        /// Recovery probes and health checks send a request, not only dial.
        var probesWithRequest: Bool
        /// Idle HTTP/2 connections are health-checked with a PING.
        var pingsIdleHTTP2Connections: Bool
        var leaseWarningAfter: Int64
        var idleOrder: IdleOrder
        /// The most callers an HTTP/2 connection is leased to at once (the server's own limit may be lower).
        var maxStreamsPerConnection: Int
        /// The pool-wide proxies, and how a dial picks among a host's.
        var proxies: [Proxy]
        var proxySelection: ProxySelection
        /// Other reactors serve the same pool: the IP blacklistings and recoveries this machine
        /// decides are reported (`shareBlacklisting`, `shareRecovery`) for them to adopt.
        var sharesDecisions: Bool

        package init(_ config: HotPoolConfiguration) {
            maxConnections = config.maxConnections
            maxConnectionsPerHost = config.maxConnectionsPerHost
            maxIdleConnections = config.maxIdleConnections
            maxRetries = config.maxRetries
            connectTimeout = config.connectTimeout.nanoseconds
            acquireTimeout = config.acquireTimeout.nanoseconds
            idleTimeout = config.idleTimeout.nanoseconds
            maxLifetime = config.maxLifetime.nanoseconds
            validationTimeout = config.validationTimeout.nanoseconds
            healthCheckInterval = config.healthCheckPath == nil && !config.pingsIdleHTTP2Connections
                ? nil : config.healthCheckInterval.nanoseconds
            cleanupInterval = config.cleanupInterval.nanoseconds
            blacklistTimeout = config.blacklistTimeout.nanoseconds
            maxBlacklistTime = config.maxBlacklistTime.nanoseconds
            blacklistCheckInterval = config.blacklistCheckInterval.nanoseconds
            blockSignals = config.blockSignals.map {
                BlockSignals(statuses: $0.statuses, threshold: $0.threshold, window: $0.window.nanoseconds)
            }
            dnsUpdateInterval = config.dnsUpdateInterval.nanoseconds
            maxAddressesPerLookup = config.maxAddressesPerLookup
            consecutiveFailuresToEject = config.consecutiveFailuresToEject
            maxEjectedShare = config.maxEjectedShare
            minIdlePerHost = config.minIdlePerHost
            probesWithRequest = config.healthCheckPath != nil
            pingsIdleHTTP2Connections = config.pingsIdleHTTP2Connections
            leaseWarningAfter = config.leaseWarningAfter.nanoseconds
            idleOrder = config.idleOrder
            maxStreamsPerConnection = config.maxStreamsPerConnection
            proxies = config.proxies
            proxySelection = config.proxySelection
            sharesDecisions = config.reactors.resolved > 1
        }

        /// `BlockSignalPolicy`, its window in nanoseconds.
        struct BlockSignals {
            var statuses: Set<Int>
            var threshold: Int
            var window: Int64
        }

        /// True for a host `minIdlePerHost` keeps warm, the hosts `warm` tops up: with
        /// `minIdlePerHost` > 0, every host with addresses (set, a literal, or a lookup that
        /// answered) that a caller asked for (a get, a prewarm, a refresh), for as long as the
        /// pool is open. A host whose lookup never answered is not: nothing can be dialed for it.
        func keepsWarm(_ host: HostRecord) -> Bool {
            minIdlePerHost > 0 && host.hasAddresses
        }
    }

    /// What a caller asks for.
    package struct AcquireRequest: Sendable {
        package let key: HostKey
        /// An IP literal the connection must go to.
        let pinnedIP: String?
        /// The proxy the connection must go through.
        let pinnedProxy: Proxy?
        /// The host name is an IP literal, so it is its own address.
        package let nameIsAddress: Bool
        /// An IP the connection should not go to while the host has another in rotation (a
        /// retried `execute`'s last one); with none, it may.
        package var avoidedIP: String?

        package init(key: HostKey, pinnedIP: String?, pinnedProxy: Proxy? = nil, nameIsAddress: Bool) {
            (self.key, self.pinnedIP, self.pinnedProxy, self.nameIsAddress) = (key, pinnedIP, pinnedProxy, nameIsAddress)
        }
    }

    /// How the attempt before a retried `execute`'s next one ended: the retry is not a new request,
    /// and a failure it follows is no longer the request's.
    package enum PriorAttempt {
        case answered
        /// It was counted failed.
        case failed
    }

    /// How an exchange (a caller's request, or a probe) ended, as the driver saw it.
    package enum ExchangeOutcome {
        /// A complete response; `unusable` says why the connection can carry no further request
        /// (the server closes it, or sent bytes nobody asked for), nil if it can.
        case answered(status: Int, unusable: CloseReason?)
        /// An HTTP/2 PING health check was acknowledged; `unusable` as for `answered`.
        case acknowledged(unusable: CloseReason?)
        /// A network, TLS or protocol failure, or a timeout.
        case failed
        /// The request's HTTP/2 stream failed (reset, or refused over a limit); its connection is sound.
        case streamFailed
        /// The request was not processed (the server refused its stream, or the driver had no
        /// request to send): it is not counted here, and the connection is sound.
        case notProcessed
        /// Its requester gave it up midway (a streamed body cut short by its caller, or left by
        /// its reader): a failed request, and an HTTP/1.1 connection carries no further request,
        /// but nothing is charged to the IP (the server did nothing wrong).
        case abandoned
    }

    /// The machine's timers.
    package enum Timer: CaseIterable {
        /// Operation and wait deadlines, long-lease reports: armed for the earliest one due.
        case deadlines
        /// The periodic idle and lifetime sweep, which also frees the host and IP records nothing uses.
        case cleanup
        /// The periodic health check of idle connections.
        case healthCheck
        /// The periodic recovery pass over blacklisted IPs.
        case recovery
        /// The periodic DNS refresh of hosts whose addresses come from DNS.
        case dnsRefresh
    }

    package enum Event {
        /// The pool starts: periodic timers are armed.
        case start
        case acquire(WaiterID, AcquireRequest)
        /// The caller's task was cancelled while it waited.
        case cancel(WaiterID)
        /// `putConnection`.
        case release(LeaseHandle)
        /// `removeConnection`.
        case remove(LeaseHandle)
        /// A validation request was not answered 200.
        case rejectValidation(LeaseHandle, status: Int)
        /// A handle of another pool was used.
        case foreignHandleUsed
        /// A caller asks to run the request `id` on its lease, bounded by `timeout` ns; answered
        /// with exactly one `startExchange`, `startStreamExchange` or `refuseExchange` naming `id`.
        case requestExchange(ExchangeID, on: LeaseHandle, timeout: Int64, retrying: PriorAttempt? = nil)
        case exchangeEnded(SlotHandle, ExchangeOutcome)
        /// The response head of a caller's exchange arrived: its deadline is now `bodyTimeout` ns
        /// away, for the body. On an HTTP/1.1 connection `stream` is nil; on an HTTP/2 one it is
        /// the exchange's stream lease.
        case responseHeadArrived(SlotHandle, stream: LeaseHandle?, bodyTimeout: Int64)
        /// A caller's exchange on an HTTP/2 connection ended (`startStreamExchange` began it).
        case streamExchangeEnded(LeaseHandle, ExchangeOutcome)
        /// Static addresses for a host name (already validated and filtered to IP literals).
        case setAddresses([String], host: String)
        /// A lookup's answer: its addresses in the server's order, without repeats.
        case resolved(hostID: Int32, Result<[String], HotPoolError>)
        /// `refreshAddresses`: the host is resolved now.
        case refresh(WaiterID, AcquireRequest)
        /// `prewarm`: connections are opened until `count` are idle (within the limits).
        case prewarm(WaiterID, AcquireRequest, count: Int)
        /// `blacklist(ip:forHost:for:)`, for `period` ns.
        case blacklistManually(address: String, host: String, period: Int64)
        /// `unblacklist(ip:forHost:)`.
        case unblacklist(address: String, host: String)
        /// Another reactor of the pool blacklisted `address` for `host` (`shareBlacklisting`).
        case adoptBlacklisting(HostKey, address: String, BlacklistReason, period: Int64)
        /// Another reactor of the pool brought `address` of `host` back (`shareRecovery`).
        case adoptRecovery(HostKey, address: String)
        /// `allowOnly(ips:forHost:)`; nil clears the list.
        case allowOnly(Set<String>?, host: String)
        /// `setProxies(_:forHost:)`; nil: the pool's list again.
        case setProxies([Proxy]?, host: String)
        /// TCP connect and TLS handshake done: an HTTP/1.1 connection.
        case dialed(SlotHandle)
        /// TCP connect and TLS handshake done: an HTTP/2 connection, which up to `streamLimit`
        /// callers may lease at once (within `maxStreamsPerConnection`).
        case dialedMultiplexed(SlotHandle, streamLimit: Int)
        /// An HTTP/2 server's SETTINGS changed how many streams it takes at once.
        case streamLimitChanged(SlotHandle, Int)
        /// The dial failed or was aborted (the machine has its socket closed).
        case dialFailed(SlotHandle, HotPoolError)
        /// A connection nobody reads had input: the server closed it, sent bytes, or failed.
        case unreadInput(SlotHandle, CloseReason)
        case timerFired(Timer)
        /// `cleanupIdleConnections()`.
        case cleanupIdle
        /// `cleanupExpiredConnections(maxLifetime:)`.
        case cleanupExpired(maxLifetime: Int64)
        /// `close()`.
        case close
        /// The host's record is made, as an acquire's would be, with no lookup (the benchmark
        /// harness counts host records with it).
        case recordHost(AcquireRequest)
    }

    /// Where a new connection goes.
    package struct DialTarget: Equatable {
        package let key: HostKey
        package let address: String
        /// The proxy the connection goes through, if any.
        package let proxy: Proxy?
    }

    /// A connection (or dial) the machine has ended. Its slot is free already.
    package struct Destruction: Equatable {
        package let handle: SlotHandle
        /// Nil for a dial that never became a connection (not counted in `closedByReason`).
        package let reason: CloseReason?
        package let host: String
        package let ip: String
        /// The connection is sound: a TLS close_notify goes before the socket is closed.
        package let sendCloseNotify: Bool
    }

    package enum Action: Equatable {
        /// Resolve the host name; answer with `resolved`.
        case resolve(hostID: Int32, HostKey)
        /// Connect and handshake; answer with `dialed` or `dialFailed`.
        case dial(SlotHandle, DialTarget)
        case lease(WaiterID, LeaseHandle)
        case fail(WaiterID, HotPoolError)
        /// Send the request `requestExchange` asked for on the HTTP/1.1 connection; answer with
        /// `exchangeEnded`.
        case startExchange(ExchangeID, SlotHandle)
        /// Open a stream for the request `requestExchange` asked for on the HTTP/2 connection of
        /// the lease; answer with `streamExchangeEnded`.
        case startStreamExchange(ExchangeID, LeaseHandle)
        /// The request `requestExchange` asked for fails at once, nothing sent.
        case refuseExchange(ExchangeID, HotPoolError)
        /// Send the health-check request; answer with `exchangeEnded`.
        case probe(SlotHandle)
        /// Send an HTTP/2 PING (a health check); answer with `exchangeEnded` (`.acknowledged` once the server acknowledged it).
        case ping(SlotHandle)
        /// Close the socket now: a retired connection's (its slot lives on until the caller
        /// returns it) or a failed dial's (its slot is free already).
        case closeSocket(SlotHandle, sendCloseNotify: Bool)
        /// The operation under way passed its deadline: stop it and report it ended
        /// (`dialFailed` or `exchangeEnded(.failed)`).
        case abort(SlotHandle)
        /// A stream's exchange passed its deadline, or its caller returned the lease while it ran:
        /// reset the stream and report it ended (`streamExchangeEnded(.failed)`).
        case abortStreamExchange(LeaseHandle)
        /// Fail what is under way on the connection, close it, free its resources.
        case destroy(Destruction)
        case armTimer(Timer, at: Int64)
        /// A `refreshAddresses` caller's answer: the host's addresses now.
        case reportAddresses(WaiterID, [String])
        /// A `prewarm` caller's answer: the host's idle connections now.
        case reportReady(WaiterID, idle: Int)
        /// A lookup failed for a host that keeps its last addresses.
        case reportLookupFailure(host: String, HotPoolError)
        /// A connection has been leased longer than `leaseWarningAfter`.
        case reportLongLease(SlotHandle, nanoseconds: Int64)
        /// Tell the pool's other reactors: this machine blacklisted `address` for `host` (they
        /// answer nothing; each adopts it with `adoptBlacklisting`).
        case shareBlacklisting(HostKey, address: String, BlacklistReason, period: Int64)
        /// Tell the pool's other reactors: a recovery probe brought `address` of `host` back
        /// (each adopts it with `adoptRecovery`).
        case shareRecovery(HostKey, address: String)
    }

    // The state below is written only by the machine's own files (this one and its extensions).
    let configuration: Configuration
    package let table: ConnectionTable
    var hostStore = HostStore()
    var proxyStore: ProxyStore
    var waiters = WaiterQueue()
    package var closed = false
    package internal(set) var counters = Counters()
    /// Idle connections the last `cleanupIdle` or `cleanupExpired` destroyed.
    package var lastCleanupCount = 0
    /// Host records held now.
    package var hostRecordCount: Int { hostStore.count }
    /// Idle connections, across hosts (read through this module: see `Reactor.now`).
    package var idleConnectionCount: Int { table.idleCount }

    /// The event's instant, and the actions it produced so far.
    var now: Int64 = 0
    private var output: [Action] = []
    /// Capacity was freed (or an idle connection parked) while callers wait: serve them at the
    /// end of the event, never from inside another decision.
    var shouldServeWaiters = false
    /// When the deadline timer fires; `.max` while it is not armed.
    var deadlineTimerAt = Int64.max
    /// The hosts of `refreshAddresses` and `prewarm` callers waiting for their answer.
    var answerWaiters: [WaiterID: Int32] = [:]
    /// Hosts whose idle connections may be below `minIdlePerHost`: topped up at the end of the
    /// event (through `hostsBeingWarmed`, its spare storage).
    var hostsToWarm: Set<Int32> = []
    var hostsBeingWarmed: Set<Int32> = []
    /// Dials with no caller under way, across hosts.
    var warmingCount = 0
    /// The stream leases of HTTP/2 connections, by slot, then by lease number.
    var streamLeases: [Int32: [UInt32: StreamLease]] = [:]

    /// One caller's lease of a stream of an HTTP/2 connection.
    struct StreamLease {
        /// When it began; 0 once a long lease has been reported.
        var leasedAt: Int64
        /// The deadline of its exchange under way; nil when none is.
        var exchangeDeadline: Int64?
    }

    /// Counters only the machine writes; exact, since one thread runs it.
    package struct Counters {
        package var totalRequests = 0
        package var failedRequests = 0
        /// Further attempts of retried `execute`s (each request counts once in `totalRequests`).
        var retries = 0
        var closedByReason: [CloseReason: Int] = [:]
        var failedDials = 0
        var staleHandleUses = 0
        package var connectionsOpened = 0
        var connectionsFromDNS = 0
    }

    package init(configuration: Configuration) {
        self.configuration = configuration
        self.table = ConnectionTable(maxSlots: configuration.maxConnections)
        self.proxyStore = ProxyStore(poolProxies: configuration.proxies)
    }

    /// Applies `event` at monotonic instant `now` and appends the actions it needs to `actions`.
    package mutating func handle(_ event: Event, now: Int64, into actions: inout [Action]) {
        self.now = now
        swap(&output, &actions)
        defer { swap(&output, &actions) }
        switch event {
        case .start:
            for timer in [Timer.cleanup, .healthCheck, .recovery, .dnsRefresh] { armPeriodic(timer) }
        case .acquire(let id, let request): acquire(id, request)
        case .cancel(let id):
            if waiters[id] != nil { fail(id, .cancelled) }
            if answerWaiters[id] != nil { failAnswerWaiter(id, .cancelled) }
        case .release(let handle):
            guard let slot = leasedSlot(handle) else { break }
            if table.isMultiplexed(slot) { endStreamLease(handle) } else { endLease(slot) }
        case .remove(let handle):
            guard let slot = leasedSlot(handle) else { break }
            if table.isMultiplexed(slot) { retireStreamLease(handle, .removed) } else { destroy(slot, .removed) }
        case .rejectValidation(let handle, let status):
            guard let slot = leasedSlot(handle) else { break }
            reject(slot, .validationFailed, status: status, lease: handle)
        case .foreignHandleUsed:
            counters.staleHandleUses += 1
        case .requestExchange(let id, let handle, let timeout, let retrying):
            requestExchange(id, on: handle, timeout: timeout, retrying: retrying)
        case .exchangeEnded(let handle, let outcome): exchangeEnded(handle, outcome)
        case .responseHeadArrived(let handle, let stream, let bodyTimeout): responseHeadArrived(handle, stream: stream, bodyTimeout: bodyTimeout)
        case .streamExchangeEnded(let handle, let outcome): streamExchangeEnded(handle, outcome)
        case .setAddresses(let addresses, let name): setAddresses(addresses, forHost: name)
        case .resolved(let hostID, let result): resolved(hostID, result)
        case .refresh(let id, let request): refresh(id, request)
        case .prewarm(let id, let request, let count): prewarm(id, request, count: count)
        case .blacklistManually(let address, let name, let period): blacklistManually(address, forName: name, period: period)
        case .unblacklist(let address, let name): unblacklist(address, forName: name)
        case .adoptBlacklisting(let key, let address, let reason, let period): adoptBlacklisting(address, of: key, reason, period: period)
        case .adoptRecovery(let key, let address): adoptRecovery(address, of: key)
        case .allowOnly(let allowed, let name): allowOnly(allowed, forName: name)
        case .setProxies(let proxies, let name): setProxies(proxies, forName: name)
        case .dialed(let handle): dialed(handle)
        case .dialedMultiplexed(let handle, let limit):
            if table.isCurrent(handle), table.state[Int(handle.slot)] == .dialing { table.streamLimit[Int(handle.slot)] = streamLimit(limit) }
            dialed(handle)
        case .streamLimitChanged(let handle, let limit): streamLimitChanged(handle, limit)
        case .dialFailed(let handle, let error): dialFailed(handle, error)
        case .unreadInput(let handle, let reason): unreadInput(handle, reason)
        case .timerFired(let timer): timerFired(timer)
        case .cleanupIdle:
            lastCleanupCount = cleanupIdle()
            reclaimIdleHosts()
            freeUnusedIPsOutOfRotation()
        case .cleanupExpired(let lifetime): lastCleanupCount = cleanupExpired(maxLifetime: lifetime)
        case .close: close()
        case .recordHost(let request): _ = hostStore.host(for: request.key, nameIsAddress: request.nameIsAddress, now: now)
        }
        while shouldServeWaiters && !closed {
            shouldServeWaiters = false
            serveWaitingHosts()
        }
        if !hostsToWarm.isEmpty { warmMarkedHosts() }
    }

    mutating func emit(_ action: Action) {
        output.append(action)
    }
}
