/*
 * Tests of common/git: a real origin repository built with the git CLI in a
 * temporary directory (two branches, an annotated and a lightweight tag),
 * cloned through file:// URLs and plain paths, with a private
 * XDG_CACHE_HOME.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "fetch.h"
#include "git.h"
#include "hash.h"
#include "testutil.h"
#include "util.h"

static char *tmp;	 /* scratch directory */
static char *origin;	 /* the origin repository (a plain path) */
static char *origin_url; /* file://... */
static char *cache;	 /* $XDG_CACHE_HOME */

/* The git CLI, found in PATH (test_run() wants a path). */
static char *git_path(void)
{
	const char *path = getenv("PATH");
	char *copy = xstrdup(path ? path : "/usr/bin:/bin"), *dir, *save = NULL, *found = NULL;

	for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/git", *dir ? dir : ".");

		if (access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(copy);
	return found ? found : xstrdup("/usr/bin/git");
}

/* Run git with the NULL-terminated args in dir (use the git() macro); returns stdout (trailing
 * newlines removed, malloc'ed); a failure fails the test. */
static char *git_run(const char *dir, ...)
{
	static const char *const pre[] = {"git",
					  "-C",
					  NULL,
					  "-c",
					  "user.name=orchd test",
					  "-c",
					  "user.email=test@orchd.invalid",
					  "-c",
					  "commit.gpgsign=false"};
	char *argv[32], *out = NULL, *err = NULL;
	const char *a;
	size_t n = 0, i;
	va_list ap;
	int rc;

	for (i = 0; i < ARRAY_SIZE(pre); i++)
		argv[n++] = i == 0 ? git_path() : xstrdup(pre[i] ? pre[i] : dir);
	va_start(ap, dir);
	while ((a = va_arg(ap, const char *)) && n < ARRAY_SIZE(argv) - 1)
		argv[n++] = xstrdup(a);
	va_end(ap);
	argv[n] = NULL;
	rc = test_run(argv, &out, &err);
	ck_assert_msg(rc == 0, "git %s %s: %s", argv[9], argv[10] ? argv[10] : "", err ? err : "");
	for (i = 0; i < n; i++)
		free(argv[i]);
	free(err);
	n = strlen(out);
	while (n && out[n - 1] == '\n')
		out[--n] = '\0';
	return out;
}

/* git(dir, args...): the list is NULL-terminated here, with the right type */
#define git(...)  git_run(__VA_ARGS__, (const char *)NULL)
#define git0(...) free(git(__VA_ARGS__))

static void write_file(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	free(p);
}

static char *read_file_in(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name), *s = test_read_file(p, NULL);

	free(p);
	return s;
}

static void commit_file(const char *name, const char *text, const char *msg)
{
	write_file(origin, name, text);
	git0(origin, "add", name);
	git0(origin, "commit", "-q", "-m", msg);
}

/*
 * origin: main: c1 (v1 annotated, v1-light) -- c2
 *         feature: c1 -- f1
 */
