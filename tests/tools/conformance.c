/* ONNX backend test runner: imports each DIR/test_* /model.onnx, runs the reference
 * interpreter on every test_data_set_N and compares with output_N.pb (floats: numpy.isclose with
 * rtol 1e-3, atol 1e-7, NaN equals NaN; other dtypes exactly). A test using an op outside lowbit's
 * ONNX op list is n/a; one named in the skip list is skipped; every other test must pass.
 * lowbit compiles static graphs, so graph inputs that feed a must-be-constant operand (Reshape's
 * shape, Clip's bounds, Pad's pads, ...) are turned into initializers holding that data set's value.
 * -e passes / -e jit run the graph after the fp32 passes / JIT-compiled for the host instead.
 * -m points at models upgraded to a newer opset (tools/make_models.py) that replace the tests' own. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx.h"
#include "onnx.pb-c.h"
#include "passes.h"
#include "spec.h"
#include "target.h"

/* The ONNX op types lowbit imports (the project's op list; tools/make_models.py has a copy). */
static const char *const supported_ops[] = {
    "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Clip",
    "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Softmax", "MaxPool", "AveragePool",
    "GlobalAveragePool", "BatchNormalization", "Concat", "Flatten", "Reshape", "Transpose",
    "Squeeze", "Unsqueeze", "Pad", "Gather", "Identity", "Dropout", "Constant", "Shape",
    "ReduceMean", "QuantizeLinear", "DequantizeLinear"};

/* Operands that a static-graph compiler needs as constants.
 *   op type            first input index that must be constant (all later ones too) */
static const struct {
  const char *op;
  int first;
} const_operands[] = {
    {"Reshape", 1},        {"Squeeze", 1},         {"Unsqueeze", 1}, {"Pad", 1},
    {"Clip", 1},           {"Dropout", 1},         {"ReduceMean", 1}, {"QuantizeLinear", 1},
    {"DequantizeLinear", 1},
};

#define RTOL 1e-3
#define ATOL 1e-7
#define MAX_IO 64

/* Results; R_REFUSED: the engine (JIT) refused the graph with LB_ERR_INPUT, counted apart. */
enum { R_PASS, R_FAIL, R_SKIP, R_NA, R_REFUSED };

/* What executes the imported graph: the interpreter, the interpreter after the fp32 passes
 * (fold_batchnorm, fuse), or the LLVM JIT for the host after those passes. */
enum { E_INTERP, E_PASSES, E_JIT, E_COUNT };
static const char *const engine_names[] = {"interp", "passes", "jit"};
_Static_assert(sizeof engine_names / sizeof *engine_names == E_COUNT, "one name per engine");

typedef struct {
  char **names;
  size_t n;
} skiplist;

typedef struct {
  const char *dir;   /* test directory */
  const char *name;  /* test name (last path component) */
  char model_path[4200]; /* dir/model.onnx, or MODEL_DIR/name.onnx when -m has one */
  Onnx__ModelProto *model;
  void *model_buf;
  size_t model_len;
  /* graph inputs that are not initializers, in order: input_K.pb is real_in[K] */
  const char *real_in[MAX_IO];
  int n_real_in;
  int frozen[MAX_IO]; /* real_in[K] becomes an initializer */
  int n_frozen;
  char why[2048];     /* the FAIL reason */
} test_case;

static int verbose, run_skipped, engine = E_INTERP;
static const char *model_dir; /* -m: upgraded models that replace the tests' own */
static lb_spec *host_spec; /* E_JIT */

/* ---- files ---------------------------------------------------------------------------- */

static void *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  void *buf = NULL;
  long n = -1;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
      free(buf);
      buf = NULL;
    }
  }
  fclose(f);
  *len = n > 0 ? (size_t)n : 0;
  return buf;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Skip list: one "test_name  justification" per line; '#' starts a comment line. */
