/*
 * core/ytree: YAML text -> a tree of positioned nodes (see ytree.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/ytree.h"
#include "orchd_protocol.h"
#include "util.h"

/*
 * Offset of the first byte that is not part of valid UTF-8 (no overlongs,
 * no surrogates, at most U+10FFFF), or len when all is valid.
 */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n, k;
		unsigned cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return i;
		}
		if (i + n >= len + 0 && i + n > len - 1 + 1)
			return i;
		for (k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += n + 1;
	}
	return len;
}

/* 1-based line and column (in characters) of byte offset off. */
static void offset_pos(const char *buf, size_t off, unsigned *line, unsigned *col)
{
	size_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

/* Byte offset of 0-based line/column (characters), or len. */
static size_t pos_offset(const char *buf, size_t len, size_t line, size_t col)
{
	size_t i = 0;

	while (line && i < len)
		if (buf[i++] == '\n')
			line--;
	while (col && i < len) {
		i++;
		while (i < len && ((unsigned char)buf[i] & 0xc0) == 0x80)
			i++;
		col--;
	}
	return i;
}

static struct ynode *ynode_new(struct yparse *y, enum ykind kind, const yaml_mark_t *m)
{
	struct ynode *n;

	if (!y->nblocks || y->used == ARENA_BLOCK) {
		ALLOC_GROW(y->blocks, y->nblocks + 1, y->balloc);
		y->blocks[y->nblocks++] = xcalloc(ARENA_BLOCK, sizeof(struct ynode));
		y->used = 0;
	}
	n = &y->blocks[y->nblocks - 1][y->used++];
	n->kind = (unsigned char)kind;
	n->file = (unsigned short)y->cur;
	n->line = (unsigned)m->line + 1;
	n->col = (unsigned)m->column + 1;
	n->size = 1;
	y->nnodes++;
	return n;
}

#define BUMP_BLOCK (256 * 1024)

void *ytree_alloc(struct yparse *y, size_t n)
{
	void *p;

	n = (n + 7) & ~(size_t)7;
	if (n > BUMP_BLOCK / 4) {
		/* Big: a block of its own, the current one stays in use. */
		ALLOC_GROW(y->bump, y->nbump + 1, y->bump_alloc);
		return y->bump[y->nbump++] = xmalloc(n);
	}
	if (n > y->bump_left) {
		ALLOC_GROW(y->bump, y->nbump + 1, y->bump_alloc);
		y->bump[y->nbump++] = y->bump_cur = xmalloc(BUMP_BLOCK);
		y->bump_left = BUMP_BLOCK;
	}
	p = y->bump_cur;
	y->bump_cur += n;
	y->bump_left -= n;
	return p;
}

void ytree_release(struct yparse *y)
{
	size_t b, i;

	for (b = 0; b < y->nblocks; b++)
		free(y->blocks[b]);
	free(y->blocks);
	for (b = 0; b < y->nbump; b++)
		free(y->bump[b]);
	free(y->bump);
	free(y->kids);
	for (i = 0; i <= y->depth && i < ARRAY_SIZE(y->stack); i++)
		free(y->stack[i].anchor);
	json_object_put(y->anchors);
	free(y->anchor_nodes);
	for (i = 0; i < y->nfiles; i++) {
		free(y->files[i].path);
		free(y->files[i].key);
		free(y->files[i].git_url);
		free(y->files[i].git_commit);
		free(y->files[i].git_path);
	}
	free(y->files);
}

static int yerr(struct yparse *y, unsigned line, unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int yerr(struct yparse *y, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	orchd_diag_add(y->d, y->file, line, col, "%s", msg);
	free(msg);
	return -1;
}

/*
 * The key path of the container open at frame `depth` ("p.exec[1]"),
 * rendered from the parse stack: for each enclosing mapping, the key whose
 * value is being built; for each enclosing sequence, the item's index.
 */
static void parse_path(const struct yparse *y, size_t depth, struct op_buf *sb)
{
	size_t i;

	for (i = 1; i < depth; i++) {
		size_t count = y->stack[i + 1].start - y->stack[i].start;
		const struct ynode *key;

		if (y->stack[i].node->kind == Y_SEQ) {
			op_buf_addf(sb, "[%zu]", count);
			continue;
		}
		key = count % 2 ? y->kids[y->stack[i + 1].start - 1] : NULL;
		if (key && key->kind == Y_SCALAR)
			op_buf_addf(sb, "%s%.80s", sb->len ? "." : "", key->s);
		else
			op_buf_addf(sb, "%s?", sb->len ? "." : "");
	}
}

/* An error about the mapping being finished, prefixed with its path. */
static void merr(struct yparse *y, const struct ynode *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void merr(struct yparse *y, const struct ynode *at, const char *fmt, ...)
{
	struct op_buf path = OP_BUF_INIT;
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	parse_path(y, y->depth, &path);
	if (path.len)
		orchd_diag_add(y->d, y->file, at->line, at->col, "%s: %s", orchd_buf_str(&path),
			       msg);
	else
		orchd_diag_add(y->d, y->file, at->line, at->col, "%s", msg);
	op_buf_release(&path);
	free(msg);
}

static size_t size_add(size_t a, size_t b)
{
	return a + b > SIZE_SAT ? SIZE_SAT : a + b;
}

static void add_anchor(struct yparse *y, const char *name, struct ynode *n)
{
	ALLOC_GROW(y->anchor_nodes, y->nanchor + 1, y->anchor_alloc);
	y->anchor_nodes[y->nanchor] = n;
	json_object_object_add(y->anchors, name, json_object_new_int64((int64_t)y->nanchor));
	y->nanchor++;
}

/* Attach a finished node to the open container (or make it the root). */
static void attach(struct yparse *y, struct ynode *n)
{
	if (!y->depth) {
		y->root = n;
		return;
	}
	ALLOC_GROW(y->kids, y->nkids + 1, y->kids_alloc);
	y->kids[y->nkids++] = n;
}

static int key_eq(const struct ynode *a, const struct ynode *b)
{
	return a->len == b->len && !memcmp(a->s, b->s, a->len);
}

/*
 * Finish a mapping: turn its key/value items into pairs, applying merge
 * keys (explicit keys win over merged ones; among merged mappings the
 * first wins) and rejecting duplicate explicit keys.
 */
static void finish_map(struct yparse *y, struct ynode *m, struct ynode **items, size_t nitems)
{
	struct ynode **merges = NULL;
	size_t nmerges = 0, amerges = 0, i, j;
	json_object *seen = NULL;

	size_t bound = nitems / 2;

	/* Room for every explicit pair plus every pair merge keys may add. */
	for (i = 0; i + 1 < nitems; i += 2) {
		struct ynode *k = items[i], *v = items[i + 1];

		if (k->kind != Y_SCALAR || !k->plain || strcmp(k->s, "<<"))
			continue;
		if (v->kind == Y_MAP)
			bound += v->n;
		else if (v->kind == Y_SEQ)
			for (j = 0; j < v->n; j++)
				if (v->items[j]->kind == Y_MAP)
					bound += v->items[j]->n;
	}
	m->pairs = ytree_alloc(y, (bound + 1) * sizeof(*m->pairs));
	m->n = 0;
	if (nitems > 32 && !(seen = json_object_new_object()))
		die("out of memory");
	for (i = 0; i + 1 < nitems; i += 2) {
		struct ynode *k = items[i], *v = items[i + 1];
		json_object *prev;

		if (k->kind != Y_SCALAR) {
			merr(y, k, "mapping keys must be scalars, got %s", ytree_kind_name(k));
			continue;
		}
		if (strlen(k->s) != k->len) {
			merr(y, k, "mapping key contains a NUL character");
			continue;
		}
		if (k->plain && !strcmp(k->s, "<<")) {
			if (v->kind == Y_MAP) {
				ALLOC_GROW(merges, nmerges + 1, amerges);
				merges[nmerges++] = v;
			} else if (v->kind == Y_SEQ) {
				for (j = 0; j < v->n; j++)
					if (v->items[j]->kind != Y_MAP)
						break;
				if (j < v->n) {
					merr(y, k,
					     "merge key '<<' expects a mapping or a list of "
					     "mappings, got a list holding %s",
					     ytree_kind_name(v->items[j]));
					continue;
				}
				for (j = 0; j < v->n; j++) {
					ALLOC_GROW(merges, nmerges + 1, amerges);
					merges[nmerges++] = v->items[j];
				}
			} else {
				merr(y, k,
				     "merge key '<<' expects a mapping or a list of mappings, got "
				     "%s",
				     ytree_kind_name(v));
			}
			continue;
		}
		prev = NULL;
		if (seen) {
			if (json_object_object_get_ex(seen, k->s, &prev)) {
				struct ynode *f = m->pairs[json_object_get_int64(prev)].key;

				merr(y, k, "duplicate key '%s' (first defined at %u:%u)", k->s,
				     f->line, f->col);
				continue;
			}
			json_object_object_add(seen, k->s, json_object_new_int64((int64_t)m->n));
		} else {
			for (j = 0; j < m->n; j++)
				if (key_eq(m->pairs[j].key, k))
					break;
			if (j < m->n) {
				merr(y, k, "duplicate key '%s' (first defined at %u:%u)", k->s,
				     m->pairs[j].key->line, m->pairs[j].key->col);
				continue;
			}
		}
		m->pairs[m->n].key = k;
		m->pairs[m->n].val = v;
		m->n++;
	}
	for (i = 0; i < nmerges; i++) {
		struct ynode *src = merges[i];

		for (j = 0; j < src->n; j++) {
			struct ynode *k = src->pairs[j].key;
			size_t x;
			int dup = 0;

			if (seen) {
				dup = json_object_object_get_ex(seen, k->s, NULL);
			} else {
				for (x = 0; x < m->n && !dup; x++)
					dup = key_eq(m->pairs[x].key, k);
			}
			if (dup)
				continue;
			if (!seen && m->n >= 16) {
				/* Switch to the hash once the mapping grows. */
				if (!(seen = json_object_new_object()))
					die("out of memory");
				for (x = 0; x < m->n; x++)
					json_object_object_add(seen, m->pairs[x].key->s,
							       json_object_new_int64((int64_t)x));
			}
			if (seen)
				json_object_object_add(seen, k->s,
						       json_object_new_int64((int64_t)m->n));
			m->pairs[m->n++] = src->pairs[j];
		}
	}
	for (i = 0; i < m->n; i++) {
		m->size = size_add(m->size, size_add(m->pairs[i].key->size, m->pairs[i].val->size));
		m->bytes = size_add(m->bytes,
				    size_add(m->pairs[i].key->bytes, m->pairs[i].val->bytes));
	}
	json_object_put(seen);
	free(merges);
}

static int yaml_error(struct yparse *y, yaml_parser_t *parser)
{
	unsigned line = (unsigned)parser->problem_mark.line + 1;
	unsigned col = (unsigned)parser->problem_mark.column + 1;
	const char *problem = parser->problem ? parser->problem : "unknown error";
	size_t off;

	if (parser->error == YAML_READER_ERROR) {
		offset_pos(y->buf,
			   parser->problem_offset < y->len ? parser->problem_offset : y->len, &line,
			   &col);
		return yerr(y, line, col, "cannot read the file: %s", problem);
	}
	if (parser->error != YAML_SCANNER_ERROR && parser->error != YAML_PARSER_ERROR)
		return yerr(y, 0, 0, "cannot parse the file: %s", problem);
	off = pos_offset(y->buf, y->len, parser->problem_mark.line, parser->problem_mark.column);
	if (strstr(problem, "tab") || (off < y->len && y->buf[off] == '\t'))
		return yerr(y, line, col, "tab characters must not be used for indentation");
	if (parser->context)
		return yerr(y, line, col, "syntax error: %s (%s at %u:%u)", problem,
			    parser->context, (unsigned)parser->context_mark.line + 1,
			    (unsigned)parser->context_mark.column + 1);
	return yerr(y, line, col, "syntax error: %s", problem);
}

static int is_str_tag(const yaml_char_t *tag)
{
	return tag && !strcmp((const char *)tag, YAML_STR_TAG);
}

static int handle_event(struct yparse *y, yaml_event_t *ev)
{
	struct ynode *n;
	const char *anchor;
	json_object *ix;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++y->ndocs > 1)
			return yerr(y, (unsigned)ev->start_mark.line + 1,
				    (unsigned)ev->start_mark.column + 1,
				    "a pipeline file holds one YAML document, found a second one");
		return 0;
	case YAML_SCALAR_EVENT:
		if (y->nnodes >= ORCHD_MAX_NODES)
			goto too_many;
		n = ynode_new(y, Y_SCALAR, &ev->start_mark);
		n->len = (unsigned)ev->data.scalar.length;
		n->bytes = n->len;
		n->s = ytree_alloc(y, n->len + 1);
		memcpy(n->s, ev->data.scalar.value, n->len + 1);
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
			   !is_str_tag(ev->data.scalar.tag);
		if (ev->data.scalar.anchor)
			add_anchor(y, (const char *)ev->data.scalar.anchor, n);
		attach(y, n);
		return 0;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (y->nnodes >= ORCHD_MAX_NODES)
			goto too_many;
		if (y->depth >= ORCHD_MAX_DEPTH)
			return yerr(y, (unsigned)ev->start_mark.line + 1,
				    (unsigned)ev->start_mark.column + 1,
				    "nesting too deep (limit %d levels)", ORCHD_MAX_DEPTH);
		n = ynode_new(y, ev->type == YAML_SEQUENCE_START_EVENT ? Y_SEQ : Y_MAP,
			      &ev->start_mark);
		anchor = (const char *)(ev->type == YAML_SEQUENCE_START_EVENT
						? ev->data.sequence_start.anchor
						: ev->data.mapping_start.anchor);
		y->depth++;
		y->stack[y->depth].node = n;
		y->stack[y->depth].anchor = anchor ? xstrdup(anchor) : NULL;
		y->stack[y->depth].start = y->nkids;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT: {
		size_t i;
		int ret = 0;

		struct ynode **kids;
		size_t start = y->stack[y->depth].start, nk = y->nkids - start;

		n = y->stack[y->depth].node;
		kids = nk ? y->kids + start : NULL;
		if (n->kind == Y_MAP) {
			/* Its errors (duplicate keys, bad merges) are recorded
			 * and the parse goes on to find more. */
			finish_map(y, n, kids, nk);
		} else {
			n->items = ytree_alloc(y, (nk + 1) * sizeof(*n->items));
			if (nk)
				memcpy(n->items, kids, nk * sizeof(*kids));
			n->n = (unsigned)nk;
			for (i = 0; i < n->n; i++) {
				n->size = size_add(n->size, n->items[i]->size);
				n->bytes = size_add(n->bytes, n->items[i]->bytes);
			}
		}
		y->nkids = start;
		if (y->stack[y->depth].anchor) {
			add_anchor(y, y->stack[y->depth].anchor, n);
			free(y->stack[y->depth].anchor);
			y->stack[y->depth].anchor = NULL;
		}
		y->depth--;
		attach(y, n);
		return ret;
	}
	case YAML_ALIAS_EVENT:
		anchor = (const char *)ev->data.alias.anchor;
		if (!json_object_object_get_ex(y->anchors, anchor, &ix))
			return yerr(y, (unsigned)ev->start_mark.line + 1,
				    (unsigned)ev->start_mark.column + 1, "unknown anchor '%s'",
				    anchor);
		n = y->anchor_nodes[json_object_get_int64(ix)];
		y->alias_cost = size_add(y->alias_cost, n->size);
		if (y->alias_cost > ORCHD_MAX_ALIAS_NODES)
			return yerr(y, (unsigned)ev->start_mark.line + 1,
				    (unsigned)ev->start_mark.column + 1,
				    "aliases expand to too many nodes (limit %d): refusing a "
				    "possible billion laughs document",
				    ORCHD_MAX_ALIAS_NODES);
		/* a few aliases of one big string cost as much */
		y->alias_bytes = size_add(y->alias_bytes, n->bytes);
		if (y->alias_bytes > ORCHD_MAX_ALIAS_BYTES)
			return yerr(y, (unsigned)ev->start_mark.line + 1,
				    (unsigned)ev->start_mark.column + 1,
				    "aliases expand to too much text (limit %u MiB): refusing a "
				    "possible billion laughs document",
				    ORCHD_MAX_ALIAS_BYTES >> 20);
		attach(y, n);
		return 0;
	default:
		return 0;
	}
too_many:
	return yerr(y, (unsigned)ev->start_mark.line + 1, (unsigned)ev->start_mark.column + 1,
		    "too many YAML nodes (limit %d)", ORCHD_MAX_NODES);
}

/* Parse the buffer into y->root.  0, or -1 (fatal: the tree is unusable). */
int ytree_parse(struct yparse *y)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	size_t bad;
	int ret = 0, done = 0;

	/* what belongs to the previous file */
	json_object_put(y->anchors);
	y->anchors = NULL;
	y->nanchor = 0;
	y->depth = 0;
	y->nkids = 0;
	y->ndocs = 0;
	y->root = NULL;
	bad = utf8_invalid_at((const unsigned char *)y->buf, y->len);
	if (bad < y->len) {
		unsigned line, col;

		offset_pos(y->buf, bad, &line, &col);
		return yerr(y, line, col, "invalid UTF-8 (byte 0x%02x)",
			    (unsigned char)y->buf[bad]);
	}
	if (!(y->anchors = json_object_new_object()))
		die("out of memory");
	if (!yaml_parser_initialize(&parser))
		die("out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)y->buf, y->len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			ret = yaml_error(y, &parser);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		ret = handle_event(y, &ev);
		yaml_event_delete(&ev);
		if (ret < 0)
			break;
	}
	yaml_parser_delete(&parser);
	return ret;
}

