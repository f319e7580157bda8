/*
 * core/compose: imports, templates and environments on the node tree (see
 * compose.h).
 *
 * Nodes are shared, never changed: a merge or a substitution makes new
 * nodes for what differs and points at the old ones for the rest, so an
 * unchanged subtree costs nothing and keeps its positions.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/compose.h"
#include "core/refs.h"
#include "git.h"
#include "orchd_protocol.h"
#include "util.h"

struct compose {
	struct yparse *y;
	struct orchd_diags *d;
	const struct orchd_load_opts *o;
	struct ynode *templates; /* core.templates (merged), or NULL */
	struct orchd_map tindex; /* template name -> index of its pair */
	unsigned char *tbad;	 /* per template: its definition has errors */
	const char *tchain[ORCHD_TEMPLATE_DEPTH + 2];
	size_t ntchain;
	struct ynode *vars;	 /* core.vars merged with the environment's, or NULL */
	struct ynode *env_allow; /* core.env_allow, or NULL */
	struct ynode *overrides; /* the environment's overrides, or NULL */
	const char *env;	 /* the environment applied */
	struct op_buf envs;	 /* the names of the environments, for messages */
	const char *ctx;	 /* the instance being composed, for messages */
	size_t expanded, expanded_bytes;
	struct op_buf text, envtext;
	int over_budget; /* the expansion bound was reported */
};

static const char *fpath(const struct compose *c, const struct ynode *n)
{
	return c->y->files[n->file].path;
}

static void cerr(struct compose *c, const struct ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cerr(struct compose *c, const struct ynode *n, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	if (c->ctx)
		orchd_diag_add(c->d, fpath(c, n), n->line, n->col, "%s: %s", c->ctx, msg);
	else
		orchd_diag_add(c->d, fpath(c, n), n->line, n->col, "%s", msg);
	free(msg);
}

static int is_string(const struct ynode *n)
{
	int64_t iv;
	double dv;

	return n->kind == Y_SCALAR && ytree_resolve(n, &iv, &dv) == S_STR && strlen(n->s) == n->len;
}

static int is_null(const struct ynode *n)
{
	int64_t iv;
	double dv;

	return n->kind == Y_SCALAR && ytree_resolve(n, &iv, &dv) == S_NULL;
}

/* A name of an environment or a template: a safe name without '.'. */
static int plain_name_ok(const char *s)
{
	return orchd_name_is_safe(s) && !strchr(s, '.');
}

static struct ynode *new_scalar(struct compose *c, const struct ynode *at, const char *s,
				size_t len)
{
	struct ynode *n = ytree_new(c->y, Y_SCALAR, at->file, at->line, at->col);

	n->s = ytree_alloc(c->y, len + 1);
	memcpy(n->s, s, len);
	n->s[len] = '\0';
	n->len = (unsigned)len;
	n->bytes = n->len;
	n->plain = 0; /* a string, whatever it looks like */
	return n;
}

static unsigned sat(size_t v)
{
	return v > SIZE_SAT ? (unsigned)SIZE_SAT : (unsigned)v;
}

static struct ynode *new_map(struct compose *c, const struct ynode *at, size_t cap)
{
	struct ynode *m = ytree_new(c->y, Y_MAP, at->file, at->line, at->col);

	m->pairs = ytree_alloc(c->y, (cap + 1) * sizeof(*m->pairs));
	m->n = 0;
	return m;
}

static void map_add(struct ynode *m, struct ynode *k, struct ynode *v)
{
	m->pairs[m->n].key = k;
	m->pairs[m->n].val = v;
	m->n++;
	m->size = sat((size_t)m->size + k->size + v->size);
	m->bytes = sat((size_t)m->bytes + k->bytes + v->bytes);
}

/* m without the keys listed (a new node, or m when none is there). */
static struct ynode *map_without(struct compose *c, struct ynode *m, const char *const *keys,
				 size_t nkeys)
{
	struct ynode *out;
	size_t i, j, hit = 0;

	for (i = 0; i < m->n; i++)
		for (j = 0; j < nkeys; j++)
			hit += !strcmp(m->pairs[i].key->s, keys[j]);
	if (!hit)
		return m;
	out = new_map(c, m, m->n);
	for (i = 0; i < m->n; i++) {
		for (j = 0; j < nkeys; j++)
			if (!strcmp(m->pairs[i].key->s, keys[j]))
				break;
		if (j == nkeys)
			map_add(out, m->pairs[i].key, m->pairs[i].val);
	}
	return out;
}

/* m with key's value replaced by v (a new node). */
static struct ynode *map_with(struct compose *c, struct ynode *m, const char *key, struct ynode *v)
{
	struct ynode *out = new_map(c, m, m->n);

	for (size_t i = 0; i < m->n; i++)
		map_add(out, m->pairs[i].key,
			strcmp(m->pairs[i].key->s, key) ? m->pairs[i].val : v);
	return out;
}

/* ---- merging ---------------------------------------------------------------- */

/*
 * The merge rule: two mappings merge key by key (b's value wins, merged
 * again when both are mappings; a key keeps a's place, new keys follow in
 * b's order); anything else is replaced by b.
 */
static struct ynode *merge(struct compose *c, struct ynode *a, struct ynode *b)
{
	struct orchd_map ix = ORCHD_MAP_INIT;
	unsigned char small_used[16] = {0}, *used;
	struct ynode *m;
	size_t i, j, *at;
	int hashed;

	if (!a || a->kind != Y_MAP || !b || b->kind != Y_MAP)
		return b;
	m = new_map(c, b, (size_t)a->n + b->n);
	/* instance-sized mappings: a scan costs less than a hash */
	hashed = b->n > ARRAY_SIZE(small_used);
	used = hashed ? xcalloc((size_t)b->n + 1, 1) : small_used;
	for (i = 0; hashed && i < b->n; i++)
		orchd_map_put(&ix, b->pairs[i].key->s, i, NULL);
	for (i = 0; i < a->n; i++) {
		const struct ynode *k = a->pairs[i].key;

		if (hashed) {
			at = orchd_map_get(&ix, k->s);
			j = at ? *at : b->n;
		} else {
			for (j = 0; j < b->n; j++)
				if (b->pairs[j].key->len == k->len &&
				    !memcmp(b->pairs[j].key->s, k->s, k->len))
					break;
		}
		if (j < b->n) {
			used[j] = 1;
			map_add(m, b->pairs[j].key, merge(c, a->pairs[i].val, b->pairs[j].val));
		} else {
			map_add(m, a->pairs[i].key, a->pairs[i].val);
		}
	}
	for (i = 0; i < b->n; i++)
		if (!used[i])
			map_add(m, b->pairs[i].key, b->pairs[i].val);
	if (hashed)
		free(used);
	orchd_map_release(&ix);
	return m;
}

/* Two pipeline bodies: core merges, extension sections (lists) are
 * concatenated, anything else is replaced. */
static struct ynode *merge_body(struct compose *c, struct ynode *a, struct ynode *b)
{
	struct ynode *m = new_map(c, b, (size_t)a->n + b->n);
	size_t i, j;

	for (i = 0; i < a->n; i++) {
		struct ynode *k = a->pairs[i].key, *v = a->pairs[i].val, *bv = NULL, *bk = k;

		for (j = 0; j < b->n; j++)
			if (!strcmp(b->pairs[j].key->s, k->s)) {
				bk = b->pairs[j].key;
				bv = b->pairs[j].val;
			}
		if (!bv) {
			map_add(m, k, v);
		} else if (!strcmp(k->s, "core")) {
			map_add(m, bk, merge(c, v, bv));
		} else if (v->kind != Y_SEQ || bv->kind != Y_SEQ) {
			/* a section that is not a list would hide the other's
			 * instances: the model's error, said here */
			const struct ynode *bad = v->kind != Y_SEQ ? v : bv;

			cerr(c, bad, "%s: an extension section is a list of instances, got %s",
			     k->s, ytree_kind_name(bad));
			map_add(m, bk, v->kind == Y_SEQ ? v : bv);
		} else {
			struct ynode *s = ytree_new(c->y, Y_SEQ, bv->file, bv->line, bv->col);

			s->items =
				ytree_alloc(c->y, ((size_t)v->n + bv->n + 1) * sizeof(*s->items));
			memcpy(s->items, v->items, v->n * sizeof(*s->items));
			memcpy(s->items + v->n, bv->items, bv->n * sizeof(*s->items));
			s->n = v->n + bv->n;
			s->size = sat((size_t)1 + v->size + bv->size);
			s->bytes = sat((size_t)v->bytes + bv->bytes);
			map_add(m, bk, s);
		}
	}
	for (j = 0; j < b->n; j++) {
		for (i = 0; i < a->n; i++)
			if (!strcmp(a->pairs[i].key->s, b->pairs[j].key->s))
				break;
		if (i == a->n)
			map_add(m, b->pairs[j].key, b->pairs[j].val);
	}
	return m;
}

/* errno of read_import() for a file that is not a regular file */
#define EFTYPE_ EINVAL

/* path into out (at most ORCHD_MAX_FILE_SIZE), opened with flags; with
 * regular, anything but a regular file is refused (EFTYPE_). */
static int read_open(const char *path, int flags, int regular, struct op_buf *out)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | flags), ret, e;

	if (fd < 0)
		return -1;
	if (regular && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		errno = EFTYPE_;
		return -1;
	}
	op_buf_init(out, ORCHD_MAX_FILE_SIZE);
	ret = orchd_read_fd(fd, out);
	e = errno;
	close(fd);
	errno = e;
	return ret;
}

