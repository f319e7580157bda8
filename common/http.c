#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cache.h"
#include "orchd_protocol.h"
#include "util.h"

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_init_result;

static void http_do_global_init(void)
{
	http_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int orchd_http_global_init(char *err, size_t errlen)
{
	pthread_once(&http_once, http_do_global_init);
	if (http_init_result != CURLE_OK) {
		snprintf(err, errlen, "cannot initialise libcurl: %s",
			 curl_easy_strerror(http_init_result));
		return -1;
	}
	return 0;
}

void orchd_http_opts_init(struct orchd_http_opts *opts)
{
	struct orchd_http_opts dflt = ORCHD_HTTP_OPTS_INIT;

	*opts = dflt;
}

char *orchd_http_redact(const char *url)
{
	CURLU *u = curl_url();
	char *pw = NULL, *out = NULL, *ret;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PASSWORD, &pw, 0) == CURLUE_OK && pw &&
	    curl_url_set(u, CURLUPART_PASSWORD, "***", 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK) {
		ret = xstrdup(out);
	} else {
		ret = xstrdup(url);
	}
	curl_free(pw);
	curl_free(out);
	curl_url_cleanup(u);
	return ret;
}

/* Where one attempt's body goes. */
struct http_sink {
	int fd;			   /* a file, or -1 */
	const char *path;	   /* for messages */
	struct op_buf *body;	   /* or a buffer */
	struct orchd_sha256 *hash; /* may be NULL */
	unsigned long long max, got;
	int too_big;
	int write_errno; /* local write failure */
};

static int sink_reset(struct http_sink *s)
{
	s->got = 0;
	s->too_big = 0;
	s->write_errno = 0;
	if (s->body)
		op_buf_reset(s->body);
	if (s->hash && orchd_sha256_reset(s->hash) < 0)
		return -1;
	if (s->fd >= 0 && (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0)) {
		s->write_errno = errno;
		return -1;
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static size_t sink_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct http_sink *s = userdata;
	size_t n = size * nmemb;

	if (s->max && (n > s->max || s->got > s->max - n)) {
		s->too_big = 1;
		return 0;
	}
	if (s->fd >= 0 && write_all(s->fd, data, n) < 0) {
		s->write_errno = errno;
		return 0;
	}
	if (s->body && op_buf_add(s->body, data, n) < 0) {
		if (errno == E2BIG)
			s->too_big = 1;
		else
			s->write_errno = errno;
		return 0;
	}
	if (s->hash && orchd_sha256_update(s->hash, data, n) < 0) {
		s->write_errno = EIO;
		return 0;
	}
	s->got += n;
	return n;
}

static int transient_curl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static int transient_status(long status)
{
	return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

static int cancelled(const struct orchd_http_opts *o)
{
	return o->cancel && *o->cancel;
}

/* Sleep ms, in slices so that a cancellation cuts it short. */
static void sleep_ms(const struct orchd_http_opts *o, long ms)
{
	while (ms > 0 && !cancelled(o)) {
		long slice = ms < 50 ? ms : 50;
		struct timespec ts = {0, slice * 1000000L};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		ms -= slice;
	}
}

static int on_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return cancelled(data) ? 1 : 0;
}

static void set_ca_options(CURL *c)
{
	const char *bundle = getenv("CURL_CA_BUNDLE");
	const char *dir = getenv("SSL_CERT_DIR");

	if (!bundle || !*bundle)
		bundle = getenv("SSL_CERT_FILE");
	if (bundle && *bundle)
		curl_easy_setopt(c, CURLOPT_CAINFO, bundle);
	if (dir && *dir)
		curl_easy_setopt(c, CURLOPT_CAPATH, dir);
}

/*
 * Run the request with retries into sink.  On failure err holds
 * "cannot download 'URL': WHY".
 */
static int http_perform(const char *url, const struct orchd_http_opts *o, struct http_sink *s,
			char *err, size_t errlen)
{
	char curlerr[CURL_ERROR_SIZE], why[CURL_ERROR_SIZE + 128];
	char *shown = NULL, *ua;
	CURL *c;
	int attempt, ret = -1;
	long delay = o->retry_delay_ms > 0 ? o->retry_delay_ms : 0;

	if (orchd_http_global_init(err, errlen) < 0)
		return -1;
	c = curl_easy_init();
	if (!c) {
		shown = orchd_http_redact(url);
		snprintf(err, errlen, "cannot download '%s': cannot create a curl handle", shown);
		free(shown);
		return -1;
	}
	ua = o->user_agent ? xstrdup(o->user_agent) : xstrdup("orchd/" ORCHD_VERSION);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, o->max_redirects > 0 ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, o->max_redirects > 0 ? o->max_redirects : 0L);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	if (o->connect_timeout_ms > 0)
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	if (o->timeout_ms > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	if (o->stall_timeout_ms > 0) {
		/* whole seconds: below 1 s, 1 s */
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
				 o->stall_timeout_ms < 1000 ? 1L : o->stall_timeout_ms / 1000);
	}
	if (s->max)
		curl_easy_setopt(
			c, CURLOPT_MAXFILESIZE_LARGE,
			(curl_off_t)(s->max > (unsigned long long)LLONG_MAX ? LLONG_MAX : s->max));
	curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curlerr);
	if (o->cancel) {
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, o);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	}
	set_ca_options(c);

	for (attempt = 0;; attempt++) {
		CURLcode rc;
		long status = 0;
		curl_off_t retry_after = 0;
		int transient = 0;

		curlerr[0] = '\0';
		if (sink_reset(s) < 0) {
			snprintf(why, sizeof(why), "cannot rewrite '%s': %s", s->path,
				 strerror(s->write_errno ? s->write_errno : EIO));
			break;
		}
		if (cancelled(o)) {
			snprintf(why, sizeof(why), "cancelled");
			break;
		}
		rc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (rc == CURLE_OK && status >= 200 && status <= 299) {
			ret = 0;
			break;
		}
		if (rc == CURLE_ABORTED_BY_CALLBACK && cancelled(o)) {
			snprintf(why, sizeof(why), "cancelled");
			break;
		} else if (rc == CURLE_OK) {
			/* a redirect not followed (max_redirects 0, or no Location) */
			snprintf(why, sizeof(why), "http status %ld", status);
		} else if (s->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			snprintf(why, sizeof(why), "response larger than the maximum of %llu bytes",
				 s->max);
		} else if (s->write_errno) {
			snprintf(why, sizeof(why), "cannot write '%s': %s",
				 s->path ? s->path : "memory", strerror(s->write_errno));
		} else if (rc == CURLE_HTTP_RETURNED_ERROR) {
			snprintf(why, sizeof(why), "http status %ld", status);
			transient = transient_status(status);
			curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry_after);
		} else {
			snprintf(why, sizeof(why), "%s",
				 curlerr[0] ? curlerr : curl_easy_strerror(rc));
			transient = transient_curl_error(rc);
		}
		if (!transient || attempt >= o->retries)
			break;
		{
			long wait = delay;

			if (retry_after > LONG_MAX / 1000)
				wait = LONG_MAX; /* capped below */
			else if (retry_after > 0 && retry_after * 1000 > wait)
				wait = (long)(retry_after * 1000);
			if (o->retry_max_delay_ms > 0 && wait > o->retry_max_delay_ms)
				wait = o->retry_max_delay_ms;
			sleep_ms(o, wait);
			if (delay < LONG_MAX / 2)
				delay *= 2;
			if (o->retry_max_delay_ms > 0 && delay > o->retry_max_delay_ms)
				delay = o->retry_max_delay_ms;
		}
	}
	if (ret < 0) {
		shown = orchd_http_redact(url);
		if (attempt > 0 && strcmp(why, "cancelled"))
			snprintf(err, errlen, "cannot download '%s': %s (after %d attempts)", shown,
				 why, attempt + 1);
		else
			snprintf(err, errlen, "cannot download '%s': %s", shown, why);
		free(shown);
		if (s->body)
			op_buf_release(s->body);
	}
	free(ua);
	curl_easy_cleanup(c);
	return ret;
}

