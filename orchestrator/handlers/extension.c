/*
 * handlers/extension: one extension step, orchd's side of the protocol
 * (see extension.h).
 */
#include "handlers/extension.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/sources.h"
#include "util.h"

static const char *const status_names[] = {
	"success",     "failed",	 "timed out",	 "cancelled",
	"spawn error", "protocol error", "incompatible", "unsupported",
};

const char *orchd_step_status_name(enum orchd_step_status s)
{
	if ((size_t)s >= ARRAY_SIZE(status_names))
		return "unknown";
	return status_names[s];
}

/* ---------------------------------------------------------------------------
 * The outcome table: how each event moves the step's outcome.  A row is the
 * current outcome, a column the event; a cell the next outcome (the same
 * one: the event does not change how the step ends).
 * ------------------------------------------------------------------------- */

#define R  OUT_RUNNING
#define OK OUT_RESULT_OK
#define RF OUT_RESULT_FAILED
#define NR OUT_NO_RESULT
#define LG OUT_LINGERED
#define SK OUT_SILENT_KILLED
#define CX OUT_CANCELLING
#define CO OUT_CANCELLING_OK
#define TO OUT_TIMING_OUT
#define AB OUT_ABORTED

static const enum step_outcome outcome_next[OUT_NSTATES][SEV_NEVENTS] = {
	/*                 RESULT_OK RESULT_FAILED STDOUT_CLOSED LINGER CANCEL TIMEOUT ERROR */
	[OUT_RUNNING] = {OK, RF, NR, R, CX, TO, AB},
	[OUT_RESULT_OK] = {OK, OK, OK, LG, CO, TO, AB},
	[OUT_RESULT_FAILED] = {RF, RF, RF, RF, CX, TO, AB},
	[OUT_NO_RESULT] = {NR, NR, NR, SK, CX, TO, AB},
	[OUT_LINGERED] = {LG, LG, LG, LG, CX, TO, AB},
	[OUT_SILENT_KILLED] = {SK, SK, SK, SK, CX, TO, AB},
	[OUT_CANCELLING] = {CO, CX, CX, CX, CX, TO, AB},
	[OUT_CANCELLING_OK] = {CO, CO, CO, CX, CO, TO, AB},
	[OUT_TIMING_OUT] = {TO, TO, TO, TO, TO, TO, AB},
	[OUT_ABORTED] = {AB, AB, AB, AB, AB, AB, AB},
};

#undef R
#undef OK
#undef RF
#undef NR
#undef LG
#undef SK
#undef CX
#undef CO
#undef TO
#undef AB

/* Move the outcome; 1 when it changed. */
static int outcome(struct orchd_step *st, enum step_event ev)
{
	enum step_outcome next = outcome_next[st->outcome][ev];

	if (next == st->outcome)
		return 0;
	st->outcome = next;
	return 1;
}

/* Orchd stopped listening to stdout: after its own error (the exec failed,
 * the protocol was broken), or when the step was stopped before its action
 * was sent (nothing it says can be a result). */
static int ignoring_stdout(const struct orchd_step *st)
{
	return st->outcome == OUT_ABORTED || (st->phase == PHASE_DONE && st->action_line);
}

/* A step that is being cancelled (or timed out) gets no action and no fetch. */
static int stopping(const struct orchd_step *st)
{
	return st->outcome == OUT_CANCELLING || st->outcome == OUT_CANCELLING_OK ||
	       st->outcome == OUT_TIMING_OUT;
}

/* --- small helpers ------------------------------------------------------- */

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void format_ms(char *buf, size_t n, long long ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, n, "%llds", ms / 1000);
	else
		snprintf(buf, n, "%lldms", ms);
}

static const char *const env_allow[] = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"};

static void env_set(char ***env, size_t *n, size_t *alloc, char *entry)
{
	size_t namelen = strcspn(entry, "=");

	for (size_t i = 0; i < *n; i++) {
		if (!strncmp((*env)[i], entry, namelen) && (*env)[i][namelen] == '=') {
			free((*env)[i]);
			(*env)[i] = entry;
			return;
		}
	}
	ALLOC_GROW(*env, *n + 2, *alloc);
	(*env)[(*n)++] = entry;
	(*env)[*n] = NULL;
}

char **orchd_step_env(const struct orchd_step_spec *spec, const char *workdir, const char *tmpdir)
{
	char **env = NULL;
	size_t n = 0, alloc = 0;

	ALLOC_GROW(env, 1, alloc);
	env[0] = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(env_allow); i++) {
		const char *v = getenv(env_allow[i]);

		if (v)
			env_set(&env, &n, &alloc, xasprintf("%s=%s", env_allow[i], v));
	}
	for (const char *const *e = spec->env; e && *e; e++)
		if (strchr(*e, '=') && **e != '=')
			env_set(&env, &n, &alloc, xstrdup(*e));
	env_set(&env, &n, &alloc, xasprintf("ORCHD_PROTOCOL=%d", OP_PROTOCOL_MAX));
	env_set(&env, &n, &alloc,
		xasprintf("ORCHD_INSTANCE=%s", spec->instance ? spec->instance : spec->id));
	env_set(&env, &n, &alloc, xasprintf("ORCHD_WORKDIR=%s", workdir));
	if (tmpdir)
		env_set(&env, &n, &alloc, xasprintf("TMPDIR=%s", tmpdir));
#if defined(__SANITIZE_ADDRESS__)
	/* A sanitizer build of orchd runs sanitizer builds of the extensions:
	 * LeakSanitizer stops the world with ptrace, which the sandbox's
	 * seccomp filter refuses (EPERM), so a sandboxed one would fail at
	 * exit.  AddressSanitizer itself keeps watching. */
	if (tmpdir)
		env_set(&env, &n, &alloc, xstrdup("ASAN_OPTIONS=detect_leaks=0"));
