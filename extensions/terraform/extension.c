/*
 * extension: the terraform extension's logic.
 *
 * Every action except describe prepares the instance's workdir (the
 * extension's private directory, its cwd):
 *   - everything in it except .terraform/ and .orchd-plugin-cache/ is
 *     removed, then the source directory's files are copied in
 *     (recursively, without .terraform/ and *.tfstate*);
 *   - `vars` are written to orchd.auto.tfvars.json;
 *   - the previous tfstate (the action's `state`) to terraform.tfstate;
 *   - a CLI config orchd.tfrc pointing the plugin cache into the workdir;
 * then runs `TOOL init`, and the action's command.  Tool output becomes
 * log messages; the plaintext tfstate, plan and tfvars files are removed
 * from the workdir when the action ends (orchd keeps the state encrypted).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <orchd/orchd_protocol.h>

#include "extension.h"
#include "models.h"
#include "run.h"

#define TF_VARS_FILE  "orchd.auto.tfvars.json"
#define TF_STATE_FILE "terraform.tfstate"
#define TF_PLAN_FILE  "orchd.tfplan"
#define TF_RC_FILE    "orchd.tfrc"
#define TF_CACHE_DIR  ".orchd-plugin-cache"

struct ctx {
	struct op_ext *ext;
	struct tf_config cfg;
	char *workdir;	/* absolute */
	char **env;	/* NULL-terminated, for the tool */
	char **varargs; /* NULL-terminated "-var-file=..." */
};

static char *join(const char *a, const char *b)
{
	char *s;

	if (asprintf(&s, "%s/%s", a, b) < 0)
		tf_must(NULL);
	return s;
}

/* --- config ----------------------------------------------------------------- */

static int fail_errors(struct op_ext *ext, struct op_errors *errs, const char *what)
{
	char *prefix;
	int ret;

	if (asprintf(&prefix, "%s: ", what) < 0)
		tf_must(NULL);
	ret = op_ext_fail_errors(ext, errs, -1, prefix);
	free(prefix);
	return ret;
}

/* Parse the config and check its paths; on failure send the result, -1. */
static int load_config(struct op_ext *ext, struct tf_config *cfg)
{
	struct op_errors errs = {0};

	if (tf_config_parse(op_ext_config(ext), cfg, &errs) == 0 &&
	    tf_config_check_paths(cfg, &errs) == 0)
		return 0;
	if (cfg->source)
		tf_config_release(cfg);
	fail_errors(ext, &errs, "invalid configuration");
	op_errors_release(&errs);
	return -1;
}

/* --- workdir ---------------------------------------------------------------- */

static int copy_file(const char *from, const char *to, mode_t mode, char *err, size_t errlen)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	char buf[65536];
	ssize_t n;

	if (in < 0) {
		snprintf(err, errlen, "cannot read '%s': %s", from, strerror(errno));
		return -1;
	}
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 0777);
	if (out < 0) {
		snprintf(err, errlen, "cannot create '%s': %s", to, strerror(errno));
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (op_write_all(out, buf, (size_t)n) < 0)
			break;
	if (n != 0 || close(out) < 0) {
		snprintf(err, errlen, "cannot copy '%s': %s", from, strerror(errno));
		close(in);
		return -1;
	}
	close(in);
	return 0;
}

static bool skip_name(const char *name, bool is_dir)
{
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return true;
	/* .orchd: a state directory beside the module (its run workdirs
	 * would otherwise be copied into themselves), .git: not module code */
	if (is_dir)
		return !strcmp(name, ".terraform") || !strcmp(name, ".orchd") ||
		       !strcmp(name, ".git");
	return strstr(name, ".tfstate") != NULL;
}

