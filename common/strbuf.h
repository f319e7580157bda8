/*
 * strbuf: a growable, NUL-terminated byte buffer with a hard size cap.
 *
 * Invariants:
 *   - sb->buf is either NULL (nothing allocated yet, len == 0) or points to
 *     sb->alloc bytes of which the first sb->len are content and
 *     sb->buf[sb->len] == '\0'.  Use sb_str() to get a C string in all cases.
 *   - sb->len never exceeds sb->max (when max != 0).  An append that would
 *     cross the cap, or an allocation failure, releases the buffer and
 *     returns -1 with errno set (E2BIG or ENOMEM): a failed buffer is empty,
 *     so callers have one cleanup path (curl's dynbuf does the same).
 *   - The buffer may contain NUL bytes; len is authoritative.
 *
 * Ownership: the strbuf owns buf.  sb_detach() hands it to the caller, who
 * frees it with free().
 */
#ifndef ORCHD_STRBUF_H
#define ORCHD_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
	size_t max; /* 0: no cap */
};

#define STRBUF_INIT           \
	{                     \
		NULL, 0, 0, 0 \
	}

void sb_init(struct strbuf *sb, size_t max);
void sb_release(struct strbuf *sb);
/* Empty the buffer but keep its memory. */
void sb_reset(struct strbuf *sb);
/* Make room for at least n more bytes. 0 or -1. */
int sb_grow(struct strbuf *sb, size_t n);
int sb_add(struct strbuf *sb, const void *data, size_t n);
int sb_addstr(struct strbuf *sb, const char *s);
int sb_addch(struct strbuf *sb, int c);
int sb_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (n <= len). */
void sb_consume(struct strbuf *sb, size_t n);
/* Truncate to len bytes (len <= sb->len). */
void sb_setlen(struct strbuf *sb, size_t len);
/* Always a valid C string, "" when empty. */
const char *sb_str(const struct strbuf *sb);
/* Hand over the malloc'ed string (never NULL: "" is allocated when empty)
 * and leave sb empty.  NULL only on allocation failure. */
char *sb_detach(struct strbuf *sb, size_t *len);

#endif
