/*
 * models: parse and validate the helm extension's config blob (models.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include <orchd/orchd_protocol.h>

#include "models.h"

static const char *const known_keys[] = {
	"release",	"namespace", "create_namespace", "chart",   "version", "values",
	"values_files", "set",	     "secret_values",	 "timeout", "atomic",  "wait",
	"kubeconfig",	"context",   "outputs_from",	 "env",	    NULL};
static const char *const output_keys[] = {"kind",  "name",   "namespace", "jsonpath",
					  "notes", "secret", NULL};

void *hm_must(void *p)
{
	if (!p) {
		fputs("helm: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

static char *opt_string(struct json_object *c, const char *key, const char *dflt,
			struct op_errors *errs)
{
	char *s;

	if (op_cfg_string(c, key, dflt, errs, &s) < 0 && errno == ENOMEM)
		hm_must(NULL);
	return s;
}

static bool opt_bool(struct json_object *c, const char *key, bool dflt, struct op_errors *errs)
{
	bool b;

	if (op_cfg_bool(c, key, dflt, errs, &b) < 0 && errno == ENOMEM)
		hm_must(NULL);
	return b;
}

static struct json_object *opt_map(struct json_object *c, const char *key, struct op_errors *errs)
{
	struct json_object *v;

	if (!json_object_object_get_ex(c, key, &v))
		return hm_must(json_object_new_object());
	if (!json_object_is_type(v, json_type_object)) {
		op_errors_add(errs, key, "must be a map");
		return hm_must(json_object_new_object());
	}
	return json_object_get(v);
}

static bool is_url(const char *s)
{
	return !strncmp(s, "oci://", 6) || !strncmp(s, "https://", 8) || !strncmp(s, "http://", 7);
}

/*
 * A relative path: WORKDIR/path when that exists (a source fetched there),
 * else resolved against the pipeline dir.  Malloc'ed.
 */
static char *find_path(const char *path, const char *workdir)
{
	struct stat st;
	char *p;

	if (path[0] != '/' && workdir && *workdir) {
		if (asprintf(&p, "%s/%s", workdir, path) < 0)
			hm_must(NULL);
		if (stat(p, &st) == 0)
			return p;
		free(p);
	}
	return hm_must(op_cfg_resolve_path(path));
}

static void parse_chart(struct json_object *c, const char *workdir, struct hm_config *out,
			struct op_errors *errs)
{
	struct stat st;

	out->chart = opt_string(c, "chart", NULL, errs);
	if (!out->chart) {
		if (!op_has(c, "chart"))
			op_errors_add(errs, "chart", "is required");
		return;
	}
	if (is_url(out->chart)) {
		out->chart_path = hm_must(strdup(out->chart));
		return;
	}
	out->chart_path = find_path(out->chart, workdir);
	if (stat(out->chart_path, &st) < 0)
		op_errors_add(errs, "chart", "cannot access '%s': %s", out->chart_path,
			      strerror(errno));
	else if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		op_errors_add(errs, "chart", "'%s' is neither a chart directory nor a .tgz",
			      out->chart_path);
}

static void parse_values_files(struct json_object *c, const char *workdir, struct hm_config *out,
			       struct op_errors *errs)
{
	struct json_object *v;
	char **list = NULL;
	size_t n = 0;

	if (json_object_object_get_ex(c, "values_files", &v) &&
	    op_cfg_string_list(v, "values_files", OP_CFG_ALLOW_ONE, errs, &list) < 0 &&
	    errno == ENOMEM)
		hm_must(NULL);
	while (list && list[n])
		n++;
	out->values_files = hm_must(calloc(n + 1, sizeof(char *)));
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		out->values_files[i] = find_path(list[i], workdir);
		if (stat(out->values_files[i], &st) < 0 || !S_ISREG(st.st_mode))
			op_errors_add(errs, "values_files",
				      "values_files[%zu]: cannot read '%s'%s%s", i,
				      out->values_files[i], errno ? ": " : "",
				      errno ? strerror(errno) : "");
	}
	op_cfg_list_free(list);
}

