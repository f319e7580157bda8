/*
 * orchd_protocol.h: the orchd extension protocol, version 1 (see
 * protocol/PROTOCOL.md, which is normative; this library implements it).
 *
 * Used by both sides: the orchd supervisor (framing of the extension's
 * stdout/stderr, validation of what the extension says, encoding of hello /
 * action / cancel) and C extensions (the op_ext_* helper at the end).
 *
 * Installed as <orchd/orchd_protocol.h>; link with -lorchd-protocol and
 * json-c (`pkg-config --cflags --libs orchd-protocol json-c`).  This header
 * is self-contained: it needs no other orchd header, and only forward
 * declares json-c's struct json_object.
 *
 * Error convention: functions returning int return 0 on success and -1 on
 * failure with errno set (ENOMEM, EINVAL, EPIPE, E2BIG ...) unless
 * documented otherwise; functions returning a pointer return NULL on failure
 * with errno set.  The library never prints, never exits and never calls
 * abort().  Error texts written into caller buffers are lowercase, without a
 * final full stop, and are exactly the texts listed in PROTOCOL.md and the
 * conformance vectors (protocol/vectors/).
 *
 * json-c ownership rule (one rule for the whole library): a json_object
 * passed IN to any function is BORROWED (the library takes its own
 * reference with json_object_get() if it keeps it; the caller still puts
 * its own).  A json_object returned by a getter is BORROWED from the
 * structure it came from and lives as long as that structure, unless the
 * function's comment says "the caller owns" (then the caller must
 * json_object_put() it).
 *
 * Thread-safety: none of the objects below may be shared between threads
 * without external locking; different objects may be used concurrently.
 */
#ifndef ORCHD_PROTOCOL_H
#define ORCHD_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct json_object;

/* The protocol version(s) this library speaks. */
#define OP_PROTOCOL_MIN 1
#define OP_PROTOCOL_MAX 1

/* Maximum length of one protocol line, excluding the '\n'. */
#define OP_MAX_LINE 1048576

/* Maximum JSON nesting depth of one message (deeper: protocol error). */
#define OP_MAX_DEPTH 64

/* Size of the error-text buffers used below (messages are truncated to it). */
#define OP_ERRMAX 512

/* ---------------------------------------------------------------------------
 * Framing: a bounded line splitter for non-blocking reads.
 *
 * Feed it whatever read(2) returned; pull complete lines with
 * op_splitter_next().  Lines are returned without their '\n' (a trailing
 * '\r' is kept: the codec treats it as whitespace).
 *
 * Over-long lines (more than max_line bytes before the '\n') are handled per
 * mode:
 *   OP_SPLIT_STRICT  (stdout of an extension): next() returns OP_LINE_TOO_LONG
 *                    once, with the first max_line bytes as the line; the
 *                    rest of that line is discarded up to and including its
 *                    '\n', and the splitter then recovers (the next line is
 *                    returned normally).  The supervisor treats TOO_LONG as a
 *                    protocol error and stops the extension.
 *   OP_SPLIT_CHUNK   (stderr): the over-long line is returned as successive
 *                    OP_LINE_OK chunks of max_line bytes; never an error.
 * Memory use is bounded by max_line + the size of one feed().
 *
 * End of input: call op_splitter_finish() once read() returned 0; a final
 * partial line (bytes after the last '\n') is then returned as a normal line
 * (OP_LINE_OK), if non-empty.
 * ------------------------------------------------------------------------- */

enum op_split_mode {
	OP_SPLIT_STRICT = 0,
	OP_SPLIT_CHUNK = 1,
};

enum op_line_status {
	OP_LINE_NONE = 0, /* no complete line buffered (need more input, or done after finish) */
	OP_LINE_OK = 1,	  /* *line / *len hold one line */
	OP_LINE_TOO_LONG = 2, /* STRICT only: *line holds the first max_line bytes */
};

struct op_splitter; /* opaque */

/* max_line 0 means OP_MAX_LINE.  NULL on ENOMEM. */
struct op_splitter *op_splitter_new(size_t max_line, enum op_split_mode mode);
void op_splitter_free(struct op_splitter *sp);
/* Append input bytes.  0, or -1 (ENOMEM; the splitter is then unusable). */
int op_splitter_feed(struct op_splitter *sp, const void *data, size_t n);
/* Mark end of input (read returned 0). */
void op_splitter_finish(struct op_splitter *sp);
/*
 * Pull the next line.  *line is NUL-terminated (it may also contain NUL
 * bytes: *len is authoritative) and stays valid until the next call of any
 * op_splitter_* function on sp.
 */
