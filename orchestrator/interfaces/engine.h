/*
 * engine: the state engine interface, the only way the core touches state:
 * a struct of operations, so that the core never knows which engine keeps
 * its stacks (Pulumi is reached only through this interface, and another
 * engine is another struct).  Implementations:
 *   - local  (interfaces/local.c): embedded, files under a state directory,
 *            the default; layout in interfaces/STATE.md;
 *   - pulumi (interfaces/pulumi.c): drives the `pulumi` CLI, one Pulumi
 *            stack per stack; see interfaces/PULUMI.md;
 *   - etcd   (interfaces/etcd.c): keys in an etcd cluster, through its v3
 *            JSON gateway, the lock a leased key; see STATE.md, "etcd".
 *
 * A stack holds the record of one extension instance, named
 * <core.stack>-<type>-<instance> (orchd_instance_stack()).  The scheduler:
 *   open -> lock -> for each instance: read (its own record and its
 *   upstreams' outputs), run, write + history_append -> unlock -> close
 * (the writes of instances that end together as write_deferred, one sync
 * for all of them, then their history_append).
 * `orchd outputs/status/history` open and read without locking.
 *
 * Errors: every operation returns 0 on success, or -1 with a message
 * (lowercase, no full stop, naming the stack or file) written to the
 * caller's buffer `err` of `errlen` bytes (redis's anetSetError style: no
 * global error state, nothing printed).  read/remove/select return 1 when
 * the stack does not exist ("never applied").  Warnings that do not fail an
 * operation (a torn history line, a stale lock taken over) go to stderr
 * through warning().
 *
 * Ownership of json-c objects: a struct orchd_stack_record owns one
 * reference to each of its objects; orchd_stack_record_release() puts them.
 * read() fills a record the caller initialised and then releases.  write()
 * only reads the record it is given (it takes no reference).
 */
#ifndef ORCHD_INTERFACES_ENGINE_H
#define ORCHD_INTERFACES_ENGINE_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "models/pipeline.h"

/* The CI build that ran an action (core/report.h: orchd_ci_metadata());
 * every member NULL outside CI or when unknown. */
struct orchd_ci_info {
	char *provider; /* "jenkins", "github", "gitlab" */
	char *build_url;
	char *build_tag;
	char *build_number;
	char *job;
	char *commit;
};

/* The members of ci, in a fixed order, with their JSON keys: for the
 * engines that store them one by one. */
#define ORCHD_CI_FIELDS(X)              \
	X(provider, "provider")         \
	X(build_url, "build_url")       \
	X(build_tag, "build_tag")       \
	X(build_number, "build_number") \
	X(job, "job")                   \
	X(commit, "commit")

/* ci as a JSON object (NULL when every member is NULL), and back. */
json_object *orchd_ci_info_json(const struct orchd_ci_info *ci);
void orchd_ci_info_from_json(struct orchd_ci_info *ci, const json_object *o);
void orchd_ci_info_copy(struct orchd_ci_info *dst, const struct orchd_ci_info *src);
void orchd_ci_info_release(struct orchd_ci_info *ci);

/* What else is known of an action: its figures (0 when unknown: written
 * before they were recorded) and the build that ran it. */
struct orchd_action_meta {
	int64_t cpu_ms;
	long max_rss_kb;
	struct orchd_ci_info ci;
};

/* meta as JSON members of o ("cpu_ms", "max_rss_kb", "ci" when known), and
 * back; copy and release. */
void orchd_action_meta_to_json(const struct orchd_action_meta *m, json_object *o);
void orchd_action_meta_from_json(struct orchd_action_meta *m, const json_object *o);
void orchd_action_meta_copy(struct orchd_action_meta *dst, const struct orchd_action_meta *src);
void orchd_action_meta_release(struct orchd_action_meta *m);

/* The result of the last action applied to a stack. */
struct orchd_last_result {
	char *run_id;	    /* NULL when never run */
	char *action;	    /* "apply", "destroy", ... */
	char *status;	    /* "succeeded", "failed", "cancelled", ... */
	int64_t started_at; /* unix ms */
	int64_t ended_at;   /* unix ms */
	int attempts;
	struct orchd_action_meta meta;
};

