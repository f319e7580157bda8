/*
 * core/logging: the console.  Every line orchd prints about a run goes
 * through here, so that the formatting of output lives in one module.
 *
 *   - log lines, each prefixed with its instance: "[exec.build] text", the
 *     prefix padded to the longest registered instance id, colored per
 *     instance on a TTY (unless NO_COLOR is set in the environment);
 *   - a live status line on a TTY only ("running 3, done 10, failed 1:
 *     exec.a exec.b ..."), redrawn in place with "\r\033[K" and erased
 *     before any other output;
 *   - an end-of-run summary table (orchd_console_summary());
 *   - a level filter (--quiet: warnings and errors only; --verbose: debug);
 *   - secret masking: every registered secret string is replaced by "***"
 *     in every line before it is printed.
 *
 * Error convention: functions return 0 or -1 (errno set); they never exit.
 * Strings passed in are borrowed (copied when kept).
 */
#ifndef ORCHD_CORE_LOGGING_H
#define ORCHD_CORE_LOGGING_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

enum orchd_log_level {
	ORCHD_LOG_DEBUG = 0,
	ORCHD_LOG_INFO = 1,
	ORCHD_LOG_WARNING = 2,
	ORCHD_LOG_ERROR = 3,
};

/* Where a log line came from. */
enum orchd_log_source {
	ORCHD_LOGSRC_PROTOCOL = 0,    /* a {"type":"log"} (or progress) message */
	ORCHD_LOGSRC_STDERR = 1,      /* a line of the extension's stderr */
	ORCHD_LOGSRC_STDOUT_TEXT = 2, /* a non-protocol line on the extension's stdout */
	ORCHD_LOGSRC_ORCHD = 3,	      /* said by orchd itself about the instance */
};

/* "debug", "info", "warning", "error". */
const char *orchd_log_level_name(enum orchd_log_level l);
/* -1 when name is NULL or unknown. */
int orchd_log_level_from_name(const char *name);
/* "protocol", "stderr", "stdout-text", "orchd". */
const char *orchd_log_source_name(enum orchd_log_source s);

/* ---------------------------------------------------------------------------
 * Secret masking.
 *
 * A set of strings that must never be printed.  orchd_mask_apply() replaces
 * every occurrence of each of them with "***": from the left, at each
 * position the longest secret that starts there wins.  Empty strings are
 * ignored.  One pass over a line whatever the number of secrets: an
 * Aho-Corasick automaton over all of them, built again on an apply after
 * secrets were added (the few added since the last build are matched one
 * by one meanwhile, so that adding secrets one at a time stays cheap).
 * Not thread-safe: the automaton is built inside orchd_mask_apply().
 * ------------------------------------------------------------------------- */

struct orchd_mask; /* opaque */

struct orchd_mask *orchd_mask_new(void);
void orchd_mask_free(struct orchd_mask *m);
/* Register a secret (copied).  Duplicates are ignored.  A secret of several
 * lines also registers each line of at least ORCHD_MASK_MIN_LINE bytes
 * (without its CR), for it reaches a console line by line.  0 or -1. */
#define ORCHD_MASK_MIN_LINE 4
int orchd_mask_add(struct orchd_mask *m, const char *secret);
/* Register a JSON value: a string as itself; an object or array as its
 * compact JSON text and, recursively, every string leaf. */
void orchd_mask_add_json(struct orchd_mask *m, const json_object *v);
size_t orchd_mask_count(const struct orchd_mask *m);
/*
 * Mask text[0..len).  Returns NULL when nothing matched (use the text as
 * is), else a malloc'ed NUL-terminated copy with the secrets replaced (the
 * caller frees it; *outlen, if not NULL, receives its length).
 */
char *orchd_mask_apply(const struct orchd_mask *m, const char *text, size_t len, size_t *outlen);

/* ---------------------------------------------------------------------------
 * The console.
 * ------------------------------------------------------------------------- */

struct orchd_console_opts {
	FILE *out; /* where lines go; NULL: stderr */
	/* lowest level printed: INFO by default, WARNING for --quiet, DEBUG
	 * for --verbose */
	enum orchd_log_level level;
	int color;  /* -1 auto (TTY and no NO_COLOR), 0 never, 1 always */
	int status; /* -1 auto (TTY only), 0 never, 1 always (tests) */
};

struct orchd_console; /* opaque */

/*
 * opts may be NULL (stderr, INFO, auto, auto).  NULL only on ENOMEM.
 * When out is stderr and not a TTY, stderr becomes fully buffered (64 KiB,
 * for the rest of the process): lines reach it in blocks when the buffer
 * fills, at orchd_console_flush() (the scheduler calls it after each turn
 * of its event loop), orchd_console_free() or exit.  error()/warning() go
 * through the same stdio stream, so their order with console lines holds.
 * On a TTY, lines are written as they come.
 */
struct orchd_console *orchd_console_new(const struct orchd_console_opts *opts);
/* Erases the status line and flushes; does not close out. */
void orchd_console_free(struct orchd_console *c);
/* Write what is buffered for out now (c may be NULL). */
void orchd_console_flush(struct orchd_console *c);

