/* Binary layers end to end (quant.h lb_binary_node): hand-built binary conv (1-D, 2-D; padded,
 * strided, dilated, grouped; odd channel counts; residual, relu, i32 accumulator output) and gemm
 * nodes:
 * the interpreter against the scalar definitions of interp_subbyte.c, then the x86 JIT (AVX2
 * and this host) and AOT objects (x86 with gcc, AArch64 under qemu) against the interpreter, bit
 * for bit. Then digits models with binary layers chosen by the search: realized, run by the
 * interpreter and the JIT (identical bytes), scored as the search's simulation scored them.
 * LB_TEST_QUICK: fewer random nodes and AOT objects. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnx.h"
#include "passes.h"
#include "quantize.h"
#include "search.h"
#include "spec.h"
#include "target.h"
#include "tensor_io.h"

#include "../aot.h"
#include "../check_main.h"
#include "../digits.h"
#include "../quick.h"

static unsigned rng = 4242;
static unsigned rnd(void) {
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}
static int64_t pick(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (unsigned)(hi - lo + 1)); }

/* ---- hand-built binary nodes ---------------------------------------------------------------- */

typedef struct bcase {
  int conv, two, res, act, bias, per_channel, trans_a;
  int64_t group;
  lb_dtype xt, yt;
  int32_t thr;
  int64_t n, c, h, w, m, kh, kw, s, p, dil; /* conv; gemm: n rows, c = K, m = N */
} bcase;

static void set_q(lb_graph *g, uint32_t v, uint32_t n, float s0, int32_t z0) {
  lb_quant *q = &g->values[v].q;
  q->n = n, q->axis = n > 1 ? 0 : -1;
  q->scale = lb_arena_array(&g->arena, n, sizeof(float));
  q->zero_point = lb_arena_array(&g->arena, n, sizeof(int32_t));
  for (uint32_t i = 0; i < n; i++) q->scale[i] = s0 * (float)(1 + rnd() % 1000) / 500.0f, q->zero_point[i] = z0;
}

static int32_t rand_zp(lb_dtype t) {
  return t == LB_DTYPE_U8 ? (int32_t)pick(0, 255) : t == LB_DTYPE_I8 ? (int32_t)pick(-128, 127) : 0;
}

static uint32_t act_value(lb_graph *g, const char *name, lb_dtype t, int rank, const int64_t *dims) {
  uint32_t v = lb_graph_add_value(g, name, t, rank, dims);
  set_q(g, v, 1, t == LB_DTYPE_I32 ? 1.0f : 0.05f, rand_zp(t));
  return v;
}

/* Random packed b1 weights of dims, threshold c->thr as zero point, unit scales per channel. */
static uint32_t bweights(lb_graph *g, const bcase *c, int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  size_t nb = lb_dtype_bytes(LB_DTYPE_B1, n);
  uint8_t *w = malloc(nb + 1);
  for (size_t i = 0; i < nb; i++) w[i] = (uint8_t)rnd();
  if (n % 8) w[nb - 1] &= (uint8_t)((1u << (n % 8)) - 1u);
  uint32_t v = lb_graph_add_const(g, "w", LB_DTYPE_B1, rank, dims, w, nb);
  free(w);
  set_q(g, v, c->per_channel ? (uint32_t)c->m : 1, 0.01f, c->thr);
  return v;
}

static uint32_t bias_const(lb_graph *g, int64_t n) {
  int32_t *b = malloc((size_t)n * 4 + 4);
  for (int64_t i = 0; i < n; i++) b[i] = (int32_t)pick(-60, 60);
  uint32_t v = lb_graph_add_const(g, "b", LB_DTYPE_I32, 1, &n, b, (size_t)n * 4);
  free(b);
  set_q(g, v, 1, 1e-3f, 0);
  return v;
}

