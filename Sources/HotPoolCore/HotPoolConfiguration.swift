import Glibc
import HTTPTypes
import Logging

/// How a `HotConnPool` behaves. The defaults are the seed system's `DefaultPoolConfig`.
/// `HotConnPool.init` validates it and throws `HotPoolError.invalidConfiguration` for values
/// that cannot work (zero or negative limits, durations under a nanosecond). A duration too long
/// for the clock (up to `.seconds(Int64.max)`) means "never".
public struct HotPoolConfiguration: Sendable {
    /// Open connections (idle + leased + dialing) across all hosts; at most `maxConnectionsLimit`.
    public var maxConnections: Int = 100
    /// Open connections per host (name and port).
    public var maxConnectionsPerHost: Int = 10
    /// Idle connections kept across all hosts; a connection returned beyond it is closed.
    public var maxIdleConnections: Int = 20
    /// Bound on one dial: TCP connect plus TLS handshake. A caller that waited for a connection
    /// still gets this whole time for its dial, within what is left of `acquireTimeout`.
    public var connectTimeout: Duration = .seconds(30)
    /// Bound on a whole `getConnection`: waiting for a connection, dials and their retries.
    public var acquireTimeout: Duration = .seconds(60)
    /// Which idle connection a get takes: the most recently returned (`.lifo`, the default, so
    /// connections beyond what the load needs age out), or the longest idle (`.fifo`).
    public var idleOrder: IdleOrder = .lifo
    /// An idle connection unused this long is closed by the cleanup.
    public var idleTimeout: Duration = .seconds(60)
    /// A connection older than this is closed: at once when idle, on return when leased.
    public var maxLifetime: Duration = .seconds(300)
    /// Bound on the validation request of `getConnection(validating:)`.
    public var validationTimeout: Duration = .seconds(10)
    /// How often idle connections are health-checked (when `healthCheckPath` is set, or
    /// `pingsIdleHTTP2Connections`): each idle connection unused and unchecked for this long is probed.
    public var healthCheckInterval: Duration = .seconds(30)
    /// How often idle and expired connections are swept.
    public var cleanupInterval: Duration = .seconds(60)
    /// How often the recovery pass runs: each blacklisted IP whose time is up is dialed (and
    /// probed with `healthCheckPath`, if set) and returns to rotation only if that succeeds;
    /// otherwise it stays out twice as long, at most `maxBlacklistTime`.
    public var blacklistCheckInterval: Duration = .seconds(300)
    /// How long a 403 (to a validation or health check), or `blockSignals`, keeps an IP out of
    /// rotation for its host before its recovery probe; also the step of failure ejections (the
    /// n-th lasts n times this).
    public var blacklistTimeout: Duration = .seconds(300)
    /// The longest any blacklisting lasts before its next recovery probe.
    public var maxBlacklistTime: Duration = .seconds(3600)
    /// Block signals from ordinary traffic: with a policy, answers with its statuses (403 and 429
    /// by default) to any request count against their IP, and `threshold` of them within its
    /// `window` blacklist the IP for its host as a 403 to a validation does (`.blocked`, not
    /// limited by `maxEjectedShare`). nil (the default) = no answer to a caller's request counts.
    public var blockSignals: BlockSignalPolicy?
    /// Network or TLS failures in a row (failed dials and round trips; an answered request resets
    /// the count; a dial that failed for want of a local address, or because its caller's own
    /// acquire time ran out, does not count) after which an IP is ejected for its host, as
    /// Envoy's outlier detection does.
    public var consecutiveFailuresToEject: Int = 5
    /// The largest share of a host's IPs ejected for failures at once (0...1). A host with one
    /// IP never has it ejected at 0.5; 403 blacklisting and `blockSignals` are not limited by it.
    public var maxEjectedShare: Double = 0.5
    /// How often host names are resolved again: new IPs join the rotation, IPs no longer given
    /// take no new connections (their idle ones are closed, `addressRemoved`), and a failed
    /// lookup keeps the last good set.
    public var dnsUpdateInterval: Duration = .seconds(1800)
    /// DNS servers as "ip", "ip:port" or "[ipv6]:port"; empty = the system's configuration
    /// (/etc/resolv.conf, and /etc/hosts first).
    public var dnsServers: [String] = []
    /// The most addresses a host takes from one DNS answer: the first ones in the server's
    /// order, repeats left out. The rest are ignored (no record, no connection), which bounds
    /// what a server answering with thousands of records costs.
    public var maxAddressesPerLookup: Int = 64
    /// Idle connections kept ready per host the pool has served (every host a get, `prewarm` or
    /// `refreshAddresses` asked for that has addresses: set, a literal, or a lookup that
    /// answered): re-dialed as connections are leased, expire or are destroyed (those the server
    /// closed, and failed dials, at the next cleanup, so a server that drops every connection is
    /// not re-dialed in a loop), within every limit, and kept past `idleTimeout`; paused while
    /// all of a host's IPs are blacklisted. Above 0, the record of every host served (with its
    /// IP records) is kept while the pool is open, never reclaimed after `idleTimeout`: memory
    /// grows with the number of hosts served. 0 = none.
    public var minIdlePerHost: Int = 0
    /// Further IPs tried by `getConnection(validating:)` and after failed dials.
    public var maxRetries: Int = 3
    /// How `execute` runs a request again after a transient answer or failure, for calls that
    /// give no policy of their own; nil = never (the default).
    public var retryPolicy: RetryPolicy?
    /// PEM file of trusted CAs; nil = the system trust store.
    public var trustedCAFile: String?
    /// The ClientHello and request headers every connection presents.
    public var profile: FingerprintProfile = .chrome
    /// When not empty, new connections take these profiles in turn instead of `profile`.
    public var rotatingProfiles: [FingerprintProfile] = []
    /// TLS sessions kept for resumption (one per host, port, IP, local address and profile whose
    /// spec `resumesSessions`); past it the oldest goes. 0 = no connection resumes.
    public var sessionCacheCapacity: Int = 1024
    /// The HTTP versions connections may speak: a profile's ALPN names for versions not listed
    /// are left out of its ClientHello, and the server picks among the rest (no pick = HTTP/1.1).
    /// The presets offer `h2` then `http/1.1`, as browsers do.
    public var httpVersions: Set<HTTPProtocolVersion> = [.http2, .http1_1]
    /// The most callers an HTTP/2 connection is leased to at once, one per stream; the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS lowers it. An HTTP/1.1 connection has one caller at a time.
    public var maxStreamsPerConnection: Int = 100

