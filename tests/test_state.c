/*
 * Tests of the state engine (interfaces/engine.h, the local engine) and of
 * core/state: real files in a temp directory, real processes for the lock,
 * kill -9 and ENOSPC fault tests.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/state.h"
#include "interfaces/engine.h"
#include "testutil.h"
#include "util.h"

#define PASS   "correct horse battery staple"
#define SECRET "hunter2-s3cret-value"

static char *tmp;  /* per test */
static char *sdir; /* tmp/.orchd */

static void setup(void)
{
	tmp = test_tmpdir();
	ck_assert_ptr_nonnull(tmp);
	sdir = xasprintf("%s/.orchd", tmp);
	unsetenv("ORCHD_PASSPHRASE");
	unsetenv("ORCHD_PASSPHRASE_FILE");
}

static void teardown(void)
{
	umount2(tmp, MNT_DETACH); /* test_enospc_real_tmpfs; EINVAL otherwise */
	test_rmtree(tmp);
	free(tmp);
	free(sdir);
}

static struct orchd_engine *open_engine(void)
{
	struct orchd_engine_config cfg = {.type = ORCHD_ENGINE_LOCAL};
	struct orchd_engine *e = NULL;
	char err[512];

	if (orchd_engine_open(&cfg, sdir, "demo", &e, err, sizeof(err)))
		ck_abort_msg("open: %s", err);
	return e;
}

static char *path_in(const char *rel)
{
	return xasprintf("%s/%s", sdir, rel);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static char *slurp(const char *path)
{
	size_t len;
	char *s = test_read_file(path, &len);

	ck_assert_msg(s != NULL, "cannot read %s", path);
	return s;
}

/* Names in a directory (excluding . and ..), joined with spaces, sorted. */
static char *dir_names(const char *dir)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	char *out = xstrdup("");

	for (int i = 0; i < n; i++) {
		if (strcmp(list[i]->d_name, ".") && strcmp(list[i]->d_name, "..")) {
			char *t = xasprintf("%s%s%s", out, *out ? " " : "", list[i]->d_name);

			free(out);
			out = t;
		}
		free(list[i]);
	}
	free(list);
	return out;
}

/* A record n as the statewriter helper writes it (pad of padlen 'x'). */
static void make_record(struct orchd_stack_record *rec, long n, size_t padlen)
{
	char *pad = xmalloc(padlen + 1);

	memset(pad, 'x', padlen);
	pad[padlen] = '\0';
	orchd_stack_record_init(rec);
	rec->state = json_object_new_object();
	json_object_object_add(rec->state, "n", json_object_new_int64(n));
	json_object_object_add(rec->state, "pad", json_object_new_string(pad));
	orchd_stack_record_set_output(rec, "n", json_object_new_int64(n), 0);
	orchd_stack_record_set_output(rec, "pad", json_object_new_string(pad), 0);
	rec->config_hash = xasprintf("config-%ld", n);
	free(pad);
}

static json_object *out_value(const struct orchd_stack_record *rec, const char *key)
{
	json_object *ent, *v = NULL;

	ck_assert_msg(json_object_object_get_ex(rec->outputs, key, &ent), "no output %s", key);
	json_object_object_get_ex(ent, "value", &v);
	return v;
}

/* Check a record is one whole statewriter record; return its n. */
static long check_whole(const struct orchd_stack_record *rec, size_t padlen)
{
	json_object *n, *pad;
	long v;
	char *want;

	ck_assert_ptr_nonnull(rec->state);
	ck_assert(json_object_object_get_ex(rec->state, "n", &n));
	ck_assert(json_object_object_get_ex(rec->state, "pad", &pad));
	v = (long)json_object_get_int64(n);
	ck_assert_uint_eq(strlen(json_object_get_string(pad)), padlen);
	ck_assert_int_eq(json_object_get_int64(out_value(rec, "n")), v);
	ck_assert_uint_eq(strlen(json_object_get_string(out_value(rec, "pad"))), padlen);
	want = xasprintf("config-%ld", v);
	ck_assert_str_eq(rec->config_hash, want);
	free(want);
	return v;
}

/* --- basics --------------------------------------------------------------- */

