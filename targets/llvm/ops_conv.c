/* Convolution, Gemm and MatMul. The fast path hands shape-specialised kernels from kernels.h
 * to the step: GEMM over compile-time packed weights, im2col conv (also per group on channel
 * slices), depthwise conv (NHWC, bias/act/residual fused), and GEMM on a run-time row-major B
 * for MatMul of two activations. Everything else (1-D/3-D conv, run-time conv weights,
 * transposed run-time Gemm) takes a generic strided scalar path. Invariant: lb_conv_wants_nhwc
 * and the fast path accept exactly the same nodes, so the planner's layouts match the code. */
#include <string.h>

#include "lower.h"

static const lb_value *val(const lb_graph *g, const lb_node *n, uint32_t i) {
  return i < n->n_in && n->in[i] != LB_NONE ? &g->values[n->in[i]] : NULL;
}

/* The base of optional input i, NULL when the node has no such input. */
static LLVMValueRef opt_in(const lb_op_args *a, uint32_t i) {
  return i < a->node->n_in ? a->in[i].base : NULL;
}

static int is_f32_const(const lb_value *v) { return v && v->data && v->dtype == LB_DTYPE_F32; }

/* ---- convolution ------------------------------------------------------------------------ */

/* 0 generic, 1 dense, 2 depthwise, 3 grouped (one dense kernel per group on channel slices) */
static int conv_kind(const lb_graph *g, const lb_node *n) {
  const lb_value *x = val(g, n, 0), *w = val(g, n, 1), *b = val(g, n, 2);
  if (n->attr.n_spatial != 2 || x->rank != 4 || x->dtype != LB_DTYPE_F32) return 0;
  if (!is_f32_const(w) || (b && !is_f32_const(b))) return 0;
  const lb_value *r = val(g, n, 3);
  if (r && r->dtype != LB_DTYPE_F32) return 0;
  if (n->attr.group == 1) return 1;
  if (n->attr.group == x->dims[1] && w->dims[0] == x->dims[1] && w->dims[1] == 1) return 2;
  int64_t G = n->attr.group;
  if (G > 1 && x->dims[1] % G == 0 && w->dims[0] % G == 0 && w->dims[1] == x->dims[1] / G) return 3;
  return 0;
}

int lb_conv_wants_nhwc(const lb_graph *g, const lb_node *n) {
  return n->op == LB_OP_CONV && conv_kind(g, n) != 0;
}

static int64_t or1(int64_t v) { return v > 0 ? v : 1; }

static void conv_desc(const lb_op_args *a, lb_conv_desc *d) {
  const lb_attrs *at = &a->node->attr;
  const lb_view *x = &a->in[0], *y = &a->out[0];
  memset(d, 0, sizeof *d);
  d->n = x->dims[0], d->c_in = x->dims[1], d->h = x->dims[2], d->w = x->dims[3];
  d->c_out = y->dims[1];
  d->kh = a->g->values[a->node->in[1]].dims[2], d->kw = a->g->values[a->node->in[1]].dims[3];
  d->sh = or1(at->strides[0]), d->sw = or1(at->strides[1]);
  d->dh = or1(at->dilations[0]), d->dw = or1(at->dilations[1]);
  d->pad_t = at->pads[0], d->pad_l = at->pads[1], d->pad_b = at->pads[2], d->pad_r = at->pads[3];
  d->has_bias = opt_in(a, 2) != NULL;
  d->has_res = opt_in(a, 3) != NULL;
  d->act = at->act, d->act_min = at->act_min, d->act_max = at->act_max;
}

static LLVMValueRef call6(lb_lw *L, LLVMValueRef fn, LLVMValueRef *args) {
  LLVMTypeRef p[6];
  for (int i = 0; i < 6; i++) p[i] = L->t_ptr;
  LLVMTypeRef fty = LLVMFunctionType(L->t_void, p, 6, 0);
  for (int i = 0; i < 6; i++)
    if (!args[i]) args[i] = LLVMConstNull(L->t_ptr);
  return LLVMBuildCall2(L->b, fty, fn, args, 6, "");
}

