/* Compile-time weight packing for the fp32 kernels: pure layout changes of constant weights into
 * the panel formats the emitted kernels read (see kernels.h). Invariant: every packed element is
 * either a source weight or 0.0f (padding columns), so packing never changes a result. */
#include <string.h>

#include "kernels.h"

/* NR-column panels, each [K][NR]; the last panel zero-padded. */
size_t lb_pack_gemm_b_size(const lb_kern_cfg *cfg, int64_t k, int64_t n) {
  int mr, nr;
  lb_kern_gemm_tile(cfg, &mr, &nr);
  if (k <= 0 || n <= 0) return 0;
  uint64_t panels = ((uint64_t)n + (uint64_t)nr - 1) / (uint64_t)nr;
  uint64_t per = (uint64_t)k * (uint64_t)nr * sizeof(float);
  if (per / sizeof(float) / (uint64_t)nr != (uint64_t)k || panels > SIZE_MAX / per) return SIZE_MAX;
  return (size_t)(panels * per);
}

/* Element (kk, j) of the logical B[K][N] through an accessor that hides the source layout. */
typedef float (*b_at_fn)(const void *src, int64_t k, int64_t n, int64_t kk, int64_t j);

static void pack_panels(int nr, int64_t k, int64_t n, b_at_fn at, const void *src, float *out) {
  int64_t panels = (n + nr - 1) / nr;
  for (int64_t p = 0; p < panels; p++) {
    float *dst = out + p * k * nr;
    for (int64_t kk = 0; kk < k; kk++)
      for (int64_t jj = 0; jj < nr; jj++) {
        int64_t j = p * nr + jj;
        dst[kk * nr + jj] = j < n ? at(src, k, n, kk, j) : 0.0f;
      }
  }
}

static float at_kn(const void *src, int64_t k, int64_t n, int64_t kk, int64_t j) {
  return ((const float *)src)[kk * n + j];
}

static float at_nk(const void *src, int64_t k, int64_t n, int64_t kk, int64_t j) {
  return ((const float *)src)[j * k + kk];
}

void lb_pack_gemm_b(const lb_kern_cfg *cfg, int64_t k, int64_t n, const float *b, int b_is_nk,
                    float *out) {
  int mr, nr;
  lb_kern_gemm_tile(cfg, &mr, &nr);
  pack_panels(nr, k, n, b_is_nk ? at_nk : at_kn, b, out);
}

/* OIHW source viewed as B[K][N] with K = (r, s, ci) and N = co. */
typedef struct conv_src {
  const float *w;
  int64_t ci, kh, kw;
} conv_src;

static float at_oihw(const void *src, int64_t k, int64_t n, int64_t kk, int64_t co) {
  const conv_src *c = src;
  int64_t ci = kk % c->ci, rs = kk / c->ci;
  int64_t r = rs / c->kw, s = rs % c->kw;
  return c->w[((co * c->ci + ci) * c->kh + r) * c->kw + s];
}

void lb_pack_conv_w(const lb_kern_cfg *cfg, const float *w, int64_t co, int64_t ci, int64_t kh,
                    int64_t kw, float *out) {
  int mr, nr;
  lb_kern_gemm_tile(cfg, &mr, &nr);
  conv_src src = {w, ci, kh, kw};
  pack_panels(nr, kh * kw * ci, co, at_oihw, &src, out);
}

size_t lb_pack_dw_size(int64_t c, int64_t kh, int64_t kw) {
  if (c <= 0 || kh <= 0 || kw <= 0) return 0;
  uint64_t taps = (uint64_t)kh * (uint64_t)kw;
  if (taps / (uint64_t)kh != (uint64_t)kw || taps > SIZE_MAX / sizeof(float) / (uint64_t)c)
    return SIZE_MAX;
  return (size_t)(taps * (uint64_t)c * sizeof(float));
}

void lb_pack_dw_w(const float *w, int64_t c, int64_t kh, int64_t kw, float *out) {
  for (int64_t ch = 0; ch < c; ch++)
    for (int64_t t = 0; t < kh * kw; t++) out[t * c + ch] = w[ch * kh * kw + t];
}
