/*
 * models: parse and validate the secrets extension's config blob.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
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

static const char *const known_keys[] = {"values", "age_key_file", NULL};
static const char *const source_names[] = {"env", "file", "sops", "age"};

void *secrets_must(void *p)
{
	if (!p) {
		fputs("secrets: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

static struct json_object *unconst(const struct json_object *o)
{
	return (struct json_object *)(uintptr_t)o;
}

static bool valid_name(const char *s)
{
	if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return false;
	return true;
}

char *secrets_resolve_path(const char *p)
{
	return secrets_must(op_cfg_resolve_path(p));
}

/* A readable regular file?  Otherwise an error at path naming abs. */
static void check_file(struct op_errors *errs, const char *path, const char *abs)
{
	struct stat st;
	int fd = open(abs, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		op_errors_add(errs, path, "cannot read '%s': %s", abs, strerror(errno));
		return;
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
		op_errors_add(errs, path, "'%s' is not a regular file", abs);
	close(fd);
}

/* A non-empty string member at path; NULL (with an error) otherwise. */
static const char *get_string(struct json_object *v, const char *path, struct op_errors *errs)
{
	if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v)) {
		op_errors_add(errs, path, "must be a non-empty string");
		return NULL;
	}
	return json_object_get_string(v);
}

void secrets_key_free(struct secrets_key_seg *segs, size_t nsegs)
{
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i].name);
	free(segs);
}

int secrets_key_parse(const char *key, struct secrets_key_seg **segs, size_t *nsegs)
{
	const char *p = key;
	struct secrets_key_seg *v = NULL;
	size_t n = 0;

	*segs = NULL;
	*nsegs = 0;
	if (!*p)
		return -1;
	while (*p) {
		struct secrets_key_seg s = {NULL, 0};

		if (*p == '[') {
			p++;
			if (*p == '"' || *p == '\'') {
				const char *end = strchr(p + 1, *p);

				if (!end || end[1] != ']')
					goto bad;
				s.name = secrets_must(strndup(p + 1, (size_t)(end - p - 1)));
				p = end + 2;
			} else {
				char *end;

				if (!isdigit((unsigned char)*p))
					goto bad;
				errno = 0;
				s.index = strtoul(p, &end, 10);
				if (errno || *end != ']')
					goto bad;
				p = end + 1;
			}
		} else {
			size_t len = strcspn(p, ".[");

			if (!len)
				goto bad;
			s.name = secrets_must(strndup(p, len));
			p += len;
		}
		v = secrets_must(realloc(v, (n + 1) * sizeof(*v)));
		v[n++] = s;
		if (*p == '.') {
			p++;
			if (!*p || *p == '.' || *p == '[')
				goto bad;
		} else if (*p && *p != '[') {
			goto bad;
		}
	}
	*segs = v;
	*nsegs = n;
	return 0;
bad:
	secrets_key_free(v, n);
	return -1;
}

static void value_release(struct secrets_value *v)
{
	free(v->name);
	free(v->env);
	free(v->file);
	free(v->key);
	secrets_key_free(v->segs, v->nsegs);
	free(v->identity);
}

/* Check the members of a source object against known (NULL-terminated). */
static void check_members(struct json_object *o, const char *path, const char *const *known,
			  struct op_errors *errs)
{
	json_object_object_foreach(o, k, val)
	{
		bool ok = false;

		(void)val;
		for (size_t i = 0; known[i]; i++)
			ok |= !strcmp(k, known[i]);
		if (!ok)
			op_errors_unknown_key(errs, path, k, known);
	}
}

/* The required member "file" of the source at path: resolved, checked. */
static void parse_source_file(struct json_object *src, const char *path, bool check_files,
			      struct secrets_value *out, struct op_errors *errs)
{
	struct json_object *f;
	char sub[1024];
	const char *s;

