/* The integer-only requantize methods (quant.h, spec `requantize: fixed_point | shift`): the
 * scalar definition against hand-computed cases (ties, negatives, saturation, shift 0, large
 * shifts both ways, negative multipliers) and against an independent __int128 formulation on
 * random inputs; power-of-two calibration; the plan's `requantize:` and the textual IR's
 * `requantize=` round trips; and digits models
 * quantized for the fixed_point and shift test specs within 0.5 points of fp32, with the JIT
 * bit-identical to the interpreter. Random graphs on every backend: test_qdiff. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.h"
#include "passes.h"
#include "quantize.h"
#include "spec.h"
#include "target.h"
#include "tensor_io.h"

#include "../quick.h"

#define FIXED LB_REQUANT_FIXED_POINT
#define SHIFT LB_REQUANT_SHIFT
#define SPECS LB_SOURCE_DIR "/tests/specs/good/"
#define MODELS LB_SOURCE_DIR "/tests/models/"

/* ---- the scalar definition ---------------------------------------------------------------- */

START_TEST(decomposition) {
  static const struct {
    float m;
    int32_t mult, shift;
  } t[] = {
      {0.5f, 1 << 30, 0},          {1.0f, 1 << 30, 1},
      {0.75f, 3 << 29, 0},         {-0.75f, -(3 << 29), 0},
      {0.1f, 1717986944, -3},      /* 0.1f = 13421773 * 2^-27, 13421773 << 7 */
      {0.0f, 0, 0},                {1e-40f, 0, 0}, /* subnormal: every result is 0 */
      {1048576.0f, 1 << 30, 21},   {0x1p-40f, 1 << 30, -39},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    lb_qfixed f = lb_qfixed_of(t[i].m);
    ck_assert_msg(f.mult == t[i].mult && f.shift == t[i].shift, "m %g: got %d 2^%d", t[i].m,
                  f.mult, f.shift);
    if (f.mult) ck_assert(ldexp((double)f.mult, f.shift - 31) == (double)t[i].m);
  }
}
END_TEST

typedef struct rq_case {
  int method;
  int32_t acc;
  float m;
  int32_t zp, lo, hi, want;
} rq_case;

