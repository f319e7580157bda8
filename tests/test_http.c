/*
 * Tests of common/http: a real HTTP server (tests/helpers/httpd.py) on
 * 127.0.0.1 with an ephemeral port, one per test, and a private
 * XDG_CACHE_HOME.  The server counts requests per path (/_stats/PATH).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "fetch.h"
#include "hash.h"
#include "http.h"
#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

static struct test_httpd srv = TEST_HTTPD_INIT;
static char *tmp;   /* scratch directory */
static char *cache; /* $XDG_CACHE_HOME */

static char *url(const char *path)
{
	return xasprintf("http://127.0.0.1:%d%s", srv.port, path);
}

/* Requests the server saw for path. */
static long server_count(const char *path)
{
	struct op_buf body = OP_BUF_INIT;
	char err[512], *u = xasprintf("http://127.0.0.1:%d/_stats%s", srv.port, path);
	long n = -1;

	if (orchd_http_get(u, &body, NULL, err, sizeof(err)) == 0)
		n = atol(op_buf_str(&body));
	else
		fprintf(stderr, "%s\n", err);
	op_buf_release(&body);
	free(u);
	return n;
}

/* The server's fixed content pattern, and its digest. */
static char *pattern(size_t n)
{
	static const char pat[] = "orchd-test-data\n";
	char *p = xmalloc(n + 1);
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = pat[i % (sizeof(pat) - 1)];
	p[n] = '\0';
	return p;
}

static void pattern_sha(size_t n, char hex[ORCHD_SHA256_HEXSZ])
{
	char *p = pattern(n);

	ck_assert_int_eq(orchd_sha256_hex(p, n, hex), 0);
	free(p);
}

static void unset_proxies(void)
{
	static const char *const vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
					   "all_proxy",	 "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(vars); i++)
		unsetenv(vars[i]);
}

static void setup(void)
{
	tmp = test_tmpdir();
	ck_assert_ptr_nonnull(tmp);
	cache = xasprintf("%s/cache", tmp);
	setenv("XDG_CACHE_HOME", cache, 1);
	unset_proxies();
	ck_assert_int_eq(test_httpd_start(&srv, NULL, NULL), 0);
}

static void teardown(void)
{
	test_httpd_stop(&srv);
	unset_proxies();
	test_rmtree(tmp);
	free(tmp);
	free(cache);
}

/* Fast retries for the tests; real defaults wait a second. */
static struct orchd_http_opts fast_opts(void)
{
	struct orchd_http_opts o = ORCHD_HTTP_OPTS_INIT;

	o.retry_delay_ms = 10;
	o.retry_max_delay_ms = 40;
	o.connect_timeout_ms = 5000;
	o.timeout_ms = 10000;
	return o;
}

static int file_equals(const char *path, const char *data, size_t n)
{
	size_t len = 0;
	char *got = test_read_file(path, &len);
	int eq = got && len == n && memcmp(got, data, n) == 0;

	free(got);
	return eq;
}

/* Number of entries in dir other than . and .. */
static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

