/* Calibrate: streams calibration samples through the fp32 graph and keeps, per quantized
 * activation, running min/max, per-sample min/max sums and (for percentile, kl, mse) a
 * 2048-bin histogram of positive and negative magnitudes over [0, max|x|] from a first pass.
 * Then lb_quant_params turns ranges into scales and zero points, per shared-scale class.
 * Invariant: memory is O(observed values x bins), independent of the number of samples. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quantize.h"
#include "search.h"

#define BINS 2048

static const char *const method_names[] = {
#define X(e, s) s,
    LB_CALIB_METHODS(X)
#undef X
};

const char *lb_calib_method_name(lb_calib_method m) {
  return (unsigned)m < LB_CALIB_COUNT ? method_names[m] : "?";
}

int lb_calib_method_from_name(const char *s, lb_calib_method *out) {
  for (int m = 0; m < LB_CALIB_COUNT; m++)
    if (strcmp(s, method_names[m]) == 0) return *out = (lb_calib_method)m, 0;
  return -1;
}

/* ---- running a graph value by value ------------------------------------------------------- */

typedef struct walk {
  const lb_graph *g;
  lb_tensor *t;
  unsigned char *owned;
  uint32_t *last;
} walk;

static lb_tensor tensor_of(const lb_value *v, void *data) {
  lb_tensor t = {v->dtype, v->rank, {0}, data};
  memcpy(t.dims, v->dims, sizeof t.dims);
  return t;
}

static void walk_free(walk *w) {
  if (w->owned)
    for (uint32_t v = 0; v < w->g->n_values; v++)
      if (w->owned[v]) lb_free(w->t[v].data);
  lb_free(w->t), lb_free(w->owned), lb_free(w->last);
}

static int walk_node(walk *w, uint32_t n, lb_value_fn fn, void *user, lb_diag *diag) {
  const lb_graph *g = w->g;
  const lb_node *nd = &g->nodes[n];
  lb_tensor in[64];
  if (nd->n_in > 64) return lb_diag_err(diag, LB_ERR_INPUT, "node %u: too many inputs", n);
  for (uint32_t k = 0; k < nd->n_in; k++)
    in[k] = nd->in[k] == LB_NONE ? (lb_tensor){0} : w->t[nd->in[k]];
  uint32_t o = nd->out[0];
  size_t bytes = lb_dtype_bytes(g->values[o].dtype, lb_value_numel(&g->values[o]));
  if (bytes == SIZE_MAX) return lb_diag_err(diag, LB_ERR_INPUT, "node %u: output too large", n);
  w->t[o] = tensor_of(&g->values[o], lb_calloc(bytes ? bytes : 1, 1));
  if (!w->t[o].data) return LB_ERR_NOMEM;
  w->owned[o] = 1;
  LB_TRY(lb_eval_node(g, n, in, &w->t[o], diag));
  if (fn) LB_TRY(fn(user, o, &w->t[o]));
  for (uint32_t k = 0; k < nd->n_in; k++) {
    uint32_t v = nd->in[k];
    if (v != LB_NONE && w->owned[v] && w->last[v] == n + 1) {
      lb_free(w->t[v].data);
      w->t[v].data = NULL, w->owned[v] = 0;
    }
  }
  return 0;
}

int lb_quant_walk(const lb_graph *g, const lb_tensor *inputs, lb_value_fn fn, void *user,
                  lb_diag *diag) {
  uint32_t nv = g->n_values ? g->n_values : 1;
  walk w = {g, lb_calloc(nv, sizeof(lb_tensor)), lb_calloc(nv, 1), lb_calloc(nv, sizeof(uint32_t))};
  int rc = !w.t || !w.owned || !w.last ? LB_ERR_NOMEM : 0;
  for (uint32_t v = 0; !rc && v < g->n_values; v++)
    if (g->values[v].data) w.t[v] = tensor_of(&g->values[v], g->values[v].data);
  for (uint32_t i = 0; !rc && i < g->n_inputs; i++) {
    w.t[g->inputs[i]] = inputs[i];
    if (fn) rc = fn(user, g->inputs[i], &inputs[i]);
  }
  for (uint32_t n = 0; !rc && n < g->n_nodes; n++)
    for (uint32_t k = 0; k < g->nodes[n].n_in; k++)
      if (g->nodes[n].in[k] != LB_NONE) w.last[g->nodes[n].in[k]] = n + 1;
  for (uint32_t i = 0; !rc && i < g->n_outputs; i++) w.last[g->outputs[i]] = UINT32_MAX;
  for (uint32_t n = 0; !rc && n < g->n_nodes; n++) rc = walk_node(&w, n, fn, user, diag);
  walk_free(&w);
  return rc;
}

/* ---- statistics --------------------------------------------------------------------------- */

