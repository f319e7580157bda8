/* tests/etcdsim: a real etcd and simulated hosts (see etcdsim.h). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcdsim.h"
#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

struct etcd_srv esim_srv;
char *esim_tmp;

static int esim_etcd_healthy(void)
{
	char *out =
		esim_sh("etcdctl --command-timeout=1s endpoint health >/dev/null 2>&1 && echo ok");
	int ok = !strcmp(out, "ok\n");

	free(out);
	return ok;
}

/* Start etcd on s's ports and data directory (kept across a restart). */
void esim_etcd_spawn(struct etcd_srv *s)
{
	char *log = xasprintf("%s/etcd.log", s->dir);
	int i;

	s->pid = fork();
	ck_assert_int_ge(s->pid, 0);
	if (s->pid == 0) {
		char *data = xasprintf("%s/data", s->dir);
		char *purl = xasprintf("http://127.0.0.1:%d", s->peer);
		char *cluster = xasprintf("default=%s", purl);
		char *av[32];
		int n = 0;
		FILE *f = freopen(log, "a", stdout);

		if (!f || dup2(STDOUT_FILENO, STDERR_FILENO) < 0)
			_exit(126);
		av[n++] = S("etcd");
		av[n++] = S("--data-dir");
		av[n++] = data;
		av[n++] = S("--listen-client-urls");
		av[n++] = s->listen ? s->listen : s->url;
		av[n++] = S("--advertise-client-urls");
		av[n++] = s->url;
		av[n++] = S("--listen-peer-urls");
		av[n++] = purl;
		av[n++] = S("--initial-advertise-peer-urls");
		av[n++] = purl;
		av[n++] = S("--initial-cluster");
		av[n++] = cluster;
		av[n++] = S("--log-level");
		av[n++] = S("warn");
		if (s->tls) {
			av[n++] = S("--cert-file");
			av[n++] = xasprintf("%s/server.pem", s->tls);
			av[n++] = S("--key-file");
			av[n++] = xasprintf("%s/server.key", s->tls);
			av[n++] = S("--trusted-ca-file");
			av[n++] = xasprintf("%s/ca.pem", s->tls);
			av[n++] = S("--client-cert-auth");
		}
		av[n] = NULL;
		execvp("etcd", av);
		_exit(127);
	}
	for (i = 0; i < 200 && !esim_etcd_healthy(); i++) {
		int st;

		ck_assert_msg(waitpid(s->pid, &st, WNOHANG) == 0,
			      "etcd exited (not built? run make tools): see %s", log);
		usleep(50000);
	}
	ck_assert_msg(i < 200, "etcd on %s not healthy after 10s: see %s", s->url, log);
	free(log);
}

/* A CA, a server certificate for 127.0.0.1 and a client certificate, in
 * dir (openssl's command line, as an operator would make them). */
static void esim_make_certs(const char *dir)
{
	char *out = esim_sh(
		"set -e; cd '%s'; exec 2>certs.log; ec='-newkey ec -pkeyopt "
		"ec_paramgen_curve:prime256v1 -nodes';"
		"openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=orchd-test-ca;"
		"printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' "
		"> srv.ext;"
		"printf 'extendedKeyUsage=clientAuth\\n' > cli.ext;"
		"for w in server:srv client:cli; do n=${w%%:*}; x=${w#*:};"
		" openssl req $ec -keyout $n.key -out $n.csr -subj /CN=orchd-$n;"
		" openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
		" -out $n.pem -days 2 -extfile $x.ext; done; echo ok",
		dir);

	ck_assert_msg(!strcmp(out, "ok\n"), "certificates not made: see %s/certs.log", dir);
	free(out);
}

