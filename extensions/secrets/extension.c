/*
 * extension: the secrets extension's logic.  plan and apply read every
 * configured value (environment variable, file, `sops --decrypt`,
 * `age --decrypt`) into memory, hash each with a per-instance salt, and
 * compare the hashes with the previous state; apply sends the values as
 * secret outputs.  Values never reach a log: the tools' stdout (the
 * plaintext) is read into memory only, and their stderr is logged only
 * after every known value in it was replaced by "***".
 *
 * The tools run through the protocol library's op_cmd_run(); hashes come
 * from libcrypto (EVP SHA-256).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include <orchd/orchd_protocol.h>

#include "extension.h"
#include "models.h"

#define SECRETS_KILL_GRACE_MS 5000
#define SECRETS_VALUE_MAX     (256 * 1024)	 /* one value (env, file, age) */
#define SECRETS_TOOL_OUT_MAX  (16 * 1024 * 1024) /* a tool's stdout (sops document) */
#define SECRETS_TOOL_ERR_MAX  (64 * 1024)	 /* a tool's stderr kept for the log */
#define SECRETS_SALT_HEX      32

/* Overwrite and free a buffer that held plaintext. */
static void wipe_free(char *p, size_t len)
{
	if (p) {
		explicit_bzero(p, len);
		free(p);
	}
}

static void buf_wipe(struct op_buf *sb)
{
	if (sb->buf)
		explicit_bzero(sb->buf, sb->alloc);
	op_buf_release(sb);
}

/* --- masks: every plaintext this process knows, replaced by *** in logs ---- */

struct masks {
	char **v;
	size_t nr, alloc;
};

static void masks_add_len(struct masks *m, const char *s, size_t len)
{
	if (!len)
		return;
	for (size_t i = 0; i < m->nr; i++)
		if (strlen(m->v[i]) == len && !memcmp(m->v[i], s, len))
			return;
	if (m->nr == m->alloc) {
		m->alloc = m->alloc ? 2 * m->alloc : 16;
		m->v = secrets_must(realloc(m->v, m->alloc * sizeof(*m->v)));
	}
	m->v[m->nr++] = secrets_must(strndup(s, len));
}

/* s itself, and each of its lines (a multi-line value may leak line by line). */
static void masks_add(struct masks *m, const char *s)
{
	const char *p = s, *nl;

	masks_add_len(m, s, strlen(s));
	while ((nl = strchr(p, '\n'))) {
		size_t l = (size_t)(nl - p);

		if (l && p[l - 1] == '\r')
			l--;
		masks_add_len(m, p, l);
		p = nl + 1;
	}
	if (p != s)
		masks_add_len(m, p, strlen(p));
}

/* Every string and scalar leaf of v, and v's JSON text. */
static void masks_add_json(struct masks *m, struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		masks_add(m, json_object_get_string(v));
		return;
	case json_type_object: {
		json_object_object_foreach(v, k, val)
		{
			(void)k;
			masks_add_json(m, val);
		}
		break;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			masks_add_json(m, json_object_array_get_idx(v, i));
		break;
	case json_type_null:
		return;
	default:
		break;
	}
	masks_add(m, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
}

static void masks_release(struct masks *m)
{
	for (size_t i = 0; i < m->nr; i++)
		wipe_free(m->v[i], strlen(m->v[i]));
	free(m->v);
	memset(m, 0, sizeof(*m));
}

static int by_length_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);

	return la < lb ? 1 : la > lb ? -1 : 0;
}

/*
 * Log each line of a tool's stderr at level warning, prefixed "TOOL: ",
 * with every mask replaced by "***" (longest first) and control or
 * non-ASCII bytes by '?'.
 */
static void log_masked(struct op_ext *ext, const char *tool, const char *text, size_t len,
		       struct masks *m)
{
	struct op_buf sb = OP_BUF_INIT;
	const char *p = text, *end = text + len;

