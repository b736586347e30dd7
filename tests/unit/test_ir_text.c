/* Unit tests for the textual IR: exact print format, parse(print(g)) == print(g) on a graph with
 * every op and every dtype (sub-byte constants, per-channel quant), located parse errors, the
 * caret helper, and the golden harness (identity and compaction pipelines, mismatch, update). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../check_main.h"
#include "../golden_harness.h"
#include "../graph_text.h"
#include "ir.h"
#include "ir_text.h"
#include "onnx.h"

static uint32_t val(lb_graph *g, const char *name, lb_dtype t, int rank, int64_t d0, int64_t d1,
                    int64_t d2, int64_t d3) {
  int64_t d[4] = {d0, d1, d2, d3};
  uint32_t id = lb_graph_add_value(g, name, t, rank, d);
  ck_assert_uint_ne(id, LB_NONE);
  return id;
}

static uint32_t cst(lb_graph *g, const char *name, lb_dtype t, int rank, const int64_t *d,
                    const void *data) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= d[i];
  uint32_t id = lb_graph_add_const(g, name, t, rank, d, data, lb_dtype_bytes(t, n));
  ck_assert_uint_ne(id, LB_NONE);
  return id;
}

static uint32_t f32c(lb_graph *g, const char *name, int rank, const int64_t *d, float seed) {
  float buf[256];
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= d[i];
  ck_assert_int_le(n, 256);
  for (int64_t i = 0; i < n; i++) buf[i] = seed + 0.1f * (float)i - 1.0f / 3.0f * (float)(i % 3);
  return cst(g, name, LB_DTYPE_F32, rank, d, buf);
}

static lb_node *node(lb_graph *g, lb_op op, const char *name, uint32_t a, uint32_t b, uint32_t out) {
  uint32_t in[2] = {a, b};
  uint32_t n = lb_graph_add_node(g, op, name, in, b == LB_NONE ? 1 : 2, &out, 1);
  ck_assert_uint_ne(n, LB_NONE);
  return &g->nodes[n];
}

static lb_node *node_n(lb_graph *g, lb_op op, const uint32_t *in, uint32_t n_in, uint32_t out) {
  uint32_t n = lb_graph_add_node(g, op, "", in, n_in, &out, 1);
  ck_assert_uint_ne(n, LB_NONE);
  return &g->nodes[n];
}

/* Constants of every dtype, odd element counts so sub-byte data ends in a partial byte. */
static void add_dtype_consts(lb_graph *g) {
  int64_t d5[1] = {5}, d23[2] = {2, 3};
  double f64[5] = {0.1, -2.5e-300, 1e300, 3.0, -0.0};
  int64_t i64[5] = {INT64_MIN, -1, 0, 1, INT64_MAX};
  int32_t i32[5] = {INT32_MIN, -7, 0, 7, INT32_MAX};
  int16_t i16[5] = {-32768, -1, 0, 1, 32767};
  int8_t i8[5] = {-128, -1, 0, 1, 127}, i6[5] = {-32, -1, 0, 1, 31}, i5[5] = {-16, -1, 0, 1, 15};
  int8_t i7[5] = {-64, -1, 0, 1, 63};
  uint8_t u8[5] = {0, 1, 128, 254, 255}, bl[5] = {1, 0, 0, 1, 1};
  /* i4 [2,3] = {-8,7,-1,0,3,-4}: nibbles 8,7 | f,0 | 3,c */
  uint8_t i4[3] = {0x78, 0x0f, 0xc3}, u4[3] = {0x10, 0xfe, 0x09};
  uint8_t i2[2] = {0xe4, 0x02}, u2[2] = {0x1b, 0x03}, b1[1] = {0x15};
  cst(g, "c_f64", LB_DTYPE_F64, 1, d5, f64);
  cst(g, "c_i64", LB_DTYPE_I64, 1, d5, i64);
  cst(g, "c_i32", LB_DTYPE_I32, 1, d5, i32);
  cst(g, "c_i16", LB_DTYPE_I16, 1, d5, i16);
  cst(g, "c_i8", LB_DTYPE_I8, 1, d5, i8);
  cst(g, "c_i7", LB_DTYPE_I7, 1, d5, i7); /* i7/i6/i5: one byte each, as i8 */
  cst(g, "c_i6", LB_DTYPE_I6, 1, d5, i6);
  cst(g, "c_i5", LB_DTYPE_I5, 1, d5, i5);
  cst(g, "c_u8", LB_DTYPE_U8, 1, d5, u8);
  cst(g, "c_bool", LB_DTYPE_BOOL, 1, d5, bl);
  uint32_t w4 = cst(g, "c_i4", LB_DTYPE_I4, 2, d23, i4);
  cst(g, "c_u4", LB_DTYPE_U4, 2, d23, u4);
  cst(g, "c_i2", LB_DTYPE_I2, 1, d5, i2);
  cst(g, "c_u2", LB_DTYPE_U2, 1, d5, u2);
  cst(g, "c_b1", LB_DTYPE_B1, 1, d5, b1);
  /* per-channel quant on the i4 weights (axis 0, 2 channels) */
  lb_quant *q = &g->values[w4].q;
  q->axis = 0;
  q->n = 2;
  q->scale = lb_arena_array(&g->arena, 2, sizeof(float));
  q->zero_point = lb_arena_array(&g->arena, 2, sizeof(int32_t));
  q->scale[0] = 0.0123f;
  q->scale[1] = 1e-7f;
  q->zero_point[0] = 0;
  q->zero_point[1] = -3;
  int64_t d0[1] = {0};
  cst(g, "c_empty", LB_DTYPE_F32, 1, d0, NULL);
}

