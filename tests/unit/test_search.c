/* Tests of the precision search (passes/search.c) and the sub-byte integer kernels
 * (compiler/interp_subbyte.c): packing and binary dot products against hand-computed bytes,
 * the reference kernels against independent integer arithmetic, weight quantization by hand,
 * and real searches on the digits models (auto against hago-greedy, the searched plan realized
 * as an integer graph and run by the interpreter), plus the located errors. LB_TEST_QUICK: the
 * auto-vs-hago comparison on the first two models only. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "onnx.h"
#include "passes.h"
#include "search.h"
#include "tensor_io.h"

#include "../quick.h"

#define MODELS LB_SOURCE_DIR "/tests/models/"

/* ---- packing -------------------------------------------------------------------------------- */

static const struct {
  lb_dtype t;
  int n;
  int32_t q[10];
  int nb;
  uint8_t bytes[3];
} packs[] = {
    /* dtype     n  values                            bytes (low bits first) */
    {LB_DTYPE_I4, 4, {1, -2, 7, -8}, 2, {0xE1, 0x87}},
    {LB_DTYPE_U4, 3, {15, 0, 9}, 2, {0x0F, 0x09}},
    {LB_DTYPE_I2, 5, {1, -2, 0, -1, 1}, 2, {0xC9, 0x01}},
    {LB_DTYPE_U2, 4, {3, 2, 1, 0}, 1, {0x1B}},
    {LB_DTYPE_B1, 9, {1, -1, -1, 1, 1, 1, -1, 1, 1}, 2, {0xB9, 0x01}},
};

START_TEST(pack_bytes) {
  uint8_t out[3] = {0xAA, 0xAA, 0xAA};
  lb_subbyte_pack(packs[_i].t, packs[_i].q, packs[_i].n, out);
  ck_assert_int_eq((int)lb_dtype_bytes(packs[_i].t, packs[_i].n), packs[_i].nb);
  for (int k = 0; k < packs[_i].nb; k++) ck_assert_int_eq(out[k], packs[_i].bytes[k]);
  for (int k = 0; k < packs[_i].n; k++)
    ck_assert_int_eq(lb_subbyte_get(packs[_i].t, packs[_i].bytes, k), packs[_i].q[k]);
}
END_TEST

START_TEST(binary_dot) {
  /* a = +1 -1 -1 +1 +1 +1 -1 +1 | +1 -1 ; b = +1 +1 -1 -1 +1 +1 +1 +1 | -1 -1 */
  uint8_t a[2] = {0xB9, 0x01}, b[2] = {0xF3, 0x00};
  /* products: +1 -1 +1 -1 +1 +1 -1 +1 | -1 +1 -> first 8: 2, all 10: 2 */
  ck_assert_int_eq(lb_binary_dot(a, b, 8), 2);
  ck_assert_int_eq(lb_binary_dot(a, b, 10), 2);
  ck_assert_int_eq(lb_binary_dot(a, b, 9), 1);
  ck_assert_int_eq(lb_binary_dot(a, a, 10), 10);
  ck_assert_int_eq(lb_binary_dot(a, b, 0), 0);
}
END_TEST

/* ---- reference kernels against plain integer loops ---------------------------------------- */

static uint64_t rng = 7;
static int32_t irand(int32_t lo, int32_t hi) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return lo + (int32_t)((rng >> 33) % (uint64_t)(hi - lo + 1));
}

static const lb_dtype wtypes[] = {LB_DTYPE_I4, LB_DTYPE_I2, LB_DTYPE_U4, LB_DTYPE_B1};

START_TEST(dense_ref) {
  lb_dtype wt = wtypes[_i];
  enum { M = 3, K = 13, N = 5 };
  int8_t x[M * K], y[M * N];
  int32_t wq[N * K], bias[N], qmin, qmax;
  float mul[N];
  uint8_t w[N * K];
  lb_qrange(wt, &qmin, &qmax);
  for (int i = 0; i < M * K; i++) x[i] = (int8_t)irand(-128, 127);
  for (int i = 0; i < N * K; i++) wq[i] = wt == LB_DTYPE_B1 ? (irand(0, 1) ? 1 : -1) : irand(qmin, qmax);
  for (int j = 0; j < N; j++) bias[j] = irand(-300, 300), mul[j] = 0.01f * (float)(j + 1);
  lb_subbyte_pack(wt, wq, N * K, w);
  lb_subbyte_dense p = {M, K, N, LB_DTYPE_I8, wt, LB_DTYPE_I8, 3, -5, bias, mul, -2, -128, 127};
  int rc = wt == LB_DTYPE_B1 ? lb_binary_dense_ref(&p, x, w, y) : lb_subbyte_dense_ref(&p, x, w, y);
  ck_assert_int_eq(rc, 0);
  for (int r = 0; r < M; r++)
    for (int j = 0; j < N; j++) {
      int32_t acc = bias[j];
      for (int k = 0; k < K; k++) {
        int32_t xv = wt == LB_DTYPE_B1 ? (x[r * K + k] >= -5 ? 1 : -1) : x[r * K + k] - 3;
        acc += xv * wq[j * K + k];
      }
      ck_assert_int_eq(y[r * N + j], lb_requantize(acc, mul[j], -2, -128, 127));
    }
}
END_TEST

START_TEST(conv_ref) {
  lb_dtype wt = wtypes[_i];
  enum { C = 3, H = 5, W = 4, M = 2, KH = 3, KW = 3 };
  lb_subbyte_conv c = {1, C, H, W, M, 3, 2, KH, KW, 2, 2, 1, 1, 1, 1,
                       LB_DTYPE_U8, wt, LB_DTYPE_U8, 100, 120, NULL, NULL, 7, 7, 255};
  uint8_t x[C * H * W], y[M * 3 * 2], w[M * C * KH * KW];
  int32_t wq[M * C * KH * KW], bias[M] = {40, -40}, qmin, qmax;
  float mul[M] = {0.05f, 0.5f};
  c.bias = bias, c.mul = mul;
  lb_qrange(wt, &qmin, &qmax);
  for (int i = 0; i < C * H * W; i++) x[i] = (uint8_t)irand(0, 255);
  for (int i = 0; i < M * C * KH * KW; i++)
    wq[i] = wt == LB_DTYPE_B1 ? (irand(0, 1) ? 1 : -1) : irand(qmin, qmax);
  lb_subbyte_pack(wt, wq, M * C * KH * KW, w);
  ck_assert_int_eq(lb_subbyte_conv_ref(&c, x, w, y), 0);
  for (int m = 0; m < M; m++)
    for (int oh = 0; oh < 3; oh++)
      for (int ow = 0; ow < 2; ow++) {
        int32_t acc = bias[m];
        for (int ic = 0; ic < C; ic++)
          for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++) {
              int ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue; /* padding adds nothing */
              int32_t xv = x[(ic * H + ih) * W + iw];
              xv = wt == LB_DTYPE_B1 ? (xv >= 120 ? 1 : -1) : xv - 100;
              acc += xv * wq[((m * C + ic) * KH + kh) * KW + kw];
            }
        ck_assert_int_eq(y[(m * 3 + oh) * 2 + ow], lb_requantize(acc, mul[m], 7, 7, 255));
      }
}
END_TEST

