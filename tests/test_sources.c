/*
 * Tests of core/sources and of the request/response integration: real
 * processes only -- a git repository made with the git CLI in a temp dir,
 * the loopback HTTP server tests/helpers/httpd.py, `orchd` itself running
 * pipelines whose exec instances declare sources, and the supervisor
 * running tests/helpers/misbehave in mode "fetch" (it sends a request and
 * reports the response it got).  XDG_CACHE_HOME points into the temp dir.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/sources.h"
#include "handlers/supervisor.h"
#include "hash.h"
#include "testutil.h"
#include "util.h"

static char *tmp;
static char *repo; /* a git repository: README "hello from git" on main */
static struct test_httpd srv = TEST_HTTPD_INIT;

/* --- fixtures ------------------------------------------------------------ */

static int sh(const char *script, char **err)
{
	char *argv[] = {(char *)(uintptr_t) "/bin/sh", (char *)(uintptr_t) "-c",
			(char *)(uintptr_t)script, NULL};

	return test_run(argv, NULL, err);
}

static char *url(const char *path)
{
	return xasprintf("http://127.0.0.1:%d%s", srv.port, path);
}

/* The server's /bytes/N content and its digest. */
static char *pattern(size_t n)
{
	static const char pat[] = "orchd-test-data\n";
	char *p = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++)
		p[i] = pat[i % (sizeof(pat) - 1)];
	p[n] = '\0';
	return p;
}

static void pattern_sha(size_t n, char hex[ORCHD_SHA256_HEXSZ])
{
	char *p = pattern(n);

	orchd_sha256_hex(p, n, hex);
	free(p);
}

static void setup(void)
{
	char *cache, *script, *err = NULL;
	int rc;

	tmp = test_tmpdir();
	ck_assert_ptr_nonnull(tmp);
	cache = xasprintf("%s/cache", tmp);
	setenv("XDG_CACHE_HOME", cache, 1);
	free(cache);
	repo = xasprintf("%s/repo", tmp);
	script = xasprintf("set -e; git init -q -b main '%s'; cd '%s';"
			   "echo 'hello from git' > README;"
			   "git add README;"
			   "git -c user.name=t -c user.email=t@example.invalid commit -qm init",
			   repo, repo);
	rc = sh(script, &err);
	ck_assert_msg(rc == 0, "git: %s", err);
	free(err);
	free(script);
	ck_assert_int_eq(test_httpd_start(&srv, NULL, NULL), 0);
}

static void teardown(void)
{
	test_httpd_stop(&srv);
	test_rmtree(tmp);
	free(tmp);
	free(repo);
	tmp = repo = NULL;
}

