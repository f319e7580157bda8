/*
 * hash: SHA-256 as lowercase hex, through OpenSSL's EVP interface.
 *
 * Used by the download cache (content addressed by sha256) and available
 * to the core for configuration hashes.  Functions return 0 on success and
 * -1 on failure; the ones that can fail for a reason worth reporting take a
 * caller buffer `err` of `errlen` bytes that receives a lowercase message
 * without a final full stop (no global error state, nothing printed).
 */
#ifndef ORCHD_HASH_H
#define ORCHD_HASH_H

#include <stddef.h>

#define ORCHD_SHA256_HEXLEN 64
/* Size of a buffer holding a hex digest and its NUL. */
#define ORCHD_SHA256_HEXSZ (ORCHD_SHA256_HEXLEN + 1)

/* Streaming context; opaque.  Create with _new, free with _free. */
struct orchd_sha256;

/* NULL on allocation failure. */
struct orchd_sha256 *orchd_sha256_new(void);
/* Start over (forget everything fed so far).  0 or -1. */
int orchd_sha256_reset(struct orchd_sha256 *h);
int orchd_sha256_update(struct orchd_sha256 *h, const void *data, size_t len);
/* Write the digest of everything fed since the last reset into hex (NUL
 * terminated).  The context must be reset before it is fed again. */
int orchd_sha256_final(struct orchd_sha256 *h, char hex[ORCHD_SHA256_HEXSZ]);
void orchd_sha256_free(struct orchd_sha256 *h);

/* One-shot digest of a memory buffer. */
int orchd_sha256_hex(const void *data, size_t len, char hex[ORCHD_SHA256_HEXSZ]);
/* Digest of a file's contents; err names the file. */
int orchd_sha256_file(const char *path, char hex[ORCHD_SHA256_HEXSZ], char *err, size_t errlen);

/* 1 if s is exactly 64 hex digits (either case), else 0. */
int orchd_sha256_valid(const char *s);
/* Compare two hex digests ignoring case; 1 if equal. */
int orchd_sha256_equal(const char *a, const char *b);

#endif
