import HTTPTypes

/// When and how `HotConnPool.execute` runs a request again. Off unless given (per call, or as
/// `HotPoolConfiguration.retryPolicy`).
///
/// An attempt is retried when its method is in `methods` and either it was answered with a status
/// in `statuses`, or, with `retriesTransportFailures`, it failed on the way (a network or TLS
/// error, the connection closed or the HTTP/2 stream reset before the whole answer, the request's
/// `timeout` or `bodyTimeout`). A method outside `methods` is never retried: the pool cannot always tell whether the
/// server processed it. (A request an HTTP/2 server refused unprocessed after a GOAWAY is run once
/// more whatever its method, with or without a policy, as before: that is not an attempt.)
///
/// Before each further attempt the connection of the last one has been returned (or destroyed),
/// and the pool waits `delay(beforeAttempt:retryAfter:random:)` on its reactor's timers, holding no
/// connection and blocking nothing; the next attempt goes to another IP of the host when one is in
/// rotation. Each attempt has the whole request `timeout` (and `bodyTimeout`) and `acquireTimeout`; the caller gets
/// the last attempt's answer (a 429 if every attempt got one) or its error. Cancelling the caller's
/// task during a wait ends it with `cancelled`.
public struct RetryPolicy: Sendable, Equatable {
    /// Methods that mean the same done twice as once (RFC 9110, 9.2.2): GET, HEAD, OPTIONS, PUT,
    /// DELETE, TRACE.
    public static let idempotentMethods: Set<HTTPRequest.Method> = [.get, .head, .options, .put, .delete, .trace]
    /// Statuses that say "try again later": 429 Too Many Requests, 502 Bad Gateway, 503 Service
    /// Unavailable, 504 Gateway Timeout.
    public static let transientStatuses: Set<Int> = [429, 502, 503, 504]
    /// The default `maxAttempts`: the first and two retries.
    public static let defaultMaxAttempts = 3
    /// The default `baseDelay`.
    public static let defaultBaseDelay = Duration.milliseconds(100)
    /// The default `maxDelay`.
    public static let defaultMaxDelay = Duration.seconds(10)
    /// The default `jitter`: up to a fifth of each backoff taken off at random.
    public static let defaultJitter = 0.2
    /// The default `maxRetryAfter`.
    public static let defaultMaxRetryAfter = Duration.seconds(30)

    /// Attempts in all, the first included (at least 1; 1 = no retry).
    public var maxAttempts: Int
    /// The methods retried (default `idempotentMethods`).
    public var methods: Set<HTTPRequest.Method>
    /// The statuses retried (default `transientStatuses`; each within 100...599).
    public var statuses: Set<Int>
    /// Attempts that failed before a whole answer (network, TLS, connection closed, stream reset,
    /// the request's timeouts) are retried too (default true; still only for `methods`).
    public var retriesTransportFailures: Bool
    /// The wait before the second attempt; it doubles for each attempt after, up to `maxDelay`.
    public var baseDelay: Duration
    /// The longest backoff (before `Retry-After`, which `maxRetryAfter` bounds).
    public var maxDelay: Duration
    /// The share of each backoff taken off at random (0...1): with 0.2, a wait of 1 s is between
    /// 0.8 s and 1 s, so callers that failed together do not retry together.
    public var jitter: Double
    /// A `Retry-After` field on a retried answer (delay-seconds or an HTTP-date) sets the least
    /// wait before the next attempt (default true).
    public var honoursRetryAfter: Bool
    /// The most a `Retry-After` may make the pool wait: a longer one is cut to this (the next
    /// attempt may then get the same answer, which is returned if it is the last).
    public var maxRetryAfter: Duration

    /// A policy; every argument has the default its property documents.
    public init(
        maxAttempts: Int = defaultMaxAttempts, methods: Set<HTTPRequest.Method> = idempotentMethods,
        statuses: Set<Int> = transientStatuses, retriesTransportFailures: Bool = true,
        baseDelay: Duration = defaultBaseDelay, maxDelay: Duration = defaultMaxDelay, jitter: Double = defaultJitter,
        honoursRetryAfter: Bool = true, maxRetryAfter: Duration = defaultMaxRetryAfter
    ) {
        (self.maxAttempts, self.methods, self.statuses) = (maxAttempts, methods, statuses)
        self.retriesTransportFailures = retriesTransportFailures
        (self.baseDelay, self.maxDelay, self.jitter) = (baseDelay, maxDelay, jitter)
        (self.honoursRetryAfter, self.maxRetryAfter) = (honoursRetryAfter, maxRetryAfter)
    }

    /// What makes the policy unusable, nil if nothing does.
    package var problem: String? {
        if maxAttempts < 1 { return "retry maxAttempts must be >= 1, got \(maxAttempts)" }
        if let status = statuses.first(where: { !(100...599).contains($0) }) { return "retry statuses: \(status) is not within 100...599" }
        if baseDelay < .zero { return "retry baseDelay must be >= 0, got \(baseDelay)" }
        if maxDelay < baseDelay { return "retry maxDelay must be >= baseDelay, got \(maxDelay)" }
        if !(0...1).contains(jitter) { return "retry jitter must be within 0...1, got \(jitter)" }
        if maxRetryAfter < .zero { return "retry maxRetryAfter must be >= 0, got \(maxRetryAfter)" }
        return nil
    }

