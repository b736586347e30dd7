/* ONNX op lowerings: one function per ONNX op turning its attributes (and the inputs that act as
 * attributes: shapes, axes, pads, clip bounds) into an IR op with normalized lb_attrs: axes are
 * non-negative, auto_pad is resolved to explicit pads, opset-dependent defaults are applied.
 * Invariant: a lowering only reads inputs the driver resolved; it reports errors without a
 * location (the driver prefixes the node path). */
#include "onnx_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define V(id) lb_onnx_val(c, (id))
#define ERR(...) lb_diag_err(c->diag, LB_ERR_INPUT, __VA_ARGS__)

/* Bounds that keep shape arithmetic (in + pads - (k-1)*d) far from int64 overflow. */
#define MAX_STRIDE ((int64_t)1 << 20)
#define MAX_PAD ((int64_t)1 << 31)

/* ---- attributes --------------------------------------------------------------------------- */

static const char *const attr_type_names[] = {"UNDEFINED", "FLOAT",   "INT",     "STRING",
                                              "TENSOR",    "GRAPH",   "FLOATS",  "INTS",
                                              "STRINGS",   "TENSORS", "GRAPHS",  "SPARSE_TENSOR",
                                              "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};

static const Onnx__AttributeProto *find_attr(lb_onnx_ctx *c, const char *name) {
  for (size_t i = 0; i < c->np->n_attribute; i++)
    if (c->np->attribute[i]->name && !strcmp(c->np->attribute[i]->name, name))
      return c->np->attribute[i];
  return NULL;
}

/* Finds attribute name and checks its type; *a = NULL when absent. */
static int get_attr(lb_onnx_ctx *c, const char *name, int type, const Onnx__AttributeProto **a) {
  *a = find_attr(c, name);
  if (!*a || (int)(*a)->type == type) return 0;
  int t = (int)(*a)->type;
  const char *got = t >= 0 && t < 15 ? attr_type_names[t] : "unknown";
  return ERR("attribute \"%s\": expected %s, got %s", name, attr_type_names[type], got);
}

static int get_int(lb_onnx_ctx *c, const char *name, int64_t def, int64_t *out) {
  const Onnx__AttributeProto *a;
  LB_TRY(get_attr(c, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, &a));
  *out = a ? a->i : def;
  return 0;
}

/* An INT attribute that must lie in [lo, hi]. */
static int get_int_in(lb_onnx_ctx *c, const char *name, int64_t def, int64_t lo, int64_t hi,
                      int64_t *out) {
  LB_TRY(get_int(c, name, def, out));
  if (*out < lo || *out > hi)
    return ERR("attribute \"%s\" = %lld out of range [%lld, %lld]", name, (long long)*out,
               (long long)lo, (long long)hi);
  return 0;
}

static int get_float(lb_onnx_ctx *c, const char *name, float def, float *out) {
  const Onnx__AttributeProto *a;
  LB_TRY(get_attr(c, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, &a));
  *out = a ? a->f : def;
  return 0;
}

/* INTS attribute into out[max]; *n = -1 when absent. */
static int get_ints(lb_onnx_ctx *c, const char *name, int64_t *out, int max, int *n) {
  const Onnx__AttributeProto *a;
  LB_TRY(get_attr(c, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, &a));
  *n = -1;
  if (!a) return 0;
  if (a->n_ints > (size_t)max)
    return ERR("attribute \"%s\": expected at most %d values, got %zu", name, max, a->n_ints);
  *n = (int)a->n_ints;
  for (int i = 0; i < *n; i++) out[i] = a->ints[i];
  return 0;
}

/* STRING attribute compared against choices[]; *idx = index of the match (def when absent). */
static int get_choice(lb_onnx_ctx *c, const char *name, const char *const *choices, int def,
                      int *idx) {
  const Onnx__AttributeProto *a;
  LB_TRY(get_attr(c, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, &a));
  *idx = def;
  if (!a) return 0;
  for (int i = 0; choices[i]; i++)
    if (a->s.len == strlen(choices[i]) && (!a->s.len || !memcmp(a->s.data, choices[i], a->s.len))) {
      *idx = i;
      return 0;
    }
  char got[64];
  size_t n = a->s.len < sizeof got - 1 ? a->s.len : sizeof got - 1;
  if (n) memcpy(got, a->s.data, n);
  got[n] = 0;
  return ERR("attribute \"%s\" = \"%s\" is not supported", name, got);
}

/* Normalizes axis a for a tensor of the given rank (valid range [-rank, rank - 1 + extra]). */
static int norm_axis(lb_onnx_ctx *c, const char *what, int64_t a, int rank, int extra,
                     int64_t *out) {
  if (a < -rank || a >= rank + extra)
    return ERR("%s %lld out of range for rank %d", what, (long long)a, rank);
  *out = a < 0 ? a + rank : a;
  return 0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Normalizes, sorts and de-duplicates-checks an axes list. */
static int norm_axes(lb_onnx_ctx *c, int64_t *axes, int n, int rank) {
  for (int i = 0; i < n; i++) LB_TRY(norm_axis(c, "axis", axes[i], rank, 0, &axes[i]));
  qsort(axes, (size_t)n, sizeof *axes, cmp_i64);
  for (int i = 1; i < n; i++)
    if (axes[i] == axes[i - 1]) return ERR("axis %lld repeated", (long long)axes[i]);
  return 0;
}

/* Axes from an attribute (opset < from_opset) or the constant input in_idx; *n = -1 if absent. */
static int get_axes(lb_onnx_ctx *c, int64_t from_opset, const uint32_t *in, uint32_t n_in,
                    uint32_t in_idx, int64_t *axes, int *n) {
  if (c->opset < from_opset) return get_ints(c, "axes", axes, LB_MAX_RANK, n);
  if (find_attr(c, "axes"))
    return ERR("attribute \"axes\" is an input since opset %lld", (long long)from_opset);
  *n = -1;
  if (n_in <= in_idx || in[in_idx] == LB_NONE) return 0;
  return lb_onnx_const_ints(c, in[in_idx], "input[1] (axes)", axes, LB_MAX_RANK, n);
}

/* ---- conv and pooling --------------------------------------------------------------------- */

static int spatial_list(lb_onnx_ctx *c, const char *name, int ns, int64_t def, int64_t lo,
                        int64_t hi, int64_t *out) {
  int64_t v[2 * LB_MAX_SPATIAL];
  int n, want = strcmp(name, "pads") ? ns : 2 * ns;
  LB_TRY(get_ints(c, name, v, 2 * LB_MAX_SPATIAL, &n));
  if (n >= 0 && n != want) return ERR("attribute \"%s\": expected %d values, got %d", name, want, n);
  for (int i = 0; i < want; i++) {
    out[i] = n < 0 ? def : v[i];
    if (out[i] < lo || out[i] > hi)
      return ERR("attribute \"%s\": value %lld out of range [%lld, %lld]", name,
                 (long long)out[i], (long long)lo, (long long)hi);
  }
  return 0;
}

/* auto_pad SAME_*: output = ceil(in / stride); the odd pixel of padding goes at the end for
 * SAME_UPPER and at the beginning for SAME_LOWER. */
static void same_pads(lb_attrs *a, const lb_value *x, int lower) {
  for (int i = 0; i < a->n_spatial; i++) {
    int64_t in = x->dims[2 + i], s = a->strides[i];
    int64_t out = (in + s - 1) / s;
    int64_t total = (out - 1) * s + (a->kernel[i] - 1) * a->dilations[i] + 1 - in;
    if (total < 0) total = 0;
    int64_t small = total / 2, big = total - small;
    a->pads[i] = lower ? big : small;
    a->pads[a->n_spatial + i] = lower ? small : big;
  }
}

/* strides, dilations, pads and auto_pad of Conv and the pools; kernel must be set. */
static int spatial_attrs(lb_onnx_ctx *c, lb_attrs *a, const lb_value *x, int dilations) {
  static const char *const modes[] = {"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", NULL};
  int ns = a->n_spatial, mode;
  LB_TRY(spatial_list(c, "strides", ns, 1, 1, MAX_STRIDE, a->strides));
  if (dilations)
    LB_TRY(spatial_list(c, "dilations", ns, 1, 1, MAX_STRIDE, a->dilations));
  else
    for (int i = 0; i < ns; i++) a->dilations[i] = 1;
  LB_TRY(spatial_list(c, "pads", ns, 0, 0, MAX_PAD, a->pads));
  LB_TRY(get_choice(c, "auto_pad", modes, 0, &mode));
  if (mode != 0 && find_attr(c, "pads")) {
    for (int i = 0; i < 2 * ns; i++)
      if (a->pads[i]) return ERR("attribute \"pads\" conflicts with auto_pad %s", modes[mode]);
  }
  if (mode == 1)
    for (int i = 0; i < 2 * ns; i++) a->pads[i] = 0;
  if (mode >= 2) same_pads(a, x, mode == 3);
  return 0;
}

static int need_rank(lb_onnx_ctx *c, uint32_t id, int k, int lo, int hi) {
  int r = V(id)->rank;
  if (r >= lo && r <= hi) return 0;
  if (lo == hi) return ERR("input[%d]: expected rank %d, got %d", k, lo, r);
  return ERR("input[%d]: expected rank %d to %d, got %d", k, lo, hi, r);
}

static int lower_conv(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  const lb_value *x = V(in[0]), *w = V(in[1]);
  LB_TRY(need_rank(c, in[1], 1, 3, 2 + LB_MAX_SPATIAL));
  LB_TRY(need_rank(c, in[0], 0, w->rank, w->rank));
  lb_attrs *a = &l->attr;
  a->n_spatial = w->rank - 2;
  int64_t ks[LB_MAX_SPATIAL];
  int nk;
  LB_TRY(get_ints(c, "kernel_shape", ks, LB_MAX_SPATIAL, &nk));
  for (int i = 0; i < a->n_spatial; i++) {
    a->kernel[i] = w->dims[2 + i];
    if (nk >= 0 && (nk != a->n_spatial || ks[i] != a->kernel[i]))
      return ERR("attribute \"kernel_shape\" does not match the weights' spatial dims");
  }
  LB_TRY(get_int_in(c, "group", 1, 1, INT32_MAX, &a->group));
  l->op = LB_OP_CONV;
  return spatial_attrs(c, a, x, 1);
}

static int lower_pool(lb_onnx_ctx *c, const uint32_t *in, lb_lowering *l, int dilations) {
  const lb_value *x = V(in[0]);
  LB_TRY(need_rank(c, in[0], 0, 3, 2 + LB_MAX_SPATIAL));
  lb_attrs *a = &l->attr;
  a->n_spatial = x->rank - 2;
  int64_t ceil_mode;
  LB_TRY(spatial_list(c, "kernel_shape", a->n_spatial, 0, 1, LB_ONNX_MAX_NUMEL, a->kernel));
  if (!find_attr(c, "kernel_shape")) return ERR("missing required attribute \"kernel_shape\"");
  LB_TRY(get_int_in(c, "ceil_mode", 0, 0, 1, &ceil_mode));
  a->ceil_mode = (int)ceil_mode;
  return spatial_attrs(c, a, x, dilations);
}

static int lower_maxpool(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  int64_t order;
  LB_TRY(get_int_in(c, "storage_order", 0, 0, 0, &order));
  if (c->np->n_output > 1 && c->np->output[1] && *c->np->output[1])
    return ERR("output[1] \"%s\" (Indices) is not supported", c->np->output[1]);
  l->op = LB_OP_MAX_POOL;
  return lower_pool(c, in, l, 1);
}

static int lower_avgpool(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  int64_t cip;
  LB_TRY(get_int_in(c, "count_include_pad", 0, 0, 1, &cip));
  l->attr.count_include_pad = (int)cip;
  l->op = LB_OP_AVG_POOL;
  return lower_pool(c, in, l, 1);
}

static int lower_gap(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  LB_TRY(need_rank(c, in[0], 0, 3, 2 + LB_MAX_SPATIAL));
  l->op = LB_OP_GLOBAL_AVG_POOL;
  return 0;
}

static int lower_batchnorm(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  int64_t spatial, training;
  float momentum;
  LB_TRY(get_int_in(c, "spatial", 1, 1, 1, &spatial));
  LB_TRY(get_int_in(c, "training_mode", 0, 0, 0, &training));
  LB_TRY(get_float(c, "momentum", 0.9f, &momentum)); /* training only: type-checked, unused */
  LB_TRY(get_float(c, "epsilon", 1e-5f, &l->attr.epsilon));
  l->op = LB_OP_BATCHNORM;
  return 0;
}

/* ---- dense and elementwise ---------------------------------------------------------------- */

static int lower_gemm(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  int64_t ta, tb;
  LB_TRY(need_rank(c, in[0], 0, 2, 2));
  LB_TRY(need_rank(c, in[1], 1, 2, 2));
  LB_TRY(get_int_in(c, "transA", 0, 0, 1, &ta));
  LB_TRY(get_int_in(c, "transB", 0, 0, 1, &tb));
  LB_TRY(get_float(c, "alpha", 1.0f, &l->attr.alpha));
  LB_TRY(get_float(c, "beta", 1.0f, &l->attr.beta));
  l->attr.trans_a = (int)ta;
  l->attr.trans_b = (int)tb;
  l->op = LB_OP_GEMM;
  return 0;
}

static int lower_leaky(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  l->op = LB_OP_LEAKY_RELU;
  return get_float(c, "alpha", 0.01f, &l->attr.alpha);
}

static int lower_hardsigmoid(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  l->op = LB_OP_HARD_SIGMOID;
  LB_TRY(get_float(c, "alpha", 0.2f, &l->attr.alpha));
  return get_float(c, "beta", 0.5f, &l->attr.beta);
}

/* Clip: bounds are attributes before opset 11 and optional constant inputs after. */
static int lower_clip(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  l->op = LB_OP_CLIP;
  l->n_in = 1;
  if (c->opset < 11) {
    LB_TRY(get_float(c, "min", -INFINITY, &l->attr.clip_min));
    return get_float(c, "max", INFINITY, &l->attr.clip_max);
  }
  if (c->np->n_attribute) return ERR("Clip's min and max are inputs since opset 11");
  double lo = -INFINITY, hi = INFINITY;
  if (n_in > 1 && in[1] != LB_NONE) LB_TRY(lb_onnx_const_scalar(c, in[1], "input[1] (min)", &lo));
  if (n_in > 2 && in[2] != LB_NONE) LB_TRY(lb_onnx_const_scalar(c, in[2], "input[2] (max)", &hi));
  l->attr.clip_min = (float)lo;
  l->attr.clip_max = (float)hi;
  return 0;
}

static int lower_softmax(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  int64_t axis;
  int rank = V(in[0])->rank;
  LB_TRY(get_int(c, "axis", c->opset < 13 ? 1 : -1, &axis));
  LB_TRY(norm_axis(c, "attribute \"axis\"", axis, rank, 0, &l->attr.axis));
  l->attr.legacy_2d = c->opset < 13;
  l->op = LB_OP_SOFTMAX;
  return 0;
}

/* ---- shape and data movement ------------------------------------------------------------- */

static int lower_concat(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  int64_t axis;
  if (!find_attr(c, "axis")) return ERR("missing required attribute \"axis\"");
  LB_TRY(get_int(c, "axis", 0, &axis));
  LB_TRY(norm_axis(c, "attribute \"axis\"", axis, V(in[0])->rank, 0, &l->attr.axis));
  l->op = LB_OP_CONCAT;
  return 0;
}

static int lower_flatten(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  int64_t axis;
  LB_TRY(get_int(c, "axis", 1, &axis));
  LB_TRY(norm_axis(c, "attribute \"axis\"", axis, V(in[0])->rank, 1, &l->attr.axis));
  l->op = LB_OP_FLATTEN;
  return 0;
}

static int lower_gather(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  int64_t axis;
  LB_TRY(get_int(c, "axis", 0, &axis));
  LB_TRY(norm_axis(c, "attribute \"axis\"", axis, V(in[0])->rank, 0, &l->attr.axis));
  l->op = LB_OP_GATHER;
  return 0;
}

static int lower_transpose(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  int rank = V(in[0])->rank, n;
  lb_attrs *a = &l->attr;
  LB_TRY(get_ints(c, "perm", a->axes, LB_MAX_RANK, &n));
  if (n >= 0 && n != rank) return ERR("attribute \"perm\" has %d values for rank %d", n, rank);
  int seen[LB_MAX_RANK] = {0};
  for (int i = 0; i < rank; i++) {
    if (n < 0) a->axes[i] = rank - 1 - i;
    LB_TRY(norm_axis(c, "perm value", a->axes[i], rank, 0, &a->axes[i]));
    if (seen[a->axes[i]]++) return ERR("attribute \"perm\" is not a permutation");
  }
  a->n_axes = rank;
  l->op = LB_OP_TRANSPOSE;
  return 0;
}

/* Reshape: the shape input must be constant; 0 copies the input dim (unless allowzero) and
 * one -1 takes the remaining elements. The IR node keeps only the data input. */
static int lower_reshape(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  const lb_value *x = V(in[0]);
  int64_t allowzero, *d = l->out_dims, known = 1;
  int n, infer_at = -1;
  LB_TRY(get_int_in(c, "allowzero", 0, 0, 1, &allowzero));
  LB_TRY(lb_onnx_const_ints(c, in[1], "input[1] (shape)", d, LB_MAX_RANK, &n));
  for (int i = 0; i < n; i++) {
    if (d[i] == 0 && !allowzero) {
      if (i >= x->rank) return ERR("shape[%d] = 0 copies a dim the input does not have", i);
      d[i] = x->dims[i];
    }
    if (d[i] == -1) {
      if (infer_at >= 0) return ERR("shape has more than one -1");
      infer_at = i;
      continue;
    }
    if (d[i] < 0) return ERR("shape[%d] = %lld is invalid", i, (long long)d[i]);
    if (d[i] > LB_ONNX_MAX_NUMEL || (d[i] && known > LB_ONNX_MAX_NUMEL / d[i]))
      return ERR("shape is too large");
    known *= d[i];
  }
  int64_t total = lb_value_numel(x);
  if (infer_at >= 0) {
    if (known == 0 || total % known)
      return ERR("cannot infer the -1 in the shape: %lld elements into blocks of %lld",
                 (long long)total, (long long)known);
    d[infer_at] = total / known;
  }
  l->out_rank = n;
  l->n_in = 1;
  l->op = LB_OP_RESHAPE;
  return 0;
}

static int lower_squeeze(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  const lb_value *x = V(in[0]);
  lb_attrs *a = &l->attr;
  int n;
  LB_TRY(get_axes(c, 13, in, n_in, 1, a->axes, &n));
  if (n < 0) { /* no axes: every dim of size 1 */
    n = 0;
    for (int i = 0; i < x->rank; i++)
      if (x->dims[i] == 1) a->axes[n++] = i;
  }
  LB_TRY(norm_axes(c, a->axes, n, x->rank));
  for (int i = 0; i < n; i++)
    if (x->dims[a->axes[i]] != 1)
      return ERR("cannot squeeze axis %lld of size %lld", (long long)a->axes[i],
                 (long long)x->dims[a->axes[i]]);
  a->n_axes = n;
  l->n_in = 1;
  l->op = LB_OP_SQUEEZE;
  return 0;
}

static int lower_unsqueeze(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  lb_attrs *a = &l->attr;
  int n;
  LB_TRY(get_axes(c, 13, in, n_in, 1, a->axes, &n));
  if (n < 0) return ERR("Unsqueeze needs axes");
  int out_rank = V(in[0])->rank + n;
  if (out_rank > LB_MAX_RANK) return ERR("result rank %d exceeds %d", out_rank, LB_MAX_RANK);
  LB_TRY(norm_axes(c, a->axes, n, out_rank));
  a->n_axes = n;
  l->n_in = 1;
  l->op = LB_OP_UNSQUEEZE;
  return 0;
}

/* Pad's pads (begins then ends) over axes[] into the IR's full-rank layout. */
static int set_pads(lb_onnx_ctx *c, lb_attrs *a, int rank, const int64_t *p, int np,
                    const int64_t *axes, int n_axes) {
  if (np != 2 * n_axes) return ERR("pads has %d values, expected %d", np, 2 * n_axes);
  for (int i = 0; i < 2 * rank; i++) a->pads[i] = 0;
  for (int i = 0; i < n_axes; i++) {
    if (p[i] < -MAX_PAD || p[i] > MAX_PAD || p[n_axes + i] < -MAX_PAD || p[n_axes + i] > MAX_PAD)
      return ERR("pads value out of range");
    a->pads[axes[i]] = p[i];
    a->pads[rank + axes[i]] = p[n_axes + i];
  }
  return 0;
}

static int lower_pad(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  static const char *const modes[] = {"constant", "reflect", "edge", NULL};
  int rank = V(in[0])->rank, mode, np, n_axes = rank;
  int64_t p[2 * LB_MAX_RANK], axes[LB_MAX_RANK];
  LB_TRY(get_choice(c, "mode", modes, 0, &mode));
  l->attr.pad_mode = (lb_pad_mode)mode;
  for (int i = 0; i < rank; i++) axes[i] = i;
  if (c->opset < 11) {
    LB_TRY(get_ints(c, "pads", p, 2 * LB_MAX_RANK, &np));
    if (np < 0) return ERR("missing required attribute \"pads\"");
    LB_TRY(get_float(c, "value", 0.0f, &l->attr.pad_value));
  } else {
    if (find_attr(c, "pads") || find_attr(c, "value"))
      return ERR("Pad's pads and value are inputs since opset 11");
    if (n_in < 2 || in[1] == LB_NONE) return ERR("input[1] (pads) is required");
    LB_TRY(lb_onnx_const_ints(c, in[1], "input[1] (pads)", p, 2 * LB_MAX_RANK, &np));
    double v = 0;
    if (n_in > 2 && in[2] != LB_NONE)
      LB_TRY(lb_onnx_const_scalar(c, in[2], "input[2] (constant_value)", &v));
    l->attr.pad_value = (float)v;
    if (n_in > 3 && in[3] != LB_NONE) {
      LB_TRY(lb_onnx_const_ints(c, in[3], "input[3] (axes)", axes, LB_MAX_RANK, &n_axes));
      for (int i = 0; i < n_axes; i++) LB_TRY(norm_axis(c, "axis", axes[i], rank, 0, &axes[i]));
    }
  }
  l->n_in = 1;
  l->op = LB_OP_PAD;
  return set_pads(c, &l->attr, rank, p, np, axes, n_axes);
}

/* Identity/Dropout are aliases, except when the result is a graph output: then an identity
 * node keeps the output's own name and buffer. */
static int alias_or_identity(lb_onnx_ctx *c, const uint32_t *in, lb_lowering *l);

static int lower_identity(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  return alias_or_identity(c, in, l);
}

static int lower_dropout(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  float ratio;
  int64_t seed;
  LB_TRY(get_float(c, "ratio", 0.5f, &ratio)); /* training only: type-checked, unused */
  LB_TRY(get_int(c, "seed", 0, &seed));
  if (n_in > 2 && in[2] != LB_NONE) {
    double t;
    LB_TRY(lb_onnx_const_scalar(c, in[2], "input[2] (training_mode)", &t));
    if (t != 0) return ERR("training_mode is true; only inference is supported");
  }
  if (c->np->n_output > 1 && c->np->output[1] && *c->np->output[1]) {
    /* In inference the mask is all true: a constant, unless it would be too large to hold. */
    const lb_value *x = lb_onnx_val(c, in[0]);
    int64_t numel = lb_value_numel(x);
    if (numel > (int64_t)LB_ONNX_MAX_FOLD_BYTES) {
      LB_TRY(lb_onnx_poison(c, c->np->output[1]));
    } else {
      unsigned char *ones = lb_malloc((size_t)numel);
      if (!ones) return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
      memset(ones, 1, (size_t)numel);
      int rc = lb_onnx_def_const(c, 1, LB_DTYPE_BOOL, x->rank, x->dims, ones, (size_t)numel);
      lb_free(ones);
      LB_TRY(rc);
    }
  }
  return alias_or_identity(c, in, l);
}

static int lower_shape(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  const lb_value *x = V(in[0]);
  int64_t start, end, r = x->rank, out[LB_MAX_RANK];
  LB_TRY(get_int(c, "start", 0, &start));
  LB_TRY(get_int(c, "end", r, &end));
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = start < 0 ? 0 : start > r ? r : start;
  end = end < 0 ? 0 : end > r ? r : end;
  int64_t n = end > start ? end - start : 0;
  for (int64_t i = 0; i < n; i++) out[i] = x->dims[start + i];
  l->kind = LB_LOWER_DONE;
  return lb_onnx_def_const(c, 0, LB_DTYPE_I64, 1, &n, out, (size_t)n * sizeof(int64_t));
}

/* Constant: exactly one of value, value_float(s), value_int(s). */
static int lower_constant(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  if (c->np->n_attribute != 1) return ERR("expected exactly one value attribute");
  const Onnx__AttributeProto *a = c->np->attribute[0];
  const char *an = a->name;
  l->kind = LB_LOWER_DONE;
  if (!strcmp(an, "value")) {
    LB_TRY(get_attr(c, an, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR, &a));
    if (!a->t) return ERR("attribute \"value\" has no tensor");
    lb_tensor t;
    size_t nb;
    int rc = lb_onnx_decode_tensor(a->t, &t, &nb, c->diag);
    if (rc) {
      lb_diag_prefix(c->diag, "attribute \"value\"");
      return rc;
    }
    rc = lb_onnx_def_const(c, 0, t.dtype, t.rank, t.dims, t.data, nb);
    lb_free(t.data);
    return rc;
  }
  if (!strcmp(an, "value_float")) {
    float f;
    LB_TRY(get_float(c, an, 0, &f));
    return lb_onnx_def_const(c, 0, LB_DTYPE_F32, 0, NULL, &f, sizeof f);
  }
  if (!strcmp(an, "value_int")) {
    int64_t i;
    LB_TRY(get_int(c, an, 0, &i));
    return lb_onnx_def_const(c, 0, LB_DTYPE_I64, 0, NULL, &i, sizeof i);
  }
  if (!strcmp(an, "value_floats")) {
    LB_TRY(get_attr(c, an, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS, &a));
    int64_t n = (int64_t)a->n_floats;
    return lb_onnx_def_const(c, 0, LB_DTYPE_F32, 1, &n, a->floats, a->n_floats * sizeof(float));
  }
  LB_TRY(get_attr(c, an, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, &a));
  int64_t n = (int64_t)a->n_ints;
  return lb_onnx_def_const(c, 0, LB_DTYPE_I64, 1, &n, a->ints, a->n_ints * sizeof(int64_t));
}

static int lower_reducemean(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  lb_attrs *a = &l->attr;
  int64_t keepdims, noop;
  int n;
  LB_TRY(get_int_in(c, "keepdims", 1, 0, 1, &keepdims));
  LB_TRY(get_int_in(c, "noop_with_empty_axes", 0, 0, 1, &noop));
  LB_TRY(get_axes(c, 18, in, n_in, 1, a->axes, &n));
  if (n <= 0 && noop) return alias_or_identity(c, in, l);
  if (n < 0) n = 0;
  LB_TRY(norm_axes(c, a->axes, n, V(in[0])->rank));
  a->n_axes = n;
  a->keepdims = (int)keepdims;
  l->n_in = 1;
  l->op = LB_OP_REDUCE_MEAN;
  return 0;
}

/* QuantizeLinear / DequantizeLinear: per-tensor (scalar scale, attr.axis = -1) or per-axis
 * (1-D scale along the normalized axis); zero points are u8 or i8. */
static int lower_qdq(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l,
                     lb_op op) {
  int64_t axis, block;
  LB_TRY(get_int(c, "axis", 1, &axis));
  LB_TRY(get_int_in(c, "block_size", 0, 0, 0, &block));
  const lb_value *s = V(in[1]);
  if (s->rank > 1) return ERR("input[1] (scale): expected rank 0 or 1, got %d", s->rank);
  if (n_in > 2) {
    lb_dtype zt = V(in[2])->dtype;
    if (zt != LB_DTYPE_U8 && zt != LB_DTYPE_I8 && !(op == LB_OP_DEQUANTIZE && zt == LB_DTYPE_I32))
      return ERR("input[2] (zero_point): %s is not supported (uint8, int8)", lb_dtype_name(zt));
  }
  l->attr.axis = -1;
  if (s->rank == 1 && lb_value_numel(s) != 1)
    LB_TRY(norm_axis(c, "attribute \"axis\"", axis, V(in[0])->rank, 0, &l->attr.axis));
  l->op = op;
  return 0;
}

static int lower_quantize(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  int64_t sat, odt;
  LB_TRY(get_int_in(c, "saturate", 1, 1, 1, &sat));
  LB_TRY(get_int(c, "output_dtype", 0, &odt));
  if (odt != 0 && odt != 2 && odt != 3)
    return ERR("attribute \"output_dtype\" = %lld is not supported (uint8, int8)", (long long)odt);
  if (odt && n_in < 3 && odt == 3) return ERR("output_dtype int8 without a zero point");
  return lower_qdq(c, in, n_in, l, LB_OP_QUANTIZE);
}

/* A DequantizeLinear of constants (a QDQ model's weights and biases) is folded here rather than
 * by the importer, so that the f32 constant keeps the integer tensor's scale and zero point in
 * its lb_quant: QDQ import (passes/realize.c, qdq_to_int) re-quantizes it exactly. */
static int fold_dequantize(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  const lb_value *x = V(in[0]), *s = V(in[1]), *z = n_in > 2 ? V(in[2]) : NULL;
  int64_t n = lb_value_numel(x), ns = lb_value_numel(s), inner = 1;
  int ax = ns > 1 ? (int)l->attr.axis : -1;
  if ((ax >= 0 && x->dims[ax] != ns) || (z && lb_value_numel(z) != ns))
    return ERR("scale and zero point need %lld values, got %lld and %lld",
               (long long)(ax >= 0 ? x->dims[ax] : 1), (long long)ns,
               (long long)(z ? lb_value_numel(z) : ns));
  for (int i = ax + 1; ax >= 0 && i < x->rank; i++) inner *= x->dims[i];
  float *y = lb_malloc((size_t)(n ? n : 1) * sizeof *y), *sc = lb_malloc((size_t)ns * sizeof *sc);
  int32_t *zp = lb_malloc((size_t)ns * sizeof *zp);
  int rc = !y || !sc || !zp ? lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory") : 0;
  for (int64_t k = 0; !rc && k < ns; k++) {
    sc[k] = ((const float *)s->data)[k];
    zp[k] = !z ? 0 : z->dtype == LB_DTYPE_I8 ? ((const int8_t *)z->data)[k]
                   : z->dtype == LB_DTYPE_U8 ? ((const uint8_t *)z->data)[k]
                                             : ((const int32_t *)z->data)[k];
  }
  for (int64_t i = 0; !rc && i < n; i++) {
    int64_t k = ax >= 0 ? (i / inner) % ns : 0;
    int32_t q = x->dtype == LB_DTYPE_I8 ? ((const int8_t *)x->data)[i]
                : x->dtype == LB_DTYPE_U8 ? ((const uint8_t *)x->data)[i]
                                          : ((const int32_t *)x->data)[i];
    y[i] = ((float)q - (float)zp[k]) * sc[k];
  }
  int64_t dims[LB_MAX_RANK]; /* x points into the value array, which def_const may move */
  int rank = x->rank;
  memcpy(dims, x->dims, sizeof dims);
  if (!rc) rc = lb_onnx_def_const(c, 0, LB_DTYPE_F32, rank, dims, y, (size_t)n * sizeof *y);
  if (!rc) {
    lb_quant *q = &c->g->values[c->g->n_values - 1].q;
    q->scale = lb_arena_array(&c->g->arena, (size_t)ns, sizeof *sc);
    q->zero_point = lb_arena_array(&c->g->arena, (size_t)ns, sizeof *zp);
    if (!q->scale || !q->zero_point) rc = lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
    else {
      memcpy(q->scale, sc, (size_t)ns * sizeof *sc);
      memcpy(q->zero_point, zp, (size_t)ns * sizeof *zp);
      q->n = (uint32_t)ns, q->axis = ax;
    }
  }
  lb_free(y), lb_free(sc), lb_free(zp);
  l->kind = LB_LOWER_DONE;
  return rc;
}

static int lower_dequantize(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  LB_TRY(lower_qdq(c, in, n_in, l, LB_OP_DEQUANTIZE));
  for (uint32_t k = 0; k < n_in; k++)
    if (!V(in[k])->data) return 0;
  if (V(in[1])->dtype != LB_DTYPE_F32) return 0;
  return fold_dequantize(c, in, n_in, l);
}

static int is_graph_output(lb_onnx_ctx *c, const char *name);

/* Cast, as QDQ models and their users write it: scales stored as double, int32 bias paths,
 * u8/i8/i32 image inputs. A constant is converted here (float -> int truncates toward zero and
 * saturates, int -> narrower int wraps, as numpy does); a cast to the same dtype is an alias;
 * a run-time u8/i8/i32 -> float cast becomes DequantizeLinear(x, 1.0), which computes exactly
 * Cast's (float)x. Other run-time casts are refused (no IR op for them). */
static double cast_get(const lb_value *x, int64_t i) {
  switch (x->dtype) {
  case LB_DTYPE_F32: return ((const float *)x->data)[i];
  case LB_DTYPE_F64: return ((const double *)x->data)[i];
  case LB_DTYPE_I64: return (double)((const int64_t *)x->data)[i];
  case LB_DTYPE_I32: return ((const int32_t *)x->data)[i];
  case LB_DTYPE_I16: return ((const int16_t *)x->data)[i];
  case LB_DTYPE_I8: return ((const int8_t *)x->data)[i];
  case LB_DTYPE_U8: case LB_DTYPE_BOOL: return ((const uint8_t *)x->data)[i];
  default: return 0;
  }
}

static int64_t cast_int(const lb_value *x, int64_t i) {
  if (x->dtype == LB_DTYPE_I64) return ((const int64_t *)x->data)[i];
  double v = trunc(cast_get(x, i));
  return v != v ? 0 : v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN : (int64_t)v;
}

static void cast_put(lb_dtype t, void *y, int64_t i, const lb_value *x) {
  uint64_t u = (uint64_t)cast_int(x, i);
  switch (t) {
  case LB_DTYPE_F32: ((float *)y)[i] = (float)cast_get(x, i); break;
  case LB_DTYPE_F64: ((double *)y)[i] = cast_get(x, i); break;
  case LB_DTYPE_I64: ((int64_t *)y)[i] = (int64_t)u; break;
  case LB_DTYPE_I32: ((int32_t *)y)[i] = (int32_t)(uint32_t)u; break;
  case LB_DTYPE_I16: ((int16_t *)y)[i] = (int16_t)(uint16_t)u; break;
  case LB_DTYPE_I8: ((int8_t *)y)[i] = (int8_t)(uint8_t)u; break;
  case LB_DTYPE_U8: ((uint8_t *)y)[i] = (uint8_t)u; break;
  case LB_DTYPE_BOOL: ((uint8_t *)y)[i] = cast_get(x, i) != 0; break;
  default: break;
  }
}

static int cast_const(lb_onnx_ctx *c, const lb_value *x, lb_dtype t, lb_lowering *l) {
  int64_t n = lb_value_numel(x);
  size_t bytes = lb_dtype_bytes(t, n);
  void *y = lb_malloc(bytes ? bytes : 1);
  if (!y) return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  for (int64_t i = 0; i < n; i++) cast_put(t, y, i, x);
  int64_t dims[LB_MAX_RANK]; /* x points into the value array, which def_const may move */
  memcpy(dims, x->dims, sizeof dims);
  int rc = lb_onnx_def_const(c, 0, t, x->rank, dims, y, bytes);
  lb_free(y);
  l->kind = LB_LOWER_DONE;
  return rc;
}

static int lower_cast(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {
  (void)n_in;
  const Onnx__AttributeProto *a;
  lb_dtype t;
  LB_TRY(get_attr(c, "to", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, &a));
  if (!a) return ERR("attribute \"to\" is required");
  if (a->i < INT32_MIN || a->i > INT32_MAX || lb_onnx_dtype((int32_t)a->i, &t, c->diag)) {
    lb_diag_prefix(c->diag, "attribute \"to\"");
    return LB_ERR_INPUT;
  }
  const lb_value *x = V(in[0]);
  if (x->dtype == t) return alias_or_identity(c, in, l);
  if (x->data) return cast_const(c, x, t, l);
  if (t != LB_DTYPE_F32 ||
      (x->dtype != LB_DTYPE_U8 && x->dtype != LB_DTYPE_I8 && x->dtype != LB_DTYPE_I32))
    return ERR("Cast of a run-time %s tensor to %s is not supported (only uint8, int8 and int32 "
               "to float)", lb_dtype_name(x->dtype), lb_dtype_name(t));
  char name[256];
  float one = 1.0f;
  snprintf(name, sizeof name, "%.200s:cast_scale", c->np->output[0] ? c->np->output[0] : "");
  uint32_t s = lb_graph_add_const(c->g, name, LB_DTYPE_F32, 0, NULL, &one, sizeof one);
  if (s == LB_NONE) return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  l->op = LB_OP_DEQUANTIZE;
  l->in[1] = s, l->n_in = 2;
  l->attr.axis = -1;
  return 0;
}

static int alias_or_identity(lb_onnx_ctx *c, const uint32_t *in, lb_lowering *l) {
  if (is_graph_output(c, c->np->output[0])) {
    l->op = LB_OP_IDENTITY;
    l->n_in = 1;
    return 0;
  }
  l->kind = LB_LOWER_ALIAS;
  l->alias = in[0];
  return 0;
}

/* ---- the table ---------------------------------------------------------------------------- */

#define SIMPLE(fname, OP)                                                                        \
  static int fname(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l) {          \
    l->op = LB_OP_##OP;                                                                          \
    return 0;                                                                                    \
  }
SIMPLE(lower_matmul, MATMUL)
SIMPLE(lower_add, ADD)
SIMPLE(lower_sub, SUB)
SIMPLE(lower_mul, MUL)
SIMPLE(lower_div, DIV)
SIMPLE(lower_relu, RELU)
SIMPLE(lower_sigmoid, SIGMOID)
SIMPLE(lower_tanh, TANH)
SIMPLE(lower_hardswish, HARD_SWISH)
#undef SIMPLE

static const lb_onnx_op op_table[] = {
    /* ONNX op             min_in max_in max_out attributes                      lowering */
    {"Conv", 2, 3, 1, "auto_pad dilations group kernel_shape pads strides", lower_conv},
    {"Gemm", 2, 3, 1, "alpha beta transA transB", lower_gemm},
    {"MatMul", 2, 2, 1, "", lower_matmul},
    {"Add", 2, 2, 1, "", lower_add},
    {"Sub", 2, 2, 1, "", lower_sub},
    {"Mul", 2, 2, 1, "", lower_mul},
    {"Div", 2, 2, 1, "", lower_div},
    {"Relu", 1, 1, 1, "", lower_relu},
    {"LeakyRelu", 1, 1, 1, "alpha", lower_leaky},
    {"Clip", 1, 3, 1, "min max", lower_clip},
    {"Sigmoid", 1, 1, 1, "", lower_sigmoid},
    {"Tanh", 1, 1, 1, "", lower_tanh},
    {"HardSigmoid", 1, 1, 1, "alpha beta", lower_hardsigmoid},
    {"HardSwish", 1, 1, 1, "", lower_hardswish},
    {"Softmax", 1, 1, 1, "axis", lower_softmax},
    {"MaxPool", 1, 1, 2, "auto_pad ceil_mode dilations kernel_shape pads storage_order strides",
     lower_maxpool},
    {"AveragePool", 1, 1, 1,
     "auto_pad ceil_mode count_include_pad dilations kernel_shape pads strides", lower_avgpool},
    {"GlobalAveragePool", 1, 1, 1, "", lower_gap},
    {"BatchNormalization", 5, 5, 1, "epsilon momentum spatial training_mode", lower_batchnorm},
    {"Concat", 1, 64, 1, "axis", lower_concat},
    {"Flatten", 1, 1, 1, "axis", lower_flatten},
    {"Reshape", 2, 2, 1, "allowzero", lower_reshape},
    {"Transpose", 1, 1, 1, "perm", lower_transpose},
    {"Squeeze", 1, 2, 1, "axes", lower_squeeze},
    {"Unsqueeze", 1, 2, 1, "axes", lower_unsqueeze},
    {"Pad", 1, 4, 1, "mode pads value", lower_pad},
    {"Gather", 2, 2, 1, "axis", lower_gather},
    {"Identity", 1, 1, 1, "", lower_identity},
    {"Dropout", 1, 3, 2, "ratio seed", lower_dropout},
    {"Constant", 0, 0, 1, "value value_float value_floats value_int value_ints", lower_constant},
    {"Shape", 1, 1, 1, "start end", lower_shape},
    {"ReduceMean", 1, 2, 1, "axes keepdims noop_with_empty_axes", lower_reducemean},
    {"QuantizeLinear", 2, 3, 1, "axis block_size output_dtype saturate", lower_quantize},
    {"DequantizeLinear", 2, 3, 1, "axis block_size", lower_dequantize},
    {"Cast", 1, 1, 1, "saturate to", lower_cast},
};

const lb_onnx_op *lb_onnx_find_op(const char *op_type) {
  for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
    if (!strcmp(op_table[i].name, op_type)) return &op_table[i];
  return NULL;
}

void lb_onnx_list_ops(char *buf, size_t size) {
  size_t n = 0;
  buf[0] = 0;
  for (size_t i = 0; i < sizeof op_table / sizeof op_table[0] && n < size; i++) {
    int w = snprintf(buf + n, size - n, "%s%s", i ? " " : "", op_table[i].name);
    if (w < 0) break;
    n += (size_t)w;
  }
}

static int is_graph_output(lb_onnx_ctx *c, const char *name) {
  const Onnx__GraphProto *gp = c->graph;
  for (size_t i = 0; i < gp->n_output; i++)
    if (gp->output[i]->name && !strcmp(gp->output[i]->name, name)) return 1;
  return 0;
}
