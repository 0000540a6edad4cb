import Foundation

/// Real proxy servers from Debian on a loopback IP, started and stopped by a test or the demo, for the pool's
/// proxy tests: `TinyProxy` (HTTP CONNECT), `Dante` (SOCKS5) and `Squid` (HTTP CONNECT inside
/// TLS). Each runs in the foreground as this process's child, with its configuration and log in a
/// throwaway directory, on a free port; each `init` returns once the server listens (a bounded
/// wait on the kernel's socket table: no probe connection, so none is logged), and throws if it
/// does not. A test reads what the server logged (`tunnelsOpened()`, `tunnelsClosed()`, `log()`),
/// kills it abruptly (`kill()`: SIGKILL to it and its children, a dead proxy) and starts it
/// again on the same port (`restart()`). `stop()`, or releasing the object, ends it (SIGTERM,
/// then SIGKILL after 3 s; Squid SIGKILL at once) and removes its directory.
///
/// The servers start as root here and switch to `nobody` (Dante takes root back only to check
/// passwords), so their directory and log files are made writable by everyone.
public protocol ProxyServer: AnyObject {
    /// The proxy's URL for `Proxy(_:)`, with the credentials it was configured with.
    var url: String { get }
    /// The IP it listens on.
    var ip: String { get }
    /// The port it listens on.
    var port: Int { get }
    /// How many tunnels it has opened to a target since it was made (across restarts).
    func tunnelsOpened() -> Int
    /// How many of those it has closed (a killed proxy logs no closes).
    func tunnelsClosed() -> Int
    /// Everything it has logged so far.
    func log() -> String
    /// Kills it abruptly (SIGKILL to the server and its children) and waits until they are gone:
    /// the kernel closes its listener and both ends of its tunnels (FIN, or RST where bytes were
    /// left unread), as a crashed proxy's would. Its log stays for reading.
    func kill()
    /// Starts it again, on the same port, after `kill()` or `stop()`; returns once it listens.
    func restart() throws
    /// Stops it (SIGTERM, SIGKILL after 3 s; Squid at once) and removes its files.
    func stop()
}


/// tinyproxy (Debian tinyproxy-bin, 1.11): an HTTP proxy whose CONNECT goes to any port (with no
/// `ConnectPort` line it allows every port), with Basic authentication if `basicAuth` is given.
/// It logs at `Info`: "Established connection to host ..." when a tunnel opens, "Closed
/// connection between local client ..." when it closes.
///
/// With wrong credentials tinyproxy 1.11.1 answers CONNECT with 401 and `WWW-Authenticate`, not
/// 407 (407 and `Proxy-Authenticate` only when the request has no `Proxy-Authorization`).
public final class TinyProxy: ProxyServer {
    public let ip: String
    public let port: Int
    public let credentials: (user: String, password: String)?
    private let server: ProxyProcess

    /// tinyproxy on `ip`, asking for `basicAuth` (a user and password without spaces) if given.
    public init(basicAuth: (user: String, password: String)? = nil, listen ip: String = "127.0.0.1") throws {
        self.ip = ip
        credentials = basicAuth
        port = freePort(on: ip)
        let directory = try ProxyProcess.makeDirectory("tinyproxy")
        let logFile = directory + "/tinyproxy.log"
        let config = """
            User nobody
            Group nogroup
            Port \(port)
            Listen \(ip)
            Timeout 600
            MaxClients 200
            Allow 127.0.0.0/8
            DisableViaHeader Yes
            LogFile "\(logFile)"
            LogLevel Info
            \(basicAuth.map { "BasicAuth \($0.user) \($0.password)" } ?? "")
            """
        try config.write(toFile: directory + "/tinyproxy.conf", atomically: true, encoding: .utf8)
        server = try ProxyProcess(name: "tinyproxy", directory: directory, ip: ip, port: port, logFiles: [logFile],
                                  executable: "/usr/bin/tinyproxy", arguments: ["-d", "-c", directory + "/tinyproxy.conf"])
    }

    deinit { server.stop() }

    public var url: String { url(credentials: credentials) }

    /// The `http://` URL with `credentials` (none if nil), e.g. wrong ones.
    public func url(credentials: (user: String, password: String)?) -> String {
        ProxyProcess.url("http", credentials, ip, port)
    }

