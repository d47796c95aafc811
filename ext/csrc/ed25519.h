/* ed25519.h - Ed25519 signature verification, one signature or many (keys varying).
 *
 * The verdict is RFC 8032 section 5.1.7's cofactored equation [8][S]B == [8]R + [8][h]A with
 * h = SHA-512(R || A || M) mod L (OpenSSL's libcrypto), after libsodium's pre-checks: S < L, canonical
 * encodings of A and R, neither of small order (encodings compared as libsodium's has_small_order does)
 * and both decompressing. Many checks are one random linear combination of the equations:
 *   [8]([sum z_i S_i] B - sum [z_i] R_i - sum [sum z_i h_i] A) == identity,  z_i random odd 128-bit,
 * in one Straus multi-scalar multiplication (the last sum over the keys, the inner one over each key's
 * checks). Variable time: only public values (keys, signatures) enter.
 * The functions keep state in static buffers: callers hold the GIL and never release it around them.
 */
#ifndef PGPB_ED25519_H
#define PGPB_ED25519_H

#include <stddef.h>
#include <stdint.h>

/* Build the table of multiples of the base point and fetch SHA-512; 1 on success (module import). */
int ed_init(void);
/* Is CHECK (LEN octets: R || S || message) a valid signature under the 32-octet KEY? 1 yes, 0 no. */
int ed_verify_one(const uint8_t *key, const uint8_t *check, size_t len);
/* The verdicts of N checks, each under its own 32-octet key (KEYS[i]; keys may repeat), into VERDICTS (1 valid,
 * 0 not): each equal to ed_verify_one's (but for a chance of about 2^-120 per call). One equation with random
 * 128-bit weights over them all; when it fails, halves of the keys are checked in turn down to single keys,
 * whose checks are then verified alone. 1 on success, -1 when no randomness or memory could be had (the
 * verdicts then all 0: the caller verifies each alone). */
int ed_verify_many(const uint8_t *const *keys, const uint8_t *const *checks, const size_t *lens, size_t n,
                   uint8_t *verdicts);
/* ed_verify_many's products with mulx/adcx/adox when WANT and the CPU has them (the default), else portable
 * C (tests); 1 when mulx is now in use. */
int ed_fast_field(int want);
/* How many equations and single verifications the last ed_verify_many call made (tests, benchmarks). */
void ed_many_counts(size_t *equations, size_t *singles);

#endif
