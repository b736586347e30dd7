/* Reference interpreter kernels for quantized integer nodes: conv, gemm, matmul, add, sub, mul,
 * div by a constant, relu, clip, avg_pool, global_avg_pool, reduce_mean and table activations
 * (lb_qlut) whose output is an i8/u8 value with quantization parameters
 * (realize builds them). Accumulation is exact int32; every output element goes through
 * lb_requantize/lb_requantize2 (quant.c), so these kernels are the bit-exact oracle for backends.
 * max_pool, concat and the layout ops run unchanged on i8/u8: their inputs and output share
 * one scale and zero point (realize guarantees it). */
#include <string.h>

#include "interp_impl.h"
#include "quant.h"

/* Per-tensor (or channel k of per-channel) parameters of value id. */
static float q_scale(const lb_graph *g, uint32_t id, int64_t k) {
  const lb_quant *q = &g->values[id].q;
  return q->n > 1 ? q->scale[k] : q->scale[0];
}

static int32_t q_zp(const lb_graph *g, uint32_t id, int64_t k) {
  const lb_quant *q = &g->values[id].q;
  if (!q->zero_point) return 0;
  return q->n > 1 ? q->zero_point[k] : q->zero_point[0];
}

static int32_t ld8(const lb_tensor *t, int64_t i) {
  if (t->dtype == LB_DTYPE_I8) return ((const int8_t *)t->data)[i];
  if (t->dtype == LB_DTYPE_U8) return ((const uint8_t *)t->data)[i];
  if (t->dtype != LB_DTYPE_I32) return lb_subbyte_get(t->dtype, t->data, i); /* packed weights */
  return ((const int32_t *)t->data)[i];
}

static void st8(lb_tensor *t, int64_t i, int32_t v) {
  if (t->dtype == LB_DTYPE_I32)
    ((int32_t *)t->data)[i] = v;
  else if (t->dtype == LB_DTYPE_I8)
    ((int8_t *)t->data)[i] = (int8_t)v;
  else
    ((uint8_t *)t->data)[i] = (uint8_t)v;
}

static int quantized(const lb_graph *g, uint32_t id) {
  if (id == LB_NONE) return 0;
  const lb_value *v = &g->values[id];
  return v->q.n > 0 && v->q.scale && (v->dtype == LB_DTYPE_I8 || v->dtype == LB_DTYPE_U8 ||
                                      v->dtype == LB_DTYPE_I32 || lb_subbyte_weight(v));
}

int lb_int_node(const lb_graph *g, uint32_t id) {
  const lb_node *n = &g->nodes[id];
  switch (n->op) {
  case LB_OP_CONV: case LB_OP_GEMM: case LB_OP_MATMUL: case LB_OP_ADD: case LB_OP_SUB:
  case LB_OP_MUL: case LB_OP_RELU: case LB_OP_CLIP: case LB_OP_GLOBAL_AVG_POOL:
  case LB_OP_AVG_POOL: case LB_OP_LEAKY_RELU: case LB_OP_SIGMOID: case LB_OP_TANH:
  case LB_OP_HARD_SIGMOID: case LB_OP_HARD_SWISH: case LB_OP_DIV: case LB_OP_REDUCE_MEAN: break;
  default: return 0;
  }
  if (!quantized(g, n->out[0])) return 0;
  if (g->values[n->out[0]].dtype == LB_DTYPE_I32 &&
      !(n->op == LB_OP_CONV || n->op == LB_OP_GEMM || n->op == LB_OP_MATMUL))
    return 0;
  return quantized(g, n->in[0]);
}

/* Output range after the fused activation of a MAC or elementwise node. */
static void out_bounds(const lb_kctx *c, int64_t ch, int32_t *lo, int32_t *hi) {
  uint32_t o = c->n->out[0];
  lb_qact_bounds(c->a->act, c->a->act_min, c->a->act_max, c->g->values[o].dtype,
                 q_scale(c->g, o, ch), q_zp(c->g, o, ch), lo, hi);
}

/* ---- conv --------------------------------------------------------------------------------- */

typedef struct cgeo {
  int64_t N, C, H, W, M, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw, group;
} cgeo;

