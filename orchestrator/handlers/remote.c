/* handlers/remote: the work queue in etcd (see remote.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "etcd_client.h"
#include "core/logging.h"
#include "handlers/remote.h"
#include "handlers/sandbox.h"
#include "interfaces/etcd.h"
#include "interfaces/record.h"
#include "orchd_protocol.h"
#include "util.h"

/* A claimed job whose worker went silent on a cancel: ended this long
 * after the cancel was asked for, beyond its grace. */
#define CANCEL_WAIT_MS 15000
/* No worker took a job for this long: say so once. */
#define UNCLAIMED_WARN_MS 10000

static char *key_of(const char *prefix, const char *what, const char *id)
{
	return xasprintf("%swork/%s/%s", prefix, what, id);
}

static json_object *kvs_of(json_object *resp)
{
	json_object *a;

	if (json_object_object_get_ex(resp, "kvs", &a) && json_object_is_type(a, json_type_array))
		return a;
	return NULL;
}

/* The value of a kv as JSON (a new reference), or NULL. */
static json_object *kv_json(json_object *kv)
{
	size_t len;
	char *v = orchd_etcd_get_bytes(kv, "value", 0, &len);
	json_object *o;
	const char *why;

	if (!v)
		return NULL;
	o = orchd_json_parse_all(v, len, &why);
	free(v);
	return o;
}

/* The last component of a kv's key under "P/work/WHAT/" (malloc'ed). */
static char *kv_id(json_object *kv, size_t skip)
{
	size_t len;
	char *k = orchd_etcd_get_bytes(kv, "key", 0, &len), *id;

	if (!k || len <= skip) {
		free(k);
		return NULL;
	}
	id = xstrdup(k + skip);
	free(k);
	return id;
}

static void put_json(json_object *ops, const char *key, json_object *v, int64_t lease)
{
	const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE);

	json_object_array_add(ops, orchd_etcd_op_put(key, s, strlen(s), lease));
}

/* body, or {"sealed": ...} when the engine has a passphrase (taken). */
static json_object *seal_body(struct orchd_engine *eng, int has_pass, const char *id,
			      const char *what, json_object *body, char *err, size_t errlen)
{
	json_object *s;

	if (!has_pass)
		return body;
	s = orchd_etcd_engine_seal(eng, id, what, body, err, errlen);
	json_object_put(body);
	if (!s)
		return NULL;
	body = json_object_new_object();
	json_object_object_add(body, "sealed", s);
	return body;
}

/* The body of doc (a new reference), opened when sealed; NULL on error. */
static json_object *open_body(struct orchd_engine *eng, const char *id, const char *what,
			      json_object *doc, const char *where, char *err, size_t errlen)
{
	json_object *b, *s, *v = NULL;

	if (!json_object_object_get_ex(doc, "body", &b) ||
	    !json_object_is_type(b, json_type_object)) {
		orchd_set_err(err, errlen, "%s: no body", where);
		return NULL;
	}
	if (!json_object_object_get_ex(b, "sealed", &s))
		return json_object_get(b);
	if (orchd_etcd_engine_unseal(eng, id, what, s, where, &v, err, errlen))
		return NULL;
	if (!json_object_is_type(v, json_type_object)) {
		json_object_put(v);
		orchd_set_err(err, errlen, "%s: the sealed body is not an object", where);
		return NULL;
	}
	return v;
}

/* ---------------------------------------------------------------------------
 * The coordinator.
 * ------------------------------------------------------------------------- */

enum rjob_state {
	RJ_NEW = 0, /* to publish */
	RJ_QUEUED,  /* its job key is in etcd */
	RJ_CLAIMED, /* a worker holds it */
	RJ_ENDED,   /* its done event is queued */
};

struct rjob {
	char *id, *stack, *body_json; /* the job document, sealed */
	void *ctx;
	enum rjob_state st;
	int64_t queued_rev, claim;
	char worker[128];
	long long t_queued, cancel_at;
	int cancel, cancel_sent, warned_busy, warned_idle;
	int solo;	 /* its batch failed: published alone, to learn why */
	int64_t log_rev; /* the last log key's mod revision delivered */
};

enum rev_kind { EV_LOG, EV_DONE };

struct rev {
	enum rev_kind kind;
	struct rjob *j;
	int level, src;
	char *text;
	json_object *result; /* EV_DONE: the result document, body opened; NULL: synthesized */
	enum orchd_step_status status;
	int lost;
	char reason[640];
	struct rev *next;
};

struct orchd_remote {
	struct orchd_remote_opts o;
	struct orchd_etcd_view v;
	char *run_id;
	char *p_queue, *p_claims, *p_results, *p_logs, *p_workers;
	int efd;
	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	/* under mu */
	struct rjob **jobs;
	size_t njobs, ajobs;
	struct rev *evq, **evtail;
	char cancel_reason[128];
	/* the loop thread's */
	size_t outstanding;
};

static void push_ev(struct orchd_remote *r, struct rev *e)
{
	uint64_t one = 1;

	e->next = NULL;
	*r->evtail = e;
	r->evtail = &e->next;
	/* EAGAIN: the counter is at its maximum, readable anyway */
	(void)!write(r->efd, &one, sizeof(one));
}

