/*
 * core/exttest: the conformance runner of `orchd ext test` (see exttest.h).
 *
 * Each test starts the extension afresh, as orchd does for each action: a
 * new process in a process group of its own, a fresh empty workdir as its
 * current directory, the environment of PROTOCOL §3, and three pipes.  The
 * runner reads its stdout through the protocol library's splitter and
 * parser, so that every line it ever wrote is judged by the same code that
 * judges it in a real run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/bootstrap.h"
#include "core/exttest.h"
#include "orchd_protocol.h"
#include "util.h"

enum verdict { V_PASS, V_FAIL, V_WARN, V_SKIP };

static const char *const verdict_names[] = {"PASS", "FAIL", "WARN", "SKIP"};

struct check {
	char *name, *section, *detail;
	enum verdict v;
};

struct tester {
	const struct orchd_exttest_opts *o;
	FILE *out;
	char *exe, *type, *dir, *pipeline_dir;
	json_object *config; /* the sample config */
	char **env;	     /* more NAME=VALUE for its environment, as orchd gives them */
	size_t nenv;
	json_object *hello; /* the extension's hello (to 1..1) */
	struct check *checks;
	size_t nchecks, achecks;
	long grace_ms;
	/* across every session */
	size_t lines, nonproto;
	struct op_buf proto_errors; /* "TEXT (in ACTION)\n"... */
	char *nonproto_example;
	json_object *secrets; /* array of the secret output values, as text */
	struct op_buf said;   /* every log, progress, error and summary text, and stderr */
	struct op_buf exits;  /* "ACTION: exit status N\n"... when not 0 after a result */
};

struct sess {
	struct tester *t;
	const char *what; /* for messages: "apply", "hello 1..99", ... */
	pid_t pid;
	int in, out, err;
	struct op_splitter *sp;
	char *workdir;
	int out_eof, err_eof, exited, status;
	json_object **msgs;
	size_t nmsgs, amsgs;
	int results;	  /* result messages seen */
	size_t after;	  /* messages after the first result */
	json_object *res; /* the first result (borrowed from msgs) */
};

