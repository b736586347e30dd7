/* Tests of the LLVM backend (targets/): the workspace planner against hand-computed layouts;
 * JIT output against the reference interpreter on every model in tests/models and against
 * ONNX's expected outputs on node tests covering every op; AOT objects linked into
 * tests/aot/harness.c with gcc (x86-64) or aarch64-linux-gnu-gcc + qemu (AArch64 specs);
 * refusal of specs the host cannot run; no output left behind on failure. */
#include <check.h>
#include <dirent.h>
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "onnx.h"
#include "passes.h"
#include "spec.h"
#include "target.h"
#include "tensor_io.h"

#include "../aot.h"
#include "../check_main.h"
#include "../digits.h"
#include "../quick.h"

#define NODE_DIR "/usr/share/libonnx-testdata/data/node"

/* ---- helpers ------------------------------------------------------------------------------ */

static double to_d(const lb_tensor *t, int64_t i) {
  switch (t->dtype) {
  case LB_DTYPE_F32: return ((const float *)t->data)[i];
  case LB_DTYPE_F64: return ((const double *)t->data)[i];
  case LB_DTYPE_I64: return (double)((const int64_t *)t->data)[i];
  case LB_DTYPE_I32: return ((const int32_t *)t->data)[i];
  case LB_DTYPE_I8: return ((const int8_t *)t->data)[i];
  case LB_DTYPE_U8: return ((const uint8_t *)t->data)[i];
  default: ck_abort_msg("dtype %s in a comparison", lb_dtype_name(t->dtype));
  }
  return 0;
}

/* |got - want| <= rtol * max(1, max |want|) elementwise (exact for integer dtypes). */
static void expect_close(const lb_tensor *got, const lb_tensor *want, double rtol,
                         const char *what) {
  ck_assert_msg(got->dtype == want->dtype, "%s: dtype %s vs %s", what, lb_dtype_name(got->dtype),
                lb_dtype_name(want->dtype));
  int64_t n = lb_tensor_numel(want);
  ck_assert_msg(lb_tensor_numel(got) == n, "%s: %lld vs %lld elements", what,
                (long long)lb_tensor_numel(got), (long long)n);
  double scale = 1;
  for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(to_d(want, i)));
  double tol = lb_dtype_is_float(want->dtype) ? rtol * scale : 0;
  for (int64_t i = 0; i < n; i++) {
    double g = to_d(got, i), w = to_d(want, i);
    ck_assert_msg(fabs(g - w) <= tol || (isnan(g) && isnan(w)),
                  "%s: element %lld: got %.9g, want %.9g", what, (long long)i, g, w);
  }
}

/* Deterministic inputs in [0, 1) for every graph input (f32 only: the models take images). */
static void random_inputs(const lb_graph *g, lb_tensor *in, unsigned seed) {
  for (uint32_t i = 0; i < g->n_inputs; i++) {
    const lb_value *v = &g->values[g->inputs[i]];
    ck_assert_int_eq(v->dtype, LB_DTYPE_F32);
    in[i] = (lb_tensor){.dtype = v->dtype, .rank = v->rank};
    memcpy(in[i].dims, v->dims, sizeof in[i].dims);
    int64_t n = lb_value_numel(v);
    float *p = malloc((size_t)n * sizeof *p + 1);
    for (int64_t k = 0; k < n; k++) {
      seed = seed * 1103515245u + 12345u;
      p[k] = (float)((seed >> 8) & 0xffff) / 65536.0f;
    }
    in[i].data = p;
  }
}

static lb_graph *load_model(const char *path) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_graph *g = NULL;
  ck_assert_msg(lb_onnx_load(path, &g, &d) == 0, "%s", d.msg);
  return g;
}

/* tests/models/STEM.onnx as imported (the reference for the prepared copy, load_prepared). */
static lb_graph *load_imported(const char *stem) {
  char path[512];
  snprintf(path, sizeof path, LB_TEST_MODELS "%s.onnx", stem);
  return load_model(path);
}

/* g after shape inference (asserted to succeed). */
static lb_graph *inferred(lb_graph *g) {
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_infer_shapes(g, &d) == 0, "%s", d.msg);
  return g;
}

/* A 2-D window: kernel k, stride s, dilation 1, pads lo before and hi after each axis. */
static void window2d(lb_attrs *a, int64_t k, int64_t s, int64_t lo, int64_t hi) {
  a->n_spatial = 2;
  for (int i = 0; i < 2; i++) {
    a->kernel[i] = k, a->strides[i] = s, a->dilations[i] = 1;
    a->pads[i] = lo, a->pads[2 + i] = hi;
  }
}

/* Runs j (compiled from g) on in and compares every output with want[] (lb_free'd here). */
static void jit_expect(lb_jit *j, const lb_graph *g, const lb_tensor *in, lb_tensor *want,
                       double rtol, const char *what) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_tensor got[8];
  ck_assert_uint_le(g->n_outputs, 8);
  ck_assert_msg(lb_jit_run_tensors(j, g, in, got, &d) == 0, "%s: %s", what, d.msg);
  for (uint32_t o = 0; o < g->n_outputs; o++) {
    expect_close(&got[o], &want[o], rtol, what);
    lb_free(got[o].data), lb_free(want[o].data);
  }
}

/* ---- memory planner ----------------------------------------------------------------------- */

