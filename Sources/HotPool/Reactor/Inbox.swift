import Synchronization

/// A multi-producer, single-consumer queue built from one atomic pointer: producers push onto a
/// Treiber stack, the reactor takes the whole stack at once and reverses it, so each producer's
/// items come out in the order it pushed them. No locks. Once sealed, pushes are refused.
final class Inbox: Sendable {
    /// One queued closure; `next` is written before the node is published and read after it is taken.
    private final class Node: @unchecked Sendable {
        let work: @Sendable () -> Void
        var next: Unmanaged<Node>?
        init(_ work: @escaping @Sendable () -> Void) { self.work = work }
    }

    /// Marks a sealed inbox; never executed. One per inbox, made with it: a lazily made global
    /// put a `swift_once` on every push, and in one run under ThreadSanitizer this toolchain's
    /// once lost a wake-up, leaving nine producers blocked in it for good.
    private let sealedMarker = Unmanaged.passRetained(Node({}))

    deinit { sealedMarker.release() }

    private let head = Atomic<Unmanaged<Node>?>(nil)

    /// Queues `work`; false if the inbox is sealed (its reactor has stopped).
    func push(_ work: @escaping @Sendable () -> Void) -> Bool {
        let node = Unmanaged.passRetained(Node(work))
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

    /// Runs everything queued, in push order per producer. Returns how many ran.
    @discardableResult
    func drain(seal: Bool = false) -> Int {
        let replacement: Unmanaged<Node>? = seal ? sealedMarker : nil
        guard var stack = head.exchange(replacement, ordering: .sequentiallyConsistent),
            stack.toOpaque() != sealedMarker.toOpaque()
        else { return 0 }
        // Reverse the stack into FIFO order.
        var fifo: Unmanaged<Node>? = nil
        while true {
            let next = stack.takeUnretainedValue().next
            stack.takeUnretainedValue().next = fifo
            fifo = stack
            guard let n = next else { break }
            stack = n
        }
        var count = 0
        while let node = fifo {
            fifo = node.takeUnretainedValue().next
            node.takeUnretainedValue().work()
            node.release()
            count += 1
        }
        return count
    }
}