static void add_check(struct tester *t, enum verdict v, const char *section, const char *name,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add_check(struct tester *t, enum verdict v, const char *section, const char *name,
		      const char *fmt, ...)
{
	struct check *c;
	va_list ap;

	ALLOC_GROW(t->checks, t->nchecks + 1, t->achecks);
	c = &t->checks[t->nchecks++];
	c->v = v;
	c->section = xstrdup(section);
	c->name = xstrdup(name);
	c->detail = NULL;
	if (fmt) {
		va_start(ap, fmt);
		if (vasprintf(&c->detail, fmt, ap) < 0)
			die("out of memory");
		va_end(ap);
	}
	fprintf(t->out, "%s  %-5s %s%s%s\n", verdict_names[v], section, name, c->detail ? ": " : "",
		c->detail ? c->detail : "");
	fflush(t->out);
}

/* ---- one process ----------------------------------------------------------- */

static void env_add(char ***env, size_t *n, size_t *alloc, char *s)
{
	ALLOC_GROW(*env, *n + 2, *alloc);
	(*env)[(*n)++] = s;
	(*env)[*n] = NULL;
}

static int sess_start(struct tester *t, struct sess *s, const char *what)
{
	static const char *const keep[] = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"};
	struct op_child c = OP_CHILD_INIT;
	const char *argv[2];
	char **env = NULL, tmpl[PATH_MAX];
	size_t n = 0, alloc = 0;
	const char *tmp = getenv("TMPDIR");

	memset(s, 0, sizeof(*s));
	s->t = t;
	s->what = what;
	s->in = s->out = s->err = -1;
	snprintf(tmpl, sizeof(tmpl), "%s/orchd-ext-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(tmpl))
		die("cannot create a workdir under %s: %s", tmp && *tmp ? tmp : "/tmp",
		    strerror(errno));
	s->workdir = xstrdup(tmpl);
	for (size_t i = 0; i < ARRAY_SIZE(keep); i++)
		if (getenv(keep[i]))
			env_add(&env, &n, &alloc, xasprintf("%s=%s", keep[i], getenv(keep[i])));
	env_add(&env, &n, &alloc, xstrdup("ORCHD_PROTOCOL=1"));
	env_add(&env, &n, &alloc, xstrdup("ORCHD_INSTANCE=test"));
	env_add(&env, &n, &alloc, xasprintf("ORCHD_WORKDIR=%s", s->workdir));
	if (t->pipeline_dir)
		env_add(&env, &n, &alloc, xasprintf("ORCHD_PIPELINE_DIR=%s", t->pipeline_dir));
	for (size_t i = 0; i < t->nenv; i++)
		env_add(&env, &n, &alloc, xstrdup(t->env[i]));
	/* the one way orchd starts a program (orchd_protocol.h): own process
	 * group, default signal dispositions, no fd but the three */
	argv[0] = t->exe;
	argv[1] = NULL;
	c.argv = argv;
	c.env = (const char *const *)env;
	c.cwd = s->workdir;
	c.in = c.out = c.err = OP_CHILD_PIPE;
	c.flags = OP_CHILD_PGROUP;
	if (op_child_start(&c) < 0) {
		char why[256];

		/* seen as a process that could not run: exit status 127 */
		op_buf_addf(&t->said, "%s\n", op_child_error(&c, why, sizeof(why)));
		s->pid = -1;
		s->exited = s->out_eof = s->err_eof = 1;
		s->status = 127 << 8;
	} else {
		s->pid = c.pid;
		s->in = c.in;
		s->out = c.out;
		s->err = c.err;
		/* stdin blocking, as a pipe from orchd is (the reads stay non-blocking) */
		fcntl(s->in, F_SETFL, fcntl(s->in, F_GETFL) & ~O_NONBLOCK);
	}
	if (!(s->sp = op_splitter_new(0, OP_SPLIT_STRICT)))
		die("out of memory");
	for (size_t i = 0; i < n; i++)
		free(env[i]);
	free(env);
	return 0;
}

static void sess_line(struct sess *s, const char *line, size_t len, int too_long)
{
	struct tester *t = s->t;
	struct op_parsed p;
	json_object *m;

	t->lines++;
	if (t->o->verbose)
		fprintf(t->out, "      < %.*s%s\n", (int)(len > 300 ? 300 : len), line,
			len > 300 ? "..." : "");
	if (too_long) {
		op_buf_addf(&t->proto_errors, "line exceeds 1048576 bytes (%s)\n", s->what);
		return;
	}
	op_parse_line(OP_FROM_EXT, line, len, &p);
	switch (p.verdict) {
	case OP_EMPTY:
		break;
	case OP_NON_PROTOCOL:
		t->nonproto++;
		if (!t->nonproto_example)
			t->nonproto_example = xasprintf("%.*s", (int)(len > 80 ? 80 : len), line);
		break;
	case OP_PROTOCOL_ERROR:
		op_buf_addf(&t->proto_errors, "%s (%s)\n", p.error, s->what);
		break;
	case OP_VALID:
		m = op_parsed_steal(&p);
		ALLOC_GROW(s->msgs, s->nmsgs + 1, s->amsgs);
		s->msgs[s->nmsgs++] = m;
		if (s->results)
			s->after++;
		if (p.type == OP_MSG_RESULT && !s->results++)
			s->res = m;
		if (p.type == OP_MSG_LOG || p.type == OP_MSG_PROGRESS || p.type == OP_MSG_ERROR)
			op_buf_addf(&t->said, "%s\n", op_get_str(m, "message"));
		if (p.type == OP_MSG_RESULT && op_get_str(m, "summary"))
			op_buf_addf(&t->said, "%s\n", op_get_str(m, "summary"));
		if (p.type == OP_MSG_OUTPUT && op_get_bool(m, "secret", false)) {
			json_object *v = op_get(m, "value");
			const char *text =
				json_object_is_type(v, json_type_string)
					? json_object_get_string(v)
					: json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);

			size_t k, n = json_object_array_length(t->secrets);

			for (k = 0; k < n; k++)
				if (!strcmp(json_object_get_string(
						    json_object_array_get_idx(t->secrets, k)),
					    text))
					break;
			if (k == n)
				json_object_array_add(t->secrets, json_object_new_string(text));
		}
		break;
	}
	op_parsed_release(&p);
}

/* Read what is there, reap the process when it exits.  0, or -1 when
 * nothing more can happen (both streams closed and the process reaped). */
static int sess_pump(struct sess *s, int timeout_ms)
{
	struct pollfd pf[2];
	char buf[65536];
	int np = 0;

	if (!s->out_eof) {
		pf[np].fd = s->out;
		pf[np++].events = POLLIN;
	}
	if (!s->err_eof) {
		pf[np].fd = s->err;
		pf[np++].events = POLLIN;
	}
	if (np)
		poll(pf, (nfds_t)np, timeout_ms < 50 ? timeout_ms : 50);
	else if (!s->exited)
		usleep(10000);
	for (;;) {
		ssize_t r;

		if (s->out_eof)
			break;
		r = read(s->out, buf, sizeof(buf));
		if (r > 0) {
			if (op_splitter_feed(s->sp, buf, (size_t)r) < 0)
				die("out of memory");
		} else if (r == 0) {
			s->out_eof = 1;
			op_splitter_finish(s->sp);
		} else {
			if (errno != EINTR && errno != EAGAIN)
				s->out_eof = 1;
			if (errno != EINTR)
				break;
		}
	}
	for (;;) {
		const char *line;
		size_t len;
		enum op_line_status st = op_splitter_next(s->sp, &line, &len);

		if (st == OP_LINE_NONE)
			break;
		sess_line(s, line, len, st == OP_LINE_TOO_LONG);
	}
	for (;;) {
		ssize_t r;

		if (s->err_eof)
			break;
		r = read(s->err, buf, sizeof(buf));
		if (r > 0) {
			if (s->t->said.len < (8u << 20))
				op_buf_add(&s->t->said, buf, (size_t)r);
		} else if (r == 0) {
			s->err_eof = 1;
		} else {
			if (errno != EINTR && errno != EAGAIN)
				s->err_eof = 1;
			if (errno != EINTR)
				break;
		}
	}
	if (!s->exited && waitpid(s->pid, &s->status, WNOHANG) == s->pid)
		s->exited = 1;
	return s->exited && s->out_eof && s->err_eof ? -1 : 0;
}

enum goal { G_MESSAGE, G_RESULT, G_EXIT };

/* Pump until the goal is met (1) or timeout_ms pass (0). */
static int sess_until(struct sess *s, enum goal g, long timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	size_t had = s->nmsgs;

	for (;;) {
		int done = sess_pump(s, 50);

		if ((g == G_MESSAGE && s->nmsgs > had) || (g == G_RESULT && s->results) ||
		    (g == G_EXIT && s->exited))
			return 1;
		if (done || now_ms() >= end)
			return g == G_EXIT ? s->exited : 0;
	}
}

static int sess_send(struct sess *s, const char *line)
{
	size_t len;

	if (!line)
		return -1;
	len = strlen(line);
	if (s->t->o->verbose)
		fprintf(s->t->out, "      > %.*s\n",
			(int)strcspn(line, "\n") > 300 ? 300 : (int)strcspn(line, "\n"), line);
	/* the encoders end their lines with '\n' already */
	if (s->in < 0 || op_write_all(s->in, line, len) < 0 ||
	    ((!len || line[len - 1] != '\n') && op_write_all(s->in, "\n", 1) < 0))
		return -1;
	return 0;
}

static void sess_close_in(struct sess *s)
{
	if (s->in >= 0)
		close(s->in);
	s->in = -1;
}

static void sess_end(struct sess *s)
{
	sess_close_in(s);
	if (s->pid <= 0) {
		/* never started */
	} else if (!s->exited) {
		kill(-s->pid, SIGKILL);
		kill(s->pid, SIGKILL);
		while (waitpid(s->pid, &s->status, 0) < 0 && errno == EINTR)
			;
		s->exited = 1;
	} else {
		kill(-s->pid, SIGKILL); /* what it left behind */
	}
	if (s->out >= 0)
		close(s->out);
	if (s->err >= 0)
		close(s->err);
	op_splitter_free(s->sp);
	for (size_t i = 0; i < s->nmsgs; i++)
		json_object_put(s->msgs[i]);
	free(s->msgs);
	op_rmtree(s->workdir);
	free(s->workdir);
	memset(s, 0, sizeof(*s));
}

/* "exit status N", "killed by signal S (NAME)" */
static const char *status_text(int status, char *buf, size_t len)
{
	char sig[64];

	if (WIFEXITED(status))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by %s",
			 op_signal_text(WTERMSIG(status), sig, sizeof(sig)));
	else
		snprintf(buf, len, "status %d", status);
	return buf;
}

