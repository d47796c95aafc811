/* ed25519.c - Ed25519 verification with a shared multi-scalar multiplication (see ed25519.h).
 *
 * Points are in extended twisted Edwards coordinates (a = -1): x = X/Z, y = Y/Z, T = XY/Z. ed_verify_one is
 * one Straus (interleaved) multiplication over the base point B (a table of odd multiples in affine form,
 * built once), -A and -R (tables of odd multiples built per call), each scalar in width-w NAF, on
 * fe25519.h's five 51-bit limbs. ed_verify_many does the same over the checks of many keys (a WKD task's:
 * each key's -A weighted by the sum of its checks' z_i h_i), its additions sorted by bit beforehand, on
 * fe25519_vt.h's four 64-bit limbs (mulx/adcx/adox where the CPU has them), the points decoded two at a
 * time (the square roots' latency-bound chains overlap), the next table entries prefetched (a task's
 * tables outgrow the caches); the points' tables and weights are made once, so the bisection after a
 * failed equation only re-sorts the additions of the keys it takes. Sums of scalar products are kept in
 * 768-bit accumulators, each reduced mod L once with OpenSSL's BIGNUM.
 */
#include "ed25519.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/bn.h>
#include <openssl/evp.h>

#include "fe25519.h"
#include "fe25519_vt.h"

static fe D2;       /* 2d */
static fe SQRT_M1;  /* sqrt(-1) */
static fe D;

/* p + q or, with NEG, p - q (add-2008-hwcd-3 with a = -1); Z2 is 2Z of q, or NULL for 2 (affine q). */
static void ge_add_any(ge_p1p1 *r, const ge_p3 *p, const fe *ypx, const fe *ymx, const fe *z2, const fe *t2d,
                       int neg) {
    fe a, b, c, d, t;
    fe_sub(&t, &p->Y, &p->X);
    fe_mul(&a, &t, neg ? ypx : ymx);
    fe_add(&t, &p->Y, &p->X);
    fe_mul(&b, &t, neg ? ymx : ypx);
    fe_mul(&c, &p->T, t2d);
    if (z2)
        fe_mul(&d, &p->Z, z2);
    else
        fe_add(&d, &p->Z, &p->Z);
    fe_sub(&r->X, &b, &a);  /* E */
    fe_add(&r->Y, &b, &a);  /* H */
    if (neg) {
        fe_sub(&r->Z, &d, &c);  /* G */
        fe_add(&r->T, &d, &c);  /* F */
    } else {
        fe_add(&r->Z, &d, &c);
        fe_sub(&r->T, &d, &c);
    }
}

static void p3_to_p2(ge_p2 *r, const ge_p3 *p) {
    r->X = p->X, r->Y = p->Y, r->Z = p->Z;
}

