/* Unit tests for the ONNX importer: the fixtures of tools/make_bad_models.py (tests/onnx_bad/:
 * ok_* must import with the listed shapes, attributes and folded constants; bad_* must fail with
 * the exact message in bad_*.txt), models and tensors from ONNX's own test data, and robustness
 * sweeps (every truncation of a model, every failing allocation). */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.h"

#include "../check_main.h"
#include "../oom.h"

#define FIXTURES LB_SOURCE_DIR "/tests/onnx_bad/"
#define NODE_DATA "/usr/share/libonnx-testdata/data/node/"

/* ---- helpers ------------------------------------------------------------------------------ */

static lb_graph *load_ok(const char *path) {
  lb_graph *g = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_onnx_load(path, &g, &d);
  ck_assert_msg(rc == 0, "%s: %s", path, d.msg);
  ck_assert_ptr_nonnull(g);
  return g;
}

static lb_graph *load_fixture(const char *name) {
  char path[512];
  snprintf(path, sizeof path, FIXTURES "%s.onnx", name);
  return load_ok(path);
}

/* A fixture that must import with n_nodes nodes left. */
static lb_graph *load_fixture_nodes(const char *name, uint32_t n_nodes) {
  lb_graph *g = load_fixture(name);
  ck_assert_uint_eq(g->n_nodes, n_nodes);
  return g;
}

static const lb_node *node_named(const lb_graph *g, const char *name) {
  for (uint32_t i = 0; i < g->n_nodes; i++)
    if (!strcmp(g->nodes[i].name, name)) return &g->nodes[i];
  ck_abort_msg("no node named %s", name);
  return NULL;
}

/* The node named name, which must be an op node. */
static const lb_node *node_op(const lb_graph *g, const char *name, lb_op op) {
  const lb_node *n = node_named(g, name);
  ck_assert_msg(n->op == op, "%s: op %s, want %s", name, lb_op_get(n->op)->name, lb_op_get(op)->name);
  return n;
}

static lb_value *value_named(lb_graph *g, const char *name) {
  uint32_t id = lb_graph_find_value(g, name);
  ck_assert_msg(id != LB_NONE, "no value named %s", name);
  return lb_val(g, id);
}

static void assert_dims(const lb_value *v, int rank, const int64_t *dims) {
  ck_assert_int_eq(v->rank, rank);
  for (int i = 0; i < rank; i++) ck_assert_int_eq(v->dims[i], dims[i]);
}

static void assert_i64s(const int64_t *got, const int64_t *want, int n) {
  for (int i = 0; i < n; i++) ck_assert_int_eq(got[i], want[i]);
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  static char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
  return buf;
}

/* ---- malformed models: golden messages ------------------------------------------------------ */

static const char *const bad_names[] = {
    "arity",         "attr_type",        "conv_channels",   "custom_domain", "dangling_output",
    "declared_shape", "dropout_mask",    "dtype_float16",   "dtype_unknown", "dynamic_dim",
    "empty",         "garbage",          "gather_const",    "gemm_rank",       "init_count",    "init_size",
    "int8_range",    "ir_version",       "maxpool_indices", "missing_input", "nested",
    "opset_old",     "reshape_nonconst", "softmax_axis",    "truncated",     "unknown_attr",
    "unsupported_op",
};
#define N_BAD LB_TEST_N(bad_names)

START_TEST(bad_fixture) {
  char path[512], txt[512], want[4800];
  snprintf(path, sizeof path, FIXTURES "bad_%s.onnx", bad_names[_i]);
  snprintf(txt, sizeof txt, FIXTURES "bad_%s.txt", bad_names[_i]);
  snprintf(want, sizeof want, "%s: %s", path, read_text(txt));
  lb_graph *g = (lb_graph *)1;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_onnx_load(path, &g, &d);
  ck_assert_int_eq(rc, LB_ERR_INPUT);
  ck_assert_ptr_null(g);
  ck_assert_str_eq(d.msg, want);
  ck_assert_ptr_null(strchr(d.msg, '\n'));
}
END_TEST

