/*
 * models: parse and validate the exec extension's config blob.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <orchd/orchd_protocol.h>

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

/* A list of strings (an argv when argv): a NULL-terminated copy, or NULL
 * after errors. */
static char **parse_argv(struct json_object *v, const char *key, int argv, struct op_errors *errs)
{
	char **out;

	if (op_cfg_string_list(v, key, argv ? OP_CFG_ARGV : 0, errs, &out) < 0 && errno == ENOMEM)
		must(NULL);
	return out;
}

static char **parse_env(struct json_object *v, struct op_errors *errs)
{
	char **out;

	if (op_cfg_env_map(v, "env", 0, errs, &out) < 0 && errno == ENOMEM)
		must(NULL);
	return out;
}

int exec_config_parse(const struct json_object *cfg, struct exec_config *out,
		      struct op_errors *errs)
{
	struct json_object *c = (struct json_object *)(uintptr_t)cfg, *v;
	size_t before = errs->nr;

	memset(out, 0, sizeof(*out));
	if (op_cfg_check_map(cfg, known_keys, errs) < 0 && errno == ENOMEM)
		must(NULL);
	if (!json_object_is_type(c, json_type_object))
		return -1;
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
	op_cfg_list_free(c->command);
	op_cfg_list_free(c->env);
	free(c->cwd);
	op_cfg_list_free(c->plan_command);
	op_cfg_list_free(c->destroy_command);
	op_cfg_list_free(c->secret_outputs);
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