static void set_spatial(lb_attrs *a, int64_t k, int64_t s, int64_t p) {
  a->n_spatial = 2;
  for (int i = 0; i < 2; i++) {
    a->kernel[i] = k;
    a->strides[i] = s;
    a->dilations[i] = 1;
    a->pads[i] = a->pads[i + 2] = p;
  }
}

/* conv .. global_avg_pool on [1,4,8,8] */
static uint32_t add_conv_part(lb_graph *g, uint32_t x) {
  int64_t wd[4] = {4, 2, 3, 3}, bd[1] = {4};
  uint32_t w = f32c(g, "conv1/weight:0", 4, wd, 0.7f), b = f32c(g, "conv1.bias", 1, bd, -0.25f);
  uint32_t c1 = val(g, "c1", LB_DTYPE_F32, 4, 1, 4, 8, 8), c2 = val(g, "c2", LB_DTYPE_F32, 4, 1, 4, 8, 8);
  uint32_t in1[3] = {x, w, b}, in2[4] = {c1, w, LB_NONE, x};
  lb_node *n = node_n(g, LB_OP_CONV, in1, 3, c1);
  set_spatial(&n->attr, 3, 1, 1);
  n->attr.group = 2;
  n->attr.act = LB_ACT_CLIP;
  n->attr.act_min = 0;
  n->attr.act_max = 6;
  n->name = "conv \"one\"";
  n = node_n(g, LB_OP_CONV, in2, 4, c2);
  set_spatial(&n->attr, 3, 1, 1);
  n->attr.group = 2;
  n->attr.act = LB_ACT_RELU;
  int64_t cd[1] = {4};
  uint32_t bn_in[5] = {c2, f32c(g, "s", 1, cd, 1), f32c(g, "bb", 1, cd, 2), f32c(g, "m", 1, cd, 3),
                       f32c(g, "v", 1, cd, 4)};
  uint32_t bn = val(g, "bn", LB_DTYPE_F32, 4, 1, 4, 8, 8);
  node_n(g, LB_OP_BATCHNORM, bn_in, 5, bn)->attr.epsilon = 1e-3f;
  uint32_t prev = bn;
  static const lb_op unary[] = {LB_OP_RELU, LB_OP_LEAKY_RELU, LB_OP_CLIP, LB_OP_SIGMOID,
                                LB_OP_TANH, LB_OP_HARD_SIGMOID, LB_OP_HARD_SWISH};
  for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++) {
    uint32_t y = val(g, "", LB_DTYPE_F32, 4, 1, 4, 8, 8); /* empty names print as "#id" */
    lb_node *u = node(g, unary[i], "", prev, LB_NONE, y);
    u->attr.alpha = 0.1f + (float)i;
    u->attr.beta = 0.5f;
    u->attr.clip_min = -1;
    u->attr.clip_max = 1;
    prev = y;
  }
  uint32_t mp = val(g, "mp", LB_DTYPE_F32, 4, 1, 4, 4, 4), ap = val(g, "ap", LB_DTYPE_F32, 4, 1, 4, 4, 4);
  n = node(g, LB_OP_MAX_POOL, "pool", prev, LB_NONE, mp);
  set_spatial(&n->attr, 2, 2, 0);
  n->attr.ceil_mode = 1;
  n = node(g, LB_OP_AVG_POOL, "", mp, LB_NONE, ap);
  set_spatial(&n->attr, 1, 1, 0);
  n->attr.count_include_pad = 1;
  uint32_t gp = val(g, "gp", LB_DTYPE_F32, 4, 1, 4, 1, 1);
  node(g, LB_OP_GLOBAL_AVG_POOL, "", ap, LB_NONE, gp);
  return gp;
}

