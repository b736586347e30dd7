/* Lowering of binary conv/gemm nodes (quant.h lb_binary_node). The 8-bit input is binarized once
 * into a bit image (per pixel and group ceil(C / G / 8) bytes, bit 1 where x >= t); rows of taps
 * of one group are gathered
 * from it with a validity mask (a tap in the padding contributes 0), and 8 output channels at
 * a time accumulate popcount((x xor w) and mask) over 64-bit words with llvm.ctpop:
 * acc = bias + kv - 2 * mismatches, kv = C * (valid taps). Invariant: every output is
 * lb_binary_eval's (interp_subbyte.c): the same int32 accumulator and lb_requantize steps. */
#include <string.h>

#include "lower.h"
#include "ops_int.h"
#include "quant.h"

#define BN 8  /* output channels per <8 x i64> accumulator */
#define RB 32 /* rows (output pixels) gathered per block */
#define RR 4  /* rows sharing each weight vector load in the inner loop */

/* Geometry; a gemm is a conv of 1x1 pixels with C = K. Per group: cg input channels, mg output
 * channels, padded to Npg for the weight, bias and multiplier blocks. */
typedef struct bgeo {
  int64_t N, C, H, W, M, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw, G, cg, mg, Npg;
  int64_t xs[4], ys[4], rs[4]; /* element strides as [n, c, h, w] */
  int64_t Cb, T, words, rows;  /* bytes per pixel and group, taps, words per row, pixels out */
  int64_t pix_bytes;           /* bit image bytes per pixel (words * 8 when it is the rows) */
  int masked, direct;          /* a tap may lie in the padding; the image is the row matrix */
  int32_t thr;
  lb_dtype xt;
} bgeo;

static int64_t or1(int64_t v) { return v > 0 ? v : 1; }

static void conv_geom(const lb_op_args *a, bgeo *g) {
  const lb_view *x = &a->in[0], *y = &a->out[0];
  const lb_value *w = in_val(a, 1);
  const lb_attrs *at = &a->node->attr;
  int two = x->rank == 4;
  g->N = x->dims[0], g->C = x->dims[1], g->H = two ? x->dims[2] : 1, g->W = x->dims[x->rank - 1];
  g->M = y->dims[1], g->OH = two ? y->dims[2] : 1, g->OW = y->dims[y->rank - 1];
  g->KH = two ? w->dims[2] : 1, g->KW = w->dims[w->rank - 1];
  g->sh = two ? or1(at->strides[0]) : 1, g->sw = or1(at->strides[two ? 1 : 0]);
  g->dh = two ? or1(at->dilations[0]) : 1, g->dw = or1(at->dilations[two ? 1 : 0]);
  g->ph = two ? at->pads[0] : 0, g->pw = at->pads[two ? 1 : 0];
  g->G = or1(at->group);
  lb_int_view4(x, g->xs), lb_int_view4(y, g->ys);
  if (in_val(a, 3)) lb_int_view4(&a->in[3], g->rs);
}

static void gemm_geom(const lb_op_args *a, bgeo *g) {
  const lb_view *x = &a->in[0], *y = &a->out[0];
  int ta = a->node->attr.trans_a;
  g->N = y->dims[0], g->C = in_val(a, 1)->dims[1], g->M = y->dims[1], g->G = 1;
  g->H = g->W = g->OH = g->OW = g->KH = g->KW = g->sh = g->sw = g->dh = g->dw = 1;
  g->xs[0] = ta ? x->st[1] : x->st[0], g->xs[1] = ta ? x->st[0] : x->st[1];
  g->ys[0] = y->st[0], g->ys[1] = y->st[1];
  if (in_val(a, 3)) g->rs[0] = a->in[3].st[0], g->rs[1] = a->in[3].st[1];
}

/* Whether some tap of some output falls outside [0, n) along one spatial dim. */
static int pads_reached(int64_t n, int64_t on, int64_t k, int64_t s, int64_t d, int64_t p) {
  return -p < 0 || (on - 1) * s - p + (k - 1) * d >= n;
}

static void geom(const lb_op_args *a, bgeo *g) {
  memset(g, 0, sizeof *g);
  if (a->node->op == LB_OP_CONV) conv_geom(a, g);
  else gemm_geom(a, g);
  const lb_value *w = in_val(a, 1);
  g->thr = w->q.zero_point[0], g->xt = a->in[0].dt;
  g->cg = g->C / g->G, g->mg = g->M / g->G, g->Npg = (g->mg + BN - 1) / BN * BN;
  g->Cb = (g->cg + 7) / 8, g->T = g->KH * g->KW, g->rows = g->N * g->OH * g->OW;
  g->words = (g->T * g->Cb + 7) / 8;
  g->masked = pads_reached(g->H, g->OH, g->KH, g->sh, g->dh, g->ph) ||
              pads_reached(g->W, g->OW, g->KW, g->sw, g->dw, g->pw);
  g->direct = g->T == 1 && g->G == 1 && !g->masked && g->sh == 1 && g->sw == 1 && g->OH == g->H &&
              g->OW == g->W;
  g->pix_bytes = g->direct ? g->words * 8 : g->G * g->Cb;
}

/* ---- constants ----------------------------------------------------------------------------- */

/* Weight bit of output channel m, channel c of its group, tap t (kh * KW + kw) in the IR. */
static int wbit(const bgeo *g, const uint8_t *w, int64_t m, int64_t c, int64_t t) {
  int64_t i = (m * g->cg + c) * g->T + t;
  return (w[i / 8] >> (i % 8)) & 1;
}

/* Weights as [G][Npg / 8][words][8] u64 in the rows' bit order (tap, channel), 8 per byte. */
static uint64_t *pack_w(const bgeo *g, const uint8_t *w) {
  uint64_t *out = lb_calloc((size_t)(g->G * g->Npg * g->words) + 1, 8);
  if (!out) return NULL;
  for (int64_t m = 0; m < g->M; m++) {
    int64_t col = m / g->mg * g->Npg + m % g->mg;
    for (int64_t t = 0; t < g->T; t++)
      for (int64_t c = 0; c < g->cg; c++) {
        int64_t bit = t * g->Cb * 8 + c, word = bit / 64;
        if (wbit(g, w, m, c, t))
          out[((col / BN) * g->words + word) * BN + col % BN] |= (uint64_t)1 << (bit % 64);
      }
  }
  return out;
}