#endif
	return env;
}

/* --- logging ------------------------------------------------------------- */

static void step_log_src(struct orchd_step *st, enum orchd_log_level level,
			 enum orchd_log_source src, const char *text)
{
	if (st->hooks.log)
		st->hooks.log(st->hooks.cb_data, st->ctx, st->id, level, src, text);
}

void orchd_step_log(struct orchd_step *st, enum orchd_log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	step_log_src(st, level, ORCHD_LOGSRC_ORCHD, buf);
}

/* --- lifetime ------------------------------------------------------------ */

struct orchd_step *orchd_step_new(const struct orchd_step_spec *spec,
				  const struct orchd_step_hooks *hooks)
{
	struct orchd_step *st;

	if (!spec->id || !spec->exe || !op_action_name(spec->action)) {
		error("supervisor: step needs an id, an executable and an action");
		return NULL;
	}
	if (spec->action != OP_ACTION_DESCRIBE && (!spec->instance || !spec->stack)) {
		error("supervisor: step %s needs an instance and a stack", spec->id);
		return NULL;
	}
	st = xcalloc(1, sizeof(*st));
	st->hooks = *hooks;
	st->id = xstrdup(spec->id);
	/* the child runs in its workdir: a relative path is relative to ours */
	if (spec->exe[0] != '/') {
		char *cwd = getcwd(NULL, 0);

		st->exe = cwd ? xasprintf("%s/%s", cwd, spec->exe) : xstrdup(spec->exe);
		free(cwd);
	} else {
		st->exe = xstrdup(spec->exe);
	}
	st->instance = spec->instance ? xstrdup(spec->instance) : NULL;
	st->ctx = spec->ctx;
	st->action = spec->action;
	st->park = spec->park;
	st->keep_workdir = spec->keep_workdir;
	st->grace_ms = spec->grace_ms >= 0 ? spec->grace_ms : ORCHD_DEFAULT_GRACE_MS;
	st->hello_ms = spec->hello_timeout_ms > 0 ? spec->hello_timeout_ms : ORCHD_DEFAULT_HELLO_MS;
	st->timeout_ms = spec->timeout_ms > 0 ? spec->timeout_ms : 0;
	st->start_ms = now_ms();
	/* the timeout counts from here: fetching its sources included */
	if (st->timeout_ms)
		st->dl_timeout = st->start_ms + st->timeout_ms;
	st->fd_in = st->fd_out = st->fd_err = st->fd_rep = -1;
	op_buf_init(&st->wq, ORCHD_MAX_QUEUED);
	op_buf_init(&st->err_clean, 0);
	st->outputs = json_object_new_object();
	st->secrets = json_object_new_object();
	st->sp_out = op_splitter_new(OP_MAX_LINE, OP_SPLIT_STRICT);
	st->sp_err = op_splitter_new(OP_MAX_LINE, OP_SPLIT_CHUNK);
	if (!st->sp_out || !st->sp_err || !st->outputs || !st->secrets)
		die("out of memory");
	return st;
}

void orchd_step_free(struct orchd_step *st)
{
	if (!st)
		return;
	close_fd(&st->fd_in);
	close_fd(&st->fd_out);
	close_fd(&st->fd_err);
	close_fd(&st->fd_rep);
	op_buf_release(&st->wq);
	op_buf_release(&st->err_clean);
	op_splitter_free(st->sp_out);
	op_splitter_free(st->sp_err);
	json_object_put(st->outputs);
	json_object_put(st->secrets);
	json_object_put(st->state);
	json_object_put(st->result);
	json_object_put(st->hello);
	free(st->error_message);
	free(st->action_line);
	free(st->action_files);
	for (char **e = st->env; e && *e; e++)
		free(*e);
	free(st->env);
	orchd_sandbox_free(st->sandbox);
	orchd_cgroup_free(st->cgroup);
	free(st->id);
	free(st->exe);
	free(st->instance);
	free(st->workdir);
	free(st);
}

/* --- the process: signals and stdin ---------------------------------------- */

static void step_signal(struct orchd_step *st, int sig)
{
	if (st->pid > 0 && st->proc != PROC_REAPED)
		kill(-st->pid, sig);
}

void orchd_step_kill(struct orchd_step *st)
{
	int reaper = (st->child.flags & OP_CHILD_REAPER) != 0;

	if (st->proc == PROC_KILL_SENT && reaper && !st->hard_killed) {
		/* its reaper did not manage: the group, reaper and all */
		st->hard_killed = 1;
		st->dl_kill = 0;
		step_signal(st, SIGKILL);
		return;
	}
	if (st->proc != PROC_RUNNING && st->proc != PROC_TERM_SENT)
		return;
	st->proc = PROC_KILL_SENT;
	st->dl_kill = 0;
	if (reaper && st->pid > 0) {
		/* the reaper kills the extension and everything it started
		 * (a SIGKILL of the reaper would orphan them) */
		kill(st->pid, OP_CHILD_KILL_ALL);
		st->dl_kill = now_ms() + ORCHD_KILL_BACKSTOP_MS;
		return;
	}
	step_signal(st, SIGKILL);
}

/* SIGTERM the group now, SIGKILL after the grace. */
static void step_terminate(struct orchd_step *st)
{
	if (st->proc != PROC_RUNNING)
		return;
	st->proc = PROC_TERM_SENT;
	step_signal(st, SIGTERM);
	st->dl_kill = now_ms() + st->grace_ms;
}

