/* core/agent: `orchd worker` (see agent.h). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/agent.h"
#include "core/logging.h"
#include "etcd_client.h"
#include "handlers/remote.h"
#include "handlers/supervisor.h"
#include "interfaces/etcd.h"
#include "cache.h"
#include "models/pipeline.h"
#include "orchd_protocol.h"
#include "util.h"

#define NET_TICK_MS	20
#define CANCEL_CHECK_MS 250
#define LOG_BATCH_LINES 256
#define IDLE_MAX_MS	320
#define RESULT_BATCH	40

enum ajob_state {
	AJ_CLAIMED = 0, /* the loop has to start it */
	AJ_RUNNING,
	AJ_ENDED, /* its result waits to be written */
};

struct ajob {
	struct orchd_work_job *w;
	enum ajob_state st;
	json_object *lines; /* not sent yet */
	unsigned seq;
	json_object *masks;
	json_object *result; /* AJ_ENDED */
	int cancel, cancel_done;
	int orphan; /* the lease it was claimed under is lost */
};

struct agent {
	const struct orchd_agent_opts *o;
	struct orchd_engine *eng;
	struct orchd_etcd_view v;
	char *name, *work_dir;
	struct orchd_supervisor *sup;
	pthread_t net;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int efd;
	/* under mu */
	int stop, draining, registered;
	int64_t lease;
	struct ajob **jobs;
	size_t njobs, ajobs;
};

static void say(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct agent *a, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "orchd worker %s: %s\n", a->name, buf);
}

static void wake_loop(struct agent *a)
{
	uint64_t one = 1;

	(void)!write(a->efd, &one, sizeof(one));
}

static void ajob_free(struct ajob *j)
{
	orchd_work_job_free(j->w);
	json_object_put(j->lines);
	json_object_put(j->masks);
	json_object_put(j->result);
	free(j);
}

/* --- the network thread ----------------------------------------------------- */

