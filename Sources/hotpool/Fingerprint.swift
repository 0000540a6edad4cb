import ArgumentParser
import Foundation
import HotPool
import OriginControl

/// `hotpool fingerprint`: what a server sees of the pool's connections.
struct Fingerprint: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a server sees of a preset: JA3, JA4, JA4_r, the Akamai HTTP/2 string, the header order.",
        discussion: """
            Starts the embedded local TLS origin on 127.0.0.2, connects to it once with the preset (and any \
            --config), sends GET /, and prints the fingerprints the origin computed from the ClientHello and \
            the HTTP/2 frames it received. The Akamai string is empty over HTTP/1.1 (--http1).
            """)

    @OptionGroup var pool: PoolOptions

    @Flag(help: "Print one JSON object instead of lines.")
    var json = false

    /// What the origin saw, as printed.
    struct Seen: Codable {
        var profile: String
        var httpVersion: String
        var ja3: String
        var ja3Hash: String
        var ja4: String
        var ja4R: String
        var akamai: String
        var headerOrder: [String]
    }

    func run() async throws {
        var configuration = try pool.configuration()
        let origin = try Origin(ips: ["127.0.0.2"])
        defer { origin.stop() }
        if configuration.httpVersions.contains(.http2) { try await origin.setTLSMode("h2") }
        configuration.trustedCAFile = origin.caFile
        let hotPool: HotConnPool
        do {
            hotPool = try origin.pool(configuration)
        } catch {
            throw badConfiguration("\(error)")
        }
        do {
            let version = try await hotPool.withConnection(host: Origin.hostName, port: origin.port) { connection in
                _ = try await connection.roundTrip(HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: "/"))
                return connection.httpVersion
            }
            try await hotPool.close()
            let ip = origin.ips[0]
            let hellos = try await origin.send(["cmd": "hellos", "ip": ip, "last": 1]).object["hellos"] as? [[String: Any]]
            guard let hello = hellos?.last else { throw OriginError.noReply("the origin saw no ClientHello") }
            let request = try await origin.recentRequests(ip: ip, last: 1).last
            let seen = Seen(
                profile: (configuration.rotatingProfiles.first ?? configuration.profile).name, httpVersion: version.rawValue,
                ja3: hello["ja3"] as? String ?? "", ja3Hash: hello["ja3_hash"] as? String ?? "",
                ja4: hello["ja4"] as? String ?? "", ja4R: hello["ja4_r"] as? String ?? "",
                akamai: version == .http2 ? try await origin.akamai(ip: ip) : "",
                headerOrder: request?.headers.map(\.name) ?? [])
            print(json ? jsonText(seen) : Self.lines(seen))
        } catch {
            try? await hotPool.close()
            printError("hotpool: fingerprint failed: \(error)")
            throw ExitCode.failure
        }
    }

    /// What the origin saw, one field a line.
    static func lines(_ seen: Seen) -> String {
        """
        profile       \(seen.profile) over \(seen.httpVersion)
        JA3           \(seen.ja3)
        JA3 hash      \(seen.ja3Hash)
        JA4           \(seen.ja4)
        JA4_r         \(seen.ja4R)
        Akamai HTTP/2 \(seen.akamai.isEmpty ? "(none: HTTP/1.1)" : seen.akamai)
        header order  \(seen.headerOrder.joined(separator: ", "))
        """
    }
}
