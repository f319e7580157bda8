/*
 * core/affected: instances touched by the changes since a git revision
 * (see affected.h).
 */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <git2.h>

#include "core/affected.h"
#include "core/bootstrap.h"
#include "core/compose.h"
#include "core/refs.h"
#include "git.h"
#include "orchd_protocol.h"
#include "util.h"

struct at_ref {
	git_repository *repo;
	git_tree *tree;
	const char *cwd, *workdir; /* real paths, workdir without its final '/' */
	const char *main;	   /* the pipeline file, as given */
	int main_missing;	   /* it is not in REF's tree */
	char *outside;		   /* a file read that is outside the repository */
};

/* path made absolute and folded; NULL for "" */
static char *absolute(const char *cwd, const char *path)
{
	char *joined, *out;

	if (*path == '/')
		return orchd_compose_join("", path);
	joined = xasprintf("%s/.", cwd);
	out = orchd_compose_join(joined, path);
	free(joined);
	return out;
}

/* The path of abs relative to the work tree, or NULL when outside it. */
static const char *in_repo(const char *workdir, const char *abs)
{
	size_t n = strlen(workdir);

	if (strncmp(abs, workdir, n) || (abs[n] != '/' && abs[n]))
		return NULL;
	return abs[n] ? abs + n + 1 : abs + n;
}

/* orchd_load_opts.read: the file as it is in REF's tree. */
static int read_at_ref(void *ctx, const char *path, struct op_buf *out)
{
	struct at_ref *r = ctx;
	git_tree_entry *e = NULL;
	git_blob *blob = NULL;
	char *abs = absolute(r->cwd, path);
	const char *rel = in_repo(r->workdir, abs);
	int ret = -1, err = ENOENT;

	if (!rel) {
		/* not versioned: read as it is now, and say so */
		if (!r->outside)
			r->outside = xstrdup(path);
		free(abs);
		return orchd_compose_read(NULL, path, out);
	}
	if (git_tree_entry_bypath(&e, r->tree, rel) == 0 &&
	    git_tree_entry_type(e) == GIT_OBJECT_BLOB &&
	    git_blob_lookup(&blob, r->repo, git_tree_entry_id(e)) == 0) {
		op_buf_init(out, ORCHD_MAX_FILE_SIZE);
		if (op_buf_add(out, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob)) < 0)
			err = E2BIG;
		else
			ret = 0;
	} else if (!strcmp(path, r->main)) {
		r->main_missing = 1;
	}
	git_error_clear();
	git_blob_free(blob);
	git_tree_entry_free(e);
	free(abs);
	if (ret < 0)
		errno = err;
	return ret;
}

