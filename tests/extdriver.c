#include "extdriver.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchd_protocol.h"
#include "testutil.h"

static const char default_hello[] = "{\"type\":\"hello\",\"protocol\":{\"min\":1,\"max\":1},"
				    "\"orchd_version\":\"0.1.0\"}\n";

static void send_str(int fd, const char *s)
{
	ck_assert_int_eq(op_write_all(fd, s, strlen(s)), 0);
}

static void append(char **s, const char *data, size_t len)
{
	size_t old = strlen(*s);
	char *n = realloc(*s, old + len + 1);

	ck_assert_ptr_nonnull(n);
	memcpy(n + old, data, len);
	n[old + len] = '\0';
	*s = n;
}

/* In the child: set up the environment, then exec (never returns). */
static void child_exec(const struct extdrv_opts *o, const char *workdir)
{
	const char *path = getenv("PATH"), *home = getenv("HOME");
	char *p = NULL;

	if (chdir(workdir) < 0)
		_exit(126);
	if (o->clean_env) {
		char *keep_path = strdup(path ? path : "/usr/bin:/bin");
		char *keep_home = strdup(home ? home : "/");

		if (!keep_path || !keep_home || clearenv() != 0)
			_exit(126);
		setenv("PATH", keep_path, 1);
		setenv("HOME", keep_home, 1);
	}
	for (size_t i = 0; o->unset && o->unset[i]; i++)
		unsetenv(o->unset[i]);
	setenv("ORCHD_PROTOCOL", "1", 1);
	setenv("ORCHD_INSTANCE", "t", 1);
	setenv("ORCHD_WORKDIR", workdir, 1);
	if (o->pipeline_dir)
		setenv("ORCHD_PIPELINE_DIR", o->pipeline_dir, 1);
	if (o->home)
		setenv("HOME", o->home, 1);
	if (o->path_prefix) {
		if (asprintf(&p, "%s:%s", o->path_prefix, getenv("PATH")) < 0)
			_exit(126);
		setenv("PATH", p, 1);
	}
	for (size_t i = 0; o->env && o->env[i]; i++)
		putenv((char *)(uintptr_t)o->env[i]);
	execl(o->exe, o->exe, (char *)NULL);
	_exit(127);
}

struct run {
	const struct extdrv_opts *o;
	struct extdrv *d;
	struct json_object *cfg;   /* owned */
	struct json_object *state; /* owned, NULL: null */
	int in_w;
	pid_t pid;
	bool sent_action, sent_cancel, sent_next;
};

static void send_action(struct run *r)
{
	const struct extdrv_opts *o = r->o;
	enum op_action a =
		op_action_from_name(r->sent_action && o->next_action ? o->next_action : o->action);
	const char *stack = o->instance_id ? o->instance_id : "dev-t";
	char *line = op_encode_action(a, "t", stack, r->cfg, r->state, NULL, r->d->workdir);

	if (!line && errno == E2BIG) {
		/* as orchd does (PROTOCOL.md §4.1): the state, then the config,
		 * in files of the workdir */
		char *paths[OP_VALUE_NFIELDS] = {NULL, NULL, NULL}, err[OP_ERRMAX];
		const struct json_object *vals[OP_VALUE_NFIELDS] = {r->cfg, r->state, NULL};
		static const int order[] = {OP_VALUE_STATE, OP_VALUE_CONFIG};

		for (size_t i = 0; i < 2 && !line; i++) {
			int f = order[i];

			ck_assert_int_ge(asprintf(&paths[f], "%s/.orchd-%s.json", r->d->workdir,
						  op_value_field_names[f]),
					 0);
			ck_assert_msg(op_write_value_file(paths[f], vals[f], err, sizeof(err)) == 0,
				      "%s", err);
			line = op_encode_action_files(a, "t", stack, r->cfg, r->state, NULL,
						      r->d->workdir, (const char *const *)paths);
		}
		for (int i = 0; i < OP_VALUE_NFIELDS; i++)
			free(paths[i]);
	}
	ck_assert_ptr_nonnull(line);
	if (o->cancel_at_once) {
		char *both = NULL;

		ck_assert_int_ge(
			asprintf(&both, "%s{\"type\":\"cancel\",\"reason\":\"timeout\"}\n", line),
			0);
		free(line);
		line = both;
	}
	send_str(r->in_w, line);
	free(line);
	r->sent_action = true;
}

static void send_cancel(struct run *r)
{
	if (r->o->sigterm)
		kill(r->pid, SIGTERM);
	else
		send_str(r->in_w, "{\"type\":\"cancel\",\"reason\":\"interrupted\"}\n");
	r->sent_cancel = true;
}

