/*
 * Tests of core/logging: secret masking, line prefixes, level filter,
 * colors (forced, and auto on a real pseudo-terminal), status line and the
 * summary table.  Output is captured with open_memstream.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/logging.h"
#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

static char *mask(struct orchd_mask *m, const char *s)
{
	char *r = orchd_mask_apply(m, s, strlen(s), NULL);
	return r ? r : xstrdup(s);
}

#define ck_mask(m, in, want)                  \
	do {                                  \
		char *got_ = mask(m, in);     \
		ck_assert_str_eq(got_, want); \
		free(got_);                   \
	} while (0)

START_TEST(test_mask_basic)
{
	struct orchd_mask *m = orchd_mask_new();
	size_t len;
	char *r;

	ck_assert_ptr_null(orchd_mask_apply(m, "anything", 8, NULL));
	orchd_mask_add(m, "hunter2");
	orchd_mask_add(m, "hunter2"); /* duplicate */
	orchd_mask_add(m, "");	      /* ignored */
	ck_assert_int_eq(orchd_mask_count(m), 1);
	ck_assert_ptr_null(orchd_mask_apply(m, "no secret here, hunter", 22, NULL));
	r = orchd_mask_apply(m, "password=hunter2!", 17, &len);
	ck_assert_str_eq(r, "password=***!");
	ck_assert_int_eq(len, strlen("password=***!"));
	free(r);
	ck_mask(m, "hunter2hunter2", "******");
	ck_mask(m, "hunter2", "***");
	ck_mask(m, "xhunter2 and hunter2", "x*** and ***");
	orchd_mask_free(m);
}
END_TEST

START_TEST(test_mask_overlap_longest_wins)
{
	struct orchd_mask *m = orchd_mask_new();
	orchd_mask_add(m, "abc");
	orchd_mask_add(m, "abcdef");
	orchd_mask_add(m, "ab");
	orchd_mask_add(m, "zz");
	ck_mask(m, "abcdefg", "***g");
	ck_mask(m, "abcde", "***de");
	ck_mask(m, "abx", "***x");
	ck_mask(m, "a zz b", "a *** b");
	ck_mask(m, "aaab", "aa***");
	orchd_mask_free(m);
}
END_TEST

START_TEST(test_mask_many)
{
	struct orchd_mask *m = orchd_mask_new();
	char buf[64];

	for (int i = 0; i < 5000; i++) {
		snprintf(buf, sizeof(buf), "tok%05dx", i);
		orchd_mask_add(m, buf);
	}
	ck_assert_int_eq(orchd_mask_count(m), 5000);
	ck_mask(m, "a tok04999x b tok00000x c tok5x", "a *** b *** c tok5x");
	/* bytes >= 0x80 and embedded NUL are fine */
	orchd_mask_add(m, "\xc3\xa9t\xc3\xa9");
	ck_mask(m, "l'\xc3\xa9t\xc3\xa9!", "l'***!");
	{
		const char in[] = {'a', 0, 't', 'o', 'k', '0', '0', '0', '0', '1', 'x'};
		size_t len;
		char *r = orchd_mask_apply(m, in, sizeof(in), &len);
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(len, 5);
		ck_assert_mem_eq(r, "a\0***", 5);
		free(r);
	}
	orchd_mask_free(m);
}
END_TEST

struct cap {
	char *buf;
	size_t len;
	FILE *f;
};

static struct orchd_console *cap_console(struct cap *c, enum orchd_log_level level, int color,
					 int status)
{
	struct orchd_console_opts o = {0};
	c->f = open_memstream(&c->buf, &c->len);
	o.out = c->f;
	o.level = level;
	o.color = color;
	o.status = status;
	return orchd_console_new(&o);
}

static const char *cap_text(struct cap *c)
{
	fflush(c->f);
	return c->buf;
}

static void cap_free(struct cap *c)
{
	fclose(c->f);
	free(c->buf);
}

/* Every form of a secret is masked on the console: each line of a
 * multi-line one (a PEM key), one holding a control character, and each
 * string leaf of an object-valued one. */
/* The reference: at each position from the left, the longest secret that
 * starts there becomes "***"; none: the byte stays. */