/* An imported file: a regular file only (a FIFO or a device would block or
 * never end), opened without blocking on a FIFO's writer. */
static int read_import(const struct orchd_load_opts *o, const char *path, struct op_buf *out)
{
	if (o && o->read)
		return o->read(o->read_ctx, path, out);
	return read_open(path, O_NONBLOCK | O_NOCTTY, 1, out);
}

/* ---- imports ---------------------------------------------------------------- */

int orchd_compose_read(const struct orchd_load_opts *o, const char *path, struct op_buf *out)
{
	if (o && o->read)
		return o->read(o->read_ctx, path, out);
	return read_open(path, 0, 0, out);
}

char *orchd_compose_file_key(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return NULL;
	return xasprintf("file:%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
}

char *orchd_compose_join(const char *base, const char *rel)
{
	const char *slash = strrchr(base, '/');
	char *s, *save = NULL, *tok, **seg;
	struct op_buf out = OP_BUF_INIT;
	size_t n = 0;
	int abs;

	if (*rel == '/' || !slash)
		s = xstrdup(rel);
	else
		s = xasprintf("%.*s/%s", (int)(slash - base), base, rel);
	abs = *s == '/';
	seg = xcalloc(strlen(s) + 1, sizeof(*seg));
	for (tok = strtok_r(s, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (!strcmp(tok, "."))
			continue;
		if (!strcmp(tok, "..")) {
			if (n && strcmp(seg[n - 1], ".."))
				n--;
			else if (!abs)
				seg[n++] = tok;
			continue;
		}
		seg[n++] = tok;
	}
	if (abs)
		op_buf_addch(&out, '/');
	for (size_t i = 0; i < n; i++)
		op_buf_addf(&out, "%s%s", i ? "/" : "", seg[i]);
	if (!out.len)
		op_buf_addch(&out, '.');
	free(seg);
	free(s);
	return op_buf_detach(&out, NULL);
}

/* "p.yaml:3:5 imports a.yaml, a.yaml:2:1 imports p.yaml" from file `from`
 * (an ancestor of `file`, or (size_t)-1 for the pipeline file) down to
 * file, then file's import of `target` at item. */
static void chain_text(struct compose *c, size_t from, size_t file, const struct ynode *item,
		       const char *target, struct op_buf *sb)
{
	size_t path[YTREE_MAX_FILES + 1] = {0}, n = 0, f;

	for (f = file; f != from && f < c->y->nfiles && c->y->files[f].parent < c->y->nfiles &&
		       n < YTREE_MAX_FILES;
	     f = c->y->files[f].parent)
		path[n++] = f;
	while (n--) {
		const struct yfile *yf = &c->y->files[path[n]];

		op_buf_addf(sb, "%s:%u:%u imports %s, ", c->y->files[yf->parent].path, yf->line,
			    yf->col, yf->path);
	}
	op_buf_addf(sb, "%s:%u:%u imports %s", c->y->files[file].path, item->line, item->col,
		    target);
}

static struct ynode *compose_body(struct compose *c, struct ynode *body, unsigned file);

/*
 * Where an import entry points: its display path and key.  A string is a
 * path, relative to the importing file (in its git source when it came
 * from one); a mapping {git, ref, path} a file of a repository pinned to a
 * commit or a tag.  0, or -1 (reported).
 */
static int import_target(struct compose *c, const struct ynode *item, unsigned file, char **path,
			 char **key, char **git_url, char **git_commit)
{
	const struct yfile *parent = &c->y->files[file];
	*path = *key = *git_url = *git_commit = NULL;
	if (is_string(item)) {
		if (!*item->s) {
			cerr(c, item, "core.imports: an empty path");
			return -1;
		}
		if (parent->git_url) {
			if (*item->s == '/') {
				cerr(c, item,
				     "core.imports: '%s': a file imported from git imports files "
				     "of "
				     "its repository (a relative path)",
				     item->s);
				return -1;
			}
			*path = orchd_compose_join(parent->git_path, item->s);
			if (!strncmp(*path, "..", 2) && ((*path)[2] == '/' || !(*path)[2])) {
				cerr(c, item, "core.imports: '%s' is outside the repository %s",
				     item->s, parent->git_url);
				free(*path);
				*path = NULL;
				return -1;
			}
			*git_url = xstrdup(parent->git_url);
			*git_commit = xstrdup(parent->git_commit);
			*key = xasprintf("git:%s@%s:%s", *git_url, *git_commit, *path);
			return 0;
		}
		if (c->o && c->o->read) {
			/* read from elsewhere (a git tree): names are folded */
			*path = orchd_compose_join(parent->path, item->s);
			*key = xstrdup(*path);
			return 0;
		}
		/* the file system resolves "..", after symbolic links */
		if (*item->s == '/' || !strchr(parent->path, '/'))
			*path = xstrdup(item->s);
		else
			*path = xasprintf("%.*s/%s",
					  (int)(strrchr(parent->path, '/') - parent->path),
					  parent->path, item->s);
		if (!(*key = orchd_compose_file_key(*path)))
			*key = xstrdup(*path);
		return 0;
	}
	if (item->kind == Y_MAP) {
		static const char *const keys[] = {"git", "ref", "path"};
		const struct ynode *v[3];

		for (size_t i = 0; i < item->n; i++) {
			const struct ynode *k = item->pairs[i].key;
			size_t j;

			for (j = 0; j < ARRAY_SIZE(keys); j++)
				if (!strcmp(k->s, keys[j]))
					break;
			if (j == ARRAY_SIZE(keys)) {
				cerr(c, k,
				     "core.imports: unknown key '%s' (expected git, ref, path)",
				     k->s);
				return -1;
			}
		}
		for (size_t j = 0; j < ARRAY_SIZE(keys); j++) {
			v[j] = ytree_get(item, keys[j]);
			if (!v[j] || !is_string(v[j]) || !*v[j]->s) {
				cerr(c, v[j] ? v[j] : item,
				     "core.imports: a git import needs '%s' (a non-empty string)",
				     keys[j]);
				return -1;
			}
		}
		*path = orchd_compose_join("", v[2]->s);
		if (*v[2]->s == '/' || !strncmp(*path, "..", 2)) {
			cerr(c, v[2],
			     "core.imports: path '%s' must be relative, inside the repository",
			     v[2]->s);
			free(*path);
			*path = NULL;
			return -1;
		}
		*git_url = xstrdup(v[0]->s);
		*git_commit = xstrdup(v[1]->s); /* the ref, pinned when read */
		*key = xasprintf("git:%s@%s:%s", *git_url, *git_commit, *path);
		return 0;
	}
	cerr(c, item, "core.imports: expected a path or {git, ref, path}, got %s",
	     ytree_kind_name(item));
	return -1;
}

static struct ynode *import_one(struct compose *c, const struct ynode *item, unsigned file)
{
	struct yparse *y = c->y;
	struct op_buf buf = OP_BUF_INIT;
	char *path, *key, *url, *commit, err[512];
	struct ynode *root = NULL;
	size_t f;
	int idx;

	if (import_target(c, item, file, &path, &key, &url, &commit) < 0)
		return NULL;
	for (f = file; f < y->nfiles; f = y->files[f].parent)
		if (!strcmp(y->files[f].key, key)) {
			struct op_buf sb = OP_BUF_INIT;
			char *shown = url ? xasprintf("%s@%.12s:%s", url, commit, path) : NULL;

			chain_text(c, (size_t)-1, file, item, shown ? shown : path, &sb);
			free(shown);
			cerr(c, item, "import cycle: %s", orchd_buf_str(&sb));
			op_buf_release(&sb);
			goto out;
		}
	for (f = 0; f < y->nfiles; f++)
		if (!strcmp(y->files[f].key, key))
			goto out; /* merged once, where it was first imported */
	idx = ytree_add_file(y, path, key, file, item->line, item->col);
	if (idx < 0)
		goto out;
	if (url) {
		struct orchd_git_opts go = ORCHD_GIT_OPTS_INIT;
		char oid[ORCHD_GIT_OIDSZ];

		go.cache_dir = c->o ? c->o->git_cache_dir : NULL;
		op_buf_init(&buf, ORCHD_MAX_FILE_SIZE);
		if (orchd_git_read_pinned(url, commit, path, &go, oid, &buf, err, sizeof(err)) <
		    0) {
			cerr(c, item, "core.imports: %s", err);
			goto out;
		}
		y->files[idx].git_url = xstrdup(url);
		y->files[idx].git_commit = xstrdup(oid);
		y->files[idx].git_path = xstrdup(path);
		/* known by its commit from now on, however the ref named it */
		free(y->files[idx].key);
		y->files[idx].key = xasprintf("git:%s@%s:%s", url, oid, path);
		for (f = 0; f < (size_t)idx; f++)
			if (!strcmp(y->files[f].key, y->files[idx].key))
				goto out; /* met already under another ref: merged once */
		free(y->files[idx].path);
		y->files[idx].path = xasprintf("%s@%.12s:%s", url, oid, path);
	} else if (read_import(c->o, path, &buf) < 0) {
		cerr(c, item, "core.imports: cannot read '%s': %s", path,
		     errno == E2BIG	? "file too large"
		     : errno == EFTYPE_ ? "not a regular file"
					: strerror(errno));
		goto out;
	}
	y->cur = (unsigned)idx;
	y->file = y->files[idx].path;
	y->buf = orchd_buf_str(&buf);
	y->len = buf.len;
	if (ytree_parse(y) < 0)
		goto out;
	root = y->root;
	if (!root || is_null(root)) {
		/* an empty file adds nothing */
		root = NULL;
		goto out;
	}
	if (root->kind != Y_MAP) {
		cerr(c, root,
		     "an imported file holds core and extension sections (a mapping), got %s",
		     ytree_kind_name(root));
		root = NULL;
		goto out;
	}
	root = compose_body(c, root, (unsigned)idx);
out:
	y->buf = NULL;
	y->len = 0;
	op_buf_release(&buf);
	free(path);
	free(key);
	free(url);
	free(commit);
	return root;
}

/* body with its imports merged in before it (core.imports is left in the
 * result: the caller removes the compose keys at the end). */
static struct ynode *compose_body(struct compose *c, struct ynode *body, unsigned file)
{
	struct ynode *core = ytree_get(body, "core"), *imports = ytree_get(core, "imports");
	struct ynode *acc = NULL, *sub;

	if (!imports || is_null(imports))
		return body;
	if (imports->kind != Y_SEQ) {
		cerr(c, imports, "core.imports: expected a list of files, got %s",
		     ytree_kind_name(imports));
		return body;
	}
	for (size_t i = 0; i < imports->n; i++)
		if ((sub = import_one(c, imports->items[i], file)))
			acc = acc ? merge_body(c, acc, sub) : sub;
	return acc ? merge_body(c, acc, body) : body;
}

/* ---- substitution ------------------------------------------------------------- */

/* Add a literal text part, escaping "${{" again (the model's parser reads it). */
static void add_escaped(struct op_buf *sb, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '$' && i + 2 < len && s[i + 1] == '{' && s[i + 2] == '{')
			op_buf_addch(sb, '$');
		op_buf_addch(sb, s[i]);
	}
}