static lb_graph *bgraph(const bcase *c) {
  lb_graph *g = lb_graph_new("b");
  int rank = c->conv ? (c->two ? 4 : 3) : 2;
  int64_t eh = c->dil * (c->kh - 1) + 1, ew = c->dil * (c->kw - 1) + 1;
  int64_t oh = c->two ? (c->h + 2 * c->p - eh) / c->s + 1 : 1, ow = (c->w + 2 * c->p - ew) / c->s + 1;
  int64_t xd[4] = {c->n, c->c, c->h, c->w}, yd[4] = {c->n, c->m, oh, ow};
  int64_t wd[4] = {c->m, c->c / c->group, c->kh, c->kw};
  if (c->conv && !c->two) xd[2] = c->w, yd[2] = ow, wd[2] = c->kw;
  if (!c->conv) xd[0] = c->trans_a ? c->c : c->n, xd[1] = c->trans_a ? c->n : c->c, yd[1] = c->m, wd[1] = c->c;
  uint32_t in[4] = {act_value(g, "x", c->xt, rank, xd), 0, LB_NONE, LB_NONE}, n_in = 2;
  ck_assert_int_eq(lb_graph_add_input(g, in[0]), 0);
  in[1] = bweights(g, c, c->conv ? rank : 2, wd);
  if (c->bias) in[2] = bias_const(g, c->m), n_in = 3;
  if (c->res) {
    in[3] = act_value(g, "r", c->yt, rank, yd), n_in = 4;
    ck_assert_int_eq(lb_graph_add_input(g, in[3]), 0);
  }
  uint32_t y = act_value(g, "y", c->yt, rank, yd);
  uint32_t k = lb_graph_add_node(g, c->conv ? LB_OP_CONV : LB_OP_GEMM, "bin", in, n_in, &y, 1);
  lb_attrs *at = &g->nodes[k].attr;
  *at = (lb_attrs){.n_spatial = c->two ? 2 : 1, .group = c->group, .alpha = 1, .beta = 1,
                   .trans_b = 1, .trans_a = c->trans_a, .act = (lb_act)c->act, .act_min = -0.4f, .act_max = 0.9f};
  for (int i = 0; i < 2; i++) at->strides[i] = c->s, at->dilations[i] = c->dil;
  for (int i = 0; i < 4; i++) at->pads[i] = c->p;
  at->kernel[0] = c->two ? c->kh : c->kw, at->kernel[1] = c->kw;
  ck_assert_int_eq(lb_graph_add_output(g, y), 0);
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_infer_shapes(g, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_graph_verify(g, &d) == 0, "%s", d.msg);
  ck_assert(lb_int_node(g, k) && lb_binary_node(g, k));
  return g;
}

static const int64_t chans[] = {1, 3, 8, 13, 16, 64, 72, 130};

static bcase random_case(int i) {
  bcase c = {.conv = i % 3 != 2, .two = i % 3 == 0, .res = (int)(rnd() % 3 == 0),
             .act = (int)(rnd() % 3), .bias = (int)(rnd() % 4 != 0), .per_channel = (int)(rnd() & 1)};
  c.xt = rnd() & 1 ? LB_DTYPE_U8 : LB_DTYPE_I8;
  c.yt = rnd() % 4 == 0 && !c.res ? LB_DTYPE_I32 : c.xt; /* shape inference: out follows x */
  if (c.yt == LB_DTYPE_I32) c.act = 0;
  c.thr = c.xt == LB_DTYPE_U8 ? (int32_t)pick(-2, 257) : (int32_t)pick(-130, 129);
  c.n = pick(1, 2), c.c = chans[rnd() % 8], c.m = pick(1, 19), c.s = pick(1, 2), c.dil = pick(1, 2);
  c.kh = c.two ? pick(1, 3) : 1, c.kw = pick(1, 3), c.p = pick(0, 2);
  c.h = c.two ? pick(c.dil * (c.kh - 1) + 1, 9) : 1, c.w = pick(c.dil * (c.kw - 1) + 1, 9);
  if (!c.conv) c.n = pick(1, 6), c.c = chans[rnd() % 8] + pick(0, 1), c.trans_a = (int)(rnd() & 1);
  c.group = 1;
  for (int64_t g = 4; c.conv && g > 1 && rnd() % 3 == 0; g--) /* grouped (and depthwise) */
    if (c.c % g == 0) c.group = g, c.m = g * pick(1, 5), g = 1;
  return c;
}

static void describe(const bcase *c, char *buf, size_t n) {
  snprintf(buf, n, "%s n%lld c%lld %lldx%lld m%lld g%lld k%lldx%lld s%lld p%lld d%lld %s->%s thr%d res%d act%d bias%d pc%d ta%d",
           c->conv ? (c->two ? "conv2d" : "conv1d") : "gemm", (long long)c->n, (long long)c->c,
           (long long)c->h, (long long)c->w, (long long)c->m, (long long)c->group, (long long)c->kh, (long long)c->kw,
           (long long)c->s, (long long)c->p, (long long)c->dil, lb_dtype_name(c->xt),
           lb_dtype_name(c->yt), (int)c->thr, c->res, c->act, c->bias, c->per_channel, c->trans_a);
}

