/*
 * `orchd run --workers` and `orchd worker` (handlers/remote.c,
 * core/agent.c) on a real etcd: the steps run on workers, in dependency
 * order, with the outputs and stack records a single-host run leaves; a
 * job's body is sealed in etcd; an interrupt withdraws the jobs; runs_on
 * picks the worker.  On simulated hosts (network namespaces, root only):
 * three workers run a 200-instance DAG while one is killed with SIGKILL
 * mid-step, and a worker cut off by `ip link set down` is taken over, its
 * late result refused by the fencing token.
 */
#include <check.h>
#include <json-c/json.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcdsim.h"
#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

#define MAX_WORKERS 4

static char *claim_holder(const char *prefix, const char *id);
static char *ran_on(const char *text, const char *id);
static int history_count(const char *prefix, const char *stack);

static pid_t workers[MAX_WORKERS];
static char *wlogs[MAX_WORKERS];

static void setup(void)
{
	esim_setup();
	esim_guard_start();
	esim_guard("pid", NULL, esim_srv.pid);
}

static void stop_workers(void)
{
	for (int i = 0; i < MAX_WORKERS; i++) {
		if (workers[i] > 0) {
			kill(workers[i], SIGKILL);
			waitpid(workers[i], NULL, 0);
			esim_guard("unpid", NULL, workers[i]);
		}
		workers[i] = 0;
		free(wlogs[i]);
		wlogs[i] = NULL;
	}
}

static void teardown(void)
{
	stop_workers();
	esim_guard("unpid", NULL, esim_srv.pid);
	esim_teardown();
	esim_guard_stop();
}

/* Worker i on this host, for prefix, with labels (NULL: none). */
static void worker_start(int i, const char *prefix, const char *labels)
{
	char *bin = test_build_path("bin/orchd"), *name = xasprintf("w%d", i);
	char *const argv[] = {bin,
			      S("worker"),
			      S("--endpoints"),
			      esim_srv.url,
			      S("--prefix"),
			      S(prefix),
			      S("--name"),
			      name,
			      S("-j2"),
			      S("--lease-ttl"),
			      S("2s"),
			      S("-v"),
			      S("--labels"),
			      S(labels ? labels : "any=yes"),
			      NULL};

	wlogs[i] = xasprintf("%s/w%d.log", esim_tmp, i);
	workers[i] = esim_spawn_bg(argv, wlogs[i]);
	esim_guard("pid", NULL, workers[i]);
	free(bin);
	free(name);
}

/* Wait until n workers are registered under prefix. */
static void workers_wait(const char *prefix, int n)
{
	int i;

	for (i = 0; i < 200; i++) {
		char *out = esim_sh("etcdctl get --prefix %swork/workers/ --keys-only | grep -c .",
				    prefix);
		int got = atoi(out);

		free(out);
		if (got >= n)
			break;
		usleep(50000);
	}
	ck_assert_msg(i < 200, "fewer than %d workers registered", n);
}

static int orchd(char **out, char **err, const char *const *args)
{
	char *bin = test_build_path("bin/orchd");
	char *argv[24];
	int n = 0, rc;

	argv[n++] = bin;
	for (; *args && n < 23; args++)
		argv[n++] = S(*args);
	argv[n] = NULL;
	rc = test_run(argv, out, err);
	free(bin);
	return rc;
}

/*
 * A layered DAG of exec steps: layer l's step k depends on layer l-1's
 * step k, and reads the output v of layer l-1's step k+1 (a reference,
 * hence a second edge).  Each step appends "ID" to DIR/starts; slow_id
 * (NULL: none) sleeps slow_s seconds first.
 */
