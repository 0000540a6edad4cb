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

    /// Starts an exchange on a leased, open connection, bounded by `timeout`.
    func startRoundTrip(_ slot: Int32, request: [UInt8], isHead: Bool, timeout: Duration, for requester: RoundTripOp.Requester) {
        let parser = HTTP1ResponseParser(
            maxHeaderBytes: config.maxResponseHeaderBytes, maxBodyBytes: config.maxResponseBodyBytes, isHeadRequest: isHead)
        let op = RoundTripOp(request: request, parser: parser, requester: requester)
        ops[Int(slot)] = .roundTrip(op)
        table.deadline[Int(slot)] = now + timeout.nanoseconds
        let inputWaiting = table.pendingInput[Int(slot)]
        table.pendingInput[Int(slot)] = false
        armTick(at: table.deadline[Int(slot)])
        stepRoundTrip(slot, op, readable: inputWaiting)
    }

    /// Writes what is left of the request, then reads until the response is complete or the
    /// socket would block. Reading waits for a readable event unless one came (`readable`) or
    /// OpenSSL holds bytes already: the epoll registration is edge-triggered, so data arriving
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
        while true {
            let rc = hp_tls_read(ssl, readBuffer.baseAddress, Int32(readBuffer.count))
            do {
                if rc > 0 {
                    if let response = try op.parser.feed(UnsafeRawBufferPointer(rebasing: readBuffer[..<Int(rc)])) {
                        return completeRoundTrip(slot, op, response)
                    }
                } else if rc == HP_TLS_WANT_READ || rc == HP_TLS_WANT_WRITE {
                    return
                } else if rc == HP_TLS_CLOSED {
                    return completeRoundTrip(slot, op, try op.parser.finishAtEOF())
                } else {
                    return failRoundTrip(slot, op, ioError(slot, ssl, rc))
                }
            } catch {
                let limits = (config.maxResponseHeaderBytes, config.maxResponseBodyBytes)
                return failRoundTrip(slot, op, HotPoolError(error, host: hostName(slot), ip: ipAddress(slot), limits: limits))
            }
        }
    }

    private func completeRoundTrip(_ slot: Int32, _ op: RoundTripOp, _ response: HTTP1ResponseParser.Complete) {
        let s = Int(slot)
        ops[s] = nil
        table.deadline[s] = 0
        if case .caller = op.requester { table.lastUsed[s] = now }  // a probe is not a use
        if !response.keepAlive {
            // The server ends the connection: free the socket now; the slot goes when it is returned.
            closeSocket(slot, sendCloseNotify: true)
            if table.closeOnReturn[s] == 0 { table.closeOnReturn[s] = CloseReason.remoteClosed.code }
        }
        deliver(slot, op, .success(HotResponse(head: response.head, body: response.body)))
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

    /// Reads what arrived on a connection nobody is reading (TLS 1.3 session tickets, stray
    /// bytes): readable is not closed. Returns false if the connection turned out dead and was
    /// destroyed (`remoteClosed` on a clean close, `networkError` otherwise).
    @discardableResult
    func drainInput(_ slot: Int32) -> Bool {
        let ssl = table.ssl[Int(slot)]
        while true {
            let rc = hp_tls_read(ssl, readBuffer.baseAddress, Int32(readBuffer.count))
            if rc > 0 {
                logger.debug("discarded unsolicited bytes", metadata: ["ip": "\(ipAddress(slot))", "bytes": "\(rc)"])
            } else if rc == HP_TLS_WANT_READ || rc == HP_TLS_WANT_WRITE {
                return true
            } else {
                destroy(slot, rc == HP_TLS_CLOSED ? .remoteClosed : .networkError)
                return false
            }
        }
    }

    /// Dispatches a readiness event to what its slot is doing; stale tokens are dropped.
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
            if input { table.pendingInput[Int(slot)] = true }
        case (.idle, _):
            if input { drainInput(slot) }
        default:
            break
        }
    }
}
