/* Sub-byte kernels (targets/subkernels.h): compression round trip for every int8 kernel family,
 * then emitted int4/int2-weight GEMMs and binary dense layers run in the host JIT and compared
 * bit for bit with the interpreter's definitions (lb_subbyte_dense_ref, lb_binary_dense_ref)
 * over shape sweeps at the tile edges: K below, equal to and above kr, the chunk and 64 bits,
 * N not a multiple of nr or 8, M = 1. Kernels the host cannot run are skipped with a line. */
#include <check.h>
#include <llvm-c/Linker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llvm/lower.h"
#include "quant.h"
#include "subkernels.h"

static unsigned rng = 4242;
static unsigned rnd(void) {
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}
static int32_t pick(int32_t lo, int32_t hi) { return lo + (int32_t)(rnd() % (unsigned)(hi - lo + 1)); }

static lb_spec *load_spec(const char *name) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_spec *s = NULL;
  ck_assert_msg(lb_spec_load(name, &s, &d) == 0, "spec %s: %s", name, d.msg);
  return s;
}

static const char *kind_specs[LB_QK_COUNT] = {"x86-64-avx2",  "x86-64-avx512-vnni", "aarch64-neon",
                                              "aarch64-dotprod", "aarch64-i8mm", "x86-64-avx2"};
static const lb_spec_kernel kind_kernel[LB_QK_COUNT] = {
    LB_KERNEL_GENERIC, LB_KERNEL_VPDPBUSD, LB_KERNEL_GENERIC,
    LB_KERNEL_SDOT,    LB_KERNEL_SMMLA,    LB_KERNEL_PMADDUBSW};

static void shape_of(int kind, lb_qk_shape *s) {
  lb_spec *spec = load_spec(kind_specs[kind]);
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_qk_choose(spec, kind_kernel[kind], 2, s, &d), 0);
  ck_assert_int_eq(s->kind, kind);
  lb_spec_free(spec);
}

/* Random sub-byte weights w[N][K] (i4 -7..7 or i2 -1..1, as realize quantizes), as int16 w'[K][N]. */
static void rand_w(lb_dtype wt, int64_t K, int64_t N, int32_t *q, int16_t *wp) {
  int32_t hi = wt == LB_DTYPE_I4 ? 7 : 1;
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) {
      q[n * K + k] = pick(-hi, hi);
      wp[k * N + n] = (int16_t)q[n * K + k];
    }
}

/* Compressing packed B loses nothing, for every family and both widths; an out-of-range
 * element keeps the layer on int8 (bits 0). */
START_TEST(test_roundtrip) {
  lb_qk_shape s;
  shape_of(_i, &s);
  static const int64_t Ks[] = {1, 3, 8, 9, 33, 130}, Ns[] = {1, 5, 16, 17, 40};
  for (int t = 0; t < 12; t++) {
    lb_dtype wt = t & 1 ? LB_DTYPE_I2 : LB_DTYPE_I4;
    int64_t K = Ks[t % 6], N = Ns[t % 5];
    int32_t *q = malloc((size_t)(K * N) * 4);
    int16_t *wp = malloc((size_t)(K * N) * 2);
    rand_w(wt, K, N, q, wp);
    wp[0] = (int16_t)(wt == LB_DTYPE_I4 ? -7 : -1);
    lb_qpacked p;
    ck_assert_int_eq(lb_qpack(&s, wp, K, N, NULL, LB_DTYPE_U8, 3, &p), 0);
    int bits = lb_sub_bits_for(&s, &p);
    ck_assert_int_eq(bits, wt == LB_DTYPE_I4 ? 4 : 2);
    lb_subpacked sp;
    ck_assert_int_eq(lb_subpack(&s, &p, bits, &sp), 0);
    ck_assert_int_eq(sp.n_panels * sp.panel_elems, p.Kp * p.Np);
    ck_assert(sp.b_bytes * (size_t)(8 / bits) <= (size_t)(p.Kp * p.Np + 256 * sp.n_panels));
    size_t esz = s.wide ? 2 : 1;
    char *un = malloc((size_t)sp.panel_elems * esz);
    for (int64_t pn = 0; pn < sp.n_panels; pn++) {
      lb_subunpack_ref(&sp, pn, un);
      ck_assert(!memcmp(un, (char *)p.b + pn * sp.panel_elems * (int64_t)esz,
                        (size_t)sp.panel_elems * esz));
    }
    free(un);
    lb_subpacked_free(&sp);
    wp[0] = 9; /* does not fit 4 bits */
    lb_qpacked_free(&p);
    ck_assert_int_eq(lb_qpack(&s, wp, K, N, NULL, LB_DTYPE_U8, 3, &p), 0);
    ck_assert_int_eq(lb_sub_bits_for(&s, &p), 0);
    lb_qpacked_free(&p);
    free(q), free(wp);
  }
}
END_TEST

