/* Tests of the spec cost model (passes/cost.c) against figures computed by hand from
 * specs/x86-64-avx2.yaml: MACs over macs_per_cycle x efficiency, outputs over
 * elements_per_cycle, weight and activation bytes over the bandwidth of their level. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "search.h"

#include "../check_main.h"

static lb_spec *spec;

static void load_spec(void) {
  lb_diag d = {0};
  ck_assert_msg(lb_spec_load("x86-64-avx2", &spec, &d) == 0, "%s", d.msg);
}

static void free_spec(void) { lb_spec_free(spec); }

/* x [1,2,4,4] -> conv w [3,2,3,3] + b [3], pad 1 -> y [1,3,4,4] -> relu -> flatten. */
static lb_graph *conv_graph(void) {
  lb_graph *g = lb_graph_new("g");
  int64_t xd[4] = {1, 2, 4, 4}, wd[4] = {3, 2, 3, 3}, bd[1] = {3}, yd[4] = {1, 3, 4, 4};
  float w[54], b[3] = {0.1f, 0.2f, 0.3f};
  for (int i = 0; i < 54; i++) w[i] = (float)(i % 7) * 0.1f - 0.3f;
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 4, xd);
  uint32_t wv = lb_graph_add_const(g, "w", LB_DTYPE_F32, 4, wd, w, sizeof w);
  uint32_t bv = lb_graph_add_const(g, "b", LB_DTYPE_F32, 1, bd, b, sizeof b);
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, 4, yd);
  uint32_t r = lb_graph_add_value(g, "r", LB_DTYPE_F32, 4, yd);
  uint32_t f = lb_graph_add_value(g, "f", LB_DTYPE_F32, 0, NULL);
  uint32_t in[3] = {x, wv, bv};
  uint32_t c = lb_graph_add_node(g, LB_OP_CONV, "conv", in, 3, &y, 1);
  lb_attrs *a = &g->nodes[c].attr;
  a->n_spatial = 2, a->group = 1;
  for (int i = 0; i < 2; i++) a->strides[i] = a->dilations[i] = 1, a->pads[i] = a->pads[2 + i] = 1;
  lb_graph_add_node(g, LB_OP_RELU, "relu", &y, 1, &r, 1);
  uint32_t fl = lb_graph_add_node(g, LB_OP_FLATTEN, "flat", &r, 1, &f, 1);
  g->nodes[fl].attr.axis = 1;
  lb_graph_add_input(g, x);
  lb_graph_add_output(g, f);
  lb_diag d = {0};
  ck_assert_msg(lb_infer_shapes(g, &d) == 0, "%s", d.msg);
  return g;
}

static const lb_spec_combo *combo(lb_spec_opkind k, const char *label) {
  const lb_spec_combo *cs;
  size_t n = lb_spec_combos(spec, k, &cs);
  for (size_t i = 0; i < n; i++)
    if (strcmp(cs[i].label, label) == 0) return &cs[i];
  ck_abort_msg("no combination %s", label);
  return NULL;
}

START_TEST(conv_int8) {
  lb_graph *g = conv_graph();
  lb_cost c = lb_cost_node(spec, g, 0, combo(LB_SPEC_CONV2D, "i8"), LB_DTYPE_I8, LB_DTYPE_I8, 64);
  /* 3*4*4 outputs x 2*3*3 taps = 864 MACs at 32 x 0.82 */
  ck_assert_double_eq_tol(c.compute, 864.0 / (32 * 0.82), 1e-9);
  ck_assert_double_eq_tol(c.epilogue, 48.0 / 8, 1e-9); /* 48 outputs at 8 per cycle */
  /* weights 54 B + bias 12 B + 3 scales 12 B at 64 B/cycle; activations 32 + 48 B from L1 */
  ck_assert_double_eq_tol(c.memory, 78.0 / 64 + 80.0 / 64, 1e-9);
  ck_assert_int_eq(lb_cost_weight_bytes(g, 0, LB_DTYPE_I8), 78);
  lb_graph_free(g);
}
END_TEST