typedef struct stat {
  double mn, mx, sum_mn, sum_mx;
  uint64_t samples;
  float amax;      /* histogram range from pass 1 */
  uint64_t *pos, *neg; /* BINS each: counts of x > 0 and x < 0 by |x| */
  uint64_t zeros;      /* exact zeros (relu outputs): exact in every scheme, kept out of KL */
} stat;

typedef struct calib {
  const lb_qplan *p;
  stat *st;   /* per value; NULL-histogram entries are not observed */
  unsigned char *watch;
  int pass;   /* 1: ranges, 2: histograms */
  const lb_graph *g;
  double **bsum; /* per node: sums of its input statistic (bias correction), or NULL */
} calib;

/* Pass 1 adds the input statistic of every node reading v that takes a bias correction. */
static void observe_inputs(calib *c, uint32_t v, const lb_tensor *t) {
  for (uint32_t n = 0; c->bsum && c->pass == 1 && n < c->g->n_nodes; n++)
    if (c->bsum[n] && c->g->nodes[n].in[0] == v) lb_search_stat_add(c->g, n, t, c->bsum[n]);
}

static int observe(void *user, uint32_t v, const lb_tensor *t) {
  calib *c = user;
  if (t->dtype == LB_DTYPE_F32) observe_inputs(c, v, t);
  if (!c->watch[v] || t->dtype != LB_DTYPE_F32) return 0;
  stat *s = &c->st[v];
  const float *x = t->data;
  int64_t n = lb_tensor_numel(t);
  if (c->pass == 1) {
    float mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
      if (x[i] < mn) mn = x[i];
      if (x[i] > mx) mx = x[i];
    }
    if (n == 0) mn = mx = 0;
    s->mn = s->samples ? fmin(s->mn, mn) : mn;
    s->mx = s->samples ? fmax(s->mx, mx) : mx;
    s->sum_mn += mn, s->sum_mx += mx;
    s->samples++;
    return 0;
  }
  if (!s->pos || !(s->amax > 0)) return 0;
  double k = BINS / (double)s->amax;
  for (int64_t i = 0; i < n; i++) {
    double a = fabs((double)x[i]) * k;
    int64_t b = a >= BINS ? BINS - 1 : (int64_t)a;
    if (x[i] < 0) s->neg[b]++;
    else if (x[i] > 0) s->pos[b]++;
    else s->zeros++;
  }
  return 0;
}

/* ---- thresholds from a histogram ---------------------------------------------------------- */

/* Smallest T (in bins) holding fraction q of |x|. */
static int percentile_bins(const stat *s, double q) {
  uint64_t total = s->zeros, acc = s->zeros;
  for (int i = 0; i < BINS; i++) total += s->pos[i] + s->neg[i];
  for (int i = 0; i < BINS; i++) {
    acc += s->pos[i] + s->neg[i];
    if ((double)acc >= q * (double)total) return i + 1;
  }
  return BINS;
}

/* Squared quantization error of the histogram for range [lo, hi] in dtype t. */
static double mse_of(const stat *s, float lo, float hi, lb_dtype t, int sym) {
  float sc;
  int32_t zp, qmin, qmax;
  lb_qparams(lo, hi, t, sym, &sc, &zp);
  lb_qrange(t, &qmin, &qmax);
  double w = s->amax / BINS, err = 0;
  for (int i = 0; i < BINS; i++) {
    float x = (float)((i + 0.5) * w);
    for (int sgn = 0; sgn < 2; sgn++) {
      uint64_t cnt = sgn ? s->neg[i] : s->pos[i];
      if (!cnt) continue;
      float v = sgn ? -x : x;
      float d = (float)(lb_qquantize(v, sc, zp, qmin, qmax) - zp) * sc - v;
      err += (double)cnt * (double)d * (double)d;
    }
  }
  return err;
}

/* KL(P || Q) of the |x| histogram clipped at bin T against its quantization to `levels`
 * buckets (TensorRT's entropy calibration); bins empty in P are skipped, empty ones in Q get a
 * tiny count so that a clipped outlier costs a lot but not infinitely much. */
static double kl_at(const double *h, int T, int levels) {
  double p[BINS], q[BINS], total = 0;
  for (int i = 0; i < T; i++) p[i] = h[i];
  for (int i = T; i < BINS; i++) p[T - 1] += h[i];
  for (int i = 0; i < T; i++) total += p[i];
  if (!(total > 0)) return INFINITY;
  for (int j = 0; j < levels; j++) {
    int a = (int)((int64_t)j * T / levels), b = (int)((int64_t)(j + 1) * T / levels);
    double sum = 0;
    int nz = 0;
    for (int i = a; i < b; i++) sum += h[i], nz += h[i] > 0;
    for (int i = a; i < b; i++) q[i] = h[i] > 0 ? sum / nz : 0;
  }
  double qt = 0, kl = 0;
  for (int i = 0; i < T; i++) qt += q[i];
  for (int i = 0; i < T; i++) {
    if (!(p[i] > 0)) continue;
    double qi = q[i] > 0 ? q[i] : 1e-4; /* smoothing: clipped outliers in an empty last bin */
    kl += p[i] / total * log((p[i] / total) / (qi / qt));
  }
  return kl;
}

