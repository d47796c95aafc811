/* shamb.h - SHA-1 and SHA-256 (FIPS 180-4) of many independent buffers at once ("multi-buffer").
 *
 * One SHA-NI stream waits on the latency of SHA1RNDS4 / SHA256RNDS2 (each round group needs the last
 * one's result); the unit can start a new one every cycle or two, so several independent messages run
 * side by side in the same loop fill it (on an AMD Zen 3: SHA-1 1.6 -> 3.8 GB/s with four lanes,
 * SHA-256 1.5 -> 3.1 GB/s). The longest buffers go first; each lane takes the next buffer when its own
 * is done; the padding block(s) run on one lane. Without SHA-NI the functions return 0 and the caller
 * hashes one by one (libcrypto).
 */
#ifndef PGPB_SHAMB_H
#define PGPB_SHAMB_H

#include <stddef.h>
#include <stdint.h>

#define PGPB_SHA_MAX_LANES 4

typedef struct {
    const uint8_t *data;
    size_t len;
    uint8_t *digest; /* 20 (SHA-1) or 32 (SHA-256) octets out */
} pgpb_hash_job;

/* 1 when the SHA-NI multi-buffer path runs on this CPU. */
int pgpb_sha_many_native(void);
/* Hash every job: LANES streams at once (1..PGPB_SHA_MAX_LANES; 0: this hash's default, shamb.c). 1 when
 * done, 0 when SHA-NI is missing or LANES is out of range (nothing written). Reorders JOBS (longest
 * first). Touches no Python object (callers release the GIL); the only allocation is qsort's scratch. */
int pgpb_sha1_many(pgpb_hash_job *jobs, size_t n, int lanes);
int pgpb_sha256_many(pgpb_hash_job *jobs, size_t n, int lanes);

#endif
