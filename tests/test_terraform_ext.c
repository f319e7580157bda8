/*
 * Tests of orchd-ext-terraform driven as a real process over real pipes
 * (tests/extdriver, as orchd runs it), running the real OpenTofu
 * (`make tools`) on the module
 * examples/terraform/hello (terraform_data + local-exec: no provider
 * download, works offline).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "extdriver.h"
#include "orchd_protocol.h"
#include "testutil.h"

/* Run one action as orchd runs it; fills d. */
static void drive(const struct extdrv_action *a, struct extdrv *d)
{
	extdrv_run_action("terraform", "examples/terraform", a, d);
}

/* validate with a config; returns the driver result. */
static void validate(const char *config, struct extdrv *d, char **wd)
{
	struct json_object *cfg = extdrv_json(config);
	struct extdrv_action o = {"validate", cfg, NULL, NULL, NULL};

	*wd = test_tmpdir();
	o.workdir = *wd;
	drive(&o, d);
	json_object_put(cfg);
}

START_TEST(validate_unknown_key)
{
	struct extdrv d;
	char *wd;
	struct json_object *errs;

	validate("{\"source\":\"hello\",\"varz\":{}}", &d, &wd);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d),
			 "invalid configuration: unknown key 'varz' (did you mean 'vars'?)");
	errs = op_get(d.result, "errors");
	ck_assert_int_eq(json_object_array_length(errs), 1);
	ck_assert_str_eq(op_get_str(json_object_array_get_idx(errs, 0), "path"), "varz");
	ck_assert_ptr_nonnull(extdrv_find_last(&d, "log", "message",
					       "unknown key 'varz' (did you mean 'vars'?)"));
	extdrv_release(&d);
	test_rmtree(wd);
	free(wd);
}
END_TEST

START_TEST(validate_missing_source)
{
	struct extdrv d;
	char *wd;

	validate("{\"vars\":{\"name\":1}}", &d, &wd);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d), "invalid configuration: source: is required");
	ck_assert_str_eq(
		op_get_str(json_object_array_get_idx(op_get(d.result, "errors"), 0), "path"),
		"source");
	extdrv_release(&d);
	test_rmtree(wd);
	free(wd);
}
END_TEST

START_TEST(validate_bad_values)
{
	struct extdrv d;
	char *wd, *expect, *src = test_src_path("examples/terraform");

	validate("{\"source\":\"nope\",\"binary\":\"tf\",\"var_files\":[\"x.tfvars\"]}", &d, &wd);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d), "invalid configuration: binary: must be 'tofu', "
					     "'terraform' or an absolute path (got 'tf')");
	extdrv_release(&d);
	test_rmtree(wd);
	free(wd);
	/* paths: relative to ORCHD_PIPELINE_DIR (examples/terraform here) */
	validate("{\"source\":\"nope\",\"var_files\":[\"x.tfvars\"]}", &d, &wd);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_int_ge(asprintf(&expect,
				  "invalid configuration: source: cannot access '%s/nope': No such "
				  "file or directory (and 1 more)",
				  src),
			 0);
	ck_assert_str_eq(extdrv_summary(&d), expect);
	free(expect);
	ck_assert_int_ge(asprintf(&expect,
				  "var_files[0]: cannot access '%s/x.tfvars': No such "
				  "file or directory",
				  src),
			 0);
	ck_assert_ptr_nonnull(extdrv_find_last(&d, "log", "message", expect));
	free(expect);
	extdrv_release(&d);
	test_rmtree(wd);
	free(wd);
	free(src);
}
END_TEST

