/*
 * The test runner: every tests/test_NAME.c provides `Suite *NAME_suite(void)`
 * and the build generates suites.h listing them.  One runner, so one summary
 * line for the whole suite.  CK_RUN_SUITE / CK_RUN_CASE select a subset, as
 * with any Check runner.
 */
#include <check.h>
#include <stdlib.h>

#include "testutil.h"

int main(void)
{
	SRunner *sr = srunner_create(NULL);
	int failed;

#define SUITE(name) srunner_add_suite(sr, name##_suite());
#include "suites.h"
#undef SUITE
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
