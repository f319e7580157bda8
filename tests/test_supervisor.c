/*
 * Tests of handlers/supervisor and handlers/extension (the event loop and
 * its steps), with real processes: the
 * helper extension tests/helpers/misbehave does one misbehaviour per mode.
 * Each test checks the exact reason text, that nothing hangs (the tcase
 * timeout is only a guard), that no zombie and no fd is left behind, and
 * that a good extension run alongside a bad one is unaffected.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handlers/supervisor.h"
#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

struct rec {
	int done;
	enum orchd_step_status status;
	char reason[640];
	int exit_status, retryable, changed, has_result, has_state;
	char summary[256];
	json_object *outputs, *secrets, *state, *describe, *errors;
	struct op_buf log;
	long nlines[4];
	long max_rss_kb;
	pid_t pid;
	char workdir[4096];
};

static char *helper;
static char *tmp;
static struct orchd_supervisor *sup;
static int fds_before;

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static void on_log(void *cb, void *ctx, const char *id, enum orchd_log_level level,
		   enum orchd_log_source src, const char *text)
{
	struct rec *r = ctx;
	(void)cb;
	(void)id;
	r->nlines[src]++;
	if (r->log.len < 65536)
		op_buf_addf(&r->log, "%s %s %.200s\n", orchd_log_level_name(level),
			    orchd_log_source_name(src), text);
}

static void on_done(void *cb, void *ctx, const char *id, const struct orchd_step_result *res)
{
	struct rec *r = ctx;
	(void)cb;
	(void)id;
	ck_assert_int_eq(r->done, 0);
	r->done = 1;
	r->status = res->status;
	snprintf(r->reason, sizeof(r->reason), "%s", res->reason);
	r->exit_status = res->exit_status;
	r->retryable = res->retryable;
	r->changed = res->changed;
	r->has_result = res->has_result;
	r->has_state = res->has_state;
	snprintf(r->summary, sizeof(r->summary), "%s", res->summary ? res->summary : "");
	r->outputs = json_object_get(res->outputs);
	r->secrets = json_object_get(res->secrets);
	r->state = json_object_get(res->state);
	r->describe = json_object_get(res->describe);
	r->errors = json_object_get(res->errors);
	r->max_rss_kb = res->max_rss_kb;
	r->pid = res->pid;
	snprintf(r->workdir, sizeof(r->workdir), "%s", res->workdir ? res->workdir : "");
}

static void rec_release(struct rec *r)
{
	json_object_put(r->outputs);
	json_object_put(r->secrets);
	json_object_put(r->state);
	json_object_put(r->describe);
	json_object_put(r->errors);
	op_buf_release(&r->log);
	memset(r, 0, sizeof(*r));
}

static void setup(void)
{
	struct orchd_supervisor_opts o = ORCHD_SUPERVISOR_OPTS_INIT;
	helper = test_build_path("tests/helpers/misbehave");
	tmp = test_tmpdir();
	fds_before = count_fds();
	o.log = on_log;
	o.done = on_done;
	sup = orchd_supervisor_new(&o);
	ck_assert_ptr_nonnull(sup);
}

static void teardown(void)
{
	int st;
	orchd_supervisor_free(sup);
	sup = NULL;
	/* no zombie, no leaked fd */
	ck_assert_int_eq(waitpid(-1, &st, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	ck_assert_int_eq(count_fds(), fds_before);
	test_rmtree(tmp);
	free(tmp);
	free(helper);
}

static void start_ex(struct rec *r, const char *id, const char *exe, const char *config,
		     const char *const *env, long long timeout_ms, long long grace_ms)
{
	struct orchd_step_spec s = ORCHD_STEP_SPEC_INIT;
	json_object *cfg = json_tokener_parse(config);
	char *base = xasprintf("%s/work", tmp);

	ck_assert_ptr_nonnull(cfg);
	op_buf_init(&r->log, 0);
	s.id = id;
	s.exe = exe;
	s.action = OP_ACTION_APPLY;
	s.instance = strchr(id, '.') ? strchr(id, '.') + 1 : id;
	s.stack = "dev-test";
	s.config = cfg;
	s.workdir_base = base;
	s.env = env;
	s.timeout_ms = timeout_ms;
	s.grace_ms = grace_ms;
	s.ctx = r;
	ck_assert_int_eq(orchd_supervisor_start(sup, &s), 0);
	json_object_put(cfg);
	free(base);
}

static void start(struct rec *r, const char *id, const char *config)
{
	start_ex(r, id, helper, config, NULL, 0, 300);
}

static void run_all(void)
{
	ck_assert_int_eq(orchd_supervisor_run(sup), 0);
	ck_assert_int_eq(orchd_supervisor_running(sup), 0);
}

static const char *out_str(const struct rec *r, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(r->outputs, key, &v))
		return NULL;
	return json_object_get_string(v);
}

static void assert_good(struct rec *g)
{
	ck_assert_int_eq(g->done, 1);
	ck_assert_msg(g->status == ORCHD_STEP_SUCCESS, "good step: %s", g->reason);
	ck_assert_str_eq(out_str(g, "url"), "http://example.test/");
}

/* Run one bad step (config) beside a good one; return in *bad. */
static void run_bad(struct rec *bad, const char *config, const char *const *env,
		    long long timeout_ms)
{
	struct rec good = {0};
	start_ex(bad, "misbehave.bad", helper, config, env, timeout_ms, 300);
	start(&good, "misbehave.good", "{\"mode\":\"ok\"}");
	run_all();
	ck_assert_int_eq(bad->done, 1);
	assert_good(&good);
	rec_release(&good);
}

