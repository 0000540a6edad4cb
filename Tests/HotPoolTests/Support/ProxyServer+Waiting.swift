import OriginControl

extension ProxyServer {
    /// Waits (bounded, polling) until the proxy has logged at least `opened` tunnels opened and
    /// `closed` closed, and says whether it logged exactly those counts then.
    func sawTunnels(opened: Int, closed: Int, within timeout: Duration = .seconds(5)) async -> Bool {
        _ = await eventually(timeout) { tunnelsOpened() >= opened && tunnelsClosed() >= closed }
        return tunnelsOpened() == opened && tunnelsClosed() == closed
    }
}
