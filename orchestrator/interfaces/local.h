/*
 * local: the embedded state engine (the default).  Files under a state
 * directory; the layout and its guarantees are in interfaces/STATE.md and
 * at the top of local.c.  Use it through engine.h; this header only exists
 * for orchd_engine_open().
 */
#ifndef ORCHD_INTERFACES_LOCAL_H
#define ORCHD_INTERFACES_LOCAL_H

#include <stddef.h>

#include "interfaces/engine.h"

/* The passphrase is read from the environment (orchd_crypto_passphrase())
 * here, once; the key is derived on first use and cached until close. */
int orchd_local_engine_open(const char *state_dir, struct orchd_engine **out, char *err,
			    size_t errlen);

#endif
