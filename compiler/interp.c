/* The reference interpreter: elementwise, data-movement and quantization kernels, the kernel
 * table, lb_eval_node and lb_interp_run. Plain loops over contiguous row-major tensors; every
 * kernel runs only after lb_shape_check accepted its tensors, so loops may trust the shapes.
 * lb_interp_run owns every intermediate and frees it right after its last reader. */
#include <math.h>
#include <string.h>

#include "interp_impl.h"
#include "quant.h"

/* ---- element access for the generic (non-f32) paths ------------------------------------- */

static int64_t ldi(const void *p, lb_dtype t, int64_t i) {
  switch (t) {
  case LB_DTYPE_I64: return ((const int64_t *)p)[i];
  case LB_DTYPE_I32: return ((const int32_t *)p)[i];
  case LB_DTYPE_I16: return ((const int16_t *)p)[i];
  case LB_DTYPE_I8: return ((const int8_t *)p)[i];
  case LB_DTYPE_U8: return ((const uint8_t *)p)[i];
  case LB_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
  default: LB_ASSERT(!"ldi: not an integer dtype");
  }
}

/* Stores v wrapped to the dtype's width (two's complement, like numpy). */
static void sti(void *p, lb_dtype t, int64_t i, int64_t v) {
  switch (t) {
  case LB_DTYPE_I64: ((int64_t *)p)[i] = v; break;
  case LB_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v; break;
  case LB_DTYPE_I16: ((int16_t *)p)[i] = (int16_t)(uint16_t)(uint64_t)v; break;
  case LB_DTYPE_I8: ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v; break;
  case LB_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v; break;
  case LB_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; break;
  default: LB_ASSERT(!"sti: not an integer dtype");
  }
}

static double ldf(const void *p, lb_dtype t, int64_t i) {
  if (t == LB_DTYPE_F32) return ((const float *)p)[i];
  if (t == LB_DTYPE_F64) return ((const double *)p)[i];
  return (double)ldi(p, t, i);
}

/* Double to int64 without undefined behaviour: NaN -> 0, saturating at the int64 range. */
static int64_t d2i(double d) {
  if (d != d) return 0;
  if (d >= 9223372036854775807.0) return INT64_MAX;
  if (d <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)d;
}

static void stf(void *p, lb_dtype t, int64_t i, double v) {
  if (t == LB_DTYPE_F32)
    ((float *)p)[i] = (float)v;
  else if (t == LB_DTYPE_F64)
    ((double *)p)[i] = v;
  else
    sti(p, t, i, d2i(v));
}

static size_t esize(lb_dtype t) { return (size_t)lb_dtype_bits(t) / 8; }

/* ---- fused epilogue --------------------------------------------------------------------- */

void lb_apply_act(const lb_attrs *a, float *y, int64_t n) {
  if (a->act == LB_ACT_RELU) {
    for (int64_t i = 0; i < n; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i];
  } else if (a->act == LB_ACT_CLIP) {
    float lo = a->act_min, hi = a->act_max;
    for (int64_t i = 0; i < n; i++) {
      float v = y[i] < lo ? lo : y[i];
      y[i] = v > hi ? hi : v;
    }
  }
}

/* ---- elementwise binary with numpy broadcasting ----------------------------------------- */

/* Strides of t seen through an output of rank r (right-aligned; broadcast dims get 0). */
static void bcast_strides(const lb_tensor *t, int r, int64_t *s) {
  int64_t st = 1;
  for (int i = r - 1; i >= 0; i--) {
    int j = i - (r - t->rank);
    if (j < 0) {
      s[i] = 0;
      continue;
    }
    s[i] = t->dims[j] == 1 ? 0 : st;
    st *= t->dims[j];
  }
}

static int64_t int_binop(lb_op op, int64_t p, int64_t q) {
  switch (op) {
  case LB_OP_ADD: return (int64_t)((uint64_t)p + (uint64_t)q);
  case LB_OP_SUB: return (int64_t)((uint64_t)p - (uint64_t)q);
  case LB_OP_MUL: return (int64_t)((uint64_t)p * (uint64_t)q);
  default: /* division truncates toward zero; x/0 is defined as 0 */
    if (q == 0) return 0;
    if (p == INT64_MIN && q == -1) return INT64_MIN;
    return p / q;
  }
}

