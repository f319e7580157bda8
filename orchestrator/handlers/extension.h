/*
 * handlers/extension: one extension step (the ExtensionHandler of README's
 * "Concepts"): one action of one instance, one attempt, in one
 * extension process, seen from orchd's side of the protocol.  With a
 * session (PROTOCOL.md §7.6) two steps of an instance share the process:
 * the first parks at its result (orchd_step_park), the next adopts the
 * process (orchd_step_adopt) and sends its action without a handshake.
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
 * This file holds what a step is (its spec, its result, the callbacks that
 * report it) and its two state machines; handlers/supervisor runs many
 * steps at once in one event loop and feeds them their events.
 *
 * A step has three small states, each changed in one place:
 *   - its protocol phase: HELLO -> ACTION -> DONE (result received, stdout
 *     closed, or orchd stopped listening);
 *   - its process: NONE -> RUNNING -> TERM_SENT -> KILL_SENT -> REAPED;
 *   - its outcome, a table of transitions (step_outcome_next[][] in
 *     extension.c) over the events that decide how the step ends: a
 *     success or failure result, stdout closed without a result, the
 *     linger deadline, a cancel, the timeout, an error of orchd's (spawn,
 *     protocol).  An error beats a timeout, a timeout beats everything
 *     else, a clean success beats a cancel, a cancel beats a reported
 *     failure.  The result (status and reason) is read off the final
 *     outcome and the exit status once the step is finished.
 *
 * Process contract of each extension (set up by the supervisor through
 * op_child_start(), protocol/orchd_protocol.h):
 *   - fds 0/1/2 are pipes to orchd (stdin: orchd -> extension messages;
 *     stdout: extension -> orchd messages; stderr: free text, logged line
 *     by line at level info, source stderr).  No other fd is open.
 *   - its own process group; cancellation signals go to the whole group.
 *     SIGTERM when orchd dies.
 *   - default signal dispositions, orchd's original signal mask and
 *     RLIMIT_NOFILE.
 *   - cwd: a private working directory (0700) under spec->workdir_base,
 *     named "<id>.<attempt>.XXXXXX", removed after the step unless
 *     spec->keep_workdir; spec->sources are fetched into it first (off the
 *     event loop, see handlers/supervisor.h).
 *   - environment: only PATH, HOME, LANG, LC_ALL, TZ, TMPDIR copied from
 *     orchd's environment (when set), then spec->env ("NAME=VALUE" entries,
 *     which override those), then ORCHD_PROTOCOL=1, ORCHD_INSTANCE=<instance
 *     or id>, ORCHD_WORKDIR=<workdir>.  Never orchd's whole environment.
 *
 * Timeouts and cancellation (protocol §9): at spec->timeout_ms after the
 * start (sources, handshake and every action included), or on a cancel, the
 * step sends cancel (reason "timeout" / the given reason) if the action was
 * sent, and SIGTERM to the group at the same time; SIGKILL after grace_ms.
 * An extension that has not said hello within hello_timeout_ms of its
 * start fails the handshake the same way.  When orchd itself is signalled (SIGINT/SIGTERM), the
 * same signal goes to the group at once with the cancel, SIGKILL after the
 * grace.  A protocol error or a failed handshake closes stdin and sends
 * SIGTERM at once, SIGKILL after the grace.  An extension that closed its
 * stdout without a result, or that does not exit within the grace after
 * its result, gets SIGTERM then SIGKILL.  If the extension exits but
 * something it left behind keeps its stdout/stderr open, the pipes are
 * drained for min(grace, 2 s), then the group is SIGKILLed and the pipes
 * closed: a step never hangs on a grandchild.
 *
 * Memory: stdout and stderr are framed with the protocol library's bounded
 * splitter (OP_MAX_LINE): an over-long stdout line is a protocol error, an
 * over-long stderr line is split.  Messages to the extension are queued and
 * written on POLLOUT.
 */
#ifndef ORCHD_HANDLERS_EXTENSION_H
#define ORCHD_HANDLERS_EXTENSION_H

