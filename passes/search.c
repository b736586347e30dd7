/* Per-layer precision search: the search space (spec combinations per MAC layer plus fp32), the
 * simulated-quantization evaluator (the fp32 interpreter on fake-quantized weights and
 * activations, with the integer kernels' semantics), and the two strategies: auto (sensitivity
 * of each layer alone -> Lagrangian knapsack over modeled cost and measured noise -> greedy
 * refinement with real evaluation) and hago-greedy (coordinate descent on quality alone).
 * Invariant: activation scales are the int8 plan's (8-bit activations everywhere; binary
 * layers binarize their input internally), so the plan's shared-scale classes always hold. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "search.h"

typedef struct fqw {
  float *w, *b; /* fake-quantized weight and bias of one option (NULL for fp32: originals) */
  float *scale; /* per-channel weight scales */
  uint32_t n_scale;
  int32_t *bz;  /* bias correction in units of the int32 bias (lb_search_bias_units), or NULL */
} fqw;

struct lb_search {
  const lb_graph *g;
  const lb_spec *spec;
  const lb_qplan *p;
  const lb_tensor *calib, *x, *labels;
  uint32_t n_layers, *layer_of; /* layer_of[node]: layer index or LB_NONE */
  lb_search_layer *layers;
  fqw *fq;          /* [layer * LB_SEARCH_MAX_OPTS + opt] */
  float *bin_scale; /* per layer: binary activation magnitude s_b */
  int32_t *bin_thr; /* per layer: threshold in the input's integer domain */
  double **mean;    /* per layer: mean of its fp32 input per input channel (calibration set) */
  double wbw;       /* weight bandwidth (level of the all-int8 weights) */
  double interp_s;  /* CPU seconds of one sample on the interpreter (the fp32 reference) */
  double eval_s;    /* CPU seconds of the all-int8 evaluation on s->eval */
  double *meas;     /* --measure: cycles [layer * LB_SEARCH_MAX_OPTS + opt], <0 unknown; or NULL */
  double meas_rest; /* measured cycles of the rest of the all-int8 plan */
  double meas_f32;  /* measured cycles of the fp32 model (<0: unknown) */
  double *pair;     /* --measure: [a * n_layers + b] correction of neighbours a, b both fp32 */
  /* evaluation */
  int64_t n_eval, out_n, sample_n;
  lb_tensor *val;        /* per value, one sample */
  unsigned char *is_fq;  /* value holds fake-quantized data */
  float *tmp[4];         /* per input slot scratch */
  int64_t tmp_n;
  float *ref;            /* fp32 outputs [n_eval * out_n] */
  int32_t *ref_top;      /* fp32 top-1 */
  float *work;           /* outputs of one evaluation */
  unsigned char *integer; /* per node, for the assignment being run */
  /* snapshot of the base assignment (prefix reuse in the sensitivity pass) */
  float **snap;          /* [sample * n_values] */
  int64_t snap_n;
  /* results */
  lb_search_point *pts;
  uint32_t n_pts, cap_pts, chosen, fp32_pt, int8_pt, n_evals;
  int met; /* the chosen point meets the quality goal and the budgets */
  lb_search_eval_fn eval;
  void *eval_user;
};

const char *lb_strategy_name(lb_strategy s) {
  static const char *const names[] = {"auto", "hago-greedy"};
  _Static_assert(sizeof names / sizeof names[0] == LB_STRATEGY_COUNT, "strategy names");
  return names[s];
}

int lb_strategy_from_name(const char *s, lb_strategy *out) {
  for (int i = 0; i < LB_STRATEGY_COUNT; i++)
    if (strcmp(s, lb_strategy_name((lb_strategy)i)) == 0) return *out = (lb_strategy)i, 0;
  return -1;
}

static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- weight quantization (the semantics the sub-byte kernels share) ------------------------ */

/* Largest magnitude of a symmetric narrow weight of dtype t: i8 127, i4 7, i2 1 (and any other
 * integer dtype's qmax); b1 1 (its +-1). */
static int32_t wmax(lb_dtype t) {
  int32_t qmin, qmax;
  lb_qrange(t, &qmin, &qmax);
  return t == LB_DTYPE_B1 ? 1 : qmax;
}

/* Squared error of quantizing v[0..n) with scale s to [-qm, qm]; *vq and *qq get sum(v q) and
 * sum(q^2), whose ratio is the scale of least error for that rounding (a Lloyd step). */
static double chan_err(const float *v, int64_t n, double s, int32_t qm, double *vq, double *qq) {
  /* clamping first and rounding after gives the same q; adding and subtracting 1.5 * 2^52
   * rounds half to even like nearbyint (|x| <= qm), without the libm call */
  const double magic = 6755399441055744.0;
  double e = 0, a = 0, b = 0, inv = 1.0 / s;
  for (int64_t i = 0; i < n; i++) {
    double x = v[i] * inv;
    x = x > qm ? qm : x < -qm ? -qm : x;
    double q = (x + magic) - magic, d = v[i] - q * s;
    e += d * d, a += v[i] * q, b += q * q;
  }
  *vq = a, *qq = b;
  return e;
}

/* The scale of least squared error for v[0..n) in [-qm, qm], clipping at a fraction r of max|v|
 * (s = r max|v| / qm): a grid over r in (0, 1] in steps of 1/64, a finer grid (1/640) around its
 * best, then Lloyd steps (s = sum(v q) / sum(q^2) for the current rounding) while they lower the
 * error. Deterministic; never worse than max-abs (r = 1 is on the grid). */
static float mse_scale(const float *v, int64_t n, double amax, int32_t qm) {
  double vq, qq, best = amax / qm, be = chan_err(v, n, best, qm, &vq, &qq);
  for (int k = 63; k >= 1; k--) {
    double s = amax * k / 64.0 / qm, e = chan_err(v, n, s, qm, &vq, &qq);
    if (e < be) be = e, best = s;
  }
  double mid = best;
  for (int k = -9; k <= 9; k++) {
    double s = mid + amax * k / 640.0 / qm, e = s > 0 ? chan_err(v, n, s, qm, &vq, &qq) : INFINITY;
    if (e < be) be = e, best = s;
  }
  chan_err(v, n, best, qm, &vq, &qq);
  for (int it = 0; it < 16 && qq > 0; it++) {
    double s = vq / qq, e = s > 0 ? chan_err(v, n, s, qm, &vq, &qq) : INFINITY;
    if (!(e < be)) break;
    be = e, best = s;
  }
  return (float)best;
}

/* Scale of one channel's values v[0..n): max|w|/qmax for i8 (the least-error clip would add
 * only 0.3-0.5 dB of int8 output SQNR on the digits models); for narrower ranges (i6, i5, i4,
 * i2) the least-squared-error clip (mse_scale); for b1 mean|w| (least squares for +-s). */
static float chan_scale(const float *v, int64_t n, lb_dtype t) {
  double amax = 0, asum = 0;
  for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs(v[i])), asum += fabs(v[i]);
  if (!(amax > 0)) return 1.0f;
  if (t == LB_DTYPE_B1) return (float)(asum / (double)n);
  int32_t qm = wmax(t);
  if (qm >= 127) return (float)(amax / qm);
  return mse_scale(v, n, amax, qm);
}

/* The values of channel c (element i belongs to channel (i / inner) % ch), gathered into v. */
static int64_t gather_chan(const float *w, int64_t n, int64_t ch, int64_t inner, int64_t c,
                           float *v) {
  int64_t k = 0;
  for (int64_t o = c * inner; o < n; o += ch * inner)
    for (int64_t i = 0; i < inner && o + i < n; i++) v[k++] = w[o + i];
  return k;
}

int lb_search_quant_weights(const float *w, int64_t n, int64_t ch, int64_t inner, lb_dtype t,
                            float *scale, int32_t *q) {
  float *v = lb_malloc((size_t)(n ? n : 1) * sizeof *v);
  if (!v) return LB_ERR_NOMEM;
  for (int64_t c = 0; c < ch; c++) scale[c] = chan_scale(v, gather_chan(w, n, ch, inner, c, v), t);
  lb_free(v);
  if (!q) return 0;
  int32_t qm = wmax(t);
  for (int64_t i = 0; i < n; i++) {
    int64_t c = (i / inner) % ch;
    if (t == LB_DTYPE_B1) {
      q[i] = w[i] >= 0.0f ? 1 : -1;
      continue;
    }
    q[i] = lb_qquantize(w[i], scale[c], 0, -qm, qm);
  }
  return 0;
}

/* ---- bias correction (the empirical form of Nagel et al. 2019) -------------------------------
 * Quantized weights shift the expected output of channel j by sum_i (Wq - W)[j, i] E[x_c(i)];
 * the bias takes it back. E[x] is the mean of the layer's fp32 input per input channel over
 * the calibration set; taps in a conv's padding read 0, not the mean, which the correction
 * ignores. The search's simulation and realize (through the plan's bias zero points, calibrate
 * and lb_search_apply) use these functions alone. */

static int weight_axis(const lb_node *n);

int lb_search_bias_corrected(lb_dtype t) { return t != LB_DTYPE_B1 && wmax(t) < 127; }

/* Conv geometry for the tap means: kernel taps K, output positions and their steps. */
typedef struct tapgeo {
  int64_t C, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, batch;
} tapgeo;

static tapgeo tap_geo(const lb_graph *g, const lb_node *nd) {
  const lb_value *x = &g->values[nd->in[0]], *y = &g->values[nd->out[0]];
  const lb_value *w = &g->values[nd->in[1]];
  const lb_attrs *a = &nd->attr;
  int two = x->rank == 4;
  tapgeo t = {x->dims[1], two ? x->dims[2] : 1, x->dims[x->rank - 1], two ? y->dims[2] : 1,
              y->dims[y->rank - 1], two ? w->dims[2] : 1, w->dims[w->rank - 1],
              two ? a->strides[0] : 1, a->strides[a->n_spatial - 1], two ? a->pads[0] : 0,
              a->pads[a->n_spatial - 1], two ? a->dilations[0] : 1,
              a->dilations[a->n_spatial - 1], x->dims[0]};
  return t;
}

