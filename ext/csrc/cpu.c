/* Runtime CPU feature detection.
 *
 * cpuid leaf 1 / leaf 7 plus xgetbv(0) for the OS-enabled AVX state, computed once (the result cannot
 * change while the process runs, so a benign race on first use only repeats the same work). On every
 * non-x86 target each probe returns 0 and callers take their portable paths.
 */
#include "cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

#define F_SSSE3 1
#define F_AVX2 2
#define F_PCLMUL 4
#define F_SHA 8
#define F_AES 16
#define F_DONE 0x100

static volatile int pgpb_cpu_flags = 0;

static unsigned long long pgpb_xgetbv0(void)
{
    unsigned int eax, edx;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static int pgpb_cpu_probe(void)
{
    unsigned int a, b, c, d, max_leaf;
    int flags = F_DONE, sse41, os_avx = 0;

    max_leaf = __get_cpuid_max(0, 0);
    if (max_leaf < 1 || !__get_cpuid(1, &a, &b, &c, &d))
        return flags;
    sse41 = (c >> 19) & 1;
    if ((c >> 9) & 1)
        flags |= F_SSSE3;
    if (((c >> 1) & 1) && sse41)
        flags |= F_PCLMUL;
    if (((c >> 25) & 1) && sse41)
        flags |= F_AES;
    /* OSXSAVE (bit 27) and AVX (bit 28), then XCR0 must enable XMM and YMM state (bits 1, 2). */
    if (((c >> 27) & 1) && ((c >> 28) & 1))
        os_avx = (pgpb_xgetbv0() & 6) == 6;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if (os_avx && ((b >> 5) & 1))
            flags |= F_AVX2;
        if (((b >> 29) & 1) && sse41 && (flags & F_SSSE3))
            flags |= F_SHA;
    }
    return flags;
}

static int pgpb_cpu_get(void)
{
    int f = pgpb_cpu_flags;
    if (!f) {
        f = pgpb_cpu_probe();
        pgpb_cpu_flags = f;
    }
    return f;
}

int pgpb_cpu_has_ssse3(void) { return (pgpb_cpu_get() & F_SSSE3) != 0; }
int pgpb_cpu_has_avx2(void) { return (pgpb_cpu_get() & F_AVX2) != 0; }
int pgpb_cpu_has_pclmul(void) { return (pgpb_cpu_get() & F_PCLMUL) != 0; }
int pgpb_cpu_has_sha_ni(void) { return (pgpb_cpu_get() & F_SHA) != 0; }
int pgpb_cpu_has_aesni(void) { return (pgpb_cpu_get() & F_AES) != 0; }

#else

int pgpb_cpu_has_ssse3(void) { return 0; }
int pgpb_cpu_has_avx2(void) { return 0; }
int pgpb_cpu_has_pclmul(void) { return 0; }
int pgpb_cpu_has_sha_ni(void) { return 0; }
int pgpb_cpu_has_aesni(void) { return 0; }

#endif
