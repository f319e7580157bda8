#include "git.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "cache.h"
#include "hash.h"
#include "http.h"
#include "orchd_protocol.h"
#include "util.h"

static pthread_once_t git_once = PTHREAD_ONCE_INIT;
static int git_init_rc;
static char git_init_msg[256];

static const char *git_msg(void)
{
	const git_error *e = git_error_last();

	return e && e->message && *e->message ? e->message : "unknown libgit2 error";
}

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static void on_watch_signal(int sig)
{
	(void)sig; /* only there to interrupt a blocked system call */
}

static void git_do_global_init(void)
{
	const char *file, *dir;
	struct sigaction sa, old;

	/* the watchdog's signal: no SA_RESTART, so a blocked recv() or
	 * connect() returns EINTR and libgit2 gives up */
	if (sigaction(ORCHD_GIT_SIGNAL, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
	    !(old.sa_flags & SA_SIGINFO)) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_watch_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(ORCHD_GIT_SIGNAL, &sa, NULL);
	}

	if (git_libgit2_init() < 0) {
		git_init_rc = -1;
		snprintf(git_init_msg, sizeof(git_init_msg), "cannot initialise libgit2: %s",
			 git_msg());
		return;
	}
	file = env_nonempty("GIT_SSL_CAINFO");
	if (!file)
		file = env_nonempty("SSL_CERT_FILE");
	if (!file)
		file = env_nonempty("CURL_CA_BUNDLE");
	dir = env_nonempty("SSL_CERT_DIR");
	if (!file && !dir && access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0)
		file = "/etc/ssl/certs/ca-certificates.crt";
	/* Best effort: a bad location only matters for https, which then
	 * reports its own certificate error. */
	if ((file || dir) && git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, file, dir) < 0)
		git_error_clear();
}

int orchd_git_global_init(char *err, size_t errlen)
{
	pthread_once(&git_once, git_do_global_init);
	if (git_init_rc < 0) {
		snprintf(err, errlen, "%s", git_init_msg);
		return -1;
	}
	return 0;
}

static int is_hex(const char *s, size_t min, size_t max)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isxdigit((unsigned char)s[n]))
			return 0;
	return n >= min && n <= max;
}

static int is_cancelled(const struct orchd_git_opts *o)
{
	return o->cancel && *o->cancel;
}

/* --- the watchdog ------------------------------------------------------------
 *
 * libgit2 1.5 has no network timeout and calls no callback while it waits
 * for a remote that accepted the connection and says nothing: a thread
 * watches the call, and when it is cancelled or nothing moved for stall_ms,
 * sends ORCHD_GIT_SIGNAL to the calling thread every WATCH_TICK_MS until
 * the call returns (one signal may land between two system calls). */

#define WATCH_TICK_MS 200

enum watch_verdict { WATCH_RUNNING, WATCH_CANCELLED, WATCH_STALLED };

struct watch {
	pthread_t target, thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	int done;	     /* under lock */
	long stall_ms;
	const volatile sig_atomic_t *cancel;
	_Atomic long long moved_ms; /* when something last moved */
	_Atomic int verdict;	    /* enum watch_verdict */
	char why[64];		    /* "stalled: nothing received for 60s" */
	sigset_t oldmask;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Something moved: the stall clock starts again. */
static void watch_touch(struct orchd_git_opts *o)
{
	struct watch *w = o->watch;

	if (w)
		w->moved_ms = mono_ms();
}

static void *watch_main(void *arg)
{
	struct watch *w = arg;

	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += WATCH_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cond, &w->lock, &ts);
		if (w->done)
			break;
		if (w->verdict == WATCH_RUNNING) {
			if (w->cancel && *w->cancel)
				w->verdict = WATCH_CANCELLED;
			else if (mono_ms() - w->moved_ms > w->stall_ms)
				w->verdict = WATCH_STALLED;
		}
		/* under the lock: the target is still in the watched call */
		if (w->verdict != WATCH_RUNNING)
			pthread_kill(w->target, ORCHD_GIT_SIGNAL);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Watch the calling thread until watch_end(); o->watch points to w.  A
 * watchdog that cannot start leaves the call unwatched (as before). */
static void watch_begin(struct watch *w, struct orchd_git_opts *o)
{
	pthread_condattr_t ca;
	sigset_t set;

	memset(w, 0, sizeof(*w));
	w->target = pthread_self();
	w->stall_ms = o->stall_ms > 0 ? o->stall_ms : ORCHD_GIT_STALL_MS;
	w->cancel = o->cancel;
	w->moved_ms = mono_ms();
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* the signal must reach this thread (workers often block signals) */
	sigemptyset(&set);
	sigaddset(&set, ORCHD_GIT_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, &w->oldmask);
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		pthread_sigmask(SIG_SETMASK, &w->oldmask, NULL);
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		return;
	}
	o->watch = w;
}

