/*
 * Black-box tests of extension packages: `orchd ext install|list|remove`,
 * `orchd ext install --from PIPELINE` and orchd.lock, and `orchd run`
 * refusing a pipeline whose core.extensions the lock does not match.
 * Real processes only: the orchd binary, packages made here (a Python
 * extension "greet" speaking the protocol, its manifest, an optional build
 * command), git repositories served by a real `git daemon` on loopback,
 * tarballs served by python3's http.server on loopback.  HOME,
 * XDG_DATA_HOME, XDG_CACHE_HOME and TMPDIR point into the test's temp dir,
 * so the default extensions directory is TMP/data/orchd/extensions.
 */
#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "hash.h"
#include "testutil.h"
#include "util.h"

#define END   ((const char *)NULL)
#define BUILD "cp greet.py orchd-ext-greet && chmod +x orchd-ext-greet"

static char *tmp;    /* the test's temp dir */
static char *data;   /* XDG_DATA_HOME */
static char *extdir; /* the default extensions directory */
static char *uniq;   /* basename of tmp: unique file names */
static pid_t git_pid = -1, http_pid = -1;
static int git_port, http_port;

/* --- output and processes ------------------------------------------------ */

/* The end of a long text (Check refuses messages over 4 KiB). */
static const char *tailn(const char *s, size_t n)
{
	size_t len;

	if (!s)
		return "(null)";
	len = strlen(s);
	return len > n ? s + len - n : s;
}

static const char *tail(const char *s)
{
	return tailn(s, 3000);
}

#define assert_has(hay, needle)                                                        \
	do {                                                                           \
		if (!strstr((hay), (needle)))                                          \
			ck_abort_msg("expected:\n  %s\nin:\n%s", (needle), tail(hay)); \
	} while (0)

#define assert_hasnt(hay, needle)                                                          \
	do {                                                                               \
		if (strstr((hay), (needle)))                                               \
			ck_abort_msg("not expected:\n  %s\nin:\n%s", (needle), tail(hay)); \
	} while (0)

#define assert_exit(code, want, out) \
	ck_assert_msg((code) == (want), "exit %d, expected %d:\n%s", (code), (want), tail(out))

/* Run orchd with the arguments (NULL-terminated); *out: stdout then stderr. */
static int orchd(char **out, ...)
{
	char *argv[40], *o = NULL, *e = NULL;
	const char *a;
	va_list ap;
	int n = 0, code;

	argv[n++] = test_build_path("bin/orchd");
	va_start(ap, out);
	while ((a = va_arg(ap, const char *)) && n < 39)
		argv[n++] = xstrdup(a);
	va_end(ap);
	argv[n] = NULL;
	code = test_run(argv, &o, &e);
	for (int i = 0; i < n; i++)
		free(argv[i]);
	*out = xasprintf("%s%s", o ? o : "", e ? e : "");
	free(o);
	free(e);
	return code;
}

/* /bin/sh -c script, which must succeed; its stdout without the final newline. */
static char *sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sh(const char *fmt, ...)
{
	char *script, *o = NULL, *e = NULL;
	va_list ap;
	int code;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&script, fmt, ap), 0);
	va_end(ap);
	{
		char *argv[] = {(char *)(uintptr_t) "/bin/sh", (char *)(uintptr_t) "-c", script,
				NULL};

		code = test_run(argv, &o, &e);
	}
	ck_assert_msg(code == 0, "fixture failed (exit %d): %.1000s\n%.1500s", code, script,
		      tailn(e, 1500));
	free(e);
	free(script);
	if (!o)
		o = xstrdup("");
	o[strcspn(o, "\n")] = '\0';
	return o;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/*
 * Start a server (argv) listening on loopback port; it dies with this
 * process (PR_SET_PDEATHSIG: a failed check _exits without the teardown).
 * Waits for readiness by connecting (at most ~20 s).
 */
static pid_t serve(char *const argv[], int port)
{
	pid_t parent = getpid(), pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < 2000 && !test_can_connect(port); i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			ck_abort_msg("%s exited before it listened", argv[0]);
		usleep(10000);
	}
	ck_assert_msg(test_can_connect(port), "%s: nothing listens on port %d", argv[0], port);
	return pid;
}

/* `git daemon` exporting every repository under base (git://127.0.0.1:git_port/NAME). */
static void git_daemon(const char *base)
{
	char *portarg, *basearg;

	git_port = test_free_port();
	portarg = xasprintf("--port=%d", git_port);
	basearg = xasprintf("--base-path=%s", base);
	{
		char *argv[] = {(char *)(uintptr_t) "git",
				(char *)(uintptr_t) "daemon",
				(char *)(uintptr_t) "--reuseaddr",
				(char *)(uintptr_t) "--export-all",
				(char *)(uintptr_t) "--listen=127.0.0.1",
				portarg,
				basearg,
				(char *)(uintptr_t)base,
				NULL};

		git_pid = serve(argv, git_port);
	}
	free(portarg);
	free(basearg);
}

/* python3's http.server serving dir (http://127.0.0.1:http_port/FILE). */
static void http_server(const char *dir)
{
	char *port;

	http_port = test_free_port();
	port = xasprintf("%d", http_port);
	{
		char *argv[] = {(char *)(uintptr_t) "python3",
				(char *)(uintptr_t) "-m",
				(char *)(uintptr_t) "http.server",
				(char *)(uintptr_t) "--bind",
				(char *)(uintptr_t) "127.0.0.1",
				(char *)(uintptr_t) "--directory",
				(char *)(uintptr_t)dir,
				port,
				NULL};

		http_pid = serve(argv, http_port);
	}
	free(port);
}

static void stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
	}
	*pid = -1;
}

/* --- fixtures ------------------------------------------------------------ */

static void setup(void)
{
	char *p;

	tmp = test_tmpdir();
	ck_assert_ptr_nonnull(tmp);
	uniq = xstrdup(strrchr(tmp, '/') + 1);
	data = xasprintf("%s/data", tmp);
	extdir = xasprintf("%s/orchd/extensions", data);
	p = xasprintf("%s/home", tmp);
	mkdir(p, 0755);
	setenv("HOME", p, 1);
	free(p);
	setenv("XDG_DATA_HOME", data, 1);
	p = xasprintf("%s/cache", tmp);
	setenv("XDG_CACHE_HOME", p, 1);
	free(p);
	p = xasprintf("%s/config", tmp);
	setenv("XDG_CONFIG_HOME", p, 1);
	free(p);
	p = xasprintf("%s/tmpdir", tmp);
	mkdir(p, 0755);
	setenv("TMPDIR", p, 1);
	free(p);
	unsetenv("ORCHD_EXTENSIONS_PATH");
	unsetenv("ORCHD_EXTENSIONS_PATH_ONLY");
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("no_proxy", "127.0.0.1,localhost", 1);
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
}

static void teardown(void)
{
	stop(&git_pid);
	stop(&http_pid);
	test_rmtree(tmp);
	free(tmp);
	free(data);
	free(extdir);
	free(uniq);
	tmp = data = extdir = uniq = NULL;
}

/*
 * The extension: a Python script speaking the protocol.  Its apply logs
 * "greet VERSION (MARK) says hello to WHO", so a run shows which package
 * ran.
 */
static char *script(const char *version, const char *mark)
{
	return xasprintf(
		"#!/usr/bin/env python3\n"
		"import json, os, select, signal, sys\n"
		"VERSION = '%s'\n"
		"MARK = '%s'\n"
		"def send(m):\n"
		"    sys.stdout.write(json.dumps(m) + '\\n'); sys.stdout.flush()\n"
		"signal.signal(signal.SIGTERM, lambda s, f: os._exit(1))\n"
		"def readline():\n"
		"    while True:\n"
		"        line = sys.stdin.readline()\n"
		"        if not line or line.strip(): return line\n"
		"h = json.loads(readline())\n"
		"if h['protocol']['max'] < 1 or h['protocol']['min'] > 1:\n"
		"    send({'type': 'error', 'message': 'speaks 1..1', 'retryable': False})\n"
		"    sys.exit(1)\n"
		"send({'type': 'hello', 'protocol': 1, 'name': 'greet', 'version': VERSION,\n"
		"      'actions': ['describe', 'validate', 'plan', 'apply', 'destroy']})\n"
		"line = readline()\n"
		"if not line: sys.exit(1)\n"
		"msg = json.loads(line)\n"
		"act = msg['action']\n"
		"cfg = msg.get('config') or {}\n"
		"if act == 'describe':\n"
		"    send({'type': 'result', 'status': 'success', 'describe': {'type': 'greet',\n"
		"          'version': VERSION, 'config': {'type': 'object'}}})\n"
		"elif act == 'validate':\n"
		"    bad = [k for k in cfg if k != 'who' or not isinstance(cfg[k], str)]\n"
		"    if bad:\n"
		"        send({'type': 'result', 'status': 'failure', 'errors': [{'path': k,\n"
		"              'message': 'unknown key ' + k} for k in bad]})\n"
		"    else:\n"
		"        send({'type': 'result', 'status': 'success'})\n"
		"elif act == 'plan':\n"
		"    send({'type': 'result', 'status': 'success', 'changed': True})\n"
		"elif act == 'apply':\n"
		"    who = cfg.get('who', 'nobody')\n"
		"    send({'type': 'log', 'level': 'info', 'message': 'greet ' + VERSION + ' (' +\n"
		"          MARK + ') says hello to ' + who})\n"
		"    send({'type': 'output', 'key': 'greeting', 'value': 'hello ' + who})\n"
		"    send({'type': 'state', 'state': {'who': who}})\n"
		"    send({'type': 'result', 'status': 'success', 'changed': True})\n"
		"else:\n"
		"    send({'type': 'state', 'state': None})\n"
		"    send({'type': 'result', 'status': 'success',\n"
		"          'changed': msg.get('state') is not None})\n"
		"while not select.select([0], [], [], 0.1)[0] or os.read(0, 65536): pass\n",
		version, mark);
}

/*
 * A package in dir (created): its manifest orchd-ext-greet.manifest.json
 * (name greet, version, protocol 1..1, min_orchd_version 0.1.0, then the
 * JSON members extra, e.g. ",\"needs\":[\"x\"]"); with build (a shell
 * command, no '"' or '\\'), the script is greet.py and the manifest's
 * build makes orchd-ext-greet; without, orchd-ext-greet is there, 0755.
 */
