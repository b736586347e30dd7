/* Lowering of the integer nodes of a realized graph (lb_int_node: conv, gemm, matmul, add,
 * sub, mul, div by a constant, relu, clip, pools, reduce_mean, table activations with i8/u8
 * values carrying lb_quant parameters).
 * MAC ops become packed integer GEMMs (qkernels.h) over activations packed per row block into
 * the step's scratch; depthwise convs are in ops_int_dw.c. Invariant: every
 * output element is the interpreter's (interp_int.c): the same int32 accumulator, the same
 * multipliers (lb_qmul in C at compile time) and lb_requantize's float steps. */
#include <string.h>

#include "lower.h"
#include "ops_int.h"
#include "qkernels.h"
#include "subkernels.h"
#include "quant.h"

/* Output range after the node's fused activation (per-tensor output parameters). */
static void out_bounds(const lb_op_args *a, int32_t *lo, int32_t *hi) {
  const lb_value *y = &a->g->values[a->node->out[0]];
  lb_qact_bounds(a->node->attr.act, a->node->attr.act_min, a->node->attr.act_max, y->dtype,
                 qs(y, 0), qz(y, 0), lo, hi);
}

/* ---- row maps: row index -> element offset -------------------------------------------- */

typedef struct rowmap {
  int n; /* outermost first */
  int64_t ext[LB_MAX_RANK], st[LB_MAX_RANK];
} rowmap;

/* m with each dim merged into the next inner one where they are laid out contiguously (and
 * dims of extent 1 dropped): an NHWC output's rows are then one multiply, not a udiv/urem
 * chain per tile row. */
static rowmap rowmap_merged(const rowmap *m) {
  rowmap r = {0};
  for (int i = 0; i < m->n; i++) {
    if (m->ext[i] == 1 && i < m->n - 1) continue;
    if (r.n > 0 && r.st[r.n - 1] == m->ext[i] * m->st[i]) {
      r.ext[r.n - 1] *= m->ext[i], r.st[r.n - 1] = m->st[i];
      continue;
    }
    r.ext[r.n] = m->ext[i], r.st[r.n++] = m->st[i];
  }
  return r;
}

static LLVMValueRef rowmap_off(lb_lw *L, const rowmap *map, LLVMValueRef r) {
  rowmap mm = rowmap_merged(map), *m = &mm;
  LLVMValueRef off = lb_c64(L, 0);
  for (int i = m->n - 1; i >= 0; i--) {
    LLVMValueRef idx = i == 0 ? r : LLVMBuildURem(L->b, r, lb_c64(L, m->ext[i]), "");
    if (i > 0) r = LLVMBuildUDiv(L->b, r, lb_c64(L, m->ext[i]), "");
    off = add64(L, off, mul64(L, idx, m->st[i]));
  }
  return off;
}

typedef struct rows2 {
  rowmap out, res;
} rows2;

static LLVMValueRef row_off(lb_lw *L, LLVMValueRef r, void *ud, int residual) {
  rows2 *m = ud;
  return rowmap_off(L, residual ? &m->res : &m->out, r);
}

/* ---- activation packing --------------------------------------------------------------- */

static LLVMTypeRef a_elem(lb_lw *L, const apack *p) {
  return p->s->wide ? LLVMInt16TypeInContext(L->ctx) : L->t_i8;
}

static LLVMValueRef a_xform(lb_lw *L, const apack *p, LLVMValueRef x) {
  LLVMTypeRef t = LLVMTypeOf(x);
  int lanes = LLVMGetTypeKind(t) == LLVMVectorTypeKind ? (int)LLVMGetVectorSize(t) : 1;
  if (p->s->wide) {
    LLVMTypeRef wt = LLVMInt16TypeInContext(L->ctx);
    if (lanes > 1) wt = vec(wt, lanes);
    return LLVMBuildSub(L->b, ext8(L, x, p->dt, wt), lb_ci(L, wt, p->zx), "");
  }
  int32_t delta = lb_qk_act_pack(p->s, p->dt, 0, p->zx);
  return delta ? LLVMBuildXor(L->b, x, lb_ci(L, t, 0x80), "") : x;
}

/* dst[i..i+16) = packed src[i..i+16). */
static void copy16(lb_lw *L, const apack *p, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef i) {
  LLVMValueRef x = lb_load(L, vec(L->t_i8, 16), lb_gep(L, L->t_i8, src, i), 1);
  lb_store(L, a_xform(L, p, x), lb_gep(L, a_elem(L, p), dst, i), 1);
}

/* dst[0..count) = packed src[i * stride]. A contiguous run of 16 or more ends with one vector
 * overlapping the previous one (the same values again) instead of a scalar tail. */
static void copy_run(lb_lw *L, const apack *p, LLVMValueRef dst, LLVMValueRef src, int64_t count,
                     int64_t stride) {
  LLVMTypeRef et = a_elem(L, p);
  int64_t nv = stride == 1 ? count / 16 * 16 : 0;
  if (nv > 0) {
    lb_loop lp;
    lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, nv), 16);
    copy16(L, p, dst, src, lp.iv);
    lb_loop_end(L, &lp);
    if (nv < count) copy16(L, p, dst, src, lb_c64(L, count - 16));
    return;
  }
  lb_loop lp;
  lb_loop_begin(L, &lp, lb_c64(L, nv), lb_c64(L, count), 1);
  LLVMValueRef x = lb_load(L, L->t_i8, lb_gep(L, L->t_i8, src, mul64(L, lp.iv, stride)), 1);
  lb_store(L, a_xform(L, p, x), lb_gep(L, et, dst, lp.iv), 1);
  lb_loop_end(L, &lp);
}

static void fill_run(lb_lw *L, const apack *p, LLVMValueRef dst, int64_t count) {
  if (count <= 0) return;
  int64_t esz = p->s->wide ? 2 : 1;
  LLVMValueRef byte = LLVMConstInt(L->t_i8, (uint64_t)(p->s->wide ? 0 : p->c & 0xff), 0);
  LLVMBuildMemSet(L->b, dst, byte, lb_c64(L, count * esz), 1);
}

/* Packs rows [row0, row0 + rows) of A (row r at rowmap offset, k stride sk). Rows that follow
 * each other in x with nothing between them (a 1x1 conv over NHWC, a contiguous matrix) and
 * no K padding are one run: one vector loop for the block instead of a loop per row, which
 * for K = 16 cost more than the GEMM. */
static void pack_rows(lb_lw *L, const apack *p, const rowmap *am, LLVMValueRef x, int64_t sk,
                      int64_t K, int64_t Kp, LLVMValueRef dst, LLVMValueRef row0,
                      LLVMValueRef rows) {
  LLVMTypeRef et = a_elem(L, p);
  rowmap m = rowmap_merged(am);
  if (m.n == 1 && m.st[0] == K && sk == 1 && Kp == K && LLVMIsAConstantInt(rows)) {
    LLVMValueRef src = lb_gep(L, L->t_i8, x, mul64(L, row0, K));
    copy_run(L, p, dst, src, LLVMConstIntGetSExtValue(rows) * K, 1);
    return;
  }
  lb_loop lr;
  lb_loop_begin(L, &lr, lb_c64(L, 0), rows, 1);
  LLVMValueRef src = lb_gep(L, L->t_i8, x, rowmap_off(L, am, add64(L, row0, lr.iv)));
  LLVMValueRef d = lb_gep(L, et, dst, mul64(L, lr.iv, Kp));
  copy_run(L, p, d, src, K, sk);
  fill_run(L, p, lb_gep(L, et, d, lb_c64(L, K)), Kp - K);
  lb_loop_end(L, &lr);
}

/* ---- kernel choice and constant blobs ----------------------------------------------------- */

static int choose(lb_lw *L, const lb_op_args *a, lb_dtype wdt, int narrow_ok, lb_qk_shape *s) {
  int kind = lb_spec_opkind_of(a->g, (uint32_t)(a->node - a->g->nodes));
  const lb_value *x = in_val(a, 0);
  /* packed i4/i2 weights run on the int8 combination's kernel shape; lb_subw_shape then swaps
   * in the sub-byte kernel from the values, as for i4/i2 values in i8 containers */
  if (lb_dtype_bits(wdt) < 8) wdt = LB_DTYPE_I8;
  const lb_spec_combo *c =
      kind >= 0 ? lb_spec_find(L->spec, (lb_spec_opkind)kind, x->dtype, wdt) : NULL;
  return lb_qk_choose(L->spec, c ? c->kernel : LB_KERNEL_GENERIC, narrow_ok, s, L->diag);
}

