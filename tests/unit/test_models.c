/* Real models against PyTorch: imports the digits models made by tools/make_models.py, runs the
 * reference interpreter, and the LLVM JIT for the host (after the fp32 passes), on every test
 * sample and checks that each matches torch's outputs to 1e-4 of their range with the same top-1
 * accuracy. resnet18 and mobilenet_v2 in tests/models/large/ (make_models.py --large) are checked
 * the same way when present. The int8 graphs (calibrated on 100 training samples, for two specs
 * and five calibration methods) must stay within 2.5 points of torch's accuracy, and the JIT must
 * reproduce the interpreter's integer results bit for bit where this host runs the spec.
 * LB_TEST_QUICK: the fp32 checks on the first 60 samples, int8 with one calibration method per
 * model and spec (all five across them), each on every sample with the full assertions. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "onnx.h"
#include "passes.h"
#include "quant.h"
#include "quantize.h"
#include "spec.h"
#include "target.h"
#include "tensor_io.h"

#include "../check_main.h"
#include "../digits.h"
#include "../quick.h"

#define MODELS LB_SOURCE_DIR "/tests/models/"

typedef struct {
  const char *model; /* file stem in tests/models/ */
  const char *x;     /* test inputs [N, ...], sample i is the i-th block of numel(input) floats */
  const char *y;     /* labels [N] int64, or NULL: compare top-1 with torch's instead */
  const char *calib; /* calibration samples in the model's input shape */
} model_case;

static const model_case digits[] = {
    {"digits_mlp", "digits64_test_x", "digits_test_y", "digits64_calib_x"},
    {"digits_cnn", "digits_test_x", "digits_test_y", "digits_calib_x"},
    {"digits_resnet", "digits16_test_x", "digits_test_y", "digits16_calib_x"},
    {"digits_ops", "digits_test_x", "digits_test_y", "digits_calib_x"},
};
#define N_DIGITS LB_TEST_N(digits)

static const model_case large[] = {
    {"large/resnet18", "large/input", NULL, "large/calib"},
    {"large/mobilenet_v2", "large/input", NULL, "large/calib"},
};
#define N_LARGE LB_TEST_N(large)

/* int8: a spec with u8 activations and one with i8 ones; every calibration method. */
static const char *const quant_specs[] = {"x86-64-avx2", "aarch64-dotprod"};
static const char *const quant_methods[] = {"max", "avg-max", "percentile", "kl", "mse"};
#define N_QSPECS LB_TEST_N(quant_specs)
#define N_QMETHODS LB_TEST_N(quant_methods)

enum { ENGINE_INTERP, ENGINE_JIT, ENGINE_COUNT };
static const char *const engine_names[ENGINE_COUNT] = {"interp", "jit"};

/* What one model's run measured. */
typedef struct {
  int64_t n;                  /* samples */
  int64_t classes;
  double max_err, lo, hi;     /* max |ours - torch|, torch's output range */
  double sum_err;             /* sum of |ours - torch| */
  double sum_sq_ref, sum_sq_err; /* sums of torch^2 and (ours - torch)^2, for the SQNR */
  int64_t ok_ours, ok_torch; /* correct top-1 (vs labels, or agreeing with torch) */
  double ms_per_sample;
} result;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Folds one sample's outputs into r; label < 0 means "agree with torch's top-1". */
static void score(result *r, const float *got, const float *ref, int64_t label) {
  for (int64_t k = 0; k < r->classes; k++) {
    double e = fabs((double)got[k] - ref[k]);
    if (!(e <= r->max_err)) r->max_err = e; /* NaN propagates into max_err */
    r->sum_err += e;
    r->sum_sq_err += e * e;
    r->sum_sq_ref += (double)ref[k] * ref[k];
    if (ref[k] < r->lo) r->lo = ref[k];
    if (ref[k] > r->hi) r->hi = ref[k];
  }
  int64_t want = label >= 0 ? label : argmax(ref, r->classes);
  r->ok_ours += argmax(got, r->classes) == want;
  r->ok_torch += argmax(ref, r->classes) == want;
}

/* For the JIT: the fp32 passes, then compilation for the host; g keeps its interface. */
static lb_jit *jit_for(lb_graph *g, const char *model) {
  lb_spec *host = NULL;
  lb_jit *j = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_spec_load("host", &host, &d);
  if (rc == 0) rc = lb_pass_prepare_fp32(g, &d);
  if (rc == 0) rc = lb_jit_compile(g, host, NULL, &j, &d);
  lb_spec_free(host);
  ck_assert_msg(rc == 0, "%s: jit: %s", model, d.msg);
  return j;
}

