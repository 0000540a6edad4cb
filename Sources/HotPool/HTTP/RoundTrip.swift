import CShims
import HTTPTypes

/// One request/response exchange under way on a leased connection.
final class RoundTripOp {
    /// Who waits for the response.
    enum Requester {
        /// A caller's `roundTrip`.
        case caller(Handoff<Result<HotResponse, HotPoolError>>)
        /// The pool's own health check.
        case healthCheck
    }

    let request: [UInt8]
    var written = 0
    var parser: HTTP1ResponseParser
    let requester: Requester

    init(request: [UInt8], parser: HTTP1ResponseParser, requester: Requester) {
        self.request = request
        self.parser = parser
        self.requester = requester
    }
}

extension PoolCore {
    /// A caller's round trip of pre-serialized `request` bytes on the connection it leases.
    func roundTrip(_ handle: LeaseHandle, request: [UInt8], isHead: Bool, timeout: Duration,
                   _ handoff: Handoff<Result<HotResponse, HotPoolError>>) {
        guard !closed else { return handoff.deliver(.failure(.poolClosed)) }
        guard let slot = leasedSlot(handle) else { return handoff.deliver(.failure(.staleConnection)) }
        let s = Int(slot)
        guard ops[s] == nil else { return handoff.deliver(.failure(.connectionBusy)) }
        totalRequests += 1
        table.requestCount[s] &+= 1
        metrics.request()
        guard table.fd[s] >= 0 else {
            // Closed by an earlier failure or by the server: a request that fails at once.
            table.errorCount[s] &+= 1
            countFailedRequest()
            return handoff.deliver(.failure(.connectionClosed(host: hostName(slot), ip: ipAddress(slot))))
        }
        startRoundTrip(slot, request: request, isHead: isHead, timeout: timeout, for: .caller(handoff))
    }

    /// Socket bytes a round trip reads per readiness event before it gives the loop back, so a
    /// server that never stops sending (data, or records OpenSSL handles itself, such as TLS 1.3
    /// KeyUpdates) cannot starve timers (its own deadline among them) or other connections.
    static let readBudgetPerEvent = 256 * 1024
    /// Socket bytes a read-on after a response (or on a connection nobody reads) may take: more
    /// than a few TLS records that carry no data is a server streaming at a connection it was
    /// not asked anything on.
    static let readOnBudget = 64 * 1024

    /// Starts an exchange on a leased, open connection, bounded by `timeout`. Nothing is unread
    /// on it (see `completeRoundTrip` and `handleIO`), so it only reads once input arrives.
    func startRoundTrip(_ slot: Int32, request: [UInt8], isHead: Bool, timeout: Duration, for requester: RoundTripOp.Requester) {
        let parser = HTTP1ResponseParser(limits: config.responseLimits, isHeadRequest: isHead)
        let op = RoundTripOp(request: request, parser: parser, requester: requester)
        ops[Int(slot)] = .roundTrip(op)
        table.deadline[Int(slot)] = deadline(after: timeout)
        armTick(at: table.deadline[Int(slot)])
        stepRoundTrip(slot, op, readable: false)
    }

    /// Writes what is left of the request, then reads until the response is complete, the socket
    /// would block, or this event's read budget is spent (then the event is redelivered on the
    /// next turn, after timers). Reading waits for a readable event unless one came (`readable`)
    /// or OpenSSL holds bytes already: the epoll registration is edge-triggered, so data arriving
    /// after the last read always brings an event, and a read before it would only say EAGAIN.
    func stepRoundTrip(_ slot: Int32, _ op: RoundTripOp, readable: Bool) {
        let ssl = table.ssl[Int(slot)]
        while op.written < op.request.count {
            let rc = op.request.withUnsafeBytes { bytes in
                hp_tls_write(ssl, bytes.baseAddress! + op.written, Int32(clamping: bytes.count - op.written))
            }
            if rc > 0 {
                op.written += Int(rc)
            } else if rc == HP_TLS_WANT_READ || rc == HP_TLS_WANT_WRITE {
                return
            } else {
                return failRoundTrip(slot, op, ioError(slot, ssl, rc))
            }
        }
        guard readable || hp_tls_has_pending(ssl) != 0 else { return }
        hp_tls_budget_begin(Self.readBudgetPerEvent)
        let outcome = readResponse(slot, op, ssl)
        let budgetSpent = hp_tls_budget_end() != 0
        switch outcome {
        case .complete(let response): completeRoundTrip(slot, op, response)
        case .failed(let error): failRoundTrip(slot, op, error)
        case .wouldBlock: if budgetSpent { reactor.redeliver(table.handle(slot).token, .readable) }
        }
    }

    /// How a round trip's reading ended for now.
    private enum ReadOutcome {
        case complete(HTTP1ResponseParser.Complete)
        case failed(HotPoolError)
        /// The socket said EAGAIN, or the read budget refused a read.
        case wouldBlock
    }

    /// Reads and parses until the response is complete, fails, or no read can go on now.
    private func readResponse(_ slot: Int32, _ op: RoundTripOp, _ ssl: OpaquePointer?) -> ReadOutcome {
        while true {
            let rc = hp_tls_read(ssl, readBuffer.baseAddress, Int32(readBuffer.count))
            do {
                if rc > 0 {
                    if let response = try op.parser.feed(UnsafeRawBufferPointer(rebasing: readBuffer[..<Int(rc)])) {
                        return .complete(response)
                    }
                } else if rc == HP_TLS_WANT_READ || rc == HP_TLS_WANT_WRITE {
                    return .wouldBlock
                } else if rc == HP_TLS_CLOSED {
                    return .complete(try op.parser.finishAtEOF())
                } else {
                    return .failed(ioError(slot, ssl, rc))
                }
            } catch {
                return .failed(HotPoolError(error, host: hostName(slot), ip: ipAddress(slot), limits: config.responseLimits))
            }
        }
    }

