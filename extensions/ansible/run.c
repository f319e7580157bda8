/*
 * run: the child runner (see run.h).
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

#define ANS_LINE_MAX 65536
#define ANS_TAIL_MAX 65536

static volatile sig_atomic_t got_signal;
static bool cancel_seen;

static void on_signal(int sig)
{
	got_signal = sig;
}

void ans_run_setup_signals(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *ans_utf8_clean(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = ans_must(malloc(len * 3 + 1)), *o = out;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t n = c < 0x80	    ? 1
			   : (c >> 5) == 6  ? 2
			   : (c >> 4) == 14 ? 3
			   : (c >> 3) == 30 ? 4
					    : 0;
		bool ok = n > 0 && c != 0 && i + n <= len && c != 0xc0 && c != 0xc1 && c <= 0xf4;

		for (size_t k = 1; ok && k < n; k++)
			ok = (p[i + k] & 0xc0) == 0x80;
		if (ok && n == 3 && ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] >= 0xa0)))
			ok = false;
		if (ok && n == 4 && ((c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] >= 0x90)))
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

/* Keep about the last ANS_TAIL_MAX bytes of lines in sb. */
static void tail_add(struct strbuf *sb, const char *line)
{
	size_t len = strlen(line);

	if (len >= ANS_TAIL_MAX)
		len = ANS_TAIL_MAX - 1;
	if (sb->len + len + 1 > ANS_TAIL_MAX) {
		const char *nl = memchr(sb->buf + sb->len / 2, '\n', sb->len - sb->len / 2);

		sb_consume(sb, nl ? (size_t)(nl - sb->buf) + 1 : sb->len);
	}
	if (sb_add(sb, line, len) < 0 || sb_addch(sb, '\n') < 0)
		sb_init(sb, 0);
}

struct pipe_in {
	int fd;
	bool is_err;
	struct op_splitter *sp;
	const char *level; /* stderr: level of the current message */
};

static const char *stderr_level(struct pipe_in *p, const char *line, bool quiet)
{
	if (quiet)
		return "debug";
	if (!strncmp(line, "[ERROR]", 7))
		p->level = "error";
	else if (!strncmp(line, "[WARNING]", 9) || !strncmp(line, "[DEPRECATION WARNING]", 21))
		p->level = "warning";
	/* other lines continue the message above them (Origin:, code excerpt) */
	return p->level;
}

static void deliver(struct op_ext *ext, const struct ans_run_opts *o, struct pipe_in *p,
		    struct ans_run *r)
{
	const char *line;
	size_t len;

	while (op_splitter_next(p->sp, &line, &len) == OP_LINE_OK) {
		char *clean = ans_utf8_clean(line, len);

		if (p->is_err) {
			if (*clean)
				op_ext_log(ext, stderr_level(p, clean, o->quiet), "%s", clean);
			tail_add(&r->err, clean);
		} else {
			if (o->on_line)
				o->on_line(o->data, clean);
			else if (*clean)
				op_ext_log(ext, "info", "%s", clean);
			tail_add(&r->out, clean);
		}
		free(clean);
	}
}

/*
 * Read what the pipe has now.  drain: the child is gone; read until the
 * pipe is empty and close it even if a grandchild still holds it open.
 */
static void pump(struct op_ext *ext, const struct ans_run_opts *o, struct pipe_in *p,
		 struct ans_run *r, bool drain)
{
	char buf[65536];
	bool eof = false;

	for (;;) {
		ssize_t n = read(p->fd, buf, sizeof(buf));

		if (n > 0) {
			op_splitter_feed(p->sp, buf, (size_t)n);
			deliver(ext, o, p, r);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || errno != EAGAIN || drain)
			eof = true;
		break;
	}
	if (eof) {
		op_splitter_finish(p->sp);
		deliver(ext, o, p, r);
		close(p->fd);
		p->fd = -1;
	}
}

struct start_failure {
	int stage; /* 1 chdir, 2 exec */
	int err;
};

