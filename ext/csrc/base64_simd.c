/* Base64 for OpenPGP armor with run-time dispatch: AVX2 (24 bytes <-> 32 chars), SSSE3 (12 <-> 16),
 * scalar (tables). The SIMD bit-twiddling follows the multiply-shift encoding and nibble-table
 * validation published by W. Mula and D. Lemire ("Faster Base64 Encoding and Decoding Using AVX2
 * Instructions", 2018); the code here is our own.
 *
 * Decoding is one state machine over the input; a SIMD block is tried only at a group boundary and
 * only when all its characters are in the alphabet, so whitespace, padding and errors always go through
 * the scalar step and the reported offsets never depend on the path taken.
 */
#include "base64_simd.h"
#include "cpu.h"
#include "crc24.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define PGPB_X86 1
#include <immintrin.h>
#endif

#define INLINE static inline __attribute__((always_inline))
#define CRC_BLOCK 24576 /* bytes of input per fused CRC step: stays in L1/L2 between the two passes */

static const char ALPHA[65] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static uint16_t ENC2[4096]; /* 12 bits -> two characters, in memory order */
static uint8_t DEC[256];    /* 0..63 value, D_PAD, D_WS or D_BAD */
#define D_PAD 0x40
#define D_WS 0x80
#define D_BAD 0xFF

static int level_max = PGPB_B64_SCALAR, level = PGPB_B64_SCALAR;

void pgpb_b64_init(void)
{
    memset(DEC, D_BAD, sizeof DEC);
    for (int i = 0; i < 64; i++)
        DEC[(uint8_t)ALPHA[i]] = (uint8_t)i;
    DEC['='] = D_PAD;
    DEC[' '] = DEC['\t'] = DEC['\r'] = DEC['\n'] = D_WS;
    for (int i = 0; i < 4096; i++) {
        uint8_t two[2] = {(uint8_t)ALPHA[i >> 6], (uint8_t)ALPHA[i & 63]};
        memcpy(&ENC2[i], two, 2);
    }
    level_max = pgpb_cpu_has_avx2() ? PGPB_B64_AVX2 : pgpb_cpu_has_ssse3() ? PGPB_B64_SSSE3 : PGPB_B64_SCALAR;
    level = level_max;
}

int pgpb_b64_set_level(int want)
{
    level = want < 0 ? PGPB_B64_SCALAR : want > level_max ? level_max : want;
    return level;
}

int pgpb_b64_level(void) { return level; }

size_t pgpb_b64_lines_len(size_t n, size_t width)
{
    size_t chars = (n + 2) / 3 * 4;
    return chars + (chars + width - 1) / width;
}

size_t pgpb_b64_decode_bound(size_t n) { return n / 4 * 3 + 32; }

/* ---------------------------------------------------------------- scalar */

/* Encode len bytes (whole groups, then padding for the remainder). */
INLINE uint8_t *enc_scalar(const uint8_t *s, size_t len, uint8_t *d)
{
    while (len >= 3) {
        uint32_t v = (uint32_t)s[0] << 16 | (uint32_t)s[1] << 8 | s[2];
        memcpy(d, &ENC2[v >> 12], 2);
        memcpy(d + 2, &ENC2[v & 0xFFF], 2);
        s += 3;
        d += 4;
        len -= 3;
    }
    if (len) {
        uint32_t v = (uint32_t)s[0] << 16 | (len == 2 ? (uint32_t)s[1] << 8 : 0);
        d[0] = (uint8_t)ALPHA[v >> 18];
        d[1] = (uint8_t)ALPHA[(v >> 12) & 63];
        d[2] = len == 2 ? (uint8_t)ALPHA[(v >> 6) & 63] : '=';
        d[3] = '=';
        d += 4;
    }
    return d;
}

size_t pgpb_b64_encode_plain(const uint8_t *src, size_t n, uint8_t *dst)
{
    return (size_t)(enc_scalar(src, n, dst) - dst);
}

