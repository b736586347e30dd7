/* Annotate: decides, from the target spec alone, which layers of a prepared fp32 graph run in
 * integer arithmetic and which tensors are quantized, and records why a layer stays fp32.
 * No branch here looks at a target's name: every decision is a spec query (lb_spec_find on the
 * layer's op kind) or a property of lowbit's own integer kernels (interp_int.c).
 * Invariant: a value is quantized iff an integer layer produces or reads it. */
#include <stdio.h>
#include <string.h>

#include "quantize.h"

/* Role of input k of node n when the node runs in integer arithmetic. */
static lb_qrole input_role(const lb_graph *g, const lb_node *n, uint32_t k) {
  switch (n->op) {
  case LB_OP_CONV:
  case LB_OP_GEMM:
    return k == 1 ? LB_QROLE_WEIGHT : k == 2 ? LB_QROLE_BIAS : LB_QROLE_ACT;
  case LB_OP_MATMUL:
    return k == 1 && g->values[n->in[1]].data ? LB_QROLE_WEIGHT : LB_QROLE_ACT;
  default: return LB_QROLE_ACT;
  }
}

/* Layout and copy ops: integer when their input is, on the same scale. A gather by constant
 * indices copies elements too. */
static int is_layout(const lb_graph *g, const lb_node *n) {
  switch (n->op) {
  case LB_OP_FLATTEN: case LB_OP_RESHAPE: case LB_OP_TRANSPOSE: case LB_OP_SQUEEZE:
  case LB_OP_UNSQUEEZE: case LB_OP_IDENTITY: case LB_OP_PAD: return 1;
  case LB_OP_GATHER: return g->values[n->in[1]].data != NULL;
  default: return 0;
  }
}

int lb_quant_plain_input(const lb_graph *g, const lb_node *n, uint32_t k) {
  return k == 1 && n->op == LB_OP_GATHER && g->values[n->in[1]].data;
}

/* Whether a div node divides by one finite positive constant (quantized, its integer value is
 * then positive: interp_int.c folds it into the requantize multiplier). */
static int const_divisor(const lb_graph *g, const lb_node *n) {
  const lb_value *b = &g->values[n->in[1]];
  if (!b->data || b->dtype != LB_DTYPE_F32 || lb_value_numel(b) != 1) return 0;
  float c = *(const float *)b->data;
  return c > 0 && c < 3.0e38f;
}

/* Which IR ops of a spec op kind lowbit can run in integer arithmetic, and the op-specific
 * conditions; NULL if fine, else the reason. */
static const char *kernel_gap(const lb_graph *g, const lb_node *n) {
  switch (n->op) {
  case LB_OP_GEMM: {
    if (!g->values[n->in[1]].data) return "gemm with a non-constant B has no integer kernel";
    if (n->attr.alpha != 1.0f || (n->n_in > 2 && n->in[2] != LB_NONE && n->attr.beta != 1.0f))
      return "integer gemm needs alpha = beta = 1";
    if (n->n_in > 2 && n->in[2] != LB_NONE) {
      int64_t nb = lb_value_numel(&g->values[n->in[2]]);
      int64_t N = g->values[n->out[0]].dims[1];
      if (nb != N && nb != 1) return "integer gemm needs a per-column bias";
    }
    return NULL;
  }
  case LB_OP_MATMUL:
    return g->values[n->in[1]].rank == 2 ? NULL : "integer matmul needs a rank-2 second operand";
  case LB_OP_CONV:
    return g->values[n->in[1]].data ? NULL : "conv with non-constant weights";
  case LB_OP_ADD: case LB_OP_SUB: case LB_OP_MUL: case LB_OP_RELU: case LB_OP_CLIP:
  case LB_OP_MAX_POOL: case LB_OP_GLOBAL_AVG_POOL: case LB_OP_CONCAT: return NULL;
  case LB_OP_AVG_POOL: return n->attr.n_spatial <= 2 ? NULL : "integer avg_pool is 1-D/2-D only";
  case LB_OP_LEAKY_RELU: case LB_OP_SIGMOID: case LB_OP_TANH: case LB_OP_HARD_SIGMOID:
  case LB_OP_HARD_SWISH: return NULL; /* 256-entry tables (lb_qlut) */
  case LB_OP_DIV:
    return const_divisor(g, n) ? NULL : "integer div needs one positive constant divisor";
  case LB_OP_REDUCE_MEAN: return NULL; /* an exact int32 sum, requantized (interp_int.c) */
  default: return "lowbit has no integer kernel for this op";
  }
}

