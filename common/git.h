/*
 * git: clone, fetch and check out with libgit2, through a local cache.
 *
 * Only orchd links this; extensions ask the core (the shared utilities of
 * README's "Concepts").  Every function returns 0 on success and -1 on
 * failure with a lowercase message (no final full stop) in the caller's
 * buffer err[errlen]; the message names the URL (any password masked) and
 * the ref, and carries libgit2's own message (git_error_last()).
 *
 * The cache: one bare mirror per URL at <cache>/<sha256(url)>, where
 * <cache> is opts->cache_dir or ${XDG_CACHE_HOME:-~/.cache}/orchd/git.  It
 * mirrors the remote's branches (all of refs/heads, pruned) and tags, and its
 * HEAD follows the remote's default branch.  A checkout fetches into the
 * mirror (or creates it) and then clones the mirror locally into the
 * destination; when ref is a full 40-digit commit id already in the mirror,
 * there is no network I/O at all.  Concurrent users of one mirror are
 * serialised with flock() on <cache>/<sha256(url)>.lock.
 *
 * Transports and credentials: whatever libgit2 does by itself -- local
 * paths, file://, and http(s):// (libgit2 1.5 as packaged by Debian uses
 * mbedTLS; orchd points it at the CA bundle named by GIT_SSL_CAINFO,
 * SSL_CERT_FILE or CURL_CA_BUNDLE, and the directory SSL_CERT_DIR, else at
 * /etc/ssl/certs/ca-certificates.crt when present).  Proxies: libgit2's
 * automatic detection (http.proxy in git config, then http_proxy /
 * https_proxy).  No credential callback: private repositories over https
 * need the credentials in the URL; ssh is not offered.
 */
#ifndef ORCHD_GIT_H
#define ORCHD_GIT_H

#include <signal.h>
#include <stddef.h>

#define ORCHD_GIT_OIDSZ 41 /* 40 hex digits and a NUL */

struct orchd_git_opts {
	const char *cache_dir; /* NULL: ${XDG_CACHE_HOME:-~/.cache}/orchd/git */
	int no_cache;	       /* clone straight from the URL into dest */
	/*
	 * Cancellation: when cancel is set and *cancel becomes nonzero (say,
	 * from a SIGTERM handler), the call stops within about 200 ms, even
	 * when the remote sends nothing, and fails with "cannot fetch 'URL':
	 * cancelled".
	 */
	const volatile sig_atomic_t *cancel;
	/*
	 * A call during which nothing moves (no byte from the remote, no
	 * object indexed or checked out, no cache lock obtained) for stall_ms
	 * milliseconds (0: ORCHD_GIT_STALL_MS) fails with "... stalled:
	 * nothing received for 60s".  libgit2 1.5 has no timeouts of its own:
	 * a watchdog thread interrupts the blocked call with ORCHD_GIT_SIGNAL,
	 * which orchd_git_global_init() gives a handler without SA_RESTART
	 * (when the signal had none).
	 */
	long stall_ms;
	void *watch; /* private */
};

#define ORCHD_GIT_STALL_MS 60000L
#define ORCHD_GIT_SIGNAL   SIGURG

#define ORCHD_GIT_OPTS_INIT            \
	{                              \
		NULL, 0, NULL, 0, NULL \
	}

/* git_libgit2_init() once (and the certificate locations); later calls
 * return the first result. */
int orchd_git_global_init(char *err, size_t errlen);

/*
 * Make dest a clone of url with ref checked out on a detached HEAD, and put
 * the commit id (40 hex digits) in commit (may be NULL).
 *
 * ref is a branch name, a tag name (annotated or not), a full ref name
 * ("refs/heads/x"), a full or abbreviated (at least 4 digits) commit id, or
 * NULL / "HEAD" for the remote's default branch.  Names win over ids, as in
 * git.  dest must not exist, or be an empty directory, or be a clone of the
 * same url made by an earlier call (its "origin" is url): such a clone is
 * fetched into and moved to the new commit, and its worktree becomes exactly
 * that commit (local changes overwritten, untracked files removed, ignored
 * files kept).  The parent of dest must exist.  On failure a dest created by
 * this call is removed, an empty one is left empty, an earlier clone is left
 * as it was or partly updated (never removed).  The clone's "origin" remote
 * points to url, whether or not the cache was used.
 *
 * A ref that does not exist fails with
 *   "cannot resolve ref 'REF' of 'URL': no branch, tag or commit of that name"
 */
int orchd_git_checkout(const char *url, const char *ref, const char *dest,
		       const struct orchd_git_opts *opts, char commit[ORCHD_GIT_OIDSZ], char *err,
		       size_t errlen);

/*
 * Create or update the mirror of url in the cache; its path (malloc'ed)
 * goes to *mirror_path when that is not NULL.
 */
int orchd_git_mirror(const char *url, const struct orchd_git_opts *opts, char **mirror_path,
		     char *err, size_t errlen);

/*
 * Read the file `path` (relative to the repository's root) of url at ref
 * into out (whose limit bounds it; E2BIG beyond) and put the commit id in
 * commit.  ref must be pinned: a full 40-digit commit id, or a tag (name
 * or refs/tags/NAME); a branch is refused with
 *   "'REF' of 'URL' is a branch: pin it to a commit id (40 hex digits) or a tag"
 * The file is read from the mirror of the cache, fetched first unless the
 * commit is already there; nothing is checked out.  path NULL: only the
 * pinned ref is resolved to commit (out is not used).
 */
struct op_buf;
int orchd_git_read_pinned(const char *url, const char *ref, const char *path,
			  const struct orchd_git_opts *opts, char commit[ORCHD_GIT_OIDSZ],
			  struct op_buf *out, char *err, size_t errlen);

/* The tag names of url (its mirror in the cache, fetched first), one per
 * line, appended to out. */
int orchd_git_tags(const char *url, const struct orchd_git_opts *opts, struct op_buf *out,
		   char *err, size_t errlen);

#endif
