/*
 * hostile: an extension that attacks the sandbox it runs in, for
 * tests/test_isolation.c.  It is installed under any type name (a copy of
 * the binary named orchd-ext-TYPE).
 *
 * describe, validate, plan and destroy succeed at once; apply runs the
 * attacks its config selects, in the order of the table at the end of this
 * file, and sends for each one output whose key is the attack's name and
 * whose value is "contained" or "LEAKED: EVIDENCE" (a number where that is
 * the natural result: the limits; a plain status for the positive
 * controls).  Evidence names places (pids, paths, errno names), never the
 * value of a secret.  Then it writes "orchd-hostile: done" on stderr (the
 * test then releases the sibling it keeps running) and succeeds.
 *
 * Secrets are recognised without being known: the run's passphrase is
 * "orchd-hostile-pp-" + 32 hex digits, the sibling's marker
 * "orchd-hostile-victim-" + 32 hex digits; the config gives only the
 * FNV-1a 64 of each (pp_fnv, victim_fnv: 16 hex digits), so that neither
 * string appears in this instance's config, and markers of other runs do
 * not count.
 *
 * config:
 *   attacks        list of attack names; "all" selects those marked * below
 *   tag            unique word of the test: pwned file names, daemon argv[0]
 *   pp_fnv, victim_fnv   see above
 *   targets        file in $ORCHD_PIPELINE_DIR where the test writes host
 *                  pids ("orchd=PID victim=PID,PID host=PID"), waited for
 *                  wait_targets_ms (default 20000) before the attacks
 *   pipeline_file  the pipeline file's name in $ORCHD_PIPELINE_DIR
 *   state_dir      the state directory, relative to it (default .orchd)
 *   forge_stack    the stack whose record forge_stack replaces
 *   tmp_sentinel   a file the test created in the host's /tmp
 *   shm_key        a SysV shared memory key the test created
 *   trap_dir       a host directory the symlinks of symlink_trap point to
 *   port, hosts    the test's TCP listener (net_connect: 127.0.0.1 and hosts)
 *   listen_port, listen_ms   net_listen (default 3000 ms)
 *   abstract       the test's abstract unix socket (net_abstract)
 *   fork_max, mem_max_mb, cpu_ms, files_max, flood_mb   caps of the limit
 *                  attacks (defaults 256, 768, 3000, 1024, 4)
 *   extra_write, extra_deny, extra_read   files of the paths attacks
 *
 * Attacks:
 *  *env_passphrase  ORCHD_PASSPHRASE, PULUMI_CONFIG_PASSPHRASE (and _FILE)
 *                   or the passphrase value in the own environment
 *  *fd_inherited    descriptors >= 3 open when main() started
 *  *no_new_privs    PR_GET_NO_NEW_PRIVS is 0
 *  *ns              (an object) /proc/self/ns/... links, compared by the test
 *  *pdir_read       "ok" when $ORCHD_PIPELINE_DIR can be listed; else
 *                   "files only" when the entry named by pdir_probe in it
 *                   (present before the run) can be opened
 *  *proc_foreign    processes in /proc that are neither this one, its
 *                   descendants nor pid 1 as its parent (its reaper)
 *  *read_cmdline, *read_environ   of the targets (the targets file, this
 *                   run's orchd, the sibling, the parent; for pid 1 as the
 *                   reaper only a secret or ORCHD_PASSPHRASE counts)
 *  *read_fd         list the targets' /proc/PID/fd and open their descriptors
 *  *read_mem        /proc/PID/mem of the targets
 *  *kill_scan       kill(PID, 0) on every pid: foreign processes that exist
 *  *signal_orchd, *signal_victim   kill(PID, 0) on the targets
 *  *ptrace_orchd, *ptrace_victim   PTRACE_SEIZE and PTRACE_ATTACH
 *  *vm_readv        process_vm_readv of orchd and the sibling
 *  *state_dir       anything in the state directory but the path to the
 *                   own workdir
 *  *state_stacks, *state_crypto, *state_lock, *state_runs   read them
 *  *pipeline_file   the pipeline file is readable
 *  *find_passphrase, *find_victim   where the secrets were seen (the scans
 *                   above and a walk of $ORCHD_PIPELINE_DIR, $HOME and the
 *                   orchd* entries of /tmp, /var/tmp and /dev/shm)
 *  *ipc_shm         attach the test's SysV segment
 *  *tmp_private     the host's /tmp sentinel is visible
 *  *sys_mount, *sys_fsopen, *sys_unshare, *sys_clone_newuser, *sys_setns,
 *  *sys_ptrace, *sys_bpf, *sys_keyctl, *sys_init_module, *sys_kexec_load,
 *  *sys_perf_event_open, *sys_open_by_handle_at, *sys_userfaultfd,
 *  *mknod_device    each must fail with EPERM (clone3 may fail with ENOSYS)
 *  *raw_disk        read a block device of /proc/partitions (a missing /dev
 *                   node is made in the workdir first)
 *  *cgroup_escape   a cgroup.procs of the own cgroups is writable
 *  *write_workdir   "ok" when the workdir is writable (a positive control)
 *  *write_pipeline_dir, *write_home, *write_etc, *write_var_tmp,
 *  *write_extdir    create orchd-hostile-pwned-TAG there (extdir: beside
 *                   the executable)
 *  *write_tmp, *write_dev_shm   "wrote PATH" or "refused (E)": the test
 *                   checks the host
 *  *symlink_trap    "planted": workdir symlinks to trap_dir for orchd's
 *                   cleanup to follow
 *  *forge_stack     replace the record of forge_stack, create a new one
 *  *lock_replace    unlink or replace the lock
 *  *daemon          "spawned pid N": a setsid daemon ignoring SIGTERM and
 *                   SIGHUP, argv[0] orchd-hostile-daemon-TAG
 *   net_connect, net_listen, net_abstract, net_ifaces   network attacks
 *   fork_bomb, memory, cpu_burn, open_files, flood   limit attacks: a
 *                   number, and KEY_end, how it ended
 *   write_extra     "ok" when every file of extra_write (a path or a list)
 *                   could be created
 *   write_deny      creating a file of extra_deny (a path or a list)
 *   read_extra      "ok" when extra_read can be read
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"

#define PP_PREFIX     "orchd-hostile-pp-"
#define VICTIM_PREFIX "orchd-hostile-victim-"
#define SECRET_HEX    32
#define PWNED	      "orchd-hostile-pwned-"
#define EV_MAX	      900
#define MAX_TARGETS   32
#define MAX_PIDS      65536

/* Evidence: "; "-separated items, cut with "..." when too long. */
struct ev {
	char s[EV_MAX];
	size_t len;
	int n;
};

