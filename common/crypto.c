#include "crypto.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* 128 * r * N bytes for N=2^15, r=8 is 32 MiB; leave headroom. */
#define KDF_MAXMEM (64ULL * 1024 * 1024)
/* Cap on a passphrase file's first line. */
#define PASS_MAX 4096

static const char *ossl_reason(void)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "unknown openssl error";
}

int orchd_crypto_random(void *buf, size_t n, char *err, size_t errlen)
{
	if (n > (size_t)INT32_MAX || RAND_bytes(buf, (int)n) != 1)
		return orchd_set_err(err, errlen, "cannot get random bytes: %s", ossl_reason());
	return 0;
}

int orchd_kdf_params_new(struct orchd_kdf_params *kp, char *err, size_t errlen)
{
	kp->n = 1u << 15;
	kp->r = 8;
	kp->p = 1;
	return orchd_crypto_random(kp->salt, sizeof(kp->salt), err, errlen);
}

int orchd_crypto_derive(const struct orchd_kdf_params *kp, const char *pass, size_t passlen,
			struct orchd_crypto_key *key, char *err, size_t errlen)
{
	key->set = 0;
	if (kp->n < 2 || (kp->n & (kp->n - 1)) || kp->n > (1u << 22) || !kp->r || kp->r > 32 ||
	    !kp->p || kp->p > 16)
		return orchd_set_err(err, errlen,
				     "unsupported scrypt parameters N=%llu r=%llu p=%llu",
				     (unsigned long long)kp->n, (unsigned long long)kp->r,
				     (unsigned long long)kp->p);
	if (EVP_PBE_scrypt(pass, passlen, kp->salt, sizeof(kp->salt), kp->n, kp->r, kp->p,
			   KDF_MAXMEM, key->k, sizeof(key->k)) != 1) {
		OPENSSL_cleanse(key->k, sizeof(key->k));
		return orchd_set_err(err, errlen, "key derivation failed: %s", ossl_reason());
	}
	key->set = 1;
	return 0;
}

void orchd_crypto_key_clear(struct orchd_crypto_key *key)
{
	OPENSSL_cleanse(key->k, sizeof(key->k));
	key->set = 0;
}

void orchd_crypto_free_secret(char *pt, size_t len)
{
	if (!pt)
		return;
	OPENSSL_cleanse(pt, len + 1);
	free(pt);
}

char *orchd_b64_encode(const void *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

unsigned char *orchd_b64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s), pad = 0;
	unsigned char *out;
	int r;

	if (n % 4 || n > (size_t)INT32_MAX)
		return NULL;
	out = xmalloc(n / 4 * 3 + 1);
	r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	if (r < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts padding as zero bytes. */
	if (n && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	*len = (size_t)r - pad;
	return out;
}

int orchd_crypto_encrypt(const struct orchd_crypto_key *key, const void *aad, size_t aadlen,
			 const void *pt, size_t ptlen, char **nonce_b64, char **ct_b64, char *err,
			 size_t errlen)
{
	unsigned char nonce[ORCHD_CRYPTO_NONCE_LEN];
	unsigned char *ct = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	int len, ret = -1;
	size_t off;

	*nonce_b64 = *ct_b64 = NULL;
	if (!key->set)
		return orchd_set_err(err, errlen, "no encryption key");
	if (ptlen > (size_t)INT32_MAX - 64 || aadlen > (size_t)INT32_MAX)
		return orchd_set_err(err, errlen, "secret value too large");
	if (orchd_crypto_random(nonce, sizeof(nonce), err, errlen))
		return -1;
	ct = xmalloc(ptlen + ORCHD_CRYPTO_TAG_LEN + 16);
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, sizeof(nonce), NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key->k, nonce) != 1 ||
	    (aadlen && EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1) ||
	    EVP_EncryptUpdate(ctx, ct, &len, pt, (int)ptlen) != 1) {
		orchd_set_err(err, errlen, "encryption failed: %s", ossl_reason());
		goto out;
	}
	off = (size_t)len;
	if (EVP_EncryptFinal_ex(ctx, ct + off, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ORCHD_CRYPTO_TAG_LEN,
				ct + off + (size_t)len) != 1) {
		orchd_set_err(err, errlen, "encryption failed: %s", ossl_reason());
		goto out;
	}
	off += (size_t)len + ORCHD_CRYPTO_TAG_LEN;
	*nonce_b64 = orchd_b64_encode(nonce, sizeof(nonce));
	*ct_b64 = orchd_b64_encode(ct, off);
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	free(ct);
	return ret;
}

