import HotPoolCore
import Synchronization

/// A multi-producer, single-consumer queue built from one atomic pointer: producers push onto a
/// Treiber stack, the reactor takes the whole stack at once and reverses it, so each producer's
/// items come out in the order it pushed them. No locks. Once sealed, pushes are refused.
final class Inbox: Sendable {
    /// What crosses: a closure to run, or a job of a task or actor on the reactor's executor.
    enum Item: Sendable {
        case work(@Sendable () -> Void)
        /// A job for the reactor's serial executor (an actor's) or its task executor.
        case job(UnownedJob, serial: Bool)
    }

    /// One queued item; `next` is written before the node is published and read after it is taken.
    private final class Node: @unchecked Sendable {
        let item: Item
        var next: Unmanaged<Node>?
        init(_ item: Item) { self.item = item }
    }

    /// Marks a sealed inbox; never executed. One per inbox, made with it: a lazily made global
    /// put a `swift_once` on every push, and in one run under ThreadSanitizer this toolchain's
    /// once lost a wake-up, leaving nine producers blocked in it for good.
    private let sealedMarker = Unmanaged.passRetained(Node(.work({})))

    deinit { sealedMarker.release() }

    private let head = Atomic<Unmanaged<Node>?>(nil)

    /// Queues `work`; false if the inbox is sealed (its reactor has stopped).
    func push(_ work: @escaping @Sendable () -> Void) -> Bool { push(.work(work)) }

    /// Queues `item`; false if the inbox is sealed.
    func push(_ item: Item) -> Bool {
        let node = Unmanaged.passRetained(Node(item))
        // Acquiring: a refused push must see everything the reactor wrote before sealing.
        var current = head.load(ordering: .acquiring)
        while true {
            if current?.toOpaque() == sealedMarker.toOpaque() {
                node.release()
                return false
            }
            node.takeUnretainedValue().next = current
            let (exchanged, original) = head.compareExchange(
                expected: current, desired: node, successOrdering: .sequentiallyConsistent,
                failureOrdering: .acquiring)
            if exchanged { return true }
            current = original
        }
    }

    /// True if nothing is queued (sequentially consistent, for the reactor's sleep check).
    var isEmpty: Bool {
        let current = head.load(ordering: .sequentiallyConsistent)
        return current == nil || current?.toOpaque() == sealedMarker.toOpaque()
    }

    /// Runs everything queued, in push order per producer: closures are called, jobs handed to
    /// `runJob` (an inbox that carries jobs must be drained with one). `taking` is told how many
    /// items were taken before any runs. Returns how many items ran.
    @discardableResult
    func drain(
        seal: Bool = false, taking: (Int) -> Void = { _ in },
        runJob: (UnownedJob, _ serial: Bool) -> Void = { _, _ in preconditionFailure("a job in a closure-only inbox") }
    ) -> Int {
        let replacement: Unmanaged<Node>? = seal ? sealedMarker : nil
        guard var stack = head.exchange(replacement, ordering: .sequentiallyConsistent),
            stack.toOpaque() != sealedMarker.toOpaque()
        else { return 0 }
        // Reverse the stack into FIFO order.
        var fifo: Unmanaged<Node>? = nil
        var count = 0
        while true {
            let next = stack.takeUnretainedValue().next
            stack.takeUnretainedValue().next = fifo
            fifo = stack
            count += 1
            guard let n = next else { break }
            stack = n
        }
        taking(count)
        while let node = fifo {
            fifo = node.takeUnretainedValue().next
            switch node.takeUnretainedValue().item {
            case .work(let work): work()
            case .job(let job, let serial): runJob(job, serial)
            }
            node.release()
        }
        return count
    }
}
