/* `lowbit run MODEL -i IN... -o OUT... [--engine E] [--batch] [--print]`: runs a model on tensor
 * files. Every input is checked against the model's dtype and shape before anything runs;
 * outputs are written atomically (tensor_io), and when any step fails no output file is left.
 * An engine is a run function plus its state: adding one is one branch in open_engine. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "onnx.h"
#include "passes.h"
#include "quant.h"
#include "quantize.h"
#include "spec.h"
#include "target.h"
#include "tensor_io.h"

#define TOPK 5
#define PRINT_ROWS 10
#define PRINT_VALUES 16

typedef struct run_opts {
  const char *model;
  const char **in, **out; /* file names, argc-sized arrays of argv pointers */
  int n_in, n_out;
  const char *engine;
  const char *spec; /* --spec for the jit engine (default host) */
  int batch, print;
  lb_qcli q; /* --quantize/--calib/--calib-method/--plan/--plan-out (cmd_quant.c) */
} run_opts;

/* An execution engine: runs the graph once on inputs of exactly the model's shapes; on success
 * outputs get lb_malloc'd data that the caller lb_frees, on failure the engine has freed
 * whatever it allocated. close may be NULL. */
typedef struct engine {
  void *state;
  int (*run)(void *state, const lb_graph *g, const lb_tensor *in, lb_tensor *out, lb_diag *d);
  void (*close)(void *state);
} engine;

static void usage(FILE *f) {
  fprintf(f,
          "usage: lowbit run MODEL.onnx -i IN [-i IN2 ...] -o OUT [-o OUT2 ...] [options]\n"
          "\n"
          "Runs the model on tensor files: NumPy .npy, or raw little-endian .bin/.raw whose dtype\n"
          "and shape come from the model. Give one -i per graph input, in graph order, and one\n"
          "-o per output you want, in graph order (a single -o writes the first output).\n"
          "\n"
          "  -i, --input FILE    an input tensor (repeat for several inputs)\n"
          "  -o, --output FILE   an output tensor (.npy, .bin or .raw; repeat for several)\n"
          "  --engine NAME       interp (the reference interpreter; default) or jit (LLVM\n"
          "                      code for this machine, through ORC)\n"
          "  --spec S            spec for --engine jit (default host; must run here)\n"
          "  --batch             inputs may have a leading dimension N where the model has 1;\n"
          "                      the N samples run one by one and each output gets N rows\n"
          "  --print             print the outputs (top-5 classes for score vectors)\n"
          "  --quantize int8     run the integer graph for --spec's int8 combinations (interp);\n"
          "                      prints the per-layer plan on stderr\n"
          "  --quantize qdq      run a QDQ model's integer graph (its QuantizeLinear and\n"
          "                      DequantizeLinear parameters, no calibration); prints the\n"
          "                      layers left fp32 next to QDQ nodes and why, on stderr\n"
          "  --calib C.npy       calibration samples (axis 0) for --quantize: one .npy per\n"
          "                      model input, same N, each sample shaped like the input (its\n"
          "                      leading 1 optional), in its dtype (non-f32 inputs such as\n"
          "                      token ids are fed as they are): a comma list in input order\n"
          "                      (a.npy,b.npy), NAME=FILE items, or --calib repeated\n"
          "  --calib-method M    max, avg-max (default), percentile[:P], kl or mse\n"
          "  --plan P.yaml       an edited plan (f32 layers, scales, zero points)\n"
          "  --plan-out P.yaml   write the quantization plan\n"
          "  -h, --help          print this help\n");
}

/* ---- engines ------------------------------------------------------------------------------ */

static int interp_run(void *state, const lb_graph *g, const lb_tensor *in, lb_tensor *out,
                      lb_diag *d) {
  (void)state;
  return lb_interp_run(g, in, out, d);
}

/* The jit engine (targets/target.h): state is the lb_jit. */
static int jit_run(void *state, const lb_graph *g, const lb_tensor *in, lb_tensor *out,
                   lb_diag *d) {
  return lb_jit_run_tensors(state, g, in, out, d);
}

static void jit_close(void *state) { lb_jit_free(state); }

/* The quantized interp engine: state is the integer graph (same inputs and outputs as g). */
static int qinterp_run(void *state, const lb_graph *g, const lb_tensor *in, lb_tensor *out,
                       lb_diag *d) {
  (void)g;
  return lb_interp_run(state, in, out, d);
}

static void qinterp_close(void *state) { lb_graph_free(state); }