/* Every bad_*.onnx on disk is in the table above and has its expected message. */
START_TEST(bad_fixtures_listed) {
  DIR *dir = opendir(FIXTURES);
  ck_assert_ptr_nonnull(dir);
  int seen = 0;
  for (struct dirent *e; (e = readdir(dir));) {
    size_t n = strlen(e->d_name);
    if (strncmp(e->d_name, "bad_", 4) || n < 9 || strcmp(e->d_name + n - 5, ".onnx")) continue;
    int found = 0;
    for (int i = 0; i < N_BAD; i++)
      if (strlen(bad_names[i]) == n - 9 && !strncmp(e->d_name + 4, bad_names[i], n - 9)) found = 1;
    ck_assert_msg(found, "%s is not in bad_names[]", e->d_name);
    seen++;
  }
  closedir(dir);
  ck_assert_int_eq(seen, N_BAD);
  ck_assert_int_ge(seen, 10);
}
END_TEST

START_TEST(missing_file) {
  lb_graph *g;
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_onnx_load("/nonexistent/m.onnx", &g, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, "/nonexistent/m.onnx: No such file or directory");
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_onnx_load(FIXTURES, &g, &d), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(d.msg, "not a regular file"));
}
END_TEST

/* ---- valid fixtures ----------------------------------------------------------------------- */

/* torch's Shape->Gather->Unsqueeze->Concat->Reshape folds to one reshape with a fixed shape;
 * the result is checked numerically against z = 0.5 * x.reshape(2,60) @ w^T + 2 * bias. */
START_TEST(torch_chain_folds) {
  lb_graph *g = load_fixture_nodes("ok_torch_chain", 2);
  const lb_node *r = node_op(g, "reshape", LB_OP_RESHAPE);
  ck_assert_uint_eq(r->n_in, 1);
  assert_dims(lb_val(g, r->out[0]), 2, (int64_t[]){2, 60});
  const lb_node *fc = node_named(g, "fc");
  ck_assert_str_eq(fc->onnx_op, "Gemm");
  ck_assert_int_eq(fc->attr.trans_b, 1);
  ck_assert_int_eq(fc->attr.trans_a, 0);
  ck_assert_float_eq(fc->attr.alpha, 0.5f);
  ck_assert_float_eq(fc->attr.beta, 2.0f);
  ck_assert_uint_eq(lb_graph_find_value(g, "shp"), LB_NONE); /* folded and compacted away */
  float x[120], z[8];
  for (int i = 0; i < 120; i++) x[i] = (float)((i * 37) % 11) - 5.0f;
  lb_tensor in = {LB_DTYPE_F32, 4, {2, 3, 4, 5}, x}, out;
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_interp_run(g, &in, &out, &d) == 0, "%s", d.msg);
  const float *w = value_named(g, "w")->data, *b = value_named(g, "bias")->data;
  for (int m = 0; m < 2; m++)
    for (int n = 0; n < 4; n++) {
      double acc = 0;
      for (int k = 0; k < 60; k++) acc += (double)x[m * 60 + k] * w[n * 60 + k];
      z[m * 4 + n] = (float)(0.5 * acc + 2.0 * b[n]);
      ck_assert_float_eq_tol(((float *)out.data)[m * 4 + n], z[m * 4 + n], 1e-4);
    }
  lb_free(out.data);
  lb_graph_free(g);
}
END_TEST