START_TEST(conv_subbyte) {
  lb_graph *g = conv_graph();
  lb_cost c4 = lb_cost_node(spec, g, 0, combo(LB_SPEC_CONV2D, "i8_w4"), LB_DTYPE_I8, LB_DTYPE_I4, 64);
  ck_assert_double_eq_tol(c4.compute, 864.0 / (64 * 0.54), 1e-9);
  ck_assert_int_eq(lb_cost_weight_bytes(g, 0, LB_DTYPE_I4), 27 + 12 + 12);
  ck_assert_double_eq_tol(c4.memory, 51.0 / 64 + 80.0 / 64, 1e-9);
  ck_assert_int_eq(lb_cost_weight_bytes(g, 0, LB_DTYPE_I2), 14 + 12 + 12); /* 108 bits -> 14 B */
  lb_cost cb = lb_cost_node(spec, g, 0, combo(LB_SPEC_CONV2D, "binary"), LB_DTYPE_B1, LB_DTYPE_B1, 64);
  ck_assert_double_eq_tol(cb.compute, 864.0 / (128 * 0.83), 1e-9);
  /* binary also binarizes its 32 inputs */
  ck_assert_double_eq_tol(cb.epilogue, (48.0 + 32.0) / 8, 1e-9);
  ck_assert_int_eq(lb_cost_weight_bytes(g, 0, LB_DTYPE_B1), 7 + 12 + 12);
  lb_graph_free(g);
}
END_TEST

START_TEST(conv_fp32_and_views) {
  lb_graph *g = conv_graph();
  lb_cost c = lb_cost_node(spec, g, 0, NULL, LB_DTYPE_F32, LB_DTYPE_F32, 32);
  ck_assert_double_eq_tol(c.compute, 864.0 / (16 * 0.9), 1e-9);
  /* fp32 weights 216 B + bias 12 B (no scales) over 32 B/cycle; activations 320 B from L1 */
  ck_assert_double_eq_tol(c.memory, 228.0 / 32 + 320.0 / 64, 1e-9);
  lb_cost r = lb_cost_node(spec, g, 1, NULL, LB_DTYPE_I8, LB_DTYPE_F32, 64);
  ck_assert_double_eq_tol(r.epilogue, 48.0 / (32 * 0.09), 1e-9); /* activation.i8 */
  ck_assert_double_eq_tol(r.memory, 96.0 / 64, 1e-9);
  lb_cost f = lb_cost_node(spec, g, 2, NULL, LB_DTYPE_I8, LB_DTYPE_F32, 64);
  ck_assert(lb_cost_total(&f) == 0.0); /* a view */
  lb_graph_free(g);
}
END_TEST

static const struct {
  int64_t bytes;
  int level;
  double bw;
} levels[] = {
    /* weight bytes   level  B/cycle (x86-64-avx2.yaml) */
    {1000, 1, 64},
    {32 * 1024, 1, 64},
    {32 * 1024 + 1, 2, 32},
    {2 << 20, 3, 16},
    {64 << 20, 4, 6},
};

START_TEST(weight_levels) {
  double bw;
  ck_assert_int_eq(lb_cost_weight_level(spec, levels[_i].bytes, &bw), levels[_i].level);
  ck_assert_double_eq_tol(bw, levels[_i].bw, 1e-12);
}
END_TEST

int main(void) {
  const TTest *tests[] = {conv_int8, conv_subbyte, conv_fp32_and_views};
  TCase *t;
  Suite *s = lb_test_suite("cost", tests, LB_TEST_N(tests), &t);
  tcase_add_checked_fixture(t, load_spec, free_spec);
  tcase_add_loop_test(t, weight_levels, 0, LB_TEST_N(levels));
  return lb_test_run(s);
}