static int open_engine(const run_opts *o, const lb_graph *g, engine *e, lb_diag *d) {
  memset(e, 0, sizeof *e);
  if (lb_qcli_active(&o->q)) {
    if (strcmp(o->engine, "jit") == 0) { /* the integer graph, JIT-compiled for --spec */
      lb_spec *s = NULL;
      lb_graph *ig = NULL;
      int rc = lb_spec_load(o->spec ? o->spec : "host", &s, d);
      if (!rc) rc = lb_qcli_build(&o->q, o->model, o->spec, LB_REALIZE_INT, stderr, NULL, NULL,
                                  &ig, d);
      if (!rc) rc = lb_jit_compile(ig, s, NULL, (lb_jit **)&e->state, d);
      lb_graph_free(ig);
      lb_spec_free(s);
      e->run = jit_run;
      e->close = jit_close;
      return rc;
    }
    if (strcmp(o->engine, "interp") != 0)
      return lb_diag_err(d, LB_ERR_INPUT, "--quantize runs on --engine interp or jit");
    e->run = qinterp_run;
    e->close = qinterp_close;
    return lb_qcli_build(&o->q, o->model, o->spec, LB_REALIZE_INT, stderr, NULL, NULL,
                         (lb_graph **)&e->state, d);
  }
  if (strcmp(o->engine, "interp") == 0) {
    e->run = interp_run;
    return 0;
  }
  if (strcmp(o->engine, "jit") == 0) { /* compiles a fused copy; g keeps the ONNX interface */
    lb_spec *s = NULL;
    lb_graph *fused = NULL;
    int rc = lb_spec_load(o->spec ? o->spec : "host", &s, d);
    if (!rc) rc = lb_onnx_load(o->model, &fused, d);
    if (!rc) rc = lb_pass_prepare_fp32(fused, d);
    if (!rc) rc = lb_jit_compile(fused, s, NULL, (lb_jit **)&e->state, d);
    lb_graph_free(fused);
    lb_spec_free(s);
    e->run = jit_run;
    e->close = jit_close;
    return rc;
  }
  return lb_diag_err(d, LB_ERR_INPUT, "unknown engine '%s' (available: interp, jit)", o->engine);
}

static void close_engine(engine *e) {
  if (e->close) e->close(e->state);
}

/* ---- arguments ---------------------------------------------------------------------------- */

static int is(const char *a, const char *b) { return strcmp(a, b) == 0; }

/* Returns the value of option argv[*i] and advances *i, or NULL after printing an error. */
static const char *option_value(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "lowbit run: option '%s' needs an argument\n", argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

/* Returns 0 to go on, -1 after --help, or an exit status (2) after printing the error. */
static int parse_args(int argc, char **argv, run_opts *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    int qr;
    if (is(a, "-h") || is(a, "--help")) {
      usage(stdout);
      return -1;
    } else if (is(a, "-i") || is(a, "--input")) {
      if (!(v = option_value(argc, argv, &i))) return 2;
      o->in[o->n_in++] = v;
    } else if (is(a, "-o") || is(a, "--output")) {
      if (!(v = option_value(argc, argv, &i))) return 2;
      o->out[o->n_out++] = v;
    } else if (is(a, "--engine")) {
      if (!(o->engine = option_value(argc, argv, &i))) return 2;
    } else if (is(a, "--spec")) {
      if (!(o->spec = option_value(argc, argv, &i))) return 2;
    } else if (is(a, "--batch")) {
      o->batch = 1;
    } else if (is(a, "--print")) {
      o->print = 1;
    } else if ((qr = lb_qcli_parse(&o->q, "run", argc, argv, &i)) != 0) {
      if (qr == 2) return 2;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "lowbit run: unknown option '%s' (try 'lowbit run --help')\n", a);
      return 2;
    } else if (o->model) {
      fprintf(stderr, "lowbit run: unexpected argument '%s' (inputs need -i)\n", a);
      return 2;
    } else {
      o->model = a;
    }
  }
  return 0;
}

/* The file kinds tensor_io knows, by extension. */
typedef enum { FILE_NPY, FILE_RAW, FILE_UNKNOWN } file_kind;

static file_kind kind_of(const char *path) {
  const char *dot = strrchr(path, '.');
  if (!dot || strchr(dot, '/')) return FILE_UNKNOWN;
  if (is(dot, ".npy")) return FILE_NPY;
  if (is(dot, ".bin") || is(dot, ".raw")) return FILE_RAW;
  return FILE_UNKNOWN;
}