struct orchd_stack_record {
	/* The extension's state (any JSON value; NULL = none). */
	json_object *state;
	/* Store the state encrypted.  On read: it was stored encrypted. */
	int state_secret;
	/* On read: the state is secret and could not be decrypted because no
	 * passphrase is set; state is NULL.  On write with state NULL: keep
	 * the state stored (still encrypted) as it is. */
	int state_masked;
	/*
	 * Outputs, never NULL after _init: an object KEY -> {"value": ANY,
	 * "secret": BOOL}.  On read, a secret output that cannot be decrypted
	 * (no passphrase) reads as {"value": null, "secret": true,
	 * "masked": true}; written back like that, the stored ciphertext is
	 * kept, so a run without the passphrase never loses secrets.
	 */
	json_object *outputs;
	char *config_hash; /* of the config blob last applied; NULL = none */
	char *inputs_hash; /* of the upstream outputs consumed; NULL = none */
	struct orchd_last_result last;
	/* On read: number of masked values (outputs and state). */
	int masked;
};

/* One line of a stack's history. Strings owned by the entry. */
struct orchd_history_entry {
	char *run_id;
	char *action;
	char *status;
	int64_t started_at; /* unix ms */
	int64_t ended_at;   /* unix ms */
	int attempts;
	struct orchd_action_meta meta;
};

/* Who takes the pipeline lock (recorded for whoever waits for it). */
struct orchd_lock_request {
	const char *run_id;  /* may be NULL */
	const char *command; /* e.g. "orchd run pipeline.yaml"; may be NULL */
	/* Poll the lock for this long before failing; 0 = try once. */
	long timeout_ms;
};

struct orchd_engine;

struct orchd_engine_ops {
	const char *name;
	/* Make sure the stack exists (create != 0) or tell whether it does:
	 * 0 exists (or was created), 1 missing and !create, -1 error. */
	int (*select)(struct orchd_engine *e, const char *stack, int create, char *err,
		      size_t errlen);
	/* The pipeline-wide lock.  Fails with a message naming the holder
	 * when it is still held after req->timeout_ms. */
	int (*lock)(struct orchd_engine *e, const struct orchd_lock_request *req, char *err,
		    size_t errlen);
	int (*unlock)(struct orchd_engine *e, char *err, size_t errlen);
	/* Optional: is the lock still held?  -1 with a message once it is
	 * known lost (etcd: its lease expired); cheap, called before every
	 * instance starts.  A lock that cannot be lost has none. */
	int (*lock_check)(struct orchd_engine *e, char *err, size_t errlen);
	/* rec must be _init'ed; filled on 0; untouched (still empty) on 1/-1. */
	int (*read)(struct orchd_engine *e, const char *stack, struct orchd_stack_record *rec,
		    char *err, size_t errlen);
	/* Replace the stack's record atomically (all or nothing). */
	int (*write)(struct orchd_engine *e, const char *stack,
		     const struct orchd_stack_record *rec, char *err, size_t errlen);
	/*
	 * Group commit (optional, both or neither): write_deferred is write
	 * whose record is durable, and visible to read, only after the next
	 * sync returns 0; sync makes every deferred write durable at once.
	 * When sync fails, no deferred write since the last sync may be taken
	 * as stored.  Without them, orchd_engine_write_deferred() is write()
	 * and orchd_engine_sync() does nothing.
	 */
	int (*write_deferred)(struct orchd_engine *e, const char *stack,
			      const struct orchd_stack_record *rec, char *err, size_t errlen);
	int (*sync)(struct orchd_engine *e, char *err, size_t errlen);
	/* Delete the stack's record (a destroy): its history stays, the
	 * audit trail, with h appended when not NULL.  0, 1 missing (nothing
	 * done, nothing appended), 2 removed but h could not be appended (err
	 * says why: a warning, as for a run's history line), -1. */
	int (*remove)(struct orchd_engine *e, const char *stack,
		      const struct orchd_history_entry *h, char *err, size_t errlen);
	/* Stack names, sorted; *names is a malloc'ed array of malloc'ed
	 * strings (free with orchd_engine_names_free). */
	int (*list)(struct orchd_engine *e, char ***names, size_t *n, char *err, size_t errlen);
	int (*history_append)(struct orchd_engine *e, const char *stack,
			      const struct orchd_history_entry *h, char *err, size_t errlen);
	/* Oldest first; *entries malloc'ed (free with orchd_history_free).
	 * A missing history is an empty one. */
	int (*history_read)(struct orchd_engine *e, const char *stack,
			    struct orchd_history_entry **entries, size_t *n, char *err,
			    size_t errlen);
	/* Release everything (unlocking if still locked); e is freed. */
	void (*close)(struct orchd_engine *e);
	/*
	 * How many read, write and remove calls may run at once, from as many
	 * threads, each on a different stack (0 or 1: one at a time).  The
	 * other calls (select, lock, unlock, list, history, close) are never
	 * concurrent with anything.
	 */
	int max_concurrent;
};

