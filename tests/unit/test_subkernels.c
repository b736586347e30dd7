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
#include <unistd.h>

#include "llvm/lower.h"
#include "target.h"
#include "tensor_io.h"
#include "quant.h"
#include "subkernels.h"
#include "../aot.h"
#include "../quick.h"

static unsigned rng = 4242;
static unsigned rnd(void) {
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}
static int32_t pick(int32_t lo, int32_t hi) { return lo + (int32_t)(rnd() % (unsigned)(hi - lo + 1)); }

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

/* Random sub-byte or narrow weights w[N][K] (i4 -7..7, i2 -1..1, i7 -63..63, i6 -31..31, i5
 * -15..15, as realize quantizes; with full, the whole range of the dtype, -8..7 ... -16..15, which lowers
 * the native kernels' int16 budget), as int16 w'[K][N]. */
static void rand_w_range(lb_dtype wt, int full, int64_t K, int64_t N, int32_t *q, int16_t *wp) {
  int32_t lo, hi;
  lb_qrange(wt, &lo, &hi);
  if (!full) lo = -hi;
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) {
      q[n * K + k] = pick(lo, hi);
      wp[k * N + n] = (int16_t)q[n * K + k];
    }
}
static void rand_w(lb_dtype wt, int64_t K, int64_t N, int32_t *q, int16_t *wp) {
  rand_w_range(wt, 0, K, N, q, wp);
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
  int full;  /* weights over the whole field range (rand_w_range) */
  int worst; /* every weight -8 (-2) and every activation packed to 255: the int16 budget's edge */
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

/* bias[n] + sum_k (x[m][k] - zx) * q[n][k]: the integer gemm's accumulator. */
static int32_t acc_at(const gcase *c, const uint8_t *x, const int32_t *q, const int32_t *bias,
                      int64_t m, int64_t n) {
  int32_t acc = bias[n];
  for (int64_t k = 0; k < c->K; k++)
    acc += ((c->act == LB_DTYPE_U8 ? x[m * c->K + k] : (int8_t)x[m * c->K + k]) - c->zx) *
           q[n * c->K + k];
  return acc;
}

/* The interpreter's results: sub-byte weights through lb_subbyte_dense_ref, narrow ones (i6,
 * i5: an int8 gemm) through lb_requantize; with an i32 output the raw accumulators. */
static void ref_gemm(const gcase *c, const uint8_t *x, const int32_t *q, const int32_t *bias,
                     const float *mul, char *want) {
  int64_t M = c->M, K = c->K, N = c->N;
  if (c->out != LB_DTYPE_I32 && !lb_dtype_narrow8(c->wt)) {
    uint8_t *wpk = malloc((size_t)(K * N) + 1);
    lb_subbyte_pack(c->wt, q, K * N, wpk);
    lb_subbyte_dense ref = {M, K, N, c->act, c->wt, c->out, c->zx, 0, bias, mul, c->zy, c->lo, c->hi};
    ck_assert_int_eq(lb_subbyte_dense_ref(&ref, x, wpk, want), 0);
    free(wpk);
    return;
  }
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      int32_t acc = acc_at(c, x, q, bias, m, n);
      if (c->out == LB_DTYPE_I32) ((int32_t *)want)[m * N + n] = acc;
      else want[m * N + n] = (char)lb_requantize(acc, mul[n], c->zy, c->lo, c->hi);
    }
}

/* Largest |element| of 8-bit packed B. */
static int packed_wmax(const lb_qpacked *p) {
  int m = 0;
  for (int64_t i = 0; i < p->Kp * p->Np; i++) m = abs(((int8_t *)p->b)[i]) > m ? abs(((int8_t *)p->b)[i]) : m;
  return m;
}