/* Is S refused before decoding: y of small order (the sign bit ignored) or y >= p? */
static int encoding_refused(const uint8_t s[32]) {
    static const uint8_t small_order[7][32] = {
        {0},
        {1},
        {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
         0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
        {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
         0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
        {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
        {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
        {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    };
    uint8_t y_bytes[32];
    memcpy(y_bytes, s, 32);
    y_bytes[31] &= 0x7f;
    for (int j = 0; j < 7; j++)
        if (memcmp(y_bytes, small_order[j], 32) == 0) return 1;
    int high = (y_bytes[31] == 0x7f);  /* y >= p: 2^255 - 19 .. 2^255 - 1 */
    for (int i = 30; high && i > 0; i--) high = (y_bytes[i] == 0xff);
    return high && y_bytes[0] >= 0xed;
}

/* The (negated, with NEGATE) point encoded by S (RFC 8032 section 5.1.3); 0 when S is not canonical,
 * of small order (libsodium's has_small_order: the sign bit ignored) or not on the curve. */
static int ge_decompress(ge_p3 *r, const uint8_t s[32], int negate) {
    if (encoding_refused(s)) return 0;
    fe u, v, one = {{1, 0, 0, 0, 0}};
    fe_frombytes(&r->Y, s);
    fe_sq(&u, &r->Y);
    fe_mul(&v, &u, &D);
    fe_sub(&u, &u, &one);  /* u = y^2 - 1 */
    fe_add(&v, &v, &one);  /* v = d y^2 + 1 */
    if (!fe_sqrt_ratio(&r->X, &u, &v, &SQRT_M1)) return 0;
    int sign = s[31] >> 7;
    if (sign && fe_iszero(&r->X)) return 0;
    if (fe_isodd(&r->X) != (sign ^ negate)) fe_neg(&r->X, &r->X);
    r->Z = one;
    fe_mul(&r->T, &r->X, &r->Y);
    return 1;
}

/* ---- the same points on four 64-bit limbs (fe25519_vt.h): the many-key equation's fast path ------- */

static fe64 D64, D2_64, SQRT_M1_64;

typedef struct {
    fe64 X, Y, Z;
} g64_p2;

typedef struct {
    fe64 X, Y, Z, T;
} g64_p3;

typedef struct {
    fe64 X, Y, Z, T;
} g64_p1p1;

typedef struct {
    fe64 ypx, ymx, z2, t2d;
} g64_cached;

typedef struct {
    fe64 ypx, ymx, t2d;
} g64_affine;

/* fe (five 51-bit limbs) to fe64, through the canonical encoding. */
static void fe_to_fe64(fe64 *h, const fe *f) {
    uint8_t s[32];
    fe_tobytes(s, f);
    fe64_frombytes(h, s);
}

static const fe64 ONE64 = {{1, 0, 0, 0}};

/* The first steps of decoding S: Y, and u = y^2 - 1, v = d y^2 + 1 (x^2 = u / v). */
static void g64_decompress_start(g64_p3 *r, fe64 *u, fe64 *v, const uint8_t s[32]) {
    fe64_frombytes(&r->Y, s);
    fe64_sq(u, &r->Y);
    fe64_mul(v, u, &D64);
    fe64_sub(u, u, &ONE64);
    fe64_add(v, v, &ONE64);
}

/* The last: x (a root of u / v) given the sign of S (with NEGATE, the other), Z and T; 0 when refused. */
static int g64_decompress_finish(g64_p3 *r, const fe64 *x, const uint8_t s[32], int negate) {
    int sign = s[31] >> 7;
    r->X = *x;
    if (sign && fe64_iszero(&r->X)) return 0;
    if (fe64_isodd(&r->X) != (sign ^ negate)) fe64_neg(&r->X, &r->X);
    r->Z = ONE64;
    fe64_mul(&r->T, &r->X, &r->Y);
    return 1;
}

/* As ge_decompress, FE64_LANES encodings at once (their square roots overlap); OK[j] 1 when S[j] was taken. */
static void g64_decompress_lanes(g64_p3 r[FE64_LANES], int ok[FE64_LANES], const uint8_t *const s[FE64_LANES],
                                 int negate) {
    fe64 u[FE64_LANES], v[FE64_LANES], x[FE64_LANES];
    for (int j = 0; j < FE64_LANES; j++) g64_decompress_start(&r[j], &u[j], &v[j], s[j]);
    fe64_sqrt_ratio_lanes(ok, x, u, v, &SQRT_M1_64);
    for (int j = 0; j < FE64_LANES; j++)
        ok[j] = ok[j] && !encoding_refused(s[j]) && g64_decompress_finish(&r[j], &x[j], s[j], negate);
}

/* As ge_decompress (the lanes all on S: for the odd one out). */
static int g64_decompress(g64_p3 *r, const uint8_t s[32], int negate) {
    const uint8_t *same[FE64_LANES];
    g64_p3 points[FE64_LANES];
    int ok[FE64_LANES];
    for (int j = 0; j < FE64_LANES; j++) same[j] = s;
    g64_decompress_lanes(points, ok, same, negate);
    *r = points[0];
    return ok[0];
}

/* As ge_add_any. */
static inline void g64_add_any(g64_p1p1 *r, const g64_p3 *p, const fe64 *ypx, const fe64 *ymx, const fe64 *z2,
                               const fe64 *t2d, int neg) {
    fe64 a, b, c, d, t;
    fe64_sub(&t, &p->Y, &p->X);
    fe64_mul(&a, &t, neg ? ypx : ymx);
    fe64_add(&t, &p->Y, &p->X);
    fe64_mul(&b, &t, neg ? ymx : ypx);
    fe64_mul(&c, &p->T, t2d);
    if (z2)
        fe64_mul(&d, &p->Z, z2);
    else
        fe64_add(&d, &p->Z, &p->Z);
    fe64_sub(&r->X, &b, &a);  /* E */
    fe64_add(&r->Y, &b, &a);  /* H */
    if (neg) {
        fe64_sub(&r->Z, &d, &c);  /* G */
        fe64_add(&r->T, &d, &c);  /* F */
    } else {
        fe64_add(&r->Z, &d, &c);
        fe64_sub(&r->T, &d, &c);
    }
}

static inline void g64_p1p1_to_p2(g64_p2 *r, const g64_p1p1 *p) {
    fe64_mul(&r->X, &p->X, &p->T);
    fe64_mul(&r->Y, &p->Y, &p->Z);
    fe64_mul(&r->Z, &p->Z, &p->T);
}

static inline void g64_p1p1_to_p3(g64_p3 *r, const g64_p1p1 *p) {
    fe64_mul(&r->X, &p->X, &p->T);
    fe64_mul(&r->Y, &p->Y, &p->Z);
    fe64_mul(&r->Z, &p->Z, &p->T);
    fe64_mul(&r->T, &p->X, &p->Y);
}

/* As ge_dbl. */
static inline void g64_dbl(g64_p1p1 *r, const g64_p2 *p) {
    fe64 a, b, c, t;
    fe64_sq(&a, &p->X);
    fe64_sq(&b, &p->Y);
    fe64_sq(&t, &p->Z);
    fe64_add(&c, &t, &t);
    fe64_add(&r->Y, &a, &b);
    fe64_sub(&r->Z, &a, &b);
    fe64_add(&t, &p->X, &p->Y);
    fe64_sq(&t, &t);
    fe64_sub(&r->X, &r->Y, &t);
    fe64_add(&r->T, &r->Z, &c);
}

static void g64_p3_to_cached(g64_cached *r, const g64_p3 *p) {
    fe64_add(&r->ypx, &p->Y, &p->X);
    fe64_sub(&r->ymx, &p->Y, &p->X);
    fe64_add(&r->z2, &p->Z, &p->Z);
    fe64_mul(&r->t2d, &p->T, &D2_64);
}

/* As odd_multiples. */
static void g64_odd_multiples(g64_cached *table, const g64_p3 *p, int count) {
    g64_p1p1 t;
    g64_p2 p2 = {p->X, p->Y, p->Z};
    g64_p3 twice, cur = *p;
    g64_cached twice_c;
    g64_p3_to_cached(&table[0], p);
    g64_dbl(&t, &p2);
    g64_p1p1_to_p3(&twice, &t);
    g64_p3_to_cached(&twice_c, &twice);
    for (int i = 1; i < count; i++) {
        g64_add_any(&t, &cur, &twice_c.ypx, &twice_c.ymx, &twice_c.z2, &twice_c.t2d, 0);
        g64_p1p1_to_p3(&cur, &t);
        g64_p3_to_cached(&table[i], &cur);
    }
}

/* As times8_is_identity. */
static int g64_times8_is_identity(g64_p2 *p) {
    g64_p1p1 t;
    fe64 diff;
    for (int i = 0; i < 3; i++) {
        g64_dbl(&t, p);
        g64_p1p1_to_p2(p, &t);
    }
    fe64_sub(&diff, &p->Y, &p->Z);
    return fe64_iszero(&p->X) && fe64_iszero(&diff);
}

/* ---- scalars ----------------------------------------------------------------------------------- */

#define NAF_LEN 272  /* 256 bits, a final carry and a window past them */
#define W_VAR 5      /* window of the per-call points: tables of 8 odd multiples */
#define W_BASE 8     /* window of the base point: 64 odd multiples, built once */

static const uint8_t ORDER_L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                    0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                    0, 0, 0, 0x10};

/* S < L, comparing the little-endian encodings from the top. */
static int scalar_is_canonical(const uint8_t s[32]) {
    for (int i = 31; i >= 0; i--) {
        if (s[i] != ORDER_L[i]) return s[i] < ORDER_L[i];
    }
    return 0;
}

/* The width-W NAF of the 32-octet little-endian SCALAR into NAF (NAF_LEN digits, odd or 0, |d| < 2^(W-1));
 * the index of the top non-zero digit, -1 for 0. */
static int wnaf(int8_t naf[NAF_LEN], const uint8_t scalar[32], int w) {
    uint64_t s[6] = {load64_le(scalar), load64_le(scalar + 8), load64_le(scalar + 16), load64_le(scalar + 24), 0, 0};
    int bit = 0, carry = 0, top = -1;
    memset(naf, 0, NAF_LEN);
    while (bit < NAF_LEN - 8) {
        int off = bit & 63;
        uint64_t bits = s[bit >> 6] >> off;
        if (off) bits |= s[(bit >> 6) + 1] << (64 - off);
        uint64_t differ = carry ? ~bits : bits;  /* a digit starts at the first bit that differs from CARRY */
        if (!differ) {
            bit += 64;
            continue;
        }
        int skip = __builtin_ctzll(differ);
        if (skip) {
            bit += skip;
            continue;
        }
        int word = (int)(bits & ((1u << w) - 1)) + carry;
        carry = (word >> (w - 1)) & 1;
        word -= carry << w;
        naf[bit] = (int8_t)word;
        top = bit;
        bit += w;
    }
    return top;
}

/* ---- verification ------------------------------------------------------------------------------ */

static ge_affine BASE_TABLE[1 << (W_BASE - 2)];  /* B, 3B, 5B, ... */
static g64_affine BASE_TABLE64[1 << (W_BASE - 2)];  /* the same on four limbs */
static EVP_MD_CTX *MD_CTX;
static const EVP_MD *SHA512_MD;
static BN_CTX *BN_TMP;
static BIGNUM *BN_L, *BN_V;

/* A sum of products z v (z of 128 bits, v up to 512) before its one reduction mod L: 768 bits. */
#define ACC_LIMBS 12
typedef struct {
    uint64_t w[ACC_LIMBS];
} scalar_acc;

/* Per-call state of ed_verify_one (static: callers hold the GIL). Point 0 is -A, point 1 is -R. */
#define ONE_POINTS 2
static ge_cached VAR_TABLE[ONE_POINTS][1 << (W_VAR - 2)];
static int8_t VAR_NAF[ONE_POINTS][NAF_LEN];
static int8_t BASE_NAF[NAF_LEN];

/* Odd multiples P, 3P, ..., (2 COUNT - 1) P of P into TABLE. */
static void odd_multiples(ge_cached *table, const ge_p3 *p, int count) {
    ge_p1p1 t;
    ge_p2 p2;
    ge_p3 twice, cur = *p;
    ge_cached twice_c;
    ge_p3_to_cached(&table[0], p, &D2);
    if (count < 2) return;
    p3_to_p2(&p2, p);
    ge_dbl(&t, &p2);
    p1p1_to_p3(&twice, &t);
    ge_p3_to_cached(&twice_c, &twice, &D2);
    for (int i = 1; i < count; i++) {
        ge_add_any(&t, &cur, &twice_c.ypx, &twice_c.ymx, &twice_c.z2, &twice_c.t2d, 0);
        p1p1_to_p3(&cur, &t);
        ge_p3_to_cached(&table[i], &cur, &D2);
    }
}

int ed_fast_field(int want) {
#if defined(__x86_64__)
    fe64_use_adx(want && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("adx"));
#else
    (void)want;
#endif
    return FE64_ADX;
}

int ed_init(void) {
    uint8_t base_bytes[32];
    if (MD_CTX) return 1;
    fe_frombytes(&D, FE_D_BYTES);
    fe_add(&D2, &D, &D);
    fe_frombytes(&SQRT_M1, FE_SQRTM1_BYTES);
    memset(base_bytes, 0x66, 32);
    base_bytes[0] = 0x58;  /* y = 4/5, x even */
    ge_p3 base;
    if (!ge_decompress(&base, base_bytes, 0)) return 0;
    static ge_cached multiples[1 << (W_BASE - 2)];
    odd_multiples(multiples, &base, 1 << (W_BASE - 2));
    for (int i = 0; i < (1 << (W_BASE - 2)); i++) {  /* to affine: y + x = (Y + X) / Z, ... */
        fe zinv;
        fe_invert(&zinv, &multiples[i].z2);  /* 1 / 2Z */
        fe_add(&zinv, &zinv, &zinv);         /* 1 / Z */
        fe_mul(&BASE_TABLE[i].ypx, &multiples[i].ypx, &zinv);
        fe_mul(&BASE_TABLE[i].ymx, &multiples[i].ymx, &zinv);
        fe_mul(&BASE_TABLE[i].t2d, &multiples[i].t2d, &zinv);
        fe_to_fe64(&BASE_TABLE64[i].ypx, &BASE_TABLE[i].ypx);
        fe_to_fe64(&BASE_TABLE64[i].ymx, &BASE_TABLE[i].ymx);
        fe_to_fe64(&BASE_TABLE64[i].t2d, &BASE_TABLE[i].t2d);
    }
    fe_to_fe64(&D64, &D);
    fe_to_fe64(&D2_64, &D2);
    fe_to_fe64(&SQRT_M1_64, &SQRT_M1);
    ed_fast_field(1);
    SHA512_MD = EVP_sha512();
    BN_TMP = BN_CTX_new();
    BN_L = BN_lebin2bn(ORDER_L, 32, NULL);
    BN_V = BN_new();
    MD_CTX = EVP_MD_CTX_new();
    return SHA512_MD && BN_TMP && BN_L && BN_V && MD_CTX;
}

/* h = SHA-512(R || A || M), 64 octets little-endian; 1 on success. */
static int challenge(uint8_t h[64], const uint8_t *key, const uint8_t *check, size_t len) {
    unsigned int out = 0;
    return EVP_DigestInit_ex(MD_CTX, SHA512_MD, NULL) && EVP_DigestUpdate(MD_CTX, check, 32) &&
           EVP_DigestUpdate(MD_CTX, key, 32) && EVP_DigestUpdate(MD_CTX, check + 64, len - 64) &&
           EVP_DigestFinal_ex(MD_CTX, h, &out) && out == 64;
}

/* ACC += Z * V (little-endian octets, ZLEN and VLEN multiples of 8, the sum below 2^768). */
static void accumulate(scalar_acc *acc, const uint8_t *z, size_t zlen, const uint8_t *v, size_t vlen) {
    for (size_t i = 0; i < zlen / 8; i++) {
        uint64_t zi = load64_le(z + 8 * i);
        u128 carry = 0;
        size_t k = i;
        for (size_t j = 0; j < vlen / 8; j++, k++) {
            carry += (u128)zi * load64_le(v + 8 * j) + acc->w[k];
            acc->w[k] = (uint64_t)carry;
            carry >>= 64;
        }
        for (; carry && k < ACC_LIMBS; k++) {
            carry += acc->w[k];
            acc->w[k] = (uint64_t)carry;
            carry >>= 64;
        }
    }
}

/* ACC mod L as 32 octets (one BIGNUM division); 1 on success. */
static int reduce(uint8_t out[32], const scalar_acc *acc) {
    uint8_t wide[8 * ACC_LIMBS];
    for (int k = 0; k < ACC_LIMBS; k++) store64_le(wide + 8 * k, acc->w[k]);
    return BN_lebin2bn(wide, (int)sizeof wide, BN_V) && BN_nnmod(BN_V, BN_V, BN_L, BN_TMP) &&
           BN_bn2lebinpad(BN_V, out, 32) == 32;
}

/* Is [8] P the identity (X == 0 and Y == Z)? */
static int times8_is_identity(ge_p2 *p) {
    ge_p1p1 t;
    fe diff;
    for (int i = 0; i < 3; i++) {
        ge_dbl(&t, p);
        p1p1_to_p2(p, &t);
    }
    fe_sub(&diff, &p->Y, &p->Z);
    return fe_iszero(&p->X) && fe_iszero(&diff);
}

/* sum over the NPOINTS tables of [naf] point, plus [BASE_NAF] B, by one shared chain of doublings. */
static void straus(ge_p2 *r, int npoints, int top) {
    static const ge_p2 identity = {{{0}}, {{1}}, {{1}}};
    ge_p1p1 t;
    ge_p3 p;
    *r = identity;
    for (int i = top; i >= 0; i--) {
        ge_dbl(&t, r);
        int d = BASE_NAF[i];
        if (d) {
            const ge_affine *e = &BASE_TABLE[(d > 0 ? d : -d) >> 1];
            p1p1_to_p3(&p, &t);
            ge_add_any(&t, &p, &e->ypx, &e->ymx, NULL, &e->t2d, d < 0);
        }
        for (int j = 0; j < npoints; j++) {
            d = VAR_NAF[j][i];
            if (d) {
                const ge_cached *e = &VAR_TABLE[j][(d > 0 ? d : -d) >> 1];
                p1p1_to_p3(&p, &t);
                ge_add_any(&t, &p, &e->ypx, &e->ymx, &e->z2, &e->t2d, d < 0);
            }
        }
        p1p1_to_p2(r, &t);
    }
}

/* Prepare -P (decoded from ENC) with the weight SCALAR as point J; 0 when ENC is refused. */
static int add_point(int j, const uint8_t enc[32], const uint8_t scalar[32], int *top) {
    ge_p3 p;
    if (!ge_decompress(&p, enc, 1)) return 0;
    int t = wnaf(VAR_NAF[j], scalar, W_VAR);
    int biggest = 1;
    for (int i = 0; i <= t; i++) {
        int d = VAR_NAF[j][i] < 0 ? -VAR_NAF[j][i] : VAR_NAF[j][i];
        if (d > biggest) biggest = d;
    }
    odd_multiples(VAR_TABLE[j], &p, (biggest + 1) >> 1);
    if (t > *top) *top = t;
    return 1;
}

/* RFC 8032 section 5.1.7's cofactored equation [8]([S]B - R - [h]A) == identity, h = SHA-512(R || A || M)
 * mod L; 0 when S is not canonical or A or R is refused. */
int ed_verify_one(const uint8_t *key, const uint8_t *check, size_t len) {
    static const uint8_t one[32] = {1};
    uint8_t h[64], scalar[32];
    int top = -1;
    if (len < 64 || !scalar_is_canonical(check + 32)) return 0;
    if (!add_point(1, check, one, &top)) return 0;
    if (!challenge(h, key, check, len)) return 0;
    scalar_acc acc_h = {{0}};
    accumulate(&acc_h, one, 8, h, 64);  /* h, to be reduced mod L */
    if (!reduce(scalar, &acc_h) || !add_point(0, key, scalar, &top)) return 0;
    int t = wnaf(BASE_NAF, check + 32, W_BASE);  /* S, canonical: below L */
    if (t > top) top = t;
    ge_p2 r;
    straus(&r, ONE_POINTS, top);
    return times8_is_identity(&r);
}


/* ---- many keys: one equation over the checks of several keys --------------------------------- */

/* A point of a many-key equation: the table of odd multiples of -P and the non-zero digits of its weight. */
#define MANY_TABLE (1 << (W_VAR - 2))
#define MANY_DIGITS (NAF_LEN / W_VAR + 1)  /* a width-W NAF has a zero run of W - 1 after each digit */

typedef struct {
    g64_cached table[MANY_TABLE];
    int ndigits;
    uint16_t bits[MANY_DIGITS];
    int8_t digits[MANY_DIGITS];
} many_point;

/* A key's group: its checks that passed the pre-checks (ITEM_ORDER[first .. first + count)), -A with the
 * weight sum z_i h_i mod L, and sum z_i S_i mod L. */
typedef struct {
    size_t first, count;
    many_point a;
    uint8_t s_sum[32];
} many_group;

typedef struct {
    const g64_cached *entry;
    int negative;
} many_add;

#define PREFETCH_AHEAD 2  /* additions ahead */

/* What the last ed_verify_many call did (ed_many_counts). */
static size_t MANY_EQUATIONS, MANY_SINGLES;

/* Per-call buffers, grown on demand (static: callers hold the GIL). */
static struct {
    size_t cap;
    many_point *items;  /* by input index */
    many_group *groups;
    size_t *item_order;
    int32_t *key_of;    /* the key group of each input (-1: refused by the pre-checks) */
    int32_t *slots;     /* open addressing over the keys: group index + 1 */
    size_t *key_first;  /* an input holding each key */
    uint8_t (*z)[16];
    many_add *adds;     /* the additions of one equation, by bit */
    g64_p3 *decoded;    /* -A and -R_i, group by group (many_decode) */
    uint8_t *decoded_ok;
} M;

static int many_reserve(size_t n) {
    if (n <= M.cap) return 1;
    size_t cap = n < 64 ? 64 : n;
    free(M.items), free(M.groups), free(M.item_order), free(M.key_of), free(M.slots), free(M.key_first);
    free(M.z), free(M.adds), free(M.decoded), free(M.decoded_ok);
    M.items = malloc(cap * sizeof *M.items);
    M.groups = malloc(cap * sizeof *M.groups);
    M.item_order = malloc(cap * sizeof *M.item_order);
    M.key_of = malloc(cap * sizeof *M.key_of);
    M.slots = malloc(4 * cap * sizeof *M.slots);
    M.key_first = malloc(cap * sizeof *M.key_first);
    M.z = malloc(cap * sizeof *M.z);
    M.adds = malloc(2 * cap * MANY_DIGITS * sizeof *M.adds);
    M.decoded = malloc(2 * cap * sizeof *M.decoded);
    M.decoded_ok = malloc(2 * cap);
    M.cap = cap;
    if (M.items && M.groups && M.item_order && M.key_of && M.slots && M.key_first && M.z && M.adds &&
        M.decoded && M.decoded_ok)
        return 1;
    M.cap = 0;
    return 0;
}

/* The table of MINUS_P and the digits of its weight SCALAR into POINT. */
static void many_point_set(many_point *point, const g64_p3 *minus_p, const uint8_t scalar[32]) {
    int8_t naf[NAF_LEN];
    g64_odd_multiples(point->table, minus_p, MANY_TABLE);
    int top = wnaf(naf, scalar, W_VAR), count = 0;
    for (int i = 0; i <= top; i++) {
        if (naf[i]) {
            point->bits[count] = (uint16_t)i;
            point->digits[count++] = naf[i];
        }
    }
    point->ndigits = count;
}

static void many_digits_count(const many_point *point, size_t *at_bit) {
    for (int k = 0; k < point->ndigits; k++) at_bit[point->bits[k]]++;
}

static void many_digits_place(const many_point *point, size_t *next) {
    for (int k = 0; k < point->ndigits; k++) {
        int d = point->digits[k];
        many_add *a = &M.adds[next[point->bits[k]]++];
        a->entry = &point->table[(d > 0 ? d : -d) >> 1];
        a->negative = d < 0;
    }
}

/* Does the equation of the groups LO .. HI - 1 hold: [8]([sum z_i S_i] B - sum [z_i] R_i - sum [sum z_i h_i] A)
 * == identity, the sums over their checks? -1 on a BIGNUM failure. */
static int many_check(size_t lo, size_t hi) {
    static const g64_p2 identity = {{{0}}, {{1}}, {{1}}};
    size_t start[NAF_LEN + 1] = {0}, next[NAF_LEN];
    uint8_t s[32];
    MANY_EQUATIONS++;
    static const uint8_t one[8] = {1};
    scalar_acc acc_s = {{0}};
    for (size_t g = lo; g < hi; g++) accumulate(&acc_s, one, 8, M.groups[g].s_sum, 32);
    if (!reduce(s, &acc_s)) return -1;
    int top = wnaf(BASE_NAF, s, W_BASE);
    for (size_t g = lo; g < hi; g++) {  /* the additions sorted by bit: counts, offsets, placement */
        const many_group *grp = &M.groups[g];
        many_digits_count(&grp->a, start + 1);
        for (size_t k = 0; k < grp->count; k++) many_digits_count(&M.items[M.item_order[grp->first + k]], start + 1);
    }
    for (int i = 0; i < NAF_LEN; i++) {
        if (start[i + 1] && i > top) top = i;
        next[i] = start[i];
        start[i + 1] += start[i];
    }
    for (size_t g = lo; g < hi; g++) {
        const many_group *grp = &M.groups[g];
        many_digits_place(&grp->a, next);
        for (size_t k = 0; k < grp->count; k++) many_digits_place(&M.items[M.item_order[grp->first + k]], next);
    }
    g64_p2 r = identity;
    g64_p1p1 t;
    g64_p3 p;
    size_t end = start[NAF_LEN];
    for (int i = top; i >= 0; i--) {
        g64_dbl(&t, &r);
        int d = BASE_NAF[i];
        if (d) {
            const g64_affine *e = &BASE_TABLE64[(d > 0 ? d : -d) >> 1];
            g64_p1p1_to_p3(&p, &t);
            g64_add_any(&t, &p, &e->ypx, &e->ymx, NULL, &e->t2d, d < 0);
        }
        for (size_t k = start[i]; k < start[i + 1]; k++) {
            const g64_cached *e = M.adds[k].entry;
            if (k + PREFETCH_AHEAD < end) {  /* the tables outgrow the caches: fetch an entry early */
                __builtin_prefetch(M.adds[k + PREFETCH_AHEAD].entry);
                __builtin_prefetch((const char *)M.adds[k + PREFETCH_AHEAD].entry + 64);
            }
            g64_p1p1_to_p3(&p, &t);
            g64_add_any(&t, &p, &e->ypx, &e->ymx, &e->z2, &e->t2d, M.adds[k].negative);
        }
        g64_p1p1_to_p2(&r, &t);
    }
    return g64_times8_is_identity(&r);
}

/* Every check of the groups LO .. HI - 1 verified alone, with ed_verify_one's equation. */
static void many_singles(size_t lo, size_t hi, const uint8_t *const *keys, const uint8_t *const *checks,
                         const size_t *lens, uint8_t *verdicts) {
    for (size_t g = lo; g < hi; g++) {
        for (size_t k = 0; k < M.groups[g].count; k++) {
            size_t i = M.item_order[M.groups[g].first + k];
            verdicts[i] = (uint8_t)(ed_verify_one(keys[i], checks[i], lens[i]) == 1);
            MANY_SINGLES++;
        }
    }
}

static void many_accept(size_t lo, size_t hi, uint8_t *verdicts) {
    for (size_t g = lo; g < hi; g++)
        for (size_t k = 0; k < M.groups[g].count; k++) verdicts[M.item_order[M.groups[g].first + k]] = 1;
}

/* Verdicts for the groups LO .. HI - 1: their equation holds (all valid), or halves checked in turn down
 * to single groups, whose checks are then verified alone. FAILING: the caller knows the equation fails. */
static void many_bisect(size_t lo, size_t hi, int failing, const uint8_t *const *keys,
                        const uint8_t *const *checks, const size_t *lens, uint8_t *verdicts) {
    if (!failing) {
        int got = many_check(lo, hi);
        if (got == 1) {
            many_accept(lo, hi, verdicts);
            return;
        }
        if (got < 0) {  /* no arithmetic: each alone */
            many_singles(lo, hi, keys, checks, lens, verdicts);
            return;
        }
    }
    if (hi - lo == 1) {
        many_singles(lo, hi, keys, checks, lens, verdicts);
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    int left = many_check(lo, mid);
    if (left == 1) {  /* the failure is on the right */
        many_accept(lo, mid, verdicts);
        many_bisect(mid, hi, 1, keys, checks, lens, verdicts);
    } else {
        many_bisect(lo, mid, left == 0, keys, checks, lens, verdicts);
        many_bisect(mid, hi, 0, keys, checks, lens, verdicts);
    }
}

static uint64_t key_hash(const uint8_t key[32]) {
    return load64_le(key) * 0x9e3779b97f4a7c15ull ^ load64_le(key + 8);
}

/* Group the inputs by key (KEY_OF, group count returned), -1 for those the cheap pre-checks refuse. */
static size_t many_group_keys(const uint8_t *const *keys, const uint8_t *const *checks, const size_t *lens,
                              size_t n) {
    size_t mask = 1;
    while (mask < 2 * n) mask <<= 1;
    mask -= 1;
    memset(M.slots, 0, (mask + 1) * sizeof *M.slots);
    size_t ngroups = 0;
    for (size_t i = 0; i < n; i++) {
        M.key_of[i] = -1;
        if (lens[i] < 64 || !scalar_is_canonical(checks[i] + 32)) continue;
        size_t at = (size_t)(key_hash(keys[i]) >> 20) & mask;
        while (M.slots[at] && memcmp(keys[M.key_first[M.slots[at] - 1]], keys[i], 32) != 0) at = (at + 1) & mask;
        if (!M.slots[at]) {
            M.key_first[ngroups] = i;
            M.groups[ngroups].count = 0;
            M.slots[at] = (int32_t)++ngroups;
        }
        M.key_of[i] = M.slots[at] - 1;
        M.groups[M.key_of[i]].count++;
    }
    return ngroups;
}

/* Fill 16-octet weights (odd: never 0) from the CSPRNG; 0 when no randomness could be had. */
static int many_weights(size_t n) {
    uint8_t *out = (uint8_t *)M.z;
    size_t want = 16 * n, got = 0;
    while (got < want) {
        ssize_t r = getrandom(out + got, want - got, 0);
        if (r <= 0) return 0;
        got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++) M.z[i][0] |= 1;
    return 1;
}

/* One more encoding to decode into M.decoded[*COUNT]: FE64_LANES at a time (g64_decompress_lanes). */
static void many_decode_one(const uint8_t *enc, const uint8_t *pending[FE64_LANES], size_t *count) {
    size_t at = (*count)++, lane = at % FE64_LANES;
    pending[lane] = enc;
    if (lane == FE64_LANES - 1) {
        int ok[FE64_LANES];
        g64_decompress_lanes(&M.decoded[at - lane], ok, pending, 1);
        for (int j = 0; j < FE64_LANES; j++) M.decoded_ok[at - lane + j] = (uint8_t)ok[j];
    }
}

/* -A of each group and -R of its checks (ITEM_ORDER), in that order, into M.decoded. */
static void many_decode(const uint8_t *const *keys, const uint8_t *const *checks, size_t ngroups) {
    const uint8_t *pending[FE64_LANES];
    size_t count = 0;
    for (size_t g = 0; g < ngroups; g++) {
        many_decode_one(keys[M.key_first[g]], pending, &count);
        for (size_t k = 0; k < M.groups[g].count; k++)
            many_decode_one(checks[M.item_order[M.groups[g].first + k]], pending, &count);
    }
    for (size_t at = count - count % FE64_LANES; at < count; at++)  /* the last few alone */
        M.decoded_ok[at] = (uint8_t)g64_decompress(&M.decoded[at], pending[at % FE64_LANES], 1);
}

/* The groups' points and sums (the groups left with no check dropped); their count, or -1 on failure. */
static long many_prepare(const uint8_t *const *keys, const uint8_t *const *checks, const size_t *lens,
                         size_t n, size_t ngroups) {
    size_t pos = 0;
    for (size_t g = 0; g < ngroups; g++) {  /* ranges of ITEM_ORDER */
        M.groups[g].first = pos;
        pos += M.groups[g].count;
        M.groups[g].count = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (M.key_of[i] >= 0) {
            many_group *grp = &M.groups[M.key_of[i]];
            M.item_order[grp->first + grp->count++] = i;
        }
    }
    many_decode(keys, checks, ngroups);
    size_t kept = 0, next = 0;
    uint8_t h[64], scalar[32];
    for (size_t g = 0; g < ngroups; g++) {
        size_t first = M.groups[g].first, total = M.groups[g].count, count = 0;
        const uint8_t *key = keys[M.key_first[g]];
        const g64_p3 *minus_a = &M.decoded[next];
        int key_ok = M.decoded_ok[next];
        next += 1 + total;
        if (!key_ok) continue;  /* every check of the key refused */
        scalar_acc acc_s = {{0}}, acc_h = {{0}};
        for (size_t k = 0; k < total; k++) {
            size_t i = M.item_order[first + k];
            const uint8_t *c = checks[i];
            size_t at = next - total + k;
            if (!M.decoded_ok[at]) continue;  /* R refused */
            memset(scalar, 0, 32);
            memcpy(scalar, M.z[i], 16);
            many_point_set(&M.items[i], &M.decoded[at], scalar);
            if (!challenge(h, key, c, lens[i])) return -1;
            accumulate(&acc_s, M.z[i], 16, c + 32, 32);
            accumulate(&acc_h, M.z[i], 16, h, 64);
            M.item_order[first + count++] = i;
        }
        if (!count) continue;
        many_group *out = &M.groups[kept++];  /* kept <= g: its range read above */
        out->first = first, out->count = count;
        if (!reduce(scalar, &acc_h) || !reduce(out->s_sum, &acc_s)) return -1;
        many_point_set(&out->a, minus_a, scalar);
    }
    return (long)kept;
}

int ed_verify_many(const uint8_t *const *keys, const uint8_t *const *checks, const size_t *lens, size_t n,
                   uint8_t *verdicts) {
    memset(verdicts, 0, n);
    MANY_EQUATIONS = MANY_SINGLES = 0;
    if (n == 0) return 1;
    if (!many_reserve(n) || !many_weights(n)) return -1;
    size_t ngroups = many_group_keys(keys, checks, lens, n);
    long kept = many_prepare(keys, checks, lens, n, ngroups);
    if (kept < 0) return -1;
    if (kept) many_bisect(0, (size_t)kept, 0, keys, checks, lens, verdicts);
    return 1;
}

void ed_many_counts(size_t *equations, size_t *singles) {
    *equations = MANY_EQUATIONS;
    *singles = MANY_SINGLES;
}
