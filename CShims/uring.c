// liburing's API is static inline; these wrappers make the few calls HotPool needs callable from Swift.
#include "CShims.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>

struct hp_uring {
    struct io_uring ring;
};

hp_uring *hp_uring_create(unsigned entries, int *err) {
    hp_uring *r = calloc(1, sizeof *r);
    if (!r) {
        *err = -ENOMEM;
        return NULL;
    }
    int rc = io_uring_queue_init(entries, &r->ring, 0);
    if (rc < 0) {
        free(r);
        *err = rc;
        return NULL;
    }
    *err = 0;
    return r;
}

void hp_uring_destroy(hp_uring *r) {
    if (!r) return;
    io_uring_queue_exit(&r->ring);
    free(r);
}

static struct io_uring_sqe *next_sqe(hp_uring *r) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) {  // queue full: flush it and try once more
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

int hp_uring_poll_remove(hp_uring *r, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_poll_remove(sqe, user_data);
    io_uring_sqe_set_data64(sqe, UINT64_MAX);  // the removal's own completion carries no token
    return 0;
}

int hp_uring_submit_wait(hp_uring *r, hp_completion *out, int max, int64_t timeout_ns) {
    struct io_uring_cqe *cqe = NULL;
    int rc;
    if (timeout_ns < 0) {
        rc = io_uring_submit_and_wait(&r->ring, 1);
        if (rc >= 0) rc = io_uring_peek_cqe(&r->ring, &cqe);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
        rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR) return rc;
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
