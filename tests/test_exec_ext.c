/*
 * Tests of the extensions shipped with orchd: orchd-ext-exec (C, built),
 * and the examples orchd-ext-shdemo (POSIX sh) and orchd-ext-pydemo
 * (Python 3), each driven as a real process over real pipes by a small
 * in-test driver built on the protocol library (the supervisor proper is
 * tested elsewhere).
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

#include "orchd_protocol.h"
#include "testutil.h"

struct drv {
	struct json_object *msgs;   /* every valid message, in order (owned) */
	struct json_object *result; /* borrowed from msgs */
	struct json_object *hello;  /* borrowed from msgs */
	char *nonproto;		    /* non-protocol lines, '\n'-joined */
	int status;		    /* exit code, 128+sig when killed */
	char *workdir;
};

struct drv_opts {
	const char *action;
	const char *config;	  /* JSON text, NULL: {} */
	const char *state;	  /* JSON text, NULL: null */
	const char *env;	  /* "NAME=VALUE" added to the extension's env, or NULL */
	const char *hello;	  /* orchd hello line override, or NULL */
	const char *cancel_after; /* send cancel after a log message with this text */
	bool cancel_at_once;	  /* send cancel in the same write as the action */
	bool sigterm;		  /* with cancel_after: SIGTERM the extension instead */
};

static char *ext_path(const char *which)
{
	if (!strcmp(which, "exec"))
		return test_build_path("libexec/orchd/extensions/orchd-ext-exec");
	if (!strcmp(which, "shdemo"))
		return test_src_path("examples/extensions/sh/orchd-ext-shdemo");
	return test_src_path("examples/extensions/python/orchd-ext-pydemo");
}

static void send_str(int fd, const char *s)
{
	ck_assert_int_eq(op_write_all(fd, s, strlen(s)), 0);
}

