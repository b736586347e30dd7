/* Unit tests for the reference interpreter: one-node graphs per op with hand-computed results
 * (case tables looped with tcase_add_loop_test), integer arithmetic and data movement on
 * non-f32 dtypes, quantization rounding, and lb_interp_run on multi-node graphs (memory
 * release, input checks, outputs that are inputs or repeated, runtime errors). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "ir_text.h"
#include "quant.h"

/* A tensor in a case table; data NULL for the expected output means "must fail". */
typedef struct {
  lb_dtype t;
  int rank;
  int64_t d[6];
  const void *data;
  int absent;
} tt;

typedef struct {
  const char *name;
  lb_op op;
  lb_attrs a;
  int n_in;
  tt in[5];
  tt out;
} icase;

#define F(...) ((const float[]){__VA_ARGS__})
#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define I32(...) ((const int32_t[]){__VA_ARGS__})
#define I8(...) ((const int8_t[]){__VA_ARGS__})
#define U8(...) ((const uint8_t[]){__VA_ARGS__})
#define TF(r, dims, data) {LB_DTYPE_F32, r, dims, data, 0}
#define D(...) {__VA_ARGS__}
#define ABSENT {LB_DTYPE_F32, 0, {0}, NULL, 1}
#define GEMM_ATTR .alpha = 1.0f, .beta = 1.0f

/* Builds x -> op -> y with input 0 as a graph input and the others as constants, infers the
 * output shape, and runs the interpreter. On success *out holds the result (lb_free it). */
static int run_case(const icase *c, lb_tensor *out, lb_diag *diag) {
  lb_graph *g = lb_graph_new("t");
  ck_assert_ptr_nonnull(g);
  uint32_t ids[5];
  for (int k = 0; k < c->n_in; k++) {
    const tt *s = &c->in[k];
    char name[16];
    snprintf(name, sizeof name, "in%d", k);
    if (s->absent) {
      ids[k] = LB_NONE;
    } else if (k == 0) {
      ids[k] = lb_graph_add_value(g, name, s->t, s->rank, s->d);
      ck_assert_int_eq(lb_graph_add_input(g, ids[k]), 0);
    } else {
      int64_t n = 1;
      for (int i = 0; i < s->rank; i++) n *= s->d[i];
      ids[k] = lb_graph_add_const(g, name, s->t, s->rank, s->d, s->data, lb_dtype_bytes(s->t, n));
    }
  }
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, c->op == LB_OP_RESHAPE ? c->out.rank : 0,
                                  c->out.d);
  uint32_t n = lb_graph_add_node(g, c->op, "n", ids, (uint32_t)c->n_in, &y, 1);
  ck_assert_uint_ne(n, LB_NONE);
  g->nodes[n].attr = c->a;
  ck_assert_int_eq(lb_graph_add_output(g, y), 0);
  int rc = lb_infer_node(g, n, diag);
  if (rc == 0) {
    lb_tensor x = {c->in[0].t, c->in[0].rank, {0}, (void *)c->in[0].data};
    memcpy(x.dims, c->in[0].d, sizeof c->in[0].d);
    rc = lb_interp_run(g, &x, out, diag);
  }
  lb_graph_free(g);
  return rc;
}

static void check_result(const icase *c, const lb_tensor *got) {
  ck_assert_msg(got->dtype == c->out.t, "%s: dtype %s", c->name, lb_dtype_name(got->dtype));
  ck_assert_msg(got->rank == c->out.rank, "%s: rank %d, want %d", c->name, got->rank,
                c->out.rank);
  int64_t n = 1;
  for (int i = 0; i < got->rank; i++) {
    ck_assert_msg(got->dims[i] == c->out.d[i], "%s: dim %d is %lld", c->name, i,
                  (long long)got->dims[i]);
    n *= got->dims[i];
  }
  if (got->dtype != LB_DTYPE_F32) {
    ck_assert_msg(memcmp(got->data, c->out.data, lb_dtype_bytes(got->dtype, n)) == 0,
                  "%s: data differs", c->name);
    return;
  }
  const float *g = got->data, *e = c->out.data;
  for (int64_t i = 0; i < n; i++)
    ck_assert_msg(fabsf(g[i] - e[i]) <= 1e-5f + 1e-5f * fabsf(e[i]), "%s: [%lld] got %.7g want %.7g",
                  c->name, (long long)i, g[i], e[i]);
}

/* ---- conv ------------------------------------------------------------------------------- */