    public func tunnelsOpened() -> Int { server.count("Established connection to host") }
    public func tunnelsClosed() -> Int { server.count("Closed connection between local client") }
    /// The targets of the CONNECT requests it read ("host:port"), oldest first, whether or not
    /// they were let through.
    public func connectTargets() -> [String] {
        log().split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "): CONNECT ") else { return nil }
            return line[range.upperBound...].split(separator: " ").first.map(String.init)
        }
    }
    public func log() -> String { server.log() }
    public func kill() { server.kill() }
    public func restart() throws { try server.start() }
    public func stop() { server.stop() }
}

/// Dante (Debian dante-server, 1.4): a SOCKS5 server allowing CONNECT from 127.0.0.0/8 to
/// anywhere, connecting out from 127.0.0.1. It resolves names (`socks5h`) with the system
/// resolver: /etc/hosts names such as `localhost`, not the tests' DNS server.
///
/// With `usernameAuth` it asks for RFC 1929 user name and password and checks them against the
/// system password database (as root, which reads /etc/shadow): the only credentials it takes
/// are `Dante.user` / `Dante.password`, the account .ci/install-deps makes (a system account
/// with no shell, expired, so nothing but Dante accepts the password). Without that account
/// `init` throws.
///
/// It logs each tunnel ("pass(1): tcp/connect [: ..." opened, "... ]: ..." closed) and each
/// refused client ("block(1): tcp/accept ]: ... system password authentication failed ...").
public final class Dante: ProxyServer {
    /// The system account .ci/install-deps makes for Dante's username method, and its password.
    public static let user = "hotpool-socks"
    public static let password = "hotpool-socks-pw"

    public let ip: String
    public let port: Int
    public let usernameAuth: Bool
    private let server: ProxyProcess

    public init(usernameAuth: Bool = false, listen ip: String = "127.0.0.1") throws {
        if usernameAuth && getpwnam(Self.user) == nil {
            throw ProxyServerError.failed("no system user \(Self.user) for Dante's username method: run .ci/install-deps")
        }
        self.ip = ip
        self.usernameAuth = usernameAuth
        port = freePort(on: ip)
        let directory = try ProxyProcess.makeDirectory("dante")
        let logFile = directory + "/danted.log"
        let config = """
            logoutput: \(logFile)
            internal: \(ip) port = \(port)
            external: 127.0.0.1
            clientmethod: none
            socksmethod: \(usernameAuth ? "username" : "none")
            user.privileged: root
            user.unprivileged: nobody
            client pass {
                from: 127.0.0.0/8 to: 0.0.0.0/0
                log: error
            }
            socks pass {
                from: 127.0.0.0/8 to: 0.0.0.0/0
                command: connect
                log: connect disconnect error
            }
            """
        try config.write(toFile: directory + "/danted.conf", atomically: true, encoding: .utf8)
        server = try ProxyProcess(name: "danted", directory: directory, ip: ip, port: port, logFiles: [logFile],
                                  executable: "/usr/sbin/danted",
                                  arguments: ["-f", directory + "/danted.conf", "-p", directory + "/danted.pid"])
    }

    deinit { server.stop() }

    /// The credentials it takes: `Dante.user` and `Dante.password` with `usernameAuth`, else none.
    public var credentials: (user: String, password: String)? { usernameAuth ? (Self.user, Self.password) : nil }
    /// The `socks5://` URL, with `credentials`.
    public var url: String { url(scheme: "socks5", credentials: credentials) }
    /// The `socks5h://` URL (the proxy resolves the target's name), with `credentials`.
    public var hostnameURL: String { url(scheme: "socks5h", credentials: credentials) }

    /// The URL with `scheme` ("socks5" or "socks5h") and `credentials` (none if nil), e.g. wrong ones.
    public func url(scheme: String, credentials: (user: String, password: String)?) -> String {
        ProxyProcess.url(scheme, credentials, ip, port)
    }

    public func tunnelsOpened() -> Int { server.count("tcp/connect [:") }
    public func tunnelsClosed() -> Int { server.count("tcp/connect ]:") }
    /// How many clients it refused because their user name or password was wrong.
    public func authenticationFailures() -> Int { server.count("password authentication failed") }
    public func log() -> String { server.log() }
    public func kill() { server.kill() }
    public func restart() throws { try server.start() }
    public func stop() { server.stop() }
}

