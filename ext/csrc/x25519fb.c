/* x25519fb.c - fixed-base X25519 for one recipient and many ephemeral secrets (see x25519fb.h).
 *
 * A table holds j * 256^i * P in affine form (y + x, y - x, 2dxy) for i < 32, 1 <= j <= 8. The clamped
 * scalar is recoded into 64 signed radix-16 digits in [-8, 8]; [e]P is the sum of the odd digits' entries,
 * times 16, plus the even digits' entries: 64 mixed additions and 4 doublings. The u-coordinate of the
 * Edwards point (X : Y : Z) is (Z + Y) / (Z - Y); the sign of x, lost when u is mapped, does not change it.
 *
 * Constant time in the secret: the recoding is arithmetic without branches; each digit's entry is chosen by
 * reading all 8 entries of its row and keeping one with masks, its negation applied by a mask; the addition
 * formula is complete (no exceptional cases, so no branch on the points), the field operations of
 * fe25519.h have no value-dependent branches or indexes, and the inversion is a fixed exponentiation chain.
 * The buffers derived from the secret are wiped with OPENSSL_cleanse.
 */
#include "x25519fb.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "fe25519.h"

#define ROWS 32
#define COLS 8

struct x25519fb_table {
    ge_affine row[ROWS][COLS];
};

static fe FB_D, FB_D2, FB_SQRT_M1;
static x25519fb_table *BASE;

/* ---- tables of public points (from_montgomery branches on the point) ----------------------------- */

/* p + q (add-2008-hwcd-3, a = -1) from q's y + x, y - x, 2dxy (scaled by its Z) and D = 2 Z_p Z_q.
 * Complete for a = -1 and non-square d: no exceptional inputs (equal points, the identity), so no branch
 * either; add_affine uses it on secret-dependent points. */
static inline void add_core(ge_p1p1 *r, const ge_p3 *p, const fe *ypx, const fe *ymx, const fe *t2d,
                            const fe *d) {
    fe a, b, c, t;
    fe_sub(&t, &p->Y, &p->X);
    fe_mul(&a, &t, ymx);
    fe_add(&t, &p->Y, &p->X);
    fe_mul(&b, &t, ypx);
    fe_mul(&c, &p->T, t2d);
    fe_sub(&r->X, &b, &a);
    fe_add(&r->Y, &b, &a);
    fe_add(&r->Z, d, &c);
    fe_sub(&r->T, d, &c);
}

/* p + q, q as (Y + X, Y - X, 2Z, 2dT). */
static void add_cached(ge_p1p1 *r, const ge_p3 *p, const ge_cached *q) {
    fe d;
    fe_mul(&d, &p->Z, &q->z2);
    add_core(r, p, &q->ypx, &q->ymx, &q->t2d, &d);
}

static void dbl_p3(ge_p3 *r, const ge_p3 *p) {
    ge_p2 q = {p->X, p->Y, p->Z};
    ge_p1p1 t;
    ge_dbl(&t, &q);
    p1p1_to_p3(r, &t);
}

/* The Edwards point of Montgomery u (y = (u - 1) / (u + 1), either x); 0 when there is none of large order. */
static int from_montgomery(ge_p3 *r, const uint8_t u_bytes[32]) {
    fe u, num, den, yy, t, one = {{1, 0, 0, 0, 0}};
    fe_frombytes(&u, u_bytes); /* bit 255 dropped; arithmetic is mod p, so u >= p acts as u - p */
    fe_add(&den, &u, &one);
    if (fe_iszero(&den)) return 0; /* u = -1: no Edwards point */
    fe_sub(&num, &u, &one);
    fe_invert(&t, &den);
    fe_mul(&r->Y, &num, &t);
    fe_sq(&yy, &r->Y);
    fe_mul(&den, &yy, &FB_D);
    fe_sub(&num, &yy, &one);  /* y^2 - 1 */
    fe_add(&den, &den, &one); /* d y^2 + 1 */
    if (!fe_sqrt_ratio(&r->X, &num, &den, &FB_SQRT_M1)) return 0; /* u on the twist */
    r->Z = one;
    fe_mul(&r->T, &r->X, &r->Y);
    ge_p3 q;
    dbl_p3(&q, r);
    dbl_p3(&q, &q);
    dbl_p3(&q, &q);
    return !fe_iszero(&q.X); /* [8]P of a small-order P is the identity, X = 0 (and only then) */
}