static double float_binop(lb_op op, double p, double q) {
  switch (op) {
  case LB_OP_ADD: return p + q;
  case LB_OP_SUB: return p - q;
  case LB_OP_MUL: return p * q;
  default: return p / q;
  }
}

/* One innermost row: o[j] = x[j*sx] op y[j*sy]. */
static void bin_row(lb_op op, lb_dtype t, void *o, int64_t oo, const void *x, int64_t ox,
                    int64_t sx, const void *y, int64_t oy, int64_t sy, int64_t n) {
  if (t == LB_DTYPE_F32) {
    float *po = (float *)o + oo;
    const float *px = (const float *)x + ox, *py = (const float *)y + oy;
    switch (op) {
    case LB_OP_ADD: for (int64_t j = 0; j < n; j++) po[j] = px[j * sx] + py[j * sy]; break;
    case LB_OP_SUB: for (int64_t j = 0; j < n; j++) po[j] = px[j * sx] - py[j * sy]; break;
    case LB_OP_MUL: for (int64_t j = 0; j < n; j++) po[j] = px[j * sx] * py[j * sy]; break;
    default: for (int64_t j = 0; j < n; j++) po[j] = px[j * sx] / py[j * sy]; break;
    }
  } else if (t == LB_DTYPE_F64) {
    for (int64_t j = 0; j < n; j++)
      stf(o, t, oo + j, float_binop(op, ldf(x, t, ox + j * sx), ldf(y, t, oy + j * sy)));
  } else {
    for (int64_t j = 0; j < n; j++)
      sti(o, t, oo + j, int_binop(op, ldi(x, t, ox + j * sx), ldi(y, t, oy + j * sy)));
  }
}

static int k_binary(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_tensor *x = &in[0], *y = &in[1];
  int r = out->rank ? out->rank : 1;
  int64_t dims[LB_MAX_RANK], sx[LB_MAX_RANK], sy[LB_MAX_RANK], idx[LB_MAX_RANK] = {0};
  int64_t total = lb_tensor_numel(out);
  if (out->rank == 0) {
    dims[0] = 1;
    sx[0] = sy[0] = 0;
  } else {
    memcpy(dims, out->dims, sizeof dims);
    bcast_strides(x, r, sx);
    bcast_strides(y, r, sy);
  }
  if (total == 0) return 0;
  int64_t inner = dims[r - 1], ox = 0, oy = 0;
  for (int64_t off = 0; off < total; off += inner) {
    bin_row(c->n->op, out->dtype, out->data, off, x->data, ox, sx[r - 1], y->data, oy,
            sy[r - 1], inner);
    for (int d = r - 2; d >= 0; d--) {
      ox += sx[d];
      oy += sy[d];
      if (++idx[d] < dims[d]) break;
      ox -= sx[d] * dims[d];
      oy -= sy[d] * dims[d];
      idx[d] = 0;
    }
  }
  if (out->dtype == LB_DTYPE_F32) lb_apply_act(c->a, out->data, total);
  return 0;
}

/* ---- elementwise unary ------------------------------------------------------------------ */

static float unary_f32(lb_op op, const lb_attrs *a, float v) {
  switch (op) {
  case LB_OP_RELU: return v < 0.0f ? 0.0f : v;
  case LB_OP_LEAKY_RELU: return v < 0.0f ? a->alpha * v : v;
  case LB_OP_CLIP: {
    float w = v < a->clip_min ? a->clip_min : v;
    return w > a->clip_max ? a->clip_max : w;
  }
  case LB_OP_SIGMOID: return 1.0f / (1.0f + expf(-v));
  case LB_OP_TANH: return tanhf(v);
  case LB_OP_HARD_SIGMOID: {
    float w = a->alpha * v + a->beta;
    return w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w);
  }
  default: { /* HARD_SWISH: x * hard_sigmoid(x) with alpha 1/6, beta 1/2 */
    float w = v * (1.0f / 6.0f) + 0.5f;
    return v * (w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w));
  }
  }
}