static int dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;
	if (!d)
		return 1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n == 0;
}

START_TEST(test_ok)
{
	struct rec r = {0};
	json_object *v;
	char *base = xasprintf("%s/work", tmp);

	start(&r, "misbehave.ok", "{\"mode\":\"ok\"}");
	run_all();
	ck_assert_int_eq(r.status, ORCHD_STEP_SUCCESS);
	ck_assert_str_eq(r.reason, "");
	ck_assert_int_eq(r.exit_status, 0);
	ck_assert_int_eq(r.changed, 1);
	ck_assert_str_eq(r.summary, "done");
	ck_assert_str_eq(out_str(&r, "url"), "http://example.test/");
	ck_assert_str_eq(out_str(&r, "token"), "s3cr3t");
	ck_assert(json_object_object_get_ex(r.secrets, "token", NULL));
	ck_assert(!json_object_object_get_ex(r.secrets, "url", NULL));
	ck_assert_int_eq(r.has_state, 1);
	ck_assert(json_object_object_get_ex(r.state, "serial", &v));
	ck_assert_int_eq(json_object_get_int(v), 7);
	ck_assert_ptr_nonnull(strstr(op_buf_str(&r.log), "info protocol working\n"));
	ck_assert_ptr_nonnull(strstr(op_buf_str(&r.log), "info stderr hello from stderr\n"));
	ck_assert_ptr_nonnull(strstr(op_buf_str(&r.log), "info protocol 50% half way\n"));
	ck_assert(r.max_rss_kb > 0);
	/* the workdir was private and is gone */
	ck_assert(!strncmp(r.workdir, base, strlen(base)));
	ck_assert(dir_empty(base));
	free(base);
	rec_release(&r);
}
END_TEST

START_TEST(test_cwd_is_private_workdir)
{
	struct rec r = {0};
	struct orchd_step_spec s = ORCHD_STEP_SPEC_INIT;
	json_object *cfg = json_tokener_parse("{\"mode\":\"cwd\"}");
	char *base = xasprintf("%s/work", tmp);
	struct stat stt;

	op_buf_init(&r.log, 0);
	s.id = "misbehave.cwd";
	s.exe = helper;
	s.action = OP_ACTION_APPLY;
	s.instance = "cwd";
	s.stack = "dev-misbehave-cwd";
	s.config = cfg;
	s.workdir_base = base;
	s.attempt = 2;
	s.keep_workdir = 1;
	s.ctx = &r;
	ck_assert_int_eq(orchd_supervisor_start(sup, &s), 0);
	run_all();
	ck_assert_int_eq(r.status, ORCHD_STEP_SUCCESS);
	ck_assert_str_eq(out_str(&r, "cwd"), r.workdir);
	ck_assert_ptr_nonnull(strstr(r.workdir, "/work/misbehave.cwd.2."));
	ck_assert_int_eq(stat(r.workdir, &stt), 0);
	ck_assert_int_eq(stt.st_mode & 0777, 0700);
	json_object_put(cfg);
	free(base);
	rec_release(&r);
}
END_TEST

START_TEST(test_crash_by_signal)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"signal\",\"signal\":11}", NULL, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_FAILED);
	ck_assert_str_eq(r.reason, "killed by signal 11 (SIGSEGV)");
	ck_assert_int_eq(r.exit_status, 128 + 11);
	rec_release(&r);
}
END_TEST

START_TEST(test_exit_without_result)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"noresult\",\"code\":3}", NULL, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_FAILED);
	ck_assert_str_eq(r.reason, "exited without a result (exit status 3)");
	ck_assert_int_eq(r.exit_status, 3);
	rec_release(&r);
}
END_TEST

START_TEST(test_failure_result_retryable)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"failure\"}", NULL, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_FAILED);
	ck_assert_str_eq(r.reason, "extension reported failure: it broke");
	ck_assert_int_eq(r.retryable, 1);
	ck_assert_ptr_nonnull(strstr(op_buf_str(&r.log), "error protocol network down\n"));
	rec_release(&r);
}
END_TEST

START_TEST(test_nonzero_exit_after_result)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"exitafter\"}", NULL, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_FAILED);
	ck_assert_str_eq(r.reason, "exited with exit status 4 after a success result");
	rec_release(&r);
}
END_TEST

START_TEST(test_timeout_sigterm)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"hang\"}", NULL, 200);
	ck_assert_int_eq(r.status, ORCHD_STEP_TIMED_OUT);
	ck_assert_str_eq(r.reason, "timed out after 200ms");
	ck_assert_int_eq(r.exit_status, 128 + SIGTERM);
	rec_release(&r);
}
END_TEST

START_TEST(test_timeout_needs_sigkill)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"ignoreterm\"}", NULL, 1000);
	ck_assert_int_eq(r.status, ORCHD_STEP_TIMED_OUT);
	ck_assert_str_eq(r.reason, "timed out after 1s");
	ck_assert_int_eq(r.exit_status, 128 + SIGKILL);
	rec_release(&r);
}
END_TEST

/* A stamp of the "stamps" misbehaviour (CLOCK_MONOTONIC ms), or -1. */
static long long stamp_of(const char *text, const char *what)
{
	const char *p = strstr(text, what);

	return p ? atoll(p + strlen(what) + 1) : -1;
}

static long long mono_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Protocol §9 on a timeout, as the extension sees it: the cancel message
 * and SIGTERM arrive together when the timeout expires, SIGKILL one grace
 * later.  (Tolerances of a few hundred ms: this checks the sequence, not
 * the speed.)
 */