/* Send orchd's hello offering min..max; the first message back, or NULL. */
static json_object *handshake(struct sess *s, int min, int max)
{
	char *hello = op_encode_hello_orchd(min, max, ORCHD_VERSION);

	if (hello)
		sess_send(s, hello);
	else
		die("out of memory");
	free(hello);
	if (!sess_until(s, G_MESSAGE, 10000))
		return NULL;
	return s->msgs[0];
}

/* ---- an action in a process of its own --------------------------------------- */

struct act {
	int ran;	     /* the extension got the action */
	int timed_out;	     /* no result within the bound */
	json_object *result; /* owned */
	json_object *state;  /* last state sent (owned), when has_state */
	int has_state;
	json_object *outputs; /* key -> value (owned) */
	int exit_ok;	      /* exited 0 within the grace after the result */
	char exit_text[96];
};

static void act_release(struct act *a)
{
	json_object_put(a->result);
	json_object_put(a->state);
	json_object_put(a->outputs);
	memset(a, 0, sizeof(*a));
}

static int lists_action(const struct tester *t, const char *action)
{
	json_object *acts = op_get(t->hello, "actions");

	for (size_t i = 0; acts && i < json_object_array_length(acts); i++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(acts, i)), action))
			return 1;
	return 0;
}

static void do_action(struct tester *t, enum op_action action, json_object *config,
		      json_object *state, json_object *outputs, struct act *a)
{
	struct sess s;
	json_object *empty = json_object_new_object();
	char *line;

	memset(a, 0, sizeof(*a));
	a->outputs = json_object_new_object();
	sess_start(t, &s, op_action_name(action));
	if (!handshake(&s, 1, 1) || json_object_get_type(s.msgs[0]) != json_type_object ||
	    strcmp(op_get_str(s.msgs[0], "type"), "hello")) {
		sess_end(&s);
		json_object_put(empty);
		return;
	}
	if (action == OP_ACTION_DESCRIBE) {
		json_object *m = json_object_new_object();

		json_object_object_add(m, "type", json_object_new_string("action"));
		json_object_object_add(m, "action", json_object_new_string("describe"));
		line = xstrdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
		json_object_put(m);
	} else {
		line = op_encode_action(action, "test", "test-" /* informational */, config, state,
					outputs ? outputs : empty, s.workdir);
		if (!line)
			die("out of memory");
	}
	sess_send(&s, line);
	free(line);
	a->ran = 1;
	if (!sess_until(&s, G_RESULT, 120000)) {
		a->timed_out = 1;
	} else {
		a->result = json_object_get(s.res);
		sess_close_in(&s);
		if (!sess_until(&s, G_EXIT, t->grace_ms)) {
			snprintf(a->exit_text, sizeof(a->exit_text),
				 "did not exit within %lds after its result", t->grace_ms / 1000);
		} else {
			status_text(s.status, a->exit_text, sizeof(a->exit_text));
			a->exit_ok = WIFEXITED(s.status) && WEXITSTATUS(s.status) == 0;
		}
		if (!a->exit_ok)
			op_buf_addf(&t->exits, "%s: %s\n", op_action_name(action), a->exit_text);
	}
	for (size_t i = 0; i < s.nmsgs; i++) {
		const char *type = op_get_str(s.msgs[i], "type");

		if (!strcmp(type, "state")) {
			json_object_put(a->state);
			a->state = json_object_get(op_get(s.msgs[i], "state"));
			a->has_state = 1;
		} else if (!strcmp(type, "output")) {
			json_object_object_add(a->outputs, op_get_str(s.msgs[i], "key"),
					       json_object_get(op_get(s.msgs[i], "value")));
		}
	}
	if (s.results > 1 || s.after)
		op_buf_addf(&t->proto_errors, "%zu message(s) after the result (%s)\n", s.after,
			    op_action_name(action));
	sess_end(&s);
	json_object_put(empty);
}

static const char *summary_of(const struct act *a)
{
	const char *s = a->result ? op_get_str(a->result, "summary") : NULL;

	return s ? s : "";
}

static int succeeded(const struct act *a)
{
	return a->result && !strcmp(op_get_str(a->result, "status"), "success");
}

/* "changed" of the result: 1, 0, or -1 when absent */
static int changed_of(const struct act *a)
{
	json_object *c = a->result ? op_get(a->result, "changed") : NULL;

	return c && json_object_is_type(c, json_type_boolean) ? json_object_get_boolean(c) : -1;
}

/* ---- the checks ----------------------------------------------------------------- */

static void check_manifest(struct tester *t)
{
	char *path = xasprintf("%s/orchd-ext-%s.manifest.json", t->dir, t->type);
	json_object *m = json_object_from_file(path), *proto, *mn, *mx;
	const char *name, *ver;

	if (access(path, F_OK) < 0) {
		add_check(t, V_WARN, "§2.3", "manifest", "no %s (SHOULD be beside the executable)",
			  path);
		goto out;
	}
	if (!m || !json_object_is_type(m, json_type_object)) {
		add_check(t, V_FAIL, "§2.3", "manifest", "%s is not a JSON object", path);
		goto out;
	}
	name = op_get_str(m, "name");
	ver = op_get_str(m, "version");
	proto = op_get(m, "protocol");
	mn = proto ? op_get(proto, "min") : NULL;
	mx = proto ? op_get(proto, "max") : NULL;
	if (!name || strcmp(name, t->type))
		add_check(t, V_FAIL, "§2.3", "manifest", "'name' must be \"%s\", got %s", t->type,
			  name ? name : "nothing");
	else if (!ver || !op_version_valid(ver))
		add_check(t, V_FAIL, "§2.3", "manifest", "'version' must be a dotted version");
	else if (!mn || !mx || !json_object_is_type(mn, json_type_int) ||
		 !json_object_is_type(mx, json_type_int) || json_object_get_int(mn) < 1 ||
		 json_object_get_int(mn) > json_object_get_int(mx))
		add_check(t, V_FAIL, "§2.3", "manifest",
			  "'protocol' must be {\"min\":int,\"max\":int}, 1 <= min <= max");
	else
		add_check(t, V_PASS, "§2.3", "manifest", "%s %s, protocol %d..%d", name, ver,
			  json_object_get_int(mn), json_object_get_int(mx));
out:
	json_object_put(m);
	free(path);
}