/* flatten .. reduce_mean on [1,4] */
static uint32_t add_dense_part(lb_graph *g, uint32_t gp) {
  uint32_t fl = val(g, "fl", LB_DTYPE_F32, 2, 1, 4, 0, 0);
  node(g, LB_OP_FLATTEN, "", gp, LB_NONE, fl)->attr.axis = 1;
  int64_t gwd[2] = {3, 4}, gbd[1] = {3}, mwd[2] = {3, 3};
  uint32_t gin[3] = {fl, f32c(g, "gw", 2, gwd, 0.5f), f32c(g, "gb", 1, gbd, 0)};
  uint32_t gm = val(g, "gm", LB_DTYPE_F32, 2, 1, 3, 0, 0);
  lb_node *n = node_n(g, LB_OP_GEMM, gin, 3, gm);
  n->attr.trans_b = 1;
  n->attr.alpha = 0.5f;
  n->attr.beta = 2;
  n->attr.act = LB_ACT_RELU;
  uint32_t mm = val(g, "mm", LB_DTYPE_F32, 2, 1, 3, 0, 0);
  node(g, LB_OP_MATMUL, "", gm, f32c(g, "mw", 2, mwd, -1), mm);
  uint32_t prev = mm;
  static const lb_op bin[] = {LB_OP_ADD, LB_OP_SUB, LB_OP_MUL, LB_OP_DIV};
  for (int i = 0; i < 4; i++) {
    char name[8];
    snprintf(name, sizeof name, "b%d", i);
    uint32_t y = val(g, name, LB_DTYPE_F32, 2, 1, 3, 0, 0);
    lb_node *b = node(g, bin[i], "", prev, gm, y);
    b->attr.act = i == 0 ? LB_ACT_CLIP : LB_ACT_NONE;
    b->attr.act_min = -INFINITY;
    b->attr.act_max = 0.25f;
    prev = y;
  }
  uint32_t sm = val(g, "sm", LB_DTYPE_F32, 2, 1, 3, 0, 0);
  n = node(g, LB_OP_SOFTMAX, "", prev, LB_NONE, sm);
  n->attr.axis = 1;
  n->attr.legacy_2d = 1;
  uint32_t cc = val(g, "cc", LB_DTYPE_F32, 2, 1, 6, 0, 0);
  node(g, LB_OP_CONCAT, "", sm, gm, cc)->attr.axis = -1;
  uint32_t rs = val(g, "rs", LB_DTYPE_F32, 2, 2, 3, 0, 0), tr = val(g, "tr", LB_DTYPE_F32, 2, 3, 2, 0, 0);
  node(g, LB_OP_RESHAPE, "", cc, LB_NONE, rs);
  n = node(g, LB_OP_TRANSPOSE, "", rs, LB_NONE, tr);
  n->attr.n_axes = 2;
  n->attr.axes[0] = 1;
  uint32_t uq = val(g, "uq", LB_DTYPE_F32, 3, 1, 3, 2, 0), sq = val(g, "sq", LB_DTYPE_F32, 2, 3, 2, 0, 0);
  n = node(g, LB_OP_UNSQUEEZE, "", tr, LB_NONE, uq);
  n->attr.n_axes = 1;
  n = node(g, LB_OP_SQUEEZE, "", uq, LB_NONE, sq);
  n->attr.n_axes = 1;
  uint32_t pd = val(g, "pd", LB_DTYPE_F32, 2, 5, 4, 0, 0);
  n = node(g, LB_OP_PAD, "", sq, LB_NONE, pd);
  n->attr.pads[0] = 1, n->attr.pads[1] = 0, n->attr.pads[2] = 1, n->attr.pads[3] = 2;
  n->attr.pad_value = 1.5f;
  n->attr.pad_mode = LB_PAD_REFLECT;
  int64_t idx[2] = {4, -1}, id2[1] = {2};
  uint32_t ga = val(g, "ga", LB_DTYPE_F32, 2, 2, 4, 0, 0);
  node(g, LB_OP_GATHER, "", pd, cst(g, "idx", LB_DTYPE_I64, 1, id2, idx), ga);
  uint32_t idn = val(g, "idn", LB_DTYPE_F32, 2, 2, 4, 0, 0), sh = val(g, "sh", LB_DTYPE_I64, 1, 1, 0, 0, 0);
  node(g, LB_OP_IDENTITY, "", ga, LB_NONE, idn);
  n = node(g, LB_OP_SHAPE, "", idn, LB_NONE, sh);
  n->attr.start = 1;
  n->attr.end = INT64_MAX;
  uint32_t rm = val(g, "rm", LB_DTYPE_F32, 1, 2, 0, 0, 0);
  n = node(g, LB_OP_REDUCE_MEAN, "", idn, LB_NONE, rm);
  n->attr.n_axes = 1;
  n->attr.axes[0] = -1;
  return rm;
}

