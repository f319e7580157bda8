/*
 * util: process-wide helpers shared by orchd and its tests.
 *
 * Error convention (as in git): library code reports with error(), which
 * prints "PROG: error: MESSAGE" on stderr and returns -1, so that a caller
 * writes `return error("cannot open %s: %s", path, strerror(errno));`.
 * Messages are lowercase and carry no final full stop.  die() is for the
 * top level only (main and allocation failure).
 *
 * x*alloc() never return NULL: on exhaustion they die with ORCHD_EXIT_SYSTEM.
 */
#ifndef ORCHD_UTIL_H
#define ORCHD_UTIL_H

#include <pthread.h>
#include <stddef.h>

/* Exit codes, documented in README.md and `orchd --help`. */
enum orchd_exit {
	ORCHD_EXIT_OK = 0,
	ORCHD_EXIT_FAILED = 1,	  /* a step (instance) failed */
	ORCHD_EXIT_USAGE = 2,	  /* usage or configuration error */
	ORCHD_EXIT_SYSTEM = 3,	  /* system or state error: I/O, lock timeout */
	ORCHD_EXIT_SIGINT = 130,  /* interrupted by SIGINT */
	ORCHD_EXIT_SIGTERM = 143, /* interrupted by SIGTERM */
};

/* Program name used as message prefix; defaults to "orchd". */
void set_progname(const char *name);
const char *get_progname(void);

int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Library-style error into a caller buffer (redis's anetSetError): format
 * into err[errlen] when err is not NULL, and return -1. */
int orchd_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* xstrdup(s), or NULL when s is NULL. */
char *xstrdup_or_null(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Grow an array so that it holds at least nr elements. */
#define ALLOC_GROW(x, nr, alloc)                                     \
	do {                                                         \
		if ((nr) > (alloc)) {                                \
			(alloc) = (alloc) < 8 ? 8 : (alloc)*2;       \
			if ((alloc) < (nr))                          \
				(alloc) = (nr);                      \
			(x) = xrealloc((x), (alloc) * sizeof(*(x))); \
		}                                                    \
	} while (0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * The content of a buffer the core built (struct op_buf, the protocol
 * library's): the core treats a failed append as it treats a failed
 * malloc, and dies ("out of memory"), so a failed buffer's empty content
 * is never taken for a value.  Capped buffers whose overflow is an input
 * error check op_buf_failed() themselves first.
 */
struct op_buf;
const char *orchd_buf_str(const struct op_buf *b);
/* Append s[0..len) to b as a JSON string: quotes, and \" \\ and \u00XX for
 * the control characters (NUL included); other bytes are copied as they
 * are, so s must be valid UTF-8 for the result to be valid JSON. */
void orchd_buf_json_str(struct op_buf *b, const char *s, size_t len);

/*
 * A map from C strings to size_t: open addressing, for the loader's tables
 * of ids, names and stacks (tens of thousands of keys, where a json-c
 * object per table costs a node, a strdup and a bucket per key).  Keys are
 * borrowed: they must outlive the map and not change.  Zero-initialised
 * (ORCHD_MAP_INIT) is an empty map.
 */
struct orchd_map {
	struct orchd_map_slot {
		const char *key; /* NULL: free */
		size_t hash;
		size_t val;
	} * slot;
	size_t cap, n; /* cap: 0 or a power of two */
};
#define ORCHD_MAP_INIT     \
	{                  \
		NULL, 0, 0 \
	}
/* The value of key, or NULL. */
size_t *orchd_map_get(const struct orchd_map *m, const char *key);
/* The value of key, added with val if it was not there (*added set). */
size_t *orchd_map_put(struct orchd_map *m, const char *key, size_t val, int *added);
void orchd_map_release(struct orchd_map *m);

/* A program or directory of orchd's libexec: REL under ../libexec/orchd
 * beside this executable (an install, or the build tree), else under
 * PREFIX/libexec/orchd; malloc'ed, or NULL when neither is accessible
 * (X_OK). */
char *orchd_libexec_path(const char *rel);

/* Monotonic clock in milliseconds. */
long long now_ms(void);

/* Append the whole file at path (or what is left to read of fd) to b,
 * whose max applies: 0, or -1 with errno (E2BIG: larger than b's max). */
int orchd_read_file(const char *path, struct op_buf *b);
int orchd_read_fd(int fd, struct op_buf *b);

/*
 * The length (1..4) of the well-formed UTF-8 sequence at p[0..avail), or 0
 * when there is none (a stray continuation byte, a truncated or overlong
 * sequence, a surrogate, past U+10FFFF).  p[0] must not be NUL.
 */
size_t orchd_utf8_len(const unsigned char *p, size_t avail);

/*
 * pthread_create() for a helper thread that must never take a signal: it
 * starts with every signal blocked, so that SIGCHLD, SIGINT and SIGTERM
 * reach the supervisor's signalfd and no other thread (a thread with
 * SIGCHLD unblocked swallows it: the default action is to discard it).
 * The caller's mask is unchanged.  Returns pthread_create()'s value.
 */
int orchd_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
