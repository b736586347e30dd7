/* Depthwise integer convs (one channel per group, NHWC). With s8-range weights, channel blocks
 * are the outer loop and output rows go two at a time through tap-row pairs (x86 vpmaddwd) or
 * quads (AVX512-VNNI vpdpbusd, AVX2 vpmaddubsw when |w'| <= 64, AArch64 sdot), borders with
 * checked loads; otherwise one pixel at a time with channels in vector lanes. Invariant: every
 * output byte is interp_int.c's (the same i32 accumulator and lb_qrequant's float steps). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops_int.h"
#include "quant.h"

typedef struct dwk {
  const cgeo *g;
  const qmac *q;
  LLVMValueRef x, y, r, w, bias, mult, zpage;
  lb_dtype xdt, rdt, ydt;
  int fast;            /* 0: none, 1: x86 vpmaddwd tap pairs, 2: AArch64 smull */
  LLVMValueRef wf, bf; /* fast-path weights and folded bias */
  int64_t cpf;         /* channel stride of the AArch64 fast weights */
  int32_t *bfc;        /* the folded bias in C (owned; NULL without a fast path) */
  const float *multc;  /* per-channel multipliers in C */
  int nosat;           /* x86: no |acc * m + r * mr| reaches 2^30, see req() */
  int chk;             /* blocked loads: a tap may lie in the padding (reads the zero page) */
  int mb;              /* x86: every |w'| <= 64, the quads may take AVX2 vpmaddubsw (mb_*) */
} dwk;

/* Input pointer of tap t for output pixel (b, oh, ow), channel c; a tap in the padding reads
 * copies of the zero point instead (so it adds (zx - zx) * w = 0). */
static LLVMValueRef tap_ptr(lb_lw *L, const dwk *k, LLVMValueRef b, LLVMValueRef oh,
                            LLVMValueRef ow, LLVMValueRef c, int64_t t) {
  const cgeo *g = k->g;
  if (t >= g->KH * g->KW) return lb_gep(L, L->t_i8, k->zpage, c);
  int64_t kh = t / g->KW, kw = t % g->KW;
  LLVMValueRef ih = add64(L, mul64(L, oh, g->sh), lb_c64(L, kh * g->dh - g->ph));
  LLVMValueRef iw = add64(L, mul64(L, ow, g->sw), lb_c64(L, kw * g->dw - g->pw));
  LLVMValueRef ok = LLVMBuildAnd(L->b, LLVMBuildICmp(L->b, LLVMIntULT, ih, lb_c64(L, g->H), ""),
                                 LLVMBuildICmp(L->b, LLVMIntULT, iw, lb_c64(L, g->W), ""), "");
  LLVMValueRef off = add64(L, mul64(L, b, g->xs[0]),
                           add64(L, mul64(L, ih, g->xs[2]), mul64(L, iw, g->xs[3])));
  /* select the pixel's base, then add c: the select does not depend on the channel loop */
  LLVMValueRef base = LLVMBuildSelect(L->b, ok, lb_gep(L, L->t_i8, k->x, off), k->zpage, "");
  return lb_gep(L, L->t_i8, base, c);
}

/* lb_qrequant without its float clamp, for x86 layers where no |acc * m + r * mr| can reach
 * 2^30 (k->nosat): vcvtps2dq then rounds exactly as lb_requantize does, and the saturating
 * packs followed by clamp_bytes give the clamped result (round and clamp commute: the bounds
 * are integers). Otherwise lb_qrequant itself. */
static LLVMValueRef req(lb_lw *L, const dwk *k, LLVMValueRef acc, LLVMValueRef m, LLVMValueRef rv,
                        LLVMValueRef mr, int packed) {
  if (!k->nosat || !packed)
    return lb_qrequant(L, &k->q->s, acc, m, rv, mr, k->q->zy, k->q->lo, k->q->hi);
  LLVMTypeRef it = LLVMTypeOf(acc);
  int lanes = (int)LLVMGetVectorSize(it);
  LLVMTypeRef ft = vec(L->t_f32, lanes);
  LLVMValueRef x = LLVMBuildFMul(L->b, LLVMBuildSIToFP(L->b, acc, ft, ""), m, "");
  if (rv) x = LLVMBuildFAdd(L->b, x, LLVMBuildFMul(L->b, LLVMBuildSIToFP(L->b, rv, ft, ""), mr, ""), "");
  return LLVMBuildAdd(L->b, lb_qcvt_rne(L, x), lb_ci(L, it, k->q->zy), "");
}

/* The fused activation's bounds on bytes packed from req() values (k->nosat). */
static LLVMValueRef clamp_bytes(lb_lw *L, const dwk *k, LLVMValueRef v) {
  return k->nosat ? lb_qclamp_bytes(L, v, k->ydt, k->q->lo, k->q->hi) : v;
}

/* Requantized lanes channels from c of pixel (b, oh, ow), with the residual, as i32. */
static LLVMValueRef dw_req(lb_lw *L, const dwk *k, LLVMValueRef acc, int lanes, LLVMValueRef b,
                           LLVMValueRef oh, LLVMValueRef ow, LLVMValueRef c, int packed) {
  const cgeo *g = k->g;
  LLVMTypeRef it = lanes > 1 ? vec(L->t_i32, lanes) : L->t_i32;
  LLVMTypeRef bt = lanes > 1 ? vec(L->t_i8, lanes) : L->t_i8;
  LLVMValueRef m = lb_load(L, lanes > 1 ? vec(L->t_f32, lanes) : L->t_f32,
                           lb_gep(L, L->t_f32, k->mult, c), 4);
  LLVMValueRef rv = NULL, mr = NULL;
  if (k->r) {
    LLVMValueRef roff = add64(L, mul64(L, b, g->rs[0]),
                              add64(L, mul64(L, oh, g->rs[2]), mul64(L, ow, g->rs[3])));
    LLVMValueRef rp = lb_gep(L, L->t_i8, k->r, add64(L, roff, c));
    rv = LLVMBuildSub(L->b, ext8(L, lb_load(L, bt, rp, 1), k->rdt, it), lb_ci(L, it, k->q->zr), "");
    mr = lb_cf(L, lanes > 1 ? vec(L->t_f32, lanes) : L->t_f32, k->q->mr);
  }
  return req(L, k, acc, m, rv, mr, packed);
}

/* Element offset of output pixel (b, oh, ow). */
static LLVMValueRef opix(lb_lw *L, const dwk *k, LLVMValueRef b, LLVMValueRef oh, LLVMValueRef ow) {
  const cgeo *g = k->g;
  return add64(L, mul64(L, b, g->ys[0]), add64(L, mul64(L, oh, g->ys[2]), mul64(L, ow, g->ys[3])));
}

/* Requantize (with the residual) and store lanes channels from c of pixel (b, oh, ow). */
static void dw_out(lb_lw *L, const dwk *k, LLVMValueRef acc, int lanes, LLVMValueRef b,
                   LLVMValueRef oh, LLVMValueRef ow, LLVMValueRef c) {
  LLVMValueRef off = add64(L, opix(L, k, b, oh, ow), c);
  if (k->ydt == LB_DTYPE_I32) { /* the raw accumulator, read by an fp32 consumer */
    lb_store(L, acc, lb_gep(L, L->t_i32, k->y, off), 4);
    return;
  }
  LLVMValueRef qv = dw_req(L, k, acc, lanes, b, oh, ow, c, 0);
  LLVMTypeRef bt = lanes > 1 ? vec(L->t_i8, lanes) : L->t_i8;
  lb_store(L, LLVMBuildTrunc(L->b, qv, bt, ""), lb_gep(L, L->t_i8, k->y, off), 1);
}