int orchd_http_get(const char *url, struct op_buf *body, const struct orchd_http_opts *opts,
		   char *err, size_t errlen)
{
	struct orchd_http_opts dflt = ORCHD_HTTP_OPTS_INIT;
	struct http_sink s = {.fd = -1, .body = body};
	size_t keep = body->len;
	struct op_buf tmp;
	int ret;

	if (!opts) {
		dflt.max_bytes = ORCHD_HTTP_GET_MAX;
		opts = &dflt;
	}
	/* Collect into a private buffer so that retries and failures do not
	 * touch what body already held. */
	op_buf_init(&tmp, body->max ? (body->max > keep ? body->max - keep : 1) : 0);
	s.body = &tmp;
	s.max = opts->max_bytes;
	ret = http_perform(url, opts, &s, err, errlen);
	if (ret == 0 && op_buf_add(body, tmp.buf ? tmp.buf : "", tmp.len) < 0) {
		char *shown = orchd_http_redact(url);

		snprintf(err, errlen, "cannot download '%s': %s", shown, strerror(errno));
		free(shown);
		ret = -1;
	}
	if (ret < 0)
		op_buf_release(body);
	op_buf_release(&tmp);
	return ret;
}

/* A temporary file next to final: "<final>.tmp-XXXXXX", mode 0644. */
static int make_temp(const char *final, char **tmp_path, char *err, size_t errlen)
{
	char *p = xasprintf("%s.tmp-XXXXXX", final);
	int fd = mkostemp(p, O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "cannot create a temporary file for '%s': %s", final,
			 strerror(errno));
		free(p);
		return -1;
	}
	/* mkostemp() creates 0600; a fetched file is as readable as any other */
	if (fchmod(fd, 0644) < 0) {
		snprintf(err, errlen, "cannot chmod '%s': %s", p, strerror(errno));
		close(fd);
		unlink(p);
		free(p);
		return -1;
	}
	*tmp_path = p;
	return fd;
}

