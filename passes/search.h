/* Per-layer precision search (issue 6): the search space a spec declares for each MAC layer of
 * a prepared fp32 graph (fp32 plus every weight/activation combination of its op kind), the
 * modeled cost of a choice (cost.c), the evaluation of a whole assignment by simulated
 * quantization (search.c, replaceable through lb_search_eval_fn), and the strategies (auto:
 * sensitivity -> Lagrangian knapsack -> greedy refinement; hago-greedy). Invariant: a choice
 * vector has one entry per searched layer, indexing that layer's lb_search_layer.opt[]. */
#ifndef LB_PASSES_SEARCH_H
#define LB_PASSES_SEARCH_H

#include <stdio.h>

#include "quantize.h"

#define LB_SEARCH_MAX_OPTS 8

/* One precision a layer may take: combo NULL means fp32. */
typedef struct lb_search_opt {
  const lb_spec_combo *combo;
  lb_dtype act, weight; /* F32/F32 for fp32; weight F32 for weightless kinds */
  const char *label;    /* combo label or "f32" */
} lb_search_opt;

/* A searched layer: a MAC node (conv, gemm, dense matmul) that the int8 plan runs in integer. */
typedef struct lb_search_layer {
  uint32_t node;
  lb_spec_opkind kind;
  int n_opt, base; /* base: the all-int8 option (the int8 plan's combination) */
  lb_search_opt opt[LB_SEARCH_MAX_OPTS];
  int64_t macs, weight_elems;
  double sens[LB_SEARCH_MAX_OPTS]; /* objective loss when only this layer takes opt k */
  double noise[LB_SEARCH_MAX_OPTS]; /* output noise power added (fraction of signal power) */
} lb_search_layer;

/* ---- cost.c ------------------------------------------------------------------------------- */

/* Modeled cost of one node, in cycles of one core, split by what bounds it. */
typedef struct lb_cost {
  double compute; /* MACs / (macs_per_cycle * efficiency) */
  double epilogue; /* outputs / (elements_per_cycle * efficiency): requantize, elementwise */
  double memory;  /* weight bytes + activation bytes over the bandwidth of their level */
} lb_cost;

/* Where the weights of a model of weight_bytes live (1..3 caches, 4 = DRAM) and that level's
 * bytes per cycle. */
int lb_cost_weight_level(const lb_spec *s, int64_t weight_bytes, double *bytes_per_cycle);
/* Cost of node n of g when it runs with combination c (NULL: fp32; for weightless nodes the
 * spec's combination of its kind with activation dtype act), weights stored as wdt with their
 * bytes read at wbw bytes per cycle. Nodes the spec does not cover cost their output elements
 * at the fp32 activation rate. */
lb_cost lb_cost_node(const lb_spec *s, const lb_graph *g, uint32_t n, const lb_spec_combo *c,
                     lb_dtype act, lb_dtype wdt, double wbw);
double lb_cost_total(const lb_cost *c);
/* Weight bytes of node n stored as wdt (fp32 weights and biases 4 bytes, packed sub-byte). */
int64_t lb_cost_weight_bytes(const lb_graph *g, uint32_t n, lb_dtype wdt);

/* ---- search.c ----------------------------------------------------------------------------- */

typedef enum { LB_STRATEGY_AUTO = 0, LB_STRATEGY_HAGO_GREEDY, LB_STRATEGY_COUNT } lb_strategy;
const char *lb_strategy_name(lb_strategy s);
int lb_strategy_from_name(const char *s, lb_strategy *out); /* 0 on success */

/* How good one assignment is, on the evaluation set. */
typedef struct lb_search_score {
  double acc;   /* top-1 accuracy against labels (0 when there are none) */
  double agree; /* top-1 agreement with fp32 */
  double sqnr;  /* output SQNR against fp32, dB (capped at 200) */
  double quality; /* the objective: acc with labels, else agree */
} lb_search_score;

/* One evaluated assignment. */
typedef struct lb_search_point {
  unsigned char *choice; /* per layer */
  double cycles;         /* modeled, whole model */
  int64_t weight_bytes;
  lb_search_score score;
  int pareto, chosen;
} lb_search_point;

typedef struct lb_search lb_search;

/* Runs the model under assignment `choice` on samples [0, n) of the evaluation set and writes
 * the flattened first output of each sample to out (n * lb_search_out_numel floats). The default
 * is the interpreter on the simulated-quantized graph; a JIT evaluator can replace it. */
typedef int (*lb_search_eval_fn)(lb_search *s, void *user, const unsigned char *choice,
                                 int64_t n, float *out, lb_diag *d);

typedef struct lb_search_opts {
  lb_strategy strategy;
  double max_drop;       /* allowed quality drop, in points (percent) */
  double latency_budget; /* ms, modeled; 0: none */
  int64_t size_budget;   /* weight bytes; 0: none */
  double min_sqnr;       /* output SQNR against fp32 at least this (dB); 0: none */
  int64_t sens_samples;  /* samples for the sensitivity pass (0: 64) */
  int progress;          /* progress bar on stderr */
  lb_search_eval_fn eval; /* NULL: the interpreter */
  void *eval_user;
} lb_search_opts;

