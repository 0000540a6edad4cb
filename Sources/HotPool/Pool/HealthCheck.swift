import HTTPTypes

/// The health checker, off the acquire path: every `healthCheckInterval`, each idle connection
/// unused and unchecked for that long is taken out of the idle list (so no caller can lease it
/// meanwhile) and asked `GET healthCheckPath`. A 2xx or 3xx answer puts it back as a put would;
/// anything else (another status, a network or TLS error, no answer within `validationTimeout`)
/// destroys it as `healthCheckFailed`, and a 403 also blacklists its IP for the host.
extension PoolCore {
    func scheduleHealthCheck() {
        let at = deadline(after: config.healthCheckInterval)
        guard !closed, config.healthCheckPath != nil, at != .max else { return }
        healthCheckTimer = reactor.schedule(at: at) { [unowned self] in
            self.healthCheckTimer = nil
            self.checkIdleConnections()
            self.scheduleHealthCheck()
        }
    }

    /// Starts a probe on every idle connection that is due one.
    private func checkIdleConnections() {
        guard let path = config.healthCheckPath else { return }
        let t = now
        let interval = config.healthCheckInterval.nanoseconds
        for slot in 0..<Int32(table.slotCount) where table.state[Int(slot)] == .idle {
            let s = Int(slot)
            guard t - max(table.lastUsed[s], table.lastChecked[s]) >= interval else { continue }
            table.take(idle: slot)
            table.leasedAt[s] = 0  // the pool's own lease, never reported as a leak
            let host = hosts[Int(table.hostID[s])]
            let request = HTTP1Request.serialize(
                HTTPRequest(method: .get, scheme: "https", authority: host.authority, path: path), body: [],
                defaultHost: host.authority,
                profile: profileHeaders[Int(table.profile[s])][Int(table.language[s])])
            startRoundTrip(slot, request: request, isHead: false, timeout: config.validationTimeout, for: .healthCheck)
        }
    }

    /// A probe ended: the connection goes back into the pool or is destroyed.
    func healthCheckFinished(_ slot: Int32, _ result: Result<HotResponse, HotPoolError>) {
        let s = Int(slot)
        table.lastChecked[s] = now
        let status = (try? result.get())?.head.status.code
        guard let status, (200..<400).contains(status) else {
            logger.debug("health check failed", metadata: [
                "host": "\(hostName(slot))", "ip": "\(ipAddress(slot))", "status": "\(status.map(String.init) ?? "none")",
            ])
            return reject(slot, .healthCheckFailed, status: status)
        }
        takeBack(slot)
    }
}
