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

/// Destruction and close: what was under way fails, sockets close (after a close_notify when
/// the connection is sound), TLS engines are freed once their close completes.
extension PoolDriver {
    // MARK: destruction

    /// The operation under way passed its deadline: it ends as a timeout.
    func abort(_ handle: SlotHandle) {
        let s = Int(handle.slot)
        let host = machine.hostName(handle.slot), ip = machine.ipAddress(handle.slot)
        switch io[s] {
        case .dial(let op)?:
            io[s] = nil
            let phase: HotPoolError.Phase = switch op.phase {
            case .resolvingProxy, .connecting: .connect
            case .tunnelling: .proxyTunnel
            case .handshaking: .tlsHandshake
            }
            send(.dialFailed(handle, .timeout(host: host, ip: ip, phase: phase, proxy: op.target.proxy)))
        case .exchange(let op)?:
            failExchange(handle.slot, op, .timeout(host: host, ip: ip, phase: op.timeoutPhase))
        case nil:
            abortHTTP2Probe(handle.slot)
        }
    }

    /// Fails what was under way on the connection and has its socket closed (its TLS engine is
    /// freed when the close completes).
    func destroy(_ destruction: PoolStateMachine.Destruction) {
        let slot = destruction.handle.slot
        let error: HotPoolError = destruction.reason == .poolClosed
            ? .poolClosed : .connectionClosed(host: destruction.host, ip: destruction.ip)
        if case .exchange(let op)? = io[Int(slot)] { finish(op, .failure(error)) }
        failHTTP2Exchanges(slot, error)  // their ends reach a machine that has freed the slot: ignored
        io[Int(slot)] = nil
        closeSocket(destruction.handle, sendCloseNotify: destruction.sendCloseNotify)
        identity[Int(slot)] = nil
        guard let reason = destruction.reason else { return }
        metrics.closed(reason)
        logger.debug("connection destroyed", metadata: ["host": "\(destruction.host)", "ip": "\(destruction.ip)", "reason": "\(reason)"])
    }

    /// Has the slot's socket closed, after a close_notify when asked (and nothing else is being
    /// sent); its TLS engine is freed once the close completes (`closed`).
    func closeSocket(_ handle: SlotHandle, sendCloseNotify: Bool) {
        let s = Int(handle.slot)
        guard s < fd.count, fd[s] >= 0 else { return }
        var closeNotify: UnsafeRawBufferPointer?
        if let tls = tls[s], sendCloseNotify, !sending[s], hp_tls_output_pending(tls) == 0 {
            // An HTTP/2 connection says GOAWAY first, as browsers do.
            if let session = http2[s]?.session {
                session.goAway()
                // One gathered write (at most about 16 KiB): nghttp2 sends control frames, the
                // GOAWAY among them, before request frames and bodies.
                _ = session.drainOutput(while: { hp_tls_output_pending(tls) == 0 }) { writePlaintext(tls, $0) }
            }
            if hp_tls_shutdown(tls) == 0 { closeNotify = lendOutput(tls) }
        }
        if let connection = http2[s], !connection.exchanges.isEmpty {
            failHTTP2Exchanges(handle.slot, .connectionClosed(host: machine.hostName(handle.slot), ip: machine.ipAddress(handle.slot)))
        }
        http2[s] = nil
        closing[handle.token] = (tls[s], identity[s])
        reactor.io.close(fd: fd[s], token: handle.token, lastBytes: closeNotify)
        (fd[s], tls[s], sending[s]) = (-1, nil, false)
    }

    /// A socket's close completed: its TLS engine is freed. A failed close(2) while the pool
    /// closes is the error `close()` throws.
    func closed(_ token: UInt64, errno: Int32) {
        guard let (tls, identity) = closing.removeValue(forKey: token) else { return }
        hp_tls_free(tls)
        if errno != 0, machine.closed, closeError == nil {
            closeError = .networkError(host: identity?.host ?? "", ip: identity?.ip ?? "",
                                       reason: "close: \(String(cString: strerror(errno)))")
        }
    }

    // MARK: close

    /// The seed's Close: the machine fails waiters and destroys every connection (leased ones
    /// too); timers stop, TLS contexts are freed, the figures are frozen. Returns the first close
    /// error. Idempotent.
    package func close() -> HotPoolError? {
        guard !machine.closed else { return closeError }
        send(.close)
        failAwaitingRetry()
        exportCounts()
        resolver.close()
        for timer in timers.values { reactor.cancel(timer) }
        timers.removeAll()
        tlsContexts.forEach(hp_tls_ctx_free)
        tlsContexts.removeAll()
        hp_tls_ctx_free(proxyTLS)
        proxyTLS = nil
        sessionCache.removeAll()
        peers.removeAll()
        let stats = self.stats
        frozenStats = stats
        metrics.record(stats)
        logger.debug("pool closed")
        return closeError
    }
}
