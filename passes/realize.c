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
} rz;

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

/* Copies the plan's parameters of old value `old` onto new value id. */
static int set_q(rz *r, uint32_t id, uint32_t old) {
  const lb_qval *q = &r->p->v[old];
  lb_quant *d = &r->ng->values[id].q;
  d->axis = q->axis;
  d->n = q->n;
  d->scale = lb_arena_array(&r->ng->arena, q->n, sizeof(float));
  d->zero_point = lb_arena_array(&r->ng->arena, q->n, sizeof(int32_t));
  if (!d->scale || !d->zero_point) return LB_ERR_NOMEM;
  memcpy(d->scale, q->scale, q->n * sizeof(float));
  memcpy(d->zero_point, q->zp, q->n * sizeof(int32_t));
  return 0;
}

static uint32_t add_node(rz *r, lb_op op, const char *name, const uint32_t *in, uint32_t n_in,
                         uint32_t out) {
  uint32_t id = lb_graph_add_node(r->ng, op, name, in, n_in, &out, 1);
  return id;
}

/* Scale and zero-point constants for old value v (rank 0 per tensor, else [n]). */
static int qconsts(rz *r, uint32_t v, uint32_t *s, uint32_t *z) {
  const lb_qval *q = &r->p->v[v];
  char buf[256];
  int per = q->axis >= 0;
  int64_t dims[1] = {q->n};
  const char *name = r->g->values[v].name;
  *s = lb_graph_add_const(r->ng, uniq(r, name, ":scale", buf, sizeof buf), LB_DTYPE_F32, per,
                          dims, q->scale, q->n * sizeof(float));
  if (*s == LB_NONE) return LB_ERR_NOMEM;
  size_t es = (size_t)lb_dtype_bits(q->dtype) / 8;
  unsigned char *zb = lb_malloc(q->n * 4 + 1);
  if (!zb) return LB_ERR_NOMEM;
  for (uint32_t i = 0; i < q->n; i++) {
    int32_t zz = q->zp[i];
    if (es == 1) zb[i] = (unsigned char)(q->dtype == LB_DTYPE_I8 ? (uint8_t)(int8_t)zz : (uint8_t)zz);
    else memcpy(zb + i * 4, &zz, 4);
  }
  *z = lb_graph_add_const(r->ng, uniq(r, name, ":zero_point", buf, sizeof buf), q->dtype, per,
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
  r->ng->nodes[n].attr.axis = r->p->v[v].axis >= 0 ? r->p->v[v].axis : 1;
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
  if (q->role == LB_QROLE_WEIGHT && q->symmetric && q->dtype == LB_DTYPE_I8) qmin = -127;
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
  size_t es = (size_t)lb_dtype_bits(q->dtype) / 8;
  int32_t *qd = quant_data(r, v);
  unsigned char *buf = lb_malloc((size_t)(n ? n : 1) * es);
  uint32_t id = LB_NONE;
  if (qd && buf) {
    for (int64_t i = 0; i < n; i++) {
      if (es == 1) buf[i] = q->dtype == LB_DTYPE_I8 ? (unsigned char)(int8_t)qd[i] : (unsigned char)qd[i];
      else memcpy(buf + i * 4, &qd[i], 4);
    }
    char name[256];
    id = lb_graph_add_const(r->ng, uniq(r, c->name, suffix, name, sizeof name), q->dtype, c->rank,
                            c->dims, buf, (size_t)n * es);
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
      f[i] = ((float)qd[i] - (float)q->zp[k]) * q->scale[k];
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

/* Input k of node n as the new graph provides it. */
static uint32_t map_input(rz *r, uint32_t n, uint32_t v) {
  const lb_qval *q = &r->p->v[v];
  if (!r->p->l[n].integer) {
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
  m->onnx_op = nd->onnx_op;
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
          lb_malloc(nv * sizeof(uint32_t)), lb_malloc(nv * sizeof(uint32_t))};
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
  lb_free(r.fv), lb_free(r.iv), lb_free(r.qv);
  if (rc) {
    if (rc == LB_ERR_NOMEM) lb_diag_err(diag, rc, "out of memory");
    lb_diag_prefix(diag, "realize");
    lb_graph_free(r.ng);
    return rc;
  }
  *out = r.ng;
  return 0;
}
