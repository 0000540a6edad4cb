import HotPoolCore

/// Identifies a scheduled timer so it can be cancelled.
package struct TimerID: Hashable {
    fileprivate let value: UInt64
}

/// A binary min-heap of timers ordered by (deadline, scheduling order). Cancellation is lazy: a
/// cancelled timer's callback is dropped and its entry skipped when it reaches the top.
package struct TimerHeap {
    private struct Entry {
        let deadline: Int64
        let id: UInt64
    }

    private var entries: [Entry] = []
    private var callbacks: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 0

    var isEmpty: Bool { callbacks.isEmpty }

    mutating func schedule(at deadline: Int64, _ callback: @escaping () -> Void) -> TimerID {
        nextID += 1
        callbacks[nextID] = callback
        entries.append(Entry(deadline: deadline, id: nextID))
        siftUp(entries.count - 1)
        return TimerID(value: nextID)
    }

    mutating func cancel(_ id: TimerID) {
        callbacks[id.value] = nil
    }

    /// The earliest live deadline, if any.
    mutating func nextDeadline() -> Int64? {
        dropCancelledTop()
        return entries.first?.deadline
    }

    /// Removes and returns the callback of the earliest timer due at `now`, if any.
    mutating func popDue(now: Int64) -> (() -> Void)? {
        dropCancelledTop()
        guard let top = entries.first, top.deadline <= now else { return nil }
        removeTop()
        return callbacks.removeValue(forKey: top.id)
    }

    /// Drops every timer.
    mutating func removeAll() {
        entries.removeAll()
        callbacks.removeAll()
    }

    private mutating func dropCancelledTop() {
        while let top = entries.first, callbacks[top.id] == nil { removeTop() }
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        (entries[a].deadline, entries[a].id) < (entries[b].deadline, entries[b].id)
    }

    private mutating func removeTop() {
        entries.swapAt(0, entries.count - 1)
        entries.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < entries.count && less(l, m) { m = l }
            if r < entries.count && less(r, m) { m = r }
            if m == i { return }
            entries.swapAt(i, m)
            i = m
        }
    }

    private mutating func siftUp(_ index: Int) {
        var i = index
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(i, parent) else { return }
            entries.swapAt(i, parent)
            i = parent
        }
    }
}
