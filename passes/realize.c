/* Realize: builds, from a prepared fp32 graph and a plan with parameters, a new graph that is
 * integer-only where the plan says so (LB_REALIZE_INT), or the same computation simulated in
 * fp32 with quantize->dequantize on every quantized edge (LB_REALIZE_SIM, LB_REALIZE_QDQ).
 * Every value of the old graph has up to three versions in the new one, made on demand: float,
 * integer, fake-quantized. Invariant: graph inputs and outputs keep names, dtypes and shapes;
 * integer values carry their lb_quant parameters, so the interpreter needs nothing else. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quantize.h"

typedef struct rz {
  const lb_graph *g;
  const lb_qplan *p;
  lb_realize_mode mode;
  lb_graph *ng;
  uint32_t *fv, *iv, *qv; /* float, integer, fake-quantized versions of old values */
  lb_qval *ov; /* (bin) parameters replacing the plan's (n == 0: none), lazily allocated */
} rz;

/* The parameters of old value v: the plan's, unless a binary layer replaced them. */
static const lb_qval *qv(const rz *r, uint32_t v) {
  return r->ov && r->ov[v].n ? &r->ov[v] : &r->p->v[v];
}

#define TRY_ID(x)                                                                                \
  do {                                                                                           \
    if ((x) == LB_NONE) return LB_NONE;                                                          \
  } while (0)

/* "base" + suffix, made unique in the new graph. */
static const char *uniq(rz *r, const char *base, const char *suffix, char *buf, size_t n) {
  snprintf(buf, n, "%.200s%s", base, suffix);
  for (unsigned i = 2; lb_graph_find_value(r->ng, buf) != LB_NONE; i++)
    snprintf(buf, n, "%.200s%s.%u", base, suffix, i);
  return buf;
}

static uint32_t new_value(rz *r, uint32_t old, const char *suffix, lb_dtype t) {
  char buf[256];
  const lb_value *v = &r->g->values[old];
  return lb_graph_add_value(r->ng, uniq(r, v->name, suffix, buf, sizeof buf), t, v->rank, v->dims);
}

/* (sq) Zero point i of a tensor's parameters in the new graph. A bias's plan zero points are
 * its correction (search.h lb_search_bias_units): quant_data adds them to the integer bias,
 * which then carries zero point 0 like every int32 bias. */
static int32_t plan_zp(const lb_qval *q, uint32_t i) { return q->role == LB_QROLE_BIAS ? 0 : q->zp[i]; }

/* Copies the plan's parameters of old value `old` onto new value id. */
static int set_q(rz *r, uint32_t id, uint32_t old) {
  const lb_qval *q = qv(r, old);
  lb_quant *d = &r->ng->values[id].q;
  d->axis = q->axis;
  d->n = q->n;
  d->scale = lb_arena_array(&r->ng->arena, q->n, sizeof(float));
  d->zero_point = lb_arena_array(&r->ng->arena, q->n, sizeof(int32_t));
  if (!d->scale || !d->zero_point) return LB_ERR_NOMEM;
  memcpy(d->scale, q->scale, q->n * sizeof(float));
  for (uint32_t i = 0; i < q->n; i++) d->zero_point[i] = plan_zp(q, i);
  return 0;
}

static uint32_t add_node(rz *r, lb_op op, const char *name, const uint32_t *in, uint32_t n_in,
                         uint32_t out) {
  uint32_t id = lb_graph_add_node(r->ng, op, name, in, n_in, &out, 1);
  return id;
}

/* Storage dtype of a quantized tensor's parameters and of constants outside the integer graph
 * (QDQ export, simulation): i4/i2 values live in i8 containers there. The integer graph stores
 * i4/i2 weights packed (packed_dtype), two and four to a byte as ir.h lays them out. */
static lb_dtype storage(lb_dtype t) {
  return lb_dtype_bits(t) < 8 || lb_dtype_narrow8(t) ? LB_DTYPE_I8 : t; /* (rn) i6/i5 too */
}
static lb_dtype packed_dtype(const rz *r, lb_dtype t) {
  return r->mode == LB_REALIZE_INT && lb_dtype_bits(t) < 8 && t != LB_DTYPE_B1 ? t : storage(t);
}

/* Scale and zero-point constants for old value v (rank 0 per tensor, else [n]). */
static int qconsts(rz *r, uint32_t v, uint32_t *s, uint32_t *z) {
  const lb_qval *q = qv(r, v);
  char buf[256];
  int per = q->axis >= 0;
  int64_t dims[1] = {q->n};
  const char *name = r->g->values[v].name;
  *s = lb_graph_add_const(r->ng, uniq(r, name, ":scale", buf, sizeof buf), LB_DTYPE_F32, per,
                          dims, q->scale, q->n * sizeof(float));
  if (*s == LB_NONE) return LB_ERR_NOMEM;
  lb_dtype st = storage(q->dtype);
  size_t es = (size_t)lb_dtype_bits(st) / 8;
  unsigned char *zb = lb_malloc(q->n * 4 + 1);
  if (!zb) return LB_ERR_NOMEM;
  for (uint32_t i = 0; i < q->n; i++) {
    int32_t zz = plan_zp(q, i);
    if (es == 1) zb[i] = (unsigned char)(st == LB_DTYPE_I8 ? (uint8_t)(int8_t)zz : (uint8_t)zz);
    else memcpy(zb + i * 4, &zz, 4);
  }
  *z = lb_graph_add_const(r->ng, uniq(r, name, ":zero_point", buf, sizeof buf), st, per,
                          dims, zb, q->n * es);
  lb_free(zb);
  return *z == LB_NONE ? LB_ERR_NOMEM : 0;
}

/* q (or dq) node reading `from`, writing new value `to`, parameters of old value v. */
static int qdq_node(rz *r, lb_op op, uint32_t v, uint32_t from, uint32_t to) {
  uint32_t s, z;
  LB_TRY(qconsts(r, v, &s, &z));
  uint32_t in[3] = {from, s, z};
  uint32_t n = add_node(r, op, "", in, 3, to);
  if (n == LB_NONE) return LB_ERR_NOMEM;
  r->ng->nodes[n].attr.axis = qv(r, v)->axis >= 0 ? qv(r, v)->axis : 1;
  r->ng->nodes[n].onnx_op = op == LB_OP_QUANTIZE ? "QuantizeLinear" : "DequantizeLinear";
  return 0;
}