typedef struct bk {
  const bgeo *g;
  LLVMValueRef w, bias, mul; /* globals: packed weights, bias, multipliers (Np each) */
  LLVMValueRef img, xr, mr, kv, y, res;
  LLVMValueRef yoff, roff; /* per gathered row: output and residual pixel offsets (i64) */
  LLVMValueRef xoff, wofs; /* direct words: per row, its first tap's image byte; per word, the
                            * word's byte offset from there (NULL: every row is gathered) */
  LLVMValueRef grp; /* the group being computed (i64) */
  lb_dtype yt, rt;
  int32_t zy, lo, hi, zr;
  float mres;
} bk;

/* Interior rows (every tap inside the image) read their words straight from the bit image,
 * gathering nothing, when every tap is whole words (Cb a multiple of 8: 64, 128, .. channels
 * per group): word w of such a row lies wofs[w] bytes after its first tap. Only border rows,
 * and interior rows sharing a 4-row step with one, are gathered (with masks). */
static int direct_words(const bgeo *g) { return !g->direct && g->Cb % 8 == 0; }

static int word_offsets(lb_lw *L, const bgeo *g, bk *k) {
  if (!direct_words(g)) return 0;
  int64_t per = g->Cb / 8, *o = lb_calloc((size_t)g->words + 1, 8);
  if (!o) return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  for (int64_t w = 0; w < g->words; w++) {
    int64_t t = w / per, kh = t / g->KW, kw = t % g->KW;
    o[w] = (kh * g->dh * g->W + kw * g->dw) * g->pix_bytes + 8 * (w % per);
  }
  k->wofs = lb_const_blob(L, o, (size_t)g->words * 8, "bwofs");
  lb_free(o);
  return 0;
}

static int consts(lb_lw *L, const lb_op_args *a, const bgeo *g, bk *k) {
  const lb_value *w = in_val(a, 1), *y = &a->g->values[a->node->out[0]];
  const int32_t *bd;
  LB_TRY(lb_int_const_i32(L, in_val(a, 2), g->M, &bd));
  int64_t Np = g->G * g->Npg, nb = in_val(a, 2) ? lb_value_numel(in_val(a, 2)) : 0;
  uint64_t *wp = pack_w(g, w->data);
  int32_t *bb = lb_calloc((size_t)Np + 1, 4);
  float *mm = lb_calloc((size_t)Np + 1, 4);
  int rc = wp && bb && mm ? 0 : lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  for (int64_t m = 0; !rc && m < g->M; m++) {
    int64_t col = m / g->mg * g->Npg + m % g->mg;
    bb[col] = bd ? bd[nb == 1 ? 0 : m] : 0;
    mm[col] = y->q.n ? lb_qmul(1.0f, qs(w, m), qs(y, 0)) : 0.0f;
  }
  if (!rc) {
    k->w = lb_const_blob(L, wp, (size_t)(Np * g->words) * 8, "bw");
    k->bias = lb_const_blob(L, bb, (size_t)Np * 4, "bbias");
    k->mul = lb_const_blob(L, mm, (size_t)Np * 4, "bmul");
  }
  lb_free(wp), lb_free(bb), lb_free(mm);
  return rc ? rc : word_offsets(L, g, k);
}

/* ---- the bit image ------------------------------------------------------------------------ */

/* x >= thr on 8-bit values widened to i16 (thr clamped into a range where that is exact). */
static LLVMValueRef ge_thr(lb_lw *L, const bgeo *g, LLVMValueRef x) {
  LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx), t = i16;
  if (LLVMGetTypeKind(LLVMTypeOf(x)) == LLVMVectorTypeKind)
    t = vec(i16, (int)LLVMGetVectorSize(LLVMTypeOf(x)));
  int32_t thr = g->thr < -512 ? -512 : g->thr > 512 ? 512 : g->thr;
  return LLVMBuildICmp(L->b, LLVMIntSGE, ext8(L, x, g->xt, t), lb_ci(L, t, thr), "");
}

/* Byte b of a pixel from 8 channels at src (channel stride cs): a vector compare when the
 * channels are contiguous, else bit by bit; only the first n (< 8) when n is given. */
static LLVMValueRef pix_byte(lb_lw *L, const bgeo *g, LLVMValueRef src, int64_t cs, int n) {
  if (n == 8 && cs == 1)
    return LLVMBuildBitCast(L->b, ge_thr(L, g, lb_load(L, vec(L->t_i8, 8), src, 1)), L->t_i8, "");
  LLVMValueRef acc = LLVMConstInt(L->t_i8, 0, 0);
  for (int i = 0; i < n; i++) {
    LLVMValueRef e = lb_load(L, L->t_i8, lb_gep(L, L->t_i8, src, lb_c64(L, i * cs)), 1);
    LLVMValueRef bit = LLVMBuildZExt(L->b, ge_thr(L, g, e), L->t_i8, "");
    acc = LLVMBuildOr(L->b, acc, LLVMBuildShl(L->b, bit, LLVMConstInt(L->t_i8, (unsigned)i, 0), ""), "");
  }
  return acc;
}

/* 64 contiguous channels at src as 8 bytes of bits on AArch64 (a <64 x i1> bitcast has no good
 * NEON lowering): 4 x (cmge, and with the bit weights 1, 2, .. 128), then 4 addp: pair sums,
 * quad sums, then the sums of 8 = the bytes; 17 instructions instead of 8 x (cmge, and, addv,
 * store). */