/* The spec's L2 size (512 KiB when it gives none). */
static int64_t l2_bytes(lb_lw *L) {
  int64_t l2 = lb_spec_cache_bytes(L->spec, 2);
  return l2 > 0 ? l2 : 512 * 1024;
}

/* Block of rows packed at once: about 256 KiB of packed A, a multiple of mr, or all rows when
 * they fit half the L2, so that B (which at batch 1 exceeds L2 in the late layers) streams
 * from L3 once: ResNet-18 layer4 (49 rows x 4608 i16) takes 12% less time than in 2 blocks,
 * while larger blocks elsewhere measured 3% slower. */
static int64_t block_rows(lb_lw *L, const lb_qk_shape *s, int64_t Kp, int64_t M) {
  int64_t esz = s->wide ? 2 : 1, row = Kp * esz;
  int64_t mb = M * row <= l2_bytes(L) / 2 ? M + s->mr - 1 : (256 * 1024) / row;
  mb = mb / s->mr * s->mr;
  if (mb < s->mr) mb = s->mr;
  int64_t mcap = (M + s->mr - 1) / s->mr * s->mr;
  return mb < mcap ? mb : mcap;
}

typedef struct packed_c {
  LLVMValueRef b, bias, mult;
  int64_t Kp, Np;
  lb_subw sub; /* (kern4) b compressed to i4/i2 fields when the weights fit; bits 0: int8 */
  int nosat;   /* lb_qgemm_job.nosat */
} packed_c;

/* Rows of A at or below which a wide kernel keeps B as s8 (lb_qk_shape.b8): B is then read
 * about once per run, so halving its bytes wins (ResNet-18's fc, M = 1: 0.030 -> 0.017 ms);
 * with more rows the in-kernel vpmovsxbw costs ~9% of a compute-bound layer and saves nothing
 * measurable (layer4, 49 rows). */
#define B8_MAX_ROWS 16

/* Narrows wide packed B (count i16 values, all in s8) to s8 in place. */
static void narrow_b(void *b, int64_t count) {
  for (int64_t i = 0; i < count; i++) ((int8_t *)b)[i] = (int8_t)((const int16_t *)b)[i];
}

/* Packs G groups of w' (each K x N) and puts B, folded bias and multipliers in globals; rows:
 * how many rows of A use them (sets s->b8, see B8_MAX_ROWS). */
static int pack_groups(lb_lw *L, lb_qk_shape *s, const int16_t *wp, int64_t G, int64_t K,
                       int64_t N, const int32_t *bias, const float *mult, lb_dtype act,
                       int32_t zx, int64_t rows, packed_c *out) {
  lb_qpacked pk[1];
  int64_t Kp = (K + s->kr - 1) / s->kr * s->kr, Np = (N + s->nr - 1) / s->nr * s->nr;
  s->b8 = 0; /* packed as i16 first: lb_subw_try reads that layout */
  size_t esz = s->wide ? 2 : 1, gb = (size_t)(Kp * Np) * esz;
  char *b = lb_calloc((size_t)G, gb ? gb : 1);
  int32_t *bb = lb_calloc((size_t)(G * Np), sizeof *bb);
  float *mm = lb_calloc((size_t)(G * Np), sizeof *mm);
  int rc = b && bb && mm ? 0 : LB_ERR_NOMEM;
  for (int64_t g = 0; g < G && !rc; g++) {
    rc = lb_qpack(s, wp + g * K * N, K, N, bias ? bias + g * N : NULL, act, zx, pk);
    if (rc) break;
    memcpy(b + (size_t)g * gb, pk->b, gb);
    memcpy(bb + g * Np, pk->bias, (size_t)Np * sizeof *bb);
    memcpy(mm + g * Np, mult + g * N, (size_t)N * sizeof *mm);
    lb_qpacked_free(pk);
  }
  if (!rc) {
    rc = lb_subw_try(L, s, b, G, Kp, Np, &out->sub, &out->b); /* (kern4) sub-byte weights */
    if (!rc && !out->sub.bits && s->wide && rows <= B8_MAX_ROWS &&
        lb_qk_fits_s8((const int16_t *)b, (int64_t)(G * gb / 2))) {
      s->b8 = 1;
      narrow_b(b, (int64_t)(G * gb / 2));
      gb /= 2;
    }
    s->pf_next = (int64_t)gb > l2_bytes(L); /* see lb_qk_shape.pf_next */
    if (!rc && !out->sub.bits) out->b = lb_const_blob(L, b, G * gb, "qb");
    out->bias = lb_const_blob(L, bb, (size_t)(G * Np) * sizeof *bb, "qbias");
    out->mult = lb_const_blob(L, mm, (size_t)(G * Np) * sizeof *mm, "qmul");
    out->Kp = Kp, out->Np = Np;
  }
  lb_free(b), lb_free(bb), lb_free(mm);
  if (rc) lb_diag_err(L->diag, rc, "out of memory packing integer weights");
  return rc;
}

/* ---- conv ------------------------------------------------------------------------------- */

static int64_t or1(int64_t v) { return v > 0 ? v : 1; }

/* 1-D convs are 2-D with H = 1 (stride 0 on the missing dim). */
static void view4(const lb_view *v, int64_t *st) {
  if (v->rank == 4) {
    memcpy(st, v->st, 4 * sizeof *st);
  } else {
    st[0] = v->st[0], st[1] = v->st[1], st[2] = 0, st[3] = v->st[2];
  }
}

void lb_int_conv_geo(const lb_op_args *a, cgeo *g) {
  const lb_view *x = &a->in[0], *y = &a->out[0];
  const lb_value *w = in_val(a, 1);
  const lb_attrs *at = &a->node->attr;
  int two = x->rank == 4;
  memset(g, 0, sizeof *g);
  g->N = x->dims[0], g->C = x->dims[1], g->H = two ? x->dims[2] : 1, g->W = x->dims[x->rank - 1];
  g->M = y->dims[1], g->OH = two ? y->dims[2] : 1, g->OW = y->dims[y->rank - 1];
  g->KH = two ? w->dims[2] : 1, g->KW = w->dims[w->rank - 1];
  g->sh = two ? or1(at->strides[0]) : 1, g->sw = or1(at->strides[two ? 1 : 0]);
  g->dh = two ? or1(at->dilations[0]) : 1, g->dw = or1(at->dilations[two ? 1 : 0]);
  g->ph = two ? at->pads[0] : 0, g->pw = at->pads[two ? 1 : 0];
  g->G = or1(at->group), g->cg = g->C / g->G, g->mg = g->M / g->G;
  view4(x, g->xs), view4(y, g->ys);
  if (in_val(a, 3)) view4(&a->in[3], g->rs);
}

/* if (cond) A else B: if_else positions the builder in the then-block; the caller emits A,
 * calls or_else, emits B, then calls join_at. */
typedef struct ifelse {
  LLVMBasicBlockRef other, join;
} ifelse;

static ifelse if_else(lb_lw *L, LLVMValueRef cond) {
  ifelse f = {LLVMAppendBasicBlockInContext(L->ctx, L->fn, "else"),
              LLVMAppendBasicBlockInContext(L->ctx, L->fn, "join")};
  LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(L->ctx, L->fn, "then");
  LLVMBuildCondBr(L->b, cond, then, f.other);
  LLVMPositionBuilderAtEnd(L->b, then);
  return f;
}

static void or_else(lb_lw *L, const ifelse *f) {
  LLVMBuildBr(L->b, f->join);
  LLVMPositionBuilderAtEnd(L->b, f->other);
}

static void join_at(lb_lw *L, const ifelse *f) {
  LLVMBuildBr(L->b, f->join);
  LLVMPositionBuilderAtEnd(L->b, f->join);
}

/* One im2col row, taps of kernel row kh (ih its input row) one by one: drow = the packed row,
 * xb the offset of (batch, first channel). */
static void pack_taps(lb_lw *L, const apack *p, const cgeo *g, LLVMValueRef x, LLVMValueRef drow,
                      LLVMValueRef xb, LLVMValueRef ih, LLVMValueRef ow, LLVMValueRef kh) {
  LLVMTypeRef et = a_elem(L, p);
  lb_loop lw;
  lb_loop_begin(L, &lw, lb_c64(L, 0), lb_c64(L, g->KW), 1);
  LLVMValueRef iw = add64(L, mul64(L, ow, g->sw), mul64(L, lw.iv, g->dw));
  iw = LLVMBuildSub(L->b, iw, lb_c64(L, g->pw), "");
  LLVMValueRef tap = add64(L, mul64(L, kh, g->KW), lw.iv);
  LLVMValueRef d = lb_gep(L, et, drow, mul64(L, tap, g->cg));
  LLVMValueRef ok = LLVMBuildAnd(L->b, LLVMBuildICmp(L->b, LLVMIntULT, ih, lb_c64(L, g->H), ""),
                                 LLVMBuildICmp(L->b, LLVMIntULT, iw, lb_c64(L, g->W), ""), "");
  LLVMValueRef off = add64(L, xb, add64(L, mul64(L, ih, g->xs[2]), mul64(L, iw, g->xs[3])));
  ifelse f = if_else(L, ok);
  copy_run(L, p, d, lb_gep(L, L->t_i8, x, off), g->cg, g->xs[1]);
  or_else(L, &f);
  fill_run(L, p, d, g->cg);
  join_at(L, &f);
  lb_loop_end(L, &lw);
}