START_TEST(test_timeout_timeline)
{
	struct rec r = {0};
	char *file = xasprintf("%s/stamps", tmp);
	char *cfg = xasprintf("{\"mode\":\"stamps\",\"file\":\"%s\"}", file);
	long long t0 = mono_now_ms(), t_end, t_act, t_cancel, t_term;
	char *text;

	start_ex(&r, "misbehave.stamps", helper, cfg, NULL, 1000, 1000);
	run_all();
	t_end = mono_now_ms();
	text = test_read_file(file, NULL);
	ck_assert_ptr_nonnull(text);
	t_act = stamp_of(text, "action");
	t_cancel = stamp_of(text, "cancel");
	t_term = stamp_of(text, "sigterm");
	ck_assert_int_eq(r.status, ORCHD_STEP_TIMED_OUT);
	ck_assert_int_eq(r.exit_status, 128 + SIGKILL);
	ck_assert_int_ge(t_act, t0);
	ck_assert_int_ge(t_cancel, t0 + 1000);
	ck_assert_int_le(t_cancel, t0 + 1400);
	ck_assert_int_ge(t_term, t_cancel - 200); /* together */
	ck_assert_int_le(t_term, t_cancel + 200);
	ck_assert_int_ge(t_end, t_term + 950); /* SIGKILL one grace later */
	ck_assert_int_le(t_end, t_term + 1500);
	free(text);
	free(cfg);
	free(file);
	rec_release(&r);
}
END_TEST

START_TEST(test_timeout_sends_cancel)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"waitcancel\"}", NULL, 200);
	ck_assert_int_eq(r.status, ORCHD_STEP_TIMED_OUT);
	ck_assert_str_eq(r.reason, "timed out after 200ms");
	ck_assert_str_eq(r.summary, "cancelled: timeout");
	rec_release(&r);
}
END_TEST

START_TEST(test_flood_bounded_memory)
{
	struct rec r = {0};
	struct rusage before, after;

	getrusage(RUSAGE_SELF, &before);
	run_bad(&r, "{\"mode\":\"flood\",\"mb\":20}", NULL, 0);
	getrusage(RUSAGE_SELF, &after);
	ck_assert_msg(r.status == ORCHD_STEP_SUCCESS, "%s", r.reason);
	ck_assert_int_ge(r.nlines[ORCHD_LOGSRC_PROTOCOL], 20000);
	ck_assert_int_ge(r.nlines[ORCHD_LOGSRC_STDERR], 20000);
	/* 40 MB went through; the supervisor's memory must not follow
	 * (not measurable under ASan, whose quarantine keeps freed memory) */
#ifndef __SANITIZE_ADDRESS__
	ck_assert_msg(after.ru_maxrss - before.ru_maxrss < 16 * 1024, "maxrss grew by %ld KiB",
		      after.ru_maxrss - before.ru_maxrss);
#endif
	rec_release(&r);
}
END_TEST

START_TEST(test_line_too_long)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"longline\"}", NULL, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_PROTOCOL_ERROR);
	ck_assert_str_eq(r.reason, "protocol error: line exceeds 1048576 bytes");
	ck_assert_int_eq(r.exit_status, 128 + SIGTERM);
	rec_release(&r);
}
END_TEST

START_TEST(test_non_protocol_text)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"text\"}", NULL, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_SUCCESS);
	ck_assert_ptr_nonnull(strstr(op_buf_str(&r.log),
				     "warning stdout-text non-protocol output: this is not json\n"
				     "warning stdout-text non-protocol output: [1,2]\n"));
	ck_assert_int_eq(r.nlines[ORCHD_LOGSRC_STDOUT_TEXT], 2);
	rec_release(&r);
}
END_TEST

START_TEST(test_closed_stdout)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"closeout\"}", NULL, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_FAILED);
	ck_assert_str_eq(r.reason, "closed stdout without a result");
	rec_release(&r);
}
END_TEST

/* What the extension leaves behind (here a grandchild holding its stdout
 * and stderr) dies when it exits: the step ends, successfully, and the
 * grandchild is gone. */
START_TEST(test_grandchild_holds_pipes)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"grandchild\"}", NULL, 0);
	ck_assert_msg(r.status == ORCHD_STEP_SUCCESS, "%s", r.reason);
	for (int i = 0; i < 50 && test_process_with_arg("sleep 600"); i++)
		usleep(20000);
	ck_assert_msg(!test_process_with_arg("sleep 600"), "the grandchild outlived the step");
	rec_release(&r);
}
END_TEST

START_TEST(test_invalid_message)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"badmsg\"}", NULL, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_PROTOCOL_ERROR);
	ck_assert_str_eq(r.reason, "protocol error: output: missing required field 'key'");
	rec_release(&r);
}
END_TEST

START_TEST(test_wrong_protocol)
{
	static const char *const env[] = {"MISBEHAVE_HELLO=proto2", NULL};
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"ok\"}", env, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_INCOMPATIBLE);
	ck_assert_str_eq(r.reason, "incompatible extension: extension speaks protocol 2, orchd "
				   "speaks 1..1 (a version of the extension that speaks protocol "
				   "1 would fit)");
	ck_assert_int_eq(r.has_result, 0);
	rec_release(&r);
}
END_TEST

START_TEST(test_too_new)
{
	static const char *const env[] = {"MISBEHAVE_HELLO=newer", NULL};
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"ok\"}", env, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_INCOMPATIBLE);
	ck_assert_str_eq(r.reason,
			 "incompatible extension: extension misbehave 0.2.0 requires orchd >= "
			 "0.9.0 (this is 0.1.0) (orchd 0.9.0 or later, or an older version of the "
			 "extension, would fit)");
	rec_release(&r);
}
END_TEST

