/*
 * core/logging: the console (see logging.h).
 */
#include "core/logging.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"
#include "util.h"

static const char *const level_names[] = {"debug", "info", "warning", "error"};
static const char *const source_names[] = {"protocol", "stderr", "stdout-text", "orchd"};

const char *orchd_log_level_name(enum orchd_log_level l)
{
	if ((size_t)l >= ARRAY_SIZE(level_names))
		return "info";
	return level_names[l];
}

int orchd_log_level_from_name(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
		if (!strcmp(name, level_names[i]))
			return (int)i;
	return -1;
}

const char *orchd_log_source_name(enum orchd_log_source s)
{
	if ((size_t)s >= ARRAY_SIZE(source_names))
		return "orchd";
	return source_names[s];
}

/* --- secret masking ------------------------------------------------------ */

struct mask_secret {
	char *s;
	size_t len;
};

/*
 * The matcher: an Aho-Corasick automaton over every secret, so that a line
 * is read once whatever the number of secrets.  Nodes keep their edges
 * sorted by byte; the shallow nodes also get a full table of next states
 * with the failure links folded in (a line spends nearly all its bytes
 * there: few bytes continue a secret's prefix), so that most bytes cost
 * one lookup.  The tables are indexed by byte class, not by byte: the
 * bytes that occur in no secret are class 0 (they lead back to the root
 * from anywhere), each other byte is a class of its own.  Secrets of hex
 * digits thus need 17 entries a node instead of 256, and the tables of
 * a thousand secrets stay in the cache.  Built again on the first apply
 * after a secret was added.
 */
struct ac_edge {
	unsigned char byte;
	uint32_t to;
};

/* Full tables for the first nodes in breadth-first order (the shallow
 * ones), up to AC_DFA_BYTES of tables. */
#define AC_DFA_BYTES (1024 * 1024)

struct ac_node {
	uint32_t *next; /* shallow nodes: the next state of each byte class */
	struct ac_edge *edge;
	uint32_t nedge, aedge;
	uint32_t fail;	/* the longest proper suffix that is a node */
	uint32_t depth; /* bytes from the root */
	uint32_t out;	/* length of the longest secret ending here (0: none) */
};

struct ac {
	struct ac_node *node;
	size_t nnode, anode;
	uint32_t root[256];
	uint16_t cls[256]; /* byte -> class (0: in no secret) */
	uint32_t *tables;  /* every node's next, nclass entries each */
	size_t nclass;
	size_t maxlen; /* the longest secret */
	size_t built;  /* how many secrets it holds */
	/*
	 * The secrets added since it was built, matched one by one: a build
	 * costs all the secrets, so past AC_RECENT_MIN built ones it waits
	 * until these are more than an eighth of them (adding N secrets
	 * between lines costs O(N log N) builds, not O(N^2)).
	 */
	struct mask_secret *recent;
	size_t nrecent, arecent;
	unsigned char recent_first[256]; /* first bytes of the recent ones */
};

#define AC_RECENT_MIN 128

struct orchd_mask {
	/* by first byte: the registered secrets, without duplicates */
	struct mask_secret *bucket[256];
	size_t nbucket[256];
	size_t abucket[256];
	size_t count;
	struct ac *ac; /* allocated with the mask; rebuilt as secrets come */
};

struct orchd_mask *orchd_mask_new(void)
{
	struct orchd_mask *m = calloc(1, sizeof(struct orchd_mask));

	if (m && !(m->ac = calloc(1, sizeof(*m->ac)))) {
		free(m);
		return NULL;
	}
	return m;
}

static void ac_clear(struct ac *ac)
{
	for (size_t i = 0; i < ac->nnode; i++)
		free(ac->node[i].edge);
	free(ac->tables);
	ac->tables = NULL;
	ac->nnode = 0;
	ac->maxlen = 0;
}

void orchd_mask_free(struct orchd_mask *m)
{
	if (!m)
		return;
	for (int b = 0; b < 256; b++) {
		for (size_t i = 0; i < m->nbucket[b]; i++)
			free(m->bucket[b][i].s);
		free(m->bucket[b]);
	}
	ac_clear(m->ac);
	free(m->ac->node);
	free(m->ac->recent);
	free(m->ac);
	free(m);
}

static int mask_add_one(struct orchd_mask *m, const char *secret, size_t len);

int orchd_mask_add(struct orchd_mask *m, const char *secret)
{
	size_t len = secret ? strlen(secret) : 0;
	const char *p, *nl;

	if (!len)
		return 0;
	mask_add_one(m, secret, len);
	if (!strpbrk(secret, "\r\n"))
		return 0;
	/* a multi-line secret (a PEM key) reaches the console line by line:
	 * each of its lines is a secret too */
	for (p = secret; *p; p = *nl ? nl + 1 : nl) {
		size_t n;

		nl = p + strcspn(p, "\n");
		n = (size_t)(nl - p);
		if (n && p[n - 1] == '\r')
			n--;
		if (n >= ORCHD_MASK_MIN_LINE)
			mask_add_one(m, p, n);
	}
	return 0;
}

