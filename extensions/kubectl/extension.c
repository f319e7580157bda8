/*
 * extension: the kubectl extension's logic.
 *
 * Every action but describe and validate turns `manifests` into kubectl -f
 * arguments: files and plain directories as they are, a kustomize
 * directory rendered by `kubectl kustomize` into the workdir, and each
 * inline object written to the workdir as manifests[I].json.  Then:
 *
 *   plan     kubectl apply --server-side --dry-run=server -o json (the
 *            objects, checked by the API server), kubectl diff
 *            --server-side (exit 1: differences), and the objects of the
 *            state the config no longer declares (to prune);
 *   apply    (the namespace, when create_namespace), kubectl apply
 *            --server-side -o json, then kubectl delete of what is to
 *            prune; the state is the list of objects applied;
 *   destroy  kubectl delete of exactly the objects of the state, in the
 *            reverse order of their apply.
 *
 * The state ({"objects": [identity...]}, see models.h) is sent before the
 * result, also when apply or delete failed half way: it then still lists
 * what may exist, so that the next apply or destroy deals with it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <orchd/orchd_protocol.h>

#include "extension.h"
#include "models.h"

#define KC_CAPTURE_MAX (64 * 1024 * 1024)
#define KC_ERR_MAX     65536
#define KC_SUMMARY_MAX 700
#define KC_KILL_GRACE  5000

struct ctx {
	struct op_ext *ext;
	struct kc_config cfg;
	char *workdir;	/* absolute */
	char **common;	/* --kubeconfig, --context, --request-timeout, --cache-dir */
	char **files;	/* "-f", path, ... */
	char **written; /* files of ours in the workdir, removed at the end */
	char *fm;	/* "--field-manager=F" */
	size_t nfiles, nwritten;
};

/* A growing NULL-terminated argv. */
struct argv {
	const char **v;
	size_t n, alloc;
};