START_TEST(test_roundtrip)
{
	struct orchd_engine *e = open_engine(), *e2;
	struct orchd_stack_record rec, back;
	char err[512], *names, *sp;

	orchd_stack_record_init(&rec);
	rec.state = json_tokener_parse("{\"ids\":[1,2,3],\"nested\":{\"a\":\"b/c\"}}");
	orchd_stack_record_set_output(&rec, "url", json_object_new_string("http://x/y"), 0);
	orchd_stack_record_set_output(&rec, "count", json_object_new_int(3), 0);
	orchd_stack_record_set_output(&rec, "nothing", NULL, 0);
	rec.config_hash = xstrdup("sha256:abc");
	rec.inputs_hash = xstrdup("sha256:def");
	rec.last.run_id = xstrdup("r-1");
	rec.last.action = xstrdup("apply");
	rec.last.status = xstrdup("succeeded");
	rec.last.started_at = 1700000000123LL;
	rec.last.ended_at = 1700000005456LL;
	rec.last.attempts = 2;
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), 0);

	/* Read back through another engine, as a later run would. */
	e2 = open_engine();
	orchd_stack_record_init(&back);
	ck_assert_int_eq(orchd_engine_read(e2, "dev-exec-db", &back, err, sizeof(err)), 0);
	ck_assert(json_object_equal(back.state, rec.state));
	ck_assert(json_object_equal(back.outputs, rec.outputs));
	ck_assert_str_eq(back.config_hash, "sha256:abc");
	ck_assert_str_eq(back.inputs_hash, "sha256:def");
	ck_assert_str_eq(back.last.run_id, "r-1");
	ck_assert_str_eq(back.last.action, "apply");
	ck_assert_str_eq(back.last.status, "succeeded");
	ck_assert_int_eq(back.last.started_at, 1700000000123LL);
	ck_assert_int_eq(back.last.ended_at, 1700000005456LL);
	ck_assert_int_eq(back.last.attempts, 2);
	ck_assert_int_eq(back.masked, 0);
	ck_assert_int_eq(back.state_secret, 0);

	/* The file is versioned; no temp file is left behind. */
	sp = path_in("stacks");
	names = dir_names(sp);
	ck_assert_str_eq(names, "dev-exec-db.json");
	free(names);
	free(sp);
	sp = path_in("stacks/dev-exec-db.json");
	names = slurp(sp);
	ck_assert_ptr_nonnull(strstr(names, "\"format\": \"orchd-stack\""));
	ck_assert_ptr_nonnull(strstr(names, "\"version\": 1"));
	free(names);
	free(sp);

	orchd_stack_record_release(&back);
	orchd_stack_record_release(&rec);
	orchd_engine_close(e2);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_missing_select_list_remove)
{
	struct orchd_engine *e = open_engine();
	struct orchd_stack_record rec;
	char err[512], **names;
	size_t n;

	orchd_stack_record_init(&rec);
	/* Nothing exists yet, and reading creates nothing. */
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-a", &rec, err, sizeof(err)), 1);
	ck_assert_int_eq(orchd_engine_list(e, &names, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(access(sdir, F_OK), -1);
	ck_assert_int_eq(orchd_engine_select(e, "dev-exec-a", 0, err, sizeof(err)), 1);
	ck_assert_int_eq(orchd_engine_select(e, "dev-exec-a", 1, err, sizeof(err)), 0);

	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-b", &rec, err, sizeof(err)), 0);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-a", &rec, err, sizeof(err)), 0);
	ck_assert_int_eq(orchd_engine_select(e, "dev-exec-a", 0, err, sizeof(err)), 0);
	ck_assert_int_eq(orchd_engine_list(e, &names, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(names[0], "dev-exec-a");
	ck_assert_str_eq(names[1], "dev-exec-b");
	orchd_engine_names_free(names, n);

	{
		/* the record goes, the history stays with the destroy in it */
		struct orchd_history_entry h = {0}, *v;
		char run[] = "r-9", act[] = "destroy", st[] = "success";

		h.run_id = run;
		h.action = act;
		h.status = st;
		h.attempts = 1;
		ck_assert_int_eq(orchd_engine_remove(e, "dev-exec-a", &h, err, sizeof(err)), 0);
		ck_assert_int_eq(orchd_engine_remove(e, "dev-exec-a", &h, err, sizeof(err)), 1);
		ck_assert_int_eq(
			orchd_engine_history_read(e, "dev-exec-a", &v, &n, err, sizeof(err)), 0);
		ck_assert_uint_eq(n, 1);
		ck_assert_str_eq(v[0].action, "destroy");
		orchd_history_free(v, n);
	}
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-a", &rec, err, sizeof(err)), 1);
	ck_assert_int_eq(orchd_engine_list(e, &names, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	orchd_engine_names_free(names, n);

	/* Unsafe names are refused, even though the loader checks them too. */
	ck_assert_int_eq(orchd_engine_read(e, "../evil", &rec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "invalid stack name '../evil'");
	ck_assert_int_eq(orchd_engine_write(e, "a/b", &rec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "invalid stack name 'a/b'");
	ck_assert_int_eq(orchd_engine_write(e, "a..b", &rec, err, sizeof(err)), -1);
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_leftover_temp_file)
{
	struct orchd_engine *e = open_engine();
	struct orchd_stack_record rec;
	char err[512], *tmpf, **names;
	size_t n;

	make_record(&rec, 7, 10);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	orchd_stack_record_release(&rec);
	/* What a writer killed mid-write leaves behind. */
	tmpf = path_in("stacks/.dev-exec-db.json.tmp.999.0");
	write_text(tmpf, "{\"format\":\"orchd-st");
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	ck_assert_int_eq(check_whole(&rec, 10), 7);
	orchd_stack_record_release(&rec);
	ck_assert_int_eq(orchd_engine_list(e, &names, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(names[0], "dev-exec-db");
	orchd_engine_names_free(names, n);
	make_record(&rec, 8, 10);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	orchd_stack_record_release(&rec);
	free(tmpf);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_corrupt_and_version)
{
	struct orchd_engine *e = open_engine();
	struct orchd_stack_record rec;
	char err[512], *file, *want, *after;

	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	file = path_in("stacks/dev-exec-db.json");

	write_text(file, "{\"format\": \"orchd-stack\", \"vers");
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)), -1);
	want = xasprintf("stack file %s is corrupt: unexpected end of data (not replacing it)",
			 file);
	ck_assert_str_eq(err, want);
	/* A write refuses to replace it, and leaves it as it was. */
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, want);
	after = slurp(file);
	ck_assert_str_eq(after, "{\"format\": \"orchd-stack\", \"vers");
	free(after);
	free(want);

	write_text(file,
		   "{\"format\": \"orchd-stack\", \"version\": 2, \"stack\": \"dev-exec-db\"}");
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)), -1);
	want = xasprintf("stack file %s has version 2, this orchd reads version 1 "
			 "(not replacing it)",
			 file);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, want);
	free(want);

	write_text(file, "[1,2]");
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)), -1);
	want = xasprintf("stack file %s is not an orchd stack record (not replacing it)", file);
	ck_assert_str_eq(err, want);
	free(want);

	free(file);
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_history)
{
	struct orchd_engine *e = open_engine();
	struct orchd_history_entry h = {0}, *v;
	char apply[] = "apply", failed[] = "failed", ok[] = "succeeded", r5[] = "r-5";
	char err[512], *file, *text, *errfile;
	size_t n;
	int saved, fd;
	FILE *f;

	ck_assert_int_eq(orchd_engine_history_read(e, "dev-exec-db", &v, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 0);
	for (int i = 1; i <= 3; i++) {
		h.run_id = xasprintf("r-%d", i);
		h.action = apply;
		h.status = i == 2 ? failed : ok;
		h.started_at = 1000 * i;
		h.ended_at = 1000 * i + 500;
		h.attempts = i;
		/* the figures and the CI build of the entry go along */
		h.meta.cpu_ms = 10 * i;
		h.meta.max_rss_kb = 100 * i;
		h.meta.ci.build_tag = xasprintf("jenkins-infra-%d", i);
		h.meta.ci.build_url =
			i == 3 ? xstrdup("https://ci.example.com/job/infra/3/") : NULL;
		ck_assert_int_eq(
			orchd_engine_history_append(e, "dev-exec-db", &h, err, sizeof(err)), 0);
		free(h.run_id);
		orchd_action_meta_release(&h.meta);
	}
	/* A crash in the middle of an append leaves a torn last line. */
	file = path_in("stacks/dev-exec-db.history.jsonl");
	f = fopen(file, "a");
	fputs("{\"run_id\":\"r-4\",\"act", f);
	fclose(f);

	errfile = xasprintf("%s/stderr", tmp);
	fflush(stderr);
	saved = dup(2);
	fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	ck_assert_int_eq(orchd_engine_history_read(e, "dev-exec-db", &v, &n, err, sizeof(err)), 0);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	text = slurp(errfile);
	{
		char *want =
			xasprintf("orchd: warning: %s:4: skipping torn last history line\n", file);

		ck_assert_str_eq(text, want);
		free(want);
	}
	free(text);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0].run_id, "r-1");
	ck_assert_str_eq(v[1].status, "failed");
	ck_assert_int_eq(v[2].started_at, 3000);
	ck_assert_int_eq(v[2].ended_at, 3500);
	ck_assert_int_eq(v[2].attempts, 3);
	ck_assert_int_eq(v[2].meta.cpu_ms, 30);
	ck_assert_int_eq(v[2].meta.max_rss_kb, 300);
	ck_assert_str_eq(v[2].meta.ci.build_tag, "jenkins-infra-3");
	ck_assert_str_eq(v[2].meta.ci.build_url, "https://ci.example.com/job/infra/3/");
	ck_assert_ptr_null(v[1].meta.ci.build_url);
	ck_assert_ptr_null(v[2].meta.ci.commit);
	orchd_history_free(v, n);

	/* The next append starts on a fresh line and is read back. */
	h.run_id = r5;
	ck_assert_int_eq(orchd_engine_history_append(e, "dev-exec-db", &h, err, sizeof(err)), 0);
	fflush(stderr);
	saved = dup(2);
	fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	ck_assert_int_eq(orchd_engine_history_read(e, "dev-exec-db", &v, &n, err, sizeof(err)), 0);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	text = slurp(errfile);
	{
		char *want =
			xasprintf("orchd: warning: %s:4: skipping unreadable history line\n", file);

		ck_assert_str_eq(text, want);
		free(want);
	}
	free(text);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(v[3].run_id, "r-5");
	orchd_history_free(v, n);
	free(errfile);
	free(file);
	orchd_engine_close(e);
}
END_TEST

