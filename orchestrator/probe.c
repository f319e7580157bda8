/*
 * orchd-ext-probe: the built-in probe of `orchd doctor --verify`.
 *
 * An extension of type "probe" that tries, on apply, what a hostile
 * extension would try (README "Security model"), and sends one output per
 * attack: "contained: EVIDENCE" or "EXPOSED: EVIDENCE".  It is installed
 * outside the extension search path (libexec/orchd/probe/), so that no
 * pipeline uses it by accident; orchd doctor runs it with
 * --extensions-dir.  It only looks: what it manages to create it removes,
 * a process it could trace it leaves alone, and its fork bomb and memory
 * hog are children it kills.
 *
 * Config (all optional):
 *   role          "attacker" (default), "victim" (writes a file in its
 *                 workdir and sleeps victim_ms, for the attacker to look
 *                 for) or "network" (the network attacks only)
 *   state_dir     the run's state directory (the attacker knows where it is)
 *   pipeline_file the pipeline file
 *   sentinel      a file the host made in its /tmp
 *   daemon_tag    argument of the daemon it leaves behind (sleep TAG)
 *   host_port     a port the host listens on at 127.0.0.1 (network)
 *   victim_ms     how long the victim waits (default 3000)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"

struct probe {
	struct op_ext *ext;
	json_object *cfg;
	int exposed;
};

static void verdict(struct probe *p, const char *key, int contained, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void verdict(struct probe *p, const char *key, int contained, const char *fmt, ...)
{
	char ev[480], line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ev, sizeof(ev), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s: %s", contained ? "contained" : "EXPOSED", ev);
	if (!contained)
		p->exposed++;
	op_ext_output_str(p->ext, key, line, false);
}

static const char *cfg(const struct probe *p, const char *key)
{
	return op_get_str(p->cfg, key);
}

/* --- processes ---------------------------------------------------------- */

/* Pids of the processes named orchd that /proc shows (not ourselves). */
static int orchd_pids(pid_t *v, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		char path[64], comm[64] = "";
		pid_t pid = (pid_t)atoi(de->d_name);
		int fd;
		ssize_t r;

		if (pid <= 0 || pid == getpid() || pid == getppid())
			continue; /* the reaper: attack_reaper() */
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		r = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (r > 0 && !strncmp(comm, "orchd\n", 6))
			v[n++] = pid;
	}
	closedir(d);
	return n;
}

/* Processes that are neither ours nor our parent (the reaper). */
static int foreign_count(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);
		char path[64], buf[512];
		int fd;
		ssize_t r;
		char *c;

		if (pid <= 0 || pid == getpid() || pid == getppid())
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		c = strrchr(buf, ')');
		/* "pid (comm) S ppid": ours are our children */
		if (c && atoi(c + 4) == getpid())
			continue;
		n++;
	}
	closedir(d);
	return n;
}

/* The reaper (our parent, pid 1 of our PID namespace) is a fork of orchd
 * that never execs: its memory is a copy of orchd's. */
static void attack_reaper(struct probe *p)
{
	char path[64], comm[32] = "", buf[256];
	pid_t pp = getppid();
	int fd, env = 0, mem = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pp);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, comm, sizeof(comm) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0 || strncmp(comm, "orchd", 5))
		return; /* not started by orchd's reaper (isolation basic) */
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pp);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	env = fd >= 0 && read(fd, buf, sizeof(buf)) > 0;
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pp);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	mem = fd >= 0;
	if (fd >= 0)
		close(fd);
	verdict(p, "read_reaper", !env && !mem, "its parent %d (%.*s%s): environ %s, mem %s",
		(int)pp, (int)strcspn(comm, "\n"), comm,
		getpid() == 2 ? "" : ", orchd itself: no PID namespace",
		env ? "read" : "unreadable", mem ? "opened" : "unreadable");
}

