/*
 * models: the secrets extension's configuration (the "config" blob of an
 * action message) and its validation.
 *
 *   values:                     # output name -> source (exactly one)
 *     token: {env: API_TOKEN}
 *     cert:  {file: certs/ca.pem}
 *     db:    {sops: {file: secrets.enc.yaml, key: db.password}}
 *     blob:  {age: {file: blob.age, identity: keys/demo.txt}}
 *   age_key_file: keys/demo.txt # optional: sops' age key, default age identity
 *
 * Relative paths resolve against $ORCHD_PIPELINE_DIR (the pipeline file's
 * directory) when it is set, else against the current directory (the
 * instance's workdir); the parsed config holds them absolute.
 *
 * Ownership: struct secrets_config owns every string and array it points
 * to; release it with secrets_config_release().  Errors are appended to a
 * struct op_errors (orchd_protocol.h; the caller releases it).  json_object
 * arguments are borrowed; functions returning a json_object hand it to the
 * caller (json_object_put).  Allocation failure exits the process (an
 * extension has no better recovery).
 */
#ifndef SECRETS_MODELS_H
#define SECRETS_MODELS_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

enum secrets_kind {
	SECRETS_ENV = 1,
	SECRETS_FILE,
	SECRETS_SOPS,
	SECRETS_AGE,
};

/* One step of a sops key path: a map key or an array index. */
struct secrets_key_seg {
	char *name;   /* map key; NULL for an index */
	size_t index; /* array index when name is NULL */
};

struct secrets_value {
	char *name; /* output name */
	enum secrets_kind kind;
	char *env;		      /* SECRETS_ENV: variable name */
	char *file;		      /* FILE, SOPS, AGE: absolute path */
	char *key;		      /* SOPS: key path as written, NULL: whole document */
	struct secrets_key_seg *segs; /* SOPS: parsed key path */
	size_t nsegs;
	char *identity; /* AGE: absolute identity path */
};

struct secrets_config {
	struct secrets_value *values; /* in config order */
	size_t nvalues;
	char *age_key_file; /* absolute, or NULL */
};

struct op_errors;

/*
 * Parse and validate cfg into *out.  check_files: also check that every
 * file named (sources, identities, age_key_file) is a readable regular file
 * (errors carry the absolute path).  Returns 0, or -1 when cfg is invalid,
 * with every problem appended to errs (out is then released).
 */
int secrets_config_parse(const struct json_object *cfg, bool check_files,
			 struct secrets_config *out, struct op_errors *errs);
void secrets_config_release(struct secrets_config *c);

/*
 * Parse a sops key path: dotted (db.password, list.0), bracketed
 * (["db"]["password"], ['db'], [0]) or mixed (db[0].name).  Returns 0 with
 * a malloc'ed array (free with secrets_key_free), or -1 when it is invalid.
 */
int secrets_key_parse(const char *key, struct secrets_key_seg **segs, size_t *nsegs);
void secrets_key_free(struct secrets_key_seg *segs, size_t nsegs);

/* Absolute path of p resolved against $ORCHD_PIPELINE_DIR or the cwd (malloc'ed). */
char *secrets_resolve_path(const char *p);

/* The JSON-Schema-like config description for describe (caller owns). */
struct json_object *secrets_config_schema(void);
/* Exit with "secrets: out of memory" when p is NULL; returns p. */
void *secrets_must(void *p);

#endif
