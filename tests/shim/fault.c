/*
 * fault: an LD_PRELOAD shim that makes one chosen call of orchd's file
 * system writes fail, for the fault sweep of tests/test_faults.c (SQLite's
 * way: count the fault points of a run, then run it again once per point
 * with that point failing).  A real EIO or ENOSPC cannot be produced at an
 * arbitrary call site without a purpose-built file system, so this shim
 * simulates it: it is a test tool, the one allowed exception to "faults are
 * real", and is never linked into orchd.
 *
 *   ORCHD_FAULT_AT=N        the Nth counted call fails (1-based; 0 or unset:
 *                           none fails, the shim only counts)
 *   ORCHD_FAULT_ERRNO=E     EIO (default) or ENOSPC
 *   ORCHD_FAULT_PERSIST=1   every counted call from the Nth on fails (a disk
 *                           that stays full or broken), not only the Nth
 *   ORCHD_FAULT_COUNT=FILE  at exit, append "COUNT\n" to FILE: the number of
 *                           counted calls of the process (its fault points)
 *   ORCHD_FAULT_TRACE=FILE  append "N CALL TARGET[ FAILED]\n" per counted
 *                           call (to see which call a point is)
 *
 * Counted calls (the symbols orchd and the libraries it links call; glibc's
 * stdio and mkdtemp() reach the kernel through internal aliases, so those
 * are intercepted where they are the only way in):
 *
 *   write                        to a regular file
 *   fsync, fdatasync, syncfs     of a regular file or a directory
 *   rename, renameat, renameat2, link, linkat
 *   open, open64, openat, openat64 and their _FORTIFY_SOURCE __*_2 twins,
 *   creat, creat64               only when they may write: O_WRONLY, O_RDWR,
 *                                O_CREAT or O_TRUNC.  Read-only opens are not
 *                                fault points: they write nothing, and their
 *                                failures (a missing or unreadable file) are
 *                                the read path's business, tested elsewhere
 *   mkdir, mkdirat, mkdtemp
 *
 * Only the disk is faulted: descriptors and paths that are not regular
 * files or directories (pipes, terminals, sockets, /dev/null) and the
 * virtual file systems (/proc, /sys, cgroups, devpts) and memfds pass
 * through uncounted: orchd's console and protocol pipes are not storage.
 *
 * Only orchd's own process is counted and faulted: the first process that
 * loads the shim records its pid (and exports it as ORCHD_FAULT_OWNER);
 * every call in another process passes through: a forked child before its
 * exec (getpid() differs) and any program it execs that still has the shim
 * preloaded (ORCHD_FAULT_OWNER names another pid).  The counter is atomic:
 * orchd's state worker thread writes too.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define EXPORT __attribute__((visibility("default")))

static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_syncfs)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);
static int (*real_link)(const char *, const char *);
static int (*real_linkat)(int, const char *, int, const char *, int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_open_2)(const char *, int);
static int (*real_open64_2)(const char *, int);
static int (*real_openat_2)(int, const char *, int);
static int (*real_openat64_2)(int, const char *, int);
static int (*real_creat)(const char *, mode_t);
static int (*real_creat64)(const char *, mode_t);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_mkdirat)(int, const char *, mode_t);
static char *(*real_mkdtemp)(char *);

static pid_t owner;	   /* the process that is counted; 0: none */
static long long fault_at; /* 0: count only */
static int fault_errno = EIO;
static int persist;
static const char *count_file, *trace_file;
static unsigned long long calls; /* atomic */

#define REAL(name) real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name)

__attribute__((constructor)) static void fault_init(void)
{
	const char *v, *own;
	char buf[32];

	REAL(write);
	REAL(fsync);
	REAL(fdatasync);
	REAL(syncfs);
	REAL(rename);
	REAL(renameat);
	REAL(renameat2);
	REAL(link);
	REAL(linkat);
	REAL(open);
	REAL(open64);
	REAL(openat);
	REAL(openat64);
	real_open_2 = (__typeof__(real_open_2))dlsym(RTLD_NEXT, "__open_2");
	real_open64_2 = (__typeof__(real_open64_2))dlsym(RTLD_NEXT, "__open64_2");
	real_openat_2 = (__typeof__(real_openat_2))dlsym(RTLD_NEXT, "__openat_2");
	real_openat64_2 = (__typeof__(real_openat64_2))dlsym(RTLD_NEXT, "__openat64_2");
	REAL(creat);
	REAL(creat64);
	REAL(mkdir);
	REAL(mkdirat);
	REAL(mkdtemp);

	/* A program exec'ed by the counted process, with the shim still
	 * preloaded, is not counted. */
	own = getenv("ORCHD_FAULT_OWNER");
	snprintf(buf, sizeof(buf), "%ld", (long)getpid());
	if (own && *own && strcmp(own, buf))
		return;
	setenv("ORCHD_FAULT_OWNER", buf, 1);
	owner = getpid();
	v = getenv("ORCHD_FAULT_AT");
	fault_at = v && *v ? atoll(v) : 0;
	v = getenv("ORCHD_FAULT_ERRNO");
	if (v && !strcmp(v, "ENOSPC"))
		fault_errno = ENOSPC;
	v = getenv("ORCHD_FAULT_PERSIST");
	persist = v && *v == '1';
	v = getenv("ORCHD_FAULT_COUNT");
	count_file = v && *v ? strdup(v) : NULL;
	v = getenv("ORCHD_FAULT_TRACE");
	trace_file = v && *v ? strdup(v) : NULL;
}