static void random_tensor(const lb_value *v, lb_tensor *t) {
  *t = (lb_tensor){.dtype = v->dtype, .rank = v->rank};
  memcpy(t->dims, v->dims, sizeof t->dims);
  size_t nb = lb_dtype_bytes(v->dtype, lb_value_numel(v));
  t->data = malloc(nb + 1);
  for (size_t i = 0; i < nb; i++) ((uint8_t *)t->data)[i] = (uint8_t)rnd();
}

static void free_ins(lb_tensor *in, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) free(in[i].data);
}

static void same_bytes(const lb_tensor *got, const lb_tensor *want, const char *what, const char *where) {
  size_t nb = lb_dtype_bytes(want->dtype, lb_tensor_numel(want));
  for (size_t i = 0; i < nb; i++)
    ck_assert_msg(((uint8_t *)got->data)[i] == ((uint8_t *)want->data)[i],
                  "%s on %s: byte %zu: got %u, want %u", what, where, i, ((uint8_t *)got->data)[i],
                  ((uint8_t *)want->data)[i]);
}

/* The definition of interp_subbyte.c's scalar kernels (lb_subbyte_conv_ref, lb_binary_dense_ref:
 * popcount of packed sign rows, a different code path) for the cases they cover: no residual,
 * an 8-bit output, gemm without trans_a; a grouped conv is one reference conv per group on its
 * slices of channels and weight bits. */
typedef struct refp {
  const bcase *c;
  const float *mul;
  const int32_t *bias;
  int32_t zy, lo, hi;
  int64_t oh, ow;
} refp;

static int ref_group(const refp *r, const uint8_t *x, const uint8_t *w, int64_t grp, uint8_t *y) {
  const bcase *c = r->c;
  int64_t cg = c->c / c->group, mg = c->m / c->group, hw = (c->two ? c->h : 1) * c->w;
  int64_t per = cg * (c->two ? c->kh : 1) * c->kw, ohw = r->oh * r->ow;
  uint8_t *xs = malloc((size_t)(c->n * cg * hw) + 1), *ws = calloc((size_t)(mg * per / 8) + 2, 1);
  uint8_t *ys = malloc((size_t)(c->n * mg * ohw) + 1);
  for (int64_t n = 0; n < c->n; n++) /* channels [grp * cg, +cg) of every image */
    memcpy(xs + n * cg * hw, x + (n * c->c + grp * cg) * hw, (size_t)(cg * hw));
  for (int64_t i = 0; i < mg * per; i++) { /* the group's weight bits, from bit 0 */
    int64_t b = grp * mg * per + i;
    if ((w[b / 8] >> (b % 8)) & 1) ws[i / 8] |= (uint8_t)(1u << (i % 8));
  }
  lb_subbyte_conv p = {c->n, cg, c->two ? c->h : 1, c->w, mg, r->oh, r->ow, c->two ? c->kh : 1, c->kw,
                       c->two ? c->s : 1, c->s, c->two ? c->p : 0, c->p, c->two ? c->dil : 1, c->dil,
                       c->xt, LB_DTYPE_B1, c->yt, 0, c->thr, r->bias ? r->bias + grp * mg : NULL,
                       r->mul + grp * mg, r->zy, r->lo, r->hi};
  int rc = lb_subbyte_conv_ref(&p, xs, ws, ys);
  for (int64_t n = 0; n < c->n; n++)
    memcpy(y + (n * c->m + grp * mg) * ohw, ys + n * mg * ohw, (size_t)(mg * ohw));
  free(xs), free(ws), free(ys);
  return rc;
}

static int reference(const lb_graph *g, const bcase *c, const lb_tensor *x, void *y) {
  const lb_node *n = &g->nodes[0];
  const lb_value *w = &g->values[n->in[1]], *yv = &g->values[n->out[0]];
  float *mul = malloc((size_t)c->m * sizeof *mul);
  for (int64_t j = 0; j < c->m; j++) mul[j] = lb_qmul(1.0f, w->q.scale[w->q.n > 1 ? j : 0], yv->q.scale[0]);
  refp r = {c, mul, c->bias ? g->values[n->in[2]].data : NULL, yv->q.zero_point[0], 0, 0,
            c->two ? yv->dims[2] : 1, yv->dims[yv->rank - 1]};
  lb_qact_bounds(c->act, -0.4f, 0.9f, c->yt, yv->q.scale[0], r.zy, &r.lo, &r.hi);
  int rc = 0;
  for (int64_t grp = 0; c->conv && !rc && grp < c->group; grp++) rc = ref_group(&r, x->data, w->data, grp, y);
  if (!c->conv) {
    lb_subbyte_dense p = {c->n, c->c, c->m, c->xt, LB_DTYPE_B1, c->yt, 0, c->thr, r.bias, mul, r.zy, r.lo, r.hi};
    rc = lb_binary_dense_ref(&p, x->data, w->data, y);
  }
  free(mul);
  return rc;
}