int64_t lb_search_stat_len(const lb_graph *g, uint32_t n) {
  const lb_node *nd = &g->nodes[n];
  if (nd->op == LB_OP_CONV) {
    tapgeo t = tap_geo(g, nd);
    return t.C * t.KH * t.KW;
  }
  const lb_value *x = &g->values[nd->in[0]];
  return x->dims[nd->op == LB_OP_GEMM && nd->attr.trans_a ? 0 : x->rank - 1];
}

double lb_search_stat_count(const lb_graph *g, uint32_t n) {
  const lb_node *nd = &g->nodes[n];
  if (nd->op == LB_OP_CONV) {
    tapgeo t = tap_geo(g, nd);
    return (double)(t.batch * t.OH * t.OW);
  }
  return (double)(lb_value_numel(&g->values[nd->in[0]]) / lb_search_stat_len(g, n));
}

/* Sum over the output positions of the input value tap (kh, kw) of channel c reads. */
static double tap_sum(const tapgeo *t, const float *x, int64_t c, int64_t kh, int64_t kw) {
  double a = 0;
  for (int64_t b = 0; b < t->batch; b++)
    for (int64_t oh = 0; oh < t->OH; oh++) {
      int64_t ih = oh * t->sh - t->ph + kh * t->dh;
      if (ih < 0 || ih >= t->H) continue;
      const float *row = x + ((b * t->C + c) * t->H + ih) * t->W;
      for (int64_t ow = 0; ow < t->OW; ow++) {
        int64_t iw = ow * t->sw - t->pw + kw * t->dw;
        if (iw >= 0 && iw < t->W) a += row[iw];
      }
    }
  return a;
}

void lb_search_stat_add(const lb_graph *g, uint32_t n, const lb_tensor *x, double *sum) {
  const lb_node *nd = &g->nodes[n];
  const float *d = x->data;
  if (nd->op == LB_OP_CONV) {
    tapgeo t = tap_geo(g, nd);
    for (int64_t c = 0; c < t.C; c++)
      for (int64_t kh = 0; kh < t.KH; kh++)
        for (int64_t kw = 0; kw < t.KW; kw++) sum[(c * t.KH + kh) * t.KW + kw] += tap_sum(&t, d, c, kh, kw);
    return;
  }
  int64_t len = lb_search_stat_len(g, n), ne = lb_tensor_numel(x);
  if (nd->op == LB_OP_GEMM && nd->attr.trans_a) { /* x [K, M] */
    for (int64_t i = 0; i < ne; i++) sum[i / (ne / len)] += d[i];
    return;
  }
  for (int64_t i = 0; i < ne; i++) sum[i % len] += d[i];
}

/* Output channel j and statistic index c (input channel, times taps plus the tap for a conv) of
 * weight element i of MAC node nd; 0, or -1
 * for a weight layout the correction does not cover (a matmul by a constant of rank > 2). */
static int wchan(const lb_graph *g, const lb_node *nd, int64_t i, int64_t *j, int64_t *c) {
  const lb_value *w = &g->values[nd->in[1]];
  if (nd->op == LB_OP_CONV) {
    int64_t k = 1, cg = w->dims[1], m = w->dims[0];
    for (int d = 2; d < w->rank; d++) k *= w->dims[d];
    int64_t groups = g->values[nd->in[0]].dims[1] / (cg ? cg : 1), per = m / (groups ? groups : 1);
    *j = i / (cg * k);
    *c = ((*j / (per ? per : 1)) * cg + (i / k) % cg) * k + i % k;
    return 0;
  }
  if (w->rank != 2) return -1;
  int tb = nd->op == LB_OP_GEMM && nd->attr.trans_b;
  *j = tb ? i / w->dims[1] : i % w->dims[1];
  *c = tb ? i % w->dims[1] : i / w->dims[1];
  return 0;
}

int lb_search_bias_corr(const lb_graph *g, uint32_t n, lb_dtype t, const float *scale,
                        uint32_t n_scale, const double *mean, int64_t nb, double *corr) {
  const lb_node *nd = &g->nodes[n];
  const lb_value *w = &g->values[nd->in[1]];
  int64_t nw = lb_value_numel(w), nj = w->dims[weight_axis(nd)], j, c;
  int32_t qm = wmax(t);
  if (nb != nj || (n_scale != 1 && (int64_t)n_scale != nj)) return -1;
  memset(corr, 0, (size_t)nb * sizeof *corr);
  const float *x = w->data;
  for (int64_t i = 0; i < nw; i++) {
    if (wchan(g, nd, i, &j, &c)) return -1;
    float s = scale[n_scale > 1 ? j : 0];
    double wq = (double)lb_qquantize(x[i], s, 0, -qm, qm) * s;
    corr[j] += (wq - x[i]) * mean[c];
  }
  return 0;
}

void lb_search_bias_units(const double *corr, int64_t nb, float sa, const float *sw,
                          uint32_t n_sw, int32_t *z) {
  for (int64_t j = 0; j < nb; j++) {
    double unit = (float)((double)sa * (double)sw[n_sw > 1 ? j : 0]);
    double u = nearbyint(-corr[j] / unit);
    z[j] = u > INT32_MAX / 2 ? INT32_MAX / 2 : u < -(INT32_MAX / 2) ? -(INT32_MAX / 2) : (int32_t)u;
  }
}

/* ---- layers and options ------------------------------------------------------------------- */

static int weight_axis(const lb_node *n) {
  if (n->op == LB_OP_GEMM) return n->attr.trans_b ? 0 : 1;
  return n->op == LB_OP_MATMUL ? 1 : 0;
}

static int searchable(const lb_graph *g, const lb_qplan *p, uint32_t n) {
  const lb_node *nd = &g->nodes[n];
  if (!p->l[n].integer) return 0;
  if (nd->op != LB_OP_CONV && nd->op != LB_OP_GEMM && nd->op != LB_OP_MATMUL) return 0;
  return nd->n_in > 1 && g->values[nd->in[1]].data != NULL;
}

/* A combination the search offers: fp32 requantize, or an integer method (fixed_point, shift)
 * on 8-bit weights, which realize and every backend carry; the simulation rounds those in fp32,
 * so its estimate is then within one unit per requantize. */
static int opt_ok(const lb_qplan *p, const lb_spec_combo *c) {
  int rq_ok = c->requant == LB_REQUANT_FP32 ||
              (lb_requant_integer(c->requant) && c->weight == LB_DTYPE_I8);
  if (!rq_ok || c->out != p->act) return 0;
  if (c->act == LB_DTYPE_B1) return c->weight == LB_DTYPE_B1;
  if (c->act != p->act) return 0;
  return c->weight == LB_DTYPE_I8 || c->weight == LB_DTYPE_I4 || c->weight == LB_DTYPE_I2 ||
         lb_dtype_narrow8(c->weight);
}

static void add_opts(lb_search *s, lb_search_layer *L) {
  const lb_spec_combo *cs;
  size_t nc = lb_spec_combos(s->spec, L->kind, &cs);
  L->opt[0] = (lb_search_opt){NULL, LB_DTYPE_F32, LB_DTYPE_F32, "f32"};
  L->n_opt = 1;
  L->base = -1;
  for (size_t i = 0; i < nc && L->n_opt < LB_SEARCH_MAX_OPTS; i++) {
    if (!opt_ok(s->p, &cs[i])) continue;
    const lb_spec_combo *best = lb_spec_find(s->spec, L->kind, cs[i].act, cs[i].weight);
    int dup = 0;
    for (int k = 1; k < L->n_opt; k++) dup |= L->opt[k].combo == best;
    if (dup || !best) continue;
    if (best->weight == s->p->l[L->node].weight && best->act == s->p->act) L->base = L->n_opt;
    L->opt[L->n_opt++] = (lb_search_opt){best, best->act, best->weight, best->label};
  }
}

/* Channel count and inner size of node n's weight along its per-channel axis. */
static void wgeom(const lb_graph *g, const lb_node *n, int per_channel, int64_t *ch,
                  int64_t *inner) {
  const lb_value *w = &g->values[n->in[1]];
  int ax = weight_axis(n);
  *ch = per_channel ? w->dims[ax] : 1;
  *inner = 1;
  for (int i = per_channel ? ax + 1 : w->rank; i < w->rank; i++) *inner *= w->dims[i];
  if (!per_channel) *inner = lb_value_numel(w);
}

static float act_scale(const lb_search *s, uint32_t v) {
  const lb_qval *q = &s->p->v[v];
  return q->n ? q->scale[0] : 1.0f;
}

/* Fake-quantized weights and bias of layer li under option k. */
/* Bias of layer li under option k, rounded to the int32 grid of s_act * s_w[c]. Binary layers
 * fold their input's threshold (its DC part, t * sum of the signs of channel c) into it; a
 * bias-less binary layer has nowhere to put it and drops it. */
static int fq_bias(lb_search *s, uint32_t li, int k, const int32_t *q, fqw *f) {
  const lb_node *n = &s->g->nodes[s->layers[li].node];
  const lb_value *wv = &s->g->values[n->in[1]];
  int bin = s->layers[li].opt[k].act == LB_DTYPE_B1;
  uint32_t bv = n->n_in > 2 ? n->in[2] : LB_NONE;
  if (bv == LB_NONE) return 0;
  int64_t nb = lb_value_numel(&s->g->values[bv]), nw = lb_value_numel(wv);
  int64_t oc = wv->dims[weight_axis(n)], oinner = 1, ch = f->n_scale;
  for (int i = weight_axis(n) + 1; i < wv->rank; i++) oinner *= wv->dims[i];
  if (!(f->b = lb_calloc((size_t)nb + 1, sizeof(float)))) return LB_ERR_NOMEM;
  const lb_qval *xq = &s->p->v[n->in[0]];
  float sa = bin ? s->bin_scale[li] : act_scale(s, n->in[0]);
  double t_real = bin ? (double)(s->bin_thr[li] - (xq->n ? xq->zp[0] : 0)) * act_scale(s, n->in[0]) : 0;
  for (int64_t j = 0; j < nb; j++) {
    float sw = f->scale[ch > 1 ? j % ch : 0];
    double b = ((const float *)s->g->values[bv].data)[nb == 1 ? 0 : j];
    if (bin) {
      int64_t csum = 0;
      for (int64_t i = 0; i < nw; i++)
        if ((i / oinner) % oc == j) csum += q[i];
      b += t_real * sw * (double)csum;
    }
    double unit = (double)sa * sw;
    f->b[j] = (float)((nearbyint(b / unit) + (f->bz ? f->bz[j] : 0)) * unit);
  }
  return 0;
}

