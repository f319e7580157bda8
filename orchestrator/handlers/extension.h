/*
 * handlers/extension: the process-isolated supervisor.
 *
 * One struct orchd_supervisor is an event loop that runs many extension
 * processes ("steps": one action of one instance, one attempt) at once,
 * multiplexed with poll(2) (no thread per child, no FD_SETSIZE limit), and
 * speaks protocol v1 (protocol/PROTOCOL.md) with each of them:
 *
 *   orchd                                  extension (orchd-ext-TYPE)
 *   hello {"protocol":{min,max}} ------>   stdin
 *   stdout <------ hello {protocol, name, version, min_orchd_version, actions}
 *   (check range, min orchd version, action support)
 *   action {...}                 ------>   stdin
 *   stdout <------ log / progress / output / state / error ... / result
 *   (request {"op":"fetch"} --> fetched into the workdir, response queued)
 *   close stdin; wait for stdout+stderr EOF and exit; reap
 *
 * Typical use (the scheduler):
 *
 *   struct orchd_supervisor_opts o = ORCHD_SUPERVISOR_OPTS_INIT;
 *   o.log = my_log; o.done = my_done; o.cb_data = me;
 *   struct orchd_supervisor *sup = orchd_supervisor_new(&o);
 *   struct orchd_step_spec s = ORCHD_STEP_SPEC_INIT;
 *   s.id = "exec.build"; s.exe = "/.../orchd-ext-exec"; s.action = OP_ACTION_APPLY;
 *   s.instance = "build"; s.stack = "dev-exec-build"; s.config = cfg; ...
 *   s.ctx = my_step;
 *   orchd_supervisor_start(sup, &s);
 *   while (orchd_supervisor_running(sup) || have_more_work)
 *           orchd_supervisor_wait(sup, next_backoff_deadline_or_-1);
 *   if (orchd_supervisor_interrupted(sup)) exit 128+that signal after reports
 *   orchd_supervisor_free(sup);
 *
 * Process contract of each child:
 *   - fds 0/1/2 are pipes to the supervisor (stdin: orchd -> extension
 *     messages; stdout: extension -> orchd messages; stderr: free text,
 *     logged line by line at level info, source stderr).  No other fd is
 *     open after exec (everything else is close-on-exec).
 *   - its own process group (setpgid(0,0)); cancellation signals go to the
 *     whole group (kill(-pid, sig)).
 *   - default signal dispositions, orchd's original signal mask and
 *     orchd's original RLIMIT_NOFILE (the supervisor raises its own).
 *   - cwd: a private working directory created by the supervisor (0700)
 *     under spec->workdir_base, named "<id>.<attempt>.XXXXXX", removed after
 *     the step unless spec->keep_workdir.
 *   - environment: only PATH, HOME, LANG, LC_ALL, TZ, TMPDIR copied from
 *     orchd's environment (when set), then spec->env ("NAME=VALUE" entries,
 *     which override those), then ORCHD_PROTOCOL=1, ORCHD_INSTANCE=<instance
 *     or id>, ORCHD_WORKDIR=<workdir>.  Never orchd's whole environment.
 *
 * Signals: orchd_supervisor_new() blocks SIGCHLD, SIGINT and SIGTERM and
 * reads them from a signalfd inside the loop; SIGPIPE and SIGHUP are
 * ignored; orchd_supervisor_free() restores the previous mask and
 * dispositions.  Create at most one supervisor per process, from the main
 * thread, before starting other threads.  On SIGINT or SIGTERM the
 * supervisor forwards the same signal to every child's process group,
 * sends each running extension a cancel message (reason "interrupted"),
 * SIGKILLs what is left after the grace period, and reports each step as
 * ORCHD_STEP_CANCELLED; orchd_supervisor_interrupted() then returns the
 * signal number and orchd_supervisor_start() refuses new steps.  A second
 * SIGINT/SIGTERM SIGKILLs every group at once.
 *
 * Reaping: each SIGCHLD read from the signalfd makes the loop call
 * wait4(pid, WNOHANG) for every running step (signals merge, so every step
 * is checked), collecting the exit status and rusage.  It never calls
 * wait4(-1): children that other parts of orchd spawn and wait for (git,
 * pulumi ...) are not stolen.  A step is finished once it is reaped AND its
 * stdout and stderr are closed.
 *
 * Timeouts and cancellation (protocol "Cancellation"): at spec->timeout_ms
 * after the start, or on orchd_supervisor_cancel_all(), the supervisor
 * sends cancel (reason "timeout" / the given reason) if the action was
 * sent; after grace_ms it sends SIGTERM to the group, after another
 * grace_ms SIGKILL.  (Before the action was sent: SIGTERM at once.)  A
 * protocol error or a failed handshake closes stdin and sends SIGTERM at
 * once, SIGKILL after the grace.  An extension that closed its stdout
 * without a result (it can never succeed), or that does not exit within
 * the grace after its result, gets SIGTERM then SIGKILL; the first ends as
 * "closed stdout without a result", the second as "did not exit within Ns
 * after its result".  If the extension exits but something it left behind keeps its
 * stdout/stderr open, the pipes are drained for min(grace, 2 s), then the
 * group is SIGKILLed and the pipes closed: a step never hangs on a
 * grandchild.
 *
 * Requests (protocol "request"/"response"): a request after the action is
 * answered by core/sources.h (orchd_sources_request(): op "fetch" into the
 * step's workdir, http(s)/git:// only, confined to the workdir); the
 * response is queued on the extension's stdin.  The fetch runs
 * synchronously inside orchd_supervisor_wait(), so other steps' I/O waits
 * meanwhile (their pipes buffer).  A request after the result is ignored
 * with a warning.
 *
 * Memory: stdout and stderr are read in fixed chunks and framed with the
 * protocol library's bounded splitter (OP_MAX_LINE): an over-long stdout
 * line is a protocol error, an over-long stderr line is split; a flooding
 * extension never grows orchd's memory beyond the line caps.  Messages to
 * the extension are queued and written on POLLOUT.
 *
 * Error convention: functions returning int return 0 or -1 (with a message
 * printed by error()); they never exit.  Whatever goes wrong with a step
 * itself (cannot execute, protocol error, crash ...) is reported through
 * the done callback, never as a return value.
 */
