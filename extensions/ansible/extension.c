/*
 * extension: the ansible extension's logic.
 *
 * Every action except describe prepares the instance's workdir (the
 * extension's private directory, its cwd):
 *   - .orchd-callbacks/orchd.py: the stdout callback plugin (callback.h);
 *   - extra_vars.json (mode 0600): `extra_vars`, passed as -e @FILE;
 *   - inventory.yml: the inline inventory (when `inventory` is not a path);
 *   - .ansible/ (ANSIBLE_HOME) and .ansible/tmp (local and remote temp);
 * then runs ansible-playbook with the callback, parses its JSON lines into
 * log messages, outputs and the result.  extra_vars.json and the temp
 * directory are removed when the action ends.  The extension never logs
 * extra_vars (only task names, hosts, statuses and failure messages).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <orchd/orchd_protocol.h>

#include "callback.h"
#include "extension.h"
#include "models.h"

#define ANS_VARS_FILE	 "extra_vars.json"
#define ANS_INV_FILE	 "inventory.yml"
#define ANS_CB_DIR	 ".orchd-callbacks"
#define ANS_HOME_DIR	 ".ansible"
#define ANS_TMP_DIR	 ".ansible/tmp"
#define ANS_SUMMARY_MAX	 700
#define ANS_CAPTURE_MAX	 65536
#define ANS_STATE_FORMAT 1

struct ctx {
	struct op_ext *ext;
	struct ans_config cfg;
	char *workdir;	 /* absolute */
	char *inventory; /* the -i argument */
	char *varsfile;	 /* absolute path of extra_vars.json */
	char **env;	 /* NULL-terminated, for ansible-playbook */
};

/* What one ansible-playbook run reported through the callback. */
struct play {
	struct op_ext *ext;
	struct json_object *stats; /* the "stats" event (owned), or NULL */
	struct op_buf failures;	   /* "[host] task: msg; ..." (not ignored ones) */
	int nfailures;
	const char *plain_level; /* level of stdout lines that are not events */
	const char *err_level;	 /* level of the current stderr message */
};

/*
 * The text of a buffer whose appends were not checked one by one (a
 * failure is sticky, see "Buffers" in orchd_protocol.h): never the rest of
 * a failed buffer, an exit like ans_must() instead.
 */
static const char *checked(const struct op_buf *b)
{
	if (op_buf_failed(b))
		ans_must(NULL);
	return op_buf_str(b);
}

static char *join(const char *a, const char *b)
{
	char *s;

	if (asprintf(&s, "%s/%s", a, b) < 0)
		ans_must(NULL);
	return s;
}

/* --- config ----------------------------------------------------------------- */

/* Parse the config and check its paths; on failure send the result, -1. */
static int load_config(struct op_ext *ext, struct ans_config *cfg)
{
	struct op_errors errs = {0};

	if (ans_config_parse(op_ext_config(ext), cfg, &errs) == 0) {
		if (ans_config_check_paths(cfg, &errs) == 0)
			return 0;
		ans_config_release(cfg);
	}
	op_ext_fail_errors(ext, &errs, -1, "invalid configuration: ");
	op_errors_release(&errs);
	return -1;
}

/* --- workdir ---------------------------------------------------------------- */

