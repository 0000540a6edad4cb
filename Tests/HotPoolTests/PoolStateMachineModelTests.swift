import Testing
@testable import HotPool

/// The state machine against a small reference model (`PoolModel`), over a million random
/// events: a fake driver (`ModelRun`) answers its actions as the real one does (dials complete,
/// over HTTP/1.1 or HTTP/2, or fail; exchanges, streams, probes and PINGs end; a server sends a
/// GOAWAY, changes its stream limit, refuses a stream or breaks a connection; lookups answer;
/// timers fire as the test's clock moves), and after every event the model's own books are
/// compared with the machine's and with the rules. A failing run replays from its seed
/// (`HOTPOOL_MACHINE_SEED`, with `SWIFT_DETERMINISTIC_HASHING=1`: the fake driver picks from
/// dictionaries).
@Suite struct PoolStateMachineModelTests {
    @Test func randomizedEventsKeepEveryRuleOfAReferenceModel() {
        let total = Int(environment("HOTPOOL_MACHINE_EVENTS") ?? "") ?? 1_000_000
        let seed = environment("HOTPOOL_MACHINE_SEED").flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        var run = ModelRun(seed: seed)
        for step in 0..<total {
            run.step(step)
            if run.failures > 0 { break }
            if step % 50_000 == 49_999 { run.closeAndRestart() }
        }
        run.closeAndRestart()
        #expect(run.failures == 0, "seed \(seed)")
        // (IPs stay blacklisted until a recovery probe passes, so a share of gets fail.)
        #expect(run.leases > total / 40 && run.destroyed > total / 100, "the run exercised the pool (seed \(seed)): \(run.leases) leases, \(run.destroyed) destroyed")
        #expect(run.sharedLeases > total / 1_000 && run.streamExchanges > total / 1_000 && run.retriedRequests > total / 10_000
                && run.goAways > total / 1_000 && run.pingsAnswered > total / 10_000,
                """
                the run exercised HTTP/2 (seed \(seed)): \(run.sharedLeases) leases of a connection other callers held, \
                \(run.streamExchanges) stream exchanges, \(run.retriedRequests) refused streams retried, \(run.goAways) GOAWAYs, \
                \(run.pingsAnswered) PINGs answered
                """)
    }
}
