/*
 * extension: the helm extension's logic.
 *
 * Every action but describe and validate writes the values to the workdir
 * (orchd-values.json; secret_values to orchd-secret-values.json, mode 0600,
 * removed when the action ends; each secret string is masked first) and
 * points helm's cache, config and data homes into the workdir.  Then:
 *
 *   plan     helm upgrade --install --dry-run=server -o json (the chart
 *            rendered with the cluster's capabilities and lookups) against
 *            helm status -o json (the deployed release): the objects added,
 *            changed and removed (compared document by document, keyed by
 *            template and kind/name), a chart version or values digest that
 *            moved, a release that is not deployed; when anything differs,
 *            the rendered objects go to the API server in a kubectl server
 *            dry run (helm's never submits them: server_check);
 *   apply    the same comparison; when nothing differs, nothing runs (the
 *            revision stays), else helm upgrade --install -o json;
 *   destroy  helm uninstall of the release the state names.
 *
 * State (sent secret: it holds a digest of secret values): {release,
 * namespace, revision, chart, chart_version, values_digest}.
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include <orchd/orchd_protocol.h>

#include "extension.h"
#include "models.h"

#define HM_CAPTURE_MAX (64 * 1024 * 1024)
#define HM_ERR_MAX     65536
#define HM_SUMMARY_MAX 700
#define HM_KILL_GRACE  8000
#define HM_VALUES      "orchd-values.json"
#define HM_SECRETS     "orchd-secret-values.json"

struct ctx {
	struct op_ext *ext;
	struct hm_config cfg;
	char *workdir;
	char **env;	 /* HELM_*_HOME plus the config's env */
	char **common;	 /* --namespace, --kubeconfig, --kube-context */
	char **values;	 /* -f FILE..., --set-json K=V... */
	char digest[65]; /* sha256 of everything in `values`, hex */
	size_t ncommon, nvalues;
};

struct argv {
	const char **v;
	size_t n, alloc;
};

static void argv_add(struct argv *a, const char *s)
{
	if (!s)
		return;
	if (a->n + 2 > a->alloc) {
		a->alloc = a->alloc ? a->alloc * 2 : 32;
		a->v = hm_must(realloc(a->v, a->alloc * sizeof(char *)));
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
	v = hm_must(realloc(v, (*n + 2) * sizeof(char *)));
	v[(*n)++] = s;
	v[*n] = NULL;
	return v;
}

static char *xfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xfmt(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		hm_must(NULL);
	return s;
}

/* --- running helm and kubectl -------------------------------------------------------- */

struct run {
	struct op_cmd_result res;
	const char *what;
};

/* prog ARGS (helm: plus the common arguments); stdout captured or logged. */
#define QUIET 2 /* with capture: stderr at level debug */

static void tool_input(struct ctx *c, struct run *r, const char *prog, const char *what,
		       const struct argv *args, int capture, const char *input)
{
	struct argv a = {0};
	struct op_cmd_opts o = {
		.env = c->env,
		.cwd = c->workdir,
		.input = input,
		.input_len = input ? strlen(input) : 0,
		.out = {capture ? OP_CMD_CAPTURE : OP_CMD_LOG, "info", HM_CAPTURE_MAX},
		.err = {OP_CMD_LOG | OP_CMD_CAPTURE, capture & QUIET ? "debug" : "warning",
			HM_ERR_MAX},
		.kill_grace_ms = HM_KILL_GRACE,
	};

	argv_add(&a, prog);
	for (size_t i = 0; i < args->n; i++)
		argv_add(&a, args->v[i]);
	o.argv = (char *const *)(uintptr_t)a.v;
	memset(r, 0, sizeof(*r));
	r->what = what;
	op_ext_log(c->ext, "debug", "running %s", what);
	op_cmd_run(c->ext, &o, &r->res);
	free(a.v);
}

static void tool(struct ctx *c, struct run *r, const char *prog, const char *what,
		 const struct argv *args, int capture)
{
	tool_input(c, r, prog, what, args, capture, NULL);
}

/* kubectl's -n NS and the config's --kubeconfig and --context. */
static void kubectl_target(const struct ctx *c, struct argv *a, const char *ns)
{
	argv_add(a, "-n");
	argv_add(a, ns);
	if (c->cfg.kubeconfig) {
		argv_add(a, "--kubeconfig");
		argv_add(a, c->cfg.kubeconfig);
	}
	if (c->cfg.context) {
		argv_add(a, "--context");
		argv_add(a, c->cfg.context);
	}
}

static const char *run_out(const struct run *r)
{
	return r->res.out.buf ? r->res.out.buf : "";
}

static const char *run_err(const struct run *r)
{
	return r->res.err.buf ? r->res.err.buf : "";
}

static bool starts(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

static bool unreachable(const char *err)
{
	static const char *const marks[] = {"Kubernetes cluster unreachable",
					    "Unable to connect to the server",
					    "connection refused",
					    "i/o timeout",
					    "TLS handshake timeout",
					    "no such host",
					    "connection reset by peer",
					    "context deadline exceeded",
					    NULL};

	for (size_t i = 0; marks[i]; i++)
		if (strstr(err, marks[i]))
			return true;
	return false;
}

/* "WHAT failed (exit status N): helm's error lines" (op_cmd_failure); malloc'ed. */
static char *run_failure(const struct run *r)
{
	static const char *const prefixes[] = {"Error: ", "error: ", "Error from server", NULL};

	return hm_must(op_cmd_failure(&r->res, r->what, prefixes, HM_SUMMARY_MAX));
}

static int fail_run(struct ctx *c, const struct run *r, int changed)
{
	char *s = run_failure(r);
	int ret;

	if (!r->res.cancelled && unreachable(run_err(r)))
		op_ext_error(c->ext, true, "%s", s);
	ret = op_ext_result(c->ext, false, changed, NULL, "%s", s);
	free(s);
	return ret;
}

/* --- values ------------------------------------------------------------------------- */

/* Mask every scalar of a secret_values tree. */
static void mask_tree(struct op_ext *ext, struct json_object *v)
{
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, e)
		{
			(void)k;
			mask_tree(ext, e);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++)
			mask_tree(ext, json_object_array_get_idx(v, i));
	} else if (v && !json_object_is_type(v, json_type_boolean)) {
		const char *s = json_object_get_string(v);

		if (s && strlen(s) >= 2)
			op_ext_mask(ext, s);
	}
}

