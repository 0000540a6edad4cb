import CShims
import HotPoolCore
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine

/// An HTTP/2 connection's session and the exchanges under way on its streams.
final class HTTP2Connection {
    let session: HTTP2Session
    /// Exchanges under way, by their stream's exchange.
    var exchanges: [ObjectIdentifier: ExchangeOp] = [:]
    /// The stream limit the machine was last told (from the dial on).
    var announcedLimit: Int
    /// The machine was told of the server's GOAWAY.
    var goAwayReported = false
    /// New streams wait to be sent at the end of the loop's turn (`PoolDriver.sendStreamsOpenedThisTurn`).
    var sendScheduled = false
    /// A health check's PING is under way.
    var pinging = false
    /// Exchanges whose caller waits for room to hand the next piece of its request body
    /// (`PoolDriver.makeRoomForUploads`); those that no longer wait leave it as sends complete.
    var uploadsWaitingForRoom: [ExchangeOp] = []
    /// Exchanges whose response body streams to its reader, from its head on (`PoolDriver.http2Input`).
    var streamedBodies: [ExchangeOp] = []

    init(session: HTTP2Session) {
        self.session = session
        announcedLimit = 0
    }

    /// The session's stream limit as the machine takes it.
    var streamLimit: Int { Int(min(session.maxConcurrentStreams, UInt32(Int32.max))) }
}

/// Exchanges on HTTP/2 connections: each request is a stream of the connection's nghttp2
/// session, many at once; what the server sends between them (SETTINGS, PING, WINDOW_UPDATE,
/// GOAWAY) is read by the session as it arrives, whether or not a stream is open.
extension PoolDriver {
    /// Opens the request's stream and sends its frames (`op.streamLease` names a caller's
    /// stream lease; nil for a health check).
    func startHTTP2Exchange(_ slot: Int32, _ op: ExchangeOp) {
        let host = machine.hostName(slot), ip = machine.ipAddress(slot)
        guard let connection = http2[Int(slot)], let exchange = op.http2 else {
            return endHTTP2Exchange(slot, op, .failed, .failure(.networkError(host: host, ip: ip, reason: "HTTP version mismatch")))
        }
        if let why = connection.session.open(exchange) {
            return endHTTP2Exchange(slot, op, .streamFailed, .failure(.networkError(host: host, ip: ip, reason: "HTTP/2: \(why)")))
        }
        connection.exchanges[ObjectIdentifier(exchange)] = op
        op.slot = machine.table.handle(slot)
        idleBytes[Int(slot)] = 0
        // The turn's other requests on the connection join this one: one TLS record, one send.
        if !connection.sendScheduled {
            connection.sendScheduled = true
            http2Unsent.append(machine.table.handle(slot))
        }
        offerRoom(slot, op)
    }

    /// At the end of the loop's turn: connections with new streams send them (and streams opened
    /// while sending, by callers a failure let in, go out in the same turn).
    func sendStreamsOpenedThisTurn() {
        while !http2Unsent.isEmpty {
            let handles = http2Unsent
            http2Unsent.removeAll(keepingCapacity: true)
            for handle in handles where machine.table.isCurrent(handle) {
                guard let connection = http2[Int(handle.slot)], connection.sendScheduled else { continue }
                connection.sendScheduled = false
                if !sendHTTP2(handle.slot, connection.session) {
                    failHTTP2Exchanges(handle.slot, tlsError(handle.slot, HP_TLS_ERROR))
                } else {
                    _ = endClosedStreams(handle.slot, connection, broken: nil)
                }
            }
        }
    }

