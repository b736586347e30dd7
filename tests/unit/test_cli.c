/* End-to-end tests of the lowbit driver: spawns the built binary (LB_BINARY_DIR/lowbit) and
 * checks its exit status, its one-line errors, that failed runs leave no output file, and that
 * `run` writes what lb_interp_run computes and `info` prints the right totals. Fixtures: the
 * models in tests/e2e/ (made by tests/e2e/make_fixtures.py), ONNX's node tests, tests/models/. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ir.h"
#include "onnx.h"
#include "tensor_io.h"

#include "../check_main.h"

#define LOWBIT LB_BINARY_DIR "/lowbit"
#define E2E LB_SOURCE_DIR "/tests/e2e"
#define MODELS LB_SOURCE_DIR "/tests/models"
#define NODE "/usr/share/libonnx-testdata/data/node"
#define RELU NODE "/test_relu"
#define CONV NODE "/test_conv_with_strides_padding"

extern char **environ;
static char tmp[256]; /* scratch directory, made in main */

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct proc {
  int status; /* exit status, or 128 + signal */
  char out[1 << 16], err[1 << 14];
} proc;

static proc P; /* each test runs in its own forked child, so one static result is enough */

static const char *tpath(const char *name) {
  static char buf[32][512];
  static int k;
  char *b = buf[k++ % 32];
  snprintf(b, 512, "%s/%s", tmp, name);
  return b;
}

static void slurp(const char *path, char *dst, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(dst, 1, cap - 1, f) : 0;
  dst[n] = 0;
  if (f) fclose(f);
}

