/*
 * The Pulumi state engine against the real pulumi CLI (make tools), with a
 * file:// backend in a temporary directory, offline.  Each `pulumi up` takes
 * about a second, so the tests share work where they can.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "interfaces/engine.h"
#include "testutil.h"
#include "util.h"

#define PASS	"correct horse battery"
#define SECRET1 "hunter2-plaintext-output"
#define SECRET2 "state-plaintext-token"
#define STACK	"dev-exec-db"
#define PROJECT "orchdtest"

static char *tmp;
static char project_name[] = PROJECT;

static void need_pulumi(void)
{
	const char *path = getenv("PATH");
	char *copy = xstrdup(path ? path : ""), *save = NULL, *d;
	int found = 0;

	for (d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char *c = xasprintf("%s/pulumi", d);

		found = !access(c, X_OK);
		free(c);
	}
	free(copy);
	if (!found)
		ck_abort_msg("pulumi not found on PATH: run make tools (or . "
			     "~/.cache/orchd/tools/env.sh)");
}

static void setup(void)
{
	need_pulumi();
	tmp = test_tmpdir();
	unsetenv("ORCHD_PASSPHRASE_FILE");
	setenv("ORCHD_PASSPHRASE", PASS, 1);
}

static void teardown(void)
{
	test_rmtree(tmp);
	free(tmp);
}

static struct orchd_engine *open_engine(const char *dir, const char *pass)
{
	struct orchd_engine_config cfg = {.type = ORCHD_ENGINE_PULUMI, .project = project_name};
	struct orchd_engine *e = NULL;
	char err[1024];

	if (pass)
		setenv("ORCHD_PASSPHRASE", pass, 1);
	else
		unsetenv("ORCHD_PASSPHRASE");
	if (orchd_engine_open(&cfg, dir, "pipe", &e, err, sizeof(err)))
		ck_abort_msg("open: %s", err);
	ck_assert_str_eq(e->ops->name, "pulumi");
	ck_assert_str_eq(e->pipeline_name, "pipe");
	return e;
}

/* A record with every kind of value; n makes records tell apart. */
static void make_record(struct orchd_stack_record *rec, int n)
{
	json_object *obj =
		json_tokener_parse("{\"a\": [1, 2.5, null, \"${x}\"], \"fn::secret\": 1}");

	orchd_stack_record_init(rec);
	orchd_stack_record_set_output(rec, "url", json_object_new_string("http://h/${a}$$b$"), 0);
	orchd_stack_record_set_output(rec, "n", json_object_new_int64(n), 0);
	orchd_stack_record_set_output(rec, "num_str", json_object_new_string("42"), 0);
	orchd_stack_record_set_output(rec, "obj", obj, 0);
	orchd_stack_record_set_output(rec, "nothing", NULL, 0);
	orchd_stack_record_set_output(rec, "pw", json_object_new_string(SECRET1), 1);
	rec->state = json_tokener_parse("{\"token\": \"" SECRET2 "\", \"n\": 1}");
	rec->state_secret = 1;
	rec->config_hash = xstrdup("cfg-hash");
	rec->inputs_hash = xstrdup("in-hash");
	rec->last.run_id = xasprintf("r-%d", n);
	rec->last.action = xstrdup("apply");
	rec->last.status = xstrdup("succeeded");
	rec->last.started_at = 1000 * n;
	rec->last.ended_at = 1000 * n + 5;
	rec->last.attempts = n;
}

static void write_ok(struct orchd_engine *e, const char *stack, int n)
{
	struct orchd_stack_record rec;
	char err[1024];

	make_record(&rec, n);
	if (orchd_engine_write(e, stack, &rec, err, sizeof(err)))
		ck_abort_msg("write %s: %s", stack, err);
	orchd_stack_record_release(&rec);
}

