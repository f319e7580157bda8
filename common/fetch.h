/*
 * fetch: a "source" -- what an instance (or an extension, through the core)
 * asks to have fetched into its private working directory -- validated and
 * dispatched to git or http.
 *
 * A source is a JSON object of one of two forms:
 *
 *   {"git": URL, "ref": REF, "path": SUBDIR}
 *	URL: anything orchd_git_checkout() takes (path, file://, https://).
 *	REF: required; branch, tag, full ref name or commit id (see git.h).
 *	path: optional; the directory under dest_dir that receives the
 *	checkout; default: the last segment of URL without ".git".
 *
 *   {"url": URL, "sha256": HEX, "dest": NAME, "extract": false}
 *	URL: http:// or https://.
 *	sha256: required; 64 hex digits; the content is verified and cached.
 *	dest: optional; the file under dest_dir; default: the last segment of
 *	URL's path.
 *	extract: optional boolean; true is rejected for now (not implemented).
 *
 * path and dest are relative, without "." or ".." segments; missing parent
 * directories under dest_dir are created.  Any other key is an error (typos
 * must not pass silently).
 *
 * Functions return 0 or -1 with a lowercase message in err[errlen].
 * json-c ownership: spec is borrowed (never put); *result is a new object
 * owned by the caller, who json_object_put()s it.
 */
#ifndef ORCHD_FETCH_H
#define ORCHD_FETCH_H

#include <stddef.h>

#include <json-c/json.h>

#include "git.h"
#include "http.h"

struct orchd_fetch_opts {
	struct orchd_http_opts http;
	struct orchd_git_opts git;
};

void orchd_fetch_opts_init(struct orchd_fetch_opts *opts);

/*
 * Check a source spec without fetching anything (for configuration
 * validation).  Messages start with "invalid source: ".
 */
int orchd_fetch_validate(const json_object *spec, char *err, size_t errlen);
/* The same, and *target (malloc'ed) is where it goes under dest_dir: path
 * or dest, else the name derived from the URL's last segment. */
int orchd_fetch_target(const json_object *spec, char **target, char *err, size_t errlen);

/*
 * Validate spec, then fetch it under dest_dir (which must exist).  opts
 * NULL: the defaults.  result (may be NULL) receives
 *   {"type": "git", "path": ABS, "commit": HEX40}  or
 *   {"type": "url", "path": ABS, "sha256": HEX64}
 */
int orchd_fetch_source(const json_object *spec, const char *dest_dir,
		       const struct orchd_fetch_opts *opts, json_object **result, char *err,
		       size_t errlen);

#endif