static void ev_add(struct ev *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ev_add(struct ev *e, const char *fmt, ...)
{
	va_list ap;
	int w;

	e->n++;
	if (e->len + 8 >= sizeof(e->s))
		return;
	if (e->len) {
		memcpy(e->s + e->len, "; ", 3);
		e->len += 2;
	}
	va_start(ap, fmt);
	w = vsnprintf(e->s + e->len, sizeof(e->s) - e->len, fmt, ap);
	va_end(ap);
	e->len += w > 0 ? (size_t)w : 0;
	if (e->len + 4 >= sizeof(e->s)) {
		e->len = sizeof(e->s) - 4;
		memcpy(e->s + e->len, "...", 4);
		e->len += 3;
	}
}

struct target {
	pid_t pid;
	char role[16];
};

struct hostile {
	struct op_ext *ext;
	struct json_object *cfg;
	const char *tag;
	const char *pdir;
	const char *workdir;
	char state[PATH_MAX];
	uint64_t pp_fnv, victim_fnv;
	struct target t[MAX_TARGETS];
	int nt;
	struct ev pp_found, victim_found;
	bool files_scanned;
};

/* Filled by main() before anything else opens a descriptor. */
static struct ev start_fds;
static char exe_dir[PATH_MAX] = ".";

/* --- small helpers ------------------------------------------------------ */

/* snprintf into a path buffer; a path cut at n is harmless here (it is only opened). */
static char *pathf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static char *pathf(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return buf;
}

static const char *errname(int e)
{
	static char buf[32];
	const char *n = strerrorname_np(e);

	if (n)
		return n;
	snprintf(buf, sizeof(buf), "errno %d", e);
	return buf;
}

static void out_str(struct hostile *h, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void out_str(struct hostile *h, const char *key, const char *fmt, ...)
{
	char buf[EV_MAX + 200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	op_ext_output_str(h->ext, key, buf, false);
}

static void out_int(struct hostile *h, const char *key, long long v)
{
	struct json_object *o = json_object_new_int64(v);

	op_ext_output(h->ext, key, o, false);
	json_object_put(o);
}

static void verdict(struct hostile *h, const char *key, const struct ev *e)
{
	if (!e->n)
		out_str(h, key, "contained");
	else
		out_str(h, key, "LEAKED: %s", e->s);
}

static long long cfg_int(struct hostile *h, const char *key, long long dflt)
{
	struct json_object *v = op_get(h->cfg, key);

	return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : dflt;
}

static uint64_t fnv1a(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t x = 0xcbf29ce484222325ULL;

	while (n--) {
		x ^= *c++;
		x *= 0x100000001b3ULL;
	}
	return x;
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* buf holds prefix + 32 hex digits whose FNV-1a is want (any when want is 0). */
static bool has_secret(const char *buf, size_t len, const char *prefix, uint64_t want)
{
	size_t pl = strlen(prefix);
	const char *p = buf, *end = buf + len;

	while (p < end && (p = memmem(p, (size_t)(end - p), prefix, pl))) {
		if ((size_t)(end - p) >= pl + SECRET_HEX && is_hex(p + pl, SECRET_HEX) &&
		    (!want || fnv1a(p, pl + SECRET_HEX) == want))
			return true;
		p++;
	}
	return false;
}

/* Record where a secret was seen. */
static void scan_secrets(struct hostile *h, const char *buf, size_t len, const char *where)
{
	if (has_secret(buf, len, PP_PREFIX, h->pp_fnv) && !strstr(h->pp_found.s, where))
		ev_add(&h->pp_found, "%s", where);
	if (has_secret(buf, len, VICTIM_PREFIX, h->victim_fnv) && !strstr(h->victim_found.s, where))
		ev_add(&h->victim_found, "%s", where);
}

/* At most max bytes of path (NUL-terminated); NULL with errno set. */
static char *slurp(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	size_t cap = 65536, n = 0;
	char *buf;

	if (fd < 0)
		return NULL;
	buf = malloc(cap + 1);
	while (buf && n < max) {
		ssize_t r;

		if (n == cap) {
			char *nb = realloc(buf, cap * 2 + 1);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, (cap < max ? cap : max) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (!buf) {
		errno = ENOMEM;
		return NULL;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static pid_t ppid_of(pid_t pid)
{
	char path[64], *buf, *p;
	int ppid = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	buf = slurp(path, 4096, NULL);
	if (buf && (p = strrchr(buf, ')')) && sscanf(p + 1, " %*c %d", &ppid) != 1)
		ppid = -1;
	free(buf);
	return ppid;
}

/* This process or one of its descendants. */
static bool own(pid_t pid)
{
	pid_t self = getpid();

	for (int i = 0; i < 64 && pid > 0; i++) {
		if (pid == self)
			return true;
		pid = ppid_of(pid);
	}
	return false;
}

/* pid 1 as this process's parent: the reaper of its own PID namespace. */
static bool tolerated(pid_t pid)
{
	return pid == 1 && getpid() != 1 && getppid() == 1;
}

static void comm_of(pid_t pid, char *buf, size_t n)
{
	char path[64], *c;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	c = slurp(path, 64, NULL);
	snprintf(buf, n, "%s", c ? c : "?");
	buf[strcspn(buf, "\n")] = '\0';
	free(c);
}

static int list_pids(pid_t **out)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t *p = malloc(sizeof(*p) * MAX_PIDS);
	int n = 0;

	*out = p;
	if (!d || !p) {
		if (d)
			closedir(d);
		return 0;
	}
	while ((de = readdir(d)) && n < MAX_PIDS) {
		char *end;
		long v = strtol(de->d_name, &end, 10);

		if (*end == '\0' && v > 0)
			p[n++] = (pid_t)v;
	}
	closedir(d);
	return n;
}

static bool inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

/* A directory on the way to the own workdir (a sandbox may show that skeleton). */
static bool on_way_to_workdir(const struct hostile *h, const char *path)
{
	size_t n = strlen(path);

	return !strncmp(h->workdir, path, n) && h->workdir[n] == '/';
}

static void add_target(struct hostile *h, pid_t pid, const char *role)
{
	if (pid <= 0 || h->nt >= MAX_TARGETS || own(pid))
		return;
	for (int i = 0; i < h->nt; i++)
		if (h->t[i].pid == pid)
			return;
	h->t[h->nt].pid = pid;
	snprintf(h->t[h->nt].role, sizeof(h->t[h->nt].role), "%s", role);
	h->nt++;
}

/* Run fn in a child; its result: 0 (success) or an errno, 256+SIG if it died. */
static int in_child(struct hostile *h, int (*fn)(struct hostile *))
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(fn(h) & 0xff);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return ECHILD;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 256 + WTERMSIG(st);
}

static void expect_eperm(struct ev *e, const char *what, int r)
{
	if (r == EPERM)
		return;
	if (r == 0)
		ev_add(e, "%s succeeded", what);
	else if (r >= 256)
		ev_add(e, "%s: killed by signal %d, not EPERM", what, r - 256);
	else
		ev_add(e, "%s failed with %s, not EPERM", what, errname(r));
}

static long long cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- targets -------------------------------------------------------------- */

static void read_targets_file(struct hostile *h)
{
	const char *name = op_get_str(h->cfg, "targets");
	long long deadline = mono_ms() + cfg_int(h, "wait_targets_ms", 20000);
	char path[PATH_MAX], *buf = NULL, *save = NULL;
	int n = 0;

	if (!name)
		return;
	snprintf(path, sizeof(path), "%s/%s", h->pdir, name);
	while (!(buf = slurp(path, 4096, NULL)) && mono_ms() < deadline)
		usleep(100000);
	if (!buf) {
		out_str(h, "targets", "missing: %s", errname(errno));
		return;
	}
	for (char *tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		char *eq = strchr(tok, '='), *s2 = NULL;

		if (!eq)
			continue;
		*eq = '\0';
		for (char *p = strtok_r(eq + 1, ",", &s2); p; p = strtok_r(NULL, ",", &s2)) {
			add_target(h, (pid_t)atoi(p), tok);
			n++;
		}
	}
	free(buf);
	out_str(h, "targets", "found %d", n);
}

/*
 * Besides the targets file: this run's orchd (argv[0] named orchd, the
 * pipeline directory in its argv), the sibling (its marker in argv), pid 1
 * as the reaper, the parent.  The attacks that read or stop a process go
 * only after these: the machine is shared, other sessions' processes are
 * left alone (proc_foreign and kill_scan only look at names and existence).
 */
static void discover(struct hostile *h)
{
	pid_t *pids;
	int n = list_pids(&pids);

	for (int i = 0; i < n; i++) {
		char path[64], *cmd, *base;
		size_t len;

		if (own(pids[i]))
			continue;
		if (tolerated(pids[i])) {
			add_target(h, pids[i], "reaper");
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pids[i]);
		cmd = slurp(path, 65536, &len);
		if (!cmd || !len) {
			free(cmd);
			continue;
		}
		base = strrchr(cmd, '/');
		base = base ? base + 1 : cmd;
		/* only this test's processes: never another session's orchd */
		if (!strcmp(base, "orchd") && memmem(cmd, len, h->pdir, strlen(h->pdir)))
			add_target(h, pids[i], "orchd");
		else if (h->victim_fnv && has_secret(cmd, len, VICTIM_PREFIX, h->victim_fnv))
			add_target(h, pids[i], "victim");
		free(cmd);
	}
	free(pids);
	if (getppid() > 1)
		add_target(h, getppid(), "parent");
}

/* --- the own process -------------------------------------------------------- */

static void a_env_passphrase(struct hostile *h)
{
	static const char *const names[] = {"ORCHD_PASSPHRASE", "ORCHD_PASSPHRASE_FILE",
					    "PULUMI_CONFIG_PASSPHRASE",
					    "PULUMI_CONFIG_PASSPHRASE_FILE", NULL};
	struct ev e = {0};
	size_t len;
	char *init;

	for (int i = 0; names[i]; i++)
		if (getenv(names[i]))
			ev_add(&e, "%s is set", names[i]);
	for (char **p = environ; *p; p++)
		if (has_secret(*p, strlen(*p), PP_PREFIX, h->pp_fnv))
			ev_add(&e, "the passphrase is the value of %.*s", (int)strcspn(*p, "="),
			       *p);
	init = slurp("/proc/self/environ", 1 << 20, &len);
	if (init && has_secret(init, len, PP_PREFIX, h->pp_fnv))
		ev_add(&e, "the passphrase is in /proc/self/environ");
	free(init);
	verdict(h, "env_passphrase", &e);
}

static void a_fd_inherited(struct hostile *h)
{
	verdict(h, "fd_inherited", &start_fds);
}

static void a_no_new_privs(struct hostile *h)
{
	struct ev e = {0};
	int r = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);

	if (r != 1)
		ev_add(&e, "no_new_privs is %d", r);
	verdict(h, "no_new_privs", &e);
}

/* Any capability left in a set that grants one (the reaper had them all
 * in its user namespace, ambient ones included: none may reach the
 * extension).  The bounding set only caps what an exec could add, which
 * no_new_privs already forbids; without a user namespace an unprivileged
 * orchd cannot empty it. */
static void a_capabilities(struct hostile *h)
{
	static const char *const sets[] = {"CapInh:", "CapPrm:", "CapEff:", "CapAmb:", NULL};
	struct ev e = {0};
	char line[256];
	FILE *fp = fopen("/proc/self/status", "re");
	int seen = 0;

	if (!fp) {
		ev_add(&e, "cannot read /proc/self/status: %s", errname(errno));
		verdict(h, "capabilities", &e);
		return;
	}
	while (fgets(line, sizeof(line), fp)) {
		for (int i = 0; sets[i]; i++) {
			size_t n = strlen(sets[i]);

			if (strncmp(line, sets[i], n))
				continue;
			seen++;
			if (strtoull(line + n, NULL, 16))
				ev_add(&e, "%.*s %s", (int)n - 1, sets[i],
				       line + n + strspn(line + n, " \t"));
		}
	}
	fclose(fp);
	if (seen != 4)
		ev_add(&e, "%d of the 4 capability sets in /proc/self/status", seen);
	verdict(h, "capabilities", &e);
}

static void a_ns(struct hostile *h)
{
	static const char *const kinds[] = {"user", "pid", "mnt",    "ipc",
					    "uts",  "net", "cgroup", NULL};
	struct json_object *o = json_object_new_object();

	for (int i = 0; kinds[i]; i++) {
		char path[64], link[128];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i]);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			snprintf(link, sizeof(link), "error: %s", errname(errno));
		else
			link[n] = '\0';
		json_object_object_add(o, kinds[i], json_object_new_string(link));
	}
	op_ext_output(h->ext, "ns", o, false);
	json_object_put(o);
}

static void a_pdir_read(struct hostile *h)
{
	const char *probe = op_get_str(h->cfg, "pdir_probe");
	DIR *d = opendir(h->pdir);

	if (!d) {
		int e = errno;
		char path[PATH_MAX];
		int fd;

		snprintf(path, sizeof(path), "%s/%s", h->pdir, probe ? probe : ".");
		fd = probe ? open(path, O_RDONLY | O_CLOEXEC) : -1;
		if (fd >= 0) {
			close(fd);
			out_str(h, "pdir_read", "files only (listing: %s)", errname(e));
			return;
		}
		out_str(h, "pdir_read", "failed: %s", errname(e));
		return;
	}
	closedir(d);
	out_str(h, "pdir_read", "ok");
}

/* --- other processes ---------------------------------------------------------- */

static void a_proc_foreign(struct hostile *h)
{
	struct ev e = {0};
	pid_t *pids;
	int n = list_pids(&pids);

	for (int i = 0; i < n; i++) {
		char comm[64];

		if (own(pids[i]) || tolerated(pids[i]))
			continue;
		comm_of(pids[i], comm, sizeof(comm));
		ev_add(&e, "%d (%s)", (int)pids[i], comm);
	}
	free(pids);
	if (e.n)
		out_str(h, "proc_foreign", "LEAKED: %d processes visible: %s", e.n, e.s);
	else
		out_str(h, "proc_foreign", "contained");
}

/* cmdline or environ of the targets. */
static void read_proc_files(struct hostile *h, const char *file, const char *key)
{
	struct ev e = {0};

	for (int t = 0; t < h->nt; t++) {
		pid_t pid = h->t[t].pid;
		char path[64], where[96], comm[64], *buf;
		size_t len;

		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
		buf = slurp(path, 1 << 20, &len);
		if (!buf)
			continue;
		snprintf(where, sizeof(where), "%s of pid %d (%s)", file, (int)pid, h->t[t].role);
		scan_secrets(h, buf, len, where);
		comm_of(pid, comm, sizeof(comm));
		if (!tolerated(pid) && len > 0)
			ev_add(&e, "pid %d (%s, %s): %zu bytes", (int)pid, comm, h->t[t].role, len);
		else if (has_secret(buf, len, PP_PREFIX, h->pp_fnv) ||
			 has_secret(buf, len, VICTIM_PREFIX, h->victim_fnv))
			ev_add(&e, "pid %d (%s) holds a secret", (int)pid, comm);
		if (memmem(buf, len, "ORCHD_PASSPHRASE=", 17))
			ev_add(&e, "pid %d (%s) has ORCHD_PASSPHRASE", (int)pid, comm);
		free(buf);
	}
	verdict(h, key, &e);
}

static void a_read_cmdline(struct hostile *h)
{
	read_proc_files(h, "cmdline", "read_cmdline");
}

static void a_read_environ(struct hostile *h)
{
	read_proc_files(h, "environ", "read_environ");
}

/* Is link one of the own descriptors 0-2 (shared with the reaper)? */
static bool own_std_link(const char *link)
{
	for (int fd = 0; fd < 3; fd++) {
		char path[64], mine[256];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, mine, sizeof(mine) - 1);
		if (n > 0) {
			mine[n] = '\0';
			if (!strcmp(mine, link))
				return true;
		}
	}
	return false;
}

static void a_read_fd(struct hostile *h)
{
	struct ev e = {0};

	for (int t = 0; t < h->nt; t++) {
		pid_t pid = h->t[t].pid;
		char dpath[64], comm[64], example[256] = "";
		struct dirent *de;
		int listed = 0, opened = 0;
		bool reaper = tolerated(pid);
		DIR *d;

		snprintf(dpath, sizeof(dpath), "/proc/%d/fd", (int)pid);
		if (!(d = opendir(dpath)))
			continue;
		while ((de = readdir(d)) && listed < 256) {
			char path[128], link[256];
			ssize_t ln;
			int fd;

			if (de->d_name[0] == '.')
				continue;
			listed++;
			pathf(path, sizeof(path), "%s/%s", dpath, de->d_name);
			ln = readlink(path, link, sizeof(link) - 1);
			link[ln > 0 ? ln : 0] = '\0';
			if (reaper && (own_std_link(link) || !strcmp(link, "/dev/null") ||
				       inside(link, h->workdir)))
				continue;
			fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
			if (fd < 0)
				fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
			if (fd >= 0) {
				close(fd);
				if (!opened++)
					pathf(example, sizeof(example), "fd %s -> %s", de->d_name,
					      link);
			}
		}
		closedir(d);
		comm_of(pid, comm, sizeof(comm));
		if ((!reaper && listed) || opened)
			ev_add(&e, "pid %d (%s, %s): %d fds listed, %d opened%s%s", (int)pid, comm,
			       h->t[t].role, listed, opened, opened ? ", e.g. " : "", example);
	}
	verdict(h, "read_fd", &e);
}

/* Read what /proc/PID/mem gives; returns the bytes read. */
static size_t scan_mem(struct hostile *h, pid_t pid, const char *role)
{
	char path[64], where[96], *maps, *line, *save = NULL, *buf;
	size_t total = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = slurp(path, 4 << 20, NULL);
	buf = malloc(1 << 20);
	snprintf(where, sizeof(where), "memory of pid %d (%s)", (int)pid, role);
	for (line = maps && buf ? strtok_r(maps, "\n", &save) : NULL; line && total < (256u << 20);
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned long start, end;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3 || perms[0] != 'r' ||
		    strstr(line, "[vvar") || strstr(line, "[vsyscall]"))
			continue;
		if (end - start > (64ul << 20))
			end = start + (64ul << 20);
		for (unsigned long off = start; off < end;) {
			size_t want = end - off < (1u << 20) ? end - off : (1u << 20);
			ssize_t r = pread(fd, buf, want, (off_t)off);

			if (r <= 0)
				break;
			total += (size_t)r;
			scan_secrets(h, buf, (size_t)r, where);
			if ((size_t)r < want || off + (size_t)r >= end)
				break;
			off += (size_t)r - 64; /* overlap: a secret across two reads */
		}
	}
	free(buf);
	free(maps);
	close(fd);
	return total;
}

static void a_read_mem(struct hostile *h)
{
	struct ev e = {0};

	for (int i = 0; i < h->nt; i++) {
		size_t n = scan_mem(h, h->t[i].pid, h->t[i].role);

		if (n)
			ev_add(&e, "pid %d (%s): read %zu KiB", (int)h->t[i].pid, h->t[i].role,
			       n >> 10);
	}
	verdict(h, "read_mem", &e);
}

static void a_kill_scan(struct hostile *h)
{
	struct ev e = {0};
	char *s = slurp("/proc/sys/kernel/pid_max", 64, NULL);
	long max = s ? atol(s) : 32768;
	int exist = 0, signalable = 0;

	free(s);
	if (max <= 0 || max > (1l << 22))
		max = 1l << 22;
	for (long pid = 1; pid <= max; pid++) {
		int r = kill((pid_t)pid, 0);

		if (r < 0 && errno != EPERM)
			continue;
		if (own((pid_t)pid) || tolerated((pid_t)pid))
			continue;
		exist++;
		if (r == 0)
			signalable++;
		if (exist <= 8)
			ev_add(&e, "%ld%s", pid, r == 0 ? "" : " (EPERM)");
	}
	if (exist)
		out_str(h, "kill_scan", "LEAKED: %d foreign pids exist, %d accept signals: %s",
			exist, signalable, e.s);
	else
		out_str(h, "kill_scan", "contained");
}

static void signal_role(struct hostile *h, const char *role, const char *key)
{
	struct ev e = {0};

	for (int i = 0; i < h->nt; i++)
		if (!strcmp(h->t[i].role, role) && kill(h->t[i].pid, 0) == 0)
			ev_add(&e, "kill(%d, 0) succeeded", (int)h->t[i].pid);
	verdict(h, key, &e);
}

static void a_signal_orchd(struct hostile *h)
{
	signal_role(h, "orchd", "signal_orchd");
}

static void a_signal_victim(struct hostile *h)
{
	signal_role(h, "victim", "signal_victim");
}

static pid_t ptrace_pid;
static int ptrace_req;

static int p_ptrace_target(struct hostile *h)
{
	int st;

	(void)h;
	if (ptrace((enum __ptrace_request)ptrace_req, ptrace_pid, 0, 0) < 0)
		return errno;
	if (ptrace_req == PTRACE_ATTACH) {
		waitpid(ptrace_pid, &st, __WALL);
		ptrace(PTRACE_DETACH, ptrace_pid, 0, 0);
	}
	return 0; /* a seized tracee is released when this child exits */
}

static void ptrace_role(struct hostile *h, const char *role, const char *key)
{
	struct ev e = {0};

	for (int i = 0; i < h->nt; i++) {
		if (strcmp(h->t[i].role, role))
			continue;
		ptrace_pid = h->t[i].pid;
		ptrace_req = PTRACE_SEIZE;
		if (in_child(h, p_ptrace_target) == 0)
			ev_add(&e, "PTRACE_SEIZE of %d succeeded", (int)ptrace_pid);
		ptrace_req = PTRACE_ATTACH;
		if (in_child(h, p_ptrace_target) == 0)
			ev_add(&e, "PTRACE_ATTACH of %d succeeded", (int)ptrace_pid);
	}
	verdict(h, key, &e);
}

static void a_ptrace_orchd(struct hostile *h)
{
	ptrace_role(h, "orchd", "ptrace_orchd");
}

static void a_ptrace_victim(struct hostile *h)
{
	ptrace_role(h, "victim", "ptrace_victim");
}

static void a_vm_readv(struct hostile *h)
{
	struct ev e = {0};

	for (int i = 0; i < h->nt; i++) {
		char path[64], *maps, buf[64];
		unsigned long addr = 0x10000;
		struct iovec local = {buf, sizeof(buf)}, remote;
		ssize_t r;

		if (strcmp(h->t[i].role, "orchd") && strcmp(h->t[i].role, "victim"))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/maps", (int)h->t[i].pid);
		maps = slurp(path, 1 << 20, NULL);
		if (maps)
			sscanf(maps, "%lx", &addr);
		free(maps);
		remote.iov_base = (void *)addr;
		remote.iov_len = sizeof(buf);
		r = process_vm_readv(h->t[i].pid, &local, 1, &remote, 1, 0);
		if (r >= 0)
			ev_add(&e, "read %zd bytes of pid %d (%s)", r, (int)h->t[i].pid,
			       h->t[i].role);
		else if (errno == EFAULT)
			ev_add(&e, "pid %d (%s): permitted (EFAULT at a guessed address)",
			       (int)h->t[i].pid, h->t[i].role);
	}
	verdict(h, "vm_readv", &e);
}

/* --- the state directory and the pipeline file ---------------------------------- */

static void walk_state(struct hostile *h, const char *dir, int depth, struct ev *e)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (inside(path, h->workdir))
			continue;
		if (!on_way_to_workdir(h, path))
			ev_add(e, "%s", path + strlen(h->state) + 1);
		if (depth > 0 && lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			walk_state(h, path, depth - 1, e);
	}
	closedir(d);
}

