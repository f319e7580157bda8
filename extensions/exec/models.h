/*
 * models: the exec extension's configuration (the "config" blob of an
 * action message) and its validation.
 *
 * Ownership: struct exec_config owns every string and array it points to;
 * release it with exec_config_release().  Errors are appended to a struct
 * op_errors (orchd_protocol.h; the caller releases it).  json_object
 * arguments are borrowed.
 */
#ifndef EXEC_MODELS_H
#define EXEC_MODELS_H

#include <stddef.h>

struct json_object;

struct exec_config {
	char **command;		/* NULL-terminated argv, at least one element */
	char **env;		/* NULL-terminated "KEY=VALUE" strings (may be empty) */
	char *cwd;		/* NULL: not set */
	char **plan_command;	/* NULL: not set */
	char **destroy_command; /* NULL: not set */
	char **secret_outputs;	/* NULL-terminated names (may be empty) */
};

struct op_errors;

/*
 * Parse and validate cfg (borrowed) into *out.  Returns 0, or -1 when cfg
 * is invalid, with every problem appended to errs (out is then released).
 */
int exec_config_parse(const struct json_object *cfg, struct exec_config *out,
		      struct op_errors *errs);
void exec_config_release(struct exec_config *c);
/* The JSON-Schema-like config description for describe (caller owns). */
struct json_object *exec_config_schema(void);
/* True when name is in the NULL-terminated list. */
int exec_list_has(char *const *list, const char *name);

#endif
