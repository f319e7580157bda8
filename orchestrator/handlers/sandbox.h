/*
 * handlers/sandbox: what an extension process can see and do (isolation
 * `strict`; README "Security model").  The supervisor starts every
 * extension through op_child_start() (protocol/orchd_protocol.h); under
 * strict, orchd_sandbox_apply() gives that child its namespaces and hooks:
 *
 *   clone       new user (the caller's uid and gid mapped to themselves),
 *               PID, mount, IPC and UTS namespaces, and a network namespace
 *               of its own with network: none;
 *   reaper      the child is pid 1 of its PID namespace and the extension
 *               pid 2: what the extension starts (setsid daemons included)
 *               dies with the instance;
 *   mounts      a fresh /proc (its own processes only); the state
 *               directory covered by an empty read-only tmpfs and the
 *               pipeline file (and the passphrase file) by /dev/null; the
 *               whole tree read-only; then its workdir, the declared write
 *               paths and a private /tmp and /dev/shm writable;
 *   exec        resource limits, no_new_privs, every capability dropped,
 *               Landlock (writes only where the mounts allow them), and a
 *               seccomp filter (libseccomp) that fails with EPERM what no
 *               extension needs: ptrace, mount, namespaces, kexec, bpf,
 *               keyctl, module loading, perf_event_open ...
 *
 * What the host allows is probed once (orchd_sandbox_probe()): without
 * namespaces strict falls back to Landlock (writes confined to the workdir
 * and the declared paths), seccomp and no_new_privs, and says so; without
 * Landlock either, to seccomp and no_new_privs.  `basic` applies none of
 * this (the supervisor's fd and environment hygiene only).
 *
 * Memory: orchd_sandbox_prepare() builds everything the child needs (paths,
 * the seccomp program, the limits) before the fork: the hooks only make
 * system calls.  Errors: 0/-1 with a message in the caller's buffer.
 */
#ifndef ORCHD_HANDLERS_SANDBOX_H
#define ORCHD_HANDLERS_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "handlers/cgroup.h"
#include "models/pipeline.h"
#include "orchd_protocol.h"

/* What this host offers (probed once per process). */
struct orchd_sandbox_host {
	int namespaces;	  /* user + PID + mount + IPC + UTS, /proc and read-only remount work */
	int netns;	  /* a network namespace of its own (network: none) */
	int seccomp;	  /* the filter could be built and the kernel takes filters */
	int landlock_abi; /* 0: none */
	char why[256];	  /* why namespaces are not available, "" when they are */
};

/* Probe the host (cheap after the first call: the result is kept). */
const struct orchd_sandbox_host *orchd_sandbox_probe(void);

/* One line naming the layers strict gets on this host, e.g. "strict (user,
 * pid, mount, ipc, uts namespaces; seccomp; landlock v7; no_new_privs)". */
void orchd_sandbox_describe(const struct orchd_sandbox_host *h, char *buf, size_t len);

/* What a step's sandbox needs to know; every pointer is borrowed during
 * orchd_sandbox_prepare() only. */
struct orchd_sandbox_spec {
	int basic; /* isolation basic: the limits only */
	int network_none;
	const char *workdir;	  /* absolute, exists */
	const char *const *hide;  /* absolute paths covered (files or directories) */
	const char *const *read;  /* absolute paths made readable (NULL-terminated) */
	const char *const *write; /* absolute paths made writable (created if missing) */
	const struct orchd_limits *limits;
	/* its cgroup, or NULL: joined before exec; it then enforces memory
	 * and pids (else RLIMIT_AS and RLIMIT_NPROC do) */
	struct orchd_cgroup *cgroup;
};

struct orchd_sandbox; /* a prepared plan */

/*
 * Prepare the sandbox of one step on host h.  NULL with a message in err
 * when a declared path cannot be made, or an allocation fails.
 */
struct orchd_sandbox *orchd_sandbox_prepare(const struct orchd_sandbox_host *h,
					    const struct orchd_sandbox_spec *spec, char *err,
					    size_t errlen);
/* 1 when the extension gets a private /tmp (namespaces); else its TMPDIR
 * is a directory of its workdir, the only place it may write. */
int orchd_sandbox_private_tmp(const struct orchd_sandbox *sb);
/* 0 for isolation basic (a plan of limits only). */
int orchd_sandbox_strict(const struct orchd_sandbox *sb);
/* Set c's clone flags, flags and hooks; sb must outlive op_child_start(). */
void orchd_sandbox_apply(struct orchd_sandbox *sb, struct op_child *c);
void orchd_sandbox_free(struct orchd_sandbox *sb);

/*
 * In the reaper program (orchd-reaper): the plan orchd_sandbox_apply()
 * encoded (op_child.reaper_plan), as the hooks of c.  0 (an empty plan:
 * no hooks), or -1 with errno EPROTO when it does not parse.
 */
int orchd_sandbox_decode(const void *plan, size_t len, struct op_child *c);

#endif
