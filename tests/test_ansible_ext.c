/*
 * Tests of orchd-ext-ansible driven as a real process over real pipes
 * (tests/extdriver, as orchd runs it), running the real ansible-playbook
 * of `make tools` (ansible-core) on the playbooks of examples/ansible
 * (localhost, local connection: offline).
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
	extdrv_run_action("ansible", "examples/ansible", a, d);
}

static void run_action(const char *action, const char *config, struct json_object *state,
		       const char *wd, struct extdrv *d)
{
	struct json_object *cfg = extdrv_json(config);
	struct extdrv_action o = {action, cfg, state, wd, NULL};

	drive(&o, d);
	json_object_put(cfg);
}

/* validate with a config in a fresh workdir. */
static void validate(const char *config, struct extdrv *d)
{
	char *wd = test_tmpdir();

	run_action("validate", config, NULL, wd, d);
	test_rmtree(wd);
	free(wd);
}

/* No log, progress, error or result text contains needle. */
static void assert_never_logged(const struct extdrv *d, const char *needle)
{
	for (size_t i = 0; i < json_object_array_length(d->msgs); i++) {
		struct json_object *m = json_object_array_get_idx(d->msgs, i);
		const char *type = op_get_str(m, "type");

		if (!strcmp(type, "output") || !strcmp(type, "state"))
			continue;
		ck_assert_msg(!strstr(json_object_to_json_string(m), needle), "'%s' leaked in: %s",
			      needle, json_object_to_json_string(m));
	}
}

static bool file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

START_TEST(validate_unknown_key)
{
	struct extdrv d;
	struct json_object *errs;

	validate("{\"playbook\":\"site.yml\",\"extra_var\":{}}", &d);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d),
			 "invalid configuration: unknown key 'extra_var' (did you "
			 "mean 'extra_vars'?)");
	errs = op_get(d.result, "errors");
	ck_assert_int_eq(json_object_array_length(errs), 1);
	ck_assert_str_eq(op_get_str(json_object_array_get_idx(errs, 0), "path"), "extra_var");
	ck_assert_str_eq(
		op_get_str(extdrv_find_last(&d, "log", "message",
					    "unknown key 'extra_var' (did you mean 'extra_vars'?)"),
			   "level"),
		"error");
	extdrv_release(&d);
}
END_TEST

START_TEST(validate_missing_playbook)
{
	struct extdrv d;
	char *expect, *src = test_src_path("examples/ansible");

	validate("{\"extra_vars\":{\"a\":1}}", &d);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d), "invalid configuration: playbook: is required");
	ck_assert_str_eq(
		op_get_str(json_object_array_get_idx(op_get(d.result, "errors"), 0), "path"),
		"playbook");
	extdrv_release(&d);

	/* relative to ORCHD_PIPELINE_DIR (examples/ansible here) */
	validate("{\"playbook\":\"nope.yml\",\"destroy_playbook\":\"destroy.yml\"}", &d);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_int_ge(asprintf(&expect,
				  "invalid configuration: playbook: cannot access '%s/nope.yml': "
				  "No such file or directory",
				  src),
			 0);
	ck_assert_str_eq(extdrv_summary(&d), expect);
	free(expect);
	extdrv_release(&d);
	free(src);
}
END_TEST

START_TEST(validate_bad_values)
{
	struct extdrv d;

	validate("{\"playbook\":\"site.yml\",\"inventory\":5,\"check_mode_for_plan\":\"yes\","
		 "\"binary\":\"bin/ansible-playbook\",\"env\":{\"A\":1},\"tags\":[\"x\",\"\"],"
		 "\"extra_vars\":[]}",
		 &d);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d),
			 "invalid configuration: inventory: must be a path, a non-empty list of "
			 "host names or a non-empty map of host to vars (and 5 more)");
	ck_assert_ptr_nonnull(extdrv_find_last(&d, "log", "message", "extra_vars: must be a map"));
	ck_assert_ptr_nonnull(extdrv_find_last(&d, "log", "message",
					       "check_mode_for_plan: must be true or false"));
	ck_assert_ptr_nonnull(
		extdrv_find_last(&d, "log", "message",
				 "binary: must be a command name or an absolute path (got "
				 "'bin/ansible-playbook')"));
	ck_assert_ptr_nonnull(extdrv_find_last(&d, "log", "message", "env.A: must be a string"));
	ck_assert_ptr_nonnull(
		extdrv_find_last(&d, "log", "message", "tags[1]: must be a non-empty string"));
	ck_assert_int_eq(json_object_array_length(op_get(d.result, "errors")), 6);
	extdrv_release(&d);

	validate("{\"playbook\":\"site.yml\",\"inventory\":{\"web\":[1]}}", &d);
	ck_assert_str_eq(extdrv_summary(&d),
			 "invalid configuration: inventory.web: host vars must be a map");
	extdrv_release(&d);
}
END_TEST

