/* The strided elementwise engine and the ops built on it: arithmetic with numpy broadcasting
 * and a fused activation (f32, f64, and wrapping integer arithmetic), unary activations,
 * batchnorm (per-channel parameter views), concat, pad (constant, edge, reflect), transpose,
 * reshape-like copies, shape, gather and (de)quantize. Invariant: a loop nest walks the
 * output in its physical order (reduced dims by the input's), merges dims contiguous in every
 * operand, and uses <vw x T> vectors innermost whenever the output is contiguous there and
 * every input is contiguous or splat. */
#include <math.h>
#include <string.h>

#include "lower.h"

/* ---- the engine ----------------------------------------------------------------------------- */

typedef struct nest {
  int n; /* loop dims, outermost first */
  int64_t dims[LB_MAX_RANK];
  int64_t st[9][LB_MAX_RANK]; /* [operand][loop dim]; operand 0 is the output */
} nest;

/* Loop order key of dim d: the output's stride (stores stay sequential), or for dims the
 * output does not advance along (reductions) the largest input stride. */
static int64_t order_key(const lb_view *out, const lb_view *in, int n_in, int d) {
  int64_t m = out->st[d];
  for (int k = 0; k < n_in && m == 0; k++)
    if (in[k].st[d] > m) m = in[k].st[d];
  return m;
}

/* Orders the output's dims by decreasing key, drops size-1 dims and merges neighbours that
 * are contiguous in every operand. */
static void make_nest(nest *ns, const lb_view *out, const lb_view *in, int n_in) {
  int order[LB_MAX_RANK], n = 0;
  for (int d = 0; d < out->rank; d++)
    if (out->dims[d] != 1) order[n++] = d;
  for (int i = 1; i < n; i++) /* insertion sort, stable */
    for (int j = i; j > 0; j--) {
      int64_t a = order_key(out, in, n_in, order[j - 1]), b = order_key(out, in, n_in, order[j]);
      if (a > b || (a == b && out->st[order[j - 1]] >= out->st[order[j]])) break;
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  ns->n = 0;
  for (int i = 0; i < n; i++) {
    int d = order[i], m = ns->n;
    int merge = m > 0;
    for (int k = 0; k <= n_in && merge; k++) {
      const lb_view *v = k == 0 ? out : &in[k - 1];
      merge = ns->st[k][m - 1] == v->st[d] * v->dims[d];
    }
    if (merge) {
      ns->dims[m - 1] *= out->dims[d];
      for (int k = 0; k <= n_in; k++) ns->st[k][m - 1] = (k == 0 ? out : &in[k - 1])->st[d];
      continue;
    }
    ns->dims[m] = out->dims[d];
    for (int k = 0; k <= n_in; k++) ns->st[k][m] = (k == 0 ? out : &in[k - 1])->st[d];
    ns->n++;
  }
  if (ns->n == 0) { /* a single element */
    ns->n = 1;
    ns->dims[0] = 1;
    for (int k = 0; k <= n_in; k++) ns->st[k][0] = 0;
  }
}

typedef struct mapctx {
  const lb_view *out, *in;
  int n_in;
  lb_elem_fn f;
  void *ud;
  nest ns;
} mapctx;

/* One innermost pass from index lo to hi (step lanes) with the given base offsets. */
static void inner(lb_lw *L, mapctx *m, LLVMValueRef *off, LLVMValueRef lo, LLVMValueRef hi,
                  int lanes) {
  int d = m->ns.n - 1;
  lb_loop lp;
  lb_loop_begin(L, &lp, lo, hi, lanes);
  LLVMValueRef x[8];
  for (int k = 0; k < m->n_in; k++) {
    const lb_view *v = &m->in[k];
    LLVMTypeRef et = lb_lw_type(L, v->dt);
    int64_t s = m->ns.st[k + 1][d];
    LLVMValueRef o =
        LLVMBuildAdd(L->b, off[k + 1], LLVMBuildMul(L->b, lp.iv, lb_c64(L, s), ""), "");
    LLVMValueRef p = lb_gep(L, et, v->base, o);
    if (lanes > 1 && s == 1)
      x[k] = lb_load(L, LLVMVectorType(et, (unsigned)lanes), p,
                     (unsigned)LLVMABISizeOfType(LLVMGetModuleDataLayout(L->mod), et));
    else
      x[k] = lb_splat(L, lb_load(L, et, p, 1), lanes);
  }
  LLVMValueRef y = m->f(L, x, m->ud);
  LLVMTypeRef ot = lb_lw_type(L, m->out->dt);
  LLVMValueRef o =
      LLVMBuildAdd(L->b, off[0], LLVMBuildMul(L->b, lp.iv, lb_c64(L, m->ns.st[0][d]), ""), "");
  lb_store(L, y, lb_gep(L, ot, m->out->base, o), 1);
  lb_loop_end(L, &lp);
}

static int can_vectorize(const mapctx *m) {
  int d = m->ns.n - 1;
  if (m->ns.st[0][d] != 1) return 0;
  for (int k = 1; k <= m->n_in; k++)
    if (m->ns.st[k][d] != 0 && m->ns.st[k][d] != 1) return 0;
  return 1;
}

static void level(lb_lw *L, mapctx *m, int d, LLVMValueRef *off) {
  if (d == m->ns.n - 1) {
    int64_t n = m->ns.dims[d];
    int lanes = can_vectorize(m) ? L->vw : 1;
    int64_t nv = lanes > 1 ? n / lanes * lanes : 0;
    if (nv > 0) inner(L, m, off, lb_c64(L, 0), lb_c64(L, nv), lanes);
    if (nv < n) inner(L, m, off, lb_c64(L, nv), lb_c64(L, n), 1);
    return;
  }
  lb_loop lp;
  lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, m->ns.dims[d]), 1);
  LLVMValueRef o2[9];
  for (int k = 0; k <= m->n_in; k++)
    o2[k] =
        LLVMBuildAdd(L->b, off[k], LLVMBuildMul(L->b, lp.iv, lb_c64(L, m->ns.st[k][d]), ""), "");
  level(L, m, d + 1, o2);
  lb_loop_end(L, &lp);
}