void orchd_mask_add_json(struct orchd_mask *m, const json_object *v)
{
	if (!v)
		return;
	if (json_object_is_type(v, json_type_string)) {
		orchd_mask_add(m, json_object_get_string((json_object *)(uintptr_t)v));
		return;
	}
	/* the value as a whole, as it is printed, and each string in it */
	orchd_mask_add(m, json_object_to_json_string_ext((json_object *)(uintptr_t)v,
							 JSON_C_TO_STRING_PLAIN));
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach((json_object *)(uintptr_t)v, k, e)
		{
			(void)k;
			if (json_object_is_type(e, json_type_string) ||
			    json_object_is_type(e, json_type_object) ||
			    json_object_is_type(e, json_type_array))
				orchd_mask_add_json(m, e);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *e = json_object_array_get_idx(v, i);

			if (json_object_is_type(e, json_type_string) ||
			    json_object_is_type(e, json_type_object) ||
			    json_object_is_type(e, json_type_array))
				orchd_mask_add_json(m, e);
		}
	}
}

static int mask_add_one(struct orchd_mask *m, const char *secret, size_t len)
{
	unsigned char b;
	struct mask_secret *v;
	size_t i;

	if (!len)
		return 0;
	b = (unsigned char)secret[0];
	v = m->bucket[b];
	for (i = 0; i < m->nbucket[b]; i++)
		if (v[i].len == len && !memcmp(v[i].s, secret, len))
			return 0;
	ALLOC_GROW(m->bucket[b], m->nbucket[b] + 1, m->abucket[b]);
	v = m->bucket[b];
	/* insertion point: keep longest first */
	for (i = 0; i < m->nbucket[b] && v[i].len >= len; i++)
		;
	memmove(v + i + 1, v + i, (m->nbucket[b] - i) * sizeof(*v));
	v[i].s = xstrndup(secret, len);
	v[i].len = len;
	m->nbucket[b]++;
	m->count++;
	/* matched as a recent one until the next build */
	ALLOC_GROW(m->ac->recent, m->ac->nrecent + 1, m->ac->arecent);
	m->ac->recent[m->ac->nrecent++] = v[i];
	m->ac->recent_first[b] = 1;
	return 0;
}

size_t orchd_mask_count(const struct orchd_mask *m)
{
	return m ? m->count : 0;
}

static uint32_t ac_new_node(struct ac *ac, uint32_t depth)
{
	ALLOC_GROW(ac->node, ac->nnode + 1, ac->anode);
	memset(&ac->node[ac->nnode], 0, sizeof(ac->node[0]));
	ac->node[ac->nnode].depth = depth;
	return (uint32_t)ac->nnode++;
}

/* The child of node n on byte b, or 0 (the root is never a child). */
static uint32_t ac_child(const struct ac *ac, uint32_t n, unsigned char b)
{
	const struct ac_node *nd = &ac->node[n];
	uint32_t lo = 0, hi = nd->nedge;

	if (!n)
		return ac->root[b];
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (nd->edge[mid].byte == b)
			return nd->edge[mid].to;
		if (nd->edge[mid].byte < b)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static void ac_insert(struct ac *ac, const char *s, size_t len)
{
	uint32_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char b = (unsigned char)s[i];
		uint32_t c = ac_child(ac, n, b), k;

		if (!c) {
			c = ac_new_node(ac, (uint32_t)i + 1);
			if (!n) {
				ac->root[b] = c;
			} else {
				struct ac_node *nd = &ac->node[n];

				ALLOC_GROW(nd->edge, nd->nedge + 1, nd->aedge);
				for (k = nd->nedge; k > 0 && nd->edge[k - 1].byte > b; k--)
					nd->edge[k] = nd->edge[k - 1];
				nd->edge[k].byte = b;
				nd->edge[k].to = c;
				nd->nedge++;
			}
		}
		n = c;
	}
	ac->node[n].out = (uint32_t)len;
	if (len > ac->maxlen)
		ac->maxlen = len;
}

/* From node n on byte b, following failure links: the next state. */
static uint32_t ac_step(const struct ac *ac, uint32_t n, unsigned char b)
{
	for (;;) {
		uint32_t c;

		if (ac->node[n].next)
			return ac->node[n].next[ac->cls[b]];
		c = ac_child(ac, n, b);
		if (c || !n)
			return c;
		n = ac->node[n].fail;
	}
}

