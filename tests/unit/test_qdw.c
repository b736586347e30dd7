/* Depthwise integer convs (targets/llvm/ops_int_dw.c): single-node realized graphs swept over
 * kernel sizes (1..7, 3x3 and 5x5 above all), strides, pads, dilations, channel counts around
 * the vector widths, i8/u8 activations, i8/u8/i32 outputs, relu/clip, residual inputs, s8 and
 * non-s8 weights, per-channel multipliers; the JIT (x86 specs this host runs) and AOT objects
 * (x86 natively, AArch64 under qemu) must give the interpreter's bytes exactly.
 * LB_TEST_QUICK: fewer random cases and one AOT case per target. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quant.h"
#include "spec.h"
#include "target.h"
#include "tensor_io.h"

#include "../aot.h"
#include "../quick.h"

static unsigned rng = 4242;
static unsigned rnd(void) {
  rng = rng * 1103515245u + 12345u;
  return rng >> 9;
}
static int64_t pick(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (unsigned)(hi - lo + 1)); }

typedef struct dwcase {
  int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw; /* h = 0: a 1-D conv */
  lb_dtype act, out;
  int act_fn, res, zw, wmin; /* wmin: weights may take -128 */
  int wlim, edge, xmax; /* narrow weights |w| <= wlim (0: any s8); edge 1: every |w| = wlim, random
                         * signs, 2: all +wlim, 3: all -wlim; xmax: inputs at their dtype's maximum */
} dwcase;

static void describe(const dwcase *k, char *buf, size_t n) {
  snprintf(buf, n, "dw n%lld c%lld %lldx%lld k%lldx%lld s%lldx%lld p%lldx%lld d%lldx%lld %s->%s act%d res%d zw%d wmin%d wlim%d edge%d xmax%d",
           (long long)k->n, (long long)k->c, (long long)k->h, (long long)k->w, (long long)k->kh,
           (long long)k->kw, (long long)k->sh, (long long)k->sw, (long long)k->ph,
           (long long)k->pw, (long long)k->dh, (long long)k->dw, lb_dtype_name(k->act),
           lb_dtype_name(k->out), k->act_fn, k->res, k->zw, k->wmin, k->wlim, k->edge, k->xmax);
}

/* Quantization parameters: per channel (scales varying) when n > 1. */
static void quant(lb_graph *g, uint32_t v, uint32_t n, float s0, int32_t z, int vary) {
  lb_quant *q = &g->values[v].q;
  q->n = n, q->axis = n > 1 ? 0 : -1;
  q->scale = lb_arena_array(&g->arena, n, sizeof(float));
  q->zero_point = lb_arena_array(&g->arena, n, sizeof(int32_t));
  for (uint32_t i = 0; i < n; i++) {
    q->scale[i] = vary ? s0 * (float)(200 + rnd() % 1800) / 1000.0f : s0;
    q->zero_point[i] = z;
  }
}

static uint32_t activation(lb_graph *g, const char *name, lb_dtype t, int rank, const int64_t *d) {
  uint32_t v = lb_graph_add_value(g, name, t, rank, d);
  int32_t z = t == LB_DTYPE_U8 ? (int32_t)pick(0, 255) : t == LB_DTYPE_I8 ? (int32_t)pick(-128, 127) : 0;
  quant(g, v, 1, 0.01f + (float)(rnd() % 100) / 3000.0f, z, 0);
  return v;
}

