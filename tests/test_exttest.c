/*
 * Tests of `orchd ext test` (core/exttest.c), the conformance runner: the
 * first-party extensions and the example extensions pass it, and hostile
 * extensions (Python scripts written here, each breaking one rule) fail
 * the check of the rule they break, and only that one.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "util.h"

#define END ((const char *)NULL)

static char *tmp;

static void setup(void)
{
	tmp = test_tmpdir();
}

static void teardown(void)
{
	test_rmtree(tmp);
	free(tmp);
}

static int orchd(char **out, char **err, ...)
{
	char *argv[24];
	const char *a;
	va_list ap;
	int n = 0, code;

	argv[n++] = test_build_path("bin/orchd");
	va_start(ap, err);
	while ((a = va_arg(ap, const char *)) && n < 23)
		argv[n++] = xstrdup(a);
	va_end(ap);
	argv[n] = NULL;
	code = test_run(argv, out, err);
	for (int i = 0; i < n; i++)
		free(argv[i]);
	return code;
}

#define assert_has(hay, needle)                                                    \
	do {                                                                       \
		if (!strstr((hay), (needle)))                                      \
			ck_abort_msg("expected:\n  %s\nin:\n%s", (needle), (hay)); \
	} while (0)

/* Run the runner on path (config may be NULL); its output; exit code in *code. */
static char *ext_test(const char *path, const char *config, int *code)
{
	char *out, *err, *both;

	if (config)
		*code = orchd(&out, &err, "ext", "test", path, "--config", config, "--grace", "3s",
			      END);
	else
		*code = orchd(&out, &err, "ext", "test", path, "--grace", "3s", END);
	both = xasprintf("%s%s", out, err);
	free(out);
	free(err);
	return both;
}

