/* ONNX import driver: a ModelProto becomes an lb_graph node by node. Each ONNX node is lowered
 * (onnx_ops.c), its outputs get shapes from lb_infer_node, and a node whose inputs are all
 * constant is evaluated at once with lb_eval_node and replaced by its constant result.
 * Invariant: after each node, every defined name maps to a value with a known static shape whose
 * size is within LB_ONNX_MAX_NUMEL; the graph stays topologically ordered. */
#include "onnx_internal.h"
#include "onnx_wide.h"

#include <string.h>

static const char *S(const char *s) { return s ? s : ""; }

/* ---- name map --------------------------------------------------------------------------- */

static uint32_t hash_str(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static uint32_t map_get(const lb_onnx_ctx *c, const char *name) {
  if (!c->map_cap) return LB_NONE;
  for (uint32_t i = hash_str(name) & (c->map_cap - 1);; i = (i + 1) & (c->map_cap - 1)) {
    if (!c->keys[i]) return LB_NONE;
    if (strcmp(c->keys[i], name) == 0) return c->vals[i];
  }
}

static int map_put(lb_onnx_ctx *c, const char *name, uint32_t id);

static int map_grow(lb_onnx_ctx *c) {
  uint32_t old_cap = c->map_cap;
  const char **old_keys = c->keys;
  uint32_t *old_vals = c->vals;
  uint32_t cap = old_cap ? old_cap * 2 : 64;
  if (cap > (1u << 30)) return LB_ERR_NOMEM;
  c->keys = lb_calloc(cap, sizeof *c->keys);
  c->vals = lb_calloc(cap, sizeof *c->vals);
  if (!c->keys || !c->vals) {
    lb_free(c->keys);
    lb_free(c->vals);
    c->keys = old_keys;
    c->vals = old_vals;
    return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  }
  c->map_cap = cap;
  c->map_n = 0;
  for (uint32_t i = 0; i < old_cap; i++)
    if (old_keys[i]) map_put(c, old_keys[i], old_vals[i]);
  lb_free(old_keys);
  lb_free(old_vals);
  return 0;
}

/* Inserts or overwrites; keys must outlive the import. */
static int map_put(lb_onnx_ctx *c, const char *name, uint32_t id) {
  if (2 * (c->map_n + 1) > c->map_cap) LB_TRY(map_grow(c));
  uint32_t i = hash_str(name) & (c->map_cap - 1);
  while (c->keys[i] && strcmp(c->keys[i], name) != 0) i = (i + 1) & (c->map_cap - 1);
  if (!c->keys[i]) c->map_n++;
  c->keys[i] = name;
  c->vals[i] = id;
  return 0;
}

/* ---- helpers for the lowerings ------------------------------------------------------------ */

lb_value *lb_onnx_val(lb_onnx_ctx *c, uint32_t id) { return &c->g->values[id]; }

static void fmt_shape(char *buf, size_t size, lb_dtype dt, int rank, const int64_t *dims) {
  int n = snprintf(buf, size, "%s [", lb_dtype_name(dt));
  for (int i = 0; i < rank && n > 0 && (size_t)n < size; i++)
    n += snprintf(buf + n, size - (size_t)n, "%s%lld", i ? "," : "", (long long)dims[i]);
  if (n > 0 && (size_t)n < size) snprintf(buf + n, size - (size_t)n, "]");
}

/* Rejects shapes whose element count or byte size exceeds the limits. */
static int check_size(lb_onnx_ctx *c, const lb_value *v) {
  int64_t n = lb_onnx_numel(v->rank, v->dims);
  if (n < 0 || lb_dtype_bytes(v->dtype, n) > LB_ONNX_MAX_BYTES)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "tensor \"%s\" is too large (limit %llu bytes)",
                       v->name, (unsigned long long)LB_ONNX_MAX_BYTES);
  return 0;
}

static int count_const(lb_onnx_ctx *c, size_t nbytes) {
  if (nbytes > LB_ONNX_MAX_BYTES - c->const_bytes)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "constants exceed %llu bytes in total",
                       (unsigned long long)LB_ONNX_MAX_BYTES);
  c->const_bytes += nbytes;
  return 0;
}

/* Claims an ONNX output name for a new definition (SSA: each name is defined once). */
static int claim(lb_onnx_ctx *c, const char *name) {
  if (map_get(c, name) != LB_NONE)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "output \"%s\" is already defined", name);
  return 0;
}