static int make_dir(const char *wd, const char *rel, char *err, size_t errlen)
{
	char *p = join(wd, rel);
	int ret = 0;

	if (mkdir(p, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create '%s': %s", p, strerror(errno));
		ret = -1;
	}
	free(p);
	return ret;
}

/*
 * The inline inventory as YAML (JSON is YAML; the file name makes Ansible's
 * yaml inventory plugin read it).  A host named localhost gets the local
 * connection and the controller's Python unless its vars say otherwise.
 */
static int write_inventory(struct ctx *c, char *err, size_t errlen)
{
	struct json_object *inv = ans_must(json_object_new_object());
	struct json_object *all = ans_must(json_object_new_object());
	struct json_object *hosts = NULL;
	int ret;

	ans_must(json_object_deep_copy(c->cfg.hosts, &hosts, NULL) == 0 ? hosts : NULL);
	json_object_object_foreach(hosts, name, vars)
	{
		if (strcmp(name, "localhost"))
			continue;
		if (!json_object_object_get_ex(vars, "ansible_connection", NULL))
			json_object_object_add(vars, "ansible_connection",
					       json_object_new_string("local"));
		if (!json_object_object_get_ex(vars, "ansible_python_interpreter", NULL))
			json_object_object_add(
				vars, "ansible_python_interpreter",
				json_object_new_string("{{ ansible_playbook_python }}"));
	}
	json_object_object_add(all, "hosts", hosts);
	json_object_object_add(inv, "all", all);
	c->inventory = join(c->workdir, ANS_INV_FILE);
	ret = op_write_json_file(c->inventory, inv, err, errlen);
	json_object_put(inv);
	return ret;
}

static void build_env(struct ctx *c)
{
	size_t n = 0, extra = 0;
	char *pb = ans_resolve_path(c->cfg.playbook), *slash = strrchr(pb, '/'), *cfgfile;

	while (c->cfg.env[extra])
		extra++;
	c->env = ans_must(calloc(extra + 16, sizeof(char *)));
	if (asprintf(&c->env[n++], "ANSIBLE_HOME=%s/%s", c->workdir, ANS_HOME_DIR) < 0 ||
	    asprintf(&c->env[n++], "ANSIBLE_LOCAL_TEMP=%s/%s", c->workdir, ANS_TMP_DIR) < 0 ||
	    asprintf(&c->env[n++], "ANSIBLE_REMOTE_TEMP=%s/%s", c->workdir, ANS_TMP_DIR) < 0 ||
	    asprintf(&c->env[n++], "ANSIBLE_CALLBACK_PLUGINS=%s/%s", c->workdir, ANS_CB_DIR) < 0)
		ans_must(NULL);
	c->env[n++] = ans_must(strdup("ANSIBLE_STDOUT_CALLBACK=orchd"));
	c->env[n++] = ans_must(strdup("ANSIBLE_SHOW_CUSTOM_STATS=1"));
	c->env[n++] = ans_must(strdup("ANSIBLE_NOCOLOR=1"));
	c->env[n++] = ans_must(strdup("ANSIBLE_FORCE_COLOR=0"));
	c->env[n++] = ans_must(strdup("ANSIBLE_RETRY_FILES_ENABLED=0"));
	c->env[n++] = ans_must(strdup("ANSIBLE_HOST_KEY_CHECKING=False"));
	c->env[n++] = ans_must(strdup("PYTHONUNBUFFERED=1"));
	/* an ansible.cfg beside the playbook applies (the cwd is the workdir) */
	if (slash) {
		*slash = '\0';
		cfgfile = join(pb, "ansible.cfg");
		if (!op_cfg_env_has(c->cfg.env, "ANSIBLE_CONFIG") && access(cfgfile, R_OK) == 0) {
			if (asprintf(&c->env[n++], "ANSIBLE_CONFIG=%s", cfgfile) < 0)
				ans_must(NULL);
		}
		free(cfgfile);
	}
	for (size_t i = 0; i < extra; i++)
		c->env[n++] = ans_must(strdup(c->cfg.env[i]));
	free(pb);
}

static void ctx_release(struct ctx *c)
{
	if (c->workdir) {
		char *tmp = join(c->workdir, ANS_TMP_DIR);

		op_rmtree(tmp);
		free(tmp);
	}
	if (c->varsfile)
		unlink(c->varsfile);
	ans_config_release(&c->cfg);
	free(c->workdir);
	free(c->inventory);
	free(c->varsfile);
	op_cfg_list_free(c->env);
}

/*
 * Load the config and prepare the workdir.  On failure the result was sent
 * and -1 is returned (c is then released).
 */
static int prepare(struct op_ext *ext, struct ctx *c)
{
	const char *wd = op_ext_workdir(ext);
	char err[1024], cwd[4096], *path;
	int ret;

	memset(c, 0, sizeof(*c));
	c->ext = ext;
	if (load_config(ext, &c->cfg))
		return -1;
	if (!*wd)
		wd = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
	c->workdir = ans_resolve_path(wd);
	op_cmd_catch_signals();
	ret = make_dir(c->workdir, ANS_HOME_DIR, err, sizeof(err));
	if (!ret)
		ret = make_dir(c->workdir, ANS_TMP_DIR, err, sizeof(err));
	if (!ret)
		ret = make_dir(c->workdir, ANS_CB_DIR, err, sizeof(err));
	if (!ret) {
		path = join(c->workdir, ANS_CB_DIR "/" ANS_CALLBACK_FILE);
		ret = op_write_file(path, ans_callback_source, strlen(ans_callback_source), err,
				    sizeof(err));
		free(path);
	}
	if (!ret) {
		c->varsfile = join(c->workdir, ANS_VARS_FILE);
		ret = op_write_json_file(c->varsfile, c->cfg.extra_vars, err, sizeof(err));
	}
	if (!ret) {
		if (c->cfg.inventory_path)
			c->inventory = ans_resolve_path(c->cfg.inventory_path);
		else
			ret = write_inventory(c, err, sizeof(err));
	}
	if (ret) {
		op_ext_result(ext, false, -1, NULL, "cannot prepare the workdir: %s", err);
		ctx_release(c);
		return -1;
	}
	build_env(c);
	return 0;
}

/* --- running ansible-playbook ------------------------------------------------ */

static const char *str_or(const struct json_object *o, const char *key, const char *dflt)
{
	const char *s = op_get_str(o, key);

	return s ? s : dflt;
}

/*
 * One line of ansible-playbook (op_cmd_line_fn).  stderr: "[ERROR]" and
 * the lines after it (Origin:, the code excerpt) at level error,
 * "[WARNING]"/"[DEPRECATION WARNING]" and the rest at warning.  stdout: a
 * callback event (handled here, not logged as such), or any other line
 * (logged at plain_level).
 */
static void on_line(void *data, int stream, char *line, size_t len, const char **level)
{
	struct play *p = data;
	struct json_object *ev = NULL;
	const char *event, *status, *host, *task, *msg;

	if (stream == 2) {
		if (!strncmp(line, "[ERROR]", 7))
			p->err_level = "error";
		else if (!strncmp(line, "[WARNING]", 9) ||
			 !strncmp(line, "[DEPRECATION WARNING]", 21))
			p->err_level = "warning";
		*level = len ? p->err_level : NULL;
		return;
	}
	if (line[0] == '{')
		ev = json_tokener_parse(line);
	if (!ev || !op_has(ev, "orchd") || !(event = op_get_str(ev, "event"))) {
		*level = len ? p->plain_level : NULL;
		json_object_put(ev);
		return;
	}
	*level = NULL;
	host = str_or(ev, "host", "?");
	task = str_or(ev, "task", "");
	msg = str_or(ev, "msg", "");
	if (!strcmp(event, "play")) {
		op_ext_log(p->ext, "info", "play: %s", str_or(ev, "name", ""));
	} else if (!strcmp(event, "task")) {
		op_ext_progress(p->ext, -1, "task: %s", str_or(ev, "name", ""));
	} else if (!strcmp(event, "warning")) {
		op_ext_log(p->ext, "warning", "%s", msg);
	} else if (!strcmp(event, "stats")) {
		json_object_put(p->stats);
		p->stats = json_object_get(ev);
	} else if (!strcmp(event, "result")) {
		struct json_object *diff = op_get(ev, "diff");

		status = str_or(ev, "status", "?");
		if (!strcmp(status, "failed") || !strcmp(status, "unreachable")) {
			bool ignored = op_get_bool(ev, "ignored", false);

			op_ext_log(p->ext, ignored ? "warning" : "error", "%s: [%s] => %s: %s%s",
				   status, host, task, msg, ignored ? " (ignored)" : "");
			if (!ignored) {
				if (p->failures.len)
					op_buf_addstr(&p->failures, "; ");
				op_buf_addf(&p->failures, "[%s] %s%s: %s", host,
					    !strcmp(status, "unreachable") ? "unreachable: " : "",
					    task, msg);
				p->nfailures++;
			}
		} else {
			op_ext_log(p->ext, !strcmp(status, "skipped") ? "debug" : "info",
				   "%s: [%s] => %s", status, host, task);
		}
		for (size_t i = 0; json_object_is_type(diff, json_type_array) &&
				   i < json_object_array_length(diff);
		     i++)
			op_ext_log(p->ext, "info", "diff: [%s] %s", host,
				   json_object_get_string(json_object_array_get_idx(diff, i)));
	}
	json_object_put(ev);
}

/* Run ansible-playbook on playbook (as written) with the extra arguments. */
static int run_playbook(struct ctx *c, const char *playbook, const char *const *args,
			struct play *p, struct op_cmd_result *r)
{
	char *argv[16], *pb = ans_resolve_path(playbook), *ev;
	struct op_cmd_opts o = {
		.argv = argv,
		.env = c->env,
		.cwd = c->workdir,
		.out = {OP_CMD_LOG | OP_CMD_CAPTURE, "info", ANS_CAPTURE_MAX},
		.err = {OP_CMD_LOG | OP_CMD_CAPTURE, "warning", ANS_CAPTURE_MAX},
		.line_fn = on_line,
		.line_arg = p,
	};
	size_t n = 0;
	int ret;

	if (asprintf(&ev, "@%s", c->varsfile) < 0)
		ans_must(NULL);
	argv[n++] = c->cfg.binary;
	argv[n++] = (char *)(uintptr_t) "-i";
	argv[n++] = c->inventory;
	argv[n++] = (char *)(uintptr_t) "-e";
	argv[n++] = ev;
	if (c->cfg.limit) {
		argv[n++] = (char *)(uintptr_t) "--limit";
		argv[n++] = c->cfg.limit;
	}
	if (c->cfg.tags) {
		argv[n++] = (char *)(uintptr_t) "--tags";
		argv[n++] = c->cfg.tags;
	}
	for (size_t i = 0; args && args[i] && n < 14; i++)
		argv[n++] = (char *)(uintptr_t)args[i];
	argv[n++] = pb;
	argv[n] = NULL;
	memset(p, 0, sizeof(*p));
	p->ext = c->ext;
	p->plain_level = args && args[0] && !strcmp(args[0], "--syntax-check") ? "debug" : "info";
	p->err_level = "warning";
	op_buf_init(&p->failures, 0);
	op_ext_log(c->ext, "debug", "running %s on %s", c->cfg.binary, playbook);
	ret = op_cmd_run(c->ext, &o, r);
	free(ev);
	free(pb);
	return ret;
}

static void play_release(struct play *p)
{
	json_object_put(p->stats);
	op_buf_release(&p->failures);
}

/*
 * Ansible's "[ERROR]: MESSAGE" lines on stderr, each with the "Origin:
 * FILE:LINE:COL" line that may follow, as errors at path key.
 */
static void stderr_errors(const char *text, const char *key, struct op_errors *errs)
{
	char *copy = ans_must(strdup(text)), *save = NULL, *line, *msg = NULL;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "[ERROR]: ", 9)) {
			if (msg)
				op_errors_add(errs, key, "%s", msg);
			msg = line + 9;
		} else if (msg && !strncmp(line, "Origin: ", 8)) {
			op_errors_add(errs, key, "%s: %s", line + 8, msg);
			msg = NULL;
		}
	}
	if (msg)
		op_errors_add(errs, key, "%s", msg);
	free(copy);
}

