/*
 * core/loader: discovery of extension executables (the ExtensionLoader of
 * README's "Concepts", minus the handshake, which handlers/ does at run
 * time).
 *
 * The extension of type T is an executable file named orchd-ext-T in one
 * directory of the search path, in this order:
 *   1. each --extensions-dir DIR, in the order given;
 *   2. each directory of $ORCHD_EXTENSIONS_PATH (colon-separated, empty
 *      elements ignored);
 *   3. the per-user directory of `orchd ext install` (core/extpkg.h):
 *      $XDG_DATA_HOME/orchd/extensions or ~/.local/share/orchd/extensions;
 *   4. the installed directory ORCHD_PREFIX/libexec/orchd/extensions;
 *   5. the build tree: ../libexec/orchd/extensions relative to the
 *      directory of the running executable (/proc/self/exe).
 * With ORCHD_EXTENSIONS_PATH_ONLY=1 in the environment, 3 to 5 are left
 * out (tests use it to see only their own extensions).
 * Directories that do not exist are skipped; a directory met twice (same
 * device and inode) is scanned once.  The first executable orchd-ext-T
 * wins; later ones of the same type are kept, marked shadowed, so that
 * `orchd extensions` can show them.  Files named orchd-ext-T that are not
 * executable (or not regular files) are recorded with executable = 0 and
 * never used.
 *
 * A manifest orchd-ext-T.manifest.json beside the executable gives version,
 * protocol range, minimum orchd version and description without running
 * the extension; without one (or if it is unreadable) version is "?".
 *
 * Ownership: the registry owns every string in it; release it with
 * orchd_loader_release().  Nothing here prints or exits.
 */
#ifndef ORCHD_CORE_LOADER_H
#define ORCHD_CORE_LOADER_H

#include <stddef.h>

#include "orchd_protocol.h"

struct orchd_ext_info {
	char *type;		  /* T of orchd-ext-T */
	char *path;		  /* the executable */
	char *dir;		  /* the search-path directory it was found in */
	char *version;		  /* from the manifest, or "?" */
	char *description;	  /* from the manifest, or NULL */
	char *min_orchd;	  /* manifest's min_orchd_version, or NULL */
	int proto_min, proto_max; /* 0 when unknown */
	int secrets;		  /* manifest "secrets": true: it stores secret state or
			      outputs, so a run needs the passphrase up front */
	char *secrets_key;	  /* manifest "secrets": "KEY": it does when its config's
			      KEY is not empty (exec: "secret_outputs"); or NULL */
	/* manifest "isolation": what the extension needs under isolation
	 * strict: paths (as written: absolute, ~/..., or relative to the
	 * pipeline's directory) it reads or writes, network none, and names
	 * of variables of orchd's environment it is given (NULL-terminated
	 * lists, NULL when absent) */
	char **iso_read, **iso_write, **iso_env;
	int iso_network_none;
	/* manifest "tools": programs it runs, looked up on PATH by orchd
	 * doctor; "a|b" names alternatives (NULL-terminated, or NULL) */
	char **tools;
	/* manifest "argv_keys": top-level config keys whose values become a
	 * process's command line, visible to every local user in ps; a secret
	 * reaching one is warned about (NULL-terminated, or NULL) */
	char **argv_keys;
	/* manifest "watch_keys": top-level config keys whose values (a
	 * string or a list of strings) are paths, relative to the pipeline's
	 * directory, that orchd affected watches (NULL-terminated, or NULL) */
	char **watch_keys;
	int executable;	      /* 0: present but not usable */
	int shadowed;	      /* an earlier directory provides this type */
	char *manifest_error; /* why the manifest was ignored, or NULL */
};

struct orchd_registry {
	struct orchd_ext_info *v; /* in search-path order, then by type */
	size_t n, alloc;
	char **dirs; /* the search path actually used (existing or not) */
	size_t ndirs, dirs_alloc;
};

#define ORCHD_REGISTRY_INIT            \
	{                              \
		NULL, 0, 0, NULL, 0, 0 \
	}

/* Flags of orchd_loader_discover(). */
enum {
	ORCHD_LOADER_NO_ENV = 1 << 0,	  /* ignore $ORCHD_EXTENSIONS_PATH */
	ORCHD_LOADER_NO_BUILTIN = 1 << 1, /* skip the installed and build-tree dirs */
};

/*
 * Build the registry from the search path (dirs[0..ndirs) first).  Returns
 * 0; -1 only when a directory exists but cannot be read, with the reason in
 * err (the registry is still usable).
 */
int orchd_loader_discover(struct orchd_registry *r, const char *const *dirs, size_t ndirs,
			  unsigned flags, struct op_buf *err);

/*
 * The extension to use for type, or NULL with the reason in err (may be
 * NULL): "no extension for type 'T' (searched: ...)" or "extension 'T' at
 * PATH is not executable".
 */
const struct orchd_ext_info *orchd_loader_find(const struct orchd_registry *r, const char *type,
					       struct op_buf *err);

/*
 * The usable types (executable, not shadowed) in registry order: a
 * malloc'ed array of pointers into the registry (free only the array).
 */
const char **orchd_loader_types(const struct orchd_registry *r, size_t *n);

void orchd_loader_release(struct orchd_registry *r);

#endif
