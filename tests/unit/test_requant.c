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
#include "qkernels.h"
#include "target.h"
#include "tensor_io.h"

#include "../aot.h"
#include "../check_main.h"
#include "../digits.h"
#include "../graph_text.h"
#include "../quick.h"

#define FIXED LB_REQUANT_FIXED_POINT
#define SHIFT LB_REQUANT_SHIFT
#define SPECS LB_SOURCE_DIR "/tests/specs/good/"

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
    /* shift, m = -1: -(-2^31) saturates to 2^31 - 1 (SQNEG), then as any t */
    {SHIFT, INT32_MIN, -1.0f, 0, INT32_MIN, INT32_MAX, INT32_MAX},
    {SHIFT, INT32_MIN, -0x1p-32f, 0, -128, 127, 0}, {SHIFT, INT32_MIN, -0x1p-31f, 0, -128, 127, 1},
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
  int p2 = method == SHIFT && fabs(f) == 0.5;
  if (p2) M *= 2, e -= 1; /* M = +-2^31: t = +-x, -(-2^31) saturated */
  int ls = e < 0 ? 0 : e > 32 ? 32 : e, rs = e > 0 ? 0 : -e > 40 ? 40 : -e;
  __int128 x = (__int128)acc * ((__int128)1 << ls);
  if (x > INT32_MAX) x = INT32_MAX;
  if (x < INT32_MIN) x = INT32_MIN;
  __int128 t = floor_div(2 * x * M + ((__int128)1 << 31), 32);
  if (p2 && t > INT32_MAX) t = INT32_MAX;
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

