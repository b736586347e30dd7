/* `lowbit spec calibrate SPEC -o OUT.yaml [--model M.onnx ...]`: JIT-compiles models for SPEC on
 * this host, times their fp32 graph and their realized int8 graph, and writes a copy of SPEC
 * (extends resolved) whose conv2d/dense fp32 and int8 efficiencies are the measured fraction of
 * the declared peak. Invariant: OUT is written only when every measurement succeeded, atomically,
 * and only after the written text loaded back as a spec. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "onnx.h"
#include "passes.h"
#include "quantize.h"
#include "target.h"

enum { MAX_MODELS = 16, CALIB_N = 16 };

typedef struct model_time {
  const char *path;
  double macs, us_f32, us_int8; /* multiply-accumulates; median microseconds per run */
} model_time;

static void usage(FILE *f) {
  fprintf(f,
          "usage: lowbit spec calibrate SPEC -o OUT.yaml [--model M.onnx ...]\n\n"
          "Measures on this host what the spec's conv2d/dense combinations sustain: each model\n"
          "is JIT-compiled for SPEC in fp32 and as its int8 integer graph (activations\n"
          "calibrated on %d uniform random samples) and timed (median thread CPU time);\n"
          "efficiency = MACs / (seconds x clock_ghz x macs_per_cycle), capped at 1. Writes SPEC\n"
          "with extends resolved and those efficiencies replaced (f32 combinations from the fp32\n"
          "runs, every i8-weight combination from the int8 runs; others unchanged), atomically.\n\n"
          "  -o, --output OUT.yaml  the calibrated spec\n"
          "  --model M.onnx         a model to time (repeatable; default tests/models/digits_cnn.onnx\n"
          "                         of the source tree)\n"
          "  -h, --help             print this help\n"
          "SPEC must run on this machine (the host check refuses it otherwise, exit 2).\n",
          CALIB_N);
}

static double thread_cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median microseconds per run of j on input x: batches of runs long enough (>= 2 ms) that the
 * clock's granularity does not matter, as in `lowbit search --measure`. */
static int time_jit(const lb_graph *g, const lb_jit *j, const float *x, double *us, lb_diag *d) {
  enum { BATCHES = 15 };
  size_t ws = lb_jit_workspace_size(j);
  void *w = aligned_alloc(64, (ws + 64) / 64 * 64), *outs[8] = {0};
  const void *ins[1] = {x};
  double t[BATCHES];
  int rc = w && g->n_outputs <= 8 && g->n_inputs == 1 ? 0 : LB_ERR_NOMEM;
  for (uint32_t k = 0; !rc && k < g->n_outputs; k++) {
    const lb_value *v = &g->values[g->outputs[k]];
    if (!(outs[k] = calloc(1, lb_dtype_bytes(v->dtype, lb_value_numel(v)) + 1))) rc = LB_ERR_NOMEM;
  }
  lb_run_fn run = lb_jit_run_fn(j);
  long reps = 1;
  for (double c0 = thread_cpu(); !rc && thread_cpu() - c0 < 2e-3; reps *= 2) /* warm + size */
    for (long r = 0; !rc && r < reps; r++)
      if (run(ins, outs, w) != 0) rc = lb_diag_err(d, LB_ERR_INTERNAL, "jit run failed");
  for (int b = 0; !rc && b < BATCHES; b++) {
    double c0 = thread_cpu();
    for (long r = 0; !rc && r < reps; r++)
      if (run(ins, outs, w) != 0) rc = lb_diag_err(d, LB_ERR_INTERNAL, "jit run failed");
    t[b] = (thread_cpu() - c0) / (double)reps;
  }
  if (!rc) qsort(t, BATCHES, sizeof t[0], cmp_double), *us = 1e6 * t[BATCHES / 2];
  for (uint32_t k = 0; k < 8; k++) free(outs[k]);
  free(w);
  if (rc == LB_ERR_NOMEM) lb_diag_err(d, rc, "out of memory");
  return rc;
}

/* CALIB_N samples of g's input, uniform in [0, 1) from a fixed seed; the first is the timing
 * input. */