static uint32_t add_quant_part(lb_graph *g, uint32_t x) {
  float sc = 0.05f;
  uint8_t zp = 128;
  uint32_t s = cst(g, "qs", LB_DTYPE_F32, 0, NULL, &sc), z = cst(g, "qz", LB_DTYPE_U8, 0, NULL, &zp);
  uint32_t q = val(g, "q", LB_DTYPE_U8, 4, 1, 4, 8, 8), dq = val(g, "dq", LB_DTYPE_F32, 4, 1, 4, 8, 8);
  uint32_t in[3] = {x, s, z};
  node_n(g, LB_OP_QUANTIZE, in, 3, q)->attr.axis = 1;
  g->values[q].q.n = 1;
  g->values[q].q.scale = lb_arena_array(&g->arena, 1, sizeof(float));
  g->values[q].q.zero_point = lb_arena_array(&g->arena, 1, sizeof(int32_t));
  g->values[q].q.scale[0] = sc;
  g->values[q].q.zero_point[0] = zp;
  in[0] = q;
  node_n(g, LB_OP_DEQUANTIZE, in, 3, dq)->attr.axis = 1;
  return dq;
}

static lb_graph *every_op_graph(void) {
  lb_graph *g = lb_graph_new("every op");
  ck_assert_ptr_nonnull(g);
  uint32_t x = val(g, "x", LB_DTYPE_F32, 4, 1, 4, 8, 8);
  ck_assert_int_eq(lb_graph_add_input(g, x), 0);
  add_dtype_consts(g);
  uint32_t dup = val(g, "x", LB_DTYPE_F32, 4, 1, 4, 8, 8); /* a second "x": names must stay unique */
  node(g, LB_OP_RELU, "", x, LB_NONE, dup);
  uint32_t gp = add_conv_part(g, dup);
  uint32_t rm = add_dense_part(g, gp);
  uint32_t dq = add_quant_part(g, x);
  ck_assert_int_eq(lb_graph_add_output(g, rm), 0);
  ck_assert_int_eq(lb_graph_add_output(g, dq), 0);
  lb_diag d = {0};
  ck_assert_msg(lb_graph_verify(g, &d) == 0, "%s", d.msg);
  return g;
}