/* Stop watching; a signal still pending for this thread is taken here. */
static void watch_end(struct watch *w, struct orchd_git_opts *o)
{
	sigset_t set;
	struct timespec zero = {0, 0};

	if (o->watch != w)
		return;
	pthread_mutex_lock(&w->lock);
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	sigemptyset(&set);
	sigaddset(&set, ORCHD_GIT_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &w->oldmask, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	o->watch = NULL;
}

/* libgit2 calls this as data arrives; nonzero stops the transfer. */
static int on_transfer(const git_indexer_progress *stats, void *payload)
{
	(void)stats;
	watch_touch(payload);
	return is_cancelled(payload) ? -1 : 0;
}

/* The remote's progress text ("Counting objects..."): it is alive. */
static int on_sideband(const char *str, int len, void *payload)
{
	(void)str;
	(void)len;
	watch_touch(payload);
	return is_cancelled(payload) ? -1 : 0;
}

static void on_checkout(const char *path, size_t done, size_t total, void *payload)
{
	(void)path;
	(void)done;
	(void)total;
	watch_touch(payload);
}

/* libgit2's message, or why the watchdog stopped the call. */
static const char *fetch_msg(const struct orchd_git_opts *o)
{
	struct watch *w = o->watch;

	if (is_cancelled(o) || (w && w->verdict == WATCH_CANCELLED))
		return "cancelled";
	if (w && w->verdict == WATCH_STALLED) {
		snprintf(w->why, sizeof(w->why), "stalled: nothing received for %lds",
			 w->stall_ms / 1000);
		return w->why;
	}
	return git_msg();
}

static void fetch_opts_setup(git_fetch_options *fo, struct orchd_git_opts *o)
{
	git_fetch_options_init(fo, GIT_FETCH_OPTIONS_VERSION);
	fo->prune = GIT_FETCH_PRUNE;
	fo->download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
	fo->proxy_opts.type = GIT_PROXY_AUTO;
	fo->callbacks.transfer_progress = on_transfer;
	fo->callbacks.sideband_progress = on_sideband;
	fo->callbacks.payload = o;
}

/* Fetch origin into the mirror and make its HEAD follow the remote's. */
static int mirror_fetch(git_repository *repo, const char *shown, struct orchd_git_opts *o,
			char *err, size_t errlen)
{
	git_remote *remote = NULL;
	git_fetch_options fo;
	git_buf head = {0};
	int ret = -1;

	fetch_opts_setup(&fo, o);
	if (git_remote_lookup(&remote, repo, "origin") < 0 ||
	    git_remote_fetch(remote, NULL, &fo, "orchd: fetch") < 0) {
		snprintf(err, errlen, "cannot fetch '%s': %s", shown, fetch_msg(o));
		goto out;
	}
	if (git_remote_default_branch(&head, remote) == 0)
		git_repository_set_head(repo, head.ptr);
	git_error_clear();
	ret = 0;
out:
	git_buf_dispose(&head);
	git_remote_free(remote);
	return ret;
}

/* A new mirror of url at path, built aside and renamed into place. */
static int mirror_create(const char *url, const char *shown, const char *path,
			 struct orchd_git_opts *o, char *err, size_t errlen)
{
	char *tmp = xasprintf("%s.tmp-XXXXXX", path);
	git_repository *repo = NULL;
	git_remote *remote = NULL;
	int ret = -1;

	if (!mkdtemp(tmp)) {
		snprintf(err, errlen, "cannot create '%s': %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	if (git_repository_init(&repo, tmp, 1) < 0 ||
	    git_remote_create_with_fetchspec(&remote, repo, "origin", url,
					     "+refs/heads/*:refs/heads/*") < 0 ||
	    git_remote_add_fetch(repo, "origin", "+refs/tags/*:refs/tags/*") < 0) {
		snprintf(err, errlen, "cannot create a mirror of '%s' in '%s': %s", shown, tmp,
			 git_msg());
		goto out;
	}
	if (mirror_fetch(repo, shown, o, err, errlen) < 0)
		goto out;
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	git_remote_free(remote);
	git_repository_free(repo);
	if (ret < 0)
		op_rmtree(tmp);
	free(tmp);
	return ret;
}

/* Remove "<path>.tmp-*" left by a mirror_create() that was killed; the
 * caller holds the lock, so none of them is in use. */
static void remove_leftovers(const char *path)
{
	char *pattern = xasprintf("%s.tmp-*", path);
	glob_t g;
	size_t i;

	if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0) {
		for (i = 0; i < g.gl_pathc; i++)
			op_rmtree(g.gl_pathv[i]);
		globfree(&g);
	}
	free(pattern);
}

/*
 * Lock, then create or update the mirror of url; *repop is the open mirror
 * and *lockfd the held lock (close it to unlock).  When pinned (a full
 * commit id) is already in an existing mirror, nothing is fetched.
 */
static int mirror_open(const char *url, const char *shown, struct orchd_git_opts *o,
		       const char *pinned, char **pathp, int *lockfd, git_repository **repop,
		       char *err, size_t errlen)
{
	char hex[ORCHD_SHA256_HEXSZ], *root, *path = NULL, *lock = NULL;
	git_repository *repo = NULL;
	struct stat st;
	int fd = -1;

	root = o->cache_dir ? xstrdup(o->cache_dir) : orchd_cache_dir("git", err, errlen);
	if (!root)
		return -1;
	if (orchd_mkdir_p(root, 0755, err, errlen) < 0)
		goto fail;
	if (orchd_sha256_hex(url, strlen(url), hex) < 0) {
		snprintf(err, errlen, "cannot hash '%s'", shown);
		goto fail;
	}
	path = xasprintf("%s/%s", root, hex);
	lock = xasprintf("%s.lock", path);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open '%s': %s", lock, strerror(errno));
		goto fail;
	}
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "cannot lock '%s': %s", lock, strerror(errno));
			goto fail;
		}
		if (is_cancelled(o) ||
		    (o->watch && ((struct watch *)o->watch)->verdict == WATCH_CANCELLED)) {
			snprintf(err, errlen, "cannot fetch '%s': cancelled", shown);
			goto fail;
		}
		if (o->watch) {
			/* waiting for another fetch of the same URL (which has a
			 * watchdog of its own) is no stall */
			((struct watch *)o->watch)->verdict = WATCH_RUNNING;
			watch_touch(o);
		}
	}
	remove_leftovers(path);
	if (stat(path, &st) == 0 && git_repository_open_bare(&repo, path) < 0) {
		/* unusable (interrupted by hand, disk trouble): start over */
		git_error_clear();
		op_rmtree(path);
	}
	if (repo) {
		git_oid oid;
		git_commit *c = NULL;

		if (!(pinned && git_oid_fromstr(&oid, pinned) == 0 &&
		      git_commit_lookup(&c, repo, &oid) == 0) &&
		    mirror_fetch(repo, shown, o, err, errlen) < 0)
			goto fail;
		git_commit_free(c);
		git_error_clear();
	} else {
		if (mirror_create(url, shown, path, o, err, errlen) < 0)
			goto fail;
		if (git_repository_open_bare(&repo, path) < 0) {
			snprintf(err, errlen, "cannot open '%s': %s", path, git_msg());
			goto fail;
		}
	}
	free(root);
	free(lock);
	*pathp = path;
	*lockfd = fd;
	*repop = repo;
	return 0;