/* Copy src to dest through a temporary file and a rename. */
static int copy_file(const char *src, const char *dest, char *err, size_t errlen)
{
	char buf[65536], *tmp = NULL;
	int in, out, ret = -1;
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(err, errlen, "cannot open '%s': %s", src, strerror(errno));
		return -1;
	}
	out = make_temp(dest, &tmp, err, errlen);
	if (out < 0) {
		close(in);
		return -1;
	}
	for (;;) {
		n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read '%s': %s", src, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (write_all(out, buf, (size_t)n) < 0) {
			snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
			goto out;
		}
	}
	if (close(out) < 0) {
		out = -1;
		snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
		goto out;
	}
	out = -1;
	if (rename(tmp, dest) < 0) {
		snprintf(err, errlen, "cannot rename '%s' to '%s': %s", tmp, dest, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (out >= 0)
		close(out);
	if (ret < 0)
		unlink(tmp);
	close(in);
	free(tmp);
	return ret;
}

int orchd_http_download(const char *url, const char *dest, const char *sha256,
			const struct orchd_http_opts *opts, char actual_sha256[ORCHD_SHA256_HEXSZ],
			char *err, size_t errlen)
{
	struct orchd_http_opts dflt = ORCHD_HTTP_OPTS_INIT;
	struct http_sink s = {.fd = -1};
	char want[ORCHD_SHA256_HEXSZ], got[ORCHD_SHA256_HEXSZ], herr[256];
	char *root = NULL, *entry = NULL, *tmp = NULL;
	const char *final;
	int ret = -1, i;

	if (!opts)
		opts = &dflt;
	if (sha256) {
		if (!orchd_sha256_valid(sha256)) {
			char *shown = orchd_http_redact(url);

			snprintf(err, errlen,
				 "invalid sha256 '%s' for '%s': expected 64 hex digits", sha256,
				 shown);
			free(shown);
			return -1;
		}
		for (i = 0; i < ORCHD_SHA256_HEXLEN; i++)
			want[i] = (char)(sha256[i] | 0x20); /* hex digits: tolower */
		want[ORCHD_SHA256_HEXLEN] = '\0';
	}

	if (sha256 && !opts->no_cache) {
		char cerr[256];

		root = opts->cache_dir ? xasprintf("%s/sha256", opts->cache_dir)
				       : orchd_cache_dir("downloads/sha256", err, errlen);
		if (!root)
			return -1;
		if (orchd_mkdir_p(root, 0755, err, errlen) < 0)
			goto out;
		entry = xasprintf("%s/%s", root, want);
		if (access(entry, F_OK) == 0) {
			if (orchd_sha256_file(entry, got, cerr, sizeof(cerr)) == 0 &&
			    strcmp(got, want) == 0) {
				ret = copy_file(entry, dest, err, errlen);
				if (ret == 0 && actual_sha256)
					memcpy(actual_sha256, got, sizeof(got));
				goto out;
			}
			unlink(entry); /* corrupt or unreadable: fetch again */
		}
		final = entry;
	} else {
		final = dest;
	}

	s.hash = orchd_sha256_new();
	if (!s.hash) {
		snprintf(err, errlen, "cannot download '%s': out of memory", url);
		goto out;
	}
	s.fd = make_temp(final, &tmp, err, errlen);
	if (s.fd < 0)
		goto out;
	s.path = tmp;
	s.max = opts->max_bytes;
	if (http_perform(url, opts, &s, err, errlen) < 0)
		goto out;
	if (orchd_sha256_final(s.hash, got) < 0) {
		snprintf(err, errlen, "cannot download '%s': cannot compute sha256", url);
		goto out;
	}
	if (sha256 && strcmp(got, want) != 0) {
		char *shown = orchd_http_redact(url);

		snprintf(err, errlen, "sha256 mismatch for '%s': expected %s, got %s", shown, want,
			 got);
		free(shown);
		goto out;
	}
	if (close(s.fd) < 0) {
		s.fd = -1;
		snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
		goto out;
	}
	s.fd = -1;
	if (rename(tmp, final) < 0) {
		snprintf(err, errlen, "cannot rename '%s' to '%s': %s", tmp, final,
			 strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	if (final != dest && copy_file(final, dest, herr, sizeof(herr)) < 0) {
		snprintf(err, errlen, "%s", herr);
		goto out;
	}
	if (actual_sha256)
		memcpy(actual_sha256, got, sizeof(got));
	ret = 0;
out:
	if (s.fd >= 0)
		close(s.fd);
	if (tmp)
		unlink(tmp);
	orchd_sha256_free(s.hash);
	free(tmp);
	free(entry);
	free(root);
	return ret;
}
