/* Sub-byte integer semantics of the reference interpreter: packed i4/u4/i2/u2/b1 storage (ir.h:
 * element i at bit (i * bits) % 8 of byte i * bits / 8, low bits first, two's complement for
 * i4/i2, b1 bit 1 = +1 and bit 0 = -1), dense and conv kernels with packed sub-byte weights and
 * 8-bit activations, and binary kernels (sign activations and weights, dot = K - 2 *
 * popcount(xor)). Invariant: every kernel accumulates exactly in int32 and ends in
 * lb_requantize, so the backends' sub-byte kernels are checked bit-exactly against these. */
#include <string.h>

#include "interp_impl.h"
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

/* ---- binary nodes of a realized graph (quant.h: lb_binary_node) --------------------------- */

int lb_binary_node(const lb_graph *g, uint32_t id) {
  const lb_node *n = &g->nodes[id];
  if ((n->op != LB_OP_CONV && n->op != LB_OP_GEMM) || n->n_in < 2 || n->in[1] == LB_NONE) return 0;
  const lb_value *w = &g->values[n->in[1]];
  return w->dtype == LB_DTYPE_B1 && w->data && w->q.n > 0 && w->q.zero_point;
}

/* Everything one output element of a binary node needs besides its dot product. */
typedef struct bnode {
  const lb_tensor *x, *w, *res;
  int32_t thr, zy, zr, lo, hi;
  float sy, mr;
  const lb_quant *wq;
  const int32_t *bias;
  int64_t nbias;
} bnode;

static int32_t bsign(const bnode *b, int64_t xi, int64_t wi) {
  int sx = ld_act(b->x->dtype, b->x->data, xi) >= b->thr;
  int sw = (((const uint8_t *)b->w->data)[wi / 8] >> (wi % 8)) & 1;
  return sx == sw ? 1 : -1;
}

/* Bias, then requantize (or the raw accumulator for an i32 output) into element o, channel c. */
static void bfinish(const bnode *b, lb_tensor *out, int64_t o, int64_t c, int32_t dot) {
  int32_t acc = dot + (b->bias ? b->bias[b->nbias == 1 ? 0 : c] : 0);
  if (out->dtype == LB_DTYPE_I32) {
    ((int32_t *)out->data)[o] = acc;
    return;
  }
  float m = lb_qmul(1.0f, b->wq->scale[b->wq->n > 1 ? c : 0], b->sy);
  int32_t q = b->res ? lb_requantize2(acc, m, ld_act(b->res->dtype, b->res->data, o) - b->zr,
                                      b->mr, b->zy, b->lo, b->hi)
                     : lb_requantize(acc, m, b->zy, b->lo, b->hi);
  st_act(out->dtype, out->data, o, q);
}

/* dot over the in-bounds taps of output (n, m, oh, ow); NCHW x, OIHW w (1-D: H = KH = 1), the
 * cg input channels of m's group starting at c0. */
static int32_t bconv_dot(const bnode *b, const int64_t *d, int64_t n, int64_t m, int64_t oh,
                         int64_t ow) {
  enum { C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, CG, MG };
  int32_t acc = 0;
  int64_t c0 = m / d[MG] * d[CG];
  for (int64_t ic = 0; ic < d[CG]; ic++)
    for (int64_t kh = 0; kh < d[KH]; kh++) {
      int64_t ih = oh * d[SH] - d[PH] + kh * d[DH];
      if (ih < 0 || ih >= d[H]) continue;
      for (int64_t kw = 0; kw < d[KW]; kw++) {
        int64_t iw = ow * d[SW] - d[PW] + kw * d[DW];
        if (iw < 0 || iw >= d[W]) continue;
        acc += bsign(b, ((n * d[C] + c0 + ic) * d[H] + ih) * d[W] + iw,
                     ((m * d[CG] + ic) * d[KH] + kh) * d[KW] + kw);
      }
    }
  return acc;
}