/* Run one action against the extension `which`; fills d. */
static void drive(const char *which, const struct drv_opts *o, struct drv *d)
{
	int in_p[2], out_p[2];
	char *exe = ext_path(which), buf[65536], *line_out;
	struct op_splitter *sp = op_splitter_new(0, OP_SPLIT_STRICT);
	struct json_object *cfg, *st = NULL;
	bool sent_action = false, sent_cancel = false;
	pid_t pid;
	int wst;

	memset(d, 0, sizeof(*d));
	d->msgs = json_object_new_array();
	d->workdir = test_tmpdir();
	d->nonproto = strdup("");
	ck_assert_int_eq(pipe(in_p), 0);
	ck_assert_int_eq(pipe(out_p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(in_p[0], 0);
		dup2(out_p[1], 1);
		close(in_p[0]);
		close(in_p[1]);
		close(out_p[0]);
		close(out_p[1]);
		if (chdir(d->workdir) < 0)
			_exit(126);
		setenv("ORCHD_PROTOCOL", "1", 1);
		setenv("ORCHD_INSTANCE", "t", 1);
		setenv("ORCHD_WORKDIR", d->workdir, 1);
		if (o->env)
			putenv((char *)(uintptr_t)o->env);
		execl(exe, exe, (char *)NULL);
		_exit(127);
	}
	close(in_p[0]);
	close(out_p[1]);
	signal(SIGPIPE, SIG_IGN);
	send_str(in_p[1], o->hello ? o->hello
				   : "{\"type\":\"hello\",\"protocol\":{\"min\":1,\"max\":1},"
				     "\"orchd_version\":\"0.1.0\"}\n");
	cfg = o->config ? json_tokener_parse(o->config) : json_object_new_object();
	ck_assert_ptr_nonnull(cfg);
	if (o->state) {
		st = json_tokener_parse(o->state);
		ck_assert_ptr_nonnull(st);
	}
	for (;;) {
		const char *line;
		size_t len;
		enum op_line_status ls;
		ssize_t n = read(out_p[0], buf, sizeof(buf));

		ck_assert_int_ge(n, 0);
		if (n == 0)
			op_splitter_finish(sp);
		else
			op_splitter_feed(sp, buf, (size_t)n);
		while ((ls = op_splitter_next(sp, &line, &len)) != OP_LINE_NONE) {
			struct op_parsed p;

			ck_assert_int_eq(ls, OP_LINE_OK);
			op_parse_line(OP_FROM_EXT, line, len, &p);
			ck_assert_msg(p.verdict != OP_PROTOCOL_ERROR, "%s: protocol error: %s [%s]",
				      which, p.error, line);
			if (p.verdict == OP_NON_PROTOCOL) {
				char *s = NULL;

				ck_assert_int_ge(asprintf(&s, "%s%s\n", d->nonproto, line), 0);
				free(d->nonproto);
				d->nonproto = s;
			}
			if (p.verdict != OP_VALID) {
				op_parsed_release(&p);
				continue;
			}
			json_object_array_add(d->msgs, op_parsed_steal(&p));
			struct json_object *m = json_object_array_get_idx(
				d->msgs, json_object_array_length(d->msgs) - 1);

			if (p.type == OP_MSG_HELLO && !sent_action) {
				d->hello = m;
				line_out = op_encode_action(op_action_from_name(o->action), "t",
							    "dev-t", cfg, st, NULL, d->workdir);
				if (o->cancel_at_once) {
					char *both = NULL;

					ck_assert_int_ge(asprintf(&both,
								  "%s{\"type\":\"cancel\","
								  "\"reason\":\"timeout\"}\n",
								  line_out),
							 0);
					free(line_out);
					line_out = both;
				}
				send_str(in_p[1], line_out);
				free(line_out);
				sent_action = true;
			} else if (p.type == OP_MSG_LOG && o->cancel_after && !sent_cancel &&
				   strstr(op_get_str(m, "message"), o->cancel_after)) {
				if (o->sigterm)
					kill(pid, SIGTERM);
				else
					send_str(in_p[1], "{\"type\":\"cancel\",\"reason\":"
							  "\"interrupted\"}\n");
				sent_cancel = true;
			} else if (p.type == OP_MSG_RESULT) {
				ck_assert_ptr_null(d->result);
				d->result = m;
				close(in_p[1]);
				in_p[1] = -1;
			}
		}
		if (n == 0)
			break;
	}
	if (in_p[1] >= 0)
		close(in_p[1]);
	close(out_p[0]);
	ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
	d->status = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst);
	op_splitter_free(sp);
	json_object_put(cfg);
	json_object_put(st);
	free(exe);
}

static void drv_release(struct drv *d)
{
	json_object_put(d->msgs);
	free(d->nonproto);
	test_rmtree(d->workdir);
	free(d->workdir);
}

/* The n-th message of a type (0-based) with optional key == value. */
static struct json_object *find(const struct drv *d, const char *type, const char *key,
				const char *value)
{
	for (size_t i = 0; i < json_object_array_length(d->msgs); i++) {
		struct json_object *m = json_object_array_get_idx(d->msgs, i);

		if (strcmp(op_get_str(m, "type"), type))
			continue;
		if (key && (!op_get_str(m, key) || strcmp(op_get_str(m, key), value)))
			continue;
		return m;
	}
	return NULL;
}

/* The last message of a type. */
static struct json_object *last(const struct drv *d, const char *type)
{
	struct json_object *found = NULL;

	for (size_t i = 0; i < json_object_array_length(d->msgs); i++) {
		struct json_object *m = json_object_array_get_idx(d->msgs, i);

		if (!strcmp(op_get_str(m, "type"), type))
			found = m;
	}
	return found;
}

static const char *json_text(struct json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
}