/* Whether a whole kernel row is one contiguous run of the input (channels, then taps next to
 * each other: NHWC with one group, no dilation along w). */
static int taps_contiguous(const cgeo *g) {
  return g->KW > 1 && g->xs[1] == 1 && g->xs[3] == g->cg && g->dw == 1;
}

/* Offset one past the last element of x. */
static int64_t x_extent(const cgeo *g) {
  return (g->N - 1) * g->xs[0] + (g->C - 1) * g->xs[1] + (g->H - 1) * g->xs[2] +
         (g->W - 1) * g->xs[3] + 1;
}

/* The KW * cg contiguous elements at x + off to d. A run shorter than 16 (MobileNetV2's first
 * conv: 9) is one 16-element vector instead of a scalar loop where that stays inside x: the
 * extra elements land in the next kernel row's slot or the K padding, written after this, or
 * (last row of a block) in the scratch's 64 spare bytes. */
static void short_run(lb_lw *L, const apack *p, const cgeo *g, LLVMValueRef d, LLVMValueRef x,
                      LLVMValueRef off) {
  int64_t n = g->KW * g->cg;
  LLVMValueRef src = lb_gep(L, L->t_i8, x, off);
  if (n >= 16 || x_extent(g) < 16) {
    copy_run(L, p, d, src, n, 1);
    return;
  }
  LLVMValueRef fits = LLVMBuildICmp(L->b, LLVMIntSLE, off, lb_c64(L, x_extent(g) - 16), "");
  ifelse f = if_else(L, fits);
  copy16(L, p, d, src, lb_c64(L, 0));
  or_else(L, &f);
  copy_run(L, p, d, src, n, 1);
  join_at(L, &f);
}

/* Kernel row kh of one im2col row: a single copy of KW * cg elements when the row lies inside
 * the input and is contiguous (conv1 of ResNet-18, 7 x 3 channels: one run of 21 instead of 7
 * of 3), else tap by tap. */
static void pack_kernel_row(lb_lw *L, const apack *p, const cgeo *g, LLVMValueRef x,
                            LLVMValueRef drow, LLVMValueRef xb, LLVMValueRef oh, LLVMValueRef ow,
                            LLVMValueRef kh) {
  LLVMValueRef ih = add64(L, mul64(L, oh, g->sh), mul64(L, kh, g->dh));
  ih = LLVMBuildSub(L->b, ih, lb_c64(L, g->ph), "");
  if (!taps_contiguous(g) || g->KW > g->W) {
    pack_taps(L, p, g, x, drow, xb, ih, ow, kh);
    return;
  }
  LLVMValueRef iw0 = LLVMBuildSub(L->b, mul64(L, ow, g->sw), lb_c64(L, g->pw), "");
  LLVMValueRef in = LLVMBuildAnd(
      L->b, LLVMBuildICmp(L->b, LLVMIntULT, ih, lb_c64(L, g->H), ""),
      LLVMBuildICmp(L->b, LLVMIntULT, iw0, lb_c64(L, g->W - g->KW + 1), ""), "");
  LLVMValueRef off = add64(L, xb, add64(L, mul64(L, ih, g->xs[2]), mul64(L, iw0, g->xs[3])));
  LLVMValueRef d = lb_gep(L, a_elem(L, p), drow, mul64(L, kh, g->KW * g->cg));
  ifelse f = if_else(L, in);
  short_run(L, p, g, d, x, off);
  or_else(L, &f);
  pack_taps(L, p, g, x, drow, xb, ih, ow, kh);
  join_at(L, &f);
}

/* Packs rows [row0, row0 + rows) of the im2col matrix of group channels [c0, c0 + cg), K in
 * (kh, kw, c) order, taps in the padding set to the packed zero. */
static void pack_conv_rows(lb_lw *L, const apack *p, const cgeo *g, LLVMValueRef x,
                           LLVMValueRef dst, int64_t Kp, LLVMValueRef row0, LLVMValueRef rows,
                           LLVMValueRef c0) {
  LLVMTypeRef et = a_elem(L, p);
  lb_loop lr;
  lb_loop_begin(L, &lr, lb_c64(L, 0), rows, 1);
  LLVMValueRef m = add64(L, row0, lr.iv), hw = lb_c64(L, g->OH * g->OW);
  LLVMValueRef b = LLVMBuildUDiv(L->b, m, hw, ""), rem = LLVMBuildURem(L->b, m, hw, "");
  LLVMValueRef oh = LLVMBuildUDiv(L->b, rem, lb_c64(L, g->OW), "");
  LLVMValueRef ow = LLVMBuildURem(L->b, rem, lb_c64(L, g->OW), "");
  LLVMValueRef drow = lb_gep(L, et, dst, mul64(L, lr.iv, Kp));
  LLVMValueRef xb = add64(L, mul64(L, b, g->xs[0]), mul64(L, c0, g->xs[1]));
  lb_loop lh;
  lb_loop_begin(L, &lh, lb_c64(L, 0), lb_c64(L, g->KH), 1);
  pack_kernel_row(L, p, g, x, drow, xb, oh, ow, lh.iv);
  lb_loop_end(L, &lh);
  int64_t K = g->KH * g->KW * g->cg;
  fill_run(L, p, lb_gep(L, et, drow, lb_c64(L, K)), Kp - K);
  lb_loop_end(L, &lr);
}

/* w'[g][k][n] for k in (kh, kw, c) order, n the output channel within the group. */
static int16_t *conv_wp(const lb_value *w, const cgeo *g) {
  int64_t K = g->KH * g->KW * g->cg;
  int16_t *wp = lb_calloc((size_t)(g->G * K * g->mg), sizeof *wp);
  if (!wp) return NULL;
  for (int64_t m = 0; m < g->M; m++) {
    int64_t gi = m / g->mg, n = m % g->mg;
    for (int64_t c = 0; c < g->cg; c++)
      for (int64_t t = 0; t < g->KH * g->KW; t++) {
        int64_t src = (m * g->cg + c) * g->KH * g->KW + t;
        int32_t v = lb_qweight_at(w, src);
        wp[(gi * K + t * g->cg + c) * g->mg + n] = (int16_t)(v - qz(w, m));
      }
  }
  return wp;
}

static void mac_common(const lb_op_args *a, qmac *q, uint32_t res_in) {
  const lb_value *x = in_val(a, 0), *y = &a->g->values[a->node->out[0]], *r = in_val(a, res_in);
  out_bounds(a, &q->lo, &q->hi);
  q->zy = qz(y, 0);
  q->mr = r ? lb_qmul(qs(r, 0), 1.0f, qs(y, 0)) : 0.0f;
  q->zr = r ? qz(r, 0) : 0;
  q->ap = (apack){&q->s, x->dtype, qz(x, 0), lb_qk_act_zero(&q->s, x->dtype, qz(x, 0))};
}

int lb_int_const_i32(lb_lw *L, const lb_value *b, int64_t n, const int32_t **out) {
  *out = NULL;
  if (!b) return 0;
  if (!b->data || b->dtype != LB_DTYPE_I32 || (lb_value_numel(b) != n && lb_value_numel(b) != 1))
    return lb_diag_err(L->diag, LB_ERR_INPUT, "integer bias must be an i32 constant of %lld values",
                       (long long)n);
  *out = b->data;
  return 0;
}

/* 1x1 convs that never read the padding are GEMMs over a strided view of x: *am maps their A
 * rows (channel stride xs[1]). */
static int conv_pointwise(const cgeo *g, rowmap *am) {
  if (g->KH != 1 || g->KW != 1 || g->ph || g->pw || (g->OH - 1) * g->sh >= g->H ||
      (g->OW - 1) * g->sw >= g->W)
    return 0;
  *am = (rowmap){3, {g->N, g->OH, g->OW}, {g->xs[0], g->sh * g->xs[2], g->sw * g->xs[3]}};
  return 1;
}