#include <json-c/json.h>
#include <signal.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "orchd_protocol.h"
#include "core/logging.h"
#include "handlers/cgroup.h"
#include "handlers/sandbox.h"

/* Default grace period between SIGTERM and SIGKILL. */
#define ORCHD_DEFAULT_GRACE_MS 10000
/* Default longest wait for an extension's hello (protocol §5). */
#define ORCHD_DEFAULT_HELLO_MS 30000
/* Longest drain of pipes held open by a leftover grandchild after reap. */
#define ORCHD_DRAIN_MS 2000
/* Bounds of what waits for an extension: bytes queued for its stdin, and
 * requests not answered yet.  Past either the step fails (a protocol
 * error): orchd's memory does not follow an extension that floods it. */
#define ORCHD_MAX_QUEUED   (16 << 20)
#define ORCHD_MAX_REQUESTS 1024
/* The output values one action may send, in all (a key sent again counts
 * again): the engine's record must hold them (PROTOCOL.md §4.1). */
#define ORCHD_MAX_OUTPUT_BYTES (128 << 20)
/* After asking an extension's reaper to kill everything: SIGKILL it too. */
#define ORCHD_KILL_BACKSTOP_MS 2000
/* Shortest wait for an exit after a result, and for pipes after an exit. */
#define ORCHD_MIN_LINGER_MS 1000

enum orchd_step_status {
	ORCHD_STEP_SUCCESS = 0,	   /* result success and exit status 0 */
	ORCHD_STEP_FAILED,	   /* failure result, no result, crash, bad exit */
	ORCHD_STEP_TIMED_OUT,	   /* per-attempt deadline passed */
	ORCHD_STEP_CANCELLED,	   /* a cancel, or SIGINT/SIGTERM to orchd */
	ORCHD_STEP_SPAWN_ERROR,	   /* could not create the workdir, fetch, pipes or exec */
	ORCHD_STEP_PROTOCOL_ERROR, /* the extension broke the protocol or the handshake */
	ORCHD_STEP_INCOMPATIBLE,   /* its protocol or min_orchd_version does not fit */
	ORCHD_STEP_UNSUPPORTED,	   /* its hello does not list the action */
};

/* "success", "failed", "timed out", "cancelled", "spawn error", "protocol error",
 * "incompatible", "unsupported". */
const char *orchd_step_status_name(enum orchd_step_status s);

/*
 * What to run.  Every pointer is borrowed for the duration of
 * orchd_supervisor_start() only: the step copies strings and sources and
 * encodes the json objects into the action message before start() returns.
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
	long long grace_ms;	/* SIGTERM -> SIGKILL; 0: at once; < 0: ORCHD_DEFAULT_GRACE_MS */
	/* from the start to the extension's hello (bounded by timeout_ms
	 * too); 0: ORCHD_DEFAULT_HELLO_MS */
	long long hello_timeout_ms;
	void *ctx; /* handed back to the callbacks */
	/*
	 * The instance's sources (an array of specs, core/sources.h), fetched
	 * into the workdir before the extension starts, off the event loop;
	 * one log line each.  A failure ends the step as
	 * ORCHD_STEP_SPAWN_ERROR with the fetch's message.  NULL or empty:
	 * none.  Ignored for describe.
	 */
	const json_object *sources;
	/*
	 * The sandbox (handlers/sandbox.h): NULL for isolation basic (the
	 * process contract above only).  Its paths are taken at start(), so
	 * the workdir is added by the supervisor: leave spec->workdir NULL.
	 */
	const struct orchd_sandbox_spec *sandbox;
	/*
	 * Sessions (PROTOCOL.md §7.6).  park: after its result, an extension
	 * whose hello lists feature "session" may wait in its process for
	 * the instance's next action (the caller will start one: see
	 * orchd_supervisor_close_sessions() for the end).  adopt: run in such
	 * a waiting process of the same id and executable when there is a
	 * healthy one (its workdir, sandbox, limits and environment are the
	 * ones it was started with; sources are not fetched again, so a step
	 * with sources never adopts), else in a new process.
	 */
	int park;
	int adopt;
};