/* The text of a scalar value inside a longer string. */
static int scalar_text(struct compose *c, const struct ynode *v, const struct ynode *at,
		       const char *what, struct op_buf *sb)
{
	int64_t iv;
	double dv;

	if (v->kind != Y_SCALAR) {
		cerr(c, at, "'%s' is %s: only a string that is exactly '%s' can take it", what,
		     ytree_kind_name(v), what);
		return -1;
	}
	switch (ytree_resolve(v, &iv, &dv)) {
	case S_NULL:
		cerr(c, at, "'%s' is null: it has no text", what);
		return -1;
	case S_BOOL:
		op_buf_addstr(sb, iv ? "true" : "false");
		return 0;
	case S_INT:
		op_buf_addf(sb, "%" PRId64, iv);
		return 0;
	default:
		op_buf_add(sb, v->s, v->len);
		return 0;
	}
}

static void unknown_var(struct compose *c, const struct ynode *at, const char *text,
			const char *name)
{
	struct op_buf known = OP_BUF_INIT;
	const char *cand[64];
	size_t nc = 0;

	for (size_t i = 0; c->vars && c->vars->kind == Y_MAP && i < c->vars->n; i++) {
		op_buf_addf(&known, "%s%s", known.len ? ", " : "", c->vars->pairs[i].key->s);
		if (nc < ARRAY_SIZE(cand))
			cand[nc++] = c->vars->pairs[i].key->s;
	}
	if (known.len) {
		const char *near = orchd_closest(name, cand, nc);

		cerr(c, at, "'%s': unknown variable '%s'%s%s%s (defined: %s)", text, name,
		     near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "",
		     orchd_buf_str(&known));
	} else if (!c->env && c->envs.len) {
		cerr(c, at,
		     "'%s': unknown variable '%s' (no environment is selected: use --env with "
		     "one of %s)",
		     text, name, orchd_buf_str(&c->envs));
	} else {
		cerr(c, at, "'%s': unknown variable '%s' (no variable is defined)", text, name);
	}
	op_buf_release(&known);
}

/* Charge what a substitution adds to the expansion bound: 0, or -1 (reported
 * once) past it. */
static int charge(struct compose *c, const struct ynode *at, size_t nodes, size_t bytes)
{
	c->expanded += nodes;
	c->expanded_bytes += bytes;
	if (c->expanded <= ORCHD_MAX_EXPANDED_NODES &&
	    c->expanded_bytes <= ORCHD_MAX_EXPANDED_BYTES)
		return 0;
	if (!c->over_budget)
		cerr(c, at,
		     "templates and variables expand to too much (limit %d nodes, %u MiB of text "
		     "in the pipeline)",
		     ORCHD_MAX_EXPANDED_NODES, ORCHD_MAX_EXPANDED_BYTES >> 20);
	c->over_budget = 1;
	return -1;
}

