/*
 * extension: the exec extension's logic.  apply runs `command` (argv, no
 * shell) with stdin from /dev/null in its own process group, forwards each
 * line of its stdout (info) and stderr (warning) as a log message, and turns
 * the file named by $ORCHD_OUTPUT into outputs.  A cancel from orchd (or
 * SIGTERM/SIGINT to this process) sends SIGTERM to the command's process
 * group, then SIGKILL if it is still running after EXEC_KILL_GRACE_MS.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"

#include "extension.h"
#include "models.h"

#define EXEC_KILL_GRACE_MS 5000
#define EXEC_LOG_LINE_MAX  65536
#define EXEC_OUTPUT_FILE   "orchd-output"
#define EXEC_OUTPUT_MAX	   (16 * 1024 * 1024)

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

/* Only there to interrupt poll() when the command exits. */
static void on_sigchld(int sig)
{
	(void)sig;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copy s replacing invalid UTF-8 (and NUL bytes) with U+FFFD. */
static char *utf8_clean(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc(len * 3 + 1), *o = out;
	size_t i = 0;

	if (!out)
		return NULL;
	while (i < len) {
		unsigned char c = p[i];
		size_t n = c < 0x80	    ? 1
			   : (c >> 5) == 6  ? 2
			   : (c >> 4) == 14 ? 3
			   : (c >> 3) == 30 ? 4
					    : 0;
		bool ok = n > 0 && c != 0 && i + n <= len && !(c == 0xc0 || c == 0xc1 || c > 0xf4);

		for (size_t k = 1; ok && k < n; k++)
			ok = (p[i + k] & 0xc0) == 0x80;
		if (ok && n == 3 && c == 0xe0 && p[i + 1] < 0xa0)
			ok = false; /* overlong */
		if (ok && n == 3 && c == 0xed && p[i + 1] >= 0xa0)
			ok = false; /* surrogate */
		if (ok && n == 4 &&
		    ((c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] >= 0x90)))
			ok = false;
		if (!ok) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(o, p + i, n);
		o += n;
		i += n;
	}
	*o = '\0';
	return out;
}

static void log_line(struct op_ext *ext, const char *level, const char *line, size_t len)
{
	char *clean = utf8_clean(line, len);

	if (clean)
		op_ext_log(ext, level, "%s", clean);
	free(clean);
}

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

struct run {
	int status;	/* wait status when ran */
	bool ran;	/* the command was started and reaped */
	bool cancelled; /* cancel (or signal) arrived */
	char why[512];	/* failure to start, e.g. "cannot run 'x': ..." */
};

/* What the child reports through its close-on-exec pipe when it fails. */
struct child_failure {
	int stage; /* 1 chdir, 2 exec */
	int err;
};

static void child(const struct exec_config *cfg, char *const *argv, const char *cwd,
		  const char *outfile, int out_w, int err_w, int fail_w)
{
	struct child_failure f = {0, 0};
	int devnull = open("/dev/null", O_RDONLY);

	setpgid(0, 0);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if (devnull >= 0) {
		dup2(devnull, 0);
		close(devnull);
	}
	dup2(out_w, 1);
	dup2(err_w, 2);
	for (size_t i = 0; cfg->env[i]; i++) {
		char *eq = strchr(cfg->env[i], '=');

		*eq = '\0';
		setenv(cfg->env[i], eq + 1, 1);
		*eq = '=';
	}
	if (outfile)
		setenv("ORCHD_OUTPUT", outfile, 1);
	if (cwd && chdir(cwd) < 0) {
		f.stage = 1;
		f.err = errno;
	} else {
		execvp(argv[0], argv);
		f.stage = 2;
		f.err = errno;
	}
	if (write(fail_w, &f, sizeof(f)) < 0)
		_exit(126);
	_exit(127);
}

struct stream {
	int fd;
	struct op_splitter *sp;
	const char *level;
};

/*
 * Read what is available (the fd is non-blocking); forward complete lines.
 * final: drain what is there now and close even if the writer lives on.
 * Returns false once the stream is closed.
 */
static bool pump(struct op_ext *ext, struct stream *s, bool final)
{
	char buf[65536];
	const char *line;
	size_t len;
	ssize_t n;
	bool done = false;

	for (;;) {
		n = read(s->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0)
			op_splitter_feed(s->sp, buf, (size_t)n);
		if (n == 0 || (n < 0 && errno != EAGAIN) || (n < 0 && final))
			done = true;
		if (done || !final || n < 0)
			break;
	}
	if (done)
		op_splitter_finish(s->sp);
	while (op_splitter_next(s->sp, &line, &len) == OP_LINE_OK)
		log_line(ext, s->level, line, len);
	if (done) {
		close(s->fd);
		s->fd = -1;
	}
	return !done;
}