static LLVMValueRef pack64_neon(lb_lw *L, const bgeo *g, LLVMValueRef src) {
  LLVMTypeRef v16 = vec(L->t_i8, 16);
  LLVMValueRef wts[16], v[4];
  for (int i = 0; i < 16; i++) wts[i] = LLVMConstInt(L->t_i8, 1u << (i % 8), 0);
  for (int q = 0; q < 4; q++) {
    LLVMValueRef x = lb_load(L, v16, lb_gep(L, L->t_i8, src, lb_c64(L, 16 * q)), 1);
    v[q] = LLVMBuildAnd(L->b, LLVMBuildSExt(L->b, ge_thr(L, g, x), v16, ""), LLVMConstVector(wts, 16), "");
  }
  for (int n = 4; n > 1; n /= 2) /* 4 -> 2 -> 1 vectors */
    for (int q = 0; q < n / 2; q++)
      v[q] = lb_intr(L, "llvm.aarch64.neon.addp", v16, &v[2 * q], 2);
  v[1] = v[0];
  v[0] = lb_intr(L, "llvm.aarch64.neon.addp", v16, v, 2);
  return LLVMBuildExtractElement(L->b, LLVMBuildBitCast(L->b, v[0], vec(L->t_i64, 2), ""), lb_c32(L, 0), "");
}

/* The cg channels of one group from src (channel stride xs[1]) into Cb bytes at dst: 64 at a
 * time on AArch64 when they are contiguous, then 8 at a time, then the rest. */
static void group_bits(lb_lw *L, const bgeo *g, LLVMValueRef src, LLVMValueRef dst) {
  const char *tr = lb_spec_llvm_triple(L->spec);
  int64_t full = g->cg / 8, q = g->xs[1] == 1 && tr && !strncmp(tr, "aarch64", 7) ? g->cg / 64 : 0;
  if (q > 0) {
    lb_loop lq;
    lb_loop_begin(L, &lq, lb_c64(L, 0), lb_c64(L, q), 1);
    LLVMValueRef s64 = lb_gep(L, L->t_i8, src, mul64(L, lq.iv, 64));
    lb_store(L, pack64_neon(L, g, s64), lb_gep(L, L->t_i8, dst, mul64(L, lq.iv, 8)), 1);
    lb_loop_end(L, &lq);
  }
  if (full > q * 8) {
    lb_loop lc;
    lb_loop_begin(L, &lc, lb_c64(L, q * 8), lb_c64(L, full), 1);
    LLVMValueRef s8 = lb_gep(L, L->t_i8, src, mul64(L, lc.iv, 8 * g->xs[1]));
    lb_store(L, pix_byte(L, g, s8, g->xs[1], 8), lb_gep(L, L->t_i8, dst, lc.iv), 1);
    lb_loop_end(L, &lc);
  }
  if (g->cg % 8) {
    LLVMValueRef s8 = lb_gep(L, L->t_i8, src, lb_c64(L, full * 8 * g->xs[1]));
    lb_store(L, pix_byte(L, g, s8, g->xs[1], (int)(g->cg % 8)), lb_gep(L, L->t_i8, dst, lb_c64(L, full)), 1);
  }
}

/* Bit image: pixel p (n, h, w) at img + p * pix_bytes, group k's channels in bytes
 * [k * Cb, (k + 1) * Cb), 8 per byte; unused bits and bytes zero. */
static void binarize(lb_lw *L, const bgeo *g, LLVMValueRef x, LLVMValueRef img) {
  int64_t hw = g->H * g->W;
  lb_loop lp, lg;
  lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, g->N * hw), 1);
  LLVMValueRef n = LLVMBuildUDiv(L->b, lp.iv, lb_c64(L, hw), "");
  LLVMValueRef r = LLVMBuildURem(L->b, lp.iv, lb_c64(L, hw), "");
  LLVMValueRef h = LLVMBuildUDiv(L->b, r, lb_c64(L, g->W), "");
  LLVMValueRef w = LLVMBuildURem(L->b, r, lb_c64(L, g->W), "");
  LLVMValueRef off = add64(L, mul64(L, n, g->xs[0]), add64(L, mul64(L, h, g->xs[2]), mul64(L, w, g->xs[3])));
  LLVMValueRef src = lb_gep(L, L->t_i8, x, off), dst = lb_gep(L, L->t_i8, img, mul64(L, lp.iv, g->pix_bytes));
  lb_loop_begin(L, &lg, lb_c64(L, 0), lb_c64(L, g->G), 1);
  group_bits(L, g, lb_gep(L, L->t_i8, src, mul64(L, lg.iv, g->cg * g->xs[1])),
             lb_gep(L, L->t_i8, dst, mul64(L, lg.iv, g->Cb)));
  lb_loop_end(L, &lg);
  if (g->pix_bytes > g->G * g->Cb)
    LLVMBuildMemSet(L->b, lb_gep(L, L->t_i8, dst, lb_c64(L, g->G * g->Cb)), LLVMConstInt(L->t_i8, 0, 0),
                    lb_c64(L, g->pix_bytes - g->G * g->Cb), 1);
  lb_loop_end(L, &lp);
}

/* ---- gathered rows ------------------------------------------------------------------------ */

/* Output pixel r (i64) as (n, oh, ow). */
static void pixel_of(lb_lw *L, const bgeo *g, LLVMValueRef r, LLVMValueRef *n, LLVMValueRef *oh,
                     LLVMValueRef *ow) {
  LLVMValueRef hw = lb_c64(L, g->OH * g->OW), rem = LLVMBuildURem(L->b, r, hw, "");
  *n = LLVMBuildUDiv(L->b, r, hw, "");
  *oh = LLVMBuildUDiv(L->b, rem, lb_c64(L, g->OW), "");
  *ow = LLVMBuildURem(L->b, rem, lb_c64(L, g->OW), "");
}

/* Tap (kh, kw) of row i: with copy, its Cb bytes from the image and 0xff mask bytes when in
 * bounds, else zero bytes in both; cnt (unless NULL) counts the valid taps. */
