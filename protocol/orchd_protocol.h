/*
 * orchd_protocol.h: the orchd extension protocol, version 1 (see
 * protocol/PROTOCOL.md, which is normative; this library implements it).
 *
 * Used by both sides: the orchd supervisor (framing of the extension's
 * stdout/stderr, validation of what the extension says, encoding of hello /
 * action / cancel) and C extensions (the op_ext_* helper at the end).
 *
 * Installed as <orchd/orchd_protocol.h>; link with -lorchd-protocol and
 * json-c (`pkg-config --cflags --libs orchd-protocol json-c`); the .pc
 * file's variable `warnings` is the warning set orchd is built with.  This
 * header is self-contained: it needs no other orchd header, and only
 * forward declares json-c's struct json_object.
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

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/*
 * Largest JSON value carried in a file instead of a line (PROTOCOL.md §4.1):
 * the action's config_file/state_file/outputs_file, the file of a state or
 * output message.
 */
#define OP_MAX_FILE_VALUE (64L * 1024 * 1024)
/* ... holding at most this many JSON values (each costs its reader an
 * object: 64 MiB of "1," would be 32 million of them, gigabytes). */
#define OP_MAX_FILE_VALUES 1000000

/* The hello feature of an extension that reads the action's *_file fields. */
#define OP_FEATURE_FILES "files"
/* hello feature: several actions in one process, one after the other
 * (PROTOCOL.md §7.6) */
#define OP_FEATURE_SESSION "session"

/* Size of the error-text buffers used below (messages are truncated to it). */
#define OP_ERRMAX 512

/* ---------------------------------------------------------------------------
 * Buffers: a growable, NUL-terminated byte buffer with a hard size cap, used
 * by the library itself, by orchd and by C extensions.
 *
 * Invariants:
 *   - b->buf is either NULL (nothing allocated yet, len == 0) or points to
 *     b->alloc bytes of which the first b->len are content and
 *     b->buf[b->len] == '\0'.  op_buf_str() gives a C string in all cases.
 *   - b->len never exceeds b->max (when max != 0).  The buffer may hold NUL
 *     bytes; len is authoritative.
 *
 * Failure is sticky (curl's dynbuf, made sticky): an append that would cross
 * the cap, or an allocation failure, releases the buffer, records the errno
 * (E2BIG or ENOMEM) in b->err and returns -1; every later append then
 * returns -1 at once and adds nothing, so a failed buffer never holds a
 * tail fragment.  A caller may check each append, or append freely and
 * check op_buf_failed() once before using the content.  op_buf_reset() and
 * op_buf_release() clear the failure.
 *
 * Ownership: the buffer owns buf.  op_buf_detach() hands it to the caller,
 * who frees it with free().
 * ------------------------------------------------------------------------- */

struct op_buf {
	char *buf;
	size_t len;
	size_t alloc;
	size_t max; /* 0: no cap */
	int err;    /* 0, or the errno of the first failed append (sticky) */
};

#define OP_BUF_INIT              \
	{                        \
		NULL, 0, 0, 0, 0 \
	}

