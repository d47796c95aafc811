/* zbase32.c - z-base-32 encoding and decoding for whole bytes; see zbase32.h. */
#include "zbase32.h"

static const char ALPHABET[33] = "ybndrfg8ejkmcpqxot1uwisza345h769";

/* Value of each alphabet character, 0xFF for everything else (upper case included). */
static const uint8_t DECODE[256] = {
#define X 0xFF
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, /* 0x00 */
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, /* 0x10 */
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, /* 0x20 */
    /* '0'..'9': 1=18 3=25 4=26 5=27 6=30 7=29 8=7 9=31 */
    X, 18, X, 25, 26, 27, 30, 29, 7, 31, X, X, X, X, X, X, /* 0x30 */
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, /* 0x40 */
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, /* 0x50 */
    /* 'a'..'o': a=24 b=1 c=12 d=3 e=8 f=5 g=6 h=28 i=21 j=9 k=10 m=11 n=2 o=16 (l absent) */
    X, 24, 1, 12, 3, 8, 5, 6, 28, 21, 9, 10, X, 11, 2, 16, /* 0x60 */
    /* 'p'..'z': p=13 q=14 r=4 s=22 t=17 u=19 w=20 x=15 y=0 z=23 (v absent) */
    13, 14, 4, 22, 17, 19, X, 20, 15, 0, 23, X, X, X, X, X, /* 0x70 */
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
#undef X
};

/* Eight characters for the 40 bits of a group of five bytes. */
static inline void encode_group(uint64_t v, char *out)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = ALPHABET[v & 31];
        v >>= 5;
    }
}

void pgpb_zb32_encode(const uint8_t *in, size_t n, char *out)
{
    size_t full = n / 5;
    for (size_t g = 0; g < full; g++, in += 5, out += 8) {
        uint64_t v = ((uint64_t)in[0] << 32) | ((uint64_t)in[1] << 24) | ((uint64_t)in[2] << 16) |
                     ((uint64_t)in[3] << 8) | in[4];
        encode_group(v, out);
    }
    size_t rest = n % 5;
    if (rest) {
        char tmp[8];
        uint64_t v = 0;
        for (size_t i = 0; i < 5; i++)
            v = (v << 8) | (i < rest ? in[i] : 0);
        encode_group(v, tmp);
        size_t nchars = (rest * 8 + 4) / 5;
        for (size_t i = 0; i < nchars; i++)
            out[i] = tmp[i];
    }
}

void pgpb_zb32_encode20(const uint8_t in[20], char out[32])
{
    for (int g = 0; g < 4; g++, in += 5, out += 8) {
        uint64_t v = ((uint64_t)in[0] << 32) | ((uint64_t)in[1] << 24) | ((uint64_t)in[2] << 16) |
                     ((uint64_t)in[3] << 8) | in[4];
        encode_group(v, out);
    }
}

int pgpb_zb32_decode(const char *in, size_t n, uint8_t *out, size_t *err_pos)
{
    uint64_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t v = DECODE[(uint8_t)in[i]];
        if (v == 0xFF) {
            *err_pos = i;
            return PGPB_ZB32_BAD_CHAR;
        }
        acc = (acc << 5) | v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            *out++ = (uint8_t)(acc >> bits);
            acc &= ((uint64_t)1 << bits) - 1;
        }
    }
    size_t rest = n % 8; /* checked after the characters so a bad character is reported first */
    if (rest == 1 || rest == 3 || rest == 6)
        return PGPB_ZB32_BAD_LENGTH;
    if (acc != 0) { /* leftover (< 5) bits must be the encoder's zero fill */
        *err_pos = n - 1;
        return PGPB_ZB32_BAD_PADDING;
    }
    return PGPB_ZB32_OK;
}
