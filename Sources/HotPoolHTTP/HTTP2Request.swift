import HTTPTypes
import HotPoolCore

/// A request in HTTP/2 form, made on the caller's thread: its header fields (the pseudo-header
/// fields in the profile's order, `:authority` from `RequestFraming.hostValue`, then the
/// profile's headers in order with the request's own values replacing them, then the request's
/// other fields) as lower-case names and values in one buffer, and its body, whole or streamed.
/// nghttp2 copies both when the stream opens. The request passed `RequestFraming.problem`.
package struct HTTP2Request: Sendable {
    /// Where one field's name and value are in `storage`.
    package struct Field: Sendable {
        package let nameStart, nameCount, valueStart, valueCount: Int32
    }

    package private(set) var storage: [UInt8] = []
    package private(set) var fields: [Field] = []
    package let body: [UInt8]
    /// Its body is handed over in pieces after the stream opens (`HTTP2Session.appendBody`).
    package let streamsBody: Bool
    package let isHead: Bool
    /// The response body is decoded by its `Content-Encoding` as it comes.
    package var decodesContent = false

    /// Fields HTTP/2 forbids in a request (RFC 9113 8.2.2); `host` goes into `:authority`.
    private static let connectionSpecific: Set<HTTPField.Name> = [
        .connection, .init("keep-alive")!, .init("proxy-connection")!, .transferEncoding, .init("upgrade")!, HTTPField.Name.hostField,
    ]

    /// A streamed body (`streamsBody`) is sent with the caller's `content-length`, if any.
    package init(_ request: HTTPRequest, body: [UInt8], streamsBody: Bool = false, defaultAuthority: String,
                 profile: ProfileHeaders, pseudoHeaderOrder: [HTTP2PseudoHeader]) {
        self.body = body
        self.streamsBody = streamsBody
        self.isHead = request.method == .head
        storage.reserveCapacity(128 + profile.http2Block.storage.count)
        fields.reserveCapacity(4 + profile.http2Block.fields.count + request.headerFields.count)
        for pseudo in pseudoHeaderOrder {
            switch pseudo {
            case .method: append(pseudo.rawValue, request.method.rawValue)
            case .authority: append(pseudo.rawValue, RequestFraming.hostValue(request, default: defaultAuthority))
            case .scheme: append(pseudo.rawValue, request.scheme ?? "https")
            case .path: append(pseudo.rawValue, request.path ?? "/")
            }
        }
        if request.headerFields.contains(where: { profile.names.contains($0.name) }) {
            for header in profile.fields {
                let own = request.headerFields[fields: header.name]
                if own.isEmpty {
                    append(header.name.canonicalName, header.value)
                } else {
                    for field in own where Self.mayBeSent(field) { append(field.name.canonicalName, field.value) }
                }
            }
        } else {
            // Most requests set none of the profile's headers: they get its block as it is.
            let base = Int32(storage.count)
            storage.append(contentsOf: profile.http2Block.storage)
            for field in profile.http2Block.fields {
                fields.append(Field(nameStart: base + field.nameStart, nameCount: field.nameCount,
                                    valueStart: base + field.valueStart, valueCount: field.valueCount))
            }
        }
        for field in request.headerFields where !profile.names.contains(field.name) && Self.mayBeSent(field) {
            append(field.name.canonicalName, field.value)
        }
        let mayHaveBody = switch request.method { case .post, .put, .patch: true; default: !body.isEmpty }
        if mayHaveBody && !streamsBody && request.headerFields[.contentLength] == nil { append("content-length", String(body.count)) }
    }

    /// A profile's headers in HTTP/2 form (lower-case names), made once per profile.
    static func block(_ fields: [HTTPField]) -> (storage: [UInt8], fields: [Field]) {
        var block = HTTP2Request(storage: [], fields: [], body: [], isHead: false)
        for field in fields { block.append(field.name.canonicalName, field.value) }
        return (block.storage, block.fields)
    }

    private init(storage: [UInt8], fields: [Field], body: [UInt8], isHead: Bool) {
        (self.storage, self.fields, self.body, self.isHead, streamsBody) = (storage, fields, body, isHead, false)
    }

    private static func mayBeSent(_ field: HTTPField) -> Bool {
        if field.name == .te { return field.value.lowercased() == "trailers" }
        return !connectionSpecific.contains(field.name)
    }

    private mutating func append(_ name: String, _ value: String) {
        let nameStart = storage.count
        storage.append(contentsOf: name.utf8)
        let valueStart = storage.count
        storage.append(contentsOf: value.utf8)
        fields.append(Field(nameStart: Int32(nameStart), nameCount: Int32(valueStart - nameStart),
                            valueStart: Int32(valueStart), valueCount: Int32(storage.count - valueStart)))
    }
}
