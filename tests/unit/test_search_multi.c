/* `lowbit search` on a model with three inputs of three dtypes (tests/models/multi/: u8 image,
 * i64 token ids, f32 features; made by tools/make_quant_models.py): --calib and --eval in
 * compile's forms (comma list, NAME=FILE, repeated), every candidate evaluated on all inputs
 * (the JIT and the interpreter engines); the chosen plan, realized, runs bit-exact on the JIT
 * against the interpreter on the test samples; a malformed sample set is a one-line error
 * naming the file, exit status 2, and no plan written. */
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

#define MULTI LB_SOURCE_DIR "/tests/models/multi/"
#define MODEL MULTI "multi_input.onnx"
#define IMG MULTI "image_calib.npy"
#define IDS MULTI "ids_calib.npy"
#define AUX MULTI "aux_calib.npy"
#define CALIB IMG "," IDS "," AUX

static const char *const names[3] = {"image", "ids", "aux"};
static char err[4096];

/* lb_cmd_search on a NULL-terminated argument list, its stderr kept in err. */
static int search(const char *const *args) {
  char *argv[40];
  int argc = 0;
  for (; args[argc]; argc++) argv[argc] = (char *)args[argc];
  argv[argc] = NULL;
  char path[] = "/tmp/lb_search_multi_err_XXXXXX";
  int fd = mkstemp(path), saved = dup(2);
  ck_assert(fd >= 0 && saved >= 0);
  fflush(stderr);
  dup2(fd, 2);
  int rc = lb_cmd_search(argc, argv);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  ssize_t len = pread(fd, err, sizeof err - 1, 0);
  err[len > 0 ? len : 0] = 0;
  close(fd), unlink(path);
  return rc;
}

#define SEARCH(...) search((const char *const[]){"search", MODEL, "--spec", "x86-64-avx2", __VA_ARGS__, NULL})

/* Sample i of the three test files as the model's inputs. */
static void inputs(const lb_graph *g, lb_tensor *x, int64_t i, lb_tensor *in) {
  for (int k = 0; k < 3; k++) {
    const lb_value *v = &g->values[g->inputs[k]];
    in[k] = (lb_tensor){v->dtype, v->rank, {0}, NULL};
    memcpy(in[k].dims, v->dims, sizeof in[k].dims);
    in[k].data = (char *)x[k].data + (size_t)i * lb_dtype_bytes(v->dtype, lb_value_numel(v));
  }
}

/* The integer graph of plan (recalibrated on the three calibration files, as compile does),
 * with every integer value also a graph output. */
static lb_graph *realize(const char *plan) {
  lb_qcli o = {.plan = plan, .calib = CALIB, .calibs = {CALIB}, .n_calibs = 1};
  lb_graph *fp = NULL, *q = NULL;
  lb_qplan *p = NULL;
  lb_diag d = {0};
  ck_assert_msg(lb_qcli_build(&o, MODEL, "x86-64-avx2", LB_REALIZE_INT, NULL, &fp, &p, &q, &d) == 0,
                "%s", d.msg);
  lb_graph_free(fp), lb_qplan_free(p);
  for (uint32_t k = 0; k < q->n_nodes && q->n_outputs < 32; k++) {
    uint32_t v = q->nodes[k].out[0];
    if (!lb_dtype_is_float(q->values[v].dtype) && !q->values[v].is_output)
      ck_assert_int_eq(lb_graph_add_output(q, v), 0);
  }
  return q;
}

/* Integer tensors bit for bit, f32 ones within 1e-5 of the largest magnitude. */
static void same(const lb_tensor *got, const lb_tensor *want, int64_t i, const char *name) {
  int64_t n = lb_tensor_numel(want);
  ck_assert_int_eq(got->dtype, want->dtype);
  if (want->dtype != LB_DTYPE_F32) {
    ck_assert_msg(!memcmp(got->data, want->data, lb_dtype_bytes(want->dtype, n)),
                  "sample %lld: integer tensor '%s' differs", (long long)i, name);
    return;
  }
  double m = 1e-3;
  for (int64_t e = 0; e < n; e++) m = fmax(m, fabs(((const float *)want->data)[e]));
  for (int64_t e = 0; e < n; e++)
    ck_assert_msg(fabs(((const float *)got->data)[e] - ((const float *)want->data)[e]) <= 1e-5 * m,
                  "sample %lld: '%s' element %lld", (long long)i, name, (long long)e);
}

/* The realized plan on the JIT against the interpreter on the 16 test samples; returns the
 * number of integer layers. */