static int skiplist_load(const char *path, skiplist *s) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "%s: cannot open skip list\n", path);
    return 2;
  }
  char line[1024];
  int lineno = 0, rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    char name[256], rest[1024];
    if (line[0] == '#' || sscanf(line, "%255s", name) != 1) continue;
    if (sscanf(line, "%*s %1023[^\n]", rest) != 1) {
      fprintf(stderr, "%s:%d: skip entry \"%s\" needs a justification\n", path, lineno, name);
      rc = 2;
      break;
    }
    char **grown = realloc(s->names, (s->n + 1) * sizeof *grown);
    if (!grown || !(grown[s->n] = strdup(name))) rc = 1;
    if (grown) s->names = grown;
    if (rc == 0) s->n++;
  }
  fclose(f);
  return rc;
}

static int skiplist_has(const skiplist *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->names[i], name) == 0) return 1;
  return 0;
}

/* ---- model inspection ------------------------------------------------------------------ */

static int op_supported(const Onnx__NodeProto *n) {
  if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx") != 0) return 0;
  for (size_t i = 0; i < sizeof supported_ops / sizeof *supported_ops; i++)
    if (strcmp(n->op_type, supported_ops[i]) == 0) return 1;
  return 0;
}

static int is_initializer(const Onnx__GraphProto *g, const char *name) {
  for (size_t i = 0; i < g->n_initializer; i++)
    if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0) return 1;
  return 0;
}

/* Marks the real inputs that feed a must-be-constant operand. */
static void find_frozen(test_case *t) {
  const Onnx__GraphProto *g = t->model->graph;
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    for (size_t r = 0; r < sizeof const_operands / sizeof *const_operands; r++) {
      if (strcmp(n->op_type, const_operands[r].op) != 0) continue;
      for (size_t k = (size_t)const_operands[r].first; k < n->n_input; k++)
        for (int j = 0; j < t->n_real_in; j++)
          if (strcmp(n->input[k], t->real_in[j]) == 0 && !t->frozen[j]) {
            t->frozen[j] = 1;
            t->n_frozen++;
          }
    }
  }
}

/* Reads model.onnx; returns R_NA if an op is outside our list, R_FAIL on a broken file. */
static int inspect_model(test_case *t) {
  t->model_buf = read_file(t->model_path, &t->model_len);
  if (t->model_buf)
    t->model = onnx__model_proto__unpack(NULL, t->model_len, t->model_buf);
  if (!t->model || !t->model->graph) {
    snprintf(t->why, sizeof t->why, "cannot read the model");
    return R_FAIL;
  }
  const Onnx__GraphProto *g = t->model->graph;
  for (size_t i = 0; i < g->n_node; i++)
    if (!op_supported(g->node[i])) return R_NA;
  for (size_t i = 0; i < g->n_input; i++) {
    if (is_initializer(g, g->input[i]->name)) continue;
    if (t->n_real_in == MAX_IO) {
      snprintf(t->why, sizeof t->why, "more than %d inputs", MAX_IO);
      return R_FAIL;
    }
    t->real_in[t->n_real_in++] = g->input[i]->name;
  }
  find_frozen(t);
  return R_PASS;
}

/* ---- import ---------------------------------------------------------------------------- */

/* One data set's values for the frozen inputs, as TensorProtos renamed after those inputs. */
typedef struct {
  Onnx__TensorProto *tp[MAX_IO];
  char *saved_name[MAX_IO]; /* restored before freeing: protobuf-c owns the original */
  size_t n;
} frozen_set;

static void frozen_free(frozen_set *f) {
  for (size_t i = 0; i < f->n; i++) {
    f->tp[i]->name = f->saved_name[i];
    onnx__tensor_proto__free_unpacked(f->tp[i], NULL);
  }
  f->n = 0;
}

static int frozen_read(const test_case *t, const char *ds, frozen_set *f, lb_diag *diag) {
  for (int k = 0; k < t->n_real_in; k++) {
    if (!t->frozen[k]) continue;
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/%s/input_%d.pb", t->dir, ds, k);
    void *raw = read_file(path, &len);
    Onnx__TensorProto *tp = raw ? onnx__tensor_proto__unpack(NULL, len, raw) : NULL;
    free(raw);
    if (!tp) return lb_diag_err(diag, LB_ERR_INPUT, "%s: cannot read the tensor", path);
    f->saved_name[f->n] = tp->name;
    tp->name = (char *)t->real_in[k];
    f->tp[f->n++] = tp;
  }
  return 0;
}

