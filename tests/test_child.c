/*
 * op_child (protocol/child.c): the one child-process API of orchd, its
 * supervisor, the Pulumi engine and op_cmd_run.  Real processes and pipes.
 */
#include <check.h>
#include <dirent.h>
#include <sched.h>
#include <sys/mount.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

/* Read fd to EOF into a malloc'ed string (blocking or not). */
static char *slurp(int fd)
{
	struct op_buf b = OP_BUF_INIT;
	char buf[4096];

	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0)
			break;
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		op_buf_add(&b, buf, (size_t)n);
	}
	close(fd);
	return op_buf_detach(&b, NULL);
}

static int run_status(struct op_child *c)
{
	int st = -1;

	ck_assert_int_eq(op_child_reap(c, 0, &st, NULL), 1);
	return st;
}

START_TEST(test_exec_failure_is_not_exit_127)
{
	const char *argv1[] = {"/nonexistent/orchd-prog", NULL};
	const char *argv2[] = {"/bin/sh", "-c", "exit 127", NULL};
	struct op_child c = OP_CHILD_INIT;
	char msg[256];
	int st;

	c.argv = argv1;
	c.out = OP_CHILD_PIPE;
	ck_assert_int_eq(op_child_start(&c), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(c.stage, OP_CHILD_EXEC);
	ck_assert_int_eq(c.pid, 0);
	/* the pipe made for it is closed again, the field reset */
	ck_assert_int_eq(c.out, -1);
	ck_assert_str_eq(op_child_error(&c, msg, sizeof(msg)),
			 "cannot run '/nonexistent/orchd-prog': No such file or directory");

	c = (struct op_child)OP_CHILD_INIT;
	c.argv = argv2;
	ck_assert_int_eq(op_child_start(&c), 0);
	ck_assert_int_gt(c.pid, 0);
	st = run_status(&c);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 127);
	ck_assert_int_eq(c.stage, OP_CHILD_OK);
}
END_TEST

START_TEST(test_fd_contract_and_nothing_leaks)
{
	/* fd 0 from a caller's fd (> 2), fd 1 a pipe, fd 2 /dev/null; an fd
	 * the caller opened WITHOUT close-on-exec must not reach the child */
	const char *argv[] = {"/bin/sh", "-c",
			      "read line; echo \"in=$line\"; echo to-null >&2; ls /proc/self/fd",
			      NULL};
	struct op_child c = OP_CHILD_INIT;
	int in[2], leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
	char *out, want_leak[32];

	ck_assert_int_ge(leak, 0);
	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(write(in[1], "hello\n", 6), 6);
	close(in[1]);
	if (in[0] <= 2) {
		int nfd = fcntl(in[0], F_DUPFD, 3);

		close(in[0]);
		in[0] = nfd;
	}
	c.argv = argv;
	c.in = in[0];
	c.out = OP_CHILD_PIPE;
	c.err = OP_CHILD_NULL;
	ck_assert_int_eq(op_child_start(&c), 0);
	close(in[0]);
	ck_assert_int_gt(c.out, 2);
	ck_assert(fcntl(c.out, F_GETFD) & FD_CLOEXEC);
	ck_assert(fcntl(c.out, F_GETFL) & O_NONBLOCK);
	out = slurp(c.out);
	ck_assert_int_eq(WEXITSTATUS(run_status(&c)), 0);
	ck_assert_msg(!strncmp(out, "in=hello\n", 9), "%s", out);
	ck_assert_msg(!strstr(out, "to-null"), "%s", out);
	/* ls lists 0 1 2 and its own directory fd (3); the leaked fd number
	 * of the parent is not among them unless it happens to be 3 */
	snprintf(want_leak, sizeof(want_leak), "\n%d\n", leak);
	if (leak > 3)
		ck_assert_msg(!strstr(out, want_leak), "fd %d leaked:\n%s", leak, out);
	ck_assert_msg(!strstr(out, "\n4\n"), "an fd above 3 reached the child:\n%s", out);
	close(leak);
	free(out);
}
END_TEST