static int conv_fast(lb_lw *L, lb_op_args *a, int kind) {
  lb_conv_desc d;
  conv_desc(a, &d);
  LB_TRY(lb_conv_desc_finish(&d, L->diag));
  const lb_value *w = val(a->g, a->node, 1);
  size_t sz = kind == 1 ? lb_pack_gemm_b_size(&L->kcfg, d.kh * d.kw * d.c_in, d.c_out)
                        : lb_pack_dw_size(d.c_in, d.kh, d.kw);
  if (sz == SIZE_MAX) return lb_diag_err(L->diag, LB_ERR_INPUT, "conv weights too large");
  float *packed = lb_malloc(sz ? sz : 1);
  if (!packed) return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory packing weights");
  if (kind == 1)
    lb_pack_conv_w(&L->kcfg, w->data, d.c_out, d.c_in, d.kh, d.kw, packed);
  else
    lb_pack_dw_w(w->data, d.c_in, d.kh, d.kw, packed);
  LLVMValueRef wp = lb_const_blob(L, packed, sz, "w");
  lb_free(packed);
  lb_kern_out k;
  int rc = kind == 1 ? lb_emit_conv_f32(L->mod, &L->kcfg, &d, &k, L->diag)
                     : lb_emit_dwconv_f32(L->mod, &L->kcfg, &d, &k, L->diag);
  if (rc) return rc;
  LLVMSetLinkage(k.fn, LLVMInternalLinkage);
  LLVMValueRef args[6] = {a->in[0].base,  wp,
                          opt_in(a, 2),   opt_in(a, 3),
                          a->out[0].base, k.scratch_bytes ? a->scratch : NULL};
  if (k.scratch_bytes > a->scratch_bytes) a->scratch_bytes = k.scratch_bytes;
  call6(L, k.fn, args);
  return 0;
}

/* p + off floats (p may be NULL: an absent operand stays NULL). */
static LLVMValueRef offset_f32(lb_lw *L, LLVMValueRef p, int64_t off) {
  return p && off ? lb_gep(L, L->t_f32, p, lb_c64(L, off)) : p;
}

/* Grouped conv: one dense kernel (shared by all groups) on channel slices of the NHWC input,
 * output and residual (pixel strides = the full channel counts), weights packed per group. */
static int conv_grouped(lb_lw *L, lb_op_args *a) {
  lb_conv_desc d;
  conv_desc(a, &d);
  int64_t G = a->node->attr.group, cin = d.c_in / G, cout = d.c_out / G;
  d.ldx = d.c_in, d.ldy = d.ldr = d.c_out, d.c_in = cin, d.c_out = cout;
  LB_TRY(lb_conv_desc_finish(&d, L->diag));
  lb_kern_out k;
  LB_TRY(lb_emit_conv_f32(L->mod, &L->kcfg, &d, &k, L->diag));
  LLVMSetLinkage(k.fn, LLVMInternalLinkage);
  if (k.scratch_bytes > a->scratch_bytes) a->scratch_bytes = k.scratch_bytes;
  size_t sz = lb_pack_gemm_b_size(&L->kcfg, d.kh * d.kw * cin, cout);
  float *packed = sz == SIZE_MAX ? NULL : lb_malloc(sz ? sz : 1);
  if (!packed) return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory packing weights");
  const float *w = val(a->g, a->node, 1)->data;
  for (int64_t g = 0; g < G; g++) {
    lb_pack_conv_w(&L->kcfg, w + g * cout * cin * d.kh * d.kw, cout, cin, d.kh, d.kw, packed);
    LLVMValueRef args[6] = {
        offset_f32(L, a->in[0].base, g * cin),   lb_const_blob(L, packed, sz, "w"),
        offset_f32(L, opt_in(a, 2), g * cout),   offset_f32(L, opt_in(a, 3), g * cout),
        offset_f32(L, a->out[0].base, g * cout), k.scratch_bytes ? a->scratch : NULL};
    call6(L, k.fn, args);
  }
  lb_free(packed);
  return 0;
}

/* Generic direct convolution: any group, 1-3 spatial dims, any layout (through strides). */
typedef struct gconv {
  const lb_view *x, *w, *y;
  const lb_attrs *at;
  int ns;
  LLVMValueRef acc, ypos[LB_MAX_SPATIAL];
} gconv;

