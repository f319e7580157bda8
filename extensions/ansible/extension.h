/*
 * extension: the ansible extension's actions.  Each function sends exactly
 * one result message on ext (success or failure) and returns 0, or -1 when
 * the result could not be written (orchd went away).
 */
#ifndef ANS_EXTENSION_H
#define ANS_EXTENSION_H

struct op_ext;

#define ANS_NAME    "ansible"
#define ANS_VERSION "0.1.0"

int ans_describe(struct op_ext *ext);
int ans_validate(struct op_ext *ext);
int ans_plan(struct op_ext *ext);
int ans_apply(struct op_ext *ext);
int ans_destroy(struct op_ext *ext);

#endif
