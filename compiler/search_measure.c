/* Measured costs for `lowbit search --measure`: realizes and JIT-compiles assignments of the
 * search, times whole plans (the front's latency column) and each layer variant through the
 * per-step entry points of profiled plans (one plan per precision: every layer that has it
 * takes it, the others stay int8; fp32 layers alone; the fp32 model whole), and keeps the
 * figures in a cache file keyed by spec, model, code, layer and precision. Invariant: the
 * cache file is only ever replaced whole (temporary file + rename); a cache that does not
 * parse is ignored with a warning. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "search.h"
#include "target.h"

/* ---- plans and JIT ------------------------------------------------------------------------ */

/* A fresh plan for an assignment: annotate, the calibrated ranges of the int8 plan, then the
 * search's choices (lb_search_apply re-annotates and sets the parameters). */
static int plan_for(const lb_search_env *e, const unsigned char *choice, lb_qplan **out,
                    lb_diag *d) {
  lb_qplan *p = lb_qplan_new(e->g);
  if (!p) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  int rc = lb_quant_annotate(e->g, e->spec, p, d);
  for (uint32_t v = 0; !rc && v < e->g->n_values; v++)
    p->v[v].lo = e->p->v[v].lo, p->v[v].hi = e->p->v[v].hi, p->v[v].ranged = e->p->v[v].ranged;
  if (!rc) rc = lb_search_apply(e->s, choice, p, d);
  if (rc) lb_qplan_free(p);
  else *out = p;
  return rc;
}

