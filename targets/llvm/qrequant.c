/* LLVM emitter of the integer-only requantize methods (spec `requantize: fixed_point | shift`):
 * quant.h's lb_qfixed_of decomposition of the fp32 multiplier and lb_qfixed_term's steps, per
 * lane, on i32 lanes except the one widening multiply (x86 vpmuldq, AArch64 smull). Invariant:
 * every lane computes exactly lb_requantize_by / lb_requantize2_by of quant.c; the multiplier
 * stays the fp32 m every caller already passes (scalar, splat or per lane; LLVM folds the
 * decomposition of constants). Why i32 is exact where quant.c uses i64 is said at each step. */
#include <math.h>
#include <string.h>

#include "lower.h"
#include "qkernels.h"
#include "quant.h"
#include "spec.h"

static LLVMValueRef bin(lb_lw *L, LLVMOpcode op, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildBinOp(L->b, op, a, b, "");
}
static LLVMValueRef sel(lb_lw *L, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(L->b, c, a, b, "");
}
static LLVMValueRef cmp(lb_lw *L, LLVMIntPredicate p, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildICmp(L->b, p, a, b, "");
}
static LLVMValueRef mm2(lb_lw *L, const char *f, LLVMTypeRef t, LLVMValueRef a, LLVMValueRef b) {
  LLVMValueRef v[2] = {a, b};
  return lb_intr(L, f, t, v, 2);
}

/* One multiplier per lane, decomposed (lb_qfixed_of on its bits, shift's powers of two). */
typedef struct dec {
  LLVMValueRef M;  /* Q31 multiplier (i32) */
  LLVMValueRef ls; /* left shift, 0..31 (32 saturates exactly as 31 does) */
  LLVMValueRef rs; /* right shift, 0..32 (32 and more: every result is 0) */
  LLVMValueRef p2; /* shift method, m = +-2^-n: t = +-x, no multiply (NULL otherwise) */
  LLVMValueRef neg;
} dec;

static dec decompose(lb_lw *L, LLVMTypeRef it, LLVMValueRef m, int method) {
  LLVMValueRef u = LLVMBuildBitCast(L->b, m, it, "");
  LLVMValueRef e = bin(L, LLVMAnd, bin(L, LLVMLShr, u, lb_ci(L, it, 23)), lb_ci(L, it, 255));
  LLVMValueRef frac = bin(L, LLVMAnd, u, lb_ci(L, it, 0x7fffff));
  LLVMValueRef mant = bin(L, LLVMShl, bin(L, LLVMOr, frac, lb_ci(L, it, 0x800000)), lb_ci(L, it, 7));
  LLVMValueRef zero = cmp(L, LLVMIntEQ, e, lb_ci(L, it, 0)); /* m = 0 or subnormal: M = 0 */
  dec d = {NULL, NULL, NULL, NULL, cmp(L, LLVMIntSLT, u, lb_ci(L, it, 0))};
  d.M = sel(L, zero, lb_ci(L, it, 0), sel(L, d.neg, LLVMBuildNeg(L->b, mant, ""), mant));
  LLVMValueRef sh = bin(L, LLVMSub, e, lb_ci(L, it, 126)); /* m = M * 2^(sh - 31) */
  if (method == LB_REQUANT_SHIFT) { /* M = 2^31: one shift more to the right */
    d.p2 = LLVMBuildAnd(L->b, cmp(L, LLVMIntEQ, frac, lb_ci(L, it, 0)), LLVMBuildNot(L->b, zero, ""), "");
    sh = sel(L, d.p2, bin(L, LLVMSub, sh, lb_ci(L, it, 1)), sh);
  }
  d.ls = mm2(L, "llvm.smin", it, mm2(L, "llvm.smax", it, sh, lb_ci(L, it, 0)), lb_ci(L, it, 31));
  d.rs = mm2(L, "llvm.smin", it, mm2(L, "llvm.smax", it, LLVMBuildNeg(L->b, sh, ""), lb_ci(L, it, 0)),
             lb_ci(L, it, 32));
  return d;
}