static lb_qplan *annotated(const lb_graph *g, const lb_spec *s) {
  lb_qplan *p = lb_qplan_new(g);
  lb_diag d = {0};
  ck_assert_ptr_nonnull(p);
  ck_assert_msg(lb_quant_annotate(g, s, p, &d) == 0, "%s", d.msg);
  return p;
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

/* Top-1 accuracy (percent) of g on x/y through the interpreter, and, with j, the JIT's output
 * bytes equal to the interpreter's on every sample. */
static double accuracy(const lb_graph *g, const lb_tensor *x, const lb_tensor *y, lb_jit *j) {
  int64_t ok = 0, n = y->dims[0];
  for (int64_t i = 0; i < n; i++) {
    lb_tensor in = sample(g, x, i), out, got;
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
  lb_spec *s = load_spec(path);
  lb_diag d = {0};
  lb_graph *g = load_prepared(acc_cases[_i].model);
  lb_tensor x = load_npy(acc_cases[_i].x), y = load_npy("digits_test_y"),
            cal = load_npy(acc_cases[_i].calib);
  double fp32 = accuracy(g, &x, &y, NULL);
  lb_qplan *p = annotated(g, s);
  lb_graph *q = digits_realize(g, p, &cal, LB_CALIB_AVG_MAX, LB_REALIZE_INT);
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
  lb_spec *s = load_spec(SPECS "x86-64-avx2-fixed.yaml");
  lb_diag d = {0};
  lb_graph *g = load_prepared("digits_cnn");
  lb_tensor cal = load_npy("digits_calib_x");
  lb_qplan *p = annotated(g, s);
  lb_graph *q = digits_realize(g, p, &cal, LB_CALIB_AVG_MAX, LB_REALIZE_INT);
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
  q = digits_realize(g, p2, &cal, LB_CALIB_AVG_MAX, LB_REALIZE_INT);
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
  lb_spec *s = load_spec(SPECS "x86-64-avx2-shift.yaml");
  lb_diag d = {0};
  lb_graph *g = load_prepared("digits_mlp"), *back = NULL;
  lb_tensor cal = load_npy("digits64_calib_x"), x = load_npy("digits64_test_x");
  lb_qplan *p = annotated(g, s);
  lb_graph *q = digits_realize(g, p, &cal, LB_CALIB_AVG_MAX, LB_REALIZE_INT);
  char *text = lb_test_graph_text(q, 1 << 30);
  ck_assert_ptr_nonnull(strstr(text, "requantize=shift"));
  ck_assert_msg(lb_graph_parse(text, "q.lbir", &back, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(back->n_nodes, q->n_nodes);
  for (uint32_t k = 0; k < q->n_nodes; k++)
    ck_assert_int_eq(back->nodes[k].attr.requant, q->nodes[k].attr.requant);
  ck_assert_int_gt(check_nodes(back, SHIFT, 1), 0);
  for (int64_t i = 0; i < 8; i++) {
    lb_tensor in = sample(q, &x, i), a, b;
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

/* ---- the emitted code on edge cases ------------------------------------------------------ */

/* An integer gemm [R,1] x [N,1]^T with w = 1 and x = 0..R-1 (scale 1, zero point 0): column n
 * requantizes acc = bias[n] + r with m[n] = s_w[n] / s_y; with a residual (input %q) a second
 * term (q - 5) * s_q / s_y. The cases pick (bias, m) pairs at the rounding ties, the int32
 * extremes, left shifts (m >= 1), huge and tiny multipliers and exact powers of two. */
enum { R = 4, N = 384 };

static void edge_case(unsigned i, int32_t *bias, float *m) {
  int k = (int)(rnd() % 40);
  int32_t b = (int32_t)(((rnd() << 8) ^ rnd()) & 0x7fffffff) >> (rnd() % 31);
  if (rnd() % 2) b = -b;
  switch (i % 8) {
  case 0: /* (2j - 199) / 2 exactly: the ties, both signs */
    k = k % 23 + 1, *m = ldexpf(1.0f, -k);
    b = (int32_t)((2 * (int64_t)(rnd() % 200) - 199) * ((int64_t)1 << (k - 1)));
    break;
  case 1: *m = ldexpf((float)(rnd() % 0x800000 + 0x800000), -23 - k); break; /* any fixed point */
  case 2: *m = ldexpf((float)(rnd() % 0x800000 + 0x800000), -23 + (int)(rnd() % 12)); b %= 64; break;
  case 3: *m = ldexpf(1.0f, -(int)(rnd() % 12) - 30); b = rnd() % 2 ? INT32_MAX - 8 : INT32_MIN + 8; break;
  case 4: *m = 150.0f / (float)(b ? b : 1); if (*m < 0) *m = -*m; break;
  case 5: *m = ldexpf(0.75f, -k); b = 3 << (k < 28 ? k : 28) >> 1; if (rnd() % 2) b = -b; break;
  case 6: *m = 1e-40f; break; /* subnormal */
  default: *m = ldexpf(1.0f, (int)(rnd() % 24) - 12); b %= 1000; break;
  }
  if (!(*m > 0) || !isfinite(*m)) *m = 0.5f;
  if (b > INT32_MAX - 8) b = INT32_MAX - 8;
  if (b < INT32_MIN + 8) b = INT32_MIN + 8;
  *bias = b;
}

static void put_list(char **p, const char *end, const char *pre, int n, const int32_t *iv,
                     const float *fv) {
  *p += snprintf(*p, (size_t)(end - *p), "%s", pre);
  for (int i = 0; i < n; i++)
    *p += iv ? snprintf(*p, (size_t)(end - *p), "%s%d", i ? ", " : "", (int)iv[i])
              : snprintf(*p, (size_t)(end - *p), "%s%.9g", i ? ", " : "", (double)fv[i]);
  *p += snprintf(*p, (size_t)(end - *p), "]");
}

/* below1: every multiplier (and the residual's) below 1, as most layers have them (the
 * backends then drop the left shift: lb_qrequant_below1); the output scale 2 and weight
 * scales 2 m keep every input scale over the output's below 1 too. */
static lb_graph *edge_graph(const char *method, int residual, lb_dtype yt, int below1) {
  static char text[1 << 17];
  int32_t bias[N], ones[N], zeros[N];
  float m[N];
  for (unsigned i = 0; i < N; i++) {
    edge_case(i, &bias[i], &m[i]), ones[i] = 1, zeros[i] = 0;
    while (below1 && m[i] >= 0.98f) m[i] *= 0.125f;
    if (below1) m[i] *= 2.0f; /* the weight scale: m = 1 * 2m / 2 */
  }
  char *p = text, *end = text + sizeof text;
  int zy = yt == LB_DTYPE_U8 ? 128 : -3;
  const char *t = lb_dtype_name(yt), *rz = yt == LB_DTYPE_U8 ? "133" : "5";
  p += snprintf(p, (size_t)(end - p), "graph \"rq\" {\n  input %%x: f32[%d,1]\n", R);
  if (residual)
    p += snprintf(p, (size_t)(end - p), "  input %%r: f32[%d,%d]\n  const %%rs: f32[] = [0.375]\n"
                  "  const %%rz: %s[] = [%s]\n", R, N, t, rz);
  p += snprintf(p, (size_t)(end - p), "  const %%s1: f32[] = [1]\n  const %%z0: %s[] = [0]\n", t);
  put_list(&p, end, "  const %w: i8[384,1] quant(axis=0, scale=[", N, NULL, m);
  put_list(&p, end, ", zero_point=[", N, zeros, NULL);
  put_list(&p, end, ") = [", N, ones, NULL);
  put_list(&p, end, "\n  const %b: i32[384] quant(axis=0, scale=[", N, NULL, m);
  put_list(&p, end, ", zero_point=[", N, zeros, NULL);
  put_list(&p, end, ") = [", N, bias, NULL);
  p += snprintf(p, (size_t)(end - p),
                "\n  %%xq: %s[%d,1] quant(scale=1, zero_point=0) = quantize(%%x, %%s1, %%z0) {axis=1}\n",
                t, R);
  if (residual)
    p += snprintf(p, (size_t)(end - p), "  %%rq: %s[%d,%d] quant(scale=0.375, zero_point=%s) = "
                  "quantize(%%r, %%rs, %%rz) {axis=1}\n", t, R, N, rz);
  p += snprintf(p, (size_t)(end - p), "  %%y: %s[%d,%d] quant(scale=%d, zero_point=%d) = gemm(%%xq, "
                "%%w, %%b%s) {trans_a=0, trans_b=1, alpha=1, beta=1, requantize=%s}\n  output %%y\n}\n",
                t, R, N, below1 ? 2 : 1, zy, residual ? ", %rq" : "", method);
  ck_assert(p < end - 1);
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_msg(lb_graph_parse(text, "edge.lbir", &g, &d) == 0, "%s", d.msg);
  return g;
}

static void edge_inputs(lb_tensor *in, int residual) {
  static float x[R], r[R * N];
  for (int i = 0; i < R; i++) x[i] = (float)i;
  for (int i = 0; i < R * N; i++) r[i] = (float)((int)(rnd() % 256) - 128) * 0.375f;
  in[0] = (lb_tensor){LB_DTYPE_F32, 2, {R, 1}, x};
  in[1] = (lb_tensor){LB_DTYPE_F32, 2, {R, N}, r};
  (void)residual;
}

static void edge_compare(const lb_tensor *got, const lb_tensor *want, const char *what) {
  const uint8_t *a = got->data, *b = want->data;
  for (int64_t i = 0; i < R * N; i++)
    ck_assert_msg(a[i] == b[i], "%s: element %lld: got %u, want %u", what, (long long)i, a[i], b[i]);
}

static const char *const edge_specs[] = {"x86-64-avx2-fixed", "x86-64-zen5-fixed", "x86-64-avx2-shift",
                                         "aarch64-neon-fixed", "aarch64-dotprod-shift"};

START_TEST(emitted_edge_cases) {
  char path[512], what[600];
  snprintf(path, sizeof path, SPECS "%s.yaml", edge_specs[_i]);
  lb_spec *s = load_spec(path);
  lb_diag d = {0};
  const char *method = strstr(edge_specs[_i], "shift") ? "shift" : "fixed_point";
  int arm = !strncmp(lb_spec_llvm_triple(s), "aarch64", 7);
  rng = 777u + (unsigned)_i;
  for (int v = 0; v < 8; v++) {
    int residual = v & 1;
    if (arm && (v & 3) == 2) continue; /* qemu is slow: i8 and i8 + residual, u8 + residual */
    lb_graph *g = edge_graph(method, residual, v & 2 ? LB_DTYPE_U8 : LB_DTYPE_I8, v >> 2);
    ck_assert_int_eq(lb_qrequant_below1(g, &g->nodes[g->n_nodes - 1]), v >> 2);
    lb_tensor in[2], want, got;
    edge_inputs(in, residual);
    snprintf(what, sizeof what, "%s %s%s", edge_specs[_i], lb_dtype_name(v & 2 ? LB_DTYPE_U8 : LB_DTYPE_I8),
             residual ? " + residual" : "");
    ck_assert_msg(lb_interp_run(g, in, &want, &d) == 0, "%s: %s", what, d.msg);
    if (arm) {
      lb_test_aot_target t = {path, "aarch64-linux-gnu-gcc -static",
                              strstr(path, "neon") ? "qemu-aarch64 -cpu cortex-a72" : "qemu-aarch64 -cpu max"};
      lb_test_aot_run(g, s, &t, in, &got, what);
    } else if (lb_target_host_check(s, &d) == 0) {
      lb_jit *j = NULL;
      ck_assert_msg(lb_jit_compile(g, s, NULL, &j, &d) == 0, "%s: %s", what, d.msg);
      ck_assert_msg(lb_jit_run_tensors(j, g, in, &got, &d) == 0, "%s: %s", what, d.msg);
      lb_jit_free(j);
    } else {
      printf("test_requant: this host cannot run %s: skipped\n", edge_specs[_i]);
      lb_free(want.data), lb_graph_free(g);
      break;
    }
    /* the interpreter is the C definition itself: check a few columns against it directly */
    const lb_value *w = &g->values[g->nodes[g->n_nodes - 1].in[1]];
    const int32_t *bias = g->values[g->nodes[g->n_nodes - 1].in[2]].data;
    int mth = strcmp(method, "shift") ? FIXED : SHIFT, zy = v & 2 ? 128 : -3;
    for (int n = 0; !residual && n < N; n++) {
      int32_t q = lb_requantize_by(mth, bias[n] + 2, lb_qmul(1.0f, w->q.scale[n], v & 4 ? 2.0f : 1.0f),
                                   zy, v & 2 ? 0 : -128, v & 2 ? 255 : 127);
      int32_t e = v & 2 ? ((uint8_t *)want.data)[2 * N + n] : ((int8_t *)want.data)[2 * N + n];
      ck_assert_int_eq(e, q);
    }
    edge_compare(&got, &want, what);
    lb_free(got.data), lb_free(want.data);
    lb_graph_free(g);
  }
  lb_spec_free(s);
}
END_TEST

int main(void) {
  const TTest *scalar[] = {decomposition, two_inputs, random_against_reference, pow2_params};
  const TTest *models[] = {plan_round_trip, text_round_trip};
  Suite *s = suite_create("requant");
  tcase_add_loop_test(lb_test_case(s, "scalar", scalar, LB_TEST_N(scalar)), hand_cases, 0,
                      LB_TEST_N(rq_cases));
  TCase *m = lb_test_case(s, "models", models, LB_TEST_N(models));
  tcase_set_timeout(m, 600);
  tcase_add_loop_test(m, digits_accuracy, 0, LB_TEST_N(acc_cases));
  tcase_add_loop_test(m, emitted_edge_cases, 0, LB_TEST_N(edge_specs));
  return lb_test_run(s);
}