/* The graph of case c, random inputs in[] and the interpreter's output *out. */
static lb_graph *interp_case(const bcase *c, char *what, size_t wn, lb_tensor *in, lb_tensor *out) {
  describe(c, what, wn);
  lb_graph *g = bgraph(c);
  lb_diag d;
  lb_diag_clear(&d);
  for (uint32_t k = 0; k < g->n_inputs; k++) random_tensor(&g->values[g->inputs[k]], &in[k]);
  ck_assert_msg(lb_interp_run(g, in, out, &d) == 0, "%s: %s", what, d.msg);
  return g;
}

START_TEST(test_interp_ref) {
  int checked = 0;
  for (int i = 0; i < lb_test_count(300, 60); i++) {
    bcase c = random_case(i);
    if (c.res || c.yt == LB_DTYPE_I32 || c.trans_a) continue;
    char what[300];
    lb_tensor in[2], out;
    lb_graph *g = interp_case(&c, what, sizeof what, in, &out);
    lb_tensor want = out;
    want.data = malloc(lb_dtype_bytes(out.dtype, lb_tensor_numel(&out)) + 1);
    ck_assert_int_eq(reference(g, &c, &in[0], want.data), 0);
    same_bytes(&out, &want, what, "the scalar reference");
    free(want.data), lb_free(out.data), free_ins(in, g->n_inputs);
    lb_graph_free(g);
    checked++;
  }
  ck_assert_int_gt(checked, 10);
}
END_TEST

/* Interpreter and JIT on the same random inputs: identical bytes. */
static void jit_vs_interp(const bcase *c, lb_spec *spec) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_tensor in[2], want, got;
  char what[300];
  lb_graph *g = interp_case(c, what, sizeof what, in, &want);
  lb_jit *j = NULL;
  ck_assert_msg(lb_jit_compile(g, spec, NULL, &j, &d) == 0, "%s: %s", what, d.msg);
  ck_assert_msg(lb_jit_run_tensors(j, g, in, &got, &d) == 0, "%s: %s", what, d.msg);
  same_bytes(&got, &want, what, lb_spec_name(spec));
  lb_free(got.data), lb_free(want.data), free_ins(in, g->n_inputs);
  lb_jit_free(j);
  lb_graph_free(g);
}

static const char *jit_specs[] = {"x86-64-avx2", "host"};

START_TEST(test_jit_nodes) {
  lb_spec *spec = load_spec(jit_specs[_i]);
  lb_diag d;
  lb_diag_clear(&d);
  if (lb_target_host_check(spec, &d) != 0) {
    printf("test_binary: skipping JIT runs for %s: %s\n", lb_spec_name(spec), d.msg);
    lb_spec_free(spec);
    return;
  }
  for (int i = 0; i < lb_test_count(90, 18); i++) {
    bcase c = random_case(i);
    jit_vs_interp(&c, spec);
  }
  lb_spec_free(spec);
}
END_TEST

/* ---- AOT: x86 natively, AArch64 under qemu ------------------------------------------------- */

static const lb_test_aot_target aot[] = {LB_TEST_AOT_X86, LB_TEST_AOT_NEON, LB_TEST_AOT_DOTPROD};

/* Object + header for g, the harness linked against it, run on in[]: outputs match want. */
static void aot_run(lb_graph *g, int a, const lb_tensor *in, const lb_tensor *want, const char *what) {
  lb_spec *spec = load_spec(aot[a].spec);
  lb_tensor got;
  lb_test_aot_run(g, spec, &aot[a], in, &got, what);
  same_bytes(&got, want, what, aot[a].spec);
  lb_free(got.data);
  lb_spec_free(spec);
}