/* Packs A rows [row0, row0 + rows) of group gi into the scratch. */
static void conv_pack(lb_lw *L, const lb_op_args *a, const cgeo *g, const qmac *q, int64_t Kp,
                      LLVMValueRef row0, LLVMValueRef rows, LLVMValueRef gi) {
  LLVMValueRef c0 = mul64(L, gi, g->cg);
  rowmap am;
  if (conv_pointwise(g, &am)) {
    LLVMValueRef x = lb_gep(L, L->t_i8, a->in[0].base, mul64(L, c0, g->xs[1]));
    pack_rows(L, &q->ap, &am, x, g->xs[1], g->cg, Kp, a->scratch, row0, rows);
  } else {
    pack_conv_rows(L, &q->ap, g, a->in[0].base, a->scratch, Kp, row0, rows, c0);
  }
}

/* lb_qgemm_job.nosat for G groups of w' (K x N each, bias and mult G * N values): x86, the
 * fp32 requantize method, and the bound holds for every group. */
static int gemm_nosat(lb_lw *L, const lb_op_args *a, const int16_t *wp, int64_t G, int64_t K,
                      int64_t N, const int32_t *bias, const float *mult, float mr) {
  const char *t = lb_spec_llvm_triple(L->spec);
  if (!wp || !t || strncmp(t, "x86_64", 6) || lb_requant_integer(L->rq))
    return 0;
  for (int64_t g = 0; g < G; g++)
    if (!lb_qgemm_nosat(wp + g * K * N, K, N, bias ? bias + g * N : NULL, mult + g * N, mr))
      return 0;
  return 1;
}

static int conv_gemm(lb_lw *L, lb_op_args *a, const cgeo *g, qmac *q, const int16_t *wp,
                     const float *mult) {
  const lb_value *bias = in_val(a, 2);
  const int32_t *bd;
  LB_TRY(lb_int_const_i32(L, bias, g->M, &bd));
  int64_t K = g->KH * g->KW * g->cg;
  packed_c pc = {0};
  int64_t Mrows = g->N * g->OH * g->OW;
  LB_TRY(pack_groups(L, &q->s, wp, g->G, K, g->mg, bd, mult, q->ap.dt, q->ap.zx, Mrows, &pc));
  int64_t MB = block_rows(L, &q->s, pc.Kp, Mrows);
  int64_t esz = q->s.wide ? 2 : 1;
  a->scratch_bytes = (size_t)(MB * pc.Kp * esz) + 64;
  LLVMValueRef sbuf = lb_subw_place(L, &pc.sub, &q->s, pc.Kp, a->scratch, &a->scratch_bytes);
  rows2 rm = {{3, {g->N, g->OH, g->OW}, {g->ys[0], g->ys[2], g->ys[3]}},
              {3, {g->N, g->OH, g->OW}, {g->rs[0], g->rs[2], g->rs[3]}}};
  lb_loop lg, lm;
  lb_loop_begin(L, &lg, lb_c64(L, 0), lb_c64(L, g->G), 1);
  LLVMTypeRef et = lb_qk_b_bytes(&q->s) == 2 ? LLVMInt16TypeInContext(L->ctx) : L->t_i8;
  LLVMValueRef gnp = mul64(L, lg.iv, pc.Np), gm = mul64(L, lg.iv, g->mg);
  lb_qgemm_job j = {&q->s, pc.Kp, g->mg, pc.Np,
                    lb_gep(L, et, pc.b, mul64(L, gnp, pc.Kp)),
                    lb_gep(L, L->t_i32, pc.bias, gnp), lb_gep(L, L->t_f32, pc.mult, gnp),
                    q->zy, q->lo, q->hi, a->out[0].dt,
                    lb_gep(L, lb_lw_type(L, a->out[0].dt), a->out[0].base, mul64(L, gm, g->ys[1])),
                    g->ys[1],
                    NULL, g->rs[1], LB_DTYPE_I8, q->zr, q->mr, row_off, &rm, 0};
  if (in_val(a, 3)) {
    j.res = lb_gep(L, L->t_i8, a->in[3].base, mul64(L, gm, g->rs[1]));
    j.res_dt = a->in[3].dt;
  }
  if (pc.sub.bits) j.b = lb_subw_group(L, &pc.sub, pc.b, lg.iv);
  j.nosat = gemm_nosat(L, a, wp, g->G, K, g->mg, bd, mult, q->mr);
  lb_loop_begin(L, &lm, lb_c64(L, 0), lb_c64(L, Mrows), MB); /* whole blocks only */
  conv_pack(L, a, g, q, pc.Kp, lm.iv, lb_c64(L, MB), lg.iv);
  lb_subw_gemm(L, &j, &pc.sub, sbuf, a->scratch, lm.iv, lb_c64(L, MB));
  lb_loop_end(L, &lm);
  /* the last, partial block of rows */
  if (Mrows % MB) {
    LLVMValueRef r0 = lb_c64(L, Mrows / MB * MB), rr = lb_c64(L, Mrows % MB);
    conv_pack(L, a, g, q, pc.Kp, r0, rr, lg.iv);
    lb_subw_gemm(L, &j, &pc.sub, sbuf, a->scratch, r0, rr);
  }
  lb_loop_end(L, &lg);
  return 0;
}

static int lower_conv(lb_lw *L, lb_op_args *a) {
  const lb_value *x = in_val(a, 0), *w = in_val(a, 1), *y = &a->g->values[a->node->out[0]];
  if (a->in[0].rank != 3 && a->in[0].rank != 4)
    return lb_diag_err(L->diag, LB_ERR_INPUT, "integer conv supports 1-D and 2-D only");
  if (!w->data || (w->dtype != LB_DTYPE_I8 && w->dtype != LB_DTYPE_U8 && !lb_subbyte_weight(w)))
    return lb_diag_err(L->diag, LB_ERR_INPUT, "integer conv needs constant 8-bit or packed "
                       "4/2-bit weights");
  cgeo g;
  lb_int_conv_geo(a, &g);
  int16_t *wp = conv_wp(w, &g);
  float *mult = lb_calloc((size_t)(g.M ? g.M : 1), sizeof *mult);
  int rc = wp && mult ? 0 : lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  for (int64_t m = 0; !rc && m < g.M; m++) mult[m] = lb_qmul(qs(x, 0), qs(w, m), qs(y, 0));
  qmac q;
  int narrow = rc ? 0 : lb_qk_fits_s8(wp, g.G * g.KH * g.KW * g.cg * g.mg);
  if (!rc) rc = choose(L, a, w->dtype, narrow, &q.s);
  if (!rc && !lb_int_dw_ok(&g)) /* (k4) sub-byte weights: the native kernels' packing shape */
    lb_subw_shape(L, wp, g.G * g.KH * g.KW * g.cg * g.mg, &q.s);
  if (!rc) {
    mac_common(a, &q, 3);
    rc = lb_int_dw_ok(&g) ? lb_int_conv_dw(L, a, &g, &q, wp, mult)
                          : conv_gemm(L, a, &g, &q, wp, mult);
  }
  lb_free(wp), lb_free(mult);
  return rc;
}

/* ---- gemm and matmul ------------------------------------------------------------------- */

/* Packs a run-time B (k stride sbk, n stride sbn) minus zb as i16 into dst, pc's layout. */
static void pack_b_runtime(lb_lw *L, const lb_qk_shape *s, const lb_view *B, int64_t sbk,
                           int64_t sbn, int64_t K, int64_t N, int32_t zb, LLVMValueRef dst,
                           int64_t Kp, int64_t Np) {
  LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx);
  LLVMBuildMemSet(L->b, dst, LLVMConstInt(L->t_i8, 0, 0), lb_c64(L, Kp * Np * 2), 1);
  lb_loop lk, ln;
  lb_loop_begin(L, &lk, lb_c64(L, 0), lb_c64(L, K), 1);
  lb_loop_begin(L, &ln, lb_c64(L, 0), lb_c64(L, N), 1);
  LLVMValueRef off = add64(L, mul64(L, lk.iv, sbk), mul64(L, ln.iv, sbn));
  LLVMValueRef v = ext8(L, lb_load(L, L->t_i8, lb_gep(L, L->t_i8, B->base, off), 1), B->dt, i16);
  v = LLVMBuildSub(L->b, v, LLVMConstInt(i16, (uint64_t)zb, 1), "");
  LLVMValueRef pn = LLVMBuildUDiv(L->b, ln.iv, lb_c64(L, s->nr), "");
  LLVMValueRef jn = LLVMBuildURem(L->b, ln.iv, lb_c64(L, s->nr), "");
  LLVMValueRef kb = LLVMBuildUDiv(L->b, lk.iv, lb_c64(L, s->kr), "");
  LLVMValueRef kk = LLVMBuildURem(L->b, lk.iv, lb_c64(L, s->kr), "");
  LLVMValueRef idx = add64(L, add64(L, mul64(L, pn, Kp * s->nr), mul64(L, kb, s->nr * s->kr)),
                           add64(L, mul64(L, jn, s->kr), kk));
  lb_store(L, v, lb_gep(L, i16, dst, idx), 2);
  lb_loop_end(L, &ln);
  lb_loop_end(L, &lk);
}