static void conv_geo(const lb_kctx *c, const lb_tensor *x, const lb_tensor *w,
                     const lb_tensor *y, cgeo *g) {
  int two = x->rank == 4;
  const lb_attrs *a = c->a;
  *g = (cgeo){x->dims[0], x->dims[1], two ? x->dims[2] : 1, x->dims[x->rank - 1], w->dims[0],
              two ? y->dims[2] : 1, y->dims[y->rank - 1], two ? w->dims[2] : 1,
              w->dims[w->rank - 1], two ? a->strides[0] : 1, a->strides[two ? 1 : 0],
              two ? a->dilations[0] : 1, a->dilations[two ? 1 : 0], two ? a->pads[0] : 0,
              a->pads[two ? 1 : 0], a->group};
}

/* Integer dot product of one output position: sum over (ic, kh, kw) of (x - zx) * (w - zw).
 * Taps in the padding read the real value 0, i.e. contribute nothing. */
static int32_t conv_acc(const cgeo *g, const lb_tensor *x, const lb_tensor *w, int64_t n,
                        int64_t m, int64_t oh, int64_t ow, int32_t zx, int32_t zw) {
  int64_t cg = g->C / g->group, ic0 = (m / (g->M / g->group)) * cg;
  int32_t acc = 0;
  for (int64_t ic = 0; ic < cg; ic++)
    for (int64_t kh = 0; kh < g->KH; kh++) {
      int64_t ih = oh * g->sh - g->ph + kh * g->dh;
      if (ih < 0 || ih >= g->H) continue;
      int64_t xrow = ((n * g->C + ic0 + ic) * g->H + ih) * g->W;
      int64_t wrow = ((m * cg + ic) * g->KH + kh) * g->KW;
      for (int64_t kw = 0; kw < g->KW; kw++) {
        int64_t iw = ow * g->sw - g->pw + kw * g->dw;
        if (iw < 0 || iw >= g->W) continue;
        acc += (ld8(x, xrow + iw) - zx) * (ld8(w, wrow + kw) - zw);
      }
    }
  return acc;
}

static int k_conv(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_graph *G = c->g;
  const uint32_t *id = c->n->in;
  if (in[0].rank != 3 && in[0].rank != 4)
    return lb_node_err(G, c->id, c->diag, "integer conv supports 1-D and 2-D only");
  cgeo g;
  conv_geo(c, &in[0], &in[1], out, &g);
  int bias = lb_kin(c, in, 2), res = lb_kin(c, in, 3), acc32 = out->dtype == LB_DTYPE_I32;
  int rq = c->a->requant;
  float sx = q_scale(G, id[0], 0), sy = q_scale(G, c->n->out[0], 0);
  int32_t zx = q_zp(G, id[0], 0), zy = q_zp(G, c->n->out[0], 0), lo, hi;
  out_bounds(c, 0, &lo, &hi);
  for (int64_t m = 0; m < g.M; m++) {
    float mul = lb_qmul(sx, q_scale(G, id[1], m), sy);
    float mr = res ? lb_qmul(q_scale(G, id[3], 0), 1.0f, sy) : 0.0f;
    int32_t zw = q_zp(G, id[1], m), zr = res ? q_zp(G, id[3], 0) : 0;
    int32_t b = bias ? ((const int32_t *)in[2].data)[m] : 0;
    for (int64_t n = 0; n < g.N; n++)
      for (int64_t oh = 0; oh < g.OH; oh++)
        for (int64_t ow = 0; ow < g.OW; ow++) {
          int64_t o = ((n * g.M + m) * g.OH + oh) * g.OW + ow;
          int32_t acc = b + conv_acc(&g, &in[0], &in[1], n, m, oh, ow, zx, zw);
          int32_t q = acc32 ? acc
                      : res ? lb_requantize2_by(rq, acc, mul, ld8(&in[3], o) - zr, mr, zy, lo, hi)
                            : lb_requantize_by(rq, acc, mul, zy, lo, hi);
          st8(out, o, q);
        }
  }
  return 0;
}

/* ---- gemm and matmul ---------------------------------------------------------------------- */

/* y[r, j] for rows r < M of A ([M,K], row stride sa_r, column stride sa_k) against B
 * (element (k, j) at k*sb_k + j*sb_j), per-column weight parameters when per-channel. */