/* Serializes the model with f's tensors as extra initializers and without the inputs they
 * replace. The message is patched in place and restored, so it can be freed normally. */
static uint8_t *pack_with(test_case *t, const frozen_set *f, size_t *len) {
  Onnx__GraphProto *gp = t->model->graph;
  size_t n_init = gp->n_initializer, n_in = gp->n_input, m = 0;
  Onnx__TensorProto **inits = calloc(n_init + f->n + 1, sizeof *inits), **old_inits = gp->initializer;
  Onnx__ValueInfoProto **ins = calloc(n_in + 1, sizeof *ins), **old_ins = gp->input;
  uint8_t *buf = NULL;
  if (inits && ins) {
    if (n_init) memcpy(inits, old_inits, n_init * sizeof *inits);
    memcpy(inits + n_init, f->tp, f->n * sizeof *inits);
    for (size_t i = 0; i < n_in; i++) {
      int keep = 1;
      for (int k = 0; k < t->n_real_in; k++)
        if (t->frozen[k] && strcmp(old_ins[i]->name, t->real_in[k]) == 0) keep = 0;
      if (keep) ins[m++] = old_ins[i];
    }
    gp->initializer = inits, gp->n_initializer = n_init + f->n;
    gp->input = ins, gp->n_input = m;
    *len = onnx__model_proto__get_packed_size(t->model);
    if ((buf = malloc(*len ? *len : 1))) onnx__model_proto__pack(t->model, buf);
    gp->initializer = old_inits, gp->n_initializer = n_init;
    gp->input = old_ins, gp->n_input = n_in;
  }
  free(inits);
  free(ins);
  return buf;
}

/* Imports the model with this data set's frozen inputs turned into initializers. */
static int import_frozen(test_case *t, const char *ds, lb_graph **g, lb_diag *diag) {
  frozen_set f = {.n = 0};
  int rc = frozen_read(t, ds, &f, diag);
  if (rc == 0) {
    size_t len = 0;
    uint8_t *buf = pack_with(t, &f, &len);
    rc = buf ? lb_onnx_load_buffer(buf, len, t->model_path, g, diag)
             : lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
    free(buf);
  }
  frozen_free(&f);
  return rc;
}

/* ---- comparison ------------------------------------------------------------------------ */

static double as_double(const lb_tensor *t, int64_t i) {
  return t->dtype == LB_DTYPE_F64 ? ((const double *)t->data)[i] : ((const float *)t->data)[i];
}

/* Integer and bool elements, for messages (comparison is bytewise). */
static int64_t as_int(const lb_tensor *t, int64_t i) {
  switch (t->dtype) {
  case LB_DTYPE_I64: return ((const int64_t *)t->data)[i];
  case LB_DTYPE_I32: return ((const int32_t *)t->data)[i];
  case LB_DTYPE_I16: return ((const int16_t *)t->data)[i];
  case LB_DTYPE_I8: return ((const int8_t *)t->data)[i];
  case LB_DTYPE_U8:
  case LB_DTYPE_BOOL: return ((const uint8_t *)t->data)[i];
  default: return 0;
  }
}

static int close_enough(double got, double exp) {
  if (exp != exp) return got != got;
  if (got != got) return 0;
  if (got == exp) return 1; /* also infinities of the same sign */
  double d = got > exp ? got - exp : exp - got;
  return d <= ATOL + RTOL * (exp < 0 ? -exp : exp);
}

static void fmt_shape(const lb_tensor *t, char *s, size_t n) {
  int o = snprintf(s, n, "[");
  for (int i = 0; i < t->rank && o > 0 && (size_t)o < n; i++)
    o += snprintf(s + o, n - (size_t)o, "%s%lld", i ? "," : "", (long long)t->dims[i]);
  if (o > 0 && (size_t)o < n) snprintf(s + o, n - (size_t)o, "]");
}

