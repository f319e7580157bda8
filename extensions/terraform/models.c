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

#include <orchd/orchd_protocol.h>

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

static char **parse_strings(struct json_object *v, const char *key, struct op_errors *errs)
{
	char **out;

	if (op_cfg_string_list(v, key, OP_CFG_NONEMPTY_ITEMS, errs, &out) < 0 && errno == ENOMEM)
		tf_must(NULL);
	return out;
}

static char **parse_env(struct json_object *v, struct op_errors *errs)
{
	char **out;

	if (op_cfg_env_map(v, "env", OP_CFG_ENV_IDENT, errs, &out) < 0 && errno == ENOMEM)
		tf_must(NULL);
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
	struct json_object *c = (struct json_object *)(uintptr_t)cfg, *v;
	size_t before = errs->nr;

	memset(out, 0, sizeof(*out));
	if (op_cfg_check_map(cfg, known_keys, errs) < 0 && errno == ENOMEM)
		tf_must(NULL);
	if (!json_object_is_type(c, json_type_object))
		return -1;
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
	op_cfg_list_free(c->var_files);
	free(c->binary);
	op_cfg_list_free(c->env);
	memset(c, 0, sizeof(*c));
}

char *tf_resolve_path(const char *path)
{
	return tf_must(op_cfg_resolve_path(path));
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