static void handle_line(struct run *r, const char *line, size_t len)
{
	const struct extdrv_opts *o = r->o;
	struct extdrv *d = r->d;
	struct op_parsed p;
	struct json_object *m;

	op_parse_line(OP_FROM_EXT, line, len, &p);
	if (o->strict)
		ck_assert_msg(p.verdict == OP_VALID, "not a valid protocol message: %s [%s]",
			      p.error, line);
	else
		ck_assert_msg(p.verdict != OP_PROTOCOL_ERROR, "%s: protocol error: %s [%s]", o->exe,
			      p.error, line);
	if (p.verdict == OP_NON_PROTOCOL) {
		append(&d->nonproto, line, len);
		append(&d->nonproto, "\n", 1);
	}
	if (p.verdict != OP_VALID) {
		op_parsed_release(&p);
		return;
	}
	json_object_array_add(d->msgs, op_parsed_steal(&p));
	m = json_object_array_get_idx(d->msgs, json_object_array_length(d->msgs) - 1);
	if ((p.type == OP_MSG_STATE || p.type == OP_MSG_OUTPUT) && op_get_str(m, "file")) {
		/* as orchd does: the value is the file's, read now */
		struct json_object *v;
		char err[OP_ERRMAX];

		ck_assert_msg(op_read_value_file(d->workdir, op_get_str(m, "file"),
						 OP_MAX_FILE_VALUE, &v, err, sizeof(err)) == 0,
			      "%s", err);
		json_object_object_add(m, p.type == OP_MSG_STATE ? "state" : "value", v);
	}
	if (p.type == OP_MSG_HELLO && !r->sent_action) {
		d->hello = m;
		send_action(r);
	} else if (p.type == OP_MSG_LOG && o->cancel_after && !r->sent_cancel &&
		   strstr(op_get_str(m, "message"), o->cancel_after)) {
		send_cancel(r);
	} else if (p.type == OP_MSG_RESULT) {
		ck_assert_ptr_null(d->result);
		d->result = m;
		if (o->next_action && !r->sent_next) {
			/* a session (PROTOCOL.md §7.6): the second action */
			d->first_result = m;
			d->result = NULL;
			r->sent_next = true;
			send_action(r);
		} else {
			close(r->in_w);
			r->in_w = -1;
		}
	}
	op_parsed_release(&p);
}