    /// The path idle connections are health-checked with: `GET` must be answered 2xx or 3xx
    /// within `validationTimeout`, or the connection is destroyed (`healthCheckFailed`; a 403 also
    /// blacklists its IP for the host). The connection is out of the idle list while checked, so
    /// no caller gets it meanwhile. nil = no probe requests (idle connections are still watched
    /// for the server closing them).
    public var healthCheckPath: String?
    /// Idle HTTP/2 connections are health-checked with a PING instead (cheap: no request, nothing
    /// logged by the server), even when `healthCheckPath` is nil: no acknowledgement within
    /// `validationTimeout` destroys the connection (`healthCheckFailed`). HTTP/1.1 connections are
    /// checked with `healthCheckPath` as before; recovery probes still send it.
    public var pingsIdleHTTP2Connections = false

    /// Bound on one request/response exchange on a pooled connection.
    public var requestTimeout: Duration = .seconds(30)
    /// Largest response head accepted.
    public var maxResponseHeaderBytes: Int = 64 * 1024
    /// Largest response body accepted (`Int.max`: no limit). Bytes are held as they arrive (a
    /// Content-Length reserves nothing up front); an HTTP/2 connection holds at most about twice
    /// this plus one stream window (the profile's SETTINGS_INITIAL_WINDOW_SIZE) per other open
    /// stream of bodies at once (see docs/limits.md).
    public var maxResponseBodyBytes: Int = 64 * 1024 * 1024
    /// How many times the bytes that came a decoded body may grow (once it is past 1 MiB, below
    /// which any ratio passes): past it, the response fails with `decompressionRatioExceeded`
    /// (an HTTP/1.1 connection is closed, an HTTP/2 stream reset). Real content shrinks 3 to 30
    /// times; a decompression bomb, a thousand and more. At least 1.
    public var maxDecompressionRatio: Int = 100
    /// A body that runs to the connection's close (HTTP/1.x, neither Content-Length nor chunked)
    /// counts as complete only if the server ended its TLS stream with close_notify: a bare TCP
    /// FIN fails the request with `unexpectedEOF` (as curl does). Off by default, as in browsers:
    /// such a body is returned, with `HotResponse.bodyEndedWithoutCloseNotify` set.
    public var closeDelimitedBodyRequiresCloseNotify = false
    /// Most header fields accepted in one response head; at most `maxResponseHeaderFieldsLimit`.
    public var maxResponseHeaderFields: Int = 1000
    /// A connection leased longer than this is reported in the log (a likely missing put).
    public var leaseWarningAfter: Duration = .seconds(60)
    /// Local addresses (IPv4 and/or IPv6 literals) outgoing connections are bound to, in turn
    /// per dial among those of the target's family; one that fails to bind is skipped (and
    /// logged), and the dial fails with `localAddressUnavailable` if none binds. Empty, or none
    /// of the family = chosen by the system.
    public var localAddresses: [String] = []
    /// The proxies every connection goes through, unless `setProxies(_:forHost:)` gave its host
    /// its own list; empty = connections go to the target directly. A dial takes one in rotation
    /// (`proxySelection`), skipping those ejected for failures.
    public var proxies: [Proxy] = []
    /// How a dial picks among the proxies of its host.
    public var proxySelection: ProxySelection = .roundRobin
    /// Where lifecycle events (connect, destroy with reason, lease warnings) are logged.
    public var logger: Logger = Logger(label: "HotPool")
    /// The reactor's I/O backend: io_uring where available (`.automatic`), or one of them by name.
    public var ioBackend: IOBackendChoice = .automatic
    /// How many reactor threads the pool runs (`.perCore`: one per online core). Each owns its
    /// part of the pool, with its own connections, limits, TLS contexts and I/O backend, and
    /// nothing is shared or locked between them. `maxConnections`, `maxIdleConnections` and
    /// `sessionCacheCapacity` are split between them (each gets limit / N, the first
    /// limit % N one more), so the pool's totals hold; the per-host limits are each reactor's
    /// own, see `reactorSelection`.
    public var reactors: ReactorCount = 1
    /// Which reactor serves a call made off the pool's reactors (a call on one is served there).
    public var reactorSelection: ReactorSelection = .byHost