static int kl_bins(const stat *s, int levels) {
  double h[BINS];
  for (int i = 0; i < BINS; i++) h[i] = (double)(s->pos[i] + s->neg[i]);
  int best = BINS;
  double best_kl = INFINITY;
  /* never clip the bulk: data far from 0 (a sigmoid's output) leaves the low bins empty, where
   * KL of a histogram squeezed into its last bin is meaningless */
  int lo = percentile_bins(s, 0.99);
  for (int T = lo > levels ? lo : levels; T <= BINS; T += 8) {
    double kl = kl_at(h, T, levels);
    if (kl < best_kl) best_kl = kl, best = T;
  }
  return best;
}

/* The calibrated range of value v by method m. */
static void range_of(const stat *s, const lb_qval *q, const lb_calib_opts *o, float *lo,
                     float *hi) {
  *lo = (float)s->mn, *hi = (float)s->mx;
  if (o->method == LB_CALIB_AVG_MAX) {
    *lo = (float)(s->sum_mn / (double)s->samples), *hi = (float)(s->sum_mx / (double)s->samples);
    return;
  }
  if (o->method == LB_CALIB_MAX || !s->pos || !(s->amax > 0)) return;
  int T = BINS, sym = !(q->schemes & LB_SCHEME_ASYMMETRIC) ||
                     ((q->schemes & LB_SCHEME_SYMMETRIC) && q->dtype == LB_DTYPE_I8 && s->mn < 0);
  if (o->method == LB_CALIB_PERCENTILE) {
    T = percentile_bins(s, (o->percentile > 0 ? o->percentile : 99.99) / 100.0);
  } else if (o->method == LB_CALIB_KL) {
    T = kl_bins(s, s->mn < 0 ? 128 : 256);
  } else {
    double best = INFINITY;
    for (int t = BINS / 32; t <= BINS; t += 16) {
      float th = (float)(s->amax * t / BINS);
      double e = mse_of(s, fmaxf(*lo, -th), fminf(*hi, th), q->dtype, sym);
      if (e < best) best = e, T = t;
    }
  }
  float th = (float)(s->amax * T / BINS);
  if (th < *hi && th < -*lo && s->mn > 0) return; /* would clip everything: keep min..max */
  *lo = fmaxf(*lo, -th), *hi = fminf(*hi, th);
  if (*hi < *lo) *hi = *lo;
}

/* ---- the driver --------------------------------------------------------------------------- */

static void progress(int on, int64_t i, int64_t n, int pass, int passes) {
  if (!on) return;
  int w = 40, f = n ? (int)(w * (i + 1) / n) : w;
  fprintf(stderr, "\rcalibrating %d/%d [%.*s%*s] %lld/%lld", pass, passes, f,
          "########################################", w - f, "", (long long)(i + 1),
          (long long)n);
  if (i + 1 == n && pass == passes) fputc('\n', stderr);
  fflush(stderr);
}

/* ---- samples: one source per graph input ------------------------------------------------ */

typedef struct feed {
  const lb_calib_input *src;
  uint32_t n;
  lb_tensor *t; /* per graph input, the current sample */
} feed;

static void feed_close(feed *f) {
  for (uint32_t k = 0; f->t && k < f->n; k++) lb_free(f->t[k].data);
  lb_free(f->t);
  f->t = NULL;
}

static int feed_open(const lb_graph *g, const lb_calib_input *src, feed *f) {
  *f = (feed){src, g->n_inputs, lb_calloc(g->n_inputs ? g->n_inputs : 1, sizeof(lb_tensor))};
  if (!f->t) return LB_ERR_NOMEM;
  for (uint32_t k = 0; k < f->n; k++) {
    const lb_value *in = &g->values[g->inputs[k]];
    f->t[k] = tensor_of(in, lb_malloc(lb_dtype_bytes(in->dtype, lb_value_numel(in)) + 1));
    if (!f->t[k].data) return feed_close(f), LB_ERR_NOMEM;
  }
  return 0;
}

static int feed_read(feed *f, int64_t i, lb_diag *diag) {
  for (uint32_t k = 0; k < f->n; k++) LB_TRY(f->src[k].read(f->src[k].user, i, f->t[k].data, diag));
  return 0;
}

/* "[a,b,c]" with an optional leading "N," into buf. */
static const char *fmt_dims(char *buf, size_t cap, const char *lead, int rank, const int64_t *d) {
  size_t n = (size_t)snprintf(buf, cap, "[%s%s", lead, lead[0] && rank ? "," : "");
  for (int i = 0; i < rank && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? "," : "", (long long)d[i]);
  if (n < cap) snprintf(buf + n, cap - n, "]");
  return buf;
}