enum op_line_status op_splitter_next(struct op_splitter *sp, const char **line, size_t *len);
/* True when finish() was called and every line has been pulled. */
bool op_splitter_done(const struct op_splitter *sp);

/* ---------------------------------------------------------------------------
 * Message types, actions, directions
 * ------------------------------------------------------------------------- */

enum op_direction {
	OP_TO_EXT = 0,	 /* orchd -> extension (extension's stdin) */
	OP_FROM_EXT = 1, /* extension -> orchd (extension's stdout) */
};

enum op_msg_type {
	OP_MSG_NONE = 0,
	/* both directions */
	OP_MSG_HELLO,
	/* orchd -> extension */
	OP_MSG_ACTION,
	OP_MSG_CANCEL,
	OP_MSG_RESPONSE, /* reserved (v1: accepted, unhandled) */
	/* extension -> orchd */
	OP_MSG_LOG,
	OP_MSG_PROGRESS,
	OP_MSG_OUTPUT,
	OP_MSG_STATE,
	OP_MSG_ERROR,
	OP_MSG_RESULT,
	OP_MSG_REQUEST, /* reserved (v1: accepted, unhandled) */
};

/* "hello", "action", ...; "none" for OP_MSG_NONE. */
const char *op_msg_type_name(enum op_msg_type t);

enum op_action {
	OP_ACTION_NONE = 0,
	OP_ACTION_DESCRIBE,
	OP_ACTION_VALIDATE,
	OP_ACTION_PLAN,
	OP_ACTION_APPLY,
	OP_ACTION_DESTROY,
};

/* "describe" ...; NULL for OP_ACTION_NONE or out of range. */
const char *op_action_name(enum op_action a);
/* OP_ACTION_NONE when name is NULL or unknown. */
enum op_action op_action_from_name(const char *name);

/* ---------------------------------------------------------------------------
 * Codec: parse and validate one line.
 * ------------------------------------------------------------------------- */

enum op_verdict {
	OP_EMPTY = 0,	       /* empty or whitespace-only line: ignore it */
	OP_VALID = 1,	       /* a valid message: type and msg are set */
	OP_NON_PROTOCOL = 2,   /* not a JSON object (log it as a warning, prefixed
				  "non-protocol output: ") */
	OP_PROTOCOL_ERROR = 3, /* a JSON object that breaks the protocol: error is set */
};

struct op_parsed {
	enum op_verdict verdict;
	enum op_msg_type type;	 /* OP_VALID only */
	struct json_object *msg; /* OP_VALID only; OWNED by this struct: freed by
				    op_parsed_release() unless taken with
				    op_parsed_steal() */
	char error[OP_ERRMAX];	 /* OP_PROTOCOL_ERROR: e.g.
				    "output: missing required field 'key'";
				    OP_NON_PROTOCOL: a short reason (not user-facing);
				    "" otherwise */
};

/*
 * Parse one line (without its '\n'; len may exceed OP_MAX_LINE, which is a
 * protocol error "line exceeds 1048576 bytes") for direction dir, and
 * validate the message's required fields and their types (PROTOCOL.md,
 * "Messages").  Unknown extra fields are ignored.  Always fills *out
 * (never fails otherwise; -1 only with ENOMEM, out->verdict then being
 * OP_PROTOCOL_ERROR with error "out of memory").  Returns 0 otherwise.
 * Call op_parsed_release(out) afterwards in every case.
 */
int op_parse_line(enum op_direction dir, const char *line, size_t len, struct op_parsed *out);
void op_parsed_release(struct op_parsed *p);
/* Take the message: the caller owns the returned object (json_object_put). */
struct json_object *op_parsed_steal(struct op_parsed *p);

/*
 * Validate an already-parsed JSON value as a message of direction dir.
 * Returns the type (> OP_MSG_NONE) or OP_MSG_NONE with err filled (errlen
 * bytes, OP_ERRMAX recommended).  msg is borrowed.
 */