	snprintf(sub, sizeof(sub), "%s.file", path);
	if (!json_object_object_get_ex(src, "file", &f)) {
		op_errors_add(errs, sub, "is required");
	} else if ((s = get_string(f, sub, errs))) {
		out->file = secrets_resolve_path(s);
		if (check_files)
			check_file(errs, sub, out->file);
	}
}

static void parse_sops(struct json_object *src, const char *path, bool check_files,
		       struct secrets_value *out, struct op_errors *errs)
{
	static const char *const known[] = {"file", "key", NULL};
	struct json_object *k;
	char sub[1024];
	const char *s;

	if (!json_object_is_type(src, json_type_object)) {
		op_errors_add(errs, path, "must be a map {file: PATH, key: KEY}");
		return;
	}
	check_members(src, path, known, errs);
	parse_source_file(src, path, check_files, out, errs);
	if (json_object_object_get_ex(src, "key", &k)) {
		snprintf(sub, sizeof(sub), "%s.key", path);
		if ((s = get_string(k, sub, errs))) {
			if (secrets_key_parse(s, &out->segs, &out->nsegs) < 0)
				op_errors_add(errs, sub,
					      "invalid key path '%s' (expected a.b.c or "
					      "[\"a\"][\"b\"] or a[0])",
					      s);
			else
				out->key = secrets_must(strdup(s));
		}
	}
}

static void parse_age(struct json_object *src, const char *path, const char *age_key_file,
		      bool check_files, struct secrets_value *out, struct op_errors *errs)
{
	static const char *const known[] = {"file", "identity", NULL};
	struct json_object *f;
	char sub[1024];
	const char *s;

	if (!json_object_is_type(src, json_type_object)) {
		op_errors_add(errs, path, "must be a map {file: PATH, identity: PATH}");
		return;
	}
	check_members(src, path, known, errs);
	parse_source_file(src, path, check_files, out, errs);
	snprintf(sub, sizeof(sub), "%s.identity", path);
	if (json_object_object_get_ex(src, "identity", &f)) {
		if ((s = get_string(f, sub, errs))) {
			out->identity = secrets_resolve_path(s);
			if (check_files)
				check_file(errs, sub, out->identity);
		}
	} else if (age_key_file) {
		out->identity = secrets_must(strdup(age_key_file));
	} else {
		op_errors_add(errs, sub, "is required (or set age_key_file)");
	}
}

static void parse_value(const char *name, struct json_object *spec, const char *age_key_file,
			bool check_files, struct secrets_config *cfg, struct op_errors *errs)
{
	struct secrets_value v;
	char path[320], sub[512];
	size_t before = errs->nr, nsrc = 0;
	const char *kind = NULL, *s;
	struct json_object *src = NULL;

	memset(&v, 0, sizeof(v));
	snprintf(path, sizeof(path), "values.%.300s", name);
	if (!valid_name(name)) {
		op_errors_add(errs, path, "output name must match [A-Za-z_][A-Za-z0-9_]*");
		return;
	}
	if (!json_object_is_type(spec, json_type_object)) {
		op_errors_add(errs, path, "must be a map with one source (env, file, sops or age)");
		return;
	}
	json_object_object_foreach(spec, k, val)
	{
		bool known = false;

		for (size_t i = 0; i < 4; i++)
			known |= !strcmp(k, source_names[i]);
		if (!known) {
			op_errors_add(errs, path,
				      "unknown source '%s' (expected env, file, sops or age)", k);
			continue;
		}
		if (nsrc++ == 0) {
			kind = k;
			src = val;
		} else {
			op_errors_add(errs, path, "has both '%s' and '%s' (one source per value)",
				      kind, k);
		}
	}
	if (errs->nr != before)
		return;
	if (!kind) {
		op_errors_add(errs, path, "needs a source (env, file, sops or age)");
		return;
	}
	v.name = secrets_must(strdup(name));
	snprintf(sub, sizeof(sub), "%s.%.8s", path, kind);
	if (!strcmp(kind, "env")) {
		v.kind = SECRETS_ENV;
		if ((s = get_string(src, sub, errs))) {
			if (!valid_name(s))
				op_errors_add(errs, sub, "'%s' is not a valid variable name", s);
			else
				v.env = secrets_must(strdup(s));
		}
	} else if (!strcmp(kind, "file")) {
		v.kind = SECRETS_FILE;
		if ((s = get_string(src, sub, errs))) {
			v.file = secrets_resolve_path(s);
			if (check_files)
				check_file(errs, sub, v.file);
		}
	} else if (!strcmp(kind, "sops")) {
		v.kind = SECRETS_SOPS;
		parse_sops(src, sub, check_files, &v, errs);
	} else {
		v.kind = SECRETS_AGE;
		parse_age(src, sub, age_key_file, check_files, &v, errs);
	}
	if (errs->nr != before) {
		value_release(&v);
		return;
	}
	cfg->values = secrets_must(realloc(cfg->values, (cfg->nvalues + 1) * sizeof(v)));
	cfg->values[cfg->nvalues++] = v;
}

