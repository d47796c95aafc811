/* cfbmb.c - see cfbmb.h. */
#include "cfbmb.h"

#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "pgpcrypto.h"
#include "shani.h"

/* Messages in flight: AES-NI on Zen 3 starts two AESENC a cycle, each 4 cycles long (4 lanes: 7.1 us,
 * 8 lanes: 5.2 us per 25 KB message with AES-256). */
#define LANES 8

static int one_by_one(pgpb_cfb_job *jobs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        pgpb_cfb *s = pgpb_cfb_new(jobs[i].key, jobs[i].keylen, NULL, 0, 0);
        if (!s) return -1;
        int rc = jobs[i].len ? pgpb_cfb_update(s, jobs[i].data, jobs[i].len, jobs[i].data, 0) : 1;
        pgpb_cfb_free(s);
        if (rc != 1) return -1;
    }
    return 1;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

static const uint8_t SBOX[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
};

/* FIPS 197 section 5.2 key expansion into RK ((rounds + 1) * 16 octets; AES-NI takes them as they
 * are). Returns the number of rounds: 10, 12 or 14. */
static int expand_key(const uint8_t *key, size_t keylen, uint8_t *rk) {
    int nk = (int)keylen / 4, rounds = nk + 6, words = 4 * (rounds + 1);
    uint8_t rcon = 1;
    memcpy(rk, key, keylen);
    for (int i = nk; i < words; i++) {
        uint8_t t[4];
        memcpy(t, rk + 4 * (i - 1), 4);
        if (i % nk == 0) {
            uint8_t first = t[0];
            t[0] = SBOX[t[1]] ^ rcon;
            t[1] = SBOX[t[2]];
            t[2] = SBOX[t[3]];
            t[3] = SBOX[first];
            rcon = (uint8_t)((rcon << 1) ^ ((rcon & 0x80) ? 0x1b : 0));
        } else if (nk > 6 && i % nk == 4) {
            for (int j = 0; j < 4; j++) t[j] = SBOX[t[j]];
        }
        for (int j = 0; j < 4; j++) rk[4 * i + j] = rk[4 * (i - nk) + j] ^ t[j];
    }
    return rounds;
}

typedef struct {
    __m128i rk[15];
    __m128i feedback; /* the previous ciphertext block (the IV at first) */
    uint8_t *p;       /* next block */
    size_t blocks;    /* whole blocks left */
    size_t tail;      /* octets of the final partial block */
    size_t step;      /* 16, or 0 for an idle lane that encrypts into scratch */
} lane_t;

__attribute__((target("aes,sse4.1"))) static __m128i encrypt_block(const lane_t *l, __m128i s, int rounds) {
    s = _mm_xor_si128(s, l->rk[0]);
    for (int r = 1; r < rounds; r++) s = _mm_aesenc_si128(s, l->rk[r]);
    return _mm_aesenclast_si128(s, l->rk[rounds]);
}

/* The partial last block: keystream from the feedback, XORed into the remaining octets. */
__attribute__((target("aes,sse4.1"))) static void finish_tail(lane_t *l, int rounds) {
    if (!l->tail) return;
    uint8_t ks[16];
    _mm_storeu_si128((__m128i *)ks, encrypt_block(l, l->feedback, rounds));
    for (size_t i = 0; i < l->tail; i++) l->p[i] ^= ks[i];
}

/* Load the next job of KEYLEN from JOBS[*next..] into L (an idle lane when none is left); jobs shorter
 * than one block are finished here. Returns 1 when L got a job with whole blocks. */
__attribute__((target("aes,sse4.1"))) static int load_lane(lane_t *l, pgpb_cfb_job *jobs, size_t n, size_t *next,
                                                            size_t keylen, uint8_t *scratch, int rounds) {
    while (*next < n) {
        pgpb_cfb_job *j = &jobs[(*next)++];
        if (j->keylen != keylen) continue;
        expand_key(j->key, keylen, (uint8_t *)l->rk);
        l->feedback = _mm_setzero_si128();
        l->p = j->data;
        l->blocks = j->len / 16;
        l->tail = j->len % 16;
        l->step = 16;
        if (l->blocks) return 1;
        finish_tail(l, rounds);
    }
    memset(l->rk, 0, sizeof l->rk);
    l->feedback = _mm_setzero_si128();
    l->p = scratch;
    l->blocks = (size_t)-1;
    l->tail = 0;
    l->step = 0;
    return 0;
}