/* Weights [C, 1, (KH,) KW] quantized per channel; bias i32. */
static void weights(lb_graph *g, const dwcase *k, int rank, const int64_t *wd, uint32_t *in) {
  int64_t n = k->c * k->kh * k->kw;
  int8_t *w = malloc((size_t)n + 1);
  int32_t *b = malloc((size_t)k->c * 4 + 4);
  for (int64_t i = 0; i < n; i++) {
    int v = k->wlim ? (int)pick(-k->wlim, k->wlim) : (int)pick(-128, 127);
    if (k->edge) v = k->edge == 3 || (k->edge == 1 && rnd() % 2) ? -k->wlim : k->wlim;
    w[i] = (int8_t)(v == -128 && !k->wmin ? -127 : v);
  }
  for (int64_t i = 0; i < k->c; i++) b[i] = (int32_t)pick(-30000, 30000);
  in[1] = lb_graph_add_const(g, "w", LB_DTYPE_I8, rank, wd, w, (size_t)n);
  quant(g, in[1], (uint32_t)k->c, 0.004f, 0, 1);
  for (uint32_t i = 0; k->zw && i < (uint32_t)k->c; i++) /* w - zw leaves s8: the wide path */
    g->values[in[1]].q.zero_point[i] = (int32_t)pick(-90, 90);
  in[2] = lb_graph_add_const(g, "b", LB_DTYPE_I32, 1, &k->c, b, (size_t)k->c * 4);
  quant(g, in[2], 1, 1e-5f, 0, 0);
  free(w), free(b);
}

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static lb_graph *dw_graph(const dwcase *k) {
  lb_graph *g = lb_graph_new("dw");
  int two = k->h > 0, rank = two ? 4 : 3;
  int64_t oh = two ? out_size(k->h, k->kh, k->sh, k->ph, k->dh) : 1;
  int64_t ow = out_size(k->w, k->kw, k->sw, k->pw, k->dw);
  int64_t xd[4] = {k->n, k->c, k->h, k->w}, yd[4] = {k->n, k->c, oh, ow}, wd[4] = {k->c, 1, k->kh, k->kw};
  if (!two) xd[2] = k->w, yd[2] = ow, wd[2] = k->kw;
  uint32_t in[4] = {activation(g, "x", k->act, rank, xd), 0, 0, LB_NONE}, n_in = 3;
  ck_assert_int_eq(lb_graph_add_input(g, in[0]), 0);
  weights(g, k, rank, wd, in);
  if (k->res) {
    in[3] = activation(g, "r", k->act, rank, yd), n_in = 4;
    ck_assert_int_eq(lb_graph_add_input(g, in[3]), 0);
  }
  uint32_t y = activation(g, "y", k->out, rank, yd);
  uint32_t node = lb_graph_add_node(g, LB_OP_CONV, "dw", in, n_in, &y, 1);
  lb_attrs *at = &g->nodes[node].attr;
  *at = (lb_attrs){.n_spatial = two ? 2 : 1, .group = k->c, .act = (lb_act)k->act_fn};
  at->act_min = -0.4f, at->act_max = 0.6f;
  int64_t s[2] = {k->sh, k->sw}, d[2] = {k->dh, k->dw}, p[2] = {k->ph, k->pw}, ks[2] = {k->kh, k->kw};
  for (int i = 0; i < 2; i++) {
    int j = two ? i : 1;
    at->strides[i] = s[j], at->dilations[i] = d[j], at->kernel[i] = ks[j];
    at->pads[i] = p[j], at->pads[i + (two ? 2 : 1)] = p[j];
  }
  ck_assert_int_eq(lb_graph_add_output(g, y), 0);
  lb_diag dg;
  lb_diag_clear(&dg);
  ck_assert_msg(lb_graph_verify(g, &dg) == 0, "%s", dg.msg);
  ck_assert(lb_int_node(g, node));
  return g;
}