int lb_search_jit(const lb_search_env *e, const unsigned char *choice, int profile, lb_graph **q,
                  struct lb_jit **j, lb_diag *d) {
  lb_qplan *p = NULL;
  lb_codegen_opts co = {NULL, profile};
  *q = NULL, *j = NULL;
  int rc = plan_for(e, choice, &p, d);
  if (!rc) rc = lb_quant_realize(e->g, p, LB_REALIZE_INT, q, d);
  if (!rc) rc = lb_jit_compile(*q, e->spec, &co, j, d);
  lb_qplan_free(p);
  if (rc) lb_graph_free(*q), *q = NULL;
  return rc;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double thread_cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Buffers to run a JIT'd graph on sample 0 of the evaluation set. */
typedef struct bufs {
  void *ws, *outs[8];
  const void *ins[8];
} bufs;

static void bufs_free(bufs *b) {
  for (int k = 0; k < 8; k++) free(b->outs[k]);
  free(b->ws);
}

static int bufs_make(const lb_search_env *e, const lb_graph *g, const struct lb_jit *j, bufs *b,
                     lb_diag *d) {
  memset(b, 0, sizeof *b);
  if (g->n_outputs > 8 || g->n_inputs > 8)
    return lb_diag_err(d, LB_ERR_INPUT, "--measure: needs at most 8 inputs and 8 outputs");
  size_t ws = lb_jit_workspace_size(j);
  b->ws = aligned_alloc(64, (ws + 64) / 64 * 64);
  for (uint32_t k = 0; k < g->n_inputs; k++) b->ins[k] = e->x[k].data; /* sample 0 of each */
  int rc = b->ws ? 0 : LB_ERR_NOMEM;
  for (uint32_t k = 0; !rc && k < g->n_outputs; k++) {
    const lb_value *v = &g->values[g->outputs[k]];
    if (!(b->outs[k] = calloc(1, lb_dtype_bytes(v->dtype, lb_value_numel(v)) + 1))) rc = LB_ERR_NOMEM;
  }
  if (rc) bufs_free(b), lb_diag_err(d, rc, "out of memory");
  return rc;
}

static double wall(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Runs per sample: doubled from 1 until a batch lasts min_s of thread CPU time (at most
 * 2^16), so the two clock reads (syscalls, ~0.1-0.2 us each) and the loop stay under a few
 * percent of a sample even for a sub-microsecond model. 0, or -1 when a run fails. */
static long batch_for(lb_run_fn run, const void *const *in, void *const *out, void *ws,
                      double min_s) {
  long r = 1;
  for (;;) {
    double c0 = thread_cpu();
    for (long k = 0; k < r; k++)
      if (run(in, out, ws) != 0) return -1;
    if (thread_cpu() - c0 >= min_s || r >= 65536) return r;
    r *= 2;
  }
}

long lb_time_runs(lb_run_fn run, const void *const *in, void *const *out, void *ws, long warm,
                  long samples, double min_sample_s, double *cpu, double *wall_s) {
  for (long i = 0; i < warm; i++)
    if (run(in, out, ws) != 0) return -1;
  long r = batch_for(run, in, out, ws, min_sample_s);
  for (long i = 0; r > 0 && i < samples; i++) {
    double t0 = wall(), c0 = thread_cpu();
    for (long k = 0; k < r; k++)
      if (run(in, out, ws) != 0) return -1;
    cpu[i] = (thread_cpu() - c0) / (double)r;
    if (wall_s) wall_s[i] = (wall() - t0) / (double)r;
  }
  return r;
}

/* Median thread CPU microseconds per run over `runs` samples of batched runs (lb_time_runs:
 * a sample lasts >= 50 us) after `warm` runs. */
static int time_whole(const struct lb_jit *j, bufs *b, int warm, int runs, double *us,
                      lb_diag *d) {
  double *t = malloc((size_t)runs * sizeof *t);
  if (!t) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  int rc = 0;
  if (lb_time_runs(lb_jit_run_fn(j), b->ins, b->outs, b->ws, warm, runs, 50e-6, t, NULL) < 0)
    rc = lb_diag_err(d, LB_ERR_INTERNAL, "jit run failed");
  if (!rc) qsort(t, (size_t)runs, sizeof *t, cmp_double), *us = 1e6 * t[runs / 2];
  free(t);
  return rc;
}

int lb_search_time_plan(const lb_search_env *e, const unsigned char *choice, double *us,
                        lb_diag *d) {
  lb_graph *q = NULL;
  struct lb_jit *j = NULL;
  bufs b;
  int rc = choice ? lb_search_jit(e, choice, 0, &q, &j, d) : lb_jit_compile(e->g, e->spec, NULL, &j, d);
  if (!rc) rc = bufs_make(e, q ? q : e->g, j, &b, d);
  if (!rc) rc = time_whole(j, &b, 20, 201, us, d), bufs_free(&b);
  lb_jit_free(j);
  lb_graph_free(q);
  return rc;
}

/* Per-step medians (microseconds) of a profiled JIT'd graph: each round refreshes the
 * workspace with a whole run, then times every step as a batch of reps calls (steps never
 * write their own inputs, so a repeated step recomputes the same output), enough reps that a
 * round lasts about a millisecond whatever the clock's resolution. */
static int time_steps(const struct lb_jit *j, bufs *b, double *step_us, lb_diag *d) {
  int n = lb_jit_step_count(j);
  double whole = 0;
  LB_TRY(time_whole(j, b, 3, 5, &whole, d));
  int reps = whole > 1000 ? 1 : (int)ceil(1000 / fmax(whole, 0.05));
  int rounds = (int)fmin(21, fmax(5, 3e5 / (reps * fmax(whole, 0.05))));
  double *t = malloc((size_t)n * (size_t)rounds * sizeof *t + 1);
  if (!t) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  lb_step_fn step = lb_jit_step_fn(j);
  lb_run_fn run = lb_jit_run_fn(j);
  for (int r = 0; r < rounds; r++) {
    run(b->ins, b->outs, b->ws);
    for (int s = 0; s < n; s++) {
      double c0 = thread_cpu();
      for (int k = 0; k < reps; k++) step(s, b->ins, b->outs, b->ws);
      t[(size_t)s * rounds + r] = 1e6 * (thread_cpu() - c0) / reps;
    }
  }
  for (int s = 0; s < n; s++) {
    qsort(t + (size_t)s * rounds, (size_t)rounds, sizeof *t, cmp_double);
    step_us[s] = t[(size_t)s * rounds + rounds / 2];
  }
  free(t);
  return 0;
}

/* ---- the cache ---------------------------------------------------------------------------- */

/* One cached figure: key fields joined by tabs (spec, model, code, layer, precision). */
typedef struct centry {
  char *key;
  double us;
} centry;

typedef struct cache {
  centry *e;
  size_t n, cap;
  int dirty;
} cache;

static void cache_free(cache *c) {
  for (size_t i = 0; i < c->n; i++) free(c->e[i].key);
  free(c->e);
  memset(c, 0, sizeof *c);
}

static centry *cache_find(const cache *c, const char *key) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->e[i].key, key) == 0) return &c->e[i];
  return NULL;
}

