#include "fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "hash.h"
#include "orchd_protocol.h"
#include "util.h"

void orchd_fetch_opts_init(struct orchd_fetch_opts *opts)
{
	struct orchd_git_opts g = ORCHD_GIT_OPTS_INIT;

	orchd_http_opts_init(&opts->http);
	opts->git = g;
}

/* A relative path without empty, "." or ".." segments. */
static int relpath_ok(const char *p)
{
	const char *s = p;

	if (!*p || *p == '/')
		return 0;
	while (*s) {
		size_t n = strcspn(s, "/");

		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
		if (*s == '/') {
			s++;
			if (!*s)
				return 0;
		}
	}
	return 1;
}

/* Last non-empty segment of the path part of a URL (or a plain path),
 * without query or fragment; malloc'ed, "" if none. */
static char *last_segment(const char *url, int strip_git)
{
	const char *scheme = strstr(url, "://"), *p = url, *end, *start;
	size_t n;

	if (scheme) {
		p = strchr(scheme + 3, '/'); /* skip the authority */
		if (!p)
			return xstrdup("");
	}
	end = p + strcspn(p, "?#");
	while (end > p && end[-1] == '/')
		end--;
	start = end;
	while (start > p && start[-1] != '/')
		start--;
	n = (size_t)(end - start);
	if (strip_git && n > 4 && !strncmp(end - 4, ".git", 4))
		n -= 4;
	return xstrndup(start, n);
}

/* Check the keys of spec against allowed; each present one must be of the
 * type given ('s' string, 'b' boolean). */
static int check_keys(const json_object *spec, const char *const *keys, const char *types,
		      char *err, size_t errlen)
{
	/* json-c's iteration wants a mutable object; nothing is changed */
	union {
		const json_object *c;
		json_object *m;
	} u = {.c = spec};

	json_object_object_foreach(u.m, key, val)
	{
		size_t i;

		for (i = 0; keys[i]; i++)
			if (!strcmp(key, keys[i]))
				break;
		if (!keys[i]) {
			snprintf(err, errlen, "invalid source: unknown key '%s'", key);
			return -1;
		}
		if (types[i] == 's' && !json_object_is_type(val, json_type_string)) {
			snprintf(err, errlen, "invalid source: '%s' must be a string", key);
			return -1;
		}
		if (types[i] == 'b' && !json_object_is_type(val, json_type_boolean)) {
			snprintf(err, errlen, "invalid source: '%s' must be a boolean", key);
			return -1;
		}
	}
	return 0;
}

/* Validate; on success *target is the relative destination (malloc'ed). */
static int validate(const json_object *spec, int *is_git, char **target, char *err, size_t errlen)
{
	static const char *const git_keys[] = {"git", "ref", "path", NULL};
	static const char *const url_keys[] = {"url", "sha256", "dest", "extract", NULL};
	json_object *v;
	const char *loc, *rel;
	char *name;

	if (!spec || !json_object_is_type(spec, json_type_object)) {
		snprintf(err, errlen, "invalid source: expected an object");
		return -1;
	}
	if (json_object_object_get_ex(spec, "git", NULL) &&
	    json_object_object_get_ex(spec, "url", NULL)) {
		snprintf(err, errlen, "invalid source: 'git' and 'url' are exclusive");
		return -1;
	}
	if (json_object_object_get_ex(spec, "git", NULL)) {
		*is_git = 1;
		if (check_keys(spec, git_keys, "sss", err, errlen) < 0)
			return -1;
		loc = op_get_str(spec, "git");
		if (!*loc) {
			snprintf(err, errlen, "invalid source: 'git' must not be empty");
			return -1;
		}
		if (!op_get_str(spec, "ref") || !*op_get_str(spec, "ref")) {
			snprintf(err, errlen, "invalid source: 'ref' is required with 'git'");
			return -1;
		}
		rel = op_get_str(spec, "path");
	} else if (json_object_object_get_ex(spec, "url", NULL)) {
		*is_git = 0;
		if (check_keys(spec, url_keys, "sssb", err, errlen) < 0)
			return -1;
		loc = op_get_str(spec, "url");
		if (strncmp(loc, "http://", 7) && strncmp(loc, "https://", 8)) {
			snprintf(err, errlen,
				 "invalid source: 'url' must start with http:// or "
				 "https://");
			return -1;
		}
		if (!orchd_sha256_valid(op_get_str(spec, "sha256"))) {
			snprintf(err, errlen,
				 "invalid source: 'sha256' is required with 'url' (64 hex digits)");
			return -1;
		}
		if (json_object_object_get_ex(spec, "extract", &v) && json_object_get_boolean(v)) {
			snprintf(err, errlen, "invalid source: 'extract' is not supported yet");
			return -1;
		}
		rel = op_get_str(spec, "dest");
	} else {
		snprintf(err, errlen, "invalid source: expected a 'git' or a 'url' key");
		return -1;
	}

	if (rel) {
		if (!relpath_ok(rel)) {
			snprintf(err, errlen,
				 "invalid source: '%s' must be a relative path without '.' or "
				 "'..' segments",
				 *is_git ? "path" : "dest");
			return -1;
		}
		*target = xstrdup(rel);
		return 0;
	}
	name = last_segment(loc, *is_git);
	if (!relpath_ok(name)) {
		snprintf(err, errlen, "invalid source: cannot derive a name from '%s'; set '%s'",
			 loc, *is_git ? "path" : "dest");
		free(name);
		return -1;
	}
	*target = name;
	return 0;
}

int orchd_fetch_validate(const json_object *spec, char *err, size_t errlen)
{
	char *target = NULL;

	if (orchd_fetch_target(spec, &target, err, errlen) < 0)
		return -1;
	free(target);
	return 0;
}

int orchd_fetch_target(const json_object *spec, char **target, char *err, size_t errlen)
{
	int is_git;

	*target = NULL;
	return validate(spec, &is_git, target, err, errlen);
}

int orchd_fetch_source(const json_object *spec, const char *dest_dir,
		       const struct orchd_fetch_opts *opts, json_object **result, char *err,
		       size_t errlen)
{
	struct orchd_fetch_opts dflt;
	char *target = NULL, *path = NULL, *slash;
	char id[ORCHD_SHA256_HEXSZ];
	int is_git, ret = -1;

	if (result)
		*result = NULL;
	if (!opts) {
		orchd_fetch_opts_init(&dflt);
		opts = &dflt;
	}
	if (validate(spec, &is_git, &target, err, errlen) < 0)
		return -1;
	path = xasprintf("%s/%s", dest_dir, target);
	slash = strrchr(path, '/');
	*slash = '\0';
	if (orchd_mkdir_p(path, 0755, err, errlen) < 0)
		goto out;
	*slash = '/';
	if (is_git)
		ret = orchd_git_checkout(op_get_str(spec, "git"), op_get_str(spec, "ref"), path,
					 &opts->git, id, err, errlen);
	else
		ret = orchd_http_download(op_get_str(spec, "url"), path, op_get_str(spec, "sha256"),
					  &opts->http, id, err, errlen);
	if (ret == 0 && result) {
		json_object *r = json_object_new_object();

		json_object_object_add(r, "type", json_object_new_string(is_git ? "git" : "url"));
		json_object_object_add(r, "path", json_object_new_string(path));
		json_object_object_add(r, is_git ? "commit" : "sha256", json_object_new_string(id));
		*result = r;
	}
out:
	free(path);
	free(target);
	return ret;
}
