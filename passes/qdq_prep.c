/* QDQ models as ONNX Runtime's quantize_static (and TensorRT-style exporters) write them,
 * around the QDQ import pass (realize.c, lb_pass_qdq_to_int): a normalization before it (a
 * DequantizeLinear of a constant operand of add/sub/mul, folded to f32 at import, is put back as
 * an integer constant behind a DequantizeLinear, in the activation dtype when that is exact; a
 * QuantizeLinear after a copy op is repeated in front of it) and, after it, the report of every
 * layer next to a QuantizeLinear/DequantizeLinear that stayed fp32, with the reason. 16-bit
 * QDQ (int16/uint16 activations, weights beyond 8 bits) has no integer kernel: those layers
 * stay fp32 on the exactly simulated QuantizeLinear/DequantizeLinear values.
 * Invariant: the normalization only re-expresses values exactly (same fp32 semantics). */
#include <stdio.h>
#include <string.h>

#include "quantize.h"

/* ---- normalization --------------------------------------------------------------------- */

static int is_dq_output(const lb_graph *g, uint32_t v) {
  uint32_t p = g->values[v].producer;
  return p != LB_NONE && g->nodes[p].op == LB_OP_DEQUANTIZE;
}

/* The dtype of the single per-tensor QuantizeLinear reading v, or LB_DTYPE_COUNT. */
static lb_dtype q_dtype(const lb_graph *g, const uint32_t *uses, uint32_t v) {
  if (!lb_pass_single_use(g, uses, v)) return LB_DTYPE_COUNT;
  for (uint32_t m = 0; m < g->n_nodes; m++) {
    const lb_node *nd = &g->nodes[m];
    if (nd->op == LB_OP_QUANTIZE && nd->in[0] == v && nd->attr.axis < 0)
      return g->values[nd->out[0]].dtype;
  }
  return LB_DTYPE_COUNT;
}

/* Integer form of the folded per-tensor constant x in dtype t: q[i] (lb_malloc'd, as int32)
 * and zero point *z, shifting between i8 and u8 by 128 when that keeps every value in range
 * (the scale stays: the real values are identical). NULL when it does not fit or on OOM. */
static int32_t *int_form(const lb_value *x, lb_dtype t, int32_t *z) {
  int64_t n = lb_value_numel(x);
  int32_t qmin, qmax, z0 = x->q.zero_point ? x->q.zero_point[0] : 0;
  lb_qrange(t, &qmin, &qmax);
  int32_t *q = lb_malloc((size_t)(n ? n : 1) * sizeof *q);
  int32_t lo = INT32_MAX, hi = INT32_MIN;
  for (int64_t i = 0; q && i < n; i++) {
    q[i] = lb_qquantize(((const float *)x->data)[i], x->q.scale[0], z0, INT32_MIN, INT32_MAX);
    lo = q[i] < lo ? q[i] : lo, hi = q[i] > hi ? q[i] : hi;
  }
  const int32_t shifts[3] = {0, 128, -128};
  for (int k = 0; q && k < 3; k++) {
    *z = z0 + shifts[k];
    if (*z < qmin || *z > qmax || lo + shifts[k] < qmin || hi + shifts[k] > qmax) continue;
    for (int64_t i = 0; i < n; i++) q[i] += shifts[k];
    return q;
  }
  lb_free(q);
  return NULL;
}

/* Nodes the normalization appends, each with the original node it must come before. */
typedef struct added {
  uint32_t n_old;   /* nodes before the pass */
  uint32_t *before; /* per appended node: the original node it precedes */
  uint32_t cap;
} added;

static int note_added(added *a, uint32_t node, uint32_t before) {
  uint32_t i = node - a->n_old;
  if (i >= a->cap) {
    uint32_t cap = a->cap ? 2 * a->cap : 16;
    uint32_t *b = lb_realloc(a->before, cap * sizeof *b);
    if (!b) return LB_ERR_NOMEM;
    a->before = b, a->cap = cap;
  }
  a->before[i] = before;
  return 0;
}

/* Appends DQ(x, s, z) writing a new f32 value shaped like x's real tensor (named base:dq); the
 * node will precede original node `before`. The new value's id, or LB_NONE on OOM. */
