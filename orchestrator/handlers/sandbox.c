/*
 * handlers/sandbox: the isolation of an extension process (see sandbox.h).
 *
 * The plan is made in the parent (strings, the seccomp program); the three
 * hooks of op_child run it:
 *   parent_setup  (orchd)       the uid and gid maps of the new user namespace
 *   setup         (the reaper)  the mounts
 *   exec_setup    (the program) limits, no_new_privs, capabilities,
 *                               Landlock, seccomp
 * The hooks make system calls only (async-signal-safe).  The reaper is
 * orchd-reaper (orchestrator/reaper.c) when it is installed: the plan then
 * travels to it as bytes (encode_plan(), orchd_sandbox_decode()), and the
 * reaper's own copy of this file runs setup and exec_setup.
 */
#include "handlers/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SECBIT_NOROOT
#define SECBIT_NOROOT		      (1 << 0)
#define SECBIT_NOROOT_LOCKED	      (1 << 1)
#define SECBIT_NO_SETUID_FIXUP	      (1 << 2)
#define SECBIT_NO_SETUID_FIXUP_LOCKED (1 << 3)
#define SECBIT_KEEP_CAPS_LOCKED	      (1 << 5)
#endif

#define NS_FLAGS (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)

/* The syscalls no extension needs: EPERM.  (clone3 answers ENOSYS so that
 * libc falls back to clone, whose namespace flags the filter can see.) */
static const char *const denied[] = {
	"ptrace",
	"process_vm_readv",
	"process_vm_writev",
	"mount",
	"umount2",
	"pivot_root",
	"swapon",
	"swapoff",
	"reboot",
	"kexec_load",
	"kexec_file_load",
	"init_module",
	"finit_module",
	"delete_module",
	"bpf",
	"keyctl",
	"add_key",
	"request_key",
	"perf_event_open",
	"unshare",
	"setns",
	"open_by_handle_at",
	"acct",
	"quotactl",
	"iopl",
	"ioperm",
	"settimeofday",
	"clock_settime",
	"clock_adjtime",
	"userfaultfd",
	"fsopen",
	"fsmount",
	"fsconfig",
	"fspick",
	"move_mount",
	"open_tree",
	"mount_setattr",
	"syslog",
	"vhangup",
	"kcmp",
	"lookup_dcookie",
	"uselib",
	"fanotify_init",
};

/* One mount operation of the reaper. */
enum mop_kind {
	MOP_TMPFS,	/* a private, writable tmpfs (/tmp, /dev/shm) */
	MOP_COVER_DIR,	/* an empty read-only tmpfs over a directory */
	MOP_COVER_FILE, /* /dev/null over a file */
	MOP_EXPOSE_RO,	/* the path as it was, read-only */
	MOP_EXPOSE_RW,	/* the path as it was, writable */
};

struct mop {
	char *path;
	enum mop_kind kind;
	int isdir; /* EXPOSE: a directory (else a file) */
	int fd;	   /* EXPOSE: O_PATH, opened before anything is covered */
	size_t depth;
	size_t seq; /* the order it was added in */
};

struct orchd_sandbox {
	int basic; /* isolation basic: the limits only */
	int ns;	   /* namespaces (else the fallback layers only) */
	int network_none;
	struct orchd_cgroup *cgroup; /* borrowed */
	char uid_map[48], gid_map[48];
	/* mounts, shallowest first */
	struct mop *mops;
	size_t nmops;
	/* exec */
	struct rlimit cpu, nofile, nproc, as;
	int set_cpu, set_nofile, set_nproc, set_as;
	int cap_last;
	int landlock_abi;
	char **ll_write; /* Landlock: writable directories */
	size_t nll_write;
	/* Landlock without namespaces: reads are confined too, to these
	 * (everything but the hidden paths: see hide_reads()) */
	int ll_reads;
	char **ll_read;
	size_t nll_read;
	struct op_buf plan; /* for a reaper program: encode_plan() */
};

/* ---------------------------------------------------------------------------
 * The seccomp program, built once.
 * ------------------------------------------------------------------------- */

