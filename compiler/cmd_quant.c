/* `lowbit quantize MODEL --spec S --calib C.npy -o OUT.qdq.onnx` and the quantization options
 * that `lowbit run` shares (--quantize, --calib, --calib-method, --plan, --plan-out): the
 * pipeline import -> fp32 passes -> annotate -> [plan] -> calibrate -> realize, the per-layer
 * report, a streaming .npy sample reader, and the QDQ ONNX writer. Invariant: nothing is
 * written unless the whole pipeline succeeded; files go to a temporary name and are renamed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "onnx.h"
#include "onnx.pb-c.h"
#include "passes.h"
#include "quantize.h"
#include "tensor_io.h"

static int is(const char *a, const char *b) { return strcmp(a, b) == 0; }

static int is_qdq(const lb_qcli *o) { return o->quantize && is(o->quantize, "qdq"); }

int lb_qcli_parse(lb_qcli *o, const char *cmd, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  const char **slot = is(a, "--quantize") ? &o->quantize
                      : is(a, "--calib") ? &o->calib
                      : is(a, "--calib-method") ? &o->method
                      : is(a, "--plan") ? &o->plan
                      : is(a, "--plan-out") ? &o->plan_out : NULL;
  if (!slot) return 0;
  if (*i + 1 >= argc) {
    fprintf(stderr, "lowbit %s: option '%s' needs an argument\n", cmd, a);
    return 2;
  }
  *slot = argv[++*i];
  if (slot == &o->calib) {
    if (o->n_calibs == LB_QCLI_MAX_CALIB) {
      fprintf(stderr, "lowbit %s: more than %d --calib options\n", cmd, LB_QCLI_MAX_CALIB);
      return 2;
    }
    o->calib = o->n_calibs ? o->calibs[0] : o->calib;
    o->calibs[o->n_calibs++] = argv[*i];
  }
  return 1;
}

/* --calib-method NAME, or percentile:P with P in (0, 100]. */
static int parse_method(const char *s, lb_calib_opts *co) {
  const char *colon = strchr(s, ':');
  char name[32];
  if (!colon) return lb_calib_method_from_name(s, &co->method);
  if ((size_t)(colon - s) >= sizeof name) return -1;
  memcpy(name, s, (size_t)(colon - s));
  name[colon - s] = 0;
  char *end;
  double p = strtod(colon + 1, &end);
  if (strcmp(name, "percentile") != 0 || end == colon + 1 || *end || !(p > 0 && p <= 100)) return -1;
  co->method = LB_CALIB_PERCENTILE;
  co->percentile = p;
  return 0;
}

int lb_qcli_check(const lb_qcli *o, const char *cmd) {
  lb_calib_opts co;
  if (o->quantize && !is(o->quantize, "int8") && !is(o->quantize, "qdq") &&
      !is(o->quantize, "none")) {
    fprintf(stderr, "lowbit %s: --quantize '%s' is not one of int8, qdq, none\n", cmd, o->quantize);
    return 2;
  }
  if (o->quantize && is(o->quantize, "qdq") && (o->calib || o->method || o->plan || o->plan_out)) {
    fprintf(stderr, "lowbit %s: --quantize qdq takes its parameters from the model's "
                    "QuantizeLinear/DequantizeLinear nodes (no --calib or --plan)\n", cmd);
    return 2;
  }
  if (o->method && parse_method(o->method, &co) != 0) {
    fprintf(stderr, "lowbit %s: --calib-method '%s' is not one of max, avg-max, percentile[:P], "
                    "kl, mse\n", cmd, o->method);
    return 2;
  }
  if (!lb_qcli_active(o) && (o->calib || o->method || o->plan_out)) {
    fprintf(stderr, "lowbit %s: --calib, --calib-method and --plan-out need --quantize int8 or --plan\n",
            cmd);
    return 2;
  }
  if (lb_qcli_active(o) && !is_qdq(o) && !o->calib && !o->plan) {
    fprintf(stderr, "lowbit %s: --quantize int8 needs --calib C.npy (or --plan P.yaml)\n", cmd);
    return 2;
  }
  return 0;
}

int lb_qcli_active(const lb_qcli *o) {
  return (o->quantize && (is(o->quantize, "int8") || is(o->quantize, "qdq"))) || o->plan;
}

/* ---- streaming .npy samples ---------------------------------------------------------------
 * Calibration reads sample after sample from the files, so the set never has to fit in memory:
 * one little-endian, C-order .npy (v1-v3) per graph input whose axis 0 counts the samples. */

typedef struct npy_stream {
  FILE *f;
  const char *path;
  long off;     /* data offset */
  size_t bytes; /* per sample */
} npy_stream;

/* The value of 'key' in the header dict, or NULL. */
static const char *npy_key(const char *h, const char *key) {
  const char *k = strstr(h, key);
  if (!k) return NULL;
  k = strchr(k + strlen(key), ':');
  if (!k) return NULL;
  for (k++; *k == ' '; k++) {}
  return k;
}

/* The dtype of a .npy descr ('<f4', ...) at d, or LB_DTYPE_COUNT. */
static lb_dtype npy_dtype(const char *d) {
  static const struct { const char *descr; lb_dtype t; } tab[] = {
      {"'<f4'", LB_DTYPE_F32}, {"'<f8'", LB_DTYPE_F64}, {"'<i8'", LB_DTYPE_I64},
      {"'<i4'", LB_DTYPE_I32}, {"'<i2'", LB_DTYPE_I16}, {"'|i1'", LB_DTYPE_I8},
      {"'|u1'", LB_DTYPE_U8},  {"'|b1'", LB_DTYPE_BOOL}};
  for (size_t i = 0; d && i < sizeof tab / sizeof *tab; i++)
    if (strncmp(d, tab[i].descr, 5) == 0) return tab[i].t;
  return LB_DTYPE_COUNT;
}