    /// True if an attempt of `method` that ended with `result` is one this policy runs again
    /// (attempts left aside).
    package func retries(_ method: HTTPRequest.Method, after result: Result<HotResponse, HotPoolError>) -> Bool {
        guard methods.contains(method) else { return false }
        switch result {
        case .success(let response): return statuses.contains(response.head.status.code)
        case .failure(let error): return retriesTransportFailures && error.isTransportFailure
        }
    }

    /// The wait before attempt `attempt` (2 for the first retry): `baseDelay` doubled for each
    /// attempt after the second, at most `maxDelay`, less up to `jitter` of it as `random` (in
    /// 0..<1) says; then at least `retryAfter` (cut to `maxRetryAfter`) when `honoursRetryAfter`.
    public func delay(beforeAttempt attempt: Int, retryAfter: Duration?, random: Double) -> Duration {
        let doublings = max(0, attempt - 2)
        let base = baseDelay.nanoseconds, cap = maxDelay.nanoseconds
        // Doubling past the cap (or past Int64) stops at the cap.
        let backoff = doublings >= Int64.bitWidth - 1 || base > cap >> doublings ? cap : base << doublings
        let taken = Double(backoff) * jitter * min(max(random, 0), 1)
        // Below Double(backoff) (at most 2^63), so it converts; at or past it, nothing is left.
        let jittered = taken < Double(backoff) ? backoff - Int64(taken) : 0
        guard honoursRetryAfter, let retryAfter else { return .nanoseconds(jittered) }
        return .nanoseconds(max(jittered, min(max(retryAfter.nanoseconds, 0), maxRetryAfter.nanoseconds)))
    }

    /// The wait a `Retry-After` field value asks for: delay-seconds ("120"), or an HTTP-date
    /// (RFC 9110 5.6.7: IMF-fixdate, or the obsolete RFC 850 and asctime forms) less `now`
    /// (seconds since 1970, UTC), zero for a date past. Nil for anything else (a negative or
    /// fractional number, garbage). A delay-seconds too large for the clock is the longest
    /// `Duration` it holds, which `maxRetryAfter` cuts.
    public static func retryAfter(_ value: String, now: Int64) -> Duration? {
        let value = value.trimmingWhitespace()
        if !value.isEmpty, value.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
            return .seconds(Int64(value) ?? .max)
        }
        guard let date = httpDate(value) else { return nil }
        return .seconds(max(0, date - now))
    }

    /// Seconds since 1970 (UTC) of an HTTP-date, nil if `text` is not one.
    static func httpDate(_ text: Substring) -> Int64? {
        let parts = text.split(separator: " ")
        // IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT"; RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT";
        // asctime "Sun Nov  6 08:49:37 1994".
        let day: Substring, month: Substring, year: Substring, time: Substring
        switch parts.count {
        case 6 where parts[0].hasSuffix(",") && parts[5] == "GMT":
            (day, month, year, time) = (parts[1], parts[2], parts[3], parts[4])
        case 4 where parts[0].hasSuffix(",") && parts[3] == "GMT":
            let date = parts[1].split(separator: "-", omittingEmptySubsequences: false)
            guard date.count == 3, date[2].count == 2, let short = Int(date[2]) else { return nil }
            // A two-digit year below 70 is 20xx (RFC 850 dates are from 1970 on).
            (day, month, year, time) = (date[0], date[1], Substring(String(short < 70 ? 2000 + short : 1900 + short)), parts[2])
        case 5:
            (day, month, year, time) = (parts[2], parts[1], parts[4], parts[3])
        default:
            return nil
        }
        let clock = time.split(separator: ":", omittingEmptySubsequences: false)
        guard let monthNumber = monthNames.firstIndex(of: String(month)).map({ $0 + 1 }),
              let dayNumber = digits(day, 1...2), (1...31).contains(dayNumber), let yearNumber = digits(year, 4...4),
              clock.count == 3, let hour = digits(clock[0], 2...2), let minute = digits(clock[1], 2...2),
              let second = digits(clock[2], 2...2), hour < 24, minute < 60, second <= 60
        else { return nil }
        let days = daysSinceEpoch(year: yearNumber, month: monthNumber, day: dayNumber)
        return Int64(days) * secondsPerDay + Int64(hour * 3600 + minute * 60 + second)
    }

    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    private static let secondsPerDay: Int64 = 86_400

    /// The number `text` writes in `lengths` decimal digits, nil if it is not that.
    private static func digits(_ text: Substring, _ lengths: ClosedRange<Int>) -> Int? {
        guard lengths.contains(text.count), text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        return Int(text)
    }

    /// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
    /// days_from_civil).
    private static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

extension HotPoolError {
    /// The request failed on its way, before a whole answer: what a retry policy may run again.
    /// Answers the pool refused to read (over a limit, malformed) are not: the next would be too.
    package var isTransportFailure: Bool {
        switch code {
        case .networkError, .tlsError, .connectionClosed, .unexpectedEOF, .streamReset: true
        case .timeout: phase == .request || phase == .responseBody
        default: false
        }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    fileprivate func trimmingWhitespace() -> Substring {
        let isText: (Character) -> Bool = { $0 != " " && $0 != "\t" }
        guard let first = firstIndex(where: isText), let last = lastIndex(where: isText) else { return "" }
        return self[first...last]
    }
}