/* Fixed edge cases first (MobileNet shapes, tails, borders), then random ones. */
static const dwcase fixed[] = {
    /* n  c   h   w  kh kw sh sw ph pw dh dw  act            out            fn res zw wmin wlim edge xmax */
    {1, 32, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 2, 0, 0, 0, 0, 0, 0},
    {1, 96, 13, 11, 3, 3, 2, 2, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 2, 0, 0, 0, 0, 0, 0},
    {1, 144, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_U8, LB_DTYPE_U8, 1, 0, 0, 1, 0, 0, 0},
    {2, 40, 9, 10, 5, 5, 1, 1, 2, 2, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 0, 1, 0, 0, 0, 0, 0},
    {1, 48, 11, 9, 5, 5, 2, 2, 2, 2, 1, 1, LB_DTYPE_U8, LB_DTYPE_U8, 2, 0, 0, 0, 0, 0, 0},
    {1, 33, 8, 9, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 1, 1, 0, 1, 0, 0, 0},
    {1, 17, 10, 10, 3, 3, 1, 1, 2, 2, 2, 2, LB_DTYPE_I8, LB_DTYPE_I32, 0, 0, 0, 0, 0, 0, 0},
    {1, 64, 6, 6, 3, 3, 1, 2, 0, 1, 1, 1, LB_DTYPE_U8, LB_DTYPE_U8, 0, 0, 0, 0, 0, 0, 0},
    {1, 16, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 2, 0, 1, 0, 0, 0, 0},
    {1, 24, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 2, 1, 0, 0, 0, 0, 0},
    {1, 32, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 0, 0, 0, 0, 0, 0, 0},
    {1, 20, 0, 15, 1, 5, 1, 1, 0, 2, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 1, 0, 0, 0, 0, 0, 0},
    {1, 32, 10, 12, 7, 7, 1, 1, 3, 3, 1, 1, LB_DTYPE_U8, LB_DTYPE_U8, 2, 0, 0, 0, 0, 0, 0},
    {1, 16, 10, 10, 3, 5, 2, 1, 1, 2, 1, 2, LB_DTYPE_I8, LB_DTYPE_I8, 2, 1, 0, 0, 0, 0, 0},
    /* narrow weights (AVX2 vpmaddubsw quads): budgets' edges, i16 sums at their bound */
    /* n  c   h   w  kh kw sh sw ph pw dh dw  act            out            fn res zw wmin wlim edge xmax */
    {1, 32, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 2, 0, 0, 0, 63, 0, 0},
    {1, 96, 13, 11, 3, 3, 2, 2, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 2, 0, 0, 0, 31, 0, 0},
    {1, 144, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_U8, LB_DTYPE_U8, 1, 0, 0, 0, 15, 0, 0},
    {1, 48, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 0, 0, 0, 0, 64, 2, 1},
    {1, 40, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_U8, LB_DTYPE_U8, 0, 0, 0, 0, 64, 3, 1},
    {1, 32, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 0, 0, 0, 0, 21, 2, 1},
    {1, 32, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 0, 0, 0, 0, 22, 3, 1},
    {1, 56, 10, 9, 3, 3, 2, 2, 1, 1, 1, 1, LB_DTYPE_U8, LB_DTYPE_U8, 0, 0, 0, 0, 32, 1, 1},
    {1, 48, 11, 9, 5, 5, 2, 2, 2, 2, 1, 1, LB_DTYPE_U8, LB_DTYPE_U8, 2, 0, 0, 0, 15, 0, 0},
    {1, 24, 12, 12, 3, 3, 1, 1, 2, 2, 2, 2, LB_DTYPE_I8, LB_DTYPE_I8, 1, 0, 0, 0, 63, 1, 0},
    {1, 32, 10, 12, 7, 7, 1, 1, 3, 3, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 2, 0, 0, 0, 15, 1, 1},
    {2, 33, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I8, 1, 1, 0, 0, 31, 0, 0},
    {1, 17, 10, 10, 3, 3, 1, 1, 1, 1, 1, 1, LB_DTYPE_I8, LB_DTYPE_I32, 0, 0, 0, 0, 15, 0, 0},
};
#define N_FIXED ((int)(sizeof fixed / sizeof fixed[0]))

static dwcase random_case(void) {
  static const int64_t chans[] = {1, 3, 8, 15, 16, 17, 31, 32, 40, 48, 63, 72, 96};
  dwcase k = {.n = pick(1, 2), .c = chans[rnd() % 13], .h = rnd() % 6 ? pick(1, 14) : 0};
  k.w = pick(1, 14);
  k.kw = rnd() % 2 ? 3 : rnd() % 2 ? 5 : pick(1, 7), k.kh = k.h ? (rnd() % 4 ? k.kw : pick(1, 5)) : 1;
  k.sw = pick(1, 2), k.sh = k.h ? pick(1, 2) : 1, k.dw = rnd() % 5 ? 1 : 2;
  k.dh = k.h && rnd() % 5 == 0 ? 2 : 1, k.pw = pick(0, k.kw / 2 + 1), k.ph = k.h ? pick(0, k.kh / 2 + 1) : 0;
  if (!k.h) k.kh = 1;
  while (k.dw * (k.kw - 1) + 1 > k.w + 2 * k.pw) k.pw++;
  while (k.h && k.dh * (k.kh - 1) + 1 > k.h + 2 * k.ph) k.ph++;
  k.act = rnd() % 2 ? LB_DTYPE_U8 : LB_DTYPE_I8;
  k.out = rnd() % 6 == 0 ? LB_DTYPE_I32 : k.act;
  k.act_fn = (int)(rnd() % 3), k.res = rnd() % 3 == 0, k.zw = rnd() % 6 == 0, k.wmin = rnd() % 3 == 0;
  static const int lims[] = {64, 63, 32, 31, 22, 21, 16, 15, 7};
  if (rnd() % 2) k.wlim = lims[rnd() % 9], k.edge = rnd() % 3 ? 0 : (int)pick(1, 3), k.xmax = rnd() % 4 == 0;
  return k;
}

static dwcase case_at(int i) { return i < N_FIXED ? fixed[i] : random_case(); }

