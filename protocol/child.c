/*
 * child: the one child-process API (op_child_*, see "Child processes" in
 * orchd_protocol.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchd_protocol.h"

/* What travels over the report pipe. */
enum report_type {
	REPORT_FAILED = 1, /* stage, err: the program did not start */
	REPORT_STARTED,	   /* (reaper) the program's exec worked */
	REPORT_EXITED,	   /* (reaper) status: the program's wait status */
	REPORT_READY,	   /* (non-dumpable parent) the parent may run its hook */
};

struct report {
	int type;
	int stage; /* enum op_child_stage */
	int err;
	int status;
	/* REPORT_EXITED: the rusage of the program and of everything it
	 * started (the reaper's children), not the reaper's own: its memory
	 * high-water mark is the parent's (a fork's copy, or the parent's
	 * address space it borrowed until its exec) */
	struct rusage ru;
};

/* Everything the child needs, prepared before fork. */
struct plan {
	const struct op_child *c;
	const char *const *envp;
	const char *path;    /* PATH of envp, for OP_CHILD_PATH */
	const char **shargv; /* "/bin/sh", FILE, argv[1..], NULL (OP_CHILD_SHELL) */
	int fd[3];	     /* what becomes the child's 0, 1, 2 */
	int report;	     /* write end of the report pipe */
	int sync;	     /* read end of the go-ahead pipe, or -1 */
	int sync_w;	     /* its write end (the parent's: closed in the child) */
	int dumpable_hook;   /* the parent is not dumpable: see child() */
	pid_t parent;
};

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* A close-on-exec pipe whose ends are above 2, so that dup2() onto the
 * standard fds in the child never clobbers one of them. */
static int make_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		if (p[i] > 2)
			continue;
		int nfd = fcntl(p[i], F_DUPFD_CLOEXEC, 3);

		close(p[i]);
		p[i] = nfd;
	}
	if (p[0] < 0 || p[1] < 0) {
		int e = errno;

		close_fd(&p[0]);
		close_fd(&p[1]);
		errno = e;
		return -1;
	}
	return 0;
}

static const char *env_path(const char *const *envp)
{
	for (size_t i = 0; envp && envp[i]; i++)
		if (!strncmp(envp[i], "PATH=", 5))
			return envp[i] + 5;
	return "/bin:/usr/bin";
}

/* --- in the child: async-signal-safe only ---------------------------------- */

static void send_report(int fd, const struct report *r)
{
	while (write(fd, r, sizeof(*r)) < 0 && errno == EINTR)
		;
}

/* execve, and /bin/sh for ENOEXEC when asked (as execvp); returns errno. */
static int try_exec(const struct plan *p, const char *file)
{
	execve(file, (char *const *)(uintptr_t)p->c->argv, (char *const *)(uintptr_t)p->envp);
	if (errno == ENOEXEC && p->shargv) {
		p->shargv[1] = file;
		execve("/bin/sh", (char *const *)(void *)p->shargv,
		       (char *const *)(uintptr_t)p->envp);
		errno = ENOEXEC;
	}
	return errno;
}

static int is_search_miss(int err)
{
	return err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV ||
	       err == ETIMEDOUT;
}

/* execvp's search of argv[0] on PATH, with a stack buffer; returns errno. */
static int search_exec(const struct plan *p)
{
	const char *name = p->c->argv[0], *dir = p->path;
	size_t flen = strlen(name);
	int eacces = 0, err = ENOENT;

	for (;;) {
		const char *end = strchr(dir, ':');
		size_t dlen = end ? (size_t)(end - dir) : strlen(dir);
		char file[PATH_MAX];

		if (dlen + flen + 2 <= sizeof(file)) {
			if (dlen) {
				memcpy(file, dir, dlen);
				file[dlen] = '/';
				memcpy(file + dlen + 1, name, flen + 1);
			} else {
				memcpy(file, name, flen + 1);
			}
			err = try_exec(p, file);
			if (err == EACCES)
				eacces = 1;
			else if (!is_search_miss(err))
				return err;
		}
		if (!end)
			break;
		dir = end + 1;
	}
	return eacces && is_search_miss(err) ? EACCES : err;
}

static _Noreturn void child_fail(int report, enum op_child_stage stage, int err)
{
	struct report r = {REPORT_FAILED, (int)stage, err, 0};

	send_report(report, &r);
#ifdef SYS_close_range
	/* (only tidy: what a fork that never execs holds of its parent's) */
	syscall(SYS_close_range, 3U, ~0U, 0U);
#endif
	_exit(127);
}

