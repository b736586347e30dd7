/* `lowbit search MODEL --spec S --calib C.npy [--eval E.npy] [--labels L.npy] -o plan.yaml`:
 * the int8 plan (annotate + calibrate), then the per-layer precision search (passes/search.c),
 * the per-layer table and Pareto front on stdout, the plan and an SVG plot. --calib and --eval
 * take one .npy per model input, as compile's --calib does. Invariant: nothing is written
 * unless the whole search succeeded; files are written atomically. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "onnx.h"
#include "passes.h"
#include "search.h"
#include "target.h"
#include "tensor_io.h"

typedef struct sopts {
  const char *model, *spec, *calib, *eval, *labels, *out, *plot, *method, *engine, *cache;
  const char *calibs[LB_QCLI_MAX_CALIB], *evals[LB_QCLI_MAX_CALIB]; /* every value given */
  int n_calibs, n_evals;
  lb_search_opts so;
  int quiet, measure, time_front;
} sopts;

static void usage(FILE *f) {
  fprintf(f,
          "usage: lowbit search MODEL.onnx --spec S --calib C.npy [--labels L.npy] -o PLAN.yaml\n"
          "\n"
          "Searches a precision per layer (fp32 and every weight/activation combination the spec\n"
          "declares: int8, int6, int5, int4, int2, binary) against the spec's cost model, keeping\n"
          "the quality within --max-drop of fp32: top-1 accuracy with labels, else top-1 agreement\n"
          "with fp32.\n"
          "Prints the per-layer table and the Pareto front; writes the plan for --plan.\n"
          "\n"
          "  --spec S              target spec (bundled name, file, or host; default host)\n"
          "  --calib C.npy         calibration samples along axis 0: one .npy per model input\n"
          "                        (a comma list in input order, NAME=FILE items, or repeated),\n"
          "                        each of its input's dtype, all with the same sample count\n"
          "  --eval E.npy          evaluation samples, given as --calib (default: the\n"
          "                        calibration samples)\n"
          "  --labels L.npy        integer labels of the evaluation samples\n"
          "  --max-drop X          allowed quality drop in points (default 1)\n"
          "  --latency-budget MS   modeled latency budget in milliseconds\n"
          "  --size-budget BYTES   weight memory budget in bytes\n"
          "  --min-sqnr DB         also keep the output SQNR against fp32 at least DB\n"
          "  --strategy S          auto (default) or hago-greedy\n"
          "  --sens-samples N      samples for the sensitivity pass (default 64)\n"
          "  --calib-method M      max, avg-max (default), percentile, kl or mse\n"
          "  --engine E            evaluate candidates with jit (the realized integer graph,\n"
          "                        JIT-compiled; the default when this host runs the spec) or\n"
          "                        interp (simulated quantization; the default otherwise)\n"
          "  --measure             cost = per-layer variants JIT-timed on this host (each layer in\n"
          "                        each precision, cached), and the front's plans timed whole\n"
          "  --time-front          only JIT-time the front's plans whole (costs stay modeled)\n"
          "  --measure-cache F     the cache of --measure (default $XDG_CACHE_HOME/lowbit/\n"
          "                        measure.tsv or ~/.cache/lowbit/measure.tsv)\n"
          "  -o, --output P.yaml   the plan (written atomically)\n"
          "  --plot F.svg          cost against quality, chosen point marked\n"
          "  -q, --quiet           print only the chosen point\n"
          "  -h, --help            print this help\n");
}

static int is(const char *a, const char *b) { return strcmp(a, b) == 0; }

static int num_arg(const char *opt, const char *v, double *out) {
  char *end;
  *out = strtod(v, &end);
  if (end == v || *end || !isfinite(*out) || *out < 0) {
    fprintf(stderr, "lowbit search: %s '%s' is not a non-negative number\n", opt, v);
    return 2;
  }
  return 0;
}

/* A --calib or --eval value: kept with the others (the first also in *first). */
static int list_opt(const char *a, const char *v, const char **first, const char **all, int *n) {
  if (*n == LB_QCLI_MAX_CALIB) {
    fprintf(stderr, "lowbit search: more than %d %s options\n", LB_QCLI_MAX_CALIB, a);
    return 2;
  }
  all[(*n)++] = v;
  *first = all[0];
  return 0;
}