/* Integer values of constant v per the plan, one int32 per element (lb_malloc'd). */
static int32_t *quant_data(rz *r, uint32_t v) {
  const lb_value *c = &r->g->values[v];
  const lb_qval *q = &r->p->v[v];
  int64_t n = lb_value_numel(c), ch = q->axis >= 0 ? c->dims[q->axis] : 1, inner = 1;
  for (int i = q->axis + 1; q->axis >= 0 && i < c->rank; i++) inner *= c->dims[i];
  int32_t *out = lb_malloc((size_t)(n ? n : 1) * sizeof *out), qmin, qmax;
  if (!out) return NULL;
  lb_qrange(q->dtype, &qmin, &qmax);
  /* narrow symmetric weights: i8 -127..127, (search) i4 -7..7, i2 -1..1 */
  if (q->role == LB_QROLE_WEIGHT && q->symmetric && qmin < 0) qmin = -qmax;
  const float *x = c->data;
  for (int64_t i = 0; i < n; i++) {
    int64_t k = q->axis >= 0 ? (i / inner) % ch : 0;
    out[i] = lb_qquantize(x[i], q->scale[k], q->zp[k], qmin, qmax);
  }
  return out;
}

/* Quantized copy of constant v (dtype and parameters of the plan). */
static uint32_t quant_const(rz *r, uint32_t v, const char *suffix) {
  const lb_value *c = &r->g->values[v];
  const lb_qval *q = &r->p->v[v];
  int64_t n = lb_value_numel(c);
  lb_dtype st = packed_dtype(r, q->dtype);
  int bits = lb_dtype_bits(st);
  size_t es = (size_t)bits / 8, bytes = lb_dtype_bytes(st, n);
  int32_t *qd = quant_data(r, v);
  unsigned char *buf = lb_calloc(bytes ? bytes : 1, 1);
  uint32_t id = LB_NONE;
  if (qd && buf) {
    if (bits < 8) lb_subbyte_pack(st, qd, n, buf);
    for (int64_t i = 0; bits >= 8 && i < n; i++) {
      if (es == 1) buf[i] = st == LB_DTYPE_I8 ? (unsigned char)(int8_t)qd[i] : (unsigned char)qd[i];
      else memcpy(buf + i * 4, &qd[i], 4);
    }
    char name[256];
    id = lb_graph_add_const(r->ng, uniq(r, c->name, suffix, name, sizeof name), st, c->rank,
                            c->dims, buf, bytes);
  }
  lb_free(qd), lb_free(buf);
  if (id != LB_NONE && set_q(r, id, v)) return LB_NONE;
  return id;
}

/* Fake-quantized float copy of constant v: (q - z) * s per element. */
static uint32_t fq_const(rz *r, uint32_t v, const char *suffix) {
  const lb_value *c = &r->g->values[v];
  const lb_qval *q = &r->p->v[v];
  int64_t n = lb_value_numel(c), ch = q->axis >= 0 ? c->dims[q->axis] : 1, inner = 1;
  for (int i = q->axis + 1; q->axis >= 0 && i < c->rank; i++) inner *= c->dims[i];
  int32_t *qd = quant_data(r, v);
  float *f = lb_malloc((size_t)(n ? n : 1) * sizeof *f);
  uint32_t id = LB_NONE;
  if (qd && f) {
    for (int64_t i = 0; i < n; i++) {
      int64_t k = q->axis >= 0 ? (i / inner) % ch : 0;
      f[i] = ((float)qd[i] - (float)plan_zp(q, (uint32_t)k)) * q->scale[k];
    }
    char name[256];
    id = lb_graph_add_const(r->ng, uniq(r, c->name, suffix, name, sizeof name), LB_DTYPE_F32,
                            c->rank, c->dims, f, (size_t)n * sizeof *f);
  }
  lb_free(qd), lb_free(f);
  return id;
}

static uint32_t get_float(rz *r, uint32_t v) {
  if (r->fv[v] != LB_NONE) return r->fv[v];
  const lb_value *old = &r->g->values[v];
  if (old->data) {
    char buf[256];
    r->fv[v] = lb_graph_add_const(r->ng, uniq(r, old->name, "", buf, sizeof buf), old->dtype,
                                  old->rank, old->dims, old->data, old->nbytes);
    return r->fv[v];
  }
  LB_ASSERT(r->iv[v] != LB_NONE);
  uint32_t f = new_value(r, v, ":dq", LB_DTYPE_F32);
  TRY_ID(f);
  if (qdq_node(r, LB_OP_DEQUANTIZE, v, r->iv[v], f)) return LB_NONE;
  return r->fv[v] = f;
}

static uint32_t get_int(rz *r, uint32_t v) {
  if (r->iv[v] != LB_NONE) return r->iv[v];
  if (r->g->values[v].data) return r->iv[v] = quant_const(r, v, ":q");
  uint32_t f = get_float(r, v), q = new_value(r, v, ":q", r->p->v[v].dtype);
  TRY_ID(f);
  TRY_ID(q);
  if (set_q(r, q, v) || qdq_node(r, LB_OP_QUANTIZE, v, f, q)) return LB_NONE;
  return r->iv[v] = q;
}

/* Float value that went through quantize and dequantize with v's parameters. */
static uint32_t get_fq(rz *r, uint32_t v) {
  if (r->qv[v] != LB_NONE) return r->qv[v];
  if (r->g->values[v].data && r->mode == LB_REALIZE_SIM) return r->qv[v] = fq_const(r, v, ":fq");
  uint32_t q = r->g->values[v].data ? quant_const(r, v, ":q") : LB_NONE;
  if (q == LB_NONE) {
    uint32_t f = get_float(r, v);
    TRY_ID(f);
    q = new_value(r, v, ":q", r->p->v[v].dtype);
    TRY_ID(q);
    if (set_q(r, q, v) || qdq_node(r, LB_OP_QUANTIZE, v, f, q)) return LB_NONE;
  }
  uint32_t d = new_value(r, v, r->g->values[v].data ? "" : ":fq", LB_DTYPE_F32);
  TRY_ID(d);
  if (qdq_node(r, LB_OP_DEQUANTIZE, v, q, d)) return LB_NONE;
  return r->qv[v] = d;
}

/* A float reader of v sees it quantized: v comes out of an integer layer as 8 bits (an int32
 * accumulator output is kept at full precision, as in the integer graph up to fp32 rounding). */
static int producer_integer(const rz *r, uint32_t v) {
  uint32_t pn = r->g->values[v].producer;
  return pn != LB_NONE && r->p->l[pn].integer && r->p->v[v].role != LB_QROLE_ACC;
}

/* ---- binary layers (quant.h lb_binary_node) ------------------------------------------------
 * The search's simulation (passes/search.c) made integer: a weight is its sign (w >= 0 is +1,
 * as lb_search_quant_weights), per output channel c the unit s_b * s_w[c]; the DC part of the
 * input, t_real * s_w[c] * (sum of channel c's signs), is folded into the bias, which is
 * rounded half-even on the unit grid (a layer without a bias drops it, as the simulation does).
 * gemm weights [K, N] are stored transposed ([N, K], trans_b = 1); a matmul by a constant
 * [K, N] becomes such a gemm (an input of rank > 2 reshaped to [rows, K] and back). */