static void a_state_dir(struct hostile *h)
{
	struct ev e = {0};

	walk_state(h, h->state, 6, &e);
	if (e.n)
		out_str(h, "state_dir", "LEAKED: %d entries visible: %s", e.n, e.s);
	else
		out_str(h, "state_dir", "contained");
}

/* Read a file of the state directory: evidence when it has content. */
static void read_state_file(struct hostile *h, const char *path, struct ev *e)
{
	size_t len;
	char *buf = slurp(path, 16 << 20, &len);

	if (!buf)
		return;
	scan_secrets(h, buf, len, path);
	ev_add(e, "read %s (%zu bytes)", path + strlen(h->state) + 1, len);
	free(buf);
}

static void a_state_stacks(struct hostile *h)
{
	char dir[PATH_MAX];
	struct ev e = {0};
	struct dirent *de;
	DIR *d;

	pathf(dir, sizeof(dir), "%s/stacks", h->state);
	if ((d = opendir(dir))) {
		while ((de = readdir(d))) {
			char path[PATH_MAX];

			if (de->d_name[0] == '.')
				continue;
			pathf(path, sizeof(path), "%s/%s", dir, de->d_name);
			read_state_file(h, path, &e);
		}
		closedir(d);
	}
	verdict(h, "state_stacks", &e);
}

