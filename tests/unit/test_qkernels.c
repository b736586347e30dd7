/* Integer kernels (targets/qkernels.h): packing + packed reference against the definition for
 * every kernel family, then hand-built single-node integer graphs (gemm, matmul with constant
 * and run-time B, conv: dense, grouped, depthwise, 1-D, strided, dilated, residual, i32
 * accumulator output; i8 and u8 activations, zero and non-zero weight zero points) compiled
 * for each spec and compared bit for bit with the interpreter: JIT for what this host runs,
 * assembly inspection for the instruction each spec names (vpdpbusd without AVX-512 hosts).
 * LB_TEST_QUICK: 16 random nodes per spec instead of 48 (two of each kind's 8-case cycle). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qkernels.h"
#include "quant.h"
#include "spec.h"
#include "target.h"

#include "../quick.h"

static unsigned rng = 12345;
static unsigned rnd(void) {
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}
static int64_t pick(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (unsigned)(hi - lo + 1)); }

/* "avx2-pmaddubsw": the AVX2 spec with the sign-trick strategy for i8 conv and dense. */
static const char ubsw_yaml[] = "name: avx2-pmaddubsw\nextends: x86-64-avx2\nops:\n"
                                "  conv2d:\n    i8: {kernel: pmaddubsw}\n"
                                "  dense:\n    i8: {kernel: pmaddubsw}\n";

static lb_spec *load_spec(const char *name) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_spec *s = NULL;
  int rc = strcmp(name, "avx2-pmaddubsw")
               ? lb_spec_load(name, &s, &d)
               : lb_spec_load_buffer(ubsw_yaml, sizeof ubsw_yaml - 1, "ubsw.yaml", &s, &d);
  ck_assert_msg(rc == 0, "spec %s: %s", name, d.msg);
  return s;
}

/* ---- packing and the packed reference ------------------------------------------------------ */

static const char *kind_specs[LB_QK_COUNT] = {"x86-64-avx2",     "x86-64-avx512-vnni",
                                              "aarch64-neon",    "aarch64-dotprod",
                                              "aarch64-i8mm",    "avx2-pmaddubsw"};

static void fill8(void *p, lb_dtype t, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (t == LB_DTYPE_I8)
      ((int8_t *)p)[i] = (int8_t)(rnd() & 0xff);
    else
      ((uint8_t *)p)[i] = (uint8_t)(rnd() & 0xff);
}

/* Every (M, K, N) below, equal to and above the tiles, i8 and u8 activations with extreme zero
 * points: requantize(packed accumulators) equals the unpacked definition. _i == LB_QK_COUNT:
 * the wide AVX2 kernel with B stored as s8 (b8). */
