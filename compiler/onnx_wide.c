/* float16 and 16-bit quantization at import. float16 tensors become f32 (initializers, Constant
 * values; a Cast to float16 is a Cast to float), so a float16 model computes in f32. uint16 and
 * int16 QuantizeLinear/DequantizeLinear become the IR's i16 quantize/dequantize: a uint16 tensor
 * u is held as the int16 u - 32768 with its zero point moved the same way, which leaves every
 * Q (saturate(round(x / s) + z) over [0, 65535]) and DQ ((u - z) * s) result exact. A blocked
 * DequantizeLinear (block_size) of constants is folded here.
 * Invariant: a shifted uint16 value is read only by QuantizeLinear/DequantizeLinear. */
#include "onnx_wide.h"

#include <math.h>
#include <string.h>

enum {
  T_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
  T_UINT16 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT16,
  T_INT16 = ONNX__TENSOR_PROTO__DATA_TYPE__INT16,
  T_INT32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32,
  T_FLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16
};

#define V(id) lb_onnx_val(c, (id))
#define ERR(...) lb_diag_err(c->diag, LB_ERR_INPUT, __VA_ARGS__)

/* ---- marks -------------------------------------------------------------------------------- */

void lb_onnx_wide_free(lb_onnx_wide *w) {
  lb_free(w->u16);
  memset(w, 0, sizeof *w);
}

int lb_onnx_wide_is_u16(const lb_onnx_wide *w, uint32_t id) {
  for (uint32_t i = 0; i < w->n_u16; i++)
    if (w->u16[i] == id) return 1;
  return 0;
}

int lb_onnx_wide_mark(lb_onnx_wide *w, uint32_t id, lb_diag *diag) {
  if (w->n_u16 == w->cap_u16) {
    uint32_t cap = w->cap_u16 ? 2 * w->cap_u16 : 16;
    uint32_t *p = lb_realloc(w->u16, cap * sizeof *p);
    if (!p) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
    w->u16 = p, w->cap_u16 = cap;
  }
  w->u16[w->n_u16++] = id;
  return 0;
}

/* ---- tensors ------------------------------------------------------------------------------ */

/* IEEE binary16 to binary32, exactly (subnormals, infinities and NaN payloads included). */
static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31u, m = h & 1023u, bits;
  if (e == 0) {
    float f = ldexpf((float)m, -24);
    return sign ? -f : f;
  }
  bits = sign | (e == 31 ? 0x7f800000u : (e + 112u) << 23) | (m << 13);
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* The 16-bit patterns of a float16/uint16 tensor as decoded from raw_data (as int16) or
 * int32_data (one pattern per int32, checked to fit). */
static int patterns(const lb_tensor *t, int raw, uint16_t *out, const char *tn, lb_diag *diag) {
  int64_t n = lb_tensor_numel(t);
  for (int64_t i = 0; i < n; i++) {
    if (raw) {
      out[i] = ((const uint16_t *)t->data)[i];
      continue;
    }
    int32_t v = ((const int32_t *)t->data)[i];
    if (v < 0 || v > 65535)
      return lb_diag_err(diag, LB_ERR_INPUT, "int32_data[%lld] = %d out of range for %s",
                         (long long)i, (int)v, tn);
    out[i] = (uint16_t)v;
  }
  return 0;
}