static void digest_add(EVP_MD_CTX *md, const char *tag, const void *p, size_t n)
{
	char len[32];

	snprintf(len, sizeof(len), "%s %zu\n", tag, n);
	EVP_DigestUpdate(md, len, strlen(len));
	EVP_DigestUpdate(md, p, n);
}

static void digest_json(EVP_MD_CTX *md, const char *tag, struct json_object *v)
{
	const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);

	digest_add(md, tag, s, strlen(s));
}

/* Write the values files, build -f/--set-json arguments and the digest;
 * -1 with err set when a file cannot be written or read. */
static int prepare_values(struct ctx *c, char *err, size_t errlen)
{
	EVP_MD_CTX *md = hm_must(EVP_MD_CTX_new());
	unsigned char sum[32];
	char *p;
	int ret = 0;

	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	digest_add(md, "chart", c->cfg.chart, strlen(c->cfg.chart));
	if (c->cfg.version)
		digest_add(md, "version", c->cfg.version, strlen(c->cfg.version));
	c->values = hm_must(calloc(1, sizeof(char *)));
	for (size_t i = 0; c->cfg.values_files[i] && !ret; i++) {
		size_t len;
		char *text;
		int fd = open(c->cfg.values_files[i], O_RDONLY | O_CLOEXEC);
		struct op_buf sb = OP_BUF_INIT;
		char buf[8192];
		ssize_t n;

		if (fd < 0) {
			snprintf(err, errlen, "cannot read '%s': %s", c->cfg.values_files[i],
				 strerror(errno));
			ret = -1;
			break;
		}
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			op_buf_add(&sb, buf, (size_t)n);
		close(fd);
		text = hm_must(op_buf_detach(&sb, &len));
		digest_add(md, "file", text, len);
		free(text);
		c->values = strv_add(c->values, &c->nvalues, hm_must(strdup("-f")));
		c->values =
			strv_add(c->values, &c->nvalues, hm_must(strdup(c->cfg.values_files[i])));
	}
	if (!ret && json_object_object_length(c->cfg.values)) {
		digest_json(md, "values", c->cfg.values);
		p = xfmt("%s/%s", c->workdir, HM_VALUES);
		ret = op_write_json_file(p, c->cfg.values, err, errlen);
		c->values = strv_add(c->values, &c->nvalues, hm_must(strdup("-f")));
		c->values = strv_add(c->values, &c->nvalues, p);
	}
	if (!ret && json_object_object_length(c->cfg.secret_values)) {
		mask_tree(c->ext, c->cfg.secret_values);
		digest_json(md, "secret_values", c->cfg.secret_values);
		p = xfmt("%s/%s", c->workdir, HM_SECRETS);
		/* (op_write_json_file creates it 0600) */
		ret = op_write_json_file(p, c->cfg.secret_values, err, errlen);
		c->values = strv_add(c->values, &c->nvalues, hm_must(strdup("-f")));
		c->values = strv_add(c->values, &c->nvalues, p);
	}
	if (!ret) {
		json_object_object_foreach(c->cfg.set, k, v)
		{
			const char *js = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);

			c->values = strv_add(c->values, &c->nvalues, hm_must(strdup("--set-json")));
			c->values = strv_add(c->values, &c->nvalues, xfmt("%s=%s", k, js));
		}
		digest_json(md, "set", c->cfg.set);
	}
	EVP_DigestFinal_ex(md, sum, NULL);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 32; i++)
		snprintf(c->digest + 2 * i, 3, "%02x", sum[i]);
	return ret;
}

