/* Unit tests for the IR core: graph building, verification, compaction, dtype and op tables. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

#include "../check_main.h"

START_TEST(build_and_verify) {
  lb_graph *g = lb_graph_new("t");
  ck_assert_ptr_nonnull(g);
  int64_t d[2] = {2, 3};
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 2, d);
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, 2, d);
  uint32_t dead = lb_graph_add_value(g, "dead", LB_DTYPE_F32, 2, d);
  ck_assert_int_eq(lb_graph_add_input(g, x), 0);
  ck_assert_uint_ne(lb_graph_add_node(g, LB_OP_RELU, "r", &x, 1, &y, 1), LB_NONE);
  ck_assert_uint_ne(lb_graph_add_node(g, LB_OP_SIGMOID, "s", &x, 1, &dead, 1), LB_NONE);
  ck_assert_int_eq(lb_graph_add_output(g, y), 0);
  lb_diag diag = {0};
  ck_assert_int_eq(lb_graph_verify(g, &diag), 0);
  ck_assert_int_eq(lb_graph_compact(g), 0);
  ck_assert_uint_eq(g->n_nodes, 1);
  ck_assert_uint_eq(g->n_values, 2);
  ck_assert_int_eq(lb_graph_verify(g, &diag), 0);
  /* use before definition is caught */
  uint32_t z = lb_graph_add_value(g, "z", LB_DTYPE_F32, 2, d);
  uint32_t w = lb_graph_add_value(g, "w", LB_DTYPE_F32, 2, d);
  lb_graph_add_node(g, LB_OP_RELU, "a", &w, 1, &z, 1);
  lb_graph_add_node(g, LB_OP_RELU, "b", &z, 1, &w, 1);
  ck_assert_int_ne(lb_graph_verify(g, &diag), 0);
  ck_assert_ptr_nonnull(strstr(diag.msg, "before it is produced"));
  lb_graph_free(g);
}
END_TEST

START_TEST(dtype_table) {
  lb_dtype t;
  ck_assert_int_eq(lb_dtype_from_name("i4", &t), 0);
  ck_assert_int_eq(t, LB_DTYPE_I4);
  ck_assert_uint_eq(lb_dtype_bytes(LB_DTYPE_I4, 5), 3);
  ck_assert_uint_eq(lb_dtype_bytes(LB_DTYPE_B1, 9), 2);
  ck_assert_uint_eq(lb_dtype_bytes(LB_DTYPE_F32, 3), 12);
  ck_assert_int_ne(lb_dtype_from_name("f16x", &t), 0);
  lb_op op;
  ck_assert_int_eq(lb_op_from_name("conv", &op), 0);
  ck_assert_int_eq(op, LB_OP_CONV);
}
END_TEST

int main(void) {
  const TTest *tests[] = {build_and_verify, dtype_table};
  return lb_test_run(lb_test_suite("ir", tests, LB_TEST_N(tests), NULL));
}