/* Checks what can be checked before loading anything: the model and inputs exist, the file
 * kinds are known, there is something to output. */
static int check_files(const run_opts *o) {
  struct stat st;
  if (!o->model) {
    fprintf(stderr, "lowbit run: no model given (try 'lowbit run --help')\n");
    return 2;
  }
  if (lb_qcli_check(&o->q, "run")) return 2;
  for (int i = 0; i < o->n_out; i++) {
    if (kind_of(o->out[i]) == FILE_UNKNOWN) {
      fprintf(stderr, "lowbit: %s: unknown tensor file type (use .npy, .bin or .raw)\n",
              o->out[i]);
      return 2;
    }
  }
  for (int i = -1; i < o->n_in; i++) {
    const char *p = i < 0 ? o->model : o->in[i];
    if (stat(p, &st) != 0) {
      fprintf(stderr, "lowbit: %s: %s\n", p, strerror(errno));
      return 2;
    }
    if (S_ISDIR(st.st_mode)) {
      fprintf(stderr, "lowbit: %s: Is a directory\n", p);
      return 2;
    }
    if (i >= 0 && kind_of(p) == FILE_UNKNOWN) {
      fprintf(stderr, "lowbit: %s: unknown tensor file type (use .npy, .bin or .raw)\n", p);
      return 2;
    }
  }
  if (o->n_out == 0 && !o->print) {
    fprintf(stderr, "lowbit run: no output: give -o OUT (or --print)\n");
    return 2;
  }
  return 0;
}

/* ---- inputs ------------------------------------------------------------------------------- */

/* Writes "f32 [1,3,224,224]" into buf; with batch, the first dimension is written as N. */
static void type_str(lb_dtype t, int rank, const int64_t *dims, int batch, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "%s [", lb_dtype_name(t));
  for (int d = 0; d < rank && k < n; d++) {
    if (d == 0 && batch)
      k += (size_t)snprintf(buf + k, n - k, "N");
    else
      k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, d ? "," : "", dims[d]);
  }
  if (k < n) snprintf(buf + k, n - k, "]");
}

/* Bytes of one sample: the value's whole tensor (its batch dimension is 1 under --batch). */
static size_t value_bytes(const lb_value *v) { return lb_dtype_bytes(v->dtype, lb_value_numel(v)); }

/* For a raw file under --batch, the dims the file holds: [N, dims[1:]] with N from its size. */
static int raw_batch_dims(const char *path, const lb_value *v, int64_t *dims, lb_diag *d) {
  struct stat st;
  size_t sample = value_bytes(v);
  if (stat(path, &st) != 0) return lb_diag_err(d, LB_ERR_INPUT, "%s: %s", path, strerror(errno));
  if (sample == 0 || (size_t)st.st_size % sample != 0)
    return lb_diag_err(d, LB_ERR_INPUT,
                       "%s: %lld bytes is not a whole number of %s samples of %zu bytes", path,
                       (long long)st.st_size, v->name, sample);
  memcpy(dims, v->dims, sizeof v->dims);
  dims[0] = (int64_t)((size_t)st.st_size / sample);
  return 0;
}

static int read_tensor(const char *path, const lb_value *v, int batch, lb_tensor *t,
                       lb_diag *d) {
  int64_t dims[LB_MAX_RANK];
  if (kind_of(path) == FILE_NPY) return lb_npy_read(path, t, d);
  if (!batch) return lb_bin_read(path, v->dtype, v->rank, v->dims, t, d);
  LB_TRY(raw_batch_dims(path, v, dims, d));
  return lb_bin_read(path, v->dtype, v->rank, dims, t, d);
}

