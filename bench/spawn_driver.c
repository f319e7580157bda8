/*
 * spawn_driver: drives the supervisor API directly for the benchmarks in
 * bench/ (until `orchd run` exists to do the same end to end).
 *
 *   spawn_driver EXE N PARALLEL ACTIONS CONFIG_JSON [ISOLATION]
 *
 * Runs N instances of EXE with at most PARALLEL running at once; each
 * instance runs ACTIONS actions in sequence (1: apply; 2: validate then
 * apply), with CONFIG_JSON as config.  ISOLATION: "none" (default: no
 * sandbox plan at all), "basic" (the limits only) or "strict" (the sandbox
 * of handlers/sandbox.h, with the default limits: pids 4096, and the
 * driver's own directory hidden).  Log lines are counted, not printed.
 * Prints one line: "instances=N failed=F elapsed_ms=T lines=L bytes=B
 * max_rss_kib=R" and exits 1 if any step failed.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "handlers/supervisor.h"
#include "util.h"

struct inst {
	int idx;
	int actions_left;
};

static const char *exe;
static json_object *config;
static long long nlines, nbytes;
static int failed, next_idx, total, actions;
static char *base;
static struct orchd_sandbox_spec *sandbox;

static void on_log(void *cb, void *ctx, const char *id, enum orchd_log_level level,
		   enum orchd_log_source src, const char *text)
{
	(void)cb;
	(void)ctx;
	(void)id;
	(void)level;
	(void)src;
	nlines++;
	nbytes += (long long)strlen(text) + 1;
}

static void start_one(struct orchd_supervisor *sup, struct inst *in)
{
	struct orchd_step_spec s = ORCHD_STEP_SPEC_INIT;
	char id[64], name[32];

	snprintf(name, sizeof(name), "i%d", in->idx);
	/* TYPE.NAME: the helper says hello as type misbehave */
	snprintf(id, sizeof(id), "misbehave.%s", name);
	s.id = id;
	s.exe = exe;
	s.action = in->actions_left == 2 ? OP_ACTION_VALIDATE : OP_ACTION_APPLY;
	s.instance = name;
	s.stack = "bench";
	s.config = config;
	s.workdir_base = base;
	s.sandbox = sandbox;
	s.ctx = in;
	if (orchd_supervisor_start(sup, &s) < 0)
		exit(3);
}

static struct orchd_supervisor *gsup;
static struct inst *insts;

static void on_done(void *cb, void *ctx, const char *id, const struct orchd_step_result *res)
{
	struct inst *in = ctx;
	(void)cb;
	if (res->status != ORCHD_STEP_SUCCESS) {
		if (failed++ < 5)
			fprintf(stderr, "%s: %s: %s\n", id, orchd_step_status_name(res->status),
				res->reason);
		in->actions_left = 0;
	} else {
		in->actions_left--;
	}
	if (in->actions_left > 0) {
		start_one(gsup, in);
	} else if (next_idx < total) {
		struct inst *n = &insts[next_idx];
		n->idx = next_idx++;
		n->actions_left = actions;
		start_one(gsup, n);
	}
}

int main(int argc, char **argv)
{
	struct orchd_supervisor_opts o = ORCHD_SUPERVISOR_OPTS_INIT;
	struct rusage ru;
	long long t0;
	int par;
	char tmpl[] = "/tmp/orchd-bench-XXXXXX";

	static const char *const none[] = {NULL};
	static struct orchd_limits limits = {0, 4096, 0, 0, 0};
	static struct orchd_sandbox_spec spec;
	const char *hide[2] = {NULL, NULL};

	if (argc != 6 && argc != 7) {
		fprintf(stderr, "usage: spawn_driver EXE N PARALLEL ACTIONS CONFIG_JSON "
				"[none|basic|strict]\n");
		return 2;
	}
	if (argc == 7 && strcmp(argv[6], "none")) {
		spec.basic = !strcmp(argv[6], "basic");
		if (!spec.basic && strcmp(argv[6], "strict")) {
			fprintf(stderr, "spawn_driver: isolation none, basic or strict\n");
			return 2;
		}
		spec.hide = spec.basic ? none : hide;
		spec.read = spec.write = none;
		spec.limits = &limits;
		sandbox = &spec;
	}
	exe = argv[1];
	total = atoi(argv[2]);
	par = atoi(argv[3]);
	actions = atoi(argv[4]);
	config = json_tokener_parse(argv[5]);
	if (!config || total <= 0 || par <= 0 || actions < 1 || actions > 2) {
		fprintf(stderr, "spawn_driver: bad arguments\n");
		return 2;
	}
	if (!mkdtemp(tmpl))
		return 3;
	base = tmpl;
	hide[0] = tmpl; /* covered, with the workdirs in it: as a run's state directory */
	o.log = on_log;
	o.done = on_done;
	gsup = orchd_supervisor_new(&o);
	if (!gsup)
		return 3;
	insts = xcalloc((size_t)total, sizeof(*insts));
	t0 = now_ms();
	while (next_idx < total && next_idx < par) {
		struct inst *n = &insts[next_idx];
		n->idx = next_idx++;
		n->actions_left = actions;
		start_one(gsup, n);
	}
	if (orchd_supervisor_run(gsup) < 0)
		return 3;
	getrusage(RUSAGE_SELF, &ru);
	printf("instances=%d failed=%d elapsed_ms=%lld lines=%lld bytes=%lld max_rss_kib=%ld\n",
	       total, failed, now_ms() - t0, nlines, nbytes, ru.ru_maxrss);
	orchd_supervisor_free(gsup);
	rmdir(tmpl);
	json_object_put(config);
	free(insts);
	return failed ? 1 : 0;
}