/* Parses "(N, d1, ...)" into the sample count and one sample's shape. */
static int npy_shape(npy_stream *s, const char *shape, lb_calib_input *in, lb_diag *d) {
  int64_t dims[LB_MAX_RANK + 1];
  int rank = 0;
  for (const char *c = shape + 1; *c && *c != ')';) {
    char *e;
    long long v = strtoll(c, &e, 10);
    if (e == c) break;
    if (v < 0 || rank > LB_MAX_RANK) return lb_diag_err(d, LB_ERR_INPUT, "%s: bad shape", s->path);
    dims[rank++] = v;
    for (c = e; *c == ',' || *c == ' '; c++) {}
  }
  if (rank < 1) return lb_diag_err(d, LB_ERR_INPUT, "%s: calibration data needs a sample axis", s->path);
  in->n = dims[0], in->rank = rank - 1, in->per = 1;
  for (int i = 1; i < rank; i++) {
    if (dims[i] && in->per > INT64_MAX / 8 / dims[i])
      return lb_diag_err(d, LB_ERR_INPUT, "%s: shape too large", s->path);
    in->dims[i - 1] = dims[i], in->per *= dims[i];
  }
  s->bytes = lb_dtype_bytes(in->dtype, in->per);
  return 0;
}

static int npy_header(npy_stream *s, char *h, size_t cap, lb_calib_input *in, lb_diag *d) {
  unsigned char pre[12];
  if (fread(pre, 1, 10, s->f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] < 1 || pre[6] > 3)
    return lb_diag_err(d, LB_ERR_INPUT, "%s: not a .npy file", s->path);
  size_t hl = (size_t)pre[8] | (size_t)pre[9] << 8;
  if (pre[6] > 1) {
    if (fread(pre + 10, 1, 2, s->f) != 2) return lb_diag_err(d, LB_ERR_INPUT, "%s: truncated", s->path);
    hl |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  }
  if (hl >= cap || fread(h, 1, hl, s->f) != hl)
    return lb_diag_err(d, LB_ERR_INPUT, "%s: bad or truncated header", s->path);
  h[hl] = 0;
  s->off = (pre[6] > 1 ? 12 : 10) + (long)hl;
  const char *fo = npy_key(h, "'fortran_order'"), *shape = npy_key(h, "'shape'");
  in->dtype = npy_dtype(npy_key(h, "'descr'"));
  if (in->dtype == LB_DTYPE_COUNT || !fo || strncmp(fo, "False", 5) != 0 || !shape || *shape != '(')
    return lb_diag_err(d, LB_ERR_INPUT, "%s: calibration data must be a little-endian, C-order "
                       "array of f32, f64, i64, i32, i16, i8, u8 or bool", s->path);
  return npy_shape(s, shape, in, d);
}

static int npy_read_sample(void *user, int64_t i, void *dst, lb_diag *d) {
  npy_stream *s = user;
  if (fseek(s->f, s->off + (long)((size_t)i * s->bytes), SEEK_SET) != 0 ||
      fread(dst, 1, s->bytes, s->f) != s->bytes)
    return lb_diag_err(d, LB_ERR_INPUT, "%s: truncated at sample %lld", s->path, (long long)i);
  return 0;
}

/* Opens path as a sample source (*s must be closed with fclose(s->f) when s->f is set). */
static int npy_open(const char *path, npy_stream *s, lb_calib_input *src, lb_diag *d) {
  *s = (npy_stream){fopen(path, "rb"), path, 0, 0};
  *src = (lb_calib_input){.what = path, .read = npy_read_sample, .user = s};
  if (!s->f) return lb_diag_err(d, LB_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
  char h[4096];
  LB_TRY(npy_header(s, h, sizeof h, src, d));
  if (fseek(s->f, 0, SEEK_END) != 0 || ftell(s->f) != s->off + (long)((size_t)src->n * s->bytes))
    return lb_diag_err(d, LB_ERR_INPUT, "%s: file size does not match shape", path);
  return 0;
}

/* ---- --calib: one file per graph input ---------------------------------------------------
 * Each --calib value is a comma list; its items are FILE (given in graph input order) or
 * NAME=FILE (NAME a graph input; a path with '=' and no '/' before it reads as NAME=FILE,
 * write ./a=b.npy). Every input gets exactly one file, all named or all in order. */

typedef struct calib_set {
  uint32_t n;          /* = graph inputs */
  npy_stream s[LB_QCLI_MAX_CALIB];
  lb_calib_input in[LB_QCLI_MAX_CALIB];
  char text[4096];     /* the items, NUL-separated */
} calib_set;

static void calib_close(calib_set *c) {
  for (uint32_t k = 0; k < c->n; k++)
    if (c->s[k].f) fclose(c->s[k].f);
}

/* Splits the option's values into items (pointers into text). */
static int calib_items(const char *opt, const char *const *v, int nv, char *text, size_t cap,
                       char **item, int *n, lb_diag *d) {
  size_t used = 0;
  *n = 0;
  for (int i = 0; i < nv; i++) {
    size_t len = strlen(v[i]);
    if (used + len + 1 > cap) return lb_diag_err(d, LB_ERR_INPUT, "%s: the file list is too long", opt);
    char *t = memcpy(text + used, v[i], len + 1);
    used += len + 1;
    for (char *tok = strtok(t, ","); tok; tok = strtok(NULL, ",")) {
      if (*n == LB_QCLI_MAX_CALIB)
        return lb_diag_err(d, LB_ERR_INPUT, "%s: more than %d files", opt, LB_QCLI_MAX_CALIB);
      item[(*n)++] = tok;
    }
  }
  if (!*n) return lb_diag_err(d, LB_ERR_INPUT, "%s: no file given", opt);
  return 0;
}

/* Graph input index of item's NAME= prefix (*file: the rest), -1 if it is a plain file,
 * -2 (diag set) for an unknown name. */
static int item_input(const char *opt, const lb_graph *g, char *item, const char **file,
                      lb_diag *d) {
  char *eq = strchr(item, '=');
  *file = item;
  if (!eq || memchr(item, '/', (size_t)(eq - item))) return -1;
  *eq = 0, *file = eq + 1;
  for (uint32_t k = 0; k < g->n_inputs; k++)
    if (strcmp(g->values[g->inputs[k]].name, item) == 0) return (int)k;
  char names[256] = "";
  for (uint32_t k = 0; k < g->n_inputs; k++)
    snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'", k ? ", " : "",
             g->values[g->inputs[k]].name);
  lb_diag_err(d, LB_ERR_INPUT, "%s %s=%s: the model has no input '%s' (its inputs: %s)", opt,
              item, *file, item, names);
  return -2;
}

