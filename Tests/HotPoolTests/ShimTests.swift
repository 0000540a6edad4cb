import CShims
import Glibc
import HotPoolCore
import Testing

/// CShims wrappers against the kernel directly: timerfd (which no backend uses: the reactor's
/// timers are the backends' wait timeouts) and io_uring's poll; and the shim's constants the
/// Swift layers restate.
@Suite struct ShimTests {
    /// The configuration (no C) refuses more SETTINGS than the shim's preface array holds.
    @Test func theSettingsLimitIsTheShims() {
        #expect(HTTP2Fingerprint.maxSettings == Int(HP_H2_MAX_SETTINGS))
    }

    @Test func timerfdBecomesReadableWhenItExpires() throws {
        let epfd = hp_epoll_create(), timer = hp_timerfd_create()
        #expect(epfd >= 0 && timer >= 0)
        defer { _ = hp_close(timer); _ = hp_close(epfd) }
        #expect(hp_epoll_add(epfd, timer, HP_EV_IN, 7) == 0)
        let start = hp_monotonic_ns()
        #expect(hp_timerfd_arm(timer, 20_000_000) == 0)
        var events = [hp_event](repeating: hp_event(), count: 4)
        // 0 is an interrupted wait (EINTR: ThreadSanitizer's signals, say): wait again, within 2 s.
        var n: Int32 = 0
        while n == 0 && hp_monotonic_ns() - start < 2_000_000_000 { n = hp_epoll_wait(epfd, &events, 4, 2000) }
        #expect(n == 1 && events[0].token == 7)
        #expect(hp_monotonic_ns() - start >= 20_000_000)
        #expect(hp_timerfd_drain(timer) == 0)
        #expect(hp_timerfd_arm(timer, 0) == 0, "disarms")
        #expect(hp_epoll_wait(epfd, &events, 4, 30) == 0)
    }

    @Test func ioUringPollReportsAnEventfdAndRemovalCancels() throws {
        var error: Int32 = 0
        let ring = try #require(hp_uring_create(8, &error), "io_uring_queue_init: \(error)")
        defer { hp_uring_destroy(ring) }
        #expect(hp_uring_enable(ring) == 0)
        let signal = hp_eventfd_create(), quiet = hp_eventfd_create()
        defer { _ = hp_close(signal); _ = hp_close(quiet) }
        #expect(hp_uring_poll_add(ring, quiet, HP_EV_IN, 2) == 0)
        #expect(hp_uring_poll_add(ring, signal, HP_EV_IN, 1) == 0)
        #expect(hp_eventfd_signal(signal) == 0)
        var completions = [hp_completion](repeating: hp_completion(), count: 8)
        var n = hp_uring_submit_wait(ring, &completions, 8, 1_000_000_000)
        #expect(n == 1 && completions[0].user_data == 1 && UInt32(completions[0].res) & HP_EV_IN != 0)
        // Removing the other poll completes it with -ECANCELED, and the removal with its own data.
        #expect(hp_uring_poll_remove(ring, 2, 3) == 0)
        var seen: [UInt64: Int32] = [:]
        for _ in 0..<4 where seen[2] == nil || seen[3] == nil {
            n = hp_uring_submit_wait(ring, &completions, 8, 1_000_000_000)
            for i in 0..<Int(max(n, 0)) { seen[completions[i].user_data] = completions[i].res }
        }
        #expect(seen[2] == -ECANCELED && seen[3] == 0)
    }
}
