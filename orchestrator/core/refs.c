/*
 * core/refs: references, resolution, hashes, staleness (see refs.h).
 */
#include "core/refs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchd_protocol.h"
#include "util.h"

/* ---- grammar ---------------------------------------------------------- */

static int ref_char(char c, int dot)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || (dot && c == '.');
}

static struct orchd_ref_part *new_part(struct orchd_ref_parsed *r, size_t *alloc)
{
	struct orchd_ref_part *part;

	ALLOC_GROW(r->parts, r->n + 1, *alloc);
	part = &r->parts[r->n++];
	memset(part, 0, sizeof(*part));
	return part;
}

/* Append text to the last part when it is literal, else start one. */
static void add_literal(struct orchd_ref_parsed *r, size_t *alloc, const char *s, size_t len)
{
	struct orchd_ref_part *last = r->n ? &r->parts[r->n - 1] : NULL;

	if (!len)
		return;
	if (!last || last->is_ref || last->ns)
		last = new_part(r, alloc);
	last->text = xrealloc(last->text, last->len + len + 1);
	memcpy(last->text + last->len, s, len);
	last->len += len;
	last->text[last->len] = '\0';
}

static const char *const ns_names[] = {NULL, "params", "vars", "env"};

/* NS '.' KEY in in[0..len) for a load-time namespace: NS, else 0 (and
 * *bad set when in names a namespace but KEY is not a name). */
static int split_ns(const char *in, size_t len, size_t *key_at, int *bad)
{
	*bad = 0;
	for (int ns = ORCHD_REF_PARAMS; ns <= ORCHD_REF_ENV; ns++) {
		size_t nl = strlen(ns_names[ns]);

		if (len < nl || memcmp(in, ns_names[ns], nl) || (len > nl && in[nl] != '.'))
			continue;
		if (len <= nl + 1) {
			*bad = ns; /* "vars" or "vars." */
			return 0;
		}
		if (memchr(in + nl + 1, '.', len - nl - 1))
			return 0; /* TYPE.NAME.outputs.KEY of a type called so */
		for (size_t i = nl + 1; i < len; i++)
			if (!ref_char(in[i], 0) || (ns == ORCHD_REF_ENV && in[i] == '-')) {
				*bad = ns;
				return 0;
			}
		*key_at = nl + 1;
		return ns;
	}
	return 0;
}

/* TYPE '.' NAME '.outputs.' KEY in in[0..len), each part non-empty. */
static int split_ref(const char *in, size_t len, size_t *dot_at, size_t *outs_at)
{
	const char *dot = memchr(in, '.', len), *outs, *key, *end = in + len;

	if (!dot || dot == in)
		return -1;
	outs = memmem(dot + 1, (size_t)(end - dot - 1), ".outputs.", 9);
	if (!outs || outs == dot + 1)
		return -1;
	key = outs + 9;
	if (key == end)
		return -1;
	for (const char *c = in; c < dot; c++)
		if (!ref_char(*c, 0))
			return -1;
	for (const char *c = dot + 1; c < outs; c++)
		if (!ref_char(*c, 1))
			return -1;
	for (const char *c = key; c < end; c++)
		if (!ref_char(*c, 0))
			return -1;
	*dot_at = (size_t)(dot - in);
	*outs_at = (size_t)(outs - in);
	return 0;
}