/* The value of `${{ env.NAME }}`: a new string node, or NULL (reported). */
static struct ynode *env_value(struct compose *c, const struct ynode *at, const char *text,
			       const char *name)
{
	const char *v;
	size_t i;

	for (i = 0; c->env_allow && c->env_allow->kind == Y_SEQ && i < c->env_allow->n; i++)
		if (c->env_allow->items[i]->kind == Y_SCALAR &&
		    !strcmp(c->env_allow->items[i]->s, name))
			break;
	if (!c->env_allow || c->env_allow->kind != Y_SEQ || i == c->env_allow->n) {
		cerr(c, at,
		     "'%s': '%s' is not listed in core.env_allow (a pipeline reads only the "
		     "variables of orchd's environment it lists)",
		     text, name);
		return NULL;
	}
	if (!(v = getenv(name))) {
		cerr(c, at, "'%s': the environment variable %s is not set", text, name);
		return NULL;
	}
	/* literal text: a "${{" in it is escaped, never a reference */
	op_buf_reset(&c->envtext);
	add_escaped(&c->envtext, v, strlen(v));
	return new_scalar(c, at, orchd_buf_str(&c->envtext), c->envtext.len);
}

/*
 * n with `${{ params.X }}` replaced (params != NULL: a mapping of the
 * values bound) and, when vars is set, `${{ vars.X }}` and `${{ env.X }}`.
 * Returns n itself when nothing changed, a new node otherwise, NULL on an
 * error (reported).
 */
static struct ynode *subst(struct compose *c, struct ynode *n, const struct ynode *params, int vars)
{
	struct orchd_ref_parsed parsed;
	struct ynode *out = NULL, *r;
	char err[256];
	size_t i, nsub = 0;
	int bad = 0;

	if (n->kind == Y_SEQ) {
		for (i = 0; i < n->n; i++) {
			if (!(r = subst(c, n->items[i], params, vars)))
				bad = 1;
			else if (r != n->items[i] && !out) {
				out = ytree_new(c->y, Y_SEQ, n->file, n->line, n->col);
				out->items =
					ytree_alloc(c->y, ((size_t)n->n + 1) * sizeof(*out->items));
				memcpy(out->items, n->items, n->n * sizeof(*out->items));
				out->n = n->n;
			}
			if (out && r)
				out->items[i] = r;
		}
		if (out) {
			out->size = 1;
			out->bytes = 0;
			for (i = 0; i < out->n; i++) {
				out->size = sat((size_t)out->size + out->items[i]->size);
				out->bytes = sat((size_t)out->bytes + out->items[i]->bytes);
			}
		}
		return bad ? NULL : out ? out : n;
	}
	if (n->kind == Y_MAP) {
		struct ynode **vals = NULL;

		for (i = 0; i < n->n; i++) {
			if (!(r = subst(c, n->pairs[i].val, params, vars)))
				bad = 1;
			else if (r != n->pairs[i].val && !vals) {
				vals = xcalloc(n->n, sizeof(*vals));
				for (size_t j = 0; j < i; j++)
					vals[j] = n->pairs[j].val;
			}
			if (vals)
				vals[i] = r ? r : n->pairs[i].val;
		}
		if (vals && !bad) {
			out = new_map(c, n, n->n);
			for (i = 0; i < n->n; i++)
				map_add(out, n->pairs[i].key, vals[i]);
		}
		free(vals);
		return bad ? NULL : out ? out : n;
	}
	if (n->len < 7 || !memmem(n->s, n->len, "${{", 3))
		return n;
	if (orchd_ref_parse(n->s, n->len, &parsed, err, sizeof(err)) < 0 || !parsed.nloads) {
		/* a malformed reference is the model's to report */
		orchd_ref_parsed_release(&parsed);
		return n;
	}
	for (i = 0; i < parsed.n; i++)
		if ((parsed.parts[i].ns == ORCHD_REF_PARAMS && params) ||
		    (parsed.parts[i].ns > ORCHD_REF_PARAMS && vars))
			nsub++;
	if (!nsub) {
		orchd_ref_parsed_release(&parsed);
		return n;
	}
	if (parsed.n == 1) {
		/* the whole string: the value as it is */
		struct orchd_ref_part *p = &parsed.parts[0];

		if (p->ns == ORCHD_REF_PARAMS) {
			if (!(r = ytree_get(params, p->key))) {
				cerr(c, n, "'%s': template '%s' has no parameter '%s' with a value",
				     p->text, c->tchain[c->ntchain - 1], p->key);
			}
		} else if (p->ns == ORCHD_REF_VARS) {
			if (!(r = ytree_get(c->vars, p->key)))
				unknown_var(c, n, p->text, p->key);
		} else {
			r = env_value(c, n, p->text, p->key);
		}
		orchd_ref_parsed_release(&parsed);
		if (r && charge(c, n, r->size, r->bytes) < 0)
			return NULL;
		return r;
	}
	op_buf_reset(&c->text);
	for (i = 0; i < parsed.n; i++) {
		struct orchd_ref_part *p = &parsed.parts[i];
		const struct ynode *v;

		if (!p->is_ref && !p->ns) {
			add_escaped(&c->text, p->text, p->len);
		} else if (p->is_ref || (p->ns == ORCHD_REF_PARAMS && !params) ||
			   (p->ns > ORCHD_REF_PARAMS && !vars)) {
			op_buf_add(&c->text, p->text, p->len);
		} else if (p->ns == ORCHD_REF_PARAMS) {
			if (!(v = ytree_get(params, p->key))) {
				cerr(c, n, "'%s': template '%s' has no parameter '%s' with a value",
				     p->text, c->tchain[c->ntchain - 1], p->key);
				bad = 1;
			} else if (scalar_text(c, v, n, p->text, &c->text) < 0) {
				bad = 1;
			}
		} else if (p->ns == ORCHD_REF_VARS) {
			if (!(v = ytree_get(c->vars, p->key))) {
				unknown_var(c, n, p->text, p->key);
				bad = 1;
			} else if (scalar_text(c, v, n, p->text, &c->text) < 0) {
				bad = 1;
			}
		} else if ((v = env_value(c, n, p->text, p->key))) {
			op_buf_add(&c->text, v->s, v->len); /* escaped already */
		} else {
			bad = 1;
		}
	}
	orchd_ref_parsed_release(&parsed);
	if (bad || charge(c, n, 1, c->text.len) < 0)
		return NULL;
	return new_scalar(c, n, orchd_buf_str(&c->text), c->text.len);
}

/* ---- templates ---------------------------------------------------------------- */

static const char *const template_keys[] = {"params", "config", "template", "with", "description"};
static const char *const param_keys[] = {"type", "default", "required", "description"};
static const char *const param_types[] = {"string", "number", "bool", "list", "map"};

static int unknown_key(struct compose *c, const struct ynode *k, const char *where,
		       const char *const *keys, size_t n)
{
	const char *near = orchd_closest(k->s, keys, n);

	if (near)
		cerr(c, k, "%s: unknown key '%s' (did you mean '%s'?)", where, k->s, near);
	else
		cerr(c, k, "%s: unknown key '%s'", where, k->s);
	return -1;
}

static size_t index_of(const char *s, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, v[i]))
			return i;
	return n;
}

/* v matches a parameter type; a string that is exactly one output
 * reference or variable stands for a value of any type. */
static int type_ok(const struct ynode *v, size_t type)
{
	int64_t iv;
	double dv;
	enum stype t;

	if (v->kind == Y_SEQ)
		return type == 3;
	if (v->kind == Y_MAP)
		return type == 4;
	t = ytree_resolve(v, &iv, &dv);
	if (t == S_STR && v->len > 6 && !strncmp(v->s, "${{", 3) &&
	    !memcmp(v->s + v->len - 2, "}}", 2) && !memmem(v->s + 3, v->len - 5, "${{", 3))
		return 1;
	switch (type) {
	case 0:
		return t == S_STR;
	case 1:
		return t == S_INT || (t == S_FLOAT && isfinite(dv));
	case 2:
		return t == S_BOOL;
	default:
		return 0;
	}
}

