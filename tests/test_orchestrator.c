/*
 * End-to-end tests of the scheduler: the real orchd binary runs real
 * extension processes (the exec extension of the build tree, and the
 * misbehave helper under the type "misbehave") on pipelines written into a
 * temporary directory.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

struct env {
	char *dir;    /* temp dir: pipeline files, state */
	char *extdir; /* holds orchd-ext-misbehave */
	char *orchd;
};

static struct env E;

static void setup(void)
{
	char *helper, *link;

	E.dir = test_tmpdir();
	ck_assert_ptr_nonnull(E.dir);
	E.extdir = xasprintf("%s/ext", E.dir);
	ck_assert_int_eq(mkdir(E.extdir, 0700), 0);
	helper = test_build_path("tests/helpers/misbehave");
	link = xasprintf("%s/orchd-ext-misbehave", E.extdir);
	ck_assert_int_eq(symlink(helper, link), 0);
	free(helper);
	free(link);
	E.orchd = test_build_path("bin/orchd");
}

static void teardown(void)
{
	test_rmtree(E.dir);
	free(E.dir);
	free(E.extdir);
	free(E.orchd);
}

static char *write_pipeline(const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", E.dir, name);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* orchd CMD FILE --extensions-dir EXT ARGS...; returns exit code. */
static int orchd(const char *cmd, const char *file, char **out, char **err, ...)
{
	char *argv[32];
	int argc = 0, rc;
	va_list ap;
	const char *a;

	argv[argc++] = E.orchd;
	argv[argc++] = (char *)(uintptr_t)cmd;
	argv[argc++] = (char *)(uintptr_t)file;
	argv[argc++] = (char *)(uintptr_t) "--extensions-dir";
	argv[argc++] = E.extdir;
	va_start(ap, err);
	while ((a = va_arg(ap, const char *)) && argc < 31)
		argv[argc++] = (char *)(uintptr_t)a;
	va_end(ap);
	argv[argc] = NULL;
	rc = test_run(argv, out, err);
	return rc;
}

static int exists(const char *rel)
{
	char *p = xasprintf("%s/%s", E.dir, rel);
	int r = access(p, F_OK) == 0;

	free(p);
	return r;
}

START_TEST(test_run_outputs_flow_by_reference)
{
	char *f = write_pipeline(
		"p.yaml",
		"p:\n"
		"  exec:\n"
		"    - name: up\n"
		"      command: [sh, -c, 'echo version=1.2.3 >> $ORCHD_OUTPUT']\n"
		"    - name: down\n"
		"      command: [sh, -c, 'echo got $0', '${{ exec.up.outputs.version }}']\n");
	char *out = NULL, *err = NULL;
	int rc = orchd("run", f, &out, &err, (char *)NULL);

	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "got 1.2.3"), "%s", err);
	ck_assert_msg(strstr(err, "exec.up.version = 1.2.3"), "%s", err);
	ck_assert(exists(".orchd/stacks/dev-exec-up.json"));
	free(out);
	free(err);
	/* The outputs are kept in the stack: a second run of only the
	 * downstream instance resolves the reference from the engine. */
	rc = orchd("run", f, &out, &err, "--target", "exec.down", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "got 1.2.3"), "%s", err);
	free(out);
	free(err);
	free(f);
}
END_TEST

/* A value that is exactly one reference keeps the output's JSON type; one
 * inside a longer string is text; $${{ is a literal ${{. */
