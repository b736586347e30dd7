/* Integer quantization: THE requantize definitions, one per spec method (fp32, fixed_point,
 * shift; used by the interpreter and emitted by every backend, bit-exact everywhere),
 * scale/zero-point arithmetic, the quantization plan (per-layer precision, per-tensor
 * parameters) and its YAML form. Invariant: every integer result in lowbit is computed through
 * lb_requantize(2) / lb_requantize(2)_by and the lb_q* helpers here, so
 * changing the semantics means changing this file and nothing else. */
#ifndef LB_QUANT_H
#define LB_QUANT_H

#include <stdio.h>

#include "ir.h"

/* ---- the integer semantics ----------------------------------------------------------------
 * Quantized value q of dtype t (i8/u8) with scale s and zero point z represents s*(q - z).
 * An integer op accumulates in int32 (acc), then
 *   lb_requantize(acc, m, z, lo, hi) = (int)rne(clamp((float)acc * m, lo - z, hi - z)) + z
 * where (float)acc rounds to nearest even, the multiply is ONE IEEE fp32 multiply (never
 * contracted into an FMA: lowbit is compiled as ISO C, where GCC and clang do not contract),
 * the clamp is done in float and rne is round-half-to-even (nearbyintf, default rounding).
 * lo/hi are the output dtype's range narrowed by a fused activation (lb_qact_bounds).
 * A two-term sum (add, conv with a residual) is
 *   lb_requantize2(a, ma, b, mb, z, lo, hi) = rne(clamp((float)a*ma + (float)b*mb)) + z,
 * each product rounded to fp32 and then added in fp32. Multipliers are fp32 values computed
 * once, in double, by lb_qmul (m = s_in*s_w/s_out) and lb_qmul_pool. */
int32_t lb_requantize(int32_t acc, float m, int32_t zp, int32_t lo, int32_t hi);
int32_t lb_requantize2(int32_t a, float ma, int32_t b, float mb, int32_t zp, int32_t lo, int32_t hi);
/* ---- integer-only requantize (the spec's `requantize: fixed_point | shift`) ----------------
 * The method of an integer node is its attrs.requant (an lb_requant of spec.h: 0 = none and
 * LB_REQUANT_FP32 mean the fp32 definition above). The multiplier is still the fp32 m of
 * lb_qmul, decomposed exactly (an fp32 has 24 significant bits) by lb_qfixed_of into
 *   m = M * 2^(shift - 31),  2^30 <= |M| < 2^31, M of m's sign  (M = shift = 0 when |m| < 2^-126)
 * and applied with integer arithmetic only, every step exact (i64 intermediates):
 *   x = sat32(acc * 2^ls)                    ls = clamp(shift, 0, 32)
 *   t = floor((x * M + 2^30) / 2^31)         SQRDMULH(x, M): rounding doubling high multiply
 *   y = floor((t + 2^(rs-1)) / 2^rs)         rs = clamp(-shift, 0, 40); SRSHL(t, -rs), rs 0: t
 *   q = clamp(y, lo - z, hi - z) + z
 * Ties: both roundings are half up (toward +inf), what SQRDMULH and SRSHL do (gemmlowp's
 * SaturatingRoundingDoublingHighMul too; its RoundingDivideByPOT rounds half away from zero:
 * lowbit does not). The clamps of ls and rs change no result (bigger shifts saturate or give 0).
 * shift: the same, except that an exact power of two m = +-2^-n is applied as a single rounding
 * shift (rs = n, t = x, or -x saturated to int32 for m < 0 (SQNEG); y = x / 2^n rounded half
 * up; the same for m = +-2^n >= 1 with ls = n); calibration makes every scale
 * of a shift layer a power of two, so only average pooling over a window that is not a power
 * of two takes the multiply there. The two-input form (add, conv + residual) sums the two y terms
 * exactly (no int32 sum of them can wrap: |y| <= 2^31 each, then clamped) before clamp and z. */