START_TEST(test_action_unsupported)
{
	static const char *const env[] = {"MISBEHAVE_HELLO=noaction", NULL};
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"ok\"}", env, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_UNSUPPORTED);
	ck_assert_str_eq(r.reason, "extension misbehave 0.1.0 does not support action 'apply'");
	rec_release(&r);
}
END_TEST

START_TEST(test_no_common_version)
{
	static const char *const env[] = {"MISBEHAVE_HELLO=nocommon", NULL};
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"ok\"}", env, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_INCOMPATIBLE);
	ck_assert_str_eq(r.reason, "incompatible extension: it refused the handshake: no common "
				   "protocol version (orchd 0.1.0 speaks protocol 1..1)");
	rec_release(&r);
}
END_TEST

START_TEST(test_only_stdio_fds)
{
	struct rec r = {0};
	/* an fd of ours without O_CLOEXEC must not reach the extension */
	int leak = open("/dev/null", O_RDONLY);
	json_object *fds;

	ck_assert_int_ge(leak, 3);
	run_bad(&r, "{\"mode\":\"fds\"}", NULL, 0);
	close(leak);
	ck_assert_int_eq(r.status, ORCHD_STEP_SUCCESS);
	ck_assert(json_object_object_get_ex(r.outputs, "fds", &fds));
	ck_assert_str_eq(json_object_to_json_string_ext(fds, JSON_C_TO_STRING_PLAIN),
			 "[\"0\",\"1\",\"2\"]");
	rec_release(&r);
}
END_TEST

START_TEST(test_environment_allowlist)
{
	static const char *const env[] = {"EXTRA_ONE=1", "PATH=/custom/bin", NULL};
	struct rec r = {0};
	json_object *e;
	const char *expect[] = {"EXTRA_ONE", "PATH", "ORCHD_PROTOCOL", "ORCHD_INSTANCE",
				"ORCHD_WORKDIR"};
	const char *optional[] = {"HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"};

	setenv("ORCHD_TEST_SECRET", "do-not-pass", 1);
	run_bad(&r, "{\"mode\":\"env\"}", env, 0);
	ck_assert_int_eq(r.status, ORCHD_STEP_SUCCESS);
	ck_assert(json_object_object_get_ex(r.outputs, "env", &e));
	json_object_object_foreach(e, k, v)
	{
		int ok = 0;
		(void)v;
		for (size_t i = 0; i < ARRAY_SIZE(expect); i++)
			ok |= !strcmp(k, expect[i]);
		for (size_t i = 0; i < ARRAY_SIZE(optional); i++)
			ok |= !strcmp(k, optional[i]) && getenv(k);
		ck_assert_msg(ok, "unexpected variable %s in the extension's environment", k);
	}
	for (size_t i = 0; i < ARRAY_SIZE(expect); i++)
		ck_assert_msg(json_object_object_get_ex(e, expect[i], NULL), "missing %s",
			      expect[i]);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(e, "PATH")), "/custom/bin");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(e, "ORCHD_PROTOCOL")), "1");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(e, "ORCHD_INSTANCE")),
			 "bad");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(e, "ORCHD_WORKDIR")),
			 r.workdir);
	rec_release(&r);
}
END_TEST

START_TEST(test_missing_executable)
{
	struct rec r = {0}, good = {0};
	start_ex(&r, "x.missing", "/nonexistent/orchd-ext-x", "{}", NULL, 0, 300);
	start(&good, "misbehave.good", "{\"mode\":\"ok\"}");
	run_all();
	ck_assert_int_eq(r.status, ORCHD_STEP_SPAWN_ERROR);
	ck_assert_str_eq(r.reason,
			 "cannot execute /nonexistent/orchd-ext-x: No such file or directory");
	assert_good(&good);
	rec_release(&r);
	rec_release(&good);
}
END_TEST

START_TEST(test_not_executable)
{
	struct rec r = {0};
	char *path = xasprintf("%s/orchd-ext-noexec", tmp);
	char *want = xasprintf("cannot execute %s: Permission denied", path);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	start_ex(&r, "x.noexec", path, "{}", NULL, 0, 300);
	run_all();
	ck_assert_int_eq(r.status, ORCHD_STEP_SPAWN_ERROR);
	ck_assert_str_eq(r.reason, want);
	free(path);
	free(want);
	rec_release(&r);
}
END_TEST

START_TEST(test_long_stderr_line_split)
{
	struct rec r = {0};
	run_bad(&r, "{\"mode\":\"longstderr\"}", NULL, 0);
	ck_assert_msg(r.status == ORCHD_STEP_SUCCESS, "%s", r.reason);
	ck_assert_int_eq(r.nlines[ORCHD_LOGSRC_STDERR], 2);
	rec_release(&r);
}
END_TEST

static void full_log(void *cb, void *ctx, const char *id, enum orchd_log_level level,
		     enum orchd_log_source src, const char *text)
{
	struct rec *r = ctx;

	(void)cb;
	(void)id;
	ck_assert_int_eq(level, ORCHD_LOG_INFO);
	if (src != ORCHD_LOGSRC_STDERR)
		return;
	r->nlines[src]++;
	op_buf_addstr(&r->log, text);
	op_buf_addch(&r->log, '\n');
}

