/*
 * orchd doctor: the host report, and --verify, which runs orchd's probe
 * extension in a real throwaway run and prints one verdict per attack.
 *
 * Under the defaults (strict) every attack must be contained where this
 * host has the layers (probed here as orchd probes them); under isolation
 * basic the probe must find what basic leaves open (so a verification
 * that only ever says "contained" fails here), and the exit status says
 * so.
 */
#include <check.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers/sandbox.h"
#include "testutil.h"
#include "util.h"

static char *dir;

static void setup(void)
{
	dir = test_tmpdir();
}

static void teardown(void)
{
	test_rmtree(dir);
	free(dir);
}

static int doctor(const char *a1, const char *a2, char **out, char **err)
{
	char *orchd = test_build_path("bin/orchd");
	char *argv[] = {orchd, (char *)(uintptr_t) "doctor", (char *)(uintptr_t)a1,
			(char *)(uintptr_t)a2, NULL};
	int rc = test_run(argv, out, err);

	free(orchd);
	return rc;
}

/* Check refuses messages over 4 KiB: the whole output goes to stderr, the
 * message gets its tail. */
static const char *tail(const char *text)
{
	size_t n = strlen(text);

	return n > 1500 ? text + n - 1500 : text;
}

static int count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

START_TEST(test_report_names_layers_extensions_and_tools)
{
	char *out = NULL, *err = NULL;
	int rc = doctor(NULL, NULL, &out, &err);

	fprintf(stderr, "%s%s", out, err);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, tail(err));
	for (const char *const *w =
		     (const char *const[]){"namespaces", "network namespace", "seccomp filter",
					   "landlock", "no_new_privs", "cgroup (limits)",
					   "=> isolation strict", "state engine: local",
					   "tool tofu|terraform:", NULL};
	     *w; w++)
		ck_assert_msg(strstr(out, *w), "no '%s' (the output is on stderr)", *w);
	/* every first-party extension, with its manifest's needs */
	for (const char *const *e =
		     (const char *const[]){"exec ", "terraform ", "ansible ", "secrets ", NULL};
	     *e; e++)
		ck_assert_msg(strstr(out, *e), "extension %s missing", *e);
	ck_assert_msg(strstr(out, "is given: SSH_AUTH_SOCK"), "%s", tail(out));
	/* the reaper program of the build tree is found */
	ck_assert_msg(strstr(out, "reaper program         yes: ") &&
			      strstr(out, "/libexec/orchd/orchd-reaper\n"),
		      "%s", out);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_verify_strict_contains_every_attack)
{
	const struct orchd_sandbox_host *h = orchd_sandbox_probe();
	char *out = NULL, *err = NULL;
	int rc = doctor("--verify", NULL, &out, &err);
	int nlines = count(out, "\n  contained ") + count(out, "\n  EXPOSED ");

	fprintf(stderr, "%s%s", out, err);
	ck_assert_msg(nlines >= 25, "only %d verdicts:\n%s", nlines, tail(out));
	if (h->namespaces && h->seccomp && h->netns) {
		ck_assert_msg(rc == 0 && count(out, "\n  EXPOSED ") == 0,
			      "rc=%d, %d exposed under strict (the whole output is on stderr)", rc,
			      count(out, "\n  EXPOSED "));
		ck_assert_msg(strstr(out, "under isolation strict"), "%s", tail(out));
	} else {
		/* the fallback: what only namespaces contain is exposed, and
		 * the report names the fallback */
		ck_assert_msg(rc == 1, "rc=%d\n%s", rc, tail(out));
		ck_assert_msg(strstr(out, "strict (fallback: no namespaces)"), "%s", tail(out));
	}
	ck_assert_msg(strstr(out, "attacks contained"), "%s", tail(out));
	free(out);
	free(err);
}
END_TEST

