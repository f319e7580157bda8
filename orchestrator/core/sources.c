/*
 * core/sources: fetch an instance's sources into its workdir, and answer
 * the fetch requests of extensions (see sources.h).
 */
#include "core/sources.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "http.h"
#include "orchd_protocol.h"
#include "util.h"

char *orchd_source_describe(const json_object *spec)
{
	const char *git = op_get_str(spec, "git"), *url = op_get_str(spec, "url");
	char *red, *out;

	if (git) {
		const char *ref = op_get_str(spec, "ref");

		red = orchd_http_redact(git);
		out = ref ? xasprintf("git %s@%s", red, ref) : xasprintf("git %s", red);
	} else if (url) {
		red = orchd_http_redact(url);
		out = xasprintf("url %s", red);
	} else {
		return xstrdup("source");
	}
	free(red);
	return out;
}

/* The result of orchd_fetch_source() with "path" made relative to workdir. */
static void relative_path(json_object *result, const char *workdir)
{
	json_object *v;
	const char *abs;
	size_t n = strlen(workdir);

	if (!json_object_object_get_ex(result, "path", &v) ||
	    !json_object_is_type(v, json_type_string))
		return;
	abs = json_object_get_string(v);
	if (!strncmp(abs, workdir, n) && abs[n] == '/')
		json_object_object_add(result, "path", json_object_new_string(abs + n + 1));
}

static void log_fetched(orchd_sources_log_fn log, void *data, size_t i, const json_object *spec,
			const json_object *result)
{
	char *what = orchd_source_describe(spec), *line;
	const char *path = op_get_str(result, "path"), *commit = op_get_str(result, "commit");
	const char *sha = op_get_str(result, "sha256");

	line = xasprintf("source sources[%zu]: %s -> %s (%s %.12s)", i, what, path ? path : "?",
			 commit ? "commit" : "sha256",
			 commit ? commit
			 : sha	? sha
				: "?");
	log(data, line);
	free(line);
	free(what);
}

int orchd_sources_fetch_all(const json_object *sources, const char *workdir,
			    const struct orchd_fetch_opts *opts, orchd_sources_log_fn log,
			    void *log_data, char *err, size_t errlen)
{
	size_t n;

	if (!sources)
		return 0;
	if (!json_object_is_type(sources, json_type_array)) {
		snprintf(err, errlen, "sources: expected an array");
		return -1;
	}
	n = json_object_array_length(sources);
	for (size_t i = 0; i < n; i++) {
		const json_object *spec = json_object_array_get_idx(sources, i);
		json_object *result = NULL;
		char e[1024];

		if (orchd_fetch_source(spec, workdir, opts, log ? &result : NULL, e, sizeof(e)) <
		    0) {
			char *what = orchd_source_describe(spec);

			snprintf(err, errlen, "source sources[%zu] (%s): %s", i, what, e);
			free(what);
			return -1;
		}
		if (log) {
			relative_path(result, workdir);
			log_fetched(log, log_data, i, spec, result);
			json_object_put(result);
		}
	}
	return 0;
}

static int has_prefix(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

int orchd_sources_check_request(const json_object *spec, const char *workdir, char *err,
				size_t errlen)
{
	const char *git = op_get_str(spec, "git"), *url = op_get_str(spec, "url");
	const char *key = git ? "path" : "dest", *rel;
	char *name = NULL, *p;
	int ret = 0;

	if (orchd_fetch_target(spec, &name, err, errlen) < 0)
		return -1;
	rel = name;
	if (git && !has_prefix(git, "https://") && !has_prefix(git, "http://") &&
	    !has_prefix(git, "git://")) {
		snprintf(err, errlen,
			 "source not allowed: 'git' must start with http://, https:// or git://");
		free(name);
		return -1;
	}
	if (url && !has_prefix(url, "https://") && !has_prefix(url, "http://")) {
		snprintf(err, errlen,
			 "source not allowed: 'url' must start with http:// or https://");
		free(name);
		return -1;
	}
	/* Walk the destination one component at a time: an existing one must
	 * be a real directory (the last one: not a symbolic link), so that
	 * the fetch cannot be led out of the workdir. */
	p = xasprintf("%s/%s", workdir, rel);
	for (char *s = p + strlen(workdir) + 1; *s && !ret;) {
		size_t len = strcspn(s, "/");
		char save = s[len];
		struct stat st;

		s[len] = '\0';
		if (lstat(p, &st) < 0) {
			if (errno != ENOENT) {
				snprintf(err, errlen, "source not allowed: cannot check '%s': %s",
					 p + strlen(workdir) + 1, strerror(errno));
				ret = -1;
			}
			s[len] = save;
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			snprintf(err, errlen,
				 "source not allowed: '%s' goes through the symbolic link '%s'",
				 key, p + strlen(workdir) + 1);
			ret = -1;
		} else if (save && !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "source not allowed: '%s' is not a directory",
				 p + strlen(workdir) + 1);
			ret = -1;
		}
		s[len] = save;
		s += len + (save ? 1 : 0);
	}
	free(p);
	free(name);
	return ret;
}

static char *response(long long id, const char *error_text, json_object *result)
{
	json_object *o = json_object_new_object();
	char *line;

	json_object_object_add(o, "type", json_object_new_string("response"));
	json_object_object_add(o, "id", json_object_new_int64(id));
	json_object_object_add(o, "ok", json_object_new_boolean(!error_text));
	if (error_text)
		json_object_object_add(o, "error", json_object_new_string(error_text));
	else
		json_object_object_add(o, "result", json_object_get(result));
	line = op_encode(o);
	json_object_put(o);
	if (!line && errno == E2BIG && !error_text)
		return response(id, "response too long", NULL);
	if (!line)
		die("out of memory");
	return line;
}

char *orchd_sources_request(const json_object *req, const char *workdir,
			    const struct orchd_fetch_opts *opts)
{
	long long id = op_get_int(req, "id", 0);
	const char *op = op_get_str(req, "op");
	const json_object *spec = op_get(req, "source");
	json_object *result = NULL;
	char err[1024], *what, *line, *text;

	if (!op || strcmp(op, "fetch")) {
		text = xasprintf("unknown request op '%s'", op ? op : "");
		line = response(id, text, NULL);
		free(text);
		return line;
	}
	if (orchd_sources_check_request(spec, workdir, err, sizeof(err)) < 0)
		return response(id, err, NULL);
	if (orchd_fetch_source(spec, workdir, opts, &result, err, sizeof(err)) < 0) {
		what = orchd_source_describe(spec);
		text = xasprintf("cannot fetch %s: %s", what, err);
		line = response(id, text, NULL);
		free(text);
		free(what);
		return line;
	}
	relative_path(result, workdir);
	line = response(id, NULL, result);
	json_object_put(result);
	return line;
}

char *orchd_sources_refuse(const json_object *req, const char *error)
{
	return response(op_get_int(req, "id", 0), error, NULL);
}