/* Whether one sample of s has input in's shape (its leading 1 dropped or kept). */
static int sample_fits(const lb_value *in, const lb_calib_input *s) {
  if (s->rank < 0) return s->per == lb_value_numel(in);
  int drop = s->rank == in->rank - 1 && in->rank > 0 && in->dims[0] == 1;
  if (s->rank != in->rank && !drop) return 0;
  for (int i = 0; i < s->rank; i++)
    if (s->dims[i] != in->dims[i + drop]) return 0;
  return s->per == lb_value_numel(in);
}

static int shape_err(const lb_value *in, const lb_calib_input *s, lb_diag *diag) {
  char want[160], alt[160], got[160];
  int64_t one_more[LB_MAX_RANK + 1] = {1};
  memcpy(one_more + 1, in->dims, (size_t)in->rank * sizeof *in->dims);
  int drop = in->rank > 0 && in->dims[0] == 1;
  fmt_dims(want, sizeof want, "N", in->rank - drop, in->dims + drop);
  fmt_dims(alt, sizeof alt, "N", in->rank + 1 - drop, drop ? in->dims : one_more);
  if (s->rank >= 0) {
    int64_t d[LB_MAX_RANK + 1] = {s->n};
    memcpy(d + 1, s->dims, (size_t)s->rank * sizeof *s->dims);
    fmt_dims(got, sizeof got, "", s->rank + 1, d);
  } else {
    snprintf(got, sizeof got, "%lld elements per sample", (long long)s->per);
  }
  return lb_diag_err(diag, LB_ERR_INPUT, "%s: input '%s' (%s): expected %s samples shaped %s "
                     "(or %s), got %s %s", s->what ? s->what : "calibration data", in->name,
                     lb_dtype_name(in->dtype), lb_dtype_name(in->dtype), want, alt,
                     lb_dtype_name(s->dtype), got);
}

int lb_calib_check(const lb_graph *g, const lb_calib_input *src, lb_diag *diag) {
  for (uint32_t k = 0; k < g->n_inputs; k++) {
    const lb_value *in = &g->values[g->inputs[k]];
    const lb_calib_input *s = &src[k];
    const char *what = s->what ? s->what : "calibration data";
    if (s->dtype != in->dtype || !sample_fits(in, s)) return shape_err(in, s, diag);
    if (s->n < 1)
      return lb_diag_err(diag, LB_ERR_INPUT, "%s: no samples (input '%s')", what, in->name);
    if (s->n != src[0].n)
      return lb_diag_err(diag, LB_ERR_INPUT, "%s: %lld samples for input '%s', but %s has %lld for "
                         "'%s' (every input needs the same samples)", what, (long long)s->n,
                         in->name, src[0].what ? src[0].what : "the first", (long long)src[0].n,
                         g->values[g->inputs[0]].name);
  }
  return 0;
}

static int run_pass(const lb_graph *g, calib *c, feed *f, const lb_calib_opts *o, int passes,
                    lb_diag *diag) {
  int64_t n = f->src[0].n;
  for (int64_t i = 0; i < n; i++) {
    LB_TRY(feed_read(f, i, diag));
    int rc = lb_quant_walk(g, f->t, observe, c, diag);
    if (rc) {
      lb_diag_prefix(diag, "calibration sample %lld", (long long)i);
      return rc;
    }
    progress(o->progress, i, n, c->pass, passes);
  }
  return 0;
}

/* A source over an in-memory tensor [N, ...] of any dtype. */
static int tensor_read(void *user, int64_t i, void *dst, lb_diag *diag) {
  (void)diag;
  const lb_tensor *t = user;
  size_t per = lb_dtype_bytes(t->dtype, lb_tensor_numel(t) / (t->dims[0] ? t->dims[0] : 1));
  memcpy(dst, (const char *)t->data + (size_t)i * per, per);
  return 0;
}

lb_calib_input lb_calib_input_tensor(const lb_tensor *t, const char *what) {
  lb_calib_input s = {what, t->dtype, t->rank - 1, {0}, t->rank ? t->dims[0] : 0, 1, tensor_read,
                      (void *)t};
  for (int d = 1; d < t->rank; d++) s.dims[d - 1] = t->dims[d], s.per *= t->dims[d];
  return s;
}

/* The f32 sample reader of an lb_calib_source as an lb_calib_input (shape unknown: only the
 * element count is checked). */
static int source_read(void *user, int64_t i, void *dst, lb_diag *diag) {
  const lb_calib_source *s = user;
  return s->read(s->user, i, dst, diag);
}

static lb_calib_input from_source(const lb_calib_source *s) {
  return (lb_calib_input){NULL, LB_DTYPE_F32, -1, {0}, s->n, s->per, source_read, (void *)s};
}

static int one_input(const lb_graph *g, lb_diag *diag) {
  if (g->n_inputs == 1) return 0;
  return lb_diag_err(diag, LB_ERR_INPUT, "calibration data is one tensor but the model has %u "
                     "inputs (give one per input)", g->n_inputs);
}