static int cache_put(cache *c, const char *key, double us) {
  centry *f = cache_find(c, key);
  c->dirty = 1;
  if (f) return f->us = us, 0;
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 64;
    centry *ne = realloc(c->e, cap * sizeof *ne);
    if (!ne) return LB_ERR_NOMEM;
    c->e = ne, c->cap = cap;
  }
  if (!(c->e[c->n].key = strdup(key))) return LB_ERR_NOMEM;
  c->e[c->n++].us = us;
  return 0;
}

#define CACHE_MAGIC "lowbit-measure-cache 1"

/* One line "spec\tmodel\tcode\tlayer\tprecision\tmicroseconds"; 0 if it parses. */
static int cache_line(cache *c, char *line) {
  size_t len = strlen(line);
  if (len && line[len - 1] == '\n') line[--len] = 0;
  char *tab = strrchr(line, '\t'), *end;
  int fields = 1;
  for (char *p = line; *p; p++) fields += *p == '\t';
  if (!tab || fields != 6) return -1;
  *tab = 0;
  double us = strtod(tab + 1, &end);
  if (end == tab + 1 || *end || !isfinite(us) || us < 0) return -1;
  return cache_put(c, line, us) == 0 ? 0 : -1;
}

/* Reads the cache at path (a missing file is an empty cache); a file that does not parse is
 * ignored with a warning naming the line, and will be replaced on the next write. */
static int cache_load(cache *c, const char *path) {
  memset(c, 0, sizeof *c);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char buf[4096];
  int bad = 0, line = 1;
  if (!fgets(buf, sizeof buf, f) || strncmp(buf, CACHE_MAGIC "\n", sizeof CACHE_MAGIC) != 0)
    bad = 1;
  while (!bad && fgets(buf, sizeof buf, f)) {
    line++;
    bad = strchr(buf, '\n') == NULL || cache_line(c, buf) != 0;
  }
  fclose(f);
  if (bad) {
    fprintf(stderr, "lowbit search: warning: %s:%d: corrupt measurement cache ignored\n", path, line);
    cache_free(c);
  }
  c->dirty = 0;
  return 0;
}

/* mkdir -p of the directory part of path. */
static void make_dirs(const char *path) {
  char *p = strdup(path);
  for (char *s = p ? p + 1 : NULL; s && *s; s++)
    if (*s == '/') *s = 0, mkdir(p, 0755), *s = '/';
  free(p);
}

/* Replaces the cache file atomically: a temporary file next to it, then rename. */
static int cache_save(const cache *c, const char *path, lb_diag *d) {
  if (!c->dirty) return 0;
  make_dirs(path);
  size_t n = strlen(path) + 32;
  char *tmp = malloc(n);
  if (!tmp) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  int bad = !f;
  if (f) {
    fprintf(f, "%s\n", CACHE_MAGIC);
    for (size_t i = 0; i < c->n; i++) fprintf(f, "%s\t%.4f\n", c->e[i].key, c->e[i].us);
    bad = ferror(f) != 0;
    bad |= fclose(f) != 0;
  }
  if (bad || rename(tmp, path) != 0) {
    remove(tmp);
    fprintf(stderr, "lowbit search: warning: %s: cannot write the measurement cache (%s)\n", path,
            strerror(errno));
  }
  free(tmp);
  return 0;
}

