import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolStateMachine

/// Block signals from ordinary traffic, without sockets: answers with a policy's statuses to
/// callers' requests (HTTP/1.1 exchanges and HTTP/2 streams) count against their IP, and the
/// threshold within the window blacklists it with the 403 rules.
@Suite struct PoolStateMachineBlockSignalTests {
    static let ips = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    static let window: Int64 = 1_000
    static let blacklistTimeout: Int64 = 10_000
    static let requestTimeout: Int64 = 1_000_000

    /// A machine for a.test (three IPs) and b.test (one), counting 403 and 429, three within
    /// `window`, unless `configure` says otherwise.
    private func harness(_ configure: (inout PoolStateMachine.Configuration) -> Void = { _ in }) -> MachineHarness {
        var h = MachineHarness {
            $0.blockSignals = .init(statuses: [403, 429], threshold: 3, window: Self.window)
            $0.blacklistTimeout = Self.blacklistTimeout
            configure(&$0)
        }
        _ = h.send(.setAddresses(Self.ips, host: "a.test"))
        _ = h.send(.setAddresses(["198.51.100.1"], host: "b.test"))
        return h
    }

    /// A get pinned to `ip` that dials (an HTTP/2 connection taking `streams`, if given) and is leased it.
    private func connect(_ h: inout MachineHarness, _ host: String = "a.test", to ip: String, streams: Int? = nil) -> LeaseHandle {
        let (id, actions) = h.acquire(host, pinned: ip)
        guard case .dial(let slot, let target)? = actions.first(where: \.isDial), target.address == ip else { fatalError("no dial to \(ip): \(actions)") }
        let leased = h.send(streams.map { .dialedMultiplexed(slot, streamLimit: $0) } ?? .dialed(slot))
        guard case .lease(id, let lease)? = leased.first else { fatalError("not leased: \(leased)") }
        return lease
    }

    /// A caller's request on `lease` answered `status`: the actions of its end.
    private func answer(_ h: inout MachineHarness, _ lease: LeaseHandle, _ status: Int) -> [PoolStateMachine.Action] {
        let started = h.send(.requestExchange(.test, on: lease, timeout: Self.requestTimeout)).withoutTimers
        switch started.first {
        case .startExchange(_, let slot)?: return h.send(.exchangeEnded(slot, .answered(status: status, unusable: nil)))
        case .startStreamExchange(_, let stream)?: return h.send(.streamExchangeEnded(stream, .answered(status: status, unusable: nil)))
        default: fatalError("not started: \(started)")
        }
    }

    private func record(_ h: borrowing MachineHarness, _ ip: String, host: String = "a.test") -> IPRecord {
        h.machine.ipRecords(forName: host).first { $0.record.address == ip }!.record
    }

    private func blacklisted(_ h: borrowing MachineHarness, host: String = "a.test") -> [(address: String, reason: BlacklistReason, until: Int64)] {
        h.machine.blacklistedIPs(forName: host)
    }

    @Test func theThresholdWithinTheWindowBlacklistsTheIPAndEachConnectionIsDestroyedOnceCountedOnce() {
        var h = harness()
        let ip = Self.ips[0]
        let first = connect(&h, to: ip), second = connect(&h, to: ip)
        _ = h.send(.release(connect(&h, to: ip)))  // an idle one
        #expect(answer(&h, first, 403).isEmpty)
        h.now += 400
        #expect(answer(&h, second, 429).isEmpty)
        #expect(blacklisted(h).isEmpty, "two answers: below the threshold")
        #expect(h.machine.recentBlockAnswers(of: record(h, ip), at: h.now) == 2)
        h.now += Self.window - 401  // the third within the window of the first
        let actions = answer(&h, first, 403)
        #expect(actions.destroyed == [.blacklisted], "the idle connection goes now")
        #expect(blacklisted(h).map(\.reason) == [.blocked] && blacklisted(h).map(\.address) == [ip])
        #expect(blacklisted(h).first?.until == h.now + Self.blacklistTimeout, "for blacklistTimeout, as a 403 to a validation")
        // An answer under way on another connection counts, but neither again nor longer.
        let until = blacklisted(h).first?.until
        h.now += 1
        #expect(answer(&h, second, 403).isEmpty)
        #expect(blacklisted(h).first?.until == until)
        #expect(record(h, ip).blockAnswers == 4 && h.machine.recentBlockAnswers(of: record(h, ip), at: h.now) == 0)
        // Leased ones go when returned, each once.
        #expect(h.send(.release(first)).destroyed == [.blacklisted])
        #expect(h.send(.release(second)).destroyed == [.blacklisted])
        #expect(h.stats.closedByReason[.blacklisted] == 3 && h.stats.closedByReason.values.reduce(0, +) == 3)
        #expect(h.stats.totalConnections == 0)
        // No new connection to it: a pinned get fails, others go to the other IPs.
        let (pinned, refused) = h.acquire("a.test", pinned: ip)
        #expect(refused == [.fail(pinned, .addressBlacklisted(host: "a.test", ip: ip))])
        guard case .dial(_, let target)? = h.acquire("a.test").1.first(where: \.isDial) else { Issue.record("no dial"); return }
        #expect(target.address != ip)
    }