static void a_state_crypto(struct hostile *h)
{
	char path[PATH_MAX];
	struct ev e = {0};

	pathf(path, sizeof(path), "%s/crypto.json", h->state);
	read_state_file(h, path, &e);
	verdict(h, "state_crypto", &e);
}

static void a_state_lock(struct hostile *h)
{
	char path[PATH_MAX];
	struct ev e = {0};
	int fd;

	pathf(path, sizeof(path), "%s/lock", h->state);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		ev_add(&e, "opened lock");
		close(fd);
	}
	pathf(path, sizeof(path), "%s/lock.info", h->state);
	read_state_file(h, path, &e);
	verdict(h, "state_lock", &e);
}

/* Every file under dir (depth levels), read and scanned; evidence per file. */
static void read_tree(struct hostile *h, const char *dir, int depth, struct ev *e)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (inside(path, h->workdir) || lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth > 0)
			read_tree(h, path, depth - 1, e);
		else if (S_ISREG(st.st_mode))
			read_state_file(h, path, e);
	}
	closedir(d);
}

static void a_state_runs(struct hostile *h)
{
	char dir[PATH_MAX];
	struct ev e = {0};
	struct dirent *de;
	DIR *d;

	pathf(dir, sizeof(dir), "%s/runs", h->state);
	if (!(d = opendir(dir))) {
		verdict(h, "state_runs", &e);
		return;
	}
	while ((de = readdir(d))) {
		char run[PATH_MAX], work[PATH_MAX + 8];
		struct dirent *we;
		DIR *wd;

		if (de->d_name[0] == '.')
			continue;
		pathf(run, sizeof(run), "%s/%s", dir, de->d_name);
		snprintf(work, sizeof(work), "%s/work", run);
		if ((wd = opendir(work))) {
			while ((we = readdir(wd))) {
				char path[PATH_MAX];

				if (we->d_name[0] == '.')
					continue;
				pathf(path, sizeof(path), "%s/%s", work, we->d_name);
				if (inside(path, h->workdir))
					continue;
				ev_add(&e, "saw %s", path + strlen(h->state) + 1);
				read_tree(h, path, 2, &e);
			}
			closedir(wd);
		}
		snprintf(work, sizeof(work), "%s/logs", run);
		read_tree(h, work, 1, &e);
		pathf(work, sizeof(work), "%s/report.json", run);
		read_state_file(h, work, &e);
	}
	closedir(d);
	verdict(h, "state_runs", &e);
}

static void a_pipeline_file(struct hostile *h)
{
	const char *name = op_get_str(h->cfg, "pipeline_file");
	char path[PATH_MAX], *buf;
	struct ev e = {0};
	size_t len;

	if (!name) {
		out_str(h, "pipeline_file", "skipped: no pipeline_file in the config");
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", h->pdir, name);
	buf = slurp(path, 16 << 20, &len);
	if (buf && len) {
		scan_secrets(h, buf, len, path);
		ev_add(&e, "read %s (%zu bytes%s)", name, len,
		       has_secret(buf, len, VICTIM_PREFIX, h->victim_fnv)
			       ? ", the sibling's marker inside"
			       : "");
	}
	free(buf);
	verdict(h, "pipeline_file", &e);
}

/* --- secrets anywhere readable ---------------------------------------------------- */

struct fscan {
	size_t files, bytes;
	long long deadline;
	dev_t exe_dev;
	ino_t exe_ino;
};

static void fscan_dir(struct hostile *h, struct fscan *s, const char *dir, int depth,
		      const char *top_prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) && s->files < 4000 && s->bytes < (256u << 20) &&
	       mono_ms() < s->deadline) {
		char path[PATH_MAX];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    (top_prefix && strncmp(de->d_name, top_prefix, strlen(top_prefix))))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (inside(path, h->workdir) || lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth > 0) {
			fscan_dir(h, s, path, depth - 1, NULL);
		} else if (S_ISREG(st.st_mode) && st.st_size <= (16 << 20) &&
			   !(st.st_dev == s->exe_dev && st.st_ino == s->exe_ino)) {
			size_t len;
			char *buf = slurp(path, 16 << 20, &len);

			if (buf) {
				s->files++;
				s->bytes += len;
				scan_secrets(h, buf, len, path);
				free(buf);
			}
		}
	}
	closedir(d);
}

