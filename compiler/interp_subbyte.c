/* Sub-byte integer semantics of the reference interpreter: packed i4/u4/i2/u2/b1 storage (ir.h:
 * element i at bit (i * bits) % 8 of byte i * bits / 8, low bits first, two's complement for
 * i4/i2, b1 bit 1 = +1 and bit 0 = -1), dense and conv kernels with packed sub-byte weights and
 * 8-bit activations, and binary kernels (sign activations and weights, dot = K - 2 *
 * popcount(xor)). Invariant: every kernel accumulates exactly in int32 and ends in
 * lb_requantize, so the backends' sub-byte kernels are checked bit-exactly against these. */
#include <string.h>

#include "quant.h"

int32_t lb_subbyte_get(lb_dtype t, const void *data, int64_t i) {
  const uint8_t *b = data;
  int bits = lb_dtype_bits(t);
  int64_t bit = i * bits;
  uint32_t raw = (uint32_t)(b[bit / 8] >> (bit % 8)) & ((1u << bits) - 1u);
  switch (t) {
  case LB_DTYPE_I4: return (int32_t)(raw ^ 8u) - 8;
  case LB_DTYPE_I2: return (int32_t)(raw ^ 2u) - 2;
  case LB_DTYPE_B1: return raw ? 1 : -1;
  default: return (int32_t)raw; /* u4, u2 */
  }
}

void lb_subbyte_pack(lb_dtype t, const int32_t *q, int64_t n, void *out) {
  uint8_t *b = out;
  int bits = lb_dtype_bits(t);
  uint32_t mask = (1u << bits) - 1u;
  memset(b, 0, lb_dtype_bytes(t, n));
  for (int64_t i = 0; i < n; i++) {
    uint32_t raw = t == LB_DTYPE_B1 ? (q[i] > 0) : (uint32_t)q[i] & mask;
    int64_t bit = i * bits;
    b[bit / 8] |= (uint8_t)(raw << (bit % 8));
  }
}

static int popcount8(uint8_t x) {
  int c = 0;
  for (; x; x &= (uint8_t)(x - 1)) c++;
  return c;
}

int32_t lb_binary_dot(const uint8_t *a, const uint8_t *b, int64_t k) {
  int64_t full = k / 8, mism = 0;
  for (int64_t i = 0; i < full; i++) mism += popcount8(a[i] ^ b[i]);
  if (k % 8) mism += popcount8((uint8_t)((a[full] ^ b[full]) & ((1u << (k % 8)) - 1u)));
  return (int32_t)(k - 2 * mism);
}

/* Bits of elements [off, off + k) of packed b1 data, realigned to bit 0 of dst. */
static void bits_at(const uint8_t *src, int64_t off, int64_t k, uint8_t *dst) {
  memset(dst, 0, (size_t)((k + 7) / 8));
  for (int64_t i = 0; i < k; i++)
    if ((src[(off + i) / 8] >> ((off + i) % 8)) & 1) dst[i / 8] |= (uint8_t)(1u << (i % 8));
}

static int32_t ld_act(lb_dtype t, const void *x, int64_t i) {
  return t == LB_DTYPE_U8 ? ((const uint8_t *)x)[i] : ((const int8_t *)x)[i];
}

static void st_act(lb_dtype t, void *y, int64_t i, int32_t v) {
  if (t == LB_DTYPE_U8) ((uint8_t *)y)[i] = (uint8_t)v;
  else if (t == LB_DTYPE_I8) ((int8_t *)y)[i] = (int8_t)v;
  else ((int32_t *)y)[i] = v;
}

/* ---- dense: y[M,N] = requantize(bias + x[M,K] . w[N,K]) ------------------------------------ */

int lb_subbyte_dense_ref(const lb_subbyte_dense *p, const void *x, const void *w, void *y) {
  if (lb_dtype_bits(p->wt) >= 8 || p->wt == LB_DTYPE_B1) return LB_ERR_INPUT;
  for (int64_t r = 0; r < p->M; r++)
    for (int64_t j = 0; j < p->N; j++) {
      int32_t acc = p->bias ? p->bias[j] : 0;
      for (int64_t k = 0; k < p->K; k++)
        acc += (ld_act(p->xt, x, r * p->K + k) - p->zx) * lb_subbyte_get(p->wt, w, j * p->K + k);
      st_act(p->yt, y, r * p->N + j, lb_requantize(acc, p->mul[j], p->zy, p->lo, p->hi));
    }
  return 0;
}

/* Packs row r of x (8-bit) as b1 signs: bit 1 where x >= thr. */
static void binarize_row(const lb_subbyte_dense *p, const void *x, int64_t r, uint8_t *bits) {
  memset(bits, 0, (size_t)((p->K + 7) / 8));
  for (int64_t k = 0; k < p->K; k++)
    if (ld_act(p->xt, x, r * p->K + k) >= p->thr) bits[k / 8] |= (uint8_t)(1u << (k % 8));
}