int lb_onnx_wide_decode(const Onnx__TensorProto *t, lb_tensor *out, size_t *nbytes, int *u16,
                        lb_diag *diag) {
  *u16 = 0;
  int32_t dt = t->has_data_type ? t->data_type : 0;
  if (dt != T_FLOAT16 && dt != T_UINT16) return lb_onnx_decode_tensor(t, out, nbytes, diag);
  Onnx__TensorProto bits = *t; /* the same storage read as int16 (raw) or int32 values */
  bits.data_type = t->has_raw_data ? T_INT16 : T_INT32;
  LB_TRY(lb_onnx_decode_tensor(&bits, out, nbytes, diag));
  int64_t n = lb_tensor_numel(out);
  int half = dt == T_FLOAT16;
  size_t nb = (size_t)n * (half ? sizeof(float) : sizeof(int16_t));
  uint16_t *p = lb_malloc((size_t)(n ? n : 1) * sizeof *p);
  void *y = lb_malloc(nb ? nb : 1);
  int rc = !p || !y ? lb_diag_err(diag, LB_ERR_NOMEM, "out of memory") : 0;
  if (!rc) rc = patterns(out, t->has_raw_data, p, half ? "float16" : "uint16", diag);
  for (int64_t i = 0; !rc && i < n; i++) {
    if (half) ((float *)y)[i] = half_to_float(p[i]);
    else ((int16_t *)y)[i] = (int16_t)((int32_t)p[i] - 32768);
  }
  lb_free(p), lb_free(out->data);
  out->data = rc ? (lb_free(y), NULL) : y;
  out->dtype = half ? LB_DTYPE_F32 : LB_DTYPE_I16;
  *nbytes = nb;
  *u16 = !half;
  return rc;
}

int lb_onnx_wide_io_type(int32_t t, const char *what, lb_diag *diag) {
  if (t == T_FLOAT16)
    return lb_diag_err(diag, LB_ERR_INPUT,
                       "float16 %ss are not supported: lowbit runs float16 models in f32 "
                       "(keep float %ss, e.g. onnxconverter_common's keep_io_types=True)",
                       what, what);
  if (t == T_UINT16)
    return lb_diag_err(diag, LB_ERR_INPUT,
                       "uint16 %ss are not supported (lowbit holds uint16 only inside the graph, "
                       "as QuantizeLinear/DequantizeLinear data; int16 %ss are supported)",
                       what, what);
  return 0;
}

/* ---- nodes -------------------------------------------------------------------------------- */

int lb_onnx_wide_domain(const Onnx__NodeProto *np) {
  const char *t = np->op_type ? np->op_type : "";
  return np->domain && !strcmp(np->domain, "com.microsoft") &&
         (!strcmp(t, "QuantizeLinear") || !strcmp(t, "DequantizeLinear"));
}

static int is_qdq(const char *op_type) {
  return !strcmp(op_type, "QuantizeLinear") || !strcmp(op_type, "DequantizeLinear");
}

int lb_onnx_wide_check_inputs(lb_onnx_ctx *c, const lb_onnx_wide *w, const uint32_t *ids,
                              uint32_t n_in) {
  if (!w->n_u16 || is_qdq(c->np->op_type ? c->np->op_type : "")) return 0;
  for (uint32_t k = 0; k < n_in; k++)
    if (ids[k] != LB_NONE && lb_onnx_wide_is_u16(w, ids[k]))
      return ERR("input[%u] \"%s\" is uint16, which only QuantizeLinear/DequantizeLinear may read",
                 k, V(ids[k])->name);
  return 0;
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *np, const char *name,
                                        size_t *at) {
  for (size_t i = 0; i < np->n_attribute; i++)
    if (np->attribute[i]->name && !strcmp(np->attribute[i]->name, name)) {
      if (at) *at = i;
      return np->attribute[i];
    }
  return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *np, const char *name, int64_t def) {
  const Onnx__AttributeProto *a = attr(np, name, NULL);
  return a && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT ? a->i : def;
}

/* Cast to float16: op->fn on a copy of the node whose "to" says float. */
static int lower_cast16(lb_onnx_ctx *c, const lb_onnx_op *op, const uint32_t *ids, uint32_t n_in,
                        lb_lowering *l, int *done) {
  size_t at;
  const Onnx__AttributeProto *a = attr(c->np, "to", &at);
  if (!a || a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT || a->i != T_FLOAT16 ||
      c->np->n_attribute > 4)
    return 0;
  Onnx__NodeProto np = *c->np;
  Onnx__AttributeProto to = *a, *attrs[4];
  to.i = T_FLOAT;
  memcpy(attrs, c->np->attribute, c->np->n_attribute * sizeof *attrs);
  attrs[at] = &to;
  np.attribute = attrs;
  const Onnx__NodeProto *saved = c->np;
  c->np = &np;
  int rc = op->fn(c, ids, n_in, l);
  c->np = saved;
  *done = 1;
  return rc;
}