/* --- context ------------------------------------------------------------------------ */

static void ctx_release(struct ctx *c)
{
	if (c->workdir) {
		char *p = xfmt("%s/%s", c->workdir, HM_SECRETS);

		unlink(p);
		free(p);
		p = xfmt("%s/%s", c->workdir, HM_VALUES);
		unlink(p);
		free(p);
	}
	hm_config_release(&c->cfg);
	free(c->workdir);
	op_cfg_list_free(c->env);
	op_cfg_list_free(c->common);
	op_cfg_list_free(c->values);
	memset(c, 0, sizeof(*c));
}

static const char *workdir_of(struct op_ext *ext, char *buf, size_t len)
{
	const char *wd = op_ext_workdir(ext);

	if (!*wd)
		wd = getcwd(buf, len) ? buf : ".";
	return wd;
}

static int load_config(struct op_ext *ext, struct hm_config *cfg, const char *wd)
{
	struct op_errors errs = {0};
	int ret = 0;

	if (hm_config_parse(op_ext_config(ext), op_ext_instance(ext), wd, cfg, &errs) < 0) {
		op_ext_fail_errors(ext, &errs, -1, "invalid configuration: ");
		ret = -1;
	}
	op_errors_release(&errs);
	return ret;
}

/* Load the config and set up the environment, common arguments and values;
 * on failure the result was sent, c released, -1. */
static int prepare(struct op_ext *ext, struct ctx *c, bool values)
{
	char cwd[4096], err[OP_ERRMAX];
	const char *wd = workdir_of(ext, cwd, sizeof(cwd));
	static const char *const homes[] = {"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME",
					    NULL};
	size_t n = 0;

	memset(c, 0, sizeof(*c));
	c->ext = ext;
	if (load_config(ext, &c->cfg, wd) < 0)
		return -1;
	op_cmd_catch_signals();
	c->workdir = hm_must(wd[0] == '/' ? strdup(wd) : op_cfg_resolve_path(wd));
	c->env = hm_must(calloc(1, sizeof(char *)));
	/* helm's homes: in the workdir (the user's home may be read-only) */
	for (size_t i = 0; homes[i]; i++)
		if (!op_cfg_env_has(c->cfg.env, homes[i]))
			c->env = strv_add(c->env, &n, xfmt("%s=%s/.helm", homes[i], c->workdir));
	if (!op_cfg_env_has(c->cfg.env, "HELM_NO_PLUGINS"))
		c->env = strv_add(c->env, &n, hm_must(strdup("HELM_NO_PLUGINS=1")));
	for (size_t i = 0; c->cfg.env[i]; i++)
		c->env = strv_add(c->env, &n, hm_must(strdup(c->cfg.env[i])));
	c->common = hm_must(calloc(1, sizeof(char *)));
	c->common = strv_add(c->common, &c->ncommon, hm_must(strdup("--namespace")));
	c->common = strv_add(c->common, &c->ncommon, hm_must(strdup(c->cfg.namespace)));
	if (c->cfg.kubeconfig) {
		c->common = strv_add(c->common, &c->ncommon, hm_must(strdup("--kubeconfig")));
		c->common = strv_add(c->common, &c->ncommon, hm_must(strdup(c->cfg.kubeconfig)));
	}
	if (c->cfg.context) {
		c->common = strv_add(c->common, &c->ncommon, hm_must(strdup("--kube-context")));
		c->common = strv_add(c->common, &c->ncommon, hm_must(strdup(c->cfg.context)));
	}
	if (values && prepare_values(c, err, sizeof(err)) < 0) {
		op_ext_result(ext, false, -1, NULL, "cannot prepare the values: %s", err);
		ctx_release(c);
		return -1;
	}
	return 0;
}

/* --- releases ---------------------------------------------------------------------- */

/* The release helm printed with -o json (caller owns), or NULL with
 * r->res.error "its output is not JSON". */
static struct json_object *release_of(struct run *r)
{
	struct json_object *rel = json_tokener_parse(run_out(r));

	if (json_object_is_type(rel, json_type_object))
		return rel;
	json_object_put(rel);
	snprintf(r->res.error, sizeof(r->res.error), "its output is not JSON");
	return NULL;
}

/* helm upgrade --install [--dry-run=server] -o json: the release (caller
 * owns) or NULL with r telling why. */
static struct json_object *upgrade(struct ctx *c, struct run *r, bool dry_run)
{
	struct argv a = {0};
	struct json_object *rel = NULL;

