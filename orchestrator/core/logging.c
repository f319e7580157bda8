/*
 * core/logging: the console (see logging.h).
 */
#include "core/logging.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"
#include "util.h"

static const char *const level_names[] = {"debug", "info", "warning", "error"};
static const char *const source_names[] = {"protocol", "stderr", "stdout-text", "orchd"};

const char *orchd_log_level_name(enum orchd_log_level l)
{
	if ((size_t)l >= ARRAY_SIZE(level_names))
		return "info";
	return level_names[l];
}

int orchd_log_level_from_name(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
		if (!strcmp(name, level_names[i]))
			return (int)i;
	return -1;
}

const char *orchd_log_source_name(enum orchd_log_source s)
{
	if ((size_t)s >= ARRAY_SIZE(source_names))
		return "orchd";
	return source_names[s];
}

/* --- secret masking ------------------------------------------------------ */

struct mask_secret {
	char *s;
	size_t len;
};

struct orchd_mask {
	/* by first byte; each bucket sorted longest first */
	struct mask_secret *bucket[256];
	size_t nbucket[256];
	size_t abucket[256];
	size_t count;
};

struct orchd_mask *orchd_mask_new(void)
{
	return calloc(1, sizeof(struct orchd_mask));
}

void orchd_mask_free(struct orchd_mask *m)
{
	if (!m)
		return;
	for (int b = 0; b < 256; b++) {
		for (size_t i = 0; i < m->nbucket[b]; i++)
			free(m->bucket[b][i].s);
		free(m->bucket[b]);
	}
	free(m);
}

static int mask_add_one(struct orchd_mask *m, const char *secret, size_t len);

int orchd_mask_add(struct orchd_mask *m, const char *secret)
{
	size_t len = secret ? strlen(secret) : 0;
	const char *p, *nl;

	if (!len)
		return 0;
	mask_add_one(m, secret, len);
	if (!strpbrk(secret, "\r\n"))
		return 0;
	/* a multi-line secret (a PEM key) reaches the console line by line:
	 * each of its lines is a secret too */
	for (p = secret; *p; p = *nl ? nl + 1 : nl) {
		size_t n;

		nl = p + strcspn(p, "\n");
		n = (size_t)(nl - p);
		if (n && p[n - 1] == '\r')
			n--;
		if (n >= ORCHD_MASK_MIN_LINE)
			mask_add_one(m, p, n);
	}
	return 0;
}

void orchd_mask_add_json(struct orchd_mask *m, const json_object *v)
{
	if (!v)
		return;
	if (json_object_is_type(v, json_type_string)) {
		orchd_mask_add(m, json_object_get_string((json_object *)(uintptr_t)v));
		return;
	}
	/* the value as a whole, as it is printed, and each string in it */
	orchd_mask_add(m, json_object_to_json_string_ext((json_object *)(uintptr_t)v,
							 JSON_C_TO_STRING_PLAIN));
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach((json_object *)(uintptr_t)v, k, e)
		{
			(void)k;
			if (json_object_is_type(e, json_type_string) ||
			    json_object_is_type(e, json_type_object) ||
			    json_object_is_type(e, json_type_array))
				orchd_mask_add_json(m, e);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *e = json_object_array_get_idx(v, i);

			if (json_object_is_type(e, json_type_string) ||
			    json_object_is_type(e, json_type_object) ||
			    json_object_is_type(e, json_type_array))
				orchd_mask_add_json(m, e);
		}
	}
}

static int mask_add_one(struct orchd_mask *m, const char *secret, size_t len)
{
	unsigned char b;
	struct mask_secret *v;
	size_t i;

	if (!len)
		return 0;
	b = (unsigned char)secret[0];
	v = m->bucket[b];
	for (i = 0; i < m->nbucket[b]; i++)
		if (v[i].len == len && !memcmp(v[i].s, secret, len))
			return 0;
	ALLOC_GROW(m->bucket[b], m->nbucket[b] + 1, m->abucket[b]);
	v = m->bucket[b];
	/* insertion point: keep longest first */
	for (i = 0; i < m->nbucket[b] && v[i].len >= len; i++)
		;
	memmove(v + i + 1, v + i, (m->nbucket[b] - i) * sizeof(*v));
	v[i].s = xstrndup(secret, len);
	v[i].len = len;
	m->nbucket[b]++;
	m->count++;
	return 0;
}

