/*
 * core/inspect: status, outputs, history (see inspect.h).
 */
#include "core/inspect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/graph.h"
#include "core/refs.h"
#include "core/state.h"
#include "interfaces/engine.h"
#include "util.h"

/* One instance as the state has it. */
struct stored {
	char *stack;
	struct orchd_stack_record rec;
	int found;
	struct orchd_upstream up; /* its stored outputs, for its consumers */
};

struct inspect {
	struct orchd_pipeline *p;
	struct orchd_engine *eng;
	struct stored *s;
	size_t only; /* (size_t)-1: every instance */
};

static const struct orchd_upstream *upstream_of(void *arg, size_t i)
{
	struct inspect *in = arg;

	return &in->s[i].up;
}

static void json_print(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
}

static const char *value_text(json_object *v)
{
	if (!v)
		return "null";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
}

/*
 * Print text for a terminal: an output value is the extension's, and must
 * not drive the terminal (escape sequences, a title, a clear screen).
 * Control characters (C0, DEL, and C1 as UTF-8) are printed as \n, \r, \t,
 * \e or \xNN / \u00NN; bytes that are not UTF-8 as \xNN.
 */
static void print_escaped(const char *t)
{
	const unsigned char *p = (const unsigned char *)t;
	size_t left = strlen(t);

	while (left) {
		unsigned char c = *p;
		size_t n = orchd_utf8_len(p, left);

		if (c == '\n' || c == '\r' || c == '\t' || c == 0x1b)
			printf("\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : 'e');
		else if (!n || c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else if (n == 2 && c == 0xc2 && p[1] < 0xa0)
			printf("\\u%04x", p[1]); /* C1: U+0080..U+009F */
		else
			fwrite(p, 1, n, stdout);
		if (!n || c < 0x80)
			n = 1;
		p += n;
		left -= n;
	}
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

static int skip(const struct inspect *in, size_t i)
{
	return in->only != (size_t)-1 && i != in->only;
}

/* --- outputs -------------------------------------------------------------- */

static int show_outputs(struct inspect *in, int json, int show_secrets)
{
	json_object *all = json_object_new_object();
	int rc = ORCHD_EXIT_OK;

	for (size_t i = 0; i < in->p->ninst; i++) {
		const char *id = in->p->inst[i].id;
		json_object *mine;

		if (skip(in, i) || !in->s[i].found)
			continue;
		mine = json_object_new_object();
		json_object_object_foreach(in->s[i].rec.outputs, k, o)
		{
			json_object *v = NULL, *sec = NULL;
			int secret = json_object_object_get_ex(o, "secret", &sec) &&
				     json_object_get_boolean(sec);

			json_object_object_get_ex(o, "value", &v);
			if (secret && show_secrets &&
			    json_object_object_get_ex(o, "masked", NULL)) {
				error("%s: output '%s' is secret and no passphrase is set "
				      "(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)",
				      id, k);
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
				printf("%s.", id);
				print_escaped(key);
				fputs(" = ", stdout);
				print_escaped(value_text(val));
				putchar('\n');
			}
		}
		json_object_object_add(all, id, mine);
	}
	if (json)
		json_print(all);
	json_object_put(all);
	return rc;
}

/* --- status ---------------------------------------------------------------- */

/* Why instance i itself is stale, or NULL. */
static const char *stale_self(struct inspect *in, size_t i)
{
	struct orchd_resolver r = {in->p, upstream_of, in, 0, 1};
	struct orchd_resolved now = {0};
	const char *why;

	if (!in->s[i].found)
		return NULL;
	orchd_refs_resolve(&r, i, &now);
	why = orchd_refs_stale(&in->s[i].rec, &now);
	orchd_resolved_release(&now);
	return why;
}

/* Why each instance is stale (malloc'ed), or NULL: the rule of --only-stale.
 * Staleness is transitive: downstream of a stale instance, "upstream
 * TYPE.NAME is stale". */
static char **stale_all(struct inspect *in)
{
	struct orchd_graph g = ORCHD_GRAPH_INIT;
	size_t n = in->p->ninst;
	size_t *root = xcalloc(n ? n : 1, sizeof(*root));
	const char **self = xcalloc(n ? n : 1, sizeof(*self));
	char **why = xcalloc(n ? n : 1, sizeof(*why));

	for (size_t i = 0; i < n; i++) {
		self[i] = stale_self(in, i);
		root[i] = self[i] ? i : ORCHD_GRAPH_NONE;
	}
	orchd_graph_build(&g, in->p);
	orchd_graph_spread(&g, root);
	for (size_t i = 0; i < n; i++) {
		if (self[i])
			why[i] = xstrdup(self[i]);
		else if (root[i] != ORCHD_GRAPH_NONE && in->s[i].found)
			why[i] = xasprintf("upstream %s is stale", in->p->inst[root[i]].id);
	}
	orchd_graph_release(&g);
	free(root);
	free(self);
	return why;
}

static json_object *str_or_null(int cond, const char *s)
{
	return cond && s ? json_object_new_string(s) : NULL;
}

static int show_status(struct inspect *in, int json)
{
	json_object *arr = json_object_new_array();
	char **whys = stale_all(in);

	if (!json)
		printf("%-24s %-28s %-8s %-10s %-20s %s\n", "INSTANCE", "STACK", "ACTION", "STATUS",
		       "ENDED", "STALE");
	for (size_t i = 0; i < in->p->ninst; i++) {
		const struct stored *st = &in->s[i];
		const struct orchd_last_result *l = &st->rec.last;
		const char *id = in->p->inst[i].id, *why;
		char when[40];

		if (skip(in, i))
			continue;
		why = whys[i];
		fmt_time(when, sizeof(when), st->found ? l->ended_at : 0);
		if (json) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "id", json_object_new_string(id));
			json_object_object_add(o, "stack", json_object_new_string(st->stack));
			json_object_object_add(o, "applied", json_object_new_boolean(st->found));
			json_object_object_add(o, "action", str_or_null(st->found, l->action));
			json_object_object_add(o, "status", str_or_null(st->found, l->status));
			json_object_object_add(o, "ended_at", str_or_null(st->found, when));
			json_object_object_add(o, "run_id", str_or_null(st->found, l->run_id));
			json_object_object_add(o, "stale", json_object_new_boolean(why != NULL));
			json_object_object_add(o, "stale_reason", str_or_null(1, why));
			json_object_array_add(arr, o);
			continue;
		}
		if (!st->found) {
			printf("%-24s %-28s %-8s %-10s %-20s %s\n", id, st->stack, "-",
			       "never applied", "-", "-");
			continue;
		}
		printf("%-24s %-28s %-8s %-10s %-20s %s%s%s\n", id, st->stack,
		       l->action ? l->action : "-", l->status ? l->status : "-", when,
		       why ? "yes (" : "no", why ? why : "", why ? ")" : "");
	}
	if (json)
		json_print(arr);
	json_object_put(arr);
	for (size_t i = 0; i < in->p->ninst; i++)
		free(whys[i]);
	free(whys);
	return ORCHD_EXIT_OK;
}

/* --- history --------------------------------------------------------------- */

static json_object *history_json(const struct orchd_history_entry *h)
{
	json_object *o = json_object_new_object();
	char start[40], end[40];

	fmt_time(start, sizeof(start), h->started_at);
	fmt_time(end, sizeof(end), h->ended_at);
	json_object_object_add(o, "run_id", json_object_new_string(h->run_id ? h->run_id : ""));
	json_object_object_add(o, "action", json_object_new_string(h->action ? h->action : ""));
	json_object_object_add(o, "status", json_object_new_string(h->status ? h->status : ""));
	json_object_object_add(o, "started_at", json_object_new_string(start));
	json_object_object_add(o, "ended_at", json_object_new_string(end));
	json_object_object_add(o, "attempts", json_object_new_int(h->attempts));
	json_object_object_add(o, "duration_ms",
			       json_object_new_int64(h->ended_at > h->started_at && h->started_at
							     ? h->ended_at - h->started_at
							     : 0));
	orchd_action_meta_to_json(&h->meta, o);
	return o;
}

static int show_history(struct inspect *in, int json, long limit)
{
	json_object *all = json_object_new_object();
	char err[1024];
	int rc = ORCHD_EXIT_OK;

	for (size_t i = 0; i < in->p->ninst; i++) {
		const char *id = in->p->inst[i].id;
		struct orchd_history_entry *h = NULL;
		size_t n = 0, from = 0;
		json_object *arr;

		if (skip(in, i))
			continue;
		if (orchd_engine_history_read(in->eng, in->s[i].stack, &h, &n, err, sizeof(err)) <
		    0) {
			error("%s", err);
			rc = ORCHD_EXIT_SYSTEM;
			continue;
		}
		if (limit > 0 && n > (size_t)limit)
			from = n - (size_t)limit;
		arr = json_object_new_array();
		for (size_t k = from; k < n; k++) {
			char start[40];

			if (json) {
				json_object_array_add(arr, history_json(&h[k]));
				continue;
			}
			fmt_time(start, sizeof(start), h[k].started_at);
			printf("%-24s %s  %-8s %-10s %s  attempts %d%s%s\n", id,
			       h[k].run_id ? h[k].run_id : "-", h[k].action ? h[k].action : "-",
			       h[k].status ? h[k].status : "-", start, h[k].attempts,
			       h[k].meta.ci.build_tag ? "  build " : "",
			       h[k].meta.ci.build_tag ? h[k].meta.ci.build_tag : "");
		}
		json_object_object_add(all, id, arr);
		orchd_history_free(h, n);
	}
	if (json)
		json_print(all);
	json_object_put(all);
	return rc;
}

/* --- the command ----------------------------------------------------------- */

static int load(struct inspect *in)
{
	size_t n = in->p->ninst;
	const char **stacks = xcalloc(n ? n : 1, sizeof(*stacks));
	struct orchd_stack_record **recs = xcalloc(n ? n : 1, sizeof(*recs));
	int *rc = xcalloc(n ? n : 1, sizeof(*rc)), ret = 0;
	char err[1024];

	for (size_t i = 0; i < n; i++) {
		stacks[i] = in->s[i].stack;
		recs[i] = &in->s[i].rec;
	}
	/* side by side when the engine can (pulumi: a CLI call each) */
	if (n && orchd_engine_read_many(in->eng, n, stacks, recs, rc, err, sizeof(err)) < 0) {
		ret = error("%s", err);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct stored *st = &in->s[i];

		st->found = rc[i] == 0;
		if (st->found)
			st->up.stored = st->rec.outputs;
	}
out:
	free(stacks);
	free(recs);
	free(rc);
	return ret;
}

int orchd_show(struct orchd_pipeline *p, enum orchd_show what, const char *instance,
	       const char *state_dir, int json, int show_secrets, long limit)
{
	static const char *const names[] = {"status", "outputs", "history"};
	struct inspect in = {p, NULL, NULL, (size_t)-1};
	char err[1024], *dir = NULL;
	int rc = ORCHD_EXIT_OK, amb = 0;

	if (instance) {
		in.only = orchd_pipeline_find(p, instance, &amb);
		if (in.only == (size_t)-1) {
			error("%s %s: %s", names[what], instance,
			      amb ? "ambiguous instance name, use TYPE.NAME" : "no such instance");
			return ORCHD_EXIT_USAGE;
		}
	}
	in.s = xcalloc(p->ninst ? p->ninst : 1, sizeof(*in.s));
	for (size_t i = 0; i < p->ninst; i++) {
		in.s[i].stack = orchd_instance_stack(p, &p->inst[i]);
		orchd_stack_record_init(&in.s[i].rec);
	}
	dir = orchd_state_dir(p, state_dir);
	if (orchd_state_open(p, dir, &in.eng, err, sizeof(err)) < 0) {
		error("%s", err);
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	if (load(&in) < 0) {
		rc = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	if (what == ORCHD_SHOW_OUTPUTS)
		rc = show_outputs(&in, json, show_secrets);
	else if (what == ORCHD_SHOW_STATUS)
		rc = show_status(&in, json);
	else
		rc = show_history(&in, json, limit);
	if (fflush(stdout) != 0 && rc == ORCHD_EXIT_OK) {
		error("cannot write to stdout: %s", strerror(errno));
		rc = ORCHD_EXIT_SYSTEM;
	}
out:
	if (in.eng)
		orchd_engine_close(in.eng);
	for (size_t i = 0; i < p->ninst; i++) {
		free(in.s[i].stack);
		orchd_stack_record_release(&in.s[i].rec);
	}
	free(in.s);
	free(dir);
	return rc;
}