static void setup(void)
{
	tmp = test_tmpdir();
	ck_assert_ptr_nonnull(tmp);
	cache = xasprintf("%s/cache", tmp);
	origin = xasprintf("%s/origin.git", tmp);
	origin_url = xasprintf("file://%s", origin);
	setenv("XDG_CACHE_HOME", cache, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
	ck_assert_int_eq(mkdir(origin, 0755), 0);
	git0(origin, "init", "-q", "-b", "main");
	commit_file("file.txt", "one\n", "c1");
	git0(origin, "tag", "-a", "v1", "-m", "release 1");
	git0(origin, "tag", "v1-light");
	git0(origin, "checkout", "-q", "-b", "feature");
	commit_file("feature.txt", "feature\n", "f1");
	git0(origin, "checkout", "-q", "main");
	commit_file("file.txt", "two\n", "c2");
}

static void teardown(void)
{
	test_rmtree(tmp);
	free(tmp);
	free(origin);
	free(origin_url);
	free(cache);
}

static char *dest_path(const char *name)
{
	return xasprintf("%s/%s", tmp, name);
}

START_TEST(test_branch_via_file_url)
{
	char commit[ORCHD_GIT_OIDSZ], err[1024], *dest = dest_path("w"), *s;
	char *want = git(origin, "rev-parse", "main");

	ck_assert_msg(
		orchd_git_checkout(origin_url, "main", dest, NULL, commit, err, sizeof(err)) == 0,
		"%s", err);
	ck_assert_str_eq(commit, want);
	s = read_file_in(dest, "file.txt");
	ck_assert_str_eq(s, "two\n");
	free(s);
	/* detached HEAD, origin is the real URL, worktree clean */
	s = git(dest, "rev-parse", "--abbrev-ref", "HEAD");
	ck_assert_str_eq(s, "HEAD");
	free(s);
	s = git(dest, "rev-parse", "HEAD");
	ck_assert_str_eq(s, want);
	free(s);
	s = git(dest, "remote", "get-url", "origin");
	ck_assert_str_eq(s, origin_url);
	free(s);
	s = git(dest, "status", "--porcelain");
	ck_assert_str_eq(s, "");
	free(s);
	free(want);
	free(dest);
}
END_TEST

START_TEST(test_each_ref_kind)
{
	char commit[ORCHD_GIT_OIDSZ], err[1024], abbrev[8], *dest, *s;
	char *main_id = git(origin, "rev-parse", "main");
	char *feat_id = git(origin, "rev-parse", "feature");
	char *c1 = git(origin, "rev-parse", "v1^{commit}");
	struct {
		const char *ref;
		const char *want;
		const char *file_txt;
	} cases[] = {
		{"feature", feat_id, "one\n"},		  /* branch, plain path URL */
		{"v1", c1, "one\n"},			  /* annotated tag */
		{"v1-light", c1, "one\n"},		  /* lightweight tag */
		{"refs/heads/feature", feat_id, "one\n"}, /* full ref name */
		{c1, c1, "one\n"},			  /* full commit id */
		{abbrev, c1, "one\n"},			  /* abbreviated commit id */
		{NULL, main_id, "two\n"},		  /* default branch */
		{"HEAD", main_id, "two\n"},
	};
	size_t i;

	memcpy(abbrev, c1, 7);
	abbrev[7] = '\0';
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		char name[16];

		snprintf(name, sizeof(name), "w%zu", i);
		dest = dest_path(name);
		ck_assert_msg(orchd_git_checkout(origin, cases[i].ref, dest, NULL, commit, err,
						 sizeof(err)) == 0,
			      "%s: %s", cases[i].ref, err);
		ck_assert_msg(!strcmp(commit, cases[i].want), "%s: %s", cases[i].ref, commit);
		s = read_file_in(dest, "file.txt");
		ck_assert_str_eq(s, cases[i].file_txt);
		free(s);
		free(dest);
	}
	/* the branch-only file is there for feature, not for the tag */
	dest = dest_path("w0/feature.txt");
	ck_assert_int_eq(access(dest, F_OK), 0);
	free(dest);
	dest = dest_path("w1/feature.txt");
	ck_assert_int_eq(access(dest, F_OK), -1);
	free(dest);
	free(main_id);
	free(feat_id);
	free(c1);
}
END_TEST

START_TEST(test_missing_ref)
{
	char err[1024], expect[1024], *dest = dest_path("w");

	ck_assert_int_eq(orchd_git_checkout(origin_url, "nope", dest, NULL, NULL, err, sizeof(err)),
			 -1);
	snprintf(expect, sizeof(expect),
		 "cannot resolve ref 'nope' of '%s': no branch, tag or commit of that name",
		 origin_url);
	ck_assert_str_eq(err, expect);
	ck_assert_int_eq(access(dest, F_OK), -1);

	/* a hex-looking ref that is no commit, and without the cache */
	{
		struct orchd_git_opts o = ORCHD_GIT_OPTS_INIT;

		o.no_cache = 1;
		ck_assert_int_eq(orchd_git_checkout(origin_url, "deadbeef", dest, &o, NULL, err,
						    sizeof(err)),
				 -1);
		snprintf(expect, sizeof(expect),
			 "cannot resolve ref 'deadbeef' of '%s': no branch, tag or commit of "
			 "that name",
			 origin_url);
		ck_assert_str_eq(err, expect);
		ck_assert_int_eq(access(dest, F_OK), -1);
	}
	free(dest);
}
END_TEST

