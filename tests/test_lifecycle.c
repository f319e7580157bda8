/*
 * Lifecycle semantics, end to end: the real orchd binary and small
 * extensions written here in sh (real processes speaking the protocol), for
 * what PROTOCOL.md promises about the handshake, timeouts, optional actions
 * and incompatible extensions.
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "util.h"

static char *dir, *extdir, *orchd_bin;

static void setup(void)
{
	dir = test_tmpdir();
	ck_assert_ptr_nonnull(dir);
	extdir = xasprintf("%s/ext", dir);
	ck_assert_int_eq(mkdir(extdir, 0700), 0);
	orchd_bin = test_build_path("bin/orchd");
}

static void teardown(void)
{
	test_rmtree(dir);
	free(dir);
	free(extdir);
	free(orchd_bin);
}

/* An extension TYPE whose executable is the sh script BODY. */
static void write_ext(const char *type, const char *body)
{
	char *p = xasprintf("%s/orchd-ext-%s", extdir, type);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "#!/bin/sh\n%s", body);
	fclose(f);
	ck_assert_int_eq(chmod(p, 0755), 0);
	free(p);
}

static char *write_pipeline(const char *text)
{
	char *p = xasprintf("%s/p.yaml", dir);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* orchd CMD FILE --extensions-dir EXT ARGS... (NULL-terminated); the exit code. */
static int orchd(const char *cmd, const char *file, char **out, char **err, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	const char *a;

	argv[argc++] = orchd_bin;
	argv[argc++] = (char *)(uintptr_t)cmd;
	argv[argc++] = (char *)(uintptr_t)file;
	argv[argc++] = (char *)(uintptr_t) "--extensions-dir";
	argv[argc++] = extdir;
	va_start(ap, err);
	while ((a = va_arg(ap, const char *)) && argc < 31)
		argv[argc++] = (char *)(uintptr_t)a;
	va_end(ap);
	argv[argc] = NULL;
	return test_run(argv, out, err);
}

#define HELLO(name, actions)                                                                    \
	"read -r hello\n"                                                                       \
	"echo '{\"type\":\"hello\",\"protocol\":1,\"name\":\"" name "\",\"version\":\"1.0.0\"," \
	"\"actions\":" actions "}'\n"

/* An extension that never says hello: the handshake timeout bounds it,
 * with no instance timeout set. */
START_TEST(test_no_hello_is_bounded)
{
	char *f, *err = NULL;
	int rc;

	write_ext("silent", "exec sleep 600\n");
	f = write_pipeline("p:\n"
			   "  silent:\n"
			   "    - name: a\n"
			   "      execution: {handshake_timeout: 1s, grace: 1s}\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 1, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "no hello from the extension within 1s"), "%s", err);
	ck_assert_msg(strstr(err, "validate could not run every instance"), "%s", err);
	free(err);
	free(f);
}
END_TEST

/* The instance's timeout bounds validate too. */
START_TEST(test_timeout_bounds_validate)
{
	char *f, *err = NULL;
	int rc;

	write_ext("slowval", HELLO("slowval", "[\"validate\",\"apply\"]") "exec sleep 600\n");
	f = write_pipeline("p:\n"
			   "  slowval:\n"
			   "    - name: b\n"
			   "      execution: {timeout: 1s, grace: 0}\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 1, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "validate could not run: timed out after 1s"), "%s", err);
	free(err);
	free(f);
}
END_TEST

/* An extension that needs a newer orchd: exit 3, saying what would fit;
 * one that refuses the handshake (no common protocol) likewise. */
START_TEST(test_incompatible_extension)
{
	char *f, *err = NULL;
	int rc;

	write_ext("newer", "read -r hello\n"
			   "echo '{\"type\":\"hello\",\"protocol\":1,\"name\":\"newer\","
			   "\"version\":\"2.0.0\",\"min_orchd_version\":\"9.1\","
			   "\"actions\":[\"validate\",\"apply\"]}'\n"
			   "read -r action\n");
	write_ext("proto9", "read -r hello\n"
			    "echo '{\"type\":\"error\",\"message\":\"proto9 speaks protocol "
			    "9..9\"}'\n"
			    "exit 1\n");
	write_ext("liar", HELLO("other", "[\"validate\",\"apply\"]") "read -r action\n");
	f = write_pipeline("p:\n  liar:\n    - name: a\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 1, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "hello: the extension calls itself 'other', but it was "
				  "started for type 'liar'"),
		      "%s", err);
	free(err);
	free(f);
	f = write_pipeline("p:\n  newer:\n    - name: a\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 3, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "incompatible extension: extension newer 2.0.0 requires "
				  "orchd >= 9.1 (this is "),
		      "%s", err);
	ck_assert_msg(strstr(err, "orchd 9.1 or later, or an older version of the extension, "
				  "would fit"),
		      "%s", err);
	ck_assert_msg(!strstr(err, "rejected by validate"), "%s", err);
	free(err);
	free(f);
	f = write_pipeline("p:\n  proto9:\n    - name: a\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 3, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "incompatible extension: it refused the handshake: proto9 "
				  "speaks protocol 9..9 (orchd "),
		      "%s", err);
	free(err);
	free(f);
}
END_TEST

/* Only apply is required: without validate the config is not checked,
 * without plan the plan says "changes unknown" (a possible change for
 * --detailed-exitcode), without destroy the stack is forgotten. */