/* The hello to 1..1; kept in t->hello.  0, or -1 when nothing else can run. */
static int check_hello(struct tester *t)
{
	struct sess s;
	json_object *h;
	char err[OP_ERRMAX], st[96];

	sess_start(t, &s, "hello 1..1");
	h = handshake(&s, 1, 1);
	if (!h) {
		sess_until(&s, G_EXIT, 100);
		if (s.exited)
			add_check(t, V_FAIL, "§5", "handshake", "no hello: it exited (%s)%s%s",
				  status_text(s.status, st, sizeof(st)),
				  t->proto_errors.len ? "; " : "",
				  t->proto_errors.len ? op_buf_str(&t->proto_errors) : "");
		else
			add_check(t, V_FAIL, "§5", "handshake", "no hello within 10s");
		sess_end(&s);
		return -1;
	}
	if (strcmp(op_get_str(h, "type"), "hello")) {
		add_check(t, V_FAIL, "§5", "handshake",
			  "its first message is '%s' (MUST NOT send anything before its hello)",
			  op_get_str(h, "type"));
		sess_end(&s);
		return -1;
	}
	if (op_check_ext_hello(h, 1, 1, ORCHD_VERSION, OP_ACTION_APPLY, err, sizeof(err)) < 0) {
		add_check(t, V_FAIL, "§5", "handshake", "%s", err);
		sess_end(&s);
		return -1;
	}
	if (strcmp(op_get_str(h, "name"), t->type)) {
		add_check(t, V_FAIL, "§5", "handshake",
			  "the extension calls itself '%s', but it was started for type '%s'",
			  op_get_str(h, "name"), t->type);
		sess_end(&s);
		return -1;
	}
	t->hello = json_object_get(h);
	add_check(t, V_PASS, "§5", "handshake", "%s %s, protocol %lld", op_get_str(h, "name"),
		  op_get_str(h, "version"), op_get_int(h, "protocol", 0));
	/* after a hello, a closed stdin: it must go (§9.4) */
	sess_close_in(&s);
	if (sess_until(&s, G_EXIT, t->grace_ms))
		add_check(t, V_PASS, "§9", "closed stdin before the action", "exited (%s)",
			  status_text(s.status, st, sizeof(st)));
	else
		add_check(
			t, V_FAIL, "§9", "closed stdin before the action",
			"still running %lds after orchd closed its stdin (EOF before the result is "
			"a cancel)",
			t->grace_ms / 1000);
	sess_end(&s);
	return 0;
}

static void check_ranges(struct tester *t)
{
	struct sess s;
	json_object *h;
	char st[96];
	int chosen;

	/* a wider range, reaching versions it does not know */
	sess_start(t, &s, "hello 1..99");
	h = handshake(&s, 1, 99);
	chosen = h ? (int)op_get_int(h, "protocol", 0) : 0;
	if (h && !strcmp(op_get_str(h, "type"), "hello") && chosen >= 1 && chosen <= 99)
		add_check(t, V_PASS, "§5", "a newer orchd (1..99 offered)", "chose protocol %d",
			  chosen);
	else
		add_check(t, V_FAIL, "§5", "a newer orchd (1..99 offered)",
			  h ? "answered '%s' instead of a hello choosing a version in 1..99"
			    : "no answer%s",
			  h ? op_get_str(h, "type") : "");
	sess_end(&s);

	/* a range it cannot speak */
	sess_start(t, &s, "hello 90..99");
	h = handshake(&s, 90, 99);
	if (!h) {
		add_check(t, V_FAIL, "§5", "no common version (90..99 offered)",
			  "no answer: it MUST answer an error message and exit 1");
	} else if (!strcmp(op_get_str(h, "type"), "hello")) {
		add_check(t, V_FAIL, "§5", "no common version (90..99 offered)",
			  "it said hello with protocol %lld: it MUST refuse with an error message",
			  op_get_int(h, "protocol", 0));
	} else if (strcmp(op_get_str(h, "type"), "error")) {
		add_check(t, V_FAIL, "§5", "no common version (90..99 offered)",
			  "answered '%s' instead of an error message", op_get_str(h, "type"));
	} else {
		sess_close_in(&s);
		if (!sess_until(&s, G_EXIT, t->grace_ms))
			add_check(t, V_FAIL, "§5", "no common version (90..99 offered)",
				  "refused (%s) but did not exit", op_get_str(h, "message"));
		else if (!WIFEXITED(s.status) || WEXITSTATUS(s.status) != 1)
			add_check(t, V_WARN, "§5", "no common version (90..99 offered)",
				  "refused (%s), then %s (SHOULD exit 1)", op_get_str(h, "message"),
				  status_text(s.status, st, sizeof(st)));
		else
			add_check(t, V_PASS, "§5", "no common version (90..99 offered)",
				  "refused: %s", op_get_str(h, "message"));
	}
	sess_end(&s);
}

static void check_describe(struct tester *t)
{
	struct act a;
	json_object *d, *cfg;

	if (!lists_action(t, "describe")) {
		add_check(t, V_SKIP, "§7.1", "describe", "not in its hello's actions (optional)");
		return;
	}
	do_action(t, OP_ACTION_DESCRIBE, NULL, NULL, NULL, &a);
	if (!succeeded(&a)) {
		add_check(t, V_FAIL, "§7.1", "describe", "%s",
			  a.timed_out ? "no result within 120s"
			  : a.result  ? "a failure result (describe MUST succeed)"
				      : "no result");
	} else if (!(d = op_get(a.result, "describe")) ||
		   !json_object_is_type(d, json_type_object)) {
		add_check(t, V_FAIL, "§7.1", "describe", "the result has no 'describe' object");
	} else if (!op_get_str(d, "type") || strcmp(op_get_str(d, "type"), t->type)) {
		add_check(t, V_FAIL, "§7.1", "describe", "describe.type must be \"%s\"", t->type);
	} else if (!(cfg = op_get(d, "config")) || !json_object_is_type(cfg, json_type_object)) {
		add_check(t, V_WARN, "§7.1", "describe",
			  "no 'config' schema (SHOULD be a JSON Schema of the config)");
	} else if (op_get_str(cfg, "type") && strcmp(op_get_str(cfg, "type"), "object")) {
		add_check(t, V_FAIL, "§7.1", "describe",
			  "config schema's type is \"%s\": a config is an object",
			  op_get_str(cfg, "type"));
	} else {
		json_object *props = op_get(cfg, "properties");

		add_check(t, V_PASS, "§7.1", "describe", "a config schema with %d propert%s",
			  props ? json_object_object_length(props) : 0,
			  props && json_object_object_length(props) == 1 ? "y" : "ies");
	}
	act_release(&a);
}

