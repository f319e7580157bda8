#include "core/report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "orchd_protocol.h"
#include "util.h"

/* Masked copy of s (always malloc'ed). */
static char *masked(const struct orchd_mask *m, const char *s)
{
	char *r;

	if (!s)
		return xstrdup("");
	r = m ? orchd_mask_apply(m, s, strlen(s), NULL) : NULL;
	return r ? r : xstrdup(s);
}

static json_object *masked_string(const struct orchd_mask *m, const char *s)
{
	char *t = masked(m, s);
	json_object *o = json_object_new_string(t);

	free(t);
	return o;
}

static void iso8601(char *buf, size_t n, long long ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	if (strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		buf[0] = '\0';
	snprintf(buf + strlen(buf), n - strlen(buf), ".%03dZ", (int)(ms % 1000));
}

/* A value with every secret replaced by "***". */
static json_object *mask_value(const struct orchd_mask *m, json_object *v)
{
	const char *txt;
	char *t;
	json_object *r;

	if (!v)
		return NULL;
	txt = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	t = m ? orchd_mask_apply(m, txt, strlen(txt), NULL) : NULL;
	if (!t)
		return json_object_get(v);
	/* The masked text may no longer be JSON of the same shape: keep it as a
	 * string, which is what a reader needs to see. */
	r = json_tokener_parse(t);
	if (!r)
		r = json_object_new_string(t);
	free(t);
	return r;
}

json_object *orchd_report_json(const char *run_id, const char *pipeline, const char *action,
			       int exit_code, long long started_at, long long ended_at,
			       const struct orchd_report_node *n, size_t nn,
			       const struct orchd_mask *mask)
{
	json_object *r = json_object_new_object(), *arr = json_object_new_array();
	char ts[40];

	json_object_object_add(r, "format", json_object_new_string("orchd-report"));
	json_object_object_add(r, "version", json_object_new_int(1));
	json_object_object_add(r, "run_id", json_object_new_string(run_id ? run_id : ""));
	json_object_object_add(r, "pipeline", json_object_new_string(pipeline));
	json_object_object_add(r, "action", json_object_new_string(action));
	json_object_object_add(r, "exit_code", json_object_new_int(exit_code));
	iso8601(ts, sizeof(ts), started_at);
	json_object_object_add(r, "started_at", json_object_new_string(ts));
	iso8601(ts, sizeof(ts), ended_at);
	json_object_object_add(r, "ended_at", json_object_new_string(ts));
	json_object_object_add(r, "duration_ms", json_object_new_int64(ended_at - started_at));
	for (size_t i = 0; i < nn; i++) {
		const struct orchd_report_node *x = &n[i];
		json_object *o = json_object_new_object(), *outs = json_object_new_object();

		json_object_object_add(o, "id", json_object_new_string(x->id));
		json_object_object_add(o, "type", json_object_new_string(x->type));
		json_object_object_add(o, "name", json_object_new_string(x->name));
		json_object_object_add(o, "stack", json_object_new_string(x->stack));
		json_object_object_add(o, "status", json_object_new_string(x->status));
		json_object_object_add(o, "reason", masked_string(mask, x->reason));
		json_object_object_add(o, "attempts", json_object_new_int(x->attempts));
		if (x->started_at) {
			iso8601(ts, sizeof(ts), x->started_at);
			json_object_object_add(o, "started_at", json_object_new_string(ts));
		} else {
			json_object_object_add(o, "started_at", NULL);
		}
		json_object_object_add(o, "duration_ms", json_object_new_int64(x->wall_ms));
		json_object_object_add(o, "cpu_ms", json_object_new_int64(x->cpu_ms));
		json_object_object_add(o, "max_rss_kb", json_object_new_int64(x->max_rss_kb));
		json_object_object_add(o, "changed",
				       x->changed < 0 ? NULL : json_object_new_boolean(x->changed));
		json_object_object_add(
			o, "isolation",
			json_object_new_string(x->isolation ? x->isolation : "basic"));
		if (x->outputs) {
			json_object_object_foreach(x->outputs, k, v)
			{
				json_object *e = json_object_new_object();
				int secret = x->secrets &&
					     json_object_object_get_ex(x->secrets, k, NULL);

				json_object_object_add(e, "value",
						       secret ? json_object_new_string("***")
							      : mask_value(mask, v));
				json_object_object_add(e, "secret",
						       json_object_new_boolean(secret));
				json_object_object_add(outs, k, e);
			}
		}
		json_object_object_add(o, "outputs", outs);
		json_object_array_add(arr, o);
	}
	json_object_object_add(r, "instances", arr);
	return r;
}

/* Text as XML 1.0 character data: markup escaped, the control characters
 * XML forbids as '?', and what is not UTF-8 as U+FFFD (an extension's
 * output can be any bytes; the file must stay well-formed). */
static void xml_escape(struct op_buf *sb, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);

	while (left) {
		unsigned char c = *p;
		size_t n = orchd_utf8_len(p, left);

		switch (c) {
		case '<':
			op_buf_addstr(sb, "&lt;");
			break;
		case '>':
			op_buf_addstr(sb, "&gt;");
			break;
		case '&':
			op_buf_addstr(sb, "&amp;");
			break;
		case '"':
			op_buf_addstr(sb, "&quot;");
			break;
		case '\n':
		case '\t':
			op_buf_addch(sb, c);
			break;
		default:
			if (!n) {
				op_buf_addstr(sb, "\xef\xbf\xbd");
				n = 1;
			} else if (c < 0x20) {
				op_buf_addch(sb, '?');
			} else if (n == 3 && c == 0xef && p[1] == 0xbf && p[2] >= 0xbe) {
				op_buf_addch(sb, '?'); /* U+FFFE, U+FFFF: not XML */
			} else {
				op_buf_add(sb, p, n);
			}
		}
		if (!n)
			n = 1;
		p += n;
		left -= n;
	}
}