static int counted_process(void)
{
	return owner && getpid() == owner;
}

static void append(const char *file, const char *text)
{
	int fd = real_open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return;
	if (real_write(fd, text, strlen(text)) < 0) {
		/* nothing to do: the test notices the missing line */
	}
	close(fd);
}

__attribute__((destructor)) static void fault_fini(void)
{
	char buf[32];

	if (!counted_process() || !count_file)
		return;
	snprintf(buf, sizeof(buf), "%llu\n", __atomic_load_n(&calls, __ATOMIC_SEQ_CST));
	append(count_file, buf);
}

/* Storage, not a virtual file system. */
static int real_fs(long type)
{
	return type != PROC_SUPER_MAGIC && type != SYSFS_MAGIC && type != CGROUP_SUPER_MAGIC &&
	       type != CGROUP2_SUPER_MAGIC && type != DEVPTS_SUPER_MAGIC;
}

static int disk_fd(int fd)
{
	struct stat st;
	struct statfs sf;
	int e = errno, ret;

	ret = !fstat(fd, &st) && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) &&
	      !fstatfs(fd, &sf) && real_fs((long)sf.f_type);
	if (ret && sf.f_type == TMPFS_MAGIC) {
		/* a memfd (the seccomp filter orchd builds) is memory, not disk */
		char proc[64], target[16];
		ssize_t n;

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		n = readlink(proc, target, sizeof(target));
		ret = !(n >= 7 && !memcmp(target, "/memfd:", 7));
	}
	errno = e;
	return ret;
}

/*
 * The path (relative to dirfd) names storage: an existing regular file or
 * directory on a real file system, or a name to be created in a directory
 * on one.
 */