/* Do the errors of a failed validate name `key` (a path starting with it)? */
static int names_key(json_object *result, const char *key, int *by_message)
{
	json_object *errs = op_get(result, "errors");
	size_t n = strlen(key);

	*by_message = 0;
	for (size_t i = 0; errs && i < json_object_array_length(errs); i++) {
		json_object *e = json_object_array_get_idx(errs, i);
		const char *p = op_get_str(e, "path"), *m = op_get_str(e, "message");

		if (p && !strncmp(p, key, n) && (!p[n] || p[n] == '.' || p[n] == '['))
			return 1;
		if (p && !*p && m && strstr(m, key))
			*by_message = 1;
	}
	return 0;
}

static void check_validate(struct tester *t)
{
	static const char bogus[] = "orchd_ext_test_unknown_key";
	struct act a;
	json_object *cfg;
	int by_msg, named = 0, unnamed = 0, accepted = 0;
	struct op_buf bad = OP_BUF_INIT;

	if (!lists_action(t, "validate")) {
		add_check(t, V_SKIP, "§7.2", "validate", "not in its hello's actions (optional)");
		return;
	}
	do_action(t, OP_ACTION_VALIDATE, t->config, NULL, NULL, &a);
	if (succeeded(&a))
		add_check(t, V_PASS, "§7.2", "validate the sample config", "%s", summary_of(&a));
	else
		add_check(t, V_FAIL, "§7.2", "validate the sample config", "%s%s",
			  a.timed_out ? "no result within 120s" : "rejected: ",
			  a.timed_out ? "" : summary_of(&a));
	act_release(&a);

	/* an unknown key */
	cfg = json_object_new_object();
	json_object_deep_copy(t->config, &cfg, NULL);
	json_object_object_add(cfg, bogus, json_object_new_int(1));
	do_action(t, OP_ACTION_VALIDATE, cfg, NULL, NULL, &a);
	json_object_put(cfg);
	if (succeeded(&a))
		add_check(t, V_WARN, "§7.2", "validate an unknown key",
			  "'%s' is accepted (a typo passes silently)", bogus);
	else if (!a.result)
		add_check(t, V_FAIL, "§7.2", "validate an unknown key", "no result");
	else if (names_key(a.result, bogus, &by_msg))
		add_check(t, V_PASS, "§7.2", "validate an unknown key", "rejected at its path");
	else if (by_msg)
		add_check(
			t, V_WARN, "§7.2", "validate an unknown key",
			"rejected at path \"\": an unknown key SHOULD be reported at its own path, "
			"so orchd shows its line");
	else
		add_check(t, V_FAIL, "§7.2", "validate an unknown key",
			  "rejected, but no error names '%s'", bogus);
	act_release(&a);

	/* each key of the sample with a value of another type */
	json_object_object_foreach(t->config, key, val)
	{
		json_object *wrong;

		cfg = NULL;
		json_object_deep_copy(t->config, &cfg, NULL);
		wrong = json_object_is_type(val, json_type_string) ? json_object_new_array()
								   : json_object_new_string("?");
		json_object_object_add(cfg, key, wrong);
		do_action(t, OP_ACTION_VALIDATE, cfg, NULL, NULL, &a);
		json_object_put(cfg);
		if (succeeded(&a))
			accepted++;
		else if (a.result && names_key(a.result, key, &by_msg))
			named++;
		else {
			unnamed++;
			op_buf_addf(&bad, "%s'%s'", bad.len ? ", " : "", key);
		}
		act_release(&a);
	}
	if (unnamed)
		add_check(t, V_FAIL, "§7.2", "validate wrong types",
			  "the errors do not name the key they are about: %s", op_buf_str(&bad));
	else if (!named && !accepted)
		add_check(t, V_SKIP, "§7.2", "validate wrong types", "the sample config is empty");
	else
		add_check(t, V_PASS, "§7.2", "validate wrong types",
			  "%d rejected at their key, %d accepted", named, accepted);
	op_buf_release(&bad);
}