typedef struct mm {
  const lb_tensor *A, *B, *bias, *res;
  int64_t M, K, N, sa_r, sa_k, sb_k, sb_j, a_off;
  uint32_t ida, idb, idr;
} mm;

static void mm_run(const lb_kctx *c, const mm *p, lb_tensor *out, int64_t out_off) {
  const lb_graph *G = c->g;
  float sa = q_scale(G, p->ida, 0), sy = q_scale(G, c->n->out[0], 0);
  int32_t za = q_zp(G, p->ida, 0), zy = q_zp(G, c->n->out[0], 0), lo, hi;
  out_bounds(c, 0, &lo, &hi);
  for (int64_t j = 0; j < p->N; j++) {
    float mul = lb_qmul(sa, q_scale(G, p->idb, j), sy);
    int32_t zb = q_zp(G, p->idb, j);
    int32_t b = p->bias ? ld8(p->bias, lb_tensor_numel(p->bias) == 1 ? 0 : j) : 0;
    float mr = p->res ? lb_qmul(q_scale(G, p->idr, 0), 1.0f, sy) : 0.0f;
    int32_t zr = p->res ? q_zp(G, p->idr, 0) : 0;
    for (int64_t r = 0; r < p->M; r++) {
      int32_t acc = b;
      for (int64_t k = 0; k < p->K; k++)
        acc += (ld8(p->A, p->a_off + r * p->sa_r + k * p->sa_k) - za) *
               (ld8(p->B, k * p->sb_k + j * p->sb_j) - zb);
      int64_t o = out_off + r * p->N + j;
      int32_t q = out->dtype == LB_DTYPE_I32 ? acc
                  : p->res ? lb_requantize2_by(c->a->requant, acc, mul, ld8(p->res, o) - zr, mr,
                                               zy, lo, hi)
                           : lb_requantize_by(c->a->requant, acc, mul, zy, lo, hi);
      st8(out, o, q);
    }
  }
}

static int k_gemm(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_attrs *a = c->a;
  if (a->alpha != 1.0f || (lb_kin(c, in, 2) && a->beta != 1.0f))
    return lb_node_err(c->g, c->id, c->diag, "integer gemm needs alpha = beta = 1");
  int64_t ar = in[0].dims[1], br = in[1].dims[1];
  mm p = {&in[0], &in[1], lb_kin(c, in, 2) ? &in[2] : NULL, lb_kin(c, in, 3) ? &in[3] : NULL,
          out->dims[0], a->trans_a ? in[0].dims[0] : in[0].dims[1], out->dims[1],
          a->trans_a ? 1 : ar, a->trans_a ? ar : 1, a->trans_b ? 1 : br, a->trans_b ? br : 1,
          0, c->n->in[0], c->n->in[1], c->n->n_in > 3 ? c->n->in[3] : LB_NONE};
  if (p.bias && lb_tensor_numel(p.bias) != p.N && lb_tensor_numel(p.bias) != 1)
    return lb_node_err(c->g, c->id, c->diag, "integer gemm needs a bias of %lld or 1 values",
                       (long long)p.N);
  mm_run(c, &p, out, 0);
  return 0;
}

/* A [..., M, K] x B [K, N] (B of rank 2: a dense layer, or per-tensor activations). */
static int k_matmul(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  if (in[1].rank != 2 || in[0].rank < 2)
    return lb_node_err(c->g, c->id, c->diag, "integer matmul needs a rank-2 second operand");
  int64_t K = in[1].dims[0], N = in[1].dims[1], M = in[0].dims[in[0].rank - 2];
  int64_t batch = M * K != 0 ? lb_tensor_numel(&in[0]) / (M * K) : 0;
  for (int64_t b = 0; b < batch; b++) {
    mm p = {&in[0], &in[1], NULL, NULL, M, K, N, K, 1, N, 1, b * M * K,
            c->n->in[0], c->n->in[1], LB_NONE};
    mm_run(c, &p, out, b * M * N);
  }
  return 0;
}

/* ---- elementwise ------------------------------------------------------------------------ */