START_TEST(test_pack_ref) {
  int b8 = _i == LB_QK_COUNT, kind = b8 ? LB_QK_PMADDWD : _i;
  lb_spec *spec = load_spec(kind_specs[kind]);
  lb_diag d;
  lb_diag_clear(&d);
  lb_qk_shape s;
  ck_assert_int_eq(lb_qk_choose(spec, kind == 1 ? LB_KERNEL_VPDPBUSD
                                      : kind == 3 ? LB_KERNEL_SDOT
                                      : kind == 4 ? LB_KERNEL_SMMLA
                                      : kind == 5 ? LB_KERNEL_PMADDUBSW
                                                  : LB_KERNEL_GENERIC,
                                2, &s, &d),
                   0);
  ck_assert_int_eq(s.kind, kind);
  s.b8 = b8;
  static const int64_t Ks[] = {1, 3, 4, 8, 9, 17}, Ns[] = {1, 5, 16, 17, 40};
  for (int t = 0; t < 24; t++) {
    int64_t M = pick(1, 9), K = Ks[t % 6], N = Ns[(t / 6 + t) % 5];
    lb_dtype act = t & 1 ? LB_DTYPE_U8 : LB_DTYPE_I8;
    int32_t zx = act == LB_DTYPE_U8 ? (int32_t)pick(0, 255) : (int32_t)pick(-128, 127);
    int8_t x[9 * 17];
    int16_t wp[17 * 40];
    int32_t bias[40], acc[9 * 40];
    float mult[40];
    uint8_t y[9 * 40], apk[9 * 24 * 2];
    fill8(x, act, M * K);
    for (int64_t i = 0; i < K * N; i++) wp[i] = (int16_t)((int)pick(0, 254) - 127);
    wp[0] = t % 3 ? 127 : -127; /* the extremes the sign trick must take */
    x[0] = (int8_t)(act == LB_DTYPE_I8 ? -128 : 0);
    for (int64_t i = 0; i < N; i++) bias[i] = (int32_t)pick(-5000, 5000), mult[i] = 0.003f;
    lb_qpacked p;
    ck_assert_int_eq(lb_qpack(&s, wp, K, N, bias, act, zx, &p), 0);
    ck_assert_int_eq(p.b_bytes, (size_t)(p.Kp * p.Np * (s.wide && !b8 ? 2 : 1)));
    for (int64_t m = 0; m < M; m++)
      for (int64_t k = 0; k < p.Kp; k++) {
        int32_t v = lb_qk_act_pack(&s, act, k < K ? (act == LB_DTYPE_I8 ? x[m * K + k]
                                                                        : ((uint8_t *)x)[m * K + k])
                                                  : zx,
                                   zx);
        if (s.wide)
          ((int16_t *)apk)[m * p.Kp + k] = (int16_t)v;
        else
          apk[m * p.Kp + k] = (uint8_t)v;
      }
    lb_qgemm_packed_ref(&s, &p, apk, M, acc);
    lb_qgemm_ref(x, act, zx, wp, bias, mult, M, K, N, 3, -128, 127, LB_DTYPE_I8, y);
    for (int64_t i = 0; i < M * N; i++)
      ck_assert_msg((int8_t)y[i] == lb_requantize(acc[i], 0.003f, 3, -128, 127),
                    "%s M=%lld K=%lld N=%lld element %lld", lb_qk_name(s.kind), (long long)M,
                    (long long)K, (long long)N, (long long)i);
    lb_qpacked_free(&p);
  }
  lb_spec_free(spec);
}
END_TEST

/* ---- hand-built integer graphs ------------------------------------------------------------ */

typedef struct qcase {
  int op; /* 0 gemm, 1 matmul const B, 2 matmul run-time B, 3 conv */
  lb_dtype act, out;
  int zw, res, act_fn, per_channel;
  int64_t M, K, N;                                   /* gemm/matmul */
  int64_t n, c, h, w, m, kh, kw, s, p, dil, group; /* conv; h = 0 means 1-D */
} qcase;

static void set_q(lb_graph *g, uint32_t v, uint32_t n, int axis, float s0, int32_t z0, int vary) {
  lb_quant *q = &g->values[v].q;
  q->n = n, q->axis = n > 1 ? axis : -1;
  q->scale = lb_arena_array(&g->arena, n, sizeof(float));
  q->zero_point = lb_arena_array(&g->arena, n, sizeof(int32_t));
  for (uint32_t i = 0; i < n; i++) {
    q->scale[i] = vary ? s0 * (float)(1 + (rnd() % 1000)) / 500.0f : s0;
    q->zero_point[i] = z0;
  }
}

static int32_t rand_zp(lb_dtype t) {
  return t == LB_DTYPE_U8 ? (int32_t)pick(0, 255) : t == LB_DTYPE_I8 ? (int32_t)pick(-128, 127) : 0;
}

static uint32_t act_value(lb_graph *g, const char *name, lb_dtype t, int rank, const int64_t *dims) {
  uint32_t v = lb_graph_add_value(g, name, t, rank, dims);
  set_q(g, v, 1, -1, 0.02f + (float)(rnd() % 100) / 2000.0f, rand_zp(t), 0);
  return v;
}

