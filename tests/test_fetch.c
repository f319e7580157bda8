/*
 * Tests of common/fetch: source spec validation (exact messages).  The
 * fetches themselves are exercised against real servers and repositories in
 * test_http.c and test_git.c.
 */
#include <check.h>
#include <string.h>

#include <json-c/json.h>

#include "fetch.h"
#include "testutil.h"
#include "util.h"

#define SHA "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static const struct {
	const char *spec;
	const char *err; /* NULL: valid */
} cases[] = {
	{"{\"git\": \"https://example.invalid/a/repo.git\", \"ref\": \"main\"}", NULL},
	{"{\"git\": \"/srv/repo\", \"ref\": \"v1\", \"path\": \"src/repo\"}", NULL},
	{"{\"url\": \"https://example.invalid/f.tgz?x=1\", \"sha256\": \"" SHA "\"}", NULL},
	{"{\"url\": \"http://example.invalid/f\", \"sha256\": \"" SHA
	 "\", \"dest\": \"bin/f\", \"extract\": false}",
	 NULL},
	{"[]", "invalid source: expected an object"},
	{"{}", "invalid source: expected a 'git' or a 'url' key"},
	{"{\"git\": \"/r\", \"url\": \"http://x/y\"}",
	 "invalid source: 'git' and 'url' are exclusive"},
	{"{\"git\": \"/r\"}", "invalid source: 'ref' is required with 'git'"},
	{"{\"git\": \"\", \"ref\": \"main\"}", "invalid source: 'git' must not be empty"},
	{"{\"git\": 3, \"ref\": \"main\"}", "invalid source: 'git' must be a string"},
	{"{\"git\": \"/r\", \"ref\": \"main\", \"sha256\": \"x\"}",
	 "invalid source: unknown key 'sha256'"},
	{"{\"git\": \"/r\", \"ref\": \"main\", \"path\": \"../up\"}",
	 "invalid source: 'path' must be a relative path without '.' or '..' segments"},
	{"{\"git\": \"/r\", \"ref\": \"main\", \"path\": \"/abs\"}",
	 "invalid source: 'path' must be a relative path without '.' or '..' segments"},
	{"{\"git\": \"/\", \"ref\": \"main\"}",
	 "invalid source: cannot derive a name from '/'; set 'path'"},
	{"{\"url\": \"ftp://x/y\", \"sha256\": \"" SHA "\"}",
	 "invalid source: 'url' must start with http:// or https://"},
	{"{\"url\": \"http://x/y\"}",
	 "invalid source: 'sha256' is required with 'url' (64 hex digits)"},
	{"{\"url\": \"http://x/y\", \"sha256\": \"abc\"}",
	 "invalid source: 'sha256' is required with 'url' (64 hex digits)"},
	{"{\"url\": \"http://x/y\", \"sha256\": \"" SHA "\", \"extract\": true}",
	 "invalid source: 'extract' is not supported yet"},
	{"{\"url\": \"http://x/y\", \"sha256\": \"" SHA "\", \"extract\": \"no\"}",
	 "invalid source: 'extract' must be a boolean"},
	{"{\"url\": \"http://x/y\", \"sha256\": \"" SHA "\", \"dest\": \"a/./b\"}",
	 "invalid source: 'dest' must be a relative path without '.' or '..' segments"},
	{"{\"url\": \"http://x/\", \"sha256\": \"" SHA "\"}",
	 "invalid source: cannot derive a name from 'http://x/'; set 'dest'"},
	{"{\"url\": \"http://x/y\", \"sha256\": \"" SHA "\", \"ref\": \"main\"}",
	 "invalid source: unknown key 'ref'"},
};

START_TEST(test_validate)
{
	json_object *spec = json_tokener_parse(cases[_i].spec);
	char err[512] = "";
	int rc;

	ck_assert_msg(spec != NULL, "bad test json: %s", cases[_i].spec);
	rc = orchd_fetch_validate(spec, err, sizeof(err));
	if (cases[_i].err) {
		ck_assert_msg(rc == -1, "accepted: %s", cases[_i].spec);
		ck_assert_str_eq(err, cases[_i].err);
	} else {
		ck_assert_msg(rc == 0, "%s: %s", cases[_i].spec, err);
	}
	json_object_put(spec);
}
END_TEST

START_TEST(test_invalid_spec_fetches_nothing)
{
	json_object *spec = json_tokener_parse("{\"git\": \"/r\"}"), *res = NULL;
	char err[512], *dir = test_tmpdir();

	ck_assert_int_eq(orchd_fetch_source(spec, dir, NULL, &res, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "invalid source: 'ref' is required with 'git'");
	ck_assert_ptr_null(res);
	json_object_put(spec);
	test_rmtree(dir);
	free(dir);
}
END_TEST

Suite *fetch_suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *tc = tcase_create("fetch");

	tcase_add_loop_test(tc, test_validate, 0, (int)ARRAY_SIZE(cases));
	tcase_add_test(tc, test_invalid_spec_fetches_nothing);
	suite_add_tcase(s, tc);
	return s;
}
