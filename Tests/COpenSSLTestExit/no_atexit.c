/* The test binary initialises OpenSSL before anything else uses it, with
   OPENSSL_INIT_NO_ATEXIT, so libcrypto registers no OPENSSL_cleanup at exit.

   Why: OPENSSL_cleanup (atexit) drops every thread's stop handlers and deletes libcrypto's
   thread-local keys, but frees the per-thread state (error queue: ERR_STATE, its strings)
   of the calling thread only. A thread that still holds such state and ends after it ran
   (a libdispatch worker that ran an async test and retires ~5 s after its last task, or any
   thread not joined before exit) loses its state for good, and LeakSanitizer's exit check,
   which runs after OPENSSL_cleanup, reports it: CRYPTO_zalloc (ERR_STATE, 904 bytes) and
   ERR_vset_error / CRYPTO_strdup below it. Without the atexit cleanup, a thread ending late
   frees its own state through libcrypto's thread-exit destructor, and a thread still alive
   keeps it reachable from its thread-specific data. The OS frees the rest at exit.
   NOTES-lsan.md has the reproduction. It has to run first: only the first initialisation
   decides whether the atexit handler is registered. */
#include <openssl/crypto.h>
#include "COpenSSLTestExit.h"

static int initialised;

__attribute__((constructor)) static void wss_test_openssl_init(void) {
    initialised = OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

int wss_test_openssl_no_atexit(void) { return initialised; }
