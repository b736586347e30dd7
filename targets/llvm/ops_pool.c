/* Windowed and reducing ops: max/average pooling (1-3 spatial dims, pads, strides, dilations,
 * ceil mode, count_include_pad; max also on 8-bit integers), global average pooling and reduce_mean (through the strided
 * engine as an accumulation), and softmax. Invariant: pooling vectorises across channels
 * whenever channels are contiguous (NHWC), the layout convolutions produce. */
#include <math.h>

#include "lower.h"

typedef struct pool {
  lb_lw *L;
  const lb_view *in, *out;
  const lb_attrs *at;
  int ns, is_max, lanes;
  int is_int, sg;                 /* 8-bit max pooling: integer max */
  LLVMTypeRef et;                 /* element type */
  LLVMValueRef acc, acc_v, acc_s; /* stack slots: the current one, vector, scalar */
  LLVMValueRef ooff, ioff;        /* offsets of (n, c0) and output position */
} pool;

static int64_t dil(const lb_attrs *a, int k) { return a->dilations[k] > 0 ? a->dilations[k] : 1; }
static int64_t strd(const lb_attrs *a, int k) { return a->strides[k] > 0 ? a->strides[k] : 1; }

/* The taps of one window: nested loops over kernel dims with a bounds check per tap. */
static void taps(pool *p, int k, LLVMValueRef *opos, LLVMValueRef ioff) {
  lb_lw *L = p->L;
  if (k == p->ns) {
    LLVMTypeRef vt = p->lanes > 1 ? LLVMVectorType(p->et, (unsigned)p->lanes) : p->et;
    LLVMValueRef x = lb_load(L, vt, lb_gep(L, p->et, p->in->base, ioff), 1);
    LLVMValueRef a = lb_load(L, vt, p->acc, 1), xa[2] = {a, x};
    if (p->is_int)
      a = lb_intr(L, p->sg ? "llvm.smax" : "llvm.umax", vt, xa, 2);
    else
      a = p->is_max ? lb_fmax(L, a, x) : LLVMBuildFAdd(L->b, a, x, "");
    lb_store(L, a, p->acc, 1);
    return;
  }
  int d = 2 + k;
  int64_t pb = p->at->pads[k], h = p->in->dims[d];
  lb_loop lp;
  lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, p->at->kernel[k]), 1);
  LLVMValueRef ih = LLVMBuildAdd(L->b, LLVMBuildMul(L->b, opos[k], lb_c64(L, strd(p->at, k)), ""),
                                 LLVMBuildMul(L->b, lp.iv, lb_c64(L, dil(p->at, k)), ""), "");
  ih = LLVMBuildSub(L->b, ih, lb_c64(L, pb), "");
  LLVMValueRef ok = LLVMBuildAnd(L->b, LLVMBuildICmp(L->b, LLVMIntSGE, ih, lb_c64(L, 0), ""),
                                 LLVMBuildICmp(L->b, LLVMIntSLT, ih, lb_c64(L, h), ""), "");
  LLVMBasicBlockRef join = lb_if_begin(L, ok);
  taps(p, k + 1, opos,
       LLVMBuildAdd(L->b, ioff, LLVMBuildMul(L->b, ih, lb_c64(L, p->in->st[d]), ""), ""));
  lb_if_end(L, join);
  lb_loop_end(L, &lp);
}

/* The divisor of an average window: per spatial dim, the taps inside the input (or inside
 * the padded input for count_include_pad), multiplied over dims (the window is a box). */
static LLVMValueRef avg_count(pool *p, LLVMValueRef *opos) {
  lb_lw *L = p->L;
  LLVMValueRef total = lb_c64(L, 1);
  for (int k = 0; k < p->ns; k++) {
    int64_t h = p->in->dims[2 + k];
    int64_t lo = p->at->count_include_pad ? -p->at->pads[k] : 0;
    int64_t hi = p->at->count_include_pad ? h + p->at->pads[p->ns + k] : h;
    LLVMValueRef n = lb_c64(L, 0);
    for (int64_t t = 0; t < p->at->kernel[k]; t++) {
      LLVMValueRef ih =
          LLVMBuildAdd(L->b, LLVMBuildMul(L->b, opos[k], lb_c64(L, strd(p->at, k)), ""),
                       lb_c64(L, t * dil(p->at, k) - p->at->pads[k]), "");
      LLVMValueRef in = LLVMBuildAnd(L->b, LLVMBuildICmp(L->b, LLVMIntSGE, ih, lb_c64(L, lo), ""),
                                     LLVMBuildICmp(L->b, LLVMIntSLT, ih, lb_c64(L, hi), ""), "");
      n = LLVMBuildAdd(L->b, n, LLVMBuildZExt(L->b, in, L->t_i64, ""), "");
    }
    total = LLVMBuildMul(L->b, total, n, "");
  }
  return total;
}

