/* Unit tests of the int8 quantization: the requantize definition (ties, saturation, negative
 * values, zero points, per-channel), scale/zero-point choice, activation bounds, the integer
 * kernels against hand-computed results, annotate's spec-driven decisions (fp32 islands, shared
 * scales), calibration methods on known data, the plan YAML (round trip and located errors),
 * the QDQ export -> import -> qdq_to_int round trip (bit-exact against realize), and the golden
 * files in tests/golden/quant/. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../check_main.h"
#include "../digits.h"
#include "../golden_harness.h"
#include "onnx.h"
#include "passes.h"
#include "quantize.h"
#include "search.h"
#include "spec.h"
#include "tensor_io.h"

#define MODELS LB_SOURCE_DIR "/tests/models/"

/* ---- requantize --------------------------------------------------------------------------- */

typedef struct {
  int32_t acc;
  float m;
  int32_t zp, lo, hi, want;
} rq_case;

static const rq_case rq_cases[] = {
    /* acc    m       zp    lo    hi   want */
    {5, 0.5f, 0, -128, 127, 2},       /* 2.5 ties to even: 2 */
    {7, 0.5f, 0, -128, 127, 4},       /* 3.5 ties to even: 4 */
    {-5, 0.5f, 0, -128, 127, -2},     /* -2.5 -> -2 */
    {-7, 0.5f, 0, -128, 127, -4},     /* -3.5 -> -4 */
    {3, 0.5f, 10, -128, 127, 12},     /* 1.5 -> 2, + zp */
    {1000, 1.0f, 0, -128, 127, 127},  /* saturates high */
    {-1000, 1.0f, 0, -128, 127, -128}, /* saturates low */
    {-1000, 1.0f, 0, 0, 255, 0},      /* u8 */
    {300, 1.0f, 0, 0, 255, 255},      /* u8 */
    {-20, 1.0f, -128, -128, 127, -128}, /* asymmetric i8: below the zero point saturates */
    {-20, 1.0f, 30, 30, 127, 30},     /* relu bound at the zero point */
    {INT32_MAX, 1.0f, 0, -128, 127, 127},
    {INT32_MIN, 1.0f, 0, -128, 127, -128},
    {123456, 0.001f, 0, -128, 127, 123}, /* 123.456 */
    {-2, 0.25f, 0, -128, 127, 0},     /* -0.5 ties to even: 0 (not -1) */
};

START_TEST(requantize_table) {
  const rq_case *c = &rq_cases[_i];
  ck_assert_int_eq(lb_requantize(c->acc, c->m, c->zp, c->lo, c->hi), c->want);
}
END_TEST

/* The definition against an independent double-precision reference over many values: both
 * products fp32-rounded, sum fp32, RNE (C99 rint in double of an exact float is exact). */
START_TEST(requantize_reference) {
  uint32_t seed = 12345;
  for (int i = 0; i < 200000; i++) {
    seed = seed * 1664525u + 1013904223u;
    int32_t acc = (int32_t)(seed >> 8) - (1 << 23);
    seed = seed * 1664525u + 1013904223u;
    float m = (float)((seed >> 9) + 1) * 1e-9f;
    int32_t zp = (int32_t)(seed & 255) - 128;
    float prod = (float)acc * m; /* one fp32 multiply */
    double x = prod, lo = -128.0 - zp, hi = 127.0 - zp;
    x = x < lo ? lo : x > hi ? hi : x;
    int32_t want = (int32_t)rint(x) + zp;
    ck_assert_int_eq(lb_requantize(acc, m, zp, -128, 127), want);
    float a2 = (float)(acc / 3) * m, b2 = (float)(acc % 1000) * (m * 2);
    double s = (double)(float)(a2 + b2);
    s = s < lo ? lo : s > hi ? hi : s;
    ck_assert_int_eq(lb_requantize2(acc / 3, m, acc % 1000, m * 2, zp, -128, 127),
                     (int32_t)rint(s) + zp);
  }
}
END_TEST

START_TEST(qparams_and_bounds) {
  float s;
  int32_t z, lo, hi;
  lb_qparams(-2.0f, 1.0f, LB_DTYPE_I8, 1, &s, &z); /* symmetric: max|.| / 127 */
  ck_assert_float_eq(s, (float)(2.0 / 127));
  ck_assert_int_eq(z, 0);
  lb_qparams(0.0f, 2.55f, LB_DTYPE_U8, 0, &s, &z); /* asymmetric u8 from 0 */
  ck_assert_float_eq(s, (float)(2.55 / 255));
  ck_assert_int_eq(z, 0);
  lb_qparams(0.0f, 2.55f, LB_DTYPE_I8, 0, &s, &z); /* asymmetric i8: 0 maps to -128 */
  ck_assert_int_eq(z, -128);
  lb_qparams(-1.0f, 3.0f, LB_DTYPE_U8, 0, &s, &z); /* zp = rne(0 + 1/(4/255)) = 64 */
  ck_assert_float_eq(s, (float)(4.0 / 255));
  ck_assert_int_eq(z, 64);
  lb_qparams(0.5f, 2.0f, LB_DTYPE_U8, 0, &s, &z); /* the range is widened to include 0 */
  ck_assert_int_eq(z, 0);
  lb_qparams(0, 0, LB_DTYPE_I8, 1, &s, &z);
  ck_assert_float_eq(s, 1.0f);
  lb_qact_bounds(LB_ACT_RELU, 0, 0, LB_DTYPE_I8, 0.1f, -20, &lo, &hi);
  ck_assert_int_eq(lo, -20);
  ck_assert_int_eq(hi, 127);
  lb_qact_bounds(LB_ACT_CLIP, 0, 6, LB_DTYPE_U8, 0.05f, 3, &lo, &hi); /* 6/0.05 = 120 + 3 */
  ck_assert_int_eq(lo, 3);
  ck_assert_int_eq(hi, 123);
  lb_qact_bounds(LB_ACT_CLIP, -100, 100, LB_DTYPE_I8, 0.05f, 0, &lo, &hi); /* saturated */
  ck_assert_int_eq(lo, -128);
  ck_assert_int_eq(hi, 127);
  ck_assert_int_eq(lb_qquantize(0.25f, 0.5f, 0, -128, 127), 0);  /* 0.5 ties to even */
  ck_assert_int_eq(lb_qquantize(0.75f, 0.5f, 0, -128, 127), 2);  /* 1.5 -> 2 */
  ck_assert_int_eq(lb_qquantize(NAN, 0.5f, 7, -128, 127), 7);
  ck_assert_float_eq(lb_qmul(0.5f, 0.25f, 0.125f), 1.0f);
  ck_assert_float_eq(lb_qmul_pool(1.0f, 0.5f, 4), 0.5f);
}
END_TEST

