/* The end of every unit test's main(): runs a check suite (each case in a forked process, check's
 * default, so a crash fails one case) and maps the failures to the exit status ctest reads.
 * Also LB_TEST_N, the length of a case table, for tcase_add_loop_test. */
#ifndef LB_TESTS_CHECK_MAIN_H
#define LB_TESTS_CHECK_MAIN_H
#include <check.h>
#include <stdlib.h>

#define LB_TEST_N(table) ((int)(sizeof(table) / sizeof((table)[0])))

/* Runs every case of s and frees it; EXIT_FAILURE when any case failed. */
static inline int lb_test_run(Suite *s) {
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif
