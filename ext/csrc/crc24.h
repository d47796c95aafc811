/* CRC-24 of OpenPGP ASCII armor (RFC 9580 §6.1): generator 0x864CFB, initial value 0xB704CE, MSB first. */
#ifndef PGPB_CRC24_H
#define PGPB_CRC24_H

#include <stddef.h>
#include <stdint.h>

#define PGPB_CRC24_INIT 0xB704CEu

/* Build the tables and folding constants; call once before any other function (module import). */
void pgpb_crc24_init(void);

/* Continue a CRC-24 over p[0..n): one-shot use passes PGPB_CRC24_INIT, incremental use passes the
 * previous result. Uses PCLMUL folding when the CPU has it (and it is not disabled), else slicing-by-8. */
uint32_t pgpb_crc24(uint32_t crc, const uint8_t *p, size_t n);

/* The portable slicing-by-8 path, always available. */
uint32_t pgpb_crc24_scalar(uint32_t crc, const uint8_t *p, size_t n);

/* 1 to allow the PCLMUL path (default when supported), 0 to force slicing-by-8; returns the state in use. */
int pgpb_crc24_use_pclmul(int enable);
int pgpb_crc24_pclmul_active(void);

#endif