static LLVMValueRef shuf(lb_lw *L, LLVMValueRef a, LLVMValueRef b, const int *idx, int n) {
  LLVMValueRef m[64];
  for (int i = 0; i < n; i++) m[i] = lb_c32(L, idx[i]);
  return LLVMBuildShuffleVector(L->b, a, b ? b : LLVMGetUndef(LLVMTypeOf(a)), LLVMConstVector(m, (unsigned)n), "");
}

/* x86: two 8-channel accumulators (channels c.. and c + 8..) requantized and stored as 16
 * bytes through vpackssdw / vpacksswb (vpackuswb for u8): the values are already inside the
 * output range, so the saturating packs are plain narrowing. */
static void dw_out16(lb_lw *L, const dwk *k, LLVMValueRef *acc, LLVMValueRef b, LLVMValueRef oh,
                     LLVMValueRef ow, LLVMValueRef c) {
  static const int words[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
  static const int lo[8] = {0, 1, 2, 3, 4, 5, 6, 7}, hi[8] = {8, 9, 10, 11, 12, 13, 14, 15};
  if (k->ydt == LB_DTYPE_I32) {
    for (int h = 0; h < 2; h++) dw_out(L, k, acc[h], 8, b, oh, ow, add64(L, c, lb_c64(L, 8 * h)));
    return;
  }
  LLVMValueRef q[2];
  for (int h = 0; h < 2; h++) q[h] = dw_req(L, k, acc[h], 8, b, oh, ow, add64(L, c, lb_c64(L, 8 * h)), 1);
  LLVMValueRef w = shuf(L, lb_intr(L, "llvm.x86.avx2.packssdw", NULL, q, 2), NULL, words, 16);
  LLVMValueRef hl[2] = {shuf(L, w, NULL, lo, 8), shuf(L, w, NULL, hi, 8)};
  const char *pk = k->ydt == LB_DTYPE_U8 ? "llvm.x86.sse2.packuswb.128" : "llvm.x86.sse2.packsswb.128";
  LLVMValueRef v = clamp_bytes(L, k, lb_intr(L, pk, NULL, hl, 2));
  lb_store(L, v, lb_gep(L, L->t_i8, k->y, add64(L, opix(L, k, b, oh, ow), c)), 1);
}

/* Output pixel (b, oh, ow), channels [c, c + lanes): i32 products of (x - zx) and w'. */
static void dw_pixel(lb_lw *L, const dwk *k, LLVMValueRef b, LLVMValueRef oh, LLVMValueRef ow,
                     LLVMValueRef c, int lanes) {
  const cgeo *g = k->g;
  LLVMTypeRef it = lanes > 1 ? vec(L->t_i32, lanes) : L->t_i32;
  LLVMTypeRef bt = lanes > 1 ? vec(L->t_i8, lanes) : L->t_i8;
  LLVMValueRef acc = lb_load(L, it, lb_gep(L, L->t_i32, k->bias, c), 4);
  for (int64_t t = 0; t < g->KH * g->KW; t++) {
    LLVMValueRef p = tap_ptr(L, k, b, oh, ow, c, t);
    LLVMValueRef xv = LLVMBuildSub(L->b, ext8(L, lb_load(L, bt, p, 1), k->xdt, it),
                                   lb_ci(L, it, k->q->ap.zx), "");
    LLVMValueRef wv = lb_load(L, it, lb_gep(L, L->t_i32, k->w, add64(L, c, lb_c64(L, t * g->M))), 4);
    acc = LLVMBuildAdd(L->b, acc, LLVMBuildMul(L->b, xv, wv, ""), "");
  }
  dw_out(L, k, acc, lanes, b, oh, ow, c);
}

/* The fast block: raw x (zero point folded into bf) times s8-range w' in i16, 16 channels
 * (x86: tap pairs interleaved for vpmaddwd) or 8 channels (AArch64: smull/smlal). */
static void dw_fast(lb_lw *L, const dwk *k, LLVMValueRef b, LLVMValueRef oh, LLVMValueRef ow,
                    LLVMValueRef c) {
  const cgeo *g = k->g;
  LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx);
  int x86 = k->fast == 1, fb = x86 ? 16 : 8, hl = fb / 2;
  LLVMTypeRef ht = vec(L->t_i32, hl), xt = vec(i16, fb);
  LLVMValueRef acc[2], blk = LLVMBuildUDiv(L->b, c, lb_c64(L, fb), "");
  for (int h = 0; h < 2; h++)
    acc[h] = lb_load(L, ht, lb_gep(L, L->t_i32, k->bf, add64(L, c, lb_c64(L, h * hl))), 4);
  int64_t taps = g->KH * g->KW, np = (taps + 1) / 2;
  for (int64_t t = 0; t < (x86 ? 2 * np : taps); t += x86 ? 2 : 1) {
    LLVMValueRef x0 = ext8(L, lb_load(L, vec(L->t_i8, fb), tap_ptr(L, k, b, oh, ow, c, t), 1),
                           k->xdt, xt);
    if (x86) {
      LLVMValueRef x1 = ext8(L, lb_load(L, vec(L->t_i8, fb), tap_ptr(L, k, b, oh, ow, c, t + 1), 1),
                             k->xdt, xt);
      LLVMValueRef wb = lb_gep(L, i16, k->wf, mul64(L, add64(L, mul64(L, blk, np), lb_c64(L, t / 2)), 2 * fb));
      for (int h = 0; h < 2; h++) {
        LLVMValueRef m[16];
        for (int i = 0; i < 16; i++) m[i] = lb_c32(L, h * 8 + i / 2 + (i % 2) * 16);
        LLVMValueRef xi = LLVMBuildShuffleVector(L->b, x0, x1, LLVMConstVector(m, 16), "");
        LLVMValueRef w = lb_load(L, xt, lb_gep(L, i16, wb, lb_c64(L, h * 16)), 2);
        LLVMValueRef ab[2] = {xi, w};
        acc[h] = LLVMBuildAdd(L->b, acc[h], lb_intr(L, "llvm.x86.avx2.pmadd.wd", NULL, ab, 2), "");
      }
    } else {
      LLVMValueRef w = lb_load(L, xt, lb_gep(L, i16, k->wf, add64(L, c, lb_c64(L, t * k->cpf))), 2);
      for (int h = 0; h < 2; h++) {
        LLVMValueRef m[4];
        for (int i = 0; i < 4; i++) m[i] = lb_c32(L, h * 4 + i);
        LLVMValueRef ab[2] = {
            LLVMBuildShuffleVector(L->b, x0, LLVMGetUndef(xt), LLVMConstVector(m, 4), ""),
            LLVMBuildShuffleVector(L->b, w, LLVMGetUndef(xt), LLVMConstVector(m, 4), "")};
        acc[h] = LLVMBuildAdd(L->b, acc[h], lb_intr(L, "llvm.aarch64.neon.smull", ht, ab, 2), "");
      }
    }
  }
  if (x86) {
    dw_out16(L, k, acc, b, oh, ow, c);
    return;
  }
  for (int h = 0; h < 2; h++) dw_out(L, k, acc[h], hl, b, oh, ow, add64(L, c, lb_c64(L, h * hl)));
}

int lb_int_dw_ok(const cgeo *g) {
  return g->cg == 1 && g->mg == 1 && g->xs[1] == 1 && g->ys[1] == 1 && g->rs[1] <= 1 &&
         g->KH * g->KW <= 64;
}

/* Fast-path data: folded bias bias - zx * sum_t w' (what raw x needs) and i16 weights, tap
 * pairs interleaved per 16-channel block on x86, [taps][C rounded to 8] on AArch64. */