static void run_gemm_case(lb_spec *spec, const lb_qk_shape *s, const gcase *c) {
  int64_t M = c->M, K = c->K, N = c->N;
  int32_t *q = malloc((size_t)(K * N) * 4), *bias = malloc((size_t)N * 4);
  int16_t *wp = malloc((size_t)(K * N) * 2);
  float *mul = malloc((size_t)N * 4);
  uint8_t *x = malloc((size_t)(M * K));
  rand_w_range(c->wt, c->full, K, N, q, wp);
  for (int64_t i = 0; i < M * K; i++) x[i] = (uint8_t)rnd();
  if (c->worst) {
    int32_t qmin, qmax;
    lb_qrange(c->wt, &qmin, &qmax);
    for (int64_t i = 0; i < K * N; i++) q[i] = qmin;
    for (int64_t n = 0; n < N; n++)
      for (int64_t k = 0; k < K; k++) wp[k * N + n] = (int16_t)q[n * K + k];
    for (int64_t i = 0; i < M * K; i++) x[i] = c->act == LB_DTYPE_U8 ? 255 : 127;
  }
  for (int64_t n = 0; n < N; n++) bias[n] = pick(-3000, 3000), mul[n] = 0.001f * (float)pick(1, 40);
  size_t ysz = c->out == LB_DTYPE_I32 ? 4 : 1; /* i32: the raw accumulator (fp32 layers read it) */
  char *want = malloc((size_t)(M * N) * ysz), *got = malloc((size_t)(M * N) * ysz);
  ref_gemm(c, x, q, bias, mul, want);

  lb_qpacked p;
  ck_assert_int_eq(lb_qpack(s, wp, K, N, bias, c->act, c->zx, &p), 0);
  lb_subpacked sp;
  if (lb_dtype_narrow8(c->wt)) { /* B as lb_qpack wrote it */
    ck_assert(lb_sub_narrow(s, p.Kp, p.Np, packed_wmax(&p), &sp));
  } else {
    ck_assert_int_eq(lb_subpack(s, &p, lb_sub_bits_for(s, &p), &sp), 0);
    ck_assert_int_eq(sp.bits, lb_dtype_bits(c->wt));
  }
  kj k;
  kj_begin(&k, spec);
  lb_lw *L = &k.L;
  float *mp = calloc((size_t)p.Np, 4);
  memcpy(mp, mul, (size_t)N * 4);
  LLVMValueRef bsub = sp.bits == 8 ? lb_const_blob(L, p.b, (size_t)(p.Kp * p.Np), "sb")
                                   : lb_const_blob(L, sp.b, sp.b_bytes, "sb");
  LLVMValueRef bb = lb_const_blob(L, p.bias, (size_t)p.Np * 4, "bias");
  LLVMValueRef mb = lb_const_blob(L, mp, (size_t)p.Np * 4, "mul");
  LLVMValueRef fn = lb_fn_begin(L, "t_sub", 3);
  LLVMSetLinkage(fn, LLVMExternalLinkage);
  int64_t ld = N;
  lb_qgemm_job j = {.s = s, .Kp = p.Kp, .N = N, .Np = p.Np, .bias = bb, .mult = mb, .zy = c->zy,
                    .lo = c->lo, .hi = c->hi, .out_dt = c->out, .out = LLVMGetParam(fn, 1),
                    .so_n = 1, .res_dt = LB_DTYPE_I8, .row_off = row_n, .ud = &ld};
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
  free(q), free(bias), free(wp), free(mul), free(x);
}

static int host_runs(int kind) {
  switch (kind) {
  case LB_QK_PMADDWD: case LB_QK_PMADDUBSW: return __builtin_cpu_supports("avx2");
  case LB_QK_VPDPBUSD:
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  default: return 0; /* AArch64 kernels: AOT under qemu in test_nodes_aot */
  }
}

/* x86 GEMM variants: the int8 family's shape (panel path, or native when it is already a u8 x
 * s8 kr 4 shape) or, with native, the packing shape lb_sub_shape gives the layer. */
static const struct {
  int kind, native;
  lb_subk want;
} x86_gemms[] = {
    {LB_QK_PMADDWD, 0, LB_SUBK_PANEL},  {LB_QK_PMADDUBSW, 0, LB_SUBK_PANEL},
    {LB_QK_PMADDWD, 1, LB_SUBK_MADDUBS}, {LB_QK_VPDPBUSD, 0, LB_SUBK_VNNI},
    {LB_QK_VPDPBUSD, 1, LB_SUBK_VNNI},
};

START_TEST(test_gemm_jit) {
  int kind = x86_gemms[_i].kind;
  lb_spec *spec = load_spec(kind_specs[kind]);
  lb_qk_shape s;
  shape_of(kind, &s);
  if (x86_gemms[_i].native) s = lb_sub_shape(spec, &s);
  ck_assert_int_eq(lb_sub_kernel(&s), x86_gemms[_i].want);
  if (!host_runs(s.kind)) {
    printf("test_subkernels: skipping %s GEMM (host lacks the ISA)\n", lb_qk_name(s.kind));
    return lb_spec_free(spec);
  }
  static const int64_t Ms[] = {1, 3, 4, 5, 9, 13}, Ks[] = {1, 3, 4, 7, 9, 37, 64, 130, 300, 577},
                       Ns[] = {1, 5, 16, 17, 33, 40, 64};
  for (int t = 0, n = lb_test_count(24, 8); t < n; t++) {
    gcase c = {Ms[t % 6], Ks[t % 10], Ns[(t + t / 6) % 7], t & 1 ? LB_DTYPE_U8 : LB_DTYPE_I8,
               t & 2 ? LB_DTYPE_I2 : LB_DTYPE_I4, t % 7 == 3 ? LB_DTYPE_U8 : LB_DTYPE_I8,
               0, pick(-5, 5), -128, 127, t % 3 == 2, t % 11 == 10};
    if (t % 9 == 5) c.out = LB_DTYPE_I32;
    if (c.out == LB_DTYPE_U8) c.zy = pick(0, 255), c.lo = 0, c.hi = 255;
    c.zx = c.act == LB_DTYPE_U8 ? pick(0, 255) : pick(-128, 127);
    if (t % 5 == 4) c.lo = c.zy; /* a fused relu */
    if (t % 8 == 6) /* a fused clip */
      c.lo = c.zy - 40 > c.lo ? c.zy - 40 : c.lo, c.hi = c.zy + 50 < c.hi ? c.zy + 50 : c.hi;
    if (c.worst) c.K = 1000, c.zx = 0, c.full = 1;
    run_gemm_case(spec, &s, &c);
  }
  lb_spec_free(spec);
}
END_TEST