static void make_pkg(const char *dir, const char *version, const char *mark, const char *build,
		     const char *extra)
{
	char *text = script(version, mark), *p, *buildmember;

	free(sh("mkdir -p '%s'", dir));
	p = xasprintf("%s/%s", dir, build ? "greet.py" : "orchd-ext-greet");
	write_file(p, text);
	ck_assert_int_eq(chmod(p, build ? 0644 : 0755), 0);
	free(p);
	free(text);
	buildmember = build ? xasprintf(", \"build\": \"%s\"", build) : xstrdup("");
	text = xasprintf("{\"name\": \"greet\", \"version\": \"%s\", \"protocol\": {\"min\": 1, "
			 "\"max\": 1}, \"min_orchd_version\": \"0.1.0\", \"description\": "
			 "\"says hello\"%s%s}\n",
			 version, buildmember, extra ? extra : "");
	p = xasprintf("%s/orchd-ext-greet.manifest.json", dir);
	write_file(p, text);
	free(p);
	free(text);
	free(buildmember);
}

/* A pipeline dir/p.yaml: core_ext (lines under "p:", or NULL), then greet.hi. */
static char *pipeline(const char *dir, const char *core_ext)
{
	char *path = xasprintf("%s/p.yaml", dir);
	char *text = xasprintf("p:\n%s"
			       "  greet:\n"
			       "    - name: hi\n"
			       "      who: world\n",
			       core_ext ? core_ext : "");

	free(sh("mkdir -p '%s'", dir));
	write_file(path, text);
	free(text);
	return path;
}

/* TMP/proj/p.yaml without core.extensions. */
static char *proj_pipeline(void)
{
	char *proj = xasprintf("%s/proj", tmp), *file = pipeline(proj, NULL);

	free(proj);
	return file;
}

/* `orchd run file` must succeed and show the greeting of version (mark). */
static void run_ok(const char *file, const char *version, const char *mark)
{
	char *out, *want = xasprintf("greet %s (%s) says hello to world", version, mark);
	int code = orchd(&out, "run", file, END);

	assert_exit(code, 0, out);
	assert_has(out, want);
	free(want);
	free(out);
}

/*
 * The fields of the line of `ext list` output out for type (TYPE VERSION
 * SOURCE DIGEST, separated by blanks: columns may be aligned); NULL when
 * there is none.  f[0..3] point into the returned buffer (free it).
 */
static char *list_line(const char *out, const char *type, char *f[4], int *nf)
{
	char *copy = xstrdup(out), *save = NULL;

	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *lsave = NULL, *w;
		int n = 0;

		for (w = strtok_r(line, " \t", &lsave); w; w = strtok_r(NULL, " \t", &lsave)) {
			if (n < 4)
				f[n] = w;
			n++;
		}
		if (n && !strcmp(f[0], type)) {
			*nf = n;
			return copy;
		}
	}
	free(copy);
	return NULL;
}

/* `ext list` output out has a line for greet at version. */
static void assert_listed(const char *out, const char *version)
{
	char *f[4], *buf;
	int n = 0;

	buf = list_line(out, "greet", f, &n);
	ck_assert_msg(buf != NULL, "no line for greet in ext list:\n%s", tail(out));
	ck_assert_msg(n == 4 && !strcmp(f[1], version),
		      "expected 'greet %s SOURCE DIGEST' in ext list:\n%s", version, tail(out));
	free(buf);
}

/* Nothing of greet installed in dir (the default extensions dir when NULL). */
static void assert_not_installed(const char *dir, const char *why)
{
	char *out, *p;
	int code;
	glob_t g;

	if (!dir)
		dir = extdir;
	code = orchd(&out, "ext", "list", "--dir", dir, END);
	ck_assert_msg(code == 0, "%s: ext list: exit %d\n%s", why, code, tail(out));
	ck_assert_msg(!strstr(out, "greet"), "%s: ext list shows greet:\n%s", why, tail(out));
	free(out);
	p = xasprintf("%s/orchd-ext-greet", dir);
	ck_assert_msg(!exists(p), "%s: %s exists", why, p);
	free(p);
	p = xasprintf("%s/orchd-ext-greet.manifest.json", dir);
	ck_assert_msg(!exists(p), "%s: %s exists", why, p);
	free(p);
	p = xasprintf("%s/.orchd-pkgs/greet-*", dir);
	ck_assert_msg(glob(p, 0, NULL, &g) == GLOB_NOMATCH, "%s: %s exists", why,
		      g.gl_pathc ? g.gl_pathv[0] : p);
	globfree(&g);
	free(p);
}

