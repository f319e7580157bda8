/*
 * run: the tool runner of C extensions (op_cmd_*, see orchd_protocol.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "orchd_protocol.h"

/* With the program reaped, pipes silent this long are closed. */
#define RUN_IDLE_MS 200
#define RUN_READ    65536

static volatile sig_atomic_t caught_signal;

static void on_term(int sig)
{
	caught_signal = sig;
}

/* Only there to interrupt poll() when the program exits. */
static void on_chld(int sig)
{
	(void)sig;
}

void op_cmd_catch_signals(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int op_cmd_signal_caught(void)
{
	return caught_signal;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Length of the valid UTF-8 sequence (not NUL) at p[0..len), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t len)
{
	unsigned char c = p[0];
	size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;

	if (!n || c == 0 || n > len || c == 0xc0 || c == 0xc1 || c > 0xf4)
		return 0;
	for (size_t k = 1; k < n; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	if ((n == 3 && c == 0xe0 && p[1] < 0xa0) ||  /* overlong */
	    (n == 3 && c == 0xed && p[1] >= 0xa0) || /* surrogate */
	    (n == 4 && c == 0xf0 && p[1] < 0x90) ||  /* overlong */
	    (n == 4 && c == 0xf4 && p[1] >= 0x90))   /* > U+10FFFF */
		return 0;
	return n;
}

/* Length of the run of ASCII bytes other than NUL at p[0..len): eight
 * bytes at a time (no high bit, no zero byte), the tail one by one. */
static size_t ascii_run(const unsigned char *p, size_t len)
{
	const uint64_t high = 0x8080808080808080ull, ones = 0x0101010101010101ull;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		if ((w & high) || ((w - ones) & ~w & high))
			break;
	}
	while (i < len && p[i] && p[i] < 0x80)
		i++;
	return i;
}

bool op_utf8_valid(const void *s, size_t len)
{
	const unsigned char *p = s;
	size_t i = 0, n;

	while ((i += ascii_run(p + i, len - i)) < len) {
		if (!(n = utf8_seq(p + i, len - i)))
			return false;
		i += n;
	}
	return true;
}

int op_utf8_clean_into(struct op_buf *sb, const void *s, size_t len)
{
	const unsigned char *p = s;
	size_t i = 0, run, n;

	while (i < len) {
		run = i + ascii_run(p + i, len - i);
		while (run < len && (n = utf8_seq(p + run, len - run)) != 0)
			run += n + ascii_run(p + run + n, len - run - n);
		if (op_buf_add(sb, p + i, run - i))
			return -1;
		if (run == len)
			break;
		if (op_buf_add(sb, "\xef\xbf\xbd", 3)) /* NUL or invalid */
			return -1;
		i = run + 1;
	}
	return 0;
}

/*
 * Append text[0..len) as the body of a JSON string, escaped as json-c does
 * with JSON_C_TO_STRING_NOSLASHESCAPE, invalid UTF-8 and NUL as U+FFFD.
 */
static int add_json_text(struct op_buf *sb, const char *text, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	static const char special[] = "\"\\\b\f\n\r\t";
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0, run = 0;

	if (op_buf_grow(sb, len + 16))
		return -1;
	while (i < len) {
		unsigned char c = p[i];
		const char *e;
		char esc[8];
		size_t n;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		if (c >= 0x80 && (n = utf8_seq(p + i, len - i))) {
			i += n;
			continue;
		}
		if (op_buf_add(sb, p + run, i - run))
			return -1;
		if (c && (e = strchr(special, c))) {
			esc[0] = '\\';
			esc[1] = "\"\\bfnrt"[e - special];
			n = 2;
		} else if (c && c < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			n = 6;
		} else { /* NUL or invalid UTF-8 */
			memcpy(esc, "\xef\xbf\xbd", 3);
			n = 3;
		}
		if (op_buf_add(sb, esc, n))
			return -1;
		run = ++i;
	}
	return op_buf_add(sb, p + run, len - run);
}

int op_encode_log_into(struct op_buf *sb, const char *level, const char *text, size_t len)
{
	size_t start = sb->len;

	if (!level || (!text && len)) {
		errno = EINVAL;
		return -1;
	}
	if (op_buf_addstr(sb, "{\"type\":\"log\",\"level\":\"") ||
	    add_json_text(sb, level, strlen(level)) || op_buf_addstr(sb, "\",\"message\":\"") ||
	    add_json_text(sb, text, len) || op_buf_addstr(sb, "\"}"))
		return -1;
	if (sb->len - start > OP_MAX_LINE) {
		op_buf_setlen(sb, start);
		errno = E2BIG;
		return -1;
	}
	return op_buf_addch(sb, '\n');
}

/* Copy s replacing invalid UTF-8 (and NUL bytes) with U+FFFD; NULL: ENOMEM. */
static char *utf8_clean(const char *s, size_t len, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc(len * 3 + 1), *o = out;
	size_t i = 0;

	if (!out)
		return NULL;
	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);

		if (!n) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(o, p + i, n);
		o += n;
		i += n;
	}
	*o = '\0';
	*outlen = (size_t)(o - out);
	return out;
}

