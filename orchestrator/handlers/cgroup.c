/*
 * handlers/cgroup: one control group a step (see cgroup.h).
 */
#include "handlers/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/logging.h"
#include "util.h"

/* v1 hierarchies orchd uses */
enum { H_PIDS, H_MEMORY, NHIER };
static const char *const hier_name[NHIER] = {"pids", "memory"};

static struct orchd_cgroup_host host;
static int probed;
/* v2: the directory of orchd's cgroup; v1: orchd's cgroup in each hierarchy */
static char base[NHIER][PATH_MAX];
static int v2_move_self; /* v2: orchd must first move to a leaf of its own */
static int v2_ready;	 /* v2: the controllers are enabled under base */
static unsigned long serial;
/* cgroups that were still busy when freed */
static char **busy;
static size_t nbusy, abusy;

struct orchd_cgroup {
	int version;
	char dir[NHIER][PATH_MAX]; /* v2: dir[0] only */
	int64_t memory, pids;
};

/* --- small file helpers ------------------------------------------------- */

static int write_str(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(text);
	ssize_t n;
	int e;

	if (fd < 0)
		return -1;
	n = write(fd, text, len);
	e = errno;
	close(fd);
	if (n != (ssize_t)len) {
		errno = n < 0 ? e : EIO;
		return -1;
	}
	return 0;
}

/* Read a small file into buf ("" on failure); 0 or -1. */
static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return -1;
	while (got + 1 < len && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	return 0;
}

/* The value of "key N" in a flat-keyed file (memory.events, pids.events,
 * memory.oom_control); -1 when absent. */
static long long keyed_value(const char *path, const char *key)
{
	char buf[4096], *p;
	size_t kl = strlen(key);

	if (read_str(path, buf, sizeof(buf)) < 0)
		return -1;
	for (p = buf; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
		if (!strncmp(p, key, kl) && p[kl] == ' ')
			return strtoll(p + kl + 1, NULL, 10);
	return -1;
}

static int has_word(const char *list, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += wl)
		if ((p == list || p[-1] == ' ' || p[-1] == ',') &&
		    (p[wl] == '\0' || p[wl] == ' ' || p[wl] == ',' || p[wl] == '\n'))
			return 1;
	return 0;
}

/* --- where orchd's cgroups are ------------------------------------------ */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/*
 * Find the mount of a cgroup hierarchy: v2 (controller NULL) or the v1
 * hierarchy holding controller.  Sets mnt and its root; 0 or -1.
 */
static int find_mount(const char *controller, char *mnt, char *root)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = -1;

	if (!f)
		return -1;
	while (found < 0 && getline(&line, &cap, f) > 0) {
		char r[PATH_MAX], m[PATH_MAX], fstype[64], opts[1024];
		char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2 ||
		    sscanf(dash + 3, "%63s %*s %1023s", fstype, opts) != 2)
			continue;
		if (controller ? strcmp(fstype, "cgroup") || !has_word(opts, controller)
			       : strcmp(fstype, "cgroup2"))
			continue;
		unescape(r);
		unescape(m);
		snprintf(mnt, PATH_MAX, "%s", m);
		snprintf(root, PATH_MAX, "%s", r);
		found = 0;
	}
	free(line);
	fclose(f);
	return found;
}

/* orchd's cgroup path in a hierarchy (/proc/self/cgroup): v2 (controller
 * NULL, the "0::" line) or the v1 line listing controller; 0 or -1. */
static int own_path(const char *controller, char *path)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = -1;

	if (!f)
		return -1;
	while (found < 0 && getline(&line, &cap, f) > 0) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2)
			continue;
		*c2 = '\0';
		line[strcspn(line, "\n")] = '\0';
		c2[1 + strcspn(c2 + 1, "\n")] = '\0';
		if (controller ? !has_word(c1 + 1, controller) : strcmp(line, "0") || c1[1])
			continue;
		snprintf(path, PATH_MAX, "%s", c2 + 1);
		found = 0;
	}
	free(line);
	fclose(f);
	return found;
}

