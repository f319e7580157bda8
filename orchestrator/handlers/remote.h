/*
 * handlers/remote: the work queue in etcd that lets `orchd worker`s run the
 * steps of one coordinating `orchd run --workers` (README, "Running on many
 * machines").  Both ends are here, so that the key layout lives in one file.
 *
 * Keys, under the etcd engine's prefix P (interfaces/STATE.md):
 *
 *   P/work/workers/NAME        a worker: {"name","host","pid","labels"}, on
 *                              the worker's lease
 *   P/work/queue/ID            a job (the step of instance ID), put by the
 *                              coordinator, fenced on its pipeline lock
 *   P/work/claims/ID           the claim of a worker, on the worker's lease;
 *                              its create revision is the fencing token
 *   P/work/results/ID          the step's end, written by the claimant only
 *                              while its claim is the one it created
 *   P/work/logs/ID/CLAIM/SEQ   log lines of a claimed step, on the lease
 *   P/work/cancel/ID           the coordinator asks the claimant to stop
 *
 * A worker claims a job in one transaction (the job's key is as it read it,
 * no claim exists: put the claim, delete the job), runs it with its own
 * supervisor and sandbox, streams its lines, and writes the result in one
 * transaction that compares the claim's create revision with its own and
 * deletes the claim: a worker whose lease expired (it died, or was cut
 * off) finds its claim gone or another's, and its late result is refused.
 * The coordinator reads the queue, the claims and the results in one
 * snapshot: a job neither queued, nor claimed, nor ended was held by a
 * worker that lost its lease; it reports that step as ended with
 * worker_lost set, and the scheduler decides (it starts it again, as a new
 * job, counting an attempt); so is a result that says "worker_stopped" (its
 * worker was told to stop, SIGTERM).  Only the coordinator writes stack
 * records.
 *
 * With a passphrase set, a job's config, state, outputs and environment,
 * a result's outputs and state and the log lines are sealed with the
 * engine's key (interfaces/record.h): a worker needs the same passphrase.
 *
 * Threads: the coordinator's end (orchd_remote_*) talks to etcd on a
 * thread of its own; its callbacks run on the loop's thread, from
 * orchd_remote_collect(), when orchd_remote_fd() is readable (watch it with
 * orchd_supervisor_watch()).  Errors: 0 or -1 with a message in err; a
 * step's own trouble (the lock lost, a job no worker can take) is its
 * result, through the done callback, never a return value.
 */
#ifndef ORCHD_HANDLERS_REMOTE_H
#define ORCHD_HANDLERS_REMOTE_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "handlers/extension.h"
#include "interfaces/engine.h"

#define ORCHD_WORK_VERSION 1

/* --- the coordinator ----------------------------------------------------- */

struct orchd_remote_opts {
	struct orchd_engine *eng; /* an etcd engine, locked; borrowed */
	const char *run_id;
	struct orchd_step_hooks hooks; /* done required; progress unused */
	long poll_ms;		       /* 0: 20 */
};

struct orchd_remote;

struct orchd_remote *orchd_remote_new(const struct orchd_remote_opts *o, char *err, size_t errlen);
/* What a job carries besides its step, so that its result can be recorded
 * as the coordinator would even if the coordinator is gone by then (see
 * orchd_remote_adopt()). */
struct orchd_remote_job {
	const char *type;	 /* the extension type */
	const char *runs_on;	 /* "k=v,..." ("" or NULL: any worker) */
	const char *config_hash; /* of the resolved config (record's) */
	const char *inputs_hash; /* of the upstream outputs consumed */
	int secret_input;	 /* a secret reached it: its state is sealed */
};

/* Publish one step (everything in spec and job is copied); ctx as
 * spec->ctx.  0, or -1 (after error()) when it cannot be encoded: no
 * callback follows. */
int orchd_remote_start(struct orchd_remote *r, const struct orchd_step_spec *spec,
		       const struct orchd_remote_job *job);
int orchd_remote_fd(const struct orchd_remote *r);
/* Run the callbacks of what happened (loop thread). */
void orchd_remote_collect(void *r);
/* Steps published and not ended yet. */
size_t orchd_remote_running(const struct orchd_remote *r);
/* Stop every step: a job not claimed yet is withdrawn, a claimed one is
 * asked to stop (its worker cancels it); each ends cancelled. */
