/*
 * core/scheduler: runs the selected instances of a pipeline through one
 * phase at a time (validate, then the command's action), as extension
 * steps of the supervisor (handlers/supervisor.h).
 *
 * Each selected instance is a node whose state changes only through one
 * transition table (node_next[][] in scheduler.c, in the manner of
 * s6-supervise):
 *
 *   PENDING --deps met--> READY --slot--> RUNNING --ok/failed/cancelled--> STORING
 *   STORING --stored--> DONE | FAILED | CANCELLED      (the record is durable)
 *   RUNNING --retryable failure--> WAITING --backoff elapsed--> READY
 *   READY --its references cannot be resolved--> FAILED
 *   PENDING --a dependency failed or was skipped--> SKIPPED
 *   PENDING, READY, WAITING --fail-fast stop or interrupt at the end--> SKIPPED
 *
 * Entering a state does its part: READY joins the ready queue (a min-heap
 * by file order), WAITING the timer heap, DONE counts down its dependents'
 * counters (a dependent becomes READY at zero), FAILED/CANCELLED/SKIPPED
 * skip the pending dependents and, unless keep_going, stop new starts.
 * The status text of a node ("success", "timed out", "skipped", ...) is
 * derived from its state and cause when it is reported.
 *
 * Nothing slow runs on the event loop: a finished step's record (state,
 * outputs, history) is written by the scheduler's state worker
 * (core/worker.h) while the loop serves the other pipes, timers and
 * signals; the node moves on to DONE, and its dependents start, only once
 * the write is durable.  A failed write fails the node (cause "store").
 *
 * Phases: the validate phase runs `validate` for every selected node with
 * no ordering and no record; the action phase (plan, apply, destroy) runs
 * in dependency order (dependents first for destroy), stores a record for
 * apply and destroy (a successful destroy removes the stack), retries
 * retryable failures with backoff and jitter, and validates again, right
 * before the action, a node whose references were not known at the
 * validate phase and that rejected them there.
 *
 * Ownership: the scheduler borrows everything in its opts (which must
 * outlive it) and owns its nodes, the stored records it read, the outputs
 * of this run, its supervisor and its worker.  Errors: functions returning
 * int return 0 or -1 after error(); step failures are node states, never
 * return values.
 */
#ifndef ORCHD_CORE_SCHEDULER_H
#define ORCHD_CORE_SCHEDULER_H

#include <stddef.h>

#include "core/graph.h"
#include "core/loader.h"
#include "core/logging.h"
#include "core/report.h"
#include "interfaces/engine.h"
#include "models/pipeline.h"
#include "orchd_protocol.h"

struct orchd_sched_opts {
	const struct orchd_pipeline *p;
	const struct orchd_graph *g;
	const struct orchd_registry *reg;
	struct orchd_engine *eng; /* stacks read and written; NULL: none */
	struct orchd_console *con;
	struct orchd_journal *journal;
	const char *run_id;
	const char *work_dir;	  /* parent of the private workdirs (absolute) */
	const char *pipeline_dir; /* ORCHD_PIPELINE_DIR (absolute) */
	enum op_action action;	  /* the command's: plan, apply or destroy */
	/* an action follows validate (not `orchd validate`): an extension
	 * that can may wait for it in its process (PROTOCOL.md §7.6) */
	int sessions;
	size_t parallelism; /* at least 1 */
	int keep_going;
	int keep_workdir;
	/* orchd run --workers: the action steps go to `orchd worker`s through
	 * the work queue in eng (an etcd engine, locked; handlers/remote.h);
	 * validate runs here */
	int workers;
	/* what no extension sees under isolation strict: the state
	 * directory, the pipeline file ... (absolute, NULL-terminated) */
	const char *const *hide;
};

struct orchd_sched;

/*
 * A scheduler over the nodes selected[i] != 0 (graph order of
 * orchd_graph_select()).  Every instance gets its stack name and
 * extension; an enabled instance whose extension is missing is an error
 * (printed; NULL is returned).
 */
struct orchd_sched *orchd_sched_new(const struct orchd_sched_opts *o,
				    const unsigned char *selected);
void orchd_sched_free(struct orchd_sched *s);

/* Read every instance's stored record (stored secrets join the mask).
 * 0, or -1 after error(). */
int orchd_sched_load(struct orchd_sched *s);

/* destroy: an instance without a stack (never applied, or destroyed
 * already) has nothing to destroy: it is left out, with a line saying so,
 * and no extension is started for it. */
void orchd_sched_skip_unapplied(struct orchd_sched *s);

/* --only-stale (core/refs.h: orchd_refs_stale()) and --only-failed (the
 * last action did not succeed): keep the selected nodes that are either. */
void orchd_sched_filter(struct orchd_sched *s, int only_stale, int only_failed);

/* Selected nodes. */
size_t orchd_sched_count(const struct orchd_sched *s);
/* 1 when a selected node's extension stores secrets (its manifest says
 * so): its id in *id. */
int orchd_sched_needs_secrets(const struct orchd_sched *s, const char **id, const char **type);

/*
 * Run every selected node through phase (OP_ACTION_VALIDATE, or the
 * command's action) until none can move.  0, or -1 on a system error of
 * the event loop.
 */
int orchd_sched_run(struct orchd_sched *s, enum op_action phase);

/* SIGINT or SIGTERM when the run was interrupted, else 0. */
int orchd_sched_interrupted(struct orchd_sched *s);
/* The validate phase rejected a config. */
int orchd_sched_config_error(const struct orchd_sched *s);
/* A record could not be written. */
int orchd_sched_state_error(const struct orchd_sched *s);
/* An extension could not be started (its workdir, its sandbox, its exec):
 * the host's fault, not the extension's. */
int orchd_sched_system_error(const struct orchd_sched *s);
/* After the action phase: a node did not end well (failed, skipped,
 * cancelled). */
int orchd_sched_any_failed(const struct orchd_sched *s);
/* A node's result said changed. */
int orchd_sched_any_changes(const struct orchd_sched *s);

/* A selected node runs under isolation strict. */
int orchd_sched_any_strict(const struct orchd_sched *s);

/* Print the outputs of this run (apply) and the summary table. */
void orchd_sched_print_outputs(struct orchd_sched *s);
void orchd_sched_summary(struct orchd_sched *s);

/* The selected nodes as report rows (borrowed from s; free the array).
 * *n receives their number. */
struct orchd_report_node *orchd_sched_report(const struct orchd_sched *s, size_t *n);

#endif
