#ifndef WSS_COPENSSL_SHIM_H
#define WSS_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* OpenSSL exposes these as macros; Swift can only call functions. */

static inline long wss_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}
static inline long wss_SSL_CTX_set_options(SSL_CTX *ctx, long options) {
    return (long)SSL_CTX_set_options(ctx, (uint64_t)options);
}
static inline int wss_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
static inline long wss_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}
static inline long wss_SSL_CTX_set_read_ahead(SSL_CTX *ctx, int yes) {
    return SSL_CTX_set_read_ahead(ctx, yes);
}
static inline long wss_SSL_SESS_CACHE_OFF(void) { return SSL_SESS_CACHE_OFF; }
static inline long wss_SSL_CTX_get_extra_chain_count(SSL_CTX *ctx) {
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get_extra_chain_certs(ctx, &chain);
    return chain ? (long)sk_X509_num(chain) : 0;
}

static inline long wss_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}
static inline const int wss_TLS1_2_VERSION(void) { return TLS1_2_VERSION; }

static inline long wss_SSL_MODE_RELEASE_BUFFERS(void) { return SSL_MODE_RELEASE_BUFFERS; }
static inline long wss_SSL_MODE_NO_AUTO_CHAIN(void) { return SSL_MODE_NO_AUTO_CHAIN; }
static inline long wss_SSL_MODE_ENABLE_PARTIAL_WRITE(void) { return SSL_MODE_ENABLE_PARTIAL_WRITE; }
static inline long wss_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER(void) { return SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; }
static inline long wss_SSL_OP_NO_RENEGOTIATION(void) { return (long)SSL_OP_NO_RENEGOTIATION; }
static inline long wss_SSL_OP_NO_COMPRESSION(void) { return (long)SSL_OP_NO_COMPRESSION; }
static inline long wss_SSL_OP_IGNORE_UNEXPECTED_EOF(void) { return (long)SSL_OP_IGNORE_UNEXPECTED_EOF; }
static inline long wss_SSL_OP_CIPHER_SERVER_PREFERENCE(void) { return (long)SSL_OP_CIPHER_SERVER_PREFERENCE; }

/* Errors reported by ERR_get_error that mean "the peer spoke something that is not TLS". */
static inline int wss_ERR_GET_LIB(unsigned long e) { return ERR_GET_LIB(e); }
static inline int wss_ERR_GET_REASON(unsigned long e) { return ERR_GET_REASON(e); }

#endif
