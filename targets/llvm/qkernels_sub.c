/* LLVM emitters of the sub-byte kernels: int4/int2 weights decompressed panel by panel (one
 * vector load, then a shift left and an arithmetic shift right per bit field) in front of the
 * int8 micro-kernel of qkernels_gemm.c, and binary dense layers (sign bits of 64 activations by
 * one vector compare into a mask, XOR with 8 weight columns at once, llvm.ctpop: vpopcntq with
 * AVX512-VPOPCNTDQ, a vpshufb nibble lookup on AVX2, cnt + uaddlp on NEON). Invariant: both
 * compute the interpreter's int32 accumulators exactly and end in lb_qrequant. */
#include <stdlib.h>
#include <string.h>

#include "lower.h"
#include "subkernels.h"

static LLVMTypeRef vec(LLVMTypeRef t, int n) { return LLVMVectorType(t, (unsigned)n); }
static LLVMValueRef mul64(lb_lw *L, LLVMValueRef a, int64_t b) {
  return LLVMBuildMul(L->b, a, lb_c64(L, b), "");
}

/* ---- int4 / int2 weights --------------------------------------------------------------- */

size_t lb_subgemm_scratch(const lb_qk_shape *s, int64_t Kp) {
  int64_t per_chunk = LB_SUB_CHUNK * 4, n = (Kp * s->nr + per_chunk - 1) / per_chunk * per_chunk;
  return (size_t)(n * (s->wide ? 2 : 1)) + 64;
}

/* Decompresses one panel (panel_bytes at src) into dst: chunk c, field f goes to elements
 * [c * 64 * G + f * 64, +64). Sign extension: (x << (8 - bits * (f + 1))) >>a (8 - bits). */
static void unpack_panel(lb_lw *L, const lb_subpacked *sp, LLVMValueRef src, LLVMValueRef dst) {
  int G = 8 / sp->bits;
  LLVMTypeRef v8 = vec(L->t_i8, LB_SUB_CHUNK), i16 = LLVMInt16TypeInContext(L->ctx);
  LLVMTypeRef et = sp->wide ? i16 : L->t_i8;
  lb_loop lc;
  lb_loop_begin(L, &lc, lb_c64(L, 0), lb_c64(L, sp->panel_bytes / LB_SUB_CHUNK), 1);
  LLVMValueRef x = lb_load(L, v8, lb_gep(L, L->t_i8, src, mul64(L, lc.iv, LB_SUB_CHUNK)), 16);
  LLVMValueRef base = mul64(L, lc.iv, (int64_t)LB_SUB_CHUNK * G);
  for (int f = 0; f < G; f++) {
    LLVMValueRef v = x;
    int up = 8 - sp->bits * (f + 1);
    if (up) v = LLVMBuildShl(L->b, v, lb_ci(L, v8, up), "");
    v = LLVMBuildAShr(L->b, v, lb_ci(L, v8, 8 - sp->bits), "");
    if (sp->wide) v = LLVMBuildSExt(L->b, v, vec(i16, LB_SUB_CHUNK), "");
    LLVMValueRef at = LLVMBuildAdd(L->b, base, lb_c64(L, (int64_t)f * LB_SUB_CHUNK), "");
    lb_store(L, v, lb_gep(L, et, dst, at), 16);
  }
  lb_loop_end(L, &lc);
}

typedef struct subrun {
  const lb_qgemm_job *j;
  const lb_subpacked *sp;
  LLVMValueRef bsub, buf, a_pk, row0, rows;
} subrun;

/* Panel p (i64 value): decompress, then the int8 tiles on its cols columns. */
static void run_panel(lb_lw *L, const subrun *r, LLVMValueRef p, int64_t cols) {
  const lb_qgemm_job *j = r->j;
  unpack_panel(L, r->sp, lb_gep(L, L->t_i8, r->bsub, mul64(L, p, r->sp->panel_bytes)), r->buf);
  LLVMValueRef n0 = mul64(L, p, j->s->nr);
  lb_qgemm_job jp = *j;
  jp.N = cols;
  jp.Np = j->s->nr;
  jp.b = r->buf;
  jp.bias = lb_gep(L, L->t_i32, j->bias, n0);
  jp.mult = lb_gep(L, L->t_f32, j->mult, n0);
  LLVMTypeRef ot = j->out_dt == LB_DTYPE_I32 ? L->t_i32 : L->t_i8;
  jp.out = lb_gep(L, ot, j->out, mul64(L, n0, j->so_n));
  if (j->res) jp.res = lb_gep(L, L->t_i8, j->res, mul64(L, n0, j->sr_n));
  lb_qgemm_emit(L, &jp, r->a_pk, r->row0, r->rows);
}

