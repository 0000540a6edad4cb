import HotPoolCore
import HotPoolDriver
import HotPoolHTTP
import HotPoolIO
import HotPoolStateMachine

/// A pool's reactor thread as a task executor, so callers can run there and reach the pool with
/// no thread hop: `pool.executor`, or with several reactors each of `pool.executors` (a call
/// made on one is served by that reactor, with its connections).
///
/// Prefer it for a task or a scope:
/// ```swift
/// let status = try await Task(executorPreference: pool.executor) {
///     let connection = try await pool.getConnection(host: "example.com")  // no suspension when one is idle
///     defer { pool.putConnection(connection) }                           // a plain call
///     return try await connection.roundTrip(request).head.status          // resumed by the reactor itself
/// }.value
/// try await withTaskExecutorPreference(pool.executor) { ... }
/// ```
/// An actor can run on the same thread through `serialExecutor`. Code running here shares the
/// thread with every connection of the pool: keep it short and never block it (no blocking
/// system calls, no waiting on locks or semaphores); a long loop of calls that do not suspend
/// (gets of idle connections, puts) holds the thread too, so let it `await Task.yield()` now
/// and then. Tasks that prefer this executor keep it alive; an actor on it keeps its pool alive. Jobs that arrive after the pool closed
/// still run, one at a time, on a thread of their own; the pool's calls then fail with
/// `poolClosed` as they do anywhere else.
public final class HotPoolExecutor: TaskExecutor {
    let reactor: Reactor
    /// The same thread as the serial executor of actors: use
    /// `pool.executor.serialExecutor.asUnownedSerialExecutor()` as an actor's `unownedExecutor`.
    /// Call such an actor from a task that prefers `pool.executor` and its round trips resume
    /// on the reactor too; from elsewhere, the Swift runtime resumes its awaits through the
    /// global executor (one hop each), while calls that do not suspend stay direct.
    public let serialExecutor: HotPoolSerialExecutor

    init(reactor: Reactor) {
        self.reactor = reactor
        self.serialExecutor = HotPoolSerialExecutor(reactor: reactor)
        reactor.executors = (serialExecutor.asUnownedSerialExecutor(), asUnownedTaskExecutor())
    }

    /// Runs `job` on the reactor thread: in the current loop turn when enqueued from that
    /// thread, otherwise through the reactor's lock-free inbox, waking it if it sleeps.
    public func enqueue(_ job: consuming ExecutorJob) {
        reactor.enqueue(UnownedJob(job), serial: false)
    }
}

/// A pool's reactor thread as the serial executor of actors (`pool.executor.serialExecutor`):
/// an actor whose `unownedExecutor` it is runs its methods on the reactor thread, and calls the
/// pool there directly.
/// ```swift
/// actor Crawler {
///     let pool: HotConnPool
///     nonisolated var unownedExecutor: UnownedSerialExecutor {
///         pool.executor.serialExecutor.asUnownedSerialExecutor()
///     }
/// }
/// ```
public final class HotPoolSerialExecutor: SerialExecutor {
    let reactor: Reactor

    init(reactor: Reactor) { self.reactor = reactor }

    /// Runs `job` on the reactor thread, as `HotPoolExecutor.enqueue` does.
    public func enqueue(_ job: consuming ExecutorJob) {
        reactor.enqueue(UnownedJob(job), serial: true)
    }

    /// Stops the program unless called on the reactor thread (for `assumeIsolated` and
    /// `preconditionIsolated` of actors that use this executor).
    public func checkIsolated() {
        precondition(reactor.isOnReactorThread, "not on the HotPool reactor thread")
    }

    /// Whether the caller runs on the reactor thread.
    public func isIsolatingCurrentContext() -> Bool? {
        reactor.isOnReactorThread
    }
}