/* Builds the search for an annotated and calibrated int8 plan p of the prepared graph g:
 * layers, options, and the evaluation set x (N samples along axis 0) with optional labels
 * (N integers, i64 or i32). calib is the calibration set, used for binary activation
 * thresholds. calib and x are arrays of g->n_inputs tensors (graph input order, each of its
 * input's dtype, the same N). g, s, p, x, labels must outlive the search. */
int lb_search_new(const lb_graph *g, const lb_spec *s, const lb_qplan *p, const lb_tensor *calib,
                  const lb_tensor *x, const lb_tensor *labels, lb_search **out, lb_diag *d);
void lb_search_free(lb_search *s);

uint32_t lb_search_n_layers(const lb_search *s);
const lb_search_layer *lb_search_layer_at(const lb_search *s, uint32_t i);
int64_t lb_search_out_numel(const lb_search *s); /* floats per sample of the first output */
int64_t lb_search_n_eval(const lb_search *s);

/* Modeled cost (cycles) and weight bytes of an assignment. */
double lb_search_cycles(const lb_search *s, const unsigned char *choice, int64_t *weight_bytes);
double lb_search_ms(const lb_search *s, double cycles);
/* Cycles of layer li under assignment choice (its option there, weights at choice's level). */
double lb_search_layer_cycles(const lb_search *s, const unsigned char *choice, uint32_t li);
/* Measured costs (--measure): cycles[li * LB_SEARCH_MAX_OPTS + k] is layer li under option k
 * on this host (negative: not measured; the layer's model scaled by its measured/modeled ratio
 * at the base option stands in), rest the measured cycles of every other step of the all-int8
 * plan, f32 those of the fp32 model (negative: unknown). An option that changes the activation
 * dtype (fp32) must hold the change of the rest it brings (its island's conversions and
 * neighbours). Afterwards every cost (points, knapsack items, refinement) is rest + the
 * layers' figures (the all-fp32 assignment: f32); NULL restores the model. 0 or
 * LB_ERR_NOMEM. */
int lb_search_set_measured(lb_search *s, const double *cycles, double rest, double f32);
int lb_search_measured(const lb_search *s);
/* The searched layer whose output layer b reads through weightless nodes only (its first
 * input's chain), or -1. */
int lb_search_neighbour(const lb_search *s, uint32_t b);
/* --measure: the correction of neighbours a and b both fp32 (cycles added to the sum of their
 * figures alone: the conversions between them, counted in both, taken back); after
 * lb_search_set_measured, which clears them. 0 or LB_ERR_NOMEM. */
int lb_search_set_pair(lb_search *s, uint32_t a, uint32_t b, double cycles);
/* Evaluates an assignment on the whole evaluation set. */
int lb_search_score_of(lb_search *s, const unsigned char *choice, lb_search_score *out,
                       lb_diag *d);

/* Runs the strategy. Afterwards the evaluated points (Pareto front marked) and the chosen one
 * are available below; the fp32 and all-int8 references are points too. */
int lb_search_run(lb_search *s, const lb_search_opts *o, lb_diag *d);
uint32_t lb_search_n_points(const lb_search *s);
const lb_search_point *lb_search_point_at(const lb_search *s, uint32_t i);
const lb_search_point *lb_search_chosen(const lb_search *s);
const lb_search_point *lb_search_fp32(const lb_search *s);
const lb_search_point *lb_search_int8(const lb_search *s);
uint32_t lb_search_n_evals(const lb_search *s); /* full evaluations run */
/* The chosen point meets --max-drop and the budgets. When none does, the chosen point is the
 * best quality within the budgets, else the cheapest one. Points with binary layers are on the
 * front (simulated) but never chosen: realize has no binary layers yet. */
int lb_search_goal_met(const lb_search *s);

/* Whether realize can build layer L of g with option k (binary: gemm and single-group
 * convs). The strategies never choose, and the JIT never runs, an option this refuses. */
int lb_search_opt_realizable(const lb_graph *g, const lb_search_layer *L, int k);

/* Writes the chosen assignment into plan p (made for g): f32 layers forced, sub-byte weights
 * and binary activations with their parameters. */
int lb_search_apply(const lb_search *s, const unsigned char *choice, lb_qplan *p, lb_diag *d);

/* ---- the simulated semantics shared with the integer kernels ------------------------------ */

/* Symmetric per-channel weight quantization to dtype t (i8: [-127,127], i4: [-7,7],
 * i2: [-1,1], b1: sign with scale mean|w|): fills scale[ch] and, when q is not NULL, q[i] in
 * {-qmax..qmax} (b1: -1 or +1). axis/channels as lb_qval. */
int lb_search_quant_weights(const float *w, int64_t n, int64_t ch, int64_t inner, lb_dtype t,
                            float *scale, int32_t *q); /* 0 or LB_ERR_NOMEM */

/* Bias correction (Nagel et al. 2019, empirical): whether weights of dtype t get it (the
 * sub-byte ones; b1 layers fold their own DC term). */
