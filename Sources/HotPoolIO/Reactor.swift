import CShims
import DequeModule
import Glibc
import HotPoolCore
import Synchronization

/// A single-threaded event loop: I/O completions from an `IOBackend`, timers, a cross-thread inbox,
/// and the jobs of tasks and actors that run on it as their executor. Everything except `post`,
/// `enqueue`, `stop` and `isOnReactorThread` runs on the reactor thread only; that confinement
/// is what makes the class safe to share (`@unchecked Sendable`).
package final class Reactor: @unchecked Sendable {
    private let inbox = Inbox()
    /// True while the loop is (about to be) blocked in the I/O backend's wait, so producers know to wake it.
    private let sleeping = Atomic<Bool>(false)
    /// Set by the first `stop` (or `detach`), which joins (or detaches) the thread.
    private let joinClaimed = Atomic<Bool>(false)
    /// Callers of `stop` waiting for the first one's join; run and sealed once it is done.
    private let joinWaiters = Inbox()
    /// Callers of `exited` waiting for the loop to end; run and sealed by the loop's last step.
    private let exitWaiters = Inbox()
    /// Producers inside `post`; the loop waits for them before closing the eventfd they signal.
    private let posters = Atomic<Int>(0)
    private var fdsClosed = false
    private let wakeFD: Int32
    /// The I/O backend; its operations are started on the reactor thread only.
    package let io: any IOBackend
    private var timers = TimerHeap()
    private var running = true
    private var thread = pthread_t()
    /// Jobs enqueued on the reactor thread itself: run in the same turn, no wake-up needed.
    @exclusivity(unchecked) private var localJobs = Deque<(job: UnownedJob, serial: Bool)>()
    private let lateJobs = LateJobs()
    /// The executors jobs run on: the serial one for actors' jobs, the task one for the jobs of
    /// tasks that prefer it (`HotPoolSerialExecutor` and `HotPoolExecutor`). Set before `start`.
    package var executors: (serial: UnownedSerialExecutor, task: UnownedTaskExecutor)?
    /// Items taken from the inbox since the start: each is one hop of work onto this thread from
    /// another (a post or a job). Reactor thread only.
    package private(set) var inboundHops = 0

    /// Called on the reactor thread for each I/O completion. Set before `start`.
    package var ioHandler: (UInt64, IOCompletion) -> Void = { _, _ in }
    /// Called on the reactor thread before each wait for I/O, when the turn's jobs have run:
    /// output the turn gathered goes out in one batch. Set before `start`.
    package var turnEnded: () -> Void = {}

    package init(io: any IOBackend) throws(SystemError) {
        let fd = hp_eventfd_create()
        guard fd >= 0 else { throw SystemError(call: "eventfd", errno: -fd) }
        do {
            try io.watchWakeups(fd: fd)
        } catch {
            _ = hp_close(fd)
            throw error
        }
        self.wakeFD = fd
        self.io = io
    }

    deinit {
        if !fdsClosed { closeFDs() }
        turnStart.deallocate()
    }

    private func closeFDs() {
        io.shutdown()
        _ = hp_close(wakeFD)
        fdsClosed = true
    }

    /// Starts the loop on a new thread (named `reactorThreadName` by the loop).
    package func start() throws(SystemError) {
        thread = try startThread { self.run() }
    }

    /// Runs `work` on the reactor thread, after everything this thread posted before.
    /// Returns false, without running it, once the reactor has stopped.
    @discardableResult
    package func post(_ work: @escaping @Sendable () -> Void) -> Bool { push(.work(work)) }

    /// Runs `job` on the reactor thread, as its serial executor's (`serial`) or its task
    /// executor's: in the current turn if enqueued there, else through the inbox (waking the loop
    /// if it sleeps); once the loop has ended, on `lateJobs`.
    package func enqueue(_ job: UnownedJob, serial: Bool) {
        if isOnReactorThread {
            localJobs.append((job, serial))
        } else if !push(.job(job, serial: serial)) {
            lateJobs.enqueue(job, serial: serial) { [self] in runJob($0, serial: $1) }
        }
    }

    private func push(_ item: Inbox.Item) -> Bool {
        posters.add(1, ordering: .sequentiallyConsistent)
        defer { posters.subtract(1, ordering: .sequentiallyConsistent) }
        guard inbox.push(item) else { return false }
        // Wake the loop only if it is (about to be) blocked; see `run` for the other half.
        if sleeping.exchange(false, ordering: .sequentiallyConsistent) {
            _ = hp_eventfd_signal(wakeFD)
        }
        return true
    }

    /// Ends the loop after the work posted before it (work posted later is refused) and returns
    /// once the thread has been joined, to every caller: the first joins it (the loop ends right
    /// after the work already posted, so that wait is short), the others wait for that join.
    /// Safe to call more than once and from any thread but the reactor's own.
    package func stop() async {
        precondition(!isOnReactorThread, "Reactor.stop() would join its own thread")
        requestStop()
        if !joinClaimed.exchange(true, ordering: .sequentiallyConsistent) {
            pthread_join(thread, nil)
            joinWaiters.drain(seal: true)
        } else {
            await Handoff<Void>.wait { handoff in
                if !joinWaiters.push({ handoff.tryDeliver(()) }) { handoff.tryDeliver(()) }
            }
        }
    }

    /// Asks the loop to end after the work posted before; does not wait.
    package func requestStop() {
        post { self.running = false }
    }

    /// Returns once the loop has ended (its fds are closed; the thread may not be joined yet).
    package func exited() async {
        await Handoff<Void>.wait { handoff in
            if !exitWaiters.push({ handoff.tryDeliver(()) }) { handoff.tryDeliver(()) }
        }
    }

    /// Lets the thread end on its own, never blocking (for an owner that goes away without
    /// `stop`, possibly on a cooperative thread or the reactor's own).
    package func detach() {
        requestStop()
        if !joinClaimed.exchange(true, ordering: .sequentiallyConsistent) {
            pthread_detach(thread)
            joinWaiters.drain(seal: true)
        }
    }

    /// True once the thread has been joined (by `stop`) or detached (by `detach`): nothing of it
    /// is left to free.
    package var threadReleased: Bool { joinClaimed.load(ordering: .sequentiallyConsistent) }

    /// True on the reactor thread while its loop runs (false there once the loop has ended).
    @inlinable package var isOnReactorThread: Bool {
        let current: UnsafeRawPointer? = hp_current_loop()
        return current == UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque())
    }

    // MARK: reactor thread only

    /// Monotonic nanoseconds, read once per turn of the loop (a get and a put on the same turn
    /// need not pay a clock read each): stale by at most the time the current turn has run.
    /// Kept behind a constant pointer, so the driver's read, inlined in its own module, is a
    /// plain load: a variable stored property read across modules is checked for exclusivity at
    /// run time.
    @inlinable package var now: Int64 { turnStart.pointee }
    @usableFromInline let turnStart: UnsafeMutablePointer<Int64> = {
        let clock = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        clock.initialize(to: hp_monotonic_ns())
        return clock
    }()

    package func schedule(at deadline: Int64, _ callback: @escaping () -> Void) -> TimerID {
        timers.schedule(at: deadline, callback)
    }

    package func cancel(_ timer: TimerID) { timers.cancel(timer) }

    private func run() {
        hp_block_sigpipe()
        hp_set_current_loop(Unmanaged.passUnretained(self).toOpaque())
        hp_name_thread(reactorThreadName)
        do {
            try io.start()  // io_uring: this thread becomes the ring's only submitter
        } catch {
            fatalError("HotPool reactor: \(error)")
        }
        while running {
            turnStart.pointee = hp_monotonic_ns()
            inbox.drain(taking: { inboundHops &+= $0 }, runJob: runJob)
            runDueTimers()
            guard running else { break }
            runLocalJobs()
            turnEnded()
            // Announce the sleep, then look at the inbox once more: a producer either sees
            // `sleeping` and signals the eventfd, or pushed before this check and is seen here.
            sleeping.store(true, ordering: .sequentiallyConsistent)
            turnStart.pointee = hp_monotonic_ns()
            let idle = inbox.isEmpty && localJobs.isEmpty
            let timeout: Int64? = idle ? timers.nextDeadline().map { max(0, $0 - turnStart.pointee) } : 0
            var woke = false
            do {
                try io.wait(timeoutNanos: timeout) { token, completion in
                    if !woke {
                        turnStart.pointee = hp_monotonic_ns()  // the wait may have slept
                        woke = true
                    }
                    ioHandler(token, completion)
                }
            } catch {
                fatalError("HotPool reactor: \(error)")
            }
            sleeping.store(false, ordering: .sequentiallyConsistent)
            // The tasks this turn's I/O resumed run now, before the next wait.
            runLocalJobs()
        }
        // Closes under way finish (their completions free what they held) before the loop ends.
        while io.closesInFlight > 0 {
            do {
                try io.wait(timeoutNanos: nil) { ioHandler($0, $1) }
            } catch {
                fatalError("HotPool reactor: \(error)")
            }
        }
        ioHandler = { _, _ in }  // drops the owner's handlers and the references they hold
        turnEnded = {}
        timers.removeAll()
        // Jobs still queued, or enqueued from now on, run on `lateJobs`: never lost.
        hp_set_current_loop(nil)
        let runLate: @Sendable (UnownedJob, Bool) -> Void = { [self] in runJob($0, serial: $1) }
        while let (job, serial) = localJobs.popFirst() { lateJobs.enqueue(job, serial: serial, run: runLate) }
        // Refuse later posts and run what was accepted, so no caller waits forever.
        inbox.drain(seal: true, runJob: { job, serial in lateJobs.enqueue(job, serial: serial, run: runLate) })
        // A producer whose push got in before the seal may still be about to signal the eventfd.
        while posters.load(ordering: .sequentiallyConsistent) != 0 { sched_yield() }
        closeFDs()
        exitWaiters.drain(seal: true)
    }

    /// Jobs run per pass, so tasks that keep re-enqueueing themselves cannot starve I/O and timers.
    private static let jobsPerPass = 4096

    /// Runs the local jobs, those they enqueue too, up to `jobsPerPass`.
    private func runLocalJobs() {
        guard !localJobs.isEmpty else { return }
        turnStart.pointee = hp_monotonic_ns()
        var budget = Self.jobsPerPass
        while budget > 0, let (job, serial) = localJobs.popFirst() {
            runJob(job, serial: serial)
            budget -= 1
        }
    }

    private func runJob(_ job: UnownedJob, serial: Bool) {
        if serial {
            job.runSynchronously(on: executors!.serial)
        } else {
            job.runSynchronously(on: executors!.task)
        }
    }

    private func runDueTimers() {
        while let callback = timers.popDue(now: turnStart.pointee) { callback() }
    }
}

