/* Tests of the fp32 preparation passes: golden files (tests/golden/passes, rules and
 * non-rules), the runner's errors, and numerics: the interpreter's output before and after
 * fold_batchnorm+fuse on random graphs and on the digits models agrees within 1e-5 relative. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../check_main.h"
#include "../golden_harness.h"
#include "../graph_text.h"
#include "ir.h"
#include "onnx.h"
#include "passes.h"
#include "tensor_io.h"

static int run_passes(lb_graph *g, const char *passes, void *user, lb_diag *diag) {
  (void)user;
  lb_pass_ctx ctx = {NULL, 1};
  return lb_pass_run_list(g, passes, &ctx, diag);
}

START_TEST(golden_passes) {
  lb_golden_check_dir(LB_SOURCE_DIR "/tests/golden/passes", 10, run_passes, NULL);
}
END_TEST

START_TEST(registry) {
  ck_assert_ptr_nonnull(lb_pass_find("fold_batchnorm"));
  ck_assert_ptr_nonnull(lb_pass_find("fuse"));
  ck_assert_ptr_null(lb_pass_find("nope"));
  int n = 0;
  for (const lb_pass_info *p = lb_pass_registry(); p->name; p++) n++;
  ck_assert_int_eq(n, 3);
  lb_graph *g = lb_graph_new("g");
  lb_diag d = {0};
  ck_assert_int_eq(lb_pass_run_list(g, " , ", NULL, &d), 0);
  ck_assert_int_eq(lb_pass_run_list(g, "fuse,,x y", NULL, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, "unknown pass 'x' (known: fold_batchnorm, fuse, compact)");
  lb_graph_free(g);
}
END_TEST

/* ---- random graphs ---------------------------------------------------------------------- */

static uint64_t rng;
static float frand(float lo, float hi) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return lo + (hi - lo) * (float)((rng >> 40) & 0xffffff) / (float)0x1000000;
}
static int irand(int n) { return (int)(frand(0, (float)n - 0.001f)); }

static uint32_t rconst(lb_graph *g, const char *name, int rank, const int64_t *d, float lo, float hi) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= d[i];
  float *buf = malloc((size_t)n * sizeof(float) + 4);
  for (int64_t i = 0; i < n; i++) buf[i] = frand(lo, hi);
  uint32_t v = lb_graph_add_const(g, name, LB_DTYPE_F32, rank, d, buf, (size_t)n * sizeof(float));
  free(buf);
  ck_assert_uint_ne(v, LB_NONE);
  return v;
}

static uint32_t tmpv(lb_graph *g) {
  char name[16];
  snprintf(name, sizeof name, "t%u", g->n_values);
  return lb_graph_add_value(g, name, LB_DTYPE_F32, 0, NULL);
}

static uint32_t op(lb_graph *g, lb_op o, const uint32_t *in, uint32_t n_in, lb_node **nd) {
  uint32_t y = tmpv(g);
  uint32_t n = lb_graph_add_node(g, o, "", in, n_in, &y, 1);
  ck_assert_uint_ne(n, LB_NONE);
  *nd = &g->nodes[n];
  return y;
}

static uint32_t bn(lb_graph *g, uint32_t x, int64_t ch) {
  int64_t d[1] = {ch};
  uint32_t in[5] = {x, rconst(g, "s", 1, d, 0.5f, 1.5f), rconst(g, "b", 1, d, -1, 1),
                    rconst(g, "m", 1, d, -0.5f, 0.5f), rconst(g, "v", 1, d, 0.5f, 2)};
  lb_node *nd;
  uint32_t y = op(g, LB_OP_BATCHNORM, in, 5, &nd);
  nd->attr.epsilon = 1e-5f;
  return y;
}

static uint32_t conv(lb_graph *g, uint32_t x, int64_t cin, int64_t cout, int bias, int group) {
  int64_t wd[4] = {cout, cin / group, 3, 3}, bd[1] = {cout};
  uint32_t in[3] = {x, rconst(g, "w", 4, wd, -0.5f, 0.5f), bias ? rconst(g, "cb", 1, bd, -1, 1) : LB_NONE};
  lb_node *nd;
  uint32_t y = op(g, LB_OP_CONV, in, bias ? 3 : 2, &nd);
  lb_attrs *a = &nd->attr;
  a->n_spatial = 2;
  a->group = group;
  for (int i = 0; i < 2; i++) a->kernel[i] = 3, a->strides[i] = 1, a->dilations[i] = 1;
  for (int i = 0; i < 4; i++) a->pads[i] = 1;
  return y;
}

static uint32_t unary(lb_graph *g, lb_op o, uint32_t x, float lo, float hi) {
  lb_node *nd;
  uint32_t y = op(g, o, &x, 1, &nd);
  nd->attr.clip_min = lo;
  nd->attr.clip_max = hi;
  return y;
}