static int run_command(struct op_ext *ext, const struct exec_config *cfg, char *const *argv,
		       const char *outfile, struct run *r)
{
	int out_p[2], err_p[2], fail_p[2];
	struct stream st[2];
	struct child_failure f;
	char *cwd = resolve_cwd(cfg, op_ext_workdir(ext));
	long long killed_at = 0;
	bool reaped = false;
	pid_t pid;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 ||
	    pipe2(fail_p, O_CLOEXEC) < 0) {
		snprintf(r->why, sizeof(r->why), "cannot create pipes: %s", strerror(errno));
		free(cwd);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(r->why, sizeof(r->why), "cannot fork: %s", strerror(errno));
		free(cwd);
		return -1;
	}
	if (pid == 0)
		child(cfg, argv, cwd, outfile, out_p[1], err_p[1], fail_p[1]);
	setpgid(pid, pid);
	fcntl(out_p[0], F_SETFL, O_NONBLOCK);
	fcntl(err_p[0], F_SETFL, O_NONBLOCK);
	close(out_p[1]);
	close(err_p[1]);
	close(fail_p[1]);
	do
		n = read(fail_p[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(fail_p[0]);
	if (n == (ssize_t)sizeof(f)) {
		if (f.stage == 1)
			snprintf(r->why, sizeof(r->why), "cannot change to directory '%s': %s", cwd,
				 strerror(f.err));
		else
			snprintf(r->why, sizeof(r->why), "cannot run '%s': %s", argv[0],
				 strerror(f.err));
	}
	free(cwd);

	st[0] = (struct stream){out_p[0], op_splitter_new(EXEC_LOG_LINE_MAX, OP_SPLIT_CHUNK),
				"info"};
	st[1] = (struct stream){err_p[0], op_splitter_new(EXEC_LOG_LINE_MAX, OP_SPLIT_CHUNK),
				"warning"};
	for (;;) {
		struct pollfd pfd[3];
		int nfds = 0, ready, status;

		for (int i = 0; i < 2; i++)
			pfd[i] = (struct pollfd){st[i].fd, POLLIN, 0};
		nfds = 2;
		if (!r->cancelled)
			pfd[nfds++] = (struct pollfd){op_ext_in_fd(ext), POLLIN, 0};
		if (st[0].fd < 0 && st[1].fd < 0 && reaped)
			break;
		ready = poll(pfd, (nfds_t)nfds, 200);
		/* not only when in_fd is readable: orchd may have sent the
		 * cancel with the action, and it is already buffered */
		if (!r->cancelled && (got_signal || op_ext_check_cancel(ext, NULL))) {
			r->cancelled = true;
			killed_at = mono_ms();
			kill(-pid, SIGTERM);
			op_ext_log(ext, "warning", "cancelled: sent SIGTERM to the command");
		}
		if (r->cancelled && !reaped && killed_at &&
		    mono_ms() - killed_at > EXEC_KILL_GRACE_MS) {
			kill(-pid, SIGKILL);
			killed_at = 0;
		}
		for (int i = 0; i < 2; i++)
			if (st[i].fd >= 0 && pfd[i].revents)
				pump(ext, &st[i], false);
		if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
			reaped = true;
			r->status = status;
			r->ran = r->why[0] == '\0';
			/* processes forked after the first SIGTERM missed it */
			if (r->cancelled)
				kill(-pid, SIGTERM);
		}
		/* the command exited but something it started keeps the pipes
		 * open: take what is there and stop listening */
		if (reaped && ready == 0)
			for (int i = 0; i < 2; i++)
				if (st[i].fd >= 0)
					pump(ext, &st[i], true);
	}
	op_splitter_free(st[0].sp);
	op_splitter_free(st[1].sp);
	return r->why[0] ? -1 : 0;
}

/* Summary of a finished command; false when it failed. */
static bool run_verdict(const struct run *r, char *buf, size_t len)
{
	if (r->why[0]) {
		snprintf(buf, len, "%s", r->why);
		return false;
	}
	if (r->cancelled) {
		snprintf(buf, len, "cancelled");
		return false;
	}
	if (WIFEXITED(r->status)) {
		snprintf(buf, len, "command exited with status %d", WEXITSTATUS(r->status));
		return WEXITSTATUS(r->status) == 0;
	}
	snprintf(buf, len, "command killed by signal %d", WTERMSIG(r->status));
	return false;
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
			struct strbuf_lite {
				char *buf;
				size_t len;
			} v = {NULL, 0};
			bool found = false, first = true;
			int start = lineno;
			char *body;

			*hd = '\0';
			if (!*line || !*delim)
				return out_err(err, errlen, "line %d: expected KEY<<DELIMITER",
					       lineno);
			while (!found && (body = next_line(&pos))) {
				size_t bl = strlen(body);
				char *nv;

				lineno++;
				if (!strcmp(body, delim)) {
					found = true;
					break;
				}
				nv = realloc(v.buf, v.len + bl + 2);
				if (!nv) {
					free(v.buf);
					return out_err(err, errlen, "out of memory");
				}
				v.buf = nv;
				if (!first)
					v.buf[v.len++] = '\n';
				first = false;
				memcpy(v.buf + v.len, body, bl);
				v.len += bl;
				v.buf[v.len] = '\0';
			}
			if (!found) {
				free(v.buf);
				return out_err(err, errlen, "line %d: delimiter '%s' not found",
					       start, delim);
			}
			json_object_object_add(
				obj, line,
				json_object_new_string_len(v.buf ? v.buf : "", (int)v.len));
			free(v.buf);
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

static void setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* whatever our parent left us: we must see our child exit (and be
	 * woken from poll when it does) and be told */
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &sa.sa_mask, NULL);
}