void orchd_remote_cancel_all(struct orchd_remote *r, const char *reason);
/* Stops the thread; steps still out get no callback.  NULL: no-op. */
void orchd_remote_free(struct orchd_remote *r);

/*
 * At the start of a run that holds the pipeline lock (eng: an etcd engine;
 * any other engine: nothing to do): the jobs a dead coordinator left are
 * withdrawn, and the results its workers wrote after it died are
 * recorded as it would have (state, outputs, hashes, a history entry), so
 * that no state an extension handed back is lost; say(arg, stack, text)
 * tells each (stack NULL: about the wait for steps still running).  A result that cannot be opened (no passphrase) is left.
 * 0, or -1 with a message in err.
 */
int orchd_remote_adopt(struct orchd_engine *eng, const char *run_id,
		       void (*say)(void *arg, const char *stack, const char *text), void *arg,
		       char *err, size_t errlen);

/* --- the worker's primitives (core/agent.c) ------------------------------ */

/* A claimed job (orchd_work_claim()). */
struct orchd_work_job {
	char *id, *type, *run;
	int64_t claim;	   /* the fencing token */
	json_object *doc;  /* the job document, its body unsealed */
	json_object *body; /* borrowed from doc: config, state, outputs, env, sources */
};
void orchd_work_job_free(struct orchd_work_job *j);

/* 1 when a worker with labels (an object LABEL -> VALUE) may run a job
 * that needs runs_on ("k=v,k=v"). */
int orchd_work_labels_match(json_object *labels, const char *runs_on);

/*
 * Claim up to max jobs whose runs_on the labels meet, under lease (eng is
 * the worker's etcd engine, for its client and sealer).  *jobs (malloc'ed)
 * and *n: the jobs claimed.  0 or -1.
 */
int orchd_work_claim(struct orchd_engine *eng, int64_t lease, const char *worker,
		     json_object *labels, size_t max, struct orchd_work_job ***jobs, size_t *n,
		     char *err, size_t errlen);
/* The put of a job's log lines [[level, source, text], ...] (taken) as its
 * entry seq, on lease (a new object, NULL on error); send several in one
 * transaction with orchd_work_send() (ops taken). */
json_object *orchd_work_log_op(struct orchd_engine *eng, int64_t lease,
			       const struct orchd_work_job *j, unsigned seq, json_object *lines,
			       char *err, size_t errlen);
int orchd_work_send(struct orchd_engine *eng, json_object *ops, char *err, size_t errlen);
/* The result document of j (a new object; its body not sealed yet):
 * res is the step's end, masks the mask values it sent (may be NULL). */
json_object *orchd_work_result_doc(const struct orchd_work_job *j, const char *worker,
				   const struct orchd_step_result *res, json_object *masks);
/* Write it (doc borrowed; its body sealed with a passphrase): 0 written, 1
 * refused (the claim is no longer j->claim: its lease expired and the job
 * was taken over), -1 error. */
int orchd_work_result(struct orchd_engine *eng, const struct orchd_work_job *j, json_object *doc,
		      char *err, size_t errlen);
/* The same for n jobs in one transaction: 0 all written, 1 none (a claim
 * is no longer its job's: write them one by one to learn which), -1. */
int orchd_work_results(struct orchd_engine *eng, struct orchd_work_job *const *jobs,
		       json_object *const *docs, size_t n, char *err, size_t errlen);
/* For each of the n jobs, cancelled[i] = 1 when its cancel key exists. */
int orchd_work_cancelled(struct orchd_engine *eng, struct orchd_work_job *const *jobs, size_t n,
			 int *cancelled, char *err, size_t errlen);
/* The step spec of a claimed job (strings and objects borrowed from j's
 * document; free the sandbox spec with orchd_work_spec_release()). */
int orchd_work_spec(const struct orchd_work_job *j, struct orchd_step_spec *spec, char *err,
		    size_t errlen);
void orchd_work_spec_release(struct orchd_step_spec *spec);

#endif
