/* Calibration of a model with three inputs of three dtypes (tests/models/multi/multi_input.onnx:
 * u8 image, i64 token ids, f32 features; made by tools/make_quant_models.py): the --calib forms
 * (comma list in input order, NAME=FILE, repeated) give one plan, streaming from files equals
 * calibrating in memory, the integer graph runs bit-exact on the JIT, and every malformed
 * calibration set is a one-line error naming the file and the input (also through the CLI, with
 * exit status 2 and no output file). Plus `lowbit spec check`'s requantize warning. */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "onnx.h"
#include "passes.h"
#include "quantize.h"
#include "spec.h"
#include "target.h"
#include "tensor_io.h"

#include "../aot.h"
#include "../check_main.h"

#define MULTI LB_SOURCE_DIR "/tests/models/multi/"
#define MODEL MULTI "multi_input.onnx"
#define IMG MULTI "image_calib.npy"
#define IDS MULTI "ids_calib.npy"
#define AUX MULTI "aux_calib.npy"

static const char *const names[3] = {"image", "ids", "aux"};

/* The integer graph (and plan) for x86-64-avx2 from --calib values v[0..n), method m (NULL:
 * the default, avg-max). */
static int build_m(const char *const *v, int n, const char *m, lb_graph **q, lb_qplan **p,
                   lb_diag *d) {
  lb_qcli o = {.quantize = "int8", .method = m};
  for (int i = 0; i < n; i++) o.calibs[o.n_calibs++] = v[i];
  o.calib = n ? v[0] : NULL;
  lb_graph *fp = NULL;
  int rc = lb_qcli_build(&o, MODEL, "x86-64-avx2", LB_REALIZE_INT, NULL, &fp, p, q, d);
  lb_graph_free(fp);
  return rc;
}

static int build(const char *const *v, int n, lb_graph **q, lb_qplan **p, lb_diag *d) {
  return build_m(v, n, NULL, q, p, d);
}

static void same_plan(const lb_qplan *a, const lb_qplan *b) {
  ck_assert_uint_eq(a->n_values, b->n_values);
  for (uint32_t v = 0; v < a->n_values; v++) {
    ck_assert_int_eq(a->v[v].dtype, b->v[v].dtype);
    ck_assert_uint_eq(a->v[v].n, b->v[v].n);
    for (uint32_t k = 0; k < a->v[v].n; k++) {
      ck_assert(a->v[v].scale[k] == b->v[v].scale[k]);
      ck_assert_int_eq(a->v[v].zp[k], b->v[v].zp[k]);
    }
  }
}

START_TEST(calib_forms_agree) {
  static const char *const forms[][3] = {
      {IMG "," IDS "," AUX, NULL, NULL},
      {IMG, IDS, AUX},
      {"aux=" AUX ",image=" IMG, "ids=" IDS, NULL},
  };
  lb_graph *q[3];
  lb_qplan *p[3];
  for (int f = 0; f < 3; f++) {
    lb_diag d = {0};
    int n = forms[f][2] ? 3 : forms[f][1] ? 2 : 1;
    ck_assert_msg(build(forms[f], n, &q[f], &p[f], &d) == 0, "form %d: %s", f, d.msg);
    ck_assert_str_eq(p[f]->method, "avg-max");
  }
  same_plan(p[0], p[1]), same_plan(p[0], p[2]);
  /* integer kernels: the convolution, the three gemms and the add (pool, flatten and concat
   * copy integers; the gather of the i64 ids stays fp32) */
  int n_int = 0;
  for (uint32_t k = 0; k < q[0]->n_nodes; k++) n_int += lb_int_node(q[0], k);
  ck_assert_int_eq(n_int, 5);
  for (int f = 0; f < 3; f++) lb_graph_free(q[f]), lb_qplan_free(p[f]);
}
END_TEST

