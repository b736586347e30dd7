/* fp32 convolution emitters, NHWC: im2col (rows of kh*kw*c_in taps, zeros in the padding), the
 * group-1 conv as im2col + GEMM (1x1 stride-1 unpadded convs go straight to the GEMM), and the
 * depthwise conv with bias, residual and activation fused. Invariant: no emitted code reads an
 * input address outside the tensor: padding taps read a clamped in-bounds address and select 0. */
#include <stdio.h>
#include <string.h>

#include "kernels.h"

static void conv_name(char *buf, size_t cap, const char *op, const lb_kern_cfg *cfg,
                      const lb_conv_desc *d, const char *tile) {
  lb_kir_name(buf, cap, "lb_f32_f32_%s_%s__%s_n%lldh%lldw%lldc%lldo%lld_k%lldx%lld_s%lldx%lld_d"
              "%lldx%lld_p%lld_%lld_%lld_%lld_ld%lld_%lld_%lld_b%dr%d", op, tile, lb_kern_isa(cfg),
              (long long)d->n, (long long)d->h, (long long)d->w, (long long)d->c_in,
              (long long)d->c_out, (long long)d->kh, (long long)d->kw, (long long)d->sh,
              (long long)d->sw, (long long)d->dh, (long long)d->dw, (long long)d->pad_t,
              (long long)d->pad_l, (long long)d->pad_b, (long long)d->pad_r, (long long)d->ldx,
              (long long)d->ldy, (long long)d->ldr, d->has_bias, d->has_res);
  lb_kir_act_suffix(buf, cap, d->act, d->act_min, d->act_max);
}

/* Pixel loops n, oh, ow; returns the flat output pixel index and sets oh/ow/n. */
typedef struct pix_loops {
  lb_kloop n, oh, ow;
  LLVMValueRef pix;
} pix_loops;

static void pix_begin(lb_kir *k, const lb_conv_desc *d, pix_loops *p) {
  lb_kloop_begin(k, &p->n, lb_kir_i64(k, 0), lb_kir_i64(k, d->n), NULL, 0);
  lb_kloop_begin(k, &p->oh, lb_kir_i64(k, 0), lb_kir_i64(k, d->oh), NULL, 0);
  lb_kloop_begin(k, &p->ow, lb_kir_i64(k, 0), lb_kir_i64(k, d->ow), NULL, 0);
  LLVMValueRef r = LLVMBuildNSWMul(k->b, p->n.iv, lb_kir_i64(k, d->oh), "");
  r = LLVMBuildNSWAdd(k->b, r, p->oh.iv, "");
  r = LLVMBuildNSWMul(k->b, r, lb_kir_i64(k, d->ow), "");
  p->pix = LLVMBuildNSWAdd(k->b, r, p->ow.iv, "");
}

static void pix_end(lb_kir *k, pix_loops *p) {
  lb_kloop_end(k, &p->ow, lb_kir_i64(k, 1), NULL);
  lb_kloop_end(k, &p->oh, lb_kir_i64(k, 1), NULL);
  lb_kloop_end(k, &p->n, lb_kir_i64(k, 1), NULL);
}

/* Input coordinate o*stride - pad + t*dil and whether it lies in [0, size). */
static LLVMValueRef in_coord(lb_kir *k, LLVMValueRef o, int64_t stride, int64_t pad, int64_t t,
                             int64_t dil, int64_t size, LLVMValueRef *ok) {
  LLVMValueRef c = LLVMBuildNSWMul(k->b, o, lb_kir_i64(k, stride), "");
  c = LLVMBuildNSWAdd(k->b, c, lb_kir_i64(k, t * dil - pad), "");
  *ok = LLVMBuildICmp(k->b, LLVMIntULT, c, lb_kir_i64(k, size), "");
  return c;
}

/* Offset of input pixel (n, ih, iw) in X, clamped to pixel 0 of the image when !ok. */
static LLVMValueRef tap_offset(lb_kir *k, const lb_conv_desc *d, LLVMValueRef n, LLVMValueRef ih,
                               LLVMValueRef iw, LLVMValueRef ok) {
  LLVMValueRef zero = lb_kir_i64(k, 0);
  ih = LLVMBuildSelect(k->b, ok, ih, zero, "");
  iw = LLVMBuildSelect(k->b, ok, iw, zero, "");
  LLVMValueRef r = LLVMBuildNSWMul(k->b, n, lb_kir_i64(k, d->h), "");
  r = LLVMBuildNSWMul(k->b, LLVMBuildNSWAdd(k->b, r, ih, ""), lb_kir_i64(k, d->w), "");
  r = LLVMBuildNSWAdd(k->b, r, iw, "");
  return LLVMBuildNSWMul(k->b, r, lb_kir_i64(k, d->ldx), "");
}