static int bin_axis(const lb_node *n) {
  return n->op == LB_OP_MATMUL || (n->op == LB_OP_GEMM && !n->attr.trans_b);
}

/* Parameters replacing the plan's for old value v (n channels, zero points 0). */
static lb_qval *override(rz *r, uint32_t v, uint32_t n, int axis) {
  if (!r->ov && !(r->ov = lb_calloc(r->g->n_values, sizeof *r->ov))) return NULL;
  lb_qval *q = &r->ov[v];
  *q = r->p->v[v];
  q->n = n, q->axis = n > 1 ? axis : -1;
  q->scale = lb_arena_array(&r->ng->arena, n, sizeof(float));
  q->zp = lb_arena_array(&r->ng->arena, n, sizeof(int32_t));
  return q->scale && q->zp ? q : NULL;
}

/* The packed signs as [channel][rest] and their sum per channel (csum, zeroed by the caller). */
static uint32_t bin_weights(rz *r, uint32_t n, int64_t *csum) {
  const lb_node *nd = &r->g->nodes[n];
  const lb_value *w = &r->g->values[nd->in[1]];
  int ax = bin_axis(nd);
  int64_t total = lb_value_numel(w), ch = w->dims[ax], inner = 1, outer = ax ? w->dims[0] : 1;
  for (int i = ax + 1; i < w->rank; i++) inner *= w->dims[i];
  int32_t *q = lb_malloc((size_t)(total ? total : 1) * sizeof *q);
  size_t nb = lb_dtype_bytes(LB_DTYPE_B1, total);
  uint8_t *bits = lb_malloc(nb + 1);
  uint32_t id = LB_NONE;
  if (q && bits) {
    for (int64_t i = 0; i < total; i++) {
      int64_t c = (i / inner) % ch, o = i / (inner * ch), j = i % inner;
      int32_t sgn = ((const float *)w->data)[i] >= 0.0f ? 1 : -1;
      q[(c * outer + o) * inner + j] = sgn;
      csum[c] += sgn;
    }
    lb_subbyte_pack(LB_DTYPE_B1, q, total, bits);
    int64_t dims[LB_MAX_RANK];
    memcpy(dims, w->dims, sizeof dims);
    if (ax) dims[0] = w->dims[1], dims[1] = w->dims[0];
    char buf[256];
    id = lb_graph_add_const(r->ng, uniq(r, w->name, ":b1", buf, sizeof buf), LB_DTYPE_B1, w->rank,
                            dims, bits, nb);
  }
  lb_free(q), lb_free(bits);
  return id;
}

/* Sets the b1 weight's parameters (unit per channel, the threshold as zero point). */
static int bin_wparams(rz *r, uint32_t n, uint32_t wid, double *unit) {
  const lb_qlayer *l = &r->p->l[n];
  const lb_qval *pw = &r->p->v[r->g->nodes[n].in[1]];
  lb_quant *q = &r->ng->values[wid].q;
  q->n = pw->n, q->axis = pw->n > 1 ? 0 : -1;
  q->scale = lb_arena_array(&r->ng->arena, pw->n, sizeof(float));
  q->zero_point = lb_arena_array(&r->ng->arena, pw->n, sizeof(int32_t));
  if (!q->scale || !q->zero_point) return LB_ERR_NOMEM;
  for (uint32_t c = 0; c < pw->n; c++) {
    unit[c] = (double)l->bin_scale * pw->scale[c];
    q->scale[c] = (float)unit[c], q->zero_point[c] = l->bin_thr;
  }
  return 0;
}

/* The int32 bias with the folded DC term (search.c fq_bias), or LB_NONE on OOM. */
static uint32_t bin_bias(rz *r, uint32_t n, const int64_t *csum, const double *unit) {
  const lb_node *nd = &r->g->nodes[n];
  const lb_value *bv = &r->g->values[nd->in[2]];
  const lb_qval *xq = &r->p->v[nd->in[0]], *pw = &r->p->v[nd->in[1]];
  double t_real = (double)(r->p->l[n].bin_thr - xq->zp[0]) * xq->scale[0];
  int64_t nb = lb_value_numel(bv);
  int32_t *q = nb == 1 || nb == r->g->values[nd->in[1]].dims[bin_axis(nd)]
                   ? lb_malloc((size_t)(nb ? nb : 1) * sizeof *q) : NULL;
  if (!q) return LB_NONE;
  for (int64_t j = 0; j < nb; j++) {
    uint32_t c = pw->n > 1 ? (uint32_t)(j % pw->n) : 0;
    double b = ((const float *)bv->data)[j] + t_real * pw->scale[c] * (double)csum[j];
    double v = nearbyint(b / unit[c]);
    q[j] = v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN : (int32_t)v;
  }
  char buf[256];
  uint32_t id = lb_graph_add_const(r->ng, uniq(r, bv->name, ":q", buf, sizeof buf), LB_DTYPE_I32,
                                   bv->rank, bv->dims, q, (size_t)nb * sizeof *q);
  lb_free(q);
  lb_qval *o = id == LB_NONE ? NULL : override(r, nd->in[2], (uint32_t)nb, 0);
  if (!o) return LB_NONE;
  for (int64_t j = 0; j < nb; j++) o->scale[j] = (float)unit[pw->n > 1 ? j % pw->n : 0], o->zp[j] = 0;
  return set_q(r, id, nd->in[2]) ? LB_NONE : id;
}

/* An int32 accumulator output is dequantized with the unit, not s_x * s_w. */
static int bin_acc_out(rz *r, uint32_t n, const double *unit) {
  uint32_t o = r->g->nodes[n].out[0];
  const lb_qval *pw = &r->p->v[r->g->nodes[n].in[1]], *po = &r->p->v[o];
  if (po->role != LB_QROLE_ACC) return 0;
  lb_qval *q = override(r, o, pw->n, po->axis);
  if (!q) return LB_ERR_NOMEM;
  for (uint32_t c = 0; c < pw->n; c++) q->scale[c] = (float)unit[c], q->zp[c] = 0;
  return 0;
}

/* A reshape of new value v to dims (the IR's reshape takes its shape from its output), writing
 * `into` (LB_NONE: a new value with v's dtype and parameters, the channel axis last); the
 * written value or LB_NONE. */