/* t = floor((x * M + 2^30) / 2^31) per lane, |M| <= 2^31 - 128 so |t| < 2^31: AArch64's
 * sqrdmulh is exactly that (it saturates only for M = -2^31); elsewhere the products of the
 * even and of the odd lanes, each lane sign-extended in place on an i64 view (x86 selects
 * vpmuldq), recombined by shifting t into the low or the high half and blending. */
static LLVMValueRef sqrdmulh(lb_lw *L, LLVMTypeRef it, LLVMValueRef x, LLVMValueRef M) {
  const char *tr = lb_spec_llvm_triple(L->spec);
  unsigned n = LLVMGetTypeKind(it) == LLVMVectorTypeKind ? LLVMGetVectorSize(it) : 1;
  if (tr && !strncmp(tr, "aarch64", 7) && (n == 4 || n == 2 || n == 1))
    return mm2(L, "llvm.aarch64.neon.sqrdmulh", it, x, M);
  if (n < 2 || n % 2) {
    LLVMTypeRef wt = n > 1 ? LLVMVectorType(L->t_i64, n) : L->t_i64;
    LLVMValueRef p = bin(L, LLVMMul, LLVMBuildSExt(L->b, x, wt, ""), LLVMBuildSExt(L->b, M, wt, ""));
    p = bin(L, LLVMAShr, bin(L, LLVMAdd, p, lb_ci(L, wt, (int64_t)1 << 30)), lb_ci(L, wt, 31));
    return LLVMBuildTrunc(L->b, p, it, "");
  }
  LB_ASSERT(n <= 32);
  LLVMTypeRef wt = LLVMVectorType(L->t_i64, n / 2);
  LLVMValueRef c32 = lb_ci(L, wt, 32), r = lb_ci(L, wt, (int64_t)1 << 30), mask[32];
  LLVMValueRef e[2], o[2], in[2] = {x, M};
  for (int k = 0; k < 2; k++) {
    LLVMValueRef v = LLVMBuildBitCast(L->b, in[k], wt, "");
    e[k] = bin(L, LLVMAShr, bin(L, LLVMShl, v, c32), c32);
    o[k] = bin(L, LLVMAShr, v, c32);
  }
  LLVMValueRef pe = bin(L, LLVMMul, e[0], e[1]), po = bin(L, LLVMMul, o[0], o[1]);
  pe = bin(L, LLVMLShr, bin(L, LLVMAdd, pe, r), lb_ci(L, wt, 31)); /* t in the low half */
  po = bin(L, LLVMShl, bin(L, LLVMAdd, po, r), lb_ci(L, wt, 1));   /* t in the high half */
  for (unsigned i = 0; i < n; i++) mask[i] = lb_c32(L, (int32_t)(i % 2 ? n + i : i));
  return LLVMBuildShuffleVector(L->b, LLVMBuildBitCast(L->b, pe, it, ""),
                                LLVMBuildBitCast(L->b, po, it, ""), LLVMConstVector(mask, n), "");
}