static int k_unary(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  int64_t n = lb_tensor_numel(out);
  lb_dtype t = out->dtype;
  if (t == LB_DTYPE_F32) {
    const float *x = in[0].data;
    float *y = out->data;
    for (int64_t i = 0; i < n; i++) y[i] = unary_f32(c->n->op, c->a, x[i]);
    return 0;
  }
  /* relu and clip on other dtypes, through double (exact for every integer below 2^53) */
  double lo = c->n->op == LB_OP_RELU ? 0.0 : c->a->clip_min;
  double hi = c->n->op == LB_OP_RELU ? INFINITY : c->a->clip_max;
  for (int64_t i = 0; i < n; i++) {
    if (t != LB_DTYPE_F64) {
      int64_t v = ldi(in[0].data, t, i);
      if ((double)v < lo) v = d2i(ceil(lo));
      if ((double)v > hi) v = d2i(floor(hi));
      sti(out->data, t, i, v);
    } else {
      double v = ldf(in[0].data, t, i);
      v = v < lo ? lo : v;
      stf(out->data, t, i, v > hi ? hi : v);
    }
  }
  return 0;
}

/* ---- data movement ---------------------------------------------------------------------- */

static int k_copy(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  size_t n = lb_dtype_bytes(out->dtype, lb_tensor_numel(out));
  if (n) memcpy(out->data, in[0].data, n);
  return 0;
}

/* dst[j] = src[j*stride] for n elements of es bytes. */
static void gather_row(unsigned char *dst, const unsigned char *src, int64_t n, int64_t stride,
                       size_t es) {
  if (stride == 1) {
    memcpy(dst, src, (size_t)n * es);
    return;
  }
  for (int64_t j = 0; j < n; j++) memcpy(dst + (size_t)j * es, src + (size_t)(j * stride) * es, es);
}

static int k_transpose(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  int r = out->rank;
  int64_t total = lb_tensor_numel(out);
  size_t es = esize(out->dtype);
  if (total == 0) return 0;
  if (r == 0) return k_copy(c, in, out);
  int64_t st[LB_MAX_RANK], s[LB_MAX_RANK], idx[LB_MAX_RANK] = {0}, off = 0;
  st[r - 1] = 1;
  for (int i = r - 2; i >= 0; i--) st[i] = st[i + 1] * in[0].dims[i + 1];
  for (int i = 0; i < r; i++) s[i] = st[c->a->axes[i]];
  int64_t inner = out->dims[r - 1];
  unsigned char *dst = out->data;
  for (int64_t o = 0; o < total; o += inner) {
    gather_row(dst + (size_t)o * es, (const unsigned char *)in[0].data + (size_t)off * es, inner,
               s[r - 1], es);
    for (int d = r - 2; d >= 0; d--) {
      off += s[d];
      if (++idx[d] < out->dims[d]) break;
      off -= s[d] * out->dims[d];
      idx[d] = 0;
    }
  }
  return 0;
}

static int k_concat(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  int ax = (int)c->a->axis;
  size_t es = esize(out->dtype);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < ax; i++) outer *= out->dims[i];
  for (int i = ax + 1; i < out->rank; i++) inner *= out->dims[i];
  unsigned char *dst = out->data;
  for (int64_t o = 0; o < outer; o++)
    for (uint32_t k = 0; k < c->n->n_in; k++) {
      size_t chunk = (size_t)(in[k].dims[ax] * inner) * es;
      if (!chunk) continue;
      memcpy(dst, (const unsigned char *)in[k].data + (size_t)o * chunk, chunk);
      dst += chunk;
    }
  return 0;
}