static char *write_file(const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", tmp, name);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static int orchd(const char *cmd, const char *file, char **out, char **err)
{
	char *exe = test_build_path("bin/orchd");
	char *argv[] = {exe, (char *)(uintptr_t)cmd, (char *)(uintptr_t)file, NULL};
	int rc = test_run(argv, out, err);

	free(exe);
	return rc;
}

/* --- pipeline-declared sources ------------------------------------------- */

START_TEST(test_pipeline_fetches_git_and_http)
{
	char sha[ORCHD_SHA256_HEXSZ], *u = url("/bytes/40"), *text, *f, *out = NULL, *err = NULL;
	char *want = pattern(40), *line;
	int rc;

	pattern_sha(40, sha);
	text = xasprintf("p:\n"
			 "  exec:\n"
			 "    - name: show\n"
			 "      sources:\n"
			 "        - {git: 'file://%s', ref: main, path: src/app}\n"
			 "        - {url: '%s', sha256: %s, dest: data/blob}\n"
			 "      command: [sh, -c, 'cat src/app/README; cat data/blob; "
			 "test -d src/app/.git && echo has-git']\n",
			 repo, u, sha);
	f = write_file("p.yaml", text);
	rc = orchd("run", f, &out, &err);
	ck_assert_msg(rc == 0, "rc=%d\n%s", rc, err);
	ck_assert_msg(strstr(err, "fetching 2 sources"), "%s", err);
	line = xasprintf("source sources[1]: url %s -> data/blob (sha256 %.12s)", u, sha);
	ck_assert_msg(strstr(err, line), "want: %s\ngot:\n%s", line, err);
	free(line);
	line = xasprintf("source sources[0]: git file://%s@main -> src/app (commit ", repo);
	ck_assert_msg(strstr(err, line), "want: %s\ngot:\n%s", line, err);
	free(line);
	ck_assert_msg(strstr(err, "hello from git"), "%s", err);
	ck_assert_msg(strstr(err, "orchd-test-data"), "%s", err);
	ck_assert_msg(strstr(err, "has-git"), "%s", err);
	free(out);
	free(err);
	free(f);
	free(text);
	free(u);
	free(want);
}
END_TEST

START_TEST(test_pipeline_wrong_sha256)
{
	static const char bad[] =
		"0000000000000000000000000000000000000000000000000000000000000000";
	char sha[ORCHD_SHA256_HEXSZ], *u = url("/bytes/40"), *text, *f, *out = NULL, *err = NULL;
	char *marker = xasprintf("%s/ran", tmp), *reason;
	int rc;

	pattern_sha(40, sha);
	text = xasprintf("p:\n"
			 "  exec:\n"
			 "    - name: show\n"
			 "      sources:\n"
			 "        - {git: '%s', ref: main}\n"
			 "        - {url: '%s', sha256: '%s'}\n"
			 "      command: [touch, '%s']\n",
			 repo, u, bad, marker);
	f = write_file("p.yaml", text);
	rc = orchd("run", f, &out, &err);
	ck_assert_msg(rc != 0, "rc=%d\n%s", rc, err);
	reason = xasprintf(
		"source sources[1] (url %s): sha256 mismatch for '%s': expected %s, got %s", u, u,
		bad, sha);
	ck_assert_msg(strstr(err, reason), "want: %s\ngot:\n%s", reason, err);
	ck_assert_msg(access(marker, F_OK) < 0, "the command ran");
	free(reason);
	free(out);
	free(err);
	free(f);
	free(text);
	free(u);
	free(marker);
}
END_TEST

START_TEST(test_pipeline_invalid_sources_at_load)
{
	char *f =
		write_file("p.yaml", "p:\n"
				     "  exec:\n"
				     "    - name: a\n"
				     "      command: [true]\n"
				     "      sources:\n"
				     "        - {git: 'https://example.invalid/r.git', ref: main}\n"
				     "        - url: http://example.invalid/y\n"
				     "    - name: b\n"
				     "      command: [true]\n"
				     "      sources: {git: x}\n"
				     "    - name: c\n"
				     "      command: [true]\n"
				     "      sources:\n"
				     "        - {git: '${{ exec.a.outputs.url }}', ref: main}\n"
				     "        - {git: 'https://h/$${{x}}.git', ref: main}\n");
	char *out = NULL, *err = NULL, *want;
	int rc = orchd("validate", f, &out, &err);

	ck_assert_int_eq(rc, 2);
	want = xasprintf("%s:7:11: error: p.exec[0].sources[1]: invalid source: 'sha256' is "
			 "required with 'url' (64 hex digits)\n"
			 "%s:10:16: error: p.exec[1].sources: expected a sequence, got a mapping\n"
			 "%s:14:11: error: p.exec[2].sources[0]: references (${{ }}) are not "
			 "supported in sources\n",
			 f, f, f);
	ck_assert_str_eq(err, want);
	free(want);
	free(out);
	free(err);
	free(f);
}
END_TEST

/* --- the supervisor: prepare hook and requests ---------------------------- */

struct rec {
	int done;
	enum orchd_step_status status;
	char reason[640];
	json_object *outputs;
};

static void on_done(void *cb, void *ctx, const char *id, const struct orchd_step_result *res)
{
	struct rec *r = ctx;

	(void)cb;
	(void)id;
	r->done = 1;
	r->status = res->status;
	snprintf(r->reason, sizeof(r->reason), "%s", res->reason);
	r->outputs = json_object_get(res->outputs);
}

/* Run misbehave with config (JSON text); sources (JSON text) may be NULL;
 * timeout_ms 0: none. */
static void run_step_timeout(const char *config, const char *sources, long long timeout_ms,
			     struct rec *r)
{
	struct orchd_supervisor_opts o = ORCHD_SUPERVISOR_OPTS_INIT;
	struct orchd_step_spec s = ORCHD_STEP_SPEC_INIT;
	struct orchd_supervisor *sup;
	char *helper = test_build_path("tests/helpers/misbehave");
	json_object *cfg = json_tokener_parse(config);
	json_object *src = sources ? json_tokener_parse(sources) : NULL;

	ck_assert_ptr_nonnull(cfg);
	memset(r, 0, sizeof(*r));
	o.done = on_done;
	sup = orchd_supervisor_new(&o);
	ck_assert_ptr_nonnull(sup);
	s.id = "misbehave.t";
	s.exe = helper;
	s.action = OP_ACTION_APPLY;
	s.instance = "t";
	s.stack = "dev-misbehave-t";
	s.config = cfg;
	s.workdir_base = tmp;
	s.grace_ms = 2000;
	s.ctx = r;
	s.sources = src;
	s.timeout_ms = timeout_ms;
	ck_assert_int_eq(orchd_supervisor_start(sup, &s), 0);
	ck_assert_int_eq(orchd_supervisor_run(sup), 0);
	ck_assert(r->done);
	orchd_supervisor_free(sup);
	json_object_put(cfg);
	json_object_put(src);
	free(helper);
}

static void run_step(const char *config, const char *sources, struct rec *r)
{
	run_step_timeout(config, sources, 0, r);
}

static json_object *output(struct rec *r, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(r->outputs, key, &v);
	return v;
}

static const char *field(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return json_object_get_string(v);
}

START_TEST(test_request_fetch_url)
{
	char sha[ORCHD_SHA256_HEXSZ], *u = url("/bytes/40"), *cfg, *want = pattern(40);
	struct rec r;
	json_object *resp, *res;

	pattern_sha(40, sha);
	cfg = xasprintf("{\"mode\":\"fetch\",\"check\":\"in/blob\",\"source\":"
			"{\"url\":\"%s\",\"sha256\":\"%s\",\"dest\":\"in/blob\"}}",
			u, sha);
	run_step(cfg, NULL, &r);
	ck_assert_msg(r.status == ORCHD_STEP_SUCCESS, "%s", r.reason);
	resp = output(&r, "response");
	ck_assert_ptr_nonnull(resp);
	ck_assert_str_eq(field(resp, "type"), "response");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(resp, "id")), 7);
	ck_assert(json_object_get_boolean(json_object_object_get(resp, "ok")));
	res = json_object_object_get(resp, "result");
	ck_assert_str_eq(field(res, "type"), "url");
	ck_assert_str_eq(field(res, "path"), "in/blob");
	ck_assert_str_eq(field(res, "sha256"), sha);
	ck_assert_ptr_nonnull(output(&r, "content"));
	ck_assert_str_eq(json_object_get_string(output(&r, "content")), want);
	json_object_put(r.outputs);
	free(cfg);
	free(u);
	free(want);
}
END_TEST

