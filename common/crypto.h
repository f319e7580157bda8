/*
 * crypto: secrets at rest.  AES-256-GCM (OpenSSL EVP) with a random 96-bit
 * nonce per value, a 256-bit key derived from a passphrase with scrypt
 * (EVP_PBE_scrypt), base64 (EVP_EncodeBlock) for storage in JSON.
 *
 * Nothing here touches files except orchd_crypto_passphrase() (which may
 * read ORCHD_PASSPHRASE_FILE).  The state engine decides where salts, key
 * check values and ciphertexts live (see orchestrator/interfaces/STATE.md).
 *
 * Errors: every function returns 0, or -1 with a message (lowercase, no
 * full stop) written to the caller's buffer `err` of `errlen` bytes.
 * Decryption failure (wrong key, tampered data, wrong associated data) is
 * reported as "authentication failed" and never returns partial plaintext.
 *
 * Key material: callers keep keys in a struct orchd_crypto_key and wipe it
 * with orchd_crypto_key_clear() (OPENSSL_cleanse) when done.  Plaintext
 * buffers returned by orchd_crypto_decrypt() are the caller's: wipe them
 * with orchd_crypto_free_secret().
 */
#ifndef ORCHD_CRYPTO_H
#define ORCHD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define ORCHD_CRYPTO_KEY_LEN   32
#define ORCHD_CRYPTO_NONCE_LEN 12
#define ORCHD_CRYPTO_TAG_LEN   16
#define ORCHD_CRYPTO_SALT_LEN  16

struct orchd_crypto_key {
	unsigned char k[ORCHD_CRYPTO_KEY_LEN];
	int set;
};

/* scrypt parameters, stored beside the salt so they can change later. */
struct orchd_kdf_params {
	unsigned char salt[ORCHD_CRYPTO_SALT_LEN];
	uint64_t n; /* CPU/memory cost, a power of 2 */
	uint64_t r;
	uint64_t p;
};

/* Default parameters (N=2^15, r=8, p=1: OWASP's scrypt minimum) and a
 * fresh random salt. */
int orchd_kdf_params_new(struct orchd_kdf_params *kp, char *err, size_t errlen);

int orchd_crypto_derive(const struct orchd_kdf_params *kp, const char *pass, size_t passlen,
			struct orchd_crypto_key *key, char *err, size_t errlen);
void orchd_crypto_key_clear(struct orchd_crypto_key *key);

int orchd_crypto_random(void *buf, size_t n, char *err, size_t errlen);

/*
 * Encrypt pt (ptlen bytes) bound to aad (aadlen bytes).  On success
 * *nonce_b64 and *ct_b64 are malloc'ed NUL-terminated base64 strings (the
 * caller frees them); ct carries the ciphertext followed by the 16-byte tag.
 */
int orchd_crypto_encrypt(const struct orchd_crypto_key *key, const void *aad, size_t aadlen,
			 const void *pt, size_t ptlen, char **nonce_b64, char **ct_b64, char *err,
			 size_t errlen);
/*
 * Decrypt; on success *pt is a malloc'ed buffer of *ptlen bytes plus a NUL
 * terminator (not counted), to be released with orchd_crypto_free_secret().
 */
int orchd_crypto_decrypt(const struct orchd_crypto_key *key, const void *aad, size_t aadlen,
			 const char *nonce_b64, const char *ct_b64, char **pt, size_t *ptlen,
			 char *err, size_t errlen);
/* Wipe and free a plaintext buffer of len bytes (+ NUL). NULL is fine. */
void orchd_crypto_free_secret(char *pt, size_t len);

/* Base64 (standard alphabet, padded).  encode never fails (malloc'ed);
 * decode returns a malloc'ed buffer and its length, or NULL if invalid. */
char *orchd_b64_encode(const void *data, size_t len);
unsigned char *orchd_b64_decode(const char *s, size_t *len);

/*
 * The passphrase from the environment: ORCHD_PASSPHRASE, else the first
 * line of the file named by ORCHD_PASSPHRASE_FILE (trailing "\n" or "\r\n"
 * stripped).  *out is a malloc'ed string (wipe with orchd_crypto_free_secret)
 * or NULL when neither is set or the value is empty; -1 only when the file
 * cannot be read.
 */
int orchd_crypto_passphrase(char **out, char *err, size_t errlen);

/*
 * Read the passphrase once (as above), keep it for every later
 * orchd_crypto_passphrase() of this process, and scrub it from the
 * process's environment (PULUMI_CONFIG_PASSPHRASE too): the bytes of ORCHD_PASSPHRASE's value are
 * overwritten where the kernel shows them (/proc/PID/environ), then the
 * variable is unset, so that no child can inherit it.  orchd calls it first
 * thing; a file that cannot be read is reported by the later calls.
 * Returns the passphrase (borrowed, NULL when none) for the masker.
 */
const char *orchd_crypto_passphrase_load(void);
/* The passphrase values orchd knows of (the passphrase, and the value of
 * PULUMI_CONFIG_PASSPHRASE, scrubbed the same way), NULL-terminated: the
 * masker hides them everywhere. */
const char *const *orchd_crypto_masked(void);
/* The variables that carry a passphrase or its file: never passed to an
 * extension (pass_env naming one is a configuration error). */
extern const char *const orchd_passphrase_vars[4];

#endif
