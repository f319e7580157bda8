/*
 * The fault sweep, in SQLite's way: run a real pipeline once with the fault
 * shim (tests/shim/fault.c) counting orchd's fault points (every write,
 * fsync, rename, writing open and mkdir that reaches the disk), then run it
 * again once per point N = 1..K with the Nth call failing (EIO on odd N,
 * ENOSPC on even N).  After each faulted run:
 *
 *   - orchd exited 3 with an error on stderr that names the failure (the
 *     errno's text), or, for a tolerated class (below), 0;
 *   - it did not crash (no signal, no sanitizer report, no die());
 *   - `orchd status` exits 0, `orchd outputs --json` reads every record,
 *     `orchd history --json` every history line (none skipped as torn);
 *     every file under stacks/ and every report parses (no torn record);
 *   - no plaintext secret is anywhere under the state directory (the run
 *     directories with their workdirs and logs included);
 *   - the next run without faults exits 0 and every output, secrets
 *     included, is what a clean run produced.
 *
 * Tolerated classes (exit 0 is right, documented in STATE.md):
 *   - history: open/write of STACK.history.jsonl.  The record (outputs,
 *     state, last status) is the source of truth and was written; the
 *     history is an audit trail, and a lost line is a warning naming the
 *     file (scheduler.c store_done).
 *   - the sandbox probe: mkdtemp of TMPDIR/orchd-probe.XXXXXX.  A probe
 *     that cannot run reports the layer missing with its reason, and orchd
 *     falls back exactly as on a host without namespaces, with the warning;
 *     an extension never runs with less isolation than the run announces.
 *
 * The pipeline: 20 exec instances in a binary tree, each consuming its
 * parent's plain output `v` and secret output `tok` by reference, with
 * `tok` a secret output (secret_outputs) of every instance, on the local
 * engine with ORCHD_PASSPHRASE set.  Two sweeps: every point of a run over
 * an existing state (the one the previous recovery run left), and the
 * points of a first run on an empty state directory that only a first run
 * has (crypto.json, stacks/, the first record); and every 10th point with
 * every later point failing too (ORCHD_FAULT_PERSIST: a disk that stays
 * full), where the error to find is the first one that is not tolerated.
 *
 * Every run writes --report and --junit files too, which must be absent or
 * whole after a fault, without a plaintext secret.  A third sweep faults
 * every point of a destroy of the applied pipeline.
 *
 * ORCHD_FAULT_STRIDE=S runs every Sth point only, from ORCHD_FAULT_FROM
 * (default 1), and the last point (a quick local loop).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "handlers/cgroup.h"
#include "testutil.h"
#include "util.h"

#define NINST	 20
#define SECRET	 "sekrit-" /* every secret value contains it */
#define PASS	 "fault-sweep passphrase"
#define MAX_ARGS 12

static char *tmp, *file, *sdir, *shim, *trace, *countf;
static char *junit, *reportf; /* every run writes them: --junit, --report */
static int persist;	      /* ORCHD_FAULT_PERSIST: every point from N on fails */

static void setup(void)
{
	FILE *f;

	tmp = test_tmpdir();
	ck_assert_ptr_nonnull(tmp);
	file = xasprintf("%s/p.yaml", tmp);
	sdir = xasprintf("%s/.orchd", tmp);
	shim = test_build_path("tests/shim/fault.so");
	trace = xasprintf("%s/trace", tmp);
	countf = xasprintf("%s/count", tmp);
	junit = xasprintf("--junit=%s/junit.xml", tmp);
	reportf = xasprintf("--report=%s/report.json", tmp);
	ck_assert_msg(access(shim, R_OK) == 0, "missing %s (make check builds it)", shim);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fputs("sweep:\n  core:\n    stack: dev\n    parallelism: 4\n  exec:\n", f);
	for (int i = 0; i < NINST; i++) {
		int up = (i - 1) / 2;

		fprintf(f, "    - name: s%02d\n      secret_outputs: [tok]\n", i);
		if (!i) {
			fputs("      command: [sh, -c, 'printf \"v=v00\\ntok=" SECRET
			      "00-Zq9\\n\" >> \"$ORCHD_OUTPUT\"']\n",
			      f);
			continue;
		}
		fprintf(f,
			"      env: {UP_V: '${{ exec.s%02d.outputs.v }}', "
			"UP_TOK: '${{ exec.s%02d.outputs.tok }}'}\n"
			"      command: [sh, -c, 'printf \"v=v%02d.%%s\\ntok=" SECRET
			"%02d-%%s\\n\" \"$UP_V\" \"$UP_TOK\" >> \"$ORCHD_OUTPUT\"']\n",
			up, up, i, i);
	}
	fclose(f);
	unsetenv("ORCHD_EXTENSIONS_PATH");
	unsetenv("ORCHD_EXTENSIONS_PATH_ONLY");
	unsetenv("ORCHD_PASSPHRASE_FILE");
	unsetenv("NO_COLOR");
	/* The shim is not sanitized; let ASan accept it in front. */
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
}