/* ---- integer kernels ---------------------------------------------------------------------- */

static lb_graph *parse(const char *text) {
  lb_graph *g;
  lb_diag d = {0};
  ck_assert_msg(lb_graph_parse(text, "<test>", &g, &d) == 0, "%s", d.msg);
  return g;
}

static void run1(const lb_graph *g, const void *x, size_t xbytes, lb_tensor *out) {
  const lb_value *v = &g->values[g->inputs[0]];
  lb_tensor in = {v->dtype, v->rank, {0}, (void *)x};
  memcpy(in.dims, v->dims, sizeof in.dims);
  ck_assert_uint_eq(xbytes, lb_dtype_bytes(v->dtype, lb_value_numel(v)));
  lb_diag d = {0};
  ck_assert_msg(lb_interp_run(g, &in, out, &d) == 0, "%s", d.msg);
}

/* A 1x1 conv with per-channel weights, asymmetric u8 input, bias and relu:
 * x (u8, s=0.5, z=10) = [10, 12, 20, 30]  -> real [0, 1, 5, 10]
 * channel 0: w=2 (s=0.25 -> 0.5), bias 4 (s=0.125 -> 0.5): y = 0.5x + 0.5 = [0.5 1 3 5.5]
 * channel 1: w=-4 (s=0.5 -> -2), no bias: y = relu(-2x) = [0 0 0 0]
 * output u8 s=0.25, z=2: ch0 -> [4, 6, 14, 24], ch1 -> 2 (relu bound at the zero point). */
START_TEST(int_conv_per_channel) {
  lb_graph *g = parse(
      "graph \"c\" {\n"
      "  input %x: u8[1,1,2,2] quant(scale=0.5, zero_point=10)\n"
      "  const %w: i8[2,1,1,1] quant(axis=0, scale=[0.25, 0.5], zero_point=[0, 0]) = [2, -4]\n"
      "  const %b: i32[2] quant(axis=0, scale=[0.125, 0.25], zero_point=[0, 0]) = [4, 0]\n"
      "  %y: u8[1,2,2,2] quant(scale=0.25, zero_point=2) = conv(%x, %w, %b) {act=relu}\n"
      "  output %y\n"
      "}\n");
  uint8_t x[4] = {10, 12, 20, 30};
  lb_tensor out;
  run1(g, x, 4, &out);
  const uint8_t want[8] = {4, 6, 14, 24, 2, 2, 2, 2};
  ck_assert_mem_eq(out.data, want, 8);
  lb_free(out.data);
  lb_graph_free(g);
}
END_TEST

/* add: a (s=0.1, z=0) + b (s=0.2, z=-10) -> y (s=0.3, z=5), i8, with broadcasting of b.
 * a = [10, -20, 30], b = [0] (real 2.0): y real = [3, 0, 5] -> [15, 5, 22] (16.67 -> 17 +5). */
START_TEST(int_add_broadcast) {
  lb_graph *g = parse(
      "graph \"a\" {\n"
      "  input %a: i8[1,3] quant(scale=0.1, zero_point=0)\n"
      "  const %b: i8[1] quant(scale=0.2, zero_point=-10) = [0]\n"
      "  %y: i8[1,3] quant(scale=0.3, zero_point=5) = add(%a, %b)\n"
      "  output %y\n"
      "}\n");
  int8_t a[3] = {10, -20, 30};
  lb_tensor out;
  run1(g, a, 3, &out);
  const int8_t *y = out.data;
  /* 1 + 2 = 3 -> 10 + 5; -2 + 2 = 0 -> 5; 3 + 2 = 5 -> 16.67 -> 17 + 5 */
  ck_assert_int_eq(y[0], 15);
  ck_assert_int_eq(y[1], 5);
  ck_assert_int_eq(y[2], 22);
  lb_free(out.data);
  lb_graph_free(g);
}
END_TEST

