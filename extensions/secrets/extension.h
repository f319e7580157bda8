/*
 * extension: the secrets extension's actions.  Each function sends exactly
 * one result message on ext (success or failure) and returns 0, or -1 when
 * the result could not be written (orchd went away).
 */
#ifndef SECRETS_EXTENSION_H
#define SECRETS_EXTENSION_H

struct op_ext;

#define SECRETS_NAME	"secrets"
#define SECRETS_VERSION "0.1.0"

int secrets_describe(struct op_ext *ext);
int secrets_validate(struct op_ext *ext);
int secrets_plan(struct op_ext *ext);
int secrets_apply(struct op_ext *ext);
int secrets_destroy(struct op_ext *ext);

#endif