/* ---- im2col ------------------------------------------------------------------------------ */

/* dst[0..c) = ok ? src[0..c) : 0, in vectors (a loop when c spans more than 8 of them). */
static void copy_or_zero(lb_kir *k, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef ok,
                         int64_t c) {
  int64_t full = c / k->vw * k->vw;
  LLVMValueRef zero = LLVMConstNull(k->vec);
  if (full > 8 * k->vw) {
    lb_kloop l;
    lb_kloop_begin(k, &l, lb_kir_i64(k, 0), lb_kir_i64(k, full), NULL, 0);
    LLVMValueRef v = lb_kir_vload(k, lb_kir_gep(k, src, l.iv), k->vw);
    lb_kir_vstore(k, LLVMBuildSelect(k->b, ok, v, zero, ""), lb_kir_gep(k, dst, l.iv), k->vw);
    lb_kloop_end(k, &l, lb_kir_i64(k, k->vw), NULL);
  } else {
    for (int64_t i = 0; i < full; i += k->vw) {
      LLVMValueRef v = lb_kir_vload(k, lb_kir_gepc(k, src, i), k->vw);
      lb_kir_vstore(k, LLVMBuildSelect(k->b, ok, v, zero, ""), lb_kir_gepc(k, dst, i), k->vw);
    }
  }
  if (c > full) {
    int lanes = (int)(c - full);
    LLVMValueRef v = lb_kir_vload(k, lb_kir_gepc(k, src, full), lanes);
    lb_kir_vstore(k, LLVMBuildSelect(k->b, ok, v, zero, ""), lb_kir_gepc(k, dst, full), lanes);
  }
}

/* An output position (image, row, column). */
typedef struct pix_pos {
  LLVMValueRef n, oh, ow;
} pix_pos;

/* The kw taps of kernel row r, one copy_or_zero per tap (handles padding anywhere). */
static void im2col_taps(lb_kir *k, const lb_conv_desc *d, const pix_pos *p, LLVMValueRef row,
                        int64_t r, LLVMValueRef ih, LLVMValueRef okh) {
  LLVMValueRef X = LLVMGetParam(k->fn, 0), okw;
  for (int64_t s = 0; s < d->kw; s++) {
    LLVMValueRef iw = in_coord(k, p->ow, d->sw, d->pad_l, s, d->dw, d->w, &okw);
    LLVMValueRef ok = LLVMBuildAnd(k->b, okh, okw, "");
    LLVMValueRef src = lb_kir_gep(k, X, tap_offset(k, d, p->n, ih, iw, ok));
    copy_or_zero(k, lb_kir_gepc(k, row, (r * d->kw + s) * d->c_in), src, ok, d->c_in);
  }
}

/* Kernel row r. With dense pixels and no horizontal dilation the kw taps are kw*c_in contiguous
 * input floats, copied in one piece whenever the whole row lies inside the image. */
static void im2col_row(lb_kir *k, const lb_conv_desc *d, const pix_pos *p, LLVMValueRef row,
                       int64_t r) {
  LLVMValueRef okh, okw;
  LLVMValueRef ih = in_coord(k, p->oh, d->sh, d->pad_t, r, d->dh, d->h, &okh);
  if (d->kw == 1 || d->dw != 1 || d->ldx != d->c_in || d->w < d->kw) {
    im2col_taps(k, d, p, row, r, ih, okh);
    return;
  }
  LLVMValueRef iw0 = in_coord(k, p->ow, d->sw, d->pad_l, 0, 1, d->w - d->kw + 1, &okw);
  LLVMBasicBlockRef fast = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "row");
  LLVMBasicBlockRef slow = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "taps");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "join");
  LLVMBuildCondBr(k->b, LLVMBuildAnd(k->b, okh, okw, ""), fast, slow);
  LLVMPositionBuilderAtEnd(k->b, fast);
  LLVMValueRef src = lb_kir_gep(k, LLVMGetParam(k->fn, 0),
                                tap_offset(k, d, p->n, ih, iw0, LLVMConstInt(k->i1, 1, 0)));
  copy_or_zero(k, lb_kir_gepc(k, row, r * d->kw * d->c_in), src, LLVMConstInt(k->i1, 1, 0),
               d->kw * d->c_in);
  LLVMBuildBr(k->b, join);
  LLVMPositionBuilderAtEnd(k->b, slow);
  im2col_taps(k, d, p, row, r, ih, okh);
  LLVMBuildBr(k->b, join);
  LLVMPositionBuilderAtEnd(k->b, join);
}