void op_buf_init(struct op_buf *b, size_t max);
/* Free the memory; the buffer is empty and usable again (failure cleared). */
void op_buf_release(struct op_buf *b);
/* Empty the buffer but keep its memory; clears the failure. */
void op_buf_reset(struct op_buf *b);
/* Make room for at least n more bytes. 0 or -1. */
int op_buf_grow(struct op_buf *b, size_t n);
int op_buf_add(struct op_buf *b, const void *data, size_t n);
int op_buf_addstr(struct op_buf *b, const char *s);
int op_buf_addch(struct op_buf *b, int c);
int op_buf_addf(struct op_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int op_buf_vaddf(struct op_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* 0, or the errno (E2BIG, ENOMEM) of the append that failed. */
int op_buf_failed(const struct op_buf *b);
/* Drop the first n bytes (n <= len). */
void op_buf_consume(struct op_buf *b, size_t n);
/* Truncate to len bytes (len <= b->len). */
void op_buf_setlen(struct op_buf *b, size_t len);
/*
 * Shorten b to at most max bytes (max >= 4) ending in "..." when it is
 * longer, without leaving a partial UTF-8 sequence before the dots (e.g.
 * a result summary made of a tool's output).  A failed buffer stays failed.
 */
void op_buf_ellipsize(struct op_buf *b, size_t max);
/* Always a valid C string, "" when empty. */
const char *op_buf_str(const struct op_buf *b);
/* Hand over the malloc'ed string (never NULL: "" is allocated when empty)
 * and leave b empty.  NULL when the buffer failed (errno = b->err) or on
 * allocation failure. */
char *op_buf_detach(struct op_buf *b, size_t *len);

/*
 * Remove path and, when it is a directory, everything under it, depth
 * first, never following symbolic links and never crossing into another
 * filesystem (a mount point inside stays, and so does its parent).  It goes
 * on after an entry it cannot remove.  0 when everything is gone (a missing
 * path included), or -1 with errno of the first entry that could not be
 * removed.  Thread-safe.
 */
int op_rmtree(const char *path);

/*
 * Write data[0..len) to path: created with mode 0600 when it does not
 * exist (an existing file keeps its mode), truncated, written in full,
 * closed.  Meant for the small files an extension hands a tool (variables,
 * a state, a config), which may hold secrets.  0, or -1 with errno set and
 * err (errlen bytes; OP_ERRMAX is enough) holding
 * "cannot write 'PATH': REASON".
 */
int op_write_file(const char *path, const void *data, size_t len, char *err, size_t errlen);
/*
 * The same with the JSON text of v (borrowed; NULL: null), pretty-printed,
 * without '/' escaping and ending in a newline.  ENOMEM when the text
 * cannot be built.
 */
int op_write_json_file(const char *path, const struct json_object *v, char *err, size_t errlen);
/* The same, compact (a value handed over in a file, PROTOCOL.md §4.1). */
int op_write_value_file(const char *path, const struct json_object *v, char *err, size_t errlen);

/*
 * Read the JSON value held by a file (PROTOCOL.md §4.1) into *out (a new
 * reference, NULL for JSON null).  With dir NULL, path is opened as given.
 * With dir set, path must be relative to dir without '.', '..' or empty
 * segments, and is opened one component at a time from dir, following no
 * symbolic link, so that it cannot lead out of dir.  The file must be a
 * regular file of at most max bytes holding exactly one JSON value
 * (whitespace around it allowed) nested at most OP_MAX_DEPTH levels, of at
 * most OP_MAX_FILE_VALUES values.  0, or -1 with err holding "cannot read
 * 'PATH': REASON" / "'PATH' is not a regular file" / "'PATH' is larger
 * than N bytes" / "'PATH' holds more than N JSON values" / "'PATH': not
 * JSON: ...".
 */
int op_read_value_file(const char *dir, const char *path, size_t max, struct json_object **out,
		       char *err, size_t errlen);

/*
 * Parse s[0..len) as exactly one JSON value (strict, valid UTF-8, at most
 * OP_MAX_DEPTH levels, whitespace around it allowed) into *out (a new
 * reference, NULL for JSON null).  0, or -1 with err holding "not JSON:
 * REASON" or "nested deeper than 64 levels".
 */
int op_parse_value(const char *s, size_t len, struct json_object **out, char *err, size_t errlen);

/* True when path is relative without '.', '..' or empty segments. */
bool op_path_is_plain(const char *path);

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
/* Bytes fed and not pulled yet: once next() returned NONE, the start of a
 * line whose '\n' has not come (0: input may be taken whole lines at a
 * time, bypassing the splitter, e.g. by memrchr of the last '\n'). */
size_t op_splitter_buffered(const struct op_splitter *sp);

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
	OP_MSG_RESPONSE, /* answer to a request (PROTOCOL.md 6.1) */
	/* extension -> orchd */
	OP_MSG_LOG,
	OP_MSG_PROGRESS,
	OP_MSG_OUTPUT,
	OP_MSG_STATE,
	OP_MSG_ERROR,
	OP_MSG_RESULT,
	OP_MSG_REQUEST, /* ask orchd's core, e.g. op "fetch" (PROTOCOL.md 6.2) */
	OP_MSG_MASK,	/* a value orchd must never print (PROTOCOL.md 6.2) */
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

/* Small borrowed-value getters on a message, or any JSON object (NULL /
 * dflt when obj is NULL or not an object, or the field is absent or of
 * another type: op_get_int wants an integer, op_get_bool a boolean).  orchd
 * uses them for its own files too, so that every reader agrees. */
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
/*
 * The same, with any of the three values handed over in a file
 * (PROTOCOL.md §4.1): files[OP_VALUE_X] non-NULL sends field "X_file" with
 * that path instead of "X" (the value argument is then ignored).  files
 * may be NULL.
 */
enum op_value_field { OP_VALUE_CONFIG, OP_VALUE_STATE, OP_VALUE_OUTPUTS, OP_VALUE_NFIELDS };
extern const char *const op_value_field_names[OP_VALUE_NFIELDS];
char *op_encode_action_files(enum op_action action, const char *instance, const char *stack,
			     const struct json_object *config, const struct json_object *state,
			     const struct json_object *outputs, const char *workdir,
			     const char *const *files);
char *op_encode_cancel(const char *reason);

/* extension -> orchd.  actions: NULL-terminated array of action names;
 * features: the same for the optional features (NULL: none, the field is
 * left out). */
char *op_encode_hello_ext(int protocol, const char *name, const char *version,
			  const char *min_orchd_version, const char *const *actions,
			  const char *const *features);
/* level: "debug", "info", "warning" or "error". */
char *op_encode_log(const char *level, const char *message);
/*
 * The same log message appended to sb (with its '\n'), encoded directly
 * (no json-c object): text[0..len) may hold any bytes, invalid UTF-8 and
 * NUL are replaced by U+FFFD.  Output identical to op_encode_log() for
 * valid UTF-8.  0, or -1 with errno E2BIG (longer than OP_MAX_LINE; sb
 * unchanged) or ENOMEM (sb failed, see "Buffers").
 */
int op_encode_log_into(struct op_buf *sb, const char *level, const char *text, size_t len);
/* percent < 0: omitted. */
char *op_encode_progress(const char *message, int percent);
char *op_encode_output(const char *key, const struct json_object *value, bool secret);
char *op_encode_state(const struct json_object *state);
/* The same with "secret":true: orchd stores the state encrypted. */
char *op_encode_state_secret(const struct json_object *state);
char *op_encode_error(const char *message, bool retryable);
/* {"type":"mask","value":VALUE}: orchd never prints VALUE from now on. */
char *op_encode_mask(const char *value);
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
 * sent.  0, or a negative enum op_hello_verdict with err set to exactly:
 *   OP_HELLO_PROTOCOL  "extension speaks protocol 2, orchd speaks 1..1"
 *   OP_HELLO_VERSION   "extension exec 0.2.0 requires orchd >= 0.9.0 (this is 0.1.0)"
 *   OP_HELLO_ACTION    "extension exec 0.1.0 does not support action 'plan'"
 */
enum op_hello_verdict {
	OP_HELLO_OK = 0,
	OP_HELLO_PROTOCOL = -1,
	OP_HELLO_VERSION = -2,
	OP_HELLO_ACTION = -3,
};
int op_check_ext_hello(const struct json_object *ext_hello, int proto_min, int proto_max,
		       const char *orchd_version, enum op_action action, char *err, size_t errlen);
/* True when an extension's hello lists feature (in its "features" array). */
bool op_hello_has_feature(const struct json_object *ext_hello, const char *feature);

/* ---------------------------------------------------------------------------
 * Extension-side helper: a C extension is a declaration, a handler per
 * action, and a main() that hands both to op_ext_main():
 *
 *   static int my_apply(struct op_ext *ext)
 *   {
 *           op_ext_log(ext, "info", "...");
 *           return op_ext_result(ext, true, 1, NULL, "done");
 *   }
 *   static const struct op_ext_info info = {"mine", "0.1.0", "0.1.0", NULL};
 *   static const struct op_ext_handlers handlers = {.describe = my_describe,
 *                                                   .apply = my_apply};
 *   int main(int argc, char **argv)
 *   {
 *           return op_ext_main(argc, argv, &info, &handlers);
 *   }
 *
 * op_ext_main() is the handshake, a dispatch on op_ext_action() and, as
 * its hello declares feature "session" (PROTOCOL.md §7.6), op_ext_next()
 * after each result, then op_ext_finish().  An extension that needs another
 * main loop calls op_ext_start() (no session: one action per process),
 * op_ext_action(), op_ext_finish() itself.  Handlers then must not keep
 * state of one action for the next beyond what the messages carry.
 *
 * All emitters but op_ext_log_line (buffered) write one line with write(2)
 * on out_fd immediately (no stdio buffering), return 0 or -1 (EPIPE when
 * orchd went away; SIGPIPE should be ignored by the extension,
 * op_ext_start() does signal(SIGPIPE, SIG_IGN)).
 * ------------------------------------------------------------------------- */

struct op_ext_info {
	const char *name;	       /* extension type, e.g. "exec" */
	const char *version;	       /* extension version */
	const char *min_orchd_version; /* NULL: "0.0.0" */
	const char *const *actions;    /* NULL-terminated action names; with
					  op_ext_main() NULL means "the actions
					  that have a handler" */
};

struct op_ext; /* opaque */

/*
 * Read orchd's hello from in_fd, answer hello (or, when no common protocol
 * version exists, send an error message with retryable false and return
 * NULL), then read the action message.  Returns NULL on any failure after
 * writing a short reason to stderr ("<name>: ...").  The caller then exits 1.
 * info is borrowed and must outlive the returned ext.
 */
struct op_ext *op_ext_start(const struct op_ext_info *info, int in_fd, int out_fd);

/*
 * In a session, after the result: wait for orchd's next message.  1: the
 * next action was read (op_ext_action(), op_ext_config() ... now describe
 * it; its result is owed); 0: the session is over (end of input, a
 * cancel, the last action was cancelled, or stdout is gone), the caller
 * exits 0; -1: read or protocol error (after a complaint on stderr), or
 * no result was sent yet (EINVAL).
 */
int op_ext_next(struct op_ext *ext);

enum op_action op_ext_action(const struct op_ext *ext);
/* The whole action message; borrowed (lives until op_ext_free). */
struct json_object *op_ext_message(const struct op_ext *ext);
/* Borrowed; config and outputs are never NULL (empty object if absent);
 * state is NULL when absent or JSON null (first run).  A value orchd sent
 * in a file (PROTOCOL.md §4.1; op_ext_start() declares feature "files"
 * and reads it) is returned the same way. */
struct json_object *op_ext_config(const struct op_ext *ext);
struct json_object *op_ext_state(const struct op_ext *ext);
struct json_object *op_ext_outputs(const struct op_ext *ext);
/* Borrowed strings, "" when absent (describe). */
const char *op_ext_instance(const struct op_ext *ext);
const char *op_ext_stack(const struct op_ext *ext);
const char *op_ext_workdir(const struct op_ext *ext);

int op_ext_log(struct op_ext *ext, const char *level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Buffered log: encode text[0..len) (any bytes: invalid UTF-8 and NUL
 * become U+FFFD) as one log message and keep it in the extension's output
 * buffer.  The buffer is written with one write() by op_ext_flush(), when
 * it reaches 64 KiB, before any other message is sent (order is kept) and
 * by op_ext_finish()/op_ext_free().  A caller batching lines must flush
 * when it has no more lines at hand (op_cmd_run flushes after each read of
 * the program's output), so that no line waits.  0 or -1 (E2BIG: the
 * message would exceed OP_MAX_LINE, nothing buffered; ENOMEM: the lines
 * buffered before it are lost too, the buffer is empty and usable again;
 * EPIPE...).
 */
int op_ext_log_line(struct op_ext *ext, const char *level, const char *text, size_t len);
/* Write the buffered log lines, if any.  0 or -1. */
int op_ext_flush(struct op_ext *ext);
int op_ext_progress(struct op_ext *ext, int percent, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Outputs and states: a message that would exceed OP_MAX_LINE is sent with
 * its value in a file of the workdir instead (PROTOCOL.md §4.1), up to
 * OP_MAX_FILE_VALUE bytes (E2BIG past it). */
int op_ext_output(struct op_ext *ext, const char *key, const struct json_object *value,
		  bool secret);
int op_ext_output_str(struct op_ext *ext, const char *key, const char *value, bool secret);
/* Register a secret value with orchd's masker before printing anything
 * that may hold it (a token a tool is about to echo). */
int op_ext_mask(struct op_ext *ext, const char *value);
int op_ext_state_send(struct op_ext *ext, const struct json_object *state);
/* A state that may hold secrets (stored encrypted by orchd). */
int op_ext_state_send_secret(struct op_ext *ext, const struct json_object *state);
/*
 * A result summary for an emitter that returned -1 with errno err; fmt
 * names what was sent (e.g. "the state", "output '%s'"): for E2BIG (a
 * message over OP_MAX_LINE, e.g. a large Terraform state)
 *   "WHAT does not fit in a protocol message (at most 1048576 bytes)",
 * otherwise "cannot send WHAT: STRERROR".  Written into buf (len bytes;
 * OP_ERRMAX is enough, WHAT is cut to 300 bytes), which is returned.
 */
const char *op_ext_send_failure(char *buf, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
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
 * Answer describe: a success result with summary "NAME VERSION" and
 * extra {"describe": {"type": NAME, "version": VERSION, "actions": [the
 * op_ext_info's actions], "description": description, "config": config}}
 * (config borrowed; NULL: omitted).  Returns what op_ext_result returned
 * (-1 with ENOMEM when the object cannot be built).
 */
int op_ext_describe(struct op_ext *ext, const char *description, const struct json_object *config);

/*
 * If no result was sent, send failure "extension ended without a result".
 * Frees ext.  Returns the exit status the extension should exit with:
 * 0 after a result was sent (success or failure), 1 otherwise.
 */
int op_ext_finish(struct op_ext *ext);
/* Free without sending anything. */
void op_ext_free(struct op_ext *ext);

/*
 * An action handler: called once, after the handshake, with the action
 * message available through op_ext_config() & co.  It sends any number of
 * messages and exactly one result (op_ext_result, op_ext_describe,
 * op_ext_fail_errors).  It returns 0, or -1 when the result could not be
 * written; op_ext_main() does not look at the value.
 */
typedef int (*op_ext_handler)(struct op_ext *ext);

/* One handler per action; NULL: the action is not supported. */
struct op_ext_handlers {
	op_ext_handler describe;
	op_ext_handler validate;
	op_ext_handler plan;
	op_ext_handler apply;
	op_ext_handler destroy;
};

/*
 * The whole main() of a C extension; returns the process's exit status.
 *
 * With any argument (argc > 1; orchd passes none) it only writes
 *   "orchd-ext-NAME VERSION: an orchd extension (protocol N); it is started
 *    by orchd and speaks JSON lines on stdin/stdout"
 * to stderr and returns 2.  Otherwise it runs op_ext_start(info, 0, 1)
 * (returns 1 when the handshake fails), calls the handler of the action
 * (an action without a handler, or one this library does not know, gets
 * the failure result "unsupported action"), and returns op_ext_finish():
 * 0 when a result was sent, 1 after sending "extension ended without a
 * result" for a handler that sent none.
 *
 * info->actions NULL: the hello and describe advertise the actions that
 * have a handler, in the order describe, validate, plan, apply, destroy
 * (one source of truth); otherwise info->actions is advertised as given.
 * info and handlers are borrowed for the call (static storage is usual);
 * handlers NULL is the same as no handler at all.  argv is not used.
 */
int op_ext_main(int argc, char **argv, const struct op_ext_info *info,
		const struct op_ext_handlers *handlers);

/* ---------------------------------------------------------------------------
 * Child processes: the one way orchd and its C extensions start a program
 * (git's run-command, reduced to what they need).  The supervisor starts
 * extensions with it (in their sandbox), op_cmd_run() the tools of an
 * extension, the Pulumi engine the pulumi CLI.
 *
 *   struct op_child c = OP_CHILD_INIT;
 *   c.argv = argv;  c.env = envp;  c.cwd = dir;
 *   c.in = OP_CHILD_NULL;  c.out = OP_CHILD_PIPE;  c.err = OP_CHILD_PIPE;
 *   c.flags = OP_CHILD_PGROUP;
 *   if (op_child_start(&c) < 0)
 *           ... op_child_error(&c, buf, sizeof(buf)) ...
 *   ... read c.out and c.err until EOF ...
 *   op_child_reap(&c, 0, &status, NULL);
 *
 * The fd contract of ->in, ->out and ->err (the child's 0, 1 and 2):
 *   OP_CHILD_INHERIT (0)  the child gets the caller's own fd 0/1/2;
 *   OP_CHILD_PIPE   (-1)  a pipe is made; start() replaces the field with
 *                         the caller's end (close-on-exec, non-blocking;
 *                         the caller closes it);
 *   OP_CHILD_NULL   (-2)  /dev/null;
 *   N > 2                 fd N is dup'ed onto the child's fd; the caller
 *                         keeps N and closes it after start().
 * Every other fd is closed in the child (close_range): nothing leaks into
 * a program that did not ask for it.
 *
 * Between fork and exec the child makes only async-signal-safe calls (argv,
 * the environment and every path are the caller's, built before start()).
 * In order:
 *   - with ->clone_flags (CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNS ...) the
 *     child is created by clone(2) in those new namespaces, else by fork;
 *   - with ->parent_setup, the child waits while the parent runs
 *     ->parent_setup(->setup_arg, pid) (the uid and gid maps of a new user
 *     namespace, a cgroup): a failure kills the child (stage
 *     OP_CHILD_SETUP);
 *   - own process group (OP_CHILD_PGROUP, also set from the parent so that
 *     kill(-pid) works at once), SIGTERM when the parent dies
 *     (OP_CHILD_PDEATHSIG; the child exits 126 at once if the parent is
 *     already gone), default dispositions of SIGPIPE, SIGHUP, SIGINT,
 *     SIGTERM and SIGCHLD, the signal mask ->sigmask (NULL: empty),
 *     RLIMIT_NOFILE ->nofile (NULL: unchanged), the fds;
 *   - ->setup(->setup_arg) (mounts, say);
 *   - with OP_CHILD_REAPER, the child stays as the program's parent (pid 1
 *     of a new PID namespace, say): it forks the program in a process group
 *     of its own, forwards SIGTERM, SIGINT, SIGHUP and SIGQUIT to that
 *     group, reaps every process that ends up its child (it is their
 *     subreaper), and exits when the program has exited, after killing
 *     whatever the program left behind (its group, daemons, setsid
 *     grandchildren: nothing outlives it, namespace or not).
 *     OP_CHILD_KILL_ALL to the reaper kills the program and all it
 *     started at once; if the reaper's parent dies, the program gets
 *     SIGTERM, and everything SIGKILL OP_CHILD_ORPHAN_GRACE s later.
 *     The reaper is a fork of the caller, or with ->reaper_exe a program
 *     of its own, exec'd without copying the caller (see below);
 *   - in the process that runs the program: chdir(->cwd), then
 *     ->exec_setup(->setup_arg) (the last lock before exec: capabilities,
 *     seccomp), then execve.
 *
 * Reports travel over a close-on-exec pipe: a failure before exec as
 * {stage, errno} (without a reaper, EOF means exec worked), so a program
 * that exits 127 is never mistaken for one that could not be started; a
 * reaper also reports that the exec worked, then the program's wait status
 * and rusage (the program's and its descendants', not the reaper's, whose
 * memory high-water mark is its parent's), which op_child_reap() returns
 * in place of the reaper's own.  Without OP_CHILD_ASYNC,
 * start() reads the exec report itself: -1 then means the program did not
 * start (the child is reaped).  With OP_CHILD_ASYNC (an event loop that
 * must not wait for the exec), start() returns at once and the caller polls
 * ->report_fd (non-blocking) and calls op_child_report().
 *
 * Errors: -1 with errno set and ->stage/->errnum describing the failure;
 * op_child_error() formats it.  Not thread-safe per struct; start() may be
 * called from any thread (the child resets the mask it inherits; clone
 * with new namespaces works from a threaded process).
 * ------------------------------------------------------------------------- */

#define OP_CHILD_INHERIT 0
#define OP_CHILD_PIPE	 (-1)
#define OP_CHILD_NULL	 (-2)

/* op_child.flags */
#define OP_CHILD_PGROUP	   (1u << 0) /* its own process group */
#define OP_CHILD_PDEATHSIG (1u << 1) /* SIGTERM when the parent dies */
#define OP_CHILD_PATH	   (1u << 2) /* search argv[0] on the PATH of env (execvp) */
#define OP_CHILD_SHELL	   (1u << 3) /* a file without #! runs under /bin/sh (execvp) */
#define OP_CHILD_ASYNC	   (1u << 4) /* do not wait for the exec report */
#define OP_CHILD_REAPER	   (1u << 5) /* the child stays as the program's reaper */
/* To a reaper: kill the program and everything it started, now. */
#define OP_CHILD_KILL_ALL SIGUSR1
/* Seconds a reaper whose parent died gives the program after SIGTERM. */
#define OP_CHILD_ORPHAN_GRACE 2

enum op_child_stage {
	OP_CHILD_OK = 0, /* started */
	OP_CHILD_SPAWN,	 /* in the parent: pipe, fork, /dev/null */
	OP_CHILD_SETUP,	 /* ->parent_setup, ->setup or ->exec_setup failed */
	OP_CHILD_CHDIR,	 /* chdir(->cwd) failed */
	OP_CHILD_EXEC,	 /* execve failed */
	OP_CHILD_FDS,	 /* dup2 of the standard fds failed */
};

struct rlimit;
struct rusage;

struct op_child {
	/* argv[0] names the program: a path, or with OP_CHILD_PATH a name
	 * looked up on the PATH of env (default "/bin:/usr/bin").  Borrowed. */
	const char *const *argv;
	/* The whole environment, NULL-terminated; NULL: the caller's. */
	const char *const *env;
	const char *cwd; /* NULL: the caller's */
	int in, out, err;
	unsigned flags;
	const sigset_t *sigmask;     /* for the child; NULL: empty */
	const struct rlimit *nofile; /* RLIMIT_NOFILE for the child; NULL: unchanged */
	unsigned long clone_flags;   /* CLONE_NEW* of <sched.h>; 0: fork */
	/* The hooks (each may be NULL; see above for when they run).  0, or
	 * -1 with errno set: the start then fails at stage OP_CHILD_SETUP.
	 * setup and exec_setup run in the child: async-signal-safe calls
	 * only. */
	int (*parent_setup)(void *arg, pid_t pid);
	int (*setup)(void *arg);
	int (*exec_setup)(void *arg);
	void *setup_arg;

	/* Set by start(). */
	pid_t pid;		   /* 0 when not started */
	int report_fd;		   /* the reports (OP_CHILD_ASYNC, OP_CHILD_REAPER); -1 when done */
	enum op_child_stage stage; /* of the failure, OP_CHILD_OK */
	int errnum;		   /* errno of the failure */

	/*
	 * OP_CHILD_REAPER with a reaper program (NULL: the reaper is a fork
	 * of the caller): the child is made with clone(CLONE_VM|CLONE_VFORK)
	 * in the namespaces of ->clone_flags and at once execs reaper_exe, so
	 * the address space of the caller is never copied.  That program
	 * calls op_child_reaper_main(), which reads what this struct says
	 * (argv, env, cwd, flags, sigmask, nofile) from a plan and runs the
	 * part of the child from the go-ahead on, as a fork would.  ->setup
	 * and ->exec_setup are not called then: the plan carries reaper_plan
	 * (reaper_plan_len bytes, borrowed during start()), from which the
	 * decode callback of the reaper program sets its own hooks.
	 * ->parent_setup runs in the caller as usual.
	 */
	const char *reaper_exe;
	const void *reaper_plan;
	size_t reaper_plan_len;
};

#define OP_CHILD_INIT                                                                       \
	{                                                                                   \
		NULL, NULL, NULL, 0, 0, 0, 0, NULL, NULL, 0, NULL, NULL, NULL, NULL, 0, -1, \
			OP_CHILD_OK, 0, NULL, NULL, 0                                       \
	}

/*
 * Start the child (see above).  0, or -1 with errno, ->stage and ->errnum
 * set: then no process is left behind and every pipe made is closed.
 */
int op_child_start(struct op_child *c);
/*
 * OP_CHILD_ASYNC: read the exec report from c->report_fd.  1 exec worked,
 * 0 the child failed before exec (->stage, ->errnum set; the child exits
 * 127 and still has to be reaped), -1 with errno EAGAIN when the report is
 * not there yet.  Once decided the caller stops polling report_fd (it is
 * closed, or with a reaper kept for op_child_reap()).
 */
int op_child_report(struct op_child *c);
/*
 * Reap the child: wait4() for c->pid, retrying on EINTR.  With nohang,
 * 0 when it is still running.  1 when reaped (*wstatus and *ru may be
 * NULL), -1 with errno (ECHILD: someone else reaped it).  With a reaper,
 * *wstatus is the program's status as the reaper reported it (the
 * reaper's own when it was killed before it could), and report_fd is
 * closed.
 */
int op_child_reap(struct op_child *c, int nohang, int *wstatus, struct rusage *ru);
/*
 * The main of a reaper program (see ->reaper_exe): fds 0-2 are the
 * program's, 3 the report pipe, 4 the go-ahead (or closed), 5 the plan.
 * decode(plan, len, c) reads the caller's part (->reaper_plan) and sets
 * c->setup, c->exec_setup and c->setup_arg; 0, or -1 (the start then fails
 * at OP_CHILD_SETUP).  Never returns.
 */
_Noreturn void op_child_reaper_main(int (*decode)(const void *plan, size_t len,
						  struct op_child *c));
/*
 * The byte format of reaper plans, for the caller's part too: native-endian
 * u32 fields and byte strings prefixed with their u32 length (the writer
 * and the reader are the same build).  The writer appends to an op_buf;
 * the reader walks a cursor that turns bad, and then yields 0 and NULL,
 * at the first field that runs past the end.
 */
struct op_plan_cursor {
	const unsigned char *p, *end;
	int bad;
};
void op_plan_put_u32(struct op_buf *b, uint32_t v);
void op_plan_put_bytes(struct op_buf *b, const void *p, size_t n);
uint32_t op_plan_u32(struct op_plan_cursor *k);
const void *op_plan_bytes(struct op_plan_cursor *k, size_t *len);
/*
 * The failure as one line: "cannot run 'ARGV0': REASON",
 * "cannot change to directory 'CWD': REASON", "cannot set up 'ARGV0':
 * REASON", "cannot start 'ARGV0': REASON" (pipes, fork).  buf is returned.
 */
const char *op_child_error(const struct op_child *c, char *buf, size_t len);

/* ---------------------------------------------------------------------------
 * Extension-side: running a tool (op_cmd_*).
 *
 * One runner for C extensions that start a program (exec's command, tofu,
 * sops, age ...):
 *
 *   char *argv[] = {"tofu", "plan", NULL};
 *   struct op_cmd_opts o = {.argv = argv,
 *                           .out = {OP_CMD_LOG, "info", 0},
 *                           .err = {OP_CMD_LOG | OP_CMD_CAPTURE, "warning", 65536}};
 *   struct op_cmd_result r;
 *   op_cmd_run(ext, &o, &r);
 *   if (!op_cmd_exited(&r, 0)) ... r.error / op_cmd_status_text() ...
 *   op_cmd_result_release(&r);
 *
 * The program runs in its own process group, with stdin from /dev/null (or
 * a pipe fed with opts->input), the extension's environment plus opts->env,
 * and the default signal dispositions and an empty signal mask.  argv[0]
 * is looked up on the PATH of that environment (as execvp does, including
 * running a file without a #! line with /bin/sh).  Between fork and exec the
 * child only makes async-signal-safe calls: argv, envp and every other
 * string are built before fork.
 *
 * Its stdout and stderr are read without blocking; per stream:
 *   OP_CMD_LOG      split into lines (over-long lines come as chunks of
 *                   line_max bytes), invalid UTF-8 and NUL bytes replaced
 *                   by U+FFFD, each line sent as a log message at `level`
 *                   (after opts->line_fn, which may change the level or drop
 *                   the line);
 *   OP_CMD_CAPTURE  raw bytes kept in res->out / res->err, at most
 *                   capture_max bytes (the rest is read and dropped, and
 *                   .truncated is set);
 *   both, or 0 (read and dropped; line_fn still sees the lines);
 *   OP_CMD_PASS     alone: the program writes straight to the extension's
 *                   own stderr, which the extension never reads: orchd
 *                   logs those lines as it logs any stderr line of an
 *                   extension (info, source "stderr"; PROTOCOL.md §6).  No
 *                   copy, no JSON, no line_fn: the fast path for the bulk
 *                   output of a tool.
 *
 * Cancel: while the program runs, a cancel from orchd (op_ext_check_cancel,
 * including one buffered with the action) or SIGTERM/SIGINT to the
 * extension (see op_cmd_catch_signals) sends SIGTERM to the program's
 * process group and logs "cancelled: sent SIGTERM to NAME" (warning); if it
 * still runs kill_grace_ms later, SIGKILL to the group and "NAME still
 * running: sent SIGKILL".  Processes of the group started after the first
 * SIGTERM get another SIGTERM when the program is reaped.  When the run
 * starts after a cancel, the program is not started at all.
 *
 * A grandchild that keeps the pipes open after the program exited does
 * not hang the run: once the program is reaped and the pipes stay silent
 * for 200 ms, what is buffered is taken and the pipes are closed.
 *
 * Signals: the runner needs SIGCHLD to be deliverable; op_cmd_run() calls
 * op_cmd_catch_signals() itself, an extension may call it earlier so that
 * a SIGTERM that arrives before the first run is noticed too.
 * ------------------------------------------------------------------------- */

/* struct op_cmd_stream.mode bits */
#define OP_CMD_LOG     1
#define OP_CMD_CAPTURE 2
#define OP_CMD_PASS    4

/* Defaults for zero fields of the options. */
#define OP_CMD_LINE_MAX	     65536
#define OP_CMD_CAPTURE_MAX   (16 * 1024 * 1024)
#define OP_CMD_KILL_GRACE_MS 5000

struct op_cmd_stream {
	int mode;	    /* OP_CMD_LOG | OP_CMD_CAPTURE, or 0 */
	const char *level;  /* OP_CMD_LOG: "debug", "info", "warning" or "error" */
	size_t capture_max; /* OP_CMD_CAPTURE: bytes kept; 0: OP_CMD_CAPTURE_MAX */
};

/*
 * Called for each line of either stream (stream 1: stdout, 2: stderr) when
 * the stream is logged or line_fn is set.  line is the cleaned UTF-8 text
 * (NUL-terminated, len bytes, modifiable in place, e.g. to mask a value;
 * valid only during the call).  *level is the stream's level (NULL when the
 * stream is not logged); set it to another level, or to NULL to not log the
 * line.
 */
typedef void (*op_cmd_line_fn)(void *arg, int stream, char *line, size_t len, const char **level);

struct op_cmd_opts {
	char *const *argv; /* NULL-terminated, argv[0] non-empty; borrowed */
	char *const *env;  /* NULL or NULL-terminated "NAME=VALUE" added to
				 (or replacing in) the extension's environment */
	const char *cwd;   /* the program's working directory; NULL: ours */
	const void *input; /* NULL: stdin from /dev/null; else input_len bytes
				 written to the program's stdin, then closed */
	size_t input_len;
	struct op_cmd_stream out, err;
	size_t line_max;	/* 0: OP_CMD_LINE_MAX */
	op_cmd_line_fn line_fn; /* NULL: none */
	void *line_arg;
	const char *name;  /* NAME in the cancel messages; NULL: argv[0] */
	int kill_grace_ms; /* 0: OP_CMD_KILL_GRACE_MS */
};

/* A captured stream: buf is NUL-terminated (after the run, never NULL),
 * may contain NUL bytes (len is authoritative); owned by the result. */
struct op_cmd_buf {
	char *buf;
	size_t len;
	bool truncated; /* more than capture_max bytes came (or ENOMEM) */
};

struct op_cmd_result {
	bool ran;	       /* started (exec succeeded) and reaped: status is valid */
	int status;	       /* wait status (ran) */
	int exit_code;	       /* WEXITSTATUS when it exited, else -1 */
	int term_signal;       /* WTERMSIG when a signal killed it, else 0 */
	bool cancelled;	       /* a cancel or SIGTERM/SIGINT arrived during (or before) the run */
	char error[OP_ERRMAX]; /* not started: "cannot run 'x': No such file or directory",
				  "cannot change to directory 'd': ...",
				  "cannot start 'x': ..." (pipes, fork), "cancelled"; "" otherwise */
	struct op_cmd_buf out, err;
};

/*
 * Run opts->argv to completion or cancellation.  ext may be NULL (then
 * nothing is logged and only signals cancel).  Always fills *res (release
 * it with op_cmd_result_release() in every case).  Returns 0 when the
 * program was started (res->ran then tells it was reaped; res->cancelled
 * may be set), or -1 with res->error and errno set (ECANCELED when it was
 * not started because of a cancel, res->cancelled being set; EINVAL for a
 * missing argv; else the errno of pipe/fork/chdir/exec).
 */
int op_cmd_run(struct op_ext *ext, const struct op_cmd_opts *opts, struct op_cmd_result *res);
/* Free (after overwriting with zeros: they may hold secrets) the captures. */
void op_cmd_result_release(struct op_cmd_result *res);
/* True when the program ran and exited with code. */
bool op_cmd_exited(const struct op_cmd_result *res, int code);
/* "signal 9 (SIGKILL)": a signal's number and name; buf is returned. */
const char *op_signal_text(int sig, char *buf, size_t len);
/* "exit status N" or "killed by signal S (SIGNAME)" (of a result that ran);
 * buf is returned. */
const char *op_cmd_status_text(const struct op_cmd_result *res, char *buf, size_t len);
/*
 * One-line verdict: res->error, "cancelled", "command exited with status
 * N" or "command killed by signal S (SIGNAME)".  Returns true when the program ran,
 * was not cancelled and exited with 0.
 */
bool op_cmd_summary(const struct op_cmd_result *res, char *buf, size_t len);
/*
 * A failed run explained for a result summary (malloc'ed; NULL: ENOMEM):
 * "WHAT: cancelled", "WHAT: <res->error>" (not started), or "WHAT failed
 * (exit status N): WHY", WHY being the lines of the captured stderr
 * (res->err) that start with one of prefixes (NULL-terminated; a prefix
 * ending in ": " is cut off, so "error: x" reads "x"), joined with "; ",
 * else its last three non-empty lines joined with " | ".  At most max
 * bytes (ellipsized; 0: no limit).
 */
char *op_cmd_failure(const struct op_cmd_result *res, const char *what, const char *const *prefixes,
		     size_t max);

/* True when s[0..len) is valid UTF-8 without NUL bytes (the test op_cmd_run's
 * line cleaning applies; an empty string is valid). */
bool op_utf8_valid(const void *s, size_t len);

/* Append s[0..len) to sb with each NUL byte and each byte that does not
 * start a valid UTF-8 sequence replaced by U+FFFD (the same cleaning).
 * 0, or -1 when an append failed (sb is then failed, see op_buf). */
int op_utf8_clean_into(struct op_buf *sb, const void *s, size_t len);

/*
 * Install handlers for SIGTERM and SIGINT (they only record the signal:
 * op_cmd_signal_caught() then returns it and runs treat it as a cancel) and
 * for SIGCHLD (wakes the runner; SA_NOCLDSTOP), all SA_RESTART, and unblock
 * the three.  Idempotent.
 */
void op_cmd_catch_signals(void);
/* The SIGTERM/SIGINT caught since op_cmd_catch_signals(), or 0. */
int op_cmd_signal_caught(void);

/* ---------------------------------------------------------------------------
 * Extension-side: configuration errors (the validate result's "errors").
 *
 *   struct op_errors errs = {0};
 *   op_errors_add(&errs, "command", "is required");
 *   op_errors_unknown_key(&errs, "", "comand", known_keys);
 *   if (errs.nr)
 *           op_ext_fail_errors(ext, &errs, 0, "invalid configuration: ");
 *   op_errors_release(&errs);
 *
 * Ownership: struct op_errors owns its entries (zero-initialised = empty);
 * release with op_errors_release().  Allocation failure: -1 with ENOMEM and
 * the error is not recorded.
 * ------------------------------------------------------------------------- */

struct op_error {
	char *path;    /* "command", "env.FOO", "values.db.sops.key"; "" for the whole config */
	char *message; /* "is required", "must be a string", ... */
};

struct op_errors {
	struct op_error *v;
	size_t nr, alloc;
};

int op_errors_add(struct op_errors *e, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * "unknown key 'KEY' (did you mean 'CANDIDATE'?)" or "unknown key 'KEY'",
 * at path; known: NULL-terminated (see op_closest).
 */
int op_errors_unknown_key(struct op_errors *e, const char *path, const char *key,
			  const char *const *known);
void op_errors_release(struct op_errors *e);
/* "path: message", or message alone when path is "" or the message quotes
 * it ("unknown key 'x'" at x); malloc'ed; NULL: ENOMEM. */
char *op_error_text(const struct op_error *e);
/* [{"path":..,"message":..}, ...]; the caller owns it.  NULL: ENOMEM. */
struct json_object *op_errors_json(const struct op_errors *e);

/*
 * The candidate (NULL-terminated list) closest to name by edit distance
 * (Levenshtein), when that distance is at most 2; the first of equally
 * close ones.  NULL when none is that close (or name is longer than 62
 * bytes).  Borrowed from candidates.
 */
const char *op_closest(const char *name, const char *const *candidates);

/*
 * Report errs (at least one) as a failed action: each error is logged at
 * level error as op_error_text(), then the result is sent with success
 * false, the given changed (see op_encode_result), summary
 * "PREFIX FIRST" or "PREFIX FIRST (and N more)", and extra
 * {"errors": op_errors_json(errs)}.  Returns what op_ext_result returned.
 */
int op_ext_fail_errors(struct op_ext *ext, const struct op_errors *errs, int changed,
		       const char *prefix);

/* ---------------------------------------------------------------------------
 * Extension-side: small config parsers shared by the C extensions' models.
 * Each adds its configuration errors to errs (texts below are the ones
 * users see) and never exits.
 *
 * Returns (int ones): 0 on success; -1 with errno EINVAL when errors were
 * added to errs (then *out is NULL); -1 with errno ENOMEM on allocation
 * failure (*out is NULL; errs may be incomplete).  Lists are
 * NULL-terminated, malloc'ed with malloc'ed strings, owned by the caller:
 * free with op_cfg_list_free().  The json-c values are borrowed, never put.
 * ------------------------------------------------------------------------- */

/* op_cfg_string_list flags */
#define OP_CFG_NONEMPTY_ITEMS (1u << 0) /* items must be non-empty strings */
#define OP_CFG_ALLOW_ONE \
	(1u << 1)	      /* a single non-empty string is a list of one
					   (implies OP_CFG_NONEMPTY_ITEMS) */
#define OP_CFG_ARGV (1u << 2) /* an argv: not empty, item 0 not "" */
/* op_cfg_env_map flags */
#define OP_CFG_ENV_IDENT \
	(1u << 0) /* names must match [A-Za-z_][A-Za-z0-9_]*
				      (default: non-empty, no '=') */

/* Free a NULL-terminated list of malloc'ed strings (NULL is fine). */
void op_cfg_list_free(char **list);

/*
 * The top of a config blob: "config must be a map" at "" when cfg is not
 * an object; else one op_errors_unknown_key() per key not in known
 * (NULL-terminated), at the key's own path.
 */
int op_cfg_check_map(const struct json_object *cfg, const char *const *known,
		     struct op_errors *errs);

/*
 * A list of strings at key: "KEY: must be a list of strings",
 * "KEY[I]: must be a string" (with OP_CFG_NONEMPTY_ITEMS or
 * OP_CFG_ALLOW_ONE: "must be a non-empty string"); with OP_CFG_ARGV also
 * "KEY: must not be empty" and "KEY: program name must not be empty".
 */
int op_cfg_string_list(const struct json_object *value, const char *key, unsigned flags,
		       struct op_errors *errs, char ***out);

/*
 * An environment map at key (NAME -> string) as "NAME=VALUE" entries:
 * "KEY: must be a map of strings", "KEY.NAME: is not a valid variable name",
 * "KEY.NAME: must be a string".
 */
int op_cfg_env_map(const struct json_object *value, const char *key, unsigned flags,
		   struct op_errors *errs, char ***out);
/* Whether env (NULL-terminated "NAME=VALUE" entries; NULL is empty) sets name. */
bool op_cfg_env_has(char *const *env, const char *name);

/*
 * path when absolute, else "$ORCHD_PIPELINE_DIR/path" when that is set and
 * not empty, else "CWD/path" (or "./path" when the cwd is unknown); no
 * normalisation, no check that it exists.  Malloc'ed; NULL: ENOMEM.
 */
char *op_cfg_resolve_path(const char *path);

/*
 * Optional scalars of a config map cfg (borrowed).  op_cfg_string: absent
 * -> a copy of dflt (NULL stays NULL); present -> a copy, or "KEY: must be
 * a non-empty string".  op_cfg_bool: absent -> dflt; present -> its value,
 * or "KEY: must be true or false" (*out is then dflt).  0, or -1 with
 * errno EINVAL (an error added) or ENOMEM.
 */
int op_cfg_string(const struct json_object *cfg, const char *key, const char *dflt,
		  struct op_errors *errs, char **out);
int op_cfg_bool(const struct json_object *cfg, const char *key, bool dflt, struct op_errors *errs,
		bool *out);
/* A duration as Go tools take it (kubectl, helm): one or more NUMBER UNIT,
 * units h, m, s, ms, us, ns; "30s", "1h30m", "500ms". */
bool op_cfg_duration_valid(const char *s);
/* A DNS-1123 label of at most max bytes: lower-case letters, digits, '-',
 * starting and ending with a letter or digit (Kubernetes names). */
bool op_cfg_dns_label(const char *s, size_t max);

#ifdef __cplusplus
}
#endif

#endif
