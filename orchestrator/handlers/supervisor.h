/*
 * handlers/supervisor: the process-isolated supervisor, orchd's one event
 * loop.
 *
 * One struct orchd_supervisor runs many extension steps
 * (handlers/extension.h: one action of one instance, one attempt, one
 * process, or a process shared with the instance's previous step: see
 * Sessions below) at once, multiplexed with poll(2) (no thread per child, no
 * FD_SETSIZE limit), and watches the fds of the core's workers
 * (core/worker.h), so that nothing slow ever runs on the loop: a step's
 * sources and its fetch requests are fetched on the supervisor's own
 * worker, the scheduler's state writes on its worker, and the loop goes on
 * serving pipes, deadlines and signals meanwhile.
 *
 * Typical use (the scheduler):
 *
 *   struct orchd_supervisor_opts o = ORCHD_SUPERVISOR_OPTS_INIT;
 *   o.log = my_log; o.done = my_done; o.cb_data = me;
 *   struct orchd_supervisor *sup = orchd_supervisor_new(&o);
 *   orchd_supervisor_watch(sup, orchd_worker_fd(w), collect, w);
 *   struct orchd_step_spec s = ORCHD_STEP_SPEC_INIT;
 *   s.id = "exec.build"; s.exe = "/.../orchd-ext-exec"; s.action = OP_ACTION_APPLY;
 *   s.instance = "build"; s.stack = "dev-exec-build"; s.config = cfg; ...
 *   s.ctx = my_step;
 *   orchd_supervisor_start(sup, &s);
 *   while (work is left)
 *           orchd_supervisor_wait(sup, next_timer_or_-1);
 *   if (orchd_supervisor_interrupted(sup)) exit 128+that signal after reports
 *   orchd_supervisor_free(sup);
 *
 * Every child is started through op_child_start() (the one spawner,
 * protocol/orchd_protocol.h) with the process contract of
 * handlers/extension.h.
 *
 * Signals: orchd_supervisor_new() blocks SIGCHLD, SIGINT and SIGTERM and
 * reads them from a signalfd inside the loop; SIGPIPE and SIGHUP are
 * ignored; orchd_supervisor_free() restores the previous mask and
 * dispositions.  Create at most one supervisor per process, from the main
 * thread, before starting other threads (they inherit the blocked mask).
 * On SIGINT or SIGTERM the supervisor forwards the same signal to every
 * child's process group, sends each running extension a cancel message
 * (reason "interrupted"), stops the fetches in flight, SIGKILLs what is
 * left after the grace period, and reports each step as
 * ORCHD_STEP_CANCELLED; orchd_supervisor_interrupted() then returns the
 * signal number and orchd_supervisor_start() refuses new steps.  A second
 * SIGINT/SIGTERM SIGKILLs every group at once.
 *
 * Reaping: each SIGCHLD read from the signalfd makes the loop call
 * wait4(pid, WNOHANG) for every running step (signals merge, so every step
 * is checked), collecting the exit status and rusage.  It never calls
 * wait4(-1): children that other parts of orchd spawn and wait for (git,
 * pulumi, on a worker) are not stolen.  A step is finished once it is
 * reaped AND its stdout and stderr are closed AND no fetch of it is in
 * flight; then its workdir is removed on the worker (it can be big), and
 * the done callback follows.
 *
 * Sessions (PROTOCOL.md §7.6): a step started with spec->park whose
 * extension declares feature "session" is reported done at its result,
 * and its process waits, off the loop (not polled, not reaped: nothing
 * happens to it), for a step of the same id started with spec->adopt,
 * which sends its action to that process instead of starting one.  At most
 * max_sessions wait at once, holding at most max_sessions_kb of private
 * memory in all; beyond, a result ends the process as usual.
 * A session that broke while waiting (it exited, or wrote on stdout) is
 * ended and the new step starts a process of its own.
 *
 * Requests (protocol "request"/"response"): a request after the action is
 * answered by core/sources.h (orchd_sources_request(): op "fetch" into the
 * step's workdir, http(s)/git:// only, confined to the workdir) on the
 * supervisor's worker, in order; the response is queued on the extension's
 * stdin when it is done.  A request after the result is ignored with a
 * warning; one of a step being stopped is refused ("cancelled").
 *
 * Error convention: functions returning int return 0 or -1 (with a message
 * printed by error()); they never exit.  Whatever goes wrong with a step
 * itself (cannot execute, protocol error, crash ...) is reported through
 * the done callback, never as a return value.
 */
#ifndef ORCHD_HANDLERS_SUPERVISOR_H
#define ORCHD_HANDLERS_SUPERVISOR_H

#include <stddef.h>

#include "handlers/extension.h"

