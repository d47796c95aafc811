/* fe25519_vt.h - variable-time arithmetic mod p = 2^255 - 19 on four 64-bit limbs (public data only).
 *
 * For ed25519.c's verification of many signatures, where every value is public. An element is any
 * 256-bit value (reduced mod 2^256 - 38 = 2p, canonical only in fe64_tobytes). On x86-64 with BMI2 and
 * ADX (fe64_use_adx(1) once the CPU is known) products are mulx with two carry chains (adcx, adox);
 * otherwise portable C: unrolled products with unsigned __int128, out of line (on x86-64 add and sub stay
 * asm; -DFE64_NO_ASM compiles the C alone, as on aarch64, for tests and measurements). Branches on the
 * values: never for secrets (x25519fb.c keeps fe25519.h's constant-time functions).
 */
#ifndef PGPB_FE25519_VT_H
#define PGPB_FE25519_VT_H

#include <stdint.h>
#include <string.h>

typedef struct {
    uint64_t v[4];
} fe64;

#if defined(__x86_64__) && !defined(FE64_NO_ASM) /* FE64_NO_ASM: the portable C alone, for tests */
#define FE64_X86_ASM 1
#endif

static int FE64_ADX;  /* mulx/adcx/adox available (set by fe64_use_adx) */

static inline void fe64_use_adx(int on) {
    FE64_ADX = on;
}

/* The 255 low bits of S, little-endian (the sign bit of an encoded point dropped). */
static inline void fe64_frombytes(fe64 *h, const uint8_t s[32]) {
    for (int i = 0; i < 4; i++) {
        uint64_t limb = 0;
        for (int b = 7; b >= 0; b--) limb = (limb << 8) | s[8 * i + b];
        h->v[i] = limb;
    }
    h->v[3] &= 0x7fffffffffffffffull;
}

/* Portable products: unsigned __int128 (mul/adc on x86-64, mul/umulh on aarch64), fully unrolled. */
typedef unsigned __int128 fe64_u128;

/* T0..T3 + 38 * T4..T7, the top word (below 39) folded again: the 512-bit T mod 2^256 - 38 into H. */
static inline __attribute__((always_inline)) void fe64_fold8(fe64 *h, uint64_t t0, uint64_t t1, uint64_t t2,
                                                             uint64_t t3, uint64_t t4, uint64_t t5,
                                                             uint64_t t6, uint64_t t7) {
    fe64_u128 acc = (fe64_u128)t4 * 38 + t0;
    t0 = (uint64_t)acc;
    acc = (fe64_u128)t5 * 38 + t1 + (uint64_t)(acc >> 64);
    t1 = (uint64_t)acc;
    acc = (fe64_u128)t6 * 38 + t2 + (uint64_t)(acc >> 64);
    t2 = (uint64_t)acc;
    acc = (fe64_u128)t7 * 38 + t3 + (uint64_t)(acc >> 64);
    t3 = (uint64_t)acc;
    const uint64_t extra = (uint64_t)(acc >> 64) * 38;
    t0 += extra;
    if (__builtin_expect(t0 < extra, 0)) {  /* rare (public values): a carry through the limbs */
        if (++t1 == 0 && ++t2 == 0 && ++t3 == 0) t0 += 38;  /* t0 below 38 * 38: no overflow */
    }
    h->v[0] = t0, h->v[1] = t1, h->v[2] = t2, h->v[3] = t3;
}

/* One row of the schoolbook product: R0..R3 + A * (B0..B3) into R0..R3, the top word returned. */
static inline __attribute__((always_inline)) uint64_t fe64_row(uint64_t a, uint64_t b0, uint64_t b1, uint64_t b2,
                                                               uint64_t b3, uint64_t *r0, uint64_t *r1,
                                                               uint64_t *r2, uint64_t *r3) {
    fe64_u128 acc = (fe64_u128)a * b0 + *r0;
    *r0 = (uint64_t)acc;
    acc = (fe64_u128)a * b1 + *r1 + (uint64_t)(acc >> 64);  /* below 2^128: (2^64 - 1)^2 + 2 (2^64 - 1) */
    *r1 = (uint64_t)acc;
    acc = (fe64_u128)a * b2 + *r2 + (uint64_t)(acc >> 64);
    *r2 = (uint64_t)acc;
    acc = (fe64_u128)a * b3 + *r3 + (uint64_t)(acc >> 64);
    *r3 = (uint64_t)acc;
    return (uint64_t)(acc >> 64);
}

