import HotPoolCore
import Synchronization

/// One result handed from the reactor thread to the task awaiting it: the task makes the
/// handoff, passes it to the reactor with its request, and suspends until a value is delivered.
/// Delivery is idempotent: the first `tryDeliver` wins and later ones are refused, so a close
/// racing a cancellation (or a refused post racing the reactor) cannot resume the task twice.
///
/// The continuation's resume already orders the two threads, but ThreadSanitizer does not see
/// that ordering on this toolchain (a value made on a plain thread and passed through `resume`
/// is reported as a race), so the value also crosses through a release/acquire pair it does see.
///
/// Inlinable: the driver and the API use it with their own result types, and a generic call
/// across modules would otherwise run unspecialized on every request.
package final class Handoff<T: Sendable>: @unchecked Sendable {
    @usableFromInline var continuation: CheckedContinuation<Void, Never>?
    /// Written once by the winning `tryDeliver`, before `state` becomes `delivered`.
    @usableFromInline var value: T?
    @usableFromInline let state = Atomic<UInt8>(waiting)
    @usableFromInline let cancelRequested = Atomic<Bool>(false)

    @usableFromInline static var waiting: UInt8 { 0 }
    @usableFromInline static var claimed: UInt8 { 1 }
    @usableFromInline static var delivered: UInt8 { 2 }

    @inlinable package init() {}

    /// Makes a handoff, runs `start` with it, and returns what is delivered.
    @inlinable package nonisolated(nonsending) static func wait(_ start: (Handoff) -> Void) async -> T {
        await Handoff().wait(start)
    }

    /// Runs `start` with this handoff (it passes the handoff to the reactor, or delivers at
    /// once) and returns what is delivered, resuming in the caller's isolation. Call once.
    @inlinable package nonisolated(nonsending) func wait(_ start: (Handoff) -> Void) async -> T {
        // Checked, though `state` already makes the resume happen once and a checked continuation
        // costs an allocation per wait: with an unsafe one, ThreadSanitizer reports the resumed
        // task's frame as raced between the reactor's resume and the task's next thread, an
        // ordering made inside the (uninstrumented) concurrency runtime that it cannot see.
        await withCheckedContinuation { continuation in
            self.continuation = continuation
            start(self)
        }
        precondition(state.load(ordering: .acquiring) == Self.delivered, "handoff resumed without a value")
        return value!
    }

    /// Hands `value` to the waiting task and resumes it, unless a value was delivered already.
    /// Returns whether this call delivered.
    @discardableResult @inlinable
    package func tryDeliver(_ value: T) -> Bool {
        guard state.compareExchange(expected: Self.waiting, desired: Self.claimed, ordering: .acquiring).exchanged else {
            return false
        }
        self.value = value
        state.store(Self.delivered, ordering: .releasing)
        continuation!.resume()
        return true
    }

    /// Marks the waiting task as cancelled (from the task's cancellation handler, any thread), so
    /// a request that reaches the reactor after the cancel can be refused there.
    @inlinable package func requestCancel() {
        cancelRequested.store(true, ordering: .releasing)
    }

    @inlinable package var isCancelRequested: Bool { cancelRequested.load(ordering: .acquiring) }
}
