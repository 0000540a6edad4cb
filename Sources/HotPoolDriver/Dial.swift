import CShims
import Glibc
import HotPoolCore
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine

/// A dial under way: TCP connect (to the target, or to its proxy), the tunnel through the proxy
/// if there is one, then the TLS handshake with the target.
final class DialOp {
    enum Phase {
        /// The proxy's host name is being resolved.
        case resolvingProxy
        /// The TCP connect.
        case connecting
        /// Through the proxy's transport (its TLS for an `https` proxy, a passthrough otherwise):
        /// its handshake, then the tunnel's (`tunnel`).
        case tunnelling
        /// The TLS handshake with the target.
        case handshaking
    }

    let target: PoolStateMachine.DialTarget
    var phase: Phase = .connecting
    /// The CONNECT or SOCKS5 exchange with the proxy, once its transport is up.
    var tunnel: ProxyTunnel?

    init(_ target: PoolStateMachine.DialTarget) { self.target = target }
}

extension PoolDriver {
    /// Starts a dial for the slot the machine allocated (its deadline is the machine's): a
    /// non-blocking connect to the target, or to its proxy (resolved first if it is a name).
    func startDial(_ handle: SlotHandle, _ target: PoolStateMachine.DialTarget) {
        let slot = handle.slot, s = Int(slot)
        ensureSlot(slot)
        let op = DialOp(target)
        io[s] = .dial(op)
        idleBytes[s] = 0
        guard let proxy = target.proxy else { return connect(handle, op, to: target.address, port: target.key.port) }
        if ipFamily(proxy.host) != 0 { return connect(handle, op, to: proxy.host, port: proxy.port) }
        if let known = proxyAddresses[proxy], known.expires > reactor.now { return connect(handle, op, to: known.address, port: proxy.port) }
        op.phase = .resolvingProxy
        resolver.lookup(proxy.host) { [unowned self] result in
            // The dial may have ended meanwhile (timed out, the pool closed): its slot moved on.
            guard machine.table.isCurrent(handle), case .dial(let current)? = io[s], current === op else { return }
            switch result {
            case .success(let addresses):
                proxyAddresses[proxy] = (addresses[0], deadline(from: reactor.now, after: config.dnsUpdateInterval.nanoseconds))
                op.phase = .connecting
                connect(handle, op, to: addresses[0], port: proxy.port)
            case .failure(let error):
                failDial(slot, proxyError(slot) { .proxyConnectFailed(proxy: proxy, host: $0, ip: $1, reason: "cannot resolve \(proxy.host): \(error.reason ?? "\(error)")") })
            }
        }
    }

    /// Starts the non-blocking connect of the slot's dial to `address`:`port` (the target, or its
    /// proxy), bound to the next local address of its family, and fixes what the connection is.
    private func connect(_ handle: SlotHandle, _ op: DialOp, to address: String, port: Int) {
        let slot = handle.slot, s = Int(slot), target = op.target
        guard let (fd, localAddress) = rotation.connect(to: address, port: port, logger: logger) else {
            return failDial(slot, .localAddressUnavailable(host: target.key.name, ip: target.address))
        }
        let (profile, headers) = rotation.nextProfile()
        identity[s] = ConnectionIdentity(
            host: target.key.name, port: target.key.port, authority: machine.host(of: slot).authority, ip: target.address,
            proxy: target.proxy, localAddress: localAddress, profileIndex: profile, profile: rotation.profiles[profile].name,
            headers: headers.http1, http2Headers: headers.http2, pseudoHeaderOrder: rotation.profiles[profile].http2.pseudoHeaderOrder)
        guard fd >= 0 else { return failDial(slot, connectError(slot, errno: -fd)) }
        self.fd[s] = fd
        // A connect that ended at once completes on the next turn all the same.
        reactor.io.connect(fd: fd, token: handle.token)
    }

    /// The TCP connect ended: on success receiving starts, and the first engine is made: the
    /// proxy's transport, or the target's TLS engine, whose handshake sends its ClientHello.
    func connected(_ slot: Int32, errno: Int32) {
        let s = Int(slot)
        guard case .dial(let op)? = io[s] else { return }
        guard errno == 0 else { return failDial(slot, connectError(slot, errno: errno)) }
        if let proxy = identity[s]!.proxy {
            let transport = proxy.kind == .https ? proxyTLSContext().flatMap { hp_tls_new($0, proxy.host) } : hp_tls_new_plain()
            guard let transport else {
                return failDial(slot, proxyError(slot) { .proxyConnectFailed(proxy: proxy, host: $0, ip: $1, reason: "no TLS engine for the proxy") })
            }
            tls[s] = transport
            op.phase = .tunnelling
            reactor.io.receive(fd: fd[s], token: machine.table.handle(slot).token)
            return stepTunnel(slot, op)
        }
        guard let tls = hp_tls_new(tlsContexts[identity[s]!.profileIndex], machine.hostName(slot)) else {
            return failDial(slot, .tlsHandshakeFailed(host: machine.hostName(slot), ip: machine.ipAddress(slot), reason: "SSL_new failed"))
        }
        self.tls[s] = tls
        reactor.io.receive(fd: fd[s], token: machine.table.handle(slot).token)
        startHandshake(slot, op)
    }