static void assert_result(const struct drv *d, const char *status, const char *summary)
{
	ck_assert_msg(d->result != NULL, "no result; messages: %s", json_text(d->msgs));
	ck_assert_str_eq(op_get_str(d->result, "status"), status);
	if (summary)
		ck_assert_str_eq(op_get_str(d->result, "summary"), summary);
	ck_assert_int_eq(d->status, 0);
}

static void assert_output(const struct drv *d, const char *key, const char *json, bool secret)
{
	struct json_object *o = NULL;

	/* a later output with the same key replaces the earlier: take the last */
	for (size_t i = 0; i < json_object_array_length(d->msgs); i++) {
		struct json_object *m = json_object_array_get_idx(d->msgs, i);

		if (!strcmp(op_get_str(m, "type"), "output") && !strcmp(op_get_str(m, "key"), key))
			o = m;
	}
	ck_assert_msg(o != NULL, "no output %s in %s", key, json_text(d->msgs));
	ck_assert_str_eq(json_text(op_get(o, "value")), json);
	ck_assert_int_eq(op_get_bool(o, "secret", false), secret);
}

/* --- exec ------------------------------------------------------------------- */

START_TEST(test_exec_describe)
{
	struct drv d;
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
	drv_release(&d);
}
END_TEST

START_TEST(test_exec_validate_errors)
{
	struct drv d;
	struct drv_opts o = {.action = "validate",
			     .config = "{\"comand\":[\"x\"],\"env\":{\"FOO\":1},\"cwd\":3}"};
	struct json_object *errs;

	drive("exec", &o, &d);
	assert_result(&d, "failure",
		      "invalid configuration: unknown key 'comand' (did you mean 'command'?) "
		      "(and 3 more)");
	errs = op_get(d.result, "errors");
	ck_assert_str_eq(json_text(errs),
			 "[{\"path\":\"\",\"message\":\"unknown key 'comand' (did you mean "
			 "'command'?)\"},{\"path\":\"command\",\"message\":\"is required\"},"
			 "{\"path\":\"env.FOO\",\"message\":\"must be a string\"},"
			 "{\"path\":\"cwd\",\"message\":\"must be a non-empty string\"}]");
	ck_assert_ptr_nonnull(find(&d, "log", "message", "command: is required"));
	ck_assert_ptr_nonnull(find(&d, "log", "message", "env.FOO: must be a string"));
	drv_release(&d);

	o.config = "{\"command\":\"ls\",\"secret_outputs\":[1]}";
	drive("exec", &o, &d);
	assert_result(&d, "failure",
		      "invalid configuration: command: must be a list of strings (and 1 more)");
	ck_assert_ptr_nonnull(find(&d, "log", "message", "secret_outputs[0]: must be a string"));
	drv_release(&d);

	o.config = "{\"command\":[\"true\"],\"env\":{\"A\":\"b\"}}";
	drive("exec", &o, &d);
	assert_result(&d, "success", "configuration is valid");
	drv_release(&d);
}
END_TEST

START_TEST(test_exec_apply_kv_outputs_and_logs)
{
	struct drv d;
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
	ck_assert_ptr_nonnull(find(&d, "log", "message", "out-line"));
	ck_assert_str_eq(op_get_str(find(&d, "log", "message", "out-line"), "level"), "info");
	ck_assert_str_eq(op_get_str(find(&d, "log", "message", "err-line"), "level"), "warning");
	assert_output(&d, "url", "\"http://h/x?a=b\"", false);
	assert_output(&d, "tok", "\"l1\\n\\nl3\"", true);
	assert_output(&d, "who", "\"me\"", false);
	/* previous state read back, new state sent */
	ck_assert_ptr_nonnull(
		find(&d, "log", "message", "previous state: 2 run(s), last status 0"));
	st = op_get(last(&d, "state"), "state");
	ck_assert_str_eq(json_text(st), "{\"runs\":3,\"last_status\":0}");
	drv_release(&d);
}
END_TEST

START_TEST(test_exec_apply_json_outputs)
{
	struct drv d;
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
	drv_release(&d);
}
END_TEST

