/*
 * extension: the terraform extension's actions.  Each function sends
 * exactly one result message on ext (success or failure) and returns 0, or
 * -1 when the result could not be written (orchd went away).
 */
#ifndef TF_EXTENSION_H
#define TF_EXTENSION_H

struct op_ext;

#define TF_NAME	   "terraform"
#define TF_VERSION "0.1.0"

int tf_describe(struct op_ext *ext);
int tf_validate(struct op_ext *ext);
int tf_plan(struct op_ext *ext);
int tf_apply(struct op_ext *ext);
int tf_destroy(struct op_ext *ext);

#endif
