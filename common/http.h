/*
 * http: downloads and small requests over HTTP(S), with libcurl.
 *
 * Only orchd links this; extensions ask the core (the shared utilities of
 * README's "Concepts").  Every function returns 0 on success and -1 on
 * failure with a lowercase message (no final full stop) in the caller's
 * buffer err[errlen]; nothing is printed and no global error state is kept.
 * Messages name the URL with any password removed.
 *
 * Behaviour common to every request:
 *   - curl_global_init() runs once, on first use (orchd_http_global_init()
 *     may be called early, e.g. from main before threads exist).
 *   - Only http:// and https:// URLs, also for redirects; redirects are
 *     followed up to opts->max_redirects.
 *   - Any final status other than 2xx (>= 400, or a 3xx redirect that is
 *     not followed) is a failure whose message carries the status:
 *     "cannot download 'URL': http status 404".
 *   - Transient failures are retried opts->retries times with exponential
 *     backoff (retry_delay_ms, doubled each time, capped at
 *     retry_max_delay_ms; a Retry-After header may lengthen a wait up to that
 *     cap): connection failures, timeouts, empty replies, transfer errors,
 *     http 408, 429 and 5xx.  Not retried: other 4xx (404 is final), an
 *     oversize response, a local write error, a checksum mismatch.
 *   - Timeouts: connect_timeout_ms for the connection, timeout_ms for a
 *     whole attempt, stall_timeout_ms for a transfer that moves less than
 *     one byte a second that long (a server that accepts and never
 *     answers: 60 s by default, then retried like any timeout).
 *   - Proxies come from the environment, read by libcurl itself:
 *     http_proxy (lowercase only: HTTP_PROXY is ignored on purpose by
 *     libcurl, see "httpoxy"), https_proxy/HTTPS_PROXY, all_proxy/ALL_PROXY
 *     and no_proxy/NO_PROXY.  orchd sets no proxy option of its own.
 *   - CA certificates: CURL_CA_BUNDLE, else SSL_CERT_FILE, names the bundle
 *     file; SSL_CERT_DIR names a hashed certificate directory.  Unset, the
 *     libcurl build's default store is used.  No client certificates or
 *     credentials other than user:password in the URL itself.
 */
#ifndef ORCHD_HTTP_H
#define ORCHD_HTTP_H

#include <signal.h>
#include <stddef.h>

#include "hash.h"

struct op_buf;

struct orchd_http_opts {
	long connect_timeout_ms;
	long timeout_ms;	      /* per attempt, whole transfer */
	long stall_timeout_ms;	      /* no byte for this long: a timeout; 0: none */
	unsigned long long max_bytes; /* response body cap; 0: none */
	int retries;		      /* retries after the first attempt */
	long retry_delay_ms;	      /* first backoff */
	long retry_max_delay_ms;      /* backoff cap */
	long max_redirects;
	const char *cache_dir;	/* download cache root; NULL: default */
	int no_cache;		/* downloads bypass the cache */
	const char *user_agent; /* NULL: "orchd/VERSION" */
	/*
	 * Cancellation: when cancel is set and *cancel becomes nonzero (say,
	 * from a SIGTERM handler), the transfer and any backoff stop and the
	 * call fails with "cannot download 'URL': cancelled".  libcurl looks
	 * at it at least once a second, also while a server stalls.
	 */
	const volatile sig_atomic_t *cancel;
};

#define ORCHD_HTTP_OPTS_INIT                                                              \
	{                                                                                 \
		.connect_timeout_ms = 30000, .timeout_ms = 30 * 60 * 1000L,               \
		.stall_timeout_ms = 60000, .max_bytes = 4ULL << 30, .retries = 3,         \
		.retry_delay_ms = 1000, .retry_max_delay_ms = 30000, .max_redirects = 10, \
	}

/* Body cap of orchd_http_get() when called with opts == NULL. */
#define ORCHD_HTTP_GET_MAX (16u << 20)

void orchd_http_opts_init(struct orchd_http_opts *opts);

/* curl_global_init() once; later calls return the first result. */
int orchd_http_global_init(char *err, size_t errlen);

/*
 * Download url into the file dest (replaced atomically: the data goes to a
 * temporary file in dest's directory, which must exist, then is renamed).
 *
 * sha256 (64 hex digits, any case) may be NULL to skip verification; when
 * given, a mismatch fails with
 *   "sha256 mismatch for 'URL': expected HEX, got HEX"
 * and leaves nothing at dest (an existing dest is untouched).
 *
 * The cache: with sha256 given and !opts->no_cache, the content lives at
 * <cache>/sha256/<hex> where <cache> is opts->cache_dir or
 * ${XDG_CACHE_HOME:-~/.cache}/orchd/downloads.  A hit (a cached file whose
 * content still hashes to sha256) is copied to dest without any network I/O;
 * a cached file that no longer matches is removed and downloaded again.
 * Cache entries are written to a temporary file and renamed into place, so
 * concurrent downloads of the same content are safe.
 *
 * actual_sha256, if not NULL, receives the content's digest (useful when
 * sha256 is NULL, to pin it afterwards).  opts NULL: the defaults.
 */
int orchd_http_download(const char *url, const char *dest, const char *sha256,
			const struct orchd_http_opts *opts, char actual_sha256[ORCHD_SHA256_HEXSZ],
			char *err, size_t errlen);

/*
 * GET url into body (appended; body's own cap applies as well as
 * opts->max_bytes, or ORCHD_HTTP_GET_MAX when opts is NULL).  On failure
 * body is left empty.
 */
int orchd_http_get(const char *url, struct op_buf *body, const struct orchd_http_opts *opts,
		   char *err, size_t errlen);

/* malloc'ed copy of url with any password replaced by "***", for messages. */
char *orchd_http_redact(const char *url);

#endif