/* A free loopback port (a moment ago). */
/* A git:// request served by a real `git daemon` on loopback. */
START_TEST(test_request_fetch_git)
{
	int port = test_free_port();
	char *portarg = xasprintf("--port=%d", port), *base = xasprintf("--base-path=%s", tmp);
	char *cfg, *head = NULL, *script;
	struct rec r;
	json_object *resp, *res;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execlp("git", "git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
		       portarg, base, tmp, (char *)NULL);
		_exit(127);
	}
	/* readiness, not timing: wait until it accepts (at most ~10 s) */
	for (int i = 0; i < 1000 && !test_can_connect(port); i++)
		usleep(10000);
	script = xasprintf("git -C '%s' rev-parse HEAD", repo);
	{
		char *argv[] = {(char *)(uintptr_t) "/bin/sh", (char *)(uintptr_t) "-c", script,
				NULL};

		ck_assert_int_eq(test_run(argv, &head, NULL), 0);
	}
	head[strcspn(head, "\n")] = '\0';
	cfg = xasprintf(
		"{\"mode\":\"fetch\",\"check\":\"src/app/README\",\"source\":"
		"{\"git\":\"git://127.0.0.1:%d/repo\",\"ref\":\"main\",\"path\":\"src/app\"}}",
		port);
	run_step(cfg, NULL, &r);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	ck_assert_msg(r.status == ORCHD_STEP_SUCCESS, "%s", r.reason);
	resp = output(&r, "response");
	ck_assert_ptr_nonnull(resp);
	ck_assert_msg(json_object_get_boolean(json_object_object_get(resp, "ok")), "%s",
		      json_object_to_json_string(resp));
	res = json_object_object_get(resp, "result");
	ck_assert_str_eq(field(res, "type"), "git");
	ck_assert_str_eq(field(res, "path"), "src/app");
	ck_assert_str_eq(field(res, "commit"), head);
	ck_assert_ptr_nonnull(output(&r, "content"));
	ck_assert_str_eq(json_object_get_string(output(&r, "content")), "hello from git\n");
	json_object_put(r.outputs);
	free(cfg);
	free(head);
	free(script);
	free(portarg);
	free(base);
}
END_TEST

