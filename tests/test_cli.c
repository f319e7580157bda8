/* Tests of the orchd command line, run as a real process (build/bin/orchd). */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "util.h"

/* The end of orchd()'s argument list (a typed null pointer, as varargs need). */
#define END ((const char *)NULL)

static char *tmp, *extdir;

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static void setup(void)
{
	char *p;

	tmp = test_tmpdir();
	extdir = xasprintf("%s/ext", tmp);
	ck_assert_int_eq(mkdir(extdir, 0755), 0);
	p = xasprintf("%s/orchd-ext-exec", extdir);
	write_file(p, "#!/bin/sh\n", 0755);
	free(p);
	p = xasprintf("%s/p.yaml", tmp);
	write_file(p,
		   "demo:\n"
		   "  exec:\n"
		   "    - name: build\n"
		   "    - name: test\n"
		   "      depends_on: [build]\n"
		   "    - name: ship\n"
		   "      enabled: false\n"
		   "      v: \"${{ exec.test.outputs.v }}\"\n",
		   0644);
	free(p);
	setenv("ORCHD_EXTENSIONS_PATH_ONLY", "1", 1);
	unsetenv("ORCHD_EXTENSIONS_PATH");
}

static void teardown(void)
{
	test_rmtree(tmp);
	free(tmp);
	free(extdir);
}

/* Run orchd with the given arguments (NULL-terminated). */
static int orchd(char **out, char **err, ...)
{
	char *argv[16];
	const char *a;
	va_list ap;
	int n = 0, code, i;

	argv[n++] = test_build_path("bin/orchd");
	va_start(ap, err);
	while ((a = va_arg(ap, const char *)) && n < 15)
		argv[n++] = xstrdup(a);
	va_end(ap);
	argv[n] = NULL;
	code = test_run(argv, out, err);
	for (i = 0; i < n; i++)
		free(argv[i]);
	return code;
}

START_TEST(test_version_and_help)
{
	char *out, *err;

	ck_assert_int_eq(orchd(&out, &err, "version", END), 0);
	ck_assert_str_eq(out, "orchd " ORCHD_VERSION "\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "--help", END), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage: orchd"));
	ck_assert_ptr_nonnull(strstr(out, "  2    usage or configuration error\n"));
	ck_assert_ptr_nonnull(strstr(out, "  143  interrupted by SIGTERM\n"));
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "graph", "-h", END), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage: orchd graph [OPTIONS] FILE\n"));
	ck_assert_ptr_nonnull(strstr(out, "--format"));
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "help", "validate", END), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage: orchd validate [OPTIONS] FILE\n"));
	free(out);
	free(err);
}
END_TEST

START_TEST(test_usage_errors)
{
	char *out, *err;

	ck_assert_int_eq(orchd(&out, &err, "frobnicate", END), 2);
	ck_assert_str_eq(err, "orchd: error: unknown command 'frobnicate'\nTry 'orchd --help'.\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "validate", END), 2);
	ck_assert_str_eq(err,
			 "orchd: error: missing pipeline file\nTry 'orchd validate --help'.\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "graph", "--format", "svg", "x.yaml", END), 2);
	ck_assert_str_eq(err, "orchd: error: unknown format 'svg' (expected dot, mermaid or json)\n"
			      "Try 'orchd graph --help'.\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "validate", "--bogus", "x.yaml", END), 2);
	ck_assert_str_eq(err, "orchd: error: unknown option '--bogus'\n"
			      "Try 'orchd validate --help'.\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, END), 2);
	ck_assert_ptr_nonnull(strstr(err, "usage: orchd"));
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "validate", "/nonexistent/p.yaml", END), 2);
	ck_assert_str_eq(err,
			 "/nonexistent/p.yaml: error: cannot open: No such file or directory\n");
	free(out);
	free(err);
}
END_TEST

START_TEST(test_validate_and_run)
{
	char *file = xasprintf("%s/p.yaml", tmp), *want, *out, *err;

	ck_assert_int_eq(orchd(&out, &err, "--extensions-dir", extdir, "validate", "--syntax-only",
			       file, END),
			 0);
	want = xasprintf("%s: ok (3 instances)\n", file);
	ck_assert_str_eq(out, want);
	ck_assert_str_eq(err, "");
	free(want);
	free(out);
	free(err);
	/* without --syntax-only, the extension is asked: this stand-in
	 * exits without a hello */
	ck_assert_int_eq(orchd(&out, &err, "--extensions-dir", extdir, "validate", file, END), 1);
	ck_assert_str_eq(out, "");
	ck_assert_msg(strstr(err, "validate could not run every instance"), "%s", err);
	ck_assert_msg(strstr(err, "exec.build"), "%s", err);
	free(out);
	free(err);
	/* Without the extension, the type is unknown. */
	ck_assert_int_eq(orchd(&out, &err, "validate", file, END), 2);
	want = xasprintf("%s:2:3: error: demo.exec: unknown extension type 'exec' (no extensions "
			 "found, see 'orchd extensions')\n",
			 file);
	ck_assert_str_eq(err, want);
	free(want);
	free(out);
	free(err);
	/* run (and the bare `orchd FILE`) load and validate first: a bad
	 * pipeline stops them with the same diagnostics and exit 2. */
	ck_assert_int_eq(orchd(&out, &err, "run", file, END), 2);
	want = xasprintf("%s:2:3: error: demo.exec: unknown extension type 'exec' (no extensions "
			 "found, see 'orchd extensions')\n",
			 file);
	ck_assert_str_eq(err, want);
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, file, END), 2);
	ck_assert_str_eq(err, want);
	free(want);
	free(out);
	free(err);
	free(file);
}
END_TEST

