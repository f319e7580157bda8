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

#include "orchd_protocol.h"

#include "models.h"

static const char *const known_keys[] = {"source", "vars", "var_files", "binary", "env", NULL};

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

static void free_list(char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
}

static char **parse_strings(struct json_object *v, const char *key, struct op_errors *errs)
{
	size_t n, before = errs->nr;
	char **out;

	if (!json_object_is_type(v, json_type_array)) {
		op_errors_add(errs, key, "must be a list of strings");
		return NULL;
	}
	n = json_object_array_length(v);
	out = tf_must(calloc(n + 1, sizeof(*out)));
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(v, i);
		char path[128];

		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		if (!json_object_is_type(s, json_type_string) || !json_object_get_string_len(s)) {
			op_errors_add(errs, path, "must be a non-empty string");
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

static char **parse_env(struct json_object *v, struct op_errors *errs)
{
	size_t n = 0, before = errs->nr;
	char **out;

	if (!json_object_is_type(v, json_type_object)) {
		op_errors_add(errs, "env", "must be a map of strings");
		return NULL;
	}
	out = tf_must(calloc((size_t)json_object_object_length(v) + 1, sizeof(*out)));
	json_object_object_foreach(v, k, val)
	{
		char path[256];

		snprintf(path, sizeof(path), "env.%s", k);
		if (!valid_name(k)) {
			op_errors_add(errs, path, "is not a valid variable name");
			continue;
		}
		if (!json_object_is_type(val, json_type_string)) {
			op_errors_add(errs, path, "must be a string");
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

static void parse_binary(struct json_object *v, struct tf_config *out, struct op_errors *errs)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string)) {
		op_errors_add(errs, "binary", "must be a string");
		return;
	}
	s = json_object_get_string(v);
	if (strcmp(s, "tofu") && strcmp(s, "terraform") && s[0] != '/') {
		op_errors_add(errs, "binary",
			      "must be 'tofu', 'terraform' or an absolute path (got '%s')", s);
		return;
	}
	out->binary = tf_must(strdup(s));
}

int tf_config_parse(const struct json_object *cfg, struct tf_config *out, struct op_errors *errs)
{
	struct json_object *c = unconst(cfg), *v;
	size_t before = errs->nr;

	memset(out, 0, sizeof(*out));
	if (!json_object_is_type(c, json_type_object)) {
		op_errors_add(errs, "", "config must be a map");
		return -1;
	}
	json_object_object_foreach(c, k, val)
	{
		int known = 0;

		(void)val;
		for (size_t i = 0; known_keys[i]; i++)
			known |= !strcmp(k, known_keys[i]);
		if (!known)
			op_errors_unknown_key(errs, "", k, known_keys);
	}
	if (!json_object_object_get_ex(c, "source", &v))
		op_errors_add(errs, "source", "is required");
	else if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v))
		op_errors_add(errs, "source", "must be a non-empty string");
	else
		out->source = tf_must(strdup(json_object_get_string(v)));
	if (!json_object_object_get_ex(c, "vars", &v))
		out->vars = tf_must(json_object_new_object());
	else if (!json_object_is_type(v, json_type_object))
		op_errors_add(errs, "vars", "must be a map");
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

int tf_config_check_paths(const struct tf_config *c, struct op_errors *errs)
{
	size_t before = errs->nr;
	char *p = tf_resolve_path(c->source);
	struct stat st;

	if (stat(p, &st) < 0)
		op_errors_add(errs, "source", "cannot access '%s': %s", p, strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		op_errors_add(errs, "source", "'%s' is not a directory", p);
	free(p);
	for (size_t i = 0; c->var_files[i]; i++) {
		char path[64];

		snprintf(path, sizeof(path), "var_files[%zu]", i);
		p = tf_resolve_path(c->var_files[i]);
		if (stat(p, &st) < 0)
			op_errors_add(errs, path, "cannot access '%s': %s", p, strerror(errno));
		else if (!S_ISREG(st.st_mode))
			op_errors_add(errs, path, "'%s' is not a regular file", p);
		free(p);
	}
	return errs->nr == before ? 0 : -1;
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
