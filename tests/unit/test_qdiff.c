/* Differential test of the integer backend: seeded random small fp32 graphs (conv: dense,
 * grouped, depthwise, strided, dilated, padded; relu, clip, residual add, sub, mul, concat,
 * max_pool, global_avg_pool, flatten, gemm, matmul) are quantized and realized through the real
 * passes for a bundled spec (or a test spec with requantize fixed_point or shift), then run by
 * the interpreter and by the JIT (and a subset as AOT
 * objects on x86 and on AArch64 under qemu); every integer tensor must be bit-identical.
 * LB_QDIFF_SEED=N picks another seed, LB_QDIFF_CASES=N another count (default 200; 40, one
 * AOT graph per target and each model on a share of the specs under LB_TEST_QUICK). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnx.h"
#include "passes.h"
#include "quantize.h"
#include "spec.h"
#include "target.h"
#include "tensor_io.h"

#include "../aot.h"
#include "../quick.h"

static unsigned rng;
static unsigned rnd(void) {
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}
static int64_t pick(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (unsigned)(hi - lo + 1)); }
static float frand(void) { return (float)(rnd() % 20001) / 10000.0f - 1.0f; }

/* ---- random fp32 graphs -------------------------------------------------------------------- */

typedef struct gen {
  lb_graph *g;
  uint32_t cur;       /* the tensor the chain continues from */
  uint32_t prev4[16]; /* earlier 4-D tensors (residual and concat partners) */
  int n_prev;
  int names;
  char desc[512];
} gen;

static void note(gen *s, const char *what) {
  size_t n = strlen(s->desc);
  snprintf(s->desc + n, sizeof s->desc - n, "%s%s", n ? " " : "", what);
}

static uint32_t node(gen *s, lb_op op, const uint32_t *in, uint32_t n_in, const lb_attrs *a) {
  char name[32];
  snprintf(name, sizeof name, "v%d", s->names++);
  uint32_t y = lb_graph_add_value(s->g, name, LB_DTYPE_F32, 0, NULL);
  uint32_t k = lb_graph_add_node(s->g, op, name, in, n_in, &y, 1);
  if (a) s->g->nodes[k].attr = *a;
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_infer_node(s->g, k, &d) == 0, "%s: %s", s->desc, d.msg);
  return y;
}

static uint32_t fconst(gen *s, int rank, const int64_t *dims, float amp) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  float *p = malloc((size_t)n * 4 + 4);
  for (int64_t i = 0; i < n; i++) p[i] = amp * frand();
  char name[32];
  snprintf(name, sizeof name, "c%d", s->names++);
  uint32_t v = lb_graph_add_const(s->g, name, LB_DTYPE_F32, rank, dims, p, (size_t)n * 4);
  free(p);
  return v;
}

static const lb_value *val(gen *s, uint32_t v) { return &s->g->values[v]; }

static uint32_t conv(gen *s, uint32_t x, int64_t m, int64_t k, int64_t st, int64_t pad,
                     int64_t dil, int64_t group) {
  const lb_value *xv = val(s, x);
  int64_t wd[4] = {m, xv->dims[1] / group, k, k};
  uint32_t in[3] = {x, fconst(s, 4, wd, 0.5f), fconst(s, 1, &m, 0.2f)};
  lb_attrs a = {.n_spatial = 2, .group = group};
  for (int i = 0; i < 2; i++) a.kernel[i] = k, a.strides[i] = st, a.dilations[i] = dil;
  for (int i = 0; i < 4; i++) a.pads[i] = pad;
  char w[96];
  snprintf(w, sizeof w, "conv(m%lld k%lld s%lld p%lld d%lld g%lld)", (long long)m, (long long)k,
           (long long)st, (long long)pad, (long long)dil, (long long)group);
  note(s, w);
  return node(s, LB_OP_CONV, in, 3, &a);
}

static void remember(gen *s, uint32_t v) {
  if (val(s, v)->rank == 4 && s->n_prev < 16) s->prev4[s->n_prev++] = v;
}