enum op_msg_type op_validate_message(enum op_direction dir, const struct json_object *msg,
				     char *err, size_t errlen);

/* Small borrowed-value getters on a validated message (NULL / dflt when the
 * field is absent or of another type). */
const char *op_get_str(const struct json_object *msg, const char *key);
long long op_get_int(const struct json_object *msg, const char *key, long long dflt);
bool op_get_bool(const struct json_object *msg, const char *key, bool dflt);
/* Borrowed; NULL when absent.  A JSON null value also yields NULL. */
struct json_object *op_get(const struct json_object *msg, const char *key);
/* True when key is present (even with a null value). */
bool op_has(const struct json_object *msg, const char *key);

/* ---------------------------------------------------------------------------
 * Encoders.  Each returns a malloc'ed, NUL-terminated line ending in '\n'
 * (compact JSON, no '/' escaping), which the caller free()s; NULL with errno
 * ENOMEM, or EINVAL for a NULL required string.  json_object arguments are
 * borrowed; NULL stands for JSON null where a value is allowed.
 * ------------------------------------------------------------------------- */

/* Any JSON object as one protocol line (E2BIG if longer than OP_MAX_LINE). */
char *op_encode(const struct json_object *msg);

/* orchd -> extension */
char *op_encode_hello_orchd(int proto_min, int proto_max, const char *orchd_version);
/*
 * config, state, outputs: borrowed; config NULL -> {}, state NULL -> null,
 * outputs NULL -> {}.  For OP_ACTION_DESCRIBE instance/stack/workdir may be
 * NULL (then omitted); otherwise they are required.
 */
char *op_encode_action(enum op_action action, const char *instance, const char *stack,
		       const struct json_object *config, const struct json_object *state,
		       const struct json_object *outputs, const char *workdir);
char *op_encode_cancel(const char *reason);

/* extension -> orchd.  actions: NULL-terminated array of action names. */
char *op_encode_hello_ext(int protocol, const char *name, const char *version,
			  const char *min_orchd_version, const char *const *actions);
/* level: "debug", "info", "warning" or "error". */
char *op_encode_log(const char *level, const char *message);
/* percent < 0: omitted. */
char *op_encode_progress(const char *message, int percent);
char *op_encode_output(const char *key, const struct json_object *value, bool secret);
char *op_encode_state(const struct json_object *state);
/* The same with "secret":true: orchd stores the state encrypted. */
char *op_encode_state_secret(const struct json_object *state);
char *op_encode_error(const char *message, bool retryable);
/*
 * changed: -1 omitted, 0 false, 1 true.  summary NULL: omitted.
 * extra: NULL, or an object whose members are copied into the result
 * (e.g. {"describe":{...}} or {"errors":[...]}); borrowed.
 */
char *op_encode_result(bool success, int changed, const char *summary,
		       const struct json_object *extra);

/* write(2) all of buf to fd, retrying on EINTR/short writes (EAGAIN on a
 * non-blocking fd is an error).  0 or -1. */
int op_write_all(int fd, const void *buf, size_t len);

/* ---------------------------------------------------------------------------
 * Versions
 * ------------------------------------------------------------------------- */

/*
 * Compare dotted numeric versions ("0.1.0" < "0.10.0"; "1.2" == "1.2.0").
 * Each component's leading decimal digits are compared; anything after them
 * in a component (e.g. "-rc1") is ignored; a missing component is 0.
 * Returns <0, 0 or >0.  NULL sorts before everything.
 */
int op_version_cmp(const char *a, const char *b);
/* True when v is one or more dot-separated components each starting with a digit. */
bool op_version_valid(const char *v);
/* Highest version in both [a_min,a_max] and [b_min,b_max], or -1 if none. */
int op_negotiate(int a_min, int a_max, int b_min, int b_max);

/*
 * Supervisor side: check a validated extension hello (ext_hello, borrowed)
 * against orchd's protocol range and version and the action about to be
 * sent.  0, or -1 with err set to exactly one of:
 *   "extension speaks protocol 2, orchd speaks 1..1"
 *   "extension exec 0.2.0 requires orchd >= 0.9.0 (this is 0.1.0)"
 *   "extension exec 0.1.0 does not support action 'plan'"
 */
int op_check_ext_hello(const struct json_object *ext_hello, int proto_min, int proto_max,
		       const char *orchd_version, enum op_action action, char *err, size_t errlen);

