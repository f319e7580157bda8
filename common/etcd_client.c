/*
 * etcd: a client of etcd's v3 JSON gateway.  See etcd_client.h.
 */
#include "etcd_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "crypto.h"
#include "http.h"
#include "orchd_protocol.h"
#include "util.h"

/* A reply larger than this is not etcd's (a record is chunked far below). */
#define MAX_REPLY	 (64u << 20)
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS	 2000

struct orchd_etcd {
	char **endpoints;
	size_t n;
	char *joined; /* for messages */
	char *ca, *cert, *key, *user, *password;
	long connect_ms, request_ms, unavailable_ms;
	const volatile sig_atomic_t *cancel;
	pthread_mutex_t mu; /* guards everything below */
	CURL **idle;	    /* handles not in use */
	size_t nidle, aidle;
	size_t next; /* the endpoint that answered last */
	char *token; /* NULL until authenticated */
	unsigned token_gen;
};

/* The outcome of one attempt on one endpoint. */
enum attempt {
	A_OK,	     /* a reply etcd answered (it may be an error of etcd's) */
	A_RETRY,     /* that endpoint cannot serve it now: try another */
	A_FAIL,	     /* final */
	A_BAD_TOKEN, /* authenticate again */
};

int orchd_etcd_open(const struct orchd_etcd_opts *o, struct orchd_etcd **out, char *err,
		    size_t errlen)
{
	struct orchd_etcd *c;
	struct op_buf j = OP_BUF_INIT;

	*out = NULL;
	if (orchd_http_global_init(err, errlen))
		return -1;
	if (!o->nendpoints)
		return orchd_set_err(err, errlen, "no etcd endpoint is given");
	for (size_t i = 0; i < o->nendpoints; i++) {
		const char *e = o->endpoints[i];

		if (!e || (strncmp(e, "http://", 7) && strncmp(e, "https://", 8)) ||
		    strlen(e) < 9 || strpbrk(e, " \t\r\n@?#"))
			return orchd_set_err(err, errlen,
					     "etcd endpoint '%s' is not a http:// or https:// "
					     "URL of the form SCHEME://HOST:PORT",
					     e ? e : "");
	}
	if ((o->cert_file != NULL) != (o->key_file != NULL))
		return orchd_set_err(err, errlen,
				     "an etcd client certificate needs both cert and key");
	if (o->user && !o->password)
		return orchd_set_err(err, errlen, "etcd user '%s' has no password", o->user);
	c = xcalloc(1, sizeof(*c));
	c->endpoints = xcalloc(o->nendpoints, sizeof(*c->endpoints));
	for (size_t i = 0; i < o->nendpoints; i++) {
		size_t len = strlen(o->endpoints[i]);

		while (len && o->endpoints[i][len - 1] == '/')
			len--;
		c->endpoints[i] = xstrndup(o->endpoints[i], len);
		if (i)
			op_buf_addch(&j, ',');
		op_buf_addstr(&j, c->endpoints[i]);
	}
	c->n = o->nendpoints;
	c->joined = op_buf_detach(&j, NULL);
	c->ca = xstrdup_or_null(o->ca_file);
	c->cert = xstrdup_or_null(o->cert_file);
	c->key = xstrdup_or_null(o->key_file);
	c->user = xstrdup_or_null(o->user);
	c->password = xstrdup_or_null(o->password);
	c->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 3000;
	c->request_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 15000;
	c->unavailable_ms = o->unavailable_ms >= 0 ? o->unavailable_ms : 0;
	c->cancel = o->cancel;
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

void orchd_etcd_close(struct orchd_etcd *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nidle; i++)
		curl_easy_cleanup(c->idle[i]);
	free(c->idle);
	for (size_t i = 0; i < c->n; i++)
		free(c->endpoints[i]);
	free(c->endpoints);
	free(c->joined);
	free(c->ca);
	free(c->cert);
	free(c->key);
	free(c->user);
	if (c->password)
		orchd_crypto_free_secret(c->password, strlen(c->password));
	if (c->token)
		orchd_crypto_free_secret(c->token, strlen(c->token));
	pthread_mutex_destroy(&c->mu);
	free(c);
}

const char *orchd_etcd_endpoints(const struct orchd_etcd *c)
{
	return c->joined;
}