/* ---- keys --------------------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

/* FNV-1a of a file's bytes; 0 if it cannot be read. */
static uint64_t hash_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  uint64_t h = 0xcbf29ce484222325ull;
  unsigned char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = fnv(h, buf, n);
  fclose(f);
  return h;
}

/* "NAME@HASH" of the resolved spec as lb_spec_write prints it: its code generation inputs. */
static void spec_key(const lb_spec *s, char *out, size_t n) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  uint64_t h = 0xcbf29ce484222325ull;
  if (f) {
    lb_spec_write(s, f);
    fclose(f);
    h = fnv(h, text, len);
  }
  free(text);
  snprintf(out, n, "%s@%016llx", lb_spec_name(s), (unsigned long long)h);
}

/* The layer's node name with tabs, newlines and '%' escaped, so a key is one line of tabs. */
static void escape(const char *name, char *out, size_t n) {
  size_t k = 0;
  for (const unsigned char *p = (const unsigned char *)name; *p && k + 4 < n; p++) {
    if (*p < 0x20 || *p == '%') k += (size_t)snprintf(out + k, n - k, "%%%02x", *p);
    else out[k++] = (char)*p;
  }
  out[k] = 0;
}

/* A profiled plan's steps: name, the dtype its node produces (LB_DTYPE_COUNT for steps named
 * after no node of the model: quantize, dequantize, relayout, outputs) and median time. */
typedef struct stepset {
  char (*name)[80];
  lb_dtype *dt;
  double *t;
  int n;
} stepset;

static void stepset_free(stepset *x) {
  free(x->name), free(x->dt), free(x->t);
  memset(x, 0, sizeof *x);
}

typedef struct mctx {
  const lb_search_env *e;
  const lb_measure_opts *o;
  lb_measure_stats *st;
  cache c;
  char prefix[160]; /* spec \t model \t code */
  double *us;       /* [layer * LB_SEARCH_MAX_OPTS + opt] */
  double rest_us;
  stepset base;     /* the all-int8 plan's steps (for fp32 layers timed alone) */
  unsigned char *choice;
} mctx;

static void make_key(const mctx *m, const char *layer, const char *label, char *out, size_t n) {
  char esc[512];
  escape(layer, esc, sizeof esc);
  snprintf(out, n, "%s\t%s\t%s", m->prefix, esc, label);
}

/* ---- per-layer variants ------------------------------------------------------------------- */

/* Whether a step (named by the backend after its node, cut to 79 characters) is node `name`. */
static int step_is(const char *step, const char *name) {
  size_t n = strlen(name);
  return n && strncmp(step, name, 79) == 0 && strlen(step) == (n < 79 ? n : 79);
}

/* Microseconds of the steps of layer li in the profiled plan q: every step realize made from
 * it carries its name (NAN when the name does not identify one node of the model: nameless or
 * repeated names). */
static double layer_us(const mctx *m, const struct lb_jit *j, const double *t, uint32_t li) {
  const lb_graph *g = m->e->g;
  const char *name = g->nodes[lb_search_layer_at(m->e->s, li)->node].name;
  int same = 0;
  for (uint32_t n = 0; n < g->n_nodes; n++) same += step_is(g->nodes[n].name, name);
  if (same != 1) return NAN;
  double us = 0;
  for (int k = 0; k < lb_jit_step_count(j); k++)
    if (step_is(lb_jit_step_name(j, k), name)) us += t[k];
  return us;
}

/* Whether name identifies exactly one node of the model g. */
static int model_node(const lb_graph *g, const char *name) {
  int same = 0;
  for (uint32_t n = 0; n < g->n_nodes; n++) same += step_is(name, g->nodes[n].name);
  return same == 1;
}

