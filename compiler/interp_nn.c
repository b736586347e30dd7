/* Reference neural-network kernels: conv (im2col + GEMM), gemm, matmul, pooling, batchnorm,
 * softmax and reduce_mean, all in fp32. Summation order (what other backends reproduce):
 * products are accumulated in float, starting from 0, in ascending k with no FMA, where k runs
 * over (input channel, kernel spatial row-major) for conv; bias, residual and activation are
 * applied after the sum in that order. Averages and softmax sums accumulate in double. */
#include <math.h>
#include <string.h>

#include "interp_impl.h"

/* ---- GEMM ------------------------------------------------------------------------------- */

/* y[0..n) += a * x[0..n). The fixed 8-wide inner loop is what gcc -O2 vectorizes. */
static void axpy(float *restrict y, float a, const float *restrict x, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int u = 0; u < 8; u++) y[j + u] += a * x[j + u];
  for (; j < n; j++) y[j] += a * x[j];
}

enum { GEMM_NT = 256, GEMM_KT = 256 }; /* column tile of C/B and depth tile of A/B */

/* C = A * B. Tiling over columns and depth keeps a B block in L2 and a C tile row in L1 while
 * each C[i][j] still sums its k terms in ascending order. */
void lb_gemm_f32(const float *A, const float *B, float *C, int64_t M, int64_t K, int64_t N) {
  for (int64_t i = 0; i < M; i++) memset(C + i * N, 0, (size_t)N * sizeof *C);
  for (int64_t j0 = 0; j0 < N; j0 += GEMM_NT) {
    int64_t jn = N - j0 < GEMM_NT ? N - j0 : GEMM_NT;
    for (int64_t k0 = 0; k0 < K; k0 += GEMM_KT) {
      int64_t kn = K - k0 < GEMM_KT ? K - k0 : GEMM_KT;
      for (int64_t i = 0; i < M; i++) {
        float *c = C + i * N + j0;
        const float *a = A + i * K + k0;
        for (int64_t k = 0; k < kn; k++) axpy(c, a[k], B + (k0 + k) * N + j0, jn);
      }
    }
  }
}

/* Row-major transpose of an r x c matrix into dst (c x r). */
static void transpose2d(const float *src, float *dst, int64_t r, int64_t c) {
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < c; j++) dst[j * r + i] = src[i * c + j];
}

/* ---- conv ------------------------------------------------------------------------------- */

/* Conv geometry padded to 3 spatial dims (missing dims have size 1, kernel 1, stride 1). */
typedef struct {
  int64_t is[3], ks[3], os[3], st[3], dl[3], pb[3], pe[3];
  int64_t in_sz, out_sz, k_sz; /* products of is, os, ks */
} geo;

static void make_geo(const lb_attrs *a, const lb_tensor *x, const lb_tensor *y, geo *g) {
  int ns = a->n_spatial, off = 3 - ns;
  for (int i = 0; i < 3; i++) {
    int s = i - off;
    g->is[i] = s < 0 ? 1 : x->dims[2 + s];
    g->os[i] = s < 0 ? 1 : y->dims[2 + s];
    g->ks[i] = s < 0 ? 1 : a->kernel[s];
    g->st[i] = s < 0 ? 1 : a->strides[s];
    g->dl[i] = s < 0 ? 1 : a->dilations[s];
    g->pb[i] = s < 0 ? 0 : a->pads[s];
    g->pe[i] = s < 0 ? 0 : a->pads[ns + s];
  }
  g->in_sz = g->is[0] * g->is[1] * g->is[2];
  g->out_sz = g->os[0] * g->os[1] * g->os[2];
  g->k_sz = g->ks[0] * g->ks[1] * g->ks[2];
}