/* f * g: four rows of four products (each a * b + t + carry fits 128 bits), then folded. */
static inline __attribute__((always_inline)) void fe64_mul_c(fe64 *h, const fe64 *f, const fe64 *g) {
    const uint64_t g0 = g->v[0], g1 = g->v[1], g2 = g->v[2], g3 = g->v[3];
    uint64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4, t5, t6, t7;
    t4 = fe64_row(f->v[0], g0, g1, g2, g3, &t0, &t1, &t2, &t3);
    t5 = fe64_row(f->v[1], g0, g1, g2, g3, &t1, &t2, &t3, &t4);
    t6 = fe64_row(f->v[2], g0, g1, g2, g3, &t2, &t3, &t4, &t5);
    t7 = fe64_row(f->v[3], g0, g1, g2, g3, &t3, &t4, &t5, &t6);
    fe64_fold8(h, t0, t1, t2, t3, t4, t5, t6, t7);
}

/* f^2: the six cross products, doubled, plus the four squares, then folded. */
static inline __attribute__((always_inline)) void fe64_sq_c(fe64 *h, const fe64 *f) {
    const uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3];
    fe64_u128 acc = (fe64_u128)f0 * f1;
    uint64_t t0, t1, t2, t3, t4, t5, t6, t7;
    t1 = (uint64_t)acc;
    acc = (fe64_u128)f0 * f2 + (uint64_t)(acc >> 64);
    t2 = (uint64_t)acc;
    acc = (fe64_u128)f0 * f3 + (uint64_t)(acc >> 64);
    t3 = (uint64_t)acc;
    t4 = (uint64_t)(acc >> 64);
    acc = (fe64_u128)f1 * f2 + t3;
    t3 = (uint64_t)acc;
    acc = (fe64_u128)f1 * f3 + t4 + (uint64_t)(acc >> 64);
    t4 = (uint64_t)acc;
    t5 = (uint64_t)(acc >> 64);
    acc = (fe64_u128)f2 * f3 + t5;
    t5 = (uint64_t)acc;
    t6 = (uint64_t)(acc >> 64);
    t7 = t6 >> 63;  /* doubled: the cross products are below 2^511 */
    t6 = (t6 << 1) | (t5 >> 63);
    t5 = (t5 << 1) | (t4 >> 63);
    t4 = (t4 << 1) | (t3 >> 63);
    t3 = (t3 << 1) | (t2 >> 63);
    t2 = (t2 << 1) | (t1 >> 63);
    t1 <<= 1;
    fe64_u128 s0 = (fe64_u128)f0 * f0, s1 = (fe64_u128)f1 * f1, s2 = (fe64_u128)f2 * f2, s3 = (fe64_u128)f3 * f3;
    t0 = (uint64_t)s0;
    acc = (fe64_u128)t1 + (uint64_t)(s0 >> 64);
    t1 = (uint64_t)acc;
    acc = (fe64_u128)t2 + (uint64_t)s1 + (uint64_t)(acc >> 64);
    t2 = (uint64_t)acc;
    acc = (fe64_u128)t3 + (uint64_t)(s1 >> 64) + (uint64_t)(acc >> 64);
    t3 = (uint64_t)acc;
    acc = (fe64_u128)t4 + (uint64_t)s2 + (uint64_t)(acc >> 64);
    t4 = (uint64_t)acc;
    acc = (fe64_u128)t5 + (uint64_t)(s2 >> 64) + (uint64_t)(acc >> 64);
    t5 = (uint64_t)acc;
    acc = (fe64_u128)t6 + (uint64_t)s3 + (uint64_t)(acc >> 64);
    t6 = (uint64_t)acc;
    t7 += (uint64_t)(s3 >> 64) + (uint64_t)(acc >> 64);  /* f^2 below 2^512: no carry out */
    fe64_fold8(h, t0, t1, t2, t3, t4, t5, t6, t7);
}