static int stepset_of(const mctx *m, const lb_graph *q, const struct lb_jit *j, const double *t,
                      stepset *x) {
  int n = lb_jit_step_count(j);
  x->n = n;
  x->name = malloc(((size_t)n + 1) * sizeof *x->name);
  x->dt = malloc(((size_t)n + 1) * sizeof *x->dt);
  x->t = malloc(((size_t)n + 1) * sizeof *x->t);
  if (!x->name || !x->dt || !x->t) return stepset_free(x), LB_ERR_NOMEM;
  for (int k = 0; k < n; k++) {
    snprintf(x->name[k], sizeof x->name[k], "%s", lb_jit_step_name(j, k));
    x->t[k] = t[k], x->dt[k] = LB_DTYPE_COUNT;
    if (!model_node(m->e->g, x->name[k])) continue;
    for (uint32_t i = 0; i < q->n_nodes; i++)
      if (step_is(x->name[k], q->nodes[i].name)) x->dt[k] = q->values[q->nodes[i].out[0]].dtype;
  }
  return 0;
}

/* Whether step k of a differs from its counterpart in b: named after no model node, absent
 * from b, or its node produces another dtype there (runs fp32 instead of integer). */
static int step_changed(const stepset *a, int k, const stepset *b) {
  if (a->dt[k] == LB_DTYPE_COUNT) return 1;
  for (int i = 0; i < b->n; i++)
    if (strcmp(a->name[k], b->name[i]) == 0) return b->dt[i] != a->dt[k];
  return 1;
}

/* Time of the steps that differ between plans a and b (a's minus b's): the difference of two
 * whole totals would carry the timing noise of every unchanged step. */
static double changed_us(const stepset *a, const stepset *b) {
  double dt = 0;
  for (int k = 0; k < a->n; k++) dt += step_changed(a, k, b) ? a->t[k] : 0;
  for (int k = 0; k < b->n; k++) dt -= step_changed(b, k, a) ? b->t[k] : 0;
  return dt;
}

/* Compiles m->choice with per-step entry points, times the steps and records every layer
 * with want[li] (and, for the all-int8 plan, the rest: every other step); *sum gets the sum
 * of all steps, *keep (if not NULL) the steps. */
static int time_variant(mctx *m, const unsigned char *want, int base, double *sum,
                        stepset *keep, lb_diag *d) {
  const lb_search *s = m->e->s;
  lb_graph *q = NULL;
  struct lb_jit *j = NULL;
  bufs b;
  double *t = NULL, total = 0, layers = 0;
  int rc = lb_search_jit(m->e, m->choice, 1, &q, &j, d);
  if (!rc && !(t = calloc((size_t)lb_jit_step_count(j) + 1, sizeof *t)))
    rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  if (!rc && !(rc = bufs_make(m->e, q, j, &b, d))) rc = time_steps(j, &b, t, d), bufs_free(&b);
  for (int k = 0; !rc && k < lb_jit_step_count(j); k++) total += t[k];
  for (uint32_t li = 0; !rc && li < lb_search_n_layers(s); li++) {
    if (!want[li]) continue;
    const lb_search_layer *L = lb_search_layer_at(s, li);
    double us = layer_us(m, j, t, li);
    if (isnan(us)) continue;
    char key[1024];
    make_key(m, m->e->g->nodes[L->node].name, L->opt[m->choice[li]].label, key, sizeof key);
    m->us[li * LB_SEARCH_MAX_OPTS + m->choice[li]] = us, layers += us, m->st->timed++;
    if (cache_put(&m->c, key, us)) rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  }
  if (!rc && base) {
    char key[1024];
    m->rest_us = total - layers;
    make_key(m, "<rest>", "int8", key, sizeof key);
    if (cache_put(&m->c, key, m->rest_us)) rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  }
  if (!rc && keep && stepset_of(m, q, j, t, keep)) rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  m->st->plans += !rc;
  *sum = total;
  free(t);
  lb_jit_free(j);
  lb_graph_free(q);
  return rc;
}