size_t orchd_mask_count(const struct orchd_mask *m)
{
	return m ? m->count : 0;
}

char *orchd_mask_apply(const struct orchd_mask *m, const char *text, size_t len, size_t *outlen)
{
	struct op_buf sb = OP_BUF_INIT;
	size_t copied = 0, i = 0;
	int hit = 0;
	char *masked;

	if (!m || !m->count)
		return NULL;
	while (i < len) {
		unsigned char b = (unsigned char)text[i];
		const struct mask_secret *v = m->bucket[b];
		size_t nv = m->nbucket[b], j;

		for (j = 0; j < nv; j++)
			if (v[j].len <= len - i && !memcmp(text + i, v[j].s, v[j].len))
				break;
		if (j == nv) {
			i++;
			continue;
		}
		hit = 1;
		op_buf_add(&sb, text + copied, i - copied);
		op_buf_addstr(&sb, "***");
		i += v[j].len;
		copied = i;
	}
	if (!hit)
		return NULL;
	op_buf_add(&sb, text + copied, len - copied);
	/* NULL means "nothing to mask": a failure must never say that */
	masked = op_buf_detach(&sb, outlen);
	if (!masked)
		die("out of memory");
	return masked;
}

/* --- console ------------------------------------------------------------- */

struct console_inst {
	char *id;
	int color;
};

struct orchd_console {
	FILE *out;
	enum orchd_log_level level;
	int color;
	int status;
	int status_shown;
	struct op_buf status_text; /* redrawn under each new line */
	size_t width;		   /* longest id */
	struct console_inst *inst;
	size_t ninst, ainst;
	size_t last; /* index of the last instance looked up */
	struct orchd_mask *mask;
	struct op_buf line;
};

/* stderr's buffer when it is not a TTY (see orchd_console_new). */
static char stderr_buf[65536];

/* 256-color-safe basic palette: green, yellow, blue, magenta, cyan and bright ones */
static const int palette[] = {32, 33, 34, 35, 36, 92, 93, 94, 95, 96};

static int is_tty(FILE *f)
{
	return isatty(fileno(f));
}

struct orchd_console *orchd_console_new(const struct orchd_console_opts *opts)
{
	struct orchd_console *c = calloc(1, sizeof(*c));
	int tty;

	if (!c)
		return NULL;
	c->out = opts && opts->out ? opts->out : stderr;
	c->level = opts ? opts->level : ORCHD_LOG_INFO;
	tty = is_tty(c->out);
	c->color = opts ? opts->color : -1;
	if (c->color < 0) {
		const char *nc = getenv("NO_COLOR");
		c->color = tty && !(nc && *nc);
	}
	c->status = opts ? opts->status : -1;
	if (c->status < 0) {
		/* Plain output when NO_COLOR is set: no colors, no status line. */
		const char *nc = getenv("NO_COLOR");
		c->status = tty && !(nc && *nc);
	}
	if (c->out == stderr && !tty) {
		/* a file or pipe: lines are written in 64 KiB blocks, flushed
		 * by orchd_console_flush(); error()/warning() use the same
		 * stream, so the order stays */
		fflush(stderr);
		setvbuf(stderr, stderr_buf, _IOFBF, sizeof(stderr_buf));
	}
	c->mask = orchd_mask_new();
	if (!c->mask) {
		free(c);
		return NULL;
	}
	op_buf_init(&c->line, 0);
	op_buf_init(&c->status_text, 0);
	return c;
}

void orchd_console_free(struct orchd_console *c)
{
	if (!c)
		return;
	orchd_console_status_clear(c);
	fflush(c->out);
	for (size_t i = 0; i < c->ninst; i++)
		free(c->inst[i].id);
	free(c->inst);
	orchd_mask_free(c->mask);
	op_buf_release(&c->line);
	op_buf_release(&c->status_text);
	free(c);
}