/* What an extension may not ask for; each answer ok:false with the text. */
static const struct {
	const char *config;
	const char *error;
} refused[] = {
	{"{\"mode\":\"fetch\",\"source\":{\"git\":\"file:///etc\",\"ref\":\"main\"}}",
	 "source not allowed: 'git' must start with http://, https:// or git://"},
	{"{\"mode\":\"fetch\",\"source\":{\"git\":\"/etc\",\"ref\":\"main\",\"path\":\"x\"}}",
	 "source not allowed: 'git' must start with http://, https:// or git://"},
	{"{\"mode\":\"fetch\",\"source\":{\"url\":\"file:///etc/passwd\",\"sha256\":"
	 "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}}",
	 "invalid source: 'url' must start with http:// or https://"},
	{"{\"mode\":\"fetch\",\"source\":{\"url\":\"http://127.0.0.1:1/x\",\"sha256\":"
	 "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\","
	 "\"dest\":\"../x\"}}",
	 "invalid source: 'dest' must be a relative path without '.' or '..' segments"},
	{"{\"mode\":\"fetch\",\"op\":\"exec\",\"source\":{}}", "unknown request op 'exec'"},
};

START_TEST(test_request_refused)
{
	struct rec r;
	json_object *resp;

	run_step(refused[_i].config, NULL, &r);
	ck_assert_msg(r.status == ORCHD_STEP_SUCCESS, "%s", r.reason);
	resp = output(&r, "response");
	ck_assert_ptr_nonnull(resp);
	ck_assert(!json_object_get_boolean(json_object_object_get(resp, "ok")));
	ck_assert_str_eq(field(resp, "error"), refused[_i].error);
	ck_assert_ptr_null(json_object_object_get(resp, "result"));
	json_object_put(r.outputs);
}
END_TEST

/* A request from a step that is being stopped (here: its timeout, which
 * only triggers the cancel) is refused without fetching. */