/* The directory of orchd's cgroup: mount + (path less the mount's root). */
static int own_dir(const char *controller, char *dir)
{
	char mnt[PATH_MAX], root[PATH_MAX], path[PATH_MAX];
	const char *rel;
	size_t rl;

	if (find_mount(controller, mnt, root) < 0 || own_path(controller, path) < 0)
		return -1;
	rl = strlen(root);
	rel = path;
	if (strcmp(root, "/") && !strncmp(path, root, rl) && (path[rl] == '/' || !path[rl]))
		rel = path + rl;
	else if (strcmp(root, "/"))
		rel = "/"; /* outside the mounted subtree: a cgroup namespace */
	if ((size_t)snprintf(dir, PATH_MAX, "%s%s", mnt, strcmp(rel, "/") ? rel : "") >= PATH_MAX)
		return -1;
	return 0;
}

/* Can orchd make a child cgroup in dir? */
static int can_make_child(const char *dir, char *why, size_t len)
{
	char test[PATH_MAX + 64];

	snprintf(test, sizeof(test), "%s/orchd-probe.%d", dir, (int)getpid());
	if (mkdir(test, 0755) < 0) {
		snprintf(why, len, "cannot create a cgroup in %.160s: %s", dir, strerror(errno));
		return 0;
	}
	rmdir(test);
	return 1;
}

/* The processes of a cgroup, as a count: 1 when only orchd is in it. */
static int only_self(const char *dir)
{
	char path[PATH_MAX + 32], buf[4096];
	long long pid;
	int n = 0, self = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	if (read_str(path, buf, sizeof(buf)) < 0)
		return 0;
	for (char *p = buf, *end;; p = end + strspn(end, "\n")) {
		pid = strtoll(p, &end, 10);
		if (end == p)
			break;
		if (pid == getpid())
			self = 1;
		n++;
	}
	return n == 1 && self;
}

static int probe_v2(char *why, size_t len)
{
	char path[PATH_MAX + 32], buf[256];

	if (own_dir(NULL, base[0]) < 0) {
		snprintf(why, len, "no cgroup v2 hierarchy");
		return 0;
	}
	snprintf(path, sizeof(path), "%s/cgroup.controllers", base[0]);
	read_str(path, buf, sizeof(buf));
	if (!has_word(buf, "pids") || !has_word(buf, "memory")) {
		snprintf(why, len, "cgroup v2: %.160s has no pids and memory controllers delegated",
			 base[0]);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", base[0]);
	if (access(path, W_OK) < 0) {
		snprintf(why, len, "cgroup v2: %.160s is not delegated to this user", base[0]);
		return 0;
	}
	read_str(path, buf, sizeof(buf));
	if (has_word(buf, "pids") && has_word(buf, "memory")) {
		v2_ready = 1;
	} else if (!only_self(base[0])) {
		/* enabling them needs a cgroup without processes */
		char procs[PATH_MAX + 32];

		snprintf(procs, sizeof(procs), "%s/cgroup.procs", base[0]);
		read_str(procs, buf, sizeof(buf));
		if (buf[0]) {
			snprintf(why, len,
				 "cgroup v2: %.100s holds other processes than orchd (run orchd in "
				 "a "
				 "delegated cgroup of its own, e.g. systemd-run --user --scope -p "
				 "Delegate=yes)",
				 base[0]);
			return 0;
		}
	} else {
		v2_move_self = 1;
	}
	return can_make_child(base[0], why, len);
}

static int probe_v1(char *why, size_t len)
{
	for (int h = 0; h < NHIER; h++) {
		if (own_dir(hier_name[h], base[h]) < 0) {
			snprintf(why, len, "no %s cgroup hierarchy", hier_name[h]);
			return 0;
		}
		if (!can_make_child(base[h], why, len))
			return 0;
	}
	return 1;
}

/*
 * Remove the cgroups an orchd killed with -9 left under base: orchd-PID.*
 * of a PID that no longer exists (an empty cgroup goes with rmdir; one
 * still holding a process stays).  Without this they piled up by the
 * hundred on a CI host.
 */
static void sweep_dead(int nhier)
{
	for (int h = 0; h < nhier; h++) {
		DIR *d = opendir(base[h]);
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char path[PATH_MAX + 300];
			int pid, n = 0;

			if (sscanf(e->d_name, "orchd-%d.%n", &pid, &n) != 1 || !n || pid <= 0 ||
			    pid == (int)getpid() || kill(pid, 0) == 0 || errno != ESRCH)
				continue;
			snprintf(path, sizeof(path), "%.4000s/%s", base[h], e->d_name);
			rmdir(path);
		}
		if (d)
			closedir(d);
	}
}

