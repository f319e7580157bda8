/*
 * etcd: the state engine on an etcd cluster.  See etcd.h, and STATE.md
 * ("etcd") for the layout and the argument:
 *
 *   P/lock                       the pipeline lock's holder (JSON), on a lease
 *   P/crypto                     KDF parameters + key check (as crypto.json)
 *   P/stacks/STACK               the record (the local engine's document), or
 *                                a chunk manifest when it is large
 *   P/chunks/STACK/GEN/NNNNNN    the pieces of a large record
 *   P/history/STACK/WHEN.RUN.ACTION  one history entry (JSON)
 *
 * P is core.engine.prefix, default "orchd/PIPELINE".  Every write made
 * under the lock is a transaction that first compares the lock key's
 * create revision with the one this run made: the fencing token.  A run
 * whose lease expired (and whose lock was then taken by another) can no
 * longer write anything.
 */
#include "interfaces/etcd.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "etcd_client.h"
#include "hash.h"
#include "interfaces/record.h"
#include "orchd_protocol.h"
#include "util.h"

#define CHUNKED_FORMAT "orchd-chunked"
#define DEFAULT_TTL_MS 10000
#define LOCK_POLL_MS   200
/* etcd refuses requests over --max-request-bytes (1.5 MiB by default):
 * a record above CHUNK_MAX is stored in pieces of CHUNK_MAX, and one
 * transaction carries at most TXN_BYTES of values and TXN_OPS operations
 * (etcd's --max-txn-ops is 128). */
#define CHUNK_MAX  (768u * 1024)
#define TXN_BYTES  (1024u * 1024)
#define TXN_OPS	   96
#define MAX_RECORD (64u << 20)

struct pend {
	char *stack;
	char *data;
	size_t len;
	pthread_t owner; /* the thread that deferred it, and syncs it */
};

struct eng {
	struct orchd_etcd *c;  /* requests */
	struct orchd_etcd *ka; /* the lease's keepalive: short timeouts */
	char *prefix;	       /* ends with '/' */
	char *lock_key, *crypto_key;
	struct orchd_sealer seal;
	pthread_mutex_t mu; /* seal, pend, lost */
	long ttl_ms;
	/* the lock */
	int locked;
	int64_t lease;
	int64_t fence; /* the lock key's create revision */
	pthread_t ka_thread;
	int ka_running, ka_stop;
	pthread_cond_t ka_cv;
	int lost; /* set under mu, read anywhere (atomic) */
	char lost_why[512];
	/* write_deferred, until sync */
	struct pend *pend;
	size_t npend, apend;
};

static struct eng *E(struct orchd_engine *e)
{
	return e->priv;
}

static int check_stack(const char *stack, char *err, size_t errlen)
{
	if (!orchd_stack_name_ok(stack))
		return orchd_set_err(err, errlen, "invalid stack name '%s'", stack ? stack : "");
	return 0;
}

static char *k_stack(struct eng *g, const char *stack)
{
	return xasprintf("%sstacks/%s", g->prefix, stack);
}

static char *k_chunks(struct eng *g, const char *stack)
{
	return xasprintf("%schunks/%s/", g->prefix, stack);
}

static char *k_hist(struct eng *g, const char *stack)
{
	return xasprintf("%shistory/%s/", g->prefix, stack);
}

/* --- requests ------------------------------------------------------------ */

static void add_key(json_object *o, const char *member, const char *key)
{
	orchd_etcd_add_bytes(o, member, key, strlen(key));
}

/* Range one key: 0 and *kv (a new reference, NULL when missing), *rev the
 * store's revision; -1. */
static int get_kv(struct eng *g, const char *key, int64_t at, json_object **kv, int64_t *rev,
		  char *err, size_t errlen)
{
	json_object *req = json_object_new_object(), *resp = NULL, *kvs, *h;
	int r;

	*kv = NULL;
	add_key(req, "key", key);
	if (at)
		orchd_etcd_add_int(req, "revision", at);
	r = orchd_etcd_call(g->c, "kv/range", req, &resp, err, errlen);
	json_object_put(req);
	if (r)
		return -1;
	if (rev)
		*rev = json_object_object_get_ex(resp, "header", &h)
			       ? orchd_etcd_get_int(h, "revision")
			       : 0;
	if (json_object_object_get_ex(resp, "kvs", &kvs) &&
	    json_object_is_type(kvs, json_type_array) && json_object_array_length(kvs) > 0)
		*kv = json_object_get(json_object_array_get_idx(kvs, 0));
	json_object_put(resp);
	return 0;
}