void lb_subgemm_emit(lb_lw *L, const lb_qgemm_job *j, const lb_subpacked *sp, LLVMValueRef bsub,
                     LLVMValueRef panel_buf, LLVMValueRef a_pk, LLVMValueRef row0,
                     LLVMValueRef rows) {
  subrun r = {j, sp, bsub, panel_buf, a_pk, row0, rows};
  int64_t nr = j->s->nr, full = j->N / nr;
  if (full > 0) {
    lb_loop lp;
    lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, full), 1);
    run_panel(L, &r, lp.iv, nr);
    lb_loop_end(L, &lp);
  }
  if (j->N % nr) run_panel(L, &r, lb_c64(L, full), j->N % nr);
}

/* ---- binary dense ------------------------------------------------------------------------ */

#define BN 8 /* weight columns per vector: <8 x i64> */

static int64_t words_of(const lb_bdense *d) { return (d->K + 63) / 64; }

size_t lb_bgemm_scratch(const lb_bdense *d) { return (size_t)(d->M * words_of(d) * 8) + 64; }

/* x >= thr on 8-bit values widened to i16 (thr clamped: it may lie outside the 8-bit range). */
static LLVMValueRef ge_thr(lb_lw *L, const lb_bdense *d, LLVMValueRef x, int lanes) {
  LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx), t = lanes > 1 ? vec(i16, lanes) : i16;
  LLVMValueRef w = d->xt == LB_DTYPE_U8 ? LLVMBuildZExt(L->b, x, t, "") : LLVMBuildSExt(L->b, x, t, "");
  int32_t thr = d->thr < -512 ? -512 : d->thr > 512 ? 512 : d->thr;
  return LLVMBuildICmp(L->b, LLVMIntSGE, w, lb_ci(L, t, thr), "");
}

/* Row m of x into words of sign bits: full words by a <64 x i1> mask, the tail bit by bit. */
static void binarize_row(lb_lw *L, const lb_bdense *d, LLVMValueRef x, LLVMValueRef xb,
                         LLVMValueRef m) {
  int64_t words = words_of(d), full = d->K / 64;
  LLVMValueRef xrow = lb_gep(L, L->t_i8, x, mul64(L, m, d->K));
  LLVMValueRef brow = lb_gep(L, L->t_i64, xb, mul64(L, m, words));
  if (full > 0) {
    lb_loop lw;
    lb_loop_begin(L, &lw, lb_c64(L, 0), lb_c64(L, full), 1);
    LLVMValueRef v = lb_load(L, vec(L->t_i8, 64), lb_gep(L, L->t_i8, xrow, mul64(L, lw.iv, 64)), 1);
    LLVMValueRef bits = LLVMBuildBitCast(L->b, ge_thr(L, d, v, 64), L->t_i64, "");
    lb_store(L, bits, lb_gep(L, L->t_i64, brow, lw.iv), 8);
    lb_loop_end(L, &lw);
  }
  if (d->K % 64 == 0) return;
  LLVMValueRef acc = lb_c64(L, 0);
  for (int64_t k = full * 64; k < d->K; k++) { /* fewer than 64 compile-time steps */
    LLVMValueRef e = lb_load(L, L->t_i8, lb_gep(L, L->t_i8, xrow, lb_c64(L, k)), 1);
    LLVMValueRef bit = LLVMBuildZExt(L->b, ge_thr(L, d, e, 1), L->t_i64, "");
    acc = LLVMBuildOr(L->b, acc, LLVMBuildShl(L->b, bit, lb_c64(L, k % 64), ""), "");
  }
  lb_store(L, acc, lb_gep(L, L->t_i64, brow, lb_c64(L, full)), 8);
}

/* Weights as [Np / 8][words][8] u64 (column block, word, column), bias and multipliers padded
 * to Np: the globals of the kernel. */
