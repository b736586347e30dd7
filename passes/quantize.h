/* The int8 quantization passes, HAGO style: annotate (spec-driven choice of integer layers and
 * quantized edges), calibrate (streaming range statistics over a calibration set) and realize
 * (the integer-only graph, a simulated-quantization graph, or an ONNX QDQ graph), plus the QDQ
 * import pass. Every pass reads the fp32 graph after the preparation passes and a lb_qplan
 * (compiler/quant.h) made for that very graph; value and node ids index the plan. */
#ifndef LB_PASSES_QUANTIZE_H
#define LB_PASSES_QUANTIZE_H

#include "passes.h"
#include "quant.h"
#include "spec.h"

/* ---- annotate.c ---------------------------------------------------------------------------
 * Picks the activation dtype (the 8-bit integer dtype whose spec combinations cover the most
 * MACs of g, ties to the one listed first), then per node: integer when the spec has a
 * combination for its op kind with that dtype (i8 weights), a requantize lowbit implements
 * (fp32 or none) and lowbit has an integer kernel; weightless ops additionally need an integer
 * input (else they would only add quantize/dequantize). Layout ops follow their input.
 * Values touching integer layers get dtypes, roles, allowed schemes and shared-scale classes
 * (the inputs and output of a copy-like op: layout ops, max_pool, and add/concat whose spec
 * combination has no requantize). Layers with forced_f32 (an edited plan) stay fp32. */
int lb_quant_annotate(const lb_graph *g, const lb_spec *s, lb_qplan *p, lb_diag *diag);
/* (bin) Whether node id's shape lets it be a binary layer (quant.h lb_binary_node): a conv
 * (1-D/2-D, any group), a gemm, or a matmul by a constant [K, N]. annotate honours a plan's
 * binary combination there (with its threshold and magnitude set), realize builds it. */
int lb_quant_binary_layer(const lb_graph *g, uint32_t id);
/* (ops) Input k of integer node n is a constant used as it is, never quantized: the indices
 * of a gather by constant indices (a layout op on integers). */
int lb_quant_plain_input(const lb_graph *g, const lb_node *n, uint32_t k);

/* ---- calibrate.c -------------------------------------------------------------------------- */

#define LB_CALIB_METHODS(X)                                                                      \
  X(MAX, "max")                 /* global min and max */                                         \
  X(AVG_MAX, "avg-max")         /* mean over samples of each sample's min and max (HAGO) */      \
  X(PERCENTILE, "percentile")   /* |x| quantile (99.99 %) of a 2048-bin histogram */             \
  X(KL, "kl")                   /* TensorRT entropy: threshold minimising KL(P || Q) */          \
  X(MSE, "mse")                 /* threshold minimising the quantization MSE of the histogram */

typedef enum {
#define X(e, s) LB_CALIB_##e,
  LB_CALIB_METHODS(X)
#undef X
      LB_CALIB_COUNT
} lb_calib_method;

const char *lb_calib_method_name(lb_calib_method m);
int lb_calib_method_from_name(const char *s, lb_calib_method *out); /* 0 on success */

typedef struct lb_calib_opts {
  lb_calib_method method;
  double percentile; /* for LB_CALIB_PERCENTILE, in (0, 100]; 0 means 99.99 */
  int progress;      /* draw a progress bar on stderr (callers pass isatty(2)) */
} lb_calib_opts;

/* Runs the N samples of data (axis 0; each sample must have the dtype and element count of
 * g's single input) through g and records the range of every quantized
 * activation. Memory is O(values x bins), independent of N. Values whose parameters came from
 * an edited plan are left alone. Then calls lb_quant_params. */
int lb_quant_calibrate(const lb_graph *g, lb_qplan *p, const lb_tensor *data,
                       const lb_calib_opts *o, lb_diag *diag);
/* Calibration samples read one at a time (so a calibration set never has to fit in memory):
 * read(user, i, dst) writes sample i (per floats, the model input's element count) into dst. */
typedef struct lb_calib_source {
  int64_t n;   /* samples */
  int64_t per; /* floats per sample */
  int (*read)(void *user, int64_t i, float *dst, lb_diag *diag);
  void *user;
} lb_calib_source;
/* lb_quant_calibrate over a source; each pass reads the samples in order. */
int lb_quant_calibrate_stream(const lb_graph *g, lb_qplan *p, const lb_calib_source *src,
                              const lb_calib_opts *o, lb_diag *diag);
/* The calibration samples of one graph input, of the input's dtype, read one at a time (for
 * models with several inputs, token ids, masks): lb_quant_calibrate_inputs takes one per graph
 * input, in input order. Non-f32 inputs are fed as they are; only f32 values get ranges. */
typedef struct lb_calib_input {
  const char *what; /* the file, for messages (NULL: "calibration data") */
  lb_dtype dtype;   /* element type of the samples */
  int rank;         /* rank of one sample (without the sample axis); -1: only `per` is known */
  int64_t dims[LB_MAX_RANK];
  int64_t n, per;   /* samples; elements per sample */
  int (*read)(void *user, int64_t i, void *dst, lb_diag *diag); /* sample i into dst */
  void *user;
} lb_calib_input;
/* A source over an in-memory tensor [N, ...] (not copied: it must outlive the source). */
lb_calib_input lb_calib_input_tensor(const lb_tensor *t, const char *what);
/* Checks sources against g's inputs: dtype equal, one sample shaped like the input with its
 * leading 1 dropped or kept, the same sample count N >= 1 everywhere. One-line errors name the
 * file and the input. */
int lb_calib_check(const lb_graph *g, const lb_calib_input *src, lb_diag *diag);
/* lb_quant_calibrate over g->n_inputs sources (memory: one sample per input). */
int lb_quant_calibrate_inputs(const lb_graph *g, lb_qplan *p, const lb_calib_input *src,
                              const lb_calib_opts *o, lb_diag *diag);
/* lb_quant_sqnr over g->n_inputs sources. */
int lb_quant_sqnr_inputs(const lb_graph *g, const lb_qplan *p, const lb_graph *sim,
                         const lb_calib_input *src, int64_t max_samples, double *db,
                         lb_diag *diag);
/* Per-layer SQNR in dB of the simulated graph `sim` (LB_REALIZE_SIM of g and p) against g,
 * over the first max_samples samples of src: db[n] for every integer layer n of g whose output
 * is quantized (the value the next layer reads), NAN for the others. */
int lb_quant_sqnr(const lb_graph *g, const lb_qplan *p, const lb_graph *sim,
                  const lb_calib_source *src, int64_t max_samples, double *db, lb_diag *diag);
/* Turns ranges into parameters: one scale/zero point per shared-scale class (union of its
 * ranges), per-channel symmetric weights in [-127, 127], int32 biases with scale
 * s_act * s_weight, constants from their data. Values with plan-given parameters keep them. */
int lb_quant_params(const lb_graph *g, lb_qplan *p, lb_diag *diag);

/* Callback for every value a node produces while lb_quant_walk runs a graph. */
typedef int (*lb_value_fn)(void *user, uint32_t value, const lb_tensor *t);
/* Runs g on inputs like lb_interp_run, calling fn for each produced value (and for every
 * graph input first); intermediates are freed after their last reader. */
int lb_quant_walk(const lb_graph *g, const lb_tensor *inputs, lb_value_fn fn, void *user,
                  lb_diag *diag);

/* ---- realize.c ---------------------------------------------------------------------------- */

typedef enum {
  LB_REALIZE_INT, /* integer-only: i8/u8 activations, i8 weights, i32 bias, quantize at the
                     fp32 boundaries and dequantize where a float layer reads an integer one */
  LB_REALIZE_SIM, /* fp32 ops on fake-quantized tensors (quantize then dequantize) */
  LB_REALIZE_QDQ, /* as SIM but weights and biases stored as integers behind dequantize (the
                     ONNX Runtime QDQ layout) */
} lb_realize_mode;

/* Builds a new graph from g and a plan with parameters (after lb_quant_params). Inputs and
 * outputs keep their names, dtypes and shapes. */
int lb_quant_realize(const lb_graph *g, const lb_qplan *p, lb_realize_mode mode, lb_graph **out,
                     lb_diag *diag);

/* QDQ import: rewrites dequantize -> op -> quantize patterns (as ONNX Runtime's quantization
 * tool writes them, after fold_batchnorm and fuse) into integer nodes of the same semantics
 * as LB_REALIZE_INT, and removes quantize -> dequantize pairs between them. */
int lb_pass_qdq_to_int(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag);
/* The same as a pipeline step (own scratch arena, graph verified after). Not in the pass
 * registry: tests/unit/test_passes.c pins the registry to the fp32 passes. */
int lb_quant_qdq_import(lb_graph *g, lb_diag *diag);

/* ---- qdq_prep.c: ONNX Runtime's QDQ forms around lb_pass_qdq_to_int --------------------------
 * Normalization: an add/sub/mul reading a DequantizeLinear output and a dequantized constant
 * (folded to f32 at import), whose output goes to a QuantizeLinear, reads the constant again as
 * DQ(integer constant) in that QuantizeLinear's dtype (i8 <-> u8 by moving the zero point 128,
 * when every value fits), so qdq_to_int can make it integer. Exact. */
int lb_pass_qdq_prepare(lb_graph *g, const lb_pass_ctx *ctx, lb_diag *diag);
/* Prints, for a graph after the QDQ import, each layer next to a QuantizeLinear/
 * DequantizeLinear that stayed fp32 with the reason, then a count line; returns how many. */
int lb_qdq_report(const lb_graph *g, FILE *f);
/* lb_pass_qdq_prepare, lb_quant_qdq_import, and the report on `report` (may be NULL). */
int lb_qdq_import(lb_graph *g, FILE *report, lb_diag *diag);

#endif