/* --- captures ---------------------------------------------------------------- */

static void buf_wipe(struct op_cmd_buf *b, size_t alloc)
{
	if (b->buf) {
		explicit_bzero(b->buf, alloc);
		free(b->buf);
	}
	b->buf = NULL;
	b->len = 0;
}

struct stream {
	int fd; /* -1 once closed */
	int no; /* 1 stdout, 2 stderr */
	const struct op_cmd_stream *opts;
	struct op_splitter *sp; /* NULL: lines not wanted */
	struct op_cmd_buf *cap; /* NULL: not captured */
	size_t cap_max, cap_alloc;
};

/* Append to the capture; growth never leaves a copy behind unwiped. */
static void capture(struct stream *s, const char *data, size_t n)
{
	struct op_cmd_buf *b = s->cap;

	if (b->len + n > s->cap_max) {
		n = s->cap_max - b->len;
		b->truncated = true;
	}
	if (!n)
		return;
	if (b->len + n + 1 > s->cap_alloc) {
		size_t alloc = s->cap_alloc ? s->cap_alloc : 4096;
		char *nb;

		while (alloc < b->len + n + 1)
			alloc *= 2;
		nb = malloc(alloc);
		if (!nb) {
			b->truncated = true;
			return;
		}
		if (b->buf) {
			memcpy(nb, b->buf, b->len);
			explicit_bzero(b->buf, s->cap_alloc);
			free(b->buf);
		}
		b->buf = nb;
		s->cap_alloc = alloc;
	}
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void deliver(struct op_ext *ext, const struct op_cmd_opts *o, struct stream *s)
{
	const char *line;
	size_t len;

	while (op_splitter_next(s->sp, &line, &len) == OP_LINE_OK) {
		const char *level = s->opts->mode & OP_CMD_LOG ? s->opts->level : NULL;
		size_t clen;
		char *clean;

		if (!o->line_fn) {
			/* the encoder replaces invalid UTF-8 itself */
			if (level && ext)
				op_ext_log_line(ext, level, line, len);
			continue;
		}
		clean = utf8_clean(line, len, &clen);
		if (!clean)
			continue;
		o->line_fn(o->line_arg, s->no, clean, clen, &level);
		if (level && ext)
			op_ext_log_line(ext, level, clean, clen);
		explicit_bzero(clean, clen);
		free(clean);
	}
	/* never hold a line past the end of a drain */
	if (ext)
		op_ext_flush(ext);
}

/*
 * Read what is available (the fd is non-blocking).  final: drain what is
 * there now and close even if a writer lives on.
 */
static void pump(struct op_ext *ext, const struct op_cmd_opts *o, struct stream *s, bool final)
{
	char buf[RUN_READ];
	ssize_t n;
	bool done = false;

	for (;;) {
		n = read(s->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			if (s->cap)
				capture(s, buf, (size_t)n);
			if (s->sp)
				op_splitter_feed(s->sp, buf, (size_t)n);
			explicit_bzero(buf, (size_t)n);
		}
		if (n == 0 || (n < 0 && errno != EAGAIN) || (n < 0 && final))
			done = true;
		if (done || !final || n < 0)
			break;
	}
	if (done && s->sp)
		op_splitter_finish(s->sp);
	if (s->sp)
		deliver(ext, o, s);
	if (done) {
		close(s->fd);
		s->fd = -1;
	}
}

/* environ with additions (each "NAME=VALUE" replaces NAME); pointers borrowed. */
static char **build_envp(char *const *add)
{
	size_t n = 0, na = 0;
	char **envp;

	while (environ && environ[n])
		n++;
	while (add && add[na])
		na++;
	envp = calloc(n + na + 1, sizeof(*envp));
	if (!envp)
		return NULL;
	memcpy(envp, environ, n * sizeof(*envp));
	for (size_t i = 0; i < na; i++) {
		const char *eq = strchr(add[i], '=');
		size_t klen = eq ? (size_t)(eq - add[i]) : strlen(add[i]);
		size_t k;

		for (k = 0; k < n; k++)
			if (!strncmp(envp[k], add[i], klen) && envp[k][klen] == '=')
				break;
		envp[k] = add[i];
		if (k == n)
			n++;
	}
	envp[n] = NULL;
	return envp;
}

/* --- the run ----------------------------------------------------------------- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Give empty captures a buffer, as promised. */
static void finish_captures(struct op_cmd_result *res)
{
	struct op_cmd_buf *b[2] = {&res->out, &res->err};

	for (int i = 0; i < 2; i++)
		if (!b[i]->buf) {
			b[i]->buf = malloc(1);
			if (b[i]->buf)
				b[i]->buf[0] = '\0';
		}
}

/* Feed the program's stdin without blocking; closes it when done or broken. */
static void feed_input(int *fd, const char *data, size_t len, size_t *off)
{
	while (*off < len) {
		ssize_t n = write(*fd, data + *off, len - *off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close_fd(fd);
			return;
		}
		*off += (size_t)n;
	}
	close_fd(fd);
}

static bool want_cancel(struct op_ext *ext)
{
	return caught_signal || (ext && op_ext_check_cancel(ext, NULL));
}

int op_cmd_run(struct op_ext *ext, const struct op_cmd_opts *o, struct op_cmd_result *res)
{
	struct op_child c = OP_CHILD_INIT;
	const char *name;
	struct stream st[2];
	char **envp;
	size_t in_off = 0, line_max;
	long long killed_at = 0;
	int grace, in_fd = -1, pass_fd = -1;
	bool reaped = false;

	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	if (!o || !o->argv || !o->argv[0] || !o->argv[0][0]) {
		snprintf(res->error, sizeof(res->error), "no program to run");
		finish_captures(res);
		errno = EINVAL;
		return -1;
	}
	name = o->name ? o->name : o->argv[0];
	grace = o->kill_grace_ms > 0 ? o->kill_grace_ms : OP_CMD_KILL_GRACE_MS;
	line_max = o->line_max ? o->line_max : OP_CMD_LINE_MAX;
	op_cmd_catch_signals();
	if (want_cancel(ext)) {
		res->cancelled = true;
		snprintf(res->error, sizeof(res->error), "cancelled");
		finish_captures(res);
		errno = ECANCELED;
		return -1;
	}

	envp = build_envp(o->env);
	if (!envp) {
		finish_captures(res);
		snprintf(res->error, sizeof(res->error), "cannot run '%s': %s", o->argv[0],
			 strerror(ENOMEM));
		errno = ENOMEM;
		return -1;
	}
	c.argv = (const char *const *)(uintptr_t)o->argv;
	c.env = (const char *const *)(void *)envp;
	c.cwd = o->cwd;
	c.in = o->input ? OP_CHILD_PIPE : OP_CHILD_NULL;
	c.out = OP_CHILD_PIPE;
	c.err = OP_CHILD_PIPE;
	c.flags = OP_CHILD_PGROUP | OP_CHILD_PATH | OP_CHILD_SHELL;
	/* a passed stream is our own stderr (the child's fd field wants a
	 * descriptor above 2) */
	if ((o->out.mode | o->err.mode) & OP_CMD_PASS) {
		pass_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
		if (pass_fd < 0) {
			int e = errno;

			snprintf(res->error, sizeof(res->error), "cannot set up '%s': stderr: %s",
				 o->argv[0], strerror(e));
			free(envp);
			finish_captures(res);
			errno = e;
			return -1;
		}
		if (o->out.mode & OP_CMD_PASS)
			c.out = pass_fd;
		if (o->err.mode & OP_CMD_PASS)
			c.err = pass_fd;
	}
	if (op_child_start(&c) < 0) {
		int e = errno;

		op_child_error(&c, res->error, sizeof(res->error));
		close_fd(&pass_fd);
		free(envp);
		finish_captures(res);
		errno = e;
		return -1;
	}
	close_fd(&pass_fd);
	free(envp);
	if (o->input)
		in_fd = c.in;

	st[0] = (struct stream){
		o->out.mode & OP_CMD_PASS ? -1 : c.out, 1, &o->out, NULL, NULL, 0, 0};
	st[1] = (struct stream){
		o->err.mode & OP_CMD_PASS ? -1 : c.err, 2, &o->err, NULL, NULL, 0, 0};
	st[0].cap = &res->out;
	st[1].cap = &res->err;
	for (int i = 0; i < 2; i++) {
		if (!(st[i].opts->mode & OP_CMD_CAPTURE) || st[i].fd < 0)
			st[i].cap = NULL;
		if (st[i].fd < 0)
			continue;
		st[i].cap_max =
			st[i].opts->capture_max ? st[i].opts->capture_max : OP_CMD_CAPTURE_MAX;
		if ((st[i].opts->mode & OP_CMD_LOG) || o->line_fn)
			st[i].sp = op_splitter_new(line_max, OP_SPLIT_CHUNK);
	}
	for (;;) {
		struct pollfd pfd[4];
		int ready, status;

		if (st[0].fd < 0 && st[1].fd < 0 && reaped)
			break;
		pfd[0] = (struct pollfd){st[0].fd, POLLIN, 0};
		pfd[1] = (struct pollfd){st[1].fd, POLLIN, 0};
		pfd[2] =
			(struct pollfd){ext && !res->cancelled ? op_ext_in_fd(ext) : -1, POLLIN, 0};
		pfd[3] = (struct pollfd){in_fd, POLLOUT, 0};
		ready = poll(pfd, 4, RUN_IDLE_MS);
		/* not only when in_fd is readable: orchd may have sent the
		 * cancel with the action, and it is already buffered */
		if (!res->cancelled && want_cancel(ext)) {
			res->cancelled = true;
			killed_at = mono_ms();
			kill(-c.pid, SIGTERM);
			if (ext)
				op_ext_log(ext, "warning", "cancelled: sent SIGTERM to %s", name);
		}
		if (res->cancelled && !reaped && killed_at && mono_ms() - killed_at > grace) {
			kill(-c.pid, SIGKILL);
			if (ext)
				op_ext_log(ext, "warning", "%s still running: sent SIGKILL", name);
			killed_at = 0;
		}
		if (in_fd >= 0 && pfd[3].revents)
			feed_input(&in_fd, o->input, o->input_len, &in_off);
		for (int i = 0; i < 2; i++)
			if (st[i].fd >= 0 && pfd[i].revents)
				pump(ext, o, &st[i], false);
		if (!reaped && op_child_reap(&c, 1, &status, NULL) == 1) {
			reaped = true;
			close_fd(&in_fd);
			res->ran = true;
			res->status = status;
			if (WIFEXITED(status))
				res->exit_code = WEXITSTATUS(status);
			else if (WIFSIGNALED(status))
				res->term_signal = WTERMSIG(status);
			/* processes forked after the first SIGTERM missed it */
			if (res->cancelled)
				kill(-c.pid, SIGTERM);
		}
		/* the program exited but something it started keeps the pipes
		 * open: take what is there and stop listening */
		if (reaped && ready == 0)
			for (int i = 0; i < 2; i++)
				if (st[i].fd >= 0)
					pump(ext, o, &st[i], true);
	}
	op_splitter_free(st[0].sp);
	op_splitter_free(st[1].sp);
	close_fd(&in_fd);
	finish_captures(res);
	return 0;
}

void op_cmd_result_release(struct op_cmd_result *res)
{
	if (!res)
		return;
	buf_wipe(&res->out, res->out.len + 1);
	buf_wipe(&res->err, res->err.len + 1);
}

bool op_cmd_exited(const struct op_cmd_result *res, int code)
{
	return res->ran && res->exit_code == code;
}

const char *op_signal_text(int sig, char *buf, size_t len)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		snprintf(buf, len, "signal %d (SIG%s)", sig, abbrev);
	else
		snprintf(buf, len, "signal %d", sig);
	return buf;
}