static void gconv_taps(lb_lw *L, gconv *c, int k, LLVMValueRef xo, LLVMValueRef wo) {
  if (k == c->ns) {
    LLVMValueRef xv = lb_load(L, L->t_f32, lb_gep(L, L->t_f32, c->x->base, xo), 4);
    LLVMValueRef wv = lb_load(L, L->t_f32, lb_gep(L, L->t_f32, c->w->base, wo), 4);
    LLVMValueRef s =
        LLVMBuildFAdd(L->b, lb_load(L, L->t_f32, c->acc, 4), LLVMBuildFMul(L->b, xv, wv, ""), "");
    lb_store(L, s, c->acc, 4);
    return;
  }
  LB_ASSERT(k < LB_MAX_SPATIAL); /* ns <= 3; also tells gcc the arrays stay in bounds */
  lb_loop lp;
  lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, c->w->dims[2 + k]), 1);
  LLVMValueRef ih =
      LLVMBuildAdd(L->b, LLVMBuildMul(L->b, c->ypos[k], lb_c64(L, or1(c->at->strides[k])), ""),
                   LLVMBuildMul(L->b, lp.iv, lb_c64(L, or1(c->at->dilations[k])), ""), "");
  ih = LLVMBuildSub(L->b, ih, lb_c64(L, c->at->pads[k]), "");
  LLVMValueRef ok =
      LLVMBuildAnd(L->b, LLVMBuildICmp(L->b, LLVMIntSGE, ih, lb_c64(L, 0), ""),
                   LLVMBuildICmp(L->b, LLVMIntSLT, ih, lb_c64(L, c->x->dims[2 + k]), ""), "");
  LLVMBasicBlockRef join = lb_if_begin(L, ok);
  gconv_taps(L, c, k + 1,
             LLVMBuildAdd(L->b, xo, LLVMBuildMul(L->b, ih, lb_c64(L, c->x->st[2 + k]), ""), ""),
             LLVMBuildAdd(L->b, wo, LLVMBuildMul(L->b, lp.iv, lb_c64(L, c->w->st[2 + k]), ""), ""));
  lb_if_end(L, join);
  lb_loop_end(L, &lp);
}

static void gconv_pos(lb_lw *L, lb_op_args *a, gconv *c, int k, LLVMValueRef n, LLVMValueRef m,
                      LLVMValueRef yo) {
  if (k < c->ns) {
    lb_loop lp;
    lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, c->y->dims[2 + k]), 1);
    c->ypos[k] = lp.iv;
    gconv_pos(
        L, a, c, k + 1, n, m,
        LLVMBuildAdd(L->b, yo, LLVMBuildMul(L->b, lp.iv, lb_c64(L, c->y->st[2 + k]), ""), ""));
    lb_loop_end(L, &lp);
    return;
  }
  int64_t cg = c->w->dims[1], mg = c->y->dims[1] / or1(c->at->group);
  lb_store(L, lb_cf(L, L->t_f32, 0.0), c->acc, 4);
  LLVMValueRef g = LLVMBuildSDiv(L->b, m, lb_c64(L, mg), "");
  lb_loop lc;
  lb_loop_begin(L, &lc, lb_c64(L, 0), lb_c64(L, cg), 1);
  LLVMValueRef ci = LLVMBuildAdd(L->b, LLVMBuildMul(L->b, g, lb_c64(L, cg), ""), lc.iv, "");
  LLVMValueRef xo = LLVMBuildAdd(L->b, LLVMBuildMul(L->b, n, lb_c64(L, c->x->st[0]), ""),
                                 LLVMBuildMul(L->b, ci, lb_c64(L, c->x->st[1]), ""), "");
  LLVMValueRef wo = LLVMBuildAdd(L->b, LLVMBuildMul(L->b, m, lb_c64(L, c->w->st[0]), ""),
                                 LLVMBuildMul(L->b, lc.iv, lb_c64(L, c->w->st[1]), ""), "");
  gconv_taps(L, c, 0, xo, wo);
  lb_loop_end(L, &lc);
  LLVMValueRef s = lb_load(L, L->t_f32, c->acc, 4);
  if (opt_in(a, 2))
    s = LLVMBuildFAdd(L->b, s, lb_load(L, L->t_f32, lb_gep(L, L->t_f32, a->in[2].base, m), 4), "");
  if (opt_in(a, 3)) { /* residual: same logical position, its own strides */
    const lb_view *r = &a->in[3];
    LLVMValueRef ro = LLVMBuildAdd(L->b, LLVMBuildMul(L->b, n, lb_c64(L, r->st[0]), ""),
                                   LLVMBuildMul(L->b, m, lb_c64(L, r->st[1]), ""), "");
    for (int i = 0; i < c->ns; i++)
      ro = LLVMBuildAdd(L->b, ro, LLVMBuildMul(L->b, c->ypos[i], lb_c64(L, r->st[2 + i]), ""), "");
    s = LLVMBuildFAdd(L->b, s, lb_load(L, L->t_f32, lb_gep(L, L->t_f32, r->base, ro), 4), "");
  }
  s = lb_act_apply(L, c->at->act, c->at->act_min, c->at->act_max, s);
  lb_store(L, s, lb_gep(L, L->t_f32, c->y->base, yo), 4);
}

