/* Integer (int8) GEMM kernels of the LLVM backend: the kernel families a spec's `kernel` field
 * selects, compile-time packing of int8 weights (qpack.c) with every zero-point and sign
 * compensation folded into an int32 bias, scalar references (qkernels_ref.c) and the LLVM
 * emitters (llvm/qkernels_gemm.c). Invariant: for any operands, packed kernel, packed
 * reference and the interpreter give the same int32 accumulator and, through lb_requantize,
 * the same output bits. */
#ifndef LB_QKERNELS_H
#define LB_QKERNELS_H

#include <llvm-c/Core.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"
#include "spec.h"

/* Kernel families. Wide ones multiply i16 operands (x - zx) * (w - zw): exact for any 8-bit
 * values and zero points, no compensation. Narrow ones multiply 8-bit operands: activations
 * are XORed with 0x80 when the instruction wants the other signedness, weights (w - zw) must
 * fit s8, and bias' = bias - c * sum_k (w - zw) with c the packed activation zero point.
 *   kind       operands    KR  instruction (per k step, per B vector)
 *   pmaddwd    i16 x i16    2  x86 vpmaddwd + vpaddd (exact for any 8-bit operands)
 *   pmaddubsw  s8 x s7      4  x86 AVX2 sign trick: vpabsb(a) * vpsignb(w, a) by vpmaddubsw,
 *                              then vpmaddwd by ones; exact (no saturation) because every
 *                              w' lies in [-127, 127]: |pair| <= 2 * 128 * 127 = 32512
 *   vpdpbusd   u8 x s8      4  x86 AVX-512 VNNI vpdpbusd
 *   smlal      i16 x i16    1  AArch64 smull/smlal (widening multiply-accumulate)
 *   sdot       s8 x s8      4  AArch64 dotprod sdot
 *   smmla      s8 x s8      8  AArch64 i8mm smmla (2x8 by 8x2 blocks)
 * AVX2 choice, measured (tools/bench_int8.sh, Zen 5 host, x86-64-avx2 code, CPU ms per run):
 * ResNet-18 pmaddwd 19.4-20.8 vs pmaddubsw sign trick 21.5-21.6, MobileNetV2 4.3-4.6 vs
 * 4.8-5.0: the bundled AVX2 spec keeps `kernel: pmaddwd`; a spec naming pmaddubsw gets the
 * sign-trick kernel (weights in [-127, 127], else pmaddwd). The ceiling there: independent
 * vpmaddwd + vpaddd pairs retire at ~1.75 per cycle against 2 FMAs (vpmaddubsw + vpmaddwd
 * share the same two multiply pipes), so int8 GEMM time is >= ~0.57x fp32; a 1x1 conv with
 * K = 576 measures 0.58x, K = 16..64 0.63-0.84x (the requantize epilogue per tile).
 * The AVX2 spec's int8 path is now 7-bit weights (i8_w7, LB_DTYPE_I7): plain bytes through
 * the narrow vpmaddubsw kernel of qkernels_sub.c (u8 x s7 pairs, one vpmaddwd by ones per
 * step): the same two multiply uops per 32 MACs but half the B bytes and no i16 A, 1.09-1.32x
 * this kernel on MobileNetV2's GEMM shapes; this pmaddwd kernel serves full 8-bit weights. */
typedef enum {
  LB_QK_PMADDWD = 0,
  LB_QK_VPDPBUSD,
  LB_QK_SMLAL,
  LB_QK_SDOT,
  LB_QK_SMMLA,
  LB_QK_PMADDUBSW,
  LB_QK_COUNT
} lb_qk_kind;

/* A register tile and the packing it implies. B (weights, N columns) is packed in panels of
 * nr columns: panel p = [Kp/kr][nr][kr] elements; A (activations) is packed row-major
 * [rows][Kp]. Kp = K rounded up to kr, Np = N rounded up to nr; padding weights are 0. */
typedef struct lb_qk_shape {
  lb_qk_kind kind;
  int mr, nr, kr;
  int lanes; /* int32 lanes per accumulator vector */
  int wide;  /* operands are i16 */
  int a_signed; /* packed narrow activations are s8 (else u8) */
  int b8;       /* wide kinds: B stored as s8 (w' fits s8), sign-extended in the kernel */
  int pf_next;  /* the k loop prefetches the next panel's B: set for a B larger than the L2
                 * (ResNet-18 layer3/4 on AVX2: 5-25% faster; smaller B measured 3% slower) */
} lb_qk_shape;