#ifndef ORCHD_HANDLERS_EXTENSION_H
#define ORCHD_HANDLERS_EXTENSION_H

#include <json-c/json.h>
#include <stddef.h>
#include <sys/types.h>

#include "orchd_protocol.h"
#include "core/logging.h"

/* Default grace period between SIGTERM and SIGKILL. */
#define ORCHD_DEFAULT_GRACE_MS 10000
/* Longest drain of pipes held open by a leftover grandchild after reap. */
#define ORCHD_DRAIN_MS 2000

enum orchd_step_status {
	ORCHD_STEP_SUCCESS = 0,	   /* result success and exit status 0 */
	ORCHD_STEP_FAILED,	   /* failure result, no result, crash, bad exit */
	ORCHD_STEP_TIMED_OUT,	   /* per-attempt deadline passed */
	ORCHD_STEP_CANCELLED,	   /* orchd_supervisor_cancel_all() or SIGINT/SIGTERM */
	ORCHD_STEP_SPAWN_ERROR,	   /* could not create the workdir, pipes or exec */
	ORCHD_STEP_PROTOCOL_ERROR, /* the extension broke the protocol or the handshake */
};

/* "success", "failed", "timed out", "cancelled", "spawn error", "protocol error". */
const char *orchd_step_status_name(enum orchd_step_status s);

/*
 * What to run.  Every pointer is borrowed for the duration of
 * orchd_supervisor_start() only: the supervisor copies strings and encodes
 * the json objects into the action message before start() returns.
 */