START_TEST(round_trip_every_op) {
  lb_graph *g = every_op_graph();
  int seen_op[LB_OP_COUNT] = {0}, seen_dt[LB_DTYPE_COUNT] = {0};
  for (uint32_t i = 0; i < g->n_nodes; i++) seen_op[g->nodes[i].op] = 1;
  for (uint32_t i = 0; i < g->n_values; i++) seen_dt[g->values[i].dtype] = 1;
  for (int i = 0; i < LB_OP_COUNT; i++) ck_assert_msg(seen_op[i], "op %s not covered", lb_op_get(i)->name);
  for (int i = 0; i < LB_DTYPE_COUNT; i++) ck_assert_msg(seen_dt[i], "dtype %s not covered", lb_dtype_name(i));
  char *t1 = lb_test_graph_text(g, -1);
  lb_graph *g2 = NULL;
  lb_diag d = {0};
  int rc = lb_graph_parse(t1, "every.ir", &g2, &d);
  ck_assert_msg(rc == 0, "%s\n%s", d.msg, t1);
  char *t2 = lb_test_graph_text(g2, -1);
  ck_assert_str_eq(t1, t2);
  /* constant bytes (padding bits are zero in the originals) and quant params survive */
  for (uint32_t i = 0; i < g->n_values; i++) {
    const lb_value *v = &g->values[i];
    if (!v->data) continue;
    uint32_t j = lb_graph_find_value(g2, v->name);
    ck_assert_uint_ne(j, LB_NONE);
    ck_assert_uint_eq(g2->values[j].nbytes, v->nbytes);
    ck_assert_int_eq(memcmp(g2->values[j].data, v->data, v->nbytes), 0);
  }
  const lb_value *w4 = &g2->values[lb_graph_find_value(g2, "c_i4")];
  ck_assert_int_eq(w4->q.axis, 0);
  ck_assert_uint_eq(w4->q.n, 2);
  ck_assert_float_eq(w4->q.scale[1], 1e-7f);
  ck_assert_int_eq(w4->q.zero_point[1], -3);
  const lb_node *conv = &g2->nodes[1];
  ck_assert_int_eq(conv->op, LB_OP_CONV);
  ck_assert_str_eq(conv->name, "conv \"one\"");
  ck_assert_int_eq(conv->attr.act, LB_ACT_CLIP);
  ck_assert_float_eq(conv->attr.act_max, 6.0f);
  ck_assert_int_eq(conv->attr.group, 2);
  ck_assert_int_eq(conv->attr.n_spatial, 2);
  ck_assert_uint_eq(g2->nodes[2].n_in, 4);
  ck_assert_uint_eq(g2->nodes[2].in[2], LB_NONE);
  /* both "x" values got distinct printed names */
  ck_assert_ptr_nonnull(strstr(t1, "input %\"x#0\""));
  free(t1);
  free(t2);
  lb_graph_free(g);
  lb_graph_free(g2);
}
END_TEST

START_TEST(print_format) {
  lb_graph *g = lb_graph_new("tiny");
  int64_t xd[2] = {1, 2}, wd[2] = {2, 2};
  float w[4] = {0.1f, 2.0f, -3.5f, 1e-5f};
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 2, xd);
  uint32_t wc = lb_graph_add_const(g, "w", LB_DTYPE_F32, 2, wd, w, sizeof w);
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, 2, xd);
  lb_graph_add_input(g, x);
  uint32_t in[2] = {x, wc};
  uint32_t n = lb_graph_add_node(g, LB_OP_MATMUL, "mm", in, 2, &y, 1);
  g->nodes[n].attr.act = LB_ACT_RELU;
  lb_graph_add_output(g, y);
  char *t = lb_test_graph_text(g, 16);
  ck_assert_str_eq(t, "graph \"tiny\" {\n"
                      "  input %x: f32[1,2]\n"
                      "  const %w: f32[2,2] = [0.100000001, 2, -3.5, 9.99999975e-06]\n"
                      "  %y: f32[1,2] = matmul(%x, %w) {act=relu} name=\"mm\"\n"
                      "  output %y\n"
                      "}\n");
  free(t);
  t = lb_test_graph_text(g, 3); /* 4 elements > 3: digest, which the parser refuses */
  ck_assert_ptr_nonnull(strstr(t, "const %w: f32[2,2] = digest(fnv1a=0x"));
  lb_graph *g2 = NULL;
  lb_diag d = {0};
  ck_assert_int_eq(lb_graph_parse(t, "d.ir", &g2, &d), LB_ERR_INPUT);
  ck_assert_ptr_null(g2);
  ck_assert_str_eq(d.msg, "d.ir:3:24: error: constant %w is printed as a digest of 4 elements; "
                          "print the graph with a larger inline_limit to parse it");
  free(t);
  lb_graph_free(g);
}
END_TEST

