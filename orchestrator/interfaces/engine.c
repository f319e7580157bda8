/*
 * engine: dispatch to an implementation, and the helpers of the record
 * types every implementation shares.  See engine.h.
 */
#include "interfaces/engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interfaces/etcd.h"
#include "interfaces/local.h"
#include "interfaces/pulumi.h"
#include "orchd_protocol.h"
#include "util.h"

int orchd_engine_open(const struct orchd_engine_config *cfg, const char *state_dir,
		      const char *pipeline_name, struct orchd_engine **out, char *err,
		      size_t errlen)
{
	*out = NULL;
	switch (cfg ? cfg->type : ORCHD_ENGINE_LOCAL) {
	case ORCHD_ENGINE_LOCAL:
		if (orchd_local_engine_open(state_dir, out, err, errlen))
			return -1;
		(*out)->pipeline_name = xstrdup(pipeline_name ? pipeline_name : "");
		return 0;
	case ORCHD_ENGINE_PULUMI:
		return orchd_pulumi_engine_open(cfg, state_dir, pipeline_name, out, err, errlen);
	case ORCHD_ENGINE_ETCD:
		return orchd_etcd_engine_open(cfg, state_dir, pipeline_name, out, err, errlen);
	}
	snprintf(err, errlen, "unknown engine type %d", (int)cfg->type);
	return -1;
}

void orchd_engine_close(struct orchd_engine *e)
{
	if (e)
		e->ops->close(e);
}

int orchd_engine_select(struct orchd_engine *e, const char *stack, int create, char *err,
			size_t errlen)
{
	return e->ops->select(e, stack, create, err, errlen);
}

int orchd_engine_lock(struct orchd_engine *e, const struct orchd_lock_request *req, char *err,
		      size_t errlen)
{
	return e->ops->lock(e, req, err, errlen);
}

int orchd_engine_unlock(struct orchd_engine *e, char *err, size_t errlen)
{
	return e->ops->unlock(e, err, errlen);
}

int orchd_engine_lock_check(struct orchd_engine *e, char *err, size_t errlen)
{
	return e->ops->lock_check ? e->ops->lock_check(e, err, errlen) : 0;
}

int orchd_engine_read(struct orchd_engine *e, const char *stack, struct orchd_stack_record *rec,
		      char *err, size_t errlen)
{
	return e->ops->read(e, stack, rec, err, errlen);
}

int orchd_engine_write(struct orchd_engine *e, const char *stack,
		       const struct orchd_stack_record *rec, char *err, size_t errlen)
{
	return e->ops->write(e, stack, rec, err, errlen);
}

int orchd_engine_write_deferred(struct orchd_engine *e, const char *stack,
				const struct orchd_stack_record *rec, char *err, size_t errlen)
{
	if (e->ops->write_deferred)
		return e->ops->write_deferred(e, stack, rec, err, errlen);
	return e->ops->write(e, stack, rec, err, errlen);
}

int orchd_engine_sync(struct orchd_engine *e, char *err, size_t errlen)
{
	return e->ops->sync ? e->ops->sync(e, err, errlen) : 0;
}

int orchd_engine_remove(struct orchd_engine *e, const char *stack,
			const struct orchd_history_entry *h, char *err, size_t errlen)
{
	return e->ops->remove(e, stack, h, err, errlen);
}

int orchd_engine_list(struct orchd_engine *e, char ***names, size_t *n, char *err, size_t errlen)
{
	return e->ops->list(e, names, n, err, errlen);
}

int orchd_engine_history_append(struct orchd_engine *e, const char *stack,
				const struct orchd_history_entry *h, char *err, size_t errlen)
{
	return e->ops->history_append(e, stack, h, err, errlen);
}

int orchd_engine_history_read(struct orchd_engine *e, const char *stack,
			      struct orchd_history_entry **entries, size_t *n, char *err,
			      size_t errlen)
{
	return e->ops->history_read(e, stack, entries, n, err, errlen);
}

void orchd_stack_record_init(struct orchd_stack_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	rec->outputs = json_object_new_object();
}