/* Offset into t (right-aligned broadcasting) of output element o of out. */
static int64_t bcast_off(const lb_tensor *t, const lb_tensor *out, int64_t o) {
  int64_t off = 0, st = 1;
  for (int i = out->rank - 1; i >= 0; i--) {
    int64_t idx = o % out->dims[i];
    o /= out->dims[i];
    int j = i - (out->rank - t->rank);
    if (j < 0) continue;
    if (t->dims[j] != 1) off += idx * st;
    st *= t->dims[j];
  }
  return off;
}

static int k_binary(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_graph *G = c->g;
  uint32_t ia = c->n->in[0], ib = c->n->in[1], o = c->n->out[0];
  if (!quantized(G, ib))
    return lb_node_err(G, c->id, c->diag, "input[1] of an integer node is not quantized");
  float sa = q_scale(G, ia, 0), sb = q_scale(G, ib, 0), sy = q_scale(G, o, 0);
  int32_t za = q_zp(G, ia, 0), zb = q_zp(G, ib, 0), zy = q_zp(G, o, 0), lo, hi;
  out_bounds(c, 0, &lo, &hi);
  float ma = lb_qmul(sa, 1.0f, sy), mb = lb_qmul(sb, 1.0f, sy), mab = lb_qmul(sa, sb, sy);
  if (c->n->op == LB_OP_SUB) mb = -mb;
  int same = lb_tensor_numel(&in[0]) == lb_tensor_numel(out) &&
             lb_tensor_numel(&in[1]) == lb_tensor_numel(out);
  int64_t total = lb_tensor_numel(out);
  for (int64_t i = 0; i < total; i++) {
    int32_t a = ld8(&in[0], same ? i : bcast_off(&in[0], out, i)) - za;
    int32_t b = ld8(&in[1], same ? i : bcast_off(&in[1], out, i)) - zb;
    st8(out, i, c->n->op == LB_OP_MUL ? lb_requantize_by(c->a->requant, a * b, mab, zy, lo, hi)
                                      : lb_requantize2_by(c->a->requant, a, ma, b, mb, zy, lo, hi));
  }
  return 0;
}

float lb_qmul_div(float s_x, float s_b, int32_t b, float s_y) {
  return (float)((double)s_x / ((double)s_y * (double)s_b * (double)b));
}

/* Division by one quantized constant (annotate: positive): a requantize of x - zx by
 * lb_qmul_div, with the fused activation's bounds. */
static int k_div(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_graph *G = c->g;
  uint32_t ix = c->n->in[0], ib = c->n->in[1], o = c->n->out[0];
  int32_t b = lb_tensor_numel(&in[1]) == 1 ? ld8(&in[1], 0) - q_zp(G, ib, 0) : 0;
  if (b <= 0 || !G->values[ib].data)
    return lb_node_err(G, c->id, c->diag, "integer div needs one positive constant divisor");
  float m = lb_qmul_div(q_scale(G, ix, 0), q_scale(G, ib, 0), b, q_scale(G, o, 0));
  int32_t zx = q_zp(G, ix, 0), zy = q_zp(G, o, 0), lo, hi;
  out_bounds(c, 0, &lo, &hi);
  int64_t total = lb_tensor_numel(out);
  for (int64_t i = 0; i < total; i++)
    st8(out, i, lb_requantize_by(c->a->requant, ld8(&in[0], i) - zx, m, zy, lo, hi));
  return 0;
}

/* relu and clip between two quantized tensors: a requantize with the op's bounds. */
static int k_unary(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_graph *G = c->g;
  uint32_t ix = c->n->in[0], o = c->n->out[0];
  float sy = q_scale(G, o, 0), m = lb_qmul(q_scale(G, ix, 0), 1.0f, sy);
  int32_t zx = q_zp(G, ix, 0), zy = q_zp(G, o, 0), lo, hi;
  int relu = c->n->op == LB_OP_RELU;
  lb_qact_bounds(relu ? LB_ACT_RELU : LB_ACT_CLIP, c->a->clip_min, c->a->clip_max, out->dtype,
                 sy, zy, &lo, &hi);
  int64_t total = lb_tensor_numel(out);
  for (int64_t i = 0; i < total; i++)
    st8(out, i, lb_requantize_by(c->a->requant, ld8(&in[0], i) - zx, m, zy, lo, hi));
  return 0;
}

