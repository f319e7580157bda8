/*
 * core/compose: one pipeline from several files and one template per
 * shape: the stage of the loader between parsing (core/ytree) and building
 * the model (core/bootstrap).  It works on the node tree, so that every
 * value keeps the file, line and column it was written at.
 *
 * In order:
 *   1. imports (core.imports): each listed file is read, parsed, composed
 *      in turn, and merged before the importing file: mappings merge key
 *      by key, any other value (a list, a scalar) is replaced by the later
 *      one, extension sections (lists of instances) are concatenated.
 *      Imports are merged in the order listed, the importing file last, so
 *      a later import wins and the importing file wins over its imports.  A
 *      file met twice (a diamond) is merged once, at its first import; a
 *      file importing one of its importers is a cycle (an error naming each
 *      link).  Git imports are pinned to a commit or a tag.
 *   2. templates (core.templates): an instance with `template: NAME` and
 *      `with: {PARAM: VALUE}` becomes the template's config with
 *      `${{ params.X }}` replaced, under the instance's own keys.  A
 *      template may itself use another (`template`, `with`), at most
 *      ORCHD_TEMPLATE_DEPTH deep.
 *   3. the environment (core.environments.ENV, when one is selected): its
 *      `overrides` (instance id -> mapping) merge over the instances, and
 *      its `vars` over core.vars.
 *   4. `${{ vars.X }}` and `${{ env.X }}` (X listed in core.env_allow) are
 *      replaced everywhere but in the definitions (core.templates,
 *      core.environments, core.vars).
 * A string that is exactly one `${{ params.X }}` or `${{ vars.X }}` takes
 * the value as it is (a number, a list...); inside a longer string the value
 * must be a scalar and is written as text.  Values of params and vars are
 * inserted as written (so they may hold output references); values of
 * env.X are literal text.  The compose keys are removed from core before
 * the model is built.
 *
 * Errors go to y->d with the position of the node concerned; composition
 * goes on after an error to report more.  Nothing prints.
 */
#ifndef ORCHD_CORE_COMPOSE_H
#define ORCHD_CORE_COMPOSE_H

#include "core/bootstrap.h"
#include "core/ytree.h"

#define ORCHD_TEMPLATE_DEPTH 8
/* Nodes and bytes template expansion may produce in one pipeline. */
#define ORCHD_MAX_EXPANDED_NODES (4 * ORCHD_MAX_NODES)
#define ORCHD_MAX_EXPANDED_BYTES (64u << 20)

/*
 * Compose the pipeline file parsed into y (y->root, file 0, whose files
 * entry exists).  Returns the root to build the model from (y->root itself
 * when there is nothing to compose), or NULL when no model can be built
 * (errors added).  *env (may be NULL) receives the environment applied
 * (borrowed from o) or NULL.
 */
struct ynode *orchd_compose(struct yparse *y, const struct orchd_load_opts *o, const char **env);

/* Read a file as orchd_load_opts.read says (o may be NULL): 0, or -1 with
 * errno. */
int orchd_compose_read(const struct orchd_load_opts *o, const char *path, struct op_buf *out);

/* What identifies a file of the file system for import cycles and
 * diamonds: its device and inode (symbolic and hard links are the same
 * file), "file:DEV:INO"; NULL when it cannot be stat()ed.  Malloc'ed. */
char *orchd_compose_file_key(const char *path);

/* The directory of the file `base` joined with rel (rel itself when
 * absolute), "." and ".." folded lexically.  Malloc'ed. */
char *orchd_compose_join(const char *base, const char *rel);

#endif