START_TEST(test_aot_nodes) {
  for (int i = 0; i < lb_test_count(6, 2); i++) {
    bcase c = random_case(_i * 7 + i);
    char what[300];
    lb_tensor in[2], want;
    lb_graph *g = interp_case(&c, what, sizeof what, in, &want);
    aot_run(g, _i, in, &want, what);
    lb_free(want.data), free_ins(in, g->n_inputs);
    lb_graph_free(g);
  }
}
END_TEST

/* Rows longer than one batch of byte counts (ops_bin.c: 31 words): 3x3 convs over 256 channels
 * (36 words: a batch and a tail; padded, so border rows take the masked path) and a gemm of
 * exactly two batches (62 words); then direct words (64 channels per group: interior rows read
 * the bit image, no gather): unpadded and strided, and grouped with padding. JIT on
 * x86-64-avx2 (byte counts) and the host, AOT on plain NEON under qemu (byte counts by cnt). */
static const bcase wide_cases[] = {
    {.conv = 1, .two = 1, .bias = 1, .per_channel = 1, .group = 1, .xt = LB_DTYPE_I8,
     .yt = LB_DTYPE_I8, .thr = 3, .n = 1, .c = 256, .h = 5, .w = 4, .m = 11, .kh = 3, .kw = 3,
     .s = 1, .p = 1, .dil = 1},
    {.conv = 1, .two = 1, .res = 1, .act = 1, .group = 1, .xt = LB_DTYPE_U8, .yt = LB_DTYPE_U8,
     .thr = 130, .n = 1, .c = 256, .h = 4, .w = 4, .m = 9, .kh = 3, .kw = 3, .s = 1, .p = 1,
     .dil = 1},
    {.bias = 1, .group = 1, .xt = LB_DTYPE_I8, .yt = LB_DTYPE_I8, .thr = -1, .n = 5,
     .c = 62 * 64, .m = 17, .h = 1, .w = 1, .kh = 1, .kw = 1, .s = 1, .dil = 1},
    {.conv = 1, .two = 1, .bias = 1, .group = 1, .xt = LB_DTYPE_U8, .yt = LB_DTYPE_U8, .thr = 90,
     .n = 2, .c = 64, .h = 7, .w = 6, .m = 10, .kh = 3, .kw = 3, .s = 2, .p = 0, .dil = 1},
    {.conv = 1, .two = 1, .res = 1, .per_channel = 1, .group = 2, .xt = LB_DTYPE_I8,
     .yt = LB_DTYPE_I8, .thr = -5, .n = 1, .c = 128, .h = 6, .w = 7, .m = 6, .kh = 3, .kw = 2,
     .s = 1, .p = 1, .dil = 2},
};

START_TEST(test_wide_rows) {
  const bcase *c = &wide_cases[_i];
  for (int s = 0; s < 2; s++) {
    lb_spec *spec = load_spec(jit_specs[s]);
    lb_diag d;
    lb_diag_clear(&d);
    if (lb_target_host_check(spec, &d) == 0) jit_vs_interp(c, spec);
    lb_spec_free(spec);
  }
  if (lb_test_shell("command -v qemu-aarch64 >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null"))
    return;
  char what[300];
  lb_tensor in[2], want;
  lb_graph *g = interp_case(c, what, sizeof what, in, &want);
  aot_run(g, 1, in, &want, what);
  lb_free(want.data), free_ins(in, g->n_inputs);
  lb_graph_free(g);
}
END_TEST

/* ---- packed i4/i2 weights ------------------------------------------------------------------ */

/* Case c's graph with its weight constant replaced by the values q (n of them) stored as wt:
 * i8 bytes, or packed i4/i2 (zero points 0). */
static lb_graph *with_weights(const bcase *c, lb_dtype wt, const int32_t *q, int64_t n) {
  lb_graph *g = bgraph(c);
  const lb_value *w = &g->values[g->nodes[0].in[1]];
  int64_t dims[LB_MAX_RANK];
  memcpy(dims, w->dims, sizeof dims);
  int rank = w->rank;
  lb_quant wq = w->q;
  size_t nb = lb_dtype_bytes(wt, n);
  uint8_t *buf = malloc(nb + 1);
  if (wt == LB_DTYPE_I8)
    for (int64_t i = 0; i < n; i++) buf[i] = (uint8_t)(int8_t)q[i];
  else
    lb_subbyte_pack(wt, q, n, buf);
  uint32_t v = lb_graph_add_const(g, "wq", wt, rank, dims, buf, nb);
  free(buf);
  for (uint32_t i = 0; i < wq.n; i++) wq.zero_point[i] = 0;
  g->values[v].q = wq;
  g->nodes[0].in[1] = v;
  lb_diag d = {0};
  ck_assert_int_eq(lb_graph_compact(g), 0);
  ck_assert_msg(lb_infer_shapes(g, &d) == 0, "%s", d.msg);
  ck_assert(lb_int_node(g, 0) && !lb_binary_node(g, 0));
  return g;
}