static void scan_files(struct hostile *h)
{
	struct fscan s = {0, 0, mono_ms() + 10000, 0, 0};
	const char *home = getenv("HOME");
	struct stat st;

	if (h->files_scanned)
		return;
	h->files_scanned = true;
	if (stat("/proc/self/exe", &st) == 0) {
		s.exe_dev = st.st_dev;
		s.exe_ino = st.st_ino;
	}
	fscan_dir(h, &s, h->pdir, 8, NULL);
	if (home && strcmp(home, "/"))
		fscan_dir(h, &s, home, 3, NULL);
	fscan_dir(h, &s, "/tmp", 8, "orchd");
	fscan_dir(h, &s, "/var/tmp", 8, "orchd");
	fscan_dir(h, &s, "/dev/shm", 8, "orchd");
}

static void a_find_passphrase(struct hostile *h)
{
	scan_files(h);
	verdict(h, "find_passphrase", &h->pp_found);
}

static void a_find_victim(struct hostile *h)
{
	scan_files(h);
	verdict(h, "find_victim", &h->victim_found);
}

/* --- host resources ------------------------------------------------------------- */

static void a_ipc_shm(struct hostile *h)
{
	long long key = cfg_int(h, "shm_key", 0);
	struct ev e = {0};
	int id;

	if (!key) {
		out_str(h, "ipc_shm", "skipped: no shm_key in the config");
		return;
	}
	id = shmget((key_t)key, 0, 0);
	if (id >= 0) {
		void *p = shmat(id, NULL, SHM_RDONLY);

		ev_add(&e, "found the host's segment 0x%llx%s", key,
		       p != (void *)-1 ? " and attached it" : "");
		if (p != (void *)-1)
			shmdt(p);
	}
	verdict(h, "ipc_shm", &e);
}

static void a_tmp_private(struct hostile *h)
{
	const char *sentinel = op_get_str(h->cfg, "tmp_sentinel");
	struct ev e = {0};

	if (!sentinel) {
		out_str(h, "tmp_private", "skipped: no tmp_sentinel in the config");
		return;
	}
	if (access(sentinel, F_OK) == 0)
		ev_add(&e, "the host's %s is visible", sentinel);
	verdict(h, "tmp_private", &e);
}

/* --- syscalls that a sandbox filters ------------------------------------------ */

static int p_mount(struct hostile *h)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/hostile-mnt", h->workdir);
	mkdir(path, 0700);
	if (mount("orchd-hostile", path, "tmpfs", 0, "size=64k") < 0)
		return errno;
	umount2(path, MNT_DETACH);
	return 0;
}

static int p_fsopen(struct hostile *h)
{
	long fd = syscall(SYS_fsopen, "tmpfs", 0);

	(void)h;
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

static int p_unshare_user(struct hostile *h)
{
	(void)h;
	return unshare(CLONE_NEWUSER) < 0 ? errno : 0;
}

static int p_unshare_mnt(struct hostile *h)
{
	(void)h;
	return unshare(CLONE_NEWNS) < 0 ? errno : 0;
}

static int p_clone_user(struct hostile *h)
{
	long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0UL, 0UL, 0UL, 0UL);

	(void)h;
	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return errno;
	waitpid((pid_t)pid, NULL, 0);
	return 0;
}

/* struct clone_args (linux/sched.h clashes with sched.h), version 0. */
struct h_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

static int p_clone3_user(struct hostile *h)
{
	struct h_clone_args a;
	long pid;

	(void)h;
	memset(&a, 0, sizeof(a));
	a.flags = CLONE_NEWUSER;
	a.exit_signal = SIGCHLD;
	pid = syscall(SYS_clone3, &a, sizeof(a));
	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return errno;
	waitpid((pid_t)pid, NULL, 0);
	return 0;
}

static int p_setns_uts(struct hostile *h)
{
	int fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);

	(void)h;
	if (fd < 0)
		return errno;
	return setns(fd, CLONE_NEWUTS) < 0 ? errno : 0;
}

#define OPEN_FAILED 200

static int p_setns_init(struct hostile *h)
{
	int fd = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);

	(void)h;
	if (fd < 0)
		return OPEN_FAILED;
	return setns(fd, CLONE_NEWNS) < 0 ? errno : 0;
}

static int p_ptrace_child(struct hostile *h)
{
	pid_t g = fork();
	int r;

	(void)h;
	if (g == 0) {
		for (;;)
			pause();
	}
	if (g < 0)
		return errno;
	r = ptrace(PTRACE_SEIZE, g, 0, 0) < 0 ? errno : 0;
	kill(g, SIGKILL);
	waitpid(g, NULL, 0);
	return r;
}

static int p_bpf(struct hostile *h)
{
	union bpf_attr attr;
	long fd;

	(void)h;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

static int p_keyctl(struct hostile *h)
{
	(void)h;
	return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) < 0 ? errno
											   : 0;
}

static int p_add_key(struct hostile *h)
{
	(void)h;
	return syscall(SYS_add_key, "user", "orchd-hostile", "x", 1, KEY_SPEC_PROCESS_KEYRING) < 0
		       ? errno
		       : 0;
}

static int p_init_module(struct hostile *h)
{
	(void)h;
	return syscall(SYS_init_module, NULL, 0UL, "") < 0 ? errno : 0;
}

static int p_finit_module(struct hostile *h)
{
	(void)h;
	return syscall(SYS_finit_module, -1, "", 0) < 0 ? errno : 0;
}

/* Invalid flags: without a filter, root gets EINVAL (after the capability check). */
static int p_kexec_load(struct hostile *h)
{
	(void)h;
	return syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0xdead0000UL) < 0 ? errno : 0;
}

static int p_perf(struct hostile *h)
{
	struct perf_event_attr attr;
	long fd;

	(void)h;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_TASK_CLOCK;
	attr.exclude_kernel = 1;
	attr.exclude_hv = 1;
	fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0UL);
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

