/*
 * record: orchd's stack record document and its secrets.  See record.h.
 */
#include "interfaces/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

#include "crypto.h"
#include "orchd_protocol.h"
#include "util.h"

#define STACK_FORMAT   "orchd-stack"
#define STACK_VERSION  1
#define CRYPTO_FORMAT  "orchd-crypto"
#define CRYPTO_VERSION 1
#define KEY_CHECK      "orchd-key-check"

int orchd_sealer_init(struct orchd_sealer *s, const char *owner, const char *doc, char *err,
		      size_t errlen)
{
	memset(s, 0, sizeof(*s));
	if (orchd_crypto_passphrase(&s->pass, err, errlen))
		return -1;
	s->owner = xstrdup(owner);
	s->doc = xstrdup(doc);
	return 0;
}

void orchd_sealer_release(struct orchd_sealer *s)
{
	orchd_crypto_key_clear(&s->key);
	if (s->pass)
		orchd_crypto_free_secret(s->pass, strlen(s->pass));
	free(s->owner);
	free(s->doc);
	memset(s, 0, sizeof(*s));
}

json_object *orchd_json_parse_all(const char *buf, size_t len, const char **why)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o;
	size_t end;

	*why = NULL;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (!o) {
		enum json_tokener_error jerr = json_tokener_get_error(tok);

		*why = jerr == json_tokener_continue ? "unexpected end of data"
						     : json_tokener_error_desc(jerr);
		json_tokener_free(tok);
		return NULL;
	}
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	for (; end < len; end++) {
		if (buf[end] != ' ' && buf[end] != '\n' && buf[end] != '\t' && buf[end] != '\r') {
			json_object_put(o);
			*why = "trailing data after the JSON value";
			return NULL;
		}
	}
	return o;
}

static char *aad_for(const char *stack, const char *what, const char *key, size_t *len)
{
	struct op_buf sb = OP_BUF_INIT;

	op_buf_add(&sb, "orchd", 6); /* with its NUL: fields are NUL-separated */
	op_buf_add(&sb, stack, strlen(stack) + 1);
	op_buf_add(&sb, what, strlen(what) + 1);
	if (key)
		op_buf_add(&sb, key, strlen(key) + 1);
	return op_buf_detach(&sb, len);
}

/*
 * Load (or, with create, make) STATE_DIR/crypto.json and derive the key into
 * l->key, once per engine.  Needs l->pass.
 */