/* Fills m->us[li][k] from the cache; 1 if it was there. */
static int from_cache(mctx *m, uint32_t li, int k) {
  const lb_search_layer *L = lb_search_layer_at(m->e->s, li);
  char key[1024];
  make_key(m, m->e->g->nodes[L->node].name, L->opt[k].label, key, sizeof key);
  const centry *c = cache_find(&m->c, key);
  if (!c) return 0;
  m->us[li * LB_SEARCH_MAX_OPTS + k] = c->us;
  m->st->cached++;
  return 1;
}

/* The plan where every layer with an option labelled `label` takes it (all-int8 plan when
 * label is NULL) and the others stay at their base; want[li]: layer li's figure is missing. */
static int variant(mctx *m, const char *label, unsigned char *want) {
  const lb_search *s = m->e->s;
  int any = 0;
  for (uint32_t li = 0; li < lb_search_n_layers(s); li++) {
    const lb_search_layer *L = lb_search_layer_at(s, li);
    int k = L->base;
    for (int o = 0; label && o < L->n_opt; o++)
      if (strcmp(L->opt[o].label, label) == 0 && lb_search_opt_realizable(m->e->g, L, o)) k = o;
    m->choice[li] = (unsigned char)k;
    want[li] = (label == NULL || k != L->base) && m->us[li * LB_SEARCH_MAX_OPTS + k] < 0 &&
               !from_cache(m, li, k);
    any |= want[li];
  }
  return any;
}

/* An fp32 layer changes more than its own steps: quantize/dequantize around it, and the
 * weightless ops it feeds run fp32 too. So it is timed alone (the all-int8 plan with only
 * layer li in fp32), and its figure is its int8 figure plus the change of the steps that
 * differ from the all-int8 plan (m->base, timed once per run): the whole change it brings. */
static int time_alone(mctx *m, uint32_t li, int k, unsigned char *want, lb_diag *d) {
  const lb_search *s = m->e->s;
  const lb_search_layer *L = lb_search_layer_at(s, li);
  double *u = m->us + (size_t)li * LB_SEARCH_MAX_OPTS, total;
  if (u[L->base] < 0) return 0; /* the int8 figure is missing: the model stands in */
  memset(want, 0, lb_search_n_layers(s)); /* figures come from the step sets */
  for (uint32_t i = 0; i < lb_search_n_layers(s); i++)
    m->choice[i] = (unsigned char)lb_search_layer_at(s, i)->base;
  if (!m->base.n) LB_TRY(time_variant(m, want, 0, &total, &m->base, d));
  m->choice[li] = (unsigned char)k;
  stepset alone = {0};
  LB_TRY(time_variant(m, want, 0, &total, &alone, d));
  u[k] = fmax(0.0, u[L->base] + changed_us(&alone, &m->base)), m->st->timed++;
  stepset_free(&alone);
  char key[1024];
  make_key(m, m->e->g->nodes[L->node].name, L->opt[k].label, key, sizeof key);
  return cache_put(&m->c, key, u[k]) ? lb_diag_err(d, LB_ERR_NOMEM, "out of memory") : 0;
}

/* The all-int8 plan first (layers at base and the rest), then one plan per other label whose
 * layers keep 8-bit activations (their steps are theirs alone), and fp32 layers one by one. */