/// Squid (Debian squid-openssl, 5.x) as an HTTPS proxy: TLS to the proxy on `https_port`, HTTP
/// CONNECT inside, to any port, from 127.0.0.0/8; Basic authentication if `basicAuth` is given
/// (its basic_ncsa_auth helper with an htpasswd file), a wrong or missing one answered with 407.
/// No cache on disk; everything it writes is in its directory. Starts in about 0.3-0.5 s; ends
/// 2 s after SIGTERM whatever `shutdown_lifetime` says, so `stop()` kills it (SIGKILL: its logs
/// are written a line at a time, nothing is lost).
///
/// Its certificate, for `127.0.0.1` (IP SAN) and `localhost`, is signed by `signedBy` (a CA
/// certificate and key PEM file: `Squid.originCA(origin)` for the test origin's, which the
/// pool's `trustedCAFile` already names), else by a CA made for it; `caFile` is that CA.
///
/// Tunnels are read from its debug log (section 26 at level 3: "TunnelStateData constructed"
/// and "destructed"); its access log (`accessLog()`) has one line per CONNECT once it ends,
/// "TCP_TUNNEL/200" or "TCP_DENIED/407".
public final class Squid: ProxyServer {
    public let ip: String
    public let port: Int
    public let credentials: (user: String, password: String)?
    /// The CA that signed the proxy's certificate (for curl's `--proxy-cacert`, the pool's trust).
    public let caFile: String
    private let server: ProxyProcess
    private let accessLogFile: String

    /// The test origin's CA certificate and key (the key is written beside the certificate).
    public static func originCA(_ origin: Origin) -> (certificate: String, key: String) {
        (origin.caFile, (origin.caFile as NSString).deletingPathExtension + ".key")
    }

    public init(basicAuth: (user: String, password: String)? = nil, signedBy ca: (certificate: String, key: String)? = nil,
         listen ip: String = "127.0.0.1") throws {
        self.ip = ip
        credentials = basicAuth
        port = freePort(on: ip)
        let directory = try ProxyProcess.makeDirectory("squid")
        let openssl = "/usr/bin/openssl"
        let ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        if let ca {
            caFile = ca.certificate
        } else {
            caFile = directory + "/ca.pem"
            try ProxyProcess.run(openssl, ["req", "-x509"] + ecKey + ["-keyout", directory + "/ca.key", "-out", caFile,
                "-days", "2", "-subj", "/CN=HotPool squid test CA"])
        }
        try ProxyProcess.run(openssl, ["req"] + ecKey + ["-keyout", directory + "/proxy.key", "-out", directory + "/proxy.csr",
            "-subj", "/CN=localhost"])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\(ip == "127.0.0.1" ? "" : ",IP:\(ip)")\n"
            .write(toFile: directory + "/ext.cnf", atomically: true, encoding: .utf8)
        try ProxyProcess.run(openssl, ["x509", "-req", "-in", directory + "/proxy.csr", "-CA", caFile,
            "-CAkey", ca?.key ?? directory + "/ca.key", "-CAcreateserial", "-CAserial", directory + "/ca.srl",
            "-out", directory + "/proxy.pem", "-days", "2", "-extfile", directory + "/ext.cnf"])
        var auth = ""
        if let basicAuth {
            let hash = try ProxyProcess.output(openssl, ["passwd", "-apr1", basicAuth.password])
            try "\(basicAuth.user):\(hash)\n".write(toFile: directory + "/passwd", atomically: true, encoding: .utf8)
            auth = """
                auth_param basic program /usr/lib/squid/basic_ncsa_auth \(directory)/passwd
                auth_param basic children 2 startup=1 idle=1
                auth_param basic realm HotPool squid
                acl authenticated proxy_auth REQUIRED
                http_access deny !authenticated
                """
        }
        for file in ["proxy.key", "proxy.pem", "passwd"] { chmod(directory + "/" + file, 0o644) }
        accessLogFile = directory + "/access.log"
        let cacheLog = directory + "/cache.log"
        let config = """
            https_port \(ip):\(port) tls-cert=\(directory)/proxy.pem tls-key=\(directory)/proxy.key
            pid_filename \(directory)/squid.pid
            cache_log \(cacheLog)
            access_log stdio:\(accessLogFile)
            cache_store_log none
            netdb_filename none
            coredump_dir \(directory)
            cache deny all
            cache_mem 8 MB
            cache_effective_user nobody
            cache_effective_group nogroup
            visible_hostname hotpool-squid
            shutdown_lifetime 0 seconds
            pinger_enable off
            debug_options ALL,1 26,3
            acl loopback src 127.0.0.0/8
            \(auth)
            http_access allow loopback
            http_access deny all
            """
        try config.write(toFile: directory + "/squid.conf", atomically: true, encoding: .utf8)
        server = try ProxyProcess(name: "squid", directory: directory, ip: ip, port: port, logFiles: [cacheLog, accessLogFile],
                                  executable: "/usr/sbin/squid", arguments: ["-N", "-f", directory + "/squid.conf"],
                                  pidFile: directory + "/squid.pid", stopGrace: .zero)
    }

