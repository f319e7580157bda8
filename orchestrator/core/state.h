/*
 * state: the core's use of the state engine (interfaces/engine.h): where
 * the state directory is, opening the engine the pipeline names, the
 * pipeline-wide lock, and run ids.
 *
 * Errors: 0, or -1 with a message in the caller's buffer err/errlen.
 */
#ifndef ORCHD_CORE_STATE_H
#define ORCHD_CORE_STATE_H

#include <stddef.h>

#include "interfaces/engine.h"
#include "models/pipeline.h"

/*
 * The state directory, malloc'ed:
 *   - cli_state_dir (--state-dir) when given, as given (relative to the cwd);
 *   - else core.state_dir: absolute as is, relative to the directory of the
 *     pipeline file;
 *   - else ".orchd" in the directory of the pipeline file.
 * A pipeline file "p.yaml" in the cwd gives ".orchd", "ci/p.yaml" gives
 * "ci/.orchd" (the path stays as the user would write it, for messages).
 */
char *orchd_state_dir(const struct orchd_pipeline *p, const char *cli_state_dir);

/* Open the engine of p->core.engine on state_dir. */
int orchd_state_open(const struct orchd_pipeline *p, const char *state_dir,
		     struct orchd_engine **out, char *err, size_t errlen);

/*
 * Take the pipeline lock for a run: the holder record names run_id and the
 * command line (argv joined with spaces; argv may be NULL).  timeout_ms as
 * --lock-timeout (0 = try once).
 */
int orchd_state_lock(struct orchd_engine *e, const char *run_id, int argc, char *const argv[],
		     long timeout_ms, char *err, size_t errlen);

/* A new run id "r-YYYYMMDDTHHMMSSZ-XXXXXXXX" (UTC time + 32 random bits),
 * malloc'ed.  Sorts by start time. */
char *orchd_run_id_new(void);

#endif