static json_object *strv_json(char **v, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

/* The hash of everything that defines instance i as it would run. */
static void fingerprint(const struct orchd_pipeline *p, size_t i, char hex[ORCHD_SHA256_HEXSZ])
{
	const struct orchd_instance *in = &p->inst[i];
	const struct orchd_exec *e = &in->exec;
	struct orchd_isolation iso;
	json_object *o = json_object_new_object(), *x = json_object_new_object();
	json_object *deps = json_object_new_array();

	json_object_object_add(o, "config", orchd_instance_config(p, in));
	for (size_t k = 0; k < in->ndeps; k++)
		json_object_array_add(deps, json_object_new_string(p->inst[in->deps[k]].id));
	json_object_object_add(o, "deps", deps);
	json_object_object_add(o, "enabled", json_object_new_boolean(in->enabled));
	json_object_object_add(x, "max_attempts", json_object_new_int(e->max_attempts));
	json_object_object_add(x, "timeout", json_object_new_int64(e->timeout_ms));
	json_object_object_add(x, "backoff_initial", json_object_new_int64(e->backoff_initial_ms));
	json_object_object_add(x, "backoff_max", json_object_new_int64(e->backoff_max_ms));
	json_object_object_add(x, "backoff_factor", json_object_new_double(e->backoff_factor));
	json_object_object_add(x, "grace", json_object_new_int64(e->grace_ms));
	json_object_object_add(x, "handshake", json_object_new_int64(e->handshake_ms));
	json_object_object_add(x, "memory", json_object_new_int64(e->limits.memory));
	json_object_object_add(x, "pids", json_object_new_int64(e->limits.pids));
	json_object_object_add(x, "cpu_time", json_object_new_int64(e->limits.cpu_time_ms));
	json_object_object_add(x, "open_files", json_object_new_int64(e->limits.open_files));
	json_object_object_add(x, "output_bytes", json_object_new_int64(e->limits.output_bytes));
	json_object_object_add(o, "execution", x);
	orchd_isolation_merge(&p->core.isolation, &in->isolation, &iso);
	x = json_object_new_object();
	json_object_object_add(x, "level", json_object_new_int((int)iso.level));
	json_object_object_add(x, "network_none", json_object_new_boolean(iso.network_none));
	json_object_object_add(x, "read", strv_json(iso.read, iso.nread));
	json_object_object_add(x, "write", strv_json(iso.write, iso.nwrite));
	free(iso.read);
	free(iso.write);
	json_object_object_add(o, "isolation", x);
	json_object_object_add(o, "env", json_object_get(p->core.env));
	json_object_object_add(o, "sources", json_object_get(in->sources));
	json_object_object_add(o, "pass_env", strv_json(in->pass_env, in->npass_env));
	json_object_object_add(o, "watch", strv_json(in->watch, in->nwatch));
	orchd_json_hash(o, hex);
	json_object_put(o);
}

struct changes {
	char **v;
	size_t n, alloc;
};

static int on_delta(const git_diff_delta *d, float progress, void *payload)
{
	struct changes *c = payload;

	(void)progress;
	for (int k = 0; k < 2; k++) {
		const char *path = k ? d->new_file.path : d->old_file.path;

		if (!path || (k && d->old_file.path && !strcmp(path, d->old_file.path)))
			continue;
		ALLOC_GROW(c->v, c->n + 1, c->alloc);
		c->v[c->n++] = xstrdup(path);
	}
	return 0;
}

static int has_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/*
 * The glob pat matches path (both relative, '/'-separated): segment by
 * segment with fnmatch(), "**" standing for any number of segments; a
 * pattern that matches a leading part of path matches it too (a
 * directory watches what is under it).
 */
static int glob_match(const char *pat, const char *path, unsigned depth)
{
	const char *pe, *fe;
	char *pseg, *fseg;
	int ok;

	if (!*pat)
		return 1;
	if (depth > 256)
		return 0;
	pe = strchr(pat, '/');
	if ((pe ? (size_t)(pe - pat) : strlen(pat)) == 2 && !strncmp(pat, "**", 2)) {
		if (glob_match(pe ? pe + 1 : "", path, depth + 1))
			return 1;
		if (!*path)
			return 0;
		fe = strchr(path, '/');
		return glob_match(pat, fe ? fe + 1 : "", depth + 1);
	}
	if (!*path)
		return 0;
	fe = strchr(path, '/');
	pseg = pe ? xstrndup(pat, (size_t)(pe - pat)) : xstrdup(pat);
	fseg = fe ? xstrndup(path, (size_t)(fe - path)) : xstrdup(path);
	ok = fnmatch(pseg, fseg, 0) == 0;
	free(pseg);
	free(fseg);
	return ok && glob_match(pe ? pe + 1 : "", fe ? fe + 1 : "", depth + 1);
}

/* A changed file (relative to the work tree) that rel watches: rel
 * itself, a file under the directory rel, or one that the glob matches. */
static const char *match(const struct changes *c, const char *rel)
{
	size_t n = strlen(rel);

	for (size_t i = 0; i < c->n; i++) {
		const char *f = c->v[i];

		if (has_glob(rel)
			    ? glob_match(rel, f, 0)
			    : !strcmp(rel, ".") || (!strncmp(f, rel, n) && (f[n] == '/' || !f[n])))
			return f;
	}
	return NULL;
}

static void add_strv(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = s;
}

/* Why instance i is affected by the files it watches, or NULL. */
static char *watched(const struct orchd_pipeline *p, size_t i, const struct orchd_registry *reg,
		     const struct changes *c, const char *workdir, const char *reldir)
{
	const struct orchd_instance *in = &p->inst[i];
	const struct orchd_ext_info *e = reg ? orchd_loader_find(reg, in->type, NULL) : NULL;
	char **paths = NULL, *why = NULL;
	size_t np = 0;

	if (e && e->watch_keys) {
		json_object *cfg = orchd_instance_config(p, in), *v;

		for (char **k = e->watch_keys; *k; k++) {
			if (!json_object_object_get_ex(cfg, *k, &v))
				continue;
			if (json_object_is_type(v, json_type_string)) {
				add_strv(&paths, &np, xstrdup(json_object_get_string(v)));
			} else if (json_object_is_type(v, json_type_array)) {
				for (size_t j = 0; j < json_object_array_length(v); j++) {
					json_object *s = json_object_array_get_idx(v, j);

					if (json_object_is_type(s, json_type_string))
						add_strv(&paths, &np,
							 xstrdup(json_object_get_string(s)));
				}
			}
		}
		json_object_put(cfg);
	}
	for (size_t k = 0; k < in->nwatch; k++)
		add_strv(&paths, &np, xstrdup(in->watch[k]));
	for (size_t k = 0; k < np && !why; k++) {
		const char *w = paths[k], *rel, *f;
		char *full;

		if (!*w || strstr(w, "${{"))
			continue; /* known at run time only: the config change shows it */
		{
			/* absolute, folded: "../x" from the top may come back in */
			char *base = *reldir ? xasprintf("%s/%s/.", workdir, reldir)
					     : xasprintf("%s/.", workdir);

			full = orchd_compose_join(base, w);
			free(base);
			rel = in_repo(workdir, full);
			if (rel && !*rel)
				rel = ".";
		}
		if (!rel)
			why = xasprintf("watches %s, outside the repository", w);
		else if ((f = match(c, rel)))
			why = xasprintf("watched file changed: %s", f);
		free(full);
	}
	for (size_t k = 0; k < np; k++)
		free(paths[k]);
	free(paths);
	return why;
}

static void all_affected(struct orchd_affected *a, const char *why)
{
	for (size_t i = 0; i < a->ninst; i++)
		if (!a->why[i]) {
			a->why[i] = xstrdup(why);
			a->naffected++;
		}
}

static int open_repo(const char *file, git_repository **repo, char **cwd, char **workdir,
		     char **reldir, char *err, size_t errlen)
{
	char real[PATH_MAX], buf[PATH_MAX], *dir, *slash;
	const char *wd;

	if (!realpath(file, real))
		return orchd_set_err(err, errlen, "cannot resolve '%s': %s", file, strerror(errno));
	dir = xstrdup(real);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (git_repository_open_ext(repo, dir, 0, NULL) < 0) {
		git_error_clear();
		orchd_set_err(err, errlen, "'%s' is not inside a git repository", file);
		free(dir);
		return -1;
	}
	if (git_repository_is_bare(*repo) || !(wd = git_repository_workdir(*repo)) ||
	    !realpath(wd, buf)) {
		orchd_set_err(err, errlen, "the git repository of '%s' has no work tree", file);
		free(dir);
		return -1;
	}
	*workdir = xstrdup(buf);
	if (!getcwd(buf, sizeof(buf))) {
		free(dir);
		return orchd_set_err(err, errlen, "cannot get the current directory: %s",
				     strerror(errno));
	}
	*cwd = xstrdup(buf);
	*reldir = xstrdup(in_repo(*workdir, dir) ? in_repo(*workdir, dir) : "");
	free(dir);
	return 0;
}

static int resolve_since(git_repository *repo, const char *since, git_commit **commit, char *err,
			 size_t errlen)
{
	git_object *obj = NULL, *peeled = NULL;
	int rc = git_revparse_single(&obj, repo, since);

	if (rc == 0)
		rc = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
	if (rc == 0)
		rc = git_commit_lookup(commit, repo, git_object_id(peeled));
	git_object_free(peeled);
	git_object_free(obj);
	if (rc == 0)
		return 0;
	git_error_clear();
	if (git_repository_is_shallow(repo))
		return orchd_set_err(err, errlen,
				     "cannot find revision '%s': the repository is a shallow clone "
				     "that does not reach it; fetch more history (git fetch "
				     "--unshallow, or a larger --depth) and try again",
				     since);
	return orchd_set_err(err, errlen,
			     "unknown revision '%s' (not a commit, branch or tag of the "
			     "repository)",
			     since);
}

int orchd_affected(const char *file, const struct orchd_pipeline *p,
		   const struct orchd_registry *reg, const char *env, const char *since,
		   struct orchd_affected *out, char *err, size_t errlen)
{
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	git_diff *diff = NULL;
	git_diff_options dopts;
	struct changes changes = {NULL, 0, 0};
	struct orchd_pipeline *then = NULL;
	struct orchd_diags d;
	struct orchd_load_opts lo;
	struct at_ref r;
	char *cwd = NULL, *workdir = NULL, *reldir = NULL;
	size_t *queue = NULL, nq = 0;
	int ret = -1, loaded;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	orchd_diags_init(&d);
	if (orchd_git_global_init(err, errlen) < 0)
		return -1;
	if (open_repo(file, &repo, &cwd, &workdir, &reldir, err, errlen) < 0 ||
	    resolve_since(repo, since, &commit, err, errlen) < 0)
		goto out;
	git_oid_tostr(out->commit, sizeof(out->commit), git_commit_id(commit));
	if (git_commit_tree(&tree, commit) < 0) {
		orchd_set_err(err, errlen, "cannot read the tree of '%s': %s", since,
			      git_error_last() ? git_error_last()->message : "?");
		goto out;
	}
	git_diff_options_init(&dopts, GIT_DIFF_OPTIONS_VERSION);
	dopts.flags = GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS;
	if (git_diff_tree_to_workdir_with_index(&diff, repo, tree, &dopts) < 0 ||
	    git_diff_foreach(diff, on_delta, NULL, NULL, NULL, &changes) < 0) {
		orchd_set_err(err, errlen, "cannot compare '%s' with the work tree: %s", since,
			      git_error_last() ? git_error_last()->message : "?");
		goto out;
	}

	r.repo = repo;
	r.tree = tree;
	r.cwd = cwd;
	r.workdir = workdir;
	r.main = file;
	memset(&lo, 0, sizeof(lo));
	lo.env = env;
	lo.read = read_at_ref;
	lo.read_ctx = &r;
	loaded = orchd_bootstrap_load_opts(file, &lo, &then, &d) == 0 &&
		 orchd_pipeline_validate(then, NULL, 0, &d) == 0;

	out->ninst = p->ninst;
	out->why = xcalloc(p->ninst + 1, sizeof(*out->why));
	for (size_t f = 0; f < p->nfiles; f++) {
		char real[PATH_MAX];

		if (p->files[f].git)
			continue;
		if (!realpath(p->files[f].path, real) || !in_repo(workdir, real)) {
			add_strv(&out->notes, &out->nnotes,
				 xasprintf("%s is outside the repository (%s): its changes cannot "
					   "be dated, every instance counts as affected",
					   p->files[f].path, workdir));
			all_affected(out, "a file of the pipeline is outside the repository");
			break;
		}
	}
	if (!loaded && !r.main_missing) {
		char where[64] = "";

		if (d.n && d.v[0].line)
			snprintf(where, sizeof(where), ":%u:%u", d.v[0].line, d.v[0].column);
		add_strv(&out->notes, &out->nnotes,
			 xasprintf("the pipeline at %s does not load (%s%s: %s): every instance "
				   "counts as affected",
				   since, d.n ? d.v[0].file : file, where, d.n ? d.v[0].msg : "?"));
		all_affected(out, "the pipeline at the revision does not load");
	}
	for (size_t i = 0; i < p->ninst; i++) {
		char a[ORCHD_SHA256_HEXSZ], b[ORCHD_SHA256_HEXSZ];
		size_t j = (size_t)-1;

		if (out->why[i])
			continue;
		if (loaded)
			for (size_t k = 0; k < then->ninst && j == (size_t)-1; k++)
				if (!strcmp(then->inst[k].id, p->inst[i].id))
					j = k;
		if (j == (size_t)-1) {
			out->why[i] = xstrdup("new");
		} else {
			fingerprint(p, i, a);
			fingerprint(then, j, b);
			if (strcmp(a, b))
				out->why[i] = xstrdup("definition changed");
			else
				out->why[i] = watched(p, i, reg, &changes, workdir, reldir);
		}
		if (out->why[i])
			out->naffected++;
	}
	/* and what depends on them */
	queue = xcalloc(p->ninst + 1, sizeof(*queue));
	for (size_t i = 0; i < p->ninst; i++)
		if (out->why[i])
			queue[nq++] = i;
	for (size_t q = 0; q < nq; q++)
		for (size_t i = 0; i < p->ninst; i++) {
			if (out->why[i])
				continue;
			for (size_t k = 0; k < p->inst[i].ndeps; k++)
				if (p->inst[i].deps[k] == queue[q]) {
					out->why[i] =
						xasprintf("depends on %s", p->inst[queue[q]].id);
					out->naffected++;
					queue[nq++] = i;
					break;
				}
		}
	if (loaded)
		for (size_t k = 0; k < then->ninst; k++) {
			size_t i;

			for (i = 0; i < p->ninst; i++)
				if (!strcmp(then->inst[k].id, p->inst[i].id))
					break;
			if (i == p->ninst)
				add_strv(&out->gone, &out->ngone, xstrdup(then->inst[k].id));
		}
	if (r.outside)
		add_strv(&out->notes, &out->nnotes,
			 xasprintf("%s is outside the repository: read as it is now", r.outside));
	ret = 0;
out:
	free(queue);
	for (size_t i = 0; i < changes.n; i++)
		free(changes.v[i]);
	free(changes.v);
	free(r.outside);
	orchd_pipeline_free(then);
	orchd_diags_release(&d);
	git_diff_free(diff);
	git_tree_free(tree);
	git_commit_free(commit);
	git_repository_free(repo);
	free(cwd);
	free(workdir);
	free(reldir);
	if (ret < 0)
		orchd_affected_release(out);
	return ret;
}

void orchd_affected_release(struct orchd_affected *a)
{
	for (size_t i = 0; i < a->ninst; i++)
		free(a->why[i]);
	free(a->why);
	for (size_t i = 0; i < a->ngone; i++)
		free(a->gone[i]);
	free(a->gone);
	for (size_t i = 0; i < a->nnotes; i++)
		free(a->notes[i]);
	free(a->notes);
	memset(a, 0, sizeof(*a));
}