    /// The seed's defaults.
    public init() {}

    /// The largest `maxConnections` a pool takes.
    public static let maxConnectionsLimit = 1 << 24
    /// The largest `maxResponseHeaderFields` a pool takes (well below what `HTTPFields` holds).
    public static let maxResponseHeaderFieldsLimit = 10_000

    /// The parser's limits.
    package var responseLimits: ResponseLimits {
        ResponseLimits(maxHeaderBytes: maxResponseHeaderBytes, maxHeaderFields: maxResponseHeaderFields,
                       maxBodyBytes: maxResponseBodyBytes, maxDecompressionRatio: maxDecompressionRatio)
    }

    /// The profiles connections take in turn, offering only the ALPN names of `httpVersions`.
    package var profiles: [FingerprintSpec] {
        (rotatingProfiles.isEmpty ? [profile] : rotatingProfiles).map { profile in
            var spec = profile.spec
            spec.alpn.removeAll { name in HTTPProtocolVersion(rawValue: name).map { !httpVersions.contains($0) } ?? false }
            return spec
        }
    }

    package func validate() throws(HotPoolError) {
        func positive(_ value: Int, _ name: String) throws(HotPoolError) {
            if value <= 0 { throw .invalidConfiguration("\(name) must be > 0, got \(value)") }
        }
        func positive(_ value: Duration, _ name: String) throws(HotPoolError) {
            // Deadlines count whole nanoseconds: less would be a zero interval, a timer that
            // re-arms itself at the same instant for ever.
            if value < .nanoseconds(1) { throw .invalidConfiguration("\(name) must be at least 1 ns, got \(value)") }
        }
        try positive(maxConnections, "maxConnections")
        // The connection table reserves a slot per connection up front (untouched pages cost no memory).
        if maxConnections > Self.maxConnectionsLimit {
            throw .invalidConfiguration("maxConnections must be <= \(Self.maxConnectionsLimit), got \(maxConnections)")
        }
        try positive(maxConnectionsPerHost, "maxConnectionsPerHost")
        try positive(maxResponseHeaderBytes, "maxResponseHeaderBytes")
        try positive(maxResponseBodyBytes, "maxResponseBodyBytes")
        try positive(maxDecompressionRatio, "maxDecompressionRatio")
        try positive(maxResponseHeaderFields, "maxResponseHeaderFields")
        if maxResponseHeaderFields > Self.maxResponseHeaderFieldsLimit {
            throw .invalidConfiguration(
                "maxResponseHeaderFields must be <= \(Self.maxResponseHeaderFieldsLimit), got \(maxResponseHeaderFields)")
        }
        if maxIdleConnections < 0 { throw .invalidConfiguration("maxIdleConnections must be >= 0") }
        if maxRetries < 0 { throw .invalidConfiguration("maxRetries must be >= 0") }
        if let problem = retryPolicy?.problem { throw .invalidConfiguration(problem) }
        if sessionCacheCapacity < 0 { throw .invalidConfiguration("sessionCacheCapacity must be >= 0") }
        if minIdlePerHost < 0 { throw .invalidConfiguration("minIdlePerHost must be >= 0") }
        try positive(consecutiveFailuresToEject, "consecutiveFailuresToEject")
        if !(0...1).contains(maxEjectedShare) { throw .invalidConfiguration("maxEjectedShare must be within 0...1, got \(maxEjectedShare)") }
        try positive(blacklistTimeout, "blacklistTimeout")
        try positive(maxBlacklistTime, "maxBlacklistTime")
        try blockSignals?.validate()
        try positive(maxAddressesPerLookup, "maxAddressesPerLookup")
        for server in dnsServers where !isValidDNSServer(server) {
            throw .invalidConfiguration("dnsServers: \(server) is not ip, ip:port or [ipv6]:port")
        }
        try positive(connectTimeout, "connectTimeout")
        try positive(acquireTimeout, "acquireTimeout")
        try positive(idleTimeout, "idleTimeout")
        try positive(maxLifetime, "maxLifetime")
        try positive(validationTimeout, "validationTimeout")
        try positive(healthCheckInterval, "healthCheckInterval")
        try positive(cleanupInterval, "cleanupInterval")
        try positive(blacklistCheckInterval, "blacklistCheckInterval")
        try positive(dnsUpdateInterval, "dnsUpdateInterval")
        try positive(requestTimeout, "requestTimeout")
        try positive(leaseWarningAfter, "leaseWarningAfter")
        if rotatingProfiles.count > 255 { throw .invalidConfiguration("at most 255 rotating profiles") }
        for spec in profiles {
            if spec.acceptLanguages.count > 255 { throw .invalidConfiguration("profile \(spec.name): at most 255 Accept-Language values") }
            for header in spec.headers where HTTPField.Name(header.name) == nil || !HTTPField.isValidValue(header.value) {
                throw .invalidConfiguration("profile \(spec.name): invalid header \(header.name)")
            }
            for header in spec.headers + spec.http2.headers where HTTPField.Name(header.name).map(ProfileHeader.framingFields.contains) == true {
                throw .invalidConfiguration("profile \(spec.name): \(header.name) frames each request and is set by the pool")
            }
            try spec.http2.validate(in: "profile \(spec.name)")
        }
        if let healthCheckPath, !healthCheckPath.hasPrefix("/") || healthCheckPath.contains(where: \.isWhitespace) {
            throw .invalidConfiguration("healthCheckPath must be a path starting with /, got \(healthCheckPath)")
        }
        for address in localAddresses where ipFamily(address) == 0 {
            throw .invalidConfiguration("localAddresses must be IP literals, got \(address)")
        }
        if httpVersions.isEmpty { throw .invalidConfiguration("httpVersions must not be empty") }
        if Set(proxies).count != proxies.count { throw .invalidConfiguration("proxies: a proxy is listed twice") }
        try positive(maxStreamsPerConnection, "maxStreamsPerConnection")
        let reactorCount = reactors.resolved
        if !(1...ReactorCount.limit).contains(reactorCount) {
            throw .invalidConfiguration("reactors must be within 1...\(ReactorCount.limit), got \(reactorCount)")
        }
        // Every reactor needs a connection of its own to do anything.
        if maxConnections < reactorCount {
            throw .invalidConfiguration("maxConnections (\(maxConnections)) must be at least reactors (\(reactorCount))")
        }
        if maxIdleConnections != 0 && maxIdleConnections < reactorCount {
            throw .invalidConfiguration("maxIdleConnections (\(maxIdleConnections)) must be 0 or at least reactors (\(reactorCount))")
        }
        if reactorSelection == .perCall && maxConnectionsPerHost < reactorCount {
            throw .invalidConfiguration(
                "maxConnectionsPerHost (\(maxConnectionsPerHost)) must be at least reactors (\(reactorCount)) with reactorSelection .perCall")
        }
    }