static const char *type_word(size_t type)
{
	static const char *const words[] = {"a string", "a number", "a boolean (true or false)",
					    "a list", "a mapping"};

	return words[type];
}

/* The index of a parameter's type, or -1 (reported when report). */
static int param_type(struct compose *c, const struct ynode *spec, const char *tname,
		      const char *pname, int report)
{
	const struct ynode *t = ytree_get(spec, "type");
	size_t k;

	if (!t) {
		if (report)
			cerr(c, spec,
			     "core.templates.%s.params.%s: missing 'type' (one of string, "
			     "number, bool, list, map)",
			     tname, pname);
		return -1;
	}
	if (!is_string(t) ||
	    (k = index_of(t->s, param_types, ARRAY_SIZE(param_types))) == ARRAY_SIZE(param_types)) {
		if (report)
			cerr(c, t,
			     "core.templates.%s.params.%s.type: expected one of string, number, "
			     "bool, list, map, got '%s'",
			     tname, pname, t->kind == Y_SCALAR ? t->s : ytree_kind_name(t));
		return -1;
	}
	return (int)k;
}

/* Check one template's definition; 0 when it can be used. */
static int check_template(struct compose *c, const struct ynode *name, const struct ynode *t)
{
	const struct ynode *params, *cfg, *inner, *with;
	int bad = 0;

	if (!plain_name_ok(name->s)) {
		cerr(c, name,
		     "core.templates: invalid template name '%s' (letters, digits, '_' and '-', "
		     "starting with a letter or digit, at most 63 characters)",
		     name->s);
		return -1;
	}
	if (t->kind != Y_MAP) {
		cerr(c, t, "core.templates.%s: expected a mapping, got %s", name->s,
		     ytree_kind_name(t));
		return -1;
	}
	for (size_t i = 0; i < t->n; i++)
		if (index_of(t->pairs[i].key->s, template_keys, ARRAY_SIZE(template_keys)) ==
		    ARRAY_SIZE(template_keys)) {
			char where[128];

			snprintf(where, sizeof(where), "core.templates.%s", name->s);
			bad = unknown_key(c, t->pairs[i].key, where, template_keys,
					  ARRAY_SIZE(template_keys));
		}
	params = ytree_get(t, "params");
	if (params && !is_null(params) && params->kind != Y_MAP) {
		cerr(c, params, "core.templates.%s.params: expected a mapping, got %s", name->s,
		     ytree_kind_name(params));
		bad = -1;
	}
	for (size_t i = 0; params && params->kind == Y_MAP && i < params->n; i++) {
		const struct ynode *pk = params->pairs[i].key, *spec = params->pairs[i].val;
		const struct ynode *def, *req;
		int type;

		if (!*pk->s || strspn(pk->s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					     "0123456789_-") != pk->len) {
			cerr(c, pk,
			     "core.templates.%s.params: invalid parameter name '%s' (letters, "
			     "digits, "
			     "'_' and '-': ${{ params.NAME }} must be able to name it)",
			     name->s, pk->s);
			bad = -1;
			continue;
		}
		if (spec->kind != Y_MAP) {
			cerr(c, spec,
			     "core.templates.%s.params.%s: expected a mapping {type, default, "
			     "required}, got %s",
			     name->s, pk->s, ytree_kind_name(spec));
			bad = -1;
			continue;
		}
		for (size_t j = 0; j < spec->n; j++)
			if (index_of(spec->pairs[j].key->s, param_keys, ARRAY_SIZE(param_keys)) ==
			    ARRAY_SIZE(param_keys)) {
				char where[192];

				snprintf(where, sizeof(where), "core.templates.%s.params.%s",
					 name->s, pk->s);
				bad = unknown_key(c, spec->pairs[j].key, where, param_keys,
						  ARRAY_SIZE(param_keys));
			}
		if ((type = param_type(c, spec, name->s, pk->s, 1)) < 0) {
			bad = -1;
			continue;
		}
		req = ytree_get(spec, "required");
		if (req) {
			int64_t iv;
			double dv;

			if (req->kind != Y_SCALAR || ytree_resolve(req, &iv, &dv) != S_BOOL) {
				cerr(c, req,
				     "core.templates.%s.params.%s.required: expected a boolean, "
				     "got %s",
				     name->s, pk->s, ytree_kind_name(req));
				bad = -1;
			}
		}
		def = ytree_get(spec, "default");
		if (def && !type_ok(def, (size_t)type)) {
			cerr(c, def, "core.templates.%s.params.%s.default: expected %s, got %s",
			     name->s, pk->s, type_word((size_t)type), ytree_kind_name(def));
			bad = -1;
		}
	}
	cfg = ytree_get(t, "config");
	if (cfg && !is_null(cfg) && cfg->kind != Y_MAP) {
		cerr(c, cfg, "core.templates.%s.config: expected a mapping, got %s", name->s,
		     ytree_kind_name(cfg));
		bad = -1;
	}
	for (size_t k = 0; k < 2 && cfg && cfg->kind == Y_MAP; k++) {
		const struct ynode *u = ytree_get(cfg, k ? "with" : "template");

		if (u) {
			cerr(c, u,
			     "core.templates.%s.config: '%s' is not a config key (a template "
			     "uses another with its own 'template' and 'with')",
			     name->s, k ? "with" : "template");
			bad = -1;
		}
	}
	inner = ytree_get(t, "template");
	with = ytree_get(t, "with");
	if (inner && !is_string(inner)) {
		cerr(c, inner, "core.templates.%s.template: expected a template name, got %s",
		     name->s, ytree_kind_name(inner));
		bad = -1;
	}
	if (with && !inner) {
		cerr(c, with, "core.templates.%s.with: without 'template'", name->s);
		bad = -1;
	}
	return bad;
}

static int bool_true(const struct ynode *n)
{
	int64_t iv = 0;
	double dv;

	return n && n->kind == Y_SCALAR && ytree_resolve(n, &iv, &dv) == S_BOOL && iv;
}

/*
 * The parameters of template t bound for one use: a mapping name -> value
 * (given in `with`, else the default).  at: where the use names the
 * template.  NULL on an error (reported).
 */
static struct ynode *bind(struct compose *c, const struct ynode *tname, const struct ynode *t,
			  struct ynode *with, const struct ynode *at)
{
	struct ynode *params = ytree_get(t, "params"), *out;
	size_t np = params && params->kind == Y_MAP ? params->n : 0;
	int bad = 0;

	if (with && !is_null(with) && with->kind != Y_MAP) {
		cerr(c, with, "with: expected a mapping of the parameters of template '%s', got %s",
		     tname->s, ytree_kind_name(with));
		return NULL;
	}
	if (with && with->kind != Y_MAP)
		with = NULL;
	out = new_map(c, at, np);
	for (size_t i = 0; with && i < with->n; i++) {
		struct ynode *k = with->pairs[i].key, *v = with->pairs[i].val;
		struct ynode *spec = params ? ytree_get(params, k->s) : NULL;
		int type;

		if (!spec) {
			const char *cand[64], *near;
			size_t nc = 0;

			for (size_t j = 0; j < np && nc < ARRAY_SIZE(cand); j++)
				cand[nc++] = params->pairs[j].key->s;
			near = orchd_closest(k->s, cand, nc);
			if (near)
				cerr(c, k,
				     "with.%s: template '%s' has no parameter '%s' (did you mean "
				     "'%s'?)",
				     k->s, tname->s, k->s, near);
			else
				cerr(c, k, "with.%s: template '%s' has no parameter '%s'", k->s,
				     tname->s, k->s);
			bad = 1;
			continue;
		}
		type = param_type(c, spec, tname->s, k->s, 0);
		if (type >= 0 && !type_ok(v, (size_t)type)) {
			cerr(c, v, "with.%s: template '%s' expects %s, got %s", k->s, tname->s,
			     type_word((size_t)type),
			     type == 1 && !strcmp(ytree_kind_name(v), "a number")
				     ? "an infinite or NaN number"
				     : ytree_kind_name(v));
			bad = 1;
			continue;
		}
	}
	for (size_t i = 0; i < np; i++) {
		struct ynode *k = params->pairs[i].key, *spec = params->pairs[i].val;
		struct ynode *v = with ? ytree_get(with, k->s) : NULL;

		if (!v)
			v = ytree_get(spec, "default");
		if (v) {
			/* the key of `with` when given, for --explain */
			map_add(out, k, v);
		} else if (bool_true(ytree_get(spec, "required"))) {
			cerr(c, at, "template '%s': missing required parameter '%s'", tname->s,
			     k->s);
			bad = 1;
		}
	}
	return bad ? NULL : out;
}