/* The last n non-empty lines of text, joined with " | ". */
static void last_lines(const char *text, int n, struct op_buf *out)
{
	const char *p = text + strlen(text);
	int found = 0;

	while (p > text && found <= n) {
		const char *e = p;

		while (p > text && p[-1] != '\n')
			p--;
		if (e > p && !(e - p == 1 && *p == '\n'))
			found++;
		if (found > n)
			break;
		if (p > text)
			p--;
	}
	for (const char *q = p; *q;) {
		size_t l = strcspn(q, "\n");

		if (l) {
			if (out->len)
				op_buf_addstr(out, " | ");
			op_buf_add(out, q, l);
		}
		q += l + (q[l] == '\n');
	}
}

/* Send the failure result of a run that did not succeed. */
static int fail_run(struct ctx *c, const char *playbook, struct play *p, struct op_cmd_result *r,
		    int changed)
{
	struct op_buf sb = OP_BUF_INIT;
	int ret;

	if (r->cancelled) {
		op_buf_addf(&sb, "%s: cancelled", c->cfg.binary);
	} else if (!r->ran) {
		op_buf_addf(&sb, "%s: %s", c->cfg.binary, r->error);
	} else {
		char st[64];

		op_buf_addf(&sb, "playbook %s failed (%s)", playbook,
			    op_cmd_status_text(r, st, sizeof(st)));
		if (p->nfailures) {
			op_buf_addf(&sb, ": %s", checked(&p->failures));
		} else {
			struct op_errors errs = {0};

			stderr_errors(r->err.buf, "", &errs);
			for (size_t i = 0; i < errs.nr; i++)
				op_buf_addf(&sb, "%s%s", i ? "; " : ": ", errs.v[i].message);
			if (!errs.nr) {
				struct op_buf tail = OP_BUF_INIT;

				last_lines(r->err.len ? r->err.buf : r->out.buf, 3, &tail);
				if (*checked(&tail))
					op_buf_addf(&sb, ": %s", op_buf_str(&tail));
				op_buf_release(&tail);
			}
			op_errors_release(&errs);
		}
	}
	op_buf_ellipsize(&sb, ANS_SUMMARY_MAX);
	ret = op_ext_result(c->ext, false, changed, NULL, "%s", checked(&sb));
	op_buf_release(&sb);
	return ret;
}