static const icase conv_cases[] = {
    {"conv_basic", LB_OP_CONV, {.n_spatial = 2}, 2,
     {TF(4, D(1, 1, 3, 3), F(1, 2, 3, 4, 5, 6, 7, 8, 9)), TF(4, D(1, 1, 2, 2), F(1, 1, 1, 1))},
     TF(4, D(1, 1, 2, 2), F(12, 16, 24, 28))},
    {"conv_pad_stride_bias", LB_OP_CONV,
     {.n_spatial = 2, .strides = {2, 2}, .pads = {1, 1, 1, 1}}, 3,
     {TF(4, D(1, 1, 3, 3), F(1, 2, 3, 4, 5, 6, 7, 8, 9)),
      TF(4, D(1, 1, 3, 3), F(1, 1, 1, 1, 1, 1, 1, 1, 1)), TF(1, D(1), F(0.5f))},
     TF(4, D(1, 1, 2, 2), F(12.5f, 16.5f, 24.5f, 28.5f))},
    {"conv_dilation", LB_OP_CONV, {.n_spatial = 2, .dilations = {2, 2}}, 2,
     {TF(4, D(1, 1, 4, 4), F(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
      TF(4, D(1, 1, 2, 2), F(1, 2, 3, 4))},
     TF(4, D(1, 1, 2, 2), F(68, 78, 108, 118))},
    {"conv_groups_pointwise", LB_OP_CONV, {.n_spatial = 2, .group = 2}, 2,
     {TF(4, D(1, 2, 2, 2), F(1, 2, 3, 4, 5, 6, 7, 8)), TF(4, D(4, 1, 1, 1), F(1, 2, 3, 4))},
     TF(4, D(1, 4, 2, 2), F(1, 2, 3, 4, 2, 4, 6, 8, 15, 18, 21, 24, 20, 24, 28, 32))},
    {"conv_groups_3x3_pad", LB_OP_CONV, {.n_spatial = 2, .group = 2, .pads = {1, 1, 1, 1}}, 2,
     {TF(4, D(1, 2, 1, 2), F(1, 2, 10, 20)),
      TF(4, D(2, 1, 3, 3), F(0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0))},
     /* ch0: row conv with [1,2,3] centred: [2*1+3*2, 1*1+2*2]; ch1: identity */
     TF(4, D(1, 2, 1, 2), F(8, 5, 10, 20))},
    {"conv_two_channels", LB_OP_CONV, {.n_spatial = 2}, 2,
     {TF(4, D(1, 2, 2, 2), F(1, 2, 3, 4, 5, 6, 7, 8)), TF(4, D(1, 2, 1, 2), F(1, 2, 3, 4))},
     TF(4, D(1, 1, 2, 1), F(44, 64))},
    {"conv_1d", LB_OP_CONV, {.n_spatial = 1, .pads = {1, 1}}, 2,
     {TF(3, D(1, 1, 5), F(1, 2, 3, 4, 5)), TF(3, D(1, 1, 3), F(1, 0, -1))},
     TF(3, D(1, 1, 5), F(-2, -2, -2, -2, 4))},
    {"conv_3d", LB_OP_CONV, {.n_spatial = 3}, 2,
     {TF(5, D(1, 1, 2, 2, 2), F(1, 2, 3, 4, 5, 6, 7, 8)),
      TF(5, D(1, 1, 2, 2, 2), F(1, 1, 1, 1, 1, 1, 1, 1))},
     TF(5, D(1, 1, 1, 1, 1), F(36))},
    {"conv_batch2", LB_OP_CONV, {.n_spatial = 1}, 2,
     {TF(3, D(2, 1, 2), F(1, 2, 3, 4)), TF(3, D(2, 1, 2), F(1, 1, 1, -1))},
     TF(3, D(2, 2, 1), F(3, -1, 7, -1))},
    {"conv_residual_relu", LB_OP_CONV, {.n_spatial = 2, .act = LB_ACT_RELU}, 4,
     {TF(4, D(1, 1, 2, 2), F(1, -2, 3, -4)), TF(4, D(1, 1, 1, 1), F(2)), TF(1, D(1), F(1)),
      TF(4, D(1, 1, 2, 2), F(0.5f, 0.5f, -10, 0.5f))},
     TF(4, D(1, 1, 2, 2), F(3.5f, 0, 0, 0))},
    {"conv_residual_clip", LB_OP_CONV,
     {.n_spatial = 2, .act = LB_ACT_CLIP, .act_min = -1, .act_max = 3}, 4,
     {TF(4, D(1, 1, 2, 2), F(1, -2, 3, -4)), TF(4, D(1, 1, 1, 1), F(2)), TF(1, D(1), F(1)),
      TF(4, D(1, 1, 2, 2), F(0.5f, 0.5f, -10, 0.5f))},
     TF(4, D(1, 1, 2, 2), F(3, -1, -1, -1))},
};

/* ---- pooling ---------------------------------------------------------------------------- */

static const icase pool_cases[] = {
    {"maxpool_2x2", LB_OP_MAX_POOL, {.n_spatial = 2, .kernel = {2, 2}, .strides = {2, 2}}, 1,
     {TF(4, D(1, 1, 4, 4), F(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))},
     TF(4, D(1, 1, 2, 2), F(5, 7, 13, 15))},
    {"maxpool_ceil", LB_OP_MAX_POOL,
     {.n_spatial = 2, .kernel = {3, 3}, .strides = {2, 2}, .ceil_mode = 1}, 1,
     {TF(4, D(1, 1, 4, 4), F(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))},
     TF(4, D(1, 1, 2, 2), F(10, 11, 14, 15))},
    {"maxpool_floor", LB_OP_MAX_POOL, {.n_spatial = 2, .kernel = {3, 3}, .strides = {2, 2}}, 1,
     {TF(4, D(1, 1, 4, 4), F(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))},
     TF(4, D(1, 1, 1, 1), F(10))},
    {"maxpool_ceil_drops_window_in_pad", LB_OP_MAX_POOL,
     {.n_spatial = 1, .kernel = {2}, .strides = {2}, .pads = {0, 1}, .ceil_mode = 1}, 1,
     {TF(3, D(1, 1, 4), F(1, 2, 3, 4))}, TF(3, D(1, 1, 2), F(2, 4))},
    {"maxpool_dilation", LB_OP_MAX_POOL, {.n_spatial = 1, .kernel = {2}, .dilations = {2}}, 1,
     {TF(3, D(1, 1, 5), F(1, 5, 2, 4, 3))}, TF(3, D(1, 1, 3), F(2, 5, 3))},
    {"maxpool_pad_negative", LB_OP_MAX_POOL, {.n_spatial = 1, .kernel = {3}, .pads = {1, 1}}, 1,
     {TF(3, D(1, 1, 3), F(-5, -6, -7))}, TF(3, D(1, 1, 3), F(-5, -5, -6))},
    {"avgpool_exclude_pad", LB_OP_AVG_POOL,
     {.n_spatial = 2, .kernel = {3, 3}, .pads = {1, 1, 1, 1}}, 1,
     {TF(4, D(1, 1, 2, 2), F(1, 2, 3, 4))}, TF(4, D(1, 1, 2, 2), F(2.5f, 2.5f, 2.5f, 2.5f))},
    {"avgpool_include_pad", LB_OP_AVG_POOL,
     {.n_spatial = 2, .kernel = {3, 3}, .pads = {1, 1, 1, 1}, .count_include_pad = 1}, 1,
     {TF(4, D(1, 1, 2, 2), F(1, 2, 3, 4))},
     TF(4, D(1, 1, 2, 2), F(10.f / 9, 10.f / 9, 10.f / 9, 10.f / 9))},
    {"avgpool_ceil_include_pad", LB_OP_AVG_POOL,
     {.n_spatial = 1, .kernel = {2}, .strides = {2}, .ceil_mode = 1, .count_include_pad = 1}, 1,
     {TF(3, D(1, 1, 5), F(1, 2, 3, 4, 5))}, TF(3, D(1, 1, 3), F(1.5f, 3.5f, 5))},
    {"avgpool_pads_include", LB_OP_AVG_POOL,
     {.n_spatial = 1, .kernel = {3}, .strides = {2}, .pads = {1, 1}, .count_include_pad = 1}, 1,
     {TF(3, D(1, 1, 5), F(1, 2, 3, 4, 5))}, TF(3, D(1, 1, 3), F(1, 3, 3))},
    {"avgpool_pads_exclude", LB_OP_AVG_POOL,
     {.n_spatial = 1, .kernel = {3}, .strides = {2}, .pads = {1, 1}}, 1,
     {TF(3, D(1, 1, 5), F(1, 2, 3, 4, 5))}, TF(3, D(1, 1, 3), F(1.5f, 3, 4.5f))},
    {"global_avg_pool", LB_OP_GLOBAL_AVG_POOL, {0}, 1,
     {TF(4, D(1, 2, 2, 2), F(1, 2, 3, 4, 5, 6, 7, 8))}, TF(4, D(1, 2, 1, 1), F(2.5f, 6.5f))},
    {"maxpool_u8", LB_OP_MAX_POOL, {.n_spatial = 2, .kernel = {2, 2}}, 1,
     {{LB_DTYPE_U8, 4, D(1, 1, 2, 2), U8(1, 200, 3, 4), 0}},
     {LB_DTYPE_U8, 4, D(1, 1, 1, 1), U8(200), 0}},
    {"maxpool_i8", LB_OP_MAX_POOL, {.n_spatial = 2, .kernel = {2, 2}}, 1,
     {{LB_DTYPE_I8, 4, D(1, 1, 2, 2), I8(-5, -3, -100, -7), 0}},
     {LB_DTYPE_I8, 4, D(1, 1, 1, 1), I8(-3), 0}},
};

/* ---- gemm and matmul -------------------------------------------------------------------- */

static const icase gemm_cases[] = {
    {"gemm_plain", LB_OP_GEMM, {GEMM_ATTR}, 2,
     {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6)), TF(2, D(3, 2), F(1, 2, 3, 4, 5, 6))},
     TF(2, D(2, 2), F(22, 28, 49, 64))},
    {"gemm_trans_alpha_beta_row", LB_OP_GEMM,
     {.trans_a = 1, .trans_b = 1, .alpha = 2, .beta = 0.5f}, 3,
     {TF(2, D(3, 2), F(1, 4, 2, 5, 3, 6)), TF(2, D(2, 3), F(1, 3, 5, 2, 4, 6)),
      TF(2, D(1, 2), F(10, 20))},
     TF(2, D(2, 2), F(49, 66, 103, 138))},
    {"gemm_c_column", LB_OP_GEMM, {GEMM_ATTR}, 3,
     {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6)), TF(2, D(3, 2), F(1, 2, 3, 4, 5, 6)),
      TF(2, D(2, 1), F(1, 2))},
     TF(2, D(2, 2), F(23, 29, 51, 66))},
    {"gemm_c_scalar", LB_OP_GEMM, {GEMM_ATTR}, 3,
     {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6)), TF(2, D(3, 2), F(1, 2, 3, 4, 5, 6)),
      TF(0, D(0), F(-2))},
     TF(2, D(2, 2), F(20, 26, 47, 62))},
    {"gemm_c_full", LB_OP_GEMM, {GEMM_ATTR}, 3,
     {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6)), TF(2, D(3, 2), F(1, 2, 3, 4, 5, 6)),
      TF(2, D(2, 2), F(1, 2, 3, 4))},
     TF(2, D(2, 2), F(23, 30, 52, 68))},
    {"gemm_residual_relu", LB_OP_GEMM, {GEMM_ATTR, .act = LB_ACT_RELU}, 4,
     {TF(2, D(1, 2), F(1, -1)), TF(2, D(2, 2), F(1, 0, 0, 1)), TF(1, D(2), F(0.5f, 0.5f)),
      TF(2, D(1, 2), F(1, -1))},
     TF(2, D(1, 2), F(2.5f, 0))},
    {"matmul_2d", LB_OP_MATMUL, {0}, 2,
     {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6)), TF(2, D(3, 2), F(1, 2, 3, 4, 5, 6))},
     TF(2, D(2, 2), F(22, 28, 49, 64))},
    {"matmul_1d_left", LB_OP_MATMUL, {0}, 2,
     {TF(1, D(3), F(1, 2, 3)), TF(2, D(3, 2), F(1, 2, 3, 4, 5, 6))}, TF(1, D(2), F(22, 28))},
    {"matmul_1d_right", LB_OP_MATMUL, {0}, 2,
     {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6)), TF(1, D(3), F(1, 1, 1))}, TF(1, D(2), F(6, 15))},
    {"matmul_dot", LB_OP_MATMUL, {0}, 2,
     {TF(1, D(3), F(1, 2, 3)), TF(1, D(3), F(4, 5, 6))}, TF(0, D(0), F(32))},
    {"matmul_batch_a", LB_OP_MATMUL, {0}, 2,
     {TF(3, D(2, 1, 2), F(1, 2, 3, 4)), TF(2, D(2, 1), F(1, 1))}, TF(3, D(2, 1, 1), F(3, 7))},
    {"matmul_batch_b", LB_OP_MATMUL, {0}, 2,
     {TF(2, D(1, 2), F(5, 6)), TF(3, D(3, 2, 1), F(1, 0, 0, 1, 1, 1))},
     TF(3, D(3, 1, 1), F(5, 6, 11))},
    {"matmul_batch_both", LB_OP_MATMUL, {.act = LB_ACT_RELU}, 2,
     {TF(4, D(2, 1, 1, 2), F(1, 2, -1, -2)), TF(3, D(2, 2, 1), F(1, 1, 1, 0))},
     TF(4, D(2, 2, 1, 1), F(3, 1, 0, 0))},
};