fail:
	git_repository_free(repo);
	if (fd >= 0)
		close(fd);
	free(lock);
	free(path);
	free(root);
	return -1;
}

int orchd_git_mirror(const char *url, const struct orchd_git_opts *opts, char **mirror_path,
		     char *err, size_t errlen)
{
	struct orchd_git_opts o = ORCHD_GIT_OPTS_INIT;
	git_repository *repo;
	struct watch w;
	char *shown, *path;
	int fd, ret;

	if (opts)
		o = *opts;
	if (orchd_git_global_init(err, errlen) < 0)
		return -1;
	shown = orchd_http_redact(url);
	watch_begin(&w, &o);
	ret = mirror_open(url, shown, &o, NULL, &path, &fd, &repo, err, errlen);
	watch_end(&w, &o);
	free(shown);
	if (ret < 0)
		return -1;
	git_repository_free(repo);
	close(fd);
	if (mirror_path)
		*mirror_path = path;
	else
		free(path);
	return 0;
}

/* Peel the reference called name to a commit id.  0, or a libgit2 error. */
static int resolve_refname(git_repository *repo, const char *name, git_oid *oid)
{
	git_reference *r = NULL;
	git_object *obj = NULL;
	int rc = git_reference_lookup(&r, repo, name);

	if (rc == 0)
		rc = git_reference_peel(&obj, r, GIT_OBJECT_COMMIT);
	if (rc == 0)
		git_oid_cpy(oid, git_object_id(obj));
	git_object_free(obj);
	git_reference_free(r);
	return rc;
}