/* ops->max_concurrent, at least 1. */
int orchd_engine_concurrency(const struct orchd_engine *e);

struct orchd_engine {
	const struct orchd_engine_ops *ops;
	void *priv;
	char *state_dir;     /* as given to orchd_engine_open() */
	char *pipeline_name; /* for engines that need a project name */
};

/*
 * Open the engine named by cfg (local, or pulumi: pulumi.h).  state_dir is
 * the resolved state directory (see orchd_state_dir()); it is used as given
 * in messages and created only when something is written or locked.  On success *out is the
 * engine; close it with orchd_engine_close().
 */
int orchd_engine_open(const struct orchd_engine_config *cfg, const char *state_dir,
		      const char *pipeline_name, struct orchd_engine **out, char *err,
		      size_t errlen);
void orchd_engine_close(struct orchd_engine *e);

/* Thin wrappers over e->ops, same contracts as above. */
int orchd_engine_select(struct orchd_engine *e, const char *stack, int create, char *err,
			size_t errlen);
int orchd_engine_lock(struct orchd_engine *e, const struct orchd_lock_request *req, char *err,
		      size_t errlen);
int orchd_engine_unlock(struct orchd_engine *e, char *err, size_t errlen);
int orchd_engine_lock_check(struct orchd_engine *e, char *err, size_t errlen);
int orchd_engine_read(struct orchd_engine *e, const char *stack, struct orchd_stack_record *rec,
		      char *err, size_t errlen);
/*
 * Read n stacks, as many at once as the engine takes (one thread each):
 * rc[i] is read()'s 0 or 1 for stacks[i] into *recs[i] (each _init'ed).
 * 0; or -1 with err from the failing read of the lowest index (the
 * records read are then left for the caller to release).
 */
int orchd_engine_read_many(struct orchd_engine *e, size_t n, const char *const *stacks,
			   struct orchd_stack_record *const *recs, int *rc, char *err,
			   size_t errlen);
int orchd_engine_write(struct orchd_engine *e, const char *stack,
		       const struct orchd_stack_record *rec, char *err, size_t errlen);
int orchd_engine_write_deferred(struct orchd_engine *e, const char *stack,
				const struct orchd_stack_record *rec, char *err, size_t errlen);
int orchd_engine_sync(struct orchd_engine *e, char *err, size_t errlen);
int orchd_engine_remove(struct orchd_engine *e, const char *stack,
			const struct orchd_history_entry *h, char *err, size_t errlen);
int orchd_engine_list(struct orchd_engine *e, char ***names, size_t *n, char *err, size_t errlen);
int orchd_engine_history_append(struct orchd_engine *e, const char *stack,
				const struct orchd_history_entry *h, char *err, size_t errlen);
int orchd_engine_history_read(struct orchd_engine *e, const char *stack,
			      struct orchd_history_entry **entries, size_t *n, char *err,
			      size_t errlen);

/*
 * The part of a record every engine stores the same way: adds
 * "config_hash", "inputs_hash" and "last" {run_id, action, status,
 * started_at, ended_at, attempts} to the object o / reads them from it
 * (missing or mistyped fields read as NULL or 0).
 */
void orchd_record_meta_to_json(const struct orchd_stack_record *rec, json_object *o);
/* o[key] = s as a JSON string, or null when s is NULL. */
void orchd_json_add_str(json_object *o, const char *key, const char *s);
void orchd_record_meta_from_json(json_object *o, struct orchd_stack_record *rec);

void orchd_stack_record_init(struct orchd_stack_record *rec);
void orchd_stack_record_release(struct orchd_stack_record *rec);
/* Add output key (takes the caller's reference to value, which may be NULL
 * for JSON null) to rec->outputs, replacing any previous one. */
void orchd_stack_record_set_output(struct orchd_stack_record *rec, const char *key,
				   json_object *value, int secret);
void orchd_last_result_release(struct orchd_last_result *r);

void orchd_history_entry_release(struct orchd_history_entry *h);
void orchd_history_free(struct orchd_history_entry *entries, size_t n);
void orchd_engine_names_free(char **names, size_t n);

/* 1 if stack is usable as a file name: orchd_name_is_safe()'s rule. */
int orchd_stack_name_ok(const char *stack);

#endif