START_TEST(test_memplan_reuse) {
  /* a chain a->b->c->d: a and c can share, b and d can share */
  lb_mem_req r[4] = {{.size = 100, .first = 0, .last = 1},
                     {.size = 200, .first = 1, .last = 2},
                     {.size = 100, .first = 2, .last = 3},
                     {.size = 50, .first = 3, .last = 3}};
  size_t total = 0;
  ck_assert_int_eq(lb_memplan(r, 4, 64, &total), 0);
  /* b (largest) at 0; a at 256 (after b rounded up); c overlaps b and d only: 256; d at 0 */
  ck_assert_uint_eq(r[1].offset, 0);
  ck_assert_uint_eq(r[0].offset, 256);
  ck_assert_uint_eq(r[2].offset, 256);
  ck_assert_uint_eq(r[3].offset, 0);
  ck_assert_uint_eq(total, 384);
}
END_TEST

START_TEST(test_memplan_disjoint) {
  /* pseudo-random lifetimes: every overlapping pair must be disjoint in memory */
  lb_mem_req r[40];
  unsigned s = 7;
  for (int i = 0; i < 40; i++) {
    s = s * 1103515245u + 12345u;
    int a = (int)(s >> 16) % 30, b = a + (int)((s >> 8) % 6);
    r[i] = (lb_mem_req){.size = 1 + (s >> 4) % 1000, .first = a, .last = b};
  }
  size_t total = 0;
  ck_assert_int_eq(lb_memplan(r, 40, 16, &total), 0);
  for (int i = 0; i < 40; i++) {
    ck_assert_uint_eq(r[i].offset % 16, 0);
    ck_assert(r[i].offset + r[i].size <= total);
    for (int j = 0; j < i; j++)
      if (r[i].first <= r[j].last && r[j].first <= r[i].last)
        ck_assert(r[i].offset + r[i].size <= r[j].offset || r[j].offset + r[j].size <= r[i].offset);
  }
}
END_TEST

/* ---- JIT against the interpreter on the digits models ------------------------------------- */

static const char *models[] = {"digits_mlp", "digits_cnn", "digits_resnet"};

START_TEST(test_models_jit) {
  lb_graph *ref = load_imported(models[_i]), *g = load_prepared(models[_i]);
  lb_diag d;
  lb_diag_clear(&d);
  lb_spec *spec = load_spec("host");
  lb_jit *j = NULL;
  ck_assert_msg(lb_jit_compile(g, spec, NULL, &j, &d) == 0, "%s: %s", models[_i], d.msg);
  for (unsigned sample = 0; sample < 3; sample++) {
    lb_tensor in[4], want[4];
    random_inputs(ref, in, 1234 + sample);
    ck_assert_msg(lb_interp_run(ref, in, want, &d) == 0, "%s", d.msg);
    jit_expect(j, g, in, want, 1e-4, models[_i]);
    for (uint32_t i = 0; i < g->n_inputs; i++) free(in[i].data);
  }
  lb_jit_free(j);
  lb_spec_free(spec);
  lb_graph_free(g), lb_graph_free(ref);
}
END_TEST

/* ---- JIT against ONNX's expected outputs (node tests: every op, generic paths) ------------ */

static const char *node_tests[] = {
    "test_add_bcast",
    "test_sub_bcast",
    "test_mul_bcast",
    "test_div_bcast",
    "test_relu",
    "test_leakyrelu",
    "test_sigmoid",
    "test_tanh",
    "test_hardswish",
    "test_softmax_axis_0",
    "test_softmax_axis_1",
    "test_softmax_axis_2",
    "test_softmax_large_number",
    "test_maxpool_2d_pads",
    "test_maxpool_2d_ceil",
    "test_maxpool_2d_dilations",
    "test_maxpool_2d_strides",
    "test_maxpool_1d_default",
    "test_maxpool_3d_default",
    "test_averagepool_2d_pads",
    "test_averagepool_2d_pads_count_include_pad",
    "test_averagepool_2d_ceil",
    "test_averagepool_2d_strides",
    "test_averagepool_3d_default",
    "test_batchnorm_example",
    "test_batchnorm_epsilon",
    "test_concat_3d_axis_1",
    "test_concat_2d_axis_negative_1",
    "test_flatten_axis2",
    "test_transpose_all_permutations_3",
    "test_transpose_default",
    "test_gather_0",
    "test_gather_1",
    "test_gather_negative_indices",
    "test_identity",
    "test_shape",
    "test_shape_start_1_end_negative_1",
    "test_reduce_mean_keepdims_random",
    "test_reduce_mean_do_not_keepdims_random",
    "test_reduce_mean_default_axes_keepdims_random",
    "test_quantizelinear",
    "test_quantizelinear_axis",
    "test_dequantizelinear",
    "test_dequantizelinear_axis",
    "test_conv_with_strides_padding",
    "test_conv_with_strides_and_asymmetric_padding",
    "test_conv_with_autopad_same",
    "test_gemm_all_attributes",
    "test_gemm_transposeA",
    "test_gemm_default_scalar_bias",
    "test_gemm_default_matrix_bias",
    "test_matmul_2d",
    "test_matmul_3d",
    "test_matmul_4d",
};

static int load_pb(const char *dir, const char *kind, int i, lb_tensor *t) {
  char path[600];
  snprintf(path, sizeof path, "%s/test_data_set_0/%s_%d.pb", dir, kind, i);
  if (access(path, R_OK) != 0) return 0;
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_onnx_load_tensor(path, t, &d) == 0, "%s", d.msg);
  return 1;
}

