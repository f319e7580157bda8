#include <check.h>
#include <errno.h>
#include <string.h>

#include "strbuf.h"
#include "testutil.h"

START_TEST(test_append_and_format)
{
	struct strbuf sb = STRBUF_INIT;

	ck_assert_str_eq(sb_str(&sb), "");
	ck_assert_int_eq(sb_addstr(&sb, "abc"), 0);
	ck_assert_int_eq(sb_addf(&sb, "-%d-", 42), 0);
	ck_assert_int_eq(sb_addch(&sb, 'z'), 0);
	ck_assert_str_eq(sb_str(&sb), "abc-42-z");
	sb_consume(&sb, 4);
	ck_assert_str_eq(sb_str(&sb), "42-z");
	ck_assert_uint_eq(sb.len, 4);
	sb_release(&sb);
}
END_TEST

START_TEST(test_cap_fails_and_empties)
{
	struct strbuf sb;

	sb_init(&sb, 8);
	ck_assert_int_eq(sb_addstr(&sb, "12345678"), 0);
	ck_assert_int_eq(sb_addch(&sb, '9'), -1);
	ck_assert_int_eq(errno, E2BIG);
	ck_assert_uint_eq(sb.len, 0);
	ck_assert_ptr_null(sb.buf);
	ck_assert_int_eq(sb_addstr(&sb, "ok"), 0);
	ck_assert_str_eq(sb_str(&sb), "ok");
	sb_release(&sb);
}
END_TEST

START_TEST(test_detach)
{
	struct strbuf sb = STRBUF_INIT;
	size_t len;
	char *s;

	s = sb_detach(&sb, &len);
	ck_assert_str_eq(s, "");
	ck_assert_uint_eq(len, 0);
	free(s);
	sb_add(&sb, "a\0b", 3);
	s = sb_detach(&sb, &len);
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(memcmp(s, "a\0b", 3), 0);
	ck_assert_ptr_null(sb.buf);
	free(s);
}
END_TEST

Suite *strbuf_suite(void)
{
	Suite *s = suite_create("strbuf");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_append_and_format);
	tcase_add_test(tc, test_cap_fails_and_empties);
	tcase_add_test(tc, test_detach);
	suite_add_tcase(s, tc);
	return s;
}