/* lb_qfixed_term(method, acc, m); every value fits i32 (see each step). */
static LLVMValueRef term(lb_lw *L, LLVMTypeRef it, LLVMValueRef acc, LLVMValueRef m, int method) {
  dec d = decompose(L, it, m, method);
  /* x = sat32(acc * 2^ls): the shift is exact unless shifting back differs; ls 31 for 32
   * saturates every acc but 0 and -1, as 32 does, and gives -2^31 for -1, as sat(-2^32).
   * ls is 0 in every lane when the node's multipliers are all below 1. */
  LLVMValueRef x = acc;
  if (!L->rq_below1) {
    LLVMValueRef sat = bin(L, LLVMXor, bin(L, LLVMAShr, acc, lb_ci(L, it, 31)), lb_ci(L, it, INT32_MAX));
    x = bin(L, LLVMShl, acc, d.ls);
    x = sel(L, cmp(L, LLVMIntEQ, bin(L, LLVMAShr, x, d.ls), acc), x, sat);
  }
  LLVMValueRef t = sqrdmulh(L, it, x, d.M);
  if (d.p2) { /* t = +-x; -(-2^31) saturates to 2^31 - 1, which rounds and clamps as 2^31
               * does for every rs (the caller's bounds are below 2^30) */
    LLVMValueRef nx = sel(L, cmp(L, LLVMIntEQ, x, lb_ci(L, it, INT32_MIN)), lb_ci(L, it, INT32_MAX),
                          LLVMBuildNeg(L->b, x, ""));
    t = sel(L, d.p2, sel(L, d.neg, nx, x), t);
  }
  /* y = floor((t + 2^(rs-1)) / 2^rs) = (t >> rs) + bit rs-1 of t, no overflow; 0 for rs 32
   * (|t| < 2^31 then) */
  LLVMValueRef r31 = mm2(L, "llvm.smin", it, d.rs, lb_ci(L, it, 31));
  LLVMValueRef half = bin(L, LLVMLShr, bin(L, LLVMShl, lb_ci(L, it, 1), r31), lb_ci(L, it, 1));
  LLVMValueRef up = LLVMBuildZExt(L->b, cmp(L, LLVMIntNE, bin(L, LLVMAnd, t, half), lb_ci(L, it, 0)), it, "");
  LLVMValueRef y = bin(L, LLVMAdd, bin(L, LLVMAShr, t, r31), up);
  return sel(L, cmp(L, LLVMIntSGE, d.rs, lb_ci(L, it, 32)), lb_ci(L, it, 0), y);
}

static LLVMValueRef lanes_of(lb_lw *L, LLVMTypeRef it, LLVMValueRef m) {
  if (LLVMGetTypeKind(it) != LLVMVectorTypeKind || LLVMGetTypeKind(LLVMTypeOf(m)) == LLVMVectorTypeKind)
    return m;
  return lb_splat(L, m, (int)LLVMGetVectorSize(it));
}

LLVMValueRef lb_qrequant_fixed(lb_lw *L, int method, LLVMValueRef acc, LLVMValueRef m,
                               LLVMValueRef r, LLVMValueRef mr, int32_t zy, int32_t lo,
                               int32_t hi) {
  /* requantized outputs are 8- or 16-bit: the bounds and the steps above fit i32 */
  int64_t l = (int64_t)lo - zy, h = (int64_t)hi - zy;
  LB_ASSERT(l >= -(1 << 30) && h <= (1 << 30));
  LLVMTypeRef it = LLVMTypeOf(acc);
  LLVMValueRef y = term(L, it, acc, lanes_of(L, it, m), method);
  /* the exact sum clamps as the int32 saturating one does (bounds inside int32) */
  if (r) y = mm2(L, "llvm.sadd.sat", it, y, term(L, it, r, lanes_of(L, it, mr), method));
  y = mm2(L, "llvm.smin", it, mm2(L, "llvm.smax", it, y, lb_ci(L, it, l)), lb_ci(L, it, h));
  return bin(L, LLVMAdd, y, lb_ci(L, it, zy));
}

/* Largest scale of value v (0 when it has none). */
static double max_scale(const lb_graph *g, uint32_t v) {
  double s = 0;
  if (v == LB_NONE || !g->values[v].q.scale) return 0;
  for (uint32_t i = 0; i < g->values[v].q.n; i++) s = fmax(s, fabs(g->values[v].q.scale[i]));
  return s;
}

/* Every multiplier of an integer node is lb_qmul of one or two of its inputs' scales (inputs
 * 0, 1: activations or weights; 3: the residual) over the output's, or smaller (pooling
 * divides by the count): bounded by the largest such quotient. 0.99 leaves room for the
 * rounding of m to fp32. */
int lb_qrequant_below1(const lb_graph *g, const lb_node *n) {
  const lb_quant *y = &g->values[n->out[0]].q;
  if (!y->n || !y->scale || n->n_in < 1 || !(y->scale[0] > 0)) return 0;
  double s0 = max_scale(g, n->in[0]), s1 = n->n_in > 1 ? max_scale(g, n->in[1]) : 0;
  double s3 = n->n_in > 3 ? max_scale(g, n->in[3]) : 0;
  double b = fmax(fmax(s0, s1), fmax(s0 * s1, s3)) / y->scale[0];
  return y->n == 1 && b < 0.99;
}
