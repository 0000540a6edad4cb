/// Timers: the deadline tick (I/O and wait deadlines, long-lease reports) and the periodic
/// cleanup. Deadlines live in the table's `deadline` and `leasedAt` columns and the waiters, and
/// are swept when the earliest of them is due, so there is no timer object per connection and
/// no sweep while nothing is due.
extension PoolCore {
    /// Makes sure the deadline tick runs by `deadline` (monotonic ns).
    func armTick(at deadline: Int64) {
        guard !closed, deadline < tickAt else { return }
        if let tickTimer { reactor.cancel(tickTimer) }
        tickAt = deadline
        tickTimer = reactor.schedule(at: deadline) { [unowned self] in self.tick() }
    }

    private func tick() {
        tickTimer = nil
        tickAt = .max
        let t = now
        var next = Int64.max
        let warnAfter = leaseWarningNanos
        for slot in 0..<Int32(table.slotCount) {
            let s = Int(slot)
            guard table.state[s] == .dialing || table.state[s] == .leased else { continue }
            if table.deadline[s] != 0 && table.deadline[s] <= t {
                expire(slot)
            } else if table.deadline[s] != 0 {
                next = min(next, table.deadline[s])
            }
            guard table.state[s] == .leased, table.leasedAt[s] != 0 else { continue }
            if t - table.leasedAt[s] >= warnAfter {
                let age = Duration.nanoseconds(t - table.leasedAt[s])
                logger.warning(
                    "connection leased for \(age) without being returned (missing putConnection?)",
                    metadata: ["host": "\(hostName(slot))", "ip": "\(ipAddress(slot))"])
                table.leasedAt[s] = 0
            } else {
                next = min(next, HotPool.deadline(from: table.leasedAt[s], after: warnAfter))
            }
        }
        for id in waitingHosts {
            let host = hosts[Int(id)]
            for waiter in host.waiters where waiter.deadline <= t {
                waiter.finish(.failure(.timeout(host: host.key.name, ip: waiter.pinnedIP, phase: .waitForConnection)))
            }
            host.waiters.removeAll { !$0.isWaiting }
            if host.waiters.isEmpty { waitingHosts.remove(id) }
            for waiter in host.waiters { next = min(next, waiter.deadline) }
        }
        if next != .max { armTick(at: next) }
    }

    /// A deadline passed: the dial or round trip under way on `slot` fails with a timeout.
    private func expire(_ slot: Int32) {
        let host = hostName(slot), ip = ipAddress(slot)
        switch ops[Int(slot)] {
        case .dial(let op)?:
            failDial(slot, op, .timeout(host: host, ip: ip, phase: op.connected ? .tlsHandshake : .connect))
        case .roundTrip(let op)?:
            failRoundTrip(slot, op, .timeout(host: host, ip: ip, phase: .request))
        case nil:
            table.deadline[Int(slot)] = 0
        }
    }

    func scheduleCleanup() {
        let at = deadline(after: config.cleanupInterval)
        guard !closed, at != .max else { return }
        cleanupTimer = reactor.schedule(at: at) { [unowned self] in
            self.cleanupIdle()
            self.reclaimIdleHosts()
            self.cleanupExpired(maxLifetime: self.config.maxLifetime)
            self.metrics.record(self.snapshot())
            self.scheduleCleanup()
        }
    }

    /// Destroys idle connections unused for `idleTimeout`. Returns how many.
    @discardableResult
    func cleanupIdle() -> Int {
        let t = now, idleTimeout = config.idleTimeout.nanoseconds
        return destroyIdle(.idleTimeout) { t - table.lastUsed[$0] >= idleTimeout }
    }

    /// Destroys idle connections older than `maxLifetime` now, and marks leased ones to be
    /// destroyed when they come back. Returns how many were destroyed now.
    @discardableResult
    func cleanupExpired(maxLifetime: Duration) -> Int {
        let t = now, lifetime = maxLifetime.nanoseconds
        for slot in 0..<table.slotCount
        where table.state[slot] == .leased && t - table.created[slot] >= lifetime && table.closeOnReturn[slot] == 0 {
            table.closeOnReturn[slot] = CloseReason.maxLifetime.code
        }
        return destroyIdle(.maxLifetime) { t - table.created[$0] >= lifetime }
    }

    private func destroyIdle(_ reason: CloseReason, where expired: (Int) -> Bool) -> Int {
        var count = 0
        for slot in 0..<Int32(table.slotCount) where table.state[Int(slot)] == .idle && expired(Int(slot)) {
            destroy(slot, reason)
            count += 1
        }
        return count
    }
}
