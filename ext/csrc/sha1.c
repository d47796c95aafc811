/* sha1.c - SHA-1 (FIPS 180-4): portable scalar compression and an Intel SHA extensions path.
 *
 * Written for pgpbulk's WKD hash. The scalar code is the plain FIPS 180-4 round structure with
 * the 16-word rolling message schedule. The SHA-NI code follows the data layout Intel documents
 * for SHA1RNDS4/SHA1NEXTE/SHA1MSG1/SHA1MSG2: four message words per register with W0 in the top
 * lane, ABCD reversed so A is in the top lane, E carried in the top lane of its own register.
 */
#include "sha1.h"

#include "cpu.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define PGPB_SHA1_X86 1
#include <immintrin.h>
#endif

#define ROL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- portable ---------------------------------------------------------------------------- */

/* W[t] for t >= 16 (FIPS 180-4 6.1.2 step 1), kept in a 16-word ring. */
#define SCHED(t) (w[(t) & 15] = ROL32(w[((t) + 13) & 15] ^ w[((t) + 8) & 15] ^ w[((t) + 2) & 15] ^ w[(t) & 15], 1))
#define WORD(t) ((t) < 16 ? w[(t) & 15] : SCHED(t))

#define F_CH(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define F_PARITY(b, c, d) ((b) ^ (c) ^ (d))
#define F_MAJ(b, c, d) (((b) & (c)) | ((d) & ((b) | (c))))

/* One round; the caller rotates the roles of a..e instead of moving values. */
#define ROUND(F, K, a, b, c, d, e, t)                          \
    do {                                                       \
        (e) += ROL32((a), 5) + F((b), (c), (d)) + (K) + WORD(t); \
        (b) = ROL32((b), 30);                                  \
    } while (0)

#define ROUND5(F, K, t)                       \
    ROUND(F, K, a, b, c, d, e, (t));          \
    ROUND(F, K, e, a, b, c, d, (t) + 1);      \
    ROUND(F, K, d, e, a, b, c, (t) + 2);      \
    ROUND(F, K, c, d, e, a, b, (t) + 3);      \
    ROUND(F, K, b, c, d, e, a, (t) + 4)

#define ROUND20(F, K, t) \
    ROUND5(F, K, (t));   \
    ROUND5(F, K, (t) + 5); \
    ROUND5(F, K, (t) + 10); \
    ROUND5(F, K, (t) + 15)

static void compress_portable(uint32_t state[5], const uint8_t *p, size_t nblocks)
{
    uint32_t w[16];
    for (; nblocks; nblocks--, p += 64) {
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
        for (int i = 0; i < 16; i++)
            w[i] = load_be32(p + 4 * i);
        ROUND20(F_CH, 0x5A827999u, 0);
        ROUND20(F_PARITY, 0x6ED9EBA1u, 20);
        ROUND20(F_MAJ, 0x8F1BBCDCu, 40);
        ROUND20(F_PARITY, 0xCA62C1D6u, 60);
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
    }
}

/* ---- SHA-NI ------------------------------------------------------------------------------ */

#ifdef PGPB_SHA1_X86

/* Group K (rounds 4K..4K+3): extend the schedule when K >= 4, derive E, run four rounds. */
#define NI_GROUP(k, f)                                                                         \
    do {                                                                                       \
        if ((k) >= 4)                                                                          \
            m[(k) & 3] = _mm_sha1msg2_epu32(                                                   \
                _mm_xor_si128(_mm_sha1msg1_epu32(m[(k) & 3], m[((k) + 1) & 3]), m[((k) + 2) & 3]), \
                m[((k) + 3) & 3]);                                                             \
        e = (k) == 0 ? _mm_add_epi32(e_in, m[0]) : _mm_sha1nexte_epu32(prev, m[(k) & 3]);      \
        prev = abcd;                                                                           \
        abcd = _mm_sha1rnds4_epu32(abcd, e, (f));                                              \
    } while (0)