    /// Input on an HTTP/2 connection (after its handshake): the session reads it, exchanges whose
    /// stream closed end, and a broken connection fails those still under way; with none under
    /// way, the machine hears why the connection can carry no further request.
    func http2Input(_ slot: Int32, _ connection: HTTP2Connection) {
        let handle = machine.table.handle(slot)
        let broken = readHTTP2(slot, connection.session)
        for exchange in connection.session.takeHeadsArrived() {
            if let op = connection.exchanges[ObjectIdentifier(exchange)], let head = exchange.responseHead {
                responseHeadArrived(slot, op, head, exchange.decodedCodings)
                if op.bodyStream != nil { connection.streamedBodies.append(op) }
            }
        }
        // Streamed bodies take what came; those whose stream closed get their last bytes with
        // their outcome (`endClosedStreams`), and leave the list, as do those given up.
        if !connection.streamedBodies.isEmpty {
            connection.streamedBodies.removeAll { op in
                guard let stream = op.bodyStream, let exchange = op.http2, exchange.outcome == nil,
                      connection.exchanges[ObjectIdentifier(exchange)] === op else { return true }
                stream.push(exchange.takeBody())
                return false
            }
        }
        let goAway = connection.session.goAwayLastStream != nil
        if goAway && !connection.goAwayReported {
            // First of all, the connection takes no new stream (a retry must go elsewhere); those
            // the server still answers run to their end.
            connection.goAwayReported = true
            send(.unreadInput(handle, .remoteClosed))
            guard machine.table.isCurrent(handle) else { return }
        }
        guard endClosedStreams(slot, connection, broken: broken?.reason) else { return }
        if let broken { return http2Broke(slot, connection, broken) }
        if connection.pinging && connection.session.pingsUnanswered == 0 {
            endPing(slot, connection, passed: true)
            guard machine.table.isCurrent(handle) else { return }
        }
        if connection.streamLimit != connection.announcedLimit {
            connection.announcedLimit = connection.streamLimit
            send(.streamLimitChanged(handle, connection.streamLimit))
        }
    }

    /// The connection can carry nothing more (the server closed or reset it, a TLS or protocol
    /// error, a flood): its health check fails, its exchanges fail with `broken.error`, and with
    /// none under way the machine hears why. A flood is the server's misconduct, not a failure of
    /// its IP nor of a health check: the machine hears of it first, so the connection goes as
    /// `unsolicitedData` however many exchanges it fails.
    func http2Broke(_ slot: Int32, _ connection: HTTP2Connection, _ broken: (reason: CloseReason, error: HotPoolError)) {
        let handle = machine.table.handle(slot)
        if broken.reason == .unsolicitedData {
            send(.unreadInput(handle, broken.reason))
            guard machine.table.isCurrent(handle) else { return }
        }
        if connection.pinging {
            endPing(slot, connection, passed: false)
            guard machine.table.isCurrent(handle) else { return }
        }
        if connection.exchanges.isEmpty {
            send(.unreadInput(handle, broken.reason))
            guard machine.table.isCurrent(handle) else { return }
        }
        failHTTP2Exchanges(slot, broken.error)
    }

    /// Ends the exchanges whose stream closed (answered, refused, or reset by the server, or by
    /// nghttp2 when a stream opened after a GOAWAY goes out, or as this side's END_STREAM went
    /// out after the server's); an answer on a connection that broke or got a GOAWAY says it can
    /// carry no further request. False if the connection went meanwhile.
    func endClosedStreams(_ slot: Int32, _ connection: HTTP2Connection, broken: CloseReason?) -> Bool {
        let handle = machine.table.handle(slot)
        for exchange in connection.session.takeEnded() {
            guard let op = connection.exchanges.removeValue(forKey: ObjectIdentifier(exchange)) else { continue }
            let host = machine.hostName(slot), ip = machine.ipAddress(slot)
            switch exchange.outcome! {
            case .answered(let head, let body):
                let unusable: CloseReason? = broken ?? (connection.session.goAwayLastStream != nil ? .remoteClosed : nil)
                let result: Result<HotResponse, HotPoolError> =
                    if let failure = body.decodingFailure {
                        .failure(HotPoolError(failure, host: host, ip: ip, limits: config.responseLimits))
                    } else {
                        .success(HotResponse(head: head, body: body.bytes, decodedContentCodings: body.decodedCodings,
                                             connectionReusable: unusable == nil))
                    }
                endHTTP2Exchange(slot, op, .answered(status: head.status.code, unusable: unusable), result)
            case .refused(let error):
                endHTTP2Exchange(slot, op, .streamFailed,
                                 .failure(HotPoolError(error, host: host, ip: ip, limits: config.responseLimits)))
            case .reset(let code) where code == HTTP2ErrorCode.refusedStream && op.runsAgainIfUnprocessed:
                retryElsewhere(slot, op)
            case .reset(let code):
                let reason = String(cString: hp_h2_error_code_name(code))
                endHTTP2Exchange(slot, op, .streamFailed, .failure(.streamReset(host: host, ip: ip, reason: reason)))
            }
            guard machine.table.isCurrent(handle) else { return false }
        }
        return true
    }