/* The program's own part: chdir, the last hook, exec.  Reports failures
 * on report. */
static _Noreturn void run_program(const struct plan *p, int report)
{
	const struct op_child *c = p->c;

	if (c->cwd && chdir(c->cwd) < 0)
		child_fail(report, OP_CHILD_CHDIR, errno);
	if (c->exec_setup && c->exec_setup(c->setup_arg) < 0)
		child_fail(report, OP_CHILD_SETUP, errno);
	if ((c->flags & OP_CHILD_PATH) && !strchr(c->argv[0], '/'))
		child_fail(report, OP_CHILD_EXEC, search_exec(p));
	child_fail(report, OP_CHILD_EXEC, try_exec(p, c->argv[0]));
}

/* Close every descriptor but a and b. */
static void close_all_but(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

#ifdef SYS_close_range
	if ((lo == 0 || syscall(SYS_close_range, 0U, (unsigned)lo - 1, 0U) == 0) &&
	    (hi == lo + 1 ||
	     syscall(SYS_close_range, (unsigned)lo + 1, (unsigned)hi - 1, 0U) == 0) &&
	    syscall(SYS_close_range, (unsigned)hi + 1, ~0U, 0U) == 0)
		return;
#endif
	for (int fd = 0; fd < 65536; fd++)
		if (fd != a && fd != b)
			close(fd);
}

/* The reaper's program, for the signal forwarder (0: none yet). */
static volatile sig_atomic_t reaped_program;
/* OP_CHILD_KILL_ALL received, the parent died, its grace ran out. */
static volatile sig_atomic_t kill_all_asked, parent_died, grace_over;

static void forward_signal(int sig)
{
	if (reaped_program > 0)
		kill(-(pid_t)reaped_program, sig);
}

static void on_kill_all(int sig)
{
	(void)sig;
	kill_all_asked = 1;
}

static void on_parent_death(int sig)
{
	(void)sig;
	parent_died = 1;
}

static void on_alarm(int sig)
{
	(void)sig;
	grace_over = 1;
}

/* kill_children() without /proc/PID/task/TID/children (a kernel without
 * CONFIG_PROC_CHILDREN): every process whose parent we are, from its stat. */
static int kill_children_scan(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t me = getpid();
	int any = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[300], buf[512], *rp;
		long ppid;
		ssize_t n;
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* "pid (comm) state ppid ...": comm may hold anything */
		rp = strrchr(buf, ')');
		if (rp && sscanf(rp + 1, " %*c %ld", &ppid) == 1 && ppid == me) {
			kill((pid_t)atol(de->d_name), SIGKILL);
			any = 1;
		}
	}
	closedir(d);
	return any;
}

/* SIGKILL each child of ours (an orphan of the program's lands here: we
 * are its subreaper); 1 when there was one. */
static int kill_children(void)
{
	char path[64], buf[4096];
	int fd, any = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kill_children_scan();
	while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		char *q = buf, *end;

		buf[n] = '\0';
		for (long v = strtol(q, &end, 10); end != q; v = strtol(q, &end, 10)) {
			if (v > 0) {
				kill((pid_t)v, SIGKILL);
				any = 1;
			}
			q = end;
		}
	}
	close(fd);
	return any;
}

/* Nothing the program started outlives it: SIGKILL its group, then every
 * descendant, as each orphan comes to us, until we have no child left. */
static void kill_leftovers(pid_t program)
{
	kill(-program, SIGKILL);
	for (;;) {
		pid_t w;

		kill_children();
		w = waitpid(-1, NULL, __WALL);
		if (w < 0 && errno == ECHILD)
			return;
	}
}

/*
 * OP_CHILD_REAPER: fork the program, report its exec and its exit, reap
 * whatever else ends up here, exit when the program has exited, leaving
 * nothing behind: every process the program started is killed then (a
 * daemon, a setsid grandchild, one holding /dev/null).  Signals:
 * SIGTERM, SIGINT, SIGHUP and SIGQUIT are forwarded to the program's group;
 * OP_CHILD_KILL_ALL (SIGUSR1) kills the program and everything it started
 * at once.  When the parent dies, the program gets SIGTERM, and everything
 * is killed OP_CHILD_ORPHAN_GRACE seconds later.
 */
