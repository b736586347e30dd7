/* Target specs: a YAML file per target says what the hardware supports (op x dtype x
 * granularity), its LLVM triple/cpu/features, ISA facts and costs. Validated on load with
 * FILE:LINE:COL errors. The compiler takes every target decision from here; no C code
 * branches on a target's name. A loaded lb_spec is immutable and owns all its strings.
 * The schema is documented in specs/README.md. */
#ifndef LB_SPEC_H
#define LB_SPEC_H

#include <stdio.h>

#include "ir.h"

typedef struct lb_spec lb_spec;

/* Loads a spec by bundled name ("x86-64-avx2"), by file path, or "host" (detects this CPU and
 * passes its real feature string to LLVM). A name is a path when it contains '/' or ends in
 * ".yaml"; bundled names are looked up in $LOWBIT_SPEC_DIR, else LB_SPEC_DIR (source specs/). */
int lb_spec_load(const char *name_or_path, lb_spec **out, lb_diag *diag);
/* Loads YAML text; file_name is used in messages; `extends` by name resolves against the
 * bundled directory (by path: relative to the current directory). */
int lb_spec_load_buffer(const char *data, size_t len, const char *file_name, lb_spec **out,
                        lb_diag *diag);
void lb_spec_free(lb_spec *s);

/* What codegen needs. Strings are owned by the spec. */
const char *lb_spec_name(const lb_spec *s);
const char *lb_spec_llvm_triple(const lb_spec *s);
const char *lb_spec_llvm_cpu(const lb_spec *s);
const char *lb_spec_llvm_features(const lb_spec *s);
int lb_spec_vector_bits(const lb_spec *s);       /* e.g. 256 for AVX2, 128 for NEON */
int lb_spec_vector_registers(const lb_spec *s);  /* e.g. 16 for AVX2, 32 for AArch64 */
int64_t lb_spec_cache_bytes(const lb_spec *s, int level); /* level 1..3; 0 if absent */
double lb_spec_fp32_peak_macs(const lb_spec *s); /* fp32 MACs per cycle per core */
double lb_spec_clock_ghz(const lb_spec *s);      /* nominal clock, for peak fractions */

const char *lb_spec_description(const lb_spec *s);
/* ISA token for kernel names (STYLE.md): scalar avx2 avx512vnni neon neondot neoni8mm. */
const char *lb_spec_isa(const lb_spec *s);
/* 1 when loaded as "host": cpu and features are this machine's. */
int lb_spec_is_host(const lb_spec *s);

/* ---- memory ----------------------------------------------------------------------------- */

typedef struct lb_spec_mem {
  int64_t bytes;          /* capacity (per core for L1/L2, shared for L3) */
  double bytes_per_cycle; /* sustained bandwidth from this level into the core */
} lb_spec_mem;

int lb_spec_cache_levels(const lb_spec *s); /* 1..3 */
/* level 1..3; returns 0 and fills m, or -1 if the level is absent. */
int lb_spec_memory(const lb_spec *s, int level, lb_spec_mem *m);
double lb_spec_dram_bytes_per_cycle(const lb_spec *s);

/* ---- op kinds and precision combinations ------------------------------------------------ */

/* Op kinds of the spec schema (names as in the YAML). Several IR ops map to one kind. */
#define LB_SPEC_OPKINDS(X)                                                                       \
  /* enum               yaml name          has weight  counts MACs */                            \
  X(CONV2D, conv2d, 1, 1)                                                                        \
  X(DEPTHWISE_CONV2D, depthwise_conv2d, 1, 1)                                                    \
  X(DENSE, dense, 1, 1)                                                                          \
  X(MATMUL, matmul, 1, 1)                                                                        \
  X(ADD, add, 0, 0)                                                                              \
  X(MUL, mul, 0, 0)                                                                              \
  X(POOL, pool, 0, 0)                                                                            \
  X(ACTIVATION, activation, 0, 0)                                                                \
  X(CONCAT, concat, 0, 0)

typedef enum {
#define X(e, s, w, m) LB_SPEC_##e,
  LB_SPEC_OPKINDS(X)
#undef X
      LB_SPEC_OPKIND_COUNT
} lb_spec_opkind;

const char *lb_spec_opkind_name(lb_spec_opkind k);
int lb_spec_opkind_from_name(const char *s, lb_spec_opkind *out); /* 0 on success */
int lb_spec_opkind_has_weight(lb_spec_opkind k); /* conv/dense: weights; matmul: 2nd operand */
/* The spec op kind of graph node `node`, or -1 when the spec does not cover the op (layout
 * ops, softmax, ...: those stay fp32 or pass dtypes through). Conv with one input channel per
 * group is depthwise_conv2d; matmul with a constant second operand is dense; div by a constant
 * is mul (by its reciprocal); reduce_mean is pool (an average over axes). */
int lb_spec_opkind_of(const lb_graph *g, uint32_t node);

enum { LB_GRAN_PER_TENSOR = 1, LB_GRAN_PER_CHANNEL = 2 };   /* bit set */
enum { LB_SCHEME_SYMMETRIC = 1, LB_SCHEME_ASYMMETRIC = 2 }; /* bit set */

typedef enum {
  LB_REQUANT_NONE = 0,    /* float combination: no requantize */
  LB_REQUANT_FP32,        /* acc -> float, x scale (no FMA), round to nearest even, + zp */
  LB_REQUANT_FIXED_POINT, /* acc x int32 multiplier, rounding shift, + zp */
  LB_REQUANT_SHIFT,       /* power-of-two scales: rounding shift only */
  LB_REQUANT_COUNT
} lb_requant;
const char *lb_requant_name(lb_requant r);

