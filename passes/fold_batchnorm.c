/* fold_batchnorm: y = bn(conv(x, w, b)) becomes conv(x, w*k, b*k + (beta - mean*k)) with
 * k = scale / sqrt(var + eps) per output channel; gemm with constant B (and C) likewise per
 * column. Requires: the conv/gemm output feeds only the batchnorm, has no fused act or residual,
 * and every operand involved is a constant f32 tensor. New constants are made (weights may be
 * shared); the batchnorm node goes and the graph is compacted. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "passes.h"

static const float *cdata(const lb_graph *g, uint32_t v) {
  if (v == LB_NONE || v >= g->n_values) return NULL;
  const lb_value *x = &g->values[v];
  return x->data && x->dtype == LB_DTYPE_F32 && x->q.n == 0 ? x->data : NULL;
}

/* k and shift per channel from the batchnorm's constants; 0 if they are not all constant. */
static int bn_coeffs(const lb_graph *g, const lb_node *bn, int64_t ch, double *k, double *sh) {
  const float *s = cdata(g, bn->in[1]), *b = cdata(g, bn->in[2]);
  const float *m = cdata(g, bn->in[3]), *v = cdata(g, bn->in[4]);
  if (!s || !b || !m || !v) return 0;
  for (int i = 1; i < 5; i++)
    if (lb_value_numel(&g->values[bn->in[i]]) != ch) return 0;
  for (int64_t c = 0; c < ch; c++) {
    k[c] = (double)s[c] / sqrt((double)v[c] + (double)bn->attr.epsilon);
    sh[c] = (double)b[c] - (double)m[c] * k[c];
  }
  return 1;
}

/* conv: w[M, C/G, ...] scaled per output channel m; bias b*k + shift. */
static int fold_conv(lb_graph *g, uint32_t cn, const double *k, const double *sh, lb_arena *s) {
  const lb_node *c = &g->nodes[cn];
  const lb_value *w = &g->values[c->in[1]];
  int64_t m = w->dims[0], per = lb_value_numel(w) / (m ? m : 1);
  const float *wd = w->data, *bd = c->n_in > 2 ? cdata(g, c->in[2]) : NULL;
  float *nw = lb_arena_array(s, (size_t)(m * per) + 1, sizeof(float));
  float *nb = lb_arena_array(s, (size_t)m + 1, sizeof(float));
  if (!nw || !nb) return LB_ERR_NOMEM;
  for (int64_t o = 0; o < m; o++) {
    for (int64_t i = 0; i < per; i++) nw[o * per + i] = (float)(wd[o * per + i] * k[o]);
    nb[o] = (float)((bd ? bd[o] : 0.0) * k[o] + sh[o]);
  }
  char base[256];
  snprintf(base, sizeof base, "%.240s.bn", w->name);
  int64_t bdims[1] = {m};
  int rank = w->rank;
  int64_t wdims[LB_MAX_RANK];
  memcpy(wdims, w->dims, sizeof wdims);
  uint32_t vw = lb_pass_add_f32(g, base, rank, wdims, nw);
  snprintf(base, sizeof base, "%.240s.bias", g->values[g->nodes[cn].out[0]].name);
  uint32_t vb = vw == LB_NONE ? LB_NONE : lb_pass_add_f32(g, base, 1, bdims, nb);
  if (vb == LB_NONE) return LB_ERR_NOMEM;
  /* grow the input list first: on OOM the conv is left as it was */
  LB_TRY(lb_pass_set_input(g, cn, 2, g->nodes[cn].n_in > 2 ? g->nodes[cn].in[2] : LB_NONE));
  g->nodes[cn].in[1] = vw;
  g->nodes[cn].in[2] = vb;
  return 0;
}

/* gemm: Y = alpha A B' + beta C; column j of B' scaled by k[j]; new C (beta 1) holds
 * beta*C*k + shift, as [N] unless C varies per row ([M,N]). */