static void ac_build(const struct orchd_mask *m)
{
	struct ac *ac = m->ac;
	unsigned char rep[257]; /* class -> its byte */
	uint32_t *queue;
	size_t head = 0, tail = 0, ntables;

	ac_clear(ac);
	memset(ac->root, 0, sizeof(ac->root));
	memset(ac->cls, 0, sizeof(ac->cls));
	ac->nclass = 1;
	ac_new_node(ac, 0);
	for (int b = 0; b < 256; b++)
		for (size_t i = 0; i < m->nbucket[b]; i++) {
			const struct mask_secret *sec = &m->bucket[b][i];

			ac_insert(ac, sec->s, sec->len);
			for (size_t k = 0; k < sec->len; k++) {
				unsigned char c = (unsigned char)sec->s[k];

				if (!ac->cls[c]) {
					rep[ac->nclass] = c;
					ac->cls[c] = (uint16_t)ac->nclass++;
				}
			}
		}
	/* breadth first: a node's failure link is known before its children's;
	 * out becomes the longest secret ending at the node or any suffix */
	queue = xmalloc(ac->nnode * sizeof(*queue));
	for (int b = 0; b < 256; b++)
		if (ac->root[b]) {
			ac->node[ac->root[b]].fail = 0;
			queue[tail++] = ac->root[b];
		}
	while (head < tail) {
		uint32_t n = queue[head++];

		for (uint32_t k = 0; k < ac->node[n].nedge; k++) {
			uint32_t c = ac->node[n].edge[k].to;
			uint32_t f = ac_step(ac, ac->node[n].fail, ac->node[n].edge[k].byte);

			ac->node[c].fail = f;
			if (!ac->node[c].out)
				ac->node[c].out = ac->node[f].out;
			queue[tail++] = c;
		}
	}
	/* the tables, in breadth-first order: a node's failure link is
	 * shallower, so its table is ready; class 0 always leads to the root */
	ntables = AC_DFA_BYTES / (ac->nclass * sizeof(uint32_t));
	if (ntables > tail + 1)
		ntables = tail + 1;
	if (ntables < 1)
		ntables = 1;
	ac->tables = xcalloc(ntables * ac->nclass, sizeof(uint32_t));
	ac->node[0].next = ac->tables;
	for (size_t c = 1; c < ac->nclass; c++)
		ac->node[0].next[c] = ac->root[rep[c]];
	for (size_t q = 0; q + 1 < ntables; q++) {
		struct ac_node *nd = &ac->node[queue[q]];
		uint32_t *next = ac->tables + (q + 1) * ac->nclass;

		for (size_t c = 1; c < ac->nclass; c++) {
			uint32_t ch = ac_child(ac, queue[q], rep[c]);

			next[c] = ch ? ch : ac->node[nd->fail].next[c];
		}
		nd->next = next;
	}
	free(queue);
	ac->built = m->count;
	ac->nrecent = 0;
	memset(ac->recent_first, 0, sizeof(ac->recent_first));
}

/* The leftmost recent secret at or after from, longest first (as
 * ac_find); 0 when none. */
static size_t recent_find(const struct ac *ac, const char *text, size_t len, size_t from,
			  size_t *at)
{
	for (size_t i = from; i < len; i++) {
		size_t best = 0;

		if (!ac->recent_first[(unsigned char)text[i]])
			continue;
		for (size_t k = 0; k < ac->nrecent; k++) {
			const struct mask_secret *r = &ac->recent[k];

			if (r->s[0] == text[i] && r->len > best && r->len <= len - i &&
			    !memcmp(text + i, r->s, r->len))
				best = r->len;
		}
		if (best) {
			*at = i;
			return best;
		}
	}
	return 0;
}

/*
 * The leftmost secret at or after from, the longest of those that start
 * there: its start in *at and its length returned, or 0.  A match ending
 * at p is final once no secret could start earlier and end later
 * (p + 1 - start >= maxlen), or at the end of the text.
 */
static size_t ac_find(const struct ac *ac, const char *text, size_t len, size_t from, size_t *at)
{
	const struct ac_node *node = ac->node;
	const unsigned char *t = (const unsigned char *)text;
	size_t best_len = 0, best_at = 0;
	uint32_t n = 0;

	for (size_t p = from; p < len; p++) {
		size_t l;

		/* at the root, skip the bytes that start no secret */
		if (!n) {
			while (p < len && !ac->root[t[p]])
				p++;
			if (p == len)
				break;
		}
		n = node[n].next ? node[n].next[ac->cls[t[p]]] : ac_step(ac, n, t[p]);
		l = node[n].out;
		/* at this end, the longest match starts first */
		if (l) {
			size_t s = p + 1 - l;

			if (!best_len || s < best_at || (s == best_at && l > best_len)) {
				best_at = s;
				best_len = l;
			}
		}
		if (best_len && p + 1 - best_at >= ac->maxlen)
			break;
	}
	*at = best_at;
	return best_len;
}

char *orchd_mask_apply(const struct orchd_mask *m, const char *text, size_t len, size_t *outlen)
{
	struct op_buf sb = OP_BUF_INIT;
	size_t copied = 0, at, n;
	int hit = 0;
	char *masked;

	if (!m || !m->count)
		return NULL;
	if (m->ac->nrecent && (m->ac->built < AC_RECENT_MIN || m->ac->nrecent > m->ac->built / 8))
		ac_build(m);
	/* after each match, look again from its end (a match found meanwhile
	 * further on, and passed over, is found again) */
	while (copied < len) {
		size_t at2 = 0,
		       n2 = m->ac->nrecent ? recent_find(m->ac, text, len, copied, &at2) : 0;

		n = m->ac->built ? ac_find(m->ac, text, len, copied, &at) : 0;
		/* the leftmost of the two, the longest at the same start */
		if (n2 && (!n || at2 < at || (at2 == at && n2 > n))) {
			at = at2;
			n = n2;
		}
		if (!n)
			break;
		hit = 1;
		op_buf_add(&sb, text + copied, at - copied);
		op_buf_addstr(&sb, "***");
		copied = at + n;
	}
	if (!hit)
		return NULL;
	op_buf_add(&sb, text + copied, len - copied);
	/* NULL means "nothing to mask": a failure must never say that */
	masked = op_buf_detach(&sb, outlen);
	if (!masked)
		die("out of memory");
	return masked;
}

