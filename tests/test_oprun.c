/*
 * Tests of the extension-side runner (op_cmd_run) and config-error helper
 * (op_errors_*, op_closest, op_ext_fail_errors) of the protocol library.
 * Real processes (sh, sleep, head), a real op_ext fed through a pipe (hello
 * + action, later a cancel) and writing its messages to a file.
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
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"
#include "orchd_protocol.h"
#include "testutil.h"

/* argv and env arrays hold char *; the strings are never written */
static char *S(const char *s)
{
	return (char *)(uintptr_t)s;
}

/* An op_ext on real fds: in_w feeds it (cancel), its messages go to a file. */
struct fixture {
	struct op_ext *ext;
	int in_w;
	char *dir, *outpath;
};

static void fx_init(struct fixture *fx)
{
	static const char *const actions[] = {"describe", "validate", "plan",
					      "apply",	  "destroy",  NULL};
	static const struct op_ext_info info = {"runtest", "0.1.0", NULL, actions};
	int in[2], out;
	char *hello = op_encode_hello_orchd(1, 1, "0.1.0");
	char *action = op_encode_action(OP_ACTION_APPLY, "i", "s", NULL, NULL, NULL, "/tmp");

	fx->dir = test_tmpdir();
	ck_assert_int_ge(asprintf(&fx->outpath, "%s/messages", fx->dir), 0);
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	out = open(fx->outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(out, 0);
	ck_assert_int_eq(op_write_all(in[1], hello, strlen(hello)), 0);
	ck_assert_int_eq(op_write_all(in[1], action, strlen(action)), 0);
	fx->ext = op_ext_start(&info, in[0], out);
	ck_assert_ptr_nonnull(fx->ext);
	fx->in_w = in[1];
	free(hello);
	free(action);
}

static void fx_cancel(struct fixture *fx)
{
	char *c = op_encode_cancel("interrupted");

	ck_assert_int_eq(op_write_all(fx->in_w, c, strlen(c)), 0);
	free(c);
}

static void fx_release(struct fixture *fx)
{
	op_ext_free(fx->ext);
	close(fx->in_w);
	test_rmtree(fx->dir);
	free(fx->dir);
	free(fx->outpath);
}

/*
 * The log messages written so far (at level, or all when NULL), as
 * "level:message\n" lines (malloc'ed).
 */
static char *fx_logs_at(const struct fixture *fx, const char *level)
{
	char *text = test_read_file(fx->outpath, NULL), *save = NULL, *line, *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	ck_assert_ptr_nonnull(text);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct op_parsed p;

		op_parse_line(OP_FROM_EXT, line, strlen(line), &p);
		if (p.verdict == OP_VALID && p.type == OP_MSG_LOG &&
		    (!level || !strcmp(level, op_get_str(p.msg, "level"))))
			fprintf(f, "%s:%s\n", op_get_str(p.msg, "level"),
				op_get_str(p.msg, "message"));
		op_parsed_release(&p);
	}
	fclose(f);
	free(text);
	return out;
}

static char *fx_logs(const struct fixture *fx)
{
	return fx_logs_at(fx, NULL);
}

static struct op_cmd_opts sh_opts(char **argv, const char *script)
{
	struct op_cmd_opts o = {0};

	argv[0] = S("sh");
	argv[1] = S("-c");
	argv[2] = S(script);
	argv[3] = NULL;
	o.argv = argv;
	o.out = (struct op_cmd_stream){OP_CMD_CAPTURE, NULL, 0};
	o.err = (struct op_cmd_stream){OP_CMD_CAPTURE, NULL, 0};
	return o;
}

/* OP_CMD_PASS: the program writes to our own stderr, nothing is captured
 * or split; the other stream works as usual. */
