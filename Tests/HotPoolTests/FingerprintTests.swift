import Foundation
import OriginControl
import Testing
@testable import HotPool

/// ClientHellos and request headers, checked from the server side.
@Suite struct FingerprintTests {
    static let presets: [FingerprintProfile] = [.chrome, .firefox, .safari]

    /// The JA3 hash and JA4 that README.md documents for a preset.
    private func documented(_ name: String) throws -> (ja3: String, ja4: String) {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        // Rows like: | `chrome` | `t13d...` | `<md5>` | ...
        for line in text.split(separator: "\n") where line.hasPrefix("| `\(name)` |") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["`"]) }
            if cells.count >= 3 { return (ja3: cells[2], ja4: cells[1]) }
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
        try await pool.close()
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
