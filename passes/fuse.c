/* fuse: (1) add(conv_or_gemm(...), r) with no broadcasting -> the conv/gemm reads r as residual
 * input 3 (a zero bias is added when absent); (2) relu/clip after conv/gemm/matmul/add ->
 * attr.act (+ act_min/act_max). The fused-away intermediate must have exactly one reader and
 * not be a graph output; the surviving node takes over the last value, so names and graph
 * outputs are unchanged. Only f32 producers with no fused act yet are candidates. */
#include <stdio.h>

#include "passes.h"

static int same_shape(const lb_value *a, const lb_value *b) {
  if (a->rank != b->rank) return 0;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return 0;
  return 1;
}

/* Value v is available before node n runs (input, constant, or produced earlier). */
static int ready_before(const lb_graph *g, uint32_t v, uint32_t n) {
  uint32_t p = g->values[v].producer;
  return p == LB_NONE || p < n;
}

/* Producer of add input k if it can take the other input as residual, else LB_NONE. */
static uint32_t residual_host(const lb_graph *g, const lb_node *add, int k, const uint32_t *uses) {
  uint32_t v = add->in[k], other = add->in[1 - k], p = g->values[v].producer;
  if (p == LB_NONE || !lb_pass_single_use(g, uses, v) || v == other) return LB_NONE;
  const lb_node *nd = &g->nodes[p];
  if (nd->op != LB_OP_CONV && nd->op != LB_OP_GEMM) return LB_NONE;
  if (nd->attr.act != LB_ACT_NONE || (nd->n_in > 3 && nd->in[3] != LB_NONE)) return LB_NONE;
  if (!ready_before(g, other, p)) return LB_NONE;
  return p;
}

/* A zero bias of the conv/gemm output's channel count (dim 1). */
static int add_zero_bias(lb_graph *g, uint32_t p, lb_arena *scratch) {
  const lb_value *y = &g->values[g->nodes[p].out[0]];
  int64_t ch[1] = {y->dims[1]};
  float *zero = lb_arena_array(scratch, (size_t)ch[0] + 1, sizeof(float));
  if (!zero) return LB_ERR_NOMEM;
  char base[256];
  snprintf(base, sizeof base, "%.240s.bias", y->name);
  uint32_t b = lb_pass_add_f32(g, base, 1, ch, zero);
  if (b == LB_NONE) return LB_ERR_NOMEM;
  if (g->nodes[p].op == LB_OP_GEMM) g->nodes[p].attr.beta = 1.0f;
  return lb_pass_set_input(g, p, 2, b);
}

static int fuse_residuals(lb_graph *g, const uint32_t *uses, unsigned char *dead, lb_arena *s) {
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    const lb_node *add = &g->nodes[n];
    if (add->op != LB_OP_ADD || add->attr.act != LB_ACT_NONE) continue;
    const lb_value *a = &g->values[add->in[0]], *b = &g->values[add->in[1]];
    const lb_value *y = &g->values[add->out[0]];
    if (y->dtype != LB_DTYPE_F32 || !same_shape(a, y) || !same_shape(b, y)) continue;
    /* both inputs may qualify: the later producer sees more values ready */
    uint32_t p0 = residual_host(g, add, 0, uses), p1 = residual_host(g, add, 1, uses);
    int k = p1 != LB_NONE && (p0 == LB_NONE || p1 > p0) ? 1 : 0;
    uint32_t p = k ? p1 : p0;
    if (p == LB_NONE) continue;
    uint32_t other = add->in[1 - k];
    const lb_node *host = &g->nodes[p];
    if (host->n_in < 3 || host->in[2] == LB_NONE) LB_TRY(add_zero_bias(g, p, s));
    LB_TRY(lb_pass_set_input(g, p, 3, other));
    lb_pass_take_output(g, p, n);
    dead[n] = 1;
  }
  return 0;
}

static int act_host_op(lb_op op) {
  return op == LB_OP_CONV || op == LB_OP_GEMM || op == LB_OP_MATMUL || op == LB_OP_ADD;
}

static void fuse_acts(lb_graph *g, const uint32_t *uses, unsigned char *dead) {
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    const lb_node *act = &g->nodes[n];
    if (dead[n] || (act->op != LB_OP_RELU && act->op != LB_OP_CLIP)) continue;
    uint32_t v = act->in[0], p = g->values[v].producer;
    if (p == LB_NONE || dead[p] || !lb_pass_single_use(g, uses, v)) continue;
    lb_node *host = &g->nodes[p];
    if (!act_host_op(host->op) || host->attr.act != LB_ACT_NONE) continue;
    if (g->values[v].dtype != LB_DTYPE_F32 || g->values[act->out[0]].dtype != LB_DTYPE_F32)
      continue;
    if (act->op == LB_OP_RELU) {
      host->attr.act = LB_ACT_RELU;
    } else {
      host->attr.act = LB_ACT_CLIP;
      host->attr.act_min = act->attr.clip_min;
      host->attr.act_max = act->attr.clip_max;
    }
    lb_pass_take_output(g, p, n);
    dead[n] = 1;
  }
}

int lb_pass_fuse(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag) {
  uint32_t *uses = lb_pass_count_uses(g, ctx->scratch);
  unsigned char *dead = lb_arena_alloc(ctx->scratch, g->n_nodes + 1);
  if (!uses || !dead) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  if (fuse_residuals(g, uses, dead, ctx->scratch))
    return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  /* the residual rule moved reads between nodes (dead ones read nothing): count again */
  uses = lb_pass_count_uses(g, ctx->scratch);
  if (!uses) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  fuse_acts(g, uses, dead);
  for (uint32_t n = 0; n < g->n_nodes; n++)
    if (dead[n]) return lb_pass_remove_nodes(g, dead) ? lb_diag_err(diag, LB_ERR_NOMEM, "out of memory") : 0;
  return 0;
}
