/*
 * core/scheduler: nodes, their transition table, the ready queue and the
 * timers, and the state worker (see scheduler.h).
 */
#include "core/scheduler.h"

#include "crypto.h"

#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bootstrap.h"
#include "core/refs.h"
#include "core/worker.h"
#include "handlers/remote.h"
#include "handlers/supervisor.h"
#include "util.h"

/* A step whose worker lost its lease runs again at most this many times
 * beyond execution.max_attempts (each counts as an attempt). */
#define ORCHD_SCHED_MAX_WORKER_LOSSES 3

/* At most this many record writers, whatever the engine takes. */
#define ORCHD_SCHED_MAX_WRITERS 8

/* ---------------------------------------------------------------------------
 * Node states, events and the transition table.
 * ------------------------------------------------------------------------- */

enum node_state {
	NODE_OFF = 0, /* not selected: never moves */
	NODE_PENDING, /* waiting for its dependencies */
	NODE_READY,   /* in the ready queue */
	NODE_RUNNING, /* an extension step runs */
	NODE_WAITING, /* backoff before the next attempt */
	NODE_STORING, /* its record is being written */
	NODE_DONE,
	NODE_FAILED,
	NODE_SKIPPED,
	NODE_CANCELLED,
	NODE_NSTATES
};

enum node_event {
	EV_DEPS_MET = 0,  /* every dependency is done (validate: at once) */
	EV_START,	  /* a slot is free */
	EV_UNRESOLVED,	  /* its references cannot be resolved */
	EV_SUCCEEDED,	  /* the step succeeded */
	EV_FAILED,	  /* the step failed for good */
	EV_CANCELLED,	  /* the step was cancelled */
	EV_RETRY,	  /* the step failed, an attempt is left */
	EV_TIMER,	  /* the backoff elapsed */
	EV_STORED_OK,	  /* the record of a success is durable */
	EV_STORED_FAILED, /* the record of a failure is durable */
	EV_STORED_CANCEL, /* the record of a cancel is durable */
	EV_STORE_ERROR,	  /* the record could not be written */
	EV_UPSTREAM_LOST, /* a dependency failed, was skipped or cancelled */
	EV_ABANDONED,	  /* never (re)started: fail-fast stop or interrupt */
	NODE_NEVENTS
};

/* Why a node failed, was skipped or cancelled (for its status text). */
enum node_cause {
	CAUSE_NONE = 0,
	CAUSE_STEP,	   /* the step's own status (orchd_step_status_name()) */
	CAUSE_INVALID,	   /* validate rejected its config */
	CAUSE_UNRESOLVED,  /* a reference could not be resolved */
	CAUSE_STORE,	   /* its record could not be written */
	CAUSE_UPSTREAM,	   /* a dependency did not succeed */
	CAUSE_STOPPED,	   /* fail-fast: not started after an earlier failure */
	CAUSE_INTERRUPTED, /* the run was interrupted before it started */
};

/* node_next[state][event]: the next state; NODE_OFF: not allowed. */
static const enum node_state node_next[NODE_NSTATES][NODE_NEVENTS] = {
	[NODE_PENDING] =
		{
			[EV_DEPS_MET] = NODE_READY,
			[EV_UPSTREAM_LOST] = NODE_SKIPPED,
			[EV_ABANDONED] = NODE_SKIPPED,
		},
	[NODE_READY] =
		{
			[EV_START] = NODE_RUNNING,
			[EV_UNRESOLVED] = NODE_FAILED,
			[EV_ABANDONED] = NODE_SKIPPED,
		},
	[NODE_RUNNING] =
		{
			[EV_SUCCEEDED] = NODE_STORING,
			[EV_FAILED] = NODE_STORING,
			[EV_CANCELLED] = NODE_STORING,
			[EV_RETRY] = NODE_WAITING,
			/* a deferred validate said no: nothing to record */
			[EV_UNRESOLVED] = NODE_FAILED,
		},
	[NODE_WAITING] =
		{
			[EV_TIMER] = NODE_READY,
			[EV_ABANDONED] = NODE_SKIPPED,
		},
	[NODE_STORING] =
		{
			[EV_STORED_OK] = NODE_DONE,
			[EV_STORED_FAILED] = NODE_FAILED,
			[EV_STORED_CANCEL] = NODE_CANCELLED,
			[EV_STORE_ERROR] = NODE_FAILED,
		},
};

struct store_job;

struct node {
	const struct orchd_instance *in;
	const struct orchd_ext_info *ext;
	size_t idx;
	char *stack;
	enum node_state st;
	enum node_cause cause;
	enum orchd_step_status step_status; /* of the last step */
	enum op_action step_action;	    /* what the running step does */
	int warned_argv;		    /* the secret-on-a-command-line warning */
	int inputs_unknown;		    /* plan: a reference is known after apply */
	int attempts;
	int worker_losses; /* attempts ended by a worker's lost lease */
	long long next_at; /* WAITING: when to try again */
	size_t deps_left;  /* selected neighbours not done (action phase) */
	char reason[640];
	long long first_start, wall_ms, cpu_ms;
	long rss_kb;
	int changed; /* -1 unknown */
	/* Its record before the run (up.stored is its outputs; NULL: there
	 * is none) and the outputs in it that can be handed over, key ->
	 * value. */
	struct orchd_stack_record prev;
	json_object *prev_values;
	/* What consumers see of its outputs: this run's and the stored. */
	struct orchd_upstream up;
	/* The config of the current step, resolved. */
	struct orchd_resolved cfg;
	/* A validate that failed on references not known yet: validate again
	 * right before the action. */
	int revalidate;
	/* STORING: the event once the record is durable, and the record's
	 * write (NULL: nothing to write). */
	enum node_event stored_event;
	struct store_job *job;
	/* Its sandbox (strict, its paths absolute; or basic: limits only). */
	struct orchd_sandbox_spec *sandbox;
	/* Its timeline: a span per state left (core/report.h), the time the
	 * current state was entered (unix ms) and the last step's set-up. */
	struct orchd_span *spans;
	size_t nspans, aspans;
	long long entered, setup_ms;
};

/* A stored record was read for it. */
static int makes_secrets(const struct node *nd);

static int has_record(const struct node *nd)
{
	return nd->up.stored != NULL;
}

/* A min-heap of (key, node index). */
struct heap {
	struct heap_item {
		long long key;
		size_t idx;
	} * v;
	size_t n, alloc;
};

struct orchd_sched {
	struct orchd_sched_opts o;
	struct node *n;
	size_t nn;
	enum op_action phase; /* OP_ACTION_VALIDATE or o.action */
	struct heap ready;    /* by node index: file order */
	struct heap timers;   /* by next_at */
	size_t running, storing, limit;
	int stop; /* fail-fast: start nothing new */
	int sup_interrupted;
	struct orchd_remote *remote; /* --workers: the work queue */
	int remote_cancelled;	     /* the work queue was told to stop */
	int state_error;
	int config_error;
	int system_error; /* a step could not be started */
	struct orchd_supervisor *sup;
	/* write records: one worker, or as many as the engine takes at once
	 * (a node always on the same one: its records stay in order) */
	struct orchd_worker *state[ORCHD_SCHED_MAX_WRITERS];
	size_t nstate;
	struct orchd_locator *locate; /* where config keys are written, once needed */
	long long t0_mono, t0_unix;   /* span times: unix ms on a monotonic clock */
	struct orchd_ci_info ci;      /* the build that runs us, for each record */
};

/* --- heaps ----------------------------------------------------------------- */

static void heap_push(struct heap *h, long long key, size_t idx)
{
	size_t i;

	ALLOC_GROW(h->v, h->n + 1, h->alloc);
	i = h->n++;
	while (i) {
		size_t up = (i - 1) / 2;

		if (h->v[up].key <= key)
			break;
		h->v[i] = h->v[up];
		i = up;
	}
	h->v[i].key = key;
	h->v[i].idx = idx;
}

static struct heap_item heap_pop(struct heap *h)
{
	struct heap_item top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1].key < h->v[c].key)
			c++;
		if (last.key <= h->v[c].key)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

/* --- logging ------------------------------------------------------------- */

static void node_log(struct orchd_sched *s, struct node *nd, enum orchd_log_level lvl,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void node_log(struct orchd_sched *s, struct node *nd, enum orchd_log_level lvl,
		     const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	orchd_journal_line(s->o.journal, nd->idx, lvl, ORCHD_LOGSRC_ORCHD, buf);
}

static void update_status(struct orchd_sched *s)
{
	const char *running[16];
	size_t nr = 0, done = 0, failed = 0;

	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (nd->st == NODE_RUNNING && nr < ARRAY_SIZE(running))
			running[nr++] = nd->in->id;
		else if (nd->st == NODE_DONE)
			done++;
		else if (nd->st == NODE_FAILED)
			failed++;
	}
	orchd_console_status(s->o.con, done, failed, running, nr);
}