/* ---- JIT plumbing --------------------------------------------------------------------- */

typedef struct kj {
  lb_kjit *j;
  LLVMModuleRef kmod;
  lb_lw L;
  lb_diag d;
} kj;

static void kj_begin(kj *k, lb_spec *spec) {
  lb_diag_clear(&k->d);
  ck_assert_msg(lb_kjit_new(&k->j, &k->kmod, &k->d) == 0, "%s", k->d.msg);
  ck_assert_msg(lb_lw_init(&k->L, LLVMGetModuleContext(k->kmod), spec, "sub", &k->d) == 0, "%s",
                k->d.msg);
  LLVMSetDataLayout(k->L.mod, LLVMGetDataLayoutStr(k->kmod));
  LLVMSetTarget(k->L.mod, LLVMGetTarget(k->kmod));
}

static void *kj_finish(kj *k, const char *sym) {
  ck_assert(!LLVMLinkModules2(k->kmod, k->L.mod)); /* the source module is destroyed */
  k->L.mod = NULL;
  lb_lw_dispose(&k->L);
  void *f = NULL;
  ck_assert_msg(lb_kjit_finish(k->j, &sym, &f, 1, &k->d) == 0, "%s", k->d.msg);
  return f;
}

/* ---- int4 / int2 GEMM ----------------------------------------------------------------- */

typedef struct gcase {
  int64_t M, K, N;
  lb_dtype act, wt, out;
  int32_t zx, zy, lo, hi;
} gcase;

static LLVMValueRef row_n(lb_lw *L, LLVMValueRef r, void *ud, int residual) {
  (void)residual;
  return LLVMBuildMul(L->b, r, lb_c64(L, *(int64_t *)ud), "");
}

typedef void (*gemm_fn)(const void *a_pk, void *y, void *buf);

/* Packs x as the kernel wants it ([M][Kp], k >= K reads the zero point: contributes 0). */
static void *pack_a(const lb_qk_shape *s, const gcase *c, const uint8_t *x, int64_t Kp) {
  size_t esz = s->wide ? 2 : 1;
  char *a = malloc((size_t)(c->M * Kp) * esz);
  for (int64_t m = 0; m < c->M; m++)
    for (int64_t k = 0; k < Kp; k++) {
      int32_t xv = k < c->K ? (c->act == LB_DTYPE_U8 ? x[m * c->K + k] : (int8_t)x[m * c->K + k]) : c->zx;
      int32_t v = lb_qk_act_pack(s, c->act, xv, c->zx);
      if (s->wide) ((int16_t *)a)[m * Kp + k] = (int16_t)v;
      else a[m * Kp + k] = (char)v;
    }
  return a;
}