static uint32_t add_dq(lb_graph *g, added *a, const uint32_t in[3], const char *base, int rank,
                       const int64_t *dims, uint32_t before) {
  char name[300];
  snprintf(name, sizeof name, "%.250s:dq", base);
  uint32_t y = lb_graph_add_value(g, name, LB_DTYPE_F32, rank, dims);
  uint32_t dq = y == LB_NONE ? LB_NONE : lb_graph_add_node(g, LB_OP_DEQUANTIZE, "", in, 3, &y, 1);
  if (dq == LB_NONE || note_added(a, dq, before)) return LB_NONE;
  g->nodes[dq].attr.axis = -1;
  return y;
}

/* Puts constant input k of node n back as DQ(integer constant, scale, zero point). 1 done, 0
 * not exact, or LB_ERR_NOMEM. */
static int unfold_operand(lb_graph *g, added *a, uint32_t n, uint32_t k, lb_dtype t) {
  const lb_value *x = &g->values[g->nodes[n].in[k]];
  int32_t z, *q = int_form(x, t, &z);
  if (!q) return 0;
  int64_t len = lb_value_numel(x), dims[LB_MAX_RANK];
  int rank = x->rank;
  memcpy(dims, x->dims, sizeof dims);
  uint8_t *b = lb_malloc((size_t)(len ? len : 1));
  for (int64_t i = 0; b && i < len; i++) b[i] = (uint8_t)q[i];
  char base[256], name[300];
  float s = x->q.scale[0];
  uint8_t zb = (uint8_t)z;
  snprintf(base, sizeof base, "%s", x->name);
  snprintf(name, sizeof name, "%.250s:q", base);
  uint32_t in[3] = {b ? lb_graph_add_const(g, name, t, rank, dims, b, (size_t)len) : LB_NONE};
  snprintf(name, sizeof name, "%.250s:scale", base);
  in[1] = lb_graph_add_const(g, name, LB_DTYPE_F32, 0, NULL, &s, sizeof s);
  snprintf(name, sizeof name, "%.250s:zero_point", base);
  in[2] = lb_graph_add_const(g, name, t, 0, NULL, &zb, 1);
  lb_free(q), lb_free(b);
  if (in[0] == LB_NONE || in[1] == LB_NONE || in[2] == LB_NONE) return LB_ERR_NOMEM;
  uint32_t y = add_dq(g, a, in, base, rank, dims, n);
  if (y == LB_NONE) return LB_ERR_NOMEM;
  g->nodes[n].in[k] = y;
  return 1;
}

static int is_copy(lb_op op) {
  return op == LB_OP_MAX_POOL || op == LB_OP_FLATTEN || op == LB_OP_RESHAPE ||
         op == LB_OP_TRANSPOSE || op == LB_OP_SQUEEZE || op == LB_OP_UNSQUEEZE;
}

/* Copy op n reads an fp32 value x (no DequantizeLinear) and only the per-tensor QuantizeLinear
 * q reads n: n reads DQ(Q(x)) with q's parameters instead, so the layer making x can end in
 * that Q (TensorRT-style QDQ: Conv -> Relu -> MaxPool -> Q). Exact: quantization is monotonic
 * and commutes with copies and max, and Q(DQ(Q(y))) = Q(y). 1 done, 0 no, or LB_ERR_NOMEM. */