START_TEST(test_first_party_and_examples)
{
	static const char *const cases[][2] = {
		{"libexec/orchd/extensions/orchd-ext-exec", "examples/hello/pipeline.yaml"},
		{"examples/extensions/python", NULL},
		{"examples/extensions/sh", NULL},
		{"protocol/sdk/python/examples", NULL},
		{"protocol/sdk/sh/examples", NULL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *path = i ? test_src_path(cases[i][0]) : test_build_path(cases[i][0]);
		char *config = cases[i][1] ? test_src_path(cases[i][1]) : NULL;
		int code;
		char *out = ext_test(path, config, &code);

		ck_assert_msg(code == 0, "%s: exit %d\n%s", path, code, out);
		assert_has(out, " 0 failed, ");
		assert_has(out, "PASS  §5   handshake: ");
		assert_has(out, "PASS  §4   framing: ");
		ck_assert_msg(!strstr(out, "FAIL"), "%s", out);
		free(out);
		free(path);
		free(config);
	}
}
END_TEST

/*
 * A hostile extension: a Python script speaking the protocol correctly but
 * for what `bad` (Python statements run at the named hook) breaks.  Hooks:
 * before_hello, on_action (the action's name in `act`), after_result.
 */
static char *hostile(const char *type, const char *hooks)
{
	char *dir = xasprintf("%s/%s", tmp, type), *path, *text;
	FILE *fp;

	mkdir(dir, 0755);
	path = xasprintf("%s/orchd-ext-%s", dir, type);
	text = xasprintf(
		"#!/usr/bin/env python3\n"
		"import json, os, signal, sys, time\n"
		"def send(m):\n"
		"    sys.stdout.write(json.dumps(m) + '\\n'); sys.stdout.flush()\n"
		"def before_hello(): pass\n"
		"def on_action(act, msg): pass\n"
		"def after_result(): pass\n"
		"def hello_range(lo, hi):\n"
		"    if hi < 1 or lo > 1:\n"
		"        send({'type': 'error', 'message': 'speaks 1..1', 'retryable': False}); "
		"sys.exit(1)\n"
		"    return 1\n"
		"%s\n"
		"signal.signal(signal.SIGTERM, lambda s, f: (send({'type': 'result', 'status': "
		"'failure', 'summary': 'cancelled'}), os._exit(0)))\n"
		"def readline():\n"
		"    while True:\n"
		"        line = sys.stdin.readline()\n"
		"        if not line or line.strip(): return line\n"
		"line = readline()\n"
		"h = json.loads(line)\n"
		"before_hello()\n"
		"v = hello_range(h['protocol']['min'], h['protocol']['max'])\n"
		"send({'type': 'hello', 'protocol': v, 'name': '%s', 'version': '1.0.0', "
		"'actions': ['describe', 'validate', 'plan', 'apply', 'destroy']})\n"
		"line = readline()\n"
		"if not line: sys.exit(1)\n"
		"try:\n"
		"    msg = json.loads(line)\n"
		"except ValueError:\n"
		"    sys.stderr.write('not json\\n'); sys.exit(1)\n"
		"if msg.get('type') != 'action': sys.exit(1)\n"
		"act = msg['action']\n"
		"cfg = msg.get('config') or {}\n"
		"on_action(act, msg)\n"
		"if act == 'describe':\n"
		"    send({'type': 'result', 'status': 'success', 'describe': {'type': '%s', "
		"'version': '1.0.0', 'config': {'type': 'object'}}})\n"
		"elif act == 'validate':\n"
		"    bad = [k for k in cfg if k != 'who']\n"
		"    bad += [k for k in cfg if k == 'who' and not isinstance(cfg[k], str)]\n"
		"    if bad:\n"
		"        send({'type': 'result', 'status': 'failure', 'errors': [{'path': k, "
		"'message': 'bad key ' + k} for k in bad]})\n"
		"    else:\n"
		"        send({'type': 'result', 'status': 'success'})\n"
		"elif act == 'plan':\n"
		"    send({'type': 'result', 'status': 'success', 'changed': msg['state'] is "
		"None})\n"
		"elif act == 'apply':\n"
		"    send({'type': 'output', 'key': 'token', 'value': 'sekrit-value-42', 'secret': "
		"True})\n"
		"    send({'type': 'state', 'state': {'done': True}})\n"
		"    send({'type': 'result', 'status': 'success', 'changed': msg['state'] is "
		"None})\n"
		"else:\n"
		"    send({'type': 'state', 'state': None})\n"
		"    send({'type': 'result', 'status': 'success', 'changed': msg['state'] is not "
		"None})\n"
		"after_result()\n"
		/* wait for the end of stdin, never blocked in C for long: a SIGTERM
		 * landing between two reads of a blocking read() would only run its
		 * Python handler when the next read returns */
		"import select\n"
		"while not select.select([0], [], [], 0.1)[0] or os.read(0, 65536): pass\n",
		hooks, type, type);
	fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
	chmod(path, 0755);
	free(text);
	free(dir);
	return path;
}

/* A sample config: {"who": "x"}. */
static char *sample(void)
{
	char *path = xasprintf("%s/sample.json", tmp);
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	fputs("{\"who\": \"x\"}\n", fp);
	fclose(fp);
	return path;
}

START_TEST(test_a_good_one_passes)
{
	char *path = hostile("good", ""), *cfg = sample(), *out;
	int code;

	out = ext_test(path, cfg, &code);
	ck_assert_msg(code == 0, "exit %d\n%s", code, out);
	assert_has(out, "PASS  §6.2 secret outputs: 1 secret value(s), never in its logs or "
			"stderr\n");
	assert_has(out, "PASS  §7.4 apply again (same config, its state): idempotent: changed "
			"false\n");
	assert_has(out, "PASS  §9   cancel (cancel message and SIGTERM): gone after ");
	assert_has(out, "WARN  §2.3 manifest: no ");
	free(out);
	free(path);
	free(cfg);
}
END_TEST

/* Each hostile extension, the check it must fail (or warn), and the text. */
static const struct {
	const char *type, *hooks, *want;
} hostiles[] = {
	{"early",
	 "def before_hello():\n    send({'type': 'log', 'level': 'info', 'message': 'hi'})",
	 "FAIL  §5   handshake: its first message is 'log' (MUST NOT send anything before its "
	 "hello)"},
	{"anyrange", "def hello_range(lo, hi):\n    return lo",
	 "FAIL  §5   no common version (90..99 offered): it said hello with protocol 90: it MUST "
	 "refuse with an error message"},
	{"leaky",
	 "def on_action(act, msg):\n    send({'type': 'log', 'level': 'info', 'message': 'token "
	 "is sekrit-value-42'})",
	 "FAIL  §6.2 secret outputs: 1 secret value(s) appear in its logs"},
	{"stayer", "def after_result():\n    if act == 'describe': time.sleep(30)",
	 "FAIL  §8   exit after the result: describe: did not exit within 3s after its result"},
	{"noisy", "def on_action(act, msg):\n    print('debugging', act, flush=True)",
	 "WARN  §4   framing: "},
	{"badmsg", "def on_action(act, msg):\n    send({'type': 'output', 'value': 1})",
	 "FAIL  §4   framing: protocol errors: output: missing required field 'key'"},
	{"deaf",
	 /* the runner's third apply is its cancel check (two for the lifecycle) */
	 "def before_hello():\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
	 "def on_action(act, msg):\n    if act != 'apply': return\n"
	 "    f = os.path.join(os.path.dirname(sys.argv[0]), 'applies')\n"
	 "    n = int(open(f).read()) + 1 if os.path.exists(f) else 1\n"
	 "    open(f, 'w').write(str(n))\n"
	 "    if n == 3: time.sleep(60)",
	 "FAIL  §9   cancel (cancel message and SIGTERM): still running 3s later"},
	{"twice", "def after_result():\n    send({'type': 'result', 'status': 'success'})",
	 "message(s) after the result (describe)"},
	{"unnamed",
	 "def on_action(act, msg):\n    if act == 'validate' and len(msg['config']) != 1 or "
	 "not isinstance(msg['config'].get('who'), str):\n        send({'type': 'result', "
	 "'status': 'failure', 'errors': [{'path': '', 'message': 'wrong'}]}); sys.exit(0)",
	 "FAIL  §7.2 validate wrong types: the errors do not name the key they are about: 'who'"},
};

START_TEST(test_hostile)
{
	char *cfg = sample(), *path = hostile(hostiles[_i].type, hostiles[_i].hooks), *out;
	int code;

	out = ext_test(path, cfg, &code);
	assert_has(out, hostiles[_i].want);
	if (strncmp(hostiles[_i].want, "WARN", 4))
		ck_assert_msg(code == 1, "%s: exit %d\n%s", hostiles[_i].type, code, out);
	free(out);
	free(path);
	free(cfg);
}
END_TEST

START_TEST(test_junit_and_usage)
{
	char *path = hostile("good", ""), *cfg = sample(), *junit = xasprintf("%s/j.xml", tmp);
	char *out, *err, *xml;
	size_t len;

	ck_assert_int_eq(
		orchd(&out, &err, "ext", "test", path, "--config", cfg, "--junit", junit, END), 0);
	free(out);
	free(err);
	xml = test_read_file(junit, &len);
	ck_assert_ptr_nonnull(xml);
	assert_has(xml, "<testsuite name=\"orchd ext test good\" tests=\"");
	assert_has(xml, "failures=\"0\"");
	assert_has(xml, "<testcase classname=\"PROTOCOL.md §5\" name=\"handshake\"/>");
	free(xml);
	ck_assert_int_eq(orchd(&out, &err, "ext", "test", tmp, END), 2);
	assert_has(err, "error: no executable orchd-ext-TYPE in ");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "ext", "frobnicate", END), 2);
	assert_has(err, "unknown subcommand 'frobnicate'");
	free(out);
	free(err);
	free(path);
	free(cfg);
	free(junit);
}
END_TEST