/* --- console ------------------------------------------------------------- */

struct console_inst {
	char *id;
	int color;
	char *prefix;	     /* "[ID]" padded to prefix_width + 1, or NULL */
	size_t prefix_len;   /* bytes of prefix */
	size_t prefix_width; /* the console's width it was made for */
};

struct orchd_console {
	FILE *out;
	enum orchd_log_level level;
	int color;
	int status;
	int status_shown;
	struct op_buf status_text; /* redrawn under each new line */
	size_t width;		   /* longest id */
	struct console_inst *inst;
	size_t ninst, ainst;
	size_t last;	     /* index of the last instance looked up */
	const char *last_id; /* the string it was looked up with (borrowed) */
	struct orchd_mask *mask;
	struct op_buf line;
};

/* stderr's buffer when it is not a TTY (see orchd_console_new). */
static char stderr_buf[65536];

/* 256-color-safe basic palette: green, yellow, blue, magenta, cyan and bright ones */
static const int palette[] = {32, 33, 34, 35, 36, 92, 93, 94, 95, 96};

static int is_tty(FILE *f)
{
	return isatty(fileno(f));
}

struct orchd_console *orchd_console_new(const struct orchd_console_opts *opts)
{
	struct orchd_console *c = calloc(1, sizeof(*c));
	int tty;

	if (!c)
		return NULL;
	c->out = opts && opts->out ? opts->out : stderr;
	c->level = opts ? opts->level : ORCHD_LOG_INFO;
	tty = is_tty(c->out);
	c->color = opts ? opts->color : -1;
	if (c->color < 0) {
		const char *nc = getenv("NO_COLOR");
		c->color = tty && !(nc && *nc);
	}
	c->status = opts ? opts->status : -1;
	if (c->status < 0) {
		/* Plain output when NO_COLOR is set: no colors, no status line. */
		const char *nc = getenv("NO_COLOR");
		c->status = tty && !(nc && *nc);
	}
	if (c->out == stderr && !tty) {
		/* a file or pipe: lines are written in 64 KiB blocks, flushed
		 * by orchd_console_flush(); error()/warning() use the same
		 * stream, so the order stays */
		fflush(stderr);
		setvbuf(stderr, stderr_buf, _IOFBF, sizeof(stderr_buf));
	}
	c->mask = orchd_mask_new();
	if (!c->mask) {
		free(c);
		return NULL;
	}
	op_buf_init(&c->line, 0);
	op_buf_init(&c->status_text, 0);
	return c;
}

void orchd_console_free(struct orchd_console *c)
{
	if (!c)
		return;
	orchd_console_status_clear(c);
	fflush(c->out);
	for (size_t i = 0; i < c->ninst; i++) {
		free(c->inst[i].id);
		free(c->inst[i].prefix);
	}
	free(c->inst);
	orchd_mask_free(c->mask);
	op_buf_release(&c->line);
	op_buf_release(&c->status_text);
	free(c);
}

struct orchd_mask *orchd_console_mask(struct orchd_console *c)
{
	return c->mask;
}

void orchd_console_flush(struct orchd_console *c)
{
	if (c)
		fflush(c->out);
}

static struct console_inst *find_inst(struct orchd_console *c, const char *id)
{
	/* the same instance usually says many lines in a row, with the same
	 * string for its id */
	if (c->last < c->ninst && (id == c->last_id || !strcmp(c->inst[c->last].id, id))) {
		c->last_id = id;
		return &c->inst[c->last];
	}
	for (size_t i = 0; i < c->ninst; i++)
		if (!strcmp(c->inst[i].id, id)) {
			c->last = i;
			c->last_id = id;
			return &c->inst[i];
		}
	return NULL;
}

static struct console_inst *get_inst(struct orchd_console *c, const char *id)
{
	struct console_inst *in = find_inst(c, id);
	size_t l;

	if (in)
		return in;
	ALLOC_GROW(c->inst, c->ninst + 1, c->ainst);
	in = &c->inst[c->ninst];
	in->id = xstrdup(id);
	in->color = palette[c->ninst % ARRAY_SIZE(palette)];
	in->prefix = NULL;
	c->ninst++;
	l = strlen(id) + 2;
	if (l > c->width)
		c->width = l;
	return in;
}

void orchd_console_add_instance(struct orchd_console *c, const char *id)
{
	get_inst(c, id);
}

static void status_erase(struct orchd_console *c)
{
	if (!c->status_shown)
		return;
	fputs("\r\033[K", c->out);
	c->status_shown = 0;
}

