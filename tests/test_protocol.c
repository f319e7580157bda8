/*
 * Tests of the protocol library: the conformance vectors
 * (protocol/vectors/messages.jsonl), the line splitter, the encoders (every
 * encoded message must parse back as valid), versions and the supervisor's
 * hello check.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "orchd_protocol.h"
#include "testutil.h"

/* Build the raw line of one vector into a malloc'ed buffer. */
static char *vector_line(struct json_object *v, size_t *len)
{
	struct json_object *x;

	if (json_object_object_get_ex(v, "line", &x)) {
		*len = (size_t)json_object_get_string_len(x);
		return strndup(json_object_get_string(x), *len);
	}
	if (json_object_object_get_ex(v, "line_hex", &x)) {
		const char *h = json_object_get_string(x);
		size_t n = strlen(h) / 2;
		char *out = malloc(n + 1);

		for (size_t i = 0; i < n; i++) {
			unsigned b;

			sscanf(h + 2 * i, "%2x", &b);
			out[i] = (char)b;
		}
		out[n] = '\0';
		*len = n;
		return out;
	}
	if (json_object_object_get_ex(v, "line_gen", &x)) {
		const char *pre = op_get_str(x, "prefix"), *fill = op_get_str(x, "fill");
		const char *suf = op_get_str(x, "suffix");
		size_t total = (size_t)op_get_int(x, "total", 0);
		size_t np = strlen(pre), ns = strlen(suf);
		char *out = malloc(total + 1);

		ck_assert_uint_ge(total, np + ns);
		memcpy(out, pre, np);
		memset(out + np, fill[0], total - np - ns);
		memcpy(out + total - ns, suf, ns);
		out[total] = '\0';
		*len = total;
		return out;
	}
	ck_abort_msg("vector without line, line_hex or line_gen");
	return NULL;
}

static char *verdict_text(const struct op_parsed *p)
{
	char *s = NULL;

	switch (p->verdict) {
	case OP_EMPTY:
		return strdup("empty");
	case OP_NON_PROTOCOL:
		return strdup("non-protocol");
	case OP_VALID:
		ck_assert_int_eq(asprintf(&s, "valid:%s", op_msg_type_name(p->type)) > 0, 1);
		return s;
	case OP_PROTOCOL_ERROR:
		ck_assert_int_eq(asprintf(&s, "error:%s", p->error) > 0, 1);
		return s;
	}
	return strdup("?");
}

START_TEST(test_vectors)
{
	char *path = test_src_path("protocol/vectors/messages.jsonl");
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, count = 0, failures = 0;

	ck_assert_ptr_nonnull(f);
	while ((n = getline(&buf, &cap, f)) > 0) {
		struct json_object *v;
		struct op_parsed p;
		const char *dir, *expect;
		char *line, *got;
		size_t len;

		lineno++;
		if (n <= 1 || buf[0] == '#')
			continue;
		v = json_tokener_parse(buf);
		ck_assert_msg(v != NULL, "vectors line %d: not JSON", lineno);
		dir = op_get_str(v, "dir");
		expect = op_get_str(v, "expect");
		ck_assert_ptr_nonnull(dir);
		ck_assert_ptr_nonnull(expect);
		line = vector_line(v, &len);
		ck_assert_int_eq(op_parse_line(!strcmp(dir, "to_ext") ? OP_TO_EXT : OP_FROM_EXT,
					       line, len, &p),
				 0);
		got = verdict_text(&p);
		if (strcmp(got, expect)) {
			fprintf(stderr, "vectors line %d: expected [%s], got [%s]\n", lineno,
				expect, got);
			failures++;
		}
		count++;
		free(got);
		free(line);
		op_parsed_release(&p);
		json_object_put(v);
	}
	free(buf);
	fclose(f);
	free(path);
	ck_assert_int_gt(count, 100);
	ck_assert_msg(failures == 0, "%d of %d vectors failed", failures, count);
}
END_TEST