int lb_quant_calibrate(const lb_graph *g, lb_qplan *p, const lb_tensor *data,
                       const lb_calib_opts *o, lb_diag *diag) {
  LB_TRY(one_input(g, diag));
  if (data->rank < 1)
    return lb_diag_err(diag, LB_ERR_INPUT, "calibration data: expected samples along axis 0, "
                       "got a scalar");
  lb_calib_input src = lb_calib_input_tensor(data, NULL);
  src.rank = -1; /* as before multi-input calibration: any sample shape of the right size */
  return lb_quant_calibrate_inputs(g, p, &src, o, diag);
}

int lb_quant_calibrate_stream(const lb_graph *g, lb_qplan *p, const lb_calib_source *src,
                              const lb_calib_opts *o, lb_diag *diag) {
  LB_TRY(one_input(g, diag));
  lb_calib_input in = from_source(src);
  return lb_quant_calibrate_inputs(g, p, &in, o, diag);
}

static int start_hist(const lb_graph *g, calib *c) {
  for (uint32_t v = 0; v < g->n_values; v++) {
    stat *s = &c->st[v];
    if (!c->watch[v]) continue;
    s->amax = (float)fmax(fabs(s->mn), fabs(s->mx));
    s->pos = lb_calloc(BINS, sizeof *s->pos);
    s->neg = lb_calloc(BINS, sizeof *s->neg);
    if (!s->pos || !s->neg) return LB_ERR_NOMEM;
  }
  return 0;
}

/* ---- bias correction of a plan's sub-byte layers (search.h) --------------------------------
 * A calibrated plan with narrow weights (a hand-edited plan's i4, i2 ...) gets the bias
 * correction the search simulates for them, from the same functions; a plan file's own bias
 * zero points (its correction) are kept. */

static int corrected(const lb_graph *g, const lb_qplan *p, uint32_t n) {
  const lb_node *nd = &g->nodes[n];
  if (!p->l[n].integer || (nd->op != LB_OP_CONV && nd->op != LB_OP_GEMM && nd->op != LB_OP_MATMUL))
    return 0;
  if (nd->n_in < 3 || nd->in[2] == LB_NONE || !g->values[nd->in[1]].data) return 0;
  const lb_qval *b = &p->v[nd->in[2]];
  return lb_search_bias_corrected(p->v[nd->in[1]].dtype) && b->role == LB_QROLE_BIAS && !b->yaml_at;
}

static double **bias_sums(const lb_graph *g, const lb_qplan *p, int *rc) {
  double **b = lb_calloc(g->n_nodes ? g->n_nodes : 1, sizeof *b);
  for (uint32_t n = 0; b && n < g->n_nodes; n++)
    if (corrected(g, p, n) && !(b[n] = lb_calloc((size_t)lb_search_stat_len(g, n) + 1, sizeof(double))))
      *rc = LB_ERR_NOMEM;
  if (!b) *rc = LB_ERR_NOMEM;
  return b;
}

/* The bias zero points of the corrected layers from the input sums of `samples` samples. */
static int bias_corrections(const lb_graph *g, lb_qplan *p, double **sum, int64_t samples) {
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    const lb_node *nd = &g->nodes[n];
    if (!sum[n]) continue;
    const lb_qval *w = &p->v[nd->in[1]];
    lb_qval *b = &p->v[nd->in[2]];
    int64_t nb = lb_value_numel(&g->values[nd->in[2]]), len = lb_search_stat_len(g, n);
    if ((int64_t)b->n != nb || !p->v[nd->in[0]].n) continue;
    for (int64_t c = 0; c < len; c++) sum[n][c] /= (double)samples * lb_search_stat_count(g, n);
    double *corr = lb_malloc((size_t)nb * sizeof *corr + 1);
    if (!corr) return LB_ERR_NOMEM;
    if (lb_search_bias_corr(g, n, w->dtype, w->scale, w->n, sum[n], nb, corr) == 0)
      lb_search_bias_units(corr, nb, p->v[nd->in[0]].scale[0], w->scale, w->n, b->zp);
    lb_free(corr);
  }
  return 0;
}