static char *dag_body(int layers, int width, const char *dir, const char *slow_id, int slow_s,
		      const char *east_id)
{
	struct op_buf b = OP_BUF_INIT;
	char line[1024];

	op_buf_add(&b, "  exec:\n", 8);
	for (int l = 0; l < layers; l++)
		for (int k = 0; k < width; k++) {
			char id[32], up[128] = "0", deps[64] = "", slow[64] = "";

			snprintf(id, sizeof(id), "s%d_%d", l, k);
			if (l) {
				snprintf(up, sizeof(up), "${{ exec.s%d_%d.outputs.v }}", l - 1,
					 (k + 1) % width);
				snprintf(deps, sizeof(deps), "      depends_on: [s%d_%d]\n", l - 1,
					 k);
			}
			if (slow_id && !strcmp(slow_id, id))
				snprintf(slow, sizeof(slow), "sleep %d; ", slow_s);
			snprintf(line, sizeof(line),
				 "    - name: %s\n%s%s"
				 "      command: [sh, -c, 'echo %s >> %s/starts; %secho "
				 "v=$(( (%s * 7 + %d) %% 100003 )) >> \"$ORCHD_OUTPUT\"']\n",
				 id, deps,
				 east_id && !strcmp(east_id, id)
					 ? "      execution: {runs_on: {zone: east}}\n"
					 : "",
				 id, dir, slow, up, l * 1000 + k);
			op_buf_add(&b, line, strlen(line));
		}
	return op_buf_detach(&b, NULL);
}

/* The end of a long text, for a failure message (Check's are bounded). */
static const char *tail(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return !s ? "" : n > 2000 ? s + n - 2000 : s;
}

/* The worker a console text says ran id's step ("w1"), or NULL. */
static char *ran_on(const char *text, const char *id)
{
	char *head = xasprintf("[%s]", id);
	const char *p = text;
	char *who = NULL;

	while (p && *p && !who) {
		const char *eol = strchr(p, '\n'), *m;
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (!strncmp(p, head, strlen(head)) && (m = strstr(p, " ran on worker ")) &&
		    m < p + len) {
			m += strlen(" ran on worker ");
			who = xstrndup(m, strcspn(m, "\n "));
		}
		p = eol ? eol + 1 : NULL;
	}
	free(head);
	return who;
}

static char *write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", esim_tmp, name);
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* How many lines of file are exactly line. */
static int count_lines(const char *file, const char *line)
{
	char *text = test_read_file(file, NULL), *save = NULL;
	int n = 0;

	if (!text)
		return 0;
	for (char *t = strtok_r(text, "\n", &save); t; t = strtok_r(NULL, "\n", &save))
		n += !strcmp(t, line);
	free(text);
	return n;
}

static json_object *outputs_json(const char *file, const char *state)
{
	char *out = NULL, *err = NULL;
	json_object *o;
	int rc =
		orchd(&out, &err,
		      (const char *const[]){"outputs", file, "--state-dir", state, "--json", NULL});

	ck_assert_msg(rc == 0, "outputs %s: %d\n%s", file, rc, err);
	o = json_tokener_parse(out);
	ck_assert_msg(o, "not JSON: %s", out);
	free(out);
	free(err);
	return o;
}

/* The fields of a stored record that a run decides (not when it ran). */
static json_object *record_core(const char *text)
{
	json_object *o = json_tokener_parse(text), *c = json_object_new_object(), *v;
	static const char *const keep[] = {"stack", "state", "outputs", "config_hash",
					   "inputs_hash"};

	ck_assert_msg(o, "not a record: %.200s", text);
	for (size_t i = 0; i < ARRAY_SIZE(keep); i++)
		if (json_object_object_get_ex(o, keep[i], &v))
			json_object_object_add(c, keep[i], json_object_get(v));
	json_object_put(o);
	return c;
}

/* The work keys left under prefix other than the workers' registrations. */
static int work_leftovers(const char *prefix)
{
	char *out = esim_sh("etcdctl get --prefix %swork/ --keys-only | grep . | grep -vc "
			    "'/work/workers/'",
			    prefix);
	int n = atoi(out);

	free(out);
	return n;
}

/*
 * Three workers (one with zone=east) run a 40-step DAG started by
 * core.execution.workers: every step ran on a worker (the east one where
 * runs_on says so, more than one worker in all), and the outputs and the
 * stack records in etcd are those a single-host run on the local engine
 * leaves.  No job, claim, result or line is left in etcd.
 */
