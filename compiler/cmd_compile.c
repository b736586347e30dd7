/* `lowbit compile` (AOT: object/assembly/LLVM IR plus a C header) and `lowbit bench` (JIT on
 * this machine: warm-up, timed iterations, median/min/max, GFLOP/s, fraction of the spec's
 * fp32 peak, optional per-layer profile and JSON). Both load the model and spec, run the fp32
 * preparation passes and call the backend through targets/target.h. Errors are one line;
 * exit 2 for bad input or usage; compile leaves no output file when anything fails. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "onnx.h"
#include "passes.h"
#include "quant.h"
#include "quantize.h"
#include "search.h"
#include "spec.h"
#include "target.h"
#include "tensor_io.h"

static int is(const char *a, const char *b) { return strcmp(a, b) == 0; }

static const char *value_of(const char *cmd, int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "lowbit %s: option '%s' needs an argument\n", cmd, argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

/* Loads model and spec and prepares the graph for fp32 code generation. */
static int load_inputs(const char *model, const char *spec_name, lb_graph **g, lb_spec **s,
                       lb_diag *d) {
  *g = NULL, *s = NULL;
  int rc = lb_spec_load(spec_name, s, d);
  if (!rc) rc = lb_onnx_load(model, g, d);
  if (!rc) {
    rc = lb_pass_prepare_fp32(*g, d);
    if (rc) lb_diag_prefix(d, "%s", model);
  }
  return rc;
}

/* The graph the backend gets: the prepared fp32 graph or, with --quantize int8 / --plan, the
 * realized integer graph (per-layer report on stderr). */
static int load_graph(const char *model, const char *spec_name, const lb_qcli *q, lb_graph **g,
                      lb_spec **s, lb_diag *d) {
  if (!lb_qcli_active(q)) return load_inputs(model, spec_name, g, s, d);
  *g = NULL, *s = NULL;
  int rc = lb_spec_load(spec_name, s, d);
  if (!rc) rc = lb_qcli_build(q, model, spec_name, LB_REALIZE_INT, stderr, NULL, NULL, g, d);
  return rc;
}

/* ---- compile ------------------------------------------------------------------------------ */

typedef struct compile_opts {
  const char *model, *spec, *out, *name, *emit;
  int profile;
  lb_qcli q; /* --quantize/--calib/--calib-method/--plan/--plan-out (cmd_quant.c) */
} compile_opts;

static void compile_usage(FILE *f) {
  fprintf(f,
          "usage: lowbit compile MODEL.onnx --spec S -o OUT.o [options]\n"
          "\n"
          "Compiles the model for a target into an object file and a C header (OUT.h) with\n"
          "  size_t NAME_workspace_size(void);\n"
          "  int    NAME_run(const void *const inputs[], void *const outputs[], void *workspace);\n"
          "and each input/output's shape and dtype as macros (NAME_INPUT0_SHAPE, ...).\n"
          "\n"
          "  --spec S          target spec: bundled name, YAML file, or 'host' (required)\n"
          "  -o, --output OUT  output file (required); the header goes next to it as .h\n"
          "  --name NAME       symbol prefix (a C identifier; default: OUT's file name)\n"
          "  --emit KIND       obj (default), asm (assembly) or llvm (LLVM IR text)\n"
          "  --quantize int8   integer code for the spec's int8 combinations (needs --calib)\n"
          "  --quantize qdq    integer code from a QDQ model's own QuantizeLinear/\n"
          "                    DequantizeLinear parameters (ONNX Runtime, TensorRT style)\n"
          "  --calib C.npy     calibration samples (axis 0) for --quantize: one .npy per\n"
          "                    model input, same N, each sample shaped like the input (its\n"
          "                    leading 1 optional), in the input's dtype: a comma list in\n"
          "                    input order (a.npy,b.npy), NAME=FILE items, or --calib repeated\n"
          "  --calib-method M  max, avg-max (default), percentile, kl or mse\n"
          "  --plan P.yaml     an edited quantization plan; --plan-out P.yaml writes the plan\n"
          "  --profile         also emit NAME_step(i, ...) to time layers one by one\n"
          "  -h, --help        print this help\n");
}