struct orchd_mask *orchd_console_mask(struct orchd_console *c)
{
	return c->mask;
}

void orchd_console_flush(struct orchd_console *c)
{
	if (c)
		fflush(c->out);
}

static struct console_inst *find_inst(struct orchd_console *c, const char *id)
{
	/* the same instance usually says many lines in a row */
	if (c->last < c->ninst && !strcmp(c->inst[c->last].id, id))
		return &c->inst[c->last];
	for (size_t i = 0; i < c->ninst; i++)
		if (!strcmp(c->inst[i].id, id)) {
			c->last = i;
			return &c->inst[i];
		}
	return NULL;
}

static struct console_inst *get_inst(struct orchd_console *c, const char *id)
{
	struct console_inst *in = find_inst(c, id);
	size_t l;

	if (in)
		return in;
	ALLOC_GROW(c->inst, c->ninst + 1, c->ainst);
	in = &c->inst[c->ninst];
	in->id = xstrdup(id);
	in->color = palette[c->ninst % ARRAY_SIZE(palette)];
	c->ninst++;
	l = strlen(id) + 2;
	if (l > c->width)
		c->width = l;
	return in;
}

void orchd_console_add_instance(struct orchd_console *c, const char *id)
{
	get_inst(c, id);
}

static void status_erase(struct orchd_console *c)
{
	if (!c->status_shown)
		return;
	fputs("\r\033[K", c->out);
	c->status_shown = 0;
}

static void status_draw(struct orchd_console *c)
{
	if (!c->status || !c->status_text.len)
		return;
	fputs("\r\033[K", c->out);
	fwrite(c->status_text.buf, 1, c->status_text.len, c->out);
	c->status_shown = 1;
}

void orchd_console_status_clear(struct orchd_console *c)
{
	op_buf_reset(&c->status_text);
	if (!c->status_shown)
		return;
	fputs("\r\033[K", c->out);
	fflush(c->out);
	c->status_shown = 0;
}

/* One console line: "[ID] LEVEL: TEXT", or with where "WHERE: LEVEL: TEXT"
 * (a diagnostic, positioned like orchd's own). */
static void console_line(struct orchd_console *c, const char *id, const char *where,
			 enum orchd_log_level level, const char *text)
{
	struct op_buf *sb = &c->line;
	char *masked;
	size_t len, mlen;

