/* Scalar references of the integer GEMM kernels: one from unpacked operands (the definition,
 * through lb_requantize) and one from packed operands doing exactly what the emitted kernels
 * do. Invariant: both give the interpreter's int32 accumulator for the same operands. */
#include "qkernels.h"
#include "quant.h"

static int32_t ld(const void *p, lb_dtype t, int64_t i) {
  return t == LB_DTYPE_I8 ? ((const int8_t *)p)[i] : ((const uint8_t *)p)[i];
}

void lb_qgemm_ref(const void *x, lb_dtype act, int32_t zx, const int16_t *wp, const int32_t *bias,
                  const float *mult, int64_t M, int64_t K, int64_t N, int32_t zy, int32_t lo,
                  int32_t hi, lb_dtype out, void *y) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      int32_t acc = bias ? bias[n] : 0;
      for (int64_t k = 0; k < K; k++) acc += (ld(x, act, m * K + k) - zx) * wp[k * N + n];
      int32_t q = lb_requantize(acc, mult[n], zy, lo, hi);
      if (out == LB_DTYPE_I8)
        ((int8_t *)y)[m * N + n] = (int8_t)q;
      else
        ((uint8_t *)y)[m * N + n] = (uint8_t)q;
    }
}

static int32_t ld_a(const lb_qk_shape *s, const void *a, int64_t i) {
  if (s->wide) return ((const int16_t *)a)[i];
  return s->a_signed ? ((const int8_t *)a)[i] : ((const uint8_t *)a)[i];
}

static int32_t ld_b(const lb_qk_shape *s, const void *b, int64_t i) {
  return lb_qk_b_bytes(s) == 2 ? ((const int16_t *)b)[i] : ((const int8_t *)b)[i];
}

void lb_qgemm_packed_ref(const lb_qk_shape *s, const lb_qpacked *p, const void *a_packed,
                         int64_t M, int32_t *acc) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < p->N; n++) {
      uint32_t sum = (uint32_t)p->bias[n];
      for (int64_t k = 0; k < p->Kp; k++)
        sum += (uint32_t)(ld_a(s, a_packed, m * p->Kp + k) *
                          ld_b(s, p->b, lb_qpack_index(s, p->Kp, k, n)));
      acc[m * p->N + n] = (int32_t)sum;
    }
}