/* Imports mc's model and readies the engine; the graph has one f32 input and one output. */
static lb_graph *load_graph(const model_case *mc, int engine, lb_jit **jit) {
  char path[1024];
  snprintf(path, sizeof path, MODELS "%s.onnx", mc->model);
  lb_graph *g = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_onnx_load(path, &g, &d);
  ck_assert_msg(rc == 0, "%s: %s", path, d.msg);
  *jit = engine == ENGINE_JIT ? jit_for(g, mc->model) : NULL;
  ck_assert_uint_eq(g->n_inputs, 1);
  ck_assert_uint_eq(g->n_outputs, 1);
  ck_assert_int_eq(g->values[g->inputs[0]].dtype, LB_DTYPE_F32);
  return g;
}

/* Reads mc's inputs x, torch's outputs ref and labels y, checking they agree in count. */
static result load_data(const model_case *mc, int64_t per, lb_tensor *x, lb_tensor *ref,
                        lb_tensor *y) {
  char ref_stem[256];
  snprintf(ref_stem, sizeof ref_stem, "%s_torch_out", mc->model);
  *x = load_npy(mc->x);
  *ref = load_npy(ref_stem);
  ck_assert_int_eq(x->dtype, LB_DTYPE_F32);
  ck_assert_int_eq(ref->dtype, LB_DTYPE_F32);
  ck_assert_int_eq(ref->rank, 2);
  result r = {.n = ref->dims[0], .classes = ref->dims[1], .lo = INFINITY, .hi = -INFINITY};
  ck_assert_int_eq(lb_tensor_numel(x), r.n * per);
  if (mc->y) {
    *y = load_npy(mc->y);
    ck_assert_int_eq(y->dtype, LB_DTYPE_I64);
    ck_assert_int_eq(lb_tensor_numel(y), r.n);
  }
  return r;
}

/* Runs g (with jit, if given) on every sample of mc (the first 60 when quick_fp32) and compares
 * with torch's outputs. */
static result run_graph(const model_case *mc, const lb_graph *g, const lb_jit *jit,
                        int quick_fp32) {
  const lb_value *iv = &g->values[g->inputs[0]];
  int64_t per = lb_value_numel(iv);
  lb_tensor x, ref, y = {0};
  result r = load_data(mc, per, &x, &ref, &y);
  if (quick_fp32 && r.n > 60) r.n = 60;
  lb_diag d;
  lb_diag_clear(&d);
  double t0 = now_ms();
  for (int64_t i = 0; i < r.n; i++) {
    lb_tensor in = {.dtype = LB_DTYPE_F32, .rank = iv->rank, .data = (float *)x.data + i * per};
    memcpy(in.dims, iv->dims, sizeof in.dims);
    lb_tensor out = {0};
    int rc = jit ? lb_jit_run_tensors(jit, g, &in, &out, &d) : lb_interp_run(g, &in, &out, &d);
    ck_assert_msg(rc == 0, "%s sample %lld: %s", mc->model, (long long)i, d.msg);
    ck_assert_int_eq(out.dtype, LB_DTYPE_F32);
    ck_assert_int_eq(lb_tensor_numel(&out), r.classes);
    score(&r, out.data, (const float *)ref.data + i * r.classes,
          mc->y ? ((const int64_t *)y.data)[i] : -1);
    lb_free(out.data);
  }
  r.ms_per_sample = (now_ms() - t0) / (double)r.n;
  lb_free(x.data);
  lb_free(ref.data);
  lb_free(y.data);
  return r;
}

static result run_model(const model_case *mc, int engine) {
  lb_jit *jit;
  lb_graph *g = load_graph(mc, engine, &jit); /* before pointers into g: passes reallocate */
  result r = run_graph(mc, g, jit, lb_test_quick());
  lb_jit_free(jit);
  lb_graph_free(g);
  return r;
}

static void check_model(const model_case *mc, int engine) {
  result r = run_model(mc, engine);
  double range = r.hi - r.lo;
  printf("%-20s %-6s %4lld samples  max|ours-torch| %.3g (range %.3g)  top-1 %lld/%lld (torch "
         "%lld)  %.3f ms/sample\n",
         mc->model, engine_names[engine], (long long)r.n, r.max_err, range,
         (long long)r.ok_ours, (long long)r.n, (long long)r.ok_torch, r.ms_per_sample);
  fflush(stdout);
  ck_assert_msg(range > 0, "%s: torch's outputs are constant", mc->model);
  ck_assert_msg(r.max_err < 1e-4 * range, "%s (%s): max error %g >= 1e-4 * range %g", mc->model,
                engine_names[engine], r.max_err, range);
  ck_assert_msg(r.ok_ours == r.ok_torch, "%s (%s): top-1 %lld != torch %lld", mc->model,
                engine_names[engine], (long long)r.ok_ours, (long long)r.ok_torch);
}