/* gemm with an int32 accumulator output: y = x * W^T + b exactly, dequantized after. */
START_TEST(int_gemm_acc_output) {
  lb_graph *g = parse(
      "graph \"m\" {\n"
      "  input %x: i8[1,3] quant(scale=0.5, zero_point=1)\n"
      "  const %w: i8[2,3] quant(axis=0, scale=[1, 2], zero_point=[0, 0]) = [1, 2, 3, -1, 0, 127]\n"
      "  const %b: i32[2] quant(axis=0, scale=[0.5, 1], zero_point=[0, 0]) = [100, -7]\n"
      "  %y: i32[1,2] quant(axis=1, scale=[0.5, 1], zero_point=[0, 0]) = gemm(%x, %w, %b) {trans_b=1}\n"
      "  output %y\n"
      "}\n");
  int8_t x[3] = {3, -1, 1}; /* minus the zero point: 2, -2, 0 */
  lb_tensor out;
  run1(g, x, 3, &out);
  const int32_t *y = out.data;
  ck_assert_int_eq(y[0], 100 + 2 * 1 - 2 * 2 + 0); /* 98 */
  ck_assert_int_eq(y[1], -7 - 2 * 1 + 0 + 0);       /* -9 */
  lb_free(out.data);
  lb_graph_free(g);
}
END_TEST

/* matmul of two activations, mul and sub (per-tensor), against hand-computed values:
 * a = [2, 4] (s 0.5: real [1, 2]); B = [[4, 0], [8, -4]] (s 0.25: [[1, 0], [2, -1]]);
 * a x B = [5, -2] -> y (s 0.1) [50, -20]; a * a = [1, 4] -> [10, 40]; a - a = 0 -> z. */
START_TEST(int_matmul_mul_sub) {
  static const char *const ops[] = {"matmul(%a, %b)", "mul(%a, %a)", "sub(%a, %a)"};
  static const int8_t want[3][2] = {{50, -20}, {10, 40}, {3, 3}};
  for (int i = 0; i < 3; i++) {
    char text[1024];
    snprintf(text, sizeof text,
             "graph \"m\" {\n"
             "  input %%a: i8[1,2] quant(scale=0.5, zero_point=0)\n"
             "  const %%b: i8[2,2] quant(scale=0.25, zero_point=0) = [4, 0, 8, -4]\n"
             "  %%y: i8[1,2] quant(scale=0.1, zero_point=%d) = %s\n"
             "  output %%y\n"
             "}\n", i == 2 ? 3 : 0, ops[i]);
    lb_graph *g = parse(text);
    int8_t a[2] = {2, 4};
    lb_tensor out;
    run1(g, a, 2, &out);
    ck_assert_mem_eq(out.data, want[i], 2);
    lb_free(out.data);
    lb_graph_free(g);
  }
}
END_TEST

/* Table activations: sigmoid from i8 (s 0.1) to u8 (s 1/256): 0 -> 0.5 -> 128,
 * 20 -> sigmoid(2) = 0.8808 -> 225.5 -> 225 (225.48), -128 -> ~0 -> 0, 127 -> ~1 -> 255; and the
 * table equals quantize(f(dequantize(q))) for every q, for each table op. */
START_TEST(int_table_activations) {
  lb_graph *g = parse(
      "graph \"s\" {\n"
      "  input %x: i8[4] quant(scale=0.1, zero_point=0)\n"
      "  %y: u8[4] quant(scale=0.00390625, zero_point=0) = sigmoid(%x)\n"
      "  output %y\n"
      "}\n");
  int8_t x[4] = {0, 20, -128, 127};
  lb_tensor out;
  run1(g, x, 4, &out);
  const uint8_t want[4] = {128, 225, 0, 255};
  ck_assert_mem_eq(out.data, want, 4);
  lb_free(out.data);
  lb_graph_free(g);
  static const lb_op ops[] = {LB_OP_LEAKY_RELU, LB_OP_SIGMOID, LB_OP_TANH, LB_OP_HARD_SIGMOID,
                              LB_OP_HARD_SWISH};
  lb_attrs a = {0};
  a.alpha = 0.2f, a.beta = 0.5f;
  for (int k = 0; k < 5; k++) {
    int32_t t[256];
    ck_assert_int_eq(lb_qlut(ops[k], &a, LB_DTYPE_I8, 0.05f, 3, LB_DTYPE_I8, 0.01f, -5, t), 0);
    for (int q = -128; q < 128; q++) {
      double v = ((float)q - 3.0f) * 0.05f, f;
      switch (ops[k]) {
      case LB_OP_LEAKY_RELU: f = v < 0 ? 0.2 * v : v; break;
      case LB_OP_SIGMOID: f = 1 / (1 + exp(-v)); break;
      case LB_OP_TANH: f = tanh(v); break;
      case LB_OP_HARD_SIGMOID: f = fmin(1, fmax(0, 0.2 * v + 0.5)); break;
      default: f = v * fmin(1, fmax(0, v / 6 + 0.5)); break;
      }
      double want_q = fmin(127, fmax(-128, rint(f / 0.01) - 5));
      ck_assert_msg(fabs(t[q + 128] - want_q) <= 1, "op %d q %d: %d vs %g", k, q, t[q + 128], want_q);
    }
  }
  ck_assert_int_eq(lb_qlut(LB_OP_RELU, &a, LB_DTYPE_I8, 1, 0, LB_DTYPE_I8, 1, 0, (int32_t[256]){0}), -1);
}
END_TEST

/* avg_pool over u8 x (s=0.5) = real [[1,2,3],[4,5,6]], 2x2 windows, stride 1, one column of
 * end padding: sums 12, 16, 9 over 4, 4 and 2 taps (count_include_pad=0: 3, 4, 4.5 -> q 6, 8,
 * 9) or over 4 taps each (count_include_pad=1: the last is 2.25 -> 4.5 -> 4, ties to even). */