/* --- the state machine ------------------------------------------------------ */

static void fire(struct orchd_sched *s, struct node *nd, enum node_event ev);

static int edges_active(const struct orchd_sched *s)
{
	return s->phase != OP_ACTION_VALIDATE;
}

/* Who waits for nd in this phase: its dependents, or for destroy its
 * dependencies. */
static void waiters(const struct orchd_sched *s, size_t i, const size_t **list, size_t *n)
{
	const struct orchd_graph *g = s->o.g;

	if (s->phase == OP_ACTION_DESTROY) {
		*list = g->deps + g->dep_at[i];
		*n = orchd_graph_ndeps(g, i);
	} else {
		*list = g->users + g->user_at[i];
		*n = orchd_graph_nusers(g, i);
	}
}

static void enter_done(struct orchd_sched *s, struct node *nd)
{
	const size_t *list;
	size_t n;

	if (!edges_active(s))
		return;
	waiters(s, nd->idx, &list, &n);
	for (size_t k = 0; k < n; k++) {
		struct node *w = &s->n[list[k]];

		if (w->st == NODE_PENDING && w->deps_left && !--w->deps_left)
			fire(s, w, EV_DEPS_MET);
	}
}

/* A node ended badly: what waits for it can no longer run. */
static void lose_waiters(struct orchd_sched *s, struct node *nd)
{
	const size_t *list;
	size_t n;

	if (!edges_active(s))
		return;
	waiters(s, nd->idx, &list, &n);
	for (size_t k = 0; k < n; k++) {
		struct node *w = &s->n[list[k]];

		if (w->st != NODE_PENDING)
			continue;
		w->cause = CAUSE_UPSTREAM;
		snprintf(w->reason, sizeof(w->reason), "%s %s", nd->in->id,
			 nd->st == NODE_SKIPPED ? "was skipped" : "failed");
		fire(s, w, EV_UPSTREAM_LOST);
		/* its action will not come: its session, if one waits, ends */
		if (s->sup)
			orchd_supervisor_end_session(s->sup, w->in->id);
	}
}

static void enter_failed(struct orchd_sched *s, struct node *nd)
{
	lose_waiters(s, nd);
	if (edges_active(s) && !s->o.keep_going)
		s->stop = 1;
}

static void enter_skipped(struct orchd_sched *s, struct node *nd)
{
	if (nd->cause == CAUSE_UPSTREAM) {
		node_log(s, nd, ORCHD_LOG_WARNING, "skipped: %s", nd->reason);
		orchd_journal_flush(s->o.journal, nd->idx);
	}
	lose_waiters(s, nd);
}

static void store(struct orchd_sched *s, struct node *nd);

/* What entering each state does, whatever the way in. */
static void enter(struct orchd_sched *s, struct node *nd, enum node_state from)
{
	if (from == NODE_RUNNING)
		s->running--;
	if (from == NODE_STORING)
		s->storing--;
	switch (nd->st) {
	case NODE_READY:
		heap_push(&s->ready, (long long)nd->idx, nd->idx);
		break;
	case NODE_RUNNING:
		s->running++;
		break;
	case NODE_WAITING:
		heap_push(&s->timers, nd->next_at, nd->idx);
		break;
	case NODE_STORING:
		s->storing++;
		/* fail-fast takes effect at the failure, not once it is stored */
		if (nd->stored_event != EV_STORED_OK && edges_active(s) && !s->o.keep_going)
			s->stop = 1;
		store(s, nd);
		break;
	case NODE_DONE:
		enter_done(s, nd);
		break;
	case NODE_FAILED:
	case NODE_CANCELLED:
		enter_failed(s, nd);
		break;
	case NODE_SKIPPED:
		enter_skipped(s, nd);
		break;
	case NODE_OFF:
	case NODE_PENDING:
	case NODE_NSTATES:
		break;
	}
}

/* The events' names, as a span's outcome. */
static const char *const event_names[NODE_NEVENTS] = {
	[EV_DEPS_MET] = "ready",
	[EV_START] = "started",
	[EV_UNRESOLVED] = "unresolved",
	[EV_SUCCEEDED] = "succeeded",
	[EV_FAILED] = "failed",
	[EV_CANCELLED] = "cancelled",
	[EV_RETRY] = "retry",
	[EV_TIMER] = "ready",
	[EV_STORED_OK] = "stored",
	[EV_STORED_FAILED] = "stored",
	[EV_STORED_CANCEL] = "stored",
	[EV_STORE_ERROR] = "store error",
	[EV_UPSTREAM_LOST] = "upstream failed",
	[EV_ABANDONED] = "abandoned",
};

/* Unix ms, read on the monotonic clock (a timeline does not jump). */
static long long span_now(const struct orchd_sched *s)
{
	return s->t0_unix + (now_ms() - s->t0_mono);
}

/* nd leaves state from on ev: the span of its stay, for the states that
 * wait or work. */
static void record_span(struct orchd_sched *s, struct node *nd, enum node_state from,
			enum node_event ev)
{
	static const signed char kind_of[NODE_NSTATES] = {
		[NODE_OFF] = -1,
		[NODE_PENDING] = ORCHD_SPAN_BLOCKED,
		[NODE_READY] = ORCHD_SPAN_QUEUED,
		[NODE_RUNNING] = ORCHD_SPAN_RUN,
		[NODE_WAITING] = ORCHD_SPAN_BACKOFF,
		[NODE_STORING] = ORCHD_SPAN_STORE,
		[NODE_DONE] = -1,
		[NODE_FAILED] = -1,
		[NODE_SKIPPED] = -1,
		[NODE_CANCELLED] = -1,
	};
	long long now = span_now(s);
	struct orchd_span *sp;

	if (kind_of[from] < 0 || !nd->entered)
		goto out;
	ALLOC_GROW(nd->spans, nd->nspans + 1, nd->aspans);
	sp = &nd->spans[nd->nspans++];
	memset(sp, 0, sizeof(*sp));
	sp->kind = (unsigned char)kind_of[from];
	sp->validate = s->phase == OP_ACTION_VALIDATE;
	sp->outcome = event_names[ev];
	sp->start_ms = nd->entered;
	sp->end_ms = now;
	sp->setup_ms = -1;
	if (from == NODE_RUNNING || from == NODE_WAITING)
		sp->attempt = nd->attempts;
	if (from == NODE_RUNNING) {
		sp->setup_ms = nd->setup_ms;
		if (ev != EV_SUCCEEDED && nd->reason[0])
			sp->reason = xstrdup(nd->reason);
	}
out:
	nd->entered = now;
}

static void fire(struct orchd_sched *s, struct node *nd, enum node_event ev)
{
	enum node_state from = nd->st, to = node_next[from][ev];

	if (to == NODE_OFF)
		die("internal error: %s: event %d in state %d", nd->in->id, (int)ev, (int)from);
	record_span(s, nd, from, ev);
	nd->st = to;
	enter(s, nd, from);
}

/* The status text of a node in state st: derived, never stored. */
static const char *status_text(const struct orchd_sched *s, const struct node *nd,
			       enum node_state st)
{
	switch (st) {
	case NODE_DONE:
		if (s->phase == OP_ACTION_VALIDATE)
			return "valid";
		if (s->phase == OP_ACTION_PLAN)
			return nd->changed == 1	  ? "changes"
			       : nd->changed == 0 ? "no changes"
						  : "changes unknown";
		return "success";
	case NODE_FAILED:
		if (nd->cause == CAUSE_INVALID)
			return "invalid";
		if (nd->cause == CAUSE_STEP && nd->step_status != ORCHD_STEP_SUCCESS)
			return orchd_step_status_name(nd->step_status);
		return "failed";
	case NODE_CANCELLED:
		return "cancelled";
	case NODE_SKIPPED:
		return nd->cause == CAUSE_INTERRUPTED ? "cancelled" : "skipped";
	case NODE_OFF:
	case NODE_PENDING:
	case NODE_READY:
	case NODE_RUNNING:
	case NODE_WAITING:
	case NODE_STORING:
	case NODE_NSTATES:
		break;
	}
	return "not run";
}

static const char *node_status(const struct orchd_sched *s, const struct node *nd)
{
	return status_text(s, nd, nd->st);
}

/* --- records, written off the loop ------------------------------------------ */

struct store_job {
	struct orchd_job job;
	struct orchd_sched *s;
	struct node *nd;
	struct orchd_engine *eng;
	char *stack;
	int remove; /* a successful destroy: the stack goes */
	struct orchd_stack_record rec;
	struct orchd_history_entry h;
	int failed;
	char err[1024];
	char herr[1024]; /* the history append's: a warning */
};