START_TEST(test_optional_actions)
{
	char *f, *out = NULL, *err = NULL;
	int rc;

	write_ext("onlyapply",
		  HELLO("onlyapply", "[\"apply\"]") "read -r action || exit 0\n"
						    "echo '{\"type\":\"output\",\"key\":"
						    "\"k\",\"value\":1}'\n"
						    "echo '{\"type\":\"result\",\"status\":"
						    "\"success\",\"changed\":true}'\n");
	f = write_pipeline("p:\n  onlyapply:\n    - name: a\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "the extension has no validate action"), "%s", err);
	free(err);
	rc = orchd("plan", f, &out, &err, "--detailed-exitcode", (char *)NULL);
	ck_assert_msg(rc == 2, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "has no plan action"), "%s", err);
	ck_assert_msg(strstr(err, "changes unknown"), "%s", err);
	free(out);
	free(err);
	rc = orchd("outputs", f, &out, NULL, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(strstr(out, "k"), "%s", out);
	free(out);
	rc = orchd("destroy", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "has no destroy action: nothing was torn down"), "%s", err);
	free(err);
	rc = orchd("outputs", f, &out, &err, (char *)NULL);
	ck_assert_msg(!strstr(out, "k"), "rc=%d\n%s%s", rc, out, err);
	free(out);
	free(err);
	free(f);
}
END_TEST

/* Staleness is transitive: one --only-stale run brings a three-level chain
 * up to date after its top changed. */
START_TEST(test_staleness_is_transitive)
{
	char *vfile = xasprintf("%s/v", dir), *f, *text, *out = NULL, *err = NULL;
	FILE *vf;
	int rc;

	vf = fopen(vfile, "w");
	fputs("v=1\n", vf);
	fclose(vf);
	text = xasprintf(
		"p:\n"
		"  exec:\n"
		"    - name: top\n"
		"      command: [sh, -c, 'cat \"$0\" >> $ORCHD_OUTPUT', '%s']\n"
		"    - name: mid\n"
		"      command: [sh, -c, 'echo m=\"$0\" >> $ORCHD_OUTPUT', "
		"'${{ exec.top.outputs.v }}']\n"
		"    - name: low\n"
		"      command: [sh, -c, 'echo low got \"$0\"', '${{ exec.mid.outputs.m }}']\n"
		"      execution: {timeout: 30s}\n"
		"  core: {isolation: basic}\n",
		vfile);
	f = write_pipeline(text);
	ck_assert_int_eq(orchd("run", f, NULL, NULL, (char *)NULL), 0);
	vf = fopen(vfile, "w");
	fputs("v=2\n", vf);
	fclose(vf);
	ck_assert_int_eq(orchd("run", f, NULL, NULL, "--target", "exec.top", (char *)NULL), 0);
	rc = orchd("status", f, &out, NULL, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(strstr(out, "yes (upstream outputs changed)"), "%s", out);
	ck_assert_msg(strstr(out, "yes (upstream exec.mid is stale)"), "%s", out);
	free(out);
	rc = orchd("run", f, NULL, &err, "--only-stale", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "low got 2"), "%s", err);
	free(err);
	rc = orchd("status", f, &out, NULL, (char *)NULL);
	ck_assert_msg(!strstr(out, "yes ("), "%s", out);
	free(out);
	free(text);
	free(vfile);
	free(f);
}
END_TEST

/* A secret that reaches a command line (exec's manifest: argv_keys
 * [command]) is warned about; through env it is not; and in either case its
 * value never reaches the console. */
START_TEST(test_secret_on_command_line_warns)
{
	char *f, *err = NULL;
	int rc;

	setenv("ORCHD_PASSPHRASE", "lifecycle-test-passphrase", 1);
	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  exec:\n"
			   "    - name: src\n"
			   "      command: [sh, -c, 'echo tok=Zq9-very-secret >> $ORCHD_OUTPUT']\n"
			   "      secret_outputs: [tok]\n"
			   "    - name: argv\n"
			   "      command: [sh, -c, 'echo got $0', '${{ exec.src.outputs.tok }}']\n"
			   "    - name: viaenv\n"
			   "      command: [sh, -c, 'echo got $T']\n"
			   "      env: {T: '${{ exec.src.outputs.tok }}'}\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "warning: a secret output reaches 'command'"), "%s", err);
	ck_assert_msg(strstr(err, "[exec.argv]   warning: a secret"), "%s", err);
	ck_assert_msg(!strstr(err, "[exec.viaenv] warning"), "%s", err);
	ck_assert_msg(!strstr(err, "Zq9-very-secret"), "%s", err);
	ck_assert_msg(strstr(err, "got ***"), "%s", err);
	unsetenv("ORCHD_PASSPHRASE");
	free(err);
	free(f);
}
END_TEST

/* An excluded instance is never started, not even for validate, and
 * whether or not it is stale. */