static const char *out_str(const struct orchd_stack_record *rec, const char *key)
{
	json_object *ent, *v;

	ck_assert_msg(json_object_object_get_ex(rec->outputs, key, &ent), "output %s", key);
	ck_assert(json_object_object_get_ex(ent, "value", &v));
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static int out_flag(const struct orchd_stack_record *rec, const char *key, const char *flag)
{
	json_object *ent, *v;

	ck_assert(json_object_object_get_ex(rec->outputs, key, &ent));
	return json_object_object_get_ex(ent, flag, &v) && json_object_get_boolean(v);
}

/* Does any file under dir contain needle? */
static int tree_contains(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		char *path;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (!lstat(path, &st)) {
			if (S_ISDIR(st.st_mode)) {
				found = tree_contains(path, needle);
			} else if (S_ISREG(st.st_mode)) {
				size_t len;
				char *buf = test_read_file(path, &len);

				found = buf && memmem(buf, len, needle, strlen(needle));
				free(buf);
			}
		}
		free(path);
	}
	closedir(d);
	return found;
}

START_TEST(test_roundtrip_secrets)
{
	struct orchd_engine *e = open_engine(tmp, PASS);
	struct orchd_stack_record rec;
	char err[1024], *backend, *out = NULL, *perr = NULL, *url;
	json_object *ls;

	ck_assert_int_eq(
		orchd_engine_read(e, STACK, &(struct orchd_stack_record){0}, err, sizeof(err)), 1);
	write_ok(e, STACK, 1);
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, STACK, &rec, err, sizeof(err)), 0);
	ck_assert_str_eq(out_str(&rec, "url"), "\"http:\\/\\/h\\/${a}$$b$\"");
	ck_assert_str_eq(out_str(&rec, "n"), "1");
	ck_assert_str_eq(out_str(&rec, "num_str"), "\"42\"");
	ck_assert_str_eq(out_str(&rec, "obj"), "{\"a\":[1,2.5,null,\"${x}\"],\"fn::secret\":1}");
	ck_assert_str_eq(out_str(&rec, "nothing"), "null");
	ck_assert_str_eq(out_str(&rec, "pw"), "\"" SECRET1 "\"");
	ck_assert(out_flag(&rec, "pw", "secret"));
	ck_assert(!out_flag(&rec, "url", "secret"));
	ck_assert_int_eq(json_object_object_length(rec.outputs), 6);
	ck_assert(rec.state_secret);
	ck_assert(!rec.state_masked);
	ck_assert_str_eq(json_object_to_json_string_ext(rec.state, JSON_C_TO_STRING_PLAIN),
			 "{\"token\":\"" SECRET2 "\",\"n\":1}");
	ck_assert_str_eq(rec.config_hash, "cfg-hash");
	ck_assert_str_eq(rec.inputs_hash, "in-hash");
	ck_assert_str_eq(rec.last.run_id, "r-1");
	ck_assert_str_eq(rec.last.status, "succeeded");
	ck_assert_int_eq(rec.last.started_at, 1000);
	ck_assert_int_eq(rec.last.ended_at, 1005);
	ck_assert_int_eq(rec.masked, 0);
	orchd_stack_record_release(&rec);

	/* Encrypted at rest: the plaintext is nowhere in the backend. */
	backend = xasprintf("%s/pulumi-backend", tmp);
	ck_assert(tree_contains(backend, "cfg-hash")); /* the grep itself works */
	ck_assert(!tree_contains(backend, SECRET1));
	ck_assert(!tree_contains(backend, SECRET2));
	/* ...and no program with the plaintext is left in the work dir. */
	ck_assert(!tree_contains(tmp, SECRET1));

	/* What `pulumi stack ls` shows against the backend. */
	url = xasprintf("PULUMI_BACKEND_URL=file://%s", backend);
	{
		char *home = xasprintf("PULUMI_HOME=%s/pulumi-home", tmp);
		char a0[] = "/usr/bin/env", a1[] = "pulumi", a2[] = "stack", a3[] = "ls",
		     a4[] = "--all", a5[] = "--json", a6[] = "--non-interactive";
		char *argv[] = {a0, url, home, a1, a2, a3, a4, a5, a6, NULL};

		ck_assert_int_eq(test_run(argv, &out, &perr), 0);
		free(home);
	}
	ls = json_tokener_parse(out);
	ck_assert_ptr_nonnull(ls);
	ck_assert_int_eq(json_object_array_length(ls), 1);
	ck_assert_str_eq(json_object_get_string(
				 json_object_object_get(json_object_array_get_idx(ls, 0), "name")),
			 "organization/" PROJECT "/" STACK);
	json_object_put(ls);
	free(out);
	free(perr);
	free(url);
	free(backend);
	orchd_engine_close(e);

	/* Without the passphrase: secrets read masked, the rest is there. */
	e = open_engine(tmp, NULL);
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, STACK, &rec, err, sizeof(err)), 0);
	ck_assert_str_eq(out_str(&rec, "pw"), "null");
	ck_assert(out_flag(&rec, "pw", "masked"));
	ck_assert(out_flag(&rec, "pw", "secret"));
	ck_assert_str_eq(out_str(&rec, "url"), "\"http:\\/\\/h\\/${a}$$b$\"");
	ck_assert_ptr_null(rec.state);
	ck_assert(rec.state_masked);
	ck_assert_int_eq(rec.masked, 2);
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_masked_write_back)
{
	struct orchd_engine *e = open_engine(tmp, PASS), *e2;
	struct orchd_stack_record rec;
	char err[1024];

	write_ok(e, STACK, 1);
	/* Read without the passphrase (orchd outputs), written back with it:
	 * the secrets survive. */
	e2 = open_engine(tmp, NULL);
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e2, STACK, &rec, err, sizeof(err)), 0);
	ck_assert_int_eq(rec.masked, 2);
	orchd_engine_close(e2);
	free(rec.last.run_id);
	rec.last.run_id = xstrdup("r-back");
	ck_assert_msg(!orchd_engine_write(e, STACK, &rec, err, sizeof(err)), "%s", err);
	orchd_stack_record_release(&rec);
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, STACK, &rec, err, sizeof(err)), 0);
	ck_assert_str_eq(out_str(&rec, "pw"), "\"" SECRET1 "\"");
	ck_assert_str_eq(json_object_to_json_string_ext(rec.state, JSON_C_TO_STRING_PLAIN),
			 "{\"token\":\"" SECRET2 "\",\"n\":1}");
	ck_assert_str_eq(rec.last.run_id, "r-back");
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_no_passphrase_write)
{
	struct orchd_engine *e = open_engine(tmp, NULL);
	struct orchd_stack_record rec;
	char err[1024], *backend;

	make_record(&rec, 1);
	ck_assert_int_eq(orchd_engine_write(e, STACK, &rec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "stack dev-exec-db: state is secret and no passphrase is set "
			      "(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)");
	rec.state_secret = 0;
	ck_assert_int_eq(orchd_engine_write(e, STACK, &rec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "stack dev-exec-db: output 'pw' is secret and no passphrase is set "
			      "(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)");
	json_object_object_del(rec.outputs, "pw");
	ck_assert_int_eq(orchd_engine_write(e, STACK, &rec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "stack dev-exec-db: the pulumi engine needs a passphrase to write a "
			      "stack (set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)");
	orchd_stack_record_release(&rec);
	/* Nothing was written. */
	backend = xasprintf("%s/pulumi-backend/.pulumi/stacks", tmp);
	ck_assert_int_ne(access(backend, F_OK), 0);
	free(backend);
	ck_assert_int_eq(orchd_engine_select(e, STACK, 0, err, sizeof(err)), 1);
	/* A run fails at the lock, before any extension runs. */
	ck_assert_int_eq(
		orchd_engine_lock(e, &(struct orchd_lock_request){NULL, NULL, 0}, err, sizeof(err)),
		-1);
	backend = xasprintf("state directory %s: the pulumi engine needs a passphrase to write "
			    "stacks (set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)",
			    tmp);
	ck_assert_str_eq(err, backend);
	free(backend);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_history_remove_list)
{
	struct orchd_engine *e = open_engine(tmp, PASS);
	struct orchd_history_entry *h;
	struct orchd_stack_record rec;
	char err[1024], **names;
	size_t n;

	ck_assert_int_eq(orchd_engine_history_read(e, STACK, &h, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n, 0);
	write_ok(e, STACK, 1);
	write_ok(e, STACK, 2);
	write_ok(e, "dev-exec-a", 3);
	ck_assert_int_eq(orchd_engine_history_append(e, STACK, &(struct orchd_history_entry){0},
						     err, sizeof(err)),
			 0);
	ck_assert_int_eq(orchd_engine_history_read(e, STACK, &h, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(h[0].run_id, "r-1");
	ck_assert_str_eq(h[1].run_id, "r-2");
	ck_assert_str_eq(h[1].action, "apply");
	ck_assert_str_eq(h[1].status, "succeeded");
	ck_assert_int_eq(h[1].attempts, 2);
	ck_assert_int_eq(h[1].started_at, 2000);
	ck_assert_int_eq(h[1].ended_at, 2005);
	orchd_history_free(h, n);

	ck_assert_int_eq(orchd_engine_list(e, &names, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(names[0], "dev-exec-a");
	ck_assert_str_eq(names[1], STACK);
	orchd_engine_names_free(names, n);

	{
		char run[] = "r-3", act[] = "destroy", st[] = "success";
		char job[] = "deploy prod", url[] = "https://ci.example.com/job/infra/3/";
		struct orchd_history_entry d = {run, act, st, 3000, 3007, 1, {0}};

		/* the figures and the CI build ride in the update's message */
		d.meta.cpu_ms = 42;
		d.meta.max_rss_kb = 2048;
		d.meta.ci.job = job;
		d.meta.ci.build_url = url;
		ck_assert_msg(!orchd_engine_remove(e, STACK, &d, err, sizeof(err)), "%s", err);
		orchd_stack_record_init(&rec);
		ck_assert_int_eq(orchd_engine_read(e, STACK, &rec, err, sizeof(err)), 1);
		orchd_stack_record_release(&rec);
		ck_assert_int_eq(orchd_engine_remove(e, STACK, &d, err, sizeof(err)), 1);
	}
	/* the history is the audit trail: it keeps the destroy */
	ck_assert_int_eq(orchd_engine_history_read(e, STACK, &h, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(h[2].run_id, "r-3");
	ck_assert_str_eq(h[2].action, "destroy");
	ck_assert_str_eq(h[2].status, "success");
	ck_assert_int_eq(h[2].meta.cpu_ms, 42);
	ck_assert_int_eq(h[2].meta.max_rss_kb, 2048);
	ck_assert_str_eq(h[2].meta.ci.job, "deploy_prod");
	ck_assert_str_eq(h[2].meta.ci.build_url, "https://ci.example.com/job/infra/3/");
	ck_assert_ptr_null(h[2].meta.ci.commit);
	ck_assert_ptr_null(h[1].meta.ci.job);
	orchd_history_free(h, n);
	ck_assert_int_eq(orchd_engine_list(e, &names, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(names[0], "dev-exec-a");
	orchd_engine_names_free(names, n);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_select_lock)
{
	struct orchd_engine *e = open_engine(tmp, PASS), *e2 = open_engine(tmp, PASS);
	struct orchd_lock_request req = {"r-lock", "orchd run test", 0};
	struct orchd_stack_record rec;
	char err[1024];

	ck_assert_int_eq(orchd_engine_select(e, STACK, 0, err, sizeof(err)), 1);
	ck_assert_msg(!orchd_engine_select(e, STACK, 1, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(orchd_engine_select(e, STACK, 0, err, sizeof(err)), 0);
	/* Created but never written: no record yet. */
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, STACK, &rec, err, sizeof(err)), 1);
	orchd_stack_record_release(&rec);

	ck_assert_msg(!orchd_engine_lock(e, &req, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(orchd_engine_lock(e2, &req, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "is locked by pid"), "%s", err);
	ck_assert_msg(!orchd_engine_unlock(e, err, sizeof(err)), "%s", err);
	ck_assert_msg(!orchd_engine_lock(e2, &req, err, sizeof(err)), "%s", err);
	orchd_engine_close(e2);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_cli_error_and_reserved)
{
	struct orchd_engine *e = open_engine(tmp, PASS);
	struct orchd_stack_record rec;
	char err[1024];

	write_ok(e, STACK, 1);
	orchd_engine_close(e);
	/* A wrong passphrase: pulumi's own error, with the stack's name. */
	e = open_engine(tmp, "wrong passphrase");
	make_record(&rec, 2);
	ck_assert_int_eq(orchd_engine_write(e, STACK, &rec, err, sizeof(err)), -1);
	ck_assert_msg(!strncmp(err, "pulumi stack dev-exec-db: ", 26), "%s", err);
	ck_assert_msg(strstr(err, "incorrect passphrase"), "%s", err);
	orchd_stack_record_release(&rec);
	orchd_stack_record_init(&rec);
	ck_assert_int_eq(orchd_engine_read(e, STACK, &rec, err, sizeof(err)), -1);
	ck_assert_msg(!strncmp(err, "pulumi stack dev-exec-db: ", 26), "%s", err);
	orchd_stack_record_release(&rec);

	orchd_stack_record_init(&rec);
	orchd_stack_record_set_output(&rec, "__orchd_state", json_object_new_int(1), 0);
	ck_assert_int_eq(orchd_engine_write(e, STACK, &rec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "stack dev-exec-db: output name '__orchd_state' is reserved by the "
			      "pulumi engine");
	orchd_stack_record_release(&rec);
	orchd_engine_close(e);
}
END_TEST

START_TEST(test_missing_cli)
{
	struct orchd_engine_config cfg = {.type = ORCHD_ENGINE_PULUMI};
	struct orchd_engine *e = NULL;
	char err[1024];

	setenv("PATH", tmp, 1);
	ck_assert_int_eq(orchd_engine_open(&cfg, tmp, "pipe", &e, err, sizeof(err)), -1);
	ck_assert_ptr_null(e);
	ck_assert_str_eq(err, "engine 'pulumi': the pulumi CLI is not on PATH (install it; in a "
			      "source tree, run make tools)");
	char bad[] = "bad/name";

	cfg.project = bad;
	ck_assert_int_eq(orchd_engine_open(&cfg, tmp, "pipe", &e, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "engine 'pulumi': invalid project name 'bad/name'");
}
END_TEST

/* Bring up "lo" in a fresh network namespace: pulumi talks gRPC to its
 * language plugin over 127.0.0.1. */
static int loopback_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = -1;

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (!ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		ifr.ifr_flags |= IFF_UP;
		ret = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return ret;
}

/* Write and read in a process whose network namespace has nothing but the
 * loopback interface: nothing needs the network. */
START_TEST(test_offline)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (!pid) {
		struct orchd_engine *e;
		struct orchd_stack_record rec;
		char err[1024];

		if (unshare(CLONE_NEWUSER | CLONE_NEWNET) || loopback_up()) {
			fprintf(stderr, "unshare: %s\n", strerror(errno));
			_exit(2);
		}
		e = open_engine(tmp, PASS);
		make_record(&rec, 1);
		if (orchd_engine_write(e, STACK, &rec, err, sizeof(err))) {
			fprintf(stderr, "write: %s\n", err);
			_exit(3);
		}
		orchd_stack_record_release(&rec);
		orchd_stack_record_init(&rec);
		if (orchd_engine_read(e, STACK, &rec, err, sizeof(err))) {
			fprintf(stderr, "read: %s\n", err);
			_exit(4);
		}
		orchd_stack_record_release(&rec);
		orchd_engine_close(e);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "offline child failed: status %d", st);
}
END_TEST

/* --- the event loop while a write is in flight ----------------------------- */

/* The pid of a `pulumi up` that parent runs, or 0. */
static pid_t pulumi_up_child(pid_t parent)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	ck_assert_ptr_nonnull(d);
	while (!found && (e = readdir(d))) {
		char path[300], buf[512], comm[64];
		int pid, ppid;
		size_t n;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(buf, sizeof(buf), f) ||
		    sscanf(buf, "%d (%63[^)]) %*c %d", &pid, comm, &ppid) != 3 || ppid != parent ||
		    strcmp(comm, "pulumi")) {
			fclose(f);
			continue;
		}
		fclose(f);
		/* argv[1] of its command line: "up" */
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		if (n > strlen(buf) + 1 && !strcmp(buf + strlen(buf) + 1, "up"))
			found = pid;
	}
	closedir(d);
	return found;
}

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-11-30T08:58:08.915Z" -> unix ms (UTC). */
static long long iso_ms(const char *t)
{
	struct tm tm;
	int ms = 0;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(t, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm) * 1000 + ms;
}

/*
 * A write of the Pulumi engine (a real `pulumi up`, about a second) runs
 * off the event loop: while it is in flight another instance's log flood
 * is still read, and a SIGINT is still served (the flooding step is
 * cancelled before the write ends); the write in flight completes, so
 * the state stays valid, and orchd exits 130 long before the grace.
 * Times are orchd's own (--log-format json) against the life of the
 * pulumi process seen in /proc: the assertions are about order, not speed.
 */
START_TEST(test_slow_write_does_not_block_the_loop)
{
	char *file = xasprintf("%s/p.yaml", tmp), *log = xasprintf("%s/err.jsonl", tmp);
	char *orchd = test_build_path("bin/orchd"), *text, *line, *save = NULL;
	const char *argv[] = {orchd, "run", file, "--log-format", "json", NULL};
	long long w1_start = 0, w1_end = 0, w2_start = 0, w2_end = 0, sig_at = 0, exit_at = 0;
	long long cancel_at = -1;
	int ticks_in_w1 = 0, st, writes = 0;
	pid_t pid, pw = 0;
	FILE *f = fopen(file, "w");

	ck_assert_ptr_nonnull(f);
	fputs("slow:\n"
	      "  core:\n"
	      "    parallelism: 4\n"
	      "    engine: {type: pulumi, project: " PROJECT "}\n"
	      "    execution_defaults: {grace: 60s}\n"
	      "  exec:\n"
	      "    - name: flood\n"
	      "      pass_env: [FLOOD_N]\n"
	      "      command: [sh, -c, 'i=0; while [ $i -lt $FLOOD_N ]; do echo tick $i; "
	      "i=$((i+1)); sleep 0.005; done']\n"
	      "    - name: first\n"
	      "      command: [echo, first]\n"
	      "    - name: second\n"
	      "      depends_on: [first]\n"
	      "      command: [echo, second]\n",
	      f);
	fclose(f);
	/* A first run creates the stacks, so that each write of the second
	 * is exactly one `pulumi up`. */
	setenv("FLOOD_N", "1", 1);
	ck_assert_int_eq(test_run((char *const *)(uintptr_t)argv, NULL, NULL), 0);
	setenv("FLOOD_N", "20000", 1);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(fd, 2);
		execv(orchd, (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	/* Watch orchd's `pulumi up`s, one per record written: the first
	 * (of "first"), then the second (of "second"), during which SIGINT
	 * goes to orchd. */
	for (;;) {
		pid_t now = pulumi_up_child(pid);
		long long t = wall_ms();

		if (pw && now != pw) {
			if (writes == 1)
				w1_end = t;
			if (writes == 2)
				w2_end = t;
		}
		if (now && now != pw) {
			writes++;
			if (writes == 1)
				w1_start = t;
			if (writes == 2) {
				w2_start = t;
				ck_assert_int_eq(kill(pid, SIGINT), 0);
				sig_at = wall_ms();
			}
		}
		pw = now;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			exit_at = wall_ms();
			break;
		}
		ck_assert_msg(!w1_start || t - w1_start < 50000, "orchd did not end");
		usleep(2000);
	}
	ck_assert_msg(w1_start && w1_end && w2_start && w2_end,
		      "pulumi writes not seen: %lld %lld %lld %lld", w1_start, w1_end, w2_start,
		      w2_end);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 130);
	/* long before the grace (60 s) and its SIGKILLs */
	ck_assert_msg(exit_at - sig_at < 30000, "exit %lld ms after SIGINT", exit_at - sig_at);

	text = test_read_file(log, NULL);
	ck_assert_ptr_nonnull(text);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_object *o = json_tokener_parse(line), *v;
		const char *inst = NULL, *msg = NULL;
		long long t;

		if (!o)
			continue;
		if (json_object_object_get_ex(o, "instance", &v) && v)
			inst = json_object_get_string(v);
		if (json_object_object_get_ex(o, "message", &v))
			msg = json_object_get_string(v);
		t = json_object_object_get_ex(o, "time", &v) ? iso_ms(json_object_get_string(v))
							     : -1;
		if (inst && msg && !strcmp(inst, "exec.flood")) {
			if (!strncmp(msg, "tick ", 5) && t > w1_start && t < w1_end)
				ticks_in_w1++;
			if (strstr(msg, "cancelled: sent SIGTERM") && cancel_at < 0)
				cancel_at = t;
		}
		json_object_put(o);
	}
	free(text);
	fprintf(stderr,
		"pulumi: write 1 %lld ms (%d flood lines read meanwhile), write 2 %lld "
		"ms, flood cancelled %lld ms after SIGINT, exit %lld ms after SIGINT\n",
		w1_end - w1_start, ticks_in_w1, w2_end - w2_start, cancel_at - sig_at,
		exit_at - sig_at);
	/* the flood was read while the first write was in flight */
	ck_assert_msg(ticks_in_w1 >= 3, "only %d flood lines read during a %lld ms write",
		      ticks_in_w1, w1_end - w1_start);
	/* SIGINT was served (the flood cancelled) before the second write
	 * ended (1 s of slack for the two clocks' resolution) */
	ck_assert_msg(cancel_at > 0, "the flood was not cancelled");
	ck_assert_msg(cancel_at <= w2_end, "cancelled %lld ms after the write in flight ended",
		      cancel_at - w2_end);
	/* the write in flight completed: "second" is recorded */
	{
		const char *sargv[] = {orchd, "status", file, "--json", NULL};
		char *out = NULL;

		ck_assert_int_eq(test_run((char *const *)(uintptr_t)sargv, &out, NULL), 0);
		ck_assert_msg(strstr(out, "\"id\":\"exec.second\"") || strstr(out, "exec.second"),
			      "%s", out);
		{
			json_object *arr = json_tokener_parse(out);
			int second_ok = 0;

			ck_assert_ptr_nonnull(arr);
			for (size_t k = 0; k < json_object_array_length(arr); k++) {
				json_object *e = json_object_array_get_idx(arr, k), *id, *sv;

				if (json_object_object_get_ex(e, "id", &id) &&
				    !strcmp(json_object_get_string(id), "exec.second") &&
				    json_object_object_get_ex(e, "status", &sv) && sv &&
				    !strcmp(json_object_get_string(sv), "success"))
					second_ok = 1;
			}
			json_object_put(arr);
			if (!second_ok) {
				char *l = test_read_file(log, NULL);

				fprintf(stderr, "status:\n%s\nlog:\n%s\n", out, l);
				free(l);
			}
			ck_assert_msg(second_ok, "exec.second is not recorded as applied");
		}
		free(out);
	}
	unsetenv("FLOOD_N");
	free(orchd);
	free(file);
	free(log);
}
END_TEST

Suite *pulumi_suite(void)
{
	Suite *s = suite_create("pulumi");
	TCase *tc = tcase_create("engine");
	/* needs the real tools (make tools): left out by make check-fast */
	tcase_set_tags(tc, "tools");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_roundtrip_secrets);
	tcase_add_test(tc, test_masked_write_back);
	tcase_add_test(tc, test_no_passphrase_write);
	tcase_add_test(tc, test_history_remove_list);
	tcase_add_test(tc, test_select_lock);
	tcase_add_test(tc, test_cli_error_and_reserved);
	tcase_add_test(tc, test_missing_cli);
	tcase_add_test(tc, test_offline);
	tcase_add_test(tc, test_slow_write_does_not_block_the_loop);
	suite_add_tcase(s, tc);
	return s;
}