static void set_lost(struct eng *g, const char *why)
{
	pthread_mutex_lock(&g->mu);
	if (!g->lost) {
		snprintf(g->lost_why, sizeof(g->lost_why), "%.480s", why);
		__atomic_store_n(&g->lost, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&g->mu);
}

static int lost_err(struct eng *g, char *err, size_t errlen)
{
	pthread_mutex_lock(&g->mu);
	orchd_set_err(err, errlen, "the pipeline lock (etcd key %s) is lost: %s", g->lock_key,
		      g->lost_why);
	pthread_mutex_unlock(&g->mu);
	return -1;
}

/*
 * A transaction of ops (consumed), fenced when the lock is held: 0 when
 * applied, 1 when cmps (consumed, may be NULL) failed, -1 (the fence
 * failed: the lock is lost).  *resp, when asked for, is the reply.
 */
static int txn(struct eng *g, json_object *cmps, json_object *ops, json_object **resp, char *err,
	       size_t errlen)
{
	json_object *kv = NULL;
	int64_t rev;
	int ret;

	if (!cmps)
		cmps = json_object_new_array();
	if (g->locked) {
		/* not under mu: the sealer's first store comes here holding it */
		if (__atomic_load_n(&g->lost, __ATOMIC_ACQUIRE)) {
			json_object_put(cmps);
			json_object_put(ops);
			if (resp)
				*resp = NULL;
			return lost_err(g, err, errlen);
		}
		json_object_array_add(cmps, orchd_etcd_cmp_create(g->lock_key, g->fence));
	}
	ret = orchd_etcd_txn(g->c, cmps, ops, resp, err, errlen);
	if (ret != 1 || !g->locked)
		return ret;
	/* the fence, or the caller's compares? */
	if (get_kv(g, g->lock_key, 0, &kv, &rev, err, errlen))
		return -1;
	if (!kv || orchd_etcd_get_int(kv, "create_revision") != g->fence) {
		json_object_put(kv);
		set_lost(g, "its lease expired or it was deleted (another run may hold "
			    "it now): nothing more is written");
		return lost_err(g, err, errlen);
	}
	json_object_put(kv);
	return 1;
}

/* --- crypto (the sealer's document) ------------------------------------- */

static int crypto_load(void *ctx, char **buf, size_t *len, char *err, size_t errlen)
{
	struct eng *g = ctx;
	json_object *kv;

	if (get_kv(g, g->crypto_key, 0, &kv, NULL, err, errlen))
		return -1;
	if (!kv)
		return 1;
	*buf = orchd_etcd_get_bytes(kv, "value", 1, len);
	json_object_put(kv);
	if (!*buf)
		return orchd_set_err(err, errlen, "etcd key %s: a value that is not base64",
				     g->crypto_key);
	return 0;
}

/* Made only where none exists (create revision 0), never replaced. */
static int crypto_store(void *ctx, const char *buf, size_t len, char *err, size_t errlen)
{
	struct eng *g = ctx;
	json_object *cmps = json_object_new_array(), *ops = json_object_new_array();

	json_object_array_add(cmps, orchd_etcd_cmp_create(g->crypto_key, 0));
	json_object_array_add(ops, orchd_etcd_op_put(g->crypto_key, buf, len, 0));
	return txn(g, cmps, ops, NULL, err, errlen);
}

/* --- records -------------------------------------------------------------- */

/*
 * The stored document of stack, whole (chunks put together, read at the
 * revision of the manifest): 0 and *buf, 1 missing, -1.
 */
static int read_doc(struct eng *g, const char *stack, char **buf, size_t *len, char *err,
		    size_t errlen)
{
	char *key = k_stack(g, stack), *data = NULL;
	json_object *kv = NULL, *m = NULL;
	int64_t rev;
	const char *why;
	int ret = -1;

	*buf = NULL;
	*len = 0;
	if (get_kv(g, key, 0, &kv, &rev, err, errlen))
		goto out;
	if (!kv) {
		ret = 1;
		goto out;
	}
	data = orchd_etcd_get_bytes(kv, "value", 1, len);
	if (!data) {
		orchd_set_err(err, errlen, "etcd key %s: a value that is not base64", key);
		goto out;
	}
	/* a manifest is small and says so; a record never has this format */
	if (*len < 4096 && strstr(data, CHUNKED_FORMAT) &&
	    (m = orchd_json_parse_all(data, *len, &why)) &&
	    json_object_is_type(m, json_type_object) && op_get_str(m, "format") &&
	    !strcmp(op_get_str(m, "format"), CHUNKED_FORMAT)) {
		int64_t n = op_get_int(m, "chunks", 0), size = op_get_int(m, "size", -1);
		const char *gen = op_get_str(m, "gen"), *sum = op_get_str(m, "sha256");
		char *base = k_chunks(g, stack), hex[ORCHD_SHA256_HEXSZ];
		struct op_buf sb = OP_BUF_INIT;

		if (n <= 0 || size < 0 || size > (int64_t)MAX_RECORD || !gen || !sum) {
			orchd_set_err(err, errlen, "etcd key %s: a malformed chunk manifest", key);
			free(base);
			goto out;
		}
		for (int64_t i = 0; i < n; i++) {
			char *ck = xasprintf("%s%s/%06lld", base, gen, (long long)i), *part;
			json_object *ckv = NULL;
			size_t plen;

			int r = get_kv(g, ck, rev, &ckv, NULL, err, errlen);

			if (r || !ckv) {
				if (!r)
					orchd_set_err(err, errlen, "stack %s: chunk %s is missing",
						      stack, ck);
				free(ck);
				op_buf_release(&sb);
				free(base);
				goto out;
			}
			part = orchd_etcd_get_bytes(ckv, "value", 1, &plen);
			json_object_put(ckv);
			free(ck);
			if (!part || op_buf_add(&sb, part, plen)) {
				free(part);
				op_buf_release(&sb);
				free(base);
				orchd_set_err(err, errlen, "stack %s: unreadable chunk", stack);
				goto out;
			}
			free(part);
		}
		free(base);
		orchd_sha256_hex(sb.buf ? sb.buf : "", sb.len, hex);
		if ((int64_t)sb.len != size || strcmp(hex, sum)) {
			op_buf_release(&sb);
			orchd_set_err(err, errlen,
				      "stack %s: its chunks do not match their manifest (etcd key "
				      "%s)",
				      stack, key);
			goto out;
		}
		free(data);
		data = op_buf_detach(&sb, len);
		if (!data)
			data = xstrdup("");
	}
	*buf = data;
	data = NULL;
	ret = 0;
out:
	json_object_put(m);
	json_object_put(kv);
	free(data);
	free(key);
	return ret;
}

static int etcd_select(struct orchd_engine *e, const char *stack, int create, char *err,
		       size_t errlen)
{
	struct eng *g = E(e);
	json_object *kv;
	char *key;
	int r;

	if (check_stack(stack, err, errlen))
		return -1;
	if (create)
		return 0; /* a key is made by its first write */
	key = k_stack(g, stack);
	r = get_kv(g, key, 0, &kv, NULL, err, errlen);
	free(key);
	if (r)
		return -1;
	r = kv ? 0 : 1;
	json_object_put(kv);
	return r;
}

static int etcd_read(struct orchd_engine *e, const char *stack, struct orchd_stack_record *rec,
		     char *err, size_t errlen)
{
	struct eng *g = E(e);
	char *buf, *where;
	json_object *o;
	size_t len;
	int r;

	if (check_stack(stack, err, errlen))
		return -1;
	r = read_doc(g, stack, &buf, &len, err, errlen);
	if (r)
		return r;
	where = xasprintf("etcd key %sstacks/%s", g->prefix, stack);
	o = orchd_record_load(stack, where, buf, len, err, errlen);
	pthread_mutex_lock(&g->mu);
	if (!o || orchd_record_from_json(&g->seal, stack, where, o, rec, err, errlen)) {
		orchd_stack_record_release(rec);
		orchd_stack_record_init(rec);
		r = -1;
	}
	pthread_mutex_unlock(&g->mu);
	json_object_put(o);
	free(where);
	free(buf);
	return r;
}

static int etcd_write_deferred(struct orchd_engine *e, const char *stack,
			       const struct orchd_stack_record *rec, char *err, size_t errlen)
{
	struct eng *g = E(e);
	json_object *old = NULL, *o;
	int need_key, ret = -1;
	const char *s;
	char *where;

	if (check_stack(stack, err, errlen))
		return -1;
	pthread_mutex_lock(&g->mu);
	ret = orchd_record_precheck(&g->seal, stack, rec, &need_key, err, errlen);
	pthread_mutex_unlock(&g->mu);
	if (ret)
		return -1;
	ret = -1;
	where = xasprintf("etcd key %sstacks/%s", g->prefix, stack);
	if (orchd_record_has_masked(rec)) {
		/* the values kept sealed come from the stored document */
		char *buf;
		size_t len;
		int r = read_doc(g, stack, &buf, &len, err, errlen);

		if (r < 0)
			goto out;
		if (!r) {
			old = orchd_record_load(stack, where, buf, len, err, errlen);
			free(buf);
			if (!old)
				goto out;
		}
	}
	pthread_mutex_lock(&g->mu);
	o = need_key && orchd_sealer_key(&g->seal, 1, err, errlen)
		    ? NULL
		    : orchd_record_to_json(&g->seal, stack, old, rec, err, errlen);
	if (o) {
		s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE);
		if (strlen(s) > MAX_RECORD) {
			orchd_set_err(err, errlen,
				      "stack %s: the record is %zu bytes, more than the etcd "
				      "engine stores (at most %u MiB): keep large data in files",
				      stack, strlen(s), MAX_RECORD >> 20);
		} else {
			ALLOC_GROW(g->pend, g->npend + 1, g->apend);
			g->pend[g->npend].stack = xstrdup(stack);
			g->pend[g->npend].len = strlen(s);
			g->pend[g->npend].data = xstrdup(s);
			g->pend[g->npend].owner = pthread_self();
			g->npend++;
			ret = 0;
		}
		json_object_put(o);
	}
	pthread_mutex_unlock(&g->mu);
out:
	json_object_put(old);
	free(where);
	return ret;
}