    /// The configuration reactor `index` of `count` runs: its share of the pool-wide limits (and,
    /// with `.perCall`, of the per-host ones), the shares adding up to the whole.
    package func share(forReactor index: Int, of count: Int) -> HotPoolConfiguration {
        func share(_ limit: Int) -> Int { reactorShare(of: limit, forReactor: index, of: count) }
        var part = self
        part.maxConnections = share(maxConnections)
        part.maxIdleConnections = share(maxIdleConnections)
        part.sessionCacheCapacity = share(sessionCacheCapacity)
        if reactorSelection == .perCall {
            part.maxConnectionsPerHost = share(maxConnectionsPerHost)
            part.minIdlePerHost = share(minIdlePerHost)
        }
        return part
    }
}

/// Reactor `index`'s part of `whole` split between `count` reactors: whole / count, and one more
/// for the first whole % count of them, so the parts add up to the whole.
package func reactorShare(of whole: Int, forReactor index: Int, of count: Int) -> Int {
    whole / count + (index < whole % count ? 1 : 0)
}

/// How many reactor threads a pool runs: a number (`reactors = 4`) or `.perCore`.
public struct ReactorCount: Sendable, Hashable, ExpressibleByIntegerLiteral {
    /// The count asked for; nil = one per online core.
    private let fixed: Int?