typedef struct lb_qfixed {
  int32_t mult;  /* M: Q31, 2^30 <= |M| < 2^31, or 0 */
  int32_t shift; /* m = M * 2^(shift - 31) */
} lb_qfixed;
lb_qfixed lb_qfixed_of(float m);
/* The methods lowbit executes with integer arithmetic only (fixed_point and shift). */
int lb_requant_integer(int method);
/* y of the definition above (before clamp and zero point) for method fixed_point or shift. */
int64_t lb_qfixed_term(int method, int32_t acc, float m);
/* lb_requantize / lb_requantize2 by the node's method (fp32 for 0 and LB_REQUANT_FP32). */
int32_t lb_requantize_by(int method, int32_t acc, float m, int32_t zp, int32_t lo, int32_t hi);
int32_t lb_requantize2_by(int method, int32_t a, float ma, int32_t b, float mb, int32_t zp,
                          int32_t lo, int32_t hi);
/* lb_qparams with the scale rounded up to a power of two (the zero point recomputed for it):
 * the parameters of a value a shift layer reads or writes. */
void lb_qparams_pow2(float lo, float hi, lb_dtype t, int symmetric, float *s, int32_t *zp);
/* The smallest power of two >= s (s > 0 finite; else s). */
float lb_qpow2_up(float s);

/* m = s_in * s_w / s_out rounded once from double to fp32 (s_w = 1 when absent). */
float lb_qmul(float s_in, float s_w, float s_out);
/* m = s_in / (s_out * count) for average pooling over count elements. */
float lb_qmul_pool(float s_in, float s_out, int64_t count);
/* Range of an integer dtype (i8: -128..127, u8: 0..255, i32: full; i4 -8..7, u4 0..15,
 * i2 -2..1, u2 0..3, b1 -1..1 meaning +-1). */
void lb_qrange(lb_dtype t, int32_t *qmin, int32_t *qmax);
/* q = saturate(rne(x / s) + z) with the division in fp32 (what QuantizeLinear does). */
int32_t lb_qquantize(float x, float s, int32_t zp, int32_t qmin, int32_t qmax);
/* The integer range [lo, hi] of an output (dtype t, scale s, zero point z) after a fused
 * activation act (LB_ACT_RELU: real 0; LB_ACT_CLIP: real act_min..act_max), each real bound
 * quantized with lb_qquantize. */
void lb_qact_bounds(int act, float act_min, float act_max, lb_dtype t, float s, int32_t zp,
                    int32_t *lo, int32_t *hi);
/* Scale and zero point for a real range [lo, hi] (widened to include 0) in dtype t:
 * symmetric: s = max|.|/127 (/qmax), z = 0; asymmetric: s = (hi-lo)/(qmax-qmin),
 * z = saturate(rne(qmin - lo/s)). An empty range gives s = 1. */
void lb_qparams(float lo, float hi, lb_dtype t, int symmetric, float *s, int32_t *zp);

/* The 256-entry table of a nonlinear activation between 8-bit tensors (leaky_relu, sigmoid,
 * tanh, hard_sigmoid, hard_swish): table[q - qmin(tin)] = lb_qquantize(f((q - zin) * sin), sout,
 * zout) with f evaluated in fp32 as the reference interpreter does. Backends embed the table
 * computed by this function (on the compiling machine). Returns 0, or -1 for another op. */
int lb_qlut(lb_op op, const lb_attrs *a, lb_dtype tin, float sin, int32_t zin, lb_dtype tout,
            float sout, int32_t zout, int32_t table[256]);

/* ---- interpreter (interp_int.c) -------------------------------------------------------------
 * A node is integer when its output and first input are i8/u8 values with quantization
 * parameters and its op has an integer kernel (conv, gemm, matmul, add, sub, mul, div by a
 * constant, relu, clip, avg_pool, global_avg_pool, reduce_mean, and the table activations of
 * lb_qlut); lb_eval_node then runs
 * lb_int_eval instead of the f32 kernel. */