	argv_add(&a, "upgrade");
	argv_add(&a, c->cfg.release);
	argv_add(&a, c->cfg.chart_path);
	argv_add(&a, "--install");
	argv_add(&a, "-o");
	argv_add(&a, "json");
	argv_add(&a, "--timeout");
	argv_add(&a, c->cfg.timeout);
	if (c->cfg.version) {
		argv_add(&a, "--version");
		argv_add(&a, c->cfg.version);
	}
	if (c->cfg.create_namespace)
		argv_add(&a, "--create-namespace");
	if (dry_run) {
		argv_add(&a, "--dry-run=server");
	} else {
		if (c->cfg.atomic)
			argv_add(&a, "--atomic");
		if (c->cfg.wait)
			argv_add(&a, "--wait");
	}
	argv_addv(&a, c->values);
	argv_addv(&a, c->common);
	tool(c, r, "helm", dry_run ? "helm upgrade --install --dry-run" : "helm upgrade --install",
	     &a, true);
	free(a.v);
	if (op_cmd_exited(&r->res, 0))
		rel = release_of(r);
	return rel;
}

/*
 * The deployed release (helm status -o json; caller owns), NULL with
 * *missing set when there is none, NULL with r telling why on a failure.
 */
static struct json_object *deployed(struct ctx *c, struct run *r, bool *missing)
{
	struct argv a = {0};
	struct json_object *rel = NULL;

	*missing = false;
	argv_add(&a, "status");
	argv_add(&a, c->cfg.release);
	argv_add(&a, "-o");
	argv_add(&a, "json");
	argv_addv(&a, c->common);
	/* (quiet: "release: not found" is an answer, not a warning) */
	tool(c, r, "helm", "helm status", &a, true | QUIET);
	free(a.v);
	if (op_cmd_exited(&r->res, 0)) {
		rel = release_of(r);
	} else if (op_cmd_exited(&r->res, 1) && strstr(run_err(r), "release: not found")) {
		*missing = true;
	}
	return rel;
}

static const char *chart_version(const struct json_object *rel)
{
	const char *v = op_get_str(op_get(op_get(rel, "chart"), "metadata"), "version");

	return v ? v : "";
}

static const char *chart_name(const struct json_object *rel)
{
	const char *v = op_get_str(op_get(op_get(rel, "chart"), "metadata"), "name");

	return v ? v : "";
}

static const char *rel_status(const struct json_object *rel)
{
	const char *v = op_get_str(op_get(rel, "info"), "status");

	return v ? v : "unknown";
}

/* --- manifests ---------------------------------------------------------------------- */

struct doc {
	char *key;   /* "templates/x.yaml#N" */
	char *label; /* "ConfigMap web-config" (or the template) */
	char *text;
	bool secret; /* kind: Secret: never printed */
};

struct docs {
	struct doc *v;
	size_t n;
};

/* The value of a "KEY: value" line of text at indentation indent (the
 * first one), malloc'ed, or NULL. */
static char *yaml_field(const char *text, const char *key, int indent)
{
	size_t kl = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		int sp = 0;

		while (p[sp] == ' ')
			sp++;
		if (sp == indent && !strncmp(p + sp, key, kl) && p[sp + kl] == ':' &&
		    p[sp + kl + 1] == ' ') {
			const char *v = p + sp + kl + 2, *e = strchrnul(v, '\n');

			while (e > v && (e[-1] == ' ' || e[-1] == '\r'))
				e--;
			if (*v == '"' || *v == '\'')
				v++, e -= e > v && (e[-1] == '"' || e[-1] == '\'');
			return hm_must(strndup(v, (size_t)(e - v)));
		}
	}
	return NULL;
}

/* Split a helm manifest ("---\n# Source: chart/templates/x.yaml\n...") into
 * documents; empty documents are skipped. */
static void split_docs(const char *manifest, struct docs *out)
{
	const char *p = manifest;

	memset(out, 0, sizeof(*out));
	while (p && *p) {
		const char *end = strstr(p, "\n---"), *body = p;
		char *text, *src, *kind, *name;
		struct doc *d;
		size_t same = 0;

		if (starts(p, "---"))
			body = strchrnul(p, '\n');
		if (end == body - 1)
			end = strstr(body, "\n---");
		text = hm_must(strndup(body, end ? (size_t)(end - body) : strlen(body)));
		p = end ? end + 1 : NULL;
		if (!strstr(text, "kind:")) {
			free(text);
			continue;
		}
		src = yaml_field(text, "# Source", 0);
		kind = yaml_field(text, "kind", 0);
		name = yaml_field(text, "name", 2);
		for (size_t i = 0; i < out->n; i++)
			same += src && starts(out->v[i].key, src);
		out->v = hm_must(realloc(out->v, (out->n + 1) * sizeof(*out->v)));
		d = &out->v[out->n++];
		if (asprintf(&d->key, "%s#%zu", src ? src : "?", same) < 0)
			hm_must(NULL);
		if (kind && name)
			d->label = xfmt("%s %s", kind, name);
		else
			d->label = hm_must(strdup(src ? src : "an object"));
		d->secret = kind && !strcmp(kind, "Secret");
		d->text = text;
		free(src);
		free(kind);
		free(name);
	}
}