static int fold_gemm(lb_graph *g, uint32_t gn, const double *k, const double *sh, lb_arena *s) {
  lb_node *nd = &g->nodes[gn];
  const lb_value *b = &g->values[nd->in[1]], *y = &g->values[nd->out[0]];
  int64_t M = y->dims[0], N = y->dims[1], K = lb_value_numel(b) / (N ? N : 1);
  const float *bd = b->data, *cd = nd->n_in > 2 ? cdata(g, nd->in[2]) : NULL;
  const lb_value *cv = cd ? &g->values[nd->in[2]] : NULL;
  int64_t sr = cv && cv->rank == 2 && cv->dims[0] != 1 ? cv->dims[1] : 0;
  int64_t sc = cv && cv->rank >= 1 && cv->dims[cv->rank - 1] != 1 ? 1 : 0;
  int64_t rows = sr ? M : 1;
  float *nb = lb_arena_array(s, (size_t)(K * N) + 1, sizeof(float));
  float *nc = lb_arena_array(s, (size_t)(rows * N) + 1, sizeof(float));
  if (!nb || !nc) return LB_ERR_NOMEM;
  for (int64_t i = 0; i < K * N; i++) {
    int64_t j = nd->attr.trans_b ? i / K : i % N; /* B is [N,K] or [K,N] */
    nb[i] = (float)(bd[i] * k[j]);
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < N; j++)
      nc[r * N + j] = (float)((cd ? nd->attr.beta * (double)cd[r * sr + j * sc] : 0.0) * k[j] + sh[j]);
  char base[256];
  snprintf(base, sizeof base, "%.240s.bn", b->name);
  int64_t bdims[LB_MAX_RANK], cdims[2] = {rows, N};
  memcpy(bdims, b->dims, sizeof bdims);
  uint32_t vb = lb_pass_add_f32(g, base, b->rank, bdims, nb);
  snprintf(base, sizeof base, "%.240s.bias", g->values[g->nodes[gn].out[0]].name);
  uint32_t vc = vb == LB_NONE ? LB_NONE
                              : lb_pass_add_f32(g, base, sr ? 2 : 1, sr ? cdims : cdims + 1, nc);
  if (vc == LB_NONE) return LB_ERR_NOMEM;
  LB_TRY(lb_pass_set_input(g, gn, 2, g->nodes[gn].n_in > 2 ? g->nodes[gn].in[2] : LB_NONE));
  g->nodes[gn].in[1] = vb;
  g->nodes[gn].in[2] = vc;
  g->nodes[gn].attr.beta = 1.0f;
  return 0;
}

/* The producer of bn's input if it can absorb bn, else LB_NONE. */
static uint32_t foldable(const lb_graph *g, const lb_node *bn, const uint32_t *uses) {
  uint32_t x = bn->in[0], p = g->values[x].producer;
  if (p == LB_NONE || !lb_pass_single_use(g, uses, x)) return LB_NONE;
  const lb_node *nd = &g->nodes[p];
  if (nd->op != LB_OP_CONV && nd->op != LB_OP_GEMM) return LB_NONE;
  if (nd->attr.act != LB_ACT_NONE || (nd->n_in > 3 && nd->in[3] != LB_NONE)) return LB_NONE;
  if (!cdata(g, nd->in[1]) || (nd->n_in > 2 && nd->in[2] != LB_NONE && !cdata(g, nd->in[2])))
    return LB_NONE;
  const lb_value *y = &g->values[x];
  if (y->dtype != LB_DTYPE_F32 || y->rank < 2) return LB_NONE;
  if (nd->op == LB_OP_GEMM && (y->rank != 2 || g->values[nd->in[1]].rank != 2)) return LB_NONE;
  if (nd->op == LB_OP_CONV && g->values[nd->in[1]].dims[0] != y->dims[1]) return LB_NONE;
  return p;
}

int lb_pass_fold_batchnorm(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag) {
  uint32_t *uses = lb_pass_count_uses(g, ctx->scratch);
  unsigned char *dead = lb_arena_alloc(ctx->scratch, g->n_nodes + 1);
  if (!uses || !dead) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  int folded = 0;
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    if (g->nodes[n].op != LB_OP_BATCHNORM) continue;
    uint32_t p = foldable(g, &g->nodes[n], uses);
    if (p == LB_NONE) continue;
    int64_t ch = g->values[g->nodes[n].in[0]].dims[1];
    double *k = lb_arena_array(ctx->scratch, (size_t)ch + 1, sizeof(double));
    double *sh = lb_arena_array(ctx->scratch, (size_t)ch + 1, sizeof(double));
    if (!k || !sh) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
    if (!bn_coeffs(g, &g->nodes[n], ch, k, sh)) continue;
    int rc = g->nodes[p].op == LB_OP_CONV ? fold_conv(g, p, k, sh, ctx->scratch)
                                          : fold_gemm(g, p, k, sh, ctx->scratch);
    if (rc) return lb_diag_err(diag, rc, "out of memory");
    lb_pass_take_output(g, p, n);
    dead[n] = 1;
    folded++;
  }
  if (folded && lb_pass_remove_nodes(g, dead)) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  return 0;
}