/* --- lock ------------------------------------------------------------------ */

/* Child: take the lock, report 'L' on up, wait for a byte on down, then
 * unlock and report 'U', then wait for EOF on down. */
static pid_t lock_holder(int *up_rd, int *down_wr)
{
	int up[2], down[2];
	pid_t pid;

	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		struct orchd_engine *e = open_engine();
		char err[512], c;
		char a0[] = "orchd", a1[] = "run", a2[] = "p.yaml";
		char *argv[] = {a0, a1, a2, NULL};

		close(up[0]);
		close(down[1]);
		if (orchd_state_lock(e, "r-holder-1", 3, argv, 0, err, sizeof(err))) {
			fprintf(stderr, "child: %s\n", err);
			_exit(1);
		}
		if (write(up[1], "L", 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(1);
		orchd_engine_unlock(e, err, sizeof(err));
		if (write(up[1], "U", 1) != 1)
			_exit(1);
		while (read(down[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	*up_rd = up[0];
	*down_wr = down[1];
	return pid;
}

static char host_name[256];

START_TEST(test_lock_wait_timeout_then_release)
{
	struct orchd_engine *e = open_engine();
	int up, down, status;
	char c, err[512], *pattern, *info, *infofile;
	pid_t pid = lock_holder(&up, &down);
	struct orchd_lock_request req = {
		.run_id = "r-waiter", .command = "orchd run", .timeout_ms = 200};
	regex_t re;

	ck_assert_int_eq(read(up, &c, 1), 1);
	ck_assert_int_eq(c, 'L');
	gethostname(host_name, sizeof(host_name));
	ck_assert_int_eq(orchd_engine_lock(e, &req, err, sizeof(err)), -1);
	pattern = xasprintf("^state directory %s is locked by pid %d on host %s since "
			    "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z "
			    "\\(run r-holder-1\\); waited 0\\.2s$",
			    sdir, (int)pid, host_name);
	ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_msg(regexec(&re, err, 0, NULL, 0) == 0, "message: %s", err);
	regfree(&re);
	free(pattern);
	/* The holder record names the command too. */
	infofile = path_in("lock.info");
	info = slurp(infofile);
	ck_assert_ptr_nonnull(strstr(info, "\"command\":\"orchd run p.yaml\""));
	free(info);

	/* Try once: the same message with "waited 0s". */
	req.timeout_ms = 0;
	ck_assert_int_eq(orchd_engine_lock(e, &req, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "; waited 0s"));

	/* The holder unlocks (and stays alive): we get the lock. */
	ck_assert_int_eq(write(down, "x", 1), 1);
	ck_assert_int_eq(read(up, &c, 1), 1);
	ck_assert_int_eq(c, 'U');
	req.timeout_ms = 10000;
	ck_assert_int_eq(orchd_engine_lock(e, &req, err, sizeof(err)), 0);
	info = slurp(infofile);
	pattern = xasprintf("\"pid\":%d,", (int)getpid());
	ck_assert_ptr_nonnull(strstr(info, pattern));
	ck_assert_ptr_nonnull(strstr(info, "\"run_id\":\"r-waiter\""));
	free(pattern);
	free(info);
	ck_assert_int_eq(orchd_engine_unlock(e, err, sizeof(err)), 0);
	ck_assert_int_eq(access(infofile, F_OK), -1);
	free(infofile);

	close(down);
	close(up);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_lock_stale_takeover)
{
	struct orchd_engine *e = open_engine();
	int up, down, status, saved, fd;
	char c, err[512], *errfile, *text, *want;
	pid_t pid = lock_holder(&up, &down);
	struct orchd_lock_request req = {.run_id = "r-next", .timeout_ms = 0};

	ck_assert_int_eq(read(up, &c, 1), 1);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	close(up);
	close(down);

	errfile = xasprintf("%s/stderr", tmp);
	fflush(stderr);
	saved = dup(2);
	fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	ck_assert_int_eq(orchd_engine_lock(e, &req, err, sizeof(err)), 0);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	text = slurp(errfile);
	want = xasprintf("orchd: warning: taking over stale lock of pid %d\n", (int)pid);
	ck_assert_str_eq(text, want);
	free(want);
	free(text);
	free(errfile);
	orchd_engine_close(e); /* unlocks */
}
END_TEST

/* Extensions are exec'ed children: they must not inherit the lock. */
START_TEST(test_lock_not_inherited)
{
	struct orchd_engine *e = open_engine();
	struct orchd_lock_request req = {.run_id = "r-1", .timeout_ms = 0};
	char err[512], *out = NULL, *lockpath = path_in("lock");
	char sh[] = "/bin/sh", c[] = "-c",
	     script[] = "for f in /proc/$$/fd/*; do readlink \"$f\"; done";
	char *argv[] = {sh, c, script, NULL};

	ck_assert_int_eq(orchd_engine_lock(e, &req, err, sizeof(err)), 0);
	ck_assert_int_eq(test_run(argv, &out, NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "/dev/null"));
	ck_assert_msg(!strstr(out, lockpath), "lock fd inherited: %s", out);
	free(out);
	free(lockpath);
	orchd_engine_close(e);
}
END_TEST

/* --- secrets --------------------------------------------------------------- */

static void write_secret_record(struct orchd_engine *e, const char *stack)
{
	struct orchd_stack_record rec;
	char err[512];

	orchd_stack_record_init(&rec);
	rec.state = json_object_new_object();
	json_object_object_add(rec.state, "token", json_object_new_string(SECRET "-state"));
	rec.state_secret = 1;
	orchd_stack_record_set_output(&rec, "password", json_object_new_string(SECRET), 1);
	orchd_stack_record_set_output(&rec, "host", json_object_new_string("db.local"), 0);
	if (orchd_engine_write(e, stack, &rec, err, sizeof(err)))
		ck_abort_msg("write: %s", err);
	orchd_stack_record_release(&rec);
}

/* Fail if the bytes of needle appear in any file under dir. */
static void assert_nowhere(const char *dir, const char *needle)
{
	struct dirent *d;
	DIR *dp = opendir(dir);

	ck_assert_ptr_nonnull(dp);
	while ((d = readdir(dp))) {
		char *p;
		struct stat st;

		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		p = xasprintf("%s/%s", dir, d->d_name);
		ck_assert_int_eq(lstat(p, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			assert_nowhere(p, needle);
		} else {
			size_t len;
			char *buf = test_read_file(p, &len);

			ck_assert_ptr_nonnull(buf);
			ck_assert_msg(!memmem(buf, len, needle, strlen(needle)),
				      "plaintext secret found in %s", p);
			free(buf);
		}
		free(p);
	}
	closedir(dp);
}

START_TEST(test_secrets_roundtrip_and_masked)
{
	struct orchd_engine *e;
	struct orchd_stack_record rec;
	char err[512];
	json_object *ent;

	setenv("ORCHD_PASSPHRASE", PASS, 1);
	e = open_engine();
	write_secret_record(e, "dev-exec-db");
	orchd_engine_close(e);
	assert_nowhere(sdir, SECRET);
	assert_nowhere(sdir, PASS);

	/* With the passphrase (a new process would derive the key again). */
	e = open_engine();
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	ck_assert_str_eq(json_object_get_string(out_value(&rec, "password")), SECRET);
	ck_assert_str_eq(json_object_get_string(out_value(&rec, "host")), "db.local");
	ck_assert_int_eq(rec.state_secret, 1);
	ck_assert_int_eq(rec.masked, 0);
	ck_assert_str_eq(json_object_to_json_string_ext(rec.state, JSON_C_TO_STRING_PLAIN),
			 "{\"token\":\"" SECRET "-state\"}");
	/* Writing it back keeps it secret. */
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
	assert_nowhere(sdir, SECRET);

	/* Without a passphrase: listed, but masked. */
	unsetenv("ORCHD_PASSPHRASE");
	e = open_engine();
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	ck_assert_int_eq(rec.masked, 2);
	ck_assert_int_eq(rec.state_masked, 1);
	ck_assert_ptr_null(rec.state);
	ck_assert(json_object_object_get_ex(rec.outputs, "password", &ent));
	ck_assert_str_eq(json_object_to_json_string_ext(ent, JSON_C_TO_STRING_PLAIN),
			 "{\"value\":null,\"secret\":true,\"masked\":true}");
	ck_assert_str_eq(json_object_get_string(out_value(&rec, "host")), "db.local");
	/* Written back without the passphrase (a failed run keeps its old
	 * record): the secrets it could not read are kept, encrypted. */
	orchd_stack_record_set_output(&rec, "host", json_object_new_string("db2.local"), 0);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
	assert_nowhere(sdir, SECRET);

	setenv("ORCHD_PASSPHRASE", PASS, 1);
	e = open_engine();
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	ck_assert_int_eq(rec.masked, 0);
	ck_assert_str_eq(json_object_get_string(out_value(&rec, "password")), SECRET);
	ck_assert_str_eq(json_object_get_string(out_value(&rec, "host")), "db2.local");
	ck_assert_str_eq(json_object_to_json_string_ext(rec.state, JSON_C_TO_STRING_PLAIN),
			 "{\"token\":\"" SECRET "-state\"}");
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_secret_without_passphrase_fails_first)
{
	struct orchd_engine *e = open_engine();
	struct orchd_stack_record rec;
	char err[512];

	orchd_stack_record_init(&rec);
	orchd_stack_record_set_output(&rec, "user", json_object_new_string("admin"), 0);
	orchd_stack_record_set_output(&rec, "password", json_object_new_string(SECRET), 1);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "stack dev-exec-db: output 'password' is secret and no passphrase "
			      "is set (set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)");
	/* Nothing was written at all. */
	ck_assert_int_eq(access(sdir, F_OK), -1);
	orchd_stack_record_release(&rec);

	orchd_stack_record_init(&rec);
	rec.state = json_object_new_string("x");
	rec.state_secret = 1;
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "stack dev-exec-db: state is secret and no passphrase is set "
			      "(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)");
	ck_assert_int_eq(access(sdir, F_OK), -1);
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_wrong_passphrase)
{
	struct orchd_engine *e;
	struct orchd_stack_record rec;
	char err[512], *want, *pf;

	setenv("ORCHD_PASSPHRASE", PASS, 1);
	e = open_engine();
	write_secret_record(e, "dev-exec-db");
	orchd_engine_close(e);

	/* The passphrase file route, with the wrong passphrase. */
	unsetenv("ORCHD_PASSPHRASE");
	pf = xasprintf("%s/pass", tmp);
	write_text(pf, "not the passphrase\n");
	setenv("ORCHD_PASSPHRASE_FILE", pf, 1);
	e = open_engine();
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)), -1);
	want = xasprintf("wrong passphrase for state directory %s", sdir);
	ck_assert_str_eq(err, want);
	/* Writing another secret is refused the same way. */
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-other",
					    &(struct orchd_stack_record){.state = rec.outputs,
									 .state_secret = 1},
					    err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err, want);
	free(want);
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);

	/* The right passphrase from the file. */
	write_text(pf, PASS "\n");
	e = open_engine();
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	ck_assert_str_eq(json_object_get_string(out_value(&rec, "password")), SECRET);
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
	free(pf);
}
END_TEST