static void gather_tap(lb_lw *L, const bk *k, LLVMValueRef i, LLVMValueRef n, LLVMValueRef ih,
                       LLVMValueRef iw, LLVMValueRef t, LLVMValueRef cnt, int copy) {
  const bgeo *g = k->g;
  LLVMValueRef at = add64(L, mul64(L, i, g->words * 8), mul64(L, t, g->Cb));
  LLVMValueRef xd = lb_gep(L, L->t_i8, k->xr, at), md = lb_gep(L, L->t_i8, k->mr, at);
  LLVMValueRef ok = LLVMBuildAnd(L->b, LLVMBuildICmp(L->b, LLVMIntULT, ih, lb_c64(L, g->H), ""),
                                 LLVMBuildICmp(L->b, LLVMIntULT, iw, lb_c64(L, g->W), ""), "");
  LLVMValueRef cb = lb_c64(L, g->Cb);
  LLVMBasicBlockRef join = lb_if_begin(L, ok);
  LLVMValueRef p = add64(L, mul64(L, n, g->H * g->W), add64(L, mul64(L, ih, g->W), iw));
  p = add64(L, mul64(L, p, g->pix_bytes), mul64(L, k->grp, g->Cb));
  if (copy) LLVMBuildMemCpy(L->b, xd, 1, lb_gep(L, L->t_i8, k->img, p), 1, cb);
  if (copy) LLVMBuildMemSet(L->b, md, LLVMConstInt(L->t_i8, 0xff, 0), cb, 1);
  if (cnt) lb_store(L, LLVMBuildAdd(L->b, lb_load(L, L->t_i32, cnt, 4), lb_c32(L, 1), ""), cnt, 4);
  lb_if_end(L, join);
  if (!copy) return;
  LLVMBasicBlockRef skip = lb_if_begin(L, LLVMBuildNot(L->b, ok, ""));
  LLVMBuildMemSet(L->b, xd, LLVMConstInt(L->t_i8, 0, 0), cb, 1);
  LLVMBuildMemSet(L->b, md, LLVMConstInt(L->t_i8, 0, 0), cb, 1);
  lb_if_end(L, skip);
}

/* The taps of row i (pixel n, oh, ow): copied into xr / mr (copy) and counted in cnt (unless
 * NULL). */
static void taps(lb_lw *L, const bk *k, LLVMValueRef i, LLVMValueRef n, LLVMValueRef oh,
                 LLVMValueRef ow, LLVMValueRef cnt, int copy) {
  const bgeo *g = k->g;
  lb_loop lh, lw;
  lb_loop_begin(L, &lh, lb_c64(L, 0), lb_c64(L, g->KH), 1);
  LLVMValueRef ih = LLVMBuildSub(L->b, add64(L, mul64(L, oh, g->sh), mul64(L, lh.iv, g->dh)), lb_c64(L, g->ph), "");
  lb_loop_begin(L, &lw, lb_c64(L, 0), lb_c64(L, g->KW), 1);
  LLVMValueRef iw = LLVMBuildSub(L->b, add64(L, mul64(L, ow, g->sw), mul64(L, lw.iv, g->dw)), lb_c64(L, g->pw), "");
  gather_tap(L, k, i, n, ih, iw, add64(L, mul64(L, lh.iv, g->KW), lw.iv), cnt, copy);
  lb_loop_end(L, &lw);
  lb_loop_end(L, &lh);
}

/* Per row: output / residual offsets, first-tap image byte (direct words), kv; the taps too
 * unless direct words. */
static void row_info(lb_lw *L, const bk *k, LLVMValueRef row0, LLVMValueRef rows) {
  const bgeo *g = k->g;
  int64_t tail = g->words * 8 - g->T * g->Cb;
  lb_loop li;
  lb_loop_begin(L, &li, lb_c64(L, 0), rows, 1);
  LLVMValueRef n, oh, ow, cnt = lb_alloca(L, L->t_i32, NULL);
  pixel_of(L, g, add64(L, row0, li.iv), &n, &oh, &ow);
  /* the output (and residual) offsets of the row, once for every column block */
  LLVMValueRef at = add64(L, mul64(L, oh, g->ys[2]), mul64(L, ow, g->ys[3]));
  lb_store(L, add64(L, mul64(L, n, g->ys[0]), at), lb_gep(L, L->t_i64, k->yoff, li.iv), 8);
  at = add64(L, mul64(L, oh, g->rs[2]), mul64(L, ow, g->rs[3]));
  if (k->res) lb_store(L, add64(L, mul64(L, n, g->rs[0]), at), lb_gep(L, L->t_i64, k->roff, li.iv), 8);
  if (k->wofs) { /* ((n H + oh sh - ph) W + ow sw - pw) pix_bytes + grp Cb */
    LLVMValueRef p = add64(L, mul64(L, n, g->H), LLVMBuildSub(L->b, mul64(L, oh, g->sh), lb_c64(L, g->ph), ""));
    p = add64(L, mul64(L, p, g->W), LLVMBuildSub(L->b, mul64(L, ow, g->sw), lb_c64(L, g->pw), ""));
    p = add64(L, mul64(L, p, g->pix_bytes), mul64(L, k->grp, g->Cb));
    lb_store(L, p, lb_gep(L, L->t_i64, k->xoff, li.iv), 8);
  }
  lb_store(L, lb_c32(L, 0), cnt, 4);
  if (tail > 0) {
    LLVMValueRef at = lb_c64(L, g->T * g->Cb), z = LLVMConstInt(L->t_i8, 0, 0);
    at = add64(L, mul64(L, li.iv, g->words * 8), at);
    LLVMBuildMemSet(L->b, lb_gep(L, L->t_i8, k->xr, at), z, lb_c64(L, tail), 1);
    LLVMBuildMemSet(L->b, lb_gep(L, L->t_i8, k->mr, at), z, lb_c64(L, tail), 1);
  }
  taps(L, k, li.iv, n, oh, ow, cnt, k->wofs == NULL);
  LLVMValueRef kv = LLVMBuildMul(L->b, lb_load(L, L->t_i32, cnt, 4), lb_c32(L, (int32_t)g->cg), "");
  lb_store(L, kv, lb_gep(L, L->t_i32, k->kv, li.iv), 4);
  lb_loop_end(L, &li);
}

