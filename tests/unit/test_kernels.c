/* Unit tests for the fp32 kernels: every emitted kernel is JIT-compiled for this host and compared
 * with its scalar _ref (kernels_ref.c) over shape sweeps that hit the tile and block edges, at the
 * host's vector width, at 128 bits (NEON-like) and at 32 bits (scalar); the same cases are then
 * compiled for AArch64 (NEON) and run under qemu-aarch64. Tolerance: 1e-5 relative to the sum of
 * |terms| of each output, which bounds fp32 rounding of any summation order. LB_TEST_QUICK: the
 * fixed cases and the first 6 random ones of each kind. */
#include <check.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"

#include "../check_main.h"
#include "../quick.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t rng_state = 88172645463325252ull;

static float frand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (float)((rng_state >> 40) & 0xffff) / 32768.0f - 1.0f;
}

static float *rand_buf(int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  ck_assert_ptr_nonnull(p);
  for (int64_t i = 0; i < n; i++) p[i] = frand();
  return p;
}

static float *abs_copy(const float *p, int64_t n) {
  float *q = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  ck_assert_ptr_nonnull(q);
  for (int64_t i = 0; i < n; i++) q[i] = fabsf(p[i]);
  return q;
}

/* got vs want, where mag is the sum of |terms| for each element; elements outside the
 * (rows x cols, ld) window must still hold the sentinel. */
static void check_close(const float *got, const float *want, const float *mag, int64_t rows,
                        int64_t cols, int64_t ld, int64_t total, const char *what) {
  for (int64_t i = 0; i < total; i++) {
    int64_t r = i / ld, c = i % ld;
    if (r >= rows || c >= cols) {
      ck_assert_msg(got[i] == 1234.5f, "%s: wrote outside the output at %lld", what, (long long)i);
      continue;
    }
    double tol = 1e-5 * (mag[i] + 1e-6);
    ck_assert_msg(fabs((double)got[i] - want[i]) <= tol, "%s: [%lld,%lld] got %.9g want %.9g",
                  what, (long long)r, (long long)c, (double)got[i], (double)want[i]);
  }
}

/* ---- GEMM sweep -------------------------------------------------------------------------- */

typedef struct gemm_case {
  int cfg; /* 0: AVX2-like 256-bit with tiny caches (forces K and M blocking), 1: host width
              and default caches, 2: 128-bit with 32 registers, 3: scalar, 4: host width with
              tiny caches */
  int64_t m, n, k, pad_a, pad_c;
  int bias, res;
  lb_act act;
  int64_t ub; /* 0: B packed; u > 0: run-time row-major B with ldb = n + u - 1 */
} gemm_case;

/* Hand-picked edge cases; make_cases() appends N_RANDOM random ones to each list. */
#define N_RANDOM 24
static const gemm_case gemm_fixed[] = {
    /* cfg   m    n    k  pa pc bias res act ub */
    {0, 1, 1, 1, 0, 0, 0, 0, LB_ACT_NONE, 0},
    {0, 1, 16, 7, 0, 0, 1, 0, LB_ACT_RELU, 0},
    {0, 1, 100, 65, 3, 1, 1, 1, LB_ACT_CLIP, 0},
    {0, 2, 40, 31, 0, 0, 0, 1, LB_ACT_NONE, 0},
    {0, 5, 15, 32, 0, 0, 1, 0, LB_ACT_CLIP, 0},
    {0, 6, 16, 33, 0, 0, 1, 1, LB_ACT_RELU, 0},
    {0, 7, 17, 64, 1, 2, 1, 1, LB_ACT_NONE, 0},
    {0, 13, 33, 100, 0, 0, 0, 0, LB_ACT_RELU, 0},
    {0, 31, 64, 5, 0, 3, 1, 0, LB_ACT_NONE, 0},
    {0, 64, 8, 97, 2, 0, 1, 1, LB_ACT_CLIP, 0},
    {0, 100, 3, 200, 0, 0, 1, 1, LB_ACT_RELU, 0},
    {0, 67, 49, 129, 5, 7, 1, 1, LB_ACT_NONE, 0},
    {0, 4, 50, 9, 0, 0, 0, 0, LB_ACT_NONE, 0},
    {0, 3, 200, 40, 0, 0, 1, 0, LB_ACT_RELU, 0},
    {1, 1, 1000, 512, 0, 0, 1, 0, LB_ACT_NONE, 0},
    {1, 49, 70, 600, 0, 0, 1, 1, LB_ACT_RELU, 0},
    {1, 96, 64, 27, 0, 0, 1, 0, LB_ACT_CLIP, 0},
    {2, 1, 9, 3, 0, 0, 1, 0, LB_ACT_RELU, 0},
    {2, 7, 17, 70, 1, 1, 1, 1, LB_ACT_CLIP, 0},
    {2, 14, 36, 33, 0, 0, 0, 1, LB_ACT_NONE, 0},
    {3, 3, 5, 9, 0, 0, 1, 1, LB_ACT_RELU, 0},
    {3, 9, 11, 40, 2, 0, 0, 0, LB_ACT_CLIP, 0},
    {4, 1, 70, 40, 0, 0, 1, 0, LB_ACT_RELU, 0},
    {4, 13, 33, 50, 1, 1, 1, 1, LB_ACT_CLIP, 0},
    {4, 25, 96, 17, 0, 0, 1, 0, LB_ACT_NONE, 0},
    {4, 50, 31, 64, 0, 0, 0, 1, LB_ACT_RELU, 0},
    {0, 7, 17, 70, 1, 2, 1, 1, LB_ACT_CLIP, 1},
    {0, 1, 40, 33, 0, 0, 1, 0, LB_ACT_RELU, 4},
    {1, 30, 45, 300, 0, 0, 0, 1, LB_ACT_NONE, 2},
    {2, 9, 21, 10, 0, 0, 1, 1, LB_ACT_NONE, 1},
    {3, 5, 7, 9, 0, 0, 1, 0, LB_ACT_RELU, 3},
};
#define N_GEMM_CASES (LB_TEST_N(gemm_fixed) + N_RANDOM)
static gemm_case gemm_cases[N_GEMM_CASES];