/* Pull one line and check status and text. */
static void expect_line(struct op_splitter *sp, enum op_line_status st, const char *text)
{
	const char *line;
	size_t len;

	ck_assert_int_eq(op_splitter_next(sp, &line, &len), st);
	if (text) {
		ck_assert_uint_eq(len, strlen(text));
		ck_assert_str_eq(line, text);
	}
}

START_TEST(test_splitter_basic)
{
	struct op_splitter *sp = op_splitter_new(0, OP_SPLIT_STRICT);

	ck_assert_int_eq(op_splitter_feed(sp, "ab", 2), 0);
	expect_line(sp, OP_LINE_NONE, NULL);
	ck_assert_int_eq(op_splitter_feed(sp, "c\n\nde\nf", 7), 0);
	expect_line(sp, OP_LINE_OK, "abc");
	expect_line(sp, OP_LINE_OK, "");
	expect_line(sp, OP_LINE_OK, "de");
	expect_line(sp, OP_LINE_NONE, NULL);
	ck_assert(!op_splitter_done(sp));
	op_splitter_finish(sp);
	expect_line(sp, OP_LINE_OK, "f");
	expect_line(sp, OP_LINE_NONE, NULL);
	ck_assert(op_splitter_done(sp));
	op_splitter_free(sp);
}
END_TEST

START_TEST(test_splitter_strict_overlong_recovers)
{
	struct op_splitter *sp = op_splitter_new(4, OP_SPLIT_STRICT);

	ck_assert_int_eq(op_splitter_feed(sp, "abcd\nabcdefg", 12), 0);
	expect_line(sp, OP_LINE_OK, "abcd");
	expect_line(sp, OP_LINE_TOO_LONG, "abcd");
	expect_line(sp, OP_LINE_NONE, NULL);
	/* the rest of the long line, across feeds, is discarded */
	ck_assert_int_eq(op_splitter_feed(sp, "hijkl", 5), 0);
	expect_line(sp, OP_LINE_NONE, NULL);
	ck_assert_int_eq(op_splitter_feed(sp, "mn\nxy\n", 6), 0);
	expect_line(sp, OP_LINE_OK, "xy");
	expect_line(sp, OP_LINE_NONE, NULL);
	op_splitter_finish(sp);
	ck_assert(op_splitter_done(sp));
	op_splitter_free(sp);
}
END_TEST

START_TEST(test_splitter_chunk_mode)
{
	struct op_splitter *sp = op_splitter_new(4, OP_SPLIT_CHUNK);

	ck_assert_int_eq(op_splitter_feed(sp, "abcdefghij\nk", 12), 0);
	expect_line(sp, OP_LINE_OK, "abcd");
	expect_line(sp, OP_LINE_OK, "efgh");
	expect_line(sp, OP_LINE_OK, "ij");
	expect_line(sp, OP_LINE_NONE, NULL);
	op_splitter_finish(sp);
	expect_line(sp, OP_LINE_OK, "k");
	ck_assert(op_splitter_done(sp));
	op_splitter_free(sp);
}
END_TEST

/* Split input fed in slices of `step` bytes; render "S:len:text|" per line. */
static char *split_all(const char *in, size_t n, size_t step, size_t max, enum op_split_mode mode)
{
	struct op_splitter *sp = op_splitter_new(max, mode);
	size_t cap = 4 * n + 1024, used = 0;
	char *out = malloc(cap);
	const char *line;
	size_t len;
	enum op_line_status st;

	out[0] = '\0';
	for (size_t i = 0; i <= n; i += step) {
		if (i < n)
			ck_assert_int_eq(op_splitter_feed(sp, in + i, i + step > n ? n - i : step),
					 0);
		else
			op_splitter_finish(sp);
		while ((st = op_splitter_next(sp, &line, &len)) != OP_LINE_NONE) {
			ck_assert_uint_eq(strlen(line), len);
			used += (size_t)snprintf(out + used, cap - used, "%d:%zu:%s|", st, len,
						 line);
			ck_assert_uint_lt(used, cap);
		}
		if (i >= n)
			break;
	}
	op_splitter_finish(sp);
	while ((st = op_splitter_next(sp, &line, &len)) != OP_LINE_NONE)
		used += (size_t)snprintf(out + used, cap - used, "%d:%zu:%s|", st, len, line);
	ck_assert(op_splitter_done(sp));
	op_splitter_free(sp);
	return out;
}