static CURL *handle_get(struct orchd_etcd *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->mu);
	if (c->nidle)
		h = c->idle[--c->nidle];
	pthread_mutex_unlock(&c->mu);
	if (!h && !(h = curl_easy_init()))
		die("out of memory (curl_easy_init)");
	return h;
}

static void handle_put(struct orchd_etcd *c, CURL *h)
{
	pthread_mutex_lock(&c->mu);
	ALLOC_GROW(c->idle, c->nidle + 1, c->aidle);
	c->idle[c->nidle++] = h;
	pthread_mutex_unlock(&c->mu);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *data)
{
	struct op_buf *b = data;
	size_t n = size * nmemb;

	if (b->len + n > MAX_REPLY || op_buf_add(b, p, n))
		return 0; /* CURLE_WRITE_ERROR */
	return n;
}

static int on_progress(void *data, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	const struct orchd_etcd *c = data;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return *c->cancel ? 1 : 0;
}

static json_object *parse_reply(const char *buf, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o;

	if (!tok)
		die("out of memory");
	o = json_tokener_parse_ex(tok, buf, (int)len);
	json_tokener_free(tok);
	return o;
}

/* gRPC codes worth another endpoint: unavailable, deadline exceeded,
 * aborted (a leader change), and etcd's "no leader" / timeouts. */
static int retryable_message(int code, const char *msg)
{
	if (code == 14 || code == 4 || code == 10)
		return 1;
	return msg && (strstr(msg, "no leader") || strstr(msg, "leader changed") ||
		       strstr(msg, "request timed out") || strstr(msg, "too many requests"));
}

static int bad_token(const char *msg)
{
	return msg && (strstr(msg, "invalid auth token") || strstr(msg, "token is expired") ||
		       strstr(msg, "user name is empty"));
}

/* An error object of etcd's in o (a reply or a stream message): 1 and
 * *code, *msg; else 0. */
static int etcd_error(json_object *o, int *code, const char **msg)
{
	json_object *e;

	if (json_object_object_get_ex(o, "error", &e) && json_object_is_type(e, json_type_object))
		o = e;
	if (!json_object_object_get_ex(o, "code", &e) &&
	    !json_object_object_get_ex(o, "message", &e))
		return 0;
	if (json_object_object_get_ex(o, "header", &e))
		return 0; /* a reply that has a member named like that */
	*code = (int)op_get_int(o, "code", 0);
	*msg = op_get_str(o, "message");
	if (!*msg)
		*msg = op_get_str(o, "error");
	return 1;
}