/* One window for channels [c, c+lanes) at the output position opos. */
static void window(pool *p, LLVMValueRef c, LLVMValueRef *opos, LLVMValueRef obase,
                   LLVMValueRef ibase) {
  lb_lw *L = p->L;
  LLVMTypeRef vt = p->lanes > 1 ? LLVMVectorType(p->et, (unsigned)p->lanes) : p->et;
  if (p->is_int)
    lb_store(L, lb_ci(L, vt, p->sg ? -128 : 0), p->acc, 1);
  else
    lb_store(L, lb_cf(L, vt, p->is_max ? -INFINITY : 0.0), p->acc, 1);
  LLVMValueRef ioff =
      LLVMBuildAdd(L->b, ibase, LLVMBuildMul(L->b, c, lb_c64(L, p->in->st[1]), ""), "");
  taps(p, 0, opos, ioff);
  LLVMValueRef a = lb_load(L, vt, p->acc, 1);
  if (!p->is_max) {
    LLVMValueRef cnt = avg_count(p, opos);
    LLVMValueRef f = LLVMBuildSIToFP(L->b, cnt, L->t_f32, "");
    a = LLVMBuildFDiv(L->b, a, lb_splat(L, f, p->lanes), "");
  }
  LLVMValueRef oo =
      LLVMBuildAdd(L->b, obase, LLVMBuildMul(L->b, c, lb_c64(L, p->out->st[1]), ""), "");
  lb_store(L, a, lb_gep(L, p->et, p->out->base, oo), 1);
}

static void channels(pool *p, LLVMValueRef *opos, LLVMValueRef obase, LLVMValueRef ibase) {
  lb_lw *L = p->L;
  int64_t C = p->out->dims[1];
  int vec = p->L->vw > 1 && p->in->st[1] == 1 && p->out->st[1] == 1;
  int64_t nv = vec ? C / L->vw * L->vw : 0;
  lb_loop lp;
  if (nv > 0) {
    p->lanes = L->vw;
    p->acc = p->acc_v;
    lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, nv), L->vw);
    window(p, lp.iv, opos, obase, ibase);
    lb_loop_end(L, &lp);
  }
  if (nv < C) {
    p->lanes = 1;
    p->acc = p->acc_s;
    lb_loop_begin(L, &lp, lb_c64(L, nv), lb_c64(L, C), 1);
    window(p, lp.iv, opos, obase, ibase);
    lb_loop_end(L, &lp);
  }
}

static void positions(pool *p, int k, LLVMValueRef *opos, LLVMValueRef obase, LLVMValueRef ibase) {
  if (k == p->ns) {
    channels(p, opos, obase, ibase);
    return;
  }
  LB_ASSERT(k < LB_MAX_SPATIAL); /* ns <= 3; also tells gcc the arrays stay in bounds */
  lb_lw *L = p->L;
  lb_loop lp;
  lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, p->out->dims[2 + k]), 1);
  opos[k] = lp.iv;
  positions(
      p, k + 1, opos,
      LLVMBuildAdd(L->b, obase, LLVMBuildMul(L->b, lp.iv, lb_c64(L, p->out->st[2 + k]), ""), ""),
      ibase);
  lb_loop_end(L, &lp);
}

int lb_lower_pool(lb_lw *L, lb_op_args *a) {
  lb_dtype t = a->in[0].dt;
  int is_int = a->node->op == LB_OP_MAX_POOL && (t == LB_DTYPE_I8 || t == LB_DTYPE_U8);
  if (t != LB_DTYPE_F32 && !is_int)
    return lb_diag_err(L->diag, LB_ERR_INPUT,
                       "pooling input must be f32 (or 8-bit for max), got %s", lb_dtype_name(t));
  pool p = {.L = L,
            .in = &a->in[0],
            .out = &a->out[0],
            .at = &a->node->attr,
            .ns = a->in[0].rank - 2,
            .is_max = a->node->op == LB_OP_MAX_POOL,
            .is_int = is_int,
            .sg = t == LB_DTYPE_I8,
            .et = lb_lw_type(L, t)};
  LLVMTypeRef vt = L->vw > 1 ? LLVMVectorType(p.et, (unsigned)L->vw) : p.et;
  p.acc_v = lb_alloca(L, vt, NULL);
  p.acc_s = lb_alloca(L, p.et, NULL);
  lb_loop ln;
  lb_loop_begin(L, &ln, lb_c64(L, 0), lb_c64(L, a->out[0].dims[0]), 1);
  LLVMValueRef opos[LB_MAX_SPATIAL];
  positions(&p, 0, opos, LLVMBuildMul(L->b, ln.iv, lb_c64(L, a->out[0].st[0]), ""),
            LLVMBuildMul(L->b, ln.iv, lb_c64(L, a->in[0].st[0]), ""));
  lb_loop_end(L, &ln);
  return 0;
}

/* ---- reductions ------------------------------------------------------------------------ */

