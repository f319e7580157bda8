/*
 * extension: the exec extension's logic.  apply runs `command` (argv, no
 * shell) with stdin from /dev/null in its own process group, forwards each
 * line of its stdout (info) and stderr (warning) as a log message, and turns
 * the file named by $ORCHD_OUTPUT into outputs.  A cancel from orchd (or
 * SIGTERM/SIGINT to this process) sends SIGTERM to the command's process
 * group, then SIGKILL if it is still running after EXEC_KILL_GRACE_MS.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <orchd/orchd_protocol.h>

#include "extension.h"
#include "models.h"

#define EXEC_KILL_GRACE_MS 5000
#define EXEC_OUTPUT_FILE   "orchd-output"
#define EXEC_OUTPUT_MAX	   (16 * 1024 * 1024)

/* Shell-like rendering of argv for messages ("would run: ..."). */
static char *argv_text(char *const *argv)
{
	size_t cap = 1;
	char *out, *o;

	for (size_t i = 0; argv[i]; i++)
		cap += strlen(argv[i]) * 4 + 3;
	out = o = malloc(cap);
	if (!out)
		return NULL;
	for (size_t i = 0; argv[i]; i++) {
		const char *a = argv[i];
		bool plain = *a != '\0';

		for (const char *c = a; *c; c++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789-_./=:,+@%",
				    *c))
				plain = false;
		if (i)
			*o++ = ' ';
		if (plain) {
			o = stpcpy(o, a);
			continue;
		}
		*o++ = '\'';
		for (const char *c = a; *c; c++) {
			if (*c == '\'')
				o = stpcpy(o, "'\\''");
			else
				*o++ = *c;
		}
		*o++ = '\'';
	}
	*o = '\0';
	return out;
}

/* The command's working directory (malloc'ed), or NULL: the workdir. */
static char *resolve_cwd(const struct exec_config *cfg, const char *workdir)
{
	const char *base = getenv("ORCHD_PIPELINE_DIR");
	char *out;

	if (!cfg->cwd)
		return NULL;
	if (cfg->cwd[0] == '/')
		return strdup(cfg->cwd);
	if (!base || !*base)
		base = *workdir ? workdir : ".";
	if (asprintf(&out, "%s/%s", base, cfg->cwd) < 0)
		return NULL;
	return out;
}

/*
 * Run argv with cfg's env and cwd, $ORCHD_OUTPUT set to outfile, stdout
 * written straight to our stderr (orchd logs it at info, no copy through
 * us: the bulk of a command's output) and stderr lines logged at warning.
 */