/*
 * ref -> commit id in repo.  Tried in order: HEAD (for NULL/"HEAD"), a
 * branch, a branch of origin (in a plain clone), a tag, a full ref name,
 * a commit id or a unique prefix of one.
 */
static int resolve(git_repository *repo, const char *ref, const char *shown, git_oid *oid,
		   char *err, size_t errlen)
{
	static const char *const forms[] = {"refs/heads/", "refs/remotes/origin/", "refs/tags/"};
	const char *name = ref ? ref : "HEAD";
	size_t i;
	int rc;

	if (!strcmp(name, "HEAD")) {
		rc = resolve_refname(repo, "HEAD", oid);
		if (rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH)
			rc = resolve_refname(repo, "refs/remotes/origin/HEAD", oid);
		if (rc == 0)
			return 0;
		goto not_found;
	}
	for (i = 0; i < ARRAY_SIZE(forms); i++) {
		char *full = xasprintf("%s%s", forms[i], name);

		rc = resolve_refname(repo, full, oid);
		free(full);
		if (rc == 0)
			return 0;
	}
	if (!strncmp(name, "refs/", 5) && resolve_refname(repo, name, oid) == 0)
		return 0;
	if (is_hex(name, 4, GIT_OID_HEXSZ)) {
		git_oid prefix;
		git_object *obj = NULL, *commit = NULL;
		size_t len = strlen(name);

		rc = git_oid_fromstrn(&prefix, name, len);
		if (rc == 0)
			rc = git_object_lookup_prefix(&obj, repo, &prefix, len, GIT_OBJECT_ANY);
		if (rc == 0)
			rc = git_object_peel(&commit, obj, GIT_OBJECT_COMMIT);
		if (rc == 0)
			git_oid_cpy(oid, git_object_id(commit));
		git_object_free(commit);
		git_object_free(obj);
		if (rc == 0)
			return 0;
		if (rc == GIT_EAMBIGUOUS) {
			snprintf(err, errlen, "cannot resolve ref '%s' of '%s': %s", name, shown,
				 git_msg());
			return -1;
		}
		if (rc != GIT_ENOTFOUND) {
			snprintf(err, errlen, "cannot resolve ref '%s' of '%s': %s", name, shown,
				 git_msg());
			return -1;
		}
	}
not_found:
	git_error_clear();
	snprintf(err, errlen,
		 "cannot resolve ref '%s' of '%s': no branch, tag or commit of that name", name,
		 shown);
	return -1;
}

enum dest_kind {
	DEST_ABSENT,
	DEST_EMPTY,
	DEST_CLONE, /* an earlier checkout of the same URL */
};