static int conv_generic(lb_lw *L, lb_op_args *a) {
  for (uint32_t i = 0; i < a->node->n_in; i++)
    if (a->in[i].base && a->in[i].dt != LB_DTYPE_F32)
      return lb_diag_err(L->diag, LB_ERR_INPUT, "conv input %u must be f32", i);
  gconv c = {.x = &a->in[0],
             .w = &a->in[1],
             .y = &a->out[0],
             .at = &a->node->attr,
             .ns = a->in[0].rank - 2};
  c.acc = lb_alloca(L, L->t_f32, NULL);
  lb_loop ln, lm;
  lb_loop_begin(L, &ln, lb_c64(L, 0), lb_c64(L, c.y->dims[0]), 1);
  lb_loop_begin(L, &lm, lb_c64(L, 0), lb_c64(L, c.y->dims[1]), 1);
  LLVMValueRef yo = LLVMBuildAdd(L->b, LLVMBuildMul(L->b, ln.iv, lb_c64(L, c.y->st[0]), ""),
                                 LLVMBuildMul(L->b, lm.iv, lb_c64(L, c.y->st[1]), ""), "");
  gconv_pos(L, a, &c, 0, ln.iv, lm.iv, yo);
  lb_loop_end(L, &lm);
  lb_loop_end(L, &ln);
  return 0;
}

int lb_lower_conv(lb_lw *L, lb_op_args *a) {
  int kind = conv_kind(a->g, a->node);
  return kind == 3 ? conv_grouped(L, a) : kind ? conv_fast(L, a, kind) : conv_generic(L, a);
}

/* ---- gemm and matmul ---------------------------------------------------------------------- */

/* Views of a batched product: a [b.., M, K], b [b.., K, N], y [b.., M, N], c (bias, scaled by
 * beta) and r (residual) broadcast to y, all of rank nb + 2. */
typedef struct mm {
  int rank;
  lb_view a, b, y, c, r;
  int has_c, has_r;
  float alpha, beta;
  lb_act act;
  float lo, hi;
} mm;

/* v's last two dims (swapped if trans) right-aligned into a rank-r view with batch dims bd. */
static lb_view mm_view(const lb_view *v, int trans, int r, const int64_t *bd, int64_t rows,
                       int64_t cols) {
  lb_view o = *v;
  o.rank = r;
  int64_t s_rows = 0, s_cols = 0;
  if (v->rank == 1)
    s_cols = rows == 1 ? v->st[0] : 0, s_rows = rows == 1 ? 0 : v->st[0];
  else {
    s_rows = trans ? v->st[v->rank - 1] : v->st[v->rank - 2];
    s_cols = trans ? v->st[v->rank - 2] : v->st[v->rank - 1];
  }
  for (int d = 0; d < r - 2; d++) {
    int k = d - (r - 2 - (v->rank - 2));
    o.dims[d] = bd[d];
    o.st[d] = (v->rank <= 2 || k < 0 || v->dims[k] == 1) ? 0 : v->st[k];
  }
  o.dims[r - 2] = rows, o.dims[r - 1] = cols;
  o.st[r - 2] = rows == 1 ? 0 : s_rows, o.st[r - 1] = cols == 1 ? 0 : s_cols;
  return o;
}

static LLVMValueRef offset(lb_lw *L, const lb_view *v, LLVMValueRef *iv, int n) {
  LLVMValueRef o = lb_c64(L, 0);
  for (int d = 0; d < n; d++)
    o = LLVMBuildAdd(L->b, o, LLVMBuildMul(L->b, iv[d], lb_c64(L, v->st[d]), ""), "");
  return o;
}