/* Checks a file's tensor against model input v; under --batch sets *n to its leading dim. */
static int check_input(const char *path, const lb_value *v, const lb_tensor *t, int batch,
                       int64_t *n, lb_diag *d) {
  char want[300], got[300];
  int ok = t->dtype == v->dtype && t->rank == v->rank;
  for (int i = batch ? 1 : 0; ok && i < v->rank; i++) ok = t->dims[i] == v->dims[i];
  if (ok && batch && (v->rank == 0 || v->dims[0] != 1 || t->dims[0] < 1)) ok = 0;
  if (ok && !batch) return 0;
  if (ok) {
    if (*n >= 0 && *n != t->dims[0])
      return lb_diag_err(d, LB_ERR_INPUT, "%s: input '%s': batch of %" PRId64
                         ", but the inputs before it have %" PRId64, path, v->name,
                         t->dims[0], *n);
    *n = t->dims[0];
    return 0;
  }
  type_str(v->dtype, v->rank, v->dims, 0, want, sizeof want);
  type_str(t->dtype, t->rank, t->dims, 0, got, sizeof got);
  if (batch && (v->rank == 0 || v->dims[0] != 1))
    return lb_diag_err(d, LB_ERR_INPUT,
                       "%s: input '%s': --batch needs a batch dimension of 1, the model has %s",
                       path, v->name, want);
  if (batch) type_str(v->dtype, v->rank, v->dims, 1, want, sizeof want);
  const char *hint = t->dtype == LB_DTYPE_F64 && v->dtype == LB_DTYPE_F32
                         ? " (numpy: save x.astype(numpy.float32))" : "";
  return lb_diag_err(d, LB_ERR_INPUT, "%s: input '%s': expected %s, got %s%s", path, v->name,
                     want, got, hint);
}

/* Reads every -i file in graph order; *n is the batch size (1 without --batch). */
static int read_inputs(const run_opts *o, const lb_graph *g, lb_tensor *in, int64_t *n,
                       lb_diag *d) {
  if ((uint32_t)o->n_in != g->n_inputs) {
    char names[512] = "";
    size_t k = 0;
    for (uint32_t i = 0; i < g->n_inputs && k < sizeof names; i++)
      k += (size_t)snprintf(names + k, sizeof names - k, "%s'%s'", i ? ", " : "",
                            g->values[g->inputs[i]].name);
    return lb_diag_err(d, LB_ERR_INPUT, "%s: the model has %" PRIu32 " input%s (%s), got %d -i",
                       o->model, g->n_inputs, g->n_inputs == 1 ? "" : "s", names, o->n_in);
  }
  *n = -1;
  for (uint32_t i = 0; i < g->n_inputs; i++) {
    const lb_value *v = &g->values[g->inputs[i]];
    LB_TRY(read_tensor(o->in[i], v, o->batch, &in[i], d));
    LB_TRY(check_input(o->in[i], v, &in[i], o->batch, n, d));
  }
  if (*n < 0) *n = 1;
  return 0;
}

/* ---- running ------------------------------------------------------------------------------ */

static void free_tensors(lb_tensor *t, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    lb_free(t[i].data);
    t[i].data = NULL;
  }
}

/* After a failed engine run: the engine freed its outputs, so drop the pointers. */
static int forget(lb_tensor *t, uint32_t n, int rc) {
  for (uint32_t i = 0; i < n; i++) t[i].data = NULL;
  return rc;
}

/* Sets t to value v's dtype and shape, without data. */
static void shape_like(lb_tensor *t, const lb_value *v) {
  memset(t, 0, sizeof *t);
  t->dtype = v->dtype;
  t->rank = v->rank;
  memcpy(t->dims, v->dims, sizeof v->dims);
}

/* Allocates the batched outputs: [n, dims[1:]] when the model's batch is 1, else [n, dims]. */
static int alloc_batched(const lb_graph *g, int64_t n, lb_tensor *out, lb_diag *d) {
  for (uint32_t j = 0; j < g->n_outputs; j++) {
    const lb_value *v = &g->values[g->outputs[j]];
    shape_like(&out[j], v);
    if (v->rank == 0 || v->dims[0] != 1) {
      if (v->rank + 1 > LB_MAX_RANK)
        return lb_diag_err(d, LB_ERR_INPUT, "output '%s': rank %d is too high for --batch",
                           v->name, v->rank);
      memmove(out[j].dims + 1, out[j].dims, sizeof(int64_t) * (size_t)v->rank);
      out[j].rank++;
    }
    out[j].dims[0] = n;
    size_t sample = value_bytes(v);
    if (sample == SIZE_MAX || (n > 0 && sample > SIZE_MAX / (size_t)n))
      return lb_diag_err(d, LB_ERR_INPUT, "output '%s': batch of %" PRId64 " is too large",
                         v->name, n);
    size_t total = sample * (size_t)n;
    if (!(out[j].data = lb_malloc(total ? total : 1)))
      return lb_diag_err(d, LB_ERR_NOMEM, "out of memory for output '%s'", v->name);
  }
  return 0;
}