/* The one .orchd-package.json of greet in dir (NULL: the default dir). */
static json_object *package_json(const char *dir)
{
	char *p;
	glob_t g;
	json_object *j;

	p = xasprintf("%s/.orchd-pkgs/greet-*/.orchd-package.json", dir ? dir : extdir);
	ck_assert_msg(glob(p, 0, NULL, &g) == 0, "no %s", p);
	ck_assert_msg(g.gl_pathc == 1, "%zu matches of %s", g.gl_pathc, p);
	j = json_object_from_file(g.gl_pathv[0]);
	ck_assert_msg(j != NULL, "%s: not JSON", g.gl_pathv[0]);
	globfree(&g);
	free(p);
	return j;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int is_hex(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return 0;
	return 1;
}

static int is_digest(const char *s)
{
	return s && !strncmp(s, "sha256:", 7) && is_hex(s + 7, 64);
}

/* orchd.lock's entry for type (NULL when missing); *lock: the document (put it). */
static json_object *lock_entry(const char *path, const char *type, json_object **lock)
{
	json_object *exts = NULL, *e = NULL, *v = NULL;
	char *text = test_read_file(path, NULL);

	*lock = json_object_from_file(path);
	ck_assert_msg(*lock != NULL, "%s: not JSON:\n%s", path, tail(text));
	ck_assert_msg(json_object_object_get_ex(*lock, "orchd_lock", &v) &&
			      json_object_get_int(v) == 1,
		      "%s: no \"orchd_lock\": 1:\n%s", path, tail(text));
	ck_assert_msg(json_object_object_get_ex(*lock, "extensions", &exts) &&
			      json_object_is_type(exts, json_type_object),
		      "%s: no \"extensions\" object:\n%s", path, tail(text));
	free(text);
	if (!json_object_object_get_ex(exts, type, &e))
		return NULL;
	return e;
}

/* Are the keys of every object in o in sorted order (as in the file)? */
static int keys_sorted(json_object *o)
{
	const char *prev = NULL;

	if (!json_object_is_type(o, json_type_object))
		return 1;
	json_object_object_foreach(o, key, val)
	{
		if ((prev && strcmp(prev, key) > 0) || !keys_sorted(val))
			return 0;
		prev = key;
	}
	return 1;
}

static char *orchd_version(void)
{
	char *out, *v;
	int code = orchd(&out, "--version", END);

	ck_assert_msg(code == 0 && !strncmp(out, "orchd ", 6), "%s", tail(out));
	v = xstrdup(out + 6);
	v[strcspn(v, " \n")] = '\0';
	free(out);
	return v;
}

/*
 * A git repository at dir holding a package (under sub, "" for the root)
 * of version 1.0.0 with a build, committed on main and tagged v1.0.0
 * (annotated); returns the commit id.  The repository lets clients fetch
 * any reachable commit by id, as the common hosts do.
 */
static char *make_repo(const char *dir, const char *sub)
{
	char *pkg = xasprintf("%s%s%s", dir, *sub ? "/" : "", sub), *commit;

	make_pkg(pkg, "1.0.0", "orig", BUILD, NULL);
	free(sh("set -e; cd '%s'; git init -q -b main;"
		"git config uploadpack.allowReachableSHA1InWant true;"
		"git add -A; git -c user.name=t -c user.email=t@example.invalid commit -qm 1.0.0;"
		"git -c user.name=t -c user.email=t@example.invalid tag -a -m 1.0.0 v1.0.0",
		dir));
	commit = sh("git -C '%s' rev-parse 'v1.0.0^{commit}'", dir);
	ck_assert_msg(is_hex(commit, 40), "%s", commit);
	free(pkg);
	return commit;
}

/* A new commit of the package at dir (root) with version/mark, tagged tag (-f). */
static char *repo_release(const char *dir, const char *version, const char *mark, const char *tag)
{
	make_pkg(dir, version, mark, BUILD, NULL);
	free(sh("set -e; cd '%s'; git add -A;"
		"git -c user.name=t -c user.email=t@example.invalid commit -qm '%s %s';"
		"git -c user.name=t -c user.email=t@example.invalid tag -f -a -m '%s' '%s'",
		dir, version, mark, tag, tag));
	return sh("git -C '%s' rev-parse '%s^{commit}'", dir, tag);
}

/* --- local directory ----------------------------------------------------- */

START_TEST(test_local_install_and_run)
{
	char *src = xasprintf("%s/greet", tmp), *proj = xasprintf("%s/proj", tmp);
	char *file, *out, *p, *want, *real;
	char cwd[4096];
	json_object *pj;
	struct stat st;
	int code;

	/* the build leaves a marker: it must run in a private copy */
	make_pkg(src, "1.0.0", "orig", BUILD " && touch built-here", NULL);
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(chdir(tmp), 0);
	code = orchd(&out, "ext", "install", "./greet", END);
	ck_assert_int_eq(chdir(cwd), 0);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 1.0.0 (");
	want = xasprintf("into %s", extdir);
	assert_has(out, want);
	free(want);
	free(out);

	/* the build ran in a copy: the source is as it was */
	p = xasprintf("%s/built-here", src);
	ck_assert_msg(!exists(p), "the build wrote into the source directory: %s", p);
	free(p);
	p = xasprintf("%s/orchd-ext-greet", src);
	ck_assert_msg(!exists(p), "the build wrote into the source directory: %s", p);
	free(p);

	/* the layout: symlinks into .orchd-pkgs/greet-1.0.0-DIGEST12/ */
	p = xasprintf("%s/orchd-ext-greet", extdir);
	ck_assert_msg(lstat(p, &st) == 0 && S_ISLNK(st.st_mode), "%s: not a symlink", p);
	ck_assert_msg(access(p, X_OK) == 0, "%s: not executable", p);
	real = realpath(p, NULL);
	ck_assert_ptr_nonnull(real);
	ck_assert_msg(strstr(real, "/.orchd-pkgs/greet-1.0.0-"), "%s -> %s", p, real);
	free(real);
	free(p);
	p = xasprintf("%s/orchd-ext-greet.manifest.json", extdir);
	ck_assert_msg(lstat(p, &st) == 0 && S_ISLNK(st.st_mode), "%s: not a symlink", p);
	free(p);
	pj = package_json(NULL);
	ck_assert_str_eq(jstr(pj, "name"), "greet");
	ck_assert_str_eq(jstr(pj, "version"), "1.0.0");
	ck_assert_msg(is_digest(jstr(pj, "digest")), "digest %s", jstr(pj, "digest"));
	json_object_put(pj);

	/* a pipeline using it (no core.extensions) runs it */
	file = pipeline(proj, NULL);
	run_ok(file, "1.0.0", "orig");

	/* the same digest again: a no-op */
	code = orchd(&out, "ext", "install", src, END);
	assert_exit(code, 0, out);
	assert_has(out, "already installed");
	free(out);
	run_ok(file, "1.0.0", "orig");
	free(file);
	free(src);
	free(proj);
}
END_TEST

START_TEST(test_list)
{
	char *src = xasprintf("%s/greet", tmp), *out, *line, *f[4];
	const char *digest;
	json_object *pj;
	int code, n = 0;

	code = orchd(&out, "ext", "list", END);
	assert_exit(code, 0, out);
	assert_hasnt(out, "greet");
	free(out);
	make_pkg(src, "1.2.3", "orig", NULL, NULL);
	code = orchd(&out, "ext", "install", src, END);
	assert_exit(code, 0, out);
	free(out);
	code = orchd(&out, "ext", "list", END);
	assert_exit(code, 0, out);
	/* TYPE VERSION SOURCE DIGEST */
	assert_listed(out, "1.2.3");
	line = list_line(out, "greet", f, &n);
	ck_assert_msg(strstr(f[2], src), "the source %s is not %s:\n%s", src, f[2], tail(out));
	/* the digest: the installed package's, or its first 12 digits or more */
	pj = package_json(NULL);
	digest = jstr(pj, "digest");
	ck_assert_ptr_nonnull(digest);
	if (!strncmp(f[3], "sha256:", 7) && !strncmp(digest, "sha256:", 7))
		ck_assert_msg(strlen(f[3]) >= 19 && !strncmp(f[3], digest, strlen(f[3])),
			      "digest %s, installed %s", f[3], digest);
	else
		ck_assert_msg(strlen(f[3]) >= 12 && strstr(digest, f[3]), "digest %s, installed %s",
			      f[3], digest);
	json_object_put(pj);
	free(line);
	free(out);
	free(src);
}
END_TEST

START_TEST(test_dir_option)
{
	char *src = xasprintf("%s/greet", tmp), *dir = xasprintf("%s/elsewhere", tmp);
	char *file = proj_pipeline(), *out, *p, *want;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	code = orchd(&out, "ext", "install", src, "--dir", dir, END);
	assert_exit(code, 0, out);
	want = xasprintf("into %s", dir);
	assert_has(out, want);
	free(want);
	free(out);
	p = xasprintf("%s/orchd-ext-greet", dir);
	ck_assert_msg(access(p, X_OK) == 0, "%s: not there", p);
	free(p);
	code = orchd(&out, "ext", "list", "--dir", dir, END);
	assert_exit(code, 0, out);
	assert_listed(out, "1.0.0");
	free(out);
	/* not in the default directory */
	assert_not_installed(NULL, "--dir");
	/* found with --extensions-dir, even with ORCHD_EXTENSIONS_PATH_ONLY */
	setenv("ORCHD_EXTENSIONS_PATH_ONLY", "1", 1);
	code = orchd(&out, "--extensions-dir", dir, "run", file, END);
	assert_exit(code, 0, out);
	assert_has(out, "greet 1.0.0 (orig) says hello to world");
	free(out);
	code = orchd(&out, "ext", "remove", "greet", "--dir", dir, END);
	assert_exit(code, 0, out);
	free(out);
	assert_not_installed(dir, "removed with --dir");
	free(src);
	free(dir);
	free(file);
}
END_TEST

/*
 * Installs at once into one directory take turns (a lock per directory):
 * each succeeds, one package is left, the links agree with it, and what a
 * killed install left (a stage, a pip venv without its receipt) is gone.
 */
START_TEST(test_concurrent_installs)
{
	char *file = proj_pipeline(), *orchd_bin = test_build_path("bin/orchd"), *out, *cmd;
	char *src[4], *p;
	int code;

	free(sh("mkdir -p '%s/.orchd-pkgs/.stage-killed/x' '%s/.orchd-pkgs/pip-killed/venv'",
		extdir, extdir));
	for (int i = 0; i < 4; i++) {
		char *v = xasprintf("1.%d.0", i);

		src[i] = xasprintf("%s/greet%d", tmp, i);
		make_pkg(src[i], v, "race", BUILD, NULL);
		free(v);
	}
	cmd = xasprintf("for d in '%s' '%s' '%s' '%s'; do '%s' ext install \"$d\" > /dev/null "
			"2>&1 & done; fails=0; for j in 1 2 3 4; do wait %%$j || "
			"fails=$((fails+1)); done; echo $fails",
			src[0], src[1], src[2], src[3], orchd_bin);
	out = sh("%s", cmd);
	ck_assert_msg(!strcmp(out, "0"), "%s of 4 concurrent installs failed", out);
	free(out);
	free(cmd);
	p = xasprintf("%s/.orchd-pkgs/.stage-killed", extdir);
	ck_assert_msg(!exists(p), "%s is left", p);
	free(p);
	p = xasprintf("%s/.orchd-pkgs/pip-killed", extdir);
	ck_assert_msg(!exists(p), "%s is left", p);
	free(p);
	/* one package; the executable and the manifest of the same one */
	out = sh("ls '%s/.orchd-pkgs' | grep -c greet", extdir);
	ck_assert_msg(!strcmp(out, "1"), "%s packages left", out);
	free(out);
	out = sh("cd '%s' && [ \"$(dirname \"$(readlink orchd-ext-greet)\")\" = "
		 "\"$(dirname \"$(readlink orchd-ext-greet.manifest.json)\")\" ] && echo same",
		 extdir);
	ck_assert_str_eq(out, "same");
	free(out);
	code = orchd(&out, "run", file, END);
	assert_exit(code, 0, out);
	assert_has(out, "(race) says hello to world");
	free(out);
	for (int i = 0; i < 4; i++)
		free(src[i]);
	free(orchd_bin);
	free(file);
}
END_TEST

START_TEST(test_remove)
{
	char *src = xasprintf("%s/greet", tmp), *proj = xasprintf("%s/proj", tmp);
	char *file = pipeline(proj, NULL), *out;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	code = orchd(&out, "ext", "install", src, END);
	assert_exit(code, 0, out);
	free(out);
	run_ok(file, "1.0.0", "orig");
	code = orchd(&out, "ext", "remove", "greet", END);
	assert_exit(code, 0, out);
	free(out);
	assert_not_installed(NULL, "after ext remove");
	code = orchd(&out, "run", file, END);
	assert_exit(code, 2, out);
	ck_assert_msg(strstr(out, "no extension for type 'greet'") ||
			      strstr(out, "unknown extension type 'greet'"),
		      "%s", tail(out));
	assert_hasnt(out, "says hello");
	free(out);
	/* not installed: exit 2 */
	code = orchd(&out, "ext", "remove", "greet", END);
	assert_exit(code, 2, out);
	free(out);
	free(src);
	free(proj);
	free(file);
}
END_TEST

/* Installing another version replaces the installed one. */
START_TEST(test_install_replaces)
{
	char *a = xasprintf("%s/a", tmp), *b = xasprintf("%s/b", tmp), *file = proj_pipeline();
	char *out, *f[4], *buf;
	int code, n = 0;

	make_pkg(a, "1.0.0", "orig", BUILD, NULL);
	make_pkg(b, "1.1.0", "second", BUILD, NULL);
	code = orchd(&out, "ext", "install", a, END);
	assert_exit(code, 0, out);
	free(out);
	code = orchd(&out, "ext", "install", b, END);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 1.1.0 (");
	free(out);
	code = orchd(&out, "ext", "list", END);
	assert_exit(code, 0, out);
	assert_listed(out, "1.1.0");
	/* one line for greet */
	buf = list_line(out, "greet", f, &n);
	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(!strstr(strstr(out, "greet") + 5, "\ngreet"), "two lines for greet:\n%s",
		      tail(out));
	free(buf);
	free(out);
	run_ok(file, "1.1.0", "second");
	free(a);
	free(b);
	free(file);
}
END_TEST

/* ext remove with a TYPE that is a path: refused, nothing removed. */
START_TEST(test_remove_hostile_type)
{
	char *src = xasprintf("%s/greet", tmp), *victim = xasprintf("%s/orchd/x-1", data);
	char *keep = xasprintf("%s/orchd/x-1/keep", data), *out;
	static const char *const types[] = {"../x",	   "../x-1",	 "..",
					    ".orchd-pkgs", "greet/../x", "*"};
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	code = orchd(&out, "ext", "install", src, END);
	assert_exit(code, 0, out);
	free(out);
	free(sh("mkdir -p '%s' && touch '%s'", victim, keep));
	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		code = orchd(&out, "ext", "remove", types[i], END);
		ck_assert_msg(code == 2, "ext remove '%s': exit %d, expected 2\n%s", types[i], code,
			      tail(out));
		free(out);
		ck_assert_msg(exists(keep), "ext remove '%s' removed %s", types[i], keep);
	}
	/* greet is still there */
	code = orchd(&out, "ext", "list", END);
	assert_exit(code, 0, out);
	assert_listed(out, "1.0.0");
	free(out);
	free(src);
	free(victim);
	free(keep);
}
END_TEST

/* --- refusals of a package ------------------------------------------------ */

START_TEST(test_min_orchd_version)
{
	char *src = xasprintf("%s/greet", tmp), *out, *v = orchd_version();
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	{
		char *p = xasprintf("%s/orchd-ext-greet.manifest.json", src);

		write_file(p, "{\"name\": \"greet\", \"version\": \"1.0.0\", \"protocol\": "
			      "{\"min\": 1, \"max\": 1}, \"min_orchd_version\": \"999.0.0\", "
			      "\"build\": \"" BUILD "\"}\n");
		free(p);
	}
	code = orchd(&out, "ext", "install", src, END);
	assert_exit(code, 3, out);
	assert_has(out, "999.0.0");
	assert_has(out, v);
	free(out);
	assert_not_installed(NULL, "min_orchd_version 999.0.0");
	free(v);
	free(src);
}
END_TEST

START_TEST(test_protocol_incompatible)
{
	char *src = xasprintf("%s/greet", tmp), *out, *p;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	p = xasprintf("%s/orchd-ext-greet.manifest.json", src);
	write_file(p, "{\"name\": \"greet\", \"version\": \"1.0.0\", \"protocol\": "
		      "{\"min\": 50, \"max\": 60}, \"build\": \"" BUILD "\"}\n");
	free(p);
	code = orchd(&out, "ext", "install", src, END);
	assert_exit(code, 3, out);
	free(out);
	assert_not_installed(NULL, "protocol 50..60");
	free(src);
}
END_TEST

START_TEST(test_needs_missing)
{
	char *src = xasprintf("%s/greet", tmp), *out;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD,
		 ", \"needs\": [\"python3\", \"orchd-no-such-program-4711\"]");
	code = orchd(&out, "ext", "install", src, END);
	assert_exit(code, 3, out);
	assert_has(out, "orchd-no-such-program-4711");
	free(out);
	assert_not_installed(NULL, "a missing need");
	free(src);
}
END_TEST

START_TEST(test_needs_alternatives)
{
	char *src = xasprintf("%s/greet", tmp), *out;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD,
		 ", \"needs\": [\"orchd-no-such-program-4711|sh\", \"python3\"]");
	code = orchd(&out, "ext", "install", src, END);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 1.0.0 (");
	free(out);
	free(src);
}
END_TEST

START_TEST(test_build_fails)
{
	char *src = xasprintf("%s/greet", tmp), *out;
	int code;

	make_pkg(src, "1.0.0", "orig",
		 "echo build-broke-on-stdout; echo build-broke-on-stderr >&2; exit 7", NULL);
	code = orchd(&out, "ext", "install", src, END);
	assert_exit(code, 3, out);
	assert_has(out, "build-broke-on-stdout");
	assert_has(out, "build-broke-on-stderr");
	free(out);
	assert_not_installed(NULL, "a failed build");
	free(src);
}
END_TEST

/* Builds that succeed without leaving an executable regular orchd-ext-greet. */
static const char *const bad_builds[] = {
	"true",
	"ln -s /bin/sh orchd-ext-greet",
	"mkdir orchd-ext-greet",
	"cp greet.py orchd-ext-greet && chmod 644 orchd-ext-greet",
};

START_TEST(test_build_without_executable)
{
	char *src = xasprintf("%s/greet", tmp), *out;
	int code;

	make_pkg(src, "1.0.0", "orig", bad_builds[_i], NULL);
	code = orchd(&out, "ext", "install", src, END);
	ck_assert_msg(code == 2 || code == 3, "build '%s': exit %d (expected 2 or 3)\n%s",
		      bad_builds[_i], code, tail(out));
	free(out);
	assert_not_installed(NULL, bad_builds[_i]);
	free(src);
}
END_TEST

/*
 * Manifests that must be refused (exit 2): each is written as
 * orchd-ext-FILE.manifest.json beside a ready orchd-ext-greet.
 */
static const struct {
	const char *file, *json;
} bad_manifests[] = {
	{"greet", "{\"name\": \"../x\", \"version\": \"1.0.0\", \"protocol\": {\"min\": 1, "
		  "\"max\": 1}}"},
	{"greet", "{\"name\": \"other\", \"version\": \"1.0.0\", \"protocol\": {\"min\": 1, "
		  "\"max\": 1}}"},
	{"greet", "{\"name\": \"greet\", \"version\": \"1.0.0/../../../../../x-evil\", "
		  "\"protocol\": {\"min\": 1, \"max\": 1}}"},
	{"greet", "{\"name\": \"greet\", \"protocol\": {\"min\": 1, \"max\": 1}}"},
	{"greet", "{\"name\": \"greet\", \"version\": \"1.0.0\", \"protocol\": "},
	{"Greet", "{\"name\": \"Greet\", \"version\": \"1.0.0\", \"protocol\": {\"min\": 1, "
		  "\"max\": 1}}"},
	/* no manifest at all */
	{NULL, NULL},
	/* two manifests */
	{"x", "{\"name\": \"x\", \"version\": \"1.0.0\", \"protocol\": {\"min\": 1, \"max\": "
	      "1}}"},
};

START_TEST(test_bad_manifest)
{
	char *src = xasprintf("%s/greet", tmp), *out, *p, *found;
	int code;

	make_pkg(src, "1.0.0", "orig", NULL, NULL);
	p = xasprintf("%s/orchd-ext-greet.manifest.json", src);
	/* "x" keeps the good manifest beside its own: two manifests */
	if (!bad_manifests[_i].file ||
	    (strcmp(bad_manifests[_i].file, "greet") && strcmp(bad_manifests[_i].file, "x")))
		ck_assert_int_eq(unlink(p), 0);
	free(p);
	if (bad_manifests[_i].file) {
		p = xasprintf("%s/orchd-ext-%s.manifest.json", src, bad_manifests[_i].file);
		write_file(p, bad_manifests[_i].json);
		free(p);
	}
	code = orchd(&out, "ext", "install", src, END);
	ck_assert_msg(code == 2, "manifest %s: exit %d, expected 2\n%s",
		      bad_manifests[_i].json ? bad_manifests[_i].json : "(none)", code, tail(out));
	free(out);
	assert_not_installed(NULL, bad_manifests[_i].json ? bad_manifests[_i].json : "(none)");
	/* nothing named after the hostile names anywhere under the data dir */
	found = sh("find '%s' -name 'x' -o -name 'x-*' -o -name '*evil*' -o -name 'orchd-ext-*' "
		   "2>/dev/null; true",
		   data);
	ck_assert_msg(!*found, "written: %s", found);
	free(found);
	free(src);
}
END_TEST

/* --- git ----------------------------------------------------------------- */

START_TEST(test_git_tag)
{
	char *srv = xasprintf("%s/srv", tmp), *repo = xasprintf("%s/srv/greet", tmp);
	char *commit = make_repo(repo, ""), *source, *file, *out;
	json_object *pj;
	int code;

	git_daemon(srv);
	source = xasprintf("git+git://127.0.0.1:%d/greet@v1.0.0", git_port);
	code = orchd(&out, "ext", "install", source, END);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 1.0.0 (");
	free(out);
	pj = package_json(NULL);
	ck_assert_msg(jstr(pj, "commit") && !strcmp(jstr(pj, "commit"), commit),
		      "commit %s, expected %s (the tag's commit, not the tag object)",
		      jstr(pj, "commit"), commit);
	json_object_put(pj);
	file = proj_pipeline();
	run_ok(file, "1.0.0", "orig");
	free(file);
	free(source);
	free(commit);
	free(repo);
	free(srv);
}
END_TEST

START_TEST(test_git_commit)
{
	char *srv = xasprintf("%s/srv", tmp), *repo = xasprintf("%s/srv/greet", tmp);
	char *first = make_repo(repo, ""), *second, *source, *file, *out;
	json_object *pj;
	int code;

	second = repo_release(repo, "1.1.0", "second", "v1.1.0");
	ck_assert_str_ne(first, second);
	git_daemon(srv);
	/* the first commit, no longer the tip of main */
	source = xasprintf("git+git://127.0.0.1:%d/greet@%s", git_port, first);
	code = orchd(&out, "ext", "install", source, END);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 1.0.0 (");
	free(out);
	pj = package_json(NULL);
	ck_assert_msg(jstr(pj, "commit") && !strcmp(jstr(pj, "commit"), first), "commit %s",
		      jstr(pj, "commit"));
	json_object_put(pj);
	file = proj_pipeline();
	run_ok(file, "1.0.0", "orig");
	free(file);
	free(source);
	free(first);
	free(second);
	free(repo);
	free(srv);
}
END_TEST

START_TEST(test_git_branch_refused)
{
	char *srv = xasprintf("%s/srv", tmp), *repo = xasprintf("%s/srv/greet", tmp);
	char *commit = make_repo(repo, ""), *source, *out;
	int code;

	git_daemon(srv);
	source = xasprintf("git+git://127.0.0.1:%d/greet@main", git_port);
	code = orchd(&out, "ext", "install", source, END);
	assert_exit(code, 2, out);
	assert_has(out, "pin");
	free(out);
	assert_not_installed(NULL, "a branch as REF");
	/* an abbreviated commit id is neither a tag nor a full commit id */
	free(source);
	source = xasprintf("git+git://127.0.0.1:%d/greet@%.12s", git_port, commit);
	code = orchd(&out, "ext", "install", source, END);
	ck_assert_msg(code == 2, "%s: exit %d, expected 2\n%s", source, code, tail(out));
	free(out);
	assert_not_installed(NULL, "an abbreviated commit as REF");
	free(source);
	free(commit);
	free(repo);
	free(srv);
}
END_TEST

/* git+/abs/path and git+file:// with --path SUB; --path may not leave the repository. */
START_TEST(test_git_path)
{
	char *repo = xasprintf("%s/mono", tmp), *commit = make_repo(repo, "pkgs/greet");
	char *source, *out, *dir2 = xasprintf("%s/d2", tmp),
			    *outside = xasprintf("%s/outside", tmp);
	char *up;
	int code;

	source = xasprintf("git+%s@v1.0.0", repo);
	code = orchd(&out, "ext", "install", source, "--path", "pkgs/greet", END);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 1.0.0 (");
	free(out);
	free(source);
	source = xasprintf("git+file://%s@v1.0.0", repo);
	code = orchd(&out, "ext", "install", source, "--path", "pkgs/greet", "--dir", dir2, END);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 1.0.0 (");
	free(out);
	/* a package outside the repository, reached by ../ */
	make_pkg(outside, "6.6.6", "outside", NULL, NULL);
	free(sh("rm -rf '%s'", dir2));
	up = xasprintf("../../../../../../../../../../../../../../../../..%s", outside);
	code = orchd(&out, "ext", "install", source, "--path", up, "--dir", dir2, END);
	ck_assert_msg(code != 0, "--path %s: exit 0\n%s", up, tail(out));
	assert_hasnt(out, "6.6.6");
	free(out);
	assert_not_installed(dir2, "--path out of the repository");
	free(up);
	free(source);
	free(commit);
	free(repo);
	free(dir2);
	free(outside);
}
END_TEST

/* --- tarballs ------------------------------------------------------------- */

/* www/NAME: a tar.gz of a package (in a top-level directory when top); its sha256. */
static char *make_tarball(const char *name, int top, char hex[ORCHD_SHA256_HEXSZ])
{
	char *www = xasprintf("%s/www", tmp), *pkg = xasprintf("%s/pkgsrc/greet-1.0.0", tmp);
	char *path = xasprintf("%s/%s", www, name), err[256];

	make_pkg(pkg, "1.0.0", "orig", BUILD, NULL);
	free(sh("mkdir -p '%s'", www));
	if (top)
		free(sh("tar czf '%s' -C '%s/pkgsrc' greet-1.0.0", path, tmp));
	else
		free(sh("tar czf '%s' -C '%s' .", path, pkg));
	ck_assert_msg(orchd_sha256_file(path, hex, err, sizeof(err)) == 0, "%s", err);
	free(www);
	free(pkg);
	return path;
}

START_TEST(test_tarball)
{
	char hex[ORCHD_SHA256_HEXSZ], hex2[ORCHD_SHA256_HEXSZ];
	char *www = xasprintf("%s/www", tmp), *dir2 = xasprintf("%s/d2", tmp);
	char *t1 = make_tarball("greet-1.0.0.tar.gz", 1, hex);
	char *t2 = make_tarball("greet-root.tgz", 0, hex2), *url, *out, *file;
	int code;

	http_server(www);
	url = xasprintf("http://127.0.0.1:%d/greet-1.0.0.tar.gz", http_port);
	code = orchd(&out, "ext", "install", url, "--sha256", hex, END);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 1.0.0 (");
	free(out);
	file = proj_pipeline();
	run_ok(file, "1.0.0", "orig");
	/* the package at the tarball's root, and URL#sha256=HEX */
	free(url);
	url = xasprintf("http://127.0.0.1:%d/greet-root.tgz#sha256=%s", http_port, hex2);
	code = orchd(&out, "ext", "install", url, "--dir", dir2, END);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 1.0.0 (");
	free(out);
	code = orchd(&out, "ext", "list", "--dir", dir2, END);
	assert_exit(code, 0, out);
	assert_listed(out, "1.0.0");
	free(out);
	free(url);
	free(file);
	free(t1);
	free(t2);
	free(www);
	free(dir2);
}
END_TEST

START_TEST(test_tarball_tampered)
{
	char hex[ORCHD_SHA256_HEXSZ], bad[ORCHD_SHA256_HEXSZ], err[256];
	char *www = xasprintf("%s/www", tmp), *t = make_tarball("greet-1.0.0.tar.gz", 1, hex);
	char *url, *out, *text;
	size_t len;
	int code;

	/* change bytes in the middle: the sha256 given is the original's */
	text = test_read_file(t, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_gt(len, 64);
	for (size_t i = len / 2; i < len / 2 + 8; i++)
		text[i] ^= 0x5a;
	{
		FILE *f = fopen(t, "w");

		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(fwrite(text, 1, len, f), len);
		ck_assert_int_eq(fclose(f), 0);
	}
	free(text);
	ck_assert_int_eq(orchd_sha256_file(t, bad, err, sizeof(err)), 0);
	ck_assert_str_ne(hex, bad);
	http_server(www);
	url = xasprintf("http://127.0.0.1:%d/greet-1.0.0.tar.gz", http_port);
	code = orchd(&out, "ext", "install", url, "--sha256", hex, END);
	assert_exit(code, 3, out);
	assert_has(out, hex);
	assert_has(out, bad);
	free(out);
	assert_not_installed(NULL, "a tampered tarball");
	free(url);
	free(t);
	free(www);
}
END_TEST

/* A password in a source URL would end up in orchd.lock: refused. */
START_TEST(test_password_in_url)
{
	static const char *const urls[] = {
		"git+https://user:s3cret@git.example.com/greet.git@v1.0.0",
		"https://user:s3cret@dl.example.com/greet.tar.gz#sha256="
		"0000000000000000000000000000000000000000000000000000000000000000",
	};

	for (size_t i = 0; i < ARRAY_SIZE(urls); i++) {
		char *out;
		int code = orchd(&out, "ext", "install", urls[i], END);

		assert_exit(code, 2, out);
		assert_has(out, "with a password: refused");
		assert_hasnt(out, "s3cret");
		free(out);
	}
	assert_not_installed(NULL, "a password in the URL");
}
END_TEST

START_TEST(test_tarball_without_sha256)
{
	char hex[ORCHD_SHA256_HEXSZ];
	char *www = xasprintf("%s/www", tmp), *t = make_tarball("greet-1.0.0.tar.gz", 1, hex);
	char *url, *out;
	int code;

	http_server(www);
	url = xasprintf("http://127.0.0.1:%d/greet-1.0.0.tar.gz", http_port);
	code = orchd(&out, "ext", "install", url, END);
	assert_exit(code, 2, out);
	assert_has(out, "sha256");
	free(out);
	assert_not_installed(NULL, "a tarball without --sha256");
	free(url);
	free(t);
	free(www);
}
END_TEST

/*
 * Hostile tarballs: a good package in greet/ plus members that try to
 * write outside wherever it is extracted.  Every file they try to write is
 * named evil-*-UNIQ; afterwards, any such file must be inside the package
 * (a directory holding its manifest: an extractor may strip the ../), and
 * tmp/outside/victim must be untouched.  The install may fail or succeed.
 */
/*
 * Is path inside an extracted package: below tmp, with an ancestor
 * directory holding the manifest (at its root or in greet/)?  An extractor
 * may strip the ../ of a member and write it inside the package.
 */
static int inside_package(const char *path)
{
	char *p = xstrdup(path), *slash;
	size_t n = strlen(tmp);
	int ok = 0;

	while (!ok && (slash = strrchr(p, '/')) && slash != p) {
		char *m1, *m2;

		*slash = '\0';
		if (strncmp(p, tmp, n) || p[n] != '/')
			break;
		m1 = xasprintf("%s/orchd-ext-greet.manifest.json", p);
		m2 = xasprintf("%s/greet/orchd-ext-greet.manifest.json", p);
		ok = exists(m1) || exists(m2);
		free(m1);
		free(m2);
	}
	free(p);
	return ok;
}

static const char *const hostile_tars[] = {"dotdot",   "absolute", "symlink",
					   "rsymlink", "hardlink", "symlink-exe"};

static const char mktar_py[] =
	"import io, os, sys, tarfile\n"
	"out, variant, outside, pkg, uniq = sys.argv[1:6]\n"
	"t = tarfile.open(out, 'w:gz')\n"
	"def add(name, data, mode=0o644):\n"
	"    i = tarfile.TarInfo(name); i.size = len(data); i.mode = mode\n"
	"    t.addfile(i, io.BytesIO(data))\n"
	"def link(name, target, kind):\n"
	"    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; t.addfile(i)\n"
	"up = '../' * 24\n"
	"rel = up + outside.lstrip('/')\n"
	"d = tarfile.TarInfo('greet'); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)\n"
	"for f in sorted(os.listdir(pkg)):\n"
	"    if variant == 'symlink-exe' and f == 'orchd-ext-greet': continue\n"
	"    p = os.path.join(pkg, f)\n"
	"    add('greet/' + f, open(p, 'rb').read(), os.stat(p).st_mode & 0o777)\n"
	"if variant == 'dotdot':\n"
	"    add('../evil-dotdot1-' + uniq, b'pwned\\n')\n"
	"    add('greet/../../evil-dotdot2-' + uniq, b'pwned\\n')\n"
	"    add('greet/' + rel + '/evil-dotdot3-' + uniq, b'pwned\\n')\n"
	"elif variant == 'absolute':\n"
	"    add(outside + '/evil-absolute-' + uniq, b'pwned\\n')\n"
	"elif variant == 'symlink':\n"
	"    link('greet/link', outside, tarfile.SYMTYPE)\n"
	"    add('greet/link/evil-symlink-' + uniq, b'pwned\\n')\n"
	"elif variant == 'rsymlink':\n"
	"    link('greet/link', rel, tarfile.SYMTYPE)\n"
	"    add('greet/link/evil-rsymlink-' + uniq, b'pwned\\n')\n"
	"elif variant == 'hardlink':\n"
	"    link('greet/hl', outside + '/victim', tarfile.LNKTYPE)\n"
	"    add('greet/hl', b'pwned\\n')\n"
	"    link('greet/hl2', rel + '/victim', tarfile.LNKTYPE)\n"
	"    add('greet/hl2', b'pwned\\n')\n"
	"elif variant == 'symlink-exe':\n"
	"    # no build: the executable is a symlink to a program outside\n"
	"    link('greet/orchd-ext-greet', outside + '/evil-exe', tarfile.SYMTYPE)\n"
	"t.close()\n";

START_TEST(test_tarball_hostile)
{
	const char *variant = hostile_tars[_i];
	char hex[ORCHD_SHA256_HEXSZ], err[256];
	char *www = xasprintf("%s/www", tmp), *outside = xasprintf("%s/outside", tmp);
	char *pkg = xasprintf("%s/pkgsrc", tmp), *tar = xasprintf("%s/www/h.tar.gz", tmp);
	char *py = xasprintf("%s/mktar.py", tmp), *victim = xasprintf("%s/victim", outside);
	char *url, *out, *found, *line, *save = NULL, *v;
	struct stat st;
	int code;

	free(sh("mkdir -p '%s' '%s'", www, outside));
	write_file(victim, "original\n");
	make_pkg(pkg, "1.0.0", "orig", strcmp(variant, "symlink-exe") ? BUILD : NULL, NULL);
	{
		char *exe = xasprintf("%s/evil-exe", outside), *text = script("1.0.0", "outside");

		write_file(exe, text);
		ck_assert_int_eq(chmod(exe, 0755), 0);
		free(exe);
		free(text);
	}
	write_file(py, mktar_py);
	free(sh("python3 '%s' '%s' '%s' '%s' '%s' '%s'", py, tar, variant, outside, pkg, uniq));
	ck_assert_int_eq(orchd_sha256_file(tar, hex, err, sizeof(err)), 0);
	http_server(www);
	url = xasprintf("http://127.0.0.1:%d/h.tar.gz", http_port);
	code = orchd(&out, "ext", "install", url, "--sha256", hex, END);

	/* wherever evil-* landed, it must be inside the package */
	found = sh("{ find '%s' -name 'evil-*-%s'; find /tmp -maxdepth 3 -name 'evil-*-%s'; } "
		   "2>/dev/null | sort -u | tr '\\n' ' '",
		   tmp, uniq, uniq);
	for (line = strtok_r(found, " ", &save); line; line = strtok_r(NULL, " ", &save))
		ck_assert_msg(inside_package(line),
			      "%s (exit %d): wrote %s outside the package\n%s", variant, code, line,
			      tailn(out, 2500));
	free(found);
	v = test_read_file(victim, NULL);
	ck_assert_msg(v && !strcmp(v, "original\n"), "%s (exit %d): %s now holds '%.200s'\n%s",
		      variant, code, victim, v ? v : "(gone)", tailn(out, 2500));
	free(v);
	/* no hard link to it stayed behind in the install either */
	ck_assert_int_eq(stat(victim, &st), 0);
	ck_assert_msg(st.st_nlink == 1, "%s (exit %d): %s has %ju links\n%s", variant, code, victim,
		      (uintmax_t)st.st_nlink, tailn(out, 2500));
	if (code == 0) {
		/* installed: the extension is a regular file inside the package */
		char *p = xasprintf("%s/orchd-ext-greet", extdir), *real = realpath(p, NULL);

		ck_assert_msg(real && !strncmp(real, extdir, strlen(extdir)),
			      "%s: %s resolves to %s, outside %s", variant, p, real ? real : "?",
			      extdir);
		free(real);
		free(p);
	}
	free(out);
	free(url);
	free(www);
	free(outside);
	free(pkg);
	free(tar);
	free(py);
	free(victim);
}
END_TEST

/* --- core.extensions and orchd.lock --------------------------------------- */

/* A pipeline proj/p.yaml declaring greet from the git daemon's repository. */
static char *git_pipeline(const char *proj, const char *version)
{
	char *ext =
		xasprintf("  core:\n"
			  "    extensions:\n"
			  "      greet: {source: 'git+git://127.0.0.1:%d/greet', version: '%s'}\n",
			  git_port, version);
	char *file = pipeline(proj, ext);

	free(ext);
	return file;
}

/* A fresh, empty default extensions directory (a new XDG_DATA_HOME). */
static void new_data_home(const char *name)
{
	free(data);
	free(extdir);
	data = xasprintf("%s/%s", tmp, name);
	extdir = xasprintf("%s/orchd/extensions", data);
	setenv("XDG_DATA_HOME", data, 1);
}

START_TEST(test_from_writes_lock_and_lock_wins)
{
	char *srv = xasprintf("%s/srv", tmp), *repo = xasprintf("%s/srv/greet", tmp);
	char *proj = xasprintf("%s/proj", tmp), *lockp = xasprintf("%s/proj/orchd.lock", tmp);
	char *commit = make_repo(repo, ""), *file, *out, *lock1, *lock2, *digest, *newer, *src;
	json_object *lock, *e, *pj;
	int code, sorted;

	git_daemon(srv);
	file = git_pipeline(proj, "1.0.0");
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 0, out);
	assert_has(out, "greet 1.0.0");
	free(out);
	lock1 = test_read_file(lockp, NULL);
	ck_assert_msg(lock1 != NULL, "no %s", lockp);
	e = lock_entry(lockp, "greet", &lock);
	ck_assert_msg(e != NULL, "no greet in the lock:\n%s", tail(lock1));
	ck_assert_msg(is_hex(jstr(e, "commit"), 40), "commit: %s\n%s", jstr(e, "commit"),
		      tail(lock1));
	ck_assert_msg(!strcmp(jstr(e, "commit"), commit), "commit %s, expected %s\n%s",
		      jstr(e, "commit"), commit, tail(lock1));
	ck_assert_msg(is_digest(jstr(e, "digest")), "digest: %s\n%s", jstr(e, "digest"),
		      tail(lock1));
	ck_assert_msg(jstr(e, "version") && !strcmp(jstr(e, "version"), "1.0.0"), "%s",
		      tail(lock1));
	src = xasprintf("git+git://127.0.0.1:%d/greet", git_port);
	ck_assert_msg(jstr(e, "source") && !strcmp(jstr(e, "source"), src), "source: %s\n%s",
		      jstr(e, "source"), tail(lock1));
	ck_assert_msg(jstr(e, "ref") && !strcmp(jstr(e, "ref"), "v1.0.0"), "ref: %s\n%s",
		      jstr(e, "ref"), tail(lock1));
	digest = xstrdup(jstr(e, "digest"));
	sorted = keys_sorted(lock);
	json_object_put(lock);
	pj = package_json(NULL);
	ck_assert_msg(jstr(pj, "digest") && !strcmp(jstr(pj, "digest"), digest),
		      "installed digest %s, lock %s", jstr(pj, "digest"), digest);
	json_object_put(pj);
	run_ok(file, "1.0.0", "orig");

	/* a newer release is pushed; a clean machine installs what the lock says */
	newer = repo_release(repo, "1.1.0", "newer", "v1.1.0");
	new_data_home("data2");
	assert_not_installed(NULL, "a new XDG_DATA_HOME");
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 0, out);
	free(out);
	lock2 = test_read_file(lockp, NULL);
	ck_assert_msg(lock2 && !strcmp(lock1, lock2), "the lock changed:\n%.1800s\n---\n%.1800s",
		      lock1, lock2 ? lock2 : "(gone)");
	pj = package_json(NULL);
	ck_assert_msg(jstr(pj, "commit") && !strcmp(jstr(pj, "commit"), commit),
		      "installed commit %s, locked %s (newer %s)", jstr(pj, "commit"), commit,
		      newer);
	ck_assert_msg(jstr(pj, "digest") && !strcmp(jstr(pj, "digest"), digest),
		      "installed digest %s, locked %s", jstr(pj, "digest"), digest);
	json_object_put(pj);
	code = orchd(&out, "ext", "list", END);
	assert_exit(code, 0, out);
	assert_listed(out, "1.0.0");
	free(out);
	run_ok(file, "1.0.0", "orig");
	/* --frozen: the lock has it all */
	new_data_home("data3");
	code = orchd(&out, "ext", "install", "--from", file, "--frozen", END);
	assert_exit(code, 0, out);
	free(out);
	run_ok(file, "1.0.0", "orig");
	/* (last: the rest holds either way) */
	ck_assert_msg(sorted, "the lock's keys are not sorted:\n%s", tail(lock1));
	free(lock1);
	free(lock2);
	free(digest);
	free(newer);
	free(src);
	free(file);
	free(commit);
	free(srv);
	free(repo);
	free(proj);
	free(lockp);
}
END_TEST

/*
 * The tag v1.0.0 is moved to other content after the lock was written (the
 * old commit stays reachable from a branch).  A clean install --from must
 * install the locked commit, or refuse (exit 3): never the moved tag's tree.
 */
START_TEST(test_from_tag_moved)
{
	char *srv = xasprintf("%s/srv", tmp), *repo = xasprintf("%s/srv/greet", tmp);
	char *proj = xasprintf("%s/proj", tmp), *lockp = xasprintf("%s/proj/orchd.lock", tmp);
	char *commit = make_repo(repo, ""), *file, *out, *lock1, *lock2, *moved;
	int code;

	git_daemon(srv);
	file = git_pipeline(proj, "1.0.0");
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 0, out);
	free(out);
	lock1 = test_read_file(lockp, NULL);
	ck_assert_ptr_nonnull(lock1);
	free(sh("git -C '%s' branch keep", repo));
	moved = repo_release(repo, "1.0.0", "moved", "v1.0.0");
	ck_assert_str_ne(moved, commit);
	new_data_home("data2");
	code = orchd(&out, "ext", "install", "--from", file, END);
	ck_assert_msg(code == 0 || code == 3, "exit %d\n%s", code, tail(out));
	free(out);
	lock2 = test_read_file(lockp, NULL);
	ck_assert_msg(lock2 && !strcmp(lock1, lock2), "the lock changed:\n%.1800s\n---\n%.1800s",
		      lock1, lock2 ? lock2 : "(gone)");
	if (code == 0) {
		json_object *pj = package_json(NULL);

		ck_assert_msg(jstr(pj, "commit") && !strcmp(jstr(pj, "commit"), commit),
			      "installed commit %s, locked %s (moved tag: %s)", jstr(pj, "commit"),
			      commit, moved);
		json_object_put(pj);
		run_ok(file, "1.0.0", "orig");
	} else {
		assert_not_installed(NULL, "refused a moved tag");
	}
	free(lock1);
	free(lock2);
	free(moved);
	free(file);
	free(commit);
	free(srv);
	free(repo);
	free(proj);
	free(lockp);
}
END_TEST

/* ext upgrade of a git package: the newest tag above the installed version. */
START_TEST(test_upgrade_git)
{
	char *srv = xasprintf("%s/srv", tmp), *repo = xasprintf("%s/srv/greet", tmp);
	char *commit = make_repo(repo, ""), *source, *out, *file = proj_pipeline(), *c2, *c3;
	int code;

	git_daemon(srv);
	source = xasprintf("git+git://127.0.0.1:%d/greet@v1.0.0", git_port);
	code = orchd(&out, "ext", "install", source, END);
	assert_exit(code, 0, out);
	free(out);
	c2 = repo_release(repo, "1.2.0", "newest", "v1.2.0");
	/* an older tag made later: not the newest */
	c3 = repo_release(repo, "1.1.0", "older", "1.1.0");
	code = orchd(&out, "ext", "upgrade", "greet", END);
	assert_exit(code, 0, out);
	assert_has(out, "1.2.0");
	free(out);
	code = orchd(&out, "ext", "list", END);
	assert_exit(code, 0, out);
	assert_listed(out, "1.2.0");
	free(out);
	run_ok(file, "1.2.0", "newest");
	free(c2);
	free(c3);
	free(source);
	free(file);
	free(commit);
	free(repo);
	free(srv);
}
END_TEST

static const char local_ext[] = "  core:\n"
				"    extensions:\n"
				"      greet: {source: ./greet}\n";

START_TEST(test_frozen_lock_lacks_type)
{
	char *proj = xasprintf("%s/proj", tmp), *src = xasprintf("%s/proj/greet", tmp);
	char *lockp = xasprintf("%s/proj/orchd.lock", tmp), *file, *out, *before, *after;
	json_object *lock, *e;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	file = pipeline(proj, local_ext);
	write_file(lockp, "{\"extensions\": {}, \"orchd_lock\": 1}\n");
	before = test_read_file(lockp, NULL);
	code = orchd(&out, "ext", "install", "--from", file, "--frozen", END);
	assert_exit(code, 2, out);
	assert_has(out, "greet");
	free(out);
	after = test_read_file(lockp, NULL);
	ck_assert_msg(after && !strcmp(before, after), "--frozen changed the lock:\n%s",
		      after ? tail(after) : "(gone)");
	free(after);
	assert_not_installed(NULL, "--frozen, type not in the lock");
	/* without --frozen: resolved afresh, the lock updated */
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 0, out);
	free(out);
	e = lock_entry(lockp, "greet", &lock);
	ck_assert_msg(e != NULL, "no greet in the lock");
	ck_assert_msg(is_digest(jstr(e, "digest")), "digest %s", jstr(e, "digest"));
	ck_assert_msg(jstr(e, "version") && !strcmp(jstr(e, "version"), "1.0.0"), "version %s",
		      jstr(e, "version"));
	json_object_put(lock);
	run_ok(file, "1.0.0", "orig");
	free(before);
	free(file);
	free(proj);
	free(src);
	free(lockp);
}
END_TEST

/*
 * A local package changed after the lock was written (same version): a
 * clean install --from must refuse it (exit 3), not install it nor rewrite
 * the lock.
 */
START_TEST(test_from_digest_mismatch)
{
	char *proj = xasprintf("%s/proj", tmp), *src = xasprintf("%s/proj/greet", tmp);
	char *lockp = xasprintf("%s/proj/orchd.lock", tmp), *file, *out, *before, *after;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	file = pipeline(proj, local_ext);
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 0, out);
	free(out);
	before = test_read_file(lockp, NULL);
	ck_assert_ptr_nonnull(before);
	make_pkg(src, "1.0.0", "tampered", BUILD, NULL);
	new_data_home("data2");
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 3, out);
	free(out);
	after = test_read_file(lockp, NULL);
	ck_assert_msg(after && !strcmp(before, after), "the lock changed:\n%.1800s\n---\n%.1800s",
		      before, after ? after : "(gone)");
	assert_not_installed(NULL, "a digest unlike the lock's");
	code = orchd(&out, "run", file, END);
	assert_exit(code, 2, out);
	assert_hasnt(out, "says hello");
	free(out);
	free(before);
	free(after);
	free(file);
	free(proj);
	free(src);
	free(lockp);
}
END_TEST

START_TEST(test_run_refuses_out_of_date_lock)
{
	char *proj = xasprintf("%s/proj", tmp), *src = xasprintf("%s/proj/greet", tmp);
	char *file, *out, *where;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	file = pipeline(proj, "  core:\n"
			      "    extensions:\n"
			      "      greet: {source: ./greet, version: '1.0.0'}\n");
	where = xasprintf("%s:4:", file);
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 0, out);
	free(out);
	run_ok(file, "1.0.0", "orig");
	/* the declaration's version differs from the lock's */
	free(file);
	file = pipeline(proj, "  core:\n"
			      "    extensions:\n"
			      "      greet: {source: ./greet, version: '1.1.0'}\n");
	code = orchd(&out, "run", file, END);
	assert_exit(code, 2, out);
	assert_has(out, "orchd ext install --from");
	assert_has(out, where);
	assert_hasnt(out, "says hello");
	free(out);
	code = orchd(&out, "plan", file, END);
	assert_exit(code, 2, out);
	assert_has(out, "orchd ext install --from");
	free(out);
	free(where);
	free(file);
	free(proj);
	free(src);
}
END_TEST

/*
 * No lock, or a lock but nothing installed (a fresh checkout): refused with
 * the declaration's place and the command that fixes it.
 */
START_TEST(test_run_without_lock)
{
	char *proj = xasprintf("%s/proj", tmp), *src = xasprintf("%s/proj/greet", tmp);
	char *lockp = xasprintf("%s/proj/orchd.lock", tmp), *file, *out, *where;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	file = pipeline(proj, "  core:\n"
			      "    extensions:\n"
			      "      greet: {source: ./greet, version: '1.0.0'}\n");
	where = xasprintf("%s:4:", file);
	/* installed, but not with --from: no lock */
	code = orchd(&out, "ext", "install", src, END);
	assert_exit(code, 0, out);
	free(out);
	code = orchd(&out, "run", file, END);
	assert_exit(code, 2, out);
	assert_has(out, "orchd ext install --from");
	assert_has(out, where);
	assert_hasnt(out, "says hello");
	free(out);
	/* a lock, nothing installed */
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 0, out);
	free(out);
	ck_assert_msg(exists(lockp), "no %s", lockp);
	new_data_home("data2");
	code = orchd(&out, "run", file, END);
	assert_exit(code, 2, out);
	assert_hasnt(out, "says hello");
	assert_has(out, "orchd ext install --from");
	free(out);
	/* no lock, nothing installed */
	ck_assert_int_eq(unlink(lockp), 0);
	code = orchd(&out, "run", file, END);
	assert_exit(code, 2, out);
	assert_hasnt(out, "says hello");
	assert_has(out, "orchd ext install --from");
	assert_has(out, where);
	free(out);
	free(where);
	free(file);
	free(proj);
	free(src);
	free(lockp);
}
END_TEST