START_TEST(test_run_pass_to_stderr)
{
	char *argv[4], buf[256];
	struct op_cmd_opts o = sh_opts(argv, "echo to-out; echo to-err >&2; echo more-out");
	struct op_cmd_result r;
	int p[2], saved = dup(2);
	ssize_t n;

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(dup2(p[1], 2), 2);
	close(p[1]);
	o.out = (struct op_cmd_stream){OP_CMD_PASS, NULL, 0};
	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), 0);
	dup2(saved, 2);
	close(saved);
	ck_assert(op_cmd_exited(&r, 0));
	ck_assert_uint_eq(r.out.len, 0);
	ck_assert_str_eq(r.err.buf, "to-err\n");
	n = read(p[0], buf, sizeof(buf) - 1); /* every writer is gone */
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_str_eq(buf, "to-out\nmore-out\n");
	close(p[0]);
	op_cmd_result_release(&r);
}
END_TEST

START_TEST(test_run_exit_status)
{
	char *argv[4], buf[128];
	struct op_cmd_opts o = sh_opts(argv, "echo out; echo err >&2; exit 3");
	struct op_cmd_result r;

	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), 0);
	ck_assert(r.ran);
	ck_assert(!r.cancelled);
	ck_assert_int_eq(r.exit_code, 3);
	ck_assert_int_eq(r.term_signal, 0);
	ck_assert(op_cmd_exited(&r, 3));
	ck_assert(!op_cmd_exited(&r, 0));
	ck_assert_str_eq(r.out.buf, "out\n");
	ck_assert_str_eq(r.err.buf, "err\n");
	ck_assert_str_eq(op_cmd_status_text(&r, buf, sizeof(buf)), "exit status 3");
	ck_assert(!op_cmd_summary(&r, buf, sizeof(buf)));
	ck_assert_str_eq(buf, "command exited with status 3");
	op_cmd_result_release(&r);

	o = sh_opts(argv, "exit 0");
	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), 0);
	ck_assert(op_cmd_summary(&r, buf, sizeof(buf)));
	ck_assert_str_eq(buf, "command exited with status 0");
	ck_assert_str_eq(r.out.buf, "");
	op_cmd_result_release(&r);
}
END_TEST

/* op_cmd_failure: the error lines of stderr, else its last three lines. */
START_TEST(test_run_failure_text)
{
	static const char *const prefixes[] = {"error: ", "Error from server", NULL};
	char *argv[4], *s;
	struct op_cmd_opts o = sh_opts(argv, "echo noise >&2; echo 'error: bad thing' >&2; echo "
					     "'Error from server (Invalid): x' >&2; "
					     "echo more >&2; exit 2");
	struct op_cmd_result r;

	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), 0);
	s = op_cmd_failure(&r, "tool apply", prefixes, 0);
	ck_assert_str_eq(s, "tool apply failed (exit status 2): bad thing; Error from server "
			    "(Invalid): x");
	free(s);
	/* no such line: the last three lines */
	s = op_cmd_failure(&r, "tool apply", NULL, 0);
	ck_assert_str_eq(s, "tool apply failed (exit status 2): error: bad thing | Error from "
			    "server (Invalid): x | more");
	free(s);
	op_cmd_result_release(&r);

	o = sh_opts(argv, "echo one >&2; echo >&2; echo two >&2; kill -9 $$");
	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), 0);
	s = op_cmd_failure(&r, "t", prefixes, 30);
	ck_assert_uint_le(strlen(s), 30);
	ck_assert_msg(!strncmp(s, "t failed (killed by signal 9", 27), "%s", s);
	free(s);
	op_cmd_result_release(&r);
}
END_TEST

START_TEST(test_run_signal)
{
	char *argv[4], buf[128];
	struct op_cmd_opts o = sh_opts(argv, "kill -KILL $$");
	struct op_cmd_result r;

	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), 0);
	ck_assert(r.ran);
	ck_assert_int_eq(r.exit_code, -1);
	ck_assert_int_eq(r.term_signal, SIGKILL);
	ck_assert_str_eq(op_cmd_status_text(&r, buf, sizeof(buf)), "killed by signal 9 (SIGKILL)");
	ck_assert(!op_cmd_summary(&r, buf, sizeof(buf)));
	ck_assert_str_eq(buf, "command killed by signal 9 (SIGKILL)");
	op_cmd_result_release(&r);
}
END_TEST