void esim_etcd_start(struct etcd_srv *s, int tls)
{
	s->port = test_free_port();
	do
		s->peer = test_free_port();
	while (s->peer == s->port);
	s->dir = test_tmpdir();
	if (tls) {
		s->tls = xasprintf("%s/tls", s->dir);
		ck_assert_int_eq(mkdir(s->tls, 0700), 0);
		esim_make_certs(s->tls);
		s->ctl_env = xasprintf("ETCDCTL_CACERT=%s/ca.pem ETCDCTL_CERT=%s/client.pem "
				       "ETCDCTL_KEY=%s/client.key; export ETCDCTL_CACERT "
				       "ETCDCTL_CERT ETCDCTL_KEY; ",
				       s->tls, s->tls, s->tls);
	}
	s->url = xasprintf("%s://127.0.0.1:%d", tls ? "https" : "http", s->port);
	esim_etcd_spawn(s);
}

void esim_etcd_kill(struct etcd_srv *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGCONT);
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
	}
	s->pid = 0;
}

void esim_etcd_stop(struct etcd_srv *s)
{
	esim_etcd_kill(s);
	if (s->dir)
		test_rmtree(s->dir);
	free(s->dir);
	free(s->url);
	free(s->tls);
	free(s->ctl_env);
	free(s->listen);
	memset(s, 0, sizeof(*s));
}

/* The output of the shell command fmt (run with etcdctl pointed at esim_srv). */
char *esim_sh(const char *fmt, ...)
{
	struct op_buf sb = OP_BUF_INIT;
	char buf[65536], *cmd, *full;
	va_list ap;
	size_t n;
	FILE *p;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&cmd, fmt, ap), 0);
	va_end(ap);
	full = xasprintf("ETCDCTL_ENDPOINTS=%s; export ETCDCTL_ENDPOINTS; %s%s",
			 esim_srv.url ? esim_srv.url : "", esim_srv.ctl_env ? esim_srv.ctl_env : "",
			 cmd);
	p = popen(full, "r");
	ck_assert_ptr_nonnull(p);
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		op_buf_add(&sb, buf, n);
	pclose(p);
	free(cmd);
	free(full);
	return op_buf_detach(&sb, NULL) ?: xstrdup("");
}

void esim_setup_bare(void)
{
	esim_tmp = test_tmpdir();
	unsetenv("ORCHD_PASSPHRASE_FILE");
	unsetenv("ORCHD_ETCD_ENDPOINTS");
	unsetenv("ORCHD_ETCD_PASSWORD");
	setenv("ORCHD_PASSPHRASE", "etcd test passphrase", 1);
}

void esim_setup(void)
{
	esim_setup_bare();
	esim_etcd_start(&esim_srv, 0);
}

void esim_teardown(void)
{
	esim_etcd_stop(&esim_srv);
	test_rmtree(esim_tmp);
	free(esim_tmp);
	unsetenv("ORCHD_PASSPHRASE");
}

/* argv (orchd) in the background; its stdout and stderr to log, unless
 * log is NULL. */
pid_t esim_spawn_bg(char *const argv[], const char *log)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (log && (!freopen(log, "w", stderr) || dup2(STDERR_FILENO, STDOUT_FILENO) < 0))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Wait (5 s at most) until the etcd key exists: a run has taken its lock. */
void esim_wait_key(const char *key)
{
	int i;

	for (i = 0; i < 100; i++) {
		char *out = esim_sh("etcdctl get %s --keys-only | grep -c .", key);
		int n = atoi(out);

		free(out);
		if (n)
			break;
		usleep(50000);
	}
	ck_assert_msg(i < 100, "no run took the lock %s", key);
}

/* ---- simulated hosts: network namespaces ---- */

/*
 * Two "hosts", each a network namespace joined to this one by a veth pair
 * on a /30 of a private subnet of the test's own (10.231.X.0/24, X from the
 * pid); etcd listens on this side of every link.  Everything made here is
 * named after the pid and removed by esim_hosts_teardown, processes by pid.
 */

struct host esim_hosts[ESIM_MAX_HOSTS];
int esim_nhosts;
static int esim_subnet;
static int esim_guard_fd = -1;

/*
 * A failed check ends the test's process at once (_exit: no teardown, no
 * atexit), so the hosts are also in the hands of a guard process: it is
 * told, over a pipe, each thing made here ("pid N", "ns NAME", "link
 * NAME"), and when the pipe closes (the test's process ended, however) it
 * kills those processes and deletes those namespaces and links.
 */