/* Narrow int8 weights (i7, i6, i5) on the AVX2 native shape: the kernel reads B as lb_qpack
 * wrote it, widening the int16 sums every S = 32767 / (2 * 255 * wmax) steps (1 for i7: each
 * step's pairs straight into i32, 2 for i6, 4 for i5). The worst cases (every weight at the
 * dtype's minimum -64 / -32 / -16, every packed activation 255, K = 1000, raw i32 output) sum
 * S * 2 * 255 * wmax = 32640 per block: one step more per block would saturate the int16 sums
 * and change the accumulators, so raising S fails here. Narrow weights are refused on other
 * shapes and beyond LB_SUB_NARROW_WMAX (64). */
START_TEST(test_narrow_jit) {
  lb_spec *spec = load_spec("x86-64-avx2");
  lb_qk_shape base, s, vnni;
  shape_of(LB_QK_PMADDWD, &base);
  shape_of(LB_QK_VPDPBUSD, &vnni);
  s = lb_sub_shape(spec, &base);
  lb_subpacked sp;
  ck_assert_int_eq(LB_SUB_NARROW_WMAX, 64); /* 2 * 255 * 64 = 32640: one step fits int16 */
  ck_assert(lb_sub_narrow(&s, 64, 16, LB_SUB_NARROW_WMAX, &sp) && sp.bits == 8 && sp.chunk == 32);
  ck_assert(!lb_sub_narrow(&s, 64, 16, LB_SUB_NARROW_WMAX + 1, &sp));
  ck_assert(!lb_sub_narrow(&base, 64, 16, 7, &sp));
  ck_assert(!lb_sub_narrow(&vnni, 64, 64, 7, &sp));
  if (!host_runs(s.kind)) {
    printf("test_subkernels: skipping narrow GEMM (host lacks AVX2)\n");
    return lb_spec_free(spec);
  }
  static const int64_t Ms[] = {1, 3, 4, 5, 9, 13}, Ks[] = {1, 3, 4, 7, 8, 9, 37, 130, 577},
                       Ns[] = {1, 5, 16, 17, 33, 64};
  static const lb_dtype wts[] = {LB_DTYPE_I5, LB_DTYPE_I6, LB_DTYPE_I7};
  for (int t = 0, n = lb_test_count(30, 9); t < n; t++) {
    gcase c = {Ms[t % 6], Ks[t % 9], Ns[(t + t / 6) % 6], t & 2 ? LB_DTYPE_U8 : LB_DTYPE_I8,
               wts[t % 3], t % 7 == 3 ? LB_DTYPE_U8 : LB_DTYPE_I8,
               0, pick(-5, 5), -128, 127, t % 4 == 2, t < 6};
    if (t % 5 == 4) c.out = LB_DTYPE_I32;
    if (c.out == LB_DTYPE_U8) c.zy = pick(0, 255), c.lo = 0, c.hi = 255;
    c.zx = c.act == LB_DTYPE_U8 ? pick(0, 255) : pick(-128, 127);
    if (t % 4 == 1) c.lo = c.zy; /* a fused relu */
    if (c.worst) c.K = 1000, c.zx = 0, c.full = 1, c.out = LB_DTYPE_I32;
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

/* The popcount each target gets from llvm.ctpop: vpshufb nibble lookup (AVX2), vpopcntq
 * (Zen 5: AVX512-VPOPCNTDQ), cnt (NEON). */
static const struct {
  const char *spec, *want;
} pop_asm[] = {{"x86-64-avx2", "vpshufb"}, {"x86-64-zen5", "vpopcntq"}, {"aarch64-neon", "cnt"}};

START_TEST(test_binary_asm) {
  lb_spec *spec = load_spec(pop_asm[_i].spec);
  uint8_t w[40 * 200 / 8];
  int32_t bias[40];
  float mul[40];
  for (size_t i = 0; i < sizeof w; i++) w[i] = (uint8_t)rnd();
  for (int i = 0; i < 40; i++) bias[i] = i, mul[i] = 0.1f;
  lb_bdense bd = {3, 200, 40, LB_DTYPE_U8, LB_DTYPE_U8, 128, w, bias, mul, 0, 0, 255};
  lb_lw L;
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_lw_init(&L, NULL, spec, "bin", &d) == 0, "%s", d.msg);
  ck_assert_int_eq(lb_bdense_emit(&L, &bd, "t_bin"), 0);
  ck_assert_msg(lb_lw_optimize(&L) == 0, "%s", d.msg);
  char path[] = "/tmp/lb_sub_asm_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  ck_assert_msg(lb_lw_write(&L, LB_EMIT_ASM, path) == 0, "%s", d.msg);
  lb_lw_dispose(&L);
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  char line[512];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) found = strstr(line, pop_asm[_i].want) != NULL;
  fclose(f);
  unlink(path);
  ck_assert_msg(found, "%s: no %s in the binary kernel", pop_asm[_i].spec, pop_asm[_i].want);
  lb_spec_free(spec);
}
END_TEST