/* A lease and the registration under it; 0 or -1. */
static int register_self(struct agent *a, char *err, size_t errlen)
{
	json_object *req = json_object_new_object(), *resp = NULL, *doc, *cmps, *ops, *tr = NULL;
	char *key, host[256];
	const char *s;
	int64_t lease;
	int r;

	orchd_etcd_add_int(req, "TTL", (a->o->ttl_ms + 999) / 1000);
	r = orchd_etcd_call(a->v.c, "lease/grant", req, &resp, err, errlen);
	json_object_put(req);
	if (r)
		return -1;
	lease = orchd_etcd_get_int(resp, "ID");
	json_object_put(resp);
	if (!lease)
		return orchd_set_err(err, errlen, "etcd granted no lease");
	if (gethostname(host, sizeof(host)))
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	doc = json_object_new_object();
	orchd_json_add_str(doc, "name", a->name);
	orchd_json_add_str(doc, "host", host);
	json_object_object_add(doc, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(doc, "slots", json_object_new_int64((int64_t)a->o->slots));
	json_object_object_add(doc, "labels",
			       a->o->labels ? json_object_get(a->o->labels)
					    : json_object_new_object());
	key = xasprintf("%swork/workers/%s", a->v.prefix, a->name);
	s = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
	req = json_object_new_object();
	cmps = json_object_new_array();
	json_object_array_add(cmps, orchd_etcd_cmp_create(key, 0));
	ops = json_object_new_array();
	json_object_array_add(ops, orchd_etcd_op_put(key, s, strlen(s), lease));
	json_object_object_add(req, "compare", cmps);
	json_object_object_add(req, "success", ops);
	r = orchd_etcd_call(a->v.c, "kv/txn", req, &tr, err, errlen);
	json_object_put(req);
	json_object_put(doc);
	if (!r && !op_get_bool(tr, "succeeded", false))
		r = orchd_set_err(err, errlen,
				  "another worker named %s is registered (etcd key %s): give this "
				  "one another --name",
				  a->name, key);
	json_object_put(tr);
	free(key);
	if (r) {
		req = json_object_new_object();
		orchd_etcd_add_int(req, "ID", lease);
		if (!orchd_etcd_call_once(a->v.c, "lease/revoke", req, &resp, err, errlen))
			json_object_put(resp);
		json_object_put(req);
		return -1;
	}
	a->lease = lease;
	a->registered = 1;
	return 0;
}

/* 1 renewed, 0 etcd no longer knows it, -1 not reached. */
static int keepalive(struct agent *a, int64_t lease)
{
	json_object *req = json_object_new_object(), *resp = NULL;
	char err[512];
	int r;

	orchd_etcd_add_int(req, "ID", lease);
	r = orchd_etcd_call_once(a->v.c, "lease/keepalive", req, &resp, err, sizeof(err));
	json_object_put(req);
	if (r)
		return -1;
	r = orchd_etcd_get_int(resp, "TTL") > 0;
	json_object_put(resp);
	return r;
}

static void lose_lease(struct agent *a, const char *why)
{
	int n = 0;

	for (size_t i = 0; i < a->njobs; i++)
		if (!a->jobs[i]->orphan) {
			a->jobs[i]->orphan = 1;
			a->jobs[i]->cancel = 1;
			n++;
		}
	say(a, "lost its lease (%s): %d step(s) it held are taken over elsewhere; stopping them",
	    why, n);
	a->lease = 0;
	a->registered = 0;
	wake_loop(a);
}

static void *net_thread(void *arg)
{
	struct agent *a = arg;
	long long last_ok = now_ms(), last_ka = 0, last_cancel = 0, last_try = 0, last_look = 0;
	/* an empty queue is looked at less and less often, up to IDLE_MAX_MS */
	long idle_ms = NET_TICK_MS;

	pthread_mutex_lock(&a->mu);
	while (!a->stop) {
		struct timespec ts;
		char err[1024];
		size_t busy = 0;

		/* the lease */
		if (!a->registered && !a->draining && now_ms() - last_try >= 1000) {
			last_try = now_ms();
			pthread_mutex_unlock(&a->mu);
			if (register_self(a, err, sizeof(err)) < 0)
				say(a, "cannot register: %s", err);
			else
				last_ok = last_ka = now_ms();
			pthread_mutex_lock(&a->mu);
			if (a->registered)
				say(a, "registered (lease %" PRIx64 ")", (uint64_t)a->lease);
		} else if (a->registered && now_ms() - last_ka >= a->o->ttl_ms / 3) {
			int64_t lease = a->lease;
			int r;

			last_ka = now_ms();
			pthread_mutex_unlock(&a->mu);
			r = keepalive(a, lease);
			pthread_mutex_lock(&a->mu);
			if (r > 0)
				last_ok = now_ms();
			else if (r == 0 && a->lease == lease)
				lose_lease(a, "etcd no longer knows it");
			else if (now_ms() - last_ok >= a->o->ttl_ms && a->lease == lease)
				lose_lease(a, "no renewal for a whole TTL");
		}
		/* lines, in one transaction per turn (etcd's --max-txn-ops: 128) */
		{
			json_object *ops = json_object_new_array();
			int64_t lease = a->lease;

			for (size_t i = 0; i < a->njobs && json_object_array_length(ops) < 120;
			     i++) {
				struct ajob *j = a->jobs[i];
				json_object *op;

				if (!j->lines || !json_object_array_length(j->lines) || j->orphan ||
				    !lease)
					continue;
				op = orchd_work_log_op(a->eng, lease, j->w, j->seq++, j->lines, err,
						       sizeof(err));
				j->lines = NULL;
				if (op)
					json_object_array_add(ops, op);
				else
					say(a, "%s: lines lost: %s", j->w->id, err);
			}
			if (json_object_array_length(ops)) {
				pthread_mutex_unlock(&a->mu);
				if (orchd_work_send(a->eng, ops, err, sizeof(err)) < 0)
					say(a, "lines lost: %s", err);
				pthread_mutex_lock(&a->mu);
			} else {
				json_object_put(ops);
			}
		}
		/* results: in one transaction when they can (etcd's
		 * --max-txn-ops: three operations each) */
		{
			struct orchd_work_job *w[RESULT_BATCH];
			json_object *d[RESULT_BATCH];
			size_t n = 0;

			for (size_t i = 0; i < a->njobs && n < RESULT_BATCH; i++) {
				struct ajob *j = a->jobs[i];

				if (j->st == AJ_ENDED && !j->orphan &&
				    !(j->lines && json_object_array_length(j->lines))) {
					w[n] = j->w;
					d[n++] = j->result;
				}
			}
			if (n >= 2) {
				int r;

				pthread_mutex_unlock(&a->mu);
				r = orchd_work_results(a->eng, w, d, n, err, sizeof(err));
				pthread_mutex_lock(&a->mu);
				for (size_t i = 0; !r && i < a->njobs;) {
					struct ajob *j = a->jobs[i];
					size_t k = 0;

					while (k < n && w[k] != j->w)
						k++;
					if (k == n) {
						i++;
						continue;
					}
					if (a->o->verbose)
						say(a, "%s: result written (claim %" PRId64 ")",
						    j->w->id, j->w->claim);
					ajob_free(j);
					memmove(&a->jobs[i], &a->jobs[i + 1],
						(a->njobs - i - 1) * sizeof(*a->jobs));
					a->njobs--;
				}
			}
		}
		/* one by one: what the batch did not write */
		for (size_t i = 0; i < a->njobs;) {
			struct ajob *j = a->jobs[i];
			int r;

			if (j->st != AJ_ENDED || (j->lines && json_object_array_length(j->lines) &&
						  !j->orphan && a->lease)) {
				i++;
				continue;
			}
			pthread_mutex_unlock(&a->mu);
			r = orchd_work_result(a->eng, j->w, j->result, err, sizeof(err));
			pthread_mutex_lock(&a->mu);
			if (r < 0) {
				say(a, "%s: cannot write its result yet: %s", j->w->id, err);
				i++;
				continue;
			}
			if (r == 1)
				say(a,
				    "%s: result refused: claim %" PRId64
				    " is no longer this worker's (its lease expired and the job "
				    "was taken over)",
				    j->w->id, j->w->claim);
			else if (a->o->verbose)
				say(a, "%s: result written (claim %" PRId64 ")", j->w->id,
				    j->w->claim);
			ajob_free(j);
			memmove(&a->jobs[i], &a->jobs[i + 1],
				(a->njobs - i - 1) * sizeof(*a->jobs));
			a->njobs--;
		}
		/* cancels asked for by the coordinator */
		if (a->njobs && now_ms() - last_cancel >= CANCEL_CHECK_MS) {
			struct orchd_work_job **w = xcalloc(a->njobs, sizeof(*w));
			int *c = xcalloc(a->njobs, sizeof(*c));
			size_t n = a->njobs;

			last_cancel = now_ms();
			for (size_t i = 0; i < n; i++)
				w[i] = a->jobs[i]->w;
			pthread_mutex_unlock(&a->mu);
			if (!orchd_work_cancelled(a->eng, w, n, c, err, sizeof(err))) {
				pthread_mutex_lock(&a->mu);
				for (size_t i = 0; i < n && i < a->njobs; i++)
					if (c[i] && a->jobs[i]->w == w[i] && !a->jobs[i]->cancel) {
						a->jobs[i]->cancel = 1;
						wake_loop(a);
					}
			} else {
				pthread_mutex_lock(&a->mu);
			}
			free(w);
			free(c);
		}
		/* new jobs */
		for (size_t i = 0; i < a->njobs; i++)
			busy += !a->jobs[i]->orphan || a->jobs[i]->st != AJ_ENDED;
		if (a->registered && !a->draining && busy < a->o->slots &&
		    now_ms() - last_look >= idle_ms) {
			struct orchd_work_job **got = NULL;
			size_t n = 0;
			int64_t lease = a->lease;

			last_look = now_ms();
			pthread_mutex_unlock(&a->mu);
			if (orchd_work_claim(a->eng, lease, a->name, a->o->labels,
					     a->o->slots - busy, &got, &n, err, sizeof(err)) < 0)
				say(a, "cannot read the queue: %s", err);
			pthread_mutex_lock(&a->mu);
			for (size_t i = 0; i < n; i++) {
				struct ajob *j = xcalloc(1, sizeof(*j));

				j->w = got[i];
				j->orphan = lease != a->lease;
				ALLOC_GROW(a->jobs, a->njobs + 1, a->ajobs);
				a->jobs[a->njobs++] = j;
				if (a->o->verbose)
					say(a, "%s: claimed (claim %" PRId64 ", run %s)", j->w->id,
					    j->w->claim, j->w->run);
			}
			free(got);
			if (n)
				wake_loop(a);
			idle_ms = n			      ? NET_TICK_MS
				  : idle_ms * 2 > IDLE_MAX_MS ? IDLE_MAX_MS
							      : idle_ms * 2;
		}
		if (a->draining && !a->njobs)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += NET_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&a->cv, &a->mu, &ts);
	}
	a->stop = 1;
	pthread_mutex_unlock(&a->mu);
	wake_loop(a);
	return NULL;
}

