import CShims
import Glibc

/// A dial under way: TCP connect, then TLS handshake.
final class DialOp {
    var connected = false
}

extension PoolDriver {
    /// Starts a non-blocking connect for the slot the machine allocated; its deadline is the machine's.
    func startDial(_ handle: SlotHandle, _ target: PoolStateMachine.DialTarget) {
        let slot = handle.slot, s = Int(slot)
        ensureSlot(slot)
        var inProgress: Int32 = 0
        guard let (fd, localAddress) = connect(target, &inProgress) else {
            return send(.dialFailed(handle, .localAddressUnavailable(host: target.key.name, ip: target.address)))
        }
        guard fd >= 0 else {
            let reason = String(cString: strerror(-fd))
            return send(.dialFailed(handle, .connectFailed(host: target.key.name, ip: target.address, reason: reason)))
        }
        self.fd[s] = fd
        identity[s] = ConnectionIdentity(
            host: target.key.name, port: target.key.port, authority: machine.host(of: slot).authority, ip: target.address,
            localAddress: localAddress, profileIndex: nextProfile, profile: profiles[nextProfile].name,
            profileHeaders: profileHeaders[nextProfile].randomElement()!)
        nextProfile = (nextProfile + 1) % profiles.count
        let op = DialOp()
        io[s] = .dial(op)
        do {
            try reactor.register(fd: fd, token: handle.token)
        } catch {
            return failDial(slot, .connectFailed(host: target.key.name, ip: target.address, reason: "\(error)"))
        }
        if inProgress == 0 { stepDial(slot, op, events: .writable) }
    }

    /// Starts the connect, bound to the next local address of the target's family if any are
    /// configured (one that fails to bind is skipped); returns the fd or -errno, and the address;
    /// nil if none could be bound.
    private func connect(_ target: PoolStateMachine.DialTarget, _ inProgress: inout Int32) -> (fd: Int32, local: String?)? {
        let family = ipFamily(target.address)
        var bindFailed: Int32 = 0
        guard let locals = localAddresses[family] else {
            return (hp_tcp_connect(target.address, Int32(target.key.port), nil, &inProgress, &bindFailed), nil)
        }
        let start = nextLocalAddress[family, default: 0]
        for step in 0..<locals.count {
            let local = locals[(start + step) % locals.count]
            let fd = hp_tcp_connect(target.address, Int32(target.key.port), local, &inProgress, &bindFailed)
            guard fd < 0 && bindFailed != 0 else {
                nextLocalAddress[family] = (start + step + 1) % locals.count
                return (fd, local)
            }
            logger.warning("local address skipped: bind failed", metadata: ["local": "\(local)", "error": "\(String(cString: strerror(-fd)))"])
        }
        return nil
    }

    /// Advances a dial on readiness: connect result, then handshake steps.
    func stepDial(_ slot: Int32, _ op: DialOp, events: IOEvents) {
        let s = Int(slot)
        let host = machine.hostName(slot), ip = machine.ipAddress(slot)
        if !op.connected {
            let error = hp_socket_error(fd[s])
            if error != 0 {
                return failDial(slot, .connectFailed(host: host, ip: ip, reason: String(cString: strerror(error))))
            }
            guard !events.isDisjoint(with: [.writable, .error, .hangup]) else { return }
            guard let ssl = hp_tls_new(tlsContexts[identity[s]!.profileIndex], fd[s], host) else {
                return failDial(slot, .tlsHandshakeFailed(host: host, ip: ip, reason: "SSL_new failed"))
            }
            op.connected = true
            self.ssl[s] = ssl
        }
        let rc = hp_tls_handshake(ssl[s])
        switch rc {
        case 0:
            // Read on: whatever came with the handshake beyond session tickets (bytes, a close)
            // would otherwise be taken for the answer to the first request.
            switch unreadInput(slot) {
            case nil:
                io[s] = nil
                metrics.opened()
                logger.debug("connected", metadata: ["host": "\(host)", "ip": "\(ip)"])
                send(.dialed(machine.table.handle(slot)))
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
            failDial(slot, .tlsHandshakeFailed(host: host, ip: ip, reason: tlsErrorString(ssl[s], rc)))
        }
    }

    /// The dial failed: the machine frees the slot (and has the socket closed), then retries or
    /// fails its caller.
    private func failDial(_ slot: Int32, _ error: HotPoolError) {
        io[Int(slot)] = nil
        logger.debug("dial failed", metadata: ["error": "\(error)"])
        send(.dialFailed(machine.table.handle(slot), error))
    }

    /// The description of the TLS failure behind `code`.
    func tlsErrorString(_ ssl: OpaquePointer?, _ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = hp_tls_error_string(ssl, code, &buffer, buffer.count)
        return String(nulTerminated: buffer)
    }
}
