/*
 * core/bootstrap: YAML pipeline file -> struct orchd_pipeline (see bootstrap.h).
 *
 * Stage 1 (parse): libyaml events build a small tree of ynodes with
 * positions.  Aliases share the anchored node (the tree is a DAG), so an
 * alias costs nothing in memory; what it would cost if expanded (the
 * anchored subtree's size) is charged to an alias budget, so a billion
 * laughs file fails at its first big alias.  Merge keys are applied when a
 * mapping ends, so every mapping of the tree is already flat and free of
 * duplicate keys.  All nodes live in an arena freed at once.
 *
 * Stage 2 (build): walk the tree into the model, reporting each problem
 * with the key path and carrying on, so that one run reports them all.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "core/bootstrap.h"
#include "core/graph.h"
#include "core/refs.h"
#include "core/ytree.h"
#include "core/compose.h"
#include "crypto.h"
#include "fetch.h"
#include "orchd_protocol.h"
#include "util.h"

/* ---- diagnostics -------------------------------------------------------- */

void orchd_diags_init(struct orchd_diags *d)
{
	memset(d, 0, sizeof(*d));
	d->cap_limit = ORCHD_DIAG_CAP;
}

int orchd_diag_add(struct orchd_diags *d, const char *file, unsigned line, unsigned column,
		   const char *fmt, ...)
{
	struct orchd_diag *g;
	va_list ap;
	char *msg;

	if (d->cap_limit && d->n >= d->cap_limit) {
		d->truncated = 1;
		return -1;
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	if (strlen(msg) > ORCHD_DIAG_MAX_MSG) {
		/* A huge key or value quoted back: cut it, on a character
		 * boundary, so that one error stays one readable line. */
		size_t cut = ORCHD_DIAG_MAX_MSG - 3;

		while (cut && ((unsigned char)msg[cut] & 0xc0) == 0x80)
			cut--;
		memcpy(msg + cut, "...", 4);
	}
	ALLOC_GROW(d->v, d->n + 1, d->alloc);
	g = &d->v[d->n++];
	g->file = xstrdup(file ? file : "-");
	g->line = line;
	g->column = column;
	g->msg = msg;
	return -1;
}

void orchd_diags_print(const struct orchd_diags *d, FILE *fp)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		const struct orchd_diag *g = &d->v[i];

		if (g->line)
			fprintf(fp, "%s:%u:%u: error: %s\n", g->file, g->line, g->column, g->msg);
		else
			fprintf(fp, "%s: error: %s\n", g->file, g->msg);
	}
	if (d->truncated && d->n)
		fprintf(fp, "%s: error: too many errors, stopping after %zu\n", d->v[d->n - 1].file,
			d->n);
}

void orchd_diags_release(struct orchd_diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	d->v = NULL;
	d->n = d->alloc = 0;
	d->truncated = 0;
}

/* ---- small helpers ------------------------------------------------------ */

unsigned orchd_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	unsigned row[65];

	if (la > 64 || lb > 64)
		return 255;
	for (j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (i = 1; i <= la; i++) {
		unsigned diag = row[0];

		row[0] = (unsigned)i;
		for (j = 1; j <= lb; j++) {
			unsigned up = row[j], best;

			best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

const char *orchd_closest(const char *s, const char *const *candidates, size_t n)
{
	size_t len = strlen(s), i;
	unsigned limit = len <= 3 ? 1 : len <= 6 ? 2 : 3, best = 255;
	const char *found = NULL;

	for (i = 0; i < n; i++) {
		unsigned dist = orchd_edit_distance(s, candidates[i]);

		if (dist < best) {
			best = dist;
			found = candidates[i];
		}
	}
	return best <= limit ? found : NULL;
}

int orchd_parse_size(const char *s, int64_t *bytes)
{
	static const char units[] = "KMGT";
	int64_t v = 0;
	const char *u;
	int shift = 0;

	if (!s || *s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (1LL << 50))
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (*s) {
		u = strchr(units, *s);
		if (!u || s[1])
			return -1;
		shift = 10 * (int)(u - units + 1);
	}
	if (v > ((1LL << 50) >> shift))
		return -1;
	*bytes = v << shift;
	return 0;
}

int orchd_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"h", 3600000}, {"ms", 1}, {"m", 60000}, {"s", 1000}};
	/* Rank of each unit in the order it must appear: h, m, s, ms. */
	static const int rank[] = {0, 3, 1, 2};
	int64_t total = 0;
	int last = -1, any = 0;
	const char *p = s;

	if (!*p)
		return -1;
	if (strspn(p, "0123456789") == strlen(p)) {
		if (strlen(p) > 9)
			return -1;
		total = strtoll(p, NULL, 10) * 1000;
		if (total > ORCHD_DURATION_MAX_MS)
			return -1;
		*ms = total;
		return 0;
	}
	while (*p) {
		int64_t v = 0;
		size_t nd = 0, u;

		while (p[nd] >= '0' && p[nd] <= '9') {
			if (nd >= 9)
				return -1;
			v = v * 10 + (p[nd] - '0');
			nd++;
		}
		if (!nd)
			return -1;
		p += nd;
		for (u = 0; u < ARRAY_SIZE(units); u++)
			if (!strncmp(p, units[u].unit, strlen(units[u].unit)))
				break;
		if (u == ARRAY_SIZE(units) || rank[u] <= last)
			return -1;
		last = rank[u];
		p += strlen(units[u].unit);
		total += v * units[u].ms;
		any = 1;
	}
	if (!any || total > ORCHD_DURATION_MAX_MS)
		return -1;
	*ms = total;
	return 0;
}

static int type_name_ok(const char *s)
{
	size_t i;

	if (!orchd_name_is_safe(s))
		return 0;
	for (i = 0; s[i]; i++)
		if (s[i] == '.')
			return 0;
	return 1;
}

/* One of the variables that carry orchd's passphrase (never passed). */
static int passphrase_var(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(orchd_passphrase_vars); i++)
		if (!strcmp(s, orchd_passphrase_vars[i]))
			return 1;
	return 0;
}

