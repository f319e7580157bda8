#include <check.h>
#include <errno.h>
#include <string.h>

#include "orchd_protocol.h"
#include "testutil.h"

START_TEST(test_append_and_format)
{
	struct op_buf sb = OP_BUF_INIT;

	ck_assert_str_eq(op_buf_str(&sb), "");
	ck_assert_int_eq(op_buf_addstr(&sb, "abc"), 0);
	ck_assert_int_eq(op_buf_addf(&sb, "-%d-", 42), 0);
	ck_assert_int_eq(op_buf_addch(&sb, 'z'), 0);
	ck_assert_str_eq(op_buf_str(&sb), "abc-42-z");
	op_buf_consume(&sb, 4);
	ck_assert_str_eq(op_buf_str(&sb), "42-z");
	ck_assert_uint_eq(sb.len, 4);
	op_buf_release(&sb);
}
END_TEST

START_TEST(test_cap_fails_and_sticks)
{
	struct op_buf sb;

	op_buf_init(&sb, 8);
	ck_assert_int_eq(op_buf_addstr(&sb, "12345678"), 0);
	ck_assert_int_eq(op_buf_failed(&sb), 0);
	ck_assert_int_eq(op_buf_addch(&sb, '9'), -1);
	ck_assert_int_eq(errno, E2BIG);
	ck_assert_uint_eq(sb.len, 0);
	ck_assert_ptr_null(sb.buf);
	/* Sticky: nothing is added after a failure, so no tail fragment. */
	errno = 0;
	ck_assert_int_eq(op_buf_addstr(&sb, "ok"), -1);
	ck_assert_int_eq(errno, E2BIG);
	ck_assert_int_eq(op_buf_addf(&sb, "%d", 1), -1);
	ck_assert_str_eq(op_buf_str(&sb), "");
	ck_assert_int_eq(op_buf_failed(&sb), E2BIG);
	ck_assert_ptr_null(op_buf_detach(&sb, NULL));
	/* reset starts over */
	op_buf_reset(&sb);
	ck_assert_int_eq(op_buf_failed(&sb), 0);
	ck_assert_int_eq(op_buf_addstr(&sb, "ok"), 0);
	ck_assert_str_eq(op_buf_str(&sb), "ok");
	op_buf_release(&sb);
}
END_TEST

START_TEST(test_ellipsize)
{
	struct op_buf sb = OP_BUF_INIT;

	op_buf_addstr(&sb, "abcdefgh");
	op_buf_ellipsize(&sb, 8);
	ck_assert_str_eq(op_buf_str(&sb), "abcdefgh");
	op_buf_ellipsize(&sb, 7);
	ck_assert_str_eq(op_buf_str(&sb), "abcd...");
	/* "ab" then e-acute (2 bytes) then "cd": a cut inside the sequence
	 * drops it whole */
	op_buf_reset(&sb);
	op_buf_addstr(&sb, "ab\xc3\xa9"
			   "cdef");
	op_buf_ellipsize(&sb, 6);
	ck_assert_str_eq(op_buf_str(&sb), "ab...");
	op_buf_release(&sb);
}
END_TEST

START_TEST(test_detach)
{
	struct op_buf sb = OP_BUF_INIT;
	size_t len;
	char *s;

	s = op_buf_detach(&sb, &len);
	ck_assert_str_eq(s, "");
	ck_assert_uint_eq(len, 0);
	free(s);
	op_buf_add(&sb, "a\0b", 3);
	s = op_buf_detach(&sb, &len);
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(memcmp(s, "a\0b", 3), 0);
	ck_assert_ptr_null(sb.buf);
	free(s);
}
END_TEST

Suite *buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_append_and_format);
	tcase_add_test(tc, test_cap_fails_and_sticks);
	tcase_add_test(tc, test_detach);
	tcase_add_test(tc, test_ellipsize);
	suite_add_tcase(s, tc);
	return s;
}