static void teardown(void)
{
	test_rmtree(tmp);
	free(tmp);
	free(file);
	free(sdir);
	free(shim);
	free(trace);
	free(countf);
	free(junit);
	free(reportf);
}

/*
 * Run orchd CMD [ARG] FILE (ARG may be NULL), with the passphrase when
 * pass, with the shim when at >= 0 (0: count only).
 */
static int orchd(const char *cmd, const char *arg, int pass, long at, int err_no, char **out,
		 char **err)
{
	char *argv[MAX_ARGS], num[32];
	int n = 0, rc;

	argv[n++] = test_build_path("bin/orchd");
	argv[n++] = xstrdup(cmd);
	if (arg)
		argv[n++] = xstrdup(arg);
	if (!strcmp(cmd, "run") || !strcmp(cmd, "destroy")) {
		argv[n++] = xstrdup(junit);
		argv[n++] = xstrdup(reportf);
	}
	argv[n++] = xstrdup(file);
	argv[n] = NULL;
	if (pass)
		setenv("ORCHD_PASSPHRASE", PASS, 1);
	if (at >= 0) {
		snprintf(num, sizeof(num), "%ld", at);
		setenv("LD_PRELOAD", shim, 1);
		setenv("ORCHD_FAULT_AT", num, 1);
		setenv("ORCHD_FAULT_ERRNO", err_no == ENOSPC ? "ENOSPC" : "EIO", 1);
		setenv("ORCHD_FAULT_TRACE", trace, 1);
		setenv("ORCHD_FAULT_COUNT", countf, 1);
		if (persist)
			setenv("ORCHD_FAULT_PERSIST", "1", 1);
		unlink(trace);
		unlink(countf);
	}
	rc = test_run(argv, out, err);
	unsetenv("LD_PRELOAD");
	unsetenv("ORCHD_FAULT_AT");
	unsetenv("ORCHD_FAULT_ERRNO");
	unsetenv("ORCHD_FAULT_TRACE");
	unsetenv("ORCHD_FAULT_COUNT");
	unsetenv("ORCHD_FAULT_PERSIST");
	unsetenv("ORCHD_PASSPHRASE");
	for (int i = 0; i < n; i++)
		free(argv[i]);
	return rc;
}

static char *slurp(const char *path)
{
	size_t len;

	return test_read_file(path, &len);
}

static int tolerated(const char *call)
{
	return strstr(call, ".history.jsonl") || strstr(call, "/orchd-probe.");
}

/* The trace line of the call that failed (with ORCHD_FAULT_PERSIST, the
 * first one orchd may not tolerate, else the first), or NULL (the run had
 * fewer points than N). */
static char *failed_call(void)
{
	char *t = slurp(trace), *line = NULL, *p, *end, *from = t;

	if (!t)
		return NULL;
	while ((p = strstr(from, " FAILED\n"))) {
		end = p;
		from = p + 8;
		while (p > t && p[-1] != '\n')
			p--;
		if (line && tolerated(line)) {
			free(line);
			line = NULL;
		}
		if (!line)
			line = xstrndup(p, (size_t)(end - p));
		if (!tolerated(line))
			break;
	}
	free(t);
	return line;
}

/* Every file under dir: no plaintext secret in it; each stack record and
 * report parses.  Returns a malloc'ed complaint, or NULL. */