static uint32_t reshaped(rz *r, uint32_t v, int rank, const int64_t *dims, uint32_t into) {
  char buf[256];
  uint32_t out = into;
  if (out == LB_NONE) {
    const char *name = r->ng->values[v].name;
    out = lb_graph_add_value(r->ng, uniq(r, name, ":2d", buf, sizeof buf), r->ng->values[v].dtype,
                             rank, dims);
    if (out == LB_NONE) return LB_NONE;
    r->ng->values[out].q = r->ng->values[v].q;
    if (r->ng->values[out].q.n > 1) r->ng->values[out].q.axis = rank - 1;
  }
  uint32_t id = add_node(r, LB_OP_RESHAPE, "", &v, 1, out);
  if (id == LB_NONE) return LB_NONE;
  r->ng->nodes[id].onnx_op = "Reshape";
  return out;
}

/* The binary node writing y: a gemm on [rows, K] between two reshapes when a matmul's input has
 * rank > 2. */
static uint32_t bin_node(rz *r, uint32_t n, uint32_t *in, uint32_t y) {
  const lb_node *nd = &r->g->nodes[n];
  const lb_value *xv = &r->g->values[nd->in[0]], *yv = &r->g->values[nd->out[0]];
  lb_op op = nd->op == LB_OP_MATMUL ? LB_OP_GEMM : nd->op;
  uint32_t yg = y;
  if (nd->op == LB_OP_MATMUL && xv->rank > 2) {
    int64_t K = xv->dims[xv->rank - 1], N = yv->dims[yv->rank - 1];
    int64_t xd[2] = {K ? lb_value_numel(xv) / K : 0, K}, yd[2] = {xd[0], N};
    if ((in[0] = reshaped(r, in[0], 2, xd, LB_NONE)) == LB_NONE) return LB_NONE;
    char buf[256];
    yg = lb_graph_add_value(r->ng, uniq(r, yv->name, ":2d", buf, sizeof buf), r->ng->values[y].dtype, 2, yd);
    if (yg == LB_NONE) return LB_NONE;
    r->ng->values[yg].q = r->ng->values[y].q;
    if (r->ng->values[yg].q.n > 1) r->ng->values[yg].q.axis = 1;
  }
  uint32_t id = add_node(r, op, nd->name, in, nd->n_in < 4 ? nd->n_in : 4, yg);
  if (id == LB_NONE) return LB_NONE;
  lb_node *m = &r->ng->nodes[id];
  m->attr = nd->attr;
  if (nd->op == LB_OP_MATMUL) m->attr.alpha = m->attr.beta = 1.0f, m->attr.trans_a = 0;
  if (op == LB_OP_GEMM) m->attr.trans_b = 1;
  if (!(m->onnx_op = lb_arena_strdup(&r->ng->arena, nd->onnx_op))) return LB_NONE;
  return yg == y ? id : reshaped(r, yg, yv->rank, yv->dims, y);
}

static int realize_binary(rz *r, uint32_t n) {
  const lb_node *nd = &r->g->nodes[n];
  uint32_t o = nd->out[0], in[4] = {LB_NONE, LB_NONE, LB_NONE, LB_NONE};
  int64_t ch = r->g->values[nd->in[1]].dims[bin_axis(nd)];
  int64_t *csum = lb_calloc((size_t)(ch ? ch : 1), sizeof *csum);
  double *unit = lb_calloc(r->p->v[nd->in[1]].n + 1, sizeof *unit);
  int rc = csum && unit ? 0 : LB_ERR_NOMEM;
  if (!rc && (in[0] = get_int(r, nd->in[0])) == LB_NONE) rc = LB_ERR_NOMEM;
  if (!rc && (in[1] = bin_weights(r, n, csum)) == LB_NONE) rc = LB_ERR_NOMEM;
  if (!rc) rc = bin_wparams(r, n, in[1], unit);
  if (!rc && nd->n_in > 2 && nd->in[2] != LB_NONE && (in[2] = bin_bias(r, n, csum, unit)) == LB_NONE)
    rc = LB_ERR_NOMEM;
  if (!rc && nd->n_in > 3 && nd->in[3] != LB_NONE && (in[3] = get_int(r, nd->in[3])) == LB_NONE)
    rc = LB_ERR_NOMEM;
  if (!rc) rc = bin_acc_out(r, n, unit);
  lb_free(csum), lb_free(unit);
  uint32_t y = rc ? LB_NONE : new_value(r, o, "", r->p->v[o].dtype);
  if (!rc && (y == LB_NONE || set_q(r, y, o) || bin_node(r, n, in, y) == LB_NONE)) rc = LB_ERR_NOMEM;
  if (!rc) r->iv[o] = y;
  return rc;
}

/* Input k of node n as the new graph provides it. */
static uint32_t map_input(rz *r, uint32_t n, uint32_t v) {
  const lb_qval *q = &r->p->v[v];
  const lb_node *nd = &r->g->nodes[n];
  int plain = nd->n_in > 1 && nd->in[1] == v && lb_quant_plain_input(r->g, nd, 1);
  if (!r->p->l[n].integer || plain) {
    if (r->mode != LB_REALIZE_INT && producer_integer(r, v)) return get_fq(r, v);
    return get_float(r, v);
  }
  if (r->mode == LB_REALIZE_INT) return get_int(r, v);
  if (q->role == LB_QROLE_WEIGHT || q->role == LB_QROLE_BIAS) {
    if (r->mode == LB_REALIZE_SIM) return r->qv[v] != LB_NONE ? r->qv[v] : (r->qv[v] = fq_const(r, v, ""));
  }
  return get_fq(r, v);
}

static int realize_node(rz *r, uint32_t n) {
  const lb_node *nd = &r->g->nodes[n];
  uint32_t in[64], o = nd->out[0];
  if (r->p->l[n].integer && r->p->l[n].act == LB_DTYPE_B1) return realize_binary(r, n);
  for (uint32_t k = 0; k < nd->n_in; k++) {
    in[k] = nd->in[k] == LB_NONE ? LB_NONE : map_input(r, n, nd->in[k]);
    if (nd->in[k] != LB_NONE && in[k] == LB_NONE) return LB_ERR_NOMEM;
  }
  int as_int = r->p->l[n].integer && r->mode == LB_REALIZE_INT;
  uint32_t y = new_value(r, o, "", as_int ? r->p->v[o].dtype : LB_DTYPE_F32);
  if (y == LB_NONE || (as_int && set_q(r, y, o))) return LB_ERR_NOMEM;
  uint32_t id = add_node(r, nd->op, nd->name, in, nd->n_in, y);
  if (id == LB_NONE) return LB_ERR_NOMEM;
  lb_node *m = &r->ng->nodes[id];
  m->attr = nd->attr;
  m->attr.requant = as_int ? r->p->l[n].requant : 0; /* the layer's method (quant.h) */
  /* the source graph may be freed before this one: copy the string into our arena */
  m->onnx_op = lb_arena_strdup(&r->ng->arena, nd->onnx_op);
  if (!m->onnx_op) return LB_ERR_NOMEM;
  if (as_int && nd->op == LB_OP_PAD) {
    const lb_qval *q = &r->p->v[o];
    int32_t qmin, qmax;
    lb_qrange(q->dtype, &qmin, &qmax);
    m->attr.pad_value = (float)lb_qquantize(nd->attr.pad_value, q->scale[0], q->zp[0], qmin, qmax);
  }
  if (as_int) r->iv[o] = y;
  else r->fv[o] = y;
  return 0;
}

