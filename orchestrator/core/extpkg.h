/*
 * core/extpkg: extension packages -- `orchd ext install | list | remove |
 * upgrade`, the lock file orchd.lock, and the check of a pipeline's
 * core.extensions against it (README "Extension packages", PROTOCOL.md
 * §2.4).
 *
 * A package is a directory whose root holds one manifest
 * orchd-ext-TYPE.manifest.json (with, beyond §2.3, "build": a shell command
 * that leaves an executable orchd-ext-TYPE at the root, and "needs":
 * programs that must be on PATH).  A source is a local directory,
 * git+URL@REF (a tag or a commit id), an http(s) tarball with its sha256,
 * or pip:REQUIREMENT (a venv of its own).
 *
 * An extensions directory DIR holds, per installed type, the symlinks
 * DIR/orchd-ext-TYPE and DIR/orchd-ext-TYPE.manifest.json into
 * DIR/.orchd-pkgs/PKG/, the package as built, with its receipt
 * .orchd-package.json (name, version, source, ref, commit, path, sha256,
 * digest).  A new version is placed beside the old one and the symlinks are
 * switched by rename(2): a run that starts meanwhile sees one or the other,
 * never a half-built package.
 *
 * The digest of a package is the sha256 of its tree as fetched (before the
 * build), .git excluded: see PROTOCOL.md §2.4 for the exact byte stream.
 *
 * Errors: the functions print "orchd: error: ..." on stderr and return an
 * exit code (ORCHD_EXIT_OK, _USAGE for a bad source, manifest or a lock out
 * of date, _SYSTEM for a fetch, checksum, build or compatibility failure).
 */
#ifndef ORCHD_CORE_EXTPKG_H
#define ORCHD_CORE_EXTPKG_H

#include <stdio.h>

struct orchd_pipeline;
struct orchd_registry;
struct orchd_diags;

struct orchd_extpkg_opts {
	const char *dir;      /* --dir: the extensions directory; NULL: see below */
	int system;	      /* --system: PREFIX/libexec/orchd/extensions */
	const char *sha256;   /* --sha256: of a tarball source */
	const char *path;     /* --path: the package's subdirectory of a git source */
	const char *pipeline; /* --pipeline: record in orchd.lock beside it */
	int frozen;	      /* --frozen: --from never changes the lock */
	FILE *out;	      /* progress and results; NULL: stdout */
};

/* The per-user extensions directory (malloc'ed):
 * $XDG_DATA_HOME/orchd/extensions, else ~/.local/share/orchd/extensions;
 * NULL when neither variable is set. */
char *orchd_extpkg_user_dir(void);

/* orchd ext install SOURCE. */
int orchd_extpkg_install(const char *source, const struct orchd_extpkg_opts *o);
/* orchd ext install --from PIPELINE (p: its model, as loaded). */
int orchd_extpkg_install_from(const struct orchd_pipeline *p, const struct orchd_extpkg_opts *o);
/* orchd ext list. */
int orchd_extpkg_list(const struct orchd_extpkg_opts *o);
/* orchd ext remove TYPE. */
int orchd_extpkg_remove(const char *type, const struct orchd_extpkg_opts *o);
/* orchd ext upgrade TYPE [SOURCE] (source may be NULL). */
int orchd_extpkg_upgrade(const char *type, const char *source, const struct orchd_extpkg_opts *o);

/*
 * The check of `orchd run` and every command that loads a pipeline: each
 * type of p's core.extensions must be in orchd.lock (beside p's file) with
 * the source and version declared, and the extension the registry finds
 * for it must be that package (its receipt's digest).  0, or -1 with one
 * error per mismatch added to d (at the declaration's position).
 */
int orchd_extpkg_check(const struct orchd_pipeline *p, const struct orchd_registry *reg,
		       struct orchd_diags *d);

#endif