/* Worked by hand from quant.h: t = floor((x * M + 2^30) / 2^31), y = floor((t + 2^(rs-1)) / 2^rs). */
static const rq_case rq_cases[] = {
    /* m = 0.5 (M = 2^30, shift 0: no rounding shift): ties go up */
    {FIXED, 1, 0.5f, 0, -128, 127, 1},     {FIXED, -1, 0.5f, 0, -128, 127, 0},
    {FIXED, 3, 0.5f, 0, -128, 127, 2},     {FIXED, -3, 0.5f, 0, -128, 127, -1},
    {FIXED, 100, 0.5f, 10, 0, 255, 60},    /* + zero point */
    /* m = 0.25 = 2^30 * 2^-32: fixed_point rounds twice (t = 1 for 0.5, then 1/2 up), shift once */
    {FIXED, 1, 0.25f, 0, -128, 127, 1},    {SHIFT, 1, 0.25f, 0, -128, 127, 0},
    {FIXED, 2, 0.25f, 0, -128, 127, 1},    {SHIFT, 2, 0.25f, 0, -128, 127, 1},
    {FIXED, -2, 0.25f, 0, -128, 127, 0},   {SHIFT, -2, 0.25f, 0, -128, 127, 0},
    {SHIFT, 6, 0.25f, 0, -128, 127, 2},    {SHIFT, -6, 0.25f, 0, -128, 127, -1},
    {SHIFT, -7, 0.25f, 0, -128, 127, -2},  {SHIFT, 7, 0.25f, 0, -128, 127, 2},
    /* m = 0.75: 7 * 0.75 = 5.25 -> 5; -7 * 0.75 = -5.25 -> -5 */
    {FIXED, 7, 0.75f, 0, -128, 127, 5},    {FIXED, -7, 0.75f, 0, -128, 127, -5},
    /* negative multiplier (sub): 3 * -0.5 = -1.5 -> -1 */
    {FIXED, 3, -0.5f, 0, -128, 127, -1},   {SHIFT, 3, -0.5f, 0, -128, 127, -1},
    /* saturation to the output range and to a fused relu's bound */
    {FIXED, 300, 1.0f, 0, -128, 127, 127}, {FIXED, -300, 1.0f, 0, -128, 127, -128},
    {FIXED, -300, 1.0f, 5, 5, 255, 5},
    /* left shift (m >= 1): exact, then x saturates to int32 before the multiply */
    {FIXED, 3, 1048576.0f, 0, INT32_MIN, INT32_MAX, 3 << 20},
    {FIXED, INT32_MAX, 1048576.0f, 0, INT32_MIN, INT32_MAX, 1 << 30},
    {SHIFT, 3, 1048576.0f, 0, INT32_MIN, INT32_MAX, 3 << 20},
    /* large right shifts: 2^-31 maps the int32 extremes to +-1, 2^-40 to 0 */
    {FIXED, INT32_MAX, 0x1p-31f, 0, -128, 127, 1}, {FIXED, INT32_MIN, 0x1p-31f, 0, -128, 127, -1},
    {FIXED, INT32_MAX, 0x1p-40f, 3, -128, 127, 3}, {SHIFT, INT32_MAX, 0x1p-31f, 0, -128, 127, 1},
    {SHIFT, INT32_MIN, 0x1p-31f, 0, -128, 127, -1}, {SHIFT, (1 << 30) - 1, 0x1p-31f, 0, -128, 127, 0},
    /* zero and subnormal multipliers give the zero point */
    {FIXED, 12345, 0.0f, 7, -128, 127, 7}, {SHIFT, -12345, 1e-40f, -3, -128, 127, -3},
    /* fp32 method: the float definition (0.25 * 6 = 1.5 -> 2 half even, 2.5 -> 2) */
    {LB_REQUANT_FP32, 6, 0.25f, 0, -128, 127, 2}, {LB_REQUANT_FP32, 10, 0.25f, 0, -128, 127, 2},
    {0, 10, 0.25f, 0, -128, 127, 2},
};

START_TEST(hand_cases) {
  const rq_case *c = &rq_cases[_i];
  ck_assert_msg(lb_requantize_by(c->method, c->acc, c->m, c->zp, c->lo, c->hi) == c->want,
                "case %d: %s acc %d m %g: got %d, want %d", _i, lb_requant_name(c->method),
                c->acc, c->m, lb_requantize_by(c->method, c->acc, c->m, c->zp, c->lo, c->hi),
                c->want);
}
END_TEST

START_TEST(two_inputs) {
  /* 3 * 0.5 -> 2, -3 * 0.5 -> -1: the sum 1 (not rne(0) as one rounding would give) */
  ck_assert_int_eq(lb_requantize2_by(FIXED, 3, 0.5f, -3, 0.5f, 4, -128, 127), 5);
  /* each term near 2^30: the exact sum saturates to hi, not wrapping */
  ck_assert_int_eq(lb_requantize2_by(FIXED, INT32_MAX, 1048576.0f, INT32_MAX, 1048576.0f, 0,
                                     INT32_MIN, INT32_MAX), INT32_MAX);
  ck_assert_int_eq(lb_requantize2_by(SHIFT, 6, 0.25f, 2, -0.5f, 0, -128, 127), 1);
  ck_assert_int_eq(lb_requantize2_by(LB_REQUANT_FP32, 3, 0.5f, -3, 0.5f, 4, -128, 127), 4);
}
END_TEST

/* floor(a / 2^s) by division, not by shifting. */
static __int128 floor_div(__int128 a, int s) {
  __int128 d = (__int128)1 << s, q = a / d;
  return q * d > a ? q - 1 : q;
}