int lb_cli_input_files(const char *opt, const char *const *values, int n_values,
                       const lb_graph *g, char *text, size_t cap, const char **path, lb_diag *d) {
  if (g->n_inputs > LB_QCLI_MAX_CALIB)
    return lb_diag_err(d, LB_ERR_INPUT, "%s: the model has %u inputs (at most %d)", opt,
                       g->n_inputs, LB_QCLI_MAX_CALIB);
  char *item[LB_QCLI_MAX_CALIB];
  int n, named = 0;
  for (uint32_t k = 0; k < g->n_inputs; k++) path[k] = NULL;
  LB_TRY(calib_items(opt, values, n_values, text, cap, item, &n, d));
  for (int i = 0; i < n; i++) {
    const char *file;
    int k = item_input(opt, g, item[i], &file, d);
    if (k == -2) return LB_ERR_INPUT;
    if (i == 0) named = k >= 0;
    else if ((k >= 0) != named)
      return lb_diag_err(d, LB_ERR_INPUT, "%s: give every file as NAME=FILE or none of them", opt);
    if (k >= 0 && path[k])
      return lb_diag_err(d, LB_ERR_INPUT, "%s: two files for input '%s'", opt,
                         g->values[g->inputs[k]].name);
    if (k < 0 && i < (int)g->n_inputs) k = i;
    if (k >= 0) path[k] = file;
  }
  if (!named && n != (int)g->n_inputs)
    return lb_diag_err(d, LB_ERR_INPUT, "%s: the model has %u input%s, got %d file%s (one per "
                       "input, in input order, or NAME=FILE)", opt, g->n_inputs,
                       g->n_inputs == 1 ? "" : "s", n, n == 1 ? "" : "s");
  for (uint32_t k = 0; k < g->n_inputs; k++)
    if (!path[k])
      return lb_diag_err(d, LB_ERR_INPUT, "%s: no file for input '%s'", opt,
                         g->values[g->inputs[k]].name);
  return 0;
}

/* Opens one sample file per graph input (c->n set on return, also on error). */
static int calib_open(const lb_qcli *o, const lb_graph *g, calib_set *c, lb_diag *d) {
  c->n = 0;
  const char *path[LB_QCLI_MAX_CALIB] = {0};
  LB_TRY(lb_cli_input_files("--calib", o->n_calibs ? o->calibs : &o->calib,
                            o->n_calibs ? o->n_calibs : 1, g, c->text, sizeof c->text, path, d));
  for (uint32_t k = 0; k < g->n_inputs; k++) {
    c->n = k + 1;
    LB_TRY(npy_open(path[k], &c->s[k], &c->in[k], d));
  }
  return lb_calib_check(g, c->in, d);
}

/* Reads the calibration set and runs calibration, or fills parameters from the plan alone. */
static int calibrate(const lb_qcli *o, const lb_graph *g, lb_qplan *p, lb_diag *d) {
  if (!o->calib) {
    p->method = "plan";
    return lb_quant_params(g, p, d);
  }
  lb_calib_opts co = {LB_CALIB_AVG_MAX, 0, isatty(2)};
  if (o->method) parse_method(o->method, &co);
  calib_set *c = lb_malloc(sizeof *c);
  if (!c) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  int rc = calib_open(o, g, c, d);
  if (!rc) rc = lb_quant_calibrate_inputs(g, p, c->in, &co, d);
  calib_close(c);
  lb_free(c);
  return rc;
}

/* Prints the per-layer SQNR of the simulated graph against fp32 over up to 100 samples of
 * the calibration set (lowbit quantize --sqnr). */
static int print_sqnr(const lb_qcli *o, const lb_graph *g, const lb_qplan *p, FILE *f,
                      lb_diag *d) {
  lb_graph *sim = NULL;
  double *db = lb_calloc(g->n_nodes ? g->n_nodes : 1, sizeof *db);
  calib_set *c = lb_malloc(sizeof *c);
  int rc = !db || !c ? lb_diag_err(d, LB_ERR_NOMEM, "out of memory") : 0;
  if (c) c->n = 0;
  if (!rc) rc = lb_quant_realize(g, p, LB_REALIZE_SIM, &sim, d);
  if (!rc) rc = calib_open(o, g, c, d);
  if (!rc) rc = lb_quant_sqnr_inputs(g, p, sim, c->in, 100, db, d);
  if (!rc) {
    fprintf(f, "per-layer SQNR, simulated int8 vs fp32 (%lld calibration samples):\n",
            (long long)(c->in[0].n < 100 ? c->in[0].n : 100));
    for (uint32_t n = 0; n < g->n_nodes; n++)
      if (db[n] == db[n])
        fprintf(f, "  %3u %-40.40s %7.1f dB\n", n, g->values[g->nodes[n].out[0]].name, db[n]);
  }
  if (c) calib_close(c);
  lb_free(c);
  lb_graph_free(sim);
  lb_free(db);
  return rc;
}