/* The portable products, out of line (hot: compiled for speed, though on x86 only the cold function below
 * calls them). */
static __attribute__((noinline, hot)) void fe64_mul_outline(fe64 *h, const fe64 *f, const fe64 *g) {
    fe64_mul_c(h, f, g);
}

static __attribute__((noinline, hot)) void fe64_sq_outline(fe64 *h, const fe64 *f) {
    fe64_sq_c(h, f);
}

#ifdef FE64_X86_ASM
/* Out of line and cold, a jump to the above: the call sites stay small and out of the way of the mulx path
 * (a cold function is compiled for size). F == G (from fe64_sq too) is a square. */
static __attribute__((noinline, cold)) void fe64_mul_portable(fe64 *h, const fe64 *f, const fe64 *g) {
    if (f == g)
        fe64_sq_outline(h, f);
    else
        fe64_mul_outline(h, f, g);
}

/* t0..t3 + 38 * t4..t7 (mulx, adcx, adox), the top word (below 39) folded again: the result in t0..t3. */
#define FE64_FOLD_ASM                      \
    "movl $38, %%edx\n\t"                  \
    "xorl %k[zero], %k[zero]\n\t"          \
    "mulxq %[t4], %[lo], %[hi]\n\t"        \
    "adcxq %[lo], %[t0]\n\t"               \
    "adoxq %[hi], %[t1]\n\t"               \
    "mulxq %[t5], %[lo], %[hi]\n\t"        \
    "adcxq %[lo], %[t1]\n\t"               \
    "adoxq %[hi], %[t2]\n\t"               \
    "mulxq %[t6], %[lo], %[hi]\n\t"        \
    "adcxq %[lo], %[t2]\n\t"               \
    "adoxq %[hi], %[t3]\n\t"               \
    "mulxq %[t7], %[lo], %[t4]\n\t"        \
    "adcxq %[lo], %[t3]\n\t"               \
    "adoxq %[zero], %[t4]\n\t"             \
    "adcxq %[zero], %[t4]\n\t"             \
    "imulq $38, %[t4], %[t4]\n\t"          \
    "addq %[t4], %[t0]\n\t"                \
    "adcq %[zero], %[t1]\n\t"              \
    "adcq %[zero], %[t2]\n\t"              \
    "adcq %[zero], %[t3]\n\t"              \
    "sbbq %[t4], %[t4]\n\t"                \
    "andq $38, %[t4]\n\t"                  \
    "addq %[t4], %[t0]\n\t"