START_TEST(test_bad_url_and_dest)
{
	char err[1024], prefix[1024], *dest = dest_path("w"), *bad = dest_path("no-such-repo");

	ck_assert_int_eq(orchd_git_checkout(bad, "main", dest, NULL, NULL, err, sizeof(err)), -1);
	snprintf(prefix, sizeof(prefix), "cannot fetch '%s': ", bad);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0 && strlen(err) > strlen(prefix),
		      "%s", err);
	ck_assert_int_eq(access(dest, F_OK), -1);

	/* a destination with content is refused, and left alone */
	ck_assert_int_eq(mkdir(dest, 0755), 0);
	write_file(dest, "keep", "x");
	ck_assert_int_eq(orchd_git_checkout(origin, "main", dest, NULL, NULL, err, sizeof(err)),
			 -1);
	snprintf(prefix, sizeof(prefix),
		 "cannot check out into '%s': not an empty directory nor a clone of '%s'", dest,
		 origin);
	ck_assert_str_eq(err, prefix);
	free(read_file_in(dest, "keep"));

	/* an empty existing directory is fine */
	free(bad);
	bad = dest_path("w/keep");
	unlink(bad);
	ck_assert_msg(orchd_git_checkout(origin, "main", dest, NULL, NULL, err, sizeof(err)) == 0,
		      "%s", err);
	free(bad);
	free(dest);
}
END_TEST

START_TEST(test_cache_is_fetched_and_reused)
{
	char commit[ORCHD_GIT_OIDSZ], err[1024], hex[ORCHD_SHA256_HEXSZ], prefix[1024];
	char *d1 = dest_path("w1"), *d2 = dest_path("w2"), *d3 = dest_path("w3");
	char *d4 = dest_path("w4"), *mirror, *s, *c2, *c3;
	struct stat st;

	ck_assert_msg(orchd_git_checkout(origin_url, "main", d1, NULL, commit, err, sizeof(err)) ==
			      0,
		      "%s", err);
	c2 = xstrdup(commit);
	ck_assert_int_eq(orchd_sha256_hex(origin_url, strlen(origin_url), hex), 0);
	mirror = xasprintf("%s/orchd/git/%s", cache, hex);
	ck_assert_int_eq(stat(mirror, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));

	/* a leftover of a killed mirror creation is cleaned up */
	{
		char *left = xasprintf("%s.tmp-AbCdEf", mirror);

		ck_assert_int_eq(mkdir(left, 0755), 0);
		write_file(left, "junk", "x");
		ck_assert_msg(orchd_git_mirror(origin_url, NULL, NULL, err, sizeof(err)) == 0, "%s",
			      err);
		ck_assert_int_eq(access(left, F_OK), -1);
		free(left);
	}

	/* a new upstream commit is fetched into the existing mirror */
	commit_file("file.txt", "three\n", "c3");
	c3 = git(origin, "rev-parse", "main");
	ck_assert_msg(orchd_git_checkout(origin_url, "main", d2, NULL, commit, err, sizeof(err)) ==
			      0,
		      "%s", err);
	ck_assert_str_eq(commit, c3);
	s = read_file_in(d2, "file.txt");
	ck_assert_str_eq(s, "three\n");
	free(s);
	s = git(mirror, "rev-parse", "refs/heads/main");
	ck_assert_str_eq(s, c3);
	free(s);

	/* with the origin gone, a pinned commit comes from the cache alone */
	test_rmtree(origin);
	ck_assert_msg(orchd_git_checkout(origin_url, c2, d3, NULL, commit, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_str_eq(commit, c2);
	s = read_file_in(d3, "file.txt");
	ck_assert_str_eq(s, "two\n");
	free(s);

	/* ... while a branch needs a fetch, which fails and names the URL */
	ck_assert_int_eq(orchd_git_checkout(origin_url, "main", d4, NULL, commit, err, sizeof(err)),
			 -1);
	snprintf(prefix, sizeof(prefix), "cannot fetch '%s': ", origin_url);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "%s", err);
	ck_assert_int_eq(access(d4, F_OK), -1);
	free(mirror);
	free(c2);
	free(c3);
	free(d1);
	free(d2);
	free(d3);
	free(d4);
}
END_TEST

START_TEST(test_no_cache)
{
	struct orchd_git_opts o = ORCHD_GIT_OPTS_INIT;
	char commit[ORCHD_GIT_OIDSZ], err[1024], *dest = dest_path("w"), *s, *gitdir;
	char *feat_id = git(origin, "rev-parse", "feature");

	o.no_cache = 1;
	ck_assert_msg(
		orchd_git_checkout(origin_url, "feature", dest, &o, commit, err, sizeof(err)) == 0,
		"%s", err);
	ck_assert_str_eq(commit, feat_id);
	s = read_file_in(dest, "feature.txt");
	ck_assert_str_eq(s, "feature\n");
	free(s);
	gitdir = xasprintf("%s/orchd/git", cache);
	ck_assert_int_eq(access(gitdir, F_OK), -1);

	/* an explicit cache directory */
	o.no_cache = 0;
	o.cache_dir = gitdir;
	test_rmtree(dest);
	ck_assert_msg(orchd_git_checkout(origin_url, "v1", dest, &o, commit, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(access(gitdir, F_OK), 0);
	free(gitdir);
	free(feat_id);
	free(dest);
}
END_TEST

/* Several processes at once on one URL: the mirror lock serialises them. */
START_TEST(test_concurrent_checkouts)
{
	char *want = git(origin, "rev-parse", "main");
	pid_t pids[4];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(pids); i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			char commit[ORCHD_GIT_OIDSZ], err[1024], name[16], *dest;

			snprintf(name, sizeof(name), "w%zu", i);
			dest = dest_path(name);
			if (orchd_git_checkout(origin_url, "main", dest, NULL, commit, err,
					       sizeof(err)) < 0) {
				fprintf(stderr, "%s\n", err);
				_exit(1);
			}
			_exit(strcmp(commit, want) ? 2 : 0);
		}
	}
	for (i = 0; i < ARRAY_SIZE(pids); i++) {
		int status;

		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %zu: %d", i,
			      status);
	}
	free(want);
}
END_TEST

