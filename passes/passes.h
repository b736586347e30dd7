/* Graph-to-graph passes and the pipeline that runs them by name. A pass takes a verified graph,
 * rewrites it in place and leaves it verified (nodes in topological order, every value produced
 * once); it returns 0 or an error status with the message in diag, and never prints. Scratch
 * memory comes from ctx->scratch, which the runner frees after each pass. */
#ifndef LB_PASSES_H
#define LB_PASSES_H

#include "ir.h"

typedef struct lb_pass_ctx {
  lb_arena *scratch; /* per-pass temporary memory; NULL: lb_pass_run_list provides one */
  int verify;        /* run lb_graph_verify after every pass (tests and debug builds) */
} lb_pass_ctx;

typedef int (*lb_pass_fn)(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag);

/* One registry row: the name used on the command line and in golden files' "# passes:" line. */
typedef struct lb_pass_info {
  const char *name;
  lb_pass_fn fn;
  const char *what; /* one line for --help */
} lb_pass_info;

/* Folds batchnorm into a preceding conv (or gemm with constant weights and bias) that feeds
 * only it; removes the batchnorm and compacts the graph. */
int lb_pass_fold_batchnorm(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag);
/* Fuses relu/clip into conv/gemm/matmul/add (attr.act), and an add of a conv/gemm output with
 * another same-shaped tensor into the conv/gemm as residual input 3. Graph outputs are kept. */
int lb_pass_fuse(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag);

/* Removes dead nodes and unused values (lb_graph_compact) as a pass. */
int lb_pass_compact(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag);

/* The registry (NULL-terminated) and lookup by name (NULL if unknown). */
const lb_pass_info *lb_pass_registry(void);
const lb_pass_info *lb_pass_find(const char *name);

/* Runs "a,b,c" in order (spaces around names allowed; empty list does nothing). An unknown name
 * is LB_ERR_INPUT naming it; errors are prefixed "in pass NAME" (or "after pass NAME" when the
 * verifier rejects the result); out of memory is LB_ERR_NOMEM. */
int lb_pass_run_list(lb_graph *g, const char *comma_list, const lb_pass_ctx *ctx, lb_diag *diag);

/* ---- helpers shared by passes (pipeline.c) ---- */

/* uses[v] = how many node inputs read value v (graph outputs not counted); from ctx->scratch. */
uint32_t *lb_pass_count_uses(const lb_graph *g, lb_arena *scratch);
/* Value v is read by exactly one node input and is not a graph output. */
int lb_pass_single_use(const lb_graph *g, const uint32_t *uses, uint32_t v);
/* Sets node n's input k, growing its input list (new slots LB_NONE). 0 or LB_ERR_NOMEM. */
int lb_pass_set_input(lb_graph *g, uint32_t n, uint32_t k, uint32_t v);
/* Node n takes over the output value of node dead, which is then left writing n's old output
 * and reading nothing, ready for lb_pass_remove_nodes. Names and graph outputs stay intact. */
void lb_pass_take_output(lb_graph *g, uint32_t n, uint32_t dead);
/* Adds an f32 constant named after base (made unique); LB_NONE on OOM. */
uint32_t lb_pass_add_f32(lb_graph *g, const char *base, int rank, const int64_t *dims,
                         const float *data);
/* Deletes the nodes with dead[n] set (keeping order and fixing producers), then compacts. */
int lb_pass_remove_nodes(lb_graph *g, const unsigned char *dead);

/* The fp32 preparation every backend runs before lowering: "fold_batchnorm,fuse". */
#define LB_PASSES_FP32 "fold_batchnorm,fuse"
int lb_pass_prepare_fp32(lb_graph *g, lb_diag *diag);

#endif
