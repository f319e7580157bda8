/*
 * core/orchestrator: run, plan, destroy as one short sequence (see
 * orchestrator.h).
 */
#include "core/orchestrator.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "core/graph.h"
#include "core/logging.h"
#include "core/report.h"
#include "core/scheduler.h"
#include "core/state.h"
#include "handlers/remote.h"
#include "handlers/sandbox.h"
#include "crypto.h"
#include "interfaces/engine.h"
#include "util.h"

/* Everything one command holds, released on the one cleanup path. */
struct command {
	struct orchd_console *con;
	struct orchd_journal *journal;
	const char **ids;
	struct orchd_graph g;
	unsigned char *selected;
	int usage; /* a usage error found late (exit 2) */
	char *state_dir, *run_id, *run_dir, *work_dir, *pipeline_dir;
	struct orchd_engine *eng;
	int locked;
	struct orchd_sched *sched;
	char *hide[5];	   /* what extensions must not see (isolation strict) */
	long long started; /* unix ms */
};

int orchd_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

static long long unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum op_action verb_action(enum orchd_verb v)
{
	return v == ORCHD_VERB_PLAN	 ? OP_ACTION_PLAN
	       : v == ORCHD_VERB_DESTROY ? OP_ACTION_DESTROY
					 : OP_ACTION_APPLY;
}

/* The directory of the pipeline file, absolute when it can be. */
static char *pipeline_dir(const char *file)
{
	char *abs = realpath(file, NULL), *slash;

	if (!abs)
		abs = xstrdup(file);
	slash = strrchr(abs, '/');
	if (!slash) {
		free(abs);
		return xstrdup(".");
	}
	if (slash == abs)
		slash[1] = '\0';
	else
		*slash = '\0';
	return abs;
}

/* open: the console and the journal of the run. */
static void open_console(struct command *c, const struct orchd_pipeline *p,
			 const struct orchd_run_opts *o)
{
	struct orchd_console_opts co = {NULL, ORCHD_LOG_INFO, -1, -1};
	struct orchd_journal_opts jo = {o->log_json, o->output == ORCHD_OUTPUT_GROUPED,
					ORCHD_LOG_INFO};

	if (o->quiet)
		co.level = jo.min_level = ORCHD_LOG_WARNING;
	if (o->verbose)
		co.level = jo.min_level = ORCHD_LOG_DEBUG;
	c->con = orchd_console_new(&co);
	if (!c->con)
		die("out of memory");
	c->ids = xcalloc(p->ninst ? p->ninst : 1, sizeof(*c->ids));
	for (size_t i = 0; i < p->ninst; i++)
		c->ids[i] = p->inst[i].id;
	c->journal = orchd_journal_new(c->con, c->ids, p->ninst, &jo);
	/* the passphrase itself is a secret of every run */
	for (const char *const *v = orchd_crypto_masked(); *v; v++)
		orchd_mask_add(orchd_console_mask(c->con), *v);
}

/* select: the graph, and what the command's options pick from it. */
static int select_instances(struct command *c, const struct orchd_pipeline *p,
			    const struct orchd_run_opts *o)
{
	struct orchd_selection sel = {o->targets,   o->ntargets,
				      o->with_deps, o->verb == ORCHD_VERB_DESTROY,
				      o->excludes,  o->nexcludes};
	char err[512];

	orchd_graph_build(&c->g, p);
	c->selected = xcalloc(p->ninst ? p->ninst : 1, 1);
	if (orchd_graph_select(&c->g, p, &sel, c->selected, err, sizeof(err)) < 0)
		return error("%s", err);
	return 0;
}

/* lock: the engine and the pipeline-wide lock. */
static int lock_state(struct command *c, const struct orchd_pipeline *p,
		      const struct orchd_run_opts *o)
{
	char err[1024];

	c->state_dir = orchd_state_dir(p, o->state_dir);
	if (orchd_state_open(p, c->state_dir, &c->eng, err, sizeof(err)) < 0)
		return error("%s", err);
	c->run_id = orchd_run_id_new();
	if (orchd_state_lock(c->eng, c->run_id, o->argc, o->argv, o->lock_timeout_ms, err,
			     sizeof(err)) < 0)
		return error("%s", err);
	c->locked = 1;
	return 0;
}

/*
 * An extension whose manifest says "secrets": true stores secret state (a
 * Terraform state, say): without a passphrase that state could not be
 * stored after the extension changed the world, so refuse before anything
 * runs.
 */
