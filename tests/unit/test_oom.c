/* Out-of-memory paths: a test allocator (lb_set_allocator) fails the Nth allocation, for
 * N = 1, 2, ... until the operation completes without hitting the failure. Every failing run
 * must return LB_ERR_NOMEM cleanly (no crash, graph still valid where the API promises it) and,
 * under -fsanitize=address, leak nothing. Covers graph building, verify, compact, parse, print,
 * .npy read and (when linked) the fp32 passes. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "passes.h"
#include "tensor_io.h"

#include "../check_main.h"
#include "../graph_text.h"
#include "../oom.h"

/* Runs op with the Nth allocation failing for every N; returns how many N were tried. */
static long sweep(int (*op)(void *ctx), void *ctx, const char *what) {
  return lb_test_oom_sweep(op, ctx, 0, what);
}

#define NOMEM_IF(cond)                                                                           \
  do {                                                                                           \
    if (cond) {                                                                                  \
      rc = LB_ERR_NOMEM;                                                                         \
      goto done;                                                                                 \
    }                                                                                            \
  } while (0)

/* Builds x -> conv(w,b) -> relu -> (dead sigmoid) -> output, with a big (own-chunk) constant. */
static int build_graph(lb_graph **out) {
  int rc = 0;
  lb_graph *g = lb_graph_new("oom");
  *out = NULL;
  if (!g) return LB_ERR_NOMEM;
  int64_t xd[4] = {1, 2, 4, 4}, wd[4] = {3, 2, 3, 3}, bd[1] = {3}, yd[4] = {1, 3, 4, 4};
  int64_t big[1] = {20000};
  static float w[54], b[3], bigd[20000];
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 4, xd);
  uint32_t wc = lb_graph_add_const(g, "w", LB_DTYPE_F32, 4, wd, w, sizeof w);
  uint32_t bc = lb_graph_add_const(g, "b", LB_DTYPE_F32, 1, bd, b, sizeof b);
  uint32_t bg = lb_graph_add_const(g, "big", LB_DTYPE_F32, 1, big, bigd, sizeof bigd);
  NOMEM_IF(x == LB_NONE || wc == LB_NONE || bc == LB_NONE || bg == LB_NONE);
  NOMEM_IF(lb_graph_add_input(g, x));
  uint32_t prev = x;
  for (int i = 0; i < 12; i++) { /* enough values and nodes to grow the arrays */
    char name[16];
    snprintf(name, sizeof name, "y%d", i);
    uint32_t y = lb_graph_add_value(g, name, LB_DTYPE_F32, 4, yd);
    NOMEM_IF(y == LB_NONE);
    uint32_t in[3] = {prev, wc, bc};
    uint32_t nd = i == 0 ? lb_graph_add_node(g, LB_OP_CONV, "c", in, 3, &y, 1)
                         : lb_graph_add_node(g, i == 5 ? LB_OP_SIGMOID : LB_OP_RELU, name, &prev, 1, &y, 1);
    NOMEM_IF(nd == LB_NONE);
    if (i != 5) prev = y; /* the sigmoid is dead */
  }
  NOMEM_IF(lb_graph_add_output(g, prev));
  *out = g;
  return 0;
done:
  lb_graph_free(g);
  return rc;
}

static int op_build(void *ctx) {
  (void)ctx;
  lb_graph *g;
  LB_TRY(build_graph(&g));
  lb_diag d = {0};
  int rc = lb_graph_verify(g, &d);
  if (!rc) rc = lb_graph_compact(g);
  if (!rc) ck_assert_uint_eq(g->n_nodes, 11);
  lb_graph_free(g);
  return rc;
}

START_TEST(oom_build) { ck_assert_int_gt(sweep(op_build, NULL, "build"), 10); }
END_TEST

/* compact on an existing graph: on failure the graph is untouched and still verifies */
static int op_compact(void *ctx) {
  lb_graph *g = ctx;
  uint32_t nodes = g->n_nodes;
  int rc = lb_graph_compact(g);
  lb_diag d = {0};
  if (rc) ck_assert_uint_eq(g->n_nodes, nodes);
  if (rc == LB_ERR_NOMEM) {
    lb_set_allocator(NULL);
    ck_assert_int_eq(lb_graph_verify(g, &d), 0);
  }
  return rc;
}

START_TEST(oom_compact) {
  lb_graph *g;
  ck_assert_int_eq(build_graph(&g), 0);
  ck_assert_int_ge(sweep(op_compact, g, "compact"), 3);
  ck_assert_uint_eq(g->n_nodes, 11);
  lb_graph_free(g);
}
END_TEST

static const char *graph_text =
    "graph \"p\" {\n"
    "  input %x: f32[1,2,4,4]\n"
    "  const %w: i4[3,2,1,1] quant(axis=0, scale=[0.5, 0.25, 1], zero_point=[0, 1, -1]) = [1, -2, 3, -4, 5, -6]\n"
    "  const %b: f32[3] = [0.5, -1, 2]\n"
    "  %y: f32[1,3,4,4] = conv(%x, %w, %b) {act=relu} name=\"conv\"\n"
    "  %q: u8[1,3,4,4] quant(scale=0.1, zero_point=3) = relu(%y)\n"
    "  %z: f32[1,3,4,4] = sigmoid(%q)\n"
    "  output %z\n"
    "}\n";

