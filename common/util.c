#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "orchd_protocol.h"

static const char *progname = "orchd";

void set_progname(const char *name)
{
	progname = name;
}

const char *get_progname(void)
{
	return progname;
}

__attribute__((format(printf, 2, 0))) static void vreport(const char *kind, const char *fmt,
							  va_list ap)
{
	char msg[4096];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	fprintf(stderr, "%s: %s: %s\n", progname, kind, msg);
}

int error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("error", fmt, ap);
	va_end(ap);
	return -1;
}

void warning(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("warning", fmt, ap);
	va_end(ap);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("fatal", fmt, ap);
	va_end(ap);
	exit(ORCHD_EXIT_SYSTEM);
}

int orchd_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory allocating %zu bytes", n);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (!p)
		die("out of memory allocating %zu x %zu bytes", nmemb, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		die("out of memory allocating %zu bytes", n);
	return q;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		die("out of memory");
	return p;
}

char *xstrdup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (!p)
		die("out of memory");
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("out of memory");
	return p;
}

long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *orchd_buf_str(const struct op_buf *b)
{
	if (op_buf_failed(b))
		die("%s",
		    b->err == ENOMEM ? "out of memory" : "internal error: a buffer overflowed");
	return op_buf_str(b);
}

/* FNV-1a */
static size_t map_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return (size_t)(h ^ (h >> 29));
}

static struct orchd_map_slot *map_find(const struct orchd_map *m, const char *key, size_t h)
{
	size_t i = h & (m->cap - 1);

	for (;; i = (i + 1) & (m->cap - 1)) {
		struct orchd_map_slot *s = &m->slot[i];

		if (!s->key || (s->hash == h && !strcmp(s->key, key)))
			return s;
	}
}

size_t *orchd_map_get(const struct orchd_map *m, const char *key)
{
	struct orchd_map_slot *s;

	if (!m->cap)
		return NULL;
	s = map_find(m, key, map_hash(key));
	return s->key ? &s->val : NULL;
}

size_t *orchd_map_put(struct orchd_map *m, const char *key, size_t val, int *added)
{
	size_t h = map_hash(key);
	struct orchd_map_slot *s;

	if ((m->n + 1) * 4 > m->cap * 3) {
		/* at most 3/4 full, so that a probe always ends */
		struct orchd_map old = *m;

		m->cap = old.cap ? old.cap * 2 : 16;
		m->slot = xcalloc(m->cap, sizeof(*m->slot));
		for (size_t i = 0; i < old.cap; i++)
			if (old.slot[i].key)
				*map_find(m, old.slot[i].key, old.slot[i].hash) = old.slot[i];
		free(old.slot);
	}
	s = map_find(m, key, h);
	if (added)
		*added = !s->key;
	if (!s->key) {
		s->key = key;
		s->hash = h;
		s->val = val;
		m->n++;
	}
	return &s->val;
}

void orchd_map_release(struct orchd_map *m)
{
	free(m->slot);
	m->slot = NULL;
	m->cap = m->n = 0;
}

char *orchd_libexec_path(const char *rel)
{
	char self[PATH_MAX], *path;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			path = xasprintf("%s/../libexec/orchd/%s", self, rel);
			if (!access(path, X_OK))
				return path;
			free(path);
		}
	}
	path = xasprintf("%s/libexec/orchd/%s", ORCHD_PREFIX, rel);
	if (!access(path, X_OK))
		return path;
	free(path);
	return NULL;
}

void orchd_buf_json_str(struct op_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, plain;

	op_buf_addch(b, '"');
	while (i < len) {
		for (plain = i; plain < len; plain++) {
			unsigned char c = (unsigned char)s[plain];

			if (c < 0x20 || c == '"' || c == '\\')
				break;
		}
		op_buf_add(b, s + i, plain - i);
		if (plain == len)
			break;
		{
			unsigned char c = (unsigned char)s[plain];
			char esc[6] = {'\\', (char)c, 0, 0, 0, 0};

			if (c < 0x20) {
				memcpy(esc + 1, "u00", 3);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				op_buf_add(b, esc, 6);
			} else {
				op_buf_add(b, esc, 2);
			}
		}
		i = plain + 1;
	}
	op_buf_addch(b, '"');
}

size_t orchd_utf8_len(const unsigned char *p, size_t avail)
{
	unsigned c = p[0];
	size_t n;
	unsigned long cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (avail < n)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[k] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int orchd_read_fd(int fd, struct op_buf *b)
{
	char chunk[65536];

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n > 0 && op_buf_add(b, chunk, (size_t)n) < 0))
			return -1;
		if (!n)
			return 0;
	}
}

int orchd_read_file(const char *path, struct op_buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret, e;

	if (fd < 0)
		return -1;
	ret = orchd_read_fd(fd, b);
	e = errno;
	close(fd);
	errno = e;
	return ret;
}

int orchd_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int e;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return e;
}
