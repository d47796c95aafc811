/* wkdsel.c - see wkdsel.h. */
#define OPENSSL_SUPPRESS_DEPRECATED /* RSA_set0_key: what cryptography's RSAPublicNumbers uses too */
#include "wkdsel.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#define N_MD 5
static const int md_ids[N_MD] = {2, 11, 8, 9, 10}; /* SHA-1, SHA-224, SHA-256, SHA-384, SHA-512 */
static const size_t md_sizes[N_MD] = {20, 28, 32, 48, 64};
static const char *md_names[N_MD] = {"SHA1", "SHA224", "SHA256", "SHA384", "SHA512"};
static EVP_MD *mds[N_MD];
static EVP_MD_CTX *base, *work;
static int base_md = -1;
static unsigned long generation;

int wks_init(void) {
    for (int i = 0; i < N_MD; i++) {
        if (!mds[i]) mds[i] = EVP_MD_fetch(NULL, md_names[i], NULL);
        if (!mds[i]) return 0;
    }
    if (!base) base = EVP_MD_CTX_new();
    if (!work) work = EVP_MD_CTX_new();
    return base && work;
}

int wks_md_index(int halg) {
    for (int i = 0; i < N_MD; i++)
        if (md_ids[i] == halg) return i;
    return -1;
}

int wks_md_index_by_size(size_t len) {
    for (int i = 0; i < N_MD; i++)
        if (md_sizes[i] == len) return i;
    return -1;
}

unsigned long wks_prefix(int md, const uint8_t *prefix, size_t len) {
    base_md = -1;
    if (++generation == 0) generation = 1;
    if (md < 0 || md >= N_MD || EVP_DigestInit_ex2(base, mds[md], NULL) != 1) return 0;
    if (EVP_DigestUpdate(base, prefix, len) != 1) return 0;
    base_md = md;
    return generation;
}

unsigned long wks_prefix_generation(void) { return generation; }

int wks_finish(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, const uint8_t *c, size_t clen,
               const uint8_t *d, size_t dlen, uint8_t *out) {
    unsigned int len = 0;
    if (base_md < 0 || EVP_MD_CTX_copy_ex(work, base) != 1) return -1;
    if ((alen && EVP_DigestUpdate(work, a, alen) != 1) || (blen && EVP_DigestUpdate(work, b, blen) != 1) ||
        (clen && EVP_DigestUpdate(work, c, clen) != 1) || (dlen && EVP_DigestUpdate(work, d, dlen) != 1) ||
        EVP_DigestFinal_ex(work, out, &len) != 1)
        return -1;
    return (int)len;
}

int wks_sha1(const uint8_t *in, size_t n, uint8_t *out) {
    unsigned int len = 0;
    return EVP_Digest(in, n, out, &len, mds[0], NULL) == 1 && len == 20;
}

void *wks_rsa_new(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen) {
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
    RSA *rsa = RSA_new();
    EVP_PKEY *key = EVP_PKEY_new();
    if (!bn || !be || !rsa || !key || RSA_set0_key(rsa, bn, be, NULL) != 1) {
        BN_free(bn);
        BN_free(be);
        RSA_free(rsa);
        EVP_PKEY_free(key);
        ERR_clear_error();
        return NULL;
    }
    if (EVP_PKEY_assign_RSA(key, rsa) != 1) { /* the key owns rsa, and rsa the numbers, from here */
        RSA_free(rsa);
        EVP_PKEY_free(key);
        ERR_clear_error();
        return NULL;
    }
    return key;
}

void wks_rsa_free(void *key) { EVP_PKEY_free((EVP_PKEY *)key); }

int wks_rsa_verify(void *key, int md, const uint8_t *sig, size_t siglen, const uint8_t *dig, size_t dlen) {
    int ok = 0;
    if (md < 0 || md >= N_MD || dlen != md_sizes[md]) return 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new((EVP_PKEY *)key, NULL);
    if (ctx && EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
        EVP_PKEY_CTX_set_signature_md(ctx, mds[md]) == 1)
        ok = EVP_PKEY_verify(ctx, sig, siglen, dig, dlen) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) ERR_clear_error();
    return ok;
}