typedef struct mmgeo {
  int64_t M, K, N, sak, sbk, sbn;
  rowmap am;
  rows2 ym;
} mmgeo;

static int run_gemm(lb_lw *L, lb_op_args *a, const mmgeo *mg, qmac *q, const packed_c *pc,
                    LLVMValueRef bptr, size_t extra) {
  int64_t MB = block_rows(L, &q->s, pc->Kp, mg->M), esz = q->s.wide ? 2 : 1;
  size_t ablk = (size_t)(MB * pc->Kp * esz + 63) / 64 * 64;
  a->scratch_bytes = ablk + extra;
  LLVMValueRef sbuf = lb_subw_place(L, &pc->sub, &q->s, pc->Kp, a->scratch, &a->scratch_bytes);
  rows2 rm = mg->ym;
  lb_qgemm_job j = {&q->s, pc->Kp, mg->N, pc->Np, bptr, pc->bias, pc->mult, q->zy, q->lo,
                    q->hi, a->out[0].dt, a->out[0].base, a->out[0].st[a->out[0].rank - 1],
                    NULL, 0, LB_DTYPE_I8, q->zr, q->mr, row_off, &rm, 0};
  if (in_val(a, 3)) {
    j.res = a->in[3].base, j.res_dt = a->in[3].dt;
    j.sr_n = a->in[3].st[a->in[3].rank - 1];
  }
  j.nosat = pc->nosat;
  lb_loop lm;
  lb_loop_begin(L, &lm, lb_c64(L, 0), lb_c64(L, mg->M), MB);
  pack_rows(L, &q->ap, &mg->am, a->in[0].base, mg->sak, mg->K, pc->Kp, a->scratch, lm.iv,
            lb_c64(L, MB));
  lb_subw_gemm(L, &j, &pc->sub, sbuf, a->scratch, lm.iv, lb_c64(L, MB));
  lb_loop_end(L, &lm);
  if (mg->M % MB) {
    LLVMValueRef r0 = lb_c64(L, mg->M / MB * MB), rr = lb_c64(L, mg->M % MB);
    pack_rows(L, &q->ap, &mg->am, a->in[0].base, mg->sak, mg->K, pc->Kp, a->scratch, r0, rr);
    lb_subw_gemm(L, &j, &pc->sub, sbuf, a->scratch, r0, rr);
  }
  return 0;
}

/* Row maps over all dims but the last of a view (rows of a matrix, batch dims outermost). */
static void rows_of(const lb_view *v, rowmap *m, int transposed) {
  m->n = 0;
  for (int d = 0; d < v->rank - 2; d++) m->ext[m->n] = v->dims[d], m->st[m->n++] = v->st[d];
  int rd = transposed ? v->rank - 1 : v->rank - 2;
  m->ext[m->n] = v->dims[rd], m->st[m->n++] = v->st[rd];
}

/* Bias, packing (constant weights at compile time, else into scratch at run time) and the
 * row-block loop of a gemm or matmul. */
static int gemm_finish(lb_lw *L, lb_op_args *a, const mmgeo *mg, qmac *q, const int16_t *wp,
                       const float *mult) {
  mac_common(a, q, 3);
  const lb_value *bv = in_val(a, 2);
  const int32_t *bd;
  LB_TRY(lb_int_const_i32(L, bv, mg->N, &bd));
  int32_t *bias = lb_calloc((size_t)mg->N, sizeof *bias);
  if (!bias) return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  for (int64_t j = 0; bd && j < mg->N; j++) bias[j] = bd[lb_value_numel(bv) == 1 ? 0 : j];
  packed_c pc = {0};
  int rc = 0;
  if (wp) {
    rc = pack_groups(L, &q->s, wp, 1, mg->K, mg->N, bias, mult, q->ap.dt, q->ap.zx, mg->M, &pc);
    pc.nosat = gemm_nosat(L, a, wp, 1, mg->K, mg->N, bias, mult, q->mr);
    lb_free(bias);
    return rc ? rc : run_gemm(L, a, mg, q, &pc, pc.b, 0);
  }
  /* a run-time B: the wide kernel (no compensation), B - zb packed into scratch per run */
  pc.Kp = (mg->K + q->s.kr - 1) / q->s.kr * q->s.kr;
  pc.Np = (mg->N + q->s.nr - 1) / q->s.nr * q->s.nr;
  int32_t *bb = lb_calloc((size_t)pc.Np, sizeof *bb);
  float *mm = lb_calloc((size_t)pc.Np, sizeof *mm);
  if (bb && mm) {
    memcpy(bb, bias, (size_t)mg->N * sizeof *bb);
    memcpy(mm, mult, (size_t)mg->N * sizeof *mm);
    pc.bias = lb_const_blob(L, bb, (size_t)pc.Np * 4, "qbias");
    pc.mult = lb_const_blob(L, mm, (size_t)pc.Np * 4, "qmul");
  } else {
    rc = lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  }
  lb_free(bias), lb_free(bb), lb_free(mm);
  LB_TRY(rc);
  int64_t MB = block_rows(L, &q->s, pc.Kp, mg->M), esz = q->s.wide ? 2 : 1;
  size_t ablk = (size_t)(MB * pc.Kp * esz + 63) / 64 * 64;
  LLVMValueRef bptr = lb_gep(L, L->t_i8, a->scratch, lb_c64(L, (int64_t)ablk));
  pack_b_runtime(L, &q->s, &a->in[1], mg->sbk, mg->sbn, mg->K, mg->N, qz(in_val(a, 1), 0), bptr,
                 pc.Kp, pc.Np);
  return run_gemm(L, a, mg, q, &pc, bptr, (size_t)(pc.Kp * pc.Np * 2));
}

static int lower_mm(lb_lw *L, lb_op_args *a) {
  const lb_node *n = a->node;
  const lb_value *x = in_val(a, 0), *w = in_val(a, 1), *y = &a->g->values[n->out[0]];
  const lb_view *A = &a->in[0], *B = &a->in[1];
  int gemm = n->op == LB_OP_GEMM, ta = gemm && n->attr.trans_a, tb = gemm && n->attr.trans_b;
  if (gemm && (n->attr.alpha != 1.0f || (in_val(a, 2) && n->attr.beta != 1.0f)))
    return lb_diag_err(L->diag, LB_ERR_INPUT, "integer gemm needs alpha = beta = 1");
  if (B->rank != 2 || A->rank < 2)
    return lb_diag_err(L->diag, LB_ERR_INPUT, "integer matmul needs a rank-2 second operand");
  mmgeo mg = {0};
  mg.K = tb ? B->dims[1] : B->dims[0], mg.N = tb ? B->dims[0] : B->dims[1];
  mg.M = lb_view_numel(A) / (mg.K ? mg.K : 1);
  mg.sak = A->st[ta ? A->rank - 2 : A->rank - 1];
  mg.sbk = B->st[tb ? 1 : 0], mg.sbn = B->st[tb ? 0 : 1];
  rows_of(A, &mg.am, ta);
  rows_of(&a->out[0], &mg.ym.out, 0);
  if (in_val(a, 3)) rows_of(&a->in[3], &mg.ym.res, 0);
  if (mg.M == 0 || mg.N == 0) return 0;
  float *mult = lb_calloc((size_t)mg.N, sizeof *mult);
  int16_t *wp = w->data ? lb_calloc((size_t)(mg.K * mg.N > 0 ? mg.K * mg.N : 1), sizeof *wp) : NULL;
  int rc = mult && (wp || !w->data) ? 0 : lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  for (int64_t j = 0; !rc && j < mg.N; j++) mult[j] = lb_qmul(qs(x, 0), qs(w, j), qs(y, 0));
  for (int64_t k = 0; wp && k < mg.K; k++)
    for (int64_t j = 0; j < mg.N; j++) {
      int64_t i = tb ? j * mg.K + k : k * mg.N + j;
      int32_t v = lb_qweight_at(w, i);
      wp[k * mg.N + j] = (int16_t)(v - qz(w, j));
    }
  qmac q;
  if (!rc) rc = choose(L, a, w->dtype, wp ? lb_qk_fits_s8(wp, mg.K * mg.N) : 0, &q.s);
  if (!rc && wp) lb_subw_shape(L, wp, mg.K * mg.N, &q.s); /* (k4) as in lower_conv */
  if (!rc) rc = gemm_finish(L, a, &mg, &q, wp, mult);
  lb_free(wp), lb_free(mult);
  return rc;
}

