/* The small trained models and their data in tests/models, for the unit tests that quantize
 * them: a .npy by stem, a model imported and prepared by the fp32 passes, sample i of a batch
 * as the model's input, and the top-1 class of a score vector. A failure fails the test. */
#ifndef LB_TESTS_DIGITS_H
#define LB_TESTS_DIGITS_H
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "onnx.h"
#include "passes.h"
#include "quantize.h"
#include "tensor_io.h"

#define LB_TEST_MODELS LB_SOURCE_DIR "/tests/models/"

static inline lb_tensor load_npy(const char *stem) {
  char path[512];
  lb_tensor t;
  lb_diag d = {0};
  snprintf(path, sizeof path, LB_TEST_MODELS "%s.npy", stem);
  ck_assert_msg(lb_npy_read(path, &t, &d) == 0, "%s", d.msg);
  return t;
}

static inline lb_graph *load_prepared(const char *stem) {
  char path[512];
  lb_graph *g;
  lb_diag d = {0};
  snprintf(path, sizeof path, LB_TEST_MODELS "%s.onnx", stem);
  ck_assert_msg(lb_onnx_load(path, &g, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_pass_prepare_fp32(g, &d) == 0, "%s", d.msg);
  return g;
}

/* Sample i of x as g's input (x holds numel(input) floats per sample). */
static inline lb_tensor sample(const lb_graph *g, const lb_tensor *x, int64_t i) {
  const lb_value *v = &g->values[g->inputs[0]];
  lb_tensor t = {v->dtype, v->rank, {0}, (float *)x->data + i * lb_value_numel(v)};
  memcpy(t.dims, v->dims, sizeof t.dims);
  return t;
}

static inline int64_t argmax(const float *y, int64_t n) {
  int64_t b = 0;
  for (int64_t i = 1; i < n; i++)
    if (y[i] > y[b]) b = i;
  return b;
}

/* Calibrates plan p on calib with method m and realizes g in mode (asserting both succeed). */
static inline lb_graph *digits_realize(const lb_graph *g, lb_qplan *p, const lb_tensor *calib,
                                       lb_calib_method m, lb_realize_mode mode) {
  lb_calib_opts o = {m, 0, 0};
  lb_diag d = {0};
  lb_graph *q;
  ck_assert_msg(lb_quant_calibrate(g, p, calib, &o, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_quant_realize(g, p, mode, &q, &d) == 0, "%s", d.msg);
  return q;
}

#endif
