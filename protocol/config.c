/*
 * config: small parsers shared by the C extensions' config models
 * (op_cfg_*; see orchd_protocol.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"

static struct json_object *unconst(const struct json_object *o)
{
	return (struct json_object *)(uintptr_t)o;
}

static bool nonempty_string(struct json_object *v)
{
	return json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0;
}

/* -1 with errno EINVAL when errors were added since before, else 0. */
static int config_result(const struct op_errors *errs, size_t before)
{
	if (errs->nr == before)
		return 0;
	errno = EINVAL;
	return -1;
}

void op_cfg_list_free(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}

int op_cfg_check_map(const struct json_object *cfg, const char *const *known,
		     struct op_errors *errs)
{
	struct json_object *c = unconst(cfg);
	size_t before = errs->nr;

	if (!json_object_is_type(c, json_type_object)) {
		if (op_errors_add(errs, "", "config must be a map") < 0)
			return -1;
		errno = EINVAL;
		return -1;
	}
	json_object_object_foreach(c, k, val)
	{
		bool found = false;

		(void)val;
		for (size_t i = 0; known[i]; i++)
			found |= !strcmp(k, known[i]);
		/* at its own path: orchd shows the line it is written on */
		if (!found && op_errors_unknown_key(errs, k, k, known) < 0)
			return -1;
	}
	return config_result(errs, before);
}

/* The end of a list parser: l (owned) becomes *out unless errors were added. */
static int list_result(char **l, struct op_errors *errs, size_t before, char ***out)
{
	if (errs->nr != before) {
		op_cfg_list_free(l);
		return config_result(errs, before);
	}
	*out = l;
	return 0;
}

int op_cfg_string_list(const struct json_object *value, const char *key, unsigned flags,
		       struct op_errors *errs, char ***out)
{
	struct json_object *v = unconst(value);
	bool nonempty = flags & (OP_CFG_NONEMPTY_ITEMS | OP_CFG_ALLOW_ONE);
	size_t n, before = errs->nr;
	char **l;

	*out = NULL;
	if ((flags & OP_CFG_ALLOW_ONE) && nonempty_string(v)) {
		l = calloc(2, sizeof(*l));
		if (!l || !(l[0] = strdup(json_object_get_string(v))))
			goto nomem;
		*out = l;
		return 0;
	}
	if (!json_object_is_type(v, json_type_array)) {
		if (op_errors_add(errs, key, "must be a list of strings") < 0)
			return -1;
		return config_result(errs, before);
	}
	n = json_object_array_length(v);
	if ((flags & OP_CFG_ARGV) && n == 0) {
		if (op_errors_add(errs, key, "must not be empty") < 0)
			return -1;
		return config_result(errs, before);
	}
	l = calloc(n + 1, sizeof(*l));
	if (!l)
		goto nomem;
	for (size_t i = 0, j = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(v, i);
		char path[128];

		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		if (nonempty ? !nonempty_string(s) : !json_object_is_type(s, json_type_string)) {
			if (op_errors_add(errs, path,
					  nonempty ? "must be a non-empty string"
						   : "must be a string") < 0)
				goto nomem;
			continue;
		}
		if (!(l[j++] = strdup(json_object_get_string(s))))
			goto nomem;
		if ((flags & OP_CFG_ARGV) && i == 0 && !json_object_get_string_len(s) &&
		    op_errors_add(errs, key, "program name must not be empty") < 0)
			goto nomem;
	}
	return list_result(l, errs, before, out);
nomem:
	op_cfg_list_free(l);
	errno = ENOMEM;
	return -1;
}

static bool valid_name(const char *k, unsigned flags)
{
	if (!(flags & OP_CFG_ENV_IDENT))
		return *k && !strchr(k, '=');
	if (!*k || (*k >= '0' && *k <= '9'))
		return false;
	for (; *k; k++)
		if (!(*k == '_' || (*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9')))
			return false;
	return true;
}

int op_cfg_env_map(const struct json_object *value, const char *key, unsigned flags,
		   struct op_errors *errs, char ***out)
{
	struct json_object *v = unconst(value);
	size_t n = 0, before = errs->nr;
	char **l;

	*out = NULL;
	if (!json_object_is_type(v, json_type_object)) {
		if (op_errors_add(errs, key, "must be a map of strings") < 0)
			return -1;
		return config_result(errs, before);
	}
	l = calloc((size_t)json_object_object_length(v) + 1, sizeof(*l));
	if (!l)
		goto nomem;
	json_object_object_foreach(v, k, val)
	{
		char path[256];
		const char *msg = NULL;

		snprintf(path, sizeof(path), "%s.%s", key, k);
		if (!valid_name(k, flags))
			msg = "is not a valid variable name";
		else if (!json_object_is_type(val, json_type_string))
			msg = "must be a string";
		if (msg) {
			if (op_errors_add(errs, path, "%s", msg) < 0)
				goto nomem;
			continue;
		}
		if (asprintf(&l[n], "%s=%s", k, json_object_get_string(val)) < 0) {
			l[n] = NULL;
			goto nomem;
		}
		n++;
	}
	return list_result(l, errs, before, out);
nomem:
	op_cfg_list_free(l);
	errno = ENOMEM;
	return -1;
}

bool op_cfg_env_has(char *const *env, const char *name)
{
	size_t l = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], name, l) && env[i][l] == '=')
			return true;
	return false;
}

char *op_cfg_resolve_path(const char *path)
{
	const char *base = getenv("ORCHD_PIPELINE_DIR");
	char *out, cwd[4096];

	if (path[0] == '/')
		return strdup(path);
	if (!base || !*base)
		base = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
	if (asprintf(&out, "%s/%s", base, path) < 0) {
		errno = ENOMEM;
		return NULL;
	}
	return out;
}

int op_cfg_string(const struct json_object *cfg, const char *key, const char *dflt,
		  struct op_errors *errs, char **out)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(unconst(cfg), key, &v)) {
		if (dflt && !(*out = strdup(dflt)))
			return -1;
		return 0;
	}
	if (!nonempty_string(v)) {
		if (op_errors_add(errs, key, "must be a non-empty string") < 0)
			return -1;
		errno = EINVAL;
		return -1;
	}
	return (*out = strdup(json_object_get_string(v))) ? 0 : -1;
}

int op_cfg_bool(const struct json_object *cfg, const char *key, bool dflt, struct op_errors *errs,
		bool *out)
{
	struct json_object *v;

	*out = dflt;
	if (!json_object_object_get_ex(unconst(cfg), key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		if (op_errors_add(errs, key, "must be true or false") < 0)
			return -1;
		errno = EINVAL;
		return -1;
	}
	*out = json_object_get_boolean(v);
	return 0;
}

bool op_cfg_duration_valid(const char *s)
{
	if (!*s)
		return false;
	while (*s) {
		const char *digits = s;

		while (*s >= '0' && *s <= '9')
			s++;
		if (s == digits)
			return false;
		if ((s[0] == 'm' || s[0] == 'u' || s[0] == 'n') && s[1] == 's')
			s += 2;
		else if (*s == 'h' || *s == 'm' || *s == 's')
			s++;
		else
			return false;
	}
	return true;
}

bool op_cfg_dns_label(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (!n || n > max || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}
