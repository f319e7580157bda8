/*
 * core/doctor: `orchd doctor`, what this host and user offer orchd.
 *
 * The report: each isolation layer (available or not, and why not: the
 * kernel, a sysctl, AppArmor, a container's seccomp filter, a missing
 * cgroup delegation), what isolation strict amounts to here, the state
 * engine, the extensions found with what their manifests declare, and the
 * tools they need (found on PATH or not).
 *
 * --verify: the isolation verification.  orchd runs its probe extension
 * (orchestrator/probe.c, installed in libexec/orchd/probe/) in a real run
 * of a throwaway pipeline, under the isolation of the given pipeline's
 * core (or the defaults), beside a victim instance of its own, with a
 * passphrase set, pids and memory limits, and a second instance under
 * network: none.  The probe tries each attack of README "Security model"
 * and says, attack by attack, contained or exposed; orchd checks from
 * outside what the probe cannot see (a daemon left behind, the host port
 * it listens on) and prints one line per attack.
 *
 * Ownership: nothing kept; everything made for --verify is removed.
 * Returns an exit code: 0, 1 when an attack was not contained, 3 when the
 * verification could not run.
 */
#ifndef ORCHD_CORE_DOCTOR_H
#define ORCHD_CORE_DOCTOR_H

#include <stddef.h>

#include "models/pipeline.h"

struct orchd_doctor_opts {
	const char *const *ext_dirs; /* --extensions-dir, in order */
	size_t next_dirs;
	const struct orchd_pipeline *p; /* NULL: the defaults */
	int verify;
};

int orchd_doctor(const struct orchd_doctor_opts *o);

#endif