void orchd_step_close_stdin(struct orchd_step *st)
{
	close_fd(&st->fd_in);
	op_buf_reset(&st->wq);
}

void orchd_step_queue(struct orchd_step *st, char *line)
{
	if (!line)
		return;
	if (st->fd_in >= 0 && op_buf_addstr(&st->wq, line) < 0) {
		orchd_step_close_stdin(st);
		orchd_step_fail(st, ORCHD_STEP_PROTOCOL_ERROR,
				"protocol error: the extension does not read its stdin (more than "
				"%d MiB of messages wait for it)",
				ORCHD_MAX_QUEUED >> 20);
	}
	free(line);
}

void orchd_step_write(struct orchd_step *st)
{
	while (st->fd_in >= 0 && st->wq.len) {
		ssize_t n = write(st->fd_in, st->wq.buf, st->wq.len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* EPIPE: the extension closed its stdin; whatever it
			 * does next decides the outcome */
			orchd_step_close_stdin(st);
			return;
		}
		op_buf_consume(&st->wq, (size_t)n);
	}
	if (st->fd_in >= 0 && !st->wq.len && st->phase == PHASE_DONE && !st->want_park &&
	    !st->parked)
		orchd_step_close_stdin(st);
}

/* The protocol is over for this step: nothing more is sent. */
static void step_end_protocol(struct orchd_step *st)
{
	st->phase = PHASE_DONE;
	orchd_step_close_stdin(st);
}

/* Wait a grace for the exit, then SIGTERM (the linger deadline). */
static void step_await_exit(struct orchd_step *st)
{
	/* the grace, but never less than ORCHD_MIN_LINGER_MS: grace 0 means
	 * "SIGKILL right after SIGTERM", not "no time to exit" */
	long long wait = st->grace_ms > ORCHD_MIN_LINGER_MS ? st->grace_ms : ORCHD_MIN_LINGER_MS;

	if (st->proc != PROC_REAPED && !st->dl_linger)
		st->dl_linger = now_ms() + wait;
}

/*
 * Ask the extension to stop (protocol §9): when the action was sent, a
 * cancel message and SIGTERM to the group together; SIGKILL after the grace.
 */
static void step_soft_stop(struct orchd_step *st, const char *reason)
{
	if (st->proc != PROC_RUNNING)
		return;
	if (st->phase == PHASE_ACTION && st->fd_in >= 0)
		orchd_step_queue(st, op_encode_cancel(reason));
	step_terminate(st);
}

/* --- events -------------------------------------------------------------- */

/* orchd's own error decides the outcome (the first one is reported);
 * nothing more is sent and stdout is ignored.  0 when an earlier error had
 * decided already. */
static int step_error(struct orchd_step *st, enum orchd_step_status status, const char *fmt,
		      va_list ap) __attribute__((format(printf, 3, 0)));

static int step_error(struct orchd_step *st, enum orchd_step_status status, const char *fmt,
		      va_list ap)
{
	if (!outcome(st, SEV_ERROR))
		return 0;
	st->fail_status = status;
	vsnprintf(st->reason, sizeof(st->reason), fmt, ap);
	step_end_protocol(st);
	return 1;
}

void orchd_step_fail(struct orchd_step *st, enum orchd_step_status status, const char *fmt, ...)
{
	va_list ap;
	int decided;

	va_start(ap, fmt);
	decided = step_error(st, status, fmt, ap);
	va_end(ap);
	if (decided) {
		st->cancel = 1; /* a fetch in flight stops */
		step_terminate(st);
	}
}

