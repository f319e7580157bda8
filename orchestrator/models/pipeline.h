/*
 * models/pipeline: the C models of one pipeline file, what the core knows
 * of it: the core settings and each instance with its edges, references and
 * config blob.  Built by core/bootstrap from YAML, read by every other part
 * of the core.  Extensions never see these structs: they receive
 * one instance's config blob over the protocol.
 *
 * Ownership: a struct orchd_pipeline owns everything reachable from it
 * (strings, arrays and json-c objects); free it with orchd_pipeline_free().
 * json_object pointers stored here hold one reference owned by the model;
 * callers that keep one beyond the pipeline's life take json_object_get().
 *
 * Positions are 1-based line and column in the pipeline file (column counts
 * characters, as libyaml does), 0 when unknown.
 */
#ifndef ORCHD_MODELS_PIPELINE_H
#define ORCHD_MODELS_PIPELINE_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

struct orchd_pos {
	unsigned line;
	unsigned column;
	unsigned file; /* index into the pipeline's files; 0: the pipeline file */
};

/* A file the pipeline was read from: files[0] is the pipeline file, the
 * others its imports (core.imports), each with where it was imported. */
struct orchd_source_file {
	char *path;	     /* as shown in messages */
	size_t parent;	     /* index of the importing file; (size_t)-1 for files[0] */
	struct orchd_pos at; /* the import entry in the parent */
	int git;	     /* read from a git repository (a pinned import) */
};

/* Which fields of an orchd_exec were set explicitly (for merging). */
enum orchd_exec_field {
	ORCHD_EXEC_MAX_ATTEMPTS = 1 << 0,
	ORCHD_EXEC_TIMEOUT = 1 << 1,
	ORCHD_EXEC_BACKOFF_INITIAL = 1 << 2,
	ORCHD_EXEC_BACKOFF_MAX = 1 << 3,
	ORCHD_EXEC_BACKOFF_FACTOR = 1 << 4,
	ORCHD_EXEC_GRACE = 1 << 5,
	ORCHD_EXEC_LIMIT_MEMORY = 1 << 6,
	ORCHD_EXEC_LIMIT_PIDS = 1 << 7,
	ORCHD_EXEC_LIMIT_CPU = 1 << 8,
	ORCHD_EXEC_LIMIT_FILES = 1 << 9,
	ORCHD_EXEC_LIMIT_OUTPUT = 1 << 10,
	ORCHD_EXEC_HANDSHAKE = 1 << 11,
	ORCHD_EXEC_RUNS_ON = 1 << 12,
};

/* execution.runs_on: the worker labels an instance needs ("k=v,k=v", keys
 * sorted; "" for any worker), kept inline so that an orchd_exec copies by
 * value. */
#define ORCHD_RUNS_ON_MAX 256
#define ORCHD_LABEL_RULE \
	"1 to 63 letters, digits, '_', '.', '/' or '-', starting with a letter or digit"
/* A label key or value of runs_on and `orchd worker --labels`. */
int orchd_label_ok(const char *s, size_t len);

/* execution.limits: what one attempt of an instance may use (0: no limit
 * of orchd's; see README "Security model" for how each is enforced). */
struct orchd_limits {
	int64_t memory;	      /* bytes */
	int64_t pids;	      /* processes and threads at once */
	int64_t cpu_time_ms;  /* CPU time of each process */
	int64_t open_files;   /* descriptors of each process */
	int64_t output_bytes; /* stdout + stderr bytes the extension writes */
};

/* Execution settings: core.execution_defaults, overridable per instance. */
struct orchd_exec {
	int max_attempts;		 /* >= 1; default 1 */
	int64_t timeout_ms;		 /* per attempt; 0 = no timeout (default) */
	int64_t backoff_initial_ms;	 /* delay before the 2nd attempt; default 1000 */
	int64_t backoff_max_ms;		 /* cap of the delay; default 60000 */
	double backoff_factor;		 /* multiplier per attempt; default 2.0 */
	int64_t grace_ms;		 /* SIGTERM -> SIGKILL grace; default 10000 */
	int64_t handshake_ms;		 /* start -> hello; default 30000 */
	struct orchd_limits limits;	 /* default: pids 4096, the rest none */
	char runs_on[ORCHD_RUNS_ON_MAX]; /* orchd run --workers only */
	unsigned set;			 /* mask of enum orchd_exec_field */
};

enum orchd_isolation_level {
	ORCHD_ISOLATION_STRICT = 0, /* the sandbox (handlers/sandbox.h); the default */
	ORCHD_ISOLATION_BASIC,	    /* fd and environment hygiene only */
};

/* Which fields of an orchd_isolation were set explicitly (for merging). */
enum orchd_isolation_field {
	ORCHD_ISO_LEVEL = 1 << 0,
	ORCHD_ISO_NETWORK = 1 << 1,
};

/* core.isolation, and each instance's isolation (level and network
 * override core's; paths add to them). */