/* Graph output old value v: the float version, renamed to v's name. */
static int finish_output(rz *r, uint32_t v) {
  uint32_t f = r->mode != LB_REALIZE_INT && producer_integer(r, v) ? get_fq(r, v) : get_float(r, v);
  if (f == LB_NONE) return LB_ERR_NOMEM;
  const char *want = r->g->values[v].name;
  if (strcmp(r->ng->values[f].name, want) != 0) {
    uint32_t clash = lb_graph_find_value(r->ng, want);
    char buf[256];
    if (clash != LB_NONE) {
      const char *nn = lb_arena_strdup(&r->ng->arena, uniq(r, want, ":pre", buf, sizeof buf));
      if (!nn) return LB_ERR_NOMEM;
      r->ng->values[clash].name = nn;
    }
    r->ng->values[f].name = lb_arena_strdup(&r->ng->arena, want);
    if (!r->ng->values[f].name) return LB_ERR_NOMEM;
  }
  return lb_graph_add_output(r->ng, f);
}

static int build(rz *r) {
  const lb_graph *g = r->g;
  for (uint32_t i = 0; i < g->n_inputs; i++) {
    const lb_value *v = &g->values[g->inputs[i]];
    uint32_t id = lb_graph_add_value(r->ng, v->name, v->dtype, v->rank, v->dims);
    if (id == LB_NONE || lb_graph_add_input(r->ng, id)) return LB_ERR_NOMEM;
    r->fv[g->inputs[i]] = id;
  }
  for (uint32_t n = 0; n < g->n_nodes; n++) LB_TRY(realize_node(r, n));
  for (uint32_t i = 0; i < g->n_outputs; i++) LB_TRY(finish_output(r, g->outputs[i]));
  return 0;
}

int lb_quant_realize(const lb_graph *g, const lb_qplan *p, lb_realize_mode mode, lb_graph **out,
                     lb_diag *diag) {
  *out = NULL;
  if (p->n_values != g->n_values || p->n_nodes != g->n_nodes)
    return lb_diag_err(diag, LB_ERR_INTERNAL, "realize: the plan was made for another graph");
  for (uint32_t v = 0; v < g->n_values; v++)
    if (p->v[v].dtype != LB_DTYPE_F32 && !p->v[v].n)
      return lb_diag_err(diag, LB_ERR_INPUT, "tensor '%s' is quantized but has no scale",
                         g->values[v].name);
  uint32_t nv = g->n_values ? g->n_values : 1;
  rz r = {g, p, mode, lb_graph_new(g->name), lb_malloc(nv * sizeof(uint32_t)),
          lb_malloc(nv * sizeof(uint32_t)), lb_malloc(nv * sizeof(uint32_t)), NULL};
  int rc = !r.ng || !r.fv || !r.iv || !r.qv ? LB_ERR_NOMEM : 0;
  if (!rc) {
    memset(r.fv, 0xff, nv * sizeof(uint32_t));
    memset(r.iv, 0xff, nv * sizeof(uint32_t));
    memset(r.qv, 0xff, nv * sizeof(uint32_t));
    rc = build(&r);
  }
  if (!rc && lb_graph_compact(r.ng)) rc = LB_ERR_NOMEM;
  if (!rc) rc = lb_infer_shapes(r.ng, diag);
  if (!rc) rc = lb_graph_verify(r.ng, diag);
  lb_free(r.fv), lb_free(r.iv), lb_free(r.qv), lb_free(r.ov);
  if (rc) {
    if (rc == LB_ERR_NOMEM) lb_diag_err(diag, rc, "out of memory");
    lb_diag_prefix(diag, "realize");
    lb_graph_free(r.ng);
    return rc;
  }
  *out = r.ng;
  return 0;
}

/* ---- QDQ import ----------------------------------------------------------------------------
 * After import and the fp32 passes, a QDQ model reads DQ(int tensor) in every quantized layer
 * and writes Q(float) after it. The rewrite moves each layer onto the integer tensors: inputs
 * become the DQs' integer inputs (their parameters copied onto the values), the output becomes
 * the Q's integer output, and DQ/Q nodes left without readers disappear. A conv/gemm/matmul with
 * no Q after it keeps its int32 accumulator and a DQ is inserted behind it (as realize does). */

typedef struct qdq_in {
  uint32_t x, s, z; /* integer value and the DQ's scale and zero-point constants */
  int axis;
  int folded; /* x is an f32 constant the importer dequantized (parameters in its lb_quant) */
  int plain;  /* x is a plain f32 bias constant (PyTorch exports): quantized to s_x * s_w */
} qdq_in;

/* Input value v is DQ(x, s[, z]) with constant s and z, or a dequantized constant: fills *o. */
static int from_dq(const lb_graph *g, uint32_t v, qdq_in *o) {
  const lb_value *val = &g->values[v];
  if (val->data && val->dtype == LB_DTYPE_F32 && val->q.n > 0) {
    *o = (qdq_in){v, LB_NONE, LB_NONE, val->q.n > 1 ? val->q.axis : -1, 1, 0};
    return 1;
  }
  uint32_t p = g->values[v].producer;
  if (p == LB_NONE || g->nodes[p].op != LB_OP_DEQUANTIZE) return 0;
  const lb_node *d = &g->nodes[p];
  o->x = d->in[0], o->s = d->in[1], o->z = d->n_in > 2 ? d->in[2] : LB_NONE, o->folded = 0;
  o->plain = 0;
  if (!g->values[o->s].data || (o->z != LB_NONE && !g->values[o->z].data)) return 0;
  int64_t n = lb_value_numel(&g->values[o->s]);
  o->axis = n > 1 ? (int)(d->attr.axis < 0 ? d->attr.axis + g->values[o->x].rank : d->attr.axis) : -1;
  return 1;
}

static int zp_at(const lb_graph *g, uint32_t z, int64_t i) {
  if (z == LB_NONE) return 0;
  const lb_value *v = &g->values[z];
  int64_t k = lb_value_numel(v) > 1 ? i : 0;
  if (v->dtype == LB_DTYPE_I8) return ((const int8_t *)v->data)[k];
  if (v->dtype == LB_DTYPE_U8) return ((const uint8_t *)v->data)[k];
  return ((const int32_t *)v->data)[k];
}

