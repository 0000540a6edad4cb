import CShims
import HTTPTypes

/// One request/response exchange under way on a leased connection.
final class ExchangeOp {
    /// Who waits for the response.
    enum Requester {
        /// A caller's `roundTrip`.
        case caller(Handoff<Result<HotResponse, HotPoolError>>)
        /// A caller's `execute` (the driver puts the connection back once it is answered).
        case execute(Handoff<Result<HotResponse, HotPoolError>>)
        /// The pool's own health check.
        case healthCheck
    }

    let request: [UInt8]
    var written = 0
    var parser: HTTP1ResponseParser
    let requester: Requester
    /// The connection an `execute` leased for this exchange.
    var lease: LeaseHandle?

    init(request: [UInt8], parser: HTTP1ResponseParser, requester: Requester) {
        self.request = request
        self.parser = parser
        self.requester = requester
    }

    /// Hands the outcome to the caller who asked (a probe's outcome is the machine's alone); a
    /// failure is counted in `metrics` when given.
    func finish(_ result: Result<HotResponse, HotPoolError>, metrics: PoolMetrics?) {
        switch requester {
        case .caller(let handoff), .execute(let handoff):
            if case .failure = result { metrics?.requestFailed() }
            handoff.tryDeliver(result)
        case .healthCheck:
            break
        }
    }
}

extension PoolDriver {
    /// Socket bytes a round trip reads per readiness event before it gives the loop back, so a
    /// server that never stops sending (data, or records OpenSSL handles itself, such as TLS 1.3
    /// KeyUpdates) cannot starve timers (its own deadline among them) or other connections.
    static let readBudgetPerEvent = 256 * 1024
    /// Socket bytes a read-on after a response (or on a connection nobody reads) may take: more
    /// than a few TLS records that carry no data is a server streaming at a connection it was
    /// not asked anything on.
    static let readOnBudget = 64 * 1024

    /// Starts the exchange the machine accepted. Nothing is unread on the connection (see
    /// `completeExchange` and `handleIO`), so it only reads once input arrives.
    func startExchange(_ slot: Int32, _ op: ExchangeOp) {
        io[Int(slot)] = .exchange(op)
        stepExchange(slot, op, readable: false)
    }

    /// Sends the health-check request on an idle connection the machine took for it.
    func startProbe(_ slot: Int32) {
        let identity = identity[Int(slot)]!
        let request = HTTP1Request.serialize(
            HTTPRequest(method: .get, scheme: "https", authority: identity.authority, path: config.healthCheckPath!), body: [],
            defaultHost: identity.authority, profile: identity.profileHeaders)
        let parser = HTTP1ResponseParser(limits: config.responseLimits, isHeadRequest: false)
        startExchange(slot, ExchangeOp(request: request, parser: parser, requester: .healthCheck))
    }

    /// Writes what is left of the request, then reads until the response is complete, the socket
    /// would block, or this event's read budget is spent (then the event is redelivered on the
    /// next turn, after timers). Reading waits for a readable event unless one came (`readable`)
    /// or OpenSSL holds bytes already: the epoll registration is edge-triggered, so data arriving
    /// after the last read always brings an event, and a read before it would only say EAGAIN.
    func stepExchange(_ slot: Int32, _ op: ExchangeOp, readable: Bool) {
        let ssl = ssl[Int(slot)]
        while op.written < op.request.count {
            let rc = op.request.withUnsafeBytes { bytes in
                hp_tls_write(ssl, bytes.baseAddress! + op.written, Int32(clamping: bytes.count - op.written))
            }
            if rc > 0 {
                op.written += Int(rc)
            } else if rc == HP_TLS_WANT_READ || rc == HP_TLS_WANT_WRITE {
                return
            } else {
                return failExchange(slot, op, ioError(slot, ssl, rc))
            }
        }
        guard readable || hp_tls_has_pending(ssl) != 0 else { return }
        hp_tls_budget_begin(Self.readBudgetPerEvent)
        let outcome = readResponse(slot, op, ssl)
        let budgetSpent = hp_tls_budget_end() != 0
        switch outcome {
        case .complete(let response): completeExchange(slot, op, response)
        case .failed(let error): failExchange(slot, op, error)
        case .wouldBlock: if budgetSpent { reactor.redeliver(machine.table.handle(slot).token, .readable) }
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
    private func readResponse(_ slot: Int32, _ op: ExchangeOp, _ ssl: OpaquePointer?) -> ReadOutcome {
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
                return .failed(HotPoolError(error, host: machine.hostName(slot), ip: machine.ipAddress(slot), limits: config.responseLimits))
            }
        }
    }

