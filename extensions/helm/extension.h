/*
 * extension: the helm extension's actions.  Each function sends exactly
 * one result message on ext (success or failure) and returns 0, or -1 when
 * the result could not be written (orchd went away).
 */
#ifndef HM_EXTENSION_H
#define HM_EXTENSION_H

struct op_ext;

#define HM_NAME	   "helm"
#define HM_VERSION "0.1.0"

int hm_describe(struct op_ext *ext);
int hm_validate(struct op_ext *ext);
int hm_plan(struct op_ext *ext);
int hm_apply(struct op_ext *ext);
int hm_destroy(struct op_ext *ext);

#endif
