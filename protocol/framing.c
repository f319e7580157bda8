/*
 * framing: the bounded line splitter (see orchd_protocol.h).
 *
 * The pending bytes live in a strbuf without a cap; the bound is enforced
 * here: whenever no '\n' is found within max_line bytes the splitter either
 * reports the line as too long (STRICT, then skips to the next '\n') or
 * emits a max_line chunk (CHUNK), so the buffer never holds more than
 * max_line bytes plus the size of one feed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "orchd_protocol.h"
#include "strbuf.h"

struct op_splitter {
	struct strbuf pending; /* unconsumed input */
	struct strbuf line;    /* the line last returned */
	size_t max_line;
	enum op_split_mode mode;
	bool skipping; /* STRICT: discarding the rest of an over-long line */
	bool finished;
	bool failed;
};

struct op_splitter *op_splitter_new(size_t max_line, enum op_split_mode mode)
{
	struct op_splitter *sp = calloc(1, sizeof(*sp));

	if (!sp)
		return NULL;
	sb_init(&sp->pending, 0);
	sb_init(&sp->line, 0);
	sp->max_line = max_line ? max_line : OP_MAX_LINE;
	sp->mode = mode;
	return sp;
}

void op_splitter_free(struct op_splitter *sp)
{
	if (!sp)
		return;
	sb_release(&sp->pending);
	sb_release(&sp->line);
	free(sp);
}

int op_splitter_feed(struct op_splitter *sp, const void *data, size_t n)
{
	if (sp->failed) {
		errno = ENOMEM;
		return -1;
	}
	if (sb_add(&sp->pending, data, n) < 0) {
		sp->failed = true;
		return -1;
	}
	return 0;
}

void op_splitter_finish(struct op_splitter *sp)
{
	sp->finished = true;
}

bool op_splitter_done(const struct op_splitter *sp)
{
	return sp->finished && (sp->pending.len == 0 || sp->skipping || sp->failed);
}

/* Move the first n bytes of pending into line; drop `extra` more bytes. */
static enum op_line_status take(struct op_splitter *sp, size_t n, size_t extra,
				enum op_line_status st, const char **line, size_t *len)
{
	sb_reset(&sp->line);
	if (sb_add(&sp->line, sp->pending.buf, n) < 0) {
		sp->failed = true;
		return OP_LINE_NONE;
	}
	sb_consume(&sp->pending, n + extra);
	*line = sb_str(&sp->line);
	*len = sp->line.len;
	return st;
}

enum op_line_status op_splitter_next(struct op_splitter *sp, const char **line, size_t *len)
{
	const char *nl;

	*line = NULL;
	*len = 0;
	if (sp->failed)
		return OP_LINE_NONE;
	for (;;) {
		size_t avail = sp->pending.len;

		nl = avail ? memchr(sp->pending.buf, '\n', avail) : NULL;
		if (sp->skipping) {
			if (!nl) {
				sb_reset(&sp->pending);
				return OP_LINE_NONE;
			}
			sb_consume(&sp->pending, (size_t)(nl - sp->pending.buf) + 1);
			sp->skipping = false;
			continue;
		}
		if (nl && (size_t)(nl - sp->pending.buf) <= sp->max_line)
			return take(sp, (size_t)(nl - sp->pending.buf), 1, OP_LINE_OK, line, len);
		if (avail > sp->max_line) {
			if (sp->mode == OP_SPLIT_CHUNK)
				return take(sp, sp->max_line, 0, OP_LINE_OK, line, len);
			sp->skipping = true;
			return take(sp, sp->max_line, 0, OP_LINE_TOO_LONG, line, len);
		}
		if (sp->finished && avail)
			return take(sp, avail, 0, OP_LINE_OK, line, len);
		return OP_LINE_NONE;
	}
}