static void argv_add(struct argv *a, const char *s)
{
	if (a->n + 2 > a->alloc) {
		a->alloc = a->alloc ? a->alloc * 2 : 16;
		a->v = kc_must(realloc(a->v, a->alloc * sizeof(char *)));
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void argv_addv(struct argv *a, char *const *v)
{
	for (; v && *v; v++)
		argv_add(a, *v);
}

static char **strv_add(char **v, size_t *n, char *s)
{
	v = kc_must(realloc(v, (*n + 2) * sizeof(char *)));
	v[(*n)++] = s;
	v[*n] = NULL;
	return v;
}

/* --- running kubectl ---------------------------------------------------------- */

struct run {
	struct op_cmd_result res;
	const char *what; /* "kubectl apply" */
};

/*
 * kubectl ARGS: stdout captured (capture) or logged at info, stderr logged
 * at warning and captured for the failure summary.
 */
#define QUIET 2 /* capture: stderr at level debug */

static void kubectl(struct ctx *c, struct run *r, const char *what, const char *const *args,
		    int capture)
{
	struct argv a = {0};
	struct op_cmd_opts o = {
		.env = c->cfg.env,
		.cwd = c->workdir,
		.out = {capture ? OP_CMD_CAPTURE : OP_CMD_LOG, "info", KC_CAPTURE_MAX},
		.err = {OP_CMD_LOG | OP_CMD_CAPTURE, capture & QUIET ? "debug" : "warning",
			KC_ERR_MAX},
		.kill_grace_ms = KC_KILL_GRACE,
	};

	argv_add(&a, "kubectl");
	for (; *args; args++)
		argv_add(&a, *args);
	argv_addv(&a, c->common);
	o.argv = (char *const *)(uintptr_t)a.v;
	r->what = what;
	op_ext_log(c->ext, "debug", "running %s", what);
	op_cmd_run(c->ext, &o, &r->res);
	free(a.v);
}

static const char *run_out(const struct run *r)
{
	return r->res.out.buf ? r->res.out.buf : "";
}

/* Is kubectl's error text about reaching the API server at all? */
static bool unreachable(const char *err)
{
	static const char *const marks[] = {"Unable to connect to the server",
					    "connection refused",
					    "i/o timeout",
					    "TLS handshake timeout",
					    "no such host",
					    "connection reset by peer",
					    "the server is currently unable to handle the request",
					    "context deadline exceeded",
					    "net/http: request canceled",
					    NULL};

	for (size_t i = 0; marks[i]; i++)
		if (strstr(err, marks[i]))
			return true;
	return false;
}

/* "WHAT failed (exit status N): kubectl's error lines" (op_cmd_failure); malloc'ed. */
static char *run_failure(const struct run *r)
{
	static const char *const prefixes[] = {"error: ", "Error from server", "Error: ", "The ",
					       NULL};

	return kc_must(op_cmd_failure(&r->res, r->what, prefixes, KC_SUMMARY_MAX));
}

static int fail_run(struct ctx *c, const struct run *r, int changed)
{
	char *s = run_failure(r);
	int ret;

	if (!r->res.cancelled && unreachable(r->res.err.buf ? r->res.err.buf : ""))
		op_ext_error(c->ext, true, "%s", s);
	ret = op_ext_result(c->ext, false, changed, NULL, "%s", s);
	free(s);
	return ret;
}

/* --- config and workdir --------------------------------------------------------- */

static int load_config(struct op_ext *ext, struct kc_config *cfg)
{
	struct op_errors errs = {0};
	int ret = 0;

	if (kc_config_parse(op_ext_config(ext), cfg, &errs) < 0) {
		op_ext_fail_errors(ext, &errs, -1, "invalid configuration: ");
		ret = -1;
	}
	op_errors_release(&errs);
	return ret;
}

static char *wd_path(const struct ctx *c, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", c->workdir, name) < 0)
		kc_must(NULL);
	return p;
}

/* Write v (JSON) to the workdir file name; its path is kept in c->written. */
static char *write_wd_json(struct ctx *c, const char *name, const struct json_object *v, char *err,
			   size_t errlen)
{
	char *p = wd_path(c, name);

	if (op_write_json_file(p, v, err, errlen) < 0) {
		free(p);
		return NULL;
	}
	c->written = strv_add(c->written, &c->nwritten, p);
	return p;
}

static void ctx_release(struct ctx *c)
{
	for (size_t i = 0; i < c->nwritten; i++)
		unlink(c->written[i]);
	op_cfg_list_free(c->written);
	op_cfg_list_free(c->common);
	op_cfg_list_free(c->files);
	kc_config_release(&c->cfg);
	free(c->workdir);
	free(c->fm);
	memset(c, 0, sizeof(*c));
}

static void add_file_arg(struct ctx *c, const char *path)
{
	c->files = strv_add(c->files, &c->nfiles, kc_must(strdup("-f")));
	c->files = strv_add(c->files, &c->nfiles, kc_must(strdup(path)));
}

/*
 * Load the config, set up the common arguments and (with_files) turn the
 * manifests into -f arguments.  On failure the result was sent, c is
 * released and -1 returned.
 */
static int prepare(struct op_ext *ext, struct ctx *c, bool with_files)
{
	const char *wd = op_ext_workdir(ext);
	char cwd[4096], err[OP_ERRMAX];
	size_t n = 0;

	memset(c, 0, sizeof(*c));
	c->ext = ext;
	if (load_config(ext, &c->cfg) < 0)
		return -1;
	op_cmd_catch_signals();
	if (!*wd)
		wd = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
	c->workdir = kc_must(wd[0] == '/' ? strdup(wd) : op_cfg_resolve_path(wd));
	if (asprintf(&c->fm, "--field-manager=%s", c->cfg.field_manager) < 0)
		kc_must(NULL);
	c->common = kc_must(calloc(1, sizeof(char *)));
	if (c->cfg.kubeconfig) {
		c->common = strv_add(c->common, &n, kc_must(strdup("--kubeconfig")));
		c->common = strv_add(c->common, &n, kc_must(strdup(c->cfg.kubeconfig)));
	}
	if (c->cfg.context) {
		c->common = strv_add(c->common, &n, kc_must(strdup("--context")));
		c->common = strv_add(c->common, &n, kc_must(strdup(c->cfg.context)));
	}
	c->common = strv_add(c->common, &n, kc_must(strdup("--request-timeout")));
	c->common = strv_add(c->common, &n, kc_must(strdup(c->cfg.request_timeout)));
	/* kubectl's discovery cache: in the workdir (home may be read-only) */
	c->common = strv_add(c->common, &n, kc_must(strdup("--cache-dir")));
	c->common = strv_add(c->common, &n, wd_path(c, ".kube-cache"));
	c->files = kc_must(calloc(1, sizeof(char *)));
	for (size_t i = 0; with_files && i < c->cfg.nsources; i++) {
		const struct kc_source *s = &c->cfg.sources[i];
		char name[64], *p;

		if (s->kind == KC_FILE || s->kind == KC_DIR) {
			add_file_arg(c, s->path);
		} else if (s->kind == KC_INLINE) {
			snprintf(name, sizeof(name), "manifests[%zu].json", i);
			if (!(p = write_wd_json(c, name, s->obj, err, sizeof(err)))) {
				op_ext_result(ext, false, -1, NULL,
					      "cannot prepare the workdir: %s", err);
				ctx_release(c);
				return -1;
			}
			add_file_arg(c, p);
		} else {
			const char *args[] = {"kustomize", s->path, NULL};
			struct run r = {0};

			kubectl(c, &r, "kubectl kustomize", args, true);
			snprintf(name, sizeof(name), "manifests[%zu].kustomize.yaml", i);
			p = wd_path(c, name);
			if (!op_cmd_exited(&r.res, 0)) {
				fail_run(c, &r, -1);
			} else if (op_write_file(p, r.res.out.buf, r.res.out.len, err,
						 sizeof(err)) < 0) {
				op_ext_result(ext, false, -1, NULL,
					      "cannot prepare the workdir: %s", err);
			} else {
				c->written = strv_add(c->written, &c->nwritten, p);
				add_file_arg(c, p);
				op_cmd_result_release(&r.res);
				continue;
			}
			free(p);
			op_cmd_result_release(&r.res);
			ctx_release(c);
			return -1;
		}
	}
	return 0;
}

/* --- objects ---------------------------------------------------------------------- */

/* The objects of kubectl -o json output (an object or a List) as an array of
 * identities (caller owns), or NULL when it is not JSON of that shape. */
static struct json_object *idents_of_output(const char *json, bool with_version)
{
	struct json_object *o = json_tokener_parse(json), *items, *ids;

	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	ids = kc_must(json_object_new_array());
	items = op_get(o, "items");
	if (json_object_is_type(items, json_type_array) && op_get_str(o, "kind") &&
	    !strcmp(op_get_str(o, "kind"), "List")) {
		for (size_t i = 0; i < json_object_array_length(items); i++) {
			struct json_object *id =
				kc_ident_of(json_object_array_get_idx(items, i), with_version);

			if (id)
				json_object_array_add(ids, id);
		}
	} else {
		struct json_object *id = kc_ident_of(o, with_version);

		if (id)
			json_object_array_add(ids, id);
	}
	json_object_put(o);
	return ids;
}

static struct json_object *find_ident(const struct json_object *arr, const struct json_object *id)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);

		if (kc_ident_same(e, id))
			return e;
	}
	return NULL;
}