/* f * g with mulx and the carry chains adcx (CF) and adox (OF); then the top half times 38 added. */
static inline __attribute__((always_inline)) void fe64_mul_adx(fe64 *h, const fe64 *f, const fe64 *g) {
    uint64_t t0, t1, t2, t3, t4, t5, t6, t7, lo, hi, zero;
    __asm__(
        "movq 0(%[f]), %%rdx\n\t"
        "mulxq 0(%[g]), %[t0], %[t1]\n\t"
        "mulxq 8(%[g]), %[lo], %[t2]\n\t"
        "addq %[lo], %[t1]\n\t"
        "mulxq 16(%[g]), %[lo], %[t3]\n\t"
        "adcq %[lo], %[t2]\n\t"
        "mulxq 24(%[g]), %[lo], %[t4]\n\t"
        "adcq %[lo], %[t3]\n\t"
        "adcq $0, %[t4]\n\t"
        "movq 8(%[f]), %%rdx\n\t"
        "xorl %k[zero], %k[zero]\n\t"
        "mulxq 0(%[g]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "mulxq 8(%[g]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "mulxq 16(%[g]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 24(%[g]), %[lo], %[t5]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[zero], %[t5]\n\t"
        "adcxq %[zero], %[t5]\n\t"
        "movq 16(%[f]), %%rdx\n\t"
        "xorl %k[zero], %k[zero]\n\t"
        "mulxq 0(%[g]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "mulxq 8(%[g]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 16(%[g]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 24(%[g]), %[lo], %[t6]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[zero], %[t6]\n\t"
        "adcxq %[zero], %[t6]\n\t"
        "movq 24(%[f]), %%rdx\n\t"
        "xorl %k[zero], %k[zero]\n\t"
        "mulxq 0(%[g]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 8(%[g]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 16(%[g]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 24(%[g]), %[lo], %[t7]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[zero], %[t7]\n\t"
        "adcxq %[zero], %[t7]\n\t"
        FE64_FOLD_ASM
        : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4), [t5] "=&r"(t5),
          [t6] "=&r"(t6), [t7] "=&r"(t7), [lo] "=&r"(lo), [hi] "=&r"(hi), [zero] "=&r"(zero)
        : [f] "r"(f->v), [g] "r"(g->v), "m"(*(const uint64_t(*)[4])f->v), "m"(*(const uint64_t(*)[4])g->v)
        : "rdx", "cc");
    h->v[0] = t0, h->v[1] = t1, h->v[2] = t2, h->v[3] = t3;
}

/* f^2: the six cross products doubled (adcx) and the squares added (adox) in one pass, then folded. */
static inline __attribute__((always_inline)) void fe64_sq_adx(fe64 *h, const fe64 *f) {
    uint64_t t0, t1, t2, t3, t4, t5, t6, t7, lo, hi, zero;
    __asm__(
        "movq 0(%[f]), %%rdx\n\t"
        "mulxq 8(%[f]), %[t1], %[t2]\n\t"
        "mulxq 16(%[f]), %[lo], %[t3]\n\t"
        "addq %[lo], %[t2]\n\t"
        "mulxq 24(%[f]), %[lo], %[t4]\n\t"
        "adcq %[lo], %[t3]\n\t"
        "adcq $0, %[t4]\n\t"
        "movq 8(%[f]), %%rdx\n\t"
        "xorl %k[zero], %k[zero]\n\t"
        "mulxq 16(%[f]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 24(%[f]), %[lo], %[t5]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[zero], %[t5]\n\t"
        "adcxq %[zero], %[t5]\n\t"
        "movq 16(%[f]), %%rdx\n\t"
        "mulxq 24(%[f]), %[lo], %[t6]\n\t"
        "addq %[lo], %[t5]\n\t"
        "adcq $0, %[t6]\n\t"
        /* cross products doubled, squares added */
        "xorl %k[zero], %k[zero]\n\t"
        "movq 0(%[f]), %%rdx\n\t"
        "mulxq %%rdx, %[t0], %[hi]\n\t"
        "adcxq %[t1], %[t1]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "movq 8(%[f]), %%rdx\n\t"
        "mulxq %%rdx, %[lo], %[hi]\n\t"
        "adcxq %[t2], %[t2]\n\t"
        "adoxq %[lo], %[t2]\n\t"
        "adcxq %[t3], %[t3]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "movq 16(%[f]), %%rdx\n\t"
        "mulxq %%rdx, %[lo], %[hi]\n\t"
        "adcxq %[t4], %[t4]\n\t"
        "adoxq %[lo], %[t4]\n\t"
        "adcxq %[t5], %[t5]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "movq 24(%[f]), %%rdx\n\t"
        "mulxq %%rdx, %[lo], %[t7]\n\t"
        "adcxq %[t6], %[t6]\n\t"
        "adoxq %[lo], %[t6]\n\t"
        "adcxq %[zero], %[t7]\n\t"
        "adoxq %[zero], %[t7]\n\t"
        FE64_FOLD_ASM
        : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4), [t5] "=&r"(t5),
          [t6] "=&r"(t6), [t7] "=&r"(t7), [lo] "=&r"(lo), [hi] "=&r"(hi), [zero] "=&r"(zero)
        : [f] "r"(f->v), "m"(*(const uint64_t(*)[4])f->v)
        : "rdx", "cc");
    h->v[0] = t0, h->v[1] = t1, h->v[2] = t2, h->v[3] = t3;
}
#endif

static inline __attribute__((always_inline)) void fe64_mul(fe64 *h, const fe64 *f, const fe64 *g) {
#ifdef FE64_X86_ASM
    if (__builtin_expect(FE64_ADX, 1)) {
        fe64_mul_adx(h, f, g);
        return;
    }
    fe64_mul_portable(h, f, g);
#else
    fe64_mul_outline(h, f, g);  /* inlined measured slower (aarch64-like build: -DFE64_NO_ASM on x86) */
#endif
}

static inline __attribute__((always_inline)) void fe64_sq(fe64 *h, const fe64 *f) {
#ifdef FE64_X86_ASM
    if (__builtin_expect(FE64_ADX, 1)) {
        fe64_sq_adx(h, f);
        return;
    }
    fe64_mul_portable(h, f, f);
#else
    fe64_sq_outline(h, f);  /* inlined measured slower (aarch64-like build: -DFE64_NO_ASM on x86) */
#endif
}

static inline void fe64_sqn(fe64 *h, const fe64 *f, int n) {
    fe64_sq(h, f);
    while (--n > 0) fe64_sq(h, h);
}

#ifndef FE64_X86_ASM
/* R = A + B + CARRY (0 or 1), the carry out returned (no __int128 here: compilers spill it to the stack). */
static inline __attribute__((always_inline)) uint64_t fe64_adc(uint64_t *r, uint64_t a, uint64_t b, uint64_t carry) {
    uint64_t sum;
    const uint64_t c1 = __builtin_add_overflow(a, b, &sum);
    return c1 | __builtin_add_overflow(sum, carry, r);
}

/* R = A - B - BORROW (0 or 1), the borrow out returned. */
static inline __attribute__((always_inline)) uint64_t fe64_sbb(uint64_t *r, uint64_t a, uint64_t b, uint64_t borrow) {
    uint64_t diff;
    const uint64_t b1 = __builtin_sub_overflow(a, b, &diff);
    return b1 | __builtin_sub_overflow(diff, borrow, r);
}
#endif

/* f + g mod 2^256 - 38. */
static inline void fe64_add(fe64 *h, const fe64 *f, const fe64 *g) {
#ifdef FE64_X86_ASM
    uint64_t t0 = f->v[0], t1 = f->v[1], t2 = f->v[2], t3 = f->v[3], c;
    __asm__(
        "addq 0(%[g]), %[t0]\n\t"
        "adcq 8(%[g]), %[t1]\n\t"
        "adcq 16(%[g]), %[t2]\n\t"
        "adcq 24(%[g]), %[t3]\n\t"
        "sbbq %[c], %[c]\n\t"
        "andq $38, %[c]\n\t"
        "addq %[c], %[t0]\n\t"
        "adcq $0, %[t1]\n\t"
        "adcq $0, %[t2]\n\t"
        "adcq $0, %[t3]\n\t"
        "sbbq %[c], %[c]\n\t"
        "andq $38, %[c]\n\t"
        "addq %[c], %[t0]\n\t"
        : [t0] "+&r"(t0), [t1] "+&r"(t1), [t2] "+&r"(t2), [t3] "+&r"(t3), [c] "=&r"(c)
        : [g] "r"(g->v), "m"(*(const uint64_t(*)[4])g->v)
        : "cc");
    h->v[0] = t0, h->v[1] = t1, h->v[2] = t2, h->v[3] = t3;
#else
    uint64_t r0, r1, r2, r3, carry;
    carry = __builtin_add_overflow(f->v[0], g->v[0], &r0);
    carry = fe64_adc(&r1, f->v[1], g->v[1], carry);
    carry = fe64_adc(&r2, f->v[2], g->v[2], carry);
    carry = fe64_adc(&r3, f->v[3], g->v[3], carry);
    const uint64_t extra = carry * 38;
    r0 += extra;
    if (__builtin_expect(r0 < extra, 0)) {  /* rare (public values): a carry through the limbs */
        if (++r1 == 0 && ++r2 == 0 && ++r3 == 0) r0 += 38;  /* r0 below 38: no overflow */
    }
    h->v[0] = r0, h->v[1] = r1, h->v[2] = r2, h->v[3] = r3;
#endif
}

/* f - g mod 2^256 - 38 (a borrow of 2^256 is 38 too many). */
static inline void fe64_sub(fe64 *h, const fe64 *f, const fe64 *g) {
#ifdef FE64_X86_ASM
    uint64_t t0 = f->v[0], t1 = f->v[1], t2 = f->v[2], t3 = f->v[3], c;
    __asm__(
        "subq 0(%[g]), %[t0]\n\t"
        "sbbq 8(%[g]), %[t1]\n\t"
        "sbbq 16(%[g]), %[t2]\n\t"
        "sbbq 24(%[g]), %[t3]\n\t"
        "sbbq %[c], %[c]\n\t"
        "andq $38, %[c]\n\t"
        "subq %[c], %[t0]\n\t"
        "sbbq $0, %[t1]\n\t"
        "sbbq $0, %[t2]\n\t"
        "sbbq $0, %[t3]\n\t"
        "sbbq %[c], %[c]\n\t"
        "andq $38, %[c]\n\t"
        "subq %[c], %[t0]\n\t"
        : [t0] "+&r"(t0), [t1] "+&r"(t1), [t2] "+&r"(t2), [t3] "+&r"(t3), [c] "=&r"(c)
        : [g] "r"(g->v), "m"(*(const uint64_t(*)[4])g->v)
        : "cc");
    h->v[0] = t0, h->v[1] = t1, h->v[2] = t2, h->v[3] = t3;
#else
    uint64_t r0, r1, r2, r3, borrow;
    borrow = __builtin_sub_overflow(f->v[0], g->v[0], &r0);
    borrow = fe64_sbb(&r1, f->v[1], g->v[1], borrow);
    borrow = fe64_sbb(&r2, f->v[2], g->v[2], borrow);
    borrow = fe64_sbb(&r3, f->v[3], g->v[3], borrow);
    const uint64_t extra = borrow * 38;
    if (__builtin_expect(r0 < extra, 0)) {  /* rare (public values): a borrow through the limbs */
        if (r1-- == 0 && r2-- == 0 && r3-- == 0) r0 -= 38;  /* r0 near 2^64 then: no underflow */
    }
    h->v[0] = r0 - extra, h->v[1] = r1, h->v[2] = r2, h->v[3] = r3;
#endif
}

static inline void fe64_neg(fe64 *h, const fe64 *f) {
    static const fe64 zero = {{0, 0, 0, 0}};
    fe64_sub(h, &zero, f);
}

/* The canonical encoding of f (fully reduced mod p). */
static inline void fe64_tobytes(uint8_t s[32], const fe64 *f) {
    uint64_t t[4] = {f->v[0], f->v[1], f->v[2], f->v[3]};
    for (int round = 0; round < 2; round++) {  /* bit 255 folded as 19: below 2^255 + 19 * 2 */
        unsigned __int128 acc = (unsigned __int128)(t[3] >> 63) * 19;
        t[3] &= 0x7fffffffffffffffull;
        for (int i = 0; i < 4; i++) {
            acc += t[i];
            t[i] = (uint64_t)acc;
            acc >>= 64;
        }
    }
    unsigned __int128 acc = 19;  /* t >= p exactly when t + 19 reaches bit 255 */
    uint64_t u[4];
    for (int i = 0; i < 4; i++) {
        acc += t[i];
        u[i] = (uint64_t)acc;
        acc >>= 64;
    }
    if (u[3] >> 63) {
        u[3] &= 0x7fffffffffffffffull;
        memcpy(t, u, sizeof t);
    }
    for (int i = 0; i < 32; i++) s[i] = (uint8_t)(t[i / 8] >> (8 * (i % 8)));
}

static inline int fe64_iszero(const fe64 *f) {
    uint8_t s[32];
    uint8_t acc = 0;
    fe64_tobytes(s, f);
    for (int i = 0; i < 32; i++) acc |= s[i];
    return acc == 0;
}

static inline int fe64_isodd(const fe64 *f) {
    uint8_t s[32];
    fe64_tobytes(s, f);
    return s[0] & 1;
}

/* z^((p - 5) / 8) = z^(2^252 - 3) of FE64_LANES elements at once: the squarings are latency-bound, the
 * chains overlap. */
#define FE64_LANES 2  /* 3 or 4 measured no faster */
#define FE64_EACH_LANE(stmt)                     \
    for (int j = 0; j < FE64_LANES; j++) { \
        stmt;                                    \
    }

static inline void fe64_sqn_lanes(fe64 h[FE64_LANES], const fe64 f[FE64_LANES], int n) {
    FE64_EACH_LANE(fe64_sq(&h[j], &f[j]));
    while (--n > 0) FE64_EACH_LANE(fe64_sq(&h[j], &h[j]));
}

static inline void fe64_pow22523_lanes(fe64 h[FE64_LANES], const fe64 z[FE64_LANES]) {
    fe64 z2[FE64_LANES], z9[FE64_LANES], z11[FE64_LANES], t[FE64_LANES], z5[FE64_LANES], z10[FE64_LANES];
    fe64 z20[FE64_LANES], z50[FE64_LANES], z100[FE64_LANES];
    FE64_EACH_LANE(fe64_sq(&z2[j], &z[j]));
    fe64_sqn_lanes(t, z2, 2);
    FE64_EACH_LANE(fe64_mul(&z9[j], &t[j], &z[j]));
    FE64_EACH_LANE(fe64_mul(&z11[j], &z9[j], &z2[j]));
    FE64_EACH_LANE(fe64_sq(&t[j], &z11[j]));
    FE64_EACH_LANE(fe64_mul(&z5[j], &t[j], &z9[j]));
    fe64_sqn_lanes(t, z5, 5);
    FE64_EACH_LANE(fe64_mul(&z10[j], &t[j], &z5[j]));
    fe64_sqn_lanes(t, z10, 10);
    FE64_EACH_LANE(fe64_mul(&z20[j], &t[j], &z10[j]));
    fe64_sqn_lanes(t, z20, 20);
    FE64_EACH_LANE(fe64_mul(&t[j], &t[j], &z20[j]));
    fe64_sqn_lanes(t, t, 10);
    FE64_EACH_LANE(fe64_mul(&z50[j], &t[j], &z10[j]));
    fe64_sqn_lanes(t, z50, 50);
    FE64_EACH_LANE(fe64_mul(&z100[j], &t[j], &z50[j]));
    fe64_sqn_lanes(t, z100, 100);
    FE64_EACH_LANE(fe64_mul(&t[j], &t[j], &z100[j]));
    fe64_sqn_lanes(t, t, 50);
    FE64_EACH_LANE(fe64_mul(&t[j], &t[j], &z50[j]));
    fe64_sqn_lanes(t, t, 2);
    FE64_EACH_LANE(fe64_mul(&h[j], &t[j], &z[j]));
}

/* The last steps of a square root of u / v from x = u v^3 (u v^7)^((p - 5) / 8): x fixed up and 1, or 0. */
static inline int fe64_sqrt_ratio_finish(fe64 *x, const fe64 *u, const fe64 *v, const fe64 *sqrt_m1) {
    fe64 vxx, t;
    fe64_sq(&t, x);
    fe64_mul(&vxx, &t, v);
    fe64_sub(&t, &vxx, u);
    if (fe64_iszero(&t)) return 1;
    fe64_add(&t, &vxx, u);
    if (!fe64_iszero(&t)) return 0;
    fe64_mul(x, x, sqrt_m1);
    return 1;
}

/* Square roots of FE64_LANES ratios u / v at once: OK[j] 1 when x[j] is one of u[j] / v[j] (either sign), 0
 * when u[j] / v[j] is not a square. */
static inline void fe64_sqrt_ratio_lanes(int ok[FE64_LANES], fe64 x[FE64_LANES], const fe64 u[FE64_LANES],
                                         const fe64 v[FE64_LANES], const fe64 *sqrt_m1) {
    fe64 v3[FE64_LANES], t[FE64_LANES];
    FE64_EACH_LANE(fe64_sq(&t[j], &v[j]));
    FE64_EACH_LANE(fe64_mul(&v3[j], &t[j], &v[j]));
    FE64_EACH_LANE(fe64_sq(&t[j], &v3[j]));
    FE64_EACH_LANE(fe64_mul(&t[j], &t[j], &v[j]));
    FE64_EACH_LANE(fe64_mul(&t[j], &t[j], &u[j]));  /* u v^7 */
    fe64_pow22523_lanes(t, t);
    FE64_EACH_LANE(fe64_mul(&t[j], &t[j], &v3[j]));
    FE64_EACH_LANE(fe64_mul(&x[j], &t[j], &u[j]));
    FE64_EACH_LANE(ok[j] = fe64_sqrt_ratio_finish(&x[j], &u[j], &v[j], sqrt_m1));
}

#endif