static void full_lines(void *cb, void *ctx, const char *id, enum orchd_log_level level,
		       enum orchd_log_source src, char *text, size_t len)
{
	struct rec *r = ctx;

	(void)cb;
	(void)id;
	ck_assert_int_eq(level, ORCHD_LOG_INFO);
	ck_assert_int_eq(src, ORCHD_LOGSRC_STDERR);
	ck_assert(len > 0 && text[len - 1] == '\n');
	ck_assert(op_utf8_valid(text, len));
	r->nlines[src] += 1000000; /* counts the bulk calls */
	op_buf_add(&r->log, text, len);
}

/* What orchd must log of stderr bytes: lines cut at OP_MAX_LINE, then made
 * UTF-8 (a reference written plainly, not the code under test). */
static void stderr_reference(struct op_buf *want, const char *data, size_t len)
{
	size_t start = 0;

	while (start < len) {
		const char *nl = memchr(data + start, '\n', len - start);
		size_t l = nl ? (size_t)(nl - data) - start : len - start;

		while (l > OP_MAX_LINE) {
			ck_assert_int_eq(op_utf8_clean_into(want, data + start, OP_MAX_LINE), 0);
			op_buf_addch(want, '\n');
			start += OP_MAX_LINE;
			l -= OP_MAX_LINE;
		}
		ck_assert_int_eq(op_utf8_clean_into(want, data + start, l), 0);
		op_buf_addch(want, '\n');
		start += l + 1;
	}
}

/*
 * stderr in writes of random sizes (partial lines, long lines across
 * reads, invalid UTF-8, NUL bytes) gives exactly the lines the reference
 * says, whether the caller takes whole chunks (log_lines: the bulk path of
 * orchd run) or one line per call.
 */
START_TEST(test_stderr_chunks_same_lines)
{
	struct orchd_supervisor *saved = sup, *plain, *bulk;
	struct orchd_supervisor_opts o = ORCHD_SUPERVISOR_OPTS_INIT;
	char *copy = xasprintf("%s/stderr.copy", tmp), *cfg;
	unsigned seed = (unsigned)time(NULL);

	o.log = full_log;
	o.done = on_done;
	plain = orchd_supervisor_new(&o);
	o.log_lines = full_lines;
	bulk = orchd_supervisor_new(&o);
	cfg = xasprintf("{\"mode\":\"stderrmix\",\"seed\":%u,\"copy\":\"%s\"}", seed, copy);
	for (int round = 0; round < 2; round++) {
		struct rec r = {0};
		struct op_buf want = OP_BUF_INIT;
		size_t len;
		char *data;

		sup = round ? bulk : plain;
		start_ex(&r, "misbehave.mix", helper, cfg, NULL, 0, 300);
		run_all();
		ck_assert_msg(r.status == ORCHD_STEP_SUCCESS, "%s", r.reason);
		data = test_read_file(copy, &len);
		ck_assert_ptr_nonnull(data);
		stderr_reference(&want, data, len);
		ck_assert_int_eq(op_buf_failed(&want), 0);
		ck_assert_msg(r.log.len == want.len && !memcmp(r.log.buf, want.buf, want.len),
			      "seed %u, round %d: %zu bytes logged, %zu expected", seed, round,
			      r.log.len, want.len);
		/* the bulk path did take chunks, and lines too (the long ones) */
		if (round)
			ck_assert(r.nlines[ORCHD_LOGSRC_STDERR] > 1000000 &&
				  r.nlines[ORCHD_LOGSRC_STDERR] % 1000000 > 0);
		else
			ck_assert_int_lt(r.nlines[ORCHD_LOGSRC_STDERR], 1000000);
		free(data);
		op_buf_release(&want);
		rec_release(&r);
	}
	sup = saved;
	orchd_supervisor_free(plain);
	orchd_supervisor_free(bulk);
	free(cfg);
	free(copy);
}
END_TEST

/* --- sessions (PROTOCOL.md §7.6) ------------------------------------------- */

/* A sh extension "sess" for the session tests: hello (with features from
 * features), then for each action a log line "pid PID ACTION", a result,
 * and after validate's result what `after` says. */
static char *session_ext(const char *features, const char *after)
{
	char *path = xasprintf("%s/orchd-ext-sess", tmp);
	char *text = xasprintf(
		"#!/bin/sh\n"
		"read -r hello || exit 1\n"
		"echo '{\"type\":\"hello\",\"protocol\":1,\"name\":\"sess\",\"version\":\"1.0\","
		"\"actions\":[\"validate\",\"apply\"],\"features\":[%s]}'\n"
		"while read -r action; do\n"
		"  case $action in *'\"validate\"'*) a=validate ;; *) a=apply ;; esac\n"
		"  echo "
		"\"{\\\"type\\\":\\\"log\\\",\\\"level\\\":\\\"info\\\",\\\"message\\\":\\\"pid $$ "
		"$a\\\"}\"\n"
		"  echo '{\"type\":\"result\",\"status\":\"success\"}'\n"
		"  if [ $a = validate ]; then %s; fi\n"
		"done\n",
		features, after);

	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, 0755), 0);
	free(text);
	return path;
}

static void start_sess(struct rec *r, const char *exe, enum op_action action, int park, int adopt)
{
	struct orchd_step_spec s = ORCHD_STEP_SPEC_INIT;
	char *base = xasprintf("%s/work", tmp);

	op_buf_init(&r->log, 0);
	s.id = "sess.a";
	s.exe = exe;
	s.action = action;
	s.instance = "a";
	s.stack = "dev-sess-a";
	s.workdir_base = base;
	s.grace_ms = 300;
	s.ctx = r;
	s.park = park;
	s.adopt = adopt;
	ck_assert_int_eq(orchd_supervisor_start(sup, &s), 0);
	free(base);
}

