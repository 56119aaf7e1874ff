// hiredis (Debian libhiredis-dev 0.14): only its sans-IO parts are used, the RESP reader
// (redisReaderCreate/Feed/GetReply) and command formatting (redisFormatCommandArgv). The
// sockets are ours, on our event loops; hiredis's own connection code is never called.
#ifndef WSS_CHIREDIS_SHIM_H
#define WSS_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>

// `redisReaderGetError` is a macro; Swift cannot call it.
static inline const char *wss_redis_reader_error(redisReader *r) { return r->errstr; }
// The reader keeps at most this many unused bytes between feeds (0 = never shrink).
static inline void wss_redis_reader_set_maxbuf(redisReader *r, size_t n) { r->maxbuf = n; }

#endif