START_TEST(test_download_verified_and_cached)
{
	struct orchd_http_opts o = fast_opts();
	char sha[ORCHD_SHA256_HEXSZ], actual[ORCHD_SHA256_HEXSZ], err[512];
	char *u = url("/bytes/100000"), *dest = xasprintf("%s/out.bin", tmp);
	char *entry, *data = pattern(100000);

	pattern_sha(100000, sha);
	ck_assert_msg(orchd_http_download(u, dest, sha, &o, actual, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert(file_equals(dest, data, 100000));
	ck_assert_str_eq(actual, sha);
	entry = xasprintf("%s/orchd/downloads/sha256/%s", cache, sha);
	ck_assert(file_equals(entry, data, 100000));
	ck_assert_int_eq(dir_entries(tmp), 2); /* cache/ and out.bin: no temp files */
	ck_assert_int_eq(server_count("/bytes/100000"), 1);
	free(entry);
	free(data);
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_download_uppercase_sha_and_no_sha)
{
	struct orchd_http_opts o = fast_opts();
	char sha[ORCHD_SHA256_HEXSZ], actual[ORCHD_SHA256_HEXSZ], err[512];
	char *u = url("/chunked/20000"), *dest = xasprintf("%s/out.bin", tmp);
	size_t i;

	pattern_sha(20000, sha);
	/* without a digest: downloaded, not cached, digest reported */
	ck_assert_msg(orchd_http_download(u, dest, NULL, &o, actual, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_str_eq(actual, sha);
	ck_assert_int_eq(dir_entries(tmp), 1);
	for (i = 0; sha[i]; i++)
		if (sha[i] >= 'a')
			sha[i] = (char)(sha[i] - 'a' + 'A');
	ck_assert_msg(orchd_http_download(u, dest, sha, &o, NULL, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_int_eq(server_count("/chunked/20000"), 2);
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_checksum_mismatch)
{
	struct orchd_http_opts o = fast_opts();
	char real[ORCHD_SHA256_HEXSZ], err[512], expect[1024];
	const char *wrong = "0000000000000000000000000000000000000000000000000000000000000000";
	char *u = url("/bytes/100"), *dest = xasprintf("%s/out.bin", tmp);

	pattern_sha(100, real);
	ck_assert_int_eq(orchd_http_download(u, dest, wrong, &o, NULL, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "sha256 mismatch for '%s': expected %s, got %s", u, wrong,
		 real);
	ck_assert_str_eq(err, expect);
	ck_assert_int_eq(access(dest, F_OK), -1);
	ck_assert_int_eq(dir_entries(tmp), 1); /* only cache/ */
	{
		char *dir = xasprintf("%s/orchd/downloads/sha256", cache);

		ck_assert_int_eq(dir_entries(dir), 0);
		free(dir);
	}
	/* not retried: the content would not change */
	ck_assert_int_eq(server_count("/bytes/100"), 1);

	/* an existing destination is left alone */
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(orchd_http_download(u, dest, wrong, &o, NULL, err, sizeof(err)), -1);
	{
		char *data = pattern(100);

		ck_assert(file_equals(dest, data, 100));
		free(data);
	}
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_404_not_retried)
{
	struct orchd_http_opts o = fast_opts();
	char err[512], expect[512];
	char *u = url("/status/404"), *dest = xasprintf("%s/out.bin", tmp);

	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "cannot download '%s': http status 404", u);
	ck_assert_str_eq(err, expect);
	ck_assert_int_eq(server_count("/status/404"), 1);
	ck_assert_int_eq(dir_entries(tmp), 0);
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_500_then_200_retried)
{
	struct orchd_http_opts o = fast_opts();
	char err[512], expect[512], sha[ORCHD_SHA256_HEXSZ];
	char *u = url("/flaky/a/2/500"), *dest = xasprintf("%s/out.bin", tmp);

	pattern_sha(16, sha);
	ck_assert_msg(orchd_http_download(u, dest, sha, &o, NULL, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert(file_equals(dest, "orchd-test-data\n", 16));
	ck_assert_int_eq(server_count("/flaky/a/2/500"), 3);
	free(u);

	/* retries run out */
	u = url("/flaky/b/10/503");
	o.retries = 2;
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "cannot download '%s': http status 503 (after 3 attempts)",
		 u);
	ck_assert_str_eq(err, expect);
	ck_assert_int_eq(server_count("/flaky/b/10/503"), 3);
	free(u);

	/* 429 with Retry-After is transient too */
	u = url("/retry-after/c/0");
	ck_assert_msg(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_int_eq(server_count("/retry-after/c/0"), 2);
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_timeout)
{
	struct orchd_http_opts o = fast_opts();
	char err[512], prefix[512];
	char *u = url("/slow/3000"), *dest = xasprintf("%s/out.bin", tmp);

	o.timeout_ms = 200;
	o.retries = 0;
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(prefix, sizeof(prefix), "cannot download '%s': Operation timed out after ", u);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "%s", err);
	ck_assert_int_eq(dir_entries(tmp), 0);
	free(dest);
	free(u);
}
END_TEST

/* A server that accepts and sends nothing is a timeout after the stall
 * timeout, long before the whole-transfer timeout. */
START_TEST(test_stall_timeout)
{
	struct orchd_http_opts o = fast_opts();
	char err[512], prefix[512];
	char *u = url("/slow/20000"), *dest = xasprintf("%s/out.bin", tmp);

	o.stall_timeout_ms = 1000;
	o.timeout_ms = 60000;
	o.retries = 0;
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(prefix, sizeof(prefix), "cannot download '%s': Operation too slow", u);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "%s", err);
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_connect_refused_retried)
{
	struct orchd_http_opts o = fast_opts();
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	char err[512], *u, *dest = xasprintf("%s/out.bin", tmp);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* a port that was free a moment ago and has no listener */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	u = xasprintf("http://127.0.0.1:%d/bytes/16", ntohs(sa.sin_port));
	o.retries = 2;
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "(after 3 attempts)") != NULL, "%s", err);
	ck_assert_msg(strncmp(err, "cannot download 'http://127.0.0.1:", 34) == 0, "%s", err);
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_cache_hit_makes_no_request)
{
	struct orchd_http_opts o = fast_opts();
	char sha[ORCHD_SHA256_HEXSZ], err[512];
	char *u = url("/bytes/5000"), *d1 = xasprintf("%s/one", tmp),
	     *d2 = xasprintf("%s/two", tmp);
	char *data = pattern(5000), *entry;

	pattern_sha(5000, sha);
	ck_assert_msg(orchd_http_download(u, d1, sha, &o, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(server_count("/bytes/5000"), 1);
	ck_assert_msg(orchd_http_download(u, d2, sha, &o, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(server_count("/bytes/5000"), 1);
	ck_assert(file_equals(d2, data, 5000));

	/* a corrupt cache entry is replaced by a fresh download */
	entry = xasprintf("%s/orchd/downloads/sha256/%s", cache, sha);
	{
		FILE *f = fopen(entry, "w");

		ck_assert_ptr_nonnull(f);
		fputs("corrupt", f);
		fclose(f);
	}
	ck_assert_msg(orchd_http_download(u, d2, sha, &o, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(server_count("/bytes/5000"), 2);
	ck_assert(file_equals(entry, data, 5000));

	/* with the server gone, the cache still serves */
	test_httpd_stop(&srv);
	unlink(d2);
	ck_assert_msg(orchd_http_download(u, d2, sha, &o, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert(file_equals(d2, data, 5000));

	/* no_cache goes to the network, which is now gone */
	o.no_cache = 1;
	o.retries = 0;
	ck_assert_int_eq(orchd_http_download(u, d2, sha, &o, NULL, err, sizeof(err)), -1);
	free(entry);
	free(data);
	free(d1);
	free(d2);
	free(u);
}
END_TEST

START_TEST(test_max_size)
{
	struct orchd_http_opts o = fast_opts();
	char err[512], expect[512];
	char *u = url("/bytes/5000"), *dest = xasprintf("%s/out.bin", tmp);

	o.max_bytes = 1000;
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect),
		 "cannot download '%s': response larger than the maximum of 1000 bytes", u);
	ck_assert_str_eq(err, expect);
	ck_assert_int_eq(server_count("/bytes/5000"), 1);
	free(u);

	/* no Content-Length: the limit is enforced while receiving */
	u = url("/chunked/5000");
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect),
		 "cannot download '%s': response larger than the maximum of 1000 bytes", u);
	ck_assert_str_eq(err, expect);
	ck_assert_int_eq(server_count("/chunked/5000"), 1);
	ck_assert_int_eq(dir_entries(tmp), 0);

	o.max_bytes = 5000; /* exactly at the limit is fine */
	ck_assert_msg(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)) == 0, "%s",
		      err);
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_redirects_bounded)
{
	struct orchd_http_opts o = fast_opts();
	char err[512], expect[512];
	char *u = url("/redirect/3"), *dest = xasprintf("%s/out.bin", tmp);

	ck_assert_msg(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert(file_equals(dest, "orchd-test-data\n", 16));
	o.max_redirects = 2;
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "cannot download '%s': Maximum (2) redirects followed", u);
	ck_assert_str_eq(err, expect);
	/* redirects off: the 302 itself is a failure, not content */
	o.max_redirects = 0;
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "cannot download '%s': http status 302", u);
	ck_assert_str_eq(err, expect);
	ck_assert(file_equals(dest, "orchd-test-data\n", 16));
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_get)
{
	struct orchd_http_opts o = fast_opts();
	struct op_buf body = OP_BUF_INIT;
	char err[512], expect[512];
	char *u = url("/bytes/40");

	op_buf_addstr(&body, "keep:");
	ck_assert_msg(orchd_http_get(u, &body, &o, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(op_buf_str(&body), "keep:orchd-test-data\norchd-test-data\norchd-te");
	free(u);

	u = url("/status/500");
	o.retries = 1;
	ck_assert_int_eq(orchd_http_get(u, &body, &o, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "cannot download '%s': http status 500 (after 2 attempts)",
		 u);
	ck_assert_str_eq(err, expect);
	ck_assert_uint_eq(body.len, 0);
	free(u);

	/* the buffer's own cap is a size limit too */
	u = url("/bytes/100");
	op_buf_init(&body, 50);
	ck_assert_int_eq(orchd_http_get(u, &body, &o, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "response larger than the maximum") != NULL, "%s", err);
	ck_assert_int_eq(server_count("/bytes/100"), 1);
	op_buf_release(&body);
	free(u);

	u = xasprintf("ftp://127.0.0.1:%d/x", srv.port);
	ck_assert_int_eq(orchd_http_get(u, &body, &o, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect),
		 "cannot download '%s': Protocol \"ftp\" not supported or disabled in libcurl", u);
	ck_assert_str_eq(err, expect);
	free(u);
}
END_TEST

START_TEST(test_invalid_sha_and_redaction)
{
	char err[512], *dest = xasprintf("%s/out.bin", tmp), *r;

	ck_assert_int_eq(orchd_http_download("http://user:secret@127.0.0.1:1/x", dest, "abc", NULL,
					     NULL, err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err, "invalid sha256 'abc' for 'http://user:***@127.0.0.1:1/x': expected "
			      "64 hex digits");
	r = orchd_http_redact("https://tok@127.0.0.1/a?b=c");
	ck_assert_str_eq(r, "https://tok@127.0.0.1/a?b=c");
	free(r);
	r = orchd_http_redact("/not/a/url");
	ck_assert_str_eq(r, "/not/a/url");
	free(r);
	ck_assert_int_eq(dir_entries(tmp), 0);
	free(dest);
}
END_TEST

static volatile sig_atomic_t cancel_flag;

static void on_alarm(int sig)
{
	(void)sig;
	cancel_flag = 1;
}

/* Set cancel_flag from a SIGALRM handler, ms from now (as a SIGTERM
 * handler in orchd would). */
static void cancel_in(long ms)
{
	struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};

	cancel_flag = 0;
	signal(SIGALRM, on_alarm);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

START_TEST(test_cancel)
{
	struct orchd_http_opts o = fast_opts();
	char err[512], expect[512];
	char *u = url("/bytes/16"), *dest = xasprintf("%s/out.bin", tmp);

	/* already cancelled: no request at all */
	o.cancel = &cancel_flag;
	cancel_flag = 1;
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "cannot download '%s': cancelled", u);
	ck_assert_str_eq(err, expect);
	ck_assert_int_eq(server_count("/bytes/16"), 0);
	free(u);

	/* during a stalled response (no retries: the abort itself must say so) */
	u = url("/slow/20000");
	o.retries = 0;
	cancel_in(100);
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "cannot download '%s': cancelled", u);
	ck_assert_str_eq(err, expect);
	free(u);

	/* during the backoff between attempts */
	u = url("/status/503");
	o.retries = 3;
	o.retry_delay_ms = o.retry_max_delay_ms = 20000;
	cancel_in(100);
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "cannot download '%s': cancelled", u);
	ck_assert_str_eq(err, expect);
	ck_assert_int_eq(server_count("/status/503"), 1);
	ck_assert_int_eq(access(dest, F_OK), -1);
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_proxy_from_environment)
{
	struct orchd_http_opts o = fast_opts();
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	char err[512], *proxy = xasprintf("http://127.0.0.1:%d", srv.port), *closed;
	char *dest = xasprintf("%s/out.bin", tmp), *u;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* http_proxy: a name that cannot resolve is reached through the proxy */
	setenv("http_proxy", proxy, 1);
	ck_assert_msg(orchd_http_download("http://orchd-proxy-test.invalid/bytes/16", dest, NULL,
					  &o, NULL, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert(file_equals(dest, "orchd-test-data\n", 16));
	ck_assert_int_eq(server_count("/proxy:/bytes/16"), 1);

	/* no_proxy: direct connection although the proxy is unreachable */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	closed = xasprintf("http://127.0.0.1:%d", ntohs(sa.sin_port));
	setenv("http_proxy", closed, 1);
	setenv("no_proxy", "127.0.0.1", 1);
	u = url("/bytes/17");
	ck_assert_msg(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_int_eq(server_count("/bytes/17"), 1);
	ck_assert_int_eq(server_count("/proxy:/bytes/17"), 0);

	/* without no_proxy the dead proxy is used, and fails */
	unsetenv("no_proxy");
	o.retries = 0;
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);

	/* upper-case HTTP_PROXY is ignored by libcurl (httpoxy) */
	unsetenv("http_proxy");
	setenv("HTTP_PROXY", closed, 1);
	ck_assert_msg(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_int_eq(server_count("/bytes/17"), 2);
	free(closed);
	free(proxy);
	free(dest);
	free(u);
}
END_TEST

START_TEST(test_fetch_url_source)
{
	struct orchd_fetch_opts fo;
	char sha[ORCHD_SHA256_HEXSZ], err[512], *spec_text, *path;
	json_object *spec, *res = NULL;
	char *u = url("/bytes/64");

	orchd_fetch_opts_init(&fo);
	fo.http = fast_opts();
	pattern_sha(64, sha);
	spec_text = xasprintf("{\"url\": \"%s\", \"sha256\": \"%s\", \"dest\": \"sub/data.bin\"}",
			      u, sha);
	spec = json_tokener_parse(spec_text);
	ck_assert_ptr_nonnull(spec);
	ck_assert_msg(orchd_fetch_source(spec, tmp, &fo, &res, err, sizeof(err)) == 0, "%s", err);
	path = xasprintf("%s/sub/data.bin", tmp);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(res, "path")), path);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(res, "sha256")), sha);
	ck_assert_int_eq(access(path, F_OK), 0);
	json_object_put(res);
	json_object_put(spec);
	free(spec_text);
	free(path);

	/* without dest: the last segment of the URL path */
	spec_text = xasprintf("{\"url\": \"%s\", \"sha256\": \"%s\"}", u, sha);
	spec = json_tokener_parse(spec_text);
	ck_assert_msg(orchd_fetch_source(spec, tmp, &fo, NULL, err, sizeof(err)) == 0, "%s", err);
	path = xasprintf("%s/64", tmp);
	ck_assert_int_eq(access(path, F_OK), 0);
	json_object_put(spec);
	free(spec_text);
	free(path);
	free(u);
}
END_TEST

/* --- https: a self-signed certificate for 127.0.0.1, made by openssl(1) --- */

static char *cert, *certdir;

static char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char *copy = xstrdup(path ? path : "/usr/bin:/bin"), *dir, *save = NULL, *found = NULL;

	for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", *dir ? dir : ".", name);

		if (access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(copy);
	return found;
}

static char *run_openssl(const char *const *args)
{
	char *argv[24], *out = NULL, *err = NULL;
	size_t n = 0;
	int rc;

	argv[n++] = find_in_path("openssl");
	ck_assert_ptr_nonnull(argv[0]);
	for (; *args && n < ARRAY_SIZE(argv) - 1; args++)
		argv[n++] = xstrdup(*args);
	argv[n] = NULL;
	rc = test_run(argv, &out, &err);
	ck_assert_msg(rc == 0, "openssl %s: %s", argv[1], err ? err : "");
	while (n)
		free(argv[--n]);
	free(err);
	return out;
}

static void tls_setup(void)
{
	char *key, *hash, *link;

	tmp = test_tmpdir();
	ck_assert_ptr_nonnull(tmp);
	cache = xasprintf("%s/cache", tmp);
	setenv("XDG_CACHE_HOME", cache, 1);
	unset_proxies();
	cert = xasprintf("%s/cert.pem", tmp);
	key = xasprintf("%s/key.pem", tmp);
	{
		const char *args[] = {"req",
				      "-x509",
				      "-newkey",
				      "ec",
				      "-pkeyopt",
				      "ec_paramgen_curve:prime256v1",
				      "-nodes",
				      "-keyout",
				      key,
				      "-out",
				      cert,
				      "-days",
				      "2",
				      "-subj",
				      "/CN=127.0.0.1",
				      "-addext",
				      "subjectAltName=IP:127.0.0.1",
				      NULL};

		free(run_openssl(args));
	}
	{
		const char *args[] = {"x509", "-hash", "-noout", "-in", cert, NULL};

		hash = run_openssl(args);
		hash[strcspn(hash, "\n")] = '\0';
	}
	/* a hashed certificate directory, as SSL_CERT_DIR wants */
	certdir = xasprintf("%s/certs", tmp);
	ck_assert_int_eq(mkdir(certdir, 0755), 0);
	link = xasprintf("%s/%s.0", certdir, hash);
	ck_assert_int_eq(symlink(cert, link), 0);
	ck_assert_int_eq(test_httpd_start(&srv, cert, key), 0);
	free(link);
	free(hash);
	free(key);
}

static void tls_teardown(void)
{
	teardown();
	free(cert);
	free(certdir);
}

START_TEST(test_https_ca_from_environment)
{
	struct orchd_http_opts o = fast_opts();
	char err[1024], prefix[512];
	char *u = xasprintf("https://127.0.0.1:%d/bytes/16", srv.port);
	char *dest = xasprintf("%s/out.bin", tmp);

	o.retries = 0;
	unsetenv("SSL_CERT_FILE");
	unsetenv("SSL_CERT_DIR");
	setenv("CURL_CA_BUNDLE", cert, 1);
	ck_assert_msg(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert(file_equals(dest, "orchd-test-data\n", 16));

	/* CURL_CA_BUNDLE wins over SSL_CERT_FILE */
	setenv("SSL_CERT_FILE", cert, 1);
	setenv("CURL_CA_BUNDLE", "/dev/null", 1);
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(prefix, sizeof(prefix), "cannot download '%s': ", u);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "%s", err);

	unsetenv("CURL_CA_BUNDLE");
	ck_assert_msg(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)) == 0, "%s",
		      err);

	/* SSL_CERT_DIR, a hashed directory, next to the default bundle */
	unsetenv("SSL_CERT_FILE");
	setenv("SSL_CERT_DIR", certdir, 1);
	ck_assert_msg(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)) == 0, "%s",
		      err);

	/* a store without our certificate: verification fails, no retry */
	unsetenv("SSL_CERT_DIR");
	o.retries = 3;
	ck_assert_int_eq(orchd_http_download(u, dest, NULL, &o, NULL, err, sizeof(err)), -1);
	snprintf(prefix, sizeof(prefix), "cannot download '%s': SSL certificate problem: ", u);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "%s", err);
	ck_assert_msg(strstr(err, "attempts") == NULL, "%s", err);
	free(dest);
	free(u);
}
END_TEST

Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_download_verified_and_cached);
	tcase_add_test(tc, test_download_uppercase_sha_and_no_sha);
	tcase_add_test(tc, test_checksum_mismatch);
	tcase_add_test(tc, test_404_not_retried);
	tcase_add_test(tc, test_500_then_200_retried);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_stall_timeout);
	tcase_add_test(tc, test_connect_refused_retried);
	tcase_add_test(tc, test_cache_hit_makes_no_request);
	tcase_add_test(tc, test_max_size);
	tcase_add_test(tc, test_redirects_bounded);
	tcase_add_test(tc, test_get);
	tcase_add_test(tc, test_invalid_sha_and_redaction);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_proxy_from_environment);
	tcase_add_test(tc, test_fetch_url_source);
	suite_add_tcase(s, tc);

	tc = tcase_create("https");
	tcase_add_checked_fixture(tc, tls_setup, tls_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_https_ca_from_environment);
	suite_add_tcase(s, tc);
	return s;
}
