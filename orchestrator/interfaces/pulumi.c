/*
 * pulumi: the Pulumi state engine.  See pulumi.h and interfaces/PULUMI.md.
 *
 * Layout under the state directory (made absolute at open):
 *
 *   STATE_DIR/lock, lock.info       the pipeline lock (the local engine's)
 *   STATE_DIR/pulumi-home/          PULUMI_HOME (workspace, no plugins)
 *   STATE_DIR/pulumi-backend/       the default file:// backend
 *   STATE_DIR/pulumi-work/project/  Pulumi.yaml naming the project, the
 *                                   cwd of every command but `up`
 *   STATE_DIR/pulumi-work/up-XXXXXX/  the program of one write (0700),
 *                                   removed when the write ends
 *
 * A record is the stack's outputs:
 *   KEY            one per orchd output: a string value as itself, any
 *                  other JSON value as its JSON text; fn::secret if secret
 *   __orchd_state  the state as JSON text (fn::secret if state_secret);
 *                  absent when there is no state
 *   __orchd_meta   JSON text, never secret: {"format":"orchd-pulumi",
 *                  "version":1, "outputs":{KEY:{"secret":B,"json":B}},
 *                  "state":B, "state_secret":B, "config_hash", "inputs_hash",
 *                  "last":{...}}
 * Leaves are all strings, so Pulumi YAML sees no fn:: keys of ours; every
 * "$" is doubled, which Pulumi YAML reads back as one "$" (no ${...}
 * interpolation).
 */
#include "interfaces/pulumi.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto.h"
#include "interfaces/local.h"
#include "orchd_protocol.h"
#include "cache.h"
#include "util.h"

#define META_KEY     "__orchd_meta"
#define STATE_KEY    "__orchd_state"
#define RESERVED     "__orchd_"
#define META_FORMAT  "orchd-pulumi"
#define META_VERSION 1
#define PASS_HINT    "(set ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE)"
#define MAX_OUT	     (64L * 1024 * 1024)
#define MAX_ERR	     (1L * 1024 * 1024)
/* The largest record written: read back as JSON strings in JSON, escaped
 * (each '"' and '\\' doubles), it must stay within MAX_OUT. */
#define MAX_RECORD   (MAX_OUT / 2)
#define HISTORY_PAGE 1000
#define ERR_LINES    3
#define NO_STACK     "no stack named"

static char non_interactive[] = "--non-interactive";

struct pulumi {
	char *bin;	   /* absolute path of the pulumi CLI */
	char *dir;	   /* absolute state directory */
	char *home;	   /* dir/pulumi-home */
	char *backend;	   /* backend URL */
	char *backend_dir; /* dir/pulumi-backend when the default, else NULL */
	char *work;	   /* dir/pulumi-work */
	char *projdir;	   /* work/project */
	char *project;
	char *pass; /* NULL when none */
	char **env; /* base environment (no passphrase), NULL-terminated */
	size_t nenv;
	int ready;		   /* directories and project file made */
	struct orchd_engine *lock; /* local engine, used for its lock only */
	/* Reads and writes run on several threads (max_concurrent): mu
	 * guards ready and known. */
	pthread_mutex_t mu;
	/* The stacks of the project (name -> true), listed once with one
	 * `pulumi stack ls`, kept as stacks are made: a stack that is not
	 * there is read without a command, and written with `stack init` +
	 * `up` instead of a failed `up` first.  NULL until listed, or when
	 * the listing failed (then every call asks the CLI, as before). */
	json_object *known;
	int listed, list_failed;
	pthread_cond_t listed_cv;
};

/* The output of one pulumi command. */
struct run {
	struct op_buf out, err;
	int status; /* exit code, 128+signal */
};

static struct pulumi *P(struct orchd_engine *e)
{
	return e->priv;
}

/* --- files ---------------------------------------------------------------- */

static int write_file(const char *path, const char *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t off = 0;

	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	return close(fd);
}

/* The directories and the project file, on first use. */
static int ensure_ready_locked(struct pulumi *p, char *err, size_t errlen)
{
	json_object *o;
	char *path, *tmp;
	const char *s;
	int ret = 0;

	if (p->ready)
		return 0;
	if (orchd_mkdir_p(p->home, 0700, NULL, 0) || orchd_mkdir_p(p->projdir, 0700, NULL, 0) ||
	    (p->backend_dir && orchd_mkdir_p(p->backend_dir, 0700, NULL, 0)))
		return orchd_set_err(err, errlen, "cannot create pulumi directories under %s: %s",
				     p->dir, strerror(errno));
	o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(p->project));
	json_object_object_add(o, "runtime", json_object_new_string("yaml"));
	json_object_object_add(o, "description",
			       json_object_new_string("orchd state (core.engine: pulumi)"));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	path = xasprintf("%s/Pulumi.yaml", p->projdir);
	tmp = xasprintf("%s/.Pulumi.yaml.%ld", p->projdir, (long)getpid());
	/* Renamed into place: a reader in another orchd never sees half. */
	if (write_file(tmp, s, strlen(s), 0600) || rename(tmp, path)) {
		ret = orchd_set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
	}
	json_object_put(o);
	free(path);
	free(tmp);
	if (!ret)
		p->ready = 1;
	return ret;
}

static int ensure_ready(struct pulumi *p, char *err, size_t errlen)
{
	int ret;

	pthread_mutex_lock(&p->mu);
	ret = ensure_ready_locked(p, err, errlen);
	pthread_mutex_unlock(&p->mu);
	return ret;
}

/* --- running pulumi ------------------------------------------------------- */

static void run_init(struct run *r)
{
	op_buf_init(&r->out, MAX_OUT);
	op_buf_init(&r->err, MAX_ERR);
	r->status = -1;
}

static void run_release(struct run *r)
{
	op_buf_release(&r->out);
	op_buf_release(&r->err);
}

