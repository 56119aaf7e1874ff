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

/* glibc declares accept4 only under _GNU_SOURCE. */
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
/* getrandom(2), for fallback session ids. Declared here rather than through <sys/random.h>:
   including that header moved <sys/socket.h>'s constants out of Glibc's module for files that
   import only Glibc (MSG_NOSIGNAL in TLSStream stopped resolving). */
extern ssize_t getrandom(void *buf, size_t buflen, unsigned int flags);
static inline int wss_accept4(int fd, int flags) { return accept4(fd, (struct sockaddr *)0, (socklen_t *)0, flags); }
#endif
