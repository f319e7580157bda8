/*
 * Tests of the extensions shipped with orchd: orchd-ext-exec (C, built),
 * and the examples orchd-ext-shdemo (POSIX sh) and orchd-ext-pydemo
 * (Python 3), on the SDKs of protocol/sdk, each driven as a real process
 * over real pipes by a small in-test driver built on the protocol library
 * (the supervisor proper is tested elsewhere).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "extdriver.h"
#include "orchd_protocol.h"
#include "testutil.h"

struct drv_opts {
	const char *action;
	const char *config;	  /* JSON text, NULL: {} */
	const char *state;	  /* JSON text, NULL: null */
	const char *env;	  /* "NAME=VALUE" added to the extension's env, or NULL */
	const char *hello;	  /* orchd hello line override, or NULL */
	const char *cancel_after; /* send cancel after a log message with this text */
	bool cancel_at_once;	  /* send cancel in the same write as the action */
	bool sigterm;		  /* with cancel_after: SIGTERM the extension instead */
	const char *next_action;  /* a session: the second action */
};

static char *ext_path(const char *which)
{
	if (!strcmp(which, "exec"))
		return test_build_path("libexec/orchd/extensions/orchd-ext-exec");
	if (!strcmp(which, "shdemo"))
		return test_src_path("examples/extensions/sh/orchd-ext-shdemo");
	return test_src_path("examples/extensions/python/orchd-ext-pydemo");
}

/* Run one action against the extension `which` in a fresh workdir; fills d. */
static void drive(const char *which, const struct drv_opts *o, struct extdrv *d)
{
	char *exe = ext_path(which);
	const char *env[] = {o->env, NULL};
	struct extdrv_opts eo = {
		.exe = exe,
		.action = o->action,
		.config_text = o->config,
		.state_text = o->state,
		.env = env,
		.hello = o->hello,
		.cancel_after = o->cancel_after,
		.cancel_at_once = o->cancel_at_once,
		.sigterm = o->sigterm,
		.next_action = o->next_action,
		/* exec hands a command's stdout to its own stderr */
		.capture_stderr = true,
	};

	extdrv_run(&eo, d);
	free(exe);
}

static const char *json_text(struct json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
}

static void assert_result(const struct extdrv *d, const char *status, const char *summary)
{
	ck_assert_msg(d->result != NULL, "no result; messages: %s", json_text(d->msgs));
	ck_assert_str_eq(op_get_str(d->result, "status"), status);
	if (summary)
		ck_assert_str_eq(op_get_str(d->result, "summary"), summary);
	ck_assert_int_eq(d->status, 0);
}

static void assert_output(const struct extdrv *d, const char *key, const char *json, bool secret)
{
	/* a later output with the same key replaces the earlier: take the last */
	struct json_object *o = extdrv_find_last(d, "output", "key", key);

	ck_assert_msg(o != NULL, "no output %s in %s", key, json_text(d->msgs));
	ck_assert_str_eq(json_text(op_get(o, "value")), json);
	ck_assert_int_eq(op_get_bool(o, "secret", false), secret);
}

/* --- exec ------------------------------------------------------------------- */