/* An existing clone of url at dest (dest itself holds .git)?  1/0. */
static int is_clone_of(const char *dest, const char *url, git_repository **repop)
{
	git_repository *repo = NULL;
	git_remote *remote = NULL;
	const char *wd, *u;
	char *real_dest = realpath(dest, NULL), *real_wd = NULL;
	int yes = 0;

	if (real_dest &&
	    git_repository_open_ext(&repo, dest, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) == 0 &&
	    (wd = git_repository_workdir(repo)) && (real_wd = realpath(wd, NULL)) &&
	    !strcmp(real_wd, real_dest) && git_remote_lookup(&remote, repo, "origin") == 0 &&
	    (u = git_remote_url(remote)) && !strcmp(u, url))
		yes = 1;
	git_error_clear();
	git_remote_free(remote);
	free(real_wd);
	free(real_dest);
	if (yes)
		*repop = repo;
	else
		git_repository_free(repo);
	return yes;
}

static int dest_state(const char *dest, const char *url, const char *shown, enum dest_kind *kind,
		      git_repository **repop, char *err, size_t errlen)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int empty = 1;

	if (lstat(dest, &st) < 0) {
		if (errno == ENOENT) {
			*kind = DEST_ABSENT;
			return 0;
		}
		snprintf(err, errlen, "cannot use '%s': %s", dest, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode) && (d = opendir(dest))) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				empty = 0;
		closedir(d);
		if (empty) {
			*kind = DEST_EMPTY;
			return 0;
		}
		if (is_clone_of(dest, url, repop)) {
			*kind = DEST_CLONE;
			return 0;
		}
	}
	snprintf(err, errlen,
		 "cannot check out into '%s': not an empty directory nor a clone of '%s'", dest,
		 shown);
	return -1;
}

/* Bring the objects of the mirror at path into repo (an existing clone). */
static int fetch_from_mirror(git_repository *repo, const char *path, const char *shown,
			     struct orchd_git_opts *o, char *err, size_t errlen)
{
	/* git_strarray wants mutable strings */
	char heads[] = "+refs/heads/*:refs/remotes/origin/*", tags[] = "+refs/tags/*:refs/tags/*";
	char *specs[] = {heads, tags};
	git_strarray refspecs = {specs, ARRAY_SIZE(specs)};
	git_fetch_options fo;
	git_remote *remote = NULL;
	int ret = 0;

	fetch_opts_setup(&fo, o);
	fo.prune = GIT_FETCH_PRUNE_UNSPECIFIED;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.proxy_opts.type = GIT_PROXY_NONE;
	if (git_remote_create_anonymous(&remote, repo, path) < 0 ||
	    git_remote_fetch(remote, &refspecs, &fo, "orchd: fetch from cache") < 0) {
		snprintf(err, errlen, "cannot fetch '%s' from its cache '%s': %s", shown, path,
			 fetch_msg(o));
		ret = -1;
	}
	git_remote_free(remote);
	return ret;
}