static int some_input_integer(const lb_graph *g, const lb_qplan *p, const lb_node *n) {
  for (uint32_t k = 0; k < n->n_in; k++) {
    uint32_t v = n->in[k];
    if (v != LB_NONE && g->values[v].producer != LB_NONE && p->l[g->values[v].producer].integer)
      return 1;
  }
  return 0;
}

/* The spec combination node n would use with activation dtype act, or NULL with *why set. */
static const lb_spec_combo *find_combo(const lb_graph *g, const lb_spec *s, uint32_t id,
                                       lb_dtype act, char *why, size_t wn) {
  const lb_node *n = &g->nodes[id];
  int kind = lb_spec_opkind_of(g, id);
  if (kind < 0) {
    snprintf(why, wn, "no spec op kind covers %s", lb_op_get(n->op)->name);
    return NULL;
  }
  int w = lb_spec_opkind_has_weight((lb_spec_opkind)kind);
  const lb_spec_combo *c = lb_spec_find(s, (lb_spec_opkind)kind, act, w ? LB_DTYPE_I8 : act);
  /* a 7-bit weight row is the int8 path (AVX2 vpmaddubsw: u8 x s7 never saturates) where both
   * requantize in fp32 (calibrate gives narrow weights the search's scales, never a shift's) */
  const lb_spec_combo *c7 = w ? lb_spec_find(s, (lb_spec_opkind)kind, act, LB_DTYPE_I7) : NULL;
  if (c7 && c7->requant == LB_REQUANT_FP32 && (!c || c->requant == LB_REQUANT_FP32)) c = c7;
  const char *kn = lb_spec_opkind_name((lb_spec_opkind)kind);
  if (!c) {
    snprintf(why, wn, "spec has no %s combination for %s activations%s", kn, lb_dtype_name(act),
             w ? " and i8 weights" : "");
  } else if (c->out != act || (w && !(c->weight_scheme & LB_SCHEME_SYMMETRIC))) {
    snprintf(why, wn, "spec %s.%s: output %s / weight scheme do not fit", kn, c->label,
             lb_dtype_name(c->out));
    c = NULL;
  } else if (kind == LB_SPEC_MATMUL && c->weight != act) {
    snprintf(why, wn, "spec matmul.%s mixes %s and %s operands", c->label, lb_dtype_name(act),
             lb_dtype_name(c->weight));
    c = NULL;
  }
  return c;
}

/* (bin) Whether node id can be a binary layer (quant.h lb_binary_node) by its shape: a conv
 * (1-D or 2-D, any group), a gemm, or a matmul by a constant [K, N] (realized as a gemm). */
int lb_quant_binary_layer(const lb_graph *g, uint32_t id) {
  const lb_node *n = &g->nodes[id];
  if (n->n_in < 2 || n->in[1] == LB_NONE || !g->values[n->in[1]].data) return 0;
  int r = g->values[n->in[0]].rank;
  if (n->op == LB_OP_GEMM) return 1;
  if (n->op == LB_OP_MATMUL) return r >= 2 && g->values[n->in[1]].rank == 2;
  return n->op == LB_OP_CONV && (r == 3 || r == 4);
}

/* ... and the plan set its threshold and magnitude; the spec row's output must be the plan's
 * activation dtype (the caller). */
static int binary_ok(const lb_graph *g, const lb_qplan *p, uint32_t id) {
  return p->l[id].bin_scale > 0 && lb_quant_binary_layer(g, id);
}

/* (search) The combination a plan asked for by label instead of the 8-bit one: same op kind,
 * the plan's activation dtype in and out, fp32 requantize, constant weights quantized
 * symmetrically to i8, i4 or i2 (lowbit's sub-byte weights); NULL if none fits. */