/* An earlier 4-D tensor with the shape of v, or LB_NONE. */
static uint32_t partner(gen *s, uint32_t v) {
  for (int i = s->n_prev - 1; i >= 0; i--)
    if (s->prev4[i] != v && !memcmp(val(s, s->prev4[i])->dims, val(s, v)->dims, sizeof val(s, v)->dims))
      return s->prev4[i];
  return LB_NONE;
}

static void step4(gen *s) {
  const lb_value *x = val(s, s->cur);
  int64_t C = x->dims[1], H = x->dims[2], W = x->dims[3];
  int r = (int)(rnd() % 12);
  if (r < 4) { /* conv of a random kind */
    int64_t k = pick(1, 3), dil = k > 1 && rnd() % 4 == 0 ? 2 : 1, ext = dil * (k - 1) + 1;
    int64_t pad = pick(0, k / 2 + 1), st = pick(1, 2);
    while (ext > H + 2 * pad || ext > W + 2 * pad) pad++;
    int kind = (int)(rnd() % 4); /* dense, depthwise, grouped */
    int64_t group = kind == 1 ? C : kind == 2 && C % 2 == 0 ? 2 : 1;
    int64_t m = kind == 1 ? C : group * pick(1, rnd() % 3 ? 6 : 20);
    s->cur = conv(s, s->cur, m, k, st, pad, dil, group);
  } else if (r == 4) {
    lb_attrs a = {0};
    note(s, "relu");
    s->cur = node(s, LB_OP_RELU, &s->cur, 1, &a);
  } else if (r == 5) {
    lb_attrs a = {.clip_min = -0.3f - 0.5f * (float)(rnd() % 2), .clip_max = 0.6f};
    note(s, "clip");
    s->cur = node(s, LB_OP_CLIP, &s->cur, 1, &a);
  } else if (r == 6 && H >= 2 && W >= 2) {
    lb_attrs a = {.n_spatial = 2};
    int avg = rnd() & 1;
    for (int i = 0; i < 2; i++) a.kernel[i] = pick(2, 3), a.strides[i] = pick(1, 2), a.dilations[i] = 1;
    if (avg) /* padded average pools, with and without the padding in the count */
      for (int i = 0; i < 4; i++) a.pads[i] = pick(0, 1);
    while (a.kernel[0] > H + a.pads[0] + a.pads[2]) a.kernel[0]--;
    while (a.kernel[1] > W + a.pads[1] + a.pads[3]) a.kernel[1]--;
    a.count_include_pad = (int)(rnd() & 1);
    note(s, avg ? "avg_pool" : "max_pool");
    s->cur = node(s, avg ? LB_OP_AVG_POOL : LB_OP_MAX_POOL, &s->cur, 1, &a);
  } else if (r == 7) { /* residual: conv keeping the shape, then add/sub/mul */
    uint32_t b = conv(s, s->cur, C, 3, 1, 1, 1, 1);
    uint32_t in[2] = {s->cur, b};
    int o = (int)(rnd() % 4);
    note(s, o == 2 ? "sub" : o == 3 ? "mul" : "add");
    s->cur = node(s, o == 2 ? LB_OP_SUB : o == 3 ? LB_OP_MUL : LB_OP_ADD, in, 2, NULL);
  } else if (r == 8) {
    uint32_t p = partner(s, s->cur);
    if (p == LB_NONE) return;
    uint32_t in[2] = {s->cur, p};
    lb_attrs a = {.axis = 1};
    int cat = rnd() & 1;
    note(s, cat ? "concat" : "add(earlier)");
    s->cur = node(s, cat ? LB_OP_CONCAT : LB_OP_ADD, in, 2, &a);
  } else if (r == 10) { /* (ops) x - mean over channels (or spatial dims), x / c, or a table */
    int v = (int)(rnd() % 3);
    /* reduce_mean and tables after a conv: on fp32 input they would stay fp32 (the JIT's f32
     * sums and expf are not the interpreter's: not the integer contract) */
    if (v != 1) s->cur = conv(s, s->cur, pick(1, 8), 1, 1, 0, 1, 1);
    if (v == 2) { /* any length: vector rows of 32 bytes and a tail (ops_int.c lut32) */
      static const lb_op tab[] = {LB_OP_SIGMOID, LB_OP_TANH, LB_OP_LEAKY_RELU, LB_OP_HARD_SWISH};
      lb_attrs a = {.alpha = 0.1f};
      note(s, "table activation");
      s->cur = node(s, tab[rnd() % 4], &s->cur, 1, &a);
    } else if (v == 1) {
      int64_t one = 1;
      uint32_t in[2] = {s->cur, fconst(s, 0, &one, 0.0f)};
      float c = 0.25f + (float)pick(0, 15) / 4.0f;
      memcpy((void *)s->g->values[in[1]].data, &c, 4);
      note(s, "div(const)");
      s->cur = node(s, LB_OP_DIV, in, 2, NULL);
    } else {
      lb_attrs a = {.n_axes = 1, .axes = {rnd() & 1 ? 1 : 3}, .keepdims = 1};
      if (rnd() & 1) a.n_axes = 2, a.axes[0] = 2, a.axes[1] = 3;
      uint32_t in[2] = {s->cur, node(s, LB_OP_REDUCE_MEAN, &s->cur, 1, &a)};
      note(s, "sub(reduce_mean)");
      s->cur = node(s, LB_OP_SUB, in, 2, NULL);
    }
  } else if (r == 11) { /* (ops) gather channels by constant indices */
    int64_t k = pick(1, C + 1 < 16 ? C + 1 : 16), ix[16];
    for (int64_t i = 0; i < k; i++) ix[i] = pick(-C, C - 1);
    char name[32];
    snprintf(name, sizeof name, "ix%d", s->names++);
    uint32_t in[2] = {s->cur, lb_graph_add_const(s->g, name, LB_DTYPE_I64, 1, &k, ix, (size_t)k * 8)};
    lb_attrs a = {.axis = 1};
    note(s, "gather(axis 1)");
    s->cur = node(s, LB_OP_GATHER, in, 2, &a);
  } else {
    s->cur = conv(s, s->cur, pick(1, 8), 1, 1, 0, 1, 1);
  }
  remember(s, s->cur);
}