int lb_quant_calibrate_inputs(const lb_graph *g, lb_qplan *p, const lb_calib_input *src,
                              const lb_calib_opts *o, lb_diag *diag) {
  LB_TRY(lb_calib_check(g, src, diag));
  calib c = {p, lb_calloc(g->n_values ? g->n_values : 1, sizeof(stat)),
             lb_calloc(g->n_values ? g->n_values : 1, 1), 1, g, NULL};
  feed f = {0};
  int rc = !c.st || !c.watch || feed_open(g, src, &f) ? LB_ERR_NOMEM : 0;
  if (!rc) c.bsum = bias_sums(g, p, &rc);
  for (uint32_t v = 0; !rc && v < g->n_values; v++)
    c.watch[v] = p->v[v].dtype != LB_DTYPE_F32 && p->v[v].role == LB_QROLE_ACT &&
                 !g->values[v].data && !(p->v[v].yaml_at && p->v[v].n);
  int hist = o->method != LB_CALIB_MAX && o->method != LB_CALIB_AVG_MAX, passes = hist ? 2 : 1;
  if (!rc) rc = run_pass(g, &c, &f, o, passes, diag);
  if (!rc && hist) rc = start_hist(g, &c);
  if (!rc && hist) c.pass = 2, rc = run_pass(g, &c, &f, o, passes, diag);
  for (uint32_t v = 0; !rc && v < g->n_values; v++) {
    if (!c.watch[v] || !c.st[v].samples) continue;
    range_of(&c.st[v], &p->v[v], o, &p->v[v].lo, &p->v[v].hi);
    p->v[v].ranged = 1;
  }
  for (uint32_t v = 0; c.st && v < g->n_values; v++) lb_free(c.st[v].pos), lb_free(c.st[v].neg);
  lb_free(c.st), lb_free(c.watch);
  feed_close(&f);
  p->method = lb_calib_method_name(o->method);
  if (!rc) rc = lb_quant_params(g, p, diag);
  if (!rc) rc = bias_corrections(g, p, c.bsum, src[0].n);
  for (uint32_t n = 0; c.bsum && n < g->n_nodes; n++) lb_free(c.bsum[n]);
  lb_free(c.bsum);
  return rc == LB_ERR_NOMEM ? lb_diag_err(diag, rc, "out of memory") : rc;
}

/* ---- per-layer SQNR ------------------------------------------------------------------------ */

typedef struct keep {
  float **t;                /* per value: a copy of the tensor */
  const unsigned char *want;
} keep;

static int keep_value(void *user, uint32_t v, const lb_tensor *t) {
  keep *k = user;
  if (!k->want[v] || t->dtype != LB_DTYPE_F32) return 0;
  size_t n = (size_t)lb_tensor_numel(t);
  lb_free(k->t[v]);
  k->t[v] = lb_malloc((n ? n : 1) * sizeof(float));
  if (!k->t[v]) return LB_ERR_NOMEM;
  memcpy(k->t[v], t->data, n * sizeof(float));
  return 0;
}

/* The value of sim that holds what g's value v becomes: "NAME:fq" (fake-quantized), or NAME. */
static uint32_t sim_value(const lb_graph *g, const lb_graph *sim, uint32_t v) {
  char name[512];
  snprintf(name, sizeof name, "%.500s:fq", g->values[v].name);
  uint32_t s = lb_graph_find_value(sim, name);
  return s != LB_NONE ? s : lb_graph_find_value(sim, g->values[v].name);
}

/* Adds sample i's signal and noise energies per compared value. */
static int sqnr_sample(const lb_graph *g, const lb_graph *sim, const uint32_t *map, keep *a,
                       keep *b, const lb_tensor *in, double *sig, double *noise, lb_diag *diag) {
  LB_TRY(lb_quant_walk(g, in, keep_value, a, diag));
  LB_TRY(lb_quant_walk(sim, in, keep_value, b, diag));
  for (uint32_t v = 0; v < g->n_values; v++) {
    if (!a->want[v] || !a->t[v] || !b->t[map[v]]) continue;
    for (int64_t e = 0; e < lb_value_numel(&g->values[v]); e++) {
      double r = a->t[v][e], q = b->t[map[v]][e];
      sig[v] += r * r, noise[v] += (r - q) * (r - q);
    }
  }
  return 0;
}

int lb_quant_sqnr_inputs(const lb_graph *g, const lb_qplan *p, const lb_graph *sim,
                         const lb_calib_input *src, int64_t max_samples, double *db,
                         lb_diag *diag) {
  LB_TRY(lb_calib_check(g, src, diag));
  size_t nv = g->n_values ? g->n_values : 1, ns = sim->n_values ? sim->n_values : 1;
  unsigned char *want = lb_calloc(nv, 1), *swant = lb_calloc(ns, 1);
  uint32_t *map = lb_calloc(nv, sizeof *map);
  double *sig = lb_calloc(nv, sizeof *sig), *noise = lb_calloc(nv, sizeof *noise);
  float **ta = lb_calloc(nv, sizeof *ta), **tb = lb_calloc(ns, sizeof *tb);
  feed f = {0};
  int rc = !want || !swant || !map || !sig || !noise || !ta || !tb || feed_open(g, src, &f)
               ? LB_ERR_NOMEM : 0;
  for (uint32_t n = 0; !rc && n < g->n_nodes; n++) {
    uint32_t v = g->nodes[n].out[0];
    db[n] = NAN;
    if (!p->l[n].integer || p->v[v].role != LB_QROLE_ACT) continue;
    map[v] = sim_value(g, sim, v);
    if (map[v] != LB_NONE) want[v] = swant[map[v]] = 1;
  }
  keep a = {ta, want}, b = {tb, swant};
  for (int64_t i = 0; !rc && i < src[0].n && i < max_samples; i++) {
    rc = feed_read(&f, i, diag);
    if (!rc) rc = sqnr_sample(g, sim, map, &a, &b, f.t, sig, noise, diag);
  }
  for (uint32_t n = 0; !rc && n < g->n_nodes; n++) {
    uint32_t v = g->nodes[n].out[0];
    if (want[v]) db[n] = 10.0 * log10(sig[v] / (noise[v] > 0 ? noise[v] : 1e-30));
  }
  for (size_t v = 0; ta && v < nv; v++) lb_free(ta[v]);
  for (size_t v = 0; tb && v < ns; v++) lb_free(tb[v]);
  lb_free(want), lb_free(swant), lb_free(map), lb_free(sig), lb_free(noise), lb_free(ta),
      lb_free(tb);
  feed_close(&f);
  return rc == LB_ERR_NOMEM ? lb_diag_err(diag, rc, "out of memory") : rc;
}

