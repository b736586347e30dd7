/* Compile-time packing of sub-byte weights: the int8 kernels' packed B (qpack.c, every zero-point
 * and sign compensation already folded into the bias) compressed into 4- or 2-bit fields in the
 * chunk layout of subkernels.h, and the choice of the packing shape the native kernels want.
 * Invariant: lb_subunpack_ref(lb_subpack(p)) == p's packed B, so compression never changes a
 * result. */
#include <string.h>

#include "subkernels.h"

lb_subk lb_sub_kernel(const lb_qk_shape *s) {
  if (s->wide || s->kr != 4) return LB_SUBK_PANEL;
  if (s->kind == LB_QK_SDOT && s->a_signed) return LB_SUBK_SDOT;
  if (s->kind == LB_QK_SMLAL && s->a_signed) return LB_SUBK_SMLAL;
  if (s->a_signed) return LB_SUBK_PANEL;
  if (s->kind == LB_QK_VPDPBUSD) return LB_SUBK_VNNI;
  return s->kind == LB_QK_PMADDUBSW ? LB_SUBK_MADDUBS : LB_SUBK_PANEL;
}

int lb_sub_chunk(const lb_qk_shape *s) {
  return lb_sub_kernel(s) == LB_SUBK_PANEL ? LB_SUB_CHUNK : s->lanes * s->kr;
}

lb_qk_shape lb_sub_shape(const lb_spec *spec, const lb_qk_shape *base) {
  const char *t = lb_spec_llvm_triple(spec), *f = lb_spec_llvm_features(spec);
  if (t && !strncmp(t, "aarch64", 7)) {
    /* sdot with in-register unpack; i8mm cores have dot product too (smmla's kr 8 pairs rows,
     * sdot's kr 4 keeps the unpacked B vectors one per 4 columns) */
    if (base->kind == LB_QK_SMMLA && f && strstr(f, "+dotprod"))
      return (lb_qk_shape){.kind = LB_QK_SDOT, .mr = 4, .nr = 16, .kr = 4, .lanes = 4, .a_signed = 1};
    /* plain NEON: s8 x s8 by smull/smlal2 into int16 sums (4 x 8 x 2 halves = 16 of the 32
     * registers, the i32 accumulators beside them) instead of the wide i16 smlal kernel */
    if (base->kind == LB_QK_SMLAL)
      return (lb_qk_shape){.kind = LB_QK_SMLAL, .mr = 4, .nr = 8, .kr = 4, .lanes = 4, .a_signed = 1};
    return *base;
  }
  if (!t || strncmp(t, "x86_64", 6)) return *base; /* every x86 spec's int8 kernels assume AVX2 */
  lb_qk_shape s = *base;
  if (base->kind == LB_QK_VPDPBUSD) {
    /* 6 x 2 accumulators amortize the unpack over 6 rows (measured at 512 bits, Zen 5:
     * mr 6 ~1.1x the int8 kernel, mr 4 ~1.0x, 8 x 1 0.95x, vpmaddubsw + int16 sums 0.75x) */
    s.mr = base->lanes == 16 ? 6 : 4;
    return s;
  }
  /* mr 4 x 2 vectors: 8 int16 + 2 B + A + table + mask registers of the 16 ymm (5 x 2 measured
   * the same, 8 x 1 slower for int4) */
  return (lb_qk_shape){.kind = LB_QK_PMADDUBSW, .mr = 4, .nr = 16, .kr = 4, .lanes = 8};
}

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

/* Puts the fields of one panel (elements e0 .. e0 + n of the packed stream) into dst and
 * returns the largest |element|. */
static int pack_panel(const lb_qk_shape *s, const lb_qpacked *p, const lb_subpacked *o,
                      int64_t e0, uint8_t *dst) {
  int64_t chunk = o->chunk, per_chunk = chunk * (8 / o->bits);
  uint32_t mask = (1u << o->bits) - 1u;
  int wmax = 0;
  for (int64_t e = 0; e < o->panel_elems; e++) {
    int64_t c = e / per_chunk, r = e % per_chunk;
    int64_t f = r / chunk, i = r % chunk;
    int32_t v = packed_at(s, p, e0 + e);
    wmax = v > wmax ? v : -v > wmax ? -v : wmax;
    dst[c * chunk + i] |= (uint8_t)(((uint32_t)v & mask) << (f * o->bits));
  }
  return wmax;
}

int lb_subpack(const lb_qk_shape *s, const lb_qpacked *p, int bits, lb_subpacked *out) {
  memset(out, 0, sizeof *out);
  LB_ASSERT(bits == 2 || bits == 4);
  out->bits = bits;
  out->chunk = lb_sub_chunk(s);
  int64_t per_chunk = (int64_t)out->chunk * (8 / bits);
  out->wide = s->wide;
  out->panel_elems = p->Kp * s->nr;
  out->panel_bytes = (out->panel_elems + per_chunk - 1) / per_chunk * out->chunk;
  out->n_panels = p->Np / s->nr;
  out->b_bytes = (size_t)(out->n_panels * out->panel_bytes);
  out->b = lb_calloc(out->b_bytes ? out->b_bytes : 1, 1);
  if (!out->b) return LB_ERR_NOMEM;
  for (int64_t q = 0; q < out->n_panels; q++) {
    int w = pack_panel(s, p, out, q * out->panel_elems, out->b + q * out->panel_bytes);
    out->wmax = w > out->wmax ? w : out->wmax;
  }
  return 0;
}

void lb_subpacked_free(lb_subpacked *p) {
  lb_free(p->b);
  memset(p, 0, sizeof *p);
}
