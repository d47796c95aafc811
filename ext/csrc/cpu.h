/* Runtime CPU feature detection for the hot paths (x86 cpuid + xgetbv; 0 everywhere else). */
#ifndef PGPB_CPU_H
#define PGPB_CPU_H

int pgpb_cpu_has_ssse3(void);
int pgpb_cpu_has_avx2(void);   /* AVX2 and the OS saves YMM state */
int pgpb_cpu_has_pclmul(void); /* PCLMULQDQ with SSE4.1 */
int pgpb_cpu_has_sha_ni(void); /* SHA extensions with SSE4.1 */
int pgpb_cpu_has_aesni(void);  /* AES-NI with SSE4.1 */

#endif
