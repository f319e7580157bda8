/*
 * handlers/supervisor: the event loop (see supervisor.h).
 *
 * One poll(2) over: the signalfd (SIGCHLD: reap by pid; SIGINT/SIGTERM:
 * interrupt), each step's exec report, stdin (when bytes are queued),
 * stdout and stderr, the supervisor's fetch worker, and the fds the core
 * watches.  After the I/O, the step deadlines; then the finished steps are
 * handed to the done callback.
 */
#include "handlers/supervisor.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/sources.h"
#include "core/worker.h"
#include "util.h"

#define READ_CHUNK 65536
/* Chunks read per readable fd per loop turn (fairness vs. throughput). */
#define READS_PER_TURN 4

struct watch {
	int fd;
	void (*fn)(void *arg);
	void *arg;
};

/* What a poll entry stands for. */
enum pwhich { P_SIGNALS, P_WORKER, P_WATCH, P_REPORT, P_STDIN, P_STDOUT, P_STDERR };

struct orchd_supervisor {
	struct orchd_supervisor_opts opts;
	struct orchd_step_hooks hooks;
	char *orchd_version;
	int sfd;
	sigset_t old_mask;
	struct rlimit old_nofile; /* restored in children */
	int have_nofile;
	char *reaper_exe; /* orchd-reaper, or NULL: a fork of orchd reaps */
	struct sigaction old_pipe, old_hup;
	struct orchd_step **steps;
	size_t nsteps, asteps;
	struct orchd_step **pending; /* finished, done callback not yet run */
	size_t npending, apending;
	struct orchd_step **parked; /* sessions waiting for their next action */
	size_t nparked, aparked, max_parked;
	long long parked_kb, parked_budget_kb; /* their private memory, its bound */
	struct orchd_step **husks;	       /* adopted: freed at the next wait */
	size_t nhusks, ahusks;
	struct watch *watches;
	size_t nwatches, awatches;
	struct orchd_worker *worker; /* fetches; made on first use */
	int closing;		     /* orchd_supervisor_free() runs */
	struct pollfd *pfd;
	void **pobj; /* the step or watch of each entry */
	enum pwhich *pwhich;
	size_t apfd;
	int interrupted;
	char buf[READ_CHUNK];
};

/* --- fetches, off the loop -------------------------------------------------- */

/* What the supervisor's worker does for a step. */
enum fetch_kind {
	FETCH_SOURCES, /* the instance's sources, before the spawn */
	FETCH_REQUEST, /* a fetch request of the extension */
	FETCH_CLEANUP, /* remove the finished step's workdir */
};

struct fetch_job {
	struct orchd_job job;
	struct orchd_supervisor *sup;
	struct orchd_step *st;
	enum fetch_kind kind;
	json_object *what; /* sources (array) or the request message; owned */
	char *workdir;
	/* results */
	int rc;
	char err[640];
	struct op_buf log; /* one line per fetched source */
	char *response;	   /* the request's response line */
};

static void fetch_logged(void *data, const char *line)
{
	struct fetch_job *fj = data;

	op_buf_addstr(&fj->log, line);
	op_buf_addch(&fj->log, '\n');
}

/* On the worker: nothing here touches the loop's data but st->cancel. */
static void fetch_run(struct orchd_job *job)
{
	struct fetch_job *fj = (struct fetch_job *)job;
	struct orchd_fetch_opts opts;

	orchd_fetch_opts_init(&opts);
	opts.http.cancel = &fj->st->cancel;
	opts.git.cancel = &fj->st->cancel;
	switch (fj->kind) {
	case FETCH_REQUEST:
		fj->response = orchd_sources_request(fj->what, fj->workdir, &opts);
		break;
	case FETCH_SOURCES:
		fj->rc = orchd_sources_fetch_all(fj->what, fj->workdir, &opts, fetch_logged, fj,
						 fj->err, sizeof(fj->err));
		break;
	case FETCH_CLEANUP:
		fj->rc = op_rmtree(fj->workdir);
		if (fj->rc < 0)
			snprintf(fj->err, sizeof(fj->err), "cannot remove %s: %s", fj->workdir,
				 strerror(errno));
		break;
	}
}

static void spawn_step(struct orchd_supervisor *sup, struct orchd_step *st);

