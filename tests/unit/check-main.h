/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPM_TESTS_CHECK_MAIN_H
#define VPM_TESTS_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

/* main() for a Check test program made of one suite. */
#define VPM_CHECK_MAIN(suite_fn)                                                                   \
	int main(void)                                                                             \
	{                                                                                          \
		SRunner *sr = srunner_create(suite_fn());                                          \
		int failed;                                                                        \
                                                                                                   \
		srunner_run_all(sr, CK_NORMAL);                                                    \
		failed = srunner_ntests_failed(sr);                                                \
		srunner_free(sr);                                                                  \
		return failed ? EXIT_FAILURE : EXIT_SUCCESS;                                       \
	}

#endif