static int compile_args(int argc, char **argv, compile_opts *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char **slot = is(a, "--spec")                    ? &o->spec
                        : is(a, "-o") || is(a, "--output") ? &o->out
                        : is(a, "--name")                  ? &o->name
                        : is(a, "--emit")                  ? &o->emit
                                                           : NULL;
    int qr;
    if (is(a, "-h") || is(a, "--help")) {
      compile_usage(stdout);
      return -1;
    } else if (slot) {
      if (!(*slot = value_of("compile", argc, argv, &i))) return 2;
    } else if ((qr = lb_qcli_parse(&o->q, "compile", argc, argv, &i)) != 0) {
      if (qr == 2) return 2;
    } else if (is(a, "--profile")) {
      o->profile = 1;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "lowbit compile: unknown option '%s' (try 'lowbit compile --help')\n", a);
      return 2;
    } else if (o->model) {
      fprintf(stderr, "lowbit compile: unexpected argument '%s'\n", a);
      return 2;
    } else {
      o->model = a;
    }
  }
  return 0;
}

/* "dir/model.o" -> "model" made into a C identifier; "dir/model.o" -> "dir/model.h". */
static void derive_names(const char *out, char *name, size_t nn, char *hdr, size_t hn) {
  const char *base = strrchr(out, '/');
  base = base ? base + 1 : out;
  const char *dot = strrchr(base, '.');
  size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  size_t k = 0;
  if (len == 0 || (base[0] >= '0' && base[0] <= '9')) name[k++] = '_';
  for (size_t i = 0; i < len && k + 1 < nn; i++) {
    char c = base[i];
    name[k++] =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? c : '_';
  }
  name[k] = 0;
  snprintf(hdr, hn, "%.*s.h", (int)(dot && dot != base ? (size_t)(dot - out) : strlen(out)), out);
}

static int compile_check(const compile_opts *o, lb_emit_kind *kind) {
  if (!o->model || !o->spec || !o->out) {
    fprintf(stderr, "lowbit compile: %s is required (try 'lowbit compile --help')\n",
            !o->model  ? "a model"
            : !o->spec ? "--spec"
                       : "-o OUT");
    return 2;
  }
  const char *e = o->emit ? o->emit : "obj";
  *kind = is(e, "obj")    ? LB_EMIT_OBJ
          : is(e, "asm")  ? LB_EMIT_ASM
          : is(e, "llvm") ? LB_EMIT_LLVM
                          : -1;
  if ((int)*kind < 0) {
    fprintf(stderr, "lowbit compile: --emit '%s': expected obj, asm or llvm\n", e);
    return 2;
  }
  return lb_qcli_check(&o->q, "compile") ? 2 : 0;
}

int lb_cmd_compile(int argc, char **argv) {
  compile_opts o = {0};
  lb_emit_kind kind;
  int rc = compile_args(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  if ((rc = compile_check(&o, &kind))) return rc;
  char name[256], hdr[4096];
  derive_names(o.out, name, sizeof name, hdr, sizeof hdr);
  lb_diag d;
  lb_diag_clear(&d);
  lb_graph *g;
  lb_spec *s;
  rc = load_graph(o.model, o.spec, &o.q, &g, &s, &d);
  if (!rc) {
    lb_codegen_opts co = {.name = o.name ? o.name : name, .profile = o.profile};
    rc = lb_target_emit(g, s, &co, kind, o.out, kind == LB_EMIT_LLVM ? NULL : hdr, &d);
    /* lowering errors get the model's name; file errors already name the file */
    if (rc && strncmp(d.msg, o.out, strlen(o.out)) && strncmp(d.msg, hdr, strlen(hdr)))
      lb_diag_prefix(&d, "%s", o.model);
  }
  if (rc)
    fprintf(stderr, "lowbit compile: %s\n", d.msg);
  else if (kind == LB_EMIT_LLVM)
    printf("wrote %s (LLVM IR for %s)\n", o.out, lb_spec_name(s));
  else
    printf("wrote %s and %s (%s, symbols %s_*)\n", o.out, hdr, lb_spec_name(s),
           o.name ? o.name : name);
  lb_graph_free(g);
  lb_spec_free(s);
  return lb_exit_code(rc);
}

/* ---- bench -------------------------------------------------------------------------------- */

typedef struct bench_opts {
  const char *model, *spec, *input;
  long iters, warmup, threads;
  int json, profile;
  lb_qcli q;
} bench_opts;

static void bench_usage(FILE *f) {
  fprintf(f, "usage: lowbit bench MODEL.onnx [--spec host] [options]\n"
             "\n"
             "JIT-compiles the model for this machine and times it on fixed pseudo-random inputs:\n"
             "median, min and max latency, GFLOP/s (convolutions and matrix products) and the\n"
             "fraction of the spec's fp32 peak (fp32 MACs/cycle x 2 x clock).\n"
             "\n"
             "  --spec S       spec to compile for; must run on this machine (default: host)\n"
             "  -i FILE        first input from a .npy/.bin file instead of pseudo-random data\n"
             "  --iters N      timed samples (default 50); a sample is a batch of back-to-back\n"
             "                 runs lasting >= 50 us, figures are per run\n"
             "  --warmup N     untimed iterations first (default 5)\n"
             "  --threads N    worker threads (only 1 so far; the default)\n"
             "  --profile      time every layer (step) and print the slowest\n"
             "  --quantize int8 --calib C.npy [--calib-method M] [--plan P.yaml]\n"
             "                 time the integer graph (see lowbit compile --help; --calib\n"
             "                 takes one .npy per model input: a,b or NAME=FILE)\n"
             "  --json         print one JSON object instead of text\n"
             "  -h, --help     print this help\n");
}

static int parse_count(const char *opt, const char *v, long lo, long *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || *end || n < lo) {
    fprintf(stderr, "lowbit bench: %s '%s': expected an integer >= %ld\n", opt, v, lo);
    return 2;
  }
  *out = n;
  return 0;
}