/* On the state worker: only the job's own objects.  A write is deferred:
 * store_batch_end() makes the batch durable (group commit). */
static void store_run(struct orchd_job *job)
{
	struct store_job *sj = (struct store_job *)job;

	if (sj->remove) {
		int r = orchd_engine_remove(sj->eng, sj->stack, &sj->h, sj->err, sizeof(sj->err));

		sj->failed = r < 0;
		if (r == 2) /* removed; its history line lost */
			snprintf(sj->herr, sizeof(sj->herr), "%s", sj->err);
		return;
	}
	sj->failed = orchd_engine_write_deferred(sj->eng, sj->stack, &sj->rec, sj->err,
						 sizeof(sj->err)) < 0;
}

/*
 * On the state worker, after the records that were queued together: one
 * sync makes them durable, then each gets its history line (a lost line is
 * a warning).  When the sync fails, none of them is stored.
 */
static void store_batch_end(struct orchd_job **jobs, size_t n, void *arg)
{
	struct orchd_engine *eng = arg;
	char err[1024];
	int failed = orchd_engine_sync(eng, err, sizeof(err)) < 0;

	for (size_t i = 0; i < n; i++) {
		struct store_job *sj = (struct store_job *)jobs[i];

		if (sj->remove || sj->failed)
			continue;
		if (failed) {
			sj->failed = 1;
			snprintf(sj->err, sizeof(sj->err), "%s", err);
			continue;
		}
		if (orchd_engine_history_append(sj->eng, sj->stack, &sj->h, sj->herr,
						sizeof(sj->herr)) < 0 &&
		    !sj->herr[0])
			snprintf(sj->herr, sizeof(sj->herr), "cannot append to the history of %s",
				 sj->stack);
	}
}

static void store_job_free(struct store_job *sj)
{
	if (!sj)
		return;
	orchd_stack_record_release(&sj->rec);
	orchd_history_entry_release(&sj->h);
	free(sj->stack);
	free(sj);
}

/* On the loop: the record is durable (or not); the node moves on. */
static void store_done(struct orchd_job *job)
{
	struct store_job *sj = (struct store_job *)job;
	struct orchd_sched *s = sj->s;
	struct node *nd = sj->nd;

	nd->job = NULL;
	if (sj->herr[0])
		node_log(s, nd, ORCHD_LOG_WARNING, "%s", sj->herr);
	if (!sj->failed) {
		fire(s, nd, nd->stored_event);
	} else {
		/* What the extension did is not recorded: the instance failed,
		 * and nothing may consume outputs that were not stored. */
		node_log(s, nd, ORCHD_LOG_ERROR, "%s", sj->err);
		s->state_error = 1;
		if (nd->stored_event == EV_STORED_OK) {
			nd->cause = CAUSE_STORE;
			snprintf(nd->reason, sizeof(nd->reason), "%.*s",
				 (int)sizeof(nd->reason) - 1, sj->err);
		}
		if (!s->o.keep_going)
			s->stop = 1;
		fire(s, nd, nd->stored_event == EV_STORED_OK ? EV_STORE_ERROR : nd->stored_event);
	}
	orchd_journal_flush(s->o.journal, nd->idx);
	update_status(s);
	store_job_free(sj);
}

static void collect_stored(void *arg)
{
	orchd_worker_collect(arg);
}

static json_object *deep_copy(json_object *v)
{
	json_object *c = NULL;

	if (v && json_object_deep_copy(v, &c, NULL) < 0)
		die("out of memory");
	return c;
}

static long long unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The record of the step that just ended (apply, destroy), as a job for
 * the state worker, or NULL when the phase records nothing.  It owns
 * copies of everything (json-c objects are not thread-safe).  final: the
 * state the node will be in once it is durable.
 */
static struct store_job *record_job(struct orchd_sched *s, struct node *nd,
				    const struct orchd_step_result *res, enum node_state final)
{
	struct store_job *sj;
	int ok = final == NODE_DONE;
	long long end = unix_ms();
	char hex[ORCHD_SHA256_HEXSZ];

	if (s->phase == OP_ACTION_VALIDATE || s->phase == OP_ACTION_PLAN || !s->o.eng)
		return NULL;
	sj = xcalloc(1, sizeof(*sj));
	sj->job.run = store_run;
	sj->job.done = store_done;
	sj->s = s;
	sj->nd = nd;
	sj->eng = s->o.eng;
	sj->stack = xstrdup(nd->stack);
	orchd_stack_record_init(&sj->rec);
	sj->h.run_id = xstrdup(s->o.run_id);
	sj->h.action = xstrdup(op_action_name(s->phase));
	sj->h.status = xstrdup(status_text(s, nd, final));
	sj->h.started_at = nd->first_start;
	sj->h.ended_at = end;
	sj->h.attempts = nd->attempts;
	sj->h.meta.cpu_ms = nd->cpu_ms;
	sj->h.meta.max_rss_kb = nd->rss_kb;
	orchd_ci_info_copy(&sj->h.meta.ci, &s->ci);
	if (s->phase == OP_ACTION_DESTROY && ok) {
		/* the record goes, the history keeps the destroy */
		sj->remove = 1;
		return sj;
	}
	/* Start from the previous record: a failed apply keeps old outputs. */
	if (has_record(nd)) {
		json_object_put(sj->rec.outputs);
		sj->rec.outputs = deep_copy(nd->prev.outputs);
		sj->rec.state = deep_copy(nd->prev.state);
		sj->rec.state_secret = nd->prev.state_secret;
		sj->rec.state_masked = nd->prev.state_masked;
		sj->rec.config_hash = nd->prev.config_hash ? xstrdup(nd->prev.config_hash) : NULL;
		sj->rec.inputs_hash = nd->prev.inputs_hash ? xstrdup(nd->prev.inputs_hash) : NULL;
	}
	if (res && res->has_state) {
		json_object_put(sj->rec.state);
		sj->rec.state = deep_copy(res->state);
		sj->rec.state_secret = res->state_secret || nd->cfg.secret_input;
		sj->rec.state_masked = 0;
	}
	if (ok) {
		json_object_put(sj->rec.outputs);
		sj->rec.outputs = json_object_new_object();
		json_object_object_foreach(nd->up.outputs, k, v)
		{
			int secret = json_object_object_get_ex(nd->up.secrets, k, NULL);

			orchd_stack_record_set_output(&sj->rec, k, deep_copy(v), secret);
		}
		orchd_json_hash(nd->cfg.config, hex);
		free(sj->rec.config_hash);
		sj->rec.config_hash = xstrdup(hex);
		free(sj->rec.inputs_hash);
		sj->rec.inputs_hash = xstrdup(nd->cfg.inputs_hash);
	}
	sj->rec.last.run_id = xstrdup(s->o.run_id);
	sj->rec.last.action = xstrdup(op_action_name(s->phase));
	sj->rec.last.status = xstrdup(status_text(s, nd, final));
	sj->rec.last.started_at = nd->first_start;
	sj->rec.last.ended_at = end;
	sj->rec.last.attempts = nd->attempts;
	orchd_action_meta_copy(&sj->rec.last.meta, &sj->h.meta);
	return sj;
}

/* STORING: write the record off the loop, or move on at once. */
static void store(struct orchd_sched *s, struct node *nd)
{
	size_t k;

	if (!nd->job) {
		fire(s, nd, nd->stored_event);
		orchd_journal_flush(s->o.journal, nd->idx);
		return;
	}
	if (!s->nstate) {
		int n = orchd_engine_concurrency(s->o.eng);

		s->nstate = n > ORCHD_SCHED_MAX_WRITERS ? ORCHD_SCHED_MAX_WRITERS : (size_t)n;
	}
	k = nd->idx % s->nstate;
	if (!s->state[k]) {
		s->state[k] = orchd_worker_new("state");
		if (!s->state[k])
			die("cannot write state without a worker thread");
		orchd_worker_set_batch_end(s->state[k], store_batch_end, s->o.eng);
		if (orchd_supervisor_watch(s->sup, orchd_worker_fd(s->state[k]), collect_stored,
					   s->state[k]) < 0)
			die("cannot watch the state worker");
	}
	orchd_worker_submit(s->state[k], &nd->job->job);
}

/* --- secrets -------------------------------------------------------------- */

static void register_secret_value(struct orchd_sched *s, json_object *v)
{
	orchd_mask_add_json(orchd_console_mask(s->o.con), v);
}

/* Outputs whose value contains a secret of this run are secret too. */
static void taint_outputs(struct orchd_sched *s, struct node *nd)
{
	struct orchd_mask *m = orchd_console_mask(s->o.con);

	json_object_object_foreach(nd->up.outputs, k, v)
	{
		const char *txt;
		char *masked;

		if (json_object_object_get_ex(nd->up.secrets, k, NULL))
			continue;
		txt = json_object_is_type(v, json_type_string)
			      ? json_object_get_string(v)
			      : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		masked = orchd_mask_apply(m, txt, strlen(txt), NULL);
		if (masked) {
			json_object_object_add(nd->up.secrets, k, json_object_new_boolean(1));
			free(masked);
		}
	}
}

