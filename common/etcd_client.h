/*
 * etcd: a client of etcd's v3 JSON gateway (the grpc-gateway every etcd
 * server serves on its client URLs), with libcurl and json-c: no gRPC.
 *
 *   orchd_etcd_open(&opts, &c, err, sizeof(err));
 *   req = {"key": B64(k)};  orchd_etcd_call(c, "kv/range", req, &resp, ...);
 *
 * What the gateway does, and this client relies on:
 *   - every method is a POST of one JSON object to /v3/<service>/<method>
 *     ("kv/range", "kv/txn", "lease/grant", "lease/keepalive", ...);
 *   - keys and values are base64 (orchd_etcd_add_bytes/_get_bytes); 64-bit
 *     numbers (revisions, lease IDs) are JSON strings (orchd_etcd_get_int);
 *   - members that are zero, false or empty are left out of replies (a txn
 *     whose compares failed has no "succeeded"; a range that found nothing
 *     has no "kvs" and no "count");
 *   - streaming methods (lease/keepalive, watch) wrap each message in
 *     {"result": ...}; call() unwraps the first one;
 *   - errors are {"code": GRPC_CODE, "message": "..."} with an HTTP status
 *     of 400 and up, or {"error": {...}} inside a stream.
 *
 * Endpoints are tried in turn: a request that cannot reach one (connection
 * refused or reset, a timeout, HTTP 502/503/504, gRPC "unavailable") moves
 * on to the next, and the whole list is retried with backoff for at most
 * opts->unavailable_ms.  Only then does the call fail, with a message that
 * names the last endpoint and why; an error etcd answered (a bad request,
 * "request is too large", a permission) fails at once.  A retried request
 * may have been applied before its reply was lost: callers make their
 * writes idempotent (STATE.md, "etcd").
 *
 * Authentication: with opts->user, the client authenticates
 * (auth/authenticate) on first use and sends the token with every request;
 * a token etcd no longer knows is renewed once per call.  TLS: ca_file
 * verifies the servers, cert_file and key_file are the client's.
 *
 * Threads: call() may run from several threads at once (each takes an idle
 * curl handle of its own; connections are reused).  Errors: 0, or -1 with
 * a lowercase message in err.  Passwords never appear in messages.
 */
#ifndef ORCHD_ETCD_CLIENT_H
#define ORCHD_ETCD_CLIENT_H

#include <json-c/json.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct orchd_etcd_opts {
	const char *const *endpoints; /* "http://host:port", "https://..." */
	size_t nendpoints;
	const char *ca_file, *cert_file, *key_file; /* NULL: none */
	const char *user, *password;		    /* user NULL: no auth */
	long connect_timeout_ms;		    /* one connection attempt */
	long request_timeout_ms;		    /* one request */
	long unavailable_ms; /* how long to retry a cluster that cannot be reached */
	/* when set and nonzero: stop retrying, fail "cancelled" */
	const volatile sig_atomic_t *cancel;
};

#define ORCHD_ETCD_OPTS_INIT                                                                      \
	{                                                                                         \
		.connect_timeout_ms = 3000, .request_timeout_ms = 15000, .unavailable_ms = 30000, \
	}

struct orchd_etcd;

/* Check the options (each endpoint an http(s) URL) and make the client;
 * nothing is sent yet. */
int orchd_etcd_open(const struct orchd_etcd_opts *opts, struct orchd_etcd **out, char *err,
		    size_t errlen);
void orchd_etcd_close(struct orchd_etcd *c);

/* POST req (not consumed) to /v3/METHOD; *resp is the reply, a new object
 * (a stream's first message, unwrapped). */
int orchd_etcd_call(struct orchd_etcd *c, const char *method, json_object *req, json_object **resp,
		    char *err, size_t errlen);

/* As call(), but one attempt on each endpoint and no backoff (the lease's
 * keepalive: it has its own clock). */
int orchd_etcd_call_once(struct orchd_etcd *c, const char *method, json_object *req,
			 json_object **resp, char *err, size_t errlen);

/* The endpoints, comma-separated, for messages. */
const char *orchd_etcd_endpoints(const struct orchd_etcd *c);

/* o[key] = base64(data). */
void orchd_etcd_add_bytes(json_object *o, const char *key, const void *data, size_t len);
/* The bytes of a base64 member (malloc'ed, NUL-terminated), NULL when it
 * is missing or not base64; *len without the NUL.  An empty value is left
 * out by the gateway: with empty_ok, a missing member reads as "". */
char *orchd_etcd_get_bytes(json_object *o, const char *key, int empty_ok, size_t *len);
/* A 64-bit member, string or number; 0 when missing. */
int64_t orchd_etcd_get_int(json_object *o, const char *key);
/* o[key] = n as the gateway writes 64-bit numbers (a string). */
void orchd_etcd_add_int(json_object *o, const char *key, int64_t n);
/* range_end for every key that starts with prefix: prefix with its last
 * byte below 0xff incremented (a new string). */
char *orchd_etcd_prefix_end(const char *prefix);

/*
 * The pieces of a kv/txn request (new objects): a put (lease 0: none), a
 * delete of key or of [key, end), of every key under prefix, a range of one
 * key, and the compare "key's create revision is rev" (0: it does not
 * exist).
 */
json_object *orchd_etcd_op_put(const char *key, const char *data, size_t len, int64_t lease);
json_object *orchd_etcd_op_del(const char *key, const char *end);
json_object *orchd_etcd_op_del_prefix(const char *prefix);
json_object *orchd_etcd_op_range(const char *key);
json_object *orchd_etcd_cmp_create(const char *key, int64_t rev);
/* A range of every key under prefix (keys_only: without values), and the
 * compare "key's mod revision is rev". */
json_object *orchd_etcd_op_range_prefix(const char *prefix, int keys_only);
json_object *orchd_etcd_cmp_mod(const char *key, int64_t rev);

/*
 * One kv/txn of cmps (may be NULL) and ops, both taken: 0 applied (*resp,
 * when asked for, is the reply), 1 a compare failed, -1 with err.
 * orchd_etcd_txn_kvs(): the kvs of the range that is its i-th operation
 * (borrowed from resp), or NULL.
 */
int orchd_etcd_txn(struct orchd_etcd *c, json_object *cmps, json_object *ops, json_object **resp,
		   char *err, size_t errlen);
json_object *orchd_etcd_txn_kvs(json_object *resp, size_t i);

#endif