/* The definition written again from SQRDMULH's and SRSHL's instruction descriptions: high half
 * of 2 * x * M + 2^31, then (t + 2^(rs-1)) >> rs, on 128-bit integers. */
static int64_t ref_term(int method, int32_t acc, float m) {
  int e;
  double f = frexp((double)m, &e); /* m = f * 2^e, 0.5 <= |f| < 1 */
  if (m == 0.0f || fabsf(m) < 0x1p-126f) return 0;
  __int128 M = (__int128)ldexp(f, 31);
  if (method == SHIFT && fabs(f) == 0.5) M *= 2, e -= 1;
  int ls = e < 0 ? 0 : e > 32 ? 32 : e, rs = e > 0 ? 0 : -e > 40 ? 40 : -e;
  __int128 x = (__int128)acc << ls;
  if (x > INT32_MAX) x = INT32_MAX;
  if (x < INT32_MIN) x = INT32_MIN;
  __int128 t = floor_div(2 * x * M + ((__int128)1 << 31), 32);
  return (int64_t)(rs ? floor_div(t + ((__int128)1 << (rs - 1)), rs) : t);
}

static unsigned rng = 12345u;
static unsigned rnd(void) {
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}

START_TEST(random_against_reference) {
  int n = lb_test_count(200000, 20000);
  for (int i = 0; i < n; i++) {
    int method = rnd() % 2 ? FIXED : SHIFT;
    int32_t acc = (int32_t)((rnd() << 8) ^ rnd() ^ (rnd() << 20));
    if (rnd() % 2) acc >>= rnd() % 31;
    float m = ldexpf((float)(rnd() % 0x1000000u), -(int)(rnd() % 60));
    if (rnd() % 4 == 0) m = ldexpf(1.0f, 8 - (int)(rnd() % 50)); /* exact powers of two */
    if (rnd() % 2) m = -m;
    int64_t want = ref_term(method, acc, m), got = lb_qfixed_term(method, acc, m);
    ck_assert_msg(got == want, "%s acc %d m %a: got %lld, want %lld", lb_requant_name(method), acc,
                  m, (long long)got, (long long)want);
    /* and both stay within one unit of the real product */
    double real = (double)acc * (double)m;
    if (fabs(real) < 1e9) ck_assert_msg(fabs((double)got - real) <= 1.0, "acc %d m %a", acc, m);
    if (method == SHIFT && fabsf(m) == ldexpf(1.0f, ilogbf(m)) && fabs(real) < 1e9)
      ck_assert_msg((double)got == floor(real + 0.5), "shift acc %d m %a", acc, m); /* one rounding */
  }
}
END_TEST

START_TEST(pow2_params) {
  ck_assert(lb_qpow2_up(0.3f) == 0.5f);
  ck_assert(lb_qpow2_up(0.25f) == 0.25f);
  ck_assert(lb_qpow2_up(3.0f) == 4.0f);
  ck_assert(lb_qpow2_up(0x1.000002p-7f) == 0x1p-6f);
  float s;
  int32_t z;
  lb_qparams_pow2(-1.0f, 2.0f, LB_DTYPE_I8, 1, &s, &z); /* 2/127 -> 2^-5 */
  ck_assert(s == 0x1p-5f && z == 0);
  lb_qparams_pow2(-1.0f, 2.0f, LB_DTYPE_U8, 0, &s, &z); /* 3/255 -> 2^-6, zp = rne(1 / 2^-6) */
  ck_assert(s == 0x1p-6f && z == 64);
  lb_qparams_pow2(3.0f, 3.0f, LB_DTYPE_U8, 0, &s, &z); /* widened to [0, 3]: 3/255 -> 2^-6 */
  ck_assert(s == 0x1p-6f && z == 0);
}
END_TEST

