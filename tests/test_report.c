/*
 * The run's reports in every format, each read by a parser orchd does not
 * own: JUnit (Surefire's XSD through xmllint, and junitparser from PyPI),
 * the metrics (prometheus_client's two parsers), the trace (Chrome
 * DevTools' trace engine from npm, and the format's rules in
 * tests/formats/trace.py), the HTML page (a real Chromium, scripts off), and
 * `orchd report`, which must give the same bytes from the stored
 * report.json.
 *
 * The validators download their schema and parsers on first use (Maven
 * Central, PyPI, npm): the test case is tagged "tools", so check-fast leaves
 * it out and make check runs it.
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "util.h"

static char *dir, *extdir, *orchd_bin;

static void setup(void)
{
	char *helper, *link;

	dir = test_tmpdir();
	ck_assert_ptr_nonnull(dir);
	extdir = xasprintf("%s/ext", dir);
	ck_assert_int_eq(mkdir(extdir, 0700), 0);
	helper = test_build_path("tests/helpers/misbehave");
	link = xasprintf("%s/orchd-ext-misbehave", extdir);
	ck_assert_int_eq(symlink(helper, link), 0);
	free(helper);
	free(link);
	orchd_bin = test_build_path("bin/orchd");
}

static void teardown(void)
{
	test_rmtree(dir);
	free(dir);
	free(extdir);
	free(orchd_bin);
}

/* sh SCRIPT ARGS... from the source tree (a validator); its exit status,
 * its stdout in *out. */
static int validator(const char *interp, const char *script, char **out, ...)
{
	char *argv[16], *path = test_src_path(script), *err = NULL;
	int argc = 0, rc;
	const char *a;
	va_list ap;

	argv[argc++] = (char *)(uintptr_t)interp;
	argv[argc++] = path;
	va_start(ap, out);
	while ((a = va_arg(ap, const char *)) && argc < 15)
		argv[argc++] = (char *)(uintptr_t)a;
	va_end(ap);
	argv[argc] = NULL;
	rc = test_run(argv, out, &err);
	if (rc)
		fprintf(stderr, "%s exited %d:\n%s\n%s\n", script, rc, *out, err);
	ck_assert_msg(rc != 2, "%s could not set up: %.3000s", script, err);
	free(err);
	free(path);
	return rc;
}

/* orchd ARGS... (NULL-terminated); its exit status. */
static int orchd(char **out, char **err, ...)
{
	char *argv[24];
	int argc = 0;
	const char *a;
	va_list ap;

	argv[argc++] = orchd_bin;
	va_start(ap, err);
	while ((a = va_arg(ap, const char *)) && argc < 23)
		argv[argc++] = (char *)(uintptr_t)a;
	va_end(ap);
	argv[argc] = NULL;
	return test_run(argv, out, err);
}