static int env_name_ok(const char *s)
{
	size_t i;

	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return 0;
	for (i = 1; s[i]; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return i <= 255;
}

/* ---- stage 2: building the model ---------------------------------------- */

struct build {
	const char *file;
	const struct yparse *y; /* its files name the nodes' */
	struct orchd_diags *d;
	struct orchd_pipeline *p;
	/* The key path, as a stack of components rendered only when a
	 * message or a reference needs it (formatting it for every key
	 * would cost more than the parse). */
	struct pathel {
		const char *key; /* NULL: an index */
		size_t index;
	} * pv;
	size_t pn, palloc;
	struct op_buf path;	    /* scratch for path_str() */
	struct orchd_instance *cur; /* references are recorded into it */
	size_t cfg_root;	    /* pv[cfg_root]: the first key of cur's config blob */
	int in_defaults;	    /* building core.defaults: no references there */
	const char *norefs;	    /* building a value where references are errors */
	struct orchd_instance inst; /* the instance being built */
	size_t refs_alloc;	    /* capacity of cur->refs */
	size_t sites_alloc;	    /* capacity of cur->sites */
	size_t inst_alloc;	    /* capacity of p->inst */
	size_t types_alloc;
	struct op_buf text; /* scratch of to_json() */
	struct op_buf cfg;  /* the config blob of the instance being built */
	int failed;
};

static struct orchd_pos npos(const struct ynode *n)
{
	struct orchd_pos pos;

	pos.line = n->line;
	pos.column = n->col;
	pos.file = n->file;
	return pos;
}

static const char *path_str(struct build *b);
static int berr(struct build *b, const struct ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int berr(struct build *b, const struct ynode *n, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	orchd_diag_add(b->d, n ? b->y->files[n->file].path : b->file, n ? n->line : 0,
		       n ? n->col : 0, "%s: %s", path_str(b), msg);
	free(msg);
	b->failed = 1;
	return -1;
}

static size_t path_key(struct build *b, const char *key)
{
	ALLOC_GROW(b->pv, b->pn + 1, b->palloc);
	b->pv[b->pn].key = key;
	return b->pn++;
}

static size_t path_index(struct build *b, size_t i)
{
	ALLOC_GROW(b->pv, b->pn + 1, b->palloc);
	b->pv[b->pn].key = NULL;
	b->pv[b->pn].index = i;
	return b->pn++;
}

static void path_pop(struct build *b, size_t mark)
{
	b->pn = mark;
}

static const char *path_str(struct build *b)
{
	size_t i;

	op_buf_reset(&b->path);
	for (i = 0; i < b->pn; i++) {
		if (b->pv[i].key)
			op_buf_addf(&b->path, "%s%.80s", i ? "." : "", b->pv[i].key);
		else
			op_buf_addf(&b->path, "[%zu]", b->pv[i].index);
	}
	return orchd_buf_str(&b->path);
}

static int get_string(struct build *b, const struct ynode *n, char **out)
{
	int64_t iv;
	double dv;

	if (n->kind != Y_SCALAR || ytree_resolve(n, &iv, &dv) != S_STR)
		return berr(b, n, "expected a string, got %s", ytree_kind_name(n));
	if (strlen(n->s) != n->len)
		return berr(b, n, "string contains a NUL character");
	*out = xstrdup(n->s);
	return 0;
}

static int get_int(struct build *b, const struct ynode *n, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t iv;
	double dv;

	if (n->kind == Y_SCALAR && ytree_resolve(n, &iv, &dv) == S_BIGINT)
		return berr(b, n, "must be between %lld and %lld, got %.40s", (long long)lo,
			    (long long)hi, n->s);
	if (n->kind != Y_SCALAR || ytree_resolve(n, &iv, &dv) != S_INT)
		return berr(b, n, "expected an integer, got %s", ytree_kind_name(n));
	if (iv < lo || iv > hi)
		return berr(b, n, "must be between %lld and %lld, got %lld", (long long)lo,
			    (long long)hi, (long long)iv);
	*out = iv;
	return 0;
}

static int get_bool(struct build *b, const struct ynode *n, int *out)
{
	int64_t iv;
	double dv;

	if (n->kind != Y_SCALAR || ytree_resolve(n, &iv, &dv) != S_BOOL)
		return berr(b, n, "expected a boolean (true or false), got %s", ytree_kind_name(n));
	*out = (int)iv;
	return 0;
}

static int get_duration(struct build *b, const struct ynode *n, int64_t *out)
{
	int64_t iv;
	double dv;
	enum stype t;

	if (n->kind != Y_SCALAR)
		return berr(b, n, "expected a duration, got %s", ytree_kind_name(n));
	t = ytree_resolve(n, &iv, &dv);
	if ((t == S_INT || t == S_STR) && strlen(n->s) == n->len &&
	    !orchd_parse_duration(n->s, out))
		return 0;
	return berr(b, n,
		    "invalid duration '%.40s' (expected seconds, or a string like \"90s\", \"5m\", "
		    "\"1h30m\", \"250ms\"; at most 366 days)",
		    n->s);
}

/* A size: an integer number of bytes, or a string NUMBER[K|M|G|T] (powers
 * of 1024), e.g. "256M"; at most 1 PiB. */
static int get_size(struct build *b, const struct ynode *n, int64_t *out)
{
	int64_t iv;
	double dv;
	enum stype t;

	if (n->kind == Y_SCALAR) {
		t = ytree_resolve(n, &iv, &dv);
		if (t == S_INT && iv >= 0 && iv <= (1LL << 50)) {
			*out = iv;
			return 0;
		}
		if (t == S_STR && strlen(n->s) == n->len && !orchd_parse_size(n->s, out))
			return 0;
	}
	return berr(b, n,
		    "invalid size '%.40s' (expected bytes, or a string like \"512K\", \"256M\", "
		    "\"2G\")",
		    n->kind == Y_SCALAR ? n->s : ytree_kind_name(n));
}

static int expect_kind(struct build *b, const struct ynode *n, enum ykind kind)
{
	if (n->kind == kind)
		return 0;
	return berr(b, n, "expected %s, got %s", kind == Y_MAP ? "a mapping" : "a sequence",
		    ytree_kind_name(n));
}

static int unknown_key(struct build *b, const struct ynode *k, const char *const *keys, size_t n)
{
	const char *near = orchd_closest(k->s, keys, n);
	struct op_buf all = OP_BUF_INIT;
	size_t i;

	if (near)
		return berr(b, k, "unknown key '%s' (did you mean '%s'?)", k->s, near);
	for (i = 0; i < n; i++)
		op_buf_addf(&all, "%s%s", i ? ", " : "", keys[i]);
	berr(b, k, "unknown key '%s' (valid keys: %s)", k->s, orchd_buf_str(&all));
	op_buf_release(&all);
	return -1;
}

static size_t key_index(const char *key, const char *const *keys, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(key, keys[i]))
			return i;
	return n;
}

static void emit_string_with_refs(struct build *b, const struct ynode *n, struct op_buf *sb);

/* A reference where none is resolved (a mapping key, core.env,
 * mock_outputs) would reach the extension as literal text: an error.  1
 * when n holds one (reported). */
static int ref_not_here(struct build *b, const struct ynode *n, const char *where)
{
	struct orchd_ref_parsed parsed;
	char err[256];
	int bad;

	if (n->kind != Y_SCALAR || !memmem(n->s, n->len, "${{", 3))
		return 0;
	if (orchd_ref_parse(n->s, n->len, &parsed, err, sizeof(err)) < 0) {
		orchd_ref_parsed_release(&parsed);
		berr(b, n, "%s", err);
		return 1;
	}
	bad = parsed.nrefs + parsed.nloads > 0;
	orchd_ref_parsed_release(&parsed);
	if (bad)
		berr(b, n, "references (${{ }}) are not supported in %s", where);
	return bad;
}

/*
 * A node as JSON text appended to sb, scanning strings for references when
 * b->cur: the one conversion of YAML values, so that an instance's config
 * blob is kept as text until its extension needs it (orchd_instance_config)
 * and every other value goes through the same rules (to_json).  A value in
 * error (reported) becomes null.
 */
static void emit(struct build *b, const struct ynode *n, struct op_buf *sb)
{
	size_t i, mark;
	int64_t iv;
	double dv;

	switch (n->kind) {
	case Y_SEQ:
		op_buf_addch(sb, '[');
		for (i = 0; i < n->n; i++) {
			if (i)
				op_buf_addch(sb, ',');
			mark = path_index(b, i);
			emit(b, n->items[i], sb);
			path_pop(b, mark);
		}
		op_buf_addch(sb, ']');
		return;
	case Y_MAP:
		op_buf_addch(sb, '{');
		for (i = 0; i < n->n; i++) {
			const struct ynode *k = n->pairs[i].key;

			if (i)
				op_buf_addch(sb, ',');
			ref_not_here(b, k, "mapping keys");
			mark = path_key(b, k->s);
			orchd_buf_json_str(sb, k->s, strlen(k->s));
			op_buf_addch(sb, ':');
			emit(b, n->pairs[i].val, sb);
			path_pop(b, mark);
		}
		op_buf_addch(sb, '}');
		return;
	default:
		break;
	}
	switch (ytree_resolve(n, &iv, &dv)) {
	case S_NULL:
		break;
	case S_BOOL:
		op_buf_addstr(sb, iv ? "true" : "false");
		return;
	case S_INT:
		op_buf_addf(sb, "%" PRId64, iv);
		return;
	case S_BIGINT:
		berr(b, n, "integer out of range: %.40s", n->s);
		break;
	case S_FLOAT:
		if (!isfinite(dv)) {
			berr(b, n, "infinite and NaN numbers are not supported");
			break;
		}
		{
			/* json-c's own text for the double, so that the value
			 * read back prints (and hashes) as it always did */
			json_object *d = json_object_new_double(dv);

			if (!d)
				die("out of memory");
			op_buf_addstr(sb,
				      json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
			json_object_put(d);
		}
		return;
	default:
		if (b->norefs && ref_not_here(b, n, b->norefs))
			break;
		if ((b->cur || b->in_defaults) && memmem(n->s, n->len, "${{", 3))
			emit_string_with_refs(b, n, sb);
		else
			orchd_buf_json_str(sb, n->s, n->len);
		return;
	}
	op_buf_addstr(sb, "null");
}

/* A json-c value for a node (NULL for null), through emit(). */
static json_object *to_json(struct build *b, const struct ynode *n)
{
	json_object *o;

	op_buf_reset(&b->text);
	emit(b, n, &b->text);
	o = orchd_json_from_text(orchd_buf_str(&b->text), b->text.len);
	return o;
}

/*
 * A string scalar holding "${{", through the one grammar (core/refs.h):
 * in an instance's config each reference is recorded (an edge, checked by
 * validate) and the string becomes a site, kept as written; a string with
 * only escapes is stored as the extension sees it.  core.defaults holds no
 * references.
 */
static void emit_string_with_refs(struct build *b, const struct ynode *n, struct op_buf *sb)
{
	struct orchd_ref_parsed parsed;
	struct orchd_instance *in = b->cur;
	struct orchd_ref_site *site;
	char err[256];
	size_t len;
	char *text;
	if (orchd_ref_parse(n->s, n->len, &parsed, err, sizeof(err)) < 0)
		berr(b, n, "%s", err);
	for (size_t k = 0; k < parsed.n && parsed.nloads; k++) {
		const struct orchd_ref_part *pp = &parsed.parts[k];

		/* core/compose replaced those it could */
		if (pp->ns == ORCHD_REF_PARAMS) {
			berr(b, n,
			     "'%s': parameters exist only in the config of a template "
			     "(core.templates)",
			     pp->text);
			break;
		}
		if (pp->ns) {
			berr(b, n, "'%s' cannot be resolved here (inside a substituted value)",
			     pp->text);
			break;
		}
	}
	if (parsed.nrefs && b->in_defaults) {
		berr(b, n, "references (${{ }}) are not supported in core.defaults");
	} else if (parsed.nrefs && in) {
		ALLOC_GROW(in->sites, in->nsites + 1, b->sites_alloc);
		site = &in->sites[in->nsites++];
		memset(site, 0, sizeof(*site));
		site->nloc = b->pn - b->cfg_root;
		site->loc = xcalloc(site->nloc, sizeof(*site->loc));
		for (size_t k = 0; k < site->nloc; k++) {
			const struct pathel *e = &b->pv[b->cfg_root + k];

			site->loc[k].key = e->key ? xstrdup(e->key) : NULL;
			site->loc[k].index = e->index;
		}
		site->nparts = parsed.n;
		site->parts = xcalloc(parsed.n, sizeof(*site->parts));
		for (size_t k = 0; k < parsed.n; k++) {
			struct orchd_ref_part *pp = &parsed.parts[k];
			struct orchd_site_part *sp = &site->parts[k];
			struct orchd_ref *r;

			sp->text = pp->text;
			sp->len = pp->len;
			pp->text = NULL;
			sp->ref = (size_t)-1;
			if (!pp->is_ref)
				continue;
			ALLOC_GROW(in->refs, in->nrefs + 1, b->refs_alloc);
			sp->ref = in->nrefs;
			r = &in->refs[in->nrefs++];
			memset(r, 0, sizeof(*r));
			r->target = pp->target;
			r->key = pp->key;
			pp->target = pp->key = NULL;
			r->path = xstrdup(path_str(b));
			r->pos = npos(n);
			r->target_index = (size_t)-1;
		}
	}
	if (parsed.nrefs || !parsed.has_escape) {
		orchd_buf_json_str(sb, n->s, n->len);
	} else {
		text = orchd_ref_parsed_text(&parsed, &len);
		orchd_buf_json_str(sb, text, len);
		free(text);
	}
	orchd_ref_parsed_release(&parsed);
}

/* A scalar's text as a json-c string, `$${{` escapes resolved. */
static json_object *unescaped(const struct ynode *n)
{
	struct orchd_ref_parsed parsed;
	json_object *o;
	char err[64], *text;
	size_t len;

	if (!memmem(n->s, n->len, "$${{", 4))
		return json_object_new_string_len(n->s, (int)n->len);
	orchd_ref_parse(n->s, n->len, &parsed, err, sizeof(err));
	text = orchd_ref_parsed_text(&parsed, &len);
	o = json_object_new_string_len(text, (int)len);
	free(text);
	orchd_ref_parsed_release(&parsed);
	return o;
}

static const char *const exec_keys[] = {"max_attempts",	 "timeout", "grace",
					"retry_backoff", "limits",  "handshake_timeout",
					"runs_on"};
static const char *const limit_keys[] = {"memory", "pids", "cpu_time", "open_files",
					 "output_bytes"};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* execution.runs_on: {LABEL: VALUE}, kept as "k=v,k=v" sorted by key. */
static void build_runs_on(struct build *b, const struct ynode *n, struct orchd_exec *e)
{
	char *pairs[64];
	size_t np = 0, len = 0;
	int bad = 0;

	if (expect_kind(b, n, Y_MAP))
		return;
	if (n->n > ARRAY_SIZE(pairs)) {
		berr(b, n, "at most %zu labels", ARRAY_SIZE(pairs));
		return;
	}
	for (size_t j = 0; j < n->n; j++) {
		const struct ynode *k = n->pairs[j].key, *v = n->pairs[j].val;

		if (!orchd_label_ok(k->s, strlen(k->s))) {
			berr(b, k, "label '%.64s' is not valid: " ORCHD_LABEL_RULE, k->s);
			bad = 1;
		} else if (v->kind != Y_SCALAR || !orchd_label_ok(v->s, v->len)) {
			berr(b, v, "the value of label '%s' must be " ORCHD_LABEL_RULE, k->s);
			bad = 1;
		} else {
			pairs[np] = xasprintf("%s=%s", k->s, v->s);
			len += strlen(pairs[np++]) + 1;
		}
	}
	if (!bad && len >= sizeof(e->runs_on))
		berr(b, n, "runs_on is too long (at most %zu characters in all)",
		     sizeof(e->runs_on) - 1);
	else if (!bad) {
		qsort(pairs, np, sizeof(*pairs), cmp_str);
		e->runs_on[0] = '\0';
		for (size_t j = 0; j < np; j++) {
			if (j)
				strcat(e->runs_on, ",");
			strcat(e->runs_on, pairs[j]);
		}
		e->set |= ORCHD_EXEC_RUNS_ON;
	}
	for (size_t j = 0; j < np; j++)
		free(pairs[j]);
}

/* execution.limits */
static void build_limits(struct build *b, const struct ynode *n, struct orchd_exec *e)
{
	if (expect_kind(b, n, Y_MAP))
		return;
	for (size_t j = 0; j < n->n; j++) {
		const struct ynode *k = n->pairs[j].key, *v = n->pairs[j].val;
		size_t m = path_key(b, k->s);
		struct orchd_limits *l = &e->limits;
		int64_t iv;

		switch (key_index(k->s, limit_keys, ARRAY_SIZE(limit_keys))) {
		case 0:
			if (!get_size(b, v, &l->memory))
				e->set |= ORCHD_EXEC_LIMIT_MEMORY;
			break;
		case 1:
			if (!get_int(b, v, 0, 1 << 22, &iv)) {
				l->pids = iv;
				e->set |= ORCHD_EXEC_LIMIT_PIDS;
			}
			break;
		case 2:
			if (!get_duration(b, v, &l->cpu_time_ms))
				e->set |= ORCHD_EXEC_LIMIT_CPU;
			break;
		case 3:
			if (!get_int(b, v, 0, 1 << 20, &iv)) {
				l->open_files = iv;
				e->set |= ORCHD_EXEC_LIMIT_FILES;
			}
			break;
		case 4:
			if (!get_size(b, v, &l->output_bytes))
				e->set |= ORCHD_EXEC_LIMIT_OUTPUT;
			break;
		default:
			path_pop(b, m);
			unknown_key(b, k, limit_keys, ARRAY_SIZE(limit_keys));
			break;
		}
		path_pop(b, m);
	}
}

static const char *const iso_keys[] = {"level", "network", "paths"};
static const char *const iso_path_keys[] = {"read", "write"};

/* A list of paths (isolation.paths.read/write), appended to *v. */
static void build_paths(struct build *b, const struct ynode *n, char ***v, size_t *nv)
{
	if (expect_kind(b, n, Y_SEQ))
		return;
	for (size_t j = 0; j < n->n; j++) {
		size_t m = path_index(b, j);
		char *s;

		if (!get_string(b, n->items[j], &s)) {
			if (!*s) {
				berr(b, n->items[j], "must not be empty");
				free(s);
			} else {
				*v = xrealloc(*v, (*nv + 1) * sizeof(**v));
				(*v)[(*nv)++] = s;
			}
		}
		path_pop(b, m);
	}
}

static int get_level(struct build *b, const struct ynode *n, struct orchd_isolation *iso)
{
	static const char *const levels[] = {"strict", "basic"};
	size_t k;

	if (n->kind != Y_SCALAR || (k = key_index(n->s, levels, 2)) == 2)
		return berr(b, n, "expected an isolation level (strict or basic), got '%.40s'",
			    n->kind == Y_SCALAR ? n->s : ytree_kind_name(n));
	iso->level = k == 0 ? ORCHD_ISOLATION_STRICT : ORCHD_ISOLATION_BASIC;
	iso->set |= ORCHD_ISO_LEVEL;
	return 0;
}

/* isolation: a level ("strict", "basic"), or {level, network, paths}. */
static void build_isolation(struct build *b, const struct ynode *n, struct orchd_isolation *iso)
{
	iso->pos = npos(n);
	if (n->kind == Y_SCALAR) {
		get_level(b, n, iso);
		return;
	}
	if (expect_kind(b, n, Y_MAP))
		return;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *k = n->pairs[i].key, *v = n->pairs[i].val;
		size_t m = path_key(b, k->s);

		switch (key_index(k->s, iso_keys, ARRAY_SIZE(iso_keys))) {
		case 0:
			get_level(b, v, iso);
			break;
		case 1:
			if (v->kind == Y_SCALAR &&
			    (!strcmp(v->s, "host") || !strcmp(v->s, "none"))) {
				iso->network_none = !strcmp(v->s, "none");
				iso->set |= ORCHD_ISO_NETWORK;
			} else {
				berr(b, v, "expected host or none, got '%.40s'",
				     v->kind == Y_SCALAR ? v->s : ytree_kind_name(v));
			}
			break;
		case 2:
			if (expect_kind(b, v, Y_MAP))
				break;
			for (size_t j = 0; j < v->n; j++) {
				const struct ynode *k2 = v->pairs[j].key;
				size_t m2 = path_key(b, k2->s);

				switch (key_index(k2->s, iso_path_keys, 2)) {
				case 0:
					build_paths(b, v->pairs[j].val, &iso->read, &iso->nread);
					break;
				case 1:
					build_paths(b, v->pairs[j].val, &iso->write, &iso->nwrite);
					break;
				default:
					path_pop(b, m2);
					unknown_key(b, k2, iso_path_keys, 2);
					break;
				}
				path_pop(b, m2);
			}
			break;
		default:
			path_pop(b, m);
			unknown_key(b, k, iso_keys, ARRAY_SIZE(iso_keys));
			break;
		}
		path_pop(b, m);
	}
}
static const char *const backoff_keys[] = {"initial", "max", "factor"};

static void build_exec(struct build *b, const struct ynode *n, struct orchd_exec *e)
{
	size_t i, j, mark;
	int64_t v;

	e->set = 0;
	if (expect_kind(b, n, Y_MAP))
		return;
	for (i = 0; i < n->n; i++) {
		const struct ynode *k = n->pairs[i].key, *val = n->pairs[i].val;

		mark = path_key(b, k->s);
		switch (key_index(k->s, exec_keys, ARRAY_SIZE(exec_keys))) {
		case 0:
			if (!get_int(b, val, 1, 1000, &v)) {
				e->max_attempts = (int)v;
				e->set |= ORCHD_EXEC_MAX_ATTEMPTS;
			}
			break;
		case 1:
			if (!get_duration(b, val, &e->timeout_ms))
				e->set |= ORCHD_EXEC_TIMEOUT;
			break;
		case 2:
			if (!get_duration(b, val, &e->grace_ms))
				e->set |= ORCHD_EXEC_GRACE;
			break;
		case 3:
			if (expect_kind(b, val, Y_MAP))
				break;
			for (j = 0; j < val->n; j++) {
				const struct ynode *k2 = val->pairs[j].key, *v2 = val->pairs[j].val;
				size_t m2 = path_key(b, k2->s);
				int64_t iv;
				double dv;
				enum stype t;

				switch (key_index(k2->s, backoff_keys, ARRAY_SIZE(backoff_keys))) {
				case 0:
					if (!get_duration(b, v2, &e->backoff_initial_ms))
						e->set |= ORCHD_EXEC_BACKOFF_INITIAL;
					break;
				case 1:
					if (!get_duration(b, v2, &e->backoff_max_ms))
						e->set |= ORCHD_EXEC_BACKOFF_MAX;
					break;
				case 2:
					t = v2->kind == Y_SCALAR ? ytree_resolve(v2, &iv, &dv)
								 : S_STR;
					if (t == S_INT)
						dv = (double)iv;
					if ((t != S_INT && t != S_FLOAT) || v2->kind != Y_SCALAR) {
						berr(b, v2, "expected a number, got %s",
						     ytree_kind_name(v2));
					} else if (!(dv >= 1.0 && dv <= 100.0)) {
						berr(b, v2, "must be between 1 and 100");
					} else {
						e->backoff_factor = dv;
						e->set |= ORCHD_EXEC_BACKOFF_FACTOR;
					}
					break;
				default:
					path_pop(b, m2);
					unknown_key(b, k2, backoff_keys, ARRAY_SIZE(backoff_keys));
					break;
				}
				path_pop(b, m2);
			}
			break;
		case 4:
			build_limits(b, val, e);
			break;
		case 5:
			if (!get_duration(b, val, &e->handshake_ms))
				e->set |= ORCHD_EXEC_HANDSHAKE;
			break;
		case 6:
			build_runs_on(b, val, e);
			break;
		default:
			path_pop(b, mark);
			unknown_key(b, k, exec_keys, ARRAY_SIZE(exec_keys));
			break;
		}
		path_pop(b, mark);
	}
}

static const char *const engine_keys[] = {"type",   "backend",	"project", "endpoints",
					  "prefix", "lock_ttl", "tls",	   "auth"};
static const char *const engine_tls_keys[] = {"ca", "cert", "key"};
static const char *const engine_auth_keys[] = {"user", "password_file"};

/* A string member of a small mapping (tls, auth): keys[i] -> *out[i]. */
static void build_strings(struct build *b, const struct ynode *n, const char *const *keys,
			  size_t nkeys, char **const *out)
{
	if (expect_kind(b, n, Y_MAP))
		return;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *k = n->pairs[i].key, *v = n->pairs[i].val;
		size_t mark = path_key(b, k->s);
		size_t idx = key_index(k->s, keys, nkeys);
		char *s;

		if (idx == nkeys) {
			path_pop(b, mark);
			unknown_key(b, k, keys, nkeys);
		} else if (!get_string(b, v, &s)) {
			free(*out[idx]);
			*out[idx] = s;
		}
		path_pop(b, mark);
	}
}