static enum attempt attempt(struct orchd_etcd *c, size_t ep, const char *method, const char *body,
			    const char *token, json_object **resp, char *err, size_t errlen)
{
	CURL *h = handle_get(c);
	struct curl_slist *hdr = NULL;
	struct op_buf b = OP_BUF_INIT;
	char curlerr[CURL_ERROR_SIZE] = "", *url, *auth = NULL;
	const char *msg;
	json_object *o, *r;
	enum attempt ret;
	long status = 0;
	CURLcode cc;
	int code;

	url = xasprintf("%s/v3/%s", c->endpoints[ep], method);
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->request_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curlerr);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "orchd/" ORCHD_VERSION);
	/* the environment's proxies are for the internet, not the cluster */
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	if (c->cancel) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	if (c->ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
	if (c->cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
	}
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (token) {
		auth = xasprintf("Authorization: %s", token);
		hdr = curl_slist_append(hdr, auth);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	if (auth)
		orchd_crypto_free_secret(auth, strlen(auth));
	handle_put(c, h);
	if (cc != CURLE_OK) {
		switch (cc) {
		case CURLE_ABORTED_BY_CALLBACK:
			orchd_set_err(err, errlen, "etcd %s: cancelled", c->endpoints[ep]);
			ret = A_FAIL;
			break;
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CIPHER:
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_WRITE_ERROR:
			orchd_set_err(err, errlen, "etcd %s: %s", c->endpoints[ep],
				      *curlerr ? curlerr : curl_easy_strerror(cc));
			ret = A_FAIL;
			break;
		default:
			orchd_set_err(err, errlen, "etcd %s: %s", c->endpoints[ep],
				      *curlerr ? curlerr : curl_easy_strerror(cc));
			/* a TLS handshake that fails, or a TLS alert (a client
			 * certificate refused), is an answer: no retry helps */
			ret = cc == CURLE_SSL_CONNECT_ERROR ||
					      (cc == CURLE_RECV_ERROR && strstr(curlerr, " alert "))
				      ? A_FAIL
				      : A_RETRY;
			break;
		}
		goto out;
	}
	/* A stream's messages are newline-separated: the first one. */
	{
		char *nl = b.buf ? memchr(b.buf, '\n', b.len) : NULL;
		size_t len = nl ? (size_t)(nl - b.buf) : b.len;

		o = len ? parse_reply(b.buf, len) : NULL;
	}
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		if (status == 502 || status == 503 || status == 504 || status == 0) {
			orchd_set_err(err, errlen, "etcd %s: http status %ld", c->endpoints[ep],
				      status);
			ret = A_RETRY;
		} else {
			orchd_set_err(err, errlen, "etcd %s: http status %ld, not a JSON reply",
				      c->endpoints[ep], status);
			ret = A_FAIL;
		}
		goto out;
	}
	if (json_object_object_get_ex(o, "result", &r) &&
	    json_object_is_type(r, json_type_object)) {
		json_object_get(r);
		json_object_put(o);
		o = r;
	}
	if (etcd_error(o, &code, &msg)) {
		orchd_set_err(err, errlen, "etcd %s: %s", c->endpoints[ep],
			      msg ? msg : "unknown error");
		ret = bad_token(msg)				      ? A_BAD_TOKEN
		      : retryable_message(code, msg) || status >= 502 ? A_RETRY
								      : A_FAIL;
		json_object_put(o);
		goto out;
	}
	if (status < 200 || status > 299) {
		orchd_set_err(err, errlen, "etcd %s: http status %ld", c->endpoints[ep], status);
		json_object_put(o);
		ret = status >= 502 && status <= 504 ? A_RETRY : A_FAIL;
		goto out;
	}
	*resp = o;
	ret = A_OK;
out:
	op_buf_release(&b);
	free(url);
	return ret;
}

/* Authenticate (once per token generation gen): 0, or -1 with err. */
static int authenticate(struct orchd_etcd *c, size_t ep, unsigned gen, char *err, size_t errlen)
{
	json_object *req, *resp = NULL;
	const char *tok;
	enum attempt a;
	int ret = -1;

	pthread_mutex_lock(&c->mu);
	if (c->token && c->token_gen != gen) {
		pthread_mutex_unlock(&c->mu); /* another thread did */
		return 0;
	}
	pthread_mutex_unlock(&c->mu);
	req = json_object_new_object();
	json_object_object_add(req, "name", json_object_new_string(c->user));
	json_object_object_add(req, "password", json_object_new_string(c->password));
	a = attempt(c, ep, "auth/authenticate",
		    json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), NULL, &resp, err,
		    errlen);
	json_object_put(req);
	if (a != A_OK)
		return a == A_RETRY ? 1 : -1;
	tok = op_get_str(resp, "token");
	if (!tok || !*tok) {
		orchd_set_err(err, errlen, "etcd %s: authentication gave no token",
			      c->endpoints[ep]);
	} else {
		pthread_mutex_lock(&c->mu);
		if (c->token)
			orchd_crypto_free_secret(c->token, strlen(c->token));
		c->token = xstrdup(tok);
		c->token_gen++;
		pthread_mutex_unlock(&c->mu);
		ret = 0;
	}
	json_object_put(resp);
	return ret;
}