    deinit { server.stop() }

    public var url: String { url(credentials: credentials) }

    /// The `https://` URL with `credentials` (none if nil), e.g. wrong ones.
    public func url(credentials: (user: String, password: String)?) -> String {
        ProxyProcess.url("https", credentials, ip, port)
    }

    public func tunnelsOpened() -> Int { server.count("TunnelStateData constructed") }
    public func tunnelsClosed() -> Int { server.count("TunnelStateData destructed") }
    /// Its access log: a line per CONNECT once it ended (e.g. "TCP_TUNNEL/200 ... CONNECT 127.0.0.2:443 user").
    public func accessLog() -> String { ProxyProcess.read(accessLogFile) }
    public func log() -> String { server.log() }
    public func kill() { server.kill() }
    public func restart() throws { try server.start() }
    public func stop() { server.stop() }
}

public enum ProxyServerError: Error {
    case failed(String)
}

/// One proxy server process: starts it and waits until it listens, kills or stops it with its
/// children, reads its logs.
///
/// The server runs under a `/bin/sh` that waits for it, and that shell is the `Process`:
/// Foundation watches each child through a socket the child inherits, and when that socket
/// closes it waits for the child, blocking, on the one thread that sees every child exit. danted
/// closes every descriptor it inherits as it starts, so run directly it would block that thread
/// until it exits, and with it every other `Process`'s `waitUntilExit` (curl's, say). The shell
/// keeps the socket until the server has exited.
final class ProxyProcess {
    private let name: String
    private let directory: String
    private let ip: String
    private let port: Int
    private let logFiles: [String]
    private let executable: String
    private let arguments: [String]
    private let pidFile: String?
    private let stopGrace: Duration
    private var process: Process?
    private var removed = false

    /// Starts `executable` with `arguments` and waits until it listens on ip:port. `stop()` gives
    /// it `stopGrace` after SIGTERM (none: SIGKILL at once). `pidFile` is removed before each start.
    init(name: String, directory: String, ip: String, port: Int, logFiles: [String], executable: String, arguments: [String],
         pidFile: String? = nil, stopGrace: Duration = .seconds(3)) throws {
        (self.name, self.directory, self.ip, self.port, self.logFiles) = (name, directory, ip, port, logFiles)
        (self.executable, self.arguments, self.pidFile, self.stopGrace) = (executable, arguments, pidFile, stopGrace)
        // The servers drop to nobody before (or after) opening their logs.
        for file in logFiles {
            _ = FileManager.default.createFile(atPath: file, contents: nil)
            chmod(file, 0o666)
        }
        try start()
    }

    deinit { stop() }

    /// Starts the server (again) and waits, at most 5 s, until it listens on ip:port.
    func start() throws {
        guard process == nil else { return }
        if let pidFile { try? FileManager.default.removeItem(atPath: pidFile) }  // Squid refuses a fresh-looking one
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // Not `exec`: the shell stays, holding Foundation's socket (see above).
        process.arguments = ["-c", "\"$@\"; exit $?", "sh", executable] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let end = ContinuousClock.now + .seconds(5)
        while !Self.listening(ip, port) {
            guard process.isRunning, ContinuousClock.now < end else {
                let log = self.log().suffix(2000)
                kill()
                throw ProxyServerError.failed("\(name) did not listen on \(ip):\(port): \(log)")
            }
            usleep(10_000)
        }
    }

    /// SIGKILL to the server, its children and the shell; waits until they are gone.
    func kill() {
        guard let process else { return }
        self.process = nil
        let pids = Self.descendants(of: process.processIdentifier).all + [process.processIdentifier]
        for pid in pids { _ = Glibc.kill(pid, SIGKILL) }
        Self.waitGone(process, pids, timeout: .seconds(5))
    }