static int check_passphrase(struct command *c)
{
	const char *id, *type;
	char *pass = NULL;
	char perr[256];

	if (!orchd_sched_needs_secrets(c->sched, &id, &type))
		return 0;
	if (orchd_crypto_passphrase(&pass, perr, sizeof(perr)) < 0)
		return error("%s", perr);
	if (pass) {
		orchd_crypto_free_secret(pass, strlen(pass));
		return 0;
	}
	return error("%s: extension %s stores secrets, and no passphrase is set "
		     "(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE); nothing was run",
		     id, type);
}

/* What no extension may see under isolation strict: the state directory
 * (every stack, the lock, the other workdirs), the pipeline file (every
 * other instance's config) and the passphrase file. */
static void hidden_paths(struct command *c, const struct orchd_pipeline *p)
{
	const char *from[4] = {c->state_dir, p->file, getenv("ORCHD_PASSPHRASE_FILE"),
			       getenv("PULUMI_CONFIG_PASSPHRASE_FILE")};
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(from); i++) {
		char *real = from[i] && *from[i] ? realpath(from[i], NULL) : NULL;

		if (real)
			c->hide[n++] = real;
	}
	c->hide[n] = NULL;
}

/* The isolation of this run, in one line; a warning when strict has to do
 * with less on this host. */
static void announce_isolation(struct command *c)
{
	const struct orchd_sandbox_host *h;
	char line[256];

	if (!orchd_sched_any_strict(c->sched))
		return;
	h = orchd_sandbox_probe();
	orchd_sandbox_describe(h, line, sizeof(line));
	orchd_console_logf(c->con, NULL, ORCHD_LOG_INFO, "isolation: %s", line);
	if (!h->seccomp)
		orchd_console_logf(
			c->con, NULL, ORCHD_LOG_WARNING,
			"isolation: the kernel refuses a seccomp filter here: extensions "
			"are not kept from ptrace, bpf, keyctl, perf_event_open and the "
			"like; see orchd doctor");
	if (!h->namespaces && h->landlock_abi)
		orchd_console_logf(c->con, NULL, ORCHD_LOG_WARNING,
				   "isolation: no namespaces on this host (%s): falling back to "
				   "Landlock, which hides the state directory and the pipeline "
				   "file; extensions see other processes and share /tmp; see "
				   "orchd doctor",
				   h->why);
	else if (!h->namespaces)
		orchd_console_logf(c->con, NULL, ORCHD_LOG_WARNING,
				   "isolation: no namespaces and no Landlock on this host (%s): "
				   "falling back to seccomp and no_new_privs; extensions can read "
				   "the state directory and the pipeline file; see orchd doctor",
				   h->why);
}

/*
 * What a dead run left (orchd killed with -9, the machine lost): its
 * workdirs, which may hold plaintext an extension was about to hand over.
 * A run that ended wrote its report.json; one that did not is dead, since
 * we hold the lock.  (Workdirs kept by --keep-workdir belong to runs that
 * ended, and stay.)
 */
static void clean_dead_runs(struct command *c)
{
	char *runs = xasprintf("%s/runs", c->state_dir);
	DIR *d = opendir(runs);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char *rep, *work;

		if (de->d_name[0] == '.' || !strcmp(de->d_name, c->run_id))
			continue;
		rep = xasprintf("%s/%s/report.json", runs, de->d_name);
		work = xasprintf("%s/%s/work", runs, de->d_name);
		if (access(rep, F_OK) < 0 && errno == ENOENT && access(work, F_OK) == 0) {
			if (op_rmtree(work) < 0)
				orchd_console_logf(c->con, NULL, ORCHD_LOG_WARNING,
						   "cannot remove %s, left by a run that did not "
						   "finish: %s",
						   work, strerror(errno));
			else
				orchd_console_logf(c->con, NULL, ORCHD_LOG_INFO,
						   "removed the workdirs of run %s, which did not "
						   "finish",
						   de->d_name);
		}
		free(rep);
		free(work);
	}
	if (d)
		closedir(d);
	free(runs);
}

static void say_adopted(void *arg, const char *stack, const char *text)
{
	struct command *c = arg;

	if (stack)
		orchd_console_logf(c->con, NULL, ORCHD_LOG_WARNING, "stack %s: %s", stack, text);
	else
		orchd_console_logf(c->con, NULL, ORCHD_LOG_WARNING, "%s", text);
}

