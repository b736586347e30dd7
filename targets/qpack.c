/* Kernel-family choice and compile-time packing of int8 weights for the integer GEMM kernels
 * (see qkernels.h for the layouts). Invariant: for every packed element,
 * sum_k (a_packed - c) * b_packed + bias_packed equals bias + sum_k (x - zx) * (w - zw). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qkernels.h"

/* kind, mr, nr, kr, wide, a_signed; lanes come from the spec's vector width. */
typedef struct qk_row {
  lb_qk_kind kind;
  const char *name;
  int mr, nr_vectors, kr, wide, a_signed;
} qk_row;

static const qk_row rows[] = {
    /* kind          name          mr  nr(vectors) kr wide a_signed */
    {LB_QK_PMADDWD, "pmaddwd", 4, 2, 2, 1, 1},
    {LB_QK_VPDPBUSD, "avx512vnni", 4, 2, 4, 0, 0},
    {LB_QK_SMLAL, "neon", 4, 4, 1, 1, 1},
    {LB_QK_SDOT, "neondot", 4, 4, 4, 0, 1},
    {LB_QK_SMMLA, "neoni8mm", 4, 4, 8, 0, 1},
    {LB_QK_PMADDUBSW, "avx2", 4, 2, 4, 0, 1},
};
_Static_assert(sizeof rows / sizeof rows[0] == LB_QK_COUNT, "one row per kernel kind");

const char *lb_qk_name(lb_qk_kind k) { return rows[k].name; }

static int is_arch(const lb_spec *s, const char *prefix) {
  const char *t = lb_spec_llvm_triple(s);
  return t && !strncmp(t, prefix, strlen(prefix));
}

int lb_qk_choose(const lb_spec *s, lb_spec_kernel k, int b_narrow_ok, lb_qk_shape *out,
                 lb_diag *diag) {
  lb_qk_kind kind;
  int vbits = lb_spec_vector_bits(s);
  if (is_arch(s, "x86_64")) {
    kind = k == LB_KERNEL_VPDPBUSD && b_narrow_ok && vbits >= 256 ? LB_QK_VPDPBUSD
           : k == LB_KERNEL_PMADDUBSW && b_narrow_ok == 2       ? LB_QK_PMADDUBSW
                                                                : LB_QK_PMADDWD;
    if (vbits < 256 || kind == LB_QK_PMADDUBSW) vbits = 256; /* vpsignb has no zmm form */
  } else if (is_arch(s, "aarch64")) {
    kind = !b_narrow_ok ? LB_QK_SMLAL
           : k == LB_KERNEL_SDOT ? LB_QK_SDOT
           : k == LB_KERNEL_SMMLA ? LB_QK_SMMLA
                                  : LB_QK_SMLAL;
    vbits = 128;
  } else {
    return lb_diag_err(diag, LB_ERR_INPUT, "no integer kernels for target triple '%s'",
                       lb_spec_llvm_triple(s));
  }
  const qk_row *r = &rows[kind];
  out->kind = kind;
  out->lanes = vbits / 32;
  out->mr = r->mr;
  out->nr = r->nr_vectors * out->lanes;
  out->kr = r->kr;
  out->wide = r->wide;
  out->a_signed = r->a_signed;
  out->b8 = 0, out->pf_next = 0;
  return 0;
}

/* The 0x80 flip maps an i8 x to the u8 x + 128 and a u8 x to the s8 x - 128. */
static int flips(const lb_qk_shape *s, lb_dtype act) {
  return !s->wide && (act == LB_DTYPE_I8) != s->a_signed;
}

int32_t lb_qk_act_zero(const lb_qk_shape *s, lb_dtype act, int32_t zx) {
  if (s->wide) return 0;
  if (!flips(s, act)) return zx;
  return act == LB_DTYPE_I8 ? zx + 128 : zx - 128;
}

int32_t lb_qk_act_pack(const lb_qk_shape *s, lb_dtype act, int32_t x, int32_t zx) {
  if (s->wide) return x - zx;
  if (!flips(s, act)) return x;
  return act == LB_DTYPE_I8 ? x + 128 : x - 128;
}

int lb_qk_fits_s8(const int16_t *wp, int64_t count) {
  int r = 2;
  for (int64_t i = 0; i < count; i++) {
    if (wp[i] < -128 || wp[i] > 127) return 0;
    if (wp[i] == -128) r = 1;
  }
  return r;
}

int64_t lb_qpack_index(const lb_qk_shape *s, int64_t Kp, int64_t k, int64_t n) {
  int64_t p = n / s->nr, j = n % s->nr;
  return p * Kp * s->nr + (k / s->kr) * s->nr * s->kr + j * s->kr + k % s->kr;
}

int lb_qpack(const lb_qk_shape *s, const int16_t *wp, int64_t K, int64_t N, const int32_t *bias,
             lb_dtype act, int32_t zx, lb_qpacked *out) {
  memset(out, 0, sizeof *out);
  out->K = K, out->N = N;
  out->Kp = (K + s->kr - 1) / s->kr * s->kr;
  out->Np = (N + s->nr - 1) / s->nr * s->nr;
  size_t esz = (size_t)lb_qk_b_bytes(s);
  out->b_bytes = (size_t)(out->Kp * out->Np) * esz;
  out->b = lb_calloc(out->b_bytes ? out->b_bytes : 1, 1);
  out->bias = lb_calloc((size_t)out->Np, sizeof *out->bias);
  if (!out->b || !out->bias) {
    lb_qpacked_free(out);
    return LB_ERR_NOMEM;
  }
  int32_t c = lb_qk_act_zero(s, act, zx);
  for (int64_t n = 0; n < N; n++) {
    int32_t sum = 0;
    for (int64_t k = 0; k < K; k++) {
      int16_t w = wp[k * N + n];
      int64_t i = lb_qpack_index(s, out->Kp, k, n);
      if (esz == 2)
        ((int16_t *)out->b)[i] = w;
      else
        ((int8_t *)out->b)[i] = (int8_t)w;
      sum += w;
    }
    /* unsigned arithmetic: the fold wraps exactly like the kernel's int32 adds */
    out->bias[n] = (int32_t)((uint32_t)(bias ? bias[n] : 0) - (uint32_t)c * (uint32_t)sum);
  }
  return 0;
}

void lb_qpacked_free(lb_qpacked *p) {
  lb_free(p->b), lb_free(p->bias);
  p->b = NULL, p->bias = NULL;
}

int lb_qgemm_nosat(const int16_t *wp, int64_t K, int64_t N, const int32_t *bias,
                   const float *mult, float mr) {
  for (int64_t n = 0; n < N; n++) {
    double a = bias ? fabs((double)bias[n]) : 0.0;
    for (int64_t k = 0; k < K; k++) a += 255.0 * abs(wp[k * N + n]);
    double x = a * fabs((double)mult[n]) + 255.0 * fabs((double)mr);
    if (!(x < 1073741824.0)) return 0;
  }
  return 1;
}