START_TEST(test_request_after_cancel)
{
	char sha[ORCHD_SHA256_HEXSZ], *u = url("/bytes/40"), *cfg;
	struct rec r;
	json_object *resp;

	pattern_sha(40, sha);
	cfg = xasprintf("{\"mode\":\"fetch\",\"after_cancel\":true,\"check\":\"blob\","
			"\"source\":{\"url\":\"%s\",\"sha256\":\"%s\",\"dest\":\"blob\"}}",
			u, sha);
	run_step_timeout(cfg, NULL, 100, &r);
	ck_assert_int_eq(r.status, ORCHD_STEP_TIMED_OUT);
	resp = output(&r, "response");
	ck_assert_ptr_nonnull(resp);
	ck_assert(!json_object_get_boolean(json_object_object_get(resp, "ok")));
	ck_assert_str_eq(field(resp, "error"), "cancelled");
	ck_assert_ptr_null(output(&r, "content"));
	json_object_put(r.outputs);
	free(cfg);
	free(u);
}
END_TEST

/* A fetch in flight when the step is cancelled (its timeout) stops at once:
 * the answer says so, and the step ends long before the 20 s download. */
START_TEST(test_request_cancelled_in_flight)
{
	char sha[ORCHD_SHA256_HEXSZ], *u = url("/slow/20000"), *cfg;
	long long start = now_ms(), took;
	struct rec r;
	json_object *resp;

	pattern_sha(16, sha);
	cfg = xasprintf("{\"mode\":\"fetch\",\"check\":\"blob\","
			"\"source\":{\"url\":\"%s\",\"sha256\":\"%s\",\"dest\":\"blob\"}}",
			u, sha);
	run_step_timeout(cfg, NULL, 500, &r);
	took = now_ms() - start;
	fprintf(stderr, "cancelled fetch: %s after %lld ms\n", r.reason, took);
	ck_assert_int_eq(r.status, ORCHD_STEP_TIMED_OUT);
	resp = output(&r, "response");
	ck_assert_ptr_nonnull(resp);
	ck_assert(!json_object_get_boolean(json_object_object_get(resp, "ok")));
	ck_assert_msg(strstr(field(resp, "error"), "cancelled"), "%s", field(resp, "error"));
	ck_assert_ptr_null(output(&r, "content"));
	ck_assert_msg(took < 15000, "the step took %lld ms", took);
	json_object_put(r.outputs);
	free(cfg);
	free(u);
}
END_TEST

/* The timeout bounds the fetch of the instance's sources too: a download
 * that would take 20 s ends as a timeout, and nothing runs. */
START_TEST(test_sources_fetch_bounded_by_timeout)
{
	char sha[ORCHD_SHA256_HEXSZ], *u = url("/slow/20000"), *src;
	long long start = now_ms(), took;
	struct rec r;

	pattern_sha(16, sha);
	src = xasprintf("[{\"url\":\"%s\",\"sha256\":\"%s\",\"dest\":\"blob\"}]", u, sha);
	run_step_timeout("{\"mode\":\"sleep\",\"ms\":1}", src, 500, &r);
	took = now_ms() - start;
	ck_assert_msg(r.status == ORCHD_STEP_TIMED_OUT, "%s", r.reason);
	ck_assert_str_eq(r.reason, "timed out after 500ms");
	ck_assert_uint_eq(json_object_object_length(r.outputs), 0);
	ck_assert_msg(took < 15000, "the step took %lld ms", took);
	json_object_put(r.outputs);
	free(src);
	free(u);
}
END_TEST

/* A source that cannot be fetched: spawn error with the fetch's message,
 * nothing runs (the fetch happened on the supervisor's worker). */
START_TEST(test_sources_failure_is_spawn_error)
{
	struct rec r;
	char *cfg, *src;
	const char *want = "source sources[0] (git /nonexistent/orchd-repo.git@main): ";

	/* had it run, it would have succeeded */
	cfg = xasprintf("{\"mode\":\"sleep\",\"ms\":1}");
	src = xasprintf("[{\"git\":\"/nonexistent/orchd-repo.git\",\"ref\":\"main\"}]");
	run_step(cfg, src, &r);
	ck_assert_int_eq(r.status, ORCHD_STEP_SPAWN_ERROR);
	ck_assert_msg(!strncmp(r.reason, want, strlen(want)), "%s", r.reason);
	ck_assert_uint_eq(json_object_object_length(r.outputs), 0);
	json_object_put(r.outputs);
	free(cfg);
	free(src);
}
END_TEST

