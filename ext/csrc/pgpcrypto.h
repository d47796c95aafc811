/* pgpcrypto.h - OpenPGP symmetric kernels on OpenSSL's libcrypto (EVP, AES-NI where the CPU has it).
 *
 * AES key wrap (RFC 3394) for ECDH / X25519 session keys, and AES-CFB with the SEIPD v1 modification
 * detection code (RFC 9580 section 5.13.1) hashed and encrypted in one cache-friendly pass; whole
 * legacy-ECDH PKESKs on Curve25519 from an X25519 result (pgpb_ecdh25519_pkesk, which returns a length).
 * Every other function returns 1 on success, 0 on an integrity failure (unwrap, MDC) and -1 on an OpenSSL
 * error; no function allocates Python objects, so callers may release the GIL around them.
 */
#ifndef PGPB_PGPCRYPTO_H
#define PGPB_PGPCRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "cfbmb.h"
#include "shamb.h"

#define PGPB_AES_BLOCK 16
#define PGPB_MDC_LEN 22 /* 0xD3 0x14 || SHA-1 */

/* Fetch the ciphers and SHA-1 once; 1 on success. Must run before anything else (module import). */
int pgpb_crypto_init(void);

/* RFC 3394 with the default IV; KEK of 16/24/32 octets, IN a multiple of 8 (>= 16); OUT gets n+8. */
int pgpb_aes_key_wrap(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out);
/* The inverse; OUT gets n-8 octets; 0 when the integrity check fails. */
int pgpb_aes_key_unwrap(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out);

/* A PKESK packet (tag 1, new format) of legacy ECDH on Curve25519 (RFC 9580 sections 5.1.4 and 11.5)
 * from the X25519 SHARED secret and the ephemeral public key EPH: HEAD (the body up to its algorithm
 * octet, at most PGPB_PKESK_HEAD_MAX octets), the point 0x40 || EPH as an MPI, and the session-key frame
 * ([CIPHER] KEY checksum, PKCS#5-padded; CIPHER < 0 leaves it out, as a v6 PKESK does) AES-wrapped under
 * Hash(00 00 00 01 || SHARED || PARAM) truncated to KEKLEN octets, Hash the OpenPGP hash ID KDF_HASH
 * (8, 9, 10: SHA-256/384/512). OUT needs PGPB_PKESK_MAX octets. Returns the packet's length, or 0 on
 * bad arguments or a libcrypto error. */
#define PGPB_PKESK_HEAD_MAX 64
#define PGPB_PKESK_MAX (3 + PGPB_PKESK_HEAD_MAX + 36 + 255)
size_t pgpb_ecdh25519_pkesk(const uint8_t shared[32], const uint8_t eph[32], const uint8_t *param, size_t paramlen,
                            const uint8_t *head, size_t headlen, int kdf_hash, size_t keklen, int cipher,
                            const uint8_t *key, size_t keylen, uint8_t *out);

/* SHA-1 (SHA256 = 0) or SHA-256 of every job (shamb.h), LANES messages at a time on SHA-NI (0: the
 * default; 1..PGPB_SHA_MAX_LANES), or one by one in libcrypto (LANES = -1, and always without SHA-NI).
 * May reorder JOBS. 1 on success, -1 on a libcrypto error or a LANES out of range. */
int pgpb_hash_many(int sha256, pgpb_hash_job *jobs, size_t n, int lanes);

/* SEIPD v1 bodies of many messages (the caller has laid each out): the SHA-1 of MDCS[i] into its place in
 * JOBS[i] (pgpb_cfb_sha1_fused's layout), then AES-CFB of JOBS[i] in place; several messages at once, and a
 * long message that would run alone with its SHA-1 in the shadow of its AES. JOBS and MDCS are scratch
 * (reordered, overwritten). 1 on success, -1 on a bad key length or a libcrypto error. */
int pgpb_cfb_mdc_many(pgpb_cfb_job *jobs, pgpb_hash_job *mdcs, size_t n);

/* Streaming AES-CFB128 (zero IV when IV is NULL), optionally hashing the plaintext with SHA-1. */
typedef struct pgpb_cfb pgpb_cfb;
pgpb_cfb *pgpb_cfb_new(const uint8_t *key, size_t keylen, const uint8_t *iv, int decrypt, int hash);
void pgpb_cfb_free(pgpb_cfb *s);
/* Encrypt (or decrypt) N octets IN -> OUT (may alias); with HASH the plaintext side goes into the SHA-1. */
int pgpb_cfb_update(pgpb_cfb *s, const uint8_t *in, size_t n, uint8_t *out, int hash);
/* Hash N plaintext octets without encrypting them. */
int pgpb_cfb_hash(pgpb_cfb *s, const uint8_t *in, size_t n);
/* Encrypting stream: append 0xD3 0x14, hash, and encrypt the 22-octet MDC packet into OUT. */
int pgpb_cfb_mdc_final(pgpb_cfb *s, uint8_t out[PGPB_MDC_LEN]);
/* Decrypting stream: hash the first two octets of MDC (the decrypted MDC packet, not hashed by
 * pgpb_cfb_update) and compare the digest in constant time with its last 20; 1 when they match and
 * the header is 0xD3 0x14. */
int pgpb_cfb_mdc_check(pgpb_cfb *s, const uint8_t mdc[PGPB_MDC_LEN]);

#endif