/* Whether row i has every tap inside the image (kv = cg * T). */
static LLVMValueRef interior(lb_lw *L, const bk *k, LLVMValueRef i) {
  LLVMValueRef kv = lb_load(L, L->t_i32, lb_gep(L, L->t_i32, k->kv, i), 4);
  return LLVMBuildICmp(L->b, LLVMIntEQ, kv, lb_c32(L, (int32_t)(k->g->cg * k->g->T)), "");
}

/* Rows [row0, row0 + rows) into xr / mr (words * 8 bytes each) and kv (i32 per row). With
 * direct words, only the rows mism_rows reads gathered: those with a tap in the padding and
 * the others of their 4-row step (rows_step takes [0, rows & -4) 4 at a time). */
static void gather(lb_lw *L, const bk *k, LLVMValueRef row0, LLVMValueRef rows) {
  row_info(L, k, row0, rows);
  if (!k->wofs) return;
  LLVMValueRef full = LLVMBuildAnd(L->b, rows, lb_c64(L, -(int64_t)RR), "");
  lb_loop li;
  lb_loop_begin(L, &li, lb_c64(L, 0), rows, 1);
  LLVMValueRef g0 = LLVMBuildAnd(L->b, li.iv, lb_c64(L, -(int64_t)RR), "");
  LLVMValueRef in4 = LLVMBuildICmp(L->b, LLVMIntSLT, li.iv, full, ""), all = interior(L, k, li.iv);
  for (int r = 0; r < RR; r++) { /* rows past the end (in4 false) read themselves */
    LLVMValueRef ri = LLVMBuildSelect(L->b, in4, add64(L, g0, lb_c64(L, r)), li.iv, "");
    all = LLVMBuildAnd(L->b, all, interior(L, k, ri), "");
  }
  LLVMBasicBlockRef join = lb_if_begin(L, LLVMBuildNot(L->b, all, ""));
  LLVMValueRef n, oh, ow;
  pixel_of(L, k->g, add64(L, row0, li.iv), &n, &oh, &ow);
  taps(L, k, li.iv, n, oh, ow, NULL, 1);
  lb_if_end(L, join);
  lb_loop_end(L, &li);
}

/* ---- the kernel ---------------------------------------------------------------------------- */

/* cnt lanes of 8-bit (or i32) values at base + lane * stride, as <8 x i32> (missing lanes 0). */
static LLVMValueRef load_lanes(lb_lw *L, LLVMValueRef base, lb_dtype dt, int64_t stride, int cnt) {
  LLVMTypeRef v32 = vec(L->t_i32, BN);
  if (cnt == BN && stride == 1 && dt != LB_DTYPE_I32)
    return ext8(L, lb_load(L, vec(L->t_i8, BN), base, 1), dt, v32);
  LLVMValueRef v = LLVMConstNull(v32);
  for (int l = 0; l < cnt; l++) {
    LLVMValueRef e = lb_load(L, lb_lw_type(L, dt), lb_gep(L, lb_lw_type(L, dt), base, lb_c64(L, l * stride)), 1);
    if (dt != LB_DTYPE_I32) e = ext8(L, e, dt, L->t_i32);
    v = LLVMBuildInsertElement(L->b, v, e, lb_c32(L, l), "");
  }
  return v;
}

static void store_lanes(lb_lw *L, LLVMValueRef v, LLVMValueRef base, lb_dtype dt, int64_t stride, int cnt) {
  int wide = dt == LB_DTYPE_I32;
  LLVMTypeRef et = wide ? L->t_i32 : L->t_i8;
  if (!wide) v = LLVMBuildTrunc(L->b, v, vec(L->t_i8, BN), "");
  if (cnt == BN && stride == 1) {
    lb_store(L, v, base, 1);
    return;
  }
  for (int l = 0; l < cnt; l++)
    lb_store(L, LLVMBuildExtractElement(L->b, v, lb_c32(L, l), ""), lb_gep(L, et, base, lb_c64(L, l * stride)), 1);
}

/* x86 without AVX512-VPOPCNTDQ and AArch64 count bits per byte (vpshufb nibble lookup, cnt),
 * add the byte counts of up to BW words and widen the sums once (vpsadbw, uaddlp): per word and
 * 16 bytes 7 instead of 9 AVX2 instructions (x86-64-avx2, 56x56x64 3x3: 0.37 -> 0.33 ms) and 2
 * instead of 5 NEON ones. With vpopcntq (one instruction per word: Zen 4/5, Ice Lake and later;
 * byte counts measured 18% slower on Zen 5) and elsewhere: llvm.ctpop on i64 lanes per word. */
#define BW 31 /* words whose byte counts (<= 8 each) fit a u8 sum: 31 * 8 = 248 */

static int byte_counts(lb_lw *L) {
  static const char *const vpopcntq[] = {"znver4", "znver5", "icelake", "tigerlake", "rocketlake",
                                         "sapphirerapids", "emeraldrapids", "graniterapids",
                                         "alderlake-avx512", "diamondrapids"};
  const char *t = lb_spec_llvm_triple(L->spec), *c = lb_spec_llvm_cpu(L->spec);
  const char *f = lb_spec_llvm_features(L->spec);
  if (t && !strncmp(t, "aarch64", 7)) return 1;
  if (!t || strncmp(t, "x86_64", 6) || (f && strstr(f, "+avx512vpopcntdq"))) return 0;
  for (size_t i = 0; c && i < sizeof vpopcntq / sizeof vpopcntq[0]; i++)
    if (!strncmp(c, vpopcntq[i], strlen(vpopcntq[i]))) return 0;
  return 1;
}