START_TEST(test_run_cannot_start)
{
	char *argv[] = {S("orchd-no-such-program-xyz"), NULL}, buf[600];
	struct op_cmd_opts o = {.argv = argv};
	struct op_cmd_result r;

	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert(!r.ran);
	ck_assert_str_eq(r.error,
			 "cannot run 'orchd-no-such-program-xyz': No such file or directory");
	ck_assert(!op_cmd_summary(&r, buf, sizeof(buf)));
	ck_assert_str_eq(buf, r.error);
	op_cmd_result_release(&r);

	argv[0] = S("true");
	o.cwd = "/nonexistent-orchd-dir";
	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), -1);
	ck_assert_str_eq(r.error,
			 "cannot change to directory '/nonexistent-orchd-dir': No such file or "
			 "directory");
	op_cmd_result_release(&r);
}
END_TEST

/* env additions (also PATH for the lookup), cwd, stdin from a buffer, a
 * script without #! run by /bin/sh like execvp does */
START_TEST(test_run_env_cwd_input)
{
	char *dir = test_tmpdir(), *script, *pathvar, *argv[4];
	char *env[] = {S("ORCHD_T1=one"), NULL, S("HOME=/elsewhere"), NULL};
	struct op_cmd_opts o = sh_opts(argv, "printf '%s|%s|%s|' \"$ORCHD_T1\" \"$HOME\" \"$PWD\"; "
					     "cat; orchd-test-noshebang");
	struct op_cmd_result r;
	FILE *f;

	ck_assert_int_ge(asprintf(&script, "%s/orchd-test-noshebang", dir), 0);
	f = fopen(script, "w");
	ck_assert_ptr_nonnull(f);
	fputs("echo '|no-shebang'\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(script, 0755), 0);
	ck_assert_int_ge(asprintf(&pathvar, "PATH=%s:%s", dir, getenv("PATH")), 0);
	env[1] = pathvar;
	o.env = env;
	o.cwd = dir;
	o.input = "from stdin";
	o.input_len = strlen("from stdin");
	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), 0);
	ck_assert(op_cmd_exited(&r, 0));
	{
		char *want;

		ck_assert_int_ge(asprintf(&want, "one|/elsewhere|%s|from stdin|no-shebang\n", dir),
				 0);
		ck_assert_str_eq(r.out.buf, want);
		free(want);
	}
	op_cmd_result_release(&r);
	free(pathvar);
	free(script);
	test_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_run_capture_cap)
{
	char *argv[4];
	struct op_cmd_opts o = sh_opts(argv, "head -c 300000 /dev/zero; printf 'a\\0b' >&2");
	struct op_cmd_result r;

	o.out.capture_max = 1000;
	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), 0);
	ck_assert(op_cmd_exited(&r, 0));
	ck_assert_uint_eq(r.out.len, 1000);
	ck_assert(r.out.truncated);
	ck_assert_int_eq(r.out.buf[1000], '\0');
	/* NUL bytes are kept; len is authoritative */
	ck_assert_uint_eq(r.err.len, 3);
	ck_assert(!r.err.truncated);
	ck_assert_mem_eq(r.err.buf, "a\0b", 3);
	op_cmd_result_release(&r);
}
END_TEST

/* Lines: logged per stream at the stream's level, empty lines kept, a
 * final line without '\n', over-long lines as chunks, bad UTF-8 cleaned;
 * capture and log together. */
START_TEST(test_run_lines)
{
	struct fixture fx;
	char *argv[4], *logs;
	struct op_cmd_opts o = sh_opts(argv, "printf 'one\\n\\ntwo\\nabcdefghij\\nlast'; "
					     "printf '\\377x\\n' >&2");
	struct op_cmd_result r;

	fx_init(&fx);
	o.out = (struct op_cmd_stream){OP_CMD_LOG | OP_CMD_CAPTURE, "info", 0};
	o.err = (struct op_cmd_stream){OP_CMD_LOG, "warning", 0};
	o.line_max = 4;
	ck_assert_int_eq(op_cmd_run(fx.ext, &o, &r), 0);
	ck_assert(op_cmd_exited(&r, 0));
	ck_assert_str_eq(r.out.buf, "one\n\ntwo\nabcdefghij\nlast");
	ck_assert_str_eq(r.err.buf, "");
	/* the two streams interleave as they come: look at each alone */
	logs = fx_logs_at(&fx, "info");
	ck_assert_str_eq(logs, "info:one\ninfo:\ninfo:two\ninfo:abcd\ninfo:efgh\ninfo:ij\n"
			       "info:last\n");
	free(logs);
	logs = fx_logs_at(&fx, "warning");
	ck_assert_str_eq(logs, "warning:\xef\xbf\xbdx\n");
	free(logs);
	op_cmd_result_release(&r);
	fx_release(&fx);
}
END_TEST