static int bench_args(int argc, char **argv, bench_opts *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    int qr;
    long *num = is(a, "--iters")     ? &o->iters
                : is(a, "--warmup")  ? &o->warmup
                : is(a, "--threads") ? &o->threads
                                     : NULL;
    if (is(a, "-h") || is(a, "--help")) {
      bench_usage(stdout);
      return -1;
    } else if (num) {
      if (!(v = value_of("bench", argc, argv, &i)) ||
          parse_count(a, v, num == &o->warmup ? 0 : 1, num))
        return 2;
    } else if (is(a, "--spec") || is(a, "-i") || is(a, "--input")) {
      if (!(*(is(a, "--spec") ? &o->spec : &o->input) = value_of("bench", argc, argv, &i)))
        return 2;
    } else if (is(a, "--json") || is(a, "--profile")) {
      *(is(a, "--json") ? &o->json : &o->profile) = 1;
    } else if ((qr = lb_qcli_parse(&o->q, "bench", argc, argv, &i)) != 0) {
      if (qr == 2) return 2;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "lowbit bench: unknown option '%s' (try 'lowbit bench --help')\n", a);
      return 2;
    } else if (o->model) {
      fprintf(stderr, "lowbit bench: unexpected argument '%s'\n", a);
      return 2;
    } else {
      o->model = a;
    }
  }
  if (!o->model) {
    fprintf(stderr, "lowbit bench: no model given (try 'lowbit bench --help')\n");
    return 2;
  }
  if (lb_qcli_check(&o->q, "bench")) return 2;
  if (o->threads != 1) {
    fprintf(stderr, "lowbit bench: --threads %ld: only 1 thread is supported so far\n", o->threads);
    return 2;
  }
  return 0;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Buffers for one run: inputs filled with fixed pseudo-random values in [0, 1) (integer
 * inputs zero), outputs, and a 64-byte aligned workspace. */
typedef struct bufs {
  void **in, **out, *ws;
} bufs;

static void free_bufs(const lb_graph *g, bufs *b) {
  for (uint32_t i = 0; b->in && i < g->n_inputs; i++) free(b->in[i]);
  for (uint32_t i = 0; b->out && i < g->n_outputs; i++) free(b->out[i]);
  free(b->in), free(b->out), free(b->ws);
}

static int make_bufs(const lb_graph *g, size_t ws, bufs *b) {
  b->in = calloc(g->n_inputs + 1, sizeof *b->in);
  b->out = calloc(g->n_outputs + 1, sizeof *b->out);
  b->ws = aligned_alloc(64, (ws + 64) / 64 * 64);
  int ok = b->in && b->out && b->ws;
  unsigned seed = 12345;
  for (uint32_t i = 0; ok && i < g->n_inputs; i++) {
    const lb_value *v = &g->values[g->inputs[i]];
    int64_t n = lb_value_numel(v);
    b->in[i] = calloc(1, lb_dtype_bytes(v->dtype, n) + 1);
    ok = b->in[i] != NULL;
    for (int64_t k = 0; ok && v->dtype == LB_DTYPE_F32 && k < n; k++) {
      seed = seed * 1103515245u + 12345u;
      ((float *)b->in[i])[k] = (float)((seed >> 8) & 0xffff) / 65536.0f;
    }
  }
  for (uint32_t i = 0; ok && i < g->n_outputs; i++) {
    const lb_value *v = &g->values[g->outputs[i]];
    ok = (b->out[i] = calloc(1, lb_dtype_bytes(v->dtype, lb_value_numel(v)) + 1)) != NULL;
  }
  return ok ? 0 : LB_ERR_NOMEM;
}

