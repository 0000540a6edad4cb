import CShims
import DequeModule
import Glibc
import HTTPTypes
import HotPoolCore
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine
import Logging
import Synchronization

/// What a connection is, fixed when it is dialed: one object per connection, so handing it to
/// callers costs a reference, not a copy of each name.
package final class ConnectionIdentity: Sendable {
    package let host: String
    package let port: Int
    /// The Host header value for requests that give no authority.
    let authority: String
    package let ip: String
    /// The local address it is bound to; nil = chosen by the system.
    let localAddress: String?
    /// The fingerprint profile: its index in the configuration's `profiles`, and its name.
    let profileIndex: Int
    package let profile: String
    /// The profile's request headers, HTTP/1.1 and HTTP/2 forms, with this connection's Accept-Language.
    let headers: ProfileHeaders
    let http2Headers: ProfileHeaders
    let pseudoHeaderOrder: [HTTP2PseudoHeader]

    init(host: String, port: Int, authority: String, ip: String, localAddress: String?, profileIndex: Int, profile: String,
         headers: ProfileHeaders, http2Headers: ProfileHeaders, pseudoHeaderOrder: [HTTP2PseudoHeader]) {
        (self.host, self.port, self.authority, self.ip, self.localAddress) = (host, port, authority, ip, localAddress)
        (self.profileIndex, self.profile) = (profileIndex, profile)
        (self.headers, self.http2Headers, self.pseudoHeaderOrder) = (headers, http2Headers, pseudoHeaderOrder)
    }

    /// `request` in the form the connection speaks, with the profile's headers.
    package func message(_ request: HTTPRequest, body: [UInt8], http2: Bool) -> ExchangeMessage {
        http2
            ? .http2(HTTP2Request(request, body: body, defaultAuthority: authority, profile: http2Headers,
                                  pseudoHeaderOrder: pseudoHeaderOrder))
            : .http1(HTTP1Request.serialize(request, body: body, defaultHost: authority, profile: headers), isHead: request.method == .head)
    }
}

/// A connection handed to a caller: its handle, what it is, and the HTTP version the server chose.
package struct Lease: Sendable {
    package let handle: LeaseHandle
    package let identity: ConnectionIdentity
    package let httpVersion: HTTPProtocolVersion
}

/// An I/O operation under way on a slot.
enum SlotIO {
    case dial(DialOp)
    case exchange(ExchangeOp)
}