static char *mask_reference(char **secrets, size_t n, const char *text)
{
	size_t len = strlen(text), i = 0, o = 0;
	char *out = xmalloc(len * 3 + 1);

	while (i < len) {
		size_t best = 0;

		for (size_t k = 0; k < n; k++) {
			size_t l = strlen(secrets[k]);

			if (l && l > best && l <= len - i && !memcmp(text + i, secrets[k], l))
				best = l;
		}
		if (best) {
			memcpy(out + o, "***", 3);
			o += 3;
			i += best;
		} else {
			out[o++] = text[i++];
		}
	}
	out[o] = '\0';
	return out;
}

/*
 * The Aho-Corasick masker against the reference, on random secrets and
 * texts over a 3-letter alphabet (so that secrets overlap, nest and share
 * prefixes and suffixes), with secrets added between lines as in a run.
 */
START_TEST(test_mask_matches_reference)
{
	unsigned seed = (unsigned)time(NULL);

	srand(seed);
	for (int round = 0; round < 400; round++) {
		struct orchd_mask *m = orchd_mask_new();
		char *secrets[24 + 200];
		size_t n = 0;

		/* every other round, 150 secrets first (over letters no text
		 * has): the automaton is built with them, and the random ones
		 * come after as recent ones, matched one by one until the next
		 * build */
		for (int k = 0; round % 2 && k < 150; k++) {
			secrets[n] =
				xasprintf("x%c%c%c%c%c", "xyz"[k % 3], "xyz"[k / 3 % 3],
					  "xyz"[k / 9 % 3], "xyz"[k / 27 % 3], "xyz"[k / 81 % 3]);
			orchd_mask_add(m, secrets[n]);
			n++;
		}

		for (int line = 0; line < 12; line++) {
			char text[80], *got, *want;
			size_t tl = (size_t)(rand() % 60);

			if (n < 24 + 150 && rand() % 2) {
				size_t sl = 1 + (size_t)(rand() % 6);

				secrets[n] = xmalloc(sl + 1);
				for (size_t k = 0; k < sl; k++)
					secrets[n][k] = "abc"[rand() % 3];
				secrets[n][sl] = '\0';
				orchd_mask_add(m, secrets[n]);
				n++;
			}
			for (size_t k = 0; k < tl; k++)
				text[k] = "abcd"[rand() % 4];
			text[tl] = '\0';
			want = mask_reference(secrets, n, text);
			got = orchd_mask_apply(m, text, tl, NULL);
			ck_assert_msg(!strcmp(got ? got : text, want),
				      "seed %u round %d: '%s' gave '%s', want '%s'", seed, round,
				      text, got ? got : text, want);
			free(got);
			free(want);
		}
		for (size_t k = 0; k < n; k++)
			free(secrets[k]);
		orchd_mask_free(m);
	}
}
END_TEST

/*
 * The same against the reference with more automaton nodes than the full
 * tables cover (AC_DFA_BYTES in core/logging.c: 1 MiB, 87 381 nodes of
 * three byte classes): 4 000 secrets of 40 letters over "ab" make about
 * 110 000 nodes, so that a match deep in a secret walks the sparse edges
 * and the failure links.  Texts are pieces of secrets with random letters
 * between them (and 'c', in no secret), so that they go deep.  The
 * reference uses that every secret has the same length (a lookup of the
 * next 40 bytes at each position), so that it stays quick under ASan.
 */
/* The reference for secrets all of length len, sorted: at each position
 * the one candidate is the next len bytes. */