/* Replace the first occurrence of from by to (same length) in a file. */
static void patch_file(const char *path, const char *from, const char *to)
{
	size_t len;
	char *buf = test_read_file(path, &len), *p;
	FILE *f;

	ck_assert_ptr_nonnull(buf);
	p = strstr(buf, from);
	ck_assert_ptr_nonnull(p);
	memcpy(p, to, strlen(to));
	f = fopen(path, "w");
	fwrite(buf, 1, len, f);
	fclose(f);
	free(buf);
}

START_TEST(test_secret_bound_to_stack_and_tamper)
{
	struct orchd_engine *e;
	struct orchd_stack_record rec;
	char err[512], *a, *b, *want, *text, *ct;
	json_object *ja, *jb, *outs, *ent;
	const char *s;

	setenv("ORCHD_PASSPHRASE", PASS, 1);
	e = open_engine();
	write_secret_record(e, "dev-exec-a");
	write_secret_record(e, "dev-exec-b");
	a = path_in("stacks/dev-exec-a.json");
	b = path_in("stacks/dev-exec-b.json");

	/* Move a's encrypted password into b's file: b cannot decrypt it. */
	ja = json_object_from_file(a);
	jb = json_object_from_file(b);
	json_object_object_get_ex(ja, "outputs", &outs);
	json_object_object_get_ex(outs, "password", &ent);
	json_object_object_get_ex(jb, "outputs", &outs);
	json_object_object_add(outs, "password", json_object_get(ent));
	ck_assert_int_eq(json_object_to_file(b, jb), 0);
	json_object_put(ja);
	json_object_put(jb);
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-b", &rec, err, sizeof(err)), -1);
	want = xasprintf("stack dev-exec-b: cannot decrypt output 'password' in stack file %s: "
			 "authentication failed",
			 b);
	ck_assert_str_eq(err, want);
	free(want);

	/* Flip one character of a's ciphertext. */
	text = slurp(a);
	ct = strstr(text, "\"ct\": \"");
	ck_assert_ptr_nonnull(ct);
	ct += 7;
	{
		char from[5], to[5];

		memcpy(from, ct, 4);
		from[4] = '\0';
		memcpy(to, from, 5);
		to[0] = to[0] == 'A' ? 'B' : 'A';
		patch_file(a, from, to);
	}
	free(text);
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-a", &rec, err, sizeof(err)), -1);
	s = strstr(err, "authentication failed");
	ck_assert_msg(s != NULL, "message: %s", err);
	orchd_stack_record_release(&rec);
	free(a);
	free(b);
	orchd_engine_close(e);
}
END_TEST