int orchd_git_checkout(const char *url, const char *ref, const char *dest,
		       const struct orchd_git_opts *opts, char commit[ORCHD_GIT_OIDSZ], char *err,
		       size_t errlen)
{
	git_clone_options co;
	git_checkout_options cko;
	git_repository *mirror = NULL, *repo = NULL;
	git_commit *target = NULL;
	git_oid oid;
	char *shown, *mirror_path = NULL;
	const char *name = ref ? ref : "HEAD";
	struct orchd_git_opts o = ORCHD_GIT_OPTS_INIT;
	struct watch w;
	enum dest_kind kind;
	int lockfd = -1, ret = -1;

	if (opts)
		o = *opts; /* a mutable copy: libgit2 callbacks get a void * to it */
	if (orchd_git_global_init(err, errlen) < 0)
		return -1;
	shown = orchd_http_redact(url);
	if (dest_state(dest, url, shown, &kind, &repo, err, errlen) < 0) {
		free(shown);
		return -1;
	}
	watch_begin(&w, &o);

	git_clone_options_init(&co, GIT_CLONE_OPTIONS_VERSION);
	co.checkout_opts.checkout_strategy = GIT_CHECKOUT_NONE;
	fetch_opts_setup(&co.fetch_opts, &o);
	co.fetch_opts.prune = GIT_FETCH_PRUNE_UNSPECIFIED;

	if (o.no_cache) {
		if (kind == DEST_CLONE) {
			git_fetch_options fo;
			git_remote *remote = NULL;
			int rc;

			fetch_opts_setup(&fo, &o);
			rc = git_remote_lookup(&remote, repo, "origin");
			if (rc == 0)
				rc = git_remote_fetch(remote, NULL, &fo, "orchd: fetch");
			git_remote_free(remote);
			if (rc < 0) {
				snprintf(err, errlen, "cannot fetch '%s': %s", shown,
					 fetch_msg(&o));
				goto out;
			}
		} else if (git_clone(&repo, url, dest, &co) < 0) {
			snprintf(err, errlen, "cannot clone '%s' into '%s': %s", shown, dest,
				 fetch_msg(&o));
			goto out;
		}
		if (resolve(repo, ref, shown, &oid, err, errlen) < 0)
			goto out;
	} else {
		const char *pinned = ref && is_hex(ref, GIT_OID_HEXSZ, GIT_OID_HEXSZ) ? ref : NULL;

		if (mirror_open(url, shown, &o, pinned, &mirror_path, &lockfd, &mirror, err,
				errlen) < 0)
			goto out;
		if (resolve(mirror, ref, shown, &oid, err, errlen) < 0)
			goto out;
		if (kind == DEST_CLONE) {
			if (fetch_from_mirror(repo, mirror_path, shown, &o, err, errlen) < 0)
				goto out;
		} else {
			co.local = GIT_CLONE_LOCAL;
			if (git_clone(&repo, mirror_path, dest, &co) < 0 ||
			    git_remote_set_url(repo, "origin", url) < 0) {
				snprintf(err, errlen, "cannot clone '%s' into '%s': %s", shown,
					 dest, git_msg());
				goto out;
			}
		}
	}

	/*
	 * The worktree becomes exactly the commit: local changes are
	 * overwritten and untracked files removed (ignored ones are kept, as
	 * with `git clean -f`).
	 */
	git_checkout_options_init(&cko, GIT_CHECKOUT_OPTIONS_VERSION);
	cko.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED;
	cko.progress_cb = on_checkout;
	cko.progress_payload = &o;
	if (git_commit_lookup(&target, repo, &oid) < 0 ||
	    git_checkout_tree(repo, (const git_object *)target, &cko) < 0 ||
	    git_repository_set_head_detached(repo, &oid) < 0) {
		snprintf(err, errlen, "cannot check out '%s' of '%s' into '%s': %s", name, shown,
			 dest, fetch_msg(&o));
		goto out;
	}
	if (commit)
		git_oid_tostr(commit, ORCHD_GIT_OIDSZ, &oid);
	ret = 0;
out:
	watch_end(&w, &o);
	git_commit_free(target);
	git_repository_free(repo);
	git_repository_free(mirror);
	if (lockfd >= 0)
		close(lockfd);
	if (ret < 0 && kind != DEST_CLONE) {
		op_rmtree(dest);
		if (kind == DEST_EMPTY)
			mkdir(dest, 0755);
	}
	free(mirror_path);
	free(shown);
	return ret;
}

int orchd_git_read_pinned(const char *url, const char *ref, const char *path,
			  const struct orchd_git_opts *opts, char commit[ORCHD_GIT_OIDSZ],
			  struct op_buf *out, char *err, size_t errlen)
{
	struct orchd_git_opts o = ORCHD_GIT_OPTS_INIT;
	git_repository *repo = NULL;
	git_commit *c = NULL;
	git_tree *tree = NULL;
	git_tree_entry *entry = NULL;
	git_blob *blob = NULL;
	git_oid oid;
	struct watch w;
	char *shown, *mirror_path = NULL, *full;
	const char *tag = !strncmp(ref, "refs/tags/", 10) ? ref + 10 : ref;
	int pinned = is_hex(ref, GIT_OID_HEXSZ, GIT_OID_HEXSZ), lockfd = -1, ret = -1, rc;