    /// Offers a kept session to the slot's new target engine and starts its handshake.
    private func startHandshake(_ slot: Int32, _ op: DialOp) {
        let s = Int(slot)
        op.phase = .handshaking
        if let identity = identity[s], rotation.profiles[identity.profileIndex].resumesSessions {
            sessionCache.offer(at: identity.sessionPlace, to: tls[s]!)
        }
        stepHandshake(slot)
    }

    /// Advances the tunnel through the proxy with what was fed: the transport's handshake, then
    /// the CONNECT or SOCKS5 exchange; once it is open, the target's TLS engine runs inside it.
    func stepTunnel(_ slot: Int32, _ op: DialOp) {
        let s = Int(slot)
        let proxy = identity[s]!.proxy!
        let transport = tls[s]!
        if op.tunnel == nil {
            let rc = hp_tls_handshake(transport)
            flush(slot)
            switch rc {
            case 0: break
            case HP_TLS_WANT_READ, HP_TLS_WANT_WRITE: return
            default:
                let reason = "TLS handshake with the proxy failed: \(tlsErrorString(transport, rc))"
                return failDial(slot, proxyError(slot) { .proxyConnectFailed(proxy: proxy, host: $0, ip: $1, reason: reason) })
            }
            do {
                var tunnel = try ProxyTunnel(proxy: proxy, targetHost: machine.hostName(slot), targetIP: machine.ipAddress(slot), targetPort: identity[s]!.port)
                guard writeToProxy(slot, tunnel.start()) else { return }
                op.tunnel = tunnel
            } catch {
                return failDial(slot, error)
            }
        }
        while true {
            let n = hp_tls_read(transport, readBuffer.baseAddress, Int32(readBuffer.count))
            guard n > 0 else {
                if n == HP_TLS_WANT_READ { return }
                let error = n == HP_TLS_CLOSED
                    ? op.tunnel!.endOfStream()
                    : proxyError(slot) { .proxyConnectFailed(proxy: proxy, host: $0, ip: $1, reason: self.tlsErrorString(transport, n)) }
                return failDial(slot, error)
            }
            switch op.tunnel!.receive(UnsafeRawBufferPointer(rebasing: readBuffer[..<Int(n)])) {
            case .needMore: continue
            case .send(let bytes): guard writeToProxy(slot, bytes) else { return }
            case .failed(let error): return failDial(slot, error)
            case .established:
                guard let inner = hp_tls_new_over(tlsContexts[identity[s]!.profileIndex], machine.hostName(slot), transport) else {
                    return failDial(slot, .tlsHandshakeFailed(host: machine.hostName(slot), ip: machine.ipAddress(slot), reason: "SSL_new failed"))
                }
                tls[s] = inner  // owns the transport from now on
                op.tunnel = nil
                return startHandshake(slot, op)
            }
        }
    }

    /// Writes tunnel bytes through the proxy's transport and sends them; false (the dial failed) if it could not.
    private func writeToProxy(_ slot: Int32, _ bytes: [UInt8]) -> Bool {
        let written = bytes.withUnsafeBytes { hp_tls_write(tls[Int(slot)], $0.baseAddress, Int32($0.count)) }
        guard written == bytes.count else {
            failDial(slot, .networkError(host: machine.hostName(slot), ip: machine.ipAddress(slot), reason: "out of memory for the tunnel request"))
            return false
        }
        flush(slot)
        return true
    }

    /// The error for a failed connect: the proxy's, when the connect was to the proxy.
    private func connectError(_ slot: Int32, errno: Int32) -> HotPoolError {
        let reason = String(cString: strerror(errno))
        guard let proxy = identity[Int(slot)]!.proxy else {
            return .connectFailed(host: machine.hostName(slot), ip: machine.ipAddress(slot), reason: reason)
        }
        return proxyError(slot) { .proxyConnectFailed(proxy: proxy, host: $0, ip: $1, reason: "connect to the proxy failed: \(reason)") }
    }

