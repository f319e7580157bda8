/*
 * encode: build protocol messages as single '\n'-terminated lines, and the
 * version helpers.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"

/* json-c takes non-const pointers for read-only operations. */
static struct json_object *unconst(const struct json_object *o)
{
	return (struct json_object *)(uintptr_t)o;
}

char *op_encode(const struct json_object *msg)
{
	struct op_buf sb;
	const char *s;
	size_t n;

	if (!json_object_is_type(msg, json_type_object)) {
		errno = EINVAL;
		return NULL;
	}
	s = json_object_to_json_string_length(
		unconst(msg), JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	if (n > OP_MAX_LINE) {
		errno = E2BIG;
		return NULL;
	}
	op_buf_init(&sb, 0);
	if (op_buf_add(&sb, s, n) || op_buf_addch(&sb, '\n'))
		return NULL;
	return op_buf_detach(&sb, NULL);
}

/* Add a borrowed value (NULL: JSON null) under key; 0 or -1. */
static int put(struct json_object *o, const char *key, const struct json_object *v)
{
	struct json_object *ref = v ? json_object_get(unconst(v)) : NULL;

	if (json_object_object_add(o, key, ref)) {
		json_object_put(ref);
		return -1;
	}
	return 0;
}

/* Add a new value (ownership taken, NULL means allocation failed). */
static int put_new(struct json_object *o, const char *key, struct json_object *v)
{
	if (!v || json_object_object_add(o, key, v)) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int put_str(struct json_object *o, const char *key, const char *s)
{
	return put_new(o, key, json_object_new_string(s));
}

static struct json_object *new_msg(const char *type)
{
	struct json_object *o = json_object_new_object();

	if (o && put_str(o, "type", type)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Encode and free o (o may be NULL after an earlier failure: ENOMEM). */
static char *finish(struct json_object *o, int failed)
{
	char *line = NULL;

	if (o && !failed)
		line = op_encode(o);
	else
		errno = ENOMEM;
	json_object_put(o);
	return line;
}

char *op_encode_hello_orchd(int proto_min, int proto_max, const char *orchd_version)
{
	struct json_object *o, *p;
	int bad = 0;

	if (!orchd_version) {
		errno = EINVAL;
		return NULL;
	}
	o = new_msg("hello");
	p = json_object_new_object();
	if (!o || !p) {
		json_object_put(p);
		return finish(o, 1);
	}
	bad |= put_new(p, "min", json_object_new_int(proto_min));
	bad |= put_new(p, "max", json_object_new_int(proto_max));
	bad |= put_new(o, "protocol", p);
	bad |= put_str(o, "orchd_version", orchd_version);
	return finish(o, bad);
}

const char *const op_value_field_names[OP_VALUE_NFIELDS] = {"config", "state", "outputs"};

char *op_encode_action(enum op_action action, const char *instance, const char *stack,
		       const struct json_object *config, const struct json_object *state,
		       const struct json_object *outputs, const char *workdir)
{
	return op_encode_action_files(action, instance, stack, config, state, outputs, workdir,
				      NULL);
}

char *op_encode_action_files(enum op_action action, const char *instance, const char *stack,
			     const struct json_object *config, const struct json_object *state,
			     const struct json_object *outputs, const char *workdir,
			     const char *const *files)
{
	const char *name = op_action_name(action);
	const struct json_object *vals[OP_VALUE_NFIELDS] = {config, state, outputs};
	struct json_object *o;
	int bad = 0;

	if (!name || (action != OP_ACTION_DESCRIBE && (!instance || !stack || !workdir))) {
		errno = EINVAL;
		return NULL;
	}
	o = new_msg("action");
	if (!o)
		return finish(o, 1);
	bad |= put_str(o, "action", name);
	if (instance)
		bad |= put_str(o, "instance", instance);
	if (stack)
		bad |= put_str(o, "stack", stack);
	for (int i = 0; i < OP_VALUE_NFIELDS; i++) {
		const char *field = op_value_field_names[i];

		if (files && files[i]) {
			char key[32];

			snprintf(key, sizeof(key), "%s_file", field);
			bad |= put_str(o, key, files[i]);
		} else if (vals[i]) {
			bad |= put(o, field, vals[i]);
		} else if (action != OP_ACTION_DESCRIBE) {
			/* null state; empty config and outputs */
			bad |= i == OP_VALUE_STATE ? put(o, field, NULL)
						   : put_new(o, field, json_object_new_object());
		}
	}
	if (workdir)
		bad |= put_str(o, "workdir", workdir);
	return finish(o, bad);
}

char *op_encode_cancel(const char *reason)
{
	struct json_object *o = new_msg("cancel");

	if (!reason) {
		json_object_put(o);
		errno = EINVAL;
		return NULL;
	}
	return finish(o, o ? put_str(o, "reason", reason) : 1);
}

/* A new JSON array of the strings of a NULL-terminated list; NULL on ENOMEM. */
static struct json_object *string_array(const char *const *list)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && list[i]; i++) {
		struct json_object *s = json_object_new_string(list[i]);

		if (!s || json_object_array_add(a, s)) {
			json_object_put(s);
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

char *op_encode_hello_ext(int protocol, const char *name, const char *version,
			  const char *min_orchd_version, const char *const *actions,
			  const char *const *features)
{
	struct json_object *o, *a;
	int bad = 0;

	if (!name || !version || !actions) {
		errno = EINVAL;
		return NULL;
	}
	o = new_msg("hello");
	a = string_array(actions);
	if (!o || !a) {
		json_object_put(a);
		return finish(o, 1);
	}
	bad |= put_new(o, "protocol", json_object_new_int(protocol));
	bad |= put_str(o, "name", name);
	bad |= put_str(o, "version", version);
	bad |= put_str(o, "min_orchd_version", min_orchd_version ? min_orchd_version : "0.0.0");
	bad |= put_new(o, "actions", a);
	if (features)
		bad |= put_new(o, "features", string_array(features));
	return finish(o, bad);
}

char *op_encode_log(const char *level, const char *message)
{
	struct json_object *o;
	int bad = 0;

	if (!level || !message) {
		errno = EINVAL;
		return NULL;
	}
	o = new_msg("log");
	if (!o)
		return finish(o, 1);
	bad |= put_str(o, "level", level);
	bad |= put_str(o, "message", message);
	return finish(o, bad);
}

char *op_encode_progress(const char *message, int percent)
{
	struct json_object *o;
	int bad = 0;

	if (!message) {
		errno = EINVAL;
		return NULL;
	}
	o = new_msg("progress");
	if (!o)
		return finish(o, 1);
	bad |= put_str(o, "message", message);
	if (percent >= 0)
		bad |= put_new(o, "percent", json_object_new_int(percent > 100 ? 100 : percent));
	return finish(o, bad);
}

char *op_encode_output(const char *key, const struct json_object *value, bool secret)
{
	struct json_object *o;
	int bad = 0;

	if (!key || !*key) {
		errno = EINVAL;
		return NULL;
	}
	o = new_msg("output");
	if (!o)
		return finish(o, 1);
	bad |= put_str(o, "key", key);
	bad |= put(o, "value", value);
	bad |= put_new(o, "secret", json_object_new_boolean(secret));
	return finish(o, bad);
}

char *op_encode_state(const struct json_object *state)
{
	struct json_object *o = new_msg("state");

	return finish(o, o ? put(o, "state", state) : 1);
}

char *op_encode_state_secret(const struct json_object *state)
{
	struct json_object *o = new_msg("state");
	int bad = 1;

	if (o)
		bad = put(o, "state", state) | put_new(o, "secret", json_object_new_boolean(1));
	return finish(o, bad);
}

char *op_encode_error(const char *message, bool retryable)
{
	struct json_object *o;
	int bad = 0;

	if (!message) {
		errno = EINVAL;
		return NULL;
	}
	o = new_msg("error");
	if (!o)
		return finish(o, 1);
	bad |= put_str(o, "message", message);
	bad |= put_new(o, "retryable", json_object_new_boolean(retryable));
	return finish(o, bad);
}

char *op_encode_mask(const char *value)
{
	struct json_object *o;
	int bad = 0;

	if (!value) {
		errno = EINVAL;
		return NULL;
	}
	o = new_msg("mask");
	if (!o)
		return finish(o, 1);
	bad |= put_str(o, "value", value);
	return finish(o, bad);
}

char *op_encode_result(bool success, int changed, const char *summary,
		       const struct json_object *extra)
{
	struct json_object *o = new_msg("result");
	int bad = 0;

	if (!o)
		return finish(o, 1);
	bad |= put_str(o, "status", success ? "success" : "failure");
	if (changed >= 0)
		bad |= put_new(o, "changed", json_object_new_boolean(changed > 0));
	if (summary)
		bad |= put_str(o, "summary", summary);
	if (json_object_is_type(extra, json_type_object)) {
		json_object_object_foreach(unconst(extra), k, v)
		{
			if (!strcmp(k, "type") || !strcmp(k, "status"))
				continue;
			bad |= put(o, k, v);
		}
	}
	return finish(o, bad);
}

int op_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* --- versions --------------------------------------------------------------- */

/* Parse the next component at *s: its leading digits; advance past the '.'. */
static unsigned long long next_component(const char **s)
{
	unsigned long long v = 0;
	const char *p = *s;

	while (*p >= '0' && *p <= '9') {
		if (v < 1000000000000ULL)
			v = v * 10 + (unsigned)(*p - '0');
		p++;
	}
	while (*p && *p != '.')
		p++;
	if (*p == '.')
		p++;
	*s = p;
	return v;
}

int op_version_cmp(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	while (*a || *b) {
		unsigned long long x = next_component(&a), y = next_component(&b);

		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

bool op_version_valid(const char *v)
{
	if (!v || !*v)
		return false;
	for (;;) {
		if (*v < '0' || *v > '9')
			return false;
		while (*v && *v != '.')
			v++;
		if (!*v)
			return true;
		v++;
	}
}

int op_negotiate(int a_min, int a_max, int b_min, int b_max)
{
	int lo = a_min > b_min ? a_min : b_min;
	int hi = a_max < b_max ? a_max : b_max;

	return lo <= hi ? hi : -1;
}

/* True when the array arr (any JSON value) holds the string s. */
static bool array_has(const struct json_object *arr, const char *s)
{
	struct json_object *a = unconst(arr);

	for (size_t i = 0;
	     json_object_is_type(a, json_type_array) && i < json_object_array_length(a); i++) {
		struct json_object *e = json_object_array_get_idx(a, i);

		if (json_object_is_type(e, json_type_string) &&
		    !strcmp(json_object_get_string(e), s))
			return true;
	}
	return false;
}

bool op_hello_has_feature(const struct json_object *ext_hello, const char *feature)
{
	return array_has(op_get(ext_hello, "features"), feature);
}

int op_check_ext_hello(const struct json_object *ext_hello, int proto_min, int proto_max,
		       const char *orchd_version, enum op_action action, char *err, size_t errlen)
{
	long long proto = op_get_int(ext_hello, "protocol", 0);
	const char *name = op_get_str(ext_hello, "name");
	const char *version = op_get_str(ext_hello, "version");
	const char *minv = op_get_str(ext_hello, "min_orchd_version");
	const char *aname = op_action_name(action);
	struct json_object *acts = op_get(ext_hello, "actions");

	if (errlen)
		err[0] = '\0';
	if (proto < proto_min || proto > proto_max) {
		snprintf(err, errlen, "extension speaks protocol %lld, orchd speaks %d..%d", proto,
			 proto_min, proto_max);
		return OP_HELLO_PROTOCOL;
	}
	if (minv && op_version_cmp(orchd_version, minv) < 0) {
		snprintf(err, errlen, "extension %s %s requires orchd >= %s (this is %s)",
			 name ? name : "?", version ? version : "?", minv, orchd_version);
		return OP_HELLO_VERSION;
	}
	if (aname) {
		if (!array_has(acts, aname)) {
			snprintf(err, errlen, "extension %s %s does not support action '%s'",
				 name ? name : "?", version ? version : "?", aname);
			return OP_HELLO_ACTION;
		}
	}
	return 0;
}
