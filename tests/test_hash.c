/* Tests of common/hash: known SHA-256 vectors, streaming, files. */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "testutil.h"
#include "util.h"

static const char abc_sha[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char empty_sha[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

START_TEST(test_vectors)
{
	char hex[ORCHD_SHA256_HEXSZ];

	ck_assert_int_eq(orchd_sha256_hex("abc", 3, hex), 0);
	ck_assert_str_eq(hex, abc_sha);
	ck_assert_int_eq(orchd_sha256_hex("", 0, hex), 0);
	ck_assert_str_eq(hex, empty_sha);
}
END_TEST

START_TEST(test_streaming_and_reset)
{
	struct orchd_sha256 *h = orchd_sha256_new();
	char hex[ORCHD_SHA256_HEXSZ];

	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(orchd_sha256_update(h, "junk", 4), 0);
	ck_assert_int_eq(orchd_sha256_reset(h), 0);
	ck_assert_int_eq(orchd_sha256_update(h, "a", 1), 0);
	ck_assert_int_eq(orchd_sha256_update(h, "bc", 2), 0);
	ck_assert_int_eq(orchd_sha256_final(h, hex), 0);
	ck_assert_str_eq(hex, abc_sha);
	orchd_sha256_free(h);
}
END_TEST

START_TEST(test_file)
{
	char hex[ORCHD_SHA256_HEXSZ], err[256], expect[512];
	char *dir = test_tmpdir(), *path = xasprintf("%s/f", dir);
	FILE *f = fopen(path, "w");

	fputs("abc", f);
	fclose(f);
	ck_assert_int_eq(orchd_sha256_file(path, hex, err, sizeof(err)), 0);
	ck_assert_str_eq(hex, abc_sha);
	unlink(path);
	ck_assert_int_eq(orchd_sha256_file(path, hex, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "cannot open '%s': No such file or directory", path);
	ck_assert_str_eq(err, expect);
	test_rmtree(dir);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_valid_and_equal)
{
	char upper[ORCHD_SHA256_HEXSZ];
	size_t i;

	ck_assert(orchd_sha256_valid(abc_sha));
	ck_assert(!orchd_sha256_valid(NULL));
	ck_assert(!orchd_sha256_valid("abc"));
	ck_assert(!orchd_sha256_valid(
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0"));
	ck_assert(!orchd_sha256_valid(
		"ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	for (i = 0; i < ORCHD_SHA256_HEXSZ; i++)
		upper[i] = (char)(abc_sha[i] >= 'a' ? abc_sha[i] - 32 : abc_sha[i]);
	ck_assert(orchd_sha256_valid(upper));
	ck_assert(orchd_sha256_equal(abc_sha, upper));
	ck_assert(!orchd_sha256_equal(abc_sha, empty_sha));
}
END_TEST

Suite *hash_suite(void)
{
	Suite *s = suite_create("hash");
	TCase *tc = tcase_create("hash");

	tcase_add_test(tc, test_vectors);
	tcase_add_test(tc, test_streaming_and_reset);
	tcase_add_test(tc, test_file);
	tcase_add_test(tc, test_valid_and_equal);
	suite_add_tcase(s, tc);
	return s;
}