/* Annotates g for spec s; with an edited plan, reads it, annotates again honouring its f32
 * layers and checks its dtypes. */
static int annotate(const lb_qcli *o, const lb_graph *g, const lb_spec *s, lb_qplan *p,
                    lb_diag *d) {
  LB_TRY(lb_quant_annotate(g, s, p, d));
  if (!o->plan) return 0;
  LB_TRY(lb_qplan_load(p, g, o->plan, d));
  return lb_quant_annotate(g, s, p, d);
}

int lb_qcli_build(const lb_qcli *o, const char *model, const char *spec, int mode, FILE *report,
                  lb_graph **fp32, lb_qplan **plan, lb_graph **out, lb_diag *d) {
  lb_graph *g = NULL;
  lb_spec *s = NULL;
  lb_qplan *p = NULL;
  *out = NULL;
  int rc = lb_onnx_load(model, &g, d);
  if (!rc) rc = lb_pass_prepare_fp32(g, d);
  if (!rc && is_qdq(o)) { /* the model's own QDQ parameters: the integer graph directly */
    rc = lb_qdq_import(g, report, d);
    if (rc) lb_diag_prefix(d, "%s", model);
    if (!rc) *out = g;
    else lb_graph_free(g);
    return rc;
  }
  if (!rc) rc = lb_spec_load(spec ? spec : "host", &s, d);
  if (!rc && !(p = lb_qplan_new(g))) rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  if (!rc) rc = annotate(o, g, s, p, d);
  if (!rc) rc = calibrate(o, g, p, d);
  if (!rc && report) lb_qplan_report(p, g, report);
  if (!rc) rc = lb_quant_realize(g, p, (lb_realize_mode)mode, out, d);
  if (!rc && o->plan_out && (rc = lb_qplan_save(p, g, o->plan_out, d)) != 0) {
    lb_graph_free(*out);
    *out = NULL;
  }
  lb_spec_free(s);
  if (!rc && plan) *plan = p;
  else lb_qplan_free(p);
  if (!rc && fp32) *fp32 = g;
  else lb_graph_free(g);
  return rc;
}

/* ---- lowbit quantize ---------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: lowbit quantize MODEL.onnx --spec S --calib C.npy -o OUT.qdq.onnx [options]\n"
          "\n"
          "Calibrates the model for the integer combinations of a target spec and writes it as\n"
          "an ONNX QDQ model (QuantizeLinear/DequantizeLinear around weights and activations, as\n"
          "ONNX Runtime's quantization tool writes them). Prints the per-layer plan.\n"
          "\n"
          "  --spec S             target spec (bundled name, file, or host; default host)\n"
          "  --calib C.npy        calibration samples along axis 0: one .npy per model\n"
          "                       input, same N, each sample shaped like the input (leading\n"
          "                       1 optional), in its dtype; a comma list in input order,\n"
          "                       NAME=FILE items, or --calib repeated\n"
          "  --calib-method M     max, avg-max (default), percentile[:P] (99.99), kl or mse\n"
          "  --plan P.yaml        an edited plan: f32 layers, scales and zero points\n"
          "  --plan-out P.yaml    write the plan\n"
          "  -o, --output FILE    the QDQ model (written atomically)\n"
          "  --sqnr               print each layer's SQNR, simulated int8 vs fp32, over up to\n"
          "                       100 calibration samples\n"
          "  -q, --quiet          do not print the plan\n"
          "  -h, --help           print this help\n");
}

int lb_cmd_quantize(int argc, char **argv) {
  lb_qcli o = {.quantize = "int8"};
  const char *model = NULL, *spec = NULL, *outp = NULL;
  int quiet = 0, sqnr = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = lb_qcli_parse(&o, "quantize", argc, argv, &i);
    if (r == 2) return 2;
    if (r == 1) continue;
    if (is(a, "-h") || is(a, "--help")) return usage(stdout), 0;
    if ((is(a, "--spec") || is(a, "-o") || is(a, "--output")) && i + 1 >= argc) {
      fprintf(stderr, "lowbit quantize: option '%s' needs an argument\n", a);
      return 2;
    }
    if (is(a, "--spec")) spec = argv[++i];
    else if (is(a, "-o") || is(a, "--output")) outp = argv[++i];
    else if (is(a, "-q") || is(a, "--quiet")) quiet = 1;
    else if (is(a, "--sqnr")) sqnr = 1;
    else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "lowbit quantize: unknown option '%s' (try 'lowbit quantize --help')\n", a);
      return 2;
    } else if (model) {
      fprintf(stderr, "lowbit quantize: unexpected argument '%s'\n", a);
      return 2;
    } else model = a;
  }
  if (!model || !outp) {
    fprintf(stderr, "lowbit quantize: needs MODEL.onnx and -o OUT.onnx (try --help)\n");
    return 2;
  }
  if (lb_qcli_check(&o, "quantize")) return 2;
  lb_diag d = {0};
  if (sqnr && !o.calib) {
    fprintf(stderr, "lowbit quantize: --sqnr needs --calib\n");
    return 2;
  }
  lb_graph *q = NULL, *fp = NULL;
  lb_qplan *p = NULL;
  int rc = lb_qcli_build(&o, model, spec, LB_REALIZE_QDQ, quiet ? NULL : stdout, &fp, &p, &q, &d);
  if (!rc && sqnr) rc = print_sqnr(&o, fp, p, stdout, &d);
  if (!rc) rc = lb_qdq_write(q, outp, &d);
  lb_graph_free(fp);
  lb_qplan_free(p);
  if (rc) fprintf(stderr, "lowbit: %s\n", d.msg);
  lb_graph_free(q);
  return lb_exit_code(rc);
}

/* ---- the QDQ ONNX writer -----------------------------------------------------------------
 * Writes an lb_graph (fp32 ops, quantize/dequantize nodes, integer constants) as an opset-13
 * ModelProto. Fused epilogues are written back as separate nodes (residual Add, Relu/Clip),
 * which is the DQ -> op -> Q layout ONNX Runtime fuses. Everything lives in one arena. */