/* The exec failed: the child exits 127 by itself, it is not signalled. */
static void step_not_started(struct orchd_step *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void step_not_started(struct orchd_step *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	step_error(st, ORCHD_STEP_SPAWN_ERROR, fmt, ap);
	va_end(ap);
}

void orchd_step_cancel(struct orchd_step *st, const char *reason, int sig, const char *text)
{
	if (st->proc == PROC_REAPED || st->outcome == OUT_CANCELLING ||
	    st->outcome == OUT_CANCELLING_OK)
		return;
	if (st->proc == PROC_NONE && !st->jobs)
		return; /* never started and nothing in flight: nothing to cancel */
	if (outcome(st, SEV_CANCEL))
		snprintf(st->reason, sizeof(st->reason), "%s", text);
	st->cancel = 1; /* a fetch in flight stops */
	if (!sig) {
		step_soft_stop(st, reason);
		return;
	}
	if (st->phase == PHASE_ACTION && st->fd_in >= 0)
		orchd_step_queue(st, op_encode_cancel(reason));
	if (st->proc != PROC_RUNNING)
		return;
	st->proc = PROC_TERM_SENT;
	step_signal(st, sig);
	st->dl_kill = now_ms() + st->grace_ms;
}

static int hello_checks(struct orchd_step *st, json_object *msg);
static void send_action(struct orchd_step *st);

void orchd_step_park(struct orchd_step *st)
{
	st->want_park = 0;
	st->parked = 1;
	st->parked_once = 1;
	st->dl_timeout = st->dl_hello = st->dl_linger = 0;
}

void orchd_step_end_session(struct orchd_step *st)
{
	st->want_park = 0;
	st->parked = 0;
	step_end_protocol(st);
	step_await_exit(st);
}

int orchd_step_session_ok(struct orchd_step *parked)
{
	struct pollfd pfd = {parked->fd_out, POLLIN, 0};

	if (parked->proc != PROC_RUNNING || parked->fd_in < 0 || parked->fd_out < 0 ||
	    op_splitter_buffered(parked->sp_out))
		return 0;
	/* anything on stdout, data or EOF (it exited), ends the session */
	return poll(&pfd, 1, 0) == 0;
}

void orchd_step_adopt(struct orchd_step *st, struct orchd_step *parked)
{
	struct op_splitter *sp;

#define TAKE(field, none)                  \
	do {                               \
		st->field = parked->field; \
		parked->field = none;      \
	} while (0)
	TAKE(workdir, NULL);
	TAKE(pid, 0);
	TAKE(fd_in, -1);
	TAKE(fd_out, -1);
	TAKE(fd_err, -1);
	/* the exec report may not have come yet (the extension can be faster
	 * than its reaper), and it is the same pipe as the reaper's exit
	 * report: the one open copy goes along */
	TAKE(fd_rep, -1);
	TAKE(cgroup, NULL);
	TAKE(hello, NULL);
	TAKE(proc, PROC_NONE);
#undef TAKE
	st->child = parked->child;
	parked->child.report_fd = -1;
	st->output_max = parked->output_max;
	st->cpu_limit_ms = parked->cpu_limit_ms;
	/* a line it started on stderr goes on */
	sp = st->sp_err;
	st->sp_err = parked->sp_err;
	parked->sp_err = sp;
	parked->parked = 0;
	parked->husk = 1;
}

void orchd_step_resume(struct orchd_step *st)
{
	if (hello_checks(st, st->hello) < 0)
		return;
	send_action(st);
}

void orchd_step_spawned(struct orchd_step *st)
{
	st->proc = PROC_RUNNING;
	st->dl_hello = now_ms() + st->hello_ms;
	orchd_step_queue(
		st, op_encode_hello_orchd(OP_PROTOCOL_MIN, OP_PROTOCOL_MAX, st->orchd_version));
	if (stopping(st))
		/* cancelled while its sources were fetched: stop at once */
		step_terminate(st);
}

/* protocol §5: the hello's name is the type the executable was started
 * for (orchd-ext-TYPE); a step id is "TYPE.NAME". */
static int hello_name_differs(struct orchd_step *st, const char *name)
{
	size_t tl = strcspn(st->id, ".");

	if (!st->id[tl] || !name || (strlen(name) == tl && !strncmp(name, st->id, tl)))
		return 0;
	orchd_step_fail(
		st, ORCHD_STEP_PROTOCOL_ERROR,
		"protocol error: hello: the extension calls itself '%s', but it was started "
		"for type '%.*s'",
		name, (int)tl, st->id);
	return 1;
}

/* Does the extension's hello fit this step (protocol §5)?  0, or -1 with
 * the step failed. */
static int hello_checks(struct orchd_step *st, json_object *msg)
{
	char err[OP_ERRMAX];

	switch (op_check_ext_hello(msg, OP_PROTOCOL_MIN, OP_PROTOCOL_MAX, st->orchd_version,
				   st->action, err, sizeof(err))) {
	case OP_HELLO_OK:
		break;
	case OP_HELLO_PROTOCOL:
		orchd_step_fail(st, ORCHD_STEP_INCOMPATIBLE,
				"incompatible extension: %s (a version of the extension "
				"that speaks protocol %d would fit)",
				err, OP_PROTOCOL_MAX);
		return -1;
	case OP_HELLO_VERSION:
		orchd_step_fail(st, ORCHD_STEP_INCOMPATIBLE,
				"incompatible extension: %s (orchd %s or later, or an "
				"older version of the extension, would fit)",
				err, op_get_str(msg, "min_orchd_version"));
		return -1;
	default:
		orchd_step_fail(st, ORCHD_STEP_UNSUPPORTED, "%s", err);
		return -1;
	}
	if (hello_name_differs(st, op_get_str(msg, "name")))
		return -1;
	if (st->action_files && !op_hello_has_feature(msg, OP_FEATURE_FILES)) {
		orchd_step_fail(st, ORCHD_STEP_INCOMPATIBLE,
				"incompatible extension: the action message does not fit in "
				"one protocol line (at most %d bytes) and extension %s %s "
				"does not take values in files (its hello lists no feature "
				"\"%s\"): its %s",
				OP_MAX_LINE, op_get_str(msg, "name"), op_get_str(msg, "version"),
				OP_FEATURE_FILES, st->action_files);
		return -1;
	}
	return 0;
}

/* The hello checked out: the action goes (unless it is being stopped). */
static void send_action(struct orchd_step *st)
{
	if (stopping(st)) {
		/* stopped during the handshake: no action */
		step_end_protocol(st);
		step_terminate(st);
		return;
	}
	st->phase = PHASE_ACTION;
	st->action_ms = now_ms();
	orchd_step_queue(st, st->action_line);
	st->action_line = NULL;
}

/*
 * The value of a state or output message: field inline, or the JSON of the
 * file it names in its workdir (PROTOCOL.md §4.1), read now.  *out gets a
 * new reference (NULL: null).  0, or -1 with the step failed.
 */
static int value_of(struct orchd_step *st, json_object *msg, const char *field, json_object **out)
{
	const char *file = op_get_str(msg, "file");
	char err[OP_ERRMAX];

	if (!file) {
		*out = json_object_get(op_get(msg, field));
		return 0;
	}
	if (op_read_value_file(st->workdir, file, OP_MAX_FILE_VALUE, out, err, sizeof(err)) == 0)
		return 0;
	orchd_step_fail(st, ORCHD_STEP_PROTOCOL_ERROR, "protocol error: %s: field 'file': %s",
			op_get_str(msg, "type"), err);
	return -1;
}

/* The one dispatch function for messages from an extension. */
static void step_message(struct orchd_step *st, enum op_msg_type type, json_object *msg)
{
	if (st->phase == PHASE_HELLO && type != OP_MSG_HELLO && type != OP_MSG_LOG &&
	    type != OP_MSG_ERROR) {
		orchd_step_fail(st, ORCHD_STEP_PROTOCOL_ERROR,
				"protocol error: expected hello, got %s", op_msg_type_name(type));
		return;
	}
	switch (type) {
	case OP_MSG_HELLO:
		if (st->phase != PHASE_HELLO) {
			orchd_step_fail(st, ORCHD_STEP_PROTOCOL_ERROR,
					"protocol error: unexpected hello");
			return;
		}
		st->dl_hello = 0;
		if (hello_checks(st, msg) < 0)
			return;
		st->hello = json_object_get(msg);
		send_action(st);
		break;
	case OP_MSG_LOG: {
		int lvl = orchd_log_level_from_name(op_get_str(msg, "level"));

		step_log_src(st, lvl < 0 ? ORCHD_LOG_INFO : (enum orchd_log_level)lvl,
			     ORCHD_LOGSRC_PROTOCOL, op_get_str(msg, "message"));
		break;
	}
	case OP_MSG_PROGRESS: {
		int pct = (int)op_get_int(msg, "percent", -1);
		const char *m = op_get_str(msg, "message");

		if (st->hooks.progress) {
			st->hooks.progress(st->hooks.cb_data, st->ctx, st->id, pct, m);
		} else {
			char *t = pct >= 0 ? xasprintf("%d%% %s", pct, m ? m : "")
					   : xstrdup(m ? m : "");

			step_log_src(st, ORCHD_LOG_INFO, ORCHD_LOGSRC_PROTOCOL, t);
			free(t);
		}
		break;
	}
	case OP_MSG_OUTPUT: {
		const char *key = op_get_str(msg, "key");
		json_object *v;
		int secret = op_get_bool(msg, "secret", false);

		size_t vlen = 0;

		if (value_of(st, msg, "value", &v) < 0)
			return;
		/* outputs are kept in memory and in the record: bounded */
		json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &vlen);
		st->output_values += vlen;
		if (st->output_values > ORCHD_MAX_OUTPUT_BYTES) {
			json_object_put(v);
			orchd_step_fail(st, ORCHD_STEP_PROTOCOL_ERROR,
					"protocol error: output: the output values sent add up to "
					"more than %d MiB",
					ORCHD_MAX_OUTPUT_BYTES >> 20);
			return;
		}
		json_object_object_add(st->outputs, key, v);
		if (secret)
			json_object_object_add(st->secrets, key, json_object_new_boolean(1));
		else
			json_object_object_del(st->secrets, key);
		if (st->hooks.output)
			st->hooks.output(st->hooks.cb_data, st->ctx, st->id, key, v, secret);
		break;
	}
	case OP_MSG_MASK:
		if (st->hooks.mask)
			st->hooks.mask(st->hooks.cb_data, st->ctx, op_get_str(msg, "value"));
		break;
	case OP_MSG_STATE: {
		json_object *v;

		if (value_of(st, msg, "state", &v) < 0)
			return;
		json_object_put(st->state);
		st->state = v;
		st->has_state = 1;
		st->state_secret = op_get_bool(msg, "secret", false);
		break;
	}
	case OP_MSG_ERROR: {
		const char *m = op_get_str(msg, "message");

		free(st->error_message);
		st->error_message = xstrdup(m ? m : "");
		if (op_get_bool(msg, "retryable", false))
			st->retryable = 1;
		step_log_src(st, ORCHD_LOG_ERROR, ORCHD_LOGSRC_PROTOCOL, st->error_message);
		if (st->phase == PHASE_HELLO)
			/* protocol §5.3: it speaks no version orchd offers */
			orchd_step_fail(
				st, ORCHD_STEP_INCOMPATIBLE,
				"incompatible extension: it refused the handshake: %s (orchd "
				"%s speaks protocol %d..%d)",
				st->error_message, st->orchd_version, OP_PROTOCOL_MIN,
				OP_PROTOCOL_MAX);
		break;
	}
	case OP_MSG_RESULT: {
		const char *rs = op_get_str(msg, "status");

		if (st->result) {
			orchd_step_log(st, ORCHD_LOG_WARNING, "ignoring a second result message");
			break;
		}
		st->result = json_object_get(msg);
		outcome(st, rs && !strcmp(rs, "success") ? SEV_RESULT_OK : SEV_RESULT_FAILED);
		if (st->park && st->hello && op_hello_has_feature(st->hello, OP_FEATURE_SESSION) &&
		    st->proc == PROC_RUNNING && st->fd_in >= 0) {
			/* its session may wait for the next action: the
			 * supervisor decides (orchd_step_park) */
			st->phase = PHASE_DONE;
			st->want_park = 1;
			break;
		}
		step_end_protocol(st);
		step_await_exit(st);
		break;
	}
	case OP_MSG_REQUEST: {
		const char *op = op_get_str(msg, "op");

		if (st->phase != PHASE_ACTION || st->fd_in < 0) {
			orchd_step_log(st, ORCHD_LOG_WARNING,
				       "ignoring a request after the result");
			break;
		}
		orchd_step_log(st, ORCHD_LOG_DEBUG, "request %lld: %s", op_get_int(msg, "id", 0),
			       op ? op : "");
		if (st->jobs >= ORCHD_MAX_REQUESTS) {
			/* back-pressure: orchd does not queue without bound */
			orchd_step_fail(st, ORCHD_STEP_PROTOCOL_ERROR,
					"protocol error: more than %d requests wait for their "
					"responses (read them on stdin before sending more)",
					ORCHD_MAX_REQUESTS);
			break;
		}
		if (stopping(st) || !st->on_request) {
			/* no fetch for a step that is being stopped */
			orchd_step_queue(st, orchd_sources_refuse(msg, "cancelled"));
			break;
		}
		st->on_request(st->request_arg, st, json_object_get(msg));
		break;
	}
	default:
		orchd_step_fail(st, ORCHD_STEP_PROTOCOL_ERROR,
				"protocol error: unexpected %s message", op_msg_type_name(type));
		break;
	}
}