/* ---- whole integer nodes through the backend (ops_int.c dispatches to the sub-byte GEMM) --- */

typedef struct ncase {
  int conv;
  lb_dtype wt, act;
  int res;
  int64_t M, K, N;                  /* gemm */
  int64_t n, c, h, w, m, k, s, p, g; /* conv */
  int full;  /* weights over the whole field range (-8..7, -2..1) */
  int worst; /* every weight -8 (-2), every activation packing to -128, output not saturated */
} ncase;

static void setq(lb_graph *g, uint32_t v, uint32_t n, float s0, int32_t z, int vary) {
  lb_quant *q = &g->values[v].q;
  q->n = n, q->axis = n > 1 ? 0 : -1;
  q->scale = lb_arena_array(&g->arena, n, sizeof(float));
  q->zero_point = lb_arena_array(&g->arena, n, sizeof(int32_t));
  for (uint32_t i = 0; i < n; i++)
    q->scale[i] = vary ? s0 * (float)pick(200, 1000) / 500.0f : s0, q->zero_point[i] = z;
}

static uint32_t actv(lb_graph *g, const char *name, lb_dtype t, int rank, const int64_t *dims) {
  uint32_t v = lb_graph_add_value(g, name, t, rank, dims);
  setq(g, v, 1, 0.02f + (float)pick(0, 99) / 2000.0f, t == LB_DTYPE_U8 ? pick(0, 255) : pick(-128, 127), 0);
  return v;
}

/* Adds an integer gemm or conv (value names prefixed by pfx) whose i8 weights hold i4 (-7..7)
 * or i2 (-1..1) values, as realize stores a plan's sub-byte weights (c->full, c->worst: the
 * whole field range, its edge). */