int lb_quant_sqnr(const lb_graph *g, const lb_qplan *p, const lb_graph *sim,
                  const lb_calib_source *src, int64_t max_samples, double *db, lb_diag *diag) {
  LB_TRY(one_input(g, diag));
  lb_calib_input in = from_source(src);
  return lb_quant_sqnr_inputs(g, p, sim, &in, max_samples, db, diag);
}

/* ---- parameters ------------------------------------------------------------------------- */

static void const_range(const lb_value *v, float *lo, float *hi) {
  const float *x = v->data;
  *lo = *hi = 0;
  for (int64_t i = 0; i < lb_value_numel(v); i++) *lo = fminf(*lo, x[i]), *hi = fmaxf(*hi, x[i]);
}

/* One class: plan-given parameters of a member win, else the union of the members' ranges. */
static int class_params(const lb_graph *g, lb_qplan *p, uint32_t root, const uint8_t *pow2,
                        lb_diag *diag) {
  float lo = 0, hi = 0;
  int have = 0, two = 0;
  unsigned schemes = LB_SCHEME_SYMMETRIC | LB_SCHEME_ASYMMETRIC;
  const lb_qval *given = NULL;
  for (uint32_t v = 0; v < g->n_values; v++) {
    lb_qval *q = &p->v[v];
    if (q->cls != root || q->dtype == LB_DTYPE_F32) continue;
    schemes &= q->schemes;
    two |= pow2[v];
    if (q->yaml_at && q->n) given = q;
    float a = q->lo, b = q->hi;
    if (q->role == LB_QROLE_CONST && g->values[v].dtype == LB_DTYPE_F32) const_range(&g->values[v], &a, &b);
    else if (!q->ranged) continue;
    lo = have ? fminf(lo, a) : a, hi = have ? fmaxf(hi, b) : b, have = 1;
  }
  lb_qval *r = &p->v[root];
  if (!given && !have)
    return lb_diag_err(diag, LB_ERR_INPUT,
                       "tensor '%s' (%s) has no calibration range and no parameters in the plan",
                       g->values[root].name, lb_dtype_name(r->dtype));
  float s = 1;
  int32_t z = 0;
  int sym = !(schemes & LB_SCHEME_ASYMMETRIC) ||
            ((schemes & LB_SCHEME_SYMMETRIC) && r->dtype == LB_DTYPE_I8 && lo < 0);
  if (given) s = given->scale[0], z = given->zp[0], sym = z == 0;
  else if (two) lb_qparams_pow2(lo, hi, r->dtype, sym, &s, &z);
  else lb_qparams(lo, hi, r->dtype, sym, &s, &z);
  for (uint32_t v = 0; v < g->n_values; v++) {
    lb_qval *q = &p->v[v];
    if (q->cls != root || q->dtype == LB_DTYPE_F32) continue;
    q->symmetric = sym;
    LB_TRY(lb_qplan_set(p, v, 1, -1, &s, &z));
  }
  return 0;
}

/* Per-channel (or per-tensor) symmetric narrow-range weights: s = max|w| / 127 (a shift layer's
 * rounded up to a power of two); i7/i6/i5/i4/i2 weights (a plan's narrow precision) get the
 * search's scales instead (lb_search_quant_weights), so a hand-edited plan realizes what the
 * search would have simulated. */