static void fetch_done(struct orchd_job *job)
{
	struct fetch_job *fj = (struct fetch_job *)job;
	struct orchd_supervisor *sup = fj->sup;
	struct orchd_step *st = fj->st;

	st->jobs--;
	if (!sup->closing) {
		const char *line = orchd_buf_str(&fj->log), *nl;

		for (; (nl = strchr(line, '\n')); line = nl + 1) {
			char *one = xstrndup(line, (size_t)(nl - line));

			orchd_step_log(st, ORCHD_LOG_INFO, "%s", one);
			free(one);
		}
		if (fj->kind == FETCH_REQUEST) {
			if (st->phase == PHASE_ACTION)
				orchd_step_queue(st, fj->response);
			else
				free(fj->response);
			fj->response = NULL;
		} else if (fj->kind == FETCH_CLEANUP) {
			if (fj->rc < 0)
				orchd_step_log(st, ORCHD_LOG_WARNING, "%s", fj->err);
		} else if (st->outcome == OUT_RUNNING) {
			if (fj->rc < 0)
				orchd_step_fail(st, ORCHD_STEP_SPAWN_ERROR, "%s", fj->err);
			else
				spawn_step(sup, st);
		}
	}
	free(fj->response);
	op_buf_release(&fj->log);
	json_object_put(fj->what);
	free(fj->workdir);
	free(fj);
}

static struct orchd_worker *fetch_worker(struct orchd_supervisor *sup)
{
	if (!sup->worker) {
		sup->worker = orchd_worker_new("fetch");
		if (!sup->worker)
			die("cannot fetch without a worker thread");
	}
	return sup->worker;
}

static void submit_fetch(struct orchd_supervisor *sup, struct orchd_step *st, json_object *what,
			 enum fetch_kind kind)
{
	struct fetch_job *fj = xcalloc(1, sizeof(*fj));

	fj->job.run = fetch_run;
	fj->job.done = fetch_done;
	fj->sup = sup;
	fj->st = st;
	fj->what = what;
	fj->kind = kind;
	fj->workdir = xstrdup(st->workdir);
	op_buf_init(&fj->log, 0);
	st->jobs++;
	orchd_worker_submit(fetch_worker(sup), &fj->job);
}

/* A request message (taken): answered on the worker, in order. */
static void on_request(void *arg, struct orchd_step *st, json_object *msg)
{
	json_object *copy = NULL;

	/* the worker gets its own copy: json-c objects are not thread-safe */
	if (json_object_deep_copy(msg, &copy, NULL) < 0)
		die("out of memory");
	json_object_put(msg);
	submit_fetch(arg, st, copy, FETCH_REQUEST);
}

/* --- spawning ------------------------------------------------------------ */