	if (m->nr)
		qsort(m->v, m->nr, sizeof(*m->v), by_length_desc);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		op_buf_reset(&sb);
		while (p < le) {
			size_t i, ml = 0;

			for (i = 0; i < m->nr; i++) {
				ml = strlen(m->v[i]);
				if (ml <= (size_t)(le - p) && !memcmp(p, m->v[i], ml))
					break;
			}
			if (i < m->nr) {
				op_buf_addstr(&sb, "***");
				p += ml;
				continue;
			}
			op_buf_addch(&sb, (*p >= 0x20 && *p < 0x7f) || *p == '\t' ? *p : '?');
			p++;
		}
		/* the appends above fail only together (sticky): one check */
		if (op_buf_failed(&sb))
			secrets_must(NULL);
		if (sb.len)
			op_ext_log(ext, "warning", "%s: %s", tool, op_buf_str(&sb));
		p = le + 1;
	}
	buf_wipe(&sb);
}

/* --- the tool runner ------------------------------------------------------- */

/*
 * Run argv with stdin from /dev/null (op_cmd_run: own process group, a
 * cancel or SIGTERM/SIGINT sends SIGTERM to the group, SIGKILL after the
 * grace); env: NULL or NULL-terminated "NAME=VALUE" additions.  stdout (the
 * plaintext) and stderr are captured in r, never logged.  Returns 0 when
 * the tool ran (whatever its status; release r), or -1 with r released
 * when a cancel arrived (*cancelled set) or it could not be started (the
 * error added to errs at path).
 */
static int run_tool(struct op_ext *ext, const char *const *argv, char *const *env, const char *path,
		    struct op_errors *errs, bool *cancelled, struct op_cmd_result *r)
{
	struct op_cmd_opts o = {
		.argv = (char *const *)(uintptr_t)argv,
		.env = env,
		.out = {OP_CMD_CAPTURE, NULL, SECRETS_TOOL_OUT_MAX},
		.err = {OP_CMD_CAPTURE, NULL, SECRETS_TOOL_ERR_MAX},
		.kill_grace_ms = SECRETS_KILL_GRACE_MS,
	};
	int ret = op_cmd_run(ext, &o, r);

	if (r->cancelled) {
		*cancelled = true;
	} else if (ret < 0) {
		op_errors_add(errs, path, "%s%s", r->error,
			      strncmp(r->error, "cannot run ", 11)
				      ? ""
				      : " (install it or put it on PATH)");
	} else {
		return 0;
	}
	op_cmd_result_release(r);
	return -1;
}

/* --- reading values --------------------------------------------------------- */

/*
 * Turn plaintext bytes into a JSON string value: one trailing newline
 * ("\n" or "\r\n") stripped; at most SECRETS_VALUE_MAX bytes of UTF-8 text
 * without NUL bytes.  NULL with an error at path when it is not.
 */
static struct json_object *text_value(const char *buf, size_t len, const char *path,
				      const char *what, struct op_errors *errs)
{
	if (len && buf[len - 1] == '\n') {
		len--;
		if (len && buf[len - 1] == '\r')
			len--;
	}
	if (len > SECRETS_VALUE_MAX) {
		op_errors_add(errs, path, "%s is larger than %d bytes", what, SECRETS_VALUE_MAX);
		return NULL;
	}
	if (!op_utf8_valid(buf, len)) {
		op_errors_add(errs, path, "%s is not UTF-8 text (base64-encode binary secrets)",
			      what);
		return NULL;
	}
	return secrets_must(json_object_new_string_len(buf, (int)len));
}

static struct json_object *read_env(const struct secrets_value *v, struct op_errors *errs)
{
	const char *s = getenv(v->env);
	char path[512];

	snprintf(path, sizeof(path), "values.%.300s.env", v->name);
	if (!s) {
		op_errors_add(errs, path,
			      "environment variable '%s' is not set (add it to the "
			      "instance's pass_env)",
			      v->env);
		return NULL;
	}
	return text_value(s, strlen(s), path, "the variable", errs);
}

static struct json_object *read_file(const struct secrets_value *v, struct op_errors *errs)
{
	const size_t cap = SECRETS_VALUE_MAX + 3; /* the value, "\r\n", one byte too many */
	char path[512], *buf, *what;
	struct json_object *out;
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd = open(v->file, O_RDONLY | O_CLOEXEC);

