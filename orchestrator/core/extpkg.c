/* core/extpkg: extension packages and orchd.lock (see extpkg.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "core/bootstrap.h"
#include "core/extpkg.h"
#include "core/loader.h"
#include "core/report.h"
#include "fetch.h"
#include "git.h"
#include "hash.h"
#include "models/pipeline.h"
#include "orchd_protocol.h"
#include "util.h"

#define PKGS	     ".orchd-pkgs"
#define RECEIPT	     ".orchd-package.json"
#define LOCK_NAME    "orchd.lock"
#define MANIFEST_END ".manifest.json"
#define MANIFEST_MAX (64 * 1024)
#define TREE_DEPTH   64

/* ---- small helpers --------------------------------------------------------- */

/* error() (util.h), then the exit code: `return fail(ORCHD_EXIT_USAGE, ...)`. */
#define fail(code, ...) (error(__VA_ARGS__), (code))

static FILE *out_of(const struct orchd_extpkg_opts *o)
{
	return o->out ? o->out : stdout;
}

char *orchd_extpkg_user_dir(void)
{
	const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");

	if (x && *x == '/')
		return xasprintf("%s/orchd/extensions", x);
	if (home && *home)
		return xasprintf("%s/.local/share/orchd/extensions", home);
	return NULL;
}

static char *root_dir(const struct orchd_extpkg_opts *o)
{
	if (o->dir)
		return xstrdup(o->dir);
	if (o->system)
		return xstrdup(ORCHD_PREFIX "/libexec/orchd/extensions");
	return orchd_extpkg_user_dir();
}

/* PROTOCOL.md §2.1: [a-z][a-z0-9_-]*, at most 63 bytes. */
static int type_ok(const char *t)
{
	size_t i;

	if (!(*t >= 'a' && *t <= 'z') || strlen(t) > 63)
		return 0;
	for (i = 1; t[i]; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '_' ||
		      t[i] == '-'))
			return 0;
	return 1;
}

/* Dotted numeric: 1, 1.2, 1.2.3 ... (each part at most 9 digits). */
static int version_ok(const char *v)
{
	size_t digits = 0;

	for (; *v; v++) {
		if (*v >= '0' && *v <= '9') {
			if (++digits > 9)
				return 0;
		} else if (*v == '.' && digits) {
			digits = 0;
		} else {
			return 0;
		}
	}
	return digits > 0;
}

/* Relative, without "." or ".." segments or empty ones. */
static int subpath_ok(const char *p)
{
	const char *s = p;

	if (!*p || *p == '/')
		return 0;
	while (*s) {
		size_t n = strcspn(s, "/");

		if (!n || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
		if (*s == '/')
			s++;
	}
	return 1;
}

/* Is prog (or one of "a|b") an executable on PATH? */
static int on_path(const char *alts)
{
	const char *path = getenv("PATH");
	char *copy = xstrdup(alts), *save = NULL, *a;
	int found = 0;

	for (a = strtok_r(copy, "|", &save); a && !found; a = strtok_r(NULL, "|", &save)) {
		const char *d = path ? path : "/usr/bin:/bin";

		if (strchr(a, '/')) {
			found = !access(a, X_OK);
			continue;
		}
		while (!found) {
			size_t n = strcspn(d, ":");
			char *f = xasprintf("%.*s/%s", (int)n, n ? d : ".", a);

			found = !access(f, X_OK);
			free(f);
			if (!d[n])
				break;
			d += n + 1;
		}
	}
	free(copy);
	return found;
}

/* Run argv (argv[0] on PATH) in cwd; 0 when it exited 0, else -1 with what
 * it said (its last 2000 bytes) and how it ended in *why (malloc'ed). */
static int run_io(const char *const *cargv, const char *cwd, const char *input, char **output,
		  char **why);

static int run(const char *const *cargv, const char *cwd, char **why)
{
	return run_io(cargv, cwd, NULL, NULL, why);
}

/* run(), with input (may be NULL) on its stdin and its stdout in *output
 * (may be NULL; malloc'ed, even when it failed). */
static int run_io(const char *const *cargv, const char *cwd, const char *input, char **output,
		  char **why)
{
	struct op_cmd_opts o;
	struct op_cmd_result r;
	char st[128];
	int ok;

	size_t n = 0;
	char **argv;

	while (cargv[n])
		n++;
	argv = xcalloc(n + 1, sizeof(*argv));
	for (size_t i = 0; i < n; i++)
		argv[i] = xstrdup(cargv[i]);
	memset(&o, 0, sizeof(o));
	o.argv = argv;
	o.cwd = cwd;
	o.input = input;
	o.input_len = input ? strlen(input) : 0;
	o.out.mode = OP_CMD_CAPTURE;
	o.err.mode = OP_CMD_CAPTURE;
	o.out.capture_max = o.err.capture_max = 1 << 20;
	if (op_cmd_run(NULL, &o, &r) < 0) {
		if (output)
			*output = xstrdup("");
		*why = xstrdup(r.error);
		op_cmd_result_release(&r);
		ok = 0;
		goto out;
	}
	ok = op_cmd_exited(&r, 0);
	if (output)
		*output = xstrndup(r.out.buf, r.out.len);
	if (!ok) {
		struct op_buf b = OP_BUF_INIT;
		size_t skip;

		op_buf_add(&b, r.out.buf, r.out.len);
		op_buf_add(&b, r.err.buf, r.err.len);
		skip = b.len > 2000 ? b.len - 2000 : 0;
		*why = xasprintf("%s%s%.*s", op_cmd_status_text(&r, st, sizeof(st)),
				 b.len ? ":\n" : "", (int)(b.len - skip), orchd_buf_str(&b) + skip);
		op_buf_release(&b);
	}
	op_cmd_result_release(&r);
out:
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	return ok ? 0 : -1;
}

static char *dir_of(const char *file)
{
	const char *slash = strrchr(file, '/');

	if (!slash)
		return xstrdup(".");
	if (slash == file)
		return xstrdup("/");
	return xstrndup(file, (size_t)(slash - file));
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static void add_str(json_object *o, const char *key, const char *v)
{
	if (v)
		json_object_object_add(o, key, json_object_new_string(v));
}

static int streq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Write o to path atomically, mode 0644 (a lock, a receipt, a manifest:
 * nothing secret). */
static int write_json(const char *path, json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_SPACED |
								  JSON_C_TO_STRING_NOSLASHESCAPE);
	char *text = xasprintf("%s\n", s);
	int rc = orchd_write_file_atomic(path, text, strlen(text));

	if (!rc)
		rc = chmod(path, 0644);
	free(text);
	return rc;
}

/* ---- the tree: its digest, and no way out of it ------------------------------ */

struct walk {
	struct orchd_sha256 *h;
	char err[PATH_MAX + 200];
};

static int cmp_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void hash_str(struct walk *w, const char *s)
{
	orchd_sha256_update(w->h, s, strlen(s));
}

/* Does a link at rel (a path in the tree) to target stay in the tree? */
static int link_stays(const char *rel, const char *target)
{
	long depth = 0;
	const char *s;

	if (*target == '/' || !*target)
		return 0;
	for (s = rel; *s; s++)
		depth += *s == '/';
	for (s = target; *s;) {
		size_t n = strcspn(s, "/");

		if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (--depth < 0)
				return 0;
		} else if (n && !(n == 1 && s[0] == '.')) {
			depth++;
		}
		s += n;
		if (*s == '/')
			s++;
	}
	return 1;
}

static int hash_file(struct walk *w, const char *path, const char *rel)
{
	char buf[65536];
	ssize_t r;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		snprintf(w->err, sizeof(w->err), "cannot read %s: %s", rel, strerror(errno));
		return -1;
	}
	while ((r = read(fd, buf, sizeof(buf))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			snprintf(w->err, sizeof(w->err), "cannot read %s: %s", rel,
				 strerror(errno));
			close(fd);
			return -1;
		}
		orchd_sha256_update(w->h, buf, (size_t)r);
	}
	close(fd);
	return 0;
}

