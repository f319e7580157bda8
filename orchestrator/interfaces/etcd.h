/*
 * etcd: the state engine that keeps every stack record, its history and the
 * pipeline lock in an etcd cluster (v3 API, through its JSON gateway:
 * common/etcd.h), so that orchd runs on many machines share one state.
 * The key layout, the lock and its lease, chunking and the failure modes
 * are in interfaces/STATE.md, "etcd".  Use it through engine.h; this
 * header only exists for orchd_engine_open().
 */
#ifndef ORCHD_INTERFACES_ETCD_H
#define ORCHD_INTERFACES_ETCD_H

#include <stddef.h>

#include "interfaces/engine.h"

/* cfg: core.engine (endpoints, prefix, lock_ttl, tls, auth); the
 * environment's ORCHD_ETCD_ENDPOINTS (comma-separated) replaces its
 * endpoints, ORCHD_ETCD_PASSWORD is the password of auth.user (else
 * auth.password_file), ORCHD_PASSPHRASE(_FILE) seals secrets as the local
 * engine does.  Nothing is sent before the first operation. */
int orchd_etcd_engine_open(const struct orchd_engine_config *cfg, const char *state_dir,
			   const char *pipeline_name, struct orchd_engine **out, char *err,
			   size_t errlen);

#endif