static void pend_clear(struct eng *g)
{
	for (size_t i = 0; i < g->npend; i++) {
		free(g->pend[i].stack);
		free(g->pend[i].data);
	}
	g->npend = 0;
}

/* The pieces of a large record, each its own (fenced) request, under a
 * generation no manifest names yet; *manifest is what names them. */
static int put_chunks(struct eng *g, const struct pend *p, char **manifest, char *err,
		      size_t errlen)
{
	unsigned char rnd[8];
	char gen[17], hex[ORCHD_SHA256_HEXSZ], *base = k_chunks(g, p->stack);
	size_t n = (p->len + CHUNK_MAX - 1) / CHUNK_MAX;
	json_object *m;

	if (orchd_crypto_random(rnd, sizeof(rnd), err, errlen)) {
		free(base);
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(gen + 2 * i, 3, "%02x", rnd[i]);
	for (size_t i = 0; i < n; i++) {
		size_t off = i * CHUNK_MAX,
		       len = p->len - off < CHUNK_MAX ? p->len - off : CHUNK_MAX;
		char *key = xasprintf("%s%s/%06zu", base, gen, i);
		json_object *ops = json_object_new_array();

		json_object_array_add(ops, orchd_etcd_op_put(key, p->data + off, len, 0));
		free(key);
		if (txn(g, NULL, ops, NULL, err, errlen)) {
			free(base);
			return -1;
		}
	}
	free(base);
	orchd_sha256_hex(p->data, p->len, hex);
	m = json_object_new_object();
	orchd_json_add_str(m, "format", CHUNKED_FORMAT);
	json_object_object_add(m, "version", json_object_new_int(1));
	orchd_json_add_str(m, "stack", p->stack);
	orchd_json_add_str(m, "gen", gen);
	json_object_object_add(m, "chunks", json_object_new_int64((int64_t)n));
	json_object_object_add(m, "size", json_object_new_int64((int64_t)p->len));
	orchd_json_add_str(m, "sha256", hex);
	*manifest = xstrdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
	json_object_put(m);
	return 0;
}

/*
 * The records the calling thread deferred (every one when all), in
 * transactions of at most TXN_OPS operations and TXN_BYTES of values: a
 * record replaces its key and drops the chunks of its earlier versions (a
 * large one: after its own chunks are stored).  Each state worker of the
 * scheduler defers and syncs its own records; another thread's are left to
 * that thread's sync.
 */
static int sync_pending(struct eng *g, int all, char *err, size_t errlen)
{
	pthread_t self = pthread_self();
	json_object *ops = NULL;
	size_t nops = 0, bytes = 0, n = 0, keep = 0;
	struct pend *mine;
	int ret = 0;

	pthread_mutex_lock(&g->mu);
	mine = xcalloc(g->npend ? g->npend : 1, sizeof(*mine));
	for (size_t i = 0; i < g->npend; i++) {
		if (all || pthread_equal(g->pend[i].owner, self))
			mine[n++] = g->pend[i];
		else
			g->pend[keep++] = g->pend[i];
	}
	g->npend = keep;
	pthread_mutex_unlock(&g->mu);
	for (size_t i = 0; i < n && !ret; i++) {
		struct pend *p = &mine[i];
		char *key, *base, *man = NULL;
		const char *data = p->data;
		size_t len = p->len;
		size_t j;

		/* a stack deferred twice: its last record (etcd refuses a
		 * transaction that puts one key twice) */
		for (j = i + 1; j < n && strcmp(mine[j].stack, p->stack); j++)
			;
		if (j < n)
			continue;
		key = k_stack(g, p->stack);
		base = k_chunks(g, p->stack);
		if (p->len > CHUNK_MAX) {
			ret = put_chunks(g, p, &man, err, errlen);
			if (ret) {
				free(key);
				free(base);
				break;
			}
			data = man;
			len = strlen(man);
		}
		if (ops && (nops + 3 > TXN_OPS || bytes + len > TXN_BYTES)) {
			ret = txn(g, NULL, ops, NULL, err, errlen);
			ops = NULL;
			nops = bytes = 0;
			if (ret) {
				free(man);
				free(key);
				free(base);
				break;
			}
		}
		if (!ops)
			ops = json_object_new_array();
		json_object_array_add(ops, orchd_etcd_op_put(key, data, len, 0));
		if (man) {
			/* every generation but this one */
			json_object *m = orchd_json_parse_all(man, strlen(man), &(const char *){0});
			char *gen = xasprintf("%s%s/", base, op_get_str(m, "gen"));
			char *gen_end = orchd_etcd_prefix_end(gen), *all_end;

			all_end = orchd_etcd_prefix_end(base);
			json_object_array_add(ops, orchd_etcd_op_del(base, gen));
			json_object_array_add(ops, orchd_etcd_op_del(gen_end, all_end));
			free(all_end);
			free(gen_end);
			free(gen);
			json_object_put(m);
		} else {
			json_object_array_add(ops, orchd_etcd_op_del_prefix(base));
		}
		nops += 3;
		bytes += len;
		free(man);
		free(key);
		free(base);
	}
	if (ops && !ret)
		ret = txn(g, NULL, ops, NULL, err, errlen);
	else
		json_object_put(ops);
	for (size_t i = 0; i < n; i++) {
		free(mine[i].stack);
		free(mine[i].data);
	}
	free(mine);
	return ret ? -1 : 0;
}

static int etcd_sync(struct orchd_engine *e, char *err, size_t errlen)
{
	return sync_pending(E(e), 0, err, errlen);
}

static int etcd_write(struct orchd_engine *e, const char *stack,
		      const struct orchd_stack_record *rec, char *err, size_t errlen)
{
	if (etcd_write_deferred(e, stack, rec, err, errlen))
		return -1;
	return etcd_sync(e, err, errlen);
}

/* The key of a history entry: when, which run, what (a retried append
 * writes the same key again: no duplicate). */
static char *hist_key(struct eng *g, const char *stack, const struct orchd_history_entry *h)
{
	return xasprintf("%shistory/%s/%013lld.%s.%s", g->prefix, stack, (long long)h->started_at,
			 h->run_id ? h->run_id : "-", h->action ? h->action : "-");
}

static json_object *op_hist(struct eng *g, const char *stack, const struct orchd_history_entry *h)
{
	json_object *o = orchd_history_to_json(h), *op;
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE);
	char *key = hist_key(g, stack, h);

	op = orchd_etcd_op_put(key, s, strlen(s), 0);
	free(key);
	json_object_put(o);
	return op;
}

