/* core/loader: extension discovery on the search path (see loader.h). */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/extpkg.h"
#include "core/loader.h"
#include "orchd_protocol.h"
#include "util.h"

#define EXT_PREFIX	"orchd-ext-"
#define MANIFEST_SUFFIX ".manifest.json"
#define MANIFEST_MAX	(64 * 1024)

static void add_dir(struct orchd_registry *r, const char *dir)
{
	if (!*dir)
		return;
	ALLOC_GROW(r->dirs, r->ndirs + 1, r->dirs_alloc);
	r->dirs[r->ndirs++] = xstrdup(dir);
}

static char *manifest_str(json_object *m, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(m, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return xstrdup(json_object_get_string(v));
}

/* A NULL-terminated copy of the strings of the array at key, or NULL. */
static char **manifest_strv(json_object *m, const char *key)
{
	json_object *a = op_get(m, key);
	size_t n, k = 0;
	char **v;

	if (!json_object_is_type(a, json_type_array))
		return NULL;
	n = json_object_array_length(a);
	v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(a, i);

		if (json_object_is_type(s, json_type_string) && json_object_get_string_len(s))
			v[k++] = xstrdup(json_object_get_string(s));
	}
	return v;
}

static void free_strv(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

static void read_manifest(struct orchd_ext_info *e)
{
	char *path = xasprintf("%s" MANIFEST_SUFFIX, e->path);
	json_object *m = NULL, *proto, *v;
	struct stat st;

	if (stat(path, &st) < 0) {
		free(path);
		return; /* no manifest: version "?" */
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MANIFEST_MAX) {
		e->manifest_error = xasprintf("%s: not a regular file of at most 64 KiB", path);
		goto out;
	}
	m = json_object_from_file(path);
	if (!m || !json_object_is_type(m, json_type_object)) {
		e->manifest_error = xasprintf("%s: not a JSON object", path);
		goto out;
	}
	free(e->version);
	e->version = manifest_str(m, "version");
	if (!e->version)
		e->version = xstrdup("?");
	e->description = manifest_str(m, "description");
	e->min_orchd = manifest_str(m, "min_orchd_version");
	if (json_object_object_get_ex(m, "secrets", &v) &&
	    json_object_is_type(v, json_type_boolean))
		e->secrets = json_object_get_boolean(v);
	else if (v && json_object_is_type(v, json_type_string))
		e->secrets_key = xstrdup(json_object_get_string(v));
	if (json_object_is_type(op_get(m, "isolation"), json_type_object)) {
		json_object *iso = op_get(m, "isolation"), *paths = op_get(iso, "paths");

		e->iso_read = manifest_strv(paths, "read");
		e->iso_write = manifest_strv(paths, "write");
		e->iso_env = manifest_strv(iso, "env");
		e->iso_network_none =
			op_get_str(iso, "network") && !strcmp(op_get_str(iso, "network"), "none");
	}
	e->tools = manifest_strv(m, "tools");
	e->argv_keys = manifest_strv(m, "argv_keys");
	e->watch_keys = manifest_strv(m, "watch_keys");
	if (json_object_object_get_ex(m, "protocol", &proto) &&
	    json_object_is_type(proto, json_type_object)) {
		if (json_object_object_get_ex(proto, "min", &v) &&
		    json_object_is_type(v, json_type_int))
			e->proto_min = json_object_get_int(v);
		if (json_object_object_get_ex(proto, "max", &v) &&
		    json_object_is_type(v, json_type_int))
			e->proto_max = json_object_get_int(v);
	}
out:
	json_object_put(m);
	free(path);
}

static int type_ok(const char *t)
{
	size_t i;

	if (!*t || strlen(t) > 63)
		return 0;
	for (i = 0; t[i]; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
		      (t[i] >= '0' && t[i] <= '9') || (i && (t[i] == '_' || t[i] == '-'))))
			return 0;
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static const struct orchd_ext_info *find_usable(const struct orchd_registry *r, const char *type)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->v[i].executable && !strcmp(r->v[i].type, type))
			return &r->v[i];
	return NULL;
}

