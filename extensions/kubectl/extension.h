/*
 * extension: the kubectl extension's actions.  Each function sends exactly
 * one result message on ext (success or failure) and returns 0, or -1 when
 * the result could not be written (orchd went away).
 */
#ifndef KC_EXTENSION_H
#define KC_EXTENSION_H

struct op_ext;

#define KC_NAME	   "kubectl"
#define KC_VERSION "0.1.0"

int kc_describe(struct op_ext *ext);
int kc_validate(struct op_ext *ext);
int kc_plan(struct op_ext *ext);
int kc_apply(struct op_ext *ext);
int kc_destroy(struct op_ext *ext);

#endif