static struct sock_fprog filter_prog;
static int filter_state; /* 0 not built, 1 built, -1 failed */

static int build_filter(void)
{
	scmp_filter_ctx ctx;
	int fd = -1, ret = -1;
	struct stat st;

	if (filter_state)
		return filter_state > 0 ? 0 : -1;
	filter_state = -1;
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr != __NR_SCMP_ERROR &&
		    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0) < 0)
			goto out;
	}
	if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) < 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
			     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)) < 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
			     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWNS, CLONE_NEWNS)) < 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
			     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWNET, CLONE_NEWNET)) < 0)
		goto out;
	/* the filter as BPF, through a memory file (libseccomp 2.5 exports to
	 * an fd only) */
	fd = memfd_create("orchd-seccomp", MFD_CLOEXEC);
	if (fd < 0 || seccomp_export_bpf(ctx, fd) < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 ||
	    st.st_size % (off_t)sizeof(struct sock_filter))
		goto out;
	filter_prog.len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	filter_prog.filter = xmalloc((size_t)st.st_size);
	if (pread(fd, filter_prog.filter, (size_t)st.st_size, 0) != st.st_size) {
		free(filter_prog.filter);
		filter_prog.filter = NULL;
		goto out;
	}
	filter_state = 1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return ret;
}

/* ---------------------------------------------------------------------------
 * The hooks (in the child: system calls only).
 * ------------------------------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(text);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, len);
	close(fd);
	if (n != (ssize_t)len) {
		if (n >= 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

/* orchd, while the child waits: put it in its cgroup, and map our uid and
 * gid into its user namespace. */
static int parent_setup(void *arg, pid_t pid)
{
	const struct orchd_sandbox *sb = arg;
	char path[64];

	if (sb->cgroup && orchd_cgroup_attach(sb->cgroup, pid) < 0)
		return -1;
	if (!sb->ns)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	if (write_file(path, sb->uid_map) < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
	if (write_file(path, "deny") < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
	return write_file(path, sb->gid_map);
}

static int set_readonly(const char *path, int recursive, int readonly)
{
	struct mount_attr attr;

	memset(&attr, 0, sizeof(attr));
	if (readonly)
		attr.attr_set = MOUNT_ATTR_RDONLY;
	else
		attr.attr_clr = MOUNT_ATTR_RDONLY;
	return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr,
			    sizeof(attr));
}

/* Bind the O_PATH fd onto path (the target exists). */
static int bind_fd(int fd, const char *path)
{
	char src[64];

	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	return mount(src, path, "none", MS_BIND | MS_REC, NULL);
}

static int loopback_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = -1;

	if (s < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (!ioctl(s, SIOCGIFFLAGS, &ifr)) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		ret = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
	return ret;
}

/* mkdir -p of path's ancestors and, for a directory, of path (a file gets
 * an empty file): the mount point of what is exposed through a cover.
 * Errors are the bind's to report. */
static void make_mountpoint(const char *path, int isdir)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return;
	memcpy(buf, path, len + 1);
	for (char *s = buf + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(buf, 0755);
		*s = '/';
	}
	if (isdir) {
		mkdir(buf, 0755);
	} else {
		int fd = open(buf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (fd >= 0)
			close(fd);
	}
}

/* The reaper, pid 1 of the new namespaces: the mounts. */
static int setup_mounts(void *arg)
{
	struct orchd_sandbox *sb = arg;
	size_t i;

	if (!sb->ns)
		return 0;
	if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	/* its own processes only */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -1;
	/* what it may use, held before anything is covered */
	for (i = 0; i < sb->nmops; i++) {
		struct mop *m = &sb->mops[i];

		if (m->kind != MOP_EXPOSE_RO && m->kind != MOP_EXPOSE_RW)
			continue;
		m->fd = open(m->path, O_PATH | O_CLOEXEC);
		if (m->fd < 0)
			return -1;
	}
	/* covers and what comes back through them, shallowest first: a
	 * pipeline under /tmp comes back over the private /tmp, its state
	 * directory is covered again, the workdir in it comes back */
	for (i = 0; i < sb->nmops; i++) {
		struct mop *m = &sb->mops[i];
		int r = 0;

		switch (m->kind) {
		case MOP_TMPFS:
			r = mount("orchd", m->path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
			break;
		case MOP_COVER_DIR:
			/* (under a cover already, its mount point is made) */
			make_mountpoint(m->path, 1);
			r = mount("orchd", m->path, "tmpfs", MS_NOSUID | MS_NODEV,
				  "mode=0755,size=64k");
			break;
		case MOP_COVER_FILE:
			make_mountpoint(m->path, 0);
			r = mount("/dev/null", m->path, "none", MS_BIND, NULL);
			break;
		case MOP_EXPOSE_RO:
		case MOP_EXPOSE_RW:
			make_mountpoint(m->path, m->isdir);
			r = bind_fd(m->fd, m->path);
			close(m->fd);
			m->fd = -1;
			break;
		}
		if (r < 0)
			return -1;
	}
	/* everything read-only, then writable again: the private tmpfs and
	 * what is exposed writable (each mount alone, not what is under it) */
	if (set_readonly("/", 1, 1) < 0)
		return -1;
	for (i = 0; i < sb->nmops; i++) {
		const struct mop *m = &sb->mops[i];

		if ((m->kind == MOP_TMPFS || m->kind == MOP_EXPOSE_RW) &&
		    set_readonly(m->path, 0, 0) < 0)
			return -1;
	}
	if (sb->network_none && loopback_up() < 0)
		return -1;
	return 0;
}

static int drop_capabilities(const struct orchd_sandbox *sb)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];

	/* root inside cannot regain what it loses (needs CAP_SETPCAP: a
	 * process without capabilities has nothing to drop) */
	prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
					 SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED);
	for (int cap = 0; cap <= sb->cap_last; cap++)
		prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	memset(data, 0, sizeof(data));
	return (int)syscall(SYS_capset, &hdr, data);
}