/* One im2col row: col[p] = x[channel c] at kernel offset (kd,kh,kw) for every output p. */
static void im2col_row(const geo *g, const float *xc, const int64_t *kk, float *col) {
  for (int64_t od = 0; od < g->os[0]; od++) {
    int64_t id = od * g->st[0] - g->pb[0] + kk[0] * g->dl[0];
    for (int64_t oh = 0; oh < g->os[1]; oh++) {
      int64_t ih = oh * g->st[1] - g->pb[1] + kk[1] * g->dl[1];
      float *dst = col + (od * g->os[1] + oh) * g->os[2];
      int row_ok = id >= 0 && id < g->is[0] && ih >= 0 && ih < g->is[1];
      const float *src = xc + (id * g->is[1] + ih) * g->is[2];
      for (int64_t ow = 0; ow < g->os[2]; ow++) {
        int64_t iw = ow * g->st[2] - g->pb[2] + kk[2] * g->dl[2];
        dst[ow] = row_ok && iw >= 0 && iw < g->is[2] ? src[iw] : 0.0f;
      }
    }
  }
}

/* col[(c, kd, kh, kw)][p] for the cg channels starting at x. */
static void im2col(const geo *g, const float *x, int64_t cg, float *col) {
  int64_t row = 0, kk[3];
  for (int64_t ch = 0; ch < cg; ch++)
    for (kk[0] = 0; kk[0] < g->ks[0]; kk[0]++)
      for (kk[1] = 0; kk[1] < g->ks[1]; kk[1]++)
        for (kk[2] = 0; kk[2] < g->ks[2]; kk[2]++, row++)
          im2col_row(g, x + ch * g->in_sz, kk, col + row * g->out_sz);
}

static int is_pointwise(const geo *g) {
  for (int i = 0; i < 3; i++)
    if (g->ks[i] != 1 || g->st[i] != 1 || g->pb[i] || g->pe[i]) return 0;
  return 1;
}

/* y += bias per channel, then += residual, then the fused activation. */
static void epilogue(const lb_kctx *c, const lb_tensor *in, float *y, int64_t outer, int64_t ch,
                     int64_t inner, uint32_t bias_k, uint32_t res_k) {
  int64_t total = outer * ch * inner;
  if (lb_kin(c, in, bias_k)) {
    const float *b = in[bias_k].data;
    for (int64_t i = 0; i < outer * ch; i++)
      for (int64_t j = 0; j < inner; j++) y[i * inner + j] += b[i % ch];
  }
  if (lb_kin(c, in, res_k)) {
    const float *r = in[res_k].data;
    for (int64_t i = 0; i < total; i++) y[i] += r[i];
  }
  lb_apply_act(c->a, y, total);
}

int lb_k_conv(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_tensor *x = &in[0], *w = &in[1];
  geo g;
  make_geo(c->a, x, out, &g);
  int64_t N = x->dims[0], C = x->dims[1], M = out->dims[1], G = c->a->group;
  int64_t cg = C / G, mg = M / G, K = cg * g.k_sz;
  int direct = is_pointwise(&g);
  float *col = NULL;
  int64_t col_n;
  if (__builtin_mul_overflow(K, g.out_sz, &col_n)) return LB_ERR_NOMEM;
  if (!direct && col_n > 0) {
    col = lb_calloc((size_t)col_n, sizeof(float));
    if (!col) return LB_ERR_NOMEM;
  }
  const float *xf = x->data, *wf = w->data;
  float *y = out->data;
  for (int64_t n = 0; n < N; n++)
    for (int64_t gi = 0; gi < G; gi++) {
      const float *xg = xf + (n * C + gi * cg) * g.in_sz;
      if (!direct && col) im2col(&g, xg, cg, col);
      lb_gemm_f32(wf + gi * mg * K, direct ? xg : col, y + (n * M + gi * mg) * g.out_sz, mg, K,
                  g.out_sz);
    }
  lb_free(col);
  epilogue(c, in, y, N, M, g.out_sz, 2, 3);
  return 0;
}

/* ---- gemm and matmul -------------------------------------------------------------------- */