static const lb_spec_combo *wanted(const lb_graph *g, const lb_spec *s, const lb_qplan *p,
                                   uint32_t id, const char *label) {
  const lb_node *n = &g->nodes[id];
  int kind = lb_spec_opkind_of(g, id);
  if (kind < 0 || !lb_spec_opkind_has_weight((lb_spec_opkind)kind) || n->n_in < 2 ||
      !g->values[n->in[1]].data)
    return NULL;
  const lb_spec_combo *cs;
  size_t nc = lb_spec_combos(s, (lb_spec_opkind)kind, &cs);
  for (size_t i = 0; i < nc; i++) {
    const lb_spec_combo *c = &cs[i];
    if (strcmp(c->label, label) != 0) continue;
    int w = c->weight == LB_DTYPE_I8 || c->weight == LB_DTYPE_I4 || c->weight == LB_DTYPE_I2 ||
            lb_dtype_narrow8(c->weight);
    if (c->act == LB_DTYPE_B1 && c->weight == LB_DTYPE_B1)
      return c->out == p->act && c->requant == LB_REQUANT_FP32 && binary_ok(g, p, id) ? c : NULL;
    return c->act == p->act && c->out == p->act && c->requant == LB_REQUANT_FP32 && w &&
                   (c->weight_scheme & LB_SCHEME_SYMMETRIC)
               ? c : NULL;
  }
  return NULL;
}

/* Decides node id; the nodes before it are decided. */
static int decide(const lb_graph *g, const lb_spec *s, lb_qplan *p, uint32_t id) {
  const lb_node *n = &g->nodes[id];
  lb_qlayer *l = &p->l[id];
  int forced = l->forced_f32;
  const char *want = l->want, *want_at = l->want_at;
  int32_t bin_thr = l->bin_thr;
  float bin_scale = l->bin_scale;
  int rq = l->requant;
  const char *rq_at = l->rq_at;
  memset(l, 0, sizeof *l);
  l->forced_f32 = forced;
  l->want = want, l->want_at = want_at;
  l->bin_thr = bin_thr, l->bin_scale = bin_scale;
  l->requant = rq, l->rq_at = rq_at;
  l->combo = "f32";
  l->act = l->weight = l->out = LB_DTYPE_F32;
  const char *gap = is_layout(g, n) ? NULL : kernel_gap(g, n);
  const lb_spec_combo *c = NULL;
  if (forced) {
    snprintf(l->why, sizeof l->why, "fp32: set in the plan");
  } else if (is_layout(g, n)) {
    if (!some_input_integer(g, p, n)) {
      snprintf(l->why, sizeof l->why, "fp32: its input is fp32");
      return 0;
    }
    l->integer = 1;
    l->combo = lb_dtype_name(p->act);
    l->act = l->out = p->act;
    snprintf(l->why, sizeof l->why, "layout op on %s, same scale", lb_dtype_name(p->act));
  } else if (!(c = find_combo(g, s, id, p->act, l->why + 6, sizeof l->why - 6))) {
    memcpy(l->why, "fp32: ", 6);
  } else if (gap) {
    snprintf(l->why, sizeof l->why, "fp32: %s", gap);
  } else if (!c->weight_scheme && !some_input_integer(g, p, n)) {
    snprintf(l->why, sizeof l->why, "fp32: inputs are fp32 (alone it would only add quantize)");
  } else {
    const lb_spec_combo *wc = want && strcmp(want, c->label) != 0 ? wanted(g, s, p, id, want) : NULL;
    if (wc) c = wc;
    l->integer = 1;
    l->combo = lb_arena_strdup(&p->arena, c->label); /* the plan outlives the spec */
    if (!l->combo) return LB_ERR_NOMEM;
    l->act = c->act, l->out = c->out;
    l->weight = c->weight_scheme ? c->weight : LB_DTYPE_F32;
    /* an edited plan's requantize method wins over the spec's (a binary layer keeps fp32) */
    if (!rq_at || c->act == LB_DTYPE_B1 || c->requant == LB_REQUANT_NONE) l->requant = (int)c->requant;
    snprintf(l->why, sizeof l->why, "spec %s: %s x %s -> %s, requantize %s", c->label,
             lb_dtype_name(c->act), c->weight_scheme ? lb_dtype_name(c->weight) : "-",
             lb_dtype_name(c->out), lb_requant_name((lb_requant)l->requant));
  }
  return 0;
}

/* ---- values and classes ------------------------------------------------------------------- */

static uint32_t find(lb_qplan *p, uint32_t v) {
  while (p->v[v].cls != v) v = p->v[v].cls = p->v[p->v[v].cls].cls;
  return v;
}

static void unite(lb_qplan *p, uint32_t a, uint32_t b) {
  a = find(p, a), b = find(p, b);
  if (a == b) return;
  if (a > b) {
    uint32_t t = a;
    a = b, b = t;
  }
  p->v[b].cls = a;
  p->v[a].schemes &= p->v[b].schemes;
}

