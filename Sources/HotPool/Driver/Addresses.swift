import CShims
import Glibc

/// 4 or 6 if `text` is an IPv4 or IPv6 literal, else 0. Through `withCString`, which borrows a
/// native string's bytes (or copies a short one on the stack): passing the String to C directly
/// builds a heap copy on every call.
func ipFamily(_ text: String) -> Int32 {
    text.withCString { hp_ip_family($0) }
}

extension PoolStateMachine.AcquireRequest {
    /// A get of `host:port`, pinned to `pinnedIP` if given; whether the name is an IP literal is
    /// found here, since the machine reads no C.
    init(host: String, port: Int, pinnedIP: String?) {
        self.init(key: HostKey(name: host, port: port), pinnedIP: pinnedIP, nameIsAddress: ipFamily(host) != 0)
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
            guard ipFamily(name) == 6 else { return false }
        default:
            break
        }
    }
    return true
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
