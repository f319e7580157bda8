#include "hash.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

struct orchd_sha256 {
	EVP_MD_CTX *ctx;
};

struct orchd_sha256 *orchd_sha256_new(void)
{
	struct orchd_sha256 *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || orchd_sha256_reset(h) < 0) {
		orchd_sha256_free(h);
		return NULL;
	}
	return h;
}

int orchd_sha256_reset(struct orchd_sha256 *h)
{
	return EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

int orchd_sha256_update(struct orchd_sha256 *h, const void *data, size_t len)
{
	return EVP_DigestUpdate(h->ctx, data, len) == 1 ? 0 : -1;
}

int orchd_sha256_final(struct orchd_sha256 *h, char hex[ORCHD_SHA256_HEXSZ])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	if (EVP_DigestFinal_ex(h->ctx, md, &mdlen) != 1 || mdlen * 2 != ORCHD_SHA256_HEXLEN)
		return -1;
	for (i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[ORCHD_SHA256_HEXLEN] = '\0';
	return 0;
}

void orchd_sha256_free(struct orchd_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int orchd_sha256_hex(const void *data, size_t len, char hex[ORCHD_SHA256_HEXSZ])
{
	struct orchd_sha256 *h = orchd_sha256_new();
	int ret = -1;

	if (h && orchd_sha256_update(h, data, len) == 0 && orchd_sha256_final(h, hex) == 0)
		ret = 0;
	orchd_sha256_free(h);
	return ret;
}

int orchd_sha256_file(const char *path, char hex[ORCHD_SHA256_HEXSZ], char *err, size_t errlen)
{
	struct orchd_sha256 *h;
	char buf[65536];
	ssize_t n;
	int fd, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	h = orchd_sha256_new();
	if (!h) {
		snprintf(err, errlen, "cannot hash '%s': out of memory", path);
		close(fd);
		return -1;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (orchd_sha256_update(h, buf, (size_t)n) < 0)
			goto hash_failed;
	}
	if (orchd_sha256_final(h, hex) < 0)
		goto hash_failed;
	ret = 0;
	goto out;
hash_failed:
	snprintf(err, errlen, "cannot hash '%s': libcrypto failure", path);
out:
	orchd_sha256_free(h);
	close(fd);
	return ret;
}

int orchd_sha256_valid(const char *s)
{
	size_t i;

	if (!s)
		return 0;
	for (i = 0; i < ORCHD_SHA256_HEXLEN; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return s[i] == '\0';
}

int orchd_sha256_equal(const char *a, const char *b)
{
	return orchd_sha256_valid(a) && orchd_sha256_valid(b) &&
	       strncasecmp(a, b, ORCHD_SHA256_HEXLEN) == 0;
}