int lb_onnx_def_const(lb_onnx_ctx *c, uint32_t k, lb_dtype dt, int rank, const int64_t *dims,
                      const void *data, size_t nbytes) {
  const char *name = S(c->np->output[k]);
  LB_TRY(claim(c, name));
  LB_TRY(count_const(c, nbytes));
  uint32_t id = lb_graph_add_const(c->g, name, dt, rank, dims, data, nbytes);
  if (id == LB_NONE) return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  if (!*name) return 0; /* an unnamed output is never referred to */
  return map_put(c, lb_onnx_val(c, id)->name, id);
}

static int need_const(lb_onnx_ctx *c, uint32_t id, const char *what, int64_t max_n) {
  lb_value *v = lb_onnx_val(c, id);
  if (!v->data)
    return lb_diag_err(c->diag, LB_ERR_INPUT,
                       "%s \"%s\" must be a constant (initializer, Constant, or computable from "
                       "them at import time)",
                       what, v->name);
  if (v->rank > 1)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "%s \"%s\": expected rank 0 or 1, got %d", what,
                       v->name, v->rank);
  int64_t n = lb_value_numel(v);
  if (n > max_n)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "%s \"%s\": expected at most %lld elements, got %lld",
                       what, v->name, (long long)max_n, (long long)n);
  return 0;
}

/* Element i of constant v as double / int64. */
static double elem_f(const lb_value *v, int64_t i) {
  switch (v->dtype) {
  case LB_DTYPE_F32: return ((const float *)v->data)[i];
  case LB_DTYPE_F64: return ((const double *)v->data)[i];
  case LB_DTYPE_I64: return (double)((const int64_t *)v->data)[i];
  case LB_DTYPE_I32: return ((const int32_t *)v->data)[i];
  case LB_DTYPE_I16: return ((const int16_t *)v->data)[i];
  case LB_DTYPE_I8: return ((const int8_t *)v->data)[i];
  default: return ((const uint8_t *)v->data)[i]; /* u8, bool */
  }
}

int lb_onnx_const_ints(lb_onnx_ctx *c, uint32_t id, const char *what, int64_t *out, int max,
                       int *n) {
  LB_TRY(need_const(c, id, what, max));
  lb_value *v = lb_onnx_val(c, id);
  if (lb_dtype_is_float(v->dtype) || lb_dtype_bits(v->dtype) < 8)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "%s \"%s\": expected an integer tensor, got %s",
                       what, v->name, lb_dtype_name(v->dtype));
  *n = (int)lb_value_numel(v);
  for (int i = 0; i < *n; i++)
    out[i] = v->dtype == LB_DTYPE_I64 ? ((const int64_t *)v->data)[i] : (int64_t)elem_f(v, i);
  return 0;
}

int lb_onnx_const_scalar(lb_onnx_ctx *c, uint32_t id, const char *what, double *out) {
  LB_TRY(need_const(c, id, what, 1));
  lb_value *v = lb_onnx_val(c, id);
  if (lb_value_numel(v) != 1 || lb_dtype_bits(v->dtype) < 8)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "%s \"%s\": expected one number", what, v->name);
  *out = elem_f(v, 0);
  return 0;
}

/* ---- initializers and inputs -------------------------------------------------------------- */

static int import_initializer(lb_onnx_ctx *c, lb_onnx_wide *w, const Onnx__TensorProto *t) {
  const char *name = S(t->name);
  if (!*name) return lb_diag_err(c->diag, LB_ERR_INPUT, "initializer has no name");
  if (map_get(c, name) != LB_NONE)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "name defined twice");
  lb_tensor tt;
  size_t nbytes;
  int u16;
  LB_TRY(lb_onnx_wide_decode(t, &tt, &nbytes, &u16, c->diag));
  int rc = count_const(c, nbytes);
  uint32_t id = LB_NONE;
  if (!rc) id = lb_graph_add_const(c->g, name, tt.dtype, tt.rank, tt.dims, tt.data, nbytes);
  lb_free(tt.data);
  if (!rc && id == LB_NONE) rc = lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  if (!rc && u16) rc = lb_onnx_wide_mark(w, id, c->diag);
  if (!rc) rc = map_put(c, lb_onnx_val(c, id)->name, id);
  return rc;
}