void lb_emit_map(lb_lw *L, const lb_view *out, const lb_view *in, int n_in, lb_elem_fn f,
                 void *ud) {
  LB_ASSERT(n_in <= 8);
  mapctx m = {.out = out, .in = in, .n_in = n_in, .f = f, .ud = ud};
  make_nest(&m.ns, out, in, n_in);
  LLVMValueRef off[9];
  for (int k = 0; k <= n_in; k++) off[k] = lb_c64(L, 0);
  level(L, &m, 0, off);
}

static LLVMValueRef f_ident(lb_lw *L, LLVMValueRef *x, void *ud) { return x[0]; }

void lb_emit_copy(lb_lw *L, const lb_view *dst, const lb_view *src) {
  lb_emit_map(L, dst, src, 1, f_ident, NULL);
}

/* Fill through the engine with an all-splat "input": a zero-stride view of a 1-element
 * constant, so the vector width matches whatever the engine picks. */
void lb_emit_fill(lb_lw *L, const lb_view *dst, double value) {
  float f32 = (float)value;
  lb_view src = *dst;
  src.dt = LB_DTYPE_F32;
  src.base = lb_const_blob(L, &f32, sizeof f32, "fill");
  for (int d = 0; d < src.rank; d++) src.st[d] = 0;
  lb_emit_map(L, dst, &src, 1, f_ident, NULL);
}

/* ---- arithmetic and activations ---------------------------------------------------------- */