static void case_cfg(int which, lb_kern_cfg *cfg) {
  lb_kjit_host_cfg(cfg);
  if (which == 0) {
    cfg->vector_bits = 256;
    cfg->vector_regs = 16;
    cfg->cache[0] = 4096; /* KC = 32 with NR = 16 */
    cfg->cache[1] = 8192; /* MC = 30 */
  } else if (which == 4) {
    cfg->cache[0] = 4096;
    cfg->cache[1] = 8192;
  } else if (which == 2) {
    cfg->vector_bits = 128;
    cfg->vector_regs = 32;
  } else if (which == 3) {
    cfg->vector_bits = 32;
    cfg->vector_regs = 16;
  }
}

static void gemm_case_desc(const gemm_case *c, lb_gemm_desc *d) {
  memset(d, 0, sizeof *d);
  d->m = c->m;
  d->n = c->n;
  d->k = c->k;
  d->lda = c->k + c->pad_a;
  d->ldc = c->n + c->pad_c;
  d->ldr = c->n + 1;
  d->has_bias = c->bias;
  d->has_res = c->res;
  d->act = c->act;
  d->act_min = -0.25f;
  d->act_max = 0.5f;
  d->b_rowmajor = c->ub > 0;
  d->ldb = c->ub > 0 ? c->n + c->ub - 1 : 0;
}

/* ---- convolutions ------------------------------------------------------------------------ */

typedef struct conv_case {
  int cfg, dw; /* dw: depthwise (c_out = c_in) */
  int64_t n, h, w, ci, co, kh, kw, sh, sw, dh, dw_, pt, pl, pb, pr, xpad, ypad;
  int bias, res;
  lb_act act;
} conv_case;

static const conv_case conv_fixed[] = {
    /* cfg dw  n  h  w  ci co kh kw sh sw dh dw pt pl pb pr xp yp bias res act */
    {1, 0, 1, 8, 8, 3, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, LB_ACT_RELU},
    {1, 0, 2, 9, 7, 5, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, LB_ACT_NONE},
    {1, 0, 1, 6, 6, 16, 33, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, LB_ACT_RELU},
    {1, 0, 1, 7, 5, 4, 8, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, LB_ACT_NONE},
    {1, 0, 1, 11, 11, 3, 10, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 0, 0, 1, 0, LB_ACT_CLIP},
    {1, 0, 1, 9, 9, 2, 5, 3, 3, 1, 1, 2, 2, 2, 1, 2, 0, 0, 0, 0, 0, LB_ACT_NONE},
    {1, 0, 1, 5, 6, 40, 24, 3, 2, 1, 1, 1, 1, 0, 1, 1, 0, 3, 5, 1, 1, LB_ACT_CLIP},
    {2, 0, 1, 6, 6, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 0, LB_ACT_RELU},
    {3, 0, 1, 5, 4, 3, 3, 3, 3, 1, 2, 1, 1, 1, 0, 0, 1, 0, 0, 1, 1, LB_ACT_NONE},
    {1, 0, 1, 3, 1, 4, 6, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2, 0, 0, 1, 0, LB_ACT_NONE},
    {1, 0, 2, 4, 2, 5, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, LB_ACT_RELU},
    {0, 0, 1, 10, 10, 1, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, LB_ACT_RELU},
    {0, 0, 2, 7, 9, 2, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, LB_ACT_CLIP},
    {0, 0, 1, 13, 13, 3, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, LB_ACT_RELU},
    {1, 1, 1, 8, 8, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, LB_ACT_RELU},
    {1, 1, 2, 9, 7, 77, 77, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1, LB_ACT_CLIP},
    {1, 1, 1, 10, 10, 5, 5, 5, 5, 1, 1, 2, 2, 4, 4, 4, 4, 0, 0, 0, 1, LB_ACT_NONE},
    {1, 1, 1, 6, 6, 144, 144, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 0, 0, 1, 0, LB_ACT_CLIP},
    {2, 1, 1, 7, 7, 19, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, LB_ACT_RELU},
    {3, 1, 1, 5, 5, 3, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, LB_ACT_NONE},
};
#define N_CONV_CASES (LB_TEST_N(conv_fixed) + N_RANDOM)
static conv_case conv_cases[N_CONV_CASES];

