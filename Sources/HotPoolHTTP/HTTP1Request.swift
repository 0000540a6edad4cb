import HTTPTypes
import HotPoolCore

/// The request headers a connection's fingerprint profile adds, in the browser's order, with
/// their wire form made once (most requests set none of them, and get the block as it is): the
/// HTTP/1.1 lines, and the HTTP/2 fields.
package struct ProfileHeaders: Sendable {
    let fields: [HTTPField]
    let names: Set<HTTPField.Name>
    let wire: [UInt8]
    let http2Block: (storage: [UInt8], fields: [HTTP2Request.Field])
    /// The profile sends `Accept-Encoding`: the content codings it names come back coded.
    package let acceptsEncodings: Bool

    package init(_ fields: [HTTPField]) {
        self.fields = fields
        self.names = Set(fields.map(\.name))
        acceptsEncodings = names.contains(.acceptEncoding)
        var wire: [UInt8] = []
        for field in fields { HTTP1Request.appendField(field.name.rawName, field.value, to: &wire) }
        self.wire = wire
        self.http2Block = HTTP2Request.block(fields)
    }
}

/// HTTP/1.1 request serialization.
package enum HTTP1Request {
    /// The request head and body as wire bytes: request line, one `Host` (the request's own Host
    /// field, else its authority, else `defaultHost`), the profile's headers in their order (the
    /// request's own value replacing a profile value of the same name), the request's other
    /// fields in order, a `Content-Length` when a body is sent and none was given, and the body.
    /// A streamed body (`streamsBody`; its bytes follow the head later) is framed by the caller's
    /// `Content-Length`, else by `Transfer-Encoding: chunked` (`HTTP1Request.chunk`).
    /// The request passed `RequestFraming.problem`.
    package static func serialize(_ request: HTTPRequest, body: [UInt8], streamsBody: Bool = false, defaultHost: String,
                          profile: ProfileHeaders) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + profile.wire.count + body.count)
        append(request.method.rawValue, to: &out)
        out.append(0x20)
        append(request.path ?? "/", to: &out)
        append(" HTTP/1.1\r\nHost: ", to: &out)
        append(RequestFraming.hostValue(request, default: defaultHost), to: &out)
        append("\r\n", to: &out)
        if request.headerFields.contains(where: { profile.names.contains($0.name) }) {
            for header in profile.fields {
                let own = request.headerFields[fields: header.name]
                if own.isEmpty {
                    appendField(header.name.rawName, header.value, to: &out)
                } else {
                    for field in own { appendField(field.name.rawName, field.value, to: &out) }
                }
            }
        } else {
            out.append(contentsOf: profile.wire)
        }
        for field in request.headerFields where !profile.names.contains(field.name) && field.name != HTTPField.Name.hostField {
            appendField(field.name.rawName, field.value, to: &out)
        }
        if request.headerFields[.contentLength] == nil {
            if streamsBody {
                append("Transfer-Encoding: chunked\r\n", to: &out)
            } else if !body.isEmpty || [.post, .put, .patch].contains(request.method) {
                append("Content-Length: \(body.count)\r\n", to: &out)
            }
        }
        append("\r\n", to: &out)
        out.append(contentsOf: body)
        return out
    }

    /// `bytes` as one chunk of a chunked body (none for no bytes: an empty chunk would end it),
    /// and with `last`, the body's end after them.
    package static func chunk(_ bytes: [UInt8], last: Bool) -> [UInt8] {
        var out: [UInt8] = []
        if !bytes.isEmpty {
            out.reserveCapacity(bytes.count + 32)
            append("\(String(bytes.count, radix: 16))\r\n", to: &out)
            out.append(contentsOf: bytes)
            append("\r\n", to: &out)
        }
        if last { append("0\r\n\r\n", to: &out) }
        return out
    }

    static func appendField(_ name: String, _ value: String, to out: inout [UInt8]) {
        append(name, to: &out)
        append(": ", to: &out)
        append(value, to: &out)
        append("\r\n", to: &out)
    }

    private static func append(_ s: String, to out: inout [UInt8]) {
        out.append(contentsOf: s.utf8)
    }
}