static void status_draw(struct orchd_console *c)
{
	if (!c->status || !c->status_text.len)
		return;
	fputs("\r\033[K", c->out);
	fwrite(c->status_text.buf, 1, c->status_text.len, c->out);
	c->status_shown = 1;
}

void orchd_console_status_clear(struct orchd_console *c)
{
	op_buf_reset(&c->status_text);
	if (!c->status_shown)
		return;
	fputs("\r\033[K", c->out);
	fflush(c->out);
	c->status_shown = 0;
}

/* The "[ID]" prefix of an instance's lines, padded to the widest id and a
 * space; made again when a wider id came. */
static void add_prefix(struct orchd_console *c, struct op_buf *sb, const char *id)
{
	struct console_inst *in = get_inst(c, id);

	if (!in->prefix || in->prefix_width != c->width) {
		struct op_buf p = OP_BUF_INIT;
		size_t pad = c->width - (strlen(id) + 2);

		if (c->color)
			op_buf_addf(&p, "\033[%dm[%s]\033[0m", in->color, id);
		else
			op_buf_addf(&p, "[%s]", id);
		while (pad--)
			op_buf_addch(&p, ' ');
		op_buf_addch(&p, ' ');
		free(in->prefix);
		in->prefix = op_buf_detach(&p, &in->prefix_len);
		if (!in->prefix)
			die("out of memory");
		in->prefix_width = c->width;
	}
	op_buf_add(sb, in->prefix, in->prefix_len);
}

static void neutralize(unsigned char *o, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((o[i] < 0x20 && o[i] != '\t') || o[i] == 0x7f)
			o[i] = '?';
}

/* Copy text to o with its control characters (C0 but tab, and DEL) as '?':
 * a line never moves the cursor or rings the terminal.  Copied whole, then
 * checked eight bytes at a time: a word with a byte below 0x20 or a 0x7f
 * (tests that may also flag a byte after such a one) is fixed byte by
 * byte. */
static void copy_printable(unsigned char *o, const char *text, size_t len)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	size_t i = 0;

	memcpy(o, text, len);
	for (; i + 8 <= len; i += 8) {
		uint64_t w, d;

		memcpy(&w, o + i, 8);
		d = w ^ (0x7f * ones);
		if (((w - 0x20 * ones) & ~w & high) || ((d - ones) & ~d & high))
			neutralize(o + i, 8);
	}
	neutralize(o + i, len - i);
}

/* Append text as copy_printable() makes it, and a newline. */
static void add_printable(struct op_buf *sb, const char *text, size_t len)
{
	if (op_buf_grow(sb, len + 2) < 0)
		return;
	copy_printable((unsigned char *)sb->buf + sb->len, text, len);
	sb->buf[sb->len + len] = '\n';
	sb->len += len + 1; /* room made above */
	sb->buf[sb->len] = '\0';
}

/* Append one console line to sb: "[ID] LEVEL: TEXT\n", or with where
 * "WHERE: LEVEL: TEXT\n" (a diagnostic, positioned like orchd's own). */
static void format_line(struct orchd_console *c, struct op_buf *sb, const char *id,
			const char *where, enum orchd_log_level level, const char *text, size_t len)
{
	char *masked;

	if (where) {
		op_buf_addstr(sb, where);
		op_buf_addstr(sb, ": ");
	} else if (id) {
		add_prefix(c, sb, id);
	}
	if (level == ORCHD_LOG_WARNING)
		op_buf_addstr(sb, c->color ? "\033[33mwarning:\033[0m " : "warning: ");
	else if (level == ORCHD_LOG_ERROR)
		op_buf_addstr(sb, c->color ? "\033[31merror:\033[0m " : "error: ");
	else if (level == ORCHD_LOG_DEBUG)
		op_buf_addstr(sb, "debug: ");
	/* mask the text as it came, then neutralize its control characters
	 * (the other way round, a secret holding one would be missed) */
	masked = orchd_mask_apply(c->mask, text, len, &len);
	add_printable(sb, masked ? masked : text, len); /* and the '\n' */
	free(masked);
}

/* Write the lines in sb, under the status line when it shows. */
static void write_lines(struct orchd_console *c, struct op_buf *sb)
{
	orchd_buf_str(sb); /* dies when an append failed */
	status_erase(c);
	fwrite(sb->buf, 1, sb->len, c->out);
	status_draw(c);
	if (c->status)
		fflush(c->out);
	op_buf_reset(sb);
}

static void console_line(struct orchd_console *c, const char *id, const char *where,
			 enum orchd_log_level level, const char *text)
{
	if (level < c->level)
		return;
	text = text ? text : "";
	op_buf_reset(&c->line);
	format_line(c, &c->line, id, where, level, text, strlen(text));
	write_lines(c, &c->line);
}

/*
 * The bulk path (a tool's output: thousands of lines of one instance at
 * info): each line is the instance's prefix and its text, masked when
 * secrets are known, copied straight into the console's buffer, which is
 * written in blocks of about 64 KiB.  Anything else goes line by line.
 */
