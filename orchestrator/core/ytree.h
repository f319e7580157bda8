/*
 * core/ytree: the YAML node tree of the loader, shared by its stages
 * (core/bootstrap builds the model from it, core/compose merges imports,
 * expands templates and applies an environment on it).  Internal to the
 * core: nothing outside orchestrator/core includes this.
 *
 * libyaml events build a small tree of ynodes with positions.  Aliases
 * share the anchored node (the tree is a DAG), so an alias costs nothing
 * in memory; what it would cost if expanded (the anchored subtree's size)
 * is charged to an alias budget, so a billion laughs file fails at its
 * first big alias.  Merge keys are applied when a mapping ends, so every
 * mapping of the tree is flat and free of duplicate keys.
 *
 * Several files can be parsed into one struct yparse (imports): their
 * nodes share its arenas, each node knows its file (an index into
 * y->files), and everything is freed at once by ytree_release().  Nodes are
 * never mutated once built, since aliases share them: a stage that changes
 * a value makes a new node (ytree_new, ytree_alloc).
 *
 * Errors go to y->d (core/bootstrap.h) with the file and position; a parse
 * goes on after an error in a mapping to report more.
 */
#ifndef ORCHD_CORE_YTREE_H
#define ORCHD_CORE_YTREE_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bootstrap.h"

enum ykind { Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode;
struct ypair {
	struct ynode *key, *val;
};

struct ynode {
	unsigned char kind;
	unsigned char plain; /* scalar: plain style, resolved per the core schema */
	unsigned short file; /* index into yparse.files */
	unsigned line, col;  /* 1-based */
	unsigned size;	     /* nodes in the expanded subtree (saturating) */
	unsigned bytes;	     /* scalar bytes in the expanded subtree (saturating) */
	unsigned len;	     /* scalar length (the file is at most 16 MiB) */
	unsigned n;	     /* items, or pairs once a mapping is finished */
	char *s;	     /* scalar value, NUL-terminated (in the bump arena) */
	union {
		struct ynode **items; /* sequence; mapping: key, value, ... until its end */
		struct ypair *pairs;  /* mapping, after merge keys */
	};
};

#define ARENA_BLOCK 4096
#define SIZE_SAT    ((size_t)1 << 30)

/* The most files one pipeline may read (itself and its imports). */
#define YTREE_MAX_FILES 256

/* A file of the tree: its name in messages, and how it was reached. */
struct yfile {
	char *path;	    /* as shown in messages */
	char *key;	    /* what identifies it (real path, or git source), for cycles */
	size_t parent;	    /* the file importing it; (size_t)-1 for the pipeline file */
	unsigned line, col; /* of the import entry in the parent */
	/* a file read from git: the repository, the commit, the path in it */
	char *git_url, *git_commit, *git_path;
};

struct yparse {
	const char *file; /* name of the file being parsed (files[cur].path) */
	unsigned cur;	  /* its index */
	const char *buf;
	size_t len;
	struct orchd_diags *d;
	struct yfile *files;
	size_t nfiles, files_alloc;
	struct ynode **blocks;
	size_t nblocks, balloc, used; /* used: nodes used in the last block */
	size_t nnodes, alias_cost, alias_bytes;
	json_object *anchors; /* name -> index into anchor_nodes */
	struct ynode **anchor_nodes;
	size_t nanchor, anchor_alloc;
	struct {
		struct ynode *node;
		char *anchor;
		size_t start; /* its children begin at kids[start] */
	} stack[ORCHD_MAX_DEPTH + 1];
	size_t depth;
	/* Children of the open containers, innermost last; a container's
	 * slice moves to the bump arena, exactly sized, when it ends. */
	struct ynode **kids;
	size_t nkids, kids_alloc;
	/* Bump arena for scalar text and child arrays, freed at once. */
	char **bump;
	size_t nbump, bump_alloc, bump_left;
	char *bump_cur;
	struct ynode *root;
	int ndocs;
};

/*
 * Add a file to y->files (path and key copied).  Returns its index, or -1
 * (with an error at the parent's position) past YTREE_MAX_FILES.
 */
int ytree_add_file(struct yparse *y, const char *path, const char *key, size_t parent,
		   unsigned line, unsigned col);

/*
 * Parse y->buf[0..y->len) as file y->cur into y->root (anchors are the
 * file's own).  0, or -1 (fatal: the tree is unusable).  Errors that leave
 * a usable tree (duplicate keys, bad merge keys) are added to y->d with 0
 * returned: the caller compares y->d->n.
 */
int ytree_parse(struct yparse *y);

/* Free every node, string and file of y. */
void ytree_release(struct yparse *y);

/* A new node at file:line:col (scalar: set s and len; containers: items
 * or pairs and n), and arena memory that lives as long as y. */
struct ynode *ytree_new(struct yparse *y, enum ykind kind, unsigned file, unsigned line,
			unsigned col);
void *ytree_alloc(struct yparse *y, size_t n);

/* The value of key in mapping m, or NULL (also when m is not a mapping). */
struct ynode *ytree_get(const struct ynode *m, const char *key);

/* Scalars resolved per the YAML 1.2 core schema (quoted = string). */
enum stype { S_NULL, S_BOOL, S_INT, S_FLOAT, S_STR, S_BIGINT };
enum stype ytree_resolve(const struct ynode *n, int64_t *iv, double *dv);

/* "a sequence", "a mapping", "null", "a boolean", "an integer", ... */
const char *ytree_kind_name(const struct ynode *n);

#endif