int lb_emit_im2col_f32(LLVMModuleRef mod, const lb_kern_cfg *cfg, const lb_conv_desc *d,
                       lb_kern_out *out, lb_diag *diag) {
  LB_TRY(lb_kern_cfg_check(cfg, diag));
  char name[LB_KERN_NAME_MAX];
  conv_name(name, sizeof name, "im2col", cfg, d, "x1");
  out->scratch_bytes = 0;
  lb_kir k;
  LLVMTypeRef params[2] = {0};
  if (lb_kir_begin(&k, mod, cfg, name, params, 2, 0, &out->fn)) return LB_OK;
  int64_t kdim = d->kh * d->kw * d->c_in;
  pix_loops p;
  pix_begin(&k, d, &p);
  LLVMValueRef row = lb_kir_gep(&k, LLVMGetParam(k.fn, 1),
                                LLVMBuildNSWMul(k.b, p.pix, lb_kir_i64(&k, kdim), ""));
  pix_pos pos = {p.n.iv, p.oh.iv, p.ow.iv};
  for (int64_t r = 0; r < d->kh; r++) im2col_row(&k, d, &pos, row, r);
  pix_end(&k, &p);
  LLVMBuildRetVoid(k.b);
  out->fn = k.fn;
  lb_kir_end(&k);
  return LB_OK;
}

/* ---- group-1 conv ------------------------------------------------------------------------ */

static int is_pointwise(const lb_conv_desc *d) {
  return d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->pad_t == 0 &&
         d->pad_l == 0 && d->pad_b == 0 && d->pad_r == 0;
}

/* Internal: void f(X, cols, i64 begin, i64 end) writes the im2col rows of output pixels
 * [begin, end) to cols[0 ..). */
static LLVMValueRef emit_im2col_rows(LLVMModuleRef mod, const lb_kern_cfg *cfg,
                                     const lb_conv_desc *d) {
  char name[LB_KERN_NAME_MAX];
  conv_name(name, sizeof name, "im2col", cfg, d, "rows");
  lb_kir k;
  LLVMValueRef fn;
  LLVMTypeRef params[4] = {0};
  params[2] = params[3] = LLVMInt64TypeInContext(LLVMGetModuleContext(mod));
  if (lb_kir_begin(&k, mod, cfg, name, params, 4, 1, &fn)) return fn;
  int64_t kdim = d->kh * d->kw * d->c_in, plane = d->oh * d->ow;
  LLVMValueRef begin = LLVMGetParam(k.fn, 2);
  lb_kloop l;
  lb_kloop_begin(&k, &l, begin, LLVMGetParam(k.fn, 3), NULL, 0);
  LLVMValueRef rest = LLVMBuildSRem(k.b, l.iv, lb_kir_i64(&k, plane), "");
  pix_pos pos = {LLVMBuildSDiv(k.b, l.iv, lb_kir_i64(&k, plane), ""),
                 LLVMBuildSDiv(k.b, rest, lb_kir_i64(&k, d->ow), ""),
                 LLVMBuildSRem(k.b, rest, lb_kir_i64(&k, d->ow), "")};
  LLVMValueRef off = LLVMBuildNSWMul(k.b, LLVMBuildNSWSub(k.b, l.iv, begin, ""),
                                     lb_kir_i64(&k, kdim), "");
  LLVMValueRef row = lb_kir_gep(&k, LLVMGetParam(k.fn, 1), off);
  for (int64_t r = 0; r < d->kh; r++) im2col_row(&k, d, &pos, row, r);
  lb_kloop_end(&k, &l, lb_kir_i64(&k, 1), NULL);
  LLVMBuildRetVoid(k.b);
  fn = k.fn;
  lb_kir_end(&k);
  return fn;
}

/* How a group-1 conv runs: GEMM straight on the input (pointwise), or blocks of mb pixels:
 * im2col of the block into scratch (a quarter of L2 when the weights fit in half of L2, else at
 * least 24 register tiles), then its GEMM. Blocking took ResNet-18's convs from
 * 17.2 to 15.8 ms on Zen 5 (bench_gemm --resnet18); L2/2 blocks were slower, L2/8 the same. */
typedef struct conv_plan {
  lb_gemm_desc g;
  int pointwise;
  int64_t mb, nblk; /* pixels per block (a multiple of MR) and block count */
} conv_plan;