static int dw_pack_fast(lb_lw *L, dwk *k, const int16_t *wp, const int32_t *bias, int64_t C) {
  int64_t taps = k->g->KH * k->g->KW, np = (taps + 1) / 2, cp8 = (C + 7) / 8 * 8;
  int x86 = k->q->s.kind == LB_QK_PMADDWD || k->q->s.kind == LB_QK_VPDPBUSD;
  int64_t nw = x86 ? (C + 15) / 16 * np * 32 : taps * cp8;
  int16_t *w = lb_calloc((size_t)nw, sizeof *w);
  int32_t *bf = lb_calloc((size_t)cp8, sizeof *bf);
  if (!w || !bf) {
    lb_free(w), lb_free(bf);
    return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  }
  for (int64_t c = 0; c < C; c++) {
    uint32_t sum = 0;
    for (int64_t t = 0; t < taps; t++) {
      int16_t v = wp[c * taps + t];
      sum += (uint32_t)(int32_t)v;
      int64_t i = x86 ? ((c / 16 * np + t / 2) * 2 + (c % 16) / 8) * 16 + (c % 8) * 2 + t % 2
                      : t * cp8 + c;
      w[i] = v;
    }
    bf[c] = (int32_t)((uint32_t)bias[c] - (uint32_t)k->q->ap.zx * sum);
  }
  k->fast = x86 ? 1 : 2;
  k->cpf = cp8;
  k->wf = lb_const_blob(L, w, (size_t)nw * 2, "qdwf");
  k->bf = lb_const_blob(L, bf, (size_t)cp8 * 4, "qbiasf");
  k->bfc = bf;
  lb_free(w);
  return 0;
}

/* ---- x86 interior rows: vertical tap pairs shared by R output rows and U output columns ----
 * Input rows under a group of R output rows are paired (r0, r1), (r2, r3), ...; each pair of
 * one input column is widened once (16 channels, bytes interleaved, then i16) and feeds
 * vpmaddwd for every output of the group that uses it, with weights pre-interleaved per
 * (row r, pair, kw) and zero where a pair row is not a tap of r. A lone last row is sign-
 * extended to i32 lanes (high word 0 or -1 times a zero weight). Sliding U output columns
 * reuse input columns the same way. Only pixels whose taps are all inside the image. */

#define DW_MAXK 7 /* kernel height / width of the row path */

typedef struct dwrows {
  int R, nrel;
  int B;                    /* 0: vpmaddwd pairs; else quads over blocks of B channels */
  int arm;                  /* quads: AArch64 sdot (s8 x s8) instead of vpdpbusd (u8 x s8) */
  int64_t c0;               /* quads: first channel of the blocks */
  LLVMValueRef bq, mq;      /* quads: bias and multipliers in the quads' channel order */
  int mb;                   /* quads by vpmaddubsw (AVX2) */
  unsigned char flush[2][DW_MAXK][4]; /* mb: [r][kw][quad]: widen the i16 sums before it */
  int64_t rel[2 * DW_MAXK]; /* input rows relative to oh0 * sh - ph, ascending */
  int used[2][DW_MAXK];     /* [r][pair]: some tap of output row r lies in the pair */
  LLVMValueRef w; /* pairs: i16 [C / 16][R][pairs][KW][2 halves][16]; quads: s8, see quads_init */
} dwrows;

static int add_sorted(int64_t *v, int n, int64_t x) {
  int i = 0;
  while (i < n && v[i] < x) i++;
  if (i < n && v[i] == x) return n;
  memmove(v + i + 1, v + i, (size_t)(n - i) * sizeof *v);
  v[i] = x;
  return n + 1;
}

/* The kernel tap row kh of output row r that reads relative input row rel, or -1. */
static int64_t tap_row(const cgeo *g, int r, int64_t rel) {
  int64_t d = rel - r * g->sh;
  return d >= 0 && d % g->dh == 0 && d / g->dh < g->KH ? d / g->dh : -1;
}

/* Input columns under U output columns from ow0, relative to ow0 * sw - pw, ascending. */
static int col_list(const cgeo *g, int U, int64_t *col) {
  int n = 0;
  for (int u = 0; u < U; u++)
    for (int64_t kw = 0; kw < g->KW; kw++) n = add_sorted(col, n, u * g->sw + kw * g->dw);
  return n;
}

/* The kernel column kw of output column u that reads relative input column col, or -1. */
static int64_t tap_col(const cgeo *g, int u, int64_t col) {
  int64_t d = col - u * g->sw;
  return d >= 0 && d % g->dw == 0 && d / g->dw < g->KW ? d / g->dw : -1;
}

/* Geometry and interleaved weights of the (R, U) row path. */
static void rel_init(const cgeo *g, int R, dwrows *d) {
  memset(d, 0, sizeof *d);
  d->R = R;
  for (int r = 0; r < R; r++)
    for (int64_t kh = 0; kh < g->KH; kh++) d->nrel = add_sorted(d->rel, d->nrel, r * g->sh + kh * g->dh);
}

static int rows_init(lb_lw *L, const dwk *k, const int16_t *wp, int R, dwrows *d) {
  const cgeo *g = k->g;
  rel_init(g, R, d);
  int np = (d->nrel + 1) / 2;
  int64_t nb = g->M / 16, per = (int64_t)R * np * g->KW * 32, taps = g->KH * g->KW;
  int16_t *w = lb_calloc((size_t)(nb * per), sizeof *w);
  if (!w) return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  for (int i = 0; i < d->nrel; i++)
    for (int r = 0; r < R; r++) {
      int64_t kh = tap_row(g, r, d->rel[i]);
      if (kh < 0) continue;
      d->used[r][i / 2] = 1;
      for (int64_t c = 0; c < nb * 16; c++)
        for (int64_t kw = 0; kw < g->KW; kw++) {
          int64_t o = (((c / 16 * R + r) * np + i / 2) * g->KW + kw) * 32 + c % 16 * 2 + i % 2;
          w[o] = wp[c * taps + kh * g->KW + kw];
        }
    }
  d->w = lb_const_blob(L, w, (size_t)(nb * per) * sizeof *w, "qdwrows");
  lb_free(w);
  return 0;
}

/* Channel c of input pixel (ih, iw) of the image at k->x; with k->chk a pixel in the padding
 * reads the zero page (zero points) instead. */
static LLVMValueRef in_ptr(lb_lw *L, const dwk *k, LLVMValueRef ih, LLVMValueRef iw, LLVMValueRef c) {
  const cgeo *g = k->g;
  LLVMValueRef off = add64(L, add64(L, mul64(L, ih, g->xs[2]), mul64(L, iw, g->xs[3])), c);
  LLVMValueRef p = lb_gep(L, L->t_i8, k->x, off);
  if (!k->chk) return p;
  LLVMValueRef ok = LLVMBuildAnd(L->b, LLVMBuildICmp(L->b, LLVMIntULT, ih, lb_c64(L, g->H), ""),
                                 LLVMBuildICmp(L->b, LLVMIntULT, iw, lb_c64(L, g->W), ""), "");
  return LLVMBuildSelect(L->b, ok, p, lb_gep(L, L->t_i8, k->zpage, c), "");
}

/* Widens input column iw of pair p (rows base + rel[2p], rel[2p + 1]) at channel c into two
 * <16 x i16> halves: (x_row0, x_row1) per channel, 8 channels each. */