/* Reads a ValueInfo's tensor type; dims that are not plain dim_values are refused. */
static int value_type(lb_onnx_ctx *c, const Onnx__ValueInfoProto *vi, lb_dtype *dt, int *rank,
                      int64_t *dims) {
  const Onnx__TypeProto *tp = vi->type;
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "not a tensor (sequence, map and optional types "
                                              "are not supported)");
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  LB_TRY(lb_onnx_wide_io_type(tt->has_elem_type ? tt->elem_type : 0, "input", c->diag));
  LB_TRY(lb_onnx_dtype(tt->has_elem_type ? tt->elem_type : 0, dt, c->diag));
  if (!tt->shape)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "has no shape; static shapes are required");
  if (tt->shape->n_dim > LB_MAX_RANK)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "rank %zu exceeds the maximum %d",
                       tt->shape->n_dim, LB_MAX_RANK);
  *rank = (int)tt->shape->n_dim;
  for (int i = 0; i < *rank; i++) {
    const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
      return lb_diag_err(c->diag, LB_ERR_INPUT,
                         "dim[%d] is symbolic (\"%s\"); static shapes are required (re-export "
                         "with fixed sizes)",
                         i, S(d->dim_param));
    if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || d->dim_value < 0)
      return lb_diag_err(c->diag, LB_ERR_INPUT, "dim[%d] is unknown; static shapes are required",
                         i);
    dims[i] = d->dim_value;
  }
  if (lb_onnx_numel(*rank, dims) < 0)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "too many elements");
  return 0;
}

static int import_input(lb_onnx_ctx *c, const Onnx__ValueInfoProto *vi) {
  const char *name = S(vi->name);
  if (!*name) return lb_diag_err(c->diag, LB_ERR_INPUT, "input has no name");
  uint32_t prev = map_get(c, name);
  if (prev != LB_NONE) {
    if (lb_onnx_val(c, prev)->data) return 0; /* an initializer: a constant, not an input */
    return lb_diag_err(c->diag, LB_ERR_INPUT, "name defined twice");
  }
  lb_dtype dt;
  int rank = 0;
  int64_t dims[LB_MAX_RANK];
  LB_TRY(value_type(c, vi, &dt, &rank, dims));
  uint32_t id = lb_graph_add_value(c->g, name, dt, rank, dims);
  if (id == LB_NONE || lb_graph_add_input(c->g, id))
    return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  return map_put(c, lb_onnx_val(c, id)->name, id);
}

/* ---- nodes -------------------------------------------------------------------------------- */

/* lb_infer_node and lb_eval_node name the node by its IR index; the ONNX path our caller adds
 * is the one the user can find in the file, so that prefix is dropped from a failure. */
static int strip_ir_prefix(lb_onnx_ctx *c, uint32_t nid, int rc) {
  if (!rc) return 0;
  const lb_node *n = &c->g->nodes[nid];
  char pre[600];
  int len = snprintf(pre, sizeof pre, "graph.node[%u] \"%s\" (%s): ", nid, n->name, n->onnx_op);
  if (len > 0 && (size_t)len < sizeof pre && strncmp(c->diag->msg, pre, (size_t)len) == 0)
    memmove(c->diag->msg, c->diag->msg + len, strlen(c->diag->msg + len) + 1);
  return rc;
}

/* Rough multiply-adds to evaluate node n: the reduction ops dominate, the rest are linear. */
static double fold_cost(const lb_graph *g, const lb_node *n) {
  const lb_value *o = &g->values[n->out[0]];
  double out = (double)lb_value_numel(o), k = 1;
  const lb_value *a = &g->values[n->in[0]];
  if (n->op == LB_OP_CONV) {
    const lb_value *w = &g->values[n->in[1]];
    k = w->dims[0] ? (double)lb_value_numel(w) / (double)w->dims[0] : 0;
  } else if (n->op == LB_OP_GEMM || n->op == LB_OP_MATMUL) {
    k = a->rank ? (double)a->dims[n->attr.trans_a ? 0 : a->rank - 1] : 1;
  } else if (n->op == LB_OP_MAX_POOL || n->op == LB_OP_AVG_POOL) {
    for (int i = 0; i < n->attr.n_spatial; i++) k *= (double)n->attr.kernel[i];
  } else {
    for (uint32_t i = 0; i < n->n_in; i++) out += (double)lb_value_numel(&g->values[n->in[i]]);
  }
  return out * k;
}

