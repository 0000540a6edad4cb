import CShims
import HotPoolCore
import HotPoolIO

extension PoolDriver {
    /// Builds the parts of a pool's reactor number `reactorIndex` from its (validated)
    /// configuration, the reactor's share of the pool's (`HotPoolConfiguration.share`): a TLS
    /// context per fingerprint profile, the reactor on the configured I/O backend, the resolver,
    /// and the driver over them, wired to the reactor (not started: see `start`). Whatever was
    /// made is freed if a later part fails.
    /// - Throws: `HotPoolError.invalidConfiguration` (an unreadable CA file, an I/O backend that
    ///   cannot be had).
    package static func make(_ configuration: HotPoolConfiguration, reactorIndex: Int) throws -> PoolDriver {
        var contexts: [OpaquePointer] = []
        do {
            for spec in configuration.profiles {
                contexts.append(try TLSContext.make(spec, trustedCAFile: configuration.trustedCAFile))
            }
        } catch {
            contexts.forEach(hp_tls_ctx_free)
            throw error
        }
        let reactor: Reactor
        let resolver: Resolver
        do {
            reactor = try Reactor(io: makeIOBackend(configuration))
            resolver = try Resolver(servers: configuration.dnsServers, reactor: reactor)
        } catch {
            contexts.forEach(hp_tls_ctx_free)
            throw error as? HotPoolError ?? HotPoolError.invalidConfiguration("reactor: \(error)")
        }
        let driver = PoolDriver(config: configuration, reactorIndex: reactorIndex, reactor: reactor, resolver: resolver, tlsContexts: contexts)
        reactor.ioHandler = { driver.handleIO($0, $1) }
        reactor.turnEnded = { driver.turnEnded() }
        return driver
    }

    /// Starts the reactor thread (its executors are set by then) and the pool's timers.
    /// - Throws: `HotPoolError.invalidConfiguration` when the thread cannot be started.
    package func start() throws {
        do {
            try reactor.start()
        } catch {
            discard()
            throw HotPoolError.invalidConfiguration("reactor thread: \(error)")
        }
        reactor.post { [self] in send(.start) }
    }

    /// Lets a driver whose reactor never started be freed: ends the cycles of the reactor's
    /// handlers and of the peers naming the driver.
    package func discard() {
        reactor.ioHandler = { _, _ in }
        reactor.turnEnded = {}
        peers.removeAll()
    }

    /// The configured I/O backend; under `.automatic`, epoll where io_uring is unavailable (said once, with why).
    private static func makeIOBackend(_ configuration: HotPoolConfiguration) throws -> any IOBackend {
        switch configuration.ioBackend {
        case .epoll:
            return try EpollBackend()
        case .ioUring:
            do {
                return try UringBackend()
            } catch {
                throw HotPoolError.invalidConfiguration("io_uring is unavailable (\(error))")
            }
        case .automatic:
            do {
                return try UringBackend()
            } catch {
                configuration.logger.notice("io_uring is unavailable; using epoll", metadata: ["reason": "\(error)"])
                return try EpollBackend()
            }
        }
    }
}