	if (level < c->level)
		return;
	op_buf_reset(sb);
	if (where) {
		op_buf_addstr(sb, where);
		op_buf_addstr(sb, ": ");
	} else if (id) {
		struct console_inst *in = get_inst(c, id);
		size_t pad = c->width - (strlen(id) + 2);
		if (c->color) {
			op_buf_addf(sb, "\033[%dm[%s]\033[0m", in->color, id);
		} else {
			op_buf_addch(sb, '[');
			op_buf_addstr(sb, id);
			op_buf_addch(sb, ']');
		}
		while (pad--)
			op_buf_addch(sb, ' ');
		op_buf_addch(sb, ' ');
	}
	if (level == ORCHD_LOG_WARNING)
		op_buf_addstr(sb, c->color ? "\033[33mwarning:\033[0m " : "warning: ");
	else if (level == ORCHD_LOG_ERROR)
		op_buf_addstr(sb, c->color ? "\033[31merror:\033[0m " : "error: ");
	else if (level == ORCHD_LOG_DEBUG)
		op_buf_addstr(sb, "debug: ");
	len = sb->len;
	/* mask the text as it came, then neutralize its control characters
	 * (the other way round, a secret holding one would be missed) */
	text = text ? text : "";
	masked = orchd_mask_apply(c->mask, text, strlen(text), &mlen);
	if (masked) {
		op_buf_add(sb, masked, mlen);
		free(masked);
	} else {
		op_buf_addstr(sb, text);
	}
	for (size_t i = len; i < sb->len; i++) {
		unsigned char ch = (unsigned char)sb->buf[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			sb->buf[i] = '?';
	}
	orchd_buf_str(sb); /* dies when an append failed */
	status_erase(c);
	fwrite(sb->buf, 1, sb->len, c->out);
	fputc('\n', c->out);
	status_draw(c);
	if (c->status)
		fflush(c->out);
}

void orchd_console_log(struct orchd_console *c, const char *id, enum orchd_log_level level,
		       const char *text)
{
	console_line(c, id, NULL, level, text);
}

void orchd_console_logf(struct orchd_console *c, const char *id, enum orchd_log_level level,
			const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	if (level < c->level)
		return;
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	orchd_console_log(c, id, level, s);
	free(s);
}

void orchd_console_status(struct orchd_console *c, size_t done, size_t failed,
			  const char *const *running, size_t nrunning)
{
	struct op_buf sb = OP_BUF_INIT;

	if (!c->status)
		return;
	op_buf_addf(&sb, "running %zu, done %zu, failed %zu", nrunning, done, failed);
	for (size_t i = 0; i < nrunning && sb.len < 200; i++)
		op_buf_addf(&sb, "%s%s", i ? " " : ": ", running[i]);
	if (sb.len >= 200)
		op_buf_setlen(&sb, 200);
	op_buf_reset(&c->status_text);
	op_buf_addstr(&c->status_text, orchd_buf_str(&sb));
	status_draw(c);
	fflush(c->out);
	op_buf_release(&sb);
}

void orchd_format_duration(char *buf, size_t n, long long ms)
{
	if (ms < 0)
		snprintf(buf, n, "-");
	else if (ms < 1000)
		snprintf(buf, n, "%lldms", ms);
	else if (ms < 60000)
		snprintf(buf, n, "%lld.%llds", ms / 1000, (ms % 1000) / 100);
	else
		snprintf(buf, n, "%lldm%02llds", ms / 60000, (ms % 60000) / 1000);
}

void orchd_format_kib(char *buf, size_t n, long kib)
{
	if (kib <= 0)
		snprintf(buf, n, "-");
	else if (kib < 1024)
		snprintf(buf, n, "%ld KiB", kib);
	else if (kib < 1024L * 1024)
		snprintf(buf, n, "%.1f MiB", kib / 1024.0);
	else
		snprintf(buf, n, "%.1f GiB", kib / (1024.0 * 1024));
}

void orchd_format_size(char *buf, size_t n, int64_t bytes)
{
	if (bytes < 1024)
		snprintf(buf, n, "%lld bytes", (long long)bytes);
	else if (bytes % (1024 * 1024) == 0)
		snprintf(buf, n, "%lld MiB", (long long)(bytes / (1024 * 1024)));
	else if (bytes % 1024 == 0 && bytes < 1024 * 1024)
		snprintf(buf, n, "%lld KiB", (long long)(bytes / 1024));
	else
		orchd_format_kib(buf, n, (long)(bytes / 1024));
}

void orchd_console_summary(struct orchd_console *c, const struct orchd_summary_row *rows,
			   size_t nrows)
{
	size_t wid = strlen("INSTANCE"), wst = strlen("STATUS");
	char dur[32], cpu[32], rss[32];

	for (size_t i = 0; i < nrows; i++) {
		if (strlen(rows[i].id) > wid)
			wid = strlen(rows[i].id);
		if (strlen(rows[i].status) > wst)
			wst = strlen(rows[i].status);
	}
	orchd_console_status_clear(c);
	fprintf(c->out, "%-*s  %-*s  %8s  %9s  %9s  %10s\n", (int)wid, "INSTANCE", (int)wst,
		"STATUS", "ATTEMPTS", "DURATION", "CPU", "MAX RSS");
	for (size_t i = 0; i < nrows; i++) {
		orchd_format_duration(dur, sizeof(dur), rows[i].wall_ms);
		orchd_format_duration(cpu, sizeof(cpu), rows[i].cpu_ms);
		orchd_format_kib(rss, sizeof(rss), rows[i].max_rss_kb);
		fprintf(c->out, "%-*s  %-*s  %8d  %9s  %9s  %10s\n", (int)wid, rows[i].id, (int)wst,
			rows[i].status, rows[i].attempts, dur, cpu, rss);
	}
	fflush(c->out);
}

/* ---------------------------------------------------------------------------
 * The journal of a run.
 * ------------------------------------------------------------------------- */

#define JOURNAL_LOG_MAX (1u << 20)

struct journal_entry {
	struct op_buf log; /* every line, for the log file and JUnit */
	int truncated;	   /* "[log truncated]" was written */
	/* grouped or held: lines not printed yet ('0'+level, 'a'+source, text,
	 * '\n'; or 'D', where, '\t', text, '\n' for a diagnostic) */
	struct op_buf group;
	FILE *spill; /* what did not fit in group's ORCHD_GROUP_MEM, in order */
	int hold;    /* it may still declare secrets: print its lines at the end */
};

struct orchd_journal {
	struct orchd_console *con;
	const char *const *ids;
	size_t n;
	struct orchd_journal_opts o;
	struct journal_entry *e;
};

struct orchd_journal *orchd_journal_new(struct orchd_console *con, const char *const *ids, size_t n,
					const struct orchd_journal_opts *opts)
{
	struct orchd_journal *j = xcalloc(1, sizeof(*j));

	j->con = con;
	j->ids = ids;
	j->n = n;
	j->o = *opts;
	j->e = xcalloc(n ? n : 1, sizeof(*j->e));
	for (size_t i = 0; i < n; i++) {
		op_buf_init(&j->e[i].log, JOURNAL_LOG_MAX);
		op_buf_init(&j->e[i].group, 0);
	}
	return j;
}

void orchd_journal_free(struct orchd_journal *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		op_buf_release(&j->e[i].log);
		op_buf_release(&j->e[i].group);
		if (j->e[i].spill)
			fclose(j->e[i].spill);
	}
	free(j->e);
	free(j);
}

