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

/// Completions from the I/O backend, dispatched to what their slot is doing, and sends of the
/// TLS engines' output.
extension PoolDriver {
    // MARK: I/O

    /// Dispatches a completion to what its slot is doing; those of an earlier connection in the
    /// slot (a stale token) are dropped.
    func handleIO(_ token: UInt64, _ completion: IOCompletion) {
        if let fd = Resolver.fd(token: token) {
            if case .ready(let events) = completion { resolver.handle(fd: fd, events) }
            return
        }
        if case .closed(let errno) = completion { return closed(token, errno: errno) }
        let handle = SlotHandle(token: token)
        guard machine.table.isCurrent(handle), fd[Int(handle.slot)] >= 0 else { return }
        switch completion {
        case .connected(let errno): connected(handle.slot, errno: errno)
        case .received(let bytes): received(handle.slot, bytes, endOfStream: false)
        case .receiveEnded(0): received(handle.slot, UnsafeRawBufferPointer(start: nil, count: 0), endOfStream: true)
        case .receiveEnded(let errno): ioFailed(handle.slot, errno: errno)
        case .sent(let count): sent(handle.slot, count)
        case .closed, .ready: break
        }
    }

    /// Ciphertext arrived (or the peer's end of stream): the engine reads it for what the slot is
    /// doing. Input on a connection no exchange is reading is read at once, so it is never left
    /// for the next request to take as its answer.
    func received(_ slot: Int32, _ bytes: UnsafeRawBufferPointer, endOfStream: Bool) {
        let s = Int(slot)
        guard let tls = tls[s] else { return }
        hp_tls_feed(tls, bytes.baseAddress, bytes.count)
        // The bytes are the backend's again once this returns, on every path (the engine itself is
        // freed only by `closed`, so it outlives whatever the input led to); a session the server
        // issued in them is kept.
        let wasAwaitingAnswer = isAwaitingAnswer(s)
        defer {
            hp_tls_feed(tls, nil, 0)
            keepIssuedSession(slot, tls)
            // A proxy relays the server's writes as it reads them, and one that holds a small
            // segment until the last is acknowledged (Nagle) would stall what comes next (the
            // answer after the session tickets, the rest of an answer) for the delayed-ACK timer.
            // Unless these bytes ended the last answer awaited (the next request carries the ACK).
            if identity[s]?.proxy != nil && self.fd[s] >= 0 && !(wasAwaitingAnswer && !isAwaitingAnswer(s)) {
                hp_tcp_ack_now(self.fd[s])
            }
        }
        if endOfStream { hp_tls_feed_eof(tls) }
        switch io[s] {
        case .dial(let op)? where op.phase == .tunnelling: stepTunnel(slot, op)
        case .dial?: stepHandshake(slot)
        case .exchange(let op)?: stepExchange(slot, op)
        case nil:
            let connection = http2[s]
            // Input while nothing was asked (no exchange, no health check under way) has a budget,
            // beyond the DATA still in flight on streams this side reset.
            if connection.map({ $0.exchanges.isEmpty && !$0.pinging }) ?? true {
                let (sum, overflow) = idleBytes[s].addingReportingOverflow(Int32(clamping: bytes.count))
                idleBytes[s] = overflow ? .max : sum
                if Int(idleBytes[s]) > Self.readOnBudget + (connection?.session.windowsOfStreamsResetHere ?? 0) {
                    logger.debug("the server streams records nobody asked for", metadata: ["ip": "\(machine.ipAddress(slot))"])
                    return send(.unreadInput(machine.table.handle(slot), .unsolicitedData))
                }
            }
            // An HTTP/2 session reads what comes (its frames are bounded by nghttp2 and the budget).
            if let connection { return http2Input(slot, connection) }
            if let reason = unreadInput(slot) { send(.unreadInput(machine.table.handle(slot), reason)) }
        }
    }

