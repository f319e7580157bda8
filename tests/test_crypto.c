#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "testutil.h"
#include "util.h"

/* One derivation for the whole suite (scrypt is deliberately slow). */
static struct orchd_kdf_params kp;
static struct orchd_crypto_key key, other;

static void setup_keys(void)
{
	char err[256];

	ck_assert_int_eq(orchd_kdf_params_new(&kp, err, sizeof(err)), 0);
	ck_assert_int_eq(orchd_crypto_derive(&kp, "correct horse", 13, &key, err, sizeof(err)), 0);
	ck_assert_int_eq(orchd_crypto_derive(&kp, "wrong horse", 11, &other, err, sizeof(err)), 0);
}

static void teardown_keys(void)
{
	orchd_crypto_key_clear(&key);
	orchd_crypto_key_clear(&other);
}

START_TEST(test_roundtrip)
{
	char err[256], *n64, *c64, *pt;
	size_t ptlen;
	struct orchd_crypto_key again;

	ck_assert(key.set);
	ck_assert_int_eq(orchd_crypto_encrypt(&key, "aad", 3, "hello secret", 12, &n64, &c64, err,
					      sizeof(err)),
			 0);
	ck_assert_ptr_null(strstr(c64, "hello"));
	ck_assert_int_eq(
		orchd_crypto_decrypt(&key, "aad", 3, n64, c64, &pt, &ptlen, err, sizeof(err)), 0);
	ck_assert_uint_eq(ptlen, 12);
	ck_assert_str_eq(pt, "hello secret");
	orchd_crypto_free_secret(pt, ptlen);
	/* The same passphrase and salt derive the same key. */
	ck_assert_int_eq(orchd_crypto_derive(&kp, "correct horse", 13, &again, err, sizeof(err)),
			 0);
	ck_assert_int_eq(memcmp(again.k, key.k, sizeof(key.k)), 0);
	orchd_crypto_key_clear(&again);
	ck_assert_int_eq(again.set, 0);
	free(n64);
	free(c64);
}
END_TEST

START_TEST(test_nonce_differs)
{
	char err[256], *n1, *c1, *n2, *c2;

	ck_assert_int_eq(orchd_crypto_encrypt(&key, "", 0, "v", 1, &n1, &c1, err, sizeof(err)), 0);
	ck_assert_int_eq(orchd_crypto_encrypt(&key, "", 0, "v", 1, &n2, &c2, err, sizeof(err)), 0);
	ck_assert_str_ne(n1, n2);
	ck_assert_str_ne(c1, c2);
	free(n1);
	free(c1);
	free(n2);
	free(c2);
}
END_TEST

START_TEST(test_wrong_key_tamper_aad)
{
	char err[256], *n64, *c64, *pt = NULL;
	size_t ptlen, len;
	unsigned char *raw;
	char *bad;

	ck_assert_int_eq(
		orchd_crypto_encrypt(&key, "stack-a", 7, "s3cret", 6, &n64, &c64, err, sizeof(err)),
		0);
	/* Wrong key. */
	ck_assert_int_eq(
		orchd_crypto_decrypt(&other, "stack-a", 7, n64, c64, &pt, &ptlen, err, sizeof(err)),
		-1);
	ck_assert_str_eq(err, "authentication failed");
	ck_assert_ptr_null(pt);
	/* Other associated data. */
	ck_assert_int_eq(
		orchd_crypto_decrypt(&key, "stack-b", 7, n64, c64, &pt, &ptlen, err, sizeof(err)),
		-1);
	ck_assert_str_eq(err, "authentication failed");
	/* One bit flipped in the ciphertext. */
	raw = orchd_b64_decode(c64, &len);
	ck_assert_ptr_nonnull(raw);
	raw[0] ^= 1;
	bad = orchd_b64_encode(raw, len);
	ck_assert_int_eq(
		orchd_crypto_decrypt(&key, "stack-a", 7, n64, bad, &pt, &ptlen, err, sizeof(err)),
		-1);
	ck_assert_str_eq(err, "authentication failed");
	/* Not base64 at all. */
	ck_assert_int_eq(
		orchd_crypto_decrypt(&key, "stack-a", 7, n64, "%%%", &pt, &ptlen, err, sizeof(err)),
		-1);
	ck_assert_str_eq(err, "malformed encrypted value");
	free(raw);
	free(bad);
	free(n64);
	free(c64);
}
END_TEST

START_TEST(test_b64)
{
	const char *in[] = {"", "a", "ab", "abc", "abcd", "abcde"};

	for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
		char *e = orchd_b64_encode(in[i], strlen(in[i]));
		size_t len;
		unsigned char *d = orchd_b64_decode(e, &len);

		ck_assert_ptr_nonnull(d);
		ck_assert_uint_eq(len, strlen(in[i]));
		ck_assert_int_eq(memcmp(d, in[i], len), 0);
		free(e);
		free(d);
	}
	ck_assert_ptr_null(orchd_b64_decode("abc", &(size_t){0}));
}
END_TEST

START_TEST(test_passphrase_sources)
{
	char err[256], *p, *dir = test_tmpdir(), *file = xasprintf("%s/pass", dir);
	FILE *f;

	unsetenv("ORCHD_PASSPHRASE");
	unsetenv("ORCHD_PASSPHRASE_FILE");
	ck_assert_int_eq(orchd_crypto_passphrase(&p, err, sizeof(err)), 0);
	ck_assert_ptr_null(p);

	f = fopen(file, "w");
	fputs("from file\r\nsecond line\n", f);
	fclose(f);
	setenv("ORCHD_PASSPHRASE_FILE", file, 1);
	ck_assert_int_eq(orchd_crypto_passphrase(&p, err, sizeof(err)), 0);
	ck_assert_str_eq(p, "from file");
	orchd_crypto_free_secret(p, strlen(p));

	setenv("ORCHD_PASSPHRASE", "from env", 1);
	ck_assert_int_eq(orchd_crypto_passphrase(&p, err, sizeof(err)), 0);
	ck_assert_str_eq(p, "from env");
	orchd_crypto_free_secret(p, strlen(p));
	unsetenv("ORCHD_PASSPHRASE");

	free(file);
	file = xasprintf("%s/missing", dir);
	setenv("ORCHD_PASSPHRASE_FILE", file, 1);
	ck_assert_int_eq(orchd_crypto_passphrase(&p, err, sizeof(err)), -1);
	{
		char *want = xasprintf("cannot read passphrase file %s: No such file or directory",
				       file);

		ck_assert_str_eq(err, want);
		free(want);
	}
	unsetenv("ORCHD_PASSPHRASE_FILE");
	free(file);
	test_rmtree(dir);
	free(dir);
}
END_TEST

Suite *crypto_suite(void)
{
	Suite *s = suite_create("crypto");
	TCase *tc = tcase_create("crypto");

	tcase_add_unchecked_fixture(tc, setup_keys, teardown_keys);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_nonce_differs);
	tcase_add_test(tc, test_wrong_key_tamper_aad);
	tcase_add_test(tc, test_b64);
	tcase_add_test(tc, test_passphrase_sources);
	suite_add_tcase(s, tc);
	return s;
}
