/*
 * core/graph: the dependency graph of a pipeline's instances.
 *
 * Nodes are instance indices (pipeline->inst[i]).  An edge u -> v means
 * "v depends on u": u runs (applies) first, v is destroyed first.  The
 * edges come from each instance's resolved deps (depends_on plus
 * references, orchd_pipeline_validate()); this module turns them into
 * both directions in compressed form, and answers the questions the rest
 * of the core asks of them:
 *   - a run order (Kahn, deterministic: ready nodes in index, i.e. file,
 *     order), for `orchd graph`;
 *   - the cycles, for validation;
 *   - a selection (--target, --with-deps, the dependents of a destroy
 *     target, --exclude, enabled), for run, plan and destroy.
 *
 * Nothing here allocates per query beyond its own scratch arrays, and
 * nothing recurses: 10 000-deep chains are fine.
 *
 * Ownership: a struct orchd_graph owns its arrays (orchd_graph_release());
 * it does not point into the pipeline.  Allocation failure dies (xmalloc).
 */
#ifndef ORCHD_CORE_GRAPH_H
#define ORCHD_CORE_GRAPH_H

#include <stddef.h>

#include "models/pipeline.h"

struct orchd_graph {
	size_t n;
	/* The dependencies of i are deps[dep_at[i] .. dep_at[i + 1]), in the
	 * order of pipeline->inst[i].deps; its dependents are
	 * users[user_at[i] .. user_at[i + 1]), in index order. */
	size_t *dep_at, *deps;
	size_t *user_at, *users;
};

#define ORCHD_GRAPH_INIT                  \
	{                                 \
		0, NULL, NULL, NULL, NULL \
	}

/* Build g (initialised or released) from the resolved deps of p. */
void orchd_graph_build(struct orchd_graph *g, const struct orchd_pipeline *p);
void orchd_graph_release(struct orchd_graph *g);

static inline size_t orchd_graph_ndeps(const struct orchd_graph *g, size_t i)
{
	return g->dep_at[i + 1] - g->dep_at[i];
}

static inline size_t orchd_graph_nusers(const struct orchd_graph *g, size_t i)
{
	return g->user_at[i + 1] - g->user_at[i];
}

/*
 * A topological order (dependencies first) into order[g->n]: Kahn's
 * algorithm with a FIFO seeded in index order.  0, or -1 when there is a
 * cycle (order then holds the nodes outside any cycle's reach).
 */
int orchd_graph_order(const struct orchd_graph *g, size_t *order);

/*
 * Carry a mark down the edges, for what is transitively affected (a stale
 * instance makes everything downstream stale).  root[i] is ORCHD_GRAPH_NONE
 * for an unmarked node, else the node the mark comes from (i itself for a
 * node marked on its own).  Afterwards every node downstream of a marked
 * one is marked too, with the root of its first marked dependency in run
 * order.  A graph with a cycle (never valid) is left as it is.
 */
#define ORCHD_GRAPH_NONE ((size_t)-1)
void orchd_graph_spread(const struct orchd_graph *g, size_t *root);

/*
 * Call fn once per cycle found by a depth-first search (every node in a
 * cycle is reported in at least one; cycles sharing nodes may be reported
 * once).  cycle[0 .. len) lists the nodes in run order (each a dependency
 * of the next, the last a dependency of the first), starting at the
 * lowest index.  Returns the number of cycles reported.
 */
typedef void (*orchd_graph_cycle_fn)(void *arg, const size_t *cycle, size_t len);
size_t orchd_graph_cycles(const struct orchd_graph *g, orchd_graph_cycle_fn fn, void *arg);

/* What a command selects. */
struct orchd_selection {
	const char *const *targets; /* "TYPE.NAME" or a unique "NAME"; none: all */
	size_t ntargets;
	int with_deps;	     /* a target brings its dependencies (run, plan) */
	int with_dependents; /* a target brings what depends on it (destroy) */
	const char *const *excludes;
	size_t nexcludes;
};

/*
 * Mark the selected nodes in selected[g->n] (1 or 0): the targets (all
 * nodes when there are none) with their closure, minus the excludes, minus
 * the disabled instances.  0, or -1 with a message in err naming the
 * option ("--target x: no such instance", "--exclude y: ambiguous instance
 * name, use TYPE.NAME").
 */
int orchd_graph_select(const struct orchd_graph *g, const struct orchd_pipeline *p,
		       const struct orchd_selection *sel, unsigned char *selected, char *err,
		       size_t errlen);

#endif
