/* lowbit IR: a graph owns an arena with every value, node, string and constant blob in it;
 * freeing the graph frees everything. Values and nodes are referred to by uint32_t ids that stay
 * valid while the graph lives. Nodes are kept in topological order (lb_graph_verify checks it). */
#ifndef LB_IR_H
#define LB_IR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- status and diagnostics ------------------------------------------------------------- */

/* Library code returns one of these; only the driver maps them to exit codes
 * (LB_ERR_INPUT -> 2, everything else non-zero -> 1). */
typedef enum {
  LB_OK = 0,
  LB_ERR_INPUT = 2,    /* bad user input: malformed file, unsupported op, wrong shape, usage */
  LB_ERR_NOMEM = 3,    /* allocation failed */
  LB_ERR_INTERNAL = 4, /* a failure that is our fault but not an invariant (e.g. LLVM refused) */
} lb_status;

/* One located, one-line message. The first error wins: later lb_diag_set calls are ignored
 * until lb_diag_clear, so the innermost (most precise) failure is what the user sees. */
typedef struct lb_diag {
  int set;
  char msg[1024];
} lb_diag;

void lb_diag_clear(lb_diag *d);
/* Formats into d (if not already set) and returns status. */
int lb_diag_err(lb_diag *d, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the existing message with "prefix: " (used to add file/node context on the way up). */
void lb_diag_prefix(lb_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LB_TRY(expr)                                                                             \
  do {                                                                                           \
    int lb_try_rc_ = (expr);                                                                     \
    if (lb_try_rc_ != 0) return lb_try_rc_;                                                      \
  } while (0)

/* Broken internal invariant: print and abort in every build. */
#define LB_ASSERT(cond)                                                                          \
  do {                                                                                           \
    if (!(cond)) lb_assert_fail(__FILE__, __LINE__, #cond);                                      \
  } while (0)
_Noreturn void lb_assert_fail(const char *file, int line, const char *cond);

/* ---- allocation ------------------------------------------------------------------------- */

/* The one allocator hook (as Lua's lua_Alloc): tests install a failing allocator to check
 * every out-of-memory path. ptr==NULL means malloc, size==0 means free. */
typedef void *(*lb_alloc_fn)(void *ptr, size_t size);
void lb_set_allocator(lb_alloc_fn fn); /* NULL restores the default */
void *lb_malloc(size_t n);
void *lb_calloc(size_t count, size_t size); /* checks count*size overflow */
void *lb_realloc(void *p, size_t n);
void lb_free(void *p);

/* Bump arena of chunks; everything is freed at once. */
typedef struct lb_arena_chunk lb_arena_chunk;
typedef struct lb_arena {
  lb_arena_chunk *head;
  size_t used, cap; /* within head */
} lb_arena;

void lb_arena_init(lb_arena *a);
void lb_arena_free(lb_arena *a);
void *lb_arena_alloc(lb_arena *a, size_t n);                /* 16-byte aligned, zeroed */
void *lb_arena_array(lb_arena *a, size_t count, size_t sz); /* overflow-checked */
char *lb_arena_strdup(lb_arena *a, const char *s);

/* ---- dtypes ----------------------------------------------------------------------------- */

/* Storage dtypes. Sub-byte dtypes are packed little-end first within a byte (element 0 in the
 * low bits). i64/bool exist for ONNX shape arithmetic and indices, f64 for test data. i7, i6
 * and i5 are weight precisions of a plan (symmetric |w| <= 63, 31 and 15) stored one to a byte,
 * never packed: realize writes them as i8 (lb_dtype_narrow8). i7 is AVX2's int8 weight: u8 x s7
 * pairs never saturate vpmaddubsw's int16 sums. */
#define LB_DTYPES(X)                                                                             \
  X(F32, f32, 32, 1)                                                                             \
  X(F64, f64, 64, 1)                                                                             \
  X(I64, i64, 64, 1)                                                                             \
  X(I32, i32, 32, 1)                                                                             \
  X(I16, i16, 16, 1)                                                                             \
  X(I8, i8, 8, 1)                                                                                \
  X(U8, u8, 8, 0)                                                                                \
  X(I4, i4, 4, 1)                                                                                \
  X(U4, u4, 4, 0)                                                                                \
  X(I2, i2, 2, 1)                                                                                \
  X(U2, u2, 2, 0)                                                                                \
  X(I7, i7, 8, 1)                                                                                \
  X(I6, i6, 8, 1)                                                                                \
  X(I5, i5, 8, 1)                                                                                \
  X(B1, b1, 1, 0)                                                                                \
  X(BOOL, bool, 8, 0)

typedef enum {
#define X(e, s, bits, sign) LB_DTYPE_##e,
  LB_DTYPES(X)
#undef X
      LB_DTYPE_COUNT
} lb_dtype;

const char *lb_dtype_name(lb_dtype t);
int lb_dtype_from_name(const char *s, lb_dtype *out); /* 0 on success */
int lb_dtype_bits(lb_dtype t);
int lb_dtype_is_signed(lb_dtype t);
int lb_dtype_is_float(lb_dtype t);
/* Bytes needed for n elements (sub-byte types packed). Returns SIZE_MAX on overflow. */
size_t lb_dtype_bytes(lb_dtype t, int64_t n);
/* i7, i6 and i5: 8-bit storage with a narrower value range. */
static inline int lb_dtype_narrow8(lb_dtype t) {
  return t == LB_DTYPE_I7 || t == LB_DTYPE_I6 || t == LB_DTYPE_I5;
}
/* Bits of a value's range: lb_dtype_bits except 7 (i7), 6 (i6) and 5 (i5). */
static inline int lb_dtype_value_bits(lb_dtype t) {
  return t == LB_DTYPE_I7 ? 7 : t == LB_DTYPE_I6 ? 6 : t == LB_DTYPE_I5 ? 5 : lb_dtype_bits(t);
}

/* ---- ops -------------------------------------------------------------------------------- */

typedef enum {
#define LB_OP(e, s, min_in, max_in, n_out) LB_OP_##e,
#include "ops.def"
#undef LB_OP
  LB_OP_COUNT
} lb_op;

typedef struct lb_op_info {
  const char *name; /* text name, as in the IR printer */
  int min_in, max_in, n_out;
} lb_op_info;

const lb_op_info *lb_op_get(lb_op op);
int lb_op_from_name(const char *s, lb_op *out); /* 0 on success */

#define LB_MAX_RANK 8
#define LB_MAX_SPATIAL 3
#define LB_NONE UINT32_MAX

typedef enum { LB_PAD_CONSTANT = 0, LB_PAD_REFLECT, LB_PAD_EDGE } lb_pad_mode;

/* An activation fused into its producer (conv, gemm, matmul, add) by passes/fuse.c; applied
 * after the bias and the optional residual input. */
typedef enum { LB_ACT_NONE = 0, LB_ACT_RELU, LB_ACT_CLIP } lb_act;

/* Typed attributes: one struct for every op; each op reads only its own fields (ops.def says
 * which). Spatial arrays are indexed by spatial dimension; pads hold begins then ends. */
typedef struct lb_attrs {
  /* conv / pooling */
  int n_spatial;
  int64_t kernel[LB_MAX_SPATIAL];
  int64_t strides[LB_MAX_SPATIAL];
  int64_t dilations[LB_MAX_SPATIAL];
  int64_t pads[2 * LB_MAX_RANK]; /* conv/pool: 2*n_spatial; pad: 2*rank */
  int64_t group;
  int ceil_mode, count_include_pad;
  /* gemm */
  int trans_a, trans_b;
  float alpha, beta; /* gemm alpha/beta, leaky_relu alpha, hard_sigmoid alpha/beta */
  /* clip, pad, batchnorm */
  float clip_min, clip_max;
  float pad_value;
  lb_pad_mode pad_mode;
  float epsilon;
  /* axis ops */
  int64_t axis;
  int legacy_2d; /* softmax before opset 13: coerce to 2-D at axis */
  int n_axes;
  int64_t axes[LB_MAX_RANK]; /* squeeze, unsqueeze, reduce_mean; perm for transpose */
  int keepdims;
  int64_t start, end; /* shape (opset 15); end == INT64_MAX means "to the end" */
  /* fused epilogue (conv, gemm, matmul, add): y = act(op(...) + residual) */
  lb_act act;
  float act_min, act_max; /* LB_ACT_CLIP bounds */
  /* integer nodes of a realized graph: the spec's requantize method (an lb_requant of spec.h;
   * 0 and fp32: the fp32 definition), see quant.h */
  int requant;
} lb_attrs;

/* ---- values, nodes, graph --------------------------------------------------------------- */

/* Quantization parameters: per-tensor when axis < 0 (n == 1), else per-channel along axis. */
typedef struct lb_quant {
  int axis;
  uint32_t n; /* 0 = not quantized */
  float *scale;
  int32_t *zero_point;
} lb_quant;

typedef struct lb_value {
  const char *name;
  lb_dtype dtype;
  int rank;
  int64_t dims[LB_MAX_RANK];
  lb_quant q;
  uint32_t producer; /* node id, LB_NONE for graph inputs and constants */
  void *data;        /* constant data (arena-owned), NULL if computed at run time */
  size_t nbytes;     /* size of data when constant */
  int is_input, is_output;
} lb_value;

typedef struct lb_node {
  lb_op op;
  const char *name;   /* ONNX node name (may be empty, never NULL) */
  const char *onnx_op; /* op_type it came from, for diagnostics */
  uint32_t n_in, n_out;
  uint32_t *in, *out; /* value ids; an optional input that is absent is LB_NONE */
  lb_attrs attr;
} lb_node;

typedef struct lb_graph {
  lb_arena arena;
  const char *name;
  lb_value *values;
  uint32_t n_values, cap_values;
  lb_node *nodes;
  uint32_t n_nodes, cap_nodes;
  uint32_t *inputs, n_inputs, cap_inputs;
  uint32_t *outputs, n_outputs, cap_outputs;
} lb_graph;

lb_graph *lb_graph_new(const char *name); /* NULL on OOM */
void lb_graph_free(lb_graph *g);

/* Adds a value; returns its id or LB_NONE on OOM. Name is copied. */
uint32_t lb_graph_add_value(lb_graph *g, const char *name, lb_dtype dtype, int rank,
                            const int64_t *dims);
/* Adds a constant value with a copy of data (nbytes must match dtype and shape). */
uint32_t lb_graph_add_const(lb_graph *g, const char *name, lb_dtype dtype, int rank,
                            const int64_t *dims, const void *data, size_t nbytes);
/* Appends a node; inputs/outputs are copied; the outputs' producer is set. LB_NONE on OOM. */
uint32_t lb_graph_add_node(lb_graph *g, lb_op op, const char *name, const uint32_t *in,
                           uint32_t n_in, const uint32_t *out, uint32_t n_out);
int lb_graph_add_input(lb_graph *g, uint32_t value);  /* 0 or LB_ERR_NOMEM */
int lb_graph_add_output(lb_graph *g, uint32_t value); /* 0 or LB_ERR_NOMEM */
/* Looks a value up by name (linear); LB_NONE if absent. */
uint32_t lb_graph_find_value(const lb_graph *g, const char *name);

static inline lb_value *lb_val(lb_graph *g, uint32_t id) { return &g->values[id]; }
int64_t lb_value_numel(const lb_value *v);

/* Checks invariants: ids in range, arity per op table, topological order, every non-input,
 * non-constant value produced exactly once, outputs reachable, shapes non-negative. */
int lb_graph_verify(const lb_graph *g, lb_diag *diag);

/* Removes nodes whose outputs are unused and values nobody refers to, renumbering ids. */
int lb_graph_compact(lb_graph *g);

/* ---- textual IR (ir_text.c) ------------------------------------------------------------- */

/* Writes the graph as text; constants larger than inline_limit elements are printed as
 * a digest, which the parser cannot read back (golden tests use small constants). */
void lb_graph_print(const lb_graph *g, FILE *f, int inline_limit);
/* Parses text produced by lb_graph_print. Errors are "NAME:LINE:COL: error: ...". */
int lb_graph_parse(const char *text, const char *filename, lb_graph **out, lb_diag *diag);

/* ---- shape inference (shape.c) ---------------------------------------------------------- */

/* Sets dtype and shape of node n's outputs from its inputs and attributes. */
int lb_infer_node(lb_graph *g, uint32_t node, lb_diag *diag);
int lb_infer_shapes(lb_graph *g, lb_diag *diag);

/* ---- tensors and the reference interpreter (interp.c) ----------------------------------- */

typedef struct lb_tensor {
  lb_dtype dtype;
  int rank;
  int64_t dims[LB_MAX_RANK];
  void *data;
} lb_tensor;

int64_t lb_tensor_numel(const lb_tensor *t);

/* Runs one node on concrete tensors; outputs are allocated by the caller with the shapes that
 * shape inference gave. Used by the interpreter and by constant folding. */
int lb_eval_node(const lb_graph *g, uint32_t node, const lb_tensor *in, lb_tensor *out,
                 lb_diag *diag);

/* Runs the whole graph. inputs[i] matches g->inputs[i] (dtype and shape are checked);
 * outputs[i] receives malloc'd data (lb_free it) for g->outputs[i]. */
int lb_interp_run(const lb_graph *g, const lb_tensor *inputs, lb_tensor *outputs,
                  lb_diag *diag);

#endif