/* The bias correction of layer li under option k (f->bz), for corrected weight dtypes of
 * layers with a bias (s->mean). */
static int bias_corr(lb_search *s, uint32_t li, int k, fqw *f) {
  const lb_search_opt *o = &s->layers[li].opt[k];
  uint32_t n = s->layers[li].node;
  if (!s->mean[li] || o->act == LB_DTYPE_B1 || !lb_search_bias_corrected(o->weight)) return 0;
  int64_t nb = lb_value_numel(&s->g->values[s->g->nodes[n].in[2]]);
  double *corr = lb_malloc((size_t)nb * sizeof *corr + 1);
  f->bz = lb_malloc((size_t)nb * sizeof *f->bz + 1);
  if (!corr || !f->bz) return lb_free(corr), LB_ERR_NOMEM;
  if (lb_search_bias_corr(s->g, n, o->weight, f->scale, f->n_scale, s->mean[li], nb, corr) == 0)
    lb_search_bias_units(corr, nb, act_scale(s, s->g->nodes[n].in[0]), f->scale, f->n_scale, f->bz);
  else
    lb_free(f->bz), f->bz = NULL;
  lb_free(corr);
  return 0;
}

static int make_fq(lb_search *s, uint32_t li, int k) {
  const lb_search_layer *L = &s->layers[li];
  const lb_node *n = &s->g->nodes[L->node];
  const lb_search_opt *o = &L->opt[k];
  fqw *f = &s->fq[li * LB_SEARCH_MAX_OPTS + k];
  if (!o->combo) return 0;
  const lb_value *wv = &s->g->values[n->in[1]];
  int64_t nw = lb_value_numel(wv), ch, inner;
  wgeom(s->g, n, (o->combo->granularity & LB_GRAN_PER_CHANNEL) != 0, &ch, &inner);
  f->w = lb_calloc((size_t)nw + 1, sizeof(float));
  f->scale = lb_calloc((size_t)ch, sizeof(float));
  int32_t *q = lb_calloc((size_t)nw + 1, sizeof(int32_t));
  int rc = !f->w || !f->scale || !q ? LB_ERR_NOMEM : 0;
  f->n_scale = (uint32_t)ch;
  if (!rc) rc = lb_search_quant_weights(wv->data, nw, ch, inner, o->weight, f->scale, q);
  for (int64_t i = 0; !rc && i < nw; i++) f->w[i] = (float)q[i] * f->scale[(i / inner) % ch];
  if (!rc) rc = bias_corr(s, li, k, f);
  if (!rc) rc = fq_bias(s, li, k, q, f);
  lb_free(q);
  return rc;
}

/* ---- the evaluator ------------------------------------------------------------------------ */

static void fq_act(const lb_search *s, uint32_t v, const float *in, float *out, int64_t n) {
  const lb_qval *q = &s->p->v[v];
  int32_t qmin, qmax;
  lb_qrange(q->dtype, &qmin, &qmax);
  float sc = q->scale[0];
  int32_t z = q->zp[0];
  for (int64_t i = 0; i < n; i++) out[i] = (float)(lb_qquantize(in[i], sc, z, qmin, qmax) - z) * sc;
}

/* Binary input of layer li: +s_b where the (8-bit) input reaches the threshold, else -s_b. */
static void binarize(const lb_search *s, uint32_t li, uint32_t v, const float *in, float *out,
                     int64_t n) {
  const lb_qval *q = &s->p->v[v];
  int32_t qmin, qmax;
  lb_qrange(q->dtype, &qmin, &qmax);
  float sb = s->bin_scale[li];
  for (int64_t i = 0; i < n; i++) {
    int32_t x = lb_qquantize(in[i], q->scale[0], q->zp[0], qmin, qmax);
    out[i] = x >= s->bin_thr[li] ? sb : -sb;
  }
}

/* Which nodes run in integer arithmetic under choice (mirrors annotate's decisions). */
static void mark_integer(lb_search *s, const unsigned char *choice) {
  const lb_graph *g = s->g;
  if (!choice) { /* the fp32 model itself */
    memset(s->integer, 0, g->n_nodes);
    return;
  }
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    uint32_t li = s->layer_of[n];
    if (li != LB_NONE) {
      s->integer[n] = s->layers[li].opt[choice[li]].combo != NULL;
      continue;
    }
    int any = 0, kind = lb_spec_opkind_of(g, n);
    for (uint32_t k = 0; k < g->nodes[n].n_in; k++) {
      uint32_t v = g->nodes[n].in[k];
      if (v != LB_NONE && g->values[v].producer != LB_NONE) any |= s->integer[g->values[v].producer];
    }
    s->integer[n] = s->p->l[n].integer &&
                    (any || (kind >= 0 && lb_spec_opkind_has_weight((lb_spec_opkind)kind)));
  }
}

static lb_tensor tensor_of(const lb_value *v, void *data) {
  lb_tensor t = {v->dtype, v->rank, {0}, data};
  memcpy(t.dims, v->dims, sizeof t.dims);
  return t;
}

/* Input k of node n as the simulated integer layer sees it. */
static lb_tensor node_input(lb_search *s, uint32_t n, uint32_t k, const unsigned char *choice) {
  const lb_graph *g = s->g;
  uint32_t v = g->nodes[n].in[k], li = s->layer_of[n];
  lb_tensor t = s->val[v];
  if (!s->integer[n] || g->values[v].dtype != LB_DTYPE_F32) return t;
  if (li != LB_NONE && k >= 1 && k <= 2) {
    const fqw *f = &s->fq[li * LB_SEARCH_MAX_OPTS + choice[li]];
    if (k == 1) t.data = f->w;
    else t.data = f->b;
    return t;
  }
  int64_t ne = lb_value_numel(&g->values[v]);
  int bin = li != LB_NONE && k == 0 && s->layers[li].opt[choice[li]].act == LB_DTYPE_B1;
  if (g->values[v].data && s->p->v[v].dtype == LB_DTYPE_F32) return t;
  if (s->p->v[v].dtype == LB_DTYPE_F32 || !s->p->v[v].n) return t;
  if (!bin && s->is_fq[v]) return t;
  float *dst = s->tmp[k < 4 ? k : 3];
  if (bin) binarize(s, li, v, t.data, dst, ne);
  else fq_act(s, v, t.data, dst, ne);
  t.data = dst;
  return t;
}

/* Runs nodes [start, n_nodes) on the values in s->val (earlier ones already there). */
static int run_nodes(lb_search *s, const unsigned char *choice, uint32_t start, lb_diag *d) {
  const lb_graph *g = s->g;
  lb_tensor in[64];
  for (uint32_t n = start; n < g->n_nodes; n++) {
    const lb_node *nd = &g->nodes[n];
    for (uint32_t k = 0; k < nd->n_in; k++)
      in[k] = nd->in[k] == LB_NONE ? (lb_tensor){0} : node_input(s, n, k, choice);
    uint32_t o = nd->out[0];
    LB_TRY(lb_eval_node(g, n, in, &s->val[o], d));
    s->is_fq[o] = 0;
    if (s->integer[n] && s->p->v[o].dtype != LB_DTYPE_F32 && s->p->v[o].n) {
      int64_t ne = lb_value_numel(&g->values[o]);
      fq_act(s, o, s->val[o].data, s->val[o].data, ne);
      s->is_fq[o] = 1;
    }
  }
  return 0;
}

/* Sample i of every graph input: x holds one tensor per input, in input order. */
static void set_input(lb_search *s, const lb_tensor *x, int64_t i) {
  for (uint32_t k = 0; k < s->g->n_inputs; k++) {
    uint32_t v = s->g->inputs[k];
    size_t per = lb_dtype_bytes(x[k].dtype, lb_value_numel(&s->g->values[v]));
    s->val[v].data = (char *)x[k].data + (size_t)i * per;
    s->is_fq[v] = 0;
  }
}

static void copy_out(lb_search *s, float *out) {
  memcpy(out, s->val[s->g->outputs[0]].data, (size_t)s->out_n * sizeof(float));
}

/* The default evaluator: the interpreter on the simulated-quantized graph. */
static int eval_interp(lb_search *s, void *user, const unsigned char *choice, int64_t n,
                       float *out, lb_diag *d) {
  (void)user;
  mark_integer(s, choice);
  for (int64_t i = 0; i < n; i++) {
    set_input(s, s->x, i);
    LB_TRY(run_nodes(s, choice, 0, d));
    copy_out(s, out + i * s->out_n);
  }
  return 0;
}

/* ---- scores ------------------------------------------------------------------------------- */

static int32_t top1(const float *y, int64_t n) {
  int32_t b = 0;
  for (int64_t i = 1; i < n; i++)
    if (y[i] > y[b]) b = (int32_t)i;
  return b;
}

static int64_t label_at(const lb_tensor *l, int64_t i) {
  return l->dtype == LB_DTYPE_I64 ? ((const int64_t *)l->data)[i] : ((const int32_t *)l->data)[i];
}

/* Score of outputs y for samples [0, n). */
static lb_search_score score(const lb_search *s, const float *y, int64_t n) {
  lb_search_score r = {0, 0, 0, 0};
  double sig = 0, noise = 0;
  int64_t hit = 0, agree = 0;
  for (int64_t i = 0; i < n; i++) {
    const float *yi = y + i * s->out_n, *ri = s->ref + i * s->out_n;
    int32_t t = top1(yi, s->out_n);
    agree += t == s->ref_top[i];
    if (s->labels) hit += t == label_at(s->labels, i);
    for (int64_t j = 0; j < s->out_n; j++) {
      double e = (double)yi[j] - ri[j];
      sig += (double)ri[j] * ri[j], noise += e * e;
    }
  }
  r.acc = n ? 100.0 * (double)hit / (double)n : 0;
  r.agree = n ? 100.0 * (double)agree / (double)n : 0;
  r.sqnr = noise > 0 ? fmin(200.0, 10.0 * log10(sig / noise)) : 200.0;
  r.quality = s->labels ? r.acc : r.agree;
  return r;
}