/* load: the scheduler over the selection, with every stored record. */
static int load_records(struct command *c, const struct orchd_pipeline *p,
			const struct orchd_registry *reg, const struct orchd_run_opts *o)
{
	struct orchd_sched_opts so;
	char *abs;

	c->run_dir = xasprintf("%s/runs/%s", c->state_dir, c->run_id);
	/* extensions run in their workdir: give them absolute paths */
	abs = realpath(c->state_dir, NULL);
	c->work_dir = abs ? xasprintf("%s/runs/%s/work", abs, c->run_id)
			  : xasprintf("%s/work", c->run_dir);
	free(abs);
	c->pipeline_dir = pipeline_dir(p->file);
	hidden_paths(c, p);
	memset(&so, 0, sizeof(so));
	so.p = p;
	so.g = &c->g;
	so.reg = reg;
	so.eng = c->eng;
	so.con = c->con;
	so.journal = c->journal;
	so.run_id = c->run_id;
	so.work_dir = c->work_dir;
	so.pipeline_dir = c->pipeline_dir;
	so.action = verb_action(o->verb);
	so.parallelism = (size_t)(o->parallelism > 0	    ? o->parallelism
				  : p->core.parallelism > 0 ? p->core.parallelism
							    : orchd_ncpus());
	so.keep_going = o->keep_going;
	so.keep_workdir = o->keep_workdir;
	so.hide = (const char *const *)(void *)c->hide;
	so.workers = (o->workers || p->core.workers) && o->verb != ORCHD_VERB_VALIDATE;
	/* a session cannot span two hosts: validate here, the action there */
	so.sessions = o->verb != ORCHD_VERB_VALIDATE && !so.workers;
	if (so.workers && p->core.engine.type != ORCHD_ENGINE_ETCD) {
		c->usage = 1;
		return error("%s: running on workers (%s) needs core.engine.type etcd: the "
			     "workers reach the run through it",
			     p->file, o->workers ? "--workers" : "core.execution.workers");
	}
	c->sched = orchd_sched_new(&so, c->selected);
	if (!c->sched)
		return -1;
	if (o->verb != ORCHD_VERB_PLAN && o->verb != ORCHD_VERB_VALIDATE && check_passphrase(c) < 0)
		return -1;
	if (orchd_sched_load(c->sched) < 0)
		return -1;
	orchd_sched_filter(c->sched, o->only_stale, o->only_failed);
	if (o->verb == ORCHD_VERB_DESTROY)
		orchd_sched_skip_unapplied(c->sched);
	for (size_t i = 0; i < p->ninst; i++)
		orchd_console_add_instance(c->con, p->inst[i].id);
	/* the run's directory exists even when there is nothing to do: its
	 * report says so */
	if (orchd_mkdir_p(c->run_dir, 0700, NULL, 0) < 0)
		return error("cannot create %s: %s", c->run_dir, strerror(errno));
	clean_dead_runs(c);
	return 0;
}

/* report: outputs and summary on the console, the files. */
static int report(struct command *c, const struct orchd_pipeline *p, const struct orchd_run_opts *o,
		  int rc)
{
	struct orchd_report_node *rn;
	size_t n = 0;
	int ret;

	rn = orchd_sched_report(c->sched, &n);
	ret = orchd_report_write_all(c->run_id, p->name,
				     o->verb == ORCHD_VERB_PLAN	     ? "plan"
				     : o->verb == ORCHD_VERB_DESTROY ? "destroy"
								     : "apply",
				     rc, c->started, unix_ms(), rn, n, orchd_console_mask(c->con),
				     &o->reports, c->run_dir);
	free(rn);
	return ret;
}

/* The exit code once the phases ran (or stopped). */
static int outcome(struct command *c, const struct orchd_run_opts *o, int acted)
{
	int rc = ORCHD_EXIT_OK, sig = orchd_sched_interrupted(c->sched);

	if (orchd_sched_config_error(c->sched))
		rc = ORCHD_EXIT_USAGE;
	else if (orchd_sched_system_error(c->sched))
		rc = ORCHD_EXIT_SYSTEM; /* an extension could not be started */
	else if (acted && orchd_sched_any_failed(c->sched))
		rc = ORCHD_EXIT_FAILED;
	/* A state that could not be written outranks the failure it caused. */
	if (orchd_sched_state_error(c->sched))
		rc = ORCHD_EXIT_SYSTEM;
	if (o->verb == ORCHD_VERB_PLAN && o->detailed_exitcode && rc == ORCHD_EXIT_OK &&
	    orchd_sched_any_changes(c->sched))
		rc = 2;
	if (sig) {
		orchd_console_logf(c->con, NULL, ORCHD_LOG_ERROR, "interrupted by %s",
				   sig == SIGINT ? "SIGINT" : "SIGTERM");
		rc = sig == SIGINT ? ORCHD_EXIT_SIGINT : ORCHD_EXIT_SIGTERM;
	}
	return rc;
}