START_TEST(test_workers_same_state_as_single_host)
{
	char *dir = xasprintf("%s/runs", esim_tmp), *body, *text, *fw, *fl, *err = NULL;
	char *st_w = xasprintf("%s/st-w", esim_tmp), *st_l = xasprintf("%s/st-l", esim_tmp);
	json_object *a, *b;
	int rc, used = 0;

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	body = dag_body(8, 5, dir, NULL, 0, "s3_2");
	text = xasprintf("dag:\n  core:\n    engine: {type: etcd, endpoints: [%s], prefix: "
			 "dag/}\n    execution: {workers: true}\n    isolation: {paths: {write: "
			 "[%s]}}\n%s",
			 esim_srv.url, dir, body);
	fw = write_file("dag-w.yaml", text);
	free(text);
	text = xasprintf("dag:\n  core:\n    isolation: {paths: {write: [%s]}}\n%s", dir, body);
	fl = write_file("dag-l.yaml", text);
	free(text);
	worker_start(0, "dag/", NULL);
	worker_start(1, "dag/", NULL);
	worker_start(2, "dag/", "zone=east");
	workers_wait("dag/", 3);

	rc = orchd(NULL, &err, (const char *const[]){"run", fw, "--state-dir", st_w, NULL});
	ck_assert_msg(rc == 0, "run on workers: %d\n%s", rc, tail(err));
	for (int l = 0; l < 8; l++)
		for (int k = 0; k < 5; k++) {
			char *want = xasprintf("[exec.s%d_%d] apply ran on worker w", l, k);

			ck_assert_msg(strstr(err, want), "%s: not on a worker\n%s", want,
				      tail(err));
			free(want);
		}
	ck_assert_msg(strstr(err, "[exec.s3_2] apply ran on worker w2"),
		      "runs_on zone=east: not on w2\n%s", tail(err));
	for (int i = 0; i < 3; i++) {
		char *want = xasprintf("ran on worker w%d\n", i);

		used += strstr(err, want) != NULL;
		free(want);
	}
	ck_assert_msg(used >= 2, "one worker ran everything\n%s", tail(err));
	free(err);
	ck_assert_int_eq(work_leftovers("dag/"), 0);

	rc = orchd(NULL, &err, (const char *const[]){"run", fl, "--state-dir", st_l, "-q", NULL});
	ck_assert_msg(rc == 0, "run here: %d\n%s", rc, err);
	free(err);
	a = outputs_json(fw, st_w);
	b = outputs_json(fl, st_l);
	ck_assert_msg(json_object_equal(a, b), "outputs differ\nworkers: %s\nhere: %s",
		      json_object_to_json_string(a), json_object_to_json_string(b));
	json_object_put(a);
	json_object_put(b);
	for (int l = 0; l < 8; l++)
		for (int k = 0; k < 5; k++) {
			char *path = xasprintf("%s/stacks/dev-exec-s%d_%d.json", st_l, l, k);
			char *local = test_read_file(path, NULL);
			char *remote = esim_sh("etcdctl get dag/stacks/dev-exec-s%d_%d "
					       "--print-value-only",
					       l, k);

			ck_assert_msg(local, "no %s", path);
			a = record_core(local);
			b = record_core(remote);
			ck_assert_msg(json_object_equal(a, b), "s%d_%d: %s vs %s", l, k,
				      json_object_to_json_string(a), json_object_to_json_string(b));
			json_object_put(a);
			json_object_put(b);
			free(path);
			free(local);
			free(remote);
		}
	free(body);
	free(fw);
	free(fl);
	free(st_w);
	free(st_l);
	free(dir);
}
END_TEST

/*
 * With a passphrase, what a job carries (config, environment) is sealed in
 * etcd; with no worker the job waits, and SIGINT withdraws it: the run
 * exits 130 and leaves no job behind.
 */
