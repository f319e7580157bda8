/*
 * cache: where orchd keeps its caches, and a mkdir -p.
 *
 * The root is ${XDG_CACHE_HOME}/orchd when XDG_CACHE_HOME is set to an
 * absolute path, else ${HOME}/.cache/orchd (the XDG base directory rule).
 * Tests set XDG_CACHE_HOME to a temporary directory to stay hermetic.
 */
#ifndef ORCHD_CACHE_H
#define ORCHD_CACHE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * malloc'ed "<root>/<sub>" (sub may be NULL for the root itself); the
 * directory is not created.  NULL with err filled when neither
 * XDG_CACHE_HOME nor HOME gives an absolute path.
 */
char *orchd_cache_dir(const char *sub, char *err, size_t errlen);

/* mkdir -p path with mode for the directories it creates.  0 or -1 (err). */
int orchd_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);

#endif
