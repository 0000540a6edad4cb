import CShims

/// Entry points for the benchmark harness in `Benchmarks/`, which measures the pool's own
/// decisions on its reactor thread. Not part of the public contract: import with
/// `@_spi(Benchmarks) import HotPool`.
@_spi(Benchmarks)
extension HotConnPool {
    /// Runs `body` on the pool's reactor thread and returns its result; nil once the pool is closed.
    public func onReactor<T: Sendable>(_ body: @escaping @Sendable (ReactorAccess) -> T) async -> T? {
        let core = core
        return await Handoff<T?>.wait { handoff in
            if !reactor.post({ handoff.deliver(core.closed ? nil : body(ReactorAccess(core: core))) }) { handoff.deliver(nil) }
        }
    }

    /// SSL objects alive in the process (created minus freed).
    public static var liveTLSObjects: Int { Int(hp_tls_live_objects()) }

    /// Bytes of pool state per connection slot: the table's columns plus the per-slot operation.
    public var bytesPerSlot: Int { core.table.bytesPerSlot + MemoryLayout<SlotOp?>.stride }
}

/// The pool's get and put as the reactor runs them, without the cross-thread hop. Valid only
/// inside the `onReactor` body it was given to.
@_spi(Benchmarks)
public struct ReactorAccess {
    let core: PoolCore

    /// A host's id, for `takeIdle` (made on first use, as `getConnection` would).
    public func hostID(host: String, port: Int) -> Int32 {
        core.host(for: HostKey(name: host, port: port)).id
    }

    /// Leases the longest-idle connection of the host, as `getConnection` does on a pool hit;
    /// nil if none is idle.
    public func takeIdle(hostID: Int32) -> ReactorLease? {
        guard let slot = core.table.takeIdle(host: hostID) else { return nil }
        core.stampLease(slot)
        return ReactorLease(handle: core.table.beginLease(slot))
    }

    /// Sets a host's addresses, as `setAddresses` does.
    public func setAddresses(_ ips: [String], forHost host: String) { core.setAddresses(ips, forHost: host) }

    /// Host records the pool holds now.
    public var hostRecords: Int { core.hostRecordCount }

    /// Frees the records of idle hosts, as the cleanup does; returns how many.
    public func reclaimIdleHosts() -> Int { core.reclaimIdleHosts() }

    /// Returns a lease, as `putConnection` does.
    public func put(_ lease: ReactorLease) { core.release(lease.handle) }

    /// Destroys a leased connection, as `removeConnection` does.
    public func remove(_ lease: ReactorLease) { core.remove(lease.handle) }
}

/// A connection leased through `ReactorAccess`.
@_spi(Benchmarks)
public struct ReactorLease: Sendable {
    let handle: LeaseHandle
}