static LLVMValueRef f_node(lb_lw *L, LLVMValueRef *x, void *ud) {
  const lb_node *n = ud;
  LLVMTypeRef ty = LLVMTypeOf(x[0]);
  const lb_attrs *a = &n->attr;
  LLVMValueRef y;
  switch (n->op) {
  case LB_OP_ADD: y = LLVMBuildFAdd(L->b, x[0], x[1], ""); break;
  case LB_OP_SUB: y = LLVMBuildFSub(L->b, x[0], x[1], ""); break;
  case LB_OP_MUL: y = LLVMBuildFMul(L->b, x[0], x[1], ""); break;
  case LB_OP_DIV: y = LLVMBuildFDiv(L->b, x[0], x[1], ""); break;
  case LB_OP_RELU: return lb_fmax(L, x[0], lb_cf(L, ty, 0.0));
  case LB_OP_LEAKY_RELU: {
    LLVMValueRef neg = LLVMBuildFCmp(L->b, LLVMRealOLT, x[0], lb_cf(L, ty, 0.0), "");
    return LLVMBuildSelect(L->b, neg, LLVMBuildFMul(L->b, x[0], lb_cf(L, ty, a->alpha), ""), x[0],
                           "");
  }
  case LB_OP_CLIP: return lb_act_apply(L, LB_ACT_CLIP, a->clip_min, a->clip_max, x[0]);
  case LB_OP_SIGMOID: {
    LLVMValueRef e = LLVMBuildFNeg(L->b, x[0], "");
    e = lb_intr(L, "llvm.exp", ty, &e, 1);
    return LLVMBuildFDiv(L->b, lb_cf(L, ty, 1.0), LLVMBuildFAdd(L->b, lb_cf(L, ty, 1.0), e, ""),
                         "");
  }
  case LB_OP_TANH: return lb_intr(L, "llvm.tanh", ty, x, 1);
  case LB_OP_HARD_SIGMOID: {
    LLVMValueRef t = LLVMBuildFAdd(L->b, LLVMBuildFMul(L->b, x[0], lb_cf(L, ty, a->alpha), ""),
                                   lb_cf(L, ty, a->beta), "");
    return lb_fmin(L, lb_fmax(L, t, lb_cf(L, ty, 0.0)), lb_cf(L, ty, 1.0));
  }
  case LB_OP_HARD_SWISH: {
    LLVMValueRef t = LLVMBuildFAdd(L->b, LLVMBuildFMul(L->b, x[0], lb_cf(L, ty, 1.0 / 6.0), ""),
                                   lb_cf(L, ty, 0.5), "");
    t = lb_fmin(L, lb_fmax(L, t, lb_cf(L, ty, 0.0)), lb_cf(L, ty, 1.0));
    return LLVMBuildFMul(L->b, x[0], t, "");
  }
  default: return x[0]; /* identity */
  }
  return lb_act_apply(L, a->act, a->act_min, a->act_max, y);
}

static int need_f32(lb_lw *L, lb_op_args *a, int n) {
  for (int i = 0; i < n; i++)
    if (a->in[i].dt != LB_DTYPE_F32)
      return lb_diag_err(L->diag, LB_ERR_INPUT,
                         "input %d is %s; the LLVM backend computes this op in f32", i,
                         lb_dtype_name(a->in[i].dt));
  return 0;
}

/* ---- integer arithmetic (wrapping like numpy; x / 0 = 0), relu and clip ----------------- */

typedef struct ictx {
  const lb_node *n;
  int sg;         /* signed dtype */
  int64_t lo, hi; /* clip bounds in the dtype's range */
} ictx;

/* Division in a type wide enough that only x / 0 and INT64_MIN / -1 need care: both are made
 * safe with a divisor of 1, then x / 0 is replaced by 0 and x / -1 by the wrapping -x. */