static void plan_conv(const lb_kern_cfg *cfg, const lb_conv_desc *d, conv_plan *c) {
  lb_conv_gemm_desc(d, &c->g);
  c->pointwise = is_pointwise(d);
  if (c->pointwise) c->g.lda = d->ldx; /* A is the input itself: one pixel per row */
  int mr, nr;
  lb_kern_gemm_tile(cfg, &mr, &nr);
  int64_t l2 = cfg->cache[1] > 0 ? cfg->cache[1] : 1 << 20;
  c->mb = c->g.m;
  if (!c->pointwise) {
    int64_t mb = l2 / 4 / (c->g.k * 4) / mr * mr;
    /* Weights beyond L2 are re-read once per block: blocks of at least 24 tiles keep that
     * below 1/(24*MR) of the FMAs, and the scratch stays bounded for large images. */
    if (c->g.k * c->g.n * 4 > l2 / 2 && mb < 24 * mr) mb = 24 * mr;
    if (mb >= 4 * mr && mb < c->g.m) c->mb = mb;
  }
  c->nblk = (c->g.m + c->mb - 1) / c->mb;
}

/* GEMM of the block of m rows starting at row m0 (runtime), on the im2col rows in scratch. */
static void conv_block(lb_kir *k, const lb_conv_desc *d, LLVMValueRef im, LLVMValueRef gemm,
                       LLVMValueRef m0, int64_t m) {
  LLVMValueRef a[6];
  for (int i = 0; i < 6; i++) a[i] = LLVMGetParam(k->fn, (unsigned)i);
  LLVMValueRef ia[4] = {a[0], a[5], m0, LLVMBuildNSWAdd(k->b, m0, lb_kir_i64(k, m), "")};
  LLVMBuildCall2(k->b, LLVMGlobalGetValueType(im), im, ia, 4, "");
  a[0] = a[5];
  if (d->has_res) a[3] = lb_kir_gep(k, a[3], LLVMBuildNSWMul(k->b, m0, lb_kir_i64(k, d->ldr), ""));
  a[4] = lb_kir_gep(k, a[4], LLVMBuildNSWMul(k->b, m0, lb_kir_i64(k, d->ldy), ""));
  a[5] = LLVMConstNull(k->ptr);
  LLVMBuildCall2(k->b, LLVMGlobalGetValueType(gemm), gemm, a, 6, "");
}

/* The wrapper body: block loop, last (possibly shorter) block, or the pointwise GEMM. */
static int conv_body(lb_kir *k, LLVMModuleRef mod, const lb_kern_cfg *cfg, const lb_conv_desc *d,
                     const conv_plan *c, lb_diag *diag) {
  lb_gemm_desc g = c->g;
  lb_kern_out gk, gl;
  if (c->pointwise) {
    LB_TRY(lb_emit_gemm_f32(mod, cfg, &g, &gk, diag));
    LLVMValueRef a[6];
    for (int i = 0; i < 6; i++) a[i] = LLVMGetParam(k->fn, (unsigned)i);
    a[5] = LLVMConstNull(k->ptr);
    LLVMBuildCall2(k->b, LLVMGlobalGetValueType(gk.fn), gk.fn, a, 6, "");
    return LB_OK;
  }
  LLVMValueRef im = emit_im2col_rows(mod, cfg, d);
  int64_t last = c->g.m - (c->nblk - 1) * c->mb;
  g.m = c->mb;
  LB_TRY(lb_emit_gemm_f32(mod, cfg, &g, &gk, diag));
  g.m = last;
  LB_TRY(lb_emit_gemm_f32(mod, cfg, &g, &gl, diag));
  if (c->nblk > 1) {
    lb_kloop l;
    lb_kloop_begin(k, &l, lb_kir_i64(k, 0), lb_kir_i64(k, (c->nblk - 1) * c->mb), NULL, 0);
    conv_block(k, d, im, gk.fn, l.iv, c->mb);
    lb_kloop_end(k, &l, lb_kir_i64(k, c->mb), NULL);
  }
  conv_block(k, d, im, gl.fn, lb_kir_i64(k, (c->nblk - 1) * c->mb), last);
  return LB_OK;
}