START_TEST(storage_forms) {
  lb_graph *g = load_fixture("ok_storage");
  ck_assert_uint_eq(g->n_outputs, 12);
  const float *f = value_named(g, "raw_f32")->data;
  ck_assert_float_eq(f[0], 1.5f);
  ck_assert_float_eq(f[2], 3.25f);
  f = value_named(g, "f32")->data;
  ck_assert_float_eq(f[1], -0.25f);
  lb_value *v = value_named(g, "f64");
  ck_assert_int_eq(v->dtype, LB_DTYPE_F64);
  ck_assert_double_eq(((double *)v->data)[0], 1e-3);
  v = value_named(g, "i64");
  ck_assert_int_eq(((int64_t *)v->data)[0], -(INT64_C(1) << 40));
  ck_assert_int_eq(((int32_t *)value_named(g, "i32")->data)[1], 100000);
  ck_assert_int_eq(((int16_t *)value_named(g, "i16")->data)[0], -300);
  v = value_named(g, "i8");
  ck_assert_int_eq(v->dtype, LB_DTYPE_I8);
  ck_assert_int_eq(((int8_t *)v->data)[0], -128);
  ck_assert_int_eq(((int8_t *)v->data)[2], 127);
  v = value_named(g, "u8");
  assert_dims(v, 2, (int64_t[]){2, 1});
  ck_assert_int_eq(((uint8_t *)v->data)[1], 255);
  v = value_named(g, "b");
  ck_assert_int_eq(v->dtype, LB_DTYPE_BOOL);
  ck_assert_int_eq(((uint8_t *)v->data)[0], 1);
  ck_assert_int_eq(((uint8_t *)v->data)[1], 0);
  ck_assert_int_eq(((int8_t *)value_named(g, "raw_i8")->data)[0], -5);
  v = value_named(g, "scalar");
  ck_assert_int_eq(v->rank, 0);
  ck_assert_float_eq(((float *)v->data)[0], 4.0f);
  v = value_named(g, "empty");
  assert_dims(v, 2, (int64_t[]){0, 3});
  ck_assert_uint_eq(v->nbytes, 0);
  lb_graph_free(g);
}
END_TEST

/* auto_pad: input 8x7, kernel 3, stride 2 -> out 4x4, total padding 1 (rows) and 2 (cols). */
START_TEST(auto_pad) {
  lb_graph *g = load_fixture("ok_autopad");
  assert_i64s(node_named(g, "same_upper")->attr.pads, (int64_t[]){0, 1, 1, 1}, 4);
  assert_i64s(node_named(g, "same_lower")->attr.pads, (int64_t[]){1, 1, 0, 1}, 4);
  assert_i64s(node_named(g, "valid")->attr.pads, (int64_t[]){0, 0, 0, 0}, 4);
  const lb_node *p = node_op(g, "pool", LB_OP_MAX_POOL);
  assert_i64s(p->attr.pads, (int64_t[]){0, 0, 0, 1}, 4);
  assert_i64s(p->attr.kernel, (int64_t[]){2, 2}, 2);
  const lb_node *c = node_named(g, "grouped");
  ck_assert_int_eq(c->attr.group, 2);
  ck_assert_int_eq(c->attr.n_spatial, 2);
  assert_i64s(c->attr.kernel, (int64_t[]){3, 3}, 2);
  assert_i64s(c->attr.dilations, (int64_t[]){2, 1}, 2);
  assert_i64s(c->attr.pads, (int64_t[]){1, 0, 2, 1}, 4);
  assert_dims(lb_val(g, c->out[0]), 4, (int64_t[]){1, 4, 7, 6});
  assert_dims(lb_val(g, node_named(g, "same_upper")->out[0]), 4, (int64_t[]){1, 3, 4, 4});
  lb_graph_free(g);
}
END_TEST

