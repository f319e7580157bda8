/*
 * core/report: what a run leaves behind for a shell user and a CI job.
 *
 *   - RUN_DIR/logs/<TYPE.NAME>.log   every line of each instance (masked);
 *   - RUN_DIR/report.json            the JSON report (always);
 *   - --report FILE                  a copy of the JSON report;
 *   - --junit FILE                   JUnit XML (Surefire's schema, which
 *                                    Jenkins reads): one testcase per
 *                                    instance, <failure>, <skipped/>,
 *                                    retries as flakyFailure/rerunFailure;
 *   - --trace FILE                   Chrome trace-event JSON, one span per
 *                                    phase of each instance;
 *   - --metrics FILE                 Prometheus/OpenMetrics text;
 *   - --report-html FILE             one self-contained HTML page: summary,
 *                                    timeline, dependency graph, outputs,
 *                                    logs (no script, nothing fetched).
 *
 * The JSON report is the one source: every other format is rendered from
 * it (orchd_report_render()), during the run or later from a stored
 * report.json (`orchd report`), and gives the same bytes both ways.  Its
 * schema is documented in README ("Reports").  Every string that reaches
 * a file goes through the secret mask first, and secret outputs are
 * written as "***".  Files are written to a temporary name and renamed,
 * so a reader never sees half a report.
 *
 * Errors: the writers return 0, or -1 after error() naming the file; they
 * write as much as they can.  Renderers return malloc'ed text, or NULL
 * after error() when the report is not one they can read.
 */
#ifndef ORCHD_CORE_REPORT_H
#define ORCHD_CORE_REPORT_H

#include <json-c/json.h>
#include <stddef.h>

#include "core/logging.h"

/*
 * A span of an instance's life in a run: how long it stayed in one state
 * of the scheduler's state machine (core/scheduler.c), and the event that
 * ended it.  The scheduler records one at every transition out of a
 * state that waits or works; the timeline of the HTML report, the trace
 * and the JUnit retries are all drawn from them.
 */
enum orchd_span_kind {
	ORCHD_SPAN_BLOCKED, /* waiting for its dependencies */
	ORCHD_SPAN_QUEUED,  /* ready, waiting for a free slot (-j) */
	ORCHD_SPAN_RUN,	    /* an extension step: sources, spawn, handshake, action */
	ORCHD_SPAN_BACKOFF, /* between a failed attempt and the next */
	ORCHD_SPAN_STORE,   /* its record being made durable */
	ORCHD_SPAN_NKINDS
};

struct orchd_span {
	unsigned char kind;	    /* enum orchd_span_kind */
	unsigned char validate;	    /* 1: in the validate phase */
	const char *outcome;	    /* the event that ended it, e.g. "succeeded",
				 * "retry", "failed" (a static string) */
	int attempt;		    /* RUN, BACKOFF: the attempt (1-based); else 0 */
	long long start_ms, end_ms; /* unix ms */
	long long setup_ms;	    /* RUN: sources, spawn and handshake (ms before
				     * the action was sent); -1 unknown */
	char *reason;		    /* RUN that did not succeed: why; else NULL */
};

/* The name of a span kind: "blocked", "queued", "run", "backoff", "store". */
const char *orchd_span_kind_name(enum orchd_span_kind k);

/* One instance, as the scheduler saw it.  Everything is borrowed. */
struct orchd_report_node {
	const char *id, *type, *name, *stack;
	const char *status; /* "success", "failed", "skipped", ... */
	const char *reason; /* "" when none */
	int attempts;
	long long started_at; /* unix ms, 0 when never started */
	long long wall_ms, cpu_ms;
	long max_rss_kb;
	int changed;	      /* -1 unknown */
	json_object *outputs; /* key -> value, may be NULL */
	json_object *secrets; /* key -> true, may be NULL */
	const char *log;      /* the instance's lines, '\n'-separated */
	int failed, skipped;
	const char *isolation;		/* "strict" or "basic" */
	const struct orchd_span *spans; /* in time order */
	size_t nspans;
	const char *const *depends; /* ids of its selected dependencies */
	size_t ndepends;
	long long last_success_ms; /* unix ms of its last success (this run's or
				    * its record's); 0: unknown */
	int unselected;		   /* not part of this run (--target, --exclude...):
				    * only its id, type, name and dependencies
				    * are reported, for the graph */
};

/* The JSON report as an object (caller puts).  run_dir: where the run's
 * logs are (recorded so that a stored report finds them), may be NULL. */
json_object *orchd_report_json(const char *run_id, const char *pipeline, const char *action,
			       int exit_code, long long started_at, long long ended_at,
			       const struct orchd_report_node *n, size_t nn,
			       const struct orchd_mask *mask, const char *run_dir);

/* CI metadata from the environment (Jenkins, GitHub Actions, GitLab CI):
 * an object with "provider" and what is known of build_url, build_tag,
 * build_number, job and commit; NULL outside CI (caller puts). */
json_object *orchd_ci_metadata(void);

enum orchd_report_format {
	ORCHD_REPORT_JUNIT,
	ORCHD_REPORT_TRACE,
	ORCHD_REPORT_METRICS,
	ORCHD_REPORT_HTML,
};

/* The text of an instance's log for a renderer (masked), malloc'ed, or
 * NULL when there is none. */
typedef char *(*orchd_report_log_fn)(void *arg, const char *id);

/* Render a JSON report (as orchd_report_json() made it, or read back)
 * into fmt: malloc'ed text, or NULL after error().  log gives the logs
 * (JUnit's system-out); NULL: read RUN_DIR/logs/ID.log of the report's
 * run_dir, when it is there. */
char *orchd_report_render(json_object *rep, enum orchd_report_format fmt, orchd_report_log_fn log,
			  void *log_arg);

/* Where a run's reports go (NULL: not written). */
struct orchd_report_paths {
	const char *report;  /* JSON */
	const char *junit;   /* JUnit XML */
	const char *trace;   /* Chrome trace events */
	const char *metrics; /* OpenMetrics text */
	const char *html;    /* one self-contained page */
};

/* Write logs, RUN_DIR/report.json and each of paths.  run_dir may be NULL
 * (then only the paths). */
int orchd_report_write_all(const char *run_id, const char *pipeline, const char *action,
			   int exit_code, long long started_at, long long ended_at,
			   const struct orchd_report_node *n, size_t nn,
			   const struct orchd_mask *mask, const struct orchd_report_paths *paths,
			   const char *run_dir);

/* Render the stored JSON report at path into each of out (the run's own
 * report.json when path is a run directory).  0, or -1 after error(). */
int orchd_report_convert(const char *path, const struct orchd_report_paths *out);

/* Write data to path atomically (temp file, fsync, rename).  0 or -1
 * after error(). */
int orchd_write_file_atomic(const char *path, const char *data, size_t len);

#endif