/* The objects of the previous state (borrowed; an empty array when none). */
static struct json_object *state_objects(struct op_ext *ext, struct json_object **owned)
{
	struct json_object *objs = op_get(op_ext_state(ext), "objects");

	*owned = NULL;
	if (json_object_is_type(objs, json_type_array))
		return objs;
	*owned = kc_must(json_object_new_array());
	return *owned;
}

/* Those of old not in keep (new array, caller owns). */
static struct json_object *idents_minus(const struct json_object *old,
					const struct json_object *keep)
{
	struct json_object *out = kc_must(json_object_new_array());

	for (size_t i = 0; i < json_object_array_length(old); i++) {
		struct json_object *e = json_object_array_get_idx(old, i);

		if (!find_ident(keep, e))
			json_object_array_add(out, json_object_get(e));
	}
	return out;
}

static const char *plural(size_t n)
{
	return n == 1 ? "object" : "objects";
}

/* "Kind ns/a, Kind b" of up to 5 identities, then ", and N more". */
static void list_idents(struct op_buf *sb, const struct json_object *ids)
{
	size_t n = json_object_array_length(ids);

	for (size_t i = 0; i < n && i < 5; i++) {
		char *t = kc_ident_text(json_object_array_get_idx(ids, i));

		op_buf_addf(sb, "%s%s", i ? ", " : "", t);
		free(t);
	}
	if (n > 5)
		op_buf_addf(sb, ", and %zu more", n - 5);
}

