/*
 * The full example (examples/full/pipeline.yaml) on the real tools: a
 * sops-encrypted secret flows into OpenTofu and Ansible, OpenTofu's outputs
 * flow into Ansible, and everything reads back.  It applies, applies again
 * with no change, and destroys; the secret's plaintext appears nowhere:
 * not on the console, not in the state directory, not in the reports.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "testutil.h"
#include "util.h"

/* The demo secret inside examples/secrets/secrets.enc.yaml. */
#define PLAINTEXT "demo-db-password-not-secret"

static char *state, *file;

static void setup(void)
{
	state = test_tmpdir();
	file = test_src_path("examples/full/pipeline.yaml");
	setenv("ORCHD_PASSPHRASE", "examples test passphrase", 1);
	/* What the example creates: a leftover would make the first apply
	 * report no change. */
	unlink("/tmp/orchd-examples/full-demo-tofu.txt");
	unlink("/tmp/orchd-examples/full-demo-ansible.txt");
}

static void teardown(void)
{
	test_rmtree(state);
	free(state);
	free(file);
	unsetenv("ORCHD_PASSPHRASE");
}

static int run(const char *cmd, char **err, const char *report)
{
	char *orchd = test_build_path("bin/orchd");
	char *argv[] = {orchd,
			(char *)(uintptr_t)cmd,
			file,
			(char *)(uintptr_t) "--state-dir",
			state,
			report ? (char *)(uintptr_t) "--report" : NULL,
			(char *)(uintptr_t)report,
			NULL};
	int rc = test_run(argv, NULL, err);

	free(orchd);
	return rc;
}

/* "changed" of instance id in a report. */
static int changed_in(const char *report, const char *id)
{
	json_object *r = json_object_from_file(report), *arr;
	int changed = -1;

	ck_assert_msg(r, "cannot read %s", report);
	ck_assert(json_object_object_get_ex(r, "instances", &arr));
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *o = json_object_array_get_idx(arr, i), *v;

		if (strcmp(json_object_get_string(json_object_object_get(o, "id")), id))
			continue;
		if (json_object_object_get_ex(o, "changed", &v) && v)
			changed = json_object_get_boolean(v);
	}
	json_object_put(r);
	return changed;
}

static void assert_no_plaintext(const char *where, const char *text)
{
	ck_assert_msg(!text || !strstr(text, PLAINTEXT), "plaintext secret in %s:\n%s", where,
		      text);
}

START_TEST(test_full_example_lifecycle)
{
	char *err = NULL, *rep1 = xasprintf("%s/r1.json", state);
	char *rep2 = xasprintf("%s/r2.json", state), *txt, *cmd;
	int rc;

	rc = run("run", &err, rep1);
	ck_assert_msg(rc == 0, "first run: rc=%d\n%s", rc, err);
	assert_no_plaintext("the first run's output", err);
	ck_assert_msg(strstr(err, "the password has 27 characters"), "%s", err);
	ck_assert_msg(strstr(err, "hello, the owner of /tmp/orchd-examples/full-demo-tofu.txt"),
		      "%s", err);
	ck_assert_int_eq(changed_in(rep1, "terraform.infra"), 1);
	ck_assert_int_eq(changed_in(rep1, "ansible.configure"), 1);
	free(err);

	rc = run("run", &err, rep2);
	ck_assert_msg(rc == 0, "second run: rc=%d\n%s", rc, err);
	assert_no_plaintext("the second run's output", err);
	ck_assert_int_eq(changed_in(rep2, "terraform.infra"), 0);
	ck_assert_int_eq(changed_in(rep2, "ansible.configure"), 0);
	free(err);

	txt = test_read_file(rep1, NULL);
	assert_no_plaintext("the report", txt);
	free(txt);
	/* Every file of the state directory (stacks, history, logs, reports). */
	cmd = xasprintf("grep -r -l -a '%s' '%s' >/dev/null", PLAINTEXT, state);
	ck_assert_msg(system(cmd) != 0, "plaintext secret in a file under %s", state);
	free(cmd);

	rc = run("destroy", &err, NULL);
	ck_assert_msg(rc == 0, "destroy: rc=%d\n%s", rc, err);
	assert_no_plaintext("destroy's output", err);
	ck_assert_msg(access("/tmp/orchd-examples/full-demo-tofu.txt", F_OK) != 0,
		      "OpenTofu's file is still there after destroy");
	free(err);
	free(rep1);
	free(rep2);
}
END_TEST

Suite *examples_suite(void)
{
	Suite *s = suite_create("examples");
	TCase *tc = tcase_create("full");
	/* needs the real tools (make tools): left out by make check-fast */
	tcase_set_tags(tc, "tools");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_full_example_lifecycle);
	suite_add_tcase(s, tc);
	return s;
}
