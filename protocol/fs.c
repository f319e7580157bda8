/*
 * fs: filesystem helpers shared by orchd and C extensions (op_rmtree,
 * op_write_file, op_write_json_file, and the files of PROTOCOL.md §4.1:
 * op_write_value_file, op_read_value_file).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"

/* The errno of the first entry that could not be removed (per thread:
 * nftw's callback has no user pointer). */
static __thread int rm_first_err;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	int r;

	(void)st;
	(void)ftw;
	if (flag == FTW_DNR || flag == FTW_NS) {
		/* unreadable directory or entry: try to remove it anyway */
		r = remove(path);
	} else {
		r = flag == FTW_DP ? rmdir(path) : unlink(path);
	}
	if (r < 0 && errno != ENOENT && !rm_first_err)
		rm_first_err = errno;
	return 0; /* go on: remove as much as possible */
}

int op_rmtree(const char *path)
{
	struct stat st;
	int r;

	if (!path || !*path) {
		errno = EINVAL;
		return -1;
	}
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
	rm_first_err = 0;
	/* depth first, never following a symlink, never leaving the
	 * filesystem path is on (a mount inside stays, and so does its
	 * parent: an error) */
	r = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (r < 0 && !rm_first_err)
		rm_first_err = errno;
	if (rm_first_err) {
		errno = rm_first_err;
		return -1;
	}
	return 0;
}

/* Write a[0..alen) then b[0..blen) to path (see op_write_file). */
static int write_parts(const char *path, const void *a, size_t alen, const void *b, size_t blen,
		       char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), e;

	if (fd >= 0 && op_write_all(fd, a, alen) == 0 && op_write_all(fd, b, blen) == 0) {
		if (close(fd) == 0)
			return 0;
		fd = -1;
	}
	e = errno;
	if (fd >= 0)
		close(fd);
	snprintf(err, errlen, "cannot write '%s': %s", path, strerror(e));
	errno = e;
	return -1;
}

int op_write_file(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
	return write_parts(path, data, len, NULL, 0, err, errlen);
}

/* v's JSON text with flags (json-c keeps it until v changes); NULL on ENOMEM. */
static const char *json_text(const struct json_object *v, int flags, size_t *n)
{
	/* json-c takes a non-const object for a read-only operation */
	struct json_object *o = (struct json_object *)(uintptr_t)v;

	if (!o) {
		*n = 4;
		return "null";
	}
	return json_object_to_json_string_length(o, flags | JSON_C_TO_STRING_NOSLASHESCAPE, n);
}

int op_write_value_file(const char *path, const struct json_object *v, char *err, size_t errlen)
{
	size_t n = 0;
	const char *s = json_text(v, JSON_C_TO_STRING_PLAIN, &n);

	if (!s) {
		snprintf(err, errlen, "cannot write '%s': %s", path, strerror(ENOMEM));
		errno = ENOMEM;
		return -1;
	}
	return write_parts(path, s, n, "\n", 1, err, errlen);
}

/* Open path beneath the directory dirfd one component at a time, following
 * no symbolic link (path is plain: see op_path_is_plain).  An fd, or -1. */
static int open_beneath(int dirfd, const char *path)
{
	int fd = dup(dirfd);

	for (const char *s = path; fd >= 0;) {
		size_t len = strcspn(s, "/");
		char name[NAME_MAX + 1];
		int next, last = !s[len];

		if (len > NAME_MAX) {
			close(fd);
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(name, s, len);
		name[len] = '\0';
		/* O_NONBLOCK: a FIFO must not block the reader */
		next = openat(fd, name,
			      O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
				      (last ? O_NONBLOCK : O_DIRECTORY));
		if (next < 0 && errno == ENOTDIR) {
			/* O_DIRECTORY|O_NOFOLLOW on a link says ENOTDIR: say it */
			struct stat st;

			if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
				errno = ELOOP;
			else
				errno = ENOTDIR;
		}
		close(fd);
		fd = next;
		if (last)
			break;
		s += len + 1;
	}
	return fd;
}

/* A bound on the JSON values in s[0..len), without parsing: one more than
 * the ',', '[' and '{' outside strings (each value costs a parser an
 * object; this keeps a small file of "1,1,1,..." from costing gigabytes). */
static size_t count_values(const char *s, size_t len)
{
	size_t n = 1;
	int in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == ',' || c == '[' || c == '{') {
			n++;
		}
	}
	return n;
}

int op_read_value_file(const char *dir, const char *path, size_t max, struct json_object **out,
		       char *err, size_t errlen)
{
	struct op_buf b;
	struct stat st;
	char perr[OP_ERRMAX], buf[65536];
	int fd, e;
	ssize_t n;

	*out = NULL;
	if (dir && !op_path_is_plain(path)) {
		snprintf(err, errlen, "cannot read '%s': not a relative path inside the workdir",
			 path);
		errno = EINVAL;
		return -1;
	}
	if (dir) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		fd = dfd < 0 ? -1 : open_beneath(dfd, path);
		e = errno;
		if (dfd >= 0)
			close(dfd);
		errno = e;
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	}
	if (fd < 0) {
		e = errno;
		snprintf(err, errlen, "cannot read '%s': %s", path,
			 e == ELOOP ? "it is (or goes through) a symbolic link" : strerror(e));
		errno = e;
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "'%s' is not a regular file", path);
		errno = EINVAL;
		return -1;
	}
	if ((unsigned long long)st.st_size > max) {
		close(fd);
		snprintf(err, errlen, "'%s' is larger than %zu bytes (%lld)", path, max,
			 (long long)st.st_size);
		errno = EFBIG;
		return -1;
	}
	op_buf_init(&b, max);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || op_buf_add(&b, buf, (size_t)n)) {
			e = n < 0 ? errno : b.err;
			close(fd);
			op_buf_release(&b);
			snprintf(err, errlen, "cannot read '%s': %s", path,
				 e == E2BIG ? "it grew past the limit" : strerror(e));
			errno = e;
			return -1;
		}
	}
	close(fd);
	if (count_values(b.buf ? b.buf : "", b.len) > OP_MAX_FILE_VALUES) {
		op_buf_release(&b);
		snprintf(err, errlen, "'%s' holds more than %d JSON values", path,
			 OP_MAX_FILE_VALUES);
		errno = E2BIG;
		return -1;
	}
	if (op_parse_value(b.buf ? b.buf : "", b.len, out, perr, sizeof(perr)) < 0) {
		op_buf_release(&b);
		snprintf(err, errlen, "'%s': %s", path, perr);
		errno = EINVAL;
		return -1;
	}
	op_buf_release(&b);
	return 0;
}

int op_write_json_file(const char *path, const struct json_object *v, char *err, size_t errlen)
{
	size_t n = 0;
	const char *s = json_text(v, JSON_C_TO_STRING_PRETTY, &n);

	if (!s) {
		snprintf(err, errlen, "cannot write '%s': %s", path, strerror(ENOMEM));
		errno = ENOMEM;
		return -1;
	}
	return write_parts(path, s, n, "\n", 1, err, errlen);
}