void extdrv_run(const struct extdrv_opts *o, struct extdrv *d)
{
	struct op_splitter *sp = op_splitter_new(0, OP_SPLIT_STRICT);
	struct run r = {.o = o, .d = d};
	int in_p[2], out_p[2], err_p[2] = {-1, -1}, wst;
	bool out_open = true, err_open = o->capture_stderr, reaped = false;
	char buf[65536];

	ck_assert_ptr_nonnull(o->exe);
	memset(d, 0, sizeof(*d));
	d->msgs = json_object_new_array();
	d->nonproto = strdup("");
	d->stderr_text = strdup("");
	if (o->workdir) {
		d->workdir = strdup(o->workdir);
	} else {
		d->workdir = test_tmpdir();
		d->own_workdir = true;
	}
	if (o->config)
		r.cfg = json_object_get(o->config);
	else
		r.cfg = o->config_text ? extdrv_json(o->config_text) : json_object_new_object();
	r.state = o->state	  ? json_object_get(o->state)
		  : o->state_text ? extdrv_json(o->state_text)
				  : NULL;
	ck_assert_int_eq(pipe(in_p), 0);
	ck_assert_int_eq(pipe(out_p), 0);
	if (o->capture_stderr)
		ck_assert_int_eq(pipe(err_p), 0);
	r.pid = fork();
	ck_assert_int_ge(r.pid, 0);
	if (r.pid == 0) {
		dup2(in_p[0], 0);
		dup2(out_p[1], 1);
		if (o->capture_stderr) {
			dup2(err_p[1], 2);
			close(err_p[0]);
			close(err_p[1]);
		}
		close(in_p[0]);
		close(in_p[1]);
		close(out_p[0]);
		close(out_p[1]);
		child_exec(o, d->workdir);
	}
	close(in_p[0]);
	close(out_p[1]);
	if (o->capture_stderr)
		close(err_p[1]);
	r.in_w = in_p[1];
	signal(SIGPIPE, SIG_IGN);
	send_str(r.in_w, o->hello ? o->hello : default_hello);
	while (out_open || err_open) {
		struct pollfd pfd[2] = {{out_open ? out_p[0] : -1, POLLIN, 0},
					{err_open ? err_p[0] : -1, POLLIN, 0}};
		const char *line;
		size_t len;
		enum op_line_status ls;
		ssize_t n;

		int ready = poll(pfd, 2, out_open ? -1 : 300);

		if (ready < 0) {
			ck_assert_int_eq(errno, EINTR);
			continue;
		}
		/* stdout is done and the extension exited, but a process its
		 * tool left behind holds stderr (a tool's stdout may be the
		 * extension's stderr): as orchd's reaper would, stop there */
		if (ready == 0 && waitpid(r.pid, &wst, WNOHANG) == r.pid) {
			reaped = true;
			break;
		}
		if (err_open && pfd[1].revents) {
			n = read(err_p[0], buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				err_open = false;
			else
				append(&d->stderr_text, buf, (size_t)n);
			/* a tool's output may come on stderr (OP_CMD_PASS) */
			if (n > 0 && o->cancel_after && !r.sent_cancel &&
			    strstr(d->stderr_text, o->cancel_after))
				send_cancel(&r);
		}
		if (!out_open || !pfd[0].revents)
			continue;
		n = read(out_p[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_int_ge(n, 0);
		if (n == 0) {
			out_open = false;
			op_splitter_finish(sp);
		} else {
			op_splitter_feed(sp, buf, (size_t)n);
		}
		while ((ls = op_splitter_next(sp, &line, &len)) != OP_LINE_NONE) {
			ck_assert_int_eq(ls, OP_LINE_OK);
			handle_line(&r, line, len);
		}
	}
	if (r.in_w >= 0)
		close(r.in_w);
	close(out_p[0]);
	if (o->capture_stderr)
		close(err_p[0]);
	if (!reaped)
		ck_assert_int_eq(waitpid(r.pid, &wst, 0), r.pid);
	d->status = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst);
	op_splitter_free(sp);
	json_object_put(r.cfg);
	json_object_put(r.state);
	if (o->expect_result) {
		ck_assert_msg(d->result, "no result (exit %d)", d->status);
		ck_assert_int_eq(d->status, 0);
	}
}

void extdrv_release(struct extdrv *d)
{
	json_object_put(d->msgs);
	free(d->nonproto);
	free(d->stderr_text);
	if (d->own_workdir)
		test_rmtree(d->workdir);
	free(d->workdir);
	memset(d, 0, sizeof(*d));
}

static bool matches(struct json_object *m, const char *type, const char *key, const char *value)
{
	if (strcmp(op_get_str(m, "type"), type))
		return false;
	return !key || (op_get_str(m, key) && !strcmp(op_get_str(m, key), value));
}

struct json_object *extdrv_find_last(const struct extdrv *d, const char *type, const char *key,
				     const char *value)
{
	for (size_t i = json_object_array_length(d->msgs); i > 0; i--) {
		struct json_object *m = json_object_array_get_idx(d->msgs, i - 1);

		if (matches(m, type, key, value))
			return m;
	}
	return NULL;
}

struct json_object *extdrv_find_first(const struct extdrv *d, const char *type, const char *key,
				      const char *value)
{
	for (size_t i = 0; i < json_object_array_length(d->msgs); i++) {
		struct json_object *m = json_object_array_get_idx(d->msgs, i);

		if (matches(m, type, key, value))
			return m;
	}
	return NULL;
}

const char *extdrv_summary(const struct extdrv *d)
{
	const char *s = op_get_str(d->result, "summary");

	return s ? s : "";
}

bool extdrv_succeeded(const struct extdrv *d)
{
	const char *s = op_get_str(d->result, "status");

	return s && !strcmp(s, "success");
}

struct json_object *extdrv_json(const char *text)
{
	struct json_object *o = json_tokener_parse(text);

	ck_assert_msg(o != NULL, "bad JSON in test: %s", text);
	return o;
}

void extdrv_need_tool(const char *tool)
{
	char *argv[] = {(char *)(uintptr_t) "/bin/sh",
			(char *)(uintptr_t) "-c",
			(char *)(uintptr_t) "command -v \"$1\"",
			(char *)(uintptr_t) "sh",
			(char *)(uintptr_t)tool,
			NULL};
	int rc = test_run(argv, NULL, NULL);

	if (rc != 0)
		ck_abort_msg("%s is not on PATH: run `make tools` (and `make check`, which puts "
			     "~/.cache/orchd/tools/*/bin first on PATH)",
			     tool);
}

void extdrv_run_action(const char *type, const char *pipeline_dir, const struct extdrv_action *a,
		       struct extdrv *d)
{
	char *rel = NULL, *exe, *pdir = test_src_path(pipeline_dir);
	struct extdrv_opts o = {
		.action = a->action,
		.config = a->config,
		.state = a->state,
		.workdir = a->workdir,
		.clean_env = true,
		.pipeline_dir = pdir,
		.cancel_after = a->cancel_after,
		.strict = true,
		.expect_result = true,
	};

	ck_assert_int_ge(asprintf(&rel, "libexec/orchd/extensions/orchd-ext-%s", type), 0);
	exe = test_build_path(rel);
	o.exe = exe;
	extdrv_run(&o, d);
	free(rel);
	free(exe);
	free(pdir);
}