static void conv_case_desc_raw(const conv_case *c, lb_conv_desc *d) {
  *d = (lb_conv_desc){.n = c->n, .h = c->h, .w = c->w, .c_in = c->ci, .c_out = c->co,
                      .kh = c->kh, .kw = c->kw, .sh = c->sh, .sw = c->sw, .dh = c->dh,
                      .dw = c->dw_, .pad_t = c->pt, .pad_l = c->pl, .pad_b = c->pb,
                      .pad_r = c->pr, .ldx = c->ci + c->xpad, .ldy = c->co + c->ypad,
                      .ldr = c->co + 2, .has_bias = c->bias, .has_res = c->res, .act = c->act,
                      .act_min = -0.3f, .act_max = 0.4f};
}

static void conv_case_desc(const conv_case *c, lb_conv_desc *d) {
  conv_case_desc_raw(c, d);
  lb_diag diag = {0};
  ck_assert_msg(lb_conv_desc_finish(d, &diag) == 0, "%s", diag.msg);
}

/* ---- random cases ------------------------------------------------------------------------ */

static uint64_t shape_rng = 0x9e3779b97f4a7c15ull;

static int64_t irand(int64_t lo, int64_t hi) { /* uniform in [lo, hi] */
  shape_rng = shape_rng * 6364136223846793005ull + 1442695040888963407ull;
  return lo + (int64_t)((shape_rng >> 33) % (uint64_t)(hi - lo + 1));
}

static void random_gemm(gemm_case *c) {
  *c = (gemm_case){(int)irand(0, 4), irand(1, 40), irand(1, 80), irand(1, 150), irand(0, 3),
                   irand(0, 3), (int)irand(0, 1), (int)irand(0, 1), (lb_act)irand(0, 2),
                   irand(0, 3) == 3 ? irand(1, 3) : 0};
}

/* A random conv whose (dilated) window fits the padded input. */
static void random_conv(conv_case *c) {
  lb_diag diag = {0};
  lb_conv_desc d;
  do {
    int dw = (int)irand(0, 1);
    int64_t ci = irand(1, dw ? 40 : 20);
    *c = (conv_case){(int)irand(0, 4), dw, irand(1, 2), irand(1, 12), irand(1, 12), ci,
                     dw ? ci : irand(1, 20), irand(1, 5), irand(1, 5), irand(1, 3), irand(1, 3),
                     irand(1, 2), irand(1, 2), irand(0, 2), irand(0, 2), irand(0, 2), irand(0, 2),
                     irand(0, 2), irand(0, 2), (int)irand(0, 1), (int)irand(0, 1),
                     (lb_act)irand(0, 2)};
    conv_case_desc_raw(c, &d);
    lb_diag_clear(&diag);
  } while (lb_conv_desc_finish(&d, &diag) != 0);
}

/* Fixed cases first, then the random ones (same seed every run). */
static void make_cases(void) {
  int nf = N_GEMM_CASES - N_RANDOM, nc = N_CONV_CASES - N_RANDOM;
  memcpy(gemm_cases, gemm_fixed, sizeof gemm_fixed);
  memcpy(conv_cases, conv_fixed, sizeof conv_fixed);
  for (int i = 0; i < N_RANDOM; i++) random_gemm(&gemm_cases[nf + i]);
  for (int i = 0; i < N_RANDOM; i++) random_conv(&conv_cases[nc + i]);
}

typedef void (*kern_fn)(const float *, const float *, const float *, const float *, float *,
                        float *);

#define N_CASES (N_GEMM_CASES + N_CONV_CASES)

/* ---- problems: operands, expected output and magnitudes for one case --------------------- */

/* in[0] = A or X, in[1] = packed B or W, in[2] = bias, in[3] = residual. The output window is
 * rows x cols with leading dim ld, inside n_out floats. */