static int make_workdir(const struct orchd_step_spec *spec, char **out, char *err, size_t errlen)
{
	const char *base = spec->workdir_base;
	char *tmpl;

	if (!base) {
		base = getenv("TMPDIR");
		if (!base || !*base)
			base = "/tmp";
		tmpl = xasprintf("%s/orchd-%s.%d.XXXXXX", base, spec->id, spec->attempt);
	} else {
		if (mkdir(base, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", base, strerror(errno));
			return -1;
		}
		tmpl = xasprintf("%s/%s.%d.XXXXXX", base, spec->id, spec->attempt);
	}
	if (!mkdtemp(tmpl)) {
		snprintf(err, errlen, "cannot create workdir %s: %s", tmpl, strerror(errno));
		free(tmpl);
		return -1;
	}
	*out = tmpl;
	return 0;
}

static void free_strv(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* The size of v as compact JSON (0 for NULL). */
static size_t json_size(const json_object *v)
{
	return v ? strlen(json_object_to_json_string_ext((json_object *)(uintptr_t)v,
							 JSON_C_TO_STRING_PLAIN))
		 : 0;
}

/*
 * The action message of st (malloc'ed), with the largest of its config,
 * state and previous outputs in files of the workdir (PROTOCOL.md §4.1)
 * until it fits in one line; st->action_files then says which.  NULL with
 * errno, and err set when the values cannot be handed over at all.
 */
static char *encode_action(struct orchd_step *st, const struct orchd_step_spec *spec, char *err,
			   size_t errlen)
{
	int describe = spec->action == OP_ACTION_DESCRIBE;
	const json_object *vals[OP_VALUE_NFIELDS] = {spec->config, spec->state, spec->outputs};
	size_t size[OP_VALUE_NFIELDS];
	const char *files[OP_VALUE_NFIELDS] = {NULL, NULL, NULL};
	char *paths[OP_VALUE_NFIELDS] = {NULL, NULL, NULL}, *line;
	struct op_buf what;

	err[0] = '\0';
	line = op_encode_action_files(spec->action, describe ? NULL : spec->instance,
				      describe ? NULL : spec->stack, spec->config, spec->state,
				      spec->outputs, describe ? NULL : st->workdir, NULL);
	if (line || errno != E2BIG || describe)
		return line;
	for (int i = 0; i < OP_VALUE_NFIELDS; i++)
		size[i] = json_size(vals[i]);
	op_buf_init(&what, 0);
	/* the largest first, until the rest fits */
	for (int n = 0; n < OP_VALUE_NFIELDS && !line && !err[0]; n++) {
		int big = -1;
		const char *name;

		for (int i = 0; i < OP_VALUE_NFIELDS; i++)
			if (!files[i] && (big < 0 || size[i] > size[big]))
				big = i;
		name = big == OP_VALUE_OUTPUTS ? "previous outputs" : op_value_field_names[big];
		if (size[big] > (size_t)OP_MAX_FILE_VALUE) {
			snprintf(err, errlen,
				 "its %s is %zu bytes, more than orchd hands an extension (at "
				 "most %ld bytes)",
				 name, size[big], OP_MAX_FILE_VALUE);
			break;
		}
		paths[big] = xasprintf("%s/.orchd-%s.json", st->workdir, op_value_field_names[big]);
		if (op_write_value_file(paths[big], vals[big], err, errlen) < 0)
			break;
		files[big] = paths[big];
		op_buf_addf(&what, "%s%s (%zu bytes)", what.len ? ", " : "", name, size[big]);
		line = op_encode_action_files(spec->action, spec->instance, spec->stack,
					      spec->config, spec->state, spec->outputs, st->workdir,
					      files);
		if (!line && errno != E2BIG)
			snprintf(err, errlen, "cannot encode the action message: %s",
				 strerror(errno));
	}
	if (line)
		st->action_files = op_buf_detach(&what, NULL);
	op_buf_release(&what);
	for (int i = 0; i < OP_VALUE_NFIELDS; i++)
		free(paths[i]);
	return line;
}

/*
 * The reaper program (orchestrator/reaper.c): beside this executable's
 * libexec as installed (or in the build tree), else under PREFIX.  Without
 * it the reaper is a fork of orchd: the same reaping, at the cost of a
 * copy of orchd's page tables per extension process.
 */
char *orchd_reaper_path(void)
{
	return orchd_libexec_path("orchd-reaper");
}

/* Start the extension process of st (its workdir, action and environment
 * are ready). */
static void spawn_step(struct orchd_supervisor *sup, struct orchd_step *st)
{
	struct op_child c = OP_CHILD_INIT;
	const char *argv[2] = {st->exe, NULL};
	int ret;

	c.argv = argv;
	c.env = (const char *const *)(void *)st->env;
	c.cwd = st->workdir;
	c.in = c.out = c.err = OP_CHILD_PIPE;
	/* its own group, told at once if orchd dies, orchd's original mask
	 * and fd limit; the exec report is read by the loop */
	c.flags = OP_CHILD_PGROUP | OP_CHILD_PDEATHSIG | OP_CHILD_ASYNC;
	/* a reaper, at every isolation level: nothing the extension starts
	 * outlives its action (daemons, setsid grandchildren included), and
	 * if orchd dies the extension gets SIGTERM, then SIGKILL */
	c.flags |= OP_CHILD_REAPER;
	c.sigmask = &sup->old_mask;
	c.nofile = sup->have_nofile ? &sup->old_nofile : NULL;
	c.reaper_exe = sup->reaper_exe;
	if (st->sandbox)
		orchd_sandbox_apply(st->sandbox, &c);
	ret = op_child_start(&c);
	free_strv(st->env);
	st->env = NULL;
	orchd_sandbox_free(st->sandbox);
	st->sandbox = NULL;
	if (ret < 0) {
		orchd_step_fail(st, ORCHD_STEP_SPAWN_ERROR, "cannot start %s: %s", st->exe,
				strerror(c.errnum));
		return;
	}
	st->child = c;
	st->pid = c.pid;
	st->fd_in = c.in;
	st->fd_out = c.out;
	st->fd_err = c.err;
	st->fd_rep = c.report_fd;
	orchd_step_spawned(st);
}

/* The directory of an extension's executable (resolved: of the file a
 * link points to), malloc'ed; "/" when there is none. */
static char *exe_dir(const char *exe, int resolved)
{
	char *path = resolved ? realpath(exe, NULL) : xstrdup(exe), *slash;

	if (!path)
		path = xstrdup(exe);
	slash = strrchr(path, '/');
	if (!slash || slash == path) {
		free(path);
		return xstrdup("/");
	}
	*slash = '\0';
	return path;
}

/* --- sessions ------------------------------------------------------------ */

static void take_out(struct orchd_step **v, size_t *n, size_t i)
{
	v[i] = v[--*n];
}

/* Private memory (resident minus shared, KiB) of process pid, 0 if gone. */
static long long private_kb(long pid)
{
	char path[64];
	long size, resident, shared;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%ld/statm", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fscanf(f, "%ld %ld %ld", &size, &resident, &shared);
	fclose(f);
	if (n != 3 || resident < shared)
		return 0;
	return (long long)(resident - shared) * (sysconf(_SC_PAGESIZE) / 1024);
}

/* What a waiting session holds: its reaper's private memory and its
 * children's (the extension; the kernel lists them when it can). */
static long long session_kb(const struct orchd_step *st)
{
	char path[64];
	long long kb = private_kb(st->pid);
	long child;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)st->pid, (int)st->pid);
	f = fopen(path, "re");
	if (!f)
		return kb;
	while (fscanf(f, "%ld", &child) == 1)
		kb += private_kb(child);
	fclose(f);
	return kb;
}