static int k_global_avg_pool(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_graph *G = c->g;
  uint32_t ix = c->n->in[0], o = c->n->out[0];
  int64_t planes = in[0].dims[0] * in[0].dims[1];
  int64_t sz = planes ? lb_tensor_numel(&in[0]) / planes : 0;
  if (sz > (1 << 23))
    return lb_node_err(G, c->id, c->diag, "integer global_avg_pool over more than 2^23 elements");
  float m = lb_qmul_pool(q_scale(G, ix, 0), q_scale(G, o, 0), sz);
  int32_t zx = q_zp(G, ix, 0), zy = q_zp(G, o, 0), lo, hi;
  lb_qrange(out->dtype, &lo, &hi);
  for (int64_t p = 0; p < planes; p++) {
    int32_t acc = 0;
    for (int64_t i = 0; i < sz; i++) acc += ld8(&in[0], p * sz + i) - zx;
    st8(out, p, lb_requantize_by(c->a->requant, acc, m, zy, lo, hi));
  }
  return 0;
}

/* reduce_mean over attr axes (normalized by shape inference): per output element the exact
 * int32 sum of x - zx over the reduced positions, requantized by lb_qmul_pool with their count
 * (at most 2^23, so the sum cannot overflow). */
static int k_reduce_mean(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_graph *G = c->g;
  const lb_tensor *x = &in[0];
  int r = x->rank;
  unsigned char red[LB_MAX_RANK] = {0};
  for (int i = 0; i < c->a->n_axes; i++) red[c->a->axes[i]] = 1;
  int64_t os[LB_MAX_RANK], st = 1, cnt = 1, idx[LB_MAX_RANK] = {0}, off = 0;
  for (int i = r - 1; i >= 0; i--) {
    os[i] = red[i] ? 0 : st;
    if (red[i]) cnt *= x->dims[i];
    else st *= x->dims[i];
  }
  if (cnt > (1 << 23))
    return lb_node_err(G, c->id, c->diag, "integer reduce_mean over more than 2^23 elements");
  int64_t no = lb_tensor_numel(out), ni = lb_tensor_numel(x);
  int32_t *acc = lb_calloc((size_t)(no ? no : 1), sizeof *acc), zx = q_zp(G, c->n->in[0], 0);
  if (!acc) return LB_ERR_NOMEM;
  for (int64_t i = 0; i < ni; i++) {
    acc[off] += ld8(x, i) - zx;
    for (int d = r - 1; d >= 0; d--) {
      off += os[d];
      if (++idx[d] < x->dims[d]) break;
      off -= os[d] * x->dims[d];
      idx[d] = 0;
    }
  }
  uint32_t o = c->n->out[0];
  float m = lb_qmul_pool(q_scale(G, c->n->in[0], 0), q_scale(G, o, 0), cnt);
  int32_t lo, hi;
  lb_qrange(out->dtype, &lo, &hi);
  for (int64_t i = 0; i < no; i++)
    st8(out, i, lb_requantize_by(c->a->requant, acc[i], m, q_zp(G, o, 0), lo, hi));
  lb_free(acc);
  return 0;
}

/* Table activations (lb_qlut): one lookup per element. */
static int k_lut(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_graph *G = c->g;
  uint32_t ix = c->n->in[0], o = c->n->out[0];
  int32_t table[256], qmin, qmax;
  lb_qrange(in[0].dtype, &qmin, &qmax);
  if (lb_qlut(c->n->op, c->a, in[0].dtype, q_scale(G, ix, 0), q_zp(G, ix, 0), out->dtype,
              q_scale(G, o, 0), q_zp(G, o, 0), table) != 0)
    return lb_node_err(G, c->id, c->diag, "no integer table for this op");
  int64_t total = lb_tensor_numel(out);
  for (int64_t i = 0; i < total; i++) st8(out, i, table[ld8(&in[0], i) - qmin]);
  return 0;
}

/* Taps a in [0, k) with lo <= s + a*d < hi. */
static int64_t taps_in(int64_t s, int64_t k, int64_t d, int64_t lo, int64_t hi) {
  int64_t n = 0;
  for (int64_t a = 0; a < k; a++) n += s + a * d >= lo && s + a * d < hi;
  return n;
}

