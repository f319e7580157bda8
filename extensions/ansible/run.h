/*
 * run: start ansible-playbook as a child in its own process group, with
 * stdin from /dev/null, hand each of its stdout lines to a callback, turn
 * its stderr lines into protocol log messages, and watch orchd's stdin for
 * a cancel (then SIGTERM to the child's process group, SIGKILL after a
 * grace period).
 *
 * NOTE for the lead: this is a minimal duplicate of the child runners of
 * extensions/exec/extension.c and extensions/terraform/run.c (non-blocking
 * capture, process group, SIGTERM forwarding, SIGKILL after a grace); they
 * should become one shared implementation (e.g. in protocol/) once its
 * owner agrees.  The one addition here is the per-line stdout callback.
 *
 * Ownership: struct ans_run owns its buffers; release with ans_run_release().
 */
#ifndef ANS_RUN_H
#define ANS_RUN_H

#include <stdbool.h>

#include "strbuf.h"

struct op_ext;

/* After a cancel, SIGKILL the child's group if it still runs after this. */
#define ANS_KILL_GRACE_MS 5000

/* Called with each stdout line (valid UTF-8, NUL-terminated, no '\n'). */
typedef void (*ans_line_fn)(void *data, const char *line);

struct ans_run_opts {
	char *const *argv;   /* argv[0] is looked up on PATH (execvp) */
	char *const *env;    /* NULL-terminated "KEY=VALUE" set in the child, or NULL */
	const char *cwd;     /* the child's working directory, or NULL */
	ans_line_fn on_line; /* stdout lines; NULL: logged at level info */
	void *data;	     /* passed to on_line */
	bool quiet;	     /* stderr lines at level debug (warning/error otherwise) */
};

struct ans_run {
	int status;	   /* wait status (valid when ran) */
	bool ran;	   /* the child was started and reaped */
	bool cancelled;	   /* a cancel (or SIGTERM/SIGINT) arrived */
	char why[512];	   /* failure to start, e.g. "cannot run 'ansible-playbook': ..." */
	struct strbuf err; /* the tail of stderr (about the last 64 KiB) */
	struct strbuf out; /* the tail of stdout (about the last 64 KiB) */
};

/*
 * Install the SIGTERM/SIGINT handlers (the extension then notices a signal
 * as a cancel).
 */
void ans_run_setup_signals(void);

/*
 * Run the child to completion (or cancellation).  Returns 0 when it was
 * started (r->ran then tells whether it was reaped normally; see
 * r->status), -1 when it could not be started (r->why) or a cancel had
 * already arrived (r->cancelled).
 */
int ans_run_child(struct op_ext *ext, const struct ans_run_opts *o, struct ans_run *r);
void ans_run_release(struct ans_run *r);

/* True when the run ended with exit status code. */
bool ans_run_exited(const struct ans_run *r, int code);

/* "exit status N" or "killed by signal N" (static buffer). */
const char *ans_run_status_text(const struct ans_run *r);

/* Copy s (len bytes) replacing invalid UTF-8 and NUL bytes with U+FFFD. */
char *ans_utf8_clean(const char *s, size_t len);

#endif