static double rel_noise(const lb_search *s, const float *y, int64_t n) {
  double sig = 0, noise = 0;
  for (int64_t i = 0; i < n * s->out_n; i++) {
    double e = (double)y[i] - s->ref[i];
    sig += (double)s->ref[i] * s->ref[i], noise += e * e;
  }
  return sig > 0 ? noise / sig : noise;
}

int lb_search_score_of(lb_search *s, const unsigned char *choice, lb_search_score *out,
                       lb_diag *d) {
  LB_TRY(s->eval(s, s->eval_user, choice, s->n_eval, s->work, d));
  s->n_evals++;
  *out = score(s, s->work, s->n_eval);
  return 0;
}

/* ---- cost of an assignment ---------------------------------------------------------------- */

static lb_dtype opt_wdt(const lb_search_opt *o) { return o->combo ? o->weight : LB_DTYPE_F32; }

/* Elements per cycle of a quantize or dequantize: the fp32 activation rate. */
static double convert_rate(const lb_spec *spec) {
  const lb_spec_combo *c = lb_spec_find(spec, LB_SPEC_ACTIVATION, LB_DTYPE_F32, LB_DTYPE_F32);
  double r = c ? lb_spec_combo_rate(c) : 0;
  return r > 0 ? r : 8.0;
}

/* Modeled cycles of layer li under option k with its weights read at wbw bytes per cycle. */
static double model_layer(const lb_search *s, uint32_t li, int k, double wbw) {
  const lb_search_opt *o = &s->layers[li].opt[k];
  lb_cost c = lb_cost_node(s->spec, s->g, s->layers[li].node, o->combo,
                           o->combo ? o->act : LB_DTYPE_F32, opt_wdt(o), wbw);
  return lb_cost_total(&c);
}

/* Cycles of layer li under option k: measured when --measure gave a figure; an option the
 * measurement could not run takes the model scaled by the layer's measured/modeled ratio at
 * its base option (so one layer's options stay comparable). */
static double layer_cost(const lb_search *s, uint32_t li, int k, double wbw) {
  if (!s->meas) return model_layer(s, li, k, wbw);
  const double *m = s->meas + (size_t)li * LB_SEARCH_MAX_OPTS;
  if (m[k] >= 0) return m[k];
  int b = s->layers[li].base;
  double mb = model_layer(s, li, b, s->wbw);
  return m[b] > 0 && mb > 0 ? model_layer(s, li, k, wbw) * m[b] / mb : model_layer(s, li, k, wbw);
}

/* Modeled cycles of everything but the searched layers under choice: the other nodes (which
 * run integer or fp32 depending on their inputs, see mark_integer) and a quantize or
 * dequantize wherever an fp32 node reads an integer one or the reverse. */
static double rest_cycles(const lb_search *s, const unsigned char *choice, double bw) {
  const lb_graph *g = s->g;
  lb_search *m = (lb_search *)s; /* integer[] is scratch */
  double cyc = 0;
  mark_integer(m, choice);
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    const lb_node *nd = &g->nodes[n];
    if (s->layer_of[n] == LB_NONE) {
      lb_dtype act = m->integer[n] ? s->p->act : LB_DTYPE_F32;
      lb_cost c = lb_cost_node(s->spec, g, n, NULL, act,
                               s->p->l[n].integer ? s->p->l[n].weight : LB_DTYPE_F32, bw);
      cyc += lb_cost_total(&c);
    }
    for (uint32_t k = 0; k < nd->n_in; k++) {
      uint32_t v = nd->in[k];
      if (v == LB_NONE || g->values[v].data) continue;
      int from = g->values[v].producer != LB_NONE && m->integer[g->values[v].producer];
      if (from != m->integer[n] && s->p->v[v].dtype != LB_DTYPE_F32)
        cyc += (double)lb_value_numel(&g->values[v]) / convert_rate(s->spec);
    }
  }
  return cyc;
}

/* The pair corrections of the neighbours that are both fp32 under choice (measured mode). */
static double pairs_of(const lb_search *s, const unsigned char *choice) {
  double c = 0;
  for (uint32_t a = 0; s->pair && a < s->n_layers; a++)
    for (uint32_t b = 0; b < s->n_layers; b++)
      if (!s->layers[a].opt[choice[a]].combo && !s->layers[b].opt[choice[b]].combo)
        c += s->pair[(size_t)a * s->n_layers + b];
  return c;
}

/* Modeled: every node from the spec. Measured: the measured rest of the all-int8 plan plus
 * the measured layers (an fp32 layer's figure already holds the change of the rest its island
 * brings: conversions, neighbours running fp32; lb_search_set_measured). Two neighbouring
 * fp32 layers would count the conversions between them twice: their pair correction
 * (lb_search_set_pair) takes that back; the all-fp32 assignment is the fp32 model measured
 * whole. */
double lb_search_cycles(const lb_search *s, const unsigned char *choice, int64_t *wbytes) {
  int64_t wb = 0;
  for (uint32_t li = 0; li < s->n_layers; li++)
    wb += lb_cost_weight_bytes(s->g, s->layers[li].node, opt_wdt(&s->layers[li].opt[choice[li]]));
  double bw;
  lb_cost_weight_level(s->spec, wb, &bw);
  int all_f32 = 1;
  for (uint32_t li = 0; li < s->n_layers; li++) all_f32 &= s->layers[li].opt[choice[li]].combo == NULL;
  if (s->meas && all_f32 && s->meas_f32 >= 0) { /* islands merged: measured whole */
    if (wbytes) *wbytes = wb;
    return s->meas_f32;
  }
  double cyc = s->meas ? s->meas_rest : rest_cycles(s, choice, bw);
  for (uint32_t li = 0; li < s->n_layers; li++) cyc += layer_cost(s, li, choice[li], bw);
  if (s->meas) cyc += pairs_of(s, choice);
  if (wbytes) *wbytes = wb;
  return cyc;
}

double lb_search_ms(const lb_search *s, double cycles) {
  double ghz = lb_spec_clock_ghz(s->spec);
  return cycles / ((ghz > 0 ? ghz : 1.0) * 1e6);
}

double lb_search_layer_cycles(const lb_search *s, const unsigned char *choice, uint32_t li) {
  int64_t wb = 0;
  double bw;
  for (uint32_t i = 0; i < s->n_layers; i++)
    wb += lb_cost_weight_bytes(s->g, s->layers[i].node, opt_wdt(&s->layers[i].opt[choice[i]]));
  lb_cost_weight_level(s->spec, wb, &bw);
  return layer_cost(s, li, choice[li], bw);
}

/* Cost of layer li alone under option k (weights at the all-int8 level): the knapsack's item. */
static double layer_cycles(const lb_search *s, uint32_t li, int k) {
  return layer_cost(s, li, k, s->wbw);
}

int lb_search_neighbour(const lb_search *s, uint32_t b) {
  const lb_graph *g = s->g;
  uint32_t v = g->nodes[s->layers[b].node].in[0];
  for (uint32_t p = g->values[v].producer; p != LB_NONE; p = g->values[g->nodes[p].in[0]].producer) {
    if (s->layer_of[p] != LB_NONE) return (int)s->layer_of[p];
    int kind = lb_spec_opkind_of(g, p);
    if ((kind >= 0 && lb_spec_opkind_has_weight((lb_spec_opkind)kind)) || g->nodes[p].n_in < 1 ||
        g->nodes[p].in[0] == LB_NONE)
      return -1; /* another MAC node, or a source: no searched neighbour */
  }
  return -1;
}

int lb_search_set_pair(lb_search *s, uint32_t a, uint32_t b, double cycles) {
  if (!s->pair && !(s->pair = lb_calloc((size_t)s->n_layers * s->n_layers + 1, sizeof *s->pair)))
    return LB_ERR_NOMEM;
  s->pair[(size_t)a * s->n_layers + b] = cycles;
  for (uint32_t i = 0; i < s->n_pts; i++)
    s->pts[i].cycles = lb_search_cycles(s, s->pts[i].choice, &s->pts[i].weight_bytes);
  return 0;
}

int lb_search_set_measured(lb_search *s, const double *cycles, double rest, double f32) {
  lb_free(s->meas), lb_free(s->pair);
  s->meas = NULL, s->pair = NULL;
  if (cycles) {
    size_t n = (size_t)(s->n_layers ? s->n_layers : 1) * LB_SEARCH_MAX_OPTS;
    if (!(s->meas = lb_malloc(n * sizeof *s->meas))) return LB_ERR_NOMEM;
    memcpy(s->meas, cycles, (size_t)s->n_layers * LB_SEARCH_MAX_OPTS * sizeof *s->meas);
    s->meas_rest = rest, s->meas_f32 = f32;
  }
  for (uint32_t i = 0; i < s->n_pts; i++) /* points made earlier take the new costs */
    s->pts[i].cycles = lb_search_cycles(s, s->pts[i].choice, &s->pts[i].weight_bytes);
  return 0;
}

int lb_search_measured(const lb_search *s) { return s->meas != NULL; }

/* ---- building the search ------------------------------------------------------------------ */

static int alloc_values(lb_search *s) {
  const lb_graph *g = s->g;
  uint32_t nv = g->n_values ? g->n_values : 1;
  s->val = lb_calloc(nv, sizeof *s->val);
  s->is_fq = lb_calloc(nv, 1);
  s->integer = lb_calloc(g->n_nodes ? g->n_nodes : 1, 1);
  if (!s->val || !s->is_fq || !s->integer) return LB_ERR_NOMEM;
  for (uint32_t v = 0; v < g->n_values; v++) {
    const lb_value *val = &g->values[v];
    if (val->dtype != LB_DTYPE_F32 && !val->data && !val->is_input)
      return LB_ERR_INPUT; /* reported by the caller */
    s->val[v] = tensor_of(val, val->data);
    int64_t ne = lb_value_numel(val);
    if (ne > s->tmp_n) s->tmp_n = ne;
    if (val->data || val->is_input) continue;
    s->val[v].data = lb_calloc((size_t)(ne ? ne : 1), sizeof(float));
    if (!s->val[v].data) return LB_ERR_NOMEM;
  }
  for (int k = 0; k < 4; k++)
    if (!(s->tmp[k] = lb_calloc((size_t)(s->tmp_n ? s->tmp_n : 1), sizeof(float)))) return LB_ERR_NOMEM;
  return 0;
}

