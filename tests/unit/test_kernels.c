/* Unit tests for the fp32 kernels: every emitted kernel is JIT-compiled for this host and compared
 * with its scalar _ref (kernels_ref.c) over shape sweeps that hit the tile and block edges, at the
 * host's vector width, at 128 bits (NEON-like) and at 32 bits (scalar). Tolerance: 1e-5 relative to
 * the sum of |terms| of each output, which bounds fp32 rounding of any summation order. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

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

typedef void (*gemm_fn)(const float *, const float *, const float *, const float *, float *,
                        float *);

/* ---- GEMM sweep -------------------------------------------------------------------------- */

typedef struct gemm_case {
  int cfg; /* 0: AVX2-like 256-bit with tiny caches (forces K and M blocking), 1: host width
              and default caches, 2: 128-bit with 32 registers, 3: scalar, 4: host width with
              tiny caches */
  int64_t m, n, k, pad_a, pad_c;
  int bias, res;
  lb_act act;
} gemm_case;

static const gemm_case gemm_cases[] = {
    /* cfg   m    n    k  pa pc bias res act */
    {0, 1, 1, 1, 0, 0, 0, 0, LB_ACT_NONE},
    {0, 1, 16, 7, 0, 0, 1, 0, LB_ACT_RELU},
    {0, 1, 100, 65, 3, 1, 1, 1, LB_ACT_CLIP},
    {0, 2, 40, 31, 0, 0, 0, 1, LB_ACT_NONE},
    {0, 5, 15, 32, 0, 0, 1, 0, LB_ACT_CLIP},
    {0, 6, 16, 33, 0, 0, 1, 1, LB_ACT_RELU},
    {0, 7, 17, 64, 1, 2, 1, 1, LB_ACT_NONE},
    {0, 13, 33, 100, 0, 0, 0, 0, LB_ACT_RELU},
    {0, 31, 64, 5, 0, 3, 1, 0, LB_ACT_NONE},
    {0, 64, 8, 97, 2, 0, 1, 1, LB_ACT_CLIP},
    {0, 100, 3, 200, 0, 0, 1, 1, LB_ACT_RELU},
    {0, 67, 49, 129, 5, 7, 1, 1, LB_ACT_NONE},
    {0, 4, 50, 9, 0, 0, 0, 0, LB_ACT_NONE},
    {0, 3, 200, 40, 0, 0, 1, 0, LB_ACT_RELU},
    {1, 1, 1000, 512, 0, 0, 1, 0, LB_ACT_NONE},
    {1, 49, 70, 600, 0, 0, 1, 1, LB_ACT_RELU},
    {1, 96, 64, 27, 0, 0, 1, 0, LB_ACT_CLIP},
    {2, 1, 9, 3, 0, 0, 1, 0, LB_ACT_RELU},
    {2, 7, 17, 70, 1, 1, 1, 1, LB_ACT_CLIP},
    {2, 14, 36, 33, 0, 0, 0, 1, LB_ACT_NONE},
    {3, 3, 5, 9, 0, 0, 1, 1, LB_ACT_RELU},
    {3, 9, 11, 40, 2, 0, 0, 0, LB_ACT_CLIP},
    {4, 1, 70, 40, 0, 0, 1, 0, LB_ACT_RELU},
    {4, 13, 33, 50, 1, 1, 1, 1, LB_ACT_CLIP},
    {4, 25, 96, 17, 0, 0, 1, 0, LB_ACT_NONE},
    {4, 50, 31, 64, 0, 0, 0, 1, LB_ACT_RELU},
};
#define N_GEMM_CASES ((int)(sizeof gemm_cases / sizeof gemm_cases[0]))

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
}

static lb_kjit *gemm_jit;
static void *gemm_fns[N_GEMM_CASES];

static void gemm_setup(void) {
  LLVMModuleRef mod;
  lb_diag diag = {0};
  ck_assert_int_eq(lb_kjit_new(&gemm_jit, &mod, &diag), 0);
  const char *names[N_GEMM_CASES];
  for (int i = 0; i < N_GEMM_CASES; i++) {
    lb_kern_cfg cfg;
    lb_gemm_desc d;
    case_cfg(gemm_cases[i].cfg, &cfg);
    gemm_case_desc(&gemm_cases[i], &d);
    lb_kern_out out;
    ck_assert_msg(lb_emit_gemm_f32(mod, &cfg, &d, &out, &diag) == 0, "%s", diag.msg);
    size_t len;
    names[i] = LLVMGetValueName2(out.fn, &len);
  }
  /* names point into the module, which the JIT now owns: look them up before anything else. */
  char *copies[N_GEMM_CASES];
  for (int i = 0; i < N_GEMM_CASES; i++) copies[i] = strdup(names[i]);
  ck_assert_msg(lb_kjit_finish(gemm_jit, (const char *const *)copies, gemm_fns, N_GEMM_CASES,
                               &diag) == 0, "%s", diag.msg);
  for (int i = 0; i < N_GEMM_CASES; i++) free(copies[i]);
}

