/*
 * models: parse and validate the ansible extension's config blob.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <orchd/orchd_protocol.h>

#include "models.h"

static const char *const known_keys[] = {
	"playbook", "inventory", "extra_vars",	     "check_mode_for_plan", "env", "binary",
	"limit",    "tags",	 "destroy_playbook", "secret_outputs",	    NULL,
};

void *ans_must(void *p)
{
	if (!p) {
		fputs("ansible: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

static char **empty_list(void)
{
	return ans_must(calloc(1, sizeof(char *)));
}

static bool is_nonempty_string(struct json_object *v)
{
	return json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0;
}

/* A non-empty string, or NULL with an error. */
static char *parse_string(struct json_object *v, const char *key, struct op_errors *errs)
{
	if (!is_nonempty_string(v)) {
		op_errors_add(errs, key, "must be a non-empty string");
		return NULL;
	}
	return ans_must(strdup(json_object_get_string(v)));
}

/* A list of non-empty strings (or, with allow_one, a single string). */
static char **parse_strings(struct json_object *v, const char *key, bool allow_one,
			    struct op_errors *errs)
{
	unsigned flags = allow_one ? OP_CFG_ALLOW_ONE : OP_CFG_NONEMPTY_ITEMS;
	char **out;

	if (op_cfg_string_list(v, key, flags, errs, &out) < 0 && errno == ENOMEM)
		ans_must(NULL);
	return out;
}

static char **parse_env(struct json_object *v, struct op_errors *errs)
{
	char **out;

	if (op_cfg_env_map(v, "env", OP_CFG_ENV_IDENT, errs, &out) < 0 && errno == ENOMEM)
		ans_must(NULL);
	return out;
}

/*
 * inventory: a path (string), a list of host names, or a map host -> vars
 * (a map, or null for no vars).  Inline forms become out->hosts.
 */
static void parse_inventory(struct json_object *v, struct ans_config *out, struct op_errors *errs)
{
	struct json_object *hosts;
	size_t before = errs->nr;
	char path[512];

	if (json_object_is_type(v, json_type_string)) {
		out->inventory_path = parse_string(v, "inventory", errs);
		return;
	}
	hosts = ans_must(json_object_new_object());
	if (json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *h = json_object_array_get_idx(v, i);

			snprintf(path, sizeof(path), "inventory[%zu]", i);
			if (!is_nonempty_string(h))
				op_errors_add(errs, path, "must be a non-empty host name");
			else
				json_object_object_add(hosts, json_object_get_string(h),
						       ans_must(json_object_new_object()));
		}
	} else if (json_object_is_type(v, json_type_object) && json_object_object_length(v) > 0) {
		json_object_object_foreach(v, k, vars)
		{
			snprintf(path, sizeof(path), "inventory.%s", k);
			if (!*k)
				op_errors_add(errs, "inventory", "host names must not be empty");
			else if (!vars)
				json_object_object_add(hosts, k,
						       ans_must(json_object_new_object()));
			else if (!json_object_is_type(vars, json_type_object))
				op_errors_add(errs, path, "host vars must be a map");
			else
				json_object_object_add(hosts, k, json_object_get(vars));
		}
	} else {
		op_errors_add(errs, "inventory",
			      "must be a path, a non-empty list of host names or a non-empty "
			      "map of host to vars");
	}
	if (errs->nr != before) {
		json_object_put(hosts);
		return;
	}
	out->hosts = hosts;
}

static void parse_binary(struct json_object *v, struct ans_config *out, struct op_errors *errs)
{
	const char *s;

	if (!is_nonempty_string(v)) {
		op_errors_add(errs, "binary", "must be a non-empty string");
		return;
	}
	s = json_object_get_string(v);
	if (s[0] != '/' && strchr(s, '/')) {
		op_errors_add(errs, "binary",
			      "must be a command name or an absolute path (got '%s')", s);
		return;
	}
	out->binary = ans_must(strdup(s));
}