#define ORCHD_STEP_SPEC_INIT                                                                       \
	{                                                                                          \
		NULL, NULL, OP_ACTION_NONE, NULL, NULL, NULL, NULL, NULL, NULL, 1, 0, NULL, 0, -1, \
			0, NULL, NULL, NULL, 0, 0                                                  \
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
	long long setup_ms;  /* start() to the action sent: sources, spawn and
			      * handshake (about 0 for a resumed session); -1
			      * when no action was sent */
	pid_t pid;	     /* 0 if never started */
	const char *workdir; /* the private workdir (removed by now unless kept) */
	/* run by an `orchd worker` that lost its lease meanwhile
	 * (handlers/remote.h): the step's end is unknown */
	int worker_lost;
	const char *worker; /* the worker that ran it, or NULL (here) */
};

/* Log line of a running step.  text is NUL-terminated, without newline,
 * already bounded by the line caps; it is not masked (the console does). */
typedef void (*orchd_step_log_fn)(void *cb_data, void *ctx, const char *id,
				  enum orchd_log_level level, enum orchd_log_source src,
				  const char *text);
/* Several stderr lines at once (the bulk path of a chatty tool): text[0..len)
 * is whole lines, each ended by '\n', valid UTF-8 without NUL bytes, each
 * line at most OP_MAX_LINE bytes; the callee may modify the bytes during
 * the call.  Logging them is the same as one log call per line. */
typedef void (*orchd_step_log_lines_fn)(void *cb_data, void *ctx, const char *id,
					enum orchd_log_level level, enum orchd_log_source src,
					char *text, size_t len);
/* Progress message: percent -1 when absent. */
typedef void (*orchd_step_progress_fn)(void *cb_data, void *ctx, const char *id, int percent,
				       const char *message);
/* An output message, as it arrives (before the step ends), so that the
 * caller can mask a secret value in every later line at once.  value is
 * borrowed (NULL for JSON null). */
typedef void (*orchd_step_output_fn)(void *cb_data, void *ctx, const char *id, const char *key,
				     json_object *value, int secret);
/* A mask message: value must never be printed from now on. */
typedef void (*orchd_step_mask_fn)(void *cb_data, void *ctx, const char *value);
/* A step is finished (EOFs seen, process reaped, workdir removed).  Called
 * exactly once per successful orchd_supervisor_start(), from
 * orchd_supervisor_wait() (never from start()).  The callback may call
 * orchd_supervisor_start() and orchd_supervisor_cancel_all(). */
typedef void (*orchd_step_done_fn)(void *cb_data, void *ctx, const char *id,
				   const struct orchd_step_result *res);

/* The callbacks of every step, with their data. */
struct orchd_step_hooks {
	orchd_step_log_fn log;		   /* may be NULL: lines dropped */
	orchd_step_progress_fn progress;   /* may be NULL: progress logged at info */
	orchd_step_done_fn done;	   /* required */
	orchd_step_output_fn output;	   /* may be NULL */
	orchd_step_mask_fn mask;	   /* may be NULL: mask messages ignored */
	orchd_step_log_lines_fn log_lines; /* may be NULL: log is called per line */
	void *cb_data;
};

/* ---------------------------------------------------------------------------
 * The supervisor's side: a step's state and the events that drive it.
 * Only handlers/supervisor.c calls these.
 * ------------------------------------------------------------------------- */

enum step_phase {
	PHASE_HELLO = 0, /* hello sent, waiting for the extension's hello */
	PHASE_ACTION,	 /* action sent, waiting for the result */
	PHASE_DONE,	 /* result received, stdout closed, or stopped */
};

enum step_proc {
	PROC_NONE = 0,	/* not started (yet, or ever) */
	PROC_RUNNING,	/* spawned */
	PROC_TERM_SENT, /* SIGTERM (or orchd's own signal) sent to the group */
	PROC_KILL_SENT, /* SIGKILL sent */
	PROC_REAPED,	/* wait4 collected it */
};

