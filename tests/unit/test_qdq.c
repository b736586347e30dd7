/* QDQ import of models written the way ONNX Runtime's quantize_static writes them
 * (tests/models/qdq/, made by tools/make_quant_models.py): which layers become integer and what
 * the report says about the others; the integer graph against the fp32 semantics of the QDQ
 * graph (ONNX's QuantizeLinear/DequantizeLinear run by the interpreter) on 8 samples; the JIT
 * bit-exact against the interpreter on every integer tensor, AArch64 AOT under qemu byte-exact
 * (also the multi-input model); Cast in the importer. float16 and 16-bit QDQ (opset 21): outputs
 * against numpy's ONNX semantics from the generator, Q/DQ pairs element by element against
 * ONNX's definition computed here, and the refused forms. */
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
#include "../check_main.h"
#include "../oom.h"
#include "../quick.h"

#define QDQ_DIR LB_SOURCE_DIR "/tests/models/qdq/"
#define MULTI LB_SOURCE_DIR "/tests/models/multi/"

typedef struct qdq_case {
  const char *name;
  int n_int, n_f32; /* integer layers after the import; fp32 layers next to QDQ nodes */
  const char *why;  /* text the report must hold */
  double lsbs;      /* tolerance against the fp32 QDQ semantics, in steps of the last Q (one
                     * requantize may round differently from quantize(fp32 op), and fp32
                     * biases, qdq_qat_s8's, are rounded to int32 at s_x * s_w) */
} qdq_case;

static const qdq_case cases[] = {
    {"qdq_cnn_u8", 7, 1, "y_Softmax                    softmax          f32  softmax has no integer kernel", 1},
    {"qdq_mlp_s8", 6, 2, "out_Add                      add              f32  input[1] 'fc3_b' is an fp32 constant", 1},
    {"qdq_mlp_u8", 6, 2, "input[1] 'fc3_b' is an fp32 constant, not a DequantizeLinear of integers", 1},
    {"qdq_mixed_nozp", 8, 2, "cat2_Concat                  concat           f32  input[0] has scale "
                              "0.00392157, zero point 0 but the output 0.0106172, 0 (concat copies "
                              "integers: one scale and zero point)", 1},
    {"qdq_qat_s8", 5, 0, "QDQ import: 5 integer layers", 1},
    {"qdq_fp16_cnn", 6, 1, "QDQ import: 6 integer layers", 1},
    {"qdq16_mlp", 0, 6, "mm_MatMul                    matmul           f32  input[1] 'fc2_w_dq' has "
                        "weights beyond 8 bits (16-bit QDQ): no 16-bit integer combination, runs fp32", 1},
};
#define N_CASES LB_TEST_N(cases)