START_TEST(weight_quant) {
  const float w[8] = {0.5f, -1.0f, 0.25f, 0.0f, /* channel 1: */ 0.3f, 0.3f, -0.3f, 0.1f};
  float s[2];
  int32_t q[8];
  ck_assert_int_eq(lb_search_quant_weights(w, 8, 2, 4, LB_DTYPE_I8, s, q), 0);
  ck_assert_float_eq_tol(s[0], 1.0f / 127, 1e-9f);
  ck_assert_int_eq(q[0], 64);
  ck_assert_int_eq(q[1], -127);
  ck_assert_int_eq(q[2], 32);
  ck_assert_int_eq(q[3], 0);
  ck_assert_int_eq(q[4], 127);
  ck_assert_int_eq(q[7], 42); /* 0.1 / (0.3/127) = 42.33 */
  ck_assert_int_eq(lb_search_quant_weights(w, 8, 2, 4, LB_DTYPE_B1, s, q), 0);
  ck_assert_float_eq_tol(s[0], 0.4375f, 1e-7f); /* mean |w| */
  ck_assert_float_eq_tol(s[1], 0.25f, 1e-7f);
  ck_assert_int_eq(q[1], -1);
  ck_assert_int_eq(q[3], 1);
  ck_assert_int_eq(q[6], -1);
  /* 2 bits: the clipped scale beats max/1 (which rounds 0.25 and 0.5 to 0 or 1) */
  ck_assert_int_eq(lb_search_quant_weights(w, 8, 2, 4, LB_DTYPE_I2, s, q), 0);
  for (int i = 0; i < 8; i++) ck_assert(q[i] >= -1 && q[i] <= 1);
  double err = 0, err_max = 0;
  for (int i = 0; i < 4; i++) {
    err += pow(w[i] - q[i] * s[0], 2);
    float qm = nearbyintf(w[i] / 1.0f);
    err_max += pow(w[i] - qm * 1.0f, 2);
  }
  ck_assert(err < err_max);
}
END_TEST

/* ---- weight clipping and bias correction ------------------------------------------------- */

/* Squared error of channel c of w [ch, inner] quantized to [-qm, qm] with scale sc. */
static double qerr(const float *w, int64_t inner, int64_t c, float sc, int32_t qm) {
  double e = 0;
  for (int64_t i = 0; i < inner; i++) {
    float x = w[c * inner + i];
    e += pow(x - (double)lb_qquantize(x, sc, 0, -qm, qm) * sc, 2);
  }
  return e;
}

/* Per channel, the MSE clip of lb_search_quant_weights (i4, i2) is no worse than max-abs and
 * within 1% of the best of 2000 (quick: 400) clip ratios in (0, 1], on random Gaussian weights with
 * outliers and on every weight of digits_cnn. */
static void check_clip(const float *w, int64_t ch, int64_t inner, lb_dtype t, int32_t qm) {
  float *s = malloc((size_t)ch * sizeof *s);
  ck_assert_int_eq(lb_search_quant_weights(w, ch * inner, ch, inner, t, s, NULL), 0);
  for (int64_t c = 0; c < ch; c++) {
    float amax = 0;
    for (int64_t i = 0; i < inner; i++) amax = fmaxf(amax, fabsf(w[c * inner + i]));
    if (!(amax > 0)) continue;
    double e = qerr(w, inner, c, s[c], qm), grid = INFINITY;
    int steps = lb_test_count(2000, 400);
    for (int k = 1; k <= steps; k++) grid = fmin(grid, qerr(w, inner, c, amax * (float)k / (float)steps / qm, qm));
    ck_assert_msg(e <= qerr(w, inner, c, amax / qm, qm) * (1 + 1e-9), "worse than max-abs");
    ck_assert_msg(e <= grid * 1.01, "channel %lld: %g vs grid %g", (long long)c, e, grid);
  }
  free(s);
}

START_TEST(clip_mse) {
  enum { CH = 6, IN = 300 };
  static float w[CH * IN];
  for (int i = 0; i < CH * IN; i++) { /* sums of uniforms: near Gaussian; a few outliers */
    double u = 0;
    for (int k = 0; k < 4; k++) u += irand(-1000, 1000) / 1000.0;
    w[i] = (float)(u * (1 + i / IN)) * (i % 97 == 0 ? 6.0f : 1.0f);
  }
  check_clip(w, CH, IN, LB_DTYPE_I4, 7);
  check_clip(w, CH, IN, LB_DTYPE_I2, 1);
  lb_graph *g;
  lb_diag d = {0};
  ck_assert_int_eq(lb_onnx_load(MODELS "digits_cnn.onnx", &g, &d), 0);
  ck_assert_int_eq(lb_pass_prepare_fp32(g, &d), 0);
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    const lb_node *nd = &g->nodes[n];
    if (nd->op != LB_OP_CONV || !g->values[nd->in[1]].data) continue;
    const lb_value *wv = &g->values[nd->in[1]];
    check_clip(wv->data, wv->dims[0], lb_value_numel(wv) / wv->dims[0], LB_DTYPE_I4, 7);
    check_clip(wv->data, wv->dims[0], lb_value_numel(wv) / wv->dims[0], LB_DTYPE_I2, 1);
  }
  lb_graph_free(g);
}
END_TEST

/* What the bias correction of node n must equal: the mean over samples and output positions of
 * the node run with weights Wq - W (no bias, no fused activation), per output channel. */
typedef struct shift_run {
  lb_graph *g;
  uint32_t n;
  float *dw;         /* Wq - W */
  double *stat, *shift;
  int64_t samples;
} shift_run;

static int shift_of(void *user, uint32_t v, const lb_tensor *t) {
  shift_run *r = user;
  const lb_node *nd = &r->g->nodes[r->n];
  if (v != nd->in[0]) return 0;
  const lb_value *y = &r->g->values[nd->out[0]];
  lb_tensor in[3] = {*t, {LB_DTYPE_F32, 0, {0}, NULL}, {0}}, out = {LB_DTYPE_F32, y->rank, {0}, NULL};
  const lb_value *w = &r->g->values[nd->in[1]];
  in[1].rank = w->rank;
  memcpy(in[1].dims, w->dims, sizeof w->dims);
  in[1].data = r->dw;
  memcpy(out.dims, y->dims, sizeof y->dims);
  out.data = calloc((size_t)lb_value_numel(y), sizeof(float));
  lb_diag d = {0};
  lb_node keep = *nd;
  r->g->nodes[r->n].n_in = 2, r->g->nodes[r->n].attr.act = LB_ACT_NONE;
  ck_assert_msg(lb_eval_node(r->g, r->n, in, &out, &d) == 0, "%s", d.msg);
  r->g->nodes[r->n] = keep;
  int64_t m = y->dims[1], per = lb_value_numel(y) / m;
  for (int64_t i = 0; i < lb_value_numel(y); i++) r->shift[(i / per) % m] += ((float *)out.data)[i] / (double)per;
  lb_search_stat_add(r->g, r->n, t, r->stat);
  r->samples++;
  free(out.data);
  return 0;
}