/* ---- elementwise ------------------------------------------------------------------------ */

static const icase elem_cases[] = {
    {"add_broadcast_row", LB_OP_ADD, {0}, 2,
     {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6)), TF(1, D(3), F(10, 20, 30))},
     TF(2, D(2, 3), F(11, 22, 33, 14, 25, 36))},
    {"mul_broadcast_outer", LB_OP_MUL, {0}, 2,
     {TF(2, D(2, 1), F(1, 2)), TF(2, D(1, 3), F(1, 2, 3))}, TF(2, D(2, 3), F(1, 2, 3, 2, 4, 6))},
    {"sub_scalar", LB_OP_SUB, {0}, 2,
     {TF(2, D(2, 2), F(1, 2, 3, 4)), TF(0, D(0), F(1))}, TF(2, D(2, 2), F(0, 1, 2, 3))},
    {"div_broadcast_middle", LB_OP_DIV, {0}, 2,
     {TF(3, D(2, 2, 2), F(2, 4, 6, 8, 10, 12, 14, 16)), TF(3, D(1, 2, 1), F(2, 4))},
     TF(3, D(2, 2, 2), F(1, 2, 1.5f, 2, 5, 6, 3.5f, 4))},
    {"add_relu", LB_OP_ADD, {.act = LB_ACT_RELU}, 2,
     {TF(1, D(2), F(1, -2)), TF(1, D(2), F(1, 1))}, TF(1, D(2), F(2, 0))},
    {"relu", LB_OP_RELU, {0}, 1, {TF(1, D(3), F(-1, 0, 2))}, TF(1, D(3), F(0, 0, 2))},
    {"leaky_relu", LB_OP_LEAKY_RELU, {.alpha = 0.1f}, 1, {TF(1, D(2), F(-10, 5))},
     TF(1, D(2), F(-1, 5))},
    {"clip", LB_OP_CLIP, {.clip_min = -1, .clip_max = 1}, 1, {TF(1, D(3), F(-2, 0.5f, 3))},
     TF(1, D(3), F(-1, 0.5f, 1))},
    {"sigmoid", LB_OP_SIGMOID, {0}, 1, {TF(1, D(3), F(0, 2, -100))},
     TF(1, D(3), F(0.5f, 0.880797078f, 0))},
    {"tanh", LB_OP_TANH, {0}, 1, {TF(1, D(2), F(0.5f, -0.5f))},
     TF(1, D(2), F(0.462117157f, -0.462117157f))},
    {"hard_sigmoid", LB_OP_HARD_SIGMOID, {.alpha = 0.2f, .beta = 0.5f}, 1,
     {TF(1, D(4), F(-3, 0, 1, 3))}, TF(1, D(4), F(0, 0.5f, 0.7f, 1))},
    {"hard_swish", LB_OP_HARD_SWISH, {0}, 1, {TF(1, D(4), F(-4, 0, 1, 4))},
     TF(1, D(4), F(0, 0, 0.666666667f, 4))},
    {"softmax_axis1", LB_OP_SOFTMAX, {.axis = 1}, 1, {TF(2, D(2, 3), F(1, 2, 3, 0, 0, 0))},
     TF(2, D(2, 3), F(0.0900305732f, 0.244728471f, 0.665240956f, 1.f / 3, 1.f / 3, 1.f / 3))},
    {"softmax_legacy_2d", LB_OP_SOFTMAX, {.axis = 1, .legacy_2d = 1}, 1,
     {TF(3, D(1, 2, 2), F(1, 2, 3, 4))},
     TF(3, D(1, 2, 2), F(0.0320586052f, 0.0871443187f, 0.236882818f, 0.643914260f))},
    {"softmax_axis1_3d", LB_OP_SOFTMAX, {.axis = 1}, 1, {TF(3, D(1, 2, 2), F(1, 2, 3, 4))},
     TF(3, D(1, 2, 2), F(0.119202922f, 0.119202922f, 0.880797078f, 0.880797078f))},
    {"softmax_last", LB_OP_SOFTMAX, {.axis = -1}, 1, {TF(3, D(1, 2, 2), F(1, 2, 3, 4))},
     TF(3, D(1, 2, 2), F(0.268941421f, 0.731058579f, 0.268941421f, 0.731058579f))},
    {"softmax_stable", LB_OP_SOFTMAX, {.axis = 0}, 1, {TF(1, D(2), F(1000, 1000))},
     TF(1, D(2), F(0.5f, 0.5f))},
    {"batchnorm", LB_OP_BATCHNORM, {.epsilon = 0}, 5,
     {TF(4, D(1, 2, 1, 2), F(1, 2, 3, 4)), TF(1, D(2), F(1, 2)), TF(1, D(2), F(0, 1)),
      TF(1, D(2), F(1, 2)), TF(1, D(2), F(4, 1))},
     TF(4, D(1, 2, 1, 2), F(0, 0.5f, 3, 5))},
    {"reduce_mean_keep", LB_OP_REDUCE_MEAN, {.n_axes = 1, .axes = {1}, .keepdims = 1}, 1,
     {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6))}, TF(2, D(2, 1), F(2, 5))},
    {"reduce_mean_axis0", LB_OP_REDUCE_MEAN, {.n_axes = 1, .axes = {0}}, 1,
     {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6))}, TF(1, D(3), F(2.5f, 3.5f, 4.5f))},
    {"reduce_mean_all", LB_OP_REDUCE_MEAN, {0}, 1, {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6))},
     TF(0, D(0), F(3.5f))},
};