int orchd_sealer_key(struct orchd_sealer *l, int create, char *err, size_t errlen)
{
	char *buf = NULL, *pt = NULL;
	struct orchd_kdf_params kp;
	json_object *o = NULL, *chk;
	unsigned char *salt = NULL;
	const char *why, *nonce, *ct;
	size_t len, ptlen = 0;
	int r, ret = -1, tries = 0;

	if (l->key.set)
		return 0;
	if (!l->pass)
		return orchd_set_err(err, errlen, "no passphrase is set " ORCHD_PASS_HINT);
again:
	free(buf);
	buf = NULL;
	r = l->load(l->ctx, &buf, &len, err, errlen);
	if (r < 0)
		goto out;
	if (r == 1) {
		json_object *c;
		char *b64, *n64 = NULL, *c64 = NULL;
		const char *s;

		if (!create) {
			orchd_set_err(err, errlen,
				      "%s is missing: the secrets of %s cannot be decrypted",
				      l->doc, l->owner);
			goto out;
		}
		if (tries++ || orchd_kdf_params_new(&kp, err, errlen) ||
		    orchd_crypto_derive(&kp, l->pass, strlen(l->pass), &l->key, err, errlen))
			goto out;
		if (orchd_crypto_encrypt(&l->key, KEY_CHECK, sizeof(KEY_CHECK), KEY_CHECK,
					 strlen(KEY_CHECK), &n64, &c64, err, errlen)) {
			orchd_crypto_key_clear(&l->key);
			goto out;
		}
		o = json_object_new_object();
		orchd_json_add_str(o, "format", CRYPTO_FORMAT);
		json_object_object_add(o, "version", json_object_new_int(CRYPTO_VERSION));
		orchd_json_add_str(o, "kdf", "scrypt");
		b64 = orchd_b64_encode(kp.salt, sizeof(kp.salt));
		orchd_json_add_str(o, "salt", b64);
		free(b64);
		json_object_object_add(o, "N", json_object_new_int64((int64_t)kp.n));
		json_object_object_add(o, "r", json_object_new_int64((int64_t)kp.r));
		json_object_object_add(o, "p", json_object_new_int64((int64_t)kp.p));
		c = json_object_new_object();
		orchd_json_add_str(c, "enc", "aes-256-gcm");
		orchd_json_add_str(c, "nonce", n64);
		orchd_json_add_str(c, "ct", c64);
		json_object_object_add(o, "check", c);
		free(n64);
		free(c64);
		s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_SPACED |
							      JSON_C_TO_STRING_NOSLASHESCAPE);
		r = l->store(l->ctx, s, strlen(s), err, errlen);
		if (r) {
			orchd_crypto_key_clear(&l->key);
			if (r < 0)
				goto out;
			/* Someone else created it meanwhile: use theirs. */
			json_object_put(o);
			o = NULL;
			goto again;
		}
		ret = 0;
		goto out;
	}
	o = orchd_json_parse_all(buf, len, &why);
	if (!o) {
		orchd_set_err(err, errlen, "%s is corrupt: %s", l->doc, why);
		goto out;
	}
	if (!op_get_str(o, "format") || strcmp(op_get_str(o, "format"), CRYPTO_FORMAT) ||
	    op_get_int(o, "version", 0) != CRYPTO_VERSION || !op_get_str(o, "kdf") ||
	    strcmp(op_get_str(o, "kdf"), "scrypt")) {
		orchd_set_err(err, errlen,
			      "%s: unsupported format (this orchd reads %s version %d)", l->doc,
			      CRYPTO_FORMAT, CRYPTO_VERSION);
		goto out;
	}
	salt = op_get_str(o, "salt") ? orchd_b64_decode(op_get_str(o, "salt"), &len) : NULL;
	if (!salt || len != sizeof(kp.salt) || !json_object_object_get_ex(o, "check", &chk) ||
	    !(nonce = op_get_str(chk, "nonce")) || !(ct = op_get_str(chk, "ct"))) {
		orchd_set_err(err, errlen, "%s is corrupt: bad salt or key check", l->doc);
		goto out;
	}
	memcpy(kp.salt, salt, sizeof(kp.salt));
	kp.n = (uint64_t)op_get_int(o, "N", 0);
	kp.r = (uint64_t)op_get_int(o, "r", 0);
	kp.p = (uint64_t)op_get_int(o, "p", 0);
	if (orchd_crypto_derive(&kp, l->pass, strlen(l->pass), &l->key, err, errlen))
		goto out;
	if (orchd_crypto_decrypt(&l->key, KEY_CHECK, sizeof(KEY_CHECK), nonce, ct, &pt, &ptlen, err,
				 errlen) ||
	    ptlen != strlen(KEY_CHECK) || memcmp(pt, KEY_CHECK, ptlen)) {
		orchd_crypto_key_clear(&l->key);
		orchd_set_err(err, errlen, "wrong passphrase for %s", l->owner);
		goto out;
	}
	ret = 0;
out:
	orchd_crypto_free_secret(pt, ptlen);
	OPENSSL_cleanse(&kp, sizeof(kp));
	free(salt);
	free(buf);
	json_object_put(o);
	return ret;
}