START_TEST(test_node_jit) {
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s/%s", NODE_DIR, node_tests[_i]);
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  lb_graph *g = load_model(path);
  lb_spec *spec = load_spec("host");
  lb_diag d;
  lb_diag_clear(&d);
  lb_jit *j = NULL;
  ck_assert_msg(lb_jit_compile(g, spec, NULL, &j, &d) == 0, "%s: %s", node_tests[_i], d.msg);
  lb_tensor in[8], want[8];
  for (uint32_t i = 0; i < g->n_inputs; i++) ck_assert(load_pb(dir, "input", (int)i, &in[i]));
  for (uint32_t o = 0; o < g->n_outputs; o++) ck_assert(load_pb(dir, "output", (int)o, &want[o]));
  jit_expect(j, g, in, want, 1e-4, node_tests[_i]);
  for (uint32_t i = 0; i < g->n_inputs; i++) lb_free(in[i].data);
  lb_jit_free(j);
  lb_spec_free(spec);
  lb_graph_free(g);
}
END_TEST

/* ---- JIT against the interpreter on small graphs built here (ops whose ONNX node tests
 * feed attributes as run-time inputs, and the NHWC/NCHW layout machinery) -------------- */

/* Runs g through JIT (after the fp32 passes on a second copy when fuse is set) and the
 * interpreter on inputs in [-1, 1) and compares. */
static void jit_vs_interp(lb_graph *g, const char *what) {
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_graph_verify(g, &d) == 0, "%s: %s", what, d.msg);
  lb_spec *spec = load_spec("host");
  lb_jit *j = NULL;
  ck_assert_msg(lb_jit_compile(g, spec, NULL, &j, &d) == 0, "%s: %s", what, d.msg);
  lb_tensor in[4], want[4];
  random_inputs(g, in, 77);
  for (uint32_t i = 0; i < g->n_inputs; i++)
    for (int64_t k = 0; k < lb_tensor_numel(&in[i]); k++)
      ((float *)in[i].data)[k] = 2 * ((float *)in[i].data)[k] - 1;
  ck_assert_msg(lb_interp_run(g, in, want, &d) == 0, "%s: %s", what, d.msg);
  jit_expect(j, g, in, want, 1e-5, what);
  for (uint32_t i = 0; i < g->n_inputs; i++) free(in[i].data);
  lb_jit_free(j);
  lb_spec_free(spec);
}

/* x[dims] -> op -> y (output dims preset for reshape-like ops, else inferred). */
static lb_graph *unary_graph(lb_op op, int rank, const int64_t *dims, const lb_attrs *at,
                             int out_rank, const int64_t *out_dims) {
  lb_graph *g = lb_graph_new("t");
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, rank, dims);
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, out_rank, out_dims ? out_dims : dims);
  uint32_t n = lb_graph_add_node(g, op, "n", &x, 1, &y, 1);
  g->nodes[n].attr = *at;
  lb_graph_add_input(g, x);
  lb_graph_add_output(g, y);
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_infer_node(g, n, &d) == 0, "%s", d.msg);
  return g;
}