/*
 * The config of template `name` used at `at` with `with`: its own config,
 * parameters replaced, over the config of the template it uses.  NULL on
 * an error (reported).
 */
static struct ynode *expand(struct compose *c, const struct ynode *name, struct ynode *with,
			    const struct ynode *at)
{
	struct ynode *t, *params, *cfg, *inner_name, *inner = NULL, *inner_with;
	size_t *ix, i;

	if (!c->templates || !(ix = orchd_map_get(&c->tindex, name->s))) {
		const char *cand[64], *near = NULL;
		size_t nc = 0;

		for (i = 0; c->templates && i < c->templates->n && nc < ARRAY_SIZE(cand); i++)
			cand[nc++] = c->templates->pairs[i].key->s;
		near = orchd_closest(name->s, cand, nc);
		if (near)
			cerr(c, name, "template: unknown template '%s' (did you mean '%s'?)",
			     name->s, near);
		else if (!c->templates)
			cerr(c, name,
			     "template: unknown template '%s' (the pipeline defines none in "
			     "core.templates)",
			     name->s);
		else
			cerr(c, name, "template: unknown template '%s'", name->s);
		return NULL;
	}
	if (c->tbad[*ix])
		return NULL; /* its definition's errors are reported */
	for (i = 0; i < c->ntchain; i++)
		if (!strcmp(c->tchain[i], name->s)) {
			struct op_buf sb = OP_BUF_INIT;

			for (size_t j = i; j < c->ntchain; j++)
				op_buf_addf(&sb, "%s -> ", c->tchain[j]);
			op_buf_addstr(&sb, name->s);
			cerr(c, name, "template cycle: %s", orchd_buf_str(&sb));
			op_buf_release(&sb);
			return NULL;
		}
	if (c->ntchain >= ORCHD_TEMPLATE_DEPTH) {
		cerr(c, name, "templates nested too deep (limit %d): %s ...", ORCHD_TEMPLATE_DEPTH,
		     c->tchain[0]);
		return NULL;
	}
	t = c->templates->pairs[*ix].val;
	if (!(params = bind(c, c->templates->pairs[*ix].key, t, with, at)))
		return NULL;
	c->tchain[c->ntchain++] = name->s;
	cfg = ytree_get(t, "config");
	if (cfg && cfg->kind == Y_MAP)
		cfg = subst(c, cfg, params, 0);
	else
		cfg = new_map(c, t, 0);
	if (cfg && (inner_name = ytree_get(t, "template"))) {
		inner_with = ytree_get(t, "with");
		if (inner_with)
			inner_with = subst(c, inner_with, params, 0);
		inner = expand(c, inner_name, inner_with, inner_name);
		cfg = inner ? merge(c, inner, cfg) : NULL;
	}
	c->ntchain--;
	return cfg;
}

static void index_templates(struct compose *c, struct ynode *core)
{
	struct ynode *t = ytree_get(core, "templates");

	if (!t || is_null(t))
		return;
	if (t->kind != Y_MAP) {
		cerr(c, t, "core.templates: expected a mapping of templates, got %s",
		     ytree_kind_name(t));
		return;
	}
	c->templates = t;
	c->tbad = xcalloc((size_t)t->n + 1, 1);
	for (size_t i = 0; i < t->n; i++) {
		orchd_map_put(&c->tindex, t->pairs[i].key->s, i, NULL);
		c->tbad[i] = check_template(c, t->pairs[i].key, t->pairs[i].val) < 0;
	}
}

/* ---- environments ------------------------------------------------------------- */

static const char *const env_keys[] = {"vars", "overrides", "description"};

static int select_env(struct compose *c, struct ynode *core)
{
	struct ynode *envs = ytree_get(core, "environments"), *vars = ytree_get(core, "vars");
	struct ynode *e = NULL, *ev;
	struct op_buf known = OP_BUF_INIT;
	int ret = 0;

	if (vars && !is_null(vars) && vars->kind != Y_MAP) {
		cerr(c, vars, "core.vars: expected a mapping, got %s", ytree_kind_name(vars));
		vars = NULL;
		ret = -1;
	}
	c->vars = vars && vars->kind == Y_MAP ? vars : NULL;
	if (envs && !is_null(envs) && envs->kind != Y_MAP) {
		cerr(c, envs, "core.environments: expected a mapping, got %s",
		     ytree_kind_name(envs));
		return -1;
	}
	for (size_t i = 0; envs && envs->kind == Y_MAP && i < envs->n; i++) {
		struct ynode *k = envs->pairs[i].key, *v = envs->pairs[i].val;

		op_buf_addf(&known, "%s%s", known.len ? ", " : "", k->s);
		op_buf_addf(&c->envs, "%s%s", c->envs.len ? ", " : "", k->s);
		if (!plain_name_ok(k->s)) {
			cerr(c, k,
			     "core.environments: invalid environment name '%s' (letters, digits, "
			     "'_' and '-', starting with a letter or digit, at most 63 characters)",
			     k->s);
			ret = -1;
			continue;
		}
		if (is_null(v))
			v = NULL;
		if (v && v->kind != Y_MAP) {
			cerr(c, v, "core.environments.%s: expected a mapping, got %s", k->s,
			     ytree_kind_name(v));
			ret = -1;
			continue;
		}
		for (size_t j = 0; v && j < v->n; j++)
			if (index_of(v->pairs[j].key->s, env_keys, ARRAY_SIZE(env_keys)) ==
			    ARRAY_SIZE(env_keys)) {
				char where[128];

				snprintf(where, sizeof(where), "core.environments.%s", k->s);
				ret = unknown_key(c, v->pairs[j].key, where, env_keys,
						  ARRAY_SIZE(env_keys));
			}
		if (c->env && !strcmp(k->s, c->env))
			e = v ? v : new_map(c, k, 0);
	}
	if (c->env && !e) {
		const struct ynode *at = envs ? envs : c->y->root;

		if (known.len)
			orchd_diag_add(c->d, c->y->files[0].path, 0, 0,
				       "unknown environment '%s' (known: %s; core.environments at "
				       "%s:%u:%u)",
				       c->env, orchd_buf_str(&known), fpath(c, at), at->line,
				       at->col);
		else
			orchd_diag_add(c->d, c->y->files[0].path, 0, 0,
				       "unknown environment '%s': the pipeline defines no "
				       "environments (core.environments)",
				       c->env);
		op_buf_release(&known);
		return -2;
	}
	op_buf_release(&known);
	if (!e)
		return ret;
	ev = ytree_get(e, "vars");
	if (ev && !is_null(ev)) {
		if (ev->kind != Y_MAP) {
			cerr(c, ev, "core.environments.%s.vars: expected a mapping, got %s", c->env,
			     ytree_kind_name(ev));
			ret = -1;
		} else {
			c->vars = c->vars ? merge(c, c->vars, ev) : ev;
		}
	}
	c->overrides = ytree_get(e, "overrides");
	if (c->overrides && is_null(c->overrides))
		c->overrides = NULL;
	if (c->overrides && c->overrides->kind != Y_MAP) {
		cerr(c, c->overrides,
		     "core.environments.%s.overrides: expected a mapping of instance ids "
		     "(TYPE.NAME) to settings, got %s",
		     c->env, ytree_kind_name(c->overrides));
		c->overrides = NULL;
		ret = -1;
	}
	return ret;
}