/* Source coordinate along one axis for output coordinate o, or -1 for the constant value. */
static int64_t pad_src(int64_t o, int64_t pb, int64_t d, lb_pad_mode mode) {
  int64_t p = o - pb;
  if (p >= 0 && p < d) return p;
  if (mode == LB_PAD_CONSTANT) return -1;
  if (mode == LB_PAD_EDGE) return p < 0 ? 0 : d - 1;
  return p < 0 ? -p : 2 * (d - 1) - p; /* reflect: pads < d, so one reflection suffices */
}

static int k_pad(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  int r = out->rank;
  size_t es = esize(out->dtype);
  int64_t total = lb_tensor_numel(out), st[LB_MAX_RANK], idx[LB_MAX_RANK] = {0};
  unsigned char fill[8];
  stf(fill, out->dtype, 0, c->a->pad_value);
  if (r) st[r - 1] = 1;
  for (int i = r - 2; i >= 0; i--) st[i] = st[i + 1] * in[0].dims[i + 1];
  unsigned char *dst = out->data;
  const unsigned char *src = in[0].data;
  for (int64_t o = 0; o < total; o++) {
    int64_t off = 0;
    for (int i = 0; i < r && off >= 0; i++) {
      int64_t p = pad_src(idx[i], c->a->pads[i], in[0].dims[i], c->a->pad_mode);
      off = p < 0 ? -1 : off + p * st[i];
    }
    memcpy(dst + (size_t)o * es, off < 0 ? fill : src + (size_t)off * es, es);
    for (int d = r - 1; d >= 0; d--) {
      if (++idx[d] < out->dims[d]) break;
      idx[d] = 0;
    }
  }
  return 0;
}

static int k_gather(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_tensor *x = &in[0], *ix = &in[1];
  int ax = (int)c->a->axis;
  size_t es = esize(x->dtype);
  int64_t outer = 1, inner = 1, d = x->dims[ax], ni = lb_tensor_numel(ix);
  for (int i = 0; i < ax; i++) outer *= x->dims[i];
  for (int i = ax + 1; i < x->rank; i++) inner *= x->dims[i];
  for (int64_t i = 0; i < ni; i++) {
    int64_t v = ldi(ix->data, ix->dtype, i);
    if (v < -d || v >= d)
      return lb_node_err(c->g, c->id, c->diag,
                         "input[1]: index %lld is out of range for axis %d of size %lld",
                         (long long)v, ax, (long long)d);
  }
  size_t row = (size_t)inner * es;
  unsigned char *dst = out->data;
  for (int64_t o = 0; o < outer && row; o++)
    for (int64_t i = 0; i < ni; i++) {
      int64_t v = ldi(ix->data, ix->dtype, i);
      if (v < 0) v += d;
      memcpy(dst, (const unsigned char *)x->data + (size_t)(o * d + v) * row, row);
      dst += row;
    }
  return 0;
}

static int k_shape(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  int64_t *y = out->data;
  for (int64_t i = c->a->start; i < c->a->end; i++) y[i - c->a->start] = in[0].dims[i];
  return 0;
}

/* ---- quantization ----------------------------------------------------------------------- */

/* Splits x into outer x channels x inner for per-axis parameters (one channel if per tensor). */
static void quant_split(const lb_kctx *c, const lb_tensor *x, const lb_tensor *s, int64_t *outer,
                        int64_t *ch, int64_t *inner) {
  *outer = 1;
  *ch = 1;
  *inner = lb_tensor_numel(x);
  if (lb_tensor_numel(s) == 1) return;
  int ax = (int)c->a->axis;
  *inner = 1;
  for (int i = 0; i < ax; i++) *outer *= x->dims[i];
  *ch = x->dims[ax];
  for (int i = ax + 1; i < x->rank; i++) *inner *= x->dims[i];
}

static void quant_range(lb_dtype t, double *lo, double *hi) {
  switch (t) {
  case LB_DTYPE_U8: *lo = 0, *hi = 255; break;
  case LB_DTYPE_I8: *lo = -128, *hi = 127; break;
  case LB_DTYPE_I16: *lo = -32768, *hi = 32767; break;
  default: *lo = -2147483648.0, *hi = 2147483647.0; break;
  }
}

