/*
 * misbehave: a protocol-speaking test extension for the supervisor's tests.
 *
 * Its hello is chosen by the environment variable MISBEHAVE_HELLO (the
 * config is only known after the handshake):
 *   (unset)   a normal hello (protocol 1, name misbehave, version 0.1.0)
 *   proto2    answers protocol 2
 *   newer     version 0.2.0, min_orchd_version 0.9.0
 *   noaction  supports only "describe"
 *   nocommon  answers an error message (no common version) and exits 1
 * Its behaviour after the action is chosen by config.mode:
 *   ok          log, progress, stderr line, outputs url + token (secret),
 *               state, result success (changed, summary "done")
 *   signal      raise(config.signal)
 *   noresult    exit(config.code) without a result (after an error message
 *               if config.error is set)
 *   hang        sleep forever (default SIGTERM disposition)
 *   ignoreterm  ignore SIGTERM and SIGINT and sleep forever
 *   termexit    sleep forever; SIGTERM makes it exit 42 (so a test can
 *               tell a forwarded SIGTERM from the grace's SIGKILL)
 *   waitcancel  ignore SIGTERM, wait for a cancel message, answer failure
 *               "cancelled: REASON"
 *   stamps      ignore SIGTERM; append "action T", then "cancel T" and
 *               "sigterm T" as they arrive, to the file config.file (T:
 *               CLOCK_MONOTONIC milliseconds); then wait for the SIGKILL
 *   flood       config.mb MiB of log messages (1000-byte lines) on stdout
 *               and as much text on stderr, then success; config.stream
 *               "stdout" or "stderr" limits it to one of them
 *   longline    one stdout line longer than 1 MiB, then sleep
 *   text        non-JSON and non-object lines on stdout, then success
 *   closeout    close stdout, then sleep forever
 *   grandchild  result success, then leave `sleep 600` holding stdout and
 *               stderr and exit 0
 *   badmsg      an output message without a key
 *   fds         output "fds": the names in /proc/self/fd, then success
 *   env         output "env": the environment as an object, then success
 *   failure     error (retryable) then result failure summary "it broke"
 *   exitafter   result success then exit 4
 *   sleep       sleep config.ms then success
 *   cwd         output "cwd": getcwd(), then success
 *   longstderr  one 1.5 MiB stderr line, then success
 *   stderrmix   about 3 MiB of stderr in writes of random sizes with short
 *               pauses (config.seed): short, empty and CR-ended lines,
 *               invalid UTF-8, NUL bytes, a 100 KiB and a 1.5 MiB line, a
 *               last line without '\n'; the same bytes also go to the
 *               file config.copy; then success
 *   describe    success result with a "describe" payload
 *   invalid     failure result with "errors":[{path,message}] (validate)
 *   fetch       request {"op": config.op or "fetch", "id": 7, "source":
 *               config.source}, wait for the response (skipping other
 *               lines), output "response": the response message and, if
 *               config.check names a file (relative to the workdir),
 *               output "content": its text; then success.  With
 *               config.after_cancel, first wait for a cancel message.
 *               Ignores SIGTERM (it answers a cancel through messages)
 */
#include <dirent.h>
#include <poll.h>
#include <time.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "orchd_protocol.h"

static void exit_42(int sig)
{
	(void)sig;
	_exit(42);
}

static void emit(json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(s);
	op_write_all(1, s, len);
	op_write_all(1, "\n", 1);
	json_object_put(o);
}

static json_object *msg(const char *type)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(type));
	return o;
}

static void emit_log(const char *level, const char *m)
{
	json_object *o = msg("log");
	json_object_object_add(o, "level", json_object_new_string(level));
	json_object_object_add(o, "message", json_object_new_string(m));
	emit(o);
}

static void emit_output(const char *key, json_object *v, int secret)
{
	json_object *o = msg("output");
	json_object_object_add(o, "key", json_object_new_string(key));
	json_object_object_add(o, "value", v);
	if (secret)
		json_object_object_add(o, "secret", json_object_new_boolean(1));
	emit(o);
}