static void build_endpoints(struct build *b, const struct ynode *v, struct orchd_engine_config *e)
{
	char *s;

	for (size_t i = 0; i < e->nendpoints; i++)
		free(e->endpoints[i]);
	free(e->endpoints);
	e->endpoints = NULL;
	e->nendpoints = 0;
	if (v->kind == Y_SCALAR) {
		if (!get_string(b, v, &s)) {
			e->endpoints = xcalloc(1, sizeof(*e->endpoints));
			e->endpoints[e->nendpoints++] = s;
		}
		return;
	}
	if (expect_kind(b, v, Y_SEQ))
		return;
	if (!v->n)
		berr(b, v, "endpoints must name at least one etcd client URL");
	e->endpoints = xcalloc(v->n ? v->n : 1, sizeof(*e->endpoints));
	for (size_t i = 0; i < v->n; i++)
		if (!get_string(b, v->items[i], &s))
			e->endpoints[e->nendpoints++] = s;
}

static void build_engine(struct build *b, const struct ynode *n, struct orchd_engine_config *e)
{
	size_t i, mark;
	char *s;

	e->pos = npos(n);
	if (expect_kind(b, n, Y_MAP))
		return;
	for (i = 0; i < n->n; i++) {
		const struct ynode *k = n->pairs[i].key, *v = n->pairs[i].val;

		mark = path_key(b, k->s);
		switch (key_index(k->s, engine_keys, ARRAY_SIZE(engine_keys))) {
		case 0:
			if (get_string(b, v, &s))
				break;
			if (!strcmp(s, "local"))
				e->type = ORCHD_ENGINE_LOCAL;
			else if (!strcmp(s, "pulumi"))
				e->type = ORCHD_ENGINE_PULUMI;
			else if (!strcmp(s, "etcd"))
				e->type = ORCHD_ENGINE_ETCD;
			else
				berr(b, v,
				     "unknown engine type '%s' (expected local, pulumi or etcd)",
				     s);
			free(s);
			break;
		case 1:
			if (!get_string(b, v, &s)) {
				free(e->backend);
				e->backend = s;
			}
			break;
		case 2:
			if (get_string(b, v, &s))
				break;
			if (!orchd_name_is_safe(s)) {
				berr(b, v, "invalid project name '%s'", s);
				free(s);
				break;
			}
			free(e->project);
			e->project = s;
			break;
		case 3:
			build_endpoints(b, v, e);
			break;
		case 4:
			if (get_string(b, v, &s))
				break;
			if (!*s || strstr(s, "//") || s[0] == '/' || strpbrk(s, " \t\r\n")) {
				berr(b, v,
				     "invalid etcd key prefix '%s' (non-empty, no leading '/', "
				     "no '//', no white space)",
				     s);
				free(s);
				break;
			}
			free(e->prefix);
			e->prefix = s;
			break;
		case 5:
			if (get_duration(b, v, &e->lock_ttl_ms))
				break;
			if (e->lock_ttl_ms < 2000 || e->lock_ttl_ms > 3600000)
				berr(b, v, "lock_ttl must be between 2s and 1h");
			break;
		case 6: {
			char **const outs[] = {&e->ca_file, &e->cert_file, &e->key_file};

			build_strings(b, v, engine_tls_keys, ARRAY_SIZE(engine_tls_keys), outs);
			break;
		}
		case 7: {
			char **const outs[] = {&e->user, &e->password_file};

			build_strings(b, v, engine_auth_keys, ARRAY_SIZE(engine_auth_keys), outs);
			break;
		}
		default:
			path_pop(b, mark);
			unknown_key(b, k, engine_keys, ARRAY_SIZE(engine_keys));
			break;
		}
		path_pop(b, mark);
	}
	if (e->type != ORCHD_ENGINE_PULUMI && (e->backend || e->project))
		berr(b, n, "backend and project are only valid with engine type pulumi");
	if (e->type != ORCHD_ENGINE_ETCD &&
	    (e->nendpoints || e->prefix || e->lock_ttl_ms || e->ca_file || e->cert_file ||
	     e->key_file || e->user || e->password_file))
		berr(b, n,
		     "endpoints, prefix, lock_ttl, tls and auth are only valid with engine type "
		     "etcd");
	if (e->type == ORCHD_ENGINE_ETCD && !e->nendpoints && !getenv("ORCHD_ETCD_ENDPOINTS"))
		berr(b, n,
		     "engine type etcd needs endpoints (a list of client URLs, or "
		     "ORCHD_ETCD_ENDPOINTS)");
	if ((e->cert_file != NULL) != (e->key_file != NULL))
		berr(b, n, "tls needs both cert and key for a client certificate");
	if (e->password_file && !e->user)
		berr(b, n, "auth.password_file needs auth.user");
}

