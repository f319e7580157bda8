/* Tests of core/loader: the extension search path, with real files. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/loader.h"
#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
	ck_assert_int_eq(chmod(path, mode), 0);
	free(path);
}

static char *subdir(const char *base, const char *name)
{
	char *d = xasprintf("%s/%s", base, name);

	ck_assert_int_eq(mkdir(d, 0755), 0);
	return d;
}

START_TEST(test_order_shadowing_manifest)
{
	char *tmp = test_tmpdir();
	char *d1 = subdir(tmp, "one"), *d2 = subdir(tmp, "two"), *d3 = subdir(tmp, "three");
	char *envpath = xasprintf("%s/missing:%s", tmp, d3);
	struct orchd_registry r = ORCHD_REGISTRY_INIT;
	const char *dirs[] = {d1, d2};
	const struct orchd_ext_info *e;
	struct op_buf err = OP_BUF_INIT;
	const char **types;
	char *want;
	size_t n;

	write_file(d1, "orchd-ext-exec", "#!/bin/sh\n", 0755);
	write_file(d1, "orchd-ext-exec.manifest.json",
		   "{\"name\":\"exec\",\"version\":\"0.1.0\",\"protocol\":{\"min\":1,\"max\":2},"
		   "\"min_orchd_version\":\"0.1.0\",\"description\":\"run commands\"}",
		   0644);
	write_file(d1, "orchd-ext-broken", "#!/bin/sh\n", 0644); /* not executable */
	write_file(d1, "README", "not an extension", 0755);
	write_file(d2, "orchd-ext-exec", "#!/bin/sh\n", 0755);	 /* shadowed */
	write_file(d2, "orchd-ext-broken", "#!/bin/sh\n", 0755); /* usable */
	write_file(d3, "orchd-ext-tf", "#!/bin/sh\n", 0755);	 /* from the env */
	write_file(d3, "orchd-ext-tf.manifest.json", "not json", 0644);
	setenv("ORCHD_EXTENSIONS_PATH", envpath, 1);

	ck_assert_int_eq(orchd_loader_discover(&r, dirs, 2, ORCHD_LOADER_NO_BUILTIN, &err), 0);
	ck_assert_uint_eq(r.ndirs, 4);
	ck_assert_str_eq(r.dirs[0], d1);
	ck_assert_str_eq(r.dirs[1], d2);
	ck_assert_str_eq(r.dirs[3], d3);
	ck_assert_uint_eq(r.n, 5);
	e = orchd_loader_find(&r, "exec", &err);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e->dir, d1);
	ck_assert_str_eq(e->version, "0.1.0");
	ck_assert_str_eq(e->description, "run commands");
	ck_assert_str_eq(e->min_orchd, "0.1.0");
	ck_assert_int_eq(e->proto_min, 1);
	ck_assert_int_eq(e->proto_max, 2);
	ck_assert_int_eq(e->shadowed, 0);
	/* d1's exec is first; d2's is recorded as shadowed. */
	ck_assert_str_eq(r.v[3].type, "exec");
	ck_assert_str_eq(r.v[3].dir, d2);
	ck_assert_int_eq(r.v[3].shadowed, 1);
	ck_assert_str_eq(r.v[3].version, "?");
	/* A non-executable file never wins: the later executable one does. */
	ck_assert_int_eq(r.v[0].executable, 0);
	e = orchd_loader_find(&r, "broken", NULL);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e->dir, d2);
	ck_assert_int_eq(e->shadowed, 0);
	/* From $ORCHD_EXTENSIONS_PATH (its missing element skipped). */
	e = orchd_loader_find(&r, "tf", NULL);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e->dir, d3);
	ck_assert_str_eq(e->version, "?");
	ck_assert_ptr_nonnull(e->manifest_error);
	types = orchd_loader_types(&r, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(types[0], "exec");
	ck_assert_str_eq(types[1], "broken");
	ck_assert_str_eq(types[2], "tf");
	free(types);
	ck_assert_ptr_null(orchd_loader_find(&r, "nope", &err));
	want = xasprintf("no extension for type 'nope' (searched: %s %s %s/missing %s)", d1, d2,
			 tmp, d3);
	ck_assert_str_eq(op_buf_str(&err), want);
	free(want);
	orchd_loader_release(&r);
	op_buf_release(&err);
	test_rmtree(tmp);
	free(envpath);
	free(d1);
	free(d2);
	free(d3);
	free(tmp);
}
END_TEST

START_TEST(test_not_executable_reported)
{
	char *tmp = test_tmpdir();
	struct orchd_registry r = ORCHD_REGISTRY_INIT;
	const char *dirs[] = {tmp, tmp}; /* the same directory twice: scanned once */
	struct op_buf err = OP_BUF_INIT;
	char *want;

	write_file(tmp, "orchd-ext-exec", "#!/bin/sh\n", 0644);
	ck_assert_int_eq(orchd_loader_discover(&r, dirs, 2,
					       ORCHD_LOADER_NO_BUILTIN | ORCHD_LOADER_NO_ENV, &err),
			 0);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_ptr_null(orchd_loader_find(&r, "exec", &err));
	want = xasprintf("extension 'exec' at %s/orchd-ext-exec is not executable", tmp);
	ck_assert_str_eq(op_buf_str(&err), want);
	free(want);
	orchd_loader_release(&r);
	op_buf_release(&err);
	test_rmtree(tmp);
	free(tmp);
}
END_TEST

START_TEST(test_builtin_dirs)
{
	struct orchd_registry r = ORCHD_REGISTRY_INIT;
	char exe[4096], *exe_dir;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	unsetenv("ORCHD_EXTENSIONS_PATH");
	unsetenv("ORCHD_EXTENSIONS_PATH_ONLY");
	/* the per-user directory of `orchd ext install` first */
	setenv("XDG_DATA_HOME", "/nonexistent/xdg", 1);
	ck_assert_int_eq(orchd_loader_discover(&r, NULL, 0, 0, NULL), 0);
	ck_assert_uint_eq(r.ndirs, 3);
	ck_assert_str_eq(r.dirs[0], "/nonexistent/xdg/orchd/extensions");
	ck_assert_str_eq(r.dirs[1], ORCHD_PREFIX "/libexec/orchd/extensions");
	/* ../libexec/orchd/extensions beside the running executable. */
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	exe_dir = xasprintf("%s/../libexec/orchd/extensions", exe);
	ck_assert_str_eq(r.dirs[2], exe_dir);
	free(exe_dir);
	orchd_loader_release(&r);
	/* without XDG_DATA_HOME: ~/.local/share */
	unsetenv("XDG_DATA_HOME");
	setenv("HOME", "/nonexistent/home", 1);
	ck_assert_int_eq(orchd_loader_discover(&r, NULL, 0, 0, NULL), 0);
	ck_assert_str_eq(r.dirs[0], "/nonexistent/home/.local/share/orchd/extensions");
	orchd_loader_release(&r);

	setenv("ORCHD_EXTENSIONS_PATH_ONLY", "1", 1);
	ck_assert_int_eq(orchd_loader_discover(&r, NULL, 0, 0, NULL), 0);
	ck_assert_uint_eq(r.ndirs, 0);
	orchd_loader_release(&r);
}
END_TEST

Suite *loader_suite(void)
{
	Suite *s = suite_create("loader");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_order_shadowing_manifest);
	tcase_add_test(tc, test_not_executable_reported);
	tcase_add_test(tc, test_builtin_dirs);
	suite_add_tcase(s, tc);
	return s;
}
