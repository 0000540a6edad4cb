import HotPoolCore
import HotPoolDriver
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine

/// Entry points for the benchmark harness in `Benchmarks/`, which measures the pool's own
/// decisions on its reactor thread. Not part of the public contract: import with
/// `@_spi(Benchmarks) import HotPool`.
@_spi(Benchmarks)
extension HotConnPool {
    /// Runs `body` on the thread of the pool's reactor number `index` and returns its result; nil
    /// once the pool is closed.
    public func onReactor<T: Sendable>(_ index: Int = 0, _ body: @escaping @Sendable (ReactorAccess) -> T) async -> T? {
        let driver = drivers[index]
        return await Handoff<T?>.wait { handoff in
            if !driver.reactor.post({ handoff.tryDeliver(driver.isClosed ? nil : body(ReactorAccess(driver: driver))) }) {
                handoff.tryDeliver(nil)
            }
        }
    }

    /// SSL objects alive in the process (created minus freed).
    public static var liveTLSObjects: Int { TLSContext.liveObjects }

    /// The number of reactors the pool runs.
    public var reactorCount: Int { drivers.count }

    /// Work items that crossed to the reactor threads from other threads since the pool started
    /// (posts and jobs), each one hop; read on each reactor (this read's own hops are counted from
    /// the next read on). Nil once the pool is closed.
    public func inboundHops() async -> Int? {
        var hops = 0
        for index in drivers.indices {
            guard let count = await onReactor(index, { $0.driver.reactor.inboundHops }) else { return nil }
            hops += count
        }
        return hops
    }

    /// Bytes of pool state per connection slot: the machine's columns plus the driver's I/O table.
    public var bytesPerSlot: Int { drivers[0].bytesPerSlot }

    /// The I/O backend the reactors run on: "epoll" or "io_uring".
    public var ioBackendName: String { drivers[0].reactor.io.name }

    /// System calls the I/O backends made since the pool started (waits, reads, writes, closes;
    /// for io_uring, each `io_uring_enter`), on every reactor. Read on each reactor; once the pool
    /// is closed, the final counts, after the loops have ended.
    public func ioSystemCalls() async -> Int {
        var calls = 0
        for (index, driver) in drivers.enumerated() {
            if let count = await onReactor(index, { $0.driver.reactor.io.systemCalls }) {
                calls += count
            } else {
                await driver.reactor.exited()
                calls += driver.reactor.io.systemCalls
            }
        }
        return calls
    }
}

/// The pool's get and put as the reactor runs them (the same events through the same state
/// machine), without the cross-thread hop. Valid only inside the `onReactor` body it was given to.
@_spi(Benchmarks)
public struct ReactorAccess {
    let driver: PoolDriver

    /// A host's record (made on first use, as `getConnection` would, without resolving it).
    public func hostID(host: String, port: Int) -> ReactorHost {
        let request = PoolStateMachine.AcquireRequest(host: host, port: port, pinnedIP: nil)
        driver.send(.recordHost(request))
        return ReactorHost(request: request)
    }

    /// Leases an idle connection of the host through the same acquire event `getConnection`
    /// sends; nil if none is idle.
    public func takeIdle(hostID host: ReactorHost) -> ReactorLease? {
        guard driver.idleConnectionCount > 0 else { return nil }
        return (try? driver.acquireNow(driver.newWaiterID(), host.request, waits: false)?.get()).map { ReactorLease(handle: $0.handle) }
    }

    /// Sets a host's addresses, as `setAddresses` does.
    public func setAddresses(_ ips: [String], forHost host: String) { driver.send(.setAddresses(ips, host: host)) }

    /// Host records the pool holds now.
    public var hostRecords: Int { driver.hostRecordCount }

    /// Frees the records of idle hosts through the event `cleanupIdleConnections()` sends;
    /// returns how many.
    public func reclaimIdleHosts() -> Int {
        let before = driver.hostRecordCount
        driver.send(.cleanupIdle)
        return before - driver.hostRecordCount
    }

    /// Parses `response`, a whole HTTP/1.1 response, with the parser a connection's reads feed
    /// (the pool's limits); returns its body's length, nil unless it parses whole.
    public func parseResponse(_ response: [UInt8]) -> Int? {
        var parser = HTTP1ResponseParser(limits: driver.config.responseLimits, isHeadRequest: false)
        guard response.withUnsafeBytes({ try? parser.feed($0) }) != nil else { return nil }
        return parser.takeBody().count
    }

    /// Returns a lease, as `putConnection` does.
    public func put(_ lease: ReactorLease) { driver.send(.release(lease.handle)) }

    /// Destroys a leased connection, as `removeConnection` does.
    public func remove(_ lease: ReactorLease) { driver.send(.remove(lease.handle)) }
}

/// A host as `ReactorAccess` names it.
@_spi(Benchmarks)
public struct ReactorHost: Sendable {
    let request: PoolStateMachine.AcquireRequest
}

/// A connection leased through `ReactorAccess`.
@_spi(Benchmarks)
public struct ReactorLease: Sendable {
    let handle: LeaseHandle
}