/*
 * Hash the tree under root/rel, depth first, names in byte order, .git
 * left out: "d REL\n" per directory, "f MODE REL SIZE\n" and the content
 * per file (MODE 755 when any execute bit is set, else 644), "l REL
 * TARGET\n" per symbolic link.  Anything else, a link that leads out of
 * the tree, or a name with a control character is refused.
 */
static int walk_tree(struct walk *w, const char *root, const char *rel, int depth)
{
	char *dir = *rel ? xasprintf("%s/%s", root, rel) : xstrdup(root);
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, cmp_name), i, ret = 0;

	if (n < 0) {
		snprintf(w->err, sizeof(w->err), "cannot read the directory %s: %s",
			 *rel ? rel : ".", strerror(errno));
		free(dir);
		return -1;
	}
	if (depth > TREE_DEPTH) {
		snprintf(w->err, sizeof(w->err), "%s: nested deeper than %d directories", rel,
			 TREE_DEPTH);
		ret = -1;
	}
	for (i = 0; i < n && !ret; i++) {
		const char *name = ents[i]->d_name;
		char *r, *full, line[PATH_MAX * 2 + 64], target[PATH_MAX];
		struct stat st;
		ssize_t tl;

		if (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, ".git"))
			continue;
		for (const char *c = name; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f) {
				snprintf(w->err, sizeof(w->err),
					 "%s%s: a name with a control character", rel,
					 *rel ? "/..." : "...");
				ret = -1;
				break;
			}
		if (ret)
			break;
		r = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
		full = xasprintf("%s/%s", root, r);
		if (lstat(full, &st) < 0) {
			snprintf(w->err, sizeof(w->err), "%s: %s", r, strerror(errno));
			ret = -1;
		} else if (S_ISDIR(st.st_mode)) {
			snprintf(line, sizeof(line), "d %s\n", r);
			hash_str(w, line);
			ret = walk_tree(w, root, r, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			snprintf(line, sizeof(line), "f %s %s %lld\n",
				 st.st_mode & 0111 ? "755" : "644", r, (long long)st.st_size);
			hash_str(w, line);
			ret = hash_file(w, full, r);
		} else if (S_ISLNK(st.st_mode)) {
			tl = readlink(full, target, sizeof(target) - 1);
			if (tl < 0) {
				snprintf(w->err, sizeof(w->err), "%s: %s", r, strerror(errno));
				ret = -1;
			} else {
				target[tl] = '\0';
				if (!link_stays(r, target)) {
					snprintf(w->err, sizeof(w->err),
						 "%s: a symbolic link out of the package (to %s)",
						 r, target);
					ret = -1;
				} else {
					snprintf(line, sizeof(line), "l %s %s\n", r, target);
					hash_str(w, line);
				}
			}
		} else {
			snprintf(w->err, sizeof(w->err),
				 "%s: not a regular file, directory or symbolic link", r);
			ret = -1;
		}
		free(r);
		free(full);
	}
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	free(dir);
	return ret;
}

/* "sha256:HEX" of the package tree at dir, or NULL with the reason in err. */
static char *tree_digest(const char *dir, char *err, size_t errlen)
{
	struct walk w;
	char hex[ORCHD_SHA256_HEXSZ];

	memset(&w, 0, sizeof(w));
	w.h = orchd_sha256_new();
	if (!w.h)
		die("out of memory");
	if (walk_tree(&w, dir, "", 0) < 0 || orchd_sha256_final(w.h, hex) < 0) {
		snprintf(err, errlen, "%.900s", w.err[0] ? w.err : "cannot hash the package");
		orchd_sha256_free(w.h);
		return NULL;
	}
	orchd_sha256_free(w.h);
	return xasprintf("sha256:%s", hex);
}

/* ---- sources ------------------------------------------------------------------ */

enum src_kind { S_DIR, S_GIT, S_URL, S_PIP };

struct src {
	enum src_kind kind;
	char *spec; /* as recorded: the directory as written, git+URL, URL, pip:REQ */
	char *loc;  /* the directory (absolute), git URL, http URL, requirement */
	char *ref, *path, *sha256;
};

static void src_release(struct src *s)
{
	free(s->spec);
	free(s->loc);
	free(s->ref);
	free(s->path);
	free(s->sha256);
	memset(s, 0, sizeof(*s));
}

#define SOURCE_FORMS \
	"a directory, git+URL@REF, an http(s) tarball URL with --sha256, or pip:REQUIREMENT"

/* Does url carry a password (scheme://user:password@host/...)? */
static int has_password(const char *url)
{
	const char *p = strstr(url, "://"), *end, *at, *colon;

	if (!p)
		return 0;
	p += 3;
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
	return colon != NULL;
}

/* The source as the lock records it: git+URL without its @REF, a URL
 * without its #sha256=, anything else as written. */
static char *spec_of(const char *text)
{
	if (!strncmp(text, "git+", 4)) {
		const char *at = strrchr(text, '@'), *slash = strrchr(text, '/');

		if (at && (!slash || at > slash))
			return xstrndup(text, (size_t)(at - text));
	} else if (!strncmp(text, "https://", 8) || !strncmp(text, "http://", 7)) {
		const char *hash = strstr(text, "#sha256=");

		if (hash)
			return xstrndup(text, (size_t)(hash - text));
	}
	return xstrdup(text);
}

/*
 * Parse text into s.  base: the directory a relative directory is relative
 * to (NULL: the current one).  ref, path, sha256 (may be NULL) come from
 * options or core.extensions and win over what text holds.
 */
static int src_parse(const char *text, const char *base, const char *ref, const char *path,
		     const char *sha256, struct src *s)
{
	memset(s, 0, sizeof(*s));
	if (!*text)
		return fail(ORCHD_EXIT_USAGE, "empty source (" SOURCE_FORMS ")");
	if (!strncmp(text, "pip:", 4)) {
		s->kind = S_PIP;
		if (!text[4])
			return fail(ORCHD_EXIT_USAGE, "'pip:' needs a requirement (pip:NAME==1.0)");
		s->spec = xstrdup(text);
		s->loc = xstrdup(text + 4);
	} else if (!strncmp(text, "git+", 4)) {
		const char *u = text + 4, *at = strrchr(u, '@'), *slash = strrchr(u, '/');

		s->kind = S_GIT;
		if (at && (!slash || at > slash)) {
			s->loc = xstrndup(u, (size_t)(at - u));
			s->ref = xstrdup(at + 1);
		} else {
			s->loc = xstrdup(u);
		}
		if (!*s->loc)
			return fail(ORCHD_EXIT_USAGE, "'%s': no URL after git+", text);
		s->spec = xasprintf("git+%s", s->loc);
	} else if (!strncmp(text, "https://", 8) || !strncmp(text, "http://", 7)) {
		const char *hash = strstr(text, "#sha256=");

		s->kind = S_URL;
		s->loc = hash ? xstrndup(text, (size_t)(hash - text)) : xstrdup(text);
		if (hash)
			s->sha256 = xstrdup(hash + 8);
		s->spec = xstrdup(s->loc);
	} else {
		struct stat st;
		char *p = *text == '/' || !base ? xstrdup(text) : xasprintf("%s/%s", base, text);

		s->kind = S_DIR;
		s->spec = xstrdup(text);
		if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
			int code = fail(ORCHD_EXIT_USAGE,
					"'%s' is no directory (a source is " SOURCE_FORMS ")", p);

			free(p);
			return code;
		}
		s->loc = realpath(p, NULL);
		free(p);
		if (!s->loc)
			return fail(ORCHD_EXIT_SYSTEM, "cannot resolve '%s': %s", text,
				    strerror(errno));
	}
	if (ref) {
		free(s->ref);
		s->ref = xstrdup(ref);
	}
	if (path) {
		free(s->path);
		s->path = xstrdup(path);
	}
	if (sha256) {
		free(s->sha256);
		s->sha256 = xstrdup(sha256);
	}
	if ((s->kind == S_GIT || s->kind == S_URL) && has_password(s->loc))
		return fail(ORCHD_EXIT_USAGE,
			    "%s with a password: refused, it would be written to orchd.lock "
			    "(committed with the pipeline) and shown in messages; orchd has no "
			    "other way to authenticate a source yet: serve the package without "
			    "one (a mirror, a file:// path)",
			    s->kind == S_GIT ? "git+URL" : "URL");
	if (s->path && (s->kind != S_GIT || !subpath_ok(s->path)))
		return fail(ORCHD_EXIT_USAGE,
			    s->kind != S_GIT ? "--path is for a git source"
					     : "path '%s': expected a relative path without '.' or "
					       "'..'",
			    s->path);
	if (s->kind == S_URL && !s->sha256)
		return fail(ORCHD_EXIT_USAGE,
			    "%s: a tarball needs its sha256 (--sha256 HEX, or URL#sha256=HEX)",
			    s->loc);
	if (s->sha256 && (s->kind != S_URL || !orchd_sha256_valid(s->sha256)))
		return fail(ORCHD_EXIT_USAGE,
			    s->kind != S_URL ? "a sha256 is for a tarball source"
					     : "sha256 '%s': expected 64 hex digits",
			    s->sha256);
	if (s->kind == S_GIT && s->ref && !*s->ref)
		return fail(ORCHD_EXIT_USAGE, "%s: empty ref after '@'", text);
	return 0;
}