static void check_lifecycle(struct tester *t)
{
	struct act plan, a1, a2, p2, d1, d2;
	int c;

	memset(&plan, 0, sizeof(plan));
	memset(&p2, 0, sizeof(p2));
	memset(&d1, 0, sizeof(d1));
	memset(&d2, 0, sizeof(d2));
	if (lists_action(t, "plan")) {
		do_action(t, OP_ACTION_PLAN, t->config, NULL, NULL, &plan);
		if (!plan.result)
			add_check(t, V_FAIL, "§7.3", "plan", "%s",
				  plan.timed_out ? "no result within 120s" : "no result");
		else if (!succeeded(&plan))
			add_check(t, V_FAIL, "§7.3", "plan", "failed: %s", summary_of(&plan));
		else if (changed_of(&plan) < 0)
			add_check(t, V_WARN, "§7.3", "plan",
				  "no 'changed' (SHOULD say whether apply would change something)");
		else
			add_check(t, V_PASS, "§7.3", "plan", "changed: %s; %s",
				  changed_of(&plan) ? "true" : "false", summary_of(&plan));
	} else {
		add_check(t, V_SKIP, "§7.3", "plan", "not in its hello's actions (optional)");
	}

	do_action(t, OP_ACTION_APPLY, t->config, NULL, NULL, &a1);
	if (!succeeded(&a1)) {
		add_check(t, V_FAIL, "§7.4", "apply", "%s%s",
			  a1.timed_out ? "no result within 120s"
			  : a1.result  ? "failed: "
				       : "no result",
			  a1.result ? summary_of(&a1) : "");
		act_release(&plan);
		act_release(&a1);
		return;
	}
	add_check(t, V_PASS, "§7.4", "apply", "%d output(s)%s; %s",
		  json_object_object_length(a1.outputs), a1.has_state ? ", a state" : "",
		  summary_of(&a1));
	{
		struct op_buf bad = OP_BUF_INIT;

		json_object_object_foreach(a1.outputs, k, v)
		{
			(void)v;
			if (!*k || strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					     "0123456789_-") != strlen(k))
				op_buf_addf(&bad, "%s'%s'", bad.len ? ", " : "", k);
		}
		if (bad.len)
			add_check(t, V_WARN, "§6.2", "output names",
				  "%s cannot be referenced from a pipeline ([A-Za-z0-9_-]+)",
				  op_buf_str(&bad));
		else
			add_check(t, V_PASS, "§6.2", "output names", "every one can be referenced");
		op_buf_release(&bad);
	}

	do_action(t, OP_ACTION_APPLY, t->config, a1.has_state ? a1.state : NULL, a1.outputs, &a2);
	c = changed_of(&a2);
	if (!succeeded(&a2))
		add_check(t, V_FAIL, "§7.4", "apply again (same config, its state)", "%s",
			  a2.result ? summary_of(&a2) : "no result");
	else if (c == 0)
		add_check(t, V_PASS, "§7.4", "apply again (same config, its state)",
			  "idempotent: changed false");
	else
		add_check(t, V_WARN, "§7.4", "apply again (same config, its state)",
			  "changed %s: an apply of what is applied SHOULD report changed:false",
			  c < 0 ? "not said" : "true");

	if (lists_action(t, "plan")) {
		do_action(t, OP_ACTION_PLAN, t->config,
			  a2.has_state	 ? a2.state
			  : a1.has_state ? a1.state
					 : NULL,
			  a2.result ? a2.outputs : a1.outputs, &p2);
		c = changed_of(&p2);
		if (!succeeded(&p2))
			add_check(t, V_FAIL, "§7.3", "plan after apply", "%s",
				  p2.result ? summary_of(&p2) : "no result");
		else if (c == 0)
			add_check(t, V_PASS, "§7.3", "plan after apply", "no change");
		else
			add_check(t, V_WARN, "§7.3", "plan after apply",
				  "changed %s: nothing is left to do", c < 0 ? "not said" : "true");
	}

	if (lists_action(t, "destroy")) {
		json_object *st = a2.has_state ? a2.state : a1.has_state ? a1.state : NULL;

		do_action(t, OP_ACTION_DESTROY, t->config, st, a2.outputs, &d1);
		if (!succeeded(&d1))
			add_check(t, V_FAIL, "§7.5", "destroy", "%s",
				  d1.result ? summary_of(&d1) : "no result");
		else if (st && (!d1.has_state || d1.state))
			add_check(t, V_WARN, "§7.5", "destroy",
				  "succeeded without sending state null (SHOULD)");
		else
			add_check(t, V_PASS, "§7.5", "destroy", "%s", summary_of(&d1));
		do_action(t, OP_ACTION_DESTROY, t->config, NULL, NULL, &d2);
		if (!succeeded(&d2))
			add_check(t, V_FAIL, "§7.5", "destroy what does not exist", "%s",
				  d2.result ? summary_of(&d2) : "no result");
		else if (changed_of(&d2) == 1)
			add_check(t, V_WARN, "§7.5", "destroy what does not exist",
				  "changed true (SHOULD be a success with changed:false)");
		else
			add_check(t, V_PASS, "§7.5", "destroy what does not exist", "%s",
				  summary_of(&d2));
	} else {
		add_check(t, V_SKIP, "§7.5", "destroy", "not in its hello's actions (optional)");
	}
	act_release(&plan);
	act_release(&a1);
	act_release(&a2);
	act_release(&p2);
	act_release(&d1);
	act_release(&d2);
}

/* A cancel and SIGTERM right after the action: it must be gone within the
 * grace, having said a result or not. */
static void check_cancel(struct tester *t)
{
	struct sess s;
	json_object *empty = json_object_new_object();
	char *line, st[96];
	long long t0;

	sess_start(t, &s, "cancel");
	if (!handshake(&s, 1, 1)) {
		add_check(t, V_FAIL, "§9", "cancel", "no hello");
		goto out;
	}
	line = op_encode_action(OP_ACTION_APPLY, "test", "test-", t->config, NULL, empty,
				s.workdir);
	sess_send(&s, line);
	free(line);
	line = op_encode_cancel("interrupted");
	sess_send(&s, line);
	free(line);
	if (s.pid > 0)
		kill(-s.pid, SIGTERM);
	t0 = now_ms();
	if (!sess_until(&s, G_EXIT, t->grace_ms)) {
		add_check(t, V_FAIL, "§9", "cancel (cancel message and SIGTERM)",
			  "still running %lds later: orchd would SIGKILL it", t->grace_ms / 1000);
		goto out;
	}
	if (WIFSIGNALED(s.status))
		add_check(t, V_WARN, "§9", "cancel (cancel message and SIGTERM)",
			  "%s after %lld ms (it SHOULD catch SIGTERM, stop its work and send a "
			  "failure result)",
			  status_text(s.status, st, sizeof(st)), now_ms() - t0);
	else
		add_check(t, V_PASS, "§9", "cancel (cancel message and SIGTERM)",
			  "gone after %lld ms, %s%s%s", now_ms() - t0,
			  s.res ? "result " : "no result, ",
			  s.res ? op_get_str(s.res, "status") : "",
			  s.res ? "" : status_text(s.status, st, sizeof(st)));
out:
	sess_end(&s);
	json_object_put(empty);
}

/* After the hello, a line that is not orchd's: it must not hang. */
static void check_bad_input(struct tester *t, const char *what, const char *line)
{
	struct sess s;
	char st[96];

	sess_start(t, &s, what);
	if (!handshake(&s, 1, 1)) {
		add_check(t, V_FAIL, "§4", what, "no hello");
		sess_end(&s);
		return;
	}
	sess_send(&s, line);
	if (!sess_until(&s, G_EXIT, t->grace_ms)) {
		sess_close_in(&s);
		if (sess_until(&s, G_EXIT, t->grace_ms))
			add_check(t, V_WARN, "§4", what,
				  "it waited for more input (SHOULD report the line on stderr and "
				  "exit 1)");
		else
			add_check(t, V_FAIL, "§4", what,
				  "still running, even after its stdin was closed");
	} else if (WIFEXITED(s.status) && WEXITSTATUS(s.status) == 1) {
		add_check(t, V_PASS, "§4", what, "exit status 1");
	} else {
		add_check(t, V_WARN, "§4", what, "%s (SHOULD exit 1)",
			  status_text(s.status, st, sizeof(st)));
	}
	sess_end(&s);
}