/* Returns 0 if got matches exp; else writes the first mismatch into why. */
static int compare(const lb_tensor *got, const lb_tensor *exp, char *why, size_t n) {
  char gs[128], es[128];
  fmt_shape(got, gs, sizeof gs);
  fmt_shape(exp, es, sizeof es);
  if (got->dtype != exp->dtype)
    return snprintf(why, n, "dtype %s, expected %s", lb_dtype_name(got->dtype),
                    lb_dtype_name(exp->dtype)), 1;
  if (strcmp(gs, es) != 0) return snprintf(why, n, "shape %s, expected %s", gs, es), 1;
  if (lb_dtype_bits(exp->dtype) < 8)
    return snprintf(why, n, "test data of dtype %s", lb_dtype_name(exp->dtype)), 1;
  int64_t count = lb_tensor_numel(exp), bad = 0, first = -1;
  int fl = exp->dtype == LB_DTYPE_F32 || exp->dtype == LB_DTYPE_F64;
  size_t esz = fl ? 0 : lb_dtype_bytes(exp->dtype, 1);
  for (int64_t i = 0; i < count; i++) {
    int ok = fl ? close_enough(as_double(got, i), as_double(exp, i))
                : memcmp((const char *)got->data + i * esz, (const char *)exp->data + i * esz,
                         esz) == 0;
    if (!ok && bad++ == 0) first = i;
  }
  if (!bad) return 0;
  if (fl)
    snprintf(why, n, "%lld of %lld elements differ; first at [%lld]: got %.9g, expected %.9g",
             (long long)bad, (long long)count, (long long)first, as_double(got, first),
             as_double(exp, first));
  else
    snprintf(why, n, "%lld of %lld elements differ; first at [%lld]: got %lld, expected %lld (%s)",
             (long long)bad, (long long)count, (long long)first, (long long)as_int(got, first),
             (long long)as_int(exp, first), lb_dtype_name(exp->dtype));
  return 1;
}

/* ---- running --------------------------------------------------------------------------- */

static int real_index(const test_case *t, const char *name) {
  for (int k = 0; k < t->n_real_in; k++)
    if (strcmp(t->real_in[k], name) == 0) return k;
  return -1;
}

static void free_tensors(lb_tensor *ts, int n) {
  for (int i = 0; i < n; i++) lb_free(ts[i].data);
}

/* Loads the inputs g wants (matched to input_K.pb by name), runs, compares every output. */
static int run_data_set(test_case *t, const char *ds, const lb_graph *g, const lb_jit *jit) {
  lb_tensor in[MAX_IO] = {0}, out[MAX_IO] = {0}, exp = {0};
  lb_diag diag;
  lb_diag_clear(&diag);
  int res = R_FAIL, n_in = 0;
  char path[4096];
  if (g->n_inputs > MAX_IO || g->n_outputs > MAX_IO) {
    snprintf(t->why, sizeof t->why, "%s: too many inputs or outputs", ds);
    return R_FAIL;
  }
  for (; n_in < (int)g->n_inputs; n_in++) {
    const char *name = g->values[g->inputs[n_in]].name;
    int k = real_index(t, name);
    if (k < 0) {
      snprintf(t->why, sizeof t->why, "graph input \"%s\" is not a model input", name);
      goto done;
    }
    snprintf(path, sizeof path, "%s/%s/input_%d.pb", t->dir, ds, k);
    if (lb_onnx_load_tensor(path, &in[n_in], &diag) != 0) {
      snprintf(t->why, sizeof t->why, "%s", diag.msg);
      goto done;
    }
  }
  if ((jit ? lb_jit_run_tensors(jit, g, in, out, &diag) : lb_interp_run(g, in, out, &diag)) != 0) {
    snprintf(t->why, sizeof t->why, "%s: run: %s", ds, diag.msg);
    goto done;
  }
  for (uint32_t j = 0; j < g->n_outputs; j++) {
    snprintf(path, sizeof path, "%s/%s/output_%u.pb", t->dir, ds, j);
    if (lb_onnx_load_tensor(path, &exp, &diag) != 0) {
      snprintf(t->why, sizeof t->why, "%s", diag.msg);
      goto done;
    }
    char why[1024];
    int bad = compare(&out[j], &exp, why, sizeof why);
    lb_free(exp.data);
    exp.data = NULL;
    if (bad) {
      snprintf(t->why, sizeof t->why, "%s output %u \"%s\": %s", ds, j,
               g->values[g->outputs[j]].name, why);
      goto done;
    }
  }
  res = R_PASS;
done:
  free_tensors(in, n_in);
  free_tensors(out, (int)g->n_outputs);
  return res;
}

