/* Internals of the LLVM lowering (targets/llvm/): the lowering context that owns every LLVM
 * object of one compilation, strided tensor views, the IR-building helpers (loops, vectors,
 * intrinsics) and the per-op lowering entry points. Invariant: an lb_lw is either fully set up
 * (lb_lw_init succeeded) or zeroed, and lb_lw_dispose releases exactly what it still owns. */
#ifndef LB_LOWER_H
#define LB_LOWER_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "ir.h"
#include "kernels.h"
#include "spec.h"
#include "target.h"

/* ---- the lowering context (ctx.c) --------------------------------------------------------- */

typedef struct lb_lw {
  LLVMContextRef ctx; /* owned unless own_ctx == 0 (the JIT's thread-safe context owns it) */
  int own_ctx;
  LLVMModuleRef mod; /* owned until handed to the JIT (then NULL) */
  LLVMBuilderRef b;
  LLVMTargetMachineRef tm;
  const lb_spec *spec;
  lb_kern_cfg kcfg;
  lb_diag *diag;
  int vw; /* f32 lanes in one vector register of the spec (1 = scalar) */
  LLVMTypeRef t_f32, t_f64, t_i64, t_i32, t_i8, t_i1, t_ptr, t_void;
  LLVMValueRef fn; /* function being emitted */
  int n_globals;   /* counter for unique constant names */
  int rq;          /* requantize method (attrs.requant) of the integer node being lowered */
  int rq_below1;   /* ... and every multiplier of that node is below 1 (lb_qrequant_below1) */
} lb_lw;

/* Sets up context (ctx == NULL: a new owned one), module, builder and the target machine for
 * spec (triple, cpu, features, PIC, aggressive codegen). */
int lb_lw_init(lb_lw *L, LLVMContextRef ctx, const lb_spec *spec, const char *module_name,
               lb_diag *diag);
void lb_lw_dispose(lb_lw *L);
/* Verifies the module, runs default<O3> with the target machine, verifies again. */
int lb_lw_optimize(lb_lw *L);
/* Writes object / assembly / textual IR to path through a temporary file and rename. */
int lb_lw_write(lb_lw *L, lb_emit_kind kind, const char *path);
/* Writes len bytes to path atomically (temporary file in the same folder, then rename). */
int lb_write_file_atomic(const char *path, const void *data, size_t len, lb_diag *diag);

/* ---- whole-graph lowering (lower.c) ------------------------------------------------------- */

/* What the lowering reports besides the module: workspace size and, per step, a name and
 * its floating-point operations (for profiles). */
typedef struct lb_lowered {
  size_t ws_size;
  int n_steps;
  char (*names)[80];
  double *flops;
} lb_lowered;

/* Emits NAME_run, NAME_workspace_size (and NAME_step with opts->profile) for g into L->mod. */
int lb_lower_graph(lb_lw *L, const lb_graph *g, const lb_codegen_opts *opts, lb_lowered *out);
void lb_lowered_free(lb_lowered *l);

/* ---- strided views ------------------------------------------------------------------------ */

/* A tensor in memory: logical dims (ONNX order) and element strides per logical dim. */
typedef struct lb_view {
  LLVMValueRef base; /* ptr */
  lb_dtype dt;
  int rank;
  int64_t dims[LB_MAX_RANK];
  int64_t st[LB_MAX_RANK];
} lb_view;

/* Dense strides for a value stored with physical order perm (perm[p] = logical dim at
 * physical position p; NULL = identity). */
void lb_view_strides(lb_view *v, const int *perm);
/* Returns in broadcast (numpy rules, right-aligned) to rank/dims: stride 0 on new dims. */
lb_view lb_view_broadcast(const lb_view *in, int rank, const int64_t *dims);
int64_t lb_view_numel(const lb_view *v);

/* ---- IR helpers (irb.c) ------------------------------------------------------------------- */