char *orchd_report_junit(const char *pipeline, const char *action,
			 const struct orchd_report_node *n, size_t nn,
			 const struct orchd_mask *mask)
{
	struct op_buf sb = OP_BUF_INIT;
	size_t failures = 0, skipped = 0;
	char *x;
	long long total = 0;

	for (size_t i = 0; i < nn; i++) {
		failures += n[i].failed;
		skipped += n[i].skipped;
		total += n[i].wall_ms;
	}
	op_buf_addstr(&sb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
	op_buf_addstr(&sb, "  <testsuite name=\"");
	xml_escape(&sb, pipeline);
	op_buf_addf(&sb,
		    ".%s\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\" "
		    "time=\"%.3f\">\n",
		    action, nn, failures, skipped, (double)total / 1000.0);
	for (size_t i = 0; i < nn; i++) {
		char *log = masked(mask, n[i].log), *reason = masked(mask, n[i].reason);

		op_buf_addstr(&sb, "    <testcase classname=\"");
		xml_escape(&sb, pipeline);
		op_buf_addch(&sb, '.');
		xml_escape(&sb, n[i].type);
		op_buf_addstr(&sb, "\" name=\"");
		xml_escape(&sb, n[i].id);
		op_buf_addf(&sb, "\" time=\"%.3f\">\n", (double)n[i].wall_ms / 1000.0);
		if (n[i].failed) {
			op_buf_addstr(&sb, "      <failure message=\"");
			xml_escape(&sb, reason);
			op_buf_addstr(&sb, "\" type=\"");
			xml_escape(&sb, n[i].status);
			op_buf_addstr(&sb, "\"/>\n");
		} else if (n[i].skipped) {
			op_buf_addstr(&sb, "      <skipped message=\"");
			xml_escape(&sb, reason);
			op_buf_addstr(&sb, "\"/>\n");
		}
		op_buf_addstr(&sb, "      <system-out>");
		xml_escape(&sb, log);
		op_buf_addstr(&sb, "</system-out>\n    </testcase>\n");
		free(log);
		free(reason);
	}
	op_buf_addstr(&sb, "  </testsuite>\n</testsuites>\n");
	x = op_buf_detach(&sb, NULL);
	if (!x)
		die("out of memory");
	return x;
}

int orchd_write_file_atomic(const char *path, const char *data, size_t len)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0) {
		error("cannot write %s: %s", path, strerror(errno));
		free(tmp);
		return -1;
	}
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	free(tmp);
	return 0;