/* Send the state {"objects": ids}; on failure the result is sent, -1. */
static int send_state(struct ctx *c, struct json_object *ids, int changed)
{
	struct json_object *st = kc_must(json_object_new_object());
	char err[OP_ERRMAX];
	int ret = 0;

	json_object_object_add(st, "objects", json_object_get(ids));
	if (op_ext_state_send(c->ext, st) < 0) {
		op_ext_send_failure(err, sizeof(err), errno, "the state");
		op_ext_result(c->ext, false, changed, NULL, "%s", err);
		ret = -1;
	}
	json_object_put(st);
	return ret;
}

/*
 * kubectl delete of ids (in the reverse of their order).  A type the API
 * server no longer knows (a CRD deleted before its resources) counts as
 * gone.  Returns true when everything is gone; r tells why not.
 */
static bool delete_objects(struct ctx *c, const struct json_object *ids, struct run *r)
{
	struct json_object *list = kc_must(json_object_new_object());
	struct json_object *items = kc_must(json_object_new_array());
	char err[OP_ERRMAX], *path, *timeout;
	bool ok;

	json_object_object_add(list, "apiVersion", json_object_new_string("v1"));
	json_object_object_add(list, "kind", json_object_new_string("List"));
	for (size_t i = json_object_array_length(ids); i-- > 0;) {
		struct json_object *id = json_object_array_get_idx(ids, i);
		struct json_object *stub = kc_must(json_object_new_object());
		struct json_object *meta = kc_must(json_object_new_object());

		json_object_object_add(stub, "apiVersion",
				       json_object_get(op_get(id, "apiVersion")));
		json_object_object_add(stub, "kind", json_object_get(op_get(id, "kind")));
		json_object_object_add(meta, "name", json_object_get(op_get(id, "name")));
		if (op_has(id, "namespace"))
			json_object_object_add(meta, "namespace",
					       json_object_get(op_get(id, "namespace")));
		json_object_object_add(stub, "metadata", meta);
		json_object_array_add(items, stub);
	}
	json_object_object_add(list, "items", items);
	memset(r, 0, sizeof(*r));
	path = write_wd_json(c, "orchd-delete.json", list, err, sizeof(err));
	json_object_put(list);
	if (!path) {
		r->what = "kubectl delete";
		snprintf(r->res.error, sizeof(r->res.error), "%s", err);
		return false;
	}
	if (asprintf(&timeout, "--timeout=%s", c->cfg.delete_timeout) < 0)
		kc_must(NULL);
	{
		const char *args[] = {
			"delete", "--ignore-not-found", "--wait=true", timeout, "-f", path, NULL};

		kubectl(c, r, "kubectl delete", args, false);
	}
	free(timeout);
	ok = op_cmd_exited(&r->res, 0);
	if (!ok && r->res.ran && !r->res.cancelled && r->res.exit_code == 1) {
		/* only "no matches for kind" errors: those types are gone */
		char *copy = kc_must(strdup(r->res.err.buf ? r->res.err.buf : "")), *save = NULL;
		bool other = false;

		for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			if (!strstr(l, "no matches for kind") &&
			    !strstr(l, "ensure CRDs are installed first") &&
			    !strstr(l, "the server doesn't have a resource type"))
				other = true;
		free(copy);
		ok = !other;
	}
	return ok;
}

/* --- actions ------------------------------------------------------------------------ */

int kc_describe(struct op_ext *ext)
{
	struct json_object *schema = kc_config_schema();
	int ret;

	ret = op_ext_describe(ext, "apply Kubernetes manifests with kubectl (server-side apply)",
			      schema);
	json_object_put(schema);
	return ret;
}