static LLVMValueRef int_div(lb_lw *L, LLVMValueRef p, LLVMValueRef q, int sg) {
  LLVMTypeRef ty = LLVMTypeOf(p);
  LLVMValueRef zero = lb_ci(L, ty, 0), one = lb_ci(L, ty, 1), m1 = lb_ci(L, ty, -1);
  LLVMValueRef q0 = LLVMBuildICmp(L->b, LLVMIntEQ, q, zero, "");
  LLVMValueRef qm1 = sg ? LLVMBuildICmp(L->b, LLVMIntEQ, q, m1, "") : NULL;
  LLVMValueRef bad = qm1 ? LLVMBuildOr(L->b, q0, qm1, "") : q0;
  LLVMValueRef d = LLVMBuildSelect(L->b, bad, one, q, "");
  LLVMValueRef r = sg ? LLVMBuildSDiv(L->b, p, d, "") : LLVMBuildUDiv(L->b, p, d, "");
  if (qm1) r = LLVMBuildSelect(L->b, qm1, LLVMBuildSub(L->b, zero, p, ""), r, "");
  return LLVMBuildSelect(L->b, q0, zero, r, "");
}

static LLVMValueRef f_int(lb_lw *L, LLVMValueRef *x, void *ud) {
  const ictx *c = ud;
  LLVMTypeRef ty = LLVMTypeOf(x[0]);
  LLVMValueRef y[2] = {x[0], x[0]};
  switch (c->n->op) {
  case LB_OP_ADD: return LLVMBuildAdd(L->b, x[0], x[1], "");
  case LB_OP_SUB: return LLVMBuildSub(L->b, x[0], x[1], "");
  case LB_OP_MUL: return LLVMBuildMul(L->b, x[0], x[1], "");
  case LB_OP_DIV: return int_div(L, x[0], x[1], c->sg);
  default: /* relu, clip */
    y[1] = lb_ci(L, ty, c->lo);
    y[0] = lb_intr(L, c->sg ? "llvm.smax" : "llvm.umax", ty, y, 2);
    y[1] = lb_ci(L, ty, c->hi);
    return lb_intr(L, c->sg ? "llvm.smin" : "llvm.umin", ty, y, 2);
  }
}

/* v (an integral double, maybe infinite) saturated to the range of a bits-wide integer. */
static int64_t saturate(double v, int bits, int sg) {
  double lo = sg ? -ldexp(1, bits - 1) : 0, hi = sg ? ldexp(1, bits - 1) - 1 : ldexp(1, bits) - 1;
  if (v <= lo) return bits == 64 ? INT64_MIN : (int64_t)lo;
  if (v >= hi) return bits == 64 ? INT64_MAX : (int64_t)hi;
  return (int64_t)v;
}

static int lower_int(lb_lw *L, lb_op_args *a, const lb_view *in, int n_in) {
  const lb_node *n = a->node;
  lb_dtype t = a->in[0].dt;
  int bits = lb_dtype_bits(t), sg = lb_dtype_is_signed(t);
  int ok = lb_lw_type(L, t) && !lb_dtype_is_float(t) && t != LB_DTYPE_BOOL;
  ok = ok && n->attr.act == LB_ACT_NONE &&
       (n->op == LB_OP_ADD || n->op == LB_OP_SUB || n->op == LB_OP_MUL || n->op == LB_OP_DIV ||
        n->op == LB_OP_RELU || n->op == LB_OP_CLIP);
  for (int i = 1; i < n_in; i++) ok = ok && a->in[i].dt == t;
  if (!ok) return need_f32(L, a, n_in);
  int clip = n->op == LB_OP_CLIP;
  ictx c = {.n = n,
            .sg = sg,
            .lo = saturate(clip ? ceil(n->attr.clip_min) : 0, bits, sg),
            .hi = saturate(clip ? floor(n->attr.clip_max) : INFINITY, bits, sg)};
  lb_emit_map(L, &a->out[0], in, n_in, f_int, &c);
  return 0;
}