START_TEST(validate_ok_and_hcl_errors)
{
	struct extdrv d;
	char *wd, *bad = test_tmpdir(), *path, *cfg, *expect;
	struct json_object *errs;
	FILE *f;

	extdrv_need_tool("tofu");
	validate("{\"source\":\"hello\",\"vars\":{\"path\":\"/nonexistent\"}}", &d, &wd);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert_str_eq(extdrv_summary(&d), "configuration is valid");
	extdrv_release(&d);
	test_rmtree(wd);
	free(wd);

	ck_assert_int_ge(asprintf(&path, "%s/main.tf", bad), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("resource \"terraform_data\" \"x\" {\n  input = \n}\n"
	      "variable \"y\" {\n  type = strin\n}\n",
	      f);
	fclose(f);
	ck_assert_int_ge(asprintf(&cfg, "{\"source\":\"%s\"}", bad), 0);
	validate(cfg, &d, &wd);
	ck_assert(!extdrv_succeeded(&d));
	errs = op_get(d.result, "errors");
	ck_assert_int_eq(json_object_array_length(errs), 2);
	ck_assert_int_ge(asprintf(&expect, "%s/main.tf:2", bad), 0);
	ck_assert_str_eq(op_get_str(json_object_array_get_idx(errs, 0), "path"), expect);
	ck_assert_str_eq(op_get_str(json_object_array_get_idx(errs, 0), "message"),
			 "Invalid expression: Expected the start of an expression, but found an "
			 "invalid expression token.");
	free(expect);
	ck_assert_int_ge(asprintf(&expect, "%s/main.tf:5", bad), 0);
	ck_assert_str_eq(op_get_str(json_object_array_get_idx(errs, 1), "path"), expect);
	free(expect);
	ck_assert_int_ge(
		asprintf(&expect,
			 "invalid configuration: %s/main.tf:2: Invalid expression: Expected "
			 "the start of an expression, but found an invalid expression "
			 "token. (and 1 more)",
			 bad),
		0);
	ck_assert_str_eq(extdrv_summary(&d), expect);
	free(expect);
	extdrv_release(&d);
	test_rmtree(wd);
	free(wd);
	free(cfg);
	free(path);
	test_rmtree(bad);
	free(bad);
}
END_TEST

static struct json_object *take_state(const struct extdrv *d)
{
	struct json_object *m = extdrv_find_last(d, "state", NULL, NULL);

	ck_assert_msg(m != NULL, "no state message");
	ck_assert(op_get_bool(m, "secret", false));
	return json_object_get(op_get(m, "state"));
}

START_TEST(lifecycle)
{
	char *wd = test_tmpdir(), *tmp = test_tmpdir(), *out, *cfgtext, *varfile, *content;
	struct json_object *cfg, *state, *o, *res;
	struct extdrv_action opts = {"plan", NULL, NULL, wd, NULL};
	struct extdrv d;
	struct stat st;
	FILE *f;

	extdrv_need_tool("tofu");
	ck_assert_int_ge(asprintf(&out, "%s/greeting.txt", tmp), 0);
	ck_assert_int_ge(asprintf(&varfile, "%s/extra.tfvars.json", tmp), 0);
	f = fopen(varfile, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"name\":\"from-file\",\"token\":\"s3cr3t-from-file\"}\n", f);
	fclose(f);
	/* vars win over var_files; vars take any JSON value (fail: false) */
	ck_assert_int_ge(asprintf(&cfgtext,
				  "{\"source\":\"hello\",\"var_files\":[\"%s\"],"
				  "\"vars\":{\"name\":\"orchd\",\"path\":\"%s\",\"fail\":false}}",
				  varfile, out),
			 0);
	cfg = extdrv_json(cfgtext);
	opts.config = cfg;

	/* plan on empty state: something to add */
	drive(&opts, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert_str_eq(extdrv_summary(&d), "plan: 1 to add, 0 to change, 0 to destroy");
	ck_assert_int_eq(stat(out, &st), -1);
	extdrv_release(&d);

	/* apply: the file, outputs (token secret), a secret tfstate */
	opts.action = "apply";
	drive(&opts, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert_str_eq(extdrv_summary(&d), "apply: 1 added, 0 changed, 0 destroyed");
	content = test_read_file(out, NULL);
	ck_assert_ptr_nonnull(content);
	ck_assert_str_eq(content, "hello, orchd\n");
	free(content);
	o = extdrv_find_last(&d, "output", "key", "greeting");
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(op_get_str(o, "value"), "hello, orchd");
	ck_assert(!op_get_bool(o, "secret", true));
	o = extdrv_find_last(&d, "output", "key", "token");
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(op_get_str(o, "value"), "s3cr3t-from-file");
	ck_assert(op_get_bool(o, "secret", false));
	state = take_state(&d);
	ck_assert_int_eq(op_get_int(state, "version", 0), 4);
	res = op_get(state, "resources");
	ck_assert_int_eq(json_object_array_length(res), 1);
	ck_assert_str_eq(op_get_str(json_object_array_get_idx(res, 0), "type"), "terraform_data");
	ck_assert_str_eq(op_get_str(json_object_array_get_idx(res, 0), "name"), "greeting");
	extdrv_release(&d);
	/* no plaintext state or vars left in the workdir */
	{
		char *p;

		ck_assert_int_ge(asprintf(&p, "%s/terraform.tfstate", wd), 0);
		ck_assert_int_eq(stat(p, &st), -1);
		free(p);
		ck_assert_int_ge(asprintf(&p, "%s/orchd.auto.tfvars.json", wd), 0);
		ck_assert_int_eq(stat(p, &st), -1);
		free(p);
	}

	/* apply again with that state: nothing to do */
	unlink(out);
	f = fopen(out, "w"); /* a marker: apply must not rewrite the file */
	fputs("marker\n", f);
	fclose(f);
	opts.state = state;
	drive(&opts, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(!op_get_bool(d.result, "changed", true));
	ck_assert_str_eq(extdrv_summary(&d), "apply: 0 added, 0 changed, 0 destroyed");
	content = test_read_file(out, NULL);
	ck_assert_str_eq(content, "marker\n");
	free(content);
	extdrv_release(&d);

	/* plan with the state: no changes */
	opts.action = "plan";
	drive(&opts, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(!op_get_bool(d.result, "changed", true));
	ck_assert_str_eq(extdrv_summary(&d), "plan: no changes");
	extdrv_release(&d);

	/* plan with another name: an in-place update of terraform_data.input */
	{
		struct json_object *cfg2 = NULL, *vars;

		ck_assert_int_eq(json_object_deep_copy(cfg, &cfg2, NULL), 0);
		vars = op_get(cfg2, "vars");
		json_object_object_add(vars, "name", json_object_new_string("someone else"));
		opts.config = cfg2;
		drive(&opts, &d);
		opts.config = cfg;
		json_object_put(cfg2);
	}
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert_str_eq(extdrv_summary(&d), "plan: 0 to add, 1 to change, 0 to destroy");
	extdrv_release(&d);

	/* destroy: the destroy provisioner removes the file; state now empty */
	opts.action = "destroy";
	drive(&opts, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert_str_eq(extdrv_summary(&d), "destroy: 1 destroyed");
	ck_assert_int_eq(stat(out, &st), -1);
	json_object_put(state);
	state = take_state(&d);
	ck_assert_int_eq(json_object_array_length(op_get(state, "resources")), 0);
	extdrv_release(&d);

	/* destroy again: nothing to do */
	opts.state = state;
	drive(&opts, &d);
	ck_assert(extdrv_succeeded(&d));
	ck_assert(!op_get_bool(d.result, "changed", true));
	ck_assert_str_eq(extdrv_summary(&d), "nothing to destroy");
	extdrv_release(&d);

	json_object_put(state);
	json_object_put(cfg);
	free(cfgtext);
	free(varfile);
	free(out);
	test_rmtree(wd);
	test_rmtree(tmp);
	free(wd);
	free(tmp);
}
END_TEST

START_TEST(apply_failure)
{
	char *wd = test_tmpdir(), *cfgtext;
	struct json_object *cfg, *state;
	struct extdrv_action opts = {"apply", NULL, NULL, wd, NULL};
	struct extdrv d;
	const char *prefix = "tofu apply failed (exit status 1): local-exec provisioner error at "
			     "main.tf:";

	extdrv_need_tool("tofu");
	ck_assert_int_ge(
		asprintf(&cfgtext,
			 "{\"source\":\"hello\",\"vars\":{\"path\":\"%s/x\",\"fail\":true}}", wd),
		0);
	cfg = extdrv_json(cfgtext);
	opts.config = cfg;
	drive(&opts, &d);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_msg(!strncmp(extdrv_summary(&d), prefix, strlen(prefix)), "%s",
		      extdrv_summary(&d));
	ck_assert_msg(strstr(extdrv_summary(&d), "Output: greeting: refusing to write"), "%s",
		      extdrv_summary(&d));
	/* the tool's error diagnostics are logged at level error */
	ck_assert_ptr_nonnull(
		extdrv_find_last(&d, "log", "message", "Error: local-exec provisioner error"));
	ck_assert_str_eq(op_get_str(extdrv_find_last(&d, "log", "message",
						     "Error: local-exec provisioner error"),
				    "level"),
			 "error");
	/* the (tainted) resource is recorded so that destroy can clean up */
	state = take_state(&d);
	ck_assert_int_eq(json_object_array_length(op_get(state, "resources")), 1);
	json_object_put(state);
	ck_assert_ptr_null(extdrv_find_last(&d, "output", NULL, NULL));
	extdrv_release(&d);
	json_object_put(cfg);
	free(cfgtext);
	test_rmtree(wd);
	free(wd);
}
END_TEST

START_TEST(missing_binary)
{
	char *wd = test_tmpdir();
	struct json_object *cfg =
		extdrv_json("{\"source\":\"hello\",\"binary\":\"/nonexistent/tofu\","
			    "\"vars\":{\"path\":\"/nonexistent/x\"}}");
	struct extdrv_action opts = {"plan", cfg, NULL, wd, NULL};
	struct extdrv d;

	drive(&opts, &d);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d),
			 "/nonexistent/tofu init: cannot run '/nonexistent/tofu': "
			 "No such file or directory");
	extdrv_release(&d);
	json_object_put(cfg);
	test_rmtree(wd);
	free(wd);
}
END_TEST

START_TEST(cancel_apply)
{
	char *wd = test_tmpdir(), *cfgtext;
	struct json_object *cfg;
	struct extdrv_action opts = {"apply", NULL, NULL, wd, "Provisioning with 'local-exec'"};
	struct extdrv d;
	struct stat st;
	char *out;

	extdrv_need_tool("tofu");
	ck_assert_int_ge(asprintf(&out, "%s/never", wd), 0);
	ck_assert_int_ge(asprintf(&cfgtext,
				  "{\"source\":\"hello\",\"vars\":{\"path\":\"%s\",\"delay\":60}}",
				  out),
			 0);
	cfg = extdrv_json(cfgtext);
	opts.config = cfg;
	drive(&opts, &d);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d), "tofu apply: cancelled");
	ck_assert_ptr_nonnull(
		extdrv_find_last(&d, "log", "message", "cancelled: sent SIGTERM to tofu"));
	ck_assert_int_eq(stat(out, &st), -1);
	extdrv_release(&d);
	json_object_put(cfg);
	free(cfgtext);
	free(out);
	test_rmtree(wd);
	free(wd);
}
END_TEST

/*
 * A tfstate over the protocol's 1 MiB line limit travels in a file
 * (PROTOCOL.md §4.1) both ways: apply sends it whole (it failed once, and
 * before that the state was lost), and the next plan, handed it back in a
 * file, finds nothing to change.
 */
START_TEST(state_larger_than_a_line)
{
	char *wd = test_tmpdir(), *wd2 = test_tmpdir(), *mod = test_tmpdir(), *path, *blob,
	     *cfgtext;
	struct extdrv_action opts = {"apply", NULL, NULL, wd, NULL};
	struct json_object *cfg, *st, *state;
	struct extdrv d;
	FILE *f;

	extdrv_need_tool("tofu");
	/* terraform_data keeps its input twice (input and output): 2 x 600 kB */
	ck_assert_int_ge(asprintf(&path, "%s/main.tf", mod), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("variable \"blob\" {\n  type = string\n}\n"
	      "resource \"terraform_data\" \"big\" {\n  input = var.blob\n}\n",
	      f);
	fclose(f);
	blob = malloc(600001);
	ck_assert_ptr_nonnull(blob);
	memset(blob, 'b', 600000);
	blob[600000] = '\0';
	ck_assert_int_ge(
		asprintf(&cfgtext, "{\"source\":\"%s\",\"vars\":{\"blob\":\"%s\"}}", mod, blob), 0);
	cfg = extdrv_json(cfgtext);
	opts.config = cfg;
	drive(&opts, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	st = extdrv_find_last(&d, "state", NULL, NULL);
	ck_assert_ptr_nonnull(st);
	ck_assert_ptr_nonnull(op_get_str(st, "file"));
	ck_assert(op_get_bool(st, "secret", false));
	state = json_object_get(op_get(st, "state"));
	ck_assert_int_gt(strlen(json_object_to_json_string(state)), 1200000);
	ck_assert_ptr_nonnull(op_get(state, "resources"));
	extdrv_release(&d);

	/* the next plan gets it back in a file: no changes */
	opts.action = "plan";
	opts.state = state;
	opts.workdir = wd2;
	drive(&opts, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(!op_get_bool(d.result, "changed", true));
	extdrv_release(&d);

	json_object_put(state);
	json_object_put(cfg);
	free(cfgtext);
	free(blob);
	free(path);
	test_rmtree(wd);
	test_rmtree(wd2);
	test_rmtree(mod);
	free(wd);
	free(wd2);
	free(mod);
}
END_TEST

Suite *terraform_ext_suite(void)
{
	Suite *s = suite_create("terraform_ext");
	TCase *tc = tcase_create("config");
	TCase *tools = tcase_create("tofu");
	/* needs the real tools (make tools): left out by make check-fast */
	tcase_set_tags(tools, "tools");

	tcase_add_test(tc, validate_unknown_key);
	tcase_add_test(tc, validate_missing_source);
	tcase_add_test(tc, validate_bad_values);
	tcase_add_test(tc, missing_binary);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tools, 90);
	tcase_add_test(tools, validate_ok_and_hcl_errors);
	tcase_add_test(tools, lifecycle);
	tcase_add_test(tools, apply_failure);
	tcase_add_test(tools, cancel_apply);
	tcase_add_test(tools, state_larger_than_a_line);
	suite_add_tcase(s, tools);
	return s;
}