START_TEST(test_cancel)
{
	static volatile sig_atomic_t flag = 1;
	struct orchd_git_opts o = ORCHD_GIT_OPTS_INIT;
	char err[1024], expect[1024], *dest = dest_path("w");

	o.cancel = &flag;
	ck_assert_int_eq(orchd_git_checkout(origin_url, "main", dest, &o, NULL, err, sizeof(err)),
			 -1);
	snprintf(expect, sizeof(expect), "cannot fetch '%s': cancelled", origin_url);
	ck_assert_str_eq(err, expect);
	ck_assert_int_eq(access(dest, F_OK), -1);
	o.no_cache = 1;
	ck_assert_int_eq(orchd_git_checkout(origin_url, "main", dest, &o, NULL, err, sizeof(err)),
			 -1);
	snprintf(expect, sizeof(expect), "cannot clone '%s' into '%s': cancelled", origin_url,
		 dest);
	ck_assert_str_eq(err, expect);
	ck_assert_int_eq(access(dest, F_OK), -1);
	free(dest);
}
END_TEST

/* A TCP port on 127.0.0.1 that takes connections (the kernel completes
 * them from the backlog) and never says a word; *fd to close. */
static int silent_server(int *fd)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(*fd, 0);
	ck_assert_int_eq(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(*fd, 16), 0);
	ck_assert_int_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

static volatile sig_atomic_t late_flag;

static void *cancel_later(void *arg)
{
	(void)arg;
	usleep(500 * 1000);
	late_flag = 1;
	return NULL;
}

/*
 * A remote that accepts the connection and says nothing: libgit2 1.5 would
 * wait forever (orchd never exited: the fetch blocked its worker); the
 * watchdog ends the call after stall_ms, and a cancel ends it at once.
 */
START_TEST(test_silent_remote)
{
	struct orchd_git_opts o = ORCHD_GIT_OPTS_INIT;
	char err[1024], *dest = dest_path("w"), *url;
	int fd, port = silent_server(&fd);
	pthread_t t;
	time_t t0;

	url = xasprintf("http://127.0.0.1:%d/r.git", port);
	o.stall_ms = 1000;
	t0 = time(NULL);
	ck_assert_int_eq(orchd_git_checkout(url, "main", dest, &o, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, ": stalled: nothing received for 1s"), "%s", err);
	ck_assert_msg(time(NULL) - t0 < 30, "took %lds", (long)(time(NULL) - t0));
	ck_assert_int_eq(access(dest, F_OK), -1);

	/* a cancel, long before the stall limit */
	o.stall_ms = 0;
	o.cancel = &late_flag;
	late_flag = 0;
	ck_assert_int_eq(pthread_create(&t, NULL, cancel_later, NULL), 0);
	ck_assert_int_eq(orchd_git_checkout(url, "main", dest, &o, NULL, err, sizeof(err)), -1);
	pthread_join(t, NULL);
	ck_assert_msg(strstr(err, ": cancelled"), "%s", err);
	ck_assert_msg(time(NULL) - t0 < 30, "took %lds", (long)(time(NULL) - t0));
	close(fd);
	free(url);
	free(dest);
}
END_TEST