/* The instruction strategy the cost figures assume; the backend may use it to pick a kernel
 * family without looking at the target's name. */
#define LB_SPEC_KERNELS(X)                                                                       \
  X(GENERIC, generic)     /* plain IR, LLVM's vectorizer */                                      \
  X(FMA, fma)             /* fp32 fused multiply-add */                                          \
  X(PMADDWD, pmaddwd)     /* x86: i16 pairs (weights pre-widened), exact for s8 x s8 */          \
  X(PMADDUBSW, pmaddubsw) /* x86: u8 x s8 pairs into i16 (low-bit weights, no saturation) */     \
  X(VPDPBUSD, vpdpbusd)   /* x86 VNNI: u8 x s8 quads into i32 */                                 \
  X(SMLAL, smlal)         /* AArch64: widening multiply-accumulate */                            \
  X(SDOT, sdot)           /* AArch64 dotprod */                                                  \
  X(SMMLA, smmla)         /* AArch64 i8mm: 2x8 by 8x2 matrix multiply-accumulate */              \
  X(POPCOUNT, popcount)   /* binary: xor + popcount */

typedef enum {
#define X(e, s) LB_KERNEL_##e,
  LB_SPEC_KERNELS(X)
#undef X
      LB_KERNEL_COUNT
} lb_spec_kernel;
const char *lb_spec_kernel_name(lb_spec_kernel k);

/* One supported precision combination of an op kind and what it costs. */
typedef struct lb_spec_combo {
  const char *label;              /* its key in the spec (ops.KIND.LABEL) */
  lb_dtype act, weight, acc, out; /* weight is LB_DTYPE_COUNT for ops without weights */
  unsigned granularity;           /* LB_GRAN_* set (weights; per-tensor for other ops) */
  unsigned act_scheme;            /* LB_SCHEME_* set; 0 for float combinations */
  unsigned weight_scheme;         /* LB_SCHEME_* set; 0 for float or weightless */
  int narrow_range;               /* weights must avoid the most negative value (-127..127) */
  lb_requant requant;
  lb_spec_kernel kernel;
  double macs_per_cycle;     /* peak MACs per cycle per core; 0 for ops without MACs */
  double efficiency;         /* fraction of peak a good kernel sustains, in (0, 1] */
  double elements_per_cycle; /* output elements per cycle (elementwise; epilogue of MAC ops) */
  const char *file;          /* where it was declared (for messages) */
  int line;
} lb_spec_combo;

/* All combinations declared for kind k, in file order (possibly none: the op stays fp32). */
size_t lb_spec_combos(const lb_spec *s, lb_spec_opkind k, const lb_spec_combo **out);
/* The combination of kind k with these activation and weight dtypes (weight ignored for
 * weightless kinds) that sustains the most MACs (or elements) per cycle; NULL if none. */
const lb_spec_combo *lb_spec_find(const lb_spec *s, lb_spec_opkind k, lb_dtype act,
                                  lb_dtype weight);
/* Sustained rate of a combination: macs_per_cycle (or elements_per_cycle) x efficiency. */
double lb_spec_combo_rate(const lb_spec_combo *c);
/* Replaces the efficiency of combination `label` of kind k (lowbit spec calibrate); eff must be
 * in (0, 1]. Returns 0, or -1 when there is no such combination or eff is out of range. The
 * one mutator of a loaded spec: call it before the spec is shared. */
int lb_spec_set_efficiency(lb_spec *s, lb_spec_opkind k, const char *label, double eff);
/* Peak MACs per cycle of the best dense combination with 8-bit activations and i8 weights
 * (0 if the spec has none). */
double lb_spec_int8_peak_macs(const lb_spec *s);

/* ---- host, listing, printing ------------------------------------------------------------ */

/* Checks that this machine can run code built for s (architecture and the spec's required
 * host features). LB_ERR_INPUT with a message naming the missing feature otherwise. */
int lb_spec_host_check(const lb_spec *s, lb_diag *diag);
/* Host detection from a given /proc/cpuinfo text and architecture ("x86_64", "aarch64");
 * lb_spec_load("host") calls it with this machine's. */
int lb_spec_load_host_from(const char *cpuinfo, const char *arch, lb_spec **out, lb_diag *diag);
/* LLVM feature string ("+avx2,+fma,-avx512f,...") for the cpuinfo flags of arch. Returns a
 * lb_malloc'd string or NULL on OOM. */
char *lb_spec_host_features(const char *cpuinfo, const char *arch);

/* Directory of bundled specs ($LOWBIT_SPEC_DIR or LB_SPEC_DIR). */
const char *lb_spec_dir(void);
/* Names of the bundled specs, sorted; *names is lb_malloc'd, each name too. Returns count or
 * -1 (diag set). Free with lb_spec_names_free. */
int lb_spec_list_names(char ***names, lb_diag *diag);
void lb_spec_names_free(char **names, int n);

/* Writes the spec (extends resolved, defaults explicit) as YAML that loads back to the same
 * spec. */
void lb_spec_write(const lb_spec *s, FILE *f);
/* Prints a diagnostic; when it starts with FILE:LINE:COL of a readable file, also prints the
 * source line and a caret under the column. */
void lb_spec_print_diag(FILE *f, const lb_diag *d);

#endif