static int bconv(const lb_graph *g, uint32_t id, const lb_attrs *a, const bnode *b, lb_tensor *out,
                 lb_diag *diag) {
  const lb_tensor *x = b->x, *w = b->w;
  int two = x->rank == 4;
  int64_t G = a->group > 1 ? a->group : 1, M = out->dims[1];
  if ((x->rank != 3 && x->rank != 4) || x->dims[1] % G || M % G)
    return lb_node_err(g, id, diag, "binary conv supports 1-D and 2-D convs only");
  int64_t d[13] = {x->dims[1], two ? x->dims[2] : 1, x->dims[x->rank - 1], two ? w->dims[2] : 1,
                   w->dims[w->rank - 1], two ? a->strides[0] : 1, a->strides[two], two ? a->pads[0] : 0,
                   a->pads[two], two ? a->dilations[0] : 1, a->dilations[two], x->dims[1] / G, M / G};
  int64_t N = x->dims[0], OH = two ? out->dims[2] : 1, OW = out->dims[out->rank - 1];
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++)
          bfinish(b, out, ((n * M + m) * OH + oh) * OW + ow, m, bconv_dot(b, d, n, m, oh, ow));
  return 0;
}

/* y[r, j] over x [M, K] (or [K, M] with trans_a) and w [N, K]. */
static int bgemm(const lb_graph *g, uint32_t id, const lb_attrs *a, const bnode *b, lb_tensor *out,
                 lb_diag *diag) {
  if (!a->trans_b || a->alpha != 1.0f || (b->bias && a->beta != 1.0f))
    return lb_node_err(g, id, diag, "binary gemm needs trans_b = 1 and alpha = beta = 1");
  int64_t M = out->dims[0], N = out->dims[1], K = b->w->dims[1];
  int64_t sr = a->trans_a ? 1 : K, sk = a->trans_a ? M : 1;
  for (int64_t r = 0; r < M; r++)
    for (int64_t j = 0; j < N; j++) {
      int32_t dot = 0;
      for (int64_t k = 0; k < K; k++) dot += bsign(b, r * sr + k * sk, j * K + k);
      bfinish(b, out, r * N + j, j, dot);
    }
  return 0;
}

int lb_binary_eval(const lb_graph *g, uint32_t id, const lb_attrs *a, const lb_tensor *in,
                   lb_tensor *out, lb_diag *diag) {
  const lb_node *n = &g->nodes[id];
  const lb_value *yv = &g->values[n->out[0]], *wv = &g->values[n->in[1]];
  int has_b = n->n_in > 2 && n->in[2] != LB_NONE, has_r = n->n_in > 3 && n->in[3] != LB_NONE;
  if (has_b && in[2].dtype != LB_DTYPE_I32)
    return lb_node_err(g, id, diag, "input[2]: a binary layer needs an i32 bias");
  bnode b = {&in[0], &in[1], has_r ? &in[3] : NULL, wv->q.zero_point[0], 0, 0, 0, 0,
             0, 0, &wv->q, has_b ? in[2].data : NULL, has_b ? lb_tensor_numel(&in[2]) : 0};
  if (yv->q.n) {
    b.sy = yv->q.scale[0], b.zy = yv->q.zero_point ? yv->q.zero_point[0] : 0;
    if (out->dtype != LB_DTYPE_I32)
      lb_qact_bounds(a->act, a->act_min, a->act_max, out->dtype, b.sy, b.zy, &b.lo, &b.hi);
  }
  if (has_r) {
    const lb_quant *rq = &g->values[n->in[3]].q;
    b.mr = lb_qmul(rq->scale[0], 1.0f, b.sy), b.zr = rq->zero_point ? rq->zero_point[0] : 0;
  }
  return n->op == LB_OP_CONV ? bconv(g, id, a, &b, out, diag) : bgemm(g, id, a, &b, out, diag);
}

/* ---- packed sub-byte weights of integer nodes ---------------------------------------------- */

int lb_subbyte_weight(const lb_value *v) {
  lb_dtype t = v->dtype;
  return v->data && (t == LB_DTYPE_I4 || t == LB_DTYPE_U4 || t == LB_DTYPE_I2 || t == LB_DTYPE_U2);
}

int32_t lb_qweight_at(const lb_value *w, int64_t i) {
  switch (w->dtype) {
  case LB_DTYPE_I8: return ((const int8_t *)w->data)[i];
  case LB_DTYPE_U8: return ((const uint8_t *)w->data)[i];
  case LB_DTYPE_I32: return ((const int32_t *)w->data)[i];
  default: return lb_subbyte_get(w->dtype, w->data, i); /* i4 u4 i2 u2 (b1: +-1) */
  }
}