/* the pid the extension logged for its action */
static long logged_pid(const struct rec *r)
{
	const char *p = strstr(op_buf_str(&r->log), "pid ");

	return p ? strtol(p + 4, NULL, 10) : -1;
}

/* validate parks, apply runs in the same process and workdir; nothing
 * is left when the session ends (no zombie, no fd: teardown checks) */
START_TEST(test_session_validate_then_apply)
{
	char *exe = session_ext("\"session\"", ":");
	struct rec v = {0}, a = {0};

	start_sess(&v, exe, OP_ACTION_VALIDATE, 1, 0);
	run_all();
	ck_assert_msg(v.status == ORCHD_STEP_SUCCESS, "%s", v.reason);
	ck_assert_int_eq(v.exit_status, 0);
	ck_assert_int_gt(logged_pid(&v), 1);
	/* the session waits: not a running step */
	ck_assert_int_eq(orchd_supervisor_running(sup), 0);
	ck_assert_int_eq(kill((pid_t)logged_pid(&v), 0), 0);
	start_sess(&a, exe, OP_ACTION_APPLY, 0, 1);
	run_all();
	ck_assert_msg(a.status == ORCHD_STEP_SUCCESS, "%s", a.reason);
	ck_assert_int_eq(logged_pid(&a), logged_pid(&v));
	ck_assert_str_eq(a.workdir, v.workdir);
	ck_assert_msg(strstr(op_buf_str(&a.log), "apply"), "%s", op_buf_str(&a.log));
	ck_assert_int_eq(a.exit_status, 0);
	rec_release(&v);
	rec_release(&a);
	free(exe);
}
END_TEST

/* without the feature, or when the session broke while it waited (it
 * exited, or wrote on stdout), the next action gets a process of its own */
START_TEST(test_session_fallbacks)
{
	static const struct {
		const char *features, *after;
		int parks;
	} cases[] = {
		{"", ":", 0},					/* no feature: v1 */
		{"\"session\"", "exit 0", 1},			/* exits instead of waiting */
		{"\"session\"", "sleep 0.2; echo '{}'", 1},	/* writes while it waits */
		{"\"session\"", "echo '{\"type\":\"log\"'", 1}, /* right after its result */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *exe = session_ext(cases[i].features, cases[i].after);
		struct rec v = {0}, a = {0};

		start_sess(&v, exe, OP_ACTION_VALIDATE, 1, 0);
		run_all();
		ck_assert_msg(v.status == ORCHD_STEP_SUCCESS, "case %zu: %s", i, v.reason);
		usleep(400000); /* whatever it does after its result, it did */
		start_sess(&a, exe, OP_ACTION_APPLY, 0, 1);
		run_all();
		ck_assert_msg(a.status == ORCHD_STEP_SUCCESS, "case %zu: %s", i, a.reason);
		ck_assert_msg(logged_pid(&a) != logged_pid(&v), "case %zu: same process", i);
		ck_assert_int_gt(logged_pid(&a), 1);
		rec_release(&v);
		rec_release(&a);
		free(exe);
	}
}
END_TEST

/* at most max_sessions wait; the others end at their result; sessions
 * nobody adopts end with close_sessions() */
START_TEST(test_session_bound_and_close)
{
	struct orchd_supervisor *saved = sup;
	struct orchd_supervisor_opts o = ORCHD_SUPERVISOR_OPTS_INIT;
	char *exe = session_ext("\"session\"", ":");
	struct rec v1 = {0}, v2 = {0};

	o.log = on_log;
	o.done = on_done;
	o.max_sessions = 1;
	sup = orchd_supervisor_new(&o);
	start_sess(&v1, exe, OP_ACTION_VALIDATE, 1, 0);
	start_sess(&v2, exe, OP_ACTION_VALIDATE, 1, 0);
	run_all();
	ck_assert_msg(v1.status == ORCHD_STEP_SUCCESS, "%s", v1.reason);
	ck_assert_msg(v2.status == ORCHD_STEP_SUCCESS, "%s", v2.reason);
	/* one waits, the other exited */
	ck_assert_int_eq(
		(kill((pid_t)logged_pid(&v1), 0) == 0) + (kill((pid_t)logged_pid(&v2), 0) == 0), 1);
	/* another id: nothing ends; its own id: it ends */
	orchd_supervisor_end_session(sup, "sess.b");
	ck_assert_int_eq(orchd_supervisor_running(sup), 0);
	orchd_supervisor_end_session(sup, "sess.a");
	ck_assert_int_eq(orchd_supervisor_running(sup), 1);
	orchd_supervisor_close_sessions(sup);
	ck_assert_int_eq(orchd_supervisor_running(sup), 1);
	run_all();
	ck_assert_int_ne(
		kill((pid_t)logged_pid(&v1), 0) == 0 || kill((pid_t)logged_pid(&v2), 0) == 0, 1);
	orchd_supervisor_free(sup);
	rec_release(&v1);
	rec_release(&v2);

	/* the memory bound: 1 KiB holds no session */
	o.max_sessions = 0;
	o.max_sessions_kb = 1;
	sup = orchd_supervisor_new(&o);
	start_sess(&v1, exe, OP_ACTION_VALIDATE, 1, 0);
	run_all();
	ck_assert_msg(v1.status == ORCHD_STEP_SUCCESS, "%s", v1.reason);
	ck_assert_int_ne(kill((pid_t)logged_pid(&v1), 0), 0);
	orchd_supervisor_free(sup);
	sup = saved;
	rec_release(&v1);
	free(exe);
}
END_TEST