/* lb_search_bias_corr on every conv of digits_resnet (padding, strides, a depthwise conv)
 * equals the measured mean output shift of its i2 / i4 weights, and subtracting it leaves a
 * mean error (the bias rounded to its integer grid aside) far below the uncorrected one. */
START_TEST(bias_correction) {
  lb_graph *g;
  lb_diag d = {0};
  lb_tensor cal;
  ck_assert_int_eq(lb_onnx_load(MODELS "digits_resnet.onnx", &g, &d), 0);
  ck_assert_int_eq(lb_pass_prepare_fp32(g, &d), 0);
  ck_assert_int_eq(lb_npy_read(MODELS "digits16_calib_x.npy", &cal, &d), 0);
  int64_t ns = lb_test_count(64, 8), per = lb_tensor_numel(&cal) / cal.dims[0];
  int convs = 0;
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    const lb_node *nd = &g->nodes[n];
    if (nd->op != LB_OP_CONV || nd->n_in < 3 || !g->values[nd->in[1]].data) continue;
    const lb_value *wv = &g->values[nd->in[1]];
    int64_t m = wv->dims[0], nw = lb_value_numel(wv), len = lb_search_stat_len(g, n);
    for (int t = 0; t < 2; t++) {
      lb_dtype dt = t ? LB_DTYPE_I4 : LB_DTYPE_I2;
      float *sc = malloc((size_t)m * sizeof *sc), *dw = malloc((size_t)nw * sizeof *dw);
      int32_t *q = malloc((size_t)nw * sizeof *q);
      double *corr = calloc((size_t)m, sizeof *corr);
      shift_run r = {g, n, dw, calloc((size_t)len, sizeof(double)), calloc((size_t)m, sizeof(double)), 0};
      ck_assert_int_eq(lb_search_quant_weights(wv->data, nw, m, nw / m, dt, sc, q), 0);
      for (int64_t i = 0; i < nw; i++) dw[i] = q[i] * sc[i / (nw / m)] - ((const float *)wv->data)[i];
      for (int64_t i = 0; i < ns; i++) {
        lb_tensor x = {LB_DTYPE_F32, g->values[g->inputs[0]].rank, {0}, (float *)cal.data + i * per};
        memcpy(x.dims, g->values[g->inputs[0]].dims, sizeof x.dims);
        ck_assert_int_eq(lb_quant_walk(g, &x, shift_of, &r, &d), 0);
      }
      for (int64_t c = 0; c < len; c++) r.stat[c] /= (double)ns * lb_search_stat_count(g, n);
      ck_assert_int_eq(lb_search_bias_corr(g, n, dt, sc, (uint32_t)m, r.stat, m, corr), 0);
      double before = 0, after = 0;
      for (int64_t j = 0; j < m; j++) {
        double sh = r.shift[j] / (double)r.samples;
        ck_assert_msg(fabs(corr[j] - sh) <= 1e-4 * (fabs(sh) + 1e-3), "%s ch %lld: %g vs %g",
                      nd->name, (long long)j, corr[j], sh);
        before += fabs(sh), after += fabs(sh - corr[j]);
      }
      ck_assert(after < 1e-3 * before);
      convs += t == 0;
      free(sc), free(dw), free(q), free(corr), free(r.stat), free(r.shift);
    }
  }
  ck_assert_int_ge(convs, 6);
  lb_free(cal.data);
  lb_graph_free(g);
}
END_TEST

/* A calibrated hand plan with i8_w4 on every layer gets the bias zero points the search sets for
 * the same assignment (the same statistics and functions), and some are not 0. */