static void step_stdout_line(struct orchd_step *st, const char *line, size_t len)
{
	struct op_parsed p;

	if (ignoring_stdout(st))
		return;
	op_parse_line(OP_FROM_EXT, line, len, &p);
	if (st->want_park && p.verdict != OP_EMPTY) {
		/* a session waits in silence (PROTOCOL.md §7.6) */
		orchd_step_log(st, ORCHD_LOG_WARNING,
			       "the extension wrote on stdout after its result: its session ends");
		orchd_step_end_session(st);
	}
	switch (p.verdict) {
	case OP_EMPTY:
		break;
	case OP_NON_PROTOCOL: {
		char *t = xasprintf("non-protocol output: %.*s", (int)len, line);

		step_log_src(st, ORCHD_LOG_WARNING, ORCHD_LOGSRC_STDOUT_TEXT, t);
		free(t);
		break;
	}
	case OP_PROTOCOL_ERROR:
		orchd_step_fail(st, ORCHD_STEP_PROTOCOL_ERROR, "protocol error: %s", p.error);
		break;
	case OP_VALID:
		step_message(st, p.type, p.msg);
		break;
	}
	op_parsed_release(&p);
}

/* A stderr line is free text: logged as it is when it is UTF-8 without NUL
 * bytes, else with those bytes as U+FFFD (PROTOCOL.md §4). */
