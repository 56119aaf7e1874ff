#ifndef WSS_COPENSSL_TEST_EXIT_H
#define WSS_COPENSSL_TEST_EXIT_H

/* 1 once the test binary's load-time initialisation of OpenSSL (no atexit cleanup) ran. */
int wss_test_openssl_no_atexit(void);

#endif
