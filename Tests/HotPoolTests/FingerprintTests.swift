import Foundation
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// ClientHellos and request headers, checked from the server side.
@Suite struct FingerprintTests {
    static let presets: [FingerprintProfile] = [.chrome, .firefox, .safari]

    /// The JA3 hash, JA4 and HTTP/2 (Akamai) fingerprint that README.md documents for a preset.
    private func documented(_ name: String) throws -> (ja3: String, ja4: String, akamai: String) {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        // Rows like: | `chrome` | `t13d...` | `<md5>` | `1:65536;...\|15663105\|0\|m,a,s,p` | ...
        for line in text.split(separator: "\n") where line.hasPrefix("| `\(name)` |") {
            let cells = line.components(separatedBy: " | ").map {
                $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["`"]).replacingOccurrences(of: "\\|", with: "|")
            }
            if cells.count >= 4 { return (ja3: cells[2], ja4: cells[1], akamai: cells[3]) }
        }
        throw OriginError.noReply("README has no fingerprint row for \(name)")
    }

    /// A test origin and a pool for it whose connections present `profile`.
    private static func originAndPool(presenting profile: FingerprintProfile) throws -> (Origin, HotConnPool) {
        let origin = try Origin()
        var config = origin.configuration()
        config.profile = profile
        return (origin, try origin.pool(config))
    }

    private static func isGrease(_ value: Int) -> Bool { value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff }

    @Test(arguments: presets)
    func clientHelloMatchesThePresetAndTheDocumentedJA3AndJA4(profile: FingerprintProfile) async throws {
        let (origin, pool) = try Self.originAndPool(presenting: profile)
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        #expect(try await connection.roundTrip(get()).head.status == .ok)
        #expect(connection.profile == profile.name)
        let reply = try await origin.send(["cmd": "hellos", "ip": origin.ips[0], "last": 1])
        let hello = try #require((reply.object["hellos"] as? [[String: Any]])?.last)
        let spec = profile.spec
        let ciphers = (hello["cipher_suites"] as? [Int] ?? []).filter { !Self.isGrease($0) }
        #expect(ciphers == spec.advertisedCipherSuites.map(Int.init))
        var extensions = Set((hello["extensions"] as? [Int] ?? []).filter { !Self.isGrease($0) })
        if spec.extensions.contains(.padding) && !extensions.contains(21) {
            extensions.insert(21)  // OpenSSL pads only a ClientHello of 256–511 bytes
        }
        #expect(extensions.sorted() == spec.advertisedExtensions.map(Int.init))
        let greases = (hello["extensions"] as? [Int] ?? []).filter(Self.isGrease)
        #expect(greases.count == (spec.extensions.contains(.grease) ? 2 : 0))
        #expect((hello["signature_algorithms"] as? [Int]) == spec.signatureAlgorithms.map(Int.init))
        #expect((hello["supported_groups"] as? [Int])?.filter { !Self.isGrease($0) } == spec.supportedGroups.map(Int.init))
        #expect((hello["alpn"] as? [String]) == spec.alpn)
        #expect((hello["sni"] as? String) == Origin.hostName)
        let expected = try documented(profile.name)
        #expect(hello["ja4"] as? String == expected.ja4, "JA4 of \(profile.name)")
        #expect(hello["ja3_hash"] as? String == expected.ja3, "JA3 of \(profile.name): \(hello["ja3"] ?? "")")
        pool.putConnection(connection)
        try await pool.close()
    }

    @Test(arguments: presets)
    func requestHeadersComeInTheBrowsersOrder(profile: FingerprintProfile) async throws {
        let (origin, pool) = try Self.originAndPool(presenting: profile)
        try await pool.withConnection(host: Origin.hostName, port: origin.port) { connection in
            _ = try await connection.roundTrip(get("/plain"))
            var custom = get("/custom")
            custom.headerFields[.userAgent] = "custom-agent"
            custom.headerFields[HTTPField.Name("X-Extra")!] = "1"
            _ = try await connection.roundTrip(custom)
        }
        let reply = try await origin.send(["cmd": "requests", "ip": "*", "last": 2])
        let requests = try #require(reply.object["requests"] as? [[String: Any]])
        #expect(requests.count == 2)
        let spec = profile.spec
        let plain = try #require(requests.first { $0["path"] as? String == "/plain" }?["headers"] as? [[String]])
        #expect(plain.map { $0[0] } == ["Host"] + spec.headers.map(\.name))
        for (field, header) in zip(plain.dropFirst(), spec.headers) {
            if header.name == "Accept-Language" {
                #expect(spec.acceptLanguages.contains(field[1]))
            } else {
                #expect(field[1] == header.value, "\(header.name)")
            }
        }
        // The request's own User-Agent takes the profile's place; its other fields follow.
        let custom = try #require(requests.first { $0["path"] as? String == "/custom" }?["headers"] as? [[String]])
        #expect(custom.map { $0[0] } == ["Host"] + spec.headers.map(\.name) + ["X-Extra"])
        #expect(custom.first { $0[0] == "User-Agent" }?[1] == "custom-agent")
        #expect(custom.first { $0[0] == "Accept-Language" }?[1] == plain.first { $0[0] == "Accept-Language" }?[1],
                "one Accept-Language per connection")
        try await pool.close()
    }

    @Test(arguments: presets)
    func handshakeWithNginxSucceeds(profile: FingerprintProfile) async throws {
        let nginx = try Nginx()
        defer { nginx.stop() }
        var config = HotPoolConfiguration()
        config.ioBackend = Origin.ioBackendUnderTest
        config.trustedCAFile = nginx.caFile
        config.profile = profile
        config.connectTimeout = .seconds(5)
        let pool = try HotConnPool(configuration: config)
        pool.setAddresses([nginx.ip], forHost: nginx.hostName)
        let body = try await pool.withConnection(host: nginx.hostName, port: nginx.port) { connection in
            try await connection.roundTrip(HTTPRequest(method: .get, scheme: "https", authority: nginx.hostName, path: "/")).body
        }
        #expect(body == Array("nginx ok".utf8))
        #expect(await pool.connectionStats().map(\.httpVersion) == [.http2], "nginx (http2 on) chose h2")
        try await pool.close()
    }

    /// The Akamai fingerprint of one connection, from the frames the server received on it and
    /// the pseudo-header fields of its first request.
    private static func akamai(_ frames: [HTTP2FrameRecord], pseudoHeaders: [String]) -> String {
        let settings = frames.first { $0.type == "SETTINGS" && !$0.flags.contains("ACK") }?.settings ?? []
        let window = frames.first { $0.type == "WINDOW_UPDATE" && $0.stream == 0 }?.increment.map(String.init) ?? "00"
        let priorities = frames.filter { $0.type == "PRIORITY" }.compactMap { frame in
            frame.priority.map { "\(frame.stream):\($0.exclusive ? 1 : 0):\($0.dependsOn):\($0.weight)" }
        }
        return [
            settings.map { "\($0.id):\($0.value)" }.joined(separator: ";"), window,
            priorities.isEmpty ? "0" : priorities.joined(separator: ","),
            pseudoHeaders.map { String($0.dropFirst().prefix(1)) }.joined(separator: ","),
        ].joined(separator: "|")
    }

    @Test(arguments: presets)
    func http2ConnectionMatchesTheDocumentedAkamaiFingerprintAndHeaderOrder(profile: FingerprintProfile) async throws {
        let (origin, pool) = try Self.originAndPool(presenting: profile)
        try await origin.setTLSMode("h2")
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        #expect(connection.httpVersion == .http2)
        var custom = get("/custom")
        custom.headerFields[.userAgent] = "custom-agent"
        custom.headerFields[HTTPField.Name("X-Extra")!] = "1"
        custom.headerFields[.connection] = "keep-alive"  // not sent: HTTP/2 forbids it
        #expect(try await connection.roundTrip(get("/plain")).head.status == .ok)
        #expect(try await connection.roundTrip(custom).head.status == .ok)
        pool.putConnection(connection)

        let spec = profile.spec
        let documented = try documented(profile.name)
        let hello = try #require((try await origin.send(["cmd": "hellos", "ip": origin.ips[0], "last": 1]).object["hellos"] as? [[String: Any]])?.last)
        let ja4 = try #require(hello["ja4"] as? String)
        #expect(ja4.split(separator: "_").first?.hasSuffix("h2") == true, "JA4 \(ja4) says h2")
        #expect(ja4 == documented.ja4)

        let requests = try #require(try await origin.send(["cmd": "requests", "ip": origin.ips[0], "last": 2]).object["requests"] as? [[String: Any]])
        let plain = try #require(requests.first { $0["path"] as? String == "/plain" })
        let pseudo = try #require(plain["pseudo"] as? [[String]]).map { $0[0] }
        #expect(pseudo == spec.http2.pseudoHeaderOrder.map(\.rawValue))
        let frames = try await origin.recentFrames(ip: origin.ips[0], last: 50).filter { $0.connection == plain["conn"] as? Int }
        let akamai = Self.akamai(frames, pseudoHeaders: pseudo)
        #expect(akamai == documented.akamai, "Akamai fingerprint of \(profile.name)")
        #expect(akamai == spec.http2.akamai)
        let headers = frames.filter { $0.type == "HEADERS" }
        #expect(headers.count == 2)
        for frame in headers {
            #expect(frame.flags.contains("END_STREAM") && frame.flags.contains("END_HEADERS"))
            let expected = spec.http2.headersPriority.map { (exclusive: $0.exclusive, dependsOn: Int($0.dependency), weight: $0.weight) }
            #expect(frame.priority?.exclusive == expected?.exclusive && frame.priority?.dependsOn == expected?.dependsOn
                    && frame.priority?.weight == expected?.weight, "HEADERS priority \(String(describing: frame.priority))")
        }
        // Header fields after the pseudo-header ones: the browser's, in its order; a request's own
        // value takes the profile's place, its other fields follow, and connection fields are dropped.
        let plainFields = try #require(plain["headers"] as? [[String]])
        #expect(plainFields.map { $0[0] } == spec.http2.headers.map(\.name))
        for (field, header) in zip(plainFields, spec.http2.headers) where header.name != "accept-language" {
            #expect(field[1] == header.value, "\(header.name)")
        }
        let customFields = try #require(requests.first { $0["path"] as? String == "/custom" }?["headers"] as? [[String]])
        #expect(customFields.map { $0[0] } == spec.http2.headers.map(\.name) + ["x-extra"])
        #expect(customFields.first { $0[0] == "user-agent" }?[1] == "custom-agent")
        try await pool.close()
    }

    @Test func http1OnlyServersAndHTTP1OnlyPoolsSpeakHTTP1() async throws {
        let origin = try Origin()  // offers http/1.1 only by ALPN
        let pool = try origin.pool()
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        #expect(connection.httpVersion == .http1_1)
        #expect(try await connection.roundTrip(get("/h1")).body == Array("ok".utf8))
        #expect(await pool.connectionStats().map(\.httpVersion) == [.http1_1])
        pool.putConnection(connection)
        try await pool.close()

        // A pool limited to HTTP/1.1 does not offer h2, even to a server that prefers it.
        try await origin.setTLSMode("h2")
        var config = origin.configuration()
        config.httpVersions = [.http1_1]
        let http1Pool = try origin.pool(config)
        let http1 = try await http1Pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[1])
        #expect(http1.httpVersion == .http1_1)
        #expect(try await http1.roundTrip(get("/h1-only")).head.status == .ok)
        let hello = try #require((try await origin.send(["cmd": "hellos", "ip": origin.ips[1], "last": 1]).object["hellos"] as? [[String: Any]])?.last)
        #expect(hello["alpn"] as? [String] == ["http/1.1"])
        #expect((hello["ja4"] as? String)?.split(separator: "_").first?.hasSuffix("h1") == true)
        http1Pool.putConnection(http1)
        try await http1Pool.close()
    }

    @Test func rotatingProfilesGiveEachNewConnectionTheNextProfile() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.rotatingProfiles = Self.presets
        let pool = try origin.pool(config)
        var held: [PooledConnection] = []
        for _ in 0..<3 { held.append(try await pool.getConnection(host: Origin.hostName, port: origin.port)) }
        #expect(held.map(\.profile) == ["chrome", "firefox", "safari"])
        #expect(Set(await pool.connectionStats().map(\.profile)) == ["chrome", "firefox", "safari"])
        let reply = try await origin.send(["cmd": "hellos", "ip": "*", "last": 3])
        let ja4s = Set((reply.object["hellos"] as? [[String: Any]] ?? []).compactMap { $0["ja4"] as? String })
        #expect(ja4s.count == 3, "three different ClientHellos")
        held.forEach(pool.putConnection)
        try await pool.close()
    }

    @Test func customSpecWithAnUnknownCodePointIsRejected() {
        var spec = FingerprintSpec.chrome
        spec.tls12CipherSuites.append(0x1234)
        var config = HotPoolConfiguration()
        config.profile = .custom(spec)
        #expect(throws: HotPoolError.self) { _ = try HotConnPool(configuration: config) }
    }
}

extension FingerprintProfile: CustomTestStringConvertible {
    public var testDescription: String { name }
}