int orchd_crypto_decrypt(const struct orchd_crypto_key *key, const void *aad, size_t aadlen,
			 const char *nonce_b64, const char *ct_b64, char **pt, size_t *ptlen,
			 char *err, size_t errlen)
{
	unsigned char *nonce = NULL, *ct = NULL, *out = NULL;
	size_t nlen = 0, clen = 0, off = 0;
	EVP_CIPHER_CTX *ctx = NULL;
	int len, ret = -1;

	*pt = NULL;
	*ptlen = 0;
	if (!key->set)
		return orchd_set_err(err, errlen, "no encryption key");
	nonce = orchd_b64_decode(nonce_b64, &nlen);
	ct = orchd_b64_decode(ct_b64, &clen);
	if (!nonce || !ct || nlen != ORCHD_CRYPTO_NONCE_LEN || clen < ORCHD_CRYPTO_TAG_LEN ||
	    aadlen > (size_t)INT32_MAX) {
		orchd_set_err(err, errlen, "malformed encrypted value");
		goto out;
	}
	clen -= ORCHD_CRYPTO_TAG_LEN;
	out = xmalloc(clen + 16 + 1);
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)nlen, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key->k, nonce) != 1 ||
	    (aadlen && EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1) ||
	    EVP_DecryptUpdate(ctx, out, &len, ct, (int)clen) != 1) {
		orchd_set_err(err, errlen, "decryption failed: %s", ossl_reason());
		goto out;
	}
	off = (size_t)len;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ORCHD_CRYPTO_TAG_LEN, ct + clen) != 1 ||
	    EVP_DecryptFinal_ex(ctx, out + off, &len) != 1) {
		ERR_clear_error();
		orchd_set_err(err, errlen, "authentication failed");
		goto out;
	}
	off += (size_t)len;
	out[off] = '\0';
	*pt = (char *)out;
	*ptlen = off;
	out = NULL;
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (out) {
		OPENSSL_cleanse(out, clen + 16 + 1);
		free(out);
	}
	free(nonce);
	free(ct);
	return ret;
}

const char *const orchd_passphrase_vars[4] = {"ORCHD_PASSPHRASE", "ORCHD_PASSPHRASE_FILE",
					      "PULUMI_CONFIG_PASSPHRASE",
					      "PULUMI_CONFIG_PASSPHRASE_FILE"};

/* The passphrase read by orchd_crypto_passphrase_load(). */
static struct {
	int loaded;
	char *pass; /* NULL: none */
	char err[512];
	const char *masked[3]; /* pass, and PULUMI_CONFIG_PASSPHRASE's value */
	char *pulumi;
} kept;

static int read_passphrase(char **out, char *err, size_t errlen);

const char *orchd_crypto_passphrase_load(void)
{
	if (kept.loaded)
		return kept.pass;
	if (read_passphrase(&kept.pass, kept.err, sizeof(kept.err)) == 0)
		kept.err[0] = '\0';
	kept.loaded = 1;
	if (getenv("PULUMI_CONFIG_PASSPHRASE") && *getenv("PULUMI_CONFIG_PASSPHRASE"))
		kept.pulumi = xstrdup(getenv("PULUMI_CONFIG_PASSPHRASE"));
	/* overwrite the values in the environment block itself: unsetenv()
	 * alone leaves them readable in /proc/PID/environ */
	for (size_t i = 0; i < ARRAY_SIZE(orchd_passphrase_vars); i++) {
		const char *name = orchd_passphrase_vars[i];
		size_t nl = strlen(name);

		if (strstr(name, "_FILE"))
			continue; /* a path, needed later; the file is hidden */
		for (char **e = environ; e && *e; e++)
			if (!strncmp(*e, name, nl) && (*e)[nl] == '=')
				OPENSSL_cleanse(*e + nl + 1, strlen(*e + nl + 1));
		unsetenv(name);
	}
	if (kept.pass)
		kept.masked[0] = kept.pass;
	if (kept.pulumi)
		kept.masked[kept.pass ? 1 : 0] = kept.pulumi;
	return kept.pass;
}

const char *const *orchd_crypto_masked(void)
{
	orchd_crypto_passphrase_load();
	return kept.masked;
}

int orchd_crypto_passphrase(char **out, char *err, size_t errlen)
{
	if (!kept.loaded)
		return read_passphrase(out, err, errlen);
	*out = NULL;
	if (kept.err[0])
		return orchd_set_err(err, errlen, "%s", kept.err);
	if (kept.pass)
		*out = xstrdup(kept.pass);
	return 0;
}

static int read_passphrase(char **out, char *err, size_t errlen)
{
	const char *v = getenv("ORCHD_PASSPHRASE");
	const char *path;
	char buf[PASS_MAX + 2];
	size_t n;
	FILE *f;

	*out = NULL;
	if (v && *v) {
		*out = xstrdup(v);
		return 0;
	}
	path = getenv("ORCHD_PASSPHRASE_FILE");
	if (!path || !*path)
		return 0;
	f = fopen(path, "re");
	if (!f)
		return orchd_set_err(err, errlen, "cannot read passphrase file %s: %s", path,
				     strerror(errno));
	if (!fgets(buf, sizeof(buf), f)) {
		int e = ferror(f) ? errno : 0;

		fclose(f);
		if (e)
			return orchd_set_err(err, errlen, "cannot read passphrase file %s: %s",
					     path, strerror(e));
		return 0; /* empty file: no passphrase */
	}
	fclose(f);
	n = strlen(buf);
	if (n > PASS_MAX) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return orchd_set_err(err, errlen,
				     "passphrase file %s: first line longer than %d bytes", path,
				     PASS_MAX);
	}
	if (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n)
		*out = xstrdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}