/* End j with a result made here (mu held). */
static void end_job(struct orchd_remote *r, struct rjob *j, enum orchd_step_status st, int lost,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void end_job(struct orchd_remote *r, struct rjob *j, enum orchd_step_status st, int lost,
		    const char *fmt, ...)
{
	struct rev *e = xcalloc(1, sizeof(*e));
	va_list ap;

	e->kind = EV_DONE;
	e->j = j;
	e->status = st;
	e->lost = lost;
	va_start(ap, fmt);
	vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
	va_end(ap);
	j->st = RJ_ENDED;
	push_ev(r, e);
}

static void log_ev(struct orchd_remote *r, struct rjob *j, int level, int src, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void log_ev(struct orchd_remote *r, struct rjob *j, int level, int src, const char *fmt, ...)
{
	struct rev *e = xcalloc(1, sizeof(*e));
	va_list ap;

	e->kind = EV_LOG;
	e->j = j;
	e->level = level;
	e->src = src;
	va_start(ap, fmt);
	if (vasprintf(&e->text, fmt, ap) < 0)
		e->text = xstrdup("?");
	va_end(ap);
	push_ev(r, e);
}

/* etcd's --max-txn-ops is 128 by default: a job is three operations */
#define BATCH_JOBS 40

/* Publish up to BATCH_JOBS new jobs in one transaction; 1 when there were
 * fewer than two to publish (mu held, released around the request). */
static int publish_batch(struct orchd_remote *r)
{
	struct rjob *b[BATCH_JOBS];
	json_object *cmps, *ops, *resp = NULL, *h;
	size_t n = 0;
	char err[512];
	int ret;

	for (size_t i = 0; i < r->njobs && n < BATCH_JOBS; i++)
		if (r->jobs[i]->st == RJ_NEW && !r->jobs[i]->cancel && !r->jobs[i]->solo)
			b[n++] = r->jobs[i];
	if (n < 2)
		return 1;
	cmps = json_object_new_array();
	ops = json_object_new_array();
	json_object_array_add(cmps, orchd_etcd_cmp_create(r->v.lock_key, r->v.fence));
	for (size_t k = 0; k < n; k++) {
		char *kq = key_of(r->v.prefix, "queue", b[k]->id);
		char *kc = key_of(r->v.prefix, "claims", b[k]->id);
		char *kr = key_of(r->v.prefix, "results", b[k]->id);
		char *kl = xasprintf("%s%s/", r->p_logs, b[k]->id);

		json_object_array_add(cmps, orchd_etcd_cmp_create(kc, 0));
		json_object_array_add(
			ops, orchd_etcd_op_put(kq, b[k]->body_json, strlen(b[k]->body_json), 0));
		json_object_array_add(ops, orchd_etcd_op_del(kr, NULL));
		json_object_array_add(ops, orchd_etcd_op_del_prefix(kl));
		free(kq);
		free(kc);
		free(kr);
		free(kl);
	}
	pthread_mutex_unlock(&r->mu);
	ret = orchd_etcd_txn(r->v.c, cmps, ops, &resp, err, sizeof(err));
	pthread_mutex_lock(&r->mu);
	for (size_t k = 0; k < n; k++) {
		if (ret) {
			b[k]->solo = 1; /* the lock, a claim still held, etcd: see alone */
			continue;
		}
		b[k]->st = RJ_QUEUED;
		b[k]->queued_rev = json_object_object_get_ex(resp, "header", &h)
					   ? orchd_etcd_get_int(h, "revision")
					   : 0;
		b[k]->t_queued = now_ms();
	}
	json_object_put(resp);
	return 0;
}

/* Publish the new jobs (mu held, released around the requests). */
static void publish(struct orchd_remote *r)
{
	while (!publish_batch(r))
		;
	for (size_t i = 0; i < r->njobs; i++) {
		struct rjob *j = r->jobs[i];
		json_object *cmps, *ops, *resp = NULL, *kvs;
		char *kq, *kc, *kr, *kl, err[512];
		int ret;

		if (j->st != RJ_NEW)
			continue;
		if (j->cancel) {
			end_job(r, j, ORCHD_STEP_CANCELLED, 0, "cancelled (%s)", r->cancel_reason);
			continue;
		}
		kq = key_of(r->v.prefix, "queue", j->id);
		kc = key_of(r->v.prefix, "claims", j->id);
		kr = key_of(r->v.prefix, "results", j->id);
		kl = xasprintf("%swork/logs/%s/", r->v.prefix, j->id);
		cmps = json_object_new_array();
		json_object_array_add(cmps, orchd_etcd_cmp_create(r->v.lock_key, r->v.fence));
		json_object_array_add(cmps, orchd_etcd_cmp_create(kc, 0));
		ops = json_object_new_array();
		json_object_array_add(ops,
				      orchd_etcd_op_put(kq, j->body_json, strlen(j->body_json), 0));
		json_object_array_add(ops, orchd_etcd_op_del(kr, NULL));
		json_object_array_add(ops, orchd_etcd_op_del_prefix(kl));
		json_object_array_add(ops, orchd_etcd_op_range(kq));
		pthread_mutex_unlock(&r->mu);
		ret = orchd_etcd_txn(r->v.c, cmps, ops, &resp, err, sizeof(err));
		pthread_mutex_lock(&r->mu);
		if (!ret && (kvs = orchd_etcd_txn_kvs(resp, 3)) && json_object_array_length(kvs)) {
			j->queued_rev = orchd_etcd_get_int(json_object_array_get_idx(kvs, 0),
							   "mod_revision");
			j->st = RJ_QUEUED;
			j->t_queued = now_ms();
		} else if (ret < 0) {
			end_job(r, j, ORCHD_STEP_SPAWN_ERROR, 0, "cannot publish the job: %s", err);
		} else {
			json_object *kv = NULL;

			/* the lock, or a claim of an earlier run still held? */
			pthread_mutex_unlock(&r->mu);
			ops = json_object_new_array();
			json_object_array_add(ops, orchd_etcd_op_range(r->v.lock_key));
			json_object_array_add(ops, orchd_etcd_op_range(kc));
			ret = orchd_etcd_txn(r->v.c, NULL, ops, &resp, err, sizeof(err));
			pthread_mutex_lock(&r->mu);
			kvs = ret ? NULL : orchd_etcd_txn_kvs(resp, 0);
			if (ret) {
				end_job(r, j, ORCHD_STEP_SPAWN_ERROR, 0,
					"cannot publish the job: %s", err);
			} else if (!kvs || !json_object_array_length(kvs) ||
				   orchd_etcd_get_int(json_object_array_get_idx(kvs, 0),
						      "create_revision") != r->v.fence) {
				end_job(r, j, ORCHD_STEP_SPAWN_ERROR, 0,
					"not published: the pipeline lock (etcd key %s) is lost",
					r->v.lock_key);
			} else if (!j->warned_busy) {
				json_object *c = NULL;

				kvs = orchd_etcd_txn_kvs(resp, 1);
				kv = kvs && json_object_array_length(kvs)
					     ? json_object_array_get_idx(kvs, 0)
					     : NULL;
				c = kv ? kv_json(kv) : NULL;
				j->warned_busy = 1;
				log_ev(r, j, ORCHD_LOG_WARNING, ORCHD_LOGSRC_ORCHD,
				       "worker %s still runs it for run %s: waiting for it to end",
				       c ? op_get_str(c, "worker") : "?",
				       c ? op_get_str(c, "run") : "?");
				json_object_put(c);
			}
		}
		json_object_put(resp);
		free(kq);
		free(kc);
		free(kr);
		free(kl);
	}
}

static struct rjob *find_job(struct orchd_remote *r, const char *id)
{
	for (size_t i = 0; i < r->njobs; i++)
		if (r->jobs[i]->st != RJ_NEW && r->jobs[i]->st != RJ_ENDED &&
		    !strcmp(r->jobs[i]->id, id))
			return r->jobs[i];
	return NULL;
}

/* Deliver the log entries of kvs (sorted by mod revision). */
static void deliver_logs(struct orchd_remote *r, json_object *kvs)
{
	size_t skip = strlen(r->p_logs);

	for (size_t i = 0; kvs && i < json_object_array_length(kvs); i++) {
		json_object *kv = json_object_array_get_idx(kvs, i), *doc, *body, *lines;
		char *key = kv_id(kv, skip), *slash, err[512];
		int64_t rev = orchd_etcd_get_int(kv, "mod_revision"), claim;
		struct rjob *j;

		if (!key)
			continue;
		slash = strchr(key, '/');
		if (!slash) {
			free(key);
			continue;
		}
		*slash = '\0';
		claim = strtoll(slash + 1, NULL, 10);
		j = find_job(r, key);
		if (!j || j->claim != claim || rev <= j->log_rev || !(doc = kv_json(kv))) {
			free(key);
			continue;
		}
		j->log_rev = rev;
		pthread_mutex_unlock(&r->mu);
		body = open_body(r->o.eng, j->id, "log", doc, "a log entry", err, sizeof(err));
		pthread_mutex_lock(&r->mu);
		if (body && json_object_object_get_ex(body, "lines", &lines) &&
		    json_object_is_type(lines, json_type_array)) {
			for (size_t k = 0; k < json_object_array_length(lines); k++) {
				json_object *l = json_object_array_get_idx(lines, k);
				int lvl, src;
				const char *text;

				if (!json_object_is_type(l, json_type_array) ||
				    json_object_array_length(l) != 3)
					continue;
				lvl = json_object_get_int(json_object_array_get_idx(l, 0));
				src = json_object_get_int(json_object_array_get_idx(l, 1));
				text = json_object_get_string(json_object_array_get_idx(l, 2));
				if (lvl < ORCHD_LOG_DEBUG || lvl > ORCHD_LOG_ERROR)
					lvl = ORCHD_LOG_INFO;
				if (src < 0 || src > ORCHD_LOGSRC_ORCHD)
					src = ORCHD_LOGSRC_STDERR;
				log_ev(r, j, lvl, src, "%s", text ? text : "");
			}
		} else if (!body) {
			log_ev(r, j, ORCHD_LOG_WARNING, ORCHD_LOGSRC_ORCHD, "%s", err);
		}
		json_object_put(body);
		json_object_put(doc);
		free(key);
	}
}

/* One look at the queue, the claims, the results and new log lines, in one
 * snapshot (mu held, released around the request). */
static void poll_once(struct orchd_remote *r)
{
	json_object *ops, *resp = NULL, *logs, *res, *claims, *queue, *gc;
	json_object *lr;
	struct look {
		json_object *doc, *claim;
		int queued;
	} * looks;
	int64_t min_log = INT64_MAX;
	size_t nj;
	char err[512];
	int ret;

	for (size_t i = 0; i < r->njobs; i++)
		if ((r->jobs[i]->st == RJ_QUEUED || r->jobs[i]->st == RJ_CLAIMED) &&
		    r->jobs[i]->log_rev < min_log)
			min_log = r->jobs[i]->log_rev;
	if (min_log == INT64_MAX)
		return;
	ops = json_object_new_array();
	json_object_array_add(ops, orchd_etcd_op_range_prefix(r->p_results, 0));
	json_object_array_add(ops, orchd_etcd_op_range_prefix(r->p_claims, 0));
	json_object_array_add(ops, orchd_etcd_op_range_prefix(r->p_queue, 1));
	lr = orchd_etcd_op_range_prefix(r->p_logs, 0);
	{
		json_object *rr;

		json_object_object_get_ex(lr, "request_range", &rr);
		orchd_etcd_add_int(rr, "min_mod_revision", min_log + 1);
		orchd_json_add_str(rr, "sort_order", "ASCEND");
		orchd_json_add_str(rr, "sort_target", "MOD");
	}
	json_object_array_add(ops, lr);
	pthread_mutex_unlock(&r->mu);
	ret = orchd_etcd_txn(r->v.c, NULL, ops, &resp, err, sizeof(err));
	pthread_mutex_lock(&r->mu);
	if (ret)
		return; /* etcd unreachable: the next turn tries again */
	res = orchd_etcd_txn_kvs(resp, 0);
	claims = orchd_etcd_txn_kvs(resp, 1);
	queue = orchd_etcd_txn_kvs(resp, 2);
	logs = orchd_etcd_txn_kvs(resp, 3);
	/* jobs started while mu is released below are for the next turn */
	nj = r->njobs;
	looks = xcalloc(nj ? nj : 1, sizeof(*looks));
	for (size_t i = 0; i < nj; i++) {
		struct rjob *j = r->jobs[i];
		json_object *doc = NULL, *claim = NULL;
		int queued = 0;

		if (j->st != RJ_QUEUED && j->st != RJ_CLAIMED)
			continue;
		for (size_t k = 0; res && k < json_object_array_length(res) && !doc; k++) {
			json_object *kv = json_object_array_get_idx(res, k);
			char *id = kv_id(kv, strlen(r->p_results));

			if (id && !strcmp(id, j->id)) {
				doc = kv_json(kv);
				if (doc &&
				    strcmp(op_get_str(doc, "run") ? op_get_str(doc, "run") : "",
					   r->run_id)) {
					json_object_put(doc);
					doc = NULL;
				}
			}
			free(id);
		}
		for (size_t k = 0; claims && k < json_object_array_length(claims) && !claim; k++) {
			json_object *kv = json_object_array_get_idx(claims, k);
			char *id = kv_id(kv, strlen(r->p_claims));

			if (id && !strcmp(id, j->id)) {
				claim = kv_json(kv);
				if (claim)
					json_object_object_add(
						claim, "rev",
						json_object_new_int64(
							orchd_etcd_get_int(kv, "create_revision")));
			}
			free(id);
		}
		for (size_t k = 0; queue && k < json_object_array_length(queue); k++) {
			json_object *kv = json_object_array_get_idx(queue, k);
			char *id = kv_id(kv, strlen(r->p_queue));

			queued |= id && !strcmp(id, j->id);
			free(id);
		}
		/* claimed and ended between two looks: the result says by whom */
		if (doc && op_get_int(doc, "claim", 0) != j->claim) {
			j->claim = op_get_int(doc, "claim", 0);
			j->log_rev = 0;
			snprintf(j->worker, sizeof(j->worker), "%s",
				 op_get_str(doc, "worker") ? op_get_str(doc, "worker") : "?");
		}
		if (!doc && claim && op_get_int(claim, "rev", 0) != j->claim) {
			j->st = RJ_CLAIMED;
			j->claim = op_get_int(claim, "rev", 0);
			j->log_rev = 0;
			snprintf(j->worker, sizeof(j->worker), "%s",
				 op_get_str(claim, "worker") ? op_get_str(claim, "worker") : "?");
			log_ev(r, j, ORCHD_LOG_DEBUG, ORCHD_LOGSRC_ORCHD,
			       "claimed by worker %s (claim %" PRId64 ")", j->worker, j->claim);
		}
		looks[i].doc = doc;
		looks[i].claim = claim;
		looks[i].queued = queued;
	}
	/* what ended: its result and lines go, in transactions of at most
	 * 120 deletes */
	gc = json_object_new_array();
	/* lines first: they come before the end of their step */
	deliver_logs(r, logs);
	for (size_t i = 0; i < nj; i++) {
		struct rjob *j = r->jobs[i];
		json_object *doc = looks[i].doc, *claim = looks[i].claim;
		int queued = looks[i].queued;

		if (j->st != RJ_QUEUED && j->st != RJ_CLAIMED)
			continue;
		if (doc) {
			struct rev *e = xcalloc(1, sizeof(*e));
			char *kr = key_of(r->v.prefix, "results", j->id);
			char *kl = xasprintf("%s%s/", r->p_logs, j->id);
			json_object *body;

			pthread_mutex_unlock(&r->mu);
			body = open_body(r->o.eng, j->id, "result", doc, "a result", err,
					 sizeof(err));
			pthread_mutex_lock(&r->mu);
			e->kind = EV_DONE;
			e->j = j;
			if (body) {
				json_object_object_add(doc, "body", body);
				e->result = doc;
			} else {
				json_object_put(doc);
				e->status = ORCHD_STEP_PROTOCOL_ERROR;
				snprintf(e->reason, sizeof(e->reason), "%s", err);
			}
			j->st = RJ_ENDED;
			push_ev(r, e);
			json_object_array_add(gc, orchd_etcd_op_del(kr, NULL));
			json_object_array_add(gc, orchd_etcd_op_del_prefix(kl));
			free(kr);
			free(kl);
		} else if (claim) {
			/* running: seen in the first pass */
		} else if (queued) {
			if (!j->warned_idle && now_ms() - j->t_queued > UNCLAIMED_WARN_MS) {
				j->warned_idle = 1;
				log_ev(r, j, ORCHD_LOG_WARNING, ORCHD_LOGSRC_ORCHD,
				       "no worker has taken it for %ds: is a worker with its "
				       "runs_on labels running (orchd worker, etcd key %s)?",
				       UNCLAIMED_WARN_MS / 1000, r->p_workers);
			}
		} else {
			/* neither queued, nor claimed, nor ended: its worker's lease
			 * expired with the claim on it */
			char *kl = xasprintf("%s%s/", r->p_logs, j->id);

			end_job(r, j, ORCHD_STEP_FAILED, 1,
				"worker %s lost its lease while running it (claim %" PRId64 ")",
				j->worker[0] ? j->worker : "?", j->claim);
			json_object_array_add(gc, orchd_etcd_op_del_prefix(kl));
			free(kl);
		}
		json_object_put(claim);
	}
	while (json_object_array_length(gc)) {
		json_object *chunk = json_object_new_array();
		size_t len = json_object_array_length(gc);

		for (size_t k = 0; k < len && k < 120; k++)
			json_object_array_add(
				chunk, json_object_get(json_object_array_get_idx(gc, 0 + k)));
		json_object_array_del_idx(gc, 0, len < 120 ? len : 120);
		pthread_mutex_unlock(&r->mu);
		orchd_etcd_txn(r->v.c, NULL, chunk, NULL, err, sizeof(err));
		pthread_mutex_lock(&r->mu);
	}
	json_object_put(gc);
	free(looks);
	json_object_put(resp);
}

/* Withdraw or stop the jobs asked to cancel (mu held). */
static void cancels(struct orchd_remote *r)
{
	for (size_t i = 0; i < r->njobs; i++) {
		struct rjob *j = r->jobs[i];
		char err[512], *k;
		json_object *ops;
		int ret;

		if (!j->cancel || j->st == RJ_ENDED || j->st == RJ_NEW)
			continue;
		if (j->st == RJ_QUEUED) {
			json_object *cmps = json_object_new_array();

			k = key_of(r->v.prefix, "queue", j->id);
			json_object_array_add(cmps, orchd_etcd_cmp_mod(k, j->queued_rev));
			ops = json_object_new_array();
			json_object_array_add(ops, orchd_etcd_op_del(k, NULL));
			pthread_mutex_unlock(&r->mu);
			ret = orchd_etcd_txn(r->v.c, cmps, ops, NULL, err, sizeof(err));
			pthread_mutex_lock(&r->mu);
			free(k);
			if (!ret && j->st == RJ_QUEUED)
				end_job(r, j, ORCHD_STEP_CANCELLED, 0, "cancelled (%s)",
					r->cancel_reason);
			continue; /* claimed meanwhile: the next turn asks its worker */
		}
		if (!j->cancel_sent) {
			k = key_of(r->v.prefix, "cancel", j->id);
			ops = json_object_new_array();
			json_object_array_add(ops, orchd_etcd_op_put(k, r->cancel_reason,
								     strlen(r->cancel_reason), 0));
			pthread_mutex_unlock(&r->mu);
			ret = orchd_etcd_txn(r->v.c, NULL, ops, NULL, err, sizeof(err));
			pthread_mutex_lock(&r->mu);
			free(k);
			j->cancel_sent = !ret;
			j->cancel_at = now_ms();
		} else if (now_ms() - j->cancel_at > CANCEL_WAIT_MS && j->st != RJ_ENDED) {
			end_job(r, j, ORCHD_STEP_CANCELLED, 0,
				"cancelled (%s); worker %s did not confirm it", r->cancel_reason,
				j->worker);
		}
	}
}

static void *remote_thread(void *arg)
{
	struct orchd_remote *r = arg;

	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		struct timespec ts;

		publish(r);
		cancels(r);
		poll_once(r);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += r->o.poll_ms * 1000000L;
		while (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

struct orchd_remote *orchd_remote_new(const struct orchd_remote_opts *o, char *err, size_t errlen)
{
	struct orchd_remote *r = xcalloc(1, sizeof(*r));

	r->o = *o;
	if (!r->o.poll_ms)
		r->o.poll_ms = 20;
	if (orchd_etcd_engine_view(o->eng, &r->v) || !r->v.fence) {
		free(r);
		orchd_set_err(err, errlen,
			      "orchd run --workers needs core.engine.type etcd (and its lock)");
		return NULL;
	}
	r->run_id = xstrdup(o->run_id ? o->run_id : "");
	r->p_queue = xasprintf("%swork/queue/", r->v.prefix);
	r->p_claims = xasprintf("%swork/claims/", r->v.prefix);
	r->p_results = xasprintf("%swork/results/", r->v.prefix);
	r->p_logs = xasprintf("%swork/logs/", r->v.prefix);
	r->p_workers = xasprintf("%swork/workers/", r->v.prefix);
	r->evtail = &r->evq;
	r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (r->efd < 0 || orchd_thread_start(&r->thread, remote_thread, r)) {
		orchd_set_err(err, errlen, "cannot start the work queue's thread");
		orchd_remote_free(r);
		return NULL;
	}
	r->thread_started = 1;
	return r;
}

int orchd_remote_fd(const struct orchd_remote *r)
{
	return r->efd;
}

size_t orchd_remote_running(const struct orchd_remote *r)
{
	return r->outstanding;
}

static json_object *sandbox_json(const struct orchd_sandbox_spec *sp)
{
	json_object *o = json_object_new_object(), *a, *l;
	const char *const *lists[3] = {sp ? sp->read : NULL, sp ? sp->write : NULL,
				       sp ? sp->hide : NULL};
	static const char *const names[3] = {"read", "write", "hide"};

	json_object_object_add(o, "basic", json_object_new_boolean(!sp || sp->basic));
	json_object_object_add(o, "network_none", json_object_new_boolean(sp && sp->network_none));
	for (int k = 0; k < 3; k++) {
		a = json_object_new_array();
		for (const char *const *p = lists[k]; p && *p; p++)
			json_object_array_add(a, json_object_new_string(*p));
		json_object_object_add(o, names[k], a);
	}
	l = json_object_new_object();
	if (sp && sp->limits) {
		json_object_object_add(l, "memory", json_object_new_int64(sp->limits->memory));
		json_object_object_add(l, "pids", json_object_new_int64(sp->limits->pids));
		json_object_object_add(l, "cpu_time_ms",
				       json_object_new_int64(sp->limits->cpu_time_ms));
		json_object_object_add(l, "open_files",
				       json_object_new_int64(sp->limits->open_files));
		json_object_object_add(l, "output_bytes",
				       json_object_new_int64(sp->limits->output_bytes));
	}
	json_object_object_add(o, "limits", l);
	return o;
}

static json_object *copy_or_null(const json_object *v)
{
	json_object *c = NULL;

	if (v && json_object_deep_copy((json_object *)(uintptr_t)v, &c, NULL))
		return NULL;
	return c;
}

int orchd_remote_start(struct orchd_remote *r, const struct orchd_step_spec *spec,
		       const struct orchd_remote_job *job)
{
	json_object *doc = json_object_new_object(), *body = json_object_new_object(), *env;
	struct rjob *j;
	char err[512];

	json_object_object_add(doc, "v", json_object_new_int(ORCHD_WORK_VERSION));
	orchd_json_add_str(doc, "run", r->run_id);
	orchd_json_add_str(doc, "id", spec->id);
	orchd_json_add_str(doc, "type", job->type);
	orchd_json_add_str(doc, "instance", spec->instance);
	orchd_json_add_str(doc, "stack", spec->stack);
	orchd_json_add_str(doc, "action", op_action_name(spec->action));
	json_object_object_add(doc, "attempt", json_object_new_int(spec->attempt));
	orchd_json_add_str(doc, "runs_on", job->runs_on ? job->runs_on : "");
	orchd_json_add_str(doc, "config_hash", job->config_hash);
	orchd_json_add_str(doc, "inputs_hash", job->inputs_hash);
	json_object_object_add(doc, "secret_input", json_object_new_boolean(job->secret_input));
	json_object_object_add(doc, "timeout_ms", json_object_new_int64(spec->timeout_ms));
	json_object_object_add(doc, "grace_ms", json_object_new_int64(spec->grace_ms));
	json_object_object_add(doc, "hello_ms", json_object_new_int64(spec->hello_timeout_ms));
	json_object_object_add(doc, "sandbox", sandbox_json(spec->sandbox));
	json_object_object_add(body, "config", copy_or_null(spec->config));
	json_object_object_add(body, "state", copy_or_null(spec->state));
	json_object_object_add(body, "outputs", copy_or_null(spec->outputs));
	json_object_object_add(body, "sources", copy_or_null(spec->sources));
	env = json_object_new_array();
	for (const char *const *e = spec->env; e && *e; e++)
		json_object_array_add(env, json_object_new_string(*e));
	json_object_object_add(body, "env", env);
	body = seal_body(r->o.eng, r->v.has_pass, spec->id, "job", body, err, sizeof(err));
	if (!body) {
		json_object_put(doc);
		return error("%s: cannot seal its job: %s", spec->id, err);
	}
	json_object_object_add(doc, "body", body);
	j = xcalloc(1, sizeof(*j));
	j->id = xstrdup(spec->id);
	j->stack = xstrdup(spec->stack);
	j->ctx = spec->ctx;
	j->body_json = xstrdup(json_object_to_json_string_ext(
		doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(doc);
	pthread_mutex_lock(&r->mu);
	ALLOC_GROW(r->jobs, r->njobs + 1, r->ajobs);
	r->jobs[r->njobs++] = j;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	r->outstanding++;
	return 0;
}

static enum orchd_step_status status_of(const char *s)
{
	for (int k = ORCHD_STEP_SUCCESS; k <= ORCHD_STEP_UNSUPPORTED; k++)
		if (s && !strcmp(s, orchd_step_status_name((enum orchd_step_status)k)))
			return (enum orchd_step_status)k;
	return ORCHD_STEP_FAILED;
}

/* Call done for e (loop thread). */
static void deliver_done(struct orchd_remote *r, struct rev *e)
{
	struct orchd_step_result res;
	json_object *d = e->result, *body = NULL, *outs = NULL, *secs = NULL, *masks, *v;
	const char *id = e->j->id;

	memset(&res, 0, sizeof(res));
	res.exit_status = -1;
	res.changed = -1;
	res.setup_ms = -1;
	res.worker = e->j->worker[0] ? e->j->worker : NULL;
	if (!d) {
		res.status = e->status;
		res.worker_lost = e->lost;
		snprintf(res.reason, sizeof(res.reason), "%s", e->reason);
	} else {
		json_object_object_get_ex(d, "body", &body);
		res.status = status_of(op_get_str(d, "status"));
		snprintf(res.reason, sizeof(res.reason), "%s",
			 op_get_str(d, "reason") ? op_get_str(d, "reason") : "");
		res.exit_status = (int)op_get_int(d, "exit_status", -1);
		res.retryable = op_get_bool(d, "retryable", false);
		res.has_result = op_get_bool(d, "has_result", false);
		res.changed = (int)op_get_int(d, "changed", -1);
		res.summary = op_get_str(d, "summary");
		res.has_state = op_get_bool(d, "has_state", false);
		res.state_secret = op_get_bool(d, "state_secret", false);
		res.error_message = op_get_str(d, "error_message");
		res.cpu_user_ms = op_get_int(d, "cpu_user_ms", 0);
		res.cpu_sys_ms = op_get_int(d, "cpu_sys_ms", 0);
		res.max_rss_kb = (long)op_get_int(d, "max_rss_kb", 0);
		res.wall_ms = op_get_int(d, "wall_ms", 0);
		res.setup_ms = op_get_int(d, "setup_ms", -1);
		if (op_get_bool(d, "worker_stopped", false)) {
			res.worker_lost = 1;
			snprintf(res.reason, sizeof(res.reason),
				 "worker %s stopped (SIGTERM) while running it", e->j->worker);
		}
		if (body) {
			json_object_object_get_ex(body, "outputs", &outs);
			json_object_object_get_ex(body, "secrets", &secs);
			if (json_object_object_get_ex(body, "state", &v))
				res.state = v;
			if (json_object_object_get_ex(body, "errors", &v))
				res.errors = v;
			/* a mask sent before the end: never printed from now on */
			if (json_object_object_get_ex(body, "masks", &masks) &&
			    json_object_is_type(masks, json_type_array) && r->o.hooks.mask)
				for (size_t k = 0; k < json_object_array_length(masks); k++)
					r->o.hooks.mask(
						r->o.hooks.cb_data, e->j->ctx,
						json_object_get_string(
							json_object_array_get_idx(masks, k)));
		}
	}
	res.outputs = json_object_is_type(outs, json_type_object) ? json_object_get(outs)
								  : json_object_new_object();
	res.secrets = json_object_is_type(secs, json_type_object) ? json_object_get(secs)
								  : json_object_new_object();
	if (r->o.hooks.output) {
		json_object_object_foreach(res.outputs, k, val)
		{
			json_object *s;

			r->o.hooks.output(r->o.hooks.cb_data, e->j->ctx, id, k, val,
					  json_object_object_get_ex(res.secrets, k, &s) &&
						  json_object_get_boolean(s));
		}
	}
	res.workdir = "";
	r->outstanding--;
	r->o.hooks.done(r->o.hooks.cb_data, e->j->ctx, id, &res);
	json_object_put(res.outputs);
	json_object_put(res.secrets);
}

void orchd_remote_collect(void *arg)
{
	struct orchd_remote *r = arg;
	struct rev *list;
	uint64_t n;

	if (read(r->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&r->mu);
	list = r->evq;
	r->evq = NULL;
	r->evtail = &r->evq;
	pthread_mutex_unlock(&r->mu);
	while (list) {
		struct rev *e = list;

		list = e->next;
		if (e->kind == EV_LOG && r->o.hooks.log)
			r->o.hooks.log(r->o.hooks.cb_data, e->j->ctx, e->j->id,
				       (enum orchd_log_level)e->level,
				       (enum orchd_log_source)e->src, e->text);
		else if (e->kind == EV_DONE)
			deliver_done(r, e);
		free(e->text);
		json_object_put(e->result);
		free(e);
	}
}

void orchd_remote_cancel_all(struct orchd_remote *r, const char *reason)
{
	pthread_mutex_lock(&r->mu);
	snprintf(r->cancel_reason, sizeof(r->cancel_reason), "%s", reason);
	for (size_t i = 0; i < r->njobs; i++)
		r->jobs[i]->cancel = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void orchd_remote_free(struct orchd_remote *r)
{
	if (!r)
		return;
	if (r->thread_started) {
		pthread_mutex_lock(&r->mu);
		r->stop = 1;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->thread, NULL);
	}
	while (r->evq) {
		struct rev *e = r->evq;

		r->evq = e->next;
		free(e->text);
		json_object_put(e->result);
		free(e);
	}
	for (size_t i = 0; i < r->njobs; i++) {
		free(r->jobs[i]->id);
		free(r->jobs[i]->stack);
		free(r->jobs[i]->body_json);
		free(r->jobs[i]);
	}
	free(r->jobs);
	if (r->efd >= 0)
		close(r->efd);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r->run_id);
	free(r->p_queue);
	free(r->p_claims);
	free(r->p_results);
	free(r->p_logs);
	free(r->p_workers);
	free(r);
}

/* ---------------------------------------------------------------------------
 * What a dead coordinator left.
 * ------------------------------------------------------------------------- */

/* Record one orphaned result doc (body opened): 0, or -1. */
static int adopt_one(struct orchd_engine *eng, json_object *doc, json_object *body, int has_pass,
		     char *err, size_t errlen)
{
	const char *stack = op_get_str(doc, "stack"), *action = op_get_str(doc, "action");
	int ok = !strcmp(op_get_str(doc, "status") ? op_get_str(doc, "status") : "", "success");
	struct orchd_stack_record rec;
	struct orchd_history_entry h;
	json_object *outs, *secs, *v;
	int r;

	memset(&h, 0, sizeof(h));
	h.run_id = xstrdup(op_get_str(doc, "run") ? op_get_str(doc, "run") : "");
	h.action = xstrdup(action);
	h.status = xstrdup(ok ? "success" : "failed");
	h.ended_at = h.started_at = 0;
	h.attempts = (int)op_get_int(doc, "attempt", 1);
	orchd_stack_record_init(&rec);
	if (!strcmp(action, "destroy") && ok) {
		r = orchd_engine_remove(eng, stack, &h, err, errlen);
		orchd_history_entry_release(&h);
		orchd_stack_record_release(&rec);
		return r;
	}
	r = orchd_engine_read(eng, stack, &rec, err, errlen);
	if (r < 0)
		goto out;
	if (op_get_bool(doc, "has_state", false) && json_object_object_get_ex(body, "state", &v)) {
		json_object_put(rec.state);
		rec.state = json_object_get(v);
		rec.state_secret = op_get_bool(doc, "state_secret", false) ||
				   op_get_bool(doc, "secret_input", false) || rec.state_secret ||
				   has_pass;
		rec.state_masked = 0;
	}
	if (ok && json_object_object_get_ex(body, "outputs", &outs) &&
	    json_object_is_type(outs, json_type_object)) {
		json_object_object_get_ex(body, "secrets", &secs);
		json_object_put(rec.outputs);
		rec.outputs = json_object_new_object();
		json_object_object_foreach(outs, k, val)
		{
			orchd_stack_record_set_output(
				&rec, k, json_object_get(val),
				secs && json_object_object_get_ex(secs, k, NULL));
		}
		free(rec.config_hash);
		rec.config_hash = xstrdup_or_null(op_get_str(doc, "config_hash"));
		free(rec.inputs_hash);
		rec.inputs_hash = xstrdup_or_null(op_get_str(doc, "inputs_hash"));
	}
	orchd_last_result_release(&rec.last);
	memset(&rec.last, 0, sizeof(rec.last));
	rec.last.run_id = xstrdup(h.run_id);
	rec.last.action = xstrdup(h.action);
	rec.last.status = xstrdup(h.status);
	rec.last.attempts = h.attempts;
	r = orchd_engine_write(eng, stack, &rec, err, errlen);
	if (!r)
		r = orchd_engine_history_append(eng, stack, &h, err, errlen);
out:
	orchd_history_entry_release(&h);
	orchd_stack_record_release(&rec);
	return r;
}

int orchd_remote_adopt(struct orchd_engine *eng, const char *run_id,
		       void (*say)(void *arg, const char *stack, const char *text), void *arg,
		       char *err, size_t errlen)
{
	struct orchd_etcd_view v;
	json_object *ops, *resp = NULL, *res;
	char *pr, *pq, *pc;
	int ret = 0;

	if (orchd_etcd_engine_view(eng, &v) || !v.fence)
		return 0;
	pr = xasprintf("%swork/results/", v.prefix);
	pq = xasprintf("%swork/queue/", v.prefix);
	pc = xasprintf("%swork/claims/", v.prefix);
	/* a job no worker took: its coordinator is gone, nobody waits for it;
	 * then the jobs workers still run for it end (or their workers die):
	 * their results are recorded before this run reads any state */
	for (int told = 0;; told = 1) {
		json_object *claims;

		ops = json_object_new_array();
		json_object_array_add(ops, orchd_etcd_op_del_prefix(pq));
		json_object_array_add(ops, orchd_etcd_op_range_prefix(pc, 0));
		json_object_array_add(ops, orchd_etcd_op_range_prefix(pr, 0));
		if (orchd_etcd_txn(v.c, NULL, ops, &resp, err, errlen)) {
			ret = -1;
			goto out;
		}
		claims = orchd_etcd_txn_kvs(resp, 1);
		if (!claims || !json_object_array_length(claims))
			break;
		if (!told && say) {
			json_object *c = kv_json(json_object_array_get_idx(claims, 0));
			char msg[512];

			snprintf(msg, sizeof(msg),
				 "%zu step(s) of run %s still run on workers (worker %s, ...), "
				 "their coordinator gone: waiting for them to end",
				 json_object_array_length(claims), c ? op_get_str(c, "run") : "?",
				 c ? op_get_str(c, "worker") : "?");
			say(arg, NULL, msg);
			json_object_put(c);
		}
		json_object_put(resp);
		resp = NULL;
		usleep(500 * 1000);
		if (orchd_engine_lock_check(eng, err, errlen) < 0) {
			ret = -1;
			goto out;
		}
	}
	res = orchd_etcd_txn_kvs(resp, 2);
	for (size_t i = 0; res && i < json_object_array_length(res); i++) {
		json_object *kv = json_object_array_get_idx(res, i), *doc = kv_json(kv), *body;
		size_t klen;
		char *key = orchd_etcd_get_bytes(kv, "key", 0, &klen), msg[1024], e2[512];
		const char *stack = op_get_str(doc, "stack"), *action = op_get_str(doc, "action");

		if (!doc || !stack || !action || !strcmp(op_get_str(doc, "run") ?: "", run_id) ||
		    (strcmp(action, "apply") && strcmp(action, "destroy"))) {
			json_object_put(doc);
			free(key);
			continue;
		}
		body = open_body(eng, op_get_str(doc, "id") ?: stack, "result", doc, key, e2,
				 sizeof(e2));
		if (!body) {
			snprintf(msg, sizeof(msg),
				 "the result of run %s left in %s cannot be read "
				 "(%s): left there",
				 op_get_str(doc, "run"), key, e2);
		} else if (adopt_one(eng, doc, body, v.has_pass, e2, sizeof(e2)) < 0) {
			ret = orchd_set_err(err, errlen, "%s: %s", stack, e2);
			json_object_put(body);
			json_object_put(doc);
			free(key);
			break;
		} else {
			json_object *dops = json_object_new_array();
			char *kl =
				xasprintf("%swork/logs/%s/", v.prefix, op_get_str(doc, "id") ?: "");

			json_object_array_add(dops, orchd_etcd_op_del(key, NULL));
			if (op_get_str(doc, "id"))
				json_object_array_add(dops, orchd_etcd_op_del_prefix(kl));
			orchd_etcd_txn(v.c, NULL, dops, NULL, e2, sizeof(e2));
			free(kl);
			snprintf(
				msg, sizeof(msg),
				"recorded the %s %s of run %s on worker %s, which ended after that "
				"run's coordinator was gone",
				action, op_get_str(doc, "status"), op_get_str(doc, "run"),
				op_get_str(doc, "worker") ?: "?");
		}
		if (say)
			say(arg, stack, msg);
		json_object_put(body);
		json_object_put(doc);
		free(key);
	}
out:
	json_object_put(resp);
	free(pr);
	free(pq);
	free(pc);
	return ret;
}

/* ---------------------------------------------------------------------------
 * The worker's primitives.
 * ------------------------------------------------------------------------- */

void orchd_work_job_free(struct orchd_work_job *j)
{
	if (!j)
		return;
	free(j->id);
	free(j->type);
	free(j->run);
	json_object_put(j->doc);
	free(j);
}

int orchd_work_labels_match(json_object *labels, const char *runs_on)
{
	char *copy, *save = NULL;
	int ok = 1;

	if (!runs_on || !*runs_on)
		return 1;
	copy = xstrdup(runs_on);
	for (char *t = strtok_r(copy, ",", &save); t && ok; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		json_object *v;

		if (!eq) {
			ok = 0;
			break;
		}
		*eq = '\0';
		ok = json_object_object_get_ex(labels, t, &v) &&
		     !strcmp(json_object_get_string(v), eq + 1);
	}
	free(copy);
	return ok;
}

int orchd_work_claim(struct orchd_engine *eng, int64_t lease, const char *worker,
		     json_object *labels, size_t max, struct orchd_work_job ***jobs, size_t *n,
		     char *err, size_t errlen)
{
	struct orchd_etcd_view v;
	json_object *req = json_object_new_object(), *resp = NULL, *kvs;
	char *pq, *end;
	size_t skip;
	int r;

	*jobs = NULL;
	*n = 0;
	if (orchd_etcd_engine_view(eng, &v))
		return orchd_set_err(err, errlen, "not an etcd engine");
	pq = xasprintf("%swork/queue/", v.prefix);
	skip = strlen(pq);
	end = orchd_etcd_prefix_end(pq);
	orchd_etcd_add_bytes(req, "key", pq, strlen(pq));
	orchd_etcd_add_bytes(req, "range_end", end, strlen(end));
	orchd_json_add_str(req, "sort_order", "ASCEND");
	orchd_json_add_str(req, "sort_target", "CREATE");
	orchd_etcd_add_int(req, "limit", 256);
	free(end);
	r = orchd_etcd_call(v.c, "kv/range", req, &resp, err, errlen);
	json_object_put(req);
	if (r) {
		free(pq);
		return -1;
	}
	kvs = kvs_of(resp);
	for (size_t i = 0; kvs && i < json_object_array_length(kvs) && *n < max; i++) {
		json_object *kv = json_object_array_get_idx(kvs, i), *doc, *cmps, *ops, *claim,
			    *body;
		char *id = kv_id(kv, skip), *kq, *kc, *kcancel, where[300];
		struct orchd_work_job *j;
		int64_t mod = orchd_etcd_get_int(kv, "mod_revision"), rev;
		json_object *tr = NULL, *h;

		doc = id ? kv_json(kv) : NULL;
		if (!doc || op_get_int(doc, "v", 0) != ORCHD_WORK_VERSION ||
		    !orchd_work_labels_match(labels, op_get_str(doc, "runs_on"))) {
			json_object_put(doc);
			free(id);
			continue;
		}
		kq = key_of(v.prefix, "queue", id);
		kc = key_of(v.prefix, "claims", id);
		kcancel = key_of(v.prefix, "cancel", id);
		cmps = json_object_new_array();
		json_object_array_add(cmps, orchd_etcd_cmp_mod(kq, mod));
		json_object_array_add(cmps, orchd_etcd_cmp_create(kc, 0));
		claim = json_object_new_object();
		orchd_json_add_str(claim, "worker", worker);
		orchd_json_add_str(claim, "run", op_get_str(doc, "run"));
		json_object_object_add(claim, "attempt",
				       json_object_new_int((int)op_get_int(doc, "attempt", 1)));
		ops = json_object_new_array();
		put_json(ops, kc, claim, lease);
		json_object_array_add(ops, orchd_etcd_op_del(kq, NULL));
		json_object_array_add(ops, orchd_etcd_op_del(kcancel, NULL));
		json_object_put(claim);
		r = orchd_etcd_txn(v.c, cmps, ops, &tr, err, errlen);
		free(kq);
		free(kc);
		free(kcancel);
		if (r) {
			json_object_put(doc);
			free(id);
			if (r < 0) {
				json_object_put(resp);
				free(pq);
				return *n ? 0 : -1;
			}
			continue; /* another worker was faster */
		}
		rev = json_object_object_get_ex(tr, "header", &h)
			      ? orchd_etcd_get_int(h, "revision")
			      : 0;
		json_object_put(tr);
		snprintf(where, sizeof(where), "the job of %s", id);
		body = open_body(eng, id, "job", doc, where, err, errlen);
		j = xcalloc(1, sizeof(*j));
		j->id = id;
		j->type = xstrdup(op_get_str(doc, "type") ? op_get_str(doc, "type") : "");
		j->run = xstrdup(op_get_str(doc, "run") ? op_get_str(doc, "run") : "");
		j->claim = rev;
		j->doc = doc;
		if (body) {
			json_object_object_add(doc, "body", body);
			j->body = body;
		}
		*jobs = xrealloc(*jobs, (*n + 1) * sizeof(**jobs));
		(*jobs)[(*n)++] = j;
	}
	json_object_put(resp);
	free(pq);
	return 0;
}

json_object *orchd_work_log_op(struct orchd_engine *eng, int64_t lease,
			       const struct orchd_work_job *j, unsigned seq, json_object *lines,
			       char *err, size_t errlen)
{
	struct orchd_etcd_view v;
	json_object *doc = json_object_new_object(), *body = json_object_new_object(), *ops, *op;
	char *k;

	orchd_etcd_engine_view(eng, &v);
	json_object_object_add(body, "lines", lines);
	body = seal_body(eng, v.has_pass, j->id, "log", body, err, errlen);
	if (!body) {
		json_object_put(doc);
		return NULL;
	}
	json_object_object_add(doc, "body", body);
	k = xasprintf("%swork/logs/%s/%020" PRId64 "/%08u", v.prefix, j->id, j->claim, seq);
	ops = json_object_new_array();
	put_json(ops, k, doc, lease);
	op = json_object_get(json_object_array_get_idx(ops, 0));
	json_object_put(ops);
	json_object_put(doc);
	free(k);
	return op;
}

int orchd_work_send(struct orchd_engine *eng, json_object *ops, char *err, size_t errlen)
{
	struct orchd_etcd_view v;

	orchd_etcd_engine_view(eng, &v);
	return orchd_etcd_txn(v.c, NULL, ops, NULL, err, errlen) < 0 ? -1 : 0;
}

json_object *orchd_work_result_doc(const struct orchd_work_job *j, const char *worker,
				   const struct orchd_step_result *res, json_object *masks)
{
	json_object *doc = json_object_new_object(), *body = json_object_new_object();

	json_object_object_add(doc, "v", json_object_new_int(ORCHD_WORK_VERSION));
	orchd_json_add_str(doc, "run", j->run);
	json_object_object_add(doc, "claim", json_object_new_int64(j->claim));
	orchd_json_add_str(doc, "worker", worker);
	/* what recording it needs, should its coordinator be gone */
	{
		static const char *const echo[] = {"id",	  "stack",	 "action",
						   "attempt",	  "config_hash", "inputs_hash",
						   "secret_input"};
		json_object *v;

		for (size_t k = 0; k < ARRAY_SIZE(echo); k++)
			if (json_object_object_get_ex(j->doc, echo[k], &v))
				json_object_object_add(doc, echo[k], json_object_get(v));
	}
	orchd_json_add_str(doc, "status", orchd_step_status_name(res->status));
	orchd_json_add_str(doc, "reason", res->reason);
	json_object_object_add(doc, "exit_status", json_object_new_int(res->exit_status));
	json_object_object_add(doc, "retryable", json_object_new_boolean(res->retryable));
	json_object_object_add(doc, "has_result", json_object_new_boolean(res->has_result));
	json_object_object_add(doc, "changed", json_object_new_int(res->changed));
	if (res->summary)
		orchd_json_add_str(doc, "summary", res->summary);
	json_object_object_add(doc, "has_state", json_object_new_boolean(res->has_state));
	json_object_object_add(doc, "state_secret", json_object_new_boolean(res->state_secret));
	if (res->error_message)
		orchd_json_add_str(doc, "error_message", res->error_message);
	json_object_object_add(doc, "cpu_user_ms", json_object_new_int64(res->cpu_user_ms));
	json_object_object_add(doc, "cpu_sys_ms", json_object_new_int64(res->cpu_sys_ms));
	json_object_object_add(doc, "max_rss_kb", json_object_new_int64(res->max_rss_kb));
	json_object_object_add(doc, "wall_ms", json_object_new_int64(res->wall_ms));
	json_object_object_add(doc, "setup_ms", json_object_new_int64(res->setup_ms));
	json_object_object_add(body, "outputs", copy_or_null(res->outputs));
	json_object_object_add(body, "secrets", copy_or_null(res->secrets));
	if (res->has_state)
		json_object_object_add(body, "state", copy_or_null(res->state));
	if (res->errors)
		json_object_object_add(body, "errors", copy_or_null(res->errors));
	if (masks)
		json_object_object_add(body, "masks", json_object_get(masks));
	json_object_object_add(doc, "body", body);
	return doc;
}

int orchd_work_results(struct orchd_engine *eng, struct orchd_work_job *const *jobs,
		       json_object *const *docs, size_t n, char *err, size_t errlen)
{
	struct orchd_etcd_view v;
	json_object *cmps = json_object_new_array(), *ops = json_object_new_array();

	orchd_etcd_engine_view(eng, &v);
	for (size_t i = 0; i < n; i++) {
		const struct orchd_work_job *j = jobs[i];
		json_object *out = NULL, *body;
		char *kc, *kr, *kcancel;

		if (json_object_deep_copy(docs[i], &out, NULL))
			goto fail;
		json_object_object_get_ex(out, "body", &body);
		body = seal_body(eng, v.has_pass, j->id, "result", json_object_get(body), err,
				 errlen);
		if (!body) {
			json_object_put(out);
			goto fail;
		}
		json_object_object_add(out, "body", body);
		kc = key_of(v.prefix, "claims", j->id);
		kr = key_of(v.prefix, "results", j->id);
		kcancel = key_of(v.prefix, "cancel", j->id);
		json_object_array_add(cmps, orchd_etcd_cmp_create(kc, j->claim));
		put_json(ops, kr, out, 0);
		json_object_array_add(ops, orchd_etcd_op_del(kc, NULL));
		json_object_array_add(ops, orchd_etcd_op_del(kcancel, NULL));
		json_object_put(out);
		free(kc);
		free(kr);
		free(kcancel);
	}
	return orchd_etcd_txn(v.c, cmps, ops, NULL, err, errlen);
fail:
	json_object_put(cmps);
	json_object_put(ops);
	return -1;
}

int orchd_work_result(struct orchd_engine *eng, const struct orchd_work_job *j, json_object *doc,
		      char *err, size_t errlen)
{
	struct orchd_work_job *one = (struct orchd_work_job *)(uintptr_t)j;

	return orchd_work_results(eng, &one, &doc, 1, err, errlen);
}

int orchd_work_cancelled(struct orchd_engine *eng, struct orchd_work_job *const *jobs, size_t n,
			 int *cancelled, char *err, size_t errlen)
{
	struct orchd_etcd_view v;
	json_object *ops = json_object_new_array(), *resp = NULL;
	int r;

	orchd_etcd_engine_view(eng, &v);
	if (!n) {
		json_object_put(ops);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		char *k = key_of(v.prefix, "cancel", jobs[i]->id);

		json_object_array_add(ops, orchd_etcd_op_range(k));
		free(k);
	}
	r = orchd_etcd_txn(v.c, NULL, ops, &resp, err, errlen);
	if (r)
		return -1;
	for (size_t i = 0; i < n; i++) {
		json_object *kvs = orchd_etcd_txn_kvs(resp, i);

		cancelled[i] = kvs && json_object_array_length(kvs) > 0;
	}
	json_object_put(resp);
	return 0;
}

static const char **str_list(json_object *a)
{
	size_t n = json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
	const char **v = xcalloc(n + 1, sizeof(*v));
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (json_object_is_type(json_object_array_get_idx(a, i), json_type_string))
			v[k++] = json_object_get_string(json_object_array_get_idx(a, i));
	return v;
}

int orchd_work_spec(const struct orchd_work_job *j, struct orchd_step_spec *spec, char *err,
		    size_t errlen)
{
	json_object *d = j->doc, *sb, *lim, *v;
	struct orchd_sandbox_spec *sp;
	struct orchd_limits *l;
	enum op_action a = OP_ACTION_NONE;
	const char *an = op_get_str(d, "action");

	if (!j->body)
		return orchd_set_err(err, errlen, "%s: the job has no readable body", j->id);
	for (int k = OP_ACTION_VALIDATE; k <= OP_ACTION_DESTROY; k++)
		if (an && !strcmp(an, op_action_name((enum op_action)k)))
			a = (enum op_action)k;
	if (a == OP_ACTION_NONE || !op_get_str(d, "instance") || !op_get_str(d, "stack"))
		return orchd_set_err(err, errlen, "%s: a malformed job", j->id);
	spec->id = j->id;
	spec->action = a;
	spec->instance = op_get_str(d, "instance");
	spec->stack = op_get_str(d, "stack");
	spec->config = json_object_object_get_ex(j->body, "config", &v) ? v : NULL;
	spec->state = json_object_object_get_ex(j->body, "state", &v) ? v : NULL;
	spec->outputs = json_object_object_get_ex(j->body, "outputs", &v) ? v : NULL;
	spec->sources = json_object_object_get_ex(j->body, "sources", &v) ? v : NULL;
	spec->env = json_object_object_get_ex(j->body, "env", &v) ? str_list(v) : str_list(NULL);
	spec->attempt = (int)op_get_int(d, "attempt", 1);
	spec->timeout_ms = op_get_int(d, "timeout_ms", 0);
	spec->grace_ms = op_get_int(d, "grace_ms", -1);
	spec->hello_timeout_ms = op_get_int(d, "hello_ms", 0);
	sp = xcalloc(1, sizeof(*sp));
	l = xcalloc(1, sizeof(*l));
	if (json_object_object_get_ex(d, "sandbox", &sb)) {
		sp->basic = op_get_bool(sb, "basic", true);
		sp->network_none = op_get_bool(sb, "network_none", false);
		sp->read = str_list(json_object_object_get_ex(sb, "read", &v) ? v : NULL);
		sp->write = str_list(json_object_object_get_ex(sb, "write", &v) ? v : NULL);
		sp->hide = str_list(json_object_object_get_ex(sb, "hide", &v) ? v : NULL);
		if (json_object_object_get_ex(sb, "limits", &lim)) {
			l->memory = op_get_int(lim, "memory", 0);
			l->pids = op_get_int(lim, "pids", 0);
			l->cpu_time_ms = op_get_int(lim, "cpu_time_ms", 0);
			l->open_files = op_get_int(lim, "open_files", 0);
			l->output_bytes = op_get_int(lim, "output_bytes", 0);
		}
	} else {
		sp->basic = 1;
		sp->read = str_list(NULL);
		sp->write = str_list(NULL);
		sp->hide = str_list(NULL);
	}
	sp->limits = l;
	spec->sandbox = sp;
	return 0;
}

void orchd_work_spec_release(struct orchd_step_spec *spec)
{
	struct orchd_sandbox_spec *sp = (struct orchd_sandbox_spec *)(uintptr_t)spec->sandbox;

	free((void *)(uintptr_t)spec->env);
	spec->env = NULL;
	if (!sp)
		return;
	free((void *)(uintptr_t)sp->read);
	free((void *)(uintptr_t)sp->write);
	free((void *)(uintptr_t)sp->hide);
	free((void *)(uintptr_t)sp->limits);
	free(sp);
	spec->sandbox = NULL;
}