static uint8_t *enc_lines_scalar(const uint8_t *s, size_t n, uint8_t *d, size_t width)
{
    size_t L = width / 4 * 3;
    while (n >= L) {
        d = enc_scalar(s, L, d);
        *d++ = '\n';
        s += L;
        n -= L;
    }
    if (n) {
        d = enc_scalar(s, n, d);
        *d++ = '\n';
    }
    return d;
}

typedef struct {
    uint32_t acc;       /* sextets of the group so far */
    int q;              /* characters in the group so far */
    int pad;            /* 0 none, 1 one more '=' expected, 2 padding complete */
    size_t group_start; /* offset of the group's first character */
} dstate;

/* One character of the decoder state machine. */
INLINE int dec_step(const uint8_t *src, size_t i, uint8_t *dst, size_t *o, dstate *st, size_t *err_off)
{
    uint8_t v = DEC[src[i]];
    if (v < 64) {
        if (st->pad) {
            *err_off = i;
            return PGPB_B64_ERR_AFTER;
        }
        if (st->q == 0)
            st->group_start = i;
        st->acc = st->acc << 6 | v;
        if (++st->q == 4) {
            dst[*o] = (uint8_t)(st->acc >> 16);
            dst[*o + 1] = (uint8_t)(st->acc >> 8);
            dst[*o + 2] = (uint8_t)st->acc;
            *o += 3;
            st->q = 0;
            st->acc = 0;
        }
        return 0;
    }
    if (v == D_WS)
        return 0;
    if (v == D_PAD) {
        if (st->pad == 1) { /* "xx==" complete */
            dst[(*o)++] = (uint8_t)(st->acc >> 4);
            st->pad = 2;
            st->q = 0;
            return 0;
        }
        if (st->pad == 2 || st->q < 2) {
            *err_off = i;
            return PGPB_B64_ERR_PAD;
        }
        if (st->q == 2) {
            st->pad = 1;
        } else { /* "xxx=" */
            dst[*o] = (uint8_t)(st->acc >> 10);
            dst[*o + 1] = (uint8_t)(st->acc >> 2);
            *o += 2;
            st->pad = 2;
            st->q = 0;
        }
        return 0;
    }
    *err_off = i;
    return PGPB_B64_ERR_CHAR;
}

/* Four alphabet characters at once when the group starts here; returns 0 if any is not in it. */
INLINE int dec_quad(const uint8_t *s, uint8_t *d)
{
    uint32_t a = DEC[s[0]], b = DEC[s[1]], c = DEC[s[2]], e = DEC[s[3]];
    if ((a | b | c | e) & 0xC0)
        return 0;
    uint32_t v = a << 18 | b << 12 | c << 6 | e;
    d[0] = (uint8_t)(v >> 16);
    d[1] = (uint8_t)(v >> 8);
    d[2] = (uint8_t)v;
    return 1;
}

static int dec_range_scalar(const uint8_t *src, size_t *pi, size_t end, size_t n, uint8_t *dst, size_t *po,
                            dstate *st, size_t *err_off)
{
    size_t i = *pi, o = *po;
    int rc = 0;
    dstate ls = *st; /* a local copy: stores through dst cannot alias it */
    (void)n;
    while (i < end) {
        if (ls.q == 0 && !ls.pad && i + 4 <= end && dec_quad(src + i, dst + o)) {
            i += 4;
            o += 3;
            continue;
        }
        if ((rc = dec_step(src, i, dst, &o, &ls, err_off)) != 0)
            break;
        i++;
    }
    *st = ls;
    *pi = i;
    *po = o;
    return rc;
}

#ifdef PGPB_X86
/* ---------------------------------------------------------------- SSSE3 */
#define T_SSSE3 __attribute__((target("ssse3"), always_inline)) static inline

/* 16 sextet indices (4 per 32-bit lane, in output order) from 12 input bytes in lanes. */
T_SSSE3 __m128i enc_split_128(__m128i in)
{
    in = _mm_shuffle_epi8(in, _mm_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10));
    __m128i t0 = _mm_mulhi_epu16(_mm_and_si128(in, _mm_set1_epi32(0x0FC0FC00)), _mm_set1_epi32(0x04000040));
    __m128i t1 = _mm_mullo_epi16(_mm_and_si128(in, _mm_set1_epi32(0x003F03F0)), _mm_set1_epi32(0x01000010));
    return _mm_or_si128(t0, t1);
}