static int sink_q(lb_graph *g, added *a, const uint32_t *uses, uint32_t q) {
  const lb_node *qn = &g->nodes[q];
  uint32_t n = g->values[qn->in[0]].producer;
  if (n == LB_NONE || n >= a->n_old || !is_copy(g->nodes[n].op) || qn->attr.axis >= 0 ||
      !lb_pass_single_use(g, uses, qn->in[0]))
    return 0;
  uint32_t x = g->nodes[n].in[0];
  if (g->values[x].data || is_dq_output(g, x) || g->values[x].dtype != LB_DTYPE_F32) return 0;
  uint32_t in[3] = {LB_NONE, qn->in[1], qn->n_in > 2 ? qn->in[2] : LB_NONE};
  uint32_t qin[3] = {x, in[1], in[2]}, n_qin = in[2] != LB_NONE ? 3 : 2;
  char name[300];
  int64_t dims[LB_MAX_RANK];
  int rank = g->values[x].rank;
  memcpy(dims, g->values[x].dims, sizeof dims);
  snprintf(name, sizeof name, "%.250s:q", g->values[x].name);
  lb_dtype t = g->values[qn->out[0]].dtype;
  in[0] = lb_graph_add_value(g, name, t, rank, dims);
  uint32_t qq = in[0] == LB_NONE ? LB_NONE
                                 : lb_graph_add_node(g, LB_OP_QUANTIZE, "", qin, n_qin, in, 1);
  if (qq == LB_NONE || note_added(a, qq, n)) return LB_ERR_NOMEM;
  g->nodes[qq].attr.axis = -1;
  if (in[2] == LB_NONE) { /* DQ's zero point: absent in Q means 0 of Q's dtype */
    uint8_t zero = 0;
    snprintf(name, sizeof name, "%.250s:zero_point", g->values[x].name);
    in[2] = lb_graph_add_const(g, name, t, 0, NULL, &zero, 1);
    if (in[2] == LB_NONE) return LB_ERR_NOMEM;
  }
  snprintf(name, sizeof name, "%s", g->values[x].name);
  uint32_t y = add_dq(g, a, in, name, rank, dims, n);
  if (y == LB_NONE) return LB_ERR_NOMEM;
  g->nodes[n].in[0] = y;
  return 1;
}

/* Moves the appended nodes in front of the original node each precedes (creation order). */
static int reorder(lb_graph *g, const added *a) {
  uint32_t n_all = g->n_nodes;
  if (n_all == a->n_old) return 0;
  lb_node *old = lb_malloc(n_all * sizeof *old);
  if (!old) return LB_ERR_NOMEM;
  memcpy(old, g->nodes, n_all * sizeof *old);
  uint32_t at = 0;
  for (uint32_t n = 0; n < a->n_old; n++) {
    for (uint32_t k = a->n_old; k < n_all; k++)
      if (a->before[k - a->n_old] == n) g->nodes[at++] = old[k];
    g->nodes[at++] = old[n];
  }
  LB_ASSERT(at == n_all);
  for (uint32_t n = 0; n < n_all; n++) g->values[g->nodes[n].out[0]].producer = n;
  lb_free(old);
  return 0;
}

/* Binary ops whose output a per-tensor Q reads: constant operands back as DQ(integers). */
static int unfold_all(lb_graph *g, added *a, const uint32_t *uses) {
  for (uint32_t n = 0; n < a->n_old; n++) {
    lb_op op = g->nodes[n].op;
    if ((op != LB_OP_ADD && op != LB_OP_SUB && op != LB_OP_MUL) || g->nodes[n].n_in != 2) continue;
    lb_dtype t = q_dtype(g, uses, g->nodes[n].out[0]);
    for (uint32_t k = 0; k < 2 && t != LB_DTYPE_COUNT; k++) {
      const uint32_t *in = g->nodes[n].in; /* arena-owned: stays put when nodes move */
      const lb_value *x = &g->values[in[k]];
      if (x->data && x->dtype == LB_DTYPE_F32 && x->q.n == 1 && is_dq_output(g, in[1 - k]) &&
          unfold_operand(g, a, n, k, t) < 0)
        return LB_ERR_NOMEM;
    }
  }
  return 0;
}

/* One round: unfold constant operands, sink Qs in front of copies. *changed says whether a
 * copy got a new Q in front (a chain of copies takes one round per copy). */
static int round_once(lb_graph *g, const lb_pass_ctx *ctx, int first, int *changed) {
  added a = {g->n_nodes, NULL, 0};
  uint32_t *uses = lb_pass_count_uses(g, ctx->scratch);
  int rc = uses ? 0 : LB_ERR_NOMEM;
  if (!rc && first) rc = unfold_all(g, &a, uses);
  *changed = 0;
  for (uint32_t q = 0; !rc && q < a.n_old; q++) {
    if (g->nodes[q].op != LB_OP_QUANTIZE) continue;
    int r = sink_q(g, &a, uses, q);
    if (r < 0) rc = r;
    *changed |= r == 1;
  }
  if (!rc) rc = reorder(g, &a);
  lb_free(a.before);
  return rc;
}

