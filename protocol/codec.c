/*
 * codec: parse one protocol line and validate it as a message of a given
 * direction.  The exact error texts are part of the protocol's conformance
 * vectors (protocol/vectors/): change them only together.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "orchd_protocol.h"

/* json-c takes non-const pointers for read-only operations. */
static struct json_object *unconst(const struct json_object *o)
{
	return (struct json_object *)(uintptr_t)o;
}

static const char *const type_names[] = {
	[OP_MSG_NONE] = "none",		[OP_MSG_HELLO] = "hello",
	[OP_MSG_ACTION] = "action",	[OP_MSG_CANCEL] = "cancel",
	[OP_MSG_RESPONSE] = "response", [OP_MSG_LOG] = "log",
	[OP_MSG_PROGRESS] = "progress", [OP_MSG_OUTPUT] = "output",
	[OP_MSG_STATE] = "state",	[OP_MSG_ERROR] = "error",
	[OP_MSG_RESULT] = "result",	[OP_MSG_REQUEST] = "request",
	[OP_MSG_MASK] = "mask",
};

static const char *const action_names[] = {
	[OP_ACTION_DESCRIBE] = "describe", [OP_ACTION_VALIDATE] = "validate",
	[OP_ACTION_PLAN] = "plan",	   [OP_ACTION_APPLY] = "apply",
	[OP_ACTION_DESTROY] = "destroy",
};

const char *op_msg_type_name(enum op_msg_type t)
{
	if ((unsigned)t >= sizeof(type_names) / sizeof(type_names[0]))
		return "none";
	return type_names[t];
}

const char *op_action_name(enum op_action a)
{
	if (a <= OP_ACTION_NONE || (unsigned)a >= sizeof(action_names) / sizeof(action_names[0]))
		return NULL;
	return action_names[a];
}

enum op_action op_action_from_name(const char *name)
{
	if (!name)
		return OP_ACTION_NONE;
	for (unsigned i = OP_ACTION_DESCRIBE; i <= OP_ACTION_DESTROY; i++)
		if (!strcmp(name, action_names[i]))
			return (enum op_action)i;
	return OP_ACTION_NONE;
}

/* --- getters ---------------------------------------------------------------- */

struct json_object *op_get(const struct json_object *msg, const char *key)
{
	struct json_object *v = NULL;