/* y = saturate(round_half_even(x / scale) + zero_point); NaN maps to the zero point. */
static int k_quantize(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const float *x = in[0].data, *s = in[1].data;
  int has_zp = lb_kin(c, in, 2);
  int64_t outer, ch, inner;
  double lo, hi;
  quant_split(c, &in[0], &in[1], &outer, &ch, &inner);
  quant_range(out->dtype, &lo, &hi);
  for (int64_t o = 0, i = 0; o < outer; o++)
    for (int64_t k = 0; k < ch; k++) {
      double z = has_zp ? (double)ldi(in[2].data, in[2].dtype, k) : 0.0;
      for (int64_t j = 0; j < inner; j++, i++) {
        float r = x[i] / s[k];
        double q = r != r ? z : (double)nearbyintf(r) + z;
        q = q < lo ? lo : (q > hi ? hi : q);
        sti(out->data, out->dtype, i, (int64_t)q);
      }
    }
  return 0;
}

/* y = (x - zero_point) * scale, computed as ONNX does: (float(x) - float(zp)) * scale. */
static int k_dequantize(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const float *s = in[1].data;
  float *y = out->data;
  int has_zp = lb_kin(c, in, 2);
  int64_t outer, ch, inner;
  quant_split(c, &in[0], &in[1], &outer, &ch, &inner);
  for (int64_t o = 0, i = 0; o < outer; o++)
    for (int64_t k = 0; k < ch; k++) {
      float z = has_zp ? (float)ldi(in[2].data, in[2].dtype, k) : 0.0f;
      for (int64_t j = 0; j < inner; j++, i++)
        y[i] = ((float)ldi(in[0].data, in[0].dtype, i) - z) * s[k];
    }
  return 0;
}

/* ---- the kernel table and lb_eval_node -------------------------------------------------- */

static const lb_kernel_fn kernels[LB_OP_COUNT] = {
    [LB_OP_CONV] = lb_k_conv,
    [LB_OP_GEMM] = lb_k_gemm,
    [LB_OP_MATMUL] = lb_k_matmul,
    [LB_OP_ADD] = k_binary,
    [LB_OP_SUB] = k_binary,
    [LB_OP_MUL] = k_binary,
    [LB_OP_DIV] = k_binary,
    [LB_OP_RELU] = k_unary,
    [LB_OP_LEAKY_RELU] = k_unary,
    [LB_OP_CLIP] = k_unary,
    [LB_OP_SIGMOID] = k_unary,
    [LB_OP_TANH] = k_unary,
    [LB_OP_HARD_SIGMOID] = k_unary,
    [LB_OP_HARD_SWISH] = k_unary,
    [LB_OP_SOFTMAX] = lb_k_softmax,
    [LB_OP_MAX_POOL] = lb_k_max_pool,
    [LB_OP_AVG_POOL] = lb_k_avg_pool,
    [LB_OP_GLOBAL_AVG_POOL] = lb_k_global_avg_pool,
    [LB_OP_BATCHNORM] = lb_k_batchnorm,
    [LB_OP_CONCAT] = k_concat,
    [LB_OP_FLATTEN] = k_copy,
    [LB_OP_RESHAPE] = k_copy,
    [LB_OP_TRANSPOSE] = k_transpose,
    [LB_OP_SQUEEZE] = k_copy,
    [LB_OP_UNSQUEEZE] = k_copy,
    [LB_OP_PAD] = k_pad,
    [LB_OP_GATHER] = k_gather,
    [LB_OP_IDENTITY] = k_copy,
    [LB_OP_SHAPE] = k_shape,
    [LB_OP_REDUCE_MEAN] = lb_k_reduce_mean,
    [LB_OP_QUANTIZE] = k_quantize,
    [LB_OP_DEQUANTIZE] = k_dequantize,
};