typedef struct problem {
  float *in[4];
  int64_t n_in[4];
  float *want, *mag;
  int64_t n_out, rows, cols, ld;
  size_t scratch;
  int has_bias, has_res;
} problem;

static float *sentinel_buf(int64_t n) {
  float *p = malloc((size_t)n * 4);
  ck_assert_ptr_nonnull(p);
  for (int64_t i = 0; i < n; i++) p[i] = 1234.5f;
  return p;
}

static void gemm_problem(const gemm_case *c, const lb_kern_cfg *cfg, problem *p) {
  lb_gemm_desc d;
  gemm_case_desc(c, &d);
  int64_t ldb = d.b_rowmajor ? d.ldb : d.n;
  float *b = rand_buf(d.k * ldb);
  int64_t n[4] = {d.m * d.lda, 0, d.n, d.m * d.ldr};
  for (int i = 0; i < 4; i++) p->n_in[i] = n[i], p->in[i] = i == 1 ? NULL : rand_buf(n[i]);
  if (d.b_rowmajor) { /* the kernel reads B as it is */
    p->n_in[1] = d.k * ldb;
    p->in[1] = malloc((size_t)(d.k * ldb) * 4);
    memcpy(p->in[1], b, (size_t)(d.k * ldb) * 4);
  } else {
    size_t psz = lb_pack_gemm_b_size(cfg, d.k, d.n);
    p->n_in[1] = (int64_t)(psz / 4);
    p->in[1] = malloc(psz);
    lb_pack_gemm_b(cfg, d.k, d.n, b, 0, p->in[1]);
  }
  p->rows = d.m, p->cols = d.n, p->ld = d.ldc, p->n_out = d.m * d.ldc;
  p->has_bias = d.has_bias, p->has_res = d.has_res, p->scratch = 0;
  p->want = sentinel_buf(p->n_out);
  p->mag = sentinel_buf(p->n_out);
  lb_ref_gemm_f32(&d, p->in[0], b, p->in[2], p->in[3], p->want);
  d.act = LB_ACT_NONE;
  float *ab = abs_copy(b, d.k * ldb), *aa[4];
  for (int i = 0; i < 4; i++) aa[i] = abs_copy(p->in[i], p->n_in[i]);
  lb_ref_gemm_f32(&d, aa[0], ab, aa[2], aa[3], p->mag);
  for (int i = 0; i < 4; i++) free(aa[i]);
  free(ab), free(b);
}

static void conv_problem(const conv_case *c, const lb_kern_cfg *cfg, size_t scratch, problem *p) {
  lb_conv_desc d;
  conv_case_desc(c, &d);
  int64_t npix = d.n * d.oh * d.ow;
  int64_t nw = c->dw ? d.c_in * d.kh * d.kw : d.c_out * d.c_in * d.kh * d.kw;
  float *w = rand_buf(nw);
  int64_t n[4] = {d.n * d.h * d.w * d.ldx, 0, d.c_out, npix * d.ldr};
  for (int i = 0; i < 4; i++) p->n_in[i] = n[i], p->in[i] = i == 1 ? NULL : rand_buf(n[i]);
  size_t psz = c->dw ? lb_pack_dw_size(d.c_in, d.kh, d.kw)
                     : lb_pack_gemm_b_size(cfg, d.kh * d.kw * d.c_in, d.c_out);
  p->n_in[1] = (int64_t)(psz / 4);
  p->in[1] = malloc(psz);
  if (c->dw) lb_pack_dw_w(w, d.c_in, d.kh, d.kw, p->in[1]);
  else lb_pack_conv_w(cfg, w, d.c_out, d.c_in, d.kh, d.kw, p->in[1]);
  p->rows = npix, p->cols = d.c_out, p->ld = d.ldy, p->n_out = npix * d.ldy;
  p->has_bias = d.has_bias, p->has_res = d.has_res, p->scratch = scratch;
  p->want = sentinel_buf(p->n_out);
  p->mag = sentinel_buf(p->n_out);
  void (*ref)(const lb_conv_desc *, const float *, const float *, const float *, const float *,
              float *) = c->dw ? lb_ref_dwconv_f32 : lb_ref_conv_f32;
  ref(&d, p->in[0], w, p->in[2], p->in[3], p->want);
  d.act = LB_ACT_NONE;
  float *aw = abs_copy(w, nw), *aa[4];
  for (int i = 0; i < 4; i++) aa[i] = abs_copy(p->in[i], p->n_in[i]);
  ref(&d, aa[0], aw, aa[2], aa[3], p->mag);
  for (int i = 0; i < 4; i++) free(aa[i]);
  free(aw), free(w);
}

