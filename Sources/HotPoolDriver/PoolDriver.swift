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
///
/// In pieces, one job each: this file holds the per-slot I/O table, the trampoline and the
/// callers' events; `CallerRegistry` the callers waiting for an answer; `DialRotation` the
/// profile and local address of each new connection; `Dial.swift` dials; `Exchange.swift` and
/// `HTTP2Exchange.swift` run exchanges over HTTP/1.1 and HTTP/2; `PoolDriver+IO.swift`
/// dispatches completions; `PoolDriver+Closing.swift` destroys and closes; `PoolDriver+Stats.swift`
/// answers what the API reads; `PoolDriver+Start.swift` builds a pool's parts.
package final class PoolDriver: @unchecked Sendable {
    package let config: HotPoolConfiguration
    /// The number of its reactor among the pool's.
    package let reactorIndex: Int
    package let reactor: Reactor
    let resolver: Resolver
    let logger: Logger
    @exclusivity(unchecked) package private(set) var metrics: PoolMetrics
    @exclusivity(unchecked) var machine: PoolStateMachine
    /// Bytes of pool state per slot: the machine's table columns plus this I/O table's.
    package let bytesPerSlot: Int
    /// One TLS context per fingerprint profile (freed by `close`).
    var tlsContexts: [OpaquePointer]
    /// The profile and local address each new connection takes.
    var rotation: DialRotation
    /// Sessions servers issued, for later connections to the same place to resume.
    @exclusivity(unchecked) var sessionCache: SessionCache
    /// Handshakes that resumed a session.
    var resumedHandshakes = 0
    /// The TLS context of `https` proxies' transports, made at first use (freed by `close`).
    var proxyTLS: OpaquePointer?
    /// Addresses of proxies given by name, as resolved, until `expires` (monotonic ns).
    var proxyAddresses: [Proxy: (address: String, expires: Int64)] = [:]

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
    /// `execute`s waiting to be retried, by the id their caller waits under, with their timer.
    @exclusivity(unchecked) var awaitingRetry: [WaiterID: (pending: PendingExecute, timer: TimerID)] = [:]
    /// The drivers of the pool's other reactors, told of the IP blacklistings and recoveries
    /// this one's machine decides. Set before the reactors start; emptied by `close` (which
    /// ends the cycle of drivers naming each other).
    package var peers: [PoolDriver] = []
    /// Decisions that named a request this driver does not have: a fault of the machine or of
    /// the driver, logged, counted here, and reported back so nothing stays reserved.
    package private(set) var unknownDecisions = 0

    @exclusivity(unchecked) private var events = Deque<PoolStateMachine.Event>()
    @exclusivity(unchecked) private var actions: [PoolStateMachine.Action] = []
    @exclusivity(unchecked) private var draining = false
    var timers: [PoolStateMachine.Timer: TimerID] = [:]
    /// Sockets being closed, by the token of their connection: the TLS engine to free when the
    /// close completes, and what the connection was, for a close error.
    @exclusivity(unchecked) var closing: [UInt64: (tls: OpaquePointer?, identity: ConnectionIdentity?)] = [:]

    /// The first close(2) error met while the pool closed, and the figures frozen at close.
    package internal(set) var closeError: HotPoolError?
    package internal(set) var frozenStats: PoolStats?
    /// Unsent TLS output a connection may hold: past it an HTTP/2 session's frames (acknowledgements
    /// a server asks for, request bodies) wait in the session, where nghttp2's own flood guard
    /// ends a session whose server keeps asking without reading the answers.
    static let maxUnsentOutput = 1 << 20
    /// Scratch buffer for TLS reads (every read happens on this thread).
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: PoolDriver.readBufferSize, alignment: 16)
    /// Plaintext taken from a TLS engine per read: four 16 KiB TLS records.
    static let readBufferSize = 64 * 1024

    /// The instant and monotonic time taken together, to turn table times into clock instants.
    let epochInstant = ContinuousClock.now
    let epochNanos = hp_monotonic_ns()

    init(config: HotPoolConfiguration, reactorIndex: Int, reactor: Reactor, resolver: Resolver, tlsContexts: [OpaquePointer]) {
        self.config = config
        self.reactorIndex = reactorIndex
        self.metrics = PoolMetrics(reactor: reactorIndex)
        self.reactor = reactor
        self.resolver = resolver
        self.logger = config.logger
        self.tlsContexts = tlsContexts
        self.machine = PoolStateMachine(configuration: .init(config))
        self.bytesPerSlot = machine.table.bytesPerSlot + MemoryLayout<Int32>.stride + MemoryLayout<OpaquePointer?>.stride
            + MemoryLayout<Bool>.stride + MemoryLayout<Int32>.stride + MemoryLayout<SlotIO?>.stride
            + MemoryLayout<ConnectionIdentity?>.stride + MemoryLayout<HTTP2Connection?>.stride
        self.rotation = DialRotation(config)
        self.sessionCache = SessionCache(capacity: config.sessionCacheCapacity)
    }

    deinit {
        readBuffer.deallocate()
        tlsContexts.forEach(hp_tls_ctx_free)
        hp_tls_ctx_free(proxyTLS)
    }

    /// The reactor's turn ended: streams opened in it are sent, and the metrics' counters brought
    /// up to the machine's counts (once a turn, not per event: a turn may run a million gets and puts).
    func turnEnded() {
        sendStreamsOpenedThisTurn()
        exportCounts()
    }

    /// Brings the metrics' counters up to the machine's counts (each turn, and at close).
    func exportCounts() {
        metrics.follow(requests: machine.counters.totalRequests, failures: machine.counters.failedRequests,
                       opened: machine.counters.connectionsOpened)
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
        case .shareBlacklisting(let key, let address, let reason, let period):
            tellPeers(.adoptBlacklisting(key, address: address, reason, period: period))
        case .shareRecovery(let key, let address): tellPeers(.adoptRecovery(key, address: address))
        }
    }

    /// Hands `event` to every other reactor's machine, through their inboxes (a peer that has
    /// stopped takes nothing).
    private func tellPeers(_ event: PoolStateMachine.Event) {
        for peer in peers { peer.reactor.post { peer.send(event) } }
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

    /// A caller's round trip of `message` (made on its thread) on the connection it leases, its
    /// head within `timeout` and then its body within `bodyTimeout` (nil: all of it within `timeout`).
    package func requestExchange(_ handle: LeaseHandle, _ message: ExchangeMessage, timeout: Duration, bodyTimeout: Duration?,
                                 _ handoff: Handoff<Result<HotResponse, HotPoolError>>) {
        let op = ExchangeOp(message, limits: config.responseLimits, requester: .caller(handoff), bodyTimeout: bodyTimeout?.nanoseconds)
        decide(op, on: handle, timeout: timeout.nanoseconds)
    }

    /// Asks the machine to decide on the exchange `op` on the lease, under a new id (`retrying`
    /// says how the attempt before it ended, for an `execute`'s retry).
    func decide(_ op: ExchangeOp, on handle: LeaseHandle, timeout: Int64, retrying: PoolStateMachine.PriorAttempt? = nil) {
        lastExchangeID += 1
        let id = ExchangeID(raw: lastExchangeID)
        requestsAwaitingDecision[id] = op
        let queued = draining  // sent from inside another event: decided after it
        send(.requestExchange(id, on: handle, timeout: timeout, retrying: retrying))
        assert(queued || requestsAwaitingDecision[id] == nil, "a requestExchange the machine did not decide")
    }

    /// Hands an exchange's outcome to its requester; an `execute` then puts its connection back
    /// (unless the connection was destroyed meanwhile, which ended the lease). An `execute` its
    /// retry policy runs again gets no outcome yet: its connection goes back first, then it waits.
    func finish(_ op: ExchangeOp, _ result: Result<HotResponse, HotPoolError>) {
        guard let pending = op.execute, let lease = op.lease, let delay = retryDelay(pending, after: result) else {
            op.finish(result)
            if let lease = op.lease, machine.isCurrent(lease) { send(.release(lease)) }
            return
        }
        let ip = identity[Int(lease.slot)]?.ip  // read before a put that destroys the connection clears it
        if machine.isCurrent(lease) { send(.release(lease)) }
        scheduleRetry(pending, after: delay, attemptFailed: (try? result.get()) == nil, avoiding: ip)
    }

    private func handOut(_ handle: LeaseHandle, to id: WaiterID) {
        let caller = callers.take(id)
        let identity = identity[Int(handle.slot)]!
        let isHTTP2 = http2[Int(handle.slot)] != nil
        if case .waiting(.execute(let pending))? = caller {
            let op = ExchangeOp(identity.message(pending.request, body: pending.body, http2: isHTTP2, decompress: pending.decompress),
                                limits: config.responseLimits, requester: .execute(pending.handoff), bodyTimeout: pending.bodyTimeout)
            op.lease = handle
            op.execute = pending
            if pending.waiterID == nil { pending.waiterID = id }
            return decide(op, on: handle, timeout: pending.timeout, retrying: pending.priorAttempt)
        }
        let lease = Lease(handle: handle, identity: identity, httpVersion: isHTTP2 ? .http2 : .http1_1)
        switch caller {
        case .waiting(.get(let handoff))?: handoff.tryDeliver(.success(lease))
        case .inline?: callers.answerInline(.success(lease))
        default: preconditionFailure("a lease for an unknown caller")
        }
    }

}