static int op_parse(void *ctx) {
  (void)ctx;
  lb_graph *g = NULL;
  lb_diag d = {0};
  int rc = lb_graph_parse(graph_text, "oom.ir", &g, &d);
  if (rc) {
    ck_assert_ptr_null(g);
    ck_assert_str_eq(d.msg, "oom.ir: out of memory while parsing");
    return rc;
  }
  ck_assert_uint_eq(g->n_nodes, 3);
  lb_graph_free(g);
  return 0;
}

START_TEST(oom_parse) { ck_assert_int_gt(sweep(op_parse, NULL, "parse"), 10); }
END_TEST

/* print cannot fail: without memory for its name table it scans instead, same text */
static int op_print(void *ctx) {
  const lb_graph *g = ctx;
  lb_set_allocator(NULL);
  char *want = lb_test_graph_text(g, 8);
  lb_set_allocator(lb_test_oom_alloc);
  char *got = lb_test_graph_text(g, 8);
  lb_set_allocator(NULL);
  ck_assert_str_eq(got, want);
  free(want);
  free(got);
  return lb_test_oom_hit() ? LB_ERR_NOMEM : 0;
}

START_TEST(oom_print) {
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_int_eq(lb_graph_parse(graph_text, "p.ir", &g, &d), 0);
  ck_assert_int_ge(sweep(op_print, g, "print"), 2);
  lb_graph_free(g);
}
END_TEST

static int op_npy(void *ctx) {
  lb_tensor t;
  lb_diag d = {0};
  int rc = lb_npy_read(ctx, &t, &d);
  if (rc) {
    ck_assert_ptr_null(t.data);
    ck_assert_ptr_nonnull(strstr(d.msg, "out of memory"));
    return rc;
  }
  ck_assert_float_eq(((float *)t.data)[5], 1.5f);
  lb_free(t.data);
  return 0;
}

START_TEST(oom_npy) {
  ck_assert_int_eq(sweep(op_npy, LB_SOURCE_DIR "/tests/data/npy/f32_2x3.npy", "npy"), 3);
}
END_TEST

/* fold_batchnorm + fuse: on OOM the graph is still valid; on success the same as without OOM */
static const char *pass_text =
    "graph \"block\" {\n"
    "  input %x: f32[1,2,2,2]\n"
    "  input %v: f32[3,2]\n"
    "  const %w: f32[2,2,1,1] = [1, 0, 0, 1]\n"
    "  const %s: f32[2] = [2, 1]\n"
    "  const %beta: f32[2] = [0, 0.5]\n"
    "  const %mean: f32[2] = [1, 0]\n"
    "  const %var: f32[2] = [1, 1]\n"
    "  const %k: f32[2,2] = [1, 2, 3, 4]\n"
    "  %c1: f32[1,2,2,2] = conv(%x, %w)\n"
    "  %b1: f32[1,2,2,2] = batchnorm(%c1, %s, %beta, %mean, %var)\n"
    "  %r1: f32[1,2,2,2] = relu(%b1)\n"
    "  %c2: f32[1,2,2,2] = conv(%r1, %w)\n"
    "  %sum: f32[1,2,2,2] = add(%c2, %x)\n"
    "  %out: f32[1,2,2,2] = relu(%sum)\n"
    "  %g: f32[3,2] = gemm(%v, %k)\n"
    "  %gb: f32[3,2] = batchnorm(%g, %s, %beta, %mean, %var)\n"
    "  %gr: f32[3,2] = clip(%gb) {clip_min=0, clip_max=6}\n"
    "  output %out\n"
    "  output %gr\n"
    "}\n";

static int op_passes(void *ctx) {
  const char *want = ctx;
  lb_set_allocator(NULL);
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_int_eq(lb_graph_parse(pass_text, "b.ir", &g, &d), 0);
  lb_set_allocator(lb_test_oom_alloc);
  int rc = lb_pass_prepare_fp32(g, &d);
  lb_set_allocator(NULL);
  if (rc) {
    ck_assert_msg(strstr(d.msg, "out of memory") != NULL, "rc %d: %s", rc, d.msg);
    lb_diag_clear(&d);
    ck_assert_msg(lb_graph_verify(g, &d) == 0, "%s", d.msg);
  } else {
    char *got = lb_test_graph_text(g, -1);
    ck_assert_str_eq(got, want);
    free(got);
  }
  lb_graph_free(g);
  lb_set_allocator(lb_test_oom_alloc);
  return rc;
}

START_TEST(oom_passes) {
  lb_graph *g = NULL;
  lb_diag d = {0};
  ck_assert_int_eq(lb_graph_parse(pass_text, "b.ir", &g, &d), 0);
  ck_assert_int_eq(lb_pass_prepare_fp32(g, &d), 0);
  ck_assert_uint_eq(g->n_nodes, 3);
  char *want = lb_test_graph_text(g, -1);
  lb_graph_free(g);
  ck_assert_int_gt(sweep(op_passes, want, "passes"), 5);
  free(want);
}
END_TEST

int main(void) {
  const TTest *tests[] = {oom_build, oom_compact, oom_parse, oom_print, oom_npy, oom_passes};
  return lb_test_run(lb_test_suite("oom", tests, LB_TEST_N(tests), NULL));
}
