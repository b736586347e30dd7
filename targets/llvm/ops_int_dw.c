/* Depthwise integer convs (one channel per group, NHWC): channels in vector lanes, one output
 * pixel at a time; with s8-range weights a fast block of raw x times i16 weights (x86 vpmaddwd
 * over tap pairs, AArch64 smull). Invariant: every output is interp_int.c's (same i32
 * accumulator, same lb_qrequant). */
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

/* Requantize (with the residual) and store lanes channels from c of pixel (b, oh, ow). */
static void dw_out(lb_lw *L, const dwk *k, LLVMValueRef acc, int lanes, LLVMValueRef b,
                   LLVMValueRef oh, LLVMValueRef ow, LLVMValueRef c) {
  const cgeo *g = k->g;
  LLVMTypeRef it = lanes > 1 ? vec(L->t_i32, lanes) : L->t_i32;
  LLVMTypeRef bt = lanes > 1 ? vec(L->t_i8, lanes) : L->t_i8;
  LLVMValueRef opix = add64(L, mul64(L, b, g->ys[0]),
                            add64(L, mul64(L, oh, g->ys[2]), mul64(L, ow, g->ys[3])));
  if (k->ydt == LB_DTYPE_I32) { /* the raw accumulator, read by an fp32 consumer */
    lb_store(L, acc, lb_gep(L, L->t_i32, k->y, add64(L, opix, c)), 4);
    return;
  }
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
  LLVMValueRef qv = lb_qrequant(L, &k->q->s, acc, m, rv, mr, k->q->zy, k->q->lo, k->q->hi);
  lb_store(L, LLVMBuildTrunc(L->b, qv, bt, ""), lb_gep(L, L->t_i8, k->y, add64(L, opix, c)), 1);
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
  lb_free(w), lb_free(bf);
  return 0;
}

int lb_int_conv_dw(lb_lw *L, lb_op_args *a, const cgeo *g, const qmac *q, const int16_t *wp,
                   const float *mult) {
  int lanes = lb_spec_vector_bits(L->spec) / 32;
  if (lanes < 4) lanes = 4;
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
    memset(zpage, q->ap.zx, (size_t)C + 64);
  }
  dwk k = {.g = g, .q = q, .x = a->in[0].base, .y = a->out[0].base};
  k.r = in_val(a, 3) ? a->in[3].base : NULL;
  if (!rc) {
    k.w = lb_const_blob(L, w, (size_t)(taps * C + Cp) * 4, "qdw");
    k.bias = lb_const_blob(L, bias, (size_t)Cp * 4, "qbias");
    k.mult = lb_const_blob(L, mm, (size_t)Cp * 4, "qmul");
    k.zpage = lb_const_blob(L, zpage, (size_t)C + 64, "qzero");
    k.ydt = a->out[0].dt;
    k.xdt = a->in[0].dt, k.rdt = k.r ? a->in[3].dt : LB_DTYPE_I8;
  }
  lb_free(w), lb_free(mm), lb_free(zpage);
  if (!rc && lb_qk_fits_s8(wp, taps * C)) rc = dw_pack_fast(L, &k, wp, bias, C);
  lb_free(bias);
  LB_TRY(rc);
  lb_loop lb, lh, lw, lc;
  lb_loop_begin(L, &lb, lb_c64(L, 0), lb_c64(L, g->N), 1);
  lb_loop_begin(L, &lh, lb_c64(L, 0), lb_c64(L, g->OH), 1);
  lb_loop_begin(L, &lw, lb_c64(L, 0), lb_c64(L, g->OW), 1);
  int64_t cf = k.fast ? C / (k.fast == 1 ? 16 : 8) * (k.fast == 1 ? 16 : 8) : 0;
  if (cf > 0) {
    lb_loop_begin(L, &lc, lb_c64(L, 0), lb_c64(L, cf), k.fast == 1 ? 16 : 8);
    dw_fast(L, &k, lb.iv, lh.iv, lw.iv, lc.iv);
    lb_loop_end(L, &lc);
  }
  int64_t cv = cf + (C - cf) / lanes * lanes;
  if (cv > cf) {
    lb_loop_begin(L, &lc, lb_c64(L, cf), lb_c64(L, cv), lanes);
    dw_pixel(L, &k, lb.iv, lh.iv, lw.iv, lc.iv, lanes);
    lb_loop_end(L, &lc);
  }
  if (cv < C) {
    lb_loop_begin(L, &lc, lb_c64(L, cv), lb_c64(L, C), 1);
    dw_pixel(L, &k, lb.iv, lh.iv, lw.iv, lc.iv, 1);
    lb_loop_end(L, &lc);
  }
  lb_loop_end(L, &lw);
  lb_loop_end(L, &lh);
  lb_loop_end(L, &lb);
  return 0;
}