/* The <64 x i8> byte counts c8 as <8 x i64> sums of their 8-byte lanes (one per column). */
static LLVMValueRef widen_counts(lb_lw *L, LLVMValueRef c8) {
  int x86 = !strncmp(lb_spec_llvm_triple(L->spec), "x86_64", 6), n = x86 ? 2 : 4, len = 64 / n;
  LLVMValueRef part[4], m[64];
  for (int q = 0; q < n; q++) {
    for (int i = 0; i < len; i++) m[i] = lb_c32(L, q * len + i);
    LLVMValueRef v = LLVMBuildShuffleVector(L->b, c8, LLVMGetUndef(LLVMTypeOf(c8)), LLVMConstVector(m, (unsigned)len), "");
    if (x86) {
      LLVMValueRef a[2] = {v, LLVMConstNull(LLVMTypeOf(v))};
      part[q] = lb_intr(L, "llvm.x86.avx2.psad.bw", NULL, a, 2);
      continue;
    }
    for (int w = 8; w <= 32; w *= 2) { /* u8 -> u16 -> u32 -> u64 pair sums */
      LLVMTypeRef tys[2] = {vec(LLVMIntTypeInContext(L->ctx, (unsigned)(2 * w)), 64 / w), LLVMTypeOf(v)};
      unsigned id = LLVMLookupIntrinsicID("llvm.aarch64.neon.uaddlp", 24);
      v = LLVMBuildCall2(L->b, LLVMIntrinsicGetType(L->ctx, id, tys, 2),
                         LLVMGetIntrinsicDeclaration(L->mod, id, tys, 2), &v, 1, "");
    }
    part[q] = v;
  }
  for (int i = 0; i < 8; i++) m[i] = lb_c32(L, i);
  if (n == 4) {
    part[0] = LLVMBuildShuffleVector(L->b, part[0], part[1], LLVMConstVector(m, 4), "");
    part[1] = LLVMBuildShuffleVector(L->b, part[2], part[3], LLVMConstVector(m, 4), "");
  }
  return LLVMBuildShuffleVector(L->b, part[0], part[1], LLVMConstVector(m, 8), "");
}

typedef struct wrows {
  LLVMValueRef xrow[RR], mrow[RR], wblk;
  LLVMValueRef tbl; /* direct words: byte offsets of the words from xrow (k->wofs) */
  int R;
} wrows;

/* Words [w0, w0 + n) of the R rows into the accumulators acc (<8 x i64> popcounts, or <64 x i8>
 * byte counts when bytes); the weight vector is loaded once for the R rows. */
static void count_words(lb_lw *L, const wrows *wr, LLVMValueRef w0, LLVMValueRef n, int bytes,
                        LLVMValueRef *acc) {
  LLVMTypeRef v64 = vec(L->t_i64, BN), ct = bytes ? vec(L->t_i8, 8 * BN) : v64;
  lb_loop lw;
  lb_loop_begin(L, &lw, lb_c64(L, 0), n, 1);
  LLVMValueRef wi = add64(L, w0, lw.iv);
  LLVMValueRef wv = lb_load(L, v64, lb_gep(L, L->t_i64, wr->wblk, mul64(L, wi, BN)), 64);
  LLVMValueRef off = wr->tbl ? lb_load(L, L->t_i64, lb_gep(L, L->t_i64, wr->tbl, wi), 8) : NULL;
  for (int r = 0; r < wr->R; r++) {
    LLVMValueRef xp = off ? lb_gep(L, L->t_i8, wr->xrow[r], off) : lb_gep(L, L->t_i64, wr->xrow[r], wi);
    LLVMValueRef xw = lb_splat(L, lb_load(L, L->t_i64, xp, 8), BN);
    LLVMValueRef d = LLVMBuildXor(L->b, xw, wv, "");
    if (wr->mrow[r])
      d = LLVMBuildAnd(L->b, d, lb_splat(L, lb_load(L, L->t_i64, lb_gep(L, L->t_i64, wr->mrow[r], wi), 8), BN), "");
    d = LLVMBuildBitCast(L->b, d, ct, "");
    d = lb_intr(L, "llvm.ctpop", ct, &d, 1);
    lb_store(L, LLVMBuildAdd(L->b, lb_load(L, ct, acc[r], 64), d, ""), acc[r], 64);
  }
  lb_loop_end(L, &lw);
}

/* One batch of at most BW words from word w0 in byte counts, widened into the i64 sums. */
static void count_batch(lb_lw *L, const wrows *wr, LLVMValueRef w0, int64_t n, LLVMValueRef *c8,
                        LLVMValueRef *sum) {
  LLVMTypeRef v8 = vec(L->t_i8, 8 * BN), v64 = vec(L->t_i64, BN);
  for (int r = 0; r < wr->R; r++) lb_store(L, LLVMConstNull(v8), c8[r], 64);
  count_words(L, wr, w0, lb_c64(L, n), 1, c8);
  for (int r = 0; r < wr->R; r++) {
    LLVMValueRef s = widen_counts(L, lb_load(L, v8, c8[r], 64));
    lb_store(L, LLVMBuildAdd(L->b, lb_load(L, v64, sum[r], 64), s, ""), sum[r], 64);
  }
}

/* For R rows starting at local row i: sum over the words of popcount((x xor w) and mask) for 8
 * columns, <8 x i64> each into out[]. Unmasked rows read the image itself with direct words. */
static void mismatches(lb_lw *L, const bk *k, LLVMValueRef i, int R, LLVMValueRef wblk, int masked,
                       LLVMValueRef *out) {
  const bgeo *g = k->g;
  LLVMTypeRef v64 = vec(L->t_i64, BN);
  LLVMValueRef slot[RR], c8[RR];
  wrows wr = {.wblk = wblk, .R = R, .tbl = masked ? NULL : k->wofs};
  for (int r = 0; r < R; r++) {
    slot[r] = lb_alloca(L, v64, NULL);
    c8[r] = lb_alloca(L, vec(L->t_i8, 8 * BN), NULL);
    lb_store(L, LLVMConstNull(v64), slot[r], 64);
    LLVMValueRef ri = add64(L, i, lb_c64(L, r)), at = mul64(L, ri, g->words);
    wr.xrow[r] = lb_gep(L, L->t_i64, k->xr, at);
    wr.mrow[r] = masked ? lb_gep(L, L->t_i64, k->mr, at) : NULL;
    if (wr.tbl) wr.xrow[r] = lb_gep(L, L->t_i8, k->img, lb_load(L, L->t_i64, lb_gep(L, L->t_i64, k->xoff, ri), 8));
  }
  int64_t full = g->words / BW;
  if (!byte_counts(L)) {
    count_words(L, &wr, lb_c64(L, 0), lb_c64(L, g->words), 0, slot);
  } else {
    if (full > 0) {
      lb_loop lb;
      lb_loop_begin(L, &lb, lb_c64(L, 0), lb_c64(L, full), 1);
      count_batch(L, &wr, mul64(L, lb.iv, BW), BW, c8, slot);
      lb_loop_end(L, &lb);
    }
    if (g->words % BW) count_batch(L, &wr, lb_c64(L, full * BW), g->words % BW, c8, slot);
  }
  for (int r = 0; r < R; r++) out[r] = lb_load(L, v64, slot[r], 64);
}