/* --- faults ---------------------------------------------------------------- */

#define KILL_PAD 200000

/* True when the journal ends inside an entry (a write cut short): a header
 * "orchd-journal 1 K STACK LEN HEX", LEN bytes, a newline, and so on. */
static int journal_torn(void)
{
	char *path = path_in("journal"), *t;
	size_t len = 0, off = 0;
	int torn = 0;

	t = test_read_file(path, &len);
	free(path);
	if (!t)
		return 0;
	while (off < len) {
		char *nl = memchr(t + off, '\n', len - off);
		size_t dlen;

		if (!nl || sscanf(t + off, "orchd-journal 1 %*c %*s %zu", &dlen) != 1 ||
		    (size_t)(nl + 1 - t) + dlen + 1 > len) {
			torn = 1;
			break;
		}
		off = (size_t)(nl + 1 - t) + dlen + 1;
	}
	free(t);
	return torn;
}

/*
 * In a writer about to be killed: preload the nosync shim, so that its time
 * goes to writing rather than to waiting on the disk, where a kill proves
 * nothing (see tests/shim/nosync.c).  Called in the child after fork.
 */
static void nosync_env(const char *shim)
{
	const char *asan = getenv("ASAN_OPTIONS");
	char *opts = xasprintf("%s%sverify_asan_link_order=0", asan ? asan : "",
			       asan && *asan ? ":" : "");

	setenv("LD_PRELOAD", shim, 1);
	/* The shim is not sanitized; let ASan accept it in front. */
	setenv("ASAN_OPTIONS", opts, 1);
	free(opts);
}