/* Hand-written text: defaults fill in (conv kernel from the weights, unit strides), comments. */
START_TEST(parse_defaults) {
  const char *text = "# a comment\n"
                     "graph \"h\" {\n"
                     "  input %x: f32[1,1,4,4]\n"
                     "  const %w: f32[2,1,3,3] = [1,2,3,4,5,6,7,8,9, -1,-2,-3,-4,-5,-6,-7,-8,-9]\n"
                     "  %y: f32[1,2,2,2] = conv(%x, %w)  # no attributes\n"
                     "  %z: f32[1,2,2,2] = leaky_relu(%y)\n"
                     "  output %z\n"
                     "}\n";
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_msg(lb_graph_parse(text, "h.ir", &g, &d) == 0, "%s", d.msg);
  const lb_attrs *a = &g->nodes[0].attr;
  ck_assert_int_eq(a->n_spatial, 2);
  ck_assert_int_eq(a->kernel[0], 3);
  ck_assert_int_eq(a->kernel[1], 3);
  ck_assert_int_eq(a->strides[1], 1);
  ck_assert_int_eq(a->dilations[0], 1);
  ck_assert_int_eq(a->pads[3], 0);
  ck_assert_int_eq(a->group, 1);
  ck_assert_float_eq(g->nodes[1].attr.alpha, 0.01f);
  float w17;
  memcpy(&w17, (char *)g->values[1].data + 17 * 4, 4);
  ck_assert_float_eq(w17, -9.0f);
  lb_graph_free(g);
}
END_TEST

static const struct {
  const char *body; /* inside graph "g" { ... } on line 2 onwards */
  const char *msg;
} bad_cases[] = {
    {"  input %x: f33[1]\n", "t.ir:2:13: error: expected a dtype (f32, i8, u4, ...), got 'f33'"},
    {"  input %x: f32[1]\n  %y: f32[1] = relu(%z)\n", "t.ir:3:21: error: undefined value %z"},
    {"  input %x: f32[1]\n  %y: f32[1] = frob(%x)\n", "t.ir:3:16: error: unknown op 'frob'"},
    {"  input %x: f32[1]\n  %y: f32[1] = relu(%x, %x)\n", "t.ir:3:16: error: relu takes 1 inputs, got 2"},
    {"  input %x: f32[1]\n  %y: f32[1] = relu(%x) {axis=1}\n",
     "t.ir:3:26: error: attribute 'axis' does not apply to relu"},
    {"  const %c: i4[2] = [1, 8]\n", "t.ir:2:25: error: 8 is out of range [-8, 7]"},
    {"  const %c: u2[3] = [1, 2, 3, 0]\n", "t.ir:2:31: error: too many elements: the shape holds 3"},
    {"  const %c: f32[3] = [1, 2]\n", "t.ir:2:22: error: 2 elements given, the shape holds 3"},
    {"  input %x: f32[1]\n  input %x: f32[2]\n", "t.ir:3:9: error: value %x is defined twice"},
    {"  input %x: f32[1]\n", "t.ir:3:1: error: missing '}' at the end of the graph"},
    {"  input %\"x: f32[1]\n", "t.ir:2:9: error: unterminated string"},
    {"  input @x: f32[1]\n", "t.ir:2:9: error: unexpected character '@'"},
    {"  input %x: f32[1,1,4,4]\n  %y: f32[1,1,4,4] = max_pool(%x) {kernel=[2,2], pads=[0,0]}\n",
     "t.ir:3:22: error: pads has 2 entries, expected 4 (begins then ends)"},
    {"  const %c: i8[2,2] quant(axis=0, scale=[1, 2, 3]) = [1,2,3,4]\n",
     "t.ir:2:26: error: quant axis 0 has 2 channels but 3 scales"},
    {"  input %x: f32[1]\n  %y: f32[1] = conv(%x, _)\n", "t.ir:3:16: error: conv: input 1 is required"},
    {"  input %x: f32[1]\n  %y: f32[1] = clip(%x) {clip_min=1, clip_min=2}\n",
     "t.ir:3:38: error: attribute 'clip_min' given twice"},
    {"  input %x: f32[1]\n  output %x\n} extra\n", "t.ir:4:3: error: text after the end of the graph"},
    {"  const %c: f32[1] = [1e999x]\n", "t.ir:2:23: error: malformed number '1e999x'"},
    {"  input %x: f32[1]\n  %y: f32[1] = relu(%x) name=3\n", "t.ir:3:30: error: expected a quoted node name"},
    {"  const %c: u4[1000,1000] = [1]\n",
     "t.ir:2:29: error: constant %c has 1000000 elements, more than the text holds"},
};

