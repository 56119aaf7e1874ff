#ifndef WSS_COPENSSL_SHIM_H
#define WSS_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/crypto.h>
#include "aead.h"

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
static inline int wss_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
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

static inline int wss_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) {
    return (int)SSL_CTX_set1_groups_list(ctx, list);
}
static inline int wss_SSL_RECEIVED_SHUTDOWN(void) { return SSL_RECEIVED_SHUTDOWN; }

/* Session-ticket protection for SSL_CTX_set_tlsext_ticket_key_evp_cb (RFC 5077 layout, as
   OpenSSL's own): AES-256-CBC with `aes_key` and `iv`, HMAC-SHA256 with `hmac_key` (32 bytes
   each). 1 on success. */
static inline int wss_ticket_crypt_init(EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, const unsigned char *aes_key,
                                        const unsigned char *hmac_key, const unsigned char *iv, int enc) {
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)hmac_key, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_CipherInit_ex(cctx, EVP_aes_256_cbc(), NULL, aes_key, iv, enc) != 1) return 0;
    return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

/* Errors reported by ERR_get_error that mean "the peer spoke something that is not TLS". */
static inline int wss_ERR_GET_LIB(unsigned long e) { return ERR_GET_LIB(e); }
static inline int wss_ERR_GET_REASON(unsigned long e) { return ERR_GET_REASON(e); }

#endif