static int scan_dir(struct orchd_registry *r, const char *dir, struct op_buf *err)
{
	DIR *dh = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, alloc = 0, i;

	if (!dh) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		if (err)
			op_buf_addf(err, "cannot read extensions directory '%s': %s", dir,
				    strerror(errno));
		return -1;
	}
	while ((de = readdir(dh))) {
		const char *t = de->d_name;
		size_t len = strlen(t);

		if (strncmp(t, EXT_PREFIX, strlen(EXT_PREFIX)))
			continue;
		if (len > strlen(MANIFEST_SUFFIX) &&
		    !strcmp(t + len - strlen(MANIFEST_SUFFIX), MANIFEST_SUFFIX))
			continue;
		if (!type_ok(t + strlen(EXT_PREFIX)))
			continue;
		ALLOC_GROW(names, n + 1, alloc);
		names[n++] = xstrdup(t);
	}
	closedir(dh);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		struct orchd_ext_info *e;
		struct stat st;

		ALLOC_GROW(r->v, r->n + 1, r->alloc);
		e = &r->v[r->n];
		memset(e, 0, sizeof(*e));
		e->type = xstrdup(names[i] + strlen(EXT_PREFIX));
		e->path = xasprintf("%s/%s", dir, names[i]);
		e->dir = xstrdup(dir);
		e->version = xstrdup("?");
		e->executable =
			!stat(e->path, &st) && S_ISREG(st.st_mode) && !access(e->path, X_OK);
		e->shadowed = e->executable && find_usable(r, e->type) != NULL;
		r->n++;
		read_manifest(e);
		free(names[i]);
	}
	free(names);
	return 0;
}

static char *exe_relative_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	char *slash;

	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return xasprintf("%s/../libexec/orchd/extensions", buf);
}

int orchd_loader_discover(struct orchd_registry *r, const char *const *dirs, size_t ndirs,
			  unsigned flags, struct op_buf *err)
{
	struct {
		dev_t dev;
		ino_t ino;
	} * seen;
	size_t nseen = 0, i, j;
	const char *env;
	int ret = 0;

	for (i = 0; i < ndirs; i++)
		add_dir(r, dirs[i]);
	env = flags & ORCHD_LOADER_NO_ENV ? NULL : getenv("ORCHD_EXTENSIONS_PATH");
	if (env) {
		char *copy = xstrdup(env), *save = NULL, *tok;

		for (tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save))
			add_dir(r, tok);
		free(copy);
	}
	env = getenv("ORCHD_EXTENSIONS_PATH_ONLY");
	if (env && !strcmp(env, "1"))
		flags |= ORCHD_LOADER_NO_BUILTIN;
	if (!(flags & ORCHD_LOADER_NO_BUILTIN)) {
		char *rel = exe_relative_dir(), *user = orchd_extpkg_user_dir();

		if (user)
			add_dir(r, user);
		free(user);
		add_dir(r, ORCHD_PREFIX "/libexec/orchd/extensions");
		if (rel)
			add_dir(r, rel);
		free(rel);
	}
	seen = xcalloc(r->ndirs + 1, sizeof(*seen));
	for (i = 0; i < r->ndirs; i++) {
		struct stat st;

		if (stat(r->dirs[i], &st) < 0)
			continue;
		for (j = 0; j < nseen; j++)
			if (seen[j].dev == st.st_dev && seen[j].ino == st.st_ino)
				break;
		if (j < nseen)
			continue;
		seen[nseen].dev = st.st_dev;
		seen[nseen].ino = st.st_ino;
		nseen++;
		if (scan_dir(r, r->dirs[i], err) < 0)
			ret = -1;
	}
	free(seen);
	return ret;
}

const struct orchd_ext_info *orchd_loader_find(const struct orchd_registry *r, const char *type,
					       struct op_buf *err)
{
	const struct orchd_ext_info *e = find_usable(r, type);
	size_t i;

	if (e)
		return e;
	if (!err)
		return NULL;
	for (i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].type, type)) {
			op_buf_addf(err, "extension '%s' at %s is not executable", type,
				    r->v[i].path);
			return NULL;
		}
	op_buf_addf(err, "no extension for type '%s' (searched:", type);
	for (i = 0; i < r->ndirs; i++)
		op_buf_addf(err, " %s", r->dirs[i]);
	op_buf_addstr(err, r->ndirs ? ")" : " nothing)");
	return NULL;
}

const char **orchd_loader_types(const struct orchd_registry *r, size_t *n)
{
	const char **v = xcalloc(r->n + 1, sizeof(*v));
	size_t i;

	*n = 0;
	for (i = 0; i < r->n; i++)
		if (r->v[i].executable && !r->v[i].shadowed)
			v[(*n)++] = r->v[i].type;
	return v;
}

void orchd_loader_release(struct orchd_registry *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		struct orchd_ext_info *e = &r->v[i];

		free(e->type);
		free(e->path);
		free(e->dir);
		free(e->version);
		free(e->description);
		free(e->min_orchd);
		free(e->manifest_error);
		free_strv(e->iso_read);
		free_strv(e->iso_write);
		free_strv(e->iso_env);
		free_strv(e->argv_keys);
		free_strv(e->watch_keys);
		free(e->secrets_key);
		free_strv(e->tools);
	}
	free(r->v);
	for (i = 0; i < r->ndirs; i++)
		free(r->dirs[i]);
	free(r->dirs);
	memset(r, 0, sizeof(*r));
}
