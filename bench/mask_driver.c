/*
 * mask_driver: throughput of the secret masker (orchd_mask_apply), the
 * step every console line, log file line and report goes through.
 *
 *   mask_driver NSECRETS MIB
 *
 * registers NSECRETS secrets (32 hex digits each, the shape of a token, so
 * that they share their first bytes as real ones do; plus one PEM-like
 * multi-line secret), then masks MIB MiB of 80-byte log lines (hex, words
 * and digits; one line in 100 holds a secret) one line at a time, and
 * prints "secrets=N mib=M ms=T mib_per_s=R masked=K".  K, the number of
 * lines that changed, lets a caller check that two builds agree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/logging.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void hex(char *out, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++)
		out[i] = digits[next() % 16];
	out[n] = '\0';
}

int main(int argc, char **argv)
{
	long nsec = argc > 1 ? atol(argv[1]) : 1000, mib = argc > 2 ? atol(argv[2]) : 64;
	struct orchd_mask *m = orchd_mask_new();
	char(*secrets)[33] = calloc((size_t)(nsec ? nsec : 1), sizeof(*secrets));
	char line[128];
	size_t total = (size_t)mib << 20, done = 0, masked = 0;
	struct timespec t0, t1;
	double ms;

	if (!m || !secrets)
		return 1;
	for (long i = 0; i < nsec; i++) {
		hex(secrets[i], 32);
		orchd_mask_add(m, secrets[i]);
	}
	orchd_mask_add(m,
		       "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned long n = 0; done < total; n++) {
		size_t len;
		char *r;

		if (nsec && n % 100 == 0)
			snprintf(line, sizeof(line),
				 "[db] token %s accepted by the api at step %lu",
				 secrets[next() % (uint64_t)nsec], n);
		else {
			char h[41];

			hex(h, 40);
			snprintf(line, sizeof(line), "[db] applying change %s to table %lu", h, n);
		}
		len = strlen(line);
		r = orchd_mask_apply(m, line, len, NULL);
		if (r) {
			masked++;
			free(r);
		}
		done += len + 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("secrets=%ld mib=%ld ms=%.0f mib_per_s=%.1f masked=%zu\n", nsec, mib, ms,
	       (double)mib / (ms / 1e3), masked);
	orchd_mask_free(m);
	free(secrets);
	return 0;
}