void orchd_console_lines(struct orchd_console *c, const char *id, enum orchd_log_level level,
			 const char *text, size_t len)
{
	const char *p = text, *end = text + len, *nl;
	struct op_buf *sb = &c->line;
	struct console_inst *in;

	if (level < c->level)
		return;
	op_buf_reset(sb);
	if (c->status || !id || level != ORCHD_LOG_INFO) {
		for (; p < end; p = nl + 1) {
			nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl)
				nl = end;
			format_line(c, sb, id, NULL, level, p, (size_t)(nl - p));
			if (sb->len >= sizeof(stderr_buf))
				write_lines(c, sb);
		}
		if (sb->len)
			write_lines(c, sb);
		return;
	}
	add_prefix(c, sb, id); /* makes the prefix */
	op_buf_reset(sb);
	in = get_inst(c, id);
	for (; p < end; p = nl + 1) {
		size_t n, need;
		char *masked = NULL;
		const char *t = p;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		n = (size_t)(nl - p);
		if (c->mask->count && (masked = orchd_mask_apply(c->mask, p, n, &n)))
			t = masked;
		need = in->prefix_len + n + 2;
		if (sb->alloc - sb->len < need && op_buf_grow(sb, need) < 0)
			die("out of memory");
		memcpy(sb->buf + sb->len, in->prefix, in->prefix_len);
		copy_printable((unsigned char *)sb->buf + sb->len + in->prefix_len, t, n);
		sb->len += in->prefix_len + n;
		sb->buf[sb->len++] = '\n';
		sb->buf[sb->len] = '\0'; /* need counted it */
		free(masked);
		if (sb->len >= sizeof(stderr_buf))
			write_lines(c, sb);
	}
	if (sb->len)
		write_lines(c, sb);
}

void orchd_console_log(struct orchd_console *c, const char *id, enum orchd_log_level level,
		       const char *text)
{
	console_line(c, id, NULL, level, text);
}

void orchd_console_logf(struct orchd_console *c, const char *id, enum orchd_log_level level,
			const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	if (level < c->level)
		return;
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	orchd_console_log(c, id, level, s);
	free(s);
}

void orchd_console_status(struct orchd_console *c, size_t done, size_t failed,
			  const char *const *running, size_t nrunning)
{
	struct op_buf sb = OP_BUF_INIT;

	if (!c->status)
		return;
	op_buf_addf(&sb, "running %zu, done %zu, failed %zu", nrunning, done, failed);
	for (size_t i = 0; i < nrunning && sb.len < 200; i++)
		op_buf_addf(&sb, "%s%s", i ? " " : ": ", running[i]);
	if (sb.len >= 200)
		op_buf_setlen(&sb, 200);
	op_buf_reset(&c->status_text);
	op_buf_addstr(&c->status_text, orchd_buf_str(&sb));
	status_draw(c);
	fflush(c->out);
	op_buf_release(&sb);
}

void orchd_format_duration(char *buf, size_t n, long long ms)
{
	if (ms < 0)
		snprintf(buf, n, "-");
	else if (ms < 1000)
		snprintf(buf, n, "%lldms", ms);
	else if (ms < 60000)
		snprintf(buf, n, "%lld.%llds", ms / 1000, (ms % 1000) / 100);
	else
		snprintf(buf, n, "%lldm%02llds", ms / 60000, (ms % 60000) / 1000);
}

void orchd_format_kib(char *buf, size_t n, long kib)
{
	if (kib <= 0)
		snprintf(buf, n, "-");
	else if (kib < 1024)
		snprintf(buf, n, "%ld KiB", kib);
	else if (kib < 1024L * 1024)
		snprintf(buf, n, "%.1f MiB", kib / 1024.0);
	else
		snprintf(buf, n, "%.1f GiB", kib / (1024.0 * 1024));
}

void orchd_format_size(char *buf, size_t n, int64_t bytes)
{
	if (bytes < 1024)
		snprintf(buf, n, "%lld bytes", (long long)bytes);
	else if (bytes % (1024 * 1024) == 0)
		snprintf(buf, n, "%lld MiB", (long long)(bytes / (1024 * 1024)));
	else if (bytes % 1024 == 0 && bytes < 1024 * 1024)
		snprintf(buf, n, "%lld KiB", (long long)(bytes / 1024));
	else
		orchd_format_kib(buf, n, (long)(bytes / 1024));
}

void orchd_console_summary(struct orchd_console *c, const struct orchd_summary_row *rows,
			   size_t nrows)
{
	size_t wid = strlen("INSTANCE"), wst = strlen("STATUS");
	char dur[32], cpu[32], rss[32];

	for (size_t i = 0; i < nrows; i++) {
		if (strlen(rows[i].id) > wid)
			wid = strlen(rows[i].id);
		if (strlen(rows[i].status) > wst)
			wst = strlen(rows[i].status);
	}
	orchd_console_status_clear(c);
	fprintf(c->out, "%-*s  %-*s  %8s  %9s  %9s  %10s\n", (int)wid, "INSTANCE", (int)wst,
		"STATUS", "ATTEMPTS", "DURATION", "CPU", "MAX RSS");
	for (size_t i = 0; i < nrows; i++) {
		orchd_format_duration(dur, sizeof(dur), rows[i].wall_ms);
		orchd_format_duration(cpu, sizeof(cpu), rows[i].cpu_ms);
		orchd_format_kib(rss, sizeof(rss), rows[i].max_rss_kb);
		fprintf(c->out, "%-*s  %-*s  %8d  %9s  %9s  %10s\n", (int)wid, rows[i].id, (int)wst,
			rows[i].status, rows[i].attempts, dur, cpu, rss);
	}
	fflush(c->out);
}