static void mm_loops(lb_lw *L, mm *p, int d, LLVMValueRef *iv, LLVMValueRef acc) {
  if (d < p->rank) {
    lb_loop lp;
    lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, p->y.dims[d]), 1);
    iv[d] = lp.iv;
    mm_loops(L, p, d + 1, iv, acc);
    lb_loop_end(L, &lp);
    return;
  }
  LLVMTypeRef f = L->t_f32;
  lb_store(L, lb_cf(L, f, 0.0), acc, 4);
  LLVMValueRef ao = offset(L, &p->a, iv, p->rank - 1), bo = offset(L, &p->b, iv, p->rank - 2);
  bo = LLVMBuildAdd(L->b, bo,
                    LLVMBuildMul(L->b, iv[p->rank - 1], lb_c64(L, p->b.st[p->rank - 1]), ""), "");
  lb_loop lk;
  lb_loop_begin(L, &lk, lb_c64(L, 0), lb_c64(L, p->a.dims[p->rank - 1]), 1);
  LLVMValueRef x = lb_load(
      L, f,
      lb_gep(L, f, p->a.base,
             LLVMBuildAdd(L->b, ao, LLVMBuildMul(L->b, lk.iv, lb_c64(L, p->a.st[p->rank - 1]), ""),
                          "")),
      4);
  LLVMValueRef w = lb_load(
      L, f,
      lb_gep(L, f, p->b.base,
             LLVMBuildAdd(L->b, bo, LLVMBuildMul(L->b, lk.iv, lb_c64(L, p->b.st[p->rank - 2]), ""),
                          "")),
      4);
  lb_store(L, LLVMBuildFAdd(L->b, lb_load(L, f, acc, 4), LLVMBuildFMul(L->b, x, w, ""), ""), acc,
           4);
  lb_loop_end(L, &lk);
  LLVMValueRef s = LLVMBuildFMul(L->b, lb_load(L, f, acc, 4), lb_cf(L, f, p->alpha), "");
  if (p->has_c) {
    LLVMValueRef c = lb_load(L, f, lb_gep(L, f, p->c.base, offset(L, &p->c, iv, p->rank)), 4);
    s = LLVMBuildFAdd(L->b, s, LLVMBuildFMul(L->b, c, lb_cf(L, f, p->beta), ""), "");
  }
  if (p->has_r)
    s = LLVMBuildFAdd(L->b, s,
                      lb_load(L, f, lb_gep(L, f, p->r.base, offset(L, &p->r, iv, p->rank)), 4), "");
  s = lb_act_apply(L, p->act, p->lo, p->hi, s);
  lb_store(L, s, lb_gep(L, f, p->y.base, offset(L, &p->y, iv, p->rank)), 4);
}

static int gemm_generic(lb_lw *L, lb_op_args *a) {
  const lb_node *n = a->node;
  const lb_view *A = &a->in[0], *B = &a->in[1], *Y = &a->out[0];
  for (uint32_t i = 0; i < n->n_in; i++)
    if (a->in[i].base && a->in[i].dt != LB_DTYPE_F32)
      return lb_diag_err(L->diag, LB_ERR_INPUT, "%s input %u must be f32", lb_op_get(n->op)->name,
                         i);
  int gemm = n->op == LB_OP_GEMM, ta = gemm && n->attr.trans_a, tb = gemm && n->attr.trans_b;
  int64_t M = A->rank == 1 ? 1 : A->dims[A->rank - (ta ? 1 : 2)];
  int64_t K = A->rank == 1 ? A->dims[0] : A->dims[A->rank - (ta ? 2 : 1)];
  int64_t N = B->rank == 1 ? 1 : B->dims[B->rank - (tb ? 2 : 1)];
  int nb = (A->rank > B->rank ? A->rank : B->rank) - 2;
  if (nb < 0) nb = 0;
  int64_t bd[LB_MAX_RANK];
  for (int d = 0; d < nb; d++) bd[d] = Y->dims[d];
  mm p = {.rank = nb + 2,
          .alpha = gemm ? n->attr.alpha : 1.0f,
          .beta = gemm ? n->attr.beta : 0.0f,
          .act = n->attr.act,
          .lo = n->attr.act_min,
          .hi = n->attr.act_max};
  p.a = mm_view(A, ta, p.rank, bd, M, K);
  p.b = mm_view(B, tb, p.rank, bd, K, N);
  lb_view y = *Y; /* drop-in rank: M or N squeezed away by 1-D operands */
  y.rank = p.rank;
  for (int d = 0; d < nb; d++) y.dims[d] = Y->dims[d], y.st[d] = Y->st[d];
  y.dims[nb] = M, y.dims[nb + 1] = N;
  y.st[nb] = A->rank == 1 ? 0 : Y->st[Y->rank - (B->rank == 1 ? 1 : 2)];
  y.st[nb + 1] = B->rank == 1 ? 0 : Y->st[Y->rank - 1];
  p.y = y;
  p.has_c = gemm && opt_in(a, 2);
  if (p.has_c) p.c = lb_view_broadcast(&a->in[2], p.rank, y.dims);
  p.has_r = opt_in(a, 3) != NULL;
  if (p.has_r) p.r = lb_view_broadcast(&a->in[3], p.rank, y.dims);
  LLVMValueRef iv[LB_MAX_RANK + 2];
  mm_loops(L, &p, 0, iv, lb_alloca(L, L->t_f32, NULL));
  return 0;
}