START_TEST(test_unary_ops) {
  int64_t dims[4] = {2, 3, 5, 7}, flat[2] = {6, 35}, sq[3] = {3, 5, 7}, usq[5] = {2, 3, 1, 5, 7};
  lb_attrs a = {0};
  struct {
    lb_op op;
    int out_rank;
    const int64_t *out;
    const char *what;
  } cases[] = {
      {LB_OP_CLIP, 4, NULL, "clip"},
      {LB_OP_HARD_SIGMOID, 4, NULL, "hard_sigmoid"},
      {LB_OP_GLOBAL_AVG_POOL, 4, NULL, "global_avg_pool"},
      {LB_OP_RESHAPE, 2, flat, "reshape"},
      {LB_OP_FLATTEN, 2, flat, "flatten"},
      {LB_OP_UNSQUEEZE, 5, usq, "unsqueeze"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset(&a, 0, sizeof a);
    a.clip_min = -0.3f, a.clip_max = 0.6f, a.alpha = 0.4f, a.beta = 0.3f, a.axis = 2;
    if (cases[i].op == LB_OP_UNSQUEEZE) a.n_axes = 1, a.axes[0] = 2;
    lb_graph *g = unary_graph(cases[i].op, 4, dims, &a, cases[i].out_rank, cases[i].out);
    jit_vs_interp(g, cases[i].what);
    lb_graph_free(g);
  }
  int64_t d1[4] = {1, 3, 5, 7};
  memset(&a, 0, sizeof a);
  lb_graph *g = unary_graph(LB_OP_SQUEEZE, 4, d1, &a, 3, sq);
  jit_vs_interp(g, "squeeze");
  lb_graph_free(g);
}
END_TEST

START_TEST(test_pad_modes) {
  int64_t dims[4] = {1, 2, 4, 5};
  for (int mode = 0; mode < 3; mode++) {
    lb_attrs a = {0};
    a.pad_mode = (lb_pad_mode)mode, a.pad_value = 0.25f;
    int64_t pads[8] = {0, 1, 2, 1, 0, 0, 3, 2};
    if (mode == LB_PAD_CONSTANT) pads[2] = -1, pads[7] = -2; /* cropping */
    memcpy(a.pads, pads, sizeof pads);
    lb_graph *g = unary_graph(LB_OP_PAD, 4, dims, &a, 4, dims);
    jit_vs_interp(g, mode == 0 ? "pad constant" : mode == 1 ? "pad reflect" : "pad edge");
    lb_graph_free(g);
  }
}
END_TEST

/* conv (kernel path, NHWC out) + residual from an NCHW input, a relu, a transpose (needs NCHW)
 * and a concat of NHWC with NCHW data: every layout conversion the planner makes. */
static lb_graph *layouts_graph(void) {
  lb_graph *g = lb_graph_new("layouts");
  int64_t xd[4] = {1, 3, 6, 5}, wd[4] = {4, 3, 3, 3}, yd[4] = {1, 4, 6, 5}, pd[4] = {1, 5, 6, 4};
  float w[108], bias[4];
  for (int i = 0; i < 108; i++) w[i] = (float)((i * 37) % 11 - 5) / 7.0f;
  for (int i = 0; i < 4; i++) bias[i] = 0.1f * (float)i;
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 4, xd);
  uint32_t r = lb_graph_add_value(g, "r", LB_DTYPE_F32, 4, yd);
  uint32_t wv = lb_graph_add_const(g, "w", LB_DTYPE_F32, 4, wd, w, sizeof w);
  int64_t bd[1] = {4};
  uint32_t bv = lb_graph_add_const(g, "b", LB_DTYPE_F32, 1, bd, bias, sizeof bias);
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, 4, yd);
  uint32_t z = lb_graph_add_value(g, "z", LB_DTYPE_F32, 4, yd);
  uint32_t t = lb_graph_add_value(g, "t", LB_DTYPE_F32, 4, pd);
  uint32_t c = lb_graph_add_value(g, "c", LB_DTYPE_F32, 4, yd);
  uint32_t cin[4] = {x, wv, bv, r}, cat[2] = {z, r};
  uint32_t n0 = lb_graph_add_node(g, LB_OP_CONV, "conv", cin, 4, &y, 1);
  window2d(&g->nodes[n0].attr, 3, 1, 1, 1);
  g->nodes[n0].attr.group = 1, g->nodes[n0].attr.act = LB_ACT_RELU;
  lb_graph_add_node(g, LB_OP_RELU, "relu", &y, 1, &z, 1);
  uint32_t n2 = lb_graph_add_node(g, LB_OP_TRANSPOSE, "tr", &z, 1, &t, 1);
  g->nodes[n2].attr.n_axes = 4;
  int64_t perm[4] = {0, 3, 2, 1};
  memcpy(g->nodes[n2].attr.axes, perm, sizeof perm);
  uint32_t n3 = lb_graph_add_node(g, LB_OP_CONCAT, "cat", cat, 2, &c, 1);
  g->nodes[n3].attr.axis = 1;
  lb_graph_add_input(g, x), lb_graph_add_input(g, r);
  lb_graph_add_output(g, t), lb_graph_add_output(g, c), lb_graph_add_output(g, z);
  return inferred(g);
}

/* Pooling on NHWC data with channels that are not a multiple of the vector width (vector
 * body plus scalar tail): conv (37 channels) -> max pool -> avg pool -> global avg pool. */
static lb_graph *pools_graph(void) {
  lb_graph *g = lb_graph_new("pools");
  int64_t xd[4] = {1, 3, 11, 10}, wd[4] = {37, 3, 3, 3}, yd[4] = {1, 37, 11, 10};
  float w[999];
  for (int i = 0; i < 999; i++) w[i] = (float)((i * 31) % 17 - 8) / 11.0f;
  /* a name that must be escaped in the generated header's string literal */
  uint32_t x = lb_graph_add_value(g, "x \"in\"\\\t1", LB_DTYPE_F32, 4, xd);
  uint32_t wv = lb_graph_add_const(g, "w", LB_DTYPE_F32, 4, wd, w, sizeof w);
  uint32_t v[4];
  const char *names[4] = {"conv", "max", "avg", "gap"};
  for (int i = 0; i < 4; i++) v[i] = lb_graph_add_value(g, names[i], LB_DTYPE_F32, 4, yd);
  uint32_t cin[2] = {x, wv};
  uint32_t id = lb_graph_add_node(g, LB_OP_CONV, "conv", cin, 2, &v[0], 1);
  window2d(&g->nodes[id].attr, 3, 1, 1, 1);
  g->nodes[id].attr.group = 1;
  id = lb_graph_add_node(g, LB_OP_MAX_POOL, "max", &v[0], 1, &v[1], 1);
  window2d(&g->nodes[id].attr, 3, 2, 1, 1);
  id = lb_graph_add_node(g, LB_OP_AVG_POOL, "avg", &v[1], 1, &v[2], 1);
  window2d(&g->nodes[id].attr, 2, 1, 0, 1);
  g->nodes[id].attr.count_include_pad = 0;
  lb_graph_add_node(g, LB_OP_GLOBAL_AVG_POOL, "gap", &v[2], 1, &v[3], 1);
  lb_graph_add_input(g, x);
  lb_graph_add_output(g, v[1]), lb_graph_add_output(g, v[2]), lb_graph_add_output(g, v[3]);
  return inferred(g);
}