static void attack_processes(struct probe *p)
{
	pid_t pids[16];
	int n = orchd_pids(pids, 16), env = 0, mem = 0, fds = 0, traced = 0, sig = 0, vm = 0;
	int foreign = foreign_count();

	for (int i = 0; i < n; i++) {
		char path[64], buf[256];
		struct iovec local = {buf, sizeof(buf)}, remote;
		int fd;
		DIR *d;

		snprintf(path, sizeof(path), "/proc/%d/environ", (int)pids[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
			env++;
		if (fd >= 0)
			close(fd);
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)pids[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			mem++;
		if (fd >= 0)
			close(fd);
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pids[i]);
		d = opendir(path);
		if (d) {
			fds++;
			closedir(d);
		}
		/* SEIZE does not stop it; we exit soon, which detaches */
		if (ptrace(PTRACE_SEIZE, pids[i], NULL, NULL) == 0)
			traced++;
		if (kill(pids[i], 0) == 0)
			sig++;
		remote.iov_base = (void *)(uintptr_t)0x400000;
		remote.iov_len = sizeof(buf);
		if (process_vm_readv(pids[i], &local, 1, &remote, 1, 0) >= 0 || errno == EFAULT)
			vm++;
	}
	verdict(p, "see_orchd", n == 0, "%d orchd process%s visible in /proc", n,
		n == 1 ? "" : "es");
	verdict(p, "see_others", foreign == 0, "%d process%s of others visible in /proc", foreign,
		foreign == 1 ? "" : "es");
	verdict(p, "read_orchd_environ", env == 0, "read /proc/PID/environ of %d of %d", env, n);
	verdict(p, "read_orchd_memory", mem == 0 && vm == 0,
		"opened /proc/PID/mem of %d of %d, process_vm_readv of %d", mem, n, vm);
	verdict(p, "list_orchd_fds", fds == 0, "listed /proc/PID/fd of %d of %d", fds, n);
	verdict(p, "ptrace_orchd", traced == 0, "traced %d of %d", traced, n);
	verdict(p, "signal_orchd", sig == 0, "could signal %d of %d", sig, n);
}

/* --- files -------------------------------------------------------------- */

/* 1 when path is the own workdir or on the way to it (the sandbox shows
 * those inside a covered state directory). */
static int own_way(const char *path)
{
	const char *wd = getenv("ORCHD_WORKDIR");
	size_t pl = strlen(path);

	return wd && !strncmp(wd, path, pl) && (wd[pl] == '/' || !wd[pl]);
}

/* Entries of dir, recursively, up to a few levels, but the way to the own
 * workdir (-1: cannot list). */
static int count_entries(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char sub[4096];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		if (!own_way(sub))
			n++;
		else if (!strcmp(sub, getenv("ORCHD_WORKDIR")))
			continue; /* what is inside is ours */
		if (depth > 0 && de->d_type == DT_DIR) {
			int m = count_entries(sub, depth - 1);

			if (m > 0)
				n += m;
		}
	}
	closedir(d);
	return n;
}

static int readable(const char *path)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0;
}

/* Create path (O_EXCL) and remove it at once; 1 when that worked. */
static int can_create(const char *path, int *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		*err = errno;
		return 0;
	}
	close(fd);
	unlink(path);
	return 1;
}

static void attack_files(struct probe *p)
{
	const char *state = cfg(p, "state_dir"), *pipe = cfg(p, "pipeline_file");
	const char *pdir = getenv("ORCHD_PIPELINE_DIR"), *home = getenv("HOME");
	char path[4096];
	int err = 0, n, wrote = 0;
	struct op_buf where = OP_BUF_INIT;

	if (state) {
		n = count_entries(state, 3);
		verdict(p, "list_state_dir", n <= 0, "%s: %s", state,
			n < 0	 ? strerror(errno)
			: n == 0 ? "empty"
				 : "its stacks, lock and runs are listed");
		snprintf(path, sizeof(path), "%s/runs", state);
		n = count_entries(path, 3);
		verdict(p, "sibling_workdir", n <= 0,
			"the other instances' workdirs (runs/*/work): %s",
			n < 0	 ? strerror(errno)
			: n == 0 ? "none"
				 : "visible");
		snprintf(path, sizeof(path), "%s/stacks/probe-forged.json", state);
		wrote = can_create(path, &err);
		verdict(p, "forge_stack", !wrote, "create %s: %s", path,
			wrote ? "done (removed)" : strerror(err));
		snprintf(path, sizeof(path), "%s/lock", state);
		wrote = access(path, F_OK) == 0 && unlink(path) == 0;
		err = errno;
		if (wrote) {
			/* put a file back: the run keeps its open descriptor */
			int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

			if (fd >= 0)
				close(fd);
		}
		verdict(p, "unlink_lock", !wrote, "unlink %s: %s", path,
			wrote		     ? "done"
			: access(path, F_OK) ? "not visible"
					     : strerror(err));
	}
	if (pipe)
		verdict(p, "read_pipeline_file", !readable(pipe), "%s: %s", pipe,
			readable(pipe) ? "read, with every instance's config"
				       : "unreadable or empty");
	/* writes outside the workdir */
	if (pdir) {
		snprintf(path, sizeof(path), "%s/orchd-probe-%d", pdir, (int)getpid());
		if (can_create(path, &err))
			op_buf_addf(&where, " %s", pdir);
	}
	if (home && strcmp(home, "/tmp") && strcmp(home, "/tmp/")) {
		/* (a HOME of /tmp is the private /tmp under strict) */
		snprintf(path, sizeof(path), "%s/.orchd-probe-%d", home, (int)getpid());
		if (can_create(path, &err))
			op_buf_addf(&where, " %s", home);
	}
	snprintf(path, sizeof(path), "/var/tmp/orchd-probe-%d", (int)getpid());
	if (can_create(path, &err))
		op_buf_addf(&where, " /var/tmp");
	verdict(p, "write_outside_workdir", where.len == 0, "wrote in:%s",
		where.len ? op_buf_str(&where) : " nothing (pipeline dir, HOME, /var/tmp)");
	op_buf_release(&where);
	if (cfg(p, "sentinel"))
		verdict(p, "host_tmp", access(cfg(p, "sentinel"), F_OK) != 0,
			"the host's /tmp is %s",
			access(cfg(p, "sentinel"), F_OK) ? "not visible" : "shared");
}

