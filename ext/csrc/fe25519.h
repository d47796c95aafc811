/* fe25519.h - arithmetic mod p = 2^255 - 19 and Edwards25519 point basics (ed25519.c, x25519fb.c).
 *
 * Field elements are five 51-bit limbs (products in unsigned __int128). The functions have no branches
 * and no memory indexes that depend on the values, so they may handle secrets; but fe_iszero and
 * fe_isodd return a value-dependent result that callers may branch on only for public data.
 * fe_invert and fe_pow22523 are fixed exponentiation chains. Points: extended twisted Edwards
 * coordinates (a = -1), formulas without exceptional cases.
 */
#ifndef PGPB_FE25519_H
#define PGPB_FE25519_H

#include <stdint.h>

typedef unsigned __int128 u128;

/* ---- field arithmetic mod 2^255 - 19 ------------------------------------------------------------ */

#define MASK51 ((uint64_t)0x7ffffffffffff)

typedef struct {
    uint64_t v[5];
} fe;

static inline uint64_t load64_le(const uint8_t *p) {
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | p[i];
    return x;
}

static inline void store64_le(uint8_t *p, uint64_t x) {
    for (int i = 0; i < 8; i++, x >>= 8) p[i] = (uint8_t)x;
}

/* The 255 low bits of S (the sign bit of an encoded point is dropped); not reduced. */
static inline void fe_frombytes(fe *h, const uint8_t s[32]) {
    h->v[0] = load64_le(s) & MASK51;
    h->v[1] = (load64_le(s + 6) >> 3) & MASK51;
    h->v[2] = (load64_le(s + 12) >> 6) & MASK51;
    h->v[3] = (load64_le(s + 19) >> 1) & MASK51;
    h->v[4] = (load64_le(s + 24) >> 12) & MASK51;
}

/* One carry pass: limbs below 2^51, but the lowest below 2^51 + 19 * 2^13. */
static inline void fe_carry(fe *h) {
    uint64_t c;
    c = h->v[0] >> 51, h->v[0] &= MASK51, h->v[1] += c;
    c = h->v[1] >> 51, h->v[1] &= MASK51, h->v[2] += c;
    c = h->v[2] >> 51, h->v[2] &= MASK51, h->v[3] += c;
    c = h->v[3] >> 51, h->v[3] &= MASK51, h->v[4] += c;
    c = h->v[4] >> 51, h->v[4] &= MASK51, h->v[0] += 19 * c;
}

/* f + g without carrying: inputs below 2^53 give limbs below 2^54 (the most fe_mul takes). */
static inline void fe_add(fe *h, const fe *f, const fe *g) {
    for (int i = 0; i < 5; i++) h->v[i] = f->v[i] + g->v[i];
}

/* f - g as f + 8p - g, carried: g's limbs must stay below 2^54 - 152. */
static inline void fe_sub(fe *h, const fe *f, const fe *g) {
    h->v[0] = f->v[0] + 0x3fffffffffff68 - g->v[0];
    for (int i = 1; i < 5; i++) h->v[i] = f->v[i] + 0x3ffffffffffff8 - g->v[i];
    fe_carry(h);
}

static inline void fe_neg(fe *h, const fe *f) {
    static const fe zero = {{0, 0, 0, 0, 0}};
    fe_sub(h, &zero, f);
}

/* Fold the five 128-bit column sums into limbs (below 2^51 but the lowest, below 2^52). */
static inline void fe_reduce_wide(fe *h, u128 r0, u128 r1, u128 r2, u128 r3, u128 r4) {
    r1 += r0 >> 51;
    r2 += r1 >> 51;
    r3 += r2 >> 51;
    r4 += r3 >> 51;
    u128 low = ((uint64_t)r0 & MASK51) + (r4 >> 51) * 19;
    h->v[0] = (uint64_t)low & MASK51;
    h->v[1] = ((uint64_t)r1 & MASK51) + (uint64_t)(low >> 51);
    h->v[2] = (uint64_t)r2 & MASK51;
    h->v[3] = (uint64_t)r3 & MASK51;
    h->v[4] = (uint64_t)r4 & MASK51;
}

/* f * g; limbs of f and g below 2^54. */
static inline __attribute__((always_inline)) void fe_mul(fe *h, const fe *f, const fe *g) {
    const uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    const uint64_t g0 = g->v[0], g1 = g->v[1], g2 = g->v[2], g3 = g->v[3], g4 = g->v[4];
    const uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
    u128 r0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 + (u128)f4 * g1_19;
    u128 r1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 + (u128)f4 * g2_19;
    u128 r2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 + (u128)f4 * g3_19;
    u128 r3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 + (u128)f4 * g4_19;
    u128 r4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 + (u128)f4 * g0;
    fe_reduce_wide(h, r0, r1, r2, r3, r4);
}