/* A tensor of nonzero size must have data; Shape reads only its input's dims. */
static int check_data(const lb_graph *g, uint32_t id, const lb_tensor *in, const lb_tensor *out,
                      lb_diag *diag) {
  const lb_node *n = &g->nodes[id];
  for (uint32_t k = 0; k < n->n_in && n->op != LB_OP_SHAPE; k++)
    if (n->in[k] != LB_NONE && !in[k].data &&
        lb_dtype_bytes(in[k].dtype, lb_tensor_numel(&in[k])) > 0)
      return lb_node_err(g, id, diag, "input[%u] has no data", k);
  if (!out[0].data && lb_dtype_bytes(out[0].dtype, lb_tensor_numel(&out[0])) > 0)
    return lb_node_err(g, id, diag, "output[0] has no buffer");
  return 0;
}

int lb_eval_node(const lb_graph *g, uint32_t id, const lb_tensor *in, lb_tensor *out,
                 lb_diag *diag) {
  if (id >= g->n_nodes)
    return lb_diag_err(diag, LB_ERR_INTERNAL, "lb_eval_node: node %u of %u", id, g->n_nodes);
  const lb_node *n = &g->nodes[id];
  lb_attrs a;
  LB_TRY(lb_shape_check(g, id, in, out, &a, diag));
  LB_TRY(check_data(g, id, in, out, diag));
  if (!kernels[n->op])
    return lb_node_err(g, id, diag, "op %s is not supported by the interpreter",
                       lb_op_get(n->op)->name);
  /* An empty output has nothing to compute (and its buffer may be NULL). */
  if (lb_dtype_bytes(out[0].dtype, lb_tensor_numel(&out[0])) == 0) return 0;
  if (lb_int_node(g, id)) return lb_int_eval(g, id, &a, in, out, diag); /* interp_int.c */
  lb_kctx c = {g, id, n, &a, diag};
  return kernels[n->op](&c, in, out);
}

/* ---- lb_interp_run ---------------------------------------------------------------------- */

typedef struct {
  const lb_graph *g;
  lb_tensor *val;         /* per value: the tensor once available */
  unsigned char *owned;   /* val[v].data was allocated here */
  unsigned char *is_out;  /* v is a graph output: never freed early */
  uint32_t *last;         /* 1 + index of the last node reading v; 0 if none */
} run_state;

static lb_tensor value_tensor(const lb_value *v, void *data) {
  lb_tensor t = {v->dtype, v->rank, {0}, data};
  memcpy(t.dims, v->dims, sizeof t.dims);
  return t;
}

static int check_inputs(const lb_graph *g, const lb_tensor *inputs, lb_diag *diag) {
  char want[160], got[160];
  for (uint32_t i = 0; i < g->n_inputs; i++) {
    const lb_value *v = &g->values[g->inputs[i]];
    const lb_tensor *t = &inputs[i];
    int ok = t->dtype == v->dtype && t->rank == v->rank;
    for (int d = 0; ok && d < v->rank; d++) ok = t->dims[d] == v->dims[d];
    if (!ok) {
      lb_shape_str(want, sizeof want, v->dtype, v->rank, v->dims);
      int r = t->rank < 0 || t->rank > LB_MAX_RANK ? 0 : t->rank;
      lb_shape_str(got, sizeof got, t->dtype, r, t->dims);
      return lb_diag_err(diag, LB_ERR_INPUT, "input \"%s\": expected %s, got %s", v->name, want,
                         got);
    }
    if (!t->data && lb_dtype_bytes(t->dtype, lb_tensor_numel(t)) > 0)
      return lb_diag_err(diag, LB_ERR_INPUT, "input \"%s\": no data", v->name);
  }
  return 0;
}