START_TEST(test_job_sealed_and_withdrawn)
{
	char *text = xasprintf("sj:\n  core:\n    engine: {type: etcd, endpoints: [%s], prefix: "
			       "sj/}\n    env: {TOKEN: plain-marker-4711}\n  exec:\n    - name: "
			       "one\n      command: [sh, -c, 'echo x']\n",
			       esim_srv.url);
	char *f = write_file("sj.yaml", text), *bin = test_build_path("bin/orchd");
	char *log = xasprintf("%s/sj.log", esim_tmp), *st = xasprintf("%s/st", esim_tmp), *v;
	char *const argv[] = {bin, S("run"), f, S("--workers"), S("--state-dir"), st, NULL};
	pid_t pid;
	int status;

	pid = esim_spawn_bg(argv, log);
	esim_guard("pid", NULL, pid);
	esim_wait_key("sj/work/queue/exec.one");
	v = esim_sh("etcdctl get sj/work/queue/exec.one --print-value-only");
	ck_assert_msg(strstr(v, "\"sealed\"") && !strstr(v, "plain-marker-4711") &&
			      !strstr(v, "echo x"),
		      "the job is not sealed: %s", v);
	free(v);
	kill(pid, SIGINT);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	esim_guard("unpid", NULL, pid);
	v = test_read_file(log, NULL);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d: %s", status, v);
	ck_assert_msg(strstr(v, "cancelled (interrupted)"), "%s", v);
	free(v);
	ck_assert_int_eq(work_leftovers("sj/"), 0);
	free(text);
	free(f);
	free(bin);
	free(log);
	free(st);
}
END_TEST

/* Usage errors: --workers without the etcd engine, a worker without
 * endpoints or with a bad label; a worker name taken by a live one. */
START_TEST(test_usage_errors)
{
	char *f = write_file("loc.yaml", "loc:\n  exec:\n    - name: a\n      command: [true]\n");
	char *err = NULL;
	int rc;

	rc = orchd(NULL, &err, (const char *const[]){"run", f, "--workers", NULL});
	ck_assert_msg(rc == 2 && strstr(err, "needs core.engine.type etcd"), "%d %s", rc, err);
	free(err);
	unsetenv("ORCHD_ETCD_ENDPOINTS");
	rc = orchd(NULL, &err, (const char *const[]){"worker", "--prefix", "x/", NULL});
	ck_assert_msg(rc == 2 && strstr(err, "--endpoints"), "%d %s", rc, err);
	free(err);
	rc = orchd(NULL, &err,
		   (const char *const[]){"worker", "--endpoints", esim_srv.url, "--prefix", "x/",
					 "--labels", "zone", NULL});
	ck_assert_msg(rc == 2 && strstr(err, "KEY=VALUE"), "%d %s", rc, err);
	free(err);
	worker_start(0, "x/", NULL);
	workers_wait("x/", 1);
	rc = orchd(NULL, &err,
		   (const char *const[]){"worker", "--endpoints", esim_srv.url, "--prefix", "x/",
					 "--name", "w0", NULL});
	ck_assert_msg(rc == 3 && strstr(err, "another worker named w0"), "%d %s", rc, err);
	free(err);
	free(f);
}
END_TEST

/* SIGTERM: a worker with nothing to do exits 0 at once, its registration
 * gone with its revoked lease (not left to expire). */
START_TEST(test_worker_sigterm_exits_clean)
{
	char *out;
	int st;

	worker_start(0, "term/", NULL);
	workers_wait("term/", 1);
	kill(workers[0], SIGTERM);
	ck_assert_int_eq(waitpid(workers[0], &st, 0), workers[0]);
	esim_guard("unpid", NULL, workers[0]);
	workers[0] = 0;
	out = test_read_file(wlogs[0], NULL);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d: %s", st, out);
	free(out);
	out = esim_sh("etcdctl get --prefix term/work/workers/ --keys-only | grep -c .");
	ck_assert_str_eq(out, "0\n");
	free(out);
}
END_TEST

/* SIGTERM to the worker running a step: it stops the step and exits 0;
 * the step goes back to the queue and the other worker runs it. */