/* --- steps ----------------------------------------------------------------- */

static char **build_env(struct orchd_sched *s, struct node *nd)
{
	char **env = NULL;
	size_t n = 0, alloc = 0;

	json_object_object_foreach(s->o.p->core.env, k, v)
	{
		ALLOC_GROW(env, n + 1, alloc);
		/* cppcheck-suppress nullPointer ; ALLOC_GROW allocated it */
		env[n++] = xasprintf("%s=%s", k, json_object_get_string(v));
	}
	for (size_t j = 0; j < nd->in->npass_env; j++) {
		const char *val = getenv(nd->in->pass_env[j]);

		if (!val)
			continue;
		ALLOC_GROW(env, n + 1, alloc);
		env[n++] = xasprintf("%s=%s", nd->in->pass_env[j], val);
	}
	/* what its manifest says it needs */
	for (char **e = nd->ext->iso_env; e && *e; e++) {
		const char *val = getenv(*e);
		int pass = 0;

		for (size_t q = 0; q < ARRAY_SIZE(orchd_passphrase_vars); q++)
			pass |= !strcmp(*e, orchd_passphrase_vars[q]);
		if (!val || pass)
			continue; /* never the passphrase, whatever a manifest asks */
		ALLOC_GROW(env, n + 1, alloc);
		env[n++] = xasprintf("%s=%s", *e, val);
	}
	ALLOC_GROW(env, n + 2, alloc);
	env[n++] = xasprintf("ORCHD_PIPELINE_DIR=%s", s->o.pipeline_dir);
	env[n] = NULL;
	return env;
}

static void free_env(char **env)
{
	for (size_t k = 0; env && env[k]; k++)
		free(env[k]);
	free(env);
}

static const struct orchd_upstream *upstream_of(void *arg, size_t i)
{
	struct orchd_sched *s = arg;

	return &s->n[i].up;
}

/* Resolve nd's config for its next step: 0, or -1 with why in nd->cfg. */
static int resolve(struct orchd_sched *s, struct node *nd, int lenient)
{
	struct orchd_resolver r = {
		s->o.p,	 upstream_of,
		s,	 s->phase == OP_ACTION_PLAN || s->o.action == OP_ACTION_PLAN,
		lenient, nd->ext ? nd->ext->argv_keys : NULL};
	int rc;

	orchd_resolved_release(&nd->cfg);
	rc = orchd_refs_resolve(&r, nd->idx, &nd->cfg);
	if (nd->cfg.secret_argv && !nd->warned_argv) {
		nd->warned_argv = 1;
		node_log(s, nd, ORCHD_LOG_WARNING,
			 "a secret output reaches '%s', which becomes a command line: any local "
			 "user can read it with ps; pass it through the environment or a file "
			 "instead",
			 nd->cfg.secret_argv);
	}
	return rc;
}

/* Spawn the step of nd (READY -> RUNNING done by the caller). */
static void start_step(struct orchd_sched *s, struct node *nd, enum op_action action)
{
	struct orchd_step_spec spec = ORCHD_STEP_SPEC_INIT;
	char **env = build_env(s, nd);

	nd->step_action = action;
	nd->attempts++;
	if (!nd->first_start)
		nd->first_start = unix_ms();
	spec.id = nd->in->id;
	spec.exe = nd->ext->path;
	spec.action = action;
	spec.instance = nd->in->name;
	spec.stack = nd->stack;
	spec.config = nd->cfg.config;
	spec.state = has_record(nd) ? nd->prev.state : NULL;
	spec.outputs = nd->prev_values;
	spec.workdir_base = s->o.work_dir;
	spec.attempt = nd->attempts;
	spec.keep_workdir = s->o.keep_workdir;
	spec.env = (const char *const *)(void *)env;
	spec.timeout_ms = nd->in->exec.timeout_ms;
	spec.grace_ms = nd->in->exec.grace_ms;
	spec.hello_timeout_ms = nd->in->exec.handshake_ms;
	spec.ctx = nd;
	spec.sources = nd->in->sources;
	spec.sandbox = nd->sandbox;
	/* one process for validate and the action after it when the
	 * extension can (a session); its sources are fetched once, so an
	 * instance with sources gets a process per action */
	spec.adopt = s->o.sessions;
	spec.park = s->o.sessions && action == OP_ACTION_VALIDATE &&
		    (!nd->in->sources || !json_object_array_length(nd->in->sources));
	if (s->remote && action != OP_ACTION_VALIDATE) {
		/* on a worker: the config, state and environment go with the
		 * job (no session: see orchd_sched_opts.sessions) */
		struct orchd_remote_job rj;
		char hex[ORCHD_SHA256_HEXSZ];

		orchd_json_hash(nd->cfg.config, hex);
		rj.type = nd->in->type;
		rj.runs_on = nd->in->exec.runs_on;
		rj.config_hash = hex;
		rj.inputs_hash = nd->cfg.inputs_hash;
		rj.secret_input = nd->cfg.secret_input;
		if (orchd_supervisor_interrupted(s->sup) ||
		    orchd_remote_start(s->remote, &spec, &rj) < 0) {
			nd->cause = CAUSE_INTERRUPTED;
			snprintf(nd->reason, sizeof(nd->reason), "run interrupted");
			nd->stored_event = EV_STORED_CANCEL;
			fire(s, nd, EV_CANCELLED);
		}
	} else if (orchd_supervisor_start(s->sup, &spec) < 0) {
		/* only when interrupted: it never ran */
		nd->cause = CAUSE_INTERRUPTED;
		snprintf(nd->reason, sizeof(nd->reason), "run interrupted");
		nd->stored_event = EV_STORED_CANCEL;
		fire(s, nd, EV_CANCELLED);
	}
	free_env(env);
}

/* A slot is free and nd is next: resolve its references and start it. */
static void start_node(struct orchd_sched *s, struct node *nd)
{
	if (s->phase == OP_ACTION_VALIDATE) {
		/* References resolve when they can (stored outputs,
		 * mock_outputs); the others stay as text. */
		resolve(s, nd, 1);
	} else if (s->phase == OP_ACTION_PLAN) {
		/* plan changes nothing: an output that exists only after an
		 * apply stays as the reference text, as in validate */
		resolve(s, nd, 1);
		if (nd->cfg.unresolved)
			node_log(s, nd, ORCHD_LOG_INFO, "known only after apply: %s", nd->cfg.why);
		nd->inputs_unknown = nd->cfg.unresolved > 0;
	} else if (s->phase == OP_ACTION_DESTROY) {
		/* what it consumed may be gone already: destroy goes on with the
		 * reference text rather than leave the stack behind */
		resolve(s, nd, 1);
		if (nd->cfg.unresolved)
			node_log(s, nd, ORCHD_LOG_WARNING, "destroying without %s", nd->cfg.why);
	} else if (resolve(s, nd, 0) < 0) {
		nd->cause = CAUSE_UNRESOLVED;
		snprintf(nd->reason, sizeof(nd->reason), "%s", nd->cfg.why);
		node_log(s, nd, ORCHD_LOG_ERROR, "%s", nd->cfg.why);
		fire(s, nd, EV_UNRESOLVED);
		return;
	}
	fire(s, nd, EV_START);
	start_step(s, nd, nd->revalidate ? OP_ACTION_VALIDATE : s->phase);
}

static void fill_slots(struct orchd_sched *s)
{
	long long now = now_ms();

	while (s->timers.n && s->timers.v[0].key <= now)
		fire(s, &s->n[heap_pop(&s->timers).idx], EV_TIMER);
	if (s->stop || orchd_supervisor_interrupted(s->sup))
		return;
	if (s->ready.n && s->o.eng) {
		char err[1024];

		/* a lock that is lost (an etcd lease expired): nothing more
		 * starts, and what runs is not recorded (the engine refuses) */
		if (orchd_engine_lock_check(s->o.eng, err, sizeof(err)) < 0) {
			orchd_console_logf(s->o.con, NULL, ORCHD_LOG_ERROR,
					   "%s: starting nothing more", err);
			s->state_error = 1;
			s->stop = 1;
			return;
		}
	}
	while (s->running < s->limit && s->ready.n)
		start_node(s, &s->n[heap_pop(&s->ready).idx]);
}

static long long backoff_ms(const struct orchd_exec *e, int attempt)
{
	double d = (double)e->backoff_initial_ms;
	long long ms, half;

	for (int k = 1; k < attempt; k++)
		d *= e->backoff_factor > 0 ? e->backoff_factor : 1;
	if (d > (double)e->backoff_max_ms)
		d = (double)e->backoff_max_ms;
	ms = (long long)d;
	/* Jitter: uniformly in [d/2, d]. */
	half = ms / 2;
	return half + (half > 0 ? (long long)(random() % (half + 1)) : 0);
}

