/*
 * nosync: an LD_PRELOAD shim that makes fsync(2), fdatasync(2) and
 * syncfs(2) return at once (as eatmydata does), for the kill -9 tests of
 * the state engine (tests/test_state.c).
 *
 * Those tests kill a writer at random moments and count how often the kill
 * landed inside a write.  On a slow disk nearly all of a write's time is
 * spent waiting in fdatasync, so nearly every kill lands there and the
 * tests cannot gather their torn writes.  A kill -9 does not lose the page
 * cache, so what a killed process leaves on disk does not depend on its
 * syncs: without them the same files are left, only sooner.  Power loss is
 * another fault, which these tests do not claim to cover.
 *
 * The fd is still checked, so a bad fd fails with EBADF as it would.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);
int syncfs(int fd);

static int nosync(int fd)
{
	return fcntl(fd, F_GETFD) < 0 ? -1 : 0;
}

int fsync(int fd)
{
	return nosync(fd);
}

int fdatasync(int fd)
{
	return nosync(fd);
}

int syncfs(int fd)
{
	return nosync(fd);
}