START_TEST(test_worker_sigterm_hands_step_over)
{
	char *text =
		xasprintf("hs:\n  core:\n    engine: {type: etcd, endpoints: [%s], prefix: "
			  "ho/}\n    execution: {workers: true}\n  exec:\n    - name: long\n"
			  "      command: [sh, -c, 'sleep 4; echo v=1 >> \"$ORCHD_OUTPUT\"']\n",
			  esim_srv.url);
	char *f = write_file("ho.yaml", text), *st = xasprintf("%s/st", esim_tmp);
	char *bin = test_build_path("bin/orchd"), *log = xasprintf("%s/ho.log", esim_tmp);
	char *const argv[] = {bin, S("run"), f, S("--state-dir"), st, NULL};
	char *who, *out, *again;
	pid_t pid;
	int w, status;

	worker_start(0, "ho/", NULL);
	worker_start(1, "ho/", NULL);
	workers_wait("ho/", 2);
	pid = esim_spawn_bg(argv, log);
	esim_guard("pid", NULL, pid);
	who = claim_holder("ho/", "exec.long");
	w = who[1] - '0';
	ck_assert_msg(w == 0 || w == 1, "claimed by %s", who);
	kill(workers[w], SIGTERM);
	ck_assert_int_eq(waitpid(workers[w], &status, 0), workers[w]);
	esim_guard("unpid", NULL, workers[w]);
	workers[w] = 0;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker status %d", status);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	esim_guard("unpid", NULL, pid);
	out = test_read_file(log, NULL);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "run: %d\n%s", status,
		      tail(out));
	ck_assert_msg(strstr(out, "stopped (SIGTERM) while running it"), "%s", tail(out));
	again = ran_on(out, "exec.long");
	ck_assert_msg(again && strcmp(again, who), "ran on %s after %s", again, who);
	free(again);
	free(out);
	free(who);
	free(text);
	free(f);
	free(st);
	free(bin);
	free(log);
}
END_TEST

/* The pipeline of test_coordinator_dies_result_adopted, first's output v. */
static char *co_pipeline(const char *dir, const char *starts, int v)
{
	char *text = xasprintf(
		"co:\n  core:\n    engine: {type: etcd, endpoints: [%s], prefix: co/, "
		"lock_ttl: 2s}\n    execution: {workers: true}\n    isolation: {paths: {write: "
		"[%s]}}\n  exec:\n"
		"    - name: first\n      command: [sh, -c, 'echo first >> %s; sleep 3; "
		"echo v=%d >> \"$ORCHD_OUTPUT\"']\n"
		"    - name: second\n      command: [sh, -c, 'echo second >> %s; echo "
		"w=${{ exec.first.outputs.v }} >> \"$ORCHD_OUTPUT\"']\n",
		esim_srv.url, dir, starts, v, starts);
	char *f = write_file("co.yaml", text);

	free(text);
	return f;
}

/*
 * The coordinator dies (SIGKILL) while a worker runs a changed step: the
 * worker finishes and hands its result over; the next run waits for it,
 * records it as the dead run would have (the outputs, the config hash, a
 * history entry), and with --only-stale runs only what is stale now: not
 * that step (its record is current), but its dependent, whose input
 * changed.
 */