int lb_lower_elementwise(lb_lw *L, lb_op_args *a) {
  const lb_node *n = a->node;
  int n_in = (int)n->n_in;
  if (n->op == LB_OP_IDENTITY) {
    lb_emit_copy(L, &a->out[0], &a->in[0]);
    return 0;
  }
  lb_view in[2];
  for (int i = 0; i < n_in; i++)
    in[i] = lb_view_broadcast(&a->in[i], a->out[0].rank, a->out[0].dims);
  if (a->in[0].dt == LB_DTYPE_F64 && (n_in == 1 || a->in[1].dt == LB_DTYPE_F64)) {
    lb_emit_map(L, &a->out[0], in, n_in, f_node, (void *)n); /* f64: same code, wider type */
    return 0;
  }
  if (a->in[0].dt != LB_DTYPE_F32) return lower_int(L, a, in, n_in);
  LB_TRY(need_f32(L, a, n_in));
  lb_emit_map(L, &a->out[0], in, n_in, f_node, (void *)n);
  return 0;
}

/* ---- batchnorm (when not folded): y = (x - mean) / sqrt(var + eps) * scale + bias ------- */

static LLVMValueRef f_bn(lb_lw *L, LLVMValueRef *x, void *ud) {
  const float *eps = ud;
  LLVMTypeRef ty = LLVMTypeOf(x[0]);
  LLVMValueRef den = LLVMBuildFAdd(L->b, x[4], lb_cf(L, ty, *eps), "");
  den = lb_intr(L, "llvm.sqrt", ty, &den, 1);
  LLVMValueRef y = LLVMBuildFDiv(L->b, LLVMBuildFSub(L->b, x[0], x[3], ""), den, "");
  return LLVMBuildFAdd(L->b, LLVMBuildFMul(L->b, y, x[1], ""), x[2], "");
}

/* The per-channel parameters are views with stride 1 along dim 1 and 0 elsewhere, so the same
 * code serves constant and run-time parameters in any layout. */
int lb_lower_batchnorm(lb_lw *L, lb_op_args *a) {
  LB_TRY(need_f32(L, a, 5));
  lb_view v[5] = {a->in[0]};
  for (int k = 1; k < 5; k++) {
    v[k] = a->in[0];
    v[k].base = a->in[k].base;
    for (int d = 0; d < v[k].rank; d++) v[k].st[d] = 0;
    if (v[k].rank > 1) v[k].st[1] = 1;
  }
  float eps = a->node->attr.epsilon;
  lb_emit_map(L, &a->out[0], v, 5, f_bn, &eps);
  return 0;
}

/* ---- data movement --------------------------------------------------------------------- */

/* The output view restricted to [begin, begin+len) along dim d. */
static lb_view slice(lb_lw *L, const lb_view *v, int d, int64_t begin, int64_t len) {
  lb_view s = *v;
  s.dims[d] = len;
  s.base = lb_gep(L, lb_lw_type(L, v->dt), v->base, lb_c64(L, begin * v->st[d]));
  return s;
}

int lb_lower_concat(lb_lw *L, lb_op_args *a) {
  int64_t axis = a->node->attr.axis;
  if (axis < 0) axis += a->out[0].rank;
  int64_t at = 0;
  for (uint32_t i = 0; i < a->node->n_in; i++) {
    lb_view dst = slice(L, &a->out[0], (int)axis, at, a->in[i].dims[axis]);
    lb_emit_copy(L, &dst, &a->in[i]);
    at += a->in[i].dims[axis];
  }
  return 0;
}

/* Edge and reflect padding: every output element reads one clamped / mirrored source index
 * per dim (scalar; pads of these modes are rare and small). */
