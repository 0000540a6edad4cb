import Glibc
import HotPoolCore
import HotPoolIO
import HotPoolStateMachine

/// `execute`'s retry policy: whether an attempt runs again, the wait before it (a reactor timer:
/// no thread blocks and no connection is held), and the next attempt's get, which prefers
/// another IP of the host.
extension PoolDriver {
    /// The caller waiting under `id` was cancelled: an `execute` waiting to be retried ends now,
    /// any other waiter is the machine's to fail.
    package func cancel(_ id: WaiterID) {
        guard let (pending, timer) = awaitingRetry.removeValue(forKey: id) else { return send(.cancel(id)) }
        reactor.cancel(timer)
        pending.handoff.tryDeliver(.failure(.cancelled))
    }

    /// The wait before the `execute`'s next attempt, nil if the one that ended with `result` is
    /// its answer: no policy retries it, no attempt is left, its caller was cancelled, or the
    /// pool is closing.
    func retryDelay(_ pending: PendingExecute, after result: Result<HotResponse, HotPoolError>) -> Duration? {
        guard let policy = pending.retryPolicy, pending.attempt < policy.maxAttempts, !pending.handoff.isCancelRequested,
              !machine.closed, policy.retries(pending.request.method, after: result)
        else { return nil }
        let retryAfter = (try? result.get())?.head.headerFields[.retryAfter].flatMap {
            RetryPolicy.retryAfter($0, now: Int64(time(nil)))
        }
        return policy.delay(beforeAttempt: pending.attempt + 1, retryAfter: retryAfter, random: .random(in: 0..<1))
    }

    /// Runs the `execute`'s next attempt after `delay`, on a connection to another IP than `ip`
    /// (the last attempt's) if its host has one in rotation. It waits under its caller's id, so a
    /// cancel ends the wait (`cancel`), and so does the pool's close.
    func scheduleRetry(_ pending: PendingExecute, after delay: Duration, attemptFailed: Bool, avoiding ip: String?) {
        pending.attempt += 1
        pending.priorAttempt = attemptFailed ? .failed : .answered
        let id = pending.waiterID!
        logger.debug("retrying a request", metadata: ["attempt": "\(pending.attempt)", "after": "\(delay)", "ip": "\(ip ?? "")"])
        let timer = reactor.schedule(at: HotPoolCore.deadline(from: reactor.now, after: delay.nanoseconds)) { [unowned self] in
            awaitingRetry[id] = nil
            var request = pending.acquire
            request.avoidedIP = ip
            ask(id, .execute(pending), .acquire(id, request))
        }
        awaitingRetry[id] = (pending, timer)
    }

    /// The pool closes: `execute`s waiting to be retried end with `poolClosed`.
    func failAwaitingRetry() {
        for (pending, timer) in awaitingRetry.values {
            reactor.cancel(timer)
            pending.handoff.tryDeliver(.failure(.poolClosed))
        }
        awaitingRetry.removeAll()
    }
}