START_TEST(test_process_group_cwd_and_environment)
{
	const char *argv[] = {"/bin/sh", "-c", "echo \"$$ $(ps -o pgid= -p $$) $(pwd) $ONLY\"",
			      NULL};
	const char *env[] = {"ONLY=this", "PATH=/usr/bin:/bin", NULL};
	struct op_child c = OP_CHILD_INIT;
	char *out, *dir = test_tmpdir(), *real = realpath(dir, NULL);
	char want[512];
	long pid = 0, pgid = 0;
	char cwd[400] = "", only[32] = "";

	c.argv = argv;
	c.env = env;
	c.cwd = dir;
	c.out = OP_CHILD_PIPE;
	c.flags = OP_CHILD_PGROUP;
	ck_assert_int_eq(op_child_start(&c), 0);
	out = slurp(c.out);
	run_status(&c);
	ck_assert_int_eq(sscanf(out, "%ld %ld %399s %31s", &pid, &pgid, cwd, only), 4);
	ck_assert_int_eq(pid, c.pid);
	ck_assert_int_eq(pgid, c.pid);
	snprintf(want, sizeof(want), "%s", real);
	ck_assert_str_eq(cwd, want);
	ck_assert_str_eq(only, "this");
	free(out);
	free(real);
	test_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_chdir_and_setup_failures)
{
	const char *argv[] = {"/bin/true", NULL};
	struct op_child c = OP_CHILD_INIT;
	char msg[256];

	c.argv = argv;
	c.cwd = "/nonexistent-orchd-dir";
	ck_assert_int_eq(op_child_start(&c), -1);
	ck_assert_int_eq(c.stage, OP_CHILD_CHDIR);
	ck_assert_str_eq(op_child_error(&c, msg, sizeof(msg)),
			 "cannot change to directory '/nonexistent-orchd-dir': No such file or "
			 "directory");
}
END_TEST

static int failing_setup(void *arg)
{
	(void)arg;
	errno = EPERM;
	return -1;
}

START_TEST(test_setup_hook_runs_in_the_child)
{
	const char *argv[] = {"/bin/true", NULL};
	struct op_child c = OP_CHILD_INIT;
	char msg[256];

	c.argv = argv;
	c.setup = failing_setup;
	ck_assert_int_eq(op_child_start(&c), -1);
	ck_assert_int_eq(c.stage, OP_CHILD_SETUP);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_str_eq(op_child_error(&c, msg, sizeof(msg)),
			 "cannot set up '/bin/true': Operation not permitted");
}
END_TEST

START_TEST(test_async_report)
{
	const char *bad[] = {"/nonexistent/x", NULL}, *good[] = {"/bin/true", NULL};
	struct op_child c = OP_CHILD_INIT;
	struct pollfd p;
	int r;

	c.argv = bad;
	c.flags = OP_CHILD_ASYNC;
	/* returns at once; the failure comes through the report fd */
	ck_assert_int_eq(op_child_start(&c), 0);
	ck_assert_int_ge(c.report_fd, 0);
	p = (struct pollfd){c.report_fd, POLLIN, 0};
	ck_assert_int_eq(poll(&p, 1, 10000), 1);
	r = op_child_report(&c);
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(c.stage, OP_CHILD_EXEC);
	ck_assert_int_eq(c.errnum, ENOENT);
	ck_assert_int_eq(c.report_fd, -1);
	ck_assert_int_eq(WEXITSTATUS(run_status(&c)), 127);

	c = (struct op_child)OP_CHILD_INIT;
	c.argv = good;
	c.flags = OP_CHILD_ASYNC;
	ck_assert_int_eq(op_child_start(&c), 0);
	p = (struct pollfd){c.report_fd, POLLIN, 0};
	ck_assert_int_eq(poll(&p, 1, 10000), 1);
	ck_assert_int_eq(op_child_report(&c), 1);
	ck_assert_int_eq(WEXITSTATUS(run_status(&c)), 0);
}
END_TEST