/// Runs the jobs that reach an executor after its loop ended, one at a time, in order, on a
/// short-lived thread: a task or actor that outlives its pool is neither lost nor run
/// concurrently. Lock-free: whoever takes `pending` from 0 to 1 starts the thread, which drains
/// until every counted job has run.
private final class LateJobs: Sendable {
    private let queue = Inbox()
    private let pending = Atomic<Int>(0)

    func enqueue(_ job: UnownedJob, serial: Bool, run: @escaping @Sendable (UnownedJob, Bool) -> Void) {
        _ = queue.push(.job(job, serial: serial))
        guard pending.add(1, ordering: .sequentiallyConsistent).newValue == 1 else { return }
        do {
            pthread_detach(try startThread { [self] in
                var ran = 0
                repeat {
                    ran = queue.drain(runJob: run)
                } while pending.subtract(ran, ordering: .sequentiallyConsistent).newValue > 0
            })
        } catch {
            fatalError("HotPool: no thread for jobs enqueued after the pool closed: \(error)")
        }
    }
}

/// A box carrying a thread's body through pthread_create's context pointer.
private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// The name of every reactor thread (at most 15 bytes, the kernel's limit).
package let reactorThreadName = "hotpool-reactor"

/// Starts a thread running `body`.
package func startThread(_ body: @escaping () -> Void) throws(SystemError) -> pthread_t {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, context)
    if rc != 0 {
        Unmanaged<ThreadBody>.fromOpaque(context).release()
        throw SystemError(call: "pthread_create", errno: rc)
    }
    return thread
}