/* Flatten/global pool then dense layers. */
static void head(gen *s) {
  int r = (int)(rnd() % 3);
  lb_attrs a = {.axis = 1};
  if (r == 0) {
    note(s, "global_avg_pool");
    s->cur = node(s, LB_OP_GLOBAL_AVG_POOL, &s->cur, 1, NULL);
  }
  if (r == 2) return; /* end on the 4-D tensor */
  note(s, "flatten");
  s->cur = node(s, LB_OP_FLATTEN, &s->cur, 1, &a);
  int dense = (int)pick(1, 2);
  for (int i = 0; i < dense; i++) {
    int64_t K = val(s, s->cur)->dims[1], N = pick(1, 40);
    int mm = rnd() & 1;
    int64_t wd[2] = {mm ? K : N, mm ? N : K};
    uint32_t in[3] = {s->cur, fconst(s, 2, wd, 0.3f), fconst(s, 1, &N, 0.1f)};
    lb_attrs ga = {.alpha = 1, .beta = 1, .trans_b = 1};
    note(s, mm ? "matmul" : "gemm");
    s->cur = node(s, mm ? LB_OP_MATMUL : LB_OP_GEMM, in, mm ? 2 : 3, mm ? NULL : &ga);
    if (rnd() & 1) {
      note(s, "relu");
      s->cur = node(s, LB_OP_RELU, &s->cur, 1, NULL);
    }
  }
}

static lb_graph *random_graph(char *desc, size_t n) {
  gen s = {.g = lb_graph_new("qdiff")};
  int64_t dims[4] = {pick(1, 2), pick(1, 8), pick(3, 12), pick(3, 12)};
  char w[96];
  snprintf(w, sizeof w, "x[%lld,%lld,%lld,%lld]", (long long)dims[0], (long long)dims[1],
           (long long)dims[2], (long long)dims[3]);
  note(&s, w);
  uint32_t x = lb_graph_add_value(s.g, "x", LB_DTYPE_F32, 4, dims);
  ck_assert_int_eq(lb_graph_add_input(s.g, x), 0);
  s.cur = x;
  remember(&s, x);
  int steps = (int)pick(1, 5);
  for (int i = 0; i < steps; i++) step4(&s);
  head(&s);
  ck_assert_int_eq(lb_graph_add_output(s.g, s.cur), 0);
  snprintf(desc, n, "%s", s.desc);
  return s.g;
}