static void pair_load(lb_lw *L, const dwk *k, const dwrows *d, LLVMValueRef row0,
                      LLVMValueRef iw, LLVMValueRef c, int p, LLVMValueRef *h) {
  LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx);
  LLVMValueRef v[2];
  int n = 2 * p + 1 < d->nrel ? 2 : 1;
  for (int s = 0; s < n; s++) {
    LLVMValueRef ih = add64(L, row0, lb_c64(L, d->rel[2 * p + s]));
    v[s] = lb_load(L, vec(L->t_i8, 16), in_ptr(L, k, ih, iw, c), 1);
  }
  if (n == 1) { /* a lone row: i32 lanes, the high word meets a zero weight */
    for (int hh = 0; hh < 2; hh++) {
      LLVMValueRef m[8];
      for (int i = 0; i < 8; i++) m[i] = lb_c32(L, hh * 8 + i);
      LLVMValueRef x8 = LLVMBuildShuffleVector(L->b, v[0], LLVMGetUndef(vec(L->t_i8, 16)),
                                               LLVMConstVector(m, 8), "");
      h[hh] = LLVMBuildBitCast(L->b, ext8(L, x8, k->xdt, vec(L->t_i32, 8)), vec(i16, 16), "");
    }
    return;
  }
  LLVMValueRef m[32];
  for (int i = 0; i < 32; i++) m[i] = lb_c32(L, i / 2 + (i % 2) * 16);
  LLVMValueRef il = LLVMBuildShuffleVector(L->b, v[0], v[1], LLVMConstVector(m, 32), "");
  LLVMValueRef e = ext8(L, il, k->xdt, vec(i16, 32));
  for (int hh = 0; hh < 2; hh++) {
    LLVMValueRef mh[16];
    for (int i = 0; i < 16; i++) mh[i] = lb_c32(L, hh * 16 + i);
    h[hh] = LLVMBuildShuffleVector(L->b, e, LLVMGetUndef(vec(i16, 32)), LLVMConstVector(mh, 16), "");
  }
}

/* Outputs (b, oh0 + r, ow0 + u), r < R, u < U, channels [c, c + 16). */
static void rows_block(lb_lw *L, const dwk *k, const dwrows *d, int U, LLVMValueRef b,
                       LLVMValueRef oh0, LLVMValueRef ow0, LLVMValueRef c) {
  const cgeo *g = k->g;
  LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx), at = vec(L->t_i32, 8);
  int64_t col[2 * DW_MAXK];
  int np = (d->nrel + 1) / 2, ncol = col_list(g, U, col);
  LLVMValueRef acc[2][2][2];
  for (int h = 0; h < 2; h++) {
    LLVMValueRef bv = lb_load(L, at, lb_gep(L, L->t_i32, k->bf, add64(L, c, lb_c64(L, 8 * h))), 4);
    for (int r = 0; r < d->R; r++)
      for (int u = 0; u < U; u++) acc[r][u][h] = bv;
  }
  LLVMValueRef ih0 = LLVMBuildSub(L->b, mul64(L, oh0, g->sh), lb_c64(L, g->ph), "");
  LLVMValueRef iw0 = LLVMBuildSub(L->b, mul64(L, ow0, g->sw), lb_c64(L, g->pw), "");
  LLVMValueRef wb = lb_gep(L, i16, d->w, mul64(L, c, (int64_t)d->R * np * g->KW * 2));
  LLVMValueRef xb = lb_gep(L, L->t_i8, k->x, mul64(L, b, g->xs[0]));
  dwk kb = *k;
  kb.x = xb;
  for (int j = 0; j < ncol; j++) {
    LLVMValueRef pv[DW_MAXK][2];
    for (int p = 0; p < np; p++)
      pair_load(L, &kb, d, ih0, add64(L, iw0, lb_c64(L, col[j])), c, p, pv[p]);
    for (int u = 0; u < U; u++) {
      int64_t kw = tap_col(g, u, col[j]);
      if (kw < 0) continue;
      for (int r = 0; r < d->R; r++)
        for (int p = 0; p < np; p++) {
          if (!d->used[r][p]) continue;
          for (int h = 0; h < 2; h++) {
            int64_t o = (((int64_t)r * np + p) * g->KW + kw) * 32 + h * 16;
            LLVMValueRef ab[2] = {pv[p][h], lb_load(L, vec(i16, 16), lb_gep(L, i16, wb, lb_c64(L, o)), 2)};
            acc[r][u][h] = LLVMBuildAdd(L->b, acc[r][u][h],
                                        lb_intr(L, "llvm.x86.avx2.pmadd.wd", NULL, ab, 2), "");
          }
        }
    }
  }
  for (int r = 0; r < d->R; r++)
    for (int u = 0; u < U; u++)
      dw_out16(L, k, acc[r][u], b, add64(L, oh0, lb_c64(L, r)), add64(L, ow0, lb_c64(L, u)), c);
}

/* ---- AVX-512 VNNI: quads of input rows, vpdpbusd ------------------------------------------
 * Four input rows of one column, bytes interleaved per channel by in-lane unpacks (bytes, then
 * words), make one vpdpbusd operand: u8 activations (i8 ones xor 0x80, the bias compensated)
 * times s8 weights, 4 taps per i32 lane. The unpacks leave channel 16l + 4j + i in dword i of
 * 128-bit lane l of vector j: weights, bias and multipliers are stored in that order, and the
 * in-lane packs (vpackssdw, then vpacksswb / vpackuswb) put the bytes back in channel order. */

static const char *xname(int B, const char *n128, const char *n256, const char *n512) {
  return B == 16 ? n128 : B == 32 ? n256 : n512;
}

/* Channel (within the block) of dword p of quad vector j. */
static int64_t qch(int j, int64_t p) { return p / 4 * 16 + j * 4 + p % 4; }

/* Whether activations go through x ^ 0x80: i8 ones to u8 for vpdpbusd, u8 ones to s8 for sdot. */
static int flipped(const dwrows *d, const dwk *k) {
  return d->arm ? k->xdt == LB_DTYPE_U8 : k->xdt == LB_DTYPE_I8;
}

/* ---- AVX2 quads (d->mb): vpmaddubsw sums two taps per i16 lane (u8 activations, |w'| <= 64:
 * 255 * 128 < 2^15, no saturation), i16 sums add over several products and vpmaddwd by ones
 * widens them into the i32 accumulators (the lane pair of a channel: its four taps). A lane of
 * output row r takes the products (kw, quad) in that order; its sum stays below 2^15 while
 * 255 times its |w'| sum does: flush[r][kw][qd] widens before the product where some channel's
 * lane would pass 128 (computed from the layer's weights, never assumed from a dtype). */

/* |w'| sum of the taps of channel c that lane half h of quad qd holds for (r, kw). */
static int lane_sum(const cgeo *g, const int16_t *wp, const dwrows *d, int r, int64_t c,
                    int64_t kw, int qd, int h) {
  int sum = 0;
  for (int s = 2 * h; s < 2 * h + 2; s++) {
    int i = 4 * qd + s;
    int64_t kh = i < d->nrel ? tap_row(g, r, d->rel[i]) : -1;
    if (kh >= 0) sum += abs(wp[(c * g->KH + kh) * g->KW + kw]);
  }
  return sum;
}

/* d->flush for channels [c0, c1): greedy, one set of i16 sums per output. */
static int mb_schedule(lb_lw *L, const cgeo *g, const int16_t *wp, int64_t c0, int64_t c1,
                       dwrows *d) {
  int64_t n = c1 - c0;
  int nq = (d->nrel + 3) / 4;
  int *run = lb_calloc((size_t)(2 * n), sizeof *run);
  if (!run) return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  for (int r = 0; r < d->R; r++) {
    memset(run, 0, (size_t)(2 * n) * sizeof *run);
    for (int64_t kw = 0; kw < g->KW; kw++)
      for (int qd = 0; qd < nq; qd++) {
        int over = 0;
        for (int64_t i = 0; i < 2 * n && !over; i++)
          over = run[i] + lane_sum(g, wp, d, r, c0 + i / 2, kw, qd, (int)(i % 2)) > 128;
        if (over) {
          d->flush[r][kw][qd] = 1;
          memset(run, 0, (size_t)(2 * n) * sizeof *run);
        }
        for (int64_t i = 0; i < 2 * n; i++) run[i] += lane_sum(g, wp, d, r, c0 + i / 2, kw, qd, (int)(i % 2));
      }
  }
  lb_free(run);
  return 0;
}

