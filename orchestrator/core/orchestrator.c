/*
 * core/orchestrator: the scheduler.  See orchestrator.h for the contract.
 *
 * Each selected instance is a node with a small state machine:
 *
 *   PENDING --(deps done, slot free)--> RUNNING --success--> DONE
 *                                          |--failure, retryable, attempts left--> WAITING
 *                                          |--failure--> FAILED (dependents: SKIPPED)
 *   WAITING --(backoff deadline)--> RUNNING
 *
 * A phase (validate, then the verb's action) runs every node through that
 * machine; the supervisor's done callback moves nodes, fills free slots and
 * the loop's deadline is the nearest backoff timer.
 */
#include "core/orchestrator.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/logging.h"
#include "crypto.h"
#include "core/report.h"
#include "core/sources.h"
#include "core/state.h"
#include "handlers/extension.h"
#include "hash.h"
#include "interfaces/engine.h"
#include "orchd_protocol.h"
#include "cache.h"
#include "util.h"

enum node_state {
	N_OFF = 0, /* not selected */
	N_PENDING,
	N_RUNNING,
	N_WAITING, /* backoff before the next attempt */
	N_DONE,
	N_FAILED,
	N_SKIPPED,
	N_CANCELLED,
};

struct node {
	struct orchd_instance *in;
	const struct orchd_ext_info *ext;
	char *stack;
	enum node_state st;
	int selected;
	int attempts;
	long long next_at;  /* N_WAITING: when to start again */
	size_t waiting_for; /* unfinished neighbours (deps, or dependents for destroy) */
	size_t *rdeps;	    /* dependents, within the pipeline */
	size_t nrdeps, rdeps_alloc;
	const char *status; /* for the summary */
	char reason[640];
	long long first_start, wall_ms, cpu_ms;
	long rss_kb;
	int changed; /* -1 unknown */
	/* Record read from the engine before the run (prev_found: it exists). */
	struct orchd_stack_record prev;
	int prev_found;
	/* This run's outputs (key -> value) and secret flags (key -> true). */
	json_object *outputs;
	json_object *secrets;
	json_object *config; /* resolved config blob for the current phase */
	char *inputs_hash;   /* of the upstream outputs consumed */
	int secret_input;    /* consumed a secret output */
	json_object *errors; /* validate errors, if any */
	struct op_buf log;   /* every line: log file, junit system-out */
	int log_truncated;
	struct op_buf group; /* --output grouped: lines not printed yet */
	/* References not known at validate time (upstream never applied):
	 * a validate failure then waits for the real values, and the
	 * instance is validated again right before its action. */
	int unresolved, revalidate, revalidating;
};

