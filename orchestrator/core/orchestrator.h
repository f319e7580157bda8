/*
 * core/orchestrator: the scheduler (architecture.md's Orchestrator).
 *
 * Given a validated pipeline, the discovered extensions and the options of
 * one command (run, plan or destroy), it
 *   1. selects the instances (enabled, --target/--with-deps, --exclude,
 *      --only-stale, --only-failed);
 *   2. opens the state engine and takes the pipeline-wide lock;
 *   3. runs `validate` for every selected instance, all before any other
 *      action: nothing changes in the world when one config is invalid;
 *   4. runs the action itself in dependency order (reverse order for
 *      destroy): an instance starts as soon as its dependencies are done (no
 *      level barriers), at most `parallelism` at a time; fail-fast unless
 *      keep_going; dependents of a failed instance are skipped; retryable
 *      failures are retried up to max_attempts with exponential backoff and
 *      jitter;
 *   5. stores each instance's state and outputs in its stack, appends its
 *      history, prints the summary and writes the reports.
 *
 * Everything is driven by one event loop (handlers/extension's supervisor);
 * backoff timers are deadlines of that loop.
 *
 * Return value: the process exit code (enum orchd_exit in common/util.h):
 * 0 everything succeeded, 1 an instance failed, 2 an extension rejected its
 * configuration (validate), 3 a system or state error (lock timeout, state
 * unreadable), 130/143 interrupted.  With detailed_exitcode (plan): 0 no
 * changes, 2 changes, 1 error.
 */
#ifndef ORCHD_CORE_ORCHESTRATOR_H
#define ORCHD_CORE_ORCHESTRATOR_H

#include <stddef.h>

#include "core/loader.h"
#include "models/pipeline.h"

enum orchd_verb {
	ORCHD_VERB_RUN = 0, /* validate + apply */
	ORCHD_VERB_PLAN,    /* validate + plan */
	ORCHD_VERB_DESTROY, /* validate + destroy, reverse order */
};

enum orchd_output_mode {
	ORCHD_OUTPUT_STREAM = 0,  /* lines as they come, prefixed */
	ORCHD_OUTPUT_GROUPED = 1, /* each instance's lines as one block when it ends */
};

struct orchd_run_opts {
	enum orchd_verb verb;
	int parallelism;	    /* 0: core.parallelism, else the number of CPUs */
	int keep_going;		    /* independent branches continue after a failure */
	int keep_workdir;	    /* keep the private working directories */
	const char *const *targets; /* "TYPE.NAME" (or unique NAME) */
	size_t ntargets;
	int with_deps; /* targets pull in their dependencies (run, plan) */
	const char *const *excludes;
	size_t nexcludes;
	int only_stale;		 /* run only instances whose inputs changed */
	int only_failed;	 /* run only instances whose last run failed */
	const char *state_dir;	 /* --state-dir, NULL: from the pipeline */
	long lock_timeout_ms;	 /* --lock-timeout */
	int detailed_exitcode;	 /* plan: 0 no changes, 2 changes, 1 error */
	const char *report_path; /* --report FILE (JSON), NULL: none */
	const char *junit_path;	 /* --junit FILE, NULL: none */
	int log_json;		 /* --log-format json */
	enum orchd_output_mode output;
	int quiet, verbose;
	int argc; /* the command line, recorded with the lock */
	char *const *argv;
};

#define ORCHD_RUN_OPTS_INIT                                  \
	{                                                    \
		.verb = ORCHD_VERB_RUN, .lock_timeout_ms = 0 \
	}

/* Run one command.  p must have been validated (orchd_pipeline_validate()
 * with the registry's types).  Returns the exit code; prints its own
 * diagnostics. */
int orchd_orchestrate(struct orchd_pipeline *p, const struct orchd_registry *reg,
		      const struct orchd_run_opts *opts);

enum orchd_show {
	ORCHD_SHOW_STATUS = 0, /* last action, status, time, stale */
	ORCHD_SHOW_OUTPUTS,    /* stored outputs */
	ORCHD_SHOW_HISTORY,    /* each stack's history */
};

/*
 * `orchd status|outputs|history`: read the engine (no lock, no extension
 * started) and print to stdout, as text or JSON.  instance (TYPE.NAME or
 * NAME) limits it to one; limit > 0 keeps the last entries of a history.
 * show_secrets prints secret outputs in clear (needs the passphrase).
 * Returns the exit code.
 */
int orchd_show(struct orchd_pipeline *p, enum orchd_show what, const char *instance,
	       const char *state_dir, int json, int show_secrets, long limit);

/* Number of online CPUs, at least 1. */
int orchd_ncpus(void);

#endif