START_TEST(test_path_search_and_shell_fallback)
{
	/* a script without #! found on PATH runs under /bin/sh, as execvp */
	char *dir = test_tmpdir(), *script = xasprintf("%s/orchd-no-shebang", dir);
	char *path = xasprintf("PATH=/nonexistent:%s", dir);
	const char *env[] = {path, NULL}, *argv[] = {"orchd-no-shebang", "arg1", NULL};
	struct op_child c = OP_CHILD_INIT;
	FILE *f = fopen(script, "w");
	char *out;

	ck_assert_ptr_nonnull(f);
	fputs("echo \"ran $1\"\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(script, 0755), 0);
	c.argv = argv;
	c.env = env;
	c.out = OP_CHILD_PIPE;
	c.flags = OP_CHILD_PATH | OP_CHILD_SHELL;
	ck_assert_int_eq(op_child_start(&c), 0);
	out = slurp(c.out);
	ck_assert_int_eq(WEXITSTATUS(run_status(&c)), 0);
	ck_assert_str_eq(out, "ran arg1\n");
	free(out);

	/* without OP_CHILD_SHELL the same file is an exec format error */
	c = (struct op_child)OP_CHILD_INIT;
	c.argv = argv;
	c.env = env;
	c.flags = OP_CHILD_PATH;
	ck_assert_int_eq(op_child_start(&c), -1);
	ck_assert_int_eq(c.errnum, ENOEXEC);
	test_rmtree(dir);
	free(dir);
	free(script);
	free(path);
}
END_TEST

/* --- new namespaces and a reaper ------------------------------------------ */

static int write_proc(pid_t pid, const char *what, const char *text)
{
	char path[64];
	int fd, ok;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok ? 0 : -1;
}

/* The parent's part of a new user namespace: our ids mapped to themselves. */
static int map_ids(void *arg, pid_t pid)
{
	char m[64];

	(void)arg;
	snprintf(m, sizeof(m), "%u %u 1\n", (unsigned)getuid(), (unsigned)getuid());
	if (write_proc(pid, "uid_map", m) < 0 || write_proc(pid, "setgroups", "deny") < 0)
		return -1;
	snprintf(m, sizeof(m), "%u %u 1\n", (unsigned)getgid(), (unsigned)getgid());
	return write_proc(pid, "gid_map", m);
}

/* The child's part: its own /proc for its PID namespace. */
static int own_proc(void *arg)
{
	(void)arg;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	return mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

static int failing_parent_setup(void *arg, pid_t pid)
{
	(void)arg;
	(void)pid;
	errno = EACCES;
	return -1;
}

static const unsigned long ns_flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS;

/*
 * In new user, PID and mount namespaces, with a reaper as pid 1: the
 * program is pid 2 and sees no other process; its exit status (not the
 * reaper's) comes back; a daemon it leaves behind (setsid) dies with it.
 */
#define BIG_MIB 96

/* Make this process's memory high-water mark at least BIG_MIB.  (A
 * reaper that is a fork of it would pass that mark on to the program it
 * vforks: the reaper program does not.) */
static char *touch_big(void)
{
	char *big = malloc((size_t)BIG_MIB << 20);

	ck_assert_ptr_nonnull(big);
	memset(big, 1, (size_t)BIG_MIB << 20);
	return big;
}

START_TEST(test_reaper_in_new_namespaces)
{
	const char *argv[] = {
		"/bin/sh", "-c",
		"sleep 0.1; echo \"me=$$ procs=$(ls /proc | grep -c '^[0-9]') "
		"fds=$(ls /proc/1/fd | wc -l)\"; "
		"setsid sleep 1003.25 >/dev/null 2>&1 < /dev/null & sleep 0.2; exit 3",
		NULL};
	struct op_child c = OP_CHILD_INIT;
	char *out;
	int st;

	c.argv = argv;
	c.out = OP_CHILD_PIPE;
	c.clone_flags = ns_flags;
	c.flags = OP_CHILD_PGROUP | OP_CHILD_REAPER;
	c.parent_setup = map_ids;
	c.setup = own_proc;
	ck_assert_msg(op_child_start(&c) == 0, "%s", strerror(c.errnum));
	out = slurp(c.out);
	st = run_status(&c);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status %#x", st);
	/* the reaper is 1, the program 2; sh, ls, grep, the sleeps: few */
	ck_assert_msg(!strncmp(out, "me=2 procs=", 11), "%s", out);
	ck_assert_msg(atoi(out + 11) <= 6, "%s", out);
	/* the reaper keeps its report pipe only, none of the parent's */
	ck_assert_msg(strstr(out, "fds=") && atoi(strstr(out, "fds=") + 4) <= 1, "%s", out);
	ck_assert_int_eq(c.report_fd, -1);
	free(out);
	/* the daemon went with its namespace */
	for (int i = 0; i < 50 && test_process_with_arg("sleep 1003.25"); i++)
		usleep(20000);
	ck_assert_msg(!test_process_with_arg("sleep 1003.25"), "the daemon survived");
}
END_TEST

/* A signal that kills the program is reported as such, and the program's
 * exec failure as an exec failure, through the reaper. */
START_TEST(test_reaper_reports_signals_and_exec_failures)
{
	const char *kill_self[] = {"/bin/sh", "-c", "kill -KILL $$", NULL};
	const char *missing[] = {"/nonexistent/orchd-prog", NULL};
	struct op_child c = OP_CHILD_INIT;
	int st;

	c.argv = kill_self;
	c.clone_flags = ns_flags;
	c.flags = OP_CHILD_REAPER;
	c.parent_setup = map_ids;
	c.setup = own_proc;
	ck_assert_int_eq(op_child_start(&c), 0);
	st = run_status(&c);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);

	c = (struct op_child)OP_CHILD_INIT;
	c.argv = missing;
	c.clone_flags = ns_flags;
	c.flags = OP_CHILD_REAPER;
	c.parent_setup = map_ids;
	c.setup = own_proc;
	ck_assert_int_eq(op_child_start(&c), -1);
	ck_assert_int_eq(c.stage, OP_CHILD_EXEC);
	ck_assert_int_eq(c.errnum, ENOENT);
	ck_assert_int_eq(c.pid, 0);
}
END_TEST

/*
 * The reaper as a program of its own (op_child.reaper_exe, orchd-reaper):
 * started by clone(CLONE_VM|CLONE_VFORK) + exec, not as a fork of this
 * process.  Without a plan: the program's parent is orchd-reaper, its
 * status comes back, a daemon it leaves dies with it, and the reaper holds
 * no fd of ours.  (In new namespaces the reaper needs the plan's /proc to
 * find what to kill: the isolation tests run it so, under the sandbox.)
 */
START_TEST(test_reaper_program)
{
	const char *argv[] = {
		"/bin/sh", "-c",
		"echo \"parent=$(tr '\\0' ' ' < /proc/$PPID/cmdline) "
		"fds=$(ls /proc/$PPID/fd | wc -l)\"; "
		"setsid sleep 1003.75 >/dev/null 2>&1 < /dev/null & sleep 0.2; exit 5",
		NULL};
	char *reaper = test_build_path("libexec/orchd/orchd-reaper");
	struct op_child c = OP_CHILD_INIT;
	struct rusage ru;
	char *out, *big;
	int st;

	ck_assert_msg(access(reaper, X_OK) == 0, "missing %s", reaper);
	big = touch_big();
	c.argv = argv;
	c.out = OP_CHILD_PIPE;
	c.flags = OP_CHILD_PGROUP | OP_CHILD_REAPER;
	c.reaper_exe = reaper;
	ck_assert_msg(op_child_start(&c) == 0, "%s", strerror(c.errnum));
	out = slurp(c.out);
	ck_assert_int_eq(op_child_reap(&c, 0, &st, &ru), 1);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 5, "status %#x", st);
	/* the program's memory, not ours that the reaper borrowed */
	ck_assert_msg(ru.ru_maxrss > 0 && ru.ru_maxrss < BIG_MIB * 1024 / 2, "maxrss %ld KiB",
		      ru.ru_maxrss);
	free(big);
	ck_assert_msg(!strncmp(out, "parent=orchd-reaper ", 20), "%s", out);
	/* its stdin, stdout and stderr as given, and the report pipe */
	ck_assert_msg(strstr(out, "fds=") && atoi(strstr(out, "fds=") + 4) <= 4, "%s", out);
	free(out);
	for (int i = 0; i < 50 && test_process_with_arg("sleep 1003.75"); i++)
		usleep(20000);
	ck_assert_msg(!test_process_with_arg("sleep 1003.75"), "the daemon survived");
	free(reaper);
}
END_TEST