/* Copy the tree under from into to (which exists); symlinks are followed. */
static int copy_tree(const char *from, const char *to, int depth, char *err, size_t errlen)
{
	DIR *d = opendir(from);
	struct dirent *e;
	int ret = 0;

	if (!d) {
		snprintf(err, errlen, "cannot read directory '%s': %s", from, strerror(errno));
		return -1;
	}
	if (depth > 32) {
		closedir(d);
		snprintf(err, errlen, "'%s': directories nested too deep", from);
		return -1;
	}
	while (!ret && (e = readdir(d))) {
		char *src = join(from, e->d_name), *dst = join(to, e->d_name);
		struct stat st;

		if (stat(src, &st) < 0) {
			snprintf(err, errlen, "cannot access '%s': %s", src, strerror(errno));
			ret = -1;
		} else if (skip_name(e->d_name, S_ISDIR(st.st_mode))) {
			/* skipped */
		} else if (S_ISDIR(st.st_mode)) {
			if (mkdir(dst, 0700) < 0 && errno != EEXIST) {
				snprintf(err, errlen, "cannot create '%s': %s", dst,
					 strerror(errno));
				ret = -1;
			} else {
				ret = copy_tree(src, dst, depth + 1, err, errlen);
			}
		} else if (S_ISREG(st.st_mode)) {
			ret = copy_file(src, dst, st.st_mode, err, errlen);
		}
		free(src);
		free(dst);
	}
	closedir(d);
	return ret;
}

/* Remove everything in the workdir but the provider caches. */
static void clean_workdir(const char *wd)
{
	DIR *d = opendir(wd);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *p;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    !strcmp(e->d_name, ".terraform") || !strcmp(e->d_name, TF_CACHE_DIR))
			continue;
		p = join(wd, e->d_name);
		op_rmtree(p);
		free(p);
	}
	closedir(d);
}

/* Remove the plaintext secrets we wrote (or tofu wrote) from the workdir. */
static void scrub_workdir(const char *wd)
{
	static const char *const files[] = {TF_VARS_FILE, TF_STATE_FILE, TF_STATE_FILE ".backup",
					    TF_PLAN_FILE};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *p = join(wd, files[i]);

		unlink(p);
		free(p);
	}
}

static void build_env(struct ctx *c)
{
	size_t n = 0, extra = 0;
	char *cache = join(c->workdir, TF_CACHE_DIR);

	while (c->cfg.env[extra])
		extra++;
	c->env = tf_must(calloc(extra + 8, sizeof(char *)));
	c->env[n++] = tf_must(strdup("TF_IN_AUTOMATION=1"));
	c->env[n++] = tf_must(strdup("TF_INPUT=0"));
	c->env[n++] = tf_must(strdup("CHECKPOINT_DISABLE=1"));
	if (!op_cfg_env_has(c->cfg.env, "TF_CLI_CONFIG_FILE")) {
		if (asprintf(&c->env[n++], "TF_CLI_CONFIG_FILE=%s/%s", c->workdir, TF_RC_FILE) < 0)
			tf_must(NULL);
	}
	if (!op_cfg_env_has(c->cfg.env, "TF_PLUGIN_CACHE_DIR")) {
		if (asprintf(&c->env[n++], "TF_PLUGIN_CACHE_DIR=%s", cache) < 0)
			tf_must(NULL);
	}
	for (size_t i = 0; i < extra; i++)
		c->env[n++] = tf_must(strdup(c->cfg.env[i]));
	free(cache);
}

static void build_varargs(struct ctx *c)
{
	size_t n = 0, nf = 0;

	while (c->cfg.var_files[nf])
		nf++;
	c->varargs = tf_must(calloc(nf + 2, sizeof(char *)));
	for (size_t i = 0; i < nf; i++) {
		char *p = tf_resolve_path(c->cfg.var_files[i]);

		if (asprintf(&c->varargs[n++], "-var-file=%s", p) < 0)
			tf_must(NULL);
		free(p);
	}
	/* last: `vars` win over var_files */
	if (asprintf(&c->varargs[n++], "-var-file=%s/%s", c->workdir, TF_VARS_FILE) < 0)
		tf_must(NULL);
}

static void ctx_release(struct ctx *c)
{
	if (c->workdir)
		scrub_workdir(c->workdir);
	tf_config_release(&c->cfg);
	free(c->workdir);
	op_cfg_list_free(c->env);
	op_cfg_list_free(c->varargs);
}