/* Validate the config; on failure send the failure result and return -1. */
static int load_config(struct op_ext *ext, struct exec_config *cfg)
{
	struct exec_errors errs = {0};
	struct json_object *extra, *arr;
	char *first;

	if (exec_config_parse(op_ext_config(ext), cfg, &errs) == 0)
		return 0;
	for (size_t i = 0; i < errs.nr; i++) {
		char *t = exec_error_text(&errs.v[i]);

		op_ext_log(ext, "error", "%s", t);
		free(t);
	}
	arr = exec_errors_json(&errs);
	extra = json_object_new_object();
	json_object_object_add(extra, "errors", arr);
	first = exec_error_text(&errs.v[0]);
	if (errs.nr == 1)
		op_ext_result(ext, false, false, extra, "invalid configuration: %s", first);
	else
		op_ext_result(ext, false, false, extra, "invalid configuration: %s (and %zu more)",
			      first, errs.nr - 1);
	free(first);
	json_object_put(extra);
	exec_errors_release(&errs);
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
	static const char *const actions[] = {"describe", "validate", "plan", "apply", "destroy"};
	struct json_object *d = json_object_new_object(), *a = json_object_new_array();
	struct json_object *extra = json_object_new_object();
	int ret;

	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		json_object_array_add(a, json_object_new_string(actions[i]));
	json_object_object_add(d, "type", json_object_new_string(EXEC_NAME));
	json_object_object_add(d, "version", json_object_new_string(EXEC_VERSION));
	json_object_object_add(d, "actions", a);
	json_object_object_add(d, "description",
			       json_object_new_string("run a command as a pipeline step; its "
						      "stdout/stderr lines become logs and "
						      "$ORCHD_OUTPUT becomes outputs"));
	json_object_object_add(d, "config", exec_config_schema());
	json_object_object_add(extra, "describe", d);
	ret = op_ext_result(ext, true, false, extra, "exec %s", EXEC_VERSION);
	json_object_put(extra);
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
	struct run r;
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
	setup_signals();
	path = output_path(ext);
	run_command(ext, &cfg, cfg.plan_command, path, &r);
	ok = run_verdict(&r, summary, sizeof(summary));
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
	free(path);
	exec_config_release(&cfg);
	return ret;
}

int exec_apply(struct op_ext *ext)
{
	struct exec_config cfg;
	struct json_object *outs = NULL, *state, *prev = op_ext_state(ext);
	struct run r;
	char summary[600], err[600], *path;
	long long runs = op_get_int(prev, "runs", 0);
	bool ok;
	int ret;

	if (load_config(ext, &cfg))
		return 0;
	setup_signals();
	if (runs)
		op_ext_log(ext, "debug", "previous state: %lld run(s), last status %lld", runs,
			   op_get_int(prev, "last_status", -1));
	path = output_path(ext);
	op_ext_progress(ext, 0, "running %s", cfg.command[0]);
	run_command(ext, &cfg, cfg.command, path, &r);
	ok = run_verdict(&r, summary, sizeof(summary));
	if (ok && read_outputs(path, &outs, err, sizeof(err)) < 0) {
		ok = false;
		snprintf(summary, sizeof(summary), "%s", err);
	}
	if (ok) {
		json_object_object_foreach(outs, k, v)
		{
			op_ext_output(ext, k, v, exec_list_has(cfg.secret_outputs, k));
		}
	}
	state = json_object_new_object();
	json_object_object_add(state, "runs", json_object_new_int64(runs + 1));
	json_object_object_add(
		state, "last_status",
		json_object_new_int(r.ran && WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1));
	op_ext_state_send(ext, state);
	json_object_put(state);
	if (r.cancelled)
		ret = op_ext_result(ext, false, true, NULL, "cancelled");
	else
		ret = op_ext_result(ext, ok, r.ran, NULL, "%s", summary);
	json_object_put(outs);
	free(path);
	exec_config_release(&cfg);
	return ret;
}

int exec_destroy(struct op_ext *ext)
{
	struct exec_config cfg;
	struct run r;
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
	setup_signals();
	path = output_path(ext);
	run_command(ext, &cfg, cfg.destroy_command, path, &r);
	ok = run_verdict(&r, summary, sizeof(summary));
	if (ok)
		op_ext_state_send(ext, NULL);
	ret = op_ext_result(ext, ok, r.ran, NULL, "destroy: %s", summary);
	free(path);
	exec_config_release(&cfg);
	return ret;
}