/* Add one path-beneath rule; a file gets the file rights of access only. */
static int landlock_rule(int rfd, const char *path, __u64 access, int dir_only)
{
	const __u64 file_rights = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
				  LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE;
	struct landlock_path_beneath_attr pb;
	struct stat st;
	int fd = open(path, O_PATH | O_CLOEXEC | (dir_only ? O_DIRECTORY : 0)), ret;

	if (fd < 0)
		return 0; /* not there (or gone): nothing to allow */
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))
		access &= file_rights;
	pb.allowed_access = access;
	pb.parent_fd = fd;
	ret = (int)syscall(SYS_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	close(fd);
	return ret;
}

static int landlock(const struct orchd_sandbox *sb)
{
	const __u64 read = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
	struct landlock_ruleset_attr attr;
	__u64 write = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
		      LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
		      LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
		      LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
		      LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
	int rfd, ret;

	if (!sb->landlock_abi)
		return 0;
	if (sb->landlock_abi >= 2)
		write |= LANDLOCK_ACCESS_FS_REFER;
	if (sb->landlock_abi >= 3)
		write |= LANDLOCK_ACCESS_FS_TRUNCATE;
	memset(&attr, 0, sizeof(attr));
	attr.handled_access_fs = write | (sb->ll_reads ? read : 0);
	rfd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rfd < 0)
		return -1;
	for (size_t i = 0; i < sb->nll_write; i++) {
		if (landlock_rule(rfd, sb->ll_write[i], write | (sb->ll_reads ? read : 0), 1) < 0) {
			close(rfd);
			return -1;
		}
	}
	for (size_t i = 0; i < sb->nll_read; i++) {
		if (landlock_rule(rfd, sb->ll_read[i], read, 0) < 0) {
			close(rfd);
			return -1;
		}
	}
	ret = (int)syscall(SYS_landlock_restrict_self, rfd, 0);
	close(rfd);
	return ret;
}

