/* pgpcrypto.c - see pgpcrypto.h. */
#include "pgpcrypto.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define CHUNK (16 * 1024) /* hash then encrypt this much while it is in L1 */

static EVP_CIPHER *cfb[3], *wrap[3];
static EVP_MD *sha1;

struct pgpb_cfb {
    EVP_CIPHER_CTX *ctx;
    EVP_MD_CTX *md; /* NULL when not hashing */
    int decrypt;
};

static int aes_index(size_t keylen) {
    return keylen == 16 ? 0 : keylen == 24 ? 1 : keylen == 32 ? 2 : -1;
}

int pgpb_crypto_init(void) {
    static const char *cfb_names[3] = {"AES-128-CFB", "AES-192-CFB", "AES-256-CFB"};
    static const char *wrap_names[3] = {"AES-128-WRAP", "AES-192-WRAP", "AES-256-WRAP"};
    for (int i = 0; i < 3; i++) {
        if (!cfb[i]) cfb[i] = EVP_CIPHER_fetch(NULL, cfb_names[i], NULL);
        if (!wrap[i]) wrap[i] = EVP_CIPHER_fetch(NULL, wrap_names[i], NULL);
        if (!cfb[i] || !wrap[i]) return 0;
    }
    if (!sha1) sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    return sha1 != NULL;
}

static int key_wrap(int enc, const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out) {
    int i = aes_index(keklen), outl = 0, ok;
    if (i < 0 || n % 8 || n < (enc ? 16u : 24u) || n > 1u << 20) return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) return -1;
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    ok = EVP_CipherInit_ex2(ctx, wrap[i], kek, NULL, enc, NULL) == 1;
    if (ok) ok = EVP_CipherUpdate(ctx, out, &outl, in, (int)n) == 1 ? 1 : (enc ? -1 : 0);
    else ok = -1;
    if (ok == 1 && (size_t)outl != (enc ? n + 8 : n - 8)) ok = enc ? -1 : 0;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

int pgpb_sha1(const uint8_t *in, size_t n, uint8_t *out) {
    unsigned int len = 0;
    return EVP_Digest(in, n, out, &len, sha1, NULL) == 1 && len == 20 ? 1 : -1;
}

int pgpb_aes_key_wrap(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out) {
    return key_wrap(1, kek, keklen, in, n, out);
}

int pgpb_aes_key_unwrap(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out) {
    return key_wrap(0, kek, keklen, in, n, out);
}

pgpb_cfb *pgpb_cfb_new(const uint8_t *key, size_t keylen, const uint8_t *iv, int decrypt, int hash) {
    static const uint8_t zero[PGPB_AES_BLOCK];
    int i = aes_index(keylen);
    if (i < 0) return NULL;
    pgpb_cfb *s = OPENSSL_zalloc(sizeof *s);
    if (!s) return NULL;
    s->decrypt = decrypt;
    s->ctx = EVP_CIPHER_CTX_new();
    if (!s->ctx || EVP_CipherInit_ex2(s->ctx, cfb[i], key, iv ? iv : zero, !decrypt, NULL) != 1) goto fail;
    if (hash) {
        s->md = EVP_MD_CTX_new();
        if (!s->md || EVP_DigestInit_ex2(s->md, sha1, NULL) != 1) goto fail;
    }
    return s;
fail:
    pgpb_cfb_free(s);
    return NULL;
}

void pgpb_cfb_free(pgpb_cfb *s) {
    if (!s) return;
    EVP_CIPHER_CTX_free(s->ctx);
    EVP_MD_CTX_free(s->md);
    OPENSSL_free(s);
}

int pgpb_cfb_hash(pgpb_cfb *s, const uint8_t *in, size_t n) {
    return s->md == NULL || EVP_DigestUpdate(s->md, in, n) == 1 ? 1 : -1;
}

int pgpb_cfb_update(pgpb_cfb *s, const uint8_t *in, size_t n, uint8_t *out, int hash) {
    while (n) {
        int len = n > CHUNK ? CHUNK : (int)n, outl = 0;
        if (hash && !s->decrypt && pgpb_cfb_hash(s, in, (size_t)len) != 1) return -1;
        if (EVP_CipherUpdate(s->ctx, out, &outl, in, len) != 1 || outl != len) return -1;
        if (hash && s->decrypt && pgpb_cfb_hash(s, out, (size_t)len) != 1) return -1;
        in += len;
        out += len;
        n -= (size_t)len;
    }
    return 1;
}

int pgpb_cfb_mdc_final(pgpb_cfb *s, uint8_t out[PGPB_MDC_LEN]) {
    uint8_t mdc[PGPB_MDC_LEN] = {0xD3, 0x14};
    unsigned int dlen = 0;
    if (!s->md || pgpb_cfb_hash(s, mdc, 2) != 1 || EVP_DigestFinal_ex(s->md, mdc + 2, &dlen) != 1 || dlen != 20)
        return -1;
    EVP_MD_CTX_free(s->md);
    s->md = NULL;
    int outl = 0;
    return EVP_CipherUpdate(s->ctx, out, &outl, mdc, PGPB_MDC_LEN) == 1 && outl == PGPB_MDC_LEN ? 1 : -1;
}

int pgpb_cfb_mdc_check(pgpb_cfb *s, const uint8_t mdc[PGPB_MDC_LEN]) {
    uint8_t digest[20];
    unsigned int dlen = 0;
    if (!s->md || pgpb_cfb_hash(s, mdc, 2) != 1 || EVP_DigestFinal_ex(s->md, digest, &dlen) != 1 || dlen != 20)
        return -1;
    EVP_MD_CTX_free(s->md);
    s->md = NULL;
    int ok = CRYPTO_memcmp(digest, mdc + 2, 20) == 0;
    return ok & (mdc[0] == 0xD3) & (mdc[1] == 0x14);
}