/*
 * The errors of a validate's verdict, each where its key is written:
 * "FILE:LINE:COL: error: TYPE.NAME: PATH: MESSAGE" (no "PATH: " for the
 * config as a whole, nor when MESSAGE quotes it: "unknown key 'x'").
 */
static void config_errors(struct orchd_sched *s, struct node *nd,
			  const struct orchd_step_result *res)
{
	size_t n;

	if (!res->errors || !json_object_is_type(res->errors, json_type_array))
		return;
	n = json_object_array_length(res->errors);
	if (n && !s->locate)
		s->locate = orchd_locator_open(s->o.p);
	for (size_t k = 0; k < n; k++) {
		json_object *e = json_object_array_get_idx(res->errors, k);
		const char *path = op_get_str(e, "path"), *msg = op_get_str(e, "message");
		struct orchd_pos pos;
		char where[4200];
		char *text;

		orchd_locator_find(s->locate, s->o.p, nd->idx, path,
				   msg && !strncmp(msg, "unknown key", 11), &pos);
		snprintf(where, sizeof(where), "%s:%u:%u", orchd_pos_file(s->o.p, pos), pos.line,
			 pos.column);
		{
			/* the protocol library's one rule: no "PATH: " when the
			 * message quotes the path already */
			struct op_error oe;

			oe.path = (char *)(uintptr_t)(path ? path : "");
			oe.message = (char *)(uintptr_t)(msg && *msg ? msg : "invalid");
			if (!(text = op_error_text(&oe)))
				die("out of memory");
		}
		orchd_journal_diag(s->o.journal, nd->idx, where, text);
		free(text);
	}
}

/* The validate phase's verdict on one node. */
static void validated(struct orchd_sched *s, struct node *nd, const struct orchd_step_result *res)
{
	int ok = res->status == ORCHD_STEP_SUCCESS || res->status == ORCHD_STEP_UNSUPPORTED;

	if (res->status == ORCHD_STEP_UNSUPPORTED)
		node_log(s, nd, ORCHD_LOG_INFO,
			 "the extension has no validate action: "
			 "its config is not checked before the run");
	if (!ok && !(res->status == ORCHD_STEP_FAILED && res->has_result)) {
		/* no verdict on the config (it could not start, is
		 * incompatible, timed out, broke the protocol, crashed): the
		 * run stops, as a system error or as a failed instance */
		nd->cause = CAUSE_STEP;
		snprintf(nd->reason, sizeof(nd->reason), "%s", res->reason);
		node_log(s, nd, ORCHD_LOG_ERROR, "validate could not run: %s", res->reason);
		if (res->status == ORCHD_STEP_CANCELLED) {
			nd->stored_event = EV_STORED_CANCEL;
			fire(s, nd, EV_CANCELLED);
		} else {
			nd->stored_event = EV_STORED_FAILED;
			fire(s, nd, EV_FAILED);
		}
		return;
	}

	if (!ok && nd->cfg.unresolved && res->status == ORCHD_STEP_FAILED && res->has_result) {
		/* rejected what is not known yet: again with the real values */
		nd->revalidate = 1;
		node_log(s, nd, ORCHD_LOG_INFO, "validate again when its references are known (%s)",
			 res->reason);
		ok = 1;
	}
	if (ok) {
		nd->stored_event = EV_STORED_OK;
		fire(s, nd, EV_SUCCEEDED);
		return;
	}
	nd->cause = CAUSE_INVALID;
	snprintf(nd->reason, sizeof(nd->reason), "%s", res->reason);
	config_errors(s, nd, res);
	node_log(s, nd, ORCHD_LOG_ERROR, "validate failed: %s", res->reason);
	s->config_error = 1;
	nd->stored_event = EV_STORED_FAILED;
	fire(s, nd, EV_FAILED);
}

static void on_done(void *cb_data, void *ctx, const char *id, const struct orchd_step_result *res)
{
	struct orchd_sched *s = cb_data;
	struct node *nd = ctx;
	int ok = res->status == ORCHD_STEP_SUCCESS;

	(void)id;
	if (res->changed >= 0)
		nd->changed = res->changed;
	if ((res->status == ORCHD_STEP_SPAWN_ERROR || res->status == ORCHD_STEP_INCOMPATIBLE) &&
	    !res->worker_lost)
		s->system_error = 1;
	/* the optional actions (PROTOCOL.md §7): one an extension does not
	 * have is done by doing nothing */
	if (res->status == ORCHD_STEP_UNSUPPORTED && s->phase != OP_ACTION_VALIDATE) {
		if (nd->step_action == OP_ACTION_VALIDATE) {
			ok = 1;
			node_log(s, nd, ORCHD_LOG_INFO,
				 "the extension has no validate action: its config is not checked");
		} else if (nd->step_action == OP_ACTION_PLAN) {
			ok = 1;
			nd->changed = -1;
			node_log(s, nd, ORCHD_LOG_WARNING,
				 "the extension has no plan action: what apply would change is "
				 "unknown");
		} else if (nd->step_action == OP_ACTION_DESTROY) {
			ok = 1;
			node_log(s, nd, ORCHD_LOG_WARNING,
				 "the extension has no destroy action: nothing was torn down, its "
				 "stack is removed");
		}
	}
	if (res->worker && !res->worker_lost)
		node_log(s, nd, ORCHD_LOG_INFO, "%s ran on worker %s",
			 op_action_name(nd->step_action), res->worker);
	nd->wall_ms += res->wall_ms;
	nd->setup_ms = res->setup_ms;
	nd->cpu_ms += res->cpu_user_ms + res->cpu_sys_ms;
	if (res->max_rss_kb > nd->rss_kb)
		nd->rss_kb = res->max_rss_kb;
	nd->step_status = res->status;

	if (s->phase == OP_ACTION_VALIDATE) {
		validated(s, nd, res);
	} else if (nd->step_action == OP_ACTION_VALIDATE) {
		/* the deferred validate, now with the real values: the node
		 * keeps its slot and goes on with its action, or fails */
		nd->revalidate = 0;
		nd->attempts--;
		if (ok) {
			start_step(s, nd, s->phase);
		} else {
			nd->cause = CAUSE_INVALID;
			snprintf(nd->reason, sizeof(nd->reason), "%s", res->reason);
			config_errors(s, nd, res);
			node_log(s, nd, ORCHD_LOG_ERROR, "validate failed: %s", res->reason);
			fire(s, nd, EV_UNRESOLVED);
		}
	} else if (ok && s->phase == OP_ACTION_PLAN) {
		/* what it consumes is known after apply: "no changes" cannot be
		 * promised; what consumes its outputs cannot know them either */
		if (nd->inputs_unknown && nd->changed == 0) {
			nd->changed = -1;
			node_log(s, nd, ORCHD_LOG_INFO,
				 "an input is known only after apply: changes are possible");
		}
		nd->up.unknown = nd->changed != 0;
		if (res->summary && *res->summary)
			node_log(s, nd, ORCHD_LOG_INFO, "%s", res->summary);
		nd->stored_event = EV_STORED_OK;
		fire(s, nd, EV_SUCCEEDED);
	} else if (ok) {
		json_object_put(nd->up.outputs);
		json_object_put(nd->up.secrets);
		nd->up.outputs = json_object_get(res->outputs);
		nd->up.secrets = json_object_get(res->secrets);
		/* Secret outputs are masked in every line from now on. */
		json_object_object_foreach(nd->up.secrets, k, v)
		{
			json_object *val;

			(void)v;
			if (json_object_object_get_ex(nd->up.outputs, k, &val))
				register_secret_value(s, val);
		}
		taint_outputs(s, nd);
		if (res->summary && *res->summary)
			node_log(s, nd, ORCHD_LOG_INFO, "%s", res->summary);
		nd->stored_event = EV_STORED_OK;
		nd->job = record_job(s, nd, res, NODE_DONE);
		fire(s, nd, EV_SUCCEEDED);
	} else if (res->worker_lost && nd->worker_losses < ORCHD_SCHED_MAX_WORKER_LOSSES &&
		   !orchd_supervisor_interrupted(s->sup) && !s->remote_cancelled) {
		/* its worker died or was cut off: another one takes it now */
		nd->worker_losses++;
		snprintf(nd->reason, sizeof(nd->reason), "%s", res->reason);
		nd->next_at = now_ms();
		node_log(s, nd, ORCHD_LOG_WARNING, "attempt %d: %s; queued again", nd->attempts,
			 res->reason);
		fire(s, nd, EV_RETRY);
	} else if ((res->retryable || res->status == ORCHD_STEP_TIMED_OUT) &&
		   nd->attempts < nd->in->exec.max_attempts &&
		   res->status != ORCHD_STEP_CANCELLED && !orchd_supervisor_interrupted(s->sup)) {
		long long d = backoff_ms(&nd->in->exec, nd->attempts);

		snprintf(nd->reason, sizeof(nd->reason), "%s", res->reason);
		nd->next_at = now_ms() + d;
		node_log(s, nd, ORCHD_LOG_WARNING,
			 "attempt %d of %d failed: %s; retrying in %lld ms", nd->attempts,
			 nd->in->exec.max_attempts, res->reason, d);
		fire(s, nd, EV_RETRY);
	} else {
		int cancelled = res->status == ORCHD_STEP_CANCELLED;
		enum node_state final = cancelled ? NODE_CANCELLED : NODE_FAILED;

		snprintf(nd->reason, sizeof(nd->reason), "%s", res->reason);
		nd->cause = CAUSE_STEP;
		node_log(s, nd, ORCHD_LOG_ERROR, "%s failed: %s", op_action_name(s->phase),
			 res->reason);
		nd->stored_event = cancelled ? EV_STORED_CANCEL : EV_STORED_FAILED;
		nd->job = record_job(s, nd, res, final);
		fire(s, nd, cancelled ? EV_CANCELLED : EV_FAILED);
	}
	orchd_journal_flush(s->o.journal, nd->idx);
	fill_slots(s);
	update_status(s);
}