/*
 * The reaper's program process.  vfork: it borrows the reaper's memory
 * until its exec instead of copying the page tables of the whole parent
 * the reaper is a copy of (orchd: tens of MiB mapped), the main cost of a
 * spawn.  Not glibc's fork() either way: it takes the malloc locks, which
 * another thread of the parent may have held when the reaper was cloned.
 * Until its exec the child makes only async-signal-safe calls, on its own
 * fds and signal dispositions (vfork shares neither), and leaves only by
 * exec or _exit.  A function of its own: no local of the reaper's can be
 * clobbered.
 */
static __attribute__((noinline)) pid_t start_program(const struct plan *p, const int prep[2])
{
	pid_t pid = vfork();

	if (pid == 0) {
		close(prep[0]);
		close(p->report);
		setpgid(0, 0);
		/* if we die (SIGKILL), so does it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		run_program(p, prep[1]);
	}
	return pid;
}

static _Noreturn void reaper(const struct plan *p)
{
	static const int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
	struct report r = {0, 0, 0, 0};
	struct sigaction sa;
	int prep[2], st = 0, killed = 0, termed = 0;
	pid_t pid, w;
	ssize_t n;

	/* the program's own exec report comes back to us first */
	if (make_pipe(prep) < 0)
		child_fail(p->report, OP_CHILD_FDS, errno);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pid = start_program(p, prep);
	if (pid < 0)
		child_fail(p->report, OP_CHILD_FDS, errno);
	setpgid(pid, pid);
	reaped_program = pid;
	close(prep[1]);
	/* The program holds the pipes: ours would keep them open, and so
	 * would every other descriptor of the parent's we were cloned with
	 * (its ends of its other children's pipes, its lock): we never exec,
	 * so close-on-exec does not apply.  Keep the two reports only. */
	close_all_but(prep[0], p->report);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
		sigaction(fwd[i], &sa, NULL);
	/* these interrupt the wait below */
	sa.sa_flags = 0;
	sa.sa_handler = on_kill_all;
	sigaction(OP_CHILD_KILL_ALL, &sa, NULL);
	sa.sa_handler = on_parent_death;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGUSR2);
	{
		/* gone before the prctl?  (0: the parent is outside our PID
		 * namespace, where we cannot tell; its death still signals) */
		pid_t pp = getppid();

		if (pp != 0 && pp != p->parent)
			parent_died = 1;
	}
	do
		n = read(prep[0], &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	close(prep[0]);
	if (n == (ssize_t)sizeof(r)) {
		send_report(p->report, &r);
		close(p->report);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		_exit(127);
	}
	r.type = REPORT_STARTED;
	send_report(p->report, &r);
	for (;;) {
		if (parent_died && !termed) {
			termed = 1;
			kill(-pid, SIGTERM);
			alarm(OP_CHILD_ORPHAN_GRACE);
		}
		if ((kill_all_asked || grace_over) && !killed) {
			killed = 1;
			kill(-pid, SIGKILL);
			kill_children();
		}
		w = waitpid(-1, &st, 0);
		if (w < 0 && errno == EINTR)
			continue;
		if (w == pid || w < 0)
			break;
	}
	r.type = REPORT_EXITED;
	r.status = w == pid ? st : 0;
	kill_leftovers(pid);
	getrusage(RUSAGE_CHILDREN, &r.ru);
	send_report(p->report, &r);
	close(p->report);
	_exit(0);
}

static _Noreturn void child(const struct plan *p)
{
	const struct op_child *c = p->c;
	struct sigaction dfl;
	sigset_t none;
	static const int sigs[] = {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGCHLD};

	if (c->flags & OP_CHILD_PGROUP)
		setpgid(0, 0);
	if (c->flags & OP_CHILD_PDEATHSIG)
		prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (p->sync >= 0) {
		/* the parent's go-ahead (EOF: it failed, or died) */
		char go = 0;
		ssize_t n;

		if (p->sync_w >= 0)
			close(p->sync_w); /* else our own copy would keep EOF away */
		if (p->dumpable_hook) {
			/* A non-dumpable parent's children are too, and their
			 * /proc files belong to root: the parent's hook could
			 * not write our uid_map.  Dumpable while it runs (no
			 * sibling can see us in a new PID namespace), then not
			 * again: until exec, this is a copy of its memory. */
			struct report r = {REPORT_READY, 0, 0, 0};

			prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
			send_report(p->report, &r);
		}
		do
			n = read(p->sync, &go, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			_exit(126);
		close(p->sync);
		if (p->dumpable_hook)
			prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	} else if ((c->flags & OP_CHILD_PDEATHSIG) && getppid() != p->parent) {
		_exit(126); /* the parent died before prctl */
	}
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, c->sigmask ? c->sigmask : &none, NULL);
	if (c->nofile)
		setrlimit(RLIMIT_NOFILE, c->nofile);
	for (int i = 0; i < 3; i++)
		if (p->fd[i] >= 0 && p->fd[i] != i && dup2(p->fd[i], i) < 0)
			child_fail(p->report, OP_CHILD_FDS, errno);
			/* Whatever leaked without O_CLOEXEC stops here (the report pipe is
	 * close-on-exec already). */
#ifdef SYS_close_range
	syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
#endif
	if (c->setup && c->setup(c->setup_arg) < 0)
		child_fail(p->report, OP_CHILD_SETUP, errno);
	if (c->flags & OP_CHILD_REAPER)
		reaper(p);
	run_program(p, p->report);
}

/* --- a reaper program (->reaper_exe) --------------------------------------- */

/*
 * The plan a reaper program reads on fd 5: "orchd-reaper-plan 1\n", then
 * native-endian u32 fields and length-prefixed byte strings (the reader is
 * this library, in a program of the same build): flags, parent, the
 * dumpable handshake, the go-ahead, cwd, argv, env, sigmask, nofile, and
 * the caller's part.
 */
#define PLAN_MAGIC "orchd-reaper-plan 1\n"

void op_plan_put_u32(struct op_buf *b, uint32_t v)
{
	op_buf_add(b, &v, sizeof(v));
}

void op_plan_put_bytes(struct op_buf *b, const void *p, size_t n)
{
	op_plan_put_u32(b, (uint32_t)n);
	op_buf_add(b, p, n);
}

uint32_t op_plan_u32(struct op_plan_cursor *k)
{
	uint32_t v = 0;

	if (k->bad || k->end - k->p < (ptrdiff_t)sizeof(v)) {
		k->bad = 1;
		return 0;
	}
	memcpy(&v, k->p, sizeof(v));
	k->p += sizeof(v);
	return v;
}

const void *op_plan_bytes(struct op_plan_cursor *k, size_t *len)
{
	uint32_t n = op_plan_u32(k);
	const void *s = k->p;

	*len = 0;
	if (k->bad || (uint64_t)(k->end - k->p) < n) {
		k->bad = 1;
		return NULL;
	}
	k->p += n;
	*len = n;
	return s;
}

static void plan_strv(struct op_buf *b, const char *const *v)
{
	uint32_t n = 0;

	while (v && v[n])
		n++;
	op_plan_put_u32(b, n);
	for (uint32_t i = 0; i < n; i++)
		op_plan_put_bytes(b, v[i], strlen(v[i]));
}

/* The plan in a sealed memfd; its fd, or -1 with errno. */
static int plan_fd(const struct op_child *c, const struct plan *p)
{
	struct op_buf b = OP_BUF_INIT;
	int fd = -1;

	op_buf_addstr(&b, PLAN_MAGIC);
	op_plan_put_u32(&b, c->flags);
	op_plan_put_u32(&b, (uint32_t)p->parent);
	op_plan_put_u32(&b, (uint32_t)p->dumpable_hook);
	op_plan_put_u32(&b, p->sync >= 0);
	op_plan_put_u32(&b, c->cwd != NULL);
	op_plan_put_bytes(&b, c->cwd ? c->cwd : "", c->cwd ? strlen(c->cwd) : 0);
	plan_strv(&b, c->argv);
	plan_strv(&b, p->envp);
	op_plan_put_u32(&b, c->sigmask != NULL);
	if (c->sigmask)
		op_plan_put_bytes(&b, c->sigmask, sizeof(*c->sigmask));
	op_plan_put_u32(&b, c->nofile != NULL);
	if (c->nofile)
		op_plan_put_bytes(&b, c->nofile, sizeof(*c->nofile));
	op_plan_put_bytes(&b, c->reaper_plan, c->reaper_plan_len);
	if (op_buf_failed(&b)) {
		errno = b.err ? b.err : ENOMEM;
		op_buf_release(&b);
		return -1;
	}
	fd = (int)syscall(SYS_memfd_create, "orchd-reaper-plan", 1U /* MFD_CLOEXEC */);
	if (fd >= 0) {
		const char *q = b.buf;
		size_t left = b.len;

		while (left) {
			ssize_t n = write(fd, q, left);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				int e = n < 0 ? errno : EIO;

				close(fd);
				fd = -1;
				errno = e;
				break;
			}
			q += n;
			left -= (size_t)n;
		}
		if (fd >= 0 && lseek(fd, 0, SEEK_SET) < 0) {
			int e = errno;

			close(fd);
			fd = -1;
			errno = e;
		}
	}
	op_buf_release(&b);
	return fd;
}