/* Weight constant [rows, cols] (quantized per row when per_channel) and an i32 bias. */
static uint32_t weight(lb_graph *g, const qcase *c, int rank, const int64_t *dims, int64_t ch) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  int8_t *w = malloc((size_t)n + 1);
  fill8(w, LB_DTYPE_I8, n);
  if (rnd() % 4) /* mostly the narrow range quantization produces; else -128 may occur too */
    for (int64_t i = 0; i < n; i++) w[i] = w[i] == -128 ? -127 : w[i];
  uint32_t v = lb_graph_add_const(g, "w", LB_DTYPE_I8, rank, dims, w, (size_t)n);
  free(w);
  set_q(g, v, c->per_channel ? (uint32_t)ch : 1, 0, 0.01f, 0, 1);
  if (c->zw) /* asymmetric weights: (w - zw) leaves s8, so the wide kernel must take them */
    for (uint32_t i = 0; i < g->values[v].q.n; i++)
      g->values[v].q.zero_point[i] = (int32_t)pick(-100, 100);
  return v;
}

static uint32_t bias_const(lb_graph *g, int64_t n) {
  int32_t *b = malloc((size_t)n * 4 + 4);
  for (int64_t i = 0; i < n; i++) b[i] = (int32_t)pick(-20000, 20000);
  uint32_t v = lb_graph_add_const(g, "b", LB_DTYPE_I32, 1, &n, b, (size_t)n * 4);
  free(b);
  set_q(g, v, 1, -1, 1e-4f, 0, 0);
  return v;
}

static void finish(lb_graph *g, lb_op op, uint32_t *in, uint32_t n_in, uint32_t y, const qcase *c,
                   const lb_attrs *at) {
  uint32_t k = lb_graph_add_node(g, op, "q", in, n_in, &y, 1);
  g->nodes[k].attr = *at;
  g->nodes[k].attr.act = (lb_act)c->act_fn;
  g->nodes[k].attr.act_min = -0.5f, g->nodes[k].attr.act_max = 0.7f;
  ck_assert_int_eq(lb_graph_add_output(g, y), 0);
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_graph_verify(g, &d) == 0, "%s", d.msg);
  ck_assert(lb_int_node(g, k));
}

static lb_graph *gemm_graph(const qcase *c) {
  lb_graph *g = lb_graph_new("q");
  int64_t ad[3] = {2, c->M, c->K}, yd[3] = {2, c->M, c->N}, wd[2] = {c->N, c->K};
  int rank = c->op == 0 ? 2 : 3;
  const int64_t *a_dims = rank == 2 ? ad + 1 : ad, *y_dims = rank == 2 ? yd + 1 : yd;
  uint32_t x = act_value(g, "x", c->act, rank, a_dims), in[4] = {x, 0, LB_NONE, LB_NONE};
  ck_assert_int_eq(lb_graph_add_input(g, x), 0);
  lb_attrs at = {.alpha = 1, .beta = 1, .trans_b = c->op == 0};
  if (c->op == 2) {
    int64_t bd[2] = {c->K, c->N};
    in[1] = act_value(g, "b", rnd() & 1 ? LB_DTYPE_U8 : LB_DTYPE_I8, 2, bd);
    ck_assert_int_eq(lb_graph_add_input(g, in[1]), 0);
  } else {
    int64_t kd[2] = {c->K, c->N};
    in[1] = weight(g, c, 2, c->op == 0 ? wd : kd, c->N);
    if (c->op == 1 && c->per_channel) g->values[in[1]].q.axis = 1;
  }
  uint32_t n_in = 2;
  if (c->op == 0) {
    in[2] = bias_const(g, c->N), n_in = 3;
    if (c->res) in[3] = act_value(g, "r", c->act, rank, y_dims), n_in = 4;
    if (c->res) ck_assert_int_eq(lb_graph_add_input(g, in[3]), 0);
  }
  uint32_t y = act_value(g, "y", c->out, rank, y_dims);
  finish(g, c->op == 0 ? LB_OP_GEMM : LB_OP_MATMUL, in, n_in, y, c, &at);
  return g;
}