/* stderr text as it may be logged: text itself when it is UTF-8 without
 * NUL bytes, else a cleaned copy in st->err_clean (*len updated); NULL when
 * that copy could not be made (the text is dropped, not cut). */
static char *stderr_text(struct orchd_step *st, char *text, size_t *len)
{
	if (op_utf8_valid(text, *len))
		return text;
	op_buf_reset(&st->err_clean);
	if (op_utf8_clean_into(&st->err_clean, text, *len) < 0)
		return NULL;
	*len = st->err_clean.len;
	return st->err_clean.buf;
}

static void step_stderr_line(struct orchd_step *st, const char *line, size_t len)
{
	/* the splitter's line stays unchanged: only read */
	const char *t = stderr_text(st, (char *)(uintptr_t)line, &len);

	if (t)
		step_log_src(st, ORCHD_LOG_INFO, ORCHD_LOGSRC_STDERR, t);
}

static void step_drain_lines(struct orchd_step *st, int err)
{
	struct op_splitter *sp = err ? st->sp_err : st->sp_out;
	const char *line;
	size_t len;
	enum op_line_status ls;

	while ((ls = op_splitter_next(sp, &line, &len)) != OP_LINE_NONE) {
		if (err)
			step_stderr_line(st, line, len);
		else if (ls == OP_LINE_TOO_LONG)
			orchd_step_fail(st, ORCHD_STEP_PROTOCOL_ERROR,
					"protocol error: line exceeds %d bytes", OP_MAX_LINE);
		else
			step_stdout_line(st, line, len);
	}
}

/* Whole stderr lines, logged in one call when the caller takes them so. */
static void step_stderr_lines(struct orchd_step *st, char *text, size_t len)
{
	if (!(text = stderr_text(st, text, &len)))
		return;
	if (st->hooks.log_lines) {
		st->hooks.log_lines(st->hooks.cb_data, st->ctx, st->id, ORCHD_LOG_INFO,
				    ORCHD_LOGSRC_STDERR, text, len);
		return;
	}
	for (char *p = text, *nl; p < text + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(text + len - p));
		*nl = '\0';
		step_log_src(st, ORCHD_LOG_INFO, ORCHD_LOGSRC_STDERR, p);
	}
}

/*
 * stderr is read in chunks of whole lines where it can: the line the
 * splitter holds is completed through it, the whole lines after it go in
 * one call, and what follows the last '\n' waits in the splitter.  A chunk
 * is far below OP_MAX_LINE, so no line of it needs cutting.
 */
static void step_stderr_chunk(struct orchd_step *st, char *data, size_t n)
{
	char *nl, *last;

	if (op_splitter_buffered(st->sp_err) && (nl = memchr(data, '\n', n))) {
		size_t k = (size_t)(nl - data) + 1;

		if (op_splitter_feed(st->sp_err, data, k) < 0)
			goto nomem;
		step_drain_lines(st, 1);
		data += k;
		n -= k;
	}
	if (!op_splitter_buffered(st->sp_err) && n && (last = memrchr(data, '\n', n))) {
		size_t k = (size_t)(last - data) + 1;

		step_stderr_lines(st, data, k);
		data += k;
		n -= k;
	}
	if (n && op_splitter_feed(st->sp_err, data, n) < 0)
		goto nomem;
	step_drain_lines(st, 1);
	return;
nomem:
	orchd_step_fail(st, ORCHD_STEP_FAILED, "out of memory reading stderr");
	close_fd(&st->fd_err);
}

static void step_feed(struct orchd_step *st, int err, const char *data, size_t n)
{
	if (op_splitter_feed(err ? st->sp_err : st->sp_out, data, n) < 0) {
		orchd_step_fail(st, ORCHD_STEP_FAILED, "out of memory reading %s",
				err ? "stderr" : "stdout");
		close_fd(err ? &st->fd_err : &st->fd_out);
		return;
	}
	step_drain_lines(st, err);
}