static void emit_result(int ok, const char *summary)
{
	json_object *o = msg("result");
	json_object_object_add(o, "status", json_object_new_string(ok ? "success" : "failure"));
	json_object_object_add(o, "changed", json_object_new_boolean(ok));
	if (summary)
		json_object_object_add(o, "summary", json_object_new_string(summary));
	emit(o);
}

static json_object *read_msg(void)
{
	static char *line;
	static size_t cap;
	ssize_t n = getline(&line, &cap, stdin);
	if (n <= 0)
		return NULL;
	return json_tokener_parse(line);
}

static json_object *action;

/* Leave with everything freed (the tests also run it under LeakSanitizer). */
static int finish(int rc)
{
	json_object_put(action);
	return rc;
}

static volatile sig_atomic_t got_term;

static void note_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void stamp(const char *file, const char *what)
{
	FILE *f = fopen(file, "a");

	if (f) {
		fprintf(f, "%s %lld\n", what, mono_ms());
		fclose(f);
	}
}

/* stamps: see the header. */
static void stamps(const char *file)
{
	struct sigaction sa;
	int cancelled = 0, termed = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = note_term;
	sigaction(SIGTERM, &sa, NULL);
	stamp(file, "action");
	for (;;) {
		struct pollfd pfd = {0, POLLIN, 0};

		if (got_term && !termed) {
			termed = 1;
			stamp(file, "sigterm");
		}
		if (poll(&pfd, 1, 5) > 0 && !cancelled) {
			json_object *m = read_msg();

			if (m) {
				cancelled = 1;
				stamp(file, "cancel");
				json_object_put(m);
			} else {
				cancelled = 1; /* EOF */
			}
		}
	}
}

static void sleep_forever(void)
{
	for (;;)
		pause();
}

