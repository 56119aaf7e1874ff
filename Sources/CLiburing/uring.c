/* The C side of wss_uring.h: thin calls into liburing. */
#include "wss_uring.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

struct wss_uring {
    struct io_uring ring;
    uint64_t eventfd_value;
};

struct wss_buf_ring {
    struct io_uring_buf_ring *br;
    unsigned count;
    uint16_t group;
    int mask;
    int staged;
};

wss_uring *wss_uring_new(unsigned entries, uint32_t *flags_out, int *err) {
    /* Single issuer + deferred task work (Linux 6.1) when the kernel takes them, else plain. */
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_COOP_TASKRUN, 0};
    wss_uring *u = calloc(1, sizeof *u);
    if (!u) { *err = -ENOMEM; return NULL; }
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        rc = io_uring_queue_init(entries, &u->ring, tries[i]);
        if (rc == 0) { *flags_out = tries[i]; return u; }
        if (rc != -EINVAL) break; /* ENOSYS, EPERM, ENOMEM: other flags will not help */
    }
    free(u);
    *err = rc;
    return NULL;
}

void wss_uring_free(wss_uring *u) {
    io_uring_queue_exit(&u->ring);
    free(u);
}

wss_uring *wss_uring_new_loop(unsigned entries, uint32_t *flags_out, int *err) {
    static const unsigned tries[] = {
        IORING_SETUP_R_DISABLED | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, 0};
    wss_uring *u = calloc(1, sizeof *u);
    if (!u) { *err = -ENOMEM; return NULL; }
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        struct io_uring_params p = {0};
        p.flags = tries[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 8; /* one armed poll per connection: room for a burst of them */
        rc = io_uring_queue_init_params(entries, &u->ring, &p);
        if (rc == 0) { *flags_out = tries[i]; return u; }
        if (rc != -EINVAL) break;
    }
    free(u);
    *err = rc;
    return NULL;
}

int wss_uring_enable(wss_uring *u) {
    if (!(u->ring.flags & IORING_SETUP_R_DISABLED)) return 0;
    /* liburing 2.3 declares io_uring_enable_rings but its shared library does not export it. */
    long rc = syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    if (rc < 0) return -errno;
    u->ring.flags &= ~IORING_SETUP_R_DISABLED;
    return 0;
}

int wss_uring_fd(const wss_uring *u) { return u->ring.ring_fd; }

static struct io_uring_sqe *sqe(wss_uring *u) {
    struct io_uring_sqe *s = io_uring_get_sqe(&u->ring);
    if (s) return s;
    io_uring_submit(&u->ring); /* the kernel copied the queued entries: the queue is free */
    return io_uring_get_sqe(&u->ring);
}

int wss_uring_prep_accept_multishot(wss_uring *u, int fd, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    if (!s) return -EBUSY;
    io_uring_prep_multishot_accept(s, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, user_data);
    return 0;
}

int wss_uring_prep_recv_multishot(wss_uring *u, int fd, uint16_t group, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    if (!s) return -EBUSY;
    io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = group;
    io_uring_sqe_set_data64(s, user_data);
    return 0;
}

void wss_uring_prep_recv(wss_uring *u, int fd, void *buf, size_t len, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    io_uring_prep_recv(s, fd, buf, len, 0);
    io_uring_sqe_set_data64(s, user_data);
}

void wss_uring_prep_send(wss_uring *u, int fd, const void *buf, size_t len, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    io_uring_prep_send(s, fd, buf, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, user_data);
}

void wss_uring_prep_send_zc(wss_uring *u, int fd, const void *buf, size_t len, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    io_uring_prep_send_zc(s, fd, buf, len, MSG_NOSIGNAL, 0);
    io_uring_sqe_set_data64(s, user_data);
}

