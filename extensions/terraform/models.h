/*
 * models: the terraform extension's configuration (the "config" blob of an
 * action message), its validation and the resolution of its paths.
 *
 * Ownership: struct tf_config owns every string, list and json_object it
 * points to; release it with tf_config_release().  Errors are appended to a
 * struct op_errors (orchd_protocol.h; the caller releases it).  json_object
 * arguments are borrowed; functions documented "caller owns" return a new
 * reference the caller must json_object_put().
 *
 * Error convention: tf_config_parse() returns 0, or -1 with every problem
 * appended to the error list.  Allocation failure is fatal (the extension
 * prints "terraform: out of memory" and exits 1).
 */
#ifndef TF_MODELS_H
#define TF_MODELS_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

struct tf_config {
	char *source;		  /* as written (absolute, or relative to the pipeline dir) */
	struct json_object *vars; /* an object (possibly empty); owned reference */
	char **var_files;	  /* NULL-terminated (possibly empty), as written */
	char *binary;		  /* "tofu" (default), "terraform" or an absolute path */
	char **env;		  /* NULL-terminated "KEY=VALUE" (possibly empty) */
};

struct op_errors;

/* Parse and validate cfg into *out (released again on failure). */
int tf_config_parse(const struct json_object *cfg, struct tf_config *out, struct op_errors *errs);
void tf_config_release(struct tf_config *c);

/*
 * Check what the config names on disk: the source directory and each var
 * file must exist (errors appended to errs, paths as in the config).
 * Returns 0 when everything exists, -1 otherwise.
 */
int tf_config_check_paths(const struct tf_config *c, struct op_errors *errs);

/*
 * path resolved against $ORCHD_PIPELINE_DIR (or the current directory when
 * that is unset or empty); absolute paths are returned unchanged.
 * malloc'ed.
 */
char *tf_resolve_path(const char *path);

/* The JSON-Schema-like config description for describe (caller owns). */
struct json_object *tf_config_schema(void);

/* Allocation check: returns p, or exits 1 after "terraform: out of memory". */
void *tf_must(void *p);

#endif