/* Scale k (or the only one), zero point k and the count of an input's parameters. */
static float in_s(const lb_graph *g, const qdq_in *a, int64_t k) {
  if (a->folded) {
    const lb_quant *q = &g->values[a->x].q;
    return q->scale[q->n > 1 ? k : 0];
  }
  const lb_value *s = &g->values[a->s];
  return ((const float *)s->data)[lb_value_numel(s) > 1 ? k : 0];
}

static int32_t in_z(const lb_graph *g, const qdq_in *a, int64_t k) {
  if (a->folded) {
    const lb_quant *q = &g->values[a->x].q;
    return q->zero_point ? q->zero_point[q->n > 1 ? k : 0] : 0;
  }
  return zp_at(g, a->z, k);
}

static int64_t in_n(const lb_graph *g, const qdq_in *a) {
  return a->folded ? (int64_t)g->values[a->x].q.n : lb_value_numel(&g->values[a->s]);
}

/* Integer data of input a (a folded constant is re-quantized: exact, since it was computed as
 * (q - z) * s in fp32), one int32 per element, lb_malloc'd. */
static int32_t *int_data(const lb_graph *g, const qdq_in *a) {
  const lb_value *x = &g->values[a->x];
  int64_t n = lb_value_numel(x), ns = in_n(g, a), inner = 1;
  for (int i = a->axis + 1; a->axis >= 0 && i < x->rank; i++) inner *= x->dims[i];
  int32_t *o = lb_malloc((size_t)(n ? n : 1) * sizeof *o);
  if (!o) return NULL;
  for (int64_t i = 0; i < n; i++) {
    int64_t k = a->axis >= 0 ? (i / inner) % ns : 0;
    if (!a->folded)
      o[i] = x->dtype == LB_DTYPE_I8 ? ((const int8_t *)x->data)[i]
             : x->dtype == LB_DTYPE_U8 ? ((const uint8_t *)x->data)[i] : ((const int32_t *)x->data)[i];
    else
      o[i] = lb_qquantize(((const float *)x->data)[i], in_s(g, a, k), in_z(g, a, k), INT32_MIN, INT32_MAX);
  }
  return o;
}

/* Copies the (s, z) constants onto value v's lb_quant (axis -1 per tensor). */
static int set_vq(lb_graph *g, uint32_t v, uint32_t s, uint32_t z, int axis) {
  uint32_t n = (uint32_t)lb_value_numel(&g->values[s]);
  lb_quant *q = &g->values[v].q;
  float *sc = lb_arena_array(&g->arena, n, sizeof *sc);
  int32_t *zp = lb_arena_array(&g->arena, n, sizeof *zp);
  if (!sc || !zp) return LB_ERR_NOMEM;
  memcpy(sc, g->values[s].data, n * sizeof *sc);
  for (uint32_t i = 0; i < n; i++) zp[i] = zp_at(g, z, i);
  q->n = n, q->axis = n > 1 ? axis : -1, q->scale = sc, q->zero_point = zp;
  return 0;
}

/* The single reader of value v, if it is a quantize node (and v is no graph output). */
static uint32_t only_q_reader(const lb_graph *g, const uint32_t *uses, uint32_t v) {
  if (!lb_pass_single_use(g, uses, v)) return LB_NONE;
  for (uint32_t m = 0; m < g->n_nodes; m++)
    for (uint32_t k = 0; k < g->nodes[m].n_in; k++)
      if (g->nodes[m].in[k] == v)
        return g->nodes[m].op == LB_OP_QUANTIZE && k == 0 && g->values[g->nodes[m].in[1]].data &&
                       lb_value_numel(&g->values[g->nodes[m].in[1]]) == 1
                   ? m : LB_NONE;
  return LB_NONE;
}

static int is_mac(lb_op op) { return op == LB_OP_CONV || op == LB_OP_GEMM || op == LB_OP_MATMUL; }

/* Ops with an integer kernel (interp_int.c); the others (layout, max_pool, concat) copy
 * integers and need one scale and zero point on both sides. */
static int int_kernel(lb_op op) {
  return is_mac(op) || op == LB_OP_ADD || op == LB_OP_SUB || op == LB_OP_MUL ||
         op == LB_OP_RELU || op == LB_OP_CLIP || op == LB_OP_GLOBAL_AVG_POOL ||
         op == LB_OP_AVG_POOL || op == LB_OP_LEAKY_RELU || op == LB_OP_SIGMOID ||
         op == LB_OP_TANH || op == LB_OP_HARD_SIGMOID || op == LB_OP_HARD_SWISH;
}

static int qdq_candidate(lb_op op) {
  switch (op) {
  case LB_OP_CONV: case LB_OP_GEMM: case LB_OP_MATMUL: case LB_OP_ADD: case LB_OP_SUB:
  case LB_OP_MUL: case LB_OP_RELU: case LB_OP_CLIP: case LB_OP_GLOBAL_AVG_POOL:
  case LB_OP_LEAKY_RELU: case LB_OP_SIGMOID: case LB_OP_TANH: case LB_OP_HARD_SIGMOID:
  case LB_OP_HARD_SWISH: case LB_OP_MAX_POOL: case LB_OP_AVG_POOL: case LB_OP_FLATTEN: case LB_OP_RESHAPE:
  case LB_OP_TRANSPOSE:
  case LB_OP_SQUEEZE: case LB_OP_UNSQUEEZE: case LB_OP_IDENTITY: case LB_OP_CONCAT: return 1;
  default: return 0;
  }
}

/* Re-expresses an int32 bias on scale s_x * s_w[c] (ONNX Runtime writes exactly that scale;
 * anything else is rescaled, rounding half to even); the new constant's id goes to *out. */
static int fix_bias(lb_graph *g, const qdq_in *b, const qdq_in *x, const qdq_in *w, uint32_t *out) {
  const lb_value *bv = &g->values[b->x];
  int64_t n = lb_value_numel(bv);
  size_t sz = (size_t)(n ? n : 1);
  int32_t *q = lb_arena_array(&g->arena, sz, sizeof *q), *zp = lb_arena_array(&g->arena, sz, 4);
  float *sc = lb_arena_array(&g->arena, sz, sizeof *sc);
  int32_t *raw = b->plain ? NULL : int_data(g, b);
  if (!q || !sc || !zp || (!raw && !b->plain)) return lb_free(raw), LB_ERR_NOMEM;
  for (int64_t c = 0; c < n; c++) {
    sc[c] = (float)((double)in_s(g, x, 0) * (double)in_s(g, w, c));
    if (b->plain) {
      q[c] = lb_qquantize(((const float *)bv->data)[c], sc[c], 0, INT32_MIN, INT32_MAX);
      continue;
    }
    float s = in_s(g, b, c);
    int32_t v = raw[c] - in_z(g, b, c);
    q[c] = s == sc[c] ? v : lb_qquantize((float)v * s, sc[c], 0, INT32_MIN, INT32_MAX);
  }
  lb_free(raw);
  char name[256];
  snprintf(name, sizeof name, "%.200s:int", bv->name);
  uint32_t id = lb_graph_add_const(g, name, LB_DTYPE_I32, bv->rank, bv->dims, q,
                                   (size_t)n * sizeof *q);
  if (id == LB_NONE) return LB_ERR_NOMEM;
  lb_quant *qq = &g->values[id].q;
  qq->n = (uint32_t)n, qq->axis = n > 1 ? 0 : -1, qq->scale = sc, qq->zero_point = zp;
  *out = id;
  return 0;
}

