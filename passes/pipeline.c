/* The pass registry, lb_pass_run_list (the "# passes:" line of golden files and the driver's
 * pipeline), and the small graph-editing helpers passes share. Invariant: after every pass the
 * runner verifies the graph (when asked) and frees the pass's scratch arena. */
#include <stdio.h>
#include <string.h>

#include "passes.h"

int lb_pass_compact(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag) {
  (void)ctx;
  if (lb_graph_compact(g)) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  return 0;
}

/*  name              function                what */
static const lb_pass_info registry[] = {
    {"fold_batchnorm", lb_pass_fold_batchnorm, "fold batchnorm into the preceding conv/gemm"},
    {"fuse", lb_pass_fuse, "fuse relu/clip and residual adds into conv/gemm/matmul/add"},
    {"compact", lb_pass_compact, "remove dead nodes and unused values"},
    {NULL, NULL, NULL},
};

const lb_pass_info *lb_pass_registry(void) { return registry; }

const lb_pass_info *lb_pass_find(const char *name) {
  for (const lb_pass_info *p = registry; p->name; p++)
    if (strcmp(p->name, name) == 0) return p;
  return NULL;
}

static int run_one(lb_graph *g, const lb_pass_info *p, const lb_pass_ctx *ctx, lb_diag *diag) {
  lb_arena scratch;
  lb_arena_init(&scratch);
  lb_pass_ctx c = ctx ? *ctx : (lb_pass_ctx){NULL, 1};
  lb_arena *outer = c.scratch;
  if (!c.scratch) c.scratch = &scratch;
  int rc = p->fn(g, &c, diag), after = 0;
  if (!rc && c.verify) after = rc = lb_graph_verify(g, diag);
  if (rc == LB_ERR_NOMEM) lb_diag_err(diag, rc, "out of memory"); /* no-op when already set */
  if (rc) lb_diag_prefix(diag, "%s pass %s", after ? "after" : "in", p->name);
  lb_arena_free(outer ? outer : &scratch);
  return rc;
}

int lb_pass_run_list(lb_graph *g, const char *list, const lb_pass_ctx *ctx, lb_diag *diag) {
  const char *s = list ? list : "";
  while (*s) {
    while (*s == ' ' || *s == ',' || *s == '\t') s++;
    const char *e = s;
    while (*e && *e != ',' && *e != ' ' && *e != '\t') e++;
    if (e == s) break;
    char name[64];
    if ((size_t)(e - s) >= sizeof name)
      return lb_diag_err(diag, LB_ERR_INPUT, "pass name '%.20s...' is too long", s);
    memcpy(name, s, (size_t)(e - s));
    name[e - s] = 0;
    const lb_pass_info *p = lb_pass_find(name);
    if (!p)
      return lb_diag_err(diag, LB_ERR_INPUT, "unknown pass '%s' (known: fold_batchnorm, fuse, compact)",
                         name);
    LB_TRY(run_one(g, p, ctx, diag));
    s = e;
  }
  return 0;
}

int lb_pass_prepare_fp32(lb_graph *g, lb_diag *diag) {
  return lb_pass_run_list(g, LB_PASSES_FP32, NULL, diag);
}

/* ---- helpers ---------------------------------------------------------------------------- */

uint32_t *lb_pass_count_uses(const lb_graph *g, lb_arena *scratch) {
  uint32_t *uses = lb_arena_array(scratch, g->n_values ? g->n_values : 1, sizeof *uses);
  if (!uses) return NULL;
  for (uint32_t n = 0; n < g->n_nodes; n++)
    for (uint32_t k = 0; k < g->nodes[n].n_in; k++)
      if (g->nodes[n].in[k] != LB_NONE) uses[g->nodes[n].in[k]]++;
  return uses;
}

int lb_pass_single_use(const lb_graph *g, const uint32_t *uses, uint32_t v) {
  return uses[v] == 1 && !g->values[v].is_output;
}

int lb_pass_set_input(lb_graph *g, uint32_t n, uint32_t k, uint32_t v) {
  lb_node *nd = &g->nodes[n];
  if (k >= nd->n_in) {
    uint32_t *in = lb_arena_array(&g->arena, k + 1, sizeof *in);
    if (!in) return LB_ERR_NOMEM;
    memcpy(in, nd->in, nd->n_in * sizeof *in);
    for (uint32_t i = nd->n_in; i <= k; i++) in[i] = LB_NONE;
    nd->in = in;
    nd->n_in = k + 1;
  }
  nd->in[k] = v;
  return 0;
}

void lb_pass_take_output(lb_graph *g, uint32_t n, uint32_t dead) {
  uint32_t old = g->nodes[n].out[0], v = g->nodes[dead].out[0];
  g->values[old].producer = LB_NONE;
  g->nodes[n].out[0] = v;
  g->values[v].producer = n;
  /* the dead node now writes the orphan, so nothing is produced twice until it is removed */
  g->nodes[dead].out[0] = old;
  g->values[old].producer = dead;
  /* and reads nothing, so use counts taken from here on ignore it */
  for (uint32_t k = 0; k < g->nodes[dead].n_in; k++) g->nodes[dead].in[k] = LB_NONE;
}

uint32_t lb_pass_add_f32(lb_graph *g, const char *base, int rank, const int64_t *dims,
                         const float *data) {
  char name[256];
  snprintf(name, sizeof name, "%.200s", base);
  for (unsigned i = 1; lb_graph_find_value(g, name) != LB_NONE; i++)
    snprintf(name, sizeof name, "%.200s.%u", base, i);
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  return lb_graph_add_const(g, name, LB_DTYPE_F32, rank, dims, data, (size_t)n * sizeof(float));
}

int lb_pass_remove_nodes(lb_graph *g, const unsigned char *dead) {
  uint32_t nn = 0;
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    lb_node *nd = &g->nodes[n];
    if (dead[n]) {
      for (uint32_t k = 0; k < nd->n_out; k++) g->values[nd->out[k]].producer = LB_NONE;
      continue;
    }
    g->nodes[nn] = *nd;
    for (uint32_t k = 0; k < nd->n_out; k++) g->values[nd->out[k]].producer = nn;
    nn++;
  }
  g->n_nodes = nn;
  return lb_graph_compact(g);
}