static char *check_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char *bad = NULL;

	if (!d)
		return NULL;
	while (!bad && (e = readdir(d))) {
		char *p;
		struct stat st;
		size_t len;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		p = xasprintf("%s/%s", dir, e->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			bad = check_tree(p);
		} else if (S_ISREG(st.st_mode)) {
			char *s = test_read_file(p, &len);
			int rec = e->d_name[0] != '.' && strstr(p, "/stacks/") && len >= 5 &&
				  !strcmp(e->d_name + strlen(e->d_name) - 5, ".json");
			int rep = !strcmp(e->d_name, "report.json");

			if (!s)
				bad = xasprintf("cannot read %s", p);
			else if (memmem(s, len, SECRET, strlen(SECRET)))
				bad = xasprintf("plaintext secret in %s", p);
			else if (rec || rep) {
				json_object *o = json_tokener_parse(s);

				if (!o || !json_object_is_type(o, json_type_object))
					bad = xasprintf("torn or unparsable %s", p);
				json_object_put(o);
			}
			free(s);
		}
		free(p);
	}
	closedir(d);
	return bad;
}

/* A line of err says what orchd could not do, and why: "cannot ...: why". */
static int says_cannot(const char *err, const char *why)
{
	for (const char *p = err; (p = strstr(p, why)); p++) {
		const char *bol = p;

		while (bol > err && bol[-1] != '\n')
			bol--;
		if (memmem(bol, (size_t)(p - bol), "cannot ", 7))
			return 1;
	}
	return 0;
}

/* The --report and --junit files: absent (a fault before their atomic
 * write) or whole, and no plaintext secret in them.  A complaint, or NULL. */
static char *check_report_files(void)
{
	const char *paths[] = {strchr(reportf, '=') + 1, strchr(junit, '=') + 1};

	for (size_t i = 0; i < 2; i++) {
		char *t = slurp(paths[i]), *bad = NULL;

		if (!t)
			continue;
		if (strstr(t, SECRET))
			bad = xasprintf("%s holds a plaintext secret", paths[i]);
		else if (!i) {
			json_object *o = json_tokener_parse(t);

			if (!o)
				bad = xasprintf("%s is not JSON", paths[i]);
			json_object_put(o);
		} else if (!strstr(t, "</testsuite>\n")) {
			bad = xasprintf("%s is cut short", paths[i]);
		}
		free(t);
		if (bad)
			return bad;
	}
	return NULL;
}

/* After the faulted command of point n: status, outputs and every history
 * line read, no torn record, no secret in clear, the report files whole. */
static void check_state_after(long n, const char *call)
{
	char *out, *err, *bad;
	int rc;

	rc = orchd("status", NULL, 0, -1, 0, &out, &err);
	ck_assert_msg(rc == 0, "point %ld (%s): status exit %d: %s", n, call, rc, err);
	free(out);
	free(err);
	rc = orchd("outputs", "--json", 0, -1, 0, &out, &err);
	ck_assert_msg(rc == 0, "point %ld (%s): outputs exit %d: %s", n, call, rc, err);
	free(out);
	free(err);
	/* every history line whole: a failed append writes nothing */
	rc = orchd("history", "--json", 0, -1, 0, &out, &err);
	ck_assert_msg(rc == 0 && !strstr(err, "skipping"), "point %ld (%s): history exit %d: %s", n,
		      call, rc, err);
	free(out);
	free(err);
	bad = check_tree(sdir);
	ck_assert_msg(!bad, "point %ld (%s): %s", n, call, bad);
	bad = check_report_files();
	ck_assert_msg(!bad, "point %ld (%s): %s", n, call, bad);
}

struct sweep {
	char *want;    /* outputs --json --show-secrets of a clean run */
	int points;    /* run */
	int tolerated; /* of which ended 0 on a tolerated class */
};

