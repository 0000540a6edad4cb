import Glibc

/// 4 or 6 if `text` is an IPv4 or IPv6 literal, else 0. Through `withCString`, which borrows a
/// native string's bytes (or copies a short one on the stack): passing the String to C directly
/// builds a heap copy on every call.
package func ipFamily(_ text: String) -> Int32 {
    var address = in6_addr()
    return text.withCString { name in
        if inet_pton(AF_INET, name, &address) == 1 { return 4 }
        if inet_pton(AF_INET6, name, &address) == 1 { return 6 }
        return 0
    }
}

/// True if `name` can be used as a host name: 1 to 253 bytes of printable ASCII or UTF-8 with
/// no space, control byte or URL delimiter, and a colon only in an IPv6 literal. Checked
/// before anything is sent: OpenSSL would cut a name at a NUL for SNI and verification while
/// the Host header carried all of it.
package func isValidHostName(_ name: String) -> Bool {
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