/* Random input bytes, or (xmax) every byte at the dtype's maximum. */
static void random_bytes(const lb_value *v, lb_tensor *t, int xmax) {
  *t = (lb_tensor){.dtype = v->dtype, .rank = v->rank};
  memcpy(t->dims, v->dims, sizeof t->dims);
  size_t nb = lb_dtype_bytes(v->dtype, lb_value_numel(v));
  t->data = malloc(nb + 1);
  for (size_t i = 0; i < nb; i++)
    ((uint8_t *)t->data)[i] = xmax ? (v->dtype == LB_DTYPE_U8 ? 0xff : 0x7f) : (uint8_t)rnd();
}

static void same_bytes(const lb_tensor *got, const lb_tensor *want, const char *what, const char *spec) {
  size_t nb = lb_dtype_bytes(want->dtype, lb_tensor_numel(want));
  for (size_t i = 0; i < nb; i++)
    ck_assert_msg(((uint8_t *)got->data)[i] == ((uint8_t *)want->data)[i],
                  "%s on %s: byte %zu: got %u, want %u", what, spec, i,
                  ((uint8_t *)got->data)[i], ((uint8_t *)want->data)[i]);
}

/* ---- JIT --------------------------------------------------------------------------------- */

static const char *jit_specs[] = {"x86-64-avx2", "x86-64-avx512-vnni", "host"};

START_TEST(test_jit_sweep) {
  lb_spec *spec = load_spec(jit_specs[_i]);
  lb_diag d;
  lb_diag_clear(&d);
  if (lb_target_host_check(spec, &d) != 0) {
    printf("test_qdw: skipping %s: %s\n", lb_spec_name(spec), d.msg);
    lb_spec_free(spec);
    return;
  }
  rng = 4242 + 17u * (unsigned)_i;
  for (int i = 0, n = N_FIXED + lb_test_count(60, 8); i < n; i++) {
    dwcase k = case_at(i);
    char what[300];
    describe(&k, what, sizeof what);
    lb_graph *g = dw_graph(&k);
    lb_tensor in[2], want, got;
    for (uint32_t j = 0; j < g->n_inputs; j++) random_bytes(&g->values[g->inputs[j]], &in[j], k.xmax);
    ck_assert_msg(lb_interp_run(g, in, &want, &d) == 0, "%s: %s", what, d.msg);
    lb_jit *jit = NULL;
    ck_assert_msg(lb_jit_compile(g, spec, NULL, &jit, &d) == 0, "%s: %s", what, d.msg);
    ck_assert_msg(lb_jit_run_tensors(jit, g, in, &got, &d) == 0, "%s: %s", what, d.msg);
    same_bytes(&got, &want, what, lb_spec_name(spec));
    lb_free(got.data), lb_free(want.data);
    for (uint32_t j = 0; j < g->n_inputs; j++) free(in[j].data);
    lb_jit_free(jit);
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

/* ---- AOT: x86 natively, AArch64 under qemu ------------------------------------------------ */

static const lb_test_aot_target aot[] = {LB_TEST_AOT_X86, LB_TEST_AOT_NEON, LB_TEST_AOT_DOTPROD};

/* Emits g for spec, links it with tests/aot/harness.c, runs it and compares the output. */
static void aot_case(lb_graph *g, lb_spec *spec, int a, int xmax, const char *what) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_tensor in[2], want, got;
  for (uint32_t j = 0; j < g->n_inputs; j++) random_bytes(&g->values[g->inputs[j]], &in[j], xmax);
  ck_assert_msg(lb_interp_run(g, in, &want, &d) == 0, "%s: %s", what, d.msg);
  lb_test_aot_run(g, spec, &aot[a], in, &got, what);
  same_bytes(&got, &want, what, aot[a].spec);
  lb_free(got.data), lb_free(want.data);
  for (uint32_t j = 0; j < g->n_inputs; j++) free(in[j].data);
}

START_TEST(test_aot_sweep) {
  lb_spec *spec = load_spec(aot[_i].spec);
  rng = 99 + 31u * (unsigned)_i;
  /* half the fixed cases (a different half per target), then random ones */
  for (int i = 0, n = lb_test_count(12, 1); i < n; i++) {
    dwcase k = i < N_FIXED / 2 ? fixed[(i * 2 + _i) % N_FIXED] : random_case();
    char what[300];
    describe(&k, what, sizeof what);
    lb_graph *g = dw_graph(&k);
    aot_case(g, spec, _i, k.xmax, what);
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("qdw");
  TCase *t = tcase_create("dw");
  tcase_set_timeout(t, 600);
  tcase_add_loop_test(t, test_jit_sweep, 0, (int)(sizeof jit_specs / sizeof jit_specs[0]));
  tcase_add_loop_test(t, test_aot_sweep, 0, (int)(sizeof aot / sizeof aot[0]));
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
