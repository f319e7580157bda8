/*
 * One shared test driver for extension executables: spawns the extension
 * as a real process over real pipes, sends orchd's hello, answers the
 * extension's hello with one action, and reads stdout (and optionally
 * stderr) until EOF, recording every valid protocol message.  Failures of
 * the harness itself are Check assertions (ck_assert*), so call it from a
 * test body only.
 */
#ifndef ORCHD_TESTS_EXTDRIVER_H
#define ORCHD_TESTS_EXTDRIVER_H

#include <stdbool.h>

#include <json-c/json.h>

struct extdrv_opts {
	const char *exe;	    /* the extension executable (required) */
	const char *action;	    /* action name sent after the hello */
	const char *instance_id;    /* action instance id, NULL: "dev-t" */
	struct json_object *config; /* borrowed, NULL: config_text, else {} */
	struct json_object *state;  /* borrowed, NULL: state_text, else null */
	const char *config_text;    /* JSON text (asserted valid), or NULL */
	const char *state_text;	    /* JSON text (asserted valid), or NULL */
	/*
	 * cwd of the extension, ORCHD_WORKDIR and the action's workdir; must
	 * exist.  NULL: a fresh temporary directory, removed by
	 * extdrv_release().
	 */
	const char *workdir;
	/*
	 * true: the extension gets only PATH, HOME and ORCHD_* (as orchd
	 * gives it); false: the test's environment plus ORCHD_*.
	 */
	bool clean_env;
	const char *pipeline_dir; /* ORCHD_PIPELINE_DIR, or NULL (unset/inherited) */
	const char *home;	  /* HOME override, or NULL */
	const char *path_prefix;  /* directory put first on PATH, or NULL */
	const char *const *unset; /* names removed from the env, NULL-terminated */
	const char *const *env;	  /* "NAME=VALUE" added last, NULL-terminated */
	const char *hello;	  /* orchd hello line override (with '\n'), or NULL */
	const char *cancel_after; /* cancel after a log message containing this (or,
				     with capture_stderr, once stderr holds it) */
	bool cancel_at_once;	  /* send cancel in the same write as the action */
	bool sigterm;		  /* with cancel_after: SIGTERM instead of cancel */
	bool capture_stderr;	  /* collect stderr into stderr_text (else inherited) */
	const char *next_action;  /* a session: sent after the first result */
	bool strict;		  /* every stdout line must be a valid message */
	bool expect_result;	  /* assert a result arrived and exit code 0 */
};

struct extdrv {
	struct json_object *msgs;	  /* every valid message, in order (owned) */
	struct json_object *hello;	  /* borrowed from msgs, or NULL */
	struct json_object *result;	  /* borrowed from msgs, or NULL */
	struct json_object *first_result; /* with next_action: the first one */
	char *nonproto;			  /* non-protocol stdout lines, '\n'-ended (owned) */
	char *stderr_text;		  /* stderr with capture_stderr, else "" (owned) */
	char *workdir;			  /* the workdir used (owned copy) */
	int status;			  /* exit code, 128+signal when killed */
	bool own_workdir;		  /* workdir was created: release removes it */
};

/* Run one action; fills d (release it with extdrv_release()). */
void extdrv_run(const struct extdrv_opts *o, struct extdrv *d);
/* Free what d owns (msgs with every borrowed message, strings, temp workdir). */
void extdrv_release(struct extdrv *d);

/* The last message of type with optional key == value, or NULL (borrowed). */
struct json_object *extdrv_find_last(const struct extdrv *d, const char *type, const char *key,
				     const char *value);
/* The first such message, or NULL (borrowed). */
struct json_object *extdrv_find_first(const struct extdrv *d, const char *type, const char *key,
				      const char *value);
/* The result's summary, "" without one. */
const char *extdrv_summary(const struct extdrv *d);
/* True when the result's status is "success". */
bool extdrv_succeeded(const struct extdrv *d);

/* A test's JSON text parsed (the caller owns it); a Check failure if invalid. */
struct json_object *extdrv_json(const char *text);
/* A Check failure when tool is not on PATH: a missing tool fails, never skips. */
void extdrv_need_tool(const char *tool);

/*
 * One action of a first-party extension of this build tree
 * ($ORCHD_BUILD/libexec/orchd/extensions/orchd-ext-TYPE) run as orchd runs
 * it: only PATH, HOME and ORCHD_* in its environment (no TF_* or ANSIBLE_*
 * of the test machine), ORCHD_PIPELINE_DIR $ORCHD_SRC/PIPELINE_DIR, every
 * stdout line a valid message, and a result with exit status 0 asserted.
 */
struct extdrv_action {
	const char *action;
	struct json_object *config; /* borrowed, NULL: {} */
	struct json_object *state;  /* borrowed, NULL: null */
	const char *workdir;	    /* must exist */
	const char *cancel_after;   /* send cancel after a log message containing this */
};

void extdrv_run_action(const char *type, const char *pipeline_dir, const struct extdrv_action *a,
		       struct extdrv *d);

#endif