START_TEST(test_splitter_slices_agree)
{
	char in[3000];
	size_t n = 0;
	static const size_t steps[] = {1, 2, 3, 7, 64, 4096};

	/* lines of every length 0..40 (max is 16), and a partial last line */
	for (size_t l = 0; l <= 40; l++) {
		for (size_t k = 0; k < l; k++)
			in[n++] = (char)('a' + (l + k) % 26);
		in[n++] = '\n';
	}
	memcpy(in + n, "tail", 4);
	n += 4;
	for (int m = 0; m < 2; m++) {
		char *ref = split_all(in, n, n, 16, (enum op_split_mode)m);

		ck_assert_ptr_nonnull(strstr(ref, "1:4:tail|"));
		ck_assert_ptr_nonnull(strstr(ref, m ? "1:16:" : "2:16:"));
		for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
			char *got = split_all(in, n, steps[i], 16, (enum op_split_mode)m);

			ck_assert_msg(!strcmp(ref, got), "mode %d step %zu differs", m, steps[i]);
			free(got);
		}
		free(ref);
	}
}
END_TEST

/* Parse an encoded line back; check it is valid of the given type. */
static struct json_object *roundtrip(char *line, enum op_direction dir, enum op_msg_type t)
{
	struct op_parsed p;
	size_t len;
	struct json_object *m;

	ck_assert_ptr_nonnull(line);
	len = strlen(line);
	ck_assert_int_eq(line[len - 1], '\n');
	ck_assert_ptr_null(memchr(line, '\n', len - 1));
	op_parse_line(dir, line, len - 1, &p);
	ck_assert_msg(p.verdict == OP_VALID, "%s: %s", line, p.error);
	ck_assert_int_eq(p.type, t);
	m = op_parsed_steal(&p);
	op_parsed_release(&p);
	free(line);
	return m;
}