static int find_layers(lb_search *s) {
  const lb_graph *g = s->g;
  s->layer_of = lb_malloc((g->n_nodes ? g->n_nodes : 1) * sizeof(uint32_t));
  s->layers = lb_calloc(g->n_nodes ? g->n_nodes : 1, sizeof *s->layers);
  if (!s->layer_of || !s->layers) return LB_ERR_NOMEM;
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    s->layer_of[n] = LB_NONE;
    if (!searchable(g, s->p, n)) continue;
    lb_search_layer *L = &s->layers[s->n_layers];
    L->node = n;
    L->kind = (lb_spec_opkind)lb_spec_opkind_of(g, n);
    add_opts(s, L);
    if (L->base < 0) continue; /* the int8 plan's combination is not searchable */
    const lb_node *nd = &g->nodes[n];
    L->weight_elems = lb_value_numel(&g->values[nd->in[1]]);
    lb_cost c = lb_cost_node(s->spec, g, n, L->opt[L->base].combo, s->p->act, LB_DTYPE_I8, 1.0);
    L->macs = (int64_t)llround(c.compute * lb_spec_combo_rate(L->opt[L->base].combo));
    s->layer_of[n] = s->n_layers++;
  }
  return 0;
}

/* Binary activation thresholds and magnitudes from the calibration set, in one pass over it:
 * a histogram of each layer's 8-bit input gives the threshold (the mean) and the magnitude
 * (the mean distance to it: least squares for +-s). */
static void binary_fit(lb_search *s, uint32_t li, const uint64_t *h) {
  const lb_qval *q = &s->p->v[s->g->nodes[s->layers[li].node].in[0]];
  int32_t qmin, qmax;
  lb_qrange(q->dtype, &qmin, &qmax);
  double sum = 0, n = 0, dev = 0;
  for (int k = 0; k < 256; k++) sum += (double)h[k] * (qmin + k), n += (double)h[k];
  s->bin_thr[li] = (int32_t)llround(n > 0 ? sum / n : 0);
  for (int k = 0; k < 256; k++) dev += (double)h[k] * fabs((double)(qmin + k - s->bin_thr[li]));
  s->bin_scale[li] = n > 0 && dev > 0 ? (float)(dev / n * q->scale[0]) : 1.0f;
}

/* Per layer that has a bias and a corrected option: room for its input's channel means. */
static int alloc_means(lb_search *s) {
  for (uint32_t li = 0; li < s->n_layers; li++) {
    const lb_search_layer *L = &s->layers[li];
    const lb_node *nd = &s->g->nodes[L->node];
    int want = 0;
    for (int k = 0; k < L->n_opt; k++)
      want |= L->opt[k].combo && L->opt[k].act != LB_DTYPE_B1 && lb_search_bias_corrected(L->opt[k].weight);
    if (!want || nd->n_in < 3 || nd->in[2] == LB_NONE) continue;
    s->mean[li] = lb_calloc((size_t)lb_search_stat_len(s->g, L->node) + 1, sizeof(double));
    if (!s->mean[li]) return LB_ERR_NOMEM;
  }
  return 0;
}

/* Adds one sample's 8-bit input histogram (binary thresholds) and input channel sums (bias
 * correction) of every layer. */
static void layer_stats(lb_search *s, uint64_t *hist) {
  const lb_graph *g = s->g;
  for (uint32_t li = 0; li < s->n_layers; li++) {
    uint32_t n = s->layers[li].node, v = g->nodes[n].in[0];
    if (s->mean[li]) lb_search_stat_add(g, n, &s->val[v], s->mean[li]);
    const lb_qval *q = &s->p->v[v];
    int32_t qmin, qmax;
    lb_qrange(q->dtype, &qmin, &qmax);
    if (qmax - qmin != 255) continue; /* not an 8-bit input: no binary option fits */
    const float *x = s->val[v].data;
    for (int64_t j = 0; j < lb_value_numel(&g->values[v]); j++)
      hist[li * 256 + (uint32_t)(lb_qquantize(x[j], q->scale[0], q->zp[0], qmin, qmax) - qmin)]++;
  }
}

/* One fp32 pass over the calibration set: binary parameters and input channel means. */
static int calib_stats(lb_search *s, const unsigned char *f32, lb_diag *d) {
  const lb_graph *g = s->g;
  uint64_t *hist = lb_calloc((size_t)(s->n_layers + 1) * 256, sizeof(uint64_t));
  int rc = hist ? alloc_means(s) : LB_ERR_NOMEM;
  mark_integer(s, NULL);
  for (int64_t i = 0; !rc && i < s->calib->dims[0]; i++) {
    set_input(s, s->calib, i);
    rc = run_nodes(s, f32, 0, d);
    if (!rc) layer_stats(s, hist);
  }
  for (uint32_t li = 0; !rc && li < s->n_layers; li++) {
    binary_fit(s, li, hist + li * 256);
    uint32_t n = s->layers[li].node;
    double per = (double)s->calib->dims[0] * lb_search_stat_count(g, n);
    for (int64_t c = 0; s->mean[li] && c < lb_search_stat_len(g, n); c++) s->mean[li][c] /= per;
  }
  lb_free(hist);
  return rc;
}

static int reference(lb_search *s, const unsigned char *f32, lb_diag *d) {
  s->ref = lb_calloc((size_t)(s->n_eval * s->out_n), sizeof(float));
  s->work = lb_calloc((size_t)(s->n_eval * s->out_n), sizeof(float));
  s->ref_top = lb_calloc((size_t)s->n_eval, sizeof(int32_t));
  if (!s->ref || !s->work || !s->ref_top) return LB_ERR_NOMEM;
  (void)f32;
  double t0 = cpu_s();
  LB_TRY(eval_interp(s, NULL, NULL, s->n_eval, s->ref, d));
  s->interp_s = (cpu_s() - t0) / (double)s->n_eval;
  for (int64_t i = 0; i < s->n_eval; i++) s->ref_top[i] = top1(s->ref + i * s->out_n, s->out_n);
  return 0;
}

static int check_data(const lb_search *s, lb_diag *d) {
  const lb_graph *g = s->g;
  if (g->n_inputs < 1 || g->n_outputs < 1)
    return lb_diag_err(d, LB_ERR_INPUT, "search needs a model with inputs and outputs");
  const lb_tensor *sets[2] = {s->calib, s->x}; /* one tensor per graph input each */
  const char *what[2] = {"calibration", "evaluation"};
  for (int k = 0; k < 2; k++)
    for (uint32_t j = 0; j < g->n_inputs; j++) {
      const lb_value *in = &g->values[g->inputs[j]];
      const lb_tensor *t = &sets[k][j];
      if (t->dtype != in->dtype || t->rank < 1 || t->dims[0] < 1 || t->dims[0] != sets[k][0].dims[0])
        return lb_diag_err(d, LB_ERR_INPUT, "%s data: need %s samples along axis 0 for input '%s', "
                           "as many as for the first input", what[k], lb_dtype_name(in->dtype), in->name);
      if (lb_tensor_numel(t) / t->dims[0] != lb_value_numel(in))
        return lb_diag_err(d, LB_ERR_INPUT, "%s data: a sample has %lld values, input '%s' has %lld",
                           what[k], (long long)(lb_tensor_numel(t) / t->dims[0]), in->name,
                           (long long)lb_value_numel(in));
    }
  if (s->labels) {
    const lb_tensor *l = s->labels;
    if ((l->dtype != LB_DTYPE_I64 && l->dtype != LB_DTYPE_I32) || lb_tensor_numel(l) != s->x->dims[0])
      return lb_diag_err(d, LB_ERR_INPUT, "labels: need %lld integers (i64 or i32), got %s with %lld values",
                         (long long)s->x->dims[0], lb_dtype_name(l->dtype), (long long)lb_tensor_numel(l));
  }
  return 0;
}

static int setup(lb_search *s, lb_diag *d) {
  LB_TRY(check_data(s, d));
  int rc = alloc_values(s);
  if (rc == LB_ERR_INPUT)
    return lb_diag_err(d, LB_ERR_INPUT, "search needs an fp32 model");
  LB_TRY(rc);
  LB_TRY(find_layers(s));
  const lb_value *out = &s->g->values[s->g->outputs[0]];
  s->out_n = lb_value_numel(out);
  s->sample_n = lb_value_numel(&s->g->values[s->g->inputs[0]]);
  s->n_eval = s->x->dims[0];
  uint32_t nl = s->n_layers ? s->n_layers : 1;
  s->fq = lb_calloc((size_t)nl * LB_SEARCH_MAX_OPTS, sizeof *s->fq);
  s->bin_scale = lb_calloc(nl, sizeof(float));
  s->bin_thr = lb_calloc(nl, sizeof(int32_t));
  s->mean = lb_calloc(nl, sizeof *s->mean);
  unsigned char *f32 = lb_calloc(nl, 1);
  unsigned char *base = lb_calloc(nl, 1);
  if (!s->fq || !s->bin_scale || !s->bin_thr || !s->mean || !f32 || !base) rc = LB_ERR_NOMEM;
  if (!rc) rc = calib_stats(s, f32, d);
  for (uint32_t li = 0; !rc && li < s->n_layers; li++)
    for (int k = 0; !rc && k < s->layers[li].n_opt; k++) rc = make_fq(s, li, k);
  if (!rc) rc = reference(s, f32, d);
  for (uint32_t li = 0; !rc && li < s->n_layers; li++) base[li] = (unsigned char)s->layers[li].base;
  int64_t wb = 0;
  if (!rc) lb_search_cycles(s, base, &wb), lb_cost_weight_level(s->spec, wb, &s->wbw);
  lb_free(f32), lb_free(base);
  if (rc == LB_ERR_NOMEM) lb_diag_err(d, rc, "out of memory");
  return rc;
}