	snprintf(path, sizeof(path), "values.%.300s.file", v->name);
	if (fd < 0) {
		op_errors_add(errs, path, "cannot read '%s': %s", v->file, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		op_errors_add(errs, path, "'%s' is not a regular file", v->file);
		close(fd);
		return NULL;
	}
	buf = secrets_must(malloc(cap));
	while (len < cap && (n = read(fd, buf + len, cap - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			op_errors_add(errs, path, "cannot read '%s': %s", v->file, strerror(errno));
			close(fd);
			wipe_free(buf, cap);
			return NULL;
		}
		len += (size_t)n;
	}
	close(fd);
	if (asprintf(&what, "'%s'", v->file) < 0)
		what = NULL;
	secrets_must(what);
	out = text_value(buf, len, path, what, errs);
	free(what);
	wipe_free(buf, cap);
	return out;
}

/* Decrypted sops documents, one per file (a file is decrypted once per run). */
struct sops_doc {
	char *file;
	struct json_object *doc; /* NULL: decryption failed (error reported) */
};

struct sops_cache {
	struct sops_doc *v;
	size_t nr;
};

static void sops_cache_release(struct sops_cache *c)
{
	for (size_t i = 0; i < c->nr; i++) {
		free(c->v[i].file);
		json_object_put(c->v[i].doc);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

static bool have_sops_key(const char *age_key_file)
{
	return age_key_file || getenv("SOPS_AGE_KEY_FILE") || getenv("SOPS_AGE_KEY") ||
	       getenv("SOPS_AGE_KEY_CMD");
}

/* `sops --decrypt --output-type json FILE` parsed; NULL on failure (errs) or cancel. */
static struct json_object *sops_decrypt(struct op_ext *ext, const char *file, const char *path,
					const char *age_key_file, struct masks *m,
					struct op_errors *errs, bool *cancelled)
{
	const char *argv[] = {"sops", "--decrypt", "--output-type", "json", file, NULL};
	char *env[] = {(char *)(uintptr_t) "SOPS_DISABLE_VERSION_CHECK=true", NULL, NULL};
	struct json_object *doc = NULL;
	struct op_cmd_result r;
	char st[64], *keyvar = NULL;
	int ret;

	if (age_key_file) {
		if (asprintf(&keyvar, "SOPS_AGE_KEY_FILE=%s", age_key_file) < 0)
			keyvar = NULL;
		env[1] = secrets_must(keyvar);
	}
	ret = run_tool(ext, argv, env, path, errs, cancelled, &r);
	free(keyvar);
	if (ret < 0)
		return NULL;
	if (op_cmd_exited(&r, 0) && !r.out.truncated) {
		struct json_tokener *tok = secrets_must(json_tokener_new());

		doc = json_tokener_parse_ex(tok, r.out.buf, (int)r.out.len);
		if (json_tokener_get_error(tok) != json_tokener_success ||
		    json_tokener_get_parse_end(tok) != r.out.len) {
			json_object_put(doc);
			doc = NULL;
		}
		json_tokener_free(tok);
		masks_add_json(m, doc);
	}
	log_masked(ext, "sops", r.err.buf, r.err.len, m);
	if (!doc) {
		op_cmd_status_text(&r, st, sizeof(st));
		if (r.out.truncated)
			op_errors_add(errs, path, "sops output for '%s' is larger than %d bytes",
				      file, SECRETS_TOOL_OUT_MAX);
		else if (op_cmd_exited(&r, 0))
			op_errors_add(errs, path, "sops output for '%s' is not JSON", file);
		else if (!have_sops_key(age_key_file))
			op_errors_add(errs, path,
				      "sops could not decrypt '%s' (%s); no age key given: set "
				      "age_key_file, or SOPS_AGE_KEY_FILE or SOPS_AGE_KEY in "
				      "orchd's environment",
				      file, st);
		else
			op_errors_add(errs, path, "sops could not decrypt '%s' (%s)", file, st);
	}
	op_cmd_result_release(&r);
	return doc;
}

/* Follow the key path in doc; borrowed result or NULL. */
static struct json_object *key_lookup(struct json_object *doc, const struct secrets_value *v)
{
	struct json_object *cur = doc;

	for (size_t i = 0; cur && i < v->nsegs; i++) {
		const struct secrets_key_seg *s = &v->segs[i];
		struct json_object *next = NULL;

		if (json_object_is_type(cur, json_type_object) && s->name) {
			if (!json_object_object_get_ex(cur, s->name, &next))
				next = NULL;
		} else if (json_object_is_type(cur, json_type_array)) {
			size_t idx = s->index;
			char *end = NULL;

			if (s->name) {
				idx = strtoul(s->name, &end, 10);
				if (!*s->name || *end)
					return NULL;
			}
			if (idx < json_object_array_length(cur))
				next = json_object_array_get_idx(cur, idx);
		}
		cur = next;
	}
	return cur;
}

static struct json_object *read_sops(struct op_ext *ext, const struct secrets_value *v,
				     struct sops_cache *cache, const char *age_key_file,
				     struct masks *m, struct op_errors *errs, bool *cancelled)
{
	char path[512];
	struct json_object *doc, *found;
	size_t i;

	snprintf(path, sizeof(path), "values.%.300s.sops", v->name);
	for (i = 0; i < cache->nr; i++)
		if (!strcmp(cache->v[i].file, v->file))
			break;
	if (i == cache->nr) {
		doc = sops_decrypt(ext, v->file, path, age_key_file, m, errs, cancelled);
		if (*cancelled)
			return NULL;
		cache->v = secrets_must(realloc(cache->v, (cache->nr + 1) * sizeof(*cache->v)));
		cache->v[cache->nr].file = secrets_must(strdup(v->file));
		cache->v[cache->nr].doc = doc;
		cache->nr++;
		if (!doc)
			return NULL;
	} else if (!(doc = cache->v[i].doc)) {
		op_errors_add(errs, path, "'%s' could not be decrypted (see above)", v->file);
		return NULL;
	}
	if (!v->key)
		return json_object_get(doc);
	found = key_lookup(doc, v);
	if (!found) {
		snprintf(path, sizeof(path), "values.%.300s.sops.key", v->name);
		op_errors_add(errs, path, "'%s' not found in '%s'", v->key, v->file);
		return NULL;
	}
	return json_object_get(found);
}

/* `age --decrypt -i IDENTITY FILE`; NULL on failure (errs) or cancel. */
static struct json_object *read_age(struct op_ext *ext, const struct secrets_value *v,
				    struct masks *m, struct op_errors *errs, bool *cancelled)
{
	const char *argv[] = {"age", "--decrypt", "-i", v->identity, v->file, NULL};
	struct json_object *out = NULL;
	struct op_cmd_result r;
	char path[512], st[64], *what;

	snprintf(path, sizeof(path), "values.%.300s.age", v->name);
	if (run_tool(ext, argv, NULL, path, errs, cancelled, &r) < 0)
		return NULL;
	if (op_cmd_exited(&r, 0)) {
		masks_add_len(m, r.out.buf, r.out.len);
		if (asprintf(&what, "the plaintext of '%s'", v->file) < 0)
			what = NULL;
		secrets_must(what);
		if (r.out.truncated)
			op_errors_add(errs, path, "%s is larger than %d bytes", what,
				      SECRETS_VALUE_MAX);
		else
			out = text_value(r.out.buf, r.out.len, path, what, errs);
		free(what);
		if (out)
			masks_add_json(m, out);
	}
	log_masked(ext, "age", r.err.buf, r.err.len, m);
	if (!op_cmd_exited(&r, 0)) {
		op_cmd_status_text(&r, st, sizeof(st));
		op_errors_add(errs, path, "age could not decrypt '%s' (%s)", v->file, st);
	}
	op_cmd_result_release(&r);
	return out;
}

/*
 * Read every value of cfg.  Returns an object name -> value (caller owns),
 * or NULL when a value could not be read (errs filled) or the run was
 * cancelled (*cancelled set).
 */
static struct json_object *read_values(struct op_ext *ext, const struct secrets_config *cfg,
				       struct op_errors *errs, bool *cancelled)
{
	struct json_object *vals = secrets_must(json_object_new_object());
	struct sops_cache cache = {NULL, 0};
	struct masks m = {NULL, 0, 0};
	const char *agekey = getenv("SOPS_AGE_KEY");

	*cancelled = false;
	if (agekey)
		masks_add(&m, agekey);
	for (size_t i = 0; i < cfg->nvalues && !*cancelled; i++) {
		const struct secrets_value *v = &cfg->values[i];
		struct json_object *val = NULL;

		switch (v->kind) {
		case SECRETS_ENV:
			val = read_env(v, errs);
			break;
		case SECRETS_FILE:
			val = read_file(v, errs);
			break;
		case SECRETS_SOPS:
			val = read_sops(ext, v, &cache, cfg->age_key_file, &m, errs, cancelled);
			break;
		case SECRETS_AGE:
			val = read_age(ext, v, &m, errs, cancelled);
			break;
		}
		if (val) {
			masks_add_json(&m, val);
			json_object_object_add(vals, v->name, val);
		}
		if (op_cmd_signal_caught())
			*cancelled = true;
	}
	sops_cache_release(&cache);
	masks_release(&m);
	if (errs->nr || *cancelled) {
		json_object_put(vals);
		return NULL;
	}
	return vals;
}

/* --- hashes and state ------------------------------------------------------- */

/* The previous state's salt if it is one, else a fresh random one. */
static void get_salt(const struct json_object *prev, char salt[SECRETS_SALT_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	const char *old = op_get_str(prev, "salt");
	unsigned char raw[SECRETS_SALT_HEX / 2];

	if (old && strlen(old) == SECRETS_SALT_HEX && strspn(old, digits) == SECRETS_SALT_HEX) {
		memcpy(salt, old, SECRETS_SALT_HEX + 1);
		return;
	}
	/* without an entropy source a fixed salt only lowers the brute-force
	 * cost; the state is stored encrypted anyway */
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		memset(raw, 0x5a, sizeof(raw));
	for (size_t i = 0; i < sizeof(raw); i++) {
		salt[2 * i] = digits[raw[i] >> 4];
		salt[2 * i + 1] = digits[raw[i] & 15];
	}
	salt[SECRETS_SALT_HEX] = '\0';
}

/* sha256(salt || value bytes): a string's bytes are the string, any other
 * value's its compact JSON text. */
static void value_hash(const char *salt, struct json_object *v, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = secrets_must(EVP_MD_CTX_new());
	const char *s;
	size_t len;

	if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		len = (size_t)json_object_get_string_len(v);
	} else {
		s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		len = strlen(s);
	}
	if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(c, salt, strlen(salt)) != 1 || EVP_DigestUpdate(c, s, len) != 1 ||
	    EVP_DigestFinal_ex(c, md, &mdlen) != 1 || mdlen != 32) {
		/* libcrypto without SHA-256: nothing sensible to compare against */
		fputs("secrets: SHA-256 is not available in libcrypto\n", stderr);
		exit(1);
	}
	EVP_MD_CTX_free(c);
	for (unsigned int i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
	explicit_bzero(md, sizeof(md));
}

/*
 * The new state {"salt":..., "hashes":{name: hex}} for vals (caller owns);
 * what changed against prev ("db (new)", ...) is appended to changes.
 */
static struct json_object *make_state(const struct json_object *prev, struct json_object *vals,
				      struct op_buf *changes)
{
	struct json_object *st = secrets_must(json_object_new_object());
	struct json_object *hashes = secrets_must(json_object_new_object());
	struct json_object *old = op_get(prev, "hashes");
	const char *prev_salt = op_get_str(prev, "salt");
	char salt[SECRETS_SALT_HEX + 1], hex[65];

	get_salt(prev, salt);
	if (!prev_salt || strcmp(prev_salt, salt))
		old = NULL; /* no usable salt: every value counts as new */
	json_object_object_foreach(vals, vname, val)
	{
		const char *was = op_get_str(old, vname);

		value_hash(salt, val, hex);
		json_object_object_add(hashes, vname, json_object_new_string(hex));
		if (!was || strcmp(was, hex))
			op_buf_addf(changes, "%s%s (%s)", changes->len ? ", " : "", vname,
				    was ? "value changed" : "new");
	}
	if (json_object_is_type(old, json_type_object)) {
		json_object_object_foreach(old, oname, oval)
		{
			(void)oval;
			if (!json_object_object_get_ex(vals, oname, NULL))
				op_buf_addf(changes, "%s%s (removed)", changes->len ? ", " : "",
					    oname);
		}
	}
	json_object_object_add(st, "salt", json_object_new_string(salt));
	json_object_object_add(st, "hashes", hashes);
	return st;
}

static char *names_text(const struct secrets_config *cfg)
{
	struct op_buf sb = OP_BUF_INIT;

	for (size_t i = 0; i < cfg->nvalues; i++)
		op_buf_addf(&sb, "%s%s", i ? ", " : "", cfg->values[i].name);
	return secrets_must(op_buf_detach(&sb, NULL));
}

/* --- actions ---------------------------------------------------------------- */

/* Report errs (each logged at level error) as the failure result; releases errs. */
static int fail_with(struct op_ext *ext, const char *what, struct op_errors *errs)
{
	int ret = op_ext_fail_errors(ext, errs, 0, what);

	op_errors_release(errs);
	return ret;
}

static int load_config(struct op_ext *ext, bool check_files, struct secrets_config *cfg)
{
	struct op_errors errs = {0};

	if (secrets_config_parse(op_ext_config(ext), check_files, cfg, &errs) == 0)
		return 0;
	fail_with(ext, "invalid configuration: ", &errs);
	return -1;
}

int secrets_describe(struct op_ext *ext)
{
	struct json_object *schema = secrets_config_schema();
	int ret;

	ret = op_ext_describe(ext,
			      "provide secret outputs from environment "
			      "variables, files, sops- or age-encrypted "
			      "files",
			      schema);
	json_object_put(schema);
	return ret;
}

int secrets_validate(struct op_ext *ext)
{
	struct secrets_config cfg;

	if (load_config(ext, true, &cfg))
		return 0;
	secrets_config_release(&cfg);
	return op_ext_result(ext, true, false, NULL, "configuration is valid");
}

/* plan and apply: read, hash, compare; apply also sends outputs and state. */
static int plan_or_apply(struct op_ext *ext, bool apply)
{
	struct secrets_config cfg;
	struct op_errors errs = {0};
	struct op_buf changes = OP_BUF_INIT;
	struct json_object *vals, *state;
	bool cancelled, changed;
	char *names;
	int ret;

	if (load_config(ext, false, &cfg))
		return 0;
	op_cmd_catch_signals();
	names = names_text(&cfg);
	vals = read_values(ext, &cfg, &errs, &cancelled);
	secrets_config_release(&cfg);
	if (!vals) {
		free(names);
		if (cancelled) {
			op_errors_release(&errs);
			return op_ext_result(ext, false, false, NULL, "cancelled");
		}
		return fail_with(ext, "", &errs);
	}
	state = make_state(op_ext_state(ext), vals, &changes);
	/* make_state's appends are checked here, once: a failed buffer is
	 * empty and would read as "no change" */
	if (op_buf_failed(&changes))
		secrets_must(NULL);
	changed = changes.len > 0;
	if (changed)
		op_ext_log(ext, "info", "changed: %s", op_buf_str(&changes));
	if (!apply) {
		op_ext_log(ext, "info", "would provide: %s", names);
		ret = op_ext_result(ext, true, changed, NULL, "%s: %s",
				    changed ? "would provide" : "no change", names);
	} else {
		char err[OP_ERRMAX] = "";

		json_object_object_foreach(vals, k, v)
		{
			if (op_ext_output(ext, k, v, true) < 0) {
				op_ext_send_failure(err, sizeof(err), errno, "output '%s'", k);
				break;
			}
		}
		if (!err[0] && op_ext_state_send_secret(ext, state) < 0)
			op_ext_send_failure(err, sizeof(err), errno, "the state");
		if (err[0])
			ret = op_ext_result(ext, false, changed, NULL, "%s", err);
		else
			ret = op_ext_result(ext, true, changed, NULL, "provided: %s", names);
	}
	json_object_put(state);
	json_object_put(vals);
	op_buf_release(&changes);
	free(names);
	return ret;
}

int secrets_plan(struct op_ext *ext)
{
	return plan_or_apply(ext, false);
}

int secrets_apply(struct op_ext *ext)
{
	return plan_or_apply(ext, true);
}

int secrets_destroy(struct op_ext *ext)
{
	/* nothing was created: the values stay where they are */
	op_ext_state_send_secret(ext, NULL);
	return op_ext_result(ext, true, false, NULL, "nothing to destroy");
}