int lb_emit_conv_f32(LLVMModuleRef mod, const lb_kern_cfg *cfg, const lb_conv_desc *d,
                     lb_kern_out *out, lb_diag *diag) {
  LB_TRY(lb_kern_cfg_check(cfg, diag));
  conv_plan c;
  plan_conv(cfg, d, &c);
  uint64_t cols = (uint64_t)c.mb * (uint64_t)c.g.k;
  if (cols / (uint64_t)c.mb != (uint64_t)c.g.k || cols > SIZE_MAX / 8)
    return lb_diag_err(diag, LB_ERR_INPUT, "conv: im2col buffer of %lld x %lld floats is too "
                       "large", (long long)c.mb, (long long)c.g.k);
  out->scratch_bytes = c.pointwise ? 0 : (size_t)cols * sizeof(float);
  char name[LB_KERN_NAME_MAX], tile[48];
  int mr, nr;
  lb_kern_gemm_tile(cfg, &mr, &nr);
  lb_kir_name(tile, sizeof tile, "%dx%d_mb%lld", mr, nr, (long long)c.mb);
  conv_name(name, sizeof name, "conv", cfg, d, tile);
  lb_kir k;
  LLVMTypeRef params[6] = {0};
  if (lb_kir_begin(&k, mod, cfg, name, params, 6, 0, &out->fn)) return LB_OK;
  int rc = conv_body(&k, mod, cfg, d, &c, diag);
  if (rc) {
    LLVMDeleteFunction(k.fn);
    lb_kir_end(&k);
    return rc;
  }
  LLVMBuildRetVoid(k.b);
  out->fn = k.fn;
  lb_kir_end(&k);
  return LB_OK;
}

/* ---- depthwise conv ---------------------------------------------------------------------- */

#define DW_MAX_TAPS 64
#define DW_UNROLL 4 /* vectors of channels per block */

typedef struct dw_pix {
  LLVMValueRef off[DW_MAX_TAPS]; /* clamped input offset of each tap */
  LLVMValueRef ok[DW_MAX_TAPS];
  LLVMValueRef y, res;           /* output and residual pixel pointers */
  int border;                    /* some taps may be padding: select 0 for them */
} dw_pix;

/* Accumulators start at the bias (or 0) of channels [c0, c0 + sum(lanes)). */
static void dw_init(lb_kir *k, const lb_conv_desc *d, LLVMValueRef c0, const int *lanes,
                    int nvec, LLVMValueRef *acc) {
  LLVMValueRef bias = lb_kir_gep(k, LLVMGetParam(k->fn, 2), c0);
  for (int u = 0; u < nvec; u++)
    acc[u] = d->has_bias ? lb_kir_vload(k, lb_kir_gepc(k, bias, u * k->vw), lanes[u])
                         : LLVMConstNull(k->vec);
}

/* Residual, activation and store of one pixel's channel block. */
static void dw_store(lb_kir *k, const lb_conv_desc *d, LLVMValueRef y, LLVMValueRef res,
                     LLVMValueRef c0, const int *lanes, int nvec, const LLVMValueRef *acc) {
  for (int u = 0; u < nvec; u++) {
    LLVMValueRef v = acc[u];
    if (d->has_res)
      v = LLVMBuildFAdd(k->b, v, lb_kir_vload(k, lb_kir_gepc(k, lb_kir_gep(k, res, c0),
                                                               u * k->vw), lanes[u]), "");
    v = lb_kir_act(k, v, d->act, d->act_min, d->act_max);
    lb_kir_vstore(k, v, lb_kir_gepc(k, lb_kir_gep(k, y, c0), u * k->vw), lanes[u]);
  }
}

/* One block of channels [c0, c0 + sum(lanes)) for one pixel: all taps, then the epilogue. */
static void dw_block(lb_kir *k, const lb_conv_desc *d, const dw_pix *px, LLVMValueRef c0,
                     const int *lanes, int nvec) {
  LLVMValueRef X = LLVMGetParam(k->fn, 0), W = LLVMGetParam(k->fn, 1);
  LLVMValueRef acc[DW_UNROLL], zero = LLVMConstNull(k->vec);
  dw_init(k, d, c0, lanes, nvec, acc);
  LLVMValueRef wc = lb_kir_gep(k, W, c0);
  for (int t = 0; t < d->kh * d->kw; t++) {
    LLVMValueRef xp = lb_kir_gep(k, X, LLVMBuildNSWAdd(k->b, px->off[t], c0, ""));
    for (int u = 0; u < nvec; u++) {
      LLVMValueRef x = lb_kir_vload(k, lb_kir_gepc(k, xp, u * k->vw), lanes[u]);
      if (px->border) x = LLVMBuildSelect(k->b, px->ok[t], x, zero, "");
      LLVMValueRef w = lb_kir_vload(k, lb_kir_gepc(k, wc, t * d->c_in + u * k->vw), lanes[u]);
      acc[u] = lb_kir_fma(k, x, w, acc[u]);
    }
  }
  dw_store(k, d, px->y, px->res, c0, lanes, nvec, acc);
}

