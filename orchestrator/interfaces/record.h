/*
 * record: orchd's own stack record document, and its secrets, for the
 * engines that store that document themselves (local: a file per stack;
 * etcd: a key per stack).  One codec, so that a record and its encrypted
 * values are byte for byte the same whichever of them keeps it.
 *
 * The document (interfaces/STATE.md, "The stack record"):
 *   {"format": "orchd-stack", "version": 1, "stack": NAME, "updated_at": MS,
 *    "state": ANY, "state_secret": BOOL, "outputs": {KEY: {...}},
 *    "config_hash": ..., "inputs_hash": ..., "last": {...}}
 * A secret value is stored as
 *   {"secret": true, "enc": "aes-256-gcm", "nonce": B64, "ct": B64}
 * with associated data "orchd\0STACK\0output\0KEY" (or "orchd\0STACK\0state"),
 * so it cannot be moved between stacks or keys.  The key is derived (scrypt)
 * from the passphrase (ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE) and the
 * parameters of a small "crypto" document, made with the first secret and
 * kept where the engine keeps its records.
 *
 * The sealer holds the passphrase and the derived key; the engine gives it
 * the two operations on its crypto document (load, and store unless it
 * exists).  Not thread-safe by itself: an engine that reads from several
 * threads calls orchd_sealer_key() once before (or under its own lock).
 *
 * Errors: 0 or -1 with a message in err (engine.h's conventions).
 */
#ifndef ORCHD_INTERFACES_RECORD_H
#define ORCHD_INTERFACES_RECORD_H

#include <json-c/json.h>
#include <stddef.h>

#include "crypto.h"
#include "interfaces/engine.h"

#define ORCHD_PASS_HINT "(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)"

struct orchd_sealer {
	char *pass; /* NULL when none is set */
	struct orchd_crypto_key key;
	/* "state directory DIR", "etcd prefix P": says whose key is wrong */
	char *owner;
	/* the crypto document's name in messages (a path, an etcd key) */
	char *doc;
	/* 0 and *buf (malloc'ed, NUL-terminated), 1 missing, -1 error */
	int (*load)(void *ctx, char **buf, size_t *len, char *err, size_t errlen);
	/* store buf unless a document exists: 0 stored, 1 one exists (it is
	 * loaded again), -1 error */
	int (*store)(void *ctx, const char *buf, size_t len, char *err, size_t errlen);
	void *ctx;
};

/* Read the passphrase from the environment (orchd_crypto_passphrase());
 * owner and doc are copied. */
int orchd_sealer_init(struct orchd_sealer *s, const char *owner, const char *doc, char *err,
		      size_t errlen);
void orchd_sealer_release(struct orchd_sealer *s);

/* Derive the key once (loading the crypto document, or with create making
 * it when missing).  Needs a passphrase. */
int orchd_sealer_key(struct orchd_sealer *s, int create, char *err, size_t errlen);

/* Seal value (any JSON) as {"secret": true, "enc", "nonce", "ct"} bound to
 * (stack, what), making the crypto document if there is none; NULL on
 * error.  Open one: 0 and *value (a new reference, NULL for JSON null).
 * For other documents than records (the work queue's jobs and results). */
json_object *orchd_sealer_seal(struct orchd_sealer *s, const char *stack, const char *what,
			       json_object *value, char *err, size_t errlen);
int orchd_sealer_open(struct orchd_sealer *s, const char *stack, const char *what, json_object *enc,
		      const char *where, json_object **value, char *err, size_t errlen);

/* Parse a whole buffer as one JSON value (trailing whitespace allowed);
 * NULL with *why on failure. */
json_object *orchd_json_parse_all(const char *buf, size_t len, const char **why);

/* Check rec before anything is written: the shape of its outputs, and
 * whether a secret needs the key (*need_key; then a passphrase is set). */
int orchd_record_precheck(struct orchd_sealer *s, const char *stack,
			  const struct orchd_stack_record *rec, int *need_key, char *err,
			  size_t errlen);

/* 1 when rec carries a value read masked (no passphrase): writing it needs
 * the stored document, whose ciphertext is kept. */
int orchd_record_has_masked(const struct orchd_stack_record *rec);

/* The document of rec (a new object), sealing its secrets; old is the
 * stored document (NULL if none), the source of masked values. */
json_object *orchd_record_to_json(struct orchd_sealer *s, const char *stack, json_object *old,
				  const struct orchd_stack_record *rec, char *err, size_t errlen);

/* Parse and check a stored document's header; where names it in messages
 * (a path, an etcd key).  A new object, or NULL. */
json_object *orchd_record_load(const char *stack, const char *where, const char *buf, size_t len,
			       char *err, size_t errlen);

/* Fill rec (_init'ed) from a loaded document, opening its secrets (or
 * masking them when no passphrase is set). */
int orchd_record_from_json(struct orchd_sealer *s, const char *stack, const char *where,
			   json_object *o, struct orchd_stack_record *rec, char *err,
			   size_t errlen);

/* A history entry as one JSON object (a new one), and back (strings
 * copied; missing fields read as NULL or 0). */
json_object *orchd_history_to_json(const struct orchd_history_entry *h);
void orchd_history_from_json(json_object *o, struct orchd_history_entry *h);

#endif