START_TEST(test_verify_basic_finds_what_basic_leaves_open)
{
	char *p = xasprintf("%s/basic.yaml", dir), *out = NULL, *err = NULL;
	FILE *f = fopen(p, "w");
	int rc;

	ck_assert_ptr_nonnull(f);
	fputs("b:\n  core: {isolation: basic}\n  exec:\n    - name: a\n      command: [true]\n", f);
	fclose(f);
	rc = doctor("--verify", p, &out, &err);
	fprintf(stderr, "%s%s", out, err);
	ck_assert_msg(rc == 1, "rc=%d\n%s", rc, tail(out));
	ck_assert_msg(strstr(out, "under isolation basic"), "%s", tail(out));
	/* no PID or mount namespace: orchd and the state directory are there */
	for (const char *const *w = (const char *const[]){"EXPOSED    see orchd's process",
							  "EXPOSED    list the state directory",
							  "EXPOSED    read the pipeline file",
							  "EXPOSED    signal orchd", NULL};
	     *w; w++)
		ck_assert_msg(strstr(out, *w), "no '%s' (the output is on stderr)", *w);
	/* the limits hold under basic too, and the passphrase is never passed */
	ck_assert_msg(strstr(out, "contained  fork without end"), "%s", tail(out));
	ck_assert_msg(strstr(out, "contained  find the passphrase"), "%s", tail(out));
	free(out);
	free(err);
	free(p);
}
END_TEST

/* The same verification as an unprivileged user (made when missing). */
START_TEST(test_verify_as_an_unprivileged_user)
{
	char *orchd = test_build_path("bin/orchd"), *out = NULL, *err = NULL;
	char *home = xasprintf("HOME=%s", dir);
	char *argv[] = {(char *)(uintptr_t) "/usr/bin/setpriv",
			(char *)(uintptr_t) "--reuid=orchdtest",
			(char *)(uintptr_t) "--regid=orchdtest",
			(char *)(uintptr_t) "--clear-groups",
			(char *)(uintptr_t) "/usr/bin/env",
			home,
			orchd,
			(char *)(uintptr_t) "doctor",
			(char *)(uintptr_t) "--verify",
			NULL};
	int rc, allowed = 0;
	struct passwd *pw;

	if (geteuid() != 0) {
		/* the suite runs as that user already: the test above is it */
		free(orchd);
		free(home);
		return;
	}
	if (getpwnam("orchdtest") == NULL) {
		char *ua[] = {(char *)(uintptr_t) "/usr/sbin/useradd",
			      (char *)(uintptr_t) "-M",
			      (char *)(uintptr_t) "-r",
			      (char *)(uintptr_t) "-U",
			      (char *)(uintptr_t) "-s",
			      (char *)(uintptr_t) "/usr/sbin/nologin",
			      (char *)(uintptr_t) "orchdtest",
			      NULL};

		ck_assert_int_eq(test_run(ua, NULL, NULL), 0);
	}
	/* a home of its own, which it must not be able to write into */
	pw = getpwnam("orchdtest");
	ck_assert_ptr_nonnull(pw);
	ck_assert_int_eq(chown(dir, pw->pw_uid, pw->pw_gid), 0);
	rc = test_run(argv, &out, &err);
	fprintf(stderr, "%s%s", out, err);
	ck_assert_msg(strstr(out, "as uid ") && !strstr(out, "as uid 0:"), "%s", tail(out));
#if defined(__SANITIZE_ADDRESS__)
	/* no RLIMIT_AS in a sanitizer build: without a cgroup, memory is open */
	if (rc == 1 && count(out, "\n  EXPOSED ") == 1 &&
	    strstr(out, "EXPOSED    allocate without end")) {
		rc = 0;
		allowed = 1;
	}
#endif
	if (rc == 0)
		ck_assert_int_eq(count(out, "\n  EXPOSED "), allowed);
	else
		/* only where this user has no namespaces: the fallback, named */
		ck_assert_msg(strstr(out, "strict (fallback: no namespaces)"), "rc=%d: %s", rc,
			      tail(out));
	free(out);
	free(err);
	free(orchd);
	free(home);
}
END_TEST

Suite *doctor_suite(void)
{
	Suite *s = suite_create("doctor");
	TCase *tc = tcase_create("doctor");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_report_names_layers_extensions_and_tools);
	tcase_add_test(tc, test_verify_strict_contains_every_attack);
	tcase_add_test(tc, test_verify_basic_finds_what_basic_leaves_open);
	tcase_add_test(tc, test_verify_as_an_unprivileged_user);
	suite_add_tcase(s, tc);
	return s;
}