/*
 * Load the config and prepare the workdir.  On failure the result was sent
 * and -1 is returned (c is then released).
 */
static int prepare(struct op_ext *ext, struct ctx *c)
{
	const char *wd = op_ext_workdir(ext);
	char err[1024], *src, *path, cwd[4096];
	struct json_object *state = op_ext_state(ext);
	int ret = 0;

	memset(c, 0, sizeof(*c));
	c->ext = ext;
	if (load_config(ext, &c->cfg))
		return -1;
	if (!*wd)
		wd = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
	c->workdir = wd[0] == '/' ? tf_must(strdup(wd)) : tf_resolve_path(wd);
	op_cmd_catch_signals();
	clean_workdir(c->workdir);
	src = tf_resolve_path(c->cfg.source);
	ret = copy_tree(src, c->workdir, 0, err, sizeof(err));
	free(src);
	if (!ret) {
		path = join(c->workdir, TF_VARS_FILE);
		ret = op_write_json_file(path, c->cfg.vars, err, sizeof(err));
		free(path);
	}
	if (!ret && state) {
		path = join(c->workdir, TF_STATE_FILE);
		ret = op_write_json_file(path, state, err, sizeof(err));
		free(path);
	}
	if (!ret) {
		char *cache = join(c->workdir, TF_CACHE_DIR), *rc;

		mkdir(cache, 0700);
		if (asprintf(&rc, "plugin_cache_dir = \"%s\"\n", cache) < 0)
			tf_must(NULL);
		path = join(c->workdir, TF_RC_FILE);
		ret = op_write_file(path, rc, strlen(rc), err, sizeof(err));
		free(path);
		free(rc);
		free(cache);
	}
	if (ret) {
		op_ext_result(ext, false, -1, NULL, "cannot prepare the workdir: %s", err);
		ctx_release(c);
		return -1;
	}
	build_env(c);
	build_varargs(c);
	return 0;
}

/* argv of `TOOL cmd args... [varargs]`; free with free() (strings borrowed). */
static char **tool_argv(const struct ctx *c, const char *const *args, bool vars)
{
	size_t n = 0, na = 0, nv = 0;
	char **argv;

	while (args[na])
		na++;
	while (vars && c->varargs[nv])
		nv++;
	argv = tf_must(calloc(na + nv + 2, sizeof(char *)));
	argv[n++] = c->cfg.binary;
	for (size_t i = 0; i < na; i++)
		argv[n++] = (char *)(uintptr_t)args[i];
	for (size_t i = 0; i < nv; i++)
		argv[n++] = c->varargs[i];
	return argv;
}

static int run(struct ctx *c, const char *const *args, bool vars, bool capture, struct tf_run *r)
{
	char **argv = tool_argv(c, args, vars);
	struct tf_run_opts o = {argv, c->env, c->workdir, capture, capture};
	int ret;

	op_ext_log(c->ext, "debug", "running %s %s", c->cfg.binary, args[0]);
	ret = tf_run_tool(c->ext, &o, r);
	free(argv);
	return ret;
}

/* Run init; on failure send the failure result and return -1. */
static int init(struct ctx *c)
{
	static const char *const args[] = {"init", "-input=false", "-no-color", NULL};
	struct tf_run r;
	char *what, *s;

	op_ext_progress(c->ext, -1, "%s init", c->cfg.binary);
	run(c, args, false, false, &r);
	if (tf_run_exited(&r, 0)) {
		tf_run_release(&r);
		return 0;
	}
	if (asprintf(&what, "%s init", c->cfg.binary) < 0)
		tf_must(NULL);
	s = tf_run_failure(&r, what);
	op_ext_result(c->ext, false, -1, NULL, "%s", s);
	free(s);
	free(what);
	tf_run_release(&r);
	return -1;
}

static int fail_run(struct ctx *c, struct tf_run *r, const char *cmd, int changed)
{
	char *what, *s;
	int ret;

	if (asprintf(&what, "%s %s", c->cfg.binary, cmd) < 0)
		tf_must(NULL);
	s = tf_run_failure(r, what);
	ret = op_ext_result(c->ext, false, changed, NULL, "%s", s);
	free(s);
	free(what);
	return ret;
}