    @Test func anyBlacklistingStartsTheCountAfresh() {
        var h = harness()
        let ip = Self.ips[0]
        let lease = connect(&h, to: ip)
        _ = answer(&h, lease, 403)
        _ = answer(&h, lease, 403)
        _ = h.send(.blacklistManually(address: ip, host: "a.test", period: Self.window))
        #expect(answer(&h, lease, 403).isEmpty, "out already: counted, nothing more")
        _ = h.send(.unblacklist(address: ip, host: "a.test"))
        #expect(record(h, ip).blockAnswers == 3 && h.machine.recentBlockAnswers(of: record(h, ip), at: h.now) == 0)
        _ = answer(&h, lease, 403)
        _ = answer(&h, lease, 403)
        #expect(blacklisted(h).isEmpty, "the two before the manual blacklisting count no more")
        _ = answer(&h, lease, 403)
        #expect(blacklisted(h).map(\.reason) == [.blocked])
    }

    @Test func aBlockedIPComesBackThroughAPassedRecoveryProbe() {
        var h = harness()
        let ip = Self.ips[0]
        let lease = connect(&h, to: ip)
        for _ in 0..<3 { _ = answer(&h, lease, 429) }
        #expect(blacklisted(h).map(\.reason) == [.blocked])
        _ = h.send(.release(lease))
        h.now += Self.blacklistTimeout
        guard case .dial(let probe, let target)? = h.send(.timerFired(.recovery)).first(where: \.isDial) else { Issue.record("no recovery dial"); return }
        #expect(target.address == ip)
        _ = h.send(.dialed(probe))
        #expect(blacklisted(h).isEmpty, "the passed probe brought it back")
        guard let again = h.acquire("a.test", pinned: ip).1.leaseHandle else { Issue.record("the probe's connection is not idle"); return }
        #expect(answer(&h, again, 429).isEmpty)
        #expect(blacklisted(h).isEmpty && record(h, ip).blockAnswers == 4)
    }

    @Test func answersSpreadBeyondTheWindowDoNotBlacklist() {
        var h = harness()
        let ip = Self.ips[0]
        let lease = connect(&h, to: ip)
        // Every three consecutive answers span exactly the window: never within it.
        for _ in 0..<10 {
            #expect(answer(&h, lease, 403).isEmpty)
            h.now += Self.window / 2
        }
        #expect(blacklisted(h).isEmpty)
        #expect(record(h, ip).blockAnswers == 10)
        #expect(h.machine.recentBlockAnswers(of: record(h, ip), at: h.now - 1) == 2)
        // One a nanosecond sooner than that makes three within the window.
        h.now -= 1
        _ = answer(&h, lease, 403)
        #expect(blacklisted(h).map(\.reason) == [.blocked])
    }

    @Test func withoutAPolicyNoAnswerCounts() {
        #expect(HotPoolConfiguration().blockSignals == nil, "off by default")
        var h = harness { $0 = PoolStateMachine.Configuration(HotPoolConfiguration()) }
        let ip = Self.ips[0]
        let lease = connect(&h, to: ip)
        for status in Array(repeating: 403, count: 10) + Array(repeating: 429, count: 10) {
            #expect(answer(&h, lease, status).isEmpty)
        }
        #expect(blacklisted(h).isEmpty)
        #expect(record(h, ip).blockAnswers == 0 && h.machine.recentBlockAnswers(of: record(h, ip), at: h.now) == 0)
        #expect(h.send(.release(lease)).isEmpty && h.stats.idleConnections == 1, "the connection is kept")
    }

