import HTTPTypes

/// HTTP/1.1 request serialization.
enum HTTP1Request {
    /// The request head and body as wire bytes: request line, `Host`, the profile's headers in
    /// their order (the request's own value replacing a profile value of the same name), the
    /// request's other fields in order, a `Content-Length` when a body is sent and none was
    /// given, and the body.
    static func serialize(_ request: HTTPRequest, body: [UInt8], defaultHost: String,
                          profileHeaders: [HTTPField] = []) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + body.count)
        append(request.method.rawValue, to: &out)
        out.append(0x20)
        append(request.path ?? "/", to: &out)
        append(" HTTP/1.1\r\nHost: ", to: &out)
        append(request.authority ?? defaultHost, to: &out)
        append("\r\n", to: &out)
        var fromProfile = Set<HTTPField.Name>()
        for header in profileHeaders {
            fromProfile.insert(header.name)
            let own = request.headerFields[fields: header.name]
            if own.isEmpty {
                appendField(header.name.rawName, header.value, to: &out)
            } else {
                for field in own { appendField(field.name.rawName, field.value, to: &out) }
            }
        }
        for field in request.headerFields where !fromProfile.contains(field.name) {
            appendField(field.name.rawName, field.value, to: &out)
        }
        let framed = request.headerFields[.contentLength] != nil || request.headerFields[.transferEncoding] != nil
        if !framed && (!body.isEmpty || [.post, .put, .patch].contains(request.method)) {
            append("Content-Length: \(body.count)\r\n", to: &out)
        }
        append("\r\n", to: &out)
        out.append(contentsOf: body)
        return out
    }

    private static func appendField(_ name: String, _ value: String, to out: inout [UInt8]) {
        append(name, to: &out)
        append(": ", to: &out)
        append(value, to: &out)
        append("\r\n", to: &out)
    }

    private static func append(_ s: String, to out: inout [UInt8]) {
        out.append(contentsOf: s.utf8)
    }
}
