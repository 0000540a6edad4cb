import HotPool

/// What the harness measures against and how long, from the command line (see `usage`).
struct Options: Sendable {
    static let usage = """
        usage: HotPoolBench --ca FILE --ips IP[,IP...] --port PORT [--http2-port PORT] [--host NAME] [--runs N]
                            [--duration SECONDS] [--quick] [--json FILE] [--only GROUP[,GROUP...]]
                            [--http-proxy URL] [--socks5-proxy URL] [--https-proxy URL]
          groups: getput, throughput, http2, handshake, destruction (close, remove and memory), hosts,
                  proxy (through the local proxies given; skipped without --http-proxy),
                  codings (a gzip-coded body decoded, beside the same body sent as it is),
                  streaming (a 1 GiB download read as it arrives, and a 1 GiB upload sent as it is made, beside curl),
                  reactors (1 and 2 reactors beside wrk, h2load and AsyncHTTPClient on 1 and 2 threads; CPU-bound scaling)
        """

    static let groups: Set<String> = ["getput", "throughput", "http2", "handshake", "destruction", "hosts", "proxy", "codings",
                                      "streaming", "reactors"]

    /// PEM of the CA that signed nginx's certificate.
    var caFile = ""
    /// nginx's listen IPs; the pool spreads over all, the peers use the first.
    var ips: [String] = []
    var port = 0
    /// nginx's port with `http2` on (the same IPs); 0 = none (the http2 group is skipped).
    var http2Port = 0
    /// The name the certificate is for (the pool's host, with `ips` as its addresses).
    var host = "bench.hotpool.test"
    var runs = 5
    /// Seconds each timed run of throughput and handshake scenarios lasts.
    var duration = 5
    /// Every scenario briefly (one run, one second): proves the harness works, figures are rough.
    var quick = false
    var jsonPath = "results.json"
    var groups = Options.groups
    /// The local proxies of the proxy group (run.sh starts them): tinyproxy (`http://`), Dante
    /// (`socks5://`) and Squid (`https://`, its certificate signed by `caFile`'s CA).
    var httpProxy: Proxy?
    var socks5Proxy: Proxy?
    var httpsProxy: Proxy?

    /// The `Host` authority requests carry.
    var authority: String { port == 443 ? host : "\(host):\(port)" }

    /// A URL on the first nginx IP, for the peers (the certificate has IP SANs).
    func url(_ path: String) -> String { "https://\(ips[0]):\(port)\(path)" }

    /// A pool over nginx's IPs presenting `profile`, whose limits admit `connections` connections,
    /// all of them idle; with `streams`, connections to its first IP only (as h2load's), each
    /// leased to at most `streams` callers at once; every connection through `proxies`, if any.
    func makePool(
        connections: Int, backend: IOBackendChoice = .epoll, streams: Int? = nil, profile: FingerprintProfile = .chrome,
        proxies: [Proxy] = [], reactors: Int = 1
    ) throws -> HotConnPool {
        var configuration = HotPoolConfiguration()
        configuration.reactors = ReactorCount(reactors)
        configuration.ioBackend = backend
        configuration.trustedCAFile = caFile
        configuration.profile = profile
        configuration.maxConnections = connections
        configuration.maxConnectionsPerHost = connections
        configuration.maxIdleConnections = connections
        if let streams { configuration.maxStreamsPerConnection = streams }
        configuration.proxies = proxies
        let pool = try HotConnPool(configuration: configuration)
        pool.setAddresses(streams == nil ? ips : [ips[0]], forHost: host)
        return pool
    }

    /// The options in `arguments` (without the program name); throws with the usage text.
    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var runsGiven = false, durationGiven = false
        var rest = arguments[...]
        func value(_ flag: String) throws -> String {
            guard let value = rest.popFirst() else { throw BenchError.unexpected("\(flag) needs a value\n\(usage)") }
            return value
        }
        func number(_ flag: String) throws -> Int {
            guard let number = Int(try value(flag)), number > 0 else { throw BenchError.unexpected("\(flag) needs a positive number") }
            return number
        }
        func proxy(_ flag: String, _ kind: Proxy.Kind) throws -> Proxy {
            let url = try value(flag)
            let proxy: Proxy
            do { proxy = try Proxy(url) } catch { throw BenchError.unexpected("\(flag): \(error)") }
            guard proxy.kind == kind else { throw BenchError.unexpected("\(flag) takes a \(kind.rawValue):// URL") }
            return proxy
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--ca": options.caFile = try value(flag)
            case "--ips": options.ips = try value(flag).split(separator: ",").map(String.init)
            case "--port": options.port = try number(flag)
            case "--http2-port": options.http2Port = try number(flag)
            case "--host": options.host = try value(flag)
            case "--runs": options.runs = try number(flag); runsGiven = true
            case "--duration": options.duration = try number(flag); durationGiven = true
            case "--quick": options.quick = true
            case "--json": options.jsonPath = try value(flag)
            case "--http-proxy": options.httpProxy = try proxy(flag, .http)
            case "--socks5-proxy": options.socks5Proxy = try proxy(flag, .socks5)
            case "--https-proxy": options.httpsProxy = try proxy(flag, .https)
            case "--only":
                options.groups = Set(try value(flag).split(separator: ",").map(String.init))
                guard options.groups.isSubset(of: groups) else { throw BenchError.unexpected("unknown group\n\(usage)") }
            default: throw BenchError.unexpected("unknown argument \(flag)\n\(usage)")
            }
        }
        guard !options.caFile.isEmpty, !options.ips.isEmpty, options.port > 0 else { throw BenchError.unexpected(usage) }
        if options.quick {
            if !runsGiven { options.runs = 1 }
            if !durationGiven { options.duration = 1 }
        }
        return options
    }
}

/// The I/O backends every HotPool row is measured on; epoll's rows keep their names.
let backends: [IOBackendChoice] = [.epoll, .ioUring]

extension IOBackendChoice {
    /// What a row's name says of its backend: nothing for epoll, ", io_uring" for io_uring.
    var rowSuffix: String { self == .ioUring ? ", io_uring" : "" }
}
