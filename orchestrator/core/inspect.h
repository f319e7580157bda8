/*
 * core/inspect: the read-only commands, `orchd status`, `orchd outputs` and
 * `orchd history`.
 *
 * They open the state engine without taking the pipeline lock, read the
 * stored records (or histories) of the pipeline's instances, and print to
 * stdout, as text or JSON (--json).  They start no extension and write
 * nothing; a run in progress may be seen half way (each record is atomic).
 *
 *   status   per stack: last action, status, end time, and whether it is
 *            stale (core/refs.h: orchd_refs_stale(), the same rule as
 *            `orchd run --only-stale`);
 *   outputs  the stored outputs, secret ones as "***" unless
 *            show_secrets (which needs the passphrase);
 *   history  every action recorded for each stack (limit > 0: the last
 *            limit entries).
 *
 * instance (TYPE.NAME or a unique NAME) limits the command to one
 * instance.  Returns the exit code: 0, 2 for an unknown instance, 3 when
 * the state cannot be read (or a secret cannot be shown).
 */
#ifndef ORCHD_CORE_INSPECT_H
#define ORCHD_CORE_INSPECT_H

#include "models/pipeline.h"

enum orchd_show {
	ORCHD_SHOW_STATUS = 0, /* last action, status, time, stale */
	ORCHD_SHOW_OUTPUTS,    /* stored outputs */
	ORCHD_SHOW_HISTORY,    /* each stack's history */
};

int orchd_show(struct orchd_pipeline *p, enum orchd_show what, const char *instance,
	       const char *state_dir, int json, int show_secrets, long limit);

#endif