static int value_opt(sopts *o, const char *a, const char *v) {
  double x;
  if (is(a, "--calib")) return list_opt(a, v, &o->calib, o->calibs, &o->n_calibs);
  if (is(a, "--eval")) return list_opt(a, v, &o->eval, o->evals, &o->n_evals);
  const char **slot = is(a, "--spec") ? &o->spec : is(a, "--labels") ? &o->labels
                      : is(a, "-o") || is(a, "--output") ? &o->out : is(a, "--plot") ? &o->plot
                      : is(a, "--calib-method") ? &o->method : is(a, "--engine") ? &o->engine
                      : is(a, "--measure-cache") ? &o->cache : NULL;
  if (slot) return *slot = v, 0;
  if (is(a, "--strategy")) {
    if (lb_strategy_from_name(v, &o->so.strategy) == 0) return 0;
    fprintf(stderr, "lowbit search: --strategy '%s' is not one of auto, hago-greedy\n", v);
    return 2;
  }
  if (num_arg(a, v, &x)) return 2;
  if (is(a, "--max-drop")) o->so.max_drop = x;
  else if (is(a, "--latency-budget")) o->so.latency_budget = x;
  else if (is(a, "--size-budget")) o->so.size_budget = (int64_t)x;
  else if (is(a, "--min-sqnr")) o->so.min_sqnr = x;
  else o->so.sens_samples = (int64_t)x; /* --sens-samples */
  return 0;
}

static int takes_value(const char *a) {
  static const char *const v[] = {"--spec", "--calib", "--eval", "--labels", "-o", "--output",
                                  "--plot", "--calib-method", "--strategy", "--max-drop", "--engine",
                                  "--latency-budget", "--size-budget", "--sens-samples",
                                  "--min-sqnr", "--measure-cache"};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    if (is(a, v[i])) return 1;
  return 0;
}

/* 0: parsed; 1: help printed; 2: usage error printed. */
static int parse(sopts *o, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (is(a, "-h") || is(a, "--help")) return usage(stdout), 1;
    if (is(a, "-q") || is(a, "--quiet")) {
      o->quiet = 1;
    } else if (is(a, "--measure")) {
      o->measure = 1, o->time_front = 1;
    } else if (is(a, "--time-front")) {
      o->time_front = 1;
    } else if (takes_value(a)) {
      if (i + 1 >= argc) {
        fprintf(stderr, "lowbit search: option '%s' needs an argument\n", a);
        return 2;
      }
      if (value_opt(o, a, argv[++i])) return 2;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "lowbit search: unknown option '%s' (try --help)\n", a);
      return 2;
    } else if (o->model) {
      fprintf(stderr, "lowbit search: unexpected argument '%s'\n", a);
      return 2;
    } else {
      o->model = a;
    }
  }
  lb_calib_method m;
  if (!o->model) fprintf(stderr, "lowbit search: no model given (try --help)\n");
  else if (!o->calib) fprintf(stderr, "lowbit search: --calib C.npy is required\n");
  else if (o->engine && !is(o->engine, "interp") && !is(o->engine, "jit"))
    fprintf(stderr, "lowbit search: --engine '%s' is not one of interp, jit\n", o->engine);
  else if (o->method && lb_calib_method_from_name(o->method, &m) != 0)
    fprintf(stderr, "lowbit search: --calib-method '%s' is not one of max, avg-max, percentile, kl, mse\n",
            o->method);
  else return 0;
  return 2;
}

/* ---- the pipeline ------------------------------------------------------------------------- */

/* The samples of every graph input (from --calib or --eval). */
typedef struct sample_set {
  lb_tensor t[LB_QCLI_MAX_CALIB];
  const char *path[LB_QCLI_MAX_CALIB];
  char text[4096]; /* the option's items (path points here) */
} sample_set;