    /// An exchange on the connection ended: the machine hears how (by its stream lease, or as the
    /// slot's health check), then its requester gets the result.
    func endHTTP2Exchange(_ slot: Int32, _ op: ExchangeOp, _ outcome: PoolStateMachine.ExchangeOutcome,
                          _ result: Result<HotResponse, HotPoolError>) {
        if case .failure(let error) = result {
            logger.debug("HTTP/2 exchange failed", metadata: ["ip": "\(machine.ipAddress(slot))", "error": "\(error)"])
        }
        if op.upload != nil, let connection = http2[Int(slot)] { connection.uploadsWaitingForRoom.removeAll { $0 === op } }
        if let lease = op.streamLease {
            send(.streamExchangeEnded(lease, outcome))
        } else {
            send(.exchangeEnded(machine.table.handle(slot), outcome))
        }
        finish(op, result)
    }

    /// An `execute` whose request the server did not process (its stream was refused) runs once
    /// more: its lease ends, and it asks for a connection again (after a GOAWAY, the machine
    /// gives it another connection).
    private func retryElsewhere(_ slot: Int32, _ op: ExchangeOp) {
        guard let pending = op.execute, op.runsAgainIfUnprocessed, let lease = op.streamLease else {
            let error = HotPoolError.streamReset(host: machine.hostName(slot), ip: machine.ipAddress(slot), reason: "REFUSED_STREAM")
            return endHTTP2Exchange(slot, op, .streamFailed, .failure(error))
        }
        logger.debug("request not processed by the server; retrying it on another connection",
                     metadata: ["ip": "\(machine.ipAddress(slot))"])
        send(.streamExchangeEnded(lease, .notProcessed))
        if machine.isCurrent(lease) { send(.release(lease)) }
        pending.retried = true
        let id = newWaiterID()
        ask(id, .execute(pending), .acquire(id, pending.acquire))
    }

    /// Fails every exchange under way on the connection (it broke, or is being closed).
    func failHTTP2Exchanges(_ slot: Int32, _ error: HotPoolError) {
        guard let connection = http2[Int(slot)] else { return }
        let ops = connection.exchanges.values
        connection.exchanges.removeAll()
        for op in ops { endHTTP2Exchange(slot, op, .failed, .failure(error)) }
    }

    /// Takes the exchange `matches` picks off the connection and resets its stream; nil if none.
    func cancelExchange(_ slot: Int32, where matches: (ExchangeOp) -> Bool) -> ExchangeOp? {
        guard let connection = http2[Int(slot)], let (key, op) = connection.exchanges.first(where: { matches($0.value) }) else {
            return nil
        }
        connection.exchanges[key] = nil
        if let exchange = op.http2 { connection.session.cancel(exchange) }
        sendHTTP2(slot, connection.session)
        return op
    }

    /// Stops the exchange of a stream lease (its deadline passed, or its caller returned the
    /// lease): the stream is reset and the exchange fails.
    func abortStreamExchange(_ lease: LeaseHandle) {
        guard let op = cancelExchange(lease.slot, where: { $0.streamLease == lease }) else { return }
        let host = machine.hostName(lease.slot), ip = machine.ipAddress(lease.slot)
        let error: HotPoolError = machine.isCurrent(lease) ? .timeout(host: host, ip: ip, phase: op.timeoutPhase) : .staleConnection
        endHTTP2Exchange(lease.slot, op, .failed, .failure(error))
    }

    /// A health check: a PING, which passes once acknowledged.
    func startPing(_ slot: Int32) {
        guard let connection = http2[Int(slot)], connection.session.ping() else {
            return send(.exchangeEnded(machine.table.handle(slot), .failed))
        }
        connection.pinging = true
        idleBytes[Int(slot)] = 0  // its acknowledgement is no input nobody asked for
        if !sendHTTP2(slot, connection.session) { endPing(slot, connection, passed: false) }
    }