/* Output pointer of pixel index pix (y: param 4, stride ldy; residual: param 3, stride ldr). */
static LLVMValueRef dw_out(lb_kir *k, unsigned param, LLVMValueRef pix, int64_t ld) {
  return lb_kir_gep(k, LLVMGetParam(k->fn, param),
                    LLVMBuildNSWMul(k->b, pix, lb_kir_i64(k, ld), ""));
}

/* Kernel row r for the pixel pair: distinct input columns (relative to the first pixel's
 * window start) loaded once, each weight vector loaded once for both pixels. */
static void dw_pair_row(lb_kir *k, const lb_conv_desc *d, LLVMValueRef row, LLVMValueRef wp,
                        int64_t r, const int *lanes, int nvec, LLVMValueRef *acc0,
                        LLVMValueRef *acc1) {
  LLVMValueRef xs[2 * 16][DW_UNROLL];
  int64_t cols[2 * 16];
  int nc = 0;
  for (int64_t s = 0; s < 2 * d->kw; s++) {
    int64_t c = (s % d->kw) * d->dw + (s / d->kw) * d->sw, j = 0;
    while (j < nc && cols[j] != c) j++;
    if (j < nc) continue;
    cols[nc] = c;
    for (int u = 0; u < nvec; u++)
      xs[nc][u] = lb_kir_vload(k, lb_kir_gepc(k, row, c * d->ldx + u * k->vw), lanes[u]);
    nc++;
  }
  for (int64_t s = 0; s < d->kw; s++) {
    int j0 = 0, j1 = 0;
    while (cols[j0] != s * d->dw) j0++;
    while (cols[j1] != s * d->dw + d->sw) j1++;
    for (int u = 0; u < nvec; u++) {
      int64_t woff = (r * d->kw + s) * d->c_in + u * k->vw;
      LLVMValueRef w = lb_kir_vload(k, lb_kir_gepc(k, wp, woff), lanes[u]);
      acc0[u] = lb_kir_fma(k, xs[j0][u], w, acc0[u]);
      acc1[u] = lb_kir_fma(k, xs[j1][u], w, acc1[u]);
    }
  }
}

/* Flat output pixel index of (n, oh, ow). */
static LLVMValueRef dw_pix_index(lb_kir *k, const lb_conv_desc *d, LLVMValueRef n,
                                 LLVMValueRef oh, LLVMValueRef ow) {
  LLVMValueRef r = LLVMBuildNSWMul(k->b, n, lb_kir_i64(k, d->oh), "");
  r = LLVMBuildNSWAdd(k->b, r, oh, "");
  return LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, r, lb_kir_i64(k, d->ow), ""), ow, "");
}

/* Two horizontally adjacent interior pixels (ow, ow + 1) of row oh (kw <= 16). */
static void dw_pair(lb_kir *k, const lb_conv_desc *d, LLVMValueRef n, LLVMValueRef oh,
                    LLVMValueRef ow, LLVMValueRef c0, const int *lanes, int nvec) {
  LLVMValueRef X = LLVMGetParam(k->fn, 0), wp = lb_kir_gep(k, LLVMGetParam(k->fn, 1), c0);
  LLVMValueRef acc0[DW_UNROLL], acc1[DW_UNROLL], ok, yes = LLVMConstInt(k->i1, 1, 0);
  dw_init(k, d, c0, lanes, nvec, acc0);
  dw_init(k, d, c0, lanes, nvec, acc1);
  LLVMValueRef iw0 = in_coord(k, ow, d->sw, d->pad_l, 0, 1, d->w, &ok);
  for (int64_t r = 0; r < d->kh; r++) {
    LLVMValueRef ih = in_coord(k, oh, d->sh, d->pad_t, r, d->dh, d->h, &ok);
    LLVMValueRef off = LLVMBuildNSWAdd(k->b, c0, tap_offset(k, d, n, ih, iw0, yes), "");
    dw_pair_row(k, d, lb_kir_gep(k, X, off), wp, r, lanes, nvec, acc0, acc1);
  }
  LLVMValueRef pix = dw_pix_index(k, d, n, oh, ow);
  LLVMValueRef pix1 = LLVMBuildNSWAdd(k->b, pix, lb_kir_i64(k, 1), "");
  LLVMValueRef no = LLVMConstNull(k->ptr);
  dw_store(k, d, dw_out(k, 4, pix, d->ldy), d->has_res ? dw_out(k, 3, pix, d->ldr) : no, c0,
           lanes, nvec, acc0);
  dw_store(k, d, dw_out(k, 4, pix1, d->ldy), d->has_res ? dw_out(k, 3, pix1, d->ldr) : no, c0,
           lanes, nvec, acc1);
}