/* Case i of the combined list (GEMM cases, then conv cases). */
static void case_problem(int i, const lb_kern_cfg *cfg, size_t scratch, problem *p) {
  rng_state = 88172645463325252ull + (uint64_t)i * 7919u;
  if (i < N_GEMM_CASES) gemm_problem(&gemm_cases[i], cfg, p);
  else conv_problem(&conv_cases[i - N_GEMM_CASES], cfg, scratch, p);
}

static void problem_free(problem *p) {
  for (int i = 0; i < 4; i++) free(p->in[i]);
  free(p->want), free(p->mag);
}

static float *problem_run(const problem *p, kern_fn f) {
  float *got = sentinel_buf(p->n_out), *scratch = p->scratch ? malloc(p->scratch) : NULL;
  f(p->in[0], p->in[1], p->has_bias ? p->in[2] : NULL, p->has_res ? p->in[3] : NULL, got, scratch);
  free(scratch);
  return got;
}

/* Emits case i into mod with cfg; returns a malloc'd copy of the kernel's name. */
static char *emit_case(LLVMModuleRef mod, int i, const lb_kern_cfg *cfg, size_t *scratch) {
  lb_diag diag = {0};
  lb_kern_out out;
  int rc;
  if (i < N_GEMM_CASES) {
    lb_gemm_desc d;
    gemm_case_desc(&gemm_cases[i], &d);
    rc = lb_emit_gemm_f32(mod, cfg, &d, &out, &diag);
  } else {
    lb_conv_desc d;
    conv_case_desc(&conv_cases[i - N_GEMM_CASES], &d);
    rc = conv_cases[i - N_GEMM_CASES].dw ? lb_emit_dwconv_f32(mod, cfg, &d, &out, &diag)
                                         : lb_emit_conv_f32(mod, cfg, &d, &out, &diag);
  }
  ck_assert_msg(rc == 0, "case %d: %s", i, diag.msg);
  *scratch = out.scratch_bytes;
  size_t len;
  return strdup(LLVMGetValueName2(out.fn, &len));
}

/* Case i of the combined list is left out of a quick run (a random case past the 6th). */
static int case_skipped(int i) {
  int r = i < N_GEMM_CASES ? i - (N_GEMM_CASES - N_RANDOM) : i - (N_CASES - N_RANDOM);
  return r >= 6 && lb_test_quick();
}

static int case_cfg_id(int i) {
  return i < N_GEMM_CASES ? gemm_cases[i].cfg : conv_cases[i - N_GEMM_CASES].cfg;
}

/* ---- host JIT: every case and an im2col per conv case in one module --------------------- */

static lb_kjit *jit;
static void *case_fns[N_CASES], *im2col_fns[N_CONV_CASES];
static size_t case_scratch[N_CASES];

static void jit_setup(void) {
  LLVMModuleRef mod;
  lb_diag diag = {0};
  ck_assert_int_eq(lb_kjit_new(&jit, &mod, &diag), 0);
  char *names[N_CASES + N_CONV_CASES];
  int idx[N_CASES + N_CONV_CASES], n = 0; /* idx: case i, or N_CASES + i for conv i's im2col */
  for (int i = 0; i < N_CASES; i++) {
    if (case_skipped(i)) continue;
    lb_kern_cfg cfg;
    case_cfg(case_cfg_id(i), &cfg);
    idx[n] = i;
    names[n++] = emit_case(mod, i, &cfg, &case_scratch[i]);
  }
  for (int i = 0; i < N_CONV_CASES; i++) {
    if (case_skipped(N_GEMM_CASES + i)) continue;
    lb_kern_cfg cfg;
    lb_conv_desc d;
    lb_kern_out im;
    case_cfg(conv_cases[i].cfg, &cfg);
    conv_case_desc(&conv_cases[i], &d);
    ck_assert_msg(lb_emit_im2col_f32(mod, &cfg, &d, &im, &diag) == 0, "%s", diag.msg);
    size_t len;
    idx[n] = N_CASES + i;
    names[n++] = strdup(LLVMGetValueName2(im.fn, &len));
  }
  void *fns[N_CASES + N_CONV_CASES];
  ck_assert_msg(lb_kjit_finish(jit, (const char *const *)names, fns, n, &diag) == 0, "%s",
                diag.msg);
  for (int k = 0; k < n; k++) {
    free(names[k]);
    if (idx[k] < N_CASES) case_fns[idx[k]] = fns[k];
    else im2col_fns[idx[k] - N_CASES] = fns[k];
  }
}

static void jit_teardown(void) {
  lb_kjit_free(jit);
  jit = NULL;
}