/* ---------------------------------------------------------------------------
 * The journal of a run.
 * ------------------------------------------------------------------------- */

#define JOURNAL_LOG_MAX (1u << 20)

struct journal_entry {
	struct op_buf log; /* every line, for the log file and JUnit */
	int truncated;	   /* "[log truncated]" was written */
	/* grouped or held: lines not printed yet ('0'+level, 'a'+source, text,
	 * '\n'; or 'D', where, '\t', text, '\n' for a diagnostic) */
	struct op_buf group;
	FILE *spill; /* what did not fit in group's ORCHD_GROUP_MEM, in order */
	int hold;    /* it may still declare secrets: print its lines at the end */
};

struct orchd_journal {
	struct orchd_console *con;
	const char *const *ids;
	size_t n;
	struct orchd_journal_opts o;
	struct journal_entry *e;
};

struct orchd_journal *orchd_journal_new(struct orchd_console *con, const char *const *ids, size_t n,
					const struct orchd_journal_opts *opts)
{
	struct orchd_journal *j = xcalloc(1, sizeof(*j));

	j->con = con;
	j->ids = ids;
	j->n = n;
	j->o = *opts;
	j->e = xcalloc(n ? n : 1, sizeof(*j->e));
	for (size_t i = 0; i < n; i++) {
		op_buf_init(&j->e[i].log, JOURNAL_LOG_MAX);
		op_buf_init(&j->e[i].group, 0);
	}
	return j;
}

void orchd_journal_free(struct orchd_journal *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		op_buf_release(&j->e[i].log);
		op_buf_release(&j->e[i].group);
		if (j->e[i].spill)
			fclose(j->e[i].spill);
	}
	free(j->e);
	free(j);
}

/* Memory is bounded: past ORCHD_GROUP_MEM, held lines go to an unlinked
 * temporary file (an instance may write gigabytes before it ends). */
static void group_spill(struct journal_entry *e)
{
	if (e->group.len < ORCHD_GROUP_MEM)
		return;
	if (!e->spill)
		e->spill = tmpfile();
	if (!e->spill)
		return; /* no temporary file: memory it is */
	if (fwrite(e->group.buf, 1, e->group.len, e->spill) != e->group.len) {
		/* a full disk: what was written is kept, the rest prints now
		 * rather than being lost */
		clearerr(e->spill);
		return;
	}
	op_buf_reset(&e->group);
}

/* Keep a line for the instance's log file and JUnit (bounded). */
/* The word a kept line of this level starts with, as on the console
 * ("" for info), so that the log file and the reports show levels. */
static const char *level_word(enum orchd_log_level level)
{
	return level == ORCHD_LOG_WARNING ? "warning: "
	       : level == ORCHD_LOG_ERROR ? "error: "
	       : level == ORCHD_LOG_DEBUG ? "debug: "
					  : "";
}

static void journal_keep_n(struct journal_entry *e, enum orchd_log_level level, const char *text,
			   size_t len)
{
	const char *word = level_word(level);

	if (e->truncated)
		return;
	if (e->log.len + strlen(word) + len + 64 > e->log.max) {
		op_buf_addstr(&e->log, "[log truncated]\n");
		e->truncated = 1;
		return;
	}
	op_buf_addstr(&e->log, word);
	op_buf_add(&e->log, text, len);
	op_buf_addch(&e->log, '\n');
}

static void journal_keep(struct journal_entry *e, enum orchd_log_level level, const char *text)
{
	journal_keep_n(e, level, text, strlen(text));
}

/* --log-format json: one object per line on stderr, masked. */
static void journal_json(struct orchd_journal *j, const char *id, enum orchd_log_level lvl,
			 enum orchd_log_source src, const char *text)
{
	json_object *o = json_object_new_object();
	char *m = orchd_mask_apply(orchd_console_mask(j->con), text, strlen(text), NULL);
	char ts[40];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03dZ", (int)(now.tv_nsec / 1000000));
	json_object_object_add(o, "time", json_object_new_string(ts));
	json_object_object_add(o, "instance", id ? json_object_new_string(id) : NULL);
	json_object_object_add(o, "level", json_object_new_string(orchd_log_level_name(lvl)));
	json_object_object_add(o, "source", json_object_new_string(orchd_log_source_name(src)));
	json_object_object_add(o, "message", json_object_new_string(m ? m : text));
	fprintf(stderr, "%s\n",
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	free(m);
	json_object_put(o);
}

void orchd_journal_line(struct orchd_journal *j, size_t i, enum orchd_log_level level,
			enum orchd_log_source src, const char *text)
{
	struct journal_entry *e = i < j->n ? &j->e[i] : NULL;
	const char *id = e ? j->ids[i] : NULL;