/* Fill TABLE from P: the 256 multiples in extended form (PTS), then all to affine with one inversion
 * (PREFIX: running products of the Z). */
static void build(x25519fb_table *table, const ge_p3 *p, ge_p3 *pts, fe *prefix) {
    ge_p3 q = *p;
    ge_p1p1 t;
    ge_cached qc;
    for (int i = 0; i < ROWS; i++) {
        ge_p3 *row = &pts[i * COLS];
        row[0] = q;
        ge_p3_to_cached(&qc, &q, &FB_D2);
        for (int j = 1; j < COLS; j++) {
            add_cached(&t, &row[j - 1], &qc);
            p1p1_to_p3(&row[j], &t);
        }
        dbl_p3(&q, &row[COLS - 1]); /* 16 q */
        for (int k = 0; k < 4; k++) dbl_p3(&q, &q);
    }
    prefix[0] = pts[0].Z;
    for (int i = 1; i < ROWS * COLS; i++) fe_mul(&prefix[i], &prefix[i - 1], &pts[i].Z);
    fe inv, zinv, x, y, xy;
    fe_invert(&inv, &prefix[ROWS * COLS - 1]);
    for (int i = ROWS * COLS - 1; i >= 0; i--) {
        if (i > 0) {
            fe_mul(&zinv, &inv, &prefix[i - 1]);
            fe_mul(&inv, &inv, &pts[i].Z);
        } else {
            zinv = inv;
        }
        ge_affine *e = &table->row[i / COLS][i % COLS];
        fe_mul(&x, &pts[i].X, &zinv);
        fe_mul(&y, &pts[i].Y, &zinv);
        fe_add(&e->ypx, &y, &x);
        fe_carry(&e->ypx);
        fe_sub(&e->ymx, &y, &x);
        fe_mul(&xy, &x, &y);
        fe_mul(&e->t2d, &xy, &FB_D2);
    }
}

x25519fb_table *x25519fb_table_new(const uint8_t u[32]) {
    ge_p3 p;
    if (!from_montgomery(&p, u)) return NULL;
    x25519fb_table *table = malloc(sizeof *table);
    ge_p3 *pts = malloc(ROWS * COLS * sizeof *pts);
    fe *prefix = malloc(ROWS * COLS * sizeof *prefix);
    if (table && pts && prefix) {
        build(table, &p, pts, prefix);
    } else {
        free(table);
        table = NULL;
    }
    free(pts);
    free(prefix);
    return table;
}

void x25519fb_table_free(x25519fb_table *table) {
    free(table);
}

int x25519fb_init(void) {
    static const uint8_t nine[32] = {9};
    if (BASE) return 1;
    fe_frombytes(&FB_D, FE_D_BYTES);
    fe_add(&FB_D2, &FB_D, &FB_D);
    fe_carry(&FB_D2);
    fe_frombytes(&FB_SQRT_M1, FE_SQRTM1_BYTES);
    BASE = x25519fb_table_new(nine);
    return BASE != NULL;
}

/* ---- constant time: the secret scalar -------------------------------------------------------------- */

/* The clamped SECRET (RFC 7748: bits 0-2 and 255 cleared, 254 set) as 64 digits in [-8, 8], sum d_i 16^i. */
static void recode(int8_t digit[64], const uint8_t secret[32]) {
    uint8_t a[32];
    memcpy(a, secret, 32);
    a[0] &= 248;
    a[31] = (uint8_t)((a[31] & 127) | 64);
    for (int i = 0; i < 32; i++) {
        digit[2 * i] = (int8_t)(a[i] & 15);
        digit[2 * i + 1] = (int8_t)(a[i] >> 4);
    }
    int8_t carry = 0; /* arithmetic only: digit + 8 >> 4 is the carry, no branch */
    for (int i = 0; i < 63; i++) {
        digit[i] = (int8_t)(digit[i] + carry);
        carry = (int8_t)((digit[i] + 8) >> 4);
        digit[i] = (int8_t)(digit[i] - (carry << 4));
    }
    digit[63] = (int8_t)(digit[63] + carry); /* at most 7 + 1: bit 255 is clear */
    OPENSSL_cleanse(a, sizeof a);
}