/* ---- elementwise ------------------------------------------------------------------------- */

typedef struct qel {
  lb_op op;
  lb_dtype ta, tb;
  int32_t za, zb, zy, lo, hi;
  float ma, mb, mab;
} qel;

static LLVMValueRef f_qel(lb_lw *L, LLVMValueRef *x, void *ud) {
  const qel *e = ud;
  LLVMTypeRef t = LLVMTypeOf(x[0]);
  int lanes = LLVMGetTypeKind(t) == LLVMVectorTypeKind ? (int)LLVMGetVectorSize(t) : 1;
  LLVMTypeRef it = lanes > 1 ? vec(L->t_i32, lanes) : L->t_i32;
  LLVMTypeRef ft = lanes > 1 ? vec(L->t_f32, lanes) : L->t_f32;
  LLVMValueRef av = LLVMBuildSub(L->b, ext8(L, x[0], e->ta, it), lb_ci(L, it, e->za), "");
  LLVMValueRef q;
  if (e->op == LB_OP_RELU || e->op == LB_OP_CLIP || e->op == LB_OP_DIV) {
    q = lb_qrequant(L, NULL, av, lb_cf(L, ft, e->ma), NULL, NULL, e->zy, e->lo, e->hi);
  } else {
    LLVMValueRef bv = LLVMBuildSub(L->b, ext8(L, x[1], e->tb, it), lb_ci(L, it, e->zb), "");
    if (e->op == LB_OP_MUL)
      q = lb_qrequant(L, NULL, LLVMBuildMul(L->b, av, bv, ""), lb_cf(L, ft, e->mab), NULL, NULL,
                      e->zy, e->lo, e->hi);
    else
      q = lb_qrequant(L, NULL, av, lb_cf(L, ft, e->ma), bv, lb_cf(L, ft, e->mb), e->zy, e->lo,
                      e->hi);
  }
  return LLVMBuildTrunc(L->b, q, lanes > 1 ? vec(L->t_i8, lanes) : L->t_i8, "");
}

static int lower_elem(lb_lw *L, lb_op_args *a) {
  const lb_node *n = a->node;
  const lb_value *x = in_val(a, 0), *y = &a->g->values[n->out[0]];
  qel e = {.op = n->op, .ta = x->dtype, .za = qz(x, 0), .zy = qz(y, 0)};
  lb_view in[2];
  int unary = n->op == LB_OP_RELU || n->op == LB_OP_CLIP || n->op == LB_OP_DIV;
  e.ma = lb_qmul(qs(x, 0), 1.0f, qs(y, 0));
  if (n->op == LB_OP_DIV) { /* by one positive constant: interp_int.c k_div */
    const lb_value *b = in_val(a, 1);
    int32_t bq = b && b->data && lb_value_numel(b) == 1
                     ? (b->dtype == LB_DTYPE_U8 ? *(const uint8_t *)b->data
                                                : *(const int8_t *)b->data) - qz(b, 0)
                     : 0;
    if (bq <= 0)
      return lb_diag_err(L->diag, LB_ERR_INPUT, "integer div needs one positive constant divisor");
    e.ma = lb_qmul_div(qs(x, 0), qs(b, 0), bq, qs(y, 0));
    out_bounds(a, &e.lo, &e.hi);
  } else if (unary) {
    lb_qact_bounds(n->op == LB_OP_RELU ? LB_ACT_RELU : LB_ACT_CLIP, n->attr.clip_min,
                   n->attr.clip_max, y->dtype, qs(y, 0), e.zy, &e.lo, &e.hi);
  } else {
    const lb_value *b = in_val(a, 1);
    if (!b || !b->q.n)
      return lb_diag_err(L->diag, LB_ERR_INPUT, "input[1] of an integer node is not quantized");
    e.tb = b->dtype, e.zb = qz(b, 0);
    e.mb = lb_qmul(qs(b, 0), 1.0f, qs(y, 0));
    e.mab = lb_qmul(qs(x, 0), qs(b, 0), qs(y, 0));
    if (n->op == LB_OP_SUB) e.mb = -e.mb;
    out_bounds(a, &e.lo, &e.hi);
    in[1] = lb_view_broadcast(&a->in[1], a->out[0].rank, a->out[0].dims);
  }
  in[0] = lb_view_broadcast(&a->in[0], a->out[0].rank, a->out[0].dims);
  lb_emit_map(L, &a->out[0], in, unary ? 1 : 2, f_qel, &e);
  return 0;
}

/* ---- table activations (lb_qlut) -------------------------------------------------------- */

typedef struct qlut {
  LLVMValueRef table; /* 256 output bytes, indexed by x - qmin */
  int flip;           /* i8 input: x - qmin == x ^ 0x80 */
  LLVMValueRef rows[16]; /* (x86) table row k (entries 16k..16k+15) in both 16-byte lanes */
} qlut;

static LLVMValueRef lut1(lb_lw *L, const qlut *t, LLVMValueRef x) {
  if (t->flip) x = LLVMBuildXor(L->b, x, LLVMConstInt(L->t_i8, 0x80, 0), "");
  LLVMValueRef idx = LLVMBuildZExt(L->b, x, L->t_i64, "");
  return lb_load(L, L->t_i8, lb_gep(L, L->t_i8, t->table, idx), 1);
}

static LLVMValueRef f_lut(lb_lw *L, LLVMValueRef *x, void *ud) {
  LLVMTypeRef ty = LLVMTypeOf(x[0]);
  if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind) return lut1(L, ud, x[0]);
  LLVMValueRef v = LLVMGetUndef(ty); /* no byte gather: one lookup per lane */
  for (unsigned i = 0; i < LLVMGetVectorSize(ty); i++)
    v = LLVMBuildInsertElement(
        L->b, v, lut1(L, ud, LLVMBuildExtractElement(L->b, x[0], lb_c32(L, (int32_t)i), "")),
        lb_c32(L, (int32_t)i), "");
  return v;
}

/* Whether views x and y lay out the same elements the same way, without gaps, in some order
 * of the dims (an NHWC activation too): then element i of one is element i of the other. */
static int same_dense(const lb_view *x, const lb_view *y) {
  if (x->rank != y->rank) return 0;
  int64_t want = 1;
  for (int n = 0; n < x->rank; n++) { /* the dims by increasing stride */
    int pick = -1;
    for (int d = 0; d < x->rank; d++)
      if (x->dims[d] != y->dims[d] || x->st[d] != y->st[d]) return 0;
      else if (x->dims[d] > 1 && x->st[d] == want) pick = d;
    if (pick < 0) break;
    want *= x->dims[pick];
  }
  return want == lb_view_numel(x);
}

/* 32 lookups at once on x86 (every x86 spec has AVX2): vpshufb of each of the 16 table rows
 * (entries 16k..16k+15) by the index's low nibble, then a selection tree on the high nibble,
 * bit 4 first: a select on the sign of (index << (7 - b)) is one vpblendvb per pair. */
static LLVMValueRef lut32(lb_lw *L, const qlut *t, LLVMValueRef x) {
  LLVMTypeRef vt = vec(L->t_i8, 32);
  LLVMValueRef idx = t->flip ? LLVMBuildXor(L->b, x, lb_ci(L, vt, 0x80), "") : x, v[16];
  LLVMValueRef lo = LLVMBuildAnd(L->b, idx, lb_ci(L, vt, 15), "");
  for (int k = 0; k < 16; k++) {
    LLVMValueRef a[2] = {t->rows[k], lo};
    v[k] = lb_intr(L, "llvm.x86.avx2.pshuf.b", NULL, a, 2);
  }
  for (int b = 4, n = 16; b < 8; b++, n /= 2) {
    LLVMValueRef m = b < 7 ? LLVMBuildShl(L->b, idx, lb_ci(L, vt, 7 - b), "") : idx;
    LLVMValueRef hi = LLVMBuildICmp(L->b, LLVMIntSLT, m, lb_ci(L, vt, 0), "");
    for (int j = 0; j < n / 2; j++) v[j] = LLVMBuildSelect(L->b, hi, v[2 * j + 1], v[2 * j], "");
  }
  return v[0];
}