static void gemm_teardown(void) {
  lb_kjit_free(gemm_jit);
  gemm_jit = NULL;
}

START_TEST(gemm_vs_ref) {
  const gemm_case *c = &gemm_cases[_i];
  lb_kern_cfg cfg;
  lb_gemm_desc d;
  case_cfg(c->cfg, &cfg);
  gemm_case_desc(c, &d);
  float *a = rand_buf(d.m * d.lda), *b = rand_buf(d.k * d.n), *bias = rand_buf(d.n);
  float *res = rand_buf(d.m * d.ldr);
  size_t psz = lb_pack_gemm_b_size(&cfg, d.k, d.n);
  float *bp = aligned_alloc(64, (psz + 63) / 64 * 64);
  lb_pack_gemm_b(&cfg, d.k, d.n, b, 0, bp);
  int64_t total = d.m * d.ldc;
  float *got = malloc((size_t)total * 4), *want = malloc((size_t)total * 4);
  float *mag = malloc((size_t)total * 4);
  for (int64_t i = 0; i < total; i++) got[i] = want[i] = 1234.5f;
  ((gemm_fn)gemm_fns[_i])(a, bp, c->bias ? bias : NULL, c->res ? res : NULL, got, NULL);
  lb_ref_gemm_f32(&d, a, b, bias, res, want);
  lb_gemm_desc dm = d;
  dm.act = LB_ACT_NONE;
  float *aa = abs_copy(a, d.m * d.lda), *ab = abs_copy(b, d.k * d.n), *abias = abs_copy(bias, d.n);
  float *ares = abs_copy(res, d.m * d.ldr);
  lb_ref_gemm_f32(&dm, aa, ab, abias, ares, mag);
  char what[64];
  snprintf(what, sizeof what, "gemm case %d", _i);
  check_close(got, want, mag, d.m, d.n, d.ldc, total, what);
  free(a), free(b), free(bias), free(res), free(bp), free(got), free(want), free(mag);
  free(aa), free(ab), free(abias), free(ares);
}
END_TEST

/* ---- convolutions ------------------------------------------------------------------------ */

typedef struct conv_case {
  int cfg, dw; /* dw: depthwise (c_out = c_in) */
  int64_t n, h, w, ci, co, kh, kw, sh, sw, dh, dw_, pt, pl, pb, pr, xpad, ypad;
  int bias, res;
  lb_act act;
} conv_case;

static const conv_case conv_cases[] = {
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
    {1, 1, 1, 8, 8, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, LB_ACT_RELU},
    {1, 1, 2, 9, 7, 77, 77, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1, LB_ACT_CLIP},
    {1, 1, 1, 10, 10, 5, 5, 5, 5, 1, 1, 2, 2, 4, 4, 4, 4, 0, 0, 0, 1, LB_ACT_NONE},
    {1, 1, 1, 6, 6, 144, 144, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 0, 0, 1, 0, LB_ACT_CLIP},
    {2, 1, 1, 7, 7, 19, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, LB_ACT_RELU},
    {3, 1, 1, 5, 5, 3, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, LB_ACT_NONE},
};
#define N_CONV_CASES ((int)(sizeof conv_cases / sizeof conv_cases[0]))

static void conv_case_desc(const conv_case *c, lb_conv_desc *d) {
  *d = (lb_conv_desc){.n = c->n, .h = c->h, .w = c->w, .c_in = c->ci, .c_out = c->co,
                      .kh = c->kh, .kw = c->kw, .sh = c->sh, .sw = c->sw, .dh = c->dh,
                      .dw = c->dw_, .pad_t = c->pt, .pad_l = c->pl, .pad_b = c->pb,
                      .pad_r = c->pr, .ldx = c->ci + c->xpad, .ldy = c->co + c->ypad,
                      .ldr = c->co + 2, .has_bias = c->bias, .has_res = c->res, .act = c->act,
                      .act_min = -0.3f, .act_max = 0.4f};
  lb_diag diag = {0};
  ck_assert_msg(lb_conv_desc_finish(d, &diag) == 0, "%s", diag.msg);
}

static lb_kjit *conv_jit;
static void *conv_fns[N_CONV_CASES], *im2col_fns[N_CONV_CASES];
static size_t conv_scratch[N_CONV_CASES];