START_TEST(kernel_vs_ref) {
  if (case_skipped(_i)) return;
  lb_kern_cfg cfg;
  case_cfg(case_cfg_id(_i), &cfg);
  problem p;
  case_problem(_i, &cfg, case_scratch[_i], &p);
  float *got = problem_run(&p, (kern_fn)case_fns[_i]);
  char what[64];
  snprintf(what, sizeof what, "%s case %d", _i < N_GEMM_CASES ? "gemm" : "conv",
           _i < N_GEMM_CASES ? _i : _i - N_GEMM_CASES);
  check_close(got, p.want, p.mag, p.rows, p.cols, p.ld, p.n_out, what);
  free(got);
  problem_free(&p);
}
END_TEST

START_TEST(im2col_vs_ref) {
  if (case_skipped(N_GEMM_CASES + _i)) return;
  lb_conv_desc d;
  conv_case_desc(&conv_cases[_i], &d);
  int64_t nx = d.n * d.h * d.w * d.ldx, nc = d.n * d.oh * d.ow * d.kh * d.kw * d.c_in;
  float *x = rand_buf(nx), *got = malloc((size_t)nc * 4), *want = malloc((size_t)nc * 4);
  for (int64_t i = 0; i < nc; i++) got[i] = 99.0f;
  ((void (*)(const float *, float *))im2col_fns[_i])(x, got);
  lb_ref_im2col_f32(&d, x, want);
  ck_assert_int_eq(memcmp(got, want, (size_t)nc * 4), 0);
  free(x), free(got), free(want);
}
END_TEST

/* ---- AArch64: the same cases compiled for NEON, run under qemu-aarch64 ------------------- */

/* Host case config narrowed to 128-bit NEON (scalar cases stay scalar). */
static void a64_cfg(int i, lb_kern_cfg *cfg) {
  case_cfg(case_cfg_id(i), cfg);
  if (cfg->vector_bits > 128) cfg->vector_bits = 128, cfg->vector_regs = 32;
  cfg->cpu = "generic";
  cfg->features = "+neon";
}

/* O3 + object emission for aarch64-linux-gnu. */
static void a64_object(LLVMModuleRef mod, const char *path) {
  LLVMInitializeAArch64TargetInfo();
  LLVMInitializeAArch64Target();
  LLVMInitializeAArch64TargetMC();
  LLVMInitializeAArch64AsmPrinter();
  const char *triple = "aarch64-unknown-linux-gnu";
  LLVMTargetRef t;
  char *err = NULL;
  ck_assert_msg(LLVMGetTargetFromTriple(triple, &t, &err) == 0, "%s", err);
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(t, triple, "generic", "+neon",
                                                    LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                                    LLVMCodeModelDefault);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  char *dl = LLVMCopyStringRepOfTargetData(td);
  LLVMSetDataLayout(mod, dl);
  LLVMSetTarget(mod, triple);
  LLVMDisposeMessage(dl);
  LLVMDisposeTargetData(td);
  LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
  LLVMErrorRef e = LLVMRunPasses(mod, "default<O3>", tm, o);
  ck_assert_ptr_null(e);
  LLVMDisposePassBuilderOptions(o);
  ck_assert_msg(LLVMTargetMachineEmitToFile(tm, mod, (char *)path, LLVMObjectFile, &err) == 0,
                "%s", err);
  LLVMDisposeTargetMachine(tm);
}

/* A static AArch64 driver: for each case reads in_I.bin (the four inputs back to back), calls the
 * kernel on a sentinel-filled output and writes out_I.bin. */
static void a64_driver(const char *path, char *const *names, problem *p, int n) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f, "#include <stdio.h>\n#include <stdlib.h>\ntypedef void (*kf)(const float *, const "
             "float *, const float *, const float *, float *, float *);\n");
  for (int i = 0; i < n; i++)
    fprintf(f, "void %s(const float *, const float *, const float *, const float *, float *, "
               "float *);\n", names[i]);
  fprintf(f, "static struct { kf f; long n[4], out; unsigned long scratch; int bias, res; } "
             "t[] = {\n");
  for (int i = 0; i < n; i++)
    fprintf(f, "{%s, {%lld, %lld, %lld, %lld}, %lld, %zu, %d, %d},\n", names[i],
            (long long)p[i].n_in[0], (long long)p[i].n_in[1], (long long)p[i].n_in[2],
            (long long)p[i].n_in[3], (long long)p[i].n_out, p[i].scratch, p[i].has_bias,
            p[i].has_res);
  fprintf(f, "};\nint main(int c, char **v) {\n  char fn[4096];\n"
             "  for (int i = 0; i < %d; i++) {\n    float *in[4];\n"
             "    snprintf(fn, sizeof fn, \"%%s/in_%%d.bin\", v[1], i);\n"
             "    FILE *f = fopen(fn, \"rb\");\n    if (!f) return 1;\n"
             "    for (int j = 0; j < 4; j++) {\n      in[j] = malloc(t[i].n[j] * 4 + 4);\n"
             "      if (fread(in[j], 4, t[i].n[j], f) != (size_t)t[i].n[j]) return 2;\n    }\n"
             "    fclose(f);\n    float *o = malloc(t[i].out * 4), *s = malloc(t[i].scratch + 4);\n"
             "    for (long j = 0; j < t[i].out; j++) o[j] = 1234.5f;\n"
             "    t[i].f(in[0], in[1], t[i].bias ? in[2] : 0, t[i].res ? in[3] : 0, o, s);\n"
             "    snprintf(fn, sizeof fn, \"%%s/out_%%d.bin\", v[1], i);\n"
             "    f = fopen(fn, \"wb\");\n    if (!f || fwrite(o, 4, t[i].out, f) != "
             "(size_t)t[i].out) return 3;\n    fclose(f);\n  }\n  return 0;\n}\n", n);
  fclose(f);
}