static uint32_t binary(lb_graph *g, lb_op o, uint32_t a, uint32_t b) {
  uint32_t in[2] = {a, b};
  lb_node *nd;
  return op(g, o, in, 2, &nd);
}

/* A residual CNN block with random sizes: conv-bn-relu, conv-bn, +x, relu, and a clip head. */
static lb_graph *random_cnn(void) {
  lb_graph *g = lb_graph_new("cnn");
  int64_t c = 2 + irand(3) * 2, h = 3 + irand(4), xd[4] = {1 + irand(2), c, h, h + irand(2)};
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 4, xd);
  lb_graph_add_input(g, x);
  int group = irand(2) ? 2 : 1;
  uint32_t a = unary(g, LB_OP_RELU, bn(g, conv(g, x, c, c, irand(2), group), c), 0, 0);
  uint32_t b = bn(g, conv(g, a, c, c, irand(2), 1), c);
  uint32_t s = irand(2) ? binary(g, LB_OP_ADD, b, x) : binary(g, LB_OP_ADD, x, b);
  uint32_t r = unary(g, LB_OP_RELU, s, 0, 0);
  uint32_t y = unary(g, LB_OP_CLIP, conv(g, r, c, c, 1, 1), -1, 1.5f);
  lb_graph_add_output(g, y);
  return g;
}

/* gemm (random trans_b, alpha, beta, C shape) - bn - clip, a matmul-relu, add-relu. */
static lb_graph *random_dense(void) {
  lb_graph *g = lb_graph_new("dense");
  int64_t M = 1 + irand(4), K = 2 + irand(5), N = 2 + irand(5);
  int64_t xd[2] = {M, K};
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 2, xd);
  lb_graph_add_input(g, x);
  int tb = irand(2), cs = irand(4);
  int64_t bd[2] = {tb ? N : K, tb ? K : N}, cd[2][2] = {{N, 0}, {M, N}};
  uint32_t in[3] = {x, rconst(g, "B", 2, bd, -1, 1), LB_NONE};
  if (cs == 1) in[2] = rconst(g, "C", 1, cd[0], -1, 1);
  if (cs == 2) in[2] = rconst(g, "C", 2, cd[1], -1, 1);
  if (cs == 3) in[2] = rconst(g, "C", 0, NULL, -1, 1);
  lb_node *nd;
  uint32_t y = op(g, LB_OP_GEMM, in, cs ? 3 : 2, &nd);
  nd->attr.trans_b = tb;
  nd->attr.alpha = frand(0.5f, 1.5f);
  nd->attr.beta = frand(0.5f, 2);
  y = unary(g, LB_OP_CLIP, bn(g, y, N), -0.5f, 0.7f);
  int64_t md[2] = {N, N}, vd[1] = {N};
  uint32_t m = unary(g, LB_OP_RELU, binary(g, LB_OP_MATMUL, y, rconst(g, "Mw", 2, md, -1, 1)), 0, 0);
  uint32_t s = unary(g, LB_OP_RELU, binary(g, LB_OP_ADD, m, rconst(g, "bv", 1, vd, -1, 1)), 0, 0);
  int64_t gd[2] = {N, N};
  uint32_t gin[2] = {s, rconst(g, "G", 2, gd, -1, 1)};
  uint32_t g2 = op(g, LB_OP_GEMM, gin, 2, &nd);
  uint32_t r = unary(g, LB_OP_RELU, binary(g, LB_OP_ADD, g2, m), 0, 0);
  lb_graph_add_output(g, r);
  lb_graph_add_output(g, s);
  return g;
}

static lb_graph *clone(const lb_graph *g) {
  char *text = lb_test_graph_text(g, -1);
  lb_graph *c = NULL;
  lb_diag d = {0};
  ck_assert_msg(lb_graph_parse(text, "clone", &c, &d) == 0, "%s", d.msg);
  free(text);
  return c;
}

/* Interprets g on inputs; returns the outputs (caller frees each .data with lb_free). */
static lb_tensor *interp(const lb_graph *g, const lb_tensor *inputs) {
  lb_tensor *out = calloc(g->n_outputs, sizeof *out);
  lb_diag d = {0};
  ck_assert_msg(lb_interp_run(g, inputs, out, &d) == 0, "%s", d.msg);
  return out;
}

/* max |a-b| / max |a| over every output; also frees both output sets. */
static double compare_outputs(const lb_graph *g, lb_tensor *a, lb_tensor *b) {
  double err = 0, mag = 1e-30;
  for (uint32_t o = 0; o < g->n_outputs; o++) {
    int64_t n = lb_tensor_numel(&a[o]);
    ck_assert_int_eq(n, lb_tensor_numel(&b[o]));
    const float *x = a[o].data, *y = b[o].data;
    for (int64_t i = 0; i < n; i++) {
      err = fmax(err, fabs((double)x[i] - (double)y[i]));
      mag = fmax(mag, fabs((double)x[i]));
    }
    lb_free(a[o].data);
    lb_free(b[o].data);
  }
  free(a);
  free(b);
  return err / mag;
}