    /// The response is complete and goes to its requester. The connection stays usable only if
    /// its head allows it and nothing else is unread: bytes after the response (in the same
    /// read, or read on here to WANT_READ) could only be taken for the answer to a later
    /// request, so they retire it, as does a close from the server.
    private func completeRoundTrip(_ slot: Int32, _ op: RoundTripOp, _ response: HTTP1ResponseParser.Complete) {
        let s = Int(slot)
        ops[s] = nil
        table.deadline[s] = 0
        if case .caller = op.requester { table.lastUsed[s] = now }  // a probe is not a use
        let unusable: CloseReason? =
            if op.parser.trailingBytes > 0 { .unsolicitedData }
            else if !response.keepAlive { .remoteClosed }
            else { unreadInput(slot) }
        if let unusable { retire(slot, unusable) }
        deliver(slot, op, .success(HotResponse(head: response.head, body: response.body, connectionReusable: unusable == nil)))
    }

    /// A round trip failed: the connection is marked unhealthy and its socket closed at once;
    /// the slot is destroyed (`unhealthyOnReturn`) when the caller returns it.
    func failRoundTrip(_ slot: Int32, _ op: RoundTripOp, _ error: HotPoolError) {
        let s = Int(slot)
        ops[s] = nil
        table.deadline[s] = 0
        table.errorCount[s] &+= 1
        table.healthy[s] = false
        closeSocket(slot, sendCloseNotify: false)
        table.closeOnReturn[s] = CloseReason.unhealthyOnReturn.code
        logger.debug("round trip failed", metadata: ["host": "\(hostName(slot))", "ip": "\(ipAddress(slot))", "error": "\(error)"])
        deliver(slot, op, .failure(error))
    }

    /// Hands the outcome to whoever asked for the exchange.
    private func deliver(_ slot: Int32, _ op: RoundTripOp, _ result: Result<HotResponse, HotPoolError>) {
        switch op.requester {
        case .caller(let handoff):
            if case .failure = result { countFailedRequest() }
            handoff.deliver(result)
        case .healthCheck:
            healthCheckFinished(slot, result)
        }
    }

    /// Counts a caller's request that failed.
    func countFailedRequest() {
        failedRequests += 1
        metrics.requestFailed()
    }

    private func ioError(_ slot: Int32, _ ssl: OpaquePointer?, _ rc: Int32) -> HotPoolError {
        let reason = tlsErrorString(ssl, rc)
        return rc == HP_TLS_SYSCALL
            ? .networkError(host: hostName(slot), ip: ipAddress(slot), reason: reason)
            : .tlsError(host: hostName(slot), ip: ipAddress(slot), reason: reason)
    }

    /// Reads what arrived on a connection no exchange is reading, through OpenSSL to WANT_READ
    /// (TLS 1.3 session tickets are consumed there and yield no bytes), within `readOnBudget`.
    /// Returns why the connection can carry no further request, or nil if nothing was unread.
    func unreadInput(_ slot: Int32) -> CloseReason? {
        guard let ssl = table.ssl[Int(slot)] else { return nil }  // its socket is closed already
        hp_tls_budget_begin(Self.readOnBudget)
        let rc = hp_tls_read(ssl, readBuffer.baseAddress, Int32(readBuffer.count))
        if hp_tls_budget_end() != 0 && rc <= 0 {
            logger.debug("the server streams records nobody asked for", metadata: ["ip": "\(ipAddress(slot))"])
            return .unsolicitedData
        }
        if rc > 0 {
            logger.debug("unsolicited bytes from the server", metadata: ["ip": "\(ipAddress(slot))", "bytes": "\(rc)"])
            return .unsolicitedData
        }
        if rc == HP_TLS_WANT_READ || rc == HP_TLS_WANT_WRITE { return nil }
        return rc == HP_TLS_CLOSED ? .remoteClosed : .networkError
    }

    /// The leased connection can carry no further request: it is marked unhealthy, its socket is
    /// closed now (with close_notify only after a clean close by the server), and it is destroyed with `reason`
    /// when it comes back, unless an earlier reason was set. A request on it meanwhile fails
    /// at once (`connectionClosed`).
    func retire(_ slot: Int32, _ reason: CloseReason) {
        let s = Int(slot)
        closeSocket(slot, sendCloseNotify: reason == .remoteClosed && table.healthy[s])
        table.healthy[s] = false
        if table.closeOnReturn[s] == 0 { table.closeOnReturn[s] = reason.code }
    }

    /// Dispatches a readiness event to what its slot is doing; stale tokens are dropped. Input
    /// on a connection no exchange is reading is read at once, so it is never left for the
    /// next request to take as its answer.
    func handleIO(_ token: UInt64, _ events: IOEvents) {
        let handle = SlotHandle(token: token)
        guard table.isCurrent(handle) else { return }
        let slot = handle.slot
        // A hang-up or an error is read too: the read reports it.
        let input = !events.isDisjoint(with: [.readable, .readHangup, .hangup, .error])
        switch (table.state[Int(slot)], ops[Int(slot)]) {
        case (.dialing, .dial(let op)?):
            stepDial(slot, op, events: events)
        case (.leased, .roundTrip(let op)?):
            stepRoundTrip(slot, op, readable: input)
        case (.leased, nil):
            if input, let reason = unreadInput(slot) { retire(slot, reason) }
        case (.idle, _):
            if input, let reason = unreadInput(slot) { destroy(slot, reason) }
        default:
            break
        }
    }
}