static int jit_equals_interp(const char *plan) {
  lb_graph *q = realize(plan);
  lb_tensor x[3];
  lb_diag d = {0};
  char path[512];
  for (int k = 0; k < 3; k++) {
    snprintf(path, sizeof path, MULTI "%s_test.npy", names[k]);
    ck_assert_msg(lb_npy_read(path, &x[k], &d) == 0, "%s", d.msg);
  }
  lb_spec *s = NULL;
  lb_jit *j = NULL;
  ck_assert_msg(lb_spec_load("x86-64-avx2", &s, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_jit_compile(q, s, NULL, &j, &d) == 0, "%s", d.msg);
  for (int64_t i = 0; i < x[0].dims[0]; i++) {
    lb_tensor in[3], want[32], got[32];
    inputs(q, x, i, in);
    ck_assert_msg(lb_interp_run(q, in, want, &d) == 0, "%s", d.msg);
    ck_assert_msg(lb_jit_run_tensors(j, q, in, got, &d) == 0, "%s", d.msg);
    for (uint32_t o = 0; o < q->n_outputs; o++) {
      same(&got[o], &want[o], i, q->values[q->outputs[o]].name);
      lb_free(got[o].data), lb_free(want[o].data);
    }
  }
  int n_int = 0;
  for (uint32_t k = 0; k < q->n_nodes; k++) n_int += lb_int_node(q, k);
  for (int k = 0; k < 3; k++) lb_free(x[k].data);
  lb_jit_free(j);
  lb_spec_free(s);
  lb_graph_free(q);
  return n_int;
}

/* Both engines, calibration as one comma list, evaluation as NAME=FILE items over two options;
 * --max-drop 100 lets the cheapest plan win, so it holds integer (and sub-byte) layers. */
static const char *const engines[] = {"jit", "interp"};

START_TEST(search_plan_runs) {
  char plan[] = "/tmp/lb_search_multi_XXXXXX";
  int fd = mkstemp(plan);
  ck_assert_int_ge(fd, 0);
  close(fd);
  unlink(plan);
  int rc = SEARCH("--calib", CALIB, "--eval", "aux=" MULTI "aux_test.npy,image=" MULTI "image_test.npy",
                  "--eval", "ids=" MULTI "ids_test.npy", "--max-drop", "100", "--engine",
                  engines[_i], "-q", "-o", plan);
  ck_assert_msg(rc == 0, "%s", err);
  int n_int = jit_equals_interp(plan);
  printf("test_search_multi: engine %s: the chosen plan has %d integer layers; JIT == interpreter "
         "on 16 samples\n", engines[_i], n_int);
  ck_assert_int_ge(n_int, 3);
  unlink(plan);
}
END_TEST

/* A malformed sample set: the one-line error (after "lowbit search: "), exit status 2, and no
 * plan file. */
typedef struct bad_case {
  const char *opt, *value, *err;
} bad_case;

#define TEST_IDS MULTI "ids_test.npy"

static const bad_case bad[] = {
    {"--calib", IMG "," TEST_IDS "," AUX,
     TEST_IDS ": 16 samples for input 'ids', but " IMG " has 64 for 'image' (every input needs "
     "the same samples)"},
    {"--eval", MULTI "image_test.npy," MULTI "ids_test.npy," AUX,
     AUX ": 64 samples for input 'aux', but " MULTI "image_test.npy has 16 for 'image' (every "
     "input needs the same samples)"},
    {"--calib", IMG "," IDS, "--calib: the model has 3 inputs, got 2 files (one per input, in "
                             "input order, or NAME=FILE)"},
    {"--eval", "image=" IMG ",idz=" IDS ",aux=" AUX, "--eval idz=" IDS ": the model has no input "
                                                    "'idz' (its inputs: 'image', 'ids', 'aux')"},
    {"--calib", AUX "," IDS "," IMG, AUX ": input 'image' (u8): expected u8 samples shaped "
                                     "[N,1,8,8] (or [N,1,1,8,8]), got f32 [64,6]"},
};

START_TEST(bad_samples) {
  const bad_case *c = &bad[_i];
  const char *out = "/tmp/lb_search_multi_bad.yaml";
  unlink(out);
  int ev = !strcmp(c->opt, "--eval");
  int rc = SEARCH("--calib", ev ? CALIB : c->value, "--eval", ev ? c->value : CALIB, "-q", "-o", out);
  char want[1200];
  snprintf(want, sizeof want, "lowbit search: %s\n", c->err);
  ck_assert_int_eq(rc, 2);
  ck_assert_str_eq(err, want);
  ck_assert_int_ne(access(out, F_OK), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("search_multi");
  TCase *tc = tcase_create("search_multi");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, search_plan_runs, 0, 2);
  tcase_add_loop_test(tc, bad_samples, 0, (int)(sizeof bad / sizeof bad[0]));
  suite_add_tcase(s, tc);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