/* --- state ------------------------------------------------------------------ */

/* The tfstate in the workdir (caller owns), or NULL when there is none. */
static struct json_object *read_state(const struct ctx *c)
{
	char *path = join(c->workdir, TF_STATE_FILE);
	struct json_object *o = json_object_from_file(path);

	free(path);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

static size_t state_resources(const struct json_object *st)
{
	struct json_object *res = op_get(st, "resources");

	return json_object_is_type(res, json_type_array) ? json_object_array_length(res) : 0;
}

/* True when new differs from old in lineage or serial. */
static bool state_moved(const struct json_object *old, const struct json_object *nw)
{
	const char *la = op_get_str(old, "lineage"), *lb = op_get_str(nw, "lineage");

	if (!nw)
		return false;
	if (!old)
		return state_resources(nw) > 0;
	if (!la || !lb || strcmp(la, lb))
		return true;
	return op_get_int(old, "serial", -1) != op_get_int(nw, "serial", -1);
}

/* Find "PREFIX a X, b Y, ..." counts in the tool's stdout tail. */
static bool parse_counts(const char *text, const char *prefix, int *a, int *b, int *d)
{
	const char *p = strstr(text, prefix);

	*a = *b = *d = 0;
	if (!p)
		return false;
	p += strlen(prefix);
	if (!strncmp(prefix, "Destroy", 7))
		return sscanf(p, " %d destroyed", d) == 1;
	return sscanf(p, " %d added, %d changed, %d destroyed", a, b, d) == 3;
}

/* --- actions ---------------------------------------------------------------- */

int tf_describe(struct op_ext *ext)
{
	struct json_object *schema = tf_config_schema();
	int ret;

	ret = op_ext_describe(ext,
			      "plan, apply and destroy an OpenTofu/"
			      "Terraform module directory",
			      schema);
	json_object_put(schema);
	return ret;
}

/* tofu validate -json diagnostics -> errors; returns the error count or -1. */
static int diagnostics(const struct ctx *c, const char *json, struct op_errors *errs)
{
	struct json_object *o = json_tokener_parse(json), *diags;
	int n = 0;

	if (!o || !json_object_object_get_ex(o, "diagnostics", &diags) ||
	    !json_object_is_type(diags, json_type_array)) {
		json_object_put(o);
		return -1;
	}
	for (size_t i = 0; i < json_object_array_length(diags); i++) {
		struct json_object *dg = json_object_array_get_idx(diags, i);
		struct json_object *range = op_get(dg, "range");
		const char *sev = op_get_str(dg, "severity"), *file = op_get_str(range, "filename");
		const char *summary = op_get_str(dg, "summary"), *detail = op_get_str(dg, "detail");
		char *path;

		if (!sev || strcmp(sev, "error")) {
			op_ext_log(c->ext, "warning", "%s%s%s", summary ? summary : "warning",
				   detail ? ": " : "", detail ? detail : "");
			continue;
		}
		if (file && asprintf(&path, "%s/%s:%lld", c->cfg.source, file,
				     op_get_int(op_get(range, "start"), "line", 0)) < 0)
			tf_must(NULL);
		op_errors_add(errs, file ? path : "source", "%s%s%s", summary ? summary : "error",
			      detail && *detail ? ": " : "", detail ? detail : "");
		if (file)
			free(path);
		n++;
	}
	json_object_put(o);
	return n;
}

int tf_validate(struct op_ext *ext)
{
	static const char *const args[] = {"validate", "-json", "-no-color", NULL};
	struct op_errors errs = {0};
	struct tf_run r;
	struct ctx c;
	bool init_ok = true;
	int n, ret;
	char *s;

	if (prepare(ext, &c))
		return 0;
	{
		static const char *const iargs[] = {"init", "-input=false", "-no-color",
						    "-backend=false", NULL};
		struct tf_run ir;

		run(&c, iargs, false, false, &ir);
		init_ok = tf_run_exited(&ir, 0);
		if (!init_ok) {
			char *what;

			if (asprintf(&what, "%s init", c.cfg.binary) < 0)
				tf_must(NULL);
			s = tf_run_failure(&ir, what);
			free(what);
		} else {
			s = NULL;
		}
		tf_run_release(&ir);
	}
	run(&c, args, false, true, &r);
	n = r.res.ran ? diagnostics(&c, tf_run_out(&r), &errs) : -1;
	if (n > 0) {
		ret = fail_errors(ext, &errs, "invalid configuration");
	} else if (!init_ok) {
		ret = op_ext_result(ext, false, -1, NULL, "%s", s);
	} else if (n < 0 || !tf_run_exited(&r, 0)) {
		ret = fail_run(&c, &r, "validate", -1);
	} else {
		ret = op_ext_result(ext, true, false, NULL, "configuration is valid");
	}
	free(s);
	op_errors_release(&errs);
	tf_run_release(&r);
	ctx_release(&c);
	return ret;
}

/* Count the planned resource changes of `show -json PLAN`. */
static int plan_counts(const char *json, int *add, int *change, int *destroy)
{
	struct json_object *o = json_tokener_parse(json), *rcs;

	*add = *change = *destroy = 0;
	if (!o) {
		return -1;
	}
	if (json_object_object_get_ex(o, "resource_changes", &rcs) &&
	    json_object_is_type(rcs, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(rcs); i++) {
			struct json_object *acts = op_get(
				op_get(json_object_array_get_idx(rcs, i), "change"), "actions");

			for (size_t k = 0; acts && k < json_object_array_length(acts); k++) {
				const char *a =
					json_object_get_string(json_object_array_get_idx(acts, k));

				if (!a)
					continue;
				*add += !strcmp(a, "create");
				*change += !strcmp(a, "update");
				*destroy += !strcmp(a, "delete");
			}
		}
	}
	json_object_put(o);
	return 0;
}

int tf_plan(struct op_ext *ext)
{
	static const char *const args[] = {"plan",	"-detailed-exitcode", "-input=false",
					   "-no-color", "-lock=false",	      "-out=" TF_PLAN_FILE,
					   NULL};
	static const char *const sargs[] = {"show", "-json", "-no-color", TF_PLAN_FILE, NULL};
	struct tf_run r, sr;
	struct ctx c;
	int add, change, destroy, ret;

	if (prepare(ext, &c))
		return 0;
	if (init(&c)) {
		ctx_release(&c);
		return 0;
	}
	op_ext_progress(ext, -1, "%s plan", c.cfg.binary);
	run(&c, args, true, false, &r);
	if (tf_run_exited(&r, 0)) {
		ret = op_ext_result(ext, true, false, NULL, "plan: no changes");
	} else if (!tf_run_exited(&r, 2)) {
		ret = fail_run(&c, &r, "plan", -1);
	} else {
		run(&c, sargs, false, true, &sr);
		if (!tf_run_exited(&sr, 0) || plan_counts(tf_run_out(&sr), &add, &change, &destroy))
			ret = fail_run(&c, &sr, "show", -1);
		else
			ret = op_ext_result(ext, true, true, NULL,
					    "plan: %d to add, %d to change, %d to destroy%s", add,
					    change, destroy,
					    add + change + destroy ? "" : " (outputs change)");
		tf_run_release(&sr);
	}
	tf_run_release(&r);
	ctx_release(&c);
	return ret;
}

/*
 * Send each output of `output -json`.  0; -1 when they cannot be read (r
 * tells why); -2 when one cannot be sent (err tells why).
 */
static int send_outputs(struct ctx *c, struct tf_run *r, char *err, size_t errlen)
{
	static const char *const args[] = {"output", "-json", "-no-color", NULL};
	struct json_object *o;
	int ret = 0;

	run(c, args, false, true, r);
	if (!tf_run_exited(r, 0))
		return -1;
	o = json_tokener_parse(tf_run_out(r));
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -1;
	}
	json_object_object_foreach(o, k, v)
	{
		if (op_ext_output(c->ext, k, op_get(v, "value"),
				  op_get_bool(v, "sensitive", false)) < 0) {
			op_ext_send_failure(err, errlen, errno, "output '%s'", k);
			ret = -2;
			break;
		}
	}
	json_object_put(o);
	return ret;
}