static int etcd_history_append(struct orchd_engine *e, const char *stack,
			       const struct orchd_history_entry *h, char *err, size_t errlen)
{
	struct eng *g = E(e);
	json_object *ops;

	if (check_stack(stack, err, errlen))
		return -1;
	ops = json_object_new_array();
	json_object_array_add(ops, op_hist(g, stack, h));
	return txn(g, NULL, ops, NULL, err, errlen) ? -1 : 0;
}

/* The record and its chunks go, its history line comes, in one
 * transaction. */
static int etcd_remove(struct orchd_engine *e, const char *stack,
		       const struct orchd_history_entry *h, char *err, size_t errlen)
{
	struct eng *g = E(e);
	json_object *ops, *kv;
	char *key, *base;
	int r;

	if (check_stack(stack, err, errlen) || etcd_sync(e, err, errlen))
		return -1;
	key = k_stack(g, stack);
	if (get_kv(g, key, 0, &kv, NULL, err, errlen)) {
		free(key);
		return -1;
	}
	if (!kv) {
		free(key);
		return 1;
	}
	json_object_put(kv);
	base = k_chunks(g, stack);
	ops = json_object_new_array();
	json_object_array_add(ops, orchd_etcd_op_del(key, NULL));
	json_object_array_add(ops, orchd_etcd_op_del_prefix(base));
	if (h)
		json_object_array_add(ops, op_hist(g, stack, h));
	r = txn(g, NULL, ops, NULL, err, errlen);
	free(base);
	free(key);
	return r ? -1 : 0;
}