/* out[i] = table[in[i] - qmin] over n contiguous bytes: lut32 per 32, the tail one by one. */
static void lut_flat(lb_lw *L, qlut *t, const uint8_t *bytes, LLVMValueRef in, LLVMValueRef out,
                     int64_t n) {
  for (int k = 0; k < 16; k++) {
    LLVMValueRef e[32];
    for (int i = 0; i < 32; i++) e[i] = LLVMConstInt(L->t_i8, bytes[16 * k + i % 16], 0);
    t->rows[k] = LLVMConstVector(e, 32);
  }
  LLVMTypeRef vt = vec(L->t_i8, 32);
  lb_loop lv, ls;
  lb_loop_begin(L, &lv, lb_c64(L, 0), lb_c64(L, n / 32 * 32), 32);
  LLVMValueRef x = lb_load(L, vt, lb_gep(L, L->t_i8, in, lv.iv), 1);
  lb_store(L, lut32(L, t, x), lb_gep(L, L->t_i8, out, lv.iv), 1);
  lb_loop_end(L, &lv);
  lb_loop_begin(L, &ls, lb_c64(L, n / 32 * 32), lb_c64(L, n), 1);
  x = lb_load(L, L->t_i8, lb_gep(L, L->t_i8, in, ls.iv), 1);
  lb_store(L, lut1(L, t, x), lb_gep(L, L->t_i8, out, ls.iv), 1);
  lb_loop_end(L, &ls);
}

static int lower_lut(lb_lw *L, lb_op_args *a) {
  const lb_value *x = in_val(a, 0), *y = &a->g->values[a->node->out[0]];
  int32_t table[256];
  uint8_t bytes[256];
  if (lb_qlut(a->node->op, &a->node->attr, x->dtype, qs(x, 0), qz(x, 0), y->dtype, qs(y, 0),
              qz(y, 0), table) != 0)
    return lb_diag_err(L->diag, LB_ERR_INPUT, "no integer table for this op");
  for (int i = 0; i < 256; i++) bytes[i] = (uint8_t)table[i];
  qlut t = {lb_const_blob(L, bytes, sizeof bytes, "qlut"), x->dtype == LB_DTYPE_I8, {0}};
  int64_t n = lb_view_numel(&a->out[0]);
  const char *triple = lb_spec_llvm_triple(L->spec);
  if (triple && !strncmp(triple, "x86_64", 6) && n >= 32 && same_dense(&a->in[0], &a->out[0]))
    lut_flat(L, &t, bytes, a->in[0].base, a->out[0].base, n);
  else
    lb_emit_map(L, &a->out[0], &a->in[0], 1, f_lut, &t);
  return 0;
}

/* ---- global average pool ------------------------------------------------------------------ */

/* acc += x - zx over the spatial dims d.. of x (element offset off). */
static void gap_sum(lb_lw *L, const lb_view *x, int d, LLVMValueRef off, LLVMValueRef acc,
                    int32_t zx) {
  if (d == x->rank) {
    LLVMValueRef v = ext8(L, lb_load(L, L->t_i8, lb_gep(L, L->t_i8, x->base, off), 1), x->dt,
                          L->t_i32);
    v = LLVMBuildSub(L->b, v, lb_c32(L, zx), "");
    lb_store(L, LLVMBuildAdd(L->b, lb_load(L, L->t_i32, acc, 4), v, ""), acc, 4);
    return;
  }
  lb_loop lp;
  lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, x->dims[d]), 1);
  gap_sum(L, x, d + 1, add64(L, off, mul64(L, lp.iv, x->st[d])), acc, zx);
  lb_loop_end(L, &lp);
}

static int lower_gap(lb_lw *L, lb_op_args *a) {
  const lb_view *x = &a->in[0], *y = &a->out[0];
  const lb_value *xv = in_val(a, 0), *yv = &a->g->values[a->node->out[0]];
  int64_t sz = 1;
  for (int d = 2; d < x->rank; d++) sz *= x->dims[d];
  if (x->rank < 3 || sz > (1 << 23))
    return lb_diag_err(L->diag, LB_ERR_INPUT,
                       "integer global_avg_pool needs rank >= 3 and at most 2^23 elements");
  float m = lb_qmul_pool(qs(xv, 0), qs(yv, 0), sz);
  int32_t lo, hi;
  lb_qrange(yv->dtype, &lo, &hi);
  LLVMValueRef acc = lb_alloca(L, L->t_i32, NULL);
  lb_loop ln, lc;
  lb_loop_begin(L, &ln, lb_c64(L, 0), lb_c64(L, x->dims[0]), 1);
  lb_loop_begin(L, &lc, lb_c64(L, 0), lb_c64(L, x->dims[1]), 1);
  lb_store(L, lb_c32(L, 0), acc, 4);
  gap_sum(L, x, 2, add64(L, mul64(L, ln.iv, x->st[0]), mul64(L, lc.iv, x->st[1])), acc, qz(xv, 0));
  LLVMValueRef q = lb_qrequant(L, NULL, lb_load(L, L->t_i32, acc, 4), lb_cf(L, L->t_f32, m), NULL,
                               NULL, qz(yv, 0), lo, hi);
  LLVMValueRef off = add64(L, mul64(L, ln.iv, y->st[0]), mul64(L, lc.iv, y->st[1]));
  lb_store(L, LLVMBuildTrunc(L->b, q, L->t_i8, ""), lb_gep(L, L->t_i8, y->base, off), 1);
  lb_loop_end(L, &lc);
  lb_loop_end(L, &ln);
  return 0;
}

/* ---- average pool ------------------------------------------------------------------------ */

/* Taps a in [0, k) with lo <= st + a*d < hi (interp_int.c's count rule). */
static int64_t taps_in(int64_t st, int64_t k, int64_t d, int64_t lo, int64_t hi) {
  int64_t n = 0;
  for (int64_t a = 0; a < k; a++) n += st + a * d >= lo && st + a * d < hi;
  return n;
}

typedef struct apool {
  int64_t H, W, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw;
  int64_t xs[4], ys[4];
} apool;

/* acc += x - zx over the taps of output (oh, ow) that lie inside the input. */
static void pool_taps(lb_lw *L, const apool *p, const lb_view *x, LLVMValueRef base,
                      LLVMValueRef oh, LLVMValueRef ow, LLVMValueRef acc, int32_t zx) {
  lb_loop lh, lw;
  lb_loop_begin(L, &lh, lb_c64(L, 0), lb_c64(L, p->KH), 1);
  LLVMValueRef y = add64(L, mul64(L, oh, p->sh), mul64(L, lh.iv, p->dh));
  y = LLVMBuildSub(L->b, y, lb_c64(L, p->ph), "");
  LLVMBasicBlockRef jy = lb_if_begin(L, LLVMBuildICmp(L->b, LLVMIntULT, y, lb_c64(L, p->H), ""));
  lb_loop_begin(L, &lw, lb_c64(L, 0), lb_c64(L, p->KW), 1);
  LLVMValueRef xx = add64(L, mul64(L, ow, p->sw), mul64(L, lw.iv, p->dw));
  xx = LLVMBuildSub(L->b, xx, lb_c64(L, p->pw), "");
  LLVMBasicBlockRef jx = lb_if_begin(L, LLVMBuildICmp(L->b, LLVMIntULT, xx, lb_c64(L, p->W), ""));
  LLVMValueRef off = add64(L, base, add64(L, mul64(L, y, p->xs[2]), mul64(L, xx, p->xs[3])));
  LLVMValueRef v = ext8(L, lb_load(L, L->t_i8, lb_gep(L, L->t_i8, x->base, off), 1), x->dt, L->t_i32);
  v = LLVMBuildSub(L->b, v, lb_c32(L, zx), "");
  lb_store(L, LLVMBuildAdd(L->b, lb_load(L, L->t_i32, acc, 4), v, ""), acc, 4);
  lb_if_end(L, jx);
  lb_loop_end(L, &lw);
  lb_if_end(L, jy);
  lb_loop_end(L, &lh);
}