static int measure_all(mctx *m, unsigned char *want, lb_diag *d) {
  const lb_search *s = m->e->s;
  uint32_t nl = lb_search_n_layers(s);
  char key[1024];
  double total = 0;
  make_key(m, "<rest>", "int8", key, sizeof key);
  const centry *rest = cache_find(&m->c, key);
  int miss = variant(m, NULL, want);
  if (rest) m->rest_us = rest->us, m->st->cached++;
  if (miss || !rest) {
    memset(want, 1, nl); /* the rest is total minus every layer */
    LB_TRY(time_variant(m, want, 1, &total, &m->base, d));
  }
  for (uint32_t li = 0; li < nl; li++) {
    const lb_search_layer *L = lb_search_layer_at(s, li);
    for (int k = 0; k < L->n_opt; k++) {
      if (!lb_search_opt_realizable(m->e->g, L, k) || m->us[li * LB_SEARCH_MAX_OPTS + k] >= 0)
        continue;
      if (!L->opt[k].combo) {
        if (!from_cache(m, li, k)) LB_TRY(time_alone(m, li, k, want, d));
        continue;
      }
      double sum;
      int seen = 0; /* a label's plan runs once: what it leaves unmeasured the model covers */
      for (uint32_t i = 0; i <= li && !seen; i++)
        for (int o = 0; o < lb_search_layer_at(s, i)->n_opt && !seen; o++)
          seen = (i < li || o < k) && strcmp(lb_search_layer_at(s, i)->opt[o].label, L->opt[k].label) == 0;
      if (!seen && variant(m, L->opt[k].label, want))
        LB_TRY(time_variant(m, want, 0, &sum, NULL, d));
      if (m->o->progress)
        fprintf(stderr, "\rmeasure      layer %u/%u, %u plans compiled", li + 1,
                lb_search_n_layers(s), m->st->plans);
    }
  }
  if (m->o->progress) fputs("\r\033[K", stderr);
  return 0;
}

/* The change of fp32 layers a and b together against the all-int8 plan minus their changes
 * alone (us): the conversions between neighbours, which their figures alone both count. */
static int pair_us(mctx *m, uint32_t a, uint32_t b, unsigned char *want, double *us,
                   lb_diag *d) {
  const lb_search *s = m->e->s;
  const lb_graph *g = m->e->g;
  const lb_search_layer *La = lb_search_layer_at(s, a), *Lb = lb_search_layer_at(s, b);
  const double *ua = m->us + (size_t)a * LB_SEARCH_MAX_OPTS, *ub = m->us + (size_t)b * LB_SEARCH_MAX_OPTS;
  char name[600], key[1024];
  snprintf(name, sizeof name, "%s|%s", g->nodes[La->node].name, g->nodes[Lb->node].name);
  make_key(m, name, "f32+f32", key, sizeof key);
  const centry *c = cache_find(&m->c, key); /* the pair's figure, as a layer's */
  if (c) return *us = c->us - ua[0] - ub[0], m->st->cached++, 0;
  memset(want, 0, lb_search_n_layers(s));
  for (uint32_t i = 0; i < lb_search_n_layers(s); i++)
    m->choice[i] = (unsigned char)lb_search_layer_at(s, i)->base;
  double total;
  if (!m->base.n) LB_TRY(time_variant(m, want, 0, &total, &m->base, d));
  m->choice[a] = m->choice[b] = 0; /* option 0 is fp32 (search.c add_opts) */
  stepset both = {0};
  LB_TRY(time_variant(m, want, 0, &total, &both, d));
  double fig = fmax(0.0, ua[La->base] + ub[Lb->base] + changed_us(&both, &m->base));
  *us = fig - ua[0] - ub[0];
  stepset_free(&both);
  m->st->timed++;
  return cache_put(&m->c, key, fig) ? lb_diag_err(d, LB_ERR_NOMEM, "out of memory") : 0;
}

/* Every layer b whose neighbour a (lb_search_neighbour) has fp32 and base figures as b does:
 * pa[b] = a and pc[b] = their pair correction in us (pa[b] = -1 for the others). */
static int measure_pairs(mctx *m, unsigned char *want, int *pa, double *pc, lb_diag *d) {
  const lb_search *s = m->e->s;
  for (uint32_t b = 0; b < lb_search_n_layers(s); b++) {
    int a = pa[b] = lb_search_neighbour(s, b);
    if (a < 0) continue;
    const double *ua = m->us + (size_t)a * LB_SEARCH_MAX_OPTS, *ub = m->us + (size_t)b * LB_SEARCH_MAX_OPTS;
    const lb_search_layer *La = lb_search_layer_at(s, (uint32_t)a), *Lb = lb_search_layer_at(s, b);
    if (La->opt[0].combo || Lb->opt[0].combo || ua[0] < 0 || ub[0] < 0 || ua[La->base] < 0 ||
        ub[Lb->base] < 0) {
      pa[b] = -1;
      continue;
    }
    LB_TRY(pair_us(m, (uint32_t)a, b, want, &pc[b], d));
  }
  return 0;
}

