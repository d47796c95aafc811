/* CRC-24 for OpenPGP armor: slicing-by-8 tables and PCLMUL folding.
 *
 * Non-reflected CRC: with register R, the message polynomial M (first byte's MSB is the highest
 * coefficient) and n bytes, the result is (R * x^(8n) + M * x^24) mod P, P = x^24 + 0x864CFB.
 * Slicing-by-8 keeps the 24-bit register in the top of a 32-bit word (poly 0x864CFB00).
 * PCLMUL folding keeps a 128-bit remainder A (any representative of its class mod P): folding the next
 * 16 bytes B is A * x^128 + B == H * (x^192 mod P) + L * (x^128 mod P) + B, with A = H * x^64 + L; the
 * products stay below x^87, so no reduction is needed until the end, where the 16 bytes of A run
 * through the table path with register 0 (that gives A * x^24 mod P) followed by the tail bytes.
 */
#include "crc24.h"
#include "cpu.h"

#include <string.h>

#define POLY32 0x864CFB00u

static uint32_t T[8][256];
static int crc_ready = 0;

#if defined(__x86_64__) || defined(__i386__)
#define PGPB_X86 1
#include <immintrin.h>
static uint64_t k_fold1_hi, k_fold1_lo, k_fold4_hi, k_fold4_lo;
static int use_pclmul = 0;

/* x^k mod P as a polynomial of degree < 24. */
static uint64_t xpow_mod(unsigned k)
{
    uint32_t r = 1;
    while (k--) {
        r <<= 1;
        if (r & 0x1000000u)
            r ^= 0x1864CFBu;
    }
    return r;
}
#endif

void pgpb_crc24_init(void)
{
    if (crc_ready)
        return;
    for (unsigned b = 0; b < 256; b++) {
        uint32_t c = (uint32_t)b << 24;
        for (int i = 0; i < 8; i++)
            c = (c & 0x80000000u) ? (c << 1) ^ POLY32 : c << 1;
        T[0][b] = c;
    }
    for (int k = 1; k < 8; k++)
        for (unsigned b = 0; b < 256; b++)
            T[k][b] = (T[k - 1][b] << 8) ^ T[0][T[k - 1][b] >> 24];
#ifdef PGPB_X86
    k_fold1_hi = xpow_mod(128 + 64);
    k_fold1_lo = xpow_mod(128);
    k_fold4_hi = xpow_mod(512 + 64);
    k_fold4_lo = xpow_mod(512);
    use_pclmul = pgpb_cpu_has_pclmul();
#endif
    crc_ready = 1;
}

uint32_t pgpb_crc24_scalar(uint32_t crc, const uint8_t *p, size_t n)
{
    uint32_t c = (crc & 0xFFFFFFu) << 8;
    while (n >= 8) {
        uint32_t w = ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]) ^ c;
        c = T[7][w >> 24] ^ T[6][(w >> 16) & 0xFF] ^ T[5][(w >> 8) & 0xFF] ^ T[4][w & 0xFF] ^ T[3][p[4]] ^
            T[2][p[5]] ^ T[1][p[6]] ^ T[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c << 8) ^ T[0][(c >> 24) ^ *p++];
    return c >> 8;
}

#ifdef PGPB_X86
__attribute__((target("pclmul,sse4.1,ssse3"))) static inline __m128i
fold(__m128i a, __m128i k, __m128i next)
{
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x11), _mm_clmulepi64_si128(a, k, 0x00)),
                         next);
}

/* Requires n >= 64. */
__attribute__((target("pclmul,sse4.1,ssse3"))) static uint32_t crc24_pclmul(uint32_t crc, const uint8_t *p,
                                                                            size_t n)
{
    const __m128i rev = _mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m128i k1 = _mm_set_epi64x((long long)k_fold1_hi, (long long)k_fold1_lo);
    const __m128i k4 = _mm_set_epi64x((long long)k_fold4_hi, (long long)k_fold4_lo);
    __m128i x0, x1, x2, x3;
    uint8_t buf[16];

#define LD(q) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(q)), rev)
    /* R * x^(8n) is R placed over the first three message bytes. */
    x0 = _mm_xor_si128(LD(p), _mm_set_epi64x((long long)((uint64_t)(crc & 0xFFFFFFu) << 40), 0));
    x1 = LD(p + 16);
    x2 = LD(p + 32);
    x3 = LD(p + 48);
    p += 64;
    n -= 64;
    while (n >= 64) {
        x0 = fold(x0, k4, LD(p));
        x1 = fold(x1, k4, LD(p + 16));
        x2 = fold(x2, k4, LD(p + 32));
        x3 = fold(x3, k4, LD(p + 48));
        p += 64;
        n -= 64;
    }
    x0 = fold(x0, k1, x1);
    x0 = fold(x0, k1, x2);
    x0 = fold(x0, k1, x3);
    while (n >= 16) {
        x0 = fold(x0, k1, LD(p));
        p += 16;
        n -= 16;
    }
#undef LD
    _mm_storeu_si128((__m128i *)buf, _mm_shuffle_epi8(x0, rev));
    return pgpb_crc24_scalar(pgpb_crc24_scalar(0, buf, 16), p, n);
}
#endif

uint32_t pgpb_crc24(uint32_t crc, const uint8_t *p, size_t n)
{
#ifdef PGPB_X86
    if (use_pclmul && n >= 64)
        return crc24_pclmul(crc, p, n);
#endif
    return pgpb_crc24_scalar(crc, p, n);
}

int pgpb_crc24_use_pclmul(int enable)
{
#ifdef PGPB_X86
    use_pclmul = enable && pgpb_cpu_has_pclmul();
    return use_pclmul;
#else
    (void)enable;
    return 0;
#endif
}

int pgpb_crc24_pclmul_active(void)
{
#ifdef PGPB_X86
    return use_pclmul;
#else
    return 0;
#endif
}