/* orchd ext new: each language's scaffold builds and passes ext test as
 * made (C against the build tree's liborchd-protocol). */
START_TEST(test_ext_new)
{
#if defined(__SANITIZE_ADDRESS__)
	/* the build tree's liborchd-protocol is instrumented: a plain program
	 * cannot link it (the plain make check builds the C one) */
	static const char *const langs[] = {"python", "go", "sh"};
#else
	static const char *const langs[] = {"c", "python", "go", "sh"};
#endif
	char *orchd_bin = test_build_path("bin/orchd"), *build = test_build_path("");

	for (size_t i = 0; i < ARRAY_SIZE(langs); i++) {
		char *name = xasprintf("new%s", langs[i]);
		char *dir = xasprintf("%s/%s", tmp, name), *out, *err, *cmd;
		int code;

		code = orchd(&out, &err, "ext", "new", name, "--lang", langs[i], "--dir", dir, END);
		ck_assert_msg(code == 0, "%s: exit %d\n%s%s", langs[i], code, out, err);
		free(out);
		free(err);
		cmd = xasprintf("cd '%s' && make ORCHD_PREFIX='%s' >make.log 2>&1 && ORCHD='%s' "
				"./test.sh > test.log 2>&1",
				dir, build, orchd_bin);
		code = system(cmd);
		free(cmd);
		cmd = xasprintf("%s/test.log", dir);
		out = test_read_file(cmd, NULL);
		free(cmd);
		cmd = xasprintf("%s/make.log", dir);
		err = test_read_file(cmd, NULL);
		free(cmd);
		/* (Check refuses messages over 4 KiB: the ends of the logs) */
		ck_assert_msg(code == 0 && out && strstr(out, " 0 failed, 0 warnings, "),
			      "%s: %d\n%.1500s\n%.1500s", langs[i], code,
			      err && strlen(err) > 1500 ? err + strlen(err) - 1500
			      : err			? err
							: "",
			      out && strlen(out) > 1500 ? out + strlen(out) - 1500
			      : out			? out
							: "");
		free(out);
		free(err);
		free(name);
		free(dir);
	}
	/* mistakes */
	{
		char *out, *err, *dir = xasprintf("%s/x", tmp);

		ck_assert_int_eq(orchd(&out, &err, "ext", "new", "Bad", "--lang", "c", END), 2);
		assert_has(err, "invalid extension name 'Bad' (PROTOCOL §2.1: [a-z][a-z0-9_-]*");
		free(out);
		free(err);
		ck_assert_int_eq(orchd(&out, &err, "ext", "new", "ok", "--lang", "cobol", END), 2);
		assert_has(err, "--lang: expected c, python, go or sh, got 'cobol'");
		free(out);
		free(err);
		mkdir(dir, 0755);
		ck_assert_int_eq(
			orchd(&out, &err, "ext", "new", "ok", "--lang", "c", "--dir", dir, END), 2);
		assert_has(err, "x: it exists already");
		free(out);
		free(err);
		free(dir);
	}
	free(orchd_bin);
	free(build);
}
END_TEST