/* The fp32 model's steps summed (the all-fp32 assignment, whose islands all merge), from the
 * cache or timed. */
static int time_fp32(mctx *m, double *us, lb_diag *d) {
  char key[1024];
  make_key(m, "<fp32>", "f32", key, sizeof key);
  const centry *c = cache_find(&m->c, key);
  if (c) return *us = c->us, m->st->cached++, 0;
  struct lb_jit *j = NULL;
  lb_codegen_opts co = {NULL, 1};
  double *t = NULL;
  bufs b;
  int rc = lb_jit_compile(m->e->g, m->e->spec, &co, &j, d);
  if (!rc && !(t = calloc((size_t)lb_jit_step_count(j) + 1, sizeof *t)))
    rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  if (!rc && !(rc = bufs_make(m->e, m->e->g, j, &b, d))) rc = time_steps(j, &b, t, d), bufs_free(&b);
  *us = 0;
  for (int k = 0; !rc && k < lb_jit_step_count(j); k++) *us += t[k];
  m->st->plans += !rc;
  if (!rc && cache_put(&m->c, key, *us)) rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  free(t);
  lb_jit_free(j);
  return rc;
}

int lb_search_measure_default_cache(char *out, size_t n) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (xdg && *xdg == '/') snprintf(out, n, "%s/lowbit/measure.tsv", xdg);
  else if (home && *home) snprintf(out, n, "%s/.cache/lowbit/measure.tsv", home);
  else return -1;
  return 0;
}

int lb_search_measure_layers(const lb_search_env *e, const lb_measure_opts *o,
                             lb_measure_stats *st, lb_diag *d) {
  lb_search *s = e->s;
  uint32_t nl = lb_search_n_layers(s);
  size_t n = (size_t)(nl ? nl : 1) * LB_SEARCH_MAX_OPTS;
  mctx m = {.e = e, .o = o, .st = st, .us = malloc(n * sizeof(double)), .choice = malloc(nl + 1)};
  unsigned char *want = malloc(nl + 1);
  memset(st, 0, sizeof *st);
  int rc = m.us && m.choice && want ? 0 : lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  char sk[96];
  spec_key(e->spec, sk, sizeof sk);
  snprintf(m.prefix, sizeof m.prefix, "%s\t%016llx\t%016llx", sk,
           (unsigned long long)hash_file(o->model_path),
           (unsigned long long)hash_file("/proc/self/exe"));
  for (size_t i = 0; !rc && i < n; i++) m.us[i] = -1;
  if (!rc && o->cache) cache_load(&m.c, o->cache);
  double f32 = 0, *pc = calloc(nl + 1, sizeof *pc);
  int *pa = calloc(nl + 1, sizeof *pa);
  if (!rc && (!pc || !pa)) rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  if (!rc) rc = measure_all(&m, want, d);
  if (!rc) rc = measure_pairs(&m, want, pa, pc, d);
  if (!rc) rc = time_fp32(&m, &f32, d);
  double ghz = lb_spec_clock_ghz(e->spec) > 0 ? lb_spec_clock_ghz(e->spec) : 1.0;
  for (size_t i = 0; !rc && i < n; i++) m.us[i] = m.us[i] >= 0 ? m.us[i] * ghz * 1e3 : -1;
  if (!rc && lb_search_set_measured(s, m.us, m.rest_us * ghz * 1e3, f32 * ghz * 1e3))
    rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  for (uint32_t b = 0; !rc && b < nl; b++)
    if (pa[b] >= 0 && lb_search_set_pair(s, (uint32_t)pa[b], b, pc[b] * ghz * 1e3))
      rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  free(pa), free(pc);
  if (!rc && o->cache) rc = cache_save(&m.c, o->cache, d);
  cache_free(&m.c);
  stepset_free(&m.base);
  free(m.us), free(m.choice), free(want);
  return rc;
}