/* --- the loop --------------------------------------------------------------- */

static void on_log(void *cb_data, void *ctx, const char *id, enum orchd_log_level level,
		   enum orchd_log_source src, const char *text)
{
	struct agent *a = cb_data;
	struct ajob *j = ctx;
	json_object *l = json_object_new_array();

	if (a->o->verbose)
		fprintf(stderr, "%s: %s\n", id, text);
	json_object_array_add(l, json_object_new_int((int)level));
	json_object_array_add(l, json_object_new_int((int)src));
	json_object_array_add(l, json_object_new_string(text));
	pthread_mutex_lock(&a->mu);
	if (!j->lines)
		j->lines = json_object_new_array();
	json_object_array_add(j->lines, l);
	if (json_object_array_length(j->lines) >= LOG_BATCH_LINES)
		pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

static void on_mask(void *cb_data, void *ctx, const char *value)
{
	struct agent *a = cb_data;
	struct ajob *j = ctx;

	pthread_mutex_lock(&a->mu);
	if (!j->masks)
		j->masks = json_object_new_array();
	json_object_array_add(j->masks, json_object_new_string(value));
	pthread_mutex_unlock(&a->mu);
}

static void on_done(void *cb_data, void *ctx, const char *id, const struct orchd_step_result *res)
{
	struct agent *a = cb_data;
	struct ajob *j = ctx;
	json_object *doc;

	pthread_mutex_lock(&a->mu);
	doc = orchd_work_result_doc(j->w, a->name, res, j->masks);
	/* stopped because this worker stops (SIGTERM): not the step's
	 * failure, another worker takes it over */
	if (a->draining && res->status == ORCHD_STEP_CANCELLED)
		json_object_object_add(doc, "worker_stopped", json_object_new_boolean(1));
	j->result = doc;
	j->st = AJ_ENDED;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (a->o->verbose || res->status != ORCHD_STEP_SUCCESS)
		say(a, "%s: %s%s%s", id, orchd_step_status_name(res->status),
		    res->reason[0] ? ": " : "", res->reason);
}

/* A job that cannot start: its end is a spawn error, or with handback
 * (this worker stops) a job for another worker (mu held). */
static void cannot_start(struct agent *a, struct ajob *j, const char *why, int handback)
{
	struct orchd_step_result res;

	memset(&res, 0, sizeof(res));
	res.status = ORCHD_STEP_SPAWN_ERROR;
	res.exit_status = -1;
	res.changed = -1;
	res.setup_ms = -1;
	snprintf(res.reason, sizeof(res.reason), "on worker %s: %s", a->name, why);
	res.outputs = json_object_new_object();
	res.secrets = json_object_new_object();
	j->result = orchd_work_result_doc(j->w, a->name, &res, NULL);
	if (handback)
		json_object_object_add(j->result, "worker_stopped", json_object_new_boolean(1));
	j->st = AJ_ENDED;
	json_object_put(res.outputs);
	json_object_put(res.secrets);
	say(a, "%s: %s", j->w->id, res.reason);
	pthread_cond_signal(&a->cv);
}

/*
 * Start the claimed jobs and cancel the ones asked to (the loop thread).
 * mu is released around each start and cancel, and meanwhile the network
 * thread may take ended jobs out of a->jobs: the scan starts again after
 * each, since an index no longer names the same job (a job skipped there
 * stayed claimed and never started, and its run waited on it forever).
 * Each job it acts on leaves the states it looks for, so the scans end.
 */
static void collect(void *arg)
{
	struct agent *a = arg;
	uint64_t n;

	(void)!read(a->efd, &n, sizeof(n));
	pthread_mutex_lock(&a->mu);
again:
	for (size_t i = 0; i < a->njobs; i++) {
		struct ajob *j = a->jobs[i];
		struct orchd_step_spec spec = ORCHD_STEP_SPEC_INIT;
		const struct orchd_ext_info *ext;
		struct op_buf e = OP_BUF_INIT;
		char err[512];

		if (j->st == AJ_RUNNING && j->cancel && !j->cancel_done) {
			j->cancel_done = 1;
			pthread_mutex_unlock(&a->mu);
			orchd_supervisor_cancel(a->sup, j->w->id,
						j->orphan ? "the worker lost its lease"
							  : "the coordinator asked");
			pthread_mutex_lock(&a->mu);
			goto again;
		}
		if (j->st != AJ_CLAIMED)
			continue;
		if (j->orphan || j->cancel || a->draining) {
			cannot_start(a, j, "cancelled before it started", !j->cancel || j->orphan);
			continue;
		}
		ext = orchd_loader_find(a->o->reg, j->w->type, &e);
		if (!ext) {
			cannot_start(a, j, orchd_buf_str(&e), 0);
			op_buf_release(&e);
			continue;
		}
		op_buf_release(&e);
		if (orchd_work_spec(j->w, &spec, err, sizeof(err)) < 0) {
			cannot_start(a, j, err, 0);
			continue;
		}
		spec.exe = ext->path;
		spec.workdir_base = a->work_dir;
		spec.ctx = j;
		j->st = AJ_RUNNING;
		pthread_mutex_unlock(&a->mu);
		if (orchd_supervisor_start(a->sup, &spec) < 0) {
			pthread_mutex_lock(&a->mu);
			cannot_start(a, j, "the worker is stopping", 1);
		} else {
			pthread_mutex_lock(&a->mu);
		}
		orchd_work_spec_release(&spec);
		goto again;
	}
	pthread_mutex_unlock(&a->mu);
}

static char *default_name(void)
{
	char host[256];

	if (gethostname(host, sizeof(host)))
		snprintf(host, sizeof(host), "worker");
	host[sizeof(host) - 1] = '\0';
	host[strcspn(host, ".")] = '\0';
	return xasprintf("%s-%d", host, (int)getpid());
}

int orchd_agent_run(const struct orchd_agent_opts *o)
{
	struct agent a;
	struct orchd_supervisor_opts so = ORCHD_SUPERVISOR_OPTS_INIT;
	char err[1024];
	int rc = ORCHD_EXIT_OK;

	memset(&a, 0, sizeof(a));
	a.o = o;
	a.name = o->name ? xstrdup(o->name) : default_name();
	if (!orchd_label_ok(a.name, strlen(a.name))) {
		error("worker name '%s' is not valid: " ORCHD_LABEL_RULE, a.name);
		free(a.name);
		return ORCHD_EXIT_USAGE;
	}
	a.work_dir = o->work_dir
			     ? xstrdup(o->work_dir)
			     : xasprintf("%s/orchd-worker-%s",
					 getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR")
									       : "/tmp",
					 a.name);
	if (orchd_mkdir_p(a.work_dir, 0700, err, sizeof(err)) < 0) {
		error("%s", err);
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	if (orchd_etcd_engine_open(&o->etcd, NULL, NULL, &a.eng, err, sizeof(err)) < 0) {
		error("%s", err);
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	orchd_etcd_engine_view(a.eng, &a.v);
	so.log = on_log;
	so.mask = on_mask;
	so.done = on_done;
	so.cb_data = &a;
	a.sup = orchd_supervisor_new(&so);
	a.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!a.sup || a.efd < 0 || orchd_supervisor_watch(a.sup, a.efd, collect, &a) < 0) {
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	/* the first registration here: a bad endpoint or a taken name is
	 * said at once */
	if (register_self(&a, err, sizeof(err)) < 0) {
		error("%s", err);
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	say(&a, "registered under %s (lease %" PRIx64 ", %zu slots), waiting for jobs", a.v.prefix,
	    (uint64_t)a.lease, o->slots);
	pthread_mutex_init(&a.mu, NULL);
	pthread_cond_init(&a.cv, NULL);
	if (orchd_thread_start(&a.net, net_thread, &a)) {
		error("cannot start the worker's thread");
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	for (;;) {
		int stop;

		if (orchd_supervisor_wait(a.sup, -1) < 0)
			break;
		pthread_mutex_lock(&a.mu);
		if (orchd_supervisor_interrupted(a.sup) && !a.draining) {
			a.draining = 1;
			say(&a, "stopping: claiming nothing more");
			pthread_cond_signal(&a.cv);
			wake_loop(&a); /* a job claimed and not started goes back */
		}
		stop = a.stop;
		pthread_mutex_unlock(&a.mu);
		if (stop && !orchd_supervisor_running(a.sup))
			break;
	}
	pthread_join(a.net, NULL);
	if (a.lease) {
		json_object *req = json_object_new_object(), *resp = NULL;

		orchd_etcd_add_int(req, "ID", a.lease);
		if (!orchd_etcd_call_once(a.v.c, "lease/revoke", req, &resp, err, sizeof(err)))
			json_object_put(resp);
		json_object_put(req);
	}
	say(&a, "stopped");
	pthread_mutex_destroy(&a.mu);
	pthread_cond_destroy(&a.cv);
out:
	orchd_supervisor_free(a.sup);
	for (size_t i = 0; i < a.njobs; i++)
		ajob_free(a.jobs[i]);
	free(a.jobs);
	if (a.efd > 0)
		close(a.efd);
	orchd_engine_close(a.eng);
	free(a.name);
	free(a.work_dir);
	return rc;
}