/* A reaper program that is not there, or a plan it cannot read: the start
 * fails (nothing left behind), as a spawn or a setup failure. */
START_TEST(test_reaper_program_failures)
{
	const char *argv[] = {"/bin/true", NULL};
	char *reaper = test_build_path("libexec/orchd/orchd-reaper");
	static const char garbage[] = "not a plan at all";
	struct op_child c = OP_CHILD_INIT;

	c.argv = argv;
	c.flags = OP_CHILD_REAPER;
	c.reaper_exe = "/nonexistent/orchd-reaper";
	ck_assert_int_eq(op_child_start(&c), -1);
	ck_assert_int_eq(c.stage, OP_CHILD_SPAWN);
	ck_assert_int_eq(c.errnum, ENOENT);
	ck_assert_int_eq(c.pid, 0);

	c = (struct op_child)OP_CHILD_INIT;
	c.argv = argv;
	c.flags = OP_CHILD_REAPER;
	c.reaper_exe = reaper;
	c.reaper_plan = garbage;
	c.reaper_plan_len = sizeof(garbage);
	ck_assert_int_eq(op_child_start(&c), -1);
	ck_assert_int_eq(c.stage, OP_CHILD_SETUP);
	ck_assert_int_eq(c.errnum, EPROTO);
	ck_assert_int_eq(c.pid, 0);

	/* the program's own exec failure is still an exec failure */
	c = (struct op_child)OP_CHILD_INIT;
	{
		const char *missing[] = {"/nonexistent/orchd-prog", NULL};

		c.argv = missing;
		c.flags = OP_CHILD_REAPER;
		c.reaper_exe = reaper;
		ck_assert_int_eq(op_child_start(&c), -1);
		ck_assert_int_eq(c.stage, OP_CHILD_EXEC);
		ck_assert_int_eq(c.errnum, ENOENT);
	}
	/* run by hand, it refuses */
	{
		const char *hand[] = {reaper, NULL};
		char *err = NULL;

		ck_assert_int_eq(test_run((char **)(void *)hand, NULL, &err), 2);
		ck_assert_msg(strstr(err, "started by orchd only"), "%s", err);
		free(err);
	}
	free(reaper);
}
END_TEST