/* The graphs built above, for the JIT here and the AArch64 AOT below. */
static const struct {
  lb_graph *(*build)(void);
  const char *what;
} built[] = {{layouts_graph, "layouts"}, {pools_graph, "pools"}};

START_TEST(test_built_graphs) {
  lb_graph *g = built[_i].build();
  jit_vs_interp(g, built[_i].what);
  lb_graph_free(g);
}
END_TEST

static const struct {
  int ns;
  int64_t x[5], w[5], group, stride, dil, pad;
} conv_cases[] = {
    {2, {1, 4, 7, 6}, {6, 2, 3, 3}, 2, 1, 1, 1}, {2, {1, 3, 6, 6}, {6, 1, 3, 3}, 3, 2, 1, 1},
    {1, {2, 3, 9}, {4, 3, 3}, 1, 2, 1, 1},       {3, {1, 2, 4, 4, 4}, {3, 2, 2, 2, 2}, 1, 1, 1, 0},
    {2, {1, 8, 9, 9}, {8, 1, 3, 3}, 8, 2, 1, 1}, {2, {1, 5, 9, 8}, {7, 5, 3, 3}, 1, 1, 2, 2},
};
#define N_CONV_CASES (sizeof conv_cases / sizeof conv_cases[0])

static lb_graph *conv_graph(size_t c) {
  int rank = conv_cases[c].ns + 2;
  lb_graph *g = lb_graph_new("conv");
  int64_t nw = 1, bd[1] = {conv_cases[c].w[0]};
  for (int d = 0; d < rank; d++) nw *= conv_cases[c].w[d];
  float *w = malloc((size_t)nw * sizeof *w), b[16];
  for (int64_t i = 0; i < nw; i++) w[i] = (float)((i * 29) % 13 - 6) / 9.0f;
  for (int i = 0; i < 16; i++) b[i] = 0.05f * (float)(i - 3);
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, rank, conv_cases[c].x);
  uint32_t wv = lb_graph_add_const(g, "w", LB_DTYPE_F32, rank, conv_cases[c].w, w, (size_t)nw * 4);
  uint32_t bv = lb_graph_add_const(g, "b", LB_DTYPE_F32, 1, bd, b, (size_t)bd[0] * 4);
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, rank, conv_cases[c].x);
  uint32_t in[3] = {x, wv, bv};
  uint32_t n = lb_graph_add_node(g, LB_OP_CONV, "conv", in, 3, &y, 1);
  lb_attrs *a = &g->nodes[n].attr;
  a->n_spatial = conv_cases[c].ns, a->group = conv_cases[c].group;
  a->act = LB_ACT_CLIP, a->act_min = -0.5f, a->act_max = 0.8f;
  for (int k = 0; k < conv_cases[c].ns; k++) {
    a->kernel[k] = conv_cases[c].w[2 + k], a->strides[k] = conv_cases[c].stride;
    a->dilations[k] = conv_cases[c].dil,
    a->pads[k] = a->pads[conv_cases[c].ns + k] = conv_cases[c].pad;
  }
  lb_graph_add_input(g, x), lb_graph_add_output(g, y);
  free(w);
  return inferred(g);
}

/* Convolutions off the kernel path (grouped, depthwise with multiplier 2, 1-D, 3-D) and on it
 * (depthwise, strided/dilated), each with bias and a fused clip. */
START_TEST(test_conv_variants) {
  for (size_t c = 0; c < N_CONV_CASES; c++) {
    lb_graph *g = conv_graph(c);
    char what[64];
    snprintf(what, sizeof what, "conv case %zu", c);
    jit_vs_interp(g, what);
    lb_graph_free(g);
  }
}
END_TEST

/* MatMul of two run-time tensors with batch broadcasting (the GEMM kernel with a row-major
 * run-time B, once per batch index) and with a 2-D B (batch folded into M). */
START_TEST(test_matmul_runtime) {
  static const int64_t shapes[][3][4] = {
      {{2, 1, 3, 5}, {4, 5, 6}, {2, 4, 3, 6}},
      {{2, 3, 5}, {5, 7}, {2, 3, 7}},
      {{3, 1, 37}, {3, 37, 33}, {3, 1, 33}},
  };
  static const int ranks[][3] = {{4, 3, 4}, {3, 2, 3}, {3, 3, 3}};
  for (int c = 0; c < 3; c++) {
    lb_graph *g = lb_graph_new("mm");
    uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, ranks[c][0], shapes[c][0]);
    uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, ranks[c][1], shapes[c][1]);
    uint32_t z = lb_graph_add_value(g, "z", LB_DTYPE_F32, ranks[c][2], shapes[c][2]);
    uint32_t in[2] = {x, y};
    uint32_t n = lb_graph_add_node(g, LB_OP_MATMUL, "mm", in, 2, &z, 1);
    if (c == 2) g->nodes[n].attr.act = LB_ACT_RELU;
    lb_graph_add_input(g, x), lb_graph_add_input(g, y), lb_graph_add_output(g, z);
    jit_vs_interp(inferred(g), "matmul");
    lb_graph_free(g);
  }
}
END_TEST