/* In the child: only async-signal-safe calls (putenv on prepared strings). */
static void child(const struct ans_run_opts *o, int out_w, int err_w, int fail_w)
{
	struct start_failure f = {0, 0};
	int devnull = open("/dev/null", O_RDONLY);
	sigset_t none;

	setpgid(0, 0);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
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

static bool check_cancel(struct op_ext *ext)
{
	if (!cancel_seen && (got_signal || op_ext_check_cancel(ext, NULL)))
		cancel_seen = true;
	return cancel_seen;
}

int ans_run_child(struct op_ext *ext, const struct ans_run_opts *o, struct ans_run *r)
{
	int out_p[2], err_p[2], fail_p[2];
	struct pipe_in in[2];
	struct start_failure f;
	long long term_at = 0;
	bool reaped = false;
	pid_t pid;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	sb_init(&r->err, 0);
	sb_init(&r->out, 0);
	/* a cancel sent together with the action is already buffered */
	if (check_cancel(ext)) {
		r->cancelled = true;
		snprintf(r->why, sizeof(r->why), "cancelled");
		return -1;
	}
	if (pipe2(out_p, O_CLOEXEC) < 0) {
		snprintf(r->why, sizeof(r->why), "cannot create a pipe: %s", strerror(errno));
		return -1;
	}
	if (pipe2(err_p, O_CLOEXEC) < 0) {
		snprintf(r->why, sizeof(r->why), "cannot create a pipe: %s", strerror(errno));
		close(out_p[0]);
		close(out_p[1]);
		return -1;
	}
	if (pipe2(fail_p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		snprintf(r->why, sizeof(r->why), "cannot start a process: %s", strerror(errno));
		for (int i = 0; i < 2; i++) {
			close(out_p[i]);
			close(err_p[i]);
		}
		return -1;
	}
	if (pid == 0)
		child(o, out_p[1], err_p[1], fail_p[1]);
	setpgid(pid, pid);
	close(out_p[1]);
	close(err_p[1]);
	close(fail_p[1]);
	/* EOF: exec worked (the pipe is close-on-exec) */
	do
		n = read(fail_p[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(fail_p[0]);
	if (n == (ssize_t)sizeof(f))
		snprintf(r->why, sizeof(r->why), f.stage == 1 ? "cannot change to '%s': %s"
							      : "cannot run '%s': %s",
			 f.stage == 1 ? o->cwd : o->argv[0], strerror(f.err));
	fcntl(out_p[0], F_SETFL, O_NONBLOCK);
	fcntl(err_p[0], F_SETFL, O_NONBLOCK);
	in[0] = (struct pipe_in){out_p[0], false,
				 ans_must(op_splitter_new(ANS_LINE_MAX, OP_SPLIT_CHUNK)), "info"};
	in[1] = (struct pipe_in){err_p[0], true,
				 ans_must(op_splitter_new(ANS_LINE_MAX, OP_SPLIT_CHUNK)),
				 "warning"};
	while (!reaped || in[0].fd >= 0 || in[1].fd >= 0) {
		struct pollfd pfd[3];
		int ready, status;

		pfd[0] = (struct pollfd){in[0].fd, POLLIN, 0};
		pfd[1] = (struct pollfd){in[1].fd, POLLIN, 0};
		pfd[2] = (struct pollfd){r->cancelled ? -1 : op_ext_in_fd(ext), POLLIN, 0};
		ready = poll(pfd, 3, 100);
		if (!r->cancelled && (got_signal || (pfd[2].revents && check_cancel(ext)))) {
			r->cancelled = cancel_seen = true;
			term_at = mono_ms();
			kill(-pid, SIGTERM);
			op_ext_log(ext, "warning", "cancelled: sent SIGTERM to %s", o->argv[0]);
		}
		if (term_at && !reaped && mono_ms() - term_at > ANS_KILL_GRACE_MS) {
			kill(-pid, SIGKILL);
			op_ext_log(ext, "warning", "%s still running: sent SIGKILL", o->argv[0]);
			term_at = 0;
		}
		for (int i = 0; i < 2; i++)
			if (in[i].fd >= 0 && ready > 0 && pfd[i].revents)
				pump(ext, o, &in[i], r, false);
		if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
			reaped = true;
			r->status = status;
			r->ran = r->why[0] == '\0';
			/* leftover workers of a cancelled run go too */
			if (r->cancelled)
				kill(-pid, SIGKILL);
		}
		if (reaped && ready == 0)
			for (int i = 0; i < 2; i++)
				if (in[i].fd >= 0)
					pump(ext, o, &in[i], r, true);
	}
	op_splitter_free(in[0].sp);
	op_splitter_free(in[1].sp);
	return r->why[0] ? -1 : 0;
}

void ans_run_release(struct ans_run *r)
{
	sb_release(&r->err);
	sb_release(&r->out);
}

bool ans_run_exited(const struct ans_run *r, int code)
{
	return r->ran && WIFEXITED(r->status) && WEXITSTATUS(r->status) == code;
}

const char *ans_run_status_text(const struct ans_run *r)
{
	static char buf[64];

	if (WIFEXITED(r->status))
		snprintf(buf, sizeof(buf), "exit status %d", WEXITSTATUS(r->status));
	else if (WIFSIGNALED(r->status))
		snprintf(buf, sizeof(buf), "killed by signal %d", WTERMSIG(r->status));
	else
		snprintf(buf, sizeof(buf), "wait status %d", r->status);
	return buf;
}
