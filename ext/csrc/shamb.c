/* shamb.c - see shamb.h. */
#include "shamb.h"

#include <stdlib.h>
#include <string.h>

#include "cpu.h"

#include "shani.h"

#ifdef PGPB_SHANI
#define PGPB_SHAMB_X86 1
#endif

#define MAX_LANES PGPB_SHA_MAX_LANES

#if defined(PGPB_SHANI) && SHANI_MAX_LANES < MAX_LANES
#error "shani.h has fewer lanes than shamb.h offers"
#endif

#ifdef PGPB_SHAMB_X86

typedef void (*blocks_fn)(uint32_t *const st[], const uint8_t *p[], size_t nblocks);

SHANI_TARGET static void sha1_x1(uint32_t *const st[], const uint8_t *p[], size_t n) { sha1_ni_lanes(1, st, p, n); }
SHANI_TARGET static void sha1_x2(uint32_t *const st[], const uint8_t *p[], size_t n) { sha1_ni_lanes(2, st, p, n); }
SHANI_TARGET static void sha1_x3(uint32_t *const st[], const uint8_t *p[], size_t n) { sha1_ni_lanes(3, st, p, n); }
SHANI_TARGET static void sha1_x4(uint32_t *const st[], const uint8_t *p[], size_t n) { sha1_ni_lanes(4, st, p, n); }
SHANI_TARGET static void sha256_x1(uint32_t *const st[], const uint8_t *p[], size_t n) { sha256_ni_lanes(1, st, p, n); }
SHANI_TARGET static void sha256_x2(uint32_t *const st[], const uint8_t *p[], size_t n) { sha256_ni_lanes(2, st, p, n); }
SHANI_TARGET static void sha256_x3(uint32_t *const st[], const uint8_t *p[], size_t n) { sha256_ni_lanes(3, st, p, n); }
SHANI_TARGET static void sha256_x4(uint32_t *const st[], const uint8_t *p[], size_t n) { sha256_ni_lanes(4, st, p, n); }

/* One hash: its initial state, its digest length, its block functions by lane count (index 0: 1 lane) and
 * the default lane count. On a Zen 3 (GB/s with 1, 2, 3, 4 lanes): SHA-1 1.66, 2.85, 3.6, 3.8; SHA-256
 * 1.57, 2.9, 3.1, 3.2. A lane's own speed falls as lanes are added, so where one message is much longer
 * than the rest (a mail batch with one big attachment) SHA-256 on two lanes finishes first (10.5 against
 * 12.1 us a message with four, on the bench archive); SHA-1 serves the MDCs, whose longest message
 * pgpb_cfb_mdc_many takes apart, so four. */
typedef struct {
    uint32_t iv[8];
    int words; /* digest words */
    blocks_fn run[MAX_LANES];
    int lanes;
} hash_kind;

static const hash_kind SHA1 = {
    {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u}, 5, {sha1_x1, sha1_x2, sha1_x3, sha1_x4}, 4};
static const hash_kind SHA256 = {
    {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au, 0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u},
    8,
    {sha256_x1, sha256_x2, sha256_x3, sha256_x4},
    2};

typedef struct {
    uint32_t st[8];
    const uint8_t *p; /* next whole block */
    size_t blocks;    /* whole blocks left */
    size_t job;
} lane_t;

/* Pad and hash the last partial block(s) of job J (its whole blocks done) and write its digest. */
static void finish(const hash_kind *h, lane_t *l, const pgpb_hash_job *j) {
    sha_ni_finish(h->words == 8, l->st, j->data, j->len, j->digest);
}

/* Give L the next job with whole blocks (jobs without any are finished here); 0 when none is left. */
static int load_lane(const hash_kind *h, lane_t *l, const pgpb_hash_job *jobs, size_t n, size_t *next) {
    while (*next < n) {
        l->job = (*next)++;
        memcpy(l->st, h->iv, sizeof l->st);
        l->p = jobs[l->job].data;
        l->blocks = jobs[l->job].len / 64;
        if (l->blocks) return 1;
        finish(h, l, &jobs[l->job]);
    }
    return 0;
}

/* Every job, LANES at a time: the live lanes run side by side as long as the shortest has whole blocks;
 * a lane that runs out is finished and takes the next job; the last ones run on fewer lanes. */
static void run_many(const hash_kind *h, const pgpb_hash_job *jobs, size_t n, int lanes) {
    lane_t L[MAX_LANES];
    int live = 0;
    size_t next = 0;
    while (live < lanes && load_lane(h, &L[live], jobs, n, &next)) live++;
    while (live) {
        uint32_t *st[MAX_LANES];
        const uint8_t *p[MAX_LANES];
        size_t count = (size_t)-1;
        for (int i = 0; i < live; i++) {
            st[i] = L[i].st;
            p[i] = L[i].p;
            if (L[i].blocks < count) count = L[i].blocks;
        }
        h->run[live - 1](st, p, count);
        for (int i = 0; i < live; i++) {
            L[i].p += 64 * count;
            L[i].blocks -= count;
        }
        for (int i = 0; i < live;) {
            if (L[i].blocks) {
                i++;
                continue;
            }
            finish(h, &L[i], &jobs[L[i].job]);
            if (!load_lane(h, &L[i], jobs, n, &next)) L[i] = L[--live];
        }
    }
}

int pgpb_sha_many_native(void) { return pgpb_cpu_has_sha_ni(); }

static int longer_first(const void *a, const void *b) {
    size_t x = ((const pgpb_hash_job *)a)->len, y = ((const pgpb_hash_job *)b)->len;
    return x > y ? -1 : x < y;
}

/* Longest first: a long message starts at once, the short ones run beside it (not alone after it). */
static int many(const hash_kind *h, pgpb_hash_job *jobs, size_t n, int lanes) {
    if (!pgpb_cpu_has_sha_ni() || lanes < 0 || lanes > MAX_LANES) return 0;
    qsort(jobs, n, sizeof *jobs, longer_first);
    run_many(h, jobs, n, lanes ? lanes : h->lanes);
    return 1;
}

int pgpb_sha1_many(pgpb_hash_job *jobs, size_t n, int lanes) { return many(&SHA1, jobs, n, lanes); }

int pgpb_sha256_many(pgpb_hash_job *jobs, size_t n, int lanes) { return many(&SHA256, jobs, n, lanes); }

#else

int pgpb_sha_many_native(void) { return 0; }

int pgpb_sha1_many(pgpb_hash_job *jobs, size_t n, int lanes) {
    (void)jobs, (void)n, (void)lanes;
    return 0;
}

int pgpb_sha256_many(pgpb_hash_job *jobs, size_t n, int lanes) {
    (void)jobs, (void)n, (void)lanes;
    return 0;
}

#endif