/* Fast path: constant 2-D B, A row-major rows of K, bias from a constant C of N (or 1) values. */
static int gemm_fast_ok(const lb_graph *g, const lb_node *n) {
  const lb_value *A = val(g, n, 0), *B = val(g, n, 1), *C = val(g, n, 2), *R = val(g, n, 3);
  if (A->dtype != LB_DTYPE_F32 || A->rank < 1 || !is_f32_const(B) || B->rank != 2) return 0;
  if (n->op == LB_OP_MATMUL) return 1;
  if (n->attr.trans_a || A->rank != 2) return 0;
  if (C && !(is_f32_const(C) && (lb_value_numel(C) == 1 ||
                                 (C->rank <= 2 && C->dims[C->rank - 1] == lb_value_numel(C)))))
    return 0;
  return !R || R->dtype == LB_DTYPE_F32;
}

static int gemm_fast(lb_lw *L, lb_op_args *a) {
  const lb_node *n = a->node;
  const lb_value *B = val(a->g, n, 1), *C = val(a->g, n, 2);
  int tb = n->op == LB_OP_GEMM && n->attr.trans_b;
  lb_gemm_desc d = {.k = B->dims[tb ? 1 : 0],
                    .n = B->dims[tb ? 0 : 1],
                    .act = n->attr.act,
                    .act_min = n->attr.act_min,
                    .act_max = n->attr.act_max};
  d.m = lb_view_numel(&a->in[0]) / d.k;
  d.lda = d.k, d.ldc = d.n, d.ldr = d.n;
  d.has_res = opt_in(a, 3) != NULL;
  float alpha = n->op == LB_OP_GEMM ? n->attr.alpha : 1.0f;
  size_t kn = (size_t)(d.k * d.n), sz = lb_pack_gemm_b_size(&L->kcfg, d.k, d.n);
  float *tmp = lb_malloc(kn * sizeof(float) + sz + (size_t)d.n * sizeof(float));
  if (!tmp || sz == SIZE_MAX) {
    lb_free(tmp);
    return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory packing weights");
  }
  const float *bw = B->data;
  for (size_t i = 0; i < kn; i++) tmp[i] = bw[i] * alpha;
  float *packed = tmp + kn, *bias = packed + sz / sizeof(float);
  lb_pack_gemm_b(&L->kcfg, d.k, d.n, tmp, tb, packed);
  LLVMValueRef wp = lb_const_blob(L, packed, sz, "w"), bp = NULL;
  if (C) {
    const float *c = C->data;
    int64_t cn = lb_value_numel(C);
    for (int64_t j = 0; j < d.n; j++) bias[j] = n->attr.beta * c[cn == 1 ? 0 : j];
    bp = lb_const_blob(L, bias, (size_t)d.n * sizeof(float), "bias");
    d.has_bias = 1;
  }
  lb_free(tmp);
  lb_kern_out k;
  LB_TRY(lb_emit_gemm_f32(L->mod, &L->kcfg, &d, &k, L->diag));
  LLVMSetLinkage(k.fn, LLVMInternalLinkage);
  if (k.scratch_bytes > a->scratch_bytes) a->scratch_bytes = k.scratch_bytes;
  LLVMValueRef args[6] = {
      a->in[0].base, wp, bp, opt_in(a, 3), a->out[0].base, k.scratch_bytes ? a->scratch : NULL};
  call6(L, k.fn, args);
  return 0;
}