static int count_outputs_on_disk(const char *dir, const char *ds) {
  char path[4096];
  int n = 0;
  for (;; n++) {
    snprintf(path, sizeof path, "%s/%s/output_%d.pb", dir, ds, n);
    if (!exists(path)) return n;
  }
}

/* Readies an imported graph for the engine: runs the fp32 passes, JIT-compiles. */
static int prepare(test_case *t, lb_graph *g, lb_jit **jit) {
  lb_diag diag;
  lb_diag_clear(&diag);
  if (engine == E_INTERP) return R_PASS;
  if (lb_pass_prepare_fp32(g, &diag) != 0) {
    snprintf(t->why, sizeof t->why, "fp32 passes: %s", diag.msg);
    return R_FAIL;
  }
  if (engine != E_JIT) return R_PASS;
  int rc = lb_jit_compile(g, host_spec, NULL, jit, &diag);
  if (rc == 0) return R_PASS;
  snprintf(t->why, sizeof t->why, "jit: %s", diag.msg);
  return rc == LB_ERR_INPUT ? R_REFUSED : R_FAIL;
}

/* Runs every data set; the model is imported once, or per data set when inputs are frozen. */
static int run_case(test_case *t) {
  char ds[64];
  lb_graph *g = NULL;
  lb_jit *jit = NULL;
  lb_diag diag;
  int res = R_PASS, n_ds = 0;
  for (;; n_ds++) {
    snprintf(ds, sizeof ds, "test_data_set_%d", n_ds);
    char dpath[4200];
    snprintf(dpath, sizeof dpath, "%s/%s", t->dir, ds);
    if (!exists(dpath)) break;
    lb_diag_clear(&diag);
    if (!g) {
      int rc = t->n_frozen ? import_frozen(t, ds, &g, &diag) : lb_onnx_load(t->model_path, &g, &diag);
      if (rc != 0) {
        snprintf(t->why, sizeof t->why, "import: %s", diag.msg);
        return R_FAIL;
      }
      res = prepare(t, g, &jit);
    }
    if (res != R_PASS) {
      /* prepare failed or refused: t->why says why */
    } else if ((int)g->n_outputs != count_outputs_on_disk(t->dir, ds)) {
      snprintf(t->why, sizeof t->why, "%s: graph has %u outputs, test data has %d", ds,
               g->n_outputs, count_outputs_on_disk(t->dir, ds));
      res = R_FAIL;
    } else {
      res = run_data_set(t, ds, g, jit);
    }
    if (t->n_frozen || res != R_PASS) {
      lb_jit_free(jit);
      lb_graph_free(g);
      jit = NULL;
      g = NULL;
    }
    if (res != R_PASS) return res;
  }
  lb_jit_free(jit);
  lb_graph_free(g);
  if (n_ds == 0) {
    snprintf(t->why, sizeof t->why, "no test_data_set_* directories");
    return R_FAIL;
  }
  return R_PASS;
}

/* A model with an op outside our list must be refused cleanly: LB_ERR_INPUT and a message
 * (or imported, if the importer has learnt the op); anything else is a failure. */
static int check_rejected(test_case *t) {
  lb_graph *g = NULL;
  lb_diag diag;
  lb_diag_clear(&diag);
  int rc = lb_onnx_load(t->model_path, &g, &diag);
  lb_graph_free(g);
  if (rc == 0 || (rc == LB_ERR_INPUT && diag.set && diag.msg[0])) return R_NA;
  snprintf(t->why, sizeof t->why, "unsupported op: import returned %d, not %d with a message (%s)",
           rc, LB_ERR_INPUT, diag.msg);
  return R_FAIL;
}