/* --- phases ------------------------------------------------------------- */

static void on_output(void *cb_data, void *ctx, const char *id, const char *key, json_object *value,
		      int secret)
{
	(void)ctx;
	(void)id;
	(void)key;
	if (secret)
		register_secret_value(cb_data, value);
}

static void on_mask(void *cb_data, void *ctx, const char *value)
{
	struct orchd_sched *s = cb_data;

	(void)ctx;
	orchd_mask_add(orchd_console_mask(s->o.con), value);
}

static void on_log(void *cb_data, void *ctx, const char *id, enum orchd_log_level level,
		   enum orchd_log_source src, const char *text)
{
	struct orchd_sched *s = cb_data;
	struct node *nd = ctx;

	(void)id;
	orchd_journal_line(s->o.journal, nd->idx, level, src, text);
}

static void on_log_lines(void *cb_data, void *ctx, const char *id, enum orchd_log_level level,
			 enum orchd_log_source src, char *text, size_t len)
{
	struct orchd_sched *s = cb_data;
	struct node *nd = ctx;

	(void)id;
	orchd_journal_lines(s->o.journal, nd->idx, level, src, text, len);
}

static int make_supervisor(struct orchd_sched *s)
{
	struct orchd_supervisor_opts so = ORCHD_SUPERVISOR_OPTS_INIT;

	if (s->sup)
		return 0;
	so.log = on_log;
	so.log_lines = on_log_lines;
	so.output = on_output;
	so.mask = on_mask;
	so.done = on_done;
	so.cb_data = s;
	s->sup = orchd_supervisor_new(&so);
	if (s->sup && s->o.workers) {
		struct orchd_remote_opts ro;
		char err[512];

		memset(&ro, 0, sizeof(ro));
		ro.eng = s->o.eng;
		ro.run_id = s->o.run_id;
		ro.hooks.log = on_log;
		ro.hooks.output = on_output;
		ro.hooks.mask = on_mask;
		ro.hooks.done = on_done;
		ro.hooks.cb_data = s;
		s->remote = orchd_remote_new(&ro, err, sizeof(err));
		if (!s->remote)
			return error("%s", err);
	}
	if (s->sup && s->remote &&
	    orchd_supervisor_watch(s->sup, orchd_remote_fd(s->remote), orchd_remote_collect,
				   s->remote) < 0)
		return -1;
	return s->sup ? 0 : -1;
}

/* Work left that the loop can still move. */
static int busy(const struct orchd_sched *s)
{
	if (s->running || s->storing)
		return 1;
	if (s->stop || s->sup_interrupted)
		return 0;
	return s->ready.n || s->timers.n;
}

/* The sessions still waiting (their instance's action never came: it was
 * skipped, or the run stops) end, and their processes are waited for. */
static void end_sessions(struct orchd_sched *s)
{
	if (!s->sup || s->running)
		return;
	orchd_supervisor_close_sessions(s->sup);
	while (orchd_supervisor_running(s->sup))
		if (orchd_supervisor_wait(s->sup, -1) < 0)
			break;
}

int orchd_sched_run(struct orchd_sched *s, enum op_action phase)
{
	if (make_supervisor(s) < 0)
		return -1;
	s->phase = phase;
	s->ready.n = s->timers.n = 0;
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (nd->st == NODE_OFF)
			continue;
		nd->st = NODE_PENDING;
		nd->cause = CAUSE_NONE;
		nd->reason[0] = '\0';
		nd->deps_left = 0;
		nd->entered = span_now(s);
		if (phase != OP_ACTION_VALIDATE) {
			/* this phase's own attempts and resources */
			nd->attempts = 0;
			nd->wall_ms = nd->cpu_ms = 0;
			nd->rss_kb = 0;
			nd->first_start = 0;
		}
	}
	for (size_t i = 0; i < s->nn; i++) {
		const size_t *list;
		size_t n;

		if (s->n[i].st == NODE_OFF || !edges_active(s))
			continue;
		waiters(s, i, &list, &n);
		for (size_t k = 0; k < n; k++)
			if (s->n[list[k]].st != NODE_OFF)
				s->n[list[k]].deps_left++;
	}
	for (size_t i = 0; i < s->nn; i++)
		if (s->n[i].st == NODE_PENDING && !s->n[i].deps_left)
			fire(s, &s->n[i], EV_DEPS_MET);
	fill_slots(s);
	update_status(s);
	while (busy(s)) {
		long long dl = s->timers.n && !s->stop ? s->timers.v[0].key : -1;

		if (orchd_supervisor_wait(s->sup, dl) < 0)
			return -1;
		/* console lines of this turn (stderr is buffered when not a TTY) */
		orchd_console_flush(s->o.con);
		s->sup_interrupted = orchd_supervisor_interrupted(s->sup);
		if (s->sup_interrupted && s->remote && !s->remote_cancelled) {
			s->remote_cancelled = 1;
			orchd_remote_cancel_all(s->remote, "interrupted");
		}
		fill_slots(s);
	}
	orchd_console_status_clear(s->o.con);
	/* Whatever never (re)started: fail-fast, or interrupted. */
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (nd->st != NODE_PENDING && nd->st != NODE_READY && nd->st != NODE_WAITING)
			continue;
		nd->cause = s->sup_interrupted ? CAUSE_INTERRUPTED : CAUSE_STOPPED;
		if (!nd->reason[0])
			snprintf(nd->reason, sizeof(nd->reason), "%s",
				 s->sup_interrupted ? "run interrupted"
						    : "not started after an earlier failure");
		fire(s, nd, EV_ABANDONED);
	}
	if (phase != OP_ACTION_VALIDATE)
		end_sessions(s);
	for (size_t i = 0; i < s->nn; i++)
		orchd_journal_flush(s->o.journal, i);
	return 0;
}

/* --- setup ------------------------------------------------------------- */

/* A path of an isolation block or a manifest, absolute: "~" and "~/x"
 * under $HOME, a relative one under the pipeline's directory.  ("$VAR":
 * see add_path.) */
static char *isolation_path(const struct orchd_sched *s, const char *p)
{
	const char *home = getenv("HOME");
	char *abs, *real;

	if (!strcmp(p, "~") || !strncmp(p, "~/", 2))
		abs = xasprintf("%s%s", home ? home : "", p + 1);
	else if (p[0] == '/')
		abs = xstrdup(p);
	else
		abs = xasprintf("%s/%s", s->o.pipeline_dir, p);
	real = realpath(abs, NULL);
	if (real) {
		free(abs);
		return real;
	}
	return abs;
}

/* Add p to v, unless it is (or is under) what no extension may see: a
 * manifest (or an instance) cannot open the state directory that way. */
static void add_path(struct orchd_sched *s, struct node *nd, const char ***v, size_t *n,
		     const char *p)
{
	char *abs;

	if (p[0] == '$') {
		/* the value of VAR (nothing when unset): one path, or a list
		 * of them separated by ':' (KUBECONFIG); "~" is not expanded */
		const char *val = getenv(p + 1);
		char *copy, *save = NULL;

		if (!val || !*val)
			return;
		copy = xstrdup(val);
		for (char *one = strtok_r(copy, ":", &save); one; one = strtok_r(NULL, ":", &save))
			if (*one != '$' && *one != '~')
				add_path(s, nd, v, n, one);
		free(copy);
		return;
	}
	abs = isolation_path(s, p);
	for (const char *const *h = s->o.hide; h && *h; h++) {
		size_t hl = strlen(*h);

		if (!strncmp(abs, *h, hl) && (abs[hl] == '/' || !abs[hl])) {
			node_log(s, nd, ORCHD_LOG_WARNING,
				 "isolation: %s is not made accessible: it is under %s, which no "
				 "extension may see",
				 p, *h);
			free(abs);
			return;
		}
	}
	*v = xrealloc(*v, (*n + 2) * sizeof(**v));
	(*v)[(*n)++] = abs;
	(*v)[*n] = NULL;
}

