import Foundation
import OriginControl
import Testing

/// The proxy servers of Sources/OriginControl/ProxyServers.swift work as the pool's proxy tests expect: curl
/// makes a real CONNECT or SOCKS5 tunnel through each to the test origin, the proxy logs the
/// tunnel opened and closed, wrong credentials are refused, and a killed proxy refuses
/// connections until it is started again on its port.
@Suite(.serialized)
struct ProxyServersTests {
    /// What curl did: its exit status, the body, and the codes of the answer and of the CONNECT.
    struct CurlResult {
        let status: Int32
        let body: String
        let httpCode: String
        let connectCode: String
        let errors: String
    }

    /// curl with `arguments` (the proxy options and URL), bounded to 5 s.
    func curl(_ arguments: [String]) throws -> CurlResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "--max-time", "5", "-w", "\n%{http_code} %{http_connect}"] + arguments
        let output = Pipe(), errors = Pipe()
        (process.standardOutput, process.standardError) = (output, errors)
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let codes = (lines.last ?? "").split(separator: " ").map(String.init)
        return CurlResult(status: process.terminationStatus, body: lines.dropLast().joined(separator: "\n"),
                          httpCode: codes.first ?? "", connectCode: codes.count > 1 ? codes[1] : "",
                          errors: String(decoding: errorData, as: UTF8.self))
    }

    /// The origin's URL on its first IP, with a path unique to the call.
    func originURL(_ origin: Origin, _ path: String = "/via-proxy-\(UUID().uuidString)") -> String {
        "https://\(origin.ips[0]):\(origin.port)\(path)"
    }

    /// Expects curl's request through a proxy to have come back with the origin's 200 "ok".
    func expectAnswered(_ result: CurlResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 0 && result.httpCode == "200" && result.body == "ok",
                "curl exit \(result.status), \(result.httpCode): \(result.body) \(result.errors)", sourceLocation: sourceLocation)
    }

    @Test func tinyproxyTunnelsCONNECTAndLogsIt() async throws {
        let origin = try Origin()
        let proxy = try TinyProxy()
        let path = "/through-tinyproxy"
        expectAnswered(try curl(["-x", proxy.url, "-p", "--cacert", origin.caFile, originURL(origin, path)]))
        #expect(await proxy.sawTunnels(opened: 1, closed: 1), "\(proxy.log())")
        #expect(proxy.connectTargets() == ["\(origin.ips[0]):\(origin.port)"])
        #expect(try await origin.recentPaths(last: 1) == [path])
    }

    @Test func tinyproxyBasicAuthentication() async throws {
        let origin = try Origin()
        let proxy = try TinyProxy(basicAuth: ("proxyuser", "proxypass"))
        #expect(proxy.url == "http://proxyuser:proxypass@127.0.0.1:\(proxy.port)")
        expectAnswered(try curl(["-x", proxy.url, "-p", "--cacert", origin.caFile, originURL(origin)]))
        // No credentials: 407. Wrong ones: tinyproxy 1.11.1 answers 401.
        let none = try curl(["-x", proxy.url(credentials: nil), "-p", "--cacert", origin.caFile, originURL(origin)])
        #expect(none.status != 0 && none.connectCode == "407", "\(none)")
        let wrong = try curl(["-x", proxy.url(credentials: ("proxyuser", "wrong")), "-p", "--cacert", origin.caFile, originURL(origin)])
        #expect(wrong.status != 0 && wrong.connectCode == "401", "\(wrong)")
        #expect(await proxy.sawTunnels(opened: 1, closed: 1), "\(proxy.log())")
    }

    @Test func tinyproxyKilledRefusesThenRestartsOnItsPort() async throws {
        let origin = try Origin()
        let proxy = try TinyProxy()
        let port = proxy.port
        proxy.kill()
        let refused = try curl(["-x", proxy.url, "-p", "--cacert", origin.caFile, originURL(origin)])
        #expect(refused.status == 7, "\(refused)")  // couldn't connect
        try proxy.restart()
        #expect(proxy.port == port)
        expectAnswered(try curl(["-x", proxy.url, "-p", "--cacert", origin.caFile, originURL(origin)]))
        #expect(await proxy.sawTunnels(opened: 1, closed: 1), "\(proxy.log())")
    }

    @Test func danteTunnelsSOCKS5AndResolvesForSOCKS5h() async throws {
        let origin = try Origin()
        let proxy = try Dante()
        #expect(proxy.url == "socks5://127.0.0.1:\(proxy.port)" && proxy.hostnameURL == "socks5h://127.0.0.1:\(proxy.port)")
        let path = "/through-dante"
        expectAnswered(try curl(["--proxy", proxy.url, "--cacert", origin.caFile, originURL(origin, path)]))
        #expect(try await origin.recentPaths(last: 1) == [path])
        // socks5h: curl sends the name "localhost" (--connect-to) and Dante resolves it, from
        // /etc/hosts, to 127.0.0.1, where a second origin listens; TLS checks the origin's name.
        let local = try Origin(ips: ["127.0.0.1"])
        let name = "\(Origin.hostName):\(local.port)"
        expectAnswered(try curl(["--proxy", proxy.hostnameURL, "--connect-to", "\(name):localhost:\(local.port)",
                                 "--cacert", local.caFile, "https://\(name)/by-name"]))
        #expect(try await local.recentPaths(last: 1) == ["/by-name"])
        #expect(await proxy.sawTunnels(opened: 2, closed: 2), "\(proxy.log())")
    }

    @Test func danteUsernameAuthentication() async throws {
        let origin = try Origin()
        let proxy = try Dante(usernameAuth: true)
        #expect(proxy.url == "socks5://\(Dante.user):\(Dante.password)@127.0.0.1:\(proxy.port)")
        expectAnswered(try curl(["--proxy", proxy.url, "--cacert", origin.caFile, originURL(origin)]))
        let wrong = try curl(["--proxy", proxy.url(scheme: "socks5", credentials: (Dante.user, "wrong")), "--cacert", origin.caFile,
                              originURL(origin)])
        #expect(wrong.status == 97, "\(wrong)")  // the proxy refused the handshake
        let none = try curl(["--proxy", proxy.url(scheme: "socks5", credentials: nil), "--cacert", origin.caFile, originURL(origin)])
        #expect(none.status == 97, "\(none)")
        #expect(proxy.authenticationFailures() == 1)
        #expect(await proxy.sawTunnels(opened: 1, closed: 1), "\(proxy.log())")
    }

    @Test func danteKilledRefusesThenRestartsOnItsPort() async throws {
        let origin = try Origin()
        let proxy = try Dante()
        proxy.kill()
        let refused = try curl(["--proxy", proxy.url, "--cacert", origin.caFile, originURL(origin)])
        #expect(refused.status == 7 || refused.status == 97, "\(refused)")
        try proxy.restart()
        expectAnswered(try curl(["--proxy", proxy.url, "--cacert", origin.caFile, originURL(origin)]))
        #expect(await proxy.sawTunnels(opened: 1, closed: 1), "\(proxy.log())")
    }

    @Test func squidTunnelsCONNECTInsideTLS() async throws {
        let origin = try Origin()
        let proxy = try Squid(signedBy: Squid.originCA(origin))
        #expect(proxy.url == "https://127.0.0.1:\(proxy.port)" && proxy.caFile == origin.caFile)
        let path = "/through-squid"
        expectAnswered(try curl(["--proxy", proxy.url, "-p", "--proxy-cacert", origin.caFile, "--cacert", origin.caFile,
                                 originURL(origin, path)]))
        #expect(try await origin.recentPaths(last: 1) == [path])
        // Its certificate is for "localhost" too.
        expectAnswered(try curl(["--proxy", "https://localhost:\(proxy.port)", "-p", "--proxy-cacert", origin.caFile,
                                 "--cacert", origin.caFile, originURL(origin)]))
        #expect(await proxy.sawTunnels(opened: 2, closed: 2), "\(proxy.log())")
        #expect(proxy.accessLog().split(separator: "\n").count { $0.contains("TCP_TUNNEL/200") } == 2)
    }

    @Test func squidBasicAuthenticationWithItsOwnCA() async throws {
        let origin = try Origin()
        let proxy = try Squid(basicAuth: ("proxyuser", "proxypass"))
        #expect(proxy.caFile != origin.caFile)
        let tls = ["-p", "--proxy-cacert", proxy.caFile, "--cacert", origin.caFile]
        expectAnswered(try curl(["--proxy", proxy.url] + tls + [originURL(origin)]))
        let wrong = try curl(["--proxy", proxy.url(credentials: ("proxyuser", "wrong"))] + tls + [originURL(origin)])
        #expect(wrong.status != 0 && wrong.connectCode == "407", "\(wrong)")
        let none = try curl(["--proxy", proxy.url(credentials: nil)] + tls + [originURL(origin)])
        #expect(none.status != 0 && none.connectCode == "407", "\(none)")
        #expect(await proxy.sawTunnels(opened: 1, closed: 1), "\(proxy.log())")
        // The proxy's certificate is not trusted by the origin's CA alone.
        let untrusted = try curl(["--proxy", proxy.url, "-p", "--proxy-cacert", origin.caFile, "--cacert", origin.caFile, originURL(origin)])
        #expect(untrusted.status == 60, "\(untrusted)")
    }

    @Test func squidKilledRefusesThenRestartsOnItsPort() async throws {
        let origin = try Origin()
        let proxy = try Squid(signedBy: Squid.originCA(origin))
        let arguments = ["--proxy", proxy.url, "-p", "--proxy-cacert", origin.caFile, "--cacert", origin.caFile, originURL(origin)]
        proxy.kill()
        let refused = try curl(arguments)
        #expect(refused.status == 7, "\(refused)")
        try proxy.restart()
        expectAnswered(try curl(arguments))
        #expect(await proxy.sawTunnels(opened: 1, closed: 1), "\(proxy.log())")
    }
}