const char *op_cmd_status_text(const struct op_cmd_result *res, char *buf, size_t len)
{
	char sig[48];

	if (res->exit_code >= 0)
		snprintf(buf, len, "exit status %d", res->exit_code);
	else
		snprintf(buf, len, "killed by %s",
			 op_signal_text(res->term_signal, sig, sizeof(sig)));
	return buf;
}

bool op_cmd_summary(const struct op_cmd_result *res, char *buf, size_t len)
{
	char sig[48];

	if (res->error[0]) {
		snprintf(buf, len, "%s", res->error);
		return false;
	}
	if (res->cancelled) {
		snprintf(buf, len, "cancelled");
		return false;
	}
	if (res->exit_code >= 0) {
		snprintf(buf, len, "command exited with status %d", res->exit_code);
		return res->exit_code == 0;
	}
	snprintf(buf, len, "command killed by %s",
		 op_signal_text(res->term_signal, sig, sizeof(sig)));
	return false;
}

static bool starts_with_any(const char *line, const char *const *prefixes, size_t *cut)
{
	for (size_t i = 0; prefixes && prefixes[i]; i++) {
		size_t n = strlen(prefixes[i]);

		if (!strncmp(line, prefixes[i], n)) {
			*cut = n >= 2 && !strcmp(prefixes[i] + n - 2, ": ") ? n : 0;
			return true;
		}
	}
	return false;
}

