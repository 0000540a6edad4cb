import ArgumentParser
import Dispatch
import Foundation
import HotPool
import OriginControl
import Synchronization

/// `hotpool fetch`: requests through one pool, with live progress and a summary.
struct Fetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch URLs through one pool and report what happened.",
        discussion: """
            Sends -n GET requests, taking the URLs in turn, -c at a time, through one pool. On a terminal a \
            progress line shows requests done, req/s, errors and open connections (otherwise a line a second on \
            standard error). Then it prints a summary: statuses, latency percentiles, body bytes, connections \
            opened and destroyed by reason, and each IP's share. Ctrl-C stops sending, closes the pool (the \
            requests in flight fail) and prints the summary so far, with status 130 (a second Ctrl-C exits at once).

            Every answer counts as done, whatever its status; a request with no answer (refused, timed out, \
            bad certificate, malformed response) counts as failed, and makes the exit status 1.

            Examples:
              hotpool fetch --origin -n 200 -c 16 /item /big
              hotpool fetch --urls urls.txt -c 32 --profile firefox --out bodies
              hotpool fetch --resolve example.test:10.0.0.1,10.0.0.2 https://example.test/
            """)

    @Argument(help: ArgumentHelp("https URLs (with --origin, paths on the embedded origin such as /item/1).", valueName: "url"))
    var urls: [String] = []

    @Option(name: .customLong("urls"), help: ArgumentHelp("A file of URLs, one per line; # starts a comment.", valueName: "file"))
    var urlFile: String?

    @Option(name: .customShort("n"), help: ArgumentHelp("Requests in all (default: one per URL).", valueName: "count"))
    var count: Int?

    @Option(name: .customShort("c"), help: ArgumentHelp("Requests in flight at once.", valueName: "concurrency"))
    var concurrency = 8

    @OptionGroup var pool: PoolOptions

    @Option(name: .long, help: ArgumentHelp("Send every connection through this proxy (http://, https:// or socks5:// URL); repeat for several.",
                                            valueName: "url"))
    var proxy: [String] = []

    @Option(name: .long, help: ArgumentHelp("Use these IPs for a host instead of DNS, on any port (repeatable).",
                                            valueName: "host:ip[,ip...]"))
    var resolve: [String] = []

    @Flag(name: .long, help: "Start the embedded local TLS origin on 127.0.0.2-4, trust its CA, and take paths as its URLs.")
    var origin = false

    @Option(name: .long, help: ArgumentHelp("Write each response body to DIR/N.body (N = the request's number), and DIR/index.tsv.",
                                            valueName: "dir"))
    var out: String?

    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    func validate() throws {
        if concurrency < 1 { throw ValidationError("-c must be at least 1, got \(concurrency)") }
        if let count, count < 1 { throw ValidationError("-n must be at least 1, got \(count)") }
        if urls.isEmpty && urlFile == nil { throw ValidationError("give at least one URL, or --urls FILE") }
        for entry in resolve where Self.resolved(entry) == nil {
            throw ValidationError("--resolve \(entry): expected host:ip[,ip...] with IP literals")
        }
    }

    func run() async throws {
        // Ctrl-C from here on: one before the requests start waits in the stream for them.
        let (interrupts, interrupt) = AsyncStream.makeStream(of: Void.self)
        let interrupted = Atomic<Bool>(false)
        let signals = Self.onInterrupt {
            if interrupted.exchange(true, ordering: .relaxed) { _exit(ExitStatus.interrupted.rawValue) }
            interrupt.yield()
        }
        defer {
            signals.cancel()
            signal(SIGINT, SIG_DFL)
        }
        var configuration = try pool.configuration()
        do {
            configuration.proxies += try proxy.map { try Proxy($0) }
        } catch {
            throw badConfiguration("--proxy: \(error)")
        }
        let output = try out.map { (folder: $0, index: try Self.outputFolder($0)) }
        let embedded: Origin?
        do {
            embedded = origin ? try Origin() : nil
        } catch {
            printError("hotpool: cannot start the embedded origin: \(error)")
            throw ExitCode.failure
        }
        defer { embedded?.stop() }
        if let embedded { configuration.trustedCAFile = embedded.caFile }
        let targets = try readTargets(base: embedded.map { "https://\(Origin.hostName):\($0.port)" })
        let hotPool: HotConnPool
        do {
            hotPool = try HotConnPool(configuration: configuration)
        } catch {
            throw badConfiguration("\(error)")
        }
        if let embedded { hotPool.setAddresses(embedded.ips, forHost: Origin.hostName) }
        for (host, ips) in resolve.compactMap(Self.resolved) { hotPool.setAddresses(ips, forHost: host) }

        let run = FetchRun(pool: hotPool, targets: targets, count: count ?? targets.count, concurrency: concurrency, out: output)
        let hosts = Set(targets.map(\.host)).sorted()
        let work = Task { await run.start() }
        let progress = Task { await run.reportProgress() }
        // Ctrl-C: no more requests, the IPs' figures kept, then the pool closed, which fails the
        // requests in flight (a server may never answer them).
        let closer = Task { () -> [FetchSummary.Host]? in
            for await _ in interrupts {
                work.cancel()
                let table = await Self.ipTable(hotPool, hosts: hosts)
                try? await hotPool.close()
                return table
            }
            return nil
        }
        var summary = await work.value
        interrupt.finish()
        progress.cancel()
        await progress.value
        let tableAtInterrupt = await closer.value
        summary.interrupted = tableAtInterrupt != nil
        if let tableAtInterrupt {
            summary.hosts = tableAtInterrupt
        } else {
            summary.hosts = await Self.ipTable(hotPool, hosts: hosts)
        }
        var closeError: (any Error)?
        do {
            try await hotPool.close()
        } catch {
            closeError = error
        }
        summary.add(await hotPool.stats())
        print(json ? summary.json : summary.text)
        if let closeError { printError("hotpool: closing the pool: \(closeError)") }
        if summary.interrupted { throw ExitStatus.interrupted }
        if summary.failed > 0 || summary.unwrittenBodies > 0 || closeError != nil { throw ExitCode.failure }
    }

    /// Makes `folder` (and its parents) and its index.tsv, empty; a failure ends the command.
    private static func outputFolder(_ folder: String) throws -> FileHandle {
        let path = "\(folder)/index.tsv"
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: path, contents: nil), let index = FileHandle(forWritingAtPath: path) else {
                throw CocoaError(.fileWriteUnknown)
            }
            return index
        } catch {
            printError("hotpool: --out: cannot write \(path): \(error.localizedDescription)")
            throw ExitCode.failure
        }
    }

    /// The URLs to fetch, from the arguments and the file; a bad one ends the command with usage.
    private func readTargets(base: String?) throws -> [FetchTarget] {
        var lines = urls
        if let urlFile {
            guard let text = try? String(contentsOfFile: urlFile, encoding: .utf8) else {
                throw ValidationError("--urls \(urlFile): cannot read the file")
            }
            lines += text.split(whereSeparator: \.isNewline)
                .map { $0.prefix { $0 != "#" }.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
        }
        guard !lines.isEmpty else { throw ValidationError("no URLs to fetch") }
        return try lines.map { line in
            let url = base.map { line.hasPrefix("/") ? $0 + line : line } ?? line
            guard let target = FetchTarget(url) else {
                throw ValidationError("\(line): not an https URL with a host (such as https://example.com/path)")
            }
            return target
        }
    }

    /// `host:ip[,ip...]` as a host and its IPs (IPv4 or IPv6 literals).
    static func resolved(_ entry: String) -> (String, [String])? {
        guard let colon = entry.firstIndex(of: ":") else { return nil }
        let host = String(entry[..<colon])
        let ips = entry[entry.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return host.isEmpty || ips.isEmpty || !ips.allSatisfy(isIPLiteral) ? nil : (host, ips)
    }

    /// Whether `text` is an IPv4 or IPv6 address literal.
    private static func isIPLiteral(_ text: String) -> Bool {
        var address = in6_addr()  // room for either family
        return inet_pton(AF_INET, text, &address) == 1 || inet_pton(AF_INET6, text, &address) == 1
    }

    /// Runs `handler` on each SIGINT instead of the default (ending the process), until cancelled.
    static func onInterrupt(_ handler: @escaping @Sendable () -> Void) -> DispatchSourceSignal {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler(handler: handler)
        source.resume()
        return source
    }

    /// Each host's IPs as the pool counted them.
    static func ipTable(_ pool: HotConnPool, hosts: [String]) async -> [FetchSummary.Host] {
        var table: [FetchSummary.Host] = []
        for host in hosts {
            let ips = await pool.ipStats(forHost: host).sorted { $0.ip < $1.ip }.map { entry in
                FetchSummary.IP(ip: entry.ip, requests: entry.requests, failures: entry.failures,
                                state: entry.inRotation ? "in rotation" : entry.blacklistReason.map { "blacklisted (\($0))" } ?? "out of rotation")
            }
            table.append(FetchSummary.Host(host: host, ips: ips))
        }
        return table
    }
}

/// One URL to fetch.
struct FetchTarget: Sendable {
    let url: String
    let host: String
    let port: Int
    /// Path and query.
    let path: String

    /// `url` if it is https with a host and a valid port.
    init?(_ url: String) {
        guard let components = URLComponents(string: url), components.scheme?.lowercased() == "https",
              let host = components.host, !host.isEmpty, (1...65535).contains(components.port ?? 443)
        else { return nil }
        self.url = url
        // The pool takes an IPv6 literal bare.
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.port = components.port ?? 443
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        self.path = path + (components.percentEncodedQuery.map { "?" + $0 } ?? "")
    }

    var request: HTTPRequest {
        let name = host.contains(":") ? "[\(host)]" : host  // an IPv6 literal
        return HTTPRequest(method: .get, scheme: "https", authority: port == 443 ? name : "\(name):\(port)", path: path)
    }
}