	if (opts)
		o = *opts;
	if (orchd_git_global_init(err, errlen) < 0)
		return -1;
	shown = orchd_http_redact(url);
	watch_begin(&w, &o);
	if (mirror_open(url, shown, &o, pinned ? ref : NULL, &mirror_path, &lockfd, &repo, err,
			errlen) < 0)
		goto out;
	if (pinned) {
		rc = git_oid_fromstr(&oid, ref);
	} else {
		full = xasprintf("refs/tags/%s", tag);
		rc = resolve_refname(repo, full, &oid);
		free(full);
		if (rc < 0) {
			git_oid branch;

			full = xasprintf("refs/heads/%s", ref);
			rc = resolve_refname(repo, full, &branch);
			free(full);
			git_error_clear();
			if (rc == 0)
				snprintf(err, errlen,
					 "'%s' of '%s' is a branch: pin it to a commit id (40 hex "
					 "digits) or a tag",
					 ref, shown);
			else
				snprintf(err, errlen,
					 "'%s' of '%s' is no tag: pin it to a commit id (40 hex "
					 "digits) or a tag",
					 ref, shown);
			goto out;
		}
	}
	if (rc < 0 || git_commit_lookup(&c, repo, &oid) < 0) {
		snprintf(err, errlen, "cannot find commit '%s' of '%s': %s", ref, shown, git_msg());
		goto out;
	}
	if (!path) {
		git_oid_tostr(commit, ORCHD_GIT_OIDSZ, &oid);
		ret = 0;
		goto out;
	}
	if (git_commit_tree(&tree, c) < 0) {
		snprintf(err, errlen, "cannot read commit '%s' of '%s': %s", ref, shown, git_msg());
		goto out;
	}
	if (git_tree_entry_bypath(&entry, tree, path) < 0 ||
	    git_tree_entry_type(entry) != GIT_OBJECT_BLOB) {
		git_error_clear();
		snprintf(err, errlen, "no file '%s' in '%s' at '%s'", path, shown, ref);
		goto out;
	}
	if (git_blob_lookup(&blob, repo, git_tree_entry_id(entry)) < 0) {
		snprintf(err, errlen, "cannot read '%s' of '%s' at '%s': %s", path, shown, ref,
			 git_msg());
		goto out;
	}
	if (op_buf_add(out, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob)) < 0) {
		snprintf(err, errlen, "'%s' of '%s' at '%s' is too large", path, shown, ref);
		errno = E2BIG;
		goto out;
	}
	git_oid_tostr(commit, ORCHD_GIT_OIDSZ, &oid);
	ret = 0;
out:
	watch_end(&w, &o);
	git_blob_free(blob);
	git_tree_entry_free(entry);
	git_tree_free(tree);
	git_commit_free(c);
	git_repository_free(repo);
	if (lockfd >= 0)
		close(lockfd);
	free(mirror_path);
	free(shown);
	return ret;
}

int orchd_git_tags(const char *url, const struct orchd_git_opts *opts, struct op_buf *out,
		   char *err, size_t errlen)
{
	struct orchd_git_opts o = ORCHD_GIT_OPTS_INIT;
	git_repository *repo = NULL;
	git_strarray tags = {NULL, 0};
	struct watch w;
	char *shown, *mirror_path = NULL;
	int lockfd = -1, ret = -1;

	if (opts)
		o = *opts;
	if (orchd_git_global_init(err, errlen) < 0)
		return -1;
	shown = orchd_http_redact(url);
	watch_begin(&w, &o);
	if (mirror_open(url, shown, &o, NULL, &mirror_path, &lockfd, &repo, err, errlen) < 0)
		goto out;
	if (git_tag_list(&tags, repo) < 0) {
		snprintf(err, errlen, "cannot list the tags of '%s': %s", shown, git_msg());
		goto out;
	}
	for (size_t i = 0; i < tags.count; i++)
		if (op_buf_addf(out, "%s\n", tags.strings[i]) < 0) {
			snprintf(err, errlen, "the tags of '%s' are too many", shown);
			errno = E2BIG;
			goto out;
		}
	ret = 0;
out:
	watch_end(&w, &o);
	git_strarray_dispose(&tags);
	git_repository_free(repo);
	if (lockfd >= 0)
		close(lockfd);
	free(mirror_path);
	free(shown);
	return ret;
}

#if defined(__SANITIZE_ADDRESS__)
/*
 * LeakSanitizer hook: libgit2 1.5 with the system pcre2 (10.42) leaks the
 * match data of every config regex lookup (git_remote_lookup and friends),
 * inside the libraries (stripped, so the fast unwinder stops at
 * libpcre2-8.so).  Suppress leaks allocated there, so that
 * `make check SANITIZE=address,undefined` reports orchd's own leaks only.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n";
}

const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "print_suppressions=0";
}
#endif
