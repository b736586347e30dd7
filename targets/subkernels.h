/* Sub-byte kernels of the LLVM backend: int4/int2 weights stored as a lossless compression of the
 * int8 kernels' packed B (subpack.c). On x86 and AArch64 they run native register kernels
 * (llvm/qkernels_sub.c: fields unpacked in registers, then vpmaddubsw with int16 accumulation
 * on AVX2, vpdpbusd with VNNI, sdot, or smull/smlal2 with int16 accumulation on plain NEON);
 * for wide int8 kernel shapes (pmaddwd) each panel is decompressed into an L1 buffer in front
 * of the int8 micro-kernel. Binary GEMMs: sign activations and weights, dot = K - 2 * popcount(xor).
 * Invariant: a sub-byte kernel reads exactly the packed int8 elements lb_qpack wrote, so it
 * computes lb_qgemm_packed_ref's accumulators bit for bit. */
#ifndef LB_SUBKERNELS_H
#define LB_SUBKERNELS_H

#include "qkernels.h"

/* Compressed B layout. Each panel (Kp * nr packed elements, in lb_qpack's order) is cut into
 * chunks of `chunk` * (8 / bits) elements; chunk byte i, bit field f (bits wide, low field
 * first) holds the chunk's element f * chunk + i as two's complement. Decompressing a chunk is
 * one load and, per field, a shift and a mask or sign extension on whole vectors. The panel
 * path uses LB_SUB_CHUNK; the native kernels use chunk = one B vector of a k step (lanes * kr
 * bytes), so field f of a chunk is the f-th B vector of the k-step stream. The last chunk of a
 * panel is padded with zero fields. */
#define LB_SUB_CHUNK 64
/* Narrow int8 weights: 8-bit B with every |w'| <= this runs the x86 vpmaddubsw kernel (bits 8:
 * no compression) with int16 sums widened every S = 32767 / (2 * 255 * wmax) steps: S >= 2 up
 * to 32 (i6, i5); i7's 33..64 widen every step (2 * 255 * 64 = 32640 <= 32767). */
#define LB_SUB_NARROW_WMAX 64

typedef struct lb_subpacked {
  int bits;            /* 4 or 2; 8: narrow int8 weights (lb_sub_narrow), not compressed */
  int chunk;           /* bytes per chunk (lb_sub_chunk) */
  int wmax;            /* max |element|: bounds the native kernels' int16 sums */
  int wide;            /* decompressed elements are i16 (pmaddwd, smlal) else i8 */
  int64_t panel_elems; /* Kp * nr */
  int64_t panel_bytes; /* compressed bytes per panel, a multiple of LB_SUB_CHUNK */
  int64_t n_panels;
  uint8_t *b; /* lb_malloc'd, n_panels * panel_bytes */
  size_t b_bytes;
} lb_subpacked;

/* The smallest of 2 and 4 such that every packed B element of p fits a signed field of that
 * many bits (0 if none: the layer stays on the int8 kernel). */
int lb_sub_bits_for(const lb_qk_shape *s, const lb_qpacked *p);
/* Native register kernel of a packing shape: x86 u8 x s8 shapes, AArch64 sdot shapes and
 * narrow s8 smlal shapes with kr 4 (what lb_sub_shape returns) unpack fields in registers;
 * every other shape (wide ones: pmaddwd, smlal) takes the panel path. */
typedef enum { LB_SUBK_PANEL = 0, LB_SUBK_MADDUBS, LB_SUBK_VNNI, LB_SUBK_SDOT, LB_SUBK_SMLAL } lb_subk;
lb_subk lb_sub_kernel(const lb_qk_shape *s);
/* Chunk bytes of shape s: one B vector of a k step for native kernels, else LB_SUB_CHUNK. */
int lb_sub_chunk(const lb_qk_shape *s);
/* The packing shape of a layer whose weights fit 4 bits, given the int8 choice base: on x86
 * with AVX2, u8 activations (i8 ones XOR 0x80: the -128 * sum_k w' term folds into the bias)
 * by s8 weights, kr 4: LB_QK_PMADDUBSW lanes 8 (vpmaddubsw, int16 sums) or, when base is
 * LB_QK_VPDPBUSD, base's width with a taller tile (vpdpbusd). AArch64 with dot product: an
 * LB_QK_SDOT shape (s8 x s8, kr 4); plain NEON (base smlal): a narrow LB_QK_SMLAL shape (s8 x
 * s8, kr 4, 4 x 8 tile: smull/smlal2 into int16 sums). Elsewhere base itself. */
lb_qk_shape lb_sub_shape(const lb_spec *spec, const lb_qk_shape *base);
/* Compresses p's packed B (n_panels = Np / nr panels) into bits-wide fields. Every element must
 * fit (lb_sub_bits_for). 0 or LB_ERR_NOMEM; free with lb_subpacked_free. */
int lb_subpack(const lb_qk_shape *s, const lb_qpacked *p, int bits, lb_subpacked *out);
void lb_subpacked_free(lb_subpacked *p);
/* Narrow int8 weights (x86 AVX2): when s is an LB_SUBK_MADDUBS shape and wmax (the largest
 * |element| of the packed 8-bit B, Kp x Np) is at most LB_SUB_NARROW_WMAX, fills *out with the
 * geometry of that B read as is (bits 8, one field per byte, chunk = one B vector of a k step;
 * out->b NULL) and returns 1: the native kernel then skips the unpack and widens its int16 sums
 * every 32767 / (2 * 255 * wmax) >= 1 steps. Else 0. (llvm/qkernels_sub.c) */