__attribute__((target("sha,sse4.1,ssse3")))
static void compress_sha_ni(uint32_t state[5], const uint8_t *p, size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)state), 0x1B);
    __m128i e_in = _mm_set_epi32((int)state[4], 0, 0, 0);
    __m128i m[4], e, prev;

    for (; nblocks; nblocks--, p += 64) {
        const __m128i abcd_save = abcd;
        const __m128i e_save = e_in;
        for (int i = 0; i < 4; i++)
            m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
        prev = abcd;
        NI_GROUP(0, 0); NI_GROUP(1, 0); NI_GROUP(2, 0); NI_GROUP(3, 0); NI_GROUP(4, 0);
        NI_GROUP(5, 1); NI_GROUP(6, 1); NI_GROUP(7, 1); NI_GROUP(8, 1); NI_GROUP(9, 1);
        NI_GROUP(10, 2); NI_GROUP(11, 2); NI_GROUP(12, 2); NI_GROUP(13, 2); NI_GROUP(14, 2);
        NI_GROUP(15, 3); NI_GROUP(16, 3); NI_GROUP(17, 3); NI_GROUP(18, 3); NI_GROUP(19, 3);
        /* E after round 79 is ROL30 of A from four rounds earlier; add the saved E. */
        e_in = _mm_sha1nexte_epu32(prev, e_save);
        abcd = _mm_add_epi32(abcd, abcd_save);
    }
    _mm_storeu_si128((__m128i *)state, _mm_shuffle_epi32(abcd, 0x1B));
    state[4] = (uint32_t)_mm_extract_epi32(e_in, 3);
}

#endif /* PGPB_SHA1_X86 */

/* ---- selection and one-shot hashing ------------------------------------------------------ */

/* SHA-NI needs the SHA extensions plus SSSE3 and SSE4.1; cpu.c checks all three. */
int pgpb_sha1_has_sha_ni(void)
{
#ifdef PGPB_SHA1_X86
    return pgpb_cpu_has_sha_ni();
#else
    return 0;
#endif
}

pgpb_sha1_compress_fn pgpb_sha1_select(int backend)
{
    switch (backend) {
    case PGPB_SHA1_PORTABLE:
        return compress_portable;
    case PGPB_SHA1_SHA_NI:
#ifdef PGPB_SHA1_X86
        return pgpb_sha1_has_sha_ni() ? compress_sha_ni : NULL;
#else
        return NULL;
#endif
    case PGPB_SHA1_AUTO:
        return pgpb_sha1_has_sha_ni() ? pgpb_sha1_select(PGPB_SHA1_SHA_NI) : compress_portable;
    default:
        return NULL;
    }
}

const char *pgpb_sha1_auto_name(void)
{
    return pgpb_sha1_has_sha_ni() ? "sha_ni" : "portable";
}

static void sha1_init(uint32_t st[5])
{
    st[0] = 0x67452301u;
    st[1] = 0xEFCDAB89u;
    st[2] = 0x98BADCFEu;
    st[3] = 0x10325476u;
    st[4] = 0xC3D2E1F0u;
}

/* Pad the TAIL bytes already in BUF (tail < 64) for a message of TOTAL bytes and finish. */
static void sha1_finish(pgpb_sha1_compress_fn compress, uint32_t st[5], uint8_t buf[128], size_t tail,
                        uint64_t total, uint8_t out[20])
{
    size_t padded = tail < 56 ? 64 : 128;
    buf[tail] = 0x80;
    memset(buf + tail + 1, 0, padded - tail - 9);
    uint64_t bits = total << 3;
    store_be32(buf + padded - 8, (uint32_t)(bits >> 32));
    store_be32(buf + padded - 4, (uint32_t)bits);
    compress(st, buf, padded / 64);
    for (int i = 0; i < 5; i++)
        store_be32(out + 4 * i, st[i]);
}

void pgpb_sha1(pgpb_sha1_compress_fn compress, const uint8_t *data, size_t len, uint8_t out[20])
{
    uint32_t st[5];
    uint8_t buf[128];
    size_t full = len / 64;
    sha1_init(st);
    if (full)
        compress(st, data, full);
    size_t tail = len - full * 64;
    memcpy(buf, data + full * 64, tail);
    sha1_finish(compress, st, buf, tail, (uint64_t)len, out);
}

/* Copy N bytes, mapping ASCII upper case to lower case and nothing else. */
static inline void copy_ascii_lower(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = src[i];
        dst[i] = (uint8_t)((uint8_t)(c - 'A') < 26u ? (c | 0x20) : c);
    }
}

void pgpb_sha1_ascii_lower(pgpb_sha1_compress_fn compress, const uint8_t *data, size_t len,
                           uint8_t out[20])
{
    uint32_t st[5];
    uint8_t buf[128];
    size_t done = 0;
    sha1_init(st);
    while (len - done >= 64) {
        copy_ascii_lower(buf, data + done, 64);
        compress(st, buf, 1);
        done += 64;
    }
    copy_ascii_lower(buf, data + done, len - done);
    sha1_finish(compress, st, buf, len - done, (uint64_t)len, out);
}