static int lower_avg_pool(lb_lw *L, lb_op_args *a) {
  const lb_view *x = &a->in[0], *y = &a->out[0];
  const lb_value *xv = in_val(a, 0), *yv = &a->g->values[a->node->out[0]];
  const lb_attrs *at = &a->node->attr;
  if (x->rank != 3 && x->rank != 4)
    return lb_diag_err(L->diag, LB_ERR_INPUT, "integer avg_pool supports 1-D and 2-D only");
  int two = x->rank == 4, r = x->rank;
  apool p = {two ? x->dims[2] : 1, x->dims[r - 1], two ? y->dims[2] : 1, y->dims[r - 1],
             two ? at->kernel[0] : 1, at->kernel[two ? 1 : 0], two ? at->strides[0] : 1,
             at->strides[two ? 1 : 0], two ? at->dilations[0] : 1, at->dilations[two ? 1 : 0],
             two ? at->pads[0] : 0, at->pads[two ? 1 : 0], {0}, {0}};
  int64_t ns = two ? 2 : 1, peh = two ? at->pads[ns] : 0, pew = at->pads[ns + (two ? 1 : 0)];
  view4(x, p.xs), view4(y, p.ys);
  /* multipliers per output position, in C: lb_qmul_pool with the ONNX tap count */
  float *mt = lb_calloc((size_t)(p.OH * p.OW + 1), sizeof *mt);
  if (!mt) return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  for (int64_t oh = 0; oh < p.OH; oh++)
    for (int64_t ow = 0; ow < p.OW; ow++) {
      int64_t y0 = oh * p.sh - p.ph, x0 = ow * p.sw - p.pw;
      int64_t cnt = at->count_include_pad
                        ? taps_in(y0, p.KH, p.dh, -p.ph, p.H + peh) *
                              taps_in(x0, p.KW, p.dw, -p.pw, p.W + pew)
                        : taps_in(y0, p.KH, p.dh, 0, p.H) * taps_in(x0, p.KW, p.dw, 0, p.W);
      mt[oh * p.OW + ow] = lb_qmul_pool(qs(xv, 0), qs(yv, 0), cnt);
    }
  LLVMValueRef mg = lb_const_blob(L, mt, (size_t)(p.OH * p.OW + 1) * sizeof *mt, "qpool");
  lb_free(mt);
  int32_t lo, hi;
  lb_qrange(yv->dtype, &lo, &hi);
  LLVMValueRef acc = lb_alloca(L, L->t_i32, NULL);
  lb_loop ln, lc, lh, lw;
  lb_loop_begin(L, &ln, lb_c64(L, 0), lb_c64(L, x->dims[0]), 1);
  lb_loop_begin(L, &lc, lb_c64(L, 0), lb_c64(L, x->dims[1]), 1);
  LLVMValueRef xb = add64(L, mul64(L, ln.iv, p.xs[0]), mul64(L, lc.iv, p.xs[1]));
  LLVMValueRef yb = add64(L, mul64(L, ln.iv, p.ys[0]), mul64(L, lc.iv, p.ys[1]));
  lb_loop_begin(L, &lh, lb_c64(L, 0), lb_c64(L, p.OH), 1);
  lb_loop_begin(L, &lw, lb_c64(L, 0), lb_c64(L, p.OW), 1);
  lb_store(L, lb_c32(L, 0), acc, 4);
  pool_taps(L, &p, x, xb, lh.iv, lw.iv, acc, qz(xv, 0));
  LLVMValueRef m = lb_load(L, L->t_f32, lb_gep(L, L->t_f32, mg, add64(L, mul64(L, lh.iv, p.OW), lw.iv)), 4);
  LLVMValueRef q = lb_qrequant(L, NULL, lb_load(L, L->t_i32, acc, 4), m, NULL, NULL, qz(yv, 0), lo, hi);
  LLVMValueRef off = add64(L, yb, add64(L, mul64(L, lh.iv, p.ys[2]), mul64(L, lw.iv, p.ys[3])));
  lb_store(L, LLVMBuildTrunc(L->b, q, L->t_i8, ""), lb_gep(L, L->t_i8, y->base, off), 1);
  lb_loop_end(L, &lw);
  lb_loop_end(L, &lh);
  lb_loop_end(L, &lc);
  lb_loop_end(L, &ln);
  return 0;
}

/* ---- reduce_mean ------------------------------------------------------------------------- */

typedef struct qred {
  lb_dtype tx;
  int32_t zx, zy, lo, hi;
  float m;
} qred;

static LLVMValueRef f_red_add(lb_lw *L, LLVMValueRef *x, void *ud) {
  const qred *r = ud;
  LLVMTypeRef it = LLVMTypeOf(x[0]);
  return LLVMBuildAdd(L->b, x[0], LLVMBuildSub(L->b, ext8(L, x[1], r->tx, it), lb_ci(L, it, r->zx), ""), "");
}

static LLVMValueRef f_red_out(lb_lw *L, LLVMValueRef *x, void *ud) {
  const qred *r = ud;
  LLVMTypeRef t = LLVMTypeOf(x[0]);
  int lanes = LLVMGetTypeKind(t) == LLVMVectorTypeKind ? (int)LLVMGetVectorSize(t) : 1;
  LLVMValueRef q = lb_qrequant(L, NULL, x[0], lb_cf(L, lanes > 1 ? vec(L->t_f32, lanes) : L->t_f32, r->m),
                               NULL, NULL, r->zy, r->lo, r->hi);
  return LLVMBuildTrunc(L->b, q, lanes > 1 ? vec(L->t_i8, lanes) : L->t_i8, "");
}

/* interp_int.c k_reduce_mean: int32 sums of x - zx in the step's scratch (laid out as the
 * output, broadcast over the reduced dims of x), then one requantize per output element. */
static int lower_reduce(lb_lw *L, lb_op_args *a) {
  const lb_view *x = &a->in[0], *y = &a->out[0];
  const lb_value *xv = in_val(a, 0), *yv = &a->g->values[a->node->out[0]];
  const lb_attrs *at = &a->node->attr;
  int red[LB_MAX_RANK] = {0};
  for (int i = 0; i < at->n_axes; i++) red[at->axes[i]] = 1;
  lb_view acc = *y, sum = *x, zero = *y;
  int64_t count = 1, st = 1;
  for (int d = acc.rank - 1; d >= 0; d--) acc.st[d] = st, st *= acc.dims[d];
  for (int d = 0, o = 0; d < x->rank; d++) {
    if (red[d]) count *= x->dims[d];
    sum.st[d] = red[d] ? 0 : acc.st[at->keepdims ? d : o];
    if (at->keepdims || !red[d]) o++;
  }
  if (count > (1 << 23))
    return lb_diag_err(L->diag, LB_ERR_INPUT, "integer reduce_mean over more than 2^23 elements");
  a->scratch_bytes = (size_t)(st ? st : 1) * 4;
  acc.base = sum.base = a->scratch, acc.dt = sum.dt = zero.dt = LB_DTYPE_I32;
  int32_t z0 = 0;
  zero.base = lb_const_blob(L, &z0, sizeof z0, "zero");
  for (int d = 0; d < zero.rank; d++) zero.st[d] = 0;
  lb_emit_copy(L, &acc, &zero);
  qred r = {x->dt, qz(xv, 0), qz(yv, 0), 0, 0, lb_qmul_pool(qs(xv, 0), qs(yv, 0), count)};
  lb_qrange(yv->dtype, &r.lo, &r.hi);
  if (count == 0) return 0;
  lb_view in2[2] = {sum, *x};
  lb_emit_map(L, &sum, in2, 2, f_red_add, &r);
  lb_emit_map(L, y, &acc, 1, f_red_out, &r);
  return 0;
}

/* ---- entry points ------------------------------------------------------------------------ */

int lb_int_conv_nhwc(const lb_graph *g, const lb_node *n) {
  if (n->op != LB_OP_CONV || g->values[n->in[0]].rank != 4) return 0;
  return lb_int_node(g, (uint32_t)(n - g->nodes));
}

int lb_lower_int(lb_lw *L, lb_op_args *a) {
  L->rq = a->node->attr.requant; /* lb_qrequant's method for this node */
  L->rq_below1 = lb_qrequant_below1(a->g, a->node);
  if (lb_binary_node(a->g, (uint32_t)(a->node - a->g->nodes))) return lb_lower_bin(L, a);
  for (uint32_t i = 0; i < a->node->n_in && i < 4; i++) {
    const lb_value *v = in_val(a, i);
    if (v && (!v->q.n || !v->q.scale))
      return lb_diag_err(L->diag, LB_ERR_INPUT, "input[%u] of an integer node has no quantization",
                         i);
  }
  switch (a->node->op) {
  case LB_OP_CONV: return lower_conv(L, a);
  case LB_OP_GEMM:
  case LB_OP_MATMUL: return lower_mm(L, a);
  case LB_OP_GLOBAL_AVG_POOL: return lower_gap(L, a);
  case LB_OP_AVG_POOL: return lower_avg_pool(L, a);
  case LB_OP_REDUCE_MEAN: return lower_reduce(L, a);
  case LB_OP_LEAKY_RELU:
  case LB_OP_SIGMOID:
  case LB_OP_TANH:
  case LB_OP_HARD_SIGMOID:
  case LB_OP_HARD_SWISH: return lower_lut(L, a);
  default: return lower_elem(L, a);
  }
}
