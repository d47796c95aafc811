/* cfbmb.h - AES-CFB128 encryption of many independent buffers at once ("multi-buffer").
 *
 * CFB encryption is serial within one message: each block needs the previous ciphertext block, so a
 * single stream waits on the AES unit's latency (about 3.5 cycles per octet for AES-256). Bulk mail
 * has many independent messages; running eight of them side by side keeps the AES-NI pipeline full.
 * Each buffer is encrypted in place with its own key and a zero IV, exactly as AES-CFB128 (OpenSSL's
 * "AES-256-CFB"), including a final partial block. Without AES-NI every buffer goes through
 * libcrypto one after the other (pgpcrypto.h); the result is the same. The same AES-NI core also
 * serves the RFC 3394 key wrap of ECDH session keys (libcrypto's takes some 3.5 us a call).
 */
#ifndef PGPB_CFBMB_H
#define PGPB_CFBMB_H

#include <stddef.h>
#include <stdint.h>

#include "shamb.h"

typedef struct {
    const uint8_t *key; /* 16, 24 or 32 octets */
    size_t keylen;
    uint8_t *data; /* plaintext in, ciphertext out */
    size_t len;
} pgpb_cfb_job;

/* 1 when the multi-buffer AES-NI path runs on this CPU (else libcrypto, one buffer at a time). */
int pgpb_cfb_many_native(void);
/* Encrypt every job's buffer in place (the longest first; JOBS is reordered); 1 on success, -1 on a bad key
 * length or a libcrypto error.
 * Touches no Python object (callers release the GIL); the only allocation is qsort's scratch. */
int pgpb_cfb_encrypt_many(pgpb_cfb_job *jobs, size_t n);

/* Hash MDC (SHA-1; MDC->data is JOB's first octet, its digest lies in JOB after MDC's range) and encrypt JOB in
 * place, on one lane with each block hashed just before it is encrypted: for one long message the SHA-1 then
 * costs next to nothing beside the serial AES-CFB. Returns 1, or 0 without AES-NI and SHA-NI or when the jobs
 * do not fit (nothing done; the caller hashes and encrypts them apart). */
int pgpb_cfb_sha1_fused(pgpb_cfb_job *job, const pgpb_hash_job *mdc);

/* RFC 3394 AES key wrap on AES-NI (the same single-block core): KEK of 16/24/32 octets, IN a multiple
 * of 8 octets (>= 16), OUT gets n + 8. Returns 1, or 0 without AES-NI (the caller uses libcrypto). */
int pgpb_aes_key_wrap_ni(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out);

#endif
