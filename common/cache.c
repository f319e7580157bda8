#include "cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

char *orchd_cache_dir(const char *sub, char *err, size_t errlen)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	const char *sep = sub && *sub ? "/" : "";

	if (!sub)
		sub = "";
	if (xdg && xdg[0] == '/')
		return xasprintf("%s/orchd%s%s", xdg, sep, sub);
	if (home && home[0] == '/')
		return xasprintf("%s/.cache/orchd%s%s", home, sep, sub);
	snprintf(err, errlen,
		 "cannot locate the cache directory: neither XDG_CACHE_HOME "
		 "nor HOME is an absolute path");
	return NULL;
}

int orchd_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
	char *p = xstrdup(path), *s;
	struct stat st;

	for (s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			int e = errno;

			snprintf(err, errlen, "cannot create directory '%s': %s", p, strerror(e));
			free(p);
			errno = e; /* callers may format it themselves */
			return -1;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "cannot create directory '%s': %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "cannot create directory '%s': not a directory", path);
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}