START_TEST(test_describe_and_validate_payloads)
{
	struct rec d = {0}, v = {0};
	struct orchd_step_spec s = ORCHD_STEP_SPEC_INIT;
	json_object *cfg = json_tokener_parse("{\"mode\":\"describe\"}");

	op_buf_init(&d.log, 0);
	s.id = "misbehave";
	s.exe = helper;
	s.action = OP_ACTION_DESCRIBE; /* no instance, stack needed */
	s.config = cfg;
	s.ctx = &d;
	ck_assert_int_eq(orchd_supervisor_start(sup, &s), 0);
	run_bad(&v, "{\"mode\":\"invalid\"}", NULL, 0);
	ck_assert_msg(d.status == ORCHD_STEP_SUCCESS, "%s", d.reason);
	ck_assert_str_eq(json_object_to_json_string_ext(d.describe, JSON_C_TO_STRING_PLAIN),
			 "{\"type\":\"misbehave\",\"version\":\"0.1.0\"}");
	ck_assert_int_eq(v.status, ORCHD_STEP_FAILED);
	ck_assert_str_eq(v.reason, "extension reported failure");
	ck_assert_str_eq(json_object_to_json_string_ext(v.errors, JSON_C_TO_STRING_PLAIN),
			 "[{\"path\":\"command\",\"message\":\"is required\"}]");
	json_object_put(cfg);
	rec_release(&d);
	rec_release(&v);
}
END_TEST

START_TEST(test_relative_executable)
{
	/* relative to orchd's cwd, not to the extension's workdir */
	struct rec r = {0};
	char *dir = test_build_path("tests");
	ck_assert_int_eq(chdir(dir), 0);
	start_ex(&r, "misbehave.rel", "helpers/misbehave", "{\"mode\":\"ok\"}", NULL, 0, 300);
	run_all();
	ck_assert_msg(r.status == ORCHD_STEP_SUCCESS, "%s", r.reason);
	free(dir);
	rec_release(&r);
}
END_TEST

START_TEST(test_cancel_all)
{
	struct rec a = {0}, b = {0};
	start(&a, "misbehave.hang", "{\"mode\":\"hang\"}");
	start(&b, "misbehave.wait", "{\"mode\":\"waitcancel\"}");
	/* let both get past the handshake, then cancel */
	for (int i = 0; i < 20; i++)
		orchd_supervisor_wait(sup, now_ms() + 10);
	orchd_supervisor_cancel_all(sup, "fail-fast");
	run_all();
	ck_assert_int_eq(a.status, ORCHD_STEP_CANCELLED);
	ck_assert_str_eq(a.reason, "cancelled (fail-fast)");
	ck_assert_int_eq(b.status, ORCHD_STEP_CANCELLED);
	ck_assert_str_eq(b.reason, "cancelled (fail-fast)");
	rec_release(&a);
	rec_release(&b);
}
END_TEST

#define MANY 1100

START_TEST(test_many_at_once)
{
	struct rec *r = xcalloc(MANY, sizeof(*r));
	char id[64];

	for (int i = 0; i < MANY; i++) {
		snprintf(id, sizeof(id), "misbehave.m%d", i);
		/* 1 100 processes exiting at once on a loaded 2-core machine:
		 * the production grace, not the tests' short one. */
		start_ex(&r[i], id, helper, "{\"mode\":\"ok\"}", NULL, 0, ORCHD_DEFAULT_GRACE_MS);
	}
	ck_assert_int_eq(orchd_supervisor_running(sup), MANY);
	run_all();
	for (int i = 0; i < MANY; i++) {
		ck_assert_msg(r[i].status == ORCHD_STEP_SUCCESS, "%d: %s", i, r[i].reason);
		rec_release(&r[i]);
	}
	free(r);
}
END_TEST

/*
 * Signals: orchd's loop runs in a forked child of the test; the test sends
 * it SIGTERM (or SIGINT twice) once its steps are started, and reads the
 * outcome from its exit code: 143/130 when every step was reported
 * cancelled with the right reason.
 */
/* exit0: the exit status the first step must end with (-1: any). */
static int sig_child(int sig, const char *mode, long long grace, int exit0, int fd)
{
	struct rec r[2] = {{0}};
	char want[64];
	int ok, told = 0;

	start_ex(&r[0], "misbehave.s1", helper, mode, NULL, 0, grace);
	start_ex(&r[1], "misbehave.s2", helper, "{\"mode\":\"waitcancel\"}", NULL, 0, grace);
	for (int i = 0; i < 20; i++)
		orchd_supervisor_wait(sup, now_ms() + 10);
	if (write(fd, "r", 1) != 1)
		return 1;
	while (orchd_supervisor_running(sup)) {
		if (orchd_supervisor_wait(sup, -1) < 0)
			return 1;
		if (orchd_supervisor_interrupted(sup) && !told) {
			told = 1;
			if (write(fd, "i", 1) != 1)
				return 1;
		}
	}
	close(fd);
	snprintf(want, sizeof(want), "interrupted by %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	ok = orchd_supervisor_interrupted(sup) == sig;
	for (int i = 0; i < 2; i++) {
		if (r[i].status != ORCHD_STEP_CANCELLED || strcmp(r[i].reason, want))
			fprintf(stderr, "signal test: step %d: %s: %s\n", i,
				orchd_step_status_name(r[i].status), r[i].reason);
		ok = ok && r[i].status == ORCHD_STEP_CANCELLED && !strcmp(r[i].reason, want);
	}
	if (exit0 >= 0 && r[0].exit_status != exit0) {
		fprintf(stderr, "signal test: step 0 exited %d, not %d\n", r[0].exit_status, exit0);
		ok = 0;
	}
	orchd_supervisor_free(sup);
	sup = NULL;
	return ok ? 128 + sig : 1;
}

static void run_signal_test(int sig, int twice, const char *mode, long long grace, int exit0)
{
	int p[2], st;
	char c;
	pid_t pid;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		_exit(sig_child(sig, mode, grace, exit0, p[1]));
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, 'r');
	kill(pid, sig);
	/* the second signal only once the first was seen: two pending
	 * signals would merge into one */
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, 'i');
	if (twice)
		kill(pid, sig);
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 128 + sig);
}

