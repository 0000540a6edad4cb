// liburing's API is static inline; these wrappers make the calls HotPool needs callable from Swift.
// Operations are queued, not submitted: hp_uring_submit_wait submits the turn's queue in one call.
#include "CShims.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(HP_CQE_F_BUFFER == IORING_CQE_F_BUFFER, "buffer flag");
_Static_assert(HP_CQE_F_MORE == IORING_CQE_F_MORE, "more flag");
_Static_assert(HP_CQE_BUFFER_SHIFT == IORING_CQE_BUFFER_SHIFT, "buffer id shift");

/// The buffer group of the provided-buffer ring.
#define BUFFER_GROUP 0

struct hp_uring {
    struct io_uring ring;
    unsigned flags;  // the setup flags the kernel took
    long enters;     // io_uring_enter calls made through this wrapper
    int exited;      // hp_uring_exit ran
    // The provided-buffer ring: `count` buffers of `size` bytes at `buffers`.
    struct io_uring_buf_ring *buf_ring;
    size_t buf_ring_bytes;
    unsigned char *buffers;
    unsigned count, size;
};

static atomic_int simulated_init_error;

void hp_uring_simulate_init_error(int err) { atomic_store(&simulated_init_error, err); }

/// Attempts to queue a submission still to find the queue full (hp_uring_simulate_full_queue).
static atomic_int simulated_full_queues;

void hp_uring_simulate_full_queue(int count) { atomic_store(&simulated_full_queues, count); }

/// Takes one simulated full queue if any is left: true when this attempt is to find no room.
static int simulating_full_queue(void) {
    int left = atomic_load(&simulated_full_queues);
    while (left > 0 && !atomic_compare_exchange_weak(&simulated_full_queues, &left, left - 1)) {
    }
    return left > 0;
}

hp_uring *hp_uring_create(unsigned entries, int *err) {
    int simulated = atomic_load(&simulated_init_error);
    if (simulated) {
        *err = -simulated;
        return NULL;
    }
    hp_uring *r = calloc(1, sizeof *r);
    if (!r) {
        *err = -ENOMEM;
        return NULL;
    }
    // One thread submits (the reactor's, which enables the ring: hp_uring_enable), and completions'
    // task work runs when it waits, not by interrupting it. Older kernels take neither.
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
              IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = entries * 4;
    int rc = io_uring_queue_init_params(entries, &r->ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, &r->ring, &p);
    }
    if (rc < 0) {
        free(r);
        *err = rc;
        return NULL;
    }
    r->flags = p.flags;
    *err = 0;
    return r;
}

int hp_uring_enable(hp_uring *r) {
    if (!(r->flags & IORING_SETUP_R_DISABLED)) return 0;
    // io_uring_enable_rings is declared by liburing 2.3's header but missing from its library.
    return syscall(__NR_io_uring_register, r->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0 ? -errno : 0;
}

void hp_uring_exit(hp_uring *r) {
    if (r->exited) return;
    io_uring_queue_exit(&r->ring);  // what is still in flight is cancelled, and its files let go
    if (r->buf_ring) munmap(r->buf_ring, r->buf_ring_bytes);
    free(r->buffers);
    r->buf_ring = NULL;
    r->buffers = NULL;
    r->exited = 1;
}

void hp_uring_destroy(hp_uring *r) {
    if (!r) return;
    hp_uring_exit(r);
    free(r);
}

int hp_uring_setup_buffers(hp_uring *r, unsigned count, unsigned size) {
    size_t bytes = count * sizeof(struct io_uring_buf);
    void *ring = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring == MAP_FAILED) return -errno;
    unsigned char *buffers = malloc((size_t)count * size);
    if (!buffers) {
        munmap(ring, bytes);
        return -ENOMEM;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)ring;
    reg.ring_entries = count;
    reg.bgid = BUFFER_GROUP;
    int rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (rc < 0) {
        munmap(ring, bytes);
        free(buffers);
        return rc;
    }
    r->buf_ring = ring;
    r->buf_ring_bytes = bytes;
    r->buffers = buffers;
    r->count = count;
    r->size = size;
    io_uring_buf_ring_init(r->buf_ring);
    for (unsigned i = 0; i < count; i++)
        io_uring_buf_ring_add(r->buf_ring, buffers + (size_t)i * size, size, (unsigned short)i,
                              io_uring_buf_ring_mask(count), (int)i);
    io_uring_buf_ring_advance(r->buf_ring, (int)count);
    return 0;
}