static void add_case(lb_graph *g, const ncase *c, const char *pfx) {
  char nm[6][32];
  for (int i = 0; i < 6; i++) snprintf(nm[i], sizeof nm[i], "%s%c", pfx, "xwbryq"[i]);
  int64_t oh = (c->h + 2 * c->p - c->k) / c->s + 1, ow = (c->w + 2 * c->p - c->k) / c->s + 1;
  int64_t xd[4] = {c->n, c->c, c->h, c->w}, yd[4] = {c->n, c->m, oh, ow};
  int64_t wd[4] = {c->m, c->c / c->g, c->k, c->k}, gx[2] = {c->M, c->K}, gy[2] = {c->M, c->N};
  int64_t gw[2] = {c->N, c->K}, ch = c->conv ? c->m : c->N;
  int rank = c->conv ? 4 : 2;
  uint32_t x = actv(g, nm[0], c->act, rank, c->conv ? xd : gx), in[4] = {x, 0, 0, LB_NONE};
  ck_assert_int_eq(lb_graph_add_input(g, x), 0);
  int64_t nw = c->conv ? wd[0] * wd[1] * wd[2] * wd[3] : c->N * c->K;
  int8_t *w = malloc((size_t)nw);
  int32_t qmin, hi, *b = malloc((size_t)ch * 4);
  lb_qrange(c->wt, &qmin, &hi); /* i4 -8..7, i2 -2..1, i6 -32..31, i5 -16..15 */
  for (int64_t i = 0; i < nw; i++) w[i] = (int8_t)(c->worst ? -hi - 1 : pick(-hi - c->full, hi));
  for (int64_t i = 0; i < ch; i++) b[i] = pick(-3000, 3000);
  in[1] = lb_graph_add_const(g, nm[1], LB_DTYPE_I8, rank, c->conv ? wd : gw, w, (size_t)nw);
  setq(g, in[1], (uint32_t)ch, c->worst ? 5e-5f : 0.01f, 0, 1);
  in[2] = lb_graph_add_const(g, nm[2], LB_DTYPE_I32, 1, &ch, b, (size_t)ch * 4);
  setq(g, in[2], 1, 1e-4f, 0, 0);
  free(w), free(b);
  uint32_t n_in = 3;
  if (c->res) {
    in[3] = actv(g, nm[3], c->act, rank, c->conv ? yd : gy), n_in = 4;
    ck_assert_int_eq(lb_graph_add_input(g, in[3]), 0);
  }
  uint32_t y = actv(g, nm[4], c->act, rank, c->conv ? yd : gy);
  if (c->worst) /* x - zx = 0: the kernel's int16 sums cancel the bias compensation exactly */
    g->values[x].q.zero_point[0] = -128, g->values[y].q.scale[0] = g->values[x].q.scale[0];
  lb_attrs at = {.alpha = 1, .beta = 1, .trans_b = 1};
  if (c->conv) {
    at = (lb_attrs){.n_spatial = 2, .group = c->g};
    for (int i = 0; i < 2; i++) at.strides[i] = c->s, at.dilations[i] = 1, at.kernel[i] = c->k;
    for (int i = 0; i < 4; i++) at.pads[i] = c->p;
  }
  uint32_t k = lb_graph_add_node(g, c->conv ? LB_OP_CONV : LB_OP_GEMM, nm[5], in, n_in, &y, 1);
  g->nodes[k].attr = at;
  g->nodes[k].attr.act = (lb_act)(c->res ? 0 : pick(0, 2));
  g->nodes[k].attr.act_min = -0.3f, g->nodes[k].attr.act_max = 0.4f; /* LB_ACT_CLIP */
  ck_assert_int_eq(lb_graph_add_output(g, y), 0);
  ck_assert(lb_int_node(g, k));
}

static lb_graph *node_graph(const ncase *c) {
  lb_graph *g = lb_graph_new("sub");
  add_case(g, c, "");
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_graph_verify(g, &d) == 0, "%s", d.msg);
  return g;
}

/* Cases 0..23 sweep small shapes; 24..27 are layers big enough that O3 keeps the compressed
 * blob (3x3 conv with K = 216, a 600-deep gemm; i4 and i2); 28..35 the same with narrow int8
 * weights (i7, i6, i5): four small cases, then the four big ones. */
#define N_NODE_CASES 36
static ncase node_case(int t) {
  if (t >= 28) {
    ncase c = node_case(t < 32 ? (t - 28) * 5 + 1 : t - 8);
    c.wt = t % 3 == 2 ? LB_DTYPE_I7 : t % 2 ? LB_DTYPE_I6 : LB_DTYPE_I5; /* x86 AOT: 32, i7 */
    return c;
  }
  if (t >= 24) {
    ncase c = {.conv = t % 2, .wt = (t / 2) % 2 ? LB_DTYPE_I2 : LB_DTYPE_I4,
               .act = t % 3 ? LB_DTYPE_I8 : LB_DTYPE_U8, .res = t % 4 == 1, .M = 5, .K = 600,
               .N = 70, .n = 1, .c = 24, .h = 9, .w = 7, .m = 40, .k = 3, .s = 1, .p = 1, .g = 1};
    return c;
  }
  static const int64_t Ms[] = {1, 3, 7}, Ks[] = {1, 9, 33, 130, 200}, Ns[] = {1, 17, 40, 64};
  ncase c = {.conv = t % 2, .wt = (t / 2) % 2 ? LB_DTYPE_I2 : LB_DTYPE_I4,
             .act = (t / 4) % 2 ? LB_DTYPE_U8 : LB_DTYPE_I8, .res = t % 3 == 0};
  c.M = Ms[t % 3], c.K = Ks[t % 5], c.N = Ns[t % 4];
  c.n = 1 + t % 2, c.c = 1 + 2 * (t % 4), c.h = 5 + t % 4, c.w = 6 + t % 3, c.k = 1 + 2 * (t % 2);
  c.s = 1 + (t / 3) % 2, c.p = c.k / 2, c.g = t % 5 == 1 ? 1 + t % 3 : 1;
  c.c *= c.g, c.m = c.g * (1 + 2 * (t % 6));
  return c;
}