/* The line hook masks a value in place, raises a level, drops a line. */
static void mask_hook(void *arg, int stream, char *line, size_t len, const char **level)
{
	char *p = strstr(line, "s3cret");

	(*(int *)arg)++;
	if (p)
		memcpy(p, "******", 6);
	if (!strncmp(line, "Error: ", 7))
		*level = "error";
	if (!strcmp(line, "drop me"))
		*level = NULL;
	(void)stream;
	(void)len;
}

START_TEST(test_run_line_hook)
{
	struct fixture fx;
	char *argv[4], *logs;
	struct op_cmd_opts o =
		sh_opts(argv, "echo 'token=s3cret'; echo 'drop me'; echo 'Error: boom' >&2");
	struct op_cmd_result r;
	int calls = 0;

	fx_init(&fx);
	o.out = (struct op_cmd_stream){OP_CMD_LOG, "info", 0};
	o.err = (struct op_cmd_stream){OP_CMD_LOG, "warning", 0};
	o.line_fn = mask_hook;
	o.line_arg = &calls;
	ck_assert_int_eq(op_cmd_run(fx.ext, &o, &r), 0);
	ck_assert_int_eq(calls, 3);
	logs = fx_logs_at(&fx, "info");
	ck_assert_str_eq(logs, "info:token=******\n");
	free(logs);
	logs = fx_logs_at(&fx, "error");
	ck_assert_str_eq(logs, "error:Error: boom\n");
	free(logs);
	logs = fx_logs_at(&fx, "warning");
	ck_assert_str_eq(logs, "");
	free(logs);
	op_cmd_result_release(&r);
	fx_release(&fx);
}
END_TEST

/* A cancel from orchd arriving while `sleep` runs: SIGTERM to its group,
 * reaped before op_cmd_run returns. */
struct cancel_hook {
	struct fixture *fx;
	pid_t pid;
};

static void cancel_on_line(void *arg, int stream, char *line, size_t len, const char **level)
{
	struct cancel_hook *h = arg;

	(void)stream;
	(void)len;
	(void)level;
	h->pid = (pid_t)atoi(line);
	fx_cancel(h->fx);
}