static void write_file(const char *path, float *const *bufs, const int64_t *n, int count) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  for (int j = 0; j < count; j++)
    ck_assert_uint_eq(fwrite(bufs[j], 4, (size_t)n[j], f), (size_t)n[j]);
  fclose(f);
}

static float *read_file(const char *path, int64_t n) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "%s missing", path);
  float *p = malloc((size_t)n * 4);
  ck_assert_uint_eq(fread(p, 4, (size_t)n, f), (size_t)n);
  fclose(f);
  return p;
}

START_TEST(aarch64_qemu) {
  if (system("command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null"))
    ck_abort_msg("aarch64-linux-gnu-gcc and qemu-aarch64 are required (tools/check installs them)");
  char dir[] = "/tmp/lb_kern_a64_XXXXXX", path[256], cmd[1024];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("a64", ctx);
  char *names[N_CASES];
  static problem p[N_CASES]; /* entry k is case idx[k]; quick runs leave cases out */
  int idx[N_CASES], n = 0;
  for (int i = 0; i < N_CASES; i++) {
    if (case_skipped(i)) continue;
    lb_kern_cfg cfg;
    size_t scratch;
    a64_cfg(i, &cfg);
    idx[n] = i;
    names[n] = emit_case(mod, i, &cfg, &scratch);
    case_problem(i, &cfg, scratch, &p[n]);
    snprintf(path, sizeof path, "%s/in_%d.bin", dir, n);
    write_file(path, p[n].in, p[n].n_in, 4);
    n++;
  }
  snprintf(path, sizeof path, "%s/k.o", dir);
  a64_object(mod, path);
  LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
  snprintf(path, sizeof path, "%s/drv.c", dir);
  a64_driver(path, names, p, n);
  snprintf(cmd, sizeof cmd, "aarch64-linux-gnu-gcc -O1 -static -o %s/drv %s/drv.c %s/k.o && "
           "qemu-aarch64 -cpu cortex-a53 %s/drv %s", dir, dir, dir, dir, dir);
  ck_assert_msg(system(cmd) == 0, "cross build or qemu run failed: %s", cmd);
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/out_%d.bin", dir, i);
    float *got = read_file(path, p[i].n_out);
    char what[300];
    snprintf(what, sizeof what, "aarch64 case %d (%s)", idx[i], names[i]);
    check_close(got, p[i].want, p[i].mag, p[i].rows, p[i].cols, p[i].ld, p[i].n_out, what);
    free(got), free(names[i]);
    problem_free(&p[i]);
  }
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The transposed-source packing equals packing the transpose. */
START_TEST(pack_nk_matches_kn) {
  lb_kern_cfg cfg;
  lb_kjit_host_cfg(&cfg);
  int mr, nr;
  lb_kern_gemm_tile(&cfg, &mr, &nr);
  int64_t k = 5, n = nr + 3;
  float *b = rand_buf(k * n), *bt = malloc((size_t)(k * n) * 4);
  for (int64_t i = 0; i < k; i++)
    for (int64_t j = 0; j < n; j++) bt[j * k + i] = b[i * n + j];
  size_t sz = lb_pack_gemm_b_size(&cfg, k, n);
  ck_assert_uint_eq(sz, (size_t)((n + nr - 1) / nr * nr * k * 4));
  float *p1 = malloc(sz), *p2 = malloc(sz);
  lb_pack_gemm_b(&cfg, k, n, b, 0, p1);
  lb_pack_gemm_b(&cfg, k, n, bt, 1, p2);
  ck_assert_int_eq(memcmp(p1, p2, sz), 0);
  /* panel 1, k = 2, column 2 holds B[2][nr + 2]; padding columns are zero */
  ck_assert_float_eq(p1[1 * k * nr + 2 * nr + 2], b[2 * n + nr + 2]);
  ck_assert_float_eq(p1[1 * k * nr + 4 * nr + 3], 0.0f);
  ck_assert_uint_eq(lb_pack_gemm_b_size(&cfg, INT64_MAX / 2, 1 << 20), SIZE_MAX);
  free(b), free(bt), free(p1), free(p2);
}
END_TEST

