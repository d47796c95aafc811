/* wkdsel.c - see wkdsel.h. */
#define OPENSSL_SUPPRESS_DEPRECATED /* RSA_set0_key: what cryptography's RSAPublicNumbers uses too */
#include "wkdsel.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <string.h>

#define N_MD 5
static const int md_ids[N_MD] = {2, 11, 8, 9, 10}; /* SHA-1, SHA-224, SHA-256, SHA-384, SHA-512 */
static const size_t md_sizes[N_MD] = {20, 28, 32, 48, 64};
static const char *md_names[N_MD] = {"SHA1", "SHA224", "SHA256", "SHA384", "SHA512"};
static EVP_MD *mds[N_MD];
static EVP_MD_CTX *base, *work;
static int base_md = -1;
static unsigned long generation;

int wks_init(void) {
    for (int i = 0; i < N_MD; i++) {
        if (!mds[i]) mds[i] = EVP_MD_fetch(NULL, md_names[i], NULL);
        if (!mds[i]) return 0;
    }
    if (!base) base = EVP_MD_CTX_new();
    if (!work) work = EVP_MD_CTX_new();
    return base && work;
}

int wks_md_index(int halg) {
    for (int i = 0; i < N_MD; i++)
        if (md_ids[i] == halg) return i;
    return -1;
}

int wks_md_index_by_size(size_t len) {
    for (int i = 0; i < N_MD; i++)
        if (md_sizes[i] == len) return i;
    return -1;
}

unsigned long wks_prefix(int md, const uint8_t *prefix, size_t len) {
    base_md = -1;
    if (++generation == 0) generation = 1;
    if (md < 0 || md >= N_MD || EVP_DigestInit_ex2(base, mds[md], NULL) != 1) return 0;
    if (EVP_DigestUpdate(base, prefix, len) != 1) return 0;
    base_md = md;
    return generation;
}

unsigned long wks_prefix_generation(void) { return generation; }

int wks_finish(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, const uint8_t *c, size_t clen,
               const uint8_t *d, size_t dlen, uint8_t *out) {
    unsigned int len = 0;
    if (base_md < 0 || EVP_MD_CTX_copy_ex(work, base) != 1) return -1;
    if ((alen && EVP_DigestUpdate(work, a, alen) != 1) || (blen && EVP_DigestUpdate(work, b, blen) != 1) ||
        (clen && EVP_DigestUpdate(work, c, clen) != 1) || (dlen && EVP_DigestUpdate(work, d, dlen) != 1) ||
        EVP_DigestFinal_ex(work, out, &len) != 1)
        return -1;
    return (int)len;
}

int wks_sha1(const uint8_t *in, size_t n, uint8_t *out) {
    unsigned int len = 0;
    return EVP_Digest(in, n, out, &len, mds[0], NULL) == 1 && len == 20;
}

void *wks_rsa_new(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen) {
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
    RSA *rsa = RSA_new();
    if (!bn || !be || !rsa || RSA_set0_key(rsa, bn, be, NULL) != 1) { /* rsa owns the numbers from here */
        BN_free(bn);
        BN_free(be);
        RSA_free(rsa);
        ERR_clear_error();
        return NULL;
    }
    return rsa;
}

void wks_rsa_free(void *key) { RSA_free((RSA *)key); }

/* The DER DigestInfo prefixes of RFC 8017 section 9.2 note 1 (parameters NULL), by digest index: what
 * OpenSSL's encode_pkcs1 puts before the digest. */
static const uint8_t di_sha1[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                  0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
static const uint8_t di_sha224[] = {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                                    0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c};
static const uint8_t di_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                                    0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t di_sha384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                                    0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
static const uint8_t di_sha512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                                    0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};
static const uint8_t *const di_prefix[N_MD] = {di_sha1, di_sha224, di_sha256, di_sha384, di_sha512};
static const size_t di_len[N_MD] = {sizeof di_sha1, sizeof di_sha224, sizeof di_sha256, sizeof di_sha384,
                                    sizeof di_sha512};

#define MAX_RSA_BYTES 2048 /* OPENSSL_RSA_MAX_MODULUS_BITS: OpenSSL refuses a larger modulus */

/* What EVP_PKEY_verify with RSA_PKCS1_PADDING decides (ossl_rsa_verify: RSA_public_decrypt with the
 * type 1 padding check, then the payload compared with the encoded DigestInfo), without the EVP context
 * made per call: the same public operation (RSA_public_decrypt: modulus and exponent limits, signature
 * below the modulus), then the whole block compared with the one encoding
 * 00 01 FF..FF (8 or more) 00 DigestInfo, the only block that check and compare accept. */
int wks_rsa_verify(void *key, int md, const uint8_t *sig, size_t siglen, const uint8_t *dig, size_t dlen) {
    RSA *rsa = (RSA *)key;
    uint8_t block[MAX_RSA_BYTES];
    if (md < 0 || md >= N_MD || dlen != md_sizes[md]) return 0;
    int num = RSA_size(rsa);
    size_t payload = di_len[md] + dlen;
    if (num <= 0 || (size_t)num != siglen || siglen > MAX_RSA_BYTES || siglen < payload + 11) {
        ERR_clear_error();
        return 0;
    }
    if (RSA_public_decrypt((int)siglen, sig, block, rsa, RSA_NO_PADDING) != num) {
        ERR_clear_error();
        return 0;
    }
    size_t pad_end = siglen - payload - 1; /* the 00 before the DigestInfo */
    if (block[0] != 0x00 || block[1] != 0x01 || block[pad_end] != 0x00) return 0;
    for (size_t i = 2; i < pad_end; i++)
        if (block[i] != 0xFF) return 0;
    return memcmp(block + pad_end + 1, di_prefix[md], di_len[md]) == 0 &&
           memcmp(block + pad_end + 1 + di_len[md], dig, dlen) == 0;
}
