import CShims
import Glibc
import HTTPTypes

/// A host as the pool keys it: name and port.
struct HostKey: Hashable, Sendable {
    let name: String
    let port: Int

    /// The Host header value: the name (an IPv6 literal in brackets), with the port unless 443.
    var authority: String {
        let host = name.contains(":") ? "[\(name)]" : name
        return port == 443 ? host : "\(host):\(port)"
    }
}

/// True if `name` can be used as a host name: 1 to 253 bytes of printable ASCII or UTF-8 with
/// no space, control byte or URL delimiter, and a colon only in an IPv6 literal. Checked
/// before anything is sent: OpenSSL would cut a name at a NUL for SNI and verification while
/// the Host header carried all of it.
func isValidHostName(_ name: String) -> Bool {
    let bytes = name.utf8
    guard (1...253).contains(bytes.count) else { return false }
    for byte in bytes {
        switch byte {
        case 0...0x20, 0x7F, UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#"), UInt8(ascii: "@"),
             UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "\\"):
            return false
        case UInt8(ascii: ":"):
            guard hp_ip_family(name) == 6 else { return false }
        default:
            break
        }
    }
    return true
}

/// What the pool knows of one host. Reactor thread only.
final class HostState {
    let id: Int32
    let key: HostKey
    /// The host's current addresses, as IP record ids, in rotation order.
    var ipIDs: [Int32] = []
    /// Where the round-robin over `ipIDs` resumes.
    var cursor = 0
    /// Callers waiting for a connection, oldest first (a caller with a dial of its own is not here).
    @exclusivity(unchecked) var waiters: [Waiter] = []
    var resolving = false
    /// True once addresses are known (set, literal or resolved).
    var hasAddresses = false
    var addressesFromDNS = false
    /// Every IP record made for this host (current addresses, earlier ones, pinned IPs): what
    /// goes when the host's record is reclaimed.
    var ipRecords: [Int32] = []
    /// When a caller last asked for the host (monotonic ns).
    var lastUsed: Int64

    /// The Host header value, made once.
    let authority: String

    init(id: Int32, key: HostKey, now: Int64) {
        self.id = id
        self.key = key
        self.authority = key.authority
        self.lastUsed = now
    }
}

/// One IP of one host. Two hosts sharing an IP have a record each, so they never collide.
struct IPRecord {
    let address: String
    let host: Int32
    /// Monotonic ns until which the IP is out of rotation for its host; 0 = not blacklisted.
    var blacklistedUntil: Int64 = 0
}

/// A connection handed to a caller: its handle and where it goes.
struct Lease: Sendable {
    let handle: LeaseHandle
    let host: String
    let port: Int
    /// The Host header value for requests that give no authority.
    let authority: String
    let ip: String
    let profile: String
    let profileHeaders: ProfileHeaders
}

/// A caller waiting for a connection. Made by the caller, then touched only on the reactor
/// (the inbox hands it over), hence `@unchecked Sendable`.
final class Waiter: @unchecked Sendable {
    let key: HostKey
    let pinnedIP: String?
    /// Where the lease (or the failure) goes; nil once finished.
    var handoff: Handoff<Result<Lease, HotPoolError>>?
    var deadline: Int64 = 0
    var cancelled = false
    /// A dial made for this caller is under way.
    var dialing = false
    /// IP records this caller's dials failed on.
    var failedIPs: [Int32] = []

    init(key: HostKey, pinnedIP: String?) {
        self.key = key
        self.pinnedIP = pinnedIP
    }

    var isWaiting: Bool { handoff != nil }

    func finish(_ result: Result<Lease, HotPoolError>) {
        handoff?.deliver(result)
        handoff = nil
    }
}

/// Resolves a host name to IP literals with getaddrinfo (blocking: call it off the reactor).
func resolveAddresses(_ name: String, port: Int) -> Result<[String], HotPoolError> {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(name, String(port), &hints, &list)
    guard rc == 0 else {
        return .failure(.noAddresses(host: name, reason: String(cString: gai_strerror(rc))))
    }
    defer { freeaddrinfo(list) }
    var addresses: [String] = []
    var node = list
    while let info = node?.pointee {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok = info.ai_family == AF_INET
            ? info.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                withUnsafePointer(to: a.pointee.sin_addr) { inet_ntop(AF_INET, $0, &text, socklen_t(text.count)) }
            }
            : info.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                withUnsafePointer(to: a.pointee.sin6_addr) { inet_ntop(AF_INET6, $0, &text, socklen_t(text.count)) }
            }
        if ok != nil {
            let address = String(nulTerminated: text)
            if !addresses.contains(address) { addresses.append(address) }
        }
        node = info.ai_next
    }
    return addresses.isEmpty ? .failure(.noAddresses(host: name, reason: "no IPv4 or IPv6 address")) : .success(addresses)
}
