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
