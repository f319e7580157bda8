/*
 * framing: the bounded line splitter (see orchd_protocol.h).
 *
 * The pending bytes live in an op_buf without a cap; the bound is enforced
 * here: whenever no '\n' is found within max_line bytes the splitter either
 * reports the line as too long (STRICT, then skips to the next '\n') or
 * emits a max_line chunk (CHUNK), so the buffer never holds more than
 * max_line bytes plus the size of one feed.  Complete lines are returned in
 * place (their '\n' overwritten by a NUL), without copying; consumed bytes
 * are dropped at the next feed, and the newline search resumes where the
 * last one stopped, so the cost is linear in the input.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "orchd_protocol.h"

struct op_splitter {
	struct op_buf pending; /* input; bytes before off are consumed */
	size_t off;	       /* start of the unconsumed input */
	size_t scanned;	       /* no '\n' in pending[off, scanned) */
	struct op_buf line;    /* copy of a chunk / over-long head */
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
	op_buf_init(&sp->pending, 0);
	op_buf_init(&sp->line, 0);
	sp->max_line = max_line ? max_line : OP_MAX_LINE;
	sp->mode = mode;
	return sp;
}

void op_splitter_free(struct op_splitter *sp)
{
	if (!sp)
		return;
	op_buf_release(&sp->pending);
	op_buf_release(&sp->line);
	free(sp);
}

int op_splitter_feed(struct op_splitter *sp, const void *data, size_t n)
{
	if (sp->failed) {
		errno = ENOMEM;
		return -1;
	}
	/* drop what was consumed: one memmove of the partial line per feed,
	 * so splitting is linear in the input whatever the feed sizes */
	if (sp->off) {
		op_buf_consume(&sp->pending, sp->off);
		sp->scanned -= sp->off;
		sp->off = 0;
	}
	if (op_buf_add(&sp->pending, data, n) < 0) {
		sp->failed = true;
		return -1;
	}
	return 0;
}

void op_splitter_finish(struct op_splitter *sp)
{
	sp->finished = true;
}

size_t op_splitter_buffered(const struct op_splitter *sp)
{
	return sp->pending.len - sp->off;
}

bool op_splitter_done(const struct op_splitter *sp)
{
	return sp->finished && (sp->pending.len == sp->off || sp->skipping || sp->failed);
}

/* Return a copy of the next n bytes (a chunk or an over-long head). */
static enum op_line_status take_copy(struct op_splitter *sp, size_t n, enum op_line_status st,
				     const char **line, size_t *len)
{
	op_buf_reset(&sp->line);
	if (op_buf_add(&sp->line, sp->pending.buf + sp->off, n) < 0) {
		sp->failed = true;
		return OP_LINE_NONE;
	}
	sp->off += n;
	if (sp->scanned < sp->off)
		sp->scanned = sp->off;
	*line = op_buf_str(&sp->line);
	*len = sp->line.len;
	return st;
}

enum op_line_status op_splitter_next(struct op_splitter *sp, const char **line, size_t *len)
{
	*line = NULL;
	*len = 0;
	if (sp->failed)
		return OP_LINE_NONE;
	for (;;) {
		char *buf = sp->pending.buf;
		size_t avail = sp->pending.len - sp->off, from;
		char *nl = NULL;

		if (!avail)
			return OP_LINE_NONE;
		from = sp->scanned > sp->off ? sp->scanned : sp->off;
		if (from < sp->pending.len)
			nl = memchr(buf + from, '\n', sp->pending.len - from);
		if (sp->skipping) {
			if (!nl) {
				sp->off = sp->scanned = sp->pending.len;
				return OP_LINE_NONE;
			}
			sp->off = sp->scanned = (size_t)(nl - buf) + 1;
			sp->skipping = false;
			continue;
		}
		if (nl && (size_t)(nl - buf) - sp->off <= sp->max_line) {
			*nl = '\0';
			*line = buf + sp->off;
			*len = (size_t)(nl - buf) - sp->off;
			sp->off = sp->scanned = (size_t)(nl - buf) + 1;
			return OP_LINE_OK;
		}
		if (!nl)
			sp->scanned = sp->pending.len;
		if (avail > sp->max_line) {
			if (sp->mode == OP_SPLIT_CHUNK)
				return take_copy(sp, sp->max_line, OP_LINE_OK, line, len);
			sp->skipping = true;
			return take_copy(sp, sp->max_line, OP_LINE_TOO_LONG, line, len);
		}
		if (sp->finished) {
			/* the partial last line: op_buf keeps a NUL after len */
			*line = buf + sp->off;
			*len = avail;
			sp->off = sp->scanned = sp->pending.len;
			return OP_LINE_OK;
		}
		return OP_LINE_NONE;
	}
}
