import Testing
import HotPool  // not @testable: what a user of the package sees

/// `HotPoolError` as a code with context: codes compare and describe by name, errors compare
/// every field, `~=` matches a code, and a bad argument is not a configuration error.
@Suite struct HotPoolErrorTests {
    @Test func codesCompareAndDescribeByName() {
        #expect(HotPoolError.poolClosed.code == .poolClosed)
        #expect(HotPoolError.Code.poolClosed != .cancelled)
        #expect(HotPoolError.invalidArgument("x").code == .invalidArgument)
        #expect(HotPoolError.invalidArgument("x").code != .invalidConfiguration)
        #expect(HotPoolError.Code.timeout.description == "timeout")
        #expect(HotPoolError.Code.invalidArgument.description == "invalidArgument")
        #expect(HotPoolError.Code.tooManyResponseHeaderFields.description == "tooManyResponseHeaderFields")
        #expect(Set([HotPoolError.Code.poolClosed, .poolClosed, .cancelled]).count == 2)
    }

    @Test func errorsCompareEveryFieldAndKeepTheirTexts() {
        let timeout = HotPoolError.timeout(host: "a.test", ip: "10.0.0.1", phase: .connect)
        #expect(timeout == .timeout(host: "a.test", ip: "10.0.0.1", phase: .connect))
        #expect(timeout != .timeout(host: "a.test", ip: "10.0.0.1", phase: .tlsHandshake))
        #expect(timeout != .timeout(host: "b.test", ip: "10.0.0.1", phase: .connect))
        #expect(timeout != .timeout(host: "a.test", ip: nil, phase: .connect))
        #expect(timeout.host == "a.test" && timeout.ip == "10.0.0.1" && timeout.phase == .connect)
        #expect(timeout.reason == nil && timeout.status == nil && timeout.limit == nil)
        #expect(HotPoolError.invalidConfiguration("x") != .invalidArgument("x"), "same text, different code")

        let failed = HotPoolError.validationFailed(host: "a.test", ip: "10.0.0.1", status: 503)
        #expect(failed.host == "a.test" && failed.ip == "10.0.0.1" && failed.status == 503)
        #expect(failed != .validationFailed(host: "a.test", ip: "10.0.0.2", status: 503))
        let network = HotPoolError.networkError(host: "a.test", ip: "10.0.0.1", reason: "reset")
        #expect(network.reason == "reset" && network.code == .networkError)
        #expect(HotPoolError.responseBodyTooLarge(host: "a.test", ip: "10.0.0.1", limit: 9).limit == 9)

        #expect(HotPoolError.poolClosed.description == "pool closed")
        #expect(timeout.description == "connect timed out for a.test (10.0.0.1)")
        #expect(HotPoolError.timeout(host: "a.test", ip: nil, phase: .waitForConnection).description
                == "waitForConnection timed out for a.test")
        #expect(failed.description == "validation request to a.test (10.0.0.1) answered 503, not 200")
        #expect(HotPoolError.validationFailed(status: 403).description == "validation request answered 403, not 200")
        #expect(HotPoolError.validationFailed(status: 403).code == .validationFailed && HotPoolError.validationFailed(status: 403).host == nil)
        #expect(network.description == "network error with a.test (10.0.0.1): reset")
        #expect(HotPoolError.invalidArgument("count < 0").description == "invalid argument: count < 0")
        #expect(HotPoolError.invalidConfiguration("x").description == "invalid configuration: x")
        #expect(HotPoolError.invalidHostName("a b").description == #"invalid host name: "a b""#)
    }

    @Test func aCodeMatchesItsErrorsInCatchAndSwitch() {
        let error: any Error = HotPoolError.timeout(host: "a.test", ip: nil, phase: .request)
        #expect(HotPoolError.Code.timeout ~= error)
        #expect(!(HotPoolError.Code.poolClosed ~= error))
        #expect(!(HotPoolError.Code.cancelled ~= CancellationError()), "not a HotPoolError")
        let matched = switch error {
        case HotPoolError.Code.poolClosed: "poolClosed"
        case HotPoolError.Code.timeout: "timeout"
        default: "none"
        }
        #expect(matched == "timeout")
        do {
            throw HotPoolError.poolClosed
        } catch HotPoolError.Code.cancelled {
            Issue.record("matched the wrong code")
        } catch HotPoolError.Code.poolClosed {
            // expected
        } catch {
            Issue.record("not matched: \(error)")
        }
    }

    @Test func badArgumentsThrowInvalidArgumentNotInvalidConfiguration() async throws {
        let pool = try HotConnPool()
        await #expect(throws: HotPoolError.invalidArgument("prewarm count must be >= 0, not -1")) {
            try await pool.prewarm(host: "a.test", count: -1)
        }
        #expect(throws: HotPoolError.invalidArgument("blacklist duration must be positive, not 0.0 seconds")) {
            try pool.blacklist(ip: "10.0.0.1", forHost: "a.test", for: .zero)
        }
        await #expect {
            _ = try await pool.execute(HTTPRequest(method: .get, scheme: "https", authority: "a.test", path: "/"),
                                       host: "a.test", timeout: .milliseconds(-1))
        } throws: { error in
            (error as? HotPoolError)?.code == .invalidArgument
        }
        #expect(await pool.stats().connectionsOpened == 0, "nothing was dialed")
        try await pool.close()
    }
}