static void pad_index_nest(lb_lw *L, lb_op_args *a, int d, LLVMValueRef so, LLVMValueRef oo) {
  const lb_view *o = &a->out[0], *in = &a->in[0];
  if (d == o->rank) {
    LLVMTypeRef et = lb_lw_type(L, o->dt);
    LLVMValueRef v = lb_load(L, et, lb_gep(L, et, in->base, so), 1);
    lb_store(L, v, lb_gep(L, et, o->base, oo), 1);
    return;
  }
  lb_loop lp;
  lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, o->dims[d]), 1);
  int64_t n = in->dims[d];
  LLVMValueRef i = LLVMBuildSub(L->b, lp.iv, lb_c64(L, a->node->attr.pads[d]), "");
  LLVMValueRef lo = LLVMBuildICmp(L->b, LLVMIntSLT, i, lb_c64(L, 0), "");
  LLVMValueRef hi = LLVMBuildICmp(L->b, LLVMIntSGE, i, lb_c64(L, n), "");
  if (a->node->attr.pad_mode == LB_PAD_EDGE) {
    i = LLVMBuildSelect(L->b, lo, lb_c64(L, 0), i, "");
    i = LLVMBuildSelect(L->b, hi, lb_c64(L, n - 1), i, "");
  } else { /* reflect: -i below, 2(n-1)-i above (ONNX requires pads < n) */
    i = LLVMBuildSelect(L->b, lo, LLVMBuildNeg(L->b, i, ""), i, "");
    i = LLVMBuildSelect(L->b, hi, LLVMBuildSub(L->b, lb_c64(L, 2 * (n - 1)), i, ""), i, "");
  }
  LLVMValueRef so2 = LLVMBuildAdd(L->b, so, LLVMBuildMul(L->b, i, lb_c64(L, in->st[d]), ""), "");
  LLVMValueRef oo2 = LLVMBuildAdd(L->b, oo, LLVMBuildMul(L->b, lp.iv, lb_c64(L, o->st[d]), ""), "");
  pad_index_nest(L, a, d + 1, so2, oo2);
  lb_loop_end(L, &lp);
}

/* Constant pad: fill, then copy the (possibly cropped, for negative pads) input inside. */
int lb_lower_pad(lb_lw *L, lb_op_args *a) {
  const lb_attrs *at = &a->node->attr;
  const lb_view *o = &a->out[0];
  if (at->pad_mode != LB_PAD_CONSTANT) {
    for (int d = 0; d < o->rank; d++)
      if (at->pads[d] < 0 || at->pads[o->rank + d] < 0 || a->in[0].dims[d] == 0)
        return lb_diag_err(L->diag, LB_ERR_INPUT,
                           "edge/reflect pad with negative pads or empty dims");
    pad_index_nest(L, a, 0, lb_c64(L, 0), lb_c64(L, 0));
    return 0;
  }
  lb_emit_fill(L, o, at->pad_value);
  lb_view dst = *o, src = a->in[0];
  int64_t doff = 0, soff = 0;
  for (int d = 0; d < o->rank; d++) {
    int64_t b = at->pads[d], e = at->pads[o->rank + d];
    int64_t len = src.dims[d] - (b < 0 ? -b : 0) - (e < 0 ? -e : 0);
    if (len <= 0) return 0;
    doff += (b > 0 ? b : 0) * o->st[d];
    soff += (b < 0 ? -b : 0) * src.st[d];
    dst.dims[d] = src.dims[d] = len;
  }
  dst.base = lb_gep(L, lb_lw_type(L, o->dt), o->base, lb_c64(L, doff));
  src.base = lb_gep(L, lb_lw_type(L, src.dt), src.base, lb_c64(L, soff));
  lb_emit_copy(L, &dst, &src);
  return 0;
}

int lb_lower_transpose(lb_lw *L, lb_op_args *a) {
  const lb_view *in = &a->in[0];
  lb_view src = a->out[0];
  src.base = in->base;
  src.dt = in->dt;
  for (int d = 0; d < src.rank; d++) src.st[d] = in->st[a->node->attr.axes[d]];
  lb_emit_copy(L, &a->out[0], &src);
  return 0;
}

/* Reshape-like ops reinterpret canonical (row-major) memory: a flat copy. */
int lb_lower_reshape(lb_lw *L, lb_op_args *a) {
  int64_t n = lb_view_numel(&a->in[0]);
  lb_view d = {.base = a->out[0].base, .dt = a->out[0].dt, .rank = 1, .dims = {n}, .st = {1}};
  lb_view s = {.base = a->in[0].base, .dt = a->in[0].dt, .rank = 1, .dims = {n}, .st = {1}};
  lb_emit_copy(L, &d, &s);
  return 0;
}