START_TEST(test_kill9_during_writes)
{
	char *helper = test_build_path("tests/helpers/statewriter");
	char *shim = test_build_path("tests/shim/nosync.so");
	struct orchd_engine *e = open_engine();
	struct orchd_stack_record rec;
	char err[512];
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	long got;
	int midwrite = 0, seen_tmps = 0, round;

	time_t t0 = time(NULL);

	ck_assert_msg(access(shim, R_OK) == 0, "missing %s", shim);
	fprintf(stderr, "state: kill -9 test seed %u\n", seed);
	srand(seed);
	make_record(&rec, 1, KILL_PAD);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	orchd_stack_record_release(&rec);
	/* Rounds until enough kills landed mid-write (a temp file left
	 * behind proves it), so that the test is about torn writes.  How
	 * often a kill lands there depends on the machine's load (a kill
	 * during the journal's fdatasync counts as between writes): up to
	 * 600 rounds, or 40 s of them. */
	for (round = 0; midwrite < 5 && round < 600 && time(NULL) - t0 < 40; round++) {
		int status, up[2], i = round;
		struct timespec ts = {0, (long)(rand() % 20000) * 1000L};
		pid_t pid;
		char c;

		ck_assert_int_eq(pipe(up), 0);
		pid = fork();
		ck_assert_int_ne(pid, -1);
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			dup2(null, 2);
			dup2(up[1], 1);
			nosync_env(shim);
			execl(helper, helper, sdir, "dev-exec-db", "loop", "200000", (char *)NULL);
			_exit(127);
		}
		close(up[1]);
		/* Kill at a random moment after its first write. */
		ck_assert_int_eq(read(up[0], &c, 1), 1);
		close(up[0]);
		nanosleep(&ts, NULL);
		ck_assert_int_eq(kill(pid, SIGKILL), 0);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status), "helper exited with %d", WEXITSTATUS(status));

		/* The file holds one whole record: the old one or a new one. */
		orchd_stack_record_init(&rec);
		if (orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)))
			ck_abort_msg("round %d: %s", i, err);
		got = check_whole(&rec, KILL_PAD);
		orchd_stack_record_release(&rec);
		ck_assert_int_ge(got, 2);
		{
			/* Killed mid-write: its temp file is left behind. */
			char *sp = path_in("stacks"), *names = dir_names(sp);
			int tmps = 0;

			for (char *q = names; (q = strstr(q, ".dev-exec-db.json.tmp.")); q++)
				tmps++;
			/* or its journal entry is cut short */
			if (tmps > seen_tmps || journal_torn())
				midwrite++;
			seen_tmps = tmps;
			free(names);
			free(sp);
		}
		/* And the next write works. */
		make_record(&rec, 1, KILL_PAD);
		if (orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)))
			ck_abort_msg("round %d: write after kill: %s", i, err);
		orchd_stack_record_release(&rec);
	}
	fprintf(stderr, "state: kill -9 test: %d of %d kills landed mid-write\n", midwrite, round);
	ck_assert_msg(midwrite >= 5, "only %d of %d kills landed mid-write (seed %u)", midwrite,
		      round, seed);
	free(helper);
	free(shim);
	orchd_engine_close(e);
}
END_TEST

#define BATCH_K	  8
#define BATCH_PAD 20000

/* n of the record of stack PREFIX-i, read without the lock (as the files
 * are), or -1 when there is none. */
static long batch_n(struct orchd_engine *e, long i)
{
	struct orchd_stack_record rec;
	char err[512], *stack = xasprintf("dev-exec-b-%ld", i);
	long n = -1;
	int r;

	orchd_stack_record_init(&rec);
	r = orchd_engine_read(e, stack, &rec, err, sizeof(err));
	ck_assert_msg(r >= 0, "%s", err);
	if (!r)
		n = check_whole(&rec, BATCH_PAD);
	orchd_stack_record_release(&rec);
	free(stack);
	return n;
}

/*
 * kill -9 inside group commits: a writer commits batches of 8 records (one
 * journal write and fdatasync, then the 8 stack files) and says which batch
 * numbers were reported stored; it is killed at a random moment.  After the
 * next lock (which replays the journal) every record is whole and none is
 * older than the last batch reported stored (at most one newer: the batch
 * in flight, which may land whole or in part).  Rounds go on until enough
 * kills landed between two stack files of one batch.
 */