START_TEST(test_exec_bad_output_file)
{
	struct drv d;
	struct drv_opts o = {
		.action = "apply",
		.config = "{\"command\":[\"sh\",\"-c\",\"echo ok=1 > $ORCHD_OUTPUT; "
			  "echo garbage >> $ORCHD_OUTPUT\"]}",
	};

	drive("exec", &o, &d);
	assert_result(&d, "failure", "$ORCHD_OUTPUT: line 2: expected KEY=VALUE or KEY<<DELIMITER");
	ck_assert_ptr_null(find(&d, "output", NULL, NULL));
	drv_release(&d);

	o.config = "{\"command\":[\"sh\",\"-c\",\"printf 'k<<END\\\\nv\\\\n' > $ORCHD_OUTPUT\"]}";
	drive("exec", &o, &d);
	assert_result(&d, "failure", "$ORCHD_OUTPUT: line 1: delimiter 'END' not found");
	drv_release(&d);

	o.config = "{\"command\":[\"sh\",\"-c\",\"echo '{\\\"a\\\":' > $ORCHD_OUTPUT\"]}";
	drive("exec", &o, &d);
	ck_assert_str_eq(op_get_str(d.result, "status"), "failure");
	ck_assert_ptr_nonnull(
		strstr(op_get_str(d.result, "summary"), "$ORCHD_OUTPUT: invalid JSON object: "));
	drv_release(&d);
}
END_TEST

START_TEST(test_exec_failing_command)
{
	struct drv d;
	struct drv_opts o = {.action = "apply",
			     .config = "{\"command\":[\"sh\",\"-c\",\"echo k=v > $ORCHD_OUTPUT; "
				       "exit 3\"]}"};

	drive("exec", &o, &d);
	assert_result(&d, "failure", "command exited with status 3");
	ck_assert_ptr_null(find(&d, "output", NULL, NULL));
	ck_assert_str_eq(json_text(op_get(last(&d, "state"), "state")),
			 "{\"runs\":1,\"last_status\":3}");
	drv_release(&d);

	o.config = "{\"command\":[\"sh\",\"-c\",\"kill -KILL $$\"]}";
	drive("exec", &o, &d);
	assert_result(&d, "failure", "command killed by signal 9");
	drv_release(&d);

	o.config = "{\"command\":[\"orchd-no-such-program-xyz\"]}";
	drive("exec", &o, &d);
	assert_result(&d, "failure",
		      "cannot run 'orchd-no-such-program-xyz': No such file or directory");
	drv_release(&d);
}
END_TEST