static int state_init(run_state *s, const lb_graph *g, const lb_tensor *inputs) {
  uint32_t nv = g->n_values ? g->n_values : 1;
  s->g = g;
  s->val = lb_calloc(nv, sizeof *s->val);
  s->owned = lb_calloc(nv, 1);
  s->is_out = lb_calloc(nv, 1);
  s->last = lb_calloc(nv, sizeof *s->last);
  if (!s->val || !s->owned || !s->is_out || !s->last) return LB_ERR_NOMEM;
  for (uint32_t v = 0; v < g->n_values; v++)
    if (g->values[v].data) s->val[v] = value_tensor(&g->values[v], g->values[v].data);
  for (uint32_t i = 0; i < g->n_inputs; i++) s->val[g->inputs[i]] = inputs[i];
  for (uint32_t i = 0; i < g->n_outputs; i++) s->is_out[g->outputs[i]] = 1;
  for (uint32_t n = 0; n < g->n_nodes; n++)
    for (uint32_t k = 0; k < g->nodes[n].n_in; k++)
      if (g->nodes[n].in[k] != LB_NONE) s->last[g->nodes[n].in[k]] = n + 1;
  return 0;
}

static void release(run_state *s, uint32_t v) {
  if (!s->owned[v]) return;
  lb_free(s->val[v].data);
  s->val[v].data = NULL;
  s->owned[v] = 0;
}

static void state_free(run_state *s) {
  if (s->owned)
    for (uint32_t v = 0; v < s->g->n_values; v++) release(s, v);
  lb_free(s->val);
  lb_free(s->owned);
  lb_free(s->is_out);
  lb_free(s->last);
}

/* Allocates node n's output, runs it, then frees every value whose last reader was n. */
static int run_node(run_state *s, uint32_t n, lb_diag *diag) {
  const lb_node *nd = &s->g->nodes[n];
  lb_tensor in[64];
  if (nd->n_in > 64) return lb_node_err(s->g, n, diag, "too many inputs (%u)", nd->n_in);
  for (uint32_t k = 0; k < nd->n_in; k++)
    in[k] = nd->in[k] == LB_NONE ? (lb_tensor){0} : s->val[nd->in[k]];
  uint32_t o = nd->out[0];
  const lb_value *ov = &s->g->values[o];
  size_t bytes = lb_dtype_bytes(ov->dtype, lb_value_numel(ov));
  if (bytes == SIZE_MAX) return lb_node_err(s->g, n, diag, "output is too large");
  lb_tensor out = value_tensor(ov, lb_calloc(bytes ? bytes : 1, 1));
  if (!out.data) return LB_ERR_NOMEM;
  s->val[o] = out;
  s->owned[o] = 1;
  LB_TRY(lb_eval_node(s->g, n, in, &s->val[o], diag));
  for (uint32_t k = 0; k < nd->n_in; k++) {
    uint32_t v = nd->in[k];
    if (v != LB_NONE && s->last[v] == n + 1 && !s->is_out[v]) release(s, v);
  }
  if (s->last[o] == 0 && !s->is_out[o]) release(s, o);
  return 0;
}

/* Moves (or, for repeated outputs and graph inputs/constants, copies) results to the caller. */
static int hand_outputs(run_state *s, lb_tensor *outputs) {
  const lb_graph *g = s->g;
  for (uint32_t i = 0; i < g->n_outputs; i++) {
    uint32_t v = g->outputs[i];
    lb_tensor t = s->val[v];
    if (s->owned[v]) {
      s->owned[v] = 0;
    } else {
      size_t bytes = lb_dtype_bytes(t.dtype, lb_tensor_numel(&t));
      void *p = lb_malloc(bytes ? bytes : 1);
      if (!p) {
        for (uint32_t j = 0; j < i; j++) lb_free(outputs[j].data);
        return LB_ERR_NOMEM;
      }
      if (bytes) memcpy(p, t.data, bytes);
      t.data = p;
    }
    outputs[i] = t;
  }
  return 0;
}

int lb_interp_run(const lb_graph *g, const lb_tensor *inputs, lb_tensor *outputs,
                  lb_diag *diag) {
  LB_TRY(lb_graph_verify(g, diag));
  LB_TRY(check_inputs(g, inputs, diag));
  run_state s = {0};
  int rc = state_init(&s, g, inputs);
  for (uint32_t n = 0; n < g->n_nodes && !rc; n++) rc = run_node(&s, n, diag);
  if (!rc) rc = hand_outputs(&s, outputs);
  state_free(&s);
  return rc;
}
