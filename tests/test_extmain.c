/*
 * Tests of op_ext_main(), the main() of C extensions: the helper
 * tests/helpers/miniext (a handful of lines around op_ext_main) driven as
 * a real process over real pipes by tests/extdriver.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "extdriver.h"
#include "orchd_protocol.h"
#include "testutil.h"

/* Run one action of miniext; env: NULL or "NAME=VALUE" for its environment. */
static void drive(const char *action, const char *config, const char *env, const char *hello,
		  struct extdrv *d)
{
	char *exe = test_build_path("tests/helpers/miniext");
	const char *envv[] = {env, NULL};
	struct extdrv_opts o = {
		.exe = exe,
		.action = action,
		.config_text = config,
		.env = envv,
		.hello = hello,
		.capture_stderr = true,
		.strict = true,
	};

	extdrv_run(&o, d);
	free(exe);
}

/* The actions of a hello or describe payload joined with ','. */
static char *actions_text(struct json_object *actions)
{
	char *s = strdup("");

	ck_assert_ptr_nonnull(actions);
	for (size_t i = 0; i < json_object_array_length(actions); i++) {
		char *n = NULL;

		ck_assert_int_ge(
			asprintf(&n, "%s%s%s", s, i ? "," : "",
				 json_object_get_string(json_object_array_get_idx(actions, i))),
			0);
		free(s);
		s = n;
	}
	return s;
}

static void assert_result(const struct extdrv *d, const char *status, const char *summary)
{
	ck_assert_msg(d->result != NULL, "no result (exit %d, stderr %s)", d->status,
		      d->stderr_text);
	ck_assert_str_eq(op_get_str(d->result, "status"), status);
	ck_assert_str_eq(extdrv_summary(d), summary);
}

/* With an argument: the usage line on stderr, exit 2, nothing on stdout. */
START_TEST(test_usage)
{
	char *exe = test_build_path("tests/helpers/miniext"), *out = NULL, *err = NULL;
	char *argv[] = {exe, (char *)(uintptr_t) "--help", NULL};

	ck_assert_int_eq(test_run(argv, &out, &err), 2);
	ck_assert_str_eq(out, "");
	ck_assert_str_eq(err, "orchd-ext-mini 1.2.3: an orchd extension (protocol 1); it is "
			      "started by orchd and speaks JSON lines on stdin/stdout\n");
	free(out);
	free(err);
	free(exe);
}
END_TEST

/* info->actions NULL: the hello and describe list the handlers' actions. */
START_TEST(test_actions_from_handlers)
{
	struct extdrv d;
	struct json_object *desc;
	char *s;

	drive("describe", NULL, NULL, NULL, &d);
	ck_assert_ptr_nonnull(d.hello);
	ck_assert_str_eq(op_get_str(d.hello, "name"), "mini");
	ck_assert_str_eq(op_get_str(d.hello, "version"), "1.2.3");
	s = actions_text(op_get(d.hello, "actions"));
	ck_assert_str_eq(s, "describe,validate,apply");
	free(s);
	assert_result(&d, "success", "mini 1.2.3");
	desc = op_get(d.result, "describe");
	ck_assert_str_eq(op_get_str(desc, "description"), "a test extension");
	s = actions_text(op_get(desc, "actions"));
	ck_assert_str_eq(s, "describe,validate,apply");
	free(s);
	ck_assert_int_eq(d.status, 0);
	extdrv_release(&d);
}
END_TEST

/* The action reaches its handler, which sees the action message. */
START_TEST(test_dispatch)
{
	struct extdrv d;

	drive("apply", "{}", NULL, NULL, &d);
	assert_result(&d, "success", "applied");
	ck_assert_str_eq(op_get_str(extdrv_find_last(&d, "output", "key", "instance"), "value"),
			 "t");
	ck_assert_str_eq(op_get_str(extdrv_find_last(&d, "output", "key", "stack"), "value"),
			 "dev-t");
	ck_assert_str_eq(op_get_str(extdrv_find_last(&d, "output", "key", "type"), "value"),
			 "action");
	ck_assert(json_object_is_type(
		op_get(extdrv_find_last(&d, "output", "key", "upstream"), "value"),
		json_type_object));
	ck_assert_int_eq(d.status, 0);
	extdrv_release(&d);

	drive("validate", "{}", NULL, NULL, &d);
	assert_result(&d, "success", "valid");
	ck_assert_int_eq(d.status, 0);
	extdrv_release(&d);
}
END_TEST

