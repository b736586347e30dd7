/* The backend API the driver calls: lower a whole fp32 graph to one LLVM module for a spec and
 * either write it (object, assembly, LLVM IR, plus the C header) or JIT it in-process. Generated
 * code has the ABI of DESIGN.md: NAME_workspace_size() and NAME_run(inputs, outputs, workspace),
 * tensors in ONNX order and dtype, weights as constants, no heap allocation inside run.
 * Output files are written to a temporary name and renamed: a failure leaves nothing behind. */
#ifndef LB_TARGET_H
#define LB_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "ir.h"
#include "spec.h"

typedef enum { LB_EMIT_OBJ = 0, LB_EMIT_ASM, LB_EMIT_LLVM } lb_emit_kind;

typedef struct lb_codegen_opts {
  const char *name; /* symbol prefix, a C identifier; NULL means "model" */
  int profile;      /* also emit NAME_step(i, ...) and NAME_step_count() for per-layer timing */
} lb_codegen_opts;

/* Lowers g (already through the fp32 passes; not modified) for spec and writes out_path in the
 * given format. For LB_EMIT_OBJ and LB_EMIT_ASM, header_path (if not NULL) receives the C
 * header with the ABI, shapes and dtypes. */
int lb_target_emit(const lb_graph *g, const lb_spec *spec, const lb_codegen_opts *opts,
                   lb_emit_kind kind, const char *out_path, const char *header_path, lb_diag *diag);

/* Writes only the C header (atomically). */
int lb_target_write_header(const lb_graph *g, const char *name, const char *path, lb_diag *diag);

/* Checks that this machine can execute code built for spec (same architecture and every
 * "+feature" of the spec present on the host); LB_ERR_INPUT with the missing feature if not. */
int lb_target_host_check(const lb_spec *spec, lb_diag *diag);

/* ---- JIT (ORC LLJIT) --------------------------------------------------------------------- */

typedef struct lb_jit lb_jit;
typedef int (*lb_run_fn)(const void *const inputs[], void *const outputs[], void *workspace);
typedef int (*lb_step_fn)(int step, const void *const inputs[], void *const outputs[],
                          void *workspace);

/* Lowers and compiles g for spec in this process (refuses specs the host cannot run). */
int lb_jit_compile(const lb_graph *g, const lb_spec *spec, const lb_codegen_opts *opts,
                   lb_jit **out, lb_diag *diag);
void lb_jit_free(lb_jit *j);
size_t lb_jit_workspace_size(const lb_jit *j);
lb_run_fn lb_jit_run_fn(const lb_jit *j);
/* Only with opts->profile: the number of steps, their names (graph node or "relayout"),
 * and the per-step entry point; NULL/0 otherwise. */
int lb_jit_step_count(const lb_jit *j);
const char *lb_jit_step_name(const lb_jit *j, int step);
double lb_jit_step_flops(const lb_jit *j, int step);
lb_step_fn lb_jit_step_fn(const lb_jit *j);

/* Runs the JIT'd graph once on tensors (checked against the graph's inputs); outputs get
 * lb_malloc'd data the caller lb_frees (nothing is left allocated on failure). */
int lb_jit_run_tensors(const lb_jit *j, const lb_graph *g, const lb_tensor *in, lb_tensor *out,
                       lb_diag *diag);

/* Floating-point operations of the graph (2 per multiply-accumulate), for GFLOP/s. */
double lb_graph_flops(const lb_graph *g);

/* ---- memory planning (memplan.c) ---------------------------------------------------------- */

/* One buffer to place in the workspace: live from step `first` to step `last` inclusive.
 * lb_memplan sets offset so that buffers whose lifetimes overlap never overlap in memory. */
typedef struct lb_mem_req {
  size_t size;
  int first, last;
  size_t offset; /* out */
} lb_mem_req;

/* Places n buffers (offsets multiples of align, a power of two); *total gets the workspace
 * size. Greedy by decreasing size into the lowest gap that fits. LB_ERR_NOMEM or 0. */
int lb_memplan(lb_mem_req *reqs, size_t n, size_t align, size_t *total);

#endif