/* Calibrating from tensors in memory gives the plan the streaming file reader gives. */
START_TEST(memory_equals_stream) {
  const char *v[1] = {IMG "," IDS "," AUX};
  lb_graph *q = NULL, *g = NULL;
  lb_qplan *ps = NULL;
  lb_diag d = {0};
  ck_assert_msg(build(v, 1, &q, &ps, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_onnx_load(MODEL, &g, &d) == 0 && lb_pass_prepare_fp32(g, &d) == 0, "%s", d.msg);
  lb_spec *s = load_spec("x86-64-avx2");
  lb_qplan *pm = lb_qplan_new(g);
  ck_assert_msg(lb_quant_annotate(g, s, pm, &d) == 0, "%s", d.msg);
  lb_tensor t[3];
  lb_calib_input src[3];
  const char *files[3] = {IMG, IDS, AUX};
  for (int i = 0; i < 3; i++) {
    ck_assert_msg(lb_npy_read(files[i], &t[i], &d) == 0, "%s", d.msg);
    src[i] = lb_calib_input_tensor(&t[i], files[i]);
  }
  lb_calib_opts co = {LB_CALIB_AVG_MAX, 0, 0};
  ck_assert_msg(lb_quant_calibrate_inputs(g, pm, src, &co, &d) == 0, "%s", d.msg);
  same_plan(ps, pm);
  for (int i = 0; i < 3; i++) lb_free(t[i].data);
  lb_qplan_free(ps), lb_qplan_free(pm);
  lb_spec_free(s);
  lb_graph_free(q), lb_graph_free(g);
}
END_TEST

/* The integer graph (max calibration: avg-max clips this untrained model's logits to 11 dB):
 * output close to fp32 on the 16 test samples, JIT bit-exact on every integer tensor. */
START_TEST(integer_graph_runs) {
  const char *v[1] = {IMG "," IDS "," AUX};
  lb_graph *q = NULL, *g = NULL;
  lb_qplan *p = NULL;
  lb_diag d = {0};
  ck_assert_msg(build_m(v, 1, "max", &q, &p, &d) == 0, "%s", d.msg);
  ck_assert_msg(lb_onnx_load(MODEL, &g, &d) == 0, "%s", d.msg);
  for (uint32_t k = 0; k < q->n_nodes && q->n_outputs < 32; k++) {
    uint32_t o = q->nodes[k].out[0];
    if (!lb_dtype_is_float(q->values[o].dtype) && !q->values[o].is_output)
      ck_assert_int_eq(lb_graph_add_output(q, o), 0);
  }
  lb_tensor x[3];
  char path[512];
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, MULTI "%s_test.npy", names[i]);
    ck_assert_msg(lb_npy_read(path, &x[i], &d) == 0, "%s", d.msg);
  }
  lb_spec *s = load_spec("x86-64-avx2");
  lb_jit *j = NULL;
  ck_assert_msg(lb_jit_compile(q, s, NULL, &j, &d) == 0, "%s", d.msg);
  double sig = 0, noise = 0;
  for (int64_t i = 0; i < x[0].dims[0]; i++) {
    lb_tensor in[3], want[32], got[32], ref;
    for (int k = 0; k < 3; k++) {
      const lb_value *iv = &g->values[g->inputs[k]];
      in[k] = (lb_tensor){iv->dtype, iv->rank, {0}, NULL};
      memcpy(in[k].dims, iv->dims, sizeof in[k].dims);
      in[k].data = (char *)x[k].data + (size_t)i * lb_dtype_bytes(iv->dtype, lb_value_numel(iv));
    }
    ck_assert_msg(lb_interp_run(g, in, &ref, &d) == 0, "%s", d.msg);
    ck_assert_msg(lb_interp_run(q, in, want, &d) == 0, "%s", d.msg);
    ck_assert_msg(lb_jit_run_tensors(j, q, in, got, &d) == 0, "%s", d.msg);
    for (uint32_t o = 0; o < q->n_outputs; o++) {
      size_t nb = lb_dtype_bytes(want[o].dtype, lb_tensor_numel(&want[o]));
      ck_assert_msg(!memcmp(got[o].data, want[o].data, nb), "sample %lld output '%s'",
                    (long long)i, q->values[q->outputs[o]].name);
      lb_free(got[o].data);
      if (o) lb_free(want[o].data);
    }
    for (int e = 0; e < 5; e++) {
      double r = ((float *)ref.data)[e], w = ((float *)want[0].data)[e];
      sig += r * r, noise += (r - w) * (r - w);
    }
    lb_free(ref.data), lb_free(want[0].data);
  }
  double db = 10 * log10(sig / noise);
  printf("test_calib_inputs: multi_input int8 (x86-64-avx2) vs fp32 output SQNR %.1f dB\n", db);
  ck_assert_msg(db > 25, "output SQNR %.1f dB", db);
  for (int i = 0; i < 3; i++) lb_free(x[i].data);
  lb_jit_free(j);
  lb_spec_free(s);
  lb_qplan_free(p);
  lb_graph_free(q), lb_graph_free(g);
}
END_TEST

/* ---- malformed calibration sets ----------------------------------------------------------- */

typedef struct bad_case {
  const char *calib[3];
  const char *err;
} bad_case;

#define DIGITS LB_SOURCE_DIR "/tests/models/digits_calib_x.npy"
#define TEST_IDS MULTI "ids_test.npy"

static const bad_case bad[] = {
    {{IMG "," IDS}, "--calib: the model has 3 inputs, got 2 files (one per input, in input "
                    "order, or NAME=FILE)"},
    {{IMG, IDS, AUX "," AUX}, "--calib: the model has 3 inputs, got 4 files"},
    {{"image=" IMG, "idz=" IDS}, "--calib idz=" IDS ": the model has no input 'idz' (its "
                                 "inputs: 'image', 'ids', 'aux')"},
    {{"image=" IMG, "ids=" IDS, "image=" AUX}, "--calib: two files for input 'image'"},
    {{"image=" IMG, IDS, AUX}, "--calib: give every file as NAME=FILE or none of them"},
    {{"image=" IMG, "aux=" AUX}, "--calib: no file for input 'ids'"},
    {{AUX, IDS, IMG}, AUX ": input 'image' (u8): expected u8 samples shaped [N,1,8,8] (or "
                      "[N,1,1,8,8]), got f32 [64,6]"},
    {{IMG, DIGITS, AUX}, DIGITS ": input 'ids' (i64): expected i64 samples shaped [N,2] (or "
                         "[N,1,2]), got f32 [100,1,8,8]"},
    {{IMG, TEST_IDS, AUX}, TEST_IDS ": 16 samples for input 'ids', but " IMG " has 64 for "
                           "'image' (every input needs the same samples)"},
    {{IMG, "/nonexistent/ids.npy", AUX}, "/nonexistent/ids.npy: cannot open"},
};