#define SAFE_NAME_RULE                                                                    \
	"letters, digits, '_', '.' and '-', starting with a letter or digit, at most 63 " \
	"characters, no '..'"

/* The last five are core/compose's, removed before the model is built:
 * here for the suggestions of a misspelt key. */
static const char *const core_keys[] = {
	"stack",	"parallelism", "state_dir", "engine",	  "execution_defaults",
	"env",		"defaults",    "isolation", "imports",	  "templates",
	"environments", "vars",	       "env_allow", "extensions", "execution"};
static const char *const core_exec_keys[] = {"workers"};

static const char *const ext_req_keys[] = {"source", "version", "ref", "path", "sha256"};

/* core.extensions: TYPE: {source, version, ref, path, sha256}. */
static void build_ext_reqs(struct build *b, const struct ynode *n, struct orchd_core *c)
{
	if (expect_kind(b, n, Y_MAP))
		return;
	for (size_t j = 0; j < n->n; j++) {
		const struct ynode *k = n->pairs[j].key, *v = n->pairs[j].val;
		struct orchd_ext_req r;
		size_t m = path_key(b, k->s);

		memset(&r, 0, sizeof(r));
		r.pos = npos(k);
		if (!type_name_ok(k->s)) {
			berr(b, k, "invalid extension type name '%s'", k->s);
		} else if (!expect_kind(b, v, Y_MAP)) {
			r.type = xstrdup(k->s);
			for (size_t i = 0; i < v->n; i++) {
				const struct ynode *k2 = v->pairs[i].key, *v2 = v->pairs[i].val;
				size_t m2 = path_key(b, k2->s);
				size_t idx =
					key_index(k2->s, ext_req_keys, ARRAY_SIZE(ext_req_keys));
				char **field[] = {&r.source, &r.version, &r.ref, &r.path,
						  &r.sha256};
				char *s;

				if (idx >= ARRAY_SIZE(ext_req_keys)) {
					unknown_key(b, k2, ext_req_keys, ARRAY_SIZE(ext_req_keys));
				} else if (!get_string(b, v2, &s)) {
					if (!*s)
						berr(b, v2, "must not be empty");
					free(*field[idx]);
					*field[idx] = s;
				}
				path_pop(b, m2);
			}
			if (!r.source)
				berr(b, k,
				     "'source' is required (a directory, git+URL, an https "
				     "tarball URL or pip:REQUIREMENT)");
			ALLOC_GROW(c->ext_reqs, c->next_reqs + 1, c->ext_reqs_alloc);
			c->ext_reqs[c->next_reqs++] = r;
		}
		path_pop(b, m);
	}
}