/* Fault point n; the assertions of the file's comment. */
static void one_point(struct sweep *sw, long n)
{
	int en = n % 2 ? EIO : ENOSPC, rc;
	char *out, *err, *call, *bad;

	rc = orchd("run", NULL, 1, n, en, &out, &err);
	call = failed_call();
	ck_assert_msg(rc >= 0 && rc < 128, "point %ld (%s): orchd crashed (%d): %s", n,
		      call ? call : "no fault", rc, err);
	ck_assert_msg(!strstr(err, "Sanitizer") && !strstr(err, "runtime error"),
		      "point %ld (%s): sanitizer report: %s", n, call ? call : "no fault", err);
	/* die(): an exit 3 that is a crash all the same */
	ck_assert_msg(!strstr(err, "internal error") && !strstr(err, "fatal:"),
		      "point %ld (%s): orchd died: %s", n, call ? call : "no fault", err);
	if (!call) {
		ck_assert_msg(rc == 0, "point %ld: no fault hit, yet exit %d: %s", n, rc, err);
	} else if (tolerated(call)) {
		ck_assert_msg(rc == 0, "point %ld (%s): exit %d: %s", n, call, rc, err);
		ck_assert_msg(!strstr(call, ".history.jsonl") || strstr(err, strerror(en)),
			      "point %ld (%s): no warning naming the failure: %s", n, call, err);
		sw->tolerated++;
	} else {
		ck_assert_msg(rc == 3, "point %ld (%s): exit %d, want 3: %s", n, call, rc, err);
		ck_assert_msg(says_cannot(err, strerror(en)),
			      "point %ld (%s): no line of stderr says 'cannot ...: %s': %s", n,
			      call, strerror(en), err);
	}
	free(out);
	free(err);

	/* The state as the faulted run left it. */
	check_state_after(n, call);

	/* Recovery: a clean run, then every output. */
	rc = orchd("run", NULL, 1, -1, 0, &out, &err);
	ck_assert_msg(rc == 0, "point %ld (%s): the next run exit %d: %s", n, call, rc, err);
	free(out);
	free(err);
	rc = orchd("outputs", "--json", 1, -1, 0, &out, &err);
	ck_assert_int_eq(rc, 0);
	free(out);
	free(err);
	ck_assert_int_eq(orchd("outputs", "--show-secrets", 1, -1, 0, &out, &err), 0);
	ck_assert_msg(!strcmp(out, sw->want), "point %ld (%s): outputs after recovery:\n%s", n,
		      call, out);
	free(out);
	free(err);
	bad = check_tree(sdir);
	ck_assert_msg(!bad, "point %ld (%s), after recovery: %s", n, call, bad);
	free(call);
	sw->points++;
}

/* The clean run's outputs, and the count (and trace) of a run. */
static long count_points(void)
{
	char *out, *err, *c;
	long k;
	int rc;

	rc = orchd("run", NULL, 1, 0, EIO, &out, &err);
	ck_assert_msg(rc == 0, "the counting run exit %d: %s", rc, err);
	free(out);
	free(err);
	c = slurp(countf);
	ck_assert_msg(c != NULL, "the shim wrote no count to %s", countf);
	k = atol(c);
	free(c);
	/* A count of 0 is a shim that intercepts nothing. */
	ck_assert_msg(k > 50, "only %ld fault points counted", k);
	return k;
}

static char *clean_outputs(void)
{
	char *out, *err;

	ck_assert_int_eq(orchd("outputs", "--show-secrets", 1, -1, 0, &out, &err), 0);
	ck_assert_ptr_nonnull(strstr(out, "exec.s19.tok = " SECRET "19-" SECRET "09-"));
	free(err);
	return out;
}

static long env_long(const char *name, long dflt)
{
	const char *s = getenv(name);

	return s && atol(s) > 0 ? atol(s) : dflt;
}

static double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Every point of a run over the state of an earlier run. */
START_TEST(test_sweep_existing_state)
{
	struct sweep sw = {NULL, 0, 0};
	long from = env_long("ORCHD_FAULT_FROM", 1), step = env_long("ORCHD_FAULT_STRIDE", 1), k;
	struct timespec t0;
	char *out, *err;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(orchd("run", NULL, 1, -1, 0, &out, &err), 0);
	free(out);
	free(err);
	sw.want = clean_outputs();
	k = count_points();
	for (long n = from; n <= k; n += step)
		one_point(&sw, n);
	if (from <= k && (k - from) % step)
		one_point(&sw, k); /* the last point: the sync at unlock */
	fprintf(stderr, "faults: existing state: %ld fault points, %d run (%d tolerated), %.1f s\n",
		k, sw.points, sw.tolerated, since(&t0));
	free(sw.want);
}
END_TEST

/*
 * A disk that stays full (or broken): every point from N on fails, for
 * every 10th N (each run fails much the same later calls).
 */
