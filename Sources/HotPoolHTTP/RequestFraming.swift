import HTTPTypes
import HotPoolCore

/// What frames a request on the wire, decided by the pool and checked before anything is
/// written: the request line's target and the Host (HTTP/2: `:authority`), and the body's
/// length. A caller's `Host` field replaces the pool's Host value (in its place: first after the
/// request line; HTTP/2's `:authority`), once. A caller's `Content-Length` must say the body's
/// length (a streamed body's is checked as it is sent); `Transfer-Encoding` is the pool's alone
/// (a body is sent whole with Content-Length, or streamed with chunked coding).
/// So the server and every proxy on the way read the request exactly as the pool meant it.
package enum RequestFraming {
    /// The Host value a request is sent with: its own `Host` field, else its authority, else `default`.
    static func hostValue(_ request: HTTPRequest, default defaultHost: String) -> String {
        request.headerFields[.hostField] ?? request.authority ?? defaultHost
    }

    /// Why `request` with a body of `bodyCount` bytes (nil: a streamed body, of the length its
    /// Content-Length says if it has one) cannot be sent as given, or nil if it can.
    package static func problem(_ request: HTTPRequest, bodyCount: Int?) -> String? {
        let fields = request.headerFields
        if fields[fields: .hostField].count > 1 { return "more than one Host field" }
        if fields[.transferEncoding] != nil {
            return "Transfer-Encoding is set by the pool (a body is framed by Content-Length, or chunked when streamed)"
        }
        let lengths = fields[fields: .contentLength]
        if lengths.count > 1 { return "more than one Content-Length field" }
        if let length = lengths.first?.value {
            if let bodyCount, length != String(bodyCount) {
                return "Content-Length \(length) disagrees with the body's \(bodyCount) bytes"
            }
            if bodyCount == nil && declaredLength(request) == nil { return "Content-Length \(length) is not a length" }
        }
        if let path = request.path, path.isEmpty || !isVisibleASCIIOrUTF8(path) {
            return "the path is empty or holds a space or control byte"
        }
        if let authority = fields[.hostField] ?? request.authority, authority.isEmpty || !isVisibleASCIIOrUTF8(authority) {
            return "the Host or authority is empty or holds a space or control byte"
        }
        return nil
    }

    /// The body length the request's `Content-Length` says (digits only), or nil.
    package static func declaredLength(_ request: HTTPRequest) -> Int? {
        guard let value = request.headerFields[.contentLength], !value.isEmpty, value.utf8.allSatisfy({ (0x30...0x39).contains($0) })
        else { return nil }
        return Int(value)
    }

    /// True if no byte of `text` is a space or a control byte (a request line and a Host line
    /// must not hold one: field values have CR, LF and NUL turned into spaces already).
    private static func isVisibleASCIIOrUTF8(_ text: String) -> Bool {
        !text.utf8.contains { $0 <= 0x20 || $0 == 0x7F }
    }
}
