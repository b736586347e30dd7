/* Compile-time packing of sub-byte weights: the int8 kernels' packed B (qpack.c, every zero-point
 * and sign compensation already folded into the bias) compressed into 4- or 2-bit fields in the
 * chunk layout of subkernels.h. Invariant: lb_subunpack_ref(lb_subpack(p)) == p's packed B, so
 * compression never changes a result. */
#include <string.h>

#include "subkernels.h"

static int32_t packed_at(const lb_qk_shape *s, const lb_qpacked *p, int64_t i) {
  return s->wide ? ((const int16_t *)p->b)[i] : ((const int8_t *)p->b)[i];
}

int lb_sub_bits_for(const lb_qk_shape *s, const lb_qpacked *p) {
  int64_t n = p->Kp * p->Np;
  int32_t lo = 0, hi = 0;
  for (int64_t i = 0; i < n; i++) {
    int32_t v = packed_at(s, p, i);
    lo = v < lo ? v : lo, hi = v > hi ? v : hi;
  }
  if (lo >= -2 && hi <= 1) return 2;
  if (lo >= -8 && hi <= 7) return 4;
  return 0;
}

/* Puts the fields of one panel (elements e0 .. e0 + n of the packed stream) into dst. */
static void pack_panel(const lb_qk_shape *s, const lb_qpacked *p, int bits, int64_t e0,
                       int64_t n, uint8_t *dst) {
  int64_t per_chunk = LB_SUB_CHUNK * (8 / bits);
  uint32_t mask = (1u << bits) - 1u;
  for (int64_t e = 0; e < n; e++) {
    int64_t c = e / per_chunk, r = e % per_chunk;
    int64_t f = r / LB_SUB_CHUNK, i = r % LB_SUB_CHUNK;
    uint32_t v = (uint32_t)packed_at(s, p, e0 + e) & mask;
    dst[c * LB_SUB_CHUNK + i] |= (uint8_t)(v << (f * bits));
  }
}

int lb_subpack(const lb_qk_shape *s, const lb_qpacked *p, int bits, lb_subpacked *out) {
  memset(out, 0, sizeof *out);
  LB_ASSERT(bits == 2 || bits == 4);
  int64_t per_chunk = LB_SUB_CHUNK * (8 / bits);
  out->bits = bits;
  out->wide = s->wide;
  out->panel_elems = p->Kp * s->nr;
  out->panel_bytes = (out->panel_elems + per_chunk - 1) / per_chunk * LB_SUB_CHUNK;
  out->n_panels = p->Np / s->nr;
  out->b_bytes = (size_t)(out->n_panels * out->panel_bytes);
  out->b = lb_calloc(out->b_bytes ? out->b_bytes : 1, 1);
  if (!out->b) return LB_ERR_NOMEM;
  for (int64_t q = 0; q < out->n_panels; q++)
    pack_panel(s, p, bits, q * out->panel_elems, out->panel_elems,
               out->b + q * out->panel_bytes);
  return 0;
}

void lb_subpacked_free(lb_subpacked *p) {
  lb_free(p->b);
  memset(p, 0, sizeof *p);
}