int lb_int_node(const lb_graph *g, uint32_t id);
/* (ops) Multiplier of an integer div by a constant b (integer value b - zb > 0, scale s_b):
 * s_x / (s_y * s_b * b) rounded once from double to fp32. */
float lb_qmul_div(float s_x, float s_b, int32_t b, float s_y);
int lb_int_eval(const lb_graph *g, uint32_t id, const lb_attrs *a, const lb_tensor *in,
                lb_tensor *out, lb_diag *diag);

/* ---- sub-byte integers (interp_subbyte.c, engineer "search") --------------------------------
 * Packed storage as ir.h says: element i at bit (i * bits) % 8 of byte i * bits / 8, low bits
 * first; i4/i2 two's complement; b1 bit 1 = +1, bit 0 = -1. Sub-byte weights are symmetric
 * narrow (i4 -7..7, i2 -1..1, zero point 0) with 8-bit activations; binary layers binarize their
 * 8-bit input (bit 1 where x >= thr, in the input's integer domain) and take b1 weights, and
 * dot(a, b) = K - 2 * popcount(a xor b). Both accumulate exactly in int32 (plus the int32 bias)
 * and end in lb_requantize with a per-channel multiplier. These scalar kernels are the
 * references the backends' sub-byte kernels must match bit for bit. */
int32_t lb_subbyte_get(lb_dtype t, const void *data, int64_t i);
/* Packs n values (b1: q > 0 is +1) into lb_dtype_bytes(t, n) bytes at out. */
void lb_subbyte_pack(lb_dtype t, const int32_t *q, int64_t n, void *out);
/* k - 2 * popcount(a xor b) over the first k bits of a and b (bit 0 of byte 0 first). */
int32_t lb_binary_dot(const uint8_t *a, const uint8_t *b, int64_t k);

typedef struct lb_subbyte_dense {
  int64_t M, K, N;
  lb_dtype xt, wt, yt; /* x i8/u8; w i4/u4/i2/u2 (or b1 for binary); y i8/u8/i32 */
  int32_t zx, thr;     /* x zero point (sub-byte weights); binarization threshold (binary) */
  const int32_t *bias; /* N values or NULL */
  const float *mul;    /* N requantize multipliers */
  int32_t zy, lo, hi;
} lb_subbyte_dense;

/* y[M,N] = requantize(bias + sum_k (x[r,k] - zx) * w[j,k]) with w packed [N,K]. */
int lb_subbyte_dense_ref(const lb_subbyte_dense *p, const void *x, const void *w, void *y);
/* y[M,N] = requantize(bias + dot(sign(x[r,:] >= thr), w[j,:])) with w b1 packed [N,K]. */
int lb_binary_dense_ref(const lb_subbyte_dense *p, const void *x, const void *w, void *y);

typedef struct lb_subbyte_conv {
  int64_t N, C, H, W, M, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
  lb_dtype xt, wt, yt;
  int32_t zx, thr;
  const int32_t *bias;
  const float *mul; /* M multipliers */
  int32_t zy, lo, hi;
} lb_subbyte_conv;

/* 2-D conv, NCHW input, packed OIHW weights, one group. Sub-byte weights: taps in the padding
 * read the real value 0 (nothing added). b1 weights: the binary dot runs over the in-bounds
 * taps only. */
int lb_subbyte_conv_ref(const lb_subbyte_conv *c, const void *x, const void *w, void *y);

