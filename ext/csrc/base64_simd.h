/* Base64 (RFC 4648 §4) for OpenPGP armor: line-wrapped encoding and whitespace-tolerant decoding,
 * with AVX2 and SSSE3 paths chosen at run time and a portable scalar path. */
#ifndef PGPB_BASE64_SIMD_H
#define PGPB_BASE64_SIMD_H

#include <stddef.h>
#include <stdint.h>

#define PGPB_B64_SCALAR 0
#define PGPB_B64_SSSE3 1
#define PGPB_B64_AVX2 2

/* Decode errors (the offset of the offending byte is reported alongside). */
#define PGPB_B64_OK 0
#define PGPB_B64_ERR_CHAR 1     /* a byte outside the alphabet, '=' and space/tab/CR/LF */
#define PGPB_B64_ERR_PAD 2      /* '=' where no padding may stand */
#define PGPB_B64_ERR_AFTER 3    /* an alphabet character after the padding */
#define PGPB_B64_ERR_PARTIAL 4  /* input ends inside a 4-character group (final call only) */

/* Choose the best level the CPU supports; call once before use. */
void pgpb_b64_init(void);
/* Cap the level (PGPB_B64_*, clipped to what the CPU has); returns the level now in use. */
int pgpb_b64_set_level(int level);
int pgpb_b64_level(void);

/* Output size of pgpb_b64_encode_lines: padded base64 plus one '\n' per started line. */
size_t pgpb_b64_lines_len(size_t n, size_t width);

/* Encode src[0..n) as lines of `width` characters (a positive multiple of 4), each ending in '\n'; the
 * last line may be shorter. If crc is not NULL, the CRC-24 of the input is continued in the same pass.
 * Returns the number of bytes written (pgpb_b64_lines_len). */
size_t pgpb_b64_encode_lines(const uint8_t *src, size_t n, uint8_t *dst, size_t width, uint32_t *crc);

/* Plain padded base64 without newlines; returns 4 * ceil(n / 3). */
size_t pgpb_b64_encode_plain(const uint8_t *src, size_t n, uint8_t *dst);

/* Capacity dst needs for pgpb_b64_decode of n input bytes (3 per 4, plus SIMD store slack). */
size_t pgpb_b64_decode_bound(size_t n);

/* Decode base64, skipping space, tab, CR and LF. With final=0 the input may stop inside a group: the
 * bytes from that group's first character on are left unconsumed. If crc is not NULL, the CRC-24 of the
 * output is continued in the same pass. Sets *out_len and *consumed; on error returns PGPB_B64_ERR_*
 * and sets *err_off. */
int pgpb_b64_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t *out_len, size_t *consumed, int final,
                    size_t *err_off, uint32_t *crc);

#endif