struct sched {
	struct orchd_pipeline *p;
	const struct orchd_registry *reg;
	const struct orchd_run_opts *o;
	struct node *n;
	size_t nn;
	struct orchd_supervisor *sup;
	struct orchd_console *con;
	struct orchd_engine *eng;
	char *state_dir;
	char *run_id;
	char *run_dir;	/* state_dir/runs/<run id> */
	char *work_dir; /* run_dir/work */
	enum op_action action;
	int validating;
	size_t running, limit;
	int stop;	 /* fail-fast: start nothing new */
	int state_error; /* an engine write failed */
	int config_error;
	long long run_started; /* unix ms */
	char *pipeline_dir;
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

static const char *verb_action_name(enum orchd_verb v)
{
	switch (v) {
	case ORCHD_VERB_PLAN:
		return "plan";
	case ORCHD_VERB_DESTROY:
		return "destroy";
	case ORCHD_VERB_RUN:
		break;
	}
	return "apply";
}

/* Canonical JSON text (object keys sorted) for hashing. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void canonical_json(struct op_buf *sb, json_object *v)
{
	if (json_object_is_type(v, json_type_object)) {
		size_t n = (size_t)json_object_object_length(v), k = 0;
		const char **keys = xcalloc(n ? n : 1, sizeof(*keys));

		json_object_object_foreach(v, key, val)
		{
			(void)val;
			keys[k++] = key;
		}
		qsort(keys, n, sizeof(*keys), cmp_str);
		op_buf_addch(sb, '{');
		for (k = 0; k < n; k++) {
			json_object *ks = json_object_new_string(keys[k]);

			op_buf_addf(sb, "%s%s:", k ? "," : "",
				json_object_to_json_string_ext(ks, JSON_C_TO_STRING_PLAIN));
			json_object_put(ks);
			canonical_json(sb, json_object_object_get(v, keys[k]));
		}
		op_buf_addch(sb, '}');
		free(keys);
	} else if (json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);

		op_buf_addch(sb, '[');
		for (size_t k = 0; k < n; k++) {
			if (k)
				op_buf_addch(sb, ',');
			canonical_json(sb, json_object_array_get_idx(v, k));
		}
		op_buf_addch(sb, ']');
	} else {
		op_buf_addstr(sb, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	}
}

/* ---------------------------------------------------------------------------
 * References: ${{ TYPE.NAME.outputs.KEY }}
 * ------------------------------------------------------------------------- */

/* Parse the inside of "${{ ... }}" into target and key.  0 or -1. */
static int parse_ref(const char *s, size_t len, char **target, char **key)
{
	const char *end = s + len, *dot;
	static const char marker[] = ".outputs.";

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	dot = memmem(s, (size_t)(end - s), marker, sizeof(marker) - 1);
	if (!dot || dot == s || dot + sizeof(marker) - 1 >= end)
		return -1;
	*target = xstrndup(s, (size_t)(dot - s));
	*key = xstrndup(dot + sizeof(marker) - 1, (size_t)(end - dot - (sizeof(marker) - 1)));
	return 0;
}

struct resolver {
	struct sched *s;
	struct node *node;
	struct op_buf *why; /* first failure */
	struct orchd_sha256 *inputs;
	int lenient;	/* validate phase: leave unresolvable references as text */
	int unresolved; /* lenient: references left as text */
};

/* The output value of upstream `target` named `key`, or NULL (why set). */
static json_object *lookup_output(struct resolver *r, const char *target, const char *key,
				  int *found)
{
	struct sched *s = r->s;
	size_t idx = orchd_pipeline_find(s->p, target, NULL);
	struct node *up;
	json_object *v = NULL, *o;

	*found = 0;
	if (idx == (size_t)-1) {
		if (!r->why->len)
			op_buf_addf(r->why, "reference to unknown instance '%s'", target);
		return NULL;
	}
	up = &s->n[idx];
	if (up->outputs && json_object_object_get_ex(up->outputs, key, &v)) {
		*found = 1;
		if (up->secrets && json_object_object_get_ex(up->secrets, key, NULL))
			r->node->secret_input = 1;
	} else if (up->prev_found && json_object_object_get_ex(up->prev.outputs, key, &o)) {
		json_object *sec;

		if (json_object_object_get_ex(o, "masked", NULL)) {
			if (!r->why->len)
				op_buf_addf(r->why,
					"output '%s' of %s is secret and no passphrase is set "
					"(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)",
					key, up->in->id);
			return NULL;
		}
		json_object_object_get_ex(o, "value", &v);
		*found = 1;
		if (json_object_object_get_ex(o, "secret", &sec) && json_object_get_boolean(sec))
			r->node->secret_input = 1;
	} else if (s->o->verb == ORCHD_VERB_PLAN && up->in->mock_outputs &&
		   json_object_object_get_ex(up->in->mock_outputs, key, &v)) {
		*found = 1;
	}
	if (!*found) {
		if (!r->why->len) {
			if (!up->prev_found && !up->outputs)
				op_buf_addf(r->why, "%s has no output '%s': it was never applied%s",
					up->in->id, key,
					s->o->verb == ORCHD_VERB_PLAN ? " and has no mock_outputs"
								      : "");
			else
				op_buf_addf(r->why, "%s has no output '%s'", up->in->id, key);
		}
		return NULL;
	}
	if (r->inputs) {
		struct op_buf txt = OP_BUF_INIT;

		canonical_json(&txt, v);
		orchd_sha256_update(r->inputs, target, strlen(target) + 1);
		orchd_sha256_update(r->inputs, key, strlen(key) + 1);
		orchd_sha256_update(r->inputs, op_buf_str(&txt), txt.len + 1);
		op_buf_release(&txt);
	}
	return v;
}

/* Resolve the references in one string.  Returns a new object (caller puts)
 * or NULL when a reference could not be resolved. */
static json_object *resolve_string(struct resolver *r, const char *str)
{
	struct op_buf out = OP_BUF_INIT;
	const char *p = str, *open;
	size_t slen = strlen(str);

	/* A value that is exactly one reference keeps the output's JSON type. */
	if (slen > 5 && !strncmp(str, "${{", 3) && !strcmp(str + slen - 2, "}}") &&
	    !strstr(str + 3, "${{") && strstr(str + 3, "}}") == str + slen - 2) {
		char *target, *key;
		int found;
		json_object *v;

		if (parse_ref(str + 3, slen - 5, &target, &key) == 0) {
			v = lookup_output(r, target, key, &found);
			free(target);
			free(key);
			if (!found) {
				r->unresolved++;
				return r->lenient ? json_object_new_string(str) : NULL;
			}
			return v ? json_object_get(v) : NULL;
		}
	}
	while ((open = strstr(p, "${{"))) {
		const char *close;
		char *target, *key;
		json_object *v;
		int found;

		if (open > str && open[-1] == '$') {
			/* "$${{" is a literal "${{". */
			op_buf_add(&out, p, (size_t)(open - 1 - p));
			op_buf_addstr(&out, "${{");
			p = open + 3;
			continue;
		}
		close = strstr(open + 3, "}}");
		if (!close || parse_ref(open + 3, (size_t)(close - open - 3), &target, &key) < 0) {
			/* The loader rejects malformed references; keep the text. */
			op_buf_add(&out, p, (size_t)(open + 3 - p));
			p = open + 3;
			continue;
		}
		op_buf_add(&out, p, (size_t)(open - p));
		v = lookup_output(r, target, key, &found);
		free(target);
		free(key);
		if (!found) {
			r->unresolved++;
			if (!r->lenient) {
				op_buf_release(&out);
				return NULL;
			}
			op_buf_add(&out, open, (size_t)(close + 2 - open));
		} else if (json_object_is_type(v, json_type_string)) {
			op_buf_addstr(&out, json_object_get_string(v));
		} else {
			op_buf_addstr(&out, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		}
		p = close + 2;
	}
	op_buf_addstr(&out, p);
	{
		json_object *res = json_object_new_string_len(op_buf_str(&out), (int)out.len);

		op_buf_release(&out);
		return res;
	}
}

/* Deep copy of v with references resolved; NULL (with r->why) on failure. */
static json_object *resolve_value(struct resolver *r, json_object *v, int *ok)
{
	json_object *res;

	switch (json_object_get_type(v)) {
	case json_type_string: {
		const char *str = json_object_get_string(v);

		if (!strstr(str, "${{"))
			return json_object_get(v);
		res = resolve_string(r, str);
		if (!res && (r->why->len || !r->lenient))
			*ok = 0;
		return res;
	}
	case json_type_object:
		res = json_object_new_object();
		json_object_object_foreach(v, k, val)
		{
			json_object_object_add(res, k, resolve_value(r, val, ok));
		}
		return res;
	case json_type_array: {
		size_t i, n = json_object_array_length(v);

		res = json_object_new_array_ext((int)n);
		for (i = 0; i < n; i++)
			json_object_array_add(
				res, resolve_value(r, json_object_array_get_idx(v, i), ok));
		return res;
	}
	default:
		return v ? json_object_get(v) : NULL;
	}
}

static int resolve_node_config(struct sched *s, struct node *nd, int lenient, struct op_buf *why)
{
	struct resolver r = {s, nd, why, NULL, lenient, 0};
	json_object *raw = orchd_instance_config(s->p, nd->in);
	char hex[ORCHD_SHA256_HEXSZ];
	int ok = 1;

	r.inputs = orchd_sha256_new();
	json_object_put(nd->config);
	nd->secret_input = 0;
	nd->config = resolve_value(&r, raw, &ok);
	nd->unresolved = r.unresolved;
	json_object_put(raw);
	free(nd->inputs_hash);
	nd->inputs_hash = NULL;
	if (r.inputs && orchd_sha256_final(r.inputs, hex) == 0)
		nd->inputs_hash = xstrdup(hex);
	orchd_sha256_free(r.inputs);
	return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------------
 * Selection
 * ------------------------------------------------------------------------- */

static size_t find_or_complain(struct sched *s, const char *ref, const char *opt)
{
	int ambiguous = 0;
	size_t idx = orchd_pipeline_find(s->p, ref, &ambiguous);

	if (idx == (size_t)-1)
		error("%s %s: %s", opt, ref,
		      ambiguous ? "ambiguous instance name, use TYPE.NAME" : "no such instance");
	return idx;
}

static void mark_deps(struct sched *s, size_t i)
{
	struct orchd_instance *in = &s->p->inst[i];

	if (s->n[i].selected)
		return;
	s->n[i].selected = 1;
	for (size_t k = 0; k < in->ndeps; k++)
		mark_deps(s, in->deps[k]);
}

static void mark_dependents(struct sched *s, size_t i)
{
	if (s->n[i].selected)
		return;
	s->n[i].selected = 1;
	for (size_t k = 0; k < s->n[i].nrdeps; k++)
		mark_dependents(s, s->n[i].rdeps[k]);
}

static int select_nodes(struct sched *s)
{
	const struct orchd_run_opts *o = s->o;
	size_t i;

	if (o->ntargets) {
		for (size_t t = 0; t < o->ntargets; t++) {
			size_t idx = find_or_complain(s, o->targets[t], "--target");

			if (idx == (size_t)-1)
				return -1;
			if (o->verb == ORCHD_VERB_DESTROY) {
				mark_dependents(s, idx);
			} else if (o->with_deps) {
				mark_deps(s, idx);
			} else {
				s->n[idx].selected = 1;
			}
		}
	} else {
		for (i = 0; i < s->nn; i++)
			s->n[i].selected = 1;
	}
	for (size_t t = 0; t < o->nexcludes; t++) {
		size_t idx = find_or_complain(s, o->excludes[t], "--exclude");

		if (idx == (size_t)-1)
			return -1;
		s->n[idx].selected = 0;
	}
	for (i = 0; i < s->nn; i++)
		if (!s->n[i].in->enabled)
			s->n[i].selected = 0;
	return 0;
}

/* --only-stale / --only-failed, once previous records are loaded. */
static void filter_by_history(struct sched *s)
{
	const struct orchd_run_opts *o = s->o;

	if (!o->only_stale && !o->only_failed)
		return;
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];
		int keep = 0;

		if (!nd->selected)
			continue;
		if (o->only_failed)
			keep |= nd->prev_found && nd->prev.last.status &&
				strcmp(nd->prev.last.status, "success") != 0;
		if (o->only_stale)
			keep |= nd->st == N_PENDING && nd->reason[0] == 's';
		nd->selected = keep;
	}
}

/* ---------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------- */

/* Keep a line for the instance's log file and JUnit (bounded). */
static void log_append(struct node *nd, const char *text)
{
	size_t len = strlen(text);

	if (nd->log_truncated)
		return;
	if (nd->log.len + len + 64 > nd->log.max) {
		op_buf_addstr(&nd->log, "[log truncated]\n");
		nd->log_truncated = 1;
		return;
	}
	op_buf_add(&nd->log, text, len);
	op_buf_addch(&nd->log, '\n');
}

/* --log-format json: one object per line on stderr, masked. */
static void emit_json(struct sched *s, const char *id, enum orchd_log_level lvl,
		      enum orchd_log_source src, const char *text)
{
	json_object *o = json_object_new_object();
	char *m = orchd_mask_apply(orchd_console_mask(s->con), text, strlen(text), NULL);
	char ts[40];
	long long ms = unix_ms();
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03dZ", (int)(ms % 1000));
	json_object_object_add(o, "time", json_object_new_string(ts));
	json_object_object_add(o, "instance", id ? json_object_new_string(id) : NULL);
	json_object_object_add(o, "level", json_object_new_string(orchd_log_level_name(lvl)));
	json_object_object_add(o, "source", json_object_new_string(orchd_log_source_name(src)));
	json_object_object_add(o, "message", json_object_new_string(m ? m : text));
	fprintf(stderr, "%s\n",
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	free(m);
	json_object_put(o);
}

/* Every line about an instance (or orchd itself, nd NULL) goes here. */
static void emit_line(struct sched *s, struct node *nd, enum orchd_log_level lvl,
		      enum orchd_log_source src, const char *text)
{
	if (nd)
		log_append(nd, text);
	if (s->o->log_json) {
		if (lvl >= (s->o->quiet	    ? ORCHD_LOG_WARNING
			    : s->o->verbose ? ORCHD_LOG_DEBUG
					    : ORCHD_LOG_INFO))
			emit_json(s, nd ? nd->in->id : NULL, lvl, src, text);
		return;
	}
	if (nd && s->o->output == ORCHD_OUTPUT_GROUPED) {
		op_buf_addch(&nd->group, '0' + (int)lvl);
		op_buf_addstr(&nd->group, text);
		op_buf_addch(&nd->group, '\n');
		return;
	}
	orchd_console_log(s->con, nd ? nd->in->id : NULL, lvl, text);
}

/* --output grouped: print what the instance said, as one block. */
static void flush_group(struct sched *s, struct node *nd)
{
	char *p, *nl;

	if (!nd->group.len)
		return;
	for (p = nd->group.buf; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		orchd_console_log(s->con, nd->in->id, (enum orchd_log_level)(p[0] - '0'), p + 1);
	}
	op_buf_reset(&nd->group);
}

static void node_log(struct sched *s, struct node *nd, enum orchd_log_level lvl, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));

static void node_log(struct sched *s, struct node *nd, enum orchd_log_level lvl, const char *fmt,
		     ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	emit_line(s, nd, lvl, ORCHD_LOGSRC_ORCHD, buf);
}

static void update_status(struct sched *s)
{
	const char *running[16];
	size_t nr = 0, done = 0, failed = 0;

	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (nd->st == N_RUNNING && nr < ARRAY_SIZE(running))
			running[nr++] = nd->in->id;
		else if (nd->st == N_DONE)
			done++;
		else if (nd->st == N_FAILED)
			failed++;
	}
	orchd_console_status(s->con, done, failed, running, nr);
}

