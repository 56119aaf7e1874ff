#ifndef WSS_URING_H
#define WSS_URING_H
/* A small C API over liburing (Debian liburing-dev 2.3) for Transport's io_uring wrapper.
   Only fixed-width types cross it, so Swift never imports liburing.h (which defines _GNU_SOURCE
   and re-includes system headers differently from Glibc's module). Every function returns
   0 or a count on success and -errno on failure unless it says otherwise. */
#include <stddef.h>
#include <stdint.h>

typedef struct wss_uring wss_uring;
typedef struct wss_buf_ring wss_buf_ring;

/* One completion, copied out of the ring. */
typedef struct {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
} wss_cqe;

enum {
    WSS_CQE_F_BUFFER = 1u << 0,       /* IORING_CQE_F_BUFFER: upper 16 bits are the buffer id */
    WSS_CQE_F_MORE = 1u << 1,         /* IORING_CQE_F_MORE: a multishot request stays armed */
    WSS_CQE_F_SOCK_NONEMPTY = 1u << 2,
    WSS_CQE_F_NOTIF = 1u << 3,        /* SEND_ZC: the buffer is free again */
    WSS_CQE_BUFFER_SHIFT = 16,
};

/* Ring setup. *flags_out: the IORING_SETUP_* flags the kernel accepted. NULL + *err on failure. */
wss_uring *wss_uring_new(unsigned entries, uint32_t *flags_out, int *err);
/* A ring for an event loop: created disabled (any thread may create it and prepare requests),
   enabled by wss_uring_enable on the thread that then owns it (single issuer, deferred task
   work when the kernel has them), submission continues past a failed entry (SUBMIT_ALL). */
wss_uring *wss_uring_new_loop(unsigned entries, uint32_t *flags_out, int *err);
/* Enables a ring made by wss_uring_new_loop on the calling thread (a no-op for others). */
int wss_uring_enable(wss_uring *u);
void wss_uring_free(wss_uring *u);
int wss_uring_fd(const wss_uring *u);

/* Preparing requests (a submission slot each; a full queue is submitted first). */
/* These three return 0, or -EBUSY when no submission slot could be had even after submitting. */
int wss_uring_prep_accept_multishot(wss_uring *u, int fd, uint64_t user_data);
int wss_uring_prep_recv_multishot(wss_uring *u, int fd, uint16_t group, uint64_t user_data);
void wss_uring_prep_recv(wss_uring *u, int fd, void *buf, size_t len, uint64_t user_data);
void wss_uring_prep_send(wss_uring *u, int fd, const void *buf, size_t len, uint64_t user_data);
void wss_uring_prep_send_zc(wss_uring *u, int fd, const void *buf, size_t len, uint64_t user_data);
/* A send that never waits (MSG_DONTWAIT | MSG_NOSIGNAL): on a socket the kernel issues it inline
   while submitting and completes it there, with the count taken or -EAGAIN (no internal poll),
   so the caller's bytes are free again once the submitting io_uring_enter returned.
   0, or -EBUSY when no submission slot could be had even after submitting. */
int wss_uring_prep_send_nowait(wss_uring *u, int fd, const void *buf, size_t len, uint64_t user_data);
int wss_uring_prep_cancel(wss_uring *u, uint64_t target, uint64_t user_data);
void wss_uring_prep_close(wss_uring *u, int fd, uint64_t user_data);
/* Readiness (the loop's level-triggered emulation): one-shot poll for poll(2) bits, removal by
   the poll's user data, and an in-place change of an armed poll's bits (Linux 5.13). These
   return 0, or -EBUSY when no submission slot could be had even after submitting. */
int wss_uring_prep_poll_add(wss_uring *u, int fd, uint32_t mask, uint64_t user_data);
int wss_uring_prep_poll_remove(wss_uring *u, uint64_t target, uint64_t user_data);
int wss_uring_prep_poll_update(wss_uring *u, uint64_t target, uint32_t mask, uint64_t user_data);
int wss_uring_prep_read(wss_uring *u, int fd, void *buf, unsigned len, uint64_t user_data);
/* An 8-byte read of an eventfd into memory the ring owns (valid as long as the ring). */
int wss_uring_prep_eventfd_read(wss_uring *u, int fd, uint64_t user_data);

/* Submitting and completing. */
unsigned wss_uring_sq_ready(const wss_uring *u);
int wss_uring_submit(wss_uring *u);
/* Submits and waits for one completion; timeout_ms < 0 waits without limit. -ETIME on timeout. */
int wss_uring_submit_and_wait(wss_uring *u, int timeout_ms);
/* The same, waiting for wait_nr completions (a loop counts the ones its inline sends post). */
int wss_uring_submit_and_wait_n(wss_uring *u, unsigned wait_nr, int timeout_ms);
unsigned wss_uring_cq_ready(const wss_uring *u);
/* Copies up to max ready completions to out and consumes them; returns how many. */
unsigned wss_uring_reap(wss_uring *u, wss_cqe *out, unsigned max);

/* Provided-buffer rings (Linux 5.19). count: a power of two. */
wss_buf_ring *wss_buf_ring_new(wss_uring *u, uint16_t group, unsigned count, int *err);
void wss_buf_ring_free(wss_uring *u, wss_buf_ring *br);
/* Stages buffer bid for the kernel; visible after wss_buf_ring_publish. */
void wss_buf_ring_add(wss_buf_ring *br, void *addr, unsigned len, uint16_t bid);
void wss_buf_ring_publish(wss_buf_ring *br);
unsigned wss_buf_ring_staged(const wss_buf_ring *br);

/* Probe: 1 if the kernel has every operation the io_uring loop needs (accept, recv, send,
   cancel, close, poll add/remove, read), 0 if not (*missing names the first one missing), -errno if no probe. */
int wss_uring_probe_required(wss_uring *u, const char **missing);
/* 1 if the kernel has IORING_OP_SEND_ZC (Linux 6.0). */
int wss_uring_has_send_zc(wss_uring *u);
#endif