/* The entry of ROW for digit B in [-8, 8] (the identity for 0): all 8 entries are read and one is kept by
 * masks (the identity's mask is that of B = 0); a negative B negates it (swap y + x and y - x, negate 2dxy)
 * by mask. An entry is read as 15 words, a loop the compiler turns into vector operations. */
static void select_entry(ge_affine *r, const ge_affine row[COLS], int8_t b) {
    enum { WORDS = sizeof(ge_affine) / sizeof(uint64_t) };
    static const ge_affine identity = {{{1}}, {{1}}, {{0}}};
    uint64_t negative = (uint64_t)(int64_t)b >> 63;                                       /* 1 when b < 0 */
    uint64_t magnitude = (uint64_t)(((int64_t)b ^ -(int64_t)negative) + (int64_t)negative); /* |b| */
    uint64_t *acc = (uint64_t *)r;
    const uint64_t *id = (const uint64_t *)&identity;
    uint64_t mask = 0 - ((magnitude - 1) >> 63); /* all ones when magnitude == 0 */
    for (int k = 0; k < WORDS; k++) acc[k] = id[k] & mask;
    for (uint64_t j = 0; j < COLS; j++) {
        const uint64_t *entry = (const uint64_t *)&row[j];
        mask = 0 - (((magnitude ^ (j + 1)) - 1) >> 63); /* all ones when magnitude == j + 1 */
        for (int k = 0; k < WORDS; k++) acc[k] |= entry[k] & mask;
    }
    mask = 0 - negative;
    for (int k = 0; k < 5; k++) {
        uint64_t swap = (r->ypx.v[k] ^ r->ymx.v[k]) & mask;
        r->ypx.v[k] ^= swap;
        r->ymx.v[k] ^= swap;
    }
    fe minus;
    fe_neg(&minus, &r->t2d);
    for (int k = 0; k < 5; k++) r->t2d.v[k] ^= mask & (r->t2d.v[k] ^ minus.v[k]);
}

/* p + q, q affine. */
static inline void add_affine(ge_p1p1 *r, const ge_p3 *p, const ge_affine *q) {
    fe d;
    fe_add(&d, &p->Z, &p->Z);
    add_core(r, p, &q->ypx, &q->ymx, &q->t2d, &d);
}

/* Temporaries of multiply2 that depend on the secret, wiped once at its end. */
typedef struct {
    ge_affine e, f;
    ge_p1p1 t, u;
    ge_p2 q, w;
} scratch;

/* R += the base table's entries, S += TABLE's, for the digits FIRST, FIRST + 2, ... (row i / 2 for digit i);
 * the two chains are interleaved so that the processor overlaps them. */
static void add_digits(ge_p3 *r, ge_p3 *s, const x25519fb_table *table, const int8_t digit[64], int first,
                       scratch *x) {
    for (int i = first; i < 64; i += 2) {
        select_entry(&x->e, BASE->row[i / 2], digit[i]);
        select_entry(&x->f, table->row[i / 2], digit[i]);
        add_affine(&x->t, r, &x->e);
        add_affine(&x->u, s, &x->f);
        p1p1_to_p3(r, &x->t);
        p1p1_to_p3(s, &x->u);
    }
}

/* R = [16] R and S = [16] S. */
static void times16(ge_p3 *r, ge_p3 *s, scratch *x) {
    x->q = (ge_p2){r->X, r->Y, r->Z};
    x->w = (ge_p2){s->X, s->Y, s->Z};
    for (int k = 0; k < 3; k++) {
        ge_dbl(&x->t, &x->q);
        ge_dbl(&x->u, &x->w);
        p1p1_to_p2(&x->q, &x->t);
        p1p1_to_p2(&x->w, &x->u);
    }
    ge_dbl(&x->t, &x->q);
    ge_dbl(&x->u, &x->w);
    p1p1_to_p3(r, &x->t);
    p1p1_to_p3(s, &x->u);
}

