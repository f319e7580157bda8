/*
 * core/doctor: `orchd doctor [--verify]` (see doctor.h).
 */
#include "core/doctor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/loader.h"
#include "core/orchestrator.h"
#include "crypto.h"
#include "handlers/cgroup.h"
#include "handlers/sandbox.h"
#include "handlers/supervisor.h"
#include "orchd_protocol.h"
#include "util.h"

/* --- the host ------------------------------------------------------------ */

static int read_sysctl(const char *path)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return atoi(buf);
}

/* Why user namespaces may be refused here, from what the host shows. */
static void userns_hints(struct op_buf *b)
{
	int v;
	char status[4096] = "";
	FILE *f;

	if ((v = read_sysctl("/proc/sys/user/max_user_namespaces")) == 0)
		op_buf_addstr(b, "; user.max_user_namespaces is 0");
	if ((v = read_sysctl("/proc/sys/kernel/unprivileged_userns_clone")) == 0 && geteuid())
		op_buf_addstr(b, "; kernel.unprivileged_userns_clone is 0 (Debian's switch)");
	if ((v = read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")) == 1 &&
	    geteuid())
		op_buf_addstr(b, "; AppArmor restricts unprivileged user namespaces "
				 "(kernel.apparmor_restrict_unprivileged_userns = 1)");
	f = fopen("/proc/self/status", "re");
	if (f) {
		while (fgets(status, sizeof(status), f))
			if (!strncmp(status, "Seccomp:", 8) && atoi(status + 8) == 2)
				op_buf_addstr(b, "; orchd itself runs under a seccomp filter (a "
						 "container's), which may refuse them");
		fclose(f);
	}
}

static void print_layer(const char *name, int ok, const char *detail)
{
	printf("  %-22s %s%s%s\n", name, ok ? "yes" : "no", detail && *detail ? ": " : "",
	       detail ? detail : "");
}

static void report_isolation(void)
{
	const struct orchd_sandbox_host *h = orchd_sandbox_probe();
	const struct orchd_cgroup_host *cg = orchd_cgroup_probe();
	const struct scmp_version *sv = seccomp_version();
	struct op_buf why = OP_BUF_INIT;
	char line[512], lsm[256] = "";
	int fd;

	printf("isolation layers (for uid %u here):\n", (unsigned)geteuid());
	if (!h->namespaces) {
		op_buf_addstr(&why, h->why);
		userns_hints(&why);
	}
	print_layer("namespaces", h->namespaces,
		    h->namespaces ? "user, pid, mount, ipc, uts" : op_buf_str(&why));
	print_layer("network namespace", h->netns,
		    h->netns	    ? "for network: none"
		    : h->namespaces ? "cannot bring up a loopback in one"
				    : "needs the namespaces above");
	snprintf(line, sizeof(line), "libseccomp %u.%u.%u", sv ? sv->major : 0, sv ? sv->minor : 0,
		 sv ? sv->micro : 0);
	print_layer("seccomp filter", h->seccomp, h->seccomp ? line : "the kernel refused it");
	fd = open("/sys/kernel/security/lsm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, lsm, sizeof(lsm) - 1);

		lsm[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	if (h->landlock_abi) {
		snprintf(line, sizeof(line), "ABI %d", h->landlock_abi);
	} else {
		snprintf(line, sizeof(line), "%s",
			 lsm[0] && !strstr(lsm, "landlock")
				 ? "the kernel's LSM list has no landlock (boot with "
				   "lsm=...,landlock)"
				 : "the kernel has no Landlock (5.13 or later, "
				   "CONFIG_SECURITY_LANDLOCK)");
	}
	print_layer("landlock", h->landlock_abi > 0, line);
	print_layer("no_new_privs", 1, NULL);
	{
		char *reaper = orchd_reaper_path();

		print_layer("reaper program", reaper != NULL,
			    reaper ? reaper
				   : "orchd-reaper is not installed: each reaper is a fork of "
				     "orchd (the same isolation, slower to start)");
		free(reaper);
	}
	if (cg->version)
		snprintf(line, sizeof(line), "%s: memory and pids of each instance as a whole",
			 cg->where);
	else
		snprintf(line, sizeof(line), "%s; setrlimit per process instead%s", cg->why,
			 geteuid() == 0 ? " (RLIMIT_NPROC does not bind root: pids is not "
					  "enforced)"
					: "");
	print_layer("cgroup (limits)", cg->version != 0, line);
	orchd_sandbox_describe(h, line, sizeof(line));
	printf("  => isolation %s\n", line);
	if (!h->namespaces)
		printf("     without namespaces, strict falls back: %s\n",
		       h->landlock_abi
			       ? "Landlock hides the state directory and the pipeline file; "
				 "other processes stay visible, /tmp is shared"
			       : "nothing hides the state directory or the pipeline file");
	op_buf_release(&why);
}

/* The first executable called name on PATH, or NULL (malloc'd). */
static char *which(const char *name)
{
	const char *path = getenv("PATH");
	char *copy, *save = NULL, *found = NULL;

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
	copy = xstrdup(path ? path : "/usr/bin:/bin");
	for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char *f = xasprintf("%s/%s", *d ? d : ".", name);

		if (access(f, X_OK) == 0)
			found = f;
		else
			free(f);
	}
	free(copy);
	return found;
}

static void print_list(const char *label, char **v)
{
	if (!v || !*v)
		return;
	printf("%-18s   %s:", "", label);
	for (char **p = v; *p; p++)
		printf(" %s", *p);
	printf("\n");
}

static void report_extensions(const struct orchd_doctor_opts *o)
{
	struct orchd_registry reg = ORCHD_REGISTRY_INIT;
	struct op_buf err = OP_BUF_INIT;

	if (orchd_loader_discover(&reg, (const char **)(uintptr_t)o->ext_dirs, o->next_dirs, 0,
				  &err) < 0)
		printf("warning: %s\n", op_buf_str(&err));
	op_buf_release(&err);
	printf("extensions:\n");
	for (size_t i = 0; i < reg.n; i++) {
		const struct orchd_ext_info *e = &reg.v[i];

		if (e->shadowed || !e->executable)
			continue;
		printf("  %-16s %s %s\n", e->type, e->version, e->path);
		if (e->manifest_error)
			printf("%-18s   manifest ignored: %s\n", "", e->manifest_error);
		printf("%-18s   network: %s%s\n", "", e->iso_network_none ? "none" : "host",
		       e->secrets ? "; stores secrets (needs the passphrase)" : "");
		print_list("reads", e->iso_read);
		print_list("writes", e->iso_write);
		print_list("is given", e->iso_env);
		for (char **t = e->tools; t && *t; t++) {
			char *alts = xstrdup(*t), *save = NULL, *hit = NULL;

			for (char *a = strtok_r(alts, "|", &save); a && !hit;
			     a = strtok_r(NULL, "|", &save))
				hit = which(a);
			printf("%-18s   tool %s: %s\n", "", *t, hit ? hit : "NOT FOUND on PATH");
			free(hit);
			free(alts);
		}
	}
	if (!reg.n)
		printf("  none found\n");
	orchd_loader_release(&reg);
}

static void report_engine(const struct orchd_doctor_opts *o)
{
	if (o->p && o->p->core.engine.type == ORCHD_ENGINE_PULUMI) {
		char *pulumi = which("pulumi");

		printf("state engine: pulumi (backend %s): pulumi %s\n",
		       o->p->core.engine.backend ? o->p->core.engine.backend : "the default",
		       pulumi ? pulumi : "NOT FOUND on PATH");
		free(pulumi);
	} else {
		printf("state engine: local (embedded: %s)\n",
		       o->p && o->p->core.state_dir ? o->p->core.state_dir
						    : ".orchd beside the pipeline file");
	}
}

/* --- --verify -------------------------------------------------------------- */

static const struct {
	const char *key, *what;
} attacks[] = {
	{"see_orchd", "see orchd's process"},
	{"see_others", "see other processes (the host's, other instances')"},
	{"read_orchd_environ", "read orchd's environment (/proc/PID/environ)"},
	{"read_orchd_memory", "read orchd's memory (/proc/PID/mem, process_vm_readv)"},
	{"list_orchd_fds", "list orchd's descriptors (/proc/PID/fd)"},
	{"ptrace_orchd", "ptrace orchd"},
	{"signal_orchd", "signal orchd"},
	{"read_reaper", "read its reaper (pid 1, a fork of orchd)"},
	{"passphrase_in_env", "find the passphrase in its environment"},
	{"list_state_dir", "list the state directory (stacks, lock, runs)"},
	{"sibling_workdir", "see a running sibling's workdir"},
	{"read_pipeline_file", "read the pipeline file (every instance's config)"},
	{"forge_stack", "forge another stack's record"},
	{"unlink_lock", "unlink the run's lock"},
	{"write_outside_workdir", "write outside its workdir"},
	{"host_tmp", "see the host's /tmp"},
	{"sys_mount", "mount a filesystem"},
	{"sys_unshare", "make a user namespace of its own"},
	{"sys_bpf", "load BPF"},
	{"sys_perf_event_open", "open a perf event"},
	{"sys_keyctl", "use the kernel keyring"},
	{"sys_kexec_load", "load a kernel (kexec)"},
	{"sys_init_module", "load a kernel module"},
	{"no_new_privs", "gain privileges through a setuid program"},
	{"daemon", "leave a setsid daemon behind"},
	{"fork_bomb", "fork without end (limit pids: 64)"},
	{"memory_hog", "allocate without end (limit memory: 256M)"},
	{"net_connect_host", "reach the host's loopback under network: none"},
	{"net_listen", "listen on a port the host can reach under network: none"},
};

/* Where the probe is installed: beside this orchd's libexec, or PREFIX. */
static char *probe_dir(void)
{
	return orchd_libexec_path("probe");
}

static char *random_hex(size_t bytes)
{
	unsigned char raw[32];
	char *s = xcalloc(1, bytes * 2 + 1);
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (bytes > sizeof(raw))
		bytes = sizeof(raw);
	if (fd < 0 || read(fd, raw, bytes) != (ssize_t)bytes)
		for (size_t i = 0; i < bytes; i++)
			raw[i] = (unsigned char)(rand() ^ (getpid() << 3) ^ time(NULL));
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < bytes; i++)
		snprintf(s + 2 * i, 3, "%02x", raw[i]);
	return s;
}

/* A listening socket on 127.0.0.1 (the host's); its port in *port. */
static int host_listener(int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static int connect_local(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* While the run goes on: the port the network probe listens on, tried
 * from here once it appears.  -1: not seen, 0: refused, 1: reached. */
static int try_probe_port(const char *state_dir)
{
	char *pattern = xasprintf("%s/runs/*/work/probe.network.*/port", state_dir);
	glob_t g;
	int ret = -1;

	if (glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc) {
		FILE *f = fopen(g.gl_pathv[0], "re");
		int port = 0;

		if (f && fscanf(f, "%d", &port) == 1 && port > 0)
			ret = connect_local(port);
		if (f)
			fclose(f);
	}
	globfree(&g);
	free(pattern);
	return ret;
}

/* A process whose command line holds tag (the probe's daemon); its pid. */
static pid_t find_tagged(const char *tag)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		char path[64], buf[512];
		pid_t pid = (pid_t)atoi(de->d_name);
		ssize_t n;
		int fd;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (ssize_t i = 0; i < n; i++)
			if (!buf[i])
				buf[i] = ' ';
		if (strstr(buf, tag))
			found = pid;
	}
	closedir(d);
	return found;
}

static const char *iso_level(const struct orchd_doctor_opts *o)
{
	return o->p && o->p->core.isolation.level == ORCHD_ISOLATION_BASIC ? "basic" : "strict";
}

static int verify(const struct orchd_doctor_opts *o)
{
	char *pdir = probe_dir(), *dir = NULL, *pipeline = NULL, *state = NULL, *report = NULL;
	char *sentinel = NULL, *tag = NULL, *yaml = NULL, *pass = NULL, *log = NULL, *rand6;
	char *netinst = NULL;
	int net = 0;
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	struct op_child c = OP_CHILD_INIT;
	json_object *rep = NULL, *insts;
	int lfd = -1, port = 0, st = 0, reached = -1, rc = ORCHD_EXIT_SYSTEM, nbad = 0, nok = 0;
	char self[PATH_MAX];
	ssize_t sn;
	pid_t daemon;

	if (!pdir) {
		printf("verify: the probe is not installed "
		       "(libexec/orchd/probe/orchd-ext-probe)\n");
		return ORCHD_EXIT_SYSTEM;
	}
	sn = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sn <= 0) {
		printf("verify: cannot find orchd's own executable: %s\n", strerror(errno));
		goto out;
	}
	self[sn] = '\0';
	dir = xasprintf("%s/orchd-doctor.XXXXXX", tmp);
	if (!mkdtemp(dir)) {
		printf("verify: cannot create %s: %s\n", dir, strerror(errno));
		free(dir);
		dir = NULL;
		goto out;
	}
	pipeline = xasprintf("%s/pipeline.yaml", dir);
	state = xasprintf("%s/.orchd", dir);
	report = xasprintf("%s/report.json", dir);
	log = xasprintf("%s/run.log", dir);
	rand6 = random_hex(6);
	sentinel = xasprintf("/tmp/orchd-doctor-sentinel.%s", rand6);
	tag = xasprintf("1000.%u%s", (unsigned)getpid() % 100000, "7");
	free(rand6);
	{
		int fd = open(sentinel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

		if (fd >= 0)
			close(fd);
	}
	lfd = host_listener(&port);
	/* network: none needs strict and a network namespace; elsewhere such
	 * an instance is refused (validate, or exit 3): nothing to probe */
	net = !strcmp(iso_level(o), "strict") && orchd_sandbox_probe()->netns;
	netinst = net ? xasprintf("    - name: network\n"
				  "      role: network\n"
				  "      host_port: '%d'\n"
				  "      isolation: {network: none}\n",
				  port)
		      : xstrdup("");
	yaml = xasprintf("doctor:\n"
			 "  core:\n"
			 "    stack: doctor\n"
			 "    parallelism: 4\n"
			 "    isolation: {level: %s, network: %s}\n"
			 "  probe:\n"
			 "    - name: attacker\n"
			 "      role: attacker\n"
			 "      state_dir: '%s'\n"
			 "      pipeline_file: '%s'\n"
			 "      sentinel: '%s'\n"
			 "      daemon_tag: '%s'\n"
			 "      execution: {limits: {pids: 64, memory: 256M}}\n"
			 "    - name: victim\n"
			 "      role: victim\n"
			 "      victim_ms: 3000\n"
			 "%s",
			 iso_level(o),
			 o->p && o->p->core.isolation.network_none && net ? "none" : "host", state,
			 pipeline, sentinel, tag, netinst);
	{
		FILE *f = fopen(pipeline, "we");

		if (!f || fputs(yaml, f) < 0 || fclose(f) != 0) {
			printf("verify: cannot write %s\n", pipeline);
			goto out;
		}
	}
	{
		/* a real run, with a passphrase to steal */
		const char *argv[] = {self, "--extensions-dir", pdir,	"run", pipeline,
				      "-q", "--report",		report, NULL};
		char *envp[6];
		int n = 0, out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		pass = random_hex(16);
		envp[n++] = xasprintf("ORCHD_PASSPHRASE=%s", pass);
		envp[n++] = xasprintf("PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
		if (getenv("HOME"))
			envp[n++] = xasprintf("HOME=%s", getenv("HOME"));
		envp[n++] = xstrdup("ORCHD_EXTENSIONS_PATH_ONLY=1");
		envp[n] = NULL;
		c.argv = argv;
		c.env = (const char *const *)envp;
		c.in = OP_CHILD_NULL;
		c.out = c.err = out;
		if (op_child_start(&c) < 0) {
			char e[256];

			op_child_error(&c, e, sizeof(e));
			printf("verify: cannot start %s: %s\n", self, e);
			close(out);
			for (int i = 0; i < n; i++)
				free(envp[i]);
			goto out;
		}
		close(out);
		for (int i = 0; i < n; i++)
			free(envp[i]);
	}
	while (op_child_reap(&c, 1, &st, NULL) == 0) {
		if (reached < 0)
			reached = try_probe_port(state);
		if (lfd >= 0) {
			/* the network probe may have reached us: accept and drop */
			int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (a >= 0)
				close(a);
		}
		usleep(50000);
	}
	usleep(200000); /* the daemon, if it escaped, has forked by now */
	daemon = find_tagged(tag);
	if (daemon > 0)
		kill(daemon, SIGKILL);
	rep = json_object_from_file(report);
	insts = rep ? op_get(rep, "instances") : NULL;
	if (!insts || !json_object_is_type(insts, json_type_array)) {
		char buf[2048] = "";
		FILE *f = fopen(log, "re");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		buf[n] = '\0';
		if (f)
			fclose(f);
		printf("verify: the probe's run left no report (exit status %d):\n%s\n",
		       WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), buf);
		goto out;
	}
	{
		json_object *outs = json_object_new_object(), *isos = json_object_new_object();
		size_t ni = json_object_array_length(insts);

		for (size_t i = 0; i < ni; i++) {
			json_object *it = json_object_array_get_idx(insts, i),
				    *o2 = op_get(it, "outputs");

			json_object_object_add(
				isos, op_get_str(it, "name") ? op_get_str(it, "name") : "?",
				json_object_new_string(op_get_str(it, "isolation")
							       ? op_get_str(it, "isolation")
							       : "?"));
			if (!o2)
				continue;
			json_object_object_foreach(o2, k, v)
			{
				json_object *val = op_get(v, "value");

				json_object_object_add(
					outs, k,
					json_object_new_string(val ? json_object_get_string(val)
								   : ""));
			}
		}
		printf("the probe ran as instance probe.attacker under isolation %s%s, as uid "
		       "%u:\n",
		       op_get_str(isos, "attacker") ? op_get_str(isos, "attacker") : "?",
		       net ? " (network: none for probe.network)" : "", (unsigned)geteuid());
		for (size_t i = 0; i < ARRAY_SIZE(attacks); i++) {
			const char *v = op_get_str(outs, attacks[i].key);
			char buf[600];
			int ok;

			if (!strcmp(attacks[i].key, "daemon")) {
				if (!v)
					v = "";
				snprintf(buf, sizeof(buf), "%s: %s",
					 daemon > 0 ? "EXPOSED" : "contained",
					 daemon > 0 ? "it outlived the run (killed now)"
						    : "it died with the instance");
				v = buf;
			} else if (!strcmp(attacks[i].key, "net_listen") && reached == 1) {
				snprintf(buf, sizeof(buf), "EXPOSED: the host connected to it");
				v = buf;
			} else if (!net && !strncmp(attacks[i].key, "net_", 4)) {
				snprintf(buf, sizeof(buf), "%s",
					 strcmp(iso_level(o), "strict")
						 ? "EXPOSED: isolation basic has no network: none "
						   "(such "
						   "an instance is refused at validate)"
						 : "contained: no network namespace here: an "
						   "instance "
						   "with network: none is refused (exit 3), never "
						   "run "
						   "on the host's network");
				v = buf;
			}
			if (!v)
				v = "not tried: the probe did not report it";
			ok = !strncmp(v, "contained", 9);
			if (ok)
				nok++;
			else
				nbad++;
			printf("  %-10s %-62s %s\n", ok ? "contained" : "EXPOSED", attacks[i].what,
			       strchr(v, ':') ? strchr(v, ':') + 2 : v);
		}
		json_object_put(outs);
		json_object_put(isos);
	}
	printf("%d of %zu attacks contained%s\n", nok, ARRAY_SIZE(attacks),
	       nbad ? "; see README \"Security model\" for what each layer needs" : "");
	rc = nbad ? ORCHD_EXIT_FAILED : ORCHD_EXIT_OK;
out:
	if (lfd >= 0)
		close(lfd);
	if (sentinel)
		unlink(sentinel);
	if (dir && op_rmtree(dir) < 0)
		printf("warning: cannot remove %s: %s\n", dir, strerror(errno));
	json_object_put(rep);
	if (pass)
		memset(pass, 0, strlen(pass));
	free(pass);
	free(netinst);
	free(yaml);
	free(tag);
	free(sentinel);
	free(log);
	free(report);
	free(state);
	free(pipeline);
	free(dir);
	free(pdir);
	return rc;
}

int orchd_doctor(const struct orchd_doctor_opts *o)
{
	struct utsname u;

	if (uname(&u) == 0)
		printf("orchd %s on %s %s %s, uid %u%s\n", ORCHD_VERSION, u.sysname, u.release,
		       u.machine, (unsigned)geteuid(), geteuid() == 0 ? " (root)" : "");
	report_isolation();
	report_engine(o);
	report_extensions(o);
	fflush(stdout);
	if (!o->verify)
		return ORCHD_EXIT_OK;
	printf("\nverify:\n");
	fflush(stdout);
	return verify(o);
}
