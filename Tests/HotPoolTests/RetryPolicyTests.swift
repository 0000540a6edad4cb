import HTTPTypes
import Testing
@testable import HotPool
@testable import HotPoolCore

/// The retry policy's pure parts: the backoff, `Retry-After`, which outcomes are retried, and
/// validation.
@Suite struct RetryPolicyTests {
    /// 2026-12-07 00:00:00 UTC, seconds since 1970.
    static let now: Int64 = 1_796_601_600

    @Test func backoffDoublesFromTheBaseUpToTheCap() {
        let policy = RetryPolicy(baseDelay: .milliseconds(100), maxDelay: .seconds(1), jitter: 0)
        let delays = (2...7).map { policy.delay(beforeAttempt: $0, retryAfter: nil, random: 0.5) }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        #expect(policy.delay(beforeAttempt: 1_000_000, retryAfter: nil, random: 0) == .seconds(1), "no overflow far out")
        let huge = RetryPolicy(baseDelay: .seconds(Int64.max / 2), maxDelay: .seconds(Int64.max), jitter: 0)
        #expect(huge.delay(beforeAttempt: 3, retryAfter: nil, random: 0) == .nanoseconds(Int64.max), "a clock's worth at most")
    }

    @Test func jitterTakesOffUpToItsShareAsTheRandomSourceSays() {
        let policy = RetryPolicy(baseDelay: .seconds(1), maxDelay: .seconds(10), jitter: 0.2)
        #expect(policy.delay(beforeAttempt: 2, retryAfter: nil, random: 0) == .seconds(1))
        #expect(policy.delay(beforeAttempt: 2, retryAfter: nil, random: 0.5) == .milliseconds(900))
        #expect(policy.delay(beforeAttempt: 2, retryAfter: nil, random: 1) == .milliseconds(800))
        #expect(policy.delay(beforeAttempt: 2, retryAfter: nil, random: 7) == .milliseconds(800), "a source out of range is clamped")
    }

    @Test func retryAfterIsAFloorCutToItsMaximum() {
        let policy = RetryPolicy(baseDelay: .milliseconds(100), maxDelay: .seconds(1), jitter: 0, maxRetryAfter: .seconds(30))
        #expect(policy.delay(beforeAttempt: 2, retryAfter: .seconds(2), random: 0) == .seconds(2))
        #expect(policy.delay(beforeAttempt: 2, retryAfter: .zero, random: 0) == .milliseconds(100), "the backoff when longer")
        #expect(policy.delay(beforeAttempt: 2, retryAfter: .seconds(Int64.max), random: 0) == .seconds(30))
        let ignoring = RetryPolicy(baseDelay: .milliseconds(100), jitter: 0, honoursRetryAfter: false)
        #expect(ignoring.delay(beforeAttempt: 2, retryAfter: .seconds(2), random: 0) == .milliseconds(100))
    }

    @Test func retryAfterReadsDelaySecondsAndHTTPDates() {
        #expect(RetryPolicy.retryAfter("1", now: Self.now) == .seconds(1))
        #expect(RetryPolicy.retryAfter(" 120\t", now: Self.now) == .seconds(120))
        #expect(RetryPolicy.retryAfter("0", now: Self.now) == .zero)
        #expect(RetryPolicy.retryAfter("99999999999999999999999", now: Self.now) == .seconds(Int64.max), "huge: the longest, for the cap")
        // The three HTTP-date forms, 90 s ahead; a date past is no wait.
        #expect(RetryPolicy.retryAfter("Mon, 07 Dec 2026 00:01:30 GMT", now: Self.now) == .seconds(90))
        #expect(RetryPolicy.retryAfter("Monday, 07-Dec-26 00:01:30 GMT", now: Self.now) == .seconds(90))
        #expect(RetryPolicy.retryAfter("Mon Dec  7 00:01:30 2026", now: Self.now) == .seconds(90))
        #expect(RetryPolicy.retryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now: Self.now) == .zero)
        #expect(RetryPolicy.retryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now: 0) == .seconds(784_111_777))
    }

    @Test(arguments: ["", " ", "-5", "1.5", "+3", "soon", "0x10", "Mon, 07 Dec 2026 00:01:30 UTC", "Mon, 32 Dec 2026 00:01:30 GMT",
                      "Mon, 07 Foo 2026 00:01:30 GMT", "Mon, 07 Dec 2026 24:00:00 GMT", "Mon, 07 Dec 26 00:01:30 GMT"])
    func retryAfterRefusesGarbage(_ value: String) {
        #expect(RetryPolicy.retryAfter(value, now: Self.now) == nil)
    }

    @Test func retriesItsStatusesAndTransportFailuresOfItsMethodsOnly() {
        let policy = RetryPolicy()
        func answer(_ status: Int) -> Result<HotResponse, HotPoolError> {
            .success(HotResponse(head: HTTPResponse(status: .init(code: status)), body: []))
        }
        #expect(policy.retries(.get, after: answer(429)) && policy.retries(.delete, after: answer(503)))
        #expect(!policy.retries(.get, after: answer(200)) && !policy.retries(.get, after: answer(500)))
        #expect(!policy.retries(.post, after: answer(429)) && !policy.retries(.patch, after: answer(503)), "not idempotent")
        let reset = HotPoolError.networkError(host: "h", ip: "i", reason: "reset")
        #expect(policy.retries(.get, after: .failure(reset)) && !policy.retries(.post, after: .failure(reset)))
        #expect(policy.retries(.get, after: .failure(.timeout(host: "h", ip: "i", phase: .request))))
        #expect(policy.retries(.get, after: .failure(.timeout(host: "h", ip: "i", phase: .responseBody))))
        #expect(!policy.retries(.get, after: .failure(.timeout(host: "h", ip: nil, phase: .waitForConnection))))
        #expect(!policy.retries(.get, after: .failure(.responseBodyTooLarge(host: "h", ip: "i", limit: 1))), "the next would be too")
        #expect(!policy.retries(.get, after: .failure(.poolClosed)) && !policy.retries(.get, after: .failure(.cancelled)))
        #expect(!RetryPolicy(retriesTransportFailures: false).retries(.get, after: .failure(reset)))
        #expect(RetryPolicy(methods: [.post]).retries(.post, after: answer(429)), "when asked to")
    }

    @Test func unusablePoliciesAreRefusedByNameAndValue() async throws {
        let cases: [(RetryPolicy, String)] = [
            (RetryPolicy(maxAttempts: 0), "maxAttempts must be >= 1, got 0"),
            (RetryPolicy(statuses: [429, 600]), "600 is not within 100...599"),
            (RetryPolicy(baseDelay: .seconds(-1)), "baseDelay must be >= 0"),
            (RetryPolicy(baseDelay: .seconds(2), maxDelay: .seconds(1)), "maxDelay must be >= baseDelay"),
            (RetryPolicy(jitter: 1.5), "jitter must be within 0...1"),
            (RetryPolicy(jitter: .nan), "jitter must be within 0...1"),
            (RetryPolicy(maxRetryAfter: .seconds(-1)), "maxRetryAfter must be >= 0"),
        ]
        for (policy, reason) in cases {
            #expect(policy.problem?.contains(reason) == true, "\(policy.problem ?? "nil")")
            var config = HotPoolConfiguration()
            config.retryPolicy = policy
            try await expectInvalidConfiguration(config, saying: reason)
        }
        #expect(RetryPolicy().problem == nil && RetryPolicy(maxAttempts: 1, baseDelay: .zero, maxDelay: .zero).problem == nil)
    }
}