START_TEST(test_sweep_persistent)
{
	struct sweep sw = {NULL, 0, 0};
	long step = env_long("ORCHD_FAULT_STRIDE", 1) * 10, k;
	struct timespec t0;
	char *out, *err;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(orchd("run", NULL, 1, -1, 0, &out, &err), 0);
	free(out);
	free(err);
	sw.want = clean_outputs();
	k = count_points();
	persist = 1;
	for (long n = 1; n <= k; n += step)
		one_point(&sw, n);
	persist = 0;
	fprintf(stderr, "faults: persistent: %ld fault points, %d run (%d tolerated), %.1f s\n", k,
		sw.points, sw.tolerated, since(&t0));
	free(sw.want);
}
END_TEST

/* The points only a first run has: the state directory, crypto.json,
 * stacks/ and the first record, each from an empty state directory. */
START_TEST(test_sweep_first_run)
{
	struct sweep sw = {NULL, 0, 0};
	struct timespec t0;
	char *out, *err, *t, *line, *save = NULL;
	long k, picked = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(orchd("run", NULL, 1, -1, 0, &out, &err), 0);
	free(out);
	free(err);
	sw.want = clean_outputs();
	test_rmtree(sdir);
	k = count_points();
	t = slurp(trace);
	ck_assert_ptr_nonnull(t);
	for (line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		long n = atol(line);

		/* up to the first record's history line */
		if (strstr(line, "dev-exec-s00.history.jsonl"))
			break;
		if (!strstr(line, "crypto.json") && !strstr(line, "/stacks") &&
		    !(strlen(line) > 6 && !strcmp(line + strlen(line) - 6, "/.orchd")))
			continue;
		test_rmtree(sdir);
		one_point(&sw, n);
		picked++;
	}
	free(t);
	ck_assert_msg(picked >= 8, "only %ld first-run points found", picked);
	fprintf(stderr,
		"faults: first run: %ld fault points, %ld of them only a first run has, %.1f s\n",
		k, picked, since(&t0));
	free(sw.want);
}
END_TEST

/*
 * Every point of a destroy of the applied pipeline, each over a fresh
 * apply: the destroy exits 3 naming the failure (or 0 for a tolerated
 * class), the state reads whole, and the next destroy removes every
 * stack, its history kept.
 */
START_TEST(test_sweep_destroy)
{
	long from = env_long("ORCHD_FAULT_FROM", 1), step = env_long("ORCHD_FAULT_STRIDE", 1), k,
	     points = 0;
	struct timespec t0;
	char *out, *err;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(orchd("run", NULL, 1, -1, 0, &out, &err), 0);
	free(out);
	free(err);
	rc = orchd("destroy", NULL, 1, 0, EIO, &out, &err);
	ck_assert_msg(rc == 0, "the counting destroy exit %d: %s", rc, err);
	free(out);
	free(err);
	out = slurp(countf);
	ck_assert_ptr_nonnull(out);
	k = atol(out);
	free(out);
	ck_assert_msg(k > 20, "only %ld fault points counted", k);
	for (long n = from; n <= k; n += step, points++) {
		int en = n % 2 ? EIO : ENOSPC;
		char *call;

		ck_assert_int_eq(orchd("run", NULL, 1, -1, 0, &out, &err), 0);
		free(out);
		free(err);
		rc = orchd("destroy", NULL, 1, n, en, &out, &err);
		call = failed_call();
		ck_assert_msg(
			rc >= 0 && rc < 128 && !strstr(err, "Sanitizer") &&
				!strstr(err, "runtime error") && !strstr(err, "internal error"),
			"point %ld (%s): orchd crashed (%d): %s", n, call ? call : "-", rc, err);
		if (call && !tolerated(call))
			ck_assert_msg(rc == 3 && says_cannot(err, strerror(en)),
				      "point %ld (%s): exit %d, want 3 naming the failure: %s", n,
				      call, rc, err);
		else
			ck_assert_msg(rc == 0, "point %ld (%s): exit %d: %s", n, call ? call : "-",
				      rc, err);
		free(out);
		free(err);
		check_state_after(n, call);
		/* recovery: the next destroy finishes the job */
		rc = orchd("destroy", NULL, 1, -1, 0, &out, &err);
		ck_assert_msg(rc == 0, "point %ld (%s): the next destroy exit %d: %s", n, call, rc,
			      err);
		free(out);
		free(err);
		rc = orchd("outputs", "--json", 1, -1, 0, &out, &err);
		ck_assert_msg(rc == 0 && !strstr(out, "\"v\""),
			      "point %ld (%s): outputs after the destroy: %s", n, call, out);
		free(out);
		free(err);
		free(call);
	}
	fprintf(stderr, "faults: destroy: %ld fault points, %ld run, %.1f s\n", k, points,
		since(&t0));
}
END_TEST