/* The package of a git source into stage/git (its path in *pkg). */
static int fetch_git(struct src *s, const char *stage, char **pkg, char commit[ORCHD_GIT_OIDSZ])
{
	char err[1024], *dest = xasprintf("%s/git", stage), *dotgit;
	struct stat st;

	if (!s->ref) {
		free(dest);
		return fail(ORCHD_EXIT_USAGE,
			    "git+%s: which version? add @TAG or @COMMIT (40 hex digits)", s->loc);
	}
	/* pinned: a tag or a commit id, never a branch */
	if (orchd_git_read_pinned(s->loc, s->ref, NULL, NULL, commit, NULL, err, sizeof(err)) < 0) {
		free(dest);
		return fail(strstr(err, "is a branch") || strstr(err, "is no tag")
				    ? ORCHD_EXIT_USAGE
				    : ORCHD_EXIT_SYSTEM,
			    "%s", err);
	}
	if (orchd_git_checkout(s->loc, commit, dest, NULL, commit, err, sizeof(err)) < 0) {
		free(dest);
		return fail(ORCHD_EXIT_SYSTEM, "%s", err);
	}
	dotgit = xasprintf("%s/.git", dest);
	op_rmtree(dotgit);
	free(dotgit);
	*pkg = s->path ? xasprintf("%s/%s", dest, s->path) : xstrdup(dest);
	free(dest);
	if (lstat(*pkg, &st) < 0 || !S_ISDIR(st.st_mode))
		return fail(ORCHD_EXIT_USAGE, "git+%s@%s has no directory '%s'", s->loc, s->ref,
			    s->path);
	return 0;
}

/* The package of a tarball source, checked, extracted under stage/x. */
static int fetch_url(struct src *s, const char *stage, char **pkg)
{
	json_object *spec = json_object_new_object();
	char err[1024], *file = xasprintf("%s/download", stage), *x = xasprintf("%s/x", stage),
			*why = NULL;
	const char *tar[] = {
		"tar", "-x", "-f", file, "-C", x, "--no-same-owner", "--no-same-permissions", NULL};
	struct dirent **ents = NULL;
	int n, code = 0, ndirs = 0, i;

	json_object_object_add(spec, "url", json_object_new_string(s->loc));
	json_object_object_add(spec, "sha256", json_object_new_string(s->sha256));
	json_object_object_add(spec, "dest", json_object_new_string("download"));
	if (orchd_fetch_source(spec, stage, NULL, NULL, err, sizeof(err)) < 0) {
		code = fail(ORCHD_EXIT_SYSTEM, "%s", err);
		goto out;
	}
	if (mkdir(x, 0755) < 0) {
		code = fail(ORCHD_EXIT_SYSTEM, "cannot create %s: %s", x, strerror(errno));
		goto out;
	}
	if (run(tar, NULL, &why) < 0) {
		code = fail(ORCHD_EXIT_SYSTEM, "cannot extract %s: tar %s", s->loc, why);
		goto out;
	}
	/* the package at the root, or in the one directory at the root */
	n = scandir(x, &ents, NULL, cmp_name);
	*pkg = xstrdup(x);
	for (i = 0; i < n; i++) {
		if (!strcmp(ents[i]->d_name, ".") || !strcmp(ents[i]->d_name, ".."))
			continue;
		ndirs += ents[i]->d_type == DT_DIR ? 1 : 100;
	}
	if (ndirs == 1)
		for (i = 0; i < n; i++)
			if (ents[i]->d_type == DT_DIR && strcmp(ents[i]->d_name, ".") &&
			    strcmp(ents[i]->d_name, "..")) {
				free(*pkg);
				*pkg = xasprintf("%s/%s", x, ents[i]->d_name);
			}
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
out:
	free(why);
	free(file);
	free(x);
	json_object_put(spec);
	return code;
}

static int fetch_dir(struct src *s, const char *stage, char **pkg)
{
	char *src = xasprintf("%s/.", s->loc), *dest = xasprintf("%s/dir", stage), *why = NULL,
	     *dotgit;
	const char *cp[] = {"cp", "-R", "-P", "--", src, dest, NULL};
	int code = 0;

	if (run(cp, NULL, &why) < 0)
		code = fail(ORCHD_EXIT_SYSTEM, "cannot copy %s: cp %s", s->loc, why);
	dotgit = xasprintf("%s/.git", dest);
	op_rmtree(dotgit);
	free(dotgit);
	free(why);
	free(src);
	*pkg = dest;
	return code;
}

/*
 * The hello of the extension at exe, to a hello offering every version
 * this orchd speaks: its name, version and protocol.  0, or -1 with the
 * reason in err.
 */
static int probe_hello(const char *exe, char **name, char **version, int *proto, char *err,
		       size_t errlen)
{
	char *hello = op_encode_hello_orchd(OP_PROTOCOL_MIN, OP_PROTOCOL_MAX, ORCHD_VERSION),
	     *output = NULL, *why = NULL;
	const char *argv[] = {exe, NULL};
	struct op_parsed pr;
	int ret = -1;

	if (!hello)
		die("out of memory");
	run_io(argv, NULL, hello, &output, &why);
	op_parse_line(OP_FROM_EXT, output, strcspn(output, "\n"), &pr);
	if (pr.verdict != OP_VALID || pr.type != OP_MSG_HELLO) {
		snprintf(err, errlen, "%s answered no hello to a hello%s%.300s", exe,
			 why ? ": " : "", why ? why : "");
	} else {
		*name = xstrdup(op_get_str(pr.msg, "name"));
		*version = xstrdup(op_get_str(pr.msg, "version"));
		*proto = (int)op_get_int(pr.msg, "protocol", 0);
		ret = 0;
	}
	op_parsed_release(&pr);
	free(hello);
	free(output);
	free(why);
	return ret;
}

/*
 * A pip source: a venv in a new directory of pkgs (in place: a venv cannot
 * move), the requirement installed into it, its one console script
 * orchd-ext-TYPE linked at the root with a manifest made from its hello.
 * The digest is the sha256 of `pip freeze --all` in the venv: every
 * distribution and its version.
 */