START_TEST(test_encoders_roundtrip)
{
	static const char *const actions[] = {"describe", "apply", NULL};
	struct json_object *cfg = json_tokener_parse("{\"command\":[\"echo\",\"a/b\\nc\"]}");
	struct json_object *m, *v = json_object_new_int(7);

	m = roundtrip(op_encode_hello_orchd(1, 1, "0.1.0"), OP_TO_EXT, OP_MSG_HELLO);
	ck_assert_str_eq(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE),
			 "{\"type\":\"hello\",\"protocol\":{\"min\":1,\"max\":1},"
			 "\"orchd_version\":\"0.1.0\"}");
	json_object_put(m);
	m = roundtrip(
		op_encode_action(OP_ACTION_APPLY, "web", "dev-exec-web", cfg, NULL, NULL, "/tmp/w"),
		OP_TO_EXT, OP_MSG_ACTION);
	ck_assert_str_eq(op_get_str(m, "action"), "apply");
	ck_assert(op_has(m, "state"));
	ck_assert_ptr_null(op_get(m, "state"));
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(
				 op_get(op_get(m, "config"), "command"), 1)),
			 "a/b\nc");
	json_object_put(m);
	m = roundtrip(op_encode_action(OP_ACTION_DESCRIBE, NULL, NULL, NULL, NULL, NULL, NULL),
		      OP_TO_EXT, OP_MSG_ACTION);
	json_object_put(m);
	ck_assert_ptr_null(op_encode_action(OP_ACTION_APPLY, NULL, "s", NULL, NULL, NULL, "/w"));
	json_object_put(roundtrip(op_encode_cancel("timeout"), OP_TO_EXT, OP_MSG_CANCEL));
	json_object_put(roundtrip(op_encode_hello_ext(1, "exec", "0.1.0", NULL, actions, NULL),
				  OP_FROM_EXT, OP_MSG_HELLO));
	json_object_put(roundtrip(op_encode_log("warning", "x\ty"), OP_FROM_EXT, OP_MSG_LOG));
	m = roundtrip(op_encode_progress("p", 42), OP_FROM_EXT, OP_MSG_PROGRESS);
	ck_assert_int_eq(op_get_int(m, "percent", -1), 42);
	json_object_put(m);
	m = roundtrip(op_encode_progress("p", -1), OP_FROM_EXT, OP_MSG_PROGRESS);
	ck_assert(!op_has(m, "percent"));
	json_object_put(m);
	m = roundtrip(op_encode_output("k", v, true), OP_FROM_EXT, OP_MSG_OUTPUT);
	ck_assert(op_get_bool(m, "secret", false));
	ck_assert_int_eq(op_get_int(m, "value", 0), 7);
	json_object_put(m);
	json_object_put(roundtrip(op_encode_state(cfg), OP_FROM_EXT, OP_MSG_STATE));
	json_object_put(roundtrip(op_encode_state(NULL), OP_FROM_EXT, OP_MSG_STATE));
	m = roundtrip(op_encode_state_secret(cfg), OP_FROM_EXT, OP_MSG_STATE);
	ck_assert(op_get_bool(m, "secret", false));
	ck_assert(op_has(op_get(m, "state"), "command"));
	json_object_put(m);
	json_object_put(roundtrip(op_encode_error("e", true), OP_FROM_EXT, OP_MSG_ERROR));
	m = roundtrip(op_encode_result(false, 1, "s", cfg), OP_FROM_EXT, OP_MSG_RESULT);
	ck_assert_str_eq(op_get_str(m, "status"), "failure");
	ck_assert(op_get_bool(m, "changed", false));
	ck_assert(op_has(m, "command"));
	json_object_put(m);
	m = roundtrip(op_encode_result(true, -1, NULL, NULL), OP_FROM_EXT, OP_MSG_RESULT);
	ck_assert(!op_has(m, "changed"));
	ck_assert(!op_has(m, "summary"));
	json_object_put(m);
	/* borrowed arguments are still ours */
	ck_assert_int_eq(json_object_put(v), 1);
	ck_assert_int_eq(json_object_put(cfg), 1);
}
END_TEST

/*
 * A line that fails to parse in the middle of a \u escape pair must not
 * change how the next line decodes: found by fuzz_protocol (tests/fuzz/),
 * the per-thread tokener kept the pending high surrogate of the failed
 * line across json_tokener_reset(), and the next valid message got a
 * U+FFFD that was not in it.  The fuzzer's lines: a non-JSON line (a raw
 * control byte after "\ude0"), then the same text sent as a log message.
 */
START_TEST(test_parse_line_no_state_across_lines)
{
	static const char bad[] = "{\"type\":\"log\",\"level\":\"info\",\"message\":\"caf\xc3\xa9 "
				  "\\u0000 \\ud83d\\ude0\x05\"}";
	static const char plain[] = "{\"type\":\"log\",\"level\":\"info\",\"message\":\"\\u0005\"}";
	struct op_buf sb = OP_BUF_INIT;
	struct op_parsed p;

	ck_assert_int_eq(op_parse_line(OP_FROM_EXT, bad, strlen(bad), &p), 0);
	ck_assert_int_eq(p.verdict, OP_NON_PROTOCOL);
	op_parsed_release(&p);
	ck_assert_int_eq(op_encode_log_into(&sb, "info", bad, strlen(bad)), 0);
	ck_assert_int_eq(op_parse_line(OP_FROM_EXT, sb.buf, sb.len - 1, &p), 0);
	ck_assert_int_eq(p.verdict, OP_VALID);
	ck_assert_str_eq(op_get_str(p.msg, "message"), bad);
	op_parsed_release(&p);
	op_buf_release(&sb);

	ck_assert_int_eq(op_parse_line(OP_FROM_EXT, bad, strlen(bad), &p), 0);
	op_parsed_release(&p);
	ck_assert_int_eq(op_parse_line(OP_FROM_EXT, plain, strlen(plain), &p), 0);
	ck_assert_int_eq(p.verdict, OP_VALID);
	ck_assert_str_eq(op_get_str(p.msg, "message"), "\x05");
	op_parsed_release(&p);
}
END_TEST