static int start_node(struct sched *s, size_t i);

/* Number of neighbours node i waits for in the current phase. */
static size_t count_waiting(struct sched *s, size_t i)
{
	size_t c = 0;

	if (s->validating)
		return 0;
	if (s->action == OP_ACTION_DESTROY) {
		for (size_t k = 0; k < s->n[i].nrdeps; k++)
			c += s->n[s->n[i].rdeps[k]].st == N_PENDING ||
			     s->n[s->n[i].rdeps[k]].st == N_RUNNING ||
			     s->n[s->n[i].rdeps[k]].st == N_WAITING;
	} else {
		struct orchd_instance *in = s->n[i].in;

		for (size_t k = 0; k < in->ndeps; k++) {
			enum node_state st = s->n[in->deps[k]].st;

			c += st == N_PENDING || st == N_RUNNING || st == N_WAITING;
		}
	}
	return c;
}

/* A node ended badly: skip what can no longer run. */
static void skip_dependents(struct sched *s, size_t i)
{
	size_t *list, nlist, k;

	if (s->validating)
		return;
	if (s->action == OP_ACTION_DESTROY) {
		struct orchd_instance *in = s->n[i].in;

		list = in->deps;
		nlist = in->ndeps;
	} else {
		list = s->n[i].rdeps;
		nlist = s->n[i].nrdeps;
	}
	for (k = 0; k < nlist; k++) {
		struct node *d = &s->n[list[k]];

		if (d->st != N_PENDING)
			continue;
		d->st = N_SKIPPED;
		d->status = "skipped";
		snprintf(d->reason, sizeof(d->reason), "%s %s", s->n[i].in->id,
			 s->n[i].st == N_SKIPPED ? "was skipped" : "failed");
		node_log(s, d, ORCHD_LOG_WARNING, "skipped: %s", d->reason);
		flush_group(s, d);
		skip_dependents(s, list[k]);
	}
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

static void fill_slots(struct sched *s)
{
	long long now = now_ms();

	if (s->stop || orchd_supervisor_interrupted(s->sup))
		return;
	for (size_t i = 0; i < s->nn && s->running < s->limit; i++) {
		struct node *nd = &s->n[i];

		if (nd->st == N_WAITING && nd->next_at <= now) {
			start_node(s, i);
		} else if (nd->st == N_PENDING && count_waiting(s, i) == 0) {
			start_node(s, i);
		}
	}
}

/* Store the outcome of the main action in the engine. */
static void store_result(struct sched *s, struct node *nd, const struct orchd_step_result *res,
			 int ok)
{
	struct orchd_stack_record rec;
	struct orchd_history_entry h;
	char err[1024];
	char hex[ORCHD_SHA256_HEXSZ];
	long long end = unix_ms();
	struct op_buf cfgtxt = OP_BUF_INIT;

	if (s->action == OP_ACTION_PLAN || !s->eng)
		return;
	if (s->action == OP_ACTION_DESTROY && ok) {
		if (orchd_engine_remove(s->eng, nd->stack, err, sizeof(err)) < 0) {
			node_log(s, nd, ORCHD_LOG_ERROR, "%s", err);
			s->state_error = 1;
			nd->st = N_FAILED;
			nd->status = "failed";
			snprintf(nd->reason, sizeof(nd->reason), "%.*s",
				 (int)sizeof(nd->reason) - 1, err);
			skip_dependents(s, (size_t)(nd - s->n));
		}
		return;
	}
	orchd_stack_record_init(&rec);
	/* Start from the previous record: a failed apply keeps old outputs. */
	if (nd->prev_found) {
		json_object_put(rec.outputs);
		rec.outputs = json_object_get(nd->prev.outputs);
		rec.state = json_object_get(nd->prev.state);
		rec.state_secret = nd->prev.state_secret;
		rec.state_masked = nd->prev.state_masked;
		rec.config_hash = nd->prev.config_hash ? xstrdup(nd->prev.config_hash) : NULL;
		rec.inputs_hash = nd->prev.inputs_hash ? xstrdup(nd->prev.inputs_hash) : NULL;
	}
	if (res && res->has_state) {
		json_object_put(rec.state);
		rec.state = json_object_get(res->state);
		rec.state_secret = res->state_secret || nd->secret_input;
		rec.state_masked = 0;
	}
	if (ok) {
		json_object_put(rec.outputs);
		rec.outputs = json_object_new_object();
		json_object_object_foreach(nd->outputs, k, v)
		{
			int secret = json_object_object_get_ex(nd->secrets, k, NULL);

			orchd_stack_record_set_output(&rec, k, json_object_get(v), secret);
		}
		op_buf_reset(&cfgtxt);
		canonical_json(&cfgtxt, nd->config);
		orchd_sha256_hex(op_buf_str(&cfgtxt), cfgtxt.len, hex);
		free(rec.config_hash);
		rec.config_hash = xstrdup(hex);
		free(rec.inputs_hash);
		rec.inputs_hash = nd->inputs_hash ? xstrdup(nd->inputs_hash) : NULL;
	}
	rec.last.run_id = xstrdup(s->run_id);
	rec.last.action = xstrdup(op_action_name(s->action));
	rec.last.status = xstrdup(nd->status);
	rec.last.started_at = nd->first_start;
	rec.last.ended_at = end;
	rec.last.attempts = nd->attempts;
	if (orchd_engine_write(s->eng, nd->stack, &rec, err, sizeof(err)) < 0) {
		/* What the extension did is not recorded: the instance failed,
		 * and nothing may consume outputs that were not stored. */
		node_log(s, nd, ORCHD_LOG_ERROR, "%s", err);
		s->state_error = 1;
		if (nd->st == N_DONE) {
			nd->st = N_FAILED;
			nd->status = "failed";
			snprintf(nd->reason, sizeof(nd->reason), "%.*s",
				 (int)sizeof(nd->reason) - 1, err);
			skip_dependents(s, (size_t)(nd - s->n));
		}
		if (!s->o->keep_going)
			s->stop = 1;
	}
	orchd_stack_record_release(&rec);
	op_buf_release(&cfgtxt);
	h.run_id = s->run_id;
	h.action = xstrdup(op_action_name(s->action));
	h.status = xstrdup(nd->status);
	h.started_at = nd->first_start;
	h.ended_at = end;
	h.attempts = nd->attempts;
	if (orchd_engine_history_append(s->eng, nd->stack, &h, err, sizeof(err)) < 0)
		node_log(s, nd, ORCHD_LOG_WARNING, "%s", err);
	free(h.action);
	free(h.status);
}

/* Outputs whose value contains a secret of this run are secret too. */
static void taint_outputs(struct sched *s, struct node *nd)
{
	struct orchd_mask *m = orchd_console_mask(s->con);

	json_object_object_foreach(nd->outputs, k, v)
	{
		const char *txt;
		char *masked;

		if (json_object_object_get_ex(nd->secrets, k, NULL))
			continue;
		txt = json_object_is_type(v, json_type_string)
			      ? json_object_get_string(v)
			      : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		masked = orchd_mask_apply(m, txt, strlen(txt), NULL);
		if (masked) {
			json_object_object_add(nd->secrets, k, json_object_new_boolean(1));
			free(masked);
		}
	}
}

static void register_secret_value(struct sched *s, json_object *v)
{
	if (json_object_is_type(v, json_type_string))
		orchd_mask_add(orchd_console_mask(s->con), json_object_get_string(v));
	else if (v)
		orchd_mask_add(orchd_console_mask(s->con),
			       json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
}

static void on_done(void *cb_data, void *ctx, const char *id, const struct orchd_step_result *res)
{
	struct sched *s = cb_data;
	struct node *nd = ctx;
	size_t i = (size_t)(nd - s->n);
	int ok = res->status == ORCHD_STEP_SUCCESS;

	(void)id;
	s->running--;
	nd->wall_ms += res->wall_ms;
	nd->cpu_ms += res->cpu_user_ms + res->cpu_sys_ms;
	if (res->max_rss_kb > nd->rss_kb)
		nd->rss_kb = res->max_rss_kb;
	if (res->changed >= 0)
		nd->changed = res->changed;

	if (s->validating) {
		if (ok) {
			nd->st = N_DONE;
			nd->status = "valid";
		} else if (nd->unresolved && res->status == ORCHD_STEP_FAILED && res->has_result) {
			nd->st = N_DONE;
			nd->status = "valid";
			nd->revalidate = 1;
			node_log(s, nd, ORCHD_LOG_INFO,
				 "validate again when its references are known (%s)", res->reason);
		} else {
			nd->st = N_FAILED;
			nd->status = "invalid";
			snprintf(nd->reason, sizeof(nd->reason), "%s", res->reason);
			if (res->errors && json_object_is_type(res->errors, json_type_array)) {
				size_t n = json_object_array_length(res->errors);

				for (size_t k = 0; k < n; k++) {
					json_object *e = json_object_array_get_idx(res->errors, k);
					json_object *path = NULL, *msg = NULL;

					json_object_object_get_ex(e, "path", &path);
					json_object_object_get_ex(e, "message", &msg);
					node_log(s, nd, ORCHD_LOG_ERROR, "invalid config: %s%s%s",
						 path ? json_object_get_string(path) : "",
						 path ? ": " : "",
						 msg ? json_object_get_string(msg) : "invalid");
				}
			}
			node_log(s, nd, ORCHD_LOG_ERROR, "validate failed: %s", res->reason);
			s->config_error = 1;
		}
		flush_group(s, nd);
		fill_slots(s);
		update_status(s);
		return;
	}

	if (nd->revalidating) {
		/* The deferred validate, now with the real values. */
		nd->revalidating = 0;
		nd->revalidate = 0;
		nd->attempts--;
		if (ok) {
			start_node(s, i);
		} else {
			nd->st = N_FAILED;
			nd->status = "invalid";
			snprintf(nd->reason, sizeof(nd->reason), "%s", res->reason);
			node_log(s, nd, ORCHD_LOG_ERROR, "validate failed: %s", res->reason);
			skip_dependents(s, i);
			if (!s->o->keep_going)
				s->stop = 1;
		}
		flush_group(s, nd);
		fill_slots(s);
		update_status(s);
		return;
	}
	if (ok) {
		json_object_put(nd->outputs);
		json_object_put(nd->secrets);
		nd->outputs = json_object_get(res->outputs);
		nd->secrets = json_object_get(res->secrets);
		/* Secret outputs are masked in every line from now on. */
		json_object_object_foreach(nd->secrets, k, v)
		{
			json_object *val;

			(void)v;
			if (json_object_object_get_ex(nd->outputs, k, &val))
				register_secret_value(s, val);
		}
		taint_outputs(s, nd);
		nd->st = N_DONE;
		nd->status = s->action == OP_ACTION_PLAN
				     ? (nd->changed == 1 ? "changes" : "no changes")
				     : "success";
		if (res->summary && *res->summary)
			node_log(s, nd, ORCHD_LOG_INFO, "%s", res->summary);
		store_result(s, nd, res, 1);
	} else {
		int retry = (res->retryable || res->status == ORCHD_STEP_TIMED_OUT) &&
			    nd->attempts < nd->in->exec.max_attempts &&
			    res->status != ORCHD_STEP_CANCELLED &&
			    !orchd_supervisor_interrupted(s->sup);

		snprintf(nd->reason, sizeof(nd->reason), "%s", res->reason);
		if (retry) {
			long long d = backoff_ms(&nd->in->exec, nd->attempts);

			nd->st = N_WAITING;
			nd->next_at = now_ms() + d;
			node_log(s, nd, ORCHD_LOG_WARNING,
				 "attempt %d of %d failed: %s; retrying in %lld ms", nd->attempts,
				 nd->in->exec.max_attempts, res->reason, d);
		} else {
			nd->st = res->status == ORCHD_STEP_CANCELLED ? N_CANCELLED : N_FAILED;
			nd->status = orchd_step_status_name(res->status);
			if (res->status == ORCHD_STEP_SUCCESS)
				nd->status = "failed";
			node_log(s, nd, ORCHD_LOG_ERROR, "%s failed: %s", op_action_name(s->action),
				 res->reason);
			store_result(s, nd, res, 0);
			skip_dependents(s, i);
			if (!s->o->keep_going)
				s->stop = 1;
		}
	}
	flush_group(s, nd);
	fill_slots(s);
	update_status(s);
}

static void on_output(void *cb_data, void *ctx, const char *id, const char *key, json_object *value,
		      int secret)
{
	struct sched *s = cb_data;

	(void)ctx;
	(void)id;
	(void)key;
	if (secret)
		register_secret_value(s, value);
}

static void on_log(void *cb_data, void *ctx, const char *id, enum orchd_log_level level,
		   enum orchd_log_source src, const char *text)
{
	struct sched *s = cb_data;
	struct node *nd = ctx;

	(void)id;
	emit_line(s, nd, level, src, text);
}

static char **build_env(struct sched *s, struct node *nd)
{
	char **env = NULL;
	size_t n = 0, alloc = 0;

	json_object_object_foreach(s->p->core.env, k, v)
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
	ALLOC_GROW(env, n + 2, alloc);
	env[n++] = xasprintf("ORCHD_PIPELINE_DIR=%s", s->pipeline_dir);
	env[n] = NULL;
	return env;
}

static void free_env(char **env)
{
	for (size_t k = 0; env && env[k]; k++)
		free(env[k]);
	free(env);
}

struct source_log {
	struct sched *s;
	struct node *nd;
};

/* One line per fetched source, with the commit or digest it got. */
static void source_fetched(void *data, const char *line)
{
	struct source_log *l = data;

	node_log(l->s, l->nd, ORCHD_LOG_INFO, "%s", line);
}

/* The step's prepare hook: fetch the instance's sources into its workdir
 * (every action but describe; see core/sources.h). */
static int fetch_sources(void *cb_data, void *ctx, const char *workdir, char *err, size_t errlen)
{
	struct sched *s = cb_data;
	struct node *nd = ctx;
	size_t n = json_object_array_length(nd->in->sources);
	struct source_log l = {s, nd};

	node_log(s, nd, ORCHD_LOG_INFO, "fetching %zu source%s", n, n == 1 ? "" : "s");
	return orchd_sources_fetch_all(nd->in->sources, workdir, NULL, source_fetched, &l, err,
				       errlen);
}

static int start_node(struct sched *s, size_t i)
{
	struct node *nd = &s->n[i];
	struct orchd_step_spec spec = ORCHD_STEP_SPEC_INIT;
	struct op_buf why = OP_BUF_INIT;
	char **env;
	json_object *prev_outputs;
	int ret;

	/* plan changes nothing: an output that exists only after an apply
	 * (upstream never applied, no mock_outputs) stays as the reference
	 * text, as in the up-front validate. */
	if (!s->validating && s->action == OP_ACTION_PLAN) {
		resolve_node_config(s, nd, 1, &why);
		if (nd->unresolved)
			node_log(s, nd, ORCHD_LOG_INFO, "known only after apply: %s", op_buf_str(&why));
		op_buf_reset(&why);
	} else if (!s->validating && resolve_node_config(s, nd, 0, &why) < 0) {
		nd->st = N_FAILED;
		nd->status = "failed";
		snprintf(nd->reason, sizeof(nd->reason), "%s", op_buf_str(&why));
		node_log(s, nd, ORCHD_LOG_ERROR, "%s", op_buf_str(&why));
		op_buf_release(&why);
		skip_dependents(s, i);
		if (!s->o->keep_going)
			s->stop = 1;
		return -1;
	}
	op_buf_release(&why);
	env = build_env(s, nd);
	nd->attempts++;
	if (!nd->first_start)
		nd->first_start = unix_ms();
	spec.id = nd->in->id;
	spec.exe = nd->ext->path;
	spec.action = s->validating ? OP_ACTION_VALIDATE : s->action;
	if (!s->validating && nd->revalidate) {
		spec.action = OP_ACTION_VALIDATE;
		nd->revalidating = 1;
	}
	spec.instance = nd->in->name;
	spec.stack = nd->stack;
	spec.config = nd->config;
	spec.state = nd->prev_found ? nd->prev.state : NULL;
	spec.outputs = NULL;
	prev_outputs = NULL;
	if (nd->prev_found) {
		/* Previous outputs, key -> value (secret ones only if readable). */
		json_object *prev = json_object_new_object();

		json_object_object_foreach(nd->prev.outputs, key, o)
		{
			json_object *v;

			if (json_object_object_get_ex(o, "masked", NULL))
				continue;
			if (json_object_object_get_ex(o, "value", &v))
				json_object_object_add(prev, key, json_object_get(v));
		}
		spec.outputs = prev_outputs = prev;
	}
	spec.workdir_base = s->work_dir;
	spec.attempt = nd->attempts;
	spec.keep_workdir = s->o->keep_workdir;
	spec.env = (const char *const *)(void *)env;
	spec.timeout_ms = s->validating ? 0 : nd->in->exec.timeout_ms;
	spec.grace_ms = nd->in->exec.grace_ms;
	spec.ctx = nd;
	if (nd->in->sources && json_object_array_length(nd->in->sources))
		spec.prepare = fetch_sources;
	nd->st = N_RUNNING;
	ret = orchd_supervisor_start(s->sup, &spec);
	json_object_put(prev_outputs);
	free_env(env);
	if (ret < 0) {
		nd->st = N_FAILED;
		nd->status = "failed";
		snprintf(nd->reason, sizeof(nd->reason), "could not start");
		return -1;
	}
	s->running++;
	return 0;
}

static long long next_deadline(struct sched *s)
{
	long long d = -1;

	for (size_t i = 0; i < s->nn; i++)
		if (s->n[i].st == N_WAITING && (d < 0 || s->n[i].next_at < d))
			d = s->n[i].next_at;
	return d;
}

static int pending_work(struct sched *s)
{
	for (size_t i = 0; i < s->nn; i++) {
		if (s->n[i].st == N_WAITING && !s->stop)
			return 1;
		if (s->n[i].st == N_PENDING && !s->stop && count_waiting(s, i) == 0)
			return 1;
	}
	return 0;
}

/* Run every selected node through the current phase. */
static int run_phase(struct sched *s)
{
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (!nd->selected)
			continue;
		nd->st = N_PENDING;
		nd->attempts = s->validating ? nd->attempts : 0;
		nd->status = "not run";
		nd->reason[0] = '\0';
		if (s->validating) {
			struct op_buf why = OP_BUF_INIT;

			/* References resolve when they can (stored outputs,
			 * mock_outputs); the others stay as text. */
			resolve_node_config(s, nd, 1, &why);
			op_buf_release(&why);
		}
	}
	fill_slots(s);
	update_status(s);
	while (s->running || pending_work(s)) {
		long long dl = next_deadline(s);

		if (orchd_supervisor_wait(s->sup, dl) < 0)
			return -1;
		/* console lines of this turn (stderr is buffered when not a TTY) */
		orchd_console_flush(s->con);
		fill_slots(s);
		if (orchd_supervisor_interrupted(s->sup) && !s->running)
			break;
	}
	orchd_console_status_clear(s->con);
	for (size_t i = 0; i < s->nn; i++)
		flush_group(s, &s->n[i]);
	/* Whatever never started (fail-fast or interrupted). */
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (nd->st == N_PENDING || nd->st == N_WAITING) {
			nd->st = N_SKIPPED;
			nd->status = orchd_supervisor_interrupted(s->sup) ? "cancelled" : "skipped";
			if (!nd->reason[0])
				snprintf(nd->reason, sizeof(nd->reason), "%s",
					 orchd_supervisor_interrupted(s->sup)
						 ? "run interrupted"
						 : "not started after an earlier failure");
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Setup and teardown
 * ------------------------------------------------------------------------- */

static char *dir_of(const char *file)
{
	const char *slash = strrchr(file, '/');

	if (!slash)
		return xstrdup(".");
	if (slash == file)
		return xstrdup("/");
	return xstrndup(file, (size_t)(slash - file));
}

static char *absolute(const char *path)
{
	char *r = realpath(path, NULL);

	return r ? r : xstrdup(path);
}

/*
 * An extension whose manifest says "secrets": true stores secret state (a
 * Terraform state, say): without a passphrase that state could not be
 * stored after the extension changed the world, so refuse before anything
 * runs.  1 (with the message in err) when a passphrase is missing.
 */
static int needs_passphrase(struct sched *s, char *err, size_t errlen)
{
	char *pass = NULL;
	char perr[256];

	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (!nd->selected || !nd->ext || !nd->ext->secrets)
			continue;
		if (orchd_crypto_passphrase(&pass, perr, sizeof(perr)) < 0) {
			snprintf(err, errlen, "%s", perr);
			return 1;
		}
		if (pass) {
			orchd_crypto_free_secret(pass, strlen(pass));
			return 0;
		}
		snprintf(err, errlen,
			 "%s: extension %s stores secrets, and no passphrase is set "
			 "(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE); nothing was run",
			 nd->in->id, nd->in->type);
		return 1;
	}
	return 0;
}

static int load_previous(struct sched *s)
{
	char err[1024];

	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];
		int r;

		if (!s->eng)
			break;
		r = orchd_engine_read(s->eng, nd->stack, &nd->prev, err, sizeof(err));
		if (r < 0)
			return error("%s", err);
		nd->prev_found = r == 0;
		if (!nd->prev_found)
			continue;
		/* Stored secrets are masked in every line of this run. */
		json_object_object_foreach(nd->prev.outputs, k, o)
		{
			json_object *sec, *v;

			(void)k;
			if (json_object_object_get_ex(o, "secret", &sec) &&
			    json_object_get_boolean(sec) &&
			    !json_object_object_get_ex(o, "masked", NULL) &&
			    json_object_object_get_ex(o, "value", &v))
				register_secret_value(s, v);
		}
	}
	return 0;
}

