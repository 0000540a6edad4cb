import CShims
import Foundation
import OriginControl
import Testing
@testable import HotPool
@testable import HotPoolCore

/// ClientHellos and request headers, checked from the server side.
@Suite struct FingerprintTests {
    static let presets: [FingerprintProfile] = [.chrome, .chrome131, .chrome133, .safari, .safari18, .firefox, .plain]
    /// The browser presets, and curl-impersonate's target of the same browser version.
    static let browserPresets: [(FingerprintProfile, target: String)] = [
        (.chrome, "chrome150"), (.chrome131, "chrome131"), (.chrome133, "chrome133a"), (.safari, "safari2601"),
        (.safari18, "safari180"), (.firefox, "firefox147"),
    ]

    /// What README.md's preset table gives for a preset: its JA4 and Akamai fingerprint, and the
    /// browser's JA4 (curl-impersonate's capture); docs/fingerprints.md gives its JA4_r.
    struct Documented {
        let ja4: String, akamai: String, browserJA4: String?, ja4r: String
    }

    static func documented(_ name: String) throws -> Documented {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        // Rows like: | `chrome150` | `t13d...` | `1:65536;...\|15663105\|0\|m,a,s,p` | `chrome150` | `t13d...` |
        func row(_ file: String, after heading: String) throws -> [String] {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            let section = text.split(separator: "\n").drop { $0 != heading }
            guard let line = section.first(where: { $0.hasPrefix("| `\(name)` |") }) else {
                throw OriginError.noReply("\(file) has no fingerprint row for \(name)")
            }
            return line.components(separatedBy: " | ").map {
                $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["`", "|", " "]).replacingOccurrences(of: "\\|", with: "|")
            }
        }
        let readme = try row("README.md", after: "### Fingerprints"), raw = try row("docs/fingerprints.md", after: "## JA4_r of each preset")
        return Documented(ja4: readme[1], akamai: readme[2], browserJA4: readme.count > 4 && readme[4].hasPrefix("t") ? readme[4] : nil, ja4r: raw[1])
    }

    /// A test origin and a pool for it whose connections present `profile`.
    private static func originAndPool(presenting profile: FingerprintProfile) throws -> (Origin, HotConnPool) {
        let origin = try Origin()
        var config = origin.configuration()
        config.profile = profile
        return (origin, try origin.pool(config))
    }

    private static func isGrease(_ value: Int) -> Bool { GREASE.contains(UInt16(truncatingIfNeeded: value)) }

    /// The newest ClientHello the origin received on `ip`.
    private static func lastHello(_ origin: Origin, ip: String) async throws -> [String: Any] {
        try #require((try await origin.send(["cmd": "hellos", "ip": ip, "last": 1]).object["hellos"] as? [[String: Any]])?.last)
    }

    @Test(arguments: presets)
    func clientHelloMatchesThePresetAndTheDocumentedJA4AndJA4r(profile: FingerprintProfile) async throws {
        let (origin, pool) = try Self.originAndPool(presenting: profile)
        try await origin.setTLSMode("h2")
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: origin.ips[0])
        #expect(try await connection.roundTrip(get()).head.status == .ok)
        #expect(connection.profile == profile.name)
        let hello = try await Self.lastHello(origin, ip: origin.ips[0])
        let spec = profile.spec
        let ciphers = (hello["cipher_suites"] as? [Int] ?? []).filter { !Self.isGrease($0) }
        // BoringSSL orders its three TLS 1.3 suites itself.
        #expect(Set(ciphers) == Set(spec.advertisedCipherSuites.map(Int.init)) && ciphers.count == spec.advertisedCipherSuites.count)
        #expect(Array(ciphers.suffix(spec.tls12CipherSuites.count)) == spec.tls12CipherSuites.map(Int.init)
                || spec.engine == .openSSL)
        var extensions = Set((hello["extensions"] as? [Int] ?? []).filter { !Self.isGrease($0) })
        if spec.extensions.contains(.padding) && !extensions.contains(21) {
            extensions.insert(21)  // only a ClientHello of 256–511 bytes is padded
        }
        #expect(extensions.sorted() == spec.advertisedExtensions.map(Int.init))
        let greases = (hello["extensions"] as? [Int] ?? []).filter(Self.isGrease)
        #expect(greases.count == (spec.extensions.contains(.grease) ? 2 : 0))
        #expect((hello["signature_algorithms"] as? [Int]) == spec.signatureAlgorithms.map(Int.init))
        #expect((hello["supported_groups"] as? [Int])?.filter { !Self.isGrease($0) } == spec.supportedGroups.map(Int.init))
        if !spec.keyShares.isEmpty {
            #expect((hello["key_share_groups"] as? [Int])?.filter { !Self.isGrease($0) } == spec.keyShares.map(Int.init))
        }
        #expect((hello["cert_compression"] as? [Int] ?? []) == spec.certificateCompression.map { Int($0.rawValue) })
        #expect((hello["alps"] as? Int).map(UInt16.init) == spec.applicationSettings?.codepoint.rawValue)
        #expect((hello["alpn"] as? [String]) == spec.alpn)
        #expect((hello["sni"] as? String) == Origin.hostName)
        #expect(hello["psk"] as? Bool == false, "a first connection has no session to offer")
        let expected = try Self.documented(profile.name)
        #expect(hello["ja4"] as? String == expected.ja4, "JA4 of \(profile.name)")
        #expect(hello["ja4_r"] as? String == expected.ja4r, "JA4_r of \(profile.name)")
        pool.putConnection(connection)
        try await pool.close()
    }

    /// Each browser preset against curl-impersonate's target of the same version, captured by the
    /// same origin in the same run: the JA4 the README gives for the browser is curl-impersonate's,
    /// the Chrome and Safari presets send exactly it (JA4 and JA4_r), and every preset sends the
    /// browser's HTTP/2 preface and header order. When curl-impersonate's browser moves on, this
    /// says so.
    @Test(arguments: browserPresets.map(\.0))
    func presetsEqualCurlImpersonateOfTheSameBrowserVersion(profile: FingerprintProfile) async throws {
        let target = try #require(Self.browserPresets.first { $0.0 == profile }?.target)
        let (origin, pool) = try Self.originAndPool(presenting: profile)
        try await origin.setTLSMode("h2")
        let ours = origin.ips[0], theirs = origin.ips[1]
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: ours)
        #expect(try await connection.roundTrip(get()).head.status == .ok)
        pool.putConnection(connection)
        try await origin.impersonate(target, ip: theirs)
        let documented = try Self.documented(profile.name)
        let browserHello = try await Self.lastHello(origin, ip: theirs)
        let ourHello = try await Self.lastHello(origin, ip: ours)
        #expect(browserHello["ja4"] as? String == documented.browserJA4,
                "\(target)'s JA4 (curl-impersonate); its JA4_r \(browserHello["ja4_r"] ?? "-"), ours \(ourHello["ja4_r"] ?? "-")")
        if profile != .firefox {  // docs/fingerprints.md lists Firefox's differences
            #expect(ourHello["ja4"] as? String == browserHello["ja4"] as? String)
            #expect(ourHello["ja4_r"] as? String == browserHello["ja4_r"] as? String)
            #expect(documented.ja4 == documented.browserJA4)
        }
        #expect(try await origin.akamai(ip: ours) == (try await origin.akamai(ip: theirs)), "Akamai of \(profile.name) and \(target)")
        let requests = try await origin.send(["cmd": "requests", "ip": "*", "last": 2]).object["requests"] as? [[String: Any]] ?? []
        let orders = requests.map { request in
            ((request["pseudo"] as? [[String]]) ?? []).map { $0[0] } + ((request["headers"] as? [[String]]) ?? []).map { $0[0] }
        }
        #expect(orders.count == 2 && orders[0] == orders[1], "HTTP/2 header order of \(profile.name) and \(target)")
        try await pool.close()
    }

    @Test func aSecondConnectionToTheSamePlaceResumesAndNoOtherDoes() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        // New connections take these local addresses in turn.
        config.localAddresses = ["127.0.0.1", "127.0.0.6"]
        let pool = try origin.pool(config)
        /// Opens a connection to `ip` while `held` are leased (so it is new), answers one request
        /// (by then the server's tickets arrived), and says whether the server saw a resumption.
        func resumed(_ ip: String, holding held: inout [PooledConnection]) async throws -> Bool {
            let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: ip)
            #expect(try await connection.roundTrip(get()).head.status == .ok)
            held.append(connection)
            let hello = try await Self.lastHello(origin, ip: ip)
            #expect(hello["psk"] as? Bool == hello["resumed"] as? Bool, "an offered session is accepted")
            return hello["resumed"] as? Bool == true
        }
        var held: [PooledConnection] = []
        #expect(try await resumed(origin.ips[0], holding: &held) == false)  // from 127.0.0.1
        #expect(try await resumed(origin.ips[0], holding: &held) == false, "another local address")  // 127.0.0.6
        #expect(try await resumed(origin.ips[1], holding: &held) == false, "another IP")  // 127.0.0.1
        #expect(try await resumed(origin.ips[0], holding: &held) == true, "the same IP and local address")  // 127.0.0.6
        #expect(try await resumed(origin.ips[0], holding: &held) == true, "the same IP and local address")  // 127.0.0.1
        #expect(try await resumed(origin.ips[1], holding: &held) == false, "another IP and local address")  // 127.0.0.6
        #expect(await pool.stats().resumedHandshakes == 2)
        held.forEach(pool.putConnection)
        try await pool.close()
        #expect(hp_tls_live_sessions() == 0, "the cache's sessions are freed at close")
    }

    @Test func theSessionCacheIsBoundedAndProfilesDoNotShareIt() async throws {
        let origin = try Origin()
        var config = origin.configuration()
        config.sessionCacheCapacity = 1
        config.rotatingProfiles = [.chrome, .chrome133]
        let pool = try origin.pool(config)
        var held: [PooledConnection] = []
        func resumed(_ ip: String) async throws -> Bool {
            let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port, ip: ip)
            #expect(try await connection.roundTrip(get()).head.status == .ok)
            held.append(connection)
            return try await Self.lastHello(origin, ip: ip)["psk"] as? Bool == true
        }
        #expect(try await resumed(origin.ips[0]) == false)  // chrome: keeps its session
        #expect(try await resumed(origin.ips[0]) == false, "another profile")  // chrome133: its session evicts chrome's
        #expect(try await resumed(origin.ips[0]) == false, "evicted")  // chrome
        #expect(try await resumed(origin.ips[0]) == false, "evicted")  // chrome133
        // A ticket the reactor is taking in as this reads is briefly a second session, until it
        // evicts the one cached: the bound holds once it settles.
        #expect(await eventually { hp_tls_live_sessions() <= 1 })
        held.forEach(pool.putConnection)
        try await pool.close()
        #expect(hp_tls_live_sessions() == 0)
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
        // The request's own User-Agent takes the profile's place (or, with none, follows its
        // fields as the request's other fields do).
        let custom = try #require(requests.first { $0["path"] as? String == "/custom" }?["headers"] as? [[String]])
        let ownUserAgent = spec.headers.contains { $0.name == "User-Agent" } ? [] : ["User-Agent"]
        #expect(custom.map { $0[0] } == ["Host"] + spec.headers.map(\.name) + ownUserAgent + ["X-Extra"])
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

    /// Safari's offered code points (written over BoringSSL's stand-ins) keep the handshake whole
    /// where a ClientHello is hashed more than once or bound: a resumed TLS 1.3 handshake (the PSK
    /// binder), one after a HelloRetryRequest (nginx takes P-256 only, for which Safari sends no key
    /// share), and TLS 1.2 (whose Finished covers the ClientHello too).
    @Test(arguments: [("TLSv1.3", "X25519"), ("TLSv1.3", "prime256v1"), ("TLSv1.2", "prime256v1")])
    func offeredCodePointsSurviveResumptionAndARetry(protocols: String, curve: String) async throws {
        let nginx = try Nginx(http2: false, protocols: protocols, curves: curve)  // a connection per caller
        defer { nginx.stop() }
        var config = HotPoolConfiguration()
        config.ioBackend = Origin.ioBackendUnderTest
        config.trustedCAFile = nginx.caFile
        config.profile = .safari
        config.connectTimeout = .seconds(5)
        let pool = try HotConnPool(configuration: config)
        pool.setAddresses([nginx.ip], forHost: nginx.hostName)
        var held: [PooledConnection] = []
        var handshakes: [String] = []
        for _ in 0..<2 {  // the second connection is new (the first is held) and resumes the first's session
            let connection = try await pool.getConnection(host: nginx.hostName, port: nginx.port)
            held.append(connection)
            let request = HTTPRequest(method: .get, scheme: "https", authority: nginx.hostName, path: "/tls")
            handshakes.append(String(decoding: try await connection.roundTrip(request).body, as: UTF8.self))
        }
        #expect(handshakes == ["\(protocols) \(curve) .", "\(protocols) \(curve) r"])
        #expect(await pool.stats().resumedHandshakes == 1)
        held.forEach(pool.putConnection)
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
        let documented = try Self.documented(profile.name)
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
        let ownUserAgent = spec.http2.headers.contains { $0.name == "user-agent" } ? [] : ["user-agent"]
        #expect(customFields.map { $0[0] } == spec.http2.headers.map(\.name) + ownUserAgent + ["x-extra"])
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
        config.rotatingProfiles = [.chrome, .firefox, .safari]
        let pool = try origin.pool(config)
        var held: [PooledConnection] = []
        for _ in 0..<3 { held.append(try await pool.getConnection(host: Origin.hostName, port: origin.port)) }
        #expect(held.map(\.profile) == ["chrome150", "firefox147", "safari26.0.1"])
        #expect(Set(await pool.connectionStats().map(\.profile)) == ["chrome150", "firefox147", "safari26.0.1"])
        let reply = try await origin.send(["cmd": "hellos", "ip": "*", "last": 3])
        let ja4s = Set((reply.object["hellos"] as? [[String: Any]] ?? []).compactMap { $0["ja4"] as? String })
        #expect(ja4s.count == 3, "three different ClientHellos")
        held.forEach(pool.putConnection)
        try await pool.close()
    }

    /// OpenSSL sends only what it implements (BoringSSL offers the rest through stand-ins).
    @Test func openSSLRefusesACodePointItDoesNotImplement() {
        var spec = FingerprintSpec.plain
        spec.tls12CipherSuites.append(0x1234)
        var config = HotPoolConfiguration()
        config.profile = .custom(spec)
        #expect(throws: HotPoolError.self) { _ = try HotConnPool(configuration: config) }
    }

    /// Specs asking an engine for what it cannot send, and the start of the refusal's reason.
    static let unsendableSpecs: [(reason: String, spec: FingerprintSpec)] = {
        func chrome(_ change: (inout FingerprintSpec) -> Void) -> FingerprintSpec {
            var spec = FingerprintSpec.chrome
            change(&spec)
            return spec
        }
        return [
            ("BoringSSL sends the TLS 1.3 cipher suites", chrome { $0.tls13CipherSuites = [0x1301] }),
            ("BoringSSL does not send encryptThenMAC", chrome { $0.extensions.insert(.encryptThenMAC) }),
            ("BoringSSL sends padding with permuted extensions only with GREASE",
             chrome { $0.extensions.formSymmetricDifference([.padding, .grease]) }),
            ("more than 5 TLS 1.2 cipher suites BoringSSL does not implement",
             chrome { $0.tls12CipherSuites += [0xc008, 0xc012, 0x0004, 0x0005, 0xc007, 0xc011] }),
            ("key shares needs the BoringSSL engine", chrome { $0.engine = .openSSL; $0.keyShares = [0x001d] }),
            ("ALPS needs the BoringSSL engine", chrome { $0.engine = .openSSL; $0.keyShares = [] }),
            ("certificate compression needs the BoringSSL engine",
             chrome { $0.engine = .openSSL; $0.keyShares = []; $0.applicationSettings = nil }),
        ]
    }()

    /// What a spec's engine cannot send is refused by `init`, naming it, rather than left out.
    @Test(arguments: unsendableSpecs.indices)
    func whatTheEngineCannotSendIsRefused(index: Int) async {
        let (reason, spec) = Self.unsendableSpecs[index]
        var config = HotPoolConfiguration()
        config.profile = .custom(spec)
        let error = await #expect(throws: HotPoolError.self) { try await HotConnPool(configuration: config).close() }
        #expect(error?.code == .invalidConfiguration && error?.reason?.hasPrefix("profile chrome150: " + reason) == true,
                "\(String(describing: error))")
    }

    /// The BoringSSL the presets were measured with: swift-nio-ssl 2.37.6's CNIOBoringSSL. A
    /// swift-nio-ssl update that moves it fails here first; re-measure the presets, then update.
    @Test func theBoringSSLEngineIsThePinnedOne() {
        #expect(hp_boringssl_api_version() == 43, "CNIOBoringSSL's BORINGSSL_API_VERSION changed: re-run FingerprintTests and update the pin")
    }
}

extension FingerprintProfile: CustomTestStringConvertible {
    public var testDescription: String { name }
}