    /// The response is complete and goes to its requester. The connection stays usable only if
    /// its head allows it and nothing else is unread: bytes after the response (in the same
    /// read, or read on here to WANT_READ) could only be taken for the answer to a later
    /// request, so the machine retires it, as it does after a close from the server.
    private func completeExchange(_ slot: Int32, _ op: ExchangeOp, _ response: HTTP1ResponseParser.Complete) {
        io[Int(slot)] = nil
        let unusable: CloseReason? =
            if op.parser.trailingBytes > 0 { .unsolicitedData }
            else if !response.keepAlive { .remoteClosed }
            else { unreadInput(slot) }
        send(.exchangeEnded(machine.table.handle(slot), .answered(status: response.head.status.code, unusable: unusable)))
        finish(op, .success(HotResponse(head: response.head, body: response.body, connectionReusable: unusable == nil)), metrics: metrics)
    }

    /// The exchange failed (or timed out): the machine marks the connection unhealthy and has its
    /// socket closed; it is destroyed (`unhealthyOnReturn`) when the caller returns it.
    func failExchange(_ slot: Int32, _ op: ExchangeOp, _ error: HotPoolError) {
        io[Int(slot)] = nil
        logger.debug("round trip failed", metadata: [
            "host": "\(machine.hostName(slot))", "ip": "\(machine.ipAddress(slot))", "error": "\(error)",
        ])
        send(.exchangeEnded(machine.table.handle(slot), .failed))
        finish(op, .failure(error), metrics: metrics)
    }

    private func ioError(_ slot: Int32, _ ssl: OpaquePointer?, _ rc: Int32) -> HotPoolError {
        let reason = tlsErrorString(ssl, rc)
        return rc == HP_TLS_SYSCALL
            ? .networkError(host: machine.hostName(slot), ip: machine.ipAddress(slot), reason: reason)
            : .tlsError(host: machine.hostName(slot), ip: machine.ipAddress(slot), reason: reason)
    }

    /// Reads what arrived on a connection no exchange is reading, through OpenSSL to WANT_READ
    /// (TLS 1.3 session tickets are consumed there and yield no bytes), within `readOnBudget`.
    /// Returns why the connection can carry no further request, or nil if nothing was unread.
    func unreadInput(_ slot: Int32) -> CloseReason? {
        guard let ssl = ssl[Int(slot)] else { return nil }  // its socket is closed already
        hp_tls_budget_begin(Self.readOnBudget)
        let rc = hp_tls_read(ssl, readBuffer.baseAddress, Int32(readBuffer.count))
        if hp_tls_budget_end() != 0 && rc <= 0 {
            logger.debug("the server streams records nobody asked for", metadata: ["ip": "\(machine.ipAddress(slot))"])
            return .unsolicitedData
        }
        if rc > 0 {
            logger.debug("unsolicited bytes from the server", metadata: ["ip": "\(machine.ipAddress(slot))", "bytes": "\(rc)"])
            return .unsolicitedData
        }
        if rc == HP_TLS_WANT_READ || rc == HP_TLS_WANT_WRITE { return nil }
        return rc == HP_TLS_CLOSED ? .remoteClosed : .networkError
    }
}