int lb_search_new(const lb_graph *g, const lb_spec *spec, const lb_qplan *p, const lb_tensor *calib,
                  const lb_tensor *x, const lb_tensor *labels, lb_search **out, lb_diag *d) {
  *out = NULL;
  lb_search *s = lb_calloc(1, sizeof *s);
  if (!s) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  *s = (lb_search){.g = g, .spec = spec, .p = p, .calib = calib, .x = x, .labels = labels};
  s->eval = eval_interp;
  s->fp32_pt = s->int8_pt = s->chosen = UINT32_MAX;
  int rc = setup(s, d);
  if (rc) {
    lb_search_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

static void free_snap(lb_search *s) {
  for (int64_t i = 0; s->snap && i < s->snap_n * (int64_t)s->g->n_values; i++) lb_free(s->snap[i]);
  lb_free(s->snap);
  s->snap = NULL, s->snap_n = 0;
}

void lb_search_free(lb_search *s) {
  if (!s) return;
  for (uint32_t v = 0; s->val && v < s->g->n_values; v++)
    if (!s->g->values[v].data && !s->g->values[v].is_input) lb_free(s->val[v].data);
  for (uint32_t i = 0; s->fq && i < s->n_layers * LB_SEARCH_MAX_OPTS; i++)
    lb_free(s->fq[i].w), lb_free(s->fq[i].b), lb_free(s->fq[i].scale), lb_free(s->fq[i].bz);
  for (uint32_t li = 0; s->mean && li < s->n_layers; li++) lb_free(s->mean[li]);
  lb_free(s->mean);
  for (int k = 0; k < 4; k++) lb_free(s->tmp[k]);
  for (uint32_t i = 0; i < s->n_pts; i++) lb_free(s->pts[i].choice);
  free_snap(s);
  lb_free(s->val), lb_free(s->is_fq), lb_free(s->integer), lb_free(s->layer_of);
  lb_free(s->layers), lb_free(s->fq), lb_free(s->bin_scale), lb_free(s->bin_thr);
  lb_free(s->ref), lb_free(s->ref_top), lb_free(s->work), lb_free(s->pts), lb_free(s->meas);
  lb_free(s->pair);
  lb_free(s);
}

uint32_t lb_search_n_layers(const lb_search *s) { return s->n_layers; }
const lb_search_layer *lb_search_layer_at(const lb_search *s, uint32_t i) { return &s->layers[i]; }
int64_t lb_search_out_numel(const lb_search *s) { return s->out_n; }
int64_t lb_search_n_eval(const lb_search *s) { return s->n_eval; }
uint32_t lb_search_n_points(const lb_search *s) { return s->n_pts; }
const lb_search_point *lb_search_point_at(const lb_search *s, uint32_t i) { return &s->pts[i]; }
uint32_t lb_search_n_evals(const lb_search *s) { return s->n_evals; }
int lb_search_goal_met(const lb_search *s) { return s->met; }

static const lb_search_point *pt_or_null(const lb_search *s, uint32_t i) {
  return i < s->n_pts ? &s->pts[i] : NULL;
}
const lb_search_point *lb_search_chosen(const lb_search *s) { return pt_or_null(s, s->chosen); }
const lb_search_point *lb_search_fp32(const lb_search *s) { return pt_or_null(s, s->fp32_pt); }
const lb_search_point *lb_search_int8(const lb_search *s) { return pt_or_null(s, s->int8_pt); }

/* ---- points ------------------------------------------------------------------------------- */

static int add_point(lb_search *s, const unsigned char *choice, const lb_search_score *sc,
                     uint32_t *idx) {
  if (s->n_pts == s->cap_pts) {
    uint32_t cap = s->cap_pts ? 2 * s->cap_pts : 32;
    lb_search_point *np = lb_realloc(s->pts, cap * sizeof *np);
    if (!np) return LB_ERR_NOMEM;
    s->pts = np, s->cap_pts = cap;
  }
  lb_search_point *p = &s->pts[s->n_pts];
  memset(p, 0, sizeof *p);
  p->choice = lb_malloc(s->n_layers + 1);
  if (!p->choice) return LB_ERR_NOMEM;
  memcpy(p->choice, choice, s->n_layers);
  p->cycles = lb_search_cycles(s, choice, &p->weight_bytes);
  p->score = *sc;
  if (idx) *idx = s->n_pts;
  s->n_pts++;
  return 0;
}

/* An evaluated point for choice: reuses an earlier evaluation of the same assignment. */
static int eval_point(lb_search *s, const unsigned char *choice, uint32_t *idx, lb_diag *d) {
  for (uint32_t i = 0; i < s->n_pts; i++)
    if (i != s->fp32_pt && memcmp(s->pts[i].choice, choice, s->n_layers) == 0) return *idx = i, 0;
  lb_search_score sc;
  LB_TRY(lb_search_score_of(s, choice, &sc, d));
  return add_point(s, choice, &sc, idx);
}

typedef struct goal {
  double min_quality, max_ms;
  int64_t max_bytes;
  double min_sqnr;
} goal;

/* THE guard: whether realize (and so the JIT and the compiled plan) can build layer L with
 * option k. Every strategy, the knapsack, the refinement, the JIT sensitivity pass and
 * --measure ask only this predicate. (bin) Binary layers (act b1) realize as integer binary
 * conv/gemm nodes (quant.h lb_binary_node) that compute this simulation's integers wherever
 * annotate takes them (lb_quant_binary_layer: convs of any group, gemms, constant matmuls). */
int lb_search_opt_realizable(const lb_graph *g, const lb_search_layer *L, int k) {
  return L->opt[k].act != LB_DTYPE_B1 || lb_quant_binary_layer(g, L->node);
}

static int realizable(const lb_search *s, const lb_search_point *p) {
  for (uint32_t li = 0; li < s->n_layers; li++)
    if (!lb_search_opt_realizable(s->g, &s->layers[li], p->choice[li])) return 0;
  return 1;
}

static int feasible(const lb_search *s, const goal *G, uint32_t i) {
  const lb_search_point *p = &s->pts[i];
  if (!realizable(s, p)) return 0;
  if (p->score.quality < G->min_quality - 1e-9) return 0;
  if (G->min_sqnr > 0 && p->score.sqnr < G->min_sqnr) return 0;
  if (G->max_ms > 0 && lb_search_ms(s, p->cycles) > G->max_ms) return 0;
  return !(G->max_bytes > 0 && p->weight_bytes > G->max_bytes);
}

/* Cheapest feasible point (ties: higher quality), or UINT32_MAX. */
static uint32_t best_feasible(const lb_search *s, const goal *G) {
  uint32_t b = UINT32_MAX;
  for (uint32_t i = 0; i < s->n_pts; i++) {
    if (!feasible(s, G, i)) continue;
    const lb_search_point *p = &s->pts[i];
    if (b == UINT32_MAX || p->cycles < s->pts[b].cycles ||
        (p->cycles == s->pts[b].cycles && p->score.quality > s->pts[b].score.quality))
      b = i;
  }
  return b;
}

/* When no point meets the goal: the best quality within the budgets, else the cheapest
 * realizable point (budgets are hard limits, the quality goal is what gives). */
static uint32_t fallback(const lb_search *s, const goal *G) {
  goal budgets = *G;
  budgets.min_quality = -INFINITY, budgets.min_sqnr = 0;
  uint32_t b = UINT32_MAX;
  for (uint32_t i = 0; i < s->n_pts; i++) {
    if (!feasible(s, &budgets, i)) continue;
    const lb_search_point *p = &s->pts[i];
    if (b == UINT32_MAX || p->score.quality > s->pts[b].score.quality ||
        (p->score.quality == s->pts[b].score.quality && p->cycles < s->pts[b].cycles))
      b = i;
  }
  if (b != UINT32_MAX) return b;
  for (uint32_t i = 0; i < s->n_pts; i++)
    if (realizable(s, &s->pts[i]) && (b == UINT32_MAX || s->pts[i].cycles < s->pts[b].cycles)) b = i;
  return b;
}

static void mark_pareto(lb_search *s) {
  for (uint32_t i = 0; i < s->n_pts; i++) {
    lb_search_point *p = &s->pts[i];
    p->pareto = 1;
    for (uint32_t j = 0; j < s->n_pts && p->pareto; j++) {
      const lb_search_point *q = &s->pts[j];
      if (q->cycles <= p->cycles && q->score.quality >= p->score.quality &&
          (q->cycles < p->cycles || q->score.quality > p->score.quality))
        p->pareto = 0;
    }
    p->chosen = i == s->chosen;
  }
}

static void progress(const lb_search_opts *o, const char *phase, uint32_t done, uint32_t total) {
  if (!o->progress || total == 0) return;
  int w = 30, fill = (int)((double)done / total * w);
  fprintf(stderr, "\r%-12s [", phase);
  for (int i = 0; i < w; i++) fputc(i < fill ? '#' : ' ', stderr);
  fprintf(stderr, "] %u/%u", done, total);
  if (done == total) fputs("\033[K\r", stderr);
  fflush(stderr);
}

/* ---- sensitivity (auto, step 1) ------------------------------------------------------------ */

/* Runs the base assignment on samples [0, n) and keeps every value (prefix reuse). */
static int snapshot(lb_search *s, const unsigned char *base, int64_t n, lb_diag *d) {
  const lb_graph *g = s->g;
  free_snap(s);
  s->snap = lb_calloc((size_t)(n * g->n_values) + 1, sizeof(float *));
  if (!s->snap) return LB_ERR_NOMEM;
  s->snap_n = n;
  mark_integer(s, base);
  for (int64_t i = 0; i < n; i++) {
    set_input(s, s->x, i);
    LB_TRY(run_nodes(s, base, 0, d));
    memcpy(s->work + i * s->out_n, s->val[g->outputs[0]].data, (size_t)s->out_n * sizeof(float));
    for (uint32_t v = 0; v < g->n_values; v++) {
      if (g->values[v].data || g->values[v].is_input) continue;
      size_t bytes = (size_t)lb_value_numel(&g->values[v]) * sizeof(float);
      float *c = lb_malloc(bytes ? bytes : 1);
      if (!c) return LB_ERR_NOMEM;
      memcpy(c, s->val[v].data, bytes);
      s->snap[i * g->n_values + v] = c;
    }
  }
  return 0;
}

/* Runs choice (equal to the snapshot's assignment before node start) on the snapshot's
 * samples, recomputing from node start only. */
static int run_from(lb_search *s, const unsigned char *choice, uint32_t start, float *out,
                    lb_diag *d) {
  const lb_graph *g = s->g;
  uint32_t nv = g->n_values;
  float **own = lb_malloc((nv ? nv : 1) * sizeof *own);
  unsigned char *fq0 = lb_malloc(nv ? nv : 1);
  if (!own || !fq0) return lb_free(own), lb_free(fq0), LB_ERR_NOMEM;
  for (uint32_t v = 0; v < nv; v++) own[v] = s->val[v].data, fq0[v] = s->is_fq[v];
  mark_integer(s, choice);
  int rc = 0;
  for (int64_t i = 0; !rc && i < s->snap_n; i++) {
    set_input(s, s->x, i);
    for (uint32_t v = 0; v < nv; v++) {
      uint32_t pr = g->values[v].producer;
      if (g->values[v].data || g->values[v].is_input) continue;
      s->val[v].data = pr < start ? s->snap[i * nv + v] : own[v];
      s->is_fq[v] = fq0[v];
    }
    rc = run_nodes(s, choice, start, d);
    if (!rc) copy_out(s, out + i * s->out_n);
  }
  for (uint32_t v = 0; v < nv; v++) s->val[v].data = own[v];
  lb_free(own), lb_free(fq0);
  return rc;
}

static int sensitivity(lb_search *s, const lb_search_opts *o, unsigned char *base, lb_diag *d) {
  int64_t n = o->sens_samples > 0 ? o->sens_samples : 64;
  if (n > s->n_eval) n = s->n_eval;
  float *y = lb_calloc((size_t)(n * s->out_n) + 1, sizeof(float));
  if (!y) return LB_ERR_NOMEM;
  /* The interpreter reuses the unchanged prefix of each run (about half a run per variant);
   * another evaluator (the JIT) runs whole, a compile each. The pass takes the one the
   * timings of the references say is cheaper: small models skip the compiles, large ones the
   * interpreter. Either way every point of the front is evaluated by s->eval. */
  int ext = s->eval != eval_interp && s->eval_s < 0.5 * (double)n * s->interp_s;
  int rc = ext ? s->eval(s, s->eval_user, base, n, s->work, d) : snapshot(s, base, n, d);
  double n0 = rc ? 0 : rel_noise(s, s->work, n);
  lb_search_score s0 = score(s, s->work, n);
  uint32_t total = 0, done = 0;
  for (uint32_t li = 0; li < s->n_layers; li++) total += (uint32_t)s->layers[li].n_opt - 2;
  for (uint32_t li = 0; !rc && li < s->n_layers; li++) {
    lb_search_layer *L = &s->layers[li];
    for (int k = 0; !rc && k < L->n_opt; k++) {
      if (k == L->base || !L->opt[k].combo) { /* fp32 alone: about the int8 noise removed */
        L->noise[k] = 0, L->sens[k] = 0;
        continue;
      }
      if (ext && !lb_search_opt_realizable(s->g, L, k)) { /* the JIT runs realized plans only */
        L->noise[k] = L->sens[k] = INFINITY;
        continue;
      }
      base[li] = (unsigned char)k;
      rc = ext ? s->eval(s, s->eval_user, base, n, y, d) : run_from(s, base, L->node, y, d);
      base[li] = (unsigned char)L->base;
      if (rc) break;
      L->noise[k] = rel_noise(s, y, n) - n0;
      L->sens[k] = s0.quality - score(s, y, n).quality;
      progress(o, "sensitivity", ++done, total);
    }
  }
  free_snap(s);
  lb_free(y);
  return rc;
}

/* ---- Lagrangian knapsack (auto, step 2) ----------------------------------------------------- */

/* Per layer the option minimising cost + lambda * noise; cost is cycles, or weight bytes when
 * bytes is set (for a size budget). */
static void relax(const lb_search *s, double lambda, int bytes, unsigned char *choice) {
  for (uint32_t li = 0; li < s->n_layers; li++) {
    const lb_search_layer *L = &s->layers[li];
    double best = INFINITY;
    for (int k = 0; k < L->n_opt; k++) {
      if (!lb_search_opt_realizable(s->g, L, k)) continue;
      double c = bytes ? (double)lb_cost_weight_bytes(s->g, L->node, opt_wdt(&L->opt[k]))
                       : layer_cycles(s, li, k);
      double v = c + lambda * L->noise[k];
      if (v < best - 1e-12) best = v, choice[li] = (unsigned char)k;
    }
  }
}

static double predicted_noise(const lb_search *s, const unsigned char *choice) {
  double n = 0;
  for (uint32_t li = 0; li < s->n_layers; li++) n += s->layers[li].noise[choice[li]];
  return n;
}

typedef struct cands {
  unsigned char *c; /* rows of n_layers + 1 */
  double *noise;
  uint32_t n, cap;
  size_t row;
} cands;

/* Adds the relaxation's solution for lambda unless seen or beyond the budgets. */
static void add_cand(const lb_search *s, cands *k, const goal *G, double lambda, int bytes) {
  if (k->n == k->cap) return;
  unsigned char *cur = k->c + k->n * k->row;
  relax(s, lambda, bytes, cur);
  for (uint32_t i = 0; i < k->n; i++)
    if (memcmp(cur, k->c + i * k->row, s->n_layers) == 0) return;
  int64_t wb;
  double cyc = lb_search_cycles(s, cur, &wb);
  if ((G->max_ms > 0 && lb_search_ms(s, cyc) > G->max_ms) || (G->max_bytes > 0 && wb > G->max_bytes))
    return;
  k->noise[k->n++] = predicted_noise(s, cur);
}

/* The distinct solutions of the relaxation over a geometric sweep of lambda (cost against
 * measured noise; a second sweep on weight bytes under a size budget), those within the
 * budgets ordered by predicted noise, then a bisection for the noisiest one that still meets
 * the quality goal: quality falls with the noise, so about log2(count) evaluations find the
 * cheap end of the feasible set. Every evaluated solution is a point of the front. */
static int knapsack(lb_search *s, const lb_search_opts *o, const goal *G, lb_diag *d) {
  enum { STEPS = 96 };
  cands k = {lb_calloc((size_t)2 * STEPS * (s->n_layers + 1), 1), lb_calloc(2 * STEPS, sizeof(double)),
             0, 2 * STEPS, s->n_layers + 1};
  unsigned char *tmp = lb_malloc(k.row);
  if (!k.c || !k.noise || !tmp) return lb_free(k.c), lb_free(k.noise), lb_free(tmp), LB_ERR_NOMEM;
  double scale = 0, bscale = 0;
  for (uint32_t li = 0; li < s->n_layers; li++) {
    scale += layer_cycles(s, li, s->layers[li].base);
    bscale += (double)lb_cost_weight_bytes(s->g, s->layers[li].node, LB_DTYPE_I8);
  }
  for (int j = 0; j < STEPS; j++) {
    double t = pow(10.0, -4.0 + 12.0 * j / (STEPS - 1));
    add_cand(s, &k, G, scale * t, 0);
    if (G->max_bytes > 0) add_cand(s, &k, G, bscale * t, 1);
  }
  goal none = {-INFINITY, 0, 0, 0};
  if (k.n == 0) add_cand(s, &k, &none, 0.0, 0); /* budgets out of reach: the cheapest plan */
  for (uint32_t i = 1; i < k.n; i++) /* insertion sort, noisiest first */
    for (uint32_t j = i; j > 0 && k.noise[j] > k.noise[j - 1]; j--) {
      double t = k.noise[j];
      k.noise[j] = k.noise[j - 1], k.noise[j - 1] = t;
      memcpy(tmp, k.c + j * k.row, k.row);
      memcpy(k.c + j * k.row, k.c + (j - 1) * k.row, k.row);
      memcpy(k.c + (j - 1) * k.row, tmp, k.row);
    }
  int64_t lo = 0, hi = (int64_t)k.n - 1;
  int rc = 0;
  uint32_t step = 0, steps = 1, idx;
  while ((1u << steps) < k.n) steps++;
  while (!rc && lo < hi) {
    int64_t mid = (lo + hi) / 2;
    rc = eval_point(s, k.c + (size_t)mid * k.row, &idx, d);
    if (!rc && feasible(s, G, idx)) hi = mid;
    else lo = mid + 1;
    progress(o, "knapsack", ++step, steps);
  }
  if (!rc && k.n) rc = eval_point(s, k.c + (size_t)hi * k.row, &idx, d);
  progress(o, "knapsack", steps, steps);
  lb_free(k.c), lb_free(k.noise), lb_free(tmp);
  return rc;
}

/* ---- greedy refinement (auto, step 3) ------------------------------------------------------- */

typedef struct move {
  uint32_t li; /* the layer, or LB_NONE: every layer that has an option labelled `label` */
  int k, failed;
  const char *label;
  double gain; /* cycles saved per unit of added noise */
} move;

static int by_gain(const void *a, const void *b) {
  double x = ((const move *)a)->gain, y = ((const move *)b)->gain;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Applies m to cur where it makes a layer cheaper; 0 if nothing changes. */
static int apply_move(const lb_search *s, const move *m, unsigned char *cur) {
  int changed = 0;
  for (uint32_t li = 0; li < s->n_layers; li++) {
    const lb_search_layer *L = &s->layers[li];
    int k = m->li == li ? m->k : -1;
    for (int o = 0; m->li == LB_NONE && o < L->n_opt; o++)
      if (L->opt[o].combo && strcmp(L->opt[o].label, m->label) == 0) k = o;
    if (k < 0 || !lb_search_opt_realizable(s->g, L, k) ||
        layer_cycles(s, li, k) >= layer_cycles(s, li, cur[li]))
      continue;
    cur[li] = (unsigned char)k, changed = 1;
  }
  return changed;
}

static double layers_cycles(const lb_search *s, const unsigned char *c) {
  double t = 0;
  for (uint32_t li = 0; li < s->n_layers; li++) t += layer_cycles(s, li, c[li]);
  return t;
}

/* The moves from cur, best gain first: every cheaper option of one layer, and every precision
 * label taken by all the layers that have it (a uniform plan can pass where each of its single
 * moves failed: quality on a few hundred samples is not monotone in the noise). */
static uint32_t make_moves(const lb_search *s, const unsigned char *cur, move *mv,
                           unsigned char *tmp) {
  uint32_t nm = 0, n = 0;
  for (uint32_t li = 0; li < s->n_layers; li++)
    for (int k = 0; k < s->layers[li].n_opt; k++) {
      const lb_search_opt *o = &s->layers[li].opt[k];
      mv[nm++] = (move){li, k, 0, NULL, 0};
      int seen = !o->combo;
      for (uint32_t i = 0; i < nm && !seen; i++) seen = mv[i].label && strcmp(mv[i].label, o->label) == 0;
      if (!seen) mv[nm++] = (move){LB_NONE, 0, 0, o->label, 0};
    }
  for (uint32_t m = 0; m < nm; m++) {
    memcpy(tmp, cur, s->n_layers);
    if (!apply_move(s, &mv[m], tmp)) continue;
    double dn = predicted_noise(s, tmp) - predicted_noise(s, cur);
    mv[m].gain = (layers_cycles(s, cur) - layers_cycles(s, tmp)) / (dn > 1e-12 ? dn : 1e-12);
    mv[n++] = mv[m];
  }
  qsort(mv, n, sizeof *mv, by_gain);
  return n;
}

/* Greedy moves from the chosen point, each evaluated; a move that fails is tried once more
 * (up to two) after later ones succeeded. Every move is evaluated: skipping those predicted
 * noisier than a point that failed missed feasible cheaper plans (noise does not add up). */
static int refine(lb_search *s, const lb_search_opts *o, const goal *G, lb_diag *d) {
  unsigned char *cur = lb_malloc(s->n_layers + 1), *tmp = lb_malloc(s->n_layers + 1);
  move *mv = lb_calloc((size_t)s->n_layers * LB_SEARCH_MAX_OPTS * 2 + 1, sizeof *mv);
  int rc = !cur || !tmp || !mv ? LB_ERR_NOMEM : 0, moved = 0;
  if (!rc) memcpy(cur, s->pts[s->chosen].choice, s->n_layers);
  uint32_t nm = rc ? 0 : make_moves(s, cur, mv, tmp), limit = s->n_layers / 2 + 2, tried = 0,
           retried = 0;
  for (int pass = 0; pass < 2 && !rc; pass++) {
    for (uint32_t m = 0; !rc && m < nm && (pass ? moved && retried < 2 : tried < limit); m++) {
      uint32_t idx, ev = s->n_evals;
      memcpy(tmp, cur, s->n_layers);
      if ((pass && !mv[m].failed) || !apply_move(s, &mv[m], tmp)) continue;
      rc = eval_point(s, tmp, &idx, d);
      tried += pass == 0, retried += pass && s->n_evals > ev;
      progress(o, "refine", tried, limit);
      mv[m].failed = rc || !feasible(s, G, idx) || s->pts[idx].cycles >= s->pts[s->chosen].cycles;
      if (!mv[m].failed) s->chosen = idx, moved |= pass == 0, memcpy(cur, tmp, s->n_layers);
    }
  }
  progress(o, "refine", limit, limit);
  lb_free(cur), lb_free(tmp), lb_free(mv);
  return rc;
}

/* ---- hago-greedy ---------------------------------------------------------------------------- */

static int opt_bits(const lb_search_opt *o) {
  return o->combo ? lb_dtype_value_bits(o->weight) : 32;
}

/* HAGO: each layer in order takes the fewest weight bits that keep the quality constraint. */
static int hago(lb_search *s, const lb_search_opts *o, const goal *G, unsigned char *cur,
                lb_diag *d) {
  for (uint32_t li = 0; li < s->n_layers; li++) {
    const lb_search_layer *L = &s->layers[li];
    for (int bits = 1; bits < opt_bits(&L->opt[cur[li]]); bits++)
      for (int k = 0; k < L->n_opt; k++) {
        if (!L->opt[k].combo || opt_bits(&L->opt[k]) != bits ||
            !lb_search_opt_realizable(s->g, L, k))
          continue;
        unsigned char keep = cur[li];
        uint32_t idx;
        cur[li] = (unsigned char)k;
        LB_TRY(eval_point(s, cur, &idx, d));
        if (feasible(s, G, idx)) {
          s->chosen = idx;
          bits = 99;
          break;
        }
        cur[li] = keep;
      }
    progress(o, "hago-greedy", li + 1, s->n_layers);
  }
  return 0;
}

/* ---- driver --------------------------------------------------------------------------------- */

static int references(lb_search *s, unsigned char *base, lb_diag *d) {
  unsigned char *f32 = lb_calloc(s->n_layers + 1, 1);
  if (!f32) return LB_ERR_NOMEM;
  lb_search_score sc = score(s, s->ref, s->n_eval);
  int rc = add_point(s, f32, &sc, &s->fp32_pt);
  for (uint32_t li = 0; li < s->n_layers; li++) base[li] = (unsigned char)s->layers[li].base;
  double t0 = cpu_s();
  if (!rc) rc = eval_point(s, base, &s->int8_pt, d);
  s->eval_s = cpu_s() - t0;
  lb_free(f32);
  return rc;
}

int lb_search_run(lb_search *s, const lb_search_opts *o, lb_diag *d) {
  if (o->eval) s->eval = o->eval, s->eval_user = o->eval_user;
  unsigned char *base = lb_calloc(s->n_layers + 1, 1);
  if (!base) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  int rc = references(s, base, d);
  goal G = {0, o->latency_budget, o->size_budget, o->min_sqnr};
  if (!rc) G.min_quality = s->pts[s->fp32_pt].score.quality - o->max_drop;
  if (!rc) s->chosen = feasible(s, &G, s->int8_pt) ? s->int8_pt : s->fp32_pt;
  if (!rc && o->strategy == LB_STRATEGY_HAGO_GREEDY) {
    rc = hago(s, o, &G, base, d);
  } else if (!rc) {
    rc = sensitivity(s, o, base, d);
    if (!rc) rc = knapsack(s, o, &G, d);
    uint32_t b = rc ? UINT32_MAX : best_feasible(s, &G);
    if (b != UINT32_MAX) s->chosen = b;
    if (!rc) rc = refine(s, o, &G, d);
  }
  if (!rc && !feasible(s, &G, s->chosen)) {
    uint32_t b = best_feasible(s, &G);
    s->met = b != UINT32_MAX;
    s->chosen = s->met ? b : fallback(s, &G);
  } else {
    s->met = 1;
  }
  if (!rc) mark_pareto(s);
  lb_free(base);
  if (rc == LB_ERR_NOMEM) lb_diag_err(d, rc, "out of memory");
  return rc;
}

/* ---- the plan ------------------------------------------------------------------------------ */

/* Weight parameters of the searched layers, marked as given so lb_quant_params keeps them (and
 * derives the biases from them). */
static int set_weights(const lb_search *s, const unsigned char *choice, lb_qplan *p) {
  for (uint32_t li = 0; li < s->n_layers; li++) {
    const lb_search_layer *L = &s->layers[li];
    const fqw *f = &s->fq[li * LB_SEARCH_MAX_OPTS + choice[li]];
    uint32_t w = s->g->nodes[L->node].in[1];
    lb_qval *q = &p->v[w];
    if (!L->opt[choice[li]].combo || !p->l[L->node].integer || q->dtype == LB_DTYPE_F32) continue;
    int axis = f->n_scale > 1 ? weight_axis(&s->g->nodes[L->node]) : -1;
    LB_TRY(lb_qplan_set(p, w, f->n_scale, axis, f->scale, NULL));
    q->yaml_at = "search", q->file_dtype = q->dtype, q->symmetric = 1;
  }
  return 0;
}

/* The bias corrections the simulation applied, as the plan's bias zero points (search.h
 * lb_search_bias_units; 0 where the chosen option has none). */
static void set_bias_corr(const lb_search *s, const unsigned char *choice, lb_qplan *p) {
  for (uint32_t li = 0; li < s->n_layers; li++) {
    const lb_node *n = &s->g->nodes[s->layers[li].node];
    const fqw *f = &s->fq[li * LB_SEARCH_MAX_OPTS + choice[li]];
    if (n->n_in < 3 || n->in[2] == LB_NONE) continue;
    lb_qval *b = &p->v[n->in[2]];
    int64_t nb = lb_value_numel(&s->g->values[n->in[2]]);
    if (b->role != LB_QROLE_BIAS || b->dtype == LB_DTYPE_F32 || (int64_t)b->n != nb) continue;
    for (int64_t j = 0; j < nb; j++) b->zp[j] = f->bz ? f->bz[j] : 0;
  }
}

int lb_search_apply(const lb_search *s, const unsigned char *choice, lb_qplan *p, lb_diag *d) {
  for (uint32_t li = 0; li < s->n_layers; li++) {
    const lb_search_layer *L = &s->layers[li];
    const lb_search_opt *o = &L->opt[choice[li]];
    lb_qlayer *l = &p->l[L->node];
    l->forced_f32 = o->combo == NULL;
    l->want = o->combo && choice[li] != L->base ? o->combo->label : NULL;
    l->want_at = NULL;
    /* a binary layer's threshold and magnitude, as the simulation fitted them (quant.h) */
    int bin = o->act == LB_DTYPE_B1;
    l->bin_thr = bin ? s->bin_thr[li] : 0, l->bin_scale = bin ? s->bin_scale[li] : 0.0f;
  }
  LB_TRY(lb_quant_annotate(s->g, s->spec, p, d));
  int rc = set_weights(s, choice, p);
  if (rc) return lb_diag_err(d, rc, "out of memory");
  p->method = "search";
  LB_TRY(lb_quant_params(s->g, p, d));
  set_bias_corr(s, choice, p);
  return 0;
}
