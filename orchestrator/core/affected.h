/*
 * core/affected: which instances a change since a git revision touches
 * (`orchd affected FILE --since REF`, and `run|plan --since REF`).
 *
 * The pipeline is composed twice: from the working tree, and from the
 * files as they were at REF (the pipeline file and its local imports read
 * out of REF's tree with libgit2; git imports are pinned, so they read the
 * same either way).  An instance is affected when:
 *   - it is new: no instance of its id at REF;
 *   - its resolved definition differs: the config blob its extension
 *     would see (core.defaults merged, templates expanded, the environment
 *     and variables applied), its dependencies, enabled, execution,
 *     isolation, sources, pass_env or watch;
 *   - a file it watches changed between REF and the working tree (staged,
 *     unstaged and untracked changes count): the paths its config names
 *     through its extension's manifest "watch_keys" (a directory watches
 *     every file under it), and its `watch` globs; both relative to the
 *     pipeline file's directory;
 *   - it depends, directly or not, on an affected instance.
 * Instances at REF whose id is gone are reported "to destroy": never
 * destroyed by orchd on its own.  A renamed instance is both (new, and its
 * old id to destroy).
 *
 * What cannot be compared counts as changed, never as unchanged: when the
 * pipeline at REF does not load, or a file of the pipeline is outside the
 * repository, every instance is affected (with a note); an instance that
 * watches a path outside the repository is affected.
 *
 * Ownership: struct orchd_affected owns its strings; release it with
 * orchd_affected_release().  Nothing prints: errors are one lowercase
 * message in err.
 */
#ifndef ORCHD_CORE_AFFECTED_H
#define ORCHD_CORE_AFFECTED_H

#include <stddef.h>

#include "core/loader.h"
#include "models/pipeline.h"

struct orchd_affected {
	char commit[41]; /* REF's commit id */
	/* per instance of the current pipeline (p->ninst): NULL when not
	 * affected, else why ("new", "config changed", "watched file changed:
	 * PATH", "depends on ID", ...) */
	char **why;
	size_t ninst, naffected;
	char **gone; /* ids at REF that are no more: to destroy */
	size_t ngone;
	char **notes; /* why comparing was conservative */
	size_t nnotes;
};

/*
 * Compare p (loaded from `file` with environment env, validated) with the
 * pipeline at `since`.  reg gives each type's watch_keys (may be NULL).
 * Returns 0, or -1 with a message in err: not in a git repository, an
 * unknown revision, a shallow clone that lacks it ("... fetch more
 * history ...").
 */
int orchd_affected(const char *file, const struct orchd_pipeline *p,
		   const struct orchd_registry *reg, const char *env, const char *since,
		   struct orchd_affected *out, char *err, size_t errlen);
void orchd_affected_release(struct orchd_affected *a);

#endif
