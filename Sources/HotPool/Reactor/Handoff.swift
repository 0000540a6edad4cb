import Synchronization

/// One result handed from the reactor thread to the task awaiting it: the task makes the
/// handoff, passes it to the reactor with its request, and suspends until `deliver`.
///
/// The continuation's resume already orders the two threads, but ThreadSanitizer does not see
/// that ordering on this toolchain (a value made on a plain thread and passed through `resume`
/// is reported as a race), so the value also crosses through a release/acquire pair it does see.
final class Handoff<T: Sendable>: @unchecked Sendable {
    private var continuation: CheckedContinuation<Void, Never>?
    /// Written once by `deliver`, before `delivered`; read once by `wait`, after it.
    private var value: T?
    private let delivered = Atomic<Bool>(false)

    private init() {}

    /// Makes a handoff, runs `start` with it (which passes it to the reactor, or delivers at
    /// once), and returns what is delivered.
    static func wait(_ start: (Handoff) -> Void) async -> T {
        let handoff = Handoff()
        await withCheckedContinuation { continuation in
            handoff.continuation = continuation
            start(handoff)
        }
        precondition(handoff.delivered.load(ordering: .acquiring), "handoff resumed without a value")
        return handoff.value!
    }

    /// Hands `value` to the waiting task and resumes it. Call once.
    func deliver(_ value: T) {
        self.value = value
        delivered.store(true, ordering: .releasing)
        continuation!.resume()
    }
}