/* ---- data movement ---------------------------------------------------------------------- */

static const icase move_cases[] = {
    {"concat_axis1", LB_OP_CONCAT, {.axis = 1}, 2,
     {TF(2, D(2, 1), F(1, 2)), TF(2, D(2, 2), F(3, 4, 5, 6))},
     TF(2, D(2, 3), F(1, 3, 4, 2, 5, 6))},
    {"concat_i64", LB_OP_CONCAT, {.axis = 0}, 3,
     {{LB_DTYPE_I64, 1, D(1), I64(-1), 0}, {LB_DTYPE_I64, 1, D(2), I64(3, 4), 0},
      {LB_DTYPE_I64, 1, D(1), I64(5), 0}},
     {LB_DTYPE_I64, 1, D(4), I64(-1, 3, 4, 5), 0}},
    {"flatten_axis1", LB_OP_FLATTEN, {.axis = 1}, 1,
     {TF(3, D(2, 2, 1), F(1, 2, 3, 4))}, TF(2, D(2, 2), F(1, 2, 3, 4))},
    {"flatten_axis0", LB_OP_FLATTEN, {.axis = 0}, 1, {TF(2, D(2, 2), F(1, 2, 3, 4))},
     TF(2, D(1, 4), F(1, 2, 3, 4))},
    {"reshape", LB_OP_RESHAPE, {0}, 1, {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6))},
     TF(3, D(3, 1, 2), F(1, 2, 3, 4, 5, 6))},
    {"transpose_2d", LB_OP_TRANSPOSE, {.n_axes = 2, .axes = {1, 0}}, 1,
     {TF(2, D(2, 3), F(1, 2, 3, 4, 5, 6))}, TF(2, D(3, 2), F(1, 4, 2, 5, 3, 6))},
    {"transpose_default", LB_OP_TRANSPOSE, {0}, 1, {TF(3, D(2, 1, 3), F(0, 1, 2, 3, 4, 5))},
     TF(3, D(3, 1, 2), F(0, 3, 1, 4, 2, 5))},
    {"transpose_u8_021", LB_OP_TRANSPOSE, {.n_axes = 3, .axes = {0, 2, 1}}, 1,
     {{LB_DTYPE_U8, 3, D(2, 2, 2), U8(1, 2, 3, 4, 5, 6, 7, 8), 0}},
     {LB_DTYPE_U8, 3, D(2, 2, 2), U8(1, 3, 2, 4, 5, 7, 6, 8), 0}},
    {"squeeze_default", LB_OP_SQUEEZE, {0}, 1, {TF(3, D(1, 3, 1), F(1, 2, 3))},
     TF(1, D(3), F(1, 2, 3))},
    {"unsqueeze", LB_OP_UNSQUEEZE, {.n_axes = 2, .axes = {0, -1}}, 1, {TF(1, D(3), F(1, 2, 3))},
     TF(3, D(1, 3, 1), F(1, 2, 3))},
    {"pad_constant", LB_OP_PAD, {.pads = {0, 1, 1, 0}, .pad_value = 9}, 1,
     {TF(2, D(2, 2), F(1, 2, 3, 4))}, TF(2, D(3, 3), F(9, 1, 2, 9, 3, 4, 9, 9, 9))},
    {"pad_reflect", LB_OP_PAD, {.pads = {2, 1}, .pad_mode = LB_PAD_REFLECT}, 1,
     {TF(1, D(4), F(1, 2, 3, 4))}, TF(1, D(7), F(3, 2, 1, 2, 3, 4, 3))},
    {"pad_edge", LB_OP_PAD, {.pads = {2, 2}, .pad_mode = LB_PAD_EDGE}, 1,
     {TF(1, D(3), F(1, 2, 3))}, TF(1, D(7), F(1, 1, 1, 2, 3, 3, 3))},
    {"pad_reflect_2d", LB_OP_PAD, {.pads = {1, 0, 0, 1}, .pad_mode = LB_PAD_REFLECT}, 1,
     {TF(2, D(2, 2), F(1, 2, 3, 4))}, TF(2, D(3, 3), F(3, 4, 3, 1, 2, 1, 3, 4, 3))},
    {"pad_negative_crop", LB_OP_PAD, {.pads = {-1, 1}}, 1, {TF(1, D(3), F(1, 2, 3))},
     TF(1, D(3), F(2, 3, 0))},
    {"pad_i32_value", LB_OP_PAD, {.pads = {1, 0}, .pad_value = -7}, 1,
     {{LB_DTYPE_I32, 1, D(2), I32(5, 6), 0}}, {LB_DTYPE_I32, 1, D(3), I32(-7, 5, 6), 0}},
    {"gather_axis0_negative", LB_OP_GATHER, {.axis = 0}, 2,
     {TF(2, D(3, 2), F(1, 2, 3, 4, 5, 6)), {LB_DTYPE_I64, 1, D(2), I64(-1, 0), 0}},
     TF(2, D(2, 2), F(5, 6, 1, 2))},
    {"gather_axis1_i32", LB_OP_GATHER, {.axis = 1}, 2,
     {TF(2, D(3, 2), F(1, 2, 3, 4, 5, 6)), {LB_DTYPE_I32, 1, D(1), I32(1), 0}},
     TF(2, D(3, 1), F(2, 4, 6))},
    {"gather_scalar_index_i64", LB_OP_GATHER, {.axis = 0}, 2,
     {{LB_DTYPE_I64, 1, D(3), I64(2, 3, 4), 0}, {LB_DTYPE_I64, 0, D(0), I64(-2), 0}},
     {LB_DTYPE_I64, 0, D(0), I64(3), 0}},
    {"gather_2d_indices", LB_OP_GATHER, {.axis = 0}, 2,
     {TF(1, D(3), F(10, 20, 30)), {LB_DTYPE_I64, 2, D(2, 2), I64(0, 2, 1, -3), 0}},
     TF(2, D(2, 2), F(10, 30, 20, 10))},
    {"shape_all", LB_OP_SHAPE, {.end = INT64_MAX}, 1, {TF(3, D(2, 3, 1), F(0, 0, 0, 0, 0, 0))},
     {LB_DTYPE_I64, 1, D(3), I64(2, 3, 1), 0}},
    {"shape_start_end", LB_OP_SHAPE, {.start = 1, .end = -1}, 1,
     {TF(3, D(2, 3, 1), F(0, 0, 0, 0, 0, 0))}, {LB_DTYPE_I64, 1, D(1), I64(3), 0}},
    {"identity_i8", LB_OP_IDENTITY, {0}, 1, {{LB_DTYPE_I8, 1, D(2), I8(-1, 7), 0}},
     {LB_DTYPE_I8, 1, D(2), I8(-1, 7), 0}},
};

/* ---- integer arithmetic and quantization ------------------------------------------------ */