/* The secret mask applied to every line (owned by the console). */
struct orchd_mask *orchd_console_mask(struct orchd_console *c);

/* Declare an instance id up front so that prefixes align and colors are
 * stable (optional: unknown ids are registered on first use). */
void orchd_console_add_instance(struct orchd_console *c, const char *id);

/*
 * Print one line of instance id (NULL: orchd's own line, no prefix) at
 * level: "[id]   text\n".  Lines below the console's level are dropped.
 * Levels warning and error are marked ("warning: ", "error: ").  text may
 * contain anything; control characters other than tab are printed as '?'
 * so that an extension cannot move the cursor.
 */
void orchd_console_log(struct orchd_console *c, const char *id, enum orchd_log_level level,
		       const char *text);
void orchd_console_logf(struct orchd_console *c, const char *id, enum orchd_log_level level,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Several lines of id at once, each ended by '\n' in text[0..len) (a
 * missing last '\n' is implied): the same as one orchd_console_log() per
 * line, written in blocks. */
void orchd_console_lines(struct orchd_console *c, const char *id, enum orchd_log_level level,
			 const char *text, size_t len);

/* Update the live status line (drawn on a TTY only). running: ids of the
 * running instances (borrowed). */
void orchd_console_status(struct orchd_console *c, size_t done, size_t failed,
			  const char *const *running, size_t nrunning);
/* Erase the status line if shown. */
void orchd_console_status_clear(struct orchd_console *c);

/* One row of the end-of-run summary; filled by the scheduler. */
struct orchd_summary_row {
	const char *id;	    /* "exec.build" */
	const char *status; /* "success", "failed", "skipped", "timed out", ... */
	int attempts;
	long long wall_ms;
	long long cpu_ms; /* user + system */
	long max_rss_kb;  /* 0: unknown */
};

/* Print the summary table (always printed, whatever the level). */
void orchd_console_summary(struct orchd_console *c, const struct orchd_summary_row *rows,
			   size_t nrows);

/* Format helpers (exposed for tests): "1.2s", "850ms", "2m03s"; "12.3 MiB". */
void orchd_format_duration(char *buf, size_t n, long long ms);
void orchd_format_kib(char *buf, size_t n, long kib);
/* "512 bytes", "64 KiB", "10 MiB" (exact), else rounded as above. */
void orchd_format_size(char *buf, size_t n, int64_t bytes);

/* ---------------------------------------------------------------------------
 * The journal of a run: where every line about an instance (or orchd
 * itself) goes.  Each line is kept for the instance's log file and JUnit
 * (up to 1 MiB an instance, then "[log truncated]") and shown: on the
 * console as it comes, as one block per instance when it ends (grouped),
 * or as one JSON object per line on stderr (json: "time", "instance",
 * "level", "source", "message"; masked; below min_level dropped).
 * ------------------------------------------------------------------------- */

struct orchd_journal_opts {
	int json;			/* --log-format json */
	int grouped;			/* --output grouped */
	enum orchd_log_level min_level; /* json: the lowest level written */
};

struct orchd_journal; /* opaque */

/* ids[0 .. n) are the instances' ids (borrowed, they must outlive the
 * journal); the console is borrowed too.  Never NULL (dies on ENOMEM). */
struct orchd_journal *orchd_journal_new(struct orchd_console *con, const char *const *ids, size_t n,
					const struct orchd_journal_opts *opts);
void orchd_journal_free(struct orchd_journal *j);
/* One line of instance i, or of orchd itself when i is ORCHD_JOURNAL_ORCHD. */
#define ORCHD_JOURNAL_ORCHD ((size_t)-1)
void orchd_journal_line(struct orchd_journal *j, size_t i, enum orchd_log_level level,
			enum orchd_log_source src, const char *text);
/* Several lines at once, each ended by '\n' in text[0..len) (see
 * orchd_step_log_lines_fn): the same as one orchd_journal_line() per line.
 * text may be modified during the call. */
void orchd_journal_lines(struct orchd_journal *j, size_t i, enum orchd_log_level level,
			 enum orchd_log_source src, char *text, size_t len);
/* Grouped output: print instance i's block now (it ended). */
void orchd_journal_flush(struct orchd_journal *j, size_t i);
/* Every line of instance i, '\n'-separated, unmasked (the report masks). */
const char *orchd_journal_text(const struct orchd_journal *j, size_t i);
/*
 * A positioned error about instance i, in the form of orchd's own
 * diagnostics: "WHERE: error: ID: TEXT" on the console (WHERE is
 * "FILE:LINE:COLUMN"), "WHERE: TEXT" in the instance's log.  Masked like
 * every line.
 */
void orchd_journal_diag(struct orchd_journal *j, size_t i, const char *where, const char *text);
/*
 * Hold instance i's console lines until orchd_journal_flush(): it may still
 * declare secret outputs, and a line printed now could show one before it
 * is known to be secret.  Held lines are printed masked when its step ends.
 */
void orchd_journal_hold(struct orchd_journal *j, size_t i);
/* Held lines kept in memory per instance; more goes to a temporary file. */
#define ORCHD_GROUP_MEM (1 << 20)

#endif