/* ---- quantize through the real passes -------------------------------------------------------- */

static void rand_f32(const lb_value *v, int64_t lead, lb_tensor *t) {
  *t = (lb_tensor){.dtype = LB_DTYPE_F32, .rank = v->rank + (lead > 0)};
  if (lead) t->dims[0] = lead;
  memcpy(t->dims + (lead > 0), v->dims, (size_t)v->rank * sizeof v->dims[0]);
  int64_t n = lb_tensor_numel(t);
  float *p = malloc((size_t)n * 4 + 4);
  for (int64_t i = 0; i < n; i++) p[i] = frand();
  t->data = p;
}

/* (dw) Integer depthwise layers of *p take i8_w6 / i8_w5 at random where the spec has such
 * rows (AVX2's vpmaddubsw quads): a new plan asking for them, or 0 when none was picked. Own
 * generator, so the graphs of the other cases stay as they were. */
static int narrow_dw(lb_graph *g, lb_spec *spec, lb_qplan **p) {
  static unsigned r = 777;
  const char *want[256] = {0};
  int any = 0;
  for (uint32_t n = 0; n < g->n_nodes && n < sizeof want / sizeof want[0]; n++) {
    if (!(*p)->l[n].integer || lb_spec_opkind_of(g, n) != LB_SPEC_DEPTHWISE_CONV2D) continue;
    r = r * 1103515245u + 12345u;
    const lb_spec_combo *c = lb_spec_find(spec, LB_SPEC_DEPTHWISE_CONV2D, (*p)->l[n].act,
                                          (r >> 9) % 2 ? LB_DTYPE_I6 : LB_DTYPE_I5);
    if (c && (r >> 12) % 3) want[n] = c->label, any = 1;
  }
  if (!any) return 0;
  lb_qplan_free(*p);
  *p = lb_qplan_new(g);
  ck_assert_ptr_nonnull(*p);
  for (uint32_t n = 0; n < g->n_nodes && n < sizeof want / sizeof want[0]; n++) (*p)->l[n].want = want[n];
  return 1;
}

/* The integer graph of g for spec, with every integer tensor a graph output (at most
 * max_out outputs in all, the last ones produced). Returns NULL when nothing was integer. */
static lb_graph *quantize_with(lb_graph *g, lb_spec *spec, int max_out, const char *desc,
                               const lb_tensor *calib_data) {
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_pass_prepare_fp32(g, &d) == 0, "%s: %s", desc, d.msg);
  if (getenv("LB_QDIFF_PRINT")) lb_graph_print(g, stderr, 0);
  lb_qplan *p = lb_qplan_new(g);
  ck_assert_ptr_nonnull(p);
  ck_assert_msg(lb_quant_annotate(g, spec, p, &d) == 0, "%s: %s", desc, d.msg);
  if (narrow_dw(g, spec, &p)) ck_assert_msg(lb_quant_annotate(g, spec, p, &d) == 0, "%s: %s", desc, d.msg);
  lb_tensor calib;
  if (calib_data)
    calib = *calib_data;
  else
    rand_f32(&g->values[g->inputs[0]], 4, &calib);
  lb_calib_opts o = {.method = (lb_calib_method)(rnd() % 2 ? LB_CALIB_MAX : LB_CALIB_AVG_MAX)};
  ck_assert_msg(lb_quant_calibrate(g, p, &calib, &o, &d) == 0, "%s: %s", desc, d.msg);
  if (!calib_data) free(calib.data);
  lb_graph *q = NULL;
  ck_assert_msg(lb_quant_realize(g, p, LB_REALIZE_INT, &q, &d) == 0, "%s: %s", desc, d.msg);
  lb_qplan_free(p);
  int ints = 0;
  for (uint32_t k = 0; k < q->n_nodes; k++) ints += lb_int_node(q, k);
  if (!ints) {
    lb_graph_free(q);
    return NULL;
  }
  for (uint32_t k = q->n_nodes; k-- > 0 && (int)q->n_outputs < max_out;) {
    uint32_t v = q->nodes[k].out[0];
    lb_dtype t = q->values[v].dtype;
    if ((t == LB_DTYPE_I8 || t == LB_DTYPE_U8 || t == LB_DTYPE_I32) && !q->values[v].is_output)
      ck_assert_int_eq(lb_graph_add_output(q, v), 0);
  }
  return q;
}