static const icase int_cases[] = {
    {"div_i64_trunc_and_zero", LB_OP_DIV, {0}, 2,
     {{LB_DTYPE_I64, 1, D(4), I64(-7, 7, 5, INT64_MIN), 0},
      {LB_DTYPE_I64, 1, D(4), I64(2, -2, 0, -1), 0}},
     {LB_DTYPE_I64, 1, D(4), I64(-3, -3, 0, INT64_MIN), 0}},
    {"div_i32", LB_OP_DIV, {0}, 2,
     {{LB_DTYPE_I32, 1, D(3), I32(9, -9, 1), 0}, {LB_DTYPE_I32, 0, D(0), I32(4), 0}},
     {LB_DTYPE_I32, 1, D(3), I32(2, -2, 0), 0}},
    {"add_u8_wraps", LB_OP_ADD, {0}, 2,
     {{LB_DTYPE_U8, 1, D(2), U8(200, 1), 0}, {LB_DTYPE_U8, 1, D(2), U8(100, 2), 0}},
     {LB_DTYPE_U8, 1, D(2), U8(44, 3), 0}},
    {"mul_i8_wraps", LB_OP_MUL, {0}, 2,
     {{LB_DTYPE_I8, 1, D(2), I8(100, -3), 0}, {LB_DTYPE_I8, 1, D(2), I8(2, 5), 0}},
     {LB_DTYPE_I8, 1, D(2), I8(-56, -15), 0}},
    {"sub_i64_broadcast", LB_OP_SUB, {0}, 2,
     {{LB_DTYPE_I64, 2, D(2, 2), I64(1, 2, 3, 4), 0}, {LB_DTYPE_I64, 1, D(2), I64(10, 20), 0}},
     {LB_DTYPE_I64, 2, D(2, 2), I64(-9, -18, -7, -16), 0}},
    {"relu_i32", LB_OP_RELU, {0}, 1, {{LB_DTYPE_I32, 1, D(3), I32(-5, 0, 5), 0}},
     {LB_DTYPE_I32, 1, D(3), I32(0, 0, 5), 0}},
    {"clip_i8", LB_OP_CLIP, {.clip_min = -2, .clip_max = 3}, 1,
     {{LB_DTYPE_I8, 1, D(4), I8(-128, -1, 2, 127), 0}}, {LB_DTYPE_I8, 1, D(4), I8(-2, -1, 2, 3), 0}},
    {"quantize_u8_ties_even_saturate", LB_OP_QUANTIZE, {0}, 2,
     {TF(1, D(7), F(0.5f, 1.5f, 2.5f, -0.5f, 300, -300, 1)), TF(0, D(0), F(1))},
     {LB_DTYPE_U8, 1, D(7), U8(0, 2, 2, 0, 255, 0, 1), 0}},
    {"quantize_i8_zero_point", LB_OP_QUANTIZE, {0}, 3,
     {TF(1, D(7), F(0.5f, 1.5f, 2.5f, -0.5f, 300, -300, 1)), TF(0, D(0), F(1)),
      {LB_DTYPE_I8, 0, D(0), I8(-1), 0}},
     {LB_DTYPE_I8, 1, D(7), I8(-1, 1, 1, -1, 127, -128, 0), 0}},
    {"quantize_scale_half", LB_OP_QUANTIZE, {0}, 3,
     {TF(1, D(4), F(0.25f, 0.75f, -0.25f, -0.75f)), TF(0, D(0), F(0.5f)),
      {LB_DTYPE_U8, 0, D(0), U8(10), 0}},
     {LB_DTYPE_U8, 1, D(4), U8(10, 12, 10, 8), 0}},
    {"quantize_per_axis", LB_OP_QUANTIZE, {.axis = 1}, 3,
     {TF(2, D(2, 2), F(1, 2, 3, 4)), TF(1, D(2), F(1, 2)), {LB_DTYPE_U8, 1, D(2), U8(0, 10), 0}},
     {LB_DTYPE_U8, 2, D(2, 2), U8(1, 11, 3, 12), 0}},
    {"dequantize_u8", LB_OP_DEQUANTIZE, {0}, 3,
     {{LB_DTYPE_U8, 1, D(3), U8(0, 128, 255), 0}, TF(0, D(0), F(0.5f)),
      {LB_DTYPE_U8, 0, D(0), U8(128), 0}},
     TF(1, D(3), F(-64, 0, 63.5f))},
    {"dequantize_i8_per_axis", LB_OP_DEQUANTIZE, {.axis = 0}, 3,
     {{LB_DTYPE_I8, 2, D(2, 2), I8(-128, 127, 3, 4), 0}, TF(1, D(2), F(1, 0.25f)),
      {LB_DTYPE_I8, 1, D(2), I8(0, 4), 0}},
     TF(2, D(2, 2), F(-128, 127, -0.25f, 0))},
    {"dequantize_i32_no_zp", LB_OP_DEQUANTIZE, {0}, 2,
     {{LB_DTYPE_I32, 1, D(2), I32(-1000, 7), 0}, TF(0, D(0), F(0.5f))}, TF(1, D(2), F(-500, 3.5f))},
};

#define TABLE_TEST(fn, table)                                                                    \
  START_TEST(fn) {                                                                               \
    const icase *c = &table[_i];                                                                 \
    lb_tensor out = {0};                                                                         \
    lb_diag diag = {0};                                                                          \
    int rc = run_case(c, &out, &diag);                                                           \
    ck_assert_msg(rc == 0, "%s: %s", c->name, diag.msg);                                         \
    check_result(c, &out);                                                                       \
    lb_free(out.data);                                                                           \
  }                                                                                              \
  END_TEST

TABLE_TEST(conv_table, conv_cases)
TABLE_TEST(pool_table, pool_cases)
TABLE_TEST(gemm_table, gemm_cases)
TABLE_TEST(elem_table, elem_cases)
TABLE_TEST(move_table, move_cases)
TABLE_TEST(int_table, int_cases)

/* ---- runtime errors and lb_eval_node ---------------------------------------------------- */

/* Indices are a graph input, so only the kernel can see they are out of range. */
START_TEST(gather_index_out_of_range) {
  lb_graph *g = lb_graph_new("t");
  int64_t d3[1] = {3}, d1[1] = {1};
  float data[3] = {1, 2, 3};
  uint32_t ix = lb_graph_add_value(g, "ix", LB_DTYPE_I64, 1, d1);
  uint32_t x = lb_graph_add_const(g, "x", LB_DTYPE_F32, 1, d3, data, sizeof data);
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, 0, NULL);
  lb_graph_add_input(g, ix);
  uint32_t in[2] = {x, ix};
  uint32_t n = lb_graph_add_node(g, LB_OP_GATHER, "g1", in, 2, &y, 1);
  g->nodes[n].onnx_op = "Gather";
  lb_graph_add_output(g, y);
  lb_diag diag = {0};
  ck_assert_int_eq(lb_infer_node(g, n, &diag), 0);
  int64_t idx[2][1] = {{3}, {-4}};
  for (int k = 0; k < 2; k++) {
    lb_tensor t = {LB_DTYPE_I64, 1, {1}, idx[k]}, out = {0};
    lb_diag_clear(&diag);
    ck_assert_int_eq(lb_interp_run(g, &t, &out, &diag), LB_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(diag.msg, "graph.node[0] \"g1\" (Gather): input[1]: index"));
    ck_assert_ptr_nonnull(strstr(diag.msg, "out of range for axis 0 of size 3"));
  }
  int64_t ok[1] = {-3};
  lb_tensor t = {LB_DTYPE_I64, 1, {1}, ok}, out = {0};
  ck_assert_int_eq(lb_interp_run(g, &t, &out, &diag), 0);
  ck_assert_float_eq(((float *)out.data)[0], 1.0f);
  lb_free(out.data);
  lb_graph_free(g);
}
END_TEST

/* lb_eval_node as the importer uses it: constant folding, and Shape on a data-less input. */
START_TEST(eval_node_direct) {
  lb_graph *g = lb_graph_new("t");
  int64_t d[2] = {2, 3}, d2[1] = {2};
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 2, d);
  uint32_t s = lb_graph_add_value(g, "s", LB_DTYPE_I64, 1, d2);
  uint32_t n = lb_graph_add_node(g, LB_OP_SHAPE, "shape", &x, 1, &s, 1);
  g->nodes[n].attr.end = INT64_MAX;
  lb_diag diag = {0};
  lb_tensor in = {LB_DTYPE_F32, 2, {2, 3}, NULL};
  int64_t buf[2] = {0};
  lb_tensor out = {LB_DTYPE_I64, 1, {2}, buf};
  ck_assert_int_eq(lb_eval_node(g, n, &in, &out, &diag), 0);
  ck_assert_int_eq(buf[0], 2);
  ck_assert_int_eq(buf[1], 3);
  /* a wrongly shaped output buffer is refused, not overrun */
  lb_tensor bad = {LB_DTYPE_I64, 1, {1}, buf};
  ck_assert_int_eq(lb_eval_node(g, n, &in, &bad, &diag), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(diag.msg, "output[0]: expected i64[2], got i64[1]"));
  lb_graph_free(g);
}
END_TEST

