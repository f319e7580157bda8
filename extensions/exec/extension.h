/*
 * extension: the exec extension's actions.  Each function sends exactly one
 * result message on ext (success or failure) and returns 0, or -1 when the
 * result could not be written (orchd went away).
 */
#ifndef EXEC_EXTENSION_H
#define EXEC_EXTENSION_H

struct op_ext;

#define EXEC_NAME    "exec"
#define EXEC_VERSION "0.1.0"

int exec_describe(struct op_ext *ext);
int exec_validate(struct op_ext *ext);
int exec_plan(struct op_ext *ext);
int exec_apply(struct op_ext *ext);
int exec_destroy(struct op_ext *ext);

#endif