START_TEST(test_exec_describe)
{
	struct extdrv d;
	struct drv_opts o = {.action = "describe"};
	struct json_object *desc;

	drive("exec", &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert_str_eq(op_get_str(d.hello, "name"), "exec");
	desc = op_get(d.result, "describe");
	ck_assert_str_eq(op_get_str(desc, "type"), "exec");
	ck_assert_str_eq(op_get_str(desc, "version"), "0.1.0");
	ck_assert(json_object_is_type(op_get(op_get(desc, "config"), "properties"),
				      json_type_object));
	extdrv_release(&d);
}
END_TEST

START_TEST(test_exec_validate_errors)
{
	struct extdrv d;
	struct drv_opts o = {.action = "validate",
			     .config = "{\"comand\":[\"x\"],\"env\":{\"FOO\":1},\"cwd\":3}"};
	struct json_object *errs;

	drive("exec", &o, &d);
	assert_result(&d, "failure",
		      "invalid configuration: unknown key 'comand' (did you mean 'command'?) "
		      "(and 3 more)");
	errs = op_get(d.result, "errors");
	ck_assert_str_eq(json_text(errs),
			 "[{\"path\":\"comand\",\"message\":\"unknown key 'comand' (did you mean "
			 "'command'?)\"},{\"path\":\"command\",\"message\":\"is required\"},"
			 "{\"path\":\"env.FOO\",\"message\":\"must be a string\"},"
			 "{\"path\":\"cwd\",\"message\":\"must be a non-empty string\"}]");
	ck_assert_ptr_nonnull(extdrv_find_first(&d, "log", "message", "command: is required"));
	ck_assert_ptr_nonnull(extdrv_find_first(&d, "log", "message", "env.FOO: must be a string"));
	extdrv_release(&d);

	o.config = "{\"command\":\"ls\",\"secret_outputs\":[1]}";
	drive("exec", &o, &d);
	assert_result(&d, "failure",
		      "invalid configuration: command: must be a list of strings (and 1 more)");
	ck_assert_ptr_nonnull(
		extdrv_find_first(&d, "log", "message", "secret_outputs[0]: must be a string"));
	extdrv_release(&d);

	o.config = "{\"command\":[\"true\"],\"env\":{\"A\":\"b\"}}";
	drive("exec", &o, &d);
	assert_result(&d, "success", "configuration is valid");
	extdrv_release(&d);
}
END_TEST

START_TEST(test_exec_apply_kv_outputs_and_logs)
{
	struct extdrv d;
	struct drv_opts o = {
		.action = "apply",
		.config = "{\"command\":[\"sh\",\"-c\",\"echo out-line; echo err-line >&2; "
			  "echo \\\"url=http://h/x?a=b\\\" >> \\\"$ORCHD_OUTPUT\\\"; "
			  "printf 'tok<<EOF\\\\nl1\\\\n\\\\nl3\\\\nEOF\\\\n' >> "
			  "\\\"$ORCHD_OUTPUT\\\"; "
			  "echo \\\"who=$WHO\\\" >> \\\"$ORCHD_OUTPUT\\\"\"],"
			  "\"env\":{\"WHO\":\"me\"},\"secret_outputs\":[\"tok\"]}",
		.state = "{\"runs\":2,\"last_status\":0}",
	};
	struct json_object *st;

	drive("exec", &o, &d);
	assert_result(&d, "success", "command exited with status 0");
	ck_assert(op_get_bool(d.result, "changed", false));
	/* stdout goes straight to the extension's stderr (orchd logs it at
	 * info), stderr comes as log messages at warning */
	ck_assert_ptr_null(extdrv_find_first(&d, "log", "message", "out-line"));
	ck_assert_str_eq(d.stderr_text, "out-line\n");
	ck_assert_str_eq(op_get_str(extdrv_find_first(&d, "log", "message", "err-line"), "level"),
			 "warning");
	assert_output(&d, "url", "\"http://h/x?a=b\"", false);
	assert_output(&d, "tok", "\"l1\\n\\nl3\"", true);
	assert_output(&d, "who", "\"me\"", false);
	/* previous state read back, new state sent */
	ck_assert_ptr_nonnull(
		extdrv_find_first(&d, "log", "message", "previous state: 2 run(s), last status 0"));
	st = op_get(extdrv_find_last(&d, "state", NULL, NULL), "state");
	ck_assert_str_eq(json_text(st), "{\"runs\":3,\"last_status\":0}");
	extdrv_release(&d);
}
END_TEST

START_TEST(test_exec_apply_json_outputs)
{
	struct extdrv d;
	struct drv_opts o = {
		.action = "apply",
		.config = "{\"command\":[\"sh\",\"-c\",\"printf '%s' '  {\\\"n\\\": 3, "
			  "\\\"obj\\\": {\\\"a\\\": [1, null]}, \\\"pw\\\": \\\"s3\\\"}\\n' "
			  "> \\\"$ORCHD_OUTPUT\\\"\"],\"secret_outputs\":[\"pw\"]}",
	};

	drive("exec", &o, &d);
	assert_result(&d, "success", "command exited with status 0");
	assert_output(&d, "n", "3", false);
	assert_output(&d, "obj", "{\"a\":[1,null]}", false);
	assert_output(&d, "pw", "\"s3\"", true);
	extdrv_release(&d);
}
END_TEST

START_TEST(test_exec_bad_output_file)
{
	struct extdrv d;
	struct drv_opts o = {
		.action = "apply",
		.config = "{\"command\":[\"sh\",\"-c\",\"echo ok=1 > $ORCHD_OUTPUT; "
			  "echo garbage >> $ORCHD_OUTPUT\"]}",
	};

	drive("exec", &o, &d);
	assert_result(&d, "failure", "$ORCHD_OUTPUT: line 2: expected KEY=VALUE or KEY<<DELIMITER");
	ck_assert_ptr_null(extdrv_find_first(&d, "output", NULL, NULL));
	extdrv_release(&d);

	o.config = "{\"command\":[\"sh\",\"-c\",\"printf 'k<<END\\\\nv\\\\n' > $ORCHD_OUTPUT\"]}";
	drive("exec", &o, &d);
	assert_result(&d, "failure", "$ORCHD_OUTPUT: line 1: delimiter 'END' not found");
	extdrv_release(&d);

	o.config = "{\"command\":[\"sh\",\"-c\",\"echo '{\\\"a\\\":' > $ORCHD_OUTPUT\"]}";
	drive("exec", &o, &d);
	ck_assert_str_eq(op_get_str(d.result, "status"), "failure");
	ck_assert_ptr_nonnull(
		strstr(op_get_str(d.result, "summary"), "$ORCHD_OUTPUT: invalid JSON object: "));
	extdrv_release(&d);
}
END_TEST

/*
 * An output may be up to 16 MiB in $ORCHD_OUTPUT; one protocol line holds
 * 1 MiB: a value too big for a line travels in a file of the workdir
 * (PROTOCOL.md §4.1), whole, and the outputs after it follow (it was
 * dropped without a word once, then it failed the action).
 */
START_TEST(test_exec_output_too_big_for_a_message)
{
	struct extdrv d;
	struct drv_opts o = {
		.action = "apply",
		.config = "{\"command\":[\"sh\",\"-c\",\"echo small=1 > $ORCHD_OUTPUT; "
			  "printf 'big=%1200000s\\\\n' x >> $ORCHD_OUTPUT; "
			  "echo after=1 >> $ORCHD_OUTPUT\"]}",
	};
	struct json_object *big;

	drive("exec", &o, &d);
	ck_assert_str_eq(op_get_str(d.result, "status"), "success");
	assert_output(&d, "small", "\"1\"", false);
	big = extdrv_find_first(&d, "output", "key", "big");
	ck_assert_ptr_nonnull(big);
	ck_assert_ptr_nonnull(op_get_str(big, "file"));
	ck_assert_int_eq(strlen(op_get_str(big, "value")), 1200000);
	assert_output(&d, "after", "\"1\"", false);
	extdrv_release(&d);
}
END_TEST

START_TEST(test_exec_failing_command)
{
	struct extdrv d;
	struct drv_opts o = {.action = "apply",
			     .config = "{\"command\":[\"sh\",\"-c\",\"echo k=v > $ORCHD_OUTPUT; "
				       "exit 3\"]}"};

	drive("exec", &o, &d);
	assert_result(&d, "failure", "command exited with status 3");
	ck_assert_ptr_null(extdrv_find_first(&d, "output", NULL, NULL));
	ck_assert_str_eq(json_text(op_get(extdrv_find_last(&d, "state", NULL, NULL), "state")),
			 "{\"runs\":1,\"last_status\":3}");
	extdrv_release(&d);

	o.config = "{\"command\":[\"sh\",\"-c\",\"kill -KILL $$\"]}";
	drive("exec", &o, &d);
	assert_result(&d, "failure", "command killed by signal 9 (SIGKILL)");
	extdrv_release(&d);

	o.config = "{\"command\":[\"orchd-no-such-program-xyz\"]}";
	drive("exec", &o, &d);
	assert_result(&d, "failure",
		      "cannot run 'orchd-no-such-program-xyz': No such file or directory");
	extdrv_release(&d);
}
END_TEST

START_TEST(test_exec_cwd)
{
	struct extdrv d;
	char *dir = test_tmpdir(), *env = NULL, *sub = NULL;
	struct drv_opts o = {.action = "apply",
			     .config = "{\"command\":[\"pwd\"],\"cwd\":\"sub\"}"};

	ck_assert_int_ge(asprintf(&sub, "%s/sub", dir), 0);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ck_assert_int_ge(asprintf(&env, "ORCHD_PIPELINE_DIR=%s", dir), 0);
	o.env = env;
	drive("exec", &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert_ptr_nonnull(strstr(d.stderr_text, sub));
	extdrv_release(&d);

	o.env = NULL;
	o.config = "{\"command\":[\"pwd\"],\"cwd\":\"missing\"}";
	drive("exec", &o, &d);
	ck_assert_str_eq(op_get_str(d.result, "status"), "failure");
	ck_assert_ptr_nonnull(strstr(op_get_str(d.result, "summary"), "/missing': No such file"));
	extdrv_release(&d);
	test_rmtree(dir);
	free(dir);
	free(sub);
	free(env);
}
END_TEST

START_TEST(test_exec_plan_destroy)
{
	struct extdrv d;
	struct drv_opts o = {.action = "plan", .config = "{\"command\":[\"echo\",\"a b\",\"c\"]}"};

	drive("exec", &o, &d);
	assert_result(&d, "success", "would run: echo 'a b' c");
	ck_assert(op_get_bool(d.result, "changed", false));
	extdrv_release(&d);

	o.config = "{\"command\":[\"false\"],\"plan_command\":[\"sh\",\"-c\","
		   "\"echo changed=false > $ORCHD_OUTPUT\"]}";
	drive("exec", &o, &d);
	assert_result(&d, "success", "plan: command exited with status 0");
	ck_assert(!op_get_bool(d.result, "changed", true));
	ck_assert_ptr_null(extdrv_find_first(&d, "output", NULL, NULL));
	extdrv_release(&d);

	o.action = "destroy";
	o.config = "{\"command\":[\"true\"]}";
	o.state = "{\"runs\":1}";
	drive("exec", &o, &d);
	assert_result(&d, "success", "nothing to destroy");
	ck_assert(!op_get_bool(d.result, "changed", true));
	ck_assert_ptr_null(op_get(extdrv_find_last(&d, "state", NULL, NULL), "state"));
	extdrv_release(&d);

	o.config = "{\"command\":[\"true\"],\"destroy_command\":[\"sh\",\"-c\",\"echo bye\"]}";
	drive("exec", &o, &d);
	assert_result(&d, "success", "destroy: command exited with status 0");
	ck_assert_str_eq(d.stderr_text, "bye\n");
	extdrv_release(&d);
}
END_TEST

START_TEST(test_exec_cancel)
{
	struct extdrv d;
	struct drv_opts o = {
		.action = "apply",
		.config = "{\"command\":[\"sh\",\"-c\",\"trap 'echo got-term; exit 5' TERM; "
			  "echo $$ > pid; echo started; sleep 30 & wait\"]}",
		.cancel_after = "started"};
	char *pidfile = NULL, *text;
	pid_t pid;

	drive("exec", &o, &d);
	assert_result(&d, "failure", "cancelled");
	ck_assert_ptr_nonnull(
		extdrv_find_first(&d, "log", "message", "cancelled: sent SIGTERM to the command"));
	/* the command got SIGTERM (not the SIGKILL fallback) */
	ck_assert_ptr_nonnull(strstr(d.stderr_text, "got-term"));
	ck_assert_int_ge(asprintf(&pidfile, "%s/pid", d.workdir), 0);
	text = test_read_file(pidfile, NULL);
	ck_assert_ptr_nonnull(text);
	pid = (pid_t)atoi(text);
	ck_assert_int_gt(pid, 1);
	/* the command was killed and reaped before the result */
	ck_assert_int_eq(kill(pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	free(text);
	free(pidfile);
	extdrv_release(&d);
}
END_TEST

/* orchd sends the cancel right behind the action (one write): the helper
 * must find it in what it already buffered */
START_TEST(test_exec_cancel_buffered)
{
	struct extdrv d;
	struct drv_opts o = {.action = "apply",
			     .config = "{\"command\":[\"sleep\",\"30\"]}",
			     .cancel_at_once = true};

	drive("exec", &o, &d);
	assert_result(&d, "failure", "cancelled");
	extdrv_release(&d);
}
END_TEST

/* orchd also SIGTERMs the extension's process group; the command runs in
 * its own group, so exec must forward the signal and still report */
START_TEST(test_exec_sigterm)
{
	struct extdrv d;
	struct drv_opts o = {.action = "apply",
			     .config = "{\"command\":[\"sh\",\"-c\",\"trap 'echo got-term; exit 5' "
				       "TERM; echo started; sleep 30 & wait\"]}",
			     .cancel_after = "started",
			     .sigterm = true};

	drive("exec", &o, &d);
	assert_result(&d, "failure", "cancelled");
	ck_assert_ptr_nonnull(strstr(d.stderr_text, "got-term"));
	extdrv_release(&d);
}
END_TEST

START_TEST(test_exec_protocol_mismatch)
{
	struct extdrv d;
	struct drv_opts o = {.action = "apply",
			     .hello = "{\"type\":\"hello\",\"protocol\":{\"min\":2,\"max\":3},"
				      "\"orchd_version\":\"9.0.0\"}\n"};

	drive("exec", &o, &d);
	ck_assert_ptr_null(d.result);
	ck_assert_int_eq(d.status, 1);
	ck_assert_str_eq(op_get_str(extdrv_find_first(&d, "error", NULL, NULL), "message"),
			 "extension exec speaks protocol 1..1, orchd offers 2..3");
	ck_assert(!op_get_bool(extdrv_find_first(&d, "error", NULL, NULL), "retryable", true));
	extdrv_release(&d);
}
END_TEST

/* --- the example extensions (sh, Python) ------------------------------------ */

static const char *const demos[] = {"shdemo", "pydemo"};

START_TEST(test_demo_describe)
{
	struct extdrv d;
	struct drv_opts o = {.action = "describe"};

	drive(demos[_i], &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert_str_eq(op_get_str(d.hello, "name"), demos[_i]);
	ck_assert_str_eq(op_get_str(op_get(d.result, "describe"), "type"), demos[_i]);
	ck_assert(json_object_is_type(op_get(op_get(d.result, "describe"), "config"),
				      json_type_object));
	ck_assert_str_eq(d.nonproto, "");
	extdrv_release(&d);
}
END_TEST

START_TEST(test_demo_validate)
{
	/* the same three errors in both; their order is the SDK's: the sh
	 * example checks unknown keys first (as the C extensions do), the
	 * Python SDK's schema check reports missing required keys first */
	static const char *const summaries[] = {
		"invalid configuration: unknown key 'whom' (did you mean 'who'?) (and 2 more)",
		"invalid configuration: who: is required (and 2 more)"};
	static const char *const errors[] = {
		"[{\"path\":\"whom\",\"message\":\"unknown key 'whom' (did you mean 'who'?)\"},"
		"{\"path\":\"who\",\"message\":\"is required\"},"
		"{\"path\":\"greeting\",\"message\":\"must be a string\"}]",
		"[{\"path\":\"who\",\"message\":\"is required\"},"
		"{\"path\":\"whom\",\"message\":\"unknown key 'whom' (did you mean 'who'?)\"},"
		"{\"path\":\"greeting\",\"message\":\"must be a string\"}]"};
	struct extdrv d;
	struct drv_opts o = {.action = "validate", .config = "{\"whom\":\"x\",\"greeting\":5}"};

	drive(demos[_i], &o, &d);
	assert_result(&d, "failure", summaries[_i]);
	ck_assert_str_eq(json_text(op_get(d.result, "errors")), errors[_i]);
	ck_assert_ptr_nonnull(
		extdrv_find_first(&d, "log", "message", "greeting: must be a string"));
	extdrv_release(&d);

	o.config = "{\"who\":\"\"}";
	drive(demos[_i], &o, &d);
	assert_result(&d, "failure", "invalid configuration: who: must be a non-empty string");
	extdrv_release(&d);

	o.config = "{\"who\":\"Ada\",\"greeting\":\"hi\"}";
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", "configuration is valid");
	extdrv_release(&d);
}
END_TEST

START_TEST(test_demo_lifecycle)
{
	struct extdrv d;
	struct drv_opts o = {.action = "plan", .config = "{\"who\":\"A \\\"q\\\" \\u00e9\"}"};
	char *state, *file = NULL, *text;

	/* first plan: nothing yet, would change */
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert(op_get_bool(d.result, "changed", false));
	extdrv_release(&d);

	/* first apply: outputs, state, a file in the workdir */
	o.action = "apply";
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert(op_get_bool(d.result, "changed", false));
	assert_output(&d, "message", "\"hello, A \\\"q\\\" \xc3\xa9\"", false);
	assert_output(&d, "runs", "1", false);
	ck_assert_int_ge(asprintf(&file, "%s/greeting.txt", d.workdir), 0);
	text = test_read_file(file, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "hello, A "));
	free(text);
	free(file);
	state = strdup(json_text(op_get(extdrv_find_last(&d, "state", NULL, NULL), "state")));
	ck_assert_str_eq(state,
			 "{\"who\":\"A \\\"q\\\" \xc3\xa9\",\"greeting\":\"hello\",\"runs\":1}");
	extdrv_release(&d);

	/* second apply reads the state back: runs 2, nothing changed */
	o.state = state;
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert(!op_get_bool(d.result, "changed", true));
	assert_output(&d, "runs", "2", false);
	ck_assert_ptr_nonnull(extdrv_find_first(&d, "log", "level", "debug"));
	extdrv_release(&d);

	/* plan with that state: no change */
	o.action = "plan";
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", "no change");
	ck_assert(!op_get_bool(d.result, "changed", true));
	extdrv_release(&d);

	/* destroy clears the state */
	o.action = "destroy";
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert(op_has(extdrv_find_last(&d, "state", NULL, NULL), "state"));
	ck_assert_ptr_null(op_get(extdrv_find_last(&d, "state", NULL, NULL), "state"));
	ck_assert_str_eq(d.nonproto, "");
	extdrv_release(&d);
	free(state);
}
END_TEST

START_TEST(test_demo_protocol_mismatch)
{
	struct extdrv d;
	struct drv_opts o = {.action = "apply",
			     .hello = "{\"type\":\"hello\",\"protocol\":{\"min\":2,\"max\":3},"
				      "\"orchd_version\":\"9.0.0\"}\n"};
	char *want = NULL;

	drive(demos[_i], &o, &d);
	ck_assert_ptr_null(d.result);
	ck_assert_int_eq(d.status, 1);
	ck_assert_int_ge(
		asprintf(&want, "extension %s speaks protocol 1..1, orchd offers 2..3", demos[_i]),
		0);
	ck_assert_str_eq(op_get_str(extdrv_find_first(&d, "error", NULL, NULL), "message"), want);
	free(want);
	extdrv_release(&d);
}
END_TEST

/* A session (PROTOCOL.md §7.6): exec and both demos declare it, answer
 * validate, then take apply in the same process and exit 0 at the end of
 * their input; a describe then an apply too (any listed action may follow). */
START_TEST(test_session_two_actions)
{
	static const char *const which[] = {"exec", "shdemo", "pydemo"};
	static const char *const firsts[] = {"validate", "describe"};

	for (size_t k = 0; k < sizeof(firsts) / sizeof(firsts[0]); k++) {
		struct extdrv d;
		struct drv_opts o = {
			.action = firsts[k],
			.next_action = "apply",
			.config = _i ? "{\"who\":\"sessions\"}"
				     : "{\"command\":[\"sh\",\"-c\",\"echo applied\"]}",
		};

		drive(which[_i], &o, &d);
		ck_assert_msg(op_hello_has_feature(d.hello, OP_FEATURE_SESSION), "%s: %s",
			      which[_i], json_text(d.hello));
		ck_assert_ptr_nonnull(d.first_result);
		ck_assert_str_eq(op_get_str(d.first_result, "status"), "success");
		assert_result(&d, "success", NULL);
		ck_assert_int_eq(d.status, 0);
		if (_i)
			ck_assert_ptr_nonnull(extdrv_find_first(&d, "output", "key", "message"));
		else
			ck_assert_str_eq(d.stderr_text, "applied\n");
		extdrv_release(&d);
	}
}
END_TEST

Suite *exec_ext_suite(void)
{
	Suite *s = suite_create("exec_ext");
	TCase *tc = tcase_create("exec");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_exec_describe);
	tcase_add_test(tc, test_exec_validate_errors);
	tcase_add_test(tc, test_exec_apply_kv_outputs_and_logs);
	tcase_add_test(tc, test_exec_apply_json_outputs);
	tcase_add_test(tc, test_exec_bad_output_file);
	tcase_add_test(tc, test_exec_output_too_big_for_a_message);
	tcase_add_test(tc, test_exec_failing_command);
	tcase_add_test(tc, test_exec_cwd);
	tcase_add_test(tc, test_exec_plan_destroy);
	tcase_add_test(tc, test_exec_cancel);
	tcase_add_test(tc, test_exec_cancel_buffered);
	tcase_add_test(tc, test_exec_sigterm);
	tcase_add_test(tc, test_exec_protocol_mismatch);
	suite_add_tcase(s, tc);

	tc = tcase_create("demos");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_demo_describe, 0, 2);
	tcase_add_loop_test(tc, test_demo_validate, 0, 2);
	tcase_add_loop_test(tc, test_demo_lifecycle, 0, 2);
	tcase_add_loop_test(tc, test_demo_protocol_mismatch, 0, 2);
	tcase_add_loop_test(tc, test_session_two_actions, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}