/* Packed i4/i2 weights (ir.h storage, what realize writes for a plan's w4/w2 layers): the
 * interpreter gives the same bytes as with the values in i8 containers, and the JIT (its
 * sub-byte kernels read the weights through lb_qweight_at) gives the interpreter's bytes. */
START_TEST(test_packed_weights) {
  static const lb_dtype wts[2] = {LB_DTYPE_I4, LB_DTYPE_I2};
  lb_spec *spec = load_spec("x86-64-avx2");
  for (int i = 0; i < lb_test_count(60, 12); i++) {
    bcase c = random_case(i);
    lb_dtype wt = wts[i & 1];
    int32_t lim = wt == LB_DTYPE_I4 ? 7 : 1;
    lb_graph *g8 = bgraph(&c);
    int64_t n = lb_value_numel(&g8->values[g8->nodes[0].in[1]]);
    lb_graph_free(g8);
    int32_t *q = malloc((size_t)n * sizeof *q + 4);
    for (int64_t k = 0; k < n; k++) q[k] = (int32_t)pick(-lim, lim);
    char what[300];
    describe(&c, what, sizeof what);
    unsigned seed = rng; /* both graphs get the same random parameters */
    lb_graph *a = with_weights(&c, LB_DTYPE_I8, q, n);
    rng = seed;
    lb_graph *b = with_weights(&c, wt, q, n);
    lb_tensor in[2], ya, yb;
    lb_diag d = {0};
    for (uint32_t k = 0; k < a->n_inputs; k++) random_tensor(&a->values[a->inputs[k]], &in[k]);
    ck_assert_msg(lb_interp_run(a, in, &ya, &d) == 0, "%s: %s", what, d.msg);
    ck_assert_msg(lb_interp_run(b, in, &yb, &d) == 0, "%s: %s", what, d.msg);
    same_bytes(&yb, &ya, what, lb_dtype_name(wt));
    lb_jit *j = NULL;
    lb_tensor yj;
    lb_diag_clear(&d);
    ck_assert_msg(lb_jit_compile(b, spec, NULL, &j, &d) == 0, "%s: %s", what, d.msg);
    ck_assert_msg(lb_jit_run_tensors(j, b, in, &yj, &d) == 0, "%s: %s", what, d.msg);
    same_bytes(&yj, &ya, what, lb_dtype_name(wt));
    lb_jit_free(j);
    lb_free(ya.data), lb_free(yb.data), lb_free(yj.data), free_ins(in, a->n_inputs), free(q);
    lb_graph_free(a), lb_graph_free(b);
  }
  lb_spec_free(spec);
}
END_TEST

/* ---- digits models with binary layers -------------------------------------------------------- */

static const struct {
  const char *model, *calib, *x;
} digits[] = { /* stems in tests/models */
    {"digits_cnn", "digits_calib_x", "digits_test_x"},
    {"digits_mlp", "digits64_calib_x", "digits64_test_x"},
    {"digits_resnet", "digits16_calib_x", "digits16_test_x"},
    {"digits_ops", "digits_calib_x", "digits_test_x"}, /* 3-D MatMul */
};

typedef struct mrun {
  lb_graph *g, *q;
  lb_spec *spec;
  lb_qplan *p, *bp;
  lb_tensor calib, x, y;
  lb_search *s;
  unsigned char *choice;
} mrun;

/* The int8 plan of digits model m, its search, and an assignment with binary layers: every
 * layer with a binary option after the first (the first sees the raw image). */
