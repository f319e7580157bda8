/*
 * sha256: FIPS 180-4 SHA-256, self-contained (an extension links only libc,
 * json-c and the protocol library, not libcrypto).  Used to remember which
 * values an instance provided without keeping the values.
 */
#ifndef SECRETS_SHA256_H
#define SECRETS_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct secrets_sha256 {
	uint32_t h[8];
	uint64_t len;	 /* bytes hashed so far */
	uint8_t buf[64]; /* pending block */
	size_t nbuf;
};

void secrets_sha256_init(struct secrets_sha256 *c);
void secrets_sha256_update(struct secrets_sha256 *c, const void *data, size_t len);
/* Finish and write the digest as 64 lowercase hex digits + NUL into hex. */
void secrets_sha256_hex(struct secrets_sha256 *c, char hex[65]);

#endif
