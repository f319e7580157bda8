/*
 * core/bootstrap: from a pipeline file to a validated struct orchd_pipeline.
 *
 * Two steps, so that the caller can fetch the list of known extension
 * types in between:
 *   1. orchd_bootstrap_load() parses the YAML (libyaml events, bounded:
 *      file size, nesting depth, node count, alias expansion) and builds
 *      the model, checking every key and type;
 *   2. orchd_pipeline_validate() resolves depends_on and references into
 *      edges, and checks extension types and cycles.
 *
 * Errors are collected, not printed: each is a struct orchd_diag with the
 * file, a 1-based line and column (0 when the error concerns the whole
 * file) and a message that names the key path ("p.exec[1].depends_on[0]:
 * ...").  Every error of a file is reported, up to d->cap_limit (50).
 * Nothing here writes to stdout or stderr, nor exits.
 */
#ifndef ORCHD_CORE_BOOTSTRAP_H
#define ORCHD_CORE_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "models/pipeline.h"

/* Bounds on untrusted input. */
#define ORCHD_MAX_FILE_SIZE   (16u << 20) /* bytes */
#define ORCHD_MAX_DEPTH	      64	  /* nested sequences and mappings */
#define ORCHD_MAX_NODES	      1000000	  /* YAML nodes in the file */
#define ORCHD_MAX_ALIAS_NODES 100000	  /* nodes produced by alias expansion */
#define ORCHD_MAX_ALIAS_BYTES (16u << 20) /* scalar bytes produced by alias expansion */
#define ORCHD_DIAG_CAP	      50
#define ORCHD_DIAG_MAX_MSG    512 /* longer messages are cut, ending in "..." */

struct orchd_diag {
	char *file;
	unsigned line, column; /* 1-based; 0 = no position */
	char *msg;
};

struct orchd_diags {
	struct orchd_diag *v;
	size_t n, alloc;
	size_t cap_limit; /* keep at most this many; default ORCHD_DIAG_CAP */
	int truncated;	  /* set when an error was dropped because of the cap */
};

#define ORCHD_DIAGS_INIT                      \
	{                                     \
		NULL, 0, 0, ORCHD_DIAG_CAP, 0 \
	}

void orchd_diags_init(struct orchd_diags *d);
/* Record an error; always returns -1 so that callers can `return` it. */
int orchd_diag_add(struct orchd_diags *d, const char *file, unsigned line, unsigned column,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/*
 * Print one line per error: "FILE:LINE:COLUMN: error: MESSAGE" (or
 * "FILE: error: MESSAGE" without a position), then, when errors were
 * dropped, "FILE: error: too many errors, stopping after N".
 */
void orchd_diags_print(const struct orchd_diags *d, FILE *fp);
void orchd_diags_release(struct orchd_diags *d);

/*
 * Parse buf[0..len) (need not be NUL-terminated) as the pipeline file
 * `file` (the name used in messages and stored in the model).
 *
 * Returns 0 with *out a complete model, or -1 with errors added to d.
 * On -1, *out is either NULL (the file could not be parsed at all) or a
 * partial model (instances with errors may be missing) that is only good
 * for orchd_pipeline_validate() to report more errors in the same run.
 * The caller frees *out with orchd_pipeline_free() in both cases.
 */
int orchd_bootstrap_load(const char *file, const char *buf, size_t len, struct orchd_pipeline **out,
			 struct orchd_diags *d);

/* Read `path` (at most ORCHD_MAX_FILE_SIZE bytes) and load it as above. */
int orchd_bootstrap_load_file(const char *path, struct orchd_pipeline **out, struct orchd_diags *d);

struct op_buf;

/*
 * How a pipeline is composed (core/compose.h): the environment to apply,
 * where files are read from, and what to explain.  All fields may be 0.
 */
struct orchd_load_opts {
	const char *env; /* core.environments.ENV to apply (--env), or NULL */
	/*
	 * Read the pipeline file and its local imports: NULL reads the file
	 * system.  Paths are as composed (the importing file's directory
	 * joined with the import, "." and ".." folded).  Returns 0 with the
	 * content in out (at most ORCHD_MAX_FILE_SIZE bytes), or -1 with
	 * errno set (ENOENT: no such file; E2BIG: too large).
	 */
	int (*read)(void *ctx, const char *path, struct op_buf *out);
	void *read_ctx;
	/* Write TYPE.NAME's final config with the origin of every value
	 * into *explain_out (a load error when no instance has that id). */
	const char *explain;
	struct op_buf *explain_out;
	/* Git imports: the cache of mirrors (NULL: the default, common/git.h). */
	const char *git_cache_dir;
};

/* orchd_bootstrap_load() with options (o may be NULL): buf is the file's
 * content, its imports are read as o says. */
int orchd_bootstrap_load_buf(const char *file, const char *buf, size_t len,
			     const struct orchd_load_opts *o, struct orchd_pipeline **out,
			     struct orchd_diags *d);

/* orchd_bootstrap_load_file() with options (o may be NULL). */
int orchd_bootstrap_load_opts(const char *path, const struct orchd_load_opts *o,
			      struct orchd_pipeline **out, struct orchd_diags *d);

/*
 * Resolve depends_on and references into in->deps (and refs[].target_index),
 * and check: unknown, ambiguous and self dependencies, dependency cycles,
 * and (unless known_types is NULL) that every section names one of the
 * nknown known extension types.  Returns 0, or -1 with errors added to d.
 */
int orchd_pipeline_validate(struct orchd_pipeline *p, const char *const *known_types, size_t nknown,
			    struct orchd_diags *d);

/*
 * Where a key of an instance's config blob is written, for an extension's
 * error at key path "a.b[2]" (protocol §6.2 "errors"): the file is parsed
 * again (once per locator), the instance found by its position, and the
 * path walked as far as it goes (in the instance, else in core.defaults of
 * its type).  *pos is the deepest node reached, the instance itself for an
 * empty path or when the file changed.  A locator whose file cannot be
 * read or parsed answers the instance's position.  With at_key, a path
 * ending in a mapping key answers the key's position rather than its
 * value's (for "unknown key 'x'": the value may be a variable's, written
 * elsewhere).  The pipeline is composed again as it was loaded (its
 * imports, its environment), so pos.file may name an imported file.
 */
struct orchd_locator;
struct orchd_locator *orchd_locator_open(const struct orchd_pipeline *p);
int orchd_locator_find(struct orchd_locator *l, const struct orchd_pipeline *p, size_t i,
		       const char *path, int at_key, struct orchd_pos *pos);
void orchd_locator_close(struct orchd_locator *l);

/*
 * Parse a duration: a non-negative integer number of seconds, or a string
 * of one or more NUMBER UNIT parts, units h, m, s, ms in that order, each at
 * most once ("90s", "5m", "1h30m", "250ms"), at most ORCHD_DURATION_MAX_MS.
 * Returns 0 with *ms set, or -1.
 */
#define ORCHD_DURATION_MAX_MS ((int64_t)1000 * 3600 * 24 * 366) /* 366 days */
int orchd_parse_duration(const char *s, int64_t *ms);

/*
 * Parse a size: decimal digits with an optional unit K, M, G or T (powers
 * of 1024), e.g. "512K", "256M", "2G"; at most 1 PiB.  0 with *bytes, or -1.
 */
int orchd_parse_size(const char *s, int64_t *bytes);

/* Levenshtein distance of a and b (capped at 255 for long strings). */
unsigned orchd_edit_distance(const char *a, const char *b);

/* The candidate closest to s, or NULL when none is close enough to suggest. */
const char *orchd_closest(const char *s, const char *const *candidates, size_t n);

#endif