/* Weights [block][r][quad][kw][j][B bytes], bias and multipliers [block][j][B / 4]. */
static int quads_init(lb_lw *L, const dwk *k, const int16_t *wp, int R, int B, int64_t c0,
                      int64_t c1, dwrows *d) {
  const cgeo *g = k->g;
  rel_init(g, R, d);
  d->B = B, d->c0 = c0, d->arm = k->fast == 2, d->mb = k->mb;
  if (d->mb) LB_TRY(mb_schedule(L, g, wp, c0, c1, d));
  uint32_t flip = flipped(d, k) ? (d->arm ? 128u : -128u) : 0u; /* x ^ 0x80 = x -+ 128 */
  int nq = (d->nrel + 3) / 4;
  int64_t nb = (c1 - c0) / B, per = (int64_t)R * nq * g->KW * 4 * B, taps = g->KH * g->KW;
  int8_t *w = lb_calloc((size_t)(nb * per), 1);
  int32_t *bq = lb_calloc((size_t)(nb * B), 4);
  float *mq = lb_calloc((size_t)(nb * B), 4);
  int rc = w && bq && mq ? 0 : lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  for (int i = 0; !rc && i < d->nrel; i++)
    for (int r = 0; r < R; r++) {
      int64_t kh = tap_row(g, r, d->rel[i]);
      if (kh < 0) continue;
      d->used[r][i / 4] = 1;
      for (int64_t o = 0; o < nb * g->KW * B; o++) { /* (block, kw, j, p) */
        int64_t p = o % (B / 4), j = o / (B / 4) % 4, kw = o / B % g->KW, blk = o / B / g->KW;
        int64_t c = c0 + blk * B + qch((int)j, p);
        w[((((blk * R + r) * nq + i / 4) * g->KW + kw) * 4 + j) * B + p * 4 + i % 4] =
            (int8_t)wp[c * taps + kh * g->KW + kw];
      }
    }
  for (int64_t o = 0; !rc && o < nb * B; o++) { /* (block, j, p) */
    int64_t c = c0 + o / B * B + qch((int)(o % B / (B / 4)), o % (B / 4));
    uint32_t sum = 0;
    for (int64_t t = 0; t < taps; t++) sum += (uint32_t)(int32_t)wp[c * taps + t];
    bq[o] = (int32_t)((uint32_t)k->bfc[c] + flip * sum);
    mq[o] = k->multc[c];
  }
  if (!rc) {
    d->w = lb_const_blob(L, w, (size_t)(nb * per), "qdwquad");
    d->bq = lb_const_blob(L, bq, (size_t)(nb * B) * 4, "qbiasq");
    d->mq = lb_const_blob(L, mq, (size_t)(nb * B) * 4, "qmulq");
  }
  lb_free(w), lb_free(bq), lb_free(mq);
  return rc;
}

/* In-lane interleave of a and b (n elements, lanes of 128 bits = per elements): the low
 * (hi = 0) or high halves of each lane, as vpunpckl / vpunpckh do. */
static LLVMValueRef unpack(lb_lw *L, LLVMValueRef a, LLVMValueRef b, int n, int per, int hi) {
  int idx[64];
  for (int l = 0; l < n / per; l++)
    for (int i = 0; i < per / 2; i++) {
      idx[l * per + 2 * i] = l * per + i + hi * per / 2;
      idx[l * per + 2 * i + 1] = n + l * per + i + hi * per / 2;
    }
  return shuf(L, a, b, idx, n);
}

/* Quad qd of input column iw (rows ih0 + rel[4 qd ..]) at channel c as four <B/4 x i32>
 * vpdpbusd operands (a missing fourth row repeats the last one: its weights are 0). */
static void quad_load(lb_lw *L, const dwk *k, const dwrows *d, LLVMValueRef ih0, LLVMValueRef iw,
                      LLVMValueRef c, int qd, LLVMValueRef *q) {
  int B = d->B;
  LLVMTypeRef bt = vec(L->t_i8, B), wt = vec(LLVMInt16TypeInContext(L->ctx), B / 2);
  LLVMValueRef v[4];
  for (int t = 0; t < 4; t++) {
    int i = 4 * qd + t < d->nrel ? 4 * qd + t : d->nrel - 1;
    LLVMValueRef ih = add64(L, ih0, lb_c64(L, d->rel[i]));
    v[t] = lb_load(L, bt, in_ptr(L, k, ih, iw, c), 1);
    if (flipped(d, k)) v[t] = LLVMBuildXor(L->b, v[t], lb_ci(L, bt, 0x80), "");
  }
  LLVMValueRef h[4];
  for (int s = 0; s < 4; s++)
    h[s] = LLVMBuildBitCast(L->b, unpack(L, v[s / 2 * 2], v[s / 2 * 2 + 1], B, 16, s % 2), wt, "");
  for (int j = 0; j < 4; j++) /* j: (ab lo, cd lo) lo, hi; (ab hi, cd hi) lo, hi */
    q[j] = LLVMBuildBitCast(L->b, unpack(L, h[j / 2], h[2 + j / 2], B / 2, 8, j % 2),
                            vec(L->t_i32, B / 4), "");
}

/* x86: vpackssdw of two requantized quad vectors (in-lane: channel order comes back below). */
static LLVMValueRef packs_dw(lb_lw *L, const dwrows *d, LLVMValueRef a, LLVMValueRef b) {
  LLVMValueRef x[2] = {a, b};
  return lb_intr(L, xname(d->B, "llvm.x86.sse2.packssdw.128", "llvm.x86.avx2.packssdw",
                          "llvm.x86.avx512.packssdw.512"), NULL, x, 2);
}

/* x86: the bytes of packs_dw's p[0] (quad vectors 0, 1) and p[1] (2, 3), in channel order,
 * clamped, stored at dst. */
static void packs_store(lb_lw *L, const dwk *k, const dwrows *d, LLVMValueRef *p, LLVMValueRef dst) {
  int B = d->B;
  const char *wb = k->ydt == LB_DTYPE_U8
                       ? xname(B, "llvm.x86.sse2.packuswb.128", "llvm.x86.avx2.packuswb",
                               "llvm.x86.avx512.packuswb.512")
                       : xname(B, "llvm.x86.sse2.packsswb.128", "llvm.x86.avx2.packsswb",
                               "llvm.x86.avx512.packsswb.512");
  lb_store(L, clamp_bytes(L, k, lb_intr(L, wb, NULL, p, 2)), dst, 1);
}

/* Requantizes the four quad accumulators of one pixel (16 lanes at a time on 512-bit targets:
 * narrow vectors are concatenated, then split again) and stores B bytes in channel order. */