static lb_graph *quantize(lb_graph *g, lb_spec *spec, int max_out, const char *desc) {
  return quantize_with(g, spec, max_out, desc, NULL);
}

/* Bit-identical for integer outputs; within 1e-5 relative for fp32 ones (fp32 layers after
 * a dequantize are not part of the integer contract). */
static void compare(const lb_tensor *got, const lb_tensor *want, const char *what, uint32_t o) {
  ck_assert_int_eq(got->dtype, want->dtype);
  int64_t n = lb_tensor_numel(want);
  if (want->dtype != LB_DTYPE_F32) {
    size_t nb = lb_dtype_bytes(want->dtype, n);
    for (size_t i = 0; i < nb; i++)
      ck_assert_msg(((uint8_t *)got->data)[i] == ((uint8_t *)want->data)[i],
                    "%s: output %u (%s) byte %zu: got %u, want %u", what, o,
                    lb_dtype_name(want->dtype), i, ((uint8_t *)got->data)[i],
                    ((uint8_t *)want->data)[i]);
    return;
  }
  double scale = 1e-3;
  for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(((float *)want->data)[i]));
  for (int64_t i = 0; i < n; i++)
    ck_assert_msg(fabs(((float *)got->data)[i] - ((float *)want->data)[i]) <= 1e-5 * scale,
                  "%s: output %u element %lld", what, o, (long long)i);
}

static void free_outs(lb_tensor *t, uint32_t n, int lb) {
  for (uint32_t i = 0; i < n; i++) lb ? lb_free(t[i].data) : free(t[i].data);
}

/* ---- JIT ------------------------------------------------------------------------------------ */

/* the last three: integer-only requantize (quant.h), fixed_point on AVX2 and AVX-512, shift */
#define RQ_SPEC(n) LB_SOURCE_DIR "/tests/specs/good/" n ".yaml"
static const char *jit_specs[] = {"x86-64-avx2", "x86-64-avx512-vnni", "x86-64-zen5",
                                  RQ_SPEC("x86-64-avx2-fixed"), RQ_SPEC("x86-64-zen5-fixed"),
                                  RQ_SPEC("x86-64-avx2-shift")};
enum { N_JIT_SPECS = 6, MAX_OUT = 64 };

static unsigned seed0(void) {
  const char *e = getenv("LB_QDIFF_SEED");
  return e ? (unsigned)strtoul(e, NULL, 10) : 20261121u;
}