/* ---- scalars ------------------------------------------------------------ */

static int all_in(const char *s, const char *set)
{
	return *s && strspn(s, set) == strlen(s);
}

/* Resolve a scalar per the YAML 1.2 core schema (quoted = string). */
enum stype ytree_resolve(const struct ynode *n, int64_t *iv, double *dv)
{
	const char *s = n->s;
	const char *d = s;
	char *end;

	if (!n->plain)
		return S_STR;
	/* Most scalars are words: rule them out by their first byte. */
	if (*s && !strchr("~nNtTfF+-.0123456789", *s))
		return S_STR;
	if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	    !strcmp(s, "NULL"))
		return S_NULL;
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
		*iv = 1;
		return S_BOOL;
	}
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
		*iv = 0;
		return S_BOOL;
	}
	if (*d == '-' || *d == '+')
		d++;
	if (all_in(d, "0123456789")) {
		errno = 0;
		*iv = strtoll(s, &end, 10);
		return errno == ERANGE ? S_BIGINT : S_INT;
	}
	if ((!strncmp(s, "0o", 2) && all_in(s + 2, "01234567")) ||
	    (!strncmp(s, "0x", 2) && all_in(s + 2, "0123456789abcdefABCDEF"))) {
		errno = 0;
		*iv = strtoll(s + 2, &end, s[1] == 'o' ? 8 : 16);
		return errno == ERANGE ? S_BIGINT : S_INT;
	}
	if (!strcmp(d, ".inf") || !strcmp(d, ".Inf") || !strcmp(d, ".INF")) {
		*dv = *s == '-' ? -INFINITY : INFINITY;
		return S_FLOAT;
	}
	if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN")) {
		*dv = NAN;
		return S_FLOAT;
	}
	{
		/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
		const char *p = d;
		size_t ip = strspn(p, "0123456789"), fp = 0;

		p += ip;
		if (*p == '.') {
			p++;
			fp = strspn(p, "0123456789");
			p += fp;
		}
		if (!ip && !fp)
			return S_STR;
		if (*p == 'e' || *p == 'E') {
			p++;
			if (*p == '-' || *p == '+')
				p++;
			if (!strspn(p, "0123456789"))
				return S_STR;
			p += strspn(p, "0123456789");
		}
		if (*p)
			return S_STR;
		*dv = strtod(s, NULL);
		return S_FLOAT;
	}
}

