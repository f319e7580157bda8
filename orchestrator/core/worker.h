/*
 * core/worker: slow work off the event loop (redis' bio.c, reduced).
 *
 * A worker is one thread that runs jobs in the order they were submitted:
 * a state write (an fsync, a `pulumi up`), a git checkout or a download.
 * The event loop never waits for it: it polls orchd_worker_fd(), which is
 * readable while finished jobs wait, and calls orchd_worker_collect(),
 * which runs each finished job's done callback on the loop's thread, in
 * submission order.
 *
 *   struct orchd_worker *w = orchd_worker_new("state");
 *   job->run = write_record;  job->done = record_written;
 *   orchd_worker_submit(w, job);              // loop thread
 *   ... poll(orchd_worker_fd(w)) readable ...
 *   orchd_worker_collect(w);                  // calls job->done(job)
 *
 * Threads: ->run is called on the worker's thread, ->done on the thread
 * that calls collect.  A job owns everything ->run touches: the loop
 * thread must not read or write those objects until ->done (json-c objects
 * are not thread-safe: hand the job deep copies).  The only thing both
 * threads may look at meanwhile is a flag such as job-specific cancel
 * (volatile sig_atomic_t, see common/http.h).
 *
 * Signals: create workers after the signals the loop reads are blocked
 * (the thread inherits the mask), so that only the loop sees them.
 *
 * Errors: orchd_worker_new() returns NULL (after error()) when the thread
 * or its eventfd cannot be made.  Allocation failure dies.
 */
#ifndef ORCHD_CORE_WORKER_H
#define ORCHD_CORE_WORKER_H

#include <stddef.h>

struct orchd_job {
	void (*run)(struct orchd_job *job);  /* on the worker thread */
	void (*done)(struct orchd_job *job); /* on the loop thread; may free job */
	struct orchd_job *next;		     /* the worker's */
};

struct orchd_worker;

struct orchd_worker *orchd_worker_new(const char *name);
/* Queue job (not NULL, run and done set); the worker owns it until done. */
void orchd_worker_submit(struct orchd_worker *w, struct orchd_job *job);
/*
 * Group commit (optional; set it before the first submit): the worker then
 * takes every job queued when it wakes (at most ORCHD_WORKER_BATCH), runs
 * them one after the other, and calls batch_end(jobs, n, arg) on its own
 * thread before it hands any of them back: one flush of a state engine for
 * all the records that arrived together.  batch_end may change the jobs
 * (mark them failed).  Without it, each job is handed back as it ends.
 */
#define ORCHD_WORKER_BATCH 64
void orchd_worker_set_batch_end(struct orchd_worker *w,
				void (*batch_end)(struct orchd_job **jobs, size_t n, void *arg),
				void *arg);
/* Readable while finished jobs wait for orchd_worker_collect(). */
int orchd_worker_fd(const struct orchd_worker *w);
/* Call the done callback of every finished job; returns how many. */
size_t orchd_worker_collect(struct orchd_worker *w);
/*
 * Wait for every job, call the remaining done callbacks, stop the thread,
 * free w.  NULL is a no-op.
 */
void orchd_worker_free(struct orchd_worker *w);

#endif