START_TEST(opset10_attribute_forms) {
  lb_graph *g = load_fixture("ok_opset10");
  const lb_node *n = node_named(g, "clip");
  ck_assert_float_eq(n->attr.clip_min, -1.0f);
  ck_assert_float_eq(n->attr.clip_max, 2.0f);
  n = node_named(g, "pad");
  ck_assert_int_eq(n->attr.pad_mode, LB_PAD_REFLECT);
  assert_i64s(n->attr.pads, (int64_t[]){0, 1, 0, 2}, 4);
  n = node_named(g, "unsq"); /* axes [-1, 0] of the rank-4 result, sorted */
  ck_assert_int_eq(n->attr.n_axes, 2);
  assert_i64s(n->attr.axes, (int64_t[]){0, 3}, 2);
  n = node_named(g, "softmax");
  ck_assert_int_eq(n->attr.legacy_2d, 1);
  ck_assert_int_eq(n->attr.axis, 1);
  n = node_named(g, "mean");
  ck_assert_int_eq(n->attr.keepdims, 0);
  assert_i64s(n->attr.axes, (int64_t[]){1}, 1);
  assert_dims(lb_val(g, n->out[0]), 1, (int64_t[]){3});
  ck_assert_int_eq(node_named(g, "flat")->attr.axis, 0);
  lb_graph_free(g);
}
END_TEST

START_TEST(opset13_input_forms) {
  /* Dropout and the inner Identity are aliases; the Identity producing output y stays. */
  lb_graph *g = load_fixture_nodes("ok_opset13", 9);
  const lb_node *n = node_named(g, "clip");
  ck_assert_uint_eq(n->n_in, 1);
  ck_assert_float_eq(n->attr.clip_min, 0.25f);
  ck_assert(isinf(n->attr.clip_max) && n->attr.clip_max > 0);
  n = node_named(g, "pad");
  ck_assert_float_eq(n->attr.pad_value, -1.0f);
  ck_assert_int_eq(n->attr.pad_mode, LB_PAD_CONSTANT);
  assert_i64s(n->attr.pads, (int64_t[]){1, 0, 1, 0}, 4);
  n = node_named(g, "sq"); /* no axes: every size-1 dim */
  assert_i64s(n->attr.axes, (int64_t[]){0}, 1);
  n = node_named(g, "softmax");
  ck_assert_int_eq(n->attr.legacy_2d, 0);
  ck_assert_int_eq(n->attr.axis, 1);
  n = node_named(g, "tr");
  ck_assert_str_eq(lb_val(g, n->in[0])->name, "sm"); /* through the removed Dropout/Identity */
  assert_i64s(n->attr.axes, (int64_t[]){1, 0}, 2);
  ck_assert_int_eq(node_named(g, "gat")->attr.axis, 1);
  ck_assert_int_eq(node_named(g, "cat")->attr.axis, 1);
  node_op(g, "out_ident", LB_OP_IDENTITY);
  ck_assert_str_eq(lb_val(g, g->outputs[0])->name, "y");
  assert_dims(lb_val(g, g->outputs[0]), 2, (int64_t[]){3, 4});
  lb_graph_free(g);
}
END_TEST

START_TEST(opset18_axes_inputs) {
  lb_graph *g = load_fixture("ok_opset18");
  const lb_node *n = node_named(g, "pad"); /* pads [2, 3] on axis -1 of a rank-3 tensor */
  assert_i64s(n->attr.pads, (int64_t[]){0, 0, 2, 0, 0, 3}, 6);
  ck_assert_int_eq(n->attr.pad_mode, LB_PAD_EDGE);
  n = node_named(g, "mean");
  ck_assert_int_eq(n->attr.n_axes, 1);
  ck_assert_int_eq(n->attr.keepdims, 1);
  node_op(g, "noop", LB_OP_IDENTITY); /* a graph output keeps its node */
  lb_value *sh = value_named(g, "sh"); /* Shape(start=-2) of [3,2,6], folded */
  ck_assert_ptr_nonnull(sh->data);
  assert_i64s(sh->data, (int64_t[]){2, 6}, 2);
  lb_graph_free(g);
}
END_TEST