int lb_weights_packed(const lb_graph *g, const lb_node *n, uint32_t i) {
  if (n->op == LB_OP_CONV) return i == 1 && conv_kind(g, n) != 0;
  if (n->op == LB_OP_GEMM || n->op == LB_OP_MATMUL) return (i == 1 || i == 2) && gemm_fast_ok(g, n);
  return 0;
}

/* MatMul of two run-time f32 matrices (rank >= 2, canonical): the GEMM kernel reading a plain
 * row-major B, called once per (broadcast) batch index. */
static int matmul_rt_ok(const lb_graph *g, const lb_node *n) {
  const lb_value *A = val(g, n, 0), *B = val(g, n, 1);
  return n->op == LB_OP_MATMUL && A->dtype == LB_DTYPE_F32 && B->dtype == LB_DTYPE_F32 &&
         A->rank >= 2 && B->rank >= 2 && !B->data;
}

typedef struct mm_rt {
  const lb_view *A, *B, *Y;
  int nb;                                   /* batch dims of Y */
  int64_t sa[LB_MAX_RANK], sb[LB_MAX_RANK]; /* A's and B's element stride per batch dim */
  LLVMValueRef fn;
} mm_rt;

static void mm_rt_loops(lb_lw *L, lb_op_args *a, mm_rt *m, int d, LLVMValueRef oa, LLVMValueRef ob,
                        LLVMValueRef oy) {
  if (d == m->nb) {
    LLVMValueRef args[6] = {lb_gep(L, L->t_f32, m->A->base, oa),
                            lb_gep(L, L->t_f32, m->B->base, ob),
                            NULL,
                            NULL,
                            lb_gep(L, L->t_f32, m->Y->base, oy),
                            a->scratch};
    call6(L, m->fn, args);
    return;
  }
  lb_loop lp;
  lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, m->Y->dims[d]), 1);
  LLVMValueRef i = lp.iv;
  mm_rt_loops(L, a, m, d + 1,
              LLVMBuildAdd(L->b, oa, LLVMBuildMul(L->b, i, lb_c64(L, m->sa[d]), ""), ""),
              LLVMBuildAdd(L->b, ob, LLVMBuildMul(L->b, i, lb_c64(L, m->sb[d]), ""), ""),
              LLVMBuildAdd(L->b, oy, LLVMBuildMul(L->b, i, lb_c64(L, m->Y->st[d]), ""), ""));
  lb_loop_end(L, &lp);
}

static int matmul_rt(lb_lw *L, lb_op_args *a) {
  const lb_view *A = &a->in[0], *B = &a->in[1], *Y = &a->out[0];
  mm_rt m = {.A = A, .B = B, .Y = Y, .nb = Y->rank - 2};
  lb_gemm_desc d = {.m = A->dims[A->rank - 2],
                    .k = A->dims[A->rank - 1],
                    .n = B->dims[B->rank - 1],
                    .act = a->node->attr.act,
                    .act_min = a->node->attr.act_min,
                    .act_max = a->node->attr.act_max,
                    .b_rowmajor = 1};
  if (B->rank == 2) { /* A's batch dims fold into M: one call */
    d.m = lb_view_numel(A) / d.k;
    m.nb = 0;
  }
  d.lda = d.k, d.ldc = d.ldr = d.ldb = d.n;
  for (int i = 0; i < m.nb; i++) { /* right-aligned batch dims; size-1 dims broadcast */
    int ka = i - (m.nb - (A->rank - 2)), kb = i - (m.nb - (B->rank - 2));
    m.sa[i] = ka >= 0 && A->dims[ka] > 1 ? A->st[ka] : 0;
    m.sb[i] = kb >= 0 && B->dims[kb] > 1 ? B->st[kb] : 0;
  }
  lb_kern_out k;
  LB_TRY(lb_emit_gemm_f32(L->mod, &L->kcfg, &d, &k, L->diag));
  LLVMSetLinkage(k.fn, LLVMInternalLinkage);
  if (k.scratch_bytes > a->scratch_bytes) a->scratch_bytes = k.scratch_bytes;
  m.fn = k.fn;
  mm_rt_loops(L, a, &m, 0, lb_c64(L, 0), lb_c64(L, 0), lb_c64(L, 0));
  return 0;
}

int lb_lower_gemm(lb_lw *L, lb_op_args *a) {
  if (gemm_fast_ok(a->g, a->node)) return gemm_fast(L, a);
  return matmul_rt_ok(a->g, a->node) ? matmul_rt(L, a) : gemm_generic(L, a);
}
