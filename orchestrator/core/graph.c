/*
 * core/graph: the dependency graph (see graph.h).
 */
#include "core/graph.h"

#include <string.h>

#include "util.h"

void orchd_graph_build(struct orchd_graph *g, const struct orchd_pipeline *p)
{
	size_t n = p->ninst, nedges = 0, *fill;

	memset(g, 0, sizeof(*g));
	g->n = n;
	g->dep_at = xcalloc(n + 1, sizeof(*g->dep_at));
	g->user_at = xcalloc(n + 1, sizeof(*g->user_at));
	for (size_t i = 0; i < n; i++) {
		nedges += p->inst[i].ndeps;
		g->dep_at[i + 1] = nedges;
		for (size_t k = 0; k < p->inst[i].ndeps; k++)
			g->user_at[p->inst[i].deps[k] + 1]++;
	}
	for (size_t i = 0; i < n; i++)
		g->user_at[i + 1] += g->user_at[i];
	g->deps = xcalloc(nedges + 1, sizeof(*g->deps));
	g->users = xcalloc(nedges + 1, sizeof(*g->users));
	fill = xcalloc(n + 1, sizeof(*fill));
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < p->inst[i].ndeps; k++) {
			size_t d = p->inst[i].deps[k];

			g->deps[g->dep_at[i] + k] = d;
			/* i ascends, so each users list is in index order */
			g->users[g->user_at[d] + fill[d]++] = i;
		}
	free(fill);
}

void orchd_graph_release(struct orchd_graph *g)
{
	free(g->dep_at);
	free(g->deps);
	free(g->user_at);
	free(g->users);
	memset(g, 0, sizeof(*g));
}

int orchd_graph_order(const struct orchd_graph *g, size_t *order)
{
	size_t *indeg = xcalloc(g->n + 1, sizeof(*indeg));
	size_t head = 0, tail = 0;

	for (size_t i = 0; i < g->n; i++) {
		indeg[i] = orchd_graph_ndeps(g, i);
		if (!indeg[i])
			order[tail++] = i;
	}
	/* order[] doubles as the FIFO: what is dequeued is in run order */
	while (head < tail) {
		size_t u = order[head++];

		for (size_t k = g->user_at[u]; k < g->user_at[u + 1]; k++)
			if (!--indeg[g->users[k]])
				order[tail++] = g->users[k];
	}
	free(indeg);
	return tail == g->n ? 0 : -1;
}

void orchd_graph_spread(const struct orchd_graph *g, size_t *root)
{
	size_t *order = xcalloc(g->n + 1, sizeof(*order));

	if (orchd_graph_order(g, order) < 0) {
		free(order); /* validation rejects cycles: nothing to spread */
		return;
	}
	for (size_t j = 0; j < g->n; j++) {
		size_t u = order[j];

		if (root[u] == ORCHD_GRAPH_NONE)
			continue;
		for (size_t k = g->user_at[u]; k < g->user_at[u + 1]; k++)
			if (root[g->users[k]] == ORCHD_GRAPH_NONE)
				root[g->users[k]] = root[u];
	}
	free(order);
}

size_t orchd_graph_cycles(const struct orchd_graph *g, orchd_graph_cycle_fn fn, void *arg)
{
	unsigned char *color = xcalloc(g->n + 1, 1); /* 0 new, 1 on the stack, 2 done */
	size_t *stack = xcalloc(g->n + 1, sizeof(*stack));
	size_t *next = xcalloc(g->n + 1, sizeof(*next)); /* next dependency to visit */
	size_t *at = xcalloc(g->n + 1, sizeof(*at));	 /* position on the stack */
	size_t *cycle = xcalloc(g->n + 1, sizeof(*cycle));
	size_t found = 0;

	for (size_t s = 0; s < g->n; s++) {
		size_t top = 0;

		if (color[s])
			continue;
		stack[top++] = s;
		color[s] = 1;
		at[s] = 0;
		next[s] = g->dep_at[s];
		while (top) {
			size_t u = stack[top - 1], v, len, first = 0;

			if (next[u] == g->dep_at[u + 1]) {
				color[u] = 2;
				top--;
				continue;
			}
			v = g->deps[next[u]++];
			if (color[v] == 0) {
				color[v] = 1;
				at[v] = top;
				next[v] = g->dep_at[v];
				stack[top++] = v;
				continue;
			}
			if (color[v] != 1)
				continue;
			/* stack[at[v] .. top) is a cycle, each node depending on
			 * the next: report it backwards (dependency first),
			 * starting at its lowest index */
			len = top - at[v];
			for (size_t i = 0; i < len; i++)
				if (stack[at[v] + i] < stack[at[v] + first])
					first = i;
			for (size_t i = 0; i < len; i++)
				cycle[i] = stack[at[v] + (first + len - i) % len];
			fn(arg, cycle, len);
			found++;
		}
	}
	free(cycle);
	free(at);
	free(next);
	free(stack);
	free(color);
	return found;
}

/* Mark from and everything reachable from it in one direction. */
static void mark_closure(const struct orchd_graph *g, size_t from, int users,
			 unsigned char *selected, size_t *stack)
{
	const size_t *at = users ? g->user_at : g->dep_at, *adj = users ? g->users : g->deps;
	size_t top = 0;

	if (selected[from])
		return;
	selected[from] = 1;
	stack[top++] = from;
	while (top) {
		size_t u = stack[--top];

		for (size_t k = at[u]; k < at[u + 1]; k++)
			if (!selected[adj[k]]) {
				selected[adj[k]] = 1;
				stack[top++] = adj[k];
			}
	}
}

static size_t find_option(const struct orchd_pipeline *p, const char *ref, const char *opt,
			  char *err, size_t errlen)
{
	int ambiguous = 0;
	size_t idx = orchd_pipeline_find(p, ref, &ambiguous);

	if (idx == (size_t)-1)
		orchd_set_err(err, errlen, "%s %s: %s", opt, ref,
			      ambiguous ? "ambiguous instance name, use TYPE.NAME"
					: "no such instance");
	return idx;
}

int orchd_graph_select(const struct orchd_graph *g, const struct orchd_pipeline *p,
		       const struct orchd_selection *sel, unsigned char *selected, char *err,
		       size_t errlen)
{
	size_t *stack = xcalloc(g->n + 1, sizeof(*stack));
	int ret = -1;

	memset(selected, sel->ntargets ? 0 : 1, g->n);
	for (size_t t = 0; t < sel->ntargets; t++) {
		size_t idx = find_option(p, sel->targets[t], "--target", err, errlen);

		if (idx == (size_t)-1)
			goto out;
		if (sel->with_dependents)
			mark_closure(g, idx, 1, selected, stack);
		else if (sel->with_deps)
			mark_closure(g, idx, 0, selected, stack);
		else
			selected[idx] = 1;
	}
	for (size_t t = 0; t < sel->nexcludes; t++) {
		size_t idx = find_option(p, sel->excludes[t], "--exclude", err, errlen);

		if (idx == (size_t)-1)
			goto out;
		selected[idx] = 0;
	}
	for (size_t i = 0; i < g->n; i++)
		if (!p->inst[i].enabled)
			selected[i] = 0;
	ret = 0;
out:
	free(stack);
	return ret;
}