static void docs_release(struct docs *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].key);
		free(d->v[i].label);
		free(d->v[i].text);
	}
	free(d->v);
}

static const struct doc *find_doc(const struct docs *d, const char *key)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].key, key))
			return &d->v[i];
	return NULL;
}

/* Log the lines of a that b lacks (prefix "-") and of b that a lacks ("+"). */
static void log_line_diff(struct op_ext *ext, const char *a, const char *b)
{
	for (int pass = 0; pass < 2; pass++) {
		const char *from = pass ? b : a, *other = pass ? a : b;

		for (const char *p = from; *p;) {
			const char *e = strchrnul(p, '\n');
			size_t len = (size_t)(e - p);
			bool found = false;

			for (const char *q = other; *q && !found;) {
				const char *f = strchrnul(q, '\n');

				found = (size_t)(f - q) == len && !memcmp(p, q, len);
				q = *f ? f + 1 : f;
			}
			if (!found && len && !starts(p, "# Source")) {
				struct op_buf sb = OP_BUF_INIT;

				op_buf_addstr(&sb, pass ? "+ " : "- ");
				op_buf_add(&sb, p, len);
				op_ext_log_line(ext, "info", op_buf_str(&sb), sb.len);
				op_buf_release(&sb);
			}
			p = *e ? e + 1 : e;
		}
	}
}

struct delta {
	int added, changed, removed;
	struct op_buf names; /* "ConfigMap a (changed), ..." */
	bool chart_moved, values_moved, not_deployed, install;
};

static void delta_name(struct delta *d, const char *label, const char *what)
{
	int n = d->added + d->changed + d->removed;

	if (n <= 5)
		op_buf_addf(&d->names, "%s%s (%s)", n > 1 ? ", " : "", label, what);
}

/* Compare the rendered release with the deployed one (NULL: none). */
static void compare(struct ctx *c, const struct json_object *want, const struct json_object *have,
		    struct delta *d)
{
	const struct json_object *state = op_ext_state(c->ext);
	const char *old_digest = op_get_str(state, "values_digest");
	struct docs w, h;

	memset(d, 0, sizeof(*d));
	op_buf_init(&d->names, 0);
	if (!have) {
		d->install = true;
		return;
	}
	split_docs(op_get_str(want, "manifest") ? op_get_str(want, "manifest") : "", &w);
	split_docs(op_get_str(have, "manifest") ? op_get_str(have, "manifest") : "", &h);
	for (size_t i = 0; i < w.n; i++) {
		const struct doc *o = find_doc(&h, w.v[i].key);

		if (!o) {
			d->added++;
			delta_name(d, w.v[i].label, "added");
			op_ext_log(c->ext, "info", "%s: added", w.v[i].label);
		} else if (strcmp(o->text, w.v[i].text)) {
			d->changed++;
			delta_name(d, w.v[i].label, "changed");
			op_ext_log(c->ext, "info", "%s: changed%s", w.v[i].label,
				   w.v[i].secret ? " (a Secret: contents not shown)" : "");
			if (!w.v[i].secret)
				log_line_diff(c->ext, o->text, w.v[i].text);
		}
	}
	for (size_t i = 0; i < h.n; i++)
		if (!find_doc(&w, h.v[i].key)) {
			d->removed++;
			delta_name(d, h.v[i].label, "removed");
			op_ext_log(c->ext, "info", "%s: removed", h.v[i].label);
		}
	/* helm status has no chart: the state says what the last apply had */
	d->chart_moved = op_get_str(state, "chart") && op_get_str(state, "chart_version") &&
			 (strcmp(op_get_str(state, "chart"), chart_name(want)) ||
			  strcmp(op_get_str(state, "chart_version"), chart_version(want)));
	d->values_moved = !old_digest || strcmp(old_digest, c->digest);
	d->not_deployed = strcmp(rel_status(have), "deployed") != 0;
	docs_release(&w);
	docs_release(&h);
}

static bool delta_any(const struct delta *d)
{
	return d->install || d->added || d->changed || d->removed || d->chart_moved ||
	       d->values_moved || d->not_deployed;
}

static void delta_text(const struct delta *d, const struct json_object *want,
		       const struct json_object *have, const struct json_object *state,
		       struct op_buf *sb)
{
	bool comma = false;