/* LANES CFB streams, one block of each per step, all with ROUNDS rounds (a constant where inlined). */
static inline __attribute__((always_inline, target("aes,sse4.1"))) void run_blocks_of(lane_t *L, size_t count,
                                                                                    const int rounds) {
    __m128i s[LANES];
    uint8_t *p[LANES];
    for (int i = 0; i < LANES; i++) s[i] = L[i].feedback, p[i] = L[i].p;
    for (size_t b = 0; b < count; b++) {
        for (int i = 0; i < LANES; i++) s[i] = _mm_xor_si128(s[i], L[i].rk[0]);
        for (int r = 1; r < rounds; r++)
            for (int i = 0; i < LANES; i++) s[i] = _mm_aesenc_si128(s[i], L[i].rk[r]);
        for (int i = 0; i < LANES; i++) {
            s[i] = _mm_xor_si128(_mm_aesenclast_si128(s[i], L[i].rk[rounds]), _mm_loadu_si128((const __m128i *)p[i]));
            _mm_storeu_si128((__m128i *)p[i], s[i]);
            p[i] += L[i].step;
        }
    }
    for (int i = 0; i < LANES; i++) {
        L[i].feedback = s[i], L[i].p = p[i];
        if (L[i].step) L[i].blocks -= count;
    }
}

__attribute__((target("aes,sse4.1"))) static void run_blocks(lane_t *L, size_t count, int rounds) {
    if (rounds == 14) run_blocks_of(L, count, 14);
    else if (rounds == 12) run_blocks_of(L, count, 12);
    else run_blocks_of(L, count, 10);
}

/* Every job of KEYLEN, LANES at a time; a lane that finishes takes the next job. */
__attribute__((target("aes,sse4.1"))) static void run_keylen(pgpb_cfb_job *jobs, size_t n, size_t keylen) {
    lane_t L[LANES];
    uint8_t scratch[LANES][16];
    int rounds = (int)keylen / 4 + 6, live = 0;
    size_t next = 0;
    for (int i = 0; i < LANES; i++) live += load_lane(&L[i], jobs, n, &next, keylen, scratch[i], rounds);
    while (live) {
        size_t count = (size_t)-1;
        for (int i = 0; i < LANES; i++)
            if (L[i].step && L[i].blocks < count) count = L[i].blocks;
        run_blocks(L, count, rounds);
        for (int i = 0; i < LANES; i++) {
            if (!L[i].step || L[i].blocks) continue;
            finish_tail(&L[i], rounds);
            live -= 1 - load_lane(&L[i], jobs, n, &next, keylen, scratch[i], rounds);
        }
    }
}

int pgpb_cfb_many_native(void) { return pgpb_cpu_has_aesni(); }

/* The MDC range of J (MDC: from J's first octet) hashed one 64-octet block ahead of J's AES-CFB, on one lane:
 * the SHA-1 chain runs in the shadow of the longer AES chain. The padding and the digest (after the range)
 * are done before the AES gets there. */
__attribute__((target("aes,sse4.1,sha,ssse3"))) static void cfb_sha1_fused(pgpb_cfb_job *j, const pgpb_hash_job *mdc) {
    lane_t l;
    int rounds = expand_key(j->key, j->keylen, (uint8_t *)l.rk);
    uint32_t st[8] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    uint32_t *states[1] = {st};
    __m128i s = _mm_setzero_si128();
    uint8_t *p = j->data, *end = j->data + j->len;
    for (size_t b = mdc->len / 64; b; b--) {
        const uint8_t *block[1] = {p};
        sha1_ni_lanes(1, states, block, 1);
        for (int k = 0; k < 4; k++, p += 16) {
            s = _mm_xor_si128(encrypt_block(&l, s, rounds), _mm_loadu_si128((const __m128i *)p));
            _mm_storeu_si128((__m128i *)p, s);
        }
    }
    sha_ni_finish(0, st, mdc->data, mdc->len, mdc->digest);
    for (; end - p >= 16; p += 16) {
        s = _mm_xor_si128(encrypt_block(&l, s, rounds), _mm_loadu_si128((const __m128i *)p));
        _mm_storeu_si128((__m128i *)p, s);
    }
    l.feedback = s;
    l.p = p;
    l.tail = (size_t)(end - p);
    finish_tail(&l, rounds);
    memset(&l, 0, sizeof l);
}