/* Memory is bounded: past ORCHD_GROUP_MEM, held lines go to an unlinked
 * temporary file (an instance may write gigabytes before it ends). */
static void group_spill(struct journal_entry *e)
{
	if (e->group.len < ORCHD_GROUP_MEM)
		return;
	if (!e->spill)
		e->spill = tmpfile();
	if (!e->spill)
		return; /* no temporary file: memory it is */
	if (fwrite(e->group.buf, 1, e->group.len, e->spill) != e->group.len) {
		/* a full disk: what was written is kept, the rest prints now
		 * rather than being lost */
		clearerr(e->spill);
		return;
	}
	op_buf_reset(&e->group);
}

/* Keep a line for the instance's log file and JUnit (bounded). */
static void journal_keep(struct journal_entry *e, const char *text)
{
	size_t len = strlen(text);

	if (e->truncated)
		return;
	if (e->log.len + len + 64 > e->log.max) {
		op_buf_addstr(&e->log, "[log truncated]\n");
		e->truncated = 1;
		return;
	}
	op_buf_add(&e->log, text, len);
	op_buf_addch(&e->log, '\n');
}

/* --log-format json: one object per line on stderr, masked. */
static void journal_json(struct orchd_journal *j, const char *id, enum orchd_log_level lvl,
			 enum orchd_log_source src, const char *text)
{
	json_object *o = json_object_new_object();
	char *m = orchd_mask_apply(orchd_console_mask(j->con), text, strlen(text), NULL);
	char ts[40];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03dZ", (int)(now.tv_nsec / 1000000));
	json_object_object_add(o, "time", json_object_new_string(ts));
	json_object_object_add(o, "instance", id ? json_object_new_string(id) : NULL);
	json_object_object_add(o, "level", json_object_new_string(orchd_log_level_name(lvl)));
	json_object_object_add(o, "source", json_object_new_string(orchd_log_source_name(src)));
	json_object_object_add(o, "message", json_object_new_string(m ? m : text));
	fprintf(stderr, "%s\n",
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	free(m);
	json_object_put(o);
}

void orchd_journal_line(struct orchd_journal *j, size_t i, enum orchd_log_level level,
			enum orchd_log_source src, const char *text)
{
	struct journal_entry *e = i < j->n ? &j->e[i] : NULL;
	const char *id = e ? j->ids[i] : NULL;