    /// The most reactors a pool takes.
    public static let limit = 1024
    /// One reactor per online core, as the system counts them when the pool is made.
    public static let perCore = ReactorCount(fixed: nil)

    private init(fixed: Int?) { self.fixed = fixed }

    /// `count` reactors.
    public init(_ count: Int) { self.fixed = count }

    /// `count` reactors.
    public init(integerLiteral count: Int) { self.fixed = count }

    /// How many reactors this is on this machine now.
    public var resolved: Int { fixed ?? max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

/// Which reactor serves a call made off the pool's reactors (`HotPoolConfiguration.reactorSelection`).
/// A call made on a reactor (a task on one of `HotConnPool.executors`) is always served by that
/// reactor, with its own connections and no thread hop.
public enum ReactorSelection: Sendable, Hashable {
    /// The host's home reactor, fixed by a hash of its name: a host's connections, waiters and IP
    /// ledger live in one place, and the per-host limits (`maxConnectionsPerHost`,
    /// `minIdlePerHost`) hold as given, unless tasks on several reactors call the same host (each
    /// of those reactors then keeps up to the limits for it; `HotConnPool.executor(forHost:)`
    /// names the home, to keep a host's callers there).
    case byHost
    /// Each call to the next reactor in turn, so one very busy host uses them all. Each reactor
    /// then holds its share of the host's limits: `maxConnectionsPerHost` and `minIdlePerHost`
    /// are split as the pool-wide limits are (limit / N each, the first limit % N one more).
    case perCall
}

/// Which idle connection of a host a get takes.
public enum IdleOrder: Sendable {
    /// The most recently returned: the pool's extra connections age out under light load.
    case lifo
    /// The longest idle: every connection is used in turn.
    case fifo
}

/// True for a DNS server entry as c-ares takes it: "ip", "ip:port" or "[ipv6]:port".
func isValidDNSServer(_ entry: String) -> Bool {
    if ipFamily(entry) != 0 { return true }
    guard let colon = entry.lastIndex(of: ":"), let port = Int(entry[entry.index(after: colon)...]),
          (1...65535).contains(port) else { return false }
    let ip = entry[..<colon]
    if ip.hasPrefix("[") && ip.hasSuffix("]") { return ipFamily(String(ip.dropFirst().dropLast())) == 6 }
    return ipFamily(String(ip)) == 4
}

/// Which I/O backend a pool's reactor uses.
public enum IOBackendChoice: Sendable, Hashable {
    /// io_uring where the kernel and the sandbox allow it, else epoll (logged once, with the reason).
    case automatic
    /// epoll: readiness, and the system call done when the fd is ready.
    case epoll
    /// io_uring; a pool's `init` fails with `HotPoolError.invalidConfiguration` where it is unavailable.
    case ioUring
}