/*
 * Run `pulumi ARGS... --non-interactive` in cwd with stdin from /dev/null,
 * in its own process group (a Ctrl-C at the terminal reaches orchd, which
 * lets a write in flight finish), capturing stdout and stderr (poll, so
 * neither pipe can fill up and block the child).  Returns 0 when the
 * command ran (whatever its exit status, in r->status), -1 when it could
 * not be started (a failed exec is told apart from pulumi's own exit 127).
 */
static int run_pulumi(struct pulumi *p, const char *cwd, const char *const *args, struct run *r,
		      char *err, size_t errlen)
{
	struct op_child c = OP_CHILD_INIT;
	size_t nargs = 0, i;
	char **argv, **envp, cerr[OP_ERRMAX];
	int st, ret = -1;
	struct pollfd fds[2];
	char *passenv = NULL;

	while (args[nargs])
		nargs++;
	argv = xcalloc(nargs + 3, sizeof(*argv));
	argv[0] = p->bin;
	for (i = 0; i < nargs; i++)
		argv[i + 1] = (char *)(uintptr_t)args[i];
	argv[nargs + 1] = non_interactive;
	envp = xcalloc(p->nenv + 2, sizeof(*envp));
	memcpy(envp, p->env, p->nenv * sizeof(*envp));
	if (p->pass) {
		passenv = xasprintf("PULUMI_CONFIG_PASSPHRASE=%s", p->pass);
		envp[p->nenv] = passenv;
	}
	c.argv = (const char *const *)(void *)argv;
	c.env = (const char *const *)(void *)envp;
	c.cwd = cwd;
	c.in = OP_CHILD_NULL;
	c.out = OP_CHILD_PIPE;
	c.err = OP_CHILD_PIPE;
	c.flags = OP_CHILD_PGROUP;
	if (op_child_start(&c) < 0) {
		orchd_set_err(err, errlen, "%s", op_child_error(&c, cerr, sizeof(cerr)));
		goto out;
	}
	fds[0].fd = c.out;
	fds[1].fd = c.err;
	fds[0].events = fds[1].events = POLLIN;
	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		char buf[16384];

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (i = 0; i < 2; i++) {
			struct op_buf *sb = i ? &r->err : &r->out;
			ssize_t n;

			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(fds[i].fd, buf, sizeof(buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				continue;
			}
			/* Over the cap the buffer fails (sticky); keep draining. */
			op_buf_add(sb, buf, (size_t)n);
		}
	}
	for (i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	if (op_child_reap(&c, 0, &st, NULL) < 0) {
		orchd_set_err(err, errlen, "cannot wait for %s: %s", p->bin, strerror(errno));
		goto out;
	}
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	/* A capped buffer that overflowed is empty: never parse or quote a
	 * fragment of it. */
	if (op_buf_failed(&r->out)) {
		orchd_set_err(err, errlen, "pulumi %s: output larger than %ld MiB", args[0],
			      MAX_OUT >> 20);
		goto out;
	}
	if (op_buf_failed(&r->err)) {
		op_buf_reset(&r->err);
		op_buf_addf(&r->err, "error: its stderr was larger than %ld MiB\n", MAX_ERR >> 20);
	}
	ret = 0;
out:
	if (passenv)
		orchd_crypto_free_secret(passenv, strlen(passenv));
	free(envp);
	free(argv);
	return ret;
}

/* Append up to max of the last lines of sb (only those starting with
 * "error: " when errors_only) to msg, oldest first, "error: " dropped. */
static size_t last_lines(const struct op_buf *sb, int errors_only, size_t max, struct op_buf *msg)
{
	const char *s = orchd_buf_str(sb), *end = s + sb->len, *lines[ERR_LINES];
	size_t lens[ERR_LINES], n = 0, i;

	while (end > s && n < max && n < ERR_LINES) {
		const char *e = end, *b, *p;

		while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' '))
			e--;
		if (e == s)
			break;
		b = e;
		while (b > s && b[-1] != '\n')
			b--;
		end = b;
		for (p = b; p < e && (*p == ' ' || *p == '\t'); p++)
			;
		if (errors_only && ((size_t)(e - p) < 7 || strncmp(p, "error: ", 7)))
			continue;
		lines[n] = p;
		lens[n] = (size_t)(e - p);
		n++;
	}
	for (i = n; i-- > 0;) {
		/* cppcheck-suppress uninitvar ; lines[0..n) are set above */
		const char *l = lines[i];
		/* cppcheck-suppress uninitvar */
		size_t len = lens[i];

		if (len >= 7 && !strncmp(l, "error: ", 7)) {
			l += 7;
			len -= 7;
		}
		if (msg->len)
			op_buf_addstr(msg, "; ");
		op_buf_add(msg, l, len);
	}
	return n;
}

/*
 * "pulumi stack STACK: MESSAGE": pulumi's last "error: " lines (stderr,
 * then the diagnostics of stdout), else the last lines of its stderr.
 */
static int cli_err(const char *stack, const struct run *r, char *err, size_t errlen)
{
	struct op_buf msg = OP_BUF_INIT;

	if (!last_lines(&r->err, 1, ERR_LINES, &msg) && !last_lines(&r->out, 1, ERR_LINES, &msg))
		last_lines(r->err.len ? &r->err : &r->out, 0, ERR_LINES, &msg);
	if (!msg.len)
		op_buf_addf(&msg, "pulumi exited with status %d and no message", r->status);
	orchd_set_err(err, errlen, "pulumi stack %s: %s", stack, orchd_buf_str(&msg));
	op_buf_release(&msg);
	return -1;
}

static int no_such_stack(const struct run *r)
{
	return r->status && strstr(orchd_buf_str(&r->err), NO_STACK);
}