void *hp_uring_buffer(hp_uring *r, unsigned id) { return r->buffers + (size_t)id * r->size; }

void hp_uring_recycle_buffer(hp_uring *r, unsigned id) {
    io_uring_buf_ring_add(r->buf_ring, hp_uring_buffer(r, id), r->size, (unsigned short)id,
                          io_uring_buf_ring_mask(r->count), 0);
    io_uring_buf_ring_advance(r->buf_ring, 1);
}

static struct io_uring_sqe *next_sqe(hp_uring *r) {
    if (simulating_full_queue()) return NULL;  // as if a flush made no room
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) {  // queue full: flush it and try once more
        r->enters++;
        io_uring_submit(&r->ring);
        sqe = io_uring_get_sqe(&r->ring);
    }
    return sqe;
}

int hp_uring_poll_add(hp_uring *r, int fd, uint32_t mask, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_poll_add(sqe, fd, mask);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int hp_uring_poll_remove(hp_uring *r, uint64_t target, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_poll_remove(sqe, target);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int hp_uring_cancel(hp_uring *r, uint64_t target, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int hp_uring_recv_multishot(hp_uring *r, int fd, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUFFER_GROUP;
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int hp_uring_send(hp_uring *r, int fd, const void *bytes, size_t len, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_send(sqe, fd, bytes, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int hp_uring_read(hp_uring *r, int fd, void *buf, unsigned len, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_read(sqe, fd, buf, len, 0);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int hp_uring_close(hp_uring *r, int fd, const uint64_t *cancel, int cancel_count, const void *last_bytes,
                   size_t last_len, uint64_t side_data, uint64_t user_data) {
    // One chain: make room for all of it first, so no flush splits it.
    unsigned needed = (unsigned)cancel_count + (last_len ? 1u : 0u) + 1u;
    if (simulating_full_queue()) return -EBUSY;  // as if a flush made no room
    if (io_uring_sq_space_left(&r->ring) < needed) {
        r->enters++;
        io_uring_submit(&r->ring);
        if (io_uring_sq_space_left(&r->ring) < needed) return -EBUSY;
    }
    // Hard links: each step runs after the one before, whatever its result. Cancels name their
    // operation's user data: the kernel finds those by hash, where a cancel by fd walks every
    // request in flight (quadratic when thousands of connections close at once).
    struct io_uring_sqe *sqe;
    for (int i = 0; i < cancel_count; i++) {
        sqe = io_uring_get_sqe(&r->ring);
        io_uring_prep_cancel64(sqe, cancel[i], 0);
        io_uring_sqe_set_data64(sqe, side_data);
        sqe->flags |= IOSQE_IO_HARDLINK;
    }
    if (last_len) {
        sqe = io_uring_get_sqe(&r->ring);
        // Never waits for room: a peer that stopped reading must not hold the close up.
        io_uring_prep_send(sqe, fd, last_bytes, last_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        io_uring_sqe_set_data64(sqe, side_data);
        sqe->flags |= IOSQE_IO_HARDLINK;
    }
    sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int hp_uring_submit_wait(hp_uring *r, hp_completion *out, int max, int64_t timeout_ns) {
    struct io_uring_cqe *cqe = NULL;
    int rc;
    r->enters++;
    if (timeout_ns < 0) {
        rc = io_uring_submit_and_wait(&r->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
        rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) return rc;
    int n = 0;
    unsigned head;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
        if (n == max) break;
        out[n].user_data = io_uring_cqe_get_data64(cqe);
        out[n].res = cqe->res;
        out[n].flags = cqe->flags;
        n++;
    }
    io_uring_cq_advance(&r->ring, (unsigned)n);
    return n;
}

long hp_uring_enters(const hp_uring *r) { return r->enters; }