int lb_search_bias_corrected(lb_dtype t);
/* The input statistic of MAC node n: per input channel c and kernel tap t of a conv, the mean
 * over output positions of the input value that tap reads (0 in the padding), at c * taps + t;
 * per input channel for gemm/matmul. stat_add adds one sample's sums (x: node n's fp32 input
 * [0]) into sum[stat_len]; divide by samples * stat_count for the means. With it the
 * correction is exactly the mean output shift over all positions. */
int64_t lb_search_stat_len(const lb_graph *g, uint32_t n);
double lb_search_stat_count(const lb_graph *g, uint32_t n);
void lb_search_stat_add(const lb_graph *g, uint32_t n, const lb_tensor *x, double *sum);
/* corr[j] = sum over the weights of output channel j of node n of (Wq - W) * mean[c] (c: the
 * weight's statistic index), Wq quantized to t with scale[n_scale] as lb_search_quant_weights
 * does; nb bias values. -1 when nb is not the output channel count or the layout is not
 * covered (then no correction). */
int lb_search_bias_corr(const lb_graph *g, uint32_t n, lb_dtype t, const float *scale,
                        uint32_t n_scale, const double *mean, int64_t nb, double *corr);
/* z[j] = -rne(corr[j] / (s_act * s_w[j])): the correction in units of the int32 bias, with
 * the bias scales lb_quant_params gives. A plan carries it as the bias's zero points: realize
 * quantizes the fp32 bias b to rne(b / s) + z (QuantizeLinear's formula) and stores that
 * integer with zero point 0, so every realization adds the corrected bias. */
void lb_search_bias_units(const double *corr, int64_t nb, float sa, const float *sw,
                          uint32_t n_sw, int32_t *z);

/* ---- compiler/search_measure.c: realized assignments on the JIT (uses targets/target.h) ---- */

struct lb_jit;
/* What realizing an assignment needs: the prepared fp32 graph, the spec, the calibrated int8
 * plan, the search, and the samples (sample 0 is the timing input). */
typedef struct lb_search_env {
  const lb_graph *g;
  const lb_spec *spec;
  const lb_qplan *p;
  lb_search *s;
  const lb_tensor *x; /* one tensor per graph input, as lb_search_new's x */
} lb_search_env;

/* The integer graph of assignment choice, JIT-compiled for the spec (profile: with per-step
 * entry points); *q and *j are the caller's on success. */
int lb_search_jit(const lb_search_env *e, const unsigned char *choice, int profile, lb_graph **q,
                  struct lb_jit **j, lb_diag *d);
/* Times samples of back-to-back runs of a JIT'd or AOT entry (after `warm` runs): each sample
 * is a batch of R runs, R doubled from 1 until a batch lasts min_sample_s of thread CPU time,
 * so the clock reads (syscalls) do not swamp a sub-microsecond model; cpu[i] (and wall_s[i]
 * unless NULL) get the seconds per run of sample i. Returns R, or -1 when a run fails. */
long lb_time_runs(int (*run)(const void *const[], void *const[], void *), const void *const *in,
                  void *const *out, void *ws, long warm, long samples, double min_sample_s,
                  double *cpu, double *wall_s);
/* Median thread CPU microseconds of one run of the realized assignment (NULL: the fp32 graph). */
int lb_search_time_plan(const lb_search_env *e, const unsigned char *choice, double *us,
                        lb_diag *d);

typedef struct lb_measure_opts {
  const char *cache;      /* cache file, NULL: none */
  const char *model_path; /* hashed into the key */
  int progress;
} lb_measure_opts;
typedef struct lb_measure_stats {
  uint32_t plans;  /* profiled plans compiled and timed */
  uint32_t timed;  /* layer figures measured now */
  uint32_t cached; /* figures taken from the cache */
} lb_measure_stats;

/* --measure: times every realizable option of every layer on this host (one profiled plan per
 * precision label: the layers that have it take it, the others stay at their base; per-step
 * medians of thread CPU time), the rest of the all-int8 plan, and each pair of neighbours in
 * fp32 together (lb_search_set_pair: cached as the pair's figure, label f32+f32); figures found in the cache
 * (key: spec name and hash of its resolved text, model file hash, hash of this executable,
 * layer name, precision label) are not timed again. Hands the figures to
 * lb_search_set_measured and writes the cache back atomically. */
int lb_search_measure_layers(const lb_search_env *e, const lb_measure_opts *o,
                             lb_measure_stats *st, lb_diag *d);
/* $XDG_CACHE_HOME/lowbit/measure.tsv, else ~/.cache/lowbit/measure.tsv; -1 if neither. */
int lb_search_measure_default_cache(char *out, size_t n);

/* ---- svg.c -------------------------------------------------------------------------------- */

/* Draws cost (ms, x) against quality (%, y) of every point, the Pareto front joined, the chosen
 * point marked; written atomically. */
int lb_svg_pareto(const lb_search *s, const char *title, const char *path, lb_diag *d);

/* ---- cmd_search.c ------------------------------------------------------------------------- */

int lb_cmd_search(int argc, char **argv);

#endif