typedef struct state {
  lb_graph *g;
  lb_spec *spec;
  lb_qplan *p;
  sample_set calib, eval;
  lb_tensor labels;
  lb_search *s;
  const lb_tensor *x; /* the evaluation samples, one tensor per graph input */
  double seconds, setup; /* strategy run; shared setup (fp32 reference, weights) */
  double *us;         /* --time-front: JIT microseconds per point (-1: not timed) */
  lb_search_env env;  /* for the JIT evaluator and --measure */
  int jit;            /* evaluation engine: 1 jit, 0 interp */
  char fallback[1100]; /* why the default engine fell back to interp ("" otherwise) */
  lb_measure_stats mstats;
  double measure_s;   /* --measure: CPU seconds spent timing layer variants */
  char cache[4096];   /* --measure: the cache file used */
} state;

static void state_free(state *st) {
  free(st->us);
  lb_search_free(st->s);
  lb_qplan_free(st->p);
  lb_spec_free(st->spec);
  lb_graph_free(st->g);
  for (int k = 0; k < LB_QCLI_MAX_CALIB; k++) lb_free(st->calib.t[k].data), lb_free(st->eval.t[k].data);
  lb_free(st->labels.data);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); /* robust on a shared machine */
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the JIT evaluator and --measure (compiler/search_measure.c) ------------------------- */

/* lb_search_eval_fn: the realized integer graph, JIT-compiled, on the evaluation samples. */
static int eval_jit(lb_search *s, void *user, const unsigned char *choice, int64_t n, float *out,
                    lb_diag *d) {
  const lb_search_env *e = user;
  lb_graph *q;
  lb_jit *j;
  int rc = lb_search_jit(e, choice, 0, &q, &j, d);
  int64_t on = lb_search_out_numel(s);
  for (int64_t i = 0; !rc && i < n; i++) {
    lb_tensor t[LB_QCLI_MAX_CALIB], o[8];
    for (uint32_t k = 0; k < q->n_inputs && k < LB_QCLI_MAX_CALIB; k++) {
      const lb_value *in = &q->values[q->inputs[k]];
      size_t per = lb_dtype_bytes(in->dtype, lb_value_numel(in));
      t[k] = (lb_tensor){in->dtype, in->rank, {0}, (char *)e->x[k].data + (size_t)i * per};
      memcpy(t[k].dims, in->dims, sizeof t[k].dims);
    }
    memset(o, 0, sizeof o);
    if (q->n_outputs > 8) rc = lb_diag_err(d, LB_ERR_INPUT, "jit evaluation: more than 8 outputs");
    if (!rc) rc = lb_jit_run_tensors(j, q, t, o, d);
    if (!rc) memcpy(out + i * on, o[0].data, (size_t)on * sizeof(float));
    for (uint32_t k = 0; k < q->n_outputs && k < 8; k++) lb_free(o[k].data);
  }
  lb_jit_free(j);
  lb_graph_free(q);
  return rc;
}

/* --measure, before the search: every layer variant timed (or taken from the cache), so the
 * search runs on measured costs. */
static int measure_layers(const sopts *o, state *st, lb_diag *d) {
  char path[4096];
  lb_measure_opts mo = {o->cache, o->model, !o->quiet && isatty(2)};
  if (!mo.cache && lb_search_measure_default_cache(path, sizeof path) == 0) mo.cache = path;
  if (!mo.cache) fprintf(stderr, "lowbit search: warning: no HOME or XDG_CACHE_HOME: measuring without a cache\n");
  snprintf(st->cache, sizeof st->cache, "%s", mo.cache ? mo.cache : "none");
  double t0 = now();
  int rc = lb_search_measure_layers(&st->env, &mo, &st->mstats, d);
  st->measure_s = now() - t0;
  return rc;
}

/* --measure, after the search: the JIT latency of every point on the front and of the
 * references. */
static int measure_front(state *st, lb_diag *d) {
  uint32_t n = lb_search_n_points(st->s);
  st->us = calloc(n + 1, sizeof *st->us);
  if (!st->us) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  int rc = 0;
  for (uint32_t i = 0; !rc && i < n; i++) {
    const lb_search_point *p = lb_search_point_at(st->s, i);
    st->us[i] = -1;
    if (!p->pareto && p != lb_search_int8(st->s) && p != lb_search_fp32(st->s)) continue;
    rc = lb_search_time_plan(&st->env, p == lb_search_fp32(st->s) ? NULL : p->choice, &st->us[i], d);
  }
  return rc;
}

