/*
 * core/refs: references `${{ TYPE.NAME.outputs.KEY }}`: their one grammar,
 * their resolution into the config blob an extension sees, the hashes that
 * record what a run consumed, and staleness.
 *
 * Life of a reference:
 *   1. load (core/bootstrap): every string scalar of an instance's config
 *      goes through orchd_ref_parse(), once.  A string holding a reference
 *      becomes a *site* of the instance (models/pipeline.h: struct
 *      orchd_ref_site): where it is in the config blob, and its parts
 *      (literal text, reference).  A string with only the `$${{` escape is
 *      stored as the extension will see it; core.defaults may hold
 *      escapes, not references.
 *   2. validate (orchd_pipeline_validate): each reference's target is
 *      resolved to an instance index (an edge), and orchd_refs_order()
 *      puts the sites in the order a walk of the merged config meets them
 *      (the order the inputs hash is taken in).
 *   3. run: orchd_refs_resolve() builds the config blob (core.defaults
 *      merged with the instance's keys) and replaces each site by its
 *      value: a string that is exactly one reference takes the output's
 *      JSON value as it is, anything else is text.  Nothing is parsed
 *      again.
 *
 * Staleness: a stack records the hash of the config blob it was last
 * applied with and the hash of the upstream outputs that blob consumed.
 * orchd_refs_stale() compares them with today's: the one rule used by
 * `orchd status` and `orchd run --only-stale`.
 *
 * Ownership: a struct orchd_resolved owns its config (release it with
 * orchd_resolved_release()).  The json_objects a lookup returns are
 * borrowed from the caller's struct orchd_upstream.  Allocation failure
 * dies (xmalloc).  Nothing prints.
 */
#ifndef ORCHD_CORE_REFS_H
#define ORCHD_CORE_REFS_H

#include <json-c/json.h>
#include <stddef.h>

#include "hash.h"
#include "interfaces/engine.h"
#include "models/pipeline.h"

/* ---- grammar ---------------------------------------------------------- */

/* Load-time namespaces (core/compose.h): `${{ params.X }}` in a template,
 * `${{ vars.X }}` and `${{ env.X }}` anywhere; replaced before the model
 * is built, so that only output references reach a run. */
enum orchd_ref_ns { ORCHD_REF_PARAMS = 1, ORCHD_REF_VARS, ORCHD_REF_ENV };

/* One part of a parsed string. */
struct orchd_ref_part {
	int is_ref; /* an output reference */
	int ns;	    /* or a load-time one: enum orchd_ref_ns (text: as written, key: X) */
	/* literal: the text, escapes resolved; ref: the reference as written,
	 * "${{ ... }}" (what a value not known yet is shown as) */
	char *text;
	size_t len;
	char *target; /* ref: "TYPE.NAME" */
	char *key;    /* ref: the output key */
};

struct orchd_ref_parsed {
	struct orchd_ref_part *parts;
	size_t n;
	size_t nrefs;	/* parts that are output references */
	size_t nloads;	/* parts that are load-time references (ns) */
	int has_escape; /* a `$${{` was turned into `${{` */
};

/*
 * Parse s[0..len): text, `$${{` (a literal `${{`), references
 * `${{ TYPE.NAME.outputs.KEY }}` (spaces or tabs inside the braces
 * optional; TYPE is [A-Za-z0-9_-]+, NAME also allows '.', KEY is
 * [A-Za-z0-9_-]+), and load-time ones `${{ params.X }}`, `${{ vars.X }}`
 * (X [A-Za-z0-9_-]+) and `${{ env.X }}` (X [A-Za-z0-9_]+).  Adjacent literal text forms one part.  Returns 0, or
 * -1 with the first error in err (the parts parsed so far are kept, so the
 * caller can go on and report more):
 *   "unterminated reference '${{ exec.a.outp' (missing '}}')"
 *   "malformed reference '${{ exec.a }}' (expected ${{ TYPE.NAME.outputs.KEY }})"
 * A malformed reference is skipped (kept as literal text); parsing goes on
 * after it and later errors are not reported.
 */
int orchd_ref_parse(const char *s, size_t len, struct orchd_ref_parsed *out, char *err,
		    size_t errlen);
void orchd_ref_parsed_release(struct orchd_ref_parsed *r);
/* The literal text of r (escapes resolved, references as written),
 * malloc'ed, *len its length. */
char *orchd_ref_parsed_text(const struct orchd_ref_parsed *r, size_t *len);

/* ---- sites ------------------------------------------------------------ */

/*
 * Put in->sites in the order a depth-first walk of the instance's merged
 * config blob (orchd_instance_config()) meets them: the order in which
 * orchd_refs_resolve() feeds the inputs hash.  Called once by validate.
 */
void orchd_refs_order(const struct orchd_pipeline *p, struct orchd_instance *in);

/* ---- resolution ------------------------------------------------------- */

/* What is known of one instance's outputs, for its consumers. */
struct orchd_upstream {
	json_object *outputs; /* this run's: key -> value; NULL: none yet */
	json_object *secrets; /* this run's: key -> true for secret ones */
	/* the stored record's outputs: key -> {"value", "secret", "masked"}
	 * (interfaces/engine.h); NULL: never applied */
	json_object *stored;
	/* plan: its own plan may change its outputs, so none is known before
	 * an apply ("known after apply"): lookups fail, as for an upstream
	 * never applied */
	int unknown;
};

struct orchd_resolver {
	const struct orchd_pipeline *p;
	/* The upstream of instance index i (never NULL). */
	const struct orchd_upstream *(*upstream)(void *arg, size_t i);
	void *arg;
	int use_mock; /* plan: an upstream's mock_outputs when nothing else */
	int lenient;  /* leave a reference that cannot be resolved as its text */
	/* top-level config keys whose values become command lines (the
	 * manifest's "argv_keys"), NULL-terminated or NULL: a secret reaching
	 * one is flagged (secret_argv) */
	char *const *argv_keys;
};

struct orchd_resolved {
	json_object *config;		      /* the config blob (owned); NULL on failure */
	char inputs_hash[ORCHD_SHA256_HEXSZ]; /* of the upstream outputs consumed */
	int secret_input;		      /* a consumed output was secret */
	const char *secret_argv;	      /* the argv key a secret reached, or NULL */
	size_t unresolved;		      /* references not resolved */
	char why[512];			      /* why the first of them was not */
};

/*
 * The config blob of instance i with its references resolved.  Lookup of
 * an output, in order: this run's outputs, the stored ones (a secret that
 * cannot be decrypted is not usable: "output 'k' of exec.a is secret and
 * no passphrase is set (...)"), then mock_outputs with use_mock.  Returns
 * 0, or -1 when a reference could not be resolved and !lenient (out->why
 * says why: "exec.a has no output 'k'", "exec.a has no output 'k': it was
 * never applied").  out is filled in both cases; release it.
 */
int orchd_refs_resolve(const struct orchd_resolver *r, size_t i, struct orchd_resolved *out);
void orchd_resolved_release(struct orchd_resolved *out);

/* SHA-256 of the canonical JSON text (keys sorted) of v. */
void orchd_json_hash(json_object *v, char hex[ORCHD_SHA256_HEXSZ]);

/*
 * Why an instance is stale, or NULL when it is not (or was never
 * applied): "upstream outputs missing" (a reference cannot be resolved),
 * "upstream outputs changed", "config changed".  prev: its stored record
 * (NULL when none); now: resolved leniently against the stored outputs.
 */
const char *orchd_refs_stale(const struct orchd_stack_record *prev,
			     const struct orchd_resolved *now);

#endif
