/*
 * tests/etcdsim: a real etcd for the tests, and simulated hosts around it.
 *
 * esim_setup() starts etcd on free loopback ports (esim_srv, its data in a
 * temporary directory) and makes esim_tmp; esim_teardown() stops it by pid
 * and removes both.  esim_sh() runs a shell command with etcdctl pointed at
 * it and returns its output (malloc'ed).
 *
 * Simulated hosts (root only): esim_hosts_setup_n(N) makes N network
 * namespaces, each joined to this one by a veth pair on a /30 of a private
 * subnet of the test's own (10.231.X.0/24, X from the pid), and starts etcd
 * listening on loopback and on this side of every link.  esim_host_orchd()
 * runs orchd in a host with ORCHD_ETCD_ENDPOINTS pointing across its link;
 * cutting a host off is `ip link set esim_hosts[i].veth down`.  Everything
 * is also registered with a guard process, which kills those pids and
 * deletes those namespaces and links when the test's process ends, even by
 * a failed check's _exit(); esim_hosts_teardown() does it at once.
 *
 * Errors: a setup that fails is a failed check (ck_assert).
 */
#ifndef ORCHD_TESTS_ETCDSIM_H
#define ORCHD_TESTS_ETCDSIM_H

#include <stdint.h>
#include <sys/types.h>

#define S(x)	       ((char *)(uintptr_t)(x))
#define ESIM_MAX_HOSTS 4

struct etcd_srv {
	pid_t pid;
	int port, peer;
	char *dir, *url;
	char *tls;     /* a directory of certificates: https, client certificates */
	char *ctl_env; /* etcdctl's settings for esim_sh() (its TLS, its user) */
	char *listen;  /* client URLs to listen on, when not just url */
};

struct host {
	char ns[32], veth[16], peer[16], addr[20], etcd_addr[20];
	pid_t pid; /* an orchd running there */
};

extern struct etcd_srv esim_srv;
extern char *esim_tmp;
extern struct host esim_hosts[ESIM_MAX_HOSTS];
extern int esim_nhosts;

/* etcd */
void esim_etcd_spawn(struct etcd_srv *s); /* start again on s's ports and data */
void esim_etcd_start(struct etcd_srv *s, int tls);
void esim_etcd_kill(struct etcd_srv *s); /* SIGTERM, wait; its data stays */
void esim_etcd_stop(struct etcd_srv *s);
char *esim_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* fixtures: a passphrase in the environment, esim_tmp, and etcd */
void esim_setup_bare(void); /* no etcd */
void esim_setup(void);
void esim_teardown(void);

/* argv in the background, stdout and stderr to log (NULL: inherited) */
pid_t esim_spawn_bg(char *const argv[], const char *log);
/* wait (5 s at most) until key exists in etcd */
void esim_wait_key(const char *key);

/* simulated hosts */
void esim_hosts_setup(void); /* two hosts */
void esim_hosts_setup_n(int n);
void esim_hosts_teardown(void);
void esim_hosts_cleanup(void);
/* the guard process (started by esim_hosts_setup_n(); for processes of
 * a test without hosts, start it yourself); stop: it cleans up now */
void esim_guard_start(void);
void esim_guard_stop(void);
/* tell the guard about a process (what "pid") or that it was reaped ("unpid") */
void esim_guard(const char *what, const char *name, long pid);
/* orchd ARGS... on host h, stderr to log; its pid in h->pid */
void esim_host_orchd(struct host *h, const char *log, const char *const *args);
/* wait for h->pid: its exit code (128+signal when killed) */
int esim_host_wait(struct host *h);
/* the same, for secs at most: -1 when it still runs then (left running) */
int esim_host_wait_s(struct host *h, int secs);

#endif