/* Sextet -> ASCII: pick an offset by range (A-Z, a-z, 0-9, '+', '/') with one table lookup. */
T_SSSE3 __m128i enc_ascii_128(__m128i idx)
{
    const __m128i lut = _mm_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                                      '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
    __m128i r = _mm_subs_epu8(idx, _mm_set1_epi8(51));
    r = _mm_or_si128(r, _mm_and_si128(_mm_cmpgt_epi8(_mm_set1_epi8(26), idx), _mm_set1_epi8(13)));
    return _mm_add_epi8(idx, _mm_shuffle_epi8(lut, r));
}

/* Validate 16 characters; returns a bitmask of the positions not in the alphabet. On 0, *out holds the
 * 16 sextet values. */
T_SSSE3 unsigned dec_check_128(__m128i in, __m128i *out)
{
    const __m128i lut_lo = _mm_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13,
                                         0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
    const __m128i lut_hi = _mm_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10,
                                         0x10, 0x10, 0x10, 0x10, 0x10);
    const __m128i lut_roll = _mm_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128i nib = _mm_set1_epi8(0x0F);
    __m128i hi = _mm_and_si128(_mm_srli_epi32(in, 4), nib);
    __m128i lo = _mm_and_si128(in, nib);
    __m128i bad = _mm_and_si128(_mm_shuffle_epi8(lut_lo, lo), _mm_shuffle_epi8(lut_hi, hi));
    unsigned mask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(bad, _mm_setzero_si128())) ^ 0xFFFFu;
    __m128i roll = _mm_shuffle_epi8(lut_roll, _mm_add_epi8(_mm_cmpeq_epi8(in, _mm_set1_epi8('/')), hi));
    *out = _mm_add_epi8(in, roll);
    return mask;
}

/* 16 sextets -> 12 bytes in the low part of the register. */
T_SSSE3 __m128i dec_pack_128(__m128i v)
{
    v = _mm_maddubs_epi16(v, _mm_set1_epi32(0x01400140));
    v = _mm_madd_epi16(v, _mm_set1_epi32(0x00011000));
    return _mm_shuffle_epi8(v, _mm_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1));
}

__attribute__((target("ssse3"))) static uint8_t *enc_lines_ssse3(const uint8_t *s, size_t n, uint8_t *d,
                                                                 size_t width, const uint8_t *s_end)
{
    size_t L = width / 4 * 3;
    while (n >= L && s + L + 4 <= s_end) {
        size_t k = 0;
        for (; k + 12 <= L; k += 12)
            _mm_storeu_si128((__m128i *)(d + k / 3 * 4),
                             enc_ascii_128(enc_split_128(_mm_loadu_si128((const __m128i *)(s + k)))));
        d = enc_scalar(s + k, L - k, d + k / 3 * 4);
        *d++ = '\n';
        s += L;
        n -= L;
    }
    return enc_lines_scalar(s, n, d, width);
}

__attribute__((target("ssse3"))) static int dec_range_ssse3(const uint8_t *src, size_t *pi, size_t end, size_t n,
                                                            uint8_t *dst, size_t *po, dstate *st,
                                                            size_t *err_off)
{
    size_t i = *pi, o = *po, retry = 0;
    int rc = 0;
    dstate ls = *st; /* a local copy: stores through dst cannot alias it */
    while (i < end) {
        if (ls.q == 0 && !ls.pad && i >= retry && i + 16 <= n) {
            __m128i v;
            unsigned bad = dec_check_128(_mm_loadu_si128((const __m128i *)(src + i)), &v);
            if (!bad) {
                _mm_storeu_si128((__m128i *)(dst + o), dec_pack_128(v));
                i += 16;
                o += 12;
                while (i < end && (src[i] == '\n' || src[i] == '\r'))
                    i++; /* the usual line end: skip it without a failed block */
                continue;
            }
            retry = i + (size_t)__builtin_ctz(bad) + 1;
        }
        if (ls.q == 0 && !ls.pad && i + 4 <= end && dec_quad(src + i, dst + o)) {
            i += 4;
            o += 3;
            continue;
        }
        if ((rc = dec_step(src, i, dst, &o, &ls, err_off)) != 0)
            break;
        i++;
    }
    *st = ls;
    *pi = i;
    *po = o;
    return rc;
}