static lb_graph *load(const char *name) {
  char path[512];
  snprintf(path, sizeof path, QDQ_DIR "%s.onnx", name);
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_msg(lb_onnx_load(path, &g, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_pass_prepare_fp32(g, &d) == 0, "%s", d.msg);
  return g;
}

/* The imported integer graph; the report goes to *report (malloc'd) when asked. */
static lb_graph *import(const char *name, char **report) {
  lb_graph *g = load(name);
  size_t len;
  FILE *f = report ? open_memstream(report, &len) : NULL;
  lb_diag d = {0};
  ck_assert_msg(lb_qdq_import(g, f, &d) == 0, "%s: %s", name, d.msg);
  if (f) fclose(f);
  return g;
}

static int count_int(const lb_graph *g) {
  int n = 0;
  for (uint32_t k = 0; k < g->n_nodes; k++) {
    lb_op op = g->nodes[k].op;
    n += op != LB_OP_QUANTIZE && op != LB_OP_DEQUANTIZE &&
         !lb_dtype_is_float(g->values[g->nodes[k].out[0]].dtype);
  }
  return n;
}

START_TEST(import_and_report) {
  const qdq_case *c = &cases[_i];
  char *report = NULL;
  lb_graph *g = import(c->name, &report);
  ck_assert_int_eq(count_int(g), c->n_int);
  char line[120];
  snprintf(line, sizeof line, "QDQ import: %d integer layers, %d fp32 next to QDQ nodes\n",
           c->n_int, c->n_f32);
  ck_assert_msg(strstr(report, line), "%s: report:\n%s", c->name, report);
  ck_assert_msg(strstr(report, c->why), "%s: report:\n%s", c->name, report);
  free(report);
  lb_graph_free(g);
}
END_TEST

/* Sample i of a [N, ...] tensor as a model input of shape v. */
static lb_tensor sample(const lb_tensor *x, const lb_value *v, int64_t i) {
  lb_tensor t = {v->dtype, v->rank, {0}, NULL};
  memcpy(t.dims, v->dims, sizeof t.dims);
  size_t per = lb_dtype_bytes(v->dtype, lb_value_numel(v));
  t.data = (char *)x->data + (size_t)i * per;
  return t;
}

/* Scale of the last QuantizeLinear of g (one step of the quantized signal nearest the end). */
static float last_q_scale(const lb_graph *g) {
  for (uint32_t k = g->n_nodes; k-- > 0;)
    if (g->nodes[k].op == LB_OP_QUANTIZE)
      return ((const float *)g->values[g->nodes[k].in[1]].data)[0];
  return 0;
}

START_TEST(integer_vs_qdq_semantics) {
  const qdq_case *c = &cases[_i];
  lb_graph *f = load(c->name), *q = import(c->name, NULL);
  char path[512];
  snprintf(path, sizeof path, QDQ_DIR "%s_input.npy", c->name);
  lb_tensor x;
  lb_diag d = {0};
  ck_assert_msg(lb_npy_read(path, &x, &d) == 0, "%s", d.msg);
  double tol = c->lsbs * last_q_scale(f), worst = 0;
  for (int64_t i = 0; i < x.dims[0]; i++) {
    lb_tensor in = sample(&x, &f->values[f->inputs[0]], i), want, got;
    ck_assert_msg(lb_interp_run(f, &in, &want, &d) == 0, "%s", d.msg);
    ck_assert_msg(lb_interp_run(q, &in, &got, &d) == 0, "%s", d.msg);
    for (int64_t e = 0; e < lb_tensor_numel(&want); e++)
      worst = fmax(worst, fabs(((float *)got.data)[e] - ((float *)want.data)[e]));
    lb_free(want.data), lb_free(got.data);
  }
  printf("test_qdq: %s: integer vs fp32 QDQ semantics, max |diff| %.3g (tolerance %.3g)\n",
         c->name, worst, tol);
  ck_assert_msg(worst <= tol, "%s: max |diff| %g > %g", c->name, worst, tol);
  lb_free(x.data);
  lb_graph_free(f), lb_graph_free(q);
}
END_TEST

/* Integer tensors bit for bit, fp32 ones (layers after a dequantize) within 1e-5 relative. */
static void same(const lb_tensor *got, const lb_tensor *want, const char *what) {
  ck_assert_int_eq(got->dtype, want->dtype);
  int64_t n = lb_tensor_numel(want);
  if (want->dtype != LB_DTYPE_F32) {
    ck_assert_msg(!memcmp(got->data, want->data, lb_dtype_bytes(want->dtype, n)), "%s", what);
    return;
  }
  double m = 1e-3;
  for (int64_t e = 0; e < n; e++) m = fmax(m, fabs(((const float *)want->data)[e]));
  for (int64_t e = 0; e < n; e++)
    ck_assert_msg(fabs(((const float *)got->data)[e] - ((const float *)want->data)[e]) <= 1e-5 * m,
                  "%s: element %lld", what, (long long)e);
}

/* Every integer value of g becomes a graph output too (at most 48 in all). */
static void expose_integers(lb_graph *g) {
  for (uint32_t k = 0; k < g->n_nodes && g->n_outputs < 48; k++) {
    uint32_t v = g->nodes[k].out[0];
    if (!lb_dtype_is_float(g->values[v].dtype) && !g->values[v].is_output)
      ck_assert_int_eq(lb_graph_add_output(g, v), 0);
  }
}

static const char *const jit_specs[] = {"x86-64-avx2", "host"};

START_TEST(jit_bit_exact) {
  const qdq_case *c = &cases[_i / 2];
  lb_graph *q = import(c->name, NULL);
  expose_integers(q);
  lb_diag d = {0};
  lb_spec *s = load_spec(jit_specs[_i % 2]);
  char path[512], what[300];
  snprintf(path, sizeof path, QDQ_DIR "%s_input.npy", c->name);
  lb_tensor x, want[48], got[48];
  ck_assert_msg(lb_npy_read(path, &x, &d) == 0, "%s", d.msg);
  if (lb_target_host_check(s, &d) != 0) {
    printf("test_qdq: this host cannot run %s: skipped\n", jit_specs[_i % 2]);
  } else {
    lb_jit *j = NULL;
    ck_assert_msg(lb_jit_compile(q, s, NULL, &j, &d) == 0, "%s", d.msg);
    for (int64_t i = 0; i < x.dims[0]; i++) {
      lb_tensor in = sample(&x, &q->values[q->inputs[0]], i);
      ck_assert_msg(lb_interp_run(q, &in, want, &d) == 0, "%s", d.msg);
      ck_assert_msg(lb_jit_run_tensors(j, q, &in, got, &d) == 0, "%s", d.msg);
      for (uint32_t o = 0; o < q->n_outputs; o++) {
        snprintf(what, sizeof what, "%s on %s, sample %lld, output '%s'", c->name,
                 jit_specs[_i % 2], (long long)i, q->values[q->outputs[o]].name);
        same(&got[o], &want[o], what);
        lb_free(got[o].data), lb_free(want[o].data);
      }
    }
    lb_jit_free(j);
  }
  lb_free(x.data);
  lb_spec_free(s);
  lb_graph_free(q);
}
END_TEST

/* The normalization: ORT's s8 bias initializer of an Add between u8 activations is read as u8
 * with its zero point moved by 128, so the Add runs integer. */
START_TEST(unfolded_bias_operand) {
  lb_graph *q = import("qdq_mlp_u8", NULL);
  uint32_t add = LB_NONE;
  for (uint32_t k = 0; k < q->n_nodes; k++)
    if (!strcmp(q->nodes[k].name, "lin_Add")) add = k;
  ck_assert_uint_ne(add, LB_NONE);
  const lb_value *y = &q->values[q->nodes[add].out[0]], *b = &q->values[q->nodes[add].in[1]];
  ck_assert(lb_int_node(q, add));
  ck_assert_int_eq(y->dtype, LB_DTYPE_U8);
  ck_assert_int_eq(b->dtype, LB_DTYPE_U8);
  ck_assert_ptr_nonnull(b->data);
  ck_assert_int_eq(b->q.n, 1);
  ck_assert_int_eq(b->q.zero_point[0], 128);
  lb_graph_free(q);
}
END_TEST

/* lowbit's own QDQ export (lowbit quantize) gives the same outputs (40 test samples) with or
 * without the normalization, which may only make more layers integer. */
START_TEST(own_export_unchanged) {
  static const char *const models[][2] = {{"digits_cnn", "digits_calib_x"},
                                          {"digits_ops", "digits_calib_x"}};
  char model[512], calib[512], out[] = "/tmp/lb_qdq_own_XXXXXX.onnx";
  snprintf(model, sizeof model, LB_SOURCE_DIR "/tests/models/%s.onnx", models[_i][0]);
  snprintf(calib, sizeof calib, LB_SOURCE_DIR "/tests/models/%s.npy", models[_i][1]);
  lb_qcli o = {.quantize = "int8", .calib = calib};
  lb_graph *q = NULL, *a = NULL, *b = NULL;
  lb_diag d = {0};
  ck_assert_msg(lb_qcli_build(&o, model, "x86-64-avx2", LB_REALIZE_QDQ, NULL, NULL, NULL, &q, &d) == 0,
                "%s", d.msg);
  int fd = mkstemps(out, 5);
  ck_assert_int_ge(fd, 0);
  close(fd);
  ck_assert_msg(lb_qdq_write(q, out, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_onnx_load(out, &a, &d) == 0 && lb_pass_prepare_fp32(a, &d) == 0 &&
                    lb_quant_qdq_import(a, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_onnx_load(out, &b, &d) == 0 && lb_pass_prepare_fp32(b, &d) == 0 &&
                    lb_qdq_import(b, NULL, &d) == 0, "%s", d.msg);
  ck_assert_int_ge(count_int(b), count_int(a)); /* digits_ops: Q moves before an Unsqueeze */
  lb_tensor x, ya, yb;
  ck_assert_msg(lb_npy_read(LB_SOURCE_DIR "/tests/models/digits_test_x.npy", &x, &d) == 0, "%s",
                d.msg);
  for (int64_t i = 0; i < 40; i++) {
    lb_tensor in = sample(&x, &a->values[a->inputs[0]], i);
    ck_assert_msg(lb_interp_run(a, &in, &ya, &d) == 0 && lb_interp_run(b, &in, &yb, &d) == 0,
                  "%s", d.msg);
    ck_assert(!memcmp(ya.data, yb.data, lb_dtype_bytes(ya.dtype, lb_tensor_numel(&ya))));
    lb_free(ya.data), lb_free(yb.data);
  }
  unlink(out);
  lb_free(x.data);
  lb_graph_free(q), lb_graph_free(a), lb_graph_free(b);
}
END_TEST

/* ---- Cast ------------------------------------------------------------------------------ */

START_TEST(cast_matches_numpy) {
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_msg(lb_onnx_load(QDQ_DIR "cast_ops.onnx", &g, &d) == 0, "%s", d.msg);
  lb_tensor in[3], want[3], got[3], jit[3];
  char path[512];
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, QDQ_DIR "cast_ops_in%d.npy", i);
    ck_assert_msg(lb_npy_read(path, &in[i], &d) == 0, "%s", d.msg);
    snprintf(path, sizeof path, QDQ_DIR "cast_ops_out%d.npy", i);
    ck_assert_msg(lb_npy_read(path, &want[i], &d) == 0, "%s", d.msg);
  }
  ck_assert_msg(lb_interp_run(g, in, got, &d) == 0, "%s", d.msg);
  lb_spec *s = load_spec("host");
  lb_jit *j = NULL;
  ck_assert_msg(lb_jit_compile(g, s, NULL, &j, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_jit_run_tensors(j, g, in, jit, &d) == 0, "%s", d.msg);
  for (int i = 0; i < 3; i++) {
    ck_assert_msg(!memcmp(got[i].data, want[i].data, 6 * sizeof(float)), "interp output %d", i);
    ck_assert_msg(!memcmp(jit[i].data, want[i].data, 6 * sizeof(float)), "jit output %d", i);
    lb_free(in[i].data), lb_free(want[i].data), lb_free(got[i].data), lb_free(jit[i].data);
  }
  lb_jit_free(j);
  lb_spec_free(s);
  lb_graph_free(g);
}
END_TEST

/* ---- float16 and 16-bit QDQ ------------------------------------------------------------- */

/* The imported graph (--quantize qdq) on every sample against the generator's numpy reference
 * (NAME_expected.npy: ONNX semantics in float32 on the true uint16/int16 values, float16
 * parameters widened): within one step of the last QuantizeLinear (integer outputs: one unit),
 * or 1e-5 relative for the blocked weights (no Q). */
static const char *const wide_models[] = {"qdq16_mlp", "qdq_fp16_cnn", "qdq_blocked", "qdq16_io"};

static double elem(const lb_tensor *t, int64_t i) {
  return t->dtype == LB_DTYPE_I16 ? ((const int16_t *)t->data)[i] : ((const float *)t->data)[i];
}

START_TEST(wide_vs_numpy) {
  const char *name = wide_models[_i];
  lb_graph *q = import(name, NULL);
  char path[512];
  lb_tensor x, want, got;
  lb_diag d = {0};
  snprintf(path, sizeof path, QDQ_DIR "%s_input.npy", name);
  ck_assert_msg(lb_npy_read(path, &x, &d) == 0, "%s", d.msg);
  snprintf(path, sizeof path, QDQ_DIR "%s_expected.npy", name);
  ck_assert_msg(lb_npy_read(path, &want, &d) == 0, "%s", d.msg);
  const lb_value *out = &q->values[q->outputs[0]];
  double tol = out->dtype == LB_DTYPE_I16 ? 1 : last_q_scale(q), worst = 0, m = 0;
  int64_t per = lb_value_numel(out);
  for (int64_t i = 0; i < x.dims[0]; i++) {
    lb_tensor in = sample(&x, &q->values[q->inputs[0]], i);
    ck_assert_msg(lb_interp_run(q, &in, &got, &d) == 0, "%s", d.msg);
    ck_assert_int_eq(got.dtype, want.dtype);
    for (int64_t e = 0; e < per; e++) {
      worst = fmax(worst, fabs(elem(&got, e) - elem(&want, i * per + e)));
      m = fmax(m, fabs(elem(&want, i * per + e)));
    }
    lb_free(got.data);
  }
  if (tol == 0) tol = 1e-5 * m;
  printf("test_qdq: %s: interpreter vs numpy's ONNX semantics, max |diff| %.3g (tolerance %.3g)\n",
         name, worst, tol);
  ck_assert_msg(worst <= tol, "%s: max |diff| %g > %g", name, worst, tol);
  lb_free(x.data), lb_free(want.data);
  lb_graph_free(q);
}
END_TEST

/* ONNX's QuantizeLinear on the true 16-bit value: saturate(round_half_even(x / s) + z). */
static double q16(float x, float s, int z, int is_u16) {
  double q = (double)nearbyintf(x / s) + z, lo = is_u16 ? 0 : -32768, hi = is_u16 ? 65535 : 32767;
  return q < lo ? lo : q > hi ? hi : q;
}

/* qdq16_elem's outputs from its input and the constants make_quant_models.py gives it. */
static void elem_expected(const float *x, int64_t i, double want[4]) {
  int j = (int)(i % 12);
  float si = (float)(0.001 * (j + 1)), su = 1.0f / 64; /* as numpy rounds it */
  double qu = q16(x[i], su, 40000, 1), qi = q16(x[i], si, (j - 6) * 1000, 0);
  double qm = q16(x[i], 0.003f, 100, 1);
  want[0] = (float)((float)qu - 40000.0f) * su;
  want[1] = (float)((float)qi - (float)((j - 6) * 1000)) * si;
  want[2] = q16(x[i], 0.01f, -5, 0);
  want[3] = (float)((float)qm - 100.0f) * 0.003f;
}

static void check_elem(const lb_tensor *x, const lb_tensor *got, const char *engine) {
  for (int64_t i = 0; i < lb_tensor_numel(x); i++) {
    double want[4];
    elem_expected(x->data, i, want);
    for (int o = 0; o < 4; o++)
      ck_assert_msg(elem(&got[o], i) == want[o], "%s: output %d element %lld: %.9g, want %.9g",
                    engine, o, (long long)i, elem(&got[o], i), want[o]);
  }
}

/* uint16 (shifted to int16 inside), per-axis int16, an int16 graph output and com.microsoft's
 * ops, exactly, on the interpreter and the JIT: ties, saturation at both ends, zero. */
START_TEST(q16_elem_semantics) {
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_msg(lb_onnx_load(QDQ_DIR "qdq16_elem.onnx", &g, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(g->values[g->outputs[2]].dtype, LB_DTYPE_I16);
  lb_tensor x, got[4];
  ck_assert_msg(lb_npy_read(QDQ_DIR "qdq16_elem_input.npy", &x, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_interp_run(g, &x, got, &d) == 0, "%s", d.msg);
  check_elem(&x, got, "interp");
  for (int o = 0; o < 4; o++) lb_free(got[o].data);
  lb_spec *s = load_spec("x86-64-avx2");
  lb_jit *j = NULL;
  ck_assert_msg(lb_jit_compile(g, s, NULL, &j, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_jit_run_tensors(j, g, &x, got, &d) == 0, "%s", d.msg);
  check_elem(&x, got, "jit");
  for (int o = 0; o < 4; o++) lb_free(got[o].data);
  lb_jit_free(j);
  lb_spec_free(s);
  lb_free(x.data);
  lb_graph_free(g);
}
END_TEST

/* Refused forms: a one-line located message, no graph. */
static const char *const refused_models[][2] = {
    {"cast_bad_runtime", "graph.node[0] \"cast\" (Cast): Cast of a run-time f32 tensor to i8 is "
                         "not supported (only uint8, int8 and int32 to float)"},
    {"cast_bad_to", "graph.node[0] \"cast\" (Cast): attribute \"to\": unsupported data type "
                    "uint16 (4)"},
    {"fp16_bad_input", "graph.input[0] \"x\": float16 inputs are not supported: lowbit runs "
                       "float16 models in f32 (keep float inputs"},
    {"fp16_bad_output", "graph.output[0] \"y\": float16 outputs are not supported"},
    {"u16_bad_input", "graph.input[0] \"x\": uint16 inputs are not supported"},
    {"blocked_bad", "graph.node[0] \"q\" (QuantizeLinear): blocked quantization (block_size 2) "
                    "is not supported in QuantizeLinear"},
};

START_TEST(refused) {
  char path[512];
  snprintf(path, sizeof path, QDQ_DIR "%s.onnx", refused_models[_i][0]);
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_int_eq(lb_onnx_load(path, &g, &d), LB_ERR_INPUT);
  ck_assert_msg(strstr(d.msg, refused_models[_i][1]) && !strchr(d.msg, '\n'), "%s", d.msg);
  ck_assert_ptr_null(g);
}
END_TEST

/* Out of memory anywhere in the float16/16-bit import and the QDQ import: allocation N fails,
 * for N = 1, 2, ... until the import completes; every failure is LB_ERR_NOMEM (and leaks
 * nothing under ASan). */
static int wide_import_op(void *path) {
  lb_graph *g = NULL;
  lb_diag d = {0};
  int rc = lb_onnx_load(path, &g, &d);
  if (!rc) rc = lb_pass_prepare_fp32(g, &d);
  if (!rc) rc = lb_qdq_import(g, NULL, &d);
  lb_graph_free(g);
  return rc;
}

START_TEST(wide_import_oom) {
  static const char *const models[] = {"qdq16_elem", "qdq_blocked", "qdq16_mlp", "qdq_fp16_cnn"};
  char path[512];
  snprintf(path, sizeof path, QDQ_DIR "%s.onnx", models[_i]);
  lb_test_oom_sweep(wide_import_op, path, 0, models[_i]);
}
END_TEST

/* ---- AArch64 AOT under qemu, through the CLI ----------------------------------------------
 * `lowbit compile --quantize qdq|int8 --spec aarch64-*` + tests/aot/harness.c, run under
 * qemu, against `lowbit run` (the interpreter) on the same inputs: byte-identical outputs
 * (each model's output is an integer tensor, or one dequantized by one multiply; the 16-bit
 * models run their fp32 layers between int16 quantize/dequantize pairs). */

static const struct {
  const char *model, *inputs[3], *quant, *spec, *cpu;
} arm[] = {
    {"qdq/qdq_mlp_u8", {"qdq/qdq_mlp_u8_input"}, "--quantize qdq", "aarch64-dotprod", "max"},
    {"qdq/qdq_qat_s8", {"qdq/qdq_qat_s8_input"}, "--quantize qdq", "aarch64-neon", "cortex-a72"},
    {"qdq/qdq_fp16_cnn", {"qdq/qdq_fp16_cnn_input"}, "--quantize qdq", "aarch64-dotprod", "max"},
    {"qdq/qdq16_mlp", {"qdq/qdq16_mlp_input"}, "--quantize qdq", "aarch64-dotprod", "max"},
    {"qdq/qdq16_io", {"qdq/qdq16_io_input"}, "--quantize qdq", "aarch64-neon", "cortex-a72"},
    {"multi/multi_input", {"multi/image_test", "multi/ids_test", "multi/aux_test"},
     "--quantize int8 --calib-method max --calib " MULTI "image_calib.npy," MULTI "ids_calib.npy,"
     MULTI "aux_calib.npy",
     "aarch64-i8mm", "max"},
};

static int sh(const char *cmd) {
  int rc = system(cmd);
  if (rc) fprintf(stderr, "test_qdq: failed (%d): %s\n", rc, cmd);
  return rc;
}

/* Sample 0 of each input file as raw bytes: dir/in<k>.bin; the -i arguments into args. */
static void first_samples(int c, const char *dir, char *args, size_t cap) {
  size_t n = 0;
  args[0] = 0;
  for (int k = 0; k < 3 && arm[c].inputs[k]; k++) {
    char path[600];
    lb_tensor x;
    lb_diag d = {0};
    snprintf(path, sizeof path, LB_SOURCE_DIR "/tests/models/%s.npy", arm[c].inputs[k]);
    ck_assert_msg(lb_npy_read(path, &x, &d) == 0, "%s", d.msg);
    size_t per = lb_dtype_bytes(x.dtype, lb_tensor_numel(&x) / x.dims[0]);
    snprintf(path, sizeof path, "%s/in%d.bin", dir, k);
    FILE *f = fopen(path, "wb");
    ck_assert(f && fwrite(x.data, 1, per, f) == per);
    fclose(f);
    lb_free(x.data);
    n += (size_t)snprintf(args + n, cap - n, " %s", path);
  }
}

START_TEST(aarch64_aot) {
  char tmpl[] = "/tmp/lb_qdq_arm_XXXXXX", ins[2000], iargs[2100], cmd[8192];
  char *dir = mkdtemp(tmpl);
  ck_assert_ptr_nonnull(dir);
  first_samples(_i, dir, ins, sizeof ins);
  size_t n = 0;
  for (char *t = strtok(strcpy(cmd, ins), " "); t; t = strtok(NULL, " "))
    n += (size_t)snprintf(iargs + n, sizeof iargs - n, " -i %s", t);
  const char *m = LB_SOURCE_DIR "/tests/models/";
  snprintf(cmd, sizeof cmd, "%s/lowbit run %s%s.onnx%s -o %s/want.bin --spec %s %s 2>/dev/null",
           LB_BINARY_DIR, m, arm[_i].model, iargs, dir, arm[_i].spec, arm[_i].quant);
  ck_assert_int_eq(sh(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s/lowbit compile %s%s.onnx --spec %s %s --name m -o %s/m.o "
           ">/dev/null 2>&1 && aarch64-linux-gnu-gcc -static -O1 -std=c11 -I%s -DLB_HEADER='\"m.h\"' "
           "-DLB_PREFIX=m %s/tests/aot/harness.c %s/m.o -lm -o %s/h && qemu-aarch64 -cpu %s "
           "-L /usr/aarch64-linux-gnu %s/h%s %s/got.bin && cmp %s/got.bin %s/want.bin",
           LB_BINARY_DIR, m, arm[_i].model, arm[_i].spec, arm[_i].quant, dir, dir, LB_SOURCE_DIR,
           dir, dir, arm[_i].cpu, dir, ins, dir, dir, dir);
  ck_assert_msg(sh(cmd) == 0, "%s on %s: AOT output differs from the interpreter", arm[_i].model,
                arm[_i].spec);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  sh(cmd);
}
END_TEST

int main(void) {
  const TTest *tests[] = {unfolded_bias_operand, cast_matches_numpy, q16_elem_semantics};
  TCase *tc;
  Suite *s = lb_test_suite("qdq", tests, LB_TEST_N(tests), &tc);
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, import_and_report, 0, N_CASES);
  tcase_add_loop_test(tc, integer_vs_qdq_semantics, 0, N_CASES);
  tcase_add_loop_test(tc, jit_bit_exact, 0, 2 * N_CASES);
  tcase_add_loop_test(tc, own_export_unchanged, 0, 2);
  tcase_add_loop_test(tc, wide_vs_numpy, 0, LB_TEST_N(wide_models));
  tcase_add_loop_test(tc, refused, 0, LB_TEST_N(refused_models));
  tcase_add_loop_test(tc, wide_import_oom, 0, lb_test_count(4, 2));
  tcase_add_loop_test(tc, aarch64_aot, 0, lb_test_count(LB_TEST_N(arm), 1));
  return lb_test_run(s);
}