/* Replaces the just-added node nid (the last one) by the constant it computes. Results that are
 * too big or too slow to compute at import stay run-time nodes: folding is an optimization (and
 * the budget keeps a small hostile file from growing into gigabytes of constants). */
static int fold(lb_onnx_ctx *c, uint32_t nid, uint32_t ov) {
  lb_graph *g = c->g;
  lb_node *n = &g->nodes[nid];
  lb_tensor in[64], out;
  LB_ASSERT(nid == g->n_nodes - 1 && n->n_in <= 64);
  if (fold_cost(g, n) > LB_ONNX_MAX_FOLD_MACS) return 0;
  for (uint32_t k = 0; k < n->n_in; k++) {
    const lb_value *v = &g->values[n->in[k]];
    in[k].dtype = v->dtype;
    in[k].rank = v->rank;
    memcpy(in[k].dims, v->dims, sizeof v->dims);
    in[k].data = v->data;
  }
  lb_value *v = &g->values[ov];
  size_t nbytes = lb_dtype_bytes(v->dtype, lb_value_numel(v));
  if (nbytes > LB_ONNX_MAX_FOLD_BYTES || nbytes > c->fold_budget) return 0;
  c->fold_budget -= nbytes;
  LB_TRY(count_const(c, nbytes));
  void *data = lb_arena_alloc(&g->arena, nbytes);
  if (!data) return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  out.dtype = v->dtype;
  out.rank = v->rank;
  memcpy(out.dims, v->dims, sizeof v->dims);
  out.data = data;
  LB_TRY(strip_ir_prefix(c, nid, lb_eval_node(g, nid, in, &out, c->diag)));
  g->n_nodes--;
  v->producer = LB_NONE;
  v->data = data;
  v->nbytes = nbytes;
  return 0;
}

static int all_const(lb_onnx_ctx *c, const lb_lowering *l) {
  for (uint32_t k = 0; k < l->n_in; k++)
    if (!lb_onnx_val(c, l->in[k])->data) return 0;
  return 1;
}

/* Adds the IR node a lowering asks for, infers its output and folds it if it can. */
static int emit(lb_onnx_ctx *c, const lb_lowering *l) {
  lb_graph *g = c->g;
  const char *oname = S(c->np->output[0]);
  for (uint32_t k = 0; k < l->n_in; k++)
    if (l->in[k] == LB_NONE)
      return lb_diag_err(c->diag, LB_ERR_INPUT, "input[%u] is required", k);
  LB_TRY(claim(c, oname));
  uint32_t ov = lb_graph_add_value(g, oname, LB_DTYPE_F32, 0, NULL);
  if (ov == LB_NONE) return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  if (l->out_rank >= 0) {
    lb_value *v = lb_onnx_val(c, ov);
    v->rank = l->out_rank;
    memcpy(v->dims, l->out_dims, sizeof v->dims);
  }
  uint32_t nid = lb_graph_add_node(g, l->op, c->node_name, l->in, l->n_in, &ov, 1);
  const char *op = nid == LB_NONE ? NULL : lb_arena_strdup(&g->arena, S(c->np->op_type));
  if (!op) return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  g->nodes[nid].onnx_op = op;
  g->nodes[nid].attr = l->attr;
  LB_TRY(strip_ir_prefix(c, nid, lb_infer_node(g, nid, c->diag)));
  LB_TRY(check_size(c, lb_onnx_val(c, ov)));
  if (*oname) LB_TRY(map_put(c, lb_onnx_val(c, ov)->name, ov));
  if (all_const(c, l)) LB_TRY(fold(c, nid, ov));
  return 0;
}

/* Resolves input names to value ids; trailing empty names are dropped, inner ones are
 * LB_NONE (an absent optional input). */