static void summarize(struct sched *s)
{
	struct orchd_summary_row *rows = xcalloc(s->nn, sizeof(*rows));
	size_t nr = 0;

	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (!nd->selected)
			continue;
		rows[nr].id = nd->in->id;
		rows[nr].status = nd->status ? nd->status : "not run";
		rows[nr].attempts = nd->attempts;
		rows[nr].wall_ms = nd->wall_ms;
		rows[nr].cpu_ms = nd->cpu_ms;
		rows[nr].max_rss_kb = nd->rss_kb;
		nr++;
	}
	orchd_console_summary(s->con, rows, nr);
	free(rows);
}

static void print_outputs(struct sched *s)
{
	int any = 0;

	if (s->action != OP_ACTION_APPLY)
		return;
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];

		if (nd->st != N_DONE || !nd->outputs || !json_object_object_length(nd->outputs))
			continue;
		if (!any)
			orchd_console_log(s->con, NULL, ORCHD_LOG_INFO, "outputs:");
		any = 1;
		json_object_object_foreach(nd->outputs, k, v)
		{
			int secret = json_object_object_get_ex(nd->secrets, k, NULL);
			const char *txt =
				secret ? "***"
				: json_object_is_type(v, json_type_string)
					? json_object_get_string(v)
					: json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);

			orchd_console_logf(s->con, NULL, ORCHD_LOG_INFO, "  %s.%s = %s", nd->in->id,
					   k, txt);
		}
	}
}