START_TEST(bad_calibration) {
  const bad_case *c = &bad[_i];
  int n = c->calib[2] ? 3 : c->calib[1] ? 2 : 1;
  lb_graph *q = NULL;
  lb_qplan *p = NULL;
  lb_diag d = {0};
  ck_assert_int_eq(build(c->calib, n, &q, &p, &d), LB_ERR_INPUT);
  ck_assert_msg(strstr(d.msg, c->err) && !strchr(d.msg, '\n'), "got: %s\nwant: %s", d.msg, c->err);
  ck_assert_ptr_null(q);
  ck_assert_ptr_null(p);
}
END_TEST

/* ---- through the lowbit binary ------------------------------------------------------------ */

static char err[4096];

/* Runs lowbit with args; returns its exit status, stderr in err. */
static int lowbit(const char *const *args) {
  const char *argv[32] = {"lowbit"};
  int n = 1;
  while (args[n - 1]) argv[n] = args[n - 1], n++;
  argv[n] = NULL;
  char ep[] = "/tmp/lb_calib_err_XXXXXX";
  int fd = mkstemp(ep);
  ck_assert_int_ge(fd, 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, 2);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  extern char **environ;
  ck_assert_int_eq(posix_spawn(&pid, LB_BINARY_DIR "/lowbit", &fa, NULL, (char *const *)argv,
                               environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ssize_t len = pread(fd, err, sizeof err - 1, 0);
  err[len > 0 ? len : 0] = 0;
  close(fd), unlink(ep);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#define LOWBIT(...) lowbit((const char *const[]){__VA_ARGS__, NULL})

START_TEST(cli) {
  const char *out = "/tmp/lb_calib_inputs_y.npy";
  unlink(out);
  ck_assert_int_eq(LOWBIT("run", MODEL, "-i", MULTI "image_test.npy", "-i", TEST_IDS, "-i",
                          MULTI "aux_test.npy", "--batch", "-o", out, "--quantize", "int8",
                          "--spec", "x86-64-avx2", "--calib", "ids=" IDS, "--calib",
                          "image=" IMG ",aux=" AUX),
                   0);
  lb_tensor y;
  lb_diag d = {0};
  ck_assert_msg(lb_npy_read(out, &y, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(y.dims[0], 16);
  lb_free(y.data);
  unlink(out);
  ck_assert_int_eq(LOWBIT("run", MODEL, "-i", MULTI "image_test.npy", "-i", TEST_IDS, "-i",
                          MULTI "aux_test.npy", "--batch", "-o", out, "--quantize", "int8",
                          "--calib", IMG "," IDS),
                   2);
  ck_assert_msg(!strncmp(err, "lowbit: --calib: the model has 3 inputs, got 2 files", 52) &&
                    strchr(err, '\n') == err + strlen(err) - 1, "%s", err);
  ck_assert_int_eq(access(out, F_OK), -1);
  ck_assert_int_eq(LOWBIT("compile", MODEL, "--spec", "x86-64-avx2", "-o", "/tmp/lb_ci.o",
                          "--quantize", "int8", "--calib", IMG "," TEST_IDS "," AUX),
                   2);
  ck_assert_msg(strstr(err, "16 samples for input 'ids'"), "%s", err);
  ck_assert_int_eq(access("/tmp/lb_ci.o", F_OK), -1);
  ck_assert_int_eq(LOWBIT("compile", "--help"), 0);
}
END_TEST

START_TEST(spec_check_warns) {
  /* fixed_point is implemented (quant.h): no warning any more */
  ck_assert_int_eq(LOWBIT("spec", "check", LB_SOURCE_DIR "/tests/specs/good/anchors.yaml"), 0);
  ck_assert_str_eq(err, "");
  ck_assert_int_eq(LOWBIT("spec", "check", LB_SOURCE_DIR "/specs/x86-64-avx2.yaml"), 0);
  ck_assert_str_eq(err, "");
}
END_TEST

int main(void) {
  const TTest *tests[] = {
    calib_forms_agree, memory_equals_stream, integer_graph_runs, cli, spec_check_warns};
  TCase *tc;
  Suite *s = lb_test_suite("calib_inputs", tests, LB_TEST_N(tests), &tc);
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, bad_calibration, 0, LB_TEST_N(bad));
  return lb_test_run(s);
}
