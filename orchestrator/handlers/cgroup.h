/*
 * handlers/cgroup: the control group of one step, where the host lets
 * orchd make one: what enforces execution.limits.memory and .pids over
 * every process of an instance together, and tells afterwards whether the
 * instance hit them.
 *
 * Where: cgroup v2 when orchd's own cgroup is a delegated subtree with the
 * pids and memory controllers (the case of a systemd service or scope with
 * Delegate=yes, or of a container's cgroup namespace): one child cgroup a
 * step, "orchd-PID.N" beside orchd's own.  If orchd's cgroup holds orchd
 * alone, orchd first moves itself to a leaf "orchd-PID.supervisor" so that
 * the controllers can be enabled (the no-internal-process rule).  Else
 * cgroup v1, when the pids and memory hierarchies are writable (root on
 * a v1 or hybrid host): a child cgroup in each.  Else nothing, and the
 * sandbox falls back to setrlimit (RLIMIT_AS, RLIMIT_NPROC).
 *
 * Lifecycle: orchd_cgroup_new() before the spawn; orchd_cgroup_attach()
 * from the spawner's parent hook, while the child waits before it execs
 * (so everything it starts is inside); orchd_cgroup_verdict() once the
 * step has ended; orchd_cgroup_free() kills what is left in it and
 * removes it (a cgroup still busy is retried by the next free and by
 * orchd_cgroup_sweep() at exit).
 *
 * Errors: -1/NULL with a message in the caller's buffer; nothing dies.
 */
#ifndef ORCHD_HANDLERS_CGROUP_H
#define ORCHD_HANDLERS_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

#include "models/pipeline.h"

struct orchd_cgroup_host {
	int version;	 /* 2, 1, or 0: no usable cgroup */
	char why[256];	 /* why not, when version is 0 */
	char where[256]; /* e.g. "v2 /sys/fs/cgroup/user.slice/..." */
};

/* What this host offers orchd (probed once; cheap afterwards). */
const struct orchd_cgroup_host *orchd_cgroup_probe(void);

struct orchd_cgroup;

/*
 * A new cgroup for one step with lim's memory and pids limits; NULL when
 * the host has no usable cgroup or lim sets neither (err "").  NULL with a
 * message in err when making it failed.
 */
struct orchd_cgroup *orchd_cgroup_new(const struct orchd_limits *lim, char *err, size_t errlen);
/* Put pid in it (from the spawner's parent hook); 0 or -1 (errno). */
int orchd_cgroup_attach(struct orchd_cgroup *cg, pid_t pid);
/* Which limit of cg the step hit, e.g. "exceeded its memory limit (256
 * MiB)"; "" when none. */
void orchd_cgroup_verdict(const struct orchd_cgroup *cg, char *buf, size_t len);
/* Kill what is left in it, remove it and free it (NULL: nothing). */
void orchd_cgroup_free(struct orchd_cgroup *cg);
/* At exit: remove the cgroups that were still busy, and orchd's own leaf. */
void orchd_cgroup_sweep(void);

#endif
