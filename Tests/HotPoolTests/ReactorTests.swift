import CShims
import Glibc
import Synchronization
import Testing
@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolIO

/// Collects values on the reactor thread (touched only there).
private final class ReactorLog: @unchecked Sendable {
    var values: [Int] = []
}

/// Posts counted on producer threads (read once they are joined).
private final class PostCount: Sendable {
    let count = Atomic<Int>(0)
}

@Suite struct ReactorTests {
    @Test func inboxDeliversEveryPostExactlyOnceInPerThreadOrder() async throws {
        let reactor = try Reactor(io: EpollBackend())
        try reactor.start()
        let threads = 8
        let perThread = Int(environment("HOTPOOL_INBOX_POSTS") ?? "") ?? 100_000
        let log = ReactorLog()
        // The producers are plain threads, outside any test's task: they count refused posts, and
        // the test checks the count once they are joined (an expectation on such a thread would
        // be recorded against no test).
        let refused = PostCount()
        var producers: [pthread_t] = []
        for t in 0..<threads {
            producers.append(try startThread {
                for i in 0..<perThread {
                    let value = t * perThread + i
                    if !reactor.post({ log.values.append(value) }) { refused.count.add(1, ordering: .relaxed) }
                }
            })
        }
        for p in producers { pthread_join(p, nil) }
        #expect(refused.count.load(ordering: .relaxed) == 0, "a running reactor refused posts")
        await reactor.stop()
        // Stopped and joined: the log is ours now.
        #expect(log.values.count == threads * perThread)
        var next = [Int](repeating: 0, count: threads)
        for value in log.values {
            let (t, i) = value.quotientAndRemainder(dividingBy: perThread)
            #expect(i == next[t], "thread \(t) out of order")
            next[t] = i + 1
        }
        #expect(next == [Int](repeating: perThread, count: threads))
    }

    @Test func timersFireInDeadlineOrderAndCancelledOnesDoNot() async throws {
        let reactor = try Reactor(io: EpollBackend())
        try reactor.start()
        let log = ReactorLog()
        reactor.post {
            let base = reactor.now
            // Scheduled out of order, two with the same deadline (kept in scheduling order).
            for (index, offsetMillis) in [(0, 30), (1, 10), (2, 20), (3, 20), (4, 5)] {
                _ = reactor.schedule(at: base + Int64(offsetMillis) * 1_000_000) { log.values.append(index) }
            }
            let cancelled = reactor.schedule(at: base + 15_000_000) { log.values.append(99) }
            reactor.cancel(cancelled)
            _ = reactor.schedule(at: base + 40_000_000) { log.values.append(reactor.now >= base + 40_000_000 ? 5 : -1) }
        }
        // Wait (bounded) for the last timer, reading the log on the reactor.
        for _ in 0..<200 {
            if try postAndWait(reactor, { log.values.count }) == 6 { break }
            usleep(5_000)
        }
        await reactor.stop()
        #expect(log.values == [4, 1, 2, 3, 0, 5])
    }

    @Test func stopJoinsTheThreadAndLaterPostsAreRefused() async throws {
        let reactor = try Reactor(io: EpollBackend())
        try reactor.start()
        let ran = ReactorLog()
        for i in 0..<1000 { reactor.post { ran.values.append(i) } }
        await reactor.stop()
        #expect(ran.values.count == 1000, "work posted before stop runs")
        #expect(!reactor.post { ran.values.append(-1) })
        await reactor.stop()  // idempotent
        #expect(ran.values.count == 1000)
    }

    @Test func timerHeapOrdersByDeadlineThenSchedulingOrder() {
        var heap = TimerHeap()
        var fired: [Int] = []
        var rng = SystemRandomNumberGenerator()
        var expected: [(Int64, Int)] = []
        var ids: [TimerID] = []
        for i in 0..<2000 {
            let deadline = Int64.random(in: 0..<500, using: &rng)
            ids.append(heap.schedule(at: deadline) { fired.append(i) })
            expected.append((deadline, i))
        }
        for i in stride(from: 0, to: 2000, by: 7) { heap.cancel(ids[i]) }
        let survivors = expected.filter { $0.1 % 7 != 0 }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.1)
        while let callback = heap.popDue(now: .max) { callback() }
        #expect(fired == survivors)
        #expect(heap.isEmpty)
    }
}

/// Runs `body` on the reactor and waits for its result on this (non-reactor) thread.
func postAndWait<T: Sendable>(_ reactor: Reactor, _ body: @escaping @Sendable () -> T) throws -> T? {
    let box = ResultBox<T>()
    guard reactor.post({ box.set(body()) }) else { return nil }
    while true {
        if let value = box.get() { return value }
        usleep(500)
    }
}

/// A one-shot value handed from the reactor to a test thread through an atomic flag.
final class ResultBox<T>: @unchecked Sendable {
    private var value: T?
    private let ready = Atomic<Bool>(false)
    func set(_ v: T) {
        value = v
        ready.store(true, ordering: .releasing)
    }
    func get() -> T? { ready.load(ordering: .acquiring) ? value : nil }
}

func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

/// Where the threads of `everyConcurrentStopReturnsAfterTheLoopEnded` meet.
private final class StopRace: Sendable {
    let gate = Atomic<Bool>(false)
    let loopEnded = Atomic<Bool>(false)
    let stopping = Atomic<Int>(0)
}

/// `stop` from several tasks at once: every caller returns only once the loop has ended and the
/// thread is joined, not just the one that joins.
@Test func everyConcurrentStopReturnsAfterTheLoopEnded() async throws {
    let reactor = try Reactor(io: EpollBackend())
    try reactor.start()
    let race = StopRace()
    // Holds the loop until every stopper has asked; the last posted work marks the end.
    reactor.post { while !race.gate.load(ordering: .acquiring) { sched_yield() } }
    reactor.post { race.loopEnded.store(true, ordering: .releasing) }
    let opener = try startThread {
        while race.stopping.load(ordering: .acquiring) < 8 { sched_yield() }
        race.gate.store(true, ordering: .releasing)
    }
    let sawEnd = await withTaskGroup(of: Bool.self) { group in
        for _ in 0..<8 {
            group.addTask {
                race.stopping.add(1, ordering: .releasing)
                await reactor.stop()
                return race.loopEnded.load(ordering: .acquiring)
            }
        }
        return await group.reduce(into: [Bool]()) { $0.append($1) }
    }
    pthread_join(opener, nil)
    #expect(sawEnd == [Bool](repeating: true, count: 8))
}
