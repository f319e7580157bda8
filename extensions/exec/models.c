/*
 * models: parse and validate the exec extension's config blob.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "orchd_protocol.h"

#include "models.h"

static const char *const known_keys[] = {
	"command", "env", "cwd", "plan_command", "destroy_command", "secret_outputs", NULL,
};

/* The extension links only libc, json-c and the protocol library: no
 * xmalloc.  Allocation failure in an extension is fatal. */
static void *must(void *p)
{
	if (!p) {
		fputs("exec: out of memory\n", stderr);
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

/* A list of strings: returns a NULL-terminated copy, or NULL after errors. */
static char **parse_argv(struct json_object *v, const char *key, int nonempty,
			 struct op_errors *errs)
{
	size_t n, before = errs->nr;
	char **out;

	if (!json_object_is_type(v, json_type_array)) {
		op_errors_add(errs, key, "must be a list of strings");
		return NULL;
	}
	n = json_object_array_length(v);
	if (nonempty && n == 0) {
		op_errors_add(errs, key, "must not be empty");
		return NULL;
	}
	out = must(calloc(n + 1, sizeof(*out)));
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(v, i);
		char path[128];

		if (!json_object_is_type(s, json_type_string)) {
			snprintf(path, sizeof(path), "%s[%zu]", key, i);
			op_errors_add(errs, path, "must be a string");
			continue;
		}
		out[i] = must(strdup(json_object_get_string(s)));
		if (nonempty && i == 0 && !*out[0])
			op_errors_add(errs, key, "program name must not be empty");
	}
	if (errs->nr != before) {
		for (size_t i = 0; i < n; i++)
			free(out[i]);
		free(out);
		return NULL;
	}
	return out;
}

static char **parse_env(struct json_object *v, struct op_errors *errs)
{
	size_t n = 0, before = errs->nr;
	char **out;

	if (!json_object_is_type(v, json_type_object)) {
		op_errors_add(errs, "env", "must be a map of strings");
		return NULL;
	}
	out = must(calloc((size_t)json_object_object_length(v) + 1, sizeof(*out)));
	json_object_object_foreach(v, k, val)
	{
		char path[256];

		snprintf(path, sizeof(path), "env.%s", k);
		if (!*k || strchr(k, '=')) {
			op_errors_add(errs, path, "is not a valid variable name");
			continue;
		}
		if (!json_object_is_type(val, json_type_string)) {
			op_errors_add(errs, path, "must be a string");
			continue;
		}
		if (asprintf(&out[n], "%s=%s", k, json_object_get_string(val)) < 0)
			must(NULL);
		n++;
	}
	if (errs->nr != before) {
		free_list(out);
		return NULL;
	}
	return out;
}

int exec_config_parse(const struct json_object *cfg, struct exec_config *out,
		      struct op_errors *errs)
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
	if (!json_object_object_get_ex(c, "command", &v))
		op_errors_add(errs, "command", "is required");
	else
		out->command = parse_argv(v, "command", 1, errs);
	if (json_object_object_get_ex(c, "env", &v))
		out->env = parse_env(v, errs);
	else
		out->env = must(calloc(1, sizeof(char *)));
	if (json_object_object_get_ex(c, "cwd", &v)) {
		if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v))
			op_errors_add(errs, "cwd", "must be a non-empty string");
		else
			out->cwd = must(strdup(json_object_get_string(v)));
	}
	if (json_object_object_get_ex(c, "plan_command", &v))
		out->plan_command = parse_argv(v, "plan_command", 1, errs);
	if (json_object_object_get_ex(c, "destroy_command", &v))
		out->destroy_command = parse_argv(v, "destroy_command", 1, errs);
	if (json_object_object_get_ex(c, "secret_outputs", &v))
		out->secret_outputs = parse_argv(v, "secret_outputs", 0, errs);
	else
		out->secret_outputs = must(calloc(1, sizeof(char *)));
	if (errs->nr != before) {
		exec_config_release(out);
		return -1;
	}
	return 0;
}

void exec_config_release(struct exec_config *c)
{
	free_list(c->command);
	free_list(c->env);
	free(c->cwd);
	free_list(c->plan_command);
	free_list(c->destroy_command);
	free_list(c->secret_outputs);
	memset(c, 0, sizeof(*c));
}

int exec_list_has(char *const *list, const char *name)
{
	for (size_t i = 0; list && list[i]; i++)
		if (!strcmp(list[i], name))
			return 1;
	return 0;
}

static const char schema[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"command\"],"
	"\"properties\":{"
	"\"command\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1,"
	"\"description\":\"argv of the command run by apply (no shell)\"},"
	"\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},"
	"\"description\":\"variables added to the command's environment\"},"
	"\"cwd\":{\"type\":\"string\",\"description\":\"working directory; relative to "
	"$ORCHD_PIPELINE_DIR if set, else to the instance workdir\"},"
	"\"plan_command\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
	"\"description\":\"argv run by plan (default: report 'would run')\"},"
	"\"destroy_command\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
	"\"description\":\"argv run by destroy (default: nothing)\"},"
	"\"secret_outputs\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
	"\"description\":\"output names sent as secret\"}}}";

struct json_object *exec_config_schema(void)
{
	return must(json_tokener_parse(schema));
}