int kc_validate(struct op_ext *ext)
{
	struct kc_config cfg;

	if (load_config(ext, &cfg) < 0)
		return 0;
	kc_config_release(&cfg);
	return op_ext_result(ext, true, false, NULL, "configuration is valid");
}

/* The arguments of apply/diff common to plan and apply. */
static void apply_args(struct ctx *c, struct argv *a, const char *verb)
{
	argv_add(a, verb);
	argv_add(a, "--server-side");
	argv_add(a, c->fm);
	if (c->cfg.force_conflicts)
		argv_add(a, "--force-conflicts");
	if (c->cfg.namespace) {
		argv_add(a, "-n");
		argv_add(a, c->cfg.namespace);
	}
	argv_addv(a, c->files);
}

/*
 * Which manifest an apply failed on: each source applied alone with
 * --dry-run=server; the first that fails.  "manifests[I] 'PATH'" or
 * "manifests[I] (inline Kind name)", malloc'ed; NULL when none fails alone
 * (or there is only one source: then it is that one).
 */
static char *blame(struct ctx *c)
{
	for (size_t i = 0; i < c->cfg.nsources; i++) {
		const struct kc_source *src = &c->cfg.sources[i];
		char **files = c->files, *one[3] = {files[2 * i], files[2 * i + 1], NULL}, *s;
		struct argv a = {0};
		struct run r = {0};
		bool failed;

		if (c->cfg.nsources > 1) {
			c->files = one;
			apply_args(c, &a, "apply");
			c->files = files;
			argv_add(&a, "--dry-run=server");
			kubectl(c, &r, "kubectl apply --dry-run", a.v, true | QUIET);
			free(a.v);
			failed = r.res.ran && !op_cmd_exited(&r.res, 0);
			op_cmd_result_release(&r.res);
			if (!failed)
				continue;
		}
		if (src->kind == KC_INLINE) {
			if (asprintf(&s, "manifests[%zu] (inline %s %s)", i,
				     op_get_str(src->obj, "kind"),
				     op_get_str(op_get(src->obj, "metadata"), "name")) < 0)
				kc_must(NULL);
		} else if (asprintf(&s, "manifests[%zu] '%s'", i, src->path) < 0) {
			kc_must(NULL);
		}
		return s;
	}
	return NULL;
}

/* fail_run() of a failed apply (or its dry run), naming the manifest. */
static int fail_apply(struct ctx *c, const struct run *r, int changed)
{
	char *s, *where;
	int ret;

	if (r->res.cancelled || !r->res.ran || unreachable(r->res.err.buf ? r->res.err.buf : ""))
		return fail_run(c, r, changed);
	where = blame(c);
	s = run_failure(r);
	ret = op_ext_result(c->ext, false, changed, NULL, "%s%s%s", where ? where : "",
			    where ? ": " : "", s);
	free(s);
	free(where);
	return ret;
}

/* Does the namespace exist?  1 yes, 0 no, -1 the check failed (result sent). */
static int namespace_exists(struct ctx *c)
{
	const char *args[] = {"get",  "namespace", c->cfg.namespace, "--ignore-not-found", "-o",
			      "name", NULL};
	struct run r = {0};
	int ret;

	kubectl(c, &r, "kubectl get namespace", args, true);
	if (!op_cmd_exited(&r.res, 0)) {
		fail_run(c, &r, -1);
		ret = -1;
	} else {
		ret = r.res.out.len > 0;
	}
	op_cmd_result_release(&r.res);
	return ret;
}

/* Parse the file names of kubectl diff's "diff -u -N LIVE MERGED" lines:
 * .../MERGED-123/apps.v1.Deployment.ns.name -> "Deployment ns/name". */
static void diff_objects(const char *out, struct op_buf *sb, int *n)
{
	const char *p = out;

	*n = 0;
	while ((p = strstr(p, "diff -u -N "))) {
		const char *eol = strchr(p, '\n'), *sp, *base;
		char *name;

		if (!eol)
			eol = p + strlen(p);
		sp = eol;
		while (sp > p && sp[-1] != ' ')
			sp--;
		base = sp;
		for (const char *q = sp; q < eol; q++)
			if (*q == '/')
				base = q + 1;
		name = kc_must(strndup(base, (size_t)(eol - base)));
		if (*n < 5)
			op_buf_addf(sb, "%s%s", *n ? ", " : "", name);
		free(name);
		(*n)++;
		p = eol;
	}
	if (*n > 5)
		op_buf_addf(sb, ", and %d more", *n - 5);
}