/* Average pooling (1-D or 2-D): the exact int32 sum of (x - zx) over the taps inside the input,
 * requantized with m = s_x / (s_y * count). count follows ONNX: with count_include_pad, the taps
 * inside the explicitly padded input (never the extra positions ceil_mode adds), else the taps
 * inside the input. */
static int k_avg_pool(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_graph *G = c->g;
  const lb_attrs *a = c->a;
  if (in[0].rank != 3 && in[0].rank != 4)
    return lb_node_err(G, c->id, c->diag, "integer avg_pool supports 1-D and 2-D only");
  int two = in[0].rank == 4, r = in[0].rank;
  int64_t H = two ? in[0].dims[2] : 1, W = in[0].dims[r - 1], OH = two ? out->dims[2] : 1;
  int64_t OW = out->dims[r - 1], KH = two ? a->kernel[0] : 1, KW = a->kernel[two ? 1 : 0];
  int64_t sh = two ? a->strides[0] : 1, sw = a->strides[two ? 1 : 0];
  int64_t dh = two ? a->dilations[0] : 1, dw = a->dilations[two ? 1 : 0];
  int64_t ns = two ? 2 : 1, ph = two ? a->pads[0] : 0, pw = a->pads[two ? 1 : 0];
  int64_t peh = two ? a->pads[ns] : 0, pew = a->pads[ns + (two ? 1 : 0)];
  int64_t planes = in[0].dims[0] * in[0].dims[1];
  uint32_t ix = c->n->in[0], o = c->n->out[0];
  float sx = q_scale(G, ix, 0), sy = q_scale(G, o, 0);
  int32_t zx = q_zp(G, ix, 0), zy = q_zp(G, o, 0), lo, hi;
  lb_qrange(out->dtype, &lo, &hi);
  for (int64_t p = 0, i = 0; p < planes; p++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++, i++) {
        int64_t y0 = oh * sh - ph, x0 = ow * sw - pw;
        int32_t acc = 0;
        for (int64_t kh = 0; kh < KH; kh++)
          for (int64_t kw = 0; kw < KW; kw++) {
            int64_t y = y0 + kh * dh, x = x0 + kw * dw;
            if (y >= 0 && y < H && x >= 0 && x < W) acc += ld8(&in[0], (p * H + y) * W + x) - zx;
          }
        int64_t cnt = a->count_include_pad
                          ? taps_in(y0, KH, dh, -ph, H + peh) * taps_in(x0, KW, dw, -pw, W + pew)
                          : taps_in(y0, KH, dh, 0, H) * taps_in(x0, KW, dw, 0, W);
        st8(out, i, lb_requantize_by(a->requant, acc, lb_qmul_pool(sx, sy, cnt), zy, lo, hi));
      }
  return 0;
}

int lb_int_eval(const lb_graph *g, uint32_t id, const lb_attrs *a, const lb_tensor *in,
                lb_tensor *out, lb_diag *diag) {
  const lb_node *n = &g->nodes[id];
  lb_kctx c = {g, id, n, a, diag};
  if (lb_binary_node(g, id)) return lb_binary_eval(g, id, a, in, out, diag);
  for (uint32_t k = 0; k < n->n_in && k < 4; k++)
    if (n->in[k] != LB_NONE && !quantized(g, n->in[k]))
      return lb_node_err(g, id, diag, "input[%u] of an integer node has no quantization", k);
  switch (n->op) {
  case LB_OP_CONV: return k_conv(&c, in, out);
  case LB_OP_GEMM: return k_gemm(&c, in, out);
  case LB_OP_MATMUL: return k_matmul(&c, in, out);
  case LB_OP_ADD: case LB_OP_SUB: case LB_OP_MUL: return k_binary(&c, in, out);
  case LB_OP_RELU: case LB_OP_CLIP: return k_unary(&c, in, out);
  case LB_OP_DIV: return k_div(&c, in, out);
  case LB_OP_REDUCE_MEAN: return k_reduce_mean(&c, in, out);
  case LB_OP_AVG_POOL: return k_avg_pool(&c, in, out);
  case LB_OP_LEAKY_RELU: case LB_OP_SIGMOID: case LB_OP_TANH: case LB_OP_HARD_SIGMOID:
  case LB_OP_HARD_SWISH: return k_lut(&c, in, out);
  default: return k_global_avg_pool(&c, in, out);
  }
}