START_TEST(test_jit_random_graphs) {
  const char *e = getenv("LB_QDIFF_CASES");
  int cases = e ? atoi(e) : lb_test_count(200, 40), runs = 0, integer = 0, skipped = 0;
  lb_spec *specs[N_JIT_SPECS];
  int runs_here[N_JIT_SPECS];
  for (int i = 0; i < N_JIT_SPECS; i++) {
    specs[i] = load_spec(jit_specs[i]);
    lb_diag d;
    lb_diag_clear(&d);
    runs_here[i] = lb_target_host_check(specs[i], &d) == 0;
    if (!runs_here[i]) printf("test_qdiff: this host cannot run %s (%s): skipped\n", jit_specs[i], d.msg);
  }
  rng = seed0();
  printf("test_qdiff: seed %u, %d cases\n", rng, cases);
  for (int c = 0; c < cases; c++) {
    char desc[512], what[700];
    lb_graph *g = random_graph(desc, sizeof desc);
    int si = c % N_JIT_SPECS;
    snprintf(what, sizeof what, "case %d on %s: %s", c, jit_specs[si], desc);
    lb_graph *q = quantize(g, specs[si], MAX_OUT, what);
    lb_graph_free(g);
    if (!q || !runs_here[si]) {
      skipped += !runs_here[si];
      lb_graph_free(q);
      continue;
    }
    integer++;
    lb_diag d;
    lb_diag_clear(&d);
    lb_tensor in, want[MAX_OUT], got[MAX_OUT];
    rand_f32(&q->values[q->inputs[0]], 0, &in);
    ck_assert_msg(lb_interp_run(q, &in, want, &d) == 0, "%s: %s", what, d.msg);
    lb_jit *j = NULL;
    ck_assert_msg(lb_jit_compile(q, specs[si], NULL, &j, &d) == 0, "%s: %s", what, d.msg);
    ck_assert_msg(lb_jit_run_tensors(j, q, &in, got, &d) == 0, "%s: %s", what, d.msg);
    for (uint32_t o = 0; o < q->n_outputs; o++) compare(&got[o], &want[o], what, o);
    free_outs(got, q->n_outputs, 1), free_outs(want, q->n_outputs, 1);
    free(in.data);
    lb_jit_free(j);
    lb_graph_free(q);
    runs++;
  }
  printf("test_qdiff: %d graphs, %d with integer layers, %d compared bit for bit, %d skipped\n",
         cases, integer + skipped, runs, skipped);
  ck_assert_int_ge(integer + skipped, cases * 9 / 10);
  for (int i = 0; i < N_JIT_SPECS; i++) lb_spec_free(specs[i]);
}
END_TEST

/* ---- AOT: x86 natively, AArch64 under qemu ------------------------------------------------- */

static const lb_test_aot_target aot[] = {
    LB_TEST_AOT_X86, LB_TEST_AOT_NEON, LB_TEST_AOT_DOTPROD, LB_TEST_AOT_I8MM,
    {RQ_SPEC("x86-64-avx2-fixed"), "gcc", ""},
    {RQ_SPEC("aarch64-neon-fixed"), "aarch64-linux-gnu-gcc -static", "qemu-aarch64 -cpu cortex-a72"},
    {RQ_SPEC("aarch64-dotprod-shift"), "aarch64-linux-gnu-gcc -static", "qemu-aarch64 -cpu max"}};

static void aot_case(lb_graph *q, lb_spec *spec, int a, const char *what) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_tensor in, want[3], got[3];
  ck_assert_uint_le(q->n_outputs, 3);
  rand_f32(&q->values[q->inputs[0]], 0, &in);
  ck_assert_msg(lb_interp_run(q, &in, want, &d) == 0, "%s: %s", what, d.msg);
  lb_test_aot_run(q, spec, &aot[a], &in, got, what);
  for (uint32_t i = 0; i < q->n_outputs; i++) {
    compare(&got[i], &want[i], what, i);
    lb_free(got[i].data);
  }
  free_outs(want, q->n_outputs, 1);
  free(in.data);
}

START_TEST(test_aot_random_graphs) {
  lb_spec *spec = load_spec(aot[_i].spec);
  rng = seed0() + 1000u * (unsigned)(_i + 1);
  int done = 0, want = lb_test_count(2, 1);
  for (int c = 0; done < want && c < 40; c++) {
    char desc[512], what[700];
    lb_graph *g = random_graph(desc, sizeof desc);
    snprintf(what, sizeof what, "AOT case %d on %s: %s", c, aot[_i].spec, desc);
    lb_graph *q = quantize(g, spec, 3, what); /* the harness takes 3 outputs */
    lb_graph_free(g);
    if (!q) continue;
    aot_case(q, spec, _i, what);
    lb_graph_free(q);
    done++;
  }
  ck_assert_int_eq(done, want);
  lb_spec_free(spec);
}
END_TEST

/* ---- the test models on every bundled spec ------------------------------------------------ */

static const struct {
  const char *model, *calib;
} models[] = {
    {"digits_cnn", "digits_calib_x"},
    {"digits_mlp", "digits64_calib_x"},
    {"digits_resnet", "digits16_calib_x"},
    {"digits_ops", "digits_calib_x"},
};