static int read_npy(const char *path, lb_tensor *t, lb_diag *d) {
  int rc = lb_npy_read(path, t, d);
  if (rc && strncmp(d->msg, path, strlen(path)) != 0) lb_diag_prefix(d, "%s", path);
  return rc;
}

/* Reads one .npy per graph input (the option's values as --calib takes them) and checks them
 * against the inputs as compile does (dtype, sample shape, equal sample counts); in[k] reads
 * input k's samples. */
static int read_set(const char *opt, const char *const *v, int nv, const lb_graph *g,
                    sample_set *set, lb_calib_input *in, lb_diag *d) {
  LB_TRY(lb_cli_input_files(opt, v, nv, g, set->text, sizeof set->text, set->path, d));
  for (uint32_t k = 0; k < g->n_inputs; k++) {
    LB_TRY(read_npy(set->path[k], &set->t[k], d));
    if (set->t[k].rank < 1)
      return lb_diag_err(d, LB_ERR_INPUT, "%s: %s data needs a sample axis", set->path[k], opt + 2);
    in[k] = lb_calib_input_tensor(&set->t[k], set->path[k]);
  }
  return lb_calib_check(g, in, d);
}

static int int8_plan(const sopts *o, state *st, lb_diag *d) {
  LB_TRY(lb_onnx_load(o->model, &st->g, d));
  LB_TRY(lb_pass_prepare_fp32(st->g, d));
  LB_TRY(lb_spec_load(o->spec ? o->spec : "host", &st->spec, d));
  if (!(st->p = lb_qplan_new(st->g))) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  LB_TRY(lb_quant_annotate(st->g, st->spec, st->p, d));
  lb_calib_input in[LB_QCLI_MAX_CALIB];
  LB_TRY(read_set("--calib", o->calibs, o->n_calibs, st->g, &st->calib, in, d));
  lb_calib_opts co = {LB_CALIB_AVG_MAX, 0, !o->quiet && isatty(2)};
  if (o->method) lb_calib_method_from_name(o->method, &co.method);
  int rc = lb_quant_calibrate_inputs(st->g, st->p, in, &co, d);
  if (rc && st->g->n_inputs == 1 && strncmp(d->msg, o->calib, strlen(o->calib)) != 0)
    lb_diag_prefix(d, "%s", o->calib);
  return rc;
}

/* The engine: --engine, else jit when this host runs the spec's code, else interp (the reason
 * kept for the output). */
static int pick_engine(const sopts *o, state *st, lb_diag *d) {
  if (o->engine) {
    st->jit = is(o->engine, "jit");
    return st->jit ? lb_target_host_check(st->spec, d) : 0;
  }
  lb_diag hd;
  lb_diag_clear(&hd);
  st->jit = lb_target_host_check(st->spec, &hd) == 0;
  if (!st->jit) snprintf(st->fallback, sizeof st->fallback, "%s", hd.msg);
  return 0;
}

static int search(const sopts *o, state *st, lb_diag *d) {
  LB_TRY(int8_plan(o, st, d));
  lb_calib_input in[LB_QCLI_MAX_CALIB];
  if (o->eval) LB_TRY(read_set("--eval", o->evals, o->n_evals, st->g, &st->eval, in, d));
  if (o->labels) LB_TRY(read_npy(o->labels, &st->labels, d));
  st->x = o->eval ? st->eval.t : st->calib.t;
  LB_TRY(pick_engine(o, st, d));
  if (o->time_front) LB_TRY(lb_target_host_check(st->spec, d)); /* timing needs this host */
  lb_search_opts so = o->so;
  if (st->jit) so.eval = eval_jit, so.eval_user = &st->env;
  double t0 = now();
  int rc = lb_search_new(st->g, st->spec, st->p, st->calib.t, st->x,
                         o->labels ? &st->labels : NULL, &st->s, d);
  if (rc && o->labels && strncmp(d->msg, "labels", 6) == 0) lb_diag_prefix(d, "%s", o->labels);
  st->env = (lb_search_env){st->g, st->spec, st->p, st->s, st->x};
  st->setup = now() - t0;
  if (!rc && o->measure) rc = measure_layers(o, st, d);
  double t1 = now();
  if (!rc) rc = lb_search_run(st->s, &so, d);
  st->seconds = now() - t1;
  if (!rc && o->time_front) rc = measure_front(st, d);
  return rc;
}

