#ifndef WSS_CLINUX_SHIM_H
#define WSS_CLINUX_SHIM_H
/* Linux headers that Glibc's Swift module leaves out. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sched.h>
#include <sys/random.h>  /* getrandom(2): fallback session ids */
#include <sys/syscall.h>
#include <unistd.h>

/* glibc declares accept4 only under _GNU_SOURCE. */
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
/* getrandom(2), for fallback session ids. Declared here rather than through <sys/random.h>:
   including that header moved <sys/socket.h>'s constants out of Glibc's module for files that
   import only Glibc (MSG_NOSIGNAL in TLSStream stopped resolving). */
extern ssize_t getrandom(void *buf, size_t buflen, unsigned int flags);
static inline int wss_accept4(int fd, int flags) { return accept4(fd, (struct sockaddr *)0, (socklen_t *)0, flags); }
/* recv/send as plain syscalls: glibc's wrappers are cancellation points and, in a process with
   more than one thread, bracket every call with __pthread_enable/disable_asynccancel (~30
   instructions each per call, measured with callgrind). No one cancels our threads. Same return
   and errno as recv(2)/send(2). */
static inline ssize_t wss_recv(int fd, void *buf, size_t len, int flags) {
    return syscall(SYS_recvfrom, fd, buf, len, flags, (void *)0, (void *)0);
}
static inline ssize_t wss_send(int fd, const void *buf, size_t len, int flags) {
    return syscall(SYS_sendto, fd, buf, len, flags, (void *)0, 0);
}
/* epoll_wait without the cancellation-point bracketing, for the same reason (once per loop
   iteration). epoll_pwait with no signal mask is epoll_wait, and exists on every architecture. */
static inline int wss_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
    return (int)syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, (void *)0, 8);
}
#endif