/* A handler's error message and its cancel check reach orchd. */
START_TEST(test_error_and_cancel)
{
	char *exe = test_build_path("tests/helpers/miniext");
	struct json_object *e;
	struct extdrv_opts o = {
		.exe = exe,
		.action = "validate",
		.config_text = "{\"mode\":\"error\"}",
		.strict = true,
	};
	struct extdrv d;

	extdrv_run(&o, &d);
	assert_result(&d, "failure", "broken");
	e = extdrv_find_last(&d, "error", NULL, NULL);
	ck_assert_str_eq(op_get_str(e, "message"), "it broke: 7");
	ck_assert(op_get_bool(e, "retryable", false));
	extdrv_release(&d);

	o.config_text = "{\"mode\":\"cancel\"}";
	o.cancel_at_once = true;
	extdrv_run(&o, &d);
	assert_result(&d, "failure", "cancelled (timeout)");
	ck_assert_int_eq(d.status, 0);
	extdrv_release(&d);
	free(exe);
}
END_TEST

/* A handler that sends no result: op_ext_finish's failure, exit 1. */
START_TEST(test_no_result)
{
	struct extdrv d;

	drive("validate", "{\"mode\":\"noresult\"}", NULL, NULL, &d);
	assert_result(&d, "failure", "extension ended without a result");
	ck_assert_int_eq(d.status, 1);
	extdrv_release(&d);
}
END_TEST

/* Listed actions are advertised as given; one without a handler fails. */
START_TEST(test_explicit_actions_unsupported)
{
	struct extdrv d;
	char *s;

	drive("plan", NULL, "MINIEXT_INFO=explicit", NULL, &d);
	s = actions_text(op_get(d.hello, "actions"));
	ck_assert_str_eq(s, "describe,validate,plan");
	free(s);
	assert_result(&d, "failure", "unsupported action");
	ck_assert_int_eq(d.status, 0);
	extdrv_release(&d);
}
END_TEST

/* No common protocol version: an error message, no hello, exit 1. */
START_TEST(test_handshake_failure)
{
	struct extdrv d;

	drive("apply", NULL, NULL,
	      "{\"type\":\"hello\",\"protocol\":{\"min\":2,\"max\":2},\"orchd_version\":\"9.0.0\"}"
	      "\n",
	      &d);
	ck_assert_ptr_null(d.hello);
	ck_assert_ptr_null(d.result);
	ck_assert_str_eq(op_get_str(extdrv_find_last(&d, "error", NULL, NULL), "message"),
			 "extension mini speaks protocol 1..1, orchd offers 2..2");
	ck_assert_int_eq(d.status, 1);
	extdrv_release(&d);
}
END_TEST

/* Every first-party extension: describe names it and its config schema. */
START_TEST(test_first_party_describe)
{
	static const char *const ext[][2] = {
		{"exec", "command"},
		{"terraform", "source"},
		{"ansible", "playbook"},
		{"secrets", "values"},
	};

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		char *wd = test_tmpdir();
		struct extdrv_action a = {"describe", NULL, NULL, wd, NULL};
		struct json_object *desc;
		struct extdrv d;

		extdrv_run_action(ext[i][0], "examples", &a, &d);
		ck_assert_msg(extdrv_succeeded(&d), "%s: %s", ext[i][0], extdrv_summary(&d));
		desc = op_get(d.result, "describe");
		ck_assert_str_eq(op_get_str(desc, "type"), ext[i][0]);
		ck_assert_ptr_nonnull(
			op_get(op_get(op_get(desc, "config"), "properties"), ext[i][1]));
		extdrv_release(&d);
		test_rmtree(wd);
		free(wd);
	}
}
END_TEST

Suite *extmain_suite(void)
{
	Suite *s = suite_create("extmain");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_usage);
	tcase_add_test(tc, test_actions_from_handlers);
	tcase_add_test(tc, test_dispatch);
	tcase_add_test(tc, test_no_result);
	tcase_add_test(tc, test_error_and_cancel);
	tcase_add_test(tc, test_explicit_actions_unsupported);
	tcase_add_test(tc, test_handshake_failure);
	tcase_add_test(tc, test_first_party_describe);
	suite_add_tcase(s, tc);
	return s;
}
