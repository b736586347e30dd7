/* The modeled cost of a layer from the target spec alone: multiply-accumulates over the
 * combination's sustained rate (macs_per_cycle x efficiency), output elements over its
 * elements_per_cycle (requantize, elementwise work), plus weight and activation bytes over the
 * bandwidth of the memory level they come from. Invariant: every figure is a spec query; no
 * branch looks at a target's name, and costs are additive (cycles of one core). */
#include <math.h>

#include "search.h"

double lb_cost_total(const lb_cost *c) { return c->compute + c->epilogue + c->memory; }

/* Multiply-accumulates of a MAC node: output elements times the reduction length. */
static int64_t node_macs(const lb_graph *g, const lb_node *n) {
  const lb_value *y = &g->values[n->out[0]], *a = &g->values[n->in[0]];
  int64_t k = 0;
  if (n->op == LB_OP_CONV) {
    const lb_value *w = &g->values[n->in[1]];
    k = w->rank >= 2 ? w->dims[1] : 0;
    for (int d = 2; d < w->rank; d++) k *= w->dims[d];
  } else if (n->op == LB_OP_GEMM) {
    k = a->rank == 2 ? a->dims[n->attr.trans_a ? 0 : 1] : 0;
  } else if (n->op == LB_OP_MATMUL) {
    k = a->rank >= 1 ? a->dims[a->rank - 1] : 0;
  }
  return lb_value_numel(y) * k;
}

int64_t lb_cost_weight_bytes(const lb_graph *g, uint32_t id, lb_dtype wdt) {
  const lb_node *n = &g->nodes[id];
  if (n->op != LB_OP_CONV && n->op != LB_OP_GEMM && n->op != LB_OP_MATMUL) return 0;
  if (n->n_in < 2 || !g->values[n->in[1]].data) return 0;
  const lb_value *w = &g->values[n->in[1]];
  int64_t bytes = (int64_t)lb_dtype_bytes(wdt, lb_value_numel(w));
  if (n->n_in > 2 && n->in[2] != LB_NONE) bytes += 4 * lb_value_numel(&g->values[n->in[2]]);
  /* per-channel scales of a quantized weight: one fp32 per output channel */
  if (wdt != LB_DTYPE_F32) bytes += 4 * (w->rank ? w->dims[n->op == LB_OP_CONV ? 0 : w->rank - 1] : 1);
  return bytes;
}

/* Bandwidth of the smallest level holding `bytes`, and that level (1..3, 4 = DRAM). */
static int level_of(const lb_spec *s, int64_t bytes, double *bw) {
  int levels = lb_spec_cache_levels(s);
  for (int l = 1; l <= levels; l++) {
    lb_spec_mem m;
    if (lb_spec_memory(s, l, &m) == 0 && bytes <= m.bytes) {
      *bw = m.bytes_per_cycle;
      return l;
    }
  }
  *bw = lb_spec_dram_bytes_per_cycle(s);
  return 4;
}

int lb_cost_weight_level(const lb_spec *s, int64_t weight_bytes, double *bytes_per_cycle) {
  return level_of(s, weight_bytes, bytes_per_cycle);
}

static double per_cycle(double x, double rate) { return rate > 0 ? x / rate : x; }

/* Element rate of a combination (elements_per_cycle x efficiency), 0 if it has none. */
static double elem_rate(const lb_spec_combo *c) {
  return c ? c->elements_per_cycle * c->efficiency : 0;
}

/* fp32 element rate of kind k (or of activations), the fallback for uncovered ops. */
static double f32_elem_rate(const lb_spec *s, int kind) {
  const lb_spec_combo *c = NULL;
  if (kind >= 0) c = lb_spec_find(s, (lb_spec_opkind)kind, LB_DTYPE_F32, LB_DTYPE_F32);
  if (!c) c = lb_spec_find(s, LB_SPEC_ACTIVATION, LB_DTYPE_F32, LB_DTYPE_F32);
  double r = elem_rate(c);
  return r > 0 ? r : 1.0;
}