static int check_env_allow(struct compose *c, struct ynode *core)
{
	struct ynode *a = ytree_get(core, "env_allow");
	int ret = 0;

	if (!a || is_null(a))
		return 0;
	if (a->kind != Y_SEQ) {
		cerr(c, a, "core.env_allow: expected a list of variable names, got %s",
		     ytree_kind_name(a));
		return -1;
	}
	for (size_t i = 0; i < a->n; i++) {
		const struct ynode *v = a->items[i];
		int ok = is_string(v) && *v->s && strlen(v->s) <= 255 &&
			 !(v->s[0] >= '0' && v->s[0] <= '9');

		for (const char *p = v->s; ok && *p; p++)
			ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			     (*p >= '0' && *p <= '9') || *p == '_';
		if (!ok) {
			cerr(c, v, "core.env_allow[%zu]: invalid environment variable name '%s'", i,
			     v->kind == Y_SCALAR ? v->s : ytree_kind_name(v));
			ret = -1;
		}
	}
	c->env_allow = a;
	return ret;
}

/* ---- the whole pipeline --------------------------------------------------------- */

static int depth_ok(const struct ynode *n, unsigned depth)
{
	if (depth > ORCHD_MAX_DEPTH)
		return 0;
	if (n->kind == Y_SEQ) {
		for (size_t i = 0; i < n->n; i++)
			if (!depth_ok(n->items[i], depth + 1))
				return 0;
	} else if (n->kind == Y_MAP) {
		for (size_t i = 0; i < n->n; i++)
			if (!depth_ok(n->pairs[i].val, depth + 1))
				return 0;
	}
	return 1;
}

static struct ynode *compose_one(struct compose *c, const char *type, struct ynode *inst,
				 struct orchd_map *ids, unsigned char *used);

/* One instance: template, environment override, variables.  NULL when it
 * is dropped (errors reported). */
static struct ynode *compose_instance(struct compose *c, const char *type, struct ynode *inst,
				      struct orchd_map *ids, unsigned char *used)
{
	struct ynode *name;

	if (inst->kind != Y_MAP)
		return inst; /* the model reports it */
	name = ytree_get(inst, "name");
	if (name && is_string(name)) {
		char *id = ytree_alloc(c->y, strlen(type) + name->len + 2);
		size_t *ix;

		sprintf(id, "%s.%s", type, name->s);
		c->ctx = id;
		/* its override exists, whether or not the instance composes */
		if (c->overrides && (ix = orchd_map_get(ids, id)))
			used[*ix] = 1;
	}
	inst = compose_one(c, type, inst, ids, used);
	c->ctx = NULL;
	return inst;
}

static struct ynode *compose_one(struct compose *c, const char *type, struct ynode *inst,
				 struct orchd_map *ids, unsigned char *used)
{
	static const char *const use_keys[] = {"template", "with"};
	struct ynode *tname, *with, *name, *over, *orig;
	size_t *ix;

	orig = inst;
	tname = ytree_get(inst, "template");
	with = ytree_get(inst, "with");
	if (with && !tname) {
		cerr(c, with, "with: without 'template'");
		return NULL;
	}
	if (tname) {
		struct ynode *cfg;

		if (!is_string(tname)) {
			cerr(c, tname, "template: expected a template name, got %s",
			     ytree_kind_name(tname));
			return NULL;
		}
		if (with && with->kind == Y_MAP) {
			/* variables first, so that parameters are checked on values */
			if (!(with = subst(c, with, NULL, 1)))
				return NULL;
		}
		if (!(cfg = expand(c, tname, with, tname)))
			return NULL;
		if (charge(c, tname, cfg->size, cfg->bytes) < 0)
			return NULL;
		inst = merge(c, cfg, map_without(c, inst, use_keys, ARRAY_SIZE(use_keys)));
	}
	name = ytree_get(inst, "name");
	if (c->overrides && name && is_string(name)) {
		char *id = xasprintf("%s.%s", type, name->s);

		if ((ix = orchd_map_get(ids, id))) {
			used[*ix] = 1;
			over = c->overrides->pairs[*ix].val;
			if (over->kind != Y_MAP) {
				cerr(c, over,
				     "core.environments.%s.overrides.%s: expected a mapping, got "
				     "%s",
				     c->env, id, ytree_kind_name(over));
			} else if (ytree_get(over, "template") || ytree_get(over, "with")) {
				const struct ynode *u = ytree_get(over, "template");

				cerr(c, u ? u : ytree_get(over, "with"),
				     "core.environments.%s.overrides.%s: an override cannot change "
				     "'template' or 'with' (override the keys they give)",
				     c->env, id);
			} else {
				struct ynode *m = merge(c, inst, over);

				/* the instance stays where it is written */
				m->file = inst->file;
				m->line = inst->line;
				m->col = inst->col;
				inst = m;
			}
		}
		free(id);
	}
	inst = subst(c, inst, NULL, 1);
	if (inst && inst != orig && !depth_ok(inst, 2)) {
		cerr(c, inst,
		     "nesting too deep once templates and variables are expanded (limit %d levels)",
		     ORCHD_MAX_DEPTH);
		return NULL;
	}
	return inst;
}

/* The overrides of ids that match no instance. */
static void unused_overrides(struct compose *c, const unsigned char *used, const char **ids,
			     size_t nids)
{
	for (size_t i = 0; c->overrides && i < c->overrides->n; i++) {
		const struct ynode *k = c->overrides->pairs[i].key;
		const char *near;

		if (used[i])
			continue;
		near = orchd_closest(k->s, ids, nids);
		if (near)
			cerr(c, k,
			     "core.environments.%s.overrides: no instance '%s' (did you mean "
			     "'%s'?)",
			     c->env, k->s, near);
		else
			cerr(c, k,
			     "core.environments.%s.overrides: no instance '%s' (ids are TYPE.NAME)",
			     c->env, k->s);
	}
}

/* ---- --explain ------------------------------------------------------------------ */

#define EXPLAIN_COL 56

static void explain_origin(struct compose *c, const struct ynode *n, size_t line_start,
			   struct op_buf *sb)
{
	size_t w = sb->len - line_start;

	op_buf_addf(sb, "%*s# %s:%u:%u\n", w < EXPLAIN_COL ? (int)(EXPLAIN_COL - w) : 1, "",
		    fpath(c, n), n->line, n->col);
}

static void explain_scalar(const struct ynode *n, struct op_buf *sb)
{
	int64_t iv;
	double dv;

	switch (ytree_resolve(n, &iv, &dv)) {
	case S_NULL:
		op_buf_addstr(sb, "null");
		return;
	case S_STR:
		orchd_buf_json_str(sb, n->s, n->len);
		return;
	default:
		op_buf_add(sb, n->s, n->len);
		return;
	}
}

