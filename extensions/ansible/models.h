/*
 * models: the ansible extension's configuration (the "config" blob of an
 * action message), its validation and the resolution of its paths.
 *
 * Ownership: struct ans_config owns every string, list and json_object it
 * points to; release it with ans_config_release().  Errors go to a
 * struct op_errors (orchd_protocol.h; the caller releases it with
 * op_errors_release()).  json_object arguments are borrowed; functions
 * documented "caller owns" return a new reference the caller must
 * json_object_put().
 *
 * Error convention: ans_config_parse() returns 0, or -1 with every problem
 * appended to the error list (the config is then released).  Allocation
 * failure is fatal (the extension prints "ansible: out of memory" and exits
 * 1), except in op_errors_add(), which drops an error it cannot record.
 */
#ifndef ANS_MODELS_H
#define ANS_MODELS_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;
struct op_errors;

struct ans_config {
	char *playbook;		/* as written (absolute, or relative to the pipeline dir) */
	char *destroy_playbook; /* the same, or NULL (destroy is then a no-op) */
	char *inventory_path;	/* `inventory` given as a path, or NULL */
	/*
	 * `inventory` given inline (a list of host names or a map host -> vars),
	 * normalised to an object host -> vars object; NULL when inventory_path
	 * is set.  When `inventory` is absent: {"localhost": {}}.  Owned.
	 */
	struct json_object *hosts;
	struct json_object *extra_vars; /* an object (possibly empty); owned */
	bool check_mode_for_plan;	/* default true */
	char *binary;	       /* "ansible-playbook" (default), a name or an absolute path */
	char *limit;	       /* --limit, or NULL */
	char *tags;	       /* --tags (a list joined with ','), or NULL */
	char **env;	       /* NULL-terminated "KEY=VALUE" (possibly empty) */
	char **secret_outputs; /* NULL-terminated output keys sent as secrets */
};

/* Parse and validate cfg into *out (released again on failure). */
int ans_config_parse(const struct json_object *cfg, struct ans_config *out, struct op_errors *errs);
void ans_config_release(struct ans_config *c);

/*
 * Check what the config names on disk: the playbook, the destroy playbook
 * and an inventory path must exist (errors appended to errs).  Returns 0
 * when everything exists, -1 otherwise.
 */
int ans_config_check_paths(const struct ans_config *c, struct op_errors *errs);

/* True when key is listed in secret_outputs. */
bool ans_config_secret_output(const struct ans_config *c, const char *key);

/*
 * path resolved against $ORCHD_PIPELINE_DIR (or the current directory when
 * that is unset or empty); absolute paths are returned unchanged.
 * malloc'ed.
 */
char *ans_resolve_path(const char *path);

/* The JSON-Schema-like config description for describe (caller owns). */
struct json_object *ans_config_schema(void);

/* Allocation check: returns p, or exits 1 after "ansible: out of memory". */
void *ans_must(void *p);

#endif