/* f^2; limbs of f below 2^54. */
static inline __attribute__((always_inline)) void fe_sq(fe *h, const fe *f) {
    const uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    const uint64_t f0_2 = 2 * f0, f1_2 = 2 * f1, f3_19 = 19 * f3, f4_19 = 19 * f4;
    u128 r0 = (u128)f0 * f0 + (u128)f1_2 * f4_19 + (u128)(2 * f2) * f3_19;
    u128 r1 = (u128)f0_2 * f1 + (u128)(2 * f2) * f4_19 + (u128)f3 * f3_19;
    u128 r2 = (u128)f0_2 * f2 + (u128)f1 * f1 + (u128)(2 * f3) * f4_19;
    u128 r3 = (u128)f0_2 * f3 + (u128)f1_2 * f2 + (u128)f4 * f4_19;
    u128 r4 = (u128)f0_2 * f4 + (u128)f1_2 * f3 + (u128)f2 * f2;
    fe_reduce_wide(h, r0, r1, r2, r3, r4);
}

static inline void fe_sqn(fe *h, const fe *f, int n) {
    fe_sq(h, f);
    while (--n > 0) fe_sq(h, h);
}

/* The canonical encoding of f (fully reduced mod p). */
static inline void fe_tobytes(uint8_t s[32], const fe *f) {
    fe t = *f;
    fe_carry(&t);  /* now t < 2p: limbs below 2^51 + 2^9 */
    uint64_t q = (t.v[0] + 19) >> 51;
    q = (t.v[1] + q) >> 51;
    q = (t.v[2] + q) >> 51;
    q = (t.v[3] + q) >> 51;
    q = (t.v[4] + q) >> 51;  /* 1 when t >= p */
    t.v[0] += 19 * q;
    uint64_t c;
    c = t.v[0] >> 51, t.v[0] &= MASK51, t.v[1] += c;
    c = t.v[1] >> 51, t.v[1] &= MASK51, t.v[2] += c;
    c = t.v[2] >> 51, t.v[2] &= MASK51, t.v[3] += c;
    c = t.v[3] >> 51, t.v[3] &= MASK51, t.v[4] += c;
    t.v[4] &= MASK51;  /* minus 2^255 when q was 1 */
    store64_le(s, t.v[0] | (t.v[1] << 51));
    store64_le(s + 8, (t.v[1] >> 13) | (t.v[2] << 38));
    store64_le(s + 16, (t.v[2] >> 26) | (t.v[3] << 25));
    store64_le(s + 24, (t.v[3] >> 39) | (t.v[4] << 12));
}

static inline int fe_iszero(const fe *f) {
    uint8_t s[32];
    uint8_t acc = 0;
    fe_tobytes(s, f);
    for (int i = 0; i < 32; i++) acc |= s[i];
    return acc == 0;
}

static inline int fe_isodd(const fe *f) {
    uint8_t s[32];
    fe_tobytes(s, f);
    return s[0] & 1;
}

/* z^(2^250 - 1) and z^11, the common part of the inversion and square-root exponents. */
static inline void fe_pow250(fe *z250, fe *z11, const fe *z) {
    fe z2, z9, t, z5, z10, z20, z50, z100;
    fe_sq(&z2, z);
    fe_sqn(&t, &z2, 2);
    fe_mul(&z9, &t, z);
    fe_mul(z11, &z9, &z2);
    fe_sq(&t, z11);
    fe_mul(&z5, &t, &z9);  /* 2^5 - 1 */
    fe_sqn(&t, &z5, 5);
    fe_mul(&z10, &t, &z5);  /* 2^10 - 1 */
    fe_sqn(&t, &z10, 10);
    fe_mul(&z20, &t, &z10);
    fe_sqn(&t, &z20, 20);
    fe_mul(&t, &t, &z20);  /* 2^40 - 1 */
    fe_sqn(&t, &t, 10);
    fe_mul(&z50, &t, &z10);
    fe_sqn(&t, &z50, 50);
    fe_mul(&z100, &t, &z50);
    fe_sqn(&t, &z100, 100);
    fe_mul(&t, &t, &z100);  /* 2^200 - 1 */
    fe_sqn(&t, &t, 50);
    fe_mul(z250, &t, &z50);
}

/* 1/z = z^(p - 2) = z^(2^255 - 21). */
static inline void fe_invert(fe *h, const fe *z) {
    fe z250, z11;
    fe_pow250(&z250, &z11, z);
    fe_sqn(&z250, &z250, 5);
    fe_mul(h, &z250, &z11);
}

/* z^((p - 5) / 8) = z^(2^252 - 3). */
static inline void fe_pow22523(fe *h, const fe *z) {
    fe z250, z11;
    fe_pow250(&z250, &z11, z);
    fe_sqn(&z250, &z250, 2);
    fe_mul(h, &z250, z);
}