LLVMTypeRef lb_lw_type(lb_lw *L, lb_dtype dt); /* element type; f32/f64/i64/i32/i16/i8/u8/bool */
LLVMValueRef lb_c64(lb_lw *L, int64_t v);
LLVMValueRef lb_c32(lb_lw *L, int32_t v);
LLVMValueRef lb_cf(lb_lw *L, LLVMTypeRef ty, double v); /* f32 scalar or vector splat */
LLVMValueRef lb_ci(lb_lw *L, LLVMTypeRef ty, int64_t v); /* int scalar or vector splat */
LLVMValueRef lb_splat(lb_lw *L, LLVMValueRef scalar, int lanes);
/* ptr + idx elements of ty. */
LLVMValueRef lb_gep(lb_lw *L, LLVMTypeRef ty, LLVMValueRef base, LLVMValueRef idx);
LLVMValueRef lb_load(lb_lw *L, LLVMTypeRef ty, LLVMValueRef ptr, unsigned align);
void lb_store(lb_lw *L, LLVMValueRef v, LLVMValueRef ptr, unsigned align);
/* Calls an overloaded intrinsic by name with overload type ty (NULL: not overloaded). */
LLVMValueRef lb_intr(lb_lw *L, const char *name, LLVMTypeRef ty, LLVMValueRef *args, int n);
LLVMValueRef lb_fmax(lb_lw *L, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef lb_fmin(lb_lw *L, LLVMValueRef a, LLVMValueRef b);
/* The fused activation of ir.h on a scalar or vector. */
LLVMValueRef lb_act_apply(lb_lw *L, lb_act act, float lo, float hi, LLVMValueRef x);

/* A counted loop "for (iv = lo; iv < hi; iv += step)" on i64; the builder is left in the body
 * after lb_loop_begin and after the loop after lb_loop_end. */
typedef struct lb_loop {
  LLVMValueRef iv, step;
  LLVMBasicBlockRef header, body, exit;
} lb_loop;
void lb_loop_begin(lb_lw *L, lb_loop *lp, LLVMValueRef lo, LLVMValueRef hi, int64_t step);
void lb_loop_end(lb_lw *L, lb_loop *lp);
/* A block run only if cond holds: lb_if_begin positions in the then-block, lb_if_end joins. */
LLVMBasicBlockRef lb_if_begin(lb_lw *L, LLVMValueRef cond);
void lb_if_end(lb_lw *L, LLVMBasicBlockRef join);
/* Starts a new internal function void name(ptr x n_ptr_args) and positions the builder. */
LLVMValueRef lb_fn_begin(lb_lw *L, const char *name, int n_ptr_args);
/* A stack slot in the entry block, optionally initialised at the current point. */
LLVMValueRef lb_alloca(lb_lw *L, LLVMTypeRef ty, LLVMValueRef init);
/* An internal constant global holding len bytes, 64-byte aligned. */
LLVMValueRef lb_const_blob(lb_lw *L, const void *data, size_t len, const char *what);

/* ---- elementwise engine (ops_elem.c) ------------------------------------------------------ */

/* f computes one output element (or vector of lanes) from the input elements. */
typedef LLVMValueRef (*lb_elem_fn)(lb_lw *L, LLVMValueRef *x, void *ud);

/* out[i] = f(in_0[i], ..., in_{n-1}[i]) over out's dims; every in has out's rank and dims
 * (use lb_view_broadcast). An in may alias out exactly (accumulation). Vectorised along the
 * innermost dim when every stride there is 0 or 1 (output 1). */
void lb_emit_map(lb_lw *L, const lb_view *out, const lb_view *in, int n_in, lb_elem_fn f, void *ud);
/* Plain copy (any dtype; also converts layouts). */
void lb_emit_copy(lb_lw *L, const lb_view *dst, const lb_view *src);
void lb_emit_fill(lb_lw *L, const lb_view *dst, double value);

/* ---- per-op lowering (ops_*.c) ------------------------------------------------------------ */

/* What a lowering function gets: views of the node's inputs (absent optional input: base ==
 * NULL) and outputs, and the step's scratch pointer; it sets scratch_bytes if it needs some. */
typedef struct lb_op_args {
  const lb_graph *g;
  const lb_node *node;
  const lb_view *in;
  const lb_view *out;
  LLVMValueRef scratch;
  size_t scratch_bytes;
  const char *step_name; /* unique per step, for helper function names */
} lb_op_args;

typedef int (*lb_lower_fn)(lb_lw *L, lb_op_args *a);

/* Layout an op wants for its 4-D activation input 0: NHWC for convs on the kernel path. */
int lb_conv_wants_nhwc(const lb_graph *g, const lb_node *n);
/* Input i of n is a constant the fast path re-packs: the raw data is not needed in the module. */
int lb_weights_packed(const lb_graph *g, const lb_node *n, uint32_t i);

int lb_lower_elementwise(lb_lw *L, lb_op_args *a); /* add..div, unary activations, identity */
int lb_lower_batchnorm(lb_lw *L, lb_op_args *a);
int lb_lower_concat(lb_lw *L, lb_op_args *a);
int lb_lower_pad(lb_lw *L, lb_op_args *a);
int lb_lower_transpose(lb_lw *L, lb_op_args *a);
int lb_lower_reshape(lb_lw *L, lb_op_args *a); /* reshape, flatten, squeeze, unsqueeze */
int lb_lower_shape(lb_lw *L, lb_op_args *a);
int lb_lower_gather(lb_lw *L, lb_op_args *a);
int lb_lower_quant(lb_lw *L, lb_op_args *a);  /* quantize, dequantize */
int lb_lower_pool(lb_lw *L, lb_op_args *a);   /* max_pool, avg_pool */
int lb_lower_reduce(lb_lw *L, lb_op_args *a); /* global_avg_pool, reduce_mean */
int lb_lower_softmax(lb_lw *L, lb_op_args *a);
int lb_lower_conv(lb_lw *L, lb_op_args *a);
int lb_lower_gemm(lb_lw *L, lb_op_args *a); /* gemm, matmul */
/* Integer nodes of a realized graph (lb_int_node of quant.h), in ops_int.c: every integer op
 * goes there instead of its fp32 lowering; 4-D integer convs want NHWC. */
int lb_lower_int(lb_lw *L, lb_op_args *a);
int lb_int_conv_nhwc(const lb_graph *g, const lb_node *n);

#endif