const char *ytree_kind_name(const struct ynode *n)
{
	int64_t iv;
	double dv;

	if (n->kind == Y_SEQ)
		return "a sequence";
	if (n->kind == Y_MAP)
		return "a mapping";
	switch (ytree_resolve(n, &iv, &dv)) {
	case S_NULL:
		return "null";
	case S_BOOL:
		return "a boolean";
	case S_INT:
	case S_BIGINT:
		return "an integer";
	case S_FLOAT:
		return "a number";
	default:
		return "a string";
	}
}

int ytree_add_file(struct yparse *y, const char *path, const char *key, size_t parent,
		   unsigned line, unsigned col)
{
	struct yfile *f;

	if (y->nfiles >= YTREE_MAX_FILES) {
		const char *at = parent < y->nfiles ? y->files[parent].path : path;

		return orchd_diag_add(y->d, at, line, col, "too many files (limit %d)",
				      YTREE_MAX_FILES);
	}
	ALLOC_GROW(y->files, y->nfiles + 1, y->files_alloc);
	f = &y->files[y->nfiles];
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(path);
	f->key = xstrdup(key);
	f->parent = parent;
	f->line = line;
	f->col = col;
	return (int)y->nfiles++;
}

struct ynode *ytree_new(struct yparse *y, enum ykind kind, unsigned file, unsigned line,
			unsigned col)
{
	yaml_mark_t m;
	struct ynode *n;

	memset(&m, 0, sizeof(m));
	m.line = line ? line - 1 : 0;
	m.column = col ? col - 1 : 0;
	n = ynode_new(y, kind, &m);
	n->file = (unsigned short)file;
	n->line = line;
	n->col = col;
	return n;
}

struct ynode *ytree_get(const struct ynode *m, const char *key)
{
	size_t len = strlen(key);

	if (!m || m->kind != Y_MAP)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (m->pairs[i].key->len == len && !memcmp(m->pairs[i].key->s, key, len))
			return m->pairs[i].val;
	return NULL;
}