/* d = -121665 / 121666 and sqrt(-1), encoded. */
static const uint8_t FE_D_BYTES[32] = {0xa3, 0x78, 0x59, 0x13, 0xca, 0x4d, 0xeb, 0x75, 0xab, 0xd8, 0x41,
                                       0x41, 0x4d, 0x0a, 0x70, 0x00, 0x98, 0xe8, 0x79, 0x77, 0x79, 0x40,
                                       0xc7, 0x8c, 0x73, 0xfe, 0x6f, 0x2b, 0xee, 0x6c, 0x03, 0x52};
static const uint8_t FE_SQRTM1_BYTES[32] = {0xb0, 0xa0, 0x0e, 0x4a, 0x27, 0x1b, 0xee, 0xc4, 0x78, 0xe4, 0x2f,
                                            0xad, 0x06, 0x18, 0x43, 0x2f, 0xa7, 0xd7, 0xfb, 0x3d, 0x99, 0x00,
                                            0x4d, 0x2b, 0x0b, 0xdf, 0xc1, 0x4f, 0x80, 0x24, 0x83, 0x2b};

/* x = a square root of u / v (either sign) and 1, or 0 when u / v is not a square. Branches on the values:
 * public data only. */
static inline int fe_sqrt_ratio(fe *x, const fe *u, const fe *v, const fe *sqrt_m1) {
    fe v3, vxx, t;
    fe_sq(&t, v);
    fe_mul(&v3, &t, v);
    fe_sq(&t, &v3);
    fe_mul(&t, &t, v);
    fe_mul(&t, &t, u);  /* u v^7 */
    fe_pow22523(&t, &t);
    fe_mul(&t, &t, &v3);
    fe_mul(x, &t, u);  /* x = u v^3 (u v^7)^((p - 5) / 8) */
    fe_sq(&t, x);
    fe_mul(&vxx, &t, v);
    fe_sub(&t, &vxx, u);
    if (fe_iszero(&t)) return 1;
    fe_add(&t, &vxx, u);
    if (!fe_iszero(&t)) return 0;
    fe_mul(x, x, sqrt_m1);
    return 1;
}

/* ---- points ------------------------------------------------------------------------------------ */

typedef struct {
    fe X, Y, Z;
} ge_p2; /* projective: x = X/Z, y = Y/Z */

typedef struct {
    fe X, Y, Z, T;
} ge_p3; /* extended: also T = XY/Z */

typedef struct {
    fe X, Y, Z, T;
} ge_p1p1; /* completed: x = X/Z, y = Y/T */

typedef struct {
    fe ypx, ymx, z2, t2d;
} ge_cached; /* Y + X, Y - X, 2Z, 2dT of an extended point */

typedef struct {
    fe ypx, ymx, t2d;
} ge_affine; /* y + x, y - x, 2dxy (Z = 1) */

/* The cached form of P for additions; D2 = 2d (each file keeps its own constant). */
static inline void ge_p3_to_cached(ge_cached *r, const ge_p3 *p, const fe *d2) {
    fe_add(&r->ypx, &p->Y, &p->X);
    fe_sub(&r->ymx, &p->Y, &p->X);
    fe_add(&r->z2, &p->Z, &p->Z);
    fe_mul(&r->t2d, &p->T, d2);
}

static inline void p1p1_to_p2(ge_p2 *r, const ge_p1p1 *p) {
    fe_mul(&r->X, &p->X, &p->T);
    fe_mul(&r->Y, &p->Y, &p->Z);
    fe_mul(&r->Z, &p->Z, &p->T);
}

static inline void p1p1_to_p3(ge_p3 *r, const ge_p1p1 *p) {
    fe_mul(&r->X, &p->X, &p->T);
    fe_mul(&r->Y, &p->Y, &p->Z);
    fe_mul(&r->Z, &p->Z, &p->T);
    fe_mul(&r->T, &p->X, &p->Y);
}

/* 2p (dbl-2008-hwcd with a = -1, every intermediate negated; the products are unchanged). */
static inline void ge_dbl(ge_p1p1 *r, const ge_p2 *p) {
    fe a, b, c, t;
    fe_sq(&a, &p->X);
    fe_sq(&b, &p->Y);
    fe_sq(&t, &p->Z);
    fe_add(&c, &t, &t);
    fe_add(&r->Y, &a, &b);     /* H' = A + B */
    fe_sub(&r->Z, &a, &b);     /* G' = A - B */
    fe_add(&t, &p->X, &p->Y);
    fe_sq(&t, &t);
    fe_sub(&r->X, &r->Y, &t);  /* E' = A + B - (X + Y)^2 */
    fe_add(&r->T, &r->Z, &c);  /* F' = A - B + 2Z^2 */
}

#endif
