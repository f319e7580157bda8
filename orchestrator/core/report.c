#include "core/report.h"

#include <dirent.h>
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

/* The text built in sb, handed over. */
static char *detach(struct op_buf *sb)
{
	char *x = op_buf_detach(sb, NULL);

	if (!x)
		die("out of memory");
	return x;
}

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

const char *orchd_span_kind_name(enum orchd_span_kind k)
{
	static const char *const names[ORCHD_SPAN_NKINDS] = {
		[ORCHD_SPAN_BLOCKED] = "blocked", [ORCHD_SPAN_QUEUED] = "queued",
		[ORCHD_SPAN_RUN] = "run",	  [ORCHD_SPAN_BACKOFF] = "backoff",
		[ORCHD_SPAN_STORE] = "store",
	};

	return (unsigned)k < ORCHD_SPAN_NKINDS ? names[k] : "?";
}

/* The environment variable's value, or NULL when unset or empty. */
static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static void add_env(json_object *o, const char *key, const char *value)
{
	if (value)
		json_object_object_add(o, key, json_object_new_string(value));
}

json_object *orchd_ci_metadata(void)
{
	json_object *o;

	if (env("JENKINS_URL") || env("BUILD_TAG") || env("BUILD_URL")) {
		o = json_object_new_object();
		add_env(o, "provider", "jenkins");
		add_env(o, "build_url", env("BUILD_URL"));
		add_env(o, "build_tag", env("BUILD_TAG"));
		add_env(o, "build_number", env("BUILD_NUMBER"));
		add_env(o, "job", env("JOB_NAME"));
		add_env(o, "commit", env("GIT_COMMIT"));
		return o;
	}
	if (env("GITHUB_ACTIONS")) {
		o = json_object_new_object();
		add_env(o, "provider", "github");
		if (env("GITHUB_SERVER_URL") && env("GITHUB_REPOSITORY") && env("GITHUB_RUN_ID")) {
			char *url = xasprintf("%s/%s/actions/runs/%s", env("GITHUB_SERVER_URL"),
					      env("GITHUB_REPOSITORY"), env("GITHUB_RUN_ID"));

			add_env(o, "build_url", url);
			free(url);
		}
		if (env("GITHUB_REPOSITORY") && env("GITHUB_RUN_ID")) {
			char *tag = xasprintf(
				"github-%s-%s-%s", env("GITHUB_REPOSITORY"), env("GITHUB_RUN_ID"),
				env("GITHUB_RUN_ATTEMPT") ? env("GITHUB_RUN_ATTEMPT") : "1");

			add_env(o, "build_tag", tag);
			free(tag);
		}
		add_env(o, "build_number", env("GITHUB_RUN_NUMBER"));
		add_env(o, "job", env("GITHUB_JOB") ? env("GITHUB_JOB") : env("GITHUB_WORKFLOW"));
		add_env(o, "commit", env("GITHUB_SHA"));
		return o;
	}
	if (env("GITLAB_CI")) {
		o = json_object_new_object();
		add_env(o, "provider", "gitlab");
		add_env(o, "build_url",
			env("CI_JOB_URL") ? env("CI_JOB_URL") : env("CI_PIPELINE_URL"));
		if (env("CI_PROJECT_PATH") && env("CI_JOB_ID")) {
			char *tag =
				xasprintf("gitlab-%s-%s", env("CI_PROJECT_PATH"), env("CI_JOB_ID"));

			add_env(o, "build_tag", tag);
			free(tag);
		}
		add_env(o, "build_number",
			env("CI_PIPELINE_IID") ? env("CI_PIPELINE_IID") : env("CI_PIPELINE_ID"));
		add_env(o, "job", env("CI_JOB_NAME"));
		add_env(o, "commit", env("CI_COMMIT_SHA"));
		return o;
	}
	return NULL;
}

static long long node_end(const struct orchd_report_node *x)
{
	long long end = 0;

	for (size_t k = 0; k < x->nspans; k++)
		if (x->spans[k].end_ms > end)
			end = x->spans[k].end_ms;
	return end;
}

/*
 * The critical path: from the instance that ended last, back through the
 * dependency of each that ended last, to one without dependencies.  The
 * ids, first to last, in a new array; its length is the time from the
 * run's start to the end of the last.
 */
static json_object *critical_path(const struct orchd_report_node *n, size_t nn,
				  long long started_at)
{
	json_object *r = json_object_new_object(), *ids = json_object_new_array();
	size_t *chain = xcalloc(nn + 1, sizeof(*chain)), len = 0, cur = nn;
	struct orchd_map index = ORCHD_MAP_INIT;
	long long last = 0;

	for (size_t i = 0; i < nn; i++) {
		orchd_map_put(&index, n[i].id, i, NULL);
		if (n[i].nspans && node_end(&n[i]) >= last) {
			last = node_end(&n[i]);
			cur = i;
		}
	}
	while (cur < nn && len < nn) {
		size_t next = nn;
		long long best = -1;

		chain[len++] = cur;
		for (size_t k = 0; k < n[cur].ndepends; k++) {
			size_t *v = orchd_map_get(&index, n[cur].depends[k]), d;

			if (!v)
				continue;
			d = *v;
			if (n[d].nspans && node_end(&n[d]) > best) {
				best = node_end(&n[d]);
				next = d;
			}
		}
		cur = next;
	}
	while (len)
		json_object_array_add(ids, json_object_new_string(n[chain[--len]].id));
	json_object_object_add(r, "instances", ids);
	json_object_object_add(r, "duration_ms",
			       json_object_new_int64(last > started_at ? last - started_at : 0));
	orchd_map_release(&index);
	free(chain);
	return r;
}

static json_object *spans_json(const struct orchd_report_node *x, long long started_at,
			       const struct orchd_mask *mask)
{
	json_object *arr = json_object_new_array();

	for (size_t k = 0; k < x->nspans; k++) {
		const struct orchd_span *sp = &x->spans[k];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "kind",
				       json_object_new_string(orchd_span_kind_name(
					       (enum orchd_span_kind)sp->kind)));
		json_object_object_add(
			o, "phase", json_object_new_string(sp->validate ? "validate" : "action"));
		if (sp->attempt)
			json_object_object_add(o, "attempt", json_object_new_int(sp->attempt));
		json_object_object_add(o, "start_ms",
				       json_object_new_int64(sp->start_ms - started_at));
		json_object_object_add(o, "end_ms", json_object_new_int64(sp->end_ms - started_at));
		if (sp->kind == ORCHD_SPAN_RUN && sp->setup_ms >= 0)
			json_object_object_add(o, "setup_ms", json_object_new_int64(sp->setup_ms));
		json_object_object_add(o, "outcome", json_object_new_string(sp->outcome));
		if (sp->reason)
			json_object_object_add(o, "reason", masked_string(mask, sp->reason));
		json_object_array_add(arr, o);
	}
	return arr;
}