/* R = [sum digit_i 16^i] of the base point, S = the same of the table's point: the odd digits' entries,
 * times 16, plus the even digits' entries. */
static void multiply2(ge_p3 *r, ge_p3 *s, const x25519fb_table *table, const int8_t digit[64]) {
    static const ge_p3 identity = {{{0}}, {{1}}, {{1}}, {{0}}};
    scratch x;
    *r = identity;
    *s = identity;
    add_digits(r, s, table, digit, 1, &x);
    times16(r, s, &x);
    add_digits(r, s, table, digit, 0, &x);
    OPENSSL_cleanse(&x, sizeof x);
}

#define CHUNK 32 /* messages whose conversions share one inversion */

/* u-coordinates of N <= CHUNK points given as (Z + Y) / (Z - Y): NUM[i] / DEN[i] into OUT[i], by one
 * inversion of the product of the DEN (Montgomery's trick; PREFIX is scratch). A zero DEN (the identity)
 * would make every output 0: it does not occur for points of large order and clamped scalars. */
static void to_u_batch(uint8_t (*out)[32], const fe *num, const fe *den, fe *prefix, size_t n) {
    fe inv, t;
    prefix[0] = den[0];
    for (size_t i = 1; i < n; i++) fe_mul(&prefix[i], &prefix[i - 1], &den[i]);
    fe_invert(&inv, &prefix[n - 1]);
    for (size_t i = n; i-- > 0;) {
        if (i > 0) { /* i: public loop index */
            fe_mul(&t, &inv, &prefix[i - 1]);
            fe_mul(&inv, &inv, &den[i]);
        } else {
            t = inv;
        }
        fe_mul(&t, &t, &num[i]);
        fe_tobytes(out[i], &t);
    }
    OPENSSL_cleanse(&inv, sizeof inv);
    OPENSSL_cleanse(&t, sizeof t);
}

/* Up to CHUNK messages of x25519fb_agree_many. */
static void agree_chunk(uint8_t *shared, uint8_t *eph, uint8_t *ok, const x25519fb_table *table,
                        const uint8_t *const *secrets, size_t n) {
    int8_t digit[64];
    ge_p3 a, s;
    fe num[2 * CHUNK], den[2 * CHUNK], prefix[2 * CHUNK];
    uint8_t out[2 * CHUNK][32];
    for (size_t i = 0; i < n; i++) {
        recode(digit, secrets[i]);
        multiply2(&a, &s, table, digit);
        fe_add(&num[2 * i], &a.Z, &a.Y);
        fe_sub(&den[2 * i], &a.Z, &a.Y);
        fe_add(&num[2 * i + 1], &s.Z, &s.Y);
        fe_sub(&den[2 * i + 1], &s.Z, &s.Y);
    }
    to_u_batch(out, num, den, prefix, 2 * n);
    for (size_t i = 0; i < n; i++) {
        uint8_t acc = 0;
        memcpy(eph + 32 * i, out[2 * i], 32);
        memcpy(shared + 32 * i, out[2 * i + 1], 32);
        for (int k = 0; k < 32; k++) acc |= out[2 * i + 1][k];
        ok[i] = acc != 0;
    }
    OPENSSL_cleanse(digit, sizeof digit);
    OPENSSL_cleanse(&a, sizeof a);
    OPENSSL_cleanse(&s, sizeof s);
    OPENSSL_cleanse(num, sizeof num);
    OPENSSL_cleanse(den, sizeof den);
    OPENSSL_cleanse(prefix, sizeof prefix);
    OPENSSL_cleanse(out, sizeof out);
}

void x25519fb_agree_many(uint8_t *shared, uint8_t *eph, uint8_t *ok, const x25519fb_table *table,
                         const uint8_t *const *secrets, size_t n) {
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        agree_chunk(shared + 32 * i, eph + 32 * i, ok + i, table, secrets + i, m);
    }
}