START_TEST(test_jit_refuses_foreign_spec) {
  lb_graph *g = load_imported("digits_mlp");
  lb_spec *spec = load_spec("aarch64-neon");
  lb_diag d;
  lb_diag_clear(&d);
  lb_jit *j = NULL;
  ck_assert_int_eq(lb_jit_compile(g, spec, NULL, &j, &d), LB_ERR_INPUT);
  ck_assert_ptr_null(j);
  ck_assert_msg(strstr(d.msg, "aarch64") != NULL, "%s", d.msg);
  lb_spec_free(spec);
  /* same architecture, a feature this host lacks: the first of these that LLVM does not list
   * for it (AMX is absent on AMD CPUs but present on Sapphire Rapids, which lacks the rest) */
  static const char *absent[] = {"amx-tile", "avx10.1-512", "amx-complex", "usermsr"};
  const char *lack = NULL;
  char *hf = LLVMGetHostCPUFeatures(), want[64];
  for (size_t i = 0; !lack && i < sizeof absent / sizeof absent[0]; i++) {
    snprintf(want, sizeof want, "+%s", absent[i]);
    const char *p = strstr(hf, want);
    if (!p || (p[strlen(want)] != ',' && p[strlen(want)] != 0)) lack = absent[i];
  }
  LLVMDisposeMessage(hf);
  if (!lack) {
    printf("test_jit_refuses_foreign_spec: this host has every candidate feature: skipped\n");
    lb_graph_free(g);
    return;
  }
  char tmpl[] = "/tmp/lb_spec_XXXXXX";
  char *tmp = mkdtemp(tmpl), file[600];
  snprintf(file, sizeof file, "%s/lack.yaml", tmp);
  FILE *f = fopen(file, "w");
  fprintf(f,
          "name: x86-64-lack-test\nextends: x86-64-avx2\nllvm:\n  features: \"+avx2,+fma,+%s\"\n",
          lack);
  fclose(f);
  spec = load_spec(file);
  lb_diag_clear(&d);
  ck_assert_ptr_nonnull(strstr(lb_spec_llvm_features(spec), lack));
  ck_assert_int_eq(lb_jit_compile(g, spec, NULL, &j, &d), LB_ERR_INPUT);
  ck_assert_msg(strstr(d.msg, lack) != NULL, "%s", d.msg);
  lb_spec_free(spec);
  unlink(file), rmdir(tmp);
  lb_graph_free(g);
}
END_TEST

/* ResNet-18 and MobileNetV2 from tools/make_models.py --large, when present (gitignored):
 * the fused, JIT-compiled model against PyTorch's output on the same input. */
START_TEST(test_large_models_jit) {
  static const char *large[] = {"resnet18", "mobilenet_v2"};
  char path[512];
  snprintf(path, sizeof path, "%s/tests/models/large/input.npy", LB_SOURCE_DIR);
  if (access(path, R_OK) != 0) {
    printf("test_large_models_jit: tests/models/large absent (tools/make_models.py --large): "
           "skipped\n");
    return;
  }
  lb_diag d;
  lb_diag_clear(&d);
  lb_tensor in = load_npy("large/input");
  lb_spec *spec = load_spec("host");
  for (int m = 0; m < 2; m++) {
    char stem[64];
    snprintf(stem, sizeof stem, "large/%s", large[m]);
    lb_graph *g = load_prepared(stem);
    lb_jit *j = NULL;
    ck_assert_msg(lb_jit_compile(g, spec, NULL, &j, &d) == 0, "%s: %s", large[m], d.msg);
    snprintf(stem, sizeof stem, "large/%s_torch_out", large[m]);
    lb_tensor want = load_npy(stem);
    jit_expect(j, g, &in, &want, 1e-4, large[m]);
    lb_jit_free(j);
    lb_graph_free(g);
  }
  lb_free(in.data);
  lb_spec_free(spec);
}
END_TEST

/* ---- AOT: object + header linked into tests/aot/harness.c -------------------------------- */

/* The object exports exactly m_run and m_workspace_size (kernels are internal, so several
 * models link together) and calls nothing that allocates. */
static void check_symbols(const char *obj) {
  char cmd[1024], line[256];
  snprintf(cmd, sizeof cmd, "nm -g %s", obj);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  int defined = 0;
  while (fgets(line, sizeof line, p)) {
    char *sym = strrchr(line, ' ');
    ck_assert_ptr_nonnull(sym);
    sym++;
    sym[strcspn(sym, "\n")] = 0;
    if (strstr(line, " U ")) {
      ck_assert_msg(strcmp(sym, "malloc") && strcmp(sym, "calloc") && strcmp(sym, "realloc") &&
                        strcmp(sym, "free") && strcmp(sym, "aligned_alloc"),
                    "%s calls %s", obj, sym);
    } else {
      ck_assert_msg(!strcmp(sym, "m_run") || !strcmp(sym, "m_workspace_size"), "%s exports %s", obj,
                    sym);
      defined++;
    }
  }
  ck_assert_int_eq(pclose(p), 0);
  ck_assert_int_eq(defined, 2);
}

/* Compiles g for spec, links the harness for target t, runs it on random inputs and
 * compares with the interpreter running ref (g before the passes). */
static void aot_check_graph(const lb_graph *ref, const lb_graph *g, const lb_spec *spec,
                            const lb_test_aot_target *t, const char *model) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_tensor in[4], want[4], got[4];
  random_inputs(ref, in, 99);
  ck_assert_msg(lb_interp_run(ref, in, want, &d) == 0, "%s", d.msg);
  lb_test_aot_run_checked(g, spec, t, in, got, model, check_symbols);
  char what[256];
  snprintf(what, sizeof what, "%s on %s", model, lb_spec_name(spec));
  for (uint32_t o = 0; o < ref->n_outputs; o++) {
    expect_close(&got[o], &want[o], 1e-4, what);
    lb_free(got[o].data), lb_free(want[o].data);
  }
  for (uint32_t i = 0; i < ref->n_inputs; i++) free(in[i].data);
}