/* ---- printing ----------------------------------------------------------------------------- */

static const char *layer_name(const lb_graph *g, uint32_t n) {
  const lb_node *nd = &g->nodes[n];
  return nd->name[0] ? nd->name : g->values[nd->out[0]].name;
}

static void print_layers(const state *st, FILE *f) {
  const lb_search *s = st->s;
  const lb_search_point *c = lb_search_chosen(s);
  double total = c->cycles;
  fprintf(f, "%-4s %-28s %-10s %10s %7s %9s  %s\n", "#", "layer", "precision", "MACs", "cost%",
          "weight B", "sensitivity (quality drop, points; rel. noise) per option");
  for (uint32_t li = 0; li < lb_search_n_layers(s); li++) {
    const lb_search_layer *L = lb_search_layer_at(s, li);
    const lb_search_opt *op = &L->opt[c->choice[li]];
    fprintf(f, "%-4u %-28.28s %-10s %10lld %6.1f%% %9lld ", L->node, layer_name(st->g, L->node),
            op->label, (long long)L->macs, 100.0 * lb_search_layer_cycles(s, c->choice, li) / total,
            (long long)lb_cost_weight_bytes(st->g, L->node, op->combo ? op->weight : LB_DTYPE_F32));
    for (int k = 0; k < L->n_opt; k++)
      if (k != L->base && isinf(L->noise[k])) fprintf(f, " %s:n/a", L->opt[k].label);
      else if (k != L->base) fprintf(f, " %s:%+.1f/%.1e", L->opt[k].label, L->sens[k], L->noise[k]);
    fputc('\n', f);
  }
}

static void print_point(const state *st, const lb_search_point *p, const char *tag, FILE *f) {
  const lb_search *s = st->s;
  fprintf(f, "  %-8s %10.0f cycles %9.3f us %8lld B  quality %6.2f%%  acc %6.2f%%  agree %6.2f%%  SQNR %6.1f dB",
          tag, p->cycles, 1000.0 * lb_search_ms(s, p->cycles), (long long)p->weight_bytes,
          p->score.quality, p->score.acc, p->score.agree, p->score.sqnr);
  if (st->us) fprintf(f, "  measured %8.3f us", st->us[p - lb_search_point_at(s, 0)]);
  fputc('\n', f);
}

/* The front cheapest first (the references tagged), then the references off the front. */
static void print_front(const state *st, FILE *f) {
  const lb_search *s = st->s;
  const lb_search_point *i8 = lb_search_int8(s), *fp = lb_search_fp32(s);
  fprintf(f, "Pareto front (%s cost on %s, quality on %lld samples):\n",
          lb_search_measured(s) ? "measured per-layer" : "modeled", lb_spec_name(st->spec),
          (long long)lb_search_n_eval(s));
  double last = -1;
  for (;;) {
    const lb_search_point *nx = NULL;
    for (uint32_t i = 0; i < lb_search_n_points(s); i++) {
      const lb_search_point *p = lb_search_point_at(s, i);
      if (p->pareto && p->cycles > last && (!nx || p->cycles < nx->cycles)) nx = p;
    }
    if (!nx) break;
    last = nx->cycles;
    print_point(st, nx, nx->chosen ? "chosen" : nx == i8 ? "int8" : nx == fp ? "fp32" : "", f);
  }
  /* off the front: the references, and the chosen point when a budget or --min-sqnr (not
   * drawn on the front's axes) excluded the cheaper points of its quality */
  const lb_search_point *c = lb_search_chosen(s);
  if (!c->pareto && c != i8 && c != fp) print_point(st, c, "chosen", f);
  if (!i8->pareto) print_point(st, i8, i8 == c ? "chosen" : "int8", f);
  if (!fp->pareto) print_point(st, fp, fp == c ? "chosen" : "fp32", f);
}

