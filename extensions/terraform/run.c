/*
 * run: the tool runner (see run.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "orchd_protocol.h"

#include "models.h"
#include "run.h"

#define TF_LOG_LINE_MAX 65536
#define TF_CAPTURE_MAX	(64 * 1024 * 1024)
#define TF_TAIL_MAX	65536
#define TF_SUMMARY_MAX	700

static volatile sig_atomic_t got_signal;
static bool cancelled_once;

static void on_signal(int sig)
{
	got_signal = sig;
}

void tf_run_setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGCHLD, SIG_DFL);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &sa.sa_mask, NULL);
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copy s replacing invalid UTF-8 (and NUL bytes) with U+FFFD. */
static char *utf8_clean(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = tf_must(malloc(len * 3 + 1)), *o = out;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t n = c < 0x80	    ? 1
			   : (c >> 5) == 6  ? 2
			   : (c >> 4) == 14 ? 3
			   : (c >> 3) == 30 ? 4
					    : 0;
		bool ok = n > 0 && c != 0 && i + n <= len && !(c == 0xc0 || c == 0xc1 || c > 0xf4);

		for (size_t k = 1; ok && k < n; k++)
			ok = (p[i + k] & 0xc0) == 0x80;
		if (ok && n == 3 && c == 0xe0 && p[i + 1] < 0xa0)
			ok = false;
		if (ok && n == 3 && c == 0xed && p[i + 1] >= 0xa0)
			ok = false;
		if (ok && n == 4 &&
		    ((c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] >= 0x90)))
			ok = false;
		if (!ok) {
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
	return out;
}

/* Append a line to a bounded tail buffer. */
static void tail_add(struct strbuf *sb, const char *line, size_t len)
{
	if (sb->len + len + 1 > TF_TAIL_MAX) {
		const char *nl;
		size_t drop = sb->len / 2;

		nl = memchr(sb->buf + drop, '\n', sb->len - drop);
		sb_consume(sb, nl ? (size_t)(nl - sb->buf) + 1 : sb->len);
	}
	if (len + 1 > TF_TAIL_MAX)
		len = TF_TAIL_MAX - 1;
	if (sb_add(sb, line, len) < 0 || sb_addch(sb, '\n') < 0)
		sb_init(sb, 0);
}

struct stream {
	int fd;
	struct op_splitter *sp;
	const char *level;
	struct strbuf *capture; /* raw bytes here instead of lines */
	struct strbuf *tail;	/* lines also kept here */
};

static void deliver(struct op_ext *ext, struct stream *s)
{
	const char *line;
	size_t len;

	while (op_splitter_next(s->sp, &line, &len) == OP_LINE_OK) {
		char *clean = utf8_clean(line, len);

		/* tofu's error diagnostics start with "Error: " on stderr */
		if (*clean)
			op_ext_log(ext,
				   !s->capture && !strcmp(s->level, "warning") &&
						   !strncmp(clean, "Error: ", 7)
					   ? "error"
					   : s->level,
				   "%s", clean);
		tail_add(s->tail, clean, strlen(clean));
		free(clean);
	}
}

/*
 * Read what is available (non-blocking fd).  final: drain what is there
 * now and close even if a writer lives on.  Returns false once closed.
 */
static bool pump(struct op_ext *ext, struct stream *s, bool final)
{
	char buf[65536];
	ssize_t n;
	bool done = false;

	for (;;) {
		n = read(s->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			if (s->capture) {
				if (s->capture->len + (size_t)n <= TF_CAPTURE_MAX)
					sb_add(s->capture, buf, (size_t)n);
			} else {
				op_splitter_feed(s->sp, buf, (size_t)n);
			}
		}
		if (n == 0 || (n < 0 && errno != EAGAIN) || (n < 0 && final))
			done = true;
		if (done || !final || n < 0)
			break;
	}
	if (done)
		op_splitter_finish(s->sp);
	deliver(ext, s);
	if (done) {
		close(s->fd);
		s->fd = -1;
	}
	return !done;
}

struct child_failure {
	int stage; /* 1 chdir, 2 exec */
	int err;
};

