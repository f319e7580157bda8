/*
 * run: start the tool (tofu/terraform) as a child in its own process group,
 * with stdin from /dev/null, and forward its output as protocol log
 * messages while watching orchd's stdin for a cancel.
 *
 * NOTE for the lead: this is a minimal duplicate of the child runner of
 * extensions/exec/extension.c (non-blocking capture, process group,
 * SIGTERM forwarding, SIGKILL after a grace); both should become one shared
 * implementation (e.g. in protocol/) once its owner agrees.
 *
 * Ownership: struct tf_run owns its buffers; release with tf_run_release().
 */
#ifndef TF_RUN_H
#define TF_RUN_H

#include <stdbool.h>

#include "strbuf.h"

struct op_ext;

/* After a cancel, SIGKILL the tool's group if it still runs after this. */
#define TF_KILL_GRACE_MS 8000

struct tf_run_opts {
	char *const *argv; /* argv[0] is looked up on PATH (execvp) */
	char *const *env;  /* NULL-terminated "KEY=VALUE" set in the child, or NULL */
	const char *cwd;   /* the child's working directory, or NULL */
	bool capture;	   /* stdout into tf_run.out instead of info logs */
	bool quiet_stderr; /* stderr lines at level debug instead of warning */
};

struct tf_run {
	int status;	       /* wait status (valid when ran) */
	bool ran;	       /* the tool was started and reaped */
	bool cancelled;	       /* a cancel (or SIGTERM/SIGINT) arrived */
	char why[512];	       /* failure to start, e.g. "cannot run 'tofu': ..." */
	struct strbuf out;     /* captured stdout (capture mode; capped at 64 MiB) */
	struct strbuf err;     /* the tail of stderr (about the last 64 KiB) */
	struct strbuf outtail; /* the tail of stdout when not captured */
};

/*
 * Install the SIGTERM/SIGINT handlers (the extension then notices a
 * signal as a cancel) and make sure SIGCHLD is deliverable.
 */
void tf_run_setup_signals(void);

/*
 * Run the tool to completion (or cancellation).  Returns 0 when it was
 * started (r->ran then tells whether it was reaped normally; see
 * r->status), -1 when it could not be started (r->why).  Once a cancel
 * arrived, every later tf_run_tool() call returns -1 at once with
 * r->cancelled set.
 */
int tf_run_tool(struct op_ext *ext, const struct tf_run_opts *o, struct tf_run *r);
void tf_run_release(struct tf_run *r);

/* True when the run ended with exit status code. */
bool tf_run_exited(const struct tf_run *r, int code);

/*
 * A one-line description of a failed run for a result summary:
 * "cannot run ...", "cancelled", or the tool's error headlines and detail
 * from stderr (falling back to the last stdout lines), with the exit
 * status.  what: e.g. "tofu apply".  Malloc'ed.
 */
char *tf_run_failure(const struct tf_run *r, const char *what);

#endif