/* The program, right before exec: limits, then the locks, seccomp last. */
static int lock_down(void *arg)
{
	struct orchd_sandbox *sb = arg;

	if ((sb->set_cpu && setrlimit(RLIMIT_CPU, &sb->cpu) < 0) ||
	    (sb->set_nofile && setrlimit(RLIMIT_NOFILE, &sb->nofile) < 0) ||
	    (sb->set_nproc && setrlimit(RLIMIT_NPROC, &sb->nproc) < 0) ||
	    (sb->set_as && setrlimit(RLIMIT_AS, &sb->as) < 0))
		return -1;
	if (sb->basic)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	if (drop_capabilities(sb) < 0 && sb->ns)
		return -1;
	if (landlock(sb) < 0)
		return -1;
	/* seccomp(2), else the older prctl(2) (what valgrind 3.19 knows) */
	if (filter_prog.filter &&
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter_prog) < 0 &&
	    (errno != ENOSYS || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter_prog) < 0))
		return -1;
	return 0;
}

/* ---------------------------------------------------------------------------
 * The plan as bytes, for the reaper program (orchd-reaper, see
 * op_child.reaper_exe): what the hooks read, nothing the parent only uses
 * (the cgroup, the uid and gid maps).  Native-endian u32 fields and
 * length-prefixed strings; both ends are the same build.
 * ------------------------------------------------------------------------- */

static void put_strv(struct op_buf *b, char *const *v, size_t n)
{
	op_plan_put_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		op_plan_put_bytes(b, v[i], strlen(v[i]));
}

static void encode_plan(struct orchd_sandbox *sb)
{
	struct op_buf *b = &sb->plan;

	op_buf_reset(b);
	op_plan_put_u32(b, (uint32_t)sb->basic);
	op_plan_put_u32(b, (uint32_t)sb->ns);
	op_plan_put_u32(b, (uint32_t)sb->network_none);
	op_plan_put_bytes(b, &sb->cpu, sizeof(sb->cpu));
	op_plan_put_bytes(b, &sb->nofile, sizeof(sb->nofile));
	op_plan_put_bytes(b, &sb->nproc, sizeof(sb->nproc));
	op_plan_put_bytes(b, &sb->as, sizeof(sb->as));
	op_plan_put_u32(b, (uint32_t)sb->set_cpu);
	op_plan_put_u32(b, (uint32_t)sb->set_nofile);
	op_plan_put_u32(b, (uint32_t)sb->set_nproc);
	op_plan_put_u32(b, (uint32_t)sb->set_as);
	op_plan_put_u32(b, (uint32_t)sb->cap_last);
	op_plan_put_u32(b, (uint32_t)sb->landlock_abi);
	op_plan_put_u32(b, (uint32_t)sb->ll_reads);
	put_strv(b, sb->ll_write, sb->nll_write);
	put_strv(b, sb->ll_read, sb->nll_read);
	op_plan_put_u32(b, (uint32_t)sb->nmops);
	for (size_t i = 0; i < sb->nmops; i++) {
		op_plan_put_bytes(b, sb->mops[i].path, strlen(sb->mops[i].path));
		op_plan_put_u32(b, (uint32_t)sb->mops[i].kind);
		op_plan_put_u32(b, (uint32_t)sb->mops[i].isdir);
	}
	if (!sb->basic && filter_prog.filter)
		op_plan_put_bytes(b, filter_prog.filter,
				  filter_prog.len * sizeof(*filter_prog.filter));
	else
		op_plan_put_bytes(b, "", 0);
}

static void rd_fixed(struct op_plan_cursor *r, void *out, size_t size)
{
	size_t n;
	const void *s = op_plan_bytes(r, &n);

	if (!s || n != size)
		r->bad = 1;
	else
		memcpy(out, s, size);
}

static char *rd_str(struct op_plan_cursor *r)
{
	size_t n;
	const char *s = op_plan_bytes(r, &n);

	return s ? xstrndup(s, n) : NULL;
}

static char **rd_strv(struct op_plan_cursor *r, size_t *count)
{
	uint32_t n = op_plan_u32(r);
	char **v;

	*count = 0;
	if (r->bad || n > (size_t)(r->end - r->p) / sizeof(uint32_t)) {
		r->bad = 1;
		return NULL;
	}
	v = xcalloc((size_t)n + 1, sizeof(*v));
	for (uint32_t i = 0; i < n && !r->bad; i++)
		v[(*count)++] = rd_str(r);
	return v;
}