/* ---------------------------------------------------------------- AVX2 */
#define T_AVX2 __attribute__((target("avx2"), always_inline)) static inline

/* 24 bytes at s -> 32 characters; reads s[0..28). */
T_AVX2 __m256i enc_block_256(const uint8_t *s)
{
    __m256i in = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)s)),
                                         _mm_loadu_si128((const __m128i *)(s + 12)), 1);
    const __m256i shuf = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, 1, 0, 2, 1, 4, 3,
                                          5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
    const __m256i lut = _mm256_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                                         '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0,
                                         'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                                         '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
    in = _mm256_shuffle_epi8(in, shuf);
    __m256i t0 =
        _mm256_mulhi_epu16(_mm256_and_si256(in, _mm256_set1_epi32(0x0FC0FC00)), _mm256_set1_epi32(0x04000040));
    __m256i t1 =
        _mm256_mullo_epi16(_mm256_and_si256(in, _mm256_set1_epi32(0x003F03F0)), _mm256_set1_epi32(0x01000010));
    __m256i idx = _mm256_or_si256(t0, t1);
    __m256i r = _mm256_subs_epu8(idx, _mm256_set1_epi8(51));
    r = _mm256_or_si256(r, _mm256_and_si256(_mm256_cmpgt_epi8(_mm256_set1_epi8(26), idx), _mm256_set1_epi8(13)));
    return _mm256_add_epi8(idx, _mm256_shuffle_epi8(lut, r));
}

__attribute__((target("avx2"))) static uint8_t *enc_lines_avx2(const uint8_t *s, size_t n, uint8_t *d,
                                                               size_t width, const uint8_t *s_end)
{
    size_t L = width / 4 * 3;
    if (width == 64) { /* the armor width: a line is exactly two blocks */
        while (n >= 48 && s + 52 <= s_end) {
            _mm256_storeu_si256((__m256i *)d, enc_block_256(s));
            _mm256_storeu_si256((__m256i *)(d + 32), enc_block_256(s + 24));
            d[64] = '\n';
            d += 65;
            s += 48;
            n -= 48;
        }
    } else {
        while (n >= L && s + L + 4 <= s_end) {
            size_t k = 0;
            for (; k + 24 <= L; k += 24)
                _mm256_storeu_si256((__m256i *)(d + k / 3 * 4), enc_block_256(s + k));
            d = enc_scalar(s + k, L - k, d + k / 3 * 4);
            *d++ = '\n';
            s += L;
            n -= L;
        }
    }
    return enc_lines_scalar(s, n, d, width);
}

T_AVX2 unsigned dec_check_256(__m256i in, __m256i *out)
{
    const __m256i lut_lo = _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13,
                                            0x1A, 0x1B, 0x1B, 0x1B, 0x1A, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11,
                                            0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
    const __m256i lut_hi = _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10,
                                            0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08,
                                            0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
    const __m256i lut_roll = _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16,
                                              19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi32(in, 4), nib);
    __m256i lo = _mm256_and_si256(in, nib);
    __m256i bad = _mm256_and_si256(_mm256_shuffle_epi8(lut_lo, lo), _mm256_shuffle_epi8(lut_hi, hi));
    unsigned mask = ~(unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(bad, _mm256_setzero_si256()));
    __m256i roll =
        _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(_mm256_cmpeq_epi8(in, _mm256_set1_epi8('/')), hi));
    *out = _mm256_add_epi8(in, roll);
    return mask;
}

/* 32 sextets -> 24 bytes in the low part of the register. */
T_AVX2 __m256i dec_pack_256(__m256i v)
{
    const __m256i shuf = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5,
                                          4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
    v = _mm256_maddubs_epi16(v, _mm256_set1_epi32(0x01400140));
    v = _mm256_madd_epi16(v, _mm256_set1_epi32(0x00011000));
    v = _mm256_shuffle_epi8(v, shuf);
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7));
}