static int resolve_inputs(lb_onnx_ctx *c, const lb_onnx_op *op, uint32_t *ids, uint32_t *n) {
  const Onnx__NodeProto *np = c->np;
  size_t cnt = np->n_input;
  while (cnt && !*S(np->input[cnt - 1])) cnt--;
  if ((int)cnt < op->min_in || (int)cnt > op->max_in) {
    if (op->min_in == op->max_in)
      return lb_diag_err(c->diag, LB_ERR_INPUT, "expected %d input%s, got %zu", op->min_in,
                         op->min_in == 1 ? "" : "s", cnt);
    return lb_diag_err(c->diag, LB_ERR_INPUT, "expected %d to %d inputs, got %zu", op->min_in,
                       op->max_in, cnt);
  }
  for (size_t k = 0; k < cnt; k++) {
    const char *name = S(np->input[k]);
    if (!*name && (int)k < op->min_in)
      return lb_diag_err(c->diag, LB_ERR_INPUT, "input[%zu] is required", k);
    ids[k] = *name ? map_get(c, name) : LB_NONE;
    if (*name && ids[k] == LB_NONE)
      return lb_diag_err(c->diag, LB_ERR_INPUT,
                         "input[%zu] \"%s\" is not a graph input, an initializer or the output "
                         "of an earlier node",
                         k, name);
    if (ids[k] == LB_ONNX_POISON)
      return lb_diag_err(c->diag, LB_ERR_INPUT,
                         "input[%zu] \"%s\" is a Dropout mask, which is not supported", k, name);
  }
  *n = (uint32_t)cnt;
  return 0;
}

/* Whether name is one of the space-separated words of list. */
static int in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; n && *p;) {
    const char *e = strchr(p, ' ');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && !memcmp(p, name, n)) return 1;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

static int check_node_shape(lb_onnx_ctx *c, const lb_onnx_op *op) {
  const Onnx__NodeProto *np = c->np;
  if (np->n_output < 1 || !*S(np->output[0]))
    return lb_diag_err(c->diag, LB_ERR_INPUT, "output[0] is missing");
  for (size_t k = 1; k < np->n_output; k++)
    if (*S(np->output[k]) && (int)k >= op->max_out)
      return lb_diag_err(c->diag, LB_ERR_INPUT, "output[%zu] \"%s\" is not supported%s", k,
                         np->output[k], op->max_out == 1 ? " (inference only)" : "");
  for (size_t a = 0; a < np->n_attribute; a++) {
    const char *an = S(np->attribute[a]->name);
    if (!in_list(op->attrs, an))
      return lb_diag_err(c->diag, LB_ERR_INPUT, "attribute \"%s\" is not supported by %s", an,
                         op->name);
  }
  return 0;
}

static int unsupported(lb_onnx_ctx *c, const Onnx__ModelProto *m) {
  const char *dom = S(c->np->domain);
  char ver[32] = "not imported", list[1024];
  for (size_t i = 0; i < m->n_opset_import; i++) {
    const char *d = S(m->opset_import[i]->domain);
    if (!strcmp(d, dom) || (!strcmp(d, "ai.onnx") && !*dom) || (!*d && !strcmp(dom, "ai.onnx")))
      snprintf(ver, sizeof ver, "%lld", (long long)m->opset_import[i]->version);
  }
  lb_onnx_list_ops(list, sizeof list);
  return lb_diag_err(c->diag, LB_ERR_INPUT,
                     "unsupported op %s (domain \"%s\", opset %s); supported ops (domain "
                     "\"\"): %s",
                     S(c->np->op_type), dom, ver, list);
}

/* Adds the node a lowering asks for; onnx_wide.c then marks or annotates its output. */
static int finish(lb_onnx_ctx *c, lb_onnx_wide *w, const lb_lowering *l) {
  if (l->kind == LB_LOWER_EMIT) LB_TRY(emit(c, l));
  if (l->kind == LB_LOWER_ALIAS) {
    LB_TRY(claim(c, S(c->np->output[0])));
    LB_TRY(map_put(c, S(c->np->output[0]), l->alias));
  }
  return lb_onnx_wide_after(c, w, map_get(c, S(c->np->output[0])));
}