/* Interior pixels (every tap inside the image) skip the per-tap selects; LLVM would otherwise
 * turn each select into a branch on a spilled flag. */
static void dw_split(lb_kir *k, const lb_conv_desc *d, dw_pix *px, LLVMValueRef c0,
                     const int *lanes, int nvec) {
  LLVMValueRef all = px->ok[0];
  for (int t = 1; t < d->kh * d->kw; t++) all = LLVMBuildAnd(k->b, all, px->ok[t], "");
  LLVMBasicBlockRef in = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "interior");
  LLVMBasicBlockRef bd = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "border");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "join");
  LLVMBuildCondBr(k->b, all, in, bd);
  LLVMPositionBuilderAtEnd(k->b, in);
  px->border = 0;
  dw_block(k, d, px, c0, lanes, nvec);
  LLVMBuildBr(k->b, join);
  LLVMPositionBuilderAtEnd(k->b, bd);
  px->border = 1;
  dw_block(k, d, px, c0, lanes, nvec);
  LLVMBuildBr(k->b, join);
  LLVMPositionBuilderAtEnd(k->b, join);
}

/* Pixels [ow_lo, ow_hi) of row (n, oh), one at a time, padding handled per tap. */
static void dw_singles(lb_kir *k, const lb_conv_desc *d, LLVMValueRef n, LLVMValueRef oh,
                       LLVMValueRef ow_lo, LLVMValueRef ow_hi, LLVMValueRef c0, const int *lanes,
                       int nvec) {
  lb_kloop l;
  lb_kloop_begin(k, &l, ow_lo, ow_hi, NULL, 0);
  dw_pix px;
  for (int64_t r = 0; r < d->kh; r++) {
    LLVMValueRef okh, okw;
    LLVMValueRef ih = in_coord(k, oh, d->sh, d->pad_t, r, d->dh, d->h, &okh);
    for (int64_t s = 0; s < d->kw; s++) {
      LLVMValueRef iw = in_coord(k, l.iv, d->sw, d->pad_l, s, d->dw, d->w, &okw);
      int64_t t = r * d->kw + s;
      px.ok[t] = LLVMBuildAnd(k->b, okh, okw, "");
      px.off[t] = tap_offset(k, d, n, ih, iw, px.ok[t]);
    }
  }
  LLVMValueRef pix = dw_pix_index(k, d, n, oh, l.iv);
  px.y = dw_out(k, 4, pix, d->ldy);
  px.res = d->has_res ? dw_out(k, 3, pix, d->ldr) : NULL;
  dw_split(k, d, &px, c0, lanes, nvec);
  lb_kloop_end(k, &l, lb_kir_i64(k, 1), NULL);
}

/* First and one-past-last output index whose whole window lies inside [0, size). */
static void interior(int64_t out, int64_t stride, int64_t pad, int64_t k, int64_t dil,
                     int64_t size, int64_t *lo, int64_t *hi) {
  *lo = (pad + stride - 1) / stride;
  int64_t last = size - 1 + pad - (k - 1) * dil; /* o*stride <= last */
  *hi = last < 0 ? 0 : last / stride + 1;
  if (*hi > out) *hi = out;
  if (*lo > *hi) *lo = *hi;
}

/* Every output pixel for the channel block [c0, c0 + sum(lanes)): the block's weights and the
 * input rows under the window stay in L1 while the pixels slide. Rows whose windows are all
 * inside the image take interior pixels in pairs (dw_pair); the rest go one by one. */