int main(void)
{
	const char *hello_mode = getenv("MISBEHAVE_HELLO");
	json_object *hello, *config, *v;
	const char *mode = "ok";
	struct rlimit nocore = {0, 0};

	setrlimit(RLIMIT_CORE, &nocore);
	hello = read_msg();
	if (!hello) {
		fprintf(stderr, "misbehave: no hello\n");
		return 1;
	}
	json_object_put(hello);
	if (hello_mode && !strcmp(hello_mode, "nocommon")) {
		json_object *o = msg("error");
		json_object_object_add(o, "message",
				       json_object_new_string("no common protocol version"));
		json_object_object_add(o, "retryable", json_object_new_boolean(0));
		emit(o);
		return 1;
	}
	{
		json_object *o = msg("hello");
		json_object *acts = json_object_new_array();
		int newer = hello_mode && !strcmp(hello_mode, "newer");
		json_object_object_add(
			o, "protocol",
			json_object_new_int(hello_mode && !strcmp(hello_mode, "proto2") ? 2 : 1));
		json_object_object_add(o, "name", json_object_new_string("misbehave"));
		json_object_object_add(o, "version",
				       json_object_new_string(newer ? "0.2.0" : "0.1.0"));
		json_object_object_add(o, "min_orchd_version",
				       json_object_new_string(newer ? "0.9.0" : "0.1.0"));
		json_object_array_add(acts, json_object_new_string("describe"));
		if (!hello_mode || strcmp(hello_mode, "noaction")) {
			static const char *const a[] = {"validate", "plan", "apply", "destroy"};
			for (size_t i = 0; i < 4; i++)
				json_object_array_add(acts, json_object_new_string(a[i]));
		}
		json_object_object_add(o, "actions", acts);
		emit(o);
	}
	action = read_msg();
	if (!action) {
		fprintf(stderr, "misbehave: no action\n");
		return finish(1);
	}
	config = json_object_object_get(action, "config");
	if (json_object_object_get_ex(config, "mode", &v))
		mode = json_object_get_string(v);
	/* config.only_action: misbehave in that action only; others succeed. */
	if (json_object_object_get_ex(config, "only_action", &v) &&
	    strcmp(json_object_get_string(v),
		   json_object_get_string(json_object_object_get(action, "action"))))
		mode = "quiet";

	if (!strcmp(mode, "quiet")) {
		emit_result(1, NULL);
	} else if (!strcmp(mode, "failuntil")) {
		/* Count attempts in config.file; fail (retryable) until config.n. */
		const char *path = json_object_get_string(json_object_object_get(config, "file"));
		int n = json_object_get_int(json_object_object_get(config, "n")), count = 0;
		FILE *f = path ? fopen(path, "r") : NULL;

		if (f) {
			if (fscanf(f, "%d", &count) != 1)
				count = 0;
			fclose(f);
		}
		count++;
		f = path ? fopen(path, "w") : NULL;
		if (f) {
			fprintf(f, "%d\n", count);
			fclose(f);
		}
		if (count < n) {
			json_object *o = msg("error");
			json_object_object_add(o, "message", json_object_new_string("not yet"));
			json_object_object_add(o, "retryable", json_object_new_boolean(1));
			emit(o);
			emit_result(0, "not yet");
		} else {
			emit_output("attempt", json_object_new_int(count), 0);
			emit_result(1, "made it");
		}
	} else if (!strcmp(mode, "ok")) {
		json_object *o = msg("progress"), *st = json_object_new_object();
		emit_log("info", "working");
		json_object_object_add(o, "message", json_object_new_string("half way"));
		json_object_object_add(o, "percent", json_object_new_int(50));
		emit(o);
		fprintf(stderr, "hello from stderr\n");
		emit_output("url", json_object_new_string("http://example.test/"), 0);
		emit_output("token", json_object_new_string("s3cr3t"), 1);
		json_object_object_add(st, "serial", json_object_new_int(7));
		o = msg("state");
		json_object_object_add(o, "state", st);
		emit(o);
		emit_result(1, "done");
	} else if (!strcmp(mode, "signal")) {
		int sig = json_object_object_get_ex(config, "signal", &v) ? json_object_get_int(v)
									  : SIGSEGV;
		signal(sig, SIG_DFL);
		raise(sig);
		return finish(99);
	} else if (!strcmp(mode, "noresult")) {
		if (json_object_object_get_ex(config, "error", &v)) {
			json_object *o = msg("error");
			json_object_object_add(o, "message", json_object_get(v));
			json_object_object_add(o, "retryable", json_object_new_boolean(1));
			emit(o);
		}
		return finish(json_object_object_get_ex(config, "code", &v) ? json_object_get_int(v)
									    : 3);
	} else if (!strcmp(mode, "hang")) {
		sleep_forever();
	} else if (!strcmp(mode, "termexit")) {
		signal(SIGTERM, exit_42);
		sleep_forever();
	} else if (!strcmp(mode, "ignoreterm")) {
		signal(SIGTERM, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		sleep_forever();
	} else if (!strcmp(mode, "stamps")) {
		stamps(json_object_get_string(
			json_object_object_get_ex(config, "file", &v) ? v : NULL));
	} else if (!strcmp(mode, "waitcancel")) {
		json_object *m;

		signal(SIGTERM, SIG_IGN);
		m = read_msg();
		const char *reason = "eof";
		char buf[128];
		if (m && json_object_object_get_ex(m, "reason", &v))
			reason = json_object_get_string(v);
		snprintf(buf, sizeof(buf), "cancelled: %s", reason);
		emit_result(0, buf);
		json_object_put(m);
	} else if (!strcmp(mode, "flood")) {
		long mb = json_object_object_get_ex(config, "mb", &v) ? json_object_get_int(v) : 10;
		char text[1001];
		long long total = (long long)mb << 20, done = 0;
		json_object *o;
		const char *s;
		memset(text, 'a', 1000);
		text[1000] = 0;
		o = msg("log");
		json_object_object_add(o, "level", json_object_new_string("debug"));
		json_object_object_add(o, "message", json_object_new_string(text));
		s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		{
			size_t sl = strlen(s);
			char *line = malloc(sl + 1);
			memcpy(line, s, sl);
			line[sl] = '\n';
			text[999] = '\n';
			const char *stream = "both";
			int out = 1, err = 1;
			if (json_object_object_get_ex(config, "stream", &v))
				stream = json_object_get_string(v);
			out = strcmp(stream, "stderr") != 0;
			err = strcmp(stream, "stdout") != 0;
			while (done < total) {
				if (out)
					op_write_all(1, line, sl + 1);
				if (err)
					op_write_all(2, text, 1000);
				done += out ? (long long)sl + 1 : 1000;
			}
			free(line);
		}
		json_object_put(o);
		emit_result(1, "flooded");
	} else if (!strcmp(mode, "longline")) {
		size_t n = OP_MAX_LINE + 10;
		char *big = malloc(n + 1);
		memset(big, 'x', n);
		memcpy(big, "{\"type\":\"log\",\"level\":\"info\",\"message\":\"", 40);
		big[n] = '\n';
		op_write_all(1, big, n + 1);
		free(big);
		sleep_forever();
	} else if (!strcmp(mode, "text")) {
		static const char t[] = "this is not json\n[1,2]\n\n   \n";
		op_write_all(1, t, sizeof(t) - 1);
		emit_result(1, "text");
	} else if (!strcmp(mode, "closeout")) {
		close(1);
		sleep_forever();
	} else if (!strcmp(mode, "grandchild")) {
		emit_result(1, "left a child");
		if (fork() == 0) {
			execlp("sleep", "sleep", "600", (char *)NULL);
			_exit(127);
		}
		return finish(0);
	} else if (!strcmp(mode, "badmsg")) {
		json_object *o = msg("output");
		json_object_object_add(o, "value", json_object_new_int(1));
		emit(o);
		sleep_forever();
	} else if (!strcmp(mode, "fds")) {
		DIR *d = opendir("/proc/self/fd");
		json_object *arr = json_object_new_array();
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
				continue;
			json_object_array_add(arr, json_object_new_string(de->d_name));
		}
		if (d)
			closedir(d);
		emit_output("fds", arr, 0);
		emit_result(1, NULL);
	} else if (!strcmp(mode, "env")) {
		json_object *o = json_object_new_object();
		for (char **e = environ; *e; e++) {
			const char *eq = strchr(*e, '=');
			char name[256];
			if (!eq || (size_t)(eq - *e) >= sizeof(name))
				continue;
			memcpy(name, *e, (size_t)(eq - *e));
			name[eq - *e] = 0;
			json_object_object_add(o, name, json_object_new_string(eq + 1));
		}
		emit_output("env", o, 0);
		emit_result(1, NULL);
	} else if (!strcmp(mode, "failure")) {
		json_object *o = msg("error");
		json_object_object_add(o, "message", json_object_new_string("network down"));
		json_object_object_add(o, "retryable", json_object_new_boolean(1));
		emit(o);
		emit_result(0, "it broke");
	} else if (!strcmp(mode, "exitafter")) {
		emit_result(1, "done");
		return finish(4);
	} else if (!strcmp(mode, "sleep")) {
		int ms = json_object_object_get_ex(config, "ms", &v) ? json_object_get_int(v) : 100;
		usleep((useconds_t)ms * 1000);
		emit_result(1, "slept");
	} else if (!strcmp(mode, "longstderr")) {
		size_t n = OP_MAX_LINE + OP_MAX_LINE / 2;
		char *big = malloc(n + 1);
		memset(big, 'e', n);
		big[n] = '\n';
		op_write_all(2, big, n + 1);
		free(big);
		emit_result(1, NULL);
	} else if (!strcmp(mode, "stderrmix")) {
		struct op_buf b = OP_BUF_INIT;
		const char *copy = json_object_get_string(json_object_object_get(config, "copy"));
		unsigned seed =
			(unsigned)json_object_get_int(json_object_object_get(config, "seed"));
		FILE *f = fopen(copy, "w");

		srand(seed);
		for (int k = 0; k < 4000; k++) {
			switch (rand() % 9) {
			case 0:
				op_buf_addch(&b, '\n');
				break;
			case 1:
				op_buf_addf(&b, "line %d with CR\r\n", k);
				break;
			case 2:
				op_buf_addf(&b, "bad \xff\xc3 utf-8 %d\n", k);
				break;
			case 3:
				op_buf_add(&b, "nul \0 in it\n", 13);
				break;
			case 4:
				op_buf_addf(&b, "half a line %d, ", k); /* the rest comes later */
				break;
			case 5:
				op_buf_addstr(&b, "caf\xc3\xa9 \xe2\x82\xac\n");
				break;
			default:
				op_buf_addf(&b, "plain line %d of some length ........\n", k);
				break;
			}
			if (k == 1000 || k == 3000)
				for (int i = 0; i < (k == 1000 ? 100 * 1024 : OP_MAX_LINE * 3 / 2);
				     i++)
					op_buf_addch(&b, 'L');
		}
		op_buf_addstr(&b, "the last line, no newline");
		if (!f || fwrite(b.buf, 1, b.len, f) != b.len || fclose(f))
			return finish(1);
		for (size_t off = 0, n; off < b.len; off += n) {
			n = 1 + (size_t)rand() % 100000;
			if (n > b.len - off)
				n = b.len - off;
			op_write_all(2, b.buf + off, n);
			if (rand() % 4 == 0)
				usleep(1000);
		}
		op_buf_release(&b);
		emit_result(1, NULL);
	} else if (!strcmp(mode, "describe") || !strcmp(mode, "invalid")) {
		json_object *o = msg("result"), *d = json_object_new_object();
		int desc = !strcmp(mode, "describe");
		json_object_object_add(o, "status",
				       json_object_new_string(desc ? "success" : "failure"));
		if (desc) {
			json_object_object_add(d, "type", json_object_new_string("misbehave"));
			json_object_object_add(d, "version", json_object_new_string("0.1.0"));
			json_object_object_add(o, "describe", d);
		} else {
			json_object *errs = json_object_new_array();
			json_object_object_add(d, "path", json_object_new_string("command"));
			json_object_object_add(d, "message", json_object_new_string("is required"));
			json_object_array_add(errs, d);
			json_object_object_add(o, "errors", errs);
		}
		emit(o);
	} else if (!strcmp(mode, "fetch")) {
		json_object *o = msg("request"), *m;
		const char *op = json_object_object_get_ex(config, "op", &v)
					 ? json_object_get_string(v)
					 : "fetch";
		/* it follows cancellation through the messages (§9) */
		signal(SIGTERM, SIG_IGN);
		if (json_object_object_get_ex(config, "after_cancel", &v) &&
		    json_object_get_boolean(v))
			json_object_put(read_msg());
		json_object_object_add(o, "id", json_object_new_int(7));
		json_object_object_add(o, "op", json_object_new_string(op));
		if (json_object_object_get_ex(config, "source", &v))
			json_object_object_add(o, "source", json_object_get(v));
		emit(o);
		while ((m = read_msg())) {
			if (json_object_object_get_ex(m, "type", &v) &&
			    !strcmp(json_object_get_string(v), "response"))
				break;
			json_object_put(m);
		}
		if (!m) {
			fprintf(stderr, "misbehave: no response\n");
			return finish(1);
		}
		emit_output("response", m, 0);
		if (json_object_object_get_ex(config, "check", &v)) {
			char buf[4096];
			FILE *f = fopen(json_object_get_string(v), "r");
			size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
			buf[n] = 0;
			if (f) {
				fclose(f);
				emit_output("content", json_object_new_string(buf), 0);
			}
		}
		emit_result(1, NULL);
	} else if (!strcmp(mode, "cwd")) {
		char buf[4096];
		emit_output("cwd", json_object_new_string(getcwd(buf, sizeof(buf)) ? buf : "?"), 0);
		emit_result(1, NULL);
	} else {
		fprintf(stderr, "misbehave: unknown mode %s\n", mode);
		return finish(2);
	}
	return finish(0);
}