/* The extension found for a locked type is not the locked package. */
START_TEST(test_run_refuses_unlocked_extension)
{
	char *proj = xasprintf("%s/proj", tmp), *src = xasprintf("%s/proj/greet", tmp);
	char *other = xasprintf("%s/other", tmp), *file, *out;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	file = pipeline(proj, local_ext);
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 0, out);
	free(out);
	run_ok(file, "1.0.0", "orig");
	/* an impostor first on the search path, same name and version */
	make_pkg(other, "1.0.0", "impostor", NULL, NULL);
	code = orchd(&out, "--extensions-dir", other, "run", file, END);
	assert_exit(code, 2, out);
	assert_has(out, "orchd ext install --from");
	assert_hasnt(out, "says hello");
	free(out);
	free(file);
	free(proj);
	free(src);
	free(other);
}
END_TEST

START_TEST(test_unknown_key)
{
	char *proj = xasprintf("%s/proj", tmp), *src = xasprintf("%s/proj/greet", tmp);
	char *file, *out, *where;
	int code;

	make_pkg(src, "1.0.0", "orig", BUILD, NULL);
	file = pipeline(proj, "  core:\n"
			      "    extensions:\n"
			      "      greet:\n"
			      "        source: ./greet\n"
			      "        colour: red\n");
	where = xasprintf("%s:6:9", file);
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 2, out);
	assert_has(out, where);
	assert_has(out, "colour");
	free(out);
	assert_not_installed(NULL, "an unknown key");
	code = orchd(&out, "run", file, END);
	assert_exit(code, 2, out);
	assert_has(out, where);
	assert_has(out, "colour");
	free(out);
	code = orchd(&out, "validate", file, END);
	assert_exit(code, 2, out);
	assert_has(out, where);
	free(out);
	free(where);
	free(file);
	free(proj);
	free(src);
}
END_TEST

