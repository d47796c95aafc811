/* wkdsel.h - the digests and RSA verifications of the WKD selection kernel, on OpenSSL's libcrypto.
 *
 * Hash algorithms are passed as indexes (wks_md_index of the OpenPGP id). The digest functions keep
 * their state in static contexts: callers hold the GIL and never release it around them.
 * No function allocates Python objects.
 */
#ifndef PGPB_WKDSEL_H
#define PGPB_WKDSEL_H

#include <stddef.h>
#include <stdint.h>

#define WKS_MAX_DIGEST 64

/* Fetch the digests once; 1 on success. Must run before anything else (module import). */
int wks_init(void);
/* The index of OpenPGP hash algorithm HALG (SHA-1, SHA-224, SHA-256, SHA-384, SHA-512), else -1. */
int wks_md_index(int halg);
/* The index of the digest of LEN octets, else -1. */
int wks_md_index_by_size(size_t len);

/* Start the digests of one key: with MD, hash PREFIX (kept until the next call); its generation (> 0),
 * or 0 on failure. */
unsigned long wks_prefix(int md, const uint8_t *prefix, size_t len);
/* The generation of the prefix in place: a caller whose generation differs (another caller came in
 * between, e.g. from another thread while Python objects were allocated) must call wks_prefix again. */
unsigned long wks_prefix_generation(void);
/* The digest of prefix || A || B || C || D (any may have length 0) into OUT; its length, or -1. */
int wks_finish(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, const uint8_t *c, size_t clen,
               const uint8_t *d, size_t dlen, uint8_t *out);
/* SHA-1 of N octets into OUT (20 octets); 1 on success. */
int wks_sha1(const uint8_t *in, size_t n, uint8_t *out);

/* An RSA public key (an RSA) from big-endian N and E, else NULL. */
void *wks_rsa_new(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen);
void wks_rsa_free(void *key);
/* PKCS #1 v1.5 verification of SIG over the digest DIG made with MD, exactly as OpenSSL's EVP_PKEY_verify:
 * 1 valid, 0 not (errors cleared). */
int wks_rsa_verify(void *key, int md, const uint8_t *sig, size_t siglen, const uint8_t *dig, size_t dlen);

#endif