/* SIGTERM to the reaper's group reaches the program (the reaper forwards
 * it: a pid 1 would ignore it), which exits by it. */
START_TEST(test_reaper_forwards_sigterm)
{
	const char *argv[] = {"/bin/sh", "-c", "echo ready; sleep 30 & wait", NULL};
	struct op_child c = OP_CHILD_INIT;
	char buf[16];
	int st;

	c.argv = argv;
	c.out = OP_CHILD_PIPE;
	c.clone_flags = ns_flags;
	c.flags = OP_CHILD_PGROUP | OP_CHILD_REAPER;
	c.parent_setup = map_ids;
	c.setup = own_proc;
	ck_assert_int_eq(op_child_start(&c), 0);
	{
		struct pollfd p = {c.out, POLLIN, 0};

		ck_assert_int_eq(poll(&p, 1, 10000), 1);
		ck_assert_int_gt(read(c.out, buf, sizeof(buf)), 0);
	}
	ck_assert_int_eq(kill(-c.pid, SIGTERM), 0);
	st = run_status(&c);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %#x", st);
	close(c.out);
}
END_TEST

static int failing_exec_setup(void *arg)
{
	(void)arg;
	errno = EPERM;
	return -1;
}

/* The hooks' failures are setup failures, and nothing is left behind. */
START_TEST(test_hook_failures)
{
	const char *argv[] = {"/bin/true", NULL};
	struct op_child c = OP_CHILD_INIT;

	c.argv = argv;
	c.clone_flags = ns_flags;
	c.parent_setup = failing_parent_setup;
	ck_assert_int_eq(op_child_start(&c), -1);
	ck_assert_int_eq(c.stage, OP_CHILD_SETUP);
	ck_assert_int_eq(c.errnum, EACCES);
	ck_assert_int_eq(c.pid, 0);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* no child left */

	c = (struct op_child)OP_CHILD_INIT;
	c.argv = argv;
	c.exec_setup = failing_exec_setup;
	ck_assert_int_eq(op_child_start(&c), -1);
	ck_assert_int_eq(c.stage, OP_CHILD_SETUP);
	ck_assert_int_eq(c.errnum, EPERM);
}
END_TEST