int secrets_config_parse(const struct json_object *config, bool check_files,
			 struct secrets_config *out, struct op_errors *errs)
{
	struct json_object *c = unconst(config), *v;
	size_t before = errs->nr;
	const char *s;

	memset(out, 0, sizeof(*out));
	if (op_cfg_check_map(config, known_keys, errs) < 0 && errno == ENOMEM)
		secrets_must(NULL);
	if (!json_object_is_type(c, json_type_object))
		return -1;
	if (json_object_object_get_ex(c, "age_key_file", &v) &&
	    (s = get_string(v, "age_key_file", errs))) {
		out->age_key_file = secrets_resolve_path(s);
		if (check_files)
			check_file(errs, "age_key_file", out->age_key_file);
	}
	if (!json_object_object_get_ex(c, "values", &v)) {
		op_errors_add(errs, "values", "is required");
	} else if (!json_object_is_type(v, json_type_object)) {
		op_errors_add(errs, "values", "must be a map of output name -> source");
	} else if (json_object_object_length(v) == 0) {
		op_errors_add(errs, "values", "must not be empty");
	} else {
		json_object_object_foreach(v, name, spec)
		{
			parse_value(name, spec, out->age_key_file, check_files, out, errs);
		}
	}
	if (errs->nr != before) {
		secrets_config_release(out);
		return -1;
	}
	return 0;
}

void secrets_config_release(struct secrets_config *c)
{
	for (size_t i = 0; i < c->nvalues; i++)
		value_release(&c->values[i]);
	free(c->values);
	free(c->age_key_file);
	memset(c, 0, sizeof(*c));
}

static const char schema[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"values\"],"
	"\"properties\":{"
	"\"values\":{\"type\":\"object\",\"description\":\"output name -> source; every "
	"output is secret\",\"additionalProperties\":{\"type\":\"object\","
	"\"description\":\"exactly one of env, file, sops, age\",\"properties\":{"
	"\"env\":{\"type\":\"string\",\"description\":\"environment variable (list it in the "
	"instance's pass_env)\"},"
	"\"file\":{\"type\":\"string\",\"description\":\"file contents, trailing newline "
	"stripped\"},"
	"\"sops\":{\"type\":\"object\",\"required\":[\"file\"],\"properties\":{"
	"\"file\":{\"type\":\"string\"},\"key\":{\"type\":\"string\",\"description\":"
	"\"a.b.c or [\\\"a\\\"][\\\"b\\\"]; absent: the whole document\"}}},"
	"\"age\":{\"type\":\"object\",\"required\":[\"file\"],\"properties\":{"
	"\"file\":{\"type\":\"string\"},\"identity\":{\"type\":\"string\",\"description\":"
	"\"age identity file (default: age_key_file)\"}}}}}},"
	"\"age_key_file\":{\"type\":\"string\",\"description\":\"age key file for sops "
	"(SOPS_AGE_KEY_FILE) and default identity for age sources\"}}}";

struct json_object *secrets_config_schema(void)
{
	return secrets_must(json_tokener_parse(schema));
}