static void build_core(struct build *b, const struct ynode *n)
{
	struct orchd_core *c = &b->p->core;
	size_t i, j, mark, m2;
	int64_t v;
	char *s;

	c->pos = npos(n);
	if (n->kind == Y_SCALAR && n->plain && !*n->s)
		return; /* "core:" with nothing: all defaults */
	if (expect_kind(b, n, Y_MAP))
		return;
	for (i = 0; i < n->n; i++) {
		const struct ynode *k = n->pairs[i].key, *val = n->pairs[i].val;

		mark = path_key(b, k->s);
		switch (key_index(k->s, core_keys, ARRAY_SIZE(core_keys))) {
		case 0:
			if (get_string(b, val, &s))
				break;
			if (!orchd_name_is_safe(s)) {
				berr(b, val, "invalid stack name '%s' (" SAFE_NAME_RULE ")", s);
				free(s);
				break;
			}
			free(c->stack);
			c->stack = s;
			break;
		case 1:
			if (!get_int(b, val, 0, 4096, &v))
				c->parallelism = (int)v;
			break;
		case 2:
			if (get_string(b, val, &s))
				break;
			if (!*s) {
				berr(b, val, "must not be empty");
				free(s);
				break;
			}
			free(c->state_dir);
			c->state_dir = s;
			break;
		case 3:
			build_engine(b, val, &c->engine);
			break;
		case 4:
			build_exec(b, val, &c->defaults);
			break;
		case 5:
			if (expect_kind(b, val, Y_MAP))
				break;
			for (j = 0; j < val->n; j++) {
				const struct ynode *k2 = val->pairs[j].key, *v2 = val->pairs[j].val;
				int64_t iv;
				double dv;

				m2 = path_key(b, k2->s);
				if (!env_name_ok(k2->s))
					berr(b, k2, "invalid environment variable name '%s'",
					     k2->s);
				else if (v2->kind != Y_SCALAR ||
					 ytree_resolve(v2, &iv, &dv) == S_NULL)
					berr(b, v2, "expected a string, got %s",
					     ytree_kind_name(v2));
				else if (!ref_not_here(b, v2, "core.env"))
					json_object_object_add(c->env, k2->s, unescaped(v2));
				path_pop(b, m2);
			}
			break;
		case 6:
			if (expect_kind(b, val, Y_MAP))
				break;
			for (j = 0; j < val->n; j++) {
				const struct ynode *k2 = val->pairs[j].key, *v2 = val->pairs[j].val;

				m2 = path_key(b, k2->s);
				if (!type_name_ok(k2->s))
					berr(b, k2, "invalid extension type name '%s'", k2->s);
				else if (!expect_kind(b, v2, Y_MAP)) {
					c->type_defaults_pos =
						xrealloc(c->type_defaults_pos,
							 (c->ntype_defaults + 1) *
								 sizeof(*c->type_defaults_pos));
					c->type_defaults_pos[c->ntype_defaults] = npos(k2);
					c->ntype_defaults++;
					b->in_defaults = 1;
					json_object_object_add(c->type_defaults, k2->s,
							       to_json(b, v2));
					b->in_defaults = 0;
				}
				path_pop(b, m2);
			}
			break;
		case 7:
			build_isolation(b, val, &c->isolation);
			break;
		case 13:
			build_ext_reqs(b, val, c);
			break;
		case 14:
			if (expect_kind(b, val, Y_MAP))
				break;
			for (j = 0; j < val->n; j++) {
				const struct ynode *k2 = val->pairs[j].key, *v2 = val->pairs[j].val;

				m2 = path_key(b, k2->s);
				if (key_index(k2->s, core_exec_keys, ARRAY_SIZE(core_exec_keys)))
					unknown_key(b, k2, core_exec_keys,
						    ARRAY_SIZE(core_exec_keys));
				else
					get_bool(b, v2, &c->workers);
				path_pop(b, m2);
			}
			break;
		default:
			path_pop(b, mark);
			unknown_key(b, k, core_keys, ARRAY_SIZE(core_keys));
			break;
		}
		path_pop(b, mark);
	}
}

static const char *const inst_keys[] = {"name",	     "depends_on", "enabled",
					"execution", "pass_env",   "mock_outputs",
					"sources",   "isolation",  "watch"};

static void add_depends(struct build *b, struct orchd_instance *in, const struct ynode *n)
{
	char *s;

	if (get_string(b, n, &s))
		return;
	in->depends_on = xrealloc(in->depends_on, (in->ndepends + 1) * sizeof(char *));
	in->depends_pos = xrealloc(in->depends_pos, (in->ndepends + 1) * sizeof(*in->depends_pos));
	in->depends_on[in->ndepends] = s;
	in->depends_pos[in->ndepends] = npos(n);
	in->ndepends++;
}

/* A string value of a (valid, so flat) source spec holds "${{" that is not
 * the escape "$${{". */
static int source_has_ref(json_object *spec)
{
	json_object_object_foreach(spec, key, val)
	{
		const char *str, *p;

		(void)key;
		if (!json_object_is_type(val, json_type_string))
			continue;
		str = json_object_get_string(val);
		for (p = strstr(str, "${{"); p; p = strstr(p + 1, "${{"))
			if (p == str || p[-1] != '$')
				return 1;
	}
	return 0;
}

/* sources: a sequence of source specs (common/fetch.h), checked now so
 * that a typo fails at load time, with the position of the spec. */
static void build_sources(struct build *b, struct orchd_instance *in, const struct ynode *v)
{
	struct orchd_instance *cur = b->cur;
	char err[512];

	if (expect_kind(b, v, Y_SEQ))
		return;
	b->cur = NULL; /* no ${{ }} references in sources */
	json_object_put(in->sources);
	in->sources = json_object_new_array_ext((int)v->n);
	for (size_t j = 0; j < v->n; j++) {
		size_t m = path_index(b, j);
		json_object *spec = to_json(b, v->items[j]);

		if (orchd_fetch_validate(spec, err, sizeof(err)) < 0)
			berr(b, v->items[j], "%s", err);
		else if (source_has_ref(spec))
			berr(b, v->items[j], "references (${{ }}) are not supported in sources");
		json_object_array_add(in->sources, spec);
		path_pop(b, m);
	}
	b->cur = cur;
}

/* watch: globs of files (relative to the pipeline's directory) whose
 * changes affect the instance (orchd affected). */
static void build_watch(struct build *b, const struct ynode *v, struct orchd_instance *in)
{
	if (expect_kind(b, v, Y_SEQ))
		return;
	for (size_t j = 0; j < v->n; j++) {
		size_t m = path_index(b, j);
		char *s;

		if (!get_string(b, v->items[j], &s)) {
			if (!*s)
				berr(b, v->items[j], "must not be empty");
			else if (!ref_not_here(b, v->items[j], "watch")) {
				in->watch = xrealloc(in->watch, (in->nwatch + 1) * sizeof(char *));
				in->watch[in->nwatch++] = s;
				s = NULL;
			}
			free(s);
		}
		path_pop(b, m);
	}
}

static void build_instance(struct build *b, const char *type, const struct ynode *n,
			   struct orchd_map *ids)
{
	struct orchd_pipeline *p = b->p;
	struct orchd_instance *in = &b->inst;
	const struct ynode *namev = NULL;
	size_t i, j, mark, m2, alloc_env = 0;
	struct orchd_exec over;
	size_t *prev;
	int ok = 1;