/* Send the tfstate as a secret state; on failure err tells why, -1. */
static int send_state(struct op_ext *ext, const struct json_object *st, char *err, size_t errlen)
{
	if (op_ext_state_send_secret(ext, st) == 0)
		return 0;
	op_ext_send_failure(err, errlen, errno, "the tfstate");
	return -1;
}

int tf_apply(struct op_ext *ext)
{
	static const char *const args[] = {"apply", "-auto-approve", "-input=false", "-no-color",
					   NULL};
	struct json_object *prev = op_ext_state(ext), *st;
	struct tf_run r, or ;
	struct ctx c;
	int add, change, destroy, ret, sent;
	bool moved, counted;
	char err[OP_ERRMAX];

	if (prepare(ext, &c))
		return 0;
	if (init(&c)) {
		ctx_release(&c);
		return 0;
	}
	op_ext_progress(ext, -1, "%s apply", c.cfg.binary);
	run(&c, args, true, false, &r);
	st = read_state(&c);
	moved = state_moved(prev, st);
	if (st && send_state(ext, st, err, sizeof(err)) < 0) {
		/* what was applied is not recorded: worse than a failed apply */
		ret = op_ext_result(ext, false, moved, NULL, "%s", err);
	} else if (!tf_run_exited(&r, 0)) {
		ret = fail_run(&c, &r, "apply", moved);
	} else if ((sent = send_outputs(&c, & or, err, sizeof(err))) < 0) {
		if (sent == -1)
			ret = fail_run(&c, & or, "output", moved);
		else
			ret = op_ext_result(ext, false, moved, NULL, "%s", err);
		tf_run_release(& or);
	} else {
		tf_run_release(& or);
		counted = parse_counts(op_buf_str(&r.outtail), "Apply complete! Resources:", &add,
				       &change, &destroy);
		if (counted)
			ret = op_ext_result(ext, true, moved || add + change + destroy > 0, NULL,
					    "apply: %d added, %d changed, %d destroyed", add,
					    change, destroy);
		else
			ret = op_ext_result(ext, true, moved, NULL, "apply complete");
	}
	json_object_put(st);
	tf_run_release(&r);
	ctx_release(&c);
	return ret;
}

