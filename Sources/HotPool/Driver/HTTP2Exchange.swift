import CShims

/// Exchanges on HTTP/2 connections: each request is a stream of the connection's nghttp2
/// session; what the server sends between requests (SETTINGS, PING, WINDOW_UPDATE, GOAWAY) is
/// read by the session as it arrives.
extension PoolDriver {
    /// Opens the request's stream and sends its frames.
    func startHTTP2Exchange(_ slot: Int32, _ op: ExchangeOp, _ exchange: HTTP2Exchange) {
        let host = machine.hostName(slot), ip = machine.ipAddress(slot)
        guard let session = http2[Int(slot)] else {
            return failExchange(slot, op, .networkError(host: host, ip: ip, reason: "an HTTP/2 request on an HTTP/1.1 connection"))
        }
        if let why = session.open(exchange) {
            return failExchange(slot, op, .networkError(host: host, ip: ip, reason: "HTTP/2: \(why)"))
        }
        if !sendHTTP2(slot, session) { failExchange(slot, op, tlsError(slot, HP_TLS_ERROR)) }
    }

    /// Reads what arrived into the session and ends the exchange once its stream closed, or the
    /// connection failed under it.
    func stepHTTP2Exchange(_ slot: Int32, _ op: ExchangeOp) {
        guard let session = http2[Int(slot)], let exchange = op.http2 else { return }
        let broken = readHTTP2(slot, session)
        let host = machine.hostName(slot), ip = machine.ipAddress(slot)
        switch exchange.outcome {
        case nil:
            if let broken { failExchange(slot, op, broken.error) }
        case .answered(let head, let body)?:
            io[Int(slot)] = nil
            let unusable = broken?.reason ?? (session.isOpen ? nil : .remoteClosed)
            send(.exchangeEnded(machine.table.handle(slot), .answered(status: head.status.code, unusable: unusable)))
            finish(op, .success(HotResponse(head: head, body: body, connectionReusable: unusable == nil)), metrics: metrics)
        case .refused(let error)?:
            failExchange(slot, op, HotPoolError(error, host: host, ip: ip, limits: config.responseLimits))
        case .reset(let code)?:
            failExchange(slot, op, .streamReset(host: host, ip: ip, reason: String(cString: hp_h2_error_code_name(code))))
        }
    }

    /// Feeds what the engine decrypts to the session (its callbacks record each stream's
    /// response) and sends what the session answers. Returns why the connection can carry no
    /// further request, with the error an exchange on it fails with; nil while it can.
    func readHTTP2(_ slot: Int32, _ session: HTTP2Session) -> (reason: CloseReason, error: HotPoolError)? {
        let host = machine.hostName(slot), ip = machine.ipAddress(slot)
        let tls = tls[Int(slot)]
        var broken: (reason: CloseReason, error: HotPoolError)?
        reading: while true {
            let rc = hp_tls_read(tls, readBuffer.baseAddress, Int32(readBuffer.count))
            switch rc {
            case 1...:
                if let why = session.receive(UnsafeRawBufferPointer(rebasing: readBuffer[..<Int(rc)])) {
                    broken = (.networkError, .networkError(host: host, ip: ip, reason: "HTTP/2: \(why)"))
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
        if broken == nil, session.goAwayLastStream != nil { broken = (.remoteClosed, .connectionClosed(host: host, ip: ip)) }
        return broken
    }

    /// Encrypts what the session has to send and sends it; false on a TLS failure.
    @discardableResult
    func sendHTTP2(_ slot: Int32, _ session: HTTP2Session) -> Bool {
        guard let tls = tls[Int(slot)] else { return false }
        let written = session.drainOutput { writePlaintext(tls, $0) }
        flush(slot)
        return written
    }
}