static int run_command(struct op_ext *ext, const struct exec_config *cfg, char *const *argv,
		       const char *outfile, struct op_cmd_result *r)
{
	size_t n = 0;
	char **env, *out = NULL, *cwd = resolve_cwd(cfg, op_ext_workdir(ext));
	struct op_cmd_opts o = {
		.argv = argv,
		.cwd = cwd,
		.out = {OP_CMD_PASS, NULL, 0},
		.err = {OP_CMD_LOG, "warning", 0},
		.name = "the command",
		.kill_grace_ms = EXEC_KILL_GRACE_MS,
	};
	int ret;

	while (cfg->env[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (env) {
		memcpy(env, cfg->env, n * sizeof(*env));
		if (outfile && asprintf(&out, "ORCHD_OUTPUT=%s", outfile) >= 0)
			env[n] = out;
	}
	o.env = env;
	ret = op_cmd_run(ext, &o, r);
	free(out);
	free(env);
	free(cwd);
	return ret;
}

/* --- $ORCHD_OUTPUT ---------------------------------------------------------- */

static int out_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int out_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, len, "$ORCHD_OUTPUT: ");

	va_start(ap, fmt);
	vsnprintf(err + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Next line of *pos (NUL-terminated in place, '\r\n' tolerated); NULL at end. */
static char *next_line(char **pos)
{
	char *line = *pos, *nl;
	size_t l;

	if (!line || !*line)
		return NULL;
	nl = strchr(line, '\n');
	if (nl) {
		*nl = '\0';
		*pos = nl + 1;
	} else {
		*pos = line + strlen(line);
	}
	l = strlen(line);
	if (l && line[l - 1] == '\r')
		line[l - 1] = '\0';
	return line;
}

/* Parse the KEY=VALUE / KEY<<DELIM form into obj. */
static int parse_kv(char *text, struct json_object *obj, char *err, size_t errlen)
{
	char *pos = text, *line;
	int lineno = 0;

	while ((line = next_line(&pos))) {
		char *eq = strchr(line, '='), *hd = strstr(line, "<<");

		lineno++;
		if (!*line)
			continue;
		if (hd && (!eq || hd < eq)) {
			const char *delim = hd + 2;
			struct op_buf v = OP_BUF_INIT;
			bool found = false, first = true;
			int start = lineno;
			char *body;

			*hd = '\0';
			if (!*line || !*delim)
				return out_err(err, errlen, "line %d: expected KEY<<DELIMITER",
					       lineno);
			while (!found && (body = next_line(&pos))) {
				lineno++;
				if (!strcmp(body, delim)) {
					found = true;
					break;
				}
				/* a failure is sticky: checked once below */
				if (!first)
					op_buf_addch(&v, '\n');
				first = false;
				op_buf_addstr(&v, body);
			}
			if (op_buf_failed(&v))
				return out_err(err, errlen, "out of memory");
			if (!found) {
				op_buf_release(&v);
				return out_err(err, errlen, "line %d: delimiter '%s' not found",
					       start, delim);
			}
			json_object_object_add(
				obj, line, json_object_new_string_len(op_buf_str(&v), (int)v.len));
			op_buf_release(&v);
			continue;
		}
		if (!eq || eq == line)
			return out_err(err, errlen, "line %d: expected KEY=VALUE or KEY<<DELIMITER",
				       lineno);
		*eq = '\0';
		json_object_object_add(obj, line, json_object_new_string(eq + 1));
	}
	return 0;
}

/*
 * Read the outputs file: NULL/empty object when absent or empty.  Returns
 * 0 with *outputs (caller owns) or -1 with err.
 */
static int read_outputs(const char *path, struct json_object **outputs, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *text;
	size_t len;
	const char *p;
	int ret = 0;

	*outputs = json_object_new_object();
	if (!f)
		return errno == ENOENT ? 0
				       : out_err(err, errlen, "cannot open: %s", strerror(errno));
	text = malloc(EXEC_OUTPUT_MAX + 1);
	len = text ? fread(text, 1, EXEC_OUTPUT_MAX + 1, f) : 0;
	fclose(f);
	/* it may hold secrets in clear: gone as soon as it is read, so that
	 * not even a crash leaves it in the workdir */
	unlink(path);
	if (!text)
		return out_err(err, errlen, "out of memory");
	if (len > EXEC_OUTPUT_MAX) {
		free(text);
		return out_err(err, errlen, "larger than %d bytes", EXEC_OUTPUT_MAX);
	}
	text[len] = '\0';
	if (memchr(text, '\0', len)) {
		free(text);
		return out_err(err, errlen, "contains a NUL byte");
	}
	for (p = text; *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'; p++)
		;
	if (*p == '{') {
		struct json_tokener *tok = json_tokener_new();
		struct json_object *o =
			json_tokener_parse_ex(tok, p, (int)(len - (size_t)(p - text)));
		enum json_tokener_error je = json_tokener_get_error(tok);
		size_t end = json_tokener_get_parse_end(tok);

		for (const char *q = p + end; je == json_tokener_success && *q; q++)
			if (!strchr(" \t\r\n", *q))
				je = json_tokener_error_parse_unexpected;
		json_tokener_free(tok);
		if (je != json_tokener_success || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			ret = out_err(err, errlen, "invalid JSON object: %s",
				      je == json_tokener_success ? "not an object"
								 : json_tokener_error_desc(je));
		} else {
			json_object_put(*outputs);
			*outputs = o;
		}
	} else {
		ret = parse_kv(text, *outputs, err, errlen);
	}
	free(text);
	return ret;
}

/* --- actions ---------------------------------------------------------------- */

/* Validate the config; on failure send the failure result and return -1. */
static int load_config(struct op_ext *ext, struct exec_config *cfg)
{
	struct op_errors errs = {0};

	if (exec_config_parse(op_ext_config(ext), cfg, &errs) == 0)
		return 0;
	op_ext_fail_errors(ext, &errs, 0, "invalid configuration: ");
	op_errors_release(&errs);
	return -1;
}

/* Path of the outputs file in the workdir (malloc'ed). */
static char *output_path(struct op_ext *ext)
{
	const char *wd = op_ext_workdir(ext);
	char *p;

	if (asprintf(&p, "%s/%s", *wd ? wd : ".", EXEC_OUTPUT_FILE) < 0)
		return NULL;
	unlink(p);
	return p;
}

int exec_describe(struct op_ext *ext)
{
	struct json_object *schema = exec_config_schema();
	int ret;

	ret = op_ext_describe(ext,
			      "run a command as a pipeline step; its "
			      "stdout/stderr lines become logs and "
			      "$ORCHD_OUTPUT becomes outputs",
			      schema);
	json_object_put(schema);
	return ret;
}

int exec_validate(struct op_ext *ext)
{
	struct exec_config cfg;

	if (load_config(ext, &cfg))
		return 0;
	exec_config_release(&cfg);
	return op_ext_result(ext, true, false, NULL, "configuration is valid");
}

int exec_plan(struct op_ext *ext)
{
	struct exec_config cfg;
	struct json_object *outs = NULL;
	struct op_cmd_result r;
	char summary[600], err[600], *text, *path;
	bool ok, changed = true;
	int ret;

	if (load_config(ext, &cfg))
		return 0;
	if (!cfg.plan_command) {
		text = argv_text(cfg.command);
		ret = op_ext_result(ext, true, true, NULL, "would run: %s", text ? text : "?");
		free(text);
		exec_config_release(&cfg);
		return ret;
	}
	op_cmd_catch_signals();
	path = output_path(ext);
	run_command(ext, &cfg, cfg.plan_command, path, &r);
	ok = op_cmd_summary(&r, summary, sizeof(summary));
	if (ok && read_outputs(path, &outs, err, sizeof(err)) < 0) {
		ok = false;
		snprintf(summary, sizeof(summary), "%s", err);
	}
	if (ok) {
		const char *c = op_get_str(outs, "changed");

		changed = !(c && !strcmp(c, "false")) &&
			  !json_object_is_type(op_get(outs, "changed"), json_type_boolean);
		if (json_object_is_type(op_get(outs, "changed"), json_type_boolean))
			changed = json_object_get_boolean(op_get(outs, "changed"));
	}
	ret = op_ext_result(ext, ok, ok ? changed : -1, NULL, "plan: %s", summary);
	json_object_put(outs);
	op_cmd_result_release(&r);
	free(path);
	exec_config_release(&cfg);
	return ret;
}

int exec_apply(struct op_ext *ext)
{
	struct exec_config cfg;
	struct json_object *outs = NULL, *state, *prev = op_ext_state(ext);
	struct op_cmd_result r;
	char summary[600], err[600], *path;
	long long runs = op_get_int(prev, "runs", 0);
	bool ok;
	int ret;

	if (load_config(ext, &cfg))
		return 0;
	op_cmd_catch_signals();
	if (runs)
		op_ext_log(ext, "debug", "previous state: %lld run(s), last status %lld", runs,
			   op_get_int(prev, "last_status", -1));
	path = output_path(ext);
	op_ext_progress(ext, -1, "running %s", cfg.command[0]);
	run_command(ext, &cfg, cfg.command, path, &r);
	ok = op_cmd_summary(&r, summary, sizeof(summary));
	if (ok && read_outputs(path, &outs, err, sizeof(err)) < 0) {
		ok = false;
		snprintf(summary, sizeof(summary), "%s", err);
	}
	if (ok) {
		json_object_object_foreach(outs, k, v)
		{
			if (op_ext_output(ext, k, v, exec_list_has(cfg.secret_outputs, k)) < 0) {
				op_ext_send_failure(summary, sizeof(summary), errno, "output '%s'",
						    k);
				ok = false;
				break;
			}
		}
	}
	state = json_object_new_object();
	json_object_object_add(state, "runs", json_object_new_int64(runs + 1));
	json_object_object_add(state, "last_status", json_object_new_int(r.ran ? r.exit_code : -1));
	op_ext_state_send(ext, state);
	json_object_put(state);
	if (r.cancelled)
		ret = op_ext_result(ext, false, true, NULL, "cancelled");
	else
		ret = op_ext_result(ext, ok, r.ran, NULL, "%s", summary);
	json_object_put(outs);
	op_cmd_result_release(&r);
	free(path);
	exec_config_release(&cfg);
	return ret;
}

int exec_destroy(struct op_ext *ext)
{
	struct exec_config cfg;
	struct op_cmd_result r;
	char summary[600], *path;
	bool ok;
	int ret;

	if (load_config(ext, &cfg))
		return 0;
	if (!cfg.destroy_command) {
		op_ext_state_send(ext, NULL);
		exec_config_release(&cfg);
		return op_ext_result(ext, true, false, NULL, "nothing to destroy");
	}
	op_cmd_catch_signals();
	path = output_path(ext);
	run_command(ext, &cfg, cfg.destroy_command, path, &r);
	ok = op_cmd_summary(&r, summary, sizeof(summary));
	if (ok)
		op_ext_state_send(ext, NULL);
	ret = op_ext_result(ext, ok, r.ran, NULL, "destroy: %s", summary);
	op_cmd_result_release(&r);
	free(path);
	exec_config_release(&cfg);
	return ret;
}