json_object *orchd_report_json(const char *run_id, const char *pipeline, const char *action,
			       int exit_code, long long started_at, long long ended_at,
			       const struct orchd_report_node *n, size_t nn,
			       const struct orchd_mask *mask, const char *run_dir)
{
	json_object *r = json_object_new_object(), *arr = json_object_new_array();
	json_object *unsel = json_object_new_array();
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
	json_object_object_add(r, "run_dir", run_dir ? json_object_new_string(run_dir) : NULL);
	json_object_object_add(r, "ci", orchd_ci_metadata());
	json_object_object_add(r, "critical_path", critical_path(n, nn, started_at));
	for (size_t i = 0; i < nn; i++) {
		const struct orchd_report_node *x = &n[i];
		json_object *o, *outs;

		if (x->unselected) {
			json_object *u = json_object_new_object(), *deps = json_object_new_array();

			json_object_object_add(u, "id", json_object_new_string(x->id));
			json_object_object_add(u, "type", json_object_new_string(x->type));
			json_object_object_add(u, "name", json_object_new_string(x->name));
			for (size_t k = 0; k < x->ndepends; k++)
				json_object_array_add(deps, json_object_new_string(x->depends[k]));
			json_object_object_add(u, "depends_on", deps);
			json_object_array_add(unsel, u);
			continue;
		}
		o = json_object_new_object();
		outs = json_object_new_object();

		json_object_object_add(o, "id", json_object_new_string(x->id));
		json_object_object_add(o, "type", json_object_new_string(x->type));
		json_object_object_add(o, "name", json_object_new_string(x->name));
		json_object_object_add(o, "stack", json_object_new_string(x->stack));
		json_object_object_add(o, "status", json_object_new_string(x->status));
		json_object_object_add(o, "outcome",
				       json_object_new_string(x->failed	   ? "failed"
							      : x->skipped ? "skipped"
									   : "passed"));
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
		if (x->last_success_ms) {
			iso8601(ts, sizeof(ts), x->last_success_ms);
			json_object_object_add(o, "last_success_at", json_object_new_string(ts));
		} else {
			json_object_object_add(o, "last_success_at", NULL);
		}
		{
			json_object *deps = json_object_new_array();

			for (size_t k = 0; k < x->ndepends; k++)
				json_object_array_add(deps, json_object_new_string(x->depends[k]));
			json_object_object_add(o, "depends_on", deps);
		}
		json_object_object_add(o, "spans", spans_json(x, started_at, mask));
		json_object_array_add(arr, o);
	}
	json_object_object_add(r, "instances", arr);
	json_object_object_add(r, "unselected", unsel);
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

/* Accessors of a report read back: a missing or mistyped member reads as
 * empty (the renderers never trust a stored file's shape). */
static const char *jstr(json_object *o, const char *key)
{
	const char *v = op_get_str(o, key);

	return v ? v : "";
}

/* A number of a stored report, bounded to +-2^40 (35 years of ms, a TiB
 * of KiB), so that no sum or product of them overflows. */
static long long jint(const json_object *o, const char *key, long long dflt)
{
	long long v = op_get_int(o, key, dflt), lim = 1LL << 40;

	return v > lim ? lim : v < -lim ? -lim : v;
}

static json_object *jarr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

static size_t jlen(json_object *arr)
{
	return arr ? json_object_array_length(arr) : 0;
}

/* The string at arr[i], or "" when it is not one. */
static const char *jstr_at(json_object *arr, size_t i)
{
	json_object *v = json_object_array_get_idx(arr, i);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

static json_object *jobj_at(json_object *arr, size_t i)
{
	json_object *v = json_object_array_get_idx(arr, i);

	return json_object_is_type(v, json_type_object) ? v : NULL;
}

/* A stored log: RUN_DIR/logs/ID.log, already masked when written (a
 * larger one is left out). */
#define ORCHD_REPORT_MAX_LOG  (64u << 20)
#define ORCHD_REPORT_MAX_JSON (256u << 20)

static char *stored_log(void *arg, const char *id)
{
	const char *run_dir = arg;
	struct op_buf b = OP_BUF_INIT;
	char *path, *text;

	/* an id from a stored file names a file of logs/ only */
	if (!run_dir || !*run_dir || !*id || *id == '.' || strchr(id, '/'))
		return NULL;
	path = xasprintf("%s/logs/%s.log", run_dir, id);
	op_buf_init(&b, ORCHD_REPORT_MAX_LOG);
	if (orchd_read_file(path, &b) < 0) {
		free(path);
		op_buf_release(&b);
		return NULL;
	}
	free(path);
	text = op_buf_detach(&b, NULL);
	return text;
}

/* One retry of a testcase (Surefire's flakyFailure / rerunFailure). */
static void junit_retry(struct op_buf *sb, const char *elem, json_object *span)
{
	op_buf_addf(sb, "    <%s message=\"", elem);
	xml_escape(sb, jstr(span, "reason"));
	op_buf_addstr(sb, "\" type=\"");
	xml_escape(sb, jstr(span, "outcome"));
	op_buf_addstr(sb, "\">\n      <stackTrace>");
	op_buf_addf(sb, "attempt %lld: ", jint(span, "attempt", 0));
	xml_escape(sb, jstr(span, "reason"));
	op_buf_addf(sb, "</stackTrace>\n    </%s>\n", elem);
}

static void junit_testcase(struct op_buf *sb, json_object *x, const char *pipeline,
			   orchd_report_log_fn log, void *log_arg)
{
	const char *outcome = jstr(x, "outcome"), *id = jstr(x, "id");
	json_object *spans = jarr(x, "spans");
	char *text;

	op_buf_addstr(sb, "  <testcase name=\"");
	xml_escape(sb, id);
	op_buf_addstr(sb, "\" classname=\"");
	xml_escape(sb, pipeline);
	op_buf_addch(sb, '.');
	xml_escape(sb, jstr(x, "type"));
	op_buf_addf(sb, "\" time=\"%.3f\">\n", (double)jint(x, "duration_ms", 0) / 1000.0);
	if (!strcmp(outcome, "failed")) {
		/* Surefire: the first failure is <failure>, the reruns that
		 * failed again are <rerunFailure> */
		op_buf_addstr(sb, "    <failure message=\"");
		xml_escape(sb, jstr(x, "reason"));
		op_buf_addstr(sb, "\" type=\"");
		xml_escape(sb, jstr(x, "status"));
		op_buf_addstr(sb, "\">");
		xml_escape(sb, jstr(x, "reason"));
		op_buf_addstr(sb, "</failure>\n");
	}
	for (size_t k = 0; k < jlen(spans); k++) {
		json_object *sp = jobj_at(spans, k);

		if (!sp || strcmp(jstr(sp, "kind"), "run") || strcmp(jstr(sp, "phase"), "action") ||
		    strcmp(jstr(sp, "outcome"), "retry"))
			continue;
		junit_retry(sb, !strcmp(outcome, "failed") ? "rerunFailure" : "flakyFailure", sp);
	}
	if (!strcmp(outcome, "skipped")) {
		op_buf_addstr(sb, "    <skipped message=\"");
		xml_escape(sb, jstr(x, "reason"));
		op_buf_addstr(sb, "\"/>\n");
	}
	text = log ? log(log_arg, id) : NULL;
	op_buf_addstr(sb, "    <system-out>");
	if (text)
		xml_escape(sb, text);
	op_buf_addstr(sb, "</system-out>\n  </testcase>\n");
	free(text);
}

/*
 * JUnit XML as Maven Surefire writes it (surefire-test-report.xsd, the
 * format Jenkins' junit plugin reads): a <testsuite> root with the run's
 * identity and CI metadata as properties, one <testcase> per instance,
 * <failure> for a failed one, <skipped> for a skipped one, and each failed
 * attempt before the last as <flakyFailure> (the instance passed in the
 * end) or <rerunFailure> (it failed in the end).
 */
static char *render_junit(json_object *rep, orchd_report_log_fn log, void *log_arg)
{
	struct op_buf sb = OP_BUF_INIT;
	json_object *inst = jarr(rep, "instances"), *ci;
	size_t failures = 0, skipped = 0, n = jlen(inst);
	const char *pipeline = jstr(rep, "pipeline");

	for (size_t i = 0; i < n; i++) {
		json_object *o = jobj_at(inst, i);

		failures += o && !strcmp(jstr(o, "outcome"), "failed");
		skipped += o && !strcmp(jstr(o, "outcome"), "skipped");
	}
	op_buf_addstr(&sb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"");
	xml_escape(&sb, pipeline);
	op_buf_addch(&sb, '.');
	xml_escape(&sb, jstr(rep, "action"));
	op_buf_addf(&sb,
		    "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\" time=\"%.3f\"",
		    n, failures, skipped, (double)jint(rep, "duration_ms", 0) / 1000.0);
	if (*jstr(rep, "started_at")) {
		op_buf_addstr(&sb, " timestamp=\"");
		xml_escape(&sb, jstr(rep, "started_at"));
		op_buf_addch(&sb, '"');
	}
	op_buf_addstr(&sb, ">\n  <properties>\n");
	op_buf_addstr(&sb, "    <property name=\"orchd.run_id\" value=\"");
	xml_escape(&sb, jstr(rep, "run_id"));
	op_buf_addstr(&sb, "\"/>\n");
	op_buf_addf(&sb, "    <property name=\"orchd.exit_code\" value=\"%lld\"/>\n",
		    jint(rep, "exit_code", 0));
	if (json_object_object_get_ex(rep, "ci", &ci) &&
	    json_object_is_type(ci, json_type_object)) {
		json_object_object_foreach(ci, k, v)
		{
			if (!json_object_is_type(v, json_type_string))
				continue;
			op_buf_addstr(&sb, "    <property name=\"ci.");
			xml_escape(&sb, k);
			op_buf_addstr(&sb, "\" value=\"");
			xml_escape(&sb, json_object_get_string(v));
			op_buf_addstr(&sb, "\"/>\n");
		}
	}
	op_buf_addstr(&sb, "  </properties>\n");
	for (size_t i = 0; i < n; i++)
		if (jobj_at(inst, i))
			junit_testcase(&sb, jobj_at(inst, i), pipeline, log, log_arg);
	op_buf_addstr(&sb, "</testsuite>\n");
	return detach(&sb);
}

/* A JSON string (quotes included) of s. */
static void add_jstring(struct op_buf *sb, const char *s)
{
	orchd_buf_json_str(sb, s, strlen(s));
}

static void trace_event(struct op_buf *sb, int *first, const char *name, const char *cat,
			size_t tid, long long start_ms, long long dur_ms, json_object *sp)
{
	op_buf_addstr(sb, *first ? "\n" : ",\n");
	*first = 0;
	op_buf_addstr(sb, "{\"name\":");
	add_jstring(sb, name);
	op_buf_addstr(sb, ",\"cat\":");
	add_jstring(sb, cat);
	op_buf_addf(sb, ",\"ph\":\"X\",\"pid\":1,\"tid\":%zu,\"ts\":%lld,\"dur\":%lld,\"args\":{",
		    tid, start_ms * 1000, (dur_ms > 0 ? dur_ms : 0) * 1000);
	op_buf_addstr(sb, "\"outcome\":");
	add_jstring(sb, jstr(sp, "outcome"));
	if (jint(sp, "attempt", 0))
		op_buf_addf(sb, ",\"attempt\":%lld", jint(sp, "attempt", 0));
	if (*jstr(sp, "reason")) {
		op_buf_addstr(sb, ",\"reason\":");
		add_jstring(sb, jstr(sp, "reason"));
	}
	op_buf_addstr(sb, "}}");
}

/*
 * The Chrome trace-event format (JSON object form; Perfetto and
 * chrome://tracing open it): one thread per instance, named by its id,
 * and one complete event ("ph":"X", microseconds from the run's start) per
 * span: "wait" (dependencies or a free slot), "spawn" (sources, process,
 * handshake), the action ("validate", "apply", ...), "backoff", "store".
 */
static char *render_trace(json_object *rep)
{
	struct op_buf sb = OP_BUF_INIT;
	json_object *inst = jarr(rep, "instances");
	const char *action = jstr(rep, "action");
	int first = 1;

	op_buf_addstr(&sb, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"pipeline\":");
	add_jstring(&sb, jstr(rep, "pipeline"));
	op_buf_addstr(&sb, ",\"run_id\":");
	add_jstring(&sb, jstr(rep, "run_id"));
	op_buf_addstr(&sb, ",\"action\":");
	add_jstring(&sb, action);
	op_buf_addstr(&sb, "},\"traceEvents\":[");
	op_buf_addstr(&sb,
		      "\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{\"name\":");
	add_jstring(&sb, jstr(rep, "pipeline"));
	op_buf_addstr(&sb, "}}");
	first = 0;
	for (size_t i = 0; i < jlen(inst); i++) {
		json_object *o = jobj_at(inst, i), *spans;

		if (!o)
			continue;
		op_buf_addf(&sb,
			    ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%zu,"
			    "\"args\":{\"name\":",
			    i + 1);
		add_jstring(&sb, jstr(o, "id"));
		op_buf_addf(&sb,
			    "}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,"
			    "\"tid\":%zu,\"args\":{\"sort_index\":%zu}}",
			    i + 1, i + 1);
		spans = jarr(o, "spans");
		for (size_t k = 0; k < jlen(spans); k++) {
			json_object *sp = jobj_at(spans, k);
			const char *kind, *phase;
			long long a, b, setup;

			if (!sp)
				continue;
			kind = jstr(sp, "kind");
			phase = jstr(sp, "phase");
			a = jint(sp, "start_ms", 0);
			b = jint(sp, "end_ms", 0);
			setup = jint(sp, "setup_ms", -1);
			if (!strcmp(kind, "run")) {
				if (setup > 0 && setup <= b - a) {
					trace_event(&sb, &first, "spawn", phase, i + 1, a, setup,
						    sp);
					a += setup;
				}
				trace_event(&sb, &first,
					    !strcmp(phase, "validate") ? "validate" : action, phase,
					    i + 1, a, b - a, sp);
			} else if (b > a) {
				/* (a wait or a write too short to see is left out) */
				trace_event(&sb, &first,
					    !strcmp(kind, "blocked")  ? "wait"
					    : !strcmp(kind, "queued") ? "wait (slot)"
								      : kind,
					    phase, i + 1, a, b - a, sp);
			}
		}
	}
	op_buf_addstr(&sb, "\n]}\n");
	return detach(&sb);
}

/* A label value in the exposition format: \, " and newline escaped. */
static void metric_label(struct op_buf *sb, const char *name, const char *value)
{
	const unsigned char *p = (const unsigned char *)value;
	size_t left = strlen(value);

	op_buf_addstr(sb, name);
	op_buf_addstr(sb, "=\"");
	/* UTF-8 only (the parsers refuse anything else): a byte that is not
	 * becomes U+FFFD, a control character '?' */
	while (left) {
		size_t n = orchd_utf8_len(p, left);

		if (!n) {
			op_buf_addstr(sb, "\xef\xbf\xbd");
			n = 1;
		} else if (*p == '\\' || *p == '"') {
			op_buf_addch(sb, '\\');
			op_buf_addch(sb, *p);
		} else if (*p == '\n') {
			op_buf_addstr(sb, "\\n");
		} else if (*p < 0x20 || *p == 0x7f) {
			op_buf_addch(sb, '?');
		} else {
			op_buf_add(sb, p, n);
		}
		p += n;
		left -= n;
	}
	op_buf_addch(sb, '"');
}

static void metric_head(struct op_buf *sb, const char *name, const char *help)
{
	op_buf_addf(sb, "# TYPE %s gauge\n# HELP %s %s\n", name, name, help);
}

static void metric_instance(struct op_buf *sb, const char *name, const char *pipeline,
			    json_object *o, const char *extra_label, const char *extra_value)
{
	op_buf_addf(sb, "%s{", name);
	metric_label(sb, "pipeline", pipeline);
	op_buf_addch(sb, ',');
	metric_label(sb, "instance", jstr(o, "id"));
	op_buf_addch(sb, ',');
	metric_label(sb, "type", jstr(o, "type"));
	if (extra_label) {
		op_buf_addch(sb, ',');
		metric_label(sb, extra_label, extra_value);
	}
	op_buf_addstr(sb, "} ");
}

/* Seconds of an ISO 8601 UTC time as orchd writes it, or -1. */
static double iso_seconds(const char *iso)
{
	struct tm tm = {0};
	const char *rest = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
	int ms = 0;

	if (!rest)
		return -1;
	if (*rest == '.')
		ms = atoi(rest + 1);
	return (double)timegm(&tm) + ms / 1000.0;
}

/*
 * The run's figures in the text exposition format that both Prometheus
 * (node_exporter's textfile collector) and OpenMetrics parsers read:
 * gauges only, one HELP and TYPE per family, "# EOF" at the end.
 */
static char *render_metrics(json_object *rep)
{
	static const char *const outcomes[] = {"passed", "failed", "skipped"};
	struct op_buf sb = OP_BUF_INIT;
	json_object *inst = jarr(rep, "instances"), *cp;
	const char *pipeline = jstr(rep, "pipeline");
	size_t n = jlen(inst);
	double t;

	metric_head(&sb, "orchd_instance_status",
		    "1 for the status the instance ended this run with (label status)");
	for (size_t i = 0; i < n; i++)
		if (jobj_at(inst, i)) {
			metric_instance(&sb, "orchd_instance_status", pipeline, jobj_at(inst, i),
					"status", jstr(jobj_at(inst, i), "status"));
			op_buf_addstr(&sb, "1\n");
		}
#define PER_INSTANCE(name, help, fmt, expr)                                  \
	do {                                                                 \
		metric_head(&sb, name, help);                                \
		for (size_t i = 0; i < n; i++) {                             \
			json_object *o = jobj_at(inst, i);                   \
			if (!o)                                              \
				continue;                                    \
			metric_instance(&sb, name, pipeline, o, NULL, NULL); \
			op_buf_addf(&sb, fmt "\n", expr);                    \
		}                                                            \
	} while (0)
	PER_INSTANCE("orchd_instance_duration_seconds", "wall time of its steps in this run",
		     "%.3f", jint(o, "duration_ms", 0) / 1000.0);
	PER_INSTANCE("orchd_instance_attempts", "attempts of its action in this run", "%lld",
		     jint(o, "attempts", 0));
	PER_INSTANCE("orchd_instance_cpu_seconds", "CPU time of its extension processes", "%.3f",
		     jint(o, "cpu_ms", 0) / 1000.0);
	PER_INSTANCE("orchd_instance_max_rss_bytes", "largest resident set of its processes",
		     "%lld", jint(o, "max_rss_kb", 0) * 1024);
#undef PER_INSTANCE
	metric_head(&sb, "orchd_instance_last_success_timestamp_seconds",
		    "unix time of its last success (this run's or its stored record's)");
	for (size_t i = 0; i < n; i++) {
		json_object *o = jobj_at(inst, i);

		if (!o || (t = iso_seconds(jstr(o, "last_success_at"))) < 0)
			continue;
		metric_instance(&sb, "orchd_instance_last_success_timestamp_seconds", pipeline, o,
				NULL, NULL);
		op_buf_addf(&sb, "%.3f\n", t);
	}
	metric_head(&sb, "orchd_run_instances", "instances of the run by outcome");
	for (size_t k = 0; k < ARRAY_SIZE(outcomes); k++) {
		size_t c = 0;

		for (size_t i = 0; i < n; i++)
			c += jobj_at(inst, i) &&
			     !strcmp(jstr(jobj_at(inst, i), "outcome"), outcomes[k]);
		op_buf_addstr(&sb, "orchd_run_instances{");
		metric_label(&sb, "pipeline", pipeline);
		op_buf_addch(&sb, ',');
		metric_label(&sb, "outcome", outcomes[k]);
		op_buf_addf(&sb, "} %zu\n", c);
	}
#define PER_RUN(name, help, fmt, value)                           \
	do {                                                      \
		metric_head(&sb, name, help);                     \
		op_buf_addstr(&sb, name "{");                     \
		metric_label(&sb, "pipeline", pipeline);          \
		op_buf_addch(&sb, ',');                           \
		metric_label(&sb, "action", jstr(rep, "action")); \
		op_buf_addf(&sb, "} " fmt "\n", value);           \
	} while (0)
	PER_RUN("orchd_run_duration_seconds", "wall time of the run", "%.3f",
		jint(rep, "duration_ms", 0) / 1000.0);
	cp = NULL;
	json_object_object_get_ex(rep, "critical_path", &cp);
	PER_RUN("orchd_run_critical_path_seconds",
		"from the run's start to the end of its last instance, through the chain of "
		"dependencies that ended last",
		"%.3f", jint(cp, "duration_ms", 0) / 1000.0);
	PER_RUN("orchd_run_exit_code", "orchd's exit status", "%lld", jint(rep, "exit_code", 0));
	if ((t = iso_seconds(jstr(rep, "ended_at"))) >= 0)
		PER_RUN("orchd_run_end_timestamp_seconds", "unix time the run ended", "%.3f", t);
#undef PER_RUN
	op_buf_addstr(&sb, "# EOF\n");
	return detach(&sb);
}

/* --- HTML ------------------------------------------------------------------ */

/* The page's look: one style sheet, no fonts or images fetched. */
static const char html_style[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}"
	"h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .5em}"
	"table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left;"
	"border-bottom:1px solid #ddd}td.n{text-align:right;font-variant-numeric:tabular-nums}"
	".passed{color:#1a7f37}.failed{color:#cf222e}.skipped{color:#9a6700}"
	"pre{background:#f6f8fa;padding:.6em;overflow-x:auto;margin:.3em 0}"
	"details{margin:.2em 0}summary{cursor:pointer}"
	".l-error{color:#cf222e}.l-warning{color:#9a6700}.l-debug{color:#6e7781}"
	"svg text{font:11px system-ui,sans-serif}"
	".k-blocked{fill:#eaeef2}.k-queued{fill:#d0d7de}.k-spawn{fill:#b6e3ff}"
	".k-run{fill:#54aeff}.k-validate{fill:#8250df}.k-backoff{fill:#ffd8b5}"
	".k-store{fill:#6e7781}.o-failed,.o-retry,.o-cancelled{fill:#cf222e}"
	".critical text.label{font-weight:bold}.critical rect.k-run{stroke:#222;stroke-width:1}"
	".vphase{fill:#fbefff}.node rect{fill:#fff;stroke:#6e7781}"
	".node.passed rect{stroke:#1a7f37;stroke-width:2}.node.failed rect{fill:#ffebe9;"
	"stroke:#cf222e;stroke-width:2}.node.skipped rect{fill:#fff8c5;stroke:#9a6700}"
	".edge{stroke:#8c959f;fill:none}.node.critical rect{stroke-width:3}"
	".node.unselected rect{stroke:#8c959f;stroke-dasharray:4 3}.node.unselected "
	"text{fill:#6e7781}"
	".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;"
	"vertical-align:middle}";

static void html_text(struct op_buf *sb, const char *s)
{
	xml_escape(sb, s);
}

/* An instance's outcome as a class name: one of the known words only (a
 * stored report may hold anything). */
static const char *outcome_class(json_object *o)
{
	static const char *const known[] = {"passed", "failed", "skipped", "unselected"};
	const char *v = jstr(o, "outcome");

	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (!strcmp(v, known[i]))
			return known[i];
	return "other";
}

/* A span's class: its kind, or for a run its phase; failed runs red. */
static const char *span_class(json_object *sp, int *failed)
{
	const char *kind = jstr(sp, "kind"), *out = jstr(sp, "outcome");

	*failed = !strcmp(kind, "run") && (!strcmp(out, "failed") || !strcmp(out, "retry") ||
					   !strcmp(out, "cancelled") || !strcmp(out, "unresolved"));
	if (!strcmp(kind, "run"))
		return !strcmp(jstr(sp, "phase"), "validate") ? "k-validate" : "k-run";
	return !strcmp(kind, "blocked")	  ? "k-blocked"
	       : !strcmp(kind, "queued")  ? "k-queued"
	       : !strcmp(kind, "backoff") ? "k-backoff"
					  : "k-store";
}

static int in_array(json_object *arr, const char *s)
{
	for (size_t i = 0; i < jlen(arr); i++)
		if (!strcmp(jstr_at(arr, i), s))
			return 1;
	return 0;
}

#define TL_LEFT	 220 /* px for the labels */
#define TL_WIDTH 900 /* px for the time axis */
#define TL_ROW	 18

static void html_rect(struct op_buf *sb, const char *cls, double x, int y, double w,
		      json_object *sp, const char *what, long long a, long long b)
{
	if (w < 1)
		w = 1;
	op_buf_addf(sb, "<rect class=\"%s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\">", cls,
		    x, y, w, TL_ROW - 4);
	op_buf_addstr(sb, "<title>");
	html_text(sb, what);
	op_buf_addf(sb, " %lld–%lld ms", a, b);
	if (jint(sp, "attempt", 0))
		op_buf_addf(sb, ", attempt %lld", jint(sp, "attempt", 0));
	op_buf_addstr(sb, ": ");
	html_text(sb, jstr(sp, "outcome"));
	if (*jstr(sp, "reason")) {
		op_buf_addstr(sb, " (");
		html_text(sb, jstr(sp, "reason"));
		op_buf_addch(sb, ')');
	}
	op_buf_addstr(sb, "</title></rect>");
}

/* The Gantt chart: a row per instance, a bar per span; the validate
 * phase shaded, the critical path's rows in bold. */
static void html_timeline(struct op_buf *sb, json_object *rep, json_object *inst, json_object *crit)
{
	size_t n = jlen(inst);
	long long end = 1, vstart = -1, vend = -1;
	double scale;
	int height = (int)(n + 1) * TL_ROW + 24;

	for (size_t i = 0; i < n; i++) {
		json_object *spans = jarr(jobj_at(inst, i), "spans");

		for (size_t k = 0; k < jlen(spans); k++) {
			json_object *sp = jobj_at(spans, k);
			long long a = jint(sp, "start_ms", 0), b = jint(sp, "end_ms", 0);

			if (b > end)
				end = b;
			if (!strcmp(jstr(sp, "phase"), "validate")) {
				if (vstart < 0 || a < vstart)
					vstart = a;
				if (b > vend)
					vend = b;
			}
		}
	}
	if (jint(rep, "duration_ms", 0) > end)
		end = jint(rep, "duration_ms", 0);
	scale = (double)TL_WIDTH / (double)end;
	op_buf_addf(sb,
		    "<svg id=\"timeline-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		    "height=\"%d\" role=\"img\" aria-label=\"timeline\">",
		    TL_LEFT + TL_WIDTH + 20, height);
	if (vstart >= 0)
		op_buf_addf(sb,
			    "<rect class=\"vphase\" x=\"%.1f\" y=\"0\" width=\"%.1f\" "
			    "height=\"%d\"><title>validate phase</title></rect>",
			    TL_LEFT + vstart * scale, (vend - vstart) * scale + 1, height - 20);
	/* the time axis: ten ticks */
	for (int t = 0; t <= 10; t++) {
		char lbl[32];
		double x = TL_LEFT + t * (TL_WIDTH / 10.0);

		orchd_format_duration(lbl, sizeof(lbl), end * t / 10);
		op_buf_addf(sb,
			    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"0\" y2=\"%d\" stroke=\"#eee\"/>"
			    "<text x=\"%.1f\" y=\"%d\">%s</text>",
			    x, x, height - 20, x, height - 6, lbl);
	}
	for (size_t i = 0; i < n; i++) {
		json_object *o = jobj_at(inst, i), *spans;
		int y = (int)i * TL_ROW + 2, drawn = 0;
		const char *id;

		if (!o)
			continue;
		id = jstr(o, "id");
		spans = jarr(o, "spans");
		op_buf_addf(sb, "<g class=\"bar-row %s%s\" data-instance=\"", outcome_class(o),
			    in_array(crit, id) ? " critical" : "");
		html_text(sb, id);
		op_buf_addf(sb, "\"><text class=\"label\" x=\"4\" y=\"%d\">", y + TL_ROW - 6);
		html_text(sb, id);
		op_buf_addstr(sb, "</text>");
		for (size_t k = 0; k < jlen(spans); k++) {
			json_object *sp = jobj_at(spans, k);
			long long a = jint(sp, "start_ms", 0), b = jint(sp, "end_ms", 0);
			long long setup = jint(sp, "setup_ms", -1);
			const char *cls, *what;
			int failed;
			char buf[64];

			if (!sp)
				continue;
			cls = span_class(sp, &failed);
			what = !strcmp(jstr(sp, "kind"), "run") ? jstr(sp, "phase")
								: jstr(sp, "kind");
			if (!strcmp(jstr(sp, "kind"), "run") && setup > 0 && setup <= b - a) {
				html_rect(sb, "k-spawn", TL_LEFT + a * scale, y, setup * scale, sp,
					  "spawn", a, a + setup);
				a += setup;
			}
			snprintf(buf, sizeof(buf), "%s%s", cls, failed ? " o-failed" : "");
			html_rect(sb, buf, TL_LEFT + a * scale, y, (b - a) * scale, sp, what, a, b);
			drawn++;
		}
		if (!drawn) /* never ran: a mark at the start, so that it is seen */
			op_buf_addf(sb,
				    "<rect class=\"k-blocked\" x=\"%d\" y=\"%d\" width=\"2\" "
				    "height=\"%d\"><title>not run</title></rect>",
				    TL_LEFT, y, TL_ROW - 4);
		op_buf_addstr(sb, "</g>");
	}
	op_buf_addstr(sb, "</svg>\n<p class=\"legend\">"
			  "<span class=\"k-vlegend\" style=\"background:#8250df\"></span>validate"
			  "<span style=\"background:#b6e3ff\"></span>spawn"
			  "<span style=\"background:#54aeff\"></span>action"
			  "<span style=\"background:#cf222e\"></span>failed attempt"
			  "<span style=\"background:#ffd8b5\"></span>backoff"
			  "<span style=\"background:#d0d7de\"></span>waiting for a slot"
			  "<span style=\"background:#eaeef2\"></span>waiting for dependencies"
			  "<span style=\"background:#6e7781\"></span>state written"
			  "<span style=\"background:#fbefff\"></span>validate phase"
			  " &#160; <b>bold</b>: the critical path</p>\n");
}

/* The dependency graph: each instance in the column of its longest chain
 * of dependencies, an edge from each dependency. */
static void html_graph(struct op_buf *sb, json_object *inst, json_object *crit)
{
	size_t n = jlen(inst), *level = xcalloc(n + 1, sizeof(size_t));
	size_t *row = xcalloc(n + 1, sizeof(size_t)), *count, maxlevel = 0, maxrow = 0;
	struct orchd_map index = ORCHD_MAP_INIT;
	int changed = 1;

	for (size_t i = 0; i < n; i++)
		if (jobj_at(inst, i))
			orchd_map_put(&index, jstr(jobj_at(inst, i), "id"), i, NULL);
	/* longest path, by relaxation (at most n rounds: the graph is acyclic) */
	for (size_t round = 0; changed && round <= n; round++) {
		changed = 0;
		for (size_t i = 0; i < n; i++) {
			json_object *deps = jarr(jobj_at(inst, i), "depends_on");

			for (size_t k = 0; k < jlen(deps); k++) {
				size_t *v = orchd_map_get(&index, jstr_at(deps, k));

				if (v && level[*v] + 1 > level[i] && level[*v] < n) {
					level[i] = level[*v] + 1;
					changed = 1;
				}
			}
		}
	}
	count = xcalloc(n + 2, sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		row[i] = count[level[i]]++;
		if (level[i] > maxlevel)
			maxlevel = level[i];
		if (row[i] > maxrow)
			maxrow = row[i];
	}
	op_buf_addf(sb,
		    "<svg id=\"graph-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%zu\" "
		    "height=\"%zu\" role=\"img\" aria-label=\"dependency graph\">",
		    (maxlevel + 1) * 200 + 20, (maxrow + 1) * 36 + 20);
	for (size_t i = 0; i < n; i++) {
		json_object *deps = jarr(jobj_at(inst, i), "depends_on");

		for (size_t k = 0; k < jlen(deps); k++) {
			size_t *v = orchd_map_get(&index, jstr_at(deps, k)), d;

			if (!v)
				continue;
			d = *v;
			op_buf_addf(
				sb,
				"<path class=\"edge\" d=\"M%zu %zu C%zu %zu %zu %zu %zu %zu\"/>",
				level[d] * 200 + 170, row[d] * 36 + 24, level[d] * 200 + 190,
				row[d] * 36 + 24, level[i] * 200, row[i] * 36 + 24,
				level[i] * 200 + 10, row[i] * 36 + 24);
		}
	}
	for (size_t i = 0; i < n; i++) {
		json_object *o = jobj_at(inst, i);
		const char *id;

		if (!o)
			continue;
		id = jstr(o, "id");
		op_buf_addf(sb, "<g class=\"node %s%s\" data-instance=\"", outcome_class(o),
			    in_array(crit, id) ? " critical" : "");
		html_text(sb, id);
		op_buf_addf(sb,
			    "\"><rect x=\"%zu\" y=\"%zu\" width=\"160\" height=\"28\" rx=\"4\"/>"
			    "<text x=\"%zu\" y=\"%zu\">",
			    level[i] * 200 + 10, row[i] * 36 + 10, level[i] * 200 + 16,
			    row[i] * 36 + 28);
		html_text(sb, strlen(id) > 26 ? jstr(o, "name") : id);
		op_buf_addstr(sb, "<title>");
		html_text(sb, id);
		op_buf_addstr(sb, ": ");
		html_text(sb, jstr(o, "status"));
		op_buf_addstr(sb, "</title></text></g>");
	}
	op_buf_addstr(sb, "</svg>\n");
	orchd_map_release(&index);
	free(level);
	free(row);
	free(count);
}

/* A log, line by line, each line in the class of its level. */
static void html_log(struct op_buf *sb, const char *text)
{
	const char *p = text;

	while (*p) {
		size_t len = strcspn(p, "\n");
		char *line = xstrndup(p, len);
		const char *cls = NULL;

		/* "error: ..." or a diagnostic "FILE:LINE:COL: error: ..." */
		if (!strncmp(line, "error: ", 7) || strstr(line, ": error: "))
			cls = "l-error";
		else if (!strncmp(line, "warning: ", 9))
			cls = "l-warning";
		else if (!strncmp(line, "debug: ", 7))
			cls = "l-debug";
		if (cls)
			op_buf_addf(sb, "<span class=\"%s\">", cls);
		html_text(sb, line);
		if (cls)
			op_buf_addstr(sb, "</span>");
		op_buf_addch(sb, '\n');
		free(line);
		p += len;
		if (*p)
			p++;
	}
}

/*
 * The run as one page: summary, timeline, dependency graph, outputs and
 * the logs (in <details>, which collapse without a script).  Nothing is
 * fetched: the style is inline, the charts are inline SVG, and the page
 * has no script at all.  Every text comes from the report (masked when it
 * was made) or from the masked log files.
 */
static char *render_html(json_object *rep, orchd_report_log_fn log, void *log_arg)
{
	struct op_buf sb = OP_BUF_INIT;
	json_object *inst = jarr(rep, "instances"), *cp = NULL, *crit = NULL, *ci = NULL;
	size_t n = jlen(inst);
	char buf[64];

	json_object_object_get_ex(rep, "critical_path", &cp);
	crit = jarr(cp, "instances");
	op_buf_addstr(&sb, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			   "<meta name=\"generator\" content=\"orchd\"><title>orchd: ");
	html_text(&sb, jstr(rep, "pipeline"));
	op_buf_addch(&sb, ' ');
	html_text(&sb, jstr(rep, "action"));
	op_buf_addstr(&sb, " ");
	html_text(&sb, jstr(rep, "run_id"));
	op_buf_addstr(&sb, "</title><style>");
	op_buf_addstr(&sb, html_style);
	op_buf_addstr(&sb, "</style></head><body>\n<header><h1>");
	html_text(&sb, jstr(rep, "pipeline"));
	op_buf_addstr(&sb, ": ");
	html_text(&sb, jstr(rep, "action"));
	op_buf_addstr(&sb, "</h1><p id=\"run\">run <code>");
	html_text(&sb, jstr(rep, "run_id"));
	orchd_format_duration(buf, sizeof(buf), jint(rep, "duration_ms", 0));
	op_buf_addf(&sb, "</code> · exit %lld · started ", jint(rep, "exit_code", 0));
	html_text(&sb, jstr(rep, "started_at"));
	op_buf_addf(&sb, " · %s", buf);
	orchd_format_duration(buf, sizeof(buf), jint(cp, "duration_ms", 0));
	op_buf_addf(&sb, " · critical path %s", buf);
	if (json_object_object_get_ex(rep, "ci", &ci) &&
	    json_object_is_type(ci, json_type_object)) {
		op_buf_addstr(&sb, " · build ");
		html_text(&sb,
			  *jstr(ci, "build_tag") ? jstr(ci, "build_tag") : jstr(ci, "build_url"));
		if (*jstr(ci, "commit")) {
			op_buf_addstr(&sb, " at ");
			html_text(&sb, jstr(ci, "commit"));
		}
	}
	op_buf_addstr(&sb, "</p></header>\n");

	/* summary */
	op_buf_addstr(&sb, "<section id=\"summary\"><h2>Summary</h2><table><thead><tr>"
			   "<th>instance</th><th>status</th><th>attempts</th><th>duration</th>"
			   "<th>CPU</th><th>max RSS</th></tr></thead><tbody>\n");
	for (size_t i = 0; i < n; i++) {
		json_object *o = jobj_at(inst, i);
		char d[32], c[32], r[32];

		if (!o)
			continue;
		orchd_format_duration(d, sizeof(d), jint(o, "duration_ms", 0));
		orchd_format_duration(c, sizeof(c), jint(o, "cpu_ms", 0));
		if (jint(o, "max_rss_kb", 0))
			orchd_format_kib(r, sizeof(r), (long)jint(o, "max_rss_kb", 0));
		else
			snprintf(r, sizeof(r), "-");
		op_buf_addstr(&sb, "<tr data-instance=\"");
		html_text(&sb, jstr(o, "id"));
		op_buf_addstr(&sb, "\"><td><a href=\"#log-");
		html_text(&sb, jstr(o, "id"));
		op_buf_addstr(&sb, "\">");
		html_text(&sb, jstr(o, "id"));
		op_buf_addf(&sb, "</a></td><td class=\"%s\">", outcome_class(o));
		html_text(&sb, jstr(o, "status"));
		op_buf_addf(&sb,
			    "</td><td class=\"n\">%lld</td><td class=\"n\">%s</td><td "
			    "class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
			    jint(o, "attempts", 0), d, c, r);
	}
	op_buf_addstr(&sb, "</tbody></table></section>\n");

	op_buf_addstr(&sb, "<section id=\"timeline\"><h2>Timeline</h2>\n");
	html_timeline(&sb, rep, inst, crit);
	op_buf_addstr(&sb, "</section>\n<section id=\"graph\"><h2>Dependency graph</h2>\n");
	{
		/* the instances left out of the run too, dashed */
		json_object *all = json_object_new_array(), *unsel = jarr(rep, "unselected");

		for (size_t i = 0; i < n; i++)
			json_object_array_add(all,
					      json_object_get(json_object_array_get_idx(inst, i)));
		for (size_t i = 0; i < jlen(unsel); i++) {
			json_object *u = jobj_at(unsel, i);

			if (!u)
				continue;
			json_object_object_add(u, "outcome", json_object_new_string("unselected"));
			json_object_object_add(u, "status", json_object_new_string("not selected"));
			json_object_array_add(all, json_object_get(u));
		}
		html_graph(&sb, all, crit);
		json_object_put(all);
	}
	op_buf_addstr(&sb, "<p class=\"legend\">green: passed · red: failed · yellow: skipped "
			   "· dashed: not selected for this run · thick: the critical path</p>\n");
	op_buf_addstr(&sb, "</section>\n");

	/* outputs (secret values are "***" in the report) */
	op_buf_addstr(&sb, "<section id=\"outputs\"><h2>Outputs</h2><table><thead><tr>"
			   "<th>instance</th><th>output</th><th>value</th></tr></thead><tbody>\n");
	for (size_t i = 0; i < n; i++) {
		json_object *o = jobj_at(inst, i), *outs = NULL;

		if (!o || !json_object_object_get_ex(o, "outputs", &outs) ||
		    !json_object_is_type(outs, json_type_object))
			continue;
		json_object_object_foreach(outs, k, v)
		{
			json_object *val = NULL;

			json_object_object_get_ex(v, "value", &val);
			op_buf_addstr(&sb, "<tr><td>");
			html_text(&sb, jstr(o, "id"));
			op_buf_addstr(&sb, "</td><td>");
			html_text(&sb, k);
			op_buf_addstr(&sb, "</td><td><code>");
			html_text(&sb, json_object_is_type(val, json_type_string)
					       ? json_object_get_string(val)
					       : json_object_to_json_string_ext(
							 val, JSON_C_TO_STRING_PLAIN));
			op_buf_addstr(&sb, "</code></td></tr>\n");
		}
	}
	op_buf_addstr(&sb, "</tbody></table></section>\n");

	/* logs */
	op_buf_addstr(&sb, "<section id=\"logs\"><h2>Logs</h2>\n");
	for (size_t i = 0; i < n; i++) {
		json_object *o = jobj_at(inst, i);
		char *text;

		if (!o)
			continue;
		text = log ? log(log_arg, jstr(o, "id")) : NULL;
		op_buf_addstr(&sb, "<details id=\"log-");
		html_text(&sb, jstr(o, "id"));
		op_buf_addstr(&sb, "\" data-instance=\"");
		html_text(&sb, jstr(o, "id"));
		op_buf_addf(&sb, "\"%s><summary>",
			    strcmp(jstr(o, "outcome"), "failed") ? "" : " open");
		html_text(&sb, jstr(o, "id"));
		op_buf_addf(&sb, " <span class=\"%s\">", outcome_class(o));
		html_text(&sb, jstr(o, "status"));
		op_buf_addstr(&sb, "</span></summary><pre>");
		if (text)
			html_log(&sb, text);
		op_buf_addstr(&sb, "</pre></details>\n");
		free(text);
	}
	op_buf_addstr(&sb, "</section>\n</body></html>\n");
	return detach(&sb);
}

char *orchd_report_render(json_object *rep, enum orchd_report_format fmt, orchd_report_log_fn log,
			  void *log_arg)
{
	if (!json_object_is_type(rep, json_type_object) ||
	    strcmp(jstr(rep, "format"), "orchd-report") || !jarr(rep, "instances")) {
		error("not an orchd report (expected \"format\": \"orchd-report\" and its "
		      "instances)");
		return NULL;
	}
	if (!log) {
		log = stored_log;
		log_arg = (void *)(uintptr_t)op_get_str(rep, "run_dir");
	}
	switch (fmt) {
	case ORCHD_REPORT_JUNIT:
		return render_junit(rep, log, log_arg);
	case ORCHD_REPORT_TRACE:
		return render_trace(rep);
	case ORCHD_REPORT_METRICS:
		return render_metrics(rep);
	case ORCHD_REPORT_HTML:
		return render_html(rep, log, log_arg);
	}
	return NULL;
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
		char *t;

		if (n[i].unselected)
			continue;
		t = masked(mask, n[i].log);
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
	for (size_t i = 0; i < nn; i++) {
		char *p;

		if (!tmp[i]) /* not selected, or not reached after an error */
			continue;
		p = xasprintf("%s/%s.log", dir, n[i].id);

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

/* The logs of a run in progress, for the renderers: masked now. */
struct live_logs {
	const struct orchd_report_node *n;
	const struct orchd_mask *mask;
	struct orchd_map index; /* id -> index into n */
};

static char *live_log(void *arg, const char *id)
{
	struct live_logs *l = arg;
	size_t *v = orchd_map_get(&l->index, id);

	return v ? masked(l->mask, l->n[*v].log) : NULL;
}

/* Render rep into each path of out that is set. */
static int write_rendered(json_object *rep, const struct orchd_report_paths *out,
			  orchd_report_log_fn log, void *log_arg)
{
	const struct {
		const char *path;
		enum orchd_report_format fmt;
	} files[] = {
		{out->junit, ORCHD_REPORT_JUNIT},
		{out->trace, ORCHD_REPORT_TRACE},
		{out->metrics, ORCHD_REPORT_METRICS},
		{out->html, ORCHD_REPORT_HTML},
	};
	int ret = 0;

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char *x;

		if (!files[i].path)
			continue;
		if (!(x = orchd_report_render(rep, files[i].fmt, log, log_arg))) {
			ret = -1;
			continue;
		}
		if (orchd_write_file_atomic(files[i].path, x, strlen(x)) < 0)
			ret = -1;
		free(x);
	}
	return ret;
}

int orchd_report_write_all(const char *run_id, const char *pipeline, const char *action,
			   int exit_code, long long started_at, long long ended_at,
			   const struct orchd_report_node *n, size_t nn,
			   const struct orchd_mask *mask, const struct orchd_report_paths *paths,
			   const char *run_dir)
{
	struct live_logs live = {n, mask, ORCHD_MAP_INIT};
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
	{
		/* the report names its run directory absolutely, so that a
		 * copy of it finds the logs from anywhere */
		char *abs = run_dir ? realpath(run_dir, NULL) : NULL;

		rep = orchd_report_json(run_id, pipeline, action, exit_code, started_at, ended_at,
					n, nn, mask, abs ? abs : run_dir);
		free(abs);
	}
	txt = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE);
	if (run_dir) {
		char *p = xasprintf("%s/report.json", run_dir);

		if (orchd_write_file_atomic(p, txt, strlen(txt)) < 0)
			ret = -1;
		free(p);
	}
	if (paths->report && orchd_write_file_atomic(paths->report, txt, strlen(txt)) < 0)
		ret = -1;
	for (size_t i = 0; i < nn; i++)
		orchd_map_put(&live.index, n[i].id, i, NULL);
	if (write_rendered(rep, paths, live_log, &live) < 0)
		ret = -1;
	orchd_map_release(&live.index);
	json_object_put(rep);
	return ret;
}

/* A stored report's JSON (a file anyone may have edited): NULL when it
 * does not parse. */
static json_object *parse_report(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(64);
	json_object *o;

	if (!tok)
		die("out of memory");
	o = json_tokener_parse_ex(tok, text, (int)len + 1);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* The newest run of a runs/ directory that has a report: the one whose
 * report.json was written last (run ids begin with their start time, but
 * only to the second). */
static char *latest_run(const char *runs)
{
	DIR *d = opendir(runs);
	struct dirent *e;
	struct timespec best_t = {0, 0};
	char *best = NULL;

	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		struct stat st;
		char *rep;

		if (e->d_name[0] == '.')
			continue;
		rep = xasprintf("%s/%s/report.json", runs, e->d_name);
		if (!stat(rep, &st) && S_ISREG(st.st_mode) &&
		    (!best || st.st_mtim.tv_sec > best_t.tv_sec ||
		     (st.st_mtim.tv_sec == best_t.tv_sec && st.st_mtim.tv_nsec > best_t.tv_nsec))) {
			free(best);
			best = xstrdup(e->d_name);
			best_t = st.st_mtim;
		}
		free(rep);
	}
	closedir(d);
	return best;
}

int orchd_report_convert(const char *path, const struct orchd_report_paths *out)
{
	struct op_buf b;
	struct stat st;
	json_object *rep;
	char *file;
	int ret;

	/* a run directory stands for its report.json, a state directory for
	 * its latest run's */
	if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
		char *runs = xasprintf("%s/runs", path), *last = NULL;

		if (!stat(runs, &st) && S_ISDIR(st.st_mode) && (last = latest_run(runs))) {
			file = xasprintf("%s/%s/report.json", runs, last);
			free(last);
		} else {
			file = xasprintf("%s/report.json", path);
		}
		free(runs);
	} else {
		file = xstrdup(path);
	}
	op_buf_init(&b, ORCHD_REPORT_MAX_JSON);
	if (orchd_read_file(file, &b) < 0) {
		ret = error("cannot read %s: %s", file, strerror(errno));
		goto out;
	}
	rep = parse_report(orchd_buf_str(&b), b.len);
	if (!rep || !json_object_is_type(rep, json_type_object) ||
	    strcmp(jstr(rep, "format"), "orchd-report")) {
		json_object_put(rep);
		ret = error("%s: not an orchd report (JSON with \"format\": \"orchd-report\")",
			    file);
		goto out;
	}
	ret = write_rendered(rep, out, NULL, NULL);
	json_object_put(rep);
out:
	op_buf_release(&b);
	free(file);
	return ret;
}