/* Runs sample b: the inputs are views into the batched files, the outputs copied into rows. */
static int run_sample(engine *e, const lb_graph *g, const lb_tensor *in, int64_t b,
                      lb_tensor *view, lb_tensor *one, lb_tensor *out, lb_diag *d) {
  for (uint32_t i = 0; i < g->n_inputs; i++) {
    const lb_value *v = &g->values[g->inputs[i]];
    shape_like(&view[i], v);
    view[i].data = (char *)in[i].data + (size_t)b * value_bytes(v);
  }
  for (uint32_t j = 0; j < g->n_outputs; j++) shape_like(&one[j], &g->values[g->outputs[j]]);
  int rc = e->run(e->state, g, view, one, d);
  if (rc != 0) return forget(one, g->n_outputs, rc);
  for (uint32_t j = 0; j < g->n_outputs; j++) {
    size_t sample = value_bytes(&g->values[g->outputs[j]]);
    memcpy((char *)out[j].data + (size_t)b * sample, one[j].data, sample);
  }
  free_tensors(one, g->n_outputs);
  return rc;
}

/* Runs the model n times (n > 1 or --batch) into out; scratch holds n_inputs+n_outputs. */
static int run_batched(engine *e, const lb_graph *g, const lb_tensor *in, int64_t n,
                       lb_tensor *scratch, lb_tensor *out, lb_diag *d) {
  LB_TRY(alloc_batched(g, n, out, d));
  for (int64_t b = 0; b < n; b++) {
    int rc = run_sample(e, g, in, b, scratch, scratch + g->n_inputs, out, d);
    if (rc != 0) {
      lb_diag_prefix(d, "sample %" PRId64, b);
      return rc;
    }
  }
  return 0;
}

static int run_once(engine *e, const lb_graph *g, const lb_tensor *in, lb_tensor *out,
                    lb_diag *d) {
  for (uint32_t j = 0; j < g->n_outputs; j++) shape_like(&out[j], &g->values[g->outputs[j]]);
  int rc = e->run(e->state, g, in, out, d);
  return rc != 0 ? forget(out, g->n_outputs, rc) : 0;
}

/* ---- outputs ------------------------------------------------------------------------------ */

/* Writes the first n_out outputs; if one fails, removes the ones already written. */
static int write_outputs(const run_opts *o, const lb_tensor *out, lb_diag *d) {
  for (int j = 0; j < o->n_out; j++) {
    int rc = kind_of(o->out[j]) == FILE_NPY ? lb_npy_write(o->out[j], &out[j], d)
                                             : lb_bin_write(o->out[j], &out[j], d);
    if (rc != 0) {
      for (int k = 0; k < j; k++) unlink(o->out[k]);
      return rc;
    }
  }
  return 0;
}

/* Element i as a double; NAN for packed sub-byte dtypes, which are not printed. */
static double elem(const lb_tensor *t, int64_t i) {
  switch (t->dtype) {
  case LB_DTYPE_F32: return ((const float *)t->data)[i];
  case LB_DTYPE_F64: return ((const double *)t->data)[i];
  case LB_DTYPE_I64: return (double)((const int64_t *)t->data)[i];
  case LB_DTYPE_I32: return ((const int32_t *)t->data)[i];
  case LB_DTYPE_I16: return ((const int16_t *)t->data)[i];
  case LB_DTYPE_I8: return ((const int8_t *)t->data)[i];
  case LB_DTYPE_U8:
  case LB_DTYPE_BOOL: return ((const uint8_t *)t->data)[i];
  default: return NAN;
  }
}

/* A vector of scores or a matrix of them (rows x classes) prints as top-k per row; anything
 * else prints its first values. */

/* Prints the TOPK largest entries of row r (length len) as "class (score)". */
static void print_topk(const lb_tensor *t, int64_t r, int64_t len) {
  int64_t best[TOPK];
  int k = 0;
  for (int64_t c = 0; c < len; c++) {
    double x = elem(t, r * len + c);
    int pos = k;
    while (pos > 0 && elem(t, r * len + best[pos - 1]) < x) pos--;
    if (pos >= TOPK) continue;
    if (k < TOPK) k++;
    memmove(best + pos + 1, best + pos, sizeof best[0] * (size_t)(k - 1 - pos));
    best[pos] = c;
  }
  printf("  [%" PRId64 "] top-%d:", r, k);
  for (int i = 0; i < k; i++) printf("  %" PRId64 " (%.4g)", best[i], elem(t, r * len + best[i]));
  printf("\n");
}