/* Runs before/after on random inputs; returns the relative error. */
static double check_prepare(lb_graph *g, uint32_t *nodes_before, uint32_t *nodes_after) {
  lb_diag d = {0};
  ck_assert_msg(lb_infer_shapes(g, &d) == 0, "%s", d.msg);
  lb_tensor *in = calloc(g->n_inputs, sizeof *in);
  for (uint32_t i = 0; i < g->n_inputs; i++) {
    const lb_value *v = &g->values[g->inputs[i]];
    in[i].dtype = v->dtype;
    in[i].rank = v->rank;
    memcpy(in[i].dims, v->dims, sizeof v->dims);
    int64_t n = lb_value_numel(v);
    float *p = malloc((size_t)n * sizeof(float) + 4);
    for (int64_t k = 0; k < n; k++) p[k] = frand(-2, 2);
    in[i].data = p;
  }
  lb_tensor *ref = interp(g, in);
  lb_graph *h = clone(g);
  ck_assert_msg(lb_pass_prepare_fp32(h, &d) == 0, "%s", d.msg);
  lb_tensor *got = interp(h, in);
  *nodes_before = g->n_nodes;
  *nodes_after = h->n_nodes;
  double rel = compare_outputs(g, ref, got);
  for (uint32_t i = 0; i < g->n_inputs; i++) free(in[i].data);
  free(in);
  lb_graph_free(h);
  return rel;
}

START_TEST(random_graphs) {
  rng = 0x1234567ull + (uint64_t)_i * 7919;
  for (int k = 0; k < 2; k++) {
    lb_graph *g = k ? random_dense() : random_cnn();
    uint32_t before, after;
    double rel = check_prepare(g, &before, &after);
    ck_assert_msg(rel <= 1e-5, "seed %d %s: relative error %g", _i, g->name, rel);
    /* cnn: 2 bn + 2 relu + add + clip go; dense: bn, clip, 2 relu, add+relu into the gemm */
    ck_assert_uint_eq(after, before - 6);
    lb_graph_free(g);
  }
}
END_TEST

/* Runs one model before and after the passes on the first samples of x; 0 if not applicable. */
static int check_model(const char *path, const lb_tensor *x) {
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_msg(lb_onnx_load(path, &g, &d) == 0, "%s", d.msg);
  const lb_value *v = &g->values[g->inputs[0]];
  if (g->n_inputs != 1 || v->dtype != LB_DTYPE_F32 || lb_value_numel(v) > lb_tensor_numel(x)) {
    lb_graph_free(g);
    return 0;
  }
  lb_tensor in = *x;
  in.rank = v->rank;
  memcpy(in.dims, v->dims, sizeof in.dims);
  lb_tensor *ref = interp(g, &in);
  lb_graph *h = clone(g);
  ck_assert_msg(lb_pass_prepare_fp32(h, &d) == 0, "%s", d.msg);
  lb_tensor *got = interp(h, &in);
  uint32_t nb = g->n_nodes, na = h->n_nodes;
  double rel = compare_outputs(g, ref, got);
  fprintf(stderr, "%s: %u -> %u nodes, relative error %.3g\n", path, nb, na, rel);
  ck_assert_msg(rel <= 1e-5, "%s: relative error %g", path, rel);
  lb_graph_free(g);
  lb_graph_free(h);
  return 1;
}

/* Every model in tests/models (the digits models, when present): same outputs after the passes. */
START_TEST(digits_models) {
  lb_tensor x;
  lb_diag d = {0};
  if (lb_npy_read(LB_SOURCE_DIR "/tests/models/digits_test_x.npy", &x, &d)) {
    fprintf(stderr, "digits_models: skipped (%s)\n", d.msg);
    return;
  }
  char **paths = NULL;
  int n = 0, cap = 0, ran = 0;
  DIR *dir = opendir(LB_SOURCE_DIR "/tests/models");
  for (struct dirent *e; dir && (e = readdir(dir));) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".onnx") != 0) continue;
    if (n == cap) paths = realloc(paths, (size_t)(cap = cap ? 2 * cap : 8) * sizeof *paths);
    paths[n] = malloc(strlen(LB_SOURCE_DIR) + l + 16);
    sprintf(paths[n++], "%s/tests/models/%s", LB_SOURCE_DIR, e->d_name);
  }
  if (dir) closedir(dir);
  for (int i = 0; i < n; i++) ran += check_model(paths[i], &x);
  lb_golden_list_free(paths, n);
  lb_free(x.data);
  fprintf(stderr, "digits_models: %d models checked\n", ran);
  ck_assert_int_ge(ran, 1);
}
END_TEST

int main(void) {
  const TTest *tests[] = {golden_passes, registry, digits_models};
  TCase *tc;
  Suite *s = lb_test_suite("passes", tests, LB_TEST_N(tests), &tc);
  tcase_add_loop_test(tc, random_graphs, 0, 20);
  return lb_test_run(s);
}