/* Binary layers in a realized graph (engineer "bin"): a conv (1-D/2-D, any group) or gemm node
 * whose input[1] is a b1 constant (conv: OIHW, gemm: [N,K] with trans_b = 1, packed as above).
 * Its 8-bit input[0] keeps its own parameters; the weight's lb_quant holds, per output channel
 * c, scale[c] = s_b * s_w[c] (the real value of one unit of the binary dot) and zero_point[c]
 * = the binarization threshold t in input[0]'s integer domain (the same for every channel).
 * acc[c] = bias[c] + sum over the in-bounds taps of sign(x >= t) * w (a tap in the padding
 * contributes 0, exactly as a real 0 does in the 8-bit conv), then, as every MAC node, y =
 * lb_requantize(acc, lb_qmul(1, scale[c], s_y), ...) (lb_requantize2 with a residual input[3])
 * or the raw acc for an i32 output. */
int lb_binary_node(const lb_graph *g, uint32_t id);
/* Packed i4/u4/i2/u2 weights (ir.h storage) of integer conv/gemm/matmul nodes: the shape rules
 * and the interpreter take them (element values as lb_subbyte_get reads them, zero points as
 * for 8-bit weights). lb_subbyte_weight: v is such a constant. lb_qweight_at: element i of an
 * integer weight constant of any of these dtypes or i8/u8/i32, for backends that read weights
 * one by one (the LLVM backend does; realize stores a plan's i4/i2 weights packed). */
int lb_subbyte_weight(const lb_value *v);
int32_t lb_qweight_at(const lb_value *w, int64_t i);
int lb_binary_eval(const lb_graph *g, uint32_t id, const lb_attrs *a, const lb_tensor *in,
                   lb_tensor *out, lb_diag *diag);

/* ---- the plan ------------------------------------------------------------------------------ */

/* ACC: the int32 accumulator output of a conv/gemm/matmul read only by fp32 layers or the
 * graph output: dequantized with scale s_act * s_weight[c], never requantized to 8 bits. */
typedef enum { LB_QROLE_ACT = 0, LB_QROLE_WEIGHT, LB_QROLE_BIAS, LB_QROLE_CONST, LB_QROLE_ACC } lb_qrole;

/* The decision for one value (by id of the graph the plan was made for). */
typedef struct lb_qval {
  lb_dtype dtype;   /* LB_DTYPE_F32: not quantized; I8/U8 activations and weights; I32 bias */
  lb_qrole role;
  unsigned schemes; /* LB_SCHEME_* allowed (activations) */
  int symmetric;    /* chosen scheme (zero point 0) */
  int axis;         /* per-channel axis, -1 per tensor */
  uint32_t n;       /* number of scales, 0 until set */
  float *scale;     /* n scales (plan arena) */
  int32_t *zp;      /* n zero points */
  float lo, hi;     /* calibrated real range of an activation */
  int ranged;       /* lo/hi are set */
  uint32_t cls;     /* shared-scale class: the representative value id */
  uint32_t bias_of; /* bias and accumulator: the node it belongs to */
  const char *yaml_at; /* "FILE:LINE:COL" where an edited plan set it, else NULL */
  lb_dtype file_dtype; /* the dtype the edited plan gave (checked against the annotation) */
} lb_qval;

/* The decision for one node. */
typedef struct lb_qlayer {
  int integer;       /* runs in integer arithmetic */
  const char *combo; /* spec combination label, or "f32" */
  lb_dtype act, weight, out;
  char why[200];     /* why it stays fp32, or how it runs */
  int forced_f32;    /* an edited plan asked for f32 */
  /* (search) a searched or edited plan asked for this spec combination label (e.g. i8_w4,
   * sub-byte weights); annotate honours it when the layer is integer, else reports it */
  const char *want;
  const char *want_at; /* "FILE:LINE:COL" of that request, or NULL */
  /* (bin) a layer with binary activations (combo act b1): the binarization threshold in the
   * integer domain of its 8-bit input and the magnitude s_b of the binary activation (real
   * value +-s_b); bin_scale 0 = not set. Set by the search, kept by annotate. */
  int32_t bin_thr;
  float bin_scale;
  /* the requantize method (lb_requant) of an integer layer: the spec combination's, or the
   * plan's `requantize:` (rq_at says where) */
  int requant;
  const char *rq_at;
} lb_qlayer;