/* One model through the real passes for one spec, then JIT (x86, when this host runs the
 * spec) or AOT under qemu (AArch64: -cpu cortex-a72 for the plain NEON spec, else max). */
static void model_on_spec(const char *model, const lb_tensor *calib, const char *spec_name) {
  char path[600], what[700];
  snprintf(path, sizeof path, "%s/tests/models/%s.onnx", LB_SOURCE_DIR, model);
  snprintf(what, sizeof what, "%s on %s", model, spec_name);
  lb_diag d;
  lb_diag_clear(&d);
  lb_spec *spec = load_spec(spec_name);
  lb_graph *g = NULL;
  ck_assert_msg(lb_onnx_load(path, &g, &d) == 0, "%s", d.msg);
  int arm = !strncmp(lb_spec_llvm_triple(spec), "aarch64", 7);
  lb_graph *q = quantize_with(g, spec, arm ? 3 : MAX_OUT, what, calib);
  lb_graph_free(g);
  ck_assert_msg(q != NULL, "%s: no integer layer", what);
  if (arm) {
    int a = strstr(spec_name, "neon") ? 1 : 2; /* cortex-a72 or max */
    aot_case(q, spec, a, what);
  } else if (lb_target_host_check(spec, &d) == 0) {
    lb_tensor in, want[MAX_OUT], got[MAX_OUT];
    rand_f32(&q->values[q->inputs[0]], 0, &in);
    ck_assert_msg(lb_interp_run(q, &in, want, &d) == 0, "%s: %s", what, d.msg);
    lb_jit *j = NULL;
    ck_assert_msg(lb_jit_compile(q, spec, NULL, &j, &d) == 0, "%s: %s", what, d.msg);
    ck_assert_msg(lb_jit_run_tensors(j, q, &in, got, &d) == 0, "%s: %s", what, d.msg);
    for (uint32_t o = 0; o < q->n_outputs; o++) compare(&got[o], &want[o], what, o);
    free_outs(got, q->n_outputs, 1), free_outs(want, q->n_outputs, 1);
    free(in.data);
    lb_jit_free(j);
  } else {
    printf("test_qdiff: this host cannot run %s: %s skipped\n", spec_name, model);
  }
  lb_graph_free(q);
  lb_spec_free(spec);
}

START_TEST(test_models_every_spec) {
  char path[600];
  snprintf(path, sizeof path, "%s/tests/models/%s.npy", LB_SOURCE_DIR, models[_i].calib);
  lb_diag d;
  lb_diag_clear(&d);
  lb_tensor calib;
  ck_assert_msg(lb_npy_read(path, &calib, &d) == 0, "%s", d.msg);
  calib.dims[0] = calib.dims[0] < 8 ? calib.dims[0] : 8; /* a prefix is plenty */
  char **names;
  int n = lb_spec_list_names(&names, &d);
  ck_assert_msg(n > 0, "%s", d.msg);
  rng = seed0();
  /* quick: spec i for model i mod 4 only, so every spec still runs some model */
  int n_models = (int)(sizeof models / sizeof models[0]);
  for (int i = 0; i < n; i++)
    if (!lb_test_quick() || i % n_models == _i) model_on_spec(models[_i].model, &calib, names[i]);
  lb_spec_names_free(names, n);
  lb_free(calib.data);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("qdiff");
  TCase *t = tcase_create("jit"), *a = tcase_create("aot"), *m = tcase_create("models");
  tcase_set_timeout(t, 900); /* a loaded 2-core machine: about 60 s of CPU time in all */
  tcase_set_timeout(a, 900);
  tcase_set_timeout(m, 900);
  tcase_add_test(t, test_jit_random_graphs);
  tcase_add_loop_test(a, test_aot_random_graphs, 0, (int)(sizeof aot / sizeof aot[0]));
  tcase_add_loop_test(m, test_models_every_spec, 0, (int)(sizeof models / sizeof models[0]));
  suite_add_tcase(s, t);
  suite_add_tcase(s, a);
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
