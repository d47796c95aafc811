/* x25519fb.h - X25519 (RFC 7748) for many ephemeral secrets against one fixed recipient, by fixed-base tables.
 *
 * Per secret e: eph = X25519(e, 9) and shared = X25519(e, u), the same 32 octets libsodium gives, both as
 * fixed-base multiplications on Edwards25519 (the recipient u mapped by RFC 7748's birational map once, a
 * table of its multiples built once). Constant time in e. A u that does not map to a point of large order
 * (on the twist, of small order, u = -1) gets no table: the caller keeps its Montgomery ladder for it.
 */
#ifndef PGPB_X25519FB_H
#define PGPB_X25519FB_H

#include <stddef.h>
#include <stdint.h>

typedef struct x25519fb_table x25519fb_table;

/* Build the base point's table; 1 on success (module import, before any other call). */
int x25519fb_init(void);
/* The table of the X25519 public value U (32 octets; bit 255 ignored, u taken mod p as RFC 7748 says), or
 * NULL when U has none (see above) or memory ran out. Free with x25519fb_table_free. */
x25519fb_table *x25519fb_table_new(const uint8_t u[32]);
void x25519fb_table_free(x25519fb_table *table);
/* For each of the N 32-octet SECRETS[i]: SHARED + 32 i = X25519(SECRETS[i], u of TABLE), EPH + 32 i =
 * X25519(SECRETS[i], 9), OK[i] = 0 when that shared secret is all zero, else 1. */
void x25519fb_agree_many(uint8_t *shared, uint8_t *eph, uint8_t *ok, const x25519fb_table *table,
                         const uint8_t *const *secrets, size_t n);

#endif