typedef struct wr {
  lb_arena a;
  const lb_graph *g;
  Onnx__NodeProto **nodes;
  size_t n_nodes, cap_nodes;
  Onnx__TensorProto **inits;
  size_t n_inits;
  unsigned tmp; /* counter for names of values the unfusing adds */
  lb_diag *d;
} wr;

static int onnx_dtype(lb_dtype t) {
  switch (t) {
  case LB_DTYPE_F32: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  case LB_DTYPE_U8: return ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
  case LB_DTYPE_I8: return ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
  case LB_DTYPE_I32: return ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
  case LB_DTYPE_I64: return ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
  default: return -1;
  }
}

static char *sdup(wr *w, const char *s) { return lb_arena_strdup(&w->a, s); }

static Onnx__TensorProto *tensor_proto(wr *w, const char *name, lb_dtype t, int rank,
                                       const int64_t *dims, const void *data, size_t nbytes) {
  Onnx__TensorProto *tp = lb_arena_alloc(&w->a, sizeof *tp);
  int64_t *d = lb_arena_array(&w->a, rank ? (size_t)rank : 1, sizeof *d);
  void *buf = lb_arena_alloc(&w->a, nbytes ? nbytes : 1);
  if (!tp || !d || !buf) return NULL;
  onnx__tensor_proto__init(tp);
  tp->name = sdup(w, name);
  tp->n_dims = (size_t)rank;
  memcpy(d, dims, (size_t)rank * sizeof *d);
  tp->dims = d;
  tp->has_data_type = 1, tp->data_type = onnx_dtype(t);
  memcpy(buf, data, nbytes);
  tp->has_raw_data = 1, tp->raw_data.len = nbytes, tp->raw_data.data = buf;
  return tp->name ? tp : NULL;
}

static int add_init(wr *w, Onnx__TensorProto *tp) {
  if (!tp) return LB_ERR_NOMEM;
  w->inits[w->n_inits++] = tp;
  return 0;
}

static int push_node(wr *w, Onnx__NodeProto *n) {
  if (w->n_nodes == w->cap_nodes) {
    size_t cap = w->cap_nodes ? 2 * w->cap_nodes : 64;
    Onnx__NodeProto **nn = lb_arena_array(&w->a, cap, sizeof *nn);
    if (!nn) return LB_ERR_NOMEM;
    if (w->n_nodes) memcpy(nn, w->nodes, w->n_nodes * sizeof *nn);
    w->nodes = nn, w->cap_nodes = cap;
  }
  w->nodes[w->n_nodes++] = n;
  return 0;
}

/* A node proto with inputs in[0..n_in) (NULL: absent optional input, written as ""). */
static Onnx__NodeProto *node_proto(wr *w, const char *op, const char *name, const char **in,
                                   size_t n_in, const char *out) {
  Onnx__NodeProto *n = lb_arena_alloc(&w->a, sizeof *n);
  char **ins = lb_arena_array(&w->a, n_in ? n_in : 1, sizeof *ins);
  char **outs = lb_arena_array(&w->a, 1, sizeof *outs);
  Onnx__AttributeProto **at = lb_arena_array(&w->a, 8, sizeof *at);
  if (!n || !ins || !outs || !at) return NULL;
  onnx__node_proto__init(n);
  for (size_t k = 0; k < n_in; k++)
    if (!(ins[k] = sdup(w, in[k] ? in[k] : ""))) return NULL;
  if (!(outs[0] = sdup(w, out)) || !(n->name = sdup(w, name)) || !(n->op_type = sdup(w, op)))
    return NULL;
  n->n_input = n_in, n->input = ins, n->n_output = 1, n->output = outs;
  n->attribute = at;
  return push_node(w, n) ? NULL : n;
}

static int attr_ints(wr *w, Onnx__NodeProto *n, const char *name, const int64_t *v, size_t k) {
  Onnx__AttributeProto *a = lb_arena_alloc(&w->a, sizeof *a);
  int64_t *vals = lb_arena_array(&w->a, k ? k : 1, sizeof *vals);
  if (!a || !vals || !(a->name = NULL, 1)) return LB_ERR_NOMEM;
  onnx__attribute_proto__init(a);
  if (!(a->name = sdup(w, name))) return LB_ERR_NOMEM;
  a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  memcpy(vals, v, k * sizeof *vals);
  a->n_ints = k, a->ints = vals;
  n->attribute[n->n_attribute++] = a;
  return 0;
}

static int attr_int(wr *w, Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a = lb_arena_alloc(&w->a, sizeof *a);
  if (!a) return LB_ERR_NOMEM;
  onnx__attribute_proto__init(a);
  if (!(a->name = sdup(w, name))) return LB_ERR_NOMEM;
  a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  a->has_i = 1, a->i = v;
  n->attribute[n->n_attribute++] = a;
  return 0;
}

