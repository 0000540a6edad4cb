import CShims
import HotPoolCore

/// Host-name lookups (A and AAAA) on the reactor thread with c-ares: its sockets are watched by
/// the reactor's I/O backend and its timeouts are reactor timers, so a lookup costs no thread and
/// never blocks. The system's resolver configuration by default, or the configured servers.
package final class Resolver {
    /// Each query's wait, and how often it is sent, before a server counts as not answering.
    static let queryTimeoutMilliseconds: Int32 = 2000
    static let queryTries: Int32 = 2

    private let reactor: Reactor
    private var channel: OpaquePointer?
    /// Lookups in flight, by id.
    private var pending: [UInt64: (name: String, done: (Result<[String], HotPoolError>) -> Void)] = [:]
    private var nextID: UInt64 = 0
    private var timer: TimerID?
    /// The sockets c-ares has the reactor watch.
    private var watched: Set<Int32> = []

    /// - Parameter servers: "ip", "ip:port" or "[ipv6]:port" entries; empty = the system's configuration.
    package init(servers: [String], reactor: Reactor) throws(HotPoolError) {
        self.reactor = reactor
        var error = [CChar](repeating: 0, count: 256)
        let context = Unmanaged.passUnretained(self).toOpaque()
        let csv = servers.isEmpty ? nil : servers.joined(separator: ",")
        channel = hp_dns_create(
            csv, Self.queryTimeoutMilliseconds, Self.queryTries,
            { context, fd, readable, writable in
                Unmanaged<Resolver>.fromOpaque(context!).takeUnretainedValue().watch(fd, readable: readable != 0, writable: writable != 0)
            },
            { context, id, status, addresses, count in
                Unmanaged<Resolver>.fromOpaque(context!).takeUnretainedValue().answered(id, status, addresses, Int(count))
            },
            context, &error, error.count)
        guard channel != nil else { throw .invalidConfiguration("DNS resolver: \(String(nulTerminated: error))") }
    }

    /// Frees c-ares if `close` never ran (a pool whose reactor did not start).
    deinit {
        if let channel { hp_dns_destroy(channel) }
    }

    /// The readiness token of a resolver socket: a negative slot, which no connection has.
    static func token(fd: Int32) -> UInt64 { SlotHandle(slot: -1 - fd, generation: 0).token }

    /// The resolver socket a token names, if it names one.
    package static func fd(token: UInt64) -> Int32? {
        let handle = SlotHandle(token: token)
        return handle.slot < 0 && handle.generation == 0 ? -1 - handle.slot : nil
    }

    /// Looks `name` up; `done` gets its addresses in the server's order (without repeats), or
    /// `noAddresses` with the resolver's reason. It may be called before `lookup` returns.
    package func lookup(_ name: String, _ done: @escaping (Result<[String], HotPoolError>) -> Void) {
        guard let channel else { return done(.failure(.poolClosed)) }
        nextID &+= 1
        pending[nextID] = (name, done)
        if hp_dns_lookup(channel, name, nextID) != 0, pending.removeValue(forKey: nextID) != nil {
            done(.failure(.noAddresses(host: name, reason: "out of memory")))
        }
        rearm()
    }

    /// A watched socket is ready.
    package func handle(fd: Int32, _ events: IOEvents) {
        guard let channel else { return }
        let failed = !events.isDisjoint(with: [.error, .hangup])
        hp_dns_process(channel, events.contains(.readable) || failed ? fd : -1, events.contains(.writable) ? fd : -1)
        rearm()
    }

    /// Ends every lookup in flight (each answered as failed: the closed pool ignores it) and frees
    /// c-ares; nothing is watched after.
    package func close() {
        guard let channel else { return }
        hp_dns_destroy(channel)  // answers what is in flight, and stops watching its sockets
        self.channel = nil
        if let timer { reactor.cancel(timer) }
        timer = nil
    }

    private func watch(_ fd: Int32, readable: Bool, writable: Bool) {
        // Level-triggered: c-ares reads one reply a call on a TCP socket.
        if watched.remove(fd) != nil { reactor.io.unwatch(fd: fd) }
        guard readable || writable else { return }
        var interest: IOEvents = []
        if readable { interest.insert(.readable) }
        if writable { interest.insert(.writable) }
        do {
            try reactor.io.watch(fd: fd, token: Self.token(fd: fd), interest: interest)
            watched.insert(fd)
        } catch {
            // Unwatched, the query ends by its timeout, as an unanswered one.
        }
    }

    private func answered(_ id: UInt64, _ status: Int32, _ addresses: UnsafePointer<CChar>?, _ count: Int) {
        guard let (name, done) = pending.removeValue(forKey: id) else { return }
        guard status == 0, var cursor = addresses else {
            return done(.failure(.noAddresses(host: name, reason: String(cString: hp_dns_error_string(status)))))
        }
        var list: [String] = []
        var seen = Set<String>(minimumCapacity: count)
        for _ in 0..<count {
            let address = String(cString: cursor)
            cursor += address.utf8.count + 1
            if seen.insert(address).inserted { list.append(address) }
        }
        done(list.isEmpty ? .failure(.noAddresses(host: name, reason: "no IPv4 or IPv6 address")) : .success(list))
    }

    /// Schedules c-ares' next timeout processing.
    private func rearm() {
        if let timer { reactor.cancel(timer) }
        timer = nil
        guard let channel else { return }
        let wait = hp_dns_timeout_ns(channel)
        guard wait >= 0 else { return }
        timer = reactor.schedule(at: reactor.now + wait) { [unowned self] in
            timer = nil
            if let channel = self.channel { hp_dns_process(channel, -1, -1) }
            rearm()
        }
    }
}
