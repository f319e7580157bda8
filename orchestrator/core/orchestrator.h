/*
 * core/orchestrator: one command that changes the world (run, plan,
 * destroy), from a validated pipeline to its exit code (the Orchestrator
 * of README's "Concepts").  It is a short sequence; each step is another module's:
 *
 *   open      the console and the journal of the run (core/logging)
 *   select    the graph and the selected instances (core/graph)
 *   lock      the state engine and the pipeline-wide lock (core/state)
 *   load      each instance's stored record; --only-stale/--only-failed
 *             (core/scheduler, core/refs)
 *   validate  `validate` for every selected instance, before any other
 *             action: nothing changes in the world when one config is
 *             invalid (core/scheduler)
 *   act       the action in dependency order (reverse for destroy), each
 *             record stored off the event loop (core/scheduler)
 *   report    outputs, summary, JSON report, JUnit, per-instance logs
 *             (core/report), written even when interrupted
 *
 * and one cleanup path.
 *
 * Return value: the process exit code (enum orchd_exit in common/util.h):
 * 0 everything succeeded (or there was nothing to do), 1 an instance
 * failed, 2 an extension rejected its configuration (validate), 3 a system
 * or state error (lock timeout, state unreadable or unwritable), 130/143
 * interrupted.  With detailed_exitcode (plan): 0 no changes, 2 changes, 1
 * error.
 */
#ifndef ORCHD_CORE_ORCHESTRATOR_H
#define ORCHD_CORE_ORCHESTRATOR_H

#include "core/report.h"
#include <stddef.h>

#include "core/loader.h"
#include "models/pipeline.h"

enum orchd_verb {
	ORCHD_VERB_RUN = 0,  /* validate + apply */
	ORCHD_VERB_PLAN,     /* validate + plan */
	ORCHD_VERB_DESTROY,  /* validate + destroy, reverse order */
	ORCHD_VERB_VALIDATE, /* validate only: no action, no report; its run directory is removed */
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
	int only_stale;	       /* run only instances whose inputs changed */
	int only_failed;       /* run only instances whose last run failed */
	const char *state_dir; /* --state-dir, NULL: from the pipeline */
	long lock_timeout_ms;  /* --lock-timeout */
	int detailed_exitcode; /* plan: 0 no changes, 2 changes, 1 error */
	/* --report, --junit, --trace, --metrics, --report-html (NULL: none) */
	struct orchd_report_paths reports;
	int log_json; /* --log-format json */
	int workers;  /* --workers: the steps run on `orchd worker`s */
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

/* Number of online CPUs, at least 1. */
int orchd_ncpus(void);

#endif