/* Activation bytes a node reads and writes (first input, residual, output) and their cost. */
static double act_memory(const lb_spec *s, const lb_graph *g, const lb_node *n, lb_dtype act) {
  int bits = act == LB_DTYPE_B1 ? 8 : lb_dtype_bits(act); /* binary reads 8-bit, packs inside */
  int64_t el = lb_value_numel(&g->values[n->out[0]]);
  for (uint32_t k = 0; k < n->n_in; k++) {
    uint32_t v = n->in[k];
    if (v == LB_NONE || g->values[v].data) continue;
    /* a gather reads only the elements it copies */
    el += n->op == LB_OP_GATHER ? lb_value_numel(&g->values[n->out[0]]) : lb_value_numel(&g->values[v]);
  }
  int64_t bytes = el * bits / 8;
  double bw;
  level_of(s, bytes, &bw);
  return per_cycle((double)bytes, bw);
}

lb_cost lb_cost_node(const lb_spec *s, const lb_graph *g, uint32_t id, const lb_spec_combo *c,
                     lb_dtype act, lb_dtype wdt, double wbw) {
  const lb_node *n = &g->nodes[id];
  lb_cost r = {0, 0, 0};
  switch (n->op) { /* views: the backend lowers them to nothing */
  case LB_OP_FLATTEN: case LB_OP_RESHAPE: case LB_OP_SQUEEZE: case LB_OP_UNSQUEEZE:
  case LB_OP_IDENTITY: return r;
  default: break;
  }
  int kind = lb_spec_opkind_of(g, id);
  if (!c && kind >= 0)
    c = lb_spec_find(s, (lb_spec_opkind)kind, act, lb_spec_opkind_has_weight((lb_spec_opkind)kind) ? wdt : act);
  if (!c && kind < 0 && !lb_dtype_is_float(act)) { /* a layout op (pad, transpose) in an */
    lb_cost r2 = {0, 0, act_memory(s, g, n, act)}; /* integer region moves its dtype's bytes */
    const lb_spec_combo *a = lb_spec_find(s, LB_SPEC_ACTIVATION, act, act);
    r2.epilogue = per_cycle((double)lb_value_numel(&g->values[n->out[0]]),
                            elem_rate(a) > 0 ? elem_rate(a) : f32_elem_rate(s, kind));
    return r2;
  }
  if (!c) act = LB_DTYPE_F32;
  int64_t out_el = lb_value_numel(&g->values[n->out[0]]);
  int64_t in_el = n->n_in && n->in[0] != LB_NONE ? lb_value_numel(&g->values[n->in[0]]) : 0;
  if (kind >= 0 && lb_spec_opkind_has_weight((lb_spec_opkind)kind) && c && c->macs_per_cycle > 0) {
    r.compute = per_cycle((double)node_macs(g, n), lb_spec_combo_rate(c));
    /* the epilogue is its own vector loop: elements_per_cycle is its rate, the efficiency
     * figure describes the MAC loop */
    double er = c->elements_per_cycle > 0 ? c->elements_per_cycle : f32_elem_rate(s, kind);
    int64_t ep = out_el;
    if (c->act == LB_DTYPE_B1) ep += in_el; /* binarizing the input */
    if (n->n_in > 3 && n->in[3] != LB_NONE) ep += out_el; /* residual */
    r.epilogue = per_cycle((double)ep, er);
    r.memory = per_cycle((double)lb_cost_weight_bytes(g, id, wdt), wbw);
  } else {
    int64_t el = n->op == LB_OP_MAX_POOL || n->op == LB_OP_AVG_POOL ||
                         n->op == LB_OP_GLOBAL_AVG_POOL || n->op == LB_OP_REDUCE_MEAN
                     ? in_el : out_el;
    double er = elem_rate(c) > 0 ? elem_rate(c) : f32_elem_rate(s, kind);
    r.epilogue = per_cycle((double)el, er);
  }
  r.memory += act_memory(s, g, n, act);
  return r;
}