void orchd_step_stdout(struct orchd_step *st, const char *data, size_t n)
{
	if (!ignoring_stdout(st))
		step_feed(st, 0, data, n);
}

void orchd_step_stderr(struct orchd_step *st, char *data, size_t n)
{
	if (n > OP_MAX_LINE)
		step_feed(st, 1, data, n); /* lines may need cutting */
	else
		step_stderr_chunk(st, data, n);
}

void orchd_step_eof(struct orchd_step *st, int err)
{
	op_splitter_finish(err ? st->sp_err : st->sp_out);
	step_drain_lines(st, err);
	if (err) {
		close_fd(&st->fd_err);
		return;
	}
	close_fd(&st->fd_out);
	/* It can never send a result now.  It is probably exiting; if it is
	 * still running after the grace, stop it. */
	if (!st->result && st->proc != PROC_REAPED && !ignoring_stdout(st)) {
		outcome(st, SEV_STDOUT_CLOSED);
		step_end_protocol(st);
		step_await_exit(st);
	}
}

/* The exec report pipe is readable: EOF means exec worked; otherwise the
 * child failed before exec (and exits 127 without saying anything). */
void orchd_step_exec_report(struct orchd_step *st)
{
	int r = op_child_report(&st->child);

	if (r < 0)
		return;
	st->fd_rep = -1;
	if (r == 1)
		return;
	if (st->child.stage == OP_CHILD_CHDIR)
		step_not_started(st, "cannot enter workdir %s: %s", st->workdir,
				 strerror(st->child.errnum));
	else if (st->child.stage == OP_CHILD_SETUP)
		step_not_started(st, "cannot isolate %s: %s", st->exe, strerror(st->child.errnum));
	else
		step_not_started(st, "cannot execute %s: %s", st->exe, strerror(st->child.errnum));
}

void orchd_step_reaped(struct orchd_step *st, int wstatus, const struct rusage *ru)
{
	st->proc = PROC_REAPED;
	st->wstatus = wstatus;
	if (ru)
		st->ru = *ru;
	st->dl_kill = st->dl_linger = st->dl_timeout = st->dl_hello = 0;
	orchd_step_close_stdin(st);
	if (st->fd_out >= 0 || st->fd_err >= 0) {
		long long d = st->grace_ms < ORCHD_DRAIN_MS ? st->grace_ms : ORCHD_DRAIN_MS;

		if (d < ORCHD_MIN_LINGER_MS)
			d = ORCHD_MIN_LINGER_MS;

		st->dl_drain = now_ms() + d;
	}
}

void orchd_step_force_drain(struct orchd_step *st)
{
	char buf[4096];
	ssize_t n;

	orchd_step_log(st, ORCHD_LOG_WARNING,
		       "the extension exited but left processes holding its output open; "
		       "killing them");
	kill(-st->pid, SIGKILL);
	/* what is already in the pipes is still read */
	for (int err = 0; err < 2; err++) {
		int *fd = err ? &st->fd_err : &st->fd_out;

		while (*fd >= 0 && (n = read(*fd, buf, sizeof(buf))) > 0) {
			if (err)
				orchd_step_stderr(st, buf, (size_t)n);
			else
				orchd_step_stdout(st, buf, (size_t)n);
		}
		if (*fd >= 0)
			orchd_step_eof(st, err);
	}
	st->dl_drain = 0;
}

void orchd_step_deadlines(struct orchd_step *st, long long now)
{
	if (st->dl_timeout && now >= st->dl_timeout) {
		st->dl_timeout = 0;
		if (st->proc != PROC_REAPED && outcome(st, SEV_TIMEOUT)) {
			st->cancel = 1; /* a fetch in flight stops */
			step_soft_stop(st, "timeout");
		}
	}
	if (st->dl_hello && now >= st->dl_hello) {
		char d[32];

		st->dl_hello = 0;
		format_ms(d, sizeof(d), st->hello_ms);
		if (st->phase == PHASE_HELLO && st->proc == PROC_RUNNING)
			orchd_step_fail(st, ORCHD_STEP_PROTOCOL_ERROR,
					"protocol error: no hello from the extension within %s", d);
	}
	if (st->dl_linger && now >= st->dl_linger) {
		st->dl_linger = 0;
		if (st->proc == PROC_RUNNING) {
			outcome(st, SEV_LINGER);
			step_terminate(st);
		}
	}
	if (st->dl_kill && now >= st->dl_kill)
		orchd_step_kill(st);
	if (st->dl_drain && now >= st->dl_drain)
		orchd_step_force_drain(st);
}

long long orchd_step_next_deadline(const struct orchd_step *st)
{
	const long long d[] = {st->dl_timeout, st->dl_kill, st->dl_drain, st->dl_linger,
			       st->dl_hello};
	long long dl = -1;

	for (size_t j = 0; j < ARRAY_SIZE(d); j++)
		if (d[j] && (dl < 0 || d[j] < dl))
			dl = d[j];
	return dl;
}

int orchd_step_finished(const struct orchd_step *st)
{
	return (st->proc == PROC_REAPED || st->proc == PROC_NONE) && st->fd_out < 0 &&
	       st->fd_err < 0 && st->fd_rep < 0 && !st->jobs;
}

/* --- the result ------------------------------------------------------------ */

static long long tv_ms(const struct timeval *tv)
{
	return (long long)tv->tv_sec * 1000 + tv->tv_usec / 1000;
}

/* "exit status N" or "killed by signal N (SIGNAME)". */
static void describe_exit(char *buf, size_t n, int wstatus)
{
	char sig[48];

	if (WIFSIGNALED(wstatus))
		snprintf(buf, n, "killed by %s",
			 op_signal_text(WTERMSIG(wstatus), sig, sizeof(sig)));
	else
		snprintf(buf, n, "exit status %d", WEXITSTATUS(wstatus));
}

