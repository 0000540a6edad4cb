import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolStateMachine

/// What the machine does for `execute`'s retries, without sockets: the next attempt's get goes to
/// another IP of the host when it has one in rotation, and a retried request counts once.
@Suite struct PoolStateMachineRetryTests {
    static let ips = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    static let single = "198.51.100.1"

    private func harness() -> MachineHarness {
        var h = MachineHarness()
        _ = h.send(.setAddresses(Self.ips, host: "a.test"))
        _ = h.send(.setAddresses([Self.single], host: "b.test"))
        return h
    }

    /// A get of `host` that avoids `ip`.
    private func acquire(_ h: inout MachineHarness, _ host: String, avoiding ip: String) -> (WaiterID, [PoolStateMachine.Action]) {
        var request = MachineHarness.request(host)
        request.avoidedIP = ip
        let id = h.newWaiter()
        return (id, h.send(.acquire(id, request)))
    }

    @Test func aRetryTakesAnIdleConnectionToAnotherIP() {
        var h = harness()
        let first = h.connect("a.test"), second = h.connect("a.test")
        #expect(h.machine.ipAddress(first.slot) == Self.ips[0] && h.machine.ipAddress(second.slot) == Self.ips[1])
        _ = h.send(.release(first))
        _ = h.send(.release(second))  // the most recently returned: what a plain get takes
        let (_, actions) = acquire(&h, "a.test", avoiding: Self.ips[1])
        #expect(actions.withoutTimers.count == 1 && actions.leaseHandle?.slot == first.slot, "\(actions)")
    }

    @Test func aRetryDialsAnotherIPRatherThanTakeTheAvoidedOnesIdleConnection() {
        var h = harness()
        let only = h.connect("a.test")
        _ = h.send(.release(only))
        let (_, actions) = acquire(&h, "a.test", avoiding: Self.ips[0])
        guard case .dial(_, let target)? = actions.first(where: \.isDial) else { Issue.record("no dial: \(actions)"); return }
        #expect(target.address != Self.ips[0])
        #expect(h.stats.idleConnections == 1, "the avoided IP's connection stays idle")
    }

    @Test func aRetryTakesTheSameIPWhenTheHostHasNoOtherInRotation() {
        var h = harness()
        // A host with one IP.
        let only = h.connect("b.test")
        _ = h.send(.release(only))
        #expect(acquire(&h, "b.test", avoiding: Self.single).1.leaseHandle?.slot == only.slot)
        // A host whose other IPs are blacklisted.
        let first = h.connect("a.test")
        _ = h.send(.release(first))
        for ip in Self.ips.dropFirst() { _ = h.send(.blacklistManually(address: ip, host: "a.test", period: 1_000_000_000)) }
        #expect(acquire(&h, "a.test", avoiding: Self.ips[0]).1.leaseHandle?.slot == first.slot)
    }

    @Test func aWaitingRetryIsNotHandedAConnectionToTheAvoidedIP() {
        var h = MachineHarness { $0.maxConnectionsPerHost = 2 }
        _ = h.send(.setAddresses(Self.ips, host: "a.test"))
        let first = h.connect("a.test")
        _ = h.connect("a.test")
        let (_, waiting) = acquire(&h, "a.test", avoiding: Self.ips[0])
        #expect(waiting.withoutTimers == [], "at the host's cap it waits")
        // The avoided IP's connection comes back: not for the retry, which takes its place.
        let returned = h.send(.release(first))
        #expect(returned.leaseHandle == nil && returned.destroyed == [.evicted], "\(returned)")
        guard case .dial(_, let target)? = returned.first(where: \.isDial) else { Issue.record("no dial: \(returned)"); return }
        #expect(target.address != Self.ips[0])
    }

    @Test func aRetriedRequestCountsOnceWithItsRetriesBeside() {
        var h = harness()
        // The first attempt fails.
        let first = h.connect("a.test")
        _ = h.send(.requestExchange(.test, on: first, timeout: 1_000_000))
        _ = h.send(.exchangeEnded(h.machine.table.handle(first.slot), .failed))
        #expect((h.stats.totalRequests, h.stats.failedRequests, h.stats.retries) == (1, 1, 0))
        // The second is answered 429: the request is no longer failed.
        let second = h.connect("a.test")
        _ = h.send(.requestExchange(.test, on: second, timeout: 1_000_000, retrying: .failed))
        #expect((h.stats.totalRequests, h.stats.failedRequests, h.stats.retries) == (1, 0, 1))
        _ = h.send(.exchangeEnded(h.machine.table.handle(second.slot), .answered(status: 429, unusable: nil)))
        // The third fails: so does the request, once.
        let third = h.connect("a.test")
        _ = h.send(.requestExchange(.test, on: third, timeout: 1_000_000, retrying: .answered))
        _ = h.send(.exchangeEnded(h.machine.table.handle(third.slot), .failed))
        #expect((h.stats.totalRequests, h.stats.failedRequests, h.stats.retries) == (1, 1, 2))
        // Each attempt still counts for its IP.
        let perIP = h.machine.ipRecords(forName: "a.test").map { ($0.record.address, $0.record.requests) }
        #expect(perIP.map(\.1).reduce(0, +) == 3, "\(perIP)")
    }
}