/* Range every key under prefix (keys only, or not), in key order or by
 * create revision: 0 and *kvs (a new array), -1. */
static int range_prefix(struct eng *g, const char *prefix, int keys_only, int by_create,
			json_object **kvs, char *err, size_t errlen)
{
	json_object *req = json_object_new_object(), *resp = NULL, *a;
	char *end = orchd_etcd_prefix_end(prefix);
	int r;

	*kvs = NULL;
	add_key(req, "key", prefix);
	add_key(req, "range_end", end);
	free(end);
	if (keys_only)
		json_object_object_add(req, "keys_only", json_object_new_boolean(1));
	if (by_create) {
		orchd_json_add_str(req, "sort_order", "ASCEND");
		orchd_json_add_str(req, "sort_target", "CREATE");
	}
	r = orchd_etcd_call(g->c, "kv/range", req, &resp, err, errlen);
	json_object_put(req);
	if (r)
		return -1;
	if (json_object_object_get_ex(resp, "kvs", &a) && json_object_is_type(a, json_type_array))
		*kvs = json_object_get(a);
	else
		*kvs = json_object_new_array();
	json_object_put(resp);
	return 0;
}

static int etcd_list(struct orchd_engine *e, char ***names, size_t *n, char *err, size_t errlen)
{
	struct eng *g = E(e);
	char *prefix = xasprintf("%sstacks/", g->prefix), **v = NULL;
	size_t plen = strlen(prefix), nr = 0;
	json_object *kvs;

	*names = NULL;
	*n = 0;
	if (range_prefix(g, prefix, 1, 0, &kvs, err, errlen)) {
		free(prefix);
		return -1;
	}
	if (json_object_array_length(kvs))
		v = xcalloc(json_object_array_length(kvs), sizeof(*v));
	for (size_t i = 0; i < json_object_array_length(kvs); i++) {
		size_t len;
		char *k = orchd_etcd_get_bytes(json_object_array_get_idx(kvs, i), "key", 0, &len);

		if (k && len > plen && !memcmp(k, prefix, plen) && !memchr(k, '\0', len) &&
		    orchd_stack_name_ok(k + plen))
			v[nr++] = xstrdup(k + plen); /* etcd sorts keys: sorted */
		free(k);
	}
	json_object_put(kvs);
	free(prefix);
	if (!nr) {
		free(v);
		v = NULL;
	}
	*names = v;
	*n = nr;
	return 0;
}

static int etcd_history_read(struct orchd_engine *e, const char *stack,
			     struct orchd_history_entry **entries, size_t *n, char *err,
			     size_t errlen)
{
	struct eng *g = E(e);
	struct orchd_history_entry *v = NULL;
	size_t nr = 0, alloc = 0;
	json_object *kvs;
	char *prefix;

	*entries = NULL;
	*n = 0;
	if (check_stack(stack, err, errlen))
		return -1;
	prefix = k_hist(g, stack);
	if (range_prefix(g, prefix, 0, 1, &kvs, err, errlen)) {
		free(prefix);
		return -1;
	}
	for (size_t i = 0; i < json_object_array_length(kvs); i++) {
		size_t len;
		char *s = orchd_etcd_get_bytes(json_object_array_get_idx(kvs, i), "value", 1, &len);
		const char *why;
		json_object *o = s ? orchd_json_parse_all(s, len, &why) : NULL;

		if (!o || !json_object_is_type(o, json_type_object)) {
			warning("%s: skipping an unreadable history entry", prefix);
		} else {
			ALLOC_GROW(v, nr + 1, alloc);
			orchd_history_from_json(o, &v[nr++]);
		}
		json_object_put(o);
		free(s);
	}
	json_object_put(kvs);
	free(prefix);
	*entries = v;
	*n = nr;
	return 0;
}

/* --- the lock ------------------------------------------------------------- */

/* The lease's keepalive: a renewal every third of its TTL.  Lost when etcd
 * says the lease is gone, or when no renewal succeeded for a whole TTL
 * (etcd has let it expire by then). */