static void run_gemm_case(lb_spec *spec, const lb_qk_shape *s, const gcase *c) {
  int64_t M = c->M, K = c->K, N = c->N;
  int32_t *q = malloc((size_t)(K * N) * 4), *bias = malloc((size_t)N * 4);
  int16_t *wp = malloc((size_t)(K * N) * 2);
  float *mul = malloc((size_t)N * 4);
  uint8_t *x = malloc((size_t)(M * K)), *wpk = malloc((size_t)(K * N) + 1);
  rand_w(c->wt, K, N, q, wp);
  for (int64_t i = 0; i < M * K; i++) x[i] = (uint8_t)rnd();
  for (int64_t n = 0; n < N; n++) bias[n] = pick(-3000, 3000), mul[n] = 0.001f * (float)pick(1, 40);
  lb_subbyte_pack(c->wt, q, K * N, wpk);
  size_t ysz = c->out == LB_DTYPE_I32 ? 4 : 1;
  char *want = malloc((size_t)(M * N) * ysz), *got = malloc((size_t)(M * N) * ysz);
  lb_subbyte_dense ref = {M, K, N, c->act, c->wt, c->out, c->zx, 0, bias, mul, c->zy, c->lo, c->hi};
  ck_assert_int_eq(lb_subbyte_dense_ref(&ref, x, wpk, want), 0);

  lb_qpacked p;
  ck_assert_int_eq(lb_qpack(s, wp, K, N, bias, c->act, c->zx, &p), 0);
  lb_subpacked sp;
  ck_assert_int_eq(lb_subpack(s, &p, lb_sub_bits_for(s, &p), &sp), 0);
  ck_assert_int_eq(sp.bits, lb_dtype_bits(c->wt));
  kj k;
  kj_begin(&k, spec);
  lb_lw *L = &k.L;
  float *mp = calloc((size_t)p.Np, 4);
  memcpy(mp, mul, (size_t)N * 4);
  LLVMValueRef bsub = lb_const_blob(L, sp.b, sp.b_bytes, "sb");
  LLVMValueRef bb = lb_const_blob(L, p.bias, (size_t)p.Np * 4, "bias");
  LLVMValueRef mb = lb_const_blob(L, mp, (size_t)p.Np * 4, "mul");
  LLVMValueRef fn = lb_fn_begin(L, "t_sub", 3);
  LLVMSetLinkage(fn, LLVMExternalLinkage);
  int64_t ld = N;
  lb_qgemm_job j = {s, p.Kp, N, p.Np, NULL, bb, mb, c->zy, c->lo, c->hi, c->out,
                    LLVMGetParam(fn, 1), 1, NULL, 0, LB_DTYPE_I8, 0, 0.f, row_n, &ld};
  lb_subgemm_emit(L, &j, &sp, bsub, LLVMGetParam(fn, 2), LLVMGetParam(fn, 0), lb_c64(L, 0),
                  lb_c64(L, M));
  LLVMBuildRetVoid(L->b);
  gemm_fn f = (gemm_fn)kj_finish(&k, "t_sub");
  void *a = pack_a(s, c, x, p.Kp);
  void *buf = aligned_alloc(64, (lb_subgemm_scratch(s, p.Kp) + 63) / 64 * 64);
  f(a, got, buf);
  for (int64_t i = 0; i < M * N; i++) {
    int32_t w = ysz == 4 ? ((int32_t *)want)[i] : (int32_t)((int8_t *)want)[i];
    int32_t g = ysz == 4 ? ((int32_t *)got)[i] : (int32_t)((int8_t *)got)[i];
    ck_assert_msg(w == g, "%s %s M=%lld K=%lld N=%lld element %lld: %d, interpreter %d",
                  lb_qk_name(s->kind), lb_dtype_name(c->wt), (long long)M, (long long)K,
                  (long long)N, (long long)i, g, w);
  }
  lb_kjit_free(k.j);
  free(a), free(buf), free(mp), free(want), free(got);
  lb_subpacked_free(&sp), lb_qpacked_free(&p);
  free(q), free(bias), free(wp), free(mul), free(x), free(wpk);
}

static int host_runs(int kind) {
  switch (kind) {
  case LB_QK_PMADDWD: case LB_QK_PMADDUBSW: return __builtin_cpu_supports("avx2");
  case LB_QK_VPDPBUSD: return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  default: return 0; /* AArch64 kernels: AOT under qemu (tools/bench_subbyte.sh --arm) */
  }
}

static const int x86_kinds[] = {LB_QK_PMADDWD, LB_QK_VPDPBUSD, LB_QK_PMADDUBSW};

START_TEST(test_gemm_jit) {
  int kind = x86_kinds[_i];
  if (!host_runs(kind)) {
    printf("test_subkernels: skipping %s GEMM (host lacks the ISA)\n", lb_qk_name((lb_qk_kind)kind));
    return;
  }
  lb_spec *spec = load_spec(kind_specs[kind]);
  lb_qk_shape s;
  shape_of(kind, &s);
  static const int64_t Ms[] = {1, 3, 4, 5, 9}, Ks[] = {1, 3, 4, 7, 9, 64, 130, 300},
                       Ns[] = {1, 5, 16, 17, 33, 40};
  for (int t = 0; t < 16; t++) {
    gcase c = {Ms[t % 5], Ks[t % 8], Ns[(t + t / 6) % 6], t & 1 ? LB_DTYPE_U8 : LB_DTYPE_I8,
               t & 2 ? LB_DTYPE_I2 : LB_DTYPE_I4, t % 7 == 3 ? LB_DTYPE_U8 : LB_DTYPE_I8,
               0, pick(-5, 5), -128, 127};
    if (c.out == LB_DTYPE_U8) c.zy = pick(0, 255), c.lo = 0, c.hi = 255;
    c.zx = c.act == LB_DTYPE_U8 ? pick(0, 255) : pick(-128, 127);
    if (t % 5 == 4) c.lo = c.zy; /* a fused relu */
    run_gemm_case(spec, &s, &c);
  }
  lb_spec_free(spec);
}
END_TEST