int lb_lower_shape(lb_lw *L, lb_op_args *a) {
  const lb_view *in = &a->in[0];
  int64_t start = a->node->attr.start, end = a->node->attr.end;
  if (start < 0) start += in->rank;
  if (end == INT64_MAX || end > in->rank) end = in->rank;
  if (end < 0) end += in->rank;
  if (start < 0) start = 0;
  for (int64_t i = start; i < end; i++)
    lb_store(L, lb_c64(L, in->dims[i]), lb_gep(L, L->t_i64, a->out[0].base, lb_c64(L, i - start)),
             8);
  return 0;
}

/* out[pre, j.., post] = data[pre, idx[j], post]; indices may be computed at run time, so they
 * are loaded, made non-negative and clamped into range (ONNX leaves out-of-range undefined). */
int lb_lower_gather(lb_lw *L, lb_op_args *a) {
  const lb_view *d = &a->in[0], *ix = &a->in[1], *o = &a->out[0];
  int64_t axis = a->node->attr.axis;
  if (axis < 0) axis += d->rank;
  if (ix->dt != LB_DTYPE_I64 && ix->dt != LB_DTYPE_I32)
    return lb_diag_err(L->diag, LB_ERR_INPUT, "gather indices must be i64 or i32, got %s",
                       lb_dtype_name(ix->dt));
  int64_t pre = 1, post = 1, n = d->dims[axis], nidx = lb_view_numel(ix);
  for (int64_t k = 0; k < axis; k++) pre *= d->dims[k];
  for (int64_t k = axis + 1; k < d->rank; k++) post *= d->dims[k];
  if (pre * nidx * post == 0) return 0;
  LLVMTypeRef et = lb_lw_type(L, d->dt), it = lb_lw_type(L, ix->dt);
  lb_loop lp, lj;
  lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, pre), 1);
  lb_loop_begin(L, &lj, lb_c64(L, 0), lb_c64(L, nidx), 1);
  LLVMValueRef i = lb_load(L, it, lb_gep(L, it, ix->base, lj.iv), 1);
  i = LLVMBuildSExt(L->b, i, L->t_i64, "");
  LLVMValueRef neg = LLVMBuildICmp(L->b, LLVMIntSLT, i, lb_c64(L, 0), "");
  i = LLVMBuildSelect(L->b, neg, LLVMBuildAdd(L->b, i, lb_c64(L, n), ""), i, "");
  i = LLVMBuildSelect(L->b, LLVMBuildICmp(L->b, LLVMIntSLT, i, lb_c64(L, 0), ""), lb_c64(L, 0), i,
                      "");
  i = LLVMBuildSelect(L->b, LLVMBuildICmp(L->b, LLVMIntSGE, i, lb_c64(L, n), ""), lb_c64(L, n - 1),
                      i, "");
  LLVMValueRef so =
      LLVMBuildMul(L->b, LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lp.iv, lb_c64(L, n), ""), i, ""),
                   lb_c64(L, post), "");
  LLVMValueRef oo = LLVMBuildMul(
      L->b, LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lp.iv, lb_c64(L, nidx), ""), lj.iv, ""),
      lb_c64(L, post), "");
  lb_view s1 = {
      .base = lb_gep(L, et, d->base, so), .dt = d->dt, .rank = 1, .dims = {post}, .st = {1}};
  lb_view d1 = {
      .base = lb_gep(L, et, o->base, oo), .dt = o->dt, .rank = 1, .dims = {post}, .st = {1}};
  lb_emit_copy(L, &d1, &s1);
  lb_loop_end(L, &lj);
  lb_loop_end(L, &lp);
  return 0;
}

/* ---- quantize / dequantize (round half to even, saturate) -------------------------------- */

typedef struct qctx {
  lb_dtype xt, zt, yt;
  int has_zp;
} qctx;