static lb_graph *conv_graph(const qcase *c) {
  lb_graph *g = lb_graph_new("q");
  int two = c->h > 0, rank = two ? 4 : 3;
  int64_t ext = c->dil * (c->kh - 1) + 1, extw = c->dil * (c->kw - 1) + 1;
  int64_t oh = two ? (c->h + 2 * c->p - ext) / c->s + 1 : 1, ow = (c->w + 2 * c->p - extw) / c->s + 1;
  int64_t xd[4] = {c->n, c->c, c->h, c->w}, yd[4] = {c->n, c->m, oh, ow};
  int64_t wd[4] = {c->m, c->c / c->group, c->kh, c->kw};
  if (!two) xd[2] = c->w, yd[2] = ow, wd[2] = c->kw;
  uint32_t x = act_value(g, "x", c->act, rank, xd), in[4] = {x, 0, 0, LB_NONE};
  ck_assert_int_eq(lb_graph_add_input(g, x), 0);
  in[1] = weight(g, c, rank, wd, c->m);
  in[2] = bias_const(g, c->m);
  uint32_t n_in = 3;
  if (c->res) {
    in[3] = act_value(g, "r", c->act, rank, yd), n_in = 4;
    ck_assert_int_eq(lb_graph_add_input(g, in[3]), 0);
  }
  lb_attrs at = {.n_spatial = two ? 2 : 1, .group = c->group};
  for (int i = 0; i < 2; i++) at.strides[i] = c->s, at.dilations[i] = c->dil;
  for (int i = 0; i < 4; i++) at.pads[i] = c->p;
  at.kernel[0] = two ? c->kh : c->kw, at.kernel[1] = c->kw;
  uint32_t y = act_value(g, "y", c->out, rank, yd);
  finish(g, LB_OP_CONV, in, n_in, y, c, &at);
  return g;
}

/* A random case of the given op (edges: K and N around the tiles, odd channels, groups). */
static qcase random_case(int op) {
  qcase c = {.op = op};
  c.act = rnd() & 1 ? LB_DTYPE_U8 : LB_DTYPE_I8;
  int o = (int)(rnd() % 5);
  c.out = o == 0 ? LB_DTYPE_I32 : c.act; /* integer outputs keep the input's dtype */
  c.zw = rnd() % 4 == 0, c.per_channel = rnd() & 1, c.act_fn = (int)(rnd() % 3);
  c.res = op != 1 && op != 2 && rnd() % 3 == 0;
  c.M = pick(1, 13), c.K = pick(1, 40), c.N = pick(1, 40);
  c.n = pick(1, 2), c.h = rnd() % 4 ? pick(1, 9) : 0, c.w = pick(1, 9), c.kw = pick(1, 3);
  c.kh = c.h ? pick(1, 3) : 1, c.s = pick(1, 2), c.dil = pick(1, 2), c.p = pick(0, 2);
  int64_t gsel = (int64_t)(rnd() % 3), base = pick(1, 6);
  c.group = gsel == 0 ? 1 : gsel == 1 ? base : pick(1, 3);
  c.c = gsel == 1 ? base : c.group * pick(1, 4);
  c.m = gsel == 1 ? base : c.group * pick(1, 5);
  while ((c.h && c.dil * (c.kh - 1) + 1 > c.h + 2 * c.p) || c.dil * (c.kw - 1) + 1 > c.w + 2 * c.p)
    c.p++;
  return c;
}

static void random_tensor(const lb_value *v, lb_tensor *t) {
  *t = (lb_tensor){.dtype = v->dtype, .rank = v->rank};
  memcpy(t->dims, v->dims, sizeof t->dims);
  size_t nb = lb_dtype_bytes(v->dtype, lb_value_numel(v));
  t->data = malloc(nb + 1);
  fill8(t->data, LB_DTYPE_U8, (int64_t)nb);
}

