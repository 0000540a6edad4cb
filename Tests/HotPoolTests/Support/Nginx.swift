import Foundation
import OriginControl

/// A real nginx (OpenSSL) on a loopback IP, with its own throwaway CA, started and stopped by a
/// test. Answers every path with 200 and a short body over TLS with keep-alive, and `/tls` with
/// what the handshake was: protocol, key exchange group, and `r` when resumed (`.` when not).
///
/// nginx runs in the foreground as this process's child: a daemonizing nginx would inherit the
/// socket Foundation's `Process` watches for the child's exit, and `waitUntilExit` would hang.
final class Nginx {
    let ip: String
    let port: Int
    let hostName = "nginx.hotpool.test"
    let caFile: String
    private let prefix: String
    private let server = Process()

    /// nginx on `ip`, offering `protocols` (nginx's `ssl_protocols`) and, if given, only the key
    /// exchange groups `curves` (its `ssl_ecdh_curve`).
    init(ip: String = "127.0.0.9", http2: Bool = true, protocols: String = "TLSv1.2 TLSv1.3", curves: String? = nil) throws {
        self.ip = ip
        prefix = NSTemporaryDirectory() + "hotpool-nginx-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: prefix + "/logs", withIntermediateDirectories: true)
        caFile = prefix + "/ca.pem"
        try Self.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", prefix + "/ca.key", "-out", caFile, "-days", "2", "-subj", "/CN=HotPool nginx test CA"])
        try Self.run("/usr/bin/openssl", ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", prefix + "/server.key", "-out", prefix + "/server.csr", "-subj", "/CN=\(hostName)"])
        try "subjectAltName=DNS:\(hostName)\n".write(toFile: prefix + "/ext.cnf", atomically: true, encoding: .utf8)
        try Self.run("/usr/bin/openssl", ["x509", "-req", "-in", prefix + "/server.csr", "-CA", caFile, "-CAkey", prefix + "/ca.key",
            "-CAcreateserial", "-out", prefix + "/server.pem", "-days", "2", "-extfile", prefix + "/ext.cnf"])
        port = freePort(on: ip)
        let config = """
            daemon off;
            pid \(prefix)/nginx.pid;
            error_log \(prefix)/logs/error.log;
            worker_processes 1;
            events { worker_connections 256; }
            http {
                access_log off;
                client_body_temp_path \(prefix)/tmp;
                server {
                    listen \(ip):\(port) ssl\(http2 ? " http2" : "");
                    server_name \(hostName);
                    ssl_certificate \(prefix)/server.pem;
                    ssl_certificate_key \(prefix)/server.key;
                    ssl_protocols \(protocols);
                    ssl_session_cache shared:hotpool:1m;  # TLS 1.2 resumes by session ID too
                    \(curves.map { "ssl_ecdh_curve \($0);" } ?? "")
                    keepalive_requests 100000;
                    location / { return 200 "nginx ok"; }
                    location /tls { return 200 "$ssl_protocol $ssl_curve $ssl_session_reused"; }
                }
            }
            """
        try config.write(toFile: prefix + "/nginx.conf", atomically: true, encoding: .utf8)
        server.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        server.arguments = ["-p", prefix, "-c", prefix + "/nginx.conf"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        // Bounded wait (5 s) until it accepts connections.
        var attempts = 0
        while !Self.accepts(ip, port) {
            attempts += 1
            guard server.isRunning, attempts < 250 else {
                stop()
                throw NginxError.failed("nginx did not listen on \(ip):\(port)")
            }
            usleep(20_000)
        }
    }

    /// Stops nginx (SIGTERM: the master ends its workers, then itself) and removes its files.
    func stop() {
        if server.isRunning {
            server.terminate()
            server.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: prefix)
    }

    /// True if a TCP connect to ip:port succeeds now.
    private static func accepts(_ ip: String, _ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, ip, &address.sin_addr)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    private static func run(_ path: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NginxError.failed("\(path) \(arguments.joined(separator: " ")): exit \(process.terminationStatus)")
        }
    }
}

enum NginxError: Error {
    case failed(String)
}