/* The sandbox of a node: under basic its limits only; else its spec, with
 * the paths of core, the instance and the extension's manifest made
 * absolute. */
static struct orchd_sandbox_spec *sandbox_spec(struct orchd_sched *s, struct node *nd)
{
	struct orchd_isolation iso;
	struct orchd_sandbox_spec *sp;
	const char **read = NULL, **write = NULL;
	size_t nr = 0, nw = 0;

	orchd_isolation_merge(&s->o.p->core.isolation, &nd->in->isolation, &iso);
	if (iso.level != ORCHD_ISOLATION_STRICT) {
		free(iso.read);
		free(iso.write);
		sp = xcalloc(1, sizeof(*sp));
		sp->basic = 1;
		sp->read = xcalloc(1, sizeof(*sp->read));
		sp->write = xcalloc(1, sizeof(*sp->write));
		sp->limits = &nd->in->exec.limits;
		return sp;
	}
	/* its modules and playbooks: the pipeline's directory stays readable
	 * (its state directory and the pipeline file are covered) */
	add_path(s, nd, &read, &nr, s->o.pipeline_dir);
	for (size_t k = 0; k < iso.nread; k++)
		add_path(s, nd, &read, &nr, iso.read[k]);
	for (char **p = nd->ext->iso_read; p && *p; p++)
		add_path(s, nd, &read, &nr, *p);
	for (size_t k = 0; k < iso.nwrite; k++)
		add_path(s, nd, &write, &nw, iso.write[k]);
	for (char **p = nd->ext->iso_write; p && *p; p++)
		add_path(s, nd, &write, &nw, *p);
	sp = xcalloc(1, sizeof(*sp));
	sp->network_none = iso.network_none || nd->ext->iso_network_none;
	sp->hide = s->o.hide;
	sp->read = read ? read : xcalloc(1, sizeof(*read));
	sp->write = write ? write : xcalloc(1, sizeof(*write));
	sp->limits = &nd->in->exec.limits;
	free(iso.read);
	free(iso.write);
	return sp;
}

static void sandbox_spec_free(struct orchd_sandbox_spec *sp)
{
	if (!sp)
		return;
	for (const char *const *p = sp->read; *p; p++)
		free((char *)(uintptr_t)*p);
	for (const char *const *p = sp->write; *p; p++)
		free((char *)(uintptr_t)*p);
	free((void *)(uintptr_t)sp->read);
	free((void *)(uintptr_t)sp->write);
	free(sp);
}

struct orchd_sched *orchd_sched_new(const struct orchd_sched_opts *o, const unsigned char *selected)
{
	struct orchd_sched *s = xcalloc(1, sizeof(*s));
	int bad = 0;

	s->o = *o;
	s->nn = o->p->ninst;
	s->n = xcalloc(s->nn ? s->nn : 1, sizeof(*s->n));
	s->limit = o->parallelism ? o->parallelism : 1;
	s->phase = OP_ACTION_VALIDATE;
	s->t0_mono = now_ms();
	s->t0_unix = unix_ms();
	{
		json_object *ci = orchd_ci_metadata();

		orchd_ci_info_from_json(&s->ci, ci);
		json_object_put(ci);
	}
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];
		struct op_buf e = OP_BUF_INIT;

		nd->in = &o->p->inst[i];
		nd->idx = i;
		nd->stack = orchd_instance_stack(o->p, nd->in);
		nd->changed = -1;
		nd->st = selected[i] ? NODE_PENDING : NODE_OFF;
		orchd_stack_record_init(&nd->prev);
		nd->ext = orchd_loader_find(o->reg, nd->in->type, &e);
		if (!nd->ext && nd->in->enabled) {
			error("%s: %s", nd->in->id, orchd_buf_str(&e));
			bad = 1;
		}
		/* its lines wait for its outputs: it may print a secret before
		 * declaring it (PROTOCOL.md §6.2, "mask") */
		if (nd->ext && makes_secrets(nd))
			orchd_journal_hold(o->journal, i);
		op_buf_release(&e);
	}
	if (bad) {
		orchd_sched_free(s);
		return NULL;
	}
	for (size_t i = 0; i < s->nn; i++)
		if (s->n[i].st != NODE_OFF && s->n[i].ext)
			s->n[i].sandbox = sandbox_spec(s, &s->n[i]);
	return s;
}

void orchd_sched_free(struct orchd_sched *s)
{
	if (!s)
		return;
	orchd_locator_close(s->locate);
	end_sessions(s);
	/* the supervisor first: its fetches use the nodes */
	orchd_supervisor_free(s->sup);
	orchd_remote_free(s->remote);
	/* then the writes in flight (their done callbacks fire on nodes) */
	for (size_t k = 0; k < s->nstate; k++) {
		struct orchd_worker *w = s->state[k];

		s->state[k] = NULL;
		orchd_worker_free(w);
	}
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		free(nd->stack);
		orchd_stack_record_release(&nd->prev);
		json_object_put(nd->prev_values);
		json_object_put(nd->up.outputs);
		json_object_put(nd->up.secrets);
		orchd_resolved_release(&nd->cfg);
		store_job_free(nd->job);
		sandbox_spec_free(nd->sandbox);
		for (size_t k = 0; k < nd->nspans; k++)
			free(nd->spans[k].reason);
		free(nd->spans);
	}
	orchd_ci_info_release(&s->ci);
	free(s->ready.v);
	free(s->timers.v);
	free(s->n);
	free(s);
}

int orchd_sched_load(struct orchd_sched *s)
{
	char err[1024];
	const char **stacks;
	struct orchd_stack_record **recs;
	int *rc, failed;

	if (!s->o.eng || !s->nn)
		return 0;
	/* all at once: an engine that takes several reads at a time (pulumi:
	 * a CLI call each) reads them side by side */
	stacks = xcalloc(s->nn, sizeof(*stacks));
	recs = xcalloc(s->nn, sizeof(*recs));
	rc = xcalloc(s->nn, sizeof(*rc));
	for (size_t i = 0; i < s->nn; i++) {
		stacks[i] = s->n[i].stack;
		recs[i] = &s->n[i].prev;
	}
	failed = orchd_engine_read_many(s->o.eng, s->nn, stacks, recs, rc, err, sizeof(err));
	free(stacks);
	free(recs);
	if (failed) {
		free(rc);
		return error("%s", err);
	}
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (rc[i])
			continue;
		nd->up.stored = nd->prev.outputs;
		nd->prev_values = json_object_new_object();
		json_object_object_foreach(nd->prev.outputs, k, o)
		{
			json_object *v = NULL;

			/* a secret that cannot be decrypted is not handed over */
			if (json_object_object_get_ex(o, "masked", NULL) ||
			    !json_object_object_get_ex(o, "value", &v))
				continue;
			json_object_object_add(nd->prev_values, k, json_object_get(v));
			/* stored secrets are masked in every line of this run */
			if (op_get_bool(o, "secret", false))
				register_secret_value(s, v);
		}
	}
	free(rc);
	return 0;
}

void orchd_sched_skip_unapplied(struct orchd_sched *s)
{
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (nd->st == NODE_OFF || has_record(nd))
			continue;
		nd->st = NODE_OFF;
		orchd_journal_line(s->o.journal, i, ORCHD_LOG_INFO, ORCHD_LOGSRC_ORCHD,
				   "nothing to destroy: it has no stack (never applied, or "
				   "destroyed already)");
	}
}

void orchd_sched_filter(struct orchd_sched *s, int only_stale, int only_failed)
{
	struct orchd_resolver r = {s->o.p, upstream_of, s, 0, 1};

	size_t *stale;

	if (!only_stale && !only_failed)
		return;
	/* stale: its own inputs changed, or an upstream's (transitively) */
	stale = xcalloc(s->nn ? s->nn : 1, sizeof(*stale));
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];
		struct orchd_resolved now = {0};

		stale[i] = ORCHD_GRAPH_NONE;
		if (!only_stale || nd->st == NODE_OFF || !has_record(nd))
			continue;
		orchd_refs_resolve(&r, i, &now);
		if (orchd_refs_stale(&nd->prev, &now))
			stale[i] = i;
		orchd_resolved_release(&now);
	}
	orchd_graph_spread(s->o.g, stale);
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];
		int keep = 0;

		if (nd->st == NODE_OFF)
			continue;
		if (only_failed)
			keep |= has_record(nd) && nd->prev.last.status &&
				strcmp(nd->prev.last.status, "success") != 0;
		keep |= stale[i] != ORCHD_GRAPH_NONE;
		if (!keep)
			nd->st = NODE_OFF;
	}
	free(stale);
}