/* Copies the tensor file into the first input buffer (dtype and shape checked by tensor_io). */
static int read_input(const char *path, const lb_graph *g, void *dst, lb_diag *d) {
  if (g->n_inputs < 1) return lb_diag_err(d, LB_ERR_INPUT, "%s: the model has no input", path);
  const lb_value *v = &g->values[g->inputs[0]];
  lb_tensor t;
  LB_TRY(lb_tensor_read(path, v->dtype, v->rank, v->dims, &t, d));
  int rc = 0;
  if (t.dtype != v->dtype || lb_tensor_numel(&t) != lb_value_numel(v))
    rc = lb_diag_err(d, LB_ERR_INPUT, "%s: expected %s with %lld elements (the model's input 0)",
                     path, lb_dtype_name(v->dtype), (long long)lb_value_numel(v));
  else
    memcpy(dst, t.data, lb_dtype_bytes(v->dtype, lb_value_numel(v)));
  lb_free(t.data);
  return rc;
}

typedef struct bench_res {
  double med, min, max, gflops, peak_frac, peak_gflops;
  double cpu_med; /* median thread CPU time per run */
  long batch;     /* runs per timed sample */
  double *step_s; /* per-step median seconds (profile) */
} bench_res;

/* (ops) Wall time per run in t, and this thread's CPU time in c (what other processes sharing
 * the cores disturb far less), per sample of back-to-back runs lasting >= 50 us (search.h
 * lb_time_runs): a tiny model's run is not swamped by the clock reads. Returns the runs per
 * sample, or -1 when a run fails. */
static long time_runs(const bench_opts *o, const lb_jit *j, bufs *b, double *t, double *c) {
  return lb_time_runs(lb_jit_run_fn(j), (const void *const *)b->in, b->out, b->ws, o->warmup,
                      o->iters, 50e-6, c, t);
}

static double median(double *t, long n) {
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Per-step median over the iterations (robust against other processes on the machine); each
 * sample times `reps` calls of the step (the runs per sample of the whole model: a step never
 * writes its own inputs, so a repeated step recomputes the same output). */
static int time_steps(const bench_opts *o, const lb_jit *j, bufs *b, long reps, double *step_s) {
  int n = lb_jit_step_count(j);
  lb_step_fn step = lb_jit_step_fn(j);
  double *t = calloc((size_t)n * (size_t)o->iters + 1, sizeof *t);
  if (!t) return LB_ERR_NOMEM;
  for (long i = 0; i < o->iters; i++)
    for (int s = 0; s < n; s++) {
      double t0 = now_s();
      for (long k = 0; k < reps; k++) step(s, (const void *const *)b->in, b->out, b->ws);
      t[(size_t)s * (size_t)o->iters + (size_t)i] = (now_s() - t0) / (double)reps;
    }
  for (int s = 0; s < n; s++) step_s[s] = median(t + (size_t)s * (size_t)o->iters, o->iters);
  free(t);
  return 0;
}

static void print_text(const bench_opts *o, const lb_graph *g, const lb_spec *s, const lb_jit *j,
                       const bench_res *r) {
  printf("model    %s\nspec     %s (%s)\niters    %ld samples x %ld runs (warm-up %ld), 1 thread\n",
         o->model, lb_spec_name(s), lb_spec_llvm_cpu(s), o->iters, r->batch, o->warmup);
  int us = r->med < 1e-4; /* tiny models: microseconds */
  printf("latency  median %.3f %s   min %.3f %s   max %.3f %s\n", r->med * (us ? 1e6 : 1e3),
         us ? "us" : "ms", r->min * (us ? 1e6 : 1e3), us ? "us" : "ms", r->max * (us ? 1e6 : 1e3),
         us ? "us" : "ms");
  printf("cpu      median %.3f %s of this thread's CPU time per run\n", r->cpu_med * (us ? 1e6 : 1e3),
         us ? "us" : "ms");
  printf("compute  %.3f GFLOP per run, %.1f GFLOP/s = %.1f%% of fp32 peak (%.1f GFLOP/s)\n",
         lb_graph_flops(g) * 1e-9, r->gflops, 100 * r->peak_frac, r->peak_gflops);
  if (!r->step_s) return;
  double total = 0;
  int n = lb_jit_step_count(j);
  for (int i = 0; i < n; i++) total += r->step_s[i];
  printf("\n%4s  %-40s %9s %6s %9s\n", "step", "layer", us ? "us" : "ms", "%", "GFLOP/s");
  for (int i = 0; i < n; i++)
    printf("%4d  %-40.40s %9.4f %5.1f%% %9.1f\n", i, lb_jit_step_name(j, i), r->step_s[i] * (us ? 1e6 : 1e3),
           100 * r->step_s[i] / total,
           lb_jit_step_flops(j, i) > 1e4 ? lb_jit_step_flops(j, i) / r->step_s[i] * 1e-9 : 0.0);
}

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", *s);
    else
      putchar(*s);
  }
  putchar('"');
}

