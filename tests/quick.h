/* LB_TEST_QUICK: the heavy unit tests run a subset of their cases when it is set (tools/check sets
 * it for the ASan+UBSan build only, where -O0 and the sanitizers make every case ~10x slower).
 * The normal build runs everything; the subsets are chosen so each kind of case still runs. */
#ifndef LB_TESTS_QUICK_H
#define LB_TESTS_QUICK_H
#include <stdlib.h>

/* Nonzero when LB_TEST_QUICK is set to anything but "" or "0". */
static inline int lb_test_quick(void) {
  const char *e = getenv("LB_TEST_QUICK");
  return e && e[0] && !(e[0] == '0' && !e[1]);
}

/* n in the full run, quick in a quick one. */
static inline int lb_test_count(int n, int quick) { return lb_test_quick() ? quick : n; }
#endif
