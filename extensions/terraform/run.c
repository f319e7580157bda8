/*
 * run: the tool runner (see run.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orchd/orchd_protocol.h>

#include "models.h"
#include "run.h"

#define TF_CAPTURE_MAX (64 * 1024 * 1024)
#define TF_TAIL_MAX    65536
#define TF_SUMMARY_MAX 700

/* Append a line to a bounded tail buffer (a failed append empties it, and
 * it starts again empty: a tail is best effort). */
static void tail_add(struct op_buf *sb, const char *line, size_t len)
{
	if (sb->len && sb->len + len + 1 > TF_TAIL_MAX) {
		const char *nl;
		size_t drop = sb->len / 2;

		nl = memchr(sb->buf + drop, '\n', sb->len - drop);
		op_buf_consume(sb, nl ? (size_t)(nl - sb->buf) + 1 : sb->len);
	}
	if (len + 1 > TF_TAIL_MAX)
		len = TF_TAIL_MAX - 1;
	if (op_buf_add(sb, line, len) < 0 || op_buf_addch(sb, '\n') < 0)
		op_buf_init(sb, 0);
}

struct hook {
	struct tf_run *r;
	bool capture;
};

/*
 * Each line: kept in the stream's tail; empty lines not logged; tofu's
 * error diagnostics (stderr lines starting "Error: ") logged at error.
 */
static void on_line(void *arg, int stream, char *line, size_t len, const char **level)
{
	struct hook *h = arg;

	if (stream == 1 && h->capture)
		return;
	if (!*line)
		*level = NULL;
	else if (stream == 2 && *level && !strcmp(*level, "warning") &&
		 !strncmp(line, "Error: ", 7))
		*level = "error";
	tail_add(stream == 1 ? &h->r->outtail : &h->r->err, line, len);
}

int tf_run_tool(struct op_ext *ext, const struct tf_run_opts *o, struct tf_run *r)
{
	/* cppcheck-suppress ctuuninitvar ; only the pointer is kept */
	struct hook h = {r, o->capture};
	struct op_cmd_opts co = {
		.argv = o->argv,
		.env = o->env,
		.cwd = o->cwd,
		.out = {o->capture ? OP_CMD_CAPTURE : OP_CMD_LOG, "info", TF_CAPTURE_MAX},
		.err = {OP_CMD_LOG, o->quiet_stderr ? "debug" : "warning", 0},
		.line_fn = on_line,
		.line_arg = &h,
		.kill_grace_ms = TF_KILL_GRACE_MS,
	};

	memset(r, 0, sizeof(*r));
	op_buf_init(&r->err, 0);
	op_buf_init(&r->outtail, 0);
	return op_cmd_run(ext, &co, &r->res);
}

const char *tf_run_out(const struct tf_run *r)
{
	return r->res.out.buf ? r->res.out.buf : "";
}

void tf_run_release(struct tf_run *r)
{
	op_cmd_result_release(&r->res);
	op_buf_release(&r->err);
	op_buf_release(&r->outtail);
}

bool tf_run_exited(const struct tf_run *r, int code)
{
	return op_cmd_exited(&r->res, code);
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
static int condense_errors(const char *text, struct op_buf *out)
{
	char *copy = tf_must(strdup(text)), *save = NULL, *line;
	bool in_error = false, want_detail = false;
	int count = 0;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (starts(line, "Error: ")) {
			if (count++)
				op_buf_addstr(out, "; ");
			op_buf_addstr(out, line + 7);
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
				op_buf_addstr(out, " at ");
				op_buf_add(out, file, (size_t)(ln - file));
				op_buf_addf(out, ":%d", atoi(ln + 6));
			}
			continue;
		}
		if (line[0] == ' ')
			continue;
		op_buf_addstr(out, want_detail ? ": " : " ");
		want_detail = false;
		op_buf_addstr(out, line);
	}
	free(copy);
	return count;
}

/* The last n non-empty lines of text, joined with " | ". */
static void last_lines(const char *text, int n, struct op_buf *out)
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
				op_buf_addstr(out, " | ");
			op_buf_add(out, q, l);
		}
		q += l + 1;
	}
}

char *tf_run_failure(const struct tf_run *r, const char *what)
{
	struct op_buf sb = OP_BUF_INIT, why = OP_BUF_INIT;
	char sig[48];
	char *s;

	if (r->res.cancelled) {
		op_buf_addf(&sb, "%s: cancelled", what);
	} else if (r->res.error[0]) {
		op_buf_addf(&sb, "%s: %s", what, r->res.error);
	} else if (r->res.out.truncated && op_cmd_exited(&r->res, 0)) {
		/* a captured JSON document cut at the cap cannot be parsed */
		op_buf_addf(&sb, "%s: its output is larger than %d MiB", what,
			    TF_CAPTURE_MAX >> 20);
	} else {
		if (!condense_errors(op_buf_str(&r->err), &why))
			last_lines(op_buf_str(&r->err), 3, &why);
		if (!why.len)
			last_lines(op_buf_str(&r->outtail), 3, &why);
		/* why's appends were not checked: a failure is sticky */
		if (op_buf_failed(&why))
			tf_must(NULL);
		if (r->res.exit_code >= 0)
			op_buf_addf(&sb, "%s failed (exit status %d)", what, r->res.exit_code);
		else
			op_buf_addf(&sb, "%s killed by %s", what,
				    op_signal_text(r->res.term_signal, sig, sizeof(sig)));
		if (why.len)
			op_buf_addf(&sb, ": %s", op_buf_str(&why));
	}
	op_buf_release(&why);
	op_buf_ellipsize(&sb, TF_SUMMARY_MAX);
	/* sb's appends: checked once, by op_buf_detach() */
	s = tf_must(op_buf_detach(&sb, NULL));
	return s;
}