	if (e)
		journal_keep(e, text);
	if (e && (j->o.grouped || e->hold)) {
		op_buf_addch(&e->group, '0' + (int)level);
		op_buf_addch(&e->group, 'a' + (int)src);
		op_buf_addstr(&e->group, text);
		op_buf_addch(&e->group, '\n');
		group_spill(e);
		return;
	}
	if (j->o.json) {
		if (level >= j->o.min_level)
			journal_json(j, id, level, src, text);
		return;
	}
	orchd_console_log(j->con, id, level, text);
}

void orchd_journal_hold(struct orchd_journal *j, size_t i)
{
	if (i < j->n)
		j->e[i].hold = 1;
}

void orchd_journal_diag(struct orchd_journal *j, size_t i, const char *where, const char *text)
{
	struct journal_entry *e = i < j->n ? &j->e[i] : NULL;
	const char *id = e ? j->ids[i] : "orchd";
	char *line = xasprintf("%s: %s", id, text), *kept = xasprintf("%s: %s", where, text);

	if (e)
		journal_keep(e, kept);
	if (j->o.json && !(e && e->hold)) {
		journal_json(j, e ? id : NULL, ORCHD_LOG_ERROR, ORCHD_LOGSRC_ORCHD, kept);
	} else if (e && (j->o.grouped || e->hold)) {
		/* 'D': a diagnostic, its where first */
		op_buf_addch(&e->group, 'D');
		op_buf_addstr(&e->group, where);
		op_buf_addch(&e->group, '\t');
		op_buf_addstr(&e->group, line);
		op_buf_addch(&e->group, '\n');
		group_spill(e);
	} else {
		console_line(j->con, NULL, where, ORCHD_LOG_ERROR, line);
	}
	free(line);
	free(kept);
}

/* One held line (see struct journal_entry), printed. */
static void group_line(struct orchd_journal *j, size_t i, char *p)
{
	char *tab;

	if (p[0] == 'D' && (tab = strchr(p, '\t'))) {
		*tab = '\0';
		if (j->o.json) {
			char *kept = xasprintf("%s: %s", p + 1, tab + 1);

			journal_json(j, j->ids[i], ORCHD_LOG_ERROR, ORCHD_LOGSRC_ORCHD, kept);
			free(kept);
		} else {
			console_line(j->con, NULL, p + 1, ORCHD_LOG_ERROR, tab + 1);
		}
		return;
	}
	if (!p[0] || !p[1])
		return;
	if (j->o.json) {
		if ((enum orchd_log_level)(p[0] - '0') >= j->o.min_level)
			journal_json(j, j->ids[i], (enum orchd_log_level)(p[0] - '0'),
				     (enum orchd_log_source)(p[1] - 'a'), p + 2);
	} else {
		orchd_console_log(j->con, j->ids[i], (enum orchd_log_level)(p[0] - '0'), p + 2);
	}
}

void orchd_journal_flush(struct orchd_journal *j, size_t i)
{
	struct journal_entry *e;
	char *p, *nl;

	if (i >= j->n)
		return;
	e = &j->e[i];
	if (e->spill) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;

		rewind(e->spill);
		while ((n = getline(&line, &cap, e->spill)) > 0) {
			if (line[n - 1] == '\n')
				line[n - 1] = '\0';
			group_line(j, i, line);
		}
		free(line);
		fclose(e->spill);
		e->spill = NULL;
	}
	if (!e->group.len)
		return;
	orchd_buf_str(&e->group); /* dies when an append failed */
	for (p = e->group.buf; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		group_line(j, i, p);
	}
	op_buf_reset(&e->group);
}

const char *orchd_journal_text(const struct orchd_journal *j, size_t i)
{
	return i < j->n ? orchd_buf_str(&j->e[i].log) : "";
}
