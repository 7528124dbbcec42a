/* Tiny test harness: CHECK records a failure and goes on; the test's main
 * returns check_result(). Exit 0 pass, 1 fail, 77 skip (liburing style). */
#ifndef SMG_TEST_CHECK_H
#define SMG_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define T_SKIP 77

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                     \
	do {                                                                            \
		check_count++;                                                          \
		if (!(cond)) {                                                          \
			check_failures++;                                               \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                       \
	} while (0)

#define CHECK_EQ(a, b)                                                           \
	do {                                                                     \
		long long ca_ = (long long)(a), cb_ = (long long)(b);            \
		check_count++;                                                   \
		if (ca_ != cb_) {                                                \
			check_failures++;                                        \
			fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, ca_, cb_);           \
		}                                                                \
	} while (0)

static inline int check_result(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
	return check_failures == 0 ? 0 : 1;
}

#endif