struct orchd_isolation {
	enum orchd_isolation_level level;
	int network_none;     /* network: none */
	char **read, **write; /* extra paths as written (absolute, ~/..., or
				   relative to the pipeline's directory) */
	size_t nread, nwrite;
	unsigned set;	      /* mask of enum orchd_isolation_field */
	struct orchd_pos pos; /* of the isolation value */
};

enum orchd_engine_type {
	ORCHD_ENGINE_LOCAL = 0,
	ORCHD_ENGINE_PULUMI,
	ORCHD_ENGINE_ETCD,
};

struct orchd_engine_config {
	enum orchd_engine_type type;
	char *backend; /* pulumi: backend URL, NULL = default */
	char *project; /* pulumi: project name, NULL = pipeline name */
	/* etcd (interfaces/STATE.md, "etcd"): the client URLs; the key prefix
	 * (NULL = "orchd/PIPELINE/"); the lease of the lock; TLS files and a
	 * user (the password comes from ORCHD_ETCD_PASSWORD or password_file) */
	char **endpoints;
	size_t nendpoints;
	char *prefix;
	int64_t lock_ttl_ms; /* 0 = the default, 10 s */
	char *ca_file, *cert_file, *key_file;
	char *user, *password_file;
	struct orchd_pos pos;
};

struct orchd_core {
	char *stack;		    /* default "dev" */
	struct orchd_exec defaults; /* execution_defaults */
	int parallelism;	    /* 0 = number of CPUs */
	int workers;		    /* core.execution.workers: run on `orchd worker`s */
	struct orchd_engine_config engine;
	char *state_dir; /* NULL = .orchd beside the pipeline file */
	/* core.env: NAME -> string, set in every extension's environment. */
	json_object *env; /* never NULL */
	/* core.defaults: TYPE -> object, deep-merged under each instance of
	 * that type (instance keys win).  Never NULL.  Holds no references;
	 * its strings are stored as the extension sees them. */
	json_object *type_defaults;
	struct orchd_isolation isolation; /* core.isolation */
	/* Positions of the keys of core.defaults, in the object's order. */
	struct orchd_pos *type_defaults_pos;
	size_t ntype_defaults;
	/* core.extensions: the packages the pipeline needs (core/extpkg.h),
	 * in file order. */
	struct orchd_ext_req *ext_reqs;
	size_t next_reqs, ext_reqs_alloc;
	struct orchd_pos pos;
};

/* One entry of core.extensions: TYPE: {source, version, ref, path, sha256}
 * (all but source may be NULL). */
struct orchd_ext_req {
	char *type, *source, *version, *ref, *path, *sha256;
	struct orchd_pos pos; /* of the TYPE key */
};

/* One reference `${{ TYPE.NAME.outputs.KEY }}` found in an instance config. */
struct orchd_ref {
	char *target; /* "TYPE.NAME" as written */
	char *key;
	char *path;	     /* key path of the string holding it, e.g. "p.exec[1].message" */
	size_t target_index; /* resolved instance index, valid after validation */
	struct orchd_pos pos;
};

/* One step from a config blob's root to a value: an object key, or an
 * array index when key is NULL. */
struct orchd_loc {
	char *key;
	size_t index;
};

/* A part of a string holding references (core/refs.h): literal text
 * (escapes resolved), or reference refs[ref] as written in text. */
struct orchd_site_part {
	char *text;
	size_t len;
	size_t ref; /* (size_t)-1: literal text */
};

/* A string of the config blob that holds references, parsed once at load:
 * where it is (loc[0 .. nloc) from the blob's root) and its parts.  The
 * config blob itself keeps the string as written. */
struct orchd_ref_site {
	struct orchd_loc *loc;
	size_t nloc;
	struct orchd_site_part *parts;
	size_t nparts;
};

struct orchd_instance {
	char *type;		   /* extension type: the section key, e.g. "terraform" */
	char *name;		   /* instance name, unique among the instances of its type */
	char *id;		   /* "type.name" */
	struct orchd_pos pos;	   /* of the instance mapping */
	struct orchd_pos name_pos; /* of the name value */
	int enabled;		   /* default 1 */
	struct orchd_exec exec;	   /* merged: core defaults < instance overrides */
	struct orchd_isolation isolation; /* its own block (see orchd_isolation_merge()) */

	/* depends_on as written ("TYPE.NAME" or "NAME") and where. */
	char **depends_on;
	struct orchd_pos *depends_pos;
	size_t ndepends;

	/* Resolved edges (indices into pipeline->inst), after validation:
	 * depends_on plus references, deduplicated, in first-seen order. */
	size_t *deps;
	size_t ndeps;

	struct orchd_ref *refs;
	size_t nrefs;
	/* The strings holding them; after validation in the order a walk of
	 * the merged config blob meets them (orchd_refs_order()). */
	struct orchd_ref_site *sites;
	size_t nsites;