struct orchd_supervisor_opts {
	orchd_step_log_fn log;		 /* may be NULL: lines dropped */
	orchd_step_progress_fn progress; /* may be NULL: progress logged at info */
	orchd_step_done_fn done;	 /* required */
	void *cb_data;
	const char *orchd_version;	   /* NULL: ORCHD_VERSION */
	orchd_step_output_fn output;	   /* may be NULL */
	orchd_step_mask_fn mask;	   /* may be NULL */
	orchd_step_log_lines_fn log_lines; /* may be NULL: log per line */
	/* sessions that may wait for their next action at once (each holds
	 * its process and three fds); 0: ORCHD_MAX_SESSIONS, fewer when the
	 * fd limit is low */
	size_t max_sessions;
	/* and the private memory they may hold in all (KiB, measured at
	 * each result from /proc); 0: a quarter of MemAvailable, between
	 * 64 MiB and 2 GiB */
	long long max_sessions_kb;
};

#define ORCHD_MAX_SESSIONS 1024

#define ORCHD_SUPERVISOR_OPTS_INIT                                   \
	{                                                            \
		NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0 \
	}

struct orchd_supervisor; /* opaque */

/*
 * Create the loop: raise RLIMIT_NOFILE's soft limit to the hard one, block
 * SIGCHLD/SIGINT/SIGTERM into a signalfd, ignore SIGPIPE/SIGHUP.  NULL
 * (after error()) on failure.
 */
struct orchd_supervisor *orchd_supervisor_new(const struct orchd_supervisor_opts *opts);

/*
 * Start one step: create its workdir, fetch its sources (on the worker),
 * spawn the executable, queue hello.  start() waits for none of it: a
 * failure (the workdir, a source, ENOENT, EACCES, ENOEXEC ...) is reported
 * through the done callback with ORCHD_STEP_SPAWN_ERROR from
 * orchd_supervisor_wait().  Returns -1 (after error()) only for an
 * invalid spec, or when the run is interrupted; then no callback follows.
 */
int orchd_supervisor_start(struct orchd_supervisor *sup, const struct orchd_step_spec *spec);

/*
 * Watch fd (a worker's, core/worker.h): while it is readable, each wait()
 * calls fn(arg) on the loop's thread; fn may start steps.  At most one
 * watch per fd, for the supervisor's life; 0 or -1.
 */
int orchd_supervisor_watch(struct orchd_supervisor *sup, int fd, void (*fn)(void *arg), void *arg);

/*
 * Run the loop once: wait until something happens (a child's I/O or exit,
 * a signal, a worker, one of the step deadlines) or until deadline_ms
 * (absolute, in now_ms() time; -1: no caller deadline), handle it, and
 * return.  Returns immediately when callbacks are pending, or when no step
 * is running, no fd is watched and deadline_ms is -1.  0, or -1 on a
 * system error of poll/signalfd.
 */
int orchd_supervisor_wait(struct orchd_supervisor *sup, long long deadline_ms);

/* Call orchd_supervisor_wait() until no step is left. 0 or -1. */
int orchd_supervisor_run(struct orchd_supervisor *sup);

/* Number of started steps whose done callback has not run yet, and of ended
 * sessions whose process has not exited yet (waiting sessions do not
 * count). */
size_t orchd_supervisor_running(const struct orchd_supervisor *sup);

/*
 * End every waiting session (PROTOCOL.md §7.6: stdin closed, the exit
 * awaited a grace, then SIGTERM and SIGKILL as after any result): call it
 * when no further action of theirs will come, then wait() until
 * running() is 0.  Interrupts and cancel_all() end them too.
 */
void orchd_supervisor_close_sessions(struct orchd_supervisor *sup);
/* The same for the waiting session of one step id, if there is one. */
void orchd_supervisor_end_session(struct orchd_supervisor *sup, const char *id);

/*
 * Cancel every running step (fail-fast): send cancel with reason (e.g.
 * "interrupted"), SIGTERM each group, SIGKILL after the grace.  Steps end
 * as ORCHD_STEP_CANCELLED (unless they had already succeeded).
 */
void orchd_supervisor_cancel_all(struct orchd_supervisor *sup, const char *reason);

/* The same for the running steps of one id (an `orchd worker` asked to
 * stop one job). */
void orchd_supervisor_cancel(struct orchd_supervisor *sup, const char *id, const char *reason);

/*
 * SIGINT or SIGTERM once the run was interrupted by that signal, else 0.
 * Also picks up a signal that arrived since the last wait (so it is exact
 * between phases, when nothing runs); a signal arriving after the last
 * call stays pending and takes its default action once
 * orchd_supervisor_free() restores the signal mask.
 */
int orchd_supervisor_interrupted(struct orchd_supervisor *sup);

/*
 * Stop the fetches in flight and wait for them, SIGKILL every remaining
 * process group, reap every child (never leaves a zombie), close every fd,
 * remove workdirs, restore the signal mask and dispositions.  No done
 * callback runs.  NULL is a no-op.
 */
void orchd_supervisor_free(struct orchd_supervisor *sup);

/* The reaper program, orchd-reaper, beside this executable's libexec or
 * under PREFIX (malloc'ed), or NULL when it is not installed: the reaper
 * is then a fork of orchd. */
char *orchd_reaper_path(void);

#endif