/* Y = alpha * (A' B') + beta * C, then + residual, then the activation. */
int lb_k_gemm(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_attrs *a = c->a;
  int64_t M = out->dims[0], N = out->dims[1];
  int64_t K = in[0].dims[a->trans_a ? 0 : 1];
  const float *A = in[0].data, *B = in[1].data;
  float *At = NULL, *Bt = NULL, *y = out->data;
  if (a->trans_a && (At = lb_malloc((size_t)(M * K) * sizeof(float)))) transpose2d(A, At, K, M);
  if (a->trans_b && (Bt = lb_malloc((size_t)(K * N) * sizeof(float)))) transpose2d(B, Bt, N, K);
  if ((a->trans_a && !At) || (a->trans_b && !Bt)) {
    lb_free(At);
    lb_free(Bt);
    return LB_ERR_NOMEM;
  }
  lb_gemm_f32(At ? At : A, Bt ? Bt : B, y, M, K, N);
  lb_free(At);
  lb_free(Bt);
  if (a->alpha != 1.0f)
    for (int64_t i = 0; i < M * N; i++) y[i] *= a->alpha;
  if (lb_kin(c, in, 2)) {
    const lb_tensor *C = &in[2];
    const float *cf = C->data;
    int64_t sr = C->rank == 2 && C->dims[0] != 1 ? C->dims[1] : 0;
    int64_t sc = C->rank >= 1 && C->dims[C->rank - 1] != 1 ? 1 : 0;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) y[i * N + j] += a->beta * cf[i * sr + j * sc];
  }
  epilogue(c, in, y, 1, 1, M * N, LB_NONE, 3);
  return 0;
}

/* Numpy matmul: 1-D operands become [1,K] / [K,1]; batch dims broadcast. */
int lb_k_matmul(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_tensor *A = &in[0], *B = &in[1];
  int ar = A->rank, br = B->rank;
  int64_t M = ar >= 2 ? A->dims[ar - 2] : 1, K = A->dims[ar - 1];
  int64_t N = br >= 2 ? B->dims[br - 1] : 1;
  int ba = ar > 2 ? ar - 2 : 0, bb = br > 2 ? br - 2 : 0, r = ba > bb ? ba : bb;
  int64_t sa[LB_MAX_RANK], sb[LB_MAX_RANK], idx[LB_MAX_RANK] = {0}, nb = 1;
  int64_t st_a = M * K, st_b = K * N;
  for (int i = r - 1; i >= 0; i--) {
    int ia = i - (r - ba), ib = i - (r - bb);
    int64_t da = ia >= 0 ? A->dims[ia] : 1, db = ib >= 0 ? B->dims[ib] : 1;
    sa[i] = da == 1 ? 0 : st_a;
    sb[i] = db == 1 ? 0 : st_b;
    st_a *= da;
    st_b *= db;
    nb *= out->dims[i];
  }
  const float *af = A->data, *bf = B->data;
  float *y = out->data;
  int64_t oa = 0, ob = 0;
  for (int64_t b = 0; b < nb; b++) {
    lb_gemm_f32(af + oa, bf + ob, y + b * M * N, M, K, N);
    for (int d = r - 1; d >= 0; d--) {
      oa += sa[d];
      ob += sb[d];
      if (++idx[d] < out->dims[d]) break;
      oa -= sa[d] * out->dims[d];
      ob -= sb[d] * out->dims[d];
      idx[d] = 0;
    }
  }
  lb_apply_act(c->a, y, lb_tensor_numel(out));
  return 0;
}

/* ---- pooling ---------------------------------------------------------------------------- */

/* Number of taps t in [0,k) with lo <= start + t*d < hi. */
static int64_t taps_in(int64_t start, int64_t k, int64_t d, int64_t lo, int64_t hi) {
  int64_t n = 0;
  for (int64_t t = 0; t < k; t++) n += start + t * d >= lo && start + t * d < hi;
  return n;
}