static void quads_out(lb_lw *L, const dwk *k, const dwrows *d, LLVMValueRef *acc,
                      LLVMValueRef mq, LLVMValueRef dst) {
  static const int cat[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                              16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
  int B = d->B, n = B / 4, g = lb_spec_vector_bits(L->spec) >= 512 ? 64 / B : 1; /* j per chunk */
  LLVMValueRef q[4], p[2];
  for (int j0 = 0; j0 < 4; j0 += g) {
    LLVMValueRef a = acc[j0];
    for (int s = 1; s < g; s *= 2) /* g is 1, 2 or 4: pairwise concatenation */
      a = shuf(L, a, s == 1 ? acc[j0 + 1] : shuf(L, acc[j0 + 2], acc[j0 + 3], cat, 2 * n), cat, 2 * s * n);
    LLVMValueRef m = lb_load(L, vec(L->t_f32, g * n), lb_gep(L, L->t_f32, mq, lb_c64(L, j0 * n)), 4);
    LLVMValueRef r = req(L, k, a, m, NULL, NULL, 1);
    for (int s = 0; s < g; s++) q[j0 + s] = g == 1 ? r : shuf(L, r, NULL, cat + s * n, n);
  }
  if (d->arm) { /* B = 16: q[j] holds channels 4j.. 4j + 3, already clamped */
    LLVMValueRef v = shuf(L, shuf(L, q[0], q[1], cat, 8), shuf(L, q[2], q[3], cat, 8), cat, 16);
    lb_store(L, LLVMBuildTrunc(L->b, v, vec(L->t_i8, 16), ""), dst, 1);
    return;
  }
  for (int s = 0; s < 2; s++) p[s] = packs_dw(L, d, q[2 * s], q[2 * s + 1]);
  packs_store(L, k, d, p, dst);
}

/* acc + 4-byte dot products of a and w per i32 lane: vpdpbusd (a u8) or sdot (a s8). */
static LLVMValueRef dot4(lb_lw *L, const dwrows *d, const char *x86, LLVMValueRef acc,
                         LLVMValueRef a, LLVMValueRef w) {
  if (!d->arm) {
    LLVMValueRef x[3] = {acc, a, w};
    return lb_intr(L, x86, NULL, x, 3);
  }
  LLVMTypeRef b16 = vec(L->t_i8, 16), tys[2] = {LLVMTypeOf(acc), b16};
  const char *name = "llvm.aarch64.neon.sdot";
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef x[3] = {acc, LLVMBuildBitCast(L->b, a, b16, ""), LLVMBuildBitCast(L->b, w, b16, "")};
  return LLVMBuildCall2(L->b, LLVMIntrinsicGetType(L->ctx, id, tys, 2),
                        LLVMGetIntrinsicDeclaration(L->mod, id, tys, 2), x, 3, "");
}

/* mb: the i16 pair sums of a (quad operand) and w, vpmaddubsw. */
static LLVMValueRef mb_prod(lb_lw *L, const dwrows *d, LLVMValueRef a, LLVMValueRef w) {
  LLVMTypeRef bt = vec(L->t_i8, 32);
  LB_ASSERT(d->B == 32);
  LLVMValueRef x[2] = {LLVMBuildBitCast(L->b, a, bt, ""), LLVMBuildBitCast(L->b, w, bt, "")};
  return lb_intr(L, "llvm.x86.avx2.pmadd.ub.sw", NULL, x, 2);
}

/* mb: *acc += the i16 sums *s widened by vpmaddwd by ones (*acc = NULL: bias j of the block
 * at bq instead of the sum); *s becomes NULL. */
static void mb_widen(lb_lw *L, const dwrows *d, LLVMValueRef bq, int j, LLVMValueRef *acc,
                     LLVMValueRef *s) {
  if (!*s) return;
  LLVMTypeRef it = vec(L->t_i32, d->B / 4);
  LLVMValueRef x[2] = {*s, lb_ci(L, vec(LLVMInt16TypeInContext(L->ctx), d->B / 2), 1)};
  LLVMValueRef m = lb_intr(L, "llvm.x86.avx2.pmadd.wd", NULL, x, 2);
  if (!*acc) *acc = lb_load(L, it, lb_gep(L, L->t_i32, bq, lb_c64(L, j * d->B / 4)), 4);
  *acc = LLVMBuildAdd(L->b, *acc, m, "");
  *s = NULL;
}

/* Product (kw, qd) of output (r, u), quad vectors [jr[0], jr[1]), into its accumulators:
 * vpdpbusd / sdot, or (mb) the i16 sums s, widened first where the schedule says. */
static void quad_mac(lb_lw *L, const dwrows *d, const char *dp, LLVMValueRef bq, int r,
                     int64_t kw, int qd, const int *jr, LLVMValueRef *acc, LLVMValueRef *s,
                     LLVMValueRef *qv, LLVMValueRef wrow) {
  for (int j = jr[0]; j < jr[1]; j++) {
    LLVMValueRef w = lb_load(L, vec(L->t_i32, d->B / 4), lb_gep(L, L->t_i8, wrow, lb_c64(L, j * d->B)), 4);
    if (!d->mb) {
      acc[j] = dot4(L, d, dp, acc[j], qv[j], w);
      continue;
    }
    if (d->flush[r][kw][qd]) mb_widen(L, d, bq, j, &acc[j], &s[j]);
    LLVMValueRef p = mb_prod(L, d, qv[j], w);
    s[j] = s[j] ? LLVMBuildAdd(L->b, s[j], p, "") : p;
  }
}

/* Where a quad block reads and writes: channel offset in the block tables, the tables' rows
 * for it, the first input row and column, and the image. */
typedef struct qpos {
  LLVMValueRef c, bq, mq, wb, ih0, iw0;
  dwk kb;
} qpos;

/* The quad vectors [jr[0], jr[1]) of outputs (oh0 + r, ow0 + u) over every input column. */
static void quads_pass(lb_lw *L, const dwrows *d, const qpos *q, int U, const int *jr,
                       LLVMValueRef (*acc)[2][4], LLVMValueRef (*s16)[2][4]) {
  const cgeo *g = q->kb.g;
  int64_t col[2 * DW_MAXK];
  int B = d->B, nq = (d->nrel + 3) / 4, ncol = col_list(g, U, col);
  const char *dp = xname(B, "llvm.x86.avx512.vpdpbusd.128", "llvm.x86.avx512.vpdpbusd.256",
                         "llvm.x86.avx512.vpdpbusd.512");
  for (int jc = 0; jc < ncol; jc++) {
    LLVMValueRef qv[DW_MAXK][4];
    for (int qd = 0; qd < nq; qd++)
      quad_load(L, &q->kb, d, q->ih0, add64(L, q->iw0, lb_c64(L, col[jc])), q->c, qd, qv[qd]);
    for (int u = 0; u < U; u++) {
      int64_t kw = tap_col(g, u, col[jc]);
      for (int r = 0; kw >= 0 && r < d->R; r++)
        for (int qd = 0; qd < nq; qd++) {
          int64_t o = (((int64_t)r * nq + qd) * g->KW + kw) * 4 * B;
          if (d->used[r][qd])
            quad_mac(L, d, dp, q->bq, r, kw, qd, jr, acc[r][u], s16[r][u], qv[qd],
                     lb_gep(L, L->t_i8, q->wb, lb_c64(L, o)));
        }
    }
  }
}

/* Outputs (b, oh0 + r, ow0 + u), r < R, u < U, channels [c, c + B) of the quad path. AVX2
 * (mb) takes the quad vectors two at a time (16 registers: 2 x R x U i16 sums), requantized
 * and packed to i16 after each pass. */
static void quads_block(lb_lw *L, const dwk *k, const dwrows *d, int U, LLVMValueRef b,
                        LLVMValueRef oh0, LLVMValueRef ow0, LLVMValueRef c) {
  const cgeo *g = k->g;
  int B = d->B, nq = (d->nrel + 3) / 4, nj = d->mb ? 2 : 4;
  LLVMValueRef cr = LLVMBuildSub(L->b, c, lb_c64(L, d->c0), ""), acc[2][2][4] = {0}, s16[2][2][4] = {0}, p[2][2][2];
  qpos q = {.c = c, .bq = lb_gep(L, L->t_i32, d->bq, cr), .mq = lb_gep(L, L->t_f32, d->mq, cr), .kb = *k};
  q.ih0 = LLVMBuildSub(L->b, mul64(L, oh0, g->sh), lb_c64(L, g->ph), "");
  q.iw0 = LLVMBuildSub(L->b, mul64(L, ow0, g->sw), lb_c64(L, g->pw), "");
  q.wb = lb_gep(L, L->t_i8, d->w, mul64(L, cr, (int64_t)d->R * nq * g->KW * 4));
  q.kb.x = lb_gep(L, L->t_i8, k->x, mul64(L, b, g->xs[0]));
  for (int j = 0; j < 4 && !d->mb; j++) {
    LLVMValueRef bv = lb_load(L, vec(L->t_i32, B / 4), lb_gep(L, L->t_i32, q.bq, lb_c64(L, j * B / 4)), 4);
    for (int r = 0; r < d->R; r++)
      for (int u = 0; u < U; u++) acc[r][u][j] = bv;
  }
  for (int j0 = 0; j0 < 4; j0 += nj) {
    int jr[2] = {j0, j0 + nj};
    quads_pass(L, d, &q, U, jr, acc, s16);
    for (int r = 0; d->mb && r < d->R; r++)
      for (int u = 0; u < U; u++) {
        LLVMValueRef v[2];
        for (int j = j0; j < j0 + 2; j++) {
          mb_widen(L, d, q.bq, j, &acc[r][u][j], &s16[r][u][j]);
          LLVMValueRef m = lb_load(L, vec(L->t_f32, B / 4), lb_gep(L, L->t_f32, q.mq, lb_c64(L, j * B / 4)), 4);
          v[j - j0] = req(L, k, acc[r][u][j], m, NULL, NULL, 1);
        }
        p[r][u][j0 / 2] = packs_dw(L, d, v[0], v[1]);
      }
  }
  for (int r = 0; r < d->R; r++)
    for (int u = 0; u < U; u++) {
      LLVMValueRef off = add64(L, opix(L, k, b, add64(L, oh0, lb_c64(L, r)), add64(L, ow0, lb_c64(L, u))), c);
      if (d->mb)
        packs_store(L, k, d, p[r][u], lb_gep(L, L->t_i8, k->y, off));
      else
        quads_out(L, k, d, acc[r][u], q.mq, lb_gep(L, L->t_i8, k->y, off));
    }
}

/* First and one-past-last output index whose whole window lies inside [0, size). */
static void interior(int64_t out, int64_t stride, int64_t pad, int64_t k, int64_t dil,
                     int64_t size, int64_t *lo, int64_t *hi) {
  *lo = (pad + stride - 1) / stride;
  int64_t last = size - 1 + pad - (k - 1) * dil; /* o * stride <= last */
  *hi = last < 0 ? 0 : last / stride + 1;
  if (*hi > out) *hi = out;
  if (*lo > *hi) *lo = *hi;
}

static void block(lb_lw *L, const dwk *k, const dwrows *d, int U, LLVMValueRef b, LLVMValueRef oh0,
                  LLVMValueRef ow0, LLVMValueRef c, int chk) {
  dwk kc = *k;
  kc.chk = chk;
  if (d->B)
    quads_block(L, &kc, d, U, b, oh0, ow0, c);
  else
    rows_block(L, &kc, d, U, b, oh0, ow0, c);
}

/* Output columns [lo, hi) of the R rows from oh0, one at a time, taps checked. */
static void cols_checked(lb_lw *L, const dwk *k, const dwrows *d, LLVMValueRef b, LLVMValueRef oh0,
                         LLVMValueRef c, int64_t lo, int64_t hi) {
  if (lo >= hi) return;
  lb_loop lw;
  lb_loop_begin(L, &lw, lb_c64(L, lo), lb_c64(L, hi), 1);
  block(L, k, d, 1, b, oh0, lw.iv, c, 1);
  lb_loop_end(L, &lw);
}

/* R interior rows from oh0: border columns checked one at a time, the interior two at a time
 * (AVX2 quads at stride > 1 one at a time: two output columns would share one input column of
 * five for twice the registers; MobileNetV2's stride-2 layers 1.1-1.2x faster that way). */
static void rows_group(lb_lw *L, const dwk *k, const dwrows *d, LLVMValueRef b, LLVMValueRef oh0,
                       LLVMValueRef c, int64_t ow_lo, int64_t ow_hi) {
  int64_t n = ow_hi - ow_lo, U = d->mb && k->g->sw > 1 ? 1 : 2;
  cols_checked(L, k, d, b, oh0, c, 0, ow_lo);
  if (n >= U) {
    lb_loop lw;
    lb_loop_begin(L, &lw, lb_c64(L, ow_lo), lb_c64(L, ow_lo + n / U * U), U);
    block(L, k, d, (int)U, b, oh0, lw.iv, c, 0);
    lb_loop_end(L, &lw);
  }
  if (n % U) block(L, k, d, 1, b, oh0, lb_c64(L, ow_hi - 1), c, 0);
  cols_checked(L, k, d, b, oh0, c, ow_hi, k->g->OW);
}

/* Border output rows [lo, hi): every pixel checked. */
static void rows_checked(lb_lw *L, const dwk *k, const dwrows *d1, LLVMValueRef b, LLVMValueRef c,
                         int64_t lo, int64_t hi) {
  if (lo >= hi) return;
  lb_loop lh;
  lb_loop_begin(L, &lh, lb_c64(L, lo), lb_c64(L, hi), 1);
  cols_checked(L, k, d1, b, lh.iv, c, 0, k->g->OW);
  lb_loop_end(L, &lh);
}

static int group_init(lb_lw *L, const dwk *k, const int16_t *wp, int R, int B, int64_t c0,
                      int64_t c1, dwrows *d) {
  return B ? quads_init(L, k, wp, R, B, c0, c1, d) : rows_init(L, k, wp, R, d);
}

/* Channels [c0, c1) of image b in blocks of B channels (VNNI quads) or 16 (B = 0: vpmaddwd
 * pairs), blocks the outer loop (a block's weights stay close while its pixels slide),
 * interior rows two at a time. */
static int dw_rows(lb_lw *L, const dwk *k, const int16_t *wp, LLVMValueRef b, int B, int64_t c0,
                   int64_t c1) {
  const cgeo *g = k->g;
  int64_t oh_lo, oh_hi, ow_lo, ow_hi;
  interior(g->OH, g->sh, g->ph, g->KH, g->dh, g->H, &oh_lo, &oh_hi);
  interior(g->OW, g->sw, g->pw, g->KW, g->dw, g->W, &ow_lo, &ow_hi);
  int64_t n = oh_hi - oh_lo;
  dwrows d2, d1;
  if (n >= 2) LB_TRY(group_init(L, k, wp, 2, B, c0, c1, &d2));
  LB_TRY(group_init(L, k, wp, 1, B, c0, c1, &d1));
  lb_loop lc;
  lb_loop_begin(L, &lc, lb_c64(L, c0), lb_c64(L, c1), B ? B : 16);
  rows_checked(L, k, &d1, b, lc.iv, 0, oh_lo);
  if (n >= 2) {
    lb_loop lh;
    lb_loop_begin(L, &lh, lb_c64(L, oh_lo), lb_c64(L, oh_lo + n / 2 * 2), 2);
    rows_group(L, k, &d2, b, lh.iv, lc.iv, ow_lo, ow_hi);
    lb_loop_end(L, &lh);
  }
  if (n % 2) rows_group(L, k, &d1, b, lb_c64(L, oh_hi - 1), lc.iv, ow_lo, ow_hi);
  rows_checked(L, k, &d1, b, lc.iv, oh_hi, g->OH);
  lb_loop_end(L, &lc);
  return 0;
}

/* The blocked paths for channels [0, cf) of image b: VNNI quads (64, 32, then 16 channels a
 * block, up to the spec's vector width) when the target has AVX512-VNNI (whatever kernel the
 * spec's depthwise row names: vpdpbusd is exact here) and the output is requantized without a
 * residual, else vpmaddwd pairs. */
static int dw_blocked(lb_lw *L, const dwk *k, const int16_t *wp, LLVMValueRef b, int64_t cf,
                      int64_t *done) {
  const char *feat = lb_spec_llvm_features(L->spec);
  int plain = !k->r && k->ydt != LB_DTYPE_I32;
  int vnni = k->fast == 1 && (k->q->s.kind == LB_QK_VPDPBUSD ||
                              (feat && strstr(feat, "+avx512vnni") && strstr(feat, "+avx512vl")));
  int sdot = k->fast == 2 && feat && strstr(feat, "+dotprod");
  dwk km = *k; /* AVX2 quads (vpmaddubsw) in 32-channel blocks: 16-channel xmm quads are
                * slower than the ymm vpmaddwd pairs, which take the rest */
  km.mb = k->mb && !vnni && plain && cf >= 32 && lb_spec_vector_bits(L->spec) >= 256;
  *done = 0;
  if (k->fast == 1 && !(vnni && plain) && !km.mb) {
    *done = cf;
    return dw_rows(L, k, wp, b, 0, 0, cf);
  }
  if (!plain || (!vnni && !sdot && !km.mb)) return 0;
  for (int B = 64; B >= 16; B /= 2) {
    if (B > lb_spec_vector_bits(L->spec) / 8 || (km.mb && B != 32) || cf - *done < B) continue;
    int64_t c1 = *done + (cf - *done) / B * B;
    LB_TRY(dw_rows(L, &km, wp, b, B, *done, c1));
    *done = c1;
  }
  if (km.mb && *done < cf) LB_TRY(dw_rows(L, k, wp, b, 0, *done, cf));
  *done = km.mb ? cf : *done;
  return 0;
}

/* 1 when no requantize input |acc * m + r * mr| of the layer reaches 2^30 (req()): the
 * accumulator is bias + sum (x - zx) w' with |x - zx| <= 255. */
static int no_sat(const dwk *k, const int16_t *wp, const int32_t *bias, const float *mult) {
  const cgeo *g = k->g;
  int64_t taps = g->KH * g->KW;
  for (int64_t c = 0; c < g->M; c++) {
    double a = fabs((double)bias[c]);
    for (int64_t t = 0; t < taps; t++) a += 255.0 * abs(wp[c * taps + t]);
    double x = a * fabs((double)mult[c]) + (k->r ? 255.0 * fabs((double)k->q->mr) : 0.0);
    if (!(x < 1073741824.0)) return 0;
  }
  return 1;
}

static int max_abs(const int16_t *v, int64_t n) {
  int m = 0;
  for (int64_t i = 0; i < n; i++) m = abs(v[i]) > m ? abs(v[i]) : m;
  return m;
}

/* Constant data of the general path (w' as [tap][C] i32, bias, multipliers, zero page) and,
 * when the weights fit s8, of the fast paths. */
static int dw_setup(lb_lw *L, lb_op_args *a, dwk *k, const int16_t *wp, const float *mult) {
  const cgeo *g = k->g;
  int lanes = lb_spec_vector_bits(L->spec) / 32 < 4 ? 4 : lb_spec_vector_bits(L->spec) / 32;
  int64_t taps = g->KH * g->KW, C = g->M, Cp = (C + lanes - 1) / lanes * lanes;
  const int32_t *bd;
  LB_TRY(lb_int_const_i32(L, in_val(a, 2), C, &bd));
  int32_t *w = lb_calloc((size_t)(taps * C + Cp), sizeof *w), *bias = lb_calloc((size_t)Cp, 4);
  float *mm = lb_calloc((size_t)Cp, sizeof *mm);
  int8_t *zpage = lb_malloc((size_t)C + 64); /* C + a vector of zero points */
  int rc = w && bias && mm && zpage ? 0 : lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  if (!rc) {
    for (int64_t t = 0; t < taps; t++) /* wp is [g][k = t][n = 0] */
      for (int64_t c = 0; c < C; c++) w[t * C + c] = wp[c * taps + t];
    for (int64_t c = 0; c < C; c++) bias[c] = bd ? bd[lb_value_numel(in_val(a, 2)) == 1 ? 0 : c] : 0;
    memcpy(mm, mult, (size_t)C * sizeof *mm);
    memset(zpage, k->q->ap.zx, (size_t)C + 64);
    k->w = lb_const_blob(L, w, (size_t)(taps * C + Cp) * 4, "qdw");
    k->bias = lb_const_blob(L, bias, (size_t)Cp * 4, "qbias");
    k->mult = lb_const_blob(L, mm, (size_t)Cp * 4, "qmul");
    k->zpage = lb_const_blob(L, zpage, (size_t)C + 64, "qzero");
  }
  lb_free(w), lb_free(mm), lb_free(zpage);
  if (!rc && lb_qk_fits_s8(wp, taps * C)) rc = dw_pack_fast(L, k, wp, bias, C);
  if (!rc) k->mb = k->fast == 1 && max_abs(wp, taps * C) <= 64;
  if (!rc) k->nosat = k->fast == 1 && k->ydt != LB_DTYPE_I32 && !lb_requant_integer(L->rq) &&
                     no_sat(k, wp, bias, mult);
  lb_free(bias);
  return rc;
}

/* Every pixel of image b, channels [c0, C): the fast block up to cf, then vectors, then
 * single channels. */
static void dw_pixels(lb_lw *L, const dwk *k, LLVMValueRef b, int64_t c0, int64_t cf) {
  const cgeo *g = k->g;
  int lanes = lb_spec_vector_bits(L->spec) / 32 < 4 ? 4 : lb_spec_vector_bits(L->spec) / 32;
  int64_t C = g->M, cv = cf + (C - cf) / lanes * lanes;
  lb_loop lh, lw, lc;
  lb_loop_begin(L, &lh, lb_c64(L, 0), lb_c64(L, g->OH), 1);
  lb_loop_begin(L, &lw, lb_c64(L, 0), lb_c64(L, g->OW), 1);
  if (cf > c0) {
    lb_loop_begin(L, &lc, lb_c64(L, c0), lb_c64(L, cf), k->fast == 1 ? 16 : 8);
    dw_fast(L, k, b, lh.iv, lw.iv, lc.iv);
    lb_loop_end(L, &lc);
  }
  if (cv > cf) {
    lb_loop_begin(L, &lc, lb_c64(L, cf), lb_c64(L, cv), lanes);
    dw_pixel(L, k, b, lh.iv, lw.iv, lc.iv, lanes);
    lb_loop_end(L, &lc);
  }
  if (cv < C) {
    lb_loop_begin(L, &lc, lb_c64(L, cv), lb_c64(L, C), 1);
    dw_pixel(L, k, b, lh.iv, lw.iv, lc.iv, 1);
    lb_loop_end(L, &lc);
  }
  lb_loop_end(L, &lw);
  lb_loop_end(L, &lh);
}

int lb_int_conv_dw(lb_lw *L, lb_op_args *a, const cgeo *g, const qmac *q, const int16_t *wp,
                   const float *mult) {
  dwk k = {.g = g, .q = q, .x = a->in[0].base, .y = a->out[0].base, .multc = mult};
  k.r = in_val(a, 3) ? a->in[3].base : NULL;
  k.ydt = a->out[0].dt;
  k.xdt = a->in[0].dt, k.rdt = k.r ? a->in[3].dt : LB_DTYPE_I8;
  int rc = dw_setup(L, a, &k, wp, mult);
  if (rc) {
    lb_free(k.bfc);
    return rc;
  }
  int64_t C = g->M, cf = k.fast ? C / (k.fast == 1 ? 16 : 8) * (k.fast == 1 ? 16 : 8) : 0;
  int rows = k.fast && cf > 0 && g->KH <= DW_MAXK && g->KW <= DW_MAXK;
  lb_loop lb;
  lb_loop_begin(L, &lb, lb_c64(L, 0), lb_c64(L, g->N), 1);
  int64_t done = 0;
  rc = rows ? dw_blocked(L, &k, wp, lb.iv, cf, &done) : 0;
  if (!rc) dw_pixels(L, &k, lb.iv, done, cf);
  lb_loop_end(L, &lb);
  lb_free(k.bfc);
  return rc;
}