int orchd_sandbox_decode(const void *plan, size_t len, struct op_child *c)
{
	struct orchd_sandbox *sb;
	struct op_plan_cursor r = {plan, (const unsigned char *)plan + len, 0};
	const void *prog;
	size_t n, plen;

	if (!len)
		return 0; /* no plan: the reaper alone */
	sb = xcalloc(1, sizeof(*sb));
	sb->basic = (int)op_plan_u32(&r);
	sb->ns = (int)op_plan_u32(&r);
	sb->network_none = (int)op_plan_u32(&r);
	rd_fixed(&r, &sb->cpu, sizeof(sb->cpu));
	rd_fixed(&r, &sb->nofile, sizeof(sb->nofile));
	rd_fixed(&r, &sb->nproc, sizeof(sb->nproc));
	rd_fixed(&r, &sb->as, sizeof(sb->as));
	sb->set_cpu = (int)op_plan_u32(&r);
	sb->set_nofile = (int)op_plan_u32(&r);
	sb->set_nproc = (int)op_plan_u32(&r);
	sb->set_as = (int)op_plan_u32(&r);
	sb->cap_last = (int)op_plan_u32(&r);
	sb->landlock_abi = (int)op_plan_u32(&r);
	sb->ll_reads = (int)op_plan_u32(&r);
	sb->ll_write = rd_strv(&r, &sb->nll_write);
	sb->ll_read = rd_strv(&r, &sb->nll_read);
	n = op_plan_u32(&r);
	if (!r.bad && n <= (size_t)(r.end - r.p) / sizeof(uint32_t)) {
		sb->mops = xcalloc(n + 1, sizeof(*sb->mops));
		for (size_t i = 0; i < n && !r.bad; i++) {
			struct mop *m = &sb->mops[sb->nmops++];

			m->path = rd_str(&r);
			m->kind = (enum mop_kind)op_plan_u32(&r);
			m->isdir = (int)op_plan_u32(&r);
			m->fd = -1;
		}
	} else {
		r.bad = 1;
	}
	prog = op_plan_bytes(&r, &plen);
	if (!r.bad && plen) {
		if (plen % sizeof(*filter_prog.filter)) {
			r.bad = 1;
		} else {
			filter_prog.filter = xmalloc(plen);
			memcpy(filter_prog.filter, prog, plen);
			filter_prog.len = (unsigned short)(plen / sizeof(*filter_prog.filter));
		}
	}
	if (r.bad || r.p != r.end) {
		orchd_sandbox_free(sb);
		errno = EPROTO;
		return -1;
	}
	if (sb->ns)
		c->setup = setup_mounts;
	c->exec_setup = lock_down;
	c->setup_arg = sb;
	return 0;
}

/* ---------------------------------------------------------------------------
 * The host, probed once.
 * ------------------------------------------------------------------------- */

static struct orchd_sandbox_host host;
static int host_probed;

static int read_int_file(const char *path, int dflt)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return dflt;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return dflt;
	buf[n] = '\0';
	return atoi(buf);
}