int pgpb_cfb_sha1_fused(pgpb_cfb_job *job, const pgpb_hash_job *mdc) {
    size_t k = job->keylen;
    if (!pgpb_cpu_has_aesni() || !pgpb_cpu_has_sha_ni() || (k != 16 && k != 24 && k != 32) || mdc->data != job->data ||
        mdc->len > job->len || mdc->digest < job->data + mdc->len || mdc->digest + 20 > job->data + job->len)
        return 0;
    cfb_sha1_fused(job, mdc);
    return 1;
}

/* RFC 3394 section 2.2.1 (index-based form): six passes over the 8-octet blocks, A carrying the
 * integrity register, t counting every step. One expanded key, one AES block per step. */
__attribute__((target("aes,sse4.1"))) static void key_wrap_ni(const uint8_t *kek, size_t keklen, const uint8_t *in,
                                                               size_t n, uint8_t *out) {
    lane_t l;
    int rounds = expand_key(kek, keklen, (uint8_t *)l.rk);
    size_t blocks = n / 8;
    uint8_t b[16];
    uint64_t t = 0;
    memset(b, 0xA6, 8);
    memcpy(out + 8, in, n);
    for (int j = 0; j < 6; j++) {
        for (size_t i = 1; i <= blocks; i++) {
            memcpy(b + 8, out + 8 * i, 8);
            _mm_storeu_si128((__m128i *)b, encrypt_block(&l, _mm_loadu_si128((const __m128i *)b), rounds));
            t++;
            for (int k = 0; k < 8; k++) b[7 - k] ^= (uint8_t)(t >> (8 * k));
            memcpy(out + 8 * i, b + 8, 8);
        }
    }
    memcpy(out, b, 8);
    memset(&l, 0, sizeof l);
    memset(b, 0, sizeof b);
}

int pgpb_aes_key_wrap_ni(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out) {
    if (!pgpb_cpu_has_aesni()) return 0;
    key_wrap_ni(kek, keklen, in, n, out);
    return 1;
}

static int longer_first(const void *a, const void *b) {
    size_t x = ((const pgpb_cfb_job *)a)->len, y = ((const pgpb_cfb_job *)b)->len;
    return x > y ? -1 : x < y;
}

int pgpb_cfb_encrypt_many(pgpb_cfb_job *jobs, size_t n) {
    int seen[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        size_t k = jobs[i].keylen;
        if (k != 16 && k != 24 && k != 32) return -1;
        seen[k / 8 - 2] = 1;
    }
    if (!pgpb_cpu_has_aesni()) return one_by_one(jobs, n);
    qsort(jobs, n, sizeof *jobs, longer_first); /* long ones side by side, short ones in their shadow */
    for (int k = 0; k < 3; k++)
        if (seen[k]) run_keylen(jobs, n, (size_t)(16 + 8 * k));
    return 1;
}

#else

int pgpb_cfb_many_native(void) { return 0; }

int pgpb_cfb_sha1_fused(pgpb_cfb_job *job, const pgpb_hash_job *mdc) {
    (void)job, (void)mdc;
    return 0;
}

int pgpb_aes_key_wrap_ni(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n, uint8_t *out) {
    (void)kek, (void)keklen, (void)in, (void)n, (void)out;
    return 0;
}

int pgpb_cfb_encrypt_many(pgpb_cfb_job *jobs, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (jobs[i].keylen != 16 && jobs[i].keylen != 24 && jobs[i].keylen != 32) return -1;
    return one_by_one(jobs, n);
}

#endif