/* The first-party extensions on their real tools (make tools). */
START_TEST(test_first_party_tools)
{
	static const char *const cases[][3] = {
		{"terraform", "examples/terraform", NULL},
		{"ansible", "examples/ansible", NULL},
		{"secrets", "examples/secrets", "DEMO_TOKEN"},
	};

	setenv("ORCHD_PASSPHRASE", "exttest passphrase", 1);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *exe = xasprintf("libexec/orchd/extensions/orchd-ext-%s", cases[i][0]);
		char *path = test_build_path(exe), *dir = test_src_path(cases[i][1]);
		char *config = xasprintf("%s/pipeline.yaml", dir), *out, *err;
		char cwd[4096];
		int code;

		if (cases[i][2])
			setenv(cases[i][2], "demo-token", 1);
		ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
		ck_assert_int_eq(chdir(dir), 0);
		code = orchd(&out, &err, "ext", "test", path, "--config", config, END);
		ck_assert_int_eq(chdir(cwd), 0);
		ck_assert_msg(code == 0, "%s: exit %d\n%s%s", cases[i][0], code, out, err);
		assert_has(out, " 0 failed, ");
		free(out);
		free(err);
		free(exe);
		free(path);
		free(dir);
		free(config);
	}
	unsetenv("ORCHD_PASSPHRASE");
}
END_TEST

Suite *exttest_suite(void)
{
	Suite *s = suite_create("exttest");
	TCase *tc = tcase_create("runner");
	TCase *tools = tcase_create("tools");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_first_party_and_examples);
	tcase_add_test(tc, test_a_good_one_passes);
	tcase_add_loop_test(tc, test_hostile, 0, (int)ARRAY_SIZE(hostiles));
	tcase_add_test(tc, test_junit_and_usage);
	tcase_add_test(tc, test_ext_new);
	suite_add_tcase(s, tc);
	tcase_set_tags(tools, "tools");
	tcase_set_timeout(tools, 900);
	tcase_add_test(tools, test_first_party_tools);
	suite_add_tcase(s, tools);
	return s;
}