int lb_sub_narrow(const lb_qk_shape *s, int64_t Kp, int64_t Np, int wmax, lb_subpacked *out);

/* ---- scalar references (subkernels_ref.c) ------------------------------------------------ */

/* Decompresses panel `panel` into dst (panel_elems int8 or int16 values). */
void lb_subunpack_ref(const lb_subpacked *p, int64_t panel, void *dst);
/* Binary GEMM on bit rows: acc[m][n] = bias[n] + K - 2 * popcount(xb[m] xor wb[n]) over the
 * first K bits; rows are `words` 64-bit words each (bits past K are zero in both). */
void lb_bgemm_ref(const uint64_t *xb, const uint64_t *wb, const int32_t *bias, int64_t M,
                  int64_t N, int64_t K, int64_t words, int32_t *acc);
/* Packs row-major 8-bit x [M][K] into bit rows: bit 1 where x >= thr. */
void lb_binarize_ref(const void *x, lb_dtype xt, int32_t thr, int64_t M, int64_t K,
                     int64_t words, uint64_t *xb);
/* Repacks b1 weights stored as ir.h says (w[n * K + k] packed) into `words`-word rows. */
void lb_bpack_w(const uint8_t *w, int64_t N, int64_t K, int64_t words, uint64_t *wb);

/* ---- LLVM emission (llvm/qkernels_sub.c) -------------------------------------------------- */

struct lb_lw;

/* Bytes of the decompressed panel buffer the sub-byte GEMM needs (64-byte aligned). */
size_t lb_subgemm_scratch(const lb_qk_shape *s, int64_t Kp);
/* lb_qgemm_emit with B read from the compressed panels at bsub (j->b is ignored) over rows
 * [row0, row0 + rows): native kernels (lb_sub_kernel(j->s)) unpack in registers (panel_buf
 * unused); the panel path decompresses each panel of nr columns into panel_buf and runs the
 * int8 tiles on it. */
void lb_subgemm_emit(struct lb_lw *L, const lb_qgemm_job *j, const lb_subpacked *sp,
                     LLVMValueRef bsub, LLVMValueRef panel_buf, LLVMValueRef a_pk,
                     LLVMValueRef row0, LLVMValueRef rows);

/* For ops_int.c, before activations are packed: when sub-byte kernels are enabled and every w'
 * (count values) fits a signed 4-bit field, *s becomes lb_sub_shape(spec, s). */
void lb_subw_shape(struct lb_lw *L, const int16_t *wp, int64_t count, lb_qk_shape *s);

/* The sub-byte form of one layer's packed weights, for ops_int.c: bits 0 = the layer stays on
 * the int8 kernel. The form is chosen from the weight values themselves (realize's packed
 * i4/i2 weights, or narrow values in 8-bit weights): lossless by construction, whatever the
 * plan said. LB_SUBBYTE=0 in the environment keeps every layer on
 * int8 (for benchmarks of the same weights on both kernels). */
typedef struct lb_subw {
  int bits;
  lb_subpacked geom; /* sizes of one group (geom.b == NULL) */
  int64_t group_bytes;
} lb_subw;
/* Compresses G packed groups (each Kp x Np elements of s's type, one after another at b) into
 * one constant blob *blob when every element fits 4 or 2 bits; else w->bits = 0. */
int lb_subw_try(struct lb_lw *L, const lb_qk_shape *s, const void *b, int64_t G, int64_t Kp,
                int64_t Np, lb_subw *w, LLVMValueRef *blob);
/* Compressed panels of group g (i64 value) in the blob. */
LLVMValueRef lb_subw_group(struct lb_lw *L, const lb_subw *w, LLVMValueRef blob, LLVMValueRef g);
/* Reserves the panel buffer at the end of the step's scratch (64-byte aligned) and returns it;
 * NULL when w->bits is 0. */
LLVMValueRef lb_subw_place(struct lb_lw *L, const lb_subw *w, const lb_qk_shape *s, int64_t Kp,
                           LLVMValueRef scratch, size_t *scratch_bytes);
/* lb_qgemm_emit, or lb_subgemm_emit on j->b's compressed panels when w->bits. */
void lb_subw_gemm(struct lb_lw *L, const lb_qgemm_job *j, const lb_subw *w, LLVMValueRef buf,
                  LLVMValueRef a_pk, LLVMValueRef row0, LLVMValueRef rows);

/* A binary dense layer y[M,N] = requantize(bias + dot(sign(x >= thr), w)) as an emitted
 * function void name(const x8 *x, void *y, void *scratch): scratch holds M * words * 8 bytes
 * of binarized rows (lb_bgemm_scratch). Weights, bias and multipliers are constants. */
typedef struct lb_bdense {
  int64_t M, K, N;
  lb_dtype xt, yt; /* x i8/u8; y i8/u8/i32 (requantized in every case, as the interpreter) */
  int32_t thr;
  const uint8_t *w;    /* b1 packed [N][K] as ir.h stores it */
  const int32_t *bias; /* N or NULL */
  const float *mul;    /* N */
  int32_t zy, lo, hi;
} lb_bdense;
size_t lb_bgemm_scratch(const lb_bdense *d);
/* Emits the function (external linkage) into L->mod; LB_ERR_NOMEM or 0. */
int lb_bdense_emit(struct lb_lw *L, const lb_bdense *d, const char *name);

#endif