/* The memory waiting sessions may hold: a quarter of what the host has
 * available, between 64 MiB and 2 GiB. */
static long long session_budget_kb(void)
{
	long long kb = 0, v;
	char line[128];
	FILE *f = fopen("/proc/meminfo", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %lld kB", &v) == 1)
			kb = v / 4;
	if (f)
		fclose(f);
	if (kb < 64 * 1024)
		kb = 64 * 1024;
	if (kb > 2 * 1024 * 1024)
		kb = 2 * 1024 * 1024;
	return kb;
}

/* A session leaves the waiting list (to end, or adopted). */
static struct orchd_step *unpark(struct orchd_supervisor *sup, size_t i)
{
	struct orchd_step *p = sup->parked[i];

	sup->parked_kb -= p->park_kb;
	take_out(sup->parked, &sup->nparked, i);
	return p;
}

/* A waiting session goes back to the loop, to end (its result was told). */
static void end_session(struct orchd_supervisor *sup, size_t i)
{
	struct orchd_step *p = unpark(sup, i);

	orchd_step_end_session(p);
	ALLOC_GROW(sup->steps, sup->nsteps + 1, sup->asteps);
	sup->steps[sup->nsteps++] = p;
}

/*
 * st (just made) runs in the waiting session of its id and executable, if
 * there is a healthy one: 1 when it took it over (its action is encoded
 * and sent, or it failed as after a hello that does not fit), 0 when st
 * must start a process of its own.
 */
static int adopt_session(struct orchd_supervisor *sup, struct orchd_step *st,
			 const struct orchd_step_spec *spec)
{
	for (size_t i = 0; i < sup->nparked; i++) {
		struct orchd_step *p = sup->parked[i];
		char err[600];

		if (strcmp(p->id, st->id) || strcmp(p->exe, st->exe))
			continue;
		if (!orchd_step_session_ok(p)) {
			orchd_step_log(p, ORCHD_LOG_DEBUG,
				       "its session ended while it waited: a new process runs "
				       "the next action");
			end_session(sup, i);
			return 0;
		}
		unpark(sup, i);
		orchd_step_adopt(st, p);
		ALLOC_GROW(sup->husks, sup->nhusks + 1, sup->ahusks);
		sup->husks[sup->nhusks++] = p;
		st->action_line = encode_action(st, spec, err, sizeof(err));
		if (!st->action_line) {
			orchd_step_fail(st, ORCHD_STEP_SPAWN_ERROR, "%s",
					err[0] ? err : "cannot encode the action message");
			return 1;
		}
		orchd_step_resume(st);
		return 1;
	}
	return 0;
}

/* Finished steps that may wait as sessions: parked (their done callback
 * runs with the others), or ended when no slot is free. */
static void park_sessions(struct orchd_supervisor *sup)
{
	for (size_t i = 0; i < sup->nsteps;) {
		struct orchd_step *st = sup->steps[i];

		long long kb;

		if (!st->want_park || st->jobs) {
			i++;
			continue;
		}
		if (sup->nparked >= sup->max_parked || st->fd_out < 0 || st->fd_in < 0 ||
		    st->proc != PROC_RUNNING || st->wq.len ||
		    sup->parked_kb + (kb = session_kb(st)) > sup->parked_budget_kb) {
			orchd_step_end_session(st);
			i++;
			continue;
		}
		st->park_kb = kb;
		sup->parked_kb += kb;
		orchd_step_park(st);
		take_out(sup->steps, &sup->nsteps, i);
		ALLOC_GROW(sup->parked, sup->nparked + 1, sup->aparked);
		sup->parked[sup->nparked++] = st;
		/* its result is told now, like a finished step's */
		ALLOC_GROW(sup->pending, sup->npending + 1, sup->apending);
		sup->pending[sup->npending++] = st;
	}
}

void orchd_supervisor_end_session(struct orchd_supervisor *sup, const char *id)
{
	for (size_t i = 0; i < sup->nparked; i++)
		if (!strcmp(sup->parked[i]->id, id)) {
			end_session(sup, i);
			return;
		}
}

void orchd_supervisor_close_sessions(struct orchd_supervisor *sup)
{
	while (sup->nparked)
		end_session(sup, sup->nparked - 1);
}

int orchd_supervisor_start(struct orchd_supervisor *sup, const struct orchd_step_spec *spec)
{
	struct orchd_step *st;
	char err[600];
	size_t nsources;

	if (sup->interrupted)
		return error("supervisor: not starting %s: interrupted",
			     spec->id ? spec->id : "a step");
	st = orchd_step_new(spec, &sup->hooks);
	if (!st)
		return -1;
	st->orchd_version = sup->orchd_version;
	st->on_request = on_request;
	st->request_arg = sup;
	ALLOC_GROW(sup->steps, sup->nsteps + 1, sup->asteps);
	sup->steps[sup->nsteps++] = st;

	if (spec->adopt && (!spec->sources || !json_object_array_length(spec->sources)) &&
	    adopt_session(sup, st, spec))
		return 0;
	if (make_workdir(spec, &st->workdir, err, sizeof(err)) < 0) {
		orchd_step_fail(st, ORCHD_STEP_SPAWN_ERROR, "%s", err);
		return 0;
	}
	st->action_line = encode_action(st, spec, err, sizeof(err));
	if (!st->action_line && err[0]) {
		orchd_step_fail(st, ORCHD_STEP_SPAWN_ERROR, "%s", err);
		return 0;
	}
	if (!st->action_line) {
		orchd_step_fail(st, ORCHD_STEP_SPAWN_ERROR, "cannot encode the action message: %s",
				strerror(errno));
		return 0;
	}
	if (spec->sandbox) {
		/* its sandbox, with its workdir; a private TMPDIR either way */
		struct orchd_sandbox_spec ss = *spec->sandbox;
		char *tmpdir = NULL, *dirs[2];
		const char **read;
		size_t n = 0;

		/* and the extension's own directory (its link and its target) */
		dirs[0] = exe_dir(st->exe, 0);
		dirs[1] = exe_dir(st->exe, 1);
		while (ss.read && ss.read[n])
			n++;
		read = xcalloc(n + 3, sizeof(*read));
		memcpy(read, ss.read, n * sizeof(*read));
		read[n] = dirs[0];
		read[n + 1] = dirs[1];
		ss.read = read;
		ss.workdir = st->workdir;
		st->cgroup = orchd_cgroup_new(ss.limits, err, sizeof(err));
		if (!st->cgroup && err[0]) {
			free(read);
			free(dirs[0]);
			free(dirs[1]);
			orchd_step_fail(st, ORCHD_STEP_SPAWN_ERROR, "%s", err);
			return 0;
		}
		ss.cgroup = st->cgroup;
		st->sandbox = orchd_sandbox_prepare(orchd_sandbox_probe(), &ss, err, sizeof(err));
		free(read);
		free(dirs[0]);
		free(dirs[1]);
		if (!st->sandbox) {
			orchd_step_fail(st, ORCHD_STEP_SPAWN_ERROR, "%s", err);
			return 0;
		}
		if (!orchd_sandbox_strict(st->sandbox)) {
			st->env = orchd_step_env(spec, st->workdir, NULL);
		} else {
			if (!orchd_sandbox_private_tmp(st->sandbox)) {
				tmpdir = xasprintf("%s/.tmp", st->workdir);
				mkdir(tmpdir, 0700);
			}
			st->env = orchd_step_env(spec, st->workdir, tmpdir ? tmpdir : "/tmp");
			free(tmpdir);
		}
		if (ss.limits) {
			st->output_max = ss.limits->output_bytes;
			st->cpu_limit_ms = ss.limits->cpu_time_ms;
		}
	} else {
		st->env = orchd_step_env(spec, st->workdir, NULL);
	}
	nsources = spec->sources && spec->action != OP_ACTION_DESCRIBE
			   ? json_object_array_length(spec->sources)
			   : 0;
	if (nsources) {
		/* fetched on the worker; spawned when that is done */
		json_object *copy = NULL;

		if (json_object_deep_copy((json_object *)(uintptr_t)spec->sources, &copy, NULL) < 0)
			die("out of memory");
		orchd_step_log(st, ORCHD_LOG_INFO, "fetching %zu source%s", nsources,
			       nsources == 1 ? "" : "s");
		submit_fetch(sup, st, copy, FETCH_SOURCES);
		return 0;
	}
	spawn_step(sup, st);
	return 0;
}

/* --- finishing ----------------------------------------------------------- */

static void step_done(struct orchd_supervisor *sup, struct orchd_step *st)
{
	struct orchd_step_result res;

	if (!st->silent) {
		/* a session that waits keeps its stdin and cgroup */
		if (!st->parked_once) {
			orchd_step_close_stdin(st);
			if (st->cgroup) {
				orchd_cgroup_verdict(st->cgroup, st->limit_hit,
						     sizeof(st->limit_hit));
				orchd_cgroup_free(st->cgroup);
				st->cgroup = NULL;
			}
		}
		orchd_step_result(st, &res);
		st->silent = 1;
		sup->opts.done(sup->opts.cb_data, st->ctx, st->id, &res);
	}
	/* waiting, or adopted meanwhile: its list owns it */
	if (st->parked || st->husk)
		return;
	orchd_step_free(st);
}

/* Adopted sessions whose result was told: nothing refers to them. */
static void free_husks(struct orchd_supervisor *sup)
{
	for (size_t i = 0; i < sup->nhusks;) {
		if (sup->husks[i]->silent) {
			orchd_step_free(sup->husks[i]);
			take_out(sup->husks, &sup->nhusks, i);
		} else {
			i++;
		}
	}
}

/* Move finished steps to the pending list, then run their callbacks (which
 * may start new steps). */
static void collect_finished(struct orchd_supervisor *sup)
{
	size_t i = 0;

	while (i < sup->nsteps) {
		struct orchd_step *st = sup->steps[i];

		if (!orchd_step_finished(st)) {
			i++;
			continue;
		}
		if (st->workdir && !st->keep_workdir && !st->workdir_removed) {
			/* removed off the loop (a workdir can be big); the
			 * step is done once it is gone */
			st->workdir_removed = 1;
			submit_fetch(sup, st, NULL, FETCH_CLEANUP);
			i++;
			continue;
		}
		ALLOC_GROW(sup->pending, sup->npending + 1, sup->apending);
		sup->pending[sup->npending++] = st;
		sup->steps[i] = sup->steps[--sup->nsteps];
	}
}

static void deliver_pending(struct orchd_supervisor *sup)
{
	while (sup->npending) {
		struct orchd_step *st = sup->pending[0];

		memmove(sup->pending, sup->pending + 1, --sup->npending * sizeof(*sup->pending));
		step_done(sup, st);
	}
}

/* --- the loop ------------------------------------------------------------ */

static void reap(struct orchd_supervisor *sup)
{
	/* Only our own children, by pid: never steal a child that another
	 * part of orchd waits for.  One pass over every step per SIGCHLD, so
	 * merged signals lose nothing. */
	for (size_t i = 0; i < sup->nsteps; i++) {
		struct orchd_step *st = sup->steps[i];
		struct rusage ru;
		int ws = 0, r;

		if (st->pid <= 0 || st->proc == PROC_REAPED)
			continue;
		r = op_child_reap(&st->child, 1, &ws, &ru);
		if (r == 0)
			continue;
		/* ECHILD: someone else reaped it */
		orchd_step_reaped(st, r < 0 ? 0 : ws, r < 0 ? NULL : &ru);
	}
}

static void interrupt(struct orchd_supervisor *sup, int sig)
{
	char text[64];

	orchd_supervisor_close_sessions(sup);
	if (sup->interrupted) {
		/* second signal: no more grace */
		for (size_t i = 0; i < sup->nsteps; i++)
			orchd_step_kill(sup->steps[i]);
		return;
	}
	sup->interrupted = sig;
	snprintf(text, sizeof(text), "interrupted by %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	for (size_t i = 0; i < sup->nsteps; i++)
		orchd_step_cancel(sup->steps[i], "interrupted", sig, text);
}

static int read_signals(struct orchd_supervisor *sup)
{
	struct signalfd_siginfo si;
	int chld = 0;

	while (read(sup->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			chld = 1;
		else if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)
			interrupt(sup, (int)si.ssi_signo);
	}
	return chld;
}

/* Read what a pipe has (a few chunks at most: fairness). */
static void read_pipe(struct orchd_supervisor *sup, struct orchd_step *st, int err)
{
	int *fd = err ? &st->fd_err : &st->fd_out;

	for (int i = 0; i < READS_PER_TURN && *fd >= 0; i++) {
		ssize_t n = read(*fd, sup->buf, sizeof(sup->buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			orchd_step_eof(st, err);
			return;
		}
		st->output_bytes += n;
		if (st->output_max && st->output_bytes > st->output_max) {
			char lim[32];

			orchd_format_size(lim, sizeof(lim), st->output_max);
			orchd_step_fail(st, ORCHD_STEP_FAILED,
					"exceeded its output_bytes limit (%s)", lim);
		}
		if (err)
			orchd_step_stderr(st, sup->buf, (size_t)n);
		else
			orchd_step_stdout(st, sup->buf, (size_t)n);
		if ((size_t)n < sizeof(sup->buf))
			return;
	}
}

static long long next_deadline(const struct orchd_supervisor *sup, long long dl)
{
	for (size_t i = 0; i < sup->nsteps; i++) {
		long long d = orchd_step_next_deadline(sup->steps[i]);

		if (d >= 0 && (dl < 0 || d < dl))
			dl = d;
	}
	return dl;
}

static void add_poll(struct orchd_supervisor *sup, size_t *n, int fd, short events, void *obj,
		     enum pwhich which)
{
	sup->pfd[*n].fd = fd;
	sup->pfd[*n].events = events;
	sup->pfd[*n].revents = 0;
	sup->pobj[*n] = obj;
	sup->pwhich[(*n)++] = which;
}

int orchd_supervisor_wait(struct orchd_supervisor *sup, long long deadline_ms)
{
	size_t n = 0, need;
	long long dl, now;
	int timeout, r, chld = 0;

	free_husks(sup);
	park_sessions(sup);
	collect_finished(sup);
	if (sup->npending) {
		deliver_pending(sup);
		return 0;
	}
	if (!sup->nsteps && !sup->nwatches && deadline_ms < 0)
		return 0;

	need = 2 + sup->nwatches + 4 * sup->nsteps;
	if (need > sup->apfd) {
		sup->apfd = need * 2;
		sup->pfd = xrealloc(sup->pfd, sup->apfd * sizeof(*sup->pfd));
		sup->pobj = xrealloc(sup->pobj, sup->apfd * sizeof(*sup->pobj));
		sup->pwhich = xrealloc(sup->pwhich, sup->apfd * sizeof(*sup->pwhich));
	}
	add_poll(sup, &n, sup->sfd, POLLIN, NULL, P_SIGNALS);
	if (sup->worker)
		add_poll(sup, &n, orchd_worker_fd(sup->worker), POLLIN, NULL, P_WORKER);
	for (size_t i = 0; i < sup->nwatches; i++)
		add_poll(sup, &n, sup->watches[i].fd, POLLIN, &sup->watches[i], P_WATCH);
	for (size_t i = 0; i < sup->nsteps; i++) {
		struct orchd_step *st = sup->steps[i];

		if (st->fd_rep >= 0)
			add_poll(sup, &n, st->fd_rep, POLLIN, st, P_REPORT);
		if (st->fd_in >= 0 && st->wq.len)
			add_poll(sup, &n, st->fd_in, POLLOUT, st, P_STDIN);
		if (st->fd_out >= 0)
			add_poll(sup, &n, st->fd_out, POLLIN, st, P_STDOUT);
		if (st->fd_err >= 0)
			add_poll(sup, &n, st->fd_err, POLLIN, st, P_STDERR);
	}

	dl = next_deadline(sup, deadline_ms);
	now = now_ms();
	if (dl < 0)
		timeout = -1;
	else if (dl <= now)
		timeout = 0;
	else
		timeout = dl - now > INT_MAX ? INT_MAX : (int)(dl - now);

	r = poll(sup->pfd, n, timeout);
	if (r < 0 && errno != EINTR)
		return error("supervisor: poll: %s", strerror(errno));
	for (size_t k = 0; r > 0 && k < n; k++) {
		struct orchd_step *st = sup->pobj[k];
		short re = sup->pfd[k].revents;

		if (!re)
			continue;
		switch (sup->pwhich[k]) {
		case P_SIGNALS:
			chld |= read_signals(sup);
			break;
		case P_WORKER:
			orchd_worker_collect(sup->worker);
			break;
		case P_WATCH: {
			struct watch *w = sup->pobj[k];

			w->fn(w->arg);
			break;
		}
		case P_REPORT:
			if (st->fd_rep >= 0)
				orchd_step_exec_report(st);
			break;
		case P_STDIN:
			if (re & (POLLERR | POLLHUP | POLLNVAL))
				orchd_step_close_stdin(st);
			else
				orchd_step_write(st);
			break;
		case P_STDOUT:
			if (st->fd_out >= 0)
				read_pipe(sup, st, 0);
			break;
		case P_STDERR:
			if (st->fd_err >= 0)
				read_pipe(sup, st, 1);
			break;
		}
	}
	if (chld)
		reap(sup);
	/* Flush what the messages above queued (most writes never block). */
	for (size_t i = 0; i < sup->nsteps; i++)
		if (sup->steps[i]->wq.len)
			orchd_step_write(sup->steps[i]);
	now = now_ms();
	for (size_t i = 0; i < sup->nsteps; i++)
		orchd_step_deadlines(sup->steps[i], now);
	park_sessions(sup);
	collect_finished(sup);
	deliver_pending(sup);
	return 0;
}

int orchd_supervisor_run(struct orchd_supervisor *sup)
{
	while (orchd_supervisor_running(sup))
		if (orchd_supervisor_wait(sup, -1) < 0)
			return -1;
	return 0;
}

size_t orchd_supervisor_running(const struct orchd_supervisor *sup)
{
	return sup->nsteps + sup->npending;
}

void orchd_supervisor_cancel_all(struct orchd_supervisor *sup, const char *reason)
{
	char *text = xasprintf("cancelled (%s)", reason ? reason : "cancelled");

	orchd_supervisor_close_sessions(sup);
	for (size_t i = 0; i < sup->nsteps; i++)
		orchd_step_cancel(sup->steps[i], reason ? reason : "cancelled", 0, text);
	free(text);
}

void orchd_supervisor_cancel(struct orchd_supervisor *sup, const char *id, const char *reason)
{
	char *text = xasprintf("cancelled (%s)", reason);

	for (size_t i = 0; i < sup->nsteps; i++)
		if (!strcmp(sup->steps[i]->id, id))
			orchd_step_cancel(sup->steps[i], reason, 0, text);
	free(text);
}

int orchd_supervisor_interrupted(struct orchd_supervisor *sup)
{
	/* signals that arrived since the last wait (e.g. between phases) */
	if (read_signals(sup))
		reap(sup);
	return sup->interrupted;
}

int orchd_supervisor_watch(struct orchd_supervisor *sup, int fd, void (*fn)(void *arg), void *arg)
{
	for (size_t i = 0; i < sup->nwatches; i++)
		if (sup->watches[i].fd == fd)
			return error("supervisor: fd %d is already watched", fd);
	ALLOC_GROW(sup->watches, sup->nwatches + 1, sup->awatches);
	sup->watches[sup->nwatches].fd = fd;
	sup->watches[sup->nwatches].fn = fn;
	sup->watches[sup->nwatches].arg = arg;
	sup->nwatches++;
	return 0;
}

/* --- creation and teardown ----------------------------------------------- */

struct orchd_supervisor *orchd_supervisor_new(const struct orchd_supervisor_opts *opts)
{
	struct orchd_supervisor *sup;
	struct sigaction ign;
	struct rlimit rl;
	sigset_t set;

	if (!opts || !opts->done) {
		error("supervisor: a done callback is required");
		return NULL;
	}
	sup = xcalloc(1, sizeof(*sup));
	sup->reaper_exe = orchd_reaper_path();
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		sup->old_nofile = rl;
		sup->have_nofile = 1;
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	sup->opts = *opts;
	/* each waiting session holds three fds: leave most of them to the
	 * running steps */
	sup->max_parked = opts->max_sessions ? opts->max_sessions : ORCHD_MAX_SESSIONS;
	if (sup->have_nofile && rl.rlim_cur != RLIM_INFINITY &&
	    sup->max_parked > (rl.rlim_cur > 512 ? (rl.rlim_cur - 256) / 8 : 0))
		sup->max_parked = rl.rlim_cur > 512 ? (rl.rlim_cur - 256) / 8 : 0;
	sup->parked_budget_kb = opts->max_sessions_kb ? opts->max_sessions_kb : session_budget_kb();
	sup->hooks.log = opts->log;
	sup->hooks.progress = opts->progress;
	sup->hooks.done = opts->done;
	sup->hooks.output = opts->output;
	sup->hooks.mask = opts->mask;
	sup->hooks.log_lines = opts->log_lines;
	sup->hooks.cb_data = opts->cb_data;
	sup->orchd_version = xstrdup(opts->orchd_version ? opts->orchd_version : ORCHD_VERSION);

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, &sup->old_mask) < 0) {
		error("supervisor: cannot block signals: %s", strerror(errno));
		goto fail;
	}
	sup->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sup->sfd < 0) {
		error("supervisor: signalfd: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &sup->old_mask, NULL);
		goto fail;
	}
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &sup->old_pipe);
	sigaction(SIGHUP, &ign, &sup->old_hup);
	return sup;
fail:
	free(sup->orchd_version);
	free(sup);
	return NULL;
}