static int host_ok(lb_spec *spec) {
  lb_diag d;
  lb_diag_clear(&d);
  if (lb_target_host_check(spec, &d) == 0) return 1;
  printf("test_subkernels: skipping %s on this host: %s\n", lb_spec_name(spec), d.msg);
  return 0;
}

static void rand_in(const lb_graph *g, lb_tensor *in) {
  for (uint32_t i = 0; i < g->n_inputs; i++) {
    const lb_value *v = &g->values[g->inputs[i]];
    in[i] = (lb_tensor){.dtype = v->dtype, .rank = v->rank};
    memcpy(in[i].dims, v->dims, sizeof in[i].dims);
    size_t nb = lb_dtype_bytes(v->dtype, lb_value_numel(v));
    in[i].data = malloc(nb + 1);
    for (size_t k = 0; k < nb; k++) ((uint8_t *)in[i].data)[k] = (uint8_t)rnd();
  }
}

static void same_bytes(const lb_tensor *got, const lb_tensor *want, const char *what) {
  size_t nb = lb_dtype_bytes(want->dtype, lb_tensor_numel(want));
  for (size_t i = 0; i < nb; i++)
    ck_assert_msg(((uint8_t *)got->data)[i] == ((uint8_t *)want->data)[i],
                  "%s: byte %zu: got %u, interpreter %u", what, i, ((uint8_t *)got->data)[i],
                  ((uint8_t *)want->data)[i]);
}

/* Whether g emitted for spec as kind (LLVM IR or asm) has a line containing needle. */
static int emitted_has(const lb_graph *g, lb_spec *spec, lb_emit_kind kind, const char *needle) {
  char path[] = "/tmp/lb_sub_ll_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_target_emit(g, spec, NULL, kind, path, NULL, &d) == 0, "%s", d.msg);
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  char line[4096];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
  fclose(f);
  if (!found && getenv("LB_SUB_KEEP")) printf("kept %s\n", path);
  else unlink(path);
  return found;
}

/* The sub-byte blob is in the module (the layer did not stay on int8). */
static void check_subbyte_ir(const lb_graph *g, lb_spec *spec, lb_dtype wt) {
  ck_assert_msg(emitted_has(g, spec, LB_EMIT_LLVM, wt == LB_DTYPE_I4   ? "qb_i4"
                                                         : wt == LB_DTYPE_I2 ? "qb_i2"
                                                                             : "qb_n8"),
                "%s: no %s weights in the module", lb_spec_name(spec), lb_dtype_name(wt));
}

static const char *node_specs[] = {"x86-64-avx2", "x86-64-avx512-vnni", "x86-64-zen5"};

/* g's JIT output on spec (random inputs) against the interpreter's, byte for byte. */
static void jit_same(const lb_graph *g, lb_spec *spec, const char *what) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_tensor in[4], want[1], got[1];
  rand_in(g, in);
  ck_assert_msg(lb_interp_run(g, in, want, &d) == 0, "%s: %s", what, d.msg);
  lb_jit *j = NULL;
  ck_assert_msg(lb_jit_compile(g, spec, NULL, &j, &d) == 0, "%s: %s", what, d.msg);
  ck_assert_msg(lb_jit_run_tensors(j, g, in, got, &d) == 0, "%s: %s", what, d.msg);
  same_bytes(got, want, what);
  lb_free(got[0].data), lb_free(want[0].data);
  for (uint32_t i = 0; i < g->n_inputs; i++) free(in[i].data);
  lb_jit_free(j);
}

