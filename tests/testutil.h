/*
 * Helpers shared by the test suites.  Paths come from the environment that
 * `make check` sets: ORCHD_BUILD (the build tree, absolute) and ORCHD_SRC
 * (the source tree).  Returned strings are malloc'ed; the caller frees them.
 */
#ifndef ORCHD_TESTUTIL_H
#define ORCHD_TESTUTIL_H

#include <check.h>
#include <stdlib.h>
#include <sys/types.h>

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
 * The example extension of examples/extensions/SUB (python, sh) laid out
 * in dir as installed: its executable and manifest, with the SDK it loads
 * beside them (protocol/sdk/SUB: orchd_sdk/ or orchd.sh).  Under isolation
 * strict an extension under /tmp sees its own directory, not the source
 * tree around it.  Returns 0, or -1 on failure.
 */
int test_install_example(const char *sub, const char *dir);
/*
 * Run argv (argv[0] a path) with stdin from /dev/null, capture stdout and
 * stderr into malloc'ed strings (either pointer may be NULL to discard).
 * Returns the exit code, or 128+signal if killed, or -1 on spawn failure.
 */
int test_run(char *const argv[], char **out, char **err);
/* Is a process running whose command line (its arguments joined by
 * spaces) contains text? */
int test_process_with_arg(const char *text);

/* A TCP port of 127.0.0.1 free a moment ago (bound, then closed). */
/* A copy of the pipeline file src beside it with core.engine set to the
 * YAML flow mapping engine (say "{type: pulumi}").  Returns its path, to
 * unlink and free. */
char *test_engine_variant(const char *src, const char *engine);
int test_free_port(void);
/* Does something accept connections on 127.0.0.1:port? */
int test_can_connect(int port);

/*
 * The loopback HTTP server tests/helpers/httpd.py (python3), for suites
 * that need real HTTP.  Its stdin is a pipe we hold, so it exits with us.
 * Initialise with TEST_HTTPD_INIT; port is valid after a successful start.
 */
struct test_httpd {
	pid_t pid;
	int stdin_fd;
	int port;
};
#define TEST_HTTPD_INIT   \
	{                 \
		-1, -1, 0 \
	}

/*
 * Start the server (with TLS when cert and key are given: PEM paths) and
 * wait (up to 20 s) for the port it prints.  Returns 0, or -1 on failure.
 */
int test_httpd_start(struct test_httpd *h, const char *cert, const char *key);
/* SIGTERM and reap the server; a no-op if it is not running. */
void test_httpd_stop(struct test_httpd *h);

#endif