int lb_pass_qdq_prepare(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag) {
  int rc = 0, changed = 1;
  for (int r = 0; !rc && changed && r < 16; r++) rc = round_once(g, ctx, r == 0, &changed);
  if (rc == LB_ERR_NOMEM) return lb_diag_err(diag, rc, "out of memory");
  return rc;
}

/* ---- the report ------------------------------------------------------------------------ */

/* Ops the QDQ import turns integer: kernels (k) and integer copies (c). */
static char qdq_kind(lb_op op) {
  switch (op) {
  case LB_OP_CONV: case LB_OP_GEMM: case LB_OP_MATMUL: case LB_OP_ADD: case LB_OP_SUB:
  case LB_OP_MUL: case LB_OP_RELU: case LB_OP_CLIP: case LB_OP_GLOBAL_AVG_POOL:
  case LB_OP_AVG_POOL: case LB_OP_LEAKY_RELU: case LB_OP_SIGMOID: case LB_OP_TANH:
  case LB_OP_HARD_SIGMOID: case LB_OP_HARD_SWISH: return 'k';
  case LB_OP_MAX_POOL: case LB_OP_FLATTEN: case LB_OP_RESHAPE: case LB_OP_TRANSPOSE:
  case LB_OP_SQUEEZE: case LB_OP_UNSQUEEZE: case LB_OP_IDENTITY: case LB_OP_CONCAT: return 'c';
  default: return 0;
  }
}

static int is_mac(lb_op op) { return op == LB_OP_CONV || op == LB_OP_GEMM || op == LB_OP_MATMUL; }

/* Readers of v: how many, and the QuantizeLinear among them (LB_NONE if none). */
static uint32_t readers(const lb_graph *g, uint32_t v, uint32_t *q) {
  uint32_t count = 0;
  *q = LB_NONE;
  for (uint32_t m = 0; m < g->n_nodes; m++)
    for (uint32_t k = 0; k < g->nodes[m].n_in; k++)
      if (g->nodes[m].in[k] == v) {
        count++;
        if (g->nodes[m].op == LB_OP_QUANTIZE && k == 0) *q = m;
      }
  return count;
}

static float dq_scale(const lb_graph *g, uint32_t dq) {
  const lb_value *s = &g->values[g->nodes[dq].in[1]];
  return s->data ? ((const float *)s->data)[0] : 0.0f;
}

static int dq_zero(const lb_graph *g, uint32_t dq) {
  if (g->nodes[dq].n_in < 3 || g->nodes[dq].in[2] == LB_NONE) return 0;
  const lb_value *z = &g->values[g->nodes[dq].in[2]];
  if (!z->data) return 0;
  return z->dtype == LB_DTYPE_I8 ? ((const int8_t *)z->data)[0] : ((const uint8_t *)z->data)[0];
}

/* Weights of more than 8 bits (the import's wide list), by name: the import renumbers values. */
typedef struct wide {
  const char **v;
  uint32_t n;
} wide;

static int is_wide(const wide *w, const char *name) {
  for (uint32_t i = 0; w && i < w->n; i++)
    if (!strcmp(w->v[i], name)) return 1;
  return 0;
}

#define NO_16BIT "no 16-bit integer combination, runs fp32 (QuantizeLinear/DequantizeLinear " \
                 "simulated exactly)"

/* Why input k of node n keeps it fp32: pass 0 looks at what the input is (a constant, no
 * DequantizeLinear), pass 1 at its DequantizeLinear. NULL when the input looks fine. */