/* How the step is heading to end (see the table in extension.c). */
enum step_outcome {
	OUT_RUNNING = 0,   /* nothing decided yet */
	OUT_RESULT_OK,	   /* success result; success if it exits 0 */
	OUT_RESULT_FAILED, /* failure result */
	OUT_NO_RESULT,	   /* stdout closed without a result */
	OUT_LINGERED,	   /* success result, then did not exit within the grace */
	OUT_SILENT_KILLED, /* stdout closed without a result, did not exit either */
	OUT_CANCELLING,	   /* cancelled */
	OUT_CANCELLING_OK, /* cancelled, then a success result: success if it exits 0 */
	OUT_TIMING_OUT,	   /* the timeout passed */
	OUT_ABORTED,	   /* orchd's error: spawn, protocol, memory */
	OUT_NSTATES
};

enum step_event {
	SEV_RESULT_OK = 0,
	SEV_RESULT_FAILED,
	SEV_STDOUT_CLOSED, /* without a result */
	SEV_LINGER,	   /* still running a grace after its result / stdout EOF */
	SEV_CANCEL,
	SEV_TIMEOUT,
	SEV_ERROR,
	SEV_NEVENTS
};

struct orchd_step {
	struct orchd_step_hooks hooks;
	const char *orchd_version; /* the supervisor's, for the hello */
	/* A request message (taken) to answer off the loop: the supervisor's
	 * worker fetches and queues the response (orchd_step_queue()). */
	void (*on_request)(void *arg, struct orchd_step *st, json_object *msg);
	void *request_arg;
	char *id;
	char *exe;
	char *instance;
	char *workdir;
	void *ctx;
	enum op_action action;
	int keep_workdir;
	long long grace_ms;
	long long hello_ms;
	long long timeout_ms;
	long long start_ms;
	long long action_ms; /* when the action was sent (0: not yet) */

	enum step_phase phase;
	enum step_proc proc;
	enum step_outcome outcome;

	pid_t pid;
	struct op_child child;	   /* how it was started (exec report) */
	int fd_in, fd_out, fd_err; /* -1 when closed */
	int fd_rep;		   /* exec report: errno, or EOF once exec worked */
	struct op_buf wq;	   /* queued bytes for stdin */
	char *action_line;	   /* sent once the hello checks out */
	char *action_files;	   /* which values it hands over in files
				      (PROTOCOL.md §4.1), or NULL */
	struct op_splitter *sp_out;
	struct op_splitter *sp_err;
	struct op_buf err_clean;       /* a stderr line made valid UTF-8 */
	char **env;		       /* its environment, until it is spawned */
	struct orchd_sandbox *sandbox; /* its sandbox's plan, until it is spawned */
	struct orchd_cgroup *cgroup;   /* its cgroup (limits), until it is freed */
	char limit_hit[96];	       /* "exceeded its memory limit (1 MiB)" */
	long long output_bytes;	       /* stdout + stderr read so far */
	long long output_max;	       /* limits.output_bytes; 0: none */
	long long cpu_limit_ms;	       /* limits.cpu_time: names a SIGXCPU */
	int workdir_removed;	       /* its removal was handed to the worker */
	json_object *hello;	       /* the extension's hello, once checked */
	int park;		       /* spec->park */
	int want_park;		       /* result in, its session may wait */
	int parked;		       /* waits in the supervisor's list */
	int parked_once;	       /* its result was made as it waited */
	int silent;		       /* its done callback ran already */
	int husk;		       /* adopted: its process is another step's */
	long long park_kb;	       /* its memory as it waits (the bound) */
	int jobs;		       /* fetches in flight on the supervisor's worker */
	volatile sig_atomic_t cancel;  /* tells those fetches to stop */

	/* deadlines (now_ms() time; 0: none) */
	long long dl_timeout;
	long long dl_kill;   /* SIGKILL the group */
	long long dl_drain;  /* after reap: stop waiting for EOF */
	long long dl_linger; /* after result / stdout EOF: SIGTERM if still running */
	long long dl_hello;  /* no hello yet: fail the handshake */
	int hard_killed;     /* SIGKILL sent to the reaper's group (the backstop) */

