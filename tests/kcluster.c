/*
 * tests/kcluster: the tests' Kubernetes control plane (see kcluster.h).
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kcluster.h"
#include "testutil.h"

static char kubeconfig[4096];
static pid_t owner;	 /* the runner: a test's forked process inherits the atexit */
static char *dir;	 /* the cluster's directory, when we started it */
static char failed[512]; /* why the start failed, for every test */

static void stop(void)
{
	char *script, *cmd;

	if (!dir || getpid() != owner)
		return;
	script = test_src_path("tests/cluster.sh");
	if (asprintf(&cmd, "'%s' down '%s' >/dev/null 2>&1", script, dir) >= 0) {
		if (system(cmd) != 0)
			fprintf(stderr, "kcluster: stopping the cluster in %s failed\n", dir);
		free(cmd);
	}
	test_rmtree(dir);
	free(dir);
	free(script);
	dir = NULL;
}

void kcluster_setup(void)
{
	const char *given = getenv("ORCHD_TEST_KUBECONFIG");
	char *script, *cmd;
	int rc;

	if (kubeconfig[0] || failed[0])
		return;
	if (given && *given) {
		snprintf(kubeconfig, sizeof(kubeconfig), "%s", given);
		return;
	}
	dir = test_tmpdir();
	script = test_src_path("tests/cluster.sh");
	/* stdout (the ready line with the start-up time) to stderr: Check's
	 * output stays one summary */
	if (!dir || asprintf(&cmd, "'%s' up '%s/cluster' --watch %ld 1>&2", script, dir,
			     (long)getpid()) < 0) {
		snprintf(failed, sizeof(failed), "kcluster: out of memory or no temporary dir");
		free(script);
		return;
	}
	rc = system(cmd);
	free(cmd);
	free(script);
	if (rc != 0) {
		snprintf(failed, sizeof(failed),
			 "kcluster: tests/cluster.sh up failed (status %d): see its output above",
			 rc);
		return;
	}
	snprintf(kubeconfig, sizeof(kubeconfig), "%s/cluster/kubeconfig", dir);
	owner = getpid();
	atexit(stop);
}

void kcluster_teardown(void)
{
	/* the cluster outlives the test case: stopped at exit */
}

const char *kcluster_kubeconfig(void)
{
	ck_assert_msg(!failed[0], "%s", failed);
	ck_assert_msg(kubeconfig[0], "kcluster_setup() was not run");
	return kubeconfig;
}

char *kcluster_sh(int *code, const char *fmt, ...)
{
	char *cmd, *full, *out = NULL;
	char *argv[] = {(char *)(uintptr_t) "/bin/sh", (char *)(uintptr_t) "-c", NULL, NULL};
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(rc, 0);
	ck_assert_int_ge(asprintf(&full, "KUBECONFIG='%s'; export KUBECONFIG; %s",
				  kcluster_kubeconfig(), cmd),
			 0);
	argv[2] = full;
	rc = test_run(argv, &out, NULL);
	free(full);
	free(cmd);
	if (code)
		*code = rc;
	return out ? out : strdup("");
}
