/*
 * handlers/extension: the process-isolated supervisor (see extension.h).
 *
 * Each step is a small state machine driven by events from one poll(2)
 * loop: readable stdout/stderr, writable stdin, SIGCHLD (read from the
 * signalfd, then wait4(-1, WNOHANG) until nothing is left), SIGINT/SIGTERM,
 * and deadlines (timeout, SIGTERM -> SIGKILL grace, pipe drain after reap).
 * A step is finished when it is reaped and both output pipes are closed.
 */
#include "handlers/extension.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/sources.h"
#include "orchd_protocol.h"
#include "util.h"

#define READ_CHUNK 65536
/* Chunks read per readable fd per loop turn (fairness vs. throughput). */
#define READS_PER_TURN 4

enum step_phase {
	PHASE_HELLO = 0, /* hello sent, waiting for the extension's hello */
	PHASE_ACTION,	 /* action sent, waiting for the result */
	PHASE_DONE,	 /* result received, or the step is being stopped */
};

struct step {
	char *id;
	char *exe;
	char *instance;
	char *workdir;
	void *ctx;
	enum op_action action;
	int keep_workdir;
	long long grace_ms;
	long long timeout_ms;
	long long start_ms;

	pid_t pid;
	struct op_child child;	   /* how it was started (exec report) */
	int fd_in, fd_out, fd_err; /* -1 when closed */
	int fd_rep;		   /* exec report: errno, or EOF once exec worked */
	struct op_buf wq;	   /* queued bytes for stdin */
	char *action_line;	   /* sent once the hello checks out */
	struct op_splitter *sp_out;
	struct op_splitter *sp_err;
	enum step_phase phase;

	/* deadlines (now_ms() time; 0: none) */
	long long dl_timeout;
	long long dl_kill;   /* SIGKILL the group */
	long long dl_drain;  /* after reap: stop waiting for EOF */
	long long dl_linger; /* after result / stdout EOF: SIGTERM if still running */
	long long dl_term;   /* after a cancel message: SIGTERM if still running */

	int reaped;
	int wstatus;
	struct rusage ru;
	int term_sent, kill_sent;
	int timed_out;
	int cancelled; /* 0, or the cancel cause */
	char *cancel_reason;
	int stdout_eof_no_result;
	int linger_term;   /* SIGTERMed because it did not exit when it should */
	char *cancel_text; /* reason shown in the result */
	int drained_by_force;
	int ignore_stdout;

	/* failure decided by orchd (protocol error, spawn error) */
	enum orchd_step_status fail_status;
	char fail_reason[640];
	int failed;

	/* collected */
	json_object *outputs;
	json_object *secrets;
	json_object *state;
	int has_state;
	int state_secret;
	json_object *result;
	char *error_message;
	int retryable;
};

struct orchd_supervisor {
	struct orchd_supervisor_opts opts;
	char *orchd_version;
	int sfd;
	sigset_t old_mask;
	struct rlimit old_nofile; /* restored in children */
	int have_nofile;
	struct sigaction old_pipe, old_hup;
	struct step **steps;
	size_t nsteps, asteps;
	struct step **pending; /* finished, done callback not yet run */
	size_t npending, apending;
	struct pollfd *pfd;
	struct step **pstep;
	int *pwhich;
	size_t apfd;
	int interrupted;
	int nsignals;
	char buf[READ_CHUNK];
};

static const char *const status_names[] = {
	"success", "failed", "timed out", "cancelled", "spawn error", "protocol error",
};

const char *orchd_step_status_name(enum orchd_step_status s)
{
	if ((size_t)s >= ARRAY_SIZE(status_names))
		return "unknown";
	return status_names[s];
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

static char **build_env(const struct orchd_step_spec *spec, const char *workdir)
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
	return env;
}

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* --- step lifetime ------------------------------------------------------- */

static void step_free(struct step *st)
{
	if (!st)
		return;
	close_fd(&st->fd_in);
	close_fd(&st->fd_out);
	close_fd(&st->fd_err);
	close_fd(&st->fd_rep);
	op_buf_release(&st->wq);
	op_splitter_free(st->sp_out);
	op_splitter_free(st->sp_err);
	json_object_put(st->outputs);
	json_object_put(st->secrets);
	json_object_put(st->state);
	json_object_put(st->result);
	free(st->error_message);
	free(st->cancel_reason);
	free(st->cancel_text);
	free(st->action_line);
	free(st->id);
	free(st->exe);
	free(st->instance);
	free(st->workdir);
	free(st);
}