/* Constant holding a float16 or uint16 tensor. */
static int lower_const16(lb_onnx_ctx *c, lb_onnx_wide *w, lb_lowering *l, int *done) {
  const Onnx__AttributeProto *a = attr(c->np, "value", NULL);
  if (c->np->n_attribute != 1 || !a || !a->t || !a->t->has_data_type ||
      (a->t->data_type != T_FLOAT16 && a->t->data_type != T_UINT16))
    return 0;
  lb_tensor t;
  size_t nb;
  int u16, rc = lb_onnx_wide_decode(a->t, &t, &nb, &u16, c->diag);
  if (rc) {
    lb_diag_prefix(c->diag, "attribute \"value\"");
    return rc;
  }
  rc = lb_onnx_def_const(c, 0, t.dtype, t.rank, t.dims, t.data, nb);
  lb_free(t.data);
  l->kind = LB_LOWER_DONE;
  w->out_u16 = u16;
  *done = 1;
  return rc;
}

static int norm(lb_onnx_ctx *c, int64_t axis, int rank, int *out) {
  if (axis < -rank || axis >= rank)
    return ERR("attribute \"axis\" = %lld is out of range for rank %d", (long long)axis, rank);
  *out = (int)(axis < 0 ? axis + rank : axis);
  return 0;
}

static int32_t ld_int(const lb_value *v, int64_t i) {
  switch (v->dtype) {
  case LB_DTYPE_I8: return ((const int8_t *)v->data)[i];
  case LB_DTYPE_U8: return ((const uint8_t *)v->data)[i];
  case LB_DTYPE_I16: return ((const int16_t *)v->data)[i];
  default: return ((const int32_t *)v->data)[i];
  }
}

static int int_type(lb_dtype t) {
  return t == LB_DTYPE_I8 || t == LB_DTYPE_U8 || t == LB_DTYPE_I16 || t == LB_DTYPE_I32;
}

/* The scale (and zero point) shape a blocked DequantizeLinear of x needs along axis ax. */
static int check_blocks(lb_onnx_ctx *c, const lb_value *x, const lb_value *p, int ax,
                        int64_t block, const char *what) {
  int ok = p->rank == x->rank;
  for (int d = 0; ok && d < x->rank; d++)
    ok = p->dims[d] == (d == ax ? x->dims[d] / block + (x->dims[d] % block != 0) : x->dims[d]);
  if (!ok)
    return ERR("%s: expected the shape of input[0] with dim %d = ceil(%lld / block_size %lld)", what,
               ax, (long long)x->dims[ax], (long long)block);
  return 0;
}

/* DequantizeLinear with block_size of constants: folded to f32 (no lb_quant: one scale per
 * block is no per-tensor or per-axis form). */