/* Run /bin/true under a sandbox of the given kind; 0 or -1 with why. */
static int try_sandbox(int network_none, char *why, size_t len)
{
	const char *argv[] = {"/bin/true", NULL}, *none[] = {NULL};
	char *dir = xasprintf("%s/orchd-probe.XXXXXX",
			      getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	struct orchd_sandbox_spec spec;
	struct orchd_sandbox *sb;
	struct op_child c = OP_CHILD_INIT;
	struct orchd_sandbox_host h = host;
	char err[256];
	int st = 0, ret = -1;

	if (!mkdtemp(dir)) {
		snprintf(why, len, "cannot create %s: %s", dir, strerror(errno));
		free(dir);
		return -1;
	}
	memset(&spec, 0, sizeof(spec));
	spec.network_none = network_none;
	spec.workdir = dir;
	spec.hide = spec.read = spec.write = none;
	h.namespaces = 1;
	h.netns = network_none; /* the question */
	h.landlock_abi = 0;
	sb = orchd_sandbox_prepare(&h, &spec, err, sizeof(err));
	if (!sb) {
		snprintf(why, len, "%s", err);
		goto out;
	}
	c.argv = argv;
	c.in = c.out = c.err = OP_CHILD_NULL;
	orchd_sandbox_apply(sb, &c);
	c.exec_setup = NULL; /* the namespaces and mounts are the question */
	if (op_child_start(&c) < 0) {
		op_child_error(&c, err, sizeof(err));
		snprintf(why, len, "%s", err);
	} else if (op_child_reap(&c, 0, &st, NULL) == 1 && WIFEXITED(st) && !WEXITSTATUS(st)) {
		ret = 0;
	} else {
		snprintf(why, len, "the probe exited with status %#x", st);
	}
	orchd_sandbox_free(sb);
out:
	rmdir(dir);
	free(dir);
	return ret;
}

const struct orchd_sandbox_host *orchd_sandbox_probe(void)
{
	char why[256];

	if (host_probed)
		return &host;
	host_probed = 1;
	host.landlock_abi =
		(int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (host.landlock_abi < 0)
		host.landlock_abi = 0;
	host.seccomp = build_filter() == 0 && prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
	host.namespaces = try_sandbox(0, host.why, sizeof(host.why)) == 0;
	if (host.namespaces) {
		host.why[0] = '\0';
		host.netns = try_sandbox(1, why, sizeof(why)) == 0;
	}
	return &host;
}

void orchd_sandbox_describe(const struct orchd_sandbox_host *h, char *buf, size_t len)
{
	const struct orchd_cgroup_host *cg = orchd_cgroup_probe();
	char ll[32] = "";

	if (h->landlock_abi)
		snprintf(ll, sizeof(ll), "; landlock v%d", h->landlock_abi);
	snprintf(buf, len, "strict (%s%s%s%s; no_new_privs; limits: %s)",
		 h->namespaces ? "user, pid, mount, ipc, uts namespaces"
			       : "no namespaces: the filesystem is not hidden",
		 h->namespaces && h->netns ? ", network on demand" : "",
		 h->seccomp ? "; seccomp" : "; no seccomp", ll,
		 cg->version == 2   ? "cgroup v2"
		 : cg->version == 1 ? "cgroup v1"
		 : geteuid() == 0   ? "setrlimit, pids not enforced for root"
				    : "setrlimit");
}

/* ---------------------------------------------------------------------------
 * The plan, in the parent.
 * ------------------------------------------------------------------------- */

static void add_str(char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 2) * sizeof(**v));
	(*v)[(*n)++] = xstrdup(s);
	(*v)[*n] = NULL;
}

static void add_mop(struct orchd_sandbox *sb, const char *path, enum mop_kind kind, int isdir)
{
	struct mop *m;
	size_t depth = 0;

	for (const char *c = path; *c; c++)
		depth += *c == '/';
	sb->mops = xrealloc(sb->mops, (sb->nmops + 1) * sizeof(*sb->mops));
	m = &sb->mops[sb->nmops++];
	m->path = xstrdup(path);
	m->kind = kind;
	m->isdir = isdir;
	m->fd = -1;
	m->depth = !strcmp(path, "/") ? 0 : depth;
	m->seq = sb->nmops - 1;
}

/* Shallowest first; at one depth in the order they were added (covers
 * before exposes, which are added later). */
static int cmp_mop(const void *a, const void *b)
{
	const struct mop *x = a, *y = b;

	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int mkdir_p(const char *path)
{
	char *copy = xstrdup(path);
	int ret = 0;

	for (char *s = copy + 1; *s && !ret; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST)
			ret = -1;
		*s = '/';
	}
	if (!ret && mkdir(copy, 0700) < 0 && errno != EEXIST)
		ret = -1;
	free(copy);
	return ret;
}