void orchd_last_result_release(struct orchd_last_result *r)
{
	free(r->run_id);
	free(r->action);
	free(r->status);
	orchd_action_meta_release(&r->meta);
	memset(r, 0, sizeof(*r));
}

void orchd_stack_record_release(struct orchd_stack_record *rec)
{
	json_object_put(rec->state);
	json_object_put(rec->outputs);
	free(rec->config_hash);
	free(rec->inputs_hash);
	orchd_last_result_release(&rec->last);
	memset(rec, 0, sizeof(*rec));
}

void orchd_stack_record_set_output(struct orchd_stack_record *rec, const char *key,
				   json_object *value, int secret)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "value", value);
	json_object_object_add(o, "secret", json_object_new_boolean(secret));
	if (!rec->outputs)
		rec->outputs = json_object_new_object();
	json_object_object_add(rec->outputs, key, o);
}

json_object *orchd_ci_info_json(const struct orchd_ci_info *ci)
{
	json_object *o = NULL;

#define ADD(field, key)                                                            \
	if (ci->field) {                                                           \
		if (!o)                                                            \
			o = json_object_new_object();                              \
		json_object_object_add(o, key, json_object_new_string(ci->field)); \
	}
	ORCHD_CI_FIELDS(ADD)
#undef ADD
	return o;
}

void orchd_ci_info_from_json(struct orchd_ci_info *ci, const json_object *o)
{
	memset(ci, 0, sizeof(*ci));
	if (!json_object_is_type(o, json_type_object))
		return;
#define GET(field, key) ci->field = xstrdup_or_null(op_get_str(o, key));
	ORCHD_CI_FIELDS(GET)
#undef GET
}

void orchd_ci_info_copy(struct orchd_ci_info *dst, const struct orchd_ci_info *src)
{
#define COPY(field, key) dst->field = xstrdup_or_null(src->field);
	ORCHD_CI_FIELDS(COPY)
#undef COPY
}

void orchd_ci_info_release(struct orchd_ci_info *ci)
{
#define FREE(field, key) free(ci->field);
	ORCHD_CI_FIELDS(FREE)
#undef FREE
	memset(ci, 0, sizeof(*ci));
}

void orchd_action_meta_to_json(const struct orchd_action_meta *m, json_object *o)
{
	json_object *ci = orchd_ci_info_json(&m->ci);

	if (m->cpu_ms)
		json_object_object_add(o, "cpu_ms", json_object_new_int64(m->cpu_ms));
	if (m->max_rss_kb)
		json_object_object_add(o, "max_rss_kb", json_object_new_int64(m->max_rss_kb));
	if (ci)
		json_object_object_add(o, "ci", ci);
}

void orchd_action_meta_from_json(struct orchd_action_meta *m, const json_object *o)
{
	m->cpu_ms = op_get_int(o, "cpu_ms", 0);
	m->max_rss_kb = (long)op_get_int(o, "max_rss_kb", 0);
	orchd_ci_info_from_json(&m->ci, op_get(o, "ci"));
}

void orchd_action_meta_copy(struct orchd_action_meta *dst, const struct orchd_action_meta *src)
{
	dst->cpu_ms = src->cpu_ms;
	dst->max_rss_kb = src->max_rss_kb;
	orchd_ci_info_copy(&dst->ci, &src->ci);
}

void orchd_action_meta_release(struct orchd_action_meta *m)
{
	orchd_ci_info_release(&m->ci);
	memset(m, 0, sizeof(*m));
}

void orchd_history_entry_release(struct orchd_history_entry *h)
{
	free(h->run_id);
	free(h->action);
	free(h->status);
	orchd_action_meta_release(&h->meta);
	memset(h, 0, sizeof(*h));
}

void orchd_history_free(struct orchd_history_entry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++)
		orchd_history_entry_release(&entries[i]);
	free(entries);
}