START_TEST(test_versions)
{
	ck_assert_int_lt(op_version_cmp("0.1.0", "0.10.0"), 0);
	ck_assert_int_eq(op_version_cmp("1.2", "1.2.0"), 0);
	ck_assert_int_gt(op_version_cmp("2.0.0", "1.99.99"), 0);
	ck_assert_int_eq(op_version_cmp("1.2.3-rc1", "1.2.3"), 0);
	ck_assert_int_lt(op_version_cmp(NULL, "0"), 0);
	ck_assert(op_version_valid("0.1.0"));
	ck_assert(op_version_valid("1"));
	ck_assert(!op_version_valid("v1"));
	ck_assert(!op_version_valid("1..2"));
	ck_assert(!op_version_valid(""));
	ck_assert_int_eq(op_negotiate(1, 1, 1, 3), 1);
	ck_assert_int_eq(op_negotiate(1, 4, 2, 3), 3);
	ck_assert_int_eq(op_negotiate(2, 2, 1, 1), -1);
}
END_TEST

START_TEST(test_check_ext_hello)
{
	struct json_object *h = json_tokener_parse(
		"{\"type\":\"hello\",\"protocol\":2,\"name\":\"exec\",\"version\":\"0.2.0\","
		"\"min_orchd_version\":\"0.9.0\",\"actions\":[\"apply\"]}");
	char err[OP_ERRMAX];

	ck_assert_int_eq(op_check_ext_hello(h, 1, 1, "0.1.0", OP_ACTION_APPLY, err, sizeof(err)),
			 OP_HELLO_PROTOCOL);
	ck_assert_str_eq(err, "extension speaks protocol 2, orchd speaks 1..1");
	json_object_object_add(h, "protocol", json_object_new_int(1));
	ck_assert_int_eq(op_check_ext_hello(h, 1, 1, "0.1.0", OP_ACTION_APPLY, err, sizeof(err)),
			 OP_HELLO_VERSION);
	ck_assert_str_eq(err, "extension exec 0.2.0 requires orchd >= 0.9.0 (this is 0.1.0)");
	ck_assert_int_eq(op_check_ext_hello(h, 1, 1, "0.10.0", OP_ACTION_PLAN, err, sizeof(err)),
			 OP_HELLO_ACTION);
	ck_assert_str_eq(err, "extension exec 0.2.0 does not support action 'plan'");
	ck_assert_int_eq(op_check_ext_hello(h, 1, 1, "0.10.0", OP_ACTION_APPLY, err, sizeof(err)),
			 0);
	json_object_put(h);
}
END_TEST

/* The second implementation (Python codec of the example extension) agrees. */
START_TEST(test_vectors_python)
{
	char *check = test_src_path("protocol/vectors/check.py"), *out = NULL;
	char *argv[] = {check, NULL};
	int rc = test_run(argv, &out, NULL);

	ck_assert_msg(rc == 0, "check.py exited %d: %s", rc, out ? out : "");
	ck_assert_ptr_nonnull(strstr(out, " vectors, 0 failures"));
	free(out);
	free(check);
}
END_TEST

Suite *protocol_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_vectors);
	tcase_add_test(tc, test_vectors_python);
	tcase_add_test(tc, test_splitter_basic);
	tcase_add_test(tc, test_splitter_strict_overlong_recovers);
	tcase_add_test(tc, test_splitter_chunk_mode);
	tcase_add_test(tc, test_splitter_slices_agree);
	tcase_add_test(tc, test_encoders_roundtrip);
	tcase_add_test(tc, test_parse_line_no_state_across_lines);
	tcase_add_test(tc, test_versions);
	tcase_add_test(tc, test_check_ext_hello);
	suite_add_tcase(s, tc);
	return s;
}