/* ---- lb_interp_run on graphs ------------------------------------------------------------ */

/* x[1,1,4,4] -> conv 2x2 (w=1, b=0) -> relu -> maxpool 2x2 s1 -> gap -> flatten -> gemm;
 * plus a dead branch, an output that is the graph input, and the same output twice. */
static lb_graph *small_net(void) {
  lb_graph *g = lb_graph_new("net");
  int64_t dx[4] = {1, 1, 4, 4}, dw[4] = {1, 1, 2, 2}, db[1] = {1}, dg[2] = {1, 2}, dc[1] = {2};
  float w[4] = {1, 1, 1, -1}, b[1] = {-1}, gw[2] = {2, -3}, gc[2] = {0.5f, 0.25f};
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 4, dx);
  lb_graph_add_input(g, x);
  uint32_t vw = lb_graph_add_const(g, "w", LB_DTYPE_F32, 4, dw, w, sizeof w);
  uint32_t vb = lb_graph_add_const(g, "b", LB_DTYPE_F32, 1, db, b, sizeof b);
  uint32_t vg = lb_graph_add_const(g, "gw", LB_DTYPE_F32, 2, dg, gw, sizeof gw);
  uint32_t vc = lb_graph_add_const(g, "gc", LB_DTYPE_F32, 1, dc, gc, sizeof gc);
  uint32_t v[7];
  const char *names[7] = {"c", "r", "p", "a", "f", "y", "dead"};
  for (int i = 0; i < 7; i++) v[i] = lb_graph_add_value(g, names[i], LB_DTYPE_F32, 0, NULL);
  uint32_t cin[3] = {x, vw, vb}, gin[3] = {v[4], vg, vc};
  uint32_t n0 = lb_graph_add_node(g, LB_OP_CONV, "conv", cin, 3, &v[0], 1);
  g->nodes[n0].attr.n_spatial = 2;
  lb_graph_add_node(g, LB_OP_RELU, "relu", &v[0], 1, &v[1], 1);
  uint32_t n2 = lb_graph_add_node(g, LB_OP_MAX_POOL, "pool", &v[1], 1, &v[2], 1);
  g->nodes[n2].attr.n_spatial = 2;
  g->nodes[n2].attr.kernel[0] = g->nodes[n2].attr.kernel[1] = 2;
  lb_graph_add_node(g, LB_OP_GLOBAL_AVG_POOL, "gap", &v[2], 1, &v[3], 1);
  lb_graph_add_node(g, LB_OP_SIGMOID, "unused", &v[2], 1, &v[6], 1);
  uint32_t n4 = lb_graph_add_node(g, LB_OP_FLATTEN, "flat", &v[3], 1, &v[4], 1);
  g->nodes[n4].attr.axis = 1;
  lb_graph_add_node(g, LB_OP_GEMM, "fc", gin, 3, &v[5], 1);
  lb_graph_add_output(g, v[5]);
  lb_graph_add_output(g, x);
  lb_graph_add_output(g, v[5]);
  return g;
}

START_TEST(run_small_net) {
  lb_graph *g = small_net();
  lb_diag diag = {0};
  ck_assert_int_eq(lb_infer_shapes(g, &diag), 0);
  float xd[16];
  for (int i = 0; i < 16; i++) xd[i] = (float)i;
  lb_tensor x = {LB_DTYPE_F32, 4, {1, 1, 4, 4}, xd}, out[3];
  ck_assert_int_eq(lb_interp_run(g, &x, out, &diag), 0);
  /* conv: x(i,j) + x(i,j+1) + x(i+1,j) - x(i+1,j+1) - 1 = 8i + 2j - 1 with x = 4i + j;
   * relu; 2x2 max pool -> 8i + 2j + 9 = {9, 11, 17, 19}; mean 14; fc: [2*14 + 0.5, -3*14 + 0.25] */
  ck_assert_int_eq(out[0].rank, 2);
  ck_assert_float_eq_tol(((float *)out[0].data)[0], 28.5f, 1e-5f);
  ck_assert_float_eq_tol(((float *)out[0].data)[1], -41.75f, 1e-5f);
  ck_assert_ptr_ne(out[1].data, xd);
  ck_assert_mem_eq(out[1].data, xd, sizeof xd);
  ck_assert_ptr_ne(out[2].data, out[0].data);
  ck_assert_mem_eq(out[2].data, out[0].data, 2 * sizeof(float));
  for (int i = 0; i < 3; i++) lb_free(out[i].data);
  /* wrong input shape is a clear input error */
  lb_tensor bad = {LB_DTYPE_F32, 4, {1, 1, 4, 5}, xd};
  lb_diag_clear(&diag);
  ck_assert_int_eq(lb_interp_run(g, &bad, out, &diag), LB_ERR_INPUT);
  ck_assert_str_eq(diag.msg, "input \"x\": expected f32[1,1,4,4], got f32[1,1,4,5]");
  lb_tensor badt = {LB_DTYPE_U8, 4, {1, 1, 4, 4}, xd};
  lb_diag_clear(&diag);
  ck_assert_int_eq(lb_interp_run(g, &badt, out, &diag), LB_ERR_INPUT);
  ck_assert_str_eq(diag.msg, "input \"x\": expected f32[1,1,4,4], got u8[1,1,4,4]");
  lb_graph_free(g);
}
END_TEST

/* Every allocation failing in turn must return LB_ERR_NOMEM without leaking (ASan checks). */
static int fail_at, n_calls;
static void *failing_alloc(void *p, size_t n) {
  if (n == 0) {
    free(p);
    return NULL;
  }
  if (!p && ++n_calls == fail_at) return NULL;
  return p ? realloc(p, n) : malloc(n);
}

START_TEST(run_out_of_memory) {
  lb_graph *g = small_net();
  lb_diag diag = {0};
  ck_assert_int_eq(lb_infer_shapes(g, &diag), 0);
  float xd[16] = {0};
  lb_tensor x = {LB_DTYPE_F32, 4, {1, 1, 4, 4}, xd}, out[3];
  int saw_ok = 0;
  for (fail_at = 1; fail_at < 200 && !saw_ok; fail_at++) {
    n_calls = 0;
    lb_set_allocator(failing_alloc);
    int rc = lb_interp_run(g, &x, out, &diag);
    lb_set_allocator(NULL);
    ck_assert(rc == 0 || rc == LB_ERR_NOMEM);
    if (rc == 0) {
      saw_ok = 1;
      for (int i = 0; i < 3; i++) lb_free(out[i].data);
    }
  }
  ck_assert(saw_ok);
  lb_graph_free(g);
}
END_TEST

/* Bigger convs against a naive direct loop in double: GEMM tiling (K and N above 256), groups,
 * dilations, strides and asymmetric pads. */
typedef struct {
  int C, H, W, M, KH, KW, G, sh, sw, dh, dw, pt, pl, pb, pr;
} conv_geo;

