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
    /// Runs `body` on the pool's reactor thread and returns its result; nil once the pool is closed.
    public func onReactor<T: Sendable>(_ body: @escaping @Sendable (ReactorAccess) -> T) async -> T? {
        let driver = driver
        return await Handoff<T?>.wait { handoff in
            if !reactor.post({ handoff.tryDeliver(driver.isClosed ? nil : body(ReactorAccess(driver: driver))) }) {
                handoff.tryDeliver(nil)
            }
        }
    }

    /// SSL objects alive in the process (created minus freed).
    public static var liveTLSObjects: Int { TLSContext.liveObjects }

    /// Work items that crossed to the reactor thread from other threads since the pool started
    /// (posts and jobs), each one hop; read on the reactor (this read's own hop is counted from
    /// the next read on). Nil once the pool is closed.
    public func inboundHops() async -> Int? {
        await onReactor { [reactor] _ in reactor.inboundHops }
    }

    /// Bytes of pool state per connection slot: the machine's columns plus the driver's I/O table.
    public var bytesPerSlot: Int { driver.bytesPerSlot }

    /// The I/O backend the reactor runs on: "epoll" or "io_uring".
    public var ioBackendName: String { reactor.io.name }

    /// System calls the I/O backend made since the pool started (waits, reads, writes, closes;
    /// for io_uring, each `io_uring_enter`). Read on the reactor; once the pool is closed, the
    /// final count, after the loop has ended.
    public func ioSystemCalls() async -> Int {
        if let calls = await onReactor({ [reactor] _ in reactor.io.systemCalls }) { return calls }
        await reactor.exited()
        return reactor.io.systemCalls
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