fail:
	error("cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

/*
 * One log file per node in dir, each never torn, with one syncfs(2) for all
 * of them instead of an fsync per file (1 000 fsyncs cost seconds): every
 * file is written to a temp name, then the file system is synced once, then
 * the temps are renamed into place and dir is fsync'ed.
 */
static int write_logs(const char *dir, const struct orchd_report_node *n, size_t nn,
		      const struct orchd_mask *mask)
{
	char **tmp = xcalloc(nn ? nn : 1, sizeof(*tmp));
	int ret = 0, dfd;

	for (size_t i = 0; i < nn && !ret; i++) {
		char *t = masked(mask, n[i].log);
		size_t len = strlen(t), off = 0;
		int fd;

		tmp[i] = xasprintf("%s/.%s.log.tmp.%ld", dir, n[i].id, (long)getpid());
		fd = open(tmp[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		while (fd >= 0 && off < len) {
			ssize_t w = write(fd, t + off, len - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				break;
			off += (size_t)w;
		}
		if (fd < 0 || off < len || close(fd) < 0) {
			ret = error("cannot write %s/%s.log: %s", dir, n[i].id, strerror(errno));
			if (fd >= 0 && off < len)
				close(fd);
		}
		free(t);
	}
	dfd = ret ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!ret && (dfd < 0 || syncfs(dfd) < 0))
		ret = error("cannot sync %s: %s", dir, strerror(errno));
	for (size_t i = 0; i < nn && tmp[i]; i++) {
		char *p = xasprintf("%s/%s.log", dir, n[i].id);

		if (!ret && rename(tmp[i], p) < 0)
			ret = error("cannot write %s: %s", p, strerror(errno));
		if (ret)
			unlink(tmp[i]);
		free(p);
		free(tmp[i]);
	}
	if (!ret && dfd >= 0 && fsync(dfd) < 0)
		ret = error("cannot sync %s: %s", dir, strerror(errno));
	if (dfd >= 0)
		close(dfd);
	free(tmp);
	return ret;
}

int orchd_report_write_all(const char *run_id, const char *pipeline, const char *action,
			   int exit_code, long long started_at, long long ended_at,
			   const struct orchd_report_node *n, size_t nn,
			   const struct orchd_mask *mask, const char *report_path,
			   const char *junit_path, const char *run_dir)
{
	json_object *rep;
	const char *txt;
	int ret = 0;

	if (run_dir) {
		char *logs = xasprintf("%s/logs", run_dir);

		if (mkdir(logs, 0700) < 0 && errno != EEXIST)
			ret = error("cannot create %s: %s", logs, strerror(errno));
		else if (write_logs(logs, n, nn, mask) < 0)
			ret = -1;
		free(logs);
	}
	rep = orchd_report_json(run_id, pipeline, action, exit_code, started_at, ended_at, n, nn,
				mask);
	txt = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE);
	if (run_dir) {
		char *p = xasprintf("%s/report.json", run_dir);

		if (orchd_write_file_atomic(p, txt, strlen(txt)) < 0)
			ret = -1;
		free(p);
	}
	if (report_path && orchd_write_file_atomic(report_path, txt, strlen(txt)) < 0)
		ret = -1;
	json_object_put(rep);
	if (junit_path) {
		char *x = orchd_report_junit(pipeline, action, n, nn, mask);

		if (orchd_write_file_atomic(junit_path, x, strlen(x)) < 0)
			ret = -1;
		free(x);
	}
	return ret;
}