START_TEST(test_reference_types_and_escape)
{
	char *f = write_pipeline("p.yaml",
				 "p:\n"
				 "  exec:\n"
				 "    - name: up\n"
				 "      command: [sh, -c, 'echo {\\\"cmd\\\": [\\\"echo\\\", "
				 "\\\"typed\\\"], \\\"n\\\": 5} > $ORCHD_OUTPUT']\n"
				 "    - name: down\n"
				 "      command: '${{ exec.up.outputs.cmd }}'\n"
				 "    - name: text\n"
				 "      command: [echo, 'n is ${{ exec.up.outputs.n }}', "
				 "'$${{ exec.up.outputs.n }}']\n");
	char *err = NULL;
	int rc = orchd("run", f, NULL, &err, (char *)NULL);

	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "[exec.down] typed"), "%s", err);
	ck_assert_msg(strstr(err, "n is 5 ${{ exec.up.outputs.n }}"), "%s", err);
	free(err);
	/* A config only known after its upstream applied is validated again
	 * with the real values, before its own action. */
	free(f);
	/* (its own directory: pipelines beside each other share .orchd) */
	{
		char *two = xasprintf("%s/two", E.dir);

		ck_assert_int_eq(mkdir(two, 0700), 0);
		free(two);
	}
	f = write_pipeline("two/p.yaml",
			   "p2:\n"
			   "  exec:\n"
			   "    - name: up\n"
			   "      command: [sh, -c, 'echo {\\\"n\\\": 5} > $ORCHD_OUTPUT']\n"
			   "    - name: down\n"
			   "      command: '${{ exec.up.outputs.n }}'\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "[exec.down] error: validate failed: extension reported failure: "
				  "invalid configuration: command: must be a list of strings"),
		      "%s", err);
	free(err);
	free(f);
}
END_TEST

/* plan uses an upstream's mock_outputs while it was never applied; a
 * missing output key fails the consumer clearly. */
START_TEST(test_plan_mock_outputs_and_missing_key)
{
	char *f = write_pipeline(
		"p.yaml", "p:\n"
			  "  exec:\n"
			  "    - name: up\n"
			  "      command: [sh, -c, 'echo url=http://real >> $ORCHD_OUTPUT']\n"
			  "      mock_outputs: {url: 'http://mock'}\n"
			  "    - name: down\n"
			  "      command: [echo, '${{ exec.up.outputs.url }}']\n"
			  "      plan_command: [echo, 'plan sees ${{ exec.up.outputs.url }}']\n"
			  "    - name: bad\n"
			  "      command: [echo, '${{ exec.up.outputs.nope }}']\n");
	char *err = NULL;
	int rc = orchd("plan", f, NULL, &err, "-t", "exec.down", "-t", "exec.up", (char *)NULL);

	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "plan sees http://mock"), "%s", err);
	free(err);
	rc = orchd("run", f, NULL, &err, "--keep-going", (char *)NULL);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "[exec.bad]  error: exec.up has no output 'nope'"), "%s", err);
	ck_assert_msg(strstr(err, "[exec.down] http://real"), "%s", err);
	free(err);
	free(f);
}
END_TEST

START_TEST(test_failure_skips_dependents_fail_fast)
{
	char *f = write_pipeline("p.yaml", "p:\n"
					   "  core: {parallelism: 1}\n"
					   "  exec:\n"
					   "    - name: bad\n"
					   "      command: [sh, -c, 'exit 3']\n"
					   "    - name: after\n"
					   "      depends_on: [bad]\n"
					   "      command: ['true']\n"
					   "    - name: other\n"
					   "      command: [sh, -c, 'echo other ran']\n");
	char *err = NULL;
	int rc = orchd("run", f, NULL, &err, (char *)NULL);

	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "skipped: exec.bad failed"), "%s", err);
	/* parallelism 1 and file order: "other" never starts after the failure. */
	ck_assert_msg(!strstr(err, "other ran"), "%s", err);
	free(err);
	free(f);
}
END_TEST

START_TEST(test_keep_going_runs_independent_branches)
{
	char *f = write_pipeline("p.yaml", "p:\n"
					   "  core: {parallelism: 1}\n"
					   "  exec:\n"
					   "    - name: bad\n"
					   "      command: [sh, -c, 'exit 3']\n"
					   "    - name: after\n"
					   "      depends_on: [bad]\n"
					   "      command: ['true']\n"
					   "    - name: other\n"
					   "      command: [sh, -c, 'echo other ran']\n");
	char *err = NULL;
	int rc = orchd("run", f, NULL, &err, "--keep-going", (char *)NULL);

	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "other ran"), "%s", err);
	ck_assert_msg(strstr(err, "skipped: exec.bad failed"), "%s", err);
	free(err);
	free(f);
}
END_TEST