/* The parent's hook: tell the test the child's pid, then die as orchd
 * would under SIGKILL, before the go-ahead. */
static int dying_parent_setup(void *arg, pid_t pid)
{
	int fd = *(int *)arg;

	if (write(fd, &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
		_exit(3);
	_exit(0);
}

/* pid is gone, or a zombie of someone else's: it exited. */
static int exited(pid_t pid)
{
	char path[64], st[512] = "";
	FILE *f;

	if (kill(pid, 0) < 0)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(st, sizeof(st), f))
			st[0] = '\0';
		fclose(f);
	}
	return strstr(st, ") Z ") != NULL;
}

/* A parent that dies before its go-ahead: the waiting child sees EOF and
 * exits, with or without a PID namespace (it must not hold the pipe's
 * write end itself), and with the parent non-dumpable (the ready
 * handshake). */
START_TEST(test_parent_death_before_go_ahead)
{
	for (int variant = 0; variant < 3; variant++) {
		int fds[2];
		pid_t mid, child = 0;

		ck_assert_int_eq(pipe(fds), 0);
		mid = fork();
		ck_assert_int_ge(mid, 0);
		if (mid == 0) {
			const char *argv[] = {"/bin/sleep", "30", NULL};
			struct op_child c = OP_CHILD_INIT;

			close(fds[0]);
			if (variant == 2)
				prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
			c.argv = argv;
			c.clone_flags = variant ? ns_flags : 0;
			c.parent_setup = dying_parent_setup;
			c.setup_arg = &fds[1];
			op_child_start(&c);
			_exit(4);
		}
		close(fds[1]);
		ck_assert_int_eq(read(fds[0], &child, sizeof(child)), (ssize_t)sizeof(child));
		close(fds[0]);
		ck_assert_int_eq(waitpid(mid, NULL, 0), mid);
		/* orphaned: reparented to init (or a subreaper); wait for it */
		for (int i = 0; i < 100 && !exited(child); i++)
			usleep(10000);
		if (!exited(child)) {
			kill(child, SIGKILL);
			ck_abort_msg("variant %d: the child %d still waits for a go-ahead from a "
				     "dead parent",
				     variant, (int)child);
		}
	}
}
END_TEST

Suite *child_suite(void)
{
	Suite *s = suite_create("child");
	TCase *tc = tcase_create("child");

	tcase_add_test(tc, test_exec_failure_is_not_exit_127);
	tcase_add_test(tc, test_fd_contract_and_nothing_leaks);
	tcase_add_test(tc, test_process_group_cwd_and_environment);
	tcase_add_test(tc, test_chdir_and_setup_failures);
	tcase_add_test(tc, test_setup_hook_runs_in_the_child);
	tcase_add_test(tc, test_async_report);
	tcase_add_test(tc, test_path_search_and_shell_fallback);
	tcase_add_test(tc, test_reaper_in_new_namespaces);
	tcase_add_test(tc, test_reaper_reports_signals_and_exec_failures);
	tcase_add_test(tc, test_reaper_forwards_sigterm);
	tcase_add_test(tc, test_reaper_program);
	tcase_add_test(tc, test_reaper_program_failures);
	tcase_add_test(tc, test_hook_failures);
	tcase_add_test(tc, test_parent_death_before_go_ahead);
	suite_add_tcase(s, tc);
	return s;
}