static void step_teardown(struct orchd_step *st)
{
	if (st->pid > 0 && (st->proc != PROC_REAPED || st->fd_out >= 0 || st->fd_err >= 0))
		kill(-st->pid, SIGKILL);
	if (st->pid > 0 && st->proc != PROC_REAPED) {
		op_child_reap(&st->child, 0, NULL, NULL);
		st->proc = PROC_REAPED;
	}
	if (st->workdir && !st->keep_workdir)
		op_rmtree(st->workdir); /* at exit: now */
	orchd_step_free(st);
}

void orchd_supervisor_free(struct orchd_supervisor *sup)
{
	if (!sup)
		return;
	free(sup->reaper_exe);
	/* fetches in flight stop, and are waited for: they use the steps */
	sup->closing = 1;
	for (size_t i = 0; i < sup->nsteps; i++)
		sup->steps[i]->cancel = 1;
	orchd_worker_free(sup->worker);
	for (size_t i = 0; i < sup->nsteps; i++)
		step_teardown(sup->steps[i]);
	for (size_t i = 0; i < sup->npending; i++)
		if (!sup->pending[i]->parked && !sup->pending[i]->husk)
			step_teardown(sup->pending[i]);
	for (size_t i = 0; i < sup->nparked; i++)
		step_teardown(sup->parked[i]);
	for (size_t i = 0; i < sup->nhusks; i++)
		orchd_step_free(sup->husks[i]);
	orchd_cgroup_sweep(); /* the cgroups that were still busy */
	free(sup->steps);
	free(sup->pending);
	free(sup->parked);
	free(sup->husks);
	free(sup->watches);
	free(sup->pfd);
	free(sup->pobj);
	free(sup->pwhich);
	close(sup->sfd);
	sigaction(SIGPIPE, &sup->old_pipe, NULL);
	sigaction(SIGHUP, &sup->old_hup, NULL);
	sigprocmask(SIG_SETMASK, &sup->old_mask, NULL);
	free(sup->orchd_version);
	free(sup);
}
