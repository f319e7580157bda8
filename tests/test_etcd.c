/*
 * The etcd state engine (interfaces/etcd.c) against a real etcd started on
 * loopback: records round-trip (a 5 MiB one in chunks), the lock is taken
 * by one engine at a time and says who holds it, a lost lease fences its
 * holder off, secrets never reach etcd in clear, and orchd runs on etcd
 * give the same outputs as on the local engine.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcdsim.h"
#include "interfaces/engine.h"
#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

static struct orchd_engine *open_etcd(const char *prefix, long ttl_ms)
{
	char *eps[] = {esim_srv.url};
	struct orchd_engine_config cfg = {.type = ORCHD_ENGINE_ETCD,
					  .endpoints = eps,
					  .nendpoints = 1,
					  .prefix = S(prefix),
					  .lock_ttl_ms = ttl_ms};
	struct orchd_engine *e = NULL;
	char err[1024];

	if (orchd_engine_open(&cfg, esim_tmp, "demo", &e, err, sizeof(err)))
		ck_abort_msg("open: %s", err);
	return e;
}

static void lock_ok(struct orchd_engine *e, const char *run)
{
	struct orchd_lock_request req = {.run_id = run, .command = "test", .timeout_ms = 0};
	char err[1024];

	ck_assert_msg(orchd_engine_lock(e, &req, err, sizeof(err)) == 0, "lock: %s", err);
}

/* Write a record n with PAD bytes of padding and a secret output. */
static int write_n(struct orchd_engine *e, const char *stack, int64_t n, size_t pad, char *err,
		   size_t errlen)
{
	struct orchd_stack_record rec;
	char *p = xmalloc(pad + 1);
	int r;

	memset(p, 'x', pad);
	p[pad] = '\0';
	orchd_stack_record_init(&rec);
	rec.state = json_object_new_object();
	json_object_object_add(rec.state, "n", json_object_new_int64(n));
	json_object_object_add(rec.state, "pad", json_object_new_string(p));
	orchd_stack_record_set_output(&rec, "n", json_object_new_int64(n), 0);
	orchd_stack_record_set_output(&rec, "token", json_object_new_string("s3cr3t-t0ken-value"),
				      1);
	rec.config_hash = xstrdup("cfg");
	r = orchd_engine_write(e, stack, &rec, err, errlen);
	orchd_stack_record_release(&rec);
	free(p);
	return r;
}

/* The n of the record stored for stack (-1: none). */
static int64_t read_n(struct orchd_engine *e, const char *stack, size_t *pad)
{
	struct orchd_stack_record rec;
	json_object *v, *o;
	char err[1024];
	int64_t n = -1;
	int r;

	orchd_stack_record_init(&rec);
	r = orchd_engine_read(e, stack, &rec, err, sizeof(err));
	ck_assert_msg(r >= 0, "read %s: %s", stack, err);
	if (r == 0) {
		ck_assert(json_object_object_get_ex(rec.state, "n", &v));
		n = json_object_get_int64(v);
		ck_assert(json_object_object_get_ex(rec.state, "pad", &v));
		if (pad)
			*pad = strlen(json_object_get_string(v));
		ck_assert(json_object_object_get_ex(rec.outputs, "n", &o));
		ck_assert(json_object_object_get_ex(o, "value", &v));
		ck_assert_int_eq(json_object_get_int64(v), n);
		ck_assert(json_object_object_get_ex(rec.outputs, "token", &o));
		ck_assert(json_object_object_get_ex(o, "value", &v));
		ck_assert_str_eq(json_object_get_string(v), "s3cr3t-t0ken-value");
	}
	orchd_stack_record_release(&rec);
	return n;
}

