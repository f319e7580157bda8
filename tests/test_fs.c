/*
 * protocol/fs.c: op_rmtree, the one recursive remove of orchd and its C
 * extensions, and op_write_file / op_write_json_file, the one file writer
 * of the extensions.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "x", 1), 1);
	close(fd);
}

START_TEST(test_rmtree_removes_everything_but_what_links_point_to)
{
	char *dir = test_tmpdir(), *tree = xasprintf("%s/tree", dir);
	char *outside = xasprintf("%s/outside", dir), *keep = xasprintf("%s/keep", outside);
	char *p;

	ck_assert_int_eq(mkdir(tree, 0700), 0);
	ck_assert_int_eq(mkdir(outside, 0700), 0);
	touch(keep);
	p = xasprintf("%s/a", tree);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	free(p);
	p = xasprintf("%s/a/b", tree);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	free(p);
	p = xasprintf("%s/a/b/f", tree);
	touch(p);
	free(p);
	/* a link to a directory outside: removed, never followed */
	p = xasprintf("%s/a/link", tree);
	ck_assert_int_eq(symlink(outside, p), 0);
	free(p);
	ck_assert_int_eq(op_rmtree(tree), 0);
	ck_assert_int_eq(access(tree, F_OK), -1);
	ck_assert_int_eq(access(keep, F_OK), 0);
	/* a missing path is already removed; a file is unlinked */
	ck_assert_int_eq(op_rmtree(tree), 0);
	ck_assert_int_eq(op_rmtree(keep), 0);
	ck_assert_int_eq(access(keep, F_OK), -1);
	errno = 0;
	ck_assert_int_eq(op_rmtree(""), -1);
	ck_assert_int_eq(errno, EINVAL);
	test_rmtree(dir);
	free(dir);
	free(tree);
	free(outside);
	free(keep);
}
END_TEST

START_TEST(test_rmtree_reports_what_it_could_not_remove)
{
	char *dir = test_tmpdir(), *tree = xasprintf("%s/t", dir);
	char *sub = xasprintf("%s/t/sub", dir), *f = xasprintf("%s/t/sub/f", dir);
	char *g = xasprintf("%s/t/g", dir);

	ck_assert_int_eq(mkdir(tree, 0700), 0);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	touch(f);
	touch(g);
	/* an immutable-like case without privileges: a directory whose
	 * entries cannot be unlinked (no write permission), unless we are
	 * root (then everything goes) */
	ck_assert_int_eq(chmod(sub, 0500), 0);
	if (geteuid() != 0) {
		ck_assert_int_eq(op_rmtree(tree), -1);
		ck_assert_int_eq(errno, EACCES);
		/* it went on: g is gone even though sub/f stayed */
		ck_assert_int_eq(access(g, F_OK), -1);
		ck_assert_int_eq(access(f, F_OK), 0);
		chmod(sub, 0700);
	}
	ck_assert_int_eq(op_rmtree(tree), 0);
	ck_assert_int_eq(access(tree, F_OK), -1);
	test_rmtree(dir);
	free(dir);
	free(tree);
	free(sub);
	free(f);
	free(g);
}
END_TEST

START_TEST(test_write_file_and_json)
{
	char *dir = test_tmpdir(), *f = xasprintf("%s/f.json", dir), *text;
	char *missing = xasprintf("%s/no/such/dir/f", dir), *expect;
	struct json_object *v = json_tokener_parse("{\"url\":\"http://x/y\",\"n\":[1]}");
	char err[OP_ERRMAX];
	struct stat st;

	/* created 0600, whatever the umask allows */
	ck_assert_int_eq(op_write_file(f, "old content, longer\n", 20, err, sizeof(err)), 0);
	ck_assert_int_eq(stat(f, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	/* truncated; pretty JSON, no '\/', a final newline */
	ck_assert_int_eq(op_write_json_file(f, v, err, sizeof(err)), 0);
	text = test_read_file(f, NULL);
	ck_assert_str_eq(text, "{\n  \"url\":\"http://x/y\",\n  \"n\":[\n    1\n  ]\n}\n");
	free(text);
	ck_assert_int_eq(op_write_json_file(f, NULL, err, sizeof(err)), 0);
	text = test_read_file(f, NULL);
	ck_assert_str_eq(text, "null\n");
	free(text);
	/* the error names the file */
	errno = 0;
	ck_assert_int_eq(op_write_json_file(missing, v, err, sizeof(err)), -1);
	ck_assert_int_eq(errno, ENOENT);
	expect = xasprintf("cannot write '%s': No such file or directory", missing);
	ck_assert_str_eq(err, expect);
	free(expect);
	json_object_put(v);
	test_rmtree(dir);
	free(dir);
	free(f);
	free(missing);
}
END_TEST

Suite *fs_suite(void)
{
	Suite *s = suite_create("fs");
	TCase *tc = tcase_create("rmtree");

	tcase_add_test(tc, test_rmtree_removes_everything_but_what_links_point_to);
	tcase_add_test(tc, test_rmtree_reports_what_it_could_not_remove);
	suite_add_tcase(s, tc);
	tc = tcase_create("write");
	tcase_add_test(tc, test_write_file_and_json);
	suite_add_tcase(s, tc);
	return s;
}