START_TEST(test_kill9_inside_batch)
{
	char *helper = test_build_path("tests/helpers/statewriter");
	char *shim = test_build_path("tests/shim/nosync.so");
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	int inside = 0, round;

	ck_assert_msg(access(shim, R_OK) == 0, "missing %s", shim);
	fprintf(stderr, "state: kill -9 inside a batch, seed %u\n", seed);
	srand(seed);
	for (round = 0; inside < 3 && round < 300; round++) {
		struct orchd_lock_request req = {"r-test", "test", 5000};
		struct timespec ts = {0, (long)(rand() % 30000) * 1000L};
		struct orchd_engine *e;
		long acked = 0, lo = -2, hi = -2;
		char buf[4096], err[512];
		int status, up[2];
		ssize_t got;
		pid_t pid;

		ck_assert_int_eq(pipe(up), 0);
		pid = fork();
		ck_assert_int_ne(pid, -1);
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			dup2(null, 2);
			dup2(up[1], 1);
			nosync_env(shim);
			execl(helper, helper, sdir, "dev-exec-b", "batch", "8", "20000",
			      (char *)NULL);
			_exit(127);
		}
		close(up[1]);
		/* after its first batch, at a random moment */
		ck_assert_int_gt(read(up[0], buf, 1), 0);
		nanosleep(&ts, NULL);
		ck_assert_int_eq(kill(pid, SIGKILL), 0);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFSIGNALED(status));
		/* the last batch it reported stored */
		buf[0] = '\n';
		{
			size_t have = 1;

			while (have < sizeof(buf) - 1 &&
			       (got = read(up[0], buf + have, sizeof(buf) - 1 - have)) > 0)
				have += (size_t)got;
			buf[have] = '\0';
			for (char *p = buf; (p = strchr(p, '\n'));)
				if (*++p)
					acked = atol(p) > acked ? atol(p) : acked;
		}
		close(up[0]);
		if (acked < 1)
			acked = 1; /* the first byte read was batch 1's */
		e = open_engine();
		/* before the replay: killed between two files of one batch? */
		for (long i = 0; i < BATCH_K; i++) {
			long n = batch_n(e, i);

			lo = lo == -2 || n < lo ? n : lo;
			hi = hi == -2 || n > hi ? n : hi;
		}
		if (lo != hi)
			inside++;
		ck_assert_msg(orchd_engine_lock(e, &req, err, sizeof(err)) == 0, "%s", err);
		for (long i = 0; i < BATCH_K; i++) {
			long n = batch_n(e, i);

			ck_assert_msg(n >= acked && n <= acked + 1,
				      "round %d (seed %u): b-%ld holds batch %ld, %ld was stored",
				      round, seed, i, n, acked);
			/* killed between two files: the journal had the whole
			 * batch, and the replay puts in the files it missed */
			ck_assert_msg(lo == hi || n == hi,
				      "round %d (seed %u): b-%ld holds batch %ld after the "
				      "replay, the batch in the journal was %ld",
				      round, seed, i, n, hi);
		}
		ck_assert_int_eq(orchd_engine_unlock(e, err, sizeof(err)), 0);
		orchd_engine_close(e);
	}
	fprintf(stderr,
		"state: kill -9 inside a batch: %d of %d kills between two files of a batch\n",
		inside, round);
	ck_assert_msg(inside >= 3, "only %d of %d kills landed inside a batch (seed %u)", inside,
		      round, seed);
	free(helper);
	free(shim);
}
END_TEST

static void run_writer_enospc(const char *env_name, const char *env_value, char **errout)
{
	char *helper = test_build_path("tests/helpers/statewriter");
	char *shim = test_build_path("tests/shim/enospc.so");
	char a2[] = "dev-exec-db", a3[] = "once", a4[] = "2", a5[] = "20000";
	char *argv[] = {helper, sdir, a2, a3, a4, a5, NULL};
	int rc;

	ck_assert_msg(access(shim, R_OK) == 0, "missing %s", shim);
	setenv("LD_PRELOAD", shim, 1);
	setenv(env_name, env_value, 1);
	/* The shim is not sanitized; let ASan accept it in front. */
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
	rc = test_run(argv, NULL, errout);
	unsetenv("LD_PRELOAD");
	unsetenv(env_name);
	ck_assert_int_eq(rc, 3);
	free(helper);
	free(shim);
}

static void assert_still_one(struct orchd_engine *e)
{
	struct orchd_stack_record rec;
	char err[512], *sp = path_in("stacks"), *names;

	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	ck_assert_int_eq(check_whole(&rec, 100), 1);
	orchd_stack_record_release(&rec);
	names = dir_names(sp);
	ck_assert_str_eq(names, "dev-exec-db.json");
	free(names);
	free(sp);
}

START_TEST(test_enospc_shim)
{
	struct orchd_engine *e = open_engine();
	struct orchd_stack_record rec;
	char err[512], *msg, *want;

	make_record(&rec, 1, 100);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	orchd_stack_record_release(&rec);
	/* the record goes to the journal first (group commit) */
	want = xasprintf("stack dev-exec-db: cannot write %s/journal: No space left on device\n",
			 sdir);

	/* The disk fills up in the middle of the record. */
	run_writer_enospc("ORCHD_ENOSPC_AFTER", "4096", &msg);
	ck_assert_str_eq(msg, want);
	free(msg);
	assert_still_one(e);

	/* Every write succeeds but fsync reports the lost data. */
	run_writer_enospc("ORCHD_ENOSPC_FSYNC", "1", &msg);
	ck_assert_str_eq(msg, want);
	free(msg);
	assert_still_one(e);
	free(want);
	orchd_engine_close(e);
}
END_TEST