START_TEST(test_graph_formats)
{
	char *file = xasprintf("%s/p.yaml", tmp), *out, *err;

	ck_assert_int_eq(orchd(&out, &err, "graph", "--format", "json", "--extensions-dir", extdir,
			       file, END),
			 0);
	ck_assert_str_eq(out, "{\"pipeline\":\"demo\",\"instances\":["
			      "{\"id\":\"exec.build\",\"type\":\"exec\",\"name\":\"build\","
			      "\"deps\":[],\"enabled\":true},"
			      "{\"id\":\"exec.test\",\"type\":\"exec\",\"name\":\"test\",\"deps\":["
			      "\"exec.build\"],\"enabled\":true},"
			      "{\"id\":\"exec.ship\",\"type\":\"exec\",\"name\":\"ship\",\"deps\":["
			      "\"exec.test\"],\"enabled\":false}],"
			      "\"order\":[\"exec.build\",\"exec.test\",\"exec.ship\"]}\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "--extensions-dir", extdir, "graph", file, END), 0);
	ck_assert_str_eq(out, "digraph \"demo\" {\n"
			      "\trankdir=LR;\n"
			      "\t\"exec.build\";\n"
			      "\t\"exec.test\";\n"
			      "\t\"exec.ship\" [style=dashed];\n"
			      "\t\"exec.build\" -> \"exec.test\";\n"
			      "\t\"exec.test\" -> \"exec.ship\";\n"
			      "}\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "--extensions-dir", extdir, "graph", "--format=mermaid",
			       file, END),
			 0);
	ck_assert_str_eq(out, "flowchart LR\n"
			      "\tn0[\"exec.build\"]\n"
			      "\tn1[\"exec.test\"]\n"
			      "\tn2[\"exec.ship\"]\n"
			      "\tstyle n2 stroke-dasharray: 5 5\n"
			      "\tn0 --> n1\n"
			      "\tn1 --> n2\n");
	free(out);
	free(err);
	free(file);
}
END_TEST

START_TEST(test_extensions_listing)
{
	char *second = xasprintf("%s/second", tmp), *p, *out, *err, *want;

	ck_assert_int_eq(mkdir(second, 0755), 0);
	p = xasprintf("%s/orchd-ext-exec", second);
	write_file(p, "#!/bin/sh\n", 0755);
	free(p);
	p = xasprintf("%s/orchd-ext-exec.manifest.json", second);
	write_file(p, "{\"version\":\"9.9.9\",\"description\":\"second\"}", 0644);
	free(p);
	p = xasprintf("%s/orchd-ext-lazy", second);
	write_file(p, "#!/bin/sh\n", 0644);
	free(p);
	ck_assert_int_eq(orchd(&out, &err, "--extensions-dir", extdir, "extensions",
			       "--extensions-dir", second, END),
			 0);
	want = xasprintf(
		"exec             ?          %s/orchd-ext-exec\n"
		"exec             9.9.9      %s/orchd-ext-exec  (shadowed)\n"
		"lazy             ?          %s/orchd-ext-lazy  (ignored: not executable)\n"
		"search path:\n  %s\n  %s\n",
		extdir, second, second, extdir, second);
	ck_assert_str_eq(out, want);
	free(want);
	free(out);
	free(err);
	free(second);
}
END_TEST

Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_version_and_help);
	tcase_add_test(tc, test_usage_errors);
	tcase_add_test(tc, test_validate_and_run);
	tcase_add_test(tc, test_graph_formats);
	tcase_add_test(tc, test_extensions_listing);
	suite_add_tcase(s, tc);
	return s;
}