	int wstatus;
	struct rusage ru;
	/* why, for the outcomes that need words */
	enum orchd_step_status fail_status; /* OUT_ABORTED */
	char reason[640];		    /* OUT_ABORTED, OUT_CANCELLING */

	/* collected */
	json_object *outputs;
	size_t output_values; /* of the output values sent (ORCHD_MAX_OUTPUT_BYTES) */
	json_object *secrets;
	json_object *state;
	int has_state;
	int state_secret;
	json_object *result;
	char *error_message;
	int retryable;
};

/* A new step from spec (strings copied, action encoded), not started:
 * phase HELLO, proc NONE.  NULL (after error()) for an invalid spec. */
struct orchd_step *orchd_step_new(const struct orchd_step_spec *spec,
				  const struct orchd_step_hooks *hooks);
/* The environment of the extension (see the process contract; TMPDIR
 * replaced when tmpdir is set), a NULL-terminated malloc'ed array of
 * malloc'ed strings. */
char **orchd_step_env(const struct orchd_step_spec *spec, const char *workdir, const char *tmpdir);
/* Spawned: pid and fds are set; queue hello, arm the timeout. */
void orchd_step_spawned(struct orchd_step *st);
/*
 * Sessions: parked is the waiting process of an earlier step of the
 * instance, healthy (see orchd_step_session_ok()); st (new, not spawned,
 * its workdir not made) takes over its process, workdir, cgroup and limits
 * and sends its action at once.  parked is left an empty husk: free it
 * with orchd_step_free() once nothing uses it.
 */
void orchd_step_adopt(struct orchd_step *st, struct orchd_step *parked);
/* After orchd_step_adopt() and the action's encoding: the hello's checks
 * for this action, then the action is sent (or the step fails as it would
 * after a hello that does not fit). */
void orchd_step_resume(struct orchd_step *st);
/* True when the parked step's process still waits as it should: running,
 * nothing on its stdout (no data, no EOF).  Reads nothing. */
int orchd_step_session_ok(struct orchd_step *parked);
/* Its result is delivered: wait as a session (deadlines off). */
void orchd_step_park(struct orchd_step *st);
/* End its session (or a session that cannot wait): close its stdin and
 * wait a grace for the exit, as after any last result. */
void orchd_step_end_session(struct orchd_step *st);

/* Events (each may queue bytes on wq, change deadlines, signal the group). */
void orchd_step_fail(struct orchd_step *st, enum orchd_step_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void orchd_step_stdout(struct orchd_step *st, const char *data, size_t n);
void orchd_step_stderr(struct orchd_step *st, char *data, size_t n);
void orchd_step_eof(struct orchd_step *st, int err);
void orchd_step_exec_report(struct orchd_step *st);
void orchd_step_reaped(struct orchd_step *st, int wstatus, const struct rusage *ru);
/* sig 0: soft (cancel message, SIGTERM after the grace); else orchd was
 * signalled: sig to the group at once with the cancel message.  text is
 * what the result says. */
void orchd_step_cancel(struct orchd_step *st, const char *reason, int sig, const char *text);
void orchd_step_deadlines(struct orchd_step *st, long long now);
/* The earliest armed deadline, or -1. */
long long orchd_step_next_deadline(const struct orchd_step *st);
void orchd_step_kill(struct orchd_step *st);
void orchd_step_close_stdin(struct orchd_step *st);
/* Write what is queued for stdin (non-blocking). */
void orchd_step_write(struct orchd_step *st);
/* Queue a line (taken: freed here) for stdin, unless it is closed. */
void orchd_step_queue(struct orchd_step *st, char *line);
/* Pipes held by a grandchild after reap: stop waiting (read what is there). */
void orchd_step_force_drain(struct orchd_step *st);
/* Reaped, both output pipes closed, no exec report or fetch pending. */
int orchd_step_finished(const struct orchd_step *st);
/* Fill res from a finished step (pointers into st). */
void orchd_step_result(const struct orchd_step *st, struct orchd_step_result *res);
void orchd_step_log(struct orchd_step *st, enum orchd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void orchd_step_free(struct orchd_step *st);

#endif