static void dw_pixels(lb_kir *k, const lb_conv_desc *d, LLVMValueRef c0, const int *lanes,
                      int nvec) {
  int64_t oh_lo, oh_hi, ow_lo, ow_hi;
  interior(d->oh, d->sh, d->pad_t, d->kh, d->dh, d->h, &oh_lo, &oh_hi);
  interior(d->ow, d->sw, d->pad_l, d->kw, d->dw, d->w, &ow_lo, &ow_hi);
  int64_t pairs = d->kw <= 16 ? (ow_hi - ow_lo) / 2 : 0, pend = ow_lo + 2 * pairs;
  lb_kloop ln, lh;
  lb_kloop_begin(k, &ln, lb_kir_i64(k, 0), lb_kir_i64(k, d->n), NULL, 0);
  lb_kloop_begin(k, &lh, lb_kir_i64(k, 0), lb_kir_i64(k, d->oh), NULL, 0);
  LLVMValueRef n = ln.iv, oh = lh.iv, zero = lb_kir_i64(k, 0), all = lb_kir_i64(k, d->ow);
  if (pairs == 0 || oh_lo >= oh_hi) {
    dw_singles(k, d, n, oh, zero, all, c0, lanes, nvec);
  } else {
    LLVMValueRef in = LLVMBuildAnd(k->b,
        LLVMBuildICmp(k->b, LLVMIntSGE, oh, lb_kir_i64(k, oh_lo), ""),
        LLVMBuildICmp(k->b, LLVMIntSLT, oh, lb_kir_i64(k, oh_hi), ""), "");
    LLVMBasicBlockRef bp = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "pairs");
    LLVMBasicBlockRef bs = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "singles");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "rowdone");
    LLVMBuildCondBr(k->b, in, bp, bs);
    LLVMPositionBuilderAtEnd(k->b, bp);
    dw_singles(k, d, n, oh, zero, lb_kir_i64(k, ow_lo), c0, lanes, nvec);
    lb_kloop lp;
    lb_kloop_begin(k, &lp, lb_kir_i64(k, ow_lo), lb_kir_i64(k, pend), NULL, 0);
    dw_pair(k, d, n, oh, lp.iv, c0, lanes, nvec);
    lb_kloop_end(k, &lp, lb_kir_i64(k, 2), NULL);
    dw_singles(k, d, n, oh, lb_kir_i64(k, pend), all, c0, lanes, nvec);
    LLVMBuildBr(k->b, join);
    LLVMPositionBuilderAtEnd(k->b, bs);
    dw_singles(k, d, n, oh, zero, all, c0, lanes, nvec);
    LLVMBuildBr(k->b, join);
    LLVMPositionBuilderAtEnd(k->b, join);
  }
  lb_kloop_end(k, &lh, lb_kir_i64(k, 1), NULL);
  lb_kloop_end(k, &ln, lb_kir_i64(k, 1), NULL);
}

/* Channel blocks of DW_UNROLL full vectors in a loop, then the rest (the last vector masked).
 * Channel blocks are the outer loop: pixel-outer order re-read kh*kw*C floats of weights and
 * input per pixel from L2 and ran 3-4x slower at C = 960. */
static void dw_channels(lb_kir *k, const lb_conv_desc *d) {
  int64_t blk = (int64_t)DW_UNROLL * k->vw, nfull = d->c_in / blk * blk;
  int lanes[DW_UNROLL];
  for (int u = 0; u < DW_UNROLL; u++) lanes[u] = k->vw;
  if (nfull > 0) {
    lb_kloop l;
    lb_kloop_begin(k, &l, lb_kir_i64(k, 0), lb_kir_i64(k, nfull), NULL, 0);
    dw_pixels(k, d, l.iv, lanes, DW_UNROLL);
    lb_kloop_end(k, &l, lb_kir_i64(k, blk), NULL);
  }
  int64_t rest = d->c_in - nfull;
  int nvec = 0;
  for (; rest > 0; rest -= k->vw) lanes[nvec++] = rest < k->vw ? (int)rest : k->vw;
  if (nvec) dw_pixels(k, d, lb_kir_i64(k, nfull), lanes, nvec);
}

int lb_emit_dwconv_f32(LLVMModuleRef mod, const lb_kern_cfg *cfg, const lb_conv_desc *d,
                       lb_kern_out *out, lb_diag *diag) {
  LB_TRY(lb_kern_cfg_check(cfg, diag));
  if (d->c_out != d->c_in)
    return lb_diag_err(diag, LB_ERR_INPUT, "depthwise conv: %lld output channels for %lld inputs "
                       "(only channel multiplier 1 is supported)", (long long)d->c_out,
                       (long long)d->c_in);
  if (d->kh * d->kw > DW_MAX_TAPS)
    return lb_diag_err(diag, LB_ERR_INPUT, "depthwise conv: %lldx%lld kernel has more than %d taps",
                       (long long)d->kh, (long long)d->kw, DW_MAX_TAPS);
  char name[LB_KERN_NAME_MAX], tile[32];
  lb_kir_name(tile, sizeof tile, "%dp%dc", (int)(d->kh * d->kw),
              DW_UNROLL * cfg->vector_bits / 32);
  conv_name(name, sizeof name, "dwconv", cfg, d, tile);
  out->scratch_bytes = 0;
  lb_kir k;
  LLVMTypeRef params[6] = {0};
  if (lb_kir_begin(&k, mod, cfg, name, params, 6, 0, &out->fn)) return LB_OK;
  dw_channels(&k, d);
  LLVMBuildRetVoid(k.b);
  out->fn = k.fn;
  lb_kir_end(&k);
  return LB_OK;
}