static int attr_float(wr *w, Onnx__NodeProto *n, const char *name, float v) {
  Onnx__AttributeProto *a = lb_arena_alloc(&w->a, sizeof *a);
  if (!a) return LB_ERR_NOMEM;
  onnx__attribute_proto__init(a);
  if (!(a->name = sdup(w, name))) return LB_ERR_NOMEM;
  a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  a->has_f = 1, a->f = v;
  n->attribute[n->n_attribute++] = a;
  return 0;
}

static int attr_str(wr *w, Onnx__NodeProto *n, const char *name, const char *v) {
  Onnx__AttributeProto *a = lb_arena_alloc(&w->a, sizeof *a);
  if (!a) return LB_ERR_NOMEM;
  onnx__attribute_proto__init(a);
  if (!(a->name = sdup(w, name))) return LB_ERR_NOMEM;
  a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  a->has_s = 1, a->s.len = strlen(v), a->s.data = (uint8_t *)sdup(w, v);
  n->attribute[n->n_attribute++] = a;
  return a->s.data ? 0 : LB_ERR_NOMEM;
}

/* A fresh value name for the unfused epilogue. */
static const char *tmp_name(wr *w, const char *base, const char *what) {
  char buf[300];
  snprintf(buf, sizeof buf, "%.200s/%s_%u", base, what, w->tmp++);
  return sdup(w, buf);
}

/* An i64 (or f32) constant initializer; returns its name. */
static const char *const_init(wr *w, const char *base, lb_dtype t, int rank, const int64_t *dims,
                              const void *data, size_t nbytes) {
  const char *name = tmp_name(w, base, "const");
  if (!name || add_init(w, tensor_proto(w, name, t, rank, dims, data, nbytes))) return NULL;
  return name;
}

/* conv: 1 for Conv (group), 0 for MaxPool, -1 for AveragePool (no dilations in opset 13). */
static int spatial_attrs(wr *w, Onnx__NodeProto *n, const lb_attrs *a, int conv) {
  int ns = a->n_spatial;
  LB_TRY(attr_ints(w, n, "kernel_shape", a->kernel, (size_t)ns));
  LB_TRY(attr_ints(w, n, "strides", a->strides, (size_t)ns));
  LB_TRY(attr_ints(w, n, "pads", a->pads, (size_t)(2 * ns)));
  if (conv >= 0) LB_TRY(attr_ints(w, n, "dilations", a->dilations, (size_t)ns));
  for (int i = 0; conv < 0 && i < ns; i++) /* opset-13 AveragePool has no dilations */
    if (a->dilations[i] != 1)
      return lb_diag_err(w->d, LB_ERR_INPUT, "avg_pool with dilations cannot be written to opset 13");
  if (conv > 0) return attr_int(w, n, "group", a->group);
  return 0;
}

/* Relu or Clip after out0 (the fused activation), writing final. */
static int write_act(wr *w, const lb_node *nd, const char *from, const char *final) {
  const char *in[3] = {from, NULL, NULL};
  if (nd->attr.act == LB_ACT_RELU) return node_proto(w, "Relu", "", in, 1, final) ? 0 : LB_ERR_NOMEM;
  int64_t none[1] = {0};
  in[1] = const_init(w, final, LB_DTYPE_F32, 0, none, &nd->attr.act_min, sizeof(float));
  in[2] = const_init(w, final, LB_DTYPE_F32, 0, none, &nd->attr.act_max, sizeof(float));
  if (!in[1] || !in[2]) return LB_ERR_NOMEM;
  return node_proto(w, "Clip", "", in, 3, final) ? 0 : LB_ERR_NOMEM;
}

static const char *onnx_op_of(lb_op op) {
  switch (op) {
  case LB_OP_CONV: return "Conv"; case LB_OP_GEMM: return "Gemm"; case LB_OP_MATMUL: return "MatMul";
  case LB_OP_ADD: return "Add"; case LB_OP_SUB: return "Sub"; case LB_OP_MUL: return "Mul";
  case LB_OP_DIV: return "Div"; case LB_OP_RELU: return "Relu"; case LB_OP_SIGMOID: return "Sigmoid";
  case LB_OP_TANH: return "Tanh"; case LB_OP_LEAKY_RELU: return "LeakyRelu";
  case LB_OP_SOFTMAX: return "Softmax"; case LB_OP_MAX_POOL: return "MaxPool";
  case LB_OP_AVG_POOL: return "AveragePool"; case LB_OP_GLOBAL_AVG_POOL: return "GlobalAveragePool";
  case LB_OP_CONCAT: return "Concat"; case LB_OP_FLATTEN: return "Flatten";
  case LB_OP_RESHAPE: return "Reshape"; case LB_OP_TRANSPOSE: return "Transpose";
  case LB_OP_IDENTITY: return "Identity"; case LB_OP_CLIP: return "Clip";
  case LB_OP_PAD: return "Pad"; case LB_OP_GATHER: return "Gather";
  case LB_OP_REDUCE_MEAN: return "ReduceMean"; case LB_OP_HARD_SIGMOID: return "HardSigmoid";
  case LB_OP_SQUEEZE: return "Squeeze"; case LB_OP_UNSQUEEZE: return "Unsqueeze";
  case LB_OP_BATCHNORM: return "BatchNormalization";
  case LB_OP_QUANTIZE: return "QuantizeLinear"; case LB_OP_DEQUANTIZE: return "DequantizeLinear";
  default: return NULL;
  }
}