	if (e)
		journal_keep(e, level, text);
	if (e && (j->o.grouped || e->hold)) {
		op_buf_addch(&e->group, '0' + (int)level);
		op_buf_addch(&e->group, 'a' + (int)src);
		op_buf_addstr(&e->group, text);
		op_buf_addch(&e->group, '\n');
		group_spill(e);
		return;
	}
	if (j->o.json) {
		if (level >= j->o.min_level)
			journal_json(j, id, level, src, text);
		return;
	}
	orchd_console_log(j->con, id, level, text);
}

void orchd_journal_lines(struct orchd_journal *j, size_t i, enum orchd_log_level level,
			 enum orchd_log_source src, char *text, size_t len)
{
	struct journal_entry *e = i < j->n ? &j->e[i] : NULL;
	char *p, *nl, *end = text + len;

	if (e && !j->o.grouped && !e->hold && !j->o.json) {
		/* the log keeps whole lines while they fit (info: as they are) */
		if (level == ORCHD_LOG_INFO && !e->truncated && e->log.len + len + 64 <= e->log.max)
			op_buf_add(&e->log, text, len);
		else
			for (p = text; p < end && !e->truncated; p = nl + 1) {
				nl = memchr(p, '\n', (size_t)(end - p));
				journal_keep_n(e, level, p, (size_t)(nl - p));
			}
		orchd_console_lines(j->con, j->ids[i], level, text, len);
		return;
	}
	for (p = text; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		*nl = '\0';
		orchd_journal_line(j, i, level, src, p);
		*nl = '\n';
	}
}

void orchd_journal_hold(struct orchd_journal *j, size_t i)
{
	if (i < j->n)
		j->e[i].hold = 1;
}

void orchd_journal_diag(struct orchd_journal *j, size_t i, const char *where, const char *text)
{
	struct journal_entry *e = i < j->n ? &j->e[i] : NULL;
	const char *id = e ? j->ids[i] : "orchd";
	char *line = xasprintf("%s: %s", id, text), *kept = xasprintf("%s: error: %s", where, text);

	if (e)
		journal_keep(e, ORCHD_LOG_INFO, kept); /* its "error:" is in place */
	if (j->o.json && !(e && e->hold)) {
		journal_json(j, e ? id : NULL, ORCHD_LOG_ERROR, ORCHD_LOGSRC_ORCHD, kept);
	} else if (e && (j->o.grouped || e->hold)) {
		/* 'D': a diagnostic, its where first */
		op_buf_addch(&e->group, 'D');
		op_buf_addstr(&e->group, where);
		op_buf_addch(&e->group, '\t');
		op_buf_addstr(&e->group, line);
		op_buf_addch(&e->group, '\n');
		group_spill(e);
	} else {
		console_line(j->con, NULL, where, ORCHD_LOG_ERROR, line);
	}
	free(line);
	free(kept);
}

/* One held line (see struct journal_entry), printed. */
static void group_line(struct orchd_journal *j, size_t i, char *p)
{
	char *tab;

	if (p[0] == 'D' && (tab = strchr(p, '\t'))) {
		*tab = '\0';
		if (j->o.json) {
			char *kept = xasprintf("%s: %s", p + 1, tab + 1);

			journal_json(j, j->ids[i], ORCHD_LOG_ERROR, ORCHD_LOGSRC_ORCHD, kept);
			free(kept);
		} else {
			console_line(j->con, NULL, p + 1, ORCHD_LOG_ERROR, tab + 1);
		}
		return;
	}
	if (!p[0] || !p[1])
		return;
	if (j->o.json) {
		if ((enum orchd_log_level)(p[0] - '0') >= j->o.min_level)
			journal_json(j, j->ids[i], (enum orchd_log_level)(p[0] - '0'),
				     (enum orchd_log_source)(p[1] - 'a'), p + 2);
	} else {
		orchd_console_log(j->con, j->ids[i], (enum orchd_log_level)(p[0] - '0'), p + 2);
	}
}

void orchd_journal_flush(struct orchd_journal *j, size_t i)
{
	struct journal_entry *e;
	char *p, *nl;

	if (i >= j->n)
		return;
	e = &j->e[i];
	if (e->spill) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;

		rewind(e->spill);
		while ((n = getline(&line, &cap, e->spill)) > 0) {
			if (line[n - 1] == '\n')
				line[n - 1] = '\0';
			group_line(j, i, line);
		}
		free(line);
		fclose(e->spill);
		e->spill = NULL;
	}
	if (!e->group.len)
		return;
	orchd_buf_str(&e->group); /* dies when an append failed */
	for (p = e->group.buf; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		group_line(j, i, p);
	}
	op_buf_reset(&e->group);
}

const char *orchd_journal_text(const struct orchd_journal *j, size_t i)
{
	return i < j->n ? orchd_buf_str(&j->e[i].log) : "";
}
