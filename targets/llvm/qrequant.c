/* LLVM emitter of the integer-only requantize methods (spec `requantize: fixed_point | shift`):
 * quant.h's lb_qfixed_of decomposition of the fp32 multiplier and lb_qfixed_term's steps, per
 * lane, in i64 arithmetic. Invariant: every lane computes exactly lb_requantize_by /
 * lb_requantize2_by of quant.c (each step is exact in i64, so no ISA can round differently);
 * the multiplier stays the fp32 m every caller already passes (scalar, splat or per lane). */
#include "lower.h"
#include "qkernels.h"
#include "quant.h"
#include "spec.h"

typedef struct fx {
  LLVMTypeRef i32, i64; /* scalar or <lanes x ...> */
  LLVMValueRef m_lo;    /* INT32_MIN / INT32_MAX as i64 (saturation of x) */
  LLVMValueRef m_hi;
} fx;

static LLVMValueRef bin(lb_lw *L, LLVMOpcode op, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildBinOp(L->b, op, a, b, "");
}

static LLVMValueRef clampv(lb_lw *L, LLVMTypeRef t, LLVMValueRef v, LLVMValueRef lo,
                           LLVMValueRef hi) {
  LLVMValueRef a[2] = {v, lo};
  a[0] = lb_intr(L, "llvm.smax", t, a, 2);
  a[1] = hi;
  return lb_intr(L, "llvm.smin", t, a, 2);
}

/* lb_qfixed_of on the bits of m (i32 lanes): *M (i64, adjusted for shift's powers of two),
 * *ls and *rs (i64). */
static void decompose(lb_lw *L, const fx *f, LLVMValueRef m, int method, LLVMValueRef *M,
                      LLVMValueRef *ls, LLVMValueRef *rs) {
  LLVMValueRef u = LLVMBuildBitCast(L->b, m, f->i32, "");
  LLVMValueRef e = bin(L, LLVMAnd, bin(L, LLVMLShr, u, lb_ci(L, f->i32, 23)), lb_ci(L, f->i32, 255));
  LLVMValueRef frac = bin(L, LLVMAnd, u, lb_ci(L, f->i32, 0x7fffff));
  LLVMValueRef mant = bin(L, LLVMShl, bin(L, LLVMOr, frac, lb_ci(L, f->i32, 0x800000)),
                          lb_ci(L, f->i32, 7));
  LLVMValueRef zero = LLVMBuildICmp(L->b, LLVMIntEQ, e, lb_ci(L, f->i32, 0), "");
  LLVMValueRef mm = LLVMBuildZExt(L->b, LLVMBuildSelect(L->b, zero, lb_ci(L, f->i32, 0), mant, ""),
                                  f->i64, "");
  LLVMValueRef sh = LLVMBuildSelect(L->b, zero, lb_ci(L, f->i32, 0),
                                    bin(L, LLVMSub, e, lb_ci(L, f->i32, 126)), "");
  if (method == LB_REQUANT_SHIFT) { /* +-2^-n: M = 2^31, one rounding shift by n */
    LLVMValueRef p2 = LLVMBuildAnd(
        L->b, LLVMBuildICmp(L->b, LLVMIntEQ, frac, lb_ci(L, f->i32, 0), ""),
        LLVMBuildNot(L->b, zero, ""), "");
    mm = LLVMBuildSelect(L->b, p2, bin(L, LLVMShl, mm, lb_ci(L, f->i64, 1)), mm, "");
    sh = LLVMBuildSelect(L->b, p2, bin(L, LLVMSub, sh, lb_ci(L, f->i32, 1)), sh, "");
  }
  LLVMValueRef neg = LLVMBuildICmp(L->b, LLVMIntSLT, u, lb_ci(L, f->i32, 0), "");
  *M = LLVMBuildSelect(L->b, neg, LLVMBuildNeg(L->b, mm, ""), mm, "");
  LLVMValueRef s64 = LLVMBuildSExt(L->b, sh, f->i64, "");
  *ls = clampv(L, f->i64, s64, lb_ci(L, f->i64, 0), lb_ci(L, f->i64, 32));
  *rs = clampv(L, f->i64, LLVMBuildNeg(L->b, s64, ""), lb_ci(L, f->i64, 0), lb_ci(L, f->i64, 40));
}

/* lb_qfixed_term(method, acc, m) as i64 lanes. */
static LLVMValueRef term(lb_lw *L, const fx *f, LLVMValueRef acc, LLVMValueRef m, int method) {
  LLVMValueRef M, ls, rs;
  decompose(L, f, m, method, &M, &ls, &rs);
  LLVMValueRef x = bin(L, LLVMShl, LLVMBuildSExt(L->b, acc, f->i64, ""), ls);
  x = clampv(L, f->i64, x, f->m_lo, f->m_hi);
  LLVMValueRef t = bin(L, LLVMAdd, bin(L, LLVMMul, x, M), lb_ci(L, f->i64, (int64_t)1 << 30));
  t = bin(L, LLVMAShr, t, lb_ci(L, f->i64, 31));
  LLVMValueRef half = bin(L, LLVMLShr, bin(L, LLVMShl, lb_ci(L, f->i64, 1), rs), lb_ci(L, f->i64, 1));
  return bin(L, LLVMAShr, bin(L, LLVMAdd, t, half), rs);
}

static LLVMValueRef lanes_of(lb_lw *L, LLVMTypeRef it, LLVMValueRef m) {
  if (LLVMGetTypeKind(it) != LLVMVectorTypeKind || LLVMGetTypeKind(LLVMTypeOf(m)) == LLVMVectorTypeKind)
    return m;
  return lb_splat(L, m, (int)LLVMGetVectorSize(it));
}

LLVMValueRef lb_qrequant_fixed(lb_lw *L, int method, LLVMValueRef acc, LLVMValueRef m,
                               LLVMValueRef r, LLVMValueRef mr, int32_t zy, int32_t lo,
                               int32_t hi) {
  LLVMTypeRef it = LLVMTypeOf(acc);
  int vecty = LLVMGetTypeKind(it) == LLVMVectorTypeKind;
  unsigned n = vecty ? LLVMGetVectorSize(it) : 1;
  fx f = {it, vecty ? LLVMVectorType(L->t_i64, n) : L->t_i64, NULL, NULL};
  f.m_lo = lb_ci(L, f.i64, INT32_MIN), f.m_hi = lb_ci(L, f.i64, INT32_MAX);
  LLVMValueRef y = term(L, &f, acc, lanes_of(L, it, m), method);
  if (r) y = bin(L, LLVMAdd, y, term(L, &f, r, lanes_of(L, it, mr), method));
  y = clampv(L, f.i64, y, lb_ci(L, f.i64, (int64_t)lo - zy), lb_ci(L, f.i64, (int64_t)hi - zy));
  return bin(L, LLVMAdd, LLVMBuildTrunc(L->b, y, it, ""), lb_ci(L, it, zy));
}