int orchd_orchestrate(struct orchd_pipeline *p, const struct orchd_registry *reg,
		      const struct orchd_run_opts *o)
{
	struct command c;
	char err[1024];
	int rc = ORCHD_EXIT_USAGE, acted = 0;

	memset(&c, 0, sizeof(c));
	c.started = unix_ms();
	srandom((unsigned)(now_ms() ^ getpid()));
	open_console(&c, p, o);
	if (select_instances(&c, p, o) < 0)
		goto out;
	rc = ORCHD_EXIT_SYSTEM;
	if (lock_state(&c, p, o) < 0)
		goto out;
	/* what the workers of a coordinator that died handed back */
	if (o->verb == ORCHD_VERB_RUN || o->verb == ORCHD_VERB_DESTROY) {
		if (orchd_remote_adopt(c.eng, c.run_id, say_adopted, &c, err, sizeof(err)) < 0) {
			error("%s", err);
			goto out;
		}
	}
	if (load_records(&c, p, reg, o) < 0) {
		if (!c.sched || c.usage)
			rc = ORCHD_EXIT_USAGE; /* an extension is missing */
		goto out;
	}
	if (!orchd_sched_count(c.sched))
		orchd_console_log(c.con, NULL, ORCHD_LOG_INFO, "nothing to do");
	announce_isolation(&c);

	if (orchd_sched_run(c.sched, OP_ACTION_VALIDATE) < 0)
		goto out_report;
	if (orchd_sched_config_error(c.sched) && !orchd_sched_interrupted(c.sched)) {
		orchd_console_log(c.con, NULL, ORCHD_LOG_ERROR,
				  "configuration rejected by validate: nothing was changed");
		orchd_sched_summary(c.sched);
	} else if ((orchd_sched_system_error(c.sched) || orchd_sched_any_failed(c.sched)) &&
		   !orchd_sched_interrupted(c.sched)) {
		orchd_console_log(c.con, NULL, ORCHD_LOG_ERROR,
				  "validate could not run every instance: nothing was changed");
		orchd_sched_summary(c.sched);
		acted = 1; /* an instance failed: exit 1, unless a system error */
	} else if (o->verb == ORCHD_VERB_VALIDATE) {
		if (o->verbose)
			orchd_sched_summary(c.sched);
		rc = outcome(&c, o, 0);
		goto out_report;
	} else if (!orchd_sched_interrupted(c.sched)) {
		if (orchd_sched_run(c.sched, verb_action(o->verb)) < 0)
			goto out_report;
		acted = 1;
		orchd_sched_print_outputs(c.sched);
		orchd_sched_summary(c.sched);
	}
	rc = outcome(&c, o, acted);
out_report:
	/* Unlock syncs what the run wrote (STATE.md): a state that is not
	 * durable is a state error, and the report must say so. */
	if (c.locked) {
		c.locked = 0;
		if (orchd_engine_unlock(c.eng, err, sizeof(err)) < 0) {
			error("%s", err);
			if (rc == ORCHD_EXIT_OK || rc == ORCHD_EXIT_FAILED)
				rc = ORCHD_EXIT_SYSTEM;
		}
	}
	if (o->verb == ORCHD_VERB_VALIDATE)
		op_rmtree(c.run_dir); /* validate leaves nothing behind */
	else if (report(&c, p, o, rc) < 0 && rc == ORCHD_EXIT_OK)
		rc = ORCHD_EXIT_SYSTEM;
out:
	orchd_sched_free(c.sched);
	if (c.eng) {
		if (c.locked && orchd_engine_unlock(c.eng, err, sizeof(err)) < 0)
			error("%s", err);
		orchd_engine_close(c.eng);
	}
	orchd_journal_free(c.journal);
	orchd_console_free(c.con);
	orchd_graph_release(&c.g);
	free(c.selected);
	free(c.ids);
	free(c.state_dir);
	free(c.run_id);
	free(c.run_dir);
	free(c.work_dir);
	free(c.pipeline_dir);
	for (size_t i = 0; c.hide[i]; i++)
		free(c.hide[i]);
	return rc;
}