/* Runs lowbit with args (NULL-terminated, without argv[0]); fills P. */
static void lowbit(const char *const *args) {
  const char *argv[64] = {"lowbit"};
  int n = 1;
  for (; args[n - 1]; n++) argv[n] = args[n - 1];
  argv[n] = NULL;
  const char *o = tpath("stdout.txt"), *e = tpath("stderr.txt");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, e, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  int rc = posix_spawn(&pid, LOWBIT, &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  ck_assert_msg(rc == 0, "cannot spawn %s", LOWBIT);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  P.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  slurp(o, P.out, sizeof P.out);
  slurp(e, P.err, sizeof P.err);
}

#define LOWBIT_RUN(...) lowbit((const char *const[]){__VA_ARGS__, NULL})

static int exists(const char *path) { return access(path, F_OK) == 0; }

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* A failure: exit 2, one line on stderr that starts with "lowbit" and holds want. */
static void expect_error(const char *want) {
  ck_assert_msg(P.status == 2, "exit %d, stderr: %s", P.status, P.err);
  ck_assert_msg(count_lines(P.err) == 1 && P.err[strlen(P.err) - 1] == '\n',
                "not one line: [%s]", P.err);
  ck_assert_msg(strncmp(P.err, "lowbit", 6) == 0, "no 'lowbit' prefix: %s", P.err);
  ck_assert_msg(strstr(P.err, want) != NULL, "'%s' not in: %s", want, P.err);
}

static void expect_ok(void) {
  ck_assert_msg(P.status == 0, "exit %d, stderr: %s", P.status, P.err);
}

static lb_graph *load(const char *path) {
  lb_graph *g = NULL;
  lb_diag d = {0};
  int rc = lb_onnx_load(path, &g, &d);
  ck_assert_msg(rc == 0, "%s", d.msg);
  return g;
}

static void read_npy(const char *path, lb_tensor *t) {
  lb_diag d = {0};
  ck_assert_msg(lb_npy_read(path, t, &d) == 0, "%s", d.msg);
}

static void write_npy(const char *path, const lb_tensor *t) {
  lb_diag d = {0};
  ck_assert_msg(lb_npy_write(path, t, &d) == 0, "%s", d.msg);
}

static void load_pb(const char *path, lb_tensor *t) {
  lb_diag d = {0};
  ck_assert_msg(lb_onnx_load_tensor(path, t, &d) == 0, "%s", d.msg);
}

static size_t tensor_bytes(const lb_tensor *t) {
  return lb_dtype_bytes(t->dtype, lb_tensor_numel(t));
}

static void write_raw(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

/* Bit-exact equality of dtype, shape and data. */
static void expect_same(const lb_tensor *got, const lb_tensor *want) {
  ck_assert_int_eq(got->dtype, want->dtype);
  ck_assert_int_eq(got->rank, want->rank);
  for (int i = 0; i < want->rank; i++) ck_assert_int_eq(got->dims[i], want->dims[i]);
  ck_assert_msg(memcmp(got->data, want->data, tensor_bytes(want)) == 0, "data differ");
}

/* Runs the interpreter in-process: the oracle `lowbit run` must match bit for bit. */
static void interp(const lb_graph *g, const lb_tensor *in, lb_tensor *out) {
  lb_diag d = {0};
  for (uint32_t j = 0; j < g->n_outputs; j++) {
    const lb_value *v = &g->values[g->outputs[j]];
    memset(&out[j], 0, sizeof out[j]);
    out[j].dtype = v->dtype;
    out[j].rank = v->rank;
    memcpy(out[j].dims, v->dims, sizeof v->dims);
  }
  ck_assert_msg(lb_interp_run(g, in, out, &d) == 0, "%s", d.msg);
}

/* Input files shared by the error cases, made before each test. */
static void setup(void) {
  lb_tensor x;
  load_pb(RELU "/test_data_set_0/input_0.pb", &x);
  write_npy(tpath("relu_x.npy"), &x);
  x.dims[2] = 4; /* [3,4,5] -> [3,4,4]: fewer elements, same buffer */
  write_npy(tpath("relu_x_bad_shape.npy"), &x);
  x.dims[2] = 5;
  x.dtype = LB_DTYPE_I32; /* same bytes, wrong dtype */
  write_npy(tpath("relu_x_i32.npy"), &x);
  write_raw(tpath("relu_x_short.bin"), x.data, tensor_bytes(&x) - 4);
  write_raw(tpath("garbage.npy"), "\x93NUMPY\x01\x00garbage", 16);
  lb_free(x.data);
  /* the first half of a valid model */
  char *buf = malloc(4096);
  FILE *f = fopen(E2E "/small_cnn.onnx", "rb");
  ck_assert_ptr_nonnull(f);
  size_t n = fread(buf, 1, 4096, f);
  fclose(f);
  write_raw(tpath("truncated.onnx"), buf, n / 2);
  free(buf);
}

/* ---- help and usage ----------------------------------------------------------------------- */

/* Every command listed by `lowbit --help` has --help (exit 0, usage on stdout) and rejects an
 * unknown option with one line and exit 2. */
START_TEST(help_every_command) {
  LOWBIT_RUN("--help");
  expect_ok();
  static char list[sizeof P.out];
  memcpy(list, P.out, sizeof list);
  char *cmds = strstr(list, "commands:");
  ck_assert_ptr_nonnull(cmds);
  int n = 0;
  for (char *line = strtok(cmds + 9, "\n"); line; line = strtok(NULL, "\n")) {
    char name[64], usage[96];
    if (sscanf(line, " %63s", name) != 1) continue;
    lowbit((const char *const[]){name, "--help", NULL});
    ck_assert_msg(P.status == 0, "lowbit %s --help: exit %d", name, P.status);
    snprintf(usage, sizeof usage, "usage: lowbit %s", name);
    ck_assert_msg(strstr(P.out, usage), "lowbit %s --help: no '%s' in: %s", name, usage, P.out);
    lowbit((const char *const[]){name, "--no-such-option", NULL});
    expect_error("--no-such-option");
    n++;
  }
  ck_assert_int_ge(n, 3); /* info, run, version at least */
}
END_TEST

START_TEST(usage_errors) {
  lowbit((const char *const[]){NULL});
  ck_assert_int_eq(P.status, 2);
  LOWBIT_RUN("frobnicate");
  expect_error("unknown command 'frobnicate'");
  LOWBIT_RUN("info");
  expect_error("no model given");
  LOWBIT_RUN("info", E2E "/small_cnn.onnx", E2E "/two_io.onnx");
  expect_error("unexpected argument");
}
END_TEST

/* ---- info --------------------------------------------------------------------------------- */

/* small_cnn (tests/e2e/make_fixtures.py): conv 4x1x3x3 + bias = 40 parameters and 4*8*8*9 =
 * 2304 MACs; gemm 10x64 + bias = 650 parameters and 640 MACs; 690 fp32 weights = 2760 bytes. */
START_TEST(info_small_cnn_totals) {
  LOWBIT_RUN("info", E2E "/small_cnn.onnx");
  expect_ok();
  ck_assert_msg(strstr(P.out, "total: 5 layers, 690 parameters, 2944 MACs, 2760 weight bytes"),
                "%s", P.out);
  ck_assert_ptr_nonnull(strstr(P.out, "f32 [1,1,8,8]"));
  ck_assert_ptr_nonnull(strstr(P.out, "f32 [1,4,4,4]")); /* the pool's output */
  LOWBIT_RUN("info", "--json", E2E "/small_cnn.onnx");
  expect_ok();
  ck_assert_msg(strstr(P.out, "\"op\": \"conv\", \"dtype\": \"f32\", \"shape\": [1,4,8,8], "
                              "\"params\": 40, \"macs\": 2304}"), "%s", P.out);
  ck_assert_ptr_nonnull(strstr(P.out, "\"shape\": [1,10], \"params\": 650, \"macs\": 640}"));
  ck_assert_ptr_nonnull(strstr(
      P.out, "\"total\": {\"layers\": 5, \"params\": 690, \"macs\": 2944, \"weight_bytes\": 2760}"));
}
END_TEST

/* dw_matmul: depthwise conv 4x1x3x3 = 36 parameters and 4*4*4*9 = 576 MACs (one input
 * channel per group); matmul [4,16]x[16,3] = 48 parameters, 192 MACs; c[3] feeds add and mul,
 * so each layer shows 3 but the total counts it once: 87 parameters, 348 bytes. */
START_TEST(info_grouped_and_shared) {
  LOWBIT_RUN("info", "--json", E2E "/dw_matmul.onnx");
  expect_ok();
  ck_assert_msg(strstr(P.out, "\"shape\": [1,4,4,4], \"params\": 36, \"macs\": 576}"), "%s",
                P.out);
  ck_assert_ptr_nonnull(strstr(P.out, "\"op\": \"matmul\", \"dtype\": \"f32\", \"shape\": [4,3], "
                                      "\"params\": 48, \"macs\": 192}"));
  ck_assert_ptr_nonnull(strstr(P.out, "\"op\": \"mul\", \"dtype\": \"f32\", \"shape\": [4,3], "
                                      "\"params\": 3, \"macs\": 0}"));
  ck_assert_ptr_nonnull(strstr(
      P.out, "\"total\": {\"layers\": 5, \"params\": 87, \"macs\": 768, \"weight_bytes\": 348}"));
}
END_TEST

/* For every bundled model, the totals equal the sum over the imported graph's constants. */
START_TEST(info_models_match_constants) {
  const char *models[] = {MODELS "/digits_mlp.onnx", MODELS "/digits_cnn.onnx",
                          MODELS "/digits_resnet.onnx", E2E "/two_io.onnx",
                          E2E "/dw_matmul.onnx"};
  for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
    if (!exists(models[m])) continue;
    lb_graph *g = load(models[m]);
    long long params = 0, bytes = 0;
    for (uint32_t i = 0; i < g->n_values; i++)
      if (g->values[i].data) {
        params += lb_value_numel(&g->values[i]);
        bytes += (long long)g->values[i].nbytes;
      }
    char want[256];
    snprintf(want, sizeof want, "\"layers\": %u, \"params\": %lld, ", g->n_nodes, params);
    lowbit((const char *const[]){"info", "--json", models[m], NULL});
    expect_ok();
    ck_assert_msg(strstr(P.out, want), "%s: no '%s' in %s", models[m], want, P.out);
    snprintf(want, sizeof want, "\"weight_bytes\": %lld}", bytes);
    ck_assert_msg(strstr(P.out, want), "%s: no '%s'", models[m], want);
    lb_graph_free(g);
  }
}
END_TEST

/* ---- run ---------------------------------------------------------------------------------- */

START_TEST(run_relu_npy) {
  const char *y = tpath("relu_y.npy");
  LOWBIT_RUN("run", RELU "/model.onnx", "-i", tpath("relu_x.npy"), "-o", y, "--print");
  expect_ok();
  ck_assert_ptr_nonnull(strstr(P.out, "f32 [3,4,5]"));
  lb_graph *g = load(RELU "/model.onnx");
  lb_tensor x, got, want, ref;
  read_npy(tpath("relu_x.npy"), &x);
  read_npy(y, &got);
  interp(g, &x, &want);
  expect_same(&got, &want);
  load_pb(RELU "/test_data_set_0/output_0.pb", &ref); /* and ONNX's expected values */
  const float *a = got.data, *b = ref.data;
  for (int64_t i = 0; i < lb_tensor_numel(&ref); i++) ck_assert_float_eq(a[i], b[i]);
  lb_free(x.data), lb_free(got.data), lb_free(want.data), lb_free(ref.data);
  lb_graph_free(g);
}
END_TEST

/* Two inputs given as raw .bin files, output written as .bin. */
START_TEST(run_conv_raw) {
  lb_tensor in[2], want;
  load_pb(CONV "/test_data_set_0/input_0.pb", &in[0]);
  load_pb(CONV "/test_data_set_0/input_1.pb", &in[1]);
  write_raw(tpath("conv_x.bin"), in[0].data, tensor_bytes(&in[0]));
  write_raw(tpath("conv_w.raw"), in[1].data, tensor_bytes(&in[1]));
  const char *y = tpath("conv_y.bin");
  LOWBIT_RUN("run", CONV "/model.onnx", "-i", tpath("conv_x.bin"), "-i", tpath("conv_w.raw"),
             "-o", y);
  expect_ok();
  lb_graph *g = load(CONV "/model.onnx");
  interp(g, in, &want);
  char *got = malloc(tensor_bytes(&want) + 1);
  FILE *f = fopen(y, "rb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fread(got, 1, tensor_bytes(&want) + 1, f), tensor_bytes(&want));
  fclose(f);
  ck_assert(memcmp(got, want.data, tensor_bytes(&want)) == 0);
  free(got);
  lb_free(in[0].data), lb_free(in[1].data), lb_free(want.data);
  lb_graph_free(g);
}
END_TEST

/* --batch with raw files: N comes from each file's size; every row equals the interpreter on
 * the single sample; inputs with different N are a one-line error. */
START_TEST(run_batch_raw) {
  lb_tensor in[2], want;
  load_pb(CONV "/test_data_set_0/input_0.pb", &in[0]);
  load_pb(CONV "/test_data_set_0/input_1.pb", &in[1]);
  size_t nx = tensor_bytes(&in[0]), nw = tensor_bytes(&in[1]);
  char *x3 = malloc(3 * nx), *w3 = malloc(3 * nw);
  for (int b = 0; b < 3; b++) {
    memcpy(x3 + b * nx, in[0].data, nx);
    memcpy(w3 + b * nw, in[1].data, nw);
  }
  write_raw(tpath("x3.bin"), x3, 3 * nx);
  write_raw(tpath("w3.bin"), w3, 3 * nw);
  write_raw(tpath("w2.bin"), w3, 2 * nw);
  LOWBIT_RUN("run", CONV "/model.onnx", "-i", tpath("x3.bin"), "-i", tpath("w3.bin"), "-o",
             tpath("y3.npy"), "--batch");
  expect_ok();
  lb_graph *g = load(CONV "/model.onnx");
  interp(g, in, &want);
  lb_tensor got;
  read_npy(tpath("y3.npy"), &got);
  ck_assert_int_eq(got.rank, 4);
  ck_assert_int_eq(got.dims[0], 3);
  size_t ny = tensor_bytes(&want);
  for (int b = 0; b < 3; b++) ck_assert(memcmp((char *)got.data + b * ny, want.data, ny) == 0);
  LOWBIT_RUN("run", CONV "/model.onnx", "-i", tpath("x3.bin"), "-i", tpath("w2.bin"), "-o",
             tpath("y2.npy"), "--batch");
  expect_error("w2.bin: input 'W': batch of 2, but the inputs before it have 3");
  ck_assert(!exists(tpath("y2.npy")));
  free(x3), free(w3);
  lb_free(in[0].data), lb_free(in[1].data), lb_free(want.data), lb_free(got.data);
  lb_graph_free(g);
}
END_TEST

/* two_io: sum = a + b and prod = a * b, checked against hand-computed values. */
START_TEST(run_two_outputs) {
  float a[6] = {1, 2, 3, -4, 0.5f, 6}, b[6] = {10, 20, 30, 40, 50, -60};
  lb_tensor ta = {LB_DTYPE_F32, 2, {2, 3}, a}, tb = {LB_DTYPE_F32, 2, {2, 3}, b}, s, p;
  write_npy(tpath("a.npy"), &ta);
  write_npy(tpath("b.npy"), &tb);
  LOWBIT_RUN("run", E2E "/two_io.onnx", "-i", tpath("a.npy"), "-i", tpath("b.npy"), "-o",
             tpath("sum.npy"), "-o", tpath("prod.npy"));
  expect_ok();
  read_npy(tpath("sum.npy"), &s);
  read_npy(tpath("prod.npy"), &p);
  for (int i = 0; i < 6; i++) {
    ck_assert_float_eq(((float *)s.data)[i], a[i] + b[i]);
    ck_assert_float_eq(((float *)p.data)[i], a[i] * b[i]);
  }
  lb_free(s.data), lb_free(p.data);
  /* a single -o writes only the first output */
  LOWBIT_RUN("run", E2E "/two_io.onnx", "-i", tpath("a.npy"), "-i", tpath("b.npy"), "-o",
             tpath("only.npy"));
  expect_ok();
  read_npy(tpath("only.npy"), &s);
  ck_assert_float_eq(((float *)s.data)[3], 36.0f);
  lb_free(s.data);
  /* the second output cannot be written: the first one is removed again */
  LOWBIT_RUN("run", E2E "/two_io.onnx", "-i", tpath("a.npy"), "-i", tpath("b.npy"), "-o",
             tpath("first.npy"), "-o", tpath("no-such-dir/second.npy"));
  expect_error("second.npy");
  ck_assert(!exists(tpath("first.npy")));
}
END_TEST

/* --batch over 7 test digits: each row equals the interpreter on that sample alone, and
 * --print's top-1 of row 0 is its argmax. */
START_TEST(run_batch_digits) {
  const char *model = MODELS "/digits_cnn.onnx";
  if (!exists(model)) return; /* tests/models not generated in this checkout */
  lb_tensor all, x7, got, want;
  read_npy(MODELS "/digits_test_x.npy", &all);
  x7 = all;
  x7.dims[0] = 7;
  write_npy(tpath("x7.npy"), &x7);
  LOWBIT_RUN("run", model, "-i", tpath("x7.npy"), "-o", tpath("y7.npy"), "--batch", "--print");
  expect_ok();
  read_npy(tpath("y7.npy"), &got);
  ck_assert_int_eq(got.rank, 2);
  ck_assert_int_eq(got.dims[0], 7);
  ck_assert_int_eq(got.dims[1], 10);
  lb_graph *g = load(model);
  for (int b = 0; b < 7; b++) {
    lb_tensor one = all;
    one.dims[0] = 1;
    one.data = (float *)all.data + b * 64;
    interp(g, &one, &want);
    ck_assert(memcmp((float *)got.data + b * 10, want.data, 10 * sizeof(float)) == 0);
    if (b == 0) {
      int best = 0;
      for (int c = 1; c < 10; c++)
        if (((float *)want.data)[c] > ((float *)want.data)[best]) best = c;
      char top[32];
      snprintf(top, sizeof top, "[0] top-5:  %d (", best);
      ck_assert_msg(strstr(P.out, top), "no '%s' in %s", top, P.out);
    }
    lb_free(want.data);
  }
  lb_free(all.data), lb_free(got.data);
  lb_graph_free(g);
}
END_TEST

/* --engine jit agrees with the interpreter on small_cnn within 1e-5 of the output range. */
START_TEST(run_jit_matches_interp) {
  float x[64];
  for (int i = 0; i < 64; i++) x[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
  lb_tensor tx = {LB_DTYPE_F32, 4, {1, 1, 8, 8}, x}, got, want;
  write_npy(tpath("cnn_x.npy"), &tx);
  LOWBIT_RUN("run", E2E "/small_cnn.onnx", "-i", tpath("cnn_x.npy"), "-o", tpath("cnn_y.npy"),
             "--engine", "jit");
  expect_ok();
  read_npy(tpath("cnn_y.npy"), &got);
  lb_graph *g = load(E2E "/small_cnn.onnx");
  interp(g, &tx, &want);
  ck_assert_int_eq(got.rank, 2);
  ck_assert_int_eq(got.dims[1], 10);
  float range = 0;
  for (int i = 0; i < 10; i++) range = fmaxf(range, fabsf(((float *)want.data)[i]));
  ck_assert_float_gt(range, 0.0f);
  for (int i = 0; i < 10; i++)
    ck_assert_float_eq_tol(((float *)got.data)[i], ((float *)want.data)[i], 1e-5f * range);
  lb_free(got.data), lb_free(want.data);
  lb_graph_free(g);
}
END_TEST

/* ---- bad input: exit 2, one line, no output file ------------------------------------------ */

typedef struct bad_case {
  const char *args[12]; /* "@name" is a file in the scratch directory */
  const char *want;     /* in the message */
} bad_case;

static const bad_case bad[] = {
    {{"run", "@nope.onnx", "-i", "@relu_x.npy", "-o", "@out.npy"},
     "nope.onnx: No such file or directory"},
    {{"info", "@nope.onnx"}, "nope.onnx: No such file or directory"},
    {{"run", "@nope.onnx"}, "nope.onnx: No such file or directory"},
    {{"compile", "@nope.onnx", "--spec", "host", "-o", "@out.npy"},
     "nope.onnx: No such file or directory"},
    {{"bench", "@nope.onnx", "--spec", "host"}, "nope.onnx: No such file or directory"},
    {{"info", "@truncated.onnx"}, "truncated.onnx"},
    {{"run", "@truncated.onnx", "-i", "@relu_x.npy", "-o", "@out.npy"}, "truncated.onnx"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x_bad_shape.npy", "-o", "@out.npy"},
     "relu_x_bad_shape.npy: input 'x': expected f32 [3,4,5], got f32 [3,4,4]"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x_i32.npy", "-o", "@out.npy"},
     "expected f32 [3,4,5], got i32 [3,4,5]"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x_short.bin", "-o", "@out.npy"},
     "relu_x_short.bin"},
    {{"run", RELU "/model.onnx", "-i", "@garbage.npy", "-o", "@out.npy"}, "garbage.npy"},
    {{"run", CONV "/model.onnx", "-i", "@relu_x.npy", "-o", "@out.npy"},
     "has 2 inputs ('x', 'W'), got 1 -i"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x.npy", "-i", "@relu_x.npy", "-o", "@out.npy"},
     "has 1 input ('x'), got 2 -i"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x.npy", "-o", "@out.npy", "-o", "@out2.npy"},
     "has 1 output, got 2 -o"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x.npy", "-o", "@out.npy", "--frobnicate"},
     "unknown option '--frobnicate'"},
    {{"info", "--frobnicate", RELU "/model.onnx"}, "unknown option '--frobnicate'"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x.npy", "-o", "@out.npy", "--engine", "jit",
      "--spec", "no-such-spec"},
     "no-such-spec"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x.npy", "-o", "@out.npy", "--engine", "jit",
      "--spec", "aarch64-neon"},
     "aarch64"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x.npy", "-o", "@out.npy", "--engine", "gpu"},
     "unknown engine 'gpu'"},
    {{"run", RELU "/model.onnx", "-i", "@nothere.npy", "-o", "@out.npy"},
     "nothere.npy: No such file or directory"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x.npy", "-o", "@out.txt"},
     "out.txt: unknown tensor file type"},
    {{"run", RELU "/model.onnx", "-o", "@out.npy", "-i"}, "option '-i' needs an argument"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x.npy"}, "no output"},
    {{"run", RELU "/model.onnx", "-i", "@relu_x_bad_shape.npy", "-o", "@out.npy", "--batch"},
     "--batch needs a batch dimension of 1"},
};

START_TEST(bad_input) {
  const bad_case *c = &bad[_i];
  const char *args[13] = {0};
  for (int k = 0; c->args[k]; k++)
    args[k] = c->args[k][0] == '@' ? tpath(c->args[k] + 1) : c->args[k];
  unlink(tpath("out.npy"));
  unlink(tpath("out.txt"));
  lowbit(args);
  expect_error(c->want);
  ck_assert_msg(!exists(tpath("out.npy")) && !exists(tpath("out.txt")), "output left behind");
}
END_TEST

/* Each malformed model of the importer's fixtures (bad_*.onnx, expected text in bad_*.txt) is
 * a one-line error from info and from run, naming the file and holding the importer's text. */
START_TEST(onnx_bad_fixtures) {
  DIR *d = opendir(LB_SOURCE_DIR "/tests/onnx_bad");
  ck_assert_ptr_nonnull(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    if (strncmp(e->d_name, "bad_", 4) != 0 || strcmp(e->d_name + len - 5, ".onnx") != 0)
      continue;
    char path[1024], want[1024];
    snprintf(path, sizeof path, "%s/tests/onnx_bad/%s", LB_SOURCE_DIR, e->d_name);
    snprintf(path + strlen(path) - 5, 6, ".txt");
    slurp(path, want, sizeof want);
    want[strcspn(want, "\n")] = 0;
    snprintf(path + strlen(path) - 4, 6, ".onnx");
    lowbit((const char *const[]){"info", path, NULL});
    expect_error(e->d_name);
    expect_error(want);
    lowbit((const char *const[]){"run", path, "-i", tpath("relu_x.npy"), "-o",
                                 tpath("out.npy"), NULL});
    expect_error(want);
    ck_assert(!exists(tpath("out.npy")));
    n++;
  }
  closedir(d);
  ck_assert_int_gt(n, 0);
}
END_TEST

static void remove_tmp(void) {
  DIR *d = opendir(tmp);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.') unlink(tpath(e->d_name));
  closedir(d);
  rmdir(tmp);
}

int main(void) {
  snprintf(tmp, sizeof tmp, "%s/lowbit-cli-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmp)) {
    perror("mkdtemp");
    return EXIT_FAILURE;
  }
  const TTest *tests[] = {
    help_every_command, usage_errors, info_small_cnn_totals, info_grouped_and_shared,
    info_models_match_constants, run_relu_npy, run_conv_raw, run_two_outputs, run_batch_digits,
    run_batch_raw, run_jit_matches_interp, onnx_bad_fixtures};
  TCase *tc;
  Suite *s = lb_test_suite("cli", tests, LB_TEST_N(tests), &tc);
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, bad_input, 0, LB_TEST_N(bad));
  int rc = lb_test_run(s);
  remove_tmp();
  return rc;
}