int kc_plan(struct op_ext *ext)
{
	struct json_object *owned, *old, *ids = NULL, *prune = NULL;
	struct op_buf sb = OP_BUF_INIT, changed_list = OP_BUF_INIT;
	struct argv a = {0};
	struct run r = {0}, d = {0};
	struct ctx c;
	int ns = 1, ndiff = 0, ret;
	bool changed;

	if (prepare(ext, &c, true) < 0)
		return 0;
	old = state_objects(ext, &owned);
	if (c.cfg.namespace && c.cfg.create_namespace && (ns = namespace_exists(&c)) < 0) {
		ret = 0;
		goto out;
	}
	/* the objects, checked by the API server (by kubectl alone when
	 * their namespace does not exist yet) */
	op_ext_progress(ext, -1, "kubectl apply --dry-run");
	if (ns) {
		apply_args(&c, &a, "apply");
		argv_add(&a, "--dry-run=server");
	} else {
		/* (client-side: no field manager, no --server-side) */
		argv_add(&a, "apply");
		argv_add(&a, "--dry-run=client");
		argv_add(&a, "-n");
		argv_add(&a, c.cfg.namespace);
		argv_addv(&a, c.files);
	}
	argv_add(&a, "-o");
	argv_add(&a, "json");
	kubectl(&c, &r, "kubectl apply --dry-run", a.v, true);
	free(a.v);
	memset(&a, 0, sizeof(a));
	if (!op_cmd_exited(&r.res, 0)) {
		ret = fail_apply(&c, &r, -1);
		goto out;
	}
	if (!(ids = idents_of_output(run_out(&r), false))) {
		ret = op_ext_result(ext, false, -1, NULL,
				    "kubectl apply --dry-run: its output is not JSON");
		goto out;
	}
	prune = c.cfg.prune ? idents_minus(old, ids) : kc_must(json_object_new_array());
	if (!ns) {
		op_buf_addf(&sb, "plan: namespace %s to create, %zu %s to create", c.cfg.namespace,
			    json_object_array_length(ids), plural(json_object_array_length(ids)));
		ndiff = (int)json_object_array_length(ids);
	} else {
		op_ext_progress(ext, -1, "kubectl diff");
		apply_args(&c, &a, "diff");
		/* the diff is logged (kubectl masks a Secret's data) */
		kubectl(&c, &d, "kubectl diff", a.v, true);
		free(a.v);
		if (!op_cmd_exited(&d.res, 0) && !op_cmd_exited(&d.res, 1)) {
			ret = fail_run(&c, &d, -1);
			goto out;
		}
		for (const char *p = run_out(&d), *e; *p; p = *e ? e + 1 : e) {
			e = strchrnul(p, '\n');
			op_ext_log_line(ext, "info", p, (size_t)(e - p));
		}
		diff_objects(run_out(&d), &changed_list, &ndiff);
		if (ndiff)
			op_buf_addf(&sb, "plan: %d of %zu %s change (%s)", ndiff,
				    json_object_array_length(ids),
				    plural(json_object_array_length(ids)),
				    op_buf_str(&changed_list));
		else
			op_buf_addf(&sb, "plan: no changes to %zu %s",
				    json_object_array_length(ids),
				    plural(json_object_array_length(ids)));
	}
	if (json_object_array_length(prune)) {
		op_buf_addf(&sb, ", %zu to prune (", json_object_array_length(prune));
		list_idents(&sb, prune);
		op_buf_addstr(&sb, ")");
	}
	changed = ndiff > 0 || json_object_array_length(prune) > 0;
	op_buf_ellipsize(&sb, KC_SUMMARY_MAX);
	ret = op_ext_result(ext, true, changed, NULL, "%s", op_buf_str(&sb));
out:
	op_buf_release(&sb);
	op_buf_release(&changed_list);
	op_cmd_result_release(&r.res);
	op_cmd_result_release(&d.res);
	json_object_put(ids);
	json_object_put(prune);
	json_object_put(owned);
	ctx_release(&c);
	return ret;
}