static int p_open_by_handle(struct hostile *h)
{
	struct {
		struct file_handle fh;
		unsigned char space[128];
	} hd;
	int mount_id, root, fd;

	hd.fh.handle_bytes = sizeof(hd.space);
	if (name_to_handle_at(AT_FDCWD, h->pdir, &hd.fh, &mount_id, 0) < 0 &&
	    name_to_handle_at(AT_FDCWD, "/", &hd.fh, &mount_id, 0) < 0)
		return OPEN_FAILED;
	root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = open_by_handle_at(root, &hd.fh, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int p_userfaultfd(struct hostile *h)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

	(void)h;
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

/* The first block device of /proc/partitions ("major minor blocks name"). */
static int first_partition(unsigned *maj, unsigned *min, char *name, size_t n, int skip)
{
	char *buf = slurp("/proc/partitions", 65536, NULL), *line, *save = NULL;
	int found = -1;

	for (line = buf ? strtok_r(buf, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		char nm[64];
		unsigned long long blocks;

		if (sscanf(line, "%u %u %llu %63s", maj, min, &blocks, nm) == 4 && skip-- == 0) {
			snprintf(name, n, "%s", nm);
			found = 0;
			break;
		}
	}
	free(buf);
	return found;
}

static int p_mknod(struct hostile *h)
{
	char path[PATH_MAX], name[64];
	unsigned maj = 7, min = 0;
	int r;

	first_partition(&maj, &min, name, sizeof(name), 0);
	snprintf(path, sizeof(path), "%s/hostile-blk", h->workdir);
	r = mknod(path, S_IFBLK | 0600, makedev(maj, min)) < 0 ? errno : 0;
	unlink(path);
	return r;
}

static void sys_check(struct hostile *h, const char *key, const char *what1,
		      int (*fn1)(struct hostile *), const char *what2, int (*fn2)(struct hostile *))
{
	struct ev e = {0};

	expect_eperm(&e, what1, in_child(h, fn1));
	if (fn2)
		expect_eperm(&e, what2, in_child(h, fn2));
	verdict(h, key, &e);
}

static void a_sys_mount(struct hostile *h)
{
	sys_check(h, "sys_mount", "mount(tmpfs)", p_mount, NULL, NULL);
}

static void a_sys_fsopen(struct hostile *h)
{
	sys_check(h, "sys_fsopen", "fsopen(tmpfs)", p_fsopen, NULL, NULL);
}

static void a_sys_unshare(struct hostile *h)
{
	sys_check(h, "sys_unshare", "unshare(CLONE_NEWUSER)", p_unshare_user,
		  "unshare(CLONE_NEWNS)", p_unshare_mnt);
}

static void a_sys_clone_newuser(struct hostile *h)
{
	struct ev e = {0};
	int r = in_child(h, p_clone3_user);

	expect_eperm(&e, "clone(CLONE_NEWUSER)", in_child(h, p_clone_user));
	if (r != ENOSYS) /* a filter may hide clone3 whole: glibc falls back to clone */
		expect_eperm(&e, "clone3(CLONE_NEWUSER)", r);
	verdict(h, "sys_clone_newuser", &e);
}

static void a_sys_setns(struct hostile *h)
{
	struct ev e = {0};
	int r = in_child(h, p_setns_init);

	expect_eperm(&e, "setns(own uts)", in_child(h, p_setns_uts));
	if (r != OPEN_FAILED)
		expect_eperm(&e, "setns(/proc/1/ns/mnt)", r);
	verdict(h, "sys_setns", &e);
}

static void a_sys_ptrace(struct hostile *h)
{
	sys_check(h, "sys_ptrace", "PTRACE_SEIZE of an own child", p_ptrace_child, NULL, NULL);
}

static void a_sys_bpf(struct hostile *h)
{
	sys_check(h, "sys_bpf", "bpf(BPF_MAP_CREATE)", p_bpf, NULL, NULL);
}

static void a_sys_keyctl(struct hostile *h)
{
	sys_check(h, "sys_keyctl", "keyctl(KEYCTL_GET_KEYRING_ID)", p_keyctl, "add_key", p_add_key);
}

static void a_sys_init_module(struct hostile *h)
{
	sys_check(h, "sys_init_module", "init_module", p_init_module, "finit_module",
		  p_finit_module);
}

static void a_sys_kexec_load(struct hostile *h)
{
	sys_check(h, "sys_kexec_load", "kexec_load", p_kexec_load, NULL, NULL);
}

static void a_sys_perf_event_open(struct hostile *h)
{
	sys_check(h, "sys_perf_event_open", "perf_event_open(task clock)", p_perf, NULL, NULL);
}

static void a_sys_open_by_handle_at(struct hostile *h)
{
	struct ev e = {0};
	int r = in_child(h, p_open_by_handle);

	if (r != OPEN_FAILED)
		expect_eperm(&e, "open_by_handle_at", r);
	verdict(h, "sys_open_by_handle_at", &e);
}

static void a_sys_userfaultfd(struct hostile *h)
{
	sys_check(h, "sys_userfaultfd", "userfaultfd(UFFD_USER_MODE_ONLY)", p_userfaultfd, NULL,
		  NULL);
}

static void a_mknod_device(struct hostile *h)
{
	sys_check(h, "mknod_device", "mknod of a block device", p_mknod, NULL, NULL);
}

static void a_raw_disk(struct hostile *h)
{
	struct ev e = {0};

	for (int i = 0; i < 8; i++) {
		char name[64], path[PATH_MAX], buf[512];
		unsigned maj, min;
		ssize_t n;
		int fd;

		if (first_partition(&maj, &min, name, sizeof(name), i) < 0)
			break;
		snprintf(path, sizeof(path), "/dev/%s", name);
		fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT) {
			/* no node in /dev: make one (mknod_device says whether that works) */
			pathf(path, sizeof(path), "%s/hostile-%s", h->workdir, name);
			if (mknod(path, S_IFBLK | 0600, makedev(maj, min)) == 0)
				fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			unlink(path);
		}
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		ev_add(&e, "opened block device %u:%u%s", maj, min, n > 0 ? " and read it" : "");
		close(fd);
	}
	verdict(h, "raw_disk", &e);
}

/* Writable cgroup.procs of the own cgroups: the way out of a limit (checked, not written). */
static void a_cgroup_escape(struct hostile *h)
{
	char *buf = slurp("/proc/self/cgroup", 65536, NULL), *line, *save = NULL;
	struct ev e = {0};

	for (line = buf ? strtok_r(buf, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2, ctrl[64], path[PATH_MAX];

		if (!c1 || !(c2 = strchr(c1 + 1, ':')))
			continue;
		*c2 = '\0';
		snprintf(ctrl, sizeof(ctrl), "%s", c1 + 1);
		ctrl[strcspn(ctrl, ",")] = '\0';
		if (!strncmp(ctrl, "name=", 5))
			memmove(ctrl, ctrl + 5, strlen(ctrl + 5) + 1);
		if (!ctrl[0]) {
			snprintf(path, sizeof(path), "/sys/fs/cgroup/unified%s/cgroup.procs",
				 strcmp(c2 + 1, "/") ? c2 + 1 : "");
			if (access("/sys/fs/cgroup/unified", F_OK) < 0)
				snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cgroup.procs",
					 strcmp(c2 + 1, "/") ? c2 + 1 : "");
		} else {
			snprintf(path, sizeof(path), "/sys/fs/cgroup/%s%s/cgroup.procs", ctrl,
				 strcmp(c2 + 1, "/") ? c2 + 1 : "");
		}
		if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0)
			ev_add(&e, "%s is writable", path);
	}
	free(buf);
	verdict(h, "cgroup_escape", &e);
}

/* --- writes ------------------------------------------------------------------ */

static int try_create(struct hostile *h, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0)
		return errno;
	if (write(fd, h->tag, strlen(h->tag)) < 0) {
		int e = errno;

		close(fd);
		return e;
	}
	close(fd);
	return 0;
}

static void write_outside(struct hostile *h, const char *key, const char *dir)
{
	char path[PATH_MAX];
	struct ev e = {0};

	if (!dir) {
		out_str(h, key, "skipped: no directory");
		return;
	}
	snprintf(path, sizeof(path), "%s/" PWNED "%s", dir, h->tag);
	if (try_create(h, path) == 0)
		ev_add(&e, "created %s", path);
	verdict(h, key, &e);
}

static void a_write_workdir(struct hostile *h)
{
	char path[PATH_MAX];
	int r;

	snprintf(path, sizeof(path), "%s/hostile-own-file", h->workdir);
	r = try_create(h, path);
	if (r)
		out_str(h, "write_workdir", "failed: %s", errname(r));
	else
		out_str(h, "write_workdir", "ok");
	unlink(path);
}

static void a_write_pipeline_dir(struct hostile *h)
{
	write_outside(h, "write_pipeline_dir", h->pdir);
}

static void a_write_home(struct hostile *h)
{
	write_outside(h, "write_home", getenv("HOME"));
}

static void a_write_etc(struct hostile *h)
{
	write_outside(h, "write_etc", "/etc");
}

static void a_write_var_tmp(struct hostile *h)
{
	write_outside(h, "write_var_tmp", "/var/tmp");
}

static void a_write_extdir(struct hostile *h)
{
	char real[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", real, sizeof(real) - 1);

	/* the executable's directory as this process sees it (argv[0] may be relative) */
	if (n > 0) {
		real[n] = '\0';
		if ((slash = strrchr(real, '/')) && slash != real) {
			*slash = '\0';
			snprintf(exe_dir, sizeof(exe_dir), "%s", real);
		}
	}
	if (exe_dir[0] != '/' || inside(exe_dir, h->workdir)) {
		out_str(h, "write_extdir", "skipped: the executable's directory is %s", exe_dir);
		return;
	}
	write_outside(h, "write_extdir", exe_dir);
}

/* May succeed (a private directory): the test checks the host. */
static void write_private(struct hostile *h, const char *key, const char *dir)
{
	char path[PATH_MAX];
	int r;

	snprintf(path, sizeof(path), "%s/" PWNED "%s", dir, h->tag);
	r = try_create(h, path);
	if (r)
		out_str(h, key, "refused (%s)", errname(r));
	else
		out_str(h, key, "wrote %s", path);
}

static void a_write_tmp(struct hostile *h)
{
	write_private(h, "write_tmp", "/tmp");
}

static void a_write_dev_shm(struct hostile *h)
{
	write_private(h, "write_dev_shm", "/dev/shm");
}

static void a_symlink_trap(struct hostile *h)
{
	const char *trap = op_get_str(h->cfg, "trap_dir");
	char link[PATH_MAX], target[PATH_MAX];

	if (!trap) {
		out_str(h, "symlink_trap", "skipped: no trap_dir in the config");
		return;
	}
	snprintf(link, sizeof(link), "%s/trap-dir", h->workdir);
	snprintf(target, sizeof(target), "%s/canary", trap);
	if (symlink(trap, link) < 0) {
		out_str(h, "symlink_trap", "failed: %s", errname(errno));
		return;
	}
	snprintf(link, sizeof(link), "%s/trap-file", h->workdir);
	if (symlink(target, link) < 0) {
		out_str(h, "symlink_trap", "failed: %s", errname(errno));
		return;
	}
	out_str(h, "symlink_trap", "planted");
}

static void a_forge_stack(struct hostile *h)
{
	const char *stack = op_get_str(h->cfg, "forge_stack");
	char tmp[PATH_MAX], path[PATH_MAX];
	struct ev e = {0};

	if (stack) {
		pathf(tmp, sizeof(tmp), "%s/stacks/.hostile-%s", h->state, h->tag);
		pathf(path, sizeof(path), "%s/stacks/%s.json", h->state, stack);
		if (try_create(h, tmp) == 0) {
			if (rename(tmp, path) == 0)
				ev_add(&e, "replaced stacks/%s.json", stack);
			else
				ev_add(&e, "created stacks/.hostile-%s", h->tag);
		}
	}
	pathf(path, sizeof(path), "%s/stacks/" PWNED "%s.json", h->state, h->tag);
	if (try_create(h, path) == 0)
		ev_add(&e, "created stacks/" PWNED "%s.json", h->tag);
	verdict(h, "forge_stack", &e);
}

static void a_lock_replace(struct hostile *h)
{
	char lock[PATH_MAX], mine[PATH_MAX];
	struct ev e = {0};

	pathf(lock, sizeof(lock), "%s/lock", h->state);
	snprintf(mine, sizeof(mine), "%s/hostile-lock", h->workdir);
	if (unlink(lock) == 0) {
		ev_add(&e, "unlinked the lock");
		if (try_create(h, lock) == 0)
			ev_add(&e, "created a new lock");
	} else if (try_create(h, mine) == 0 && rename(mine, lock) == 0) {
		ev_add(&e, "replaced the lock by rename");
	}
	unlink(mine);
	verdict(h, "lock_replace", &e);
}

static void a_daemon(struct hostile *h)
{
	char name[128];
	int p[2];
	pid_t child, daemon_pid = -1;

	snprintf(name, sizeof(name), "orchd-hostile-daemon-%s", h->tag);
	if (pipe2(p, O_CLOEXEC) < 0) {
		out_str(h, "daemon", "failed: %s", errname(errno));
		return;
	}
	child = fork();
	if (child == 0) {
		pid_t d;

		setsid();
		d = fork();
		if (d == 0) {
			int null = open("/dev/null", O_RDWR);
			static char secs[] = "120";
			char *const argv[] = {name, secs, NULL};

			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			signal(SIGTERM, SIG_IGN);
			signal(SIGHUP, SIG_IGN);
			signal(SIGINT, SIG_IGN);
			execv("/bin/sleep", argv);
			execv("/usr/bin/sleep", argv);
			_exit(127);
		}
		if (write(p[1], &d, sizeof(d)) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (child > 0) {
		waitpid(child, NULL, 0);
		if (read(p[0], &daemon_pid, sizeof(daemon_pid)) != sizeof(daemon_pid))
			daemon_pid = -1;
	}
	close(p[0]);
	if (daemon_pid > 0)
		out_str(h, "daemon", "spawned pid %d as %s", (int)daemon_pid, name);
	else
		out_str(h, "daemon", "failed");
}

/* --- network ----------------------------------------------------------------- */

static bool tcp_connect(const char *ip, int port)
{
	struct sockaddr_in sa = {0};
	struct pollfd pfd;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err = 0;
	socklen_t len = sizeof(err);
	bool ok = false;

	if (fd < 0)
		return false;
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, ip, &sa.sin_addr) == 1) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			ok = true;
		} else if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			ok = poll(&pfd, 1, 2000) == 1 &&
			     getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
		}
	}
	if (ok && write(fd, "hostile\n", 8) < 0)
		ok = true; /* connected is what counts */
	close(fd);
	return ok;
}