static const char *input_why(const lb_graph *g, uint32_t n, uint32_t k, uint32_t q, int pass,
                             const wide *w, char *buf, size_t cap) {
  const lb_node *nd = &g->nodes[n];
  const lb_value *x = &g->values[nd->in[k]];
  int mac = is_mac(nd->op), weight = mac && k == 1, bias = mac && k == 2;
  if (x->data && x->dtype == LB_DTYPE_F32 && (bias || (weight && x->q.n))) return NULL;
  if (pass == 0) {
    if (weight && is_wide(w, x->name))
      snprintf(buf, cap, "input[%u] '%s' has weights beyond 8 bits (16-bit QDQ): " NO_16BIT, k,
               x->name);
    else if (x->data && x->q.n)
      snprintf(buf, cap, "input[%u] '%s' is a dequantized constant: only conv/gemm/matmul "
               "weights and biases may be", k, x->name);
    else if (x->data)
      snprintf(buf, cap, "input[%u] '%s' is an fp32 constant, not a DequantizeLinear of "
               "integers", k, x->name);
    else if (!is_dq_output(g, nd->in[k]))
      snprintf(buf, cap, "input[%u] '%s' is fp32 (no DequantizeLinear before it)", k, x->name);
    else
      return NULL;
    return buf;
  }
  uint32_t dq = x->producer;
  const lb_value *s = &g->values[g->nodes[dq].in[1]], *xi = &g->values[g->nodes[dq].in[0]];
  lb_dtype qt = q != LB_NONE ? g->values[g->nodes[q].out[0]].dtype : xi->dtype;
  if (xi->dtype == LB_DTYPE_I16)
    snprintf(buf, cap, "input[%u] '%s' is 16-bit: " NO_16BIT, k, x->name);
  else if (xi->dtype == LB_DTYPE_I32 && !xi->data)
    snprintf(buf, cap, "input[%u] '%s' is an int32 accumulator (no QuantizeLinear after the "
             "layer that makes it)", k, x->name);
  else if (!s->data)
    snprintf(buf, cap, "input[%u]: DequantizeLinear with a run-time scale", k);
  else if (!weight && lb_value_numel(s) > 1)
    snprintf(buf, cap, "input[%u]: per-axis parameters on an activation", k);
  else if (!weight && xi->dtype != qt)
    snprintf(buf, cap, "input[%u] is %s but its QuantizeLinear gives %s", k,
             lb_dtype_name(xi->dtype), lb_dtype_name(qt));
  else if (q != LB_NONE && qdq_kind(nd->op) == 'c' &&
           (dq_scale(g, dq) != dq_scale(g, q) || dq_zero(g, dq) != dq_zero(g, q)))
    snprintf(buf, cap, "input[%u] has scale %g, zero point %d but the output %g, %d (%s "
             "copies integers: one scale and zero point)", k, dq_scale(g, dq), dq_zero(g, dq),
             dq_scale(g, q), dq_zero(g, q), lb_op_get(nd->op)->name);
  else
    return NULL;
  return buf;
}

/* Why node n (fp32 after the QDQ import, next to QDQ nodes) stayed fp32. */
static void why_fp32(const lb_graph *g, uint32_t n, const wide *w, char *buf, size_t cap) {
  const lb_node *nd = &g->nodes[n];
  uint32_t q, nr = readers(g, nd->out[0], &q);
  if (!qdq_kind(nd->op)) {
    snprintf(buf, cap, "%s has no integer kernel", lb_op_get(nd->op)->name);
    return;
  }
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t k = 0; k < nd->n_in; k++)
      if (nd->in[k] != LB_NONE && input_why(g, n, k, q, pass, w, buf, cap)) return;
  if (q != LB_NONE && g->values[g->nodes[q].out[0]].dtype == LB_DTYPE_I16)
    snprintf(buf, cap, "its QuantizeLinear is 16-bit: " NO_16BIT);
  else if (q == LB_NONE && is_mac(nd->op))
    snprintf(buf, cap, "no QuantizeLinear after it, and a fused activation or residual needs one");
  else if (q == LB_NONE)
    snprintf(buf, cap, "its output is not quantized (no QuantizeLinear reads it)");
  else if (nr > 1)
    snprintf(buf, cap, "its output has %u readers (the QuantizeLinear must be the only one)", nr);
  else if (!g->values[g->nodes[q].in[1]].data || lb_value_numel(&g->values[g->nodes[q].in[1]]) > 1)
    snprintf(buf, cap, "its QuantizeLinear is per-axis or has a run-time scale");
  else
    snprintf(buf, cap, "the integer kernel does not take this form (per-channel weight axis, "
             "weights not constant)");
}