	if (d->install) {
		struct docs w;

		split_docs(op_get_str(want, "manifest") ? op_get_str(want, "manifest") : "", &w);
		op_buf_addf(sb, "install (chart %s %s, %zu objects)", chart_name(want),
			    chart_version(want), w.n);
		docs_release(&w);
		return;
	}
	if (d->added + d->changed + d->removed) {
		op_buf_addf(sb, "%d added, %d changed, %d removed: %s", d->added, d->changed,
			    d->removed, op_buf_str(&d->names));
		if (d->added + d->changed + d->removed > 5)
			op_buf_addstr(sb, ", ...");
		comma = true;
	}
	if (d->chart_moved) {
		op_buf_addf(sb, "%schart %s %s -> %s %s", comma ? "; " : "",
			    op_get_str(state, "chart"), op_get_str(state, "chart_version"),
			    chart_name(want), chart_version(want));
		comma = true;
	}
	if (d->values_moved && !comma) {
		op_buf_addstr(sb, "values changed");
		comma = true;
	}
	if (d->not_deployed)
		op_buf_addf(sb, "%sthe release is %s", comma ? "; " : "", rel_status(have));
}

/* Render and fetch the deployed release; NULL (result sent) on failure. */
static struct json_object *render(struct ctx *c, struct json_object **have, int changed)
{
	struct run r;
	struct json_object *want;
	bool missing;

	op_ext_progress(c->ext, -1, "helm status");
	*have = deployed(c, &r, &missing);
	if (!*have && !missing) {
		fail_run(c, &r, changed);
		op_cmd_result_release(&r.res);
		return NULL;
	}
	op_cmd_result_release(&r.res);
	op_ext_progress(c->ext, -1, "helm upgrade --dry-run");
	want = upgrade(c, &r, true);
	if (!want) {
		fail_run(c, &r, changed);
		json_object_put(*have);
		*have = NULL;
	} else if (c->cfg.version && strcmp(chart_version(want), c->cfg.version)) {
		op_ext_result(c->ext, false, changed, NULL,
			      "chart %s is version %s, the config asks for %s", c->cfg.chart,
			      chart_version(want), c->cfg.version);
		json_object_put(want);
		json_object_put(*have);
		want = *have = NULL;
	}
	op_cmd_result_release(&r.res);
	return want;
}

/* Why a failed kubectl server dry run (r) is no verdict on the objects, or
 * NULL when it is one (the server refused an object). */
static const char *not_judged(struct ctx *c, const struct run *r)
{
	static const char *const later[][2] = {
		{"ensure CRDs are installed first", "a kind the cluster does not serve yet"},
		{"no matches for kind", "a kind the cluster does not serve yet"},
		{"does not match the namespace", "an object outside the release's namespace"},
	};
	char nsmiss[300];

	if (!r->res.ran) {
		op_ext_log(c->ext, "info", "%s", r->res.error);
		return "kubectl cannot run";
	}
	snprintf(nsmiss, sizeof(nsmiss), "namespaces \"%s\" not found", c->cfg.namespace);
	if (c->cfg.create_namespace && strstr(run_err(r), nsmiss))
		return "their namespace does not exist yet";
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++)
		if (strstr(run_err(r), later[i][0]))
			return later[i][1];
	return NULL;
}

/*
 * plan: the API server's verdict on the rendered objects.  helm's own server
 * dry run renders with the cluster but never submits them, so an object the
 * server refuses (a field its schema lacks, a bad value) would pass plan and
 * fail apply.  kubectl apply --server-side --dry-run=server submits each
 * (stdin: nothing on disk; a separate field manager, forced, and nothing
 * persisted).  Returns 0 when they are accepted, or when the server cannot
 * judge them yet (logged: no kubectl; the namespace create_namespace makes;
 * a kind whose CRD is not installed; an object in another namespace), and -1
 * with the result sent when it refuses one.
 */
static int server_check(struct ctx *c, const struct json_object *want)
{
	const char *manifest = op_get_str(want, "manifest"), *why;
	struct argv a = {0};
	struct run r;
	int ret = 0;

	if (!manifest || !strstr(manifest, "kind:"))
		return 0;
	argv_add(&a, "apply");
	argv_add(&a, "--server-side");
	argv_add(&a, "--dry-run=server");
	argv_add(&a, "--force-conflicts");
	argv_add(&a, "--field-manager=orchd-plan");
	argv_add(&a, "-o");
	argv_add(&a, "name");
	argv_add(&a, "-f");
	argv_add(&a, "-");
	kubectl_target(c, &a, c->cfg.namespace);
	op_ext_progress(c->ext, -1, "kubectl apply --dry-run=server");
	tool_input(c, &r, "kubectl", "kubectl apply --dry-run=server of the rendered objects", &a,
		   true | QUIET, manifest);
	free(a.v);
	if (op_cmd_exited(&r.res, 0))
		op_ext_log(c->ext, "info", "the API server accepts the rendered objects (dry run)");
	else if (!r.res.cancelled && (why = not_judged(c, &r)))
		op_ext_log(c->ext, "info",
			   "the rendered objects were not checked by the API server (%s): "
			   "it checks them at apply",
			   why);
	else
		fail_run(c, &r, -1), ret = -1;
	op_cmd_result_release(&r.res);
	return ret;
}

