/*
 * models: the helm extension's configuration (the "config" blob of an
 * action message) and its validation.
 *
 * Ownership: struct hm_config owns every string, list and json_object it
 * points to; release it with hm_config_release().  Errors are appended to
 * a struct op_errors (orchd_protocol.h; the caller releases it).
 * json_object arguments are borrowed.
 *
 * Error convention: hm_config_parse() returns 0, or -1 with every problem
 * appended to the error list (the config is then released).  Allocation
 * failure is fatal (the extension prints "helm: out of memory" and exits
 * 1).
 */
#ifndef HM_MODELS_H
#define HM_MODELS_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

struct json_object;
struct op_errors;

/* outputs_from: KEY -> a jsonpath of one object (read with kubectl), or the
 * first match of a regular expression in the release's notes */
struct hm_output_from {
	char *key;
	char *kind, *name, *namespace, *jsonpath; /* an object; jsonpath "{...}" */
	char *notes;				  /* or: the expression (POSIX ERE) */
	regex_t re;				  /* notes compiled */
	bool secret;
};

struct hm_config {
	char *release;		    /* default: the instance's name */
	char *namespace;	    /* default "default" */
	bool create_namespace;	    /* --create-namespace */
	char *chart;		    /* as written */
	char *chart_path;	    /* resolved: the workdir (sources), else the pipeline dir */
	char *version;		    /* the chart version required, or NULL */
	struct json_object *values; /* an object (possibly empty); owned */
	struct json_object *secret_values; /* an object (possibly empty); owned */
	char **values_files;		   /* resolved paths, NULL-terminated */
	struct json_object *set;	   /* KEY -> JSON value (--set-json); owned */
	char *timeout;			   /* --timeout (default "5m") */
	bool atomic, wait;
	char *kubeconfig; /* resolved path, or NULL */
	char *context;	  /* --kube-context, or NULL */
	struct hm_output_from *outputs;
	size_t noutputs;
	char **env; /* NULL-terminated "KEY=VALUE" (possibly empty) */
};

/* Parse and validate cfg into *out; workdir: where `sources:` were put
 * (chart and values_files are looked up there first).  Paths must exist. */
int hm_config_parse(const struct json_object *cfg, const char *instance, const char *workdir,
		    struct hm_config *out, struct op_errors *errs);
void hm_config_release(struct hm_config *c);

/* The JSON-Schema-like config description for describe (caller owns). */
struct json_object *hm_config_schema(void);

/* Allocation check: returns p, or exits 1 after "helm: out of memory". */
void *hm_must(void *p);

#endif