int orchd_ref_parse(const char *s, size_t len, struct orchd_ref_parsed *out, char *err,
		    size_t errlen)
{
	size_t i = 0, lit = 0, alloc = 0;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	while (i + 2 < len) {
		const char *in, *end;
		size_t inlen, dot, outs, key_at = 0;
		int ns, bad_ns;
		struct orchd_ref_part *part;

		if (s[i] == '$' && i + 3 < len && !memcmp(s + i + 1, "${{", 3)) {
			/* "$${{" is a literal "${{" */
			add_literal(out, &alloc, s + lit, i - lit);
			add_literal(out, &alloc, "${{", 3);
			out->has_escape = 1;
			i += 4;
			lit = i;
			continue;
		}
		if (memcmp(s + i, "${{", 3)) {
			i++;
			continue;
		}
		in = s + i + 3;
		end = memmem(in, len - (size_t)(in - s), "}}", 2);
		if (!end) {
			/* s[0..len) need not be NUL-terminated: bound the
			 * quote by what is left of it */
			if (!ret)
				ret = orchd_set_err(err, errlen,
						    "unterminated reference '%.*s' (missing '}}')",
						    (int)(len - i > 40 ? 40 : len - i), s + i);
			break;
		}
		while (in < end && (*in == ' ' || *in == '\t'))
			in++;
		inlen = (size_t)(end - in);
		while (inlen && (in[inlen - 1] == ' ' || in[inlen - 1] == '\t'))
			inlen--;
		if ((ns = split_ns(in, inlen, &key_at, &bad_ns)) != 0) {
			add_literal(out, &alloc, s + lit, i - lit);
			part = new_part(out, &alloc);
			part->ns = ns;
			part->len = (size_t)(end + 2 - (s + i));
			part->text = xstrndup(s + i, part->len);
			part->key = xstrndup(in + key_at, inlen - key_at);
			out->nloads++;
			i = (size_t)(end - s) + 2;
			lit = i;
			continue;
		}
		if (bad_ns) {
			if (!ret)
				ret = orchd_set_err(
					err, errlen,
					"malformed reference '${{%.*s}}' (expected ${{ %s.%s }})",
					(int)(end - (s + i + 3) > 60 ? 60 : end - (s + i + 3)),
					s + i + 3, ns_names[bad_ns],
					bad_ns == ORCHD_REF_ENV ? "VARIABLE" : "NAME");
			i = (size_t)(end - s) + 2;
			continue;
		}
		if (split_ref(in, inlen, &dot, &outs) < 0) {
			if (!ret)
				ret = orchd_set_err(
					err, errlen,
					"malformed reference '${{%.*s}}' (expected ${{ "
					"TYPE.NAME.outputs.KEY }})",
					(int)(end - (s + i + 3) > 60 ? 60 : end - (s + i + 3)),
					s + i + 3);
			i = (size_t)(end - s) + 2;
			continue;
		}
		add_literal(out, &alloc, s + lit, i - lit);
		part = new_part(out, &alloc);
		part->is_ref = 1;
		part->len = (size_t)(end + 2 - (s + i));
		part->text = xstrndup(s + i, part->len);
		part->target = xstrndup(in, outs);
		part->key = xstrndup(in + outs + 9, inlen - outs - 9);
		out->nrefs++;
		i = (size_t)(end - s) + 2;
		lit = i;
	}
	add_literal(out, &alloc, s + lit, len - lit);
	return ret;
}

void orchd_ref_parsed_release(struct orchd_ref_parsed *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->parts[i].text);
		free(r->parts[i].target);
		free(r->parts[i].key);
	}
	free(r->parts);
	memset(r, 0, sizeof(*r));
}

char *orchd_ref_parsed_text(const struct orchd_ref_parsed *r, size_t *len)
{
	size_t n = 0;
	char *s;

	for (size_t i = 0; i < r->n; i++)
		n += r->parts[i].len;
	s = xmalloc(n + 1);
	n = 0;
	for (size_t i = 0; i < r->n; i++) {
		memcpy(s + n, r->parts[i].text, r->parts[i].len);
		n += r->parts[i].len;
	}
	s[n] = '\0';
	*len = n;
	return s;
}

/* ---- canonical JSON and hashes ------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Canonical JSON text (object keys sorted) for hashing. */
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

/* The canonical text of v; an uncapped buffer only fails on ENOMEM. */
static void canonical_text(struct op_buf *sb, json_object *v)
{
	canonical_json(sb, v);
	if (op_buf_failed(sb))
		die("out of memory");
}

void orchd_json_hash(json_object *v, char hex[ORCHD_SHA256_HEXSZ])
{
	struct op_buf txt = OP_BUF_INIT;

	canonical_text(&txt, v);
	if (orchd_sha256_hex(orchd_buf_str(&txt), txt.len, hex) < 0)
		die("cannot hash: out of memory");
	op_buf_release(&txt);
}

/* ---- sites -------------------------------------------------------------- */

/* The value at a site's location in cfg, or NULL. */
static json_object *site_lookup(json_object *cfg, const struct orchd_ref_site *site,
				json_object **parent, size_t *last)
{
	json_object *cur = cfg, *up = NULL;

	for (size_t k = 0; k < site->nloc; k++) {
		const struct orchd_loc *l = &site->loc[k];

		up = cur;
		if (l->key) {
			if (!json_object_is_type(cur, json_type_object) ||
			    !json_object_object_get_ex(cur, l->key, &cur))
				return NULL;
		} else {
			if (!json_object_is_type(cur, json_type_array) ||
			    l->index >= json_object_array_length(cur))
				return NULL;
			cur = json_object_array_get_idx(cur, l->index);
		}
	}
	if (parent)
		*parent = up;
	if (last)
		*last = site->nloc - 1;
	return cur;
}

