/*
 * models: parse and validate the kubectl extension's config blob, and the
 * object identities of its state (see models.h).
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
	"manifests",  "namespace", "create_namespace", "field_manager",	 "force_conflicts", "prune",
	"kubeconfig", "context",   "request_timeout",  "delete_timeout", "outputs_from",    "env",
	NULL};
static const char *const output_keys[] = {"kind", "name", "namespace", "jsonpath", "secret", NULL};

void *kc_must(void *p)
{
	if (!p) {
		fputs("kubectl: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

static char *opt_string(struct json_object *c, const char *key, const char *dflt,
			struct op_errors *errs)
{
	char *s;

	if (op_cfg_string(c, key, dflt, errs, &s) < 0 && errno == ENOMEM)
		kc_must(NULL);
	return s;
}

static bool opt_bool(struct json_object *c, const char *key, bool dflt, struct op_errors *errs)
{
	bool b;

	if (op_cfg_bool(c, key, dflt, errs, &b) < 0 && errno == ENOMEM)
		kc_must(NULL);
	return b;
}

static bool has_kustomization(const char *dir)
{
	static const char *const names[] = {"kustomization.yaml", "kustomization.yml",
					    "Kustomization"};
	struct stat st;

	for (size_t i = 0; i < 3; i++) {
		char *p;
		bool found;

		if (asprintf(&p, "%s/%s", dir, names[i]) < 0)
			kc_must(NULL);
		found = stat(p, &st) == 0 && S_ISREG(st.st_mode);
		free(p);
		if (found)
			return true;
	}
	return false;
}

static void parse_source(struct json_object *v, size_t i, struct kc_source *src,
			 struct op_errors *errs)
{
	char key[48];
	struct stat st;

	snprintf(key, sizeof(key), "manifests[%zu]", i);
	if (json_object_is_type(v, json_type_object)) {
		const char *kind = op_get_str(v, "kind"), *api = op_get_str(v, "apiVersion");
		struct json_object *meta = op_get(v, "metadata");

		if (!kind || !*kind || !api || !*api)
			op_errors_add(errs, key, "an inline object needs 'apiVersion' and 'kind'");
		else if (!op_get_str(meta, "name") && !op_get_str(meta, "generateName"))
			op_errors_add(errs, key, "an inline object needs 'metadata.name'");
		else if (op_get_str(meta, "generateName") && !op_get_str(meta, "name"))
			op_errors_add(errs, key,
				      "'metadata.generateName' is not supported: orchd tracks "
				      "objects by name");
		src->kind = KC_INLINE;
		src->obj = json_object_get(v);
		return;
	}
	if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v)) {
		op_errors_add(errs, key,
			      "must be a path (a file, a directory or a kustomize directory) or "
			      "an object");
		return;
	}
	src->path = kc_must(op_cfg_resolve_path(json_object_get_string(v)));
	if (stat(src->path, &st) < 0) {
		op_errors_add(errs, key, "cannot access '%s': %s", src->path, strerror(errno));
	} else if (S_ISDIR(st.st_mode)) {
		src->kind = has_kustomization(src->path) ? KC_KUSTOMIZE : KC_DIR;
	} else if (S_ISREG(st.st_mode)) {
		src->kind = KC_FILE;
	} else {
		op_errors_add(errs, key, "'%s' is neither a file nor a directory", src->path);
	}
}

static void parse_manifests(struct json_object *c, struct kc_config *out, struct op_errors *errs)
{
	struct json_object *v;
	size_t n;

	if (!json_object_object_get_ex(c, "manifests", &v)) {
		op_errors_add(errs, "manifests", "is required");
		return;
	}
	if (json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_object)) {
		out->sources = kc_must(calloc(1, sizeof(*out->sources)));
		out->nsources = 1;
		parse_source(v, 0, &out->sources[0], errs);
		return;
	}
	if (!json_object_is_type(v, json_type_array) || !(n = json_object_array_length(v))) {
		op_errors_add(errs, "manifests", "must be a non-empty list of paths or objects");
		return;
	}
	out->sources = kc_must(calloc(n, sizeof(*out->sources)));
	out->nsources = n;
	for (size_t i = 0; i < n; i++)
		parse_source(json_object_array_get_idx(v, i), i, &out->sources[i], errs);
}

static void parse_outputs(struct json_object *c, struct kc_config *out, struct op_errors *errs)
{
	struct json_object *v;
	size_t n = 0;

	if (!json_object_object_get_ex(c, "outputs_from", &v))
		return;
	if (!json_object_is_type(v, json_type_object)) {
		op_errors_add(errs, "outputs_from",
			      "must be a map KEY -> {kind, name, jsonpath, namespace, secret}");
		return;
	}
	out->outputs = kc_must(calloc(json_object_object_length(v) + 1, sizeof(*out->outputs)));
	json_object_object_foreach(v, key, spec)
	{
		struct kc_output_from *o = &out->outputs[n++];
		const char *kind = op_get_str(spec, "kind"), *name = op_get_str(spec, "name");
		const char *ns = op_get_str(spec, "namespace"), *jp = op_get_str(spec, "jsonpath");
		char path[320];

		o->key = kc_must(strdup(key));
		snprintf(path, sizeof(path), "outputs_from.%s", key);
		if (!json_object_is_type(spec, json_type_object)) {
			op_errors_add(errs, path, "must be a map {kind, name, jsonpath}");
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
				kc_must(NULL);
		}
		if (!kind || !*kind || !name || !*name || !jp || !*jp) {
			op_errors_add(errs, path, "needs 'kind', 'name' and 'jsonpath' (strings)");
			continue;
		}
		if (op_has(spec, "secret") &&
		    !json_object_is_type(op_get(spec, "secret"), json_type_boolean))
			op_errors_add(errs, path, "'secret' must be true or false");
		o->kind = kc_must(strdup(kind));
		o->name = kc_must(strdup(name));
		o->namespace = ns && *ns ? kc_must(strdup(ns)) : NULL;
		if (jp[0] == '{') {
			o->jsonpath = kc_must(strdup(jp));
		} else if (asprintf(&o->jsonpath, "{%s%s}", jp[0] == '.' ? "" : ".", jp) < 0) {
			kc_must(NULL);
		}
		o->secret = op_get_bool(spec, "secret", false);
	}
	out->noutputs = n;
}

int kc_config_parse(const struct json_object *cfg, struct kc_config *out, struct op_errors *errs)
{
	struct json_object *c = (struct json_object *)(uintptr_t)cfg, *v;
	size_t before = errs->nr;
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (op_cfg_check_map(cfg, known_keys, errs) < 0 && errno == ENOMEM)
		kc_must(NULL);
	if (!json_object_is_type(c, json_type_object))
		return -1;
	parse_manifests(c, out, errs);
	out->namespace = opt_string(c, "namespace", NULL, errs);
	if (out->namespace && !op_cfg_dns_label(out->namespace, 63))
		op_errors_add(errs, "namespace",
			      "'%s' is not a valid namespace name (lower-case letters, digits "
			      "and '-', at most 63)",
			      out->namespace);
	out->create_namespace = opt_bool(c, "create_namespace", false, errs);
	if (out->create_namespace && !out->namespace && !op_has(c, "namespace"))
		op_errors_add(errs, "create_namespace", "needs 'namespace'");
	out->field_manager = opt_string(c, "field_manager", "orchd", errs);
	out->force_conflicts = opt_bool(c, "force_conflicts", false, errs);
	out->prune = opt_bool(c, "prune", true, errs);
	out->context = opt_string(c, "context", NULL, errs);
	out->request_timeout = opt_string(c, "request_timeout", "60s", errs);
	if (out->request_timeout && !op_cfg_duration_valid(out->request_timeout))
		op_errors_add(errs, "request_timeout", "'%s' is not a duration (30s, 5m, 1h)",
			      out->request_timeout);
	out->delete_timeout = opt_string(c, "delete_timeout", "5m", errs);
	if (out->delete_timeout && !op_cfg_duration_valid(out->delete_timeout))
		op_errors_add(errs, "delete_timeout", "'%s' is not a duration (30s, 5m, 1h)",
			      out->delete_timeout);
	if (json_object_object_get_ex(c, "kubeconfig", &v)) {
		if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v)) {
			op_errors_add(errs, "kubeconfig", "must be a non-empty string");
		} else {
			out->kubeconfig = kc_must(op_cfg_resolve_path(json_object_get_string(v)));
			if (stat(out->kubeconfig, &st) < 0)
				op_errors_add(errs, "kubeconfig", "cannot access '%s': %s",
					      out->kubeconfig, strerror(errno));
		}
	}
	parse_outputs(c, out, errs);
	if (json_object_object_get_ex(c, "env", &v)) {
		if (op_cfg_env_map(v, "env", OP_CFG_ENV_IDENT, errs, &out->env) < 0 &&
		    errno == ENOMEM)
			kc_must(NULL);
	} else {
		out->env = kc_must(calloc(1, sizeof(char *)));
	}
	if (errs->nr != before) {
		kc_config_release(out);
		return -1;
	}
	return 0;
}

void kc_config_release(struct kc_config *c)
{
	for (size_t i = 0; i < c->nsources; i++) {
		free(c->sources[i].path);
		json_object_put(c->sources[i].obj);
	}
	free(c->sources);
	for (size_t i = 0; i < c->noutputs; i++) {
		struct kc_output_from *o = &c->outputs[i];

		free(o->key);
		free(o->kind);
		free(o->name);
		free(o->namespace);
		free(o->jsonpath);
	}
	free(c->outputs);
	free(c->namespace);
	free(c->field_manager);
	free(c->kubeconfig);
	free(c->context);
	free(c->request_timeout);
	free(c->delete_timeout);
	op_cfg_list_free(c->env);
	memset(c, 0, sizeof(*c));
}

/* --- identities ------------------------------------------------------------- */

