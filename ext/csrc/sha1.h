/* sha1.h - SHA-1 (FIPS 180-4) for the WKD hash: portable scalar code and an Intel SHA-NI path.
 *
 * SHA-1 is used here only because the WKD draft names it for the hashed local part; it is not a
 * security primitive in pgpbulk. The SHA-NI path is chosen at run time (CPUID) and can be
 * bypassed, so tests can compare both paths with a reference.
 */
#ifndef PGPB_SHA1_H
#define PGPB_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define PGPB_SHA1_DIGEST_LEN 20
#define PGPB_SHA1_BLOCK_LEN 64

/* Backends for pgpb_sha1_select(). */
#define PGPB_SHA1_AUTO 0
#define PGPB_SHA1_PORTABLE 1
#define PGPB_SHA1_SHA_NI 2

/* Compress NBLOCKS consecutive 64-byte blocks into STATE[5]. */
typedef void (*pgpb_sha1_compress_fn)(uint32_t state[5], const uint8_t *blocks, size_t nblocks);

/* Non-zero when this CPU (and this build) can run the SHA-NI path. */
int pgpb_sha1_has_sha_ni(void);

/* The compress function for BACKEND (PGPB_SHA1_*); NULL when that backend is unavailable. */
pgpb_sha1_compress_fn pgpb_sha1_select(int backend);

/* Name of the backend PGPB_SHA1_AUTO resolves to: "sha_ni" or "portable". */
const char *pgpb_sha1_auto_name(void);

/* One-shot SHA-1 of DATA[0..LEN) into OUT[20] with the given compress function. */
void pgpb_sha1(pgpb_sha1_compress_fn compress, const uint8_t *data, size_t len, uint8_t out[20]);

/* SHA-1 of DATA with ASCII 'A'..'Z' mapped to 'a'..'z' (bytes >= 0x80 unchanged), as the WKD
 * draft (section 3.1) requires for the local part. */
void pgpb_sha1_ascii_lower(pgpb_sha1_compress_fn compress, const uint8_t *data, size_t len,
                           uint8_t out[20]);

#endif /* PGPB_SHA1_H */
