import Foundation
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// The pool frames every request itself: one Host (the caller's own replacing the pool's), and a
/// Content-Length that is the body's; a request whose fields would frame it otherwise is refused
/// before anything is written. Checked from the server's side, over HTTP/1.1 and HTTP/2.
@Suite struct RequestFramingTests {
    /// A request the server recorded: its path, the fields after the pseudo-header fields (HTTP/1.1:
    /// all of them) in order, `:authority` over HTTP/2, and the body's length.
    private struct Recorded {
        let path: String
        let fields: [[String]]
        let authority: String?
        let bodyLength: Int

        func values(_ name: String) -> [String] { fields.filter { $0[0].lowercased() == name }.map { $0[1] } }
    }

    private static func recorded(_ origin: Origin, last: Int) async throws -> [Recorded] {
        let requests = try await origin.send(["cmd": "requests", "ip": "*", "last": last]).object["requests"] as? [[String: Any]] ?? []
        return requests.map { request in
            let pseudo = request["pseudo"] as? [[String]] ?? []
            return Recorded(path: request["path"] as? String ?? "", fields: request["headers"] as? [[String]] ?? [],
                            authority: pseudo.first { $0[0] == ":authority" }?[1], bodyLength: request["body_len"] as? Int ?? 0)
        }
    }

    private static func pool(http2: Bool) async throws -> (Origin, HotConnPool) {
        let origin = try Origin()
        if http2 { try await origin.setTLSMode("h2") }
        return (origin, try origin.pool())
    }

    /// The caller's Host field replaces the pool's value, once: the Host line over HTTP/1.1,
    /// `:authority` (and no `host` field) over HTTP/2.
    @Test(arguments: [false, true])
    func theCallersHostReplacesThePoolsOnce(http2: Bool) async throws {
        let (origin, pool) = try await Self.pool(http2: http2)
        var request = get("/vhost")
        request.headerFields[HTTPField.Name.hostField] = "vhost.example"
        _ = try await pool.execute(request, host: Origin.hostName, port: origin.port)
        let seen = try #require(try await Self.recorded(origin, last: 1).first)
        if http2 {
            #expect(seen.authority == "vhost.example" && seen.values("host").isEmpty, "\(seen)")
        } else {
            #expect(seen.values("host") == ["vhost.example"], "exactly one Host line: \(seen.fields)")
            #expect(seen.fields.first?[0] == "Host", "in its place, first")
        }
        try await pool.close()
    }

    /// `Content-Length: 0` with a body that is a request itself: refused before anything is
    /// written (the server would read the body as a second request); the connection carries the
    /// next request, and the server never saw the smuggled one.
    @Test(arguments: [false, true])
    func aContentLengthThatDisagreesWithTheBodyIsRefusedBeforeAnythingIsSent(http2: Bool) async throws {
        let (origin, pool) = try await Self.pool(http2: http2)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        var request = HTTPRequest(method: .post, scheme: "https", authority: Origin.hostName, path: "/post")
        request.headerFields[.contentLength] = "0"
        let smuggled = Array("GET /smuggled HTTP/1.1\r\nHost: \(Origin.hostName)\r\n\r\n".utf8)
        await #expect(throws: HotPoolError.invalidRequest("Content-Length 0 disagrees with the body's \(smuggled.count) bytes")) {
            _ = try await connection.roundTrip(request, body: smuggled)
        }
        await #expect(throws: HotPoolError.self) {
            _ = try await pool.execute(request, body: smuggled, host: Origin.hostName, port: origin.port)
        }
        #expect(try await connection.roundTrip(get("/next")).body == Array("ok".utf8))
        let paths = try await Self.recorded(origin, last: 10).map(\.path)
        #expect(paths == ["/next"], "the server saw only the next request: \(paths)")
        let stats = await pool.stats()
        #expect(stats.totalRequests == 1 && stats.failedRequests == 0 && stats.healthyConnections == 1)
        pool.putConnection(connection)
        try await pool.close()
    }

    /// A Content-Length equal to the body's is sent once, with the body.
    @Test(arguments: [false, true])
    func aContentLengthEqualToTheBodysIsSentOnce(http2: Bool) async throws {
        let (origin, pool) = try await Self.pool(http2: http2)
        var request = HTTPRequest(method: .post, scheme: "https", authority: Origin.hostName, path: "/post")
        request.headerFields[.contentLength] = "5"
        _ = try await pool.execute(request, body: Array("hello".utf8), host: Origin.hostName, port: origin.port)
        let seen = try #require(try await Self.recorded(origin, last: 1).first)
        #expect(seen.values("content-length") == ["5"] && seen.bodyLength == 5, "\(seen)")
        try await pool.close()
    }

    /// Fields no request may be sent with, each refused with its reason and nothing sent.
    @Test(arguments: [false, true])
    func requestsWithAmbiguousFramingAreRefused(http2: Bool) async throws {
        let (origin, pool) = try await Self.pool(http2: http2)
        var twoHosts = get("/two-hosts")
        twoHosts.headerFields.append(HTTPField(name: HTTPField.Name.hostField, value: "a.example"))
        twoHosts.headerFields.append(HTTPField(name: HTTPField.Name.hostField, value: "b.example"))
        var chunked = HTTPRequest(method: .post, scheme: "https", authority: Origin.hostName, path: "/chunked")
        chunked.headerFields[.transferEncoding] = "chunked"
        var twoLengths = HTTPRequest(method: .post, scheme: "https", authority: Origin.hostName, path: "/two-lengths")
        twoLengths.headerFields.append(HTTPField(name: .contentLength, value: "2"))
        twoLengths.headerFields.append(HTTPField(name: .contentLength, value: "2"))
        let spaced = get("/a b")
        var spacedHost = get("/spaced-host")
        spacedHost.headerFields[HTTPField.Name.hostField] = "a.example evil"
        let cases: [(HTTPRequest, String)] = [
            (twoHosts, "more than one Host field"),
            (chunked, "Transfer-Encoding is set by the pool"),
            (twoLengths, "more than one Content-Length field"),
            (spaced, "the path is empty or holds a space or control byte"),
            (spacedHost, "the Host or authority is empty or holds a space or control byte"),
        ]
        for (request, reason) in cases {
            await #expect {
                _ = try await pool.execute(request, body: Array("hi".utf8), host: Origin.hostName, port: origin.port)
            } throws: { error in
                guard let error = error as? HotPoolError, error.code == .invalidRequest else { return false }
                return error.reason?.hasPrefix(reason) == true
            }
        }
        #expect(try await origin.stats().totalRequests == 0, "nothing reached the server")
        try await pool.close()
    }

    /// A profile's headers must not frame requests: `init` refuses one that names Host,
    /// Content-Length or Transfer-Encoding.
    @Test(arguments: ["Host", "content-length", "Transfer-Encoding"])
    func aProfileHeaderThatFramesRequestsIsRejected(name: String) async throws {
        var spec = FingerprintSpec.chrome
        spec.headers.append(ProfileHeader(name, "1"))
        var config = HotPoolConfiguration()
        config.profile = .custom(spec)
        try await expectInvalidConfiguration(config, saying: "frames each request")
    }
}