/* Max or average of one window starting at (sd, sh, sw) in one channel plane x. */
static float pool_window(const geo *g, const float *x, const int64_t *s, int is_max, int incl) {
  float m = -INFINITY;
  double sum = 0.0;
  for (int64_t a = 0; a < g->ks[0]; a++) {
    int64_t id = s[0] + a * g->dl[0];
    if (id < 0 || id >= g->is[0]) continue;
    for (int64_t b = 0; b < g->ks[1]; b++) {
      int64_t ih = s[1] + b * g->dl[1];
      if (ih < 0 || ih >= g->is[1]) continue;
      const float *row = x + (id * g->is[1] + ih) * g->is[2];
      for (int64_t e = 0; e < g->ks[2]; e++) {
        int64_t iw = s[2] + e * g->dl[2];
        if (iw < 0 || iw >= g->is[2]) continue;
        if (row[iw] > m) m = row[iw];
        sum += row[iw];
      }
    }
  }
  if (is_max) return m;
  /* count_include_pad counts taps inside the explicitly padded input, never the extra right
   * positions ceil_mode adds; otherwise only taps inside the input. */
  int64_t cnt = 1;
  for (int i = 0; i < 3; i++)
    cnt *= incl ? taps_in(s[i], g->ks[i], g->dl[i], -g->pb[i], g->is[i] + g->pe[i])
                : taps_in(s[i], g->ks[i], g->dl[i], 0, g->is[i]);
  return cnt ? (float)(sum / (double)cnt) : 0.0f;
}

static void pool_f32(const geo *g, const float *x, float *y, int64_t planes, int is_max,
                     int incl) {
  int64_t s[3];
  for (int64_t p = 0; p < planes; p++) {
    const float *xp = x + p * g->in_sz;
    for (int64_t od = 0; od < g->os[0]; od++)
      for (int64_t oh = 0; oh < g->os[1]; oh++)
        for (int64_t ow = 0; ow < g->os[2]; ow++) {
          s[0] = od * g->st[0] - g->pb[0];
          s[1] = oh * g->st[1] - g->pb[1];
          s[2] = ow * g->st[2] - g->pb[2];
          *y++ = pool_window(g, xp, s, is_max, incl);
        }
  }
}

static int pool(const lb_kctx *c, const lb_tensor *in, lb_tensor *out, int is_max) {
  geo g;
  make_geo(c->a, &in[0], out, &g);
  int64_t planes = in[0].dims[0] * in[0].dims[1], ni = lb_tensor_numel(&in[0]);
  int64_t no = lb_tensor_numel(out);
  if (in[0].dtype == LB_DTYPE_F32) {
    pool_f32(&g, in[0].data, out->data, planes, is_max, c->a->count_include_pad);
    return 0;
  }
  /* 8-bit max pool: every 8-bit value is exact in float, and max never leaves the range */
  float *xf = lb_malloc((size_t)(ni ? ni : 1) * sizeof(float));
  float *yf = lb_malloc((size_t)(no ? no : 1) * sizeof(float));
  int s8 = in[0].dtype == LB_DTYPE_I8;
  if (xf && yf) {
    for (int64_t i = 0; i < ni; i++)
      xf[i] = s8 ? ((const int8_t *)in[0].data)[i] : ((const uint8_t *)in[0].data)[i];
    pool_f32(&g, xf, yf, planes, 1, 0);
    for (int64_t i = 0; i < no; i++) {
      float v = yf[i] < (s8 ? -128.0f : 0.0f) ? (s8 ? -128.0f : 0.0f) : yf[i];
      if (s8)
        ((int8_t *)out->data)[i] = (int8_t)v;
      else
        ((uint8_t *)out->data)[i] = (uint8_t)v;
    }
  }
  lb_free(xf);
  lb_free(yf);
  return xf && yf ? 0 : LB_ERR_NOMEM;
}

int lb_k_max_pool(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  return pool(c, in, out, 1);
}

int lb_k_avg_pool(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  return pool(c, in, out, 0);
}

