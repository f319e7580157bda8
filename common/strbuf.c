#include "strbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(struct strbuf *sb, size_t max)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->alloc = 0;
	sb->max = max;
}

void sb_release(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = 0;
	sb->alloc = 0;
}

void sb_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

static int sb_fail(struct strbuf *sb, int err)
{
	sb_release(sb);
	errno = err;
	return -1;
}

int sb_grow(struct strbuf *sb, size_t n)
{
	size_t need, nalloc;
	char *p;

	if (n > SIZE_MAX - sb->len - 1)
		return sb_fail(sb, ENOMEM);
	need = sb->len + n + 1;
	if (sb->max && need - 1 > sb->max)
		return sb_fail(sb, E2BIG);
	if (need <= sb->alloc)
		return 0;
	nalloc = sb->alloc ? sb->alloc : 64;
	while (nalloc < need)
		nalloc = nalloc > SIZE_MAX / 2 ? need : nalloc * 2;
	if (sb->max && nalloc > sb->max + 1)
		nalloc = sb->max + 1;
	p = realloc(sb->buf, nalloc);
	if (!p)
		return sb_fail(sb, ENOMEM);
	sb->buf = p;
	sb->alloc = nalloc;
	sb->buf[sb->len] = '\0';
	return 0;
}

int sb_add(struct strbuf *sb, const void *data, size_t n)
{
	if (sb_grow(sb, n) < 0)
		return -1;
	if (n)
		memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
	return 0;
}

int sb_addstr(struct strbuf *sb, const char *s)
{
	return sb_add(sb, s, strlen(s));
}

int sb_addch(struct strbuf *sb, int c)
{
	char ch = (char)c;

	return sb_add(sb, &ch, 1);
}

int sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return sb_fail(sb, EINVAL);
	if (sb_grow(sb, (size_t)n) < 0)
		return -1;
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
	return 0;
}

int sb_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = sb_vaddf(sb, fmt, ap);
	va_end(ap);
	return ret;
}

void sb_consume(struct strbuf *sb, size_t n)
{
	if (n >= sb->len) {
		sb_reset(sb);
		return;
	}
	memmove(sb->buf, sb->buf + n, sb->len - n);
	sb->len -= n;
	sb->buf[sb->len] = '\0';
}

void sb_setlen(struct strbuf *sb, size_t len)
{
	if (!sb->buf || len > sb->len)
		return;
	sb->len = len;
	sb->buf[len] = '\0';
}

const char *sb_str(const struct strbuf *sb)
{
	return sb->buf ? sb->buf : "";
}

char *sb_detach(struct strbuf *sb, size_t *len)
{
	char *p;

	if (!sb->buf && sb_grow(sb, 0) < 0)
		return NULL;
	p = sb->buf;
	if (len)
		*len = sb->len;
	sb->buf = NULL;
	sb->len = 0;
	sb->alloc = 0;
	return p;
}