/* 1 when a is h or one of its ancestors ("/" is everyone's). */
static int is_under(const char *h, const char *a)
{
	size_t al = strlen(a);

	if (!strcmp(a, "/"))
		return 1;
	return !strncmp(h, a, al) && (h[al] == '/' || !h[al]);
}

static int hides(const char *const *hide, const char *path, int or_ancestor)
{
	for (const char *const *h = hide; h && *h; h++)
		if (is_under(path, *h) || (or_ancestor && is_under(*h, path)))
			return 1;
	return 0;
}

/*
 * Landlock cannot deny a path under one it allows, so reads are allowed
 * path by path: walking down from / towards each hidden path, every entry
 * of the directories on the way that neither is nor leads to a hidden
 * path (a symbolic link: by where it points).  The directories on the way
 * can be crossed but not listed.
 */
static void hide_reads(struct orchd_sandbox *sb, const char *dir, const char *const *hide,
		       int depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d || depth > 64) {
		if (d)
			closedir(d);
		return;
	}
	while ((de = readdir(d))) {
		char *path, *real;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		path = xasprintf("%s/%s", strcmp(dir, "/") ? dir : "", de->d_name);
		if (hides(hide, path, 0)) {
			free(path);
			continue;
		}
		if (!lstat(path, &st) && S_ISLNK(st.st_mode)) {
			real = realpath(path, NULL);
			if (real && !hides(hide, real, 1))
				add_str(&sb->ll_read, &sb->nll_read, real);
			free(real);
		} else if (hides(hide, path, 1)) {
			hide_reads(sb, path, hide, depth + 1);
		} else {
			add_str(&sb->ll_read, &sb->nll_read, path);
		}
		free(path);
	}
	closedir(d);
}

/* Limit resource to v (0: leave it); never above the hard limit orchd
 * has, which only the host's root could raise. */
static void set_limit(int resource, struct rlimit *rl, int *set, int64_t v)
{
	struct rlimit now;

	if (v <= 0)
		return;
	rl->rlim_cur = rl->rlim_max = (rlim_t)v;
	if (!getrlimit(resource, &now) && now.rlim_max != RLIM_INFINITY &&
	    now.rlim_max < rl->rlim_max)
		rl->rlim_cur = rl->rlim_max = now.rlim_max;
	*set = 1;
}