/* Interpreter and JIT on the same random inputs: identical bytes. */
static void jit_vs_interp(lb_graph *g, lb_spec *spec, const char *what) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_tensor in[4], want[2], got[2];
  for (uint32_t i = 0; i < g->n_inputs; i++) random_tensor(&g->values[g->inputs[i]], &in[i]);
  ck_assert_msg(lb_interp_run(g, in, want, &d) == 0, "%s: %s", what, d.msg);
  lb_jit *j = NULL;
  ck_assert_msg(lb_jit_compile(g, spec, NULL, &j, &d) == 0, "%s: %s", what, d.msg);
  ck_assert_msg(lb_jit_run_tensors(j, g, in, got, &d) == 0, "%s: %s", what, d.msg);
  size_t nb = lb_dtype_bytes(want[0].dtype, lb_tensor_numel(&want[0]));
  for (size_t i = 0; i < nb; i++)
    ck_assert_msg(((uint8_t *)got[0].data)[i] == ((uint8_t *)want[0].data)[i],
                  "%s on %s: byte %zu: got %u, want %u", what, lb_spec_name(spec), i,
                  ((uint8_t *)got[0].data)[i], ((uint8_t *)want[0].data)[i]);
  lb_free(got[0].data), lb_free(want[0].data);
  for (uint32_t i = 0; i < g->n_inputs; i++) free(in[i].data);
  lb_jit_free(j);
}

static const char *jit_specs[] = {"x86-64-avx2", "x86-64-avx512-vnni", "avx2-pmaddubsw"};

/* 1 when this host runs spec's code (else prints why the JIT half is skipped). */
static int host_runs(lb_spec *spec) {
  lb_diag d;
  lb_diag_clear(&d);
  if (lb_target_host_check(spec, &d) == 0) return 1;
  printf("test_qkernels: skipping JIT runs for %s: %s\n", lb_spec_name(spec), d.msg);
  return 0;
}

static void describe(const qcase *c, char *buf, size_t n) {
  if (c->op == 3)
    snprintf(buf, n, "conv n%lld c%lld %lldx%lld m%lld k%lldx%lld s%lld p%lld d%lld g%lld %s->%s zw%d res%d act%d",
             (long long)c->n, (long long)c->c, (long long)c->h, (long long)c->w, (long long)c->m,
             (long long)c->kh, (long long)c->kw, (long long)c->s, (long long)c->p,
             (long long)c->dil, (long long)c->group, lb_dtype_name(c->act), lb_dtype_name(c->out),
             c->zw, c->res, c->act_fn);
  else
    snprintf(buf, n, "%s M%lld K%lld N%lld %s->%s zw%d res%d act%d pc%d",
             c->op == 0 ? "gemm" : c->op == 1 ? "matmul" : "matmul-rt", (long long)c->M,
             (long long)c->K, (long long)c->N, lb_dtype_name(c->act), lb_dtype_name(c->out), c->zw,
             c->res, c->act_fn, c->per_channel);
}