	if (expect_kind(b, n, Y_MAP))
		return;
	memset(in, 0, sizeof(*in));
	b->refs_alloc = 0;
	b->sites_alloc = 0;
	b->cfg_root = b->pn;
	in->pos = npos(n);
	in->enabled = 1;
	in->exec = p->core.defaults;
	op_buf_reset(&b->cfg);
	op_buf_addch(&b->cfg, '{');
	b->cur = in;
	for (i = 0; i < n->n; i++) {
		const struct ynode *k = n->pairs[i].key, *v = n->pairs[i].val;

		mark = path_key(b, k->s);
		switch (key_index(k->s, inst_keys, ARRAY_SIZE(inst_keys))) {
		case 0:
			namev = v;
			if (get_string(b, v, &in->name))
				ok = 0;
			else if (!orchd_name_is_safe(in->name))
				ok = 0,
				berr(b, v, "invalid instance name '%s' (" SAFE_NAME_RULE ")",
				     in->name);
			break;
		case 1:
			if (v->kind == Y_SEQ) {
				for (j = 0; j < v->n; j++) {
					m2 = path_index(b, j);
					add_depends(b, in, v->items[j]);
					path_pop(b, m2);
				}
			} else {
				add_depends(b, in, v);
			}
			break;
		case 2:
			get_bool(b, v, &in->enabled);
			break;
		case 3:
			orchd_exec_set_defaults(&over);
			build_exec(b, v, &over);
			orchd_exec_merge(&in->exec, &over);
			break;
		case 4:
			if (expect_kind(b, v, Y_SEQ))
				break;
			for (j = 0; j < v->n; j++) {
				char *s;

				m2 = path_index(b, j);
				if (!get_string(b, v->items[j], &s)) {
					if (!env_name_ok(s)) {
						berr(b, v->items[j],
						     "invalid environment variable name '%s'", s);
						free(s);
					} else if (passphrase_var(s)) {
						berr(b, v->items[j],
						     "'%s' carries orchd's passphrase: it is never "
						     "passed to an extension",
						     s);
						free(s);
					} else {
						ALLOC_GROW(in->pass_env, in->npass_env + 1,
							   alloc_env);
						in->pass_env[in->npass_env++] = s;
					}
				}
				path_pop(b, m2);
			}
			break;
		case 5:
			if (!expect_kind(b, v, Y_MAP)) {
				b->cur = NULL;
				b->norefs = "mock_outputs (stand-in values)";
				json_object_put(in->mock_outputs);
				in->mock_outputs = to_json(b, v);
				b->norefs = NULL;
				b->cur = in;
			}
			break;
		case 6:
			build_sources(b, in, v);
			break;
		case 7:
			build_isolation(b, v, &in->isolation);
			break;
		case 8:
			build_watch(b, v, in);
			break;
		default:
			ref_not_here(b, k, "mapping keys");
			if (b->cfg.len > 1)
				op_buf_addch(&b->cfg, ',');
			orchd_buf_json_str(&b->cfg, k->s, strlen(k->s));
			op_buf_addch(&b->cfg, ':');
			emit(b, v, &b->cfg);
			break;
		}
		path_pop(b, mark);
	}
	op_buf_addch(&b->cfg, '}');
	in->config_json = xstrdup(orchd_buf_str(&b->cfg));
	b->cur = NULL;
	if (!namev) {
		berr(b, n, "missing required key 'name'");
		ok = 0;
	}
	if (ok) {
		in->name_pos = npos(namev);
		in->type = xstrdup(type);
		in->id = xasprintf("%s.%s", type, in->name);
		if ((prev = orchd_map_get(ids, in->id))) {
			struct orchd_instance *f = &p->inst[*prev];

			mark = path_key(b, "name");
			if (f->name_pos.file == namev->file &&
			    !b->y->files[namev->file].parent + 1) {
				berr(b, namev,
				     "duplicate instance name '%s' (first defined at %u:%u)",
				     in->name, f->name_pos.line, f->name_pos.column);
			} else {
				char *first = orchd_pos_where(p, f->name_pos);
				char *here = orchd_pos_where(p, npos(namev));

				berr(b, namev, "duplicate instance '%s': defined at %s and at %s",
				     in->id, first, here);
				free(first);
				free(here);
			}
			path_pop(b, mark);
			ok = 0;
		}
	}
	if (!ok) {
		/* Without a usable name the instance cannot be referred to:
		 * drop it (its other errors are already reported). */
		orchd_instance_release(in);
		return;
	}
	/* Instances with other errors stay, so that references to them do
	 * not add spurious "unknown instance" errors. */
	/* (the key is in->id, whose string moves into p->inst with it) */
	orchd_map_put(ids, in->id, p->ninst, NULL);
	ALLOC_GROW(p->inst, p->ninst + 1, b->inst_alloc);
	p->inst[p->ninst++] = *in;
}

static void build_pipeline(struct build *b, const struct ynode *root)
{
	struct orchd_pipeline *p = b->p;
	const struct ynode *body, *core = NULL;
	struct orchd_map ids = ORCHD_MAP_INIT;
	size_t i, j, mark, m2;

	if (root->kind != Y_MAP || !root->n) {
		b->failed = 1;
		orchd_diag_add(
			b->d, b->file, root->line, root->col,
			"top level: expected a mapping with one key (the pipeline name), got %s",
			root->kind == Y_MAP ? "an empty mapping" : ytree_kind_name(root));
		return;
	}
	if (root->n > 1) {
		const struct ynode *k = root->pairs[1].key;

		b->failed = 1;
		orchd_diag_add(b->d, b->file, k->line, k->col,
			       "several top-level keys ('%s' at %u:%u and '%s'): a file holds one "
			       "pipeline, its name the only top-level key",
			       root->pairs[0].key->s, root->pairs[0].key->line,
			       root->pairs[0].key->col, k->s);
	}
	p->name = xstrdup(root->pairs[0].key->s);
	p->name_pos = npos(root->pairs[0].key);
	if (!orchd_name_is_safe(p->name)) {
		b->failed = 1;
		orchd_diag_add(b->d, b->file, p->name_pos.line, p->name_pos.column,
			       "invalid pipeline name '%s' (" SAFE_NAME_RULE ")", p->name);
	}
	mark = path_key(b, p->name);
	body = root->pairs[0].val;
	if (expect_kind(b, body, Y_MAP)) {
		path_pop(b, mark);
		return;
	}
	for (i = 0; i < body->n; i++)
		if (!strcmp(body->pairs[i].key->s, "core"))
			core = body->pairs[i].val;
	if (core) {
		m2 = path_key(b, "core");
		build_core(b, core);
		path_pop(b, m2);
	}
	for (i = 0; i < body->n; i++) {
		const struct ynode *k = body->pairs[i].key, *v = body->pairs[i].val;

		if (!strcmp(k->s, "core"))
			continue;
		m2 = path_key(b, k->s);
		if (!type_name_ok(k->s)) {
			berr(b, k,
			     "invalid extension type name '%s' (letters, digits, '_' and '-', "
			     "starting with a letter or digit, at most 63 characters)",
			     k->s);
			path_pop(b, m2);
			continue;
		}
		ALLOC_GROW(p->types, p->ntypes + 1, b->types_alloc);
		p->types_pos = xrealloc(p->types_pos, b->types_alloc * sizeof(*p->types_pos));
		p->types[p->ntypes] = xstrdup(k->s);
		p->types_pos[p->ntypes] = npos(k);
		p->ntypes++;
		if (expect_kind(b, v, Y_SEQ)) {
			path_pop(b, m2);
			continue;
		}
		for (j = 0; j < v->n; j++) {
			size_t m3 = path_index(b, j);

			build_instance(b, k->s, v->items[j], &ids);
			path_pop(b, m3);
		}
		path_pop(b, m2);
	}
	orchd_map_release(&ids);
	path_pop(b, mark);
}

/* Parse and compose (core/compose.h) the pipeline file in y: the root to
 * build from, or NULL (errors added). */
static struct ynode *load_tree(struct yparse *y, const char *file, const char *buf, size_t len,
			       const struct orchd_load_opts *o, const char **env)
{
	char *key;
	size_t nerr = y->d->n;
	int truncated = y->d->truncated;

	if (len > ORCHD_MAX_FILE_SIZE) {
		orchd_diag_add(y->d, file, 0, 0, "file too large (%zu bytes, limit %u MiB)", len,
			       ORCHD_MAX_FILE_SIZE >> 20);
		return NULL;
	}
	key = o && o->read ? NULL : orchd_compose_file_key(file);
	ytree_add_file(y, file, key ? key : file, (size_t)-1, 0, 0);
	free(key);
	y->cur = 0;
	y->file = file;
	y->buf = buf;
	y->len = len;
	if (ytree_parse(y) < 0 || (y->d->n > nerr || y->d->truncated != truncated) || !y->root) {
		if (!y->root && y->d->n == nerr && y->d->truncated == truncated)
			orchd_diag_add(
				y->d, file, 1, 1,
				"empty file (expected a mapping with one key, the pipeline name)");
		return NULL;
	}
	return orchd_compose(y, o, env);
}

static int load(const char *file, const char *buf, size_t len, const struct orchd_load_opts *o,
		struct orchd_pipeline **out, struct orchd_diags *d)
{
	struct yparse y;
	struct build b;
	struct orchd_pipeline *p;
	struct ynode *root;
	const char *env = NULL;
	size_t nerr = d->n;
	int truncated = d->truncated;

