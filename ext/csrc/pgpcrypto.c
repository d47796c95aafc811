/* pgpcrypto.c - see pgpcrypto.h. */
#include "pgpcrypto.h"

#include <string.h>

#include "cfbmb.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define CHUNK (16 * 1024) /* hash then encrypt this much while it is in L1 */

static EVP_CIPHER *cfb[3], *wrap[3];
static EVP_MD *sha1, *kdf_md[3]; /* kdf_md: SHA-256, SHA-384, SHA-512 (OpenPGP hash IDs 8, 9, 10) */

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
    static const char *kdf_names[3] = {"SHA256", "SHA384", "SHA512"};
    for (int i = 0; i < 3; i++)
        if (!kdf_md[i] && !(kdf_md[i] = EVP_MD_fetch(NULL, kdf_names[i], NULL))) return 0;
    if (!sha1) sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    return sha1 != NULL;
}

static int key_wrap(int enc, const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out) {
    int i = aes_index(keklen), outl = 0, ok;
    if (i < 0 || n % 8 || n < (enc ? 16u : 24u) || n > 1u << 20) return -1;
    if (enc && pgpb_aes_key_wrap_ni(kek, keklen, in, n, out)) return 1; /* libcrypto's takes ~3.5 us */
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

int pgpb_hash_many(int sha256, pgpb_hash_job *jobs, size_t n, int lanes) {
    const EVP_MD *md = sha256 ? kdf_md[0] : sha1;
    unsigned int want = sha256 ? 32 : 20;
    if (lanes < -1 || lanes > PGPB_SHA_MAX_LANES) return -1;
    if (lanes >= 0 && (sha256 ? pgpb_sha256_many(jobs, n, lanes) : pgpb_sha1_many(jobs, n, lanes))) return 1;
    for (size_t i = 0; i < n; i++) {
        unsigned int len = 0;
        if (EVP_Digest(jobs[i].data, jobs[i].len, jobs[i].digest, &len, md, NULL) != 1 || len != want) return -1;
    }
    return 1;
}

/* The job to hash and encrypt on its own lane (pgpb_cfb_sha1_fused), N when none: the longest, if at least
 * FUSE_MIN octets, a quarter of all the others together and four times the next longest. Then it would run
 * alone in both passes (its SHA-1 costs 0.6 ns an octet, its AES-CFB chain 1.1), but fused only its AES
 * counts. Two long ones run side by side in both passes instead (longest first, not serially fused). */
#define FUSE_MIN (64 * 1024)

static size_t dominant(const pgpb_cfb_job *jobs, size_t n) {
    size_t longest = n, second = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        total += jobs[i].len;
        if (longest == n || jobs[i].len > jobs[longest].len) {
            if (longest < n) second = jobs[longest].len;
            longest = i;
        } else if (jobs[i].len > second) {
            second = jobs[i].len;
        }
    }
    if (longest == n || jobs[longest].len < FUSE_MIN || 4 * jobs[longest].len < total - jobs[longest].len ||
        jobs[longest].len < 4 * second)
        return n;
    return longest;
}

int pgpb_cfb_mdc_many(pgpb_cfb_job *jobs, pgpb_hash_job *mdcs, size_t n) {
    size_t solo = dominant(jobs, n);
    for (size_t i = 0; i < n; i++)
        if (aes_index(jobs[i].keylen) < 0) return -1;
    if (solo < n && pgpb_cfb_sha1_fused(&jobs[solo], &mdcs[solo])) { /* done: the last takes its place */
        jobs[solo] = jobs[n - 1], mdcs[solo] = mdcs[n - 1];
        n--;
    }
    if (pgpb_hash_many(0, mdcs, n, 0) != 1) return -1;
    return pgpb_cfb_encrypt_many(jobs, n);
}

int pgpb_aes_key_wrap(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out) {
    return key_wrap(1, kek, keklen, in, n, out);
}

int pgpb_aes_key_unwrap(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out) {
    return key_wrap(0, kek, keklen, in, n, out);
}

size_t pgpb_ecdh25519_pkesk(const uint8_t shared[32], const uint8_t eph[32], const uint8_t *param, size_t paramlen,
                            const uint8_t *head, size_t headlen, int kdf_hash, size_t keklen, int cipher,
                            const uint8_t *key, size_t keylen, uint8_t *out) {
    uint8_t kdf_in[4 + 32 + 256], digest[EVP_MAX_MD_SIZE], frame[256];
    unsigned int dlen = 0;
    size_t framelen = (cipher >= 0) + keylen + 2, wrappedlen, bodylen, at = 0, sum = 0;
    if (kdf_hash < 8 || kdf_hash > 10 || aes_index(keklen) < 0 || paramlen > 256 || cipher > 255) return 0;
    framelen += 8 - framelen % 8; /* PKCS#5 padding: 1 to 8 octets */
    wrappedlen = framelen + 8;
    if (framelen > sizeof frame || wrappedlen > 255 || headlen > PGPB_PKESK_HEAD_MAX) return 0;
    /* KEK = Hash(00 00 00 01 || Z || param) truncated (RFC 9580 section 11.5) */
    memcpy(kdf_in, "\0\0\0\1", 4);
    memcpy(kdf_in + 4, shared, 32);
    memcpy(kdf_in + 36, param, paramlen);
    if (EVP_Digest(kdf_in, 36 + paramlen, digest, &dlen, kdf_md[kdf_hash - 8], NULL) != 1 || dlen < keklen) return 0;
    /* the session-key frame [cipher] key checksum, PKCS#5-padded */
    if (cipher >= 0) frame[at++] = (uint8_t)cipher;
    memcpy(frame + at, key, keylen);
    for (size_t i = 0; i < keylen; i++) sum += key[i];
    at += keylen;
    frame[at++] = (uint8_t)(sum >> 8);
    frame[at++] = (uint8_t)sum;
    memset(frame + at, (int)(framelen - at), framelen - at);
    /* the packet: new-format header (tag 1), head, MPI of 0x40 || eph, wrapped key with its length */
    bodylen = headlen + 3 + 32 + 1 + wrappedlen;
    at = 0;
    out[at++] = 0xC1;
    if (bodylen < 192) {
        out[at++] = (uint8_t)bodylen;
    } else {
        out[at++] = (uint8_t)(((bodylen - 192) >> 8) + 192);
        out[at++] = (uint8_t)(bodylen - 192);
    }
    memcpy(out + at, head, headlen);
    at += headlen;
    memcpy(out + at, "\x01\x07\x40", 3);
    memcpy(out + at + 3, eph, 32);
    at += 35;
    out[at++] = (uint8_t)wrappedlen;
    int ok = key_wrap(1, digest, keklen, frame, framelen, out + at) == 1;
    OPENSSL_cleanse(kdf_in, sizeof kdf_in);
    OPENSSL_cleanse(digest, sizeof digest);
    OPENSSL_cleanse(frame, sizeof frame);
    return ok ? at + wrappedlen : 0;
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