START_TEST(test_run_cancel)
{
	struct fixture fx;
	char *argv[4], *logs;
	struct op_cmd_opts o = sh_opts(argv, "echo $$; exec sleep 30");
	struct op_cmd_result r;
	struct cancel_hook h = {&fx, 0};

	fx_init(&fx);
	o.line_fn = cancel_on_line;
	o.line_arg = &h;
	o.name = "the sleeper";
	ck_assert_int_eq(op_cmd_run(fx.ext, &o, &r), 0);
	ck_assert(r.cancelled);
	ck_assert(r.ran);
	ck_assert_int_eq(r.term_signal, SIGTERM);
	ck_assert_int_gt(h.pid, 1);
	/* reaped: the pid is gone */
	ck_assert_int_eq(kill(h.pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	logs = fx_logs(&fx);
	ck_assert_str_eq(logs, "warning:cancelled: sent SIGTERM to the sleeper\n");
	free(logs);
	op_cmd_result_release(&r);

	/* a run after the cancel does not start */
	o = sh_opts(argv, "exit 0");
	ck_assert_int_eq(op_cmd_run(fx.ext, &o, &r), -1);
	ck_assert_int_eq(errno, ECANCELED);
	ck_assert(r.cancelled);
	ck_assert(!r.ran);
	ck_assert_str_eq(r.error, "cancelled");
	op_cmd_result_release(&r);
	fx_release(&fx);
}
END_TEST

/* A program that ignores SIGTERM gets SIGKILL after the grace. */
START_TEST(test_run_cancel_kill)
{
	struct fixture fx;
	char *argv[4], *logs;
	struct op_cmd_opts o = sh_opts(argv, "trap '' TERM; echo $$; sleep 30");
	struct op_cmd_result r;
	struct cancel_hook h = {&fx, 0};

	fx_init(&fx);
	o.line_fn = cancel_on_line;
	o.line_arg = &h;
	o.kill_grace_ms = 200;
	ck_assert_int_eq(op_cmd_run(fx.ext, &o, &r), 0);
	ck_assert(r.cancelled);
	ck_assert_int_eq(r.term_signal, SIGKILL);
	logs = fx_logs(&fx);
	ck_assert_str_eq(logs, "warning:cancelled: sent SIGTERM to sh\n"
			       "warning:sh still running: sent SIGKILL\n");
	free(logs);
	op_cmd_result_release(&r);
	fx_release(&fx);
}
END_TEST

/* The program exits but a background process keeps its stdout open. */
START_TEST(test_run_grandchild_holds_pipe)
{
	char *argv[4];
	struct op_cmd_opts o = sh_opts(argv, "sleep 30 & echo $!; echo done");
	struct op_cmd_result r;
	pid_t bg;

	ck_assert_int_eq(op_cmd_run(NULL, &o, &r), 0);
	ck_assert(op_cmd_exited(&r, 0));
	bg = (pid_t)atoi(r.out.buf);
	ck_assert_int_gt(bg, 1);
	ck_assert_ptr_nonnull(strstr(r.out.buf, "\ndone\n"));
	/* the sleep still lives (it held the pipe); end it */
	ck_assert_int_eq(kill(bg, SIGKILL), 0);
	op_cmd_result_release(&r);
}
END_TEST

START_TEST(test_utf8_valid)
{
	ck_assert(op_utf8_valid("", 0));
	ck_assert(op_utf8_valid("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 17));
	ck_assert(!op_utf8_valid("a\0b", 3));		  /* NUL */
	ck_assert(!op_utf8_valid("\xff", 1));		  /* not a lead byte */
	ck_assert(!op_utf8_valid("\xc3", 1));		  /* cut short */
	ck_assert(!op_utf8_valid("\xc0\xaf", 2));	  /* overlong */
	ck_assert(!op_utf8_valid("\xed\xa0\x80", 3));	  /* surrogate */
	ck_assert(!op_utf8_valid("\xf4\x90\x80\x80", 4)); /* beyond U+10FFFF */
}
END_TEST

START_TEST(test_closest)
{
	static const char *const keys[] = {"command", "env", "cwd", "plan_command", NULL};

	ck_assert_str_eq(op_closest("comand", keys), "command");
	ck_assert_str_eq(op_closest("cdw", keys), "cwd");
	ck_assert_str_eq(op_closest("en", keys), "env");
	ck_assert_ptr_null(op_closest("something", keys));
	ck_assert_ptr_null(op_closest("comand", NULL));
	/* distance 2 is still a suggestion, 3 is not */
	ck_assert_str_eq(op_closest("commanxx", keys), "command");
	ck_assert_ptr_null(op_closest("commaxxx", keys));
}
END_TEST

START_TEST(test_errors)
{
	static const char *const keys[] = {"values", "age_key_file", NULL};
	struct op_errors e = {0};
	struct json_object *j;
	char *t;

	ck_assert_int_eq(op_errors_add(&e, "values.db", "must be a map (got %d)", 3), 0);
	ck_assert_int_eq(op_errors_unknown_key(&e, "", "valuse", keys), 0);
	ck_assert_int_eq(op_errors_unknown_key(&e, "values.x", "zzz", keys), 0);
	ck_assert_uint_eq(e.nr, 3);
	t = op_error_text(&e.v[0]);
	ck_assert_str_eq(t, "values.db: must be a map (got 3)");
	free(t);
	t = op_error_text(&e.v[1]);
	ck_assert_str_eq(t, "unknown key 'valuse' (did you mean 'values'?)");
	free(t);
	j = op_errors_json(&e);
	ck_assert_str_eq(
		json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN),
		"[{\"path\":\"values.db\",\"message\":\"must be a map (got 3)\"},"
		"{\"path\":\"\",\"message\":\"unknown key 'valuse' (did you mean "
		"'values'?)\"},{\"path\":\"values.x\",\"message\":\"unknown key 'zzz'\"}]");
	json_object_put(j);
	op_errors_release(&e);
	ck_assert_uint_eq(e.nr, 0);
	ck_assert_ptr_null(e.v);
}
END_TEST

START_TEST(test_fail_errors)
{
	struct fixture fx;
	struct op_errors e = {0};
	char *text, *logs;
	const char *res;

	fx_init(&fx);
	op_errors_add(&e, "command", "is required");
	op_errors_add(&e, "", "unknown key 'x'");
	ck_assert_int_eq(op_ext_fail_errors(fx.ext, &e, 0, "invalid configuration: "), 0);
	logs = fx_logs(&fx);
	ck_assert_str_eq(logs, "error:command: is required\nerror:unknown key 'x'\n");
	text = test_read_file(fx.outpath, NULL);
	res = strstr(text, "{\"type\":\"result\"");
	ck_assert_ptr_nonnull(res);
	ck_assert_ptr_nonnull(
		strstr(res, "\"summary\":\"invalid configuration: command: is required (and 1 "
			    "more)\""));
	ck_assert_ptr_nonnull(strstr(res, "\"errors\":[{\"path\":\"command\",\"message\":\"is "
					  "required\"},{\"path\":\"\",\"message\":\"unknown key "
					  "'x'\"}]"));
	free(text);
	free(logs);
	op_errors_release(&e);
	fx_release(&fx);
}
END_TEST

/* The direct encoder writes what json-c writes, byte for byte. */
START_TEST(test_encode_log_into)
{
	struct op_buf sb = OP_BUF_INIT;
	char text[160], *ref;
	size_t n = 0;

	for (int c = 1; c < 128; c++)
		text[n++] = (char)c;
	memcpy(text + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
	n += 9;
	text[n] = '\0';
	ck_assert_int_eq(op_encode_log_into(&sb, "warning", text, n), 0);
	ref = op_encode_log("warning", text);
	ck_assert_str_eq(sb.buf, ref);
	free(ref);
	/* invalid UTF-8 and NUL become U+FFFD; appends after what is there */
	ck_assert_int_eq(op_encode_log_into(&sb, "info", "a\0b\xff\xc3", 5), 0);
	ck_assert_ptr_nonnull(strstr(sb.buf, "\n{\"type\":\"log\",\"level\":\"info\",\"message\":"
					     "\"a\xef\xbf\xbd"
					     "b\xef\xbf\xbd\xef\xbf\xbd\"}\n"));
	op_buf_reset(&sb);
	ck_assert_int_eq(op_encode_log_into(&sb, "info", "", 0), 0);
	ck_assert_str_eq(sb.buf, "{\"type\":\"log\",\"level\":\"info\",\"message\":\"\"}\n");
	op_buf_release(&sb);
}
END_TEST

/* Longer than OP_MAX_LINE once escaped: E2BIG, the buffer unchanged. */
START_TEST(test_encode_log_into_too_long)
{
	struct op_buf sb = OP_BUF_INIT;
	size_t n = OP_MAX_LINE / 2;
	char *text = malloc(n);

	memset(text, '"', n);
	ck_assert_int_eq(op_encode_log_into(&sb, "info", "x", 1), 0);
	errno = 0;
	ck_assert_int_eq(op_encode_log_into(&sb, "info", text, n), -1);
	ck_assert_int_eq(errno, E2BIG);
	ck_assert_str_eq(sb.buf, "{\"type\":\"log\",\"level\":\"info\",\"message\":\"x\"}\n");
	op_buf_release(&sb);
	free(text);
}
END_TEST

/* Buffered lines wait for a flush, and go out before any other message. */
START_TEST(test_log_line_buffered)
{
	struct fixture fx;
	char *text, *logs;

	fx_init(&fx);
	ck_assert_int_eq(op_ext_log_line(fx.ext, "info", "one", 3), 0);
	ck_assert_int_eq(op_ext_log_line(fx.ext, "debug", "two", 3), 0);
	text = test_read_file(fx.outpath, NULL);
	ck_assert_ptr_null(strstr(text, "\"log\""));
	free(text);
	ck_assert_int_eq(op_ext_log(fx.ext, "warning", "three"), 0);
	ck_assert_int_eq(op_ext_log_line(fx.ext, "info", "four", 4), 0);
	ck_assert_int_eq(op_ext_flush(fx.ext), 0);
	ck_assert_int_eq(op_ext_flush(fx.ext), 0);
	logs = fx_logs(&fx);
	ck_assert_str_eq(logs, "info:one\ndebug:two\nwarning:three\ninfo:four\n");
	free(logs);
	ck_assert_int_eq(op_ext_log_line(fx.ext, "info", "five", 4), 0);
	ck_assert_int_eq(op_ext_result(fx.ext, true, 0, NULL, "done"), 0);
	errno = 0;
	ck_assert_int_eq(op_ext_log_line(fx.ext, "info", "late", 4), -1);
	ck_assert_int_eq(errno, EINVAL);
	logs = fx_logs(&fx);
	ck_assert_str_eq(logs, "info:one\ndebug:two\nwarning:three\ninfo:four\ninfo:five\n");
	free(logs);
	fx_release(&fx);
}
END_TEST

/*
 * The runner does not hold a line until the program ends: the program
 * waits (at most 10 s) until its first line is in the message file.
 */
START_TEST(test_run_lines_not_held)
{
	struct fixture fx;
	char *argv[4], *logs, *env[2];
	struct op_cmd_opts o = sh_opts(argv, "echo first; i=0; "
					     "until grep -q first \"$MSGS\"; do "
					     "i=$((i+1)); [ $i -gt 1000 ] && exit 3; sleep 0.01; "
					     "done; echo second");
	struct op_cmd_result r;

	fx_init(&fx);
	ck_assert_int_ge(asprintf(&env[0], "MSGS=%s", fx.outpath), 0);
	env[1] = NULL;
	o.env = env;
	o.out = (struct op_cmd_stream){OP_CMD_LOG, "info", 0};
	ck_assert_int_eq(op_cmd_run(fx.ext, &o, &r), 0);
	ck_assert(op_cmd_exited(&r, 0));
	logs = fx_logs(&fx);
	ck_assert_str_eq(logs, "info:first\ninfo:second\n");
	free(logs);
	free(env[0]);
	op_cmd_result_release(&r);
	fx_release(&fx);
}
END_TEST

Suite *oprun_suite(void)
{
	Suite *s = suite_create("oprun");
	TCase *tc = tcase_create("oprun");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_run_exit_status);
	tcase_add_test(tc, test_run_failure_text);
	tcase_add_test(tc, test_run_signal);
	tcase_add_test(tc, test_run_cannot_start);
	tcase_add_test(tc, test_run_env_cwd_input);
	tcase_add_test(tc, test_run_capture_cap);
	tcase_add_test(tc, test_run_lines);
	tcase_add_test(tc, test_run_lines_not_held);
	tcase_add_test(tc, test_encode_log_into);
	tcase_add_test(tc, test_encode_log_into_too_long);
	tcase_add_test(tc, test_log_line_buffered);
	tcase_add_test(tc, test_run_line_hook);
	tcase_add_test(tc, test_run_cancel);
	tcase_add_test(tc, test_run_cancel_kill);
	tcase_add_test(tc, test_run_grandchild_holds_pipe);
	tcase_add_test(tc, test_utf8_valid);
	tcase_add_test(tc, test_closest);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_run_pass_to_stderr);
	tcase_add_test(tc, test_fail_errors);
	suite_add_tcase(s, tc);
	return s;
}
