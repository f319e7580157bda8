/*
 * buf: the library's byte buffer (op_buf_*, see "Buffers" in
 * orchd_protocol.h): capped, NUL-terminated, failure sticky.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchd_protocol.h"

void op_buf_init(struct op_buf *b, size_t max)
{
	b->buf = NULL;
	b->len = 0;
	b->alloc = 0;
	b->max = max;
	b->err = 0;
}

void op_buf_release(struct op_buf *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = 0;
	b->alloc = 0;
	b->err = 0;
}

void op_buf_reset(struct op_buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->buf)
		b->buf[0] = '\0';
}

/* The first failure empties the buffer and sticks. */
static int buf_fail(struct op_buf *b, int err)
{
	free(b->buf);
	b->buf = NULL;
	b->len = 0;
	b->alloc = 0;
	b->err = err;
	errno = err;
	return -1;
}

int op_buf_failed(const struct op_buf *b)
{
	return b->err;
}

int op_buf_grow(struct op_buf *b, size_t n)
{
	size_t need, nalloc;
	char *p;

	if (b->err) {
		errno = b->err;
		return -1;
	}
	if (n > SIZE_MAX - b->len - 1)
		return buf_fail(b, ENOMEM);
	need = b->len + n + 1;
	if (b->max && need - 1 > b->max)
		return buf_fail(b, E2BIG);
	if (need <= b->alloc)
		return 0;
	nalloc = b->alloc ? b->alloc : 64;
	while (nalloc < need)
		nalloc = nalloc > SIZE_MAX / 2 ? need : nalloc * 2;
	if (b->max && nalloc > b->max + 1)
		nalloc = b->max + 1;
	p = realloc(b->buf, nalloc);
	if (!p)
		return buf_fail(b, ENOMEM);
	b->buf = p;
	b->alloc = nalloc;
	b->buf[b->len] = '\0';
	return 0;
}

int op_buf_add(struct op_buf *b, const void *data, size_t n)
{
	if (op_buf_grow(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->buf + b->len, data, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return 0;
}

int op_buf_addstr(struct op_buf *b, const char *s)
{
	return op_buf_add(b, s, strlen(s));
}

int op_buf_addch(struct op_buf *b, int c)
{
	char ch = (char)c;

	return op_buf_add(b, &ch, 1);
}

int op_buf_vaddf(struct op_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	if (b->err) {
		errno = b->err;
		return -1;
	}
	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return buf_fail(b, EINVAL);
	if (op_buf_grow(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int op_buf_addf(struct op_buf *b, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = op_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return ret;
}

void op_buf_consume(struct op_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		if (b->buf)
			b->buf[0] = '\0';
		return;
	}
	memmove(b->buf, b->buf + n, b->len - n);
	b->len -= n;
	b->buf[b->len] = '\0';
}

void op_buf_setlen(struct op_buf *b, size_t len)
{
	if (!b->buf || len > b->len)
		return;
	b->len = len;
	b->buf[len] = '\0';
}

void op_buf_ellipsize(struct op_buf *b, size_t max)
{
	if (b->len <= max || max < 4)
		return;
	op_buf_setlen(b, max - 3);
	/* drop continuation bytes, then the lead byte they belonged to */
	while (b->len && (b->buf[b->len - 1] & 0xc0) == 0x80)
		op_buf_setlen(b, b->len - 1);
	if (b->len && (b->buf[b->len - 1] & 0x80))
		op_buf_setlen(b, b->len - 1);
	op_buf_addstr(b, "...");
}

const char *op_buf_str(const struct op_buf *b)
{
	return b->buf ? b->buf : "";
}

char *op_buf_detach(struct op_buf *b, size_t *len)
{
	char *p;

	if (b->err) {
		errno = b->err;
		return NULL;
	}
	if (!b->buf && op_buf_grow(b, 0) < 0)
		return NULL;
	p = b->buf;
	if (len)
		*len = b->len;
	b->buf = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}