START_TEST(test_roundtrip_small_and_chunked)
{
	struct orchd_engine *a = open_etcd("t/rt", 0), *b;
	char err[1024], *keys, *all;
	size_t pad = 0;

	lock_ok(a, "r-1");
	ck_assert_msg(write_n(a, "dev-exec-small", 1, 100, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(write_n(a, "dev-exec-big", 2, 5u << 20, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(orchd_engine_unlock(a, err, sizeof(err)) == 0, "%s", err);
	orchd_engine_close(a);

	/* another process's view: a fresh engine */
	b = open_etcd("t/rt", 0);
	ck_assert_int_eq(read_n(b, "dev-exec-small", &pad), 1);
	ck_assert_uint_eq(pad, 100);
	ck_assert_int_eq(read_n(b, "dev-exec-big", &pad), 2);
	ck_assert_uint_eq(pad, 5u << 20);
	ck_assert_int_eq(read_n(b, "dev-exec-none", NULL), -1);

	/* 5 MiB is over etcd's request limit: stored in chunks */
	keys = esim_sh("etcdctl get --prefix t/rt/chunks/ --keys-only | grep -c .");
	ck_assert_msg(atoi(keys) >= 6, "chunks of the big record: %s", keys);
	free(keys);
	/* the secret output is sealed */
	all = esim_sh("etcdctl get --prefix t/rt/");
	ck_assert_msg(strstr(all, "dev-exec-small") && !strstr(all, "s3cr3t-t0ken-value"),
		      "secret in clear in etcd (or nothing written)");
	free(all);

	/* rewritten small: the chunks of the old one go */
	lock_ok(b, "r-2");
	ck_assert_msg(write_n(b, "dev-exec-big", 3, 10, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(orchd_engine_unlock(b, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(read_n(b, "dev-exec-big", &pad), 3);
	keys = esim_sh("etcdctl get --prefix t/rt/chunks/ --keys-only | grep -c .");
	ck_assert_msg(atoi(keys) == 0, "chunks left behind: %s", keys);
	free(keys);

	/* the lock key is gone once unlocked */
	keys = esim_sh("etcdctl get t/rt/lock --keys-only | grep -c .");
	ck_assert_int_eq(atoi(keys), 0);
	free(keys);
	orchd_engine_close(b);
}
END_TEST

START_TEST(test_wrong_passphrase)
{
	struct orchd_engine *a = open_etcd("t/pw", 0);
	struct orchd_stack_record rec;
	char err[1024];

	lock_ok(a, "r-1");
	ck_assert_msg(write_n(a, "s", 1, 1, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(orchd_engine_unlock(a, err, sizeof(err)) == 0, "%s", err);
	orchd_engine_close(a);

	setenv("ORCHD_PASSPHRASE", "not the passphrase", 1);
	a = open_etcd("t/pw", 0);
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(a, "s", &rec, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "wrong passphrase"), "%s", err);
	orchd_stack_record_release(&rec);
	orchd_engine_close(a);
}
END_TEST

START_TEST(test_lock_excludes_and_names_holder)
{
	struct orchd_engine *a = open_etcd("t/lk", 2000), *b = open_etcd("t/lk", 2000);
	struct orchd_lock_request req = {.run_id = "r-b", .timeout_ms = 500};
	char err[1024], *pid = xasprintf("pid %ld", (long)getpid());

	lock_ok(a, "r-a");
	/* held past several TTLs: the keepalive renews the lease */
	sleep(5);
	ck_assert_int_eq(orchd_engine_lock(b, &req, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "t/lk/lock") && strstr(err, pid) && strstr(err, "r-a"),
		      "holder not named: %s", err);
	ck_assert_msg(orchd_engine_unlock(a, err, sizeof(err)) == 0, "%s", err);
	lock_ok(b, "r-b");
	ck_assert_msg(orchd_engine_unlock(b, err, sizeof(err)) == 0, "%s", err);
	orchd_engine_close(a);
	orchd_engine_close(b);
	free(pid);
}
END_TEST

/* A holder whose lease is gone (revoked here; expired for a paused or
 * partitioned process) writes nothing more once another run holds the
 * lock: its writes fail on the fence, the other's stay. */
START_TEST(test_lost_lease_is_fenced)
{
	struct orchd_engine *a = open_etcd("t/fz", 2000), *b = open_etcd("t/fz", 2000);
	char err[1024], *out;

	lock_ok(a, "r-a");
	ck_assert_msg(write_n(a, "s", 1, 10, err, sizeof(err)) == 0, "%s", err);
	out = esim_sh(
		"for l in $(etcdctl lease list | tail -n +2); do etcdctl lease revoke $l; done");
	ck_assert_msg(strstr(out, "revoked"), "no lease revoked: %s", out);
	free(out);
	lock_ok(b, "r-b");
	ck_assert_msg(write_n(b, "s", 2, 10, err, sizeof(err)) == 0, "%s", err);

	ck_assert_int_eq(write_n(a, "s", 3, 10, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "lock") && strstr(err, "lost"), "%s", err);
	ck_assert_int_eq(orchd_engine_lock_check(a, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "lost"), "%s", err);
	ck_assert_int_eq(orchd_engine_unlock(a, err, sizeof(err)), -1);
	ck_assert_int_eq(read_n(b, "s", NULL), 2);
	/* a's unlock did not release b's lock */
	out = esim_sh("etcdctl get t/fz/lock --print-value-only");
	ck_assert_msg(strstr(out, "r-b"), "lock: %s", out);
	free(out);
	ck_assert_msg(orchd_engine_unlock(b, err, sizeof(err)) == 0, "%s", err);
	orchd_engine_close(a);
	orchd_engine_close(b);
}
END_TEST

START_TEST(test_history_and_list)
{
	struct orchd_engine *a = open_etcd("t/hl", 0);
	struct orchd_history_entry h = {.action = S("apply"), .status = S("succeeded")}, *hs = NULL;
	char err[1024], **names = NULL;
	size_t n = 0, i;

	lock_ok(a, "r-0");
	for (i = 0; i < 3; i++) {
		char run[16];

		snprintf(run, sizeof(run), "r-%zu", i);
		h.run_id = run;
		h.started_at = (int64_t)(1000 + i);
		ck_assert_msg(orchd_engine_history_append(a, "s1", &h, err, sizeof(err)) == 0, "%s",
			      err);
	}
	ck_assert_msg(write_n(a, "s1", 1, 1, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(write_n(a, "s2", 1, 1, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(orchd_engine_history_read(a, "s1", &hs, &n, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(hs[0].run_id, "r-0");
	ck_assert_str_eq(hs[2].run_id, "r-2");
	orchd_history_free(hs, n);
	ck_assert_msg(orchd_engine_list(a, &names, &n, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(n, 2);
	orchd_engine_names_free(names, n);
	h.run_id = S("r-rm");
	ck_assert_msg(orchd_engine_remove(a, "s2", &h, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(read_n(a, "s2", NULL), -1);
	ck_assert_msg(orchd_engine_unlock(a, err, sizeof(err)) == 0, "%s", err);
	orchd_engine_close(a);
}
END_TEST

/* ---- orchd itself on etcd ---- */

static int orchd(char **out, char **err, const char *a1, const char *a2, const char *a3,
		 const char *a4, const char *a5)
{
	char *bin = test_build_path("bin/orchd");
	char *argv[] = {bin,
			(char *)(uintptr_t)a1,
			(char *)(uintptr_t)a2,
			(char *)(uintptr_t)a3,
			(char *)(uintptr_t)a4,
			(char *)(uintptr_t)a5,
			NULL};
	int rc = test_run(argv, out, err);

	free(bin);
	return rc;
}

static const char *const same_examples[] = {
	"examples/hello/pipeline.yaml",
	"examples/secrets/pipeline.yaml",
	"examples/terraform/pipeline.yaml",
};

static json_object *outputs_json(const char *file, const char *state)
{
	char *out = NULL, *err = NULL;
	json_object *o;
	int rc = orchd(&out, &err, "outputs", file, "--state-dir", state, "--json");

	ck_assert_msg(rc == 0, "outputs %s: %d\n%s", file, rc, err);
	o = json_tokener_parse(out);
	ck_assert_msg(o, "not JSON: %s", out);
	/* hello's clock says when it ran */
	json_object_object_foreach(o, id, outs)
	{
		(void)id;
		json_object_object_del(outs, "now");
	}
	free(out);
	free(err);
	return o;
}

START_TEST(test_examples_same_outputs_as_local)
{
	char *src = test_src_path(same_examples[_i]), *variant, *engine, *err = NULL;
	char *local = xasprintf("%s/local", esim_tmp), *st = xasprintf("%s/etcd", esim_tmp), *keys;
	json_object *a, *b;
	int rc;

	setenv("DEMO_TOKEN", "demo-token-for-tests", 1);
	engine = xasprintf("{type: etcd, endpoints: [%s], prefix: ex/%d}", esim_srv.url, _i);
	variant = test_engine_variant(src, engine);
	rc = orchd(NULL, &err, "run", src, "--state-dir", local, "-q");
	ck_assert_msg(rc == 0, "%s on local: %d\n%s", src, rc, err);
	free(err);
	rc = orchd(NULL, &err, "run", variant, "--state-dir", st, "-q");
	ck_assert_msg(rc == 0, "%s on etcd: %d\n%s", src, rc, err);
	free(err);
	a = outputs_json(src, local);
	b = outputs_json(variant, st);
	ck_assert_msg(json_object_equal(a, b), "%s: outputs differ\nlocal: %s\netcd:  %s", src,
		      json_object_to_json_string(a), json_object_to_json_string(b));
	json_object_put(a);
	json_object_put(b);
	keys = esim_sh("etcdctl get --prefix ex/%d/stacks/ --keys-only | grep -c .", _i);
	ck_assert_msg(atoi(keys) >= 1, "no stack in etcd: %s", keys);
	free(keys);
	/* the state read back from etcd plans what the local one plans */
	{
		int rl =
			orchd(NULL, NULL, "plan", src, "--state-dir", local, "--detailed-exitcode");

		rc = orchd(NULL, &err, "plan", variant, "--state-dir", st, "--detailed-exitcode");
		ck_assert_msg(rc == rl && (rc == 0 || rc == 2),
			      "%s: plan after run: %d on etcd, %d on local\n%s", src, rc, rl, err);
		free(err);
	}
	rc = orchd(NULL, &err, "destroy", variant, "--state-dir", st, "-q");
	ck_assert_msg(rc == 0, "destroy on etcd: %d\n%s", rc, err);
	free(err);
	rc = orchd(NULL, &err, "destroy", src, "--state-dir", local, "-q");
	ck_assert_msg(rc == 0, "destroy on local: %d\n%s", rc, err);
	free(err);
	unlink(variant);
	free(variant);
	free(engine);
	free(local);
	free(st);
	free(src);
	unsetenv("DEMO_TOKEN");
}
END_TEST

static char *write_pipeline(const char *name, const char *engine, const char *body)
{
	char *path = xasprintf("%s/%s.yaml", esim_tmp, name);
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s:\n  core:\n    engine: %s\n%s", name, engine, body);
	fclose(f);
	return path;
}

/* The lease is lost while a step runs: the run starts nothing more (not
 * even an independent step that --keep-going would start, one at a time
 * with -j1) and exits 3 naming the lock; its step's result is not
 * written. */
START_TEST(test_run_stops_when_lease_lost)
{
	char *engine =
		xasprintf("{type: etcd, endpoints: [%s], prefix: ll, lock_ttl: 2s}", esim_srv.url);
	char *file =
		write_pipeline("ll", engine,
			       "  exec:\n"
			       "    - name: slow\n"
			       "      command: [sh, -c, 'sleep 4; echo v=1 >> \"$ORCHD_OUTPUT\"']\n"
			       "    - name: after\n"
			       "      command: [sh, -c, 'echo v=2 >> \"$ORCHD_OUTPUT\"']\n");
	char *st = xasprintf("%s/st", esim_tmp), *bin = test_build_path("bin/orchd"), *out;
	char *argv[] = {bin, S("run"), file, S("--state-dir"), st, S("-j1"), S("-k"), NULL};
	char *err = NULL;
	pid_t pid;
	int status;

	err = xasprintf("%s/run.err", esim_tmp);
	pid = esim_spawn_bg(argv, err);
	free(err);
	esim_wait_key("ll/lock");
	out = esim_sh(
		"for l in $(etcdctl lease list | tail -n +2); do etcdctl lease revoke $l; done");
	free(out);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	err = xasprintf("%s/run.err", esim_tmp);
	out = test_read_file(err, NULL);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 3, "status %d: %s", status, out);
	ck_assert_msg(strstr(out, "ll/lock") && strstr(out, "lost"), "%s", out);
	ck_assert_msg(strstr(out, "starting nothing more") && !strstr(out, "[exec.after] running"),
		      "a step started after the lock was lost: %s", out);
	free(out);
	free(err);
	out = esim_sh("etcdctl get --prefix ll/stacks/ --keys-only");
	ck_assert_msg(!strstr(out, "after"), "'after' ran without the lock: %s", out);
	free(out);
	free(bin);
	free(st);
	free(file);
	free(engine);
}
END_TEST

START_TEST(test_second_run_waits_then_fails)
{
	char *engine = xasprintf("{type: etcd, endpoints: [%s], prefix: cr}", esim_srv.url);
	char *file = write_pipeline("cr", engine,
				    "  exec:\n"
				    "    - name: slow\n"
				    "      command: [sh, -c, 'sleep 3']\n");
	char *st = xasprintf("%s/st", esim_tmp), *bin = test_build_path("bin/orchd"), *err = NULL;
	char *argv[] = {bin, S("run"), file, S("--state-dir"), st, S("-q"), NULL};
	pid_t pid;
	int rc, status;

	pid = esim_spawn_bg(argv, NULL);
	esim_wait_key("cr/lock");
	/* another machine's state dir: only etcd is shared */
	rc = orchd(NULL, &err, "run", file, "--state-dir", esim_tmp, "--lock-timeout=500ms");
	ck_assert_msg(rc == 3, "rc=%d: %s", rc, err);
	ck_assert_msg(strstr(err, "cr/lock") && strstr(err, "locked by pid"), "%s", err);
	free(err);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "first run: %d", status);
	/* and with the lock free, a run goes */
	rc = orchd(NULL, &err, "run", file, "--state-dir", esim_tmp, "-q");
	ck_assert_msg(rc == 0, "rc=%d: %s", rc, err);
	free(err);
	free(bin);
	free(st);
	free(file);
	free(engine);
}
END_TEST

START_TEST(test_unreachable_endpoint)
{
	int port = test_free_port();
	char *engine = xasprintf("{type: etcd, endpoints: ['http://127.0.0.1:%d']}", port);
	char *file = write_pipeline("ur", engine,
				    "  exec:\n"
				    "    - name: a\n"
				    "      command: [\"true\"]\n");
	char *err = NULL, *url = xasprintf("127.0.0.1:%d", port);
	int rc = orchd(NULL, &err, "run", file, "--state-dir", esim_tmp, "-q");

	ck_assert_msg(rc == 3, "rc=%d: %s", rc, err);
	ck_assert_msg(strstr(err, url), "endpoint not named: %s", err);
	free(err);
	/* ORCHD_ETCD_ENDPOINTS replaces the file's endpoints */
	setenv("ORCHD_ETCD_ENDPOINTS", esim_srv.url, 1);
	rc = orchd(NULL, &err, "run", file, "--state-dir", esim_tmp, "-q");
	unsetenv("ORCHD_ETCD_ENDPOINTS");
	ck_assert_msg(rc == 0, "rc=%d: %s", rc, err);
	free(err);
	free(url);
	free(file);
	free(engine);
}
END_TEST

/* 500 instances, 8 at a time: the scheduler's state workers defer and
 * sync records concurrently, and every record is stored (each worker's sync
 * writes its own; a sync once dropped what other workers had deferred). */
START_TEST(test_many_instances_all_stored)
{
	char *engine = xasprintf("{type: etcd, endpoints: [%s], prefix: many}", esim_srv.url);
	struct op_buf body = OP_BUF_INIT;
	char *file, *err = NULL, *out, *st = xasprintf("%s/st", esim_tmp);
	int rc;

	op_buf_add(&body, "  exec:\n", 8);
	for (int i = 0; i < 500; i++) {
		char line[96];
		int n = snprintf(line, sizeof(line),
				 "    - name: t%d\n      command: [/bin/true]\n", i);

		op_buf_add(&body, line, (size_t)n);
	}
	op_buf_add(&body, "", 1);
	file = write_pipeline("many", engine, body.buf);
	rc = orchd(NULL, &err, "run", file, "--state-dir", st, "-j8");
	ck_assert_msg(rc == 0, "run: %d %s", rc, err);
	free(err);
	out = esim_sh("etcdctl get --prefix many/stacks/ --keys-only | grep -c .");
	ck_assert_msg(atoi(out) == 500, "records in etcd after a successful run: %s", out);
	free(out);
	out = esim_sh("etcdctl get --prefix many/history/ --keys-only | grep -c .");
	ck_assert_msg(atoi(out) == 500, "history entries: %s", out);
	free(out);
	op_buf_release(&body);
	free(file);
	free(st);
	free(engine);
}
END_TEST

/* etcd restarted while a step runs: the run's requests wait for it (and
 * its lease survives a short outage), the run completes, both records are
 * there. */
START_TEST(test_etcd_restart_mid_run)
{
	char *engine = xasprintf("{type: etcd, endpoints: [%s], prefix: rs}", esim_srv.url);
	char *file =
		write_pipeline("rs", engine,
			       "  exec:\n"
			       "    - name: slow\n"
			       "      command: [sh, -c, 'sleep 3; echo v=1 >> \"$ORCHD_OUTPUT\"']\n"
			       "    - name: after\n"
			       "      depends_on: [slow]\n"
			       "      command: [sh, -c, 'echo v=2 >> \"$ORCHD_OUTPUT\"']\n");
	char *st = xasprintf("%s/st", esim_tmp), *bin = test_build_path("bin/orchd"), *out, *errf;
	char *argv[] = {bin, S("run"), file, S("--state-dir"), st, NULL};
	pid_t pid;
	int rc, status;

	errf = xasprintf("%s/run.err", esim_tmp);
	pid = esim_spawn_bg(argv, errf);
	esim_wait_key("rs/lock");
	/* down for about a second while 'slow' runs, then back on the same
	 * data and port */
	esim_etcd_kill(&esim_srv);
	sleep(1);
	esim_etcd_spawn(&esim_srv);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	out = test_read_file(errf, NULL);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, out);
	free(out);
	out = esim_sh("etcdctl get --prefix rs/stacks/ --keys-only | grep -c .");
	ck_assert_msg(atoi(out) == 2, "records after the restart: %s", out);
	free(out);
	/* both outputs stored */
	rc = orchd(&out, NULL, "outputs", file, "--state-dir", st, "--json");
	ck_assert_msg(rc == 0 && strstr(out, "\"exec.slow\"") && strstr(out, "\"exec.after\""),
		      "outputs after the run: %d\n%s", rc, out);
	free(out);
	free(errf);
	free(bin);
	free(st);
	free(file);
	free(engine);
}
END_TEST

/* etcd with user authentication: the right password (from a file named
 * relative to the pipeline) works, a wrong one and none fail clearly. */
START_TEST(test_auth)
{
	char *engine = xasprintf("{type: etcd, endpoints: [%s], prefix: orchd/au, "
				 "auth: {user: orchd, password_file: pw.txt}}",
				 esim_srv.url);
	char *noauth = xasprintf("{type: etcd, endpoints: [%s], prefix: orchd/au}", esim_srv.url);
	const char *body = "  exec:\n"
			   "    - name: a\n"
			   "      command: [sh, -c, 'echo v=1 >> \"$ORCHD_OUTPUT\"']\n";
	char *file = write_pipeline("au", engine, body),
	     *file2 = write_pipeline("au2", noauth, body);
	char *pw = xasprintf("%s/pw.txt", esim_tmp), *out, *err = NULL;
	FILE *f;
	int rc;

	out = esim_sh(
		"set -e; exec 2>&1; etcdctl user add root --new-user-password=rootpw >/dev/null;"
		"etcdctl user grant-role root root >/dev/null;"
		"etcdctl role add orchd >/dev/null;"
		"etcdctl role grant-permission orchd --prefix=true readwrite orchd/au/ >/dev/null;"
		"etcdctl user add orchd --new-user-password=Good-Pass >/dev/null;"
		"etcdctl user grant-role orchd orchd >/dev/null;"
		"etcdctl auth enable >/dev/null; echo ok");
	ck_assert_msg(!strcmp(out, "ok\n"), "etcd auth setup: %s", out);
	free(out);
	f = fopen(pw, "w");
	ck_assert_ptr_nonnull(f);
	fputs("Good-Pass\n", f);
	fclose(f);

	rc = orchd(NULL, &err, "run", file, "--state-dir", esim_tmp, "-q");
	ck_assert_msg(rc == 0, "with the password: rc=%d: %s", rc, err);
	free(err);
	rc = orchd(&out, &err, "outputs", file, "--state-dir", esim_tmp, "--json");
	ck_assert_msg(rc == 0 && strstr(out, "\"v\""), "outputs: %d %s %s", rc, out, err);
	free(out);
	free(err);

	setenv("ORCHD_ETCD_PASSWORD", "wrong", 1);
	rc = orchd(NULL, &err, "run", file, "--state-dir", esim_tmp, "-q");
	unsetenv("ORCHD_ETCD_PASSWORD");
	ck_assert_msg(rc == 3, "wrong password: rc=%d: %s", rc, err);
	ck_assert_msg(strstr(err, "authentication failed") && strstr(err, esim_srv.url), "%s", err);
	free(err);

	rc = orchd(NULL, &err, "run", file2, "--state-dir", esim_tmp, "-q");
	ck_assert_msg(rc == 3, "no auth: rc=%d: %s", rc, err);
	ck_assert_msg(strstr(err, "core.engine.auth"), "no hint at auth: %s", err);
	free(err);
	free(pw);
	free(file);
	free(file2);
	free(engine);
	free(noauth);
}
END_TEST

/* etcd over TLS with client certificates: certificates named relative to
 * the pipeline work; without the CA, or without a client certificate, the
 * run fails at once (no 30 s of retries), naming the endpoint. */
START_TEST(test_tls)
{
	char *engine, *file, *err = NULL;
	long long t0;
	int rc;

	esim_etcd_start(&esim_srv, 1);
	engine = xasprintf("%s/certs", esim_tmp);
	ck_assert_msg(symlink(esim_srv.tls, engine) == 0, "symlink: %s", strerror(errno));
	free(engine);
	engine = xasprintf("{type: etcd, endpoints: [%s], tls: {ca: certs/ca.pem, cert: "
			   "certs/client.pem, key: certs/client.key}}",
			   esim_srv.url);
	file = write_pipeline("tl", engine,
			      "  exec:\n"
			      "    - name: a\n"
			      "      command: [sh, -c, 'echo v=1 >> \"$ORCHD_OUTPUT\"']\n");
	rc = orchd(NULL, &err, "run", file, "--state-dir", esim_tmp, "-q");
	ck_assert_msg(rc == 0, "with certificates: rc=%d: %s", rc, err);
	free(err);
	free(engine);
	free(file);

	/* no CA: the server's certificate is not trusted */
	engine = xasprintf("{type: etcd, endpoints: [%s]}", esim_srv.url);
	file = write_pipeline("tl2", engine,
			      "  exec:\n"
			      "    - name: a\n"
			      "      command: [\"true\"]\n");
	t0 = (long long)time(NULL);
	rc = orchd(NULL, &err, "run", file, "--state-dir", esim_tmp, "-q");
	ck_assert_msg(rc == 3, "no CA: rc=%d: %s", rc, err);
	ck_assert_msg(strstr(err, esim_srv.url) && strstr(err, "certificate"), "%s", err);
	ck_assert_msg((long long)time(NULL) - t0 < 20, "a certificate error was retried");
	free(err);
	free(engine);
	free(file);

	/* the CA, no client certificate: the server refuses */
	engine = xasprintf("{type: etcd, endpoints: [%s], tls: {ca: certs/ca.pem}}", esim_srv.url);
	file = write_pipeline("tl3", engine,
			      "  exec:\n"
			      "    - name: a\n"
			      "      command: [\"true\"]\n");
	t0 = (long long)time(NULL);
	rc = orchd(NULL, &err, "run", file, "--state-dir", esim_tmp, "-q");
	ck_assert_msg(rc == 3, "no client certificate: rc=%d: %s", rc, err);
	ck_assert_msg(strstr(err, esim_srv.url), "%s", err);
	ck_assert_msg((long long)time(NULL) - t0 < 20, "a refused handshake was retried: %s", err);
	free(err);
	free(engine);
	free(file);
}
END_TEST

static int lock_held(void)
{
	char *out = esim_sh("etcdctl get hs/lock --keys-only | grep -c .");
	int n = atoi(out);

	free(out);
	return n;
}

/*
 * Host a runs the pipeline; host b's run fails at once on the lock, naming
 * a.  a's link is cut while its step runs: its lease expires, b (waiting
 * with --lock-timeout) takes the lock and runs everything.  When a's link
 * comes back, a has stopped with "lost" and wrote nothing over b's state.
 */
START_TEST(test_hosts_contend_and_partition)
{
	static const char body[] =
		"  exec:\n"
		"    - name: slow\n"
		"      command: [sh, -c, 'sleep 6; echo who=%s >> \"$ORCHD_OUTPUT\"']\n"
		"    - name: after\n"
		"      depends_on: [slow]\n"
		"      command: [sh, -c, 'echo who=%s >> \"$ORCHD_OUTPUT\"']\n";
	char *engine =
		xasprintf("{type: etcd, endpoints: [%s], prefix: hs, lock_ttl: 2s}", esim_srv.url);
	char *files[2], *logs[2], *sts[2], *out;
	const char *who[2] = {"a", "b"};
	int i, rc;

	if (geteuid() != 0) {
		fprintf(stderr, "etcd hosts: network namespaces need root; not run\n");
		free(engine);
		return;
	}
	for (i = 0; i < 2; i++) {
		char *b = xasprintf(body, who[i], who[i]), *name = xasprintf("hs-%s", who[i]);
		char *fixed;

		/* one pipeline name, two hosts' copies of it */
		files[i] = write_pipeline(name, engine, b);
		fixed = esim_sh("sed -i '1s/.*/hs:/' '%s' && echo ok", files[i]);
		ck_assert_str_eq(fixed, "ok\n");
		free(fixed);
		logs[i] = xasprintf("%s/%s.log", esim_tmp, name);
		sts[i] = xasprintf("%s/state-%s", esim_tmp, who[i]);
		free(b);
		free(name);
	}

	esim_host_orchd(&esim_hosts[0], logs[0],
			(const char *const[]){"run", files[0], "--state-dir", sts[0], NULL});
	for (i = 0; i < 200 && !lock_held(); i++)
		usleep(50000);
	ck_assert_msg(i < 200, "host a never took the lock");

	/* b, over its own link: the lock is a's */
	esim_host_orchd(&esim_hosts[1], logs[1],
			(const char *const[]){"run", files[1], "--state-dir", sts[1],
					      "--lock-timeout=500ms", NULL});
	rc = esim_host_wait(&esim_hosts[1]);
	out = test_read_file(logs[1], NULL);
	ck_assert_msg(rc == 3 && strstr(out, "hs/lock is locked by pid"), "b: %d %s", rc, out);
	free(out);

	/* a is cut off; b waits for the lock */
	out = esim_sh("ip link set %s down && echo ok", esim_hosts[0].veth);
	ck_assert_str_eq(out, "ok\n");
	free(out);
	esim_host_orchd(&esim_hosts[1], logs[1],
			(const char *const[]){"run", files[1], "--state-dir", sts[1],
					      "--lock-timeout=60s", NULL});
	rc = esim_host_wait(&esim_hosts[1]);
	out = test_read_file(logs[1], NULL);
	ck_assert_msg(rc == 0, "b after a's lease expired: %d %s", rc, out);
	free(out);

	/* a's link comes back: a has lost, and says so */
	out = esim_sh("ip link set %s up && echo ok", esim_hosts[0].veth);
	ck_assert_str_eq(out, "ok\n");
	free(out);
	rc = esim_host_wait(&esim_hosts[0]);
	out = test_read_file(logs[0], NULL);
	ck_assert_msg(rc == 3 && strstr(out, "hs/lock") && strstr(out, "lost"), "a: %d %s", rc,
		      out);
	free(out);

	/* the state is b's, whole */
	for (i = 0; i < 2; i++) {
		const char *stack = i ? "hs/stacks/dev-exec-after" : "hs/stacks/dev-exec-slow";

		out = esim_sh("etcdctl get %s --print-value-only", stack);
		ck_assert_msg(strstr(out, "\"who\"") && strstr(out, "\"b\"") &&
				      !strstr(out, "\"a\""),
			      "%s: %s", stack, out);
		free(out);
	}
	rc = orchd(&out, NULL, "outputs", files[1], "--state-dir", sts[1], "--json");
	ck_assert_msg(rc == 0 && strstr(out, "\"exec.after\""), "outputs after: %d %s", rc, out);
	free(out);
	for (i = 0; i < 2; i++) {
		free(files[i]);
		free(logs[i]);
		free(sts[i]);
	}
	free(engine);
}
END_TEST

/* ---- configuration: no server needed ---- */

struct bad_cfg {
	const char *engine;
	const char *msg;
};

static const struct bad_cfg bad_cfgs[] = {
	{"{type: etcd}", "needs endpoints"},
	{"{type: etcd, endpoints: []}", "at least one"},
	{"{type: local, endpoints: [http://x:1]}", "etcd"},
	{"{type: etcd, endpoints: [http://x:1], lock_ttl: 1s}", "lock_ttl"},
	{"{type: etcd, endpoints: [http://x:1], prefix: /abs}", "prefix"},
	{"{type: etcd, endpoints: [http://x:1], tls: {cert: /c}}", "key"},
	{"{type: etcd, endpoints: [http://x:1], auth: {password_file: /p}}", "user"},
	{"{type: etcd, endpoints: [http://x:1], bogus: 1}", "bogus"},
};

START_TEST(test_bad_engine_config)
{
	char *dir = test_tmpdir(), *path = xasprintf("%s/p.yaml", dir), *err = NULL;
	FILE *f = fopen(path, "w");
	int rc;

	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"p:\n  core:\n    engine: %s\n  exec:\n    - name: a\n      command: [\"true\"]\n",
		bad_cfgs[_i].engine);
	fclose(f);
	unsetenv("ORCHD_ETCD_ENDPOINTS");
	rc = orchd(NULL, &err, "validate", path, NULL, NULL, NULL);
	ck_assert_msg(rc == 2, "%s: rc=%d: %s", bad_cfgs[_i].engine, rc, err);
	ck_assert_msg(strstr(err, "p.yaml:3:") && strstr(err, bad_cfgs[_i].msg),
		      "%s: no position or '%s' in: %s", bad_cfgs[_i].engine, bad_cfgs[_i].msg, err);
	free(err);
	free(path);
	test_rmtree(dir);
	free(dir);
}
END_TEST

Suite *etcd_suite(void)
{
	Suite *s = suite_create("etcd");
	TCase *tc = tcase_create("engine");
	TCase *cli = tcase_create("cli");
	TCase *cfg = tcase_create("config");
	TCase *tls = tcase_create("tls");
	TCase *hs = tcase_create("hosts");

	/* a real etcd (make tools): left out by make check-fast */
	tcase_set_tags(tc, "tools");
	tcase_set_tags(cli, "tools");
	tcase_set_tags(tls, "tools");
	tcase_add_checked_fixture(tls, esim_setup_bare, esim_teardown);
	tcase_set_timeout(tls, 120);
	tcase_set_tags(hs, "tools");
	tcase_add_checked_fixture(hs, esim_hosts_setup, esim_hosts_teardown);
	tcase_set_timeout(hs, 180);
	tcase_add_checked_fixture(tc, esim_setup, esim_teardown);
	tcase_add_checked_fixture(cli, esim_setup, esim_teardown);
	tcase_set_timeout(tc, 120);
	tcase_set_timeout(cli, 300);
	tcase_add_test(tc, test_roundtrip_small_and_chunked);
	tcase_add_test(tc, test_wrong_passphrase);
	tcase_add_test(tc, test_lock_excludes_and_names_holder);
	tcase_add_test(tc, test_lost_lease_is_fenced);
	tcase_add_test(tc, test_history_and_list);
	tcase_add_loop_test(cli, test_examples_same_outputs_as_local, 0,
			    (int)ARRAY_SIZE(same_examples));
	tcase_add_test(cli, test_run_stops_when_lease_lost);
	tcase_add_test(cli, test_second_run_waits_then_fails);
	tcase_add_test(cli, test_unreachable_endpoint);
	tcase_add_test(cli, test_etcd_restart_mid_run);
	tcase_add_test(cli, test_many_instances_all_stored);
	tcase_add_test(cli, test_auth);
	tcase_add_test(tls, test_tls);
	tcase_add_test(hs, test_hosts_contend_and_partition);
	tcase_add_loop_test(cfg, test_bad_engine_config, 0, (int)ARRAY_SIZE(bad_cfgs));
	suite_add_tcase(s, tc);
	suite_add_tcase(s, cli);
	suite_add_tcase(s, tls);
	suite_add_tcase(s, hs);
	suite_add_tcase(s, cfg);
	return s;
}