/* An integer constant (i8 if every value fits, else u8) for folded weights a. */
static int unfold(lb_graph *g, const qdq_in *a, uint32_t *out) {
  const lb_value *x = &g->values[a->x];
  int64_t n = lb_value_numel(x);
  int32_t *q = int_data(g, a);
  int8_t *b = lb_malloc((size_t)(n ? n : 1));
  int fits = 1, fits_u = 1, rc = 0;
  if (!q || !b) rc = LB_ERR_NOMEM;
  for (int64_t i = 0; !rc && i < n; i++)
    fits &= q[i] >= -128 && q[i] <= 127, fits_u &= q[i] >= 0 && q[i] <= 255;
  if (!rc && !fits && !fits_u) rc = LB_ERR_INPUT;
  for (int64_t i = 0; !rc && i < n; i++) b[i] = fits ? (int8_t)q[i] : (int8_t)(uint8_t)q[i];
  char name[256];
  snprintf(name, sizeof name, "%.200s:int", x->name);
  if (!rc && (*out = lb_graph_add_const(g, name, fits ? LB_DTYPE_I8 : LB_DTYPE_U8, x->rank,
                                        x->dims, b, (size_t)n)) == LB_NONE)
    rc = LB_ERR_NOMEM;
  if (!rc) g->values[*out].q = g->values[a->x].q;
  lb_free(q), lb_free(b);
  return rc;
}

static int same_params(const lb_graph *g, const qdq_in *a, uint32_t s, uint32_t z) {
  return in_s(g, a, 0) == *(const float *)g->values[s].data && in_z(g, a, 0) == zp_at(g, z, 0);
}

static int int8(lb_dtype t) { return t == LB_DTYPE_I8 || t == LB_DTYPE_U8; }

/* Whether node n reads DQs in a form the integer kernels take; fills in[] (by input index).
 * q is the quantize reading n's output (LB_NONE: int32 accumulator output). */
static int qdq_match(const lb_graph *g, uint32_t n, uint32_t q, qdq_in *in) {
  const lb_node *nd = &g->nodes[n];
  lb_op op = nd->op;
  if (!qdq_candidate(op) || nd->n_in > 8) return 0;
  if (q == LB_NONE && !(is_mac(op) && nd->attr.act == LB_ACT_NONE && !(nd->n_in > 3 && nd->in[3] != LB_NONE)))
    return 0;
  lb_dtype t = q != LB_NONE ? g->values[g->nodes[q].out[0]].dtype : LB_DTYPE_COUNT;
  for (uint32_t k = 0; k < nd->n_in; k++) {
    if (nd->in[k] == LB_NONE) continue;
    int weight = is_mac(op) && k == 1, bias = is_mac(op) && k == 2 && op != LB_OP_MATMUL;
    const lb_value *b = &g->values[nd->in[k]];
    if (bias && b->data && b->dtype == LB_DTYPE_F32 && b->q.n == 0 && b->rank <= 1) {
      in[k] = (qdq_in){nd->in[k], LB_NONE, LB_NONE, -1, 0, 1};
      continue;
    }
    if (!from_dq(g, nd->in[k], &in[k])) return 0;
    const lb_value *x = &g->values[in[k].x];
    if (in[k].folded && !weight && !bias) return 0;
    if (!in[k].folded && (bias ? x->dtype != LB_DTYPE_I32 || !x->data : !int8(x->dtype))) return 0;
    if (weight && !x->data) return 0;
    if (!weight && !bias && (in[k].axis >= 0 || (t != LB_DTYPE_COUNT && x->dtype != t))) return 0;
    if (q != LB_NONE && !int_kernel(op) &&
        !same_params(g, &in[k], g->nodes[q].in[1], g->nodes[q].n_in > 2 ? g->nodes[q].in[2] : LB_NONE))
      return 0;
  }
  if (is_mac(op) && op != LB_OP_MATMUL && nd->n_in > 2 && nd->in[2] != LB_NONE &&
      in_n(g, &in[1]) > 1 && in[1].axis != (op == LB_OP_GEMM ? (nd->attr.trans_b ? 0 : 1) : 0))
    return 0;
  return 1;
}

/* Moves node n's inputs onto the DQs' integer values (bias rescaled if needed). */
static int rewrite_inputs(lb_graph *g, uint32_t n, const qdq_in *in) {
  lb_node *nd = &g->nodes[n];
  for (uint32_t k = 0; k < nd->n_in; k++) {
    if (nd->in[k] == LB_NONE) continue;
    if (is_mac(nd->op) && nd->op != LB_OP_MATMUL && k == 2) {
      uint32_t b;
      LB_TRY(fix_bias(g, &in[2], &in[0], &in[1], &b));
      nd->in[2] = b;
      continue;
    }
    if (in[k].folded) {
      uint32_t w;
      LB_TRY(unfold(g, &in[k], &w));
      nd->in[k] = w;
      continue;
    }
    LB_TRY(set_vq(g, in[k].x, in[k].s, in[k].z, in[k].axis));
    nd->in[k] = in[k].x;
  }
  return 0;
}

/* Moves the last node to position pos, fixing producers of everything after it. */
static void move_last(lb_graph *g, uint32_t pos) {
  lb_node last = g->nodes[g->n_nodes - 1];
  memmove(&g->nodes[pos + 1], &g->nodes[pos], (g->n_nodes - 1 - pos) * sizeof *g->nodes);
  g->nodes[pos] = last;
  for (uint32_t n = pos; n < g->n_nodes; n++)
    for (uint32_t k = 0; k < g->nodes[n].n_out; k++) g->values[g->nodes[n].out[k]].producer = n;
}