static LLVMValueRef to_f32(lb_lw *L, LLVMValueRef v, lb_dtype dt) {
  LLVMTypeRef ft = L->t_f32;
  if (LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind)
    ft = LLVMVectorType(L->t_f32, LLVMGetVectorSize(LLVMTypeOf(v)));
  if (dt == LB_DTYPE_F32) return v;
  return lb_dtype_is_signed(dt) ? LLVMBuildSIToFP(L->b, v, ft, "")
                                : LLVMBuildUIToFP(L->b, v, ft, "");
}

static LLVMValueRef f_quant(lb_lw *L, LLVMValueRef *x, void *ud) {
  const qctx *q = ud;
  LLVMValueRef y = LLVMBuildFDiv(L->b, x[0], x[1], "");
  LLVMTypeRef ft = LLVMTypeOf(y);
  y = lb_intr(L, "llvm.roundeven", ft, &y, 1);
  if (q->has_zp) y = LLVMBuildFAdd(L->b, y, to_f32(L, x[2], q->zt), "");
  int bits = lb_dtype_bits(q->yt), sg = lb_dtype_is_signed(q->yt);
  double lo = sg ? -ldexp(1, bits - 1) : 0, hi = sg ? ldexp(1, bits - 1) - 1 : ldexp(1, bits) - 1;
  y = lb_fmin(L, lb_fmax(L, y, lb_cf(L, ft, lo)), lb_cf(L, ft, hi));
  LLVMTypeRef it = lb_lw_type(L, q->yt);
  if (LLVMGetTypeKind(ft) == LLVMVectorTypeKind) it = LLVMVectorType(it, LLVMGetVectorSize(ft));
  return sg ? LLVMBuildFPToSI(L->b, y, it, "") : LLVMBuildFPToUI(L->b, y, it, "");
}

static LLVMValueRef f_dequant(lb_lw *L, LLVMValueRef *x, void *ud) {
  const qctx *q = ud;
  LLVMValueRef v = to_f32(L, x[0], q->xt);
  if (q->has_zp) v = LLVMBuildFSub(L->b, v, to_f32(L, x[2], q->zt), "");
  return LLVMBuildFMul(L->b, v, x[1], "");
}

/* Scale / zero point: one element (per tensor) or a 1-D vector along attr.axis. */
static lb_view qparam(const lb_view *p, const lb_view *x, int64_t axis) {
  lb_view v = *x;
  v.base = p->base;
  v.dt = p->dt;
  for (int d = 0; d < v.rank; d++) v.st[d] = 0;
  if (lb_view_numel(p) > 1) v.st[axis] = 1;
  return v;
}

int lb_lower_quant(lb_lw *L, lb_op_args *a) {
  const lb_node *n = a->node;
  int has_zp = n->n_in > 2 && a->in[2].base != NULL;
  qctx q = {.xt = a->in[0].dt,
            .zt = has_zp ? a->in[2].dt : LB_DTYPE_U8,
            .yt = a->out[0].dt,
            .has_zp = has_zp};
  if (!lb_lw_type(L, q.xt) || !lb_lw_type(L, q.yt) || a->in[1].dt != LB_DTYPE_F32)
    return lb_diag_err(L->diag, LB_ERR_INPUT,
                       "%s: unsupported dtypes %s -> %s for the LLVM backend",
                       lb_op_get(n->op)->name, lb_dtype_name(q.xt), lb_dtype_name(q.yt));
  int64_t axis = n->attr.axis < 0 ? n->attr.axis + a->in[0].rank : n->attr.axis;
  if (a->in[0].rank == 0) axis = 0;
  lb_view v[3] = {a->in[0], qparam(&a->in[1], &a->in[0], axis),
                  has_zp ? qparam(&a->in[2], &a->in[0], axis) : a->in[0]};
  lb_emit_map(L, &a->out[0], v, has_zp ? 3 : 2, n->op == LB_OP_QUANTIZE ? f_quant : f_dequant, &q);
  return 0;
}
