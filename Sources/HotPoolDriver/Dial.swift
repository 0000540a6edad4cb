import CShims
import Glibc
import HotPoolCore
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine

/// A dial under way: TCP connect, then TLS handshake.
final class DialOp {
    var connected = false
}

extension PoolDriver {
    /// Starts a non-blocking connect for the slot the machine allocated; its deadline is the machine's.
    func startDial(_ handle: SlotHandle, _ target: PoolStateMachine.DialTarget) {
        let slot = handle.slot, s = Int(slot)
        ensureSlot(slot)
        guard let (fd, localAddress) = rotation.connect(target, logger: logger) else {
            return send(.dialFailed(handle, .localAddressUnavailable(host: target.key.name, ip: target.address)))
        }
        guard fd >= 0 else {
            let reason = String(cString: strerror(-fd))
            return send(.dialFailed(handle, .connectFailed(host: target.key.name, ip: target.address, reason: reason)))
        }
        self.fd[s] = fd
        let (profile, headers) = rotation.nextProfile()
        identity[s] = ConnectionIdentity(
            host: target.key.name, port: target.key.port, authority: machine.host(of: slot).authority, ip: target.address,
            localAddress: localAddress, profileIndex: profile, profile: rotation.profiles[profile].name,
            headers: headers.http1, http2Headers: headers.http2, pseudoHeaderOrder: rotation.profiles[profile].http2.pseudoHeaderOrder)
        io[s] = .dial(DialOp())
        idleBytes[s] = 0
        // A connect that ended at once completes on the next turn all the same.
        reactor.io.connect(fd: fd, token: handle.token)
    }

    /// The TCP connect ended: on success the TLS engine is made, receiving starts and the
    /// handshake sends its ClientHello.
    func connected(_ slot: Int32, errno: Int32) {
        let s = Int(slot)
        guard case .dial(let op)? = io[s] else { return }
        let host = machine.hostName(slot), ip = machine.ipAddress(slot)
        guard errno == 0 else {
            return failDial(slot, .connectFailed(host: host, ip: ip, reason: String(cString: strerror(errno))))
        }
        guard let tls = hp_tls_new(tlsContexts[identity[s]!.profileIndex], host) else {
            return failDial(slot, .tlsHandshakeFailed(host: host, ip: ip, reason: "SSL_new failed"))
        }
        op.connected = true
        self.tls[s] = tls
        if let identity = identity[s], rotation.profiles[identity.profileIndex].resumesSessions {
            sessionCache.offer(at: identity.sessionPlace, to: tls)
        }
        reactor.io.receive(fd: fd[s], token: machine.table.handle(slot).token)
        stepHandshake(slot)
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