/* MAC node n keeps its int32 accumulator: acc = n(int inputs), y = DQ(acc, s_x*s_w, 0). */
static int rewrite_acc(lb_graph *g, uint32_t n, const qdq_in *in) {
  LB_TRY(rewrite_inputs(g, n, in));
  lb_node *nd = &g->nodes[n];
  uint32_t y = nd->out[0];
  const lb_value *yv = &g->values[y];
  int axis = nd->op == LB_OP_MATMUL ? yv->rank - 1 : 1;
  int64_t nw = in_n(g, &in[1]), ch = nw > 1 ? yv->dims[axis] : 1;
  float *sc = lb_arena_array(&g->arena, (size_t)ch, sizeof *sc);
  int32_t *zp = lb_arena_array(&g->arena, (size_t)ch, sizeof *zp);
  if (!sc || !zp) return LB_ERR_NOMEM;
  for (int64_t c = 0; c < ch; c++) sc[c] = (float)((double)in_s(g, &in[0], 0) * (double)in_s(g, &in[1], c));
  char name[256];
  int64_t d1[1] = {ch};
  snprintf(name, sizeof name, "%.200s:acc", yv->name);
  uint32_t acc = lb_graph_add_value(g, name, LB_DTYPE_I32, yv->rank, g->values[y].dims);
  snprintf(name, sizeof name, "%.200s:acc_scale", g->values[y].name);
  uint32_t s = lb_graph_add_const(g, name, LB_DTYPE_F32, ch > 1, d1, sc, (size_t)ch * 4);
  snprintf(name, sizeof name, "%.200s:acc_zero_point", g->values[y].name);
  uint32_t z = lb_graph_add_const(g, name, LB_DTYPE_I32, ch > 1, d1, zp, (size_t)ch * 4);
  if (acc == LB_NONE || s == LB_NONE || z == LB_NONE) return LB_ERR_NOMEM;
  lb_quant *q = &g->values[acc].q;
  q->n = (uint32_t)ch, q->axis = ch > 1 ? axis : -1, q->scale = sc, q->zero_point = zp;
  uint32_t dqin[3] = {acc, s, z};
  uint32_t dq = lb_graph_add_node(g, LB_OP_DEQUANTIZE, "", dqin, 3, &y, 1);
  if (dq == LB_NONE) return LB_ERR_NOMEM;
  g->nodes[dq].attr.axis = axis;
  g->nodes[n].out[0] = acc;
  g->values[acc].producer = n;
  move_last(g, n + 1);
  return 0;
}

/* A layout op or max_pool reading DQ(x) without a Q after it (PyTorch exports write
 * DQ -> Flatten -> Gemm) runs on x instead, and the DQ moves behind it: dequantization
 * commutes with copies and, its scale being positive, with max. */
static int is_copy(lb_op op) {
  return op == LB_OP_FLATTEN || op == LB_OP_RESHAPE || op == LB_OP_TRANSPOSE ||
         op == LB_OP_SQUEEZE || op == LB_OP_UNSQUEEZE || op == LB_OP_MAX_POOL;
}

static int read_by_q(const lb_graph *g, uint32_t v) {
  for (uint32_t m = 0; m < g->n_nodes; m++)
    if (g->nodes[m].op == LB_OP_QUANTIZE && g->nodes[m].in[0] == v) return 1;
  return 0;
}

static int sink_dq(lb_graph *g, uint32_t n, const qdq_in *in) {
  lb_node *nd = &g->nodes[n];
  uint32_t y = nd->out[0];
  const lb_value *xv = &g->values[in->x];
  char name[256];
  snprintf(name, sizeof name, "%.200s:int", g->values[y].name);
  uint32_t yi = lb_graph_add_value(g, name, xv->dtype, g->values[y].rank, g->values[y].dims);
  if (yi == LB_NONE) return LB_ERR_NOMEM;
  LB_TRY(set_vq(g, in->x, in->s, in->z, -1));
  g->values[yi].q = g->values[in->x].q;
  uint32_t dqin[3] = {yi, in->s, in->z};
  uint32_t dq = lb_graph_add_node(g, LB_OP_DEQUANTIZE, "", dqin, in->z != LB_NONE ? 3 : 2, &y, 1);
  if (dq == LB_NONE) return LB_ERR_NOMEM;
  g->nodes[dq].attr.axis = -1;
  nd = &g->nodes[n];
  nd->in[0] = in->x;
  nd->out[0] = yi;
  g->values[yi].producer = n;
  move_last(g, n + 1);
  return 0;
}

int lb_pass_qdq_to_int(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag) {
  qdq_in in0;
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    const lb_node *nd = &g->nodes[n];
    if (!is_copy(nd->op) || !from_dq(g, nd->in[0], &in0) || in0.folded || in0.axis >= 0 ||
        !int8(g->values[in0.x].dtype) || read_by_q(g, nd->out[0]))
      continue;
    int rc = sink_dq(g, n, &in0);
    if (rc) return rc == LB_ERR_NOMEM ? lb_diag_err(diag, rc, "out of memory") : rc;
    n++; /* skip the dequantize just placed behind it */
  }
  uint32_t *uses = lb_pass_count_uses(g, ctx->scratch);
  unsigned char *dead = lb_calloc(g->n_nodes ? g->n_nodes : 1, 1);
  qdq_in in[8];
  int rc = !uses || !dead ? LB_ERR_NOMEM : 0;
  for (uint32_t n = 0; !rc && n < g->n_nodes; n++) {
    if (!qdq_candidate(g->nodes[n].op)) continue;
    uint32_t q = only_q_reader(g, uses, g->nodes[n].out[0]);
    if (q == LB_NONE || !qdq_match(g, n, q, in)) continue;
    rc = rewrite_inputs(g, n, in);
    if (rc) break;
    uint32_t qs = g->nodes[q].in[1], qz = g->nodes[q].n_in > 2 ? g->nodes[q].in[2] : LB_NONE;
    lb_pass_take_output(g, n, q); /* leaves q reading nothing */
    dead[q] = 1;
    rc = set_vq(g, g->nodes[n].out[0], qs, qz, -1);
  }
  if (!rc) rc = lb_pass_remove_nodes(g, dead);
  lb_free(dead);
  for (uint32_t n = g->n_nodes; !rc && n-- > 0;)
    if (is_mac(g->nodes[n].op) && g->values[g->nodes[n].out[0]].dtype == LB_DTYPE_F32 &&
        qdq_match(g, n, LB_NONE, in))
      rc = rewrite_acc(g, n, in);
  if (!rc && lb_graph_compact(g)) rc = LB_ERR_NOMEM;
  if (!rc) rc = lb_infer_shapes(g, diag);
  if (rc == LB_ERR_NOMEM) lb_diag_err(diag, rc, "out of memory");
  return rc;
}

int lb_quant_qdq_import(lb_graph *g, lb_diag *diag) {
  lb_arena scratch;
  lb_arena_init(&scratch);
  lb_pass_ctx ctx = {&scratch, 1};
  int rc = lb_pass_qdq_to_int(g, &ctx, diag);
  if (!rc) rc = lb_graph_verify(g, diag);
  if (rc) lb_diag_prefix(diag, "qdq_to_int");
  lb_arena_free(&scratch);
  return rc;
}
