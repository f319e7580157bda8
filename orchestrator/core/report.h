/*
 * core/report: what a run leaves behind for a shell user and a CI job.
 *
 *   - RUN_DIR/logs/<TYPE.NAME>.log   every line of each instance (masked);
 *   - RUN_DIR/report.json            the JSON report (always);
 *   - --report FILE                  a copy of the JSON report;
 *   - --junit FILE                   JUnit XML: one testcase per instance,
 *                                    <failure> for failed, <skipped/> for
 *                                    skipped, its log as <system-out>.
 *
 * The JSON report's schema is documented in README ("Reports").  Every
 * string that reaches a file goes through the secret mask first, and
 * secret outputs are written as "***".  Files are written to a temporary
 * name and renamed, so a reader never sees half a report.
 *
 * Errors: orchd_report_write_all() returns 0, or -1 after error() naming
 * the file; it writes as much as it can.
 */
#ifndef ORCHD_CORE_REPORT_H
#define ORCHD_CORE_REPORT_H

#include <json-c/json.h>
#include <stddef.h>

#include "core/logging.h"

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
	const char *isolation; /* "strict" or "basic" */
};

/* The JSON report as an object (caller puts). */
json_object *orchd_report_json(const char *run_id, const char *pipeline, const char *action,
			       int exit_code, long long started_at, long long ended_at,
			       const struct orchd_report_node *n, size_t nn,
			       const struct orchd_mask *mask);

/* JUnit XML text (malloc'ed). */
char *orchd_report_junit(const char *pipeline, const char *action,
			 const struct orchd_report_node *n, size_t nn,
			 const struct orchd_mask *mask);

/* Write logs, RUN_DIR/report.json and, when given, report_path and
 * junit_path.  run_dir may be NULL (then only the two paths). */
int orchd_report_write_all(const char *run_id, const char *pipeline, const char *action,
			   int exit_code, long long started_at, long long ended_at,
			   const struct orchd_report_node *n, size_t nn,
			   const struct orchd_mask *mask, const char *report_path,
			   const char *junit_path, const char *run_dir);

/* Write data to path atomically (temp file, fsync, rename).  0 or -1
 * after error(). */
int orchd_write_file_atomic(const char *path, const char *data, size_t len);

#endif
