import HTTPTypes

/// HTTP/1.1 request serialization.
enum HTTP1Request {
    /// The request head and body as wire bytes: request line, `Host`, the request's fields in
    /// order, a `Content-Length` when a body is sent and none was given, and the body.
    static func serialize(_ request: HTTPRequest, body: [UInt8], defaultHost: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + body.count)
        append(request.method.rawValue, to: &out)
        out.append(0x20)
        append(request.path ?? "/", to: &out)
        append(" HTTP/1.1\r\nHost: ", to: &out)
        append(request.authority ?? defaultHost, to: &out)
        append("\r\n", to: &out)
        for field in request.headerFields {
            append(field.name.rawName, to: &out)
            append(": ", to: &out)
            append(field.value, to: &out)
            append("\r\n", to: &out)
        }
        let framed = request.headerFields[.contentLength] != nil || request.headerFields[.transferEncoding] != nil
        if !framed && (!body.isEmpty || [.post, .put, .patch].contains(request.method)) {
            append("Content-Length: \(body.count)\r\n", to: &out)
        }
        append("\r\n", to: &out)
        out.append(contentsOf: body)
        return out
    }

    private static func append(_ s: String, to out: inout [UInt8]) {
        out.append(contentsOf: s.utf8)
    }
}
