/* Internals shared by the integer lowering files (ops_int.c: MAC ops as packed GEMMs,
 * elementwise, pools; ops_int_dw.c: depthwise convs). The one-line IR helpers are static
 * inline here so both files keep their short names; everything else is lb_int_-prefixed.
 * Invariant: these types describe a node exactly as interp_int.c computes it. */
#ifndef LB_OPS_INT_H
#define LB_OPS_INT_H

#include "lower.h"
#include "qkernels.h"

/* Scale and zero point of v for channel k (per-tensor values ignore k). */
static inline float qs(const lb_value *v, int64_t k) {
  return v->q.n > 1 ? v->q.scale[k] : v->q.scale[0];
}
static inline int32_t qz(const lb_value *v, int64_t k) {
  if (!v->q.zero_point) return 0;
  return v->q.n > 1 ? v->q.zero_point[k] : v->q.zero_point[0];
}
/* Input i of the node, NULL when absent. */
static inline const lb_value *in_val(const lb_op_args *a, uint32_t i) {
  return i < a->node->n_in && a->node->in[i] != LB_NONE ? &a->g->values[a->node->in[i]] : NULL;
}
static inline LLVMTypeRef vec(LLVMTypeRef t, int n) { return LLVMVectorType(t, (unsigned)n); }
/* Widens an 8-bit value (or vector) of dtype dt to type to. */
static inline LLVMValueRef ext8(lb_lw *L, LLVMValueRef v, lb_dtype dt, LLVMTypeRef to) {
  return dt == LB_DTYPE_U8 ? LLVMBuildZExt(L->b, v, to, "") : LLVMBuildSExt(L->b, v, to, "");
}
static inline LLVMValueRef mul64(lb_lw *L, LLVMValueRef a, int64_t c) {
  return LLVMBuildMul(L->b, a, lb_c64(L, c), "");
}
static inline LLVMValueRef add64(lb_lw *L, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildAdd(L->b, a, b, "");
}

/* Conv geometry: 1-D convs are 2-D with H = 1. */
typedef struct cgeo {
  int64_t N, C, H, W, M, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw, G, cg, mg;
  int64_t xs[4], ys[4], rs[4]; /* strides of x, y, residual as [n, c, h, w] */
} cgeo;

/* How activations are packed for a GEMM kernel. */
typedef struct apack {
  const lb_qk_shape *s;
  lb_dtype dt;
  int32_t zx, c; /* activation zero point; packed value of a real 0 */
} apack;

/* Kernel shape and requantize parameters of a MAC node. */
typedef struct qmac {
  lb_qk_shape s;
  apack ap;
  int32_t lo, hi, zy;
  float mr; /* residual multiplier, zr its zero point */
  int32_t zr;
} qmac;

/* The geometry of the conv node of a (1-D convs as 2-D with H = 1). */
void lb_int_conv_geo(const lb_op_args *a, cgeo *g);

/* *out = the data of b, an i32 constant of n values or 1 (NULL when b is absent). */
int lb_int_const_i32(lb_lw *L, const lb_value *b, int64_t n, const int32_t **out);

/* Depthwise conv (one channel per group, NHWC) of ops_int_dw.c; wp = w' = w - zw as
 * [c][tap], mult the per-channel multipliers. */
int lb_int_conv_dw(lb_lw *L, lb_op_args *a, const cgeo *g, const qmac *q, const int16_t *wp,
                   const float *mult);
/* Whether lb_int_conv_dw handles a conv of this geometry. */
int lb_int_dw_ok(const cgeo *g);

/* Strides of a conv activation view as [n, c, h, w]: 1-D convs are 2-D with H = 1 (stride 0
 * on the missing dim). */
static inline void lb_int_view4(const lb_view *v, int64_t *st) {
  if (v->rank == 4) {
    for (int i = 0; i < 4; i++) st[i] = v->st[i];
  } else {
    st[0] = v->st[0], st[1] = v->st[1], st[2] = 0, st[3] = v->st[2];
  }
}

/* Binary conv/gemm nodes (quant.h lb_binary_node) of ops_bin.c. */
int lb_lower_bin(lb_lw *L, lb_op_args *a);

#endif