/* Empty and blank lines between orchd's messages are ignored (§4). */
static void check_blank_lines(struct tester *t)
{
	struct sess s;
	const char *act = lists_action(t, "describe") ? "describe" : "apply";
	json_object *empty = json_object_new_object();
	char *line;

	sess_start(t, &s, "blank lines");
	if (!handshake(&s, 1, 1)) {
		add_check(t, V_FAIL, "§4", "blank lines before the action", "no hello");
		goto out;
	}
	sess_send(&s, "");
	sess_send(&s, " \t\r");
	if (!strcmp(act, "describe")) {
		line = xstrdup("{\"type\":\"action\",\"action\":\"describe\"}");
	} else {
		line = op_encode_action(OP_ACTION_APPLY, "test", "test-", t->config, NULL, empty,
					s.workdir);
	}
	sess_send(&s, line);
	free(line);
	if (sess_until(&s, G_RESULT, 120000))
		add_check(t, V_PASS, "§4", "blank lines before the action", "ignored (%s)", act);
	else
		add_check(t, V_FAIL, "§4", "blank lines before the action",
			  "no result to %s after an empty and a blank line (such lines MUST be "
			  "ignored)",
			  act);
out:
	sess_end(&s);
	json_object_put(empty);
}

/* Framing, results, exits and secrets: over every line of every test. */
static void check_overall(struct tester *t)
{
	size_t nsecrets = json_object_array_length(t->secrets), leaked = 0;
	const char *said = op_buf_str(&t->said);

	if (t->proto_errors.len)
		add_check(t, V_FAIL, "§4", "framing", "protocol errors: %s",
			  op_buf_str(&t->proto_errors));
	else if (t->nonproto)
		add_check(t, V_WARN, "§4", "framing",
			  "%zu of %zu stdout lines are not protocol messages (e.g. '%s'): stdout "
			  "SHOULD hold messages only",
			  t->nonproto, t->lines, t->nonproto_example);
	else
		add_check(t, V_PASS, "§4", "framing", "%zu lines, every one a valid message",
			  t->lines);
	if (t->exits.len)
		add_check(t, V_FAIL, "§8", "exit after the result", "%s", op_buf_str(&t->exits));
	else
		add_check(t, V_PASS, "§8", "exit after the result",
			  "exit status 0 once its stdin was closed, every time");
	for (size_t i = 0; i < nsecrets; i++) {
		const char *v = json_object_get_string(json_object_array_get_idx(t->secrets, i));

		if (strlen(v) >= 4 && strstr(said, v))
			leaked++;
	}
	if (!nsecrets)
		add_check(t, V_SKIP, "§6.2", "secret outputs", "none sent");
	else if (leaked)
		add_check(t, V_FAIL, "§6.2", "secret outputs",
			  "%zu secret value(s) appear in its logs, progress, summaries or stderr",
			  leaked);
	else
		add_check(t, V_PASS, "§6.2", "secret outputs",
			  "%zu secret value(s), never in its logs or stderr", nsecrets);
}

/* ---- set-up ------------------------------------------------------------------- */

/* The executable orchd-ext-TYPE in directory dir, alone: 0, or -1 (said). */
static int find_in_dir(struct tester *t, const char *dir, FILE *err)
{
	struct op_buf others = OP_BUF_INIT;
	struct dirent *de;
	struct stat st;
	DIR *dh = opendir(dir);

	if (!dh) {
		fprintf(err, "orchd: error: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(dh))) {
		size_t l = strlen(de->d_name);
		char *full;

		if (strncmp(de->d_name, "orchd-ext-", 10) || l <= 10 ||
		    (l > 14 && !strcmp(de->d_name + l - 14, ".manifest.json")))
			continue;
		full = xasprintf("%s/%s", dir, de->d_name);
		if (!access(full, X_OK) && !stat(full, &st) && S_ISREG(st.st_mode)) {
			if (t->exe)
				op_buf_addf(&others, "%s%s", others.len ? ", " : "", de->d_name);
			else
				t->exe = xstrdup(full);
		}
		free(full);
	}
	closedir(dh);
	if (others.len) {
		fprintf(err, "orchd: error: %s holds several extensions (%s, %s): name one\n", dir,
			strrchr(t->exe, '/') + 1, op_buf_str(&others));
		op_buf_release(&others);
		return -1;
	}
	if (!t->exe) {
		fprintf(err, "orchd: error: no executable orchd-ext-TYPE in %s\n", dir);
		return -1;
	}
	return 0;
}

static int find_exe(struct tester *t, FILE *err)
{
	struct stat st;
	const char *base;

	if (stat(t->o->path, &st) < 0) {
		fprintf(err, "orchd: error: %s: %s\n", t->o->path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		if (find_in_dir(t, t->o->path, err) < 0)
			return -1;
	} else {
		t->exe = xstrdup(t->o->path);
	}
	if (access(t->exe, X_OK) < 0) {
		fprintf(err, "orchd: error: %s is not executable\n", t->exe);
		return -1;
	}
	base = strrchr(t->exe, '/') ? strrchr(t->exe, '/') + 1 : t->exe;
	if (strncmp(base, "orchd-ext-", 10) || !base[10]) {
		fprintf(err,
			"orchd: error: %s: an extension is named orchd-ext-TYPE (PROTOCOL §2.1)\n",
			t->exe);
		return -1;
	}
	t->type = xstrdup(base + 10);
	t->dir = base == t->exe ? xstrdup(".") : xstrndup(t->exe, (size_t)(base - 1 - t->exe));
	if (!*t->dir) {
		free(t->dir);
		t->dir = xstrdup("/");
	}
	if (t->exe[0] != '/') {
		/* the process runs in its workdir: give it an absolute path */
		char cwd[PATH_MAX];
		char *abs;

		if (!getcwd(cwd, sizeof(cwd)))
			die("getcwd: %s", strerror(errno));
		abs = xasprintf("%s/%s", cwd, t->exe);
		free(t->exe);
		t->exe = abs;
	}
	return 0;
}

/* The sample config: --config (a JSON object, or a pipeline), else the
 * pipeline.yaml beside the executable, else {}. */
static int load_config(struct tester *t, FILE *err)
{
	char *auto_path = xasprintf("%s/pipeline.yaml", t->dir);
	const char *path = t->o->config ? t->o->config : access(auto_path, R_OK) ? NULL : auto_path;
	struct orchd_pipeline *p = NULL;
	struct orchd_diags d;
	json_object *j;
	int ret = -1;

	if (!path) {
		t->config = json_object_new_object();
		fprintf(t->out, "sample config: {} (no --config, no %s)\n", auto_path);
		free(auto_path);
		return 0;
	}
	j = json_object_from_file(path);
	if (j && json_object_is_type(j, json_type_object)) {
		t->config = j;
		fprintf(t->out, "sample config: %s\n", path);
		free(auto_path);
		return 0;
	}
	json_object_put(j);
	orchd_diags_init(&d);
	if (orchd_bootstrap_load_file(path, &p, &d) < 0) {
		orchd_diags_print(&d, err);
		fprintf(err, "orchd: error: %s is neither a JSON object nor a pipeline file\n",
			path);
		goto out;
	}
	for (size_t i = 0; i < p->ninst && !t->config; i++)
		if (!strcmp(p->inst[i].type, t->type)) {
			const struct orchd_instance *in = &p->inst[i];

			t->config = orchd_instance_config(p, in);
			fprintf(t->out, "sample config: %s, instance %s\n", path, in->id);
			/* its environment as orchd would give it: core.env, then the
			 * variables it passes (PROTOCOL §3) */
			json_object_object_foreach(p->core.env, k, v)
			{
				t->env = xrealloc(t->env, (t->nenv + 1) * sizeof(*t->env));
				t->env[t->nenv++] =
					xasprintf("%s=%s", k, json_object_get_string(v));
			}
			for (size_t e = 0; e < in->npass_env; e++) {
				const char *val = getenv(in->pass_env[e]);

				if (!val)
					continue;
				t->env = xrealloc(t->env, (t->nenv + 1) * sizeof(*t->env));
				t->env[t->nenv++] = xasprintf("%s=%s", in->pass_env[e], val);
			}
		}
	if (!t->config) {
		fprintf(err, "orchd: error: %s has no instance of type '%s'\n", path, t->type);
		goto out;
	}
	{
		char real[PATH_MAX], *slash;

		if (realpath(path, real) && (slash = strrchr(real, '/'))) {
			*slash = '\0';
			t->pipeline_dir = xstrdup(*real ? real : "/");
		}
	}
	ret = 0;
out:
	orchd_diags_release(&d);
	orchd_pipeline_free(p);
	free(auto_path);
	return ret;
}

static void xml_text(FILE *fp, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", fp);
			break;
		case '>':
			fputs("&gt;", fp);
			break;
		case '&':
			fputs("&amp;", fp);
			break;
		case '"':
			fputs("&quot;", fp);
			break;
		default:
			if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t')
				fputc(*s, fp);
		}
	}
}