static int bdense_consts(lb_lw *L, const lb_bdense *d, LLVMValueRef *wg, LLVMValueRef *bg,
                         LLVMValueRef *mg) {
  int64_t words = words_of(d), Np = (d->N + BN - 1) / BN * BN;
  uint64_t *rows = lb_calloc((size_t)(d->N * words) + 1, 8);
  uint64_t *wb = lb_calloc((size_t)(Np * words) + 1, 8);
  int32_t *bb = lb_calloc((size_t)Np + 1, 4);
  float *mm = lb_calloc((size_t)Np + 1, 4);
  int rc = rows && wb && bb && mm ? 0 : LB_ERR_NOMEM;
  if (!rc) {
    lb_bpack_w(d->w, d->N, d->K, words, rows);
    for (int64_t n = 0; n < d->N; n++) {
      for (int64_t w = 0; w < words; w++) wb[((n / BN) * words + w) * BN + n % BN] = rows[n * words + w];
      bb[n] = (d->bias ? d->bias[n] : 0) + (int32_t)d->K; /* acc = bias + K - 2 * mism */
      mm[n] = d->mul[n];
    }
    *wg = lb_const_blob(L, wb, (size_t)(Np * words) * 8, "bw");
    *bg = lb_const_blob(L, bb, (size_t)Np * 4, "bbias");
    *mg = lb_const_blob(L, mm, (size_t)Np * 4, "bmul");
  }
  lb_free(rows), lb_free(wb), lb_free(bb), lb_free(mm);
  return rc;
}

typedef struct bk {
  const lb_bdense *d;
  LLVMValueRef w, bias, mul, xb, y;
} bk;

/* Stores cnt lanes of the <8 x i32> result q of row m, columns [n0, n0 + cnt). */
static void bstore(lb_lw *L, const bk *k, LLVMValueRef q, LLVMValueRef m, LLVMValueRef n0, int cnt) {
  int wide = k->d->yt == LB_DTYPE_I32;
  LLVMTypeRef et = wide ? L->t_i32 : L->t_i8;
  LLVMValueRef v = wide ? q : LLVMBuildTrunc(L->b, q, vec(L->t_i8, BN), "");
  LLVMValueRef at = lb_gep(L, et, k->y, LLVMBuildAdd(L->b, mul64(L, m, k->d->N), n0, ""));
  if (cnt == BN) {
    lb_store(L, v, at, 1);
    return;
  }
  for (int l = 0; l < cnt; l++)
    lb_store(L, LLVMBuildExtractElement(L->b, v, lb_c32(L, l), ""), lb_gep(L, et, at, lb_c64(L, l)), 1);
}

/* Column block nb (8 columns, cnt valid) for every row. */
static void bblock(lb_lw *L, const bk *k, LLVMValueRef nb, int cnt) {
  const lb_bdense *d = k->d;
  int64_t words = words_of(d);
  LLVMTypeRef v64 = vec(L->t_i64, BN), v32 = vec(L->t_i32, BN);
  LLVMValueRef n0 = mul64(L, nb, BN), wblk = lb_gep(L, L->t_i64, k->w, mul64(L, nb, words * BN));
  LLVMValueRef bias = lb_load(L, v32, lb_gep(L, L->t_i32, k->bias, n0), 4);
  LLVMValueRef mul = lb_load(L, vec(L->t_f32, BN), lb_gep(L, L->t_f32, k->mul, n0), 4);
  lb_loop lm, lw;
  lb_loop_begin(L, &lm, lb_c64(L, 0), lb_c64(L, d->M), 1);
  LLVMValueRef slot = lb_alloca(L, v64, LLVMConstNull(v64));
  LLVMValueRef xrow = lb_gep(L, L->t_i64, k->xb, mul64(L, lm.iv, words));
  lb_loop_begin(L, &lw, lb_c64(L, 0), lb_c64(L, words), 1);
  LLVMValueRef xw = lb_splat(L, lb_load(L, L->t_i64, lb_gep(L, L->t_i64, xrow, lw.iv), 8), BN);
  LLVMValueRef wv = lb_load(L, v64, lb_gep(L, L->t_i64, wblk, mul64(L, lw.iv, BN)), 64);
  LLVMValueRef pc = LLVMBuildXor(L->b, xw, wv, "");
  pc = lb_intr(L, "llvm.ctpop", v64, &pc, 1);
  lb_store(L, LLVMBuildAdd(L->b, lb_load(L, v64, slot, 64), pc, ""), slot, 64);
  lb_loop_end(L, &lw);
  LLVMValueRef mism = LLVMBuildTrunc(L->b, lb_load(L, v64, slot, 64), v32, "");
  LLVMValueRef acc = LLVMBuildSub(L->b, bias, LLVMBuildShl(L->b, mism, lb_ci(L, v32, 1), ""), "");
  /* as the interpreter: requantized also when y is i32 */
  acc = lb_qrequant(L, NULL, acc, mul, NULL, NULL, d->zy, d->lo, d->hi);
  bstore(L, k, acc, lm.iv, n0, cnt);
  lb_loop_end(L, &lm);
}

