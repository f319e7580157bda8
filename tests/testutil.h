/*
 * Helpers shared by the test suites.  Paths come from the environment that
 * `make check` sets: ORCHD_BUILD (the build tree, absolute) and ORCHD_SRC
 * (the source tree).  Returned strings are malloc'ed; the caller frees them.
 */
#ifndef ORCHD_TESTUTIL_H
#define ORCHD_TESTUTIL_H

#include <check.h>
#include <stdlib.h>

/* Every suite's constructor, from the generated list. */
#define SUITE(name) Suite *name##_suite(void);
#include "suites.h"
#undef SUITE

/* $ORCHD_SRC/rel (or ./rel). */
char *test_src_path(const char *rel);
/* $ORCHD_BUILD/rel (or build/rel). */
char *test_build_path(const char *rel);
/* Read a whole file; NULL on error.  *len receives the size. */
char *test_read_file(const char *path, size_t *len);
/* A fresh temporary directory (mkdtemp under $TMPDIR). */
char *test_tmpdir(void);
/* rm -rf path (best effort). */
void test_rmtree(const char *path);
/*
 * Run argv (argv[0] a path) with stdin from /dev/null, capture stdout and
 * stderr into malloc'ed strings (either pointer may be NULL to discard).
 * Returns the exit code, or 128+signal if killed, or -1 on spawn failure.
 */
int test_run(char *const argv[], char **out, char **err);

#endif