/* Every node but dequantize produces integers: then the JIT must match the interpreter bit for
 * bit (DESIGN: integer graphs are bit-exact across engines). */
static int all_integer(const lb_graph *g) {
  for (uint32_t n = 0; n < g->n_nodes; n++)
    if (g->nodes[n].op != LB_OP_DEQUANTIZE && lb_dtype_is_float(g->values[g->nodes[n].out[0]].dtype))
      return 0;
  return 1;
}

/* The JIT for spec (when this host runs it) against the interpreter on every sample of mc: bit
 * for bit when qg is all integer. Else its fp32 layers may round differently (fma, order), and a
 * one-ulp change before a quantize can move a value one step: within 1e-3 of torch's range. */
static void check_int8_jit(const model_case *mc, const lb_graph *qg, const char *spec,
                           double range) {
  lb_spec *s = NULL;
  lb_jit *j = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_spec_load(spec, &s, &d) == 0, "%s: %s", spec, d.msg);
  int here = lb_target_host_check(s, &d) == 0;
  int rc = here ? lb_jit_compile(qg, s, NULL, &j, &d) : 0;
  lb_spec_free(s);
  ck_assert_msg(rc == 0, "%s int8 %s: jit: %s", mc->model, spec, d.msg);
  if (!here) return;
  lb_tensor x;
  x = load_npy(mc->x);
  const lb_value *iv = &qg->values[qg->inputs[0]];
  int64_t per = lb_value_numel(iv), n = lb_tensor_numel(&x) / per, same = 0;
  double maxd = 0;
  for (int64_t i = 0; i < n; i++) {
    lb_tensor in = {.dtype = LB_DTYPE_F32, .rank = iv->rank, .data = (float *)x.data + i * per};
    memcpy(in.dims, iv->dims, sizeof in.dims);
    lb_tensor a = {0}, b = {0};
    rc = lb_interp_run(qg, &in, &a, &d);
    if (rc == 0) rc = lb_jit_run_tensors(j, qg, &in, &b, &d);
    ck_assert_msg(rc == 0, "%s int8 sample %lld: %s", mc->model, (long long)i, d.msg);
    int64_t k = lb_tensor_numel(&a);
    same += memcmp(a.data, b.data, (size_t)k * sizeof(float)) == 0;
    for (int64_t t = 0; t < k; t++)
      maxd = fmax(maxd, fabs((double)((float *)a.data)[t] - ((float *)b.data)[t]));
    lb_free(a.data);
    lb_free(b.data);
  }
  int exact = all_integer(qg);
  printf("%-20s int8 %-15s jit: %lld/%lld samples bit-exact with the interpreter (%s), max diff "
         "%.3g\n",
         mc->model, spec, (long long)same, (long long)n, exact ? "required" : "fp32 layers", maxd);
  fflush(stdout);
  lb_jit_free(j);
  lb_free(x.data);
  if (exact)
    ck_assert_msg(same == n, "%s int8 %s: jit differs from the interpreter", mc->model, spec);
  else
    ck_assert_msg(maxd <= 1e-3 * range, "%s int8 %s: jit differs by %g", mc->model, spec, maxd);
}

/* The integer graph of mc for spec, calibrated with method (passes/quantize.h's pipeline as the
 * CLI runs it), on the interpreter. Labelled data (digits): at most 9 of 360 (2.5 %) fewer right
 * than torch and a mean error under 2 % of torch's output range. The random-weight large models
 * have top-1 margins (1 % of the range for mobilenet_v2) below int8's error, so there the output
 * must only keep an SQNR above 10 dB (measured: resnet18 ~30, mobilenet_v2 ~13). */