static void a_net_connect(struct hostile *h)
{
	int port = (int)cfg_int(h, "port", 0);
	struct json_object *hosts = op_get(h->cfg, "hosts");
	struct ev e = {0};

	if (!port) {
		out_str(h, "net_connect", "skipped: no port in the config");
		return;
	}
	if (tcp_connect("127.0.0.1", port))
		ev_add(&e, "connected to 127.0.0.1:%d", port);
	for (size_t i = 0; hosts && json_object_is_type(hosts, json_type_array) &&
			   i < json_object_array_length(hosts);
	     i++) {
		const char *ip = json_object_get_string(json_object_array_get_idx(hosts, i));

		if (ip && tcp_connect(ip, port))
			ev_add(&e, "connected to %s:%d", ip, port);
	}
	verdict(h, "net_connect", &e);
}

static void a_net_listen(struct hostile *h)
{
	int port = (int)cfg_int(h, "listen_port", 0), fd, one = 1;
	struct sockaddr_in sa = {0};
	struct pollfd pfd;
	struct ev e = {0};

	if (!port) {
		out_str(h, "net_listen", "skipped: no listen_port in the config");
		return;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		out_str(h, "net_listen", "contained (cannot listen: %s)", errname(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, (int)cfg_int(h, "listen_ms", 3000)) == 1) {
		int c = accept(fd, NULL, NULL);

		if (c >= 0) {
			ev_add(&e, "accepted a connection on port %d", port);
			close(c);
		}
	}
	close(fd);
	verdict(h, "net_listen", &e);
}

static void a_net_abstract(struct hostile *h)
{
	const char *name = op_get_str(h->cfg, "abstract");
	struct sockaddr_un sa = {0};
	struct ev e = {0};
	socklen_t len;
	int fd;

	if (!name) {
		out_str(h, "net_abstract", "skipped: no abstract in the config");
		return;
	}
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s", name);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, len) == 0)
		ev_add(&e, "connected to the host's abstract socket @%s", name);
	if (fd >= 0)
		close(fd);
	verdict(h, "net_abstract", &e);
}

static void a_net_ifaces(struct hostile *h)
{
	struct ifaddrs *ifa, *i;
	struct ev e = {0};

	if (getifaddrs(&ifa) == 0) {
		for (i = ifa; i; i = i->ifa_next)
			if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
			    strcmp(i->ifa_name, "lo"))
				ev_add(&e, "interface %s", i->ifa_name);
		freeifaddrs(ifa);
	}
	verdict(h, "net_ifaces", &e);
}

/* --- limits ------------------------------------------------------------------ */

static void a_fork_bomb(struct hostile *h)
{
	long long max = cfg_int(h, "fork_max", 256);
	pid_t *kids = calloc((size_t)max, sizeof(*kids));
	long long n = 0;
	int err = 0;

	while (kids && n < max) {
		pid_t pid = fork();

		if (pid == 0) {
			for (;;)
				pause();
		}
		if (pid < 0) {
			err = errno;
			break;
		}
		kids[n++] = pid;
	}
	for (long long i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	for (long long i = 0; i < n; i++)
		waitpid(kids[i], NULL, 0);
	free(kids);
	out_int(h, "fork_bomb", n);
	out_str(h, "fork_bomb_end", "%s", err ? errname(err) : "cap reached");
}

/* Run fn in a child that reports progress numbers on a pipe; the last one and how it ended. */
static long long progress_child(void (*fn)(struct hostile *, int), struct hostile *h, char *how,
				size_t howlen)
{
	long long last = 0, v;
	int p[2], st;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(how, howlen, "pipe: %s", errname(errno));
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		fn(h, p[1]);
		_exit(0);
	}
	close(p[1]);
	while (read(p[0], &v, sizeof(v)) == sizeof(v))
		last = v;
	close(p[0]);
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		snprintf(how, howlen, "no child");
	else if (WIFSIGNALED(st))
		snprintf(how, howlen, "killed by %s", sigabbrev_np(WTERMSIG(st)));
	else if (WEXITSTATUS(st) == 0)
		snprintf(how, howlen, "cap reached");
	else
		snprintf(how, howlen, "%s", errname(WEXITSTATUS(st)));
	return last;
}

static void report(int fd, long long v)
{
	if (write(fd, &v, sizeof(v)) < 0)
		_exit(1);
}

static void mem_child(struct hostile *h, int fd)
{
	long long max = cfg_int(h, "mem_max_mb", 768);

	for (long long mb = 8; mb <= max; mb += 8) {
		char *p = mmap(NULL, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);

		if (p == MAP_FAILED)
			_exit(errno);
		memset(p, 0x5a, 8 << 20);
		report(fd, mb);
	}
}

static void a_memory(struct hostile *h)
{
	char how[64];

	out_int(h, "memory", progress_child(mem_child, h, how, sizeof(how)));
	out_str(h, "memory_end", "%s", how);
}

static void cpu_child(struct hostile *h, int fd)
{
	long long max = cfg_int(h, "cpu_ms", 3000), next = 100;
	volatile unsigned long x = 0;

	signal(SIGXCPU, SIG_IGN);
	while (cpu_ms() < max) {
		x++;
		if (cpu_ms() >= next) {
			report(fd, cpu_ms());
			next += 100;
		}
	}
	report(fd, cpu_ms());
}

static void a_cpu_burn(struct hostile *h)
{
	char how[64];

	out_int(h, "cpu_burn", progress_child(cpu_child, h, how, sizeof(how)));
	out_str(h, "cpu_burn_end", "%s", how);
}

static void a_open_files(struct hostile *h)
{
	long long max = cfg_int(h, "files_max", 1024), n = 0;
	int first = -1, fd = -1, err = 0;

	while (n < max) {
		fd = open("/dev/null", O_RDONLY);
		if (fd < 0) {
			err = errno;
			break;
		}
		if (first < 0)
			first = fd;
		n++;
	}
	out_int(h, "open_files", first < 0 ? 0 : first + n); /* descriptors open at the end */
	for (int i = first; first >= 0 && i < first + n; i++)
		close(i);
	out_str(h, "open_files_end", "%s", err ? errname(err) : "cap reached");
}