START_TEST(parse_errors) {
  char text[512];
  snprintf(text, sizeof text, "graph \"g\" {\n%s%s", bad_cases[_i].body,
           strstr(bad_cases[_i].body, "}") || strstr(bad_cases[_i].msg, "missing") ? "" : "}\n");
  lb_graph *g = (lb_graph *)1;
  lb_diag d = {0};
  ck_assert_int_eq(lb_graph_parse(text, "t.ir", &g, &d), LB_ERR_INPUT);
  ck_assert_ptr_null(g);
  ck_assert_str_eq(d.msg, bad_cases[_i].msg);
}
END_TEST

START_TEST(caret) {
  const char *text = "graph \"g\" {\n  input %x: f32[1\n}\n";
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_int_eq(lb_graph_parse(text, "c.ir", &g, &d), LB_ERR_INPUT);
  int line, col;
  ck_assert_int_eq(lb_diag_location(&d, &line, &col), 0);
  ck_assert_int_eq(line, 3);
  ck_assert_int_eq(col, 1);
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  lb_diag_print_source(f, &d, text);
  fclose(f);
  ck_assert_str_eq(buf, "c.ir:3:1: error: expected ']', got punctuation '}'\n  }\n  ^\n");
  free(buf);
  /* a file name with colons still finds LINE:COL */
  lb_diag e = {0};
  lb_diag_err(&e, LB_ERR_INPUT, "a:b:12:7: error: x");
  ck_assert_int_eq(lb_diag_location(&e, &line, &col), 0);
  ck_assert_int_eq(line, 12);
  ck_assert_int_eq(col, 7);
}
END_TEST

/* Every model the importer accepts (digits models, ONNX node tests) prints, parses back and
 * prints identically: real attribute values, not only the ones these tests make up. */
static int round_trip_file(const char *path) {
  lb_graph *g = NULL, *h = NULL;
  lb_diag d = {0};
  if (lb_onnx_load(path, &g, &d)) return 0;
  char *t1 = lb_test_graph_text(g, -1);
  lb_diag_clear(&d);
  ck_assert_msg(lb_graph_parse(t1, path, &h, &d) == 0, "%s", d.msg);
  char *t2 = lb_test_graph_text(h, -1);
  ck_assert_msg(strcmp(t1, t2) == 0, "%s: second print differs", path);
  free(t1);
  free(t2);
  lb_graph_free(g);
  lb_graph_free(h);
  return 1;
}

START_TEST(round_trip_imported) {
  static const char *dirs[] = {LB_SOURCE_DIR "/tests/models", "/usr/share/libonnx-testdata/data/node"};
  int n = 0;
  for (int k = 0; k < 2; k++) {
    DIR *d = opendir(dirs[k]);
    if (!d) continue;
    for (struct dirent *e; (e = readdir(d));) {
      char path[1024];
      size_t l = strlen(e->d_name);
      if (k == 0 && (l < 5 || strcmp(e->d_name + l - 5, ".onnx") != 0)) continue;
      if (k == 1 && e->d_name[0] == '.') continue;
      snprintf(path, sizeof path, k ? "%s/%s/model.onnx" : "%s/%s", dirs[k], e->d_name);
      n += round_trip_file(path);
    }
    closedir(d);
  }
  fprintf(stderr, "round_trip_imported: %d models\n", n);
  if (n == 0) fprintf(stderr, "round_trip_imported: skipped, no importable models found\n");
}
END_TEST