static int fold_blocked(lb_onnx_ctx *c, const uint32_t *ids, uint32_t n_in, int64_t block,
                        int64_t axis, lb_lowering *l) {
  const lb_value *x = V(ids[0]), *s = V(ids[1]), *z = n_in > 2 ? V(ids[2]) : NULL;
  if (!x->data || !s->data || (z && !z->data))
    return ERR("blocked quantization (block_size %lld) of a run-time tensor is not supported "
               "(a DequantizeLinear of constant weights is folded)", (long long)block);
  if (block < 1) return ERR("attribute \"block_size\" = %lld must be positive", (long long)block);
  if (!int_type(x->dtype) || s->dtype != LB_DTYPE_F32 || (z && z->dtype != x->dtype))
    return ERR("blocked DequantizeLinear of %s with %s scales is not supported", lb_dtype_name(x->dtype),
               lb_dtype_name(s->dtype));
  int ax = 0;
  LB_TRY(norm(c, axis, x->rank, &ax));
  LB_TRY(check_blocks(c, x, s, ax, block, "input[1] (scale)"));
  if (z) LB_TRY(check_blocks(c, x, z, ax, block, "input[2] (zero_point)"));
  int64_t n = lb_value_numel(x), inner = 1, len = x->dims[ax], nb = s->dims[ax];
  for (int d = ax + 1; d < x->rank; d++) inner *= x->dims[d];
  float *y = lb_malloc((size_t)(n ? n : 1) * sizeof *y);
  if (!y) return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  for (int64_t i = 0; i < n; i++) {
    int64_t o = i / (inner * len), a = i / inner % len, k = (o * nb + a / block) * inner + i % inner;
    y[i] = ((float)ld_int(x, i) - (z ? (float)ld_int(z, k) : 0.0f)) * ((const float *)s->data)[k];
  }
  int64_t dims[LB_MAX_RANK]; /* x points into the value array, which def_const may move */
  int rank = x->rank;
  memcpy(dims, x->dims, sizeof dims);
  int rc = lb_onnx_def_const(c, 0, LB_DTYPE_F32, rank, dims, y, (size_t)n * sizeof *y);
  lb_free(y);
  l->kind = LB_LOWER_DONE;
  return rc;
}

/* A scalar int16 zero point (0, or -32768: uint16's 0 shifted) for a node that has none. */
static uint32_t zero16(lb_onnx_ctx *c, int u16) {
  char name[256];
  int16_t z = u16 ? -32768 : 0;
  snprintf(name, sizeof name, "%.200s:zero_point", c->np->output[0] ? c->np->output[0] : "");
  return lb_graph_add_const(c->g, name, LB_DTYPE_I16, 0, NULL, &z, sizeof z);
}

/* Whether a Q (zero point or output_dtype) or DQ (data or zero point) is 16-bit, and
 * whether uint16; consistency of the two. -1: not 16-bit. */
static int wide_kind(lb_onnx_ctx *c, const lb_onnx_wide *w, int is_q, const uint32_t *ids,
                     uint32_t n_in, int *u16) {
  uint32_t z = n_in > 2 ? ids[2] : LB_NONE;
  int64_t odt = is_q ? attr_int(c->np, "output_dtype", 0) : 0;
  int zw = z != LB_NONE && V(z)->dtype == LB_DTYPE_I16, uz = z != LB_NONE && lb_onnx_wide_is_u16(w, z);
  int xw = !is_q && V(ids[0])->dtype == LB_DTYPE_I16, ux = !is_q && lb_onnx_wide_is_u16(w, ids[0]);
  int ow = odt == T_UINT16 || odt == T_INT16;
  if (!zw && !xw && !ow) return -1;
  *u16 = zw ? uz : is_q ? odt == T_UINT16 : ux;
  if (is_q && odt && z != LB_NONE && (!zw || (odt == T_UINT16) != uz))
    return ERR("attribute \"output_dtype\" = %lld differs from the zero point's type",
               (long long)odt);
  if (!is_q && z != LB_NONE && (!zw || !xw || ux != uz))
    return ERR("input[2] (zero_point) is %s but input[0] is %s", uz ? "uint16" : lb_dtype_name(V(z)->dtype),
               ux ? "uint16" : lb_dtype_name(V(ids[0])->dtype));
  return 0;
}

/* 16-bit QuantizeLinear / DequantizeLinear as the IR's i16 quantize / dequantize: 1 done, 0 not
 * 16-bit, else the error status (LB_ERR_INPUT or LB_ERR_NOMEM, both > 1). */