int lb_binary_dense_ref(const lb_subbyte_dense *p, const void *x, const void *w, void *y) {
  size_t row = (size_t)((p->K + 7) / 8) + 1;
  uint8_t *xb = lb_malloc(row), *wb = lb_malloc(row);
  if (!xb || !wb) return lb_free(xb), lb_free(wb), LB_ERR_NOMEM;
  for (int64_t r = 0; r < p->M; r++) {
    binarize_row(p, x, r, xb);
    for (int64_t j = 0; j < p->N; j++) {
      bits_at(w, j * p->K, p->K, wb);
      int32_t acc = (p->bias ? p->bias[j] : 0) + lb_binary_dot(xb, wb, p->K);
      st_act(p->yt, y, r * p->N + j, lb_requantize(acc, p->mul[j], p->zy, p->lo, p->hi));
    }
  }
  lb_free(xb), lb_free(wb);
  return 0;
}

/* ---- conv2d (NCHW, OIHW weights, groups 1) ------------------------------------------------ */

/* Signs of the in-bounds taps of output (n, oh, ow), packed; *kv = how many. Taps in the
 * padding are skipped: they contribute nothing to the dot (real value 0), so the binary dot
 * runs over the valid taps only, and the same positions are gathered from the weights. */
static void gather(const lb_subbyte_conv *c, const void *x, const uint8_t *w, int64_t n,
                   int64_t m, int64_t oh, int64_t ow, uint8_t *xb, uint8_t *wb, int64_t *kv) {
  int64_t k = 0, K = c->C * c->KH * c->KW;
  memset(xb, 0, (size_t)(K / 8 + 1));
  memset(wb, 0, (size_t)(K / 8 + 1));
  for (int64_t ic = 0; ic < c->C; ic++)
    for (int64_t kh = 0; kh < c->KH; kh++)
      for (int64_t kw = 0; kw < c->KW; kw++) {
        int64_t ih = oh * c->sh - c->ph + kh * c->dh, iw = ow * c->sw - c->pw + kw * c->dw;
        if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
        int64_t xi = ((n * c->C + ic) * c->H + ih) * c->W + iw;
        int64_t wi = ((m * c->C + ic) * c->KH + kh) * c->KW + kw;
        if (ld_act(c->xt, x, xi) >= c->thr) xb[k / 8] |= (uint8_t)(1u << (k % 8));
        if ((w[wi / 8] >> (wi % 8)) & 1) wb[k / 8] |= (uint8_t)(1u << (k % 8));
        k++;
      }
  *kv = k;
}

static int32_t conv_tap_acc(const lb_subbyte_conv *c, const void *x, const void *w, int64_t n,
                            int64_t m, int64_t oh, int64_t ow) {
  int32_t acc = 0;
  for (int64_t ic = 0; ic < c->C; ic++)
    for (int64_t kh = 0; kh < c->KH; kh++)
      for (int64_t kw = 0; kw < c->KW; kw++) {
        int64_t ih = oh * c->sh - c->ph + kh * c->dh, iw = ow * c->sw - c->pw + kw * c->dw;
        if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
        int64_t xi = ((n * c->C + ic) * c->H + ih) * c->W + iw;
        int64_t wi = ((m * c->C + ic) * c->KH + kh) * c->KW + kw;
        acc += (ld_act(c->xt, x, xi) - c->zx) * lb_subbyte_get(c->wt, w, wi);
      }
  return acc;
}

int lb_subbyte_conv_ref(const lb_subbyte_conv *c, const void *x, const void *w, void *y) {
  int bin = c->wt == LB_DTYPE_B1;
  if (lb_dtype_bits(c->wt) >= 8) return LB_ERR_INPUT;
  int64_t K = c->C * c->KH * c->KW;
  uint8_t *xb = lb_malloc((size_t)(K / 8 + 1)), *wb = lb_malloc((size_t)(K / 8 + 1));
  if (!xb || !wb) return lb_free(xb), lb_free(wb), LB_ERR_NOMEM;
  for (int64_t n = 0; n < c->N; n++)
    for (int64_t m = 0; m < c->M; m++)
      for (int64_t oh = 0; oh < c->OH; oh++)
        for (int64_t ow = 0; ow < c->OW; ow++) {
          int32_t acc = c->bias ? c->bias[m] : 0;
          if (bin) {
            int64_t kv;
            gather(c, x, w, n, m, oh, ow, xb, wb, &kv);
            acc += lb_binary_dot(xb, wb, kv);
          } else {
            acc += conv_tap_acc(c, x, w, n, m, oh, ow);
          }
          int64_t o = ((n * c->M + m) * c->OH + oh) * c->OW + ow;
          st_act(c->yt, y, o, lb_requantize(acc, c->mul[m], c->zy, c->lo, c->hi));
        }
  lb_free(xb), lb_free(wb);
  return 0;
}