/* --- actions ------------------------------------------------------------------------ */

int hm_describe(struct op_ext *ext)
{
	struct json_object *schema = hm_config_schema();
	int ret = op_ext_describe(ext, "install, upgrade and uninstall a Helm release", schema);

	json_object_put(schema);
	return ret;
}

int hm_validate(struct op_ext *ext)
{
	struct hm_config cfg;
	char cwd[4096];

	if (load_config(ext, &cfg, workdir_of(ext, cwd, sizeof(cwd))) < 0)
		return 0;
	hm_config_release(&cfg);
	return op_ext_result(ext, true, false, NULL, "configuration is valid");
}

int hm_plan(struct op_ext *ext)
{
	struct json_object *want, *have;
	struct op_buf sb = OP_BUF_INIT;
	struct delta d;
	struct ctx c;
	int ret;

	if (prepare(ext, &c, true) < 0)
		return 0;
	if (!(want = render(&c, &have, -1))) {
		ctx_release(&c);
		return 0;
	}
	compare(&c, want, have, &d);
	if (delta_any(&d) && server_check(&c, want) < 0) {
		ret = 0;
		goto out;
	}
	if (delta_any(&d)) {
		op_buf_addf(&sb, "plan: release %s: ", c.cfg.release);
		delta_text(&d, want, have, op_ext_state(ext), &sb);
	} else {
		op_buf_addf(&sb, "plan: no changes (release %s, revision %d)", c.cfg.release,
			    json_object_get_int(op_get(have, "version")));
	}
	op_buf_ellipsize(&sb, HM_SUMMARY_MAX);
	ret = op_ext_result(ext, true, delta_any(&d), NULL, "%s", op_buf_str(&sb));
out:
	op_buf_release(&sb);
	op_buf_release(&d.names);
	json_object_put(want);
	json_object_put(have);
	ctx_release(&c);
	return ret;
}

/* rel: the release (its revision); chart: a release with the chart's
 * metadata (helm status has none: then the rendered one) */
static int send_state(struct ctx *c, const struct json_object *rel, const struct json_object *chart,
		      int changed)
{
	struct json_object *st = hm_must(json_object_new_object());
	char err[OP_ERRMAX];
	int ret = 0;

	json_object_object_add(st, "release", json_object_new_string(c->cfg.release));
	json_object_object_add(st, "namespace", json_object_new_string(c->cfg.namespace));
	json_object_object_add(st, "revision",
			       json_object_new_int(json_object_get_int(op_get(rel, "version"))));
	json_object_object_add(st, "chart", json_object_new_string(chart_name(chart)));
	json_object_object_add(st, "chart_version", json_object_new_string(chart_version(chart)));
	json_object_object_add(st, "values_digest", json_object_new_string(c->digest));
	if (op_ext_state_send_secret(c->ext, st) < 0) {
		op_ext_send_failure(err, sizeof(err), errno, "the state");
		op_ext_result(c->ext, false, changed, NULL, "%s", err);
		ret = -1;
	}
	json_object_put(st);
	return ret;
}

/* The first match of re in the notes (its first group when it has one). */
static char *notes_match(const struct hm_output_from *o, const char *notes)
{
	regmatch_t m[2];

	if (regexec(&o->re, notes, 2, m, 0) != 0)
		return NULL;
	if (o->re.re_nsub >= 1 && m[1].rm_so >= 0)
		return hm_must(strndup(notes + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so)));
	return hm_must(strndup(notes + m[0].rm_so, (size_t)(m[0].rm_eo - m[0].rm_so)));
}