/// Executes the state machine's decisions: owns the sockets, SSL objects, per-slot operations,
/// callers' handoffs and timers, and feeds back what the I/O did as events. Lives on the reactor
/// thread: every method runs there, called from posted closures, readiness callbacks and timers;
/// `@unchecked Sendable` only so posted closures can carry it.
///
/// Events go through one trampoline (`send`): an event yields actions, executing an action may
/// yield events, and those are queued and handled after the current batch, never re-entrantly.
package final class PoolDriver: @unchecked Sendable {
    let config: HotPoolConfiguration
    package let reactor: Reactor
    let resolver: Resolver
    let logger: Logger
    package private(set) var metrics = PoolMetrics()
    @exclusivity(unchecked) var machine: PoolStateMachine
    /// Bytes of pool state per slot: the machine's table columns plus this I/O table's.
    package let bytesPerSlot: Int
    /// One TLS context per fingerprint profile (freed by `close`).
    private(set) var tlsContexts: [OpaquePointer]
    /// The profile and local address each new connection takes.
    var rotation: DialRotation

    // The I/O table: per slot, indexed like the machine's table.
    @exclusivity(unchecked) var fd: [Int32] = []
    /// The TLS engine (`hp_tls`), from the TCP connect on.
    @exclusivity(unchecked) var tls: [OpaquePointer?] = []
    /// A send of the engine's output is in flight (one at a time).
    @exclusivity(unchecked) var sending: [Bool] = []
    /// Bytes received while no exchange read them, since the last exchange (see `readOnBudget`).
    @exclusivity(unchecked) var idleBytes: [Int32] = []
    @exclusivity(unchecked) var io: [SlotIO?] = []
    /// The HTTP/2 session and streams of a connection whose server chose `h2`.
    @exclusivity(unchecked) var http2: [HTTP2Connection?] = []
    /// HTTP/2 connections with streams opened this turn, to send at its end.
    @exclusivity(unchecked) var http2Unsent: [SlotHandle] = []
    /// What the connection is (host, IP, fingerprint profile), from its dial on.
    @exclusivity(unchecked) var identity: [ConnectionIdentity?] = []

    /// Ids for callers' gets (where caller threads meet: an atomic).
    private let waiterIDs = Atomic<UInt64>(0)
    /// The callers this driver answers.
    @exclusivity(unchecked) private var callers = CallerRegistry()
    /// The requests `requestExchange` events are deciding on, by the id the machine's answer names.
    @exclusivity(unchecked) private var requestsAwaitingDecision: [ExchangeID: ExchangeOp] = [:]
    /// The last id given to a request (the reactor thread's alone).
    private var lastExchangeID: UInt64 = 0
    /// Decisions that named a request this driver does not have: a fault of the machine or of
    /// the driver, logged, counted here, and reported back so nothing stays reserved.
    package private(set) var unknownDecisions = 0

    @exclusivity(unchecked) private var events = Deque<PoolStateMachine.Event>()
    @exclusivity(unchecked) private var actions: [PoolStateMachine.Action] = []
    @exclusivity(unchecked) private var draining = false
    private var timers: [PoolStateMachine.Timer: TimerID] = [:]
    /// Sockets being closed, by the token of their connection: the TLS engine to free when the
    /// close completes, and what the connection was, for a close error.
    @exclusivity(unchecked) private var closing: [UInt64: (tls: OpaquePointer?, identity: ConnectionIdentity?)] = [:]

    /// The first close(2) error met while the pool closed, and the figures frozen at close.
    package private(set) var closeError: HotPoolError?
    package private(set) var frozenStats: PoolStats?
    /// Unsent TLS output a connection may hold: past it an HTTP/2 session's frames (acknowledgements
    /// a server asks for, request bodies) wait in the session, where nghttp2's own flood guard
    /// ends a session whose server keeps asking without reading the answers.
    static let maxUnsentOutput = 1 << 20
    /// Scratch buffer for TLS reads (every read happens on this thread).
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: PoolDriver.readBufferSize, alignment: 16)
    /// Plaintext taken from a TLS engine per read: four 16 KiB TLS records.
    static let readBufferSize = 64 * 1024

    /// The instant and monotonic time taken together, to turn table times into clock instants.
    private let epochInstant = ContinuousClock.now
    private let epochNanos = hp_monotonic_ns()

    package init(config: HotPoolConfiguration, reactor: Reactor, resolver: Resolver, tlsContexts: [OpaquePointer]) {
        self.config = config
        self.reactor = reactor
        self.resolver = resolver
        self.logger = config.logger
        self.tlsContexts = tlsContexts
        self.machine = PoolStateMachine(configuration: .init(config))
        self.bytesPerSlot = machine.table.bytesPerSlot + MemoryLayout<Int32>.stride + MemoryLayout<OpaquePointer?>.stride
            + MemoryLayout<Bool>.stride + MemoryLayout<Int32>.stride + MemoryLayout<SlotIO?>.stride
            + MemoryLayout<ConnectionIdentity?>.stride + MemoryLayout<HTTP2Connection?>.stride
        self.rotation = DialRotation(config)
    }

    deinit {
        readBuffer.deallocate()
        tlsContexts.forEach(hp_tls_ctx_free)
    }

    // MARK: the trampoline

    /// Hands `event` to the state machine and executes the actions, and those of any events the
    /// actions produce, in order.
    package func send(_ event: PoolStateMachine.Event) {
        guard !draining else { return events.append(event) }
        draining = true
        handle(event)
        while let next = events.popFirst() { handle(next) }
        draining = false
    }

    private func handle(_ event: PoolStateMachine.Event) {
        machine.handle(event, now: reactor.now, into: &actions)
        metrics.follow(machine.counters)
        if !actions.isEmpty {  // a put to idle, the commonest event, has no actions
            for index in actions.indices { execute(actions[index]) }
            actions.removeAll(keepingCapacity: true)
        }
    }

    private func execute(_ action: PoolStateMachine.Action) {
        switch action {
        case .resolve(let hostID, let key):
            resolver.lookup(key.name) { [unowned self] in send(.resolved(hostID: hostID, $0)) }
        case .dial(let handle, let target): startDial(handle, target)
        case .lease(let id, let handle): handOut(handle, to: id)
        case .fail(let id, let error):
            switch callers.take(id) {
            case .waiting(let caller)?: caller.fail(error)
            case .inline?: callers.answerInline(.failure(error))
            case nil: preconditionFailure("an answer for an unknown caller")
            }
        case .startExchange(let id, let handle):
            guard let op = requestsAwaitingDecision.removeValue(forKey: id) else { return unknownDecision(action) }
            startExchange(handle.slot, op)
        case .startStreamExchange(let id, let lease):
            guard let op = requestsAwaitingDecision.removeValue(forKey: id) else { return unknownDecision(action) }
            op.streamLease = lease
            startHTTP2Exchange(lease.slot, op)
        case .refuseExchange(let id, let error):
            guard let op = requestsAwaitingDecision.removeValue(forKey: id) else { return unknownDecision(action) }
            finish(op, .failure(error))
        case .probe(let handle): startProbe(handle.slot)
        case .ping(let handle): startPing(handle.slot)
        case .closeSocket(let handle, let notify):
            io[Int(handle.slot)] = nil
            closeSocket(handle, sendCloseNotify: notify)
        case .abort(let handle): abort(handle)
        case .abortStreamExchange(let lease): abortStreamExchange(lease)
        case .destroy(let destruction): destroy(destruction)
        case .armTimer(let timer, let at):
            if let old = timers[timer] { reactor.cancel(old) }
            timers[timer] = reactor.schedule(at: at) { [unowned self] in
                timers[timer] = nil
                send(.timerFired(timer))
                if timer == .cleanup { metrics.record(machine.snapshot()) }
            }
        case .reportAddresses(let id, let addresses):
            if case .waiting(.addresses(let handoff))? = callers.take(id) { handoff.tryDeliver(.success(addresses)) }
        case .reportReady(let id, let idle):
            if case .waiting(.prewarm(let handoff))? = callers.take(id) { handoff.tryDeliver(.success(idle)) }
        case .reportLookupFailure(let host, let error):
            logger.warning("DNS lookup failed; the last addresses stay", metadata: ["host": "\(host)", "error": "\(error)"])
        case .reportLongLease(let handle, let nanos):
            logger.warning(
                "connection leased for \(Duration.nanoseconds(nanos)) without being returned (missing putConnection?)",
                metadata: ["host": "\(machine.hostName(handle.slot))", "ip": "\(machine.ipAddress(handle.slot))"])
        }
    }

    /// A decision named a request this driver does not have: logged and counted; a start is
    /// reported back as not processed, so the machine frees what it reserved for the request.
    private func unknownDecision(_ action: PoolStateMachine.Action) {
        unknownDecisions += 1
        logger.error("the state machine decided on a request the driver does not have", metadata: ["decision": "\(action)"])
        switch action {
        case .startExchange(_, let handle): send(.exchangeEnded(handle, .notProcessed))
        case .startStreamExchange(_, let lease): send(.streamExchangeEnded(lease, .notProcessed))
        default: break
        }
    }

    // MARK: callers' events

    /// What a caller whose task was cancelled before its request arrived is told.
    package var cancellationError: HotPoolError { machine.closed ? .poolClosed : .cancelled }

    /// A new id for a caller's get (any thread).
    package func newWaiterID() -> WaiterID { WaiterID(raw: waiterIDs.add(1, ordering: .relaxed).newValue) }

    /// A caller asks for a connection; refused at once if its task was cancelled already.
    package func acquire(_ id: WaiterID, _ request: PoolStateMachine.AcquireRequest, _ handoff: Handoff<Result<Lease, HotPoolError>>) {
        ask(id, .get(handoff), .acquire(id, request))
    }

    /// A caller waiting for an answer sends `event`; refused at once if its task was cancelled already.
    package func ask(_ id: WaiterID, _ caller: Caller, _ event: PoolStateMachine.Event) {
        guard !caller.isCancelRequested else { return caller.fail(cancellationError) }
        callers.add(id, caller)
        send(event)
    }

    /// A get made on the reactor thread itself: its answer if it had one at once (an idle
    /// connection, or an error), nil if it waits. A waiting caller must `register` its handoff
    /// before anything else runs on this thread; with `waits` false, it is cancelled instead.
    package func acquireNow(_ id: WaiterID, _ request: PoolStateMachine.AcquireRequest, waits: Bool = true) -> Result<Lease, HotPoolError>? {
        callers.beginInline(id)
        send(.acquire(id, request))
        let answeredAtOnce = callers.isInlineAnswered
        if !answeredAtOnce && !waits { send(.cancel(id)) }
        let answer = callers.endInline()
        return answeredAtOnce ? answer : nil
    }

    /// Where the lease (or failure) of a get that `acquireNow` left waiting goes.
    package func register(_ id: WaiterID, _ handoff: Handoff<Result<Lease, HotPoolError>>) {
        callers.add(id, .get(handoff))
    }

    /// A caller's round trip of `message` (made on its thread) on the connection it leases.
    package func requestExchange(_ handle: LeaseHandle, _ message: ExchangeMessage, timeout: Duration,
                         _ handoff: Handoff<Result<HotResponse, HotPoolError>>) {
        decide(ExchangeOp(message, limits: config.responseLimits, requester: .caller(handoff)), on: handle, timeout: timeout.nanoseconds)
    }

    /// Asks the machine to decide on the exchange `op` on the lease, under a new id.
    private func decide(_ op: ExchangeOp, on handle: LeaseHandle, timeout: Int64) {
        lastExchangeID += 1
        let id = ExchangeID(raw: lastExchangeID)
        requestsAwaitingDecision[id] = op
        send(.requestExchange(id, on: handle, timeout: timeout))
    }

    /// Hands an exchange's outcome to its requester; an `execute` then puts its connection back
    /// (unless the connection was destroyed meanwhile, which ended the lease).
    func finish(_ op: ExchangeOp, _ result: Result<HotResponse, HotPoolError>) {
        op.finish(result)
        if let lease = op.lease, machine.isCurrent(lease) { send(.release(lease)) }
    }

    private func handOut(_ handle: LeaseHandle, to id: WaiterID) {
        let caller = callers.take(id)
        let identity = identity[Int(handle.slot)]!
        let isHTTP2 = http2[Int(handle.slot)] != nil
        if case .waiting(.execute(let pending))? = caller {
            let op = ExchangeOp(identity.message(pending.request, body: pending.body, http2: isHTTP2),
                                limits: config.responseLimits, requester: .execute(pending.handoff))
            op.lease = handle
            if pending.retried { op.isRetry = true } else { op.retry = pending }
            return decide(op, on: handle, timeout: pending.timeout)
        }
        let lease = Lease(handle: handle, identity: identity, httpVersion: isHTTP2 ? .http2 : .http1_1)
        switch caller {
        case .waiting(.get(let handoff))?: handoff.tryDeliver(.success(lease))
        case .inline?: callers.answerInline(.success(lease))
        default: preconditionFailure("a lease for an unknown caller")
        }
    }

    // MARK: destruction

    /// The operation under way passed its deadline: it ends as a timeout.
    private func abort(_ handle: SlotHandle) {
        let s = Int(handle.slot)
        let host = machine.hostName(handle.slot), ip = machine.ipAddress(handle.slot)
        switch io[s] {
        case .dial(let op)?:
            io[s] = nil
            send(.dialFailed(handle, .timeout(host: host, ip: ip, phase: op.connected ? .tlsHandshake : .connect)))
        case .exchange(let op)?:
            failExchange(handle.slot, op, .timeout(host: host, ip: ip, phase: .request))
        case nil:
            abortHTTP2Probe(handle.slot)
        }
    }

    /// Fails what was under way on the connection and has its socket closed (its TLS engine is
    /// freed when the close completes).
    private func destroy(_ destruction: PoolStateMachine.Destruction) {
        let slot = destruction.handle.slot
        let error: HotPoolError = destruction.reason == .poolClosed
            ? .poolClosed : .connectionClosed(host: destruction.host, ip: destruction.ip)
        if case .exchange(let op)? = io[Int(slot)] { finish(op, .failure(error)) }
        failHTTP2Exchanges(slot, error)  // their ends reach a machine that has freed the slot: ignored
        io[Int(slot)] = nil
        closeSocket(destruction.handle, sendCloseNotify: destruction.sendCloseNotify)
        identity[Int(slot)] = nil
        guard let reason = destruction.reason else { return }
        metrics.closed(reason)
        logger.debug("connection destroyed", metadata: ["host": "\(destruction.host)", "ip": "\(destruction.ip)", "reason": "\(reason)"])
    }

    /// Has the slot's socket closed, after a close_notify when asked (and nothing else is being
    /// sent); its TLS engine is freed once the close completes (`closed`).
    func closeSocket(_ handle: SlotHandle, sendCloseNotify: Bool) {
        let s = Int(handle.slot)
        guard s < fd.count, fd[s] >= 0 else { return }
        var closeNotify: UnsafeRawBufferPointer?
        if let tls = tls[s], sendCloseNotify, !sending[s], hp_tls_output_pending(tls) == 0 {
            // An HTTP/2 connection says GOAWAY first, as browsers do.
            if let session = http2[s]?.session {
                session.goAway()
                // One gathered write (at most about 16 KiB): nghttp2 sends control frames, the
                // GOAWAY among them, before request frames and bodies.
                _ = session.drainOutput(while: { hp_tls_output_pending(tls) == 0 }) { writePlaintext(tls, $0) }
            }
            if hp_tls_shutdown(tls) == 0 { closeNotify = lendOutput(tls) }
        }
        if let connection = http2[s], !connection.exchanges.isEmpty {
            failHTTP2Exchanges(handle.slot, .connectionClosed(host: machine.hostName(handle.slot), ip: machine.ipAddress(handle.slot)))
        }
        http2[s] = nil
        closing[handle.token] = (tls[s], identity[s])
        reactor.io.close(fd: fd[s], token: handle.token, lastBytes: closeNotify)
        (fd[s], tls[s], sending[s]) = (-1, nil, false)
    }

    /// A socket's close completed: its TLS engine is freed. A failed close(2) while the pool
    /// closes is the error `close()` throws.
    private func closed(_ token: UInt64, errno: Int32) {
        guard let (tls, identity) = closing.removeValue(forKey: token) else { return }
        hp_tls_free(tls)
        if errno != 0, machine.closed, closeError == nil {
            closeError = .networkError(host: identity?.host ?? "", ip: identity?.ip ?? "",
                                       reason: "close: \(String(cString: strerror(errno)))")
        }
    }

    // MARK: close

    /// The seed's Close: the machine fails waiters and destroys every connection (leased ones
    /// too); timers stop, TLS contexts are freed, the figures are frozen. Returns the first close
    /// error. Idempotent.
    package func close() -> HotPoolError? {
        guard !machine.closed else { return closeError }
        send(.close)
        resolver.close()
        for timer in timers.values { reactor.cancel(timer) }
        timers.removeAll()
        tlsContexts.forEach(hp_tls_ctx_free)
        tlsContexts.removeAll()
        let stats = machine.snapshot()
        frozenStats = stats
        metrics.record(stats)
        logger.debug("pool closed")
        return closeError
    }

    // MARK: statistics

    package func instant(_ nanos: Int64) -> ContinuousClock.Instant {
        epochInstant + .nanoseconds(nanos - epochNanos)
    }

    /// The pool's figures now; once it is closed, those frozen at close.
    package var stats: PoolStats { frozenStats ?? machine.snapshot() }

    /// The pool was closed.
    package var isClosed: Bool { machine.closed }

    /// Idle connections the last `cleanupIdle` or `cleanupExpired` event destroyed.
    package var lastCleanupCount: Int { machine.lastCleanupCount }

    /// Host records the pool holds.
    package var hostRecordCount: Int { machine.hostRecordCount }

    /// Idle connections, across hosts.
    package var idleConnectionCount: Int { machine.table.idleCount }

    /// The IPs out of rotation for the host name (any port).
    package func blacklistEntries(forHost host: String) -> [BlacklistEntry] {
        machine.blacklistedIPs(forName: host).map { BlacklistEntry(ip: $0.address, reason: $0.reason, until: instant($0.until)) }
    }

    /// What the pool knows of each IP of the host name, per port.
    package func ipStats(forHost host: String) -> [IPStats] {
        machine.ipRecords(forName: host).map { entry in
            let record = entry.record
            return IPStats(
                ip: record.address, port: entry.port, requests: record.requests, failures: record.failures,
                openConnections: entry.open, inRotation: entry.inRotation, blacklistReason: record.blacklistReason,
                blacklistedUntil: record.blacklistReason == nil ? nil : instant(record.blacklistedUntil),
                lastResolved: record.lastResolved == 0 ? nil : instant(record.lastResolved))
        }
    }

    package func connectionSnapshots() -> [ConnectionStats] {
        machine.connectionRecords().map { record in
            ConnectionStats(
                targetHost: record.host, targetIP: record.ip, requestCount: record.requestCount,
                errorCount: record.errorCount, isHealthy: record.isHealthy, created: instant(record.created),
                lastUsed: instant(record.lastUsed), isLeased: record.isLeased,
                profile: identity[Int(record.slot)]?.profile ?? "", localAddress: identity[Int(record.slot)]?.localAddress,
                httpVersion: http2[Int(record.slot)] == nil ? .http1_1 : .http2)
        }
    }

    // MARK: I/O

    /// Dispatches a completion to what its slot is doing; those of an earlier connection in the
    /// slot (a stale token) are dropped.
    package func handleIO(_ token: UInt64, _ completion: IOCompletion) {
        if let fd = Resolver.fd(token: token) {
            if case .ready(let events) = completion { resolver.handle(fd: fd, events) }
            return
        }
        if case .closed(let errno) = completion { return closed(token, errno: errno) }
        let handle = SlotHandle(token: token)
        guard machine.table.isCurrent(handle), fd[Int(handle.slot)] >= 0 else { return }
        switch completion {
        case .connected(let errno): connected(handle.slot, errno: errno)
        case .received(let bytes): received(handle.slot, bytes, endOfStream: false)
        case .receiveEnded(0): received(handle.slot, UnsafeRawBufferPointer(start: nil, count: 0), endOfStream: true)
        case .receiveEnded(let errno): ioFailed(handle.slot, errno: errno)
        case .sent(let count): sent(handle.slot, count)
        case .closed, .ready: break
        }
    }

    /// Ciphertext arrived (or the peer's end of stream): the engine reads it for what the slot is
    /// doing. Input on a connection no exchange is reading is read at once, so it is never left
    /// for the next request to take as its answer.
    private func received(_ slot: Int32, _ bytes: UnsafeRawBufferPointer, endOfStream: Bool) {
        let s = Int(slot)
        guard let tls = tls[s] else { return }
        hp_tls_feed(tls, bytes.baseAddress, bytes.count)
        // The bytes are the backend's again once this returns, on every path (the engine itself is
        // freed only by `closed`, so it outlives whatever the input led to).
        defer { hp_tls_feed(tls, nil, 0) }
        if endOfStream { hp_tls_feed_eof(tls) }
        switch io[s] {
        case .dial?: stepHandshake(slot)
        case .exchange(let op)?: stepExchange(slot, op)
        case nil:
            let connection = http2[s]
            // Input while nothing was asked (no exchange, no health check under way) has a budget,
            // beyond the DATA still in flight on streams this side reset.
            if connection.map({ $0.exchanges.isEmpty && !$0.pinging }) ?? true {
                let (sum, overflow) = idleBytes[s].addingReportingOverflow(Int32(clamping: bytes.count))
                idleBytes[s] = overflow ? .max : sum
                if Int(idleBytes[s]) > Self.readOnBudget + (connection?.session.windowsOfStreamsResetHere ?? 0) {
                    logger.debug("the server streams records nobody asked for", metadata: ["ip": "\(machine.ipAddress(slot))"])
                    return send(.unreadInput(machine.table.handle(slot), .unsolicitedData))
                }
            }
            // An HTTP/2 session reads what comes (its frames are bounded by nghttp2 and the budget).
            if let connection { return http2Input(slot, connection) }
            if let reason = unreadInput(slot) { send(.unreadInput(machine.table.handle(slot), reason)) }
        }
    }

    /// A receive or a send failed with `errno` (a reset, say): what the slot was doing fails.
    private func ioFailed(_ slot: Int32, errno: Int32) {
        let host = machine.hostName(slot), ip = machine.ipAddress(slot), reason = String(cString: strerror(errno))
        switch io[Int(slot)] {
        case .dial?: failDial(slot, .tlsHandshakeFailed(host: host, ip: ip, reason: reason))
        case .exchange(let op)?: failExchange(slot, op, .networkError(host: host, ip: ip, reason: reason))
        case nil:
            let error = HotPoolError.networkError(host: host, ip: ip, reason: reason)
            if let connection = http2[Int(slot)] { return http2Broke(slot, connection, (.networkError, error)) }
            send(.unreadInput(machine.table.handle(slot), .networkError))
        }
    }

    /// A send of the engine's output ended: what was sent leaves it, and the rest goes next.
    private func sent(_ slot: Int32, _ count: Int) {
        let s = Int(slot)
        sending[s] = false
        guard count >= 0 else { return ioFailed(slot, errno: Int32(-count)) }
        hp_tls_output_sent(tls[s], count)
        guard let connection = http2[s] else { return flush(slot) }
        // The frames an HTTP/2 session holds beyond the output cap go out as room comes.
        guard sendHTTP2(slot, connection.session) else {
            let error = tlsError(slot, HP_TLS_ERROR)
            if case .dial? = io[s] { return failDial(slot, error) }  // its preface, before the server's SETTINGS
            return http2Broke(slot, connection, (.networkError, error))
        }
    }

    /// Sends what the engine wrote, unless a send is in flight (its completion sends the rest).
    func flush(_ slot: Int32) {
        let s = Int(slot)
        guard !sending[s], let tls = tls[s], let bytes = lendOutput(tls) else { return }
        sending[s] = true
        reactor.io.send(fd: fd[s], token: machine.table.handle(slot).token, bytes: bytes)
    }

    /// The engine's unsent output, lent for one send (it stays in place until `hp_tls_output_sent`
    /// or the engine is freed); nil if there is none.
    private func lendOutput(_ tls: OpaquePointer) -> UnsafeRawBufferPointer? {
        var bytes: UnsafeRawPointer?
        let count = hp_tls_output(tls, &bytes)
        return count > 0 ? UnsafeRawBufferPointer(start: bytes, count: count) : nil
    }

    /// Grows the I/O table so `slot` is valid.
    func ensureSlot(_ slot: Int32) {
        while fd.count <= Int(slot) {
            fd.append(-1)
            tls.append(nil)
            sending.append(false)
            idleBytes.append(0)
            io.append(nil)
            identity.append(nil)
            http2.append(nil)
        }
    }
}