    @Test func statusesNotInThePolicyDoNotCount() {
        var h = harness { $0.blockSignals = .init(statuses: [429], threshold: 2, window: Self.window) }
        let ip = Self.ips[0]
        let lease = connect(&h, to: ip)
        for status in [403, 403, 403, 200, 500, 503, 404] { _ = answer(&h, lease, status) }
        #expect(blacklisted(h).isEmpty && record(h, ip).blockAnswers == 0)
        _ = answer(&h, lease, 429)
        #expect(blacklisted(h).isEmpty)
        _ = answer(&h, lease, 429)
        #expect(blacklisted(h).map(\.reason) == [.blocked] && record(h, ip).blockAnswers == 2)
    }

    @Test func http2StreamAnswersCountAndTheConnectionGoesWithItsLastLease() {
        var h = harness()
        let ip = Self.ips[0]
        let first = connect(&h, to: ip, streams: 10)
        let (_, shared) = h.acquire("a.test", pinned: ip)
        guard let second = shared.leaseHandle, second.slot == first.slot else { Issue.record("not shared: \(shared)"); return }
        _ = answer(&h, first, 403)
        _ = answer(&h, second, 429)
        #expect(blacklisted(h).isEmpty)
        #expect(answer(&h, first, 403).destroyed.isEmpty, "leased: it stays while its callers hold it")
        #expect(blacklisted(h).map(\.reason) == [.blocked] && record(h, ip).blockAnswers == 3)
        // It takes no new stream: another caller of the host gets a new connection elsewhere.
        let other = h.acquire("a.test").1
        #expect(other.leaseHandle == nil)
        guard case .dial(_, let target)? = other.first(where: \.isDial) else { Issue.record("no dial: \(other)"); return }
        #expect(target.address != ip)
        #expect(h.send(.release(first)).destroyed.isEmpty, "a lease remains")
        #expect(h.send(.release(second)).destroyed == [.blacklisted])
        #expect(h.stats.closedByReason.values.reduce(0, +) == 1)
    }

    @Test func aHostLosesEveryIPToBlockSignalsWhateverMaxEjectedShare() {
        var h = harness { $0.maxEjectedShare = 0.5 }
        let only = "198.51.100.1"
        let lease = connect(&h, "b.test", to: only)
        for _ in 0..<3 { _ = answer(&h, lease, 403) }
        #expect(blacklisted(h, host: "b.test").map(\.reason) == [.blocked], "as 403 blacklisting, not limited")
        let (id, actions) = h.acquire("b.test")
        #expect(actions == [.fail(id, .allAddressesBlacklisted(host: "b.test"))])
    }

    @Test func aPolicyOutOfRangeIsRefusedNamingTheFieldAndItsRange() {
        func refusal(_ policy: BlockSignalPolicy) -> HotPoolError? {
            var config = HotPoolConfiguration()
            config.blockSignals = policy
            do { try config.validate() } catch { return error }
            return nil
        }
        #expect(refusal(BlockSignalPolicy()) == nil, "the default policy is valid")
        #expect(refusal(.init(statuses: [])) == .invalidConfiguration("blockSignals.statuses must not be empty"))
        #expect(refusal(.init(statuses: [403, 99])) == .invalidConfiguration("blockSignals.statuses must be within 100...599, got 99"))
        #expect(refusal(.init(statuses: [600])) == .invalidConfiguration("blockSignals.statuses must be within 100...599, got 600"))
        #expect(refusal(.init(threshold: 0)) == .invalidConfiguration("blockSignals.threshold must be within 1...256, got 0"))
        #expect(refusal(.init(threshold: BlockSignalPolicy.maxThreshold + 1)) == .invalidConfiguration("blockSignals.threshold must be within 1...256, got 257"))
        #expect(refusal(.init(threshold: BlockSignalPolicy.maxThreshold)) == nil)
        #expect(refusal(.init(window: .zero)) == .invalidConfiguration("blockSignals.window must be at least 1 ns, got 0.0 seconds"))
    }
}
