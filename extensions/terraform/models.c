/*
 * models: parse and validate the terraform extension's config blob.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "models.h"

static const char *const known_keys[] = {"source", "vars", "var_files", "binary", "env"};

void *tf_must(void *p)
{
	if (!p) {
		fputs("terraform: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

static struct json_object *unconst(const struct json_object *o)
{
	return (struct json_object *)(uintptr_t)o;
}

void tf_add_error(struct tf_errors *e, const char *path, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (e->nr == e->alloc) {
		e->alloc = e->alloc ? 2 * e->alloc : 8;
		e->v = tf_must(realloc(e->v, e->alloc * sizeof(*e->v)));
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	e->v[e->nr].path = tf_must(strdup(path));
	e->v[e->nr].message = tf_must(msg);
	e->nr++;
}

static void free_list(char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
}

static char **parse_strings(struct json_object *v, const char *key, struct tf_errors *errs)
{
	size_t n, before = errs->nr;
	char **out;

	if (!json_object_is_type(v, json_type_array)) {
		tf_add_error(errs, key, "must be a list of strings");
		return NULL;
	}
	n = json_object_array_length(v);
	out = tf_must(calloc(n + 1, sizeof(*out)));
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(v, i);
		char path[128];

		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		if (!json_object_is_type(s, json_type_string) || !json_object_get_string_len(s)) {
			tf_add_error(errs, path, "must be a non-empty string");
			out[i] = tf_must(strdup(""));
			continue;
		}
		out[i] = tf_must(strdup(json_object_get_string(s)));
	}
	if (errs->nr != before) {
		free_list(out);
		return NULL;
	}
	return out;
}

static bool valid_name(const char *k)
{
	if (!*k || (*k >= '0' && *k <= '9'))
		return false;
	for (; *k; k++)
		if (!(*k == '_' || (*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9')))
			return false;
	return true;
}

static char **parse_env(struct json_object *v, struct tf_errors *errs)
{
	size_t n = 0, before = errs->nr;
	char **out;

	if (!json_object_is_type(v, json_type_object)) {
		tf_add_error(errs, "env", "must be a map of strings");
		return NULL;
	}
	out = tf_must(calloc((size_t)json_object_object_length(v) + 1, sizeof(*out)));
	json_object_object_foreach(v, k, val)
	{
		char path[256];

		snprintf(path, sizeof(path), "env.%s", k);
		if (!valid_name(k)) {
			tf_add_error(errs, path, "is not a valid variable name");
			continue;
		}
		if (!json_object_is_type(val, json_type_string)) {
			tf_add_error(errs, path, "must be a string");
			continue;
		}
		if (asprintf(&out[n], "%s=%s", k, json_object_get_string(val)) < 0)
			tf_must(NULL);
		n++;
	}
	if (errs->nr != before) {
		free_list(out);
		return NULL;
	}
	return out;
}

/* Levenshtein distance, for "did you mean" (short strings only). */
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

static void unknown_key(const char *k, struct tf_errors *errs)
{
	const char *best = NULL;
	size_t bestd = 3;

	for (size_t i = 0; i < sizeof(known_keys) / sizeof(known_keys[0]); i++) {
		size_t d = distance(k, known_keys[i]);

		if (d < bestd) {
			bestd = d;
			best = known_keys[i];
		}
	}
	if (best)
		tf_add_error(errs, "", "unknown key '%s' (did you mean '%s'?)", k, best);
	else
		tf_add_error(errs, "", "unknown key '%s'", k);
}

static void parse_binary(struct json_object *v, struct tf_config *out, struct tf_errors *errs)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string)) {
		tf_add_error(errs, "binary", "must be a string");
		return;
	}
	s = json_object_get_string(v);
	if (strcmp(s, "tofu") && strcmp(s, "terraform") && s[0] != '/') {
		tf_add_error(errs, "binary",
			     "must be 'tofu', 'terraform' or an absolute path (got '%s')", s);
		return;
	}
	out->binary = tf_must(strdup(s));
}