static int fetch_pip(struct src *s, const char *pkgs, char **pkg, char **digest)
{
	char *dir = xasprintf("%s/pip-XXXXXX", pkgs), *venv = NULL, *py = NULL, *bin = NULL,
	     *why = NULL, *freeze = NULL, *exe = NULL, *name = NULL, *version = NULL, *link = NULL,
	     *mpath = NULL, err[1024], hex[ORCHD_SHA256_HEXSZ];
	struct dirent **ents = NULL;
	int n = 0, code = 0, proto = 0, found = 0;
	json_object *m = NULL, *pr;

	*pkg = NULL;
	if (!mkdtemp(dir)) {
		code = fail(ORCHD_EXIT_SYSTEM, "cannot create a directory in %s: %s", pkgs,
			    strerror(errno));
		free(dir);
		return code;
	}
	*pkg = dir;
	venv = xasprintf("%s/venv", dir);
	py = xasprintf("%s/bin/python", venv);
	bin = xasprintf("%s/bin", venv);
	{
		const char *mk[] = {"python3", "-m", "venv", venv, NULL};
		const char *inst[] = {py,   "-m", "pip",  "install", "--disable-pip-version-check",
				      "-q", "--", s->loc, NULL};
		const char *fr[] = {
			py, "-m", "pip", "freeze", "--all", "--disable-pip-version-check", NULL};

		if (run(mk, NULL, &why) < 0) {
			code = fail(ORCHD_EXIT_SYSTEM, "python3 -m venv %s: %s", venv, why);
			goto out;
		}
		if (run(inst, NULL, &why) < 0) {
			code = fail(ORCHD_EXIT_SYSTEM, "pip install %s: %s", s->loc, why);
			goto out;
		}
		if (run_io(fr, NULL, NULL, &freeze, &why) < 0) {
			code = fail(ORCHD_EXIT_SYSTEM, "pip freeze: %s", why);
			goto out;
		}
	}
	n = scandir(bin, &ents, NULL, cmp_name);
	for (int i = 0; i < n; i++)
		if (!strncmp(ents[i]->d_name, "orchd-ext-", 10) && ents[i]->d_name[10]) {
			found++;
			free(exe);
			exe = xstrdup(ents[i]->d_name);
		}
	if (found != 1) {
		code = fail(ORCHD_EXIT_USAGE,
			    "pip:%s provides %d orchd-ext-TYPE console scripts: a package provides "
			    "one",
			    s->loc, found);
		goto out;
	}
	{
		char *path = xasprintf("%s/%s", bin, exe);

		if (probe_hello(path, &name, &version, &proto, err, sizeof(err)) < 0) {
			free(path);
			code = fail(ORCHD_EXIT_SYSTEM, "pip:%s: %s", s->loc, err);
			goto out;
		}
		free(path);
	}
	if (strcmp(exe + 10, name)) {
		code = fail(ORCHD_EXIT_USAGE, "pip:%s: %s says its name is '%s'", s->loc, exe,
			    name);
		goto out;
	}
	link = xasprintf("%s/%s", dir, exe);
	{
		char *target = xasprintf("venv/bin/%s", exe);

		if (symlink(target, link) < 0) {
			code = fail(ORCHD_EXIT_SYSTEM, "cannot link %s: %s", link, strerror(errno));
			free(target);
			goto out;
		}
		free(target);
	}
	m = json_object_new_object();
	json_object_object_add(m, "name", json_object_new_string(name));
	json_object_object_add(m, "version", json_object_new_string(version));
	pr = json_object_new_object();
	json_object_object_add(pr, "min", json_object_new_int(proto));
	json_object_object_add(pr, "max", json_object_new_int(proto));
	json_object_object_add(m, "protocol", pr);
	add_str(m, "description", s->spec);
	{
		/* under isolation strict it sees its own directory (venv/bin):
		 * the rest of the venv too */
		json_object *iso = json_object_new_object(), *paths = json_object_new_object(),
			    *read = json_object_new_array();

		json_object_array_add(read, json_object_new_string(dir));
		json_object_object_add(paths, "read", read);
		json_object_object_add(iso, "paths", paths);
		json_object_object_add(m, "isolation", iso);
	}
	mpath = xasprintf("%s/%s" MANIFEST_END, dir, exe);
	if (write_json(mpath, m) < 0) {
		code = fail(ORCHD_EXIT_SYSTEM, "cannot write %s: %s", mpath, strerror(errno));
		goto out;
	}
	orchd_sha256_hex(freeze, strlen(freeze), hex);
	*digest = xasprintf("sha256:%s", hex);
out:
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	json_object_put(m);
	free(venv);
	free(py);
	free(bin);
	free(why);
	free(freeze);
	free(exe);
	free(name);
	free(version);
	free(link);
	free(mpath);
	return code;
}

/* ---- the manifest ------------------------------------------------------------- */

struct manifest {
	char *type, *version, *min_orchd, *build;
	char **needs;
	int pmin, pmax;
};

static void manifest_release(struct manifest *m)
{
	free(m->type);
	free(m->version);
	free(m->min_orchd);
	free(m->build);
	for (char **p = m->needs; p && *p; p++)
		free(*p);
	free(m->needs);
	memset(m, 0, sizeof(*m));
}

/* Read and check the one manifest at the root of pkg (what = the source,
 * for messages). */
static int manifest_read(const char *pkg, const char *what, struct manifest *m)
{
	struct dirent **ents = NULL;
	int n = scandir(pkg, &ents, NULL, cmp_name), found = 0, code = 0, i;
	char *file = NULL, *path = NULL;
	json_object *j = NULL, *v, *proto;
	struct stat st;
	size_t len;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < n; i++) {
		const char *d = ents[i]->d_name;

		len = strlen(d);
		if (!strncmp(d, "orchd-ext-", 10) && len > 10 + strlen(MANIFEST_END) &&
		    !strcmp(d + len - strlen(MANIFEST_END), MANIFEST_END)) {
			found++;
			free(file);
			file = xstrdup(d);
		}
	}
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	if (found != 1) {
		code = fail(
			ORCHD_EXIT_USAGE,
			found ? "%s holds %d manifests at its root: a package holds one"
			      : "%s is no extension package: no orchd-ext-TYPE.manifest.json at "
				"its root",
			what, found);
		goto out;
	}
	m->type = xstrndup(file + 10, strlen(file) - 10 - strlen(MANIFEST_END));
	path = xasprintf("%s/%s", pkg, file);
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MANIFEST_MAX) {
		code = fail(ORCHD_EXIT_USAGE, "%s: %s: not a regular file of at most 64 KiB", what,
			    file);
		goto out;
	}
	j = json_object_from_file(path);
	if (!j || !json_object_is_type(j, json_type_object)) {
		code = fail(ORCHD_EXIT_USAGE, "%s: %s: not a JSON object", what, file);
		goto out;
	}
	if (!type_ok(m->type)) {
		code = fail(ORCHD_EXIT_USAGE,
			    "%s: %s: the type '%s' does not match [a-z][a-z0-9_-]* (PROTOCOL.md "
			    "§2.1)",
			    what, file, m->type);
		goto out;
	}
	if (!streq(jstr(j, "name"), m->type)) {
		code = fail(ORCHD_EXIT_USAGE, "%s: %s: \"name\" must be \"%s\" (PROTOCOL.md §2.3)",
			    what, file, m->type);
		goto out;
	}
	if (!jstr(j, "version") || !version_ok(jstr(j, "version"))) {
		code = fail(ORCHD_EXIT_USAGE,
			    "%s: %s: \"version\" must be dotted numeric (1.2.0), got %s", what,
			    file, jstr(j, "version") ? jstr(j, "version") : "nothing");
		goto out;
	}
	m->version = xstrdup(jstr(j, "version"));
	proto = op_get(j, "protocol");
	if (!json_object_is_type(op_get(proto, "min"), json_type_int) ||
	    !json_object_is_type(op_get(proto, "max"), json_type_int)) {
		code = fail(ORCHD_EXIT_USAGE,
			    "%s: %s: \"protocol\" must be {\"min\": N, \"max\": M} (PROTOCOL.md "
			    "§2.3)",
			    what, file);
		goto out;
	}
	m->pmin = json_object_get_int(op_get(proto, "min"));
	m->pmax = json_object_get_int(op_get(proto, "max"));
	if (m->pmin > m->pmax || m->pmax < OP_PROTOCOL_MIN || m->pmin > OP_PROTOCOL_MAX) {
		code = fail(ORCHD_EXIT_SYSTEM,
			    "%s %s speaks protocol %d..%d; this orchd %s speaks %d..%d", m->type,
			    m->version, m->pmin, m->pmax, ORCHD_VERSION, OP_PROTOCOL_MIN,
			    OP_PROTOCOL_MAX);
		goto out;
	}
	if (jstr(j, "min_orchd_version")) {
		m->min_orchd = xstrdup(jstr(j, "min_orchd_version"));
		if (!version_ok(m->min_orchd)) {
			code = fail(ORCHD_EXIT_USAGE,
				    "%s: %s: \"min_orchd_version\" must be dotted numeric, got %s",
				    what, file, m->min_orchd);
			goto out;
		}
		if (op_version_cmp(m->min_orchd, ORCHD_VERSION) > 0) {
			code = fail(ORCHD_EXIT_SYSTEM, "%s %s needs orchd >= %s; this is orchd %s",
				    m->type, m->version, m->min_orchd, ORCHD_VERSION);
			goto out;
		}
	}
	if (json_object_object_get_ex(j, "build", &v)) {
		if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v)) {
			code = fail(ORCHD_EXIT_USAGE, "%s: %s: \"build\" must be a shell command",
				    what, file);
			goto out;
		}
		m->build = xstrdup(json_object_get_string(v));
	}
	if (json_object_object_get_ex(j, "needs", &v)) {
		size_t k, nn;

		if (!json_object_is_type(v, json_type_array)) {
			code = fail(ORCHD_EXIT_USAGE,
				    "%s: %s: \"needs\" must be an array of program names", what,
				    file);
			goto out;
		}
		nn = json_object_array_length(v);
		m->needs = xcalloc(nn + 1, sizeof(*m->needs));
		for (k = 0; k < nn; k++) {
			json_object *e = json_object_array_get_idx(v, k);

			if (!json_object_is_type(e, json_type_string) ||
			    !json_object_get_string_len(e)) {
				code = fail(ORCHD_EXIT_USAGE,
					    "%s: %s: \"needs\"[%zu] must be a program name", what,
					    file, k);
				goto out;
			}
			m->needs[k] = xstrdup(json_object_get_string(e));
		}
		for (k = 0; k < nn; k++)
			if (!on_path(m->needs[k])) {
				code = fail(ORCHD_EXIT_SYSTEM,
					    "%s %s needs '%s', which is not on PATH: install it "
					    "first",
					    m->type, m->version, m->needs[k]);
				goto out;
			}
	}