static const conv_geo conv_geos[] = {
    {20, 21, 19, 6, 3, 4, 1, 1, 2, 1, 1, 1, 2, 0, 1},
    {8, 30, 31, 8, 3, 3, 8, 2, 1, 1, 2, 1, 1, 1, 1},
    {6, 9, 40, 4, 2, 3, 2, 1, 3, 2, 1, 0, 3, 2, 0},
    {64, 7, 7, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {3, 33, 33, 2, 7, 7, 1, 2, 2, 1, 1, 3, 3, 3, 3},
};

static float lcg(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (float)(*s >> 16) / 65536.0f - 0.5f;
}

START_TEST(conv_matches_direct_loop) {
  const conv_geo *q = &conv_geos[_i];
  int cg = q->C / q->G, mg = q->M / q->G;
  int64_t dx[4] = {1, q->C, q->H, q->W}, dw[4] = {q->M, cg, q->KH, q->KW}, db[1] = {q->M};
  size_t nx = (size_t)q->C * q->H * q->W, nw = (size_t)q->M * cg * q->KH * q->KW;
  float *xd = malloc(nx * sizeof(float)), *wd = malloc(nw * sizeof(float)), bd[64];
  unsigned seed = 12345u + (unsigned)_i;
  for (size_t i = 0; i < nx; i++) xd[i] = lcg(&seed);
  for (size_t i = 0; i < nw; i++) wd[i] = lcg(&seed);
  for (int i = 0; i < q->M; i++) bd[i] = lcg(&seed);
  lb_graph *g = lb_graph_new("t");
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 4, dx);
  uint32_t in[3] = {x, lb_graph_add_const(g, "w", LB_DTYPE_F32, 4, dw, wd, nw * sizeof(float)),
                    lb_graph_add_const(g, "b", LB_DTYPE_F32, 1, db, bd, q->M * sizeof(float))};
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, 0, NULL);
  lb_graph_add_input(g, x);
  uint32_t n = lb_graph_add_node(g, LB_OP_CONV, "c", in, 3, &y, 1);
  lb_attrs *a = &g->nodes[n].attr;
  a->group = q->G;
  a->strides[0] = q->sh, a->strides[1] = q->sw, a->dilations[0] = q->dh, a->dilations[1] = q->dw;
  a->pads[0] = q->pt, a->pads[1] = q->pl, a->pads[2] = q->pb, a->pads[3] = q->pr;
  lb_graph_add_output(g, y);
  lb_diag diag = {0};
  ck_assert_msg(lb_infer_node(g, n, &diag) == 0, "%s", diag.msg);
  int64_t OH = g->values[y].dims[2], OW = g->values[y].dims[3];
  ck_assert_int_eq(OH, (q->H + q->pt + q->pb - q->dh * (q->KH - 1) - 1) / q->sh + 1);
  ck_assert_int_eq(OW, (q->W + q->pl + q->pr - q->dw * (q->KW - 1) - 1) / q->sw + 1);
  lb_tensor t = {LB_DTYPE_F32, 4, {1, q->C, q->H, q->W}, xd}, out;
  ck_assert_int_eq(lb_interp_run(g, &t, &out, &diag), 0);
  const float *yo = out.data;
  for (int m = 0; m < q->M; m++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        double acc = bd[m];
        for (int c = 0; c < cg; c++)
          for (int kh = 0; kh < q->KH; kh++)
            for (int kw = 0; kw < q->KW; kw++) {
              int ih = oh * q->sh - q->pt + kh * q->dh, iw = ow * q->sw - q->pl + kw * q->dw;
              if (ih < 0 || ih >= q->H || iw < 0 || iw >= q->W) continue;
              int ci = (m / mg) * cg + c;
              acc += (double)xd[((size_t)ci * q->H + ih) * q->W + iw] *
                     wd[(((size_t)m * cg + c) * q->KH + kh) * q->KW + kw];
            }
        float got = yo[((size_t)m * OH + oh) * OW + ow];
        ck_assert_msg(fabs(got - acc) <= 1e-4 * (1 + fabs(acc)), "m%d oh%d ow%d: %g vs %g", m,
                      oh, ow, got, acc);
      }
  lb_free(out.data);
  lb_graph_free(g);
  free(xd);
  free(wd);
}
END_TEST

/* Broadcasting and transposition over random shapes against per-element index arithmetic. */
static int64_t rnd(unsigned *s, int64_t n) {
  *s = *s * 1103515245u + 12345u;
  return (int64_t)((*s >> 16) % (unsigned)n);
}

/* Runs a one-node graph whose inputs are all graph inputs; returns the output (lb_free it). */
static lb_tensor run_inputs(lb_op op, const lb_attrs *a, const lb_tensor *ins, int n_in) {
  lb_graph *g = lb_graph_new("t");
  uint32_t ids[2];
  for (int k = 0; k < n_in; k++) {
    ids[k] = lb_graph_add_value(g, k ? "b" : "a", ins[k].dtype, ins[k].rank, ins[k].dims);
    lb_graph_add_input(g, ids[k]);
  }
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, 0, NULL);
  uint32_t n = lb_graph_add_node(g, op, "n", ids, (uint32_t)n_in, &y, 1);
  g->nodes[n].attr = *a;
  lb_graph_add_output(g, y);
  lb_diag diag = {0};
  lb_tensor out = {0};
  ck_assert_msg(lb_infer_node(g, n, &diag) == 0, "%s", diag.msg);
  ck_assert_msg(lb_interp_run(g, ins, &out, &diag) == 0, "%s", diag.msg);
  lb_graph_free(g);
  return out;
}

static void fill_random(lb_tensor *t, unsigned *seed) {
  int64_t n = lb_tensor_numel(t);
  float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
  for (int64_t i = 0; i < n; i++) p[i] = (float)rnd(seed, 1000) / 10.0f - 50.0f;
  t->data = p;
}

START_TEST(broadcast_random) {
  unsigned seed = 777u + (unsigned)_i * 31u;
  int r = 1 + (int)rnd(&seed, 4);
  lb_tensor in[2] = {{LB_DTYPE_F32, r, {0}, NULL}, {LB_DTYPE_F32, 0, {0}, NULL}};
  int64_t od[4];
  for (int i = 0; i < r; i++) od[i] = 1 + rnd(&seed, 4);
  /* b has rank <= r and each dim is 1 or the output dim; a may broadcast too */
  in[1].rank = 1 + (int)rnd(&seed, r);
  for (int i = 0; i < r; i++) in[0].dims[i] = rnd(&seed, 3) ? od[i] : 1;
  for (int i = 0; i < in[1].rank; i++)
    in[1].dims[i] = rnd(&seed, 2) ? od[r - in[1].rank + i] : 1;
  for (int i = 0; i < r; i++) {
    int j = i - (r - in[1].rank);
    od[i] = in[0].dims[i] > 1 ? in[0].dims[i] : (j >= 0 ? in[1].dims[j] : 1);
  }
  fill_random(&in[0], &seed);
  fill_random(&in[1], &seed);
  lb_attrs a = {0};
  lb_tensor out = run_inputs(LB_OP_SUB, &a, in, 2);
  ck_assert_int_eq(out.rank, r);
  int64_t total = lb_tensor_numel(&out);
  for (int64_t o = 0; o < total; o++) {
    int64_t rem = o, ia = 0, ib = 0, sa = 1, sb = 1;
    for (int i = r - 1; i >= 0; i--) {
      ck_assert_int_eq(out.dims[i], od[i]);
      int64_t c = rem % od[i];
      rem /= od[i];
      ia += (in[0].dims[i] == 1 ? 0 : c) * sa;
      sa *= in[0].dims[i];
      int j = i - (r - in[1].rank);
      if (j >= 0) {
        ib += (in[1].dims[j] == 1 ? 0 : c) * sb;
        sb *= in[1].dims[j];
      }
    }
    float want = ((float *)in[0].data)[ia] - ((float *)in[1].data)[ib];
    ck_assert_float_eq(((float *)out.data)[o], want);
  }
  lb_free(out.data);
  free(in[0].data);
  free(in[1].data);
}
END_TEST