/* ---- binary dense --------------------------------------------------------------------- */

typedef void (*bdense_fn)(const void *x, void *y, void *scratch);

START_TEST(test_binary_jit) {
  lb_spec *spec = load_spec("host");
  static const int64_t Ms[] = {1, 2, 5}, Ks[] = {1, 7, 63, 64, 65, 200, 576}, Ns[] = {1, 7, 8, 9, 20};
  for (int t = 0; t < 14; t++) {
    int64_t M = Ms[t % 3], K = Ks[t % 7], N = Ns[t % 5];
    lb_dtype xt = t & 1 ? LB_DTYPE_U8 : LB_DTYPE_I8, yt = t % 4 == 2 ? LB_DTYPE_I32 : LB_DTYPE_U8;
    uint8_t *x = malloc((size_t)(M * K)), *w = malloc((size_t)(N * K) / 8 + 1);
    int32_t *q = malloc((size_t)(N * K) * 4), *bias = malloc((size_t)N * 4);
    float *mul = malloc((size_t)N * 4);
    for (int64_t i = 0; i < M * K; i++) x[i] = (uint8_t)rnd();
    for (int64_t i = 0; i < N * K; i++) q[i] = rnd() & 1 ? 1 : -1;
    lb_subbyte_pack(LB_DTYPE_B1, q, N * K, w);
    for (int64_t n = 0; n < N; n++) bias[n] = pick(-50, 50), mul[n] = 0.01f * (float)pick(1, 90);
    int32_t thr = xt == LB_DTYPE_U8 ? pick(0, 255) : pick(-128, 127);
    size_t ysz = yt == LB_DTYPE_I32 ? 4 : 1;
    char *want = malloc((size_t)(M * N) * ysz), *got = malloc((size_t)(M * N) * ysz);
    lb_subbyte_dense ref = {M, K, N, xt, LB_DTYPE_B1, yt, 0, thr, bias, mul, 7, 0, 255};
    ck_assert_int_eq(lb_binary_dense_ref(&ref, x, w, want), 0);
    lb_bdense bd = {M, K, N, xt, yt, thr, w, bias, mul, 7, 0, 255};
    kj k;
    kj_begin(&k, spec);
    ck_assert_int_eq(lb_bdense_emit(&k.L, &bd, "t_bin"), 0);
    bdense_fn f = (bdense_fn)kj_finish(&k, "t_bin");
    void *scr = aligned_alloc(64, (lb_bgemm_scratch(&bd) + 63) / 64 * 64);
    f(x, got, scr);
    ck_assert_msg(!memcmp(want, got, (size_t)(M * N) * ysz), "binary M=%lld K=%lld N=%lld",
                  (long long)M, (long long)K, (long long)N);
    /* the bit-row reference agrees too */
    int64_t words = (K + 63) / 64;
    uint64_t *xb = calloc((size_t)(M * words), 8), *wb = calloc((size_t)(N * words), 8);
    int32_t *acc = malloc((size_t)(M * N) * 4);
    lb_binarize_ref(x, xt, thr, M, K, words, xb);
    lb_bpack_w(w, N, K, words, wb);
    lb_bgemm_ref(xb, wb, bias, M, N, K, words, acc);
    for (int64_t i = 0; i < M * N; i++)
      ck_assert_int_eq(lb_requantize(acc[i], mul[i % N], 7, 0, 255),
                       ysz == 4 ? ((int32_t *)want)[i] : ((uint8_t *)want)[i]);
    free(xb), free(wb), free(acc);
    lb_kjit_free(k.j);
    free(scr), free(x), free(w), free(q), free(bias), free(mul), free(want), free(got);
  }
  lb_spec_free(spec);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("subkernels");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_roundtrip, 0, LB_QK_COUNT);
  tcase_add_loop_test(tc, test_gemm_jit, 0, 3);
  tcase_add_test(tc, test_binary_jit);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
