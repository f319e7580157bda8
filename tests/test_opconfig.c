/*
 * Tests of the config parsers the C extensions share (op_cfg_*): exact
 * error texts (the extensions' users see them), the lists produced, and
 * path resolution against a real $ORCHD_PIPELINE_DIR and the real cwd.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"
#include "testutil.h"

static struct op_errors errs;

static void setup(void)
{
	memset(&errs, 0, sizeof(errs));
}

static void teardown(void)
{
	op_errors_release(&errs);
}

/* The errors as "path: message" lines joined by '|'. */
static char *errs_text(void)
{
	static char buf[2048];

	buf[0] = 0;
	for (size_t i = 0; i < errs.nr; i++) {
		char *t = op_error_text(&errs.v[i]);

		ck_assert_ptr_nonnull(t);
		if (i)
			strcat(buf, "|");
		strncat(buf, t, sizeof(buf) - strlen(buf) - 1);
		free(t);
	}
	return buf;
}

static struct json_object *J(const char *s)
{
	struct json_object *o = json_tokener_parse(s);

	ck_assert_msg(o != NULL || !strcmp(s, "null"), "bad json %s", s);
	return o;
}

START_TEST(test_check_map)
{
	static const char *const known[] = {"command", "env", NULL};
	struct json_object *o = J("{\"comand\":1,\"env\":{},\"zzz\":2}");

	ck_assert_int_eq(op_cfg_check_map(o, known, &errs), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_str_eq(errs_text(),
			 "unknown key 'comand' (did you mean 'command'?)|unknown key 'zzz'");
	json_object_put(o);
	op_errors_release(&errs);

	o = J("[1]");
	ck_assert_int_eq(op_cfg_check_map(o, known, &errs), -1);
	ck_assert_str_eq(errs_text(), "config must be a map");
	json_object_put(o);
	op_errors_release(&errs);

	o = J("{\"env\":{}}");
	ck_assert_int_eq(op_cfg_check_map(o, known, &errs), 0);
	ck_assert_uint_eq(errs.nr, 0);
	json_object_put(o);
}
END_TEST

START_TEST(test_string_list)
{
	struct json_object *o = J("[\"a\",\"\",\"c\"]");
	char **l;

	ck_assert_int_eq(op_cfg_string_list(o, "k", 0, &errs, &l), 0);
	ck_assert_str_eq(l[0], "a");
	ck_assert_str_eq(l[1], "");
	ck_assert_str_eq(l[2], "c");
	ck_assert_ptr_null(l[3]);
	op_cfg_list_free(l);

	ck_assert_int_eq(op_cfg_string_list(o, "k", OP_CFG_NONEMPTY_ITEMS, &errs, &l), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_str_eq(errs_text(), "k[1]: must be a non-empty string");
	json_object_put(o);
	op_errors_release(&errs);

	o = J("[1,\"x\",true]");
	ck_assert_int_eq(op_cfg_string_list(o, "k", 0, &errs, &l), -1);
	ck_assert_str_eq(errs_text(), "k[0]: must be a string|k[2]: must be a string");
	json_object_put(o);
	op_errors_release(&errs);

	o = J("\"one\"");
	ck_assert_int_eq(op_cfg_string_list(o, "tags", 0, &errs, &l), -1);
	ck_assert_str_eq(errs_text(), "tags: must be a list of strings");
	op_errors_release(&errs);
	ck_assert_int_eq(op_cfg_string_list(o, "tags", OP_CFG_ALLOW_ONE, &errs, &l), 0);
	ck_assert_str_eq(l[0], "one");
	ck_assert_ptr_null(l[1]);
	op_cfg_list_free(l);
	json_object_put(o);
}
END_TEST

START_TEST(test_string_list_argv)
{
	struct json_object *o = J("[]");
	char **l;

	ck_assert_int_eq(op_cfg_string_list(o, "command", OP_CFG_ARGV, &errs, &l), -1);
	ck_assert_str_eq(errs_text(), "command: must not be empty");
	json_object_put(o);
	op_errors_release(&errs);

	o = J("[\"\",\"x\",2]");
	ck_assert_int_eq(op_cfg_string_list(o, "command", OP_CFG_ARGV, &errs, &l), -1);
	ck_assert_str_eq(errs_text(),
			 "command: program name must not be empty|command[2]: must be a string");
	json_object_put(o);
	op_errors_release(&errs);

	o = J("[\"sh\",\"\"]");
	ck_assert_int_eq(op_cfg_string_list(o, "command", OP_CFG_ARGV, &errs, &l), 0);
	ck_assert_str_eq(l[0], "sh");
	ck_assert_str_eq(l[1], "");
	ck_assert_ptr_null(l[2]);
	op_cfg_list_free(l);
	json_object_put(o);
}
END_TEST

START_TEST(test_env_map)
{
	struct json_object *o = J("{\"A_1\":\"x=y\",\"9B\":\"v\",\"C\":3}");
	char **l;

	ck_assert_int_eq(op_cfg_env_map(o, "env", OP_CFG_ENV_IDENT, &errs, &l), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_str_eq(errs_text(),
			 "env.9B: is not a valid variable name|env.C: must be a string");
	json_object_put(o);
	op_errors_release(&errs);

	/* without OP_CFG_ENV_IDENT only "" and '=' are refused */
	o = J("{\"9B\":\"v\",\"a-b\":\"\",\"x=y\":\"z\"}");
	ck_assert_int_eq(op_cfg_env_map(o, "env", 0, &errs, &l), -1);
	ck_assert_str_eq(errs_text(), "env.x=y: is not a valid variable name");
	json_object_put(o);
	op_errors_release(&errs);

	o = J("{\"9B\":\"v\",\"a-b\":\"\"}");
	ck_assert_int_eq(op_cfg_env_map(o, "env", 0, &errs, &l), 0);
	ck_assert_str_eq(l[0], "9B=v");
	ck_assert_str_eq(l[1], "a-b=");
	ck_assert_ptr_null(l[2]);
	ck_assert(op_cfg_env_has(l, "9B"));
	ck_assert(op_cfg_env_has(l, "a-b"));
	ck_assert(!op_cfg_env_has(l, "a"));
	ck_assert(!op_cfg_env_has(l, "9B=v"));
	ck_assert(!op_cfg_env_has(NULL, "9B"));
	op_cfg_list_free(l);
	json_object_put(o);

	o = J("[\"A=1\"]");
	ck_assert_int_eq(op_cfg_env_map(o, "vars", 0, &errs, &l), -1);
	ck_assert_str_eq(errs_text(), "vars: must be a map of strings");
	json_object_put(o);
}
END_TEST

START_TEST(test_resolve_path)
{
	char *dir = test_tmpdir(), *old = getenv("ORCHD_PIPELINE_DIR"), *p, *want;
	char cwd[4096];

	old = old ? strdup(old) : NULL;
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));

	ck_assert_int_eq(setenv("ORCHD_PIPELINE_DIR", dir, 1), 0);
	p = op_cfg_resolve_path("/abs/x");
	ck_assert_str_eq(p, "/abs/x");
	free(p);
	p = op_cfg_resolve_path("sub/f.yml");
	ck_assert_int_ge(asprintf(&want, "%s/sub/f.yml", dir), 0);
	ck_assert_str_eq(p, want);
	free(p);
	free(want);

	/* unset or empty: the cwd */
	ck_assert_int_eq(setenv("ORCHD_PIPELINE_DIR", "", 1), 0);
	ck_assert_int_eq(chdir(dir), 0);
	p = op_cfg_resolve_path("f");
	ck_assert_int_ge(asprintf(&want, "%s/f", dir), 0);
	ck_assert_str_eq(p, want);
	free(p);
	free(want);
	unsetenv("ORCHD_PIPELINE_DIR");
	p = op_cfg_resolve_path("g");
	ck_assert_int_ge(asprintf(&want, "%s/g", dir), 0);
	ck_assert_str_eq(p, want);
	free(p);
	free(want);

	ck_assert_int_eq(chdir(cwd), 0);
	if (old)
		setenv("ORCHD_PIPELINE_DIR", old, 1);
	free(old);
	test_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_scalars)
{
	struct json_object *c = J("{\"s\":\"x\",\"e\":\"\",\"n\":1,\"b\":true,\"bs\":\"yes\"}");
	char *s;
	bool b;

	ck_assert_int_eq(op_cfg_string(c, "s", NULL, &errs, &s), 0);
	ck_assert_str_eq(s, "x");
	free(s);
	ck_assert_int_eq(op_cfg_string(c, "missing", "dflt", &errs, &s), 0);
	ck_assert_str_eq(s, "dflt");
	free(s);
	ck_assert_int_eq(op_cfg_string(c, "missing", NULL, &errs, &s), 0);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(op_cfg_string(c, "e", "d", &errs, &s), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(op_cfg_string(c, "n", "d", &errs, &s), -1);
	ck_assert_int_eq(op_cfg_bool(c, "b", false, &errs, &b), 0);
	ck_assert(b);
	ck_assert_int_eq(op_cfg_bool(c, "missing", true, &errs, &b), 0);
	ck_assert(b);
	ck_assert_int_eq(op_cfg_bool(c, "bs", false, &errs, &b), -1);
	ck_assert(!b);
	ck_assert_str_eq(errs_text(), "e: must be a non-empty string|n: must be a non-empty "
				      "string|bs: must be true or false");
	json_object_put(c);

	ck_assert(op_cfg_duration_valid("30s"));
	ck_assert(op_cfg_duration_valid("1h30m"));
	ck_assert(op_cfg_duration_valid("500ms"));
	ck_assert(op_cfg_duration_valid("2us"));
	ck_assert(!op_cfg_duration_valid(""));
	ck_assert(!op_cfg_duration_valid("30"));
	ck_assert(!op_cfg_duration_valid("s"));
	ck_assert(!op_cfg_duration_valid("5 m"));
	ck_assert(!op_cfg_duration_valid("-5m"));
	ck_assert(!op_cfg_duration_valid("1.5h"));

	ck_assert(op_cfg_dns_label("web-1", 63));
	ck_assert(!op_cfg_dns_label("Web", 63));
	ck_assert(!op_cfg_dns_label("-web", 63));
	ck_assert(!op_cfg_dns_label("web-", 63));
	ck_assert(!op_cfg_dns_label("", 63));
	ck_assert(!op_cfg_dns_label("a_b", 63));
	ck_assert(op_cfg_dns_label("abc", 3));
	ck_assert(!op_cfg_dns_label("abcd", 3));
}
END_TEST

Suite *opconfig_suite(void)
{
	Suite *s = suite_create("opconfig");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_check_map);
	tcase_add_test(tc, test_string_list);
	tcase_add_test(tc, test_string_list_argv);
	tcase_add_test(tc, test_env_map);
	tcase_add_test(tc, test_resolve_path);
	tcase_add_test(tc, test_scalars);
	suite_add_tcase(s, tc);
	return s;
}