size_t orchd_sched_count(const struct orchd_sched *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nn; i++)
		n += s->n[i].st != NODE_OFF;
	return n;
}

/* Its extension stores secrets for it (the manifest's "secrets": true, or
 * the config key it names is not empty). */
static int makes_secrets(const struct node *nd)
{
	json_object *own, *v;
	int yes;

	if (!nd->ext)
		return 0;
	if (nd->ext->secrets)
		return 1;
	if (!nd->ext->secrets_key)
		return 0;
	own = orchd_instance_own_config(nd->in);
	if (!json_object_object_get_ex(own, nd->ext->secrets_key, &v) || !v) {
		yes = 0;
	} else {
		switch (json_object_get_type(v)) {
		case json_type_array:
			yes = json_object_array_length(v) > 0;
			break;
		case json_type_object:
			yes = json_object_object_length(v) > 0;
			break;
		case json_type_string:
			yes = json_object_get_string_len(v) > 0;
			break;
		case json_type_boolean:
			yes = json_object_get_boolean(v);
			break;
		default:
			yes = 1;
			break;
		}
	}
	json_object_put(own);
	return yes;
}

int orchd_sched_needs_secrets(const struct orchd_sched *s, const char **id, const char **type)
{
	for (size_t i = 0; i < s->nn; i++) {
		const struct node *nd = &s->n[i];

		if (nd->st == NODE_OFF || !makes_secrets(nd))
			continue;
		*id = nd->in->id;
		*type = nd->in->type;
		return 1;
	}
	return 0;
}

/* --- results ------------------------------------------------------------ */

int orchd_sched_interrupted(struct orchd_sched *s)
{
	return s->sup ? orchd_supervisor_interrupted(s->sup) : 0;
}

int orchd_sched_config_error(const struct orchd_sched *s)
{
	return s->config_error;
}

int orchd_sched_state_error(const struct orchd_sched *s)
{
	return s->state_error;
}

int orchd_sched_system_error(const struct orchd_sched *s)
{
	return s->system_error;
}

int orchd_sched_any_failed(const struct orchd_sched *s)
{
	for (size_t i = 0; i < s->nn; i++) {
		enum node_state st = s->n[i].st;

		if (st == NODE_FAILED || st == NODE_SKIPPED || st == NODE_CANCELLED)
			return 1;
	}
	return 0;
}

int orchd_sched_any_strict(const struct orchd_sched *s)
{
	for (size_t i = 0; i < s->nn; i++)
		if (s->n[i].st != NODE_OFF && s->n[i].sandbox && !s->n[i].sandbox->basic)
			return 1;
	return 0;
}

int orchd_sched_any_changes(const struct orchd_sched *s)
{
	/* a plan that could not tell (changed unknown) may change things */
	for (size_t i = 0; i < s->nn; i++)
		if (s->n[i].st == NODE_DONE && s->n[i].changed != 0)
			return 1;
	return 0;
}

void orchd_sched_summary(struct orchd_sched *s)
{
	struct orchd_summary_row *rows = xcalloc(s->nn ? s->nn : 1, sizeof(*rows));
	size_t nr = 0;

	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (nd->st == NODE_OFF)
			continue;
		rows[nr].id = nd->in->id;
		rows[nr].status = node_status(s, nd);
		rows[nr].attempts = nd->attempts;
		rows[nr].wall_ms = nd->wall_ms;
		rows[nr].cpu_ms = nd->cpu_ms;
		rows[nr].max_rss_kb = nd->rss_kb;
		nr++;
	}
	orchd_console_summary(s->o.con, rows, nr);
	free(rows);
}

/* Longest output value printed whole at the end of a run. */
#define OUTPUT_SHOWN_MAX 200

void orchd_sched_print_outputs(struct orchd_sched *s)
{
	int any = 0;

	if (s->phase != OP_ACTION_APPLY)
		return;
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (nd->st != NODE_DONE || !nd->up.outputs ||
		    !json_object_object_length(nd->up.outputs))
			continue;
		if (!any)
			orchd_console_log(s->o.con, NULL, ORCHD_LOG_INFO, "outputs:");
		any = 1;
		json_object_object_foreach(nd->up.outputs, k, v)
		{
			int secret = json_object_object_get_ex(nd->up.secrets, k, NULL);
			const char *txt =
				secret ? "***"
				: json_object_is_type(v, json_type_string)
					? json_object_get_string(v)
					: json_object_to_json_string_ext(
						  v, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE);

			size_t len = strlen(txt);

			if (len > OUTPUT_SHOWN_MAX) {
				/* a value of megabytes is no console line */
				struct op_buf b = OP_BUF_INIT;

				op_buf_add(&b, txt, len);
				op_buf_ellipsize(&b, OUTPUT_SHOWN_MAX);
				orchd_console_logf(
					s->o.con, NULL, ORCHD_LOG_INFO,
					"  %s.%s = %s (%zu bytes: orchd outputs shows it)",
					nd->in->id, k, op_buf_str(&b), len);
				op_buf_release(&b);
				continue;
			}
			orchd_console_logf(s->o.con, NULL, ORCHD_LOG_INFO, "  %s.%s = %s",
					   nd->in->id, k, txt);
		}
	}
}

struct orchd_report_node *orchd_sched_report(const struct orchd_sched *s, size_t *n)
{
	const struct orchd_graph *g = s->o.g;
	struct orchd_report_node *rn;
	const char **deps;
	size_t nr = 0, ndeps = 0;

	/* one block: the nodes, then every node's dependency ids */
	for (size_t i = 0; i < s->nn; i++)
		ndeps += orchd_graph_ndeps(g, i);
	rn = xcalloc(1, (s->nn + 1) * sizeof(*rn) + (ndeps + 1) * sizeof(*deps));
	deps = (const char **)(rn + s->nn + 1);
	for (size_t i = 0; i < s->nn; i++) {
		const struct node *nd = &s->n[i];
		const size_t *dl = g->deps + g->dep_at[i];

		rn[nr].depends = deps;
		for (size_t k = 0; k < orchd_graph_ndeps(g, i); k++)
			if (nd->st == NODE_OFF || s->n[dl[k]].st != NODE_OFF)
				deps[rn[nr].ndepends++] = s->n[dl[k]].in->id;
		deps += rn[nr].ndepends;
		if (nd->st == NODE_OFF) {
			/* for the graph only: its place among the others */
			rn[nr].id = nd->in->id;
			rn[nr].type = nd->in->type;
			rn[nr].name = nd->in->name;
			rn[nr].unselected = 1;
			nr++;
			continue;
		}
		rn[nr].spans = nd->spans;
		rn[nr].nspans = nd->nspans;
		/* its last success: this apply's end, else its record's */
		if (nd->st == NODE_DONE && s->phase == OP_ACTION_APPLY && nd->nspans)
			rn[nr].last_success_ms = nd->spans[nd->nspans - 1].end_ms;
		else if (has_record(nd) && nd->prev.last.status &&
			 !strcmp(nd->prev.last.status, "success") &&
			 !strcmp(nd->prev.last.action ? nd->prev.last.action : "", "apply"))
			rn[nr].last_success_ms = nd->prev.last.ended_at;
		rn[nr].id = nd->in->id;
		rn[nr].type = nd->in->type;
		rn[nr].name = nd->in->name;
		rn[nr].stack = nd->stack;
		rn[nr].status = node_status(s, nd);
		rn[nr].reason = nd->reason;
		rn[nr].attempts = nd->attempts;
		rn[nr].started_at = nd->first_start;
		rn[nr].wall_ms = nd->wall_ms;
		rn[nr].cpu_ms = nd->cpu_ms;
		rn[nr].max_rss_kb = nd->rss_kb;
		rn[nr].changed = nd->changed;
		rn[nr].outputs = nd->up.outputs;
		rn[nr].secrets = nd->up.secrets;
		rn[nr].log = orchd_journal_text(s->o.journal, i);
		rn[nr].failed = nd->st == NODE_FAILED || nd->st == NODE_CANCELLED;
		rn[nr].skipped = nd->st == NODE_SKIPPED;
		rn[nr].isolation = !nd->sandbox || nd->sandbox->basic ? "basic"
				   : orchd_sandbox_probe()->namespaces
					   ? "strict"
					   : "strict (fallback: no namespaces)";
		nr++;
	}
	*n = nr;
	return rn;
}