/* Bytes per packed B element: 2 for wide kinds unless b8. */
static inline int lb_qk_b_bytes(const lb_qk_shape *s) { return s->wide && !s->b8 ? 2 : 1; }

const char *lb_qk_name(lb_qk_kind k); /* ISA token for symbol names */

/* The kernel for a spec combination's strategy on the spec's architecture (x86: triple
 * starting with x86_64, AArch64: aarch64). b_narrow_ok (lb_qk_fits_s8 of constant weights):
 * 2 when every (w - zw) lies in [-127, 127], 1 when they fit s8, 0 otherwise (run-time or
 * wide weights): then the same architecture's wide family is used. LB_ERR_INPUT (diag set)
 * when the architecture has no integer kernel. */
int lb_qk_choose(const lb_spec *s, lb_spec_kernel k, int b_narrow_ok, lb_qk_shape *out,
                 lb_diag *diag);

/* ---- packing (qpack.c) ----------------------------------------------------------------- */

/* Weights after their zero point, w'[k][n] = w - zw[n] (row-major K x N, as int16). */
typedef struct lb_qpacked {
  int64_t K, N, Kp, Np;
  void *b;        /* lb_malloc'd packed B: int16 (wide, unless b8) or int8 elements */
  size_t b_bytes;
  int32_t *bias;  /* Np: bias[n] - c * sum_k w'[k][n] (0 past N) */
} lb_qpacked;

/* The packed activation value c with (a_packed - c) == (x - zx): 0 for wide kinds. */
int32_t lb_qk_act_zero(const lb_qk_shape *s, lb_dtype act, int32_t zx);
/* The packed 8-bit activation for x (wide: x - zx). */
int32_t lb_qk_act_pack(const lb_qk_shape *s, lb_dtype act, int32_t x, int32_t zx);
/* 2 when every w' lies in [-127, 127], 1 when they fit s8, else 0 (see lb_qk_choose). */
int lb_qk_fits_s8(const int16_t *wp, int64_t count);
/* Packs w' (K x N) with bias (N values or NULL) for activations of dtype act, zero point zx.
 * 0 or LB_ERR_NOMEM; free with lb_qpacked_free. */
int lb_qpack(const lb_qk_shape *s, const int16_t *wp, int64_t K, int64_t N, const int32_t *bias,
             lb_dtype act, int32_t zx, lb_qpacked *out);
void lb_qpacked_free(lb_qpacked *p);
/* Index of element (k, n) in the packed B of shape s with padded depth Kp. */
int64_t lb_qpack_index(const lb_qk_shape *s, int64_t Kp, int64_t k, int64_t n);

/* ---- scalar references (qkernels_ref.c) ------------------------------------------------ */

/* y[m][n] = lb_requantize(bias[n] + sum_k (x[m][k] - zx) * w'[k][n], mult[n], zy, lo, hi)
 * from unpacked operands: x row-major M x K of dtype act, y of dtype out. */
void lb_qgemm_ref(const void *x, lb_dtype act, int32_t zx, const int16_t *wp, const int32_t *bias,
                  const float *mult, int64_t M, int64_t K, int64_t N, int32_t zy, int32_t lo,
                  int32_t hi, lb_dtype out, void *y);
/* The int32 accumulators computed from the packed operands exactly as the emitted kernels
 * do (packed A row-major M x Kp, packed B, folded bias): acc is M x N. */
void lb_qgemm_packed_ref(const lb_qk_shape *s, const lb_qpacked *p, const void *a_packed,
                         int64_t M, int32_t *acc);

/* ---- LLVM emission (llvm/qkernels_gemm.c) -------------------------------------------- */

struct lb_lw;

/* Element offset of output (or residual) row r (i64) in its tensor. */
typedef LLVMValueRef (*lb_qrow_fn)(struct lb_lw *L, LLVMValueRef r, void *ud, int residual);

/* One integer GEMM: packed A rows (row-major [rows][Kp], built by the caller) against packed
 * B, then bias, requantize (and an optional residual: lb_requantize2) and store. */