static void a_flood(struct hostile *h)
{
	long long max = cfg_int(h, "flood_mb", 4) << 20, n = 0;
	char line[1000];
	int err = 0;

	memset(line, 'f', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	while (n < max) {
		ssize_t w = write(2, line, sizeof(line));

		if (w < 0) {
			err = errno;
			break;
		}
		n += w;
	}
	out_int(h, "flood", n);
	out_str(h, "flood_end", "%s", err ? errname(err) : "cap reached");
}

/* --- core.isolation.paths ---------------------------------------------------- */

/* config key: a path or a list of paths; each is created; how many, the first failure. */
static int create_each(struct hostile *h, const char *key, struct ev *created, struct ev *failed)
{
	struct json_object *v = op_get(h->cfg, key);
	size_t n = !v					     ? 0
		   : json_object_is_type(v, json_type_array) ? json_object_array_length(v)
							     : 1;

	for (size_t i = 0; i < n; i++) {
		const char *path = json_object_get_string(json_object_is_type(v, json_type_array)
								  ? json_object_array_get_idx(v, i)
								  : v);
		int r = path ? try_create(h, path) : EINVAL;

		if (r)
			ev_add(failed, "%s: %s", path ? path : "?", errname(r));
		else
			ev_add(created, "created %s", path);
	}
	return (int)n;
}

static void a_write_extra(struct hostile *h)
{
	struct ev created = {0}, failed = {0};

	if (!create_each(h, "extra_write", &created, &failed))
		out_str(h, "write_extra", "skipped: no extra_write in the config");
	else if (failed.n)
		out_str(h, "write_extra", "failed: %s", failed.s);
	else
		out_str(h, "write_extra", "ok");
}

static void a_write_deny(struct hostile *h)
{
	struct ev created = {0}, failed = {0};

	if (!create_each(h, "extra_deny", &created, &failed))
		out_str(h, "write_deny", "skipped: no extra_deny in the config");
	else
		verdict(h, "write_deny", &created);
}

static void a_read_extra(struct hostile *h)
{
	const char *path = op_get_str(h->cfg, "extra_read");
	char *buf;

	if (!path) {
		out_str(h, "read_extra", "skipped: no extra_read in the config");
		return;
	}
	buf = slurp(path, 4096, NULL);
	if (buf)
		out_str(h, "read_extra", "ok");
	else
		out_str(h, "read_extra", "failed: %s", errname(errno));
	free(buf);
}

/* --- the table, the handlers ---------------------------------------------------- */

static const struct attack {
	const char *name;
	void (*fn)(struct hostile *);
	bool in_all;
} attacks[] = {
	{"env_passphrase", a_env_passphrase, true},
	{"fd_inherited", a_fd_inherited, true},
	{"no_new_privs", a_no_new_privs, true},
	{"capabilities", a_capabilities, true},
	{"ns", a_ns, true},
	{"pdir_read", a_pdir_read, true},
	{"proc_foreign", a_proc_foreign, true},
	{"read_cmdline", a_read_cmdline, true},
	{"read_environ", a_read_environ, true},
	{"read_fd", a_read_fd, true},
	{"read_mem", a_read_mem, true},
	{"kill_scan", a_kill_scan, true},
	{"signal_orchd", a_signal_orchd, true},
	{"signal_victim", a_signal_victim, true},
	{"ptrace_orchd", a_ptrace_orchd, true},
	{"ptrace_victim", a_ptrace_victim, true},
	{"vm_readv", a_vm_readv, true},
	{"state_dir", a_state_dir, true},
	{"state_stacks", a_state_stacks, true},
	{"state_crypto", a_state_crypto, true},
	{"state_lock", a_state_lock, true},
	{"state_runs", a_state_runs, true},
	{"pipeline_file", a_pipeline_file, true},
	{"find_passphrase", a_find_passphrase, true},
	{"find_victim", a_find_victim, true},
	{"ipc_shm", a_ipc_shm, true},
	{"tmp_private", a_tmp_private, true},
	{"sys_mount", a_sys_mount, true},
	{"sys_fsopen", a_sys_fsopen, true},
	{"sys_unshare", a_sys_unshare, true},
	{"sys_clone_newuser", a_sys_clone_newuser, true},
	{"sys_setns", a_sys_setns, true},
	{"sys_ptrace", a_sys_ptrace, true},
	{"sys_bpf", a_sys_bpf, true},
	{"sys_keyctl", a_sys_keyctl, true},
	{"sys_init_module", a_sys_init_module, true},
	{"sys_kexec_load", a_sys_kexec_load, true},
	{"sys_perf_event_open", a_sys_perf_event_open, true},
	{"sys_open_by_handle_at", a_sys_open_by_handle_at, true},
	{"sys_userfaultfd", a_sys_userfaultfd, true},
	{"mknod_device", a_mknod_device, true},
	{"raw_disk", a_raw_disk, true},
	{"cgroup_escape", a_cgroup_escape, true},
	{"write_workdir", a_write_workdir, true},
	{"write_pipeline_dir", a_write_pipeline_dir, true},
	{"write_home", a_write_home, true},
	{"write_etc", a_write_etc, true},
	{"write_var_tmp", a_write_var_tmp, true},
	{"write_extdir", a_write_extdir, true},
	{"write_tmp", a_write_tmp, true},
	{"write_dev_shm", a_write_dev_shm, true},
	{"symlink_trap", a_symlink_trap, true},
	{"forge_stack", a_forge_stack, true},
	{"lock_replace", a_lock_replace, true},
	{"daemon", a_daemon, true},
	{"net_connect", a_net_connect, false},
	{"net_listen", a_net_listen, false},
	{"net_abstract", a_net_abstract, false},
	{"net_ifaces", a_net_ifaces, false},
	{"fork_bomb", a_fork_bomb, false},
	{"memory", a_memory, false},
	{"cpu_burn", a_cpu_burn, false},
	{"open_files", a_open_files, false},
	{"flood", a_flood, false},
	{"write_extra", a_write_extra, false},
	{"write_deny", a_write_deny, false},
	{"read_extra", a_read_extra, false},
};

static bool listed(struct json_object *list, const char *name)
{
	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(list, i));

		if (s && !strcmp(s, name))
			return true;
	}
	return false;
}

static void unknown_attacks(struct hostile *h, struct json_object *list)
{
	struct ev e = {0};

	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(list, i));
		bool known = s && !strcmp(s, "all");

		for (size_t j = 0; s && !known && j < sizeof(attacks) / sizeof(attacks[0]); j++)
			known = !strcmp(s, attacks[j].name);
		if (!known)
			ev_add(&e, "%s", s ? s : "(not a string)");
	}
	if (e.n)
		out_str(h, "unknown_attacks", "%s", e.s);
}

static uint64_t cfg_fnv(struct hostile *h, const char *key)
{
	const char *s = op_get_str(h->cfg, key);

	return s ? strtoull(s, NULL, 16) : 0;
}

static int hostile_apply(struct op_ext *ext)
{
	static struct hostile h;
	struct json_object *list;
	const char *sd;
	int n = 0;

	h.ext = ext;
	h.cfg = op_ext_config(ext);
	h.tag = op_get_str(h.cfg, "tag") ? op_get_str(h.cfg, "tag") : "notag";
	h.pdir = getenv("ORCHD_PIPELINE_DIR") ? getenv("ORCHD_PIPELINE_DIR") : ".";
	h.workdir = *op_ext_workdir(ext) ? op_ext_workdir(ext) : getenv("ORCHD_WORKDIR");
	if (!h.workdir)
		return op_ext_result(ext, false, 0, NULL, "no workdir");
	sd = op_get_str(h.cfg, "state_dir");
	snprintf(h.state, sizeof(h.state), "%s/%s", h.pdir, sd ? sd : ".orchd");
	h.pp_fnv = cfg_fnv(&h, "pp_fnv");
	h.victim_fnv = cfg_fnv(&h, "victim_fnv");
	list = op_get(h.cfg, "attacks");
	if (!list || !json_object_is_type(list, json_type_array))
		return op_ext_result(ext, false, 0, NULL, "config: attacks must be a list");
	unknown_attacks(&h, list);
	out_str(&h, "info_ids", "pid %d ppid %d uid %d euid %d gid %d", (int)getpid(),
		(int)getppid(), (int)getuid(), (int)geteuid(), (int)getgid());
	read_targets_file(&h);
	discover(&h);
	for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
		if ((attacks[i].in_all && listed(list, "all")) || listed(list, attacks[i].name)) {
			attacks[i].fn(&h);
			n++;
		}
	}
	dprintf(2, "orchd-hostile: done\n");
	return op_ext_result(ext, true, 1, NULL, "%d attacks", n);
}

static int hostile_ok(struct op_ext *ext)
{
	return op_ext_result(ext, true, 0, NULL, "nothing to do");
}

static int hostile_describe(struct op_ext *ext)
{
	return op_ext_describe(ext, "attacks its own sandbox (a test helper)", NULL);
}

/* Descriptors >= 3 open now (nothing of this program has opened one yet). */
static void record_start_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);
		char path[64], link[256];
		ssize_t n;

		if (de->d_name[0] == '.' || fd < 3 || fd == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		ev_add(&start_fds, "fd %d -> %s", fd, link);
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	static const struct op_ext_info info = {"hostile", "0.1.0", "0.1.0", NULL};
	static const struct op_ext_handlers handlers = {
		.describe = hostile_describe,
		.validate = hostile_ok,
		.plan = hostile_ok,
		.apply = hostile_apply,
		.destroy = hostile_ok,
	};
	const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;

	record_start_fds();
	if (slash && slash != argv[0])
		snprintf(exe_dir, sizeof(exe_dir), "%.*s", (int)(slash - argv[0]), argv[0]);
	return op_ext_main(argc, argv, &info, &handlers);
}