START_TEST(bad_descs) {
  lb_kern_cfg cfg;
  lb_kjit_host_cfg(&cfg);
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("bad", ctx);
  lb_gemm_desc d = {.m = 4, .n = 4, .k = 4, .lda = 3, .ldc = 4};
  lb_kern_out out;
  lb_diag diag = {0};
  ck_assert_int_eq(lb_emit_gemm_f32(mod, &cfg, &d, &out, &diag), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(diag.msg, "lda=3"));
  lb_diag_clear(&diag);
  cfg.vector_bits = 96;
  d.lda = 4;
  ck_assert_int_eq(lb_emit_gemm_f32(mod, &cfg, &d, &out, &diag), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(diag.msg, "96 bits"));
  lb_diag_clear(&diag);
  lb_conv_desc c = {.n = 1, .h = 2, .w = 2, .c_in = 1, .c_out = 1, .kh = 3, .kw = 3, .sh = 1,
                    .sw = 1, .dh = 1, .dw = 1};
  ck_assert_int_eq(lb_conv_desc_finish(&c, &diag), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(diag.msg, "larger than padded input 2x2"));
  LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
}
END_TEST

/* A VGG-sized layer (224x224, 512 -> 512 channels, 3x3) needs a bounded im2col scratch, not
 * the 924 MB of a whole-image im2col. */
START_TEST(conv_scratch_bounded) {
  lb_kern_cfg cfg;
  lb_kjit_host_cfg(&cfg);
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("vgg", ctx);
  lb_conv_desc d = {.n = 1, .h = 224, .w = 224, .c_in = 512, .c_out = 512, .kh = 3, .kw = 3,
                    .sh = 1, .sw = 1, .dh = 1, .dw = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1,
                    .pad_r = 1, .has_bias = 1, .act = LB_ACT_RELU};
  lb_diag diag = {0};
  ck_assert_int_eq(lb_conv_desc_finish(&d, &diag), 0);
  lb_kern_out out;
  ck_assert_msg(lb_emit_conv_f32(mod, &cfg, &d, &out, &diag) == 0, "%s", diag.msg);
  int mr, nr;
  lb_kern_gemm_tile(&cfg, &mr, &nr);
  ck_assert_uint_eq(out.scratch_bytes, (size_t)(24 * mr) * 4608 * 4);
  LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
}
END_TEST

/* The config read from a bundled spec, and the tile and packing it implies. */
START_TEST(cfg_from_spec) {
  lb_spec *spec;
  lb_diag diag = {0};
  ck_assert_msg(lb_spec_load("x86-64-avx2", &spec, &diag) == 0, "%s", diag.msg);
  lb_kern_cfg cfg;
  lb_kern_cfg_from_spec(spec, &cfg);
  ck_assert_int_eq(cfg.vector_bits, 256);
  ck_assert_int_eq(cfg.vector_regs, 16);
  ck_assert_int_eq(cfg.cache[0], 32 * 1024);
  ck_assert_int_eq(cfg.cache[1], 1024 * 1024);
  ck_assert_str_eq(cfg.cpu, "x86-64-v3");
  ck_assert_ptr_nonnull(strstr(cfg.features, "+fma"));
  ck_assert_int_eq(lb_kern_cfg_check(&cfg, &diag), 0);
  ck_assert_str_eq(lb_kern_isa(&cfg), "avx2");
  int mr, nr;
  lb_kern_gemm_tile(&cfg, &mr, &nr);
  ck_assert_int_eq(mr, 6);
  ck_assert_int_eq(nr, 16);
  ck_assert_uint_eq(lb_pack_gemm_b_size(&cfg, 3, 17), 2 * 3 * 16 * 4);
  lb_spec_free(spec);
}
END_TEST

int main(void) {
  make_cases();
  Suite *s = suite_create("kernels");
  TCase *tk = tcase_create("jit");
  tcase_add_unchecked_fixture(tk, jit_setup, jit_teardown);
  tcase_add_loop_test(tk, kernel_vs_ref, 0, N_CASES);
  tcase_add_loop_test(tk, im2col_vs_ref, 0, N_CONV_CASES);
  tcase_set_timeout(tk, 120);
  suite_add_tcase(s, tk);
  TCase *ta = tcase_create("aarch64");
  tcase_add_test(ta, aarch64_qemu);
  tcase_set_timeout(ta, 120);
  suite_add_tcase(s, ta);
  const TTest *pack[] = {pack_nk_matches_kn, bad_descs, cfg_from_spec, conv_scratch_bounded};
  lb_test_case(s, "pack", pack, LB_TEST_N(pack));
  return lb_test_run(s);
}