struct totals {
	long long ok, changed, failures, unreachable, skipped;
	size_t hosts;
};

static void sum_stats(const struct play *p, struct totals *t)
{
	struct json_object *hosts = op_get(p->stats, "hosts");

	memset(t, 0, sizeof(*t));
	if (!json_object_is_type(hosts, json_type_object))
		return;
	json_object_object_foreach(hosts, h, s)
	{
		(void)h;
		t->hosts++;
		t->ok += op_get_int(s, "ok", 0);
		t->changed += op_get_int(s, "changed", 0);
		t->failures += op_get_int(s, "failures", 0);
		t->unreachable += op_get_int(s, "unreachable", 0);
		t->skipped += op_get_int(s, "skipped", 0);
	}
}

/* "ok=2 changed=1 unreachable=0 failed=0 skipped=1 (1 host)" */
static void recap(const struct totals *t, struct op_buf *sb)
{
	op_buf_addf(sb,
		    "ok=%lld changed=%lld unreachable=%lld failed=%lld skipped=%lld (%zu host%s)",
		    t->ok, t->changed, t->unreachable, t->failures, t->skipped, t->hosts,
		    t->hosts == 1 ? "" : "s");
}

/* Send what a successful run produced; -1 with err set when it cannot. */
typedef int (*ans_success_fn)(struct ctx *c, const struct play *p, char *err, size_t errlen);