/* Apply the namespace (server-side, never deleted); -1: result sent. */
static int ensure_namespace(struct ctx *c)
{
	struct json_object *ns = kc_must(json_tokener_parse(
		"{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{}}"));
	char err[OP_ERRMAX], *path;
	struct run r = {0};
	int ret = 0;

	json_object_object_add(op_get(ns, "metadata"), "name",
			       json_object_new_string(c->cfg.namespace));
	path = write_wd_json(c, "orchd-namespace.json", ns, err, sizeof(err));
	json_object_put(ns);
	if (!path)
		return op_ext_result(c->ext, false, -1, NULL, "cannot prepare the workdir: %s",
				     err),
		       -1;
	{
		const char *args[] = {"apply", "--server-side", c->fm, "-f", path, NULL};

		kubectl(c, &r, "kubectl apply (namespace)", args, false);
	}
	if (!op_cmd_exited(&r.res, 0)) {
		fail_run(c, &r, -1);
		ret = -1;
	}
	op_cmd_result_release(&r.res);
	return ret;
}

/* True when an applied object is new or its resourceVersion moved. */
static bool objects_moved(const struct json_object *old, const struct json_object *ids)
{
	for (size_t i = 0; i < json_object_array_length(ids); i++) {
		struct json_object *id = json_object_array_get_idx(ids, i);
		struct json_object *was = find_ident(old, id);
		const char *a = op_get_str(was, "resourceVersion"),
			   *b = op_get_str(id, "resourceVersion");

		if (!was || !a || !b || strcmp(a, b))
			return true;
	}
	return false;
}

/* Read and send outputs_from; -1 when one failed (result sent). */
static int send_outputs(struct ctx *c, const struct json_object *ids, int changed)
{
	struct json_object *names = kc_must(json_object_new_array());
	int ret = 0;

	for (size_t i = 0; i < json_object_array_length(ids); i++) {
		char *t = kc_ident_text(json_object_array_get_idx(ids, i));

		json_object_array_add(names, kc_must(json_object_new_string(t)));
		free(t);
	}
	op_ext_output(c->ext, "objects", names, false);
	json_object_put(names);
	if (c->cfg.namespace)
		op_ext_output_str(c->ext, "namespace", c->cfg.namespace, false);
	for (size_t i = 0; i < c->cfg.noutputs && !ret; i++) {
		const struct kc_output_from *o = &c->cfg.outputs[i];
		const char *ns = o->namespace ? o->namespace : c->cfg.namespace;
		char *jp, what[400];
		struct run r = {0};

		if (asprintf(&jp, "jsonpath=%s", o->jsonpath) < 0)
			kc_must(NULL);
		snprintf(what, sizeof(what), "kubectl get %s %s (output '%s')", o->kind, o->name,
			 o->key);
		{
			const char *args[] = {"get", o->kind,	       o->name, "-o",
					      jp,    ns ? "-n" : NULL, ns,	NULL};

			kubectl(c, &r, what, args, true);
		}
		free(jp);
		if (!op_cmd_exited(&r.res, 0)) {
			fail_run(c, &r, changed);
			ret = -1;
		} else if (op_ext_output_str(c->ext, o->key, run_out(&r), o->secret) < 0) {
			op_ext_result(c->ext, false, changed, NULL, "cannot send output '%s'",
				      o->key);
			ret = -1;
		}
		op_cmd_result_release(&r.res);
	}
	return ret;
}