/* The disk fills up in the middle of a history line. */
START_TEST(test_enospc_history_shim)
{
	char *helper = test_build_path("tests/helpers/statewriter");
	char *shim = test_build_path("tests/shim/enospc.so");
	char a2[] = "dev-exec-db", a3[] = "history", one[] = "1", two[] = "2";
	char *argv[] = {helper, sdir, a2, a3, two, NULL};
	struct orchd_engine *e;
	struct orchd_history_entry *v;
	char err[512], *msg, *want, *file = path_in("stacks/dev-exec-db.history.jsonl");
	size_t n;
	int saved, fd;

	ck_assert_int_eq(test_run(argv, NULL, NULL), 0);
	setenv("LD_PRELOAD", shim, 1);
	setenv("ORCHD_ENOSPC_AFTER", "20", 1);
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
	argv[4] = one;
	ck_assert_int_eq(test_run(argv, NULL, &msg), 3);
	unsetenv("LD_PRELOAD");
	unsetenv("ORCHD_ENOSPC_AFTER");
	want = xasprintf("stack dev-exec-db: cannot append to %s: No space left on device\n", file);
	ck_assert_str_eq(msg, want);
	free(want);
	free(msg);

	/* The two earlier entries survive; the torn one is skipped (quietly
	 * here), and the next append works. */
	e = open_engine();
	fflush(stderr);
	saved = dup(2);
	fd = open("/dev/null", O_WRONLY);
	dup2(fd, 2);
	close(fd);
	ck_assert_int_eq(orchd_engine_history_read(e, "dev-exec-db", &v, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	orchd_history_free(v, n);
	ck_assert_int_eq(test_run(argv, NULL, NULL), 0);
	ck_assert_int_eq(orchd_engine_history_read(e, "dev-exec-db", &v, &n, err, sizeof(err)), 0);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[2].run_id, "r-1");
	orchd_history_free(v, n);
	orchd_engine_close(e);
	free(file);
	free(helper);
	free(shim);
}
END_TEST

START_TEST(test_enospc_real_tmpfs)
{
	struct orchd_engine *e;
	struct orchd_stack_record rec;
	char err[512], *fill, *want, *buf;
	int fd;

	/* In a mount namespace of this test process only, when permitted. */
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", tmp, "tmpfs", 0, "size=64k,mode=0700")) {
		fprintf(stderr, "state: skipping real tmpfs ENOSPC test: mount: %s\n",
			strerror(errno));
		return;
	}
	e = open_engine();
	make_record(&rec, 1, 100);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	orchd_stack_record_release(&rec);
	/* Fill the file system. */
	fill = xasprintf("%s/fill", tmp);
	fd = open(fill, O_WRONLY | O_CREAT, 0600);
	buf = xcalloc(1, 4096);
	while (write(fd, buf, 4096) > 0)
		;
	close(fd);
	free(buf);
	make_record(&rec, 2, 20000);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), -1);
	orchd_stack_record_release(&rec);
	/* the journal (group commit) is where the record goes first */
	want = xasprintf("stack dev-exec-db: cannot write %s/journal: No space left on device",
			 sdir);
	ck_assert_str_eq(err, want);
	free(want);
	assert_still_one(e);
	/* Space again: the next write works. */
	unlink(fill);
	free(fill);
	make_record(&rec, 3, 100);
	ck_assert_int_eq(orchd_engine_write(e, "dev-exec-db", &rec, err, sizeof(err)), 0);
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
	ck_assert_int_eq(umount(tmp), 0);
}
END_TEST

/* --- core/state -------------------------------------------------------------- */

START_TEST(test_open_and_dirs)
{
	struct orchd_pipeline p;
	struct orchd_engine *e = NULL;
	char err[512], *d, *id;
	char demo[] = "demo", f1[] = "pipeline.yaml", f2[] = "ci/pipeline.yaml";
	char sd1[] = "state", sd2[] = "/var/lib/orchd";
	regex_t re;

	memset(&p, 0, sizeof(p));
	p.name = demo;
	/* (the pulumi engine's open: tests/test_pulumi.c, with the tools) */
	p.core.engine.type = ORCHD_ENGINE_LOCAL;
	ck_assert_int_eq(orchd_state_open(&p, sdir, &e, err, sizeof(err)), 0);
	ck_assert_str_eq(e->ops->name, "local");
	ck_assert_str_eq(e->pipeline_name, "demo");
	orchd_engine_close(e);

	p.file = f1;
	d = orchd_state_dir(&p, NULL);
	ck_assert_str_eq(d, ".orchd");
	free(d);
	p.file = f2;
	d = orchd_state_dir(&p, NULL);
	ck_assert_str_eq(d, "ci/.orchd");
	free(d);
	p.core.state_dir = sd1;
	d = orchd_state_dir(&p, NULL);
	ck_assert_str_eq(d, "ci/state");
	free(d);
	p.core.state_dir = sd2;
	d = orchd_state_dir(&p, NULL);
	ck_assert_str_eq(d, "/var/lib/orchd");
	free(d);
	d = orchd_state_dir(&p, "cli-dir");
	ck_assert_str_eq(d, "cli-dir");
	free(d);

	id = orchd_run_id_new();
	ck_assert_int_eq(regcomp(&re, "^r-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$", REG_EXTENDED), 0);
	ck_assert_msg(regexec(&re, id, 0, NULL, 0) == 0, "run id %s", id);
	regfree(&re);
	free(id);
}
END_TEST

Suite *state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("engine");
	TCase *lk = tcase_create("lock");
	TCase *sec = tcase_create("secrets");
	TCase *flt = tcase_create("faults");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_missing_select_list_remove);
	tcase_add_test(tc, test_leftover_temp_file);
	tcase_add_test(tc, test_corrupt_and_version);
	tcase_add_test(tc, test_history);
	tcase_add_test(tc, test_open_and_dirs);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(lk, setup, teardown);
	tcase_add_test(lk, test_lock_wait_timeout_then_release);
	tcase_add_test(lk, test_lock_stale_takeover);
	tcase_add_test(lk, test_lock_not_inherited);
	suite_add_tcase(s, lk);

	tcase_add_checked_fixture(sec, setup, teardown);
	tcase_set_timeout(sec, 30);
	tcase_add_test(sec, test_secrets_roundtrip_and_masked);
	tcase_add_test(sec, test_secret_without_passphrase_fails_first);
	tcase_add_test(sec, test_wrong_passphrase);
	tcase_add_test(sec, test_secret_bound_to_stack_and_tamper);
	suite_add_tcase(s, sec);

	tcase_add_checked_fixture(flt, setup, teardown);
	tcase_set_timeout(flt, 60);
	tcase_add_test(flt, test_kill9_during_writes);
	tcase_add_test(flt, test_kill9_inside_batch);
	tcase_add_test(flt, test_enospc_shim);
	tcase_add_test(flt, test_enospc_history_shim);
	tcase_add_test(flt, test_enospc_real_tmpfs);
	suite_add_tcase(s, flt);
	return s;
}