static void print_output(const lb_value *v, const lb_tensor *t) {
  char type[300];
  int64_t numel = lb_tensor_numel(t);
  type_str(t->dtype, t->rank, t->dims, 0, type, sizeof type);
  printf("output '%s': %s\n", v->name, type);
  if (lb_dtype_bits(t->dtype) < 8) {
    printf("  (packed %s data is not printed)\n", lb_dtype_name(t->dtype));
    return;
  }
  int64_t len = t->rank ? t->dims[t->rank - 1] : 1;
  if (lb_dtype_is_float(t->dtype) && t->rank <= 2 && len >= 2 && numel > 0) {
    int64_t rows = numel / len;
    for (int64_t r = 0; r < rows && r < PRINT_ROWS; r++) print_topk(t, r, len);
    if (rows > PRINT_ROWS) printf("  ... %" PRId64 " more rows\n", rows - PRINT_ROWS);
    return;
  }
  printf(" ");
  for (int64_t i = 0; i < numel && i < PRINT_VALUES; i++) printf(" %.6g", elem(t, i));
  if (numel > PRINT_VALUES) printf(" ... (%" PRId64 " values)", numel);
  printf("\n");
}

/* ---- the command -------------------------------------------------------------------------- */

/* Loads, reads, runs and writes; the tensors are freed by the caller. */
static int execute(const run_opts *o, lb_graph *g, lb_tensor *in, lb_tensor *out,
                   lb_tensor *scratch, lb_diag *d) {
  engine e;
  int64_t n = 1;
  if ((uint32_t)o->n_out > g->n_outputs)
    return lb_diag_err(d, LB_ERR_INPUT, "%s: the model has %" PRIu32 " output%s, got %d -o",
                       o->model, g->n_outputs, g->n_outputs == 1 ? "" : "s", o->n_out);
  LB_TRY(open_engine(o, g, &e, d));
  int rc = read_inputs(o, g, in, &n, d);
  if (rc == 0) {
    rc = o->batch ? run_batched(&e, g, in, n, scratch, out, d) : run_once(&e, g, in, out, d);
    if (rc != 0 && strncmp(d->msg, o->model, strlen(o->model)) != 0)
      lb_diag_prefix(d, "%s", o->model);
  }
  close_engine(&e);
  if (rc != 0) return rc;
  LB_TRY(write_outputs(o, out, d));
  for (uint32_t j = 0; o->print && j < g->n_outputs; j++)
    print_output(&g->values[g->outputs[j]], &out[j]);
  return 0;
}

static int load_model(const char *path, lb_graph **g, lb_diag *d) {
  int rc = lb_onnx_load(path, g, d);
  if (rc != 0 && !d->set) return lb_diag_err(d, rc, "%s: cannot import the model", path);
  if (rc != 0 && strncmp(d->msg, path, strlen(path)) != 0) lb_diag_prefix(d, "%s", path);
  return rc;
}

int lb_cmd_run(int argc, char **argv) {
  run_opts o = {.engine = "interp"};
  lb_graph *g = NULL;
  lb_tensor *t = NULL;
  lb_diag d = {0};
  int rc;
  o.in = lb_calloc((size_t)argc, sizeof *o.in);
  o.out = lb_calloc((size_t)argc, sizeof *o.out);
  if (!o.in || !o.out) {
    rc = lb_diag_err(&d, LB_ERR_NOMEM, "out of memory");
    goto done;
  }
  if ((rc = parse_args(argc, argv, &o)) != 0 || (rc = check_files(&o)) != 0) {
    rc = rc < 0 ? 0 : rc; /* -1: --help was printed */
    goto done;
  }
  if ((rc = load_model(o.model, &g, &d)) != 0) goto done;
  /* inputs, outputs, then scratch views for one batched sample (inputs + outputs) */
  size_t nt = 2 * ((size_t)g->n_inputs + g->n_outputs);
  if (!(t = lb_calloc(nt ? nt : 1, sizeof *t))) {
    rc = lb_diag_err(&d, LB_ERR_NOMEM, "out of memory");
    goto done;
  }
  rc = execute(&o, g, t, t + g->n_inputs, t + g->n_inputs + g->n_outputs, &d);
  free_tensors(t, g->n_inputs + g->n_outputs);
done:
  if (d.set) fprintf(stderr, "lowbit: %s\n", d.msg);
  lb_free(t);
  if (g) lb_graph_free(g);
  lb_free(o.in);
  lb_free(o.out);
  return lb_exit_code(rc);
}