/* --- secrets in the environment ----------------------------------------- */

static void attack_env(struct probe *p)
{
	static const char *const names[] = {"ORCHD_PASSPHRASE", "ORCHD_PASSPHRASE_FILE",
					    "PULUMI_CONFIG_PASSPHRASE",
					    "PULUMI_CONFIG_PASSPHRASE_FILE"};
	struct op_buf got = OP_BUF_INIT;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (getenv(names[i]))
			op_buf_addf(&got, " %s", names[i]);
	verdict(p, "passphrase_in_env", got.len == 0, "set:%s",
		got.len ? op_buf_str(&got) : " none");
	op_buf_release(&got);
}

/* --- processes left behind and resources -------------------------------- */

static void attack_daemon(struct probe *p)
{
	const char *tag = cfg(p, "daemon_tag");
	pid_t pid;

	if (!tag)
		return;
	pid = fork();
	if (pid == 0) {
		/* a daemon: new session, double fork, ignores the polite signals */
		setsid();
		if (fork() != 0)
			_exit(0);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		for (int fd = 0; fd < 3; fd++)
			close(fd);
		execl("/bin/sleep", "sleep", tag, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	/* orchd doctor looks for it once the run has ended */
	op_ext_output_str(p->ext, "daemon", pid > 0 ? "started" : "fork failed", false);
}

static void attack_fork_bomb(struct probe *p)
{
	pid_t kids[4096];
	int n = 0, err = 0;

	while (n < (int)(sizeof(kids) / sizeof(kids[0]))) {
		pid_t pid = fork();

		if (pid < 0) {
			err = errno;
			break;
		}
		if (pid == 0) {
			pause();
			_exit(0);
		}
		kids[n++] = pid;
	}
	for (int i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	for (int i = 0; i < n; i++)
		waitpid(kids[i], NULL, 0);
	verdict(p, "fork_bomb", err != 0, "%d forks, then %s", n,
		err ? strerror(err) : "no limit met");
}

static void attack_memory(struct probe *p)
{
	int fds[2], st = 0;
	pid_t pid;
	long long mib = 0;

	if (pipe(fds) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		for (int i = 1; i <= 64; i++) { /* up to 1 GiB, 16 MiB at a time */
			char *m = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (m == MAP_FAILED)
				_exit(2);
			memset(m, 1, 16 << 20);
			if (write(fds[1], &i, sizeof(i)) != (ssize_t)sizeof(i))
				_exit(3);
		}
		_exit(0);
	}
	close(fds[1]);
	for (int i; read(fds[0], &i, sizeof(i)) == (ssize_t)sizeof(i);)
		mib = (long long)i * 16;
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, &st, 0);
	verdict(p, "memory_hog", mib < 1024, "touched %lld MiB, then %s", mib,
		WIFSIGNALED(st)	       ? "killed"
		: WEXITSTATUS(st) == 2 ? "mmap failed"
		: WEXITSTATUS(st) == 0 ? "stopped at 1 GiB: no limit met"
				       : "stopped");
}

/* --- system calls -------------------------------------------------------- */

static void syscall_verdict(struct probe *p, const char *key, long ret, const char *what)
{
	int e = errno;

	verdict(p, key, ret < 0 && e == EPERM, "%s: %s", what, ret >= 0 ? "allowed" : strerror(e));
}

static void attack_syscalls(struct probe *p)
{
	struct perf_event_attr pe;
	union bpf_attr ba;
	long r;

	errno = 0;
	r = mount("none", "/mnt", "tmpfs", 0, NULL);
	if (r == 0)
		umount2("/mnt", MNT_DETACH); /* only looking */
	syscall_verdict(p, "sys_mount", r, "mount");
	r = unshare(CLONE_NEWUSER);
	syscall_verdict(p, "sys_unshare", r, "unshare(CLONE_NEWUSER)");
	memset(&ba, 0, sizeof(ba));
	ba.map_type = BPF_MAP_TYPE_ARRAY;
	ba.key_size = 4;
	ba.value_size = 4;
	ba.max_entries = 1;
	r = syscall(SYS_bpf, BPF_MAP_CREATE, &ba, sizeof(ba));
	if (r >= 0)
		close((int)r);
	syscall_verdict(p, "sys_bpf", r, "bpf");
	memset(&pe, 0, sizeof(pe));
	pe.size = sizeof(pe);
	pe.type = PERF_TYPE_SOFTWARE;
	pe.config = PERF_COUNT_SW_CPU_CLOCK;
	r = syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0);
	if (r >= 0)
		close((int)r);
	syscall_verdict(p, "sys_perf_event_open", r, "perf_event_open");
	r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
	syscall_verdict(p, "sys_keyctl", r, "keyctl");
	r = syscall(SYS_kexec_load, 0, 0, NULL, 0);
	syscall_verdict(p, "sys_kexec_load", r, "kexec_load");
	r = syscall(SYS_init_module, NULL, 0, "");
	syscall_verdict(p, "sys_init_module", r, "init_module");
	r = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	verdict(p, "no_new_privs", r == 1, "no_new_privs is %s", r == 1 ? "set" : "not set");
}

/* --- network ------------------------------------------------------------- */

static void attack_network(struct probe *p)
{
	const char *port = cfg(p, "host_port");
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, r, lfd;
	char file[64];

	if (port) {
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((unsigned short)atoi(port));
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		r = fd >= 0 ? connect(fd, (struct sockaddr *)&sa, sizeof(sa)) : -1;
		verdict(p, "net_connect_host", r < 0, "connect to the host's 127.0.0.1:%s: %s",
			port, r == 0 ? "connected" : strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	/* listen, and tell the host where: orchd doctor tries to connect */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
		verdict(p, "net_listen", 1, "cannot listen: %s", strerror(errno));
	} else {
		struct pollfd pfd = {lfd, POLLIN, 0};
		FILE *f = fopen("port.tmp", "w");

		if (f) {
			fprintf(f, "%d\n", ntohs(sa.sin_port));
			fclose(f);
			rename("port.tmp", "port");
		}
		r = poll(&pfd, 1, 3000);
		snprintf(file, sizeof(file), "%d", ntohs(sa.sin_port));
		verdict(p, "net_listen", r <= 0, "port %s %s", file,
			r > 0 ? "reached from the host" : "not reached from the host in 3s");
	}
	if (lfd >= 0)
		close(lfd);
}

/* --- actions ------------------------------------------------------------- */

static int probe_describe(struct op_ext *ext)
{
	return op_ext_describe(ext, "the isolation probe of orchd doctor --verify", NULL);
}

static int probe_validate(struct op_ext *ext)
{
	return op_ext_result(ext, true, 0, NULL, "valid");
}

static int probe_apply(struct op_ext *ext)
{
	struct probe p = {ext, op_ext_config(ext), 0};
	const char *role = cfg(&p, "role") ? cfg(&p, "role") : "attacker";

	if (!strcmp(role, "victim")) {
		/* something of its own for the attacker to look for */
		int ms = (int)op_get_int(p.cfg, "victim_ms", 3000);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		FILE *f = fopen("victim-secret", "w");

		if (f) {
			fputs("the victim's private file\n", f);
			fclose(f);
		}
		nanosleep(&ts, NULL);
		return op_ext_result(ext, true, 0, NULL, "waited");
	}
	if (!strcmp(role, "network")) {
		attack_network(&p);
		return op_ext_result(ext, true, 0, NULL, "probed");
	}
	{
		/* let the victim start */
		struct timespec ts = {0, 300 * 1000000L};

		nanosleep(&ts, NULL);
	}
	attack_processes(&p);
	attack_reaper(&p);
	attack_files(&p);
	attack_env(&p);
	attack_syscalls(&p);
	attack_daemon(&p);
	attack_fork_bomb(&p);
	attack_memory(&p);
	return op_ext_result(ext, true, 0, NULL, "probed");
}

int main(int argc, char **argv)
{
	static const struct op_ext_info info = {"probe", ORCHD_VERSION, "0.1.0", NULL};
	static const struct op_ext_handlers handlers = {
		.describe = probe_describe,
		.validate = probe_validate,
		.apply = probe_apply,
	};

	return op_ext_main(argc, argv, &info, &handlers);
}