int ans_config_parse(const struct json_object *cfg, struct ans_config *out, struct op_errors *errs)
{
	struct json_object *c = (struct json_object *)(uintptr_t)cfg, *v;
	size_t before = errs->nr;

	memset(out, 0, sizeof(*out));
	out->check_mode_for_plan = true;
	if (op_cfg_check_map(cfg, known_keys, errs) < 0 && errno == ENOMEM)
		ans_must(NULL);
	if (!json_object_is_type(c, json_type_object))
		return -1;
	if (!json_object_object_get_ex(c, "playbook", &v))
		op_errors_add(errs, "playbook", "is required");
	else
		out->playbook = parse_string(v, "playbook", errs);
	if (json_object_object_get_ex(c, "destroy_playbook", &v))
		out->destroy_playbook = parse_string(v, "destroy_playbook", errs);
	if (json_object_object_get_ex(c, "inventory", &v)) {
		parse_inventory(v, out, errs);
	} else {
		out->hosts = ans_must(json_object_new_object());
		json_object_object_add(out->hosts, "localhost", ans_must(json_object_new_object()));
	}
	if (!json_object_object_get_ex(c, "extra_vars", &v))
		out->extra_vars = ans_must(json_object_new_object());
	else if (!json_object_is_type(v, json_type_object))
		op_errors_add(errs, "extra_vars", "must be a map");
	else
		out->extra_vars = json_object_get(v);
	if (json_object_object_get_ex(c, "check_mode_for_plan", &v)) {
		if (!json_object_is_type(v, json_type_boolean))
			op_errors_add(errs, "check_mode_for_plan", "must be true or false");
		else
			out->check_mode_for_plan = json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(c, "binary", &v))
		parse_binary(v, out, errs);
	else
		out->binary = ans_must(strdup("ansible-playbook"));
	if (json_object_object_get_ex(c, "limit", &v))
		out->limit = parse_string(v, "limit", errs);
	if (json_object_object_get_ex(c, "tags", &v)) {
		char **tags = parse_strings(v, "tags", true, errs);
		size_t len = 1;

		for (size_t i = 0; tags && tags[i]; i++)
			len += strlen(tags[i]) + 1;
		if (tags && tags[0]) {
			out->tags = ans_must(calloc(len, 1));
			for (size_t i = 0; tags[i]; i++) {
				if (i)
					strcat(out->tags, ",");
				strcat(out->tags, tags[i]);
			}
		}
		op_cfg_list_free(tags);
	}
	if (json_object_object_get_ex(c, "env", &v))
		out->env = parse_env(v, errs);
	else
		out->env = empty_list();
	if (json_object_object_get_ex(c, "secret_outputs", &v))
		out->secret_outputs = parse_strings(v, "secret_outputs", false, errs);
	else
		out->secret_outputs = empty_list();
	if (errs->nr != before) {
		ans_config_release(out);
		return -1;
	}
	return 0;
}

void ans_config_release(struct ans_config *c)
{
	free(c->playbook);
	free(c->destroy_playbook);
	free(c->inventory_path);
	json_object_put(c->hosts);
	json_object_put(c->extra_vars);
	free(c->binary);
	free(c->limit);
	free(c->tags);
	op_cfg_list_free(c->env);
	op_cfg_list_free(c->secret_outputs);
	memset(c, 0, sizeof(*c));
}

bool ans_config_secret_output(const struct ans_config *c, const char *key)
{
	for (size_t i = 0; c->secret_outputs && c->secret_outputs[i]; i++)
		if (!strcmp(c->secret_outputs[i], key))
			return true;
	return false;
}

char *ans_resolve_path(const char *path)
{
	return ans_must(op_cfg_resolve_path(path));
}

static void check_file(const char *key, const char *path, bool dir_ok, struct op_errors *errs)
{
	char *p = ans_resolve_path(path);
	struct stat st;

	if (stat(p, &st) < 0)
		op_errors_add(errs, key, "cannot access '%s': %s", p, strerror(errno));
	else if (!S_ISREG(st.st_mode) && !(dir_ok && S_ISDIR(st.st_mode)))
		op_errors_add(errs, key, "'%s' is not a regular file", p);
	free(p);
}

int ans_config_check_paths(const struct ans_config *c, struct op_errors *errs)
{
	size_t before = errs->nr;

	check_file("playbook", c->playbook, false, errs);
	if (c->destroy_playbook)
		check_file("destroy_playbook", c->destroy_playbook, false, errs);
	/* an inventory may be a directory of inventory sources */
	if (c->inventory_path)
		check_file("inventory", c->inventory_path, true, errs);
	return errs->nr == before ? 0 : -1;
}

static const char schema[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"playbook\"],"
	"\"properties\":{"
	"\"playbook\":{\"type\":\"string\",\"description\":\"the playbook file; absolute, or "
	"relative to the pipeline file's directory\"},"
	"\"inventory\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"array\",\"items\":"
	"{\"type\":\"string\"}},{\"type\":\"object\"}],\"description\":\"an inventory path, a "
	"list of host names or a map host -> vars (default: localhost, local connection)\"},"
	"\"extra_vars\":{\"type\":\"object\",\"description\":\"extra variables (any JSON "
	"values), passed as -e @file; never logged\"},"
	"\"check_mode_for_plan\":{\"type\":\"boolean\",\"default\":true,\"description\":"
	"\"plan runs the playbook with --check --diff\"},"
	"\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},"
	"\"description\":\"variables added to ansible-playbook's environment\"},"
	"\"binary\":{\"type\":\"string\",\"default\":\"ansible-playbook\"},"
	"\"limit\":{\"type\":\"string\",\"description\":\"--limit\"},"
	"\"tags\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"array\",\"items\":"
	"{\"type\":\"string\"}}],\"description\":\"--tags\"},"
	"\"destroy_playbook\":{\"type\":\"string\",\"description\":\"run by destroy (else "
	"destroy does nothing)\"},"
	"\"secret_outputs\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
	"\"description\":\"set_stats keys sent as secret outputs\"}}}";

struct json_object *ans_config_schema(void)
{
	return ans_must(json_tokener_parse(schema));
}