    /// True while an answer is awaited on the slot: an HTTP/1.1 exchange, or an HTTP/2 stream's.
    private func isAwaitingAnswer(_ s: Int) -> Bool {
        if case .exchange? = io[s] { return true }
        return http2[s].map { !$0.exchanges.isEmpty } ?? false
    }

    /// Keeps the session the server issued on the slot's connection, if any, for the next
    /// connection to the same place; dropped when its profile does not resume or the connection
    /// is gone.
    private func keepIssuedSession(_ slot: Int32, _ tls: OpaquePointer) {
        guard let session = hp_tls_take_session(tls) else { return }
        guard let identity = identity[Int(slot)], rotation.profiles[identity.profileIndex].resumesSessions else {
            return hp_tls_session_free(session)
        }
        sessionCache.keep(session, at: identity.sessionPlace)
    }

    /// A receive or a send failed with `errno` (a reset, say): what the slot was doing fails.
    func ioFailed(_ slot: Int32, errno: Int32) {
        let host = machine.hostName(slot), ip = machine.ipAddress(slot), reason = String(cString: strerror(errno))
        switch io[Int(slot)] {
        case .dial(let op)? where op.phase == .tunnelling:
            failDial(slot, .proxyConnectFailed(proxy: op.target.proxy!, host: host, ip: ip, reason: reason))
        case .dial?: failDial(slot, .tlsHandshakeFailed(host: host, ip: ip, reason: reason))
        case .exchange(let op)?: failExchange(slot, op, .networkError(host: host, ip: ip, reason: reason))
        case nil:
            let error = HotPoolError.networkError(host: host, ip: ip, reason: reason)
            if let connection = http2[Int(slot)] { return http2Broke(slot, connection, (.networkError, error)) }
            send(.unreadInput(machine.table.handle(slot), .networkError))
        }
    }

    /// A send of the engine's output ended: what was sent leaves it, and the rest goes next.
    func sent(_ slot: Int32, _ count: Int) {
        let s = Int(slot)
        sending[s] = false
        guard count >= 0 else { return ioFailed(slot, errno: Int32(-count)) }
        hp_tls_output_sent(tls[s], count)
        defer { if machine.table.isCurrent(machine.table.handle(slot)) { makeRoomForUploads(slot) } }
        guard let connection = http2[s] else { return flush(slot) }
        // The frames an HTTP/2 session holds beyond the output cap go out as room comes.
        guard sendHTTP2(slot, connection.session) else {
            let error = tlsError(slot, HP_TLS_ERROR)
            if case .dial? = io[s] { return failDial(slot, error) }  // its preface, before the server's SETTINGS
            return http2Broke(slot, connection, (.networkError, error))
        }
        // A streamed body's END_STREAM among what went out may have closed a stream the server
        // had ended: its answer is complete.
        if !connection.exchanges.isEmpty { _ = endClosedStreams(slot, connection, broken: nil) }
    }

    /// Sends what the engine wrote, unless a send is in flight (its completion sends the rest).
    func flush(_ slot: Int32) {
        let s = Int(slot)
        guard !sending[s], let tls = tls[s], let bytes = lendOutput(tls) else { return }
        sending[s] = true
        reactor.io.send(fd: fd[s], token: machine.table.handle(slot).token, bytes: bytes)
    }

    /// The engine's unsent output, lent for one send (it stays in place until `hp_tls_output_sent`
    /// or the engine is freed); nil if there is none.
    func lendOutput(_ tls: OpaquePointer) -> UnsafeRawBufferPointer? {
        var bytes: UnsafeRawPointer?
        let count = hp_tls_output(tls, &bytes)
        return count > 0 ? UnsafeRawBufferPointer(start: bytes, count: count) : nil
    }

    /// Grows the I/O table so `slot` is valid.
    func ensureSlot(_ slot: Int32) {
        while fd.count <= Int(slot) {
            fd.append(-1)
            tls.append(nil)
            sending.append(false)
            idleBytes.append(0)
            io.append(nil)
            identity.append(nil)
            http2.append(nil)
        }
    }
}