static char *path_in(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* The file's text with the first "from" replaced by "to", written to out. */
static void tamper(const char *in, const char *out, const char *from, const char *to)
{
	char *t = test_read_file(in, NULL), *at;
	FILE *f;

	ck_assert_ptr_nonnull(t);
	at = strstr(t, from);
	ck_assert_msg(at, "%s: no '%s' to tamper with", in, from);
	f = fopen(out, "w");
	ck_assert_ptr_nonnull(f);
	fwrite(t, 1, (size_t)(at - t), f);
	fputs(to, f);
	fputs(at + strlen(from), f);
	ck_assert_int_eq(fclose(f), 0);
	free(t);
}

static const char *const jenkins_env[][2] = {
	{"JENKINS_URL", "https://ci.example.com/"},
	{"BUILD_URL", "https://ci.example.com/job/infra/17/"},
	{"BUILD_TAG", "jenkins-infra-17"},
	{"BUILD_NUMBER", "17"},
	{"JOB_NAME", "infra"},
	{"GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567"},
};

START_TEST(test_every_format_read_by_an_independent_parser)
{
	char *counter = path_in("counter/count"), *text, *f = path_in("p.yaml");
	char *junit = path_in("j.xml"), *trace = path_in("t.json"), *metrics = path_in("m.prom");
	char *rep = path_in("r.json"), *html = path_in("r.html"), *out = NULL, *err = NULL, *t;
	const char *const files[] = {junit, trace, metrics, rep, html};
	char *run_dir;
	int rc;

	text = xasprintf(
		"demo:\n"
		"  core:\n"
		"    execution_defaults: {retry_backoff: {initial: 5ms, max: 10ms}}\n"
		"  misbehave:\n"
		"    - name: flaky\n"
		"      execution: {max_attempts: 5}\n"
		"      isolation: {paths: {write: [counter]}}\n"
		"      only_action: apply\n"
		"      mode: failuntil\n"
		"      n: 3\n"
		"      file: %s\n"
		"    - name: broken\n"
		"      execution: {max_attempts: 2}\n"
		"      only_action: apply\n"
		"      mode: failure\n"
		"  exec:\n"
		"    - name: secret\n"
		"      secret_outputs: [token]\n"
		"      command: [sh, -c, 'echo token=tok-5up3r-s3cr3t >> $ORCHD_OUTPUT; echo "
		"\"<marquee>&amp;</marquee>\"']\n"
		"    - name: after\n"
		"      depends_on: [misbehave.broken]\n"
		"      command: ['true']\n"
		"    - name: ok\n"
		"      depends_on: [misbehave.flaky, secret]\n"
		"      command: [sh, -c, 'echo got $0', '${{ exec.secret.outputs.token }}']\n",
		counter);
	write_text(f, text);
	for (size_t i = 0; i < sizeof(jenkins_env) / sizeof(jenkins_env[0]); i++)
		setenv(jenkins_env[i][0], jenkins_env[i][1], 1);
	setenv("ORCHD_PASSPHRASE", "report test passphrase", 1);
	rc = orchd(&out, &err, "run", f, "--extensions-dir", extdir, "-k", "--report", rep,
		   "--junit", junit, "--trace", trace, "--metrics", metrics, "--report-html", html,
		   (char *)NULL);
	unsetenv("ORCHD_PASSPHRASE");
	for (size_t i = 0; i < sizeof(jenkins_env) / sizeof(jenkins_env[0]); i++)
		unsetenv(jenkins_env[i][0]);
	ck_assert_msg(rc == 1, "rc=%d\n%s", rc, err);
	free(out);
	free(err);

	/* no format holds the secret; the report has the CI metadata */
	for (size_t i = 0; i < 5; i++) {
		t = test_read_file(files[i], NULL);
		ck_assert_msg(t, "%s not written", files[i]);
		ck_assert_msg(!strstr(t, "5up3r"), "%s holds the secret:\n%.3000s", files[i], t);
		free(t);
	}
	t = test_read_file(rep, NULL);
	ck_assert_msg(strstr(t, "\"build_url\":\"https://ci.example.com/job/infra/17/\""),
		      "%.3000s", t);
	ck_assert_msg(strstr(t, "\"critical_path\""), "%.3000s", t);
	free(t);

	/* each history entry names the build that made it, with its figures */
	rc = orchd(&out, &err, "history", f, "--extensions-dir", extdir, "--json", (char *)NULL);
	ck_assert_msg(rc == 0, "%.3000s", err);
	ck_assert_msg(
		strstr(out, "\"build_tag\":\"jenkins-infra-17\"") &&
			strstr(out, "\"commit\":\"0123456789abcdef0123456789abcdef01234567\"") &&
			strstr(out, "\"max_rss_kb\":"),
		"%.3000s", out);
	free(out);
	free(err);
	rc = orchd(&out, &err, "history", f, "--extensions-dir", extdir, "exec.ok", (char *)NULL);
	ck_assert_msg(rc == 0 && strstr(out, "build jenkins-infra-17"), "%.3000s", out);
	free(out);
	free(err);

	/* JUnit: Surefire's XSD and junitparser; retries as Surefire writes them */
	rc = validator("/bin/sh", "tests/formats/junit.sh", &out, junit, (char *)NULL);
	ck_assert_msg(rc == 0, "%.3000s", out);
	ck_assert_msg(strstr(out, "misbehave.flaky time=") && strstr(out, "-> passed [is_flaky]"),
		      "%.3000s", out);
	ck_assert_msg(strstr(out, "[is_rerun]"), "%.3000s", out);
	ck_assert_msg(strstr(out, "exec.after time=0.0 -> skipped"), "%.3000s", out);
	ck_assert_msg(strstr(out, "tests=5 failures=1 errors=0 skipped=1"), "%.3000s", out);
	free(out);
	t = test_read_file(junit, NULL);
	ck_assert_msg(strstr(t, "<property name=\"ci.build_tag\" value=\"jenkins-infra-17\"/>"),
		      "%.3000s", t);
	ck_assert_msg(strstr(t, "&lt;marquee&gt;&amp;amp;&lt;/marquee&gt;"), "%.3000s", t);
	free(t);

	/* metrics: both of prometheus_client's parsers */
	rc = validator("/bin/sh", "tests/formats/metrics.sh", &out, metrics, (char *)NULL);
	ck_assert_msg(rc == 0, "%.3000s", out);
	ck_assert_msg(strstr(out, "orchd_instance_attempts{instance='misbehave.flaky',"
				  "pipeline='demo',type='misbehave'} 3"),
		      "%.3000s", out);
	ck_assert_msg(strstr(out, "orchd_run_instances{outcome='failed',pipeline='demo'} 1"), "%s",
		      out);
	ck_assert_msg(
		strstr(out, "orchd_instance_last_success_timestamp_seconds{instance='exec.ok'"),
		"%.3000s", out);
	free(out);

	/* trace: every instance that ran has its thread and events */
	rc = validator("/bin/sh", "tests/formats/trace.sh", &out, trace, "misbehave.flaky",
		       "misbehave.broken", "exec.secret", "exec.ok", (char *)NULL);
	ck_assert_msg(rc == 0, "%.3000s", out);
	free(out);

	/* the HTML page in a real Chromium, scripts off: every instance has its
	 * bar, graph node, summary row and log; no secret; nothing fetched; a
	 * screenshot is kept as the test's artefact */
	{
		char *shot = test_build_path("test-artifacts/report.png");
		char *adir = test_build_path("test-artifacts");

		mkdir(adir, 0755);
		rc = validator("/usr/bin/python3", "tests/formats/page.py", &out, html,
			       "--screenshot", shot, "--absent", "5up3r", "--no-element", "marquee",
			       "misbehave.flaky", "misbehave.broken", "exec.secret", "exec.after",
			       "exec.ok", (char *)NULL);
		ck_assert_msg(rc == 0, "%.3000s", out);
		free(out);
		free(shot);
		free(adir);
	}

	/* the validators can fail: a broken copy of each is refused */
	{
		char *bad = path_in("bad.xml"), *badm = path_in("bad.prom"),
		     *badt = path_in("bad.json");

		tamper(junit, bad, "<system-out>", "<system-out/><system-out>");
		rc = validator("/bin/sh", "tests/formats/junit.sh", &out, bad, (char *)NULL);
		ck_assert_msg(rc == 1, "a second system-out passed:\n%s", out);
		free(out);
		tamper(metrics, badm, "status=\"", "status=\"\"");
		rc = validator("/bin/sh", "tests/formats/metrics.sh", &out, badm, (char *)NULL);
		ck_assert_msg(rc == 1, "an unescaped quote passed:\n%s", out);
		free(out);
		tamper(trace, badt, "\"dur\":", "\"dur\":-");
		rc = validator("/usr/bin/python3", "tests/formats/trace.py", &out, badt,
			       (char *)NULL);
		ck_assert_msg(rc == 1, "a negative duration passed:\n%.3000s", out);
		free(out);
		free(badt);
		badt = path_in("bad.html");
		tamper(html, badt, "<g class=\"bar-row", "<g class=\"xbar-row");
		rc = validator("/usr/bin/python3", "tests/formats/page.py", &out, badt,
			       "misbehave.flaky", (char *)NULL);
		ck_assert_msg(rc == 1, "a page without its first bar passed:\n%.3000s", out);
		free(out);
		free(bad);
		free(badm);
		free(badt);
	}

	/* orchd report: the same bytes from the stored report, by its run
	 * directory or by the copy --report made */
	t = test_read_file(rep, NULL);
	{
		const char *at = strstr(t, "\"run_dir\":");
		char *end;

		ck_assert_ptr_nonnull(at);
		at = strchr(at + 10, '"') + 1;
		end = strchr(at, '"');
		run_dir = xstrndup(at, (size_t)(end - at));
	}
	free(t);
	for (int round = 0; round < 2; round++) {
		char *j2 = path_in("j2.xml"), *t2 = path_in("t2.json"), *m2 = path_in("m2.prom");
		char *h2 = path_in("h2.html");
		const char *const pairs[][2] = {
			{junit, j2}, {trace, t2}, {metrics, m2}, {html, h2}};
		const char *from = round ? rep : run_dir;

		rc = orchd(&out, &err, "report", from, "--junit", j2, "--trace", t2, "--metrics",
			   m2, "--html", h2, (char *)NULL);
		ck_assert_msg(rc == 0, "orchd report: rc=%d\n%s", rc, err);
		for (size_t i = 0; i < 4; i++) {
			size_t la, lb;
			char *a = test_read_file(pairs[i][0], &la),
			     *b = test_read_file(pairs[i][1], &lb);

			ck_assert_msg(b && la == lb && !memcmp(a, b, la),
				      "orchd report %s: %s differs from the run's own", from,
				      pairs[i][1]);
			free(a);
			free(b);
		}
		free(out);
		free(err);
		free(j2);
		free(t2);
		free(m2);
		free(h2);
	}
	free(run_dir);
	free(html);
	free(rep);
	free(junit);
	free(trace);
	free(metrics);
	free(text);
	free(counter);
	free(f);
}
END_TEST

/* A run of a part of the pipeline: the others are in the report as
 * unselected (for the graph, dashed), nowhere else; orchd report of the
 * state directory renders the latest run. */
START_TEST(test_unselected_and_latest_run)
{
	char *f = path_in("p.yaml"), *page = path_in("out.html"), *sdir = path_in(".orchd");
	char *out = NULL, *err = NULL, *t;
	int rc;

	write_text(f, "p:\n"
		      "  exec:\n"
		      "    - name: a\n"
		      "      command: ['true']\n"
		      "    - name: b\n"
		      "      depends_on: [a]\n"
		      "      command: ['true']\n"
		      "    - name: c\n"
		      "      command: ['true']\n");
	rc = orchd(&out, &err, "run", f, (char *)NULL);
	ck_assert_msg(rc == 0, "%.3000s", err);
	free(out);
	free(err);
	rc = orchd(&out, &err, "run", f, "-t", "exec.c", (char *)NULL);
	ck_assert_msg(rc == 0, "%.3000s", err);
	free(out);
	free(err);
	rc = orchd(&out, &err, "report", sdir, "--html", page, (char *)NULL);
	ck_assert_msg(rc == 0, "%.3000s", err);
	t = test_read_file(page, NULL);
	ck_assert_msg(strstr(t, "<g class=\"node unselected\" data-instance=\"exec.a\">") &&
			      strstr(t, "<g class=\"node unselected\" data-instance=\"exec.b\">"),
		      "%.3000s", t);
	ck_assert_msg(strstr(t, "<tr data-instance=\"exec.c\">") &&
			      !strstr(t, "<tr data-instance=\"exec.a\">"),
		      "%.3000s", t);
	/* the edge between the two left out is drawn too */
	ck_assert_msg(strstr(t, "class=\"edge\""), "%.3000s", t);
	free(t);
	free(out);
	free(err);
	free(f);
	free(page);
	free(sdir);
}
END_TEST

/* orchd report on what is not a report: a clear error, no file. */
START_TEST(test_report_command_errors)
{
	char *notrep = path_in("x.json"), *j = path_in("j.xml"), *out = NULL, *err = NULL;
	int rc;

	write_text(notrep, "{\"format\": \"something else\"}\n");
	rc = orchd(&out, &err, "report", notrep, "--junit", j, (char *)NULL);
	ck_assert_msg(rc == 3 && strstr(err, "not an orchd report"), "rc=%d\n%s", rc, err);
	ck_assert_int_ne(access(j, F_OK), 0);
	free(out);
	free(err);
	rc = orchd(&out, &err, "report", notrep, (char *)NULL);
	ck_assert_msg(rc == 2 && strstr(err, "nothing to write"), "rc=%d\n%s", rc, err);
	free(out);
	free(err);
	{
		char *missing = path_in("nope.json");
		rc = orchd(&out, &err, "report", missing, "--metrics", j, (char *)NULL);
		ck_assert_msg(rc == 3 && strstr(err, "cannot read"), "rc=%d\n%s", rc, err);
		free(missing);
	}
	free(out);
	free(err);
	free(notrep);
	free(j);
}
END_TEST

/* examples/jenkins/Jenkinsfile: it parses (Groovy), and its shell steps,
 * run as its stages would, gate, apply, report and survive an abort
 * (tests/jenkins/check.sh). */
START_TEST(test_jenkinsfile_steps)
{
	char *build = test_build_path(""), *out = NULL;
	int rc = validator("/bin/sh", "tests/jenkins/check.sh", &out, build, (char *)NULL);

	ck_assert_msg(rc == 0, "%.3000s", out);
	ck_assert_msg(strstr(out, "leaves every report"), "%.3000s", out);
	free(out);
	free(build);
}
END_TEST

Suite *report_suite(void)
{
	Suite *s = suite_create("report");
	TCase *tc = tcase_create("formats");
	TCase *cli = tcase_create("cli");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_set_tags(tc, "tools");
	tcase_add_test(tc, test_every_format_read_by_an_independent_parser);
	tcase_add_test(tc, test_jenkinsfile_steps);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(cli, setup, teardown);
	tcase_add_test(cli, test_report_command_errors);
	tcase_add_test(cli, test_unselected_and_latest_run);
	suite_add_tcase(s, cli);
	return s;
}