/* mismatches, where rows whose taps all lie inside the image (kv = cg * T: the interior, most
 * rows) skip the mask. */
static void mism_rows(lb_lw *L, const bk *k, LLVMValueRef i, int R, LLVMValueRef wblk, LLVMValueRef *out) {
  if (!k->g->masked) {
    mismatches(L, k, i, R, wblk, 0, out);
    return;
  }
  LLVMTypeRef v64 = vec(L->t_i64, BN);
  LLVMValueRef all = LLVMConstInt(L->t_i1, 1, 0), slot[RR], tmp[RR];
  for (int r = 0; r < R; r++) {
    LLVMValueRef kv = lb_load(L, L->t_i32, lb_gep(L, L->t_i32, k->kv, add64(L, i, lb_c64(L, r))), 4);
    all = LLVMBuildAnd(L->b, all, LLVMBuildICmp(L->b, LLVMIntEQ, kv, lb_c32(L, (int32_t)(k->g->cg * k->g->T)), ""), "");
    slot[r] = lb_alloca(L, v64, NULL);
  }
  for (int masked = 0; masked < 2; masked++) {
    LLVMBasicBlockRef join = lb_if_begin(L, masked ? LLVMBuildNot(L->b, all, "") : all);
    mismatches(L, k, i, R, wblk, masked, tmp);
    for (int r = 0; r < R; r++) lb_store(L, tmp[r], slot[r], 64);
    lb_if_end(L, join);
  }
  for (int r = 0; r < R; r++) out[r] = lb_load(L, v64, slot[r], 64);
}

/* Output offset of pixel r (i64) in a tensor of [n, c, h, w] strides st. */
static LLVMValueRef pix_off(lb_lw *L, const bgeo *g, LLVMValueRef r, const int64_t *st) {
  LLVMValueRef n, oh, ow;
  pixel_of(L, g, r, &n, &oh, &ow);
  return add64(L, mul64(L, n, st[0]), add64(L, mul64(L, oh, st[2]), mul64(L, ow, st[3])));
}

/* Pixel offset of row r (local i) in the output (or the residual): stored by gather, else
 * (the image is the row matrix) computed. */
static LLVMValueRef row_off(lb_lw *L, const bk *k, LLVMValueRef r, LLVMValueRef i, int res) {
  if (k->g->direct) return pix_off(L, k->g, r, res ? k->g->rs : k->g->ys);
  return lb_load(L, L->t_i64, lb_gep(L, L->t_i64, res ? k->roff : k->yoff, i), 8);
}

/* The columns of one block being computed. */
typedef struct bcols {
  LLVMValueRef n0, wblk, bias, mul; /* first output channel, weights, bias and multipliers */
  int cnt;                          /* valid columns */
} bcols;

/* Local row i (global row0 + i): acc = bias + kv - 2 * mism, requantized (or not), stored. */
static void row_out(lb_lw *L, const bk *k, const bcols *c, LLVMValueRef row0, LLVMValueRef i,
                    LLVMValueRef mism64) {
  const bgeo *g = k->g;
  LLVMTypeRef v32 = vec(L->t_i32, BN);
  LLVMValueRef r = add64(L, row0, i);
  LLVMValueRef kv = g->masked ? lb_load(L, L->t_i32, lb_gep(L, L->t_i32, k->kv, i), 4)
                              : lb_c32(L, (int32_t)(g->cg * g->T));
  LLVMValueRef mism = LLVMBuildTrunc(L->b, mism64, v32, "");
  LLVMValueRef acc = LLVMBuildAdd(L->b, c->bias, lb_splat(L, kv, BN), "");
  acc = LLVMBuildSub(L->b, acc, LLVMBuildShl(L->b, mism, lb_ci(L, v32, 1), ""), "");
  if (k->yt != LB_DTYPE_I32) {
    LLVMValueRef res = NULL;
    if (k->res) {
      LLVMValueRef rb = lb_gep(L, L->t_i8, k->res, add64(L, row_off(L, k, r, i, 1), mul64(L, c->n0, g->rs[1])));
      res = LLVMBuildSub(L->b, load_lanes(L, rb, k->rt, g->rs[1], c->cnt), lb_ci(L, v32, k->zr), "");
    }
    LLVMValueRef mr = LLVMConstReal(L->t_f32, k->mres);
    acc = lb_qrequant(L, NULL, acc, c->mul, res, mr, k->zy, k->lo, k->hi);
  }
  LLVMTypeRef et = k->yt == LB_DTYPE_I32 ? L->t_i32 : L->t_i8;
  LLVMValueRef yb = lb_gep(L, et, k->y, add64(L, row_off(L, k, r, i, 0), mul64(L, c->n0, g->ys[1])));
  store_lanes(L, acc, yb, k->yt, g->ys[1], c->cnt);
}

/* Rows [lo, hi) (local, i64 values) R at a time; hi - lo must be a multiple of R. */
static void rows_step(lb_lw *L, const bk *k, const bcols *c, LLVMValueRef row0, LLVMValueRef lo,
                      LLVMValueRef hi, int R) {
  LLVMValueRef m[RR];
  lb_loop li;
  lb_loop_begin(L, &li, lo, hi, R);
  mism_rows(L, k, li.iv, R, c->wblk, m);
  for (int r = 0; r < R; r++) row_out(L, k, c, row0, add64(L, li.iv, lb_c64(L, r)), m[r]);
  lb_loop_end(L, &li);
}