START_TEST(missing_binary)
{
	char *wd = test_tmpdir();
	struct extdrv d;

	run_action("apply",
		   "{\"playbook\":\"site.yml\",\"binary\":\"/nonexistent/ansible-playbook\"}", NULL,
		   wd, &d);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d),
			 "/nonexistent/ansible-playbook: cannot run "
			 "'/nonexistent/ansible-playbook': No such file or directory");
	extdrv_release(&d);
	test_rmtree(wd);
	free(wd);
}
END_TEST

START_TEST(plan_without_check_mode)
{
	char *wd = test_tmpdir();
	struct extdrv d;

	run_action("plan",
		   "{\"playbook\":\"site.yml\",\"check_mode_for_plan\":false,"
		   "\"binary\":\"/nonexistent/ansible-playbook\"}",
		   NULL, wd, &d);
	ck_assert(extdrv_succeeded(&d));
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert_str_eq(extdrv_summary(&d), "would run site.yml");
	extdrv_release(&d);
	test_rmtree(wd);
	free(wd);
}
END_TEST

START_TEST(validate_ok_and_syntax_error)
{
	struct extdrv d;
	char *bad = test_tmpdir(), *path, *cfg, *expect;
	struct json_object *errs;
	FILE *f;

	extdrv_need_tool("ansible-playbook");
	validate("{\"playbook\":\"site.yml\",\"destroy_playbook\":\"destroy.yml\"}", &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert_str_eq(extdrv_summary(&d), "configuration is valid");
	extdrv_release(&d);

	ck_assert_int_ge(asprintf(&path, "%s/bad.yml", bad), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("- hosts: localhost\n  tasks:\n    - name: x\n      ansible.builtin.nope: {}\n", f);
	fclose(f);
	ck_assert_int_ge(asprintf(&cfg, "{\"playbook\":\"%s\"}", path), 0);
	validate(cfg, &d);
	ck_assert(!extdrv_succeeded(&d));
	errs = op_get(d.result, "errors");
	ck_assert_int_eq(json_object_array_length(errs), 1);
	ck_assert_str_eq(op_get_str(json_object_array_get_idx(errs, 0), "path"), "playbook");
	ck_assert_int_ge(asprintf(&expect,
				  "%s:3:7: couldn't resolve module/action 'ansible.builtin.nope'. "
				  "This often indicates a misspelling, missing collection, or "
				  "incorrect module path.",
				  path),
			 0);
	ck_assert_str_eq(op_get_str(json_object_array_get_idx(errs, 0), "message"), expect);
	free(expect);
	extdrv_release(&d);
	free(cfg);
	free(path);
	test_rmtree(bad);
	free(bad);
}
END_TEST

static struct json_object *state_of(const struct extdrv *d)
{
	struct json_object *m = extdrv_find_last(d, "state", NULL, NULL);

	ck_assert_msg(m != NULL, "no state message");
	return op_get(m, "state");
}

START_TEST(lifecycle)
{
	char *wd = test_tmpdir(), *tmp = test_tmpdir(), *out, *cfg, *content, *p;
	const char *secret = "s3cr3t-t0ken-value";
	struct json_object *o;
	struct extdrv d;

	extdrv_need_tool("ansible-playbook");
	ck_assert_int_ge(asprintf(&out, "%s/greeting.txt", tmp), 0);
	/* an inline inventory: a map host -> vars */
	ck_assert_int_ge(asprintf(&cfg,
				  "{\"playbook\":\"site.yml\",\"inventory\":{\"localhost\":"
				  "{\"ansible_connection\":\"local\"}},\"extra_vars\":{"
				  "\"greeting_name\":\"orchd\",\"greeting_path\":\"%s\","
				  "\"token\":\"%s\"},\"secret_outputs\":[\"token\"]}",
				  out, secret),
			 0);

	/* plan (check mode): would change, writes nothing */
	run_action("plan", cfg, NULL, wd, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert_str_eq(extdrv_summary(&d),
			 "check: ok=2 changed=1 unreachable=0 failed=0 skipped=1 (1 host)");
	ck_assert(!file_exists(out));
	ck_assert_ptr_nonnull(extdrv_find_last(&d, "log", "message",
					       "changed: [localhost] => write the greeting file"));
	assert_never_logged(&d, secret);
	extdrv_release(&d);

	/* apply: the file, outputs from set_stats, changed */
	run_action("apply", cfg, NULL, wd, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert_str_eq(extdrv_summary(&d),
			 "apply: ok=2 changed=1 unreachable=0 failed=0 skipped=1 (1 host)");
	content = test_read_file(out, NULL);
	ck_assert_ptr_nonnull(content);
	ck_assert_str_eq(content, "hello, orchd\n");
	free(content);
	o = extdrv_find_last(&d, "output", "key", "greeting");
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(op_get_str(o, "value"), "hello, orchd");
	ck_assert(!op_get_bool(o, "secret", true));
	o = extdrv_find_last(&d, "output", "key", "path");
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(op_get_str(o, "value"), out);
	o = extdrv_find_last(&d, "output", "key", "token");
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(op_get_str(o, "value"), secret);
	ck_assert(op_get_bool(o, "secret", false));
	ck_assert_str_eq(op_get_str(state_of(&d), "playbook"), "site.yml");
	ck_assert_int_eq(
		op_get_int(op_get(op_get(state_of(&d), "recap"), "localhost"), "changed", -1), 1);
	ck_assert_ptr_nonnull(extdrv_find_last(&d, "log", "message",
					       "changed: [localhost] => write the greeting file"));
	ck_assert_ptr_nonnull(
		extdrv_find_last(&d, "log", "message", "ok: [localhost] => publish the outputs"));
	assert_never_logged(&d, secret);
	extdrv_release(&d);
	/* the extra_vars file does not stay in the workdir */
	ck_assert_int_ge(asprintf(&p, "%s/extra_vars.json", wd), 0);
	ck_assert(!file_exists(p));
	free(p);

	/* apply again: nothing changes */
	run_action("apply", cfg, NULL, wd, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(!op_get_bool(d.result, "changed", true));
	ck_assert_str_eq(extdrv_summary(&d),
			 "apply: ok=2 changed=0 unreachable=0 failed=0 skipped=1 (1 host)");
	ck_assert_ptr_nonnull(extdrv_find_last(&d, "output", "key", "greeting"));
	extdrv_release(&d);

	/* plan now: nothing would change */
	run_action("plan", cfg, NULL, wd, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(!op_get_bool(d.result, "changed", true));
	extdrv_release(&d);

	/* destroy without destroy_playbook: a no-op that forgets the state */
	run_action("destroy", cfg, NULL, wd, &d);
	ck_assert(extdrv_succeeded(&d));
	ck_assert(!op_get_bool(d.result, "changed", true));
	ck_assert_str_eq(extdrv_summary(&d), "nothing to destroy (no destroy_playbook)");
	ck_assert_ptr_nonnull(extdrv_find_last(&d, "state", NULL, NULL));
	ck_assert_ptr_null(state_of(&d));
	ck_assert(file_exists(out));
	extdrv_release(&d);

	free(cfg);
	free(out);
	test_rmtree(wd);
	test_rmtree(tmp);
	free(wd);
	free(tmp);
}
END_TEST

/* An inventory file, a list inventory, and the destroy playbook. */
START_TEST(inventory_file_and_destroy)
{
	char *wd = test_tmpdir(), *tmp = test_tmpdir(), *out, *inv, *cfg;
	struct extdrv d;
	FILE *f;

	extdrv_need_tool("ansible-playbook");
	ck_assert_int_ge(asprintf(&out, "%s/greeting.txt", tmp), 0);
	ck_assert_int_ge(asprintf(&inv, "%s/hosts.ini", tmp), 0);
	f = fopen(inv, "w");
	ck_assert_ptr_nonnull(f);
	fputs("localhost ansible_connection=local "
	      "ansible_python_interpreter=\"{{ ansible_playbook_python }}\"\n",
	      f);
	fclose(f);
	ck_assert_int_ge(asprintf(&cfg,
				  "{\"playbook\":\"site.yml\",\"destroy_playbook\":\"destroy.yml\","
				  "\"inventory\":\"%s\",\"extra_vars\":{\"greeting_name\":\"file\","
				  "\"greeting_path\":\"%s\"}}",
				  inv, out),
			 0);
	run_action("apply", cfg, NULL, wd, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(file_exists(out));
	/* no secret_outputs: every output is plain */
	ck_assert(!op_get_bool(extdrv_find_last(&d, "output", "key", "token"), "secret", true));
	ck_assert_str_eq(op_get_str(extdrv_find_last(&d, "output", "key", "token"), "value"), "");
	extdrv_release(&d);

	run_action("destroy", cfg, NULL, wd, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert_str_eq(extdrv_summary(&d),
			 "destroy: ok=1 changed=1 unreachable=0 failed=0 skipped=0 (1 host)");
	ck_assert(!file_exists(out));
	ck_assert_ptr_null(state_of(&d));
	extdrv_release(&d);
	free(cfg);

	/* a list of host names: localhost gets the local connection */
	ck_assert_int_ge(asprintf(&cfg,
				  "{\"playbook\":\"site.yml\",\"inventory\":[\"localhost\"],"
				  "\"extra_vars\":{\"greeting_name\":\"list\",\"greeting_path\":"
				  "\"%s\"}}",
				  out),
			 0);
	run_action("apply", cfg, NULL, wd, &d);
	ck_assert_msg(extdrv_succeeded(&d), "%s", extdrv_summary(&d));
	ck_assert(file_exists(out));
	extdrv_release(&d);

	free(cfg);
	free(inv);
	free(out);
	test_rmtree(wd);
	test_rmtree(tmp);
	free(wd);
	free(tmp);
}
END_TEST

START_TEST(failing_play)
{
	char *wd = test_tmpdir(), *tmp = test_tmpdir(), *cfg;
	struct json_object *m;
	struct extdrv d;

	extdrv_need_tool("ansible-playbook");
	ck_assert_int_ge(asprintf(&cfg,
				  "{\"playbook\":\"site.yml\",\"extra_vars\":{\"greeting_name\":"
				  "\"orchd\",\"greeting_path\":\"%s/g.txt\",\"fail\":true}}",
				  tmp),
			 0);
	run_action("apply", cfg, NULL, wd, &d);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d),
			 "playbook site.yml failed (exit status 2): [localhost] fail "
			 "when asked to: asked to fail for orchd");
	/* the file was written before the failure */
	ck_assert(op_get_bool(d.result, "changed", false));
	m = extdrv_find_last(&d, "log", "message",
			     "failed: [localhost] => fail when asked to: asked to fail for orchd");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(op_get_str(m, "level"), "error");
	ck_assert_ptr_null(extdrv_find_last(&d, "output", NULL, NULL));
	extdrv_release(&d);
	free(cfg);
	test_rmtree(wd);
	test_rmtree(tmp);
	free(wd);
	free(tmp);
}
END_TEST

START_TEST(cancel_apply)
{
	char *wd = test_tmpdir(), *tmp = test_tmpdir(), *pb, *cfg, *marker;
	struct json_object *c;
	struct extdrv_action opts = {"apply", NULL, NULL, wd, "play: sleepy"};
	struct extdrv d;
	FILE *f;

	extdrv_need_tool("ansible-playbook");
	ck_assert_int_ge(asprintf(&pb, "%s/sleepy.yml", tmp), 0);
	ck_assert_int_ge(asprintf(&marker, "%s/after", tmp), 0);
	f = fopen(pb, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"- name: sleepy\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
		"    - ansible.builtin.command: sleep 60\n"
		"    - ansible.builtin.copy: {content: x, dest: '%s'}\n",
		marker);
	fclose(f);
	ck_assert_int_ge(asprintf(&cfg, "{\"playbook\":\"%s\"}", pb), 0);
	c = extdrv_json(cfg);
	opts.config = c;
	drive(&opts, &d);
	ck_assert(!extdrv_succeeded(&d));
	ck_assert_str_eq(extdrv_summary(&d), "ansible-playbook: cancelled");
	ck_assert_ptr_nonnull(extdrv_find_last(&d, "log", "message",
					       "cancelled: sent SIGTERM to ansible-playbook"));
	ck_assert(!file_exists(marker));
	extdrv_release(&d);
	json_object_put(c);
	free(cfg);
	free(pb);
	free(marker);
	test_rmtree(wd);
	test_rmtree(tmp);
	free(wd);
	free(tmp);
}
END_TEST

Suite *ansible_ext_suite(void)
{
	Suite *s = suite_create("ansible_ext");
	TCase *tc = tcase_create("config");
	TCase *tools = tcase_create("ansible");
	/* needs the real tools (make tools): left out by make check-fast */
	tcase_set_tags(tools, "tools");

	tcase_add_test(tc, validate_unknown_key);
	tcase_add_test(tc, validate_missing_playbook);
	tcase_add_test(tc, validate_bad_values);
	tcase_add_test(tc, missing_binary);
	tcase_add_test(tc, plan_without_check_mode);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tools, 90);
	tcase_add_test(tools, validate_ok_and_syntax_error);
	tcase_add_test(tools, lifecycle);
	tcase_add_test(tools, inventory_file_and_destroy);
	tcase_add_test(tools, failing_play);
	tcase_add_test(tools, cancel_apply);
	suite_add_tcase(s, tools);
	return s;
}