START_TEST(test_excluded_never_started)
{
	char *f, *spy = xasprintf("%s/started", dir), *body, *err = NULL;
	int rc;

	body = xasprintf("echo started >> '%s'\nexit 1\n", spy);
	write_ext("spy", body);
	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  exec:\n"
			   "    - name: a\n"
			   "      command: ['true']\n"
			   "  spy:\n"
			   "    - name: s\n"
			   "      depends_on: [exec.a]\n");
	rc = orchd("run", f, NULL, &err, "--exclude", "spy.s", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	free(err);
	rc = orchd("run", f, NULL, &err, "--exclude", "spy.s", "--only-stale", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	free(err);
	rc = orchd("validate", f, NULL, &err, "--exclude", "spy.s", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	free(err);
	ck_assert_msg(access(spy, F_OK) < 0, "the excluded instance was started");
	free(body);
	free(spy);
	free(f);
}
END_TEST

/* Output hygiene: bytes that are not UTF-8 keep the JUnit file well-formed
 * XML (checked by Python's XML parser), and `orchd outputs` prints escape
 * sequences from output values escaped, never raw. */
START_TEST(test_output_hygiene)
{
	char *f, *junit = xasprintf("%s/junit.xml", dir), *out = NULL, *err = NULL;
	char py[] = "/usr/bin/env", py3[] = "python3", c[] = "-c",
	     prog[] = "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])";
	char *argv[] = {py, py3, c, prog, junit, NULL};
	int rc;

	/* an extension's own stderr is free text: any bytes */
	write_ext("raw",
		  HELLO("raw", "[\"apply\"]") "read -r action\n"
					      "printf 'raw \\377\\376 \\300\\200 \\033[1m\\n' >&2\n"
					      "echo '{\"type\":\"result\",\"status\":"
					      "\"failure\"}'\n");
	f = write_pipeline(
		"p:\n"
		"  core: {isolation: basic}\n"
		"  raw:\n"
		"    - name: r\n"
		"  exec:\n"
		"    - name: bytes\n"
		"      command: [sh, -c, 'printf \"bad \\377\\376 \\300\\200 \\355\\240\\200 "
		"esc \\033[31mred\\n\"; printf \"v=\\033]0;title\\007\\033[2J\\n\" "
		">> $ORCHD_OUTPUT; exit 3']\n"
		"    - name: ok\n"
		"      command: [sh, -c, 'printf \"w=\\033[31mred\\302\\233x\\n\" >> "
		"$ORCHD_OUTPUT']\n");
	rc = orchd("run", f, NULL, &err, "--keep-going", "--junit", junit, (char *)NULL);
	ck_assert_msg(rc == 1, "rc=%d\n%s", rc, err);
	free(err);
	rc = test_run(argv, &out, &err);
	ck_assert_msg(rc == 0, "JUnit is not well-formed XML:\n%s", err);
	free(out);
	free(err);
	rc = orchd("outputs", f, &out, NULL, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(!strchr(out, 0x1b), "raw ESC in: %s", out);
	ck_assert_msg(strstr(out, "exec.ok.w = \\e[31mred\\u009bx"), "%s", out);
	free(out);
	free(junit);
	free(f);
}
END_TEST

/* An extension's validate errors are printed where their keys are
 * written, like orchd's own: FILE:LINE:COL: error: TYPE.NAME: PATH: MESSAGE,
 * a key from core.defaults at its place there, and the empty path (the
 * config as a whole) at the instance. */
START_TEST(test_extension_errors_have_positions)
{
	char *f, *err = NULL, *want;
	int rc;

	f = write_pipeline("p:\n"
			   "  core:\n"
			   "    isolation: basic\n"
			   "    defaults:\n"
			   "      exec:\n"
			   "        env: {A: 1}\n"
			   "  exec:\n"
			   "    - name: web\n"
			   "      command:\n"
			   "        - echo\n"
			   "        - 5\n"
			   "      bogus: 1\n");
	rc = orchd("validate", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 2, "rc=%d\n%s", rc, err);
	want = xasprintf("\n%s:11:11: error: exec.web: command[1]: must be a string\n", f);
	ck_assert_msg(strstr(err, want), "want %s in:\n%s", want, err);
	free(want);
	want = xasprintf("\n%s:6:18: error: exec.web: env.A: must be a string\n", f);
	ck_assert_msg(strstr(err, want), "want %s in:\n%s", want, err);
	free(want);
	want = xasprintf("\n%s:12:7: error: exec.web: unknown key 'bogus'", f);
	ck_assert_msg(strstr(err, want), "want %s in:\n%s", want, err);
	free(want);
	ck_assert_msg(!strstr(err, ": : "), "%s", err);
	free(err);
	free(f);
}
END_TEST

/* Destroy is idempotent and keeps the audit trail: a second destroy, or a
 * destroy of what was never applied, succeeds with nothing to do, and
 * `orchd history` still shows the destroy. */
START_TEST(test_destroy_idempotent_keeps_history)
{
	char *f, *out = NULL, *err = NULL;
	int rc;

	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  exec:\n"
			   "    - name: up\n"
			   "      command: [sh, -c, 'echo v=1 >> $ORCHD_OUTPUT']\n"
			   "      mock_outputs: {v: 0}\n"
			   "    - name: down\n"
			   "      command: [sh, -c, 'echo $0', '${{ exec.up.outputs.v }}']\n");
	/* never applied: nothing to destroy */
	rc = orchd("destroy", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "nothing to destroy"), "%s", err);
	free(err);
	ck_assert_int_eq(orchd("run", f, NULL, NULL, (char *)NULL), 0);
	rc = orchd("destroy", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	free(err);
	rc = orchd("destroy", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "second destroy: rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "nothing to destroy"), "%s", err);
	free(err);
	rc = orchd("history", f, &out, NULL, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(strstr(out, "destroy"), "%s", out);
	ck_assert_msg(strstr(out, "apply"), "%s", out);
	free(out);
	rc = orchd("status", f, &out, NULL, (char *)NULL);
	ck_assert_msg(strstr(out, "never applied"), "%s", out);
	free(out);
	free(f);
}
END_TEST

/* Plan sees what upstream will change: a reference to an output of an
 * instance whose plan has changes is "known after apply", and the
 * downstream reports a possible change instead of "no changes". */
START_TEST(test_plan_known_after_apply)
{
	char *f, *out = NULL, *err = NULL;
	int rc;

	write_ext("stable",
		  HELLO("stable",
			"[\"validate\",\"plan\",\"apply\"]") "read -r action\n"
							     "case $action in\n"
							     "*'\"apply\"'*) echo "
							     "'{\"type\":\"output\",\"key\":\"o\","
							     "\"value\":1}' ;;\n"
							     "esac\n"
							     "echo "
							     "'{\"type\":\"result\",\"status\":"
							     "\"success\",\"changed\":false}'\n");
	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  exec:\n"
			   "    - name: up\n"
			   "      command: [sh, -c, 'echo v=1 >> $ORCHD_OUTPUT']\n"
			   "  stable:\n"
			   "    - name: down\n"
			   "      in: '${{ exec.up.outputs.v }}'\n"
			   "    - name: side\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	free(err);
	rc = orchd("plan", f, NULL, &err, "--detailed-exitcode", (char *)NULL);
	ck_assert_msg(rc == 2, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "exec.up plans changes: its output 'v' is known after apply"),
		      "%s", err);
	ck_assert_msg(strstr(err, "stable.down  changes unknown"), "%s", err);
	ck_assert_msg(strstr(err, "stable.side  no changes"), "%s", err);
	free(err);
	/* without the upstream in the plan, the stored value is used */
	rc = orchd("plan", f, &out, &err, "--detailed-exitcode", "--target", "stable.down",
		   (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	free(out);
	free(err);
	free(f);
}
END_TEST

/* A secret printed before it is declared never reaches the live console:
 * the lines of an instance that may declare secrets are held until its
 * outputs are known, then printed masked; and an extension can register a
 * value with a mask message before it prints it. */
START_TEST(test_secret_printed_before_declared)
{
	char *f, *err = NULL;
	int rc;

	setenv("ORCHD_PASSPHRASE", "lifecycle-test-passphrase", 1);
	write_ext("masker",
		  HELLO("masker",
			"[\"apply\"]") "read -r action || exit 0\n"
				       "echo '{\"type\":\"mask\",\"value\":\"Mq7-masked-value\"}'\n"
				       "echo "
				       "'{\"type\":\"log\",\"level\":\"info\",\"message\":\"token "
				       "Mq7-masked-value\"}'\n"
				       "echo 'stderr Mq7-masked-value' >&2\n"
				       "echo '{\"type\":\"result\",\"status\":\"success\"}'\n");
	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  exec:\n"
			   "    - name: s\n"
			   "      command: [sh, -c, 'echo my token is Zx8-not-yet-secret; "
			   "echo tok=Zx8-not-yet-secret >> $ORCHD_OUTPUT']\n"
			   "      secret_outputs: [tok]\n"
			   "  masker:\n"
			   "    - name: m\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(!strstr(err, "Zx8-not-yet-secret"), "%s", err);
	ck_assert_msg(strstr(err, "my token is ***"), "%s", err);
	ck_assert_msg(!strstr(err, "Mq7-masked-value"), "%s", err);
	ck_assert_msg(strstr(err, "token ***"), "%s", err);
	ck_assert_msg(strstr(err, "stderr ***"), "%s", err);
	free(err);
	/* the same with JSON log lines */
	rc = orchd("run", f, NULL, &err, "--log-format", "json", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(!strstr(err, "Zx8-not-yet-secret"), "%s", err);
	ck_assert_msg(!strstr(err, "Mq7-masked-value"), "%s", err);
	ck_assert_msg(strstr(err, "my token is ***"), "%s", err);
	unsetenv("ORCHD_PASSPHRASE");
	free(err);
	free(f);
}
END_TEST

/* exec's command writes its stdout straight to orchd (the extension's
 * stderr): the lines are logged, made UTF-8, and a background process that
 * keeps that stdout open does not hold the run (the reaper ends it). */
START_TEST(test_exec_stdout_straight_to_orchd)
{
	char *f, *text, *err = NULL, *bg = xasprintf("sleep 1009.%d", (int)getpid());
	int rc;

	text = xasprintf(
		"p:\n"
		"  exec:\n"
		"    - name: chatty\n"
		"      command: [sh, -c, \"echo before; printf 'bad \\\\377 nul\\\\000 end\\\\n'; "
		"%s & echo after; echo to-stderr >&2\"]\n",
		bg);
	f = write_pipeline(text);
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "[exec.chatty] before\n"), "%s", err);
	ck_assert_msg(strstr(err, "[exec.chatty] after\n"), "%s", err);
	ck_assert_msg(strstr(err, "[exec.chatty] bad \xef\xbf\xbd nul\xef\xbf\xbd end\n"), "%s",
		      err);
	ck_assert_msg(strstr(err, "[exec.chatty] warning: to-stderr\n"), "%s", err);
	for (int i = 0; i < 100 && test_process_with_arg(bg); i++)
		usleep(20000);
	ck_assert_msg(!test_process_with_arg(bg), "the background process survived");
	free(err);
	free(text);
	free(f);
	free(bg);
}
END_TEST

/* The loop of the session test's extensions: each action appends "PID
 * ACTION INSTANCE" to $ORCHD_PIPELINE_DIR/pids; validate rejects a config
 * holding a reference not known yet; apply outputs x; then AFTER. */
#define SESSION_LOOP(after)                                                           \
	"while read -r action; do\n"                                                  \
	"  a=${action#*\\\"action\\\":\\\"}; a=${a%%\\\"*}\n"                         \
	"  i=${action#*\\\"instance\\\":\\\"}; i=${i%%\\\"*}\n"                       \
	"  echo \"$$ $a $i\" >> \"$ORCHD_PIPELINE_DIR/pids\"\n"                       \
	"  case $a$action in\n"                                                       \
	"  validate*'${{'*) echo '{\"type\":\"result\",\"status\":\"failure\"}' ;;\n" \
	"  apply*) echo '{\"type\":\"output\",\"key\":\"x\",\"value\":1}'\n"          \
	"    echo '{\"type\":\"result\",\"status\":\"success\"}' ;;\n"                \
	"  *) echo '{\"type\":\"result\",\"status\":\"success\"}' ;;\n"               \
	"  esac\n"                                                                    \
	"  " after "\n"                                                               \
	"done\n"

/* Sessions (PROTOCOL.md §7.6) in a run: an extension that declares them
 * validates and applies each instance in one process, the validate that
 * rejected a reference not known yet included (validate again, then
 * apply, same process); one that does not gets a process per action. */
START_TEST(test_run_uses_sessions)
{
	long pa[2] = {0}, pb[3] = {0}, pc[2] = {0};
	int na = 0, nb = 0, nc = 0, rc;
	char *f, *err = NULL, *pids, *path, *save = NULL;

	write_ext(
		"sess",
		"read -r hello\n"
		"echo '{\"type\":\"hello\",\"protocol\":1,\"name\":\"sess\",\"version\":\"1\","
		"\"actions\":[\"validate\",\"apply\"],\"features\":[\"session\"]}'\n" SESSION_LOOP(
			":"));
	/* without the feature it exits after each result */
	write_ext("plain",
		  "read -r hello\n"
		  "echo '{\"type\":\"hello\",\"protocol\":1,\"name\":\"plain\",\"version\":\"1\","
		  "\"actions\":[\"validate\",\"apply\"]}'\n" SESSION_LOOP("exit 0"));
	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  sess:\n"
			   "    - name: a\n"
			   "    - name: b\n"
			   "      dep: ${{ sess.a.outputs.x }}\n"
			   "  plain:\n"
			   "    - name: c\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	path = xasprintf("%.*s/pids", (int)(strrchr(f, '/') - f), f);
	pids = test_read_file(path, NULL);
	ck_assert_ptr_nonnull(pids);
	for (char *l = strtok_r(pids, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char act[16], inst[16];
		long pid;

		ck_assert_int_eq(sscanf(l, "%ld %15s %15s", &pid, act, inst), 3);
		if (!strcmp(inst, "a") && na < 2)
			pa[na++] = pid;
		else if (!strcmp(inst, "b") && nb < 3)
			pb[nb++] = pid;
		else if (!strcmp(inst, "c") && nc < 2)
			pc[nc++] = pid;
	}
	ck_assert_msg(na == 2 && nb == 3 && nc == 2, "actions seen: a %d, b %d, c %d", na, nb, nc);
	ck_assert_msg(pa[0] == pa[1], "a: validate and apply in one process");
	ck_assert_msg(pb[0] == pb[1] && pb[1] == pb[2],
		      "b: validate, validate again, apply in one process");
	ck_assert_msg(pc[0] != pc[1], "c: no session, a process per action");
	free(pids);
	free(path);
	free(err);
	free(f);
}
END_TEST

/* Nothing an extension starts outlives its action, at isolation basic too:
 * a setsid daemon with its stdio on /dev/null is gone when the run ends;
 * and when orchd itself is killed with -9, an extension that ignores
 * SIGTERM is killed after the reaper's grace. */
START_TEST(test_no_process_outlives_its_action)
{
	char *f, *err = NULL, *cmd, *body, *d1, *d2, *d3, *d3re;
	int rc, me = (int)getpid();

	/* durations unique to this process: leftovers of another run do not
	 * count */
	d1 = xasprintf("sleep 1007.%d1", me);
	d2 = xasprintf("sleep 1007.%d2", me);
	d3 = xasprintf("sleep 1008.%d3", me);
	d3re = xasprintf("sleep 100[8][.]%d3", me);
	body = xasprintf(
		HELLO("daemonizer",
		      "[\"apply\"]") "read -r action || exit 0\n"
				     "setsid sh -c 'exec %s' </dev/null >/dev/null 2>&1 &\n"
				     "sh -c 'exec %s' </dev/null >/dev/null 2>&1 &\n"
				     "echo '{\"type\":\"result\",\"status\":\"success\"}'\n",
		d1, d2);
	write_ext("daemonizer", body);
	free(body);
	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  daemonizer:\n"
			   "    - name: d\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	free(err);
	for (int i = 0; i < 100 && (test_process_with_arg(d1) || test_process_with_arg(d2)); i++)
		usleep(20000);
	ck_assert_msg(!test_process_with_arg(d1), "a setsid daemon survived the run");
	ck_assert_msg(!test_process_with_arg(d2), "a background child survived");
	free(f);

	body = xasprintf(HELLO("stubborn", "[\"apply\"]") "trap '' TERM INT\n"
							  "read -r action || exit 0\n"
							  "sh -c 'trap \"\" TERM; exec %s'\n",
			 d3);
	write_ext("stubborn", body);
	free(body);
	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  stubborn:\n"
			   "    - name: s\n");
	cmd = xasprintf("'%s' run '%s' --extensions-dir '%s' >/dev/null 2>&1 & pid=$!; "
			"i=0; until [ $i -ge 100 ]; do "
			"for c in /proc/[0-9]*/cmdline; do "
			"tr '\\0' ' ' < $c 2>/dev/null | grep -q '%s' && break 2; "
			"done; sleep 0.1; i=$((i+1)); done; "
			"kill -9 $pid; wait $pid 2>/dev/null; exit 0",
			orchd_bin, f, extdir, d3re);
	ck_assert_int_eq(system(cmd), 0);
	for (int i = 0; i < 250 && test_process_with_arg(d3); i++)
		usleep(20000);
	ck_assert_msg(!test_process_with_arg(d3),
		      "an extension ignoring SIGTERM outlived orchd's kill -9");
	free(cmd);
	free(f);
	free(d1);
	free(d2);
	free(d3);
	free(d3re);
}
END_TEST

/* What a dead run left (its workdirs: plaintext an extension was about to
 * hand over) is removed by the next run; a finished run's kept workdirs
 * stay; exec removes orchd-output as soon as it has read it. */
START_TEST(test_dead_run_leftovers_removed)
{
	char *f, *err = NULL, *dead, *kept, *cmd;
	int rc;

	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  exec:\n"
			   "    - name: a\n"
			   "      command: [sh, -c, 'echo k=v >> $ORCHD_OUTPUT; sleep 0.2']\n");
	dead = xasprintf("%s/.orchd/runs/20260101T000000Z-dead/work/exec.a.1.x", dir);
	kept = xasprintf("%s/.orchd/runs/20260101T000001Z-kept/work/exec.a.1.y", dir);
	cmd = xasprintf("mkdir -p '%s' '%s' && echo plaintext > '%s/orchd-output' && "
			"echo '{}' > '%s/../../report.json'",
			dead, kept, dead, kept);
	ck_assert_int_eq(system(cmd), 0);
	rc = orchd("run", f, NULL, &err, "--keep-workdir", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "removed the workdirs of run 20260101T000000Z-dead"), "%s", err);
	ck_assert_msg(access(dead, F_OK) < 0, "the dead run's workdir is still there");
	ck_assert_msg(access(kept, F_OK) == 0, "a finished run's kept workdir was removed");
	free(err);
	free(cmd);
	/* this run kept its workdir: no orchd-output in it */
	cmd = xasprintf("find '%s/.orchd/runs' -name orchd-output | grep -q .", dir);
	ck_assert_msg(system(cmd) != 0, "orchd-output left in a workdir");
	free(cmd);
	free(dead);
	free(kept);
	free(f);
}
END_TEST

/* orchd's memory does not follow what an extension writes: 60 MB of
 * stderr under --output grouped (held until the instance ends) goes to a
 * temporary file, and a flood of requests from an extension that never
 * reads its responses fails the instance instead of queueing. */
START_TEST(test_memory_is_bounded)
{
	char *f, *err = NULL, *build = test_build_path("");
	/* AddressSanitizer's shadow memory and quarantine make RSS say
	 * nothing about orchd's own use: the bound is checked without it */
	int sanitized = strstr(build, "/san-") != NULL;
	struct rusage ru;
	int rc;

	free(build);
	write_ext(
		"chatty",
		HELLO("chatty",
		      "[\"apply\"]") "read -r action || exit 0\n"
				     "head -c 60000000 /dev/zero | tr '\\0' a | fold -w 1000 >&2\n"
				     "echo '{\"type\":\"result\",\"status\":\"success\"}'\n");
	write_ext("flood",
		  HELLO("flood",
			"[\"apply\"]") "read -r action || exit 0\n"
				       "yes '{\"type\":\"request\",\"id\":1,\"op\":\"nope\"}' | "
				       "head -n 400000\n"
				       "sleep 5\n");
	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  chatty:\n"
			   "    - name: c\n");
	rc = orchd("run", f, NULL, NULL, "--output", "grouped", (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(getrusage(RUSAGE_CHILDREN, &ru), 0);
	/* orchd is one of our children: none grew near the 60 MB it held */
	ck_assert_msg(sanitized || ru.ru_maxrss < 40 * 1024, "max RSS %ld KiB", ru.ru_maxrss);
	free(f);
	f = write_pipeline("p:\n"
			   "  core: {isolation: basic}\n"
			   "  flood:\n"
			   "    - name: f\n");
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 1, "rc=%d\n%.2000s", rc, err);
	ck_assert_msg(strstr(err, "more than 1024 requests wait for their responses") ||
			      strstr(err, "the extension does not read its stdin"),
		      "%.2000s", err);
	free(err);
	ck_assert_int_eq(getrusage(RUSAGE_CHILDREN, &ru), 0);
	ck_assert_msg(sanitized || ru.ru_maxrss < 40 * 1024, "max RSS %ld KiB", ru.ru_maxrss);
	free(f);
}
END_TEST

/* A pipeline whose one instance TYPE.a has a config of about n bytes. */
static char *big_pipeline(const char *type, size_t n, char fill)
{
	char *big = malloc(n + 1), *text, *f;

	ck_assert_ptr_nonnull(big);
	memset(big, fill, n);
	big[n] = '\0';
	text = xasprintf("p:\n"
			 "  %s:\n"
			 "    - name: a\n"
			 "      pad: '%s'\n",
			 type, big);
	f = write_pipeline(text);
	free(text);
	free(big);
	return f;
}

/* Logs the size of each value orchd handed over in a file, then sends a
 * 1.5 MB state and output in files of its workdir (PROTOCOL.md §4.1). */
#define BIGVAL_BODY                                                                              \
	"read -r action\n"                                                                       \
	"for f in config state outputs; do\n"                                                    \
	"  p=$(printf '%s' \"$action\" | sed -n "                                                \
	"\"s/.*\\\"${f}_file\\\":\\\"\\([^\\\"]*\\)\\\".*/\\1/p\")\n"                            \
	"  [ -n \"$p\" ] && echo \"{\\\"type\\\":\\\"log\\\",\\\"level\\\":\\\"info\\\","        \
	"\\\"message\\\":\\\"got ${f}_file of $(wc -c < \"$p\") bytes\\\"}\"\n"                  \
	"done\n"                                                                                 \
	"{ printf '\"'; head -c 1500000 /dev/zero | tr '\\0' s; printf '\"'; } > st.json\n"      \
	"mkdir -p o && { printf '\"'; head -c 1400000 /dev/zero | tr '\\0' o; printf '\"'; } > " \
	"o/v.json\n"                                                                             \
	"echo '{\"type\":\"state\",\"file\":\"st.json\",\"secret\":true}'\n"                     \
	"echo '{\"type\":\"output\",\"key\":\"blob\",\"file\":\"o/v.json\"}'\n"                  \
	"echo '{\"type\":\"output\",\"key\":\"small\",\"value\":1}'\n"                           \
	"echo '{\"type\":\"result\",\"status\":\"success\",\"changed\":true}'\n"

/*
 * Values larger than one protocol line travel in files, both ways: a
 * config, a state and previous outputs past 1 MiB reach an extension that
 * lists feature "files" as config_file/state_file/outputs_file, and the
 * state and output it sends with "file" are stored whole.
 */
START_TEST(test_large_values_in_files)
{
	char *f, *err = NULL, *out = NULL;
	int rc;

	setenv("ORCHD_PASSPHRASE", "a passphrase for the secret state", 1);
	write_ext("bigval", "read -r hello\n"
			    "echo '{\"type\":\"hello\",\"protocol\":1,\"name\":\"bigval\","
			    "\"version\":\"1.0.0\",\"actions\":[\"apply\"],\"features\":[\"files\"]"
			    "}'\n" BIGVAL_BODY);
	f = big_pipeline("bigval", 1200000, 'c');
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%.3000s", rc, err);
	ck_assert_msg(strstr(err, "got config_file of 12000"), "%.3000s", err);
	ck_assert_msg(!strstr(err, "got state_file"), "%.3000s", err);
	free(err);
	free(f);
	/* the second run gets the stored state and outputs back, in files */
	f = big_pipeline("bigval", 1000, 'd');
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%.3000s", rc, err);
	ck_assert_msg(!strstr(err, "got config_file"), "%.3000s", err);
	ck_assert_msg(strstr(err, "got state_file of 1500003 bytes"), "%.3000s", err);
	ck_assert_msg(strstr(err, "got outputs_file of 14000"), "%.3000s", err);
	free(err);
	rc = orchd("outputs", f, &out, &err, "--json", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%.3000s", rc, err);
	ck_assert_msg(strstr(out, "oooooooooooooooooooooooooooooooooooooooo\""), "%.300s", out);
	ck_assert_msg(strlen(out) > 1400000, "%zu", strlen(out));
	free(out);
	free(err);
	free(f);
}
END_TEST

/* The Python example extension (on the Python SDK) takes and sends values
 * in files too: a 1.2 MB name makes its config, state and outputs too
 * large for a line, and its run counter (in the state) still counts. */
START_TEST(test_python_example_large_values)
{
	char *f, *err = NULL, *out = NULL;
	int rc;

	/* installed, with the SDK beside it (isolation strict) */
	ck_assert_int_eq(test_install_example("python", extdir), 0);
	f = big_pipeline("pydemo", 1200000, 'w');
	/* its one key is who: the pad of big_pipeline becomes it */
	{
		char *text = test_read_file(f, NULL);
		char *pad = strstr(text, "pad:");

		ck_assert_ptr_nonnull(pad);
		memcpy(pad, "who:", 4);
		free(f);
		f = write_pipeline(text);
		free(text);
	}
	for (int run = 1; run <= 2; run++) {
		rc = orchd("run", f, NULL, &err, (char *)NULL);
		ck_assert_msg(rc == 0, "run %d: rc=%d\n%.2000s", run, rc, err);
		free(err);
	}
	rc = orchd("outputs", f, &out, &err, "--json", (char *)NULL);
	ck_assert_msg(rc == 0, "rc=%d\n%.2000s", rc, err);
	ck_assert_msg(strstr(out, "\"runs\": 2") || strstr(out, "\"runs\":2"), "%.300s",
		      out + (strlen(out) > 300 ? strlen(out) - 300 : 0));
	free(out);
	free(err);
	free(f);
}
END_TEST

/* exec takes a 1.2 MB config (in a file); the kernel's own limit on one
 * environment string is then explained, not just "Argument list too long". */
START_TEST(test_exec_large_config)
{
	size_t n = 1200000;
	char *big = malloc(n + 1), *text, *f, *err = NULL;
	int rc;

	ck_assert_ptr_nonnull(big);
	memset(big, 'a', n);
	big[n] = '\0';
	text = xasprintf("p:\n"
			 "  core: {isolation: basic}\n"
			 "  exec:\n"
			 "    - name: big\n"
			 "      command: ['true']\n"
			 "      env: {X: '%s'}\n",
			 big);
	f = write_pipeline(text);
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 1, "rc=%d\n%.1000s", rc, err);
	ck_assert_msg(strstr(err, "cannot run 'true': Argument list too long (Linux takes at most "
				  "131072 bytes per argument or environment variable"),
		      "%.1000s", err);
	free(err);
	free(f);
	free(text);
	free(big);
}
END_TEST

/* An extension that does not list feature "files" cannot be handed a value
 * larger than a line: incompatible (exit 3), saying what does not fit. */
START_TEST(test_large_config_needs_files)
{
	char *f, *err = NULL;
	int rc;

	write_ext("nofiles", HELLO("nofiles", "[\"apply\"]") "read -r action\n"
							     "echo '{\"type\":\"result\","
							     "\"status\":\"success\"}'\n");
	f = big_pipeline("nofiles", 1200000, 'a');
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 3, "rc=%d\n%.1000s", rc, err);
	ck_assert_msg(strstr(err, "incompatible extension: the action message does not fit in "
				  "one protocol line (at most 1048576 bytes) and extension "
				  "nofiles 1.0.0 does not take values in files (its hello lists "
				  "no feature \"files\"): its config (12000"),
		      "%.1000s", err);
	ck_assert_msg(!strstr(err, "Argument list too long"), "%.1000s", err);
	free(err);
	free(f);
}
END_TEST

/*
 * A hostile extension cannot make orchd read a file outside its workdir
 * (a symbolic link, '..'), block it (a FIFO) or fill its memory (a huge
 * file): each fails the instance with a protocol error, and nothing of
 * the target reaches the stack.
 */
START_TEST(test_value_files_are_confined)
{
	static const struct {
		const char *mode, *expect;
	} cases[] = {
		{"link",
		 "protocol error: state: field 'file': cannot read 'v.json': it is (or goes "
		 "through) a symbolic link"},
		{"dirlink",
		 "protocol error: output: field 'file': cannot read 'd/passwd': it is (or "
		 "goes through) a symbolic link"},
		{"dotdot", "protocol error: state: field 'file' must be a relative path without "
			   "'.', '..' or empty segments"},
		{"abs", "protocol error: output: field 'file' must be a relative path without '.', "
			"'..' or empty segments"},
		{"fifo", "protocol error: state: field 'file': 'v.json' is not a regular file"},
		{"huge", "protocol error: state: field 'file': 'v.json' is larger than 67108864 "
			 "bytes (73400320)"},
		{"notjson", "protocol error: output: field 'file': 'v.json': not JSON: "},
		{"many",
		 "protocol error: state: field 'file': 'v.json' holds more than 1000000 JSON "
		 "values"},
		{"outflood",
		 "protocol error: output: the output values sent add up to more than 128 MiB"},
		{"missing", "protocol error: state: field 'file': cannot read 'nope.json': No such "
			    "file or directory"},
	};
	char *f, *err = NULL, *out = NULL;
	int rc;

	write_ext(
		"evil",
		"read -r hello\n"
		"echo '{\"type\":\"hello\",\"protocol\":1,\"name\":\"evil\","
		"\"version\":\"1.0.0\",\"actions\":[\"apply\"],\"features\":[\"files\"]}'\n"
		"read -r action\n"
		"mode=$(printf '%s' \"$action\" | sed -n 's/.*\"mode\":\"\\([a-z]*\\)\".*/\\1/p')\n"
		"case $mode in\n"
		"link) ln -s /etc/passwd v.json; m='{\"type\":\"state\",\"file\":\"v.json\"}';;\n"
		"dirlink) ln -s /etc d; "
		"m='{\"type\":\"output\",\"key\":\"k\",\"file\":\"d/passwd\"}';;\n"
		"dotdot) m='{\"type\":\"state\",\"file\":\"../../../../etc/passwd\"}';;\n"
		"abs) m='{\"type\":\"output\",\"key\":\"k\",\"file\":\"/etc/passwd\"}';;\n"
		"fifo) mkfifo v.json; m='{\"type\":\"state\",\"file\":\"v.json\"}';;\n"
		"huge) truncate -s 70M v.json; m='{\"type\":\"state\",\"file\":\"v.json\"}';;\n"
		"notjson) echo 'root:x:0:0' > v.json; "
		"m='{\"type\":\"output\",\"key\":\"k\",\"file\":\"v.json\"}';;\n"
		"missing) m='{\"type\":\"state\",\"file\":\"nope.json\"}';;\n"
		"many) { printf '['; yes 1, | head -n 1100000 | tr -d '\\n'; printf '1]'; } > "
		"v.json; "
		"m='{\"type\":\"state\",\"file\":\"v.json\"}';;\n"
		"outflood) { printf '\"'; head -c 50000000 /dev/zero | tr '\\0' a; printf '\"'; } "
		"> v.json; for k in a b c; do echo "
		"\"{\\\"type\\\":\\\"output\\\",\\\"key\\\":\\\"$k\\\",\\\"file\\\":"
		"\\\"v.json\\\"}\"; done; m=;;\n"
		"esac\n"
		"[ -n \"$m\" ] && echo \"$m\"\n"
		"echo '{\"type\":\"result\",\"status\":\"success\"}'\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = xasprintf("p:\n"
				       "  evil:\n"
				       "    - name: a\n"
				       "      mode: %s\n",
				       cases[i].mode);

		f = write_pipeline(text);
		rc = orchd("run", f, NULL, &err, (char *)NULL);
		ck_assert_msg(rc == 1, "%s: rc=%d\n%.2000s", cases[i].mode, rc, err);
		ck_assert_msg(strstr(err, cases[i].expect), "%s: %.2000s", cases[i].mode, err);
		free(err);
		rc = orchd("outputs", f, &out, &err, "--json", (char *)NULL);
		ck_assert_msg(!strstr(out ? out : "", "root:"), "%s: %s", cases[i].mode, out);
		free(out);
		free(err);
		free(text);
		free(f);
	}
}
END_TEST