static int weight_params(const lb_graph *g, lb_qplan *p, uint32_t v, int pow2) {
  const lb_value *w = &g->values[v];
  lb_qval *q = &p->v[v];
  if (q->yaml_at && q->n) return 0;
  int ax = q->axis;
  int64_t ch = ax >= 0 ? w->dims[ax] : 1, inner = 1, outer = 1;
  for (int i = ax + 1; ax >= 0 && i < w->rank; i++) inner *= w->dims[i];
  for (int i = 0; ax >= 0 && i < ax; i++) outer *= w->dims[i];
  if (ax < 0) inner = lb_value_numel(w);
  float *s = lb_calloc((size_t)ch, sizeof *s);
  if (!s) return LB_ERR_NOMEM;
  const float *x = w->data;
  int rc = 0;
  if (q->dtype == LB_DTYPE_I4 || q->dtype == LB_DTYPE_I2 || lb_dtype_narrow8(q->dtype)) {
    rc = lb_search_quant_weights(x, lb_value_numel(w), ch, inner, q->dtype, s, NULL);
  } else {
    for (int64_t o = 0; o < outer; o++)
      for (int64_t c = 0; c < ch; c++)
        for (int64_t i = 0; i < inner; i++) s[c] = fmaxf(s[c], fabsf(x[(o * ch + c) * inner + i]));
    for (int64_t c = 0; c < ch; c++) s[c] = s[c] > 0 ? (float)((double)s[c] / 127.0) : 1.0f;
    for (int64_t c = 0; pow2 && c < ch; c++) s[c] = lb_qpow2_up(s[c]); /* a shift layer's */
  }
  if (!rc) rc = lb_qplan_set(p, v, (uint32_t)ch, ax, s, NULL);
  lb_free(s);
  return rc;
}

/* Bias (or int32 accumulator output) of node n: scale s_act * s_weight[c], zero point 0
 * (derived, never taken from a plan). */
static int bias_params(const lb_graph *g, lb_qplan *p, uint32_t v) {
  const lb_node *n = &g->nodes[p->v[v].bias_of];
  const lb_qval *x = &p->v[n->in[0]], *w = &p->v[n->in[1]];
  int64_t len = lb_value_numel(&g->values[v]);
  if (p->v[v].role == LB_QROLE_ACC) len = w->n > 1 ? (int64_t)w->n : 1;
  if (!x->n || !w->n) return LB_ERR_INTERNAL;
  float *s = lb_calloc((size_t)(len ? len : 1), sizeof *s);
  int32_t *z = lb_calloc((size_t)(len ? len : 1), sizeof *z);
  if (!s || !z) return lb_free(s), lb_free(z), LB_ERR_NOMEM;
  for (int64_t c = 0; c < len; c++)
    s[c] = (float)((double)x->scale[0] * (double)w->scale[w->n > 1 ? c : 0]);
  /* (sq) a plan file's bias zero points are its bias correction (lb_search_bias_units) */
  const lb_qval *b = &p->v[v];
  if (b->role == LB_QROLE_BIAS && b->yaml_at && b->n == (uint32_t)len) memcpy(z, b->zp, (size_t)len * sizeof *z);
  int ax = p->v[v].role == LB_QROLE_ACC ? p->v[v].axis : 0;
  int rc = lb_qplan_set(p, v, (uint32_t)len, len > 1 ? ax : -1, s, z);
  lb_free(s), lb_free(z);
  return rc;
}

/* pow2[v] = 1 for the values a layer with requantize shift reads or writes: their scales are
 * powers of two, so its multipliers are too (quant.h). */
static uint8_t *shift_values(const lb_graph *g, const lb_qplan *p) {
  uint8_t *pow2 = lb_calloc(g->n_values ? g->n_values : 1, 1);
  for (uint32_t n = 0; pow2 && n < g->n_nodes; n++) {
    const lb_node *nd = &g->nodes[n];
    if (!p->l[n].integer || p->l[n].requant != LB_REQUANT_SHIFT) continue;
    for (uint32_t k = 0; k < nd->n_in; k++)
      if (nd->in[k] != LB_NONE) pow2[nd->in[k]] = 1;
    for (uint32_t k = 0; k < nd->n_out; k++) pow2[nd->out[k]] = 1;
  }
  return pow2;
}

int lb_quant_params(const lb_graph *g, lb_qplan *p, lb_diag *diag) {
  uint8_t *pow2 = shift_values(g, p);
  int rc = pow2 ? 0 : LB_ERR_NOMEM;
  for (uint32_t v = 0; !rc && v < g->n_values; v++) {
    const lb_qval *q = &p->v[v];
    if (q->dtype == LB_DTYPE_F32 || q->cls != v) continue;
    if (q->role == LB_QROLE_WEIGHT) rc = weight_params(g, p, v, pow2[v]);
    else if (q->role != LB_QROLE_BIAS && q->role != LB_QROLE_ACC)
      rc = class_params(g, p, v, pow2, diag);
  }
  lb_free(pow2);

  for (uint32_t v = 0; !rc && v < g->n_values; v++)
    if (p->v[v].dtype != LB_DTYPE_F32 &&
        (p->v[v].role == LB_QROLE_BIAS || p->v[v].role == LB_QROLE_ACC))
      rc = bias_params(g, p, v);
  if (rc == LB_ERR_NOMEM) return lb_diag_err(diag, rc, "out of memory");
  if (rc == LB_ERR_INTERNAL) return lb_diag_err(diag, rc, "bias without activation/weight scales");
  return rc;
}