static int disk_path_(int dirfd, const char *path)
{
	struct stat st;
	struct statfs sf;
	char *dir, *slash;
	int ret;

	if (!path)
		return 0;
	if (!fstatat(dirfd, path, &st, 0)) {
		if (!(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
			return 0;
	} else if (errno != ENOENT) {
		return 1;
	}
	/* The file system of the path's directory (the path may not exist). */
	dir = strdup(path);
	if (!dir)
		return 1;
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (path[0] != '/' && dirfd != AT_FDCWD && !slash)
		ret = fstatfs(dirfd, &sf);
	else if (path[0] != '/' && dirfd != AT_FDCWD)
		ret = -1; /* rare: relative to a dirfd with a subpath; count it */
	else
		ret = statfs(slash ? dir : ".", &sf);
	free(dir);
	return ret || real_fs((long)sf.f_type);
}

static int disk_path(int dirfd, const char *path)
{
	int e = errno, ret = disk_path_(dirfd, path);

	errno = e;
	return ret;
}

/* Count one call; 1 when this one must fail (errno is set). */
static int fault(const char *call, const char *target)
{
	unsigned long long n = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
	int fail = fault_at > 0 && (n == (unsigned long long)fault_at ||
				    (persist && n > (unsigned long long)fault_at));

	if (trace_file) {
		char line[600];

		snprintf(line, sizeof(line), "%llu %s %s%s\n", n, call, target ? target : "?",
			 fail ? " FAILED" : "");
		append(trace_file, line);
	}
	if (fail)
		errno = fault_errno;
	return fail;
}

static int fault_fd(const char *call, int fd)
{
	char proc[64], target[512];
	ssize_t n = -1;

	if (trace_file) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		n = readlink(proc, target, sizeof(target) - 1);
	}
	target[n > 0 ? n : 0] = '\0';
	return fault(call, n > 0 ? target : "?");
}

static int writing(int flags)
{
	return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0;
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	if (counted_process() && disk_fd(fd) && fault_fd("write", fd))
		return -1;
	return real_write(fd, buf, n);
}

#define SYNC_CALL(name)                                                      \
	EXPORT int name(int fd)                                              \
	{                                                                    \
		if (counted_process() && disk_fd(fd) && fault_fd(#name, fd)) \
			return -1;                                           \
		return real_##name(fd);                                      \
	}
SYNC_CALL(fsync)
SYNC_CALL(fdatasync)
SYNC_CALL(syncfs)

EXPORT int rename(const char *from, const char *to)
{
	if (counted_process() && disk_path(AT_FDCWD, from) && fault("rename", to))
		return -1;
	return real_rename(from, to);
}

EXPORT int renameat(int fd1, const char *from, int fd2, const char *to)
{
	if (counted_process() && disk_path(fd1, from) && fault("renameat", to))
		return -1;
	return real_renameat(fd1, from, fd2, to);
}

EXPORT int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned flags)
{
	if (counted_process() && disk_path(fd1, from) && fault("renameat2", to))
		return -1;
	return real_renameat2(fd1, from, fd2, to, flags);
}

EXPORT int link(const char *from, const char *to)
{
	if (counted_process() && disk_path(AT_FDCWD, from) && fault("link", to))
		return -1;
	return real_link(from, to);
}

EXPORT int linkat(int fd1, const char *from, int fd2, const char *to, int flags)
{
	if (counted_process() && disk_path(fd1, from) && fault("linkat", to))
		return -1;
	return real_linkat(fd1, from, fd2, to, flags);
}

static mode_t open_mode(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

#define OPEN_CALL(name)                                                                 \
	EXPORT int name(const char *path, int flags, ...)                               \
	{                                                                               \
		va_list ap;                                                             \
		mode_t mode;                                                            \
                                                                                        \
		va_start(ap, flags);                                                    \
		mode = open_mode(flags, ap);                                            \
		va_end(ap);                                                             \
		if (counted_process() && writing(flags) && disk_path(AT_FDCWD, path) && \
		    fault(#name, path))                                                 \
			return -1;                                                      \
		return real_##name(path, flags, mode);                                  \
	}
OPEN_CALL(open)
OPEN_CALL(open64)

#define OPENAT_CALL(name)                                                            \
	EXPORT int name(int dirfd, const char *path, int flags, ...)                 \
	{                                                                            \
		va_list ap;                                                          \
		mode_t mode;                                                         \
                                                                                     \
		va_start(ap, flags);                                                 \
		mode = open_mode(flags, ap);                                         \
		va_end(ap);                                                          \
		if (counted_process() && writing(flags) && disk_path(dirfd, path) && \
		    fault(#name, path))                                              \
			return -1;                                                   \
		return real_##name(dirfd, path, flags, mode);                        \
	}
OPENAT_CALL(openat)
OPENAT_CALL(openat64)

/* The _FORTIFY_SOURCE entry points (no mode: they refuse O_CREAT). */
EXPORT int __open_2(const char *path, int flags)
{
	if (counted_process() && writing(flags) && disk_path(AT_FDCWD, path) && fault("open", path))
		return -1;
	return real_open_2(path, flags);
}

EXPORT int __open64_2(const char *path, int flags)
{
	if (counted_process() && writing(flags) && disk_path(AT_FDCWD, path) &&
	    fault("open64", path))
		return -1;
	return real_open64_2(path, flags);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	if (counted_process() && writing(flags) && disk_path(dirfd, path) && fault("openat", path))
		return -1;
	return real_openat_2(dirfd, path, flags);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	if (counted_process() && writing(flags) && disk_path(dirfd, path) &&
	    fault("openat64", path))
		return -1;
	return real_openat64_2(dirfd, path, flags);
}

EXPORT int creat(const char *path, mode_t mode)
{
	if (counted_process() && disk_path(AT_FDCWD, path) && fault("creat", path))
		return -1;
	return real_creat(path, mode);
}

EXPORT int creat64(const char *path, mode_t mode)
{
	if (counted_process() && disk_path(AT_FDCWD, path) && fault("creat64", path))
		return -1;
	return real_creat64(path, mode);
}

EXPORT int mkdir(const char *path, mode_t mode)
{
	if (counted_process() && disk_path(AT_FDCWD, path) && fault("mkdir", path))
		return -1;
	return real_mkdir(path, mode);
}

EXPORT int mkdirat(int dirfd, const char *path, mode_t mode)
{
	if (counted_process() && disk_path(dirfd, path) && fault("mkdirat", path))
		return -1;
	return real_mkdirat(dirfd, path, mode);
}

/* glibc's mkdtemp() calls its internal mkdir: the workdirs are made here. */
EXPORT char *mkdtemp(char *tmpl)
{
	if (counted_process() && disk_path(AT_FDCWD, tmpl) && fault("mkdtemp", tmpl))
		return NULL;
	return real_mkdtemp(tmpl);
}