static int touches_qdq(const lb_graph *g, uint32_t n) {
  uint32_t q;
  for (uint32_t k = 0; k < g->nodes[n].n_in; k++)
    if (g->nodes[n].in[k] != LB_NONE && is_dq_output(g, g->nodes[n].in[k])) return 1;
  return readers(g, g->nodes[n].out[0], &q) && q != LB_NONE;
}

static int report(const lb_graph *g, const wide *w, FILE *f) {
  uint32_t n_int = 0, n_f32 = 0;
  char why[300];
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    lb_op op = g->nodes[n].op;
    if (op == LB_OP_QUANTIZE || op == LB_OP_DEQUANTIZE) continue;
    if (!lb_dtype_is_float(g->values[g->nodes[n].out[0]].dtype)) {
      n_int++;
      continue;
    }
    if (!touches_qdq(g, n)) continue;
    if (!n_f32++ && f) fprintf(f, "QDQ layers left fp32:\n");
    why_fp32(g, n, w, why, sizeof why);
    if (f)
      fprintf(f, "  %3u %-28.28s %-16s f32  %s\n", n, g->nodes[n].name ? g->nodes[n].name : "",
              lb_op_get(op)->name, why);
  }
  if (f) fprintf(f, "QDQ import: %u integer layers, %u fp32 next to QDQ nodes\n", n_int, n_f32);
  return (int)n_f32;
}

int lb_qdq_report(const lb_graph *g, FILE *f) { return report(g, NULL, f); }

/* Whether the integers of folded constant x (its lb_quant) fit in int8 or uint8. */
static int fits_8bit(const lb_value *x) {
  const lb_quant *q = &x->q;
  int64_t n = lb_value_numel(x), inner = 1;
  for (int d = q->axis + 1; q->n > 1 && d < x->rank; d++) inner *= x->dims[d];
  int s8 = 1, u8 = 1;
  for (int64_t i = 0; i < n && (s8 || u8); i++) {
    int64_t k = q->n > 1 ? (i / inner) % q->n : 0;
    int32_t v = lb_qquantize(((const float *)x->data)[i], q->scale[k],
                             q->zero_point ? q->zero_point[k] : 0, INT32_MIN, INT32_MAX);
    s8 &= v >= -128 && v <= 127, u8 &= v >= 0 && v <= 255;
  }
  return s8 || u8;
}

/* Folded conv/gemm/matmul weights wider than 8 bits (16-bit QDQ) lose their parameters, so
 * the import leaves their layers fp32 on the exact dequantized values; listed in *w. */
static int strip_wide(lb_graph *g, wide *w) {
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    if (!is_mac(g->nodes[n].op) || g->nodes[n].n_in < 2) continue;
    uint32_t v = g->nodes[n].in[1];
    lb_value *x = &g->values[v];
    if (!x->data || x->dtype != LB_DTYPE_F32 || !x->q.n || fits_8bit(x)) continue;
    const char **p = lb_realloc(w->v, (w->n + 1) * sizeof *p);
    if (!p) return LB_ERR_NOMEM;
    w->v = p, w->v[w->n++] = x->name;
    x->q = (lb_quant){-1, 0, NULL, NULL};
  }
  return 0;
}

int lb_qdq_import(lb_graph *g, FILE *out, lb_diag *diag) {
  lb_arena scratch;
  lb_arena_init(&scratch);
  lb_pass_ctx ctx = {&scratch, 1};
  wide w = {NULL, 0};
  int rc = strip_wide(g, &w) ? lb_diag_err(diag, LB_ERR_NOMEM, "out of memory") : 0;
  if (!rc) rc = lb_pass_qdq_prepare(g, &ctx, diag);
  lb_arena_free(&scratch);
  if (!rc) rc = lb_graph_verify(g, diag);
  if (rc) lb_diag_prefix(diag, "qdq_prepare");
  if (!rc) rc = lb_quant_qdq_import(g, diag);
  if (!rc && out) report(g, &w, out);
  lb_free(w.v);
  return rc;
}