static void parse_outputs(struct json_object *c, struct hm_config *out, struct op_errors *errs)
{
	struct json_object *v;
	size_t n = 0;

	if (!json_object_object_get_ex(c, "outputs_from", &v))
		return;
	if (!json_object_is_type(v, json_type_object)) {
		op_errors_add(errs, "outputs_from",
			      "must be a map KEY -> {kind, name, jsonpath} or {notes}");
		return;
	}
	out->outputs = hm_must(calloc(json_object_object_length(v) + 1, sizeof(*out->outputs)));
	json_object_object_foreach(v, key, spec)
	{
		struct hm_output_from *o = &out->outputs[n];
		const char *kind = op_get_str(spec, "kind"), *name = op_get_str(spec, "name");
		const char *ns = op_get_str(spec, "namespace"), *jp = op_get_str(spec, "jsonpath");
		const char *notes = op_get_str(spec, "notes");
		char path[320];

		snprintf(path, sizeof(path), "outputs_from.%s", key);
		if (!json_object_is_type(spec, json_type_object)) {
			op_errors_add(errs, path,
				      "must be a map {kind, name, jsonpath} or {notes}");
			continue;
		}
		json_object_object_foreach(spec, k2, v2)
		{
			size_t j = 0;

			(void)v2;
			while (output_keys[j] && strcmp(output_keys[j], k2))
				j++;
			if (!output_keys[j] &&
			    op_errors_unknown_key(errs, path, k2, output_keys) < 0 &&
			    errno == ENOMEM)
				hm_must(NULL);
		}
		if (op_has(spec, "secret") &&
		    !json_object_is_type(op_get(spec, "secret"), json_type_boolean))
			op_errors_add(errs, path, "'secret' must be true or false");
		if (notes) {
			int rc = regcomp(&o->re, notes, REG_EXTENDED);

			if (kind || name || jp) {
				op_errors_add(errs, path,
					      "'notes' excludes kind, name and jsonpath");
				if (!rc)
					regfree(&o->re);
				continue;
			}
			if (rc) {
				char msg[256];

				regerror(rc, &o->re, msg, sizeof(msg));
				op_errors_add(errs, path, "'notes': not a regular expression: %s",
					      msg);
				continue;
			}
			o->notes = hm_must(strdup(notes));
		} else if (!kind || !*kind || !name || !*name || !jp || !*jp) {
			op_errors_add(errs, path,
				      "needs 'kind', 'name' and 'jsonpath' (strings), or 'notes'");
			continue;
		} else {
			o->kind = hm_must(strdup(kind));
			o->name = hm_must(strdup(name));
			o->namespace = ns && *ns ? hm_must(strdup(ns)) : NULL;
			if (jp[0] == '{')
				o->jsonpath = hm_must(strdup(jp));
			else if (asprintf(&o->jsonpath, "{%s%s}", jp[0] == '.' ? "" : ".", jp) < 0)
				hm_must(NULL);
		}
		o->key = hm_must(strdup(key));
		o->secret = op_get_bool(spec, "secret", false);
		n++;
	}
	out->noutputs = n;
}

