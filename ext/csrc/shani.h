/* shani.h - SHA-1 and SHA-256 block kernels on Intel SHA extensions, several messages side by side.
 *
 * Static inline code shared by shamb.c (many buffers) and cfbmb.c (the MDC hashed alongside its AES-CFB).
 * x86-64 only (PGPB_SHANI); callers check pgpb_cpu_has_sha_ni() first. SHA-1 keeps sha1.c's layout (ABCD
 * reversed, E in the top lane), SHA-256 the usual ABEF / CDGH pair; states are FIPS 180-4 words.
 */
#ifndef PGPB_SHANI_H
#define PGPB_SHANI_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PGPB_SHANI 1
#include <immintrin.h>

#define SHANI_MAX_LANES 4

static inline void shani_store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#define SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3")))
#define SHANI_INLINE static inline __attribute__((always_inline))

/* ---- SHA-1 on SHA-NI: the layout of sha1.c (ABCD reversed, E in the top lane), LANES streams at once -- */

/* Rounds 4K..4K+3 of every lane: extend the schedule (K >= 4), derive E, four rounds. */
#define SHA1_GROUP(k, f)                                                                                 \
    for (int s = 0; s < lanes; s++) {                                                                   \
        if ((k) >= 4)                                                                                    \
            m[s][(k) & 3] = _mm_sha1msg2_epu32(                                                          \
                _mm_xor_si128(_mm_sha1msg1_epu32(m[s][(k) & 3], m[s][((k) + 1) & 3]), m[s][((k) + 2) & 3]), \
                m[s][((k) + 3) & 3]);                                                                    \
        e[s] = (k) == 0 ? _mm_add_epi32(e_in[s], m[s][0]) : _mm_sha1nexte_epu32(prev[s], m[s][(k) & 3]); \
        prev[s] = abcd[s];                                                                               \
        abcd[s] = _mm_sha1rnds4_epu32(abcd[s], e[s], (f));                                               \
    }

SHANI_INLINE SHANI_TARGET void sha1_ni_lanes(const int lanes, uint32_t *const st[], const uint8_t *p[],
                                              size_t nblocks) {
    const __m128i bswap = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd[SHANI_MAX_LANES], e_in[SHANI_MAX_LANES], e[SHANI_MAX_LANES], prev[SHANI_MAX_LANES];
    __m128i m[SHANI_MAX_LANES][4], abcd_save[SHANI_MAX_LANES], e_save[SHANI_MAX_LANES];
    for (int s = 0; s < lanes; s++) {
        abcd[s] = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)st[s]), 0x1B);
        e_in[s] = _mm_set_epi32((int)st[s][4], 0, 0, 0);
    }
    for (size_t b = 0; b < nblocks; b++) {
        for (int s = 0; s < lanes; s++) {
            abcd_save[s] = abcd[s];
            e_save[s] = e_in[s];
            for (int i = 0; i < 4; i++)
                m[s][i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p[s] + 64 * b + 16 * i)), bswap);
            prev[s] = abcd[s];
        }
        SHA1_GROUP(0, 0) SHA1_GROUP(1, 0) SHA1_GROUP(2, 0) SHA1_GROUP(3, 0) SHA1_GROUP(4, 0)
        SHA1_GROUP(5, 1) SHA1_GROUP(6, 1) SHA1_GROUP(7, 1) SHA1_GROUP(8, 1) SHA1_GROUP(9, 1)
        SHA1_GROUP(10, 2) SHA1_GROUP(11, 2) SHA1_GROUP(12, 2) SHA1_GROUP(13, 2) SHA1_GROUP(14, 2)
        SHA1_GROUP(15, 3) SHA1_GROUP(16, 3) SHA1_GROUP(17, 3) SHA1_GROUP(18, 3) SHA1_GROUP(19, 3)
        for (int s = 0; s < lanes; s++) {
            e_in[s] = _mm_sha1nexte_epu32(prev[s], e_save[s]);
            abcd[s] = _mm_add_epi32(abcd[s], abcd_save[s]);
        }
    }
    for (int s = 0; s < lanes; s++) {
        _mm_storeu_si128((__m128i *)st[s], _mm_shuffle_epi32(abcd[s], 0x1B));
        st[s][4] = (uint32_t)_mm_extract_epi32(e_in[s], 3);
    }
}

/* ---- SHA-256 on SHA-NI: state as ABEF / CDGH, four message words per register ------------------------ */