static int write_junit(const struct tester *t, const char *path, FILE *err)
{
	FILE *fp = fopen(path, "w");
	size_t fails = 0, skips = 0;

	if (!fp) {
		fprintf(err, "orchd: error: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < t->nchecks; i++) {
		fails += t->checks[i].v == V_FAIL;
		skips += t->checks[i].v == V_SKIP;
	}
	fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		    "<testsuite name=\"orchd ext test ");
	xml_text(fp, t->type);
	fprintf(fp, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\">\n", t->nchecks,
		fails, skips);
	for (size_t i = 0; i < t->nchecks; i++) {
		const struct check *c = &t->checks[i];

		fputs("  <testcase classname=\"PROTOCOL.md ", fp);
		xml_text(fp, c->section);
		fputs("\" name=\"", fp);
		xml_text(fp, c->name);
		fputs("\"", fp);
		if (c->v == V_PASS) {
			fputs("/>\n", fp);
			continue;
		}
		fputs(">\n", fp);
		if (c->v == V_FAIL) {
			fputs("    <failure message=\"", fp);
			xml_text(fp, c->detail);
			fputs("\"/>\n", fp);
		} else if (c->v == V_SKIP) {
			fputs("    <skipped message=\"", fp);
			xml_text(fp, c->detail);
			fputs("\"/>\n", fp);
		} else {
			fputs("    <system-out>warning: ", fp);
			xml_text(fp, c->detail);
			fputs("</system-out>\n", fp);
		}
		fputs("  </testcase>\n", fp);
	}
	fputs("</testsuite>\n", fp);
	if (fclose(fp) != 0) {
		fprintf(err, "orchd: error: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

int orchd_exttest_run(const struct orchd_exttest_opts *o, FILE *out, FILE *err)
{
	struct tester t;
	size_t counts[4] = {0};
	int ret = -1;

	memset(&t, 0, sizeof(t));
	t.o = o;
	t.out = out;
	t.grace_ms = o->grace_ms > 0 ? o->grace_ms : 10000;
	t.secrets = json_object_new_array();
	signal(SIGPIPE, SIG_IGN);
	if (find_exe(&t, err) < 0 || load_config(&t, err) < 0)
		goto out;
	fprintf(out, "testing %s (type %s) against PROTOCOL.md\n", t.exe, t.type);
	check_manifest(&t);
	if (check_hello(&t) == 0) {
		check_ranges(&t);
		check_describe(&t);
		check_validate(&t);
		check_lifecycle(&t);
		check_cancel(&t);
		check_blank_lines(&t);
		check_bad_input(&t, "garbage instead of the action", "this is not JSON {");
		check_bad_input(&t, "an unknown message type",
				"{\"type\":\"orchd_ext_test_bogus\"}");
	}
	check_overall(&t);
	for (size_t i = 0; i < t.nchecks; i++)
		counts[t.checks[i].v]++;
	fprintf(out, "%zu passed, %zu failed, %zu warnings, %zu skipped\n", counts[V_PASS],
		counts[V_FAIL], counts[V_WARN], counts[V_SKIP]);
	ret = counts[V_FAIL] ? 1 : 0;
	if (o->junit && write_junit(&t, o->junit, err) < 0)
		ret = -1;
out:
	for (size_t i = 0; i < t.nchecks; i++) {
		free(t.checks[i].name);
		free(t.checks[i].section);
		free(t.checks[i].detail);
	}
	free(t.checks);
	free(t.exe);
	free(t.type);
	free(t.dir);
	free(t.pipeline_dir);
	for (size_t i = 0; i < t.nenv; i++)
		free(t.env[i]);
	free(t.env);
	free(t.nonproto_example);
	json_object_put(t.config);
	json_object_put(t.hello);
	json_object_put(t.secrets);
	op_buf_release(&t.proto_errors);
	op_buf_release(&t.said);
	op_buf_release(&t.exits);
	return ret;
}