static int send_outputs(struct ctx *c, const struct json_object *rel,
			const struct json_object *chart, int changed)
{
	const char *notes = op_get_str(op_get(rel, "info"), "notes");
	int ret = 0;

	op_ext_output_str(c->ext, "release", c->cfg.release, false);
	op_ext_output_str(c->ext, "namespace", c->cfg.namespace, false);
	op_ext_output(c->ext, "revision", op_get(rel, "version"), false);
	op_ext_output_str(c->ext, "chart", chart_name(chart), false);
	op_ext_output_str(c->ext, "chart_version", chart_version(chart), false);
	op_ext_output_str(c->ext, "status", rel_status(rel), false);
	for (size_t i = 0; i < c->cfg.noutputs && !ret; i++) {
		const struct hm_output_from *o = &c->cfg.outputs[i];
		char *v = NULL;

		if (o->notes) {
			if (!(v = notes_match(o, notes ? notes : ""))) {
				op_ext_result(c->ext, false, changed, NULL,
					      "output '%s': no match for '%s' in the release notes",
					      o->key, o->notes);
				ret = -1;
				break;
			}
		} else {
			struct argv a = {0};
			struct run r;
			char *jp = xfmt("jsonpath=%s", o->jsonpath);
			char what[400];

			argv_add(&a, "get");
			argv_add(&a, o->kind);
			argv_add(&a, o->name);
			argv_add(&a, "-o");
			argv_add(&a, jp);
			kubectl_target(c, &a, o->namespace ? o->namespace : c->cfg.namespace);
			snprintf(what, sizeof(what), "kubectl get %s %s (output '%s')", o->kind,
				 o->name, o->key);
			tool(c, &r, "kubectl", what, &a, true);
			free(a.v);
			free(jp);
			if (op_cmd_exited(&r.res, 0))
				v = hm_must(strdup(run_out(&r)));
			else
				fail_run(c, &r, changed), ret = -1;
			op_cmd_result_release(&r.res);
			if (ret)
				break;
		}
		if (op_ext_output_str(c->ext, o->key, v, o->secret) < 0) {
			op_ext_result(c->ext, false, changed, NULL, "cannot send output '%s'",
				      o->key);
			ret = -1;
		}
		free(v);
	}
	return ret;
}

int hm_apply(struct op_ext *ext)
{
	struct json_object *want, *have, *rel;
	struct op_buf sb = OP_BUF_INIT;
	struct delta d;
	struct ctx c;
	struct run r;
	int ret = 0;

	if (prepare(ext, &c, true) < 0)
		return 0;
	if (!(want = render(&c, &have, false))) {
		ctx_release(&c);
		return 0;
	}
	compare(&c, want, have, &d);
	if (!delta_any(&d)) {
		if (send_state(&c, have, want, false) == 0 &&
		    send_outputs(&c, have, want, false) == 0)
			ret = op_ext_result(
				ext, true, false, NULL, "apply: release %s unchanged (revision %d)",
				c.cfg.release, json_object_get_int(op_get(have, "version")));
		goto out;
	}
	op_ext_progress(ext, -1, "helm upgrade --install");
	rel = upgrade(&c, &r, false);
	if (!rel) {
		/* helm records a failed revision: the next apply sees it
		 * (status failed) and upgrades again */
		fail_run(&c, &r, true);
		op_cmd_result_release(&r.res);
		goto out;
	}
	op_cmd_result_release(&r.res);
	if (send_state(&c, rel, rel, true) == 0 && send_outputs(&c, rel, rel, true) == 0) {
		op_buf_addf(&sb, "apply: release %s revision %d (%s): ", c.cfg.release,
			    json_object_get_int(op_get(rel, "version")), rel_status(rel));
		delta_text(&d, want, have, op_ext_state(ext), &sb);
		op_buf_ellipsize(&sb, HM_SUMMARY_MAX);
		ret = op_ext_result(ext, true, true, NULL, "%s", op_buf_str(&sb));
	}
	json_object_put(rel);
out:
	op_buf_release(&sb);
	op_buf_release(&d.names);
	json_object_put(want);
	json_object_put(have);
	ctx_release(&c);
	return ret;
}

int hm_destroy(struct op_ext *ext)
{
	const struct json_object *st = op_ext_state(ext);
	const char *release = op_get_str(st, "release"), *ns = op_get_str(st, "namespace");
	struct argv a = {0};
	struct ctx c;
	struct run r;
	int ret;

	if (prepare(ext, &c, false) < 0)
		return 0;
	if (!release) {
		op_ext_state_send(ext, NULL);
		ret = op_ext_result(ext, true, false, NULL, "nothing to destroy");
		ctx_release(&c);
		return ret;
	}
	/* the release and namespace the state names: the config may have
	 * been changed since */
	argv_add(&a, "uninstall");
	argv_add(&a, release);
	argv_add(&a, "--ignore-not-found");
	argv_add(&a, "--timeout");
	argv_add(&a, c.cfg.timeout);
	if (c.cfg.wait)
		argv_add(&a, "--wait");
	for (size_t i = 0; i < c.ncommon; i++) {
		argv_add(&a, c.common[i]);
		if (!strcmp(c.common[i], "--namespace") && ns && c.common[i + 1])
			argv_add(&a, ns), i++;
	}
	op_ext_progress(ext, -1, "helm uninstall");
	tool(&c, &r, "helm", "helm uninstall", &a, false);
	free(a.v);
	if (!op_cmd_exited(&r.res, 0)) {
		ret = fail_run(&c, &r, -1);
	} else {
		op_ext_state_send(ext, NULL);
		ret = op_ext_result(ext, true, true, NULL, "destroy: release %s uninstalled",
				    release);
	}
	op_cmd_result_release(&r.res);
	ctx_release(&c);
	return ret;
}