typedef struct lb_qplan {
  lb_arena arena;
  const char *spec;   /* spec name */
  const char *method; /* calibration method, or "plan" when read from a file */
  lb_dtype act;       /* activation dtype of the integer layers */
  uint32_t n_values, n_nodes;
  lb_qval *v;
  lb_qlayer *l;
} lb_qplan;

/* A plan for g with every layer fp32 and no value quantized; NULL on OOM. */
lb_qplan *lb_qplan_new(const lb_graph *g);
void lb_qplan_free(lb_qplan *p);
/* Sets value v's parameters (n scales/zero points copied into the plan). 0 or LB_ERR_NOMEM. */
int lb_qplan_set(lb_qplan *p, uint32_t v, uint32_t n, int axis, const float *scale,
                 const int32_t *zp);

/* Writes the plan as YAML (layers with precision and reason, then every quantized tensor). */
void lb_qplan_write(const lb_qplan *p, const lb_graph *g, FILE *f);
/* Writes it atomically to path (temp file + rename). */
int lb_qplan_save(const lb_qplan *p, const lb_graph *g, const char *path, lb_diag *diag);
/* Prints the per-layer report (one line per node: precision and why). */
void lb_qplan_report(const lb_qplan *p, const lb_graph *g, FILE *f);
/* Reads an edited plan for g: layers may be set to "f32" (forced_f32), tensors get the dtype,
 * scales and zero points written there. Values not mentioned keep their state. Errors are
 * "FILE:LINE:COL: error: ..." (unknown layer or tensor, bad dtype, scale <= 0 or not finite,
 * zero point outside the dtype, wrong channel count). */
int lb_qplan_load(lb_qplan *p, const lb_graph *g, const char *path, lb_diag *diag);

/* ---- the command line (cmd_quant.c) --------------------------------------------------------
 * Options shared by `lowbit run` and `lowbit quantize`. */
#define LB_QCLI_MAX_CALIB 16
typedef struct lb_qcli {
  const char *quantize; /* --quantize int8|none */
  const char *calib;    /* --calib: the first value (NULL: none) */
  /* every --calib value (repeatable); each is a comma list of FILE (in graph input order) or
   * NAME=FILE items, one .npy per graph input. n_calibs 0 with calib set: calib alone. */
  const char *calibs[LB_QCLI_MAX_CALIB];
  int n_calibs;
  const char *method;   /* --calib-method */
  const char *plan;     /* --plan P.yaml (an edited plan) */
  const char *plan_out; /* --plan-out P.yaml */
} lb_qcli;

/* Consumes argv[*i] (and its value) if it is one of the options above: returns 1, or 2 after
 * printing "lowbit CMD: ..." for a missing value; 0 if it is not a quantization option. */
int lb_qcli_parse(lb_qcli *o, const char *cmd, int argc, char **argv, int *i);
/* Checks the combination (prints the error, returns 2) or returns 0. */
int lb_qcli_check(const lb_qcli *o, const char *cmd);
/* Quantization was asked for (--quantize int8 or --plan). */
int lb_qcli_active(const lb_qcli *o);
/* import MODEL, fp32 passes, annotate for spec (NULL: host), [--plan], calibrate, print the
 * per-layer report on `report` (may be NULL), [--plan-out], realize in mode (lb_realize_mode
 * of passes/quantize.h). The prepared fp32 graph and the plan are handed out when asked. */
int lb_qcli_build(const lb_qcli *o, const char *model, const char *spec, int mode, FILE *report,
                  lb_graph **fp32, lb_qplan **plan, lb_graph **out, lb_diag *d);
/* Writes a graph of fp32 ops, quantize/dequantize and integer constants as an opset-13 ONNX
 * model, atomically. */
int lb_qdq_write(const lb_graph *g, const char *path, lb_diag *d);
int lb_cmd_quantize(int argc, char **argv);

#endif