static void build_graph(struct sched *s)
{
	for (size_t i = 0; i < s->nn; i++) {
		struct orchd_instance *in = &s->p->inst[i];

		for (size_t k = 0; k < in->ndeps; k++) {
			struct node *d = &s->n[in->deps[k]];

			ALLOC_GROW(d->rdeps, d->nrdeps + 1, d->rdeps_alloc);
			d->rdeps[d->nrdeps++] = i;
		}
	}
}

/* Mark stale nodes (for --only-stale and for the log): inputs changed. */
static void mark_stale(struct sched *s)
{
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];
		struct op_buf why = OP_BUF_INIT;

		nd->reason[0] = '\0';
		if (!nd->prev_found)
			continue;
		if (resolve_node_config(s, nd, 1, &why) == 0 && nd->prev.inputs_hash &&
		    nd->inputs_hash && strcmp(nd->prev.inputs_hash, nd->inputs_hash) != 0) {
			nd->st = N_PENDING;
			snprintf(nd->reason, sizeof(nd->reason), "stale: upstream outputs changed");
		}
		op_buf_release(&why);
	}
}

int orchd_orchestrate(struct orchd_pipeline *p, const struct orchd_registry *reg,
		      const struct orchd_run_opts *o)
{
	struct sched s = {0};
	struct orchd_supervisor_opts so = ORCHD_SUPERVISOR_OPTS_INIT;
	struct orchd_console_opts co = {NULL, ORCHD_LOG_INFO, -1, -1};
	char err[1024];
	int rc = ORCHD_EXIT_OK, sig, any_changes = 0, locked = 0;
	size_t nsel = 0;

	s.p = p;
	s.reg = reg;
	s.o = o;
	s.nn = p->ninst;
	s.n = xcalloc(s.nn ? s.nn : 1, sizeof(*s.n));
	s.action = o->verb == ORCHD_VERB_PLAN	   ? OP_ACTION_PLAN
		   : o->verb == ORCHD_VERB_DESTROY ? OP_ACTION_DESTROY
						   : OP_ACTION_APPLY;
	s.run_started = unix_ms();
	s.pipeline_dir = absolute(p->file);
	{
		char *d = dir_of(s.pipeline_dir);

		free(s.pipeline_dir);
		s.pipeline_dir = d;
	}
	srandom((unsigned)(now_ms() ^ getpid()));

	if (o->quiet)
		co.level = ORCHD_LOG_WARNING;
	if (o->verbose)
		co.level = ORCHD_LOG_DEBUG;
	s.con = orchd_console_new(&co);
	if (!s.con)
		die("out of memory");

	for (size_t i = 0; i < s.nn; i++) {
		struct node *nd = &s.n[i];
		struct op_buf e = OP_BUF_INIT;

		nd->in = &p->inst[i];
		nd->stack = orchd_instance_stack(p, nd->in);
		nd->changed = -1;
		orchd_stack_record_init(&nd->prev);
		op_buf_init(&nd->log, 1 << 20);
		op_buf_init(&nd->group, 0);
		nd->ext = orchd_loader_find(reg, nd->in->type, &e);
		if (!nd->ext && nd->in->enabled) {
			error("%s: %s", nd->in->id, op_buf_str(&e));
			rc = ORCHD_EXIT_USAGE;
		}
		op_buf_release(&e);
	}
	if (rc)
		goto out;
	build_graph(&s);
	if (select_nodes(&s) < 0) {
		rc = ORCHD_EXIT_USAGE;
		goto out;
	}

	/* State: open, lock, read what the previous runs left. */
	s.state_dir = orchd_state_dir(p, o->state_dir);
	if (orchd_state_open(p, s.state_dir, &s.eng, err, sizeof(err)) < 0) {
		error("%s", err);
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	s.run_id = orchd_run_id_new();
	if (orchd_state_lock(s.eng, s.run_id, o->argc, o->argv, o->lock_timeout_ms, err,
			     sizeof(err)) < 0) {
		error("%s", err);
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	locked = 1;
	if (o->verb != ORCHD_VERB_PLAN && needs_passphrase(&s, err, sizeof(err))) {
		error("%s", err);
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	if (load_previous(&s) < 0) {
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	mark_stale(&s);
	filter_by_history(&s);
	for (size_t i = 0; i < s.nn; i++)
		if (s.n[i].selected) {
			nsel++;
			orchd_console_add_instance(s.con, s.n[i].in->id);
		}
	s.run_dir = xasprintf("%s/runs/%s", s.state_dir, s.run_id);
	if (nsel && orchd_mkdir_p(s.run_dir, 0700, NULL, 0) < 0) {
		error("cannot create %s: %s", s.run_dir, strerror(errno));
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	{
		/* Extensions run in their workdir: give them absolute paths. */
		char *abs = absolute(s.run_dir);

		s.work_dir = xasprintf("%s/work", abs);
		free(abs);
	}

	s.limit = (size_t)(o->parallelism > 0	     ? o->parallelism
			   : p->core.parallelism > 0 ? p->core.parallelism
						     : orchd_ncpus());
	so.log = on_log;
	so.output = on_output;
	so.done = on_done;
	so.cb_data = &s;
	s.sup = orchd_supervisor_new(&so);
	if (!s.sup) {
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	if (!nsel)
		orchd_console_log(s.con, NULL, ORCHD_LOG_INFO, "nothing to do");

	/* Phase 1: validate everything before changing anything. */
	s.validating = 1;
	if (nsel && run_phase(&s) < 0) {
		rc = ORCHD_EXIT_SYSTEM;
		goto out_sup;
	}
	if ((sig = orchd_supervisor_interrupted(s.sup)))
		goto out_sup;
	if (s.config_error) {
		orchd_console_log(s.con, NULL, ORCHD_LOG_ERROR,
				  "configuration rejected by validate: nothing was changed");
		summarize(&s);
		rc = ORCHD_EXIT_USAGE;
		goto out_sup;
	}

	/* Phase 2: the action, in dependency order. */
	s.validating = 0;
	for (size_t i = 0; i < s.nn; i++) {
		s.n[i].attempts = 0;
		s.n[i].wall_ms = s.n[i].cpu_ms = 0;
		s.n[i].rss_kb = 0;
		s.n[i].first_start = 0;
	}
	if (nsel && run_phase(&s) < 0) {
		rc = ORCHD_EXIT_SYSTEM;
		goto out_sup;
	}
	print_outputs(&s);
	summarize(&s);
	for (size_t i = 0; i < s.nn; i++) {
		struct node *nd = &s.n[i];

		if (!nd->selected)
			continue;
		if (nd->st == N_FAILED || nd->st == N_SKIPPED || nd->st == N_CANCELLED)
			rc = ORCHD_EXIT_FAILED;
		if (nd->changed == 1)
			any_changes = 1;
	}
	/* A state that could not be written outranks the failure it caused. */
	if (s.state_error)
		rc = ORCHD_EXIT_SYSTEM;
	if (o->verb == ORCHD_VERB_PLAN && o->detailed_exitcode && rc == ORCHD_EXIT_OK &&
	    any_changes)
		rc = 2;

out_sup:
	if ((sig = orchd_supervisor_interrupted(s.sup))) {
		orchd_console_logf(s.con, NULL, ORCHD_LOG_ERROR, "interrupted by %s",
				   sig == 2 ? "SIGINT" : "SIGTERM");
		rc = sig == 2 ? ORCHD_EXIT_SIGINT : ORCHD_EXIT_SIGTERM;
	}
	{
		struct orchd_report_node *rn = xcalloc(s.nn ? s.nn : 1, sizeof(*rn));
		size_t nrn = 0;

		for (size_t i = 0; i < s.nn; i++) {
			struct node *nd = &s.n[i];

			if (!nd->selected)
				continue;
			rn[nrn].id = nd->in->id;
			rn[nrn].type = nd->in->type;
			rn[nrn].name = nd->in->name;
			rn[nrn].stack = nd->stack;
			rn[nrn].status = nd->status ? nd->status : "not run";
			rn[nrn].reason = nd->reason;
			rn[nrn].attempts = nd->attempts;
			rn[nrn].started_at = nd->first_start;
			rn[nrn].wall_ms = nd->wall_ms;
			rn[nrn].cpu_ms = nd->cpu_ms;
			rn[nrn].max_rss_kb = nd->rss_kb;
			rn[nrn].changed = nd->changed;
			rn[nrn].outputs = nd->outputs;
			rn[nrn].secrets = nd->secrets;
			rn[nrn].log = op_buf_str(&nd->log);
			rn[nrn].failed = nd->st == N_FAILED || nd->st == N_CANCELLED;
			rn[nrn].skipped = nd->st == N_SKIPPED;
			nrn++;
		}
		if (orchd_report_write_all(s.run_id, p->name, verb_action_name(o->verb), rc,
					   s.run_started, unix_ms(), rn, nrn,
					   orchd_console_mask(s.con), o->report_path, o->junit_path,
					   s.run_dir) < 0 &&
		    rc == ORCHD_EXIT_OK)
			rc = ORCHD_EXIT_SYSTEM;
		free(rn);
	}
	orchd_supervisor_free(s.sup);
out:
	if (s.eng) {
		if (locked && orchd_engine_unlock(s.eng, err, sizeof(err)) < 0)
			error("%s", err);
		orchd_engine_close(s.eng);
	}
	for (size_t i = 0; i < s.nn; i++) {
		struct node *nd = &s.n[i];

		free(nd->stack);
		free(nd->rdeps);
		orchd_stack_record_release(&nd->prev);
		json_object_put(nd->outputs);
		json_object_put(nd->secrets);
		json_object_put(nd->config);
		json_object_put(nd->errors);
		free(nd->inputs_hash);
		op_buf_release(&nd->log);
		op_buf_release(&nd->group);
	}
	free(s.n);
	free(s.state_dir);
	free(s.run_id);
	free(s.run_dir);
	free(s.work_dir);
	free(s.pipeline_dir);
	orchd_console_free(s.con);
	return rc;
}

/* ---------------------------------------------------------------------------
 * status, outputs, history
 * ------------------------------------------------------------------------- */

static const char *value_text(json_object *v)
{
	if (!v)
		return "null";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
}

static int show_outputs(struct sched *s, size_t only, int json, int show_secrets)
{
	json_object *all = json_object_new_object();
	int rc = ORCHD_EXIT_OK;

	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];
		json_object *mine;

		if ((only != (size_t)-1 && i != only) || !nd->prev_found)
			continue;
		mine = json_object_new_object();
		json_object_object_foreach(nd->prev.outputs, k, o)
		{
			json_object *v = NULL, *sec = NULL;
			int secret = json_object_object_get_ex(o, "secret", &sec) &&
				     json_object_get_boolean(sec);

			json_object_object_get_ex(o, "value", &v);
			if (secret && show_secrets &&
			    json_object_object_get_ex(o, "masked", NULL)) {
				error("%s: output '%s' is secret and no passphrase is set "
				      "(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)",
				      nd->in->id, k);
				rc = ORCHD_EXIT_SYSTEM;
				continue;
			}
			if (secret && !show_secrets)
				json_object_object_add(mine, k, json_object_new_string("***"));
			else
				json_object_object_add(mine, k, v ? json_object_get(v) : NULL);
		}
		if (!json) {
			json_object_object_foreach(mine, key, val)
			{
				printf("%s.%s = %s\n", nd->in->id, key, value_text(val));
			}
		}
		json_object_object_add(all, nd->in->id, mine);
	}
	if (json)
		printf("%s\n",
		       json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(all);
	return rc;
}

static void fmt_time(char *buf, size_t n, long long ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms) {
		snprintf(buf, n, "-");
		return;
	}
	gmtime_r(&t, &tm);
	if (!strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, n, "-");
}

/* Is the node stale?  Its resolved config or its consumed upstream outputs
 * differ from what its last successful apply used. */
static const char *stale_reason(struct sched *s, struct node *nd)
{
	struct op_buf why = OP_BUF_INIT, txt = OP_BUF_INIT;
	char hex[ORCHD_SHA256_HEXSZ];
	const char *r = NULL;

	if (!nd->prev_found || !nd->prev.config_hash)
		return NULL;
	if (resolve_node_config(s, nd, 1, &why) < 0) {
		op_buf_release(&why);
		return "upstream outputs missing";
	}
	canonical_json(&txt, nd->config);
	orchd_sha256_hex(op_buf_str(&txt), txt.len, hex);
	if (nd->prev.inputs_hash && nd->inputs_hash &&
	    strcmp(nd->prev.inputs_hash, nd->inputs_hash))
		r = "upstream outputs changed";
	else if (strcmp(nd->prev.config_hash, hex))
		r = "config changed";
	op_buf_release(&txt);
	op_buf_release(&why);
	return r;
}

static int show_status(struct sched *s, size_t only, int json)
{
	json_object *arr = json_object_new_array();

	if (!json)
		printf("%-24s %-28s %-8s %-10s %-20s %s\n", "INSTANCE", "STACK", "ACTION", "STATUS",
		       "ENDED", "STALE");
	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];
		const struct orchd_last_result *l = &nd->prev.last;
		const char *stale;
		char when[40];

		if (only != (size_t)-1 && i != only)
			continue;
		stale = stale_reason(s, nd);
		fmt_time(when, sizeof(when), nd->prev_found ? l->ended_at : 0);
		if (json) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "id", json_object_new_string(nd->in->id));
			json_object_object_add(o, "stack", json_object_new_string(nd->stack));
			json_object_object_add(o, "applied",
					       json_object_new_boolean(nd->prev_found));
			json_object_object_add(o, "action",
					       nd->prev_found && l->action
						       ? json_object_new_string(l->action)
						       : NULL);
			json_object_object_add(o, "status",
					       nd->prev_found && l->status
						       ? json_object_new_string(l->status)
						       : NULL);
			json_object_object_add(o, "ended_at",
					       nd->prev_found ? json_object_new_string(when)
							      : NULL);
			json_object_object_add(o, "run_id",
					       nd->prev_found && l->run_id
						       ? json_object_new_string(l->run_id)
						       : NULL);
			json_object_object_add(o, "stale", json_object_new_boolean(stale != NULL));
			json_object_object_add(o, "stale_reason",
					       stale ? json_object_new_string(stale) : NULL);
			json_object_array_add(arr, o);
			continue;
		}
		if (!nd->prev_found) {
			printf("%-24s %-28s %-8s %-10s %-20s %s\n", nd->in->id, nd->stack, "-",
			       "never applied", "-", "-");
			continue;
		}
		printf("%-24s %-28s %-8s %-10s %-20s %s%s%s\n", nd->in->id, nd->stack,
		       l->action ? l->action : "-", l->status ? l->status : "-", when,
		       stale ? "yes (" : "no", stale ? stale : "", stale ? ")" : "");
	}
	if (json)
		printf("%s\n",
		       json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(arr);
	return ORCHD_EXIT_OK;
}

static int show_history(struct sched *s, size_t only, int json, long limit)
{
	json_object *all = json_object_new_object();
	char err[1024];
	int rc = ORCHD_EXIT_OK;

	for (size_t i = 0; i < s->nn; i++) {
		struct node *nd = &s->n[i];
		struct orchd_history_entry *h = NULL;
		size_t n = 0, from = 0;
		json_object *arr;

		if (only != (size_t)-1 && i != only)
			continue;
		if (orchd_engine_history_read(s->eng, nd->stack, &h, &n, err, sizeof(err)) < 0) {
			error("%s", err);
			rc = ORCHD_EXIT_SYSTEM;
			continue;
		}
		if (limit > 0 && n > (size_t)limit)
			from = n - (size_t)limit;
		arr = json_object_new_array();
		for (size_t k = from; k < n; k++) {
			char start[40], end[40];

			fmt_time(start, sizeof(start), h[k].started_at);
			fmt_time(end, sizeof(end), h[k].ended_at);
			if (json) {
				json_object *o = json_object_new_object();

				json_object_object_add(
					o, "run_id",
					json_object_new_string(h[k].run_id ? h[k].run_id : ""));
				json_object_object_add(
					o, "action",
					json_object_new_string(h[k].action ? h[k].action : ""));
				json_object_object_add(
					o, "status",
					json_object_new_string(h[k].status ? h[k].status : ""));
				json_object_object_add(o, "started_at",
						       json_object_new_string(start));
				json_object_object_add(o, "ended_at", json_object_new_string(end));
				json_object_object_add(o, "attempts",
						       json_object_new_int(h[k].attempts));
				json_object_array_add(arr, o);
			} else {
				printf("%-24s %s  %-8s %-10s %s  attempts %d\n", nd->in->id,
				       h[k].run_id ? h[k].run_id : "-",
				       h[k].action ? h[k].action : "-",
				       h[k].status ? h[k].status : "-", start, h[k].attempts);
			}
		}
		json_object_object_add(all, nd->in->id, arr);
		orchd_history_free(h, n);
	}
	if (json)
		printf("%s\n",
		       json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(all);
	return rc;
}

int orchd_show(struct orchd_pipeline *p, enum orchd_show what, const char *instance,
	       const char *state_dir, int json, int show_secrets, long limit)
{
	struct sched s = {0};
	struct orchd_run_opts o = ORCHD_RUN_OPTS_INIT;
	char err[1024];
	size_t only = (size_t)-1;
	int rc = ORCHD_EXIT_OK;

	s.p = p;
	s.o = &o;
	s.nn = p->ninst;
	s.n = xcalloc(s.nn ? s.nn : 1, sizeof(*s.n));
	s.con = orchd_console_new(NULL);
	if (!s.con)
		die("out of memory");
	if (instance) {
		s.p = p;
		only = find_or_complain(&s, instance,
					what == ORCHD_SHOW_STATUS    ? "status"
					: what == ORCHD_SHOW_OUTPUTS ? "outputs"
								     : "history");
		if (only == (size_t)-1) {
			rc = ORCHD_EXIT_USAGE;
			goto out;
		}
	}
	for (size_t i = 0; i < s.nn; i++) {
		s.n[i].in = &p->inst[i];
		s.n[i].stack = orchd_instance_stack(p, s.n[i].in);
		orchd_stack_record_init(&s.n[i].prev);
		op_buf_init(&s.n[i].log, 1 << 20);
	}
	s.state_dir = orchd_state_dir(p, state_dir);
	if (orchd_state_open(p, s.state_dir, &s.eng, err, sizeof(err)) < 0 ||
	    load_previous(&s) < 0) {
		if (!s.eng)
			error("%s", err);
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	if (what == ORCHD_SHOW_OUTPUTS)
		rc = show_outputs(&s, only, json, show_secrets);
	else if (what == ORCHD_SHOW_STATUS)
		rc = show_status(&s, only, json);
	else
		rc = show_history(&s, only, json, limit);
	if (fflush(stdout) != 0 && rc == ORCHD_EXIT_OK)
		rc = error("cannot write to stdout: %s", strerror(errno)) ? ORCHD_EXIT_SYSTEM : 0;
out:
	if (s.eng)
		orchd_engine_close(s.eng);
	for (size_t i = 0; i < s.nn; i++) {
		free(s.n[i].stack);
		orchd_stack_record_release(&s.n[i].prev);
		json_object_put(s.n[i].config);
		free(s.n[i].inputs_hash);
		op_buf_release(&s.n[i].log);
	}
	free(s.n);
	free(s.state_dir);
	orchd_console_free(s.con);
	return rc;
}