static int synth_input(const lb_graph *g, lb_tensor *t, lb_diag *d) {
  const lb_value *in = &g->values[g->inputs[0]];
  if (in->dtype != LB_DTYPE_F32 || in->rank < 1 || in->rank >= LB_MAX_RANK)
    return lb_diag_err(d, LB_ERR_INPUT, "calibrate: the model's input must be one f32 tensor");
  int64_t per = lb_value_numel(in);
  int drop = in->dims[0] == 1; /* the sample keeps the model's shape without its leading 1 */
  t->dtype = LB_DTYPE_F32, t->rank = in->rank + !drop, t->dims[0] = CALIB_N;
  for (int i = drop; i < in->rank; i++) t->dims[i + !drop] = in->dims[i];
  float *x = lb_malloc((size_t)(per * CALIB_N) * sizeof(float));
  if (!x) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  uint32_t s = 12345u;
  for (int64_t i = 0; i < per * CALIB_N; i++)
    s = s * 1664525u + 1013904223u, x[i] = (float)(s >> 8) / 16777216.0f;
  t->data = x;
  return 0;
}

/* The int8 plan of g for spec (annotate + calibrate on x), realized as the integer graph. */
static int int8_graph(const lb_graph *g, const lb_spec *spec, const lb_tensor *x, lb_graph **q,
                      lb_diag *d) {
  lb_qplan *p = lb_qplan_new(g);
  if (!p) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  lb_calib_opts co = {LB_CALIB_AVG_MAX, 0, 0};
  int rc = lb_quant_annotate(g, spec, p, d);
  if (!rc) rc = lb_quant_calibrate(g, p, x, &co, d);
  if (!rc) rc = lb_quant_realize(g, p, LB_REALIZE_INT, q, d);
  lb_qplan_free(p);
  return rc;
}

static int time_model(const lb_spec *spec, model_time *m, lb_diag *d) {
  lb_graph *g = NULL, *q = NULL;
  lb_jit *j = NULL;
  lb_tensor x = {0};
  int rc = lb_onnx_load(m->path, &g, d);
  if (!rc) rc = lb_pass_prepare_fp32(g, d);
  if (!rc && g->n_inputs != 1) rc = lb_diag_err(d, LB_ERR_INPUT, "calibrate: needs one input");
  if (!rc) rc = synth_input(g, &x, d);
  if (!rc) m->macs = lb_graph_flops(g) / 2;
  if (!rc) rc = lb_jit_compile(g, spec, NULL, &j, d);
  if (!rc) rc = time_jit(g, j, x.data, &m->us_f32, d);
  lb_jit_free(j), j = NULL;
  if (!rc) rc = int8_graph(g, spec, &x, &q, d);
  if (!rc) rc = lb_jit_compile(q, spec, NULL, &j, d);
  if (!rc) rc = time_jit(q, j, x.data, &m->us_int8, d);
  lb_jit_free(j);
  lb_graph_free(q);
  lb_graph_free(g);
  lb_free(x.data);
  if (rc && strncmp(d->msg, m->path, strlen(m->path)) != 0) lb_diag_prefix(d, "%s", m->path);
  return rc;
}

/* Efficiency of a combination at `peak` MACs/cycle from macs multiply-accumulates in us. */
static double efficiency(double macs, double us, double clock_ghz, double peak) {
  double e = macs / (us * 1e3 * clock_ghz * peak); /* us x 1e3 x GHz = cycles */
  e = round(e * 1000) / 1000;
  return e > 1 ? 1 : e < 0.001 ? 0.001 : e;
}

/* Replaces the conv2d/dense efficiencies; writes one comment line per change to f. */
static void apply(lb_spec *s, double macs, double us_f32, double us_int8, FILE *f) {
  static const lb_spec_opkind kinds[] = {LB_SPEC_CONV2D, LB_SPEC_DENSE};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    const lb_spec_combo *c;
    size_t n = lb_spec_combos(s, kinds[k], &c);
    for (size_t i = 0; i < n; i++) {
      int fp = c[i].act == LB_DTYPE_F32 && c[i].weight == LB_DTYPE_F32;
      if ((!fp && c[i].weight != LB_DTYPE_I8) || c[i].macs_per_cycle <= 0) continue;
      double old = c[i].efficiency;
      double e = efficiency(macs, fp ? us_f32 : us_int8, lb_spec_clock_ghz(s), c[i].macs_per_cycle);
      LB_ASSERT(lb_spec_set_efficiency(s, kinds[k], c[i].label, e) == 0);
      fprintf(f, "#   ops.%s.%s: efficiency %g (declared %g), from the %s runs\n",
              lb_spec_opkind_name(kinds[k]), c[i].label, e, old, fp ? "fp32" : "int8");
    }
  }
}