/* ext install SOURCE --pipeline FILE records the package in orchd.lock beside FILE. */
START_TEST(test_install_pipeline_records)
{
	char *proj = xasprintf("%s/proj", tmp), *src = xasprintf("%s/greet", tmp);
	char *lockp = xasprintf("%s/proj/orchd.lock", tmp), *file, *out, *text;
	json_object *lock, *e;
	int code;

	make_pkg(src, "2.0.0", "orig", BUILD, NULL);
	file = pipeline(proj, NULL);
	code = orchd(&out, "ext", "install", src, "--pipeline", file, END);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 2.0.0 (");
	free(out);
	text = test_read_file(lockp, NULL);
	ck_assert_msg(text != NULL, "no %s", lockp);
	e = lock_entry(lockp, "greet", &lock);
	ck_assert_msg(e != NULL, "no greet:\n%s", tail(text));
	ck_assert_msg(is_digest(jstr(e, "digest")), "%s", tail(text));
	ck_assert_msg(jstr(e, "version") && !strcmp(jstr(e, "version"), "2.0.0"), "%s", tail(text));
	json_object_put(lock);
	free(text);
	free(file);
	free(proj);
	free(src);
	free(lockp);
}
END_TEST

/*
 * pip: a wheel made here (a zip: the module, METADATA, WHEEL, the console
 * script orchd-ext-greet in entry_points.txt, RECORD), installed from its
 * path, so that pip needs no index and no build backend.  The module is
 * the script: it runs on import, and main() has nothing left to do.
 */
static char *make_wheel(const char *version, const char *mark)
{
	char *src = xasprintf("%s/greet_src.py", tmp), *py = xasprintf("%s/mkwheel.py", tmp),
	     *whl = xasprintf("%s/orchd_ext_greet-%s-py3-none-any.whl", tmp, version),
	     *text = script(version, mark);

	write_file(src, text);
	write_file(py, "import base64, hashlib, sys, zipfile\n"
		       "whl, src, ver = sys.argv[1:4]\n"
		       "di = 'orchd_ext_greet-%s.dist-info' % ver\n"
		       "files = {\n"
		       "  'greet_ext.py': open(src).read() + '\\ndef main():\\n    pass\\n',\n"
		       "  di + '/METADATA': 'Metadata-Version: 2.1\\nName: orchd-ext-greet\\n"
		       "Version: %s\\n' % ver,\n"
		       "  di + '/WHEEL': 'Wheel-Version: 1.0\\nGenerator: orchd-tests\\n"
		       "Root-Is-Purelib: true\\nTag: py3-none-any\\n',\n"
		       "  di + '/entry_points.txt': '[console_scripts]\\n"
		       "orchd-ext-greet = greet_ext:main\\n',\n"
		       "}\n"
		       "rec = []\n"
		       "with zipfile.ZipFile(whl, 'w') as z:\n"
		       "    for name, data in files.items():\n"
		       "        b = data.encode()\n"
		       "        z.writestr(name, b)\n"
		       "        d = base64.urlsafe_b64encode(hashlib.sha256(b).digest())"
		       ".rstrip(b'=').decode()\n"
		       "        rec.append('%s,sha256=%s,%d' % (name, d, len(b)))\n"
		       "    rec.append(di + '/RECORD,,')\n"
		       "    z.writestr(di + '/RECORD', '\\n'.join(rec) + '\\n')\n");
	free(sh("python3 '%s' '%s' '%s' '%s'", py, whl, src, version));
	free(text);
	free(src);
	free(py);
	return whl;
}

START_TEST(test_pip)
{
	char *proj = xasprintf("%s/proj", tmp), *lockp = xasprintf("%s/proj/orchd.lock", tmp);
	char *whl = make_wheel("3.1.0", "wheel"), *req = xasprintf("pip:%s", whl), *file, *out;
	char *f[4], *line;
	json_object *lock, *e;
	int code, nf;

	file = pipeline(proj, NULL);
	code = orchd(&out, "ext", "install", req, "--pipeline", file, END);
	assert_exit(code, 0, out);
	assert_has(out, "installed greet 3.1.0 (sha256:");
	free(out);
	/* its manifest comes from its hello; it runs, sandbox and all */
	run_ok(file, "3.1.0", "wheel");
	code = orchd(&out, "ext", "list", END);
	assert_exit(code, 0, out);
	line = list_line(out, "greet", f, &nf);
	ck_assert_msg(line && nf >= 4 && !strcmp(f[1], "3.1.0") && !strcmp(f[2], req), "%s",
		      tail(out));
	free(line);
	free(out);
	e = lock_entry(lockp, "greet", &lock);
	ck_assert_msg(e && is_digest(jstr(e, "digest")) && jstr(e, "source") &&
			      !strcmp(jstr(e, "source"), req),
		      "lock entry of greet");
	json_object_put(lock);
	/* a requirement pip cannot satisfy: refused, nothing installed */
	free(sh("rm -rf '%s'", extdir));
	code = orchd(&out, "ext", "install", "pip:/nonexistent/orchd_ext_x-1.0-py3-none-any.whl",
		     END);
	assert_exit(code, 3, out);
	assert_has(out, "pip install /nonexistent/");
	free(out);
	assert_not_installed(extdir, "a pip failure");
	{
		char *pat = xasprintf("%s/.orchd-pkgs/pip-*", extdir);
		glob_t g;

		ck_assert_msg(glob(pat, 0, NULL, &g) == GLOB_NOMATCH, "a pip failure left %s",
			      g.gl_pathc ? g.gl_pathv[0] : pat);
		globfree(&g);
		free(pat);
	}
	free(file);
	free(proj);
	free(lockp);
	free(whl);
	free(req);
}
END_TEST

/*
 * The newcomer's path, per language: `orchd ext new`, `orchd ext test`
 * passes, the directory is published as a git tag, a pipeline declares it,
 * `ext install --from` records it in orchd.lock; then "another machine"
 * (a fresh extensions directory) gets the same commit and digest with
 * `--from --frozen` and runs the pipeline.  C is left out under ASan (a
 * plain program cannot link the instrumented liborchd-protocol).
 */
static const char *const newcomer_langs[] = {"python", "sh", "go",
#if !defined(__SANITIZE_ADDRESS__)
					     "c"
#endif
};

START_TEST(test_newcomer)
{
	const char *lang = newcomer_langs[_i];
	char *name = xasprintf("hi%s", lang), *dir = xasprintf("%s/src/%s", tmp, name);
	char *proj = xasprintf("%s/proj", tmp), *file = xasprintf("%s/p.yaml", proj);
	char *lockp = xasprintf("%s/orchd.lock", proj), *out, *text, *want;
	char *commit1, *digest1;
	json_object *lock, *e;
	int code;

	free(sh("mkdir -p '%s/src' '%s'", tmp, proj));
	code = orchd(&out, "ext", "new", name, "--lang", lang, "--dir", dir, END);
	assert_exit(code, 0, out);
	free(out);
	if (!strcmp(lang, "c") || !strcmp(lang, "go")) {
		/* ext test runs the executable: build it where it is made */
		char *build = test_build_path("");

		free(sh("cd '%s' && make ORCHD_PREFIX='%s' >/dev/null 2>&1 && echo ok", dir,
			build));
		free(build);
	}
	code = orchd(&out, "ext", "test", dir, END);
	assert_exit(code, 0, out);
	assert_has(out, " 0 failed, ");
	free(out);
	/* published without what a build makes (it is built where installed) */
	free(sh("cd '%s' && { [ ! -f Makefile ] || make clean >/dev/null; } && git init -q && "
		"git add -A && git -c user.name=n -c user.email=n@x commit -qm 'first' && "
		"git tag v0.1.0",
		dir));
	text = xasprintf("p:\n"
			 "  core:\n"
			 "    extensions:\n"
			 "      %s: {source: 'git+file://%s', version: '0.1.0'}\n"
			 "  %s:\n"
			 "    - name: one\n"
			 "      who: newcomer\n",
			 name, dir, name);
	write_file(file, text);
	free(text);
	/* the laptop: resolves v0.1.0, builds, records */
	{
		char *build = test_build_path(""); /* the orchd of the C Makefile */

		setenv("ORCHD_PREFIX", build, 1);
		free(build);
	}
	new_data_home("laptop");
	code = orchd(&out, "ext", "install", "--from", file, END);
	assert_exit(code, 0, out);
	free(out);
	e = lock_entry(lockp, name, &lock);
	ck_assert_msg(e && is_hex(jstr(e, "commit"), 40) && is_digest(jstr(e, "digest")),
		      "%s: the lock entry", lang);
	commit1 = xstrdup(jstr(e, "commit"));
	digest1 = xstrdup(jstr(e, "digest"));
	json_object_put(lock);
	/* another machine: nothing installed, the lock only */
	new_data_home("agent");
	code = orchd(&out, "run", file, END);
	assert_exit(code, 2, out);
	assert_has(out, "orchd ext install --from");
	free(out);
	code = orchd(&out, "ext", "install", "--from", file, "--frozen", END);
	assert_exit(code, 0, out);
	assert_has(out, digest1);
	free(out);
	e = lock_entry(lockp, name, &lock);
	ck_assert_msg(e && !strcmp(jstr(e, "commit"), commit1) &&
			      !strcmp(jstr(e, "digest"), digest1),
		      "%s: the lock changed", lang);
	json_object_put(lock);
	code = orchd(&out, "run", file, END);
	assert_exit(code, 0, out);
	want = xasprintf("%s.one.message = hello, newcomer", name);
	assert_has(out, want);
	free(want);
	free(out);
	free(commit1);
	free(digest1);
	free(name);
	free(dir);
	free(proj);
	free(file);
	free(lockp);
}
END_TEST

Suite *extpkg_suite(void)
{
	Suite *s = suite_create("extpkg");
	TCase *tc = tcase_create("install");
	TCase *lk = tcase_create("lock");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_local_install_and_run);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_dir_option);
	tcase_add_test(tc, test_remove);
	tcase_add_test(tc, test_concurrent_installs);
	tcase_add_test(tc, test_install_replaces);
	tcase_add_test(tc, test_remove_hostile_type);
	tcase_add_test(tc, test_min_orchd_version);
	tcase_add_test(tc, test_protocol_incompatible);
	tcase_add_test(tc, test_needs_missing);
	tcase_add_test(tc, test_needs_alternatives);
	tcase_add_test(tc, test_build_fails);
	tcase_add_loop_test(tc, test_build_without_executable, 0, (int)ARRAY_SIZE(bad_builds));
	tcase_add_loop_test(tc, test_bad_manifest, 0, (int)ARRAY_SIZE(bad_manifests));
	tcase_add_test(tc, test_git_tag);
	tcase_add_test(tc, test_git_commit);
	tcase_add_test(tc, test_git_branch_refused);
	tcase_add_test(tc, test_git_path);
	tcase_add_test(tc, test_upgrade_git);
	tcase_add_test(tc, test_tarball);
	tcase_add_test(tc, test_tarball_tampered);
	tcase_add_test(tc, test_tarball_without_sha256);
	tcase_add_test(tc, test_password_in_url);
	tcase_add_loop_test(tc, test_tarball_hostile, 0, (int)ARRAY_SIZE(hostile_tars));
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(lk, setup, teardown);
	tcase_set_timeout(lk, 180);
	tcase_add_test(lk, test_from_writes_lock_and_lock_wins);
	tcase_add_test(lk, test_from_tag_moved);
	tcase_add_test(lk, test_frozen_lock_lacks_type);
	tcase_add_test(lk, test_from_digest_mismatch);
	tcase_add_test(lk, test_run_refuses_out_of_date_lock);
	tcase_add_test(lk, test_run_without_lock);
	tcase_add_test(lk, test_run_refuses_unlocked_extension);
	tcase_add_test(lk, test_unknown_key);
	tcase_add_test(lk, test_install_pipeline_records);
	tcase_add_test(lk, test_pip);
	tcase_add_loop_test(lk, test_newcomer, 0, (int)ARRAY_SIZE(newcomer_langs));
	suite_add_tcase(s, lk);
	return s;
}