static void step_fail(struct step *st, enum orchd_step_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record the first failure decided by orchd (later ones are consequences). */
static void step_fail(struct step *st, enum orchd_step_status status, const char *fmt, ...)
{
	va_list ap;
	if (st->failed)
		return;
	st->failed = 1;
	st->fail_status = status;
	va_start(ap, fmt);
	vsnprintf(st->fail_reason, sizeof(st->fail_reason), fmt, ap);
	va_end(ap);
}

static void step_signal(struct step *st, int sig)
{
	if (st->pid > 0)
		kill(-st->pid, sig);
}

static void step_kill(struct step *st)
{
	if (st->kill_sent)
		return;
	st->kill_sent = 1;
	st->dl_kill = 0;
	step_signal(st, SIGKILL);
}

/* SIGTERM the group now, SIGKILL after the grace. */
static void step_terminate(struct step *st)
{
	if (st->term_sent || st->kill_sent)
		return;
	st->term_sent = 1;
	step_signal(st, SIGTERM);
	st->dl_kill = now_ms() + st->grace_ms;
}

static void step_close_stdin(struct step *st)
{
	close_fd(&st->fd_in);
	op_buf_reset(&st->wq);
}

static void step_queue(struct step *st, char *line)
{
	if (!line)
		return;
	if (st->fd_in >= 0 && op_buf_addstr(&st->wq, line) < 0)
		step_close_stdin(st);
	free(line);
}

/* Stop a step orchd gave up on: nothing more is sent, stdout is ignored. */
static void step_stop(struct step *st)
{
	st->phase = PHASE_DONE;
	st->ignore_stdout = 1;
	step_close_stdin(st);
	step_terminate(st);
}

/*
 * Ask the extension to stop (protocol "Cancellation"): when the action was
 * sent, a cancel message now, SIGTERM to the group after the grace and
 * SIGKILL after another grace; before that (handshake), SIGTERM at once.
 */
static void step_soft_stop(struct step *st, const char *reason)
{
	if (st->reaped || st->term_sent || st->kill_sent)
		return;
	if (st->phase == PHASE_ACTION && st->fd_in >= 0) {
		step_queue(st, op_encode_cancel(reason));
		if (!st->dl_term)
			st->dl_term = now_ms() + st->grace_ms;
	} else {
		step_terminate(st);
	}
}

/* Cancel a step.  sig 0: soft stop (above); else forward sig to the group
 * at once along with the cancel message (orchd itself was signalled), and
 * SIGKILL after the grace.  text is what the result will say. */
static void step_cancel(struct step *st, const char *reason, int sig, const char *text)
{
	if (st->cancelled || st->pid <= 0 || st->reaped)
		return;
	st->cancelled = 1;
	st->cancel_reason = xstrdup(reason);
	st->cancel_text = xstrdup(text);
	if (!sig) {
		step_soft_stop(st, reason);
		return;
	}
	if (st->phase == PHASE_ACTION && st->fd_in >= 0)
		step_queue(st, op_encode_cancel(reason));
	if (st->term_sent || st->kill_sent)
		return;
	st->term_sent = 1;
	step_signal(st, sig);
	st->dl_kill = now_ms() + st->grace_ms;
}

static void sup_log(struct orchd_supervisor *sup, struct step *st, enum orchd_log_level level,
		    enum orchd_log_source src, const char *text)
{
	if (sup->opts.log)
		sup->opts.log(sup->opts.cb_data, st->ctx, st->id, level, src, text);
}

static void sup_logf(struct orchd_supervisor *sup, struct step *st, enum orchd_log_level level,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void sup_logf(struct orchd_supervisor *sup, struct step *st, enum orchd_log_level level,
		     const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sup_log(sup, st, level, ORCHD_LOGSRC_ORCHD, buf);
}

/* --- protocol ------------------------------------------------------------ */

/* The one dispatch function for messages from an extension. */
static void step_message(struct orchd_supervisor *sup, struct step *st, enum op_msg_type type,
			 json_object *msg)
{
	char err[OP_ERRMAX];

	if (st->phase == PHASE_HELLO && type != OP_MSG_HELLO && type != OP_MSG_LOG &&
	    type != OP_MSG_ERROR) {
		step_fail(st, ORCHD_STEP_PROTOCOL_ERROR, "protocol error: expected hello, got %s",
			  op_msg_type_name(type));
		step_stop(st);
		return;
	}
	switch (type) {
	case OP_MSG_HELLO:
		if (st->phase != PHASE_HELLO) {
			step_fail(st, ORCHD_STEP_PROTOCOL_ERROR,
				  "protocol error: unexpected hello");
			step_stop(st);
			return;
		}
		if (op_check_ext_hello(msg, OP_PROTOCOL_MIN, OP_PROTOCOL_MAX, sup->orchd_version,
				       st->action, err, sizeof(err)) < 0) {
			step_fail(st, ORCHD_STEP_PROTOCOL_ERROR, "%s", err);
			step_stop(st);
			return;
		}
		if (st->cancelled || st->timed_out) {
			/* stopped during the handshake: no action */
			step_stop(st);
			return;
		}
		st->phase = PHASE_ACTION;
		step_queue(st, st->action_line);
		st->action_line = NULL;
		break;
	case OP_MSG_LOG: {
		int lvl = orchd_log_level_from_name(op_get_str(msg, "level"));
		sup_log(sup, st, lvl < 0 ? ORCHD_LOG_INFO : (enum orchd_log_level)lvl,
			ORCHD_LOGSRC_PROTOCOL, op_get_str(msg, "message"));
		break;
	}
	case OP_MSG_PROGRESS: {
		int pct = (int)op_get_int(msg, "percent", -1);
		const char *m = op_get_str(msg, "message");
		if (sup->opts.progress)
			sup->opts.progress(sup->opts.cb_data, st->ctx, st->id, pct, m);
		else {
			char *t = pct >= 0 ? xasprintf("%d%% %s", pct, m ? m : "")
					   : xstrdup(m ? m : "");
			sup_log(sup, st, ORCHD_LOG_INFO, ORCHD_LOGSRC_PROTOCOL, t);
			free(t);
		}
		break;
	}
	case OP_MSG_OUTPUT: {
		const char *key = op_get_str(msg, "key");
		json_object *v = op_get(msg, "value");
		int secret = op_get_bool(msg, "secret", false);
		json_object_object_add(st->outputs, key, json_object_get(v));
		if (secret)
			json_object_object_add(st->secrets, key, json_object_new_boolean(1));
		else
			json_object_object_del(st->secrets, key);
		if (sup->opts.output)
			sup->opts.output(sup->opts.cb_data, st->ctx, st->id, key, v, secret);
		break;
	}
	case OP_MSG_STATE:
		json_object_put(st->state);
		st->state = json_object_get(op_get(msg, "state"));
		st->has_state = 1;
		st->state_secret = op_get_bool(msg, "secret", false);
		break;
	case OP_MSG_ERROR: {
		const char *m = op_get_str(msg, "message");
		free(st->error_message);
		st->error_message = xstrdup(m ? m : "");
		if (op_get_bool(msg, "retryable", false))
			st->retryable = 1;
		sup_log(sup, st, ORCHD_LOG_ERROR, ORCHD_LOGSRC_PROTOCOL, st->error_message);
		break;
	}
	case OP_MSG_RESULT:
		if (st->result) {
			sup_logf(sup, st, ORCHD_LOG_WARNING, "ignoring a second result message");
			break;
		}
		st->result = json_object_get(msg);
		st->phase = PHASE_DONE;
		step_close_stdin(st);
		if (!st->reaped && !st->dl_linger)
			st->dl_linger = now_ms() + st->grace_ms;
		break;
	case OP_MSG_REQUEST: {
		const char *op = op_get_str(msg, "op");

		if (st->phase != PHASE_ACTION || st->fd_in < 0) {
			sup_logf(sup, st, ORCHD_LOG_WARNING, "ignoring a request after the result");
			break;
		}
		sup_logf(sup, st, ORCHD_LOG_DEBUG, "request %lld: %s", op_get_int(msg, "id", 0),
			 op ? op : "");
		if (st->cancelled || st->timed_out) {
			/* no blocking fetch for a step that is being stopped */
			step_queue(st, orchd_sources_refuse(msg, "cancelled"));
			break;
		}
		step_queue(st, orchd_sources_request(msg, st->workdir, NULL));
		break;
	}
	default:
		step_fail(st, ORCHD_STEP_PROTOCOL_ERROR, "protocol error: unexpected %s message",
			  op_msg_type_name(type));
		step_stop(st);
		break;
	}
}

static void step_stdout_line(struct orchd_supervisor *sup, struct step *st, const char *line,
			     size_t len)
{
	struct op_parsed p;

	if (st->ignore_stdout)
		return;
	op_parse_line(OP_FROM_EXT, line, len, &p);
	switch (p.verdict) {
	case OP_EMPTY:
		break;
	case OP_NON_PROTOCOL: {
		char *t = xasprintf("non-protocol output: %.*s", (int)len, line);
		sup_log(sup, st, ORCHD_LOG_WARNING, ORCHD_LOGSRC_STDOUT_TEXT, t);
		free(t);
		break;
	}
	case OP_PROTOCOL_ERROR:
		step_fail(st, ORCHD_STEP_PROTOCOL_ERROR, "protocol error: %s", p.error);
		step_stop(st);
		break;
	case OP_VALID:
		step_message(sup, st, p.type, p.msg);
		break;
	}
	op_parsed_release(&p);
}

static void step_drain_lines(struct orchd_supervisor *sup, struct step *st, int err)
{
	struct op_splitter *sp = err ? st->sp_err : st->sp_out;
	const char *line;
	size_t len;
	enum op_line_status ls;

	while ((ls = op_splitter_next(sp, &line, &len)) != OP_LINE_NONE) {
		if (err) {
			sup_log(sup, st, ORCHD_LOG_INFO, ORCHD_LOGSRC_STDERR, line);
		} else if (ls == OP_LINE_TOO_LONG) {
			if (!st->ignore_stdout) {
				step_fail(st, ORCHD_STEP_PROTOCOL_ERROR,
					  "protocol error: line longer than %d bytes", OP_MAX_LINE);
				step_stop(st);
			}
		} else {
			step_stdout_line(sup, st, line, len);
		}
	}
}

static void step_eof(struct orchd_supervisor *sup, struct step *st, int err)
{
	op_splitter_finish(err ? st->sp_err : st->sp_out);
	step_drain_lines(sup, st, err);
	if (err) {
		close_fd(&st->fd_err);
		return;
	}
	close_fd(&st->fd_out);
	/* It can never send a result now.  It is probably exiting; if it is
	 * still running after the grace, stop it. */
	if (!st->result && !st->reaped && !st->ignore_stdout) {
		st->stdout_eof_no_result = 1;
		st->phase = PHASE_DONE;
		step_close_stdin(st);
		if (!st->dl_linger)
			st->dl_linger = now_ms() + st->grace_ms;
	}
}

static void step_read(struct orchd_supervisor *sup, struct step *st, int err)
{
	int *fd = err ? &st->fd_err : &st->fd_out;
	struct op_splitter *sp = err ? st->sp_err : st->sp_out;

	for (int i = 0; i < READS_PER_TURN && *fd >= 0; i++) {
		ssize_t n = read(*fd, sup->buf, sizeof(sup->buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			step_eof(sup, st, err);
			return;
		}
		if (n == 0) {
			step_eof(sup, st, err);
			return;
		}
		if (!err && st->ignore_stdout)
			continue;
		if (op_splitter_feed(sp, sup->buf, (size_t)n) < 0) {
			step_fail(st, ORCHD_STEP_FAILED, "out of memory reading %s",
				  err ? "stderr" : "stdout");
			step_stop(st);
			close_fd(fd);
			return;
		}
		step_drain_lines(sup, st, err);
		if ((size_t)n < sizeof(sup->buf))
			return;
	}
}

static void step_write(struct step *st)
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
			step_close_stdin(st);
			return;
		}
		op_buf_consume(&st->wq, (size_t)n);
	}
	if (st->fd_in >= 0 && !st->wq.len && st->phase == PHASE_DONE)
		step_close_stdin(st);
}