static void *keepalive(void *arg)
{
	struct eng *g = arg;
	long long last_ok = now_ms();

	pthread_mutex_lock(&g->mu);
	while (!g->ka_stop && !g->lost) {
		struct timespec ts;
		json_object *req, *resp = NULL;
		char err[512];
		int r;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += g->ttl_ms / 3000;
		ts.tv_nsec += (g->ttl_ms / 3 % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!g->ka_stop && pthread_cond_timedwait(&g->ka_cv, &g->mu, &ts) != ETIMEDOUT)
			;
		if (g->ka_stop)
			break;
		pthread_mutex_unlock(&g->mu);
		req = json_object_new_object();
		orchd_etcd_add_int(req, "ID", g->lease);
		r = orchd_etcd_call_once(g->ka, "lease/keepalive", req, &resp, err, sizeof(err));
		json_object_put(req);
		if (!r && orchd_etcd_get_int(resp, "TTL") > 0) {
			last_ok = now_ms();
		} else if (!r) {
			set_lost(g, "its lease expired (etcd no longer knows it)");
		} else if (now_ms() - last_ok >= g->ttl_ms) {
			char why[700];

			snprintf(why, sizeof(why), "its lease could not be renewed for %lds (%s)",
				 g->ttl_ms / 1000, err);
			set_lost(g, why);
		}
		json_object_put(resp);
		pthread_mutex_lock(&g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

static char *this_host(void)
{
	char h[256];

	if (gethostname(h, sizeof(h)))
		return xstrdup("unknown");
	h[sizeof(h) - 1] = '\0';
	return xstrdup(h);
}

static void lease_revoke(struct eng *g, int64_t lease)
{
	json_object *req = json_object_new_object(), *resp = NULL;
	char err[256];

	orchd_etcd_add_int(req, "ID", lease);
	/* best effort: an unrevoked lease expires by itself */
	if (!orchd_etcd_call_once(g->c, "lease/revoke", req, &resp, err, sizeof(err)))
		json_object_put(resp);
	json_object_put(req);
}

/* Renew g->lease from now on, until keepalive_stop(). */
static int keepalive_start(struct eng *g, int64_t lease, char *err, size_t errlen)
{
	g->lease = lease;
	g->lost = 0;
	g->ka_stop = 0;
	if (orchd_thread_start(&g->ka_thread, keepalive, g)) {
		lease_revoke(g, lease);
		g->lease = 0;
		return orchd_set_err(err, errlen, "cannot start the lease keepalive thread");
	}
	g->ka_running = 1;
	return 0;
}

static void keepalive_stop(struct eng *g)
{
	if (!g->ka_running)
		return;
	pthread_mutex_lock(&g->mu);
	g->ka_stop = 1;
	pthread_cond_signal(&g->ka_cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->ka_thread, NULL);
	g->ka_running = 0;
}

static int etcd_lock(struct orchd_engine *e, const struct orchd_lock_request *req, char *err,
		     size_t errlen)
{
	struct eng *g = E(e);
	long long start = now_ms();
	json_object *info, *greq, *resp = NULL;
	struct timespec ts;
	const char *value;
	char *host, since[32];
	struct tm tm;
	int64_t lease;

	if (g->locked)
		return orchd_set_err(err, errlen, "etcd key %s is already locked by this process",
				     g->lock_key);
	greq = json_object_new_object();
	json_object_object_add(greq, "TTL", json_object_new_int64((g->ttl_ms + 999) / 1000));
	if (orchd_etcd_call(g->c, "lease/grant", greq, &resp, err, errlen)) {
		json_object_put(greq);
		return -1;
	}
	json_object_put(greq);
	lease = orchd_etcd_get_int(resp, "ID");
	json_object_put(resp);
	if (!lease)
		return orchd_set_err(err, errlen, "etcd at %s granted no lease",
				     orchd_etcd_endpoints(g->c));
	/* renewed while this waits too: a lease that expired while another
	 * run held the lock would make the lock this takes die at once */
	if (keepalive_start(g, lease, err, errlen))
		return -1;
	host = this_host();
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
	info = json_object_new_object();
	json_object_object_add(info, "pid", json_object_new_int64(getpid()));
	orchd_json_add_str(info, "host", host);
	orchd_json_add_str(info, "since", since);
	json_object_object_add(
		info, "since_ms",
		json_object_new_int64((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
	orchd_json_add_str(info, "run_id", req->run_id);
	orchd_json_add_str(info, "command", req->command);
	orchd_etcd_add_int(info, "lease", lease);
	value = json_object_to_json_string_ext(info, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE);
	free(host);
	for (;;) {
		json_object *cmps, *ops, *tr, *kv = NULL, *h;
		int r;

		if (__atomic_load_n(&g->lost, __ATOMIC_ACQUIRE)) {
			pthread_mutex_lock(&g->mu);
			orchd_set_err(err, errlen, "cannot lock etcd key %s: %s", g->lock_key,
				      g->lost_why);
			pthread_mutex_unlock(&g->mu);
			break;
		}
		cmps = json_object_new_array();
		ops = json_object_new_array();
		tr = json_object_new_object();

		json_object_array_add(cmps, orchd_etcd_cmp_create(g->lock_key, 0));
		json_object_array_add(ops,
				      orchd_etcd_op_put(g->lock_key, value, strlen(value), lease));
		json_object_object_add(tr, "compare", cmps);
		json_object_object_add(tr, "success", ops);
		{
			json_object *fail = json_object_new_array();

			json_object_array_add(fail, orchd_etcd_op_range(g->lock_key));
			json_object_object_add(tr, "failure", fail);
		}
		r = orchd_etcd_call(g->c, "kv/txn", tr, &resp, err, errlen);
		json_object_put(tr);
		if (r)
			break;
		if (op_get_bool(resp, "succeeded", false)) {
			g->fence = json_object_object_get_ex(resp, "header", &h)
					   ? orchd_etcd_get_int(h, "revision")
					   : 0;
			json_object_put(resp);
			goto locked;
		}
		/* held: by whom?  (ours, when a retried request was applied) */
		{
			json_object *rs, *r0, *rr, *kvs;

			if (json_object_object_get_ex(resp, "responses", &rs) &&
			    (r0 = json_object_array_get_idx(rs, 0)) &&
			    json_object_object_get_ex(r0, "response_range", &rr) &&
			    json_object_object_get_ex(rr, "kvs", &kvs) &&
			    json_object_array_length(kvs) > 0)
				kv = json_object_get(json_object_array_get_idx(kvs, 0));
		}
		json_object_put(resp);
		resp = NULL;
		if (kv && orchd_etcd_get_int(kv, "lease") == lease) {
			g->fence = orchd_etcd_get_int(kv, "create_revision");
			json_object_put(kv);
			goto locked;
		}
		if (now_ms() - start >= req->timeout_ms) {
			size_t len;
			char *hv = kv ? orchd_etcd_get_bytes(kv, "value", 1, &len) : NULL;
			const char *why;
			json_object *ho = hv ? orchd_json_parse_all(hv, len, &why) : NULL;
			const char *rid = ho ? op_get_str(ho, "run_id") : NULL;

			if (ho && json_object_is_type(ho, json_type_object))
				orchd_set_err(err, errlen,
					      "etcd key %s is locked by pid %lld on host %s since "
					      "%s%s%s%s; waited %.1fs",
					      g->lock_key, (long long)op_get_int(ho, "pid", 0),
					      op_get_str(ho, "host") ? op_get_str(ho, "host") : "?",
					      op_get_str(ho, "since") ? op_get_str(ho, "since")
								      : "?",
					      rid ? " (run " : "", rid ? rid : "", rid ? ")" : "",
					      (double)(req->timeout_ms > 0 ? req->timeout_ms : 0) /
						      1000.0);
			else
				orchd_set_err(err, errlen,
					      "etcd key %s is locked by another run; waited %.1fs",
					      g->lock_key,
					      (double)(req->timeout_ms > 0 ? req->timeout_ms : 0) /
						      1000.0);
			json_object_put(ho);
			free(hv);
			json_object_put(kv);
			break;
		}
		json_object_put(kv);
		{
			long long left = req->timeout_ms - (now_ms() - start);
			long nap = left < LOCK_POLL_MS ? (long)left : LOCK_POLL_MS;
			struct timespec t = {0, nap * 1000000L};

			nanosleep(&t, NULL);
		}
	}
	json_object_put(info);
	keepalive_stop(g);
	lease_revoke(g, lease);
	g->lease = 0;
	return -1;
locked:
	json_object_put(info);
	g->locked = 1;
	return 0;
}

static int etcd_lock_check(struct orchd_engine *e, char *err, size_t errlen)
{
	struct eng *g = E(e);
	int lost;

	pthread_mutex_lock(&g->mu);
	lost = g->locked && g->lost;
	pthread_mutex_unlock(&g->mu);
	return lost ? lost_err(g, err, errlen) : 0;
}

static int etcd_unlock(struct orchd_engine *e, char *err, size_t errlen)
{
	struct eng *g = E(e);
	int ret;

	ret = sync_pending(g, 1, err, errlen);
	if (!g->locked)
		return ret;
	keepalive_stop(g);
	if (!g->lost) {
		json_object *ops = json_object_new_array();
		char e2[512] = "";

		json_object_array_add(ops, orchd_etcd_op_del(g->lock_key, NULL));
		if (txn(g, NULL, ops, NULL, ret ? e2 : err, ret ? sizeof(e2) : errlen) < 0 && !ret)
			ret = -1;
	} else if (!ret) {
		ret = lost_err(g, err, errlen);
	}
	lease_revoke(g, g->lease);
	g->lease = 0;
	g->locked = 0;
	return ret;
}

static void etcd_close(struct orchd_engine *e)
{
	struct eng *g = E(e);
	char buf[512];

	if (etcd_unlock(e, buf, sizeof(buf)))
		error("%s", buf);
	pend_clear(g);
	free(g->pend);
	orchd_sealer_release(&g->seal);
	orchd_etcd_close(g->c);
	orchd_etcd_close(g->ka);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->ka_cv);
	free(g->prefix);
	free(g->lock_key);
	free(g->crypto_key);
	free(g);
	free(e->state_dir);
	free(e->pipeline_name);
	free(e);
}

static const struct orchd_engine_ops etcd_ops = {
	.name = "etcd",
	.select = etcd_select,
	.lock = etcd_lock,
	.unlock = etcd_unlock,
	.lock_check = etcd_lock_check,
	.read = etcd_read,
	.write = etcd_write,
	.write_deferred = etcd_write_deferred,
	.sync = etcd_sync,
	.remove = etcd_remove,
	.list = etcd_list,
	.history_append = etcd_history_append,
	.history_read = etcd_history_read,
	.close = etcd_close,
	.max_concurrent = 8,
};

int orchd_etcd_engine_view(struct orchd_engine *e, struct orchd_etcd_view *v)
{
	struct eng *g;

	memset(v, 0, sizeof(*v));
	if (!e || e->ops != &etcd_ops)
		return -1;
	g = E(e);
	v->c = g->c;
	v->prefix = g->prefix;
	v->lock_key = g->lock_key;
	v->fence = g->locked ? g->fence : 0;
	v->has_pass = g->seal.pass != NULL;
	return 0;
}

json_object *orchd_etcd_engine_seal(struct orchd_engine *e, const char *stack, const char *what,
				    json_object *value, char *err, size_t errlen)
{
	struct eng *g = E(e);
	json_object *o;

	pthread_mutex_lock(&g->mu);
	o = orchd_sealer_seal(&g->seal, stack, what, value, err, errlen);
	pthread_mutex_unlock(&g->mu);
	return o;
}

int orchd_etcd_engine_unseal(struct orchd_engine *e, const char *stack, const char *what,
			     json_object *enc, const char *where, json_object **value, char *err,
			     size_t errlen)
{
	struct eng *g = E(e);
	int r;

	pthread_mutex_lock(&g->mu);
	r = orchd_sealer_open(&g->seal, stack, what, enc, where, value, err, errlen);
	pthread_mutex_unlock(&g->mu);
	return r;
}

/* The password of auth.user: ORCHD_ETCD_PASSWORD, else the file's first
 * line. */
static int read_password(const struct orchd_engine_config *cfg, char **out, char *err,
			 size_t errlen)
{
	const char *env = getenv("ORCHD_ETCD_PASSWORD");
	struct op_buf sb = OP_BUF_INIT;
	char buf[4096];
	size_t n;
	FILE *f;

	*out = NULL;
	if (!cfg->user)
		return 0;
	if (env && *env) {
		*out = xstrdup(env);
		return 0;
	}
	if (!cfg->password_file)
		return orchd_set_err(err, errlen,
				     "etcd user '%s' needs a password: set ORCHD_ETCD_PASSWORD "
				     "or auth.password_file",
				     cfg->user);
	f = fopen(cfg->password_file, "re");
	if (!f)
		return orchd_set_err(err, errlen, "cannot read the etcd password file %s: %s",
				     cfg->password_file, strerror(errno));
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && sb.len < 65536)
		op_buf_add(&sb, buf, n);
	fclose(f);
	OPENSSL_cleanse(buf, sizeof(buf));
	*out = op_buf_detach(&sb, &n);
	if (!*out)
		*out = xstrdup("");
	(*out)[strcspn(*out, "\r\n")] = '\0';
	return 0;
}

int orchd_etcd_engine_open(const struct orchd_engine_config *cfg, const char *state_dir,
			   const char *pipeline_name, struct orchd_engine **out, char *err,
			   size_t errlen)
{
	struct orchd_etcd_opts o = ORCHD_ETCD_OPTS_INIT, ko;
	const char *env = getenv("ORCHD_ETCD_ENDPOINTS");
	char **eps = NULL, *pass = NULL, *owner, *doc;
	size_t neps = 0;
	struct orchd_engine *e;
	struct eng *g;
	int r;

	*out = NULL;
	if (env && *env) {
		char *copy = xstrdup(env), *save = NULL;

		for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
			eps = xrealloc(eps, (neps + 1) * sizeof(*eps));
			eps[neps++] = xstrdup(t);
		}
		free(copy);
	} else {
		for (size_t i = 0; i < cfg->nendpoints; i++) {
			eps = xrealloc(eps, (neps + 1) * sizeof(*eps));
			eps[neps++] = xstrdup(cfg->endpoints[i]);
		}
	}
	if (read_password(cfg, &pass, err, errlen))
		goto fail_eps;
	g = xcalloc(1, sizeof(*g));
	o.endpoints = (const char *const *)eps;
	o.nendpoints = neps;
	o.ca_file = cfg->ca_file;
	o.cert_file = cfg->cert_file;
	o.key_file = cfg->key_file;
	o.user = cfg->user;
	o.password = pass;
	g->ttl_ms = cfg->lock_ttl_ms > 0 ? (long)cfg->lock_ttl_ms : DEFAULT_TTL_MS;
	ko = o;
	ko.request_timeout_ms = g->ttl_ms / 3;
	ko.connect_timeout_ms = g->ttl_ms / 3 < 3000 ? g->ttl_ms / 3 : 3000;
	ko.unavailable_ms = 0;
	if (orchd_etcd_open(&o, &g->c, err, errlen) || orchd_etcd_open(&ko, &g->ka, err, errlen)) {
		orchd_etcd_close(g->c);
		free(g);
		goto fail_pass;
	}
	if (cfg->prefix) {
		size_t len = strlen(cfg->prefix);

		g->prefix = xasprintf("%s%s", cfg->prefix,
				      len && cfg->prefix[len - 1] == '/' ? "" : "/");
	} else {
		g->prefix = xasprintf("orchd/%s/", pipeline_name ? pipeline_name : "default");
	}
	g->lock_key = xasprintf("%slock", g->prefix);
	g->crypto_key = xasprintf("%scrypto", g->prefix);
	owner = xasprintf("etcd prefix %s", g->prefix);
	doc = xasprintf("etcd key %s", g->crypto_key);
	r = orchd_sealer_init(&g->seal, owner, doc, err, errlen);
	free(owner);
	free(doc);
	if (r) {
		orchd_etcd_close(g->c);
		orchd_etcd_close(g->ka);
		free(g->prefix);
		free(g->lock_key);
		free(g->crypto_key);
		free(g);
		goto fail_pass;
	}
	g->seal.load = crypto_load;
	g->seal.store = crypto_store;
	g->seal.ctx = g;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->ka_cv, NULL);
	e = xcalloc(1, sizeof(*e));
	e->ops = &etcd_ops;
	e->priv = g;
	e->state_dir = xstrdup(state_dir ? state_dir : "");
	e->pipeline_name = xstrdup(pipeline_name ? pipeline_name : "");
	*out = e;
	r = 0;
	goto done;
fail_pass:
fail_eps:
	r = -1;
done:
	if (pass)
		orchd_crypto_free_secret(pass, strlen(pass));
	for (size_t i = 0; i < neps; i++)
		free(eps[i]);
	free(eps);
	return r;
}
