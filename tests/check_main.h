/* What every check-based unit test shares: the end of its main() (runs a suite, each case in a
 * forked process as check does by default, so a crash fails one case, and maps the failures to
 * the exit status ctest reads), lb_test_suite/lb_test_case (cases from lists of tests),
 * LB_TEST_N (the length of a case table, for tcase_add_loop_test) and lb_test_tmpfile (a
 * scratch file with given contents). */
#ifndef LB_TESTS_CHECK_MAIN_H
#define LB_TESTS_CHECK_MAIN_H
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LB_TEST_N(table) ((int)(sizeof(table) / sizeof((table)[0])))

/* Adds to s a case named name holding tests[0..n); returns it, for loop tests, fixtures and
 * timeouts. */
static inline TCase *lb_test_case(Suite *s, const char *name, const TTest *const *tests, int n) {
  TCase *c = tcase_create(name);
  for (int i = 0; i < n; i++) tcase_add_test(c, tests[i]);
  suite_add_tcase(s, c);
  return c;
}

/* A suite with one case, both named name, holding tests[0..n); *tc (may be NULL) gets the case. */
static inline Suite *lb_test_suite(const char *name, const TTest *const *tests, int n, TCase **tc) {
  Suite *s = suite_create(name);
  TCase *c = lb_test_case(s, name, tests, n);
  if (tc) *tc = c;
  return s;
}

/* Runs every case of s and frees it; EXIT_FAILURE when any case failed. */
static inline int lb_test_run(Suite *s) {
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Makes a fresh file from the template path ("/tmp/NAME_XXXXXX", completed in place) holding
 * text (NULL: empty); the caller removes it. */
static inline void lb_test_tmpfile(char *path, const char *text) {
  int fd = mkstemp(path);
  ck_assert_msg(fd >= 0, "mkstemp %s", path);
  size_t n = text ? strlen(text) : 0;
  if (n) ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
  close(fd);
}
#endif