/* The exec report pipe is readable: EOF means exec worked; otherwise the
 * child failed before exec (and exits 127 without saying anything). */
static void step_read_report(struct step *st)
{
	int r = op_child_report(&st->child);

	if (r < 0)
		return;
	st->fd_rep = -1;
	if (r == 0) {
		if (st->child.stage == OP_CHILD_CHDIR)
			step_fail(st, ORCHD_STEP_SPAWN_ERROR, "cannot enter workdir %s: %s",
				  st->workdir, strerror(st->child.errnum));
		else
			step_fail(st, ORCHD_STEP_SPAWN_ERROR, "cannot execute %s: %s", st->exe,
				  strerror(st->child.errnum));
		st->phase = PHASE_DONE;
		st->ignore_stdout = 1;
		step_close_stdin(st);
	}
}

/* --- spawning ------------------------------------------------------------ */

static int make_workdir(const struct orchd_step_spec *spec, char **out, char *err, size_t errlen)
{
	const char *base = spec->workdir_base;
	char *tmpl;

	if (!base) {
		base = getenv("TMPDIR");
		if (!base || !*base)
			base = "/tmp";
		tmpl = xasprintf("%s/orchd-%s.%d.XXXXXX", base, spec->id, spec->attempt);
	} else {
		if (mkdir(base, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", base, strerror(errno));
			return -1;
		}
		tmpl = xasprintf("%s/%s.%d.XXXXXX", base, spec->id, spec->attempt);
	}
	if (!mkdtemp(tmpl)) {
		snprintf(err, errlen, "cannot create workdir %s: %s", tmpl, strerror(errno));
		free(tmpl);
		return -1;
	}
	*out = tmpl;
	return 0;
}

static int spawn(struct orchd_supervisor *sup, struct step *st, char **envp, char *err,
		 size_t errlen)
{
	struct op_child c = OP_CHILD_INIT;
	const char *argv[2] = {st->exe, NULL};

	c.argv = argv;
	c.env = (const char *const *)(void *)envp;
	c.cwd = st->workdir;
	c.in = c.out = c.err = OP_CHILD_PIPE;
	/* its own group, told at once if orchd dies, orchd's original mask
	 * and fd limit; the exec report is read by the loop */
	c.flags = OP_CHILD_PGROUP | OP_CHILD_PDEATHSIG | OP_CHILD_ASYNC;
	c.sigmask = &sup->old_mask;
	c.nofile = sup->have_nofile ? &sup->old_nofile : NULL;
	if (op_child_start(&c) < 0) {
		snprintf(err, errlen, "cannot start %s: %s", st->exe, strerror(c.errnum));
		return -1;
	}
	st->child = c;
	st->pid = c.pid;
	st->fd_in = c.in;
	st->fd_out = c.out;
	st->fd_err = c.err;
	st->fd_rep = c.report_fd;
	return 0;
}

int orchd_supervisor_start(struct orchd_supervisor *sup, const struct orchd_step_spec *spec)
{
	struct step *st;
	char err[600];
	char **envp;

	if (!spec->id || !spec->exe || !op_action_name(spec->action))
		return error("supervisor: step needs an id, an executable and an action");
	if (spec->action != OP_ACTION_DESCRIBE && (!spec->instance || !spec->stack))
		return error("supervisor: step %s needs an instance and a stack", spec->id);
	if (sup->interrupted)
		return error("supervisor: not starting %s: interrupted", spec->id);

	st = xcalloc(1, sizeof(*st));
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
	st->keep_workdir = spec->keep_workdir;
	st->grace_ms = spec->grace_ms > 0 ? spec->grace_ms : ORCHD_DEFAULT_GRACE_MS;
	st->timeout_ms = spec->timeout_ms > 0 ? spec->timeout_ms : 0;
	st->start_ms = now_ms();
	st->fd_in = st->fd_out = st->fd_err = st->fd_rep = -1;
	op_buf_init(&st->wq, 0);
	st->outputs = json_object_new_object();
	st->secrets = json_object_new_object();
	ALLOC_GROW(sup->steps, sup->nsteps + 1, sup->asteps);

	if (make_workdir(spec, &st->workdir, err, sizeof(err)) < 0)
		goto spawn_error;
	if (spec->prepare && spec->action != OP_ACTION_DESCRIBE) {
		err[0] = '\0';
		if (spec->prepare(sup->opts.cb_data, spec->ctx, st->workdir, err, sizeof(err)) < 0)
			goto spawn_error;
	}
	if (spec->action == OP_ACTION_DESCRIBE)
		st->action_line = op_encode_action(spec->action, NULL, NULL, spec->config,
						   spec->state, spec->outputs, NULL);
	else
		st->action_line =
			op_encode_action(spec->action, spec->instance, spec->stack, spec->config,
					 spec->state, spec->outputs, st->workdir);
	if (!st->action_line) {
		snprintf(err, sizeof(err), "cannot encode the action message: %s", strerror(errno));
		goto spawn_error;
	}
	st->sp_out = op_splitter_new(OP_MAX_LINE, OP_SPLIT_STRICT);
	st->sp_err = op_splitter_new(OP_MAX_LINE, OP_SPLIT_CHUNK);
	if (!st->sp_out || !st->sp_err)
		die("out of memory");

	envp = build_env(spec, st->workdir);
	if (spawn(sup, st, envp, err, sizeof(err)) < 0) {
		free_strv(envp);
		goto spawn_error;
	}
	free_strv(envp);
	step_queue(st, op_encode_hello_orchd(OP_PROTOCOL_MIN, OP_PROTOCOL_MAX, sup->orchd_version));
	if (st->timeout_ms)
		st->dl_timeout = st->start_ms + st->timeout_ms;
	sup->steps[sup->nsteps++] = st;
	return 0;

spawn_error:
	step_fail(st, ORCHD_STEP_SPAWN_ERROR, "%s", err);
	if (st->pid <= 0)
		st->reaped = 1;
	sup->steps[sup->nsteps++] = st;
	return 0;
}

/* --- finishing ----------------------------------------------------------- */

static int step_finished(const struct step *st)
{
	return st->reaped && st->fd_out < 0 && st->fd_err < 0 && st->fd_rep < 0;
}

static long long tv_ms(const struct timeval *tv)
{
	return (long long)tv->tv_sec * 1000 + tv->tv_usec / 1000;
}

static void describe_exit(char *buf, size_t n, int wstatus)
{
	if (WIFSIGNALED(wstatus))
		snprintf(buf, n, "killed by signal %d", WTERMSIG(wstatus));
	else
		snprintf(buf, n, "exit status %d", WEXITSTATUS(wstatus));
}

static void step_result(struct step *st, struct orchd_step_result *res)
{
	const char *rstatus = st->result ? op_get_str(st->result, "status") : NULL;
	int ok_result = rstatus && !strcmp(rstatus, "success");
	int ran = st->pid > 0 && st->reaped;
	int exited0 = ran && WIFEXITED(st->wstatus) && WEXITSTATUS(st->wstatus) == 0;
	char ex[64], dur[64];

	memset(res, 0, sizeof(*res));
	res->exit_status = -1;
	if (ran)
		res->exit_status = WIFSIGNALED(st->wstatus) ? 128 + WTERMSIG(st->wstatus)
							    : WEXITSTATUS(st->wstatus);
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
	res->pid = st->pid > 0 ? st->pid : 0;
	res->workdir = st->workdir;

	if (st->failed) {
		res->status = st->fail_status;
		snprintf(res->reason, sizeof(res->reason), "%s", st->fail_reason);
	} else if (st->timed_out) {
		res->status = ORCHD_STEP_TIMED_OUT;
		format_ms(dur, sizeof(dur), st->timeout_ms);
		snprintf(res->reason, sizeof(res->reason), "timed out after %s", dur);
	} else if (ok_result && exited0 && !st->linger_term) {
		res->status = ORCHD_STEP_SUCCESS;
	} else if (st->cancelled) {
		res->status = ORCHD_STEP_CANCELLED;
		snprintf(res->reason, sizeof(res->reason), "%s", st->cancel_text);
	} else if (st->result && !ok_result) {
		res->status = ORCHD_STEP_FAILED;
		if (res->summary && *res->summary)
			snprintf(res->reason, sizeof(res->reason), "extension reported failure: %s",
				 res->summary);
		else
			snprintf(res->reason, sizeof(res->reason), "extension reported failure");
	} else if (st->result) {
		res->status = ORCHD_STEP_FAILED;
		format_ms(dur, sizeof(dur), st->grace_ms);
		if (st->linger_term)
			snprintf(res->reason, sizeof(res->reason),
				 "did not exit within %s after its result", dur);
		else
			snprintf(res->reason, sizeof(res->reason), "%s%s after a success result",
				 WIFSIGNALED(st->wstatus) ? "" : "exited with ", ex);
	} else {
		res->status = ORCHD_STEP_FAILED;
		if (st->stdout_eof_no_result && st->linger_term)
			snprintf(res->reason, sizeof(res->reason),
				 "closed stdout without a result");
		else if (WIFSIGNALED(st->wstatus))
			snprintf(res->reason, sizeof(res->reason), "%s", ex);
		else
			snprintf(res->reason, sizeof(res->reason), "exited without a result (%s)",
				 ex);
		if (st->error_message && !(st->stdout_eof_no_result && st->linger_term)) {
			size_t l = strlen(res->reason);
			snprintf(res->reason + l, sizeof(res->reason) - l, ": %s",
				 st->error_message);
		}
	}
}

static void step_done(struct orchd_supervisor *sup, struct step *st)
{
	struct orchd_step_result res;

	close_fd(&st->fd_in);
	if (st->workdir && !st->keep_workdir)
		op_rmtree(st->workdir);
	step_result(st, &res);
	sup->opts.done(sup->opts.cb_data, st->ctx, st->id, &res);
	step_free(st);
}

/* Move finished steps to the pending list, then run their callbacks (which
 * may start new steps). */
static void collect_finished(struct orchd_supervisor *sup)
{
	size_t i = 0;
	while (i < sup->nsteps) {
		struct step *st = sup->steps[i];
		if (!step_finished(st)) {
			i++;
			continue;
		}
		ALLOC_GROW(sup->pending, sup->npending + 1, sup->apending);
		sup->pending[sup->npending++] = st;
		sup->steps[i] = sup->steps[--sup->nsteps];
	}
}

static void deliver_pending(struct orchd_supervisor *sup)
{
	while (sup->npending) {
		struct step *st = sup->pending[0];
		memmove(sup->pending, sup->pending + 1, --sup->npending * sizeof(*sup->pending));
		step_done(sup, st);
	}
}

/* --- the loop ------------------------------------------------------------ */

static void reap(struct orchd_supervisor *sup)
{
	/* Only our own children, by pid: never steal a child that another
	 * part of orchd waits for.  One pass over every step per SIGCHLD, so
	 * merged signals lose nothing. */
	for (size_t i = 0; i < sup->nsteps; i++) {
		struct step *st = sup->steps[i];
		pid_t r;
		if (st->pid <= 0 || st->reaped)
			continue;
		do
			r = wait4(st->pid, &st->wstatus, WNOHANG, &st->ru);
		while (r < 0 && errno == EINTR);
		if (r == 0)
			continue;
		st->reaped = 1;
		if (r < 0) /* ECHILD: someone else reaped it */
			st->wstatus = 0;
		st->dl_kill = st->dl_linger = st->dl_timeout = st->dl_term = 0;
		step_close_stdin(st);
		if (st->fd_out >= 0 || st->fd_err >= 0) {
			long long d = st->grace_ms < ORCHD_DRAIN_MS ? st->grace_ms : ORCHD_DRAIN_MS;
			st->dl_drain = now_ms() + d;
		}
	}
}

static void interrupt(struct orchd_supervisor *sup, int sig)
{
	if (sup->interrupted) {
		/* second signal: no more grace */
		for (size_t i = 0; i < sup->nsteps; i++)
			if (!sup->steps[i]->reaped)
				step_kill(sup->steps[i]);
		return;
	}
	sup->interrupted = sig;
	for (size_t i = 0; i < sup->nsteps; i++) {
		struct step *st = sup->steps[i];
		char *text = xasprintf("interrupted by %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
		step_cancel(st, "interrupted", sig, text);
		free(text);
	}
}

static int read_signals(struct orchd_supervisor *sup)
{
	struct signalfd_siginfo si;
	int chld = 0;
	ssize_t n;

	while ((n = read(sup->sfd, &si, sizeof(si))) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			chld = 1;
		else if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)
			interrupt(sup, (int)si.ssi_signo);
	}
	return chld;
}

static void force_drain(struct orchd_supervisor *sup, struct step *st)
{
	sup_logf(sup, st, ORCHD_LOG_WARNING,
		 "the extension exited but left processes holding its output open; killing them");
	step_signal(st, SIGKILL);
	if (st->fd_out >= 0)
		step_read(sup, st, 0);
	if (st->fd_err >= 0)
		step_read(sup, st, 1);
	if (st->fd_out >= 0)
		step_eof(sup, st, 0);
	if (st->fd_err >= 0)
		step_eof(sup, st, 1);
	st->dl_drain = 0;
}

static void check_deadlines(struct orchd_supervisor *sup, long long now)
{
	for (size_t i = 0; i < sup->nsteps; i++) {
		struct step *st = sup->steps[i];
		if (st->dl_timeout && now >= st->dl_timeout) {
			st->dl_timeout = 0;
			if (!st->reaped) {
				st->timed_out = 1;
				step_soft_stop(st, "timeout");
			}
		}
		if (st->dl_term && now >= st->dl_term) {
			st->dl_term = 0;
			if (!st->reaped)
				step_terminate(st);
		}
		if (st->dl_linger && now >= st->dl_linger) {
			st->dl_linger = 0;
			if (!st->reaped && !st->term_sent) {
				st->linger_term = 1;
				step_terminate(st);
			}
		}
		if (st->dl_kill && now >= st->dl_kill)
			step_kill(st);
		if (st->dl_drain && now >= st->dl_drain)
			force_drain(sup, st);
	}
}

static long long next_deadline(const struct orchd_supervisor *sup, long long dl)
{
	for (size_t i = 0; i < sup->nsteps; i++) {
		const struct step *st = sup->steps[i];
		const long long d[] = {st->dl_timeout, st->dl_kill, st->dl_drain, st->dl_linger,
				       st->dl_term};
		for (size_t j = 0; j < ARRAY_SIZE(d); j++)
			if (d[j] && (dl < 0 || d[j] < dl))
				dl = d[j];
	}
	return dl;
}

int orchd_supervisor_wait(struct orchd_supervisor *sup, long long deadline_ms)
{
	size_t n = 0;
	long long dl, now;
	int timeout, r;

	collect_finished(sup);
	if (sup->npending) {
		deliver_pending(sup);
		return 0;
	}
	if (!sup->nsteps && deadline_ms < 0)
		return 0;

	ALLOC_GROW(sup->pfd, 1 + 4 * sup->nsteps, sup->apfd);
	sup->pstep = xrealloc(sup->pstep, sup->apfd * sizeof(*sup->pstep));
	sup->pwhich = xrealloc(sup->pwhich, sup->apfd * sizeof(*sup->pwhich));
	sup->pfd[n].fd = sup->sfd;
	sup->pfd[n].events = POLLIN;
	sup->pstep[n] = NULL;
	sup->pwhich[n++] = -1;
	for (size_t i = 0; i < sup->nsteps; i++) {
		struct step *st = sup->steps[i];
		const int fds[4] = {st->fd_rep, st->fd_in, st->fd_out, st->fd_err};
		for (int w = 0; w < 4; w++) {
			if (fds[w] < 0 || (w == 1 && !st->wq.len))
				continue;
			sup->pfd[n].fd = fds[w];
			sup->pfd[n].events = w == 1 ? POLLOUT : POLLIN;
			sup->pfd[n].revents = 0;
			sup->pstep[n] = st;
			sup->pwhich[n++] = w;
		}
	}

	dl = next_deadline(sup, deadline_ms);
	now = now_ms();
	if (dl < 0)
		timeout = -1;
	else if (dl <= now)
		timeout = 0;
	else
		timeout = dl - now > INT_MAX ? INT_MAX : (int)(dl - now);

	r = poll(sup->pfd, n, timeout);
	if (r < 0 && errno != EINTR)
		return error("supervisor: poll: %s", strerror(errno));
	if (r > 0) {
		int chld = 0;
		for (size_t k = 0; k < n; k++) {
			struct step *st = sup->pstep[k];
			short re = sup->pfd[k].revents;
			if (!re)
				continue;
			if (!st) {
				chld = read_signals(sup);
				continue;
			}
			switch (sup->pwhich[k]) {
			case 0:
				if (st->fd_rep >= 0)
					step_read_report(st);
				break;
			case 1:
				if (re & (POLLERR | POLLHUP | POLLNVAL))
					step_close_stdin(st);
				else
					step_write(st);
				break;
			case 2:
				if (st->fd_out >= 0)
					step_read(sup, st, 0);
				break;
			case 3:
				if (st->fd_err >= 0)
					step_read(sup, st, 1);
				break;
			}
		}
		if (chld)
			reap(sup);
	}
	/* Flush what the messages above queued (most writes never block). */
	for (size_t i = 0; i < sup->nsteps; i++)
		if (sup->steps[i]->wq.len)
			step_write(sup->steps[i]);
	check_deadlines(sup, now_ms());
	collect_finished(sup);
	deliver_pending(sup);
	return 0;
}

int orchd_supervisor_run(struct orchd_supervisor *sup)
{
	while (orchd_supervisor_running(sup))
		if (orchd_supervisor_wait(sup, -1) < 0)
			return -1;
	return 0;
}

size_t orchd_supervisor_running(const struct orchd_supervisor *sup)
{
	return sup->nsteps + sup->npending;
}

void orchd_supervisor_cancel_all(struct orchd_supervisor *sup, const char *reason)
{
	char *text = xasprintf("cancelled (%s)", reason ? reason : "cancelled");
	for (size_t i = 0; i < sup->nsteps; i++)
		step_cancel(sup->steps[i], reason ? reason : "cancelled", 0, text);
	free(text);
}

int orchd_supervisor_interrupted(struct orchd_supervisor *sup)
{
	/* signals that arrived since the last wait (e.g. between phases) */
	if (read_signals(sup))
		reap(sup);
	return sup->interrupted;
}

/* --- creation and teardown ----------------------------------------------- */

struct orchd_supervisor *orchd_supervisor_new(const struct orchd_supervisor_opts *opts)
{
	struct orchd_supervisor *sup;
	struct sigaction ign;
	struct rlimit rl;
	sigset_t set;

	if (!opts || !opts->done) {
		error("supervisor: a done callback is required");
		return NULL;
	}
	sup = xcalloc(1, sizeof(*sup));
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		sup->old_nofile = rl;
		sup->have_nofile = 1;
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	sup->opts = *opts;
	sup->orchd_version = xstrdup(opts->orchd_version ? opts->orchd_version : ORCHD_VERSION);

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, &sup->old_mask) < 0) {
		error("supervisor: cannot block signals: %s", strerror(errno));
		goto fail;
	}
	sup->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sup->sfd < 0) {
		error("supervisor: signalfd: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &sup->old_mask, NULL);
		goto fail;
	}
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &sup->old_pipe);
	sigaction(SIGHUP, &ign, &sup->old_hup);
	return sup;