int lb_bdense_emit(lb_lw *L, const lb_bdense *d, const char *name) {
  bk k = {.d = d};
  LB_TRY(bdense_consts(L, d, &k.w, &k.bias, &k.mul));
  LLVMValueRef fn = lb_fn_begin(L, name, 3);
  LLVMSetLinkage(fn, LLVMExternalLinkage);
  LLVMValueRef x = LLVMGetParam(fn, 0);
  k.y = LLVMGetParam(fn, 1), k.xb = LLVMGetParam(fn, 2);
  lb_loop lm;
  lb_loop_begin(L, &lm, lb_c64(L, 0), lb_c64(L, d->M), 1);
  binarize_row(L, d, x, k.xb, lm.iv);
  lb_loop_end(L, &lm);
  int64_t full = d->N / BN;
  if (full > 0) {
    lb_loop ln;
    lb_loop_begin(L, &ln, lb_c64(L, 0), lb_c64(L, full), 1);
    bblock(L, &k, ln.iv, BN);
    lb_loop_end(L, &ln);
  }
  if (d->N % BN) bblock(L, &k, lb_c64(L, full), (int)(d->N % BN));
  LLVMBuildRetVoid(L->b);
  return 0;
}

/* ---- the hook ops_int.c calls ----------------------------------------------------------- */

static int sub_enabled(void) {
  const char *e = getenv("LB_SUBBYTE");
  return !(e && !strcmp(e, "0"));
}

/* The widest of 2 and 4 bits needed over all groups (0: some element needs 8). */
static int groups_bits(const lb_qk_shape *s, const void *b, int64_t G, int64_t Kp, int64_t Np) {
  size_t esz = s->wide ? 2 : 1;
  int bits = 2;
  for (int64_t g = 0; g < G && bits; g++) {
    lb_qpacked p = {0, 0, Kp, Np, (char *)b + (size_t)(g * Kp * Np) * esz, 0, NULL};
    int gb = lb_sub_bits_for(s, &p);
    bits = gb == 0 ? 0 : gb > bits ? gb : bits;
  }
  return bits;
}

int lb_subw_try(lb_lw *L, const lb_qk_shape *s, const void *b, int64_t G, int64_t Kp,
                int64_t Np, lb_subw *w, LLVMValueRef *blob) {
  memset(w, 0, sizeof *w);
  int bits = sub_enabled() && Kp * Np > 0 ? groups_bits(s, b, G, Kp, Np) : 0;
  if (!bits) return 0;
  size_t esz = s->wide ? 2 : 1;
  uint8_t *all = NULL;
  for (int64_t g = 0; g < G; g++) {
    lb_qpacked p = {0, 0, Kp, Np, (char *)b + (size_t)(g * Kp * Np) * esz, 0, NULL};
    lb_subpacked sp;
    if (lb_subpack(s, &p, bits, &sp)) return lb_free(all), LB_ERR_NOMEM;
    if (!all) all = lb_malloc((size_t)G * sp.b_bytes + 1);
    if (!all) return lb_subpacked_free(&sp), LB_ERR_NOMEM;
    memcpy(all + (size_t)g * sp.b_bytes, sp.b, sp.b_bytes);
    w->geom = sp, w->geom.b = NULL, w->group_bytes = (int64_t)sp.b_bytes;
    lb_subpacked_free(&sp);
  }
  w->bits = bits;
  *blob = lb_const_blob(L, all, (size_t)(G * w->group_bytes), bits == 4 ? "qb_i4" : "qb_i2");
  lb_free(all);
  return 0;
}

LLVMValueRef lb_subw_group(lb_lw *L, const lb_subw *w, LLVMValueRef blob, LLVMValueRef g) {
  return lb_gep(L, L->t_i8, blob, mul64(L, g, w->group_bytes));
}

LLVMValueRef lb_subw_place(lb_lw *L, const lb_subw *w, const lb_qk_shape *s, int64_t Kp,
                           LLVMValueRef scratch, size_t *scratch_bytes) {
  if (!w->bits) return NULL;
  size_t at = (*scratch_bytes + 63) / 64 * 64;
  *scratch_bytes = at + lb_subgemm_scratch(s, Kp);
  return lb_gep(L, L->t_i8, scratch, lb_c64(L, (int64_t)at));
}

void lb_subw_gemm(lb_lw *L, const lb_qgemm_job *j, const lb_subw *w, LLVMValueRef buf,
                  LLVMValueRef a_pk, LLVMValueRef row0, LLVMValueRef rows) {
  if (!w->bits) {
    lb_qgemm_emit(L, j, a_pk, row0, rows);
    return;
  }
  lb_subgemm_emit(L, j, &w->geom, j->b, buf, a_pk, row0, rows);
}
