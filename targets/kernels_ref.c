/* Scalar references for the fp32 kernels: the oracle every emitted kernel is tested against.
 * Plain C, unpacked operands, double accumulation in k order; the epilogue adds bias, then the
 * residual, then applies the activation, in the same order as the emitted code. */
#include <math.h>
#include <string.h>

#include "kernels.h"

float lb_ref_act(lb_act act, float lo, float hi, float x) {
  switch (act) {
  case LB_ACT_NONE: return x;
  case LB_ACT_RELU: return fmaxf(x, 0.0f);
  case LB_ACT_CLIP: return fminf(fmaxf(x, lo), hi);
  }
  LB_ASSERT(!"unknown activation");
}

void lb_ref_gemm_f32(const lb_gemm_desc *d, const float *a, const float *b, const float *bias,
                     const float *res, float *c) {
  int64_t ldb = d->b_rowmajor ? d->ldb : d->n;
  for (int64_t i = 0; i < d->m; i++) {
    for (int64_t j = 0; j < d->n; j++) {
      double s = 0;
      for (int64_t k = 0; k < d->k; k++) s += (double)a[i * d->lda + k] * b[k * ldb + j];
      float v = (float)s;
      if (d->has_bias) v += bias[j];
      if (d->has_res) v += res[i * d->ldr + j];
      c[i * d->ldc + j] = lb_ref_act(d->act, d->act_min, d->act_max, v);
    }
  }
}

/* The input pixel that tap (r, q) of output pixel (n, oh, ow) reads, or NULL when it falls in
 * the padding. */
static const float *pixel(const lb_conv_desc *d, const float *x, int64_t n, int64_t oh, int64_t ow,
                          int64_t r, int64_t q) {
  int64_t ih = oh * d->sh - d->pad_t + r * d->dh, iw = ow * d->sw - d->pad_l + q * d->dw;
  if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) return NULL;
  return x + ((n * d->h + ih) * d->w + iw) * d->ldx;
}

void lb_ref_im2col_f32(const lb_conv_desc *d, const float *x, float *cols) {
  int64_t kdim = d->kh * d->kw * d->c_in;
  for (int64_t n = 0; n < d->n; n++)
    for (int64_t oh = 0; oh < d->oh; oh++)
      for (int64_t ow = 0; ow < d->ow; ow++) {
        float *row = cols + ((n * d->oh + oh) * d->ow + ow) * kdim;
        for (int64_t r = 0; r < d->kh; r++)
          for (int64_t s = 0; s < d->kw; s++) {
            const float *p = pixel(d, x, n, oh, ow, r, s);
            float *dst = row + (r * d->kw + s) * d->c_in;
            for (int64_t ci = 0; ci < d->c_in; ci++) dst[ci] = p ? p[ci] : 0.0f;
          }
      }
}

/* Bias, residual and activation for output pixel index pix, channel co. */
static float conv_epilogue(const lb_conv_desc *d, double s, const float *bias, const float *res,
                           int64_t pix, int64_t co) {
  float v = (float)s;
  if (d->has_bias) v += bias[co];
  if (d->has_res) v += res[pix * d->ldr + co];
  return lb_ref_act(d->act, d->act_min, d->act_max, v);
}

/* Direct convolution in double, k order (r, q, ci): output channel co reads cpg input channels
 * from c0 (all of them; for depthwise only its own), each with its own kh x kw weights. */
static void conv_direct(const lb_conv_desc *d, const float *x, const float *w, const float *bias,
                        const float *res, float *y, int depthwise) {
  int64_t c_out = depthwise ? d->c_in : d->c_out, cpg = depthwise ? 1 : d->c_in;
  for (int64_t n = 0; n < d->n; n++)
    for (int64_t oh = 0; oh < d->oh; oh++)
      for (int64_t ow = 0; ow < d->ow; ow++) {
        int64_t pix = (n * d->oh + oh) * d->ow + ow;
        for (int64_t co = 0; co < c_out; co++) {
          int64_t c0 = depthwise ? co : 0;
          double s = 0;
          for (int64_t r = 0; r < d->kh; r++)
            for (int64_t q = 0; q < d->kw; q++) {
              const float *p = pixel(d, x, n, oh, ow, r, q);
              if (!p) continue;
              for (int64_t ci = 0; ci < cpg; ci++)
                s += (double)p[c0 + ci] * w[((co * cpg + ci) * d->kh + r) * d->kw + q];
            }
          y[pix * d->ldy + co] = conv_epilogue(d, s, bias, res, pix, co);
        }
      }
}

void lb_ref_conv_f32(const lb_conv_desc *d, const float *x, const float *w, const float *bias,
                     const float *res, float *y) {
  conv_direct(d, x, w, bias, res, y, 0);
}

void lb_ref_dwconv_f32(const lb_conv_desc *d, const float *x, const float *w, const float *bias,
                       const float *res, float *y) {
  conv_direct(d, x, w, bias, res, y, 1);
}