typedef struct lb_qgemm_job {
  const lb_qk_shape *s;
  int64_t Kp, N, Np;
  LLVMValueRef b, bias, mult; /* packed B, folded bias (Np i32), multipliers (Np f32) */
  int32_t zy, lo, hi;
  lb_dtype out_dt;
  LLVMValueRef out; /* output base (column 0 of this job) */
  int64_t so_n;     /* output stride between columns */
  LLVMValueRef res; /* residual base or NULL */
  int64_t sr_n;
  lb_dtype res_dt;
  int32_t zr;
  float mr;
  lb_qrow_fn row_off;
  void *ud;
  /* x86, fp32 requantize method only: no |acc * m + r * mr| of any column reaches 2^30
   * (lb_qgemm_nosat), so full tiles skip the float clamp: vcvtps2dq rounds as lb_requantize
   * does, and saturating packs plus a byte clamp give the clamped bytes */
  int nosat;
} lb_qgemm_job;

/* 1 when for every column n of w' (K x N, row-major, one group) and |x - zx| <= 255,
 * (|bias[n]| + 255 * sum_k |w'[k][n]|) * |mult[n]| + 255 * |mr| < 2^30 (bias may be NULL). */
int lb_qgemm_nosat(const int16_t *wp, int64_t K, int64_t N, const int32_t *bias,
                   const float *mult, float mr);
/* Emits the tiles for rows [row0, row0 + rows) whose packed A starts at a_pk. */
void lb_qgemm_emit(struct lb_lw *L, const lb_qgemm_job *j, LLVMValueRef a_pk, LLVMValueRef row0,
                   LLVMValueRef rows);
/* x86: float vector x (8 or 16 lanes) rounded to i32 by vcvtps2dq (nearest even). */
LLVMValueRef lb_qcvt_rne(struct lb_lw *L, LLVMValueRef x);
/* Bytes v of dtype dt (i8 or u8) clamped to [lo, hi] (no op for the dtype's own bounds). */
LLVMValueRef lb_qclamp_bytes(struct lb_lw *L, LLVMValueRef v, lb_dtype dt, int32_t lo,
                             int32_t hi);
/* Whether a row of nv vectors of lanes i32 accumulators over ncols columns takes
 * lb_qpacks_row (j->nosat): x86 kinds, 8 or 16 lanes, full rows of contiguous 8-bit output. */
int lb_qpacks_ok(const lb_qgemm_job *j, int nv, int lanes, int ncols);
/* The requantize of lb_qrequant (fp32 method, j->nosat) for two i32 vectors acc[0..1] of lanes
 * columns (multipliers mult[], residuals res[] minus zr or NULL) by saturating packs: stores
 * 2 * lanes bytes of j->out_dt at dst. */
void lb_qpacks_row(struct lb_lw *L, const lb_qgemm_job *j, int lanes, LLVMValueRef *acc,
                   LLVMValueRef *mult, LLVMValueRef *res, LLVMValueRef dst);
/* lb_requantize (r == NULL) or lb_requantize2 on i32 scalars or vectors: acc * m (+ r * mr),
 * clamp to [lo - zy, hi - zy] in float, round half to even, + zy; returns i32. */
LLVMValueRef lb_qrequant(struct lb_lw *L, const lb_qk_shape *s, LLVMValueRef acc,
                         LLVMValueRef m, LLVMValueRef r, LLVMValueRef mr, int32_t zy,
                         int32_t lo, int32_t hi);
/* lb_qrequant for L->rq fixed_point or shift (quant.h; lb_qrequant dispatches to it): the
 * same fp32 multipliers m and mr, exact i64 arithmetic per lane (qrequant.c). Any path that
 * requantizes without lb_qrequant must be limited to !lb_requant_integer(L->rq). */
LLVMValueRef lb_qrequant_fixed(struct lb_lw *L, int method, LLVMValueRef acc, LLVMValueRef m,
                               LLVMValueRef r, LLVMValueRef mr, int32_t zy, int32_t lo,
                               int32_t hi);
/* 1 when every requantize multiplier of integer node n is below 1 in magnitude (bounded by
 * its input scales over its output scale), so no left shift: L->rq_below1. */
int lb_qrequant_below1(const lb_graph *g, const lb_node *n);

#endif
