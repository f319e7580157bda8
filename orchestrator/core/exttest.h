/*
 * core/exttest: `orchd ext test`, the conformance runner an extension's
 * author runs first.  It drives one extension executable, as orchd would
 * but without a sandbox, through every rule of protocol/PROTOCOL.md that can
 * be observed from outside: the manifest, the handshake (a wider and a
 * disjoint protocol range), describe, validate of a sample config and of
 * broken variants (whose errors must name their keys), plan, apply, a
 * second apply (idempotence), destroy, cancellation within the grace,
 * garbage, an unknown message and a closed stdin, and, across all of it,
 * the framing of every line it wrote, its exit status and the secrecy of
 * its secret outputs.
 *
 * Each check ends PASS, FAIL, WARN (a SHOULD of the protocol not met) or
 * SKIP (not applicable: an optional action the extension does not list),
 * printed as one line naming the PROTOCOL.md section it enforces.
 *
 * Nothing here exits; output goes to the given streams.
 */
#ifndef ORCHD_CORE_EXTTEST_H
#define ORCHD_CORE_EXTTEST_H

#include <stdio.h>

struct orchd_exttest_opts {
	const char *path;   /* the executable orchd-ext-TYPE, or a directory holding one */
	const char *config; /* sample config: a JSON object file, or a pipeline file (its
			       first instance of the type); NULL: pipeline.yaml beside the
			       executable, else {} */
	const char *junit;  /* write a JUnit XML report here, or NULL */
	long grace_ms;	    /* cancellation and exit bound; 0: 10000 */
	int verbose;	    /* print every line exchanged */
};

/* Run every check; 0 when none failed, 1 when one did, -1 when the tests
 * could not run at all (no executable): the reason is on err. */
int orchd_exttest_run(const struct orchd_exttest_opts *o, FILE *out, FILE *err);

#endif