/* What the clone child of spawn_exec() needs: fds above 9, close-on-exec. */
struct exec_args {
	const char *exe;
	int src[6]; /* what becomes its 0..5; -1: leave 0..2 as they are, close 4 */
	int userns; /* made in a new user namespace: keep its capabilities */
};

/*
 * A process made in a new user namespace has every capability there, but
 * an exec loses them unless its uid there is 0, and its uid is not even
 * mapped yet (orchd writes the map after the exec): the capabilities are
 * made inheritable and ambient, which an exec keeps.  They are of the new
 * namespace only, as the fork's were, and the program gets none: the
 * sandbox drops every set, ambient included, before the program's exec.
 */
__attribute__((no_sanitize("address", "undefined"))) static void keep_caps(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data) < 0)
		return;
	data[0].inheritable = data[0].permitted;
	data[1].inheritable = data[1].permitted;
	if (syscall(SYS_capset, &hdr, data) < 0)
		return;
	for (int cap = 0; cap < 64; cap++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0 && errno == EINVAL)
			break;
}

/*
 * The clone child: it shares the caller's memory (CLONE_VM) while the
 * caller waits (CLONE_VFORK), with every signal blocked.  It only moves
 * fds and execs; on failure it reports on the report pipe and exits.
 */
__attribute__((no_sanitize("address", "undefined"))) static int exec_child(void *arg)
{
	const struct exec_args *a = arg;
	char *const argv[] = {(char *)(uintptr_t) "orchd-reaper", NULL};
	char *const envp[] = {NULL};
	struct report r = {REPORT_FAILED, (int)OP_CHILD_SPAWN, 0, 0};

	for (int i = 0; i < 6; i++) {
		if (a->src[i] >= 0) {
			if (dup2(a->src[i], i) < 0)
				goto fail;
		} else if (i >= 3) {
			close(i);
		}
	}
	if (a->userns)
		keep_caps();
	execve(a->exe, argv, envp);
fail:
	r.err = errno;
	while (write(3, &r, sizeof(r)) < 0 && errno == EINTR)
		;
	_exit(127);
}