START_TEST(hand_plan_bias_correction) {
  lb_graph *g;
  lb_spec *spec;
  lb_tensor cal;
  lb_diag d = {0};
  ck_assert_int_eq(lb_onnx_load(MODELS "digits_cnn.onnx", &g, &d), 0);
  ck_assert_int_eq(lb_pass_prepare_fp32(g, &d), 0);
  ck_assert_int_eq(lb_spec_load("x86-64-avx2", &spec, &d), 0);
  ck_assert_int_eq(lb_npy_read(MODELS "digits_calib_x.npy", &cal, &d), 0);
  lb_calib_opts co = {LB_CALIB_AVG_MAX, 0, 0};
  lb_qplan *p = lb_qplan_new(g), *h = lb_qplan_new(g);
  ck_assert_int_eq(lb_quant_annotate(g, spec, p, &d), 0);
  ck_assert_int_eq(lb_quant_calibrate(g, p, &cal, &co, &d), 0);
  lb_search *s;
  ck_assert_int_eq(lb_search_new(g, spec, p, &cal, &cal, NULL, &s, &d), 0);
  unsigned char c[64];
  for (uint32_t li = 0; li < lb_search_n_layers(s); li++) {
    const lb_search_layer *L = lb_search_layer_at(s, li);
    c[li] = (unsigned char)L->base;
    for (int k = 0; k < L->n_opt; k++)
      if (L->opt[k].combo && strcmp(L->opt[k].label, "i8_w4") == 0) c[li] = (unsigned char)k;
    h->l[L->node].want = "i8_w4";
  }
  ck_assert_msg(lb_search_apply(s, c, p, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_annotate(g, spec, h, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_calibrate(g, h, &cal, &co, &d) == 0, "%s", d.msg);
  int nonzero = 0, biases = 0;
  for (uint32_t li = 0; li < lb_search_n_layers(s); li++) {
    const lb_node *n = &g->nodes[lb_search_layer_at(s, li)->node];
    if (n->n_in < 3 || n->in[2] == LB_NONE) continue;
    const lb_qval *a = &p->v[n->in[2]], *b = &h->v[n->in[2]];
    ck_assert_int_eq(h->v[n->in[1]].dtype, LB_DTYPE_I4);
    ck_assert_uint_eq(a->n, b->n);
    for (uint32_t j = 0; j < a->n; j++) {
      ck_assert_int_eq(a->zp[j], b->zp[j]);
      nonzero += a->zp[j] != 0;
    }
    biases++;
  }
  ck_assert_int_ge(biases, 3);
  ck_assert_int_gt(nonzero, 0);
  lb_search_free(s);
  lb_qplan_free(p), lb_qplan_free(h);
  lb_spec_free(spec);
  lb_free(cal.data);
  lb_graph_free(g);
}
END_TEST

/* ---- searches on the digits models -------------------------------------------------------- */

typedef struct run {
  lb_graph *g;
  lb_spec *spec;
  lb_qplan *p;
  lb_tensor calib, x, y;
  lb_search *s;
  double cpu;
} run;

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void prep(run *r, const char *model, const char *calib, const char *x) {
  lb_diag d = {0};
  memset(r, 0, sizeof *r);
  ck_assert_msg(lb_onnx_load(model, &r->g, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(lb_pass_prepare_fp32(r->g, &d), 0);
  ck_assert_int_eq(lb_spec_load("x86-64-avx2", &r->spec, &d), 0);
  r->p = lb_qplan_new(r->g);
  ck_assert_int_eq(lb_quant_annotate(r->g, r->spec, r->p, &d), 0);
  ck_assert_int_eq(lb_npy_read(calib, &r->calib, &d), 0);
  ck_assert_int_eq(lb_npy_read(x, &r->x, &d), 0);
  ck_assert_int_eq(lb_npy_read(MODELS "digits_test_y.npy", &r->y, &d), 0);
  lb_calib_opts co = {LB_CALIB_AVG_MAX, 0, 0};
  ck_assert_msg(lb_quant_calibrate(r->g, r->p, &r->calib, &co, &d) == 0, "%s", d.msg);
}

static void search(run *r, lb_strategy st) {
  lb_diag d = {0};
  ck_assert_msg(lb_search_new(r->g, r->spec, r->p, &r->calib, &r->x, &r->y, &r->s, &d) == 0, "%s", d.msg);
  lb_search_opts o = {.strategy = st, .max_drop = 1.0};
  double t0 = cpu_now();
  ck_assert_msg(lb_search_run(r->s, &o, &d) == 0, "%s", d.msg);
  r->cpu = cpu_now() - t0;
}

static void unrun(run *r) {
  lb_search_free(r->s);
  lb_qplan_free(r->p);
  lb_spec_free(r->spec);
  lb_graph_free(r->g);
  lb_free(r->calib.data), lb_free(r->x.data), lb_free(r->y.data);
}

/* Top-1 accuracy (percent) of the integer graph of plan p on r's evaluation set. */
static double realized_accuracy(run *r) {
  lb_diag d = {0};
  lb_graph *q;
  ck_assert_msg(lb_quant_realize(r->g, r->p, LB_REALIZE_INT, &q, &d) == 0, "%s", d.msg);
  const lb_value *in = &q->values[q->inputs[0]];
  int64_t per = lb_value_numel(in), hit = 0;
  for (int64_t i = 0; i < r->x.dims[0]; i++) {
    lb_tensor t = {LB_DTYPE_F32, in->rank, {0}, (float *)r->x.data + i * per}, out = {0};
    memcpy(t.dims, in->dims, sizeof t.dims);
    ck_assert_msg(lb_interp_run(q, &t, &out, &d) == 0, "%s", d.msg);
    const float *o = out.data;
    int b = 0;
    for (int j = 1; j < 10; j++) b = o[j] > o[b] ? j : b;
    hit += b == ((const int64_t *)r->y.data)[i];
    lb_free(out.data);
  }
  lb_graph_free(q);
  return 100.0 * (double)hit / (double)r->x.dims[0];
}

/* margin: the chosen plan's modeled cost at most this fraction of all-int8. digits_ops is
 * mostly elementwise work that every plan shares (its MAC layers are ~47% of the all-int8
 * cost with the measured elementwise rates of x86-64-avx2): auto / int8 = 3683 / 3993. */
static const struct {
  const char *model, *calib, *x;
  double margin;
} digits[] = {
    {MODELS "digits_cnn.onnx", MODELS "digits_calib_x.npy", MODELS "digits_test_x.npy", 0.88},
    {MODELS "digits_mlp.onnx", MODELS "digits64_calib_x.npy", MODELS "digits64_test_x.npy", 0.88},
    {MODELS "digits_ops.onnx", MODELS "digits_calib_x.npy", MODELS "digits_test_x.npy", 0.95},
    {MODELS "digits_resnet.onnx", MODELS "digits16_calib_x.npy", MODELS "digits16_test_x.npy", 0.88},
};

START_TEST(digits_auto_vs_hago) {
  if (lb_test_quick() && _i >= 2) return;
  run a, h;
  prep(&a, digits[_i].model, digits[_i].calib, digits[_i].x);
  prep(&h, digits[_i].model, digits[_i].calib, digits[_i].x);
  search(&a, LB_STRATEGY_AUTO);
  search(&h, LB_STRATEGY_HAGO_GREEDY);
  const lb_search_point *ca = lb_search_chosen(a.s), *ch = lb_search_chosen(h.s);
  const lb_search_point *fp = lb_search_fp32(a.s), *i8 = lb_search_int8(a.s);
  fprintf(stderr, "%s: auto %.0f cycles %.2f%% (%u evals, %.2f s), hago %.0f cycles %.2f%% (%u evals, %.2f s), "
          "int8 %.0f, fp32 %.2f%%\n", digits[_i].model, ca->cycles, ca->score.acc,
          lb_search_n_evals(a.s), a.cpu, ch->cycles, ch->score.acc, lb_search_n_evals(h.s), h.cpu,
          i8->cycles, fp->score.acc);
  /* within one point of fp32, and cheaper than all-int8 by a margin (on x86-64-avx2 all-int8
   * is 7-bit weights at 0.94 efficiency) */
  ck_assert(ca->score.acc >= fp->score.acc - 1.0);
  ck_assert(ca->cycles <= digits[_i].margin * i8->cycles);
  ck_assert(ca->weight_bytes <= i8->weight_bytes); /* i6/i5 weights take a byte, as i8 */
  int narrow = 0;
  for (uint32_t li = 0; li < lb_search_n_layers(a.s); li++) {
    const lb_search_opt *o = &lb_search_layer_at(a.s, li)->opt[ca->choice[li]];
    int32_t qmin, qmax;
    lb_qrange(o->weight, &qmin, &qmax);
    narrow |= o->combo && qmax < 127;
  }
  ck_assert(narrow);
  /* hago's point does not dominate auto's; auto needs fewer evaluations and less time */
  ck_assert(!(ch->cycles <= ca->cycles && ch->score.acc >= ca->score.acc &&
              (ch->cycles < ca->cycles || ch->score.acc > ca->score.acc)));
  ck_assert_uint_lt(lb_search_n_evals(a.s), lb_search_n_evals(h.s));
  ck_assert(a.cpu < 60.0 && h.cpu < 60.0);
  /* the plan realized as an integer graph scores what the simulation said (within a point) */
  lb_diag d = {0};
  ck_assert_msg(lb_search_apply(a.s, ca->choice, a.p, &d) == 0, "%s", d.msg);
  double acc = realized_accuracy(&a);
  ck_assert_msg(fabs(acc - ca->score.acc) <= 1.0, "realized %.2f%% vs simulated %.2f%%", acc,
                ca->score.acc);
  unrun(&a), unrun(&h);
}
END_TEST

/* The Pareto front: no front point is dominated by any evaluated point, the chosen one is
 * marked, and the plan written for it loads back through --plan with its sub-byte layers. */
START_TEST(front_and_plan_file) {
  run a;
  prep(&a, digits[0].model, digits[0].calib, digits[0].x);
  search(&a, LB_STRATEGY_AUTO);
  uint32_t n = lb_search_n_points(a.s), front = 0, chosen = 0;
  for (uint32_t i = 0; i < n; i++) {
    const lb_search_point *p = lb_search_point_at(a.s, i);
    front += (uint32_t)p->pareto, chosen += (uint32_t)p->chosen;
    for (uint32_t j = 0; p->pareto && j < n; j++) {
      const lb_search_point *q = lb_search_point_at(a.s, j);
      ck_assert(!(q->cycles < p->cycles && q->score.quality > p->score.quality));
    }
  }
  ck_assert_uint_ge(front, 3);
  ck_assert_uint_eq(chosen, 1);
  lb_diag d = {0};
  const lb_search_point *c = lb_search_chosen(a.s);
  ck_assert_int_eq(lb_search_apply(a.s, c->choice, a.p, &d), 0);
  int sub = 0;
  for (uint32_t i = 0; i < lb_search_n_layers(a.s); i++) {
    const lb_search_layer *L = lb_search_layer_at(a.s, i);
    sub += L->opt[c->choice[i]].combo && lb_dtype_bits(L->opt[c->choice[i]].weight) < 8;
  }
  ck_assert_int_gt(sub, 0);
  char path[] = "/tmp/lb_search_planXXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  ck_assert_int_eq(lb_qplan_save(a.p, a.g, path, &d), 0);
  lb_qcli o = {.plan = path};
  lb_qplan *p2 = NULL;
  lb_graph *q = NULL;
  ck_assert_msg(lb_qcli_build(&o, digits[0].model, "x86-64-avx2", LB_REALIZE_INT, NULL, NULL, &p2,
                              &q, &d) == 0, "%s", d.msg);
  for (uint32_t v = 0; v < a.g->n_values; v++) ck_assert_int_eq(p2->v[v].dtype, a.p->v[v].dtype);
  lb_qplan_free(p2), lb_graph_free(q);
  remove(path);
  unrun(&a);
}
END_TEST

/* Without labels the goal is fidelity: top-1 agreement with fp32, and --min-sqnr. */
START_TEST(fidelity_goal) {
  run r;
  prep(&r, digits[0].model, digits[0].calib, digits[0].x);
  lb_diag d = {0};
  ck_assert_int_eq(lb_search_new(r.g, r.spec, r.p, &r.calib, &r.x, NULL, &r.s, &d), 0);
  lb_search_opts o = {.strategy = LB_STRATEGY_AUTO, .max_drop = 1.0, .min_sqnr = 20.0};
  ck_assert_msg(lb_search_run(r.s, &o, &d) == 0, "%s", d.msg);
  const lb_search_point *c = lb_search_chosen(r.s);
  ck_assert(lb_search_goal_met(r.s));
  ck_assert(c->score.sqnr >= 20.0);
  ck_assert(c->score.agree >= 99.0);
  ck_assert(c->score.quality == c->score.agree && c->score.acc == 0.0);
  ck_assert(lb_search_fp32(r.s)->score.agree == 100.0);
  ck_assert(c->cycles < lb_search_int8(r.s)->cycles);
  unrun(&r);
}
END_TEST

static void base_choice(const lb_search *s, unsigned char *c) {
  for (uint32_t li = 0; li < lb_search_n_layers(s); li++) c[li] = (unsigned char)lb_search_layer_at(s, li)->base;
}

/* A binary layer in an applied plan carries the threshold and magnitude the simulation used,
 * so realize builds it (quant.h lb_qlayer.bin_thr/bin_scale) and the integer graph scores
 * exactly what the simulation scored. */
START_TEST(binary_plan_realized) {
  run r;
  prep(&r, digits[0].model, digits[0].calib, digits[0].x);
  lb_diag d = {0};
  ck_assert_int_eq(lb_search_new(r.g, r.spec, r.p, &r.calib, &r.x, &r.y, &r.s, &d), 0);
  unsigned char c[64];
  uint32_t li = lb_search_n_layers(r.s) - 1; /* the gemm */
  base_choice(r.s, c);
  const lb_search_layer *L = lb_search_layer_at(r.s, li);
  for (int k = 0; k < L->n_opt; k++)
    if (L->opt[k].act == LB_DTYPE_B1) c[li] = (unsigned char)k;
  ck_assert_int_eq(L->opt[c[li]].act, LB_DTYPE_B1);
  lb_search_score sc;
  ck_assert_msg(lb_search_score_of(r.s, c, &sc, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_search_apply(r.s, c, r.p, &d) == 0, "%s", d.msg);
  ck_assert(r.p->l[L->node].bin_scale > 0);
  ck_assert_str_eq(r.p->l[L->node].combo, L->opt[c[li]].label);
  ck_assert_double_eq_tol(realized_accuracy(&r), sc.acc, 1e-9);
  unrun(&r);
}
END_TEST

/* ---- errors --------------------------------------------------------------------------------- */

START_TEST(bad_labels) {
  run r;
  prep(&r, digits[0].model, digits[0].calib, digits[0].x);
  lb_diag d = {0};
  r.y.dims[0] = 10; /* 10 labels for 360 samples */
  ck_assert_int_eq(lb_search_new(r.g, r.spec, r.p, &r.calib, &r.x, &r.y, &r.s, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, "labels: need 360 integers (i64 or i32), got i64 with 10 values");
  lb_diag_clear(&d);
  lb_tensor one = r.x;
  one.dims[1] = 2; /* wrong sample shape */
  ck_assert_int_eq(lb_search_new(r.g, r.spec, r.p, &r.calib, &one, NULL, &r.s, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, "evaluation data: a sample has 128 values, input 'input' has 64");
  unrun(&r);
}
END_TEST

START_TEST(bad_plan_precision) {
  char path[] = "/tmp/lb_search_badXXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  const char *text = "layers:\n  - {output: \"/net/net.2/Relu_output_0\", precision: i8_w3}\n";
  ck_assert_int_eq((int)write(fd, text, strlen(text)), (int)strlen(text));
  close(fd);
  lb_qcli o = {.plan = path};
  lb_graph *q = NULL;
  lb_diag d = {0};
  ck_assert_int_eq(lb_qcli_build(&o, digits[0].model, "x86-64-avx2", LB_REALIZE_INT, NULL, NULL,
                                 NULL, &q, &d), LB_ERR_INPUT);
  char want[512];
  snprintf(want, sizeof want, "%s:2:53: error: layer '/net/net.2/Relu_output_0': precision "
           "'i8_w3' is not available (not a weight combination lowbit realizes)", path);
  ck_assert_str_eq(d.msg, want);
  ck_assert_ptr_null(q);
  remove(path);
}
END_TEST

START_TEST(cli_usage) {
  char *a1[] = {"search", "m.onnx", NULL};
  ck_assert_int_eq(lb_cmd_search(2, a1), 2); /* no --calib */
  char *a2[] = {"search", "m.onnx", "--calib", "c.npy", "--strategy", "random", NULL};
  ck_assert_int_eq(lb_cmd_search(6, a2), 2);
  char *a3[] = {"search", "m.onnx", "--calib", "c.npy", "--max-drop", "-1", NULL};
  ck_assert_int_eq(lb_cmd_search(6, a3), 2);
  char *a4[] = {"search", "/nonexistent.onnx", "--calib", "c.npy", NULL};
  ck_assert_int_eq(lb_cmd_search(4, a4), 2);
}
END_TEST

/* ---- out of memory ---------------------------------------------------------------------------
 * The Nth allocation fails, for every N until a whole search (new, run, apply) completes: each
 * failing run must return LB_ERR_NOMEM cleanly (and leak nothing under ASan). */

static long fail_at, calls;

static void *failing_alloc(void *p, size_t n) {
  if (n == 0) {
    free(p);
    return NULL;
  }
  if (++calls == fail_at) return NULL;
  return p ? realloc(p, n) : malloc(n);
}

static int search_once(run *r, lb_strategy st) {
  lb_diag d = {0};
  lb_search *s = NULL;
  lb_search_opts o = {.strategy = st, .max_drop = 1.0, .sens_samples = 4};
  int rc = lb_search_new(r->g, r->spec, r->p, &r->calib, &r->x, &r->y, &s, &d);
  if (!rc) rc = lb_search_run(s, &o, &d);
  /* apply to a fresh plan with the calibrated ranges (a failed apply leaves its plan half-made) */
  lb_qplan *p = rc ? NULL : lb_qplan_new(r->g);
  if (!rc && !p) rc = LB_ERR_NOMEM;
  if (!rc) rc = lb_quant_annotate(r->g, r->spec, p, &d);
  for (uint32_t v = 0; !rc && v < r->g->n_values; v++)
    p->v[v].lo = r->p->v[v].lo, p->v[v].hi = r->p->v[v].hi, p->v[v].ranged = r->p->v[v].ranged;
  if (!rc) rc = lb_search_apply(s, lb_search_chosen(s)->choice, p, &d);
  lb_qplan_free(p);
  lb_search_free(s);
  return rc;
}

START_TEST(out_of_memory) {
  run r;
  prep(&r, digits[1].model, digits[1].calib, digits[1].x);
  r.x.dims[0] = r.y.dims[0] = 12; /* short evaluation and calibration sets keep it quick */
  r.calib.dims[0] = 8;
  for (int st = 0; st < LB_STRATEGY_COUNT; st++) {
    long n = 1;
    for (;; n++) {
      calls = 0, fail_at = n;
      lb_set_allocator(failing_alloc);
      int rc = search_once(&r, (lb_strategy)st);
      lb_set_allocator(NULL);
      if (calls < n) {
        ck_assert_int_eq(rc, 0);
        break;
      }
      ck_assert_msg(rc == LB_ERR_NOMEM, "%s: allocation %ld failed, rc=%d",
                    lb_strategy_name((lb_strategy)st), n, rc);
    }
    ck_assert_int_gt(n, 50);
  }
  unrun(&r);
}
END_TEST

static int file_starts(const char *path, const char *prefix);

/* ---- measured costs (--measure) -------------------------------------------------------------- */

/* Measured figures replace the model everywhere: an assignment costs its layers' figures plus
 * the rest, and the strategy follows them: with int4 (and binary) made slower than int8 and
 * int2 much faster (synthetic figures), the chosen plan has int2 layers and no int4 one; the
 * all-fp32 assignment costs the fp32 figure; NULL restores the model. */
START_TEST(measured_costs_drive_search) {
  run r;
  prep(&r, digits[0].model, digits[0].calib, digits[0].x);
  lb_diag d = {0};
  ck_assert_int_eq(lb_search_new(r.g, r.spec, r.p, &r.calib, &r.x, &r.y, &r.s, &d), 0);
  uint32_t nl = lb_search_n_layers(r.s);
  unsigned char base[64];
  base_choice(r.s, base);
  double modeled = lb_search_cycles(r.s, base, NULL), meas[64 * LB_SEARCH_MAX_OPTS], sum = 0;
  for (uint32_t li = 0; li < nl; li++) {
    const lb_search_layer *L = lb_search_layer_at(r.s, li);
    double b = lb_search_layer_cycles(r.s, base, li);
    for (int k = 0; k < L->n_opt; k++) {
      lb_dtype w = L->opt[k].weight;
      meas[li * LB_SEARCH_MAX_OPTS + k] = !L->opt[k].combo ? 5 * b : w == LB_DTYPE_I4 ? 2 * b
                                          : w == LB_DTYPE_I2 ? 0.3 * b : k == L->base ? b : 3 * b;
    }
    sum += b;
  }
  double f32 = 5 * (sum + 1234.0); /* the fp32 model measured whole */
  ck_assert_int_eq(lb_search_set_measured(r.s, meas, 1234.0, f32), 0);
  ck_assert(lb_search_measured(r.s));
  ck_assert_double_eq_tol(lb_search_cycles(r.s, base, NULL), sum + 1234.0, 1e-6);
  for (uint32_t li = 0; li < nl; li++)
    ck_assert_double_eq_tol(lb_search_layer_cycles(r.s, base, li), meas[li * LB_SEARCH_MAX_OPTS + base[li]], 1e-9);
  lb_search_opts o = {.strategy = LB_STRATEGY_AUTO, .max_drop = 1.0};
  ck_assert_msg(lb_search_run(r.s, &o, &d) == 0, "%s", d.msg);
  const lb_search_point *c = lb_search_chosen(r.s);
  int w2 = 0;
  for (uint32_t li = 0; li < nl; li++) {
    const lb_search_opt *op = &lb_search_layer_at(r.s, li)->opt[c->choice[li]];
    ck_assert_msg(!op->combo || op->weight != LB_DTYPE_I4, "layer %u took int4", li);
    w2 += op->combo && op->weight == LB_DTYPE_I2;
  }
  ck_assert_int_gt(w2, 0);
  ck_assert(c->cycles < lb_search_int8(r.s)->cycles);
  unsigned char all_f32[64] = {0}; /* option 0 is fp32 in every layer */
  ck_assert_double_eq_tol(lb_search_cycles(r.s, all_f32, NULL), f32, 1e-9);
  ck_assert_double_eq_tol(lb_search_fp32(r.s)->cycles, f32, 1e-9);
  /* neighbours both fp32 get their pair correction, one of them alone does not */
  int a = lb_search_neighbour(r.s, 1);
  ck_assert_int_eq(a, 0); /* digits_cnn: conv -> relu -> conv */
  unsigned char two[64], one[64];
  memcpy(two, base, nl), memcpy(one, base, nl);
  two[0] = two[1] = one[1] = 0;
  double c2 = lb_search_cycles(r.s, two, NULL), c1 = lb_search_cycles(r.s, one, NULL);
  ck_assert_int_eq(lb_search_set_pair(r.s, 0, 1, -77.0), 0);
  ck_assert_double_eq_tol(lb_search_cycles(r.s, two, NULL), c2 - 77.0, 1e-9);
  ck_assert_double_eq_tol(lb_search_cycles(r.s, one, NULL), c1, 1e-9);
  ck_assert_int_eq(lb_search_set_measured(r.s, NULL, 0, 0), 0);
  ck_assert_double_eq_tol(lb_search_cycles(r.s, base, NULL), modeled, 1e-9);
  unrun(&r);
}
END_TEST

static int count_lines(const char *path) {
  FILE *f = fopen(path, "r");
  int n = 0, c;
  if (!f) return -1;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

/* The options of r's search: per-layer figures (every option of every layer, and one per
 * pair of fp32 neighbours) and distinct precision labels other than f32 and the layers' int8
 * base; *pairs: the neighbour pairs (each one more plan). */
static void spec_options(run *r, uint32_t *figs, uint32_t *labels, uint32_t *pairs) {
  lb_diag d = {0};
  lb_search *s;
  const char *seen[64];
  ck_assert_int_eq(lb_search_new(r->g, r->spec, r->p, &r->calib, &r->x, &r->y, &s, &d), 0);
  *figs = *labels = *pairs = 0;
  for (uint32_t li = 0; li < lb_search_n_layers(s); li++) {
    const lb_search_layer *L = lb_search_layer_at(s, li);
    *figs += (uint32_t)L->n_opt;
    *pairs += lb_search_neighbour(s, li) >= 0;
    for (int k = 0; k < L->n_opt; k++) {
      int dup = k == L->base || !L->opt[k].combo;
      for (uint32_t j = 0; j < *labels && !dup; j++) dup = strcmp(seen[j], L->opt[k].label) == 0;
      if (!dup) seen[(*labels)++] = L->opt[k].label;
    }
  }
  lb_search_free(s);
}

/* One --measure pass on a fresh search of r's model; the per-layer base figures in out. */
static lb_measure_stats measure_once(run *r, const char *cache, double *out) {
  lb_diag d = {0};
  lb_search *s;
  ck_assert_int_eq(lb_search_new(r->g, r->spec, r->p, &r->calib, &r->x, &r->y, &s, &d), 0);
  lb_search_env e = {r->g, r->spec, r->p, s, &r->x};
  lb_measure_opts o = {cache, digits[0].model, 0};
  lb_measure_stats st;
  ck_assert_msg(lb_search_measure_layers(&e, &o, &st, &d) == 0, "%s", d.msg);
  ck_assert(lb_search_measured(s));
  unsigned char base[64];
  base_choice(s, base);
  for (uint32_t li = 0; li < lb_search_n_layers(s); li++) {
    out[li] = lb_search_layer_cycles(s, base, li);
    ck_assert(out[li] > 0);
  }
  lb_search_free(s);
  return st;
}

/* Per-layer variants are JIT-timed once (one profiled plan per precision), cached in a file
 * created with its directories, read back identically, and a corrupt cache is ignored, timed
 * again and replaced; no temporary file is left behind. */
/* (ops) lb_time_runs: samples are batches of back-to-back runs, enough that one lasts the
 * requested thread CPU time; every run is counted, a failing run stops it. */
static long n_calls, fail_at = -1;
static int counted_run(const void *const in[], void *const out[], void *ws) {
  (void)in, (void)out, (void)ws;
  return n_calls++ == fail_at ? 1 : 0;
}

START_TEST(batched_timing) {
  double cpu[7], wall[7];
  n_calls = 0, fail_at = -1;
  long r = lb_time_runs(counted_run, NULL, NULL, NULL, 3, 7, 50e-6, cpu, wall);
  /* a call costs nanoseconds: 50 us takes far more than 64 of them, and the probe doubles
   * from 1 up to r (2r - 1 calls) */
  ck_assert_int_ge(r, 64);
  ck_assert_int_eq(r & (r - 1), 0);
  ck_assert_int_eq(n_calls, 3 + (2 * r - 1) + 7 * r);
  for (int i = 0; i < 7; i++) {
    ck_assert(cpu[i] > 0 && cpu[i] < 50e-6 / 32);
    ck_assert(wall[i] > 0);
  }
  n_calls = 0, fail_at = 10;
  ck_assert_int_eq(lb_time_runs(counted_run, NULL, NULL, NULL, 3, 7, 50e-6, cpu, NULL), -1);
  ck_assert_int_eq(n_calls, 11);
}
END_TEST

START_TEST(measure_cache) {
  run r;
  prep(&r, digits[0].model, digits[0].calib, digits[0].x);
  char dir[] = "/tmp/lb_search_cacheXXXXXX", path[128], cmd[256];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/sub/measure.tsv", dir);
  double a[64], b[64];
  uint32_t figs, labels, pairs;
  spec_options(&r, &figs, &labels, &pairs);
  figs += pairs;
  ck_assert_uint_eq(pairs, 3); /* conv -> conv -> conv -> gemm */
  lb_measure_stats st = measure_once(&r, path, a);
  /* 4 layers x {f32, i8, i8_w4, i8_w2, binary, and any narrower int8 weights the spec has}:
   * the int8 plan, one plan per other label, each layer alone in fp32, each pair of fp32
   * neighbours */
  ck_assert_uint_eq(st.timed, figs);
  ck_assert_uint_eq(st.plans, 1 + labels + 4 + pairs + 1); /* ... and the fp32 model */
  ck_assert_uint_eq(st.cached, 0);
  ck_assert(file_starts(path, "lowbit-measure-cache 1\n"));
  ck_assert_int_eq(count_lines(path), 1 + (int)figs + 2); /* magic, figures, the rest, fp32 */
  st = measure_once(&r, path, b);
  ck_assert_uint_eq(st.timed, 0);
  ck_assert_uint_eq(st.plans, 0);
  ck_assert_uint_eq(st.cached, figs + 2);
  for (int li = 0; li < 4; li++) ck_assert_double_eq_tol(a[li], b[li], 1e-4 * 2.6e3);
  FILE *f = fopen(path, "a");
  fputs("x86-64-avx2@0\tnot a figure\n", f);
  fclose(f);
  st = measure_once(&r, path, b); /* warns on stderr */
  ck_assert_uint_eq(st.cached, 0);
  ck_assert_uint_eq(st.timed, figs);
  ck_assert_int_eq(count_lines(path), (int)figs + 3);
  ck_assert_uint_eq(measure_once(&r, path, b).cached, figs + 2);
  snprintf(cmd, sizeof cmd, "test $(ls -A %s/sub | wc -l) -eq 1 && rm -r %s", dir, dir);
  ck_assert_int_eq(system(cmd), 0);
  unrun(&r);
}
END_TEST

/* First line of `lowbit search ...` output that starts with prefix, in out (timings cut). */
static int lowbit_line(const char *args, const char *prefix, char *out, size_t n) {
  char cmd[2048], line[2048];
  snprintf(cmd, sizeof cmd, LB_BINARY_DIR "/lowbit search " MODELS "digits_cnn.onnx --calib " MODELS
           "digits_calib_x.npy --eval " MODELS "digits_test_x.npy %s 2>&1", args);
  FILE *p = popen(cmd, "r");
  int found = 0;
  while (p && fgets(line, sizeof line, p))
    if (!found && strncmp(line, prefix, strlen(prefix)) == 0) {
      char *t = strstr(line, " evaluations in "), *e = strstr(line, "; chosen");
      if (t && e) memmove(t, e, strlen(e) + 1);
      snprintf(out, n, "%s", line), found = 1;
    }
  return p && pclose(p) == 0 && found;
}

/* The engine: jit by default where the host runs the spec, with the same search result as
 * the interpreter; interp for a foreign spec, and the output says why. */
START_TEST(engine_default) {
  char jit[2048], interp[2048], line[2048];
  ck_assert(lowbit_line("--spec x86-64-avx2", "engine: ", line, sizeof line));
  ck_assert_str_eq(line, "engine: jit (realized integer plans, JIT-compiled for x86-64-avx2 on this host)\n");
  ck_assert(lowbit_line("--spec x86-64-avx2", "search auto:", jit, sizeof jit));
  ck_assert(lowbit_line("--spec x86-64-avx2 --engine interp", "search auto:", interp, sizeof interp));
  ck_assert_str_eq(jit, interp);
  ck_assert(lowbit_line("--spec aarch64-neon", "engine: ", line, sizeof line));
  const char *want = "engine: interp (simulated quantization): the JIT cannot run aarch64-neon here: ";
  ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "%s", line);
  ck_assert(lowbit_line("--spec aarch64-neon -q", "engine: ", line, sizeof line)); /* on stderr */
  ck_assert(!lowbit_line("--spec aarch64-neon --engine jit", "search auto:", line, sizeof line));
}
END_TEST

/* When only fp32 meets the goal, the output says which goal all-int8 misses (60 dB: mixed
 * plans with fp32 and int6 layers reach 40). */
START_TEST(fp32_chosen_note) {
  char line[2048];
  ck_assert(lowbit_line("--spec x86-64-avx2 --max-drop 0 --min-sqnr 60 -q", "lowbit search: note:",
                        line, sizeof line));
  const char *want = "lowbit search: note: the fp32 model is chosen; goal: top-1 agreement with "
                     "fp32 >= 100.00% (fp32 - --max-drop), SQNR >= 60.0 dB; all-int8 has ";
  ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "%s", line);
}
END_TEST

/* The chosen point is printed even when --min-sqnr puts it off the (cost, quality) front:
 * the cheaper points of its agreement miss the SQNR goal (digits_cnn, 20 dB). */
START_TEST(chosen_off_front_printed) {
  char line[2048];
  ck_assert(lowbit_line("--spec x86-64-avx2 --min-sqnr 20 --max-drop 100", "  chosen ", line,
                        sizeof line));
  double sqnr = 0;
  char *at = strstr(line, "SQNR");
  ck_assert_ptr_nonnull(at);
  ck_assert_int_eq(sscanf(at, "SQNR %lf", &sqnr), 1);
  ck_assert_msg(sqnr >= 20.0, "%s", line);
}
END_TEST

static int file_starts(const char *path, const char *prefix) {
  char buf[64] = {0};
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  return n >= strlen(prefix) && strncmp(buf, prefix, strlen(prefix)) == 0;
}

static int file_has(const char *path, const char *text) {
  char buf[1 << 16] = {0};
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return strstr(buf, text) != NULL;
}

/* The command: JIT evaluation and --measure, the plan and the plot written; a bad labels file
 * is a located error and leaves neither behind. */
START_TEST(cli_jit_measure_outputs) {
  char plan[] = "/tmp/lb_search_cliXXXXXX", svg[64], cache[64];
  int fd = mkstemp(plan);
  ck_assert_int_ge(fd, 0);
  close(fd);
  remove(plan);
  snprintf(svg, sizeof svg, "%s.svg", plan);
  snprintf(cache, sizeof cache, "%s.tsv", plan);
  char *a[] = {"search", MODELS "digits_mlp.onnx", "--spec", "x86-64-avx2", "--calib",
               MODELS "digits64_calib_x.npy", "--eval", MODELS "digits64_test_x.npy", "--labels",
               MODELS "digits_test_y.npy", "--engine", "jit", "--measure", "-q", "-o", plan,
               "--plot", svg, "--measure-cache", cache, NULL};
  ck_assert_int_eq(lb_cmd_search(20, a), 0);
  ck_assert(file_starts(cache, "lowbit-measure-cache 1\n"));
  remove(cache);
  ck_assert(file_starts(plan, "# lowbit quantization plan"));
  ck_assert(file_starts(svg, "<svg"));
  ck_assert(file_has(svg, "measured latency (ms)")); /* the axis says what the costs are */
  remove(plan), remove(svg);
  a[9] = MODELS "digits_calib_x.npy"; /* f32 samples, not labels */
  ck_assert_int_eq(lb_cmd_search(20, a), 2);
  ck_assert_int_ne(access(plan, F_OK), 0);
  ck_assert_int_ne(access(svg, F_OK), 0);
}
END_TEST

Suite *search_suite(void) {
  Suite *s = suite_create("search");
  TCase *k = tcase_create("subbyte");
  tcase_add_loop_test(k, pack_bytes, 0, sizeof packs / sizeof packs[0]);
  tcase_add_test(k, binary_dot);
  tcase_add_loop_test(k, dense_ref, 0, 4);
  tcase_add_loop_test(k, conv_ref, 0, 4);
  tcase_add_test(k, weight_quant);
  tcase_add_test(k, clip_mse);
  tcase_add_test(k, bias_correction);
  tcase_add_test(k, hand_plan_bias_correction);
  suite_add_tcase(s, k);
  TCase *t = tcase_create("digits");
  tcase_set_timeout(t, 600);
  tcase_add_loop_test(t, digits_auto_vs_hago, 0, sizeof digits / sizeof digits[0]);
  tcase_add_test(t, front_and_plan_file);
  tcase_add_test(t, fidelity_goal);
  tcase_add_test(t, bad_labels);
  tcase_add_test(t, bad_plan_precision);
  tcase_add_test(t, cli_usage);
  tcase_add_test(t, cli_jit_measure_outputs);
  tcase_add_test(t, out_of_memory);
  tcase_add_test(t, measured_costs_drive_search);
  tcase_add_test(t, measure_cache);
  tcase_add_test(t, batched_timing);
  tcase_add_test(t, engine_default);
  tcase_add_test(t, fp32_chosen_note);
  tcase_add_test(t, chosen_off_front_printed);
  tcase_add_test(t, binary_plan_realized);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(search_suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