	/* The rest of the instance mapping: the config blob the extension sees
	 * (before the core merges its defaults in and resolves the references
	 * of its sites; see core/refs.h).  A string with only `$${{` escapes
	 * is stored as the extension sees it.  Kept as JSON text (an object),
	 * made at load: the json-c objects are built only when the instance
	 * is about to be handed to its extension (orchd_instance_config()),
	 * not for every instance of a pipeline that may run a few of them. */
	char *config_json;
	json_object *mock_outputs; /* NULL when absent */
	/* sources: array of source specs (common/fetch.h), validated by
	 * bootstrap and fetched into the workdir (core/sources.h); NULL when absent */
	json_object *sources;
	/* pass_env: names of orchd's own environment variables this instance
	 * passes to its extension (the supervisor's allowlist). */
	char **pass_env;
	size_t npass_env;
	/* watch: globs of files whose changes affect it (core/affected.h), as
	 * written (relative to the pipeline's directory). */
	char **watch;
	size_t nwatch;
};

struct orchd_pipeline {
	char *file; /* as given on the command line */
	/* Every file read, files[0] being `file` (see struct orchd_pos). */
	struct orchd_source_file *files;
	size_t nfiles;
	char *env;  /* the environment applied (--env), or NULL */
	char *name; /* the single top-level key */
	struct orchd_pos name_pos;
	struct orchd_core core;
	struct orchd_instance *inst; /* in file order */
	size_t ninst;
	/* Extension types in file order, with the position of their section. */
	char **types;
	struct orchd_pos *types_pos;
	size_t ntypes;
	/* Private lookup table of orchd_pipeline_find() (ids and bare names),
	 * built by orchd_pipeline_index(); NULL means find scans linearly. */
	struct orchd_pipeline_index *index;
};

void orchd_exec_set_defaults(struct orchd_exec *e);
/* The isolation an instance runs under: core's, with the instance's level
 * and network when set and both lists of paths (out's lists are borrowed
 * from core and in: free only out->read and out->write). */
void orchd_isolation_merge(const struct orchd_isolation *core, const struct orchd_isolation *in,
			   struct orchd_isolation *out);
void orchd_isolation_release(struct orchd_isolation *iso);
/* Fields of `over` that are set replace those of `base`. */
void orchd_exec_merge(struct orchd_exec *base, const struct orchd_exec *over);

/* Index of the instance with id "type.name", or of the only instance called
 * "name" when ref has no dot and the name is unique.  (size_t)-1 if none;
 * *ambiguous (may be NULL) is set when a bare name matches several. */
size_t orchd_pipeline_find(const struct orchd_pipeline *p, const char *ref, int *ambiguous);

/* The file a position is in (p->file when unknown). */
const char *orchd_pos_file(const struct orchd_pipeline *p, struct orchd_pos pos);

/*
 * "FILE:LINE:COL" of pos, then, for a file reached by imports, the chain
 * back to the pipeline file: " (imported at b.yaml:2:5, imported at
 * pipeline.yaml:4:14)".  Malloc'ed.
 */
char *orchd_pos_where(const struct orchd_pipeline *p, struct orchd_pos pos);

/* The stack name of an instance: <core.stack>-<type>-<name>, where
 * core.stack is "<stack>.<env>" under an environment.  Malloc'ed. */
char *orchd_instance_stack(const struct orchd_pipeline *p, const struct orchd_instance *in);

/*
 * The config blob handed to the extension: a new object (caller puts it),
 * core.defaults.<type> (core.type_defaults) deep-merged with the instance's own keys (instance
 * wins; objects merge key by key, any other value replaces).  Reserved
 * instance keys (name, depends_on, enabled, execution, pass_env,
 * mock_outputs, sources) are never part of it.  See README "Configuration
 * precedence".
 */
json_object *orchd_instance_config(const struct orchd_pipeline *p, const struct orchd_instance *in);

/* The instance's own keys (config_json) as a new object, without the
 * core's defaults (caller puts it). */
json_object *orchd_instance_own_config(const struct orchd_instance *in);

/* Parse JSON text the core made itself (nesting up to ORCHD_JSON_DEPTH),
 * len bytes NUL-terminated (text[len] == 0): a new value, NULL for null;
 * dies when the text does not parse, which would be a bug of the core. */
#define ORCHD_JSON_DEPTH 128
json_object *orchd_json_from_text(const char *text, size_t len);

/* (Re)build p->index after p->inst changed.  Bootstrap calls it. */
void orchd_pipeline_index(struct orchd_pipeline *p);

void orchd_pipeline_free(struct orchd_pipeline *p);
/* Free what an instance owns (not the struct itself). */
void orchd_instance_release(struct orchd_instance *in);

/* A name usable as a file and stack name: [A-Za-z0-9][A-Za-z0-9_.-]{0,62},
 * not containing "..".  Returns 1 if safe. */
int orchd_name_is_safe(const char *s);

#endif