START_TEST(int_avg_pool) {
  for (int incl = 0; incl < 2; incl++) {
    char text[1024];
    snprintf(text, sizeof text,
             "graph \"p\" {\n"
             "  input %%x: u8[1,1,2,3] quant(scale=0.5, zero_point=0)\n"
             "  %%y: u8[1,1,1,3] quant(scale=0.5, zero_point=0) = avg_pool(%%x) {kernel=[2,2], "
             "strides=[1,1], dilations=[1,1], pads=[0,0,0,1], ceil_mode=0, count_include_pad=%d}\n"
             "  output %%y\n"
             "}\n", incl);
    lb_graph *g = parse(text);
    uint8_t x[6] = {2, 4, 6, 8, 10, 12};
    lb_tensor out;
    run1(g, x, 6, &out);
    const uint8_t *y = out.data;
    ck_assert_int_eq(y[0], 6);
    ck_assert_int_eq(y[1], 8);
    ck_assert_int_eq(y[2], incl ? 4 : 9);
    lb_free(out.data);
    lb_graph_free(g);
  }
}
END_TEST

/* ---- annotate ----------------------------------------------------------------------------- */

/* A spec with integer conv2d and concat but no integer add (and no u8 at all). */
static const char *spec_no_add =
    "name: test-noadd\n"
    "llvm: {triple: x86_64-unknown-linux-gnu, cpu: x86-64, features: \"\"}\n"
    "isa: {token: scalar, vector_bits: 128, vector_registers: 16}\n"
    "clock_ghz: 1\n"
    "memory: {l1: {size_kib: 32, bytes_per_cycle: 16}, dram: {bytes_per_cycle: 4}}\n"
    "ops:\n"
    "  conv2d:\n"
    "    f32: {act: f32, weight: f32, acc: f32, out: f32, macs_per_cycle: 8, efficiency: 0.5, elements_per_cycle: 4}\n"
    "    i8: {act: i8, weight: i8, acc: i32, out: i8, granularity: [per_tensor, per_channel], requantize: fp32, macs_per_cycle: 16, efficiency: 0.5, elements_per_cycle: 4}\n"
    "  add:\n"
    "    f32: {act: f32, acc: f32, out: f32, efficiency: 0.5, elements_per_cycle: 4}\n"
    "  concat:\n"
    "    f32: {act: f32, acc: f32, out: f32, efficiency: 0.5, elements_per_cycle: 4}\n"
    "    i8: {act: i8, acc: i8, out: i8, efficiency: 0.5, elements_per_cycle: 4}\n";

static const char *graph_islands =
    "graph \"i\" {\n"
    "  input %x: f32[1,1,2,2]\n"
    "  const %w1: f32[1,1,1,1] = [2]\n"
    "  const %w2: f32[1,1,1,1] = [-1]\n"
    "  %c1: f32[1,1,2,2] = conv(%x, %w1)\n"
    "  %c2: f32[1,1,2,2] = conv(%x, %w2)\n"
    "  %cat: f32[1,2,2,2] = concat(%c1, %c2) {axis=1}\n"
    "  %s: f32[1,1,2,2] = add(%c1, %c2)\n"
    "  %sm: f32[1,2,2,2] = softmax(%cat) {axis=1}\n"
    "  output %sm\n"
    "  output %s\n"
    "}\n";

