/*
 * ext: the extension side of the protocol for C extensions (see
 * orchd_protocol.h, "Extension-side helper").
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"

struct op_ext {
	const struct op_ext_info *info;
	int in_fd, out_fd;
	struct op_splitter *sp;
	struct op_buf pending;		/* log lines not written yet (op_ext_log_line) */
	struct json_object *action_msg; /* owned */
	struct json_object *empty;	/* owned: {} for absent config/outputs */
	enum op_action action;
	bool eof;
	bool cancelled;
	bool result_sent;
	unsigned nfiles; /* value files written (PROTOCOL.md §4.1) */
	char reason[64];
};

__attribute__((format(printf, 2, 3))) static void complain(const struct op_ext *ext,
							   const char *fmt, ...)
{
	char buf[OP_ERRMAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	dprintf(2, "%s: %s\n", ext->info && ext->info->name ? ext->info->name : "extension", buf);
}

static int after_result(const struct op_ext *ext)
{
	if (ext->result_sent) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* Pending lines flushed past this size. */
#define EXT_PENDING_MAX 65536

int op_ext_flush(struct op_ext *ext)
{
	int ret;

	/* pending is never failed here: op_ext_log_line resets it */
	if (!ext->pending.len)
		return 0;
	ret = op_write_all(ext->out_fd, ext->pending.buf, ext->pending.len);
	op_buf_reset(&ext->pending);
	return ret;
}

int op_ext_log_line(struct op_ext *ext, const char *level, const char *text, size_t len)
{
	if (after_result(ext))
		return -1;
	if (op_encode_log_into(&ext->pending, level, text, len)) {
		int err = errno;

		/* E2BIG leaves the buffer as it was; ENOMEM emptied it (sticky
		 * failure): make it usable for the next line */
		if (op_buf_failed(&ext->pending))
			op_buf_reset(&ext->pending);
		errno = err;
		return -1;
	}
	if (ext->pending.len >= EXT_PENDING_MAX)
		return op_ext_flush(ext);
	return 0;
}

/* Write one line, after what is pending (so the order is kept). */
static int send_line(struct op_ext *ext, char *line)
{
	int ret;

	if (!line)
		return -1;
	if (op_ext_flush(ext) < 0) {
		free(line);
		return -1;
	}
	ret = op_write_all(ext->out_fd, line, strlen(line));
	free(line);
	return ret;
}

/*
 * Read the next message (blocking).  1: *p holds a valid message; 0: end of
 * input; -1: read error or protocol error (reported on stderr).
 */
static int read_msg(struct op_ext *ext, struct op_parsed *p)
{
	char buf[65536];

	for (;;) {
		const char *line;
		size_t len;
		enum op_line_status st = op_splitter_next(ext->sp, &line, &len);

		if (st == OP_LINE_TOO_LONG) {
			complain(ext, "protocol error: line exceeds %d bytes", OP_MAX_LINE);
			return -1;
		}
		if (st == OP_LINE_OK) {
			if (op_parse_line(OP_TO_EXT, line, len, p) < 0)
				return -1;
			if (p->verdict == OP_VALID)
				return 1;
			if (p->verdict == OP_EMPTY)
				continue;
			complain(ext, "protocol error: %s",
				 p->verdict == OP_NON_PROTOCOL ? "input is not a JSON object"
							       : p->error);
			op_parsed_release(p);
			return -1;
		}
		if (op_splitter_done(ext->sp))
			return 0;
		ssize_t n = read(ext->in_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			complain(ext, "cannot read stdin: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			ext->eof = true;
			op_splitter_finish(ext->sp);
		} else if (op_splitter_feed(ext->sp, buf, (size_t)n) < 0) {
			return -1;
		}
	}
}

/* The values orchd sent in files (PROTOCOL.md §4.1) into the action
 * message, under their inline names.  0, or -1 after a complaint. */
static int read_value_files(struct op_ext *ext)
{
	for (int i = 0; i < OP_VALUE_NFIELDS; i++) {
		const char *field = op_value_field_names[i], *path;
		struct json_object *v;
		char key[32], err[OP_ERRMAX];

		snprintf(key, sizeof(key), "%s_file", field);
		path = op_get_str(ext->action_msg, key);
		if (!path)
			continue;
		if (op_read_value_file(NULL, path, OP_MAX_FILE_VALUE, &v, err, sizeof(err)) < 0) {
			complain(ext, "the action's %s: %s", key, err);
			return -1;
		}
		if (json_object_object_add(ext->action_msg, field, v)) {
			json_object_put(v);
			complain(ext, "out of memory");
			return -1;
		}
	}
	return 0;
}

static const char *const features[] = {OP_FEATURE_FILES, NULL};
static const char *const session_features[] = {OP_FEATURE_FILES, OP_FEATURE_SESSION, NULL};

/* Take the action message p (valid, type action) as the current one. */
static int take_action(struct op_ext *ext, struct op_parsed *p)
{
	json_object_put(ext->action_msg);
	ext->action_msg = op_parsed_steal(p);
	ext->action = op_action_from_name(op_get_str(ext->action_msg, "action"));
	ext->result_sent = false;
	return read_value_files(ext);
}

/* The handshake and the first action; session: the hello says feature
 * "session" (the caller then runs op_ext_next() after each result). */
static struct op_ext *ext_start(const struct op_ext_info *info, int in_fd, int out_fd, bool session)
{
	struct op_ext *ext = calloc(1, sizeof(*ext));
	struct op_parsed p;
	struct json_object *proto;
	int r, version;

	if (!ext)
		return NULL;
	signal(SIGPIPE, SIG_IGN);
	ext->info = info;
	ext->in_fd = in_fd;
	ext->out_fd = out_fd;
	ext->sp = op_splitter_new(0, OP_SPLIT_STRICT);
	ext->empty = json_object_new_object();
	if (!ext->sp || !ext->empty)
		goto fail;

	r = read_msg(ext, &p);
	if (r == 0)
		complain(ext, "protocol error: end of input before hello");
	if (r <= 0)
		goto fail;
	if (p.type != OP_MSG_HELLO) {
		complain(ext, "protocol error: expected hello, got %s", op_msg_type_name(p.type));
		op_parsed_release(&p);
		goto fail;
	}
	proto = op_get(p.msg, "protocol");
	version = op_negotiate(OP_PROTOCOL_MIN, OP_PROTOCOL_MAX, (int)op_get_int(proto, "min", 0),
			       (int)op_get_int(proto, "max", 0));
	if (version < 0) {
		char msg[OP_ERRMAX];

		snprintf(msg, sizeof(msg),
			 "extension %s speaks protocol %d..%d, orchd offers %lld..%lld", info->name,
			 OP_PROTOCOL_MIN, OP_PROTOCOL_MAX, op_get_int(proto, "min", 0),
			 op_get_int(proto, "max", 0));
		op_parsed_release(&p);
		send_line(ext, op_encode_error(msg, false));
		complain(ext, "%s", msg);
		goto fail;
	}
	op_parsed_release(&p);
	if (send_line(ext, op_encode_hello_ext(version, info->name, info->version,
					       info->min_orchd_version, info->actions,
					       session ? session_features : features)) < 0) {
		complain(ext, "cannot write hello: %s", strerror(errno));
		goto fail;
	}

	r = read_msg(ext, &p);
	if (r == 0)
		complain(ext, "protocol error: end of input before the action");
	if (r <= 0)
		goto fail;
	if (p.type != OP_MSG_ACTION) {
		if (p.type == OP_MSG_CANCEL)
			complain(ext, "cancelled before the action");
		else
			complain(ext, "protocol error: expected action, got %s",
				 op_msg_type_name(p.type));
		op_parsed_release(&p);
		goto fail;
	}
	if (take_action(ext, &p) < 0)
		goto fail;
	return ext;
fail:
	op_ext_free(ext);
	return NULL;
}

struct op_ext *op_ext_start(const struct op_ext_info *info, int in_fd, int out_fd)
{
	return ext_start(info, in_fd, out_fd, false);
}

int op_ext_next(struct op_ext *ext)
{
	struct op_parsed p;
	int r;

	if (!ext->result_sent) {
		errno = EINVAL;
		return -1;
	}
	/* a cancelled action (or EOF seen) ends the session */
	if (ext->cancelled || ext->eof || op_ext_flush(ext) < 0)
		return 0;
	r = read_msg(ext, &p);
	if (r <= 0)
		return r;
	if (p.type != OP_MSG_ACTION) {
		enum op_msg_type type = p.type;

		/* orchd ends a session by closing stdin; a cancel between
		 * actions ends it too */
		if (type != OP_MSG_CANCEL)
			complain(ext, "protocol error: expected action, got %s",
				 op_msg_type_name(type));
		op_parsed_release(&p);
		return type == OP_MSG_CANCEL ? 0 : -1;
	}
	return take_action(ext, &p) < 0 ? -1 : 1;
}

enum op_action op_ext_action(const struct op_ext *ext)
{
	return ext->action;
}

struct json_object *op_ext_message(const struct op_ext *ext)
{
	return ext->action_msg;
}

static struct json_object *object_or_empty(const struct op_ext *ext, const char *key)
{
	struct json_object *v = op_get(ext->action_msg, key);

	return json_object_is_type(v, json_type_object) ? v : ext->empty;
}

struct json_object *op_ext_config(const struct op_ext *ext)
{
	return object_or_empty(ext, "config");
}

struct json_object *op_ext_outputs(const struct op_ext *ext)
{
	return object_or_empty(ext, "outputs");
}

struct json_object *op_ext_state(const struct op_ext *ext)
{
	return op_get(ext->action_msg, "state");
}

static const char *str_or_empty(const struct op_ext *ext, const char *key)
{
	const char *s = op_get_str(ext->action_msg, key);

	return s ? s : "";
}

const char *op_ext_instance(const struct op_ext *ext)
{
	return str_or_empty(ext, "instance");
}

const char *op_ext_stack(const struct op_ext *ext)
{
	return str_or_empty(ext, "stack");
}

const char *op_ext_workdir(const struct op_ext *ext)
{
	return str_or_empty(ext, "workdir");
}

/* vasprintf into a malloc'ed string; NULL on ENOMEM. */
__attribute__((format(printf, 1, 0))) static char *vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;

	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

int op_ext_log(struct op_ext *ext, const char *level, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int ret;

	if (after_result(ext))
		return -1;
	va_start(ap, fmt);
	msg = vfmt(fmt, ap);
	va_end(ap);
	if (!msg)
		return -1;
	ret = send_line(ext, op_encode_log(level, msg));
	free(msg);
	return ret;
}

int op_ext_progress(struct op_ext *ext, int percent, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int ret;

	if (after_result(ext))
		return -1;
	va_start(ap, fmt);
	msg = vfmt(fmt, ap);
	va_end(ap);
	if (!msg)
		return -1;
	ret = send_line(ext, op_encode_progress(msg, percent));
	free(msg);
	return ret;
}

/*
 * Send a state or output message whose value does not fit in one line with
 * the value in a file of the workdir (PROTOCOL.md §4.1).  key NULL: a
 * state.  0 or -1 (E2BIG: larger than OP_MAX_FILE_VALUE too).
 */
static int send_in_file(struct op_ext *ext, const char *key, const struct json_object *value,
			bool secret)
{
	const char *wd = op_ext_workdir(ext);
	struct json_object *m, *v = (struct json_object *)(uintptr_t)value;
	char name[64], *path, err[OP_ERRMAX];
	size_t n = 0;
	int ret, bad;

	if (!*wd || !json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &n) ||
	    n > OP_MAX_FILE_VALUE) {
		errno = E2BIG;
		return -1;
	}
	snprintf(name, sizeof(name), ".orchd-value-%u.json", ++ext->nfiles);
	path = malloc(strlen(wd) + sizeof(name) + 1);
	if (!path)
		return -1;
	sprintf(path, "%s/%s", wd, name);
	ret = op_write_value_file(path, value, err, sizeof(err));
	free(path);
	if (ret < 0) {
		complain(ext, "%s", err);
		return -1;
	}
	m = json_object_new_object();
	if (!m)
		return -1;
	bad = json_object_object_add(m, "type", json_object_new_string(key ? "output" : "state"));
	if (key)
		bad |= json_object_object_add(m, "key", json_object_new_string(key));
	bad |= json_object_object_add(m, "file", json_object_new_string(name));
	if (secret || key)
		bad |= json_object_object_add(m, "secret", json_object_new_boolean(secret));
	ret = bad ? -1 : send_line(ext, op_encode(m));
	json_object_put(m);
	return ret;
}

int op_ext_output(struct op_ext *ext, const char *key, const struct json_object *value, bool secret)
{
	char *line;

	if (after_result(ext))
		return -1;
	line = op_encode_output(key, value, secret);
	if (!line && errno == E2BIG)
		return send_in_file(ext, key, value, secret);
	return send_line(ext, line);
}

int op_ext_output_str(struct op_ext *ext, const char *key, const char *value, bool secret)
{
	struct json_object *v = json_object_new_string(value ? value : "");
	int ret;

	if (!v)
		return -1;
	ret = op_ext_output(ext, key, v, secret);
	json_object_put(v);
	return ret;
}

static int send_state(struct op_ext *ext, const struct json_object *state, bool secret)
{
	char *line;

	if (after_result(ext))
		return -1;
	line = secret ? op_encode_state_secret(state) : op_encode_state(state);
	if (!line && errno == E2BIG)
		return send_in_file(ext, NULL, state, secret);
	return send_line(ext, line);
}

int op_ext_state_send(struct op_ext *ext, const struct json_object *state)
{
	return send_state(ext, state, false);
}

int op_ext_state_send_secret(struct op_ext *ext, const struct json_object *state)
{
	return send_state(ext, state, true);
}

const char *op_ext_send_failure(char *buf, size_t len, int err, const char *fmt, ...)
{
	char what[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (err == E2BIG)
		snprintf(buf, len, "%s is larger than the protocol carries (at most %ld bytes)",
			 what, OP_MAX_FILE_VALUE);
	else
		snprintf(buf, len, "cannot send %s: %s", what, strerror(err));
	return buf;
}

int op_ext_mask(struct op_ext *ext, const char *value)
{
	if (after_result(ext))
		return -1;
	return send_line(ext, op_encode_mask(value));
}

int op_ext_error(struct op_ext *ext, bool retryable, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int ret;

	if (after_result(ext))
		return -1;
	va_start(ap, fmt);
	msg = vfmt(fmt, ap);
	va_end(ap);
	if (!msg)
		return -1;
	ret = send_line(ext, op_encode_error(msg, retryable));
	free(msg);
	return ret;
}

int op_ext_result(struct op_ext *ext, bool success, int changed, const struct json_object *extra,
		  const char *fmt, ...)
{
	va_list ap;
	char *summary = NULL;
	int ret;

	if (after_result(ext))
		return -1;
	if (fmt) {
		va_start(ap, fmt);
		summary = vfmt(fmt, ap);
		va_end(ap);
		if (!summary)
			return -1;
	}
	ret = send_line(ext, op_encode_result(success, changed, summary, extra));
	free(summary);
	ext->result_sent = true;
	return ret;
}

int op_ext_in_fd(const struct op_ext *ext)
{
	return ext->in_fd;
}

bool op_ext_cancelled(const struct op_ext *ext)
{
	return ext->cancelled;
}

/* Look at the buffered lines for a cancel. */
static void drain(struct op_ext *ext)
{
	for (;;) {
		const char *line;
		size_t len;
		struct op_parsed p;
		enum op_line_status st = op_splitter_next(ext->sp, &line, &len);

		if (st == OP_LINE_NONE)
			break;
		if (st != OP_LINE_OK)
			continue;
		op_parse_line(OP_TO_EXT, line, len, &p);
		if (p.verdict == OP_VALID && p.type == OP_MSG_CANCEL && !ext->cancelled) {
			snprintf(ext->reason, sizeof(ext->reason), "%s",
				 op_get_str(p.msg, "reason"));
			ext->cancelled = true;
		}
		op_parsed_release(&p);
	}
	if (ext->eof && !ext->cancelled) {
		snprintf(ext->reason, sizeof(ext->reason), "eof");
		ext->cancelled = true;
	}
}

bool op_ext_check_cancel(struct op_ext *ext, const char **reason)
{
	char buf[65536];

	drain(ext);
	while (!ext->cancelled && !ext->eof) {
		struct pollfd pfd = {ext->in_fd, POLLIN, 0};
		ssize_t n;

		if (poll(&pfd, 1, 0) <= 0)
			break;
		n = read(ext->in_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			ext->eof = true;
			op_splitter_finish(ext->sp);
		} else if (op_splitter_feed(ext->sp, buf, (size_t)n) < 0) {
			break;
		}
		drain(ext);
	}
	if (reason)
		*reason = ext->cancelled ? ext->reason : NULL;
	return ext->cancelled;
}

int op_ext_describe(struct op_ext *ext, const char *description, const struct json_object *config)
{
	struct json_object *d = json_object_new_object(), *a = json_object_new_array();
	struct json_object *extra = json_object_new_object();
	int ret = -1;

	if (!d || !a || !extra) {
		json_object_put(d);
		json_object_put(a);
		json_object_put(extra);
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; ext->info->actions && ext->info->actions[i]; i++)
		json_object_array_add(a, json_object_new_string(ext->info->actions[i]));
	json_object_object_add(d, "type", json_object_new_string(ext->info->name));
	json_object_object_add(d, "version", json_object_new_string(ext->info->version));
	json_object_object_add(d, "actions", a);
	if (description)
		json_object_object_add(d, "description", json_object_new_string(description));
	if (config)
		json_object_object_add(d, "config",
				       json_object_get((struct json_object *)(uintptr_t)config));
	json_object_object_add(extra, "describe", d);
	ret = op_ext_result(ext, true, false, extra, "%s %s", ext->info->name, ext->info->version);
	json_object_put(extra);
	return ret;
}

int op_ext_finish(struct op_ext *ext)
{
	int status = 0;

	if (!ext)
		return 1;
	if (!ext->result_sent) {
		op_ext_result(ext, false, -1, NULL, "extension ended without a result");
		status = 1;
	}
	op_ext_free(ext);
	return status;
}

void op_ext_free(struct op_ext *ext)
{
	if (!ext)
		return;
	op_ext_flush(ext);
	op_buf_release(&ext->pending);
	op_splitter_free(ext->sp);
	json_object_put(ext->action_msg);
	json_object_put(ext->empty);
	free(ext);
}

/* The handler of action a, or NULL. */
static op_ext_handler handler_of(const struct op_ext_handlers *h, enum op_action a)
{
	if (!h)
		return NULL;
	switch (a) {
	case OP_ACTION_DESCRIBE:
		return h->describe;
	case OP_ACTION_VALIDATE:
		return h->validate;
	case OP_ACTION_PLAN:
		return h->plan;
	case OP_ACTION_APPLY:
		return h->apply;
	case OP_ACTION_DESTROY:
		return h->destroy;
	case OP_ACTION_NONE:
		break;
	}
	return NULL;
}

int op_ext_main(int argc, char **argv, const struct op_ext_info *info,
		const struct op_ext_handlers *handlers)
{
	/* the advertised actions when info has none: one per handler, in the
	 * order of enum op_action, then the NULL terminator */
	const char *derived[OP_ACTION_DESTROY + 1];
	struct op_ext_info with_actions = *info;
	struct op_ext *ext;
	op_ext_handler fn;
	size_t n = 0;
	int r = 0;

	(void)argv;
	if (argc > 1) {
		dprintf(2,
			"orchd-ext-%s %s: an orchd extension (protocol %d); "
			"it is started by orchd and speaks JSON lines on stdin/stdout\n",
			info->name, info->version, OP_PROTOCOL_MAX);
		return 2;
	}
	if (!info->actions) {
		for (enum op_action a = OP_ACTION_DESCRIBE; a <= OP_ACTION_DESTROY; a++)
			if (handler_of(handlers, a))
				derived[n++] = op_action_name(a);
		derived[n] = NULL;
		with_actions.actions = derived;
	}
	/* SIGTERM and SIGINT are caught from the start (PROTOCOL.md §9.2): one
	 * that comes before a handler runs its command is a cancel too */
	op_cmd_catch_signals();
	ext = ext_start(&with_actions, 0, 1, true);
	if (!ext)
		return 1;
	do {
		fn = handler_of(handlers, op_ext_action(ext));
		/* a cancel message is the handler's to see (op_ext_check_cancel):
		 * it can say why, and clean up */
		if (op_cmd_signal_caught())
			op_ext_result(ext, false, -1, NULL, "cancelled");
		else if (fn)
			fn(ext);
		else
			op_ext_result(ext, false, -1, NULL, "unsupported action");
		if (!ext->result_sent)
			break; /* op_ext_finish() says so */
			       /* a session (PROTOCOL.md §7.6): the next action, until EOF */
	} while ((r = op_ext_next(ext)) > 0);
	if (r < 0) {
		op_ext_free(ext);
		return 1;
	}
	return op_ext_finish(ext);
}