/*
 * Found by the sweep (a step's "cannot create cgroup .../orchd-PID.N: File
 * exists" on a run with no fault): a cgroup left by an orchd that died
 * (kill -9, or a die()) is in the way of a later orchd that gets the same
 * pid.  The leftover is made here by hand, named as this process's first
 * step cgroup would be (Check forks each test: the serial starts at 1).
 */
START_TEST(test_cgroup_leftover_of_same_pid)
{
	const struct orchd_cgroup_host *h = orchd_cgroup_probe();
	struct orchd_limits lim = {0, 64, 0, 0, 0};
	struct orchd_cgroup *cg;
	char base[256], *stale, err[512];
	size_t n;

	if (!h->version || strlen(h->where) < 4) {
		fprintf(stderr, "faults: skipping the cgroup leftover test: %s\n", h->why);
		return;
	}
	/* "v2 BASE" or "v1 PIDS-BASE, MEMORY-BASE" */
	n = strcspn(h->where + 3, ",");
	snprintf(base, sizeof(base), "%.*s", (int)n, h->where + 3);
	stale = xasprintf("%s/orchd-%d.1", base, (int)getpid());
	if (mkdir(stale, 0755) < 0) {
		fprintf(stderr, "faults: skipping the cgroup leftover test: mkdir %s: %s\n", stale,
			strerror(errno));
		free(stale);
		return;
	}
	cg = orchd_cgroup_new(&lim, err, sizeof(err));
	rmdir(stale);
	ck_assert_msg(cg != NULL, "%s", err);
	orchd_cgroup_free(cg);
	free(stale);
}
END_TEST

/* The cgroup an orchd killed with -9 left (its pid gone) is removed by
 * the next orchd that probes cgroups; about 950 had piled up here. */
START_TEST(test_cgroup_of_dead_orchd_removed)
{
	const struct orchd_cgroup_host *h = orchd_cgroup_probe();
	char base[256], *stale, *argv[3], *out = NULL, *err = NULL;
	size_t n;
	pid_t pid;
	int st;

	if (!h->version || strlen(h->where) < 4) {
		fprintf(stderr, "faults: skipping the dead cgroup test: %s\n", h->why);
		return;
	}
	n = strcspn(h->where + 3, ",");
	snprintf(base, sizeof(base), "%.*s", (int)n, h->where + 3);
	/* a pid that existed and is gone */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid)
		_exit(0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	stale = xasprintf("%s/orchd-%d.3", base, (int)pid);
	if (mkdir(stale, 0755) < 0) {
		fprintf(stderr, "faults: skipping the dead cgroup test: mkdir %s: %s\n", stale,
			strerror(errno));
		free(stale);
		return;
	}
	argv[0] = test_build_path("bin/orchd");
	argv[1] = xstrdup("doctor");
	argv[2] = NULL;
	test_run(argv, &out, &err);
	ck_assert_msg(access(stale, F_OK) < 0, "%s is still there: %s", stale, err);
	rmdir(stale);
	free(out);
	free(err);
	free(argv[0]);
	free(argv[1]);
	free(stale);
}
END_TEST

static TCase *sweep_case(const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 1800);
	tcase_add_test(tc, test);
	return tc;
}

Suite *faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *lo = tcase_create("leftovers");

	tcase_add_test(lo, test_cgroup_leftover_of_same_pid);
	tcase_add_test(lo, test_cgroup_of_dead_orchd_removed);
	suite_add_tcase(s, lo);
	suite_add_tcase(s, sweep_case("first_run", test_sweep_first_run));
	suite_add_tcase(s, sweep_case("existing_state", test_sweep_existing_state));
	suite_add_tcase(s, sweep_case("persistent", test_sweep_persistent));
	suite_add_tcase(s, sweep_case("destroy", test_sweep_destroy));
	return s;
}