static const uint32_t K256[64] __attribute__((aligned(16), unused)) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Rounds 4K..4K+3 of every lane: extend the schedule (K >= 4), then two SHA256RNDS2. */
#define SHA256_GROUP(k)                                                                                  \
    for (int s = 0; s < lanes; s++) {                                                                   \
        if ((k) >= 4)                                                                                    \
            m[s][(k) & 3] = _mm_sha256msg2_epu32(                                                        \
                _mm_add_epi32(_mm_sha256msg1_epu32(m[s][(k) & 3], m[s][((k) + 1) & 3]),                  \
                              _mm_alignr_epi8(m[s][((k) + 3) & 3], m[s][((k) + 2) & 3], 4)),             \
                m[s][((k) + 3) & 3]);                                                                    \
        __m128i wk = _mm_add_epi32(m[s][(k) & 3], _mm_load_si128((const __m128i *)(K256 + 4 * (k))));   \
        cdgh[s] = _mm_sha256rnds2_epu32(cdgh[s], abef[s], wk);                                           \
        abef[s] = _mm_sha256rnds2_epu32(abef[s], cdgh[s], _mm_shuffle_epi32(wk, 0x0E));                 \
    }

SHANI_INLINE SHANI_TARGET void sha256_ni_lanes(const int lanes, uint32_t *const st[], const uint8_t *p[],
                                                size_t nblocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i abef[SHANI_MAX_LANES], cdgh[SHANI_MAX_LANES], m[SHANI_MAX_LANES][4];
    __m128i abef_save[SHANI_MAX_LANES], cdgh_save[SHANI_MAX_LANES];
    for (int s = 0; s < lanes; s++) {
        __m128i dcba = _mm_loadu_si128((const __m128i *)st[s]), hgfe = _mm_loadu_si128((const __m128i *)(st[s] + 4));
        __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1), efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        abef[s] = _mm_alignr_epi8(cdab, efgh, 8);
        cdgh[s] = _mm_blend_epi16(efgh, cdab, 0xF0);
    }
    for (size_t b = 0; b < nblocks; b++) {
        for (int s = 0; s < lanes; s++) {
            abef_save[s] = abef[s];
            cdgh_save[s] = cdgh[s];
            for (int i = 0; i < 4; i++)
                m[s][i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p[s] + 64 * b + 16 * i)), bswap);
        }
        SHA256_GROUP(0) SHA256_GROUP(1) SHA256_GROUP(2) SHA256_GROUP(3)
        SHA256_GROUP(4) SHA256_GROUP(5) SHA256_GROUP(6) SHA256_GROUP(7)
        SHA256_GROUP(8) SHA256_GROUP(9) SHA256_GROUP(10) SHA256_GROUP(11)
        SHA256_GROUP(12) SHA256_GROUP(13) SHA256_GROUP(14) SHA256_GROUP(15)
        for (int s = 0; s < lanes; s++) {
            abef[s] = _mm_add_epi32(abef[s], abef_save[s]);
            cdgh[s] = _mm_add_epi32(cdgh[s], cdgh_save[s]);
        }
    }
    for (int s = 0; s < lanes; s++) {
        __m128i feba = _mm_shuffle_epi32(abef[s], 0x1B), dchg = _mm_shuffle_epi32(cdgh[s], 0xB1);
        _mm_storeu_si128((__m128i *)st[s], _mm_blend_epi16(feba, dchg, 0xF0));
        _mm_storeu_si128((__m128i *)(st[s] + 4), _mm_alignr_epi8(dchg, feba, 8));
    }
}

/* Pad the last LEN % 64 octets of DATA[0..LEN) into ST (which holds all its whole blocks) and write the
 * SHA-1 (SHA256 = 0: 5 words) or SHA-256 (8 words) digest. */
__attribute__((unused)) static SHANI_TARGET void sha_ni_finish(int sha256, uint32_t st[8], const uint8_t *data,
                                                               size_t len, uint8_t *digest) {
    uint8_t buf[128];
    size_t tail = len % 64, padded = tail < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len << 3;
    uint32_t *states[1] = {st};
    const uint8_t *blocks[1] = {buf};
    memcpy(buf, data + (len - tail), tail);
    buf[tail] = 0x80;
    memset(buf + tail + 1, 0, padded - tail - 9);
    shani_store_be32(buf + padded - 8, (uint32_t)(bits >> 32));
    shani_store_be32(buf + padded - 4, (uint32_t)bits);
    if (sha256)
        sha256_ni_lanes(1, states, blocks, padded / 64);
    else
        sha1_ni_lanes(1, states, blocks, padded / 64);
    for (int i = 0; i < (sha256 ? 8 : 5); i++) shani_store_be32(digest + 4 * i, st[i]);
}

#endif /* x86-64 */
#endif
