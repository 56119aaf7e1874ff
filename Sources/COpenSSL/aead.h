#ifndef WSS_COPENSSL_AEAD_H
#define WSS_COPENSSL_AEAD_H

#include <string.h>
#include <openssl/evp.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/provider.h>

/* TLS 1.3 record protection through the provider's cipher functions themselves.

   In OpenSSL 3.0 every EVP call on an AEAD context costs OSSL_PARAM lookups in the provider:
   EVP_CipherInit_ex with a new nonce asks for the IV length first (a get_ctx_params that
   walks every parameter name), EVP_CIPHER_CTX_ctrl GET_TAG/SET_TAG builds and matches
   parameters again. A record needs the same four steps each time (nonce, header as AAD,
   body, tag), and the provider's own functions (provider-cipher(7): encrypt_init with only an
   IV, update, final, get/set_ctx_params) do exactly what EVP forwards to, without the
   queries in between. The functions come from the dispatch table of the provider that
   EVP_CIPHER_fetch chose (OSSL_PROVIDER_query_operation), for the algorithm of that name. */

typedef struct {
    void *provctx;
    OSSL_FUNC_cipher_newctx_fn *newctx;
    OSSL_FUNC_cipher_freectx_fn *freectx;
    OSSL_FUNC_cipher_encrypt_init_fn *einit;
    OSSL_FUNC_cipher_decrypt_init_fn *dinit;
    OSSL_FUNC_cipher_update_fn *update;
    OSSL_FUNC_cipher_final_fn *final;
    OSSL_FUNC_cipher_get_ctx_params_fn *get_ctx_params;
    OSSL_FUNC_cipher_set_ctx_params_fn *set_ctx_params;
} wss_aead;

/* Fills `a` from the implementation behind `cipher` (a fetched EVP_CIPHER). 1 if every
   function was found, 0 otherwise (the caller then stays with EVP). */
static inline int wss_aead_load(const EVP_CIPHER *cipher, wss_aead *a) {
    const OSSL_PROVIDER *prov = cipher ? EVP_CIPHER_get0_provider(cipher) : NULL;
    const OSSL_ALGORITHM *algs, *alg;
    const OSSL_DISPATCH *d = NULL;
    int no_cache = 0, found = 0;
    memset(a, 0, sizeof(*a));
    if (prov == NULL) return 0;
    algs = OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache);
    for (alg = algs; alg != NULL && alg->algorithm_names != NULL && d == NULL; alg++) {
        char first[64];
        const char *colon = strchr(alg->algorithm_names, ':');
        size_t n = colon ? (size_t)(colon - alg->algorithm_names) : strlen(alg->algorithm_names);
        if (n == 0 || n >= sizeof(first)) continue;
        memcpy(first, alg->algorithm_names, n);
        first[n] = 0;
        if (EVP_CIPHER_is_a(cipher, first)) d = alg->implementation;
    }
    for (; d != NULL && d->function_id != 0; d++) {
        switch (d->function_id) {
        case OSSL_FUNC_CIPHER_NEWCTX: a->newctx = OSSL_FUNC_cipher_newctx(d); break;
        case OSSL_FUNC_CIPHER_FREECTX: a->freectx = OSSL_FUNC_cipher_freectx(d); break;
        case OSSL_FUNC_CIPHER_ENCRYPT_INIT: a->einit = OSSL_FUNC_cipher_encrypt_init(d); break;
        case OSSL_FUNC_CIPHER_DECRYPT_INIT: a->dinit = OSSL_FUNC_cipher_decrypt_init(d); break;
        case OSSL_FUNC_CIPHER_UPDATE: a->update = OSSL_FUNC_cipher_update(d); break;
        case OSSL_FUNC_CIPHER_FINAL: a->final = OSSL_FUNC_cipher_final(d); break;
        case OSSL_FUNC_CIPHER_GET_CTX_PARAMS: a->get_ctx_params = OSSL_FUNC_cipher_get_ctx_params(d); break;
        case OSSL_FUNC_CIPHER_SET_CTX_PARAMS: a->set_ctx_params = OSSL_FUNC_cipher_set_ctx_params(d); break;
        default: break;
        }
    }
    if (algs != NULL) OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, algs);
    a->provctx = OSSL_PROVIDER_get0_provider_ctx(prov);
    found = a->newctx && a->freectx && a->einit && a->dinit && a->update && a->final
            && a->get_ctx_params && a->set_ctx_params;
    if (!found) memset(a, 0, sizeof(*a));
    return found;
}

/* A provider context keyed for one direction (NULL on failure); free with wss_aead_free,
   which wipes the key schedule (the providers clear their context when they free it). */
static inline void *wss_aead_new(const wss_aead *a, const unsigned char *key, size_t keylen, int encrypting) {
    void *ctx = a->newctx(a->provctx);
    if (ctx == NULL) return NULL;
    if ((encrypting ? a->einit : a->dinit)(ctx, key, keylen, NULL, 0, NULL) != 1) {
        a->freectx(ctx);
        return NULL;
    }
    return ctx;
}

static inline void wss_aead_free(const wss_aead *a, void *ctx) { a->freectx(ctx); }

/* RFC 8446 §5.3: the nonce is the 12-byte IV XOR the 64-bit sequence number, left-padded. */
static inline void wss_tls13_nonce(const unsigned char *iv, uint64_t seq, unsigned char *nonce) {
    int i;
    for (i = 0; i < 4; i++) nonce[i] = iv[i];
    for (i = 0; i < 8; i++) nonce[4 + i] = iv[4 + i] ^ (unsigned char)(seq >> (56 - 8 * i));
}

/* Starts a record: the nonce for `seq`, then the 5-byte record header as additional data. */
static inline int wss_aead_start(const wss_aead *a, void *ctx, int encrypting, const unsigned char *iv,
                                 uint64_t seq, const unsigned char *header) {
    unsigned char nonce[12];
    size_t outl = 0;
    wss_tls13_nonce(iv, seq, nonce);
    if ((encrypting ? a->einit : a->dinit)(ctx, NULL, 0, nonce, sizeof(nonce), NULL) != 1) return 0;
    return a->update(ctx, NULL, &outl, 5, header, 5) == 1;
}

/* Encrypts or decrypts `n` bytes from `in` to `out` (the same buffer is allowed). */
static inline int wss_aead_update(const wss_aead *a, void *ctx, const unsigned char *in, size_t n, unsigned char *out) {
    size_t outl = 0;
    return n == 0 || a->update(ctx, out, &outl, n, in, n) == 1;
}

/* Ends a sealed record (`end`: just past its ciphertext) and writes its 16-byte tag. */
static inline int wss_aead_seal_tag(const wss_aead *a, void *ctx, unsigned char *end, unsigned char *tag) {
    size_t outl = 0;
    OSSL_PARAM params[2];
    if (a->final(ctx, end, &outl, 0) != 1) return 0;
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, 16);
    params[1] = OSSL_PARAM_construct_end();
    return a->get_ctx_params(ctx, params) == 1;
}

/* Ends an opened record: 1 only if its 16-byte `tag` matches (before that the plaintext
   written by wss_aead_update must not be used). */
static inline int wss_aead_open_tag(const wss_aead *a, void *ctx, unsigned char *end, const unsigned char *tag) {
    size_t outl = 0;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)tag, 16);
    params[1] = OSSL_PARAM_construct_end();
    if (a->set_ctx_params(ctx, params) != 1) return 0;
    return a->final(ctx, end, &outl, 0) == 1;
}

#endif