static void child(const struct tf_run_opts *o, int out_w, int err_w, int fail_w)
{
	struct child_failure f = {0, 0};
	int devnull = open("/dev/null", O_RDONLY);

	setpgid(0, 0);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if (devnull >= 0) {
		dup2(devnull, 0);
		close(devnull);
	}
	dup2(out_w, 1);
	dup2(err_w, 2);
	for (size_t i = 0; o->env && o->env[i]; i++)
		putenv(o->env[i]);
	if (o->cwd && chdir(o->cwd) < 0) {
		f.stage = 1;
		f.err = errno;
	} else {
		execvp(o->argv[0], o->argv);
		f.stage = 2;
		f.err = errno;
	}
	if (write(fail_w, &f, sizeof(f)) < 0)
		_exit(126);
	_exit(127);
}

int tf_run_tool(struct op_ext *ext, const struct tf_run_opts *o, struct tf_run *r)
{
	int out_p[2], err_p[2], fail_p[2];
	struct stream st[2];
	struct child_failure f;
	long long killed_at = 0;
	bool reaped = false;
	pid_t pid;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	sb_init(&r->out, 0);
	sb_init(&r->err, 0);
	sb_init(&r->outtail, 0);
	/* a cancel sent together with the action is already buffered */
	if (!cancelled_once && op_ext_check_cancel(ext, NULL))
		cancelled_once = true;
	if (cancelled_once || got_signal) {
		r->cancelled = true;
		snprintf(r->why, sizeof(r->why), "cancelled");
		return -1;
	}
	if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 ||
	    pipe2(fail_p, O_CLOEXEC) < 0) {
		snprintf(r->why, sizeof(r->why), "cannot create pipes: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(r->why, sizeof(r->why), "cannot fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		child(o, out_p[1], err_p[1], fail_p[1]);
	setpgid(pid, pid);
	fcntl(out_p[0], F_SETFL, O_NONBLOCK);
	fcntl(err_p[0], F_SETFL, O_NONBLOCK);
	close(out_p[1]);
	close(err_p[1]);
	close(fail_p[1]);
	do
		n = read(fail_p[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(fail_p[0]);
	if (n == (ssize_t)sizeof(f)) {
		if (f.stage == 1)
			snprintf(r->why, sizeof(r->why), "cannot change to directory '%s': %s",
				 o->cwd, strerror(f.err));
		else
			snprintf(r->why, sizeof(r->why), "cannot run '%s': %s", o->argv[0],
				 strerror(f.err));
	}

	st[0] = (struct stream){out_p[0], tf_must(op_splitter_new(TF_LOG_LINE_MAX, OP_SPLIT_CHUNK)),
				"info", o->capture ? &r->out : NULL, &r->outtail};
	st[1] = (struct stream){err_p[0], tf_must(op_splitter_new(TF_LOG_LINE_MAX, OP_SPLIT_CHUNK)),
				o->quiet_stderr ? "debug" : "warning", NULL, &r->err};
	for (;;) {
		struct pollfd pfd[3];
		int nfds, ready, status;

		if (st[0].fd < 0 && st[1].fd < 0 && reaped)
			break;
		for (int i = 0; i < 2; i++)
			pfd[i] = (struct pollfd){st[i].fd, POLLIN, 0};
		nfds = 2;
		if (!r->cancelled)
			pfd[nfds++] = (struct pollfd){op_ext_in_fd(ext), POLLIN, 0};
		ready = poll(pfd, (nfds_t)nfds, 200);
		if (!r->cancelled && (got_signal || (nfds == 3 && pfd[2].revents &&
						     op_ext_check_cancel(ext, NULL)))) {
			r->cancelled = cancelled_once = true;
			killed_at = mono_ms();
			kill(-pid, SIGTERM);
			op_ext_log(ext, "warning", "cancelled: sent SIGTERM to %s", o->argv[0]);
		}
		if (r->cancelled && !reaped && killed_at &&
		    mono_ms() - killed_at > TF_KILL_GRACE_MS) {
			kill(-pid, SIGKILL);
			op_ext_log(ext, "warning", "%s still running: sent SIGKILL", o->argv[0]);
			killed_at = 0;
		}
		for (int i = 0; i < 2; i++)
			if (st[i].fd >= 0 && ready > 0 && pfd[i].revents)
				pump(ext, &st[i], false);
		if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
			reaped = true;
			r->status = status;
			r->ran = r->why[0] == '\0';
			if (r->cancelled)
				kill(-pid, SIGTERM);
		}
		/* the tool exited but something it started keeps the pipes open */
		if (reaped && ready == 0)
			for (int i = 0; i < 2; i++)
				if (st[i].fd >= 0)
					pump(ext, &st[i], true);
	}
	op_splitter_free(st[0].sp);
	op_splitter_free(st[1].sp);
	return r->why[0] ? -1 : 0;
}

void tf_run_release(struct tf_run *r)
{
	sb_release(&r->out);
	sb_release(&r->err);
	sb_release(&r->outtail);
}

bool tf_run_exited(const struct tf_run *r, int code)
{
	return r->ran && WIFEXITED(r->status) && WEXITSTATUS(r->status) == code;
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/*
 * Condense tofu's human diagnostics ("Error: summary", context lines
 * indented by two spaces, "  on main.tf line 40, in ...", then the detail
 * paragraph) into "summary at main.tf:40: detail; ...".  Returns the
 * number of errors found.
 */
static int condense_errors(const char *text, struct strbuf *out)
{
	char *copy = tf_must(strdup(text)), *save = NULL, *line;
	bool in_error = false, want_detail = false;
	int count = 0;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (starts(line, "Error: ")) {
			if (count++)
				sb_addstr(out, "; ");
			sb_addstr(out, line + 7);
			in_error = want_detail = true;
			continue;
		}
		if (starts(line, "Warning: ") || starts(line, "╷") || starts(line, "╵")) {
			in_error = false;
			continue;
		}
		if (!in_error || !*line)
			continue;
		if (starts(line, "  on ")) {
			const char *file = line + 5, *ln = strstr(file, " line ");

			if (ln) {
				sb_addstr(out, " at ");
				sb_add(out, file, (size_t)(ln - file));
				sb_addf(out, ":%d", atoi(ln + 6));
			}
			continue;
		}
		if (line[0] == ' ')
			continue;
		sb_addstr(out, want_detail ? ": " : " ");
		want_detail = false;
		sb_addstr(out, line);
	}
	free(copy);
	return count;
}

/* The last n non-empty lines of text, joined with " | ". */
static void last_lines(const char *text, int n, struct strbuf *out)
{
	const char *end = text + strlen(text), *p = end;
	int found = 0;

	while (p > text && found < n) {
		const char *e = p;

		while (e > text && e[-1] == '\n')
			e--;
		p = e;
		while (p > text && p[-1] != '\n')
			p--;
		if (e > p)
			found++;
		if (p == text)
			break;
	}
	for (const char *q = p; q < end;) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		size_t l = nl ? (size_t)(nl - q) : (size_t)(end - q);

		if (l) {
			if (out->len)
				sb_addstr(out, " | ");
			sb_add(out, q, l);
		}
		q += l + 1;
	}
}

char *tf_run_failure(const struct tf_run *r, const char *what)
{
	struct strbuf sb = STRBUF_INIT, why = STRBUF_INIT;
	char *s;

	if (r->cancelled) {
		sb_addf(&sb, "%s: cancelled", what);
	} else if (r->why[0]) {
		sb_addf(&sb, "%s: %s", what, r->why);
	} else {
		if (!condense_errors(sb_str(&r->err), &why))
			last_lines(sb_str(&r->err), 3, &why);
		if (!why.len)
			last_lines(sb_str(&r->outtail), 3, &why);
		if (WIFEXITED(r->status))
			sb_addf(&sb, "%s failed (exit status %d)", what, WEXITSTATUS(r->status));
		else
			sb_addf(&sb, "%s killed by signal %d", what, WTERMSIG(r->status));
		if (why.len)
			sb_addf(&sb, ": %s", sb_str(&why));
	}
	sb_release(&why);
	if (sb.len > TF_SUMMARY_MAX) {
		sb_setlen(&sb, TF_SUMMARY_MAX - 3);
		/* do not cut a UTF-8 sequence */
		while (sb.len && (sb.buf[sb.len - 1] & 0xc0) == 0x80)
			sb_setlen(&sb, sb.len - 1);
		if (sb.len && (sb.buf[sb.len - 1] & 0x80))
			sb_setlen(&sb, sb.len - 1);
		sb_addstr(&sb, "...");
	}
	s = tf_must(sb_detach(&sb, NULL));
	return s;
}