/* Which engine evaluated the candidates (and why not the JIT), and where costs came from. */
static void print_engine(const sopts *o, const state *st, FILE *f) {
  if (st->jit) fprintf(f, "engine: jit (realized integer plans, JIT-compiled for %s on this host)\n",
                       lb_spec_name(st->spec));
  else if (st->fallback[0])
    fprintf(f, "engine: interp (simulated quantization): the JIT cannot run %s here: %s\n",
            lb_spec_name(st->spec), st->fallback);
  else fprintf(f, "engine: interp (simulated quantization, --engine interp)\n");
  if (o->measure)
    fprintf(f, "cost: measured on this host in %.2f s: %u layer figures timed in %u profiled plans, "
               "%u from the cache %s\n",
            st->measure_s, st->mstats.timed, st->mstats.plans, st->mstats.cached, st->cache);
}

static void print_summary(const sopts *o, const state *st, FILE *f) {
  const lb_search *s = st->s;
  const lb_search_point *c = lb_search_chosen(s), *i8 = lb_search_int8(s);
  if (!lb_search_goal_met(s))
    fprintf(stderr, "lowbit search: warning: no evaluated plan meets the quality drop and the "
                    "budgets; chose the best quality within the budgets (the cheapest plan if none "
                    "fits them)\n");
  if (!lb_search_goal_met(s) || c == lb_search_fp32(s)) /* which goal binds, against int8 */
    fprintf(stderr, "lowbit search: note: %s; goal: %s >= %.2f%% (fp32 - --max-drop)%s%.1f%s; "
                    "all-int8 has %.2f%% and %.1f dB\n",
            c == lb_search_fp32(s) ? "the fp32 model is chosen" : "goal not met",
            o->labels ? "accuracy" : "top-1 agreement with fp32",
            lb_search_fp32(s)->score.quality - o->so.max_drop,
            o->so.min_sqnr > 0 ? ", SQNR >= " : "", o->so.min_sqnr > 0 ? o->so.min_sqnr : 0,
            o->so.min_sqnr > 0 ? " dB" : "", i8->score.quality, i8->score.sqnr);
  fprintf(f, "search %s: %u evaluations in %.2f s (+%.2f s setup); chosen %s cost %.1f%% of all-int8 (%.0f vs %.0f cycles), "
             "weights %lld B (int8 %lld B), quality %.2f%% (fp32 %.2f%%, int8 %.2f%%), "
             "SQNR %.1f dB (int8 %.1f dB)\n",
          lb_strategy_name(o->so.strategy), lb_search_n_evals(s), st->seconds, st->setup,
          lb_search_measured(s) ? "measured" : "modeled", 100.0 * c->cycles / i8->cycles,
          c->cycles, i8->cycles, (long long)c->weight_bytes, (long long)i8->weight_bytes,
          c->score.quality, lb_search_fp32(s)->score.quality, i8->score.quality, c->score.sqnr,
          i8->score.sqnr);
}

static int write_outputs(const sopts *o, state *st, lb_diag *d) {
  if (o->out) {
    LB_TRY(lb_search_apply(st->s, lb_search_chosen(st->s)->choice, st->p, d));
    LB_TRY(lb_qplan_save(st->p, st->g, o->out, d));
  }
  if (o->plot) LB_TRY(lb_svg_pareto(st->s, o->model, o->plot, d));
  return 0;
}

int lb_cmd_search(int argc, char **argv) {
  sopts o = {.so = {.strategy = LB_STRATEGY_AUTO, .max_drop = 1.0}};
  int r = parse(&o, argc, argv);
  if (r) return r == 1 ? 0 : 2;
  o.so.progress = !o.quiet && isatty(2);
  state st = {0};
  lb_diag d;
  lb_diag_clear(&d);
  int rc = search(&o, &st, &d);
  if (!rc) {
    if (!o.quiet) print_engine(&o, &st, stdout), print_layers(&st, stdout), print_front(&st, stdout);
    else if (st.fallback[0]) print_engine(&o, &st, stderr);
    print_summary(&o, &st, stdout);
    rc = write_outputs(&o, &st, &d);
  }
  if (rc) fprintf(stderr, "lowbit search: %s\n", d.msg);
  state_free(&st);
  return lb_exit_code(rc);
}