/* Per-axis int8 weights [-3, 4 | 127, -128] with scales [0.5, 0.25] fold to floats. */
START_TEST(qdq) {
  lb_graph *g = load_fixture_nodes("ok_qdq", 3);
  const lb_node *q = node_op(g, "q", LB_OP_QUANTIZE);
  ck_assert_int_eq(lb_val(g, q->out[0])->dtype, LB_DTYPE_U8);
  node_op(g, "dq", LB_OP_DEQUANTIZE);
  const lb_node *conv = node_named(g, "conv");
  const lb_value *w = lb_val(g, conv->in[1]);
  ck_assert_ptr_nonnull(w->data);
  const float want[4] = {-1.5f, 2.0f, 31.75f, -32.0f};
  for (int i = 0; i < 4; i++) ck_assert_float_eq(((const float *)w->data)[i], want[i]);
  lb_graph_free(g);
}
END_TEST

START_TEST(misc_ops) {
  lb_graph *g = load_fixture_nodes("ok_misc", 15);
  ck_assert_float_eq_tol(node_named(g, "bn")->attr.epsilon, 1e-3f, 1e-9);
  ck_assert_float_eq_tol(node_named(g, "leaky")->attr.alpha, 0.2f, 1e-7);
  const lb_node *n = node_named(g, "hsig");
  ck_assert_float_eq(n->attr.alpha, 0.25f);
  ck_assert_float_eq_tol(n->attr.beta, 0.4f, 1e-7);
  n = node_named(g, "avg");
  ck_assert_int_eq(n->attr.ceil_mode, 1);
  ck_assert_int_eq(n->attr.count_include_pad, 1);
  assert_dims(lb_val(g, n->out[0]), 4, (int64_t[]){1, 3, 5, 5});
  n = node_named(g, "max");
  assert_i64s(n->attr.dilations, (int64_t[]){2, 2}, 2);
  assert_dims(lb_val(g, n->out[0]), 4, (int64_t[]){1, 3, 3, 3});
  assert_dims(lb_val(g, g->outputs[0]), 2, (int64_t[]){1, 5});
  lb_graph_free(g);
}
END_TEST

/* A constant result over LB's fold limit (64 MiB) stays a run-time node with constant input. */
START_TEST(too_big_to_fold) {
  lb_graph *g = load_fixture_nodes("ok_nofold", 2);
  const lb_node *p = node_op(g, "big_pad", LB_OP_PAD);
  ck_assert_ptr_nonnull(lb_val(g, p->in[0])->data);
  ck_assert_ptr_null(lb_val(g, p->out[0])->data);
  assert_dims(lb_val(g, p->out[0]), 2, (int64_t[]){4097, 4097});
  assert_i64s(p->attr.pads, (int64_t[]){0, 0, 4096, 4096}, 4);
  lb_graph_free(g);
}
END_TEST

/* ---- ONNX's test data ------------------------------------------------------------------- */

