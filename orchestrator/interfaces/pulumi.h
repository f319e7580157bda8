/*
 * pulumi: the state engine that keeps every stack as a real Pulumi stack,
 * driving the `pulumi` CLI the way Pulumi's Automation API does (fork/exec
 * of `pulumi ... --non-interactive`, JSON output parsed).  Use it through
 * engine.h (core.engine.type: pulumi); this header only exists for
 * orchd_engine_open().  Design, layout and costs: interfaces/PULUMI.md.
 *
 * Summary:
 *   - one Pulumi stack per orchd stack, same name, in the Pulumi project
 *     cfg->project (default: the pipeline name); backend cfg->backend
 *     (default file://<absolute state_dir>/pulumi-backend);
 *   - write() runs `pulumi up` of a generated YAML program whose outputs
 *     are the record (secrets through fn::secret, so Pulumi encrypts them
 *     with PULUMI_CONFIG_PASSPHRASE = orchd's passphrase);
 *   - read() is `pulumi stack output --json [--show-secrets]`;
 *   - history is Pulumi's update history (the update message carries the
 *     run id, action, status, attempts and times); history_append() is a
 *     no-op;
 *   - the pipeline lock is the local engine's lock on state_dir.
 *
 * Every write needs a passphrase (Pulumi's passphrase secrets provider
 * encrypts the whole stack with it); reads work without one, secrets then
 * read masked as with the local engine.
 *
 * Errors follow engine.h; a failing pulumi command is reported as
 * "pulumi stack STACK: <last lines of pulumi's error output>".
 */
#ifndef ORCHD_INTERFACES_PULUMI_H
#define ORCHD_INTERFACES_PULUMI_H

#include <stddef.h>

#include "interfaces/engine.h"
#include "models/pipeline.h"

/* Finds `pulumi` on PATH and reads the passphrase (orchd_crypto_passphrase())
 * once.  Nothing is created or run until an operation needs it. */
int orchd_pulumi_engine_open(const struct orchd_engine_config *cfg, const char *state_dir,
			     const char *pipeline_name, struct orchd_engine **out, char *err,
			     size_t errlen);

#endif