START_TEST(test_coordinator_dies_result_adopted)
{
	char *dir = xasprintf("%s/runs", esim_tmp), *f, *bin = test_build_path("bin/orchd");
	char *st = xasprintf("%s/st", esim_tmp), *log = xasprintf("%s/co.log", esim_tmp);
	char *starts = xasprintf("%s/starts", dir), *err = NULL, *out;
	pid_t pid;
	int rc;

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	worker_start(0, "co/", NULL);
	workers_wait("co/", 1);
	f = co_pipeline(dir, starts, 42);
	rc = orchd(NULL, &err, (const char *const[]){"run", f, "--state-dir", st, NULL});
	ck_assert_msg(rc == 0, "first run: %d\n%s", rc, tail(err));
	free(err);
	free(f);

	f = co_pipeline(dir, starts, 43);
	{
		char *const argv[] = {bin, S("run"), f, S("--state-dir"), st, NULL};

		pid = esim_spawn_bg(argv, log);
	}
	esim_guard("pid", NULL, pid);
	free(claim_holder("co/", "exec.first"));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	esim_guard("unpid", NULL, pid);

	rc = orchd(NULL, &err,
		   (const char *const[]){"run", f, "--only-stale", "--state-dir", st,
					 "--lock-timeout", "30s", NULL});
	ck_assert_msg(rc == 0, "next run: %d\n%s", rc, tail(err));
	ck_assert_msg(strstr(err, "stack dev-exec-first: recorded the apply success of run"),
		      "not adopted\n%s", tail(err));
	free(err);
	ck_assert_int_eq(count_lines(starts, "first"), 2);  /* once per run that started it */
	ck_assert_int_eq(count_lines(starts, "second"), 2); /* the first run, and now */
	ck_assert_int_eq(history_count("co/", "dev-exec-first"), 2);
	out = esim_sh("etcdctl get co/stacks/dev-exec-second --print-value-only");
	ck_assert_msg(strstr(out, "\"43\""), "second did not get first's new output: %s", out);
	free(out);
	ck_assert_int_eq(work_leftovers("co/"), 0);
	free(f);
	free(bin);
	free(st);
	free(log);
	free(starts);
	free(dir);
}
END_TEST

/* ---- simulated hosts ---- */

static void hosts_setup(void)
{
	esim_hosts_setup_n(4);
}

static char *host_log(int i)
{
	return xasprintf("%s/host-%c.log", esim_tmp, 'a' + i);
}

/* `orchd worker` on host i (1..3), named w<letter>. */
static void host_worker(int i, const char *prefix, const char *extra)
{
	char *log = host_log(i), *name = xasprintf("w%c", 'a' + i);

	esim_host_orchd(&esim_hosts[i], log,
			(const char *const[]){"worker", "--prefix", prefix, "--name", name,
					      "--lease-ttl", "2s", "-v", extra ? extra : "-j4",
					      NULL});
	free(log);
	free(name);
}

/* The worker holding the claim on id (its name), waiting up to 4 min (a
 * sanitizer build validates 200 instances slowly first). */
static char *claim_holder(const char *prefix, const char *id)
{
	for (int i = 0; i < 4800; i++) {
		char *v = esim_sh("etcdctl get %swork/claims/%s --print-value-only", prefix, id);
		json_object *o = json_tokener_parse(v);

		free(v);
		if (o) {
			char *w = xstrdup(op_get_str(o, "worker") ? op_get_str(o, "worker") : "");

			json_object_put(o);
			return w;
		}
		usleep(50000);
	}
	ck_abort_msg("%s was never claimed", id);
	return NULL;
}

/*
 * Wait for the coordinator on host a, secs at most.  Should it still run
 * then, what every host and etcd's work keys say is printed before the
 * check fails, so that a hang in CI says where it is.
 */
static int coordinator_wait(const char *prefix, int secs)
{
	int rc = esim_host_wait_s(&esim_hosts[0], secs);

	if (rc >= 0)
		return rc;
	for (int i = 0; i < esim_nhosts; i++) {
		char *log = host_log(i), *text = test_read_file(log, NULL);

		fprintf(stderr, "==== host %c (%s), its last lines:\n%s\n", 'a' + i, log,
			tail(text));
		free(text);
		free(log);
	}
	{
		char *keys = esim_sh("etcdctl get --prefix %swork/ --keys-only | grep . | head -60",
				     prefix);

		fprintf(stderr, "==== etcd keys under %swork/:\n%s\n", prefix, keys);
		free(keys);
	}
	ck_abort_msg("the coordinator still runs after %d s (its log and the workers' above)",
		     secs);
	return -1;
}

static int history_count(const char *prefix, const char *stack)
{
	char *out =
		stack ? esim_sh("etcdctl get --prefix %shistory/%s/ --keys-only | grep -c .",
				prefix, stack)
		      : esim_sh("etcdctl get --prefix %shistory/ --keys-only | grep -c .", prefix);
	int n = atoi(out);

	free(out);
	return n;
}