/* With -a, skip-listed tests run too and one that passes is named (its entry is stale). */
static int run_test(const char *root, const char *name, const skiplist *skip) {
  int skipped = skiplist_has(skip, name);
  if (skipped && !run_skipped) return R_SKIP;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", root, name);
  test_case t = {.dir = dir, .name = name};
  snprintf(t.model_path, sizeof t.model_path, "%s/%s.onnx", model_dir ? model_dir : "", name);
  if (!model_dir || !exists(t.model_path))
    snprintf(t.model_path, sizeof t.model_path, "%s/model.onnx", dir);
  int res = inspect_model(&t);
  if (res == R_PASS) res = run_case(&t);
  else if (res == R_NA) res = check_rejected(&t);
  if (skipped) {
    if (res == R_PASS) printf("XPASS %s: skip-listed but passes\n", name);
    if (res == R_FAIL && verbose) printf("skip %s: %s\n", name, t.why);
    res = R_SKIP;
  }
  if (res == R_FAIL) printf("FAIL %s: %s\n", name, t.why);
  if (res == R_PASS && verbose) printf("pass %s%s\n", name, t.n_frozen ? " (frozen inputs)" : "");
  if (res == R_REFUSED && verbose) printf("refused %s: %s\n", name, t.why);
  if (t.model) onnx__model_proto__free_unpacked(t.model, NULL);
  free(t.model_buf);
  return res;
}

static int is_test_dir(const struct dirent *e) { return strncmp(e->d_name, "test_", 5) == 0; }

static int usage(void) {
  fprintf(stderr, "usage: conformance [-v] [-a] [-k SUBSTRING] [-e ENGINE] [-m MODEL_DIR] "
                  "[NODE_TEST_DIR [SKIP_LIST]]\n"
                  "  -v: name passing tests; -a: run skip-listed tests too, name those that pass;\n"
                  "  -k: only tests whose name contains SUBSTRING;\n"
                  "  -e: interp (default), passes (interp after the fp32 passes), jit (host);\n"
                  "  -m: MODEL_DIR/TEST.onnx, where present, replaces TEST/model.onnx\n"
                  "  defaults: /usr/share/libonnx-testdata/data/node, no skip list\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *root = "/usr/share/libonnx-testdata/data/node", *skip_path = NULL, *filter = NULL;
  int pos = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0) verbose = 1;
    else if (strcmp(argv[i], "-a") == 0) run_skipped = 1;
    else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) filter = argv[++i];
    else if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) model_dir = argv[++i];
    else if (strcmp(argv[i], "-e") == 0 && i + 1 < argc) {
      const char *e = argv[++i];
      for (engine = 0; engine < E_COUNT && strcmp(e, engine_names[engine]) != 0; engine++)
        continue;
      if (engine == E_COUNT) return usage();
    }
    else if (argv[i][0] == '-') return usage();
    else if (pos == 0) root = argv[i], pos++;
    else if (pos == 1) skip_path = argv[i], pos++;
    else return usage();
  }
  skiplist skip = {0};
  if (skip_path && skiplist_load(skip_path, &skip) != 0) return 2;
  lb_diag diag;
  lb_diag_clear(&diag);
  if (engine == E_JIT && lb_spec_load("host", &host_spec, &diag) != 0) {
    fprintf(stderr, "conformance: host spec: %s\n", diag.msg);
    return 2;
  }
  struct dirent **list;
  int n = scandir(root, &list, is_test_dir, alphasort);
  if (n < 0) {
    fprintf(stderr, "%s: cannot list test directories\n", root);
    return 2;
  }
  int count[5] = {0};
  for (int i = 0; i < n; i++) {
    if (!filter || strstr(list[i]->d_name, filter)) count[run_test(root, list[i]->d_name, &skip)]++;
    free(list[i]);
  }
  free(list);
  for (size_t i = 0; i < skip.n; i++) free(skip.names[i]);
  free(skip.names);
  lb_spec_free(host_spec);
  printf("pass %d fail %d skip %d n/a %d", count[R_PASS], count[R_FAIL], count[R_SKIP],
         count[R_NA]);
  if (engine != E_INTERP) printf(" (engine %s, refused %d)", engine_names[engine], count[R_REFUSED]);
  printf("\n");
  return count[R_FAIL] ? 1 : 0;
}
