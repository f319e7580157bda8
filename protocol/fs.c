/*
 * fs: filesystem helpers shared by orchd and C extensions (op_rmtree,
 * op_write_file, op_write_json_file).
 */
#include <errno.h>
#include <fcntl.h>
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

int op_write_json_file(const char *path, const struct json_object *v, char *err, size_t errlen)
{
	/* json-c takes a non-const object for a read-only operation */
	struct json_object *o = (struct json_object *)(uintptr_t)v;
	size_t n = 0;
	const char *s = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &n);

	if (!s) {
		snprintf(err, errlen, "cannot write '%s': %s", path, strerror(ENOMEM));
		errno = ENOMEM;
		return -1;
	}
	return write_parts(path, s, n, "\n", 1, err, errlen);
}
