import HTTPTypes
import Testing
@testable import HotPoolCore

/// `Proxy(url)`: what each URL makes, what each bad one says, and that no text holds a password.
@Suite struct ProxyURLTests {
    static let password = "s3cr3t-PW"

    /// The error `Proxy(url, connectHeaders:)` throws, nil if it makes a proxy.
    private func error(_ url: String, headers: HTTPFields = [:]) -> HotPoolError? {
        do {
            _ = try Proxy(url, connectHeaders: headers)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [("http://proxy.local:3128", Proxy.Kind.http, 3128), ("https://proxy.local:8443", .https, 8443),
                      ("socks5://proxy.local:1081", .socks5, 1081), ("socks5h://proxy.local:9050", .socks5h, 9050),
                      ("HTTP://proxy.local:3128/", .http, 3128), ("SOCKS5H://proxy.local:9050", .socks5h, 9050)])
    func eachKindWithItsPort(url: String, kind: Proxy.Kind, port: Int) throws {
        let proxy = try Proxy(url)
        #expect(proxy.kind == kind && proxy.host == "proxy.local" && proxy.port == port)
        #expect(proxy.username == nil && proxy.password == nil && proxy.connectHeaders.isEmpty)
        #expect(proxy.description == "\(kind.rawValue)://proxy.local:\(port)")
    }

    @Test func defaultPorts() throws {
        #expect(try Proxy("http://p").port == 80)
        #expect(try Proxy("https://p").port == 443)
        #expect(try Proxy("socks5://p").port == 1080)
        #expect(try Proxy("socks5h://p/").port == 1080)
        #expect(try Proxy("socks5://10.0.0.1").description == "socks5://10.0.0.1:1080")
    }

    @Test func credentialsArePercentDecoded() throws {
        let proxy = try Proxy("http://us%40er%20x:p%3Ass%2Fw%25rd@proxy.local:3128")
        #expect(proxy.username == "us@er x" && proxy.password == "p:ss/w%rd")
        #expect(proxy.description == "http://proxy.local:3128")
        let raw = try Proxy("socks5://user:p@ss:w@proxy.local")  // the last @ ends the credentials; a colon may follow the first
        #expect(raw.username == "user" && raw.password == "p@ss:w" && raw.host == "proxy.local")
        let noPassword = try Proxy("socks5h://user@proxy.local")
        #expect(noPassword.username == "user" && noPassword.password == "")
        let utf8 = try Proxy("socks5://%C3%A9l%C3%A8ve:%E2%82%AC@p")
        #expect(utf8.username == "élève" && utf8.password == "€")
    }

    @Test func ipv6HostsGoInBrackets() throws {
        let proxy = try Proxy("socks5://u:\(Self.password)@[2001:db8::1]:1080")
        #expect(proxy.host == "2001:db8::1" && proxy.port == 1080)
        #expect(proxy.description == "socks5://[2001:db8::1]:1080")
        #expect(try Proxy("http://[::1]").port == 80)
        #expect(error("http://[::1")?.reason?.hasSuffix("unclosed [ in the host") == true)
        #expect(error("http://[proxy.local]:80")?.reason?.hasSuffix("not an IPv6 literal in brackets") == true)
        #expect(error("http://[::1]x")?.reason?.hasSuffix("bytes after the IPv6 literal") == true)
        #expect(error("http://::1:80")?.code == .invalidConfiguration)  // an IPv6 literal needs its brackets
    }

    @Test func connectHeadersAreKeptForHTTPKinds() throws {
        let headers: HTTPFields = [HTTPField.Name("X-Session")!: "abc"]
        #expect(try Proxy("https://p", connectHeaders: headers).connectHeaders == headers)
    }

    /// Each bad URL, with credentials in it: the error says what is wrong, and never the password.
    @Test(arguments: [
        ("user:\(password)@proxy.local:8080", "no scheme (http, https, socks5, socks5h)"),
        ("//user:\(password)@proxy.local", "no scheme (http, https, socks5, socks5h)"),
        ("user:pw://\(password)@proxy.local", "no scheme (http, https, socks5, socks5h)"),
        ("ftp://user:\(password)@proxy.local", "unsupported scheme ftp (http, https, socks5, socks5h)"),
        ("socks4://user:\(password)@proxy.local", "unsupported scheme socks4 (http, https, socks5, socks5h)"),
        ("http://user:\(password)@proxy.local/path", "a proxy URL has no path, query or fragment"),
        ("http://user:\(password)@proxy.local?x=1", "a proxy URL has no path, query or fragment"),
        ("http://user:\(password)@proxy.local:0", "port not in 1...65535"),
        ("http://user:\(password)@proxy.local:65536", "port not in 1...65535"),
        ("http://user:\(password)@proxy.local:http", "port not in 1...65535"),
        ("http://user:\(password)@proxy.local:", "port not in 1...65535"),
        ("http://user:\(password)@proxy.local:+80", "port not in 1...65535"),
        ("http://:\(password)@proxy.local", "empty user name"),
        ("socks5://@proxy.local", "empty user name"),
        ("http://us%3Aer:\(password)@proxy.local", "a Basic user name holds no colon"),
        ("https://us%3Aer:\(password)@proxy.local", "a Basic user name holds no colon"),
        ("socks5://user:\(password)%0A@proxy.local", "a control byte in the credentials"),
        ("socks5://user:\(password)%ZZ@proxy.local", "bad percent-encoding in the credentials"),
        ("socks5://user:\(password)%FF@proxy.local", "bad percent-encoding in the credentials"),
        ("socks5://user:\(password)@", "invalid host \"\""),
        ("socks5://user:\(password)@pro xy", "invalid host \"pro xy\""),
    ])
    func eachBadURLSaysWhyAndHidesThePassword(url: String, why: String) throws {
        let thrown = try #require(error(url))
        #expect(thrown.code == .invalidConfiguration)
        #expect(thrown.reason?.hasSuffix(": " + why) == true, "\(thrown)")
        #expect(thrown.reason?.hasPrefix("proxy URL ") == true, "\(thrown)")
        #expect(!thrown.description.contains(Self.password), "\(thrown)")
    }

    @Test func socksCredentialsAreAtMost255Bytes() throws {
        let longest = String(repeating: "p", count: Proxy.maxSOCKSCredentialBytes)
        #expect(try Proxy("socks5://\(longest):\(longest)@proxy.local").password == longest)
        // A Basic credential has no such bound.
        #expect(try Proxy("http://u:\(longest)pp@proxy.local").password?.utf8.count == 257)
        for url in ["socks5://\(longest)u:pw@proxy.local", "socks5h://u:\(longest)%C3%A9@proxy.local"] {
            let thrown = try #require(error(url))
            #expect(thrown.reason?.hasSuffix("a SOCKS5 user name or password is at most 255 bytes") == true)
            #expect(!thrown.description.contains(longest))
        }
    }

    @Test func connectHeadersAreCheckedAndHideThePassword() throws {
        let socks = try #require(error("socks5://user:\(Self.password)@p", headers: [HTTPField.Name("X-A")!: "1"]))
        #expect(socks.reason?.hasSuffix("CONNECT headers apply to http and https proxies only") == true)
        #expect(!socks.description.contains(Self.password))
        let auth = try #require(error("http://user:\(Self.password)@p", headers: [.proxyAuthorization: "Basic eDp5"]))
        #expect(auth.reason?.hasSuffix("Proxy-Authorization is set by the pool, not in connectHeaders") == true)
        #expect(!auth.description.contains(Self.password) && !auth.description.contains("eDp5"))
        let host = try #require(error("https://p", headers: [HTTPField.Name("host")!: "x"]))
        #expect(host.reason?.hasSuffix("host is set by the pool, not in connectHeaders") == true)
    }

    @Test func descriptionAndInterpolationNeverHoldTheCredentials() throws {
        for url in ["http://user:\(Self.password)@proxy.local", "socks5h://user:\(Self.password)@[::1]:9050"] {
            let proxy = try Proxy(url)
            #expect(proxy.password == Self.password)
            #expect(!proxy.description.contains(Self.password) && !proxy.description.contains("user"))
            #expect(!"\(proxy)".contains(Self.password) && !String(reflecting: proxy).contains(Self.password))
            #expect(!HotPoolError.timeout(host: "h", ip: nil, phase: .proxyTunnel, proxy: proxy).description.contains(Self.password))
            var dumped = ""
            dump(proxy, to: &dumped)
            #expect(!dumped.contains(Self.password) && dumped.contains("proxy.local") == url.contains("proxy.local"), "\(dumped)")
        }
    }
}