START_TEST(test_validate_before_apply_changes_nothing)
{
	char *f = write_pipeline("p.yaml", "p:\n"
					   "  exec:\n"
					   "    - name: good\n"
					   "      command: [sh, -c, 'touch ran']\n"
					   "    - name: broken\n"
					   "      comand: [oops]\n");
	char *err = NULL;
	int rc = orchd("run", f, NULL, &err, (char *)NULL);

	ck_assert_int_eq(rc, 2);
	ck_assert_msg(strstr(err, "nothing was changed"), "%s", err);
	ck_assert(!exists(".orchd/stacks/dev-exec-good.json"));
	free(err);
	free(f);
}
END_TEST

START_TEST(test_retryable_failure_is_retried)
{
	char *f = write_pipeline("p.yaml", "p:\n"
					   "  core:\n"
					   "    execution_defaults:\n"
					   "      max_attempts: 3\n"
					   "      retry_backoff: {initial: 10ms, max: 20ms}\n"
					   "  misbehave:\n"
					   "    - name: flaky\n"
					   "      only_action: apply\n"
					   "      mode: failure\n");
	char *err = NULL, *rep = xasprintf("%s/report.json", E.dir), *txt;
	int rc = orchd("run", f, NULL, &err, "--report", rep, (char *)NULL);

	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "attempt 1 of 3 failed"), "%s", err);
	ck_assert_msg(strstr(err, "attempt 2 of 3 failed"), "%s", err);
	ck_assert_msg(!strstr(err, "attempt 3 of 3 failed"), "%s", err);
	txt = test_read_file(rep, NULL);
	ck_assert_ptr_nonnull(txt);
	ck_assert_msg(strstr(txt, "\"attempts\":3"), "%s", txt);
	free(txt);
	free(rep);
	free(err);
	free(f);
}
END_TEST

START_TEST(test_retry_then_success)
{
	char *counter = xasprintf("%s/counter/count", E.dir);
	char *text = xasprintf("p:\n"
			       "  misbehave:\n"
			       "    - name: flaky\n"
			       "      execution: {max_attempts: 5, retry_backoff: {initial: 5ms}}\n"
			       "      isolation: {paths: {write: [counter]}}\n"
			       "      only_action: apply\n"
			       "      mode: failuntil\n"
			       "      n: 3\n"
			       "      file: %s\n"
			       "  exec:\n"
			       "    - name: after\n"
			       "      command: [sh, -c, 'echo attempt=$0', 'v${{ "
			       "misbehave.flaky.outputs.attempt }}']\n",
			       counter);
	char *f = write_pipeline("p.yaml", text), *err = NULL;
	int rc = orchd("run", f, NULL, &err, (char *)NULL);

	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "attempt 2 of 5 failed: extension reported failure: not yet"),
		      "%s", err);
	ck_assert_msg(strstr(err, "attempt=v3"), "%s", err);
	free(err);
	free(f);
	free(text);
	free(counter);
}
END_TEST

START_TEST(test_lock_serializes_runs)
{
	char *f = write_pipeline("p.yaml", "p:\n"
					   "  exec:\n"
					   "    - name: slow\n"
					   "      command: [sleep, '3']\n");
	char *ready = xasprintf("%s/.orchd/lock.info", E.dir), *err = NULL;
	pid_t pid = fork();
	int status, waited = 0, rc;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 2);
		execl(E.orchd, "orchd", "run", f, (char *)NULL);
		_exit(127);
	}
	while (access(ready, F_OK) != 0 && waited < 200) {
		usleep(20000);
		waited++;
	}
	/* The second run gives up after 200ms and names the holder. */
	rc = orchd("run", f, NULL, &err, "--lock-timeout", "200ms", (char *)NULL);
	ck_assert_int_eq(rc, 3);
	ck_assert_msg(strstr(err, "is locked by pid"), "%s", err);
	free(err);
	/* With a long enough timeout it waits for the first and succeeds. */
	rc = orchd("run", f, NULL, &err, "--lock-timeout", "1m", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(err);
	free(ready);
	free(f);
}
END_TEST