    /// `make` applied to the slot's host name and IP.
    func proxyError(_ slot: Int32, _ make: (String, String) -> HotPoolError) -> HotPoolError {
        make(machine.hostName(slot), machine.ipAddress(slot))
    }

    /// The TLS context of `https` proxies' transports (made at first use): OpenSSL's plain
    /// ClientHello offering only HTTP/1.1, the proxy's certificate checked against `trustedCAFile`,
    /// no sessions kept (so none reaches the session cache of the targets).
    private func proxyTLSContext() -> OpaquePointer? {
        if proxyTLS == nil {
            var spec = FingerprintSpec.plain
            spec.alpn = ["http/1.1"]
            do {
                proxyTLS = try TLSContext.make(spec, trustedCAFile: config.trustedCAFile)
                hp_openssl_ctx_keep_no_sessions(proxyTLS)
            } catch {
                logger.error("no TLS context for https proxies", metadata: ["error": "\(error)"])
            }
        }
        return proxyTLS
    }

    /// Advances the handshake with what was fed, and sends what it wrote.
    func stepHandshake(_ slot: Int32) {
        let s = Int(slot)
        let host = machine.hostName(slot), ip = machine.ipAddress(slot)
        let rc = hp_tls_handshake(tls[s])
        flush(slot)
        switch rc {
        case 0:
            if hp_tls_session_reused(tls[s]) != 0 { resumedHandshakes += 1 }
            // An HTTP/2 connection sends its preface now, and is dialed once the server's SETTINGS
            // came (they say how many streams it takes). An HTTP/1.1 one reads on: whatever came
            // with the handshake beyond session tickets (bytes, a close) would otherwise be taken
            // for the answer to the first request.
            if http2[s] == nil && isHTTP2Chosen(tls[s]!) {
                let profile = rotation.profiles[identity[s]!.profileIndex]
                do {
                    http2[s] = HTTP2Connection(session: try HTTP2Session(fingerprint: profile.http2, heldBodyLimit: config.maxResponseBodyBytes))
                } catch {
                    // A preface nghttp2 refuses is the configuration's fault, not the IP's.
                    return failDial(slot, error.isOutOfMemory
                        ? .networkError(host: host, ip: ip, reason: "out of memory for the HTTP/2 session")
                        : .invalidConfiguration("profile \(profile.name): nghttp2 refused the HTTP/2 preface: \(error)"))
                }
            }
            let unusable: CloseReason?
            if let session = http2[s]?.session {
                unusable = readHTTP2(slot, session)?.reason ?? (session.goAwayLastStream != nil ? .remoteClosed : nil)
                if unusable == nil && !session.settingsReceived { return }
            } else {
                unusable = unreadInput(slot)
            }
            switch unusable {
            case nil:
                io[s] = nil
                logger.debug("connected", metadata: ["host": "\(host)", "ip": "\(ip)", "http": "\(http2[s] == nil ? "1.1" : "2")"])
                if let connection = http2[s] {
                    connection.announcedLimit = connection.streamLimit
                    send(.dialedMultiplexed(machine.table.handle(slot), streamLimit: connection.streamLimit))
                } else {
                    send(.dialed(machine.table.handle(slot)))
                }
            case .unsolicitedData?:
                failDial(slot, .networkError(host: host, ip: ip, reason: "the server sent data before any request"))
            case .remoteClosed?:
                failDial(slot, .connectionClosed(host: host, ip: ip))
            default:
                failDial(slot, .networkError(host: host, ip: ip, reason: "read after handshake failed"))
            }
        case HP_TLS_WANT_READ, HP_TLS_WANT_WRITE:
            return
        default:
            failDial(slot, .tlsHandshakeFailed(host: host, ip: ip, reason: tlsErrorString(tls[s], rc)))
        }
    }

    /// True if the server chose `h2` by ALPN.
    private func isHTTP2Chosen(_ tls: OpaquePointer) -> Bool {
        var name: UnsafePointer<UInt8>?
        let count = hp_tls_alpn(tls, &name)
        return count == 2 && name![0] == UInt8(ascii: "h") && name![1] == UInt8(ascii: "2")
    }

    /// The dial failed: the machine frees the slot (and has the socket closed), then retries or
    /// fails its caller.
    func failDial(_ slot: Int32, _ error: HotPoolError) {
        io[Int(slot)] = nil
        logger.debug("dial failed", metadata: ["error": "\(error)"])
        send(.dialFailed(machine.table.handle(slot), error))
    }

    /// The description of the TLS failure behind `code`.
    func tlsErrorString(_ tls: OpaquePointer?, _ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = hp_tls_error_string(tls, code, &buffer, buffer.count)
        return String(nulTerminated: buffer)
    }
}