/*
 * Run a playbook for plan/apply/destroy and send the result (what: "check",
 * "apply", "destroy": the summary's prefix).  on_success (may be NULL) runs
 * before a success result is sent (outputs and state); when it fails, the
 * result is a failure with its err.  Returns the result's send status.
 */
static int run_action(struct ctx *c, const char *playbook, const char *what,
		      const char *const *args, ans_success_fn on_success)
{
	struct op_cmd_result r;
	struct totals t;
	struct play p;
	struct op_buf sb = OP_BUF_INIT;
	char err[OP_ERRMAX];
	int ret;

	op_ext_progress(c->ext, -1, "%s %s", c->cfg.binary, playbook);
	run_playbook(c, playbook, args, &p, &r);
	sum_stats(&p, &t);
	if (!op_cmd_exited(&r, 0) || r.cancelled || !p.stats) {
		ret = fail_run(c, playbook, &p, &r, t.changed > 0 ? 1 : -1);
	} else if (on_success && on_success(c, &p, err, sizeof(err)) < 0) {
		ret = op_ext_result(c->ext, false, t.changed > 0, NULL, "%s", err);
	} else {
		op_buf_addf(&sb, "%s: ", what);
		recap(&t, &sb);
		ret = op_ext_result(c->ext, true, t.changed > 0, NULL, "%s", checked(&sb));
	}
	op_buf_release(&sb);
	play_release(&p);
	op_cmd_result_release(&r);
	return ret;
}

/* --- actions ---------------------------------------------------------------- */

int ans_describe(struct op_ext *ext)
{
	struct json_object *schema = ans_config_schema();
	int ret;

	ret = op_ext_describe(ext,
			      "run an Ansible playbook (check mode for "
			      "plan); set_stats data become outputs",
			      schema);
	json_object_put(schema);
	return ret;
}

/* ansible-playbook --syntax-check of one playbook; errors appended. */
static void syntax_check(struct ctx *c, const char *key, const char *playbook,
			 struct op_errors *errs)
{
	static const char *const args[] = {"--syntax-check", NULL};
	struct op_cmd_result r;
	struct play p;
	size_t before = errs->nr;