fail:
	free(sup->orchd_version);
	free(sup);
	return NULL;
}

static void step_teardown(struct step *st)
{
	if (st->pid > 0 && (!st->reaped || st->fd_out >= 0 || st->fd_err >= 0))
		kill(-st->pid, SIGKILL);
	if (st->pid > 0 && !st->reaped) {
		while (waitpid(st->pid, &st->wstatus, 0) < 0 && errno == EINTR)
			;
		st->reaped = 1;
	}
	if (st->workdir && !st->keep_workdir)
		op_rmtree(st->workdir);
	step_free(st);
}

void orchd_supervisor_free(struct orchd_supervisor *sup)
{
	if (!sup)
		return;
	for (size_t i = 0; i < sup->nsteps; i++)
		step_teardown(sup->steps[i]);
	for (size_t i = 0; i < sup->npending; i++)
		step_teardown(sup->pending[i]);
	free(sup->steps);
	free(sup->pending);
	free(sup->pfd);
	free(sup->pstep);
	free(sup->pwhich);
	close(sup->sfd);
	sigaction(SIGPIPE, &sup->old_pipe, NULL);
	sigaction(SIGHUP, &sup->old_hup, NULL);
	sigprocmask(SIG_SETMASK, &sup->old_mask, NULL);
	free(sup->orchd_version);
	free(sup);
}
