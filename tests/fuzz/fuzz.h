/*
 * What every fuzz target shares: CHECK(c), which aborts (a finding for
 * libFuzzer, with the input saved) when a property does not hold.
 */
#ifndef ORCHD_TESTS_FUZZ_H
#define ORCHD_TESTS_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                              \
	do {                                                                                  \
		if (!(c)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                              \
		}                                                                             \
	} while (0)

#endif