	*out = NULL;
	memset(&y, 0, sizeof(y));
	y.d = d;
	if (!(root = load_tree(&y, file, buf, len, o, &env))) {
		ytree_release(&y);
		return -1;
	}
	p = xcalloc(1, sizeof(*p));
	p->file = xstrdup(file);
	p->files = xcalloc(y.nfiles, sizeof(*p->files));
	for (size_t i = 0; i < y.nfiles; i++) {
		p->files[i].path = xstrdup(y.files[i].path);
		p->files[i].parent = y.files[i].parent;
		p->files[i].git = y.files[i].git_url != NULL;
		p->files[i].at.line = y.files[i].line;
		p->files[i].at.column = y.files[i].col;
		p->files[i].at.file =
			y.files[i].parent < y.nfiles ? (unsigned)y.files[i].parent : 0;
	}
	p->nfiles = y.nfiles;
	p->core.stack = xstrdup("dev");
	orchd_exec_set_defaults(&p->core.defaults);
	p->core.engine.type = ORCHD_ENGINE_LOCAL;
	p->core.env = json_object_new_object();
	p->core.type_defaults = json_object_new_object();
	if (!p->core.env || !p->core.type_defaults)
		die("out of memory");
	memset(&b, 0, sizeof(b));
	b.file = file;
	b.y = &y;
	b.d = d;
	b.p = p;
	build_pipeline(&b, root);
	if (env) {
		char *s = xasprintf("%s.%s", p->core.stack, env);

		p->env = xstrdup(env);
		free(p->core.stack);
		p->core.stack = s;
	}
	op_buf_release(&b.path);
	op_buf_release(&b.text);
	op_buf_release(&b.cfg);
	free(b.pv);
	ytree_release(&y);
	orchd_pipeline_index(p);
	*out = p;
	if (b.failed || d->n > nerr || d->truncated != truncated)
		return -1;
	return 0;
}

int orchd_bootstrap_load(const char *file, const char *buf, size_t len, struct orchd_pipeline **out,
			 struct orchd_diags *d)
{
	return load(file, buf, len, NULL, out, d);
}

int orchd_bootstrap_load_buf(const char *file, const char *buf, size_t len,
			     const struct orchd_load_opts *o, struct orchd_pipeline **out,
			     struct orchd_diags *d)
{
	return load(file, buf, len, o, out, d);
}

int orchd_bootstrap_load_opts(const char *path, const struct orchd_load_opts *o,
			      struct orchd_pipeline **out, struct orchd_diags *d)
{
	struct op_buf sb = OP_BUF_INIT;
	int ret;

	*out = NULL;
	if (orchd_compose_read(o, path, &sb) < 0) {
		int e = errno;

		op_buf_release(&sb);
		if (e == E2BIG)
			return orchd_diag_add(d, path, 0, 0, "file too large (limit %u MiB)",
					      ORCHD_MAX_FILE_SIZE >> 20);
		if (e == ENOMEM)
			die("out of memory");
		return orchd_diag_add(d, path, 0, 0, "cannot %s: %s",
				      e == ENOENT || e == EACCES ? "open" : "read", strerror(e));
	}
	ret = load(path, orchd_buf_str(&sb), sb.len, o, out, d);
	op_buf_release(&sb);
	return ret;
}

int orchd_bootstrap_load_file(const char *path, struct orchd_pipeline **out, struct orchd_diags *d)
{
	return orchd_bootstrap_load_opts(path, NULL, out, d);
}

/* ---- locating a key of a config blob ------------------------------------- */

struct orchd_locator {
	struct yparse y;
	struct orchd_diags d;
	struct ynode *root; /* composed as the pipeline was, NULL when it cannot be */
};

struct orchd_locator *orchd_locator_open(const struct orchd_pipeline *p)
{
	struct orchd_locator *l = xcalloc(1, sizeof(*l));
	struct orchd_load_opts o;
	struct op_buf sb = OP_BUF_INIT;

	orchd_diags_init(&l->d);
	l->y.d = &l->d;
	memset(&o, 0, sizeof(o));
	o.env = p->env;
	if (orchd_compose_read(NULL, p->file, &sb) == 0) {
		l->root = load_tree(&l->y, p->file, orchd_buf_str(&sb), sb.len, &o, NULL);
		/* the files changed since the load: positions would lie */
		if (l->d.n || l->y.nfiles != p->nfiles)
			l->root = NULL;
	}
	op_buf_release(&sb);
	return l;
}

void orchd_locator_close(struct orchd_locator *l)
{
	if (!l)
		return;
	ytree_release(&l->y);
	orchd_diags_release(&l->d);
	free(l);
}

static const struct ynode *map_get(const struct ynode *m, const char *key, size_t len)
{
	if (!m || m->kind != Y_MAP)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (m->pairs[i].key->len == len && !memcmp(m->pairs[i].key->s, key, len))
			return m->pairs[i].val;
	return NULL;
}

/*
 * Walk "a.b[2]" from n as far as it goes: the deepest node reached.  At a
 * mapping, the longest key that the rest of the path starts with (then '.',
 * '[' or its end) wins, so keys holding a '.' are found too.
 */
static const struct ynode *walk(const struct ynode *n, const char *path, int *all,
				const struct ynode **key)
{
	*all = 1;
	*key = NULL;
	while (*path) {
		const struct ynode *next = NULL, *nkey = NULL;
		size_t used = 0;

		if (*path == '[' && n->kind == Y_SEQ) {
			char *end;
			unsigned long k = strtoul(path + 1, &end, 10);

			if (*end == ']' && end > path + 1 && k < n->n) {
				next = n->items[k];
				used = (size_t)(end + 1 - path);
			}
		} else if (n->kind == Y_MAP) {
			for (size_t i = 0; i < n->n; i++) {
				const struct ynode *k = n->pairs[i].key;

				if (k->len > used && !strncmp(path, k->s, k->len) &&
				    (!path[k->len] || path[k->len] == '.' || path[k->len] == '[')) {
					next = n->pairs[i].val;
					nkey = k;
					used = k->len;
				}
			}
		}
		if (!next) {
			*all = 0;
			return n;
		}
		n = next;
		*key = nkey;
		path += used;
		if (*path == '.')
			path++;
	}
	return n;
}

int orchd_locator_find(struct orchd_locator *l, const struct orchd_pipeline *p, size_t i,
		       const char *path, int at_key, struct orchd_pos *pos)
{
	const struct orchd_instance *in = &p->inst[i];
	const struct ynode *body, *sect, *inst = NULL, *n, *defaults, *key = NULL;
	int all = 0;

	*pos = in->pos;
	if (!l->root || l->root->kind != Y_MAP || !l->root->n)
		return 0;
	body = l->root->pairs[0].val;
	sect = map_get(body, in->type, strlen(in->type));
	for (size_t k = 0; sect && sect->kind == Y_SEQ && k < sect->n; k++) {
		const struct ynode *nm = map_get(sect->items[k], "name", 4);

		if (nm && nm->kind == Y_SCALAR && !strcmp(nm->s, in->name))
			inst = sect->items[k];
	}
	if (!inst || !path || !*path)
		return 0;
	n = walk(inst, path, &all, &key);
	if (!all) {
		/* maybe from core.defaults.TYPE */
		defaults = map_get(map_get(map_get(body, "core", 4), "defaults", 8), in->type,
				   strlen(in->type));
		if (defaults) {
			const struct ynode *dk, *d = walk(defaults, path, &all, &dk);

			if (all) {
				n = d;
				key = dk;
			}
		}
	}
	/* a key that is missing: the deepest node that exists; the key
	 * itself when asked (a value may come from elsewhere: a variable) */
	*pos = npos(at_key && all && key ? key : n);
	return 0;
}

/* ---- validation --------------------------------------------------------- */

/*
 * "PIPELINE.TYPE[k]" of each instance (k: its index in its section), made
 * only when an error needs it: at 10 000 instances, formatting every path up
 * front was a tenth of the cost of loading a valid file.
 */
struct ipaths {
	const struct orchd_pipeline *p;
	size_t *k;
	char **s;
};

static void ipaths_init(struct ipaths *ip, const struct orchd_pipeline *p)
{
	json_object *count = json_object_new_object();
	size_t i;

	ip->p = p;
	ip->k = xcalloc(p->ninst + 1, sizeof(*ip->k));
	ip->s = xcalloc(p->ninst + 1, sizeof(*ip->s));
	for (i = 0; i < p->ninst; i++) {
		json_object *c;
		int64_t k = 0;

		if (json_object_object_get_ex(count, p->inst[i].type, &c)) {
			k = json_object_get_int64(c) + 1;
			json_object_set_int64(c, k);
		} else {
			json_object_object_add(count, p->inst[i].type, json_object_new_int64(0));
		}
		ip->k[i] = (size_t)k;
	}
	json_object_put(count);
}

static const char *ipath(struct ipaths *ip, size_t i)
{
	if (!ip->s[i])
		ip->s[i] = xasprintf("%s.%s[%zu]", ip->p->name, ip->p->inst[i].type, ip->k[i]);
	return ip->s[i];
}

static void ipaths_release(struct ipaths *ip)
{
	for (size_t i = 0; i < ip->p->ninst; i++)
		free(ip->s[i]);
	free(ip->s);
	free(ip->k);
}

/* Suggest the closest instance id (only while the error list has room). */
static const char *closest_id(const struct orchd_pipeline *p, const struct orchd_diags *d,
			      const char *ref)
{
	const char **ids;
	const char *best;
	size_t i;

	if (d->truncated || (d->cap_limit && d->n >= d->cap_limit))
		return NULL;
	ids = xcalloc(p->ninst + 1, sizeof(*ids));
	for (i = 0; i < p->ninst; i++)
		ids[i] = strchr(ref, '.') ? p->inst[i].id : p->inst[i].name;
	best = orchd_closest(ref, ids, p->ninst);
	free(ids);
	return best;
}