static int weight_axis(const lb_node *n) {
  if (n->op == LB_OP_GEMM) return n->attr.trans_b ? 0 : 1;
  return n->op == LB_OP_MATMUL ? 1 : 0;
}

/* A conv/gemm/matmul without fused epilogue whose output only fp32 layers (or the graph
 * output) read keeps its int32 accumulator: requantizing to 8 bits there would only add error
 * (and ties between close logits). */
static int acc_output(const lb_graph *g, const lb_qplan *p, uint32_t id) {
  const lb_node *n = &g->nodes[id];
  if (!(n->op == LB_OP_CONV || n->op == LB_OP_GEMM || n->op == LB_OP_MATMUL)) return 0;
  if (n->attr.act != LB_ACT_NONE || (n->n_in > 3 && n->in[3] != LB_NONE)) return 0;
  if (n->op == LB_OP_MATMUL && !g->values[n->in[1]].data) return 0;
  for (uint32_t m = id + 1; m < g->n_nodes; m++)
    for (uint32_t k = 0; k < g->nodes[m].n_in; k++)
      if (g->nodes[m].in[k] == n->out[0] && p->l[m].integer) return 0;
  return 1;
}

/* Marks the inputs and output of integer layer id. */
static void mark(const lb_graph *g, const lb_spec *s, lb_qplan *p, uint32_t id) {
  const lb_node *n = &g->nodes[id];
  int kind = lb_spec_opkind_of(g, id);
  const lb_spec_combo *c = NULL;
  if (kind >= 0 && !is_layout(g, n))
    c = lb_spec_find(s, (lb_spec_opkind)kind, p->act, p->l[id].weight == LB_DTYPE_F32 ? p->act : LB_DTYPE_I8);
  unsigned schemes = c ? c->act_scheme : LB_SCHEME_SYMMETRIC | LB_SCHEME_ASYMMETRIC;
  for (uint32_t k = 0; k < n->n_in; k++) {
    uint32_t v = n->in[k];
    if (v == LB_NONE || lb_quant_plain_input(g, n, k)) continue;
    lb_qval *q = &p->v[v];
    lb_qrole r = input_role(g, n, k);
    if (r == LB_QROLE_WEIGHT) {
      q->dtype = p->l[id].weight, q->role = r, q->symmetric = 1;
      q->axis = c && (c->granularity & LB_GRAN_PER_CHANNEL) ? weight_axis(n) : -1;
    } else if (r == LB_QROLE_BIAS) {
      q->dtype = LB_DTYPE_I32, q->role = r, q->symmetric = 1, q->bias_of = id;
    } else {
      q->dtype = p->act;
      q->role = g->values[v].data ? LB_QROLE_CONST : LB_QROLE_ACT;
      q->schemes &= schemes;
    }
  }
  lb_qval *o = &p->v[n->out[0]];
  o->dtype = p->act, o->role = LB_QROLE_ACT;
  o->schemes &= schemes;
  if (acc_output(g, p, id)) {
    o->dtype = LB_DTYPE_I32, o->role = LB_QROLE_ACC, o->bias_of = id, o->symmetric = 1;
    o->axis = g->values[n->out[0]].rank - (n->op == LB_OP_CONV ? g->values[n->out[0]].rank - 1 : 1);
    p->l[id].out = LB_DTYPE_I32;
    size_t k = strlen(p->l[id].why);
    snprintf(p->l[id].why + k, sizeof p->l[id].why - k, "; int32 output, dequantized");
  }
  int share = is_layout(g, n) || n->op == LB_OP_MAX_POOL ||
              (c && c->requant == LB_REQUANT_NONE);
  for (uint32_t k = 0; share && k < n->n_in; k++)
    if (n->in[k] != LB_NONE && p->v[n->in[k]].role != LB_QROLE_WEIGHT &&
        !lb_quant_plain_input(g, n, k))
      unite(p, n->in[k], n->out[0]);
}