int wss_uring_prep_send_nowait(wss_uring *u, int fd, const void *buf, size_t len, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    if (!s) return -EBUSY;
    io_uring_prep_send(s, fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    io_uring_sqe_set_data64(s, user_data);
    return 0;
}

int wss_uring_prep_cancel(wss_uring *u, uint64_t target, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    if (!s) return -EBUSY;
    io_uring_prep_cancel64(s, target, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(s, user_data);
    return 0;
}

void wss_uring_prep_close(wss_uring *u, int fd, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    io_uring_prep_close(s, fd);
    io_uring_sqe_set_data64(s, user_data);
}

int wss_uring_prep_poll_add(wss_uring *u, int fd, uint32_t mask, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    if (!s) return -EBUSY;
    io_uring_prep_poll_add(s, fd, mask);
    io_uring_sqe_set_data64(s, user_data);
    return 0;
}

int wss_uring_prep_poll_remove(wss_uring *u, uint64_t target, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    if (!s) return -EBUSY;
    io_uring_prep_poll_remove(s, target);
    io_uring_sqe_set_data64(s, user_data);
    return 0;
}

int wss_uring_prep_poll_update(wss_uring *u, uint64_t target, uint32_t mask, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    if (!s) return -EBUSY;
    /* new user data 0: the kernel refuses one without IORING_POLL_UPDATE_USER_DATA */
    io_uring_prep_poll_update(s, target, 0, mask, IORING_POLL_UPDATE_EVENTS);
    io_uring_sqe_set_data64(s, user_data);
    return 0;
}

int wss_uring_prep_read(wss_uring *u, int fd, void *buf, unsigned len, uint64_t user_data) {
    struct io_uring_sqe *s = sqe(u);
    if (!s) return -EBUSY;
    io_uring_prep_read(s, fd, buf, len, 0);
    io_uring_sqe_set_data64(s, user_data);
    return 0;
}

int wss_uring_prep_eventfd_read(wss_uring *u, int fd, uint64_t user_data) {
    return wss_uring_prep_read(u, fd, &u->eventfd_value, sizeof u->eventfd_value, user_data);
}

unsigned wss_uring_sq_ready(const wss_uring *u) { return io_uring_sq_ready(&u->ring); }

int wss_uring_submit(wss_uring *u) { return io_uring_submit(&u->ring); }

int wss_uring_submit_and_wait(wss_uring *u, int timeout_ms) { return wss_uring_submit_and_wait_n(u, 1, timeout_ms); }

int wss_uring_submit_and_wait_n(wss_uring *u, unsigned wait_nr, int timeout_ms) {
    if (timeout_ms < 0) return io_uring_submit_and_wait(&u->ring, wait_nr);
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
    struct io_uring_cqe *cqe = NULL;
    return io_uring_submit_and_wait_timeout(&u->ring, &cqe, wait_nr, &ts, NULL);
}

unsigned wss_uring_cq_ready(const wss_uring *u) { return io_uring_cq_ready(&u->ring); }

unsigned wss_uring_reap(wss_uring *u, wss_cqe *out, unsigned max) {
    unsigned head, n = 0;
    struct io_uring_cqe *c;
    io_uring_for_each_cqe(&u->ring, head, c) {
        if (n == max) break;
        out[n].user_data = c->user_data;
        out[n].res = c->res;
        out[n].flags = c->flags;
        n++;
    }
    io_uring_cq_advance(&u->ring, n);
    return n;
}

wss_buf_ring *wss_buf_ring_new(wss_uring *u, uint16_t group, unsigned count, int *err) {
    wss_buf_ring *b = calloc(1, sizeof *b);
    if (!b) { *err = -ENOMEM; return NULL; }
    void *p = mmap(NULL, (size_t)count * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (p == MAP_FAILED) { *err = -errno; free(b); return NULL; }
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)p, .ring_entries = count, .bgid = group};
    int rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (rc != 0) {
        munmap(p, (size_t)count * sizeof(struct io_uring_buf));
        free(b);
        *err = rc;
        return NULL;
    }
    b->br = p;
    b->count = count;
    b->group = group;
    b->mask = io_uring_buf_ring_mask(count);
    io_uring_buf_ring_init(b->br);
    return b;
}

void wss_buf_ring_free(wss_uring *u, wss_buf_ring *b) {
    io_uring_unregister_buf_ring(&u->ring, b->group);
    munmap(b->br, (size_t)b->count * sizeof(struct io_uring_buf));
    free(b);
}

void wss_buf_ring_add(wss_buf_ring *b, void *addr, unsigned len, uint16_t bid) {
    io_uring_buf_ring_add(b->br, addr, len, bid, b->mask, b->staged++);
}

void wss_buf_ring_publish(wss_buf_ring *b) {
    if (b->staged == 0) return;
    io_uring_buf_ring_advance(b->br, b->staged);
    b->staged = 0;
}

unsigned wss_buf_ring_staged(const wss_buf_ring *b) { return (unsigned)b->staged; }

int wss_uring_probe_required(wss_uring *u, const char **missing) {
    static const struct { int op; const char *name; } ops[] = {
        {IORING_OP_ACCEPT, "accept"}, {IORING_OP_RECV, "recv"}, {IORING_OP_SEND, "send"},
        {IORING_OP_ASYNC_CANCEL, "cancel"}, {IORING_OP_CLOSE, "close"},
        {IORING_OP_POLL_ADD, "poll"}, {IORING_OP_POLL_REMOVE, "poll removal"}, {IORING_OP_READ, "read"}};
    struct io_uring_probe *p = io_uring_get_probe_ring(&u->ring);
    if (!p) return -EOPNOTSUPP;
    int ok = 1;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0] && ok; i++) {
        if (!io_uring_opcode_supported(p, ops[i].op)) { ok = 0; *missing = ops[i].name; }
    }
    io_uring_free_probe(p);
    return ok;
}

int wss_uring_has_send_zc(wss_uring *u) {
    struct io_uring_probe *p = io_uring_get_probe_ring(&u->ring);
    if (!p) return 0;
    int ok = io_uring_opcode_supported(p, IORING_OP_SEND_ZC);
    io_uring_free_probe(p);
    return ok;
}

/* Linking the TransportURing target registers the io_uring loop backend with Transport before
   main (TransportURing/URingLoops.swift): a program without it has epoll loops only. */
extern void wss_transport_uring_install(void);
__attribute__((constructor)) static void wss_register_backend(void) { wss_transport_uring_install(); }