const struct orchd_cgroup_host *orchd_cgroup_probe(void)
{
	char why2[256] = "", why1[256] = "";

	if (probed)
		return &host;
	probed = 1;
	if (probe_v2(why2, sizeof(why2))) {
		host.version = 2;
		snprintf(host.where, sizeof(host.where), "v2 %.200s", base[0]);
		sweep_dead(1);
	} else if (probe_v1(why1, sizeof(why1))) {
		host.version = 1;
		snprintf(host.where, sizeof(host.where), "v1 %.120s, %.120s", base[H_PIDS],
			 base[H_MEMORY]);
		sweep_dead(NHIER);
	} else {
		snprintf(host.why, sizeof(host.why), "%s; %s", why2, why1);
	}
	return &host;
}

/* v2: enable pids and memory for orchd's children, moving orchd to a leaf
 * of its own first when it is alone in its cgroup. */
static int v2_enable(char *err, size_t errlen)
{
	char path[PATH_MAX + 64], pid[32];

	if (v2_ready)
		return 0;
	if (v2_move_self) {
		snprintf(path, sizeof(path), "%s/orchd-%d.supervisor", base[0], (int)getpid());
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		if ((mkdir(path, 0755) < 0 && errno != EEXIST))
			goto fail;
		strcat(path, "/cgroup.procs");
		if (write_str(path, pid) < 0)
			goto fail;
	}
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", base[0]);
	if (write_str(path, "+pids +memory") < 0)
		goto fail;
	v2_ready = 1;
	return 0;
fail:
	snprintf(err, errlen, "cannot set up cgroup %s: %s", path, strerror(errno));
	return -1;
}

/* --- one step's cgroup -------------------------------------------------- */

static void set_value(const char *dir, const char *file, int64_t v)
{
	char path[PATH_MAX + 64], num[32];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(num, sizeof(num), "%" PRId64, v);
	write_str(path, num); /* an optional file: the required ones are checked */
}

static int set_required(const char *dir, const char *file, int64_t v, char *err, size_t errlen)
{
	char path[PATH_MAX + 64], num[32];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(num, sizeof(num), "%" PRId64, v);
	if (write_str(path, num) < 0) {
		snprintf(err, errlen, "cannot set %s to %s: %s", path, num, strerror(errno));
		return -1;
	}
	return 0;
}

/* Kill what is left in dir (its cgroup.procs) and try to remove it. */
static int kill_and_remove(const char *dir)
{
	char path[PATH_MAX + 32], buf[8192];

	if (!rmdir(dir) || errno == ENOENT)
		return 0;
	snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
	if (write_str(path, "1") < 0) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
		for (int round = 0; round < 8; round++) {
			if (read_str(path, buf, sizeof(buf)) < 0 || !buf[0])
				break;
			for (char *p = buf, *end;; p = end + strspn(end, "\n")) {
				long pid = strtol(p, &end, 10);

				if (end == p)
					break;
				if (pid > 0)
					kill((pid_t)pid, SIGKILL);
			}
		}
	}
	return rmdir(dir) < 0 && errno != ENOENT ? -1 : 0;
}

static void remember_busy(const char *dir)
{
	ALLOC_GROW(busy, nbusy + 1, abusy);
	busy[nbusy++] = xstrdup(dir);
}

static void retry_busy(void)
{
	size_t w = 0;

	for (size_t i = 0; i < nbusy; i++) {
		if (kill_and_remove(busy[i]) < 0)
			busy[w++] = busy[i];
		else
			free(busy[i]);
	}
	nbusy = w;
}

struct orchd_cgroup *orchd_cgroup_new(const struct orchd_limits *lim, char *err, size_t errlen)
{
	const struct orchd_cgroup_host *h = orchd_cgroup_probe();
	struct orchd_cgroup *cg;
	unsigned long n;