static int lower_q16(lb_onnx_ctx *c, lb_onnx_wide *w, int is_q, const uint32_t *ids,
                     uint32_t n_in, lb_lowering *l) {
  int u16 = 0, rc = wide_kind(c, w, is_q, ids, n_in, &u16);
  if (rc < 0) return 0;
  LB_TRY(rc);
  const lb_value *x = V(ids[0]), *s = V(ids[1]);
  if (s->rank > 1) return ERR("input[1] (scale): expected rank 0 or 1, got %d", s->rank);
  int ax = -1;
  if (lb_value_numel(s) > 1) LB_TRY(norm(c, attr_int(c->np, "axis", 1), x->rank, &ax));
  l->attr.axis = ax;
  uint32_t z = n_in > 2 ? ids[2] : LB_NONE;
  if (z == LB_NONE && (z = zero16(c, u16)) == LB_NONE)
    return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  l->op = is_q ? LB_OP_QUANTIZE : LB_OP_DEQUANTIZE;
  l->in[0] = ids[0], l->in[1] = ids[1], l->in[2] = z, l->n_in = 3;
  w->out_u16 = is_q && u16;
  w->fold_q = !is_q && V(ids[0])->data && V(ids[1])->data && V(z)->data;
  w->s = ids[1], w->z = z, w->axis = ax, w->z_shift = u16 ? 32768 : 0;
  return 1;
}

int lb_onnx_wide_lower(lb_onnx_ctx *c, lb_onnx_wide *w, const lb_onnx_op *op, const uint32_t *ids,
                       uint32_t n_in, lb_lowering *l, int *done) {
  *done = 0;
  w->out_u16 = w->fold_q = 0;
  if (!strcmp(op->name, "Cast")) return lower_cast16(c, op, ids, n_in, l, done);
  if (!strcmp(op->name, "Constant")) return lower_const16(c, w, l, done);
  if (!is_qdq(op->name)) return 0;
  int is_q = !strcmp(op->name, "QuantizeLinear");
  int64_t block = attr_int(c->np, "block_size", 0);
  if (block) {
    *done = 1;
    if (is_q)
      return ERR("blocked quantization (block_size %lld) is not supported in QuantizeLinear (a "
                 "blocked DequantizeLinear of constant weights is)", (long long)block);
    return fold_blocked(c, ids, n_in, block, attr_int(c->np, "axis", 1), l);
  }
  int rc = lower_q16(c, w, is_q, ids, n_in, l);
  *done = rc == 1;
  return rc == 1 ? 0 : rc;
}

/* A folded 16-bit DequantizeLinear keeps its parameters (as fold_dequantize's results do), so
 * the QDQ import can tell which weights are wider than its 8-bit kernels. */
static int keep_params(lb_onnx_ctx *c, lb_onnx_wide *w, uint32_t out) {
  const lb_value *s = V(w->s), *z = V(w->z);
  uint32_t n = (uint32_t)lb_value_numel(s);
  float *sc = lb_arena_array(&c->g->arena, n, sizeof *sc);
  int32_t *zp = lb_arena_array(&c->g->arena, n, sizeof *zp);
  if (!sc || !zp) return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  for (uint32_t k = 0; k < n; k++) {
    sc[k] = ((const float *)s->data)[k];
    zp[k] = ld_int(z, lb_value_numel(z) > 1 ? k : 0) + w->z_shift;
  }
  lb_quant *q = &V(out)->q;
  *q = (lb_quant){n > 1 ? w->axis : -1, n, sc, zp};
  return 0;
}

int lb_onnx_wide_after(lb_onnx_ctx *c, lb_onnx_wide *w, uint32_t out) {
  if (out == LB_NONE) return 0;
  if (w->out_u16) LB_TRY(lb_onnx_wide_mark(w, out, c->diag));
  if (w->fold_q && V(out)->data && V(out)->dtype == LB_DTYPE_F32) LB_TRY(keep_params(c, w, out));
  w->out_u16 = w->fold_q = 0;
  return 0;
}