static void set_str(struct json_object *o, const char *key, const char *v)
{
	if (v && json_object_object_add(o, key, kc_must(json_object_new_string(v))) < 0)
		kc_must(NULL);
}

struct json_object *kc_ident_of(const struct json_object *obj, bool with_version)
{
	struct json_object *meta = op_get(obj, "metadata"), *id;
	const char *kind = op_get_str(obj, "kind"), *name = op_get_str(meta, "name");

	if (!kind || !name)
		return NULL;
	id = kc_must(json_object_new_object());
	set_str(id, "apiVersion", op_get_str(obj, "apiVersion"));
	set_str(id, "kind", kind);
	set_str(id, "namespace", op_get_str(meta, "namespace"));
	set_str(id, "name", name);
	if (with_version) {
		set_str(id, "uid", op_get_str(meta, "uid"));
		set_str(id, "resourceVersion", op_get_str(meta, "resourceVersion"));
	}
	return id;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The group of an apiVersion ("apps/v1" -> "apps", "v1" -> ""), length in *n. */
static const char *api_group(const char *api, size_t *n)
{
	const char *slash = api ? strchr(api, '/') : NULL;

	*n = slash ? (size_t)(slash - api) : 0;
	return api ? api : "";
}

bool kc_ident_same(const struct json_object *a, const struct json_object *b)
{
	size_t na, nb;
	const char *ga = api_group(op_get_str(a, "apiVersion"), &na);
	const char *gb = api_group(op_get_str(b, "apiVersion"), &nb);

	return na == nb && !strncmp(ga, gb, na) &&
	       same_str(op_get_str(a, "kind"), op_get_str(b, "kind")) &&
	       same_str(op_get_str(a, "namespace"), op_get_str(b, "namespace")) &&
	       same_str(op_get_str(a, "name"), op_get_str(b, "name"));
}

char *kc_ident_text(const struct json_object *id)
{
	const char *ns = op_get_str(id, "namespace");
	char *s;

	if (asprintf(&s, "%s %s%s%s", op_get_str(id, "kind"), ns ? ns : "", ns ? "/" : "",
		     op_get_str(id, "name")) < 0)
		kc_must(NULL);
	return s;
}

static const char schema[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"manifests\"],"
	"\"properties\":{"
	"\"manifests\":{\"type\":\"array\",\"items\":{\"type\":[\"string\",\"object\"]},"
	"\"description\":\"files, directories or kustomize directories (relative to the "
	"pipeline file's directory), or inline objects\"},"
	"\"namespace\":{\"type\":\"string\",\"description\":\"namespace of the objects that "
	"name none\"},"
	"\"create_namespace\":{\"type\":\"boolean\",\"default\":false},"
	"\"field_manager\":{\"type\":\"string\",\"default\":\"orchd\"},"
	"\"force_conflicts\":{\"type\":\"boolean\",\"default\":false},"
	"\"prune\":{\"type\":\"boolean\",\"default\":true,\"description\":\"delete the objects "
	"an earlier apply made that the config no longer declares\"},"
	"\"kubeconfig\":{\"type\":\"string\"},\"context\":{\"type\":\"string\"},"
	"\"request_timeout\":{\"type\":\"string\",\"default\":\"60s\"},"
	"\"delete_timeout\":{\"type\":\"string\",\"default\":\"5m\"},"
	"\"outputs_from\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"object\","
	"\"required\":[\"kind\",\"name\",\"jsonpath\"],\"properties\":{\"kind\":{\"type\":"
	"\"string\"},\"name\":{\"type\":\"string\"},\"namespace\":{\"type\":\"string\"},"
	"\"jsonpath\":{\"type\":\"string\"},\"secret\":{\"type\":\"boolean\"}}}},"
	"\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}}}";

struct json_object *kc_config_schema(void)
{
	return kc_must(json_tokener_parse(schema));
}