struct orchd_step_spec {
	const char *id; /* instance id for log prefixes, e.g. "exec.build" (required) */
	/* path of the extension executable (required); a relative path is
	 * taken from orchd's cwd, there is no PATH search */
	const char *exe;
	enum op_action action;	    /* required */
	const char *instance;	    /* instance name ("build"); required unless describe */
	const char *stack;	    /* stack name; required unless describe */
	const json_object *config;  /* NULL: {} */
	const json_object *state;   /* NULL: JSON null (first run) */
	const json_object *outputs; /* previous outputs, key -> value; NULL: {} */
	/* parent of the private workdir (created if missing, one level);
	 * NULL: $TMPDIR or /tmp */
	const char *workdir_base;
	int attempt;		/* 1-based, used in the workdir name */
	int keep_workdir;	/* do not remove the workdir afterwards */
	const char *const *env; /* extra "NAME=VALUE" entries, NULL-terminated; may be NULL */
	long long timeout_ms;	/* per attempt; 0: none */
	long long grace_ms;	/* SIGTERM -> SIGKILL; 0: ORCHD_DEFAULT_GRACE_MS */
	void *ctx;		/* handed back to the callbacks */
	/*
	 * May be NULL.  Called from orchd_supervisor_start(), after the
	 * workdir was created and before the extension is spawned, with the
	 * supervisor's cb_data, ctx and the workdir (e.g. to fetch the
	 * instance's sources into it: core/sources.h).  It runs synchronously
	 * in orchd's loop.  Returns 0, or -1 with a message in err[errlen]:
	 * then nothing is spawned and the step ends (through the done
	 * callback) as ORCHD_STEP_SPAWN_ERROR with that message as reason.
	 * Not called for describe.
	 */
	int (*prepare)(void *cb_data, void *ctx, const char *workdir, char *err, size_t errlen);
};

#define ORCHD_STEP_SPEC_INIT                                                                      \
	{                                                                                         \
		NULL, NULL, OP_ACTION_NONE, NULL, NULL, NULL, NULL, NULL, NULL, 1, 0, NULL, 0, 0, \
			NULL, NULL                                                                \
	}

/*
 * How a step ended.  The struct and everything it points to are owned by
 * the supervisor and valid only during the done callback: a caller that
 * keeps a json object takes json_object_get() on it (and puts it later),
 * a caller that keeps a string copies it.
 */
struct orchd_step_result {
	enum orchd_step_status status;
	/* One line for humans, "" on success, e.g.
	 *   "exited without a result (exit status 3)"
	 *   "killed by signal 9"
	 *   "timed out after 5s"
	 *   "protocol error: line longer than 1048576 bytes"
	 *   "protocol error: output: missing required field 'key'"
	 *   "extension speaks protocol 2, orchd speaks 1..1"
	 *   "cannot execute /path/orchd-ext-x: Permission denied"
	 *   "extension misbehave 0.1.0 does not support action 'apply'"
	 *   "extension reported failure: <summary>" (or without ": <summary>")
	 *   "exited without a result (exit status 1): <last error message>"
	 *   "exited with exit status 4 after a success result"
	 *   "closed stdout without a result"
	 *   "did not exit within 10s after its result"
	 *   "cancelled (<reason given to cancel_all>)"
	 *   "interrupted by SIGINT" / "interrupted by SIGTERM"          */
	char reason[640];
	int exit_status;     /* exit code, 128+signal if killed, -1 if never ran */
	int retryable;	     /* an error message said retryable:true */
	int has_result;	     /* a result message was received */
	int changed;	     /* result.changed: -1 absent, 0 or 1 */
	const char *summary; /* result.summary or NULL */
	/* key -> value of every output message (last wins); never NULL. */
	json_object *outputs;
	/* key -> true for the outputs sent with secret:true; never NULL. */
	json_object *secrets;
	int has_state;		   /* a state message was received */
	int state_secret;	   /* the last state message said secret:true */
	json_object *state;	   /* the last state value (may be NULL = JSON null) */
	json_object *result;	   /* the whole result message, or NULL */
	json_object *describe;	   /* result.describe (borrowed from result) or NULL */
	json_object *errors;	   /* result.errors (validate) or NULL */
	const char *error_message; /* last {"type":"error"} message, or NULL */
	/* Resource use of the extension process (wait4's rusage). */
	long long cpu_user_ms;
	long long cpu_sys_ms;
	long max_rss_kb;
	long long wall_ms;   /* start() to done */
	pid_t pid;	     /* 0 if never started */
	const char *workdir; /* the private workdir (removed by now unless kept) */
};

/* Log line of a running step.  text is NUL-terminated, without newline,
 * already bounded by the line caps; it is not masked (the console does). */
typedef void (*orchd_step_log_fn)(void *cb_data, void *ctx, const char *id,
				  enum orchd_log_level level, enum orchd_log_source src,
				  const char *text);