struct orchd_sandbox *orchd_sandbox_prepare(const struct orchd_sandbox_host *h,
					    const struct orchd_sandbox_spec *spec, char *err,
					    size_t errlen)
{
	struct orchd_sandbox *sb = xcalloc(1, sizeof(*sb));
	struct stat st;
	int isdir;

	if (spec->limits) {
		/* CPU: a process is killed (SIGKILL) once it has used it all */
		int64_t cpu = (spec->limits->cpu_time_ms + 999) / 1000;

		set_limit(RLIMIT_CPU, &sb->cpu, &sb->set_cpu, cpu);
		set_limit(RLIMIT_NOFILE, &sb->nofile, &sb->set_nofile, spec->limits->open_files);
		if (!spec->cgroup) {
			set_limit(RLIMIT_NPROC, &sb->nproc, &sb->set_nproc, spec->limits->pids);
#if !defined(__SANITIZE_ADDRESS__)
			/* (a sanitizer build reserves terabytes of address
			 * space: RLIMIT_AS would stop every extension) */
			set_limit(RLIMIT_AS, &sb->as, &sb->set_as, spec->limits->memory);
#endif
		}
	}
	sb->cgroup = spec->cgroup;
	if (spec->basic) {
		sb->basic = 1;
		return sb;
	}
	if (spec->network_none && !h->netns) {
		/* never less than asked: without a network namespace the
		 * extension would have the host's network */
		orchd_set_err(err, errlen,
			      "cannot isolate: network: none needs a network namespace, which this "
			      "host does not allow (%s)",
			      h->namespaces ? "no loopback in a new one" : h->why);
		orchd_sandbox_free(sb);
		return NULL;
	}
	sb->ns = h->namespaces;
	sb->network_none = spec->network_none;
	snprintf(sb->uid_map, sizeof(sb->uid_map), "%u %u 1\n", (unsigned)geteuid(),
		 (unsigned)geteuid());
	snprintf(sb->gid_map, sizeof(sb->gid_map), "%u %u 1\n", (unsigned)getegid(),
		 (unsigned)getegid());
	sb->cap_last = read_int_file("/proc/sys/kernel/cap_last_cap", 40);
	sb->landlock_abi = h->landlock_abi;
	if (h->seccomp)
		build_filter();
	add_mop(sb, "/tmp", MOP_TMPFS, 1);
	add_mop(sb, "/dev/shm", MOP_TMPFS, 1);
	for (const char *const *p = spec->hide; p && *p; p++)
		if (!stat(*p, &st))
			add_mop(sb, *p, S_ISDIR(st.st_mode) ? MOP_COVER_DIR : MOP_COVER_FILE, 1);
	/* writable: its workdir and the declared paths (made when missing) */
	add_mop(sb, spec->workdir, MOP_EXPOSE_RW, 1);
	add_str(&sb->ll_write, &sb->nll_write, spec->workdir);
	for (const char *const *p = spec->write; p && *p; p++) {
		if (mkdir_p(*p) < 0 && stat(*p, &st) < 0) {
			orchd_set_err(err, errlen, "cannot create the writable path %s: %s", *p,
				      strerror(errno));
			orchd_sandbox_free(sb);
			return NULL;
		}
		isdir = !stat(*p, &st) && S_ISDIR(st.st_mode);
		add_mop(sb, *p, MOP_EXPOSE_RW, isdir);
		if (isdir)
			add_str(&sb->ll_write, &sb->nll_write, *p);
	}
	for (const char *const *p = spec->read; p && *p; p++)
		if (!stat(*p, &st))
			add_mop(sb, *p, MOP_EXPOSE_RO, S_ISDIR(st.st_mode));
	qsort(sb->mops, sb->nmops, sizeof(*sb->mops), cmp_mop);
	/* Landlock: writes only under the workdir, the declared paths, and
	 * the private /tmp and /dev (its null, zero, tty, shm) */
	add_str(&sb->ll_write, &sb->nll_write, "/dev");
	if (sb->ns)
		add_str(&sb->ll_write, &sb->nll_write, "/tmp");
	if (!sb->ns && sb->landlock_abi && spec->hide && spec->hide[0]) {
		/* no mounts to cover them: Landlock keeps them unread */
		sb->ll_reads = 1;
		hide_reads(sb, "/", spec->hide, 0);
		/* declared reads, unless that would open a hidden path */
		for (const char *const *p = spec->read; p && *p; p++) {
			int opens = 0;

			for (const char *const *hp = spec->hide; *hp; hp++)
				opens |= is_under(*hp, *p) && strcmp(*hp, *p);
			if (!opens)
				add_str(&sb->ll_read, &sb->nll_read, *p);
		}
	}
	return sb;
}

int orchd_sandbox_private_tmp(const struct orchd_sandbox *sb)
{
	return sb->ns;
}

int orchd_sandbox_strict(const struct orchd_sandbox *sb)
{
	return !sb->basic;
}

void orchd_sandbox_apply(struct orchd_sandbox *sb, struct op_child *c)
{
	encode_plan(sb);
	c->reaper_plan = sb->plan.buf;
	c->reaper_plan_len = sb->plan.len;
	if (sb->ns) {
		c->clone_flags = NS_FLAGS | (sb->network_none ? CLONE_NEWNET : 0);
		c->flags |= OP_CHILD_REAPER;
		c->setup = setup_mounts;
	}
	if (sb->ns || sb->cgroup)
		c->parent_setup = parent_setup;
	c->exec_setup = lock_down;
	c->setup_arg = sb;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void orchd_sandbox_free(struct orchd_sandbox *sb)
{
	if (!sb)
		return;
	for (size_t i = 0; i < sb->nmops; i++)
		free(sb->mops[i].path);
	free(sb->mops);
	free_strv(sb->ll_write, sb->nll_write);
	free_strv(sb->ll_read, sb->nll_read);
	op_buf_release(&sb->plan);
	free(sb);
}