static void print_json(const bench_opts *o, const lb_graph *g, const lb_spec *s, const lb_jit *j,
                       const bench_res *r) {
  printf("{\"model\": ");
  json_str(o->model);
  printf(", \"spec\": ");
  json_str(lb_spec_name(s));
  printf(
      ", \"threads\": 1, \"iters\": %ld, \"batch\": %ld, \"warmup\": %ld, \"median_ms\": %.6f, \"min_ms\": %.6f, "
      "\"max_ms\": %.6f, \"gflop\": %.6f, \"gflops\": %.3f, \"peak_gflops\": %.3f, "
      "\"peak_fraction\": %.5f, \"cpu_median_ms\": %.6f",
      o->iters, r->batch, o->warmup, r->med * 1e3, r->min * 1e3, r->max * 1e3, lb_graph_flops(g) * 1e-9,
      r->gflops, r->peak_gflops, r->peak_frac, r->cpu_med * 1e3);
  if (r->step_s) {
    printf(", \"layers\": [");
    for (int i = 0; i < lb_jit_step_count(j); i++) {
      printf("%s{\"name\": ", i ? ", " : "");
      json_str(lb_jit_step_name(j, i));
      printf(", \"ms\": %.6f, \"gflop\": %.6f}", r->step_s[i] * 1e3,
             lb_jit_step_flops(j, i) * 1e-9);
    }
    printf("]");
  }
  printf("}\n");
}

static int bench_jit(const bench_opts *o, const lb_graph *g, const lb_spec *s, lb_jit *j,
                     lb_diag *d) {
  bufs b = {0};
  bench_res r = {0};
  double *t = calloc(2 * (size_t)o->iters, sizeof *t);
  if (o->profile) r.step_s = calloc((size_t)lb_jit_step_count(j) + 1, sizeof *r.step_s);
  int rc =
      (!t || (o->profile && !r.step_s)) ? LB_ERR_NOMEM : make_bufs(g, lb_jit_workspace_size(j), &b);
  if (rc) lb_diag_err(d, rc, "out of memory");
  if (!rc && o->input) rc = read_input(o->input, g, b.in[0], d);
  if (!rc) {
    r.batch = time_runs(o, j, &b, t, t + o->iters);
    if (r.batch < 0) rc = lb_diag_err(d, LB_ERR_INTERNAL, "jit run failed");
  }
  if (!rc) {
    r.cpu_med = median(t + o->iters, o->iters);
    r.med = median(t, o->iters);
    r.min = t[0], r.max = t[o->iters - 1];
    r.gflops = lb_graph_flops(g) / r.med * 1e-9;
    r.peak_gflops = 2.0 * lb_spec_fp32_peak_macs(s) * lb_spec_clock_ghz(s);
    r.peak_frac = r.peak_gflops > 0 ? r.gflops / r.peak_gflops : 0;
    if (o->profile) rc = time_steps(o, j, &b, r.batch, r.step_s);
    if (rc)
      lb_diag_err(d, rc, "out of memory");
    else
      (o->json ? print_json : print_text)(o, g, s, j, &r);
  }
  free_bufs(g, &b);
  free(t), free(r.step_s);
  return rc;
}

int lb_cmd_bench(int argc, char **argv) {
  bench_opts o = {.iters = 50, .warmup = 5, .threads = 1};
  int rc = bench_args(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  lb_diag d;
  lb_diag_clear(&d);
  lb_graph *g;
  lb_spec *s;
  lb_jit *j = NULL;
  rc = load_graph(o.model, o.spec ? o.spec : "host", &o.q, &g, &s, &d);
  if (!rc) {
    lb_codegen_opts co = {.name = "bench", .profile = o.profile};
    rc = lb_jit_compile(g, s, &co, &j, &d);
    if (rc) lb_diag_prefix(&d, "%s", o.model);
  }
  if (!rc) rc = bench_jit(&o, g, s, j, &d);
  if (rc) fprintf(stderr, "lowbit bench: %s\n", d.msg);
  lb_jit_free(j);
  lb_graph_free(g);
  lb_spec_free(s);
  return lb_exit_code(rc);
}