/* Writes comment + spec to a temporary file, loads it back, renames it to out. */
static int write_spec(const lb_spec *s, const char *comment, const char *out, lb_diag *d) {
  size_t n = strlen(out) + 40;
  char *tmp = lb_malloc(n);
  if (!tmp) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  snprintf(tmp, n, "%s.tmp%ld.yaml", out, (long)getpid());
  FILE *f = fopen(tmp, "w");
  int rc = f ? 0 : lb_diag_err(d, LB_ERR_INPUT, "%s: cannot write", out);
  if (!rc) {
    fputs(comment, f);
    lb_spec_write(s, f);
    if (fclose(f) != 0) rc = lb_diag_err(d, LB_ERR_INPUT, "%s: write failed", out);
  }
  lb_spec *back = NULL;
  if (!rc && strchr(tmp, '/') == NULL) { /* lb_spec_load takes a name with no '/' as bundled */
    char *p = lb_malloc(n + 2);
    if (!p) rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
    else snprintf(p, n + 2, "./%s", tmp), rc = lb_spec_load(p, &back, d), lb_free(p);
  } else if (!rc) {
    rc = lb_spec_load(tmp, &back, d);
  }
  lb_spec_free(back);
  if (!rc && rename(tmp, out) != 0) rc = lb_diag_err(d, LB_ERR_INPUT, "%s: cannot rename", out);
  if (rc && f) remove(tmp);
  lb_free(tmp);
  return rc;
}

static int calibrate(const char *name, const char *out, model_time *m, int nm, lb_diag *d) {
  lb_spec *s = NULL;
  char *comment = NULL;
  size_t clen = 0;
  FILE *cf = NULL;
  int rc = lb_spec_load(name, &s, d);
  if (!rc) rc = lb_spec_host_check(s, d);
  if (!rc && !(lb_spec_clock_ghz(s) > 0))
    rc = lb_diag_err(d, LB_ERR_INPUT, "%s: no clock_ghz to turn times into cycles", name);
  double macs = 0, us_f = 0, us_q = 0;
  for (int i = 0; !rc && i < nm; i++) {
    rc = time_model(s, &m[i], d);
    macs += m[i].macs, us_f += m[i].us_f32, us_q += m[i].us_int8;
  }
  if (!rc && !(cf = open_memstream(&comment, &clen))) rc = lb_diag_err(d, LB_ERR_NOMEM, "oom");
  if (!rc) {
    time_t now = time(NULL);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(cf, "# Calibrated by `lowbit spec calibrate %s` on this host, %s: the conv2d/dense\n"
                "# efficiencies below were measured, every other figure is the source spec's.\n"
                "# efficiency = MACs / (median thread-CPU seconds x clock_ghz %g x macs_per_cycle),\n"
                "# summed over JIT runs of whole models (so it includes pooling, requantize and\n"
                "# layout work) and capped at 1; int8 = the realized integer graph, activations\n"
                "# calibrated on %d uniform random samples. Models:\n",
            name, when, lb_spec_clock_ghz(s), CALIB_N);
    for (int i = 0; i < nm; i++)
      fprintf(cf, "#   %s: %.0f MACs, fp32 %.2f us, int8 %.2f us\n", m[i].path, m[i].macs,
              m[i].us_f32, m[i].us_int8);
    apply(s, macs, us_f, us_q, cf);
    if (fclose(cf) != 0) rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
    cf = NULL;
  }
  if (!rc) rc = write_spec(s, comment, out, d);
  if (!rc) fputs(comment, stdout), printf("wrote %s\n", out);
  free(comment);
  lb_spec_free(s);
  return rc;
}

int lb_cmd_spec_calibrate(int argc, char **argv) {
  const char *spec = NULL, *out = NULL;
  model_time m[MAX_MODELS];
  int nm = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout), 0;
    if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) {
      out = argv[++i];
    } else if (!strcmp(a, "--model") && i + 1 < argc && nm < MAX_MODELS) {
      m[nm++] = (model_time){.path = argv[++i]};
    } else if (a[0] != '-' && !spec) {
      spec = a;
    } else {
      fprintf(stderr, "lowbit spec calibrate: bad argument '%s' (try --help)\n", a);
      return 2;
    }
  }
  if (!spec || !out) {
    fprintf(stderr, "lowbit spec calibrate: give SPEC and -o OUT.yaml (try --help)\n");
    return 2;
  }
  if (nm == 0) m[nm++] = (model_time){.path = LB_SPEC_DIR "/../tests/models/digits_cnn.onnx"};
  lb_diag d;
  lb_diag_clear(&d);
  int rc = calibrate(spec, out, m, nm, &d);
  if (rc) {
    fprintf(stderr, "lowbit spec calibrate: ");
    lb_spec_print_diag(stderr, &d);
  }
  return rc ? lb_exit_code(rc) : 0;
}
