import CShims
import Glibc

/// A dial under way: TCP connect, then TLS handshake.
final class DialOp {
    /// The caller the dial was started for, if it still wants it.
    let waiter: Waiter?
    var connected = false

    init(waiter: Waiter?) { self.waiter = waiter }
}

extension PoolCore {
    /// Starts a non-blocking connect to `ip` for `waiter`, bounded by `connectTimeout`.
    func startDial(host: HostState, ip: Int32, for waiter: Waiter) {
        var inProgress: Int32 = 0
        let address = ips[Int(ip)].address
        let fd = hp_tcp_connect(address, Int32(host.key.port), config.localAddress, &inProgress)
        guard fd >= 0 else {
            failedDials += 1
            let reason = String(cString: strerror(-fd))
            return dialFailed(waiter, ip: ip, .connectFailed(host: host.key.name, ip: address, reason: reason))
        }
        let handle = table.allocate(host: host.id, ip: ip, fd: fd, now: now)
        let profile = nextProfile
        nextProfile = (nextProfile + 1) % profiles.count
        table.profile[Int(handle.slot)] = UInt8(profile)
        table.language[Int(handle.slot)] = UInt8.random(in: 0..<UInt8(profileHeaders[profile].count))
        let op = DialOp(waiter: waiter)
        ops.ensureIndex(Int(handle.slot))
        ops[Int(handle.slot)] = .dial(op)
        table.deadline[Int(handle.slot)] = waiter.deadline
        waiter.dialing = true
        do {
            try reactor.register(fd: fd, token: handle.token)
        } catch {
            return failDial(handle.slot, op, .connectFailed(host: host.key.name, ip: address, reason: "\(error)"))
        }
        armTick(at: waiter.deadline)
        if inProgress == 0 { stepDial(handle.slot, op, events: .writable) }
    }

    /// Advances a dial on readiness: connect result, then handshake steps.
    func stepDial(_ slot: Int32, _ op: DialOp, events: IOEvents) {
        let s = Int(slot)
        if !op.connected {
            let error = hp_socket_error(table.fd[s])
            if error != 0 {
                let reason = String(cString: strerror(error))
                return failDial(slot, op, .connectFailed(host: hostName(slot), ip: ipAddress(slot), reason: reason))
            }
            guard !events.isDisjoint(with: [.writable, .error, .hangup]) else { return }
            guard let ssl = hp_tls_new(tlsContexts[Int(table.profile[s])], table.fd[s], hostName(slot)) else {
                return failDial(slot, op, .tlsHandshakeFailed(host: hostName(slot), ip: ipAddress(slot), reason: "SSL_new failed"))
            }
            op.connected = true
            table.ssl[s] = ssl
        }
        let rc = hp_tls_handshake(table.ssl[s])
        switch rc {
        case 0:
            // Read on: whatever came with the handshake beyond session tickets (bytes, a close)
            // would otherwise be taken for the answer to the first request.
            switch unreadInput(slot) {
            case nil:
                dialSucceeded(slot, op)
            case .unsolicitedData?:
                failDial(slot, op, .networkError(host: hostName(slot), ip: ipAddress(slot),
                                                 reason: "the server sent data before any request"))
            case .remoteClosed?:
                failDial(slot, op, .connectionClosed(host: hostName(slot), ip: ipAddress(slot)))
            default:
                failDial(slot, op, .networkError(host: hostName(slot), ip: ipAddress(slot), reason: "read after handshake failed"))
            }
        case HP_TLS_WANT_READ, HP_TLS_WANT_WRITE:
            return
        default:
            let reason = tlsErrorString(table.ssl[s], rc)
            failDial(slot, op, .tlsHandshakeFailed(host: hostName(slot), ip: ipAddress(slot), reason: reason))
        }
    }

    private func dialSucceeded(_ slot: Int32, _ op: DialOp) {
        let s = Int(slot)
        ops[s] = nil
        table.deadline[s] = 0
        table.created[s] = now
        table.leaseDialed(slot)
        connectionsOpened += 1
        let host = hosts[Int(table.hostID[s])]
        if host.addressesFromDNS { connectionsFromDNS += 1 }
        metrics.opened()
        logger.debug("connected", metadata: ["host": "\(host.key.name)", "ip": "\(ipAddress(slot))"])
        if let waiter = op.waiter {
            waiter.dialing = false
            if waiter.isWaiting { return leaseOut(slot, to: waiter) }
        }
        handOff(slot)
    }

    /// Ends a dial that failed or timed out: frees its slot, then retries or fails its caller.
    func failDial(_ slot: Int32, _ op: DialOp, _ error: HotPoolError) {
        let s = Int(slot)
        let ip = table.ipID[s]
        ops[s] = nil
        closeSocket(slot, sendCloseNotify: false)
        table.free(slot)
        failedDials += 1
        logger.debug("dial failed", metadata: ["error": "\(error)"])
        if let waiter = op.waiter { dialFailed(waiter, ip: ip, error) }
        serviceWaiters()
    }

    /// After a failed dial, an unpinned caller with retries left tries another IP; others fail.
    private func dialFailed(_ waiter: Waiter, ip: Int32, _ error: HotPoolError) {
        waiter.dialing = false
        guard waiter.isWaiting, !closed else { return }
        waiter.failedIPs.append(ip)
        let timedOut = if case .timeout = error { true } else { false }
        guard waiter.pinnedIP == nil, !timedOut, waiter.failedIPs.count <= config.maxRetries else {
            return waiter.finish(.failure(error))
        }
        let host = hosts[Int(ips[Int(ip)].host)]
        if !serve(waiter, host) {
            host.waiters.insert(waiter, at: 0)
            waitingHosts.insert(host.id)
            armTick(at: waiter.deadline)
        }
    }

    /// The description of the TLS failure behind `code`.
    func tlsErrorString(_ ssl: OpaquePointer?, _ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = hp_tls_error_string(ssl, code, &buffer, buffer.count)
        return String(nulTerminated: buffer)
    }
}

extension Array where Element == SlotOp? {
    /// Grows the array so `index` is valid.
    mutating func ensureIndex(_ index: Int) {
        while count <= index { append(nil) }
    }
}