START_TEST(test_fetch_git_source)
{
	char err[1024], *text, *path;
	json_object *spec, *res = NULL;
	char *main_id = git(origin, "rev-parse", "main");

	text = xasprintf("{\"git\": \"%s\", \"ref\": \"main\"}", origin_url);
	spec = json_tokener_parse(text);
	ck_assert_msg(orchd_fetch_source(spec, tmp, NULL, &res, err, sizeof(err)) == 0, "%s", err);
	/* default directory: the URL's last segment without .git */
	path = xasprintf("%s/origin", tmp);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(res, "path")), path);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(res, "commit")), main_id);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(res, "type")), "git");
	json_object_put(res);
	json_object_put(spec);
	free(text);
	free(path);

	text = xasprintf("{\"git\": \"%s\", \"ref\": \"feature\", \"path\": \"src/app\"}", origin);
	spec = json_tokener_parse(text);
	ck_assert_msg(orchd_fetch_source(spec, tmp, NULL, NULL, err, sizeof(err)) == 0, "%s", err);
	path = read_file_in(tmp, "src/app/feature.txt");
	ck_assert_str_eq(path, "feature\n");
	json_object_put(spec);
	free(text);
	free(path);
	free(main_id);
}
END_TEST

/* A second checkout into an earlier clone of the same URL moves it. */
static void check_update_in_place(const struct orchd_git_opts *o)
{
	char commit[ORCHD_GIT_OIDSZ], err[1024], prefix[1024], *dest = dest_path("w"), *s;
	char *feat_id = git(origin, "rev-parse", "feature");
	char *c1 = git(origin, "rev-parse", "v1^{commit}");

	ck_assert_msg(orchd_git_checkout(origin_url, "main", dest, o, commit, err, sizeof(err)) ==
			      0,
		      "%s", err);
	write_file(dest, "file.txt", "local change\n");
	write_file(dest, "untracked.txt", "junk\n");
	/* a new upstream branch commit, fetched by the update */
	git0(origin, "checkout", "-q", "feature");
	commit_file("feature.txt", "feature 2\n", "f2");
	git0(origin, "checkout", "-q", "main");
	free(feat_id);
	feat_id = git(origin, "rev-parse", "feature");

	ck_assert_msg(
		orchd_git_checkout(origin_url, "feature", dest, o, commit, err, sizeof(err)) == 0,
		"%s", err);
	ck_assert_str_eq(commit, feat_id);
	s = read_file_in(dest, "feature.txt");
	ck_assert_str_eq(s, "feature 2\n");
	free(s);
	s = read_file_in(dest, "file.txt");
	ck_assert_str_eq(s, "one\n");
	free(s);
	s = dest_path("w/untracked.txt");
	ck_assert_int_eq(access(s, F_OK), -1);
	free(s);
	s = git(dest, "status", "--porcelain");
	ck_assert_str_eq(s, "");
	free(s);

	/* back to a tag; a failing update leaves the clone in place */
	ck_assert_msg(orchd_git_checkout(origin_url, "v1", dest, o, commit, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_str_eq(commit, c1);
	ck_assert_int_eq(orchd_git_checkout(origin_url, "nope", dest, o, NULL, err, sizeof(err)),
			 -1);
	s = read_file_in(dest, "file.txt");
	ck_assert_str_eq(s, "one\n");
	free(s);

	/* the same directory is not a clone of another URL */
	ck_assert_int_eq(orchd_git_checkout(origin, "main", dest, o, NULL, err, sizeof(err)), -1);
	snprintf(prefix, sizeof(prefix),
		 "cannot check out into '%s': not an empty directory nor a clone of '%s'", dest,
		 origin);
	ck_assert_str_eq(err, prefix);
	free(feat_id);
	free(c1);
	free(dest);
}

START_TEST(test_update_in_place)
{
	check_update_in_place(NULL);
}
END_TEST

START_TEST(test_update_in_place_no_cache)
{
	struct orchd_git_opts o = ORCHD_GIT_OPTS_INIT;

	o.no_cache = 1;
	check_update_in_place(&o);
}
END_TEST

Suite *git_suite(void)
{
	Suite *s = suite_create("git");
	TCase *tc = tcase_create("git");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_branch_via_file_url);
	tcase_add_test(tc, test_each_ref_kind);
	tcase_add_test(tc, test_missing_ref);
	tcase_add_test(tc, test_bad_url_and_dest);
	tcase_add_test(tc, test_cache_is_fetched_and_reused);
	tcase_add_test(tc, test_no_cache);
	tcase_add_test(tc, test_update_in_place);
	tcase_add_test(tc, test_update_in_place_no_cache);
	tcase_add_test(tc, test_concurrent_checkouts);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_silent_remote);
	tcase_add_test(tc, test_fetch_git_source);
	suite_add_tcase(s, tc);
	return s;
}