static int cmp_secret(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *mask_reference_fixed(char **sorted, size_t n, size_t slen, const char *text)
{
	size_t len = strlen(text), i = 0, o = 0;
	char *out = xmalloc(len * 3 + 1), *key = xmalloc(slen + 1);

	while (i < len) {
		if (len - i >= slen) {
			const char *k = key;

			memcpy(key, text + i, slen);
			key[slen] = '\0';
			if (bsearch(&k, sorted, n, sizeof(*sorted), cmp_secret)) {
				memcpy(out + o, "***", 3);
				o += 3;
				i += slen;
				continue;
			}
		}
		out[o++] = text[i++];
	}
	out[o] = '\0';
	free(key);
	return out;
}

START_TEST(test_mask_deep_nodes)
{
	unsigned seed = (unsigned)time(NULL);
	enum { NSEC = 4000, SLEN = 40 };
	struct orchd_mask *m = orchd_mask_new();
	char **secrets = xcalloc(NSEC, sizeof(*secrets));
	char **sorted = xcalloc(NSEC, sizeof(*sorted));

	srand(seed);
	for (size_t k = 0; k < NSEC; k++) {
		secrets[k] = xmalloc(SLEN + 1);
		for (size_t i = 0; i < SLEN; i++)
			secrets[k][i] = "ab"[rand() % 2];
		secrets[k][SLEN] = '\0';
		orchd_mask_add(m, secrets[k]);
	}
	memcpy(sorted, secrets, NSEC * sizeof(*sorted));
	qsort(sorted, NSEC, sizeof(*sorted), cmp_secret);
	for (int line = 0; line < 300; line++) {
		char text[400], *got, *want;
		size_t tl = 0;

		while (tl < 300) {
			const char *sec = secrets[rand() % NSEC];
			size_t from = (size_t)(rand() % SLEN), len = 1 + (size_t)(rand() % SLEN);

			if (rand() % 3)
				from = 0; /* a prefix: deep in the trie */
			if (from + len > SLEN)
				len = SLEN - from;
			memcpy(text + tl, sec + from, len);
			tl += len;
			text[tl++] = "abc"[rand() % 3];
		}
		text[tl] = '\0';
		want = mask_reference_fixed(sorted, NSEC, SLEN, text);
		got = orchd_mask_apply(m, text, tl, NULL);
		ck_assert_msg(!strcmp(got ? got : text, want),
			      "seed %u line %d: '%s' gave '%s', want '%s'", seed, line, text,
			      got ? got : text, want);
		free(got);
		free(want);
	}
	for (size_t k = 0; k < NSEC; k++)
		free(secrets[k]);
	free(secrets);
	free(sorted);
	orchd_mask_free(m);
}
END_TEST

START_TEST(test_console_masks_every_form)
{
	struct cap c;
	struct orchd_console *con = cap_console(&c, ORCHD_LOG_INFO, 0, 0);
	struct orchd_mask *m = orchd_console_mask(con);
	json_object *obj = json_tokener_parse("{\"user\":\"admin\",\"password\":\"s3cr3t-pw\","
					      "\"nested\":[\"tok-123456\",7]}");
	const char *out;

	orchd_mask_add(m, "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX\r\nabcd=\n"
			  "-----END KEY-----\n");
	orchd_mask_add(m, "tab\x1bsecret");
	orchd_mask_add_json(m, obj);
	orchd_console_log(con, "exec.k", ORCHD_LOG_INFO, "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX");
	orchd_console_log(con, "exec.k", ORCHD_LOG_INFO, "tail abcd= end");
	orchd_console_log(con, "exec.k", ORCHD_LOG_INFO, "raw tab\x1bsecret here");
	orchd_console_log(con, "exec.k", ORCHD_LOG_INFO, "pw is s3cr3t-pw, token tok-123456");
	out = cap_text(&c);
	ck_assert_msg(!strstr(out, "MIIBOg"), "%s", out);
	ck_assert_msg(!strstr(out, "abcd="), "%s", out);
	ck_assert_msg(!strstr(out, "secret here"), "%s", out);
	ck_assert_msg(strstr(out, "raw *** here"), "%s", out);
	ck_assert_msg(!strstr(out, "s3cr3t-pw"), "%s", out);
	ck_assert_msg(!strstr(out, "tok-123456"), "%s", out);
	/* a short line of a multi-line secret is not a secret of its own:
	 * "admin" is, as a leaf of a secret object */
	json_object_put(obj);
	orchd_console_free(con);
	cap_free(&c);
}
END_TEST

START_TEST(test_console_prefix_and_levels)
{
	struct cap c;
	struct orchd_console *con = cap_console(&c, ORCHD_LOG_INFO, 0, 0);

	orchd_console_add_instance(con, "exec.a");
	orchd_console_add_instance(con, "terraform.network");
	orchd_console_log(con, "exec.a", ORCHD_LOG_INFO, "hello");
	orchd_console_log(con, "terraform.network", ORCHD_LOG_WARNING, "careful");
	orchd_console_log(con, "exec.a", ORCHD_LOG_DEBUG, "hidden");
	orchd_console_logf(con, "exec.a", ORCHD_LOG_ERROR, "failed: %s (%d)", "boom", 3);
	orchd_console_log(con, NULL, ORCHD_LOG_INFO, "orchd itself");
	orchd_console_log(con, "exec.a", ORCHD_LOG_INFO, "bell\a esc\033[2J tab\tend");
	ck_assert_str_eq(cap_text(&c), "[exec.a]            hello\n"
				       "[terraform.network] warning: careful\n"
				       "[exec.a]            error: failed: boom (3)\n"
				       "orchd itself\n"
				       "[exec.a]            bell? esc?[2J tab\tend\n");
	orchd_console_free(con);
	cap_free(&c);
}
END_TEST

START_TEST(test_console_quiet_verbose)
{
	struct cap c, v;
	struct orchd_console *q = cap_console(&c, ORCHD_LOG_WARNING, 0, 0);
	struct orchd_console *vb = cap_console(&v, ORCHD_LOG_DEBUG, 0, 0);

	orchd_console_log(q, "x.y", ORCHD_LOG_INFO, "info");
	orchd_console_log(q, "x.y", ORCHD_LOG_WARNING, "warn");
	orchd_console_log(vb, "x.y", ORCHD_LOG_DEBUG, "dbg");
	ck_assert_str_eq(cap_text(&c), "[x.y] warning: warn\n");
	ck_assert_str_eq(cap_text(&v), "[x.y] debug: dbg\n");
	orchd_console_free(q);
	orchd_console_free(vb);
	cap_free(&c);
	cap_free(&v);
}
END_TEST

START_TEST(test_console_masks_secrets)
{
	struct cap c;
	struct orchd_console *con = cap_console(&c, ORCHD_LOG_INFO, 0, 0);

	orchd_mask_add(orchd_console_mask(con), "s3cr3t");
	orchd_console_log(con, "exec.a", ORCHD_LOG_INFO, "token is s3cr3t, again s3cr3t");
	ck_assert_str_eq(cap_text(&c), "[exec.a] token is ***, again ***\n");
	orchd_console_free(con);
	cap_free(&c);
}
END_TEST

START_TEST(test_console_color_forced)
{
	struct cap c;
	struct orchd_console *con = cap_console(&c, ORCHD_LOG_INFO, 1, 0);

	orchd_console_log(con, "exec.a", ORCHD_LOG_INFO, "one");
	orchd_console_log(con, "exec.b", ORCHD_LOG_ERROR, "two");
	ck_assert_str_eq(cap_text(&c), "\033[32m[exec.a]\033[0m one\n"
				       "\033[33m[exec.b]\033[0m \033[31merror:\033[0m two\n");
	orchd_console_free(con);
	cap_free(&c);
}
END_TEST

/* Read exactly strlen(want) bytes from the pty master (a short output
 * blocks; the tcase timeout is the guard) and compare. */
static void expect_pty(int master, const char *want)
{
	size_t need = strlen(want), got = 0;
	char buf[1024];

	ck_assert_int_lt(need, sizeof(buf));
	while (got < need) {
		ssize_t n = read(master, buf + got, need - got);
		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
	buf[got] = 0;
	ck_assert_str_eq(buf, want);
}

/* Auto color and status: on a real pseudo-terminal, unless NO_COLOR. */
START_TEST(test_console_tty_auto)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	FILE *f;
	struct orchd_console *con;
	const char *running[] = {"exec.a", "exec.b"};

	ck_assert_int_ge(master, 0);
	ck_assert_int_eq(grantpt(master), 0);
	ck_assert_int_eq(unlockpt(master), 0);
	f = fopen(ptsname(master), "w");
	ck_assert_ptr_nonnull(f);

	unsetenv("NO_COLOR");
	{
		struct orchd_console_opts o = {f, ORCHD_LOG_INFO, -1, -1};
		con = orchd_console_new(&o);
	}
	orchd_console_status(con, 3, 1, running, 2);
	orchd_console_log(con, "exec.a", ORCHD_LOG_INFO, "hi");
	orchd_console_free(con);
	fflush(f);
	/* the tty turns \n into \r\n */
	/* the status line is erased for the log line, drawn again under it,
	 * and erased at the end */
	expect_pty(master, "\r\033[Krunning 2, done 3, failed 1: exec.a exec.b"
			   "\r\033[K\033[32m[exec.a]\033[0m hi\r\n"
			   "\r\033[Krunning 2, done 3, failed 1: exec.a exec.b\r\033[K");

	setenv("NO_COLOR", "1", 1);
	{
		struct orchd_console_opts o = {f, ORCHD_LOG_INFO, -1, -1};
		con = orchd_console_new(&o);
	}
	/* NO_COLOR: plain output, no status line either */
	orchd_console_status(con, 3, 1, running, 2);
	orchd_console_log(con, "exec.a", ORCHD_LOG_INFO, "hi");
	orchd_console_free(con);
	fflush(f);
	expect_pty(master, "[exec.a] hi\r\n");
	unsetenv("NO_COLOR");
	fclose(f);
	close(master);
}
END_TEST

START_TEST(test_console_no_status_off_tty)
{
	struct cap c;
	struct orchd_console *con = cap_console(&c, ORCHD_LOG_INFO, -1, -1);
	const char *running[] = {"exec.a"};

	orchd_console_status(con, 0, 0, running, 1);
	orchd_console_log(con, "exec.a", ORCHD_LOG_INFO, "plain");
	ck_assert_str_eq(cap_text(&c), "[exec.a] plain\n");
	orchd_console_free(con);
	cap_free(&c);
}
END_TEST

START_TEST(test_summary_table)
{
	struct cap c;
	struct orchd_console *con = cap_console(&c, ORCHD_LOG_ERROR, 0, 0);
	const struct orchd_summary_row rows[] = {
		{"exec.build", "success", 1, 1234, 560, 2048},
		{"terraform.network", "timed out", 3, 125000, 12, 512},
		{"exec.skipped", "skipped", 0, -1, -1, 0},
	};

	orchd_console_summary(con, rows, 3);
	ck_assert_str_eq(
		cap_text(&c),
		"INSTANCE           STATUS     ATTEMPTS   DURATION        CPU     MAX RSS\n"
		"exec.build         success           1       1.2s      560ms     2.0 MiB\n"
		"terraform.network  timed out         3      2m05s       12ms     512 KiB\n"
		"exec.skipped       skipped           0          -          -           -\n");
	orchd_console_free(con);
	cap_free(&c);
}
END_TEST

/*
 * The bulk path (orchd_journal_lines, orchd_console_lines: a tool's output
 * in whole chunks) against one orchd_journal_line per line: the same
 * console bytes and the same kept log, on random blocks of text with
 * control characters, tabs, CRs, UTF-8, secrets (masked), in colour or not,
 * at info (the fast path) and warning, streamed or grouped, and past the
 * 1 MiB bound of the kept log.
 */
START_TEST(test_lines_same_as_per_line)
{
	static const char *const alpha[] = {"a",  "b",	 "s3",	      "\n",   "\n",
					    "\t", "\r",	 "\x1b[2J",   "\x7f", "\xc3\xa9",
					    " ",  "xyz", "0123456789"};
	const char *const ids[] = {"exec.a-long-name", "exec.b"};
	unsigned seed = (unsigned)time(NULL);

	srand(seed);
	for (int round = 0; round < 48; round++) {
		struct cap bulk, each;
		struct orchd_console *cb = cap_console(&bulk, ORCHD_LOG_INFO, round % 2, 0);
		struct orchd_console *ce = cap_console(&each, ORCHD_LOG_INFO, round % 2, 0);
		struct orchd_journal_opts jo = {.grouped = round / 2 % 2};
		struct orchd_journal *jb = orchd_journal_new(cb, ids, 2, &jo);
		struct orchd_journal *je = orchd_journal_new(ce, ids, 2, &jo);
		enum orchd_log_level lvl = round / 4 % 3 == 2 ? ORCHD_LOG_WARNING : ORCHD_LOG_INFO;
		/* the last rounds push the kept log past its bound */
		int blocks = round >= 44 ? 400 : 8;

		for (size_t i = 0; i < 2; i++) {
			orchd_console_add_instance(cb, ids[i]);
			orchd_console_add_instance(ce, ids[i]);
		}
		if (round / 4 % 3 == 1) {
			orchd_mask_add(orchd_console_mask(cb), "s3s3");
			orchd_mask_add(orchd_console_mask(ce), "s3s3");
			orchd_mask_add(orchd_console_mask(cb), "b\ta");
			orchd_mask_add(orchd_console_mask(ce), "b\ta");
		}
		for (int b = 0; b < blocks; b++) {
			struct op_buf text = OP_BUF_INIT;
			size_t i = (size_t)(rand() % 2), start = 0;
			int pieces = round >= 44 ? 2000 : rand() % 300;

			for (int k = 0; k < pieces; k++)
				op_buf_addstr(&text, alpha[rand() % ARRAY_SIZE(alpha)]);
			op_buf_addch(&text, '\n');
			/* per line first: the bulk call may change the bytes */
			for (size_t k = 0; k < text.len; k++)
				if (text.buf[k] == '\n') {
					char *line = xstrndup(text.buf + start, k - start);

					orchd_journal_line(je, i, lvl, ORCHD_LOGSRC_STDERR, line);
					free(line);
					start = k + 1;
				}
			orchd_journal_lines(jb, i, lvl, ORCHD_LOGSRC_STDERR, text.buf, text.len);
			op_buf_release(&text);
		}
		for (size_t i = 0; i < 2; i++) {
			ck_assert_msg(!strcmp(orchd_journal_text(jb, i), orchd_journal_text(je, i)),
				      "seed %u round %d: kept logs differ", seed, round);
			orchd_journal_flush(jb, i);
			orchd_journal_flush(je, i);
		}
		ck_assert_msg(!strcmp(cap_text(&bulk), cap_text(&each)),
			      "seed %u round %d: consoles differ:\n%.300s\n---\n%.300s", seed,
			      round, cap_text(&bulk), cap_text(&each));
		ck_assert_uint_gt(strlen(cap_text(&bulk)), 0);
		orchd_journal_free(jb);
		orchd_journal_free(je);
		orchd_console_free(cb);
		orchd_console_free(ce);
		cap_free(&bulk);
		cap_free(&each);
	}
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(orchd_log_level_name(ORCHD_LOG_WARNING), "warning");
	ck_assert_int_eq(orchd_log_level_from_name("error"), ORCHD_LOG_ERROR);
	ck_assert_int_eq(orchd_log_level_from_name("loud"), -1);
	ck_assert_int_eq(orchd_log_level_from_name(NULL), -1);
	ck_assert_str_eq(orchd_log_source_name(ORCHD_LOGSRC_STDOUT_TEXT), "stdout-text");
}
END_TEST

Suite *logging_suite(void)
{
	Suite *s = suite_create("logging");
	TCase *tc = tcase_create("logging");

	tcase_add_test(tc, test_mask_basic);
	tcase_add_test(tc, test_console_masks_every_form);
	tcase_add_test(tc, test_mask_overlap_longest_wins);
	tcase_add_test(tc, test_mask_many);
	tcase_add_test(tc, test_mask_matches_reference);
	tcase_add_test(tc, test_mask_deep_nodes);
	tcase_add_test(tc, test_console_prefix_and_levels);
	tcase_add_test(tc, test_console_quiet_verbose);
	tcase_add_test(tc, test_console_masks_secrets);
	tcase_add_test(tc, test_console_color_forced);
	tcase_add_test(tc, test_console_tty_auto);
	tcase_add_test(tc, test_console_no_status_off_tty);
	tcase_add_test(tc, test_summary_table);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_lines_same_as_per_line);
	suite_add_tcase(s, tc);
	return s;
}
