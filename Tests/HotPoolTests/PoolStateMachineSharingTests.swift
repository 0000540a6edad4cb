import Testing
@testable import HotPoolCore
@testable import HotPoolStateMachine

/// Two machines standing for two reactors of one pool: what one decides about an IP (a
/// blacklisting, a recovery) it reports, and the other adopts.
@Suite struct PoolStateMachineSharingTests {
    static let ips = ["192.0.2.1", "192.0.2.2"]
    static let key = HostKey(name: "a.test", port: 443)

    /// A machine whose pool has other reactors (unless not `sharing`), with `a.test`'s addresses set.
    private func reactor(sharing: Bool = true) -> MachineHarness {
        var h = MachineHarness {
            $0.sharesDecisions = sharing
            $0.maxConnectionsPerHost = 4
        }
        _ = h.send(.setAddresses(Self.ips, host: "a.test"))
        return h
    }

    private func reason(_ h: borrowing MachineHarness, _ address: String) -> BlacklistReason? {
        let host = h.machine.hostStore.hostID(for: Self.key)!
        return h.machine.hostStore[ip: h.machine.hostStore.existingIPID(host: host, address: address)!].blacklistReason
    }

    private func address(_ h: borrowing MachineHarness, _ lease: LeaseHandle) -> String {
        h.machine.hostStore[ip: h.machine.table.ipID[Int(lease.slot)]].address
    }

    @Test func aBlacklistingOneMachineDecidesIsReportedAndTheOtherAdoptsIt() {
        var one = reactor(), other = reactor()
        let lease = one.connect("a.test")
        _ = other.connect("a.test")  // its records of the host and IPs
        let ip = address(one, lease)
        let period = one.machine.configuration.blacklistTimeout
        let actions = one.send(.rejectValidation(lease, status: 403))
        #expect(actions.contains(.shareBlacklisting(Self.key, address: ip, .forbidden, period: period)))
        #expect(reason(other, ip) == nil)
        _ = other.send(.adoptBlacklisting(Self.key, address: ip, .forbidden, period: period))
        #expect(reason(other, ip) == .forbidden)
        // Adopting is not deciding: nothing is reported back.
        let again = other.send(.adoptBlacklisting(Self.key, address: ip, .forbidden, period: period))
        #expect(!again.contains { if case .shareBlacklisting = $0 { true } else { false } })
    }

    @Test func aRecoveryIsReportedAndTheOtherBringsTheIPBack() {
        var one = reactor(), other = reactor()
        let lease = one.connect("a.test")
        _ = other.connect("a.test")  // its records of the host and IPs
        let ip = address(one, lease)
        let period = one.machine.configuration.blacklistTimeout
        _ = one.send(.rejectValidation(lease, status: 403))
        _ = other.send(.adoptBlacklisting(Self.key, address: ip, .forbidden, period: period))
        one.now += period
        let probe = one.send(.timerFired(.recovery))
        guard case .dial(let slot, let target)? = probe.first(where: \.isDial) else {
            Issue.record("no recovery dial: \(probe)")
            return
        }
        #expect(target.address == ip)
        #expect(one.send(.dialed(slot)).contains(.shareRecovery(Self.key, address: ip)))
        _ = other.send(.adoptRecovery(Self.key, address: ip))
        #expect(reason(other, ip) == nil)
    }

    @Test func aManualBlacklistingIsNotUndoneByAnotherReactorsRecovery() {
        var other = reactor()
        let lease = other.connect("a.test")
        let ip = address(other, lease)
        _ = other.send(.blacklistManually(address: ip, host: "a.test", period: 1_000_000_000))
        _ = other.send(.adoptRecovery(Self.key, address: ip))
        #expect(reason(other, ip) == .manual)
    }

    /// Two reactors may eject different IPs of a host for failures at once: adopting stays within
    /// `maxEjectedShare` (0.5 of two IPs: one out).
    @Test func adoptedEjectionsStayWithinTheEjectedShare() {
        var other = reactor()
        _ = other.connect("a.test")
        _ = other.send(.adoptBlacklisting(Self.key, address: Self.ips[0], .failures, period: 1_000_000_000))
        _ = other.send(.adoptBlacklisting(Self.key, address: Self.ips[1], .failures, period: 1_000_000_000))
        #expect(reason(other, Self.ips[0]) == .failures && reason(other, Self.ips[1]) == nil)
    }

    @Test func aLonePoolReportsNothing() {
        var one = reactor(sharing: false)
        let lease = one.connect("a.test")
        let actions = one.send(.rejectValidation(lease, status: 403))
        #expect(!actions.contains { if case .shareBlacklisting = $0 { true } else { false } })
    }

    /// The limits split between reactors add up to the pool's.
    @Test(arguments: [1, 2, 3, 7])
    func sharesOfTheLimitsAddUp(_ count: Int) {
        var config = HotPoolConfiguration()
        config.maxConnections = 101
        config.maxIdleConnections = 20
        config.maxConnectionsPerHost = 10
        config.minIdlePerHost = 3
        config.reactorSelection = .perCall
        let parts = (0..<count).map { config.share(forReactor: $0, of: count) }
        #expect(parts.map(\.maxConnections).reduce(0, +) == 101)
        #expect(parts.map(\.maxIdleConnections).reduce(0, +) == 20)
        #expect(parts.map(\.maxConnectionsPerHost).reduce(0, +) == 10)
        #expect(parts.map(\.minIdlePerHost).reduce(0, +) == 3)
        #expect(parts.map(\.maxConnections).max()! - parts.map(\.maxConnections).min()! <= 1)
        config.reactorSelection = .byHost
        #expect(config.share(forReactor: 0, of: count).maxConnectionsPerHost == 10, "by host, each reactor has the host's whole limits")
    }
}