/* Imports NODE_DATA/name, runs it on input_0.pb and compares with output_0.pb. */
static void run_node_test(const char *name, lb_graph **keep) {
  char path[512];
  snprintf(path, sizeof path, NODE_DATA "%s/model.onnx", name);
  lb_graph *g = load_ok(path);
  lb_tensor in[4], out[1], want;
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_uint_le(g->n_inputs, 4);
  for (uint32_t i = 0; i < g->n_inputs; i++) {
    snprintf(path, sizeof path, NODE_DATA "%s/test_data_set_0/input_%u.pb", name, i);
    ck_assert_msg(lb_onnx_load_tensor(path, &in[i], &d) == 0, "%s", d.msg);
  }
  snprintf(path, sizeof path, NODE_DATA "%s/test_data_set_0/output_0.pb", name);
  ck_assert_msg(lb_onnx_load_tensor(path, &want, &d) == 0, "%s", d.msg);
  ck_assert_uint_eq(g->n_outputs, 1);
  ck_assert_msg(lb_interp_run(g, in, out, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(out[0].dtype, want.dtype);
  ck_assert_int_eq(lb_tensor_numel(&out[0]), lb_tensor_numel(&want));
  size_t nb = lb_dtype_bytes(want.dtype, lb_tensor_numel(&want));
  if (want.dtype == LB_DTYPE_F32)
    for (int64_t i = 0; i < lb_tensor_numel(&want); i++)
      ck_assert_float_eq_tol(((float *)out[0].data)[i], ((float *)want.data)[i], 1e-4);
  else
    ck_assert_int_eq(memcmp(out[0].data, want.data, nb), 0);
  for (uint32_t i = 0; i < g->n_inputs; i++) lb_free(in[i].data);
  lb_free(out[0].data);
  lb_free(want.data);
  if (keep)
    *keep = g;
  else
    lb_graph_free(g);
}

START_TEST(conv_with_strides_padding) {
  lb_graph *g;
  run_node_test("test_conv_with_strides_padding", &g);
  ck_assert_uint_eq(g->n_nodes, 1);
  const lb_node *c = &g->nodes[0];
  ck_assert_int_eq(c->op, LB_OP_CONV);
  ck_assert_str_eq(c->name, "op_0");
  assert_i64s(c->attr.strides, (int64_t[]){2, 2}, 2);
  assert_i64s(c->attr.pads, (int64_t[]){1, 1, 1, 1}, 4);
  assert_i64s(c->attr.kernel, (int64_t[]){3, 3}, 2);
  assert_dims(lb_val(g, c->out[0]), 4, (int64_t[]){1, 1, 4, 3});
  lb_graph_free(g);
}
END_TEST

static const char *const node_tests[] = {
    "test_shape_start_1",       "test_shape_end_negative_1", "test_constant",
    "test_flatten_negative_axis1", "test_gather_negative_indices", "test_transpose_default",
    "test_concat_3d_axis_negative_2", "test_softmax_axis_0",  "test_maxpool_2d_same_lower",
    "test_averagepool_2d_ceil", "test_gemm_alpha",           "test_reduce_mean_keepdims_example",
};

START_TEST(node_test) { run_node_test(node_tests[_i], NULL); }
END_TEST

/* Shape of a static input and Constant nodes become constants: no nodes remain. */
START_TEST(shape_folds) {
  lb_graph *g = load_ok(NODE_DATA "test_shape_start_1/model.onnx");
  ck_assert_uint_eq(g->n_nodes, 0);
  const lb_value *y = lb_val(g, g->outputs[0]);
  ck_assert_int_eq(y->dtype, LB_DTYPE_I64);
  assert_dims(y, 1, (int64_t[]){2});
  assert_i64s(y->data, (int64_t[]){4, 5}, 2);
  lb_graph_free(g);
}
END_TEST

/* In ONNX's Reshape tests the shape is a graph input: not constant, so a clear error. */
START_TEST(reshape_shape_input) {
  lb_graph *g;
  lb_diag d;
  lb_diag_clear(&d);
  const char *p = NODE_DATA "test_reshape_reordered_all_dims/model.onnx";
  ck_assert_int_eq(lb_onnx_load(p, &g, &d), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(d.msg, "(Reshape): input[1] (shape) \"shape\" must be a constant"));
}
END_TEST

START_TEST(load_tensor) {
  lb_tensor t;
  lb_diag d;
  lb_diag_clear(&d);
  const char *p = NODE_DATA "test_conv_with_strides_padding/test_data_set_0/input_1.pb";
  ck_assert_msg(lb_onnx_load_tensor(p, &t, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(t.dtype, LB_DTYPE_F32);
  ck_assert_int_eq(t.rank, 4);
  ck_assert_int_eq(lb_tensor_numel(&t), 9); /* the 1x1x3x3 all-ones kernel */
  for (int i = 0; i < 9; i++) ck_assert_float_eq(((float *)t.data)[i], 1.0f);
  lb_free(t.data);
  ck_assert_int_eq(lb_onnx_load_tensor(FIXTURES "bad_garbage.onnx", &t, &d), LB_ERR_INPUT);
  ck_assert_ptr_null(t.data);
  ck_assert_ptr_nonnull(strstr(d.msg, "bad_garbage.onnx: not a valid TensorProto"));
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_onnx_load_tensor("/nonexistent.pb", &t, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, "/nonexistent.pb: No such file or directory");
}
END_TEST

/* ---- robustness --------------------------------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc(*len ? *len : 1);
  ck_assert_uint_eq(fread(buf, 1, *len, f), *len);
  fclose(f);
  return buf;
}

/* Every prefix of a valid model either imports or fails with LB_ERR_INPUT; none crashes. */
START_TEST(every_truncation) {
  size_t len;
  unsigned char *buf = slurp(FIXTURES "ok_misc.onnx", &len);
  int failed = 0;
  for (size_t n = 0; n < len; n++) {
    lb_graph *g;
    lb_diag d;
    lb_diag_clear(&d);
    int rc = lb_onnx_load_buffer(buf, n, "cut.onnx", &g, &d);
    ck_assert_msg(rc == 0 || rc == LB_ERR_INPUT, "prefix %zu: rc %d %s", n, rc, d.msg);
    if (rc) {
      ck_assert_ptr_null(g);
      ck_assert(!strncmp(d.msg, "cut.onnx: ", 10));
      failed++;
    }
    lb_graph_free(g);
  }
  ck_assert_int_ge(failed, (int)len / 2);
  free(buf);
}
END_TEST

static const char *const oom_fixtures[] = {"ok_torch_chain", "ok_qdq", "ok_opset13",
                                            "ok_storage"};

typedef struct oom_import {
  const unsigned char *buf;
  size_t len;
  const lb_graph *ref;
} oom_import;

/* Imports the model in memory: no graph on failure, ref's nodes and values on success. */
static int import_op(void *ctx) {
  const oom_import *o = ctx;
  lb_graph *g;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_onnx_load_buffer(o->buf, o->len, "m.onnx", &g, &d);
  if (rc) {
    ck_assert_ptr_null(g);
    return rc;
  }
  ck_assert_uint_eq(g->n_nodes, o->ref->n_nodes);
  ck_assert_uint_eq(g->n_values, o->ref->n_values);
  lb_graph_free(g);
  return 0;
}

/* Failing the Nth allocation and every one after it, for every N: LB_ERR_NOMEM, no leak
 * (LeakSanitizer), no crash. */
START_TEST(every_allocation_failure) {
  char path[512];
  snprintf(path, sizeof path, FIXTURES "%s.onnx", oom_fixtures[_i]);
  oom_import o = {NULL, 0, load_ok(path)};
  unsigned char *buf = slurp(path, &o.len);
  o.buf = buf;
  ck_assert_int_gt(lb_test_oom_sweep(import_op, &o, 1, oom_fixtures[_i]) - 1, 10); /* allocations */
  lb_graph_free((lb_graph *)o.ref);
  free(buf);
}
END_TEST

int main(void) {
  const TTest *fixtures[] = {bad_fixtures_listed, missing_file, torch_chain_folds, storage_forms,
                             auto_pad, opset10_attribute_forms, opset13_input_forms,
                             opset18_axes_inputs, qdq, misc_ops, too_big_to_fold};
  const TTest *data[] = {conv_with_strides_padding, shape_folds, reshape_shape_input, load_tensor};
  Suite *s = suite_create("onnx");
  tcase_add_loop_test(lb_test_case(s, "fixtures", fixtures, LB_TEST_N(fixtures)), bad_fixture, 0,
                      N_BAD);
  tcase_add_loop_test(lb_test_case(s, "onnx_test_data", data, LB_TEST_N(data)), node_test, 0,
                      LB_TEST_N(node_tests));
  tcase_add_loop_test(lb_test_case(s, "robustness", &every_truncation, 1),
                      every_allocation_failure, 0, LB_TEST_N(oom_fixtures));
  return lb_test_run(s);
}