/*
 * Host a coordinates a 200-step DAG; hosts b, c and d run it.  The worker
 * that claims s5_3 (a 5 s step) is killed with SIGKILL mid-step: its lease
 * expires, s5_3 runs again on another worker, the run succeeds, and each
 * stack got exactly one history entry (no result was recorded twice).
 */
START_TEST(test_hosts_three_workers_kill9)
{
	char *dir = xasprintf("%s/runs", esim_tmp), *body, *text, *f, *who, *log, *out;
	char *st = xasprintf("%s/st", esim_tmp), *starts;
	int rc, killed = -1, extra = 0;

	if (geteuid() != 0) {
		fprintf(stderr, "remote hosts: network namespaces need root; not run\n");
		free(dir);
		free(st);
		return;
	}
	ck_assert_int_eq(mkdir(dir, 0777), 0);
	body = dag_body(20, 10, dir, "s5_3", 5, NULL);
	text = xasprintf("big:\n  core:\n    engine: {type: etcd, endpoints: [%s], prefix: big/}\n"
			 "    isolation: {paths: {write: [%s]}}\n%s",
			 esim_srv.url, dir, body);
	f = write_file("big.yaml", text);
	free(text);
	free(body);
	for (int i = 1; i < 4; i++)
		host_worker(i, "big/", NULL);
	workers_wait("big/", 3);
	log = host_log(0);
	esim_host_orchd(
		&esim_hosts[0], log,
		(const char *const[]){"run", f, "--workers", "--state-dir", st, "-j12", NULL});
	who = claim_holder("big/", "exec.s5_3");
	for (int i = 1; i < 4; i++)
		if (who[0] == 'w' && who[1] == 'a' + i && !who[2])
			killed = i;
	ck_assert_msg(killed > 0, "claimed by '%s', not a worker of this test", who);
	/* mid-step: its process has started */
	starts = xasprintf("%s/starts", dir);
	for (int i = 0; i < 600 && count_lines(starts, "s5_3") < 1; i++)
		usleep(50000);
	ck_assert_int_eq(count_lines(starts, "s5_3"), 1);
	kill(esim_hosts[killed].pid, SIGKILL);
	rc = esim_host_wait(&esim_hosts[killed]);
	ck_assert_int_eq(rc, 128 + SIGKILL);
	rc = coordinator_wait("big/", 420);
	out = test_read_file(log, NULL);
	ck_assert_msg(rc == 0, "coordinator: %d\n%s", rc, tail(out));
	ck_assert_msg(strstr(out, "lost its lease while running it"), "no takeover said\n%s",
		      tail(out));
	{
		char *again = ran_on(out, "exec.s5_3");

		ck_assert_msg(again && strcmp(again, who), "s5_3 ran on %s, then on %s", who,
			      again ? again : "none");
		free(again);
	}
	free(out);
	/* s5_3 started twice; at most the killed worker's other 3 slots too */
	ck_assert_int_eq(count_lines(starts, "s5_3"), 2);
	for (int l = 0; l < 20; l++)
		for (int k = 0; k < 10; k++) {
			char id[32];
			int n;

			snprintf(id, sizeof(id), "s%d_%d", l, k);
			n = count_lines(starts, id);
			ck_assert_msg(n >= 1, "%s never ran", id);
			extra += n - 1;
		}
	ck_assert_msg(extra >= 1 && extra <= 4, "%d extra starts", extra);
	/* one history entry per stack: no result recorded twice */
	ck_assert_int_eq(history_count("big/", NULL), 200);
	ck_assert_int_eq(history_count("big/", "dev-exec-s5_3"), 1);
	ck_assert_int_eq(work_leftovers("big/"), 0);
	free(starts);
	free(who);
	free(log);
	free(f);
	free(st);
	free(dir);
}
END_TEST