static void unknown_instance(const struct orchd_pipeline *p, struct orchd_diags *d,
			     const char *path, struct orchd_pos pos, const char *what,
			     const char *ref)
{
	const char *near = closest_id(p, d, ref);

	if (near)
		orchd_diag_add(d, orchd_pos_file(p, pos), pos.line, pos.column,
			       "%s: %s unknown instance '%s' (did you mean '%s'?)", path, what, ref,
			       near);
	else
		orchd_diag_add(d, orchd_pos_file(p, pos), pos.line, pos.column,
			       "%s: %s unknown instance '%s'", path, what, ref);
}

static void ambiguous_instance(const struct orchd_pipeline *p, struct orchd_diags *d,
			       const char *path, struct orchd_pos pos, const char *ref)
{
	struct op_buf sb = OP_BUF_INIT;
	size_t i;

	for (i = 0; i < p->ninst; i++)
		if (!strcmp(p->inst[i].name, ref))
			op_buf_addf(&sb, "%s%s", sb.len ? ", " : "", p->inst[i].id);
	orchd_diag_add(d, orchd_pos_file(p, pos), pos.line, pos.column,
		       "%s: ambiguous instance name '%s' (write one of: %s)", path, ref,
		       orchd_buf_str(&sb));
	op_buf_release(&sb);
}

static void add_edge(struct orchd_instance *in, size_t to, size_t *seen, size_t stamp,
		     size_t *alloc)
{
	if (seen[to] == stamp)
		return;
	seen[to] = stamp;
	ALLOC_GROW(in->deps, in->ndeps + 1, *alloc);
	in->deps[in->ndeps++] = to;
}

struct cycle_report {
	const struct orchd_pipeline *p;
	struct orchd_diags *d;
	struct ipaths *paths;
};

/* A dependency cycle, at its first instance in the file, in run order. */
static void report_cycle(void *arg, const size_t *cycle, size_t len)
{
	struct cycle_report *cr = arg;
	const struct orchd_instance *first = &cr->p->inst[cycle[0]];
	struct op_buf sb = OP_BUF_INIT;

	for (size_t i = 0; i <= len; i++)
		op_buf_addf(&sb, "%s%s", i ? " -> " : "", cr->p->inst[cycle[i % len]].id);
	orchd_diag_add(cr->d, orchd_pos_file(cr->p, first->pos), first->pos.line, first->pos.column,
		       "%s: dependency cycle: %s", ipath(cr->paths, cycle[0]), orchd_buf_str(&sb));
	op_buf_release(&sb);
}

/* Report type unless it is one of the known types. */
static void check_type(const struct orchd_pipeline *p, struct orchd_diags *d,
		       const char *const *known_types, size_t nknown, const char *type,
		       const char *path, struct orchd_pos pos)
{
	struct op_buf sb = OP_BUF_INIT;
	const char *near;
	size_t j;

	for (j = 0; j < nknown; j++)
		if (!strcmp(type, known_types[j]))
			return;
	for (j = 0; j < nknown; j++)
		op_buf_addf(&sb, "%s%s", j ? ", " : "", known_types[j]);
	near = orchd_closest(type, known_types, nknown);
	if (!nknown)
		orchd_diag_add(d, orchd_pos_file(p, pos), pos.line, pos.column,
			       "%s: unknown extension type '%s' (no extensions found, see 'orchd "
			       "extensions')",
			       path, type);
	else if (near)
		orchd_diag_add(
			d, orchd_pos_file(p, pos), pos.line, pos.column,
			"%s: unknown extension type '%s' (did you mean '%s'? known types: %s)",
			path, type, near, orchd_buf_str(&sb));
	else
		orchd_diag_add(d, orchd_pos_file(p, pos), pos.line, pos.column,
			       "%s: unknown extension type '%s' (known types: %s)", path, type,
			       orchd_buf_str(&sb));
	op_buf_release(&sb);
}

/*
 * Two instances must never share a stack: "STACK-TYPE-NAME" is ambiguous
 * when a type or a name holds a '-' (type a-b, instance c and type a,
 * instance b-c are both dev-a-b-c), and one would be handed the other's
 * state.  Stack names stay as they are (existing state keeps working); the
 * pipeline that would collide is refused.
 */
static void check_stacks(const struct orchd_pipeline *p, struct orchd_diags *d,
			 struct ipaths *paths)
{
	struct orchd_map seen = ORCHD_MAP_INIT;
	char **stacks = xcalloc(p->ninst + 1, sizeof(*stacks));

	for (size_t i = 0; i < p->ninst; i++) {
		const struct orchd_instance *in = &p->inst[i];
		size_t *prev;
		int added;

		stacks[i] = orchd_instance_stack(p, in);
		prev = orchd_map_put(&seen, stacks[i], i, &added);
		if (!added) {
			const struct orchd_instance *other = &p->inst[*prev];

			orchd_diag_add(d, orchd_pos_file(p, in->name_pos), in->name_pos.line,
				       in->name_pos.column,
				       "%s: its stack '%s' is also the stack of %s (line %u): "
				       "rename one of them",
				       ipath(paths, i), stacks[i], other->id, other->name_pos.line);
		}
	}
	orchd_map_release(&seen);
	for (size_t i = 0; i < p->ninst; i++)
		free(stacks[i]);
	free(stacks);
}

int orchd_pipeline_validate(struct orchd_pipeline *p, const char *const *known_types, size_t nknown,
			    struct orchd_diags *d)
{
	size_t nerr = d->n, i, j, *seen, alloc;
	int truncated = d->truncated;
	struct ipaths paths;

	if (!p->index)
		orchd_pipeline_index(p);
	if (known_types) {
		size_t k = 0;

		for (i = 0; i < p->ntypes; i++) {
			char *path = xasprintf("%s.%s", p->name, p->types[i]);

			check_type(p, d, known_types, nknown, p->types[i], path, p->types_pos[i]);
			free(path);
		}
		/* core.defaults may only name known types (a typo there would
		 * silently apply to nothing). */
		json_object_object_foreach(p->core.type_defaults, type, val)
		{
			struct orchd_pos pos = {0, 0};
			char *path = xasprintf("%s.core.defaults", p->name);

			(void)val;
			if (p->core.type_defaults_pos && k < p->core.ntype_defaults)
				pos = p->core.type_defaults_pos[k];
			k++;
			check_type(p, d, known_types, nknown, type, path, pos);
			free(path);
		}
	}
	ipaths_init(&paths, p);
	seen = xcalloc(p->ninst + 1, sizeof(*seen));
	for (i = 0; i < p->ninst; i++) {
		struct orchd_instance *in = &p->inst[i];
		int amb;

		free(in->deps);
		in->deps = NULL;
		in->ndeps = 0;
		alloc = 0;
		for (j = 0; j < in->ndepends; j++) {
			size_t t = orchd_pipeline_find(p, in->depends_on[j], &amb);
			char *path = NULL;

			if (amb || t == (size_t)-1 || t == i)
				path = xasprintf("%s.depends_on[%zu]", ipath(&paths, i), j);
			if (amb)
				ambiguous_instance(p, d, path, in->depends_pos[j],
						   in->depends_on[j]);
			else if (t == (size_t)-1)
				unknown_instance(p, d, path, in->depends_pos[j], "depends on",
						 in->depends_on[j]);
			else if (t == i)
				orchd_diag_add(d, orchd_pos_file(p, in->depends_pos[j]),
					       in->depends_pos[j].line, in->depends_pos[j].column,
					       "%s: instance '%s' depends on itself", path, in->id);
			else
				add_edge(in, t, seen, i + 1, &alloc);
			free(path);
		}
		{
			/* network: none is a network namespace: strict only (basic
			 * would run it with the host's network) */
			struct orchd_isolation iso;

			orchd_isolation_merge(&p->core.isolation, &in->isolation, &iso);
			if (iso.level == ORCHD_ISOLATION_BASIC && iso.network_none) {
				const struct orchd_pos *pos = in->isolation.set
								      ? &in->isolation.pos
								      : &p->core.isolation.pos;

				orchd_diag_add(
					d, orchd_pos_file(p, *pos), pos->line, pos->column,
					"%s.isolation: network: none needs level strict (basic "
					"has the host's network)",
					ipath(&paths, i));
			}
			free(iso.read);
			free(iso.write);
		}
		for (j = 0; j < in->nrefs; j++) {
			struct orchd_ref *r = &in->refs[j];
			size_t t = orchd_pipeline_find(p, r->target, NULL);

			r->target_index = t;
			if (t == (size_t)-1)
				unknown_instance(p, d, r->path, r->pos, "reference to", r->target);
			else if (t == i)
				orchd_diag_add(d, orchd_pos_file(p, r->pos), r->pos.line,
					       r->pos.column,
					       "%s: instance '%s' refers to its own outputs",
					       r->path, in->id);
			else
				add_edge(in, t, seen, i + 1, &alloc);
		}
	}
	free(seen);
	check_stacks(p, d, &paths);
	for (i = 0; i < p->ninst; i++)
		orchd_refs_order(p, &p->inst[i]);
	{
		struct orchd_graph g;
		struct cycle_report cr = {p, d, &paths};

		orchd_graph_build(&g, p);
		orchd_graph_cycles(&g, report_cycle, &cr);
		orchd_graph_release(&g);
	}
	ipaths_release(&paths);
	return d->n > nerr || d->truncated != truncated ? -1 : 0;
}