void esim_guard_start(void)
{
	int p[2];
	pid_t g;

	if (esim_guard_fd >= 0)
		return;
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	g = fork();
	ck_assert_int_ge(g, 0);
	if (g == 0) {
		char line[256];
		FILE *in;

		close(p[1]);
		/* not this test's process group: outlive a kill of it */
		setsid();
		in = fdopen(p[0], "r");
		if (!in)
			_exit(1);
		pid_t pids[64];
		char *names[64];
		int np = 0, nn = 0;

		while (fgets(line, sizeof(line), in)) {
			line[strcspn(line, "\n")] = '\0';
			if (!strncmp(line, "pid ", 4) && np < 64) {
				pids[np++] = (pid_t)atol(line + 4);
			} else if (!strncmp(line, "unpid ", 6)) {
				/* reaped: its number may be reused */
				for (int i = 0; i < np; i++)
					if (pids[i] == (pid_t)atol(line + 6))
						pids[i] = 0;
			} else if (nn < 64) {
				names[nn++] = xstrdup(line);
			}
		}
		for (int i = 0; i < np; i++)
			if (pids[i] > 0)
				kill(pids[i], SIGKILL);
		for (int i = 0; i < nn; i++) {
			pid_t c = fork();

			if (c == 0) {
				int devnull = open("/dev/null", O_WRONLY);

				dup2(devnull, 1);
				dup2(devnull, 2);
				if (!strncmp(names[i], "ns ", 3))
					execlp("ip", "ip", "netns", "del", names[i] + 3,
					       (char *)NULL);
				else
					execlp("ip", "ip", "link", "del", names[i] + 5,
					       (char *)NULL);
				_exit(127);
			}
			if (c > 0)
				waitpid(c, NULL, 0);
		}
		_exit(0);
	}
	close(p[0]);
	esim_guard_fd = p[1];
}

void esim_guard_stop(void)
{
	if (esim_guard_fd >= 0)
		close(esim_guard_fd);
	esim_guard_fd = -1;
}

void esim_guard(const char *what, const char *name, long pid)
{
	char line[256];
	int n = name ? snprintf(line, sizeof(line), "%s %s\n", what, name)
		     : snprintf(line, sizeof(line), "%s %ld\n", what, pid);

	ck_assert_int_eq(write(esim_guard_fd, line, (size_t)n), n);
}

/* The hosts and their processes go (idempotent). */
void esim_hosts_cleanup(void)
{
	for (int i = 0; i < esim_nhosts; i++) {
		struct host *h = &esim_hosts[i];
		char *out;

		if (h->pid > 0) {
			kill(h->pid, SIGKILL);
			waitpid(h->pid, NULL, 0);
			if (esim_guard_fd >= 0)
				esim_guard("unpid", NULL, h->pid);
		}
		if (h->ns[0]) {
			/* deleting the namespace deletes the veth pair */
			out = esim_sh(
				"ip link del %s 2>/dev/null; ip netns del %s 2>/dev/null; true",
				h->veth, h->ns);
			free(out);
		}
		memset(h, 0, sizeof(*h));
	}
}

void esim_hosts_teardown(void)
{
	if (esim_guard_fd >= 0 && esim_srv.pid > 0)
		esim_guard("unpid", NULL, esim_srv.pid);
	esim_hosts_cleanup();
	esim_teardown();
	if (esim_guard_fd >= 0)
		close(esim_guard_fd);
	esim_guard_fd = -1;
}