    /// SIGTERM to the server (which ends its children), SIGKILL to all after `stopGrace`;
    /// removes the directory.
    func stop() {
        if let process {
            let tree = Self.descendants(of: process.processIdentifier)
            if stopGrace > .zero {
                for pid in tree.children { _ = Glibc.kill(pid, SIGTERM) }
            }
            if !Self.waitGone(process, tree.all + [process.processIdentifier], timeout: stopGrace) { kill() }
            self.process = nil
        }
        if !removed {
            removed = true
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// All its log files' text, concatenated.
    func log() -> String { logFiles.map(Self.read).joined() }

    /// How many lines of its logs hold `marker`.
    func count(_ marker: String) -> Int {
        log().split(separator: "\n").count { $0.contains(marker) }
    }

    // MARK: - helpers

    /// A fresh 0777 directory for a server's files (the servers run as nobody).
    static func makeDirectory(_ name: String) throws -> String {
        let directory = NSTemporaryDirectory() + "hotpool-\(name)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o777)
        return directory
    }

    static func url(_ scheme: String, _ credentials: (user: String, password: String)?, _ ip: String, _ port: Int) -> String {
        let host = ip.contains(":") ? "[\(ip)]" : ip
        return "\(scheme)://\(credentials.map { "\($0.user):\($0.password)@" } ?? "")\(host):\(port)"
    }

    /// The file's text so far. Through a `FileHandle`, read to its end: `FileManager.contents(atPath:)`
    /// leaks its buffer (LeakSanitizer) when the file grows while it reads, as a server's log does.
    static func read(_ path: String) -> String {
        guard let file = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? file.close() }
        return String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Waits until `process` has exited and none of `pids` exists (a zombie counts as gone).
    @discardableResult
    private static func waitGone(_ process: Process, _ pids: [Int32], timeout: Duration) -> Bool {
        let end = ContinuousClock.now + timeout
        while process.isRunning || pids.contains(where: alive) {
            if ContinuousClock.now >= end { return false }
            usleep(10_000)
        }
        process.waitUntilExit()
        return true
    }

    /// True if `pid` exists and is not a zombie.
    private static func alive(_ pid: Int32) -> Bool {
        guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return false }
        let text = String(decoding: stat, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return false }
        return text[text.index(close, offsetBy: 2)...].first != "Z"
    }

    /// The pids of `pid`'s children, and of those and all their descendants (from /proc/*/stat).
    private static func descendants(of pid: Int32) -> (children: [Int32], all: [Int32]) {
        var parents: [Int32: Int32] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = Int32(entry), let stat = FileManager.default.contents(atPath: "/proc/\(entry)/stat") else { continue }
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let text = String(decoding: stat, as: UTF8.self)
            guard let close = text.lastIndex(of: ")") else { continue }
            let fields = text[text.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { parents[child] = parent }
        }
        let children = parents.filter { $0.value == pid }.map(\.key)
        var found = children, frontier = children
        while let next = frontier.popLast() {
            let more = parents.filter { $0.value == next }.map(\.key)
            found += more
            frontier += more
        }
        return (children, found)
    }

    /// True if a socket listens on ip:port now (/proc/net/tcp or tcp6, state 0A).
    private static func listening(_ ip: String, _ port: Int) -> Bool {
        var address = in_addr()
        let local: String
        if inet_pton(AF_INET, ip, &address) == 1 {
            // /proc/net/tcp prints the address as the host-order hex of its network-order word.
            local = String(format: "%08X:%04X", address.s_addr, port)
        } else {
            local = String(format: ":%04X", port)  // IPv6: match the port only
        }
        for table in ["tcp", "tcp6"] {
            guard let data = FileHandle(forReadingAtPath: "/proc/net/" + table)?.readDataToEndOfFile() else { continue }
            for row in String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst() {
                let columns = row.split(separator: " ")
                if columns.count > 3, columns[3] == "0A", columns[1].hasSuffix(local) { return true }
            }
        }
        return false
    }


    static func run(_ path: String, _ arguments: [String]) throws {
        _ = try output(path, arguments)
    }

    /// Runs a tool to its end; its standard output, trimmed. Throws if it exits non-zero.
    static func output(_ path: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ProxyServerError.failed("\(path) \(arguments.joined(separator: " ")): exit \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A TCP port that is free on `ip` now (bound and released): for a server a test starts there.
public func freePort(on ip: String) -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    inet_pton(AF_INET, ip, &address.sin_addr)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            _ = bind(fd, $0, length)
            _ = getsockname(fd, $0, &length)
        }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