START_TEST(transpose_random) {
  unsigned seed = 99u + (unsigned)_i * 17u;
  int r = 1 + (int)rnd(&seed, 5);
  lb_tensor x = {LB_DTYPE_F32, r, {0}, NULL};
  lb_attrs a = {.n_axes = r};
  for (int i = 0; i < r; i++) {
    x.dims[i] = 1 + rnd(&seed, 4);
    a.axes[i] = i;
  }
  for (int i = r - 1; i > 0; i--) { /* Fisher-Yates shuffle of the perm */
    int j = (int)rnd(&seed, i + 1);
    int64_t t = a.axes[i];
    a.axes[i] = a.axes[j];
    a.axes[j] = t;
  }
  fill_random(&x, &seed);
  lb_tensor out = run_inputs(LB_OP_TRANSPOSE, &a, &x, 1);
  int64_t total = lb_tensor_numel(&out), st[8];
  st[r - 1] = 1;
  for (int i = r - 2; i >= 0; i--) st[i] = st[i + 1] * x.dims[i + 1];
  for (int64_t o = 0; o < total; o++) {
    int64_t rem = o, src = 0;
    for (int i = r - 1; i >= 0; i--) {
      ck_assert_int_eq(out.dims[i], x.dims[a.axes[i]]);
      src += (rem % out.dims[i]) * st[a.axes[i]];
      rem /= out.dims[i];
    }
    ck_assert_float_eq(((float *)out.data)[o], ((float *)x.data)[src]);
  }
  lb_free(out.data);
  free(x.data);
}
END_TEST

/* Every op in ops.def has a shape rule and an interpreter kernel: a generic node of each op
 * (inputs of one element, 1x1 kernels) infers and runs. Fails when an op is added to ops.def
 * without its rule or kernel. */
START_TEST(every_op_has_rule_and_kernel) {
  for (int op = 0; op < LB_OP_COUNT; op++) {
    const lb_op_info *info = lb_op_get((lb_op)op);
    lb_graph *g = lb_graph_new("t");
    int64_t d[4] = {1, 1, 1, 1};
    float one[1] = {1};
    int64_t zero_i64[1] = {0};
    uint8_t xu8[1] = {3};
    int xr = op == LB_OP_GEMM ? 2 : 4, vec = op == LB_OP_BATCHNORM || op == LB_OP_QUANTIZE ||
                                                 op == LB_OP_DEQUANTIZE;
    lb_dtype xt = op == LB_OP_DEQUANTIZE ? LB_DTYPE_U8 : LB_DTYPE_F32;
    uint32_t ids[8];
    ids[0] = lb_graph_add_value(g, "x", xt, xr, d);
    lb_graph_add_input(g, ids[0]);
    for (int k = 1; k < info->min_in; k++) {
      if (op == LB_OP_GATHER)
        ids[k] = lb_graph_add_const(g, "i", LB_DTYPE_I64, 1, d, zero_i64, sizeof zero_i64);
      else
        ids[k] = lb_graph_add_const(g, "c", LB_DTYPE_F32, vec ? 1 : xr, d, one, sizeof one);
    }
    uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, op == LB_OP_RESHAPE ? 4 : 0, d);
    uint32_t n = lb_graph_add_node(g, (lb_op)op, "n", ids, (uint32_t)info->min_in, &y, 1);
    lb_attrs *a = &g->nodes[n].attr;
    a->kernel[0] = a->kernel[1] = 1;
    a->n_axes = op == LB_OP_UNSQUEEZE ? 1 : 0;
    a->end = INT64_MAX;
    a->clip_max = 1;
    lb_graph_add_output(g, y);
    lb_diag diag = {0};
    ck_assert_msg(lb_infer_node(g, n, &diag) == 0, "%s: %s", info->name, diag.msg);
    lb_tensor x = {xt, xr, {1, 1, 1, 1}, xt == LB_DTYPE_U8 ? (void *)xu8 : (void *)one};
    lb_tensor out = {0};
    ck_assert_msg(lb_interp_run(g, &x, &out, &diag) == 0, "%s: %s", info->name, diag.msg);
    lb_free(out.data);
    lb_graph_free(g);
  }
}
END_TEST

/* (ops) Quantized div by a constant and reduce_mean (interp_int.c), hand-computed:
 * div: x (s 0.5) / c (i8 2, s 1) -> y (s 0.3, z 1): m = 0.5 / (0.3 * 2) = 0.8333,
 *      [10, -7, 4, 127] -> [8.33, -5.83, 3.33, 105.8] -> [8, -6, 3, 106] + 1;
 * reduce_mean over channels of x [1,3,2] (s 0.5) -> y [1,1,2] (s 0.25): m = 0.5 / (0.25 * 3),
 *      sums [1 + 3 + 8, 2 + 4 - 3] = [12, 3] -> [8, 2]. */
START_TEST(int_div_reduce_mean) {
  static const char *const text[2] = {
      "graph \"d\" {\n"
      "  input %x: i8[1,4] quant(scale=0.5, zero_point=0)\n"
      "  const %c: i8[1] quant(scale=1, zero_point=0) = [2]\n"
      "  %y: i8[1,4] quant(scale=0.3, zero_point=1) = div(%x, %c)\n"
      "  output %y\n"
      "}\n",
      "graph \"r\" {\n"
      "  input %x: i8[1,3,2] quant(scale=0.5, zero_point=0)\n"
      "  %y: i8[1,1,2] quant(scale=0.25, zero_point=0) = reduce_mean(%x) {axes=[1], keepdims=1}\n"
      "  output %y\n"
      "}\n"};
  static const int8_t x[2][6] = {{10, -7, 4, 127}, {1, 2, 3, 4, 8, -3}};
  static const int8_t want[2][4] = {{9, -5, 4, 107}, {8, 2}};
  for (int i = 0; i < 2; i++) {
    lb_graph *g;
    lb_diag d = {0};
    ck_assert_msg(lb_graph_parse(text[i], "<test>", &g, &d) == 0, "%s", d.msg);
    ck_assert(lb_int_node(g, 0));
    const lb_value *v = &g->values[g->inputs[0]];
    lb_tensor in = {v->dtype, v->rank, {0}, (void *)x[i]}, out;
    memcpy(in.dims, v->dims, sizeof in.dims);
    ck_assert_msg(lb_interp_run(g, &in, &out, &d) == 0, "%s", d.msg);
    ck_assert_mem_eq(out.data, want[i], i ? 2 : 4);
    lb_free(out.data);
    lb_graph_free(g);
  }
}
END_TEST

#define N_OF(t) ((int)(sizeof t / sizeof t[0]))

int main(void) {
  Suite *s = suite_create("interp");
  TCase *tc = tcase_create("ops");
  tcase_add_loop_test(tc, conv_table, 0, N_OF(conv_cases));
  tcase_add_loop_test(tc, pool_table, 0, N_OF(pool_cases));
  tcase_add_loop_test(tc, gemm_table, 0, N_OF(gemm_cases));
  tcase_add_loop_test(tc, elem_table, 0, N_OF(elem_cases));
  tcase_add_loop_test(tc, move_table, 0, N_OF(move_cases));
  tcase_add_loop_test(tc, int_table, 0, N_OF(int_cases));
  suite_add_tcase(s, tc);
  TCase *tr = tcase_create("run");
  tcase_add_test(tr, every_op_has_rule_and_kernel);
  tcase_add_test(tr, gather_index_out_of_range);
  tcase_add_test(tr, eval_node_direct);
  tcase_add_test(tr, run_small_net);
  tcase_add_test(tr, run_out_of_memory);
  tcase_add_test(tr, int_div_reduce_mean);
  tcase_add_loop_test(tr, conv_matches_direct_loop, 0, N_OF(conv_geos));
  tcase_add_loop_test(tr, broadcast_random, 0, 40);
  tcase_add_loop_test(tr, transpose_random, 0, 20);
  suite_add_tcase(s, tr);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