#define EXEC_STACK (256 * 1024)

/* Make the child with clone(CLONE_VM|CLONE_VFORK) and exec the reaper
 * program in it; its pid, or -1 with errno. */
static pid_t spawn_exec(const struct op_child *c, const struct plan *p)
{
	struct exec_args a;
	int from[6] = {p->fd[0], p->fd[1], p->fd[2], p->report, p->sync, -1};
	sigset_t all, old;
	void *stack;
	pid_t pid = -1;
	int e = 0;

	a.exe = c->reaper_exe;
	a.userns = (c->clone_flags & CLONE_NEWUSER) != 0;
	for (int i = 0; i < 6; i++)
		a.src[i] = -1;
	from[5] = plan_fd(c, p);
	if (from[5] < 0)
		return -1;
	/* above the fds the child makes, so that no dup2 clobbers another */
	for (int i = 0; i < 6 && !e; i++)
		if (from[i] >= 0 && (a.src[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 10)) < 0)
			e = errno;
	close(from[5]);
	stack = e ? MAP_FAILED
		  : mmap(NULL, EXEC_STACK, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (!e && stack == MAP_FAILED)
		e = errno;
	if (!e) {
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pid = clone(exec_child, (char *)stack + EXEC_STACK,
			    (int)(CLONE_VM | CLONE_VFORK | SIGCHLD | c->clone_flags), &a);
		e = pid < 0 ? errno : 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		munmap(stack, EXEC_STACK);
	}
	for (int i = 0; i < 6; i++)
		if (a.src[i] >= 0)
			close(a.src[i]);
	errno = e;
	return e ? -1 : pid;
}

static char *get_str(struct op_plan_cursor *k)
{
	size_t n;
	const char *s = op_plan_bytes(k, &n);
	char *out;

	if (!s)
		return NULL;
	out = malloc(n + 1);
	if (!out) {
		k->bad = 1;
		return NULL;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

/* A flag, then (when set) size bytes into out; 1 when it was there. */
static int get_optional(struct op_plan_cursor *k, void *out, size_t size)
{
	const void *v;
	size_t n;

	if (!op_plan_u32(k))
		return 0;
	v = op_plan_bytes(k, &n);
	if (!v || n != size) {
		k->bad = 1;
		return 0;
	}
	memcpy(out, v, size);
	return 1;
}

static char **get_strv(struct op_plan_cursor *k)
{
	uint32_t n = op_plan_u32(k);
	char **v;

	if (k->bad || n > (uint32_t)(k->end - k->p) / sizeof(uint32_t) + 1) {
		k->bad = 1;
		return NULL;
	}
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v) {
		k->bad = 1;
		return NULL;
	}
	for (uint32_t i = 0; i < n && !k->bad; i++)
		v[i] = get_str(k);
	return v;
}

_Noreturn void op_child_reaper_main(int (*decode)(const void *plan, size_t len, struct op_child *c))
{
	static struct op_child c;
	static sigset_t mask;
	static struct rlimit nofile;
	struct plan p;
	struct op_plan_cursor k;
	struct stat st;
	char *buf = NULL, **argv, **env;
	const char *part;
	size_t len = 0, plen;
	ssize_t n;

	memset(&p, 0, sizeof(p));
	if (fstat(5, &st) < 0 || st.st_size <= 0 || st.st_size >= (1 << 30) ||
	    !(buf = malloc((size_t)st.st_size)))
		child_fail(3, OP_CHILD_SETUP, EPROTO);
	while (len < (size_t)st.st_size) {
		n = pread(5, buf + len, (size_t)st.st_size - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(5);
	if (len != (size_t)st.st_size || len < sizeof(PLAN_MAGIC) - 1 ||
	    memcmp(buf, PLAN_MAGIC, sizeof(PLAN_MAGIC) - 1))
		child_fail(3, OP_CHILD_SETUP, EPROTO);
	k.p = (const unsigned char *)buf + sizeof(PLAN_MAGIC) - 1;
	k.end = (const unsigned char *)buf + len;
	k.bad = 0;
	c.flags = op_plan_u32(&k);
	p.parent = (pid_t)op_plan_u32(&k);
	p.dumpable_hook = (int)op_plan_u32(&k);
	p.sync = op_plan_u32(&k) ? 4 : -1;
	p.sync_w = -1;
	if (op_plan_u32(&k))
		c.cwd = get_str(&k);
	else
		op_plan_bytes(&k, &plen);
	argv = get_strv(&k);
	env = get_strv(&k);
	if (get_optional(&k, &mask, sizeof(mask)))
		c.sigmask = &mask;
	if (get_optional(&k, &nofile, sizeof(nofile)))
		c.nofile = &nofile;
	part = op_plan_bytes(&k, &plen);
	if (k.bad || !argv || !argv[0] || !env)
		child_fail(3, OP_CHILD_SETUP, EPROTO);
	c.argv = (const char *const *)(void *)argv;
	c.env = (const char *const *)(void *)env;
	if (decode && decode(part, plen, &c) < 0)
		child_fail(3, OP_CHILD_SETUP, errno ? errno : EPROTO);
	free(buf); /* (what is kept was copied out of it) */
	p.c = &c;
	p.envp = c.env;
	p.path = env_path(p.envp);
	if (c.flags & OP_CHILD_SHELL) {
		size_t nargs = 0;

		while (argv[nargs])
			nargs++;
		p.shargv = calloc(nargs + 2, sizeof(*p.shargv));
		if (!p.shargv)
			child_fail(3, OP_CHILD_SETUP, ENOMEM);
		p.shargv[0] = "/bin/sh";
		for (size_t i = 1; i < nargs; i++)
			p.shargv[i + 1] = argv[i];
	}
	for (int i = 0; i < 3; i++)
		p.fd[i] = i;
	p.report = 3;
	child(&p);
}

/* --- in the parent ---------------------------------------------------------- */

static int start_fail(struct op_child *c, enum op_child_stage stage, int err)
{
	c->stage = stage;
	c->errnum = err;
	errno = err;
	return -1;
}

/* Read one report: 1 read, 0 EOF, -1 with errno (EAGAIN: none yet). */
static int read_one(int fd, struct report *r)
{
	ssize_t n;

	do
		n = read(fd, r, sizeof(*r));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	return n == (ssize_t)sizeof(*r);
}

/* The exec report: 1 exec worked, 0 failed (c->stage set), -1 EAGAIN. */
static int read_report(struct op_child *c)
{
	struct report r;
	int n = read_one(c->report_fd, &r);

	if (n < 0 && errno == EAGAIN)
		return -1;
	if (n == 1 && r.type == REPORT_FAILED) {
		close_fd(&c->report_fd);
		c->stage = (enum op_child_stage)r.stage;
		c->errnum = r.err;
		return 0;
	}
	/* EOF (exec closed it), or a reaper's "started": the reaper's pipe
	 * stays open for the program's exit */
	if (!(n == 1 && r.type == REPORT_STARTED))
		close_fd(&c->report_fd);
	return 1;
}

static pid_t spawn(const struct op_child *c)
{
	if (c->clone_flags)
		/* a fork in new namespaces: no stack of its own, COW like fork */
		return (pid_t)syscall(SYS_clone, c->clone_flags | SIGCHLD, NULL, NULL, NULL, NULL);
	return fork();
}

int op_child_start(struct op_child *c)
{
	int *fields[3] = {&c->in, &c->out, &c->err};
	int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
	int rep[2] = {-1, -1}, sync[2] = {-1, -1}, devnull = -1, e = 0;
	struct plan p;
	size_t nargs = 0;
	pid_t pid;

	c->pid = 0;
	c->report_fd = -1;
	c->stage = OP_CHILD_OK;
	c->errnum = 0;
	if (!c->argv || !c->argv[0] || !c->argv[0][0])
		return start_fail(c, OP_CHILD_SPAWN, EINVAL);
	memset(&p, 0, sizeof(p));
	p.c = c;
	p.envp = c->env ? c->env : (const char *const *)(void *)environ;
	p.path = env_path(p.envp);
	p.parent = getpid();
	p.sync = p.sync_w = -1;
	if (c->flags & OP_CHILD_SHELL) {
		while (c->argv[nargs])
			nargs++;
		p.shargv = calloc(nargs + 2, sizeof(*p.shargv));
		if (!p.shargv)
			return start_fail(c, OP_CHILD_SPAWN, ENOMEM);
		p.shargv[0] = "/bin/sh";
		for (size_t i = 1; i < nargs; i++)
			p.shargv[i + 1] = c->argv[i];
	}
	for (int i = 0; i < 3; i++) {
		p.fd[i] = -1;
		if (*fields[i] == OP_CHILD_PIPE) {
			if (make_pipe(pipes[i]) < 0)
				goto fail;
			p.fd[i] = pipes[i][i == 0 ? 0 : 1];
		} else if (*fields[i] == OP_CHILD_NULL) {
			if (devnull < 0) {
				devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
				if (devnull < 0)
					goto fail;
			}
			p.fd[i] = devnull;
		} else if (*fields[i] > 2) {
			p.fd[i] = *fields[i];
		} else if (*fields[i] != OP_CHILD_INHERIT) {
			errno = EINVAL;
			goto fail;
		}
	}
	if (make_pipe(rep) < 0)
		goto fail;
	p.report = rep[1];
	/* a go-ahead: for the parent's hook, and because a child in a new PID
	 * namespace cannot see whether its parent is still there */
	if (c->parent_setup || (c->clone_flags & CLONE_NEWPID)) {
		if (make_pipe(sync) < 0)
			goto fail;
		p.sync = sync[0];
		p.sync_w = sync[1];
		p.dumpable_hook = c->parent_setup && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0;
	}
	if ((c->flags & OP_CHILD_REAPER) && c->reaper_exe) {
		pid = spawn_exec(c, &p);
	} else {
		pid = spawn(c);
		if (pid == 0)
			child(&p);
	}
	if (pid < 0)
		goto fail;
	/* also from the parent, so that kill(-pid) works at once */
	if (c->flags & OP_CHILD_PGROUP)
		setpgid(pid, pid);
	c->pid = pid;
	close_fd(&sync[0]);
	close_fd(&rep[1]); /* the child's: EOF once it has gone */
	if (sync[1] >= 0) {
		struct report r;
		int ok = 1;

		if (p.dumpable_hook && (read_one(rep[0], &r) != 1 || r.type != REPORT_READY)) {
			ok = 0;
			errno = EPROTO;
		}
		ok = ok && (!c->parent_setup || c->parent_setup(c->setup_arg, pid) == 0);
		e = errno;
		if (ok && write(sync[1], "g", 1) != 1) {
			ok = 0;
			e = errno;
		}
		close_fd(&sync[1]);
		if (!ok) {
			/* the child exits at EOF; make sure, and reap it */
			kill(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
			c->pid = 0;
			for (int i = 0; i < 3; i++) {
				close_fd(&pipes[i][0]);
				close_fd(&pipes[i][1]);
			}
			close_fd(&rep[0]);
			close_fd(&rep[1]);
			close_fd(&devnull);
			free(p.shargv);
			return start_fail(c, OP_CHILD_SETUP, e);
		}
	}
	close_fd(&rep[1]);
	close_fd(&devnull);
	free(p.shargv);
	for (int i = 0; i < 3; i++) {
		if (*fields[i] != OP_CHILD_PIPE)
			continue;
		/* ours: the write end of stdin, the read ends of stdout/stderr */
		int mine = pipes[i][i == 0 ? 1 : 0];

		close_fd(&pipes[i][i == 0 ? 0 : 1]);
		fcntl(mine, F_SETFL, fcntl(mine, F_GETFL) | O_NONBLOCK);
		*fields[i] = mine;
	}
	c->report_fd = rep[0];
	if (c->flags & OP_CHILD_ASYNC) {
		fcntl(c->report_fd, F_SETFL, fcntl(c->report_fd, F_GETFL) | O_NONBLOCK);
		return 0;
	}
	if (read_report(c) == 1)
		return 0;
	/* It did not start: reap it and close our ends. */
	e = c->errnum;
	while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
		;
	c->pid = 0;
	for (int i = 0; i < 3; i++)
		if (pipes[i][0] >= 0 || pipes[i][1] >= 0)
			close_fd(fields[i]);
	errno = e;
	return -1;

fail:
	e = errno;
	for (int i = 0; i < 3; i++) {
		close_fd(&pipes[i][0]);
		close_fd(&pipes[i][1]);
	}
	close_fd(&rep[0]);
	close_fd(&rep[1]);
	close_fd(&sync[0]);
	close_fd(&sync[1]);
	close_fd(&devnull);
	free(p.shargv);
	return start_fail(c, OP_CHILD_SPAWN, e);
}

int op_child_report(struct op_child *c)
{
	int r;

	if (c->report_fd < 0 || c->stage != OP_CHILD_OK)
		return c->stage == OP_CHILD_OK ? 1 : 0;
	r = read_report(c);
	if (r < 0)
		errno = EAGAIN;
	return r;
}

int op_child_reap(struct op_child *c, int nohang, int *wstatus, struct rusage *ru)
{
	struct report r;
	int st = 0;
	pid_t w;

	if (c->pid <= 0) {
		errno = ECHILD;
		return -1;
	}
	do
		w = wait4(c->pid, &st, nohang ? WNOHANG : 0, ru);
	while (w < 0 && errno == EINTR);
	if (w == 0)
		return 0;
	if (w < 0)
		return -1;
	/* a reaper's last word is the program's status (written before it
	 * exited, so it is in the pipe by now) */
	if (c->report_fd >= 0 && (c->flags & OP_CHILD_REAPER)) {
		int fl = fcntl(c->report_fd, F_GETFL);

		fcntl(c->report_fd, F_SETFL, fl | O_NONBLOCK);
		while (read_one(c->report_fd, &r) == 1) {
			if (r.type != REPORT_EXITED)
				continue;
			st = r.status;
			if (ru)
				*ru = r.ru;
		}
	}
	close_fd(&c->report_fd);
	if (wstatus)
		*wstatus = st;
	return 1;
}

const char *op_child_error(const struct op_child *c, char *buf, size_t len)
{
	const char *name = c->argv && c->argv[0] ? c->argv[0] : "";
	const char *reason = strerror(c->errnum);

	switch (c->stage) {
	case OP_CHILD_CHDIR:
		snprintf(buf, len, "cannot change to directory '%s': %s", c->cwd ? c->cwd : "",
			 reason);
		break;
	case OP_CHILD_SETUP:
		snprintf(buf, len, "cannot set up '%s': %s", name, reason);
		break;
	case OP_CHILD_SPAWN:
	case OP_CHILD_FDS:
		snprintf(buf, len, "cannot start '%s': %s", name, reason);
		break;
	case OP_CHILD_EXEC:
		if (c->errnum == E2BIG)
			/* the kernel caps each argument and environment string
			 * at 32 pages (MAX_ARG_STRLEN), all of them at 1/4 of
			 * the stack limit */
			snprintf(buf, len,
				 "cannot run '%s': %s (Linux takes at most 131072 bytes per "
				 "argument or environment variable: pass large data in a file)",
				 name, reason);
		else
			snprintf(buf, len, "cannot run '%s': %s", name, reason);
		break;
	case OP_CHILD_OK:
		snprintf(buf, len, "started");
		break;
	}
	return buf;
}
