/*
 * models: the exec extension's configuration (the "config" blob of an
 * action message) and its validation.
 *
 * Ownership: struct exec_config owns every string and array it points to;
 * release it with exec_config_release().  struct exec_errors owns its
 * entries; release with exec_errors_release().  json_object arguments are
 * borrowed.
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

struct exec_error {
	char *path;    /* "command", "env.FOO", "command[2]"; "" for an unknown key */
	char *message; /* "is required", "must be a string", ... */
};

struct exec_errors {
	struct exec_error *v;
	size_t nr, alloc;
};

/*
 * Parse and validate cfg (borrowed) into *out.  Returns 0, or -1 when cfg
 * is invalid, with every problem appended to errs (out is then released).
 */
int exec_config_parse(const struct json_object *cfg, struct exec_config *out,
		      struct exec_errors *errs);
void exec_config_release(struct exec_config *c);
void exec_errors_release(struct exec_errors *e);
/* "path: message", or message alone when path is "" (malloc'ed). */
char *exec_error_text(const struct exec_error *e);
/* The errors as the protocol's [{"path":..,"message":..}] (caller owns). */
struct json_object *exec_errors_json(const struct exec_errors *e);
/* The JSON-Schema-like config description for describe (caller owns). */
struct json_object *exec_config_schema(void);
/* True when name is in the NULL-terminated list. */
int exec_list_has(char *const *list, const char *name);

#endif