static void conv_setup(void) {
  LLVMModuleRef mod;
  lb_diag diag = {0};
  ck_assert_int_eq(lb_kjit_new(&conv_jit, &mod, &diag), 0);
  char *names[2 * N_CONV_CASES];
  for (int i = 0; i < N_CONV_CASES; i++) {
    lb_kern_cfg cfg;
    lb_conv_desc d;
    case_cfg(conv_cases[i].cfg, &cfg);
    conv_case_desc(&conv_cases[i], &d);
    lb_kern_out out, im;
    int rc = conv_cases[i].dw ? lb_emit_dwconv_f32(mod, &cfg, &d, &out, &diag)
                              : lb_emit_conv_f32(mod, &cfg, &d, &out, &diag);
    ck_assert_msg(rc == 0, "%s", diag.msg);
    ck_assert_msg(lb_emit_im2col_f32(mod, &cfg, &d, &im, &diag) == 0, "%s", diag.msg);
    conv_scratch[i] = out.scratch_bytes;
    size_t len;
    names[i] = strdup(LLVMGetValueName2(out.fn, &len));
    names[N_CONV_CASES + i] = strdup(LLVMGetValueName2(im.fn, &len));
  }
  void *fns[2 * N_CONV_CASES];
  ck_assert_msg(lb_kjit_finish(conv_jit, (const char *const *)names, fns, 2 * N_CONV_CASES,
                               &diag) == 0, "%s", diag.msg);
  for (int i = 0; i < N_CONV_CASES; i++) {
    conv_fns[i] = fns[i];
    im2col_fns[i] = fns[N_CONV_CASES + i];
    free(names[i]), free(names[N_CONV_CASES + i]);
  }
}

static void conv_teardown(void) {
  lb_kjit_free(conv_jit);
  conv_jit = NULL;
}

START_TEST(im2col_vs_ref) {
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

START_TEST(conv_vs_ref) {
  const conv_case *c = &conv_cases[_i];
  lb_kern_cfg cfg;
  lb_conv_desc d;
  case_cfg(c->cfg, &cfg);
  conv_case_desc(c, &d);
  int64_t nx = d.n * d.h * d.w * d.ldx, npix = d.n * d.oh * d.ow, ny = npix * d.ldy;
  int64_t nw = c->dw ? d.c_in * d.kh * d.kw : d.c_out * d.c_in * d.kh * d.kw;
  float *x = rand_buf(nx), *w = rand_buf(nw), *bias = rand_buf(d.c_out);
  float *res = rand_buf(npix * d.ldr);
  size_t psz = c->dw ? lb_pack_dw_size(d.c_in, d.kh, d.kw)
                     : lb_pack_gemm_b_size(&cfg, d.kh * d.kw * d.c_in, d.c_out);
  float *wp = malloc(psz), *scratch = conv_scratch[_i] ? malloc(conv_scratch[_i]) : NULL;
  if (c->dw) lb_pack_dw_w(w, d.c_in, d.kh, d.kw, wp);
  else lb_pack_conv_w(&cfg, w, d.c_out, d.c_in, d.kh, d.kw, wp);
  float *got = malloc((size_t)ny * 4), *want = malloc((size_t)ny * 4);
  float *mag = malloc((size_t)ny * 4);
  for (int64_t i = 0; i < ny; i++) got[i] = want[i] = 1234.5f;
  ((gemm_fn)conv_fns[_i])(x, wp, c->bias ? bias : NULL, c->res ? res : NULL, got, scratch);
  void (*ref)(const lb_conv_desc *, const float *, const float *, const float *, const float *,
              float *) = c->dw ? lb_ref_dwconv_f32 : lb_ref_conv_f32;
  ref(&d, x, w, bias, res, want);
  lb_conv_desc dm = d;
  dm.act = LB_ACT_NONE;
  float *ax = abs_copy(x, nx), *aw = abs_copy(w, nw), *ab = abs_copy(bias, d.c_out);
  float *ar = abs_copy(res, npix * d.ldr);
  ref(&dm, ax, aw, ab, ar, mag);
  char what[64];
  snprintf(what, sizeof what, "conv case %d", _i);
  check_close(got, want, mag, npix, d.c_out, d.ldy, ny, what);
  free(x), free(w), free(bias), free(res), free(wp), free(scratch), free(got), free(want);
  free(mag), free(ax), free(aw), free(ab), free(ar);
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

int main(void) {
  Suite *s = suite_create("kernels");
  TCase *tg = tcase_create("gemm");
  tcase_add_unchecked_fixture(tg, gemm_setup, gemm_teardown);
  tcase_add_loop_test(tg, gemm_vs_ref, 0, N_GEMM_CASES);
  tcase_set_timeout(tg, 120);
  suite_add_tcase(s, tg);
  TCase *tc = tcase_create("conv");
  tcase_add_unchecked_fixture(tc, conv_setup, conv_teardown);
  tcase_add_loop_test(tc, im2col_vs_ref, 0, N_CONV_CASES);
  tcase_add_loop_test(tc, conv_vs_ref, 0, N_CONV_CASES);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  TCase *tp = tcase_create("pack");
  tcase_add_test(tp, pack_nk_matches_kn);
  tcase_add_test(tp, bad_descs);
  suite_add_tcase(s, tp);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