static int call(struct orchd_etcd *c, const char *method, json_object *req, json_object **resp,
		int retry, char *err, size_t errlen)
{
	const char *body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	long long deadline = now_ms() + (retry ? c->unavailable_ms : 0);
	long backoff = BACKOFF_FIRST_MS;
	int reauth = 0;
	size_t ep;

	*resp = NULL;
	pthread_mutex_lock(&c->mu);
	ep = c->next;
	pthread_mutex_unlock(&c->mu);
	for (;;) {
		for (size_t tried = 0; tried < c->n; tried++, ep = (ep + 1) % c->n) {
			char *token = NULL;
			unsigned gen;
			enum attempt a;

			if (c->cancel && *c->cancel)
				return orchd_set_err(err, errlen, "etcd: cancelled");
			pthread_mutex_lock(&c->mu);
			gen = c->token_gen;
			token = c->token ? xstrdup(c->token) : NULL;
			pthread_mutex_unlock(&c->mu);
			if (c->user && !token) {
				int r = authenticate(c, ep, gen, err, errlen);

				if (r < 0)
					return -1;
				if (r > 0)
					continue;
				tried--; /* the same endpoint, now with a token */
				ep = (ep + c->n - 1) % c->n;
				continue;
			}
			a = attempt(c, ep, method, body, token, resp, err, errlen);
			if (token)
				orchd_crypto_free_secret(token, strlen(token));
			switch (a) {
			case A_OK:
				pthread_mutex_lock(&c->mu);
				c->next = ep;
				pthread_mutex_unlock(&c->mu);
				return 0;
			case A_FAIL:
				return -1;
			case A_BAD_TOKEN:
				if (!c->user) {
					size_t len = strlen(err);

					if (len < errlen)
						snprintf(err + len, errlen - len,
							 " (etcd wants a user: set "
							 "core.engine.auth)");
					return -1;
				}
				if (reauth++)
					return -1;
				if (authenticate(c, ep, gen, err, errlen) < 0)
					return -1;
				tried--;
				ep = (ep + c->n - 1) % c->n;
				continue;
			case A_RETRY:
				break;
			}
		}
		if (now_ms() >= deadline)
			break;
		{
			long long left = deadline - now_ms();
			long nap = backoff < left ? backoff : (long)left;
			struct timespec ts = {nap / 1000, (nap % 1000) * 1000000L};

			if (nap > 0)
				nanosleep(&ts, NULL);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		}
	}
	if (retry && c->unavailable_ms > 0) {
		char last[512];

		snprintf(last, sizeof(last), "%s", err);
		orchd_set_err(err, errlen, "etcd unreachable for %.1fs at %s (last: %s)",
			      (double)c->unavailable_ms / 1000.0, c->joined, last);
	}
	return -1;
}

int orchd_etcd_call(struct orchd_etcd *c, const char *method, json_object *req, json_object **resp,
		    char *err, size_t errlen)
{
	return call(c, method, req, resp, 1, err, errlen);
}

int orchd_etcd_call_once(struct orchd_etcd *c, const char *method, json_object *req,
			 json_object **resp, char *err, size_t errlen)
{
	return call(c, method, req, resp, 0, err, errlen);
}

void orchd_etcd_add_bytes(json_object *o, const char *key, const void *data, size_t len)
{
	char *b = orchd_b64_encode(data, len);

	json_object_object_add(o, key, json_object_new_string(b));
	free(b);
}

char *orchd_etcd_get_bytes(json_object *o, const char *key, int empty_ok, size_t *len)
{
	const char *s = op_get_str(o, key);
	unsigned char *d;
	char *ret;
	size_t n = 0;

	*len = 0;
	if (!s || !*s)
		return (s || empty_ok) ? xstrdup("") : NULL;
	d = orchd_b64_decode(s, &n);
	if (!d)
		return NULL;
	ret = xmalloc(n + 1);
	memcpy(ret, d, n);
	ret[n] = '\0';
	free(d);
	*len = n;
	return ret;
}

int64_t orchd_etcd_get_int(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (json_object_is_type(v, json_type_string))
		return strtoll(json_object_get_string(v), NULL, 10);
	return json_object_get_int64(v);
}

void orchd_etcd_add_int(json_object *o, const char *key, int64_t n)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", (long long)n);
	json_object_object_add(o, key, json_object_new_string(buf));
}

char *orchd_etcd_prefix_end(const char *prefix)
{
	char *end = xstrdup(prefix);
	size_t i = strlen(end);

	while (i-- > 0) {
		if ((unsigned char)end[i] < 0xff) {
			end[i]++;
			end[i + 1] = '\0';
			return end;
		}
	}
	end[0] = '\0'; /* every key: "\0" is what etcd wants; unused here */
	return end;
}

/* --- requests ------------------------------------------------------------- */