/* Op-specific attributes and extra constant inputs; *n_in may grow (in has room for 4). */
static int op_extras(wr *w, const lb_node *nd, Onnx__NodeProto *n, const char *oname) {
  const lb_attrs *a = &nd->attr;
  const lb_value *y = &w->g->values[nd->out[0]];
  switch (nd->op) {
  case LB_OP_CONV: return spatial_attrs(w, n, a, 1);
  case LB_OP_MAX_POOL: LB_TRY(attr_int(w, n, "ceil_mode", a->ceil_mode)); return spatial_attrs(w, n, a, 0);
  case LB_OP_AVG_POOL:
    LB_TRY(attr_int(w, n, "ceil_mode", a->ceil_mode));
    LB_TRY(attr_int(w, n, "count_include_pad", a->count_include_pad));
    return spatial_attrs(w, n, a, -1);
  case LB_OP_GEMM:
    LB_TRY(attr_int(w, n, "transA", a->trans_a));
    LB_TRY(attr_int(w, n, "transB", a->trans_b));
    LB_TRY(attr_float(w, n, "alpha", a->alpha));
    return attr_float(w, n, "beta", a->beta);
  case LB_OP_LEAKY_RELU: return attr_float(w, n, "alpha", a->alpha);
  case LB_OP_HARD_SIGMOID:
    LB_TRY(attr_float(w, n, "alpha", a->alpha));
    return attr_float(w, n, "beta", a->beta);
  case LB_OP_GATHER: return attr_int(w, n, "axis", a->axis);
  case LB_OP_BATCHNORM: return attr_float(w, n, "epsilon", a->epsilon);
  case LB_OP_REDUCE_MEAN:
    LB_TRY(attr_int(w, n, "keepdims", a->keepdims));
    return a->n_axes ? attr_ints(w, n, "axes", a->axes, (size_t)a->n_axes) : 0;
  case LB_OP_SQUEEZE: case LB_OP_UNSQUEEZE: {
    int64_t d[1] = {a->n_axes};
    const char *ax = const_init(w, oname, LB_DTYPE_I64, 1, d, a->axes, (size_t)a->n_axes * 8);
    if (!ax || !(n->input[1] = sdup(w, ax))) return LB_ERR_NOMEM;
    n->n_input = 2;
    return 0;
  }
  case LB_OP_PAD: {
    static const char *const modes[] = {"constant", "reflect", "edge"};
    int64_t d[1] = {2 * (int64_t)w->g->values[nd->in[0]].rank}, none[1] = {0};
    const char *pads = const_init(w, oname, LB_DTYPE_I64, 1, d, a->pads, (size_t)d[0] * 8);
    const char *val = const_init(w, oname, LB_DTYPE_F32, 0, none, &a->pad_value, 4);
    if (!pads || !val || !(n->input[1] = sdup(w, pads)) || !(n->input[2] = sdup(w, val)))
      return LB_ERR_NOMEM;
    n->n_input = 3;
    return attr_str(w, n, "mode", modes[a->pad_mode]);
  }
  case LB_OP_SOFTMAX: case LB_OP_CONCAT: case LB_OP_FLATTEN: return attr_int(w, n, "axis", a->axis);
  case LB_OP_QUANTIZE: case LB_OP_DEQUANTIZE: return attr_int(w, n, "axis", a->axis);
  case LB_OP_TRANSPOSE: return attr_ints(w, n, "perm", a->axes, (size_t)a->n_axes);
  case LB_OP_RESHAPE: {
    int64_t d[1] = {y->rank};
    const char *s = const_init(w, oname, LB_DTYPE_I64, 1, d, y->dims, (size_t)y->rank * 8);
    if (!s || !(n->input[1] = sdup(w, s))) return LB_ERR_NOMEM;
    n->n_input = 2;
    return 0;
  }
  case LB_OP_CLIP: {
    int64_t none[1] = {0};
    const char *lo = const_init(w, oname, LB_DTYPE_F32, 0, none, &a->clip_min, 4);
    const char *hi = const_init(w, oname, LB_DTYPE_F32, 0, none, &a->clip_max, 4);
    if (!lo || !hi || !(n->input[1] = sdup(w, lo)) || !(n->input[2] = sdup(w, hi)))
      return LB_ERR_NOMEM;
    n->n_input = 3;
    return 0;
  }
  default: return 0;
  }
}

static int write_node(wr *w, uint32_t id) {
  const lb_node *nd = &w->g->nodes[id];
  const char *op = onnx_op_of(nd->op), *in[4] = {NULL, NULL, NULL, NULL};
  if (!op || (nd->op == LB_OP_SOFTMAX && nd->attr.legacy_2d))
    return lb_diag_err(w->d, LB_ERR_INPUT, "node \"%s\": op %s cannot be written to ONNX",
                       nd->name, lb_op_get(nd->op)->name);
  const char *final = w->g->values[nd->out[0]].name;
  int res = (nd->op == LB_OP_CONV || nd->op == LB_OP_GEMM) && nd->n_in > 3 && nd->in[3] != LB_NONE;
  int act = nd->attr.act != LB_ACT_NONE;
  uint32_t n_main = res ? 3 : nd->n_in;
  for (uint32_t k = 0; k < n_main && k < 3; k++)
    in[k] = nd->in[k] == LB_NONE ? NULL : w->g->values[nd->in[k]].name;
  const char *o1 = res || act ? tmp_name(w, final, "pre") : final;
  size_t nin = n_main;
  while (nin > 0 && !in[nin - 1]) nin--;
  /* ops whose ONNX form takes attributes as constant inputs get the slots now */
  int extra = nd->op == LB_OP_RESHAPE || nd->op == LB_OP_CLIP || nd->op == LB_OP_PAD ||
              nd->op == LB_OP_SQUEEZE || nd->op == LB_OP_UNSQUEEZE;
  Onnx__NodeProto *n = o1 ? node_proto(w, op, nd->name, in, extra ? 3 : nin, o1) : NULL;
  if (!n) return LB_ERR_NOMEM;
  if (extra) n->n_input = 1;
  LB_TRY(op_extras(w, nd, n, final));
  const char *o2 = o1;
  if (res) {
    const char *ai[2] = {o1, w->g->values[nd->in[3]].name};
    o2 = act ? tmp_name(w, final, "sum") : final;
    if (!o2 || !node_proto(w, "Add", "", ai, 2, o2)) return LB_ERR_NOMEM;
  }
  return act ? write_act(w, nd, o2, final) : 0;
}

