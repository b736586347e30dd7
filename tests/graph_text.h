/* A graph's textual IR (lb_graph_print) as a malloc'd string, for the tests that compare a
 * printed graph or parse it back; inline_limit as for lb_graph_print. The caller frees it. */
#ifndef LB_TESTS_GRAPH_TEXT_H
#define LB_TESTS_GRAPH_TEXT_H
#include <check.h>
#include <stdio.h>

#include "ir.h"

static inline char *lb_test_graph_text(const lb_graph *g, int inline_limit) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  ck_assert_ptr_nonnull(f);
  lb_graph_print(g, f, inline_limit);
  fclose(f);
  return buf;
}
#endif
