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

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "interfaces/engine.h"

/* cfg: core.engine (endpoints, prefix, lock_ttl, tls, auth); the
 * environment's ORCHD_ETCD_ENDPOINTS (comma-separated) replaces its
 * endpoints, ORCHD_ETCD_PASSWORD is the password of auth.user (else
 * auth.password_file), ORCHD_PASSPHRASE(_FILE) seals secrets as the local
 * engine does.  Nothing is sent before the first operation. */
int orchd_etcd_engine_open(const struct orchd_engine_config *cfg, const char *state_dir,
			   const char *pipeline_name, struct orchd_engine **out, char *err,
			   size_t errlen);

/*
 * What the work queue (handlers/remote.h) shares with an etcd engine: its
 * client (thread-safe), its key prefix (ends with '/'), and once locked the
 * lock key and its create revision (the fence every write of the run
 * compares; 0 when not locked).  -1 when e is not an etcd engine.
 */
struct orchd_etcd;
struct orchd_etcd_view {
	struct orchd_etcd *c;
	const char *prefix;
	const char *lock_key;
	int64_t fence;
	int has_pass; /* a passphrase is set: jobs and results are sealed */
};
int orchd_etcd_engine_view(struct orchd_engine *e, struct orchd_etcd_view *v);

/* Seal and open a JSON value with the engine's secret key (record.h's
 * orchd_sealer_seal/open, under the engine's lock); thread-safe. */
json_object *orchd_etcd_engine_seal(struct orchd_engine *e, const char *stack, const char *what,
				    json_object *value, char *err, size_t errlen);
int orchd_etcd_engine_unseal(struct orchd_engine *e, const char *stack, const char *what,
			     json_object *enc, const char *where, json_object **value, char *err,
			     size_t errlen);

#endif