static void orchd_etcd_add_bytes_str(json_object *o, const char *member, const char *key)
{
	orchd_etcd_add_bytes(o, member, key, strlen(key));
}

json_object *orchd_etcd_op_put(const char *key, const char *data, size_t len, int64_t lease)
{
	json_object *o = json_object_new_object(), *r = json_object_new_object();

	orchd_etcd_add_bytes_str(r, "key", key);
	orchd_etcd_add_bytes(r, "value", data, len);
	if (lease)
		orchd_etcd_add_int(r, "lease", lease);
	json_object_object_add(o, "request_put", r);
	return o;
}

/* Delete key, or [key, end) when end is given. */
json_object *orchd_etcd_op_del(const char *key, const char *end)
{
	json_object *o = json_object_new_object(), *r = json_object_new_object();

	orchd_etcd_add_bytes_str(r, "key", key);
	if (end)
		orchd_etcd_add_bytes_str(r, "range_end", end);
	json_object_object_add(o, "request_delete_range", r);
	return o;
}

/* Delete every key under prefix. */
json_object *orchd_etcd_op_del_prefix(const char *prefix)
{
	char *end = orchd_etcd_prefix_end(prefix);
	json_object *o = orchd_etcd_op_del(prefix, end);

	free(end);
	return o;
}

json_object *orchd_etcd_op_range(const char *key)
{
	json_object *o = json_object_new_object(), *r = json_object_new_object();

	orchd_etcd_add_bytes_str(r, "key", key);
	json_object_object_add(o, "request_range", r);
	return o;
}

/* "key's create revision is rev" (0: the key does not exist). */
json_object *orchd_etcd_cmp_create(const char *key, int64_t rev)
{
	json_object *o = json_object_new_object();

	orchd_etcd_add_bytes_str(o, "key", key);
	json_object_object_add(o, "target", json_object_new_string("CREATE"));
	json_object_object_add(o, "result", json_object_new_string("EQUAL"));
	orchd_etcd_add_int(o, "create_revision", rev);
	return o;
}

json_object *orchd_etcd_op_range_prefix(const char *prefix, int keys_only)
{
	json_object *o = json_object_new_object(), *r = json_object_new_object();
	char *end = orchd_etcd_prefix_end(prefix);

	orchd_etcd_add_bytes(r, "key", prefix, strlen(prefix));
	orchd_etcd_add_bytes(r, "range_end", end, strlen(end));
	free(end);
	if (keys_only)
		json_object_object_add(r, "keys_only", json_object_new_boolean(1));
	json_object_object_add(o, "request_range", r);
	return o;
}

json_object *orchd_etcd_cmp_mod(const char *key, int64_t rev)
{
	json_object *o = json_object_new_object();

	orchd_etcd_add_bytes_str(o, "key", key);
	json_object_object_add(o, "target", json_object_new_string("MOD"));
	json_object_object_add(o, "result", json_object_new_string("EQUAL"));
	orchd_etcd_add_int(o, "mod_revision", rev);
	return o;
}

json_object *orchd_etcd_txn_kvs(json_object *resp, size_t i)
{
	json_object *a, *r, *rr;

	if (!json_object_object_get_ex(resp, "responses", &a) ||
	    !json_object_is_type(a, json_type_array) || i >= json_object_array_length(a))
		return NULL;
	r = json_object_array_get_idx(a, i);
	if (!json_object_object_get_ex(r, "response_range", &rr) ||
	    !json_object_object_get_ex(rr, "kvs", &a) || !json_object_is_type(a, json_type_array))
		return NULL;
	return a;
}

int orchd_etcd_txn(struct orchd_etcd *c, json_object *cmps, json_object *ops, json_object **resp,
		   char *err, size_t errlen)
{
	json_object *req = json_object_new_object(), *r = NULL;
	int ret;

	if (resp)
		*resp = NULL;
	json_object_object_add(req, "compare", cmps ? cmps : json_object_new_array());
	json_object_object_add(req, "success", ops);
	ret = orchd_etcd_call(c, "kv/txn", req, &r, err, errlen);
	json_object_put(req);
	if (ret)
		return -1;
	ret = op_get_bool(r, "succeeded", false) ? 0 : 1;
	if (resp && !ret)
		*resp = r;
	else
		json_object_put(r);
	return ret;
}
