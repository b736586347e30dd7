/* Internals shared by the ONNX importer's files (onnx_read.c: bytes and tensors, onnx_import.c:
 * graph and folding, onnx_ops.c: one lowering per ONNX op). Not for use outside compiler/onnx_*.
 * Invariant: every error sets diag with a message WITHOUT the file/node prefix; the caller that
 * knows the location adds it exactly once with lb_diag_prefix. */
#ifndef LB_ONNX_INTERNAL_H
#define LB_ONNX_INTERNAL_H

#include "ir.h"
#include "onnx.h"
#include "onnx.pb-c.h"

/* Limits that keep a hostile file from exhausting memory or overflowing int64 arithmetic. */
#define LB_ONNX_MAX_FILE ((size_t)2 << 30)       /* protobuf cannot exceed 2 GiB */
#define LB_ONNX_MAX_BYTES ((uint64_t)4 << 30)    /* one tensor, and all constants together */
#define LB_ONNX_MAX_NUMEL ((int64_t)1 << 32)     /* elements of any one tensor */
#define LB_ONNX_MAX_FOLD_BYTES ((size_t)64 << 20) /* larger constant results stay run-time nodes */
#define LB_ONNX_MAX_FOLD_MACS 5e8                 /* so do results that take long to compute */
#define LB_ONNX_MAX_DEPTH 32                     /* protobuf message nesting */
#define LB_ONNX_MAX_NODES 1000000
#define LB_ONNX_MIN_OPSET 7
#define LB_ONNX_MAX_OPSET 21
#define LB_ONNX_MIN_IR 3
#define LB_ONNX_MAX_IR 11

/* "A name is defined but its use is unsupported" marker in the name map (Dropout's mask). */
#define LB_ONNX_POISON (UINT32_MAX - 1)

typedef struct lb_onnx_ctx {
  lb_graph *g;
  lb_diag *diag;
  int64_t opset;
  uint64_t const_bytes; /* total constant bytes so far, capped by LB_ONNX_MAX_BYTES */
  uint64_t fold_budget; /* bytes folding may still create: 16x the file, at least 64 MiB */
  /* name -> value id (open addressing, keys are not owned) */
  const char **keys;
  uint32_t *vals;
  uint32_t map_cap, map_n;
  const Onnx__GraphProto *graph;
  /* the ONNX node being imported */
  const Onnx__NodeProto *np;
  const char *node_name;
} lb_onnx_ctx;

/* How one ONNX node becomes IR: a node to add (EMIT), an alias of an existing value (ALIAS,
 * Identity/Dropout), or nothing more to do (DONE: the lowering made constants itself). */
typedef enum { LB_LOWER_EMIT, LB_LOWER_ALIAS, LB_LOWER_DONE } lb_lower_kind;

typedef struct lb_lowering {
  lb_lower_kind kind;
  lb_op op;
  lb_attrs attr;
  uint32_t in[64];
  uint32_t n_in;
  uint32_t alias;   /* ALIAS: the value output[0] becomes */
  int out_rank;     /* >= 0: the output shape is fixed by the lowering (Reshape) */
  int64_t out_dims[LB_MAX_RANK];
} lb_lowering;

typedef int (*lb_lower_fn)(lb_onnx_ctx *c, const uint32_t *in, uint32_t n_in, lb_lowering *l);

typedef struct lb_onnx_op {
  const char *name;      /* ONNX op_type */
  int min_in, max_in;    /* ONNX arity (trailing empty names count as absent) */
  int max_out;           /* outputs beyond the first must be empty or are checked by fn */
  const char *attrs;     /* space-separated attribute names the op accepts */
  lb_lower_fn fn;
} lb_onnx_op;

/* onnx_ops.c */
const lb_onnx_op *lb_onnx_find_op(const char *op_type);
/* Writes "Conv, Gemm, ..." into buf. */
void lb_onnx_list_ops(char *buf, size_t size);

/* onnx_import.c: helpers the lowerings use */
lb_value *lb_onnx_val(lb_onnx_ctx *c, uint32_t id);
/* Defines output[k] of the current node as a constant with the given data (copied). */
int lb_onnx_def_const(lb_onnx_ctx *c, uint32_t k, lb_dtype dt, int rank, const int64_t *dims,
                      const void *data, size_t nbytes);
/* Defines output name as "unsupported if used" (Dropout's mask). */
int lb_onnx_poison(lb_onnx_ctx *c, const char *name);
/* Reads constant value id as int64s (i64/i32/i8/u8/i16/bool); n <= max. */
int lb_onnx_const_ints(lb_onnx_ctx *c, uint32_t id, const char *what, int64_t *out, int max,
                       int *n);
/* Reads a constant scalar (or 1-element tensor) of any numeric dtype as double. */
int lb_onnx_const_scalar(lb_onnx_ctx *c, uint32_t id, const char *what, double *out);

/* onnx_read.c */
/* Unpacks a ModelProto / TensorProto with the lb allocator after checking nesting depth.
 * Returns LB_ERR_INPUT (corrupt) or LB_ERR_NOMEM. */
int lb_onnx_unpack_model(const void *buf, size_t len, Onnx__ModelProto **out, lb_diag *diag);
void lb_onnx_free_model(Onnx__ModelProto *m);
/* Reads a whole file into lb_malloc'd memory. */
int lb_onnx_read_file(const char *path, void **buf, size_t *len, lb_diag *diag);
/* Maps an ONNX TensorProto.DataType to an lb dtype (0) or fails with a message. */
int lb_onnx_dtype(int32_t onnx_type, lb_dtype *out, lb_diag *diag);
/* Decodes a TensorProto's shape and data (any storage form) into lb_malloc'd *data. */
int lb_onnx_decode_tensor(const Onnx__TensorProto *t, lb_tensor *out, size_t *nbytes,
                          lb_diag *diag);
/* Replaces control characters in the message (names from the file) so it stays one line. */
void lb_onnx_one_line(lb_diag *diag);
/* numel of dims with overflow and LB_ONNX_MAX_NUMEL checks; -1 if too large. */
int64_t lb_onnx_numel(int rank, const int64_t *dims);

#endif
