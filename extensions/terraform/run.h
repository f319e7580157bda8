/*
 * run: run the tool (tofu/terraform) through the protocol library's runner
 * (op_cmd_run: own process group, stdin from /dev/null, cancel forwarded
 * as SIGTERM then SIGKILL) with terraform's conventions: stdout lines at
 * info (or captured), stderr lines at warning (tofu's "Error: " lines at
 * error), the tails of both kept to explain a failure.
 *
 * Ownership: struct tf_run owns its buffers; release with tf_run_release().
 */
#ifndef TF_RUN_H
#define TF_RUN_H

#include <stdbool.h>

#include <orchd/orchd_protocol.h>

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
	struct op_cmd_result res; /* res.out: captured stdout (capture mode; 64 MiB);
				     res.ran, res.cancelled: see op_cmd_run() */
	struct op_buf err;	  /* the tail of stderr (about the last 64 KiB) */
	struct op_buf outtail;	  /* the tail of stdout when not captured */
};

/* Captured stdout (NUL-terminated). */
const char *tf_run_out(const struct tf_run *r);

/*
 * Run the tool to completion (or cancellation).  Returns 0 when it was
 * started (r->res.ran then tells whether it was reaped normally), -1 when
 * it could not be started (r->res.error).  Once a cancel arrived, every
 * later tf_run_tool() call returns -1 at once with r->res.cancelled set
 * (op_cmd_run does not start after a cancel).
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