static void check_int8(const model_case *mc, const char *spec, const char *method) {
  char model[1024], calib[1024];
  snprintf(model, sizeof model, MODELS "%s.onnx", mc->model);
  snprintf(calib, sizeof calib, MODELS "%s.npy", mc->calib);
  lb_qcli o = {.quantize = "int8", .calib = calib, .method = method};
  lb_graph *qg = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_qcli_build(&o, model, spec, LB_REALIZE_INT, NULL, NULL, NULL, &qg, &d);
  ck_assert_msg(rc == 0, "%s int8 %s %s: %s", mc->model, spec, method, d.msg);
  uint32_t n_int = 0;
  for (uint32_t i = 0; i < qg->n_nodes; i++) n_int += lb_int_node(qg, i) != 0;
  result r = run_graph(mc, qg, NULL, 0);
  double range = r.hi - r.lo, mean = r.sum_err / (double)(r.n * r.classes);
  double sqnr = 10 * log10(r.sum_sq_ref / r.sum_sq_err);
  printf("%-20s int8 %-15s %-10s %u/%u integer nodes  mean|ours-torch| %.3g (range %.3g)  "
         "SQNR %.1f dB  top-1 %lld/%lld (torch %lld)\n",
         mc->model, spec, method, n_int, qg->n_nodes, mean, range, sqnr, (long long)r.ok_ours,
         (long long)r.n, (long long)r.ok_torch);
  fflush(stdout);
  check_int8_jit(mc, qg, spec, range);
  lb_graph_free(qg);
  ck_assert_msg(n_int > 0, "%s int8 %s: no integer node", mc->model, spec);
  if (!mc->y) {
    ck_assert_msg(sqnr > 10, "%s int8 %s %s: SQNR %.1f dB", mc->model, spec, method, sqnr);
    return;
  }
  ck_assert_msg(r.ok_ours + 9 >= r.ok_torch, "%s int8 %s %s: top-1 %lld, torch %lld", mc->model,
                spec, method, (long long)r.ok_ours, (long long)r.ok_torch);
  ck_assert_msg(mean < 0.02 * range, "%s int8 %s %s: mean error %g >= 2%% of range %g",
                mc->model, spec, method, mean, range);
}

/* Loop index i: model i / ENGINE_COUNT on engine i % ENGINE_COUNT. */
START_TEST(test_digits) { check_model(&digits[_i / ENGINE_COUNT], _i % ENGINE_COUNT); }
END_TEST

/* Loop index i: model, spec, method, the method varying fastest. */
START_TEST(test_digits_int8) {
  int m = _i % N_QMETHODS, s = _i / N_QMETHODS % N_QSPECS, k = _i / (N_QMETHODS * N_QSPECS);
  if (lb_test_quick() && m != (k * N_QSPECS + s) % N_QMETHODS) return;
  check_int8(&digits[k], quant_specs[s], quant_methods[m]);
}
END_TEST

START_TEST(test_large) {
  struct stat st;
  if (stat(MODELS "large", &st) != 0) {
    if (_i == 0) {
      printf("large models skipped: " MODELS "large absent (tools/make_models.py --large)\n");
      fflush(stdout);
    }
    return;
  }
  /* per model: each engine, then int8 for x86-64-avx2 with the default calibration */
  int k = _i / (ENGINE_COUNT + 1), e = _i % (ENGINE_COUNT + 1);
  if (e < ENGINE_COUNT) {
    check_model(&large[k], e);
  } else if (stat(MODELS "large/calib.npy", &st) != 0) {
    printf("%s int8 skipped: no large/calib.npy (rerun tools/make_models.py --large)\n",
           large[k].model);
    fflush(stdout);
  } else {
    check_int8(&large[k], quant_specs[0], "avg-max");
  }
}
END_TEST

/* The committed data is what the accuracy claims rest on: the labels cover all ten classes and
 * torch got most of them right, so a broken export cannot pass as "same accuracy". */
START_TEST(test_digits_data) {
  lb_tensor y, ref;
  y = load_npy("digits_test_y");
  ref = load_npy("digits_cnn_torch_out");
  int seen[10] = {0};
  int64_t n = lb_tensor_numel(&y), right = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t c = ((const int64_t *)y.data)[i];
    ck_assert(c >= 0 && c < 10);
    seen[c] = 1;
    right += argmax((const float *)ref.data + i * 10, 10) == c;
  }
  for (int c = 0; c < 10; c++) ck_assert_msg(seen[c], "class %d missing from the test split", c);
  ck_assert_msg(right * 10 > n * 9, "torch's digits_cnn accuracy %lld/%lld", (long long)right,
                (long long)n);
  lb_free(y.data);
  lb_free(ref.data);
}
END_TEST

static Suite *models_suite(void) {
  Suite *s = suite_create("models");
  TCase *tc = tcase_create("torch");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_digits_data);
  tcase_add_loop_test(tc, test_digits, 0, N_DIGITS * ENGINE_COUNT);
  tcase_add_loop_test(tc, test_digits_int8, 0, N_DIGITS * N_QSPECS * N_QMETHODS);
  tcase_add_loop_test(tc, test_large, 0, N_LARGE * (ENGINE_COUNT + 1));
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return lb_test_run(models_suite()); }
