/*
 * core/agent: `orchd worker`, a long-running process that runs the steps a
 * coordinating `orchd run --workers` publishes in etcd (handlers/remote.h
 * has the key layout and the transactions).
 *
 * It registers under a lease of its own (P/work/workers/NAME), claims the
 * jobs its labels meet while it has free slots, runs each with its own
 * supervisor, sandbox and extensions (the --extensions-dir search path of
 * this host), streams the lines, and writes each result fenced by its
 * claim.  A lease it cannot renew for a whole TTL is lost: the steps it
 * holds are cancelled (others have taken them over), their results are
 * still offered and refused, and it registers again.  SIGTERM or SIGINT:
 * it claims nothing more, cancels what runs, hands those steps back (their
 * results say worker_stopped: the coordinator queues them again), revokes
 * its lease and exits 0.
 *
 * Errors: orchd_agent_run() returns an exit code (README "Exit codes"):
 * 0 after a signal, 2 for bad options, 3 when etcd cannot be reached at
 * start or the name is taken.
 */
#ifndef ORCHD_CORE_AGENT_H
#define ORCHD_CORE_AGENT_H

#include <json-c/json.h>
#include <stddef.h>

#include "core/loader.h"
#include "interfaces/engine.h"

struct orchd_agent_opts {
	struct orchd_engine_config etcd; /* endpoints, prefix, tls, auth */
	const char *name;		 /* NULL: HOST-PID */
	json_object *labels;		 /* LABEL -> VALUE; borrowed */
	size_t slots;			 /* steps at once, >= 1 */
	long ttl_ms;			 /* its lease */
	const char *work_dir;		 /* NULL: $TMPDIR/orchd-worker-NAME */
	const struct orchd_registry *reg;
	int verbose;
};

int orchd_agent_run(const struct orchd_agent_opts *o);

#endif
