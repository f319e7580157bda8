/*
 * enospc: an LD_PRELOAD shim that makes the disk "full", for the state
 * engine's fault tests (jq does the same).  A full disk cannot be produced
 * portably without mount privileges, so this simulates it.
 *
 *   ORCHD_ENOSPC_AFTER=N   write(2) to regular files succeeds for N bytes
 *                          in total (the last one partially), then fails
 *                          with ENOSPC, as do fsync(2) and fdatasync(2)
 *                          afterwards
 *   ORCHD_ENOSPC_FSYNC=1   fsync(2) and fdatasync(2) of regular files fail
 *                          with ENOSPC
 *                          (delayed allocation reporting late)
 *
 * Pipes, terminals and sockets are never affected.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

ssize_t write(int fd, const void *buf, size_t n);
int fsync(int fd);
int fdatasync(int fd);

static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static long long budget = -1; /* -1: unlimited */
static int fail_fsync;
static int inited;

static void shim_init(void)
{
	const char *v;

	if (inited)
		return;
	real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	v = getenv("ORCHD_ENOSPC_AFTER");
	if (v && *v)
		budget = atoll(v);
	v = getenv("ORCHD_ENOSPC_FSYNC");
	fail_fsync = v && *v == '1';
	inited = 1;
}

static int is_regular(int fd)
{
	struct stat st;

	return !fstat(fd, &st) && S_ISREG(st.st_mode);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	ssize_t r;

	shim_init();
	if (budget < 0 || !is_regular(fd))
		return real_write(fd, buf, n);
	if (budget == 0) {
		errno = ENOSPC;
		return -1;
	}
	if ((long long)n > budget)
		n = (size_t)budget;
	r = real_write(fd, buf, n);
	if (r > 0)
		budget -= r;
	return r;
}

/* fsync and fdatasync: the lost data is reported, to regular files only */
static int sync_with(int (*real)(int), int fd)
{
	shim_init();
	if ((fail_fsync || budget == 0) && is_regular(fd)) {
		errno = ENOSPC;
		return -1;
	}
	return real(fd);
}

int fsync(int fd)
{
	shim_init();
	return sync_with(real_fsync, fd);
}

int fdatasync(int fd)
{
	shim_init();
	return sync_with(real_fdatasync, fd);
}