int kc_apply(struct op_ext *ext)
{
	struct json_object *owned, *old, *ids = NULL, *prune = NULL, *keep = NULL;
	struct op_buf sb = OP_BUF_INIT;
	struct argv a = {0};
	struct run r = {0}, d = {0};
	struct ctx c;
	int ret = 0;
	bool changed;

	if (prepare(ext, &c, true) < 0)
		return 0;
	old = state_objects(ext, &owned);
	if (c.cfg.namespace && c.cfg.create_namespace && ensure_namespace(&c) < 0)
		goto out;
	op_ext_progress(ext, -1, "kubectl apply");
	apply_args(&c, &a, "apply");
	argv_add(&a, "-o");
	argv_add(&a, "json");
	kubectl(&c, &r, "kubectl apply", a.v, true);
	free(a.v);
	ids = idents_of_output(run_out(&r), true);
	if (!op_cmd_exited(&r.res, 0) || !ids) {
		/* Some objects may have been applied: keep the old list plus
		 * whatever the output names, so that none is forgotten. */
		keep = json_object_get(old);
		if (ids) {
			json_object_put(keep);
			keep = idents_minus(old, ids);
			for (size_t i = 0; i < json_object_array_length(ids); i++)
				json_object_array_add(
					keep, json_object_get(json_object_array_get_idx(ids, i)));
		}
		if (send_state(&c, keep, -1) == 0) {
			if (op_cmd_exited(&r.res, 0))
				op_ext_result(ext, false, -1, NULL,
					      "kubectl apply: its output is not JSON");
			else
				fail_apply(&c, &r, -1);
		}
		goto out;
	}
	changed = objects_moved(old, ids);
	prune = c.cfg.prune ? idents_minus(old, ids) : kc_must(json_object_new_array());
	keep = json_object_get(ids);
	if (json_object_array_length(prune)) {
		op_ext_progress(ext, -1, "kubectl delete (prune)");
		if (!delete_objects(&c, prune, &d)) {
			/* not all gone: keep tracking them */
			for (size_t i = 0; i < json_object_array_length(prune); i++)
				json_object_array_add(
					keep, json_object_get(json_object_array_get_idx(prune, i)));
			if (send_state(&c, keep, true) == 0)
				fail_run(&c, &d, true);
			goto out;
		}
		changed = true;
	}
	if (send_state(&c, keep, changed) < 0 || send_outputs(&c, ids, changed) < 0)
		goto out;
	op_buf_addf(&sb, "apply: %zu %s%s", json_object_array_length(ids),
		    plural(json_object_array_length(ids)), changed ? "" : ", no changes");
	if (json_object_array_length(prune)) {
		op_buf_addf(&sb, ", pruned %zu (", json_object_array_length(prune));
		list_idents(&sb, prune);
		op_buf_addstr(&sb, ")");
	}
	op_buf_ellipsize(&sb, KC_SUMMARY_MAX);
	ret = op_ext_result(ext, true, changed, NULL, "%s", op_buf_str(&sb));
out:
	op_buf_release(&sb);
	op_cmd_result_release(&r.res);
	op_cmd_result_release(&d.res);
	json_object_put(ids);
	json_object_put(prune);
	json_object_put(keep);
	json_object_put(owned);
	ctx_release(&c);
	return ret;
}

int kc_destroy(struct op_ext *ext)
{
	struct json_object *owned, *old;
	struct op_buf sb = OP_BUF_INIT;
	struct run d = {0};
	struct ctx c;
	int ret = 0;

	if (prepare(ext, &c, false) < 0)
		return 0;
	old = state_objects(ext, &owned);
	if (!json_object_array_length(old)) {
		if (op_ext_state_send(ext, NULL) == 0)
			ret = op_ext_result(ext, true, false, NULL, "nothing to destroy");
		goto out;
	}
	op_ext_progress(ext, -1, "kubectl delete");
	if (!delete_objects(&c, old, &d)) {
		/* the state still lists them all: destroy can be run again */
		if (send_state(&c, old, -1) == 0)
			fail_run(&c, &d, -1);
		goto out;
	}
	/* state null: the stack holds nothing of this instance any more */
	if (op_ext_state_send(ext, NULL) == 0) {
		op_buf_addf(&sb, "destroy: deleted %zu %s (", json_object_array_length(old),
			    plural(json_object_array_length(old)));
		list_idents(&sb, old);
		op_buf_addstr(&sb, ")");
		op_buf_ellipsize(&sb, KC_SUMMARY_MAX);
		ret = op_ext_result(ext, true, true, NULL, "%s", op_buf_str(&sb));
	}
out:
	op_buf_release(&sb);
	op_cmd_result_release(&d.res);
	json_object_put(owned);
	ctx_release(&c);
	return ret;
}