void orchd_engine_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int orchd_stack_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > 200 || strstr(s, ".."))
		return 0;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
	      (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

void orchd_json_add_str(json_object *o, const char *key, const char *s)
{
	json_object_object_add(o, key, s ? json_object_new_string(s) : NULL);
}

void orchd_record_meta_to_json(const struct orchd_stack_record *rec, json_object *o)
{
	json_object *last = json_object_new_object();

	orchd_json_add_str(o, "config_hash", rec->config_hash);
	orchd_json_add_str(o, "inputs_hash", rec->inputs_hash);
	orchd_json_add_str(last, "run_id", rec->last.run_id);
	orchd_json_add_str(last, "action", rec->last.action);
	orchd_json_add_str(last, "status", rec->last.status);
	json_object_object_add(last, "started_at", json_object_new_int64(rec->last.started_at));
	json_object_object_add(last, "ended_at", json_object_new_int64(rec->last.ended_at));
	json_object_object_add(last, "attempts", json_object_new_int(rec->last.attempts));
	orchd_action_meta_to_json(&rec->last.meta, last);
	json_object_object_add(o, "last", last);
}

void orchd_record_meta_from_json(json_object *o, struct orchd_stack_record *rec)
{
	json_object *last = op_get(o, "last");

	rec->config_hash = xstrdup_or_null(op_get_str(o, "config_hash"));
	rec->inputs_hash = xstrdup_or_null(op_get_str(o, "inputs_hash"));
	rec->last.run_id = xstrdup_or_null(op_get_str(last, "run_id"));
	rec->last.action = xstrdup_or_null(op_get_str(last, "action"));
	rec->last.status = xstrdup_or_null(op_get_str(last, "status"));
	rec->last.started_at = op_get_int(last, "started_at", 0);
	rec->last.ended_at = op_get_int(last, "ended_at", 0);
	rec->last.attempts = (int)op_get_int(last, "attempts", 0);
	orchd_action_meta_from_json(&rec->last.meta, last);
}

int orchd_engine_concurrency(const struct orchd_engine *e)
{
	return e && e->ops->max_concurrent > 1 ? e->ops->max_concurrent : 1;
}

struct read_many {
	struct orchd_engine *e;
	size_t n, next;
	const char *const *stacks;
	struct orchd_stack_record *const *recs;
	int *rc;
	pthread_mutex_t mu;
	size_t failed; /* lowest failing index, n: none */
	char *err;
	size_t errlen;
};

static void *read_many_thread(void *arg)
{
	struct read_many *m = arg;
	char err[1024];

	for (;;) {
		size_t i;

		pthread_mutex_lock(&m->mu);
		i = m->next++;
		pthread_mutex_unlock(&m->mu);
		if (i >= m->n)
			return NULL;
		m->rc[i] = orchd_engine_read(m->e, m->stacks[i], m->recs[i], err, sizeof(err));
		if (m->rc[i] < 0) {
			pthread_mutex_lock(&m->mu);
			if (i < m->failed) {
				m->failed = i;
				snprintf(m->err, m->errlen, "%s", err);
			}
			pthread_mutex_unlock(&m->mu);
		}
	}
}

int orchd_engine_read_many(struct orchd_engine *e, size_t n, const char *const *stacks,
			   struct orchd_stack_record *const *recs, int *rc, char *err,
			   size_t errlen)
{
	struct read_many m = {e, n, 0, stacks, recs, rc, PTHREAD_MUTEX_INITIALIZER, n, err, errlen};
	size_t nt = (size_t)orchd_engine_concurrency(e), started = 0;
	pthread_t t[16];

	if (nt > n)
		nt = n;
	if (nt > sizeof(t) / sizeof(t[0]))
		nt = sizeof(t) / sizeof(t[0]);
	/* the other threads, then this one too */
	for (size_t k = 1; k < nt; k++)
		if (!orchd_thread_start(&t[started], read_many_thread, &m))
			started++;
	read_many_thread(&m);
	for (size_t k = 0; k < started; k++)
		pthread_join(t[k], NULL);
	pthread_mutex_destroy(&m.mu);
	return m.failed < n ? -1 : 0;
}