static void esim_host_make(struct host *h, int i)
{
	int base = 4 * i;
	char *out;

	snprintf(h->ns, sizeof(h->ns), "orchdt-%ld-%c", (long)getpid(), 'a' + i);
	snprintf(h->veth, sizeof(h->veth), "or%c%ld", 'a' + i, (long)getpid());
	snprintf(h->peer, sizeof(h->peer), "on%c%ld", 'a' + i, (long)getpid());
	snprintf(h->etcd_addr, sizeof(h->etcd_addr), "10.231.%d.%d", esim_subnet, base + 1);
	snprintf(h->addr, sizeof(h->addr), "10.231.%d.%d", esim_subnet, base + 2);
	out = esim_sh("set -e; exec 2>&1; ip netns add %s; ip link add %s type veth peer name %s;"
		      "ip link set %s netns %s; ip addr add %s/30 dev %s; ip link set %s up;"
		      "ip -n %s addr add %s/30 dev %s; ip -n %s link set %s up;"
		      "ip -n %s link set lo up; echo ok",
		      h->ns, h->veth, h->peer, h->peer, h->ns, h->etcd_addr, h->veth, h->veth,
		      h->ns, h->addr, h->peer, h->ns, h->peer, h->ns);
	ck_assert_msg(!strcmp(out, "ok\n"), "cannot make host %s: %s", h->ns, out);
	free(out);
}

void esim_hosts_setup(void)
{
	esim_hosts_setup_n(2);
}

void esim_hosts_setup_n(int n)
{
	char *extra;

	esim_setup_bare();
	if (geteuid() != 0)
		return;
	esim_subnet = 1 + (int)(getpid() % 250);
	/* what an earlier run that was killed left: namespaces of dead pids */
	esim_guard_start();
	esim_nhosts = n;
	for (int i = 0; i < n; i++) {
		esim_host_make(&esim_hosts[i], i);
		esim_guard("ns", esim_hosts[i].ns, 0);
		esim_guard("link", esim_hosts[i].veth, 0);
	}
	/* etcd: loopback (for etcdctl here) and this side of each link */
	esim_srv.port = test_free_port();
	do
		esim_srv.peer = test_free_port();
	while (esim_srv.peer == esim_srv.port);
	esim_srv.dir = test_tmpdir();
	esim_srv.url = xasprintf("http://127.0.0.1:%d", esim_srv.port);
	extra = xasprintf("http://127.0.0.1:%d", esim_srv.port);
	for (int i = 0; i < n; i++) {
		char *more =
			xasprintf("%s,http://%s:%d", extra, esim_hosts[i].etcd_addr, esim_srv.port);

		free(extra);
		extra = more;
	}
	esim_srv.listen = extra;
	esim_etcd_spawn(&esim_srv);
	esim_guard("pid", NULL, esim_srv.pid);
}

/* orchd ARGS... on host h, stderr to h's log; its pid in h->pid. */
void esim_host_orchd(struct host *h, const char *log, const char *const *args)
{
	char *bin = test_build_path("bin/orchd"), *eps;
	char *av[24];
	int n = 0;

	eps = xasprintf("ORCHD_ETCD_ENDPOINTS=http://%s:%d", h->etcd_addr, esim_srv.port);
	av[n++] = S("ip");
	av[n++] = S("netns");
	av[n++] = S("exec");
	av[n++] = h->ns;
	av[n++] = S("env");
	av[n++] = eps;
	av[n++] = bin;
	for (; *args && n < 22; args++)
		av[n++] = S(*args);
	av[n] = NULL;
	h->pid = fork();
	ck_assert_int_ge(h->pid, 0);
	if (h->pid == 0) {
		if (!freopen(log, "w", stderr) || !freopen("/dev/null", "w", stdout))
			_exit(126);
		execvp("ip", av);
		_exit(127);
	}
	esim_guard("pid", NULL, h->pid);
	free(eps);
	free(bin);
}

/* h's orchd was reaped with status st: its exit code (128+signal) */
static int host_reaped(struct host *h, int st)
{
	esim_guard("unpid", NULL, h->pid);
	h->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int esim_host_wait(struct host *h)
{
	int st;

	ck_assert_int_eq(waitpid(h->pid, &st, 0), h->pid);
	return host_reaped(h, st);
}

int esim_host_wait_s(struct host *h, int secs)
{
	for (long i = 0; i < secs * 10L; i++) {
		int st;
		pid_t p = waitpid(h->pid, &st, WNOHANG);

		ck_assert_int_ge(p, 0);
		if (p == h->pid)
			return host_reaped(h, st);
		usleep(100000);
	}
	return -1;
}