/* ---- the pipeline ------------------------------------------------------------------------- */

static lb_tensor load_npy(const char *stem) {
  char path[512];
  lb_tensor t;
  lb_diag d = {0};
  snprintf(path, sizeof path, MODELS "%s.npy", stem);
  ck_assert_msg(lb_npy_read(path, &t, &d) == 0, "%s", d.msg);
  return t;
}

static lb_graph *load_prepared(const char *stem) {
  char path[512];
  lb_graph *g;
  lb_diag d = {0};
  snprintf(path, sizeof path, MODELS "%s.onnx", stem);
  ck_assert_msg(lb_onnx_load(path, &g, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_pass_prepare_fp32(g, &d) == 0, "%s", d.msg);
  return g;
}

static lb_qplan *annotated(const lb_graph *g, const lb_spec *s) {
  lb_qplan *p = lb_qplan_new(g);
  lb_diag d = {0};
  ck_assert_ptr_nonnull(p);
  ck_assert_msg(lb_quant_annotate(g, s, p, &d) == 0, "%s", d.msg);
  return p;
}

static lb_graph *realized(const lb_graph *g, lb_qplan *p, const lb_tensor *cal) {
  lb_calib_opts o = {LB_CALIB_AVG_MAX, 0, 0};
  lb_diag d = {0};
  lb_graph *q;
  ck_assert_msg(lb_quant_calibrate(g, p, cal, &o, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_realize(g, p, LB_REALIZE_INT, &q, &d) == 0, "%s", d.msg);
  return q;
}

/* The number of integer nodes of q with the method; with pow2 every scale such a node reads is
 * a power of two (calibrated for shift; a plan's own scales are kept as written). */
static int check_nodes(const lb_graph *q, int method, int pow2) {
  int n = 0;
  for (uint32_t k = 0; k < q->n_nodes; k++) {
    const lb_node *nd = &q->nodes[k];
    if (!lb_int_node(q, k) || nd->attr.requant != method) continue;
    n++;
    for (uint32_t i = 0; pow2 && i < nd->n_in && i < 2; i++) {
      const lb_quant *qq = &q->values[nd->in[i]].q;
      for (uint32_t c = 0; c < qq->n; c++)
        ck_assert_msg(qq->scale[c] == lb_qpow2_up(qq->scale[c]), "%s scale %g", nd->name,
                      qq->scale[c]);
    }
  }
  return n;
}

static int64_t argmax(const float *y, int64_t n) {
  int64_t b = 0;
  for (int64_t i = 1; i < n; i++)
    if (y[i] > y[b]) b = i;
  return b;
}

/* Top-1 accuracy (percent) of g on x/y through the interpreter, and, with j, the JIT's output
 * bytes equal to the interpreter's on every sample. */
static double accuracy(const lb_graph *g, const lb_tensor *x, const lb_tensor *y, lb_jit *j) {
  const lb_value *iv = &g->values[g->inputs[0]];
  int64_t ok = 0, n = y->dims[0], per = lb_value_numel(iv);
  for (int64_t i = 0; i < n; i++) {
    lb_tensor in = {iv->dtype, iv->rank, {0}, (float *)x->data + i * per}, out, got;
    memcpy(in.dims, iv->dims, sizeof in.dims);
    lb_diag d = {0};
    ck_assert_msg(lb_interp_run(g, &in, &out, &d) == 0, "%s", d.msg);
    if (j) {
      ck_assert_msg(lb_jit_run_tensors(j, g, &in, &got, &d) == 0, "%s", d.msg);
      ck_assert_msg(!memcmp(got.data, out.data, lb_dtype_bytes(out.dtype, lb_tensor_numel(&out))),
                    "sample %lld: JIT differs from the interpreter", (long long)i);
      lb_free(got.data);
    }
    ok += argmax(out.data, lb_tensor_numel(&out)) == ((const int64_t *)y->data)[i];
    lb_free(out.data);
  }
  return 100.0 * (double)ok / (double)n;
}

static const struct {
  const char *model, *x, *calib, *spec;
  int method;
} acc_cases[] = {
    {"digits_mlp", "digits_test_x", "digits_calib_x", "x86-64-avx2-fixed", FIXED},
    {"digits_cnn", "digits_test_x", "digits_calib_x", "x86-64-avx2-fixed", FIXED},
    {"digits_resnet", "digits16_test_x", "digits16_calib_x", "x86-64-avx2-fixed", FIXED},
    {"digits_mlp", "digits_test_x", "digits_calib_x", "x86-64-avx2-shift", SHIFT},
    {"digits_cnn", "digits_test_x", "digits_calib_x", "x86-64-avx2-shift", SHIFT},
    {"digits_resnet", "digits16_test_x", "digits16_calib_x", "x86-64-avx2-shift", SHIFT},
};

START_TEST(digits_accuracy) {
  char path[512];
  snprintf(path, sizeof path, SPECS "%s.yaml", acc_cases[_i].spec);
  lb_spec *s;
  lb_diag d = {0};
  ck_assert_msg(lb_spec_load(path, &s, &d) == 0, "%s", d.msg);
  lb_graph *g = load_prepared(acc_cases[_i].model);
  lb_tensor x = load_npy(acc_cases[_i].x), y = load_npy("digits_test_y"),
            cal = load_npy(acc_cases[_i].calib);
  double fp32 = accuracy(g, &x, &y, NULL);
  lb_qplan *p = annotated(g, s);
  lb_graph *q = realized(g, p, &cal);
  ck_assert_int_gt(check_nodes(q, acc_cases[_i].method, acc_cases[_i].method == SHIFT), 0);
  lb_jit *j = NULL;
  int here = lb_target_host_check(s, &d) == 0;
  if (here) ck_assert_msg(lb_jit_compile(q, s, NULL, &j, &d) == 0, "%s", d.msg);
  double acc = accuracy(q, &x, &y, j);
  printf("%-14s %-18s fp32 %.2f%%  int8 %.2f%%%s\n", acc_cases[_i].model, acc_cases[_i].spec,
         fp32, acc, here ? "  (JIT == interpreter)" : "");
  ck_assert_msg(fp32 - acc <= 0.5, "%s %s: int8 %.2f%% vs fp32 %.2f%%", acc_cases[_i].model,
                acc_cases[_i].spec, acc, fp32);
  if (j) lb_jit_free(j);
  lb_graph_free(q), lb_graph_free(g), lb_qplan_free(p), lb_spec_free(s);
  lb_free(x.data), lb_free(y.data), lb_free(cal.data);
}
END_TEST

/* The plan records the method; an edited `requantize:` is honoured, a bad one is located. */
START_TEST(plan_round_trip) {
  lb_spec *s;
  lb_diag d = {0};
  ck_assert_msg(lb_spec_load(SPECS "x86-64-avx2-fixed.yaml", &s, &d) == 0, "%s", d.msg);
  lb_graph *g = load_prepared("digits_cnn");
  lb_tensor cal = load_npy("digits_calib_x");
  lb_qplan *p = annotated(g, s);
  lb_graph *q = realized(g, p, &cal);
  int fixed = check_nodes(q, FIXED, 0);
  lb_graph_free(q);
  const char *path = "/tmp/lb_test_requant_plan.yaml";
  ck_assert_msg(lb_qplan_save(p, g, path, &d) == 0, "%s", d.msg);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "sed -i '0,/requantize: fixed_point/s//requantize: shift/' %s", path);
  ck_assert_int_eq(system(cmd), 0);
  lb_qplan *p2 = annotated(g, s);
  ck_assert_msg(lb_qplan_load(p2, g, path, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_annotate(g, s, p2, &d) == 0, "%s", d.msg);
  q = realized(g, p2, &cal);
  ck_assert_int_eq(check_nodes(q, SHIFT, 0), 1); /* the one edited layer */
  ck_assert_int_eq(check_nodes(q, FIXED, 0), fixed - 1);
  lb_graph_free(q);
  snprintf(cmd, sizeof cmd, "sed -i 's/requantize: shift/requantize: float/' %s", path);
  ck_assert_int_eq(system(cmd), 0);
  lb_qplan *p3 = annotated(g, s);
  ck_assert_int_ne(lb_qplan_load(p3, g, path, &d), 0);
  ck_assert_msg(strstr(d.msg, "requantize: expected fp32, fixed_point or shift, got 'float'") &&
                    strstr(d.msg, "lb_test_requant_plan.yaml:"), "%s", d.msg);
  remove(path);
  lb_qplan_free(p), lb_qplan_free(p2), lb_qplan_free(p3);
  lb_graph_free(g), lb_spec_free(s), lb_free(cal.data);
}
END_TEST

/* The textual IR keeps the method (`requantize=` on integer nodes): print, parse, same nodes
 * and the same interpreter bytes. */
START_TEST(text_round_trip) {
  lb_spec *s;
  lb_diag d = {0};
  ck_assert_msg(lb_spec_load(SPECS "x86-64-avx2-shift.yaml", &s, &d) == 0, "%s", d.msg);
  lb_graph *g = load_prepared("digits_mlp"), *back = NULL;
  lb_tensor cal = load_npy("digits64_calib_x"), x = load_npy("digits64_test_x");
  lb_qplan *p = annotated(g, s);
  lb_graph *q = realized(g, p, &cal);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  lb_graph_print(q, f, 1 << 30);
  fclose(f);
  ck_assert_ptr_nonnull(strstr(text, "requantize=shift"));
  ck_assert_msg(lb_graph_parse(text, "q.lbir", &back, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(back->n_nodes, q->n_nodes);
  for (uint32_t k = 0; k < q->n_nodes; k++)
    ck_assert_int_eq(back->nodes[k].attr.requant, q->nodes[k].attr.requant);
  ck_assert_int_gt(check_nodes(back, SHIFT, 1), 0);
  const lb_value *iv = &q->values[q->inputs[0]];
  for (int64_t i = 0; i < 8; i++) {
    lb_tensor in = {iv->dtype, iv->rank, {0}, (float *)x.data + i * lb_value_numel(iv)}, a, b;
    memcpy(in.dims, iv->dims, sizeof in.dims);
    ck_assert_msg(lb_interp_run(q, &in, &a, &d) == 0, "%s", d.msg);
    ck_assert_msg(lb_interp_run(back, &in, &b, &d) == 0, "%s", d.msg);
    ck_assert(!memcmp(a.data, b.data, lb_dtype_bytes(a.dtype, lb_tensor_numel(&a))));
    lb_free(a.data), lb_free(b.data);
  }
  free(text);
  lb_graph_free(back), lb_graph_free(q), lb_graph_free(g), lb_qplan_free(p), lb_spec_free(s);
  lb_free(cal.data), lb_free(x.data);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("requant");
  TCase *t = tcase_create("scalar"), *m = tcase_create("models");
  tcase_add_test(t, decomposition);
  tcase_add_loop_test(t, hand_cases, 0, (int)(sizeof rq_cases / sizeof rq_cases[0]));
  tcase_add_test(t, two_inputs);
  tcase_add_test(t, random_against_reference);
  tcase_add_test(t, pow2_params);
  tcase_set_timeout(m, 600);
  tcase_add_loop_test(m, digits_accuracy, 0, (int)(sizeof acc_cases / sizeof acc_cases[0]));
  tcase_add_test(m, plan_round_trip);
  tcase_add_test(m, text_round_trip);
  suite_add_tcase(s, t);
  suite_add_tcase(s, m);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
