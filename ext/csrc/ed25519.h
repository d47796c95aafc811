/* ed25519.h - Ed25519 signature verification, one signature or a batch by one public key.
 *
 * The verdict is RFC 8032 section 5.1.7's cofactored equation [8][S]B == [8]R + [8][h]A with
 * h = SHA-512(R || A || M) mod L (OpenSSL's libcrypto), after libsodium's pre-checks: S < L, canonical
 * encodings of A and R, neither of small order (encodings compared as libsodium's has_small_order does)
 * and both decompressing. A batch checks one random linear combination of the equations:
 *   [8]([sum z_i S_i] B - sum [z_i] R_i - [sum z_i h_i] A) == identity,  z_1 = 1, z_i random 128-bit,
 * in one Straus multi-scalar multiplication. Variable time: only public values (keys, signatures) enter.
 * The functions keep state in static buffers: callers hold the GIL and never release it around them.
 */
#ifndef PGPB_ED25519_H
#define PGPB_ED25519_H

#include <stddef.h>
#include <stdint.h>

/* The most signatures one ed_verify_batch call takes. */
#define ED_MAX_BATCH 64

/* Build the table of multiples of the base point and fetch SHA-512; 1 on success (module import). */
int ed_init(void);
/* Is CHECK (LEN octets: R || S || message) a valid signature under the 32-octet KEY? 1 yes, 0 no. */
int ed_verify_one(const uint8_t *key, const uint8_t *check, size_t len);
/* Are all N checks (CHECKS[i] of LENS[i] octets) valid under KEY? 1 yes (but for a chance of 2^-128), 0 when
 * any is not, N is 0 or above ED_MAX_BATCH, -1 when no randomness could be had. */
int ed_verify_batch(const uint8_t *key, const uint8_t *const *checks, const size_t *lens, size_t n);

#endif