START_TEST(test_nodes_jit) {
  lb_spec *spec = load_spec(node_specs[_i]);
  if (!host_ok(spec)) return lb_spec_free(spec);
  rng = 99 + (unsigned)_i;
  int maddubs = !strcmp(node_specs[_i], "x86-64-avx2"); /* VNNI specs: narrow stays int8 */
  for (int t = 0; t < N_NODE_CASES; t++) {
    ncase c = node_case(t);
    lb_graph *g = node_graph(&c);
    char what[160];
    snprintf(what, sizeof what, "case %d (%s %s) on %s", t, c.conv ? "conv" : "gemm",
             lb_dtype_name(c.wt), lb_spec_name(spec));
    /* (O3 folds small unrolled layers' weights into the code: look in the big ones) */
    if ((t >= 24 && t < 28) || (t >= 32 && maddubs)) check_subbyte_ir(g, spec, c.wt);
    jit_same(g, spec, what);
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

/* AVX2 sub-byte kernels (i4, i2, i6, i5, i7; gemm and conv, residual, u8 and i8) with the fp32
 * method: full 16-column tiles requantize through lb_qpacks_row (vpackssdw, no float clamp)
 * when lb_qgemm_nosat holds; a huge multiplier keeps the clamped float path (vmaxps).
 * JIT == interpreter for both. */
START_TEST(test_packs_asm) {
  lb_spec *spec = load_spec("x86-64-avx2");
  static const lb_dtype wts[] = {LB_DTYPE_I4, LB_DTYPE_I2, LB_DTYPE_I6, LB_DTYPE_I5, LB_DTYPE_I7};
  rng = 900 + (unsigned)_i;
  ncase c = {.conv = _i % 2, .wt = wts[_i], .act = _i < 2 ? LB_DTYPE_U8 : LB_DTYPE_I8,
             .res = _i % 3 == 0, .M = 5, .K = 600, .N = 64, .n = 1, .c = 24, .h = 9, .w = 7,
             .m = 48, .k = 3, .s = 1, .p = 1, .g = 1};
  for (int huge = 0; huge < 2; huge++) {
    lb_graph *g = node_graph(&c);
    if (huge) g->values[g->nodes[0].out[0]].q.scale[0] = 1e-9f;
    char what[96];
    snprintf(what, sizeof what, "packs %s %s huge %d", c.conv ? "conv" : "gemm",
             lb_dtype_name(c.wt), huge);
    check_subbyte_ir(g, spec, c.wt);
    ck_assert_msg(emitted_has(g, spec, LB_EMIT_ASM, "vpackssdw") == !huge, "%s: vpackssdw", what);
    ck_assert_msg(emitted_has(g, spec, LB_EMIT_ASM, "vmaxps") == huge, "%s: vmaxps", what);
    if (host_ok(spec)) jit_same(g, spec, what);
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

/* AOT object + tests/aot/harness.c, against the interpreter. */
static void aot_node(const lb_graph *g, lb_spec *spec, const lb_test_aot_target *t,
                     const char *what) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_tensor in[4], want[1], got;
  rand_in(g, in);
  ck_assert_msg(lb_interp_run(g, in, want, &d) == 0, "%s", d.msg);
  lb_test_aot_run(g, spec, t, in, &got, what);
  same_bytes(&got, &want[0], what);
  lb_free(got.data), lb_free(want[0].data);
  for (uint32_t i = 0; i < g->n_inputs; i++) free(in[i].data);
}

/* x86-64 (gcc) and AArch64 objects (aarch64-linux-gnu-gcc, qemu -cpu cortex-a72 for plain NEON:
 * native smull/smlal2 kernel, max for dot product and i8mm: native sdot kernel): convs and gemms per spec, i4
 * and i2, small and big. */
static const lb_test_aot_target aot_targets[] = {LB_TEST_AOT_X86, LB_TEST_AOT_NEON,
                                                 LB_TEST_AOT_DOTPROD, LB_TEST_AOT_I8MM};

START_TEST(test_nodes_aot) {
  if (_i > 0 && lb_test_shell("command -v qemu-aarch64 >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null")) {
    printf("test_subkernels: skipping AArch64 AOT (no qemu-aarch64 or cross gcc)\n");
    return;
  }
  lb_spec *spec = load_spec(aot_targets[_i].spec);
  if (_i == 0 && !host_ok(spec)) return lb_spec_free(spec);
  rng = 500 + (unsigned)_i;
  static const int picks[] = {1, 2, 3, 6};
  /* then a big layer (24..27) and a big narrow one (32..35) */
  for (int t = 0, n = lb_test_count(6, 2); t < n; t++) {
    ncase c = node_case(t == 5 ? 32 + _i : t == 4 ? 24 + _i : picks[t] + 8 * (_i % 2));
    lb_graph *g = node_graph(&c);
    char what[160];
    snprintf(what, sizeof what, "AOT %s %s on %s", c.conv ? "conv" : "gemm", lb_dtype_name(c.wt),
             aot_targets[_i].spec);
    aot_node(g, spec, &aot_targets[_i], what);
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

/* Many gemm and conv nodes in one graph, one AOT run each on AArch64 (the native kernels:
 * plain NEON smull/smlal2 under qemu -cpu cortex-a72, sdot under -cpu max): M below, at and
 * above the 4-row tile, K below and above a 4-step body and the int16 blocks (odd, prime),
 * N not a multiple of the 8- or 16-column panel, i8/u8, relu/clip, residual, per-channel
 * scales, the whole field range, and the worst case of the int16 budget (every weight -8 / -2
 * and every activation packing to -128, K = 1000, output scale keeping the sums unclamped). */
static const lb_test_aot_target sweep_targets[] = {LB_TEST_AOT_NEON, LB_TEST_AOT_DOTPROD};

/* Sweep case t of n random ones (then the two budget edges and two convs). */
static ncase sweep_case(int t, int n) {
  static const int64_t Ms[] = {1, 3, 4, 5, 9, 13}, Ks[] = {1, 3, 4, 7, 9, 37, 64, 130, 300, 577},
                       Ns[] = {1, 5, 8, 9, 17, 40};
  if (t >= n + 2) return node_case(t == n + 2 ? 1 : 13); /* two convs: groups, stride 2 */
  if (t >= n) /* the budget's edge, i4 then i2 */
    return (ncase){.wt = t == n ? LB_DTYPE_I4 : LB_DTYPE_I2, .act = LB_DTYPE_I8, .M = 5,
                   .K = 1000, .N = 12, .worst = 1, .k = 1, .s = 1, .g = 1};
  return (ncase){.wt = t & 2 ? LB_DTYPE_I2 : LB_DTYPE_I4, .act = t & 1 ? LB_DTYPE_U8 : LB_DTYPE_I8,
                 .res = t % 4 == 1, .M = Ms[t % 6], .K = Ks[t % 10], .N = Ns[(t + t / 6) % 6],
                 .full = t % 3 == 2, .n = 1, .c = 1, .h = 1, .w = 1, .m = 1, .k = 1, .s = 1, .g = 1};
}

/* One AOT run of g (several nodes, each with its inputs and output) against the interpreter;
 * inputs of worst-case nodes (first input index in worst[], -1 ends) hold -128. */
static void sweep_run(lb_graph *g, lb_spec *spec, const lb_test_aot_target *tg, const int *worst) {
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_graph_verify(g, &d) == 0, "%s", d.msg);
  lb_tensor in[3], want[3], got[3];
  rand_in(g, in);
  for (int i = 0; worst[i] >= 0; i++)
    memset(in[worst[i]].data, 0x80, lb_dtype_bytes(in[worst[i]].dtype, lb_tensor_numel(&in[worst[i]])));
  ck_assert_msg(lb_interp_run(g, in, want, &d) == 0, "%s", d.msg);
  lb_test_aot_run(g, spec, tg, in, got, "sweep");
  for (uint32_t o = 0; o < g->n_outputs; o++) {
    char what[96];
    snprintf(what, sizeof what, "sweep output %s on %s", g->values[g->outputs[o]].name, tg->spec);
    same_bytes(&got[o], &want[o], what);
    lb_free(got[o].data), lb_free(want[o].data);
  }
  for (uint32_t i = 0; i < g->n_inputs; i++) free(in[i].data);
}

START_TEST(test_sweep_aot) {
  if (lb_test_shell("command -v qemu-aarch64 >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null")) {
    printf("test_subkernels: skipping AArch64 AOT sweep (no qemu-aarch64 or cross gcc)\n");
    return;
  }
  const lb_test_aot_target *tg = &sweep_targets[_i];
  lb_spec *spec = load_spec(tg->spec);
  rng = 700 + (unsigned)_i;
  int n = lb_test_count(16, 6), t = 0, checked = 0;
  while (t < n + 4) { /* graphs of up to 3 nodes: the AOT harness takes 3 inputs, 3 outputs */
    lb_graph *g = lb_graph_new("sweep");
    int worst[4] = {-1, -1, -1, -1}, nw = 0;
    for (; t < n + 4 && g->n_outputs < 3; t++) {
      ncase c = sweep_case(t, n);
      if (g->n_inputs + 1 + c.res > 3) break;
      char pfx[16];
      snprintf(pfx, sizeof pfx, "n%d_", t);
      if (c.worst) worst[nw++] = (int)g->n_inputs;
      add_case(g, &c, pfx);
    }
    /* the native kernel, not the panel path nor int8: only it widens int16 sums by saddlp */
    if (_i == 0 && !checked++)
      ck_assert_msg(emitted_has(g, spec, LB_EMIT_ASM, "saddlp"), "no smlal int16 kernel");
    sweep_run(g, spec, tg, worst);
    lb_graph_free(g);
  }
  lb_spec_free(spec);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("subkernels");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_roundtrip, 0, LB_QK_COUNT);
  tcase_add_loop_test(tc, test_gemm_jit, 0, (int)(sizeof x86_gemms / sizeof x86_gemms[0]));
  tcase_add_test(tc, test_narrow_jit);
  tcase_add_test(tc, test_binary_jit);
  tcase_add_loop_test(tc, test_binary_asm, 0, 3);
  tcase_add_loop_test(tc, test_nodes_jit, 0, 3);
  tcase_add_loop_test(tc, test_packs_asm, 0, 5);
  tcase_add_loop_test(tc, test_nodes_aot, 0, 4);
  tcase_add_loop_test(tc, test_sweep_aot, 0, 2);
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