static void mprep(mrun *r, int m) {
  lb_diag d = {0};
  memset(r, 0, sizeof *r);
  r->g = load_prepared(digits[m].model);
  r->spec = load_spec("x86-64-avx2");
  r->p = lb_qplan_new(r->g);
  ck_assert_int_eq(lb_quant_annotate(r->g, r->spec, r->p, &d), 0);
  r->calib = load_npy(digits[m].calib), r->x = load_npy(digits[m].x);
  r->y = load_npy("digits_test_y");
  lb_calib_opts co = {LB_CALIB_AVG_MAX, 0, 0};
  ck_assert_msg(lb_quant_calibrate(r->g, r->p, &r->calib, &co, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_search_new(r->g, r->spec, r->p, &r->calib, &r->x, &r->y, &r->s, &d) == 0, "%s", d.msg);
  uint32_t nl = lb_search_n_layers(r->s), nbin = 0;
  r->choice = calloc(nl + 1, 1);
  for (uint32_t li = 0; li < nl; li++) {
    const lb_search_layer *L = lb_search_layer_at(r->s, li);
    r->choice[li] = (unsigned char)L->base;
    for (int k = 0; k < L->n_opt && li > 0; k++)
      if (L->opt[k].combo && L->opt[k].act == LB_DTYPE_B1) r->choice[li] = (unsigned char)k, nbin++;
  }
  ck_assert_uint_gt(nbin, 0);
  /* the plan of the assignment, as lowbit search makes it (cmd_search.c plan_for) */
  r->bp = lb_qplan_new(r->g);
  ck_assert_int_eq(lb_quant_annotate(r->g, r->spec, r->bp, &d), 0);
  for (uint32_t v = 0; v < r->g->n_values; v++)
    r->bp->v[v].lo = r->p->v[v].lo, r->bp->v[v].hi = r->p->v[v].hi, r->bp->v[v].ranged = r->p->v[v].ranged;
  ck_assert_msg(lb_search_apply(r->s, r->choice, r->bp, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_realize(r->g, r->bp, LB_REALIZE_INT, &r->q, &d) == 0, "%s", d.msg);
}

static void munprep(mrun *r) {
  lb_search_free(r->s);
  lb_qplan_free(r->p), lb_qplan_free(r->bp);
  lb_spec_free(r->spec);
  lb_graph_free(r->g), lb_graph_free(r->q);
  lb_free(r->calib.data), lb_free(r->x.data), lb_free(r->y.data);
  free(r->choice);
}

static void close_floats(const lb_tensor *got, const lb_tensor *want, const char *what) {
  const float *a = got->data, *b = want->data;
  for (int64_t i = 0; i < lb_tensor_numel(want); i++)
    ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-5f * (1.0f + fabsf(b[i])), "%s: output %lld: %g vs %g",
                  what, (long long)i, (double)a[i], (double)b[i]);
}

/* The realized graph has binary layers; the interpreter scores what the search's simulation
 * scored (the same top-1 on every sample but at most one in a hundred, where fp32 rounding in
 * the simulation may flip a near tie), and the JIT (AVX2 and this host) computes the
 * interpreter's bytes on every sample (up to fp32 rounding when fp32 layers end the model). */
START_TEST(test_models) {
  mrun r;
  mprep(&r, _i);
  int nbin = 0;
  for (uint32_t n = 0; n < r.q->n_nodes; n++) nbin += lb_binary_node(r.q, n);
  ck_assert_int_gt(nbin, 0);
  lb_diag d = {0};
  lb_search_score sc;
  ck_assert_msg(lb_search_score_of(r.s, r.choice, &sc, &d) == 0, "%s", d.msg);
  lb_spec *host = load_spec("host");
  lb_jit *j[2] = {NULL, NULL};
  ck_assert_msg(lb_jit_compile(r.q, r.spec, NULL, &j[0], &d) == 0, "%s", d.msg);
  if (lb_target_host_check(host, &d) == 0) ck_assert_msg(lb_jit_compile(r.q, host, NULL, &j[1], &d) == 0, "%s", d.msg);
  int64_t n = r.x.dims[0], hit = 0;
  /* an output a dequantize writes is exact; after fp32 layers (digits_ops ends in softmax) the
   * JIT's fp32 kernels may differ from the interpreter's in the last bits */
  uint32_t prod = r.q->values[r.q->outputs[0]].producer;
  int exact = r.q->nodes[prod].op == LB_OP_DEQUANTIZE;
  for (int64_t i = 0; i < n; i++) {
    lb_tensor t = sample(r.q, &r.x, i), want = {0}, got = {0};
    ck_assert_msg(lb_interp_run(r.q, &t, &want, &d) == 0, "%s", d.msg);
    hit += argmax(want.data, lb_tensor_numel(&want)) == ((const int64_t *)r.y.data)[i];
    for (int k = 0; k < 2; k++) {
      if (!j[k]) continue;
      ck_assert_msg(lb_jit_run_tensors(j[k], r.q, &t, &got, &d) == 0, "%s", d.msg);
      if (exact) same_bytes(&got, &want, digits[_i].model, k ? "host" : "x86-64-avx2");
      else close_floats(&got, &want, digits[_i].model);
      lb_free(got.data);
    }
    lb_free(want.data);
  }
  double acc = 100.0 * (double)hit / (double)n;
  printf("test_binary: %s: %d binary layers, realized %.2f%%, simulated %.2f%%\n", digits[_i].model, nbin, acc, sc.acc);
  ck_assert_msg(fabs(acc - sc.acc) <= 100.0 / (double)n * (double)(n / 100 + 1) + 1e-9,
                "realized %.2f%% vs simulated %.2f%%", acc, sc.acc);
  lb_jit_free(j[0]), lb_jit_free(j[1]);
  lb_spec_free(host);
  munprep(&r);
}
END_TEST

/* One realized digits model with binary layers as an AArch64 object under qemu. */
START_TEST(test_model_aot) {
  mrun r;
  mprep(&r, 0);
  lb_diag d = {0};
  lb_tensor t = sample(r.q, &r.x, 0), want = {0};
  ck_assert_msg(lb_interp_run(r.q, &t, &want, &d) == 0, "%s", d.msg);
  aot_run(r.q, 1, &t, &want, digits[0].model);
  lb_free(want.data);
  munprep(&r);
}
END_TEST

/* The plan file carries a binary layer's threshold and magnitude ("binary: [t, s_b]"): the plan
 * written, read back as an edited plan (annotate, load, annotate, calibrate) and realized gives
 * the same integer graph outputs, byte for byte. */
START_TEST(test_plan_file) {
  mrun r;
  mprep(&r, 0);
  char path[] = "/tmp/lb_binary_planXXXXXX";
  lb_test_tmpfile(path, NULL);
  lb_diag d = {0};
  ck_assert_msg(lb_qplan_save(r.bp, r.g, path, &d) == 0, "%s", d.msg);
  lb_qplan *p = lb_qplan_new(r.g);
  ck_assert_int_eq(lb_quant_annotate(r.g, r.spec, p, &d), 0);
  ck_assert_msg(lb_qplan_load(p, r.g, path, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_annotate(r.g, r.spec, p, &d) == 0, "%s", d.msg);
  lb_calib_opts co = {LB_CALIB_AVG_MAX, 0, 0};
  ck_assert_msg(lb_quant_calibrate(r.g, p, &r.calib, &co, &d) == 0, "%s", d.msg);
  for (uint32_t n = 0; n < r.g->n_nodes; n++) {
    ck_assert_int_eq(p->l[n].bin_thr, r.bp->l[n].bin_thr);
    ck_assert(p->l[n].bin_scale == r.bp->l[n].bin_scale);
  }
  lb_graph *q = NULL;
  ck_assert_msg(lb_quant_realize(r.g, p, LB_REALIZE_INT, &q, &d) == 0, "%s", d.msg);
  for (int64_t i = 0; i < 20; i++) {
    lb_tensor t = sample(q, &r.x, i), a = {0}, b = {0};
    ck_assert_msg(lb_interp_run(q, &t, &a, &d) == 0, "%s", d.msg);
    ck_assert_msg(lb_interp_run(r.q, &t, &b, &d) == 0, "%s", d.msg);
    same_bytes(&a, &b, path, "the plan read back");
    lb_free(a.data), lb_free(b.data);
  }
  remove(path);
  lb_graph_free(q);
  lb_qplan_free(p);
  munprep(&r);
}
END_TEST

int main(void) {
  const TTest *nodes[] = {test_interp_ref, test_packed_weights};
  const TTest *models[] = {test_model_aot, test_plan_file};
  Suite *s = suite_create("binary");
  TCase *t = lb_test_case(s, "nodes", nodes, LB_TEST_N(nodes));
  tcase_set_timeout(t, 300);
  tcase_add_loop_test(t, test_jit_nodes, 0, 2);
  tcase_add_loop_test(t, test_aot_nodes, 0, 3);
  tcase_add_loop_test(t, test_wide_rows, 0, LB_TEST_N(wide_cases));
  TCase *m = lb_test_case(s, "models", models, LB_TEST_N(models));
  tcase_set_timeout(m, 300);
  tcase_add_loop_test(m, test_models, 0, lb_test_count(4, 1));
  return lb_test_run(s);
}