int tf_destroy(struct op_ext *ext)
{
	static const char *const args[] = {"destroy", "-auto-approve", "-input=false", "-no-color",
					   NULL};
	struct json_object *prev = op_ext_state(ext), *st;
	struct tf_run r;
	struct ctx c;
	int add, change, destroy, ret;
	char err[OP_ERRMAX];

	if (!prev || !state_resources(prev)) {
		struct tf_config cfg;

		if (load_config(ext, &cfg))
			return 0;
		tf_config_release(&cfg);
		op_ext_state_send_secret(ext, prev);
		return op_ext_result(ext, true, false, NULL, "nothing to destroy");
	}
	if (prepare(ext, &c))
		return 0;
	if (init(&c)) {
		ctx_release(&c);
		return 0;
	}
	op_ext_progress(ext, -1, "%s destroy", c.cfg.binary);
	run(&c, args, true, false, &r);
	st = read_state(&c);
	if (st && send_state(ext, st, err, sizeof(err)) < 0) {
		ret = op_ext_result(ext, false, state_moved(prev, st), NULL, "%s", err);
	} else if (!tf_run_exited(&r, 0)) {
		ret = fail_run(&c, &r, "destroy", state_moved(prev, st));
	} else {
		parse_counts(op_buf_str(&r.outtail), "Destroy complete! Resources:", &add, &change,
			     &destroy);
		ret = op_ext_result(ext, true, true, NULL, "destroy: %d destroyed", destroy);
	}
	json_object_put(st);
	tf_run_release(&r);
	ctx_release(&c);
	return ret;
}