/* ---- golden harness ---------------------------------------------------------------------- */

/* "" = identity, "compact" = lb_graph_compact; anything else is an error. */
static int test_pipeline(lb_graph *g, const char *passes, void *user, lb_diag *diag) {
  (void)user;
  while (*passes == ' ') passes++;
  if (!*passes) return 0;
  if (strcmp(passes, "compact") == 0) return lb_graph_compact(g);
  return lb_diag_err(diag, LB_ERR_INPUT, "unknown pass '%s'", passes);
}

START_TEST(golden_dir) {
  lb_golden_check_dir(LB_SOURCE_DIR "/tests/golden/ir", 3, test_pipeline, NULL);
}
END_TEST

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

START_TEST(golden_mismatch_and_update) {
  const char *path = LB_BINARY_DIR "/golden_selftest.golden";
  const char *head = "a dead node\n# input\ngraph \"g\" {\n  input %x: f32[2]\n"
                     "  %d: f32[2] = relu(%x)\n  %y: f32[2] = tanh(%x)\n  output %y\n}\n"
                     "# passes: compact\n# expect\n";
  char text[1024];
  snprintf(text, sizeof text, "%sgraph \"g\" {\n  input %%x: f32[2]\n  %%y: f32[2] = sigmoid(%%x)\n"
                              "  output %%y\n}\n", head);
  write_file(path, text);
  char err[2048];
  unsetenv("LB_UPDATE_GOLDEN");
  ck_assert_int_eq(lb_golden_check(path, test_pipeline, NULL, err, sizeof err), 1);
  ck_assert_msg(strstr(err, "golden_selftest.golden:13: golden mismatch") != NULL, "%s", err);
  ck_assert_ptr_nonnull(strstr(err, "expected:   %y: f32[2] = sigmoid(%x)"));
  ck_assert_ptr_nonnull(strstr(err, "got:        %y: f32[2] = tanh(%x)"));
  setenv("LB_UPDATE_GOLDEN", "1", 1);
  ck_assert_int_eq(lb_golden_check(path, test_pipeline, NULL, err, sizeof err), 0);
  unsetenv("LB_UPDATE_GOLDEN");
  size_t len;
  char *now = lb_golden_slurp(path, &len);
  snprintf(text, sizeof text, "%sgraph \"g\" {\n  input %%x: f32[2]\n  %%y: f32[2] = tanh(%%x)\n"
                              "  output %%y\n}\n", head);
  ck_assert_str_eq(now, text);
  free(now);
  ck_assert_int_eq(lb_golden_check(path, test_pipeline, NULL, err, sizeof err), 0);
  /* a parse error in the input section reports the golden file's own line */
  write_file(path, "x\n# input\ngraph \"g\" {\n  input %x: f32[2]\n  %y: f32[2] = tanh(%q)\n"
                   "  output %y\n}\n# expect\n");
  ck_assert_int_eq(lb_golden_check(path, test_pipeline, NULL, err, sizeof err), 1);
  ck_assert_msg(strstr(err, "got:      error: " LB_BINARY_DIR
                            "/golden_selftest.golden:5:21: error: undefined value %q") != NULL,
                "%s", err);
  remove(path);
}
END_TEST

int main(void) {
  const TTest *tests[] = {
    round_trip_every_op, print_format, parse_defaults, caret, round_trip_imported, golden_dir,
    golden_mismatch_and_update};
  TCase *tc;
  Suite *s = lb_test_suite("ir_text", tests, LB_TEST_N(tests), &tc);
  tcase_add_loop_test(tc, parse_errors, 0, LB_TEST_N(bad_cases));
  return lb_test_run(s);
}