/* The 8-bit activation dtype whose combinations cover the most MACs (then layers). */
static lb_dtype pick_act(const lb_graph *g, const lb_spec *s) {
  static const lb_dtype cand[] = {LB_DTYPE_I8, LB_DTYPE_U8};
  double best = -1;
  lb_dtype pick = LB_DTYPE_I8;
  const lb_spec_combo *cs;
  size_t nc = lb_spec_combos(s, LB_SPEC_CONV2D, &cs);
  int first_u8 = 0; /* spec order breaks ties: the first 8-bit conv2d combination listed */
  for (size_t i = 0; i < nc; i++)
    if (cs[i].act == LB_DTYPE_I8 || cs[i].act == LB_DTYPE_U8) {
      first_u8 = cs[i].act == LB_DTYPE_U8;
      break;
    }
  for (int ci = 0; ci < 2; ci++) {
    double score = 0;
    char why[8];
    for (uint32_t n = 0; n < g->n_nodes; n++) {
      if (!find_combo(g, s, n, cand[ci], why, sizeof why)) continue;
      const lb_value *y = &g->values[g->nodes[n].out[0]];
      score += 1.0 + (double)lb_value_numel(y) *
                         (g->nodes[n].n_in > 1 && g->values[g->nodes[n].in[1]].data
                              ? (double)lb_value_numel(&g->values[g->nodes[n].in[1]])
                              : 0.0);
    }
    if (score > best || (score == best && (cand[ci] == LB_DTYPE_U8) == first_u8))
      best = score, pick = cand[ci];
  }
  return pick;
}

/* (bin) Whether label names a binary combination (act and weight b1) of node n's op kind. */
static int is_binary_label(const lb_graph *g, const lb_spec *s, uint32_t n, const char *label) {
  int kind = lb_spec_opkind_of(g, n);
  const lb_spec_combo *cs;
  size_t nc = kind >= 0 ? lb_spec_combos(s, (lb_spec_opkind)kind, &cs) : 0;
  for (size_t i = 0; i < nc; i++)
    if (strcmp(cs[i].label, label) == 0) return cs[i].act == LB_DTYPE_B1;
  return 0;
}

/* (search) Every combination a plan asked for by label was honoured. */
static int check_wants(const lb_graph *g, const lb_spec *s, const lb_qplan *p, lb_diag *diag) {
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    const lb_qlayer *l = &p->l[n];
    if (!l->want || l->forced_f32 || (l->integer && strcmp(l->combo, l->want) == 0)) continue;
    return lb_diag_err(diag, LB_ERR_INPUT,
                       "%s: error: layer '%s': precision '%s' is not available (%s)",
                       l->want_at ? l->want_at : "plan", g->values[g->nodes[n].out[0]].name,
                       l->want,
                       !l->integer ? l->why
                       : l->bin_scale > 0 || !is_binary_label(g, s, n, l->want)
                           ? "not a weight combination lowbit realizes"
                           : "a binary layer needs its threshold and scale (binary: [t, s_b])");
  }
  return 0;
}

static int check_file_dtypes(const lb_graph *g, const lb_qplan *p, lb_diag *diag) {
  for (uint32_t v = 0; v < g->n_values; v++) {
    const lb_qval *q = &p->v[v];
    if (q->yaml_at && q->file_dtype != q->dtype)
      return lb_diag_err(diag, LB_ERR_INPUT, "%s: error: tensor '%s' is %s in this plan, not %s",
                         q->yaml_at, g->values[v].name, lb_dtype_name(q->dtype),
                         lb_dtype_name(q->file_dtype));
  }
  return 0;
}

int lb_quant_annotate(const lb_graph *g, const lb_spec *s, lb_qplan *p, lb_diag *diag) {
  if (p->n_values != g->n_values || p->n_nodes != g->n_nodes)
    return lb_diag_err(diag, LB_ERR_INTERNAL, "annotate: the plan was made for another graph");
  p->spec = lb_arena_strdup(&p->arena, lb_spec_name(s));
  if (!p->spec) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  p->act = pick_act(g, s);
  for (uint32_t v = 0; v < g->n_values; v++) {
    lb_qval *q = &p->v[v];
    q->dtype = LB_DTYPE_F32, q->role = LB_QROLE_ACT, q->cls = v, q->bias_of = LB_NONE;
    q->schemes = LB_SCHEME_SYMMETRIC | LB_SCHEME_ASYMMETRIC;
    q->symmetric = 0;
    if (!q->yaml_at) q->axis = -1;
  }
  for (uint32_t n = 0; n < g->n_nodes; n++)
    if (decide(g, s, p, n)) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  for (uint32_t n = 0; n < g->n_nodes; n++)
    if (p->l[n].integer) mark(g, s, p, n);
  for (uint32_t v = 0; v < g->n_values; v++) p->v[v].cls = find(p, v);
  LB_TRY(check_wants(g, s, p, diag));
  return check_file_dtypes(g, p, diag);
}