/*
 * The worker running a 6 s step is cut off (ip link set down): its lease
 * expires, the other worker runs the step, and the run succeeds.  When the
 * link comes back, the cut-off worker offers its result and it is refused
 * (its claim's revision is no longer the claim): one history entry.
 */
START_TEST(test_hosts_link_cut_late_result_refused)
{
	char *text = xasprintf(
		"cut:\n  core:\n    engine: {type: etcd, endpoints: [%s], prefix: cut/}\n"
		"  exec:\n    - name: long\n      command: [sh, -c, 'sleep 6; echo v=1 >> "
		"\"$ORCHD_OUTPUT\"']\n    - name: after\n      command: [sh, -c, 'echo "
		"w=${{ exec.long.outputs.v }} >> \"$ORCHD_OUTPUT\"']\n",
		esim_srv.url);
	char *f = write_file("cut.yaml", text), *st = xasprintf("%s/st", esim_tmp);
	char *log = host_log(0), *who, *out, *wlog;
	int rc, cut = -1, i;

	if (geteuid() != 0) {
		fprintf(stderr, "remote hosts: network namespaces need root; not run\n");
		free(text);
		free(f);
		free(st);
		free(log);
		return;
	}
	host_worker(1, "cut/", "-j1");
	host_worker(2, "cut/", "-j1");
	workers_wait("cut/", 2);
	esim_host_orchd(&esim_hosts[0], log,
			(const char *const[]){"run", f, "--workers", "--state-dir", st, NULL});
	who = claim_holder("cut/", "exec.long");
	cut = who[1] - 'a';
	ck_assert_msg(cut == 1 || cut == 2, "claimed by %s", who);
	out = esim_sh("ip link set %s down && echo ok", esim_hosts[cut].veth);
	ck_assert_str_eq(out, "ok\n");
	free(out);
	rc = coordinator_wait("cut/", 300);
	out = test_read_file(log, NULL);
	ck_assert_msg(rc == 0, "coordinator: %d\n%s", rc, tail(out));
	ck_assert_msg(strstr(out, "lost its lease"), "no takeover\n%s", tail(out));
	free(out);
	out = esim_sh("ip link set %s up && echo ok", esim_hosts[cut].veth);
	ck_assert_str_eq(out, "ok\n");
	free(out);
	wlog = host_log(cut);
	for (i = 0; i < 900; i++) {
		out = test_read_file(wlog, NULL);
		if (out && strstr(out, "exec.long: result refused"))
			break;
		free(out);
		out = NULL;
		usleep(100000);
	}
	ck_assert_msg(out, "the cut-off worker's result was not refused: %s",
		      tail(test_read_file(wlog, NULL)));
	free(out);
	ck_assert_int_eq(history_count("cut/", "dev-exec-long"), 1);
	out = esim_sh("etcdctl get cut/stacks/dev-exec-after --print-value-only");
	ck_assert_msg(strstr(out, "\"w\""), "%s", out);
	free(out);
	free(wlog);
	free(who);
	free(text);
	free(f);
	free(st);
	free(log);
}
END_TEST

Suite *remote_suite(void)
{
	Suite *s = suite_create("remote");
	TCase *tc = tcase_create("local"), *hs = tcase_create("hosts");

	/* etcd comes from make tools: left out by make check-fast */
	tcase_set_tags(tc, "tools");
	tcase_set_tags(hs, "tools");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(hs, hosts_setup, esim_hosts_teardown);
	tcase_set_timeout(hs, 900);
	tcase_add_test(tc, test_workers_same_state_as_single_host);
	tcase_add_test(tc, test_job_sealed_and_withdrawn);
	tcase_add_test(tc, test_usage_errors);
	tcase_add_test(tc, test_worker_sigterm_exits_clean);
	tcase_add_test(tc, test_worker_sigterm_hands_step_over);
	tcase_add_test(tc, test_coordinator_dies_result_adopted);
	tcase_add_test(hs, test_hosts_three_workers_kill9);
	tcase_add_test(hs, test_hosts_link_cut_late_result_refused);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, hs);
	return s;
}