__attribute__((target("avx2"))) static int dec_range_avx2(const uint8_t *src, size_t *pi, size_t end, size_t n,
                                                          uint8_t *dst, size_t *po, dstate *st, size_t *err_off)
{
    size_t i = *pi, o = *po, retry = 0;
    int rc = 0;
    dstate ls = *st; /* a local copy: stores through dst cannot alias it */
    while (i < end) {
        if (ls.q == 0 && !ls.pad && i >= retry && i + 32 <= n) {
            __m256i v;
            unsigned bad = dec_check_256(_mm256_loadu_si256((const __m256i *)(src + i)), &v);
            if (!bad) {
                _mm256_storeu_si256((__m256i *)(dst + o), dec_pack_256(v));
                i += 32;
                o += 24;
                while (i < end && (src[i] == '\n' || src[i] == '\r'))
                    i++; /* the usual line end: skip it without a failed block */
                continue;
            }
            retry = i + (size_t)__builtin_ctz(bad) + 1;
        }
        if (ls.q == 0 && !ls.pad && i + 4 <= end && dec_quad(src + i, dst + o)) {
            i += 4;
            o += 3;
            continue;
        }
        if ((rc = dec_step(src, i, dst, &o, &ls, err_off)) != 0)
            break;
        i++;
    }
    *st = ls;
    *pi = i;
    *po = o;
    return rc;
}
#endif

/* ---------------------------------------------------------------- dispatch */

static uint8_t *enc_lines(const uint8_t *s, size_t n, uint8_t *d, size_t width, const uint8_t *s_end)
{
#ifdef PGPB_X86
    if (level == PGPB_B64_AVX2)
        return enc_lines_avx2(s, n, d, width, s_end);
    if (level == PGPB_B64_SSSE3)
        return enc_lines_ssse3(s, n, d, width, s_end);
#endif
    (void)s_end;
    return enc_lines_scalar(s, n, d, width);
}

size_t pgpb_b64_encode_lines(const uint8_t *src, size_t n, uint8_t *dst, size_t width, uint32_t *crc)
{
    const uint8_t *end = src + n;
    uint8_t *d = dst;
    if (!crc)
        return (size_t)(enc_lines(src, n, dst, width, end) - dst);
    /* Fused: CRC a block, then encode it while it is still in cache. Blocks are whole lines. */
    size_t L = width / 4 * 3, blk = CRC_BLOCK / L * L;
    if (blk == 0)
        blk = L;
    uint32_t c = *crc;
    while (n) {
        size_t k = n < blk ? n : blk;
        c = pgpb_crc24(c, src, k);
        d = enc_lines(src, k, d, width, end);
        src += k;
        n -= k;
    }
    *crc = c;
    return (size_t)(d - dst);
}

int pgpb_b64_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t *out_len, size_t *consumed, int final,
                    size_t *err_off, uint32_t *crc)
{
    dstate st = {0, 0, 0, 0};
    size_t i = 0, o = 0, step = crc ? (size_t)CRC_BLOCK * 4 / 3 : n;
    int rc = 0;
    while (i < n && rc == 0) {
        size_t end = n - i > step ? i + step : n, o0 = o;
#ifdef PGPB_X86
        if (level == PGPB_B64_AVX2)
            rc = dec_range_avx2(src, &i, end, n, dst, &o, &st, err_off);
        else if (level == PGPB_B64_SSSE3)
            rc = dec_range_ssse3(src, &i, end, n, dst, &o, &st, err_off);
        else
#endif
            rc = dec_range_scalar(src, &i, end, n, dst, &o, &st, err_off);
        if (crc)
            *crc = pgpb_crc24(*crc, dst + o0, o - o0);
    }
    *out_len = o;
    if (rc)
        return rc;
    if (st.q != 0 || st.pad == 1) { /* inside a group, or "xx=" still waiting for its second '=' */
        if (final) {
            *err_off = n;
            return PGPB_B64_ERR_PARTIAL;
        }
        *consumed = st.group_start;
    } else {
        *consumed = n;
    }
    return 0;
}