static Onnx__ValueInfoProto *value_info(wr *w, const lb_value *v) {
  Onnx__ValueInfoProto *vi = lb_arena_alloc(&w->a, sizeof *vi);
  Onnx__TypeProto *tp = lb_arena_alloc(&w->a, sizeof *tp);
  Onnx__TypeProto__Tensor *tt = lb_arena_alloc(&w->a, sizeof *tt);
  Onnx__TensorShapeProto *sh = lb_arena_alloc(&w->a, sizeof *sh);
  Onnx__TensorShapeProto__Dimension **dims = lb_arena_array(&w->a, LB_MAX_RANK, sizeof *dims);
  if (!vi || !tp || !tt || !sh || !dims) return NULL;
  onnx__value_info_proto__init(vi), onnx__type_proto__init(tp);
  onnx__type_proto__tensor__init(tt), onnx__tensor_shape_proto__init(sh);
  for (int i = 0; i < v->rank; i++) {
    if (!(dims[i] = lb_arena_alloc(&w->a, sizeof **dims))) return NULL;
    onnx__tensor_shape_proto__dimension__init(dims[i]);
    dims[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    dims[i]->dim_value = v->dims[i];
  }
  sh->n_dim = (size_t)v->rank, sh->dim = dims;
  tt->has_elem_type = 1, tt->elem_type = onnx_dtype(v->dtype), tt->shape = sh;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
  vi->name = sdup(w, v->name), vi->type = tp;
  return vi->name ? vi : NULL;
}

static int io_list(wr *w, const uint32_t *ids, uint32_t n, Onnx__ValueInfoProto ***out) {
  *out = lb_arena_array(&w->a, n ? n : 1, sizeof **out);
  if (!*out) return LB_ERR_NOMEM;
  for (uint32_t i = 0; i < n; i++)
    if (!((*out)[i] = value_info(w, &w->g->values[ids[i]]))) return LB_ERR_NOMEM;
  return 0;
}

static int build_graph(wr *w, Onnx__GraphProto *gp) {
  const lb_graph *g = w->g;
  w->inits = lb_arena_array(&w->a, g->n_values + 4 * (size_t)g->n_nodes + 1, sizeof *w->inits);
  if (!w->inits) return LB_ERR_NOMEM;
  for (uint32_t v = 0; v < g->n_values; v++) {
    const lb_value *val = &g->values[v];
    if (!val->data) continue;
    if (onnx_dtype(val->dtype) < 0)
      return lb_diag_err(w->d, LB_ERR_INPUT, "constant \"%s\": dtype %s cannot be written",
                         val->name, lb_dtype_name(val->dtype));
    LB_TRY(add_init(w, tensor_proto(w, val->name, val->dtype, val->rank, val->dims, val->data,
                                    val->nbytes)));
  }
  for (uint32_t n = 0; n < g->n_nodes; n++) LB_TRY(write_node(w, n));
  onnx__graph_proto__init(gp);
  gp->name = sdup(w, g->name && g->name[0] ? g->name : "lowbit");
  gp->n_node = w->n_nodes, gp->node = w->nodes;
  gp->n_initializer = w->n_inits, gp->initializer = w->inits;
  LB_TRY(io_list(w, g->inputs, g->n_inputs, &gp->input));
  LB_TRY(io_list(w, g->outputs, g->n_outputs, &gp->output));
  gp->n_input = g->n_inputs, gp->n_output = g->n_outputs;
  return gp->name ? 0 : LB_ERR_NOMEM;
}

static int write_file(const char *path, const void *buf, size_t len, lb_diag *d) {
  size_t pl = strlen(path);
  char *tmp = lb_malloc(pl + 24);
  if (!tmp) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  snprintf(tmp, pl + 24, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  int ok = f && fwrite(buf, 1, len, f) == len;
  if (f && fclose(f) != 0) ok = 0;
  if (ok && rename(tmp, path) != 0) ok = 0;
  if (!ok) remove(tmp);
  lb_free(tmp);
  return ok ? 0 : lb_diag_err(d, LB_ERR_INPUT, "%s: cannot write the model", path);
}

int lb_qdq_write(const lb_graph *g, const char *path, lb_diag *d) {
  wr w = {.g = g, .d = d};
  lb_arena_init(&w.a);
  Onnx__ModelProto m;
  Onnx__GraphProto gp;
  Onnx__OperatorSetIdProto ops, *opsp = &ops;
  onnx__model_proto__init(&m);
  onnx__operator_set_id_proto__init(&ops);
  ops.domain = "", ops.has_version = 1, ops.version = 13;
  int rc = build_graph(&w, &gp);
  if (!rc) {
    m.has_ir_version = 1, m.ir_version = 7;
    m.n_opset_import = 1, m.opset_import = &opsp;
    m.producer_name = "lowbit", m.graph = &gp;
    size_t len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = lb_malloc(len ? len : 1);
    if (!buf) rc = LB_ERR_NOMEM;
    else {
      onnx__model_proto__pack(&m, buf);
      rc = write_file(path, buf, len, d);
      lb_free(buf);
    }
  }
  if (rc == LB_ERR_NOMEM) lb_diag_err(d, rc, "out of memory");
  lb_arena_free(&w.a);
  return rc;
}