/* Progress message: percent -1 when absent. */
typedef void (*orchd_step_progress_fn)(void *cb_data, void *ctx, const char *id, int percent,
				       const char *message);
/* An output message, as it arrives (before the step ends), so that the
 * caller can mask a secret value in every later line at once.  value is
 * borrowed (NULL for JSON null). */
typedef void (*orchd_step_output_fn)(void *cb_data, void *ctx, const char *id, const char *key,
				     json_object *value, int secret);
/* A step is finished (EOFs seen, process reaped, workdir removed).  Called
 * exactly once per successful orchd_supervisor_start(), from
 * orchd_supervisor_wait() (never from start()).  The callback may call
 * orchd_supervisor_start() and orchd_supervisor_cancel_all(). */
typedef void (*orchd_step_done_fn)(void *cb_data, void *ctx, const char *id,
				   const struct orchd_step_result *res);

struct orchd_supervisor_opts {
	orchd_step_log_fn log;		 /* may be NULL: lines dropped */
	orchd_step_progress_fn progress; /* may be NULL: progress logged at info */
	orchd_step_done_fn done;	 /* required */
	void *cb_data;
	const char *orchd_version;   /* NULL: ORCHD_VERSION */
	orchd_step_output_fn output; /* may be NULL */
};

#define ORCHD_SUPERVISOR_OPTS_INIT                 \
	{                                          \
		NULL, NULL, NULL, NULL, NULL, NULL \
	}

struct orchd_supervisor; /* opaque */

/*
 * Create the loop: raise RLIMIT_NOFILE's soft limit to the hard one, block
 * SIGCHLD/SIGINT/SIGTERM into a signalfd, ignore SIGPIPE/SIGHUP.  NULL
 * (after error()) on failure.
 */
struct orchd_supervisor *orchd_supervisor_new(const struct orchd_supervisor_opts *opts);

/*
 * Start one step: create its workdir, spawn the executable, queue hello.
 * start() does not wait for the child to exec: an exec failure (ENOENT,
 * EACCES, ENOEXEC ...) travels back over a close-on-exec pipe watched by
 * the loop.  Any failure to run the step is reported through the done
 * callback with ORCHD_STEP_SPAWN_ERROR ("cannot execute PATH: REASON") from
 * orchd_supervisor_wait().  Returns -1 (after error()) only for an
 * invalid spec, or when the run is interrupted; then no callback follows.
 */
int orchd_supervisor_start(struct orchd_supervisor *sup, const struct orchd_step_spec *spec);

/*
 * Run the loop once: wait until something happens on a child (I/O, exit,
 * signal, one of the step deadlines) or until deadline_ms (absolute, in
 * now_ms() time; -1: no caller deadline), handle it, and return.  Returns
 * immediately when callbacks are pending or when nothing is running and
 * deadline_ms is -1.  0, or -1 on a system error of poll/signalfd.
 */
int orchd_supervisor_wait(struct orchd_supervisor *sup, long long deadline_ms);

/* Call orchd_supervisor_wait() until no step is left. 0 or -1. */
int orchd_supervisor_run(struct orchd_supervisor *sup);

/* Number of started steps whose done callback has not run yet. */
size_t orchd_supervisor_running(const struct orchd_supervisor *sup);

/*
 * Cancel every running step (fail-fast): send cancel with reason (e.g.
 * "interrupted"), SIGTERM each group, SIGKILL after the grace.  Steps end
 * as ORCHD_STEP_CANCELLED (unless they had already succeeded).
 */
void orchd_supervisor_cancel_all(struct orchd_supervisor *sup, const char *reason);

/*
 * SIGINT or SIGTERM once the run was interrupted by that signal, else 0.
 * Also picks up a signal that arrived since the last wait (so it is exact
 * between phases, when nothing runs); a signal arriving after the last
 * call stays pending and takes its default action once
 * orchd_supervisor_free() restores the signal mask.
 */
int orchd_supervisor_interrupted(struct orchd_supervisor *sup);

/*
 * SIGKILL every remaining process group, reap every child (never leaves a
 * zombie), close every fd, remove workdirs, restore the signal mask and
 * dispositions.  No done callback runs.  NULL is a no-op.
 */
void orchd_supervisor_free(struct orchd_supervisor *sup);

#endif