/* Position of key among obj's keys, in iteration order. */
static size_t key_rank(json_object *obj, const char *key)
{
	size_t r = 0;

	json_object_object_foreach(obj, k, v)
	{
		(void)v;
		if (!strcmp(k, key))
			return r;
		r++;
	}
	return r;
}

struct ranked {
	struct orchd_ref_site site;
	size_t *rank;
};

static int cmp_ranked(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	size_t n = x->site.nloc < y->site.nloc ? x->site.nloc : y->site.nloc;

	for (size_t k = 0; k < n; k++)
		if (x->rank[k] != y->rank[k])
			return x->rank[k] < y->rank[k] ? -1 : 1;
	return x->site.nloc < y->site.nloc ? -1 : x->site.nloc > y->site.nloc;
}

void orchd_refs_order(const struct orchd_pipeline *p, struct orchd_instance *in)
{
	json_object *cfg;
	struct ranked *r;

	if (in->nsites < 2)
		return;
	cfg = orchd_instance_config(p, in);
	r = xcalloc(in->nsites, sizeof(*r));
	for (size_t i = 0; i < in->nsites; i++) {
		json_object *cur = cfg;

		r[i].site = in->sites[i];
		r[i].rank = xcalloc(in->sites[i].nloc + 1, sizeof(size_t));
		for (size_t k = 0; k < in->sites[i].nloc && cur; k++) {
			const struct orchd_loc *l = &in->sites[i].loc[k];

			if (l->key) {
				r[i].rank[k] = key_rank(cur, l->key);
				if (!json_object_object_get_ex(cur, l->key, &cur))
					cur = NULL;
			} else {
				r[i].rank[k] = l->index;
				cur = json_object_array_get_idx(cur, l->index);
			}
		}
	}
	/* stable for equal ranks (cannot happen: two sites, one place) */
	qsort(r, in->nsites, sizeof(*r), cmp_ranked);
	for (size_t i = 0; i < in->nsites; i++) {
		in->sites[i] = r[i].site;
		free(r[i].rank);
	}
	free(r);
	json_object_put(cfg);
}

/* ---- resolution ------------------------------------------------------- */

struct resolution {
	const struct orchd_resolver *r;
	const struct orchd_instance *in;
	struct orchd_resolved *out;
	struct orchd_sha256 *inputs;
	const char *argv_key; /* the site being resolved is under this argv key */
};