static void aot_check(const char *model, const lb_spec *spec, const lb_test_aot_target *t) {
  lb_graph *ref = load_imported(model), *g = load_prepared(model);
  aot_check_graph(ref, g, spec, t, model);
  lb_graph_free(g), lb_graph_free(ref);
}

/* The graphs built above (layouts, NHWC pooling, every conv variant) as AOT objects for the
 * plain NEON spec under qemu -cpu cortex-a72 (no dot product: checks the feature gating too). */
START_TEST(test_aot_graphs_neon) {
  lb_spec *spec = load_spec("aarch64-neon");
  const lb_test_aot_target neon = LB_TEST_AOT_NEON;
  for (int i = 0; i < LB_TEST_N(built); i++) {
    lb_graph *g = built[i].build();
    aot_check_graph(g, g, spec, &neon, built[i].what);
    lb_graph_free(g);
  }
  for (size_t c = 0; c < N_CONV_CASES; c += lb_test_quick() ? 2 : 1) {
    lb_graph *g = conv_graph(c);
    aot_check_graph(g, g, spec, &neon, "conv case");
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

/* Every bundled spec that can run here: natively when the host has its features, AArch64
 * ones under qemu (-cpu cortex-a72 when the spec has neither dotprod nor i8mm, else max). */
START_TEST(test_aot_all_specs) {
  char dirp[512];
  snprintf(dirp, sizeof dirp, "%s/specs", LB_SOURCE_DIR);
  DIR *dir = opendir(dirp);
  ck_assert_ptr_nonnull(dir);
  int ran = 0, n_models = LB_TEST_N(models);
  struct dirent *e;
  while ((e = readdir(dir))) {
    size_t len = strlen(e->d_name);
    if (len < 6 || strcmp(e->d_name + len - 5, ".yaml")) continue;
    char file[1024];
    snprintf(file, sizeof file, "%s/%s", dirp, e->d_name);
    lb_spec *spec = load_spec(file);
    const char *triple = lb_spec_llvm_triple(spec), *feat = lb_spec_llvm_features(spec);
    lb_diag d;
    lb_diag_clear(&d);
    const lb_test_aot_target neon = LB_TEST_AOT_NEON, arm = LB_TEST_AOT_DOTPROD;
    const lb_test_aot_target x86 = {lb_spec_name(spec), "gcc", ""}, *t = NULL;
    if (!strncmp(triple, "aarch64", 7))
      t = !strstr(feat, "dotprod") && !strstr(feat, "i8mm") ? &neon : &arm;
    else if (lb_target_host_check(spec, &d) == 0)
      t = &x86;
    if (!t) {
      printf("test_aot_all_specs: %s cannot run here (%s): skipped\n", lb_spec_name(spec), d.msg);
    } else {
      /* quick: one model per spec, a different one for each spec that runs */
      int n = 0;
      for (int m = 0; m < n_models; m++)
        if (!lb_test_quick() || m == ran % n_models) aot_check(models[m], spec, t), n++;
      printf("test_aot_all_specs: %s: %d models match the interpreter\n", lb_spec_name(spec), n);
      ran++;
    }
    lb_spec_free(spec);
  }
  closedir(dir);
  ck_assert_int_ge(ran, 2);
}
END_TEST

/* A failing emission (bad symbol prefix, unwritable folder) leaves no file behind. */
START_TEST(test_aot_failure_leaves_nothing) {
  lb_graph *g = load_imported("digits_mlp");
  lb_spec *spec = load_spec("host");
  char tmpl[] = "/tmp/lb_aotf_XXXXXX";
  char *tmp = mkdtemp(tmpl);
  char obj[600], hdr[600];
  snprintf(obj, sizeof obj, "%s/x.o", tmp);
  snprintf(hdr, sizeof hdr, "%s/x.h", tmp);
  lb_diag d;
  lb_diag_clear(&d);
  lb_codegen_opts o = {.name = "9bad-name"};
  ck_assert_int_eq(lb_target_emit(g, spec, &o, LB_EMIT_OBJ, obj, hdr, &d), LB_ERR_INPUT);
  ck_assert_msg(strstr(d.msg, "9bad-name") != NULL, "%s", d.msg);
  snprintf(obj, sizeof obj, "%s/missing/x.o", tmp);
  lb_diag_clear(&d);
  o.name = "x";
  ck_assert_int_eq(lb_target_emit(g, spec, &o, LB_EMIT_OBJ, obj, hdr, &d), LB_ERR_INPUT);
  DIR *dir = opendir(tmp);
  struct dirent *e;
  int files = 0;
  while ((e = readdir(dir))) files += e->d_name[0] != '.';
  closedir(dir);
  ck_assert_int_eq(files, 0);
  rmdir(tmp);
  lb_spec_free(spec);
  lb_graph_free(g);
}
END_TEST

/* MobileNetV2 (tools/make_models.py --large, when present) as an AArch64 object for the plain
 * NEON spec under qemu -cpu cortex-a72, against the interpreter: a whole real network through
 * the 128-bit kernels. */
START_TEST(test_aot_large_neon) {
  char path[512];
  snprintf(path, sizeof path, "%s/tests/models/large/mobilenet_v2.onnx", LB_SOURCE_DIR);
  if (access(path, R_OK) != 0) {
    printf("test_aot_large_neon: tests/models/large absent: skipped\n");
    return;
  }
  lb_graph *ref = load_imported("large/mobilenet_v2"), *g = load_prepared("large/mobilenet_v2");
  lb_spec *spec = load_spec("aarch64-neon");
  const lb_test_aot_target neon = LB_TEST_AOT_NEON;
  aot_check_graph(ref, g, spec, &neon, "mobilenet_v2");
  lb_spec_free(spec);
  lb_graph_free(g), lb_graph_free(ref);
}
END_TEST

/* ---- the driver: lowbit compile / bench / run --engine jit --------------------------------- */

/* Runs the built lowbit with args; returns its exit status and the first line it printed
 * (stdout and stderr together) in out. */
static int lowbit(const char *args, char *out, size_t cap) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s/lowbit %s 2>&1", LB_BINARY_DIR, args);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  out[0] = 0;
  char line[1024];
  int first = 1;
  while (fgets(line, sizeof line, p))
    if (first) snprintf(out, cap, "%s", line), first = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_cli_compile_bench) {
  char tmpl[] = "/tmp/lb_cli_XXXXXX", args[2048], out[1024], path[700];
  char *tmp = mkdtemp(tmpl);
  const char *mlp = LB_SOURCE_DIR "/tests/models/digits_mlp.onnx";
  /* compile: object + header named after the output, symbols from --name */
  snprintf(args, sizeof args, "compile %s --spec x86-64-avx2 -o %s/net.o --name digits", mlp, tmp);
  ck_assert_msg(lowbit(args, out, sizeof out) == 0, "%s", out);
  snprintf(path, sizeof path, "%s/net.h", tmp);
  FILE *h = fopen(path, "r");
  ck_assert_ptr_nonnull(h);
  char text[8192];
  size_t n = fread(text, 1, sizeof text - 1, h);
  text[n] = 0;
  fclose(h);
  ck_assert_ptr_nonnull(strstr(text, "int digits_run(const void *const inputs[]"));
  ck_assert_ptr_nonnull(strstr(text, "#define digits_INPUT0_SHAPE {1, 64}"));
  /* --emit llvm, bad --emit, unknown spec, unwritable output: exit 2, one line, no file */
  snprintf(args, sizeof args, "compile %s --spec host -o %s/net.ll --emit llvm", mlp, tmp);
  ck_assert_msg(lowbit(args, out, sizeof out) == 0, "%s", out);
  snprintf(args, sizeof args, "compile %s --spec host -o %s/bad.o --emit exe", mlp, tmp);
  ck_assert_int_eq(lowbit(args, out, sizeof out), 2);
  ck_assert_ptr_nonnull(strstr(out, "--emit 'exe'"));
  snprintf(args, sizeof args, "compile %s --spec nosuch -o %s/bad.o", mlp, tmp);
  ck_assert_int_eq(lowbit(args, out, sizeof out), 2);
  snprintf(path, sizeof path, "%s/bad.o", tmp);
  ck_assert_int_ne(access(path, F_OK), 0);
  /* bench: JSON with the figures; a foreign spec is refused */
  snprintf(args, sizeof args, "bench %s --iters 3 --warmup 1 --json --profile", mlp);
  ck_assert_msg(lowbit(args, out, sizeof out) == 0, "%s", out);
  ck_assert_ptr_nonnull(strstr(out, "\"median_ms\": "));
  ck_assert_ptr_nonnull(strstr(out, "\"layers\": [{\"name\": "));
  snprintf(args, sizeof args, "bench %s --spec aarch64-dotprod", mlp);
  ck_assert_int_eq(lowbit(args, out, sizeof out), 2);
  ck_assert_ptr_nonnull(strstr(out, "aarch64"));
  snprintf(args, sizeof args, "bench %s --threads 4", mlp);
  ck_assert_int_eq(lowbit(args, out, sizeof out), 2);
  snprintf(args, sizeof args, "rm -rf %s", tmp);
  lb_test_shell(args);
}
END_TEST

int main(void) {
  const TTest *memplan[] = {test_memplan_reuse, test_memplan_disjoint};
  const TTest *jit[] = {test_jit_refuses_foreign_spec, test_large_models_jit, test_unary_ops,
                        test_pad_modes, test_conv_variants, test_matmul_runtime};
  const TTest *aot[] = {test_aot_all_specs, test_aot_failure_leaves_nothing, test_aot_graphs_neon,
                        test_cli_compile_bench, test_aot_large_neon};
  Suite *s = suite_create("codegen");
  lb_test_case(s, "memplan", memplan, LB_TEST_N(memplan));
  TCase *t = lb_test_case(s, "jit", jit, LB_TEST_N(jit));
  tcase_set_timeout(t, 300);
  tcase_add_loop_test(t, test_models_jit, 0, LB_TEST_N(models));
  tcase_add_loop_test(t, test_node_jit, 0, LB_TEST_N(node_tests));
  tcase_add_loop_test(t, test_built_graphs, 0, LB_TEST_N(built));
  tcase_set_timeout(lb_test_case(s, "aot", aot, LB_TEST_N(aot)), 600);
  return lb_test_run(s);
}
