/*
 * fs: filesystem helpers shared by orchd and C extensions (op_rmtree).
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

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