/* orchd's SIGTERM reaches the extension itself: its handler's exit status
 * (42) proves it, where the grace's SIGKILL (20 s away) would give 137. */
START_TEST(test_sigterm_forwarded)
{
	run_signal_test(SIGTERM, 0, "{\"mode\":\"termexit\"}", 20000, 42);
}
END_TEST

START_TEST(test_second_sigint_kills)
{
	/* ignores SIGINT/SIGTERM and the grace is long: only the second
	 * SIGINT's immediate SIGKILL ends it within the tcase timeout */
	run_signal_test(SIGINT, 1, "{\"mode\":\"ignoreterm\"}", 20000, 128 + SIGKILL);
}
END_TEST

/* A signal that arrives while nothing runs is seen without a wait, and
 * no new step starts afterwards. */
START_TEST(test_interrupted_between_phases)
{
	struct orchd_step_spec sp = ORCHD_STEP_SPEC_INIT;

	ck_assert_int_eq(orchd_supervisor_interrupted(sup), 0);
	raise(SIGTERM); /* blocked: stays pending for the signalfd */
	ck_assert_int_eq(orchd_supervisor_interrupted(sup), SIGTERM);
	sp.id = "misbehave.late";
	sp.exe = helper;
	sp.action = OP_ACTION_DESCRIBE;
	ck_assert_int_eq(orchd_supervisor_start(sup, &sp), -1);
	ck_assert_int_eq(orchd_supervisor_running(sup), 0);
}
END_TEST

START_TEST(test_exec_format_error)
{
	struct rec r = {0};
	char *path = xasprintf("%s/orchd-ext-garbage", tmp);
	char *want = xasprintf("cannot execute %s: Exec format error", path);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "\x01\x02 not a program\n", 18), 18);
	close(fd);
	start_ex(&r, "x.garbage", path, "{}", NULL, 0, 300);
	run_all();
	ck_assert_int_eq(r.status, ORCHD_STEP_SPAWN_ERROR);
	ck_assert_str_eq(r.reason, want);
	ck_assert_int_eq(r.exit_status, 127);
	free(path);
	free(want);
	rec_release(&r);
}
END_TEST

Suite *supervisor_suite(void)
{
	Suite *s = suite_create("supervisor");
	TCase *tc = tcase_create("supervisor");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ok);
	tcase_add_test(tc, test_cwd_is_private_workdir);
	tcase_add_test(tc, test_crash_by_signal);
	tcase_add_test(tc, test_exit_without_result);
	tcase_add_test(tc, test_failure_result_retryable);
	tcase_add_test(tc, test_nonzero_exit_after_result);
	tcase_add_test(tc, test_timeout_sigterm);
	tcase_add_test(tc, test_timeout_needs_sigkill);
	tcase_add_test(tc, test_timeout_sends_cancel);
	tcase_add_test(tc, test_timeout_timeline);
	tcase_add_test(tc, test_flood_bounded_memory);
	tcase_add_test(tc, test_line_too_long);
	tcase_add_test(tc, test_non_protocol_text);
	tcase_add_test(tc, test_closed_stdout);
	tcase_add_test(tc, test_grandchild_holds_pipes);
	tcase_add_test(tc, test_invalid_message);
	tcase_add_test(tc, test_wrong_protocol);
	tcase_add_test(tc, test_too_new);
	tcase_add_test(tc, test_action_unsupported);
	tcase_add_test(tc, test_no_common_version);
	tcase_add_test(tc, test_only_stdio_fds);
	tcase_add_test(tc, test_environment_allowlist);
	tcase_add_test(tc, test_missing_executable);
	tcase_add_test(tc, test_not_executable);
	tcase_add_test(tc, test_exec_format_error);
	tcase_add_test(tc, test_long_stderr_line_split);
	tcase_add_test(tc, test_stderr_chunks_same_lines);
	tcase_add_test(tc, test_session_validate_then_apply);
	tcase_add_test(tc, test_session_fallbacks);
	tcase_add_test(tc, test_session_bound_and_close);
	tcase_add_test(tc, test_describe_and_validate_payloads);
	tcase_add_test(tc, test_relative_executable);
	tcase_add_test(tc, test_cancel_all);
	tcase_add_test(tc, test_many_at_once);
	suite_add_tcase(s, tc);

	/* Normally well under a second each; the second SIGINT test would take
	 * 20 s (its grace) if the immediate SIGKILL were missing, so the
	 * timeout here is what makes such a regression fail. */
	tc = tcase_create("signals");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_sigterm_forwarded);
	tcase_add_test(tc, test_second_sigint_kills);
	tcase_add_test(tc, test_interrupted_between_phases);
	suite_add_tcase(s, tc);
	return s;
}