	if (!msg || !json_object_is_type(msg, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(msg, key, &v))
		return NULL;
	return v;
}

bool op_has(const struct json_object *msg, const char *key)
{
	if (!msg || !json_object_is_type(msg, json_type_object))
		return false;
	return json_object_object_get_ex(msg, key, NULL);
}

const char *op_get_str(const struct json_object *msg, const char *key)
{
	struct json_object *v = op_get(msg, key);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

long long op_get_int(const struct json_object *msg, const char *key, long long dflt)
{
	struct json_object *v = op_get(msg, key);

	return json_object_is_type(v, json_type_int) ? (long long)json_object_get_int64(v) : dflt;
}

bool op_get_bool(const struct json_object *msg, const char *key, bool dflt)
{
	struct json_object *v = op_get(msg, key);

	return json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v) : dflt;
}

/* --- validation ------------------------------------------------------------- */

struct vctx {
	const char *type; /* message type name, the error prefix */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct vctx *c, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (c->type)
		n = snprintf(c->err, c->errlen, "%s: ", c->type);
	if (n < 0 || (size_t)n >= c->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

enum kind { K_STRING, K_NONEMPTY, K_INT, K_BOOL, K_OBJECT, K_ANY, K_STRINGS, K_VERSION };

static const char *kind_text(enum kind k)
{
	switch (k) {
	case K_STRING:
		return "a string";
	case K_NONEMPTY:
		return "a non-empty string";
	case K_INT:
		return "an integer";
	case K_BOOL:
		return "a boolean";
	case K_OBJECT:
		return "an object";
	case K_STRINGS:
		return "an array of strings";
	case K_VERSION:
		return "a dotted version string";
	case K_ANY:
		break;
	}
	return "a JSON value";
}

static bool kind_ok(const struct json_object *v, enum kind k)
{
	switch (k) {
	case K_STRING:
		return json_object_is_type(v, json_type_string);
	case K_NONEMPTY:
		return json_object_is_type(v, json_type_string) &&
		       json_object_get_string_len(v) > 0;
	case K_VERSION:
		return json_object_is_type(v, json_type_string) &&
		       op_version_valid(json_object_get_string(unconst(v)));
	case K_INT:
		return json_object_is_type(v, json_type_int);
	case K_BOOL:
		return json_object_is_type(v, json_type_boolean);
	case K_OBJECT:
		return json_object_is_type(v, json_type_object);
	case K_ANY:
		return true;
	case K_STRINGS:
		if (!json_object_is_type(v, json_type_array))
			return false;
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
				return false;
		return true;
	}
	return false;
}

/* Check one field.  required: missing is an error; optional: absent is fine. */
static int field(struct vctx *c, const struct json_object *msg, const char *name, enum kind k,
		 bool required)
{
	struct json_object *v;

	if (!json_object_object_get_ex(msg, name, &v)) {
		if (required)
			return fail(c, "missing required field '%s'", name);
		return 0;
	}
	if (!kind_ok(v, k))
		return fail(c, "field '%s' must be %s", name, kind_text(k));
	return 0;
}

#define REQ(name, k)                              \
	do {                                      \
		if (field(c, msg, name, k, true)) \
			return -1;                \
	} while (0)
#define OPT(name, k)                               \
	do {                                       \
		if (field(c, msg, name, k, false)) \
			return -1;                 \
	} while (0)

bool op_path_is_plain(const char *path)
{
	if (!path || !*path || *path == '/')
		return false;
	for (const char *s = path;;) {
		size_t len = strcspn(s, "/");

		if (len == 0 || (len == 1 && s[0] == '.') ||
		    (len == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		if (!s[len])
			return true;
		s += len + 1;
	}
}

/*
 * A value that comes either inline (field vname) or in a file (field
 * fname, PROTOCOL.md §4.1): exactly one of the two.  A file named by an
 * extension (relative) must stay inside its workdir; one named by orchd is
 * absolute.
 */
static int value_or_file(struct vctx *c, const struct json_object *msg, const char *vname,
			 enum kind vk, const char *fname, bool relative)
{
	const char *f;

	if (!op_has(msg, fname)) {
		REQ(vname, vk);
		return 0;
	}
	if (op_has(msg, vname))
		return fail(c, "fields '%s' and '%s' are exclusive", vname, fname);
	REQ(fname, K_NONEMPTY);
	f = op_get_str(msg, fname);
	if (relative && !op_path_is_plain(f))
		return fail(
			c, "field '%s' must be a relative path without '.', '..' or empty segments",
			fname);
	if (!relative && f[0] != '/')
		return fail(c, "field '%s' must be an absolute path", fname);
	return 0;
}

static int check_hello_to_ext(struct vctx *c, const struct json_object *msg)
{
	struct json_object *p;
	long long mn, mx;

	REQ("protocol", K_OBJECT);
	p = op_get(msg, "protocol");
	if (!op_has(p, "min"))
		return fail(c, "missing required field 'protocol.min'");
	if (!json_object_is_type(op_get(p, "min"), json_type_int))
		return fail(c, "field 'protocol.min' must be an integer");
	if (!op_has(p, "max"))
		return fail(c, "missing required field 'protocol.max'");
	if (!json_object_is_type(op_get(p, "max"), json_type_int))
		return fail(c, "field 'protocol.max' must be an integer");
	mn = op_get_int(p, "min", 0);
	mx = op_get_int(p, "max", 0);
	if (mn < 1 || mx < mn)
		return fail(c, "field 'protocol' must satisfy 1 <= min <= max");
	REQ("orchd_version", K_VERSION);
	return 0;
}

static int check_hello_from_ext(struct vctx *c, const struct json_object *msg)
{
	REQ("protocol", K_INT);
	if (op_get_int(msg, "protocol", 0) < 1)
		return fail(c, "field 'protocol' must be a positive integer");
	REQ("name", K_NONEMPTY);
	REQ("version", K_VERSION);
	OPT("min_orchd_version", K_VERSION);
	REQ("actions", K_STRINGS);
	OPT("features", K_STRINGS);
	return 0;
}

static int check_action(struct vctx *c, const struct json_object *msg)
{
	const char *a;

	REQ("action", K_STRING);
	a = op_get_str(msg, "action");
	switch (op_action_from_name(a)) {
	case OP_ACTION_NONE:
		return fail(c, "unknown action '%s'", a);
	case OP_ACTION_DESCRIBE:
		return 0;
	default:
		break;
	}
	REQ("instance", K_NONEMPTY);
	REQ("stack", K_STRING);
	if (value_or_file(c, msg, "config", K_OBJECT, "config_file", false) ||
	    value_or_file(c, msg, "state", K_ANY, "state_file", false) ||
	    value_or_file(c, msg, "outputs", K_OBJECT, "outputs_file", false))
		return -1;
	REQ("workdir", K_STRING);
	return 0;
}

static int check_log(struct vctx *c, const struct json_object *msg)
{
	static const char *const levels[] = {"debug", "info", "warning", "error"};
	const char *l;

	REQ("level", K_STRING);
	l = op_get_str(msg, "level");
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (!strcmp(l, levels[i]))
			goto ok;
	return fail(c, "field 'level' must be one of debug, info, warning, error");
ok:
	REQ("message", K_STRING);
	return 0;
}

static int check_progress(struct vctx *c, const struct json_object *msg)
{
	struct json_object *p;

	REQ("message", K_STRING);
	if (op_has(msg, "percent")) {
		double d;

		p = op_get(msg, "percent");
		if (!json_object_is_type(p, json_type_int) &&
		    !json_object_is_type(p, json_type_double))
			return fail(c, "field 'percent' must be a number from 0 to 100");
		d = json_object_get_double(p);
		if (!(d >= 0 && d <= 100))
			return fail(c, "field 'percent' must be a number from 0 to 100");
	}
	return 0;
}

static int check_result(struct vctx *c, const struct json_object *msg)
{
	const char *s;
	struct json_object *errs;

	REQ("status", K_STRING);
	s = op_get_str(msg, "status");
	if (strcmp(s, "success") && strcmp(s, "failure"))
		return fail(c, "field 'status' must be \"success\" or \"failure\"");
	OPT("changed", K_BOOL);
	OPT("summary", K_STRING);
	OPT("describe", K_OBJECT);
	if (!op_has(msg, "errors"))
		return 0;
	errs = op_get(msg, "errors");
	if (!json_object_is_type(errs, json_type_array))
		return fail(c, "field 'errors' must be an array");
	for (size_t i = 0; i < json_object_array_length(errs); i++) {
		struct json_object *e = json_object_array_get_idx(errs, i);

		if (!json_object_is_type(e, json_type_object))
			return fail(c, "field 'errors[%zu]' must be an object", i);
		if (!json_object_is_type(op_get(e, "path"), json_type_string))
			return fail(c, "field 'errors[%zu].path' must be a string", i);
		if (!json_object_is_type(op_get(e, "message"), json_type_string))
			return fail(c, "field 'errors[%zu].message' must be a string", i);
	}
	return 0;
}

static int check_id(struct vctx *c, const struct json_object *msg)
{
	REQ("id", K_INT);
	if (op_get_int(msg, "id", -1) < 0)
		return fail(c, "field 'id' must be a non-negative integer");
	return 0;
}

/* request: id, op; op "fetch" needs a source object (its content is
 * checked by orchd when it acts, not by the codec).  Unknown ops are valid
 * messages: orchd answers them with ok:false. */
static int check_request(struct vctx *c, const struct json_object *msg)
{
	if (check_id(c, msg))
		return -1;
	REQ("op", K_NONEMPTY);
	if (!strcmp(op_get_str(msg, "op"), "fetch"))
		REQ("source", K_OBJECT);
	return 0;
}

/* response: id, ok; ok true needs a result object, false an error string. */
static int check_response(struct vctx *c, const struct json_object *msg)
{
	if (check_id(c, msg))
		return -1;
	REQ("ok", K_BOOL);
	if (op_get_bool(msg, "ok", false))
		REQ("result", K_OBJECT);
	else
		REQ("error", K_STRING);
	return 0;
}

static int check_body(struct vctx *c, enum op_direction dir, enum op_msg_type t,
		      const struct json_object *msg)
{
	switch (t) {
	case OP_MSG_HELLO:
		return dir == OP_TO_EXT ? check_hello_to_ext(c, msg) : check_hello_from_ext(c, msg);
	case OP_MSG_ACTION:
		return check_action(c, msg);
	case OP_MSG_CANCEL:
		REQ("reason", K_STRING);
		return 0;
	case OP_MSG_RESPONSE:
		return check_response(c, msg);
	case OP_MSG_LOG:
		return check_log(c, msg);
	case OP_MSG_PROGRESS:
		return check_progress(c, msg);
	case OP_MSG_OUTPUT:
		REQ("key", K_NONEMPTY);
		if (value_or_file(c, msg, "value", K_ANY, "file", true))
			return -1;
		OPT("secret", K_BOOL);
		return 0;
	case OP_MSG_STATE:
		if (value_or_file(c, msg, "state", K_ANY, "file", true))
			return -1;
		OPT("secret", K_BOOL);
		return 0;
	case OP_MSG_ERROR:
		REQ("message", K_STRING);
		OPT("retryable", K_BOOL);
		return 0;
	case OP_MSG_RESULT:
		return check_result(c, msg);
	case OP_MSG_REQUEST:
		return check_request(c, msg);
	case OP_MSG_MASK:
		REQ("value", K_STRING);
		return 0;
	case OP_MSG_NONE:
		break;
	}
	return fail(c, "internal error: no validator");
}

static bool allowed(enum op_direction dir, enum op_msg_type t)
{
	switch (t) {
	case OP_MSG_HELLO:
		return true;
	case OP_MSG_ACTION:
	case OP_MSG_CANCEL:
	case OP_MSG_RESPONSE:
		return dir == OP_TO_EXT;
	case OP_MSG_NONE:
		return false;
	default:
		return dir == OP_FROM_EXT;
	}
}

enum op_msg_type op_validate_message(enum op_direction dir, const struct json_object *msg,
				     char *err, size_t errlen)
{
	struct vctx ctx = {NULL, err, errlen}, *c = &ctx;
	const char *tname;
	enum op_msg_type t = OP_MSG_NONE;

	if (errlen)
		err[0] = '\0';
	if (!json_object_is_type(msg, json_type_object)) {
		fail(c, "message must be a JSON object");
		return OP_MSG_NONE;
	}
	if (field(c, msg, "type", K_STRING, true))
		return OP_MSG_NONE;
	tname = op_get_str(msg, "type");
	for (unsigned i = OP_MSG_HELLO; i <= OP_MSG_MASK; i++)
		if (!strcmp(tname, type_names[i]))
			t = (enum op_msg_type)i;
	if (t == OP_MSG_NONE) {
		fail(c, "unknown message type '%s'", tname);
		return OP_MSG_NONE;
	}
	if (!allowed(dir, t)) {
		fail(c, "message type '%s' is not allowed %s", tname,
		     dir == OP_TO_EXT ? "from orchd" : "from an extension");
		return OP_MSG_NONE;
	}
	ctx.type = type_names[t];
	if (check_body(c, dir, t, msg))
		return OP_MSG_NONE;
	return t;
}

/* --- parsing ---------------------------------------------------------------- */

static bool is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static void set_error(struct op_parsed *out, enum op_verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_error(struct op_parsed *out, enum op_verdict v, const char *fmt, ...)
{
	va_list ap;

	out->verdict = v;
	va_start(ap, fmt);
	vsnprintf(out->error, sizeof(out->error), fmt, ap);
	va_end(ap);
}

static _Thread_local struct json_tokener *tls_tok;

/* The main thread's tokener is freed at exit, so that leak checkers see a
 * clean heap (other threads' are reclaimed with the process). */
static void free_tls_tok(void)
{
	/* json-c's json_tokener_free(NULL) dereferences it: after a line that
	 * did not parse the tokener is already gone */
	if (tls_tok)
		json_tokener_free(tls_tok);
	tls_tok = NULL;
}

/* One JSON value from s[0..len) (len <= INT_MAX) with tok: the value (or
 * NULL), the tokener's verdict in *jerr and the bytes it used in *used. */
static struct json_object *parse_one(struct json_tokener *tok, const char *s, size_t len,
				     enum json_tokener_error *jerr, size_t *used)
{
	struct json_object *obj = json_tokener_parse_ex(tok, s, (int)len);

	*jerr = json_tokener_get_error(tok);
	*used = json_tokener_get_parse_end(tok);
	if (*jerr == json_tokener_continue) {
		/* a bare number needs a terminator: finish the parse */
		if (!obj)
			obj = json_tokener_parse_ex(tok, "", 1);
		*jerr = json_tokener_get_error(tok);
		*used = len;
	}
	return obj;
}

int op_parse_line(enum op_direction dir, const char *line, size_t len, struct op_parsed *out)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t start = 0, end = len, used;

	memset(out, 0, sizeof(*out));
	out->verdict = OP_EMPTY;
	if (len > OP_MAX_LINE) {
		set_error(out, OP_PROTOCOL_ERROR, "line exceeds %d bytes", OP_MAX_LINE);
		return 0;
	}
	while (start < end && is_ws(line[start]))
		start++;
	while (end > start && is_ws(line[end - 1]))
		end--;
	if (start == end)
		return 0;
	if (memchr(line + start, '\0', end - start)) {
		set_error(out, OP_NON_PROTOCOL, "contains a NUL byte");
		return 0;
	}
	/* One tokener per thread, reset for each line: allocating one per
	 * message was a visible share of the cost of a log flood. */
	tok = tls_tok;
	if (!tok) {
		static int registered;

		tok = tls_tok = json_tokener_new_ex(OP_MAX_DEPTH);
		if (!tok) {
			set_error(out, OP_PROTOCOL_ERROR, "out of memory");
			errno = ENOMEM;
			return -1;
		}
		if (!registered++)
			atexit(free_tls_tok);
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	}
	json_tokener_reset(tok);
	obj = parse_one(tok, line + start, end - start, &jerr, &used);
	json_tokener_reset(tok);
	if (jerr != json_tokener_success) {
		/* json_tokener_reset() keeps the state of a \u escape cut short
		 * (a pending high surrogate), which the next line would decode
		 * with: after a failed parse, the next line gets a new tokener */
		json_tokener_free(tok);
		tls_tok = NULL;
	}
	if (jerr == json_tokener_error_depth) {
		json_object_put(obj);
		set_error(out, OP_PROTOCOL_ERROR, "message nested deeper than %d levels",
			  OP_MAX_DEPTH);
		return 0;
	}
	if (jerr != json_tokener_success) {
		json_object_put(obj);
		set_error(out, OP_NON_PROTOCOL, "not JSON: %s", json_tokener_error_desc(jerr));
		return 0;
	}
	if (used < end - start) {
		json_object_put(obj);
		set_error(out, OP_NON_PROTOCOL, "not JSON: trailing data after the value");
		return 0;
	}
	if (!obj || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		set_error(out, OP_NON_PROTOCOL, "not a JSON object");
		return 0;
	}
	out->type = op_validate_message(dir, obj, out->error, sizeof(out->error));
	if (out->type == OP_MSG_NONE) {
		json_object_put(obj);
		out->verdict = OP_PROTOCOL_ERROR;
		return 0;
	}
	out->verdict = OP_VALID;
	out->msg = obj;
	return 0;
}

int op_parse_value(const char *s, size_t len, struct json_object **out, char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new_ex(OP_MAX_DEPTH);
	enum json_tokener_error jerr;
	struct json_object *obj;
	size_t used, start = 0, end = len;

	*out = NULL;
	if (!tok) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	while (start < end && (is_ws(s[start]) || s[start] == '\n'))
		start++;
	while (end > start && (is_ws(s[end - 1]) || s[end - 1] == '\n'))
		end--;
	if (end - start > INT_MAX || memchr(s + start, '\0', end - start)) {
		json_tokener_free(tok);
		snprintf(err, errlen, "not JSON: %s",
			 end - start > INT_MAX ? "too long" : "contains a NUL byte");
		errno = EINVAL;
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = parse_one(tok, s + start, end - start, &jerr, &used);
	json_tokener_free(tok);
	if (jerr == json_tokener_success && used < end - start)
		snprintf(err, errlen, "not JSON: trailing data after the value");
	else if (jerr == json_tokener_error_depth)
		snprintf(err, errlen, "nested deeper than %d levels", OP_MAX_DEPTH);
	else if (jerr != json_tokener_success)
		snprintf(err, errlen, "not JSON: %s", json_tokener_error_desc(jerr));
	else {
		*out = obj;
		return 0;
	}
	json_object_put(obj);
	errno = EINVAL;
	return -1;
}

void op_parsed_release(struct op_parsed *p)
{
	if (!p)
		return;
	json_object_put(p->msg);
	p->msg = NULL;
}

struct json_object *op_parsed_steal(struct op_parsed *p)
{
	struct json_object *m = p->msg;

	p->msg = NULL;
	return m;
}
