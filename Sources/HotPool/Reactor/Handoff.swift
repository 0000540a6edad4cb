import CShims

// Results cross from the reactor thread to the awaiting tasks through continuations. The
// handoff is also announced to ThreadSanitizer (`CShims/tsan.c` says why); outside TSan builds
// the announcements do nothing.

extension CheckedContinuation {
    /// Resumes the awaiting task with what the reactor thread made.
    func resumeFromReactor(with result: sending Result<T, E>) {
        hp_tsan_handoff_release()
        resume(with: result)
    }

    /// Resumes the awaiting task with a value the reactor thread made.
    func resumeFromReactor(returning value: sending T) where E == Never {
        hp_tsan_handoff_release()
        resume(returning: value)
    }
}

/// Awaits what the reactor thread hands over through `resumeFromReactor`.
func awaitReactor<T: Sendable>(_ body: (CheckedContinuation<T, any Error>) -> Void) async throws -> T {
    defer { hp_tsan_handoff_acquire() }
    return try await withCheckedThrowingContinuation(body)
}

/// Awaits what the reactor thread hands over through `resumeFromReactor`.
func awaitReactor<T: Sendable>(_ body: (CheckedContinuation<T, Never>) -> Void) async -> T {
    defer { hp_tsan_handoff_acquire() }
    return await withCheckedContinuation(body)
}
