/* zbase32.h - z-base-32 (Zooko O'Whielacronx 2002, the alphabet RFC 6189 uses) for whole bytes.
 *
 * Bits are taken most significant first, five at a time, as in RFC 4648 base32 and in GnuPG's
 * zb32_encode (common/zb32.c): N bytes give ceil(8N/5) characters, the last character's unused
 * low bits are zero, and there is no padding character. 20 bytes (a SHA-1 digest) give 32.
 */
#ifndef PGPB_ZBASE32_H
#define PGPB_ZBASE32_H

#include <stddef.h>
#include <stdint.h>

#define PGPB_ZB32_OK 0
#define PGPB_ZB32_BAD_CHAR 1     /* *err_pos: index of a character outside the alphabet */
#define PGPB_ZB32_BAD_LENGTH 2   /* length % 8 is 1, 3 or 6: no whole-byte input encodes to it */
#define PGPB_ZB32_BAD_PADDING 3  /* *err_pos: last character; its unused low bits are not zero */

/* Characters needed for N bytes: ceil(8N/5). */
static inline size_t pgpb_zb32_encoded_len(size_t n) { return (n / 5) * 8 + (n % 5 * 8 + 4) / 5; }

/* Bytes encoded by N characters (N a valid length): floor(5N/8). */
static inline size_t pgpb_zb32_decoded_len(size_t n) { return (n / 8) * 5 + (n % 8) * 5 / 8; }

/* Write pgpb_zb32_encoded_len(N) characters for IN[0..N) to OUT (no terminator). */
void pgpb_zb32_encode(const uint8_t *in, size_t n, char *out);

/* The 32 characters of a 20-byte digest. */
void pgpb_zb32_encode20(const uint8_t in[20], char out[32]);

/* Decode N characters into OUT (pgpb_zb32_decoded_len(N) bytes). Only the lower-case alphabet
 * is accepted. Returns PGPB_ZB32_*; ERR_POS receives the offending index where one applies. */
int pgpb_zb32_decode(const char *in, size_t n, uint8_t *out, size_t *err_pos);

#endif /* PGPB_ZBASE32_H */
