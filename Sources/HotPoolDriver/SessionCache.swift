import CShims
import HotPoolCore

/// TLS sessions servers issued, for the next connection to the same place to resume, as a
/// browser does: keyed by host, port, target IP, local address and profile, so a session never
/// crosses IPs, local addresses or profiles. One session per place (the newest); a TLS 1.3 ticket
/// is offered once. Bounded: past `capacity` the oldest entry goes. Reactor thread only.
struct SessionCache: ~Copyable {
    /// Where a session may be offered again.
    struct Place: Hashable {
        let host: String
        let port: Int
        let ip: String
        /// A session is resumed only through the proxy it came through: resuming it elsewhere
        /// would tell the server the two paths are one client.
        let proxy: Proxy?
        let localAddress: String?
        let profileIndex: Int
    }

    private var sessions: [Place: (session: OpaquePointer, stamp: UInt64)] = [:]
    private var lastStamp: UInt64 = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    deinit {
        for entry in sessions.values { hp_tls_session_free(entry.session) }
    }

    /// Sessions held.
    var count: Int { sessions.count }

    /// Keeps `session` (taking it) as the one to offer at `place`, in place of an earlier one.
    mutating func keep(_ session: OpaquePointer, at place: Place) {
        guard capacity > 0 else { return hp_tls_session_free(session) }
        lastStamp += 1
        if let old = sessions.updateValue((session, lastStamp), forKey: place) {
            hp_tls_session_free(old.session)
        } else if sessions.count > capacity, let oldest = sessions.min(by: { $0.value.stamp < $1.value.stamp }) {
            // A scan, only when a new place comes to a full cache.
            sessions.removeValue(forKey: oldest.key)
            hp_tls_session_free(oldest.value.session)
        }
    }

    /// Offers the session kept for `place` to `tls` (before its handshake); a single-use one leaves the cache.
    mutating func offer(at place: Place, to tls: OpaquePointer) {
        guard let entry = sessions[place] else { return }
        _ = hp_tls_offer_session(tls, entry.session)
        if hp_tls_session_single_use(entry.session) != 0 {
            sessions.removeValue(forKey: place)
            hp_tls_session_free(entry.session)
        }
    }

    /// Frees every session (the pool closed).
    mutating func removeAll() {
        for entry in sessions.values { hp_tls_session_free(entry.session) }
        sessions.removeAll()
    }
}