out:
	json_object_put(j);
	free(file);
	free(path);
	if (code)
		manifest_release(m);
	return code;
}

/* ---- installing ---------------------------------------------------------------- */

/* What an install produced (for the lock). */
struct installed {
	char *type, *version, *digest, *commit;
};

static void installed_release(struct installed *i)
{
	free(i->type);
	free(i->version);
	free(i->digest);
	free(i->commit);
	memset(i, 0, sizeof(*i));
}

static json_object *receipt_read(const char *pkgdir)
{
	char *path = xasprintf("%s/" RECEIPT, pkgdir);
	json_object *j = json_object_from_file(path);

	free(path);
	if (j && !json_object_is_type(j, json_type_object)) {
		json_object_put(j);
		j = NULL;
	}
	return j;
}

/* Is root/name a symbolic link into root/.orchd-pkgs/ (ours), absent (0
 * for both), or something else (-1)? */
static int our_link(const char *root, const char *name, int *exists)
{
	char *p = xasprintf("%s/%s", root, name), target[PATH_MAX];
	ssize_t n = readlink(p, target, sizeof(target) - 1);
	struct stat st;
	int ret;

	*exists = !lstat(p, &st);
	free(p);
	if (!*exists)
		return 0;
	if (n < 0)
		return -1;
	target[n] = '\0';
	ret = !strncmp(target, PKGS "/", strlen(PKGS) + 1) ? 1 : -1;
	return ret;
}

/* Point root/NAME at PKGS/pkgname/NAME, atomically. */
static int switch_link(const char *root, const char *pkgname, const char *name)
{
	char *target = xasprintf(PKGS "/%s/%s", pkgname, name),
	     *tmp = xasprintf("%s/.%s.%ld.tmp", root, name, (long)getpid()),
	     *dest = xasprintf("%s/%s", root, name);
	int ret = 0;

	unlink(tmp);
	if (symlink(target, tmp) < 0 || rename(tmp, dest) < 0) {
		ret = fail(ORCHD_EXIT_SYSTEM, "cannot link %s: %s", dest, strerror(errno));
		unlink(tmp);
	}
	free(target);
	free(tmp);
	free(dest);
	return ret;
}

/* The packages of root: receipts, sorted by directory name. */
static int each_pkg(const char *root, int (*fn)(void *arg, const char *dir, json_object *r),
		    void *arg)
{
	char *pkgs = xasprintf("%s/" PKGS, root);
	struct dirent **ents = NULL;
	int n = scandir(pkgs, &ents, NULL, cmp_name), ret = 0;

	for (int i = 0; i < n; i++) {
		const char *d = ents[i]->d_name;

		if (*d != '.' && !ret) {
			char *dir = xasprintf("%s/%s", pkgs, d);
			json_object *r = receipt_read(dir);

			if (r)
				ret = fn(arg, dir, r);
			json_object_put(r);
			free(dir);
		}
		free(ents[i]);
	}
	free(ents);
	free(pkgs);
	return ret;
}

struct prune_arg {
	const char *type, *keep; /* keep: a directory name, or NULL */
	int found;		 /* packages of type seen */
};

static int prune_one(void *arg, const char *dir, json_object *r)
{
	struct prune_arg *a = arg;

	if (streq(jstr(r, "name"), a->type)) {
		a->found++;
		if (!a->keep || strcmp(strrchr(dir, '/') + 1, a->keep))
			op_rmtree(dir);
	}
	return 0;
}

/* Remove the packages of type under root/.orchd-pkgs but keep (may be
 * NULL); how many there were. */
static int prune(const char *root, const char *type, const char *keep)
{
	struct prune_arg a = {type, keep, 0};

	each_pkg(root, prune_one, &a);
	return a.found;
}

/*
 * One install or remove at a time per extensions directory: an exclusive
 * flock(2) on PKGS/.lock, released when fd is closed (or the process
 * dies).  Holding it, nothing else is being built there, so what a killed
 * install left (a .stage-* directory, a pip-* one without its receipt) is
 * removed.  The fd, or -1 (an error printed).
 */