static int lower_node(lb_onnx_ctx *c, lb_onnx_wide *w, const Onnx__ModelProto *m) {
  const Onnx__NodeProto *np = c->np;
  const char *dom = S(np->domain);
  const lb_onnx_op *op = NULL;
  if (!*dom || !strcmp(dom, "ai.onnx") || lb_onnx_wide_domain(np))
    op = lb_onnx_find_op(S(np->op_type));
  if (!op) return unsupported(c, m);
  LB_TRY(check_node_shape(c, op));
  uint32_t ids[64], n_in = 0;
  LB_TRY(resolve_inputs(c, op, ids, &n_in));
  LB_TRY(lb_onnx_wide_check_inputs(c, w, ids, n_in));
  lb_lowering l;
  memset(&l, 0, sizeof l);
  l.kind = LB_LOWER_EMIT;
  l.out_rank = -1;
  l.attr.alpha = l.attr.beta = 1.0f;
  l.attr.axis = -1;
  memcpy(l.in, ids, n_in * sizeof *ids);
  l.n_in = n_in;
  int done;
  LB_TRY(lb_onnx_wide_lower(c, w, op, ids, n_in, &l, &done));
  if (!done) LB_TRY(op->fn(c, ids, n_in, &l));
  return finish(c, w, &l);
}

/* Marks a defined-but-unsupported name (Dropout's mask) so that only its use is an error. */
int lb_onnx_poison(lb_onnx_ctx *c, const char *name) {
  LB_TRY(claim(c, name));
  return map_put(c, name, LB_ONNX_POISON);
}

static int import_nodes(lb_onnx_ctx *c, lb_onnx_wide *w, const Onnx__ModelProto *m) {
  const Onnx__GraphProto *gp = m->graph;
  if (gp->n_node > LB_ONNX_MAX_NODES)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "too many nodes (%zu)", gp->n_node);
  char gen[32];
  for (size_t i = 0; i < gp->n_node; i++) {
    c->np = gp->node[i];
    snprintf(gen, sizeof gen, "op_%zu", i);
    c->node_name = *S(c->np->name) ? c->np->name : gen;
    int rc = lower_node(c, w, m);
    if (rc) {
      lb_diag_prefix(c->diag, "graph.node[%zu] \"%s\" (%s)", i, c->node_name,
                     S(c->np->op_type));
      return rc;
    }
  }
  return 0;
}

/* ---- outputs and the model ---------------------------------------------------------------- */

static int check_declared(lb_onnx_ctx *c, const Onnx__ValueInfoProto *vi, const lb_value *v) {
  const Onnx__TypeProto *tp = vi->type;
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) return 0;
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  if (tt->has_elem_type) LB_TRY(lb_onnx_wide_io_type(tt->elem_type, "output", c->diag));
  int bad = 0;
  lb_dtype dt;
  lb_diag scratch;
  lb_diag_clear(&scratch);
  if (tt->has_elem_type && tt->elem_type && (lb_onnx_dtype(tt->elem_type, &dt, &scratch) ||
                                             dt != v->dtype))
    bad = 1;
  if (tt->shape && (int)tt->shape->n_dim != v->rank) bad = 1;
  for (int i = 0; !bad && tt->shape && i < v->rank; i++) {
    const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
        d->dim_value != v->dims[i])
      bad = 1;
  }
  if (!bad) return 0;
  char got[256];
  fmt_shape(got, sizeof got, v->dtype, v->rank, v->dims);
  return lb_diag_err(c->diag, LB_ERR_INPUT, "declared type or shape differs from the inferred %s",
                     got);
}

static int import_outputs(lb_onnx_ctx *c, const lb_onnx_wide *w, const Onnx__GraphProto *gp) {
  for (size_t i = 0; i < gp->n_output; i++) {
    const char *name = S(gp->output[i]->name);
    uint32_t id = map_get(c, name);
    int rc = 0;
    if (id == LB_NONE)
      rc = lb_diag_err(c->diag, LB_ERR_INPUT, "not produced by any node, input or initializer");
    else if (id == LB_ONNX_POISON)
      rc = lb_diag_err(c->diag, LB_ERR_INPUT, "Dropout masks are not supported");
    else if (lb_onnx_wide_is_u16(w, id))
      rc = lb_onnx_wide_io_type(ONNX__TENSOR_PROTO__DATA_TYPE__UINT16, "output", c->diag);
    if (!rc) rc = check_declared(c, gp->output[i], lb_onnx_val(c, id));
    if (!rc && lb_graph_add_output(c->g, id))
      rc = lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
    if (rc) {
      lb_diag_prefix(c->diag, "graph.output[%zu] \"%s\"", i, name);
      return rc;
    }
  }
  if (!gp->n_output) return lb_diag_err(c->diag, LB_ERR_INPUT, "graph has no outputs");
  return 0;
}