START_TEST(annotate_islands_and_shared_scale) {
  lb_spec *s;
  lb_diag d = {0};
  ck_assert_msg(lb_spec_load_buffer(spec_no_add, strlen(spec_no_add), "<noadd>", &s, &d) == 0,
                "%s", d.msg);
  lb_graph *g = parse(graph_islands);
  lb_qplan *p = lb_qplan_new(g);
  ck_assert_msg(lb_quant_annotate(g, s, p, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(p->act, LB_DTYPE_I8);
  ck_assert(p->l[0].integer && p->l[1].integer && p->l[2].integer); /* conv, conv, concat */
  ck_assert(!p->l[3].integer);                                      /* add: not in the spec */
  ck_assert_msg(strstr(p->l[3].why, "no add combination"), "%s", p->l[3].why);
  ck_assert(!p->l[4].integer);                                      /* softmax */
  ck_assert_msg(strstr(p->l[4].why, "no spec op kind"), "%s", p->l[4].why);
  uint32_t c1 = lb_graph_find_value(g, "c1"), c2 = lb_graph_find_value(g, "c2");
  uint32_t cat = lb_graph_find_value(g, "cat"), x = lb_graph_find_value(g, "x");
  /* concat without requantize: its inputs and output share one scale */
  ck_assert_uint_eq(p->v[c1].cls, p->v[cat].cls);
  ck_assert_uint_eq(p->v[c2].cls, p->v[cat].cls);
  ck_assert_int_eq(p->v[x].dtype, LB_DTYPE_I8);
  ck_assert_int_eq(p->v[lb_graph_find_value(g, "w1")].role, LB_QROLE_WEIGHT);
  /* calibrate on a ramp and realize: the add reads dequantized conv outputs */
  float data[8] = {0, 0.25f, 0.5f, 1, -1, -0.5f, 0.25f, 0.75f};
  lb_tensor cal = {LB_DTYPE_F32, 4, {2, 1, 2, 2}, data};
  lb_calib_opts o = {LB_CALIB_MAX, 0, 0};
  ck_assert_msg(lb_quant_calibrate(g, p, &cal, &o, &d) == 0, "%s", d.msg);
  ck_assert_float_eq(p->v[c1].scale[0], p->v[cat].scale[0]);
  ck_assert_float_eq(p->v[c2].scale[0], p->v[cat].scale[0]);
  ck_assert_float_eq_tol(p->v[x].scale[0], 1.0f / 127, 1e-9); /* max |x| = 1, symmetric */
  lb_graph *q;
  ck_assert_msg(lb_quant_realize(g, p, LB_REALIZE_INT, &q, &d) == 0, "%s", d.msg);
  int n_dq = 0;
  for (uint32_t n = 0; n < q->n_nodes; n++) {
    const lb_node *nd = &q->nodes[n];
    n_dq += nd->op == LB_OP_DEQUANTIZE;
    if (nd->op == LB_OP_ADD || nd->op == LB_OP_SOFTMAX)
      for (uint32_t k = 0; k < nd->n_in; k++)
        ck_assert_int_eq(q->values[nd->in[k]].dtype, LB_DTYPE_F32);
    if (nd->op == LB_OP_CONCAT) ck_assert_int_eq(q->values[nd->out[0]].dtype, LB_DTYPE_I8);
  }
  ck_assert_int_eq(n_dq, 3); /* c1, c2 for the add; cat for the softmax */
  /* the integer graph agrees with fp32 on a sample to within the quantization steps */
  lb_tensor in = {LB_DTYPE_F32, 4, {1, 1, 2, 2}, data + 4}, a[2], b[2];
  ck_assert_msg(lb_interp_run(g, &in, a, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_interp_run(q, &in, b, &d) == 0, "%s", d.msg);
  for (int i = 0; i < 4; i++)
    ck_assert_float_eq_tol(((float *)a[1].data)[i], ((float *)b[1].data)[i], 0.05);
  for (int i = 0; i < 2; i++) lb_free(a[i].data), lb_free(b[i].data);
  lb_graph_free(q);
  lb_qplan_free(p);
  lb_graph_free(g);
  lb_spec_free(s);
}
END_TEST

/* ---- calibration methods ------------------------------------------------------------------ */

/* 1000 samples of 100 values: a ramp 0..1 and one outlier at 50 in sample 0. max sees 50,
 * avg-max about 1.05, percentile/kl/mse stay near 1. */
START_TEST(calibration_methods) {
  char text[4096];
  size_t k = (size_t)snprintf(text, sizeof text,
                              "graph \"r\" {\n  input %%x: f32[1,100]\n  const %%w: f32[100,2] = [");
  for (int i = 0; i < 200; i++) k += (size_t)snprintf(text + k, sizeof text - k, "%s%d", i ? ", " : "", i % 2);
  snprintf(text + k, sizeof text - k,
           "]\n  %%y: f32[1,2] = gemm(%%x, %%w)\n  output %%y\n}\n");
  lb_graph *g = parse(text);
  lb_spec *s;
  lb_diag d = {0};
  ck_assert_msg(lb_spec_load("x86-64-avx2", &s, &d) == 0, "%s", d.msg);
  static float data[1000 * 100];
  for (int n = 0; n < 1000; n++)
    for (int i = 0; i < 100; i++) data[n * 100 + i] = (float)i / 99.0f;
  data[0] = 50.0f;
  lb_tensor cal = {LB_DTYPE_F32, 2, {1000, 100}, data};
  uint32_t x = lb_graph_find_value(g, "x");
  float hi[LB_CALIB_COUNT];
  for (int m = 0; m < LB_CALIB_COUNT; m++) {
    lb_qplan *p = lb_qplan_new(g);
    ck_assert_msg(lb_quant_annotate(g, s, p, &d) == 0, "%s", d.msg);
    lb_calib_opts o = {(lb_calib_method)m, 99.9, 0};
    ck_assert_msg(lb_quant_calibrate(g, p, &cal, &o, &d) == 0, "%s", d.msg);
    ck_assert(p->v[x].ranged);
    ck_assert_float_le(p->v[x].lo, 1.1e-5f); /* avg-max: sample 0's minimum is 1/99 */
    hi[m] = p->v[x].hi;
    lb_qplan_free(p);
  }
  ck_assert_float_eq(hi[LB_CALIB_MAX], 50.0f);
  ck_assert_float_eq_tol(hi[LB_CALIB_AVG_MAX], (50.0 + 999.0) / 1000.0, 1e-5); /* 1.049 */
  ck_assert_msg(hi[LB_CALIB_PERCENTILE] > 0.9f && hi[LB_CALIB_PERCENTILE] < 1.05f, "%g",
                hi[LB_CALIB_PERCENTILE]);
  /* mse: the threshold it picks has no more squared error on the data than the full range */
  double err[2] = {0, 0};
  float ths[2] = {hi[LB_CALIB_MSE], hi[LB_CALIB_MAX]};
  for (int t = 0; t < 2; t++) {
    float sc;
    int32_t z;
    lb_qparams(0, ths[t], LB_DTYPE_I8, 0, &sc, &z);
    for (int i = 0; i < 1000 * 100; i++) {
      float e = (float)(lb_qquantize(data[i], sc, z, -128, 127) - z) * sc - data[i];
      err[t] += (double)e * e;
    }
  }
  ck_assert_msg(err[0] <= err[1] * 1.02, "mse %g: %g vs max: %g", hi[LB_CALIB_MSE], err[0], err[1]);
  /* kl is blind to how a uniform bulk is bucketed; it still clips the outlier and keeps the
   * whole bulk */
  ck_assert_msg(hi[LB_CALIB_KL] >= 1.0f && hi[LB_CALIB_KL] < 49.0f, "%g", hi[LB_CALIB_KL]);
  lb_spec_free(s);
  lb_graph_free(g);
}
END_TEST

/* ---- plan YAML ---------------------------------------------------------------------------- */

static lb_graph *digits_cnn(void) {
  lb_graph *g;
  lb_diag d = {0};
  ck_assert_msg(lb_onnx_load(MODELS "digits_cnn.onnx", &g, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_pass_prepare_fp32(g, &d) == 0, "%s", d.msg);
  return g;
}

static lb_qplan *calibrated(lb_graph *g, const char *spec) {
  lb_spec *s;
  lb_diag d = {0};
  lb_tensor cal;
  ck_assert_msg(lb_spec_load(spec, &s, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_npy_read(MODELS "digits_calib_x.npy", &cal, &d) == 0, "%s", d.msg);
  cal.dims[0] = 20; /* a few samples are enough here */
  lb_qplan *p = lb_qplan_new(g);
  lb_calib_opts o = {LB_CALIB_AVG_MAX, 0, 0};
  ck_assert_msg(lb_quant_annotate(g, s, p, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_calibrate(g, p, &cal, &o, &d) == 0, "%s", d.msg);
  lb_free(cal.data);
  lb_spec_free(s);
  return p;
}

/* A weight whose plan precision is i4 or i2 (a hand-edited i8_w4 plan) gets the search's
 * sub-byte scales from lb_quant_params, not max|w|/127. */
START_TEST(subbyte_weight_scales) {
  lb_graph *g = digits_cnn();
  lb_qplan *p = calibrated(g, "x86-64-avx2");
  static const lb_dtype types[] = {LB_DTYPE_I4, LB_DTYPE_I2};
  for (int t = 0; t < 2; t++) {
    uint32_t w = LB_NONE;
    for (uint32_t v = 0; v < g->n_values && w == LB_NONE; v++)
      if (p->v[v].role == LB_QROLE_WEIGHT && p->v[v].axis == 0 &&
          (p->v[v].dtype == LB_DTYPE_I8 || p->v[v].dtype == LB_DTYPE_I7)) /* AVX2: i7 */
        w = v;
    ck_assert_uint_ne(w, LB_NONE);
    const lb_value *wv = &g->values[w];
    int64_t ch = wv->dims[0], n = lb_value_numel(wv);
    lb_diag d = {0};
    p->v[w].dtype = LB_DTYPE_I8, p->v[w].n = 0;
    ck_assert_msg(lb_quant_params(g, p, &d) == 0, "%s", d.msg);
    float want[64], s8 = p->v[w].scale[0];
    ck_assert_int_le(ch, 64);
    ck_assert_int_eq(lb_search_quant_weights(wv->data, n, ch, n / ch, types[t], want, NULL), 0);
    p->v[w].dtype = types[t], p->v[w].n = 0;
    ck_assert_msg(lb_quant_params(g, p, &d) == 0, "%s", d.msg);
    ck_assert_uint_eq(p->v[w].n, (uint32_t)ch);
    for (int64_t c = 0; c < ch; c++) ck_assert(p->v[w].scale[c] == want[c]);
    ck_assert(p->v[w].scale[0] > 3 * s8); /* at least 6/32 of max|w|/7 against max|w|/127 */
    p->v[w].dtype = LB_DTYPE_I8, p->v[w].n = 0;
    ck_assert_msg(lb_quant_params(g, p, &d) == 0, "%s", d.msg);
    ck_assert(p->v[w].scale[0] == s8);
  }
  lb_qplan_free(p);
  lb_graph_free(g);
}
END_TEST

/* digits_cnn, its plan calibrated for spec s (x86-64-avx2), and a plan file at path. */
typedef struct plan_file {
  lb_graph *g;
  lb_qplan *p;
  lb_spec *s;
  char path[32];
} plan_file;

/* The file holds text (NULL: empty). */
static void plan_file_open(plan_file *f, const char *text) {
  lb_diag d = {0};
  f->g = digits_cnn();
  f->p = calibrated(f->g, "x86-64-avx2");
  ck_assert_msg(lb_spec_load("x86-64-avx2", &f->s, &d) == 0, "%s", d.msg);
  snprintf(f->path, sizeof f->path, "/tmp/lb_plan_XXXXXX");
  lb_test_tmpfile(f->path, text);
}

static void plan_file_close(plan_file *f) {
  unlink(f->path);
  lb_spec_free(f->s);
  lb_qplan_free(f->p);
  lb_graph_free(f->g);
}

START_TEST(plan_round_trip) {
  plan_file f;
  plan_file_open(&f, NULL);
  lb_graph *g = f.g;
  lb_qplan *p = f.p;
  lb_diag d = {0};
  ck_assert_msg(lb_qplan_save(p, g, f.path, &d) == 0, "%s", d.msg);
  lb_qplan *r = lb_qplan_new(g);
  ck_assert_msg(lb_quant_annotate(g, f.s, r, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_qplan_load(r, g, f.path, &d) == 0, "%s", d.msg);
  for (uint32_t v = 0; v < g->n_values; v++) {
    if (p->v[v].dtype == LB_DTYPE_F32) continue;
    ck_assert_uint_eq(r->v[v].n, p->v[v].n);
    ck_assert_int_eq(r->v[v].axis, p->v[v].axis);
    for (uint32_t i = 0; i < p->v[v].n; i++) {
      ck_assert_float_eq(r->v[v].scale[i], p->v[v].scale[i]); /* %.9g round-trips */
      ck_assert_int_eq(r->v[v].zp[i], p->v[v].zp[i]);
    }
  }
  lb_qplan_free(r);
  plan_file_close(&f);
}
END_TEST

typedef struct {
  const char *text, *err;
} plan_err;

static const plan_err plan_errs[] = {
    {"tensors:\n  - {name: \"nope\", dtype: i8, scale: 1}\n",
     ":2:12: error: no tensor named 'nope' in the model"},
    {"tensors:\n  - {name: \"input\", dtype: i8, scale: -1, zero_point: 0}\n",
     ":2:39: error: scale[0] = -1 must be positive and finite"},
    {"tensors:\n  - {name: \"input\", dtype: i8, scale: 0.1, zero_point: 300}\n",
     ":2:56: error: zero_point[0] = 300 is outside i8"},
    {"tensors:\n  - {name: \"input\", dtype: q7, scale: 0.1}\n",
     ":2:28: error: dtype 'q7' is not one of i8, u8, i32, f32"},
    {"tensors:\n  - {name: \"net.11.weight\", dtype: i8, axis: 0, scale: [1, 2]}\n",
     ":2:56: error: tensor 'net.11.weight' needs 10 scales, got 2"},
    {"layers:\n  - {output: \"output\", precision: i4}\n",
     ":2:35: error: layer 'output': precision 'i4' is not available"},
    {"layers:\n  - {output: \"zzz\", precision: f32}\n", ":2:14: error: no layer writes tensor 'zzz'"},
    {"layers: [\n", ":2:1: error: "},
    {"- 1\n", ":1:1: error: a plan is a mapping"},
};

START_TEST(plan_errors) {
  const plan_err *c = &plan_errs[_i];
  plan_file f;
  plan_file_open(&f, c->text);
  lb_diag d = {0};
  int rc = lb_qplan_load(f.p, f.g, f.path, &d);
  /* combinations and dtypes are checked when annotate reads the edits */
  if (rc == 0) rc = lb_quant_annotate(f.g, f.s, f.p, &d);
  ck_assert_int_eq(rc, LB_ERR_INPUT);
  ck_assert_msg(strncmp(d.msg, f.path, strlen(f.path)) == 0 && strstr(d.msg, c->err), "%s", d.msg);
  ck_assert(!strchr(d.msg, '\n'));
  plan_file_close(&f);
}
END_TEST

/* An edited plan: one layer forced to f32 changes the edges around it. */
START_TEST(plan_forced_f32) {
  plan_file f;
  plan_file_open(&f, "layers:\n  - {output: \"/net/net.6/MaxPool_output_0\", precision: f32}\n");
  lb_qplan *p = f.p;
  lb_diag d = {0};
  ck_assert_msg(lb_qplan_load(p, f.g, f.path, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_annotate(f.g, f.s, p, &d) == 0, "%s", d.msg);
  ck_assert(!p->l[2].integer && p->l[2].forced_f32);
  ck_assert_msg(strstr(p->l[2].why, "set in the plan"), "%s", p->l[2].why);
  ck_assert(!p->l[3].integer || p->v[f.g->nodes[3].in[0]].dtype == LB_DTYPE_I8);
  plan_file_close(&f);
}
END_TEST

/* ---- QDQ round trip ----------------------------------------------------------------------- */

/* realize QDQ -> ONNX file -> import -> fp32 passes -> qdq_to_int gives a graph whose outputs
 * equal realize INT's bit for bit. */
START_TEST(qdq_round_trip) {
  static const char *const models[] = {"digits_mlp", "digits_cnn", "digits_resnet", "digits_ops"};
  static const char *const xs[] = {"digits_test_x", "digits_test_x", "digits16_test_x",
                                   "digits_test_x"};
  static const char *const cals[] = {"digits_calib_x", "digits_calib_x", "digits16_calib_x",
                                     "digits_calib_x"};
  char tmp[] = "/tmp/lb_qdq_XXXXXX";
  lb_test_tmpfile(tmp, NULL);
  lb_graph *g = load_prepared(models[_i]), *qi, *qq, *back;
  lb_diag d = {0};
  lb_tensor cal = load_npy(cals[_i]), x = load_npy(xs[_i]);
  lb_spec *s;
  ck_assert_msg(lb_spec_load("x86-64-avx512-vnni", &s, &d) == 0, "%s", d.msg);
  lb_qplan *p = lb_qplan_new(g);
  lb_calib_opts o = {LB_CALIB_AVG_MAX, 0, 0};
  ck_assert_msg(lb_quant_annotate(g, s, p, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_calibrate(g, p, &cal, &o, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_realize(g, p, LB_REALIZE_INT, &qi, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_realize(g, p, LB_REALIZE_QDQ, &qq, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_qdq_write(qq, tmp, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_onnx_load(tmp, &back, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_pass_prepare_fp32(back, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_qdq_import(back, &d) == 0, "%s", d.msg);
  int n_conv_int = 0, n_q = 0;
  for (uint32_t n = 0; n < back->n_nodes; n++) {
    n_conv_int += lb_int_node(back, n);
    n_q += back->nodes[n].op == LB_OP_QUANTIZE;
  }
  ck_assert_int_gt(n_conv_int, 0);
  /* only the graph input is quantized at run time (digits_ops has fp32 islands) */
  if (_i < 3) ck_assert_int_eq(n_q, 1);
  const lb_value *iv = &g->values[g->inputs[0]];
  int64_t per = lb_value_numel(iv);
  for (int64_t i = 0; i < 60; i++) {
    lb_tensor in = {LB_DTYPE_F32, iv->rank, {0}, (float *)x.data + i * per}, a, b;
    memcpy(in.dims, iv->dims, sizeof in.dims);
    ck_assert_msg(lb_interp_run(qi, &in, &a, &d) == 0, "%s", d.msg);
    ck_assert_msg(lb_interp_run(back, &in, &b, &d) == 0, "%s", d.msg);
    ck_assert_mem_eq(a.data, b.data, (size_t)lb_tensor_numel(&a) * sizeof(float));
    lb_free(a.data), lb_free(b.data);
  }
  unlink(tmp);
  lb_free(cal.data), lb_free(x.data);
  lb_qplan_free(p);
  lb_spec_free(s);
  lb_graph_free(g), lb_graph_free(qi), lb_graph_free(qq), lb_graph_free(back);
}
END_TEST

/* ---- the command-line pipeline (streaming .npy calibration) -------------------------------- */

typedef struct {
  const char *calib, *err; /* err NULL: must succeed */
} cli_case;

START_TEST(cli_pipeline) {
  static char trunc[] = "/tmp/lb_trunc_XXXXXX.npy";
  static const cli_case cases[] = {
      {MODELS "digits_calib_x.npy", NULL},
      {MODELS "digits_test_y.npy", "digits_test_y.npy: input 'input' (f32): expected f32 samples "
                                   "shaped [N,1,8,8] (or [N,1,1,8,8]), got i64 [360]"},
      {MODELS "digits16_calib_x.npy", "input 'input' (f32): expected f32 samples shaped [N,1,8,8] "
                                      "(or [N,1,1,8,8]), got f32 [100,1,16,16]"},
      {"/nonexistent.npy", "/nonexistent.npy: cannot open"},
      {trunc, "file size does not match shape"},
  };
  int fd = mkstemps(trunc, 4);
  ck_assert_int_ge(fd, 0);
  FILE *src = fopen(MODELS "digits_calib_x.npy", "rb");
  char buf[1000];
  ck_assert_uint_eq(fread(buf, 1, sizeof buf, src), sizeof buf);
  ck_assert_int_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
  fclose(src), close(fd);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    lb_qcli o = {.quantize = "int8", .calib = cases[i].calib, .method = "percentile"};
    lb_graph *q = NULL, *fp = NULL;
    lb_qplan *p = NULL;
    lb_diag d = {0};
    int rc = lb_qcli_build(&o, MODELS "digits_cnn.onnx", "aarch64-neon", LB_REALIZE_INT, NULL, &fp,
                           &p, &q, &d);
    if (!cases[i].err) {
      ck_assert_msg(rc == 0, "%s", d.msg);
      ck_assert_str_eq(p->method, "percentile");
      ck_assert_int_eq(p->act, LB_DTYPE_I8); /* aarch64-neon has no u8 combinations */
      int n_int = 0;
      for (uint32_t n = 0; n < q->n_nodes; n++) n_int += lb_int_node(q, n);
      ck_assert_int_eq(n_int, 4); /* three convs and the gemm; max_pool/flatten copy */
    } else {
      ck_assert_int_eq(rc, LB_ERR_INPUT);
      ck_assert_msg(strstr(d.msg, cases[i].err) && !strchr(d.msg, '\n'), "%s", d.msg);
      ck_assert_ptr_null(q);
    }
    lb_graph_free(q), lb_graph_free(fp), lb_qplan_free(p);
  }
  unlink(trunc);
}
END_TEST

/* ---- golden files: tests/golden/quant/NAME.golden ----------------------------------------- */

/* "# passes:" holds a pass list, "qdq_to_int", or "realize SPEC METHOD": annotate for SPEC, calibrate
 * with METHOD on four ramp samples over [-1, 1] of the graph's input, realize INT. */
static int golden_pipeline(lb_graph *g, const char *passes, void *user, lb_diag *d) {
  (void)user;
  char spec[64], method[32];
  if (strstr(passes, "qdq_to_int")) return lb_quant_qdq_import(g, d);
  if (sscanf(passes, " realize %63s %31s", spec, method) != 2)
    return lb_pass_run_list(g, passes, NULL, d);
  lb_spec *s;
  LB_TRY(lb_spec_load(spec, &s, d));
  const lb_value *in = &g->values[g->inputs[0]];
  int64_t per = lb_value_numel(in);
  float *data = lb_malloc((size_t)(4 * per) * sizeof *data);
  for (int64_t i = 0; i < 4 * per; i++) data[i] = -1.0f + 2.0f * (float)i / (float)(4 * per - 1);
  lb_tensor cal = {LB_DTYPE_F32, 2, {4, per}, data};
  lb_qplan *p = lb_qplan_new(g);
  lb_calib_opts o = {LB_CALIB_MAX, 0, 0};
  lb_calib_method_from_name(method, &o.method);
  lb_graph *q = NULL;
  int rc = lb_quant_annotate(g, s, p, d);
  if (!rc) rc = lb_quant_calibrate(g, p, &cal, &o, d);
  if (!rc) rc = lb_quant_realize(g, p, LB_REALIZE_INT, &q, d);
  if (!rc) {
    /* the harness prints g: move the realized graph into it */
    lb_graph tmp = *g;
    *g = *q;
    *q = tmp;
  }
  lb_graph_free(q);
  lb_qplan_free(p);
  lb_free(data);
  lb_spec_free(s);
  return rc;
}

START_TEST(golden_quant) {
  lb_golden_check_dir(LB_SOURCE_DIR "/tests/golden/quant", 2, golden_pipeline, NULL);
}
END_TEST

int main(void) {
  const TTest *tests[] = {
    requantize_reference, qparams_and_bounds, int_conv_per_channel, int_add_broadcast,
    int_gemm_acc_output, int_avg_pool, int_matmul_mul_sub, int_table_activations,
    annotate_islands_and_shared_scale, calibration_methods, subbyte_weight_scales, plan_round_trip,
    plan_forced_f32, cli_pipeline, golden_quant};
  TCase *t;
  Suite *s = lb_test_suite("quant", tests, LB_TEST_N(tests), &t);
  tcase_set_timeout(t, 300);
  tcase_add_loop_test(t, requantize_table, 0, LB_TEST_N(rq_cases));
  tcase_add_loop_test(t, plan_errors, 0, LB_TEST_N(plan_errs));
  tcase_add_loop_test(t, qdq_round_trip, 0, 4);
  return lb_test_run(s);
}