char *op_cmd_failure(const struct op_cmd_result *res, const char *what, const char *const *prefixes,
		     size_t max)
{
	struct op_buf sb = OP_BUF_INIT, why = OP_BUF_INIT;
	const char *err = res->err.buf ? res->err.buf : "", *last[3] = {0};
	size_t lastlen[3] = {0};
	char status[64];
	bool matched = false;
	int nlast = 0;

	if (res->cancelled) {
		op_buf_addf(&sb, "%s: cancelled", what);
	} else if (res->error[0]) {
		op_buf_addf(&sb, "%s: %s", what, res->error);
	} else {
		for (const char *p = err, *e; *p; p = *e ? e + 1 : e) {
			size_t len, cut;

			e = strchrnul(p, '\n');
			len = (size_t)(e - p);
			if (!len)
				continue;
			if (starts_with_any(p, prefixes, &cut)) {
				if (why.len)
					op_buf_addstr(&why, "; ");
				op_buf_add(&why, p + cut, len - cut);
				matched = true;
			}
			if (nlast == 3) {
				memmove(last, last + 1, 2 * sizeof(*last));
				memmove(lastlen, lastlen + 1, 2 * sizeof(*lastlen));
				nlast = 2;
			}
			last[nlast] = p;
			lastlen[nlast++] = len;
		}
		for (int i = 0; !matched && i < nlast; i++) {
			if (i)
				op_buf_addstr(&why, " | ");
			op_buf_add(&why, last[i], lastlen[i]);
		}
		op_buf_addf(&sb, "%s failed (%s)", what,
			    op_cmd_status_text(res, status, sizeof(status)));
		if (why.len)
			op_buf_addf(&sb, ": %s", op_buf_str(&why));
	}
	op_buf_release(&why);
	if (max)
		op_buf_ellipsize(&sb, max);
	return op_buf_detach(&sb, NULL);
}