	run_playbook(c, playbook, args, &p, &r);
	if (!r.ran) {
		op_errors_add(errs, key, "%s: %s", c->cfg.binary,
			      r.cancelled ? "cancelled" : r.error);
	} else if (!op_cmd_exited(&r, 0)) {
		stderr_errors(r.err.buf, key, errs);
		if (errs->nr == before) {
			struct op_buf tail = OP_BUF_INIT;
			char st[64];

			last_lines(r.err.buf, 3, &tail);
			op_errors_add(errs, key, "syntax check failed (%s)%s%s",
				      op_cmd_status_text(&r, st, sizeof(st)),
				      *checked(&tail) ? ": " : "", op_buf_str(&tail));
			op_buf_release(&tail);
		}
	}
	play_release(&p);
	op_cmd_result_release(&r);
}

int ans_validate(struct op_ext *ext)
{
	struct op_errors errs = {0};
	struct ctx c;
	int ret;

	if (prepare(ext, &c))
		return 0;
	syntax_check(&c, "playbook", c.cfg.playbook, &errs);
	if (c.cfg.destroy_playbook)
		syntax_check(&c, "destroy_playbook", c.cfg.destroy_playbook, &errs);
	if (errs.nr)
		ret = op_ext_fail_errors(ext, &errs, -1, "invalid configuration: ");
	else
		ret = op_ext_result(ext, true, false, NULL, "configuration is valid");
	op_errors_release(&errs);
	ctx_release(&c);
	return ret;
}

int ans_plan(struct op_ext *ext)
{
	static const char *const args[] = {"--check", "--diff", NULL};
	struct ctx c;
	int ret;

	if (prepare(ext, &c))
		return 0;
	if (!c.cfg.check_mode_for_plan) {
		ret = op_ext_result(ext, true, true, NULL, "would run %s", c.cfg.playbook);
		ctx_release(&c);
		return ret;
	}
	ret = run_action(&c, c.cfg.playbook, "check", args, NULL);
	ctx_release(&c);
	return ret;
}

/* The state after an apply: the playbook and its recap (no variables). */
static int send_state(struct ctx *c, const struct play *p, char *err, size_t errlen)
{
	struct json_object *st = ans_must(json_object_new_object());
	struct json_object *hosts = op_get(p->stats, "hosts");
	int ret;

	json_object_object_add(st, "format", json_object_new_int(ANS_STATE_FORMAT));
	json_object_object_add(st, "playbook", json_object_new_string(c->cfg.playbook));
	json_object_object_add(st, "recap",
			       hosts ? json_object_get(hosts) : json_object_new_object());
	ret = op_ext_state_send(c->ext, st);
	if (ret < 0)
		op_ext_send_failure(err, errlen, errno, "the state");
	json_object_put(st);
	return ret;
}

/*
 * The set_stats data of the run (aggregate, per_host: false) as outputs;
 * keys listed in secret_outputs are sent as secrets.
 */
static int send_outputs(struct ctx *c, const struct play *p, char *err, size_t errlen)
{
	struct json_object *custom = op_get(p->stats, "custom");

	if (!json_object_is_type(custom, json_type_object))
		return 0;
	json_object_object_foreach(custom, k, v)
	{
		if (op_ext_output(c->ext, k, v, ans_config_secret_output(&c->cfg, k)) < 0) {
			op_ext_send_failure(err, errlen, errno, "output '%s'", k);
			return -1;
		}
	}
	return 0;
}

static int apply_success(struct ctx *c, const struct play *p, char *err, size_t errlen)
{
	if (send_outputs(c, p, err, errlen) < 0)
		return -1;
	return send_state(c, p, err, errlen);
}

int ans_apply(struct op_ext *ext)
{
	struct ctx c;
	int ret;

	if (prepare(ext, &c))
		return 0;
	ret = run_action(&c, c.cfg.playbook, "apply", NULL, apply_success);
	ctx_release(&c);
	return ret;
}

/* After a destroy: no state left. */
static int destroy_success(struct ctx *c, const struct play *p, char *err, size_t errlen)
{
	(void)p;
	if (op_ext_state_send(c->ext, NULL) == 0)
		return 0;
	op_ext_send_failure(err, errlen, errno, "the state");
	return -1;
}

int ans_destroy(struct op_ext *ext)
{
	struct ctx c;
	int ret;

	if (prepare(ext, &c))
		return 0;
	if (!c.cfg.destroy_playbook) {
		op_ext_state_send(ext, NULL);
		ret = op_ext_result(ext, true, false, NULL,
				    "nothing to destroy (no destroy_playbook)");
		ctx_release(&c);
		return ret;
	}
	ret = run_action(&c, c.cfg.destroy_playbook, "destroy", NULL, destroy_success);
	ctx_release(&c);
	return ret;
}