int tf_config_parse(const struct json_object *cfg, struct tf_config *out, struct tf_errors *errs)
{
	struct json_object *c = unconst(cfg), *v;
	size_t before = errs->nr;

	memset(out, 0, sizeof(*out));
	if (!json_object_is_type(c, json_type_object)) {
		tf_add_error(errs, "", "config must be a map");
		return -1;
	}
	json_object_object_foreach(c, k, val)
	{
		int known = 0;

		(void)val;
		for (size_t i = 0; i < sizeof(known_keys) / sizeof(known_keys[0]); i++)
			known |= !strcmp(k, known_keys[i]);
		if (!known)
			unknown_key(k, errs);
	}
	if (!json_object_object_get_ex(c, "source", &v))
		tf_add_error(errs, "source", "is required");
	else if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v))
		tf_add_error(errs, "source", "must be a non-empty string");
	else
		out->source = tf_must(strdup(json_object_get_string(v)));
	if (!json_object_object_get_ex(c, "vars", &v))
		out->vars = tf_must(json_object_new_object());
	else if (!json_object_is_type(v, json_type_object))
		tf_add_error(errs, "vars", "must be a map");
	else
		out->vars = json_object_get(v);
	if (json_object_object_get_ex(c, "var_files", &v))
		out->var_files = parse_strings(v, "var_files", errs);
	else
		out->var_files = tf_must(calloc(1, sizeof(char *)));
	if (json_object_object_get_ex(c, "binary", &v))
		parse_binary(v, out, errs);
	else
		out->binary = tf_must(strdup("tofu"));
	if (json_object_object_get_ex(c, "env", &v))
		out->env = parse_env(v, errs);
	else
		out->env = tf_must(calloc(1, sizeof(char *)));
	if (errs->nr != before) {
		tf_config_release(out);
		return -1;
	}
	return 0;
}

void tf_config_release(struct tf_config *c)
{
	free(c->source);
	json_object_put(c->vars);
	free_list(c->var_files);
	free(c->binary);
	free_list(c->env);
	memset(c, 0, sizeof(*c));
}

char *tf_resolve_path(const char *path)
{
	const char *base = getenv("ORCHD_PIPELINE_DIR");
	char *out, cwd[4096];

	if (path[0] == '/')
		return tf_must(strdup(path));
	if (!base || !*base)
		base = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
	if (asprintf(&out, "%s/%s", base, path) < 0)
		tf_must(NULL);
	return out;
}

int tf_config_check_paths(const struct tf_config *c, struct tf_errors *errs)
{
	size_t before = errs->nr;
	char *p = tf_resolve_path(c->source);
	struct stat st;

	if (stat(p, &st) < 0)
		tf_add_error(errs, "source", "cannot access '%s': %s", p, strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		tf_add_error(errs, "source", "'%s' is not a directory", p);
	free(p);
	for (size_t i = 0; c->var_files[i]; i++) {
		char path[64];

		snprintf(path, sizeof(path), "var_files[%zu]", i);
		p = tf_resolve_path(c->var_files[i]);
		if (stat(p, &st) < 0)
			tf_add_error(errs, path, "cannot access '%s': %s", p, strerror(errno));
		else if (!S_ISREG(st.st_mode))
			tf_add_error(errs, path, "'%s' is not a regular file", p);
		free(p);
	}
	return errs->nr == before ? 0 : -1;
}

void tf_errors_release(struct tf_errors *e)
{
	for (size_t i = 0; i < e->nr; i++) {
		free(e->v[i].path);
		free(e->v[i].message);
	}
	free(e->v);
	memset(e, 0, sizeof(*e));
}

char *tf_error_text(const struct tf_error *e)
{
	char *s;

	if (*e->path) {
		if (asprintf(&s, "%s: %s", e->path, e->message) < 0)
			s = NULL;
	} else {
		s = strdup(e->message);
	}
	return tf_must(s);
}

struct json_object *tf_errors_json(const struct tf_errors *e)
{
	struct json_object *a = tf_must(json_object_new_array());

	for (size_t i = 0; i < e->nr; i++) {
		struct json_object *o = tf_must(json_object_new_object());

		json_object_object_add(o, "path", json_object_new_string(e->v[i].path));
		json_object_object_add(o, "message", json_object_new_string(e->v[i].message));
		json_object_array_add(a, o);
	}
	return a;
}

static const char schema[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"source\"],"
	"\"properties\":{"
	"\"source\":{\"type\":\"string\",\"description\":\"directory of .tf files; absolute, "
	"or relative to the pipeline file's directory\"},"
	"\"vars\":{\"type\":\"object\",\"description\":\"input variables (any JSON values), "
	"written to orchd.auto.tfvars.json and passed with -var-file\"},"
	"\"var_files\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
	"\"description\":\"extra -var-file paths, relative to the pipeline file's directory\"},"
	"\"binary\":{\"type\":\"string\",\"default\":\"tofu\",\"description\":\"'tofu', "
	"'terraform' or an absolute path\"},"
	"\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},"
	"\"description\":\"variables added to the tool's environment\"}}}";

struct json_object *tf_config_schema(void)
{
	return tf_must(json_tokener_parse(schema));
}