static void why(struct resolution *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void why(struct resolution *res, const char *fmt, ...)
{
	va_list ap;

	if (res->out->why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(res->out->why, sizeof(res->out->why), fmt, ap);
	va_end(ap);
}

static void secret_used(struct resolution *res)
{
	res->out->secret_input = 1;
	if (res->argv_key && !res->out->secret_argv)
		res->out->secret_argv = res->argv_key;
}

/* Output key of upstream t: 1 found (*v borrowed, may be NULL for JSON
 * null), 0 not (the reason recorded). */
static int lookup(struct resolution *res, const struct orchd_ref *ref, json_object **v)
{
	const struct orchd_resolver *r = res->r;
	size_t t = ref->target_index;
	const struct orchd_instance *up_in = &r->p->inst[t];
	const struct orchd_upstream *up = r->upstream(r->arg, t);
	json_object *o, *sec;
	struct op_buf txt = OP_BUF_INIT;

	*v = NULL;
	if (up->unknown) {
		/* its plan has changes: a stored value may be stale, a mock
		 * stand-in is still what the pipeline author asked for */
		if (r->use_mock && up_in->mock_outputs &&
		    json_object_object_get_ex(up_in->mock_outputs, ref->key, v))
			goto found;
		why(res, "%s plans changes: its output '%s' is known after apply", up_in->id,
		    ref->key);
		return 0;
	}
	if (up->outputs && json_object_object_get_ex(up->outputs, ref->key, v)) {
		if (up->secrets && json_object_object_get_ex(up->secrets, ref->key, NULL))
			secret_used(res);
	} else if (up->stored && json_object_object_get_ex(up->stored, ref->key, &o)) {
		if (json_object_object_get_ex(o, "masked", NULL)) {
			why(res,
			    "output '%s' of %s is secret and no passphrase is set "
			    "(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)",
			    ref->key, up_in->id);
			return 0;
		}
		json_object_object_get_ex(o, "value", v);
		if (json_object_object_get_ex(o, "secret", &sec) && json_object_get_boolean(sec))
			secret_used(res);
	} else if (r->use_mock && up_in->mock_outputs &&
		   json_object_object_get_ex(up_in->mock_outputs, ref->key, v)) {
		/* plan: a stand-in value */
	} else {
		if (!up->stored && !up->outputs)
			why(res, "%s has no output '%s': it was never applied%s", up_in->id,
			    ref->key, r->use_mock ? " and has no mock_outputs" : "");
		else
			why(res, "%s has no output '%s'", up_in->id, ref->key);
		return 0;
	}
found:
	canonical_text(&txt, *v);
	orchd_sha256_update(res->inputs, ref->target, strlen(ref->target) + 1);
	orchd_sha256_update(res->inputs, ref->key, strlen(ref->key) + 1);
	orchd_sha256_update(res->inputs, orchd_buf_str(&txt), txt.len + 1);
	op_buf_release(&txt);
	return 1;
}

/* A site's value: a new object (or NULL for JSON null); *ok 0 when a
 * reference could not be resolved and the resolution is strict. */
static json_object *site_value(struct resolution *res, const struct orchd_ref_site *site, int *ok)
{
	struct op_buf text = OP_BUF_INIT;
	json_object *v, *str;

	if (site->nparts == 1 && site->parts[0].ref != (size_t)-1) {
		/* exactly one reference: the output's JSON value as it is */
		if (lookup(res, &res->in->refs[site->parts[0].ref], &v))
			return v ? json_object_get(v) : NULL;
		res->out->unresolved++;
		if (!res->r->lenient) {
			*ok = 0;
			return NULL;
		}
		return json_object_new_string_len(site->parts[0].text, (int)site->parts[0].len);
	}
	for (size_t k = 0; k < site->nparts; k++) {
		const struct orchd_site_part *part = &site->parts[k];

		if (part->ref == (size_t)-1) {
			op_buf_add(&text, part->text, part->len);
		} else if (lookup(res, &res->in->refs[part->ref], &v)) {
			op_buf_addstr(&text, json_object_is_type(v, json_type_string)
						     ? json_object_get_string(v)
						     : json_object_to_json_string_ext(
							       v, JSON_C_TO_STRING_PLAIN));
		} else {
			res->out->unresolved++;
			if (!res->r->lenient)
				*ok = 0;
			op_buf_add(&text, part->text, part->len);
		}
	}
	if (op_buf_failed(&text))
		die("out of memory");
	str = *ok ? json_object_new_string_len(orchd_buf_str(&text), (int)text.len) : NULL;
	op_buf_release(&text);
	return str;
}

int orchd_refs_resolve(const struct orchd_resolver *r, size_t i, struct orchd_resolved *out)
{
	struct resolution res = {r, &r->p->inst[i], out, orchd_sha256_new()};
	int ok = 1;

	memset(out, 0, sizeof(*out));
	if (!res.inputs)
		die("out of memory");
	out->config = orchd_instance_config(r->p, res.in);
	for (size_t k = 0; k < res.in->nsites && ok; k++) {
		const struct orchd_ref_site *site = &res.in->sites[k];
		json_object *parent = NULL, *v;
		size_t last;

		if (!site_lookup(out->config, site, &parent, &last))
			continue; /* cannot happen: the instance's keys win the merge */
		res.argv_key = NULL;
		for (char *const *a = r->argv_keys; a && *a && site->loc[0].key; a++)
			if (!strcmp(*a, site->loc[0].key))
				res.argv_key = *a;
		v = site_value(&res, site, &ok);
		if (!ok)
			break;
		if (site->loc[last].key)
			json_object_object_add(parent, site->loc[last].key, v);
		else
			json_object_array_put_idx(parent, site->loc[last].index, v);
	}
	if (orchd_sha256_final(res.inputs, out->inputs_hash) < 0)
		die("cannot hash: out of memory");
	orchd_sha256_free(res.inputs);
	if (!ok) {
		json_object_put(out->config);
		out->config = NULL;
		return -1;
	}
	return 0;
}

void orchd_resolved_release(struct orchd_resolved *out)
{
	json_object_put(out->config);
	out->config = NULL;
}

/* ---- staleness ---------------------------------------------------------- */

const char *orchd_refs_stale(const struct orchd_stack_record *prev,
			     const struct orchd_resolved *now)
{
	char hex[ORCHD_SHA256_HEXSZ];

	if (!prev || !prev->config_hash)
		return NULL;
	if (now->unresolved || !now->config)
		return "upstream outputs missing";
	if (prev->inputs_hash && strcmp(prev->inputs_hash, now->inputs_hash))
		return "upstream outputs changed";
	orchd_json_hash(now->config, hex);
	if (strcmp(prev->config_hash, hex))
		return "config changed";
	return NULL;
}