static int pkgs_lock(const char *pkgs, FILE *out)
{
	char *path = xasprintf("%s/.lock", pkgs);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	struct dirent **ents = NULL;
	int n;

	if (fd < 0) {
		error("cannot open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(out, "waiting for another orchd ext command on %s\n", pkgs);
		fflush(out);
		while (flock(fd, LOCK_EX) < 0)
			if (errno != EINTR) {
				error("cannot lock %s: %s", path, strerror(errno));
				close(fd);
				free(path);
				return -1;
			}
	}
	free(path);
	n = scandir(pkgs, &ents, NULL, cmp_name);
	for (int i = 0; i < n; i++) {
		const char *d = ents[i]->d_name;
		char *dir = xasprintf("%s/%s", pkgs, d);
		json_object *r = NULL;

		if (!strncmp(d, ".stage-", 7) ||
		    (!strncmp(d, "pip-", 4) && !(r = receipt_read(dir))))
			op_rmtree(dir);
		json_object_put(r);
		free(dir);
		free(ents[i]);
	}
	free(ents);
	return fd;
}

/*
 * Fetch s, check it, build it and make it root's extension of its type.
 * want_digest, want_version (may be NULL): what the lock says it must be.
 */
static int install_src(const char *root, struct src *s, const char *want_digest,
		       const char *want_version, struct installed *res, FILE *out)
{
	char err[1024], *pkgs = xasprintf("%s/" PKGS, root), *stage = NULL, *pkg = NULL,
			*digest = NULL, *pkgname = NULL, *final = NULL, *exe = NULL, *mname = NULL,
			*why = NULL;
	char commit[ORCHD_GIT_OIDSZ] = "";
	struct manifest m;
	struct stat st;
	json_object *rc = NULL, *old = NULL;
	int code = 0, exists, in_place = 0, lockfd = -1;

	memset(&m, 0, sizeof(m));
	memset(res, 0, sizeof(*res));
	if (orchd_mkdir_p(pkgs, 0755, err, sizeof(err)) < 0) {
		code = fail(ORCHD_EXIT_SYSTEM, "%s", err);
		goto out;
	}
	if ((lockfd = pkgs_lock(pkgs, out)) < 0) {
		code = ORCHD_EXIT_SYSTEM;
		goto out;
	}
	stage = xasprintf("%s/.stage-XXXXXX", pkgs);
	if (!mkdtemp(stage)) {
		code = fail(ORCHD_EXIT_SYSTEM, "cannot create a directory in %s: %s", pkgs,
			    strerror(errno));
		free(stage);
		stage = NULL;
		goto out;
	}
	switch (s->kind) {
	case S_DIR:
		code = fetch_dir(s, stage, &pkg);
		break;
	case S_GIT:
		code = fetch_git(s, stage, &pkg, commit);
		break;
	case S_URL:
		code = fetch_url(s, stage, &pkg);
		break;
	case S_PIP:
		code = fetch_pip(s, pkgs, &pkg, &digest);
		in_place = pkg != NULL;
		break;
	}
	if (code)
		goto out;
	if (!digest && !(digest = tree_digest(pkg, err, sizeof(err)))) {
		code = fail(ORCHD_EXIT_SYSTEM, "%s: refused: %s", s->spec, err);
		goto out;
	}
	if ((code = manifest_read(pkg, s->spec, &m)))
		goto out;
	if (want_digest && strcmp(want_digest, digest)) {
		code = fail(ORCHD_EXIT_SYSTEM,
			    "%s: the package is not what orchd.lock recorded: digest %s, the lock "
			    "has %s",
			    s->spec, digest, want_digest);
		goto out;
	}
	if (want_version && strcmp(want_version, m.version)) {
		code = fail(ORCHD_EXIT_USAGE, "%s is %s %s, not version %s", s->spec, m.type,
			    m.version, want_version);
		goto out;
	}
	mname = xasprintf("orchd-ext-%s" MANIFEST_END, m.type);
	exe = xasprintf("orchd-ext-%s", m.type);
	if (our_link(root, exe, &exists) < 0 || our_link(root, mname, &exists) < 0) {
		code = fail(ORCHD_EXIT_USAGE,
			    "%s/%s exists and was not installed by 'orchd ext install': remove it "
			    "first",
			    root, exe);
		goto out;
	}
	/* a venv stays where it was made */
	pkgname = in_place ? xstrdup(strrchr(pkg, '/') + 1)
			   : xasprintf("%s-%s-%.12s", m.type, m.version, digest + 7);
	final = xasprintf("%s/%s", pkgs, pkgname);
	old = receipt_read(final);
	if (old && streq(jstr(old, "digest"), digest)) {
		fprintf(out, "%s %s (%s) is already installed in %s\n", m.type, m.version, digest,
			root);
	} else {
		if (m.build) {
			const char *sh[] = {"/bin/sh", "-c", m.build, NULL};

			fprintf(out, "building %s %s: %s\n", m.type, m.version, m.build);
			fflush(out);
			if (run(sh, pkg, &why) < 0) {
				code = fail(ORCHD_EXIT_SYSTEM, "the build of %s %s failed: %s",
					    m.type, m.version, why);
				goto out;
			}
		}
		{
			char *p = xasprintf("%s/%s", pkg, exe), *real = realpath(p, NULL),
			     *top = realpath(pkg, NULL);
			/* a regular executable file inside the package (a link
			 * to one is fine: a venv's script, say) */
			int ok = real && top && !strncmp(real, top, strlen(top)) &&
				 real[strlen(top)] == '/' && !stat(real, &st) &&
				 S_ISREG(st.st_mode) && !access(real, X_OK);

			free(p);
			free(real);
			free(top);
			if (!ok) {
				code = fail(ORCHD_EXIT_SYSTEM,
					    "%s %s: no executable %s at the package's root%s (a "
					    "regular file, or a link to one inside the package)",
					    m.type, m.version, exe,
					    m.build ? " after its build" : " (and no \"build\")");
				goto out;
			}
		}
		rc = json_object_new_object();
		add_str(rc, "name", m.type);
		add_str(rc, "version", m.version);
		add_str(rc, "source", s->spec);
		add_str(rc, "ref", s->ref);
		add_str(rc, "commit", *commit ? commit : NULL);
		add_str(rc, "path", s->path);
		add_str(rc, "sha256", s->sha256);
		add_str(rc, "digest", digest);
		{
			char *rp = xasprintf("%s/" RECEIPT, pkg);

			if (write_json(rp, rc) < 0) {
				code = fail(ORCHD_EXIT_SYSTEM, "cannot write %s: %s", rp,
					    strerror(errno));
				free(rp);
				goto out;
			}
			free(rp);
		}
		if (!in_place)
			op_rmtree(final);
		if (!in_place && rename(pkg, final) < 0) {
			code = fail(ORCHD_EXIT_SYSTEM, "cannot move the package to %s: %s", final,
				    strerror(errno));
			goto out;
		}
	}
	/* readable by whoever runs it (a --system install serves every user) */
	if (chmod(final, 0755) < 0) {
		code = fail(ORCHD_EXIT_SYSTEM, "cannot chmod %s: %s", final, strerror(errno));
		goto out;
	}
	if ((code = switch_link(root, pkgname, mname)) || (code = switch_link(root, pkgname, exe)))
		goto out;
	prune(root, m.type, pkgname);
	if (!old || !streq(jstr(old, "digest"), digest))
		fprintf(out, "installed %s %s (%s) into %s\n", m.type, m.version, digest, root);
	res->type = xstrdup(m.type);
	res->version = xstrdup(m.version);
	res->digest = xstrdup(digest);
	res->commit = *commit ? xstrdup(commit) : NULL;
	in_place = 0; /* in use now */
out:
	if (in_place && pkg)
		op_rmtree(pkg);
	if (stage) {
		op_rmtree(stage);
		free(stage);
	}
	json_object_put(rc);
	json_object_put(old);
	manifest_release(&m);
	free(pkgs);
	free(pkg);
	free(digest);
	free(pkgname);
	free(final);
	free(exe);
	free(mname);
	free(why);
	if (lockfd >= 0)
		close(lockfd);
	return code;
}

/* ---- the lock ---------------------------------------------------------------------- */

static char *lock_path(const char *pipeline)
{
	char *d = dir_of(pipeline), *p = xasprintf("%s/" LOCK_NAME, d);

	free(d);
	return p;
}

/* The lock at path ({"orchd_lock": 1, "extensions": {}} when absent), or
 * NULL (an error printed) when it cannot be read. */
static json_object *lock_read(const char *path)
{
	json_object *j, *e;

	if (access(path, F_OK) < 0) {
		j = json_object_new_object();
		json_object_object_add(j, "orchd_lock", json_object_new_int(1));
		json_object_object_add(j, "extensions", json_object_new_object());
		return j;
	}
	j = json_object_from_file(path);
	if (!j || !json_object_is_type(j, json_type_object) ||
	    !json_object_object_get_ex(j, "extensions", &e) ||
	    !json_object_is_type(e, json_type_object)) {
		error("%s: not an orchd lock file (a JSON object with \"extensions\")", path);
		json_object_put(j);
		return NULL;
	}
	return j;
}

static json_object *lock_entry(json_object *lock, const char *type)
{
	json_object *e = op_get(op_get(lock, "extensions"), type);

	return json_object_is_type(e, json_type_object) ? e : NULL;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A copy of o whose objects have their keys in byte order, at every level
 * (the lock is diffed and merged by people: one order for one content). */
static json_object *sorted_copy(json_object *o)
{
	json_object *out;
	const char **keys;
	size_t n = 0;

	if (!json_object_is_type(o, json_type_object))
		return json_object_get(o);
	keys = xcalloc((size_t)json_object_object_length(o) + 1, sizeof(*keys));
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		keys[n++] = k;
	}
	qsort(keys, n, sizeof(*keys), cmp_key);
	out = json_object_new_object();
	for (size_t i = 0; i < n; i++)
		json_object_object_add(out, keys[i], sorted_copy(op_get(o, keys[i])));
	free(keys);
	return out;
}

/* Set type's entry and write the lock, its keys sorted. */
static int lock_write(const char *path, json_object *lock, const char *type, const struct src *s,
		      const struct installed *in)
{
	json_object *e = json_object_new_object(), *out;
	int rc;

	add_str(e, "source", s->spec);
	add_str(e, "ref", s->ref);
	add_str(e, "commit", in->commit);
	add_str(e, "path", s->path);
	add_str(e, "sha256", s->sha256);
	add_str(e, "version", in->version);
	add_str(e, "digest", in->digest);
	json_object_object_add(op_get(lock, "extensions"), type, e);
	json_object_object_add(lock, "orchd_lock", json_object_new_int(1));
	out = sorted_copy(lock);
	rc = write_json(path, out);
	if (rc < 0)
		error("cannot write %s: %s", path, strerror(errno));
	json_object_put(out);
	return rc < 0 ? ORCHD_EXIT_SYSTEM : 0;
}

/* ---- commands ------------------------------------------------------------------------ */

int orchd_extpkg_install(const char *source, const struct orchd_extpkg_opts *o)
{
	char *root = root_dir(o), *lpath = NULL;
	struct src s;
	struct installed in;
	json_object *lock = NULL;
	int code;

	memset(&in, 0, sizeof(in));
	if (!root)
		return fail(ORCHD_EXIT_USAGE, "no extensions directory: set HOME, or give --dir");
	if ((code = src_parse(source, NULL, NULL, o->path, o->sha256, &s)))
		goto out;
	if (o->pipeline) {
		lpath = lock_path(o->pipeline);
		if (!(lock = lock_read(lpath))) {
			code = ORCHD_EXIT_USAGE;
			goto out;
		}
	}
	if ((code = install_src(root, &s, NULL, NULL, &in, out_of(o))))
		goto out;
	if (lock)
		code = lock_write(lpath, lock, in.type, &s, &in);
out:
	json_object_put(lock);
	installed_release(&in);
	src_release(&s);
	free(lpath);
	free(root);
	return code;
}

/* Does the lock's entry e record what r declares?  spec: r's source as
 * the lock records it; ref: the ref r names (its key, or @REF), or NULL. */
static int entry_matches(json_object *e, const struct orchd_ext_req *r, const char *spec,
			 const char *ref)
{
	return e && streq(jstr(e, "source"), spec) &&
	       (!r->version || streq(jstr(e, "version"), r->version)) &&
	       (!ref || streq(jstr(e, "ref"), ref)) && streq(jstr(e, "path"), r->path) &&
	       (!r->sha256 || streq(jstr(e, "sha256"), r->sha256));
}

/* The ref r names: its ref key, or the @REF of a git+URL@REF source. */
static const char *req_ref(const struct orchd_ext_req *r)
{
	const char *at = strrchr(r->source, '@'), *slash = strrchr(r->source, '/');

	if (r->ref)
		return r->ref;
	if (!strncmp(r->source, "git+", 4) && at && (!slash || at > slash))
		return at + 1;
	return NULL;
}

/* The tag of version v of a git source: vV or V, whichever exists. */
static char *git_tag_of(const char *url, const char *v)
{
	char commit[ORCHD_GIT_OIDSZ], err[512];
	char *t = xasprintf("v%s", v);

	if (!orchd_git_read_pinned(url, t, NULL, NULL, commit, NULL, err, sizeof(err)))
		return t;
	free(t);
	return xstrdup(v);
}

int orchd_extpkg_install_from(const struct orchd_pipeline *p, const struct orchd_extpkg_opts *o)
{
	char *root = root_dir(o), *lpath = lock_path(p->file), *base = dir_of(p->file);
	json_object *lock = NULL;
	int code = 0;

	if (!root) {
		code = fail(ORCHD_EXIT_USAGE, "no extensions directory: set HOME, or give --dir");
		goto out;
	}
	if (!p->core.next_reqs) {
		code = fail(ORCHD_EXIT_USAGE, "%s declares no core.extensions", p->file);
		goto out;
	}
	if (!(lock = lock_read(lpath))) {
		code = ORCHD_EXIT_USAGE;
		goto out;
	}
	for (size_t i = 0; i < p->core.next_reqs && !code; i++) {
		const struct orchd_ext_req *r = &p->core.ext_reqs[i];
		json_object *e = lock_entry(lock, r->type);
		struct src s;
		struct installed in;

		memset(&in, 0, sizeof(in));
		if ((code = src_parse(r->source, base, r->ref, r->path, r->sha256, &s))) {
			src_release(&s);
			break;
		}
		if (entry_matches(e, r, s.spec, req_ref(r))) {
			/* exactly what the lock says */
			free(s.ref);
			s.ref = xstrdup_or_null(jstr(e, "commit") ? jstr(e, "commit")
								  : jstr(e, "ref"));
			if (jstr(e, "sha256")) {
				free(s.sha256);
				s.sha256 = xstrdup(jstr(e, "sha256"));
			}
			code = install_src(root, &s, jstr(e, "digest"), jstr(e, "version"), &in,
					   out_of(o));
			if (!code && strcmp(in.type, r->type))
				code = fail(ORCHD_EXIT_USAGE,
					    "%s: core.extensions.%s: %s is an extension of type "
					    "'%s'",
					    p->file, r->type, r->source, in.type);
		} else if (o->frozen) {
			code = fail(ORCHD_EXIT_USAGE,
				    "%s: core.extensions.%s: %s %s: --frozen leaves it unchanged "
				    "(without --frozen, the lock is updated)",
				    p->file, r->type, lpath,
				    e ? "records another source or version"
				      : "has no entry for it");
		} else {
			if (s.kind == S_GIT && !s.ref && r->version)
				s.ref = git_tag_of(s.loc, r->version);
			code = install_src(root, &s, NULL, r->version, &in, out_of(o));
			if (!code && strcmp(in.type, r->type))
				code = fail(ORCHD_EXIT_USAGE,
					    "%s: core.extensions.%s: %s is an extension of type "
					    "'%s'",
					    p->file, r->type, r->source, in.type);
			if (!code) {
				/* the lock records the declared ref, not the commit given */
				code = lock_write(lpath, lock, r->type, &s, &in);
				if (!code)
					fprintf(out_of(o), "%s: recorded %s %s\n", lpath, in.type,
						in.version);
			}
		}
		installed_release(&in);
		src_release(&s);
	}
out:
	json_object_put(lock);
	free(lpath);
	free(base);
	free(root);
	return code;
}

static int list_one(void *arg, const char *dir, json_object *r)
{
	FILE *out = arg;
	const char *src = jstr(r, "source"), *ref = jstr(r, "ref");

	(void)dir;
	fprintf(out, "%-16s %-10s %s%s%s %s\n", jstr(r, "name") ? jstr(r, "name") : "?",
		jstr(r, "version") ? jstr(r, "version") : "?", src ? src : "?", ref ? "@" : "",
		ref ? ref : "", jstr(r, "digest") ? jstr(r, "digest") : "?");
	return 0;
}

int orchd_extpkg_list(const struct orchd_extpkg_opts *o)
{
	char *root = root_dir(o);

	if (!root)
		return fail(ORCHD_EXIT_USAGE, "no extensions directory: set HOME, or give --dir");
	each_pkg(root, list_one, out_of(o));
	free(root);
	return 0;
}

int orchd_extpkg_remove(const char *type, const struct orchd_extpkg_opts *o)
{
	char *root = root_dir(o), *exe, *mname, *p;
	int exists, code = 0, any = 0, lockfd = -1;

	if (!root)
		return fail(ORCHD_EXIT_USAGE, "no extensions directory: set HOME, or give --dir");
	exe = xasprintf("orchd-ext-%s", type);
	mname = xasprintf("orchd-ext-%s" MANIFEST_END, type);
	if (!type_ok(type)) {
		code = fail(ORCHD_EXIT_USAGE, "invalid extension type '%s'", type);
		goto out;
	}
	{
		char *pkgs = xasprintf("%s/" PKGS, root);
		struct stat st;

		if (!stat(pkgs, &st) && (lockfd = pkgs_lock(pkgs, out_of(o))) < 0)
			code = ORCHD_EXIT_SYSTEM;
		free(pkgs);
		if (code)
			goto out;
	}
	for (int k = 0; k < 2; k++) {
		const char *name = k ? mname : exe;
		int ours = our_link(root, name, &exists);

		if (ours < 0) {
			code = fail(ORCHD_EXIT_USAGE,
				    "%s/%s was not installed by 'orchd ext install': not removed",
				    root, name);
			goto out;
		}
		if (ours > 0) {
			p = xasprintf("%s/%s", root, name);
			if (unlink(p) < 0)
				code = fail(ORCHD_EXIT_SYSTEM, "cannot remove %s: %s", p,
					    strerror(errno));
			free(p);
			any = 1;
		}
	}
	if (prune(root, type, NULL))
		any = 1;
	if (!any) {
		code = fail(ORCHD_EXIT_USAGE, "no extension '%s' installed in %s", type, root);
		goto out;
	}
	if (!code)
		fprintf(out_of(o), "removed %s from %s\n", type, root);
out:
	if (lockfd >= 0)
		close(lockfd);
	free(exe);
	free(mname);
	free(root);
	return code;
}

/* The receipt of root's installed type (NULL: none). */
static json_object *active_receipt(const char *root, const char *type)
{
	char *p = xasprintf("%s/orchd-ext-%s", root, type), *real = realpath(p, NULL), *d;
	json_object *r = NULL;

	free(p);
	if (!real)
		return NULL;
	d = dir_of(real);
	r = receipt_read(d);
	free(d);
	free(real);
	return r;
}

/* The newest tag of url above version cur (vX.Y.Z or X.Y.Z), or NULL. */
static char *newest_tag(const char *url, const char *cur, int *code)
{
	struct op_buf tags = OP_BUF_INIT;
	char err[1024], *best = NULL;
	const char *s;

	*code = 0;
	if (orchd_git_tags(url, NULL, &tags, err, sizeof(err)) < 0) {
		*code = fail(ORCHD_EXIT_SYSTEM, "%s", err);
		op_buf_release(&tags);
		return NULL;
	}
	for (s = orchd_buf_str(&tags); *s;) {
		size_t n = strcspn(s, "\n");
		char *t = xstrndup(s, n);
		const char *v = *t == 'v' ? t + 1 : t;

		if (version_ok(v) && op_version_cmp(v, cur) > 0 &&
		    (!best || op_version_cmp(v, *best == 'v' ? best + 1 : best) > 0)) {
			free(best);
			best = t;
		} else {
			free(t);
		}
		s += n + (s[n] == '\n');
	}
	op_buf_release(&tags);
	return best;
}

int orchd_extpkg_upgrade(const char *type, const char *source, const struct orchd_extpkg_opts *o)
{
	char *root = root_dir(o), *tag = NULL, *text = NULL;
	json_object *r = NULL;
	int code = 0;

	if (!root)
		return fail(ORCHD_EXIT_USAGE, "no extensions directory: set HOME, or give --dir");
	if (source) {
		code = orchd_extpkg_install(source, o);
		goto out;
	}
	if (!type_ok(type) || !(r = active_receipt(root, type))) {
		code = fail(ORCHD_EXIT_USAGE, "no extension '%s' installed in %s", type, root);
		goto out;
	}
	if (!jstr(r, "source") || !jstr(r, "version")) {
		code = fail(ORCHD_EXIT_SYSTEM, "the receipt of %s in %s is incomplete", type, root);
		goto out;
	}
	if (!strncmp(jstr(r, "source"), "git+", 4)) {
		tag = newest_tag(jstr(r, "source") + 4, jstr(r, "version"), &code);
		if (code)
			goto out;
		if (!tag) {
			fprintf(out_of(o), "%s %s is the newest version of %s\n", type,
				jstr(r, "version"), jstr(r, "source"));
			goto out;
		}
		text = xasprintf("%s@%s", jstr(r, "source"), tag);
	} else if (!strncmp(jstr(r, "source"), "http", 4)) {
		code = fail(ORCHD_EXIT_USAGE,
			    "%s comes from a tarball: give the new one (orchd ext upgrade %s URL "
			    "--sha256 HEX)",
			    type, type);
		goto out;
	} else {
		text = xstrdup(jstr(r, "source"));
	}
	{
		struct orchd_extpkg_opts o2 = *o;

		o2.path = jstr(r, "path");
		code = orchd_extpkg_install(text, &o2);
	}
out:
	json_object_put(r);
	free(tag);
	free(text);
	free(root);
	return code;
}

/* ---- the check of a run ------------------------------------------------------------- */

int orchd_extpkg_check(const struct orchd_pipeline *p, const struct orchd_registry *reg,
		       struct orchd_diags *d)
{
	char *lpath;
	json_object *lock = NULL;
	int ret = 0;

	if (!p->core.next_reqs)
		return 0;
	lpath = lock_path(p->file);
	if (access(lpath, F_OK) == 0 && !(lock = lock_read(lpath)))
		ret = orchd_diag_add(d, lpath, 0, 0, "not a valid lock file");
	for (size_t i = 0; i < p->core.next_reqs && !ret; i++) {
		const struct orchd_ext_req *r = &p->core.ext_reqs[i];
		const char *f = orchd_pos_file(p, r->pos);
		json_object *e = lock ? lock_entry(lock, r->type) : NULL, *rc = NULL;
		const struct orchd_ext_info *x = orchd_loader_find(reg, r->type, NULL);
		/* the declared source as the lock would record it */
		char *spec = spec_of(r->source), *real = NULL, *dir = NULL;

		if (!lock || !e) {
			ret = orchd_diag_add(d, f, r->pos.line, r->pos.column,
					     "core.extensions.%s: %s %s: run 'orchd ext install "
					     "--from %s'",
					     r->type, lpath,
					     lock ? "has no entry for it" : "does not exist",
					     p->file);
		} else if (!entry_matches(e, r, spec, req_ref(r))) {
			ret = orchd_diag_add(
				d, f, r->pos.line, r->pos.column,
				"core.extensions.%s: %s records %s %s from %s, the pipeline asks "
				"for %s%s%s: run 'orchd ext install --from %s'",
				r->type, lpath, r->type,
				jstr(e, "version") ? jstr(e, "version") : "?",
				jstr(e, "source") ? jstr(e, "source") : "?",
				r->version ? r->version : "", r->version ? " from " : "", spec,
				p->file);
		} else if (!x) {
			ret = orchd_diag_add(d, f, r->pos.line, r->pos.column,
					     "core.extensions.%s: not installed: run 'orchd ext "
					     "install --from %s'",
					     r->type, p->file);
		} else if (!(real = realpath(x->path, NULL)) || !(dir = dir_of(real)) ||
			   !(rc = receipt_read(dir))) {
			ret = orchd_diag_add(
				d, f, r->pos.line, r->pos.column,
				"core.extensions.%s: the %s at %s was not installed by "
				"'orchd ext install': run 'orchd ext install --from %s'",
				r->type, r->type, x->path, p->file);
		} else if (!streq(jstr(rc, "digest"), jstr(e, "digest"))) {
			ret = orchd_diag_add(
				d, f, r->pos.line, r->pos.column,
				"core.extensions.%s: the %s at %s is %s (%s), %s has %s "
				"(%s): run 'orchd ext install --from %s'",
				r->type, r->type, x->path,
				jstr(rc, "version") ? jstr(rc, "version") : "?",
				jstr(rc, "digest") ? jstr(rc, "digest") : "?", lpath,
				jstr(e, "version") ? jstr(e, "version") : "?",
				jstr(e, "digest") ? jstr(e, "digest") : "?", p->file);
		}
		json_object_put(rc);
		free(real);
		free(dir);
		free(spec);
	}
	json_object_put(lock);
	free(lpath);
	return ret;
}