START_TEST(test_stale_and_only_stale)
{
	char *f = write_pipeline(
		"p.yaml",
		"p:\n"
		"  exec:\n"
		"    - name: up\n"
		"      command: [sh, -c, 'cat ../../../../../../v >> $ORCHD_OUTPUT 2>/dev/null "
		"|| echo v=1 >> $ORCHD_OUTPUT']\n"
		"    - name: down\n"
		"      command: [sh, -c, 'echo down got $0', '${{ exec.up.outputs.v }}']\n");
	char *out = NULL, *err = NULL, *vfile = xasprintf("%s/v", E.dir);
	char *up_cmd = NULL;
	FILE *vf;
	int rc;

	(void)up_cmd;
	ck_assert_int_eq(orchd("run", f, NULL, NULL, (char *)NULL), 0);
	rc = orchd("status", f, &out, NULL, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(!strstr(out, "yes ("), "%s", out);
	free(out);
	/* The upstream's output changes: only it runs, then down is stale. */
	vf = fopen(vfile, "w");
	fputs("v=2\n", vf);
	fclose(vf);
	free(f);
	f = write_pipeline(
		"p.yaml",
		"p:\n"
		"  exec:\n"
		"    - name: up\n"
		"      command: [sh, -c, 'cat $0 >> $ORCHD_OUTPUT', '__V__']\n"
		"    - name: down\n"
		"      command: [sh, -c, 'echo down got $0', '${{ exec.up.outputs.v }}']\n");
	{
		char *t = test_read_file(f, NULL), *pos = strstr(t, "__V__");
		char *nt = xasprintf("%.*s%s%s", (int)(pos - t), t, vfile, pos + 5);
		FILE *pf = fopen(f, "w");

		fputs(nt, pf);
		fclose(pf);
		free(t);
		free(nt);
	}
	ck_assert_int_eq(orchd("run", f, NULL, NULL, "--target", "exec.up", (char *)NULL), 0);
	rc = orchd("status", f, &out, NULL, (char *)NULL);
	ck_assert_msg(strstr(out, "yes (upstream outputs changed)"), "%s", out);
	free(out);
	rc = orchd("run", f, NULL, &err, "--only-stale", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "down got 2"), "%s", err);
	ck_assert_msg(!strstr(err, "[exec.up]"), "up ran again:\n%s", err);
	free(err);
	rc = orchd("status", f, &out, NULL, (char *)NULL);
	ck_assert_msg(!strstr(out, "yes ("), "%s", out);
	free(out);
	free(vfile);
	free(f);
}
END_TEST

/* status and --only-stale use one rule: an instance whose command was
 * edited is "stale (config changed)", and --only-stale runs it. */
START_TEST(test_config_change_is_stale_for_status_and_only_stale)
{
	char *f = write_pipeline("p.yaml", "p:\n"
					   "  exec:\n"
					   "    - name: a\n"
					   "      command: [echo, one]\n"
					   "    - name: b\n"
					   "      command: [echo, b ran]\n");
	char *out = NULL, *err = NULL;
	int rc;

	ck_assert_int_eq(orchd("run", f, NULL, NULL, (char *)NULL), 0);
	free(f);
	f = write_pipeline("p.yaml", "p:\n"
				     "  exec:\n"
				     "    - name: a\n"
				     "      command: [echo, two]\n"
				     "    - name: b\n"
				     "      command: [echo, b ran]\n");
	rc = orchd("status", f, &out, NULL, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(strstr(out, "exec.a") && strstr(out, "yes (config changed)"), "%s", out);
	ck_assert_msg(!strstr(strstr(out, "exec.b"), "yes ("), "%s", out);
	free(out);
	rc = orchd("run", f, NULL, &err, "--only-stale", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "[exec.a] two"), "the stale instance did not run:\n%s", err);
	ck_assert_msg(!strstr(err, "b ran"), "a fresh instance ran:\n%s", err);
	free(err);
	rc = orchd("status", f, &out, NULL, "--json", (char *)NULL);
	ck_assert_msg(!strstr(out, "\"stale\": true"), "%s", out);
	free(out);
	free(f);
}
END_TEST