START_TEST(test_jit_random_nodes) {
  lb_spec *spec = load_spec(jit_specs[_i]);
  if (!host_runs(spec)) {
    lb_spec_free(spec);
    return;
  }
  rng = 777 + (unsigned)_i;
  for (int t = 0, n = lb_test_count(48, 16); t < n; t++) {
    qcase c = random_case(t % 4 == 3 || t % 8 == 1 ? 3 : t % 4);
    char what[256];
    describe(&c, what, sizeof what);
    lb_graph *g = c.op == 3 ? conv_graph(&c) : gemm_graph(&c);
    jit_vs_interp(g, spec, what);
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

/* Large enough for several row blocks, full and partial panels, NHWC depthwise vectors. */
START_TEST(test_jit_blocks) {
  lb_spec *spec = load_spec(jit_specs[_i]);
  if (!host_runs(spec)) {
    lb_spec_free(spec);
    return;
  }
  qcase cs[] = {
      {.op = 3, .act = LB_DTYPE_I8, .out = LB_DTYPE_I8, .n = 1, .c = 64, .h = 40, .w = 40,
       .m = 70, .kh = 3, .kw = 3, .s = 1, .p = 1, .dil = 1, .group = 1, .act_fn = 1},
      {.op = 3, .act = LB_DTYPE_U8, .out = LB_DTYPE_U8, .n = 2, .c = 37, .h = 15, .w = 17,
       .m = 37, .kh = 3, .kw = 3, .s = 2, .p = 1, .dil = 1, .group = 37, .res = 1},
      {.op = 0, .act = LB_DTYPE_I8, .out = LB_DTYPE_I8, .M = 300, .K = 700, .N = 45},
      {.op = 3, .act = LB_DTYPE_I8, .out = LB_DTYPE_I8, .n = 1, .c = 48, .h = 9, .w = 11,
       .m = 48, .kh = 3, .kw = 3, .s = 1, .p = 1, .dil = 2, .group = 48, .act_fn = 2},
      {.op = 3, .act = LB_DTYPE_U8, .out = LB_DTYPE_I32, .n = 1, .c = 24, .h = 8, .w = 7,
       .m = 24, .kh = 5, .kw = 5, .s = 2, .p = 2, .dil = 1, .group = 24},
      /* B above the L2 (1 MiB): next-panel prefetch, with i16 and (3 rows) s8 storage */
      {.op = 0, .act = LB_DTYPE_I8, .out = LB_DTYPE_I8, .M = 21, .K = 7000, .N = 70, .res = 1},
      {.op = 0, .act = LB_DTYPE_U8, .out = LB_DTYPE_U8, .M = 3, .K = 14001, .N = 70},
      {.op = 3, .act = LB_DTYPE_I8, .out = LB_DTYPE_I8, .n = 1, .c = 400, .h = 5, .w = 5,
       .m = 150, .kh = 3, .kw = 3, .s = 1, .p = 1, .dil = 1, .group = 1, .act_fn = 1},
  };
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    char what[256];
    describe(&cs[i], what, sizeof what);
    lb_graph *g = cs[i].op == 3 ? conv_graph(&cs[i]) : gemm_graph(&cs[i]);
    jit_vs_interp(g, spec, what);
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

/* Table activations, integer average pools (padded, count with and without the padding):
 * JIT against the interpreter on every input byte. */
START_TEST(test_jit_lut_and_pool) {
  lb_spec *spec = load_spec("x86-64-avx2");
  if (!host_runs(spec)) {
    lb_spec_free(spec);
    return;
  }
  static const lb_op ops[] = {LB_OP_LEAKY_RELU, LB_OP_SIGMOID, LB_OP_TANH, LB_OP_HARD_SIGMOID,
                              LB_OP_HARD_SWISH, LB_OP_AVG_POOL, LB_OP_AVG_POOL};
  rng = 4242;
  for (size_t i = 0; i < 2 * sizeof ops / sizeof ops[0]; i++) {
    lb_op op = ops[i / 2];
    lb_dtype t = i % 2 ? LB_DTYPE_U8 : LB_DTYPE_I8;
    lb_graph *g = lb_graph_new("q");
    int64_t xd[4] = {2, 5, 16, 16}, yd[4] = {2, 5, 16, 16};
    lb_attrs at = {.alpha = 0.1f, .beta = 0.5f, .n_spatial = 2};
    if (op == LB_OP_AVG_POOL) {
      for (int k = 0; k < 2; k++) at.kernel[k] = 3, at.strides[k] = 2, at.dilations[k] = 1;
      for (int k = 0; k < 4; k++) at.pads[k] = 1;
      at.count_include_pad = (int)(i / 2) % 2;
      yd[2] = yd[3] = 8;
    }
    uint32_t x = act_value(g, "x", t, 4, xd);
    ck_assert_int_eq(lb_graph_add_input(g, x), 0);
    uint32_t y = act_value(g, "y", t, 4, yd);
    qcase c = {0};
    finish(g, op, &x, 1, y, &c, &at);
    jit_vs_interp(g, spec, lb_op_get(op)->name);
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

/* ---- the instructions each spec asks for, in the emitted assembly -------------------------- */

static char *emit_asm(lb_graph *g, lb_spec *spec) {
  char path[] = "/tmp/lb_qk_asm_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_target_emit(g, spec, NULL, LB_EMIT_ASM, path, NULL, &d) == 0, "%s", d.msg);
  close(fd); /* the emitter renames a new file over path: read it by name */
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
  s[n] = 0;
  fclose(f);
  unlink(path);
  return s;
}

static const struct {
  const char *spec, *want, *want2, *never;
} asm_cases[] = {
    {"x86-64-avx2", "vpmaddwd", "vcvtps2dq", "vpmaddubsw"},
    {"avx2-pmaddubsw", "vpmaddubsw", "vpsignb", "vpdpbusd"},
    {"x86-64-avx512-vnni", "vpdpbusd", "zmm", "vpmaddubsw"},
    {"x86-64-zen5", "vpdpbusd", "zmm", "vpmaddubsw"},
    {"aarch64-neon", "smlal", "fcvtns", "sdot"},
    {"aarch64-dotprod", "sdot", "fcvtns", "smmla"},
    {"aarch64-i8mm", "smmla", "fcvtns", "sdot"},
};

START_TEST(test_asm) {
  lb_spec *spec = load_spec(asm_cases[_i].spec);
  qcase c = {.op = 3, .act = LB_DTYPE_I8, .out = LB_DTYPE_I8, .n = 1, .c = 16, .h = 6, .w = 6,
             .m = 32, .kh = 3, .kw = 3, .s = 1, .p = 1, .dil = 1, .group = 1};
  lb_graph *g = conv_graph(&c);
  lb_value *w = &g->values[g->nodes[0].in[1]];
  for (size_t i = 0; i < w->nbytes; i++) /* narrow range, as the quantizer makes it */
    if (((int8_t *)w->data)[i] == -128) ((int8_t *)w->data)[i] = -127;
  char *s = emit_asm(g, spec);
  if (getenv("LB_QK_ASM")) fputs(s, stderr);
  ck_assert_msg(strstr(s, asm_cases[_i].want), "%s: no %s", asm_cases[_i].spec, asm_cases[_i].want);
  ck_assert_msg(strstr(s, asm_cases[_i].want2), "%s: no %s", asm_cases[_i].spec,
                asm_cases[_i].want2);
  ck_assert_msg(!strstr(s, asm_cases[_i].never), "%s: %s", asm_cases[_i].spec,
                asm_cases[_i].never);
  free(s);
  lb_graph_free(g);
  lb_spec_free(spec);
}
END_TEST

/* Weights whose zero point pushes (w - zw) out of s8 fall back to the wide family. */
START_TEST(test_asm_wide_fallback) {
  lb_spec *spec = load_spec("aarch64-dotprod");
  qcase c = {.op = 0, .act = LB_DTYPE_I8, .out = LB_DTYPE_I8, .M = 4, .K = 32, .N = 16, .zw = 1};
  rng = 99;
  lb_graph *g = gemm_graph(&c);
  uint32_t w = g->nodes[0].in[1];
  g->values[w].q.zero_point[0] = -100;
  ((int8_t *)g->values[w].data)[0] = 100; /* 100 - (-100) = 200 */
  char *s = emit_asm(g, spec);
  ck_assert(strstr(s, "smlal") || strstr(s, "smull"));
  ck_assert(!strstr(s, "sdot"));
  free(s);
  lb_graph_free(g);
  lb_spec_free(spec);
}
END_TEST

/* Few rows and a B above the L2 on AVX2: s8 weights widened in the kernel (vpmovsxbw) and the
 * next panel prefetched. */
START_TEST(test_asm_b8_prefetch) {
  lb_spec *spec = load_spec("x86-64-avx2");
  qcase c = {.op = 0, .act = LB_DTYPE_I8, .out = LB_DTYPE_I8, .M = 2, .K = 24000, .N = 48};
  rng = 5;
  lb_graph *g = gemm_graph(&c);
  char *s = emit_asm(g, spec);
  ck_assert(strstr(s, "vpmovsxbw"));
  ck_assert(strstr(s, "prefetcht1"));
  free(s);
  lb_graph_free(g);
  lb_spec_free(spec);
}
END_TEST

/* lb_qgemm_nosat at its 2^30 edge: |bias| + 255 * sum |w'| of the worst column, times m, plus
 * 255 * |mr|. */
START_TEST(test_nosat_bound) {
  const int16_t wp[4] = {127, 3, -127, -2}; /* K = 2, N = 2: column 0 sums 254 */
  const int32_t bias[2] = {-1000, 7};
  double a0 = 1000.0 + 255.0 * 254.0, edge = 1073741824.0 / a0;
  float below[2] = {(float)(edge * 0.999), 1.0f}, above[2] = {(float)(edge * 1.001), 1.0f};
  ck_assert_int_eq(lb_qgemm_nosat(wp, 2, 2, bias, below, 0.0f), 1);
  ck_assert_int_eq(lb_qgemm_nosat(wp, 2, 2, bias, above, 0.0f), 0);
  ck_assert_int_eq(lb_qgemm_nosat(wp, 2, 2, NULL, above, 0.0f), 1); /* no bias: 64770 m */
  ck_assert_int_eq(lb_qgemm_nosat(wp, 2, 2, bias, below, 1e7f), 0); /* the residual term */
}
END_TEST

/* AVX2 1x1 conv with the fp32 method: full tiles requantize through the packs (no float
 * clamp) when the bound holds; a huge multiplier keeps the clamped float path. JIT == interp
 * for both. */
START_TEST(test_asm_packs) {
  lb_spec *spec = load_spec("x86-64-avx2");
  qcase c = {.op = 3, .act = LB_DTYPE_U8, .out = LB_DTYPE_U8, .n = 1, .c = 24, .h = 9, .w = 9,
             .m = 48, .kh = 1, .kw = 1, .s = 1, .p = 0, .dil = 1, .group = 1, .act_fn = 2,
             .res = _i == 1};
  rng = 11 + (unsigned)_i;
  for (int huge = 0; huge < 2; huge++) {
    lb_graph *g = conv_graph(&c);
    if (huge) g->values[g->nodes[0].out[0]].q.scale[0] = 1e-9f;
    char *s = emit_asm(g, spec);
    ck_assert_msg((strstr(s, "vpackssdw") != NULL) == !huge, "huge %d: vpackssdw", huge);
    ck_assert_msg((strstr(s, "vmaxps") != NULL) == huge, "huge %d: vmaxps", huge);
    free(s);
    if (host_runs(spec)) jit_vs_interp(g, spec, huge ? "packs: huge m" : "packs");
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("qkernels");
  TCase *t = tcase_create("core");
  tcase_set_timeout(t, 120);
  tcase_add_loop_test(t, test_pack_ref, 0, LB_QK_COUNT + 1);
  tcase_add_loop_test(t, test_jit_random_nodes, 0, 3);
  tcase_add_loop_test(t, test_jit_blocks, 0, 3);
  tcase_add_test(t, test_jit_lut_and_pool);
  tcase_add_loop_test(t, test_asm, 0, (int)(sizeof asm_cases / sizeof asm_cases[0]));
  tcase_add_test(t, test_asm_wide_fallback);
  tcase_add_test(t, test_asm_b8_prefetch);
  tcase_add_test(t, test_nosat_bound);
  tcase_add_loop_test(t, test_asm_packs, 0, 2);
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
