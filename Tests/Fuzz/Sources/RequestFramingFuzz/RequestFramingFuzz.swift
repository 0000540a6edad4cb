// Fuzzing of request framing: each input is made into a request; one the pool accepts must go out
// with one Host, a Content-Length that is the body's, no Transfer-Encoding and exactly the body,
// over HTTP/1.1 and HTTP/2 (read back by an independent reader). Input layout:
//   byte 0      the method, an entry of `methods` (index modulo its count)
//   byte 1      bit 0: the request has a path; bit 1: an authority
//   then NUL-separated segments: the path (if any), the authority (if any), then field names
//   and values in turn; an empty name ends the fields, and the bytes after it are the body. A
//   name whose first byte is below 0x10 is an entry of `names` (so the framing fields come up).
@_spi(Fuzzing) import HotPool

private let methods = ["GET", "POST", "PUT", "HEAD", "PATCH", "DELETE", "OPTIONS"]
private let names = ["Host", "Content-Length", "Transfer-Encoding", "Connection", "TE", "User-Agent", "Accept", "host",
                     "content-length", "transfer-encoding", "Upgrade", "Keep-Alive", "Cookie", "Accept-Language", "X-A", "Expect"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let all = Array(UnsafeBufferPointer(start: data, count: size))
    guard all.count >= 2 else { return 0 }
    var rest = all[2...]
    /// The next NUL-terminated segment (to the end if there is no NUL), consumed.
    func segment() -> ArraySlice<UInt8> {
        let end = rest.firstIndex(of: 0) ?? rest.endIndex
        defer { rest = rest[min(end + 1, rest.endIndex)...] }
        return rest[rest.startIndex..<end]
    }
    func text(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }
    let path = all[1] & 1 != 0 ? text(segment()) : nil
    let authority = all[1] & 2 != 0 ? text(segment()) : nil
    var fields: [(name: String, value: String)] = []
    while !rest.isEmpty {
        let name = segment()
        if name.isEmpty { break }
        let value = text(segment())
        fields.append((name.first! < 0x10 ? names[Int(name.first!) % names.count] : text(name), value))
    }
    if let broken = RequestFramingFuzzing.check(method: methods[Int(all[0]) % methods.count], path: path, authority: authority,
                                                fields: fields, body: Array(rest)) {
        fatalError("a request the pool accepted went out misframed: \(broken)")
    }
    return 0
}
