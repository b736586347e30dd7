/* Fault injection for the out-of-memory tests: lb_test_oom_alloc (an lb_set_allocator hook)
 * fails allocation number N since lb_test_oom_arm (and, sticky, every one after it);
 * lb_test_oom_sweep runs an operation with N = 1, 2, ... until it completes without reaching N.
 * Every failing run must return LB_ERR_NOMEM; ASan's leak check sees what it left behind. */
#ifndef LB_TESTS_OOM_H
#define LB_TESTS_OOM_H
#include <check.h>
#include <stdlib.h>

#include "ir.h"

static long lb_test_oom_at, lb_test_oom_calls;
static int lb_test_oom_sticky;

static inline void *lb_test_oom_alloc(void *p, size_t n) {
  if (n == 0) {
    free(p);
    return NULL;
  }
  long k = ++lb_test_oom_calls;
  if (k == lb_test_oom_at || (lb_test_oom_sticky && k > lb_test_oom_at)) return NULL;
  return realloc(p, n);
}

/* Installs the hook with allocation n (counted from 1) failing. */
static inline void lb_test_oom_arm(long n, int sticky) {
  lb_test_oom_calls = 0, lb_test_oom_at = n, lb_test_oom_sticky = sticky;
  lb_set_allocator(lb_test_oom_alloc);
}

/* Nonzero once the armed allocation has been reached (and failed). */
static inline int lb_test_oom_hit(void) { return lb_test_oom_calls >= lb_test_oom_at; }

/* Runs op(ctx) with allocation N failing for N = 1, 2, ... until op does not reach N, which must
 * be its first success; returns that N (the number of allocations op makes, plus one). */
static inline long lb_test_oom_sweep(int (*op)(void *ctx), void *ctx, int sticky,
                                     const char *what) {
  for (long n = 1;; n++) {
    lb_test_oom_arm(n, sticky);
    int rc = op(ctx);
    lb_set_allocator(NULL);
    if (!lb_test_oom_hit()) {
      ck_assert_msg(rc == 0, "%s: no failure injected but rc=%d", what, rc);
      return n;
    }
    ck_assert_msg(rc == LB_ERR_NOMEM, "%s: allocation %ld failed, rc=%d (want LB_ERR_NOMEM)", what,
                  n, rc);
  }
}
#endif