	err[0] = '\0';
	if (!h->version || !lim || (lim->memory <= 0 && lim->pids <= 0))
		return NULL;
	if (h->version == 2 && v2_enable(err, errlen) < 0)
		return NULL;
	if (nbusy)
		retry_busy();
	cg = xcalloc(1, sizeof(*cg));
	cg->version = h->version;
	cg->memory = lim->memory > 0 ? lim->memory : 0;
	cg->pids = lim->pids > 0 ? lim->pids : 0;
	n = ++serial;
	for (int i = 0; i < (h->version == 2 ? 1 : NHIER); i++) {
		/* v1: only the hierarchies of the limits set (a memory cgroup
		 * is the costly one to make and remove) */
		if (h->version == 1 && !(i == H_PIDS ? cg->pids : cg->memory))
			continue;
		snprintf(cg->dir[i], sizeof(cg->dir[i]), "%.4000s/orchd-%d.%lu", base[i],
			 (int)getpid(), n);
		/* EEXIST: left by a dead orchd that had our pid; an empty one
		 * goes (rmdir fails while a process is in it) */
		if (mkdir(cg->dir[i], 0755) < 0 &&
		    (errno != EEXIST || rmdir(cg->dir[i]) < 0 || mkdir(cg->dir[i], 0755) < 0)) {
			if (errno == EBUSY)
				errno = EEXIST;
			snprintf(err, errlen, "cannot create cgroup %s: %s", cg->dir[i],
				 strerror(errno));
			cg->dir[i][0] = '\0';
			goto fail;
		}
	}
	if (h->version == 2) {
		if (cg->pids && set_required(cg->dir[0], "pids.max", cg->pids, err, errlen) < 0)
			goto fail;
		if (cg->memory) {
			if (set_required(cg->dir[0], "memory.max", cg->memory, err, errlen) < 0)
				goto fail;
			set_value(cg->dir[0], "memory.swap.max", 0);
			set_value(cg->dir[0], "memory.oom.group", 1);
		}
	} else {
		if (cg->pids &&
		    set_required(cg->dir[H_PIDS], "pids.max", cg->pids, err, errlen) < 0)
			goto fail;
		if (cg->memory) {
			if (set_required(cg->dir[H_MEMORY], "memory.limit_in_bytes", cg->memory,
					 err, errlen) < 0)
				goto fail;
			set_value(cg->dir[H_MEMORY], "memory.memsw.limit_in_bytes", cg->memory);
		}
	}
	return cg;
fail:
	orchd_cgroup_free(cg);
	return NULL;
}

int orchd_cgroup_attach(struct orchd_cgroup *cg, pid_t pid)
{
	char path[PATH_MAX + 32], num[32];

	snprintf(num, sizeof(num), "%d", (int)pid);
	for (int i = 0; i < NHIER; i++) {
		if (!cg->dir[i][0])
			continue;
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dir[i]);
		if (write_str(path, num) < 0)
			return -1;
	}
	return 0;
}

void orchd_cgroup_verdict(const struct orchd_cgroup *cg, char *buf, size_t len)
{
	const char *mdir = cg->version == 2 ? cg->dir[0] : cg->dir[H_MEMORY];
	const char *pdir = cg->version == 2 ? cg->dir[0] : cg->dir[H_PIDS];
	char path[PATH_MAX + 32], size[32];
	long long oom = -1, pmax = -1;

	buf[0] = '\0';
	if (cg->memory) {
		if (cg->version == 2) {
			snprintf(path, sizeof(path), "%s/memory.events", mdir);
			oom = keyed_value(path, "oom_kill");
			if (oom <= 0)
				oom = keyed_value(path, "oom");
		} else {
			snprintf(path, sizeof(path), "%s/memory.oom_control", mdir);
			oom = keyed_value(path, "oom_kill");
			if (oom < 0) {
				snprintf(path, sizeof(path), "%s/memory.failcnt", mdir);
				read_str(path, size, sizeof(size));
				oom = atoll(size);
			}
		}
	}
	if (oom > 0) {
		orchd_format_size(size, sizeof(size), cg->memory);
		snprintf(buf, len, "exceeded its memory limit (%s)", size);
		return;
	}
	if (cg->pids) {
		snprintf(path, sizeof(path), "%s/pids.events", pdir);
		pmax = keyed_value(path, "max");
	}
	if (pmax > 0)
		snprintf(buf, len, "exceeded its pids limit (%lld)", (long long)cg->pids);
}

void orchd_cgroup_free(struct orchd_cgroup *cg)
{
	if (!cg)
		return;
	for (int i = 0; i < NHIER; i++)
		if (cg->dir[i][0] && kill_and_remove(cg->dir[i]) < 0)
			remember_busy(cg->dir[i]);
	free(cg);
}

void orchd_cgroup_sweep(void)
{
	for (int tries = 0; nbusy && tries < 50; tries++) {
		retry_busy();
		if (nbusy)
			usleep(10000);
	}
	for (size_t i = 0; i < nbusy; i++)
		free(busy[i]);
	nbusy = 0;
}
