// epoll, eventfd, timerfd, time and signal shims.
#define _GNU_SOURCE
#include "CShims.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

int hp_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int epoll_ctl_token(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev = {.events = events, .data.u64 = token};
    return epoll_ctl(epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int hp_epoll_add(int epfd, int fd, uint32_t events, uint64_t token) {
    return epoll_ctl_token(epfd, EPOLL_CTL_ADD, fd, events, token);
}

int hp_epoll_del(int epfd, int fd) {
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

int hp_epoll_wait(int epfd, hp_event *out, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        out[i].token = evs[i].data.u64;
        out[i].events = evs[i].events;
    }
    return n;
}

int hp_eventfd_create(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int hp_eventfd_signal(int fd) {
    uint64_t one = 1;
    // EAGAIN means the counter is saturated: the reader is going to wake anyway.
    return (write(fd, &one, sizeof one) < 0 && errno != EAGAIN) ? -errno : 0;
}

int hp_eventfd_drain(int fd) {
    uint64_t value;
    return (read(fd, &value, sizeof value) < 0 && errno != EAGAIN) ? -errno : 0;
}

int hp_timerfd_create(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int hp_timerfd_arm(int fd, int64_t ns) {
    struct itimerspec spec = {0};
    if (ns > 0) {
        spec.it_value.tv_sec = ns / 1000000000;
        spec.it_value.tv_nsec = ns % 1000000000;
    }
    return timerfd_settime(fd, 0, &spec, NULL) < 0 ? -errno : 0;
}

int hp_timerfd_drain(int fd) {
    uint64_t expirations;
    return (read(fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) ? -errno : 0;
}

int hp_close(int fd) { return close(fd) < 0 ? -errno : 0; }

int64_t hp_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void hp_block_sigpipe(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static _Thread_local const void *current_loop;

void hp_set_current_loop(const void *loop) { current_loop = loop; }

const void *hp_current_loop(void) { return current_loop; }

void hp_name_thread(const char *name) { pthread_setname_np(pthread_self(), name); }