int lb_k_global_avg_pool(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  int64_t planes = in[0].dims[0] * in[0].dims[1];
  int64_t sz = planes ? lb_tensor_numel(&in[0]) / planes : 0;
  const float *x = in[0].data;
  float *y = out->data;
  for (int64_t p = 0; p < planes; p++) {
    double sum = 0.0;
    for (int64_t i = 0; i < sz; i++) sum += x[p * sz + i];
    y[p] = sz ? (float)(sum / (double)sz) : 0.0f;
  }
  return 0;
}

/* ---- batchnorm, softmax, reduce_mean ---------------------------------------------------- */

/* y = (x - mean) / sqrt(var + epsilon) * scale + bias, per channel (dim 1). */
int lb_k_batchnorm(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const float *x = in[0].data, *sc = in[1].data, *bi = in[2].data;
  const float *mean = in[3].data, *var = in[4].data;
  float *y = out->data;
  int64_t C = in[0].dims[1], outer = in[0].dims[0], inner = 1;
  for (int i = 2; i < in[0].rank; i++) inner *= in[0].dims[i];
  for (int64_t o = 0; o < outer; o++)
    for (int64_t ch = 0; ch < C; ch++) {
      float den = sqrtf(var[ch] + c->a->epsilon);
      int64_t base = (o * C + ch) * inner;
      for (int64_t i = 0; i < inner; i++)
        y[base + i] = (x[base + i] - mean[ch]) / den * sc[ch] + bi[ch];
    }
  return 0;
}

/* Softmax over n elements spaced by stride: subtract the max, exponentiate, normalize. */
static void softmax_line(const float *x, float *y, int64_t n, int64_t stride) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; i++)
    if (x[i * stride] > m) m = x[i * stride];
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) {
    y[i * stride] = expf(x[i * stride] - m);
    sum += y[i * stride];
  }
  for (int64_t i = 0; i < n; i++) y[i * stride] = (float)(y[i * stride] / sum);
}

/* legacy_2d (opset < 13): the input is seen as [prod(dims[:axis]), prod(dims[axis:])]. */
int lb_k_softmax(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  int ax = (int)c->a->axis;
  int64_t outer = 1, n = in[0].dims[ax], inner = 1;
  for (int i = 0; i < ax; i++) outer *= in[0].dims[i];
  for (int i = ax + 1; i < in[0].rank; i++) inner *= in[0].dims[i];
  if (c->a->legacy_2d) {
    n *= inner;
    inner = 1;
  }
  const float *x = in[0].data;
  float *y = out->data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < inner; j++)
      softmax_line(x + o * n * inner + j, y + o * n * inner + j, n, inner);
  return 0;
}

int lb_k_reduce_mean(const lb_kctx *c, const lb_tensor *in, lb_tensor *out) {
  const lb_tensor *x = &in[0];
  int r = x->rank;
  unsigned char red[LB_MAX_RANK] = {0};
  for (int i = 0; i < c->a->n_axes; i++) red[c->a->axes[i]] = 1;
  /* os[i]: stride in the output for input dim i (0 for reduced dims) */
  int64_t os[LB_MAX_RANK], st = 1, cnt = 1, idx[LB_MAX_RANK] = {0};
  for (int i = r - 1; i >= 0; i--) {
    os[i] = red[i] ? 0 : st;
    if (red[i])
      cnt *= x->dims[i];
    else
      st *= x->dims[i];
  }
  int64_t no = lb_tensor_numel(out), ni = lb_tensor_numel(x), off = 0;
  double *acc = lb_calloc((size_t)(no ? no : 1), sizeof(double));
  if (!acc) return LB_ERR_NOMEM;
  const float *xf = x->data;
  for (int64_t i = 0; i < ni; i++) {
    acc[off] += xf[i];
    for (int d = r - 1; d >= 0; d--) {
      off += os[d];
      if (++idx[d] < x->dims[d]) break;
      off -= os[d] * x->dims[d];
      idx[d] = 0;
    }
  }
  float *y = out->data;
  for (int64_t i = 0; i < no; i++) y[i] = cnt ? (float)(acc[i] / (double)cnt) : NAN;
  lb_free(acc);
  return 0;
}