static json_object *seal(struct orchd_sealer *l, const char *stack, const char *what,
			 const char *key, json_object *value, char *err, size_t errlen)
{
	const char *pt = json_object_to_json_string_ext(
		value, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *aad, *n64, *c64;
	size_t aadlen;
	json_object *o;

	aad = aad_for(stack, what, key, &aadlen);
	if (orchd_crypto_encrypt(&l->key, aad, aadlen, pt, strlen(pt), &n64, &c64, err, errlen)) {
		free(aad);
		return NULL;
	}
	free(aad);
	o = json_object_new_object();
	json_object_object_add(o, "secret", json_object_new_boolean(1));
	orchd_json_add_str(o, "enc", "aes-256-gcm");
	orchd_json_add_str(o, "nonce", n64);
	orchd_json_add_str(o, "ct", c64);
	free(n64);
	free(c64);
	return o;
}

/* 0 and *value (a new reference; NULL for JSON null), or -1. */
static int unseal(struct orchd_sealer *l, const char *stack, const char *what, const char *key,
		  json_object *enc, const char *path, json_object **value, char *err, size_t errlen)
{
	const char *nonce = op_get_str(enc, "nonce"), *ct = op_get_str(enc, "ct"), *why;
	char *aad, *pt = NULL, msg[256];
	size_t aadlen, ptlen = 0;
	char what_buf[300];

	*value = NULL;
	if (key)
		snprintf(what_buf, sizeof(what_buf), "output '%s'", key);
	else
		snprintf(what_buf, sizeof(what_buf), "state");
	if (!nonce || !ct || !op_get_str(enc, "enc") ||
	    strcmp(op_get_str(enc, "enc"), "aes-256-gcm"))
		return orchd_set_err(err, errlen, "stack %s: %s in %s: malformed encrypted value",
				     stack, what_buf, path);
	if (orchd_sealer_key(l, 0, err, errlen))
		return -1;
	aad = aad_for(stack, what, key, &aadlen);
	if (orchd_crypto_decrypt(&l->key, aad, aadlen, nonce, ct, &pt, &ptlen, msg, sizeof(msg))) {
		free(aad);
		return orchd_set_err(err, errlen, "stack %s: cannot decrypt %s in %s: %s", stack,
				     what_buf, path, msg);
	}
	free(aad);
	*value = orchd_json_parse_all(pt, ptlen, &why);
	if (!*value && strcmp(pt, "null")) {
		orchd_crypto_free_secret(pt, ptlen);
		return orchd_set_err(err, errlen, "stack %s: %s in %s: decrypted value is not JSON",
				     stack, what_buf, path);
	}
	orchd_crypto_free_secret(pt, ptlen);
	return 0;
}

json_object *orchd_sealer_seal(struct orchd_sealer *l, const char *stack, const char *what,
			       json_object *value, char *err, size_t errlen)
{
	if (orchd_sealer_key(l, 1, err, errlen))
		return NULL;
	return seal(l, stack, what, NULL, value, err, errlen);
}

int orchd_sealer_open(struct orchd_sealer *l, const char *stack, const char *what, json_object *enc,
		      const char *where, json_object **value, char *err, size_t errlen)
{
	return unseal(l, stack, what, NULL, enc, where, value, err, errlen);
}

/* --- records -------------------------------------------------------------- */

/* Check the shape of rec->outputs and whether secrets need a passphrase:
 * before anything is written. */
int orchd_record_precheck(struct orchd_sealer *l, const char *stack,
			  const struct orchd_stack_record *rec, int *need_key, char *err,
			  size_t errlen)
{
	*need_key = 0;
	if (rec->outputs && !json_object_is_type(rec->outputs, json_type_object))
		return orchd_set_err(err, errlen, "stack %s: outputs must be an object", stack);
	if (rec->state_secret && rec->state && !rec->state_masked) {
		if (!l->pass)
			return orchd_set_err(err, errlen,
					     "stack %s: state is secret and no passphrase is "
					     "set " ORCHD_PASS_HINT,
					     stack);
		*need_key = 1;
	}
	if (!rec->outputs)
		return 0;
	json_object_object_foreach(rec->outputs, k, v)
	{
		if (!json_object_is_type(v, json_type_object))
			return orchd_set_err(
				err, errlen,
				"stack %s: output '%s' must be {\"value\": ..., \"secret\": ...}",
				stack, k);
		if (op_get_bool(v, "masked", false))
			continue; /* carried over encrypted, see record_to_json() */
		if (!op_get_bool(v, "secret", false))
			continue;
		if (!l->pass)
			return orchd_set_err(err, errlen,
					     "stack %s: output '%s' is secret and no passphrase is "
					     "set " ORCHD_PASS_HINT,
					     stack, k);
		*need_key = 1;
	}
	return 0;
}

/* The encrypted entry `key` (NULL: the state) of the stack file old. */
static json_object *old_sealed(json_object *old, const char *key)
{
	json_object *v = NULL, *outs;

	if (!old)
		return NULL;
	if (!key)
		json_object_object_get_ex(old, "state", &v);
	else if (json_object_object_get_ex(old, "outputs", &outs))
		json_object_object_get_ex(outs, key, &v);
	return v && json_object_is_type(v, json_type_object) && op_get_str(v, "enc") ? v : NULL;
}

/*
 * old: the current stack file (NULL if none).  Values read masked (no
 * passphrase) are carried over from it still encrypted, so a run without
 * the passphrase never loses secrets it could not read.
 */
json_object *orchd_record_to_json(struct orchd_sealer *l, const char *stack, json_object *old,
				  const struct orchd_stack_record *rec, char *err, size_t errlen)
{
	json_object *o = json_object_new_object(), *outs = json_object_new_object();
	struct timespec ts;
	int state_secret = rec->state_secret;

	clock_gettime(CLOCK_REALTIME, &ts);
	orchd_json_add_str(o, "format", STACK_FORMAT);
	json_object_object_add(o, "version", json_object_new_int(STACK_VERSION));
	orchd_json_add_str(o, "stack", stack);
	json_object_object_add(
		o, "updated_at",
		json_object_new_int64((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
	if (rec->state_masked && !rec->state) {
		json_object *s = old_sealed(old, NULL);

		if (!s) {
			orchd_set_err(err, errlen, "stack %s: state is masked and no longer stored",
				      stack);
			goto fail;
		}
		json_object_object_add(o, "state", json_object_get(s));
		state_secret = 1;
	} else if (rec->state_secret && rec->state) {
		json_object *s = seal(l, stack, "state", NULL, rec->state, err, errlen);

		if (!s)
			goto fail;
		json_object_object_add(o, "state", s);
	} else {
		json_object_object_add(o, "state", json_object_get(rec->state));
	}
	json_object_object_add(o, "state_secret", json_object_new_boolean(state_secret));
	json_object_object_add(o, "outputs", outs);
	if (rec->outputs) {
		json_object_object_foreach(rec->outputs, k, v)
		{
			json_object *val = NULL, *ent;

			json_object_object_get_ex(v, "value", &val);
			if (op_get_bool(v, "masked", false)) {
				ent = old_sealed(old, k);
				if (!ent) {
					orchd_set_err(
						err, errlen,
						"stack %s: output '%s' is masked and no longer "
						"stored",
						stack, k);
					goto fail;
				}
				json_object_get(ent);
			} else if (op_get_bool(v, "secret", false)) {
				ent = seal(l, stack, "output", k, val, err, errlen);
				if (!ent)
					goto fail;
			} else {
				ent = json_object_new_object();
				json_object_object_add(ent, "value", json_object_get(val));
				json_object_object_add(ent, "secret", json_object_new_boolean(0));
			}
			json_object_object_add(outs, k, ent);
		}
	}
	orchd_record_meta_to_json(rec, o);
	return o;
fail:
	json_object_put(o);
	return NULL;
}

/* Parse and check the header of a stack file. */
json_object *orchd_record_load(const char *stack, const char *path, const char *buf, size_t len,
			       char *err, size_t errlen)
{
	const char *why, *fmt, *name;
	json_object *o = orchd_json_parse_all(buf, len, &why);
	int64_t ver;

	if (!o) {
		orchd_set_err(err, errlen, "%s is corrupt: %s (not replacing it)", path, why);
		return NULL;
	}
	fmt = json_object_is_type(o, json_type_object) ? op_get_str(o, "format") : NULL;
	if (!fmt || strcmp(fmt, STACK_FORMAT)) {
		orchd_set_err(err, errlen, "%s is not an orchd stack record (not replacing it)",
			      path);
		goto fail;
	}
	ver = op_get_int(o, "version", 0);
	if (ver != STACK_VERSION) {
		orchd_set_err(err, errlen,
			      "%s has version %lld, this orchd reads version %d "
			      "(not replacing it)",
			      path, (long long)ver, STACK_VERSION);
		goto fail;
	}
	name = op_get_str(o, "stack");
	if (!name || strcmp(name, stack)) {
		orchd_set_err(err, errlen, "%s holds stack '%s', expected '%s'", path,
			      name ? name : "", stack);
		goto fail;
	}
	return o;
fail:
	json_object_put(o);
	return NULL;
}

int orchd_record_from_json(struct orchd_sealer *l, const char *stack, const char *path,
			   json_object *o, struct orchd_stack_record *rec, char *err, size_t errlen)
{
	json_object *v, *outs;

	rec->state_secret = op_get_bool(o, "state_secret", false);
	if (json_object_object_get_ex(o, "state", &v) && v) {
		if (json_object_is_type(v, json_type_object) && op_get_bool(v, "secret", false) &&
		    op_get_str(v, "enc")) {
			rec->state_secret = 1;
			if (!l->pass) {
				rec->state_masked = 1;
				rec->masked++;
			} else if (unseal(l, stack, "state", NULL, v, path, &rec->state, err,
					  errlen)) {
				return -1;
			}
		} else {
			rec->state = json_object_get(v);
		}
	}
	if (json_object_object_get_ex(o, "outputs", &outs) &&
	    json_object_is_type(outs, json_type_object)) {
		json_object_object_foreach(outs, k, ent)
		{
			json_object *val = NULL;

			if (!json_object_is_type(ent, json_type_object))
				return orchd_set_err(err, errlen, "%s: output '%s' is malformed",
						     path, k);
			if (op_get_str(ent, "enc")) {
				if (!l->pass) {
					json_object *m = json_object_new_object();

					json_object_object_add(m, "value", NULL);
					json_object_object_add(m, "secret",
							       json_object_new_boolean(1));
					json_object_object_add(m, "masked",
							       json_object_new_boolean(1));
					json_object_object_add(rec->outputs, k, m);
					rec->masked++;
					continue;
				}
				if (unseal(l, stack, "output", k, ent, path, &val, err, errlen))
					return -1;
				orchd_stack_record_set_output(rec, k, val, 1);
			} else {
				json_object_object_get_ex(ent, "value", &val);
				orchd_stack_record_set_output(rec, k, json_object_get(val),
							      op_get_bool(ent, "secret", false));
			}
		}
	}
	orchd_record_meta_from_json(o, rec);
	return 0;
}

int orchd_record_has_masked(const struct orchd_stack_record *rec)
{
	if (rec->state_masked && !rec->state)
		return 1;
	if (!rec->outputs || !json_object_is_type(rec->outputs, json_type_object))
		return 0;
	json_object_object_foreach(rec->outputs, k, v)
	{
		(void)k;
		if (json_object_is_type(v, json_type_object) && op_get_bool(v, "masked", false))
			return 1;
	}
	return 0;
}

json_object *orchd_history_to_json(const struct orchd_history_entry *h)
{
	json_object *o = json_object_new_object();

	orchd_json_add_str(o, "run_id", h->run_id);
	orchd_json_add_str(o, "action", h->action);
	orchd_json_add_str(o, "status", h->status);
	json_object_object_add(o, "started_at", json_object_new_int64(h->started_at));
	json_object_object_add(o, "ended_at", json_object_new_int64(h->ended_at));
	json_object_object_add(o, "attempts", json_object_new_int(h->attempts));
	orchd_action_meta_to_json(&h->meta, o);
	return o;
}

void orchd_history_from_json(json_object *o, struct orchd_history_entry *h)
{
	memset(h, 0, sizeof(*h));
	h->run_id = xstrdup_or_null(op_get_str(o, "run_id"));
	h->action = xstrdup_or_null(op_get_str(o, "action"));
	h->status = xstrdup_or_null(op_get_str(o, "status"));
	h->started_at = op_get_int(o, "started_at", 0);
	h->ended_at = op_get_int(o, "ended_at", 0);
	h->attempts = (int)op_get_int(o, "attempts", 0);
	orchd_action_meta_from_json(&h->meta, o);
}