/* ---------------------------------------------------------------------------
 * Extension-side helper: a C extension is main() + its logic.
 *
 *   static const char *const actions[] = {"describe", "validate", "plan",
 *                                         "apply", "destroy", NULL};
 *   struct op_ext_info info = {"exec", "0.1.0", "0.1.0", actions};
 *   struct op_ext *ext = op_ext_start(&info, 0, 1);
 *   if (!ext) return 1;   // handshake failed, already reported on stdout/stderr
 *   switch (op_ext_action(ext)) { ... op_ext_log(ext, "info", "..."); ...
 *                                 op_ext_result(ext, true, 1, NULL, "done"); }
 *   return op_ext_finish(ext);
 *
 * All emitters write one line with write(2) on out_fd immediately (no stdio
 * buffering), return 0 or -1 (EPIPE when orchd went away; SIGPIPE should be
 * ignored by the extension, op_ext_start() does signal(SIGPIPE, SIG_IGN)).
 * ------------------------------------------------------------------------- */

struct op_ext_info {
	const char *name;	       /* extension type, e.g. "exec" */
	const char *version;	       /* extension version */
	const char *min_orchd_version; /* NULL: "0.0.0" */
	const char *const *actions;    /* NULL-terminated action names */
};

struct op_ext; /* opaque */

/*
 * Read orchd's hello from in_fd, answer hello (or, when no common protocol
 * version exists, send an error message with retryable false and return
 * NULL), then read the action message.  Returns NULL on any failure after
 * writing a short reason to stderr ("<name>: ...").  The caller then exits 1.
 */
struct op_ext *op_ext_start(const struct op_ext_info *info, int in_fd, int out_fd);

enum op_action op_ext_action(const struct op_ext *ext);
/* The whole action message; borrowed (lives until op_ext_free). */
struct json_object *op_ext_message(const struct op_ext *ext);
/* Borrowed; config and outputs are never NULL (empty object if absent);
 * state is NULL when absent or JSON null (first run). */
struct json_object *op_ext_config(const struct op_ext *ext);
struct json_object *op_ext_state(const struct op_ext *ext);
struct json_object *op_ext_outputs(const struct op_ext *ext);
/* Borrowed strings, "" when absent (describe). */
const char *op_ext_instance(const struct op_ext *ext);
const char *op_ext_stack(const struct op_ext *ext);
const char *op_ext_workdir(const struct op_ext *ext);

int op_ext_log(struct op_ext *ext, const char *level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int op_ext_progress(struct op_ext *ext, int percent, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int op_ext_output(struct op_ext *ext, const char *key, const struct json_object *value,
		  bool secret);
int op_ext_output_str(struct op_ext *ext, const char *key, const char *value, bool secret);
int op_ext_state_send(struct op_ext *ext, const struct json_object *state);
/* A state that may hold secrets (stored encrypted by orchd). */
int op_ext_state_send_secret(struct op_ext *ext, const struct json_object *state);
int op_ext_error(struct op_ext *ext, bool retryable, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* See op_encode_result; fmt NULL: no summary.  Only the first call sends. */
int op_ext_result(struct op_ext *ext, bool success, int changed, const struct json_object *extra,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * The fd to poll(2) for orchd's messages after the action (cancel).  Call
 * op_ext_check_cancel() when it is readable AND once before the first wait:
 * a cancel sent together with the action is already buffered by the helper
 * and will not make the fd readable again.
 */
int op_ext_in_fd(const struct op_ext *ext);
/*
 * Read what is available on in_fd without blocking and return true once a
 * cancel message was received or orchd closed the stream (EOF before the
 * result means orchd is gone: treat as cancel).  *reason (may be NULL)
 * receives the borrowed reason ("interrupted", "timeout", "eof").
 */
bool op_ext_check_cancel(struct op_ext *ext, const char **reason);
bool op_ext_cancelled(const struct op_ext *ext);

/*
 * If no result was sent, send failure "extension ended without a result".
 * Frees ext.  Returns the exit status the extension should exit with:
 * 0 after a result was sent (success or failure), 1 otherwise.
 */
int op_ext_finish(struct op_ext *ext);
/* Free without sending anything. */
void op_ext_free(struct op_ext *ext);

#ifdef __cplusplus
}
#endif

#endif