START_TEST(test_exec_cwd)
{
	struct drv d;
	char *dir = test_tmpdir(), *env = NULL, *sub = NULL;
	struct drv_opts o = {.action = "apply",
			     .config = "{\"command\":[\"pwd\"],\"cwd\":\"sub\"}"};

	ck_assert_int_ge(asprintf(&sub, "%s/sub", dir), 0);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ck_assert_int_ge(asprintf(&env, "ORCHD_PIPELINE_DIR=%s", dir), 0);
	o.env = env;
	drive("exec", &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert_ptr_nonnull(find(&d, "log", "message", sub));
	drv_release(&d);

	o.env = NULL;
	o.config = "{\"command\":[\"pwd\"],\"cwd\":\"missing\"}";
	drive("exec", &o, &d);
	ck_assert_str_eq(op_get_str(d.result, "status"), "failure");
	ck_assert_ptr_nonnull(strstr(op_get_str(d.result, "summary"), "/missing': No such file"));
	drv_release(&d);
	test_rmtree(dir);
	free(dir);
	free(sub);
	free(env);
}
END_TEST

START_TEST(test_exec_plan_destroy)
{
	struct drv d;
	struct drv_opts o = {.action = "plan", .config = "{\"command\":[\"echo\",\"a b\",\"c\"]}"};

	drive("exec", &o, &d);
	assert_result(&d, "success", "would run: echo 'a b' c");
	ck_assert(op_get_bool(d.result, "changed", false));
	drv_release(&d);

	o.config = "{\"command\":[\"false\"],\"plan_command\":[\"sh\",\"-c\","
		   "\"echo changed=false > $ORCHD_OUTPUT\"]}";
	drive("exec", &o, &d);
	assert_result(&d, "success", "plan: command exited with status 0");
	ck_assert(!op_get_bool(d.result, "changed", true));
	ck_assert_ptr_null(find(&d, "output", NULL, NULL));
	drv_release(&d);

	o.action = "destroy";
	o.config = "{\"command\":[\"true\"]}";
	o.state = "{\"runs\":1}";
	drive("exec", &o, &d);
	assert_result(&d, "success", "nothing to destroy");
	ck_assert(!op_get_bool(d.result, "changed", true));
	ck_assert_ptr_null(op_get(last(&d, "state"), "state"));
	drv_release(&d);

	o.config = "{\"command\":[\"true\"],\"destroy_command\":[\"sh\",\"-c\",\"echo bye\"]}";
	drive("exec", &o, &d);
	assert_result(&d, "success", "destroy: command exited with status 0");
	ck_assert_ptr_nonnull(find(&d, "log", "message", "bye"));
	drv_release(&d);
}
END_TEST

START_TEST(test_exec_cancel)
{
	struct drv d;
	struct drv_opts o = {
		.action = "apply",
		.config = "{\"command\":[\"sh\",\"-c\",\"trap 'echo got-term; exit 5' TERM; "
			  "echo $$ > pid; echo started; sleep 30 & wait\"]}",
		.cancel_after = "started"};
	char *pidfile = NULL, *text;
	pid_t pid;

	drive("exec", &o, &d);
	assert_result(&d, "failure", "cancelled");
	ck_assert_ptr_nonnull(find(&d, "log", "message", "cancelled: sent SIGTERM to the command"));
	/* the command got SIGTERM (not the SIGKILL fallback) */
	ck_assert_ptr_nonnull(find(&d, "log", "message", "got-term"));
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
	drv_release(&d);
}
END_TEST

/* orchd sends the cancel right behind the action (one write): the helper
 * must find it in what it already buffered */
START_TEST(test_exec_cancel_buffered)
{
	struct drv d;
	struct drv_opts o = {.action = "apply",
			     .config = "{\"command\":[\"sleep\",\"30\"]}",
			     .cancel_at_once = true};

	drive("exec", &o, &d);
	assert_result(&d, "failure", "cancelled");
	drv_release(&d);
}
END_TEST

/* orchd also SIGTERMs the extension's process group; the command runs in
 * its own group, so exec must forward the signal and still report */
START_TEST(test_exec_sigterm)
{
	struct drv d;
	struct drv_opts o = {.action = "apply",
			     .config = "{\"command\":[\"sh\",\"-c\",\"trap 'echo got-term; exit 5' "
				       "TERM; echo started; sleep 30 & wait\"]}",
			     .cancel_after = "started",
			     .sigterm = true};

	drive("exec", &o, &d);
	assert_result(&d, "failure", "cancelled");
	ck_assert_ptr_nonnull(find(&d, "log", "message", "got-term"));
	drv_release(&d);
}
END_TEST

START_TEST(test_exec_protocol_mismatch)
{
	struct drv d;
	struct drv_opts o = {.action = "apply",
			     .hello = "{\"type\":\"hello\",\"protocol\":{\"min\":2,\"max\":3},"
				      "\"orchd_version\":\"9.0.0\"}\n"};

	drive("exec", &o, &d);
	ck_assert_ptr_null(d.result);
	ck_assert_int_eq(d.status, 1);
	ck_assert_str_eq(op_get_str(find(&d, "error", NULL, NULL), "message"),
			 "extension exec speaks protocol 1..1, orchd offers 2..3");
	ck_assert(!op_get_bool(find(&d, "error", NULL, NULL), "retryable", true));
	drv_release(&d);
}
END_TEST

/* --- the example extensions (sh, Python) ------------------------------------ */

static const char *const demos[] = {"shdemo", "pydemo"};

START_TEST(test_demo_describe)
{
	struct drv d;
	struct drv_opts o = {.action = "describe"};

	drive(demos[_i], &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert_str_eq(op_get_str(d.hello, "name"), demos[_i]);
	ck_assert_str_eq(op_get_str(op_get(d.result, "describe"), "type"), demos[_i]);
	ck_assert(json_object_is_type(op_get(op_get(d.result, "describe"), "config"),
				      json_type_object));
	ck_assert_str_eq(d.nonproto, "");
	drv_release(&d);
}
END_TEST

START_TEST(test_demo_validate)
{
	struct drv d;
	struct drv_opts o = {.action = "validate", .config = "{\"whom\":\"x\",\"greeting\":5}"};

	drive(demos[_i], &o, &d);
	assert_result(
		&d, "failure",
		"invalid configuration: unknown key 'whom' (did you mean 'who'?) (and 2 more)");
	ck_assert_str_eq(
		json_text(op_get(d.result, "errors")),
		"[{\"path\":\"\",\"message\":\"unknown key 'whom' (did you mean 'who'?)\"},"
		"{\"path\":\"who\",\"message\":\"is required\"},"
		"{\"path\":\"greeting\",\"message\":\"must be a string\"}]");
	ck_assert_ptr_nonnull(find(&d, "log", "message", "greeting: must be a string"));
	drv_release(&d);

	o.config = "{\"who\":\"\"}";
	drive(demos[_i], &o, &d);
	assert_result(&d, "failure", "invalid configuration: who: must be a non-empty string");
	drv_release(&d);

	o.config = "{\"who\":\"Ada\",\"greeting\":\"hi\"}";
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", "configuration is valid");
	drv_release(&d);
}
END_TEST

START_TEST(test_demo_lifecycle)
{
	struct drv d;
	struct drv_opts o = {.action = "plan", .config = "{\"who\":\"A \\\"q\\\" \\u00e9\"}"};
	char *state, *file = NULL, *text;

	/* first plan: nothing yet, would change */
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert(op_get_bool(d.result, "changed", false));
	drv_release(&d);

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
	state = strdup(json_text(op_get(last(&d, "state"), "state")));
	ck_assert_str_eq(state,
			 "{\"who\":\"A \\\"q\\\" \xc3\xa9\",\"greeting\":\"hello\",\"runs\":1}");
	drv_release(&d);

	/* second apply reads the state back: runs 2, nothing changed */
	o.state = state;
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert(!op_get_bool(d.result, "changed", true));
	assert_output(&d, "runs", "2", false);
	ck_assert_ptr_nonnull(find(&d, "log", "level", "debug"));
	drv_release(&d);

	/* plan with that state: no change */
	o.action = "plan";
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", "no change");
	ck_assert(!op_get_bool(d.result, "changed", true));
	drv_release(&d);

	/* destroy clears the state */
	o.action = "destroy";
	drive(demos[_i], &o, &d);
	assert_result(&d, "success", NULL);
	ck_assert(op_has(last(&d, "state"), "state"));
	ck_assert_ptr_null(op_get(last(&d, "state"), "state"));
	ck_assert_str_eq(d.nonproto, "");
	drv_release(&d);
	free(state);
}
END_TEST

START_TEST(test_demo_protocol_mismatch)
{
	struct drv d;
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
	ck_assert_str_eq(op_get_str(find(&d, "error", NULL, NULL), "message"), want);
	free(want);
	drv_release(&d);
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
	suite_add_tcase(s, tc);
	return s;
}