int hm_config_parse(const struct json_object *cfg, const char *instance, const char *workdir,
		    struct hm_config *out, struct op_errors *errs)
{
	struct json_object *c = (struct json_object *)(uintptr_t)cfg, *v;
	size_t before = errs->nr;
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (op_cfg_check_map(cfg, known_keys, errs) < 0 && errno == ENOMEM)
		hm_must(NULL);
	if (!json_object_is_type(c, json_type_object))
		return -1;
	out->release = opt_string(c, "release", instance && *instance ? instance : NULL, errs);
	if (!out->release && !op_has(c, "release"))
		op_errors_add(errs, "release", "is required (the instance's name is not known)");
	else if (out->release && !op_cfg_dns_label(out->release, 53))
		op_errors_add(errs, "release",
			      "'%s' is not a valid release name (lower-case letters, digits and "
			      "'-', at most 53)",
			      out->release);
	out->namespace = opt_string(c, "namespace", "default", errs);
	if (out->namespace && !op_cfg_dns_label(out->namespace, 63))
		op_errors_add(errs, "namespace", "'%s' is not a valid namespace name",
			      out->namespace);
	out->create_namespace = opt_bool(c, "create_namespace", false, errs);
	parse_chart(c, workdir, out, errs);
	out->version = opt_string(c, "version", NULL, errs);
	out->values = opt_map(c, "values", errs);
	out->secret_values = opt_map(c, "secret_values", errs);
	out->set = opt_map(c, "set", errs);
	parse_values_files(c, workdir, out, errs);
	out->timeout = opt_string(c, "timeout", "5m", errs);
	if (out->timeout && !op_cfg_duration_valid(out->timeout))
		op_errors_add(errs, "timeout", "'%s' is not a duration (30s, 5m, 1h)",
			      out->timeout);
	out->atomic = opt_bool(c, "atomic", false, errs);
	out->wait = opt_bool(c, "wait", false, errs);
	out->context = opt_string(c, "context", NULL, errs);
	if (json_object_object_get_ex(c, "kubeconfig", &v)) {
		if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v)) {
			op_errors_add(errs, "kubeconfig", "must be a non-empty string");
		} else {
			out->kubeconfig = find_path(json_object_get_string(v), workdir);
			if (stat(out->kubeconfig, &st) < 0)
				op_errors_add(errs, "kubeconfig", "cannot access '%s': %s",
					      out->kubeconfig, strerror(errno));
		}
	}
	parse_outputs(c, out, errs);
	if (json_object_object_get_ex(c, "env", &v)) {
		if (op_cfg_env_map(v, "env", OP_CFG_ENV_IDENT, errs, &out->env) < 0 &&
		    errno == ENOMEM)
			hm_must(NULL);
	} else {
		out->env = hm_must(calloc(1, sizeof(char *)));
	}
	if (errs->nr != before) {
		hm_config_release(out);
		return -1;
	}
	return 0;
}

void hm_config_release(struct hm_config *c)
{
	for (size_t i = 0; i < c->noutputs; i++) {
		struct hm_output_from *o = &c->outputs[i];

		free(o->key);
		free(o->kind);
		free(o->name);
		free(o->namespace);
		free(o->jsonpath);
		if (o->notes)
			regfree(&o->re);
		free(o->notes);
	}
	free(c->outputs);
	free(c->release);
	free(c->namespace);
	free(c->chart);
	free(c->chart_path);
	free(c->version);
	json_object_put(c->values);
	json_object_put(c->secret_values);
	json_object_put(c->set);
	op_cfg_list_free(c->values_files);
	free(c->timeout);
	free(c->kubeconfig);
	free(c->context);
	op_cfg_list_free(c->env);
	memset(c, 0, sizeof(*c));
}

static const char schema[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"chart\"],"
	"\"properties\":{"
	"\"release\":{\"type\":\"string\",\"description\":\"default: the instance's name\"},"
	"\"namespace\":{\"type\":\"string\",\"default\":\"default\"},"
	"\"create_namespace\":{\"type\":\"boolean\",\"default\":false},"
	"\"chart\":{\"type\":\"string\",\"description\":\"a chart directory or .tgz (in the "
	"workdir, where sources are fetched, else relative to the pipeline file's "
	"directory), or an oci:// or https:// chart reference\"},"
	"\"version\":{\"type\":\"string\"},"
	"\"values\":{\"type\":\"object\"},\"secret_values\":{\"type\":\"object\","
	"\"description\":\"values masked everywhere, never on a command line, never in "
	"the state\"},"
	"\"values_files\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
	"\"set\":{\"type\":\"object\",\"description\":\"KEY -> value, as helm --set-json\"},"
	"\"timeout\":{\"type\":\"string\",\"default\":\"5m\"},"
	"\"atomic\":{\"type\":\"boolean\",\"default\":false},"
	"\"wait\":{\"type\":\"boolean\",\"default\":false},"
	"\"kubeconfig\":{\"type\":\"string\"},\"context\":{\"type\":\"string\"},"
	"\"outputs_from\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"object\","
	"\"properties\":{\"kind\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},"
	"\"namespace\":{\"type\":\"string\"},\"jsonpath\":{\"type\":\"string\"},"
	"\"notes\":{\"type\":\"string\"},\"secret\":{\"type\":\"boolean\"}}}},"
	"\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}}}";

struct json_object *hm_config_schema(void)
{
	return hm_must(json_tokener_parse(schema));
}