    /// The health check's PING was acknowledged, or not (the connection broke, or its deadline
    /// passed). Acknowledged after the server's GOAWAY, the connection goes all the same.
    func endPing(_ slot: Int32, _ connection: HTTP2Connection, passed: Bool) {
        connection.pinging = false
        let unusable: CloseReason? = connection.goAwayReported ? .remoteClosed : nil
        send(.exchangeEnded(machine.table.handle(slot), passed ? .acknowledged(unusable: unusable) : .failed))
    }

    /// Stops the connection's health check past its deadline.
    func abortHTTP2Probe(_ slot: Int32) {
        if let connection = http2[Int(slot)], connection.pinging { return endPing(slot, connection, passed: false) }
        guard let op = cancelExchange(slot, where: { $0.streamLease == nil }) else { return }
        endHTTP2Exchange(slot, op, .failed, .failure(.timeout(host: machine.hostName(slot), ip: machine.ipAddress(slot), phase: .request)))
    }

    /// Feeds what the engine decrypts to the session (its callbacks record each stream's
    /// response) and sends what the session answers. Returns why the connection broke (the
    /// server closed it, a TLS or HTTP/2 protocol error), with the error its exchanges fail with.
    func readHTTP2(_ slot: Int32, _ session: HTTP2Session) -> (reason: CloseReason, error: HotPoolError)? {
        let host = machine.hostName(slot), ip = machine.ipAddress(slot)
        guard let tls = tls[Int(slot)] else { return (.networkError, tlsError(slot, HP_TLS_ERROR)) }
        var broken: (reason: CloseReason, error: HotPoolError)?
        reading: while true {
            let rc = hp_tls_read(tls, readBuffer.baseAddress, Int32(readBuffer.count))
            switch rc {
            case 1...:
                if let failure = session.receive(UnsafeRawBufferPointer(rebasing: readBuffer[..<Int(rc)])) {
                    broken = failure.isFlood
                        ? (.unsolicitedData, .networkError(host: host, ip: ip, reason: Self.floodReason))
                        : (.networkError, .networkError(host: host, ip: ip, reason: "HTTP/2: \(failure)"))
                    break reading
                }
                // What the record asks for leaves nghttp2 at once (within the cap), so it holds
                // acknowledgements only while the server does not read them, never because one
                // read brought many records.
                if !encryptHTTP2Output(tls, session) {
                    broken = (.networkError, tlsError(slot, HP_TLS_ERROR))
                    break reading
                }
            case HP_TLS_WANT_READ, HP_TLS_WANT_WRITE:
                break reading
            case HP_TLS_CLOSED:
                broken = (.remoteClosed, .unexpectedEOF(host: host, ip: ip))
                break reading
            default:
                broken = (.networkError, tlsError(slot, rc))
                break reading
            }
        }
        // Acknowledgements and window updates go out even when the connection is ending.
        if !sendHTTP2(slot, session), broken == nil { broken = (.networkError, tlsError(slot, HP_TLS_ERROR)) }
        if broken == nil, session.hasEnded {
            broken = (.networkError, .networkError(host: host, ip: ip, reason: "HTTP/2 protocol error (the session ended)"))
        }
        return broken
    }

    /// Why an HTTP/2 connection whose server floods it is closed.
    static let floodReason = "HTTP/2 flood: the server sends PING or SETTINGS frames faster than it reads their acknowledgements"

    /// Encrypts what the session has to send, up to the connection's cap on unsent output
    /// (`maxUnsentOutput`; the rest stays queued in the session and follows as sends complete),
    /// and sends it; false on a TLS failure.
    @discardableResult
    func sendHTTP2(_ slot: Int32, _ session: HTTP2Session) -> Bool {
        guard let tls = tls[Int(slot)] else { return false }
        let written = encryptHTTP2Output(tls, session)
        flush(slot)
        return written
    }

    /// Encrypts what the session has to send into the engine's output while that holds less than
    /// `maxUnsentOutput`; false on a TLS failure.
    private func encryptHTTP2Output(_ tls: OpaquePointer, _ session: HTTP2Session) -> Bool {
        session.drainOutput(while: { hp_tls_output_pending(tls) < Self.maxUnsentOutput }) { writePlaintext(tls, $0) }
    }
}