static json_object *parse_out(const struct run *r)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, orchd_buf_str(&r->out), (int)r->out.len);

	json_tokener_free(tok);
	return o;
}

/* --- record <-> program --------------------------------------------------- */

/* A Pulumi YAML string leaf: "$" doubled, wrapped in fn::secret if secret. */
static json_object *leaf(const char *s, int secret)
{
	struct op_buf sb = OP_BUF_INIT;
	json_object *v, *w;

	for (; *s; s++) {
		if (*s == '$')
			op_buf_addch(&sb, '$');
		op_buf_addch(&sb, *s);
	}
	v = json_object_new_string_len(orchd_buf_str(&sb), (int)sb.len);
	op_buf_release(&sb);
	if (!secret)
		return v;
	w = json_object_new_object();
	json_object_object_add(w, "fn::secret", v);
	return w;
}

static const char *json_text(json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Shape, reserved names and passphrase: checked before anything runs. */
static int precheck(struct pulumi *p, const char *stack, const struct orchd_stack_record *rec,
		    int *masked, char *err, size_t errlen)
{
	*masked = rec->state_masked && !rec->state;
	if (!orchd_stack_name_ok(stack))
		return orchd_set_err(err, errlen, "invalid stack name '%s'", stack ? stack : "");
	if (rec->outputs && !json_object_is_type(rec->outputs, json_type_object))
		return orchd_set_err(err, errlen, "stack %s: outputs must be an object", stack);
	if (rec->state_secret && rec->state && !rec->state_masked && !p->pass)
		return orchd_set_err(
			err, errlen,
			"stack %s: state is secret and no passphrase is set " PASS_HINT, stack);
	if (rec->outputs) {
		json_object_object_foreach(rec->outputs, k, v)
		{
			if (!strncmp(k, RESERVED, strlen(RESERVED)))
				return orchd_set_err(
					err, errlen,
					"stack %s: output name '%s' is reserved by the "
					"pulumi engine",
					stack, k);
			if (!json_object_is_type(v, json_type_object))
				return orchd_set_err(
					err, errlen,
					"stack %s: output '%s' must be {\"value\": ..., "
					"\"secret\": ...}",
					stack, k);
			if (op_get_bool(v, "masked", false)) {
				*masked = 1;
				continue;
			}
			if (op_get_bool(v, "secret", false) && !p->pass)
				return orchd_set_err(
					err, errlen,
					"stack %s: output '%s' is secret and no passphrase "
					"is set " PASS_HINT,
					stack, k);
		}
	}
	if (!p->pass)
		return orchd_set_err(err, errlen,
				     "stack %s: the pulumi engine needs a passphrase to write a "
				     "stack " PASS_HINT,
				     stack);
	return 0;
}

/*
 * The Pulumi YAML program of rec.  old: the stack's current outputs read
 * with --show-secrets (NULL if none), the source of masked values.
 */
static json_object *record_program(struct pulumi *p, const char *stack,
				   const struct orchd_stack_record *rec, json_object *old,
				   char *err, size_t errlen)
{
	json_object *prog = json_object_new_object(), *outs = json_object_new_object();
	json_object *meta = json_object_new_object(), *mouts = json_object_new_object();
	json_object *oldmeta = NULL;
	const char *s;
	int state_secret = rec->state_secret;

	if (old && (s = op_get_str(old, META_KEY)))
		oldmeta = json_tokener_parse(s);
	json_object_object_add(prog, "name", json_object_new_string(p->project));
	json_object_object_add(prog, "runtime", json_object_new_string("yaml"));
	json_object_object_add(prog, "outputs", outs);
	orchd_json_add_str(meta, "format", META_FORMAT);
	json_object_object_add(meta, "version", json_object_new_int(META_VERSION));
	orchd_json_add_str(meta, "stack", stack);
	json_object_object_add(meta, "outputs", mouts);
	if (rec->state_masked && !rec->state) {
		/* Carried over as stored (still secret). */
		if (!(s = op_get_str(old, STATE_KEY))) {
			orchd_set_err(err, errlen, "stack %s: state is masked and no longer stored",
				      stack);
			goto fail;
		}
		json_object_object_add(outs, STATE_KEY, leaf(s, 1));
		state_secret = 1;
	} else if (rec->state) {
		json_object_object_add(outs, STATE_KEY, leaf(json_text(rec->state), state_secret));
	}
	json_object_object_add(
		meta, "state",
		json_object_new_boolean(json_object_object_get_ex(outs, STATE_KEY, NULL)));
	json_object_object_add(meta, "state_secret", json_object_new_boolean(state_secret));
	if (rec->outputs) {
		json_object_object_foreach(rec->outputs, k, ent)
		{
			json_object *m = json_object_new_object(), *val = NULL;
			int secret = op_get_bool(ent, "secret", false), is_json;

			json_object_object_add(mouts, k, m);
			if (op_get_bool(ent, "masked", false)) {
				json_object *om = NULL, *oo = NULL;

				if (oldmeta && json_object_object_get_ex(oldmeta, "outputs", &oo))
					json_object_object_get_ex(oo, k, &om);
				if (!om || !op_get_bool(om, "secret", false) ||
				    !(s = op_get_str(old, k))) {
					orchd_set_err(
						err, errlen,
						"stack %s: output '%s' is masked and no longer "
						"stored",
						stack, k);
					goto fail;
				}
				json_object_object_add(m, "secret", json_object_new_boolean(1));
				json_object_object_add(
					m, "json",
					json_object_new_boolean(op_get_bool(om, "json", false)));
				json_object_object_add(outs, k, leaf(s, 1));
				continue;
			}
			json_object_object_get_ex(ent, "value", &val);
			is_json = !json_object_is_type(val, json_type_string);
			json_object_object_add(m, "secret", json_object_new_boolean(secret));
			json_object_object_add(m, "json", json_object_new_boolean(is_json));
			json_object_object_add(
				outs, k,
				leaf(is_json ? json_text(val) : json_object_get_string(val),
				     secret));
		}
	}
	orchd_record_meta_to_json(rec, meta);
	json_object_object_add(outs, META_KEY, leaf(json_text(meta), 0));
	json_object_put(meta);
	json_object_put(oldmeta);
	return prog;
fail:
	json_object_put(meta);
	json_object_put(oldmeta);
	json_object_put(prog);
	return NULL;
}

/* Fill rec from the outputs of `pulumi stack output --json`. */
static int outputs_to_record(struct pulumi *p, const char *stack, json_object *o,
			     struct orchd_stack_record *rec, char *err, size_t errlen)
{
	json_object *meta, *mouts = NULL;
	const char *s = op_get_str(o, META_KEY);

	meta = s ? json_tokener_parse(s) : NULL;
	if (!meta || !json_object_is_type(meta, json_type_object) ||
	    strcmp(op_get_str(meta, "format") ? op_get_str(meta, "format") : "", META_FORMAT)) {
		json_object_put(meta);
		return orchd_set_err(err, errlen,
				     "pulumi stack %s: not an orchd stack (no valid %s output)",
				     stack, META_KEY);
	}
	if (op_get_int(meta, "version", 0) != META_VERSION) {
		orchd_set_err(err, errlen,
			      "pulumi stack %s: record version %lld, this orchd reads version %d",
			      stack, (long long)op_get_int(meta, "version", 0), META_VERSION);
		goto fail;
	}
	rec->state_secret = op_get_bool(meta, "state_secret", false);
	if (op_get_bool(meta, "state", false)) {
		if (rec->state_secret && !p->pass) {
			rec->state_masked = 1;
			rec->masked++;
		} else if (!(s = op_get_str(o, STATE_KEY)) ||
			   (!(rec->state = json_tokener_parse(s)) && strcmp(s, "null"))) {
			orchd_set_err(err, errlen, "pulumi stack %s: %s is missing or not JSON",
				      stack, STATE_KEY);
			goto fail;
		}
	}
	json_object_object_get_ex(meta, "outputs", &mouts);
	if (mouts && json_object_is_type(mouts, json_type_object)) {
		json_object_object_foreach(mouts, k, m)
		{
			json_object *val;
			int secret = op_get_bool(m, "secret", false);

			if (secret && !p->pass) {
				json_object *x = json_object_new_object();

				json_object_object_add(x, "value", NULL);
				json_object_object_add(x, "secret", json_object_new_boolean(1));
				json_object_object_add(x, "masked", json_object_new_boolean(1));
				json_object_object_add(rec->outputs, k, x);
				rec->masked++;
				continue;
			}
			if (!(s = op_get_str(o, k))) {
				orchd_set_err(err, errlen,
					      "pulumi stack %s: output '%s' is missing", stack, k);
				goto fail;
			}
			if (!op_get_bool(m, "json", false)) {
				val = json_object_new_string(s);
			} else if (!(val = json_tokener_parse(s)) && strcmp(s, "null")) {
				orchd_set_err(err, errlen,
					      "pulumi stack %s: output '%s' is not JSON", stack, k);
				goto fail;
			}
			orchd_stack_record_set_output(rec, k, val, secret);
		}
	}
	orchd_record_meta_from_json(meta, rec);
	json_object_put(meta);
	return 0;
fail:
	json_object_put(meta);
	return -1;
}

/* --- operations ----------------------------------------------------------- */

/* Run a pulumi command on stack: 0 ok, 1 no such stack, -1 (err set). */
static int run_stack_cmd(struct pulumi *p, const char *stack, const char *const *args,
			 struct run *r, char *err, size_t errlen)
{
	if (run_pulumi(p, p->projdir, args, r, err, errlen))
		return -1;
	if (no_such_stack(r))
		return 1;
	if (r->status) {
		cli_err(stack, r, err, errlen);
		return -1;
	}
	return 0;
}

/* The stack's outputs (show: with secrets in clear): 0, 1 missing, -1. */
static int stack_outputs(struct pulumi *p, const char *stack, int show, json_object **out,
			 char *err, size_t errlen)
{
	const char *args[] = {"stack",	 "output", "--json",
			      "--stack", stack,	   show ? "--show-secrets" : NULL,
			      NULL};
	struct run r;
	int ret = -1;

	*out = NULL;
	if (ensure_ready(p, err, errlen))
		return -1;
	run_init(&r);
	if ((ret = run_stack_cmd(p, stack, args, &r, err, errlen)))
		goto out;
	ret = -1;
	*out = parse_out(&r);
	if (!*out || !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		orchd_set_err(err, errlen, "pulumi stack %s: stack output is not a JSON object",
			      stack);
		goto out;
	}
	ret = 0;
out:
	run_release(&r);
	return ret;
}

static int stack_names(struct pulumi *p, json_object **arr, char *err, size_t errlen)
{
	static const char *const args[] = {"stack", "ls", "--json", NULL};
	struct run r;
	int ret = -1;

	*arr = NULL;
	if (ensure_ready(p, err, errlen))
		return -1;
	run_init(&r);
	if (run_pulumi(p, p->projdir, args, &r, err, errlen))
		goto out;
	if (r.status) {
		cli_err("ls", &r, err, errlen); /* "pulumi stack ls: ..." */
		goto out;
	}
	*arr = parse_out(&r);
	if (!*arr || !json_object_is_type(*arr, json_type_array)) {
		json_object_put(*arr);
		*arr = NULL;
		orchd_set_err(err, errlen, "pulumi stack ls: output is not a JSON array");
		goto out;
	}
	ret = 0;
out:
	run_release(&r);
	return ret;
}

/*
 * Does the stack exist?  1 yes, 0 no, -1 not known (the listing failed:
 * ask the CLI).  The first call lists the project's stacks, once; the
 * others wait for it.
 */
static int stack_exists(struct pulumi *p, const char *stack)
{
	int ret = -1;

	pthread_mutex_lock(&p->mu);
	if (!p->listed) {
		json_object *arr;
		char err[256];

		p->listed = 1;
		pthread_mutex_unlock(&p->mu);
		/* the CLI call without the lock: ensure_ready takes it */
		if (stack_names(p, &arr, err, sizeof(err)) == 0) {
			json_object *set = json_object_new_object();

			for (size_t i = 0; i < json_object_array_length(arr); i++) {
				const char *n =
					op_get_str(json_object_array_get_idx(arr, i), "name");

				if (n)
					json_object_object_add(set, n, json_object_new_boolean(1));
			}
			json_object_put(arr);
			pthread_mutex_lock(&p->mu);
			p->known = set;
			pthread_cond_broadcast(&p->listed_cv);
		} else {
			pthread_mutex_lock(&p->mu);
			p->list_failed = 1;
			pthread_cond_broadcast(&p->listed_cv);
		}
	}
	while (!p->known && !p->list_failed)
		pthread_cond_wait(&p->listed_cv, &p->mu);
	if (p->known)
		ret = json_object_object_get_ex(p->known, stack, NULL);
	pthread_mutex_unlock(&p->mu);
	return ret;
}

/* The stack exists now (made by this engine). */
static void stack_made(struct pulumi *p, const char *stack)
{
	pthread_mutex_lock(&p->mu);
	if (p->known)
		json_object_object_add(p->known, stack, json_object_new_boolean(1));
	pthread_mutex_unlock(&p->mu);
}

static int stack_init(struct pulumi *p, const char *cwd, const char *stack, char *err,
		      size_t errlen)
{
	const char *args[] = {"stack", "init", stack, NULL};
	struct run r;
	int ret;

	run_init(&r);
	ret = run_pulumi(p, cwd, args, &r, err, errlen);
	if (!ret && r.status)
		ret = cli_err(stack, &r, err, errlen);
	run_release(&r);
	if (!ret)
		stack_made(p, stack);
	return ret;
}

static int pulumi_select(struct orchd_engine *e, const char *stack, int create, char *err,
			 size_t errlen)
{
	struct pulumi *p = P(e);
	json_object *arr;
	size_t i;
	int found = 0;

	if (!orchd_stack_name_ok(stack))
		return orchd_set_err(err, errlen, "invalid stack name '%s'", stack ? stack : "");
	if (stack_names(p, &arr, err, errlen))
		return -1;
	for (i = 0; i < json_object_array_length(arr); i++) {
		const char *n = op_get_str(json_object_array_get_idx(arr, i), "name");

		if (n && !strcmp(n, stack))
			found = 1;
	}
	json_object_put(arr);
	if (found)
		return 0;
	if (!create)
		return 1;
	if (!p->pass)
		return orchd_set_err(err, errlen,
				     "stack %s: the pulumi engine needs a passphrase to create a "
				     "stack " PASS_HINT,
				     stack);
	return stack_init(p, p->projdir, stack, err, errlen);
}

/* Every write needs the passphrase: a run without it fails here, before
 * any extension runs, rather than at its first write. */
static int pulumi_lock(struct orchd_engine *e, const struct orchd_lock_request *req, char *err,
		       size_t errlen)
{
	if (!P(e)->pass)
		return orchd_set_err(err, errlen,
				     "state directory %s: the pulumi engine needs a passphrase "
				     "to write stacks " PASS_HINT,
				     e->state_dir);
	return orchd_engine_lock(P(e)->lock, req, err, errlen);
}

static int pulumi_unlock(struct orchd_engine *e, char *err, size_t errlen)
{
	return orchd_engine_unlock(P(e)->lock, err, errlen);
}

static int pulumi_read(struct orchd_engine *e, const char *stack, struct orchd_stack_record *rec,
		       char *err, size_t errlen)
{
	struct pulumi *p = P(e);
	json_object *o;
	int r;

	if (!orchd_stack_name_ok(stack))
		return orchd_set_err(err, errlen, "invalid stack name '%s'", stack ? stack : "");
	if (stack_exists(p, stack) == 0)
		return 1; /* listed: not there, no command needed */
	r = stack_outputs(p, stack, p->pass != NULL, &o, err, errlen);
	if (r)
		return r;
	/* A stack created (select) but never written holds no record yet. */
	if (!json_object_object_get_ex(o, META_KEY, NULL)) {
		json_object_put(o);
		return 1;
	}
	r = outputs_to_record(p, stack, o, rec, err, errlen);
	if (r) {
		orchd_stack_record_release(rec);
		orchd_stack_record_init(rec);
	}
	json_object_put(o);
	return r;
}

/* s as one word of the update message: whitespace becomes '_'. */
static void msg_word_raw(struct op_buf *sb, const char *s)
{
	for (; *s; s++)
		op_buf_addch(sb, (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') ? '_' : *s);
}

/* One word of the update message after a space, "-" for none. */
static void msg_word(struct op_buf *sb, const char *s)
{
	op_buf_addch(sb, ' ');
	if (!s || !*s)
		op_buf_addch(sb, '-');
	else
		msg_word_raw(sb, s);
}

/*
 * An update's message: "orchd RUN ACTION STATUS ATTEMPTS STARTED ENDED",
 * then what is known of cpu=MS rss=KIB and the CI build, ci.KEY=VALUE
 * (whitespace in a value becomes '_').  A reader takes the seven words
 * and the KEY=VALUE words it knows.
 */
static void history_message(struct op_buf *msg, const char *run_id, const char *action,
			    const char *status, int attempts, long long started, long long ended,
			    const struct orchd_action_meta *meta)
{
	op_buf_addstr(msg, "orchd");
	msg_word(msg, run_id);
	msg_word(msg, action);
	msg_word(msg, status);
	op_buf_addf(msg, " %d %lld %lld", attempts, started, ended);
	if (meta->cpu_ms)
		op_buf_addf(msg, " cpu=%lld", (long long)meta->cpu_ms);
	if (meta->max_rss_kb)
		op_buf_addf(msg, " rss=%ld", meta->max_rss_kb);
#define CI_WORD(field, key)                         \
	if (meta->ci.field) {                       \
		op_buf_addstr(msg, " ci." key "="); \
		msg_word_raw(msg, meta->ci.field);  \
	}
	ORCHD_CI_FIELDS(CI_WORD)
#undef CI_WORD
}

static int pulumi_write(struct orchd_engine *e, const char *stack,
			const struct orchd_stack_record *rec, char *err, size_t errlen)
{
	struct pulumi *p = P(e);
	json_object *old = NULL, *prog = NULL;
	struct op_buf msg = OP_BUF_INIT;
	char *dir = NULL, *path = NULL;
	const char *s;
	int masked, ret = -1, attempt;
	struct run r;

	run_init(&r);
	if (precheck(p, stack, rec, &masked, err, errlen) || ensure_ready(p, err, errlen))
		goto out;
	if (masked && stack_outputs(p, stack, 1, &old, err, errlen) < 0)
		goto out;
	prog = record_program(p, stack, rec, old, err, errlen);
	if (!prog)
		goto out;
	dir = xasprintf("%s/up-XXXXXX", p->work);
	if (!mkdtemp(dir)) {
		orchd_set_err(err, errlen, "stack %s: cannot create a directory in %s: %s", stack,
			      p->work, strerror(errno));
		free(dir);
		dir = NULL;
		goto out;
	}
	path = xasprintf("%s/Pulumi.yaml", dir);
	s = json_object_to_json_string_ext(prog,
					   JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(s) > MAX_RECORD) {
		/* pulumi stack output could not give it back */
		orchd_set_err(err, errlen,
			      "stack %s: the record is %zu bytes, more than the pulumi engine "
			      "stores (at most %ld MiB): keep large data in files",
			      stack, strlen(s), MAX_RECORD >> 20);
		goto out;
	}
	if (write_file(path, s, strlen(s), 0600)) {
		orchd_set_err(err, errlen, "stack %s: cannot write %s: %s", stack, path,
			      strerror(errno));
		goto out;
	}
	history_message(&msg, rec->last.run_id, rec->last.action, rec->last.status,
			rec->last.attempts, rec->last.started_at, rec->last.ended_at,
			&rec->last.meta);
	/* a stack known to be missing is made first: one `up`, not a failed
	 * one, then `stack init`, then the `up` again */
	if (stack_exists(p, stack) == 0 && stack_init(p, dir, stack, err, errlen))
		goto out;
	for (attempt = 0; attempt < 2; attempt++) {
		const char *args[] = {"up",
				      "--yes",
				      "--skip-preview",
				      "--stack",
				      stack,
				      "--message",
				      orchd_buf_str(&msg),
				      "--color",
				      "never",
				      "--suppress-outputs",
				      "--suppress-progress",
				      NULL};

		run_release(&r);
		run_init(&r);
		if (run_pulumi(p, dir, args, &r, err, errlen))
			goto out;
		if (!r.status)
			break;
		if (attempt || !no_such_stack(&r)) {
			cli_err(stack, &r, err, errlen);
			goto out;
		}
		/* First write of this stack: create it, then update. */
		if (stack_init(p, dir, stack, err, errlen))
			goto out;
	}
	ret = 0;
out:
	if (dir) {
		/* The program holds secrets in clear: never leave it behind. */
		if (path)
			unlink(path);
		op_rmtree(dir);
	}
	free(dir);
	free(path);
	json_object_put(prog);
	json_object_put(old);
	op_buf_release(&msg);
	run_release(&r);
	return ret;
}

/*
 * The record goes, the stack and its update history stay (the audit
 * trail): `pulumi destroy` with h as its message empties the stack (its
 * outputs, the record, go with the stack resource), and history_read()
 * shows that update as the destroy.
 */
static int pulumi_remove(struct orchd_engine *e, const char *stack,
			 const struct orchd_history_entry *h, char *err, size_t errlen)
{
	struct pulumi *p = P(e);
	struct op_buf msg = OP_BUF_INIT;
	json_object *o = NULL;
	struct run r;
	int ret;

	if (!orchd_stack_name_ok(stack))
		return orchd_set_err(err, errlen, "invalid stack name '%s'", stack ? stack : "");
	if (ensure_ready(p, err, errlen))
		return -1;
	/* no stack, or a stack without a record: nothing to remove */
	ret = stack_outputs(p, stack, 0, &o, err, errlen);
	if (!ret && !json_object_object_get_ex(o, META_KEY, NULL))
		ret = 1;
	json_object_put(o);
	if (ret)
		return ret;
	if (h)
		history_message(&msg, h->run_id, h->action, h->status, h->attempts, h->started_at,
				h->ended_at, &h->meta);
	else
		op_buf_addstr(&msg, "orchd remove");
	{
		const char *destroy[] = {"destroy",
					 "--yes",
					 "--skip-preview",
					 "--stack",
					 stack,
					 "--message",
					 orchd_buf_str(&msg),
					 "--color",
					 "never",
					 "--suppress-progress",
					 NULL};

		run_init(&r);
		ret = run_stack_cmd(p, stack, destroy, &r, err, errlen);
	}
	op_buf_release(&msg);
	run_release(&r);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int pulumi_list(struct orchd_engine *e, char ***names, size_t *n, char *err, size_t errlen)
{
	struct pulumi *p = P(e);
	json_object *arr;
	size_t i, nr = 0, alloc = 0;
	char **v = NULL;

	*names = NULL;
	*n = 0;
	if (stack_names(p, &arr, err, errlen))
		return -1;
	for (i = 0; i < json_object_array_length(arr); i++) {
		json_object *st = json_object_array_get_idx(arr, i);
		const char *s = op_get_str(st, "name");

		/* a destroyed stack (kept for its history) holds no resource,
		 * so no record */
		if (op_get_int(st, "resourceCount", 0) <= 0)
			continue;
		/* Cloud backends may show ORG/PROJECT/STACK. */
		if (s && strrchr(s, '/'))
			s = strrchr(s, '/') + 1;
		if (!s || !orchd_stack_name_ok(s))
			continue;
		ALLOC_GROW(v, nr + 1, alloc);
		v[nr++] = xstrdup(s);
	}
	json_object_put(arr);
	if (nr)
		qsort(v, nr, sizeof(*v), cmp_str);
	*names = v;
	*n = nr;
	return 0;
}

/* Written by write()'s update message; see PULUMI.md. */
static int pulumi_history_append(struct orchd_engine *e, const char *stack,
				 const struct orchd_history_entry *h, char *err, size_t errlen)
{
	(void)e;
	(void)h;
	if (!orchd_stack_name_ok(stack))
		return orchd_set_err(err, errlen, "invalid stack name '%s'", stack ? stack : "");
	return 0;
}

/* "orchd RUN ACTION STATUS ATTEMPTS STARTED ENDED [KEY=VALUE]..." -> h;
 * 0 or -1. */
static int parse_message(const char *m, struct orchd_history_entry *h)
{
	char run[256], action[64], status[64];
	long long started, ended;
	int attempts, end = 0;

	if (!m || sscanf(m, "orchd %255s %63s %63s %d %lld %lld%n", run, action, status, &attempts,
			 &started, &ended, &end) != 6)
		return -1;
	for (const char *w = m + end; *w;) {
		size_t len;

		w += strspn(w, " ");
		len = strcspn(w, " ");
		if (!len)
			break;
		if (!strncmp(w, "cpu=", 4))
			h->meta.cpu_ms = strtoll(w + 4, NULL, 10);
		else if (!strncmp(w, "rss=", 4))
			h->meta.max_rss_kb = strtol(w + 4, NULL, 10);
#define CI_READ(field, key)                                                              \
	else if (!strncmp(w, "ci." key "=", strlen("ci." key "=")) && !h->meta.ci.field) \
		h->meta.ci.field =                                                       \
		xstrndup(w + strlen("ci." key "="), len - strlen("ci." key "="));
		ORCHD_CI_FIELDS(CI_READ)
#undef CI_READ
		w += len;
	}
	h->run_id = strcmp(run, "-") ? xstrdup(run) : NULL;
	h->action = strcmp(action, "-") ? xstrdup(action) : NULL;
	h->status = strcmp(status, "-") ? xstrdup(status) : NULL;
	h->attempts = attempts;
	h->started_at = started;
	h->ended_at = ended;
	return 0;
}

static int pulumi_history_read(struct orchd_engine *e, const char *stack,
			       struct orchd_history_entry **entries, size_t *n, char *err,
			       size_t errlen)
{
	struct pulumi *p = P(e);
	struct orchd_history_entry *v = NULL;
	size_t nr = 0, alloc = 0, i, len;
	char pagebuf[32], sizebuf[32];
	int page, ret = -1;
	struct run r;

	*entries = NULL;
	*n = 0;
	if (!orchd_stack_name_ok(stack))
		return orchd_set_err(err, errlen, "invalid stack name '%s'", stack ? stack : "");
	if (ensure_ready(p, err, errlen))
		return -1;
	run_init(&r);
	snprintf(sizebuf, sizeof(sizebuf), "%d", HISTORY_PAGE);
	for (page = 1;; page++) {
		const char *args[] = {"stack",	     "history", "--json", "--stack", stack,
				      "--page-size", sizebuf,	"--page", pagebuf,   NULL};
		json_object *arr;

		snprintf(pagebuf, sizeof(pagebuf), "%d", page);
		run_release(&r);
		run_init(&r);
		if (run_pulumi(p, p->projdir, args, &r, err, errlen))
			goto out;
		if (no_such_stack(&r))
			break; /* a missing history is an empty one */
		if (r.status) {
			cli_err(stack, &r, err, errlen);
			goto out;
		}
		arr = parse_out(&r);
		if (!arr || !json_object_is_type(arr, json_type_array)) {
			json_object_put(arr);
			orchd_set_err(err, errlen, "pulumi stack %s: history is not a JSON array",
				      stack);
			goto out;
		}
		len = json_object_array_length(arr);
		for (i = 0; i < len; i++) {
			json_object *u = json_object_array_get_idx(arr, i);
			const char *kind = op_get_str(u, "kind");

			/* writes are updates, removals (a destroy) destroys */
			if (!kind || (strcmp(kind, "update") && strcmp(kind, "destroy")))
				continue;
			ALLOC_GROW(v, nr + 1, alloc);
			memset(&v[nr], 0, sizeof(v[nr]));
			if (parse_message(op_get_str(u, "message"), &v[nr]))
				continue; /* not an orchd update */
			nr++;
		}
		json_object_put(arr);
		if (len < HISTORY_PAGE)
			break;
	}
	/* Pulumi lists the newest update first (the file backend leaves
	 * "version" 0, so the order is all there is): reverse it. */
	for (i = 0; i < nr / 2; i++) {
		struct orchd_history_entry t = v[i];

		v[i] = v[nr - 1 - i];
		v[nr - 1 - i] = t;
	}
	*entries = v;
	*n = nr;
	v = NULL;
	nr = 0;
	ret = 0;
out:
	for (i = 0; i < nr; i++)
		orchd_history_entry_release(&v[i]);
	free(v);
	run_release(&r);
	return ret;
}

static void pulumi_close(struct orchd_engine *e)
{
	struct pulumi *p = P(e);
	size_t i;

	orchd_engine_close(p->lock);
	json_object_put(p->known);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->listed_cv);
	if (p->pass)
		orchd_crypto_free_secret(p->pass, strlen(p->pass));
	for (i = 0; i < p->nenv; i++)
		free(p->env[i]);
	free(p->env);
	free(p->bin);
	free(p->dir);
	free(p->home);
	free(p->backend);
	free(p->backend_dir);
	free(p->work);
	free(p->projdir);
	free(p->project);
	free(p);
	free(e->state_dir);
	free(e->pipeline_name);
	free(e);
}

static const struct orchd_engine_ops pulumi_ops = {
	.name = "pulumi",
	.select = pulumi_select,
	.lock = pulumi_lock,
	.unlock = pulumi_unlock,
	.read = pulumi_read,
	.write = pulumi_write,
	.remove = pulumi_remove,
	.list = pulumi_list,
	.history_append = pulumi_history_append,
	.history_read = pulumi_history_read,
	.close = pulumi_close,
	/* each CLI call is a process of its own, most of its time spent
	 * starting: a few at once use the cores */
	.max_concurrent = 4,
};

/* --- open ----------------------------------------------------------------- */

/* The pulumi CLI on PATH, absolute; NULL if none. */
static char *find_pulumi(void)
{
	const char *path = getenv("PATH"), *s, *end;

	for (s = path; s && *s; s = *end ? end + 1 : end) {
		char *cand, *dir;

		end = strchrnul(s, ':');
		dir = end == s ? xstrdup(".") : xstrndup(s, (size_t)(end - s));
		cand = xasprintf("%s/pulumi", dir);
		free(dir);
		if (!access(cand, X_OK)) {
			if (cand[0] != '/') {
				char *abs = realpath(cand, NULL);

				free(cand);
				cand = abs;
			}
			if (cand)
				return cand;
		}
		free(cand);
	}
	return NULL;
}

/* The environment of every pulumi command, minus the passphrase. */
static void build_env(struct pulumi *p)
{
	static const char *const drop[] = {
		"PULUMI_HOME=",
		"PULUMI_BACKEND_URL=",
		"PULUMI_CONFIG_PASSPHRASE=",
		"PULUMI_CONFIG_PASSPHRASE_FILE=",
		"PULUMI_SKIP_UPDATE_CHECK=",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=",
	};
	size_t alloc = 0, i;
	char **ep;

	for (ep = environ; ep && *ep; ep++) {
		int skip = 0;

		for (i = 0; i < ARRAY_SIZE(drop); i++)
			if (!strncmp(*ep, drop[i], strlen(drop[i])))
				skip = 1;
		if (skip)
			continue;
		ALLOC_GROW(p->env, p->nenv + 1, alloc);
		p->env[p->nenv++] = xstrdup(*ep);
	}
	ALLOC_GROW(p->env, p->nenv + 5, alloc);
	p->env[p->nenv++] = xasprintf("PULUMI_HOME=%s", p->home);
	p->env[p->nenv++] = xasprintf("PULUMI_BACKEND_URL=%s", p->backend);
	p->env[p->nenv++] = xstrdup("PULUMI_SKIP_UPDATE_CHECK=true");
	p->env[p->nenv++] = xstrdup("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true");
	p->env[p->nenv] = NULL;
}

int orchd_pulumi_engine_open(const struct orchd_engine_config *cfg, const char *state_dir,
			     const char *pipeline_name, struct orchd_engine **out, char *err,
			     size_t errlen)
{
	const char *project = cfg && cfg->project ? cfg->project : pipeline_name;
	struct orchd_engine *e;
	struct pulumi *p;
	char *bin, *pass = NULL, cwd[4096];

	*out = NULL;
	if (!project || !orchd_stack_name_ok(project))
		return orchd_set_err(err, errlen, "engine 'pulumi': invalid project name '%s'",
				     project ? project : "");
	if (!state_dir || !*state_dir)
		return orchd_set_err(err, errlen, "engine 'pulumi': no state directory");
	if (state_dir[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return orchd_set_err(err, errlen,
				     "engine 'pulumi': cannot get the current directory: %s",
				     strerror(errno));
	bin = find_pulumi();
	if (!bin)
		return orchd_set_err(
			err, errlen,
			"engine 'pulumi': the pulumi CLI is not on PATH (install it; in "
			"a source tree, run make tools)");
	if (orchd_crypto_passphrase(&pass, err, errlen)) {
		free(bin);
		return -1;
	}
	p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->listed_cv, NULL);
	p->bin = bin;
	p->pass = pass;
	p->project = xstrdup(project);
	p->dir = state_dir[0] == '/' ? xstrdup(state_dir) : xasprintf("%s/%s", cwd, state_dir);
	p->home = xasprintf("%s/pulumi-home", p->dir);
	p->work = xasprintf("%s/pulumi-work", p->dir);
	p->projdir = xasprintf("%s/project", p->work);
	if (cfg && cfg->backend && *cfg->backend) {
		p->backend = xstrdup(cfg->backend);
	} else {
		p->backend_dir = xasprintf("%s/pulumi-backend", p->dir);
		p->backend = xasprintf("file://%s", p->backend_dir);
	}
	build_env(p);
	e = xcalloc(1, sizeof(*e));
	e->ops = &pulumi_ops;
	e->priv = p;
	e->state_dir = xstrdup(state_dir);
	e->pipeline_name = xstrdup(pipeline_name ? pipeline_name : "");
	if (orchd_local_engine_open(state_dir, &p->lock, err, errlen)) {
		pulumi_close(e);
		return -1;
	}
	*out = e;
	return 0;
}