/* A git source on a remote that accepts and never answers: the instance's
 * timeout ends the run (orchd used to wait for the fetch forever). */
START_TEST(test_silent_git_remote)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	char *f, *err = NULL, *text;
	int fd, rc;
	time_t t0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	text = xasprintf("p:\n"
			 "  core: {isolation: basic}\n"
			 "  exec:\n"
			 "    - name: a\n"
			 "      sources: [{git: 'http://127.0.0.1:%d/r.git', ref: main}]\n"
			 "      command: ['true']\n"
			 "      execution: {timeout: 2s, grace: 1s}\n",
			 ntohs(a.sin_port));
	f = write_pipeline(text);
	setenv("XDG_CACHE_HOME", dir, 1);
	t0 = time(NULL);
	rc = orchd("run", f, NULL, &err, (char *)NULL);
	ck_assert_msg(rc == 1, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "timed out after 2s"), "%s", err);
	ck_assert_msg(time(NULL) - t0 < 30, "took %lds", (long)(time(NULL) - t0));
	close(fd);
	free(err);
	free(text);
	free(f);
}
END_TEST

Suite *lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_no_hello_is_bounded);
	tcase_add_test(tc, test_timeout_bounds_validate);
	tcase_add_test(tc, test_incompatible_extension);
	tcase_add_test(tc, test_optional_actions);
	tcase_add_test(tc, test_staleness_is_transitive);
	tcase_add_test(tc, test_secret_on_command_line_warns);
	tcase_add_test(tc, test_excluded_never_started);
	tcase_add_test(tc, test_output_hygiene);
	tcase_add_test(tc, test_extension_errors_have_positions);
	tcase_add_test(tc, test_destroy_idempotent_keeps_history);
	tcase_add_test(tc, test_plan_known_after_apply);
	tcase_add_test(tc, test_secret_printed_before_declared);
	tcase_add_test(tc, test_no_process_outlives_its_action);
	tcase_add_test(tc, test_dead_run_leftovers_removed);
	tcase_add_test(tc, test_memory_is_bounded);
	tcase_add_test(tc, test_large_values_in_files);
	tcase_add_test(tc, test_large_config_needs_files);
	tcase_add_test(tc, test_exec_large_config);
	tcase_add_test(tc, test_python_example_large_values);
	tcase_add_test(tc, test_value_files_are_confined);
	tcase_add_test(tc, test_silent_git_remote);
	tcase_add_test(tc, test_exec_stdout_straight_to_orchd);
	tcase_add_test(tc, test_run_uses_sessions);
	suite_add_tcase(s, tc);
	return s;
}