void orchd_step_result(const struct orchd_step *st, struct orchd_step_result *res)
{
	int ran = st->pid > 0 && st->proc == PROC_REAPED;
	/* a session that waits for its next action is as good as exited */
	int exited0 =
		st->parked_once || (ran && WIFEXITED(st->wstatus) && WEXITSTATUS(st->wstatus) == 0);
	char ex[64], dur[64];

	memset(res, 0, sizeof(*res));
	res->exit_status = -1;
	if (ran)
		res->exit_status = WIFSIGNALED(st->wstatus) ? 128 + WTERMSIG(st->wstatus)
							    : WEXITSTATUS(st->wstatus);
	else if (st->parked_once)
		res->exit_status = 0;
	describe_exit(ex, sizeof(ex), st->wstatus);
	res->retryable = st->retryable;
	res->has_result = st->result != NULL;
	res->changed = -1;
	if (st->result) {
		if (op_has(st->result, "changed"))
			res->changed = op_get_bool(st->result, "changed", false);
		res->summary = op_get_str(st->result, "summary");
		res->describe = op_get(st->result, "describe");
		res->errors = op_get(st->result, "errors");
	}
	res->result = st->result;
	res->outputs = st->outputs;
	res->secrets = st->secrets;
	res->has_state = st->has_state;
	res->state_secret = st->state_secret;
	res->state = st->state;
	res->error_message = st->error_message;
	if (ran) {
		res->cpu_user_ms = tv_ms(&st->ru.ru_utime);
		res->cpu_sys_ms = tv_ms(&st->ru.ru_stime);
		res->max_rss_kb = st->ru.ru_maxrss;
	}
	res->wall_ms = now_ms() - st->start_ms;
	res->setup_ms = st->action_ms ? st->action_ms - st->start_ms : -1;
	res->pid = st->pid > 0 ? st->pid : 0;
	res->workdir = st->workdir;

	/* Read off the final outcome (and, where it matters, the exit). */
	res->status = ORCHD_STEP_FAILED;
	switch (st->outcome) {
	case OUT_ABORTED:
		res->status = st->fail_status;
		snprintf(res->reason, sizeof(res->reason), "%s", st->reason);
		break;
	case OUT_TIMING_OUT:
		res->status = ORCHD_STEP_TIMED_OUT;
		format_ms(dur, sizeof(dur), st->timeout_ms);
		snprintf(res->reason, sizeof(res->reason), "timed out after %s", dur);
		break;
	case OUT_CANCELLING_OK:
		if (exited0) {
			res->status = ORCHD_STEP_SUCCESS;
			break;
		}
		/* the cancel decides */
		__attribute__((fallthrough));
	case OUT_CANCELLING:
		res->status = ORCHD_STEP_CANCELLED;
		snprintf(res->reason, sizeof(res->reason), "%s", st->reason);
		break;
	case OUT_RESULT_OK:
		if (exited0) {
			res->status = ORCHD_STEP_SUCCESS;
			break;
		}
		snprintf(res->reason, sizeof(res->reason), "%s%s after a success result",
			 WIFSIGNALED(st->wstatus) ? "" : "exited with ", ex);
		break;
	case OUT_LINGERED:
		format_ms(dur, sizeof(dur), st->grace_ms);
		snprintf(res->reason, sizeof(res->reason),
			 "did not exit within %s after its result", dur);
		break;
	case OUT_RESULT_FAILED:
		if (res->summary && *res->summary)
			snprintf(res->reason, sizeof(res->reason), "extension reported failure: %s",
				 res->summary);
		else
			snprintf(res->reason, sizeof(res->reason), "extension reported failure");
		break;
	case OUT_SILENT_KILLED:
		snprintf(res->reason, sizeof(res->reason), "closed stdout without a result");
		break;
	case OUT_RUNNING:
	case OUT_NO_RESULT:
	case OUT_NSTATES:
		if (st->cpu_limit_ms && WIFSIGNALED(st->wstatus) &&
		    (WTERMSIG(st->wstatus) == SIGXCPU ||
		     (WTERMSIG(st->wstatus) == SIGKILL &&
		      res->cpu_user_ms + res->cpu_sys_ms >= st->cpu_limit_ms))) {
			format_ms(dur, sizeof(dur), st->cpu_limit_ms);
			snprintf(res->reason, sizeof(res->reason),
				 "exceeded its cpu_time limit (%s)", dur);
			break;
		}
		if (WIFSIGNALED(st->wstatus))
			snprintf(res->reason, sizeof(res->reason), "%s", ex);
		else
			snprintf(res->reason, sizeof(res->reason), "exited without a result (%s)",
				 ex);
		if (st->error_message) {
			size_t l = strlen(res->reason);

			snprintf(res->reason + l, sizeof(res->reason) - l, ": %s",
				 st->error_message);
		}
		break;
	}
	/* a limit its cgroup saw hit comes first: it is the cause */
	if (st->limit_hit[0] && res->status != ORCHD_STEP_SUCCESS &&
	    res->status != ORCHD_STEP_CANCELLED) {
		size_t hl = strlen(st->limit_hit), rl = strlen(res->reason);
		size_t sep = rl ? 2 : 0;

		if (hl + sep + rl >= sizeof(res->reason))
			rl = sizeof(res->reason) - 1 - hl - sep;
		memmove(res->reason + hl + sep, res->reason, rl);
		res->reason[hl + sep + rl] = '\0';
		memcpy(res->reason, st->limit_hit, hl);
		if (sep)
			memcpy(res->reason + hl, "; ", 2);
	}
}