/* Column block nb (cnt valid columns) for rows [row0, row0 + rows) gathered at xr / mr / kv:
 * RR rows at a time, then the rest one by one. */
static void block(lb_lw *L, const bk *k, LLVMValueRef nb, int cnt, LLVMValueRef row0, LLVMValueRef rows) {
  const bgeo *g = k->g;
  LLVMTypeRef v32 = vec(L->t_i32, BN);
  LLVMValueRef col = add64(L, mul64(L, k->grp, g->Npg), mul64(L, nb, BN)); /* in the blocks */
  bcols c = {add64(L, mul64(L, k->grp, g->mg), mul64(L, nb, BN)), /* output channel */
             lb_gep(L, L->t_i64, k->w, mul64(L, col, g->words)),
             lb_load(L, v32, lb_gep(L, L->t_i32, k->bias, col), 4),
             lb_load(L, vec(L->t_f32, BN), lb_gep(L, L->t_f32, k->mul, col), 4), cnt};
  LLVMValueRef full = LLVMBuildAnd(L->b, rows, lb_c64(L, -(int64_t)RR), "");
  rows_step(L, k, &c, row0, lb_c64(L, 0), full, RR);
  rows_step(L, k, &c, row0, full, rows, 1);
}

static void blocks(lb_lw *L, const bk *k, LLVMValueRef row0, LLVMValueRef rows) {
  int64_t full = k->g->mg / BN;
  if (full > 0) {
    lb_loop ln;
    lb_loop_begin(L, &ln, lb_c64(L, 0), lb_c64(L, full), 1);
    block(L, k, ln.iv, BN, row0, rows);
    lb_loop_end(L, &ln);
  }
  if (k->g->mg % BN) block(L, k, lb_c64(L, full), (int)(k->g->mg % BN), row0, rows);
}

/* ---- entry point --------------------------------------------------------------------------- */

/* Scratch: the bit image, then (unless the image is the row matrix) RB gathered rows, their
 * masks, valid-bit counts, output / residual offsets and first-tap image bytes. */
static void place(lb_lw *L, lb_op_args *a, const bgeo *g, bk *k) {
  size_t img = (size_t)(g->N * g->H * g->W * g->pix_bytes + 63) / 64 * 64;
  size_t rowb = (size_t)(RB * g->words * 8);
  k->img = a->scratch;
  k->xr = lb_gep(L, L->t_i8, a->scratch, lb_c64(L, (int64_t)img));
  k->mr = lb_gep(L, L->t_i8, a->scratch, lb_c64(L, (int64_t)(img + rowb)));
  k->kv = lb_gep(L, L->t_i8, a->scratch, lb_c64(L, (int64_t)(img + 2 * rowb)));
  k->yoff = lb_gep(L, L->t_i8, a->scratch, lb_c64(L, (int64_t)(img + 2 * rowb + RB * 4)));
  k->roff = lb_gep(L, L->t_i8, a->scratch, lb_c64(L, (int64_t)(img + 2 * rowb + RB * 12)));
  k->xoff = lb_gep(L, L->t_i8, a->scratch, lb_c64(L, (int64_t)(img + 2 * rowb + RB * 20)));
  a->scratch_bytes = g->direct ? img + 64 : img + 2 * rowb + RB * 28 + 64;
  if (g->direct) k->xr = k->img;
}

/* Per group: blocks of RB gathered rows (or the image itself), every column block. */
static void rows_loop(lb_lw *L, bk *k) {
  const bgeo *g = k->g;
  if (g->direct) {
    k->grp = lb_c64(L, 0);
    blocks(L, k, lb_c64(L, 0), lb_c64(L, g->rows));
    return;
  }
  lb_loop lg, lr;
  lb_loop_begin(L, &lg, lb_c64(L, 0), lb_c64(L, g->G), 1);
  k->grp = lg.iv;
  lb_loop_begin(L, &lr, lb_c64(L, 0), lb_c64(L, g->rows / RB * RB), RB);
  gather(L, k, lr.iv, lb_c64(L, RB));
  blocks(L, k, lr.iv, lb_c64(L, RB));
  lb_loop_end(L, &lr);
  if (g->rows % RB) {
    LLVMValueRef r0 = lb_c64(L, g->rows / RB * RB), rr = lb_c64(L, g->rows % RB);
    gather(L, k, r0, rr);
    blocks(L, k, r0, rr);
  }
  lb_loop_end(L, &lg);
}

int lb_lower_bin(lb_lw *L, lb_op_args *a) {
  const lb_node *nd = a->node;
  if (nd->op == LB_OP_CONV && a->in[0].rank != 3 && a->in[0].rank != 4)
    return lb_diag_err(L->diag, LB_ERR_INPUT, "binary conv supports 1-D and 2-D convs only");
  if (nd->op == LB_OP_GEMM && (!nd->attr.trans_b || nd->attr.alpha != 1.0f ||
                               (in_val(a, 2) && nd->attr.beta != 1.0f)))
    return lb_diag_err(L->diag, LB_ERR_INPUT, "binary gemm needs trans_b = 1 and alpha = beta = 1");
  bgeo g;
  geom(a, &g);
  const lb_value *y = &a->g->values[nd->out[0]], *r = in_val(a, 3);
  bk k = {.g = &g, .y = a->out[0].base, .yt = a->out[0].dt};
  if (r) k.res = a->in[3].base, k.rt = a->in[3].dt, k.zr = qz(r, 0);
  if (y->q.n && k.yt != LB_DTYPE_I32) {
    k.zy = qz(y, 0);
    lb_qact_bounds(nd->attr.act, nd->attr.act_min, nd->attr.act_max, y->dtype, qs(y, 0), k.zy, &k.lo, &k.hi);
    k.mres = r ? lb_qmul(qs(r, 0), 1.0f, qs(y, 0)) : 0.0f;
  }
  LB_TRY(consts(L, a, &g, &k));
  place(L, a, &g, &k);
  binarize(L, &g, a->in[0].base, k.img);
  rows_loop(L, &k);
  return 0;
}