static LLVMValueRef f_add(lb_lw *L, LLVMValueRef *x, void *ud) {
  return LLVMBuildFAdd(L->b, x[0], x[1], "");
}

static LLVMValueRef f_scale(lb_lw *L, LLVMValueRef *x, void *ud) {
  const float *s = ud;
  return LLVMBuildFMul(L->b, x[0], lb_cf(L, LLVMTypeOf(x[0]), *s), "");
}

/* global_avg_pool (axes 2..) and reduce_mean (attr axes; none = all): zero the output, add
 * every input element into its output slot through a zero-stride view of the output, scale. */
int lb_lower_reduce(lb_lw *L, lb_op_args *a) {
  const lb_view *in = &a->in[0], *out = &a->out[0];
  if (in->dt != LB_DTYPE_F32)
    return lb_diag_err(L->diag, LB_ERR_INPUT, "reduction input must be f32, got %s",
                       lb_dtype_name(in->dt));
  int red[LB_MAX_RANK] = {0};
  const lb_attrs *at = &a->node->attr;
  if (a->node->op == LB_OP_GLOBAL_AVG_POOL)
    for (int d = 2; d < in->rank; d++) red[d] = 1;
  else if (at->n_axes == 0)
    for (int d = 0; d < in->rank; d++) red[d] = 1;
  else
    for (int i = 0; i < at->n_axes; i++)
      red[at->axes[i] < 0 ? at->axes[i] + in->rank : at->axes[i]] = 1;
  int keep = a->node->op == LB_OP_GLOBAL_AVG_POOL || at->keepdims || out->rank == in->rank;
  lb_view acc = *in;
  acc.base = out->base;
  int64_t count = 1;
  for (int d = 0, o = 0; d < in->rank; d++) {
    if (red[d]) count *= in->dims[d];
    acc.st[d] = red[d] ? 0 : out->st[keep ? d : o];
    if (keep || !red[d]) o++;
  }
  lb_emit_fill(L, out, 0.0);
  if (count == 0) return 0;
  lb_view x[2] = {acc, *in};
  lb_emit_map(L, &acc, x, 2, f_add, NULL);
  float s = (float)(1.0 / (double)count);
  lb_emit_map(L, out, out, 1, f_scale, &s);
  return 0;
}

/* Softmax over [outer, n, inner] views of canonical memory: max, sum of exp, normalise. */
int lb_lower_softmax(lb_lw *L, lb_op_args *a) {
  const lb_view *in = &a->in[0], *out = &a->out[0];
  int64_t axis = a->node->attr.axis < 0 ? a->node->attr.axis + in->rank : a->node->attr.axis;
  int64_t outer = 1, n = 1, inner = 1;
  for (int64_t d = 0; d < in->rank; d++) {
    if (d < axis)
      outer *= in->dims[d];
    else if (d == axis || a->node->attr.legacy_2d)
      n *= in->dims[d];
    else
      inner *= in->dims[d];
  }
  if (outer * n * inner == 0) return 0;
  LLVMTypeRef f = L->t_f32;
  LLVMValueRef mx = lb_alloca(L, f, NULL), sum = lb_alloca(L, f, NULL);
  lb_loop lo, li, lk;
  lb_loop_begin(L, &lo, lb_c64(L, 0), lb_c64(L, outer), 1);
  lb_loop_begin(L, &li, lb_c64(L, 0), lb_c64(L, inner), 1);
  LLVMValueRef base =
      LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lo.iv, lb_c64(L, n * inner), ""), li.iv, "");
  lb_store(L, lb_cf(L, f, -INFINITY), mx, 4);
  lb_store(L, lb_cf(L, f, 0.0), sum, 4);
  for (int pass = 0; pass < 3; pass++) {
    lb_loop_begin(L, &lk, lb_c64(L, 0), lb_c64(L, n), 1);
    LLVMValueRef off =
        LLVMBuildAdd(L->b, base, LLVMBuildMul(L->b, lk.iv, lb_c64(L, inner), ""), "");
    LLVMValueRef x = lb_load(L, f, lb_gep(L, f, in->base, off), 4);
    if (pass == 0) {
      lb_store(L, lb_fmax(L, lb_load(L, f, mx, 4), x), mx, 4);
    } else {
      LLVMValueRef e = LLVMBuildFSub(L->b, x, lb_load(L, f, mx, 4), "");
      e = lb_intr(L, "llvm.exp", f, &e, 1);
      if (pass == 1)
        lb_store(L, LLVMBuildFAdd(L->b, lb_load(L, f, sum, 4), e, ""), sum, 4);
      else
        lb_store(L, LLVMBuildFDiv(L->b, e, lb_load(L, f, sum, 4), ""), lb_gep(L, f, out->base, off),
                 4);
    }
    lb_loop_end(L, &lk);
  }
  lb_loop_end(L, &li);
  lb_loop_end(L, &lo);
  return 0;
}