/* One value under `prefix` ("key:" or "-"), indented. */
static void explain_value(struct compose *c, const struct ynode *key, const struct ynode *n,
			  unsigned indent, struct op_buf *sb)
{
	size_t start = sb->len;

	op_buf_addf(sb, "%*s", (int)indent, "");
	if (key) {
		size_t plain = strspn(key->s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					      "0123456789_-.");

		if (plain && plain == key->len)
			op_buf_add(sb, key->s, key->len);
		else
			orchd_buf_json_str(sb, key->s, key->len);
		op_buf_addch(sb, ':');
	} else {
		op_buf_addch(sb, '-');
	}
	if (n->kind == Y_SCALAR) {
		op_buf_addch(sb, ' ');
		explain_scalar(n, sb);
		explain_origin(c, n, start, sb);
		return;
	}
	if (!n->n) {
		op_buf_addstr(sb, n->kind == Y_SEQ ? " []" : " {}");
		explain_origin(c, n, start, sb);
		return;
	}
	explain_origin(c, key ? key : n, start, sb);
	for (size_t i = 0; i < n->n; i++) {
		if (n->kind == Y_SEQ)
			explain_value(c, NULL, n->items[i], indent + 2, sb);
		else
			explain_value(c, n->pairs[i].key, n->pairs[i].val, indent + 2, sb);
	}
}

/* --explain TYPE.NAME: the instance as composed, over core.defaults.TYPE. */
static void explain(struct compose *c, struct ynode *body)
{
	const char *id = c->o->explain, *dot = strchr(id, '.'), *cand[256];
	struct ynode *inst = NULL, *defaults = NULL, *m;
	struct op_buf *sb = c->o->explain_out;
	size_t ncand = 0;

	for (size_t i = 0; i < body->n && !inst; i++) {
		struct ynode *k = body->pairs[i].key, *v = body->pairs[i].val;

		if (!strcmp(k->s, "core") || v->kind != Y_SEQ)
			continue;
		for (size_t j = 0; j < v->n && !inst; j++) {
			struct ynode *nm = ytree_get(v->items[j], "name");

			if (!nm || nm->kind != Y_SCALAR)
				continue;
			if (dot && (size_t)(dot - id) == k->len && !memcmp(id, k->s, k->len) &&
			    !strcmp(dot + 1, nm->s)) {
				inst = v->items[j];
				defaults = ytree_get(ytree_get(ytree_get(body, "core"), "defaults"),
						     k->s);
			} else if (ncand < ARRAY_SIZE(cand)) {
				char *s = ytree_alloc(c->y, k->len + nm->len + 2);

				sprintf(s, "%s.%s", k->s, nm->s);
				cand[ncand++] = s;
			}
		}
	}
	if (!inst) {
		const char *near = orchd_closest(id, cand, ncand);

		orchd_diag_add(c->d, c->y->files[0].path, 0, 0,
			       "--explain: no instance '%s'%s%s%s (instances are named TYPE.NAME)",
			       id, near ? " (did you mean '" : "", near ? near : "",
			       near ? "'?)" : "");
		return;
	}
	m = defaults && defaults->kind == Y_MAP ? merge(c, defaults, inst) : inst;
	op_buf_addf(sb, "# %s", id);
	if (c->env)
		op_buf_addf(sb, " (environment %s)", c->env);
	op_buf_addf(sb, ", defined at %s:%u:%u\n", fpath(c, inst), inst->line, inst->col);
	op_buf_addstr(sb, "# each value, and the file:line:column it comes from\n");
	for (size_t i = 0; m->kind == Y_MAP && i < m->n; i++)
		explain_value(c, m->pairs[i].key, m->pairs[i].val, 0, sb);
}

/*
 * What stands for an instance whose composition failed (errors reported):
 * its name alone, so that it keeps its index and references to it add no
 * error of their own.
 */
static struct ynode *placeholder(struct compose *c, struct ynode *inst)
{
	struct ynode *m = new_map(c, inst, 1);
	size_t i;

	for (i = 0; i < inst->n; i++)
		if (!strcmp(inst->pairs[i].key->s, "name")) {
			map_add(m, inst->pairs[i].key, inst->pairs[i].val);
			break;
		}
	return m;
}

static const char *const compose_keys[] = {"imports", "vars", "templates", "environments",
					   "env_allow"};

struct ynode *orchd_compose(struct yparse *y, const struct orchd_load_opts *o, const char **env)
{
	struct compose c;
	struct ynode *root = y->root, *body, *core, *out, *newcore = NULL;
	struct orchd_map ids = ORCHD_MAP_INIT;
	unsigned char *used = NULL;
	const char **idv = NULL;
	size_t nids = 0, idalloc = 0;

	if (env)
		*env = NULL;
	if (!root || root->kind != Y_MAP || !root->n || root->pairs[0].val->kind != Y_MAP)
		return root; /* the model reports what is wrong */
	memset(&c, 0, sizeof(c));
	c.y = y;
	c.d = y->d;
	c.o = o;
	c.env = o && o->env && *o->env ? o->env : NULL;
	body = compose_body(&c, root->pairs[0].val, 0);
	y->root = root;
	core = ytree_get(body, "core");
	if (core && core->kind != Y_MAP)
		core = NULL; /* the model reports it */
	index_templates(&c, core);
	if (select_env(&c, core) == -2) {
		/* an unknown environment: nothing else would make sense */
		op_buf_release(&c.envs);
		free(c.tbad);
		orchd_map_release(&c.tindex);
		return NULL;
	}
	check_env_allow(&c, core);
	if (c.overrides) {
		used = xcalloc((size_t)c.overrides->n + 1, 1);
		for (size_t i = 0; i < c.overrides->n; i++)
			orchd_map_put(&ids, c.overrides->pairs[i].key->s, i, NULL);
	}
	out = new_map(&c, body, body->n);
	for (size_t i = 0; i < body->n; i++) {
		struct ynode *k = body->pairs[i].key, *v = body->pairs[i].val, *s, *r;

		if (!strcmp(k->s, "core")) {
			if (!core) {
				map_add(out, k, v);
				continue;
			}
			newcore = map_without(&c, core, compose_keys, ARRAY_SIZE(compose_keys));
			/* variables in core.defaults and core.env */
			for (size_t j = 0; j < 2; j++) {
				const char *key = j ? "env" : "defaults";
				struct ynode *d = ytree_get(newcore, key);

				if (d && (r = subst(&c, d, NULL, 1)) != d && r) {
					if (!depth_ok(r, 3))
						cerr(&c, d,
						     "core.%s: nesting too deep once variables are "
						     "replaced (limit %d levels)",
						     key, ORCHD_MAX_DEPTH);
					newcore = map_with(&c, newcore, key, r);
				}
			}
			map_add(out, k, newcore);
			continue;
		}
		if (v->kind != Y_SEQ) {
			map_add(out, k, v);
			continue;
		}
		s = ytree_new(y, Y_SEQ, v->file, v->line, v->col);
		s->items = ytree_alloc(y, ((size_t)v->n + 1) * sizeof(*s->items));
		for (size_t j = 0; j < v->n; j++) {
			struct ynode *nm;

			if (!(r = compose_instance(&c, k->s, v->items[j], &ids, used)))
				r = placeholder(&c, v->items[j]);
			s->items[s->n++] = r;
			s->size = sat((size_t)s->size + r->size);
			nm = r->kind == Y_MAP ? ytree_get(r, "name") : NULL;
			if (c.overrides && nm && nm->kind == Y_SCALAR) {
				char *id = ytree_alloc(y, strlen(k->s) + nm->len + 2);

				sprintf(id, "%s.%s", k->s, nm->s);
				ALLOC_GROW(idv, nids + 1, idalloc);
				idv[nids++] = id;
			}
		}
		map_add(out, k, s);
	}
	if (c.overrides)
		unused_overrides(&c, used, idv, nids);
	if (o && o->explain && o->explain_out)
		explain(&c, out);
	free(idv);
	free(used);
	free(c.tbad);
	orchd_map_release(&ids);
	orchd_map_release(&c.tindex);
	op_buf_release(&c.text);
	op_buf_release(&c.envtext);
	op_buf_release(&c.envs);
	if (env)
		*env = c.env;
	{
		struct ynode *r = new_map(&c, root, root->n);

		map_add(r, root->pairs[0].key, out);
		/* a second top-level key is the model's to report */
		for (size_t i = 1; i < root->n; i++)
			r->pairs[r->n++] = root->pairs[i];
		return r;
	}
}