/* --- core/sources directly ------------------------------------------------ */

START_TEST(test_check_request_symlinks)
{
	char *wd = xasprintf("%s/wd", tmp), *link = xasprintf("%s/wd/evil", tmp);
	char *dir = xasprintf("%s/wd/real", tmp), *file = xasprintf("%s/wd/file", tmp);
	char err[512];
	json_object *spec;

	ck_assert_int_eq(mkdir(wd, 0700), 0);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(symlink(tmp, link), 0);
	fclose(fopen(file, "w"));

	spec = json_tokener_parse("{\"git\":\"https://example.invalid/r.git\",\"ref\":\"main\","
				  "\"path\":\"evil/x\"}");
	ck_assert_int_eq(orchd_sources_check_request(spec, wd, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "source not allowed: 'path' goes through the symbolic link 'evil'");
	json_object_put(spec);

	/* the default name (last URL segment) is checked as well */
	spec = json_tokener_parse(
		"{\"url\":\"https://example.invalid/a/evil?x=1\",\"sha256\":"
		"\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}");
	ck_assert_int_eq(orchd_sources_check_request(spec, wd, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "source not allowed: 'dest' goes through the symbolic link 'evil'");
	json_object_put(spec);

	spec = json_tokener_parse("{\"git\":\"git://example.invalid/evil.git\",\"ref\":\"main\"}");
	ck_assert_int_eq(orchd_sources_check_request(spec, wd, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "source not allowed: 'path' goes through the symbolic link 'evil'");
	json_object_put(spec);

	spec = json_tokener_parse("{\"git\":\"https://example.invalid/r.git\",\"ref\":\"main\","
				  "\"path\":\"file/x\"}");
	ck_assert_int_eq(orchd_sources_check_request(spec, wd, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "source not allowed: 'file' is not a directory");
	json_object_put(spec);

	/* real directories and names not there yet are fine */
	spec = json_tokener_parse("{\"git\":\"https://example.invalid/r.git\",\"ref\":\"main\","
				  "\"path\":\"real/new/deeper\"}");
	ck_assert_msg(orchd_sources_check_request(spec, wd, err, sizeof(err)) == 0, "%s", err);
	json_object_put(spec);

	free(wd);
	free(link);
	free(dir);
	free(file);
}
END_TEST

START_TEST(test_describe)
{
	static const struct {
		const char *spec, *want;
	} c[] = {
		{"{\"git\":\"https://u:pw@example.invalid/r.git\",\"ref\":\"v1\"}",
		 "git https://u:***@example.invalid/r.git@v1"},
		{"{\"url\":\"https://example.invalid/f.tgz\"}",
		 "url https://example.invalid/f.tgz"},
		{"{}", "source"},
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		json_object *spec = json_tokener_parse(c[i].spec);
		char *d = orchd_source_describe(spec);

		ck_assert_str_eq(d, c[i].want);
		free(d);
		json_object_put(spec);
	}
}
END_TEST

Suite *sources_suite(void)
{
	Suite *s = suite_create("sources");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pipeline_fetches_git_and_http);
	tcase_add_test(tc, test_pipeline_wrong_sha256);
	tcase_add_test(tc, test_pipeline_invalid_sources_at_load);
	tcase_add_test(tc, test_request_fetch_url);
	tcase_add_test(tc, test_request_fetch_git);
	tcase_add_loop_test(tc, test_request_refused, 0, sizeof(refused) / sizeof(refused[0]));
	tcase_add_test(tc, test_request_after_cancel);
	tcase_add_test(tc, test_request_cancelled_in_flight);
	tcase_add_test(tc, test_sources_fetch_bounded_by_timeout);
	tcase_add_test(tc, test_sources_failure_is_spawn_error);
	tcase_add_test(tc, test_check_request_symlinks);
	tcase_add_test(tc, test_describe);
	suite_add_tcase(s, tc);
	return s;
}
