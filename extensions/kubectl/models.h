/*
 * models: the kubectl extension's configuration (the "config" blob of an
 * action message), its validation, and the object identities kept in the
 * instance's state.
 *
 * Ownership: struct kc_config owns every string, list and json_object it
 * points to; release it with kc_config_release().  Errors are appended to
 * a struct op_errors (orchd_protocol.h; the caller releases it).
 * json_object arguments are borrowed; functions documented "caller owns"
 * return a new reference the caller must json_object_put().
 *
 * Error convention: kc_config_parse() returns 0, or -1 with every problem
 * appended to the error list (the config is then released).  Allocation
 * failure is fatal (the extension prints "kubectl: out of memory" and
 * exits 1).
 */
#ifndef KC_MODELS_H
#define KC_MODELS_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;
struct op_errors;

enum kc_source_kind {
	KC_FILE,      /* a manifest file (YAML or JSON, one or more documents) */
	KC_DIR,	      /* a directory of manifest files (kubectl -f DIR) */
	KC_KUSTOMIZE, /* a directory with a kustomization file */
	KC_INLINE,    /* one object written in the pipeline */
};

struct kc_source {
	enum kc_source_kind kind;
	char *path;		 /* KC_FILE/DIR/KUSTOMIZE: resolved, absolute; else NULL */
	struct json_object *obj; /* KC_INLINE: the object (owned) */
};

/* outputs_from: KEY -> the jsonpath of one object, read after apply */
struct kc_output_from {
	char *key, *kind, *name, *namespace; /* namespace: NULL = the config's */
	char *jsonpath;			     /* always "{...}" */
	bool secret;
};

struct kc_config {
	struct kc_source *sources; /* `manifests`, in order (at least one) */
	size_t nsources;
	char *namespace;       /* -n for objects without one, or NULL */
	bool create_namespace; /* apply a Namespace first (never deleted) */
	char *field_manager;   /* default "orchd" */
	bool force_conflicts;  /* --force-conflicts (default false) */
	bool prune;	       /* delete what an earlier apply made and the config
				   no longer declares (default true) */
	char *kubeconfig;      /* resolved path, or NULL (KUBECONFIG / ~/.kube/config) */
	char *context;	       /* --context, or NULL */
	char *request_timeout; /* --request-timeout (default "60s") */
	char *delete_timeout;  /* --timeout of kubectl delete (default "5m") */
	struct kc_output_from *outputs;
	size_t noutputs;
	char **env; /* NULL-terminated "KEY=VALUE" (possibly empty) */
};

/* Parse and validate cfg into *out; paths are resolved and must exist. */
int kc_config_parse(const struct json_object *cfg, struct kc_config *out, struct op_errors *errs);
void kc_config_release(struct kc_config *c);

/* The JSON-Schema-like config description for describe (caller owns). */
struct json_object *kc_config_schema(void);

/*
 * Object identities.  An identity is {"apiVersion","kind","namespace"
 * (absent for cluster-scoped objects),"name"} plus, in the state,
 * "resourceVersion" and "uid".  kc_ident_of() makes one from a full object
 * (caller owns; NULL when obj lacks kind or name); kc_ident_same() compares
 * two by API group (the apiVersion before '/'), kind, namespace and name;
 * kc_ident_text() is "Kind ns/name" or "Kind name" (malloc'ed).
 */
struct json_object *kc_ident_of(const struct json_object *obj, bool with_version);
bool kc_ident_same(const struct json_object *a, const struct json_object *b);
char *kc_ident_text(const struct json_object *id);

/* Allocation check: returns p, or exits 1 after "kubectl: out of memory". */
void *kc_must(void *p);

#endif