/* Nothing to do is a success with an empty report, however it comes. */
START_TEST(test_nothing_to_do_is_success)
{
	char *f = write_pipeline("p.yaml", "p:\n"
					   "  exec:\n"
					   "    - name: a\n"
					   "      command: ['true']\n"
					   "    - name: b\n"
					   "      enabled: false\n"
					   "      command: ['true']\n");
	char *g = write_pipeline("q.yaml", "q:\n"
					   "  core: {state_dir: .orchd}\n"
					   "  exec:\n"
					   "    - {name: x, enabled: false, command: ['true']}\n");
	char *err = NULL, *rep, *repfile = xasprintf("%s/nothing.json", E.dir);
	int rc;

	ck_assert_int_eq(orchd("run", f, NULL, NULL, (char *)NULL), 0);
	/* nothing stale */
	rc = orchd("run", f, NULL, &err, "--only-stale", "--report", repfile, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "nothing to do"), "%s", err);
	ck_assert_msg(!strstr(err, "error"), "%s", err);
	rep = test_read_file(repfile, NULL);
	ck_assert_ptr_nonnull(rep);
	{
		json_object *r = json_tokener_parse(rep), *v;

		ck_assert_msg(r, "%s", rep);
		ck_assert(json_object_object_get_ex(r, "exit_code", &v));
		ck_assert_int_eq(json_object_get_int(v), 0);
		ck_assert(json_object_object_get_ex(r, "instances", &v));
		ck_assert_uint_eq(json_object_array_length(v), 0);
		json_object_put(r);
	}
	free(rep);
	free(err);
	/* everything excluded */
	rc = orchd("run", f, NULL, &err, "--exclude", "exec.a", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	free(err);
	/* nothing failed last time */
	rc = orchd("run", f, NULL, &err, "--only-failed", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	free(err);
	/* every instance disabled */
	rc = orchd("run", g, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(!strstr(err, "cannot"), "%s", err);
	free(err);
	free(repfile);
	free(f);
	free(g);
}
END_TEST

START_TEST(test_grouped_output_and_json_logs)
{
	char *f = write_pipeline(
		"p.yaml", "p:\n"
			  "  exec:\n"
			  "    - name: a\n"
			  "      command: [sh, -c, 'echo a1; sleep 0.3; echo a2']\n"
			  "    - name: b\n"
			  "      command: [sh, -c, 'sleep 0.1; echo b1; sleep 0.3; echo b2']\n");
	char *err = NULL, *a1, *a2, *b1, *line;
	int rc = orchd("run", f, NULL, &err, "--output", "grouped", "-j", "2", (char *)NULL),
	    njson = 0;

	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	a1 = strstr(err, "a1");
	a2 = strstr(err, "a2");
	b1 = strstr(err, "b1");
	ck_assert_msg(a1 && a2 && b1, "%s", err);
	/* a's lines are one block: b1 is not between them. */
	ck_assert_msg(!(b1 > a1 && b1 < a2), "not grouped:\n%s", err);
	free(err);
	rc = orchd("run", f, NULL, &err, "--log-format", "json", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	for (line = strtok(err, "\n"); line; line = strtok(NULL, "\n")) {
		json_object *o;

		if (line[0] != '{')
			continue;
		o = json_tokener_parse(line);
		ck_assert_msg(o, "not JSON: %s", line);
		ck_assert(json_object_object_get_ex(o, "level", NULL));
		ck_assert(json_object_object_get_ex(o, "instance", NULL));
		json_object_put(o);
		njson++;
	}
	ck_assert_int_ge(njson, 4);
	free(err);
	free(f);
}
END_TEST

/* kill -9 of orchd mid-run, several times: the state stays valid and the
 * next run takes over the dead run's lock and completes. */
START_TEST(test_kill9_mid_run_leaves_valid_state)
{
	struct op_buf sb = OP_BUF_INIT;
	char *f, *out = NULL, *err = NULL;
	int rc;

	op_buf_addstr(&sb, "p:\n  core: {parallelism: 4}\n  exec:\n");
	for (int i = 0; i < 24; i++)
		op_buf_addf(&sb,
			    "    - name: s%d\n"
			    "      command: [sh, -c, 'sleep 0.0%d; echo v=%d >> $ORCHD_OUTPUT']\n",
			    i, i % 10, i);
	f = write_pipeline("p.yaml", op_buf_str(&sb));
	op_buf_release(&sb);
	for (int round = 0; round < 4; round++) {
		pid_t pid = fork();
		int status;

		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			int fd = open("/dev/null", O_WRONLY);

			dup2(fd, 2);
			execl(E.orchd, "orchd", "run", f, (char *)NULL);
			_exit(127);
		}
		usleep(100000 + 70000 * round);
		kill(pid, SIGKILL);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		/* Every stack file written so far parses. */
		rc = orchd("status", f, &out, &err, (char *)NULL);
		ck_assert_msg(rc == 0, "round %d: status rc=%d\n%s", round, rc, err);
		free(out);
		free(err);
	}
	rc = orchd("run", f, NULL, &err, "--lock-timeout", "10s", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	free(err);
	rc = orchd("outputs", f, &out, &err, "--json", (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(strstr(out, "\"v\":\"23\""), "%s", out);
	free(out);
	free(err);
	free(f);
}
END_TEST

START_TEST(test_secret_outputs_masked_everywhere)
{
	char *f = write_pipeline(
		"p.yaml",
		"p:\n"
		"  exec:\n"
		"    - name: s\n"
		"      secret_outputs: [token]\n"
		"      command: [sh, -c, 'echo token=hunter2-very-secret >> "
		"$ORCHD_OUTPUT']\n"
		"    - name: use\n"
		"      command: [sh, -c, 'echo using $0', '${{ exec.s.outputs.token }}']\n");
	char *err = NULL, *junit = xasprintf("%s/junit.xml", E.dir);
	char *rep = xasprintf("%s/report.json", E.dir), *txt;
	int rc;

	setenv("ORCHD_PASSPHRASE", "test passphrase", 1);
	rc = orchd("run", f, NULL, &err, "--report", rep, "--junit", junit, (char *)NULL);
	unsetenv("ORCHD_PASSPHRASE");
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(!strstr(err, "hunter2"), "%s", err);
	ck_assert_msg(strstr(err, "using ***"), "%s", err);
	txt = test_read_file(rep, NULL);
	ck_assert_msg(txt && !strstr(txt, "hunter2"), "%s", txt);
	free(txt);
	txt = test_read_file(junit, NULL);
	ck_assert_msg(txt && !strstr(txt, "hunter2"), "%s", txt);
	ck_assert_msg(strstr(txt, "<testcase"), "%s", txt);
	free(txt);
	{
		char *cmd = xasprintf("grep -r -l hunter2 %s/.orchd", E.dir);
		ck_assert_msg(system(cmd) != 0, "plaintext secret found on disk");
		free(cmd);
	}
	free(rep);
	free(junit);
	free(err);
	free(f);
}
END_TEST

START_TEST(test_secret_without_passphrase_fails_before_writing)
{
	char *f = write_pipeline(
		"p.yaml", "p:\n"
			  "  exec:\n"
			  "    - name: s\n"
			  "      secret_outputs: [token]\n"
			  "      command: [sh, -c, 'echo token=hunter2 >> $ORCHD_OUTPUT']\n");
	char *err = NULL;
	int rc;

	unsetenv("ORCHD_PASSPHRASE");
	unsetenv("ORCHD_PASSPHRASE_FILE");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_int_eq(rc, 3);
	ck_assert_msg(strstr(err, "no passphrase is set"), "%s", err);
	/* exec's manifest says secret_outputs makes secrets: refused before
	 * the command ran */
	ck_assert_msg(strstr(err, "nothing was run"), "%s", err);
	ck_assert_msg(!strstr(err, "success"), "%s", err);
	{
		char *cmd = xasprintf("grep -r -l hunter2 %s/.orchd", E.dir);
		ck_assert_msg(system(cmd) != 0, "plaintext secret found on disk");
		free(cmd);
	}
	free(err);
	free(f);
}
END_TEST

/* An extension whose manifest says it stores secrets (terraform: its
 * state) needs the passphrase before anything runs, or what it did could
 * not be recorded. */
START_TEST(test_secret_storing_extension_needs_passphrase_first)
{
	char *f = write_pipeline("p.yaml", "p:\n"
					   "  exec:\n"
					   "    - name: first\n"
					   "      command: [sh, -c, 'echo ran > first-ran']\n"
					   "  terraform:\n"
					   "    - name: t\n"
					   "      source: .\n");
	char *err = NULL;
	int rc;

	unsetenv("ORCHD_PASSPHRASE");
	unsetenv("ORCHD_PASSPHRASE_FILE");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_int_eq(rc, 3);
	ck_assert_msg(strstr(err, "orchd: error: terraform.t: extension terraform stores secrets, "
				  "and no passphrase is set (set ORCHD_PASSPHRASE or "
				  "ORCHD_PASSPHRASE_FILE); nothing was run"),
		      "%s", err);
	ck_assert_msg(!strstr(err, "[exec.first]"), "%s", err);
	free(err);
	free(f);
}
END_TEST

START_TEST(test_sigterm_interrupts_and_writes_report)
{
	char *f = write_pipeline("p.yaml", "p:\n"
					   "  exec:\n"
					   "    - name: slow\n"
					   "      command: [sleep, '60']\n");
	char *rep = xasprintf("%s/report.json", E.dir), *junit = xasprintf("%s/j.xml", E.dir);
	char *ready = xasprintf("%s/.orchd/runs", E.dir);
	pid_t pid = fork();
	int status, waited = 0;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 2);
		execl(E.orchd, "orchd", "run", f, "--report", rep, "--junit", junit, (char *)NULL);
		_exit(127);
	}
	/* Wait until the run has started its step (its run directory exists
	 * and a process group runs sleep). */
	while (access(ready, F_OK) != 0 && waited < 200) {
		usleep(50000);
		waited++;
	}
	usleep(300000);
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 143);
	ck_assert_msg(access(rep, F_OK) == 0, "no report after SIGTERM");
	ck_assert_msg(access(junit, F_OK) == 0, "no junit after SIGTERM");
	free(ready);
	free(rep);
	free(junit);
	free(f);
}
END_TEST

START_TEST(test_plan_detailed_exitcode_and_destroy)
{
	char *f =
		write_pipeline("p.yaml", "p:\n"
					 "  exec:\n"
					 "    - name: a\n"
					 "      command: [sh, -c, 'echo x=1 >> $ORCHD_OUTPUT']\n"
					 "      destroy_command: [sh, -c, 'echo destroying a']\n"
					 "    - name: b\n"
					 "      depends_on: [a]\n"
					 "      command: ['true']\n"
					 "      destroy_command: [sh, -c, 'echo destroying b']\n");
	char *err = NULL;
	int rc = orchd("plan", f, NULL, &err, "--detailed-exitcode", (char *)NULL);
	char *pa, *pb;

	ck_assert_msg(rc == 2, "rc=%d\n%s", rc, err);
	free(err);
	ck_assert_int_eq(orchd("run", f, NULL, NULL, (char *)NULL), 0);
	ck_assert(exists(".orchd/stacks/dev-exec-a.json"));
	rc = orchd("destroy", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	pa = strstr(err, "destroying a");
	pb = strstr(err, "destroying b");
	ck_assert_msg(pa && pb && pb < pa, "destroy not in reverse order:\n%s", err);
	ck_assert(!exists(".orchd/stacks/dev-exec-a.json"));
	ck_assert(!exists(".orchd/stacks/dev-exec-b.json"));
	free(err);
	free(f);
}
END_TEST

Suite *orchestrator_suite(void)
{
	Suite *s = suite_create("orchestrator");
	TCase *tc = tcase_create("run");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_run_outputs_flow_by_reference);
	tcase_add_test(tc, test_reference_types_and_escape);
	tcase_add_test(tc, test_plan_mock_outputs_and_missing_key);
	tcase_add_test(tc, test_failure_skips_dependents_fail_fast);
	tcase_add_test(tc, test_keep_going_runs_independent_branches);
	tcase_add_test(tc, test_validate_before_apply_changes_nothing);
	tcase_add_test(tc, test_retryable_failure_is_retried);
	tcase_add_test(tc, test_retry_then_success);
	tcase_add_test(tc, test_lock_serializes_runs);
	tcase_add_test(tc, test_stale_and_only_stale);
	tcase_add_test(tc, test_config_change_is_stale_for_status_and_only_stale);
	tcase_add_test(tc, test_nothing_to_do_is_success);
	tcase_add_test(tc, test_grouped_output_and_json_logs);
	tcase_add_test(tc, test_kill9_mid_run_leaves_valid_state);
	tcase_add_test(tc, test_secret_outputs_masked_everywhere);
	tcase_add_test(tc, test_secret_without_passphrase_fails_before_writing);
	tcase_add_test(tc, test_secret_storing_extension_needs_passphrase_first);
	tcase_add_test(tc, test_sigterm_interrupts_and_writes_report);
	tcase_add_test(tc, test_plan_detailed_exitcode_and_destroy);
	suite_add_tcase(s, tc);
	return s;
}
