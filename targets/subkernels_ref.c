/* Scalar references of the sub-byte kernels: decompression of the chunk layout (subkernels.h)
 * and the binary GEMM on 64-bit bit rows. Invariant: these follow the layouts literally, one
 * element or bit at a time, so the emitted kernels and the packers are checked against them. */
#include <string.h>

#include "subkernels.h"

void lb_subunpack_ref(const lb_subpacked *p, int64_t panel, void *dst) {
  const uint8_t *src = p->b + panel * p->panel_bytes;
  int64_t chunk = p->chunk, per_chunk = chunk * (8 / p->bits);
  for (int64_t e = 0; e < p->panel_elems; e++) {
    int64_t c = e / per_chunk, r = e % per_chunk;
    int64_t f = r / chunk, i = r % chunk;
    uint32_t raw = (uint32_t)(src[c * chunk + i] >> (f * p->bits)) & ((1u << p->bits) - 1u);
    int32_t v = (int32_t)(raw ^ (1u << (p->bits - 1))) - (1 << (p->bits - 1));
    if (p->wide) ((int16_t *)dst)[e] = (int16_t)v;
    else ((int8_t *)dst)[e] = (int8_t)v;
  }
}

static int popcount64(uint64_t x) {
  int c = 0;
  for (; x; x &= x - 1) c++;
  return c;
}

void lb_bgemm_ref(const uint64_t *xb, const uint64_t *wb, const int32_t *bias, int64_t M,
                  int64_t N, int64_t K, int64_t words, int32_t *acc) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      int64_t mism = 0;
      for (int64_t w = 0; w < words; w++) mism += popcount64(xb[m * words + w] ^ wb[n * words + w]);
      acc[m * N + n] = (bias ? bias[n] : 0) + (int32_t)(K - 2 * mism);
    }
}

void lb_binarize_ref(const void *x, lb_dtype xt, int32_t thr, int64_t M, int64_t K,
                     int64_t words, uint64_t *xb) {
  memset(xb, 0, (size_t)(M * words) * sizeof *xb);
  for (int64_t m = 0; m < M; m++)
    for (int64_t k = 0; k < K; k++) {
      int32_t v = xt == LB_DTYPE_U8 ? ((const uint8_t *)x)[m * K + k] : ((const int8_t *)x)[m * K + k];
      if (v >= thr) xb[m * words + k / 64] |= 1ull << (k % 64);
    }
}

void lb_bpack_w(const uint8_t *w, int64_t N, int64_t K, int64_t words, uint64_t *wb) {
  memset(wb, 0, (size_t)(N * words) * sizeof *wb);
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) {
      int64_t i = n * K + k;
      if ((w[i / 8] >> (i % 8)) & 1) wb[n * words + k / 64] |= 1ull << (k % 64);
    }
}
