/*
 * errors: configuration errors of C extensions and "did you mean"
 * (op_errors_*, op_closest, op_ext_fail_errors; see orchd_protocol.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "orchd_protocol.h"

static int add_msg(struct op_errors *e, const char *path, char *msg)
{
	char *p = msg ? strdup(path) : NULL;

	if (!p)
		goto nomem;
	if (e->nr == e->alloc) {
		size_t alloc = e->alloc ? 2 * e->alloc : 8;
		struct op_error *v = realloc(e->v, alloc * sizeof(*v));

		if (!v)
			goto nomem;
		e->v = v;
		e->alloc = alloc;
	}
	e->v[e->nr].path = p;
	e->v[e->nr].message = msg;
	e->nr++;
	return 0;
nomem:
	free(p);
	free(msg);
	errno = ENOMEM;
	return -1;
}

int op_errors_add(struct op_errors *e, const char *path, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	return add_msg(e, path, msg);
}

/* Levenshtein distance; SIZE_MAX-ish for strings of 63 bytes or more. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(size_t));
	}
	return prev[lb];
}

const char *op_closest(const char *name, const char *const *candidates)
{
	const char *best = NULL;
	size_t bestd = 3;

	for (size_t i = 0; name && candidates && candidates[i]; i++) {
		size_t d = distance(name, candidates[i]);

		if (d < bestd) {
			bestd = d;
			best = candidates[i];
		}
	}
	return best;
}

int op_errors_unknown_key(struct op_errors *e, const char *path, const char *key,
			  const char *const *known)
{
	const char *best = op_closest(key, known);

	if (best)
		return op_errors_add(e, path, "unknown key '%s' (did you mean '%s'?)", key, best);
	return op_errors_add(e, path, "unknown key '%s'", key);
}

void op_errors_release(struct op_errors *e)
{
	for (size_t i = 0; i < e->nr; i++) {
		free(e->v[i].path);
		free(e->v[i].message);
	}
	free(e->v);
	memset(e, 0, sizeof(*e));
}

char *op_error_text(const struct op_error *e)
{
	char *s;

	char *quoted;
	int named;

	if (!*e->path)
		return strdup(e->message);
	/* "unknown key 'x'" at x names its path already */
	if (asprintf(&quoted, "'%s'", e->path) < 0)
		return NULL;
	named = strstr(e->message, quoted) != NULL;
	free(quoted);
	if (named)
		return strdup(e->message);
	if (asprintf(&s, "%s: %s", e->path, e->message) < 0)
		return NULL;
	return s;
}

struct json_object *op_errors_json(const struct op_errors *e)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < e->nr; i++) {
		struct json_object *o = json_object_new_object();

		if (!o || json_object_object_add(o, "path", json_object_new_string(e->v[i].path)) ||
		    json_object_object_add(o, "message", json_object_new_string(e->v[i].message)) ||
		    json_object_array_add(a, o)) {
			json_object_put(o);
			json_object_put(a);
			errno = ENOMEM;
			return NULL;
		}
	}
	if (!a)
		errno = ENOMEM;
	return a;
}

int op_ext_fail_errors(struct op_ext *ext, const struct op_errors *errs, int changed,
		       const char *prefix)
{
	struct json_object *extra = json_object_new_object();
	char *first = errs->nr ? op_error_text(&errs->v[0]) : NULL;
	int ret;

	for (size_t i = 0; i < errs->nr; i++) {
		char *t = op_error_text(&errs->v[i]);

		if (t)
			op_ext_log(ext, "error", "%s", t);
		free(t);
	}
	if (extra)
		json_object_object_add(extra, "errors", op_errors_json(errs));
	if (errs->nr <= 1)
		ret = op_ext_result(ext, false, changed, extra, "%s%s", prefix ? prefix : "",
				    first ? first : "invalid configuration");
	else
		ret = op_ext_result(ext, false, changed, extra, "%s%s (and %zu more)",
				    prefix ? prefix : "", first ? first : "", errs->nr - 1);
	free(first);
	json_object_put(extra);
	return ret;
}