static int check_model(lb_onnx_ctx *c, const Onnx__ModelProto *m) {
  if (!m->has_ir_version)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "model has no ir_version (not an ONNX model?)");
  if (m->ir_version < LB_ONNX_MIN_IR || m->ir_version > LB_ONNX_MAX_IR)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "ir_version %lld is not supported (%d to %d)",
                       (long long)m->ir_version, LB_ONNX_MIN_IR, LB_ONNX_MAX_IR);
  c->opset = -1;
  for (size_t i = 0; i < m->n_opset_import; i++) {
    const char *d = S(m->opset_import[i]->domain);
    if (!*d || !strcmp(d, "ai.onnx")) c->opset = m->opset_import[i]->version;
  }
  if (c->opset < 0)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "model imports no opset of the default domain");
  if (c->opset < LB_ONNX_MIN_OPSET || c->opset > LB_ONNX_MAX_OPSET)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "opset %lld is not supported (%d to %d)",
                       (long long)c->opset, LB_ONNX_MIN_OPSET, LB_ONNX_MAX_OPSET);
  if (!m->graph) return lb_diag_err(c->diag, LB_ERR_INPUT, "model has no graph");
  return 0;
}

static int import_graph(lb_onnx_ctx *c, lb_onnx_wide *w, const Onnx__ModelProto *m) {
  const Onnx__GraphProto *gp = m->graph;
  c->graph = gp;
  for (size_t i = 0; i < gp->n_initializer; i++) {
    int rc = import_initializer(c, w, gp->initializer[i]);
    if (rc) {
      lb_diag_prefix(c->diag, "graph.initializer[%zu] \"%s\"", i, S(gp->initializer[i]->name));
      return rc;
    }
  }
  if (gp->n_sparse_initializer)
    return lb_diag_err(c->diag, LB_ERR_INPUT, "sparse initializers are not supported");
  for (size_t i = 0; i < gp->n_input; i++) {
    int rc = import_input(c, gp->input[i]);
    if (rc) {
      lb_diag_prefix(c->diag, "graph.input[%zu] \"%s\"", i, S(gp->input[i]->name));
      return rc;
    }
  }
  LB_TRY(import_nodes(c, w, m));
  LB_TRY(import_outputs(c, w, gp));
  if (lb_graph_compact(c->g)) return lb_diag_err(c->diag, LB_ERR_NOMEM, "out of memory");
  int rc = lb_graph_verify(c->g, c->diag);
  if (rc) lb_diag_prefix(c->diag, "internal error after import");
  return rc;
}

int lb_onnx_load_buffer(const void *buf, size_t len, const char *name, lb_graph **out,
                        lb_diag *diag) {
  *out = NULL;
  Onnx__ModelProto *m = NULL;
  lb_onnx_ctx c;
  lb_onnx_wide w;
  memset(&c, 0, sizeof c);
  memset(&w, 0, sizeof w);
  c.diag = diag;
  c.fold_budget = len < LB_ONNX_MAX_FOLD_BYTES / 16 ? LB_ONNX_MAX_FOLD_BYTES : 16 * (uint64_t)len;
  int rc = lb_onnx_unpack_model(buf, len, &m, diag);
  if (!rc) rc = check_model(&c, m);
  if (!rc) {
    c.g = lb_graph_new(*S(m->graph->name) ? m->graph->name : "graph");
    if (!c.g) rc = lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  }
  if (!rc) rc = import_graph(&c, &w, m);
  lb_onnx_wide_free(&w);
  lb_onnx_free_model(m);
  lb_free(c.keys);
  lb_free(c.vals);
  if (rc) {
    lb_graph_free(c.g);
    lb_diag_prefix(diag, "%s", name ? name : "model");
    lb_onnx_one_line(diag);
    return rc;
  }
  *out = c.g;
  return 0;
}

int lb_onnx_load(const char *path, lb_graph **out, lb_diag *diag) {
  void *buf;
  size_t len;
  *out = NULL;
  int rc = lb_onnx_read_file(path, &buf, &len, diag);
  if (rc) {
    lb_diag_prefix(diag, "%s", path);
    lb_onnx_one_line(diag);
    return rc;
  }
  rc = lb_onnx_load_buffer(buf, len, path, out, diag);
  lb_free(buf);
  return rc;
}
