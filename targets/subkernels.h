/* Sub-byte kernels of the LLVM backend: int4/int2 weights stored as a lossless compression of the
 * int8 kernels' packed B (subpack.c), decompressed one L1-sized panel at a time in front of the
 * int8 micro-kernel (llvm/qkernels_sub.c), and binary GEMMs (sign activations and weights,
 * dot = K - 2 * popcount(xor)). Invariant: a sub-byte kernel reads exactly the packed int8
 * elements lb_qpack wrote, so it computes lb_qgemm_packed_ref's accumulators bit for bit. */
#ifndef LB_SUBKERNELS_H
#define LB_SUBKERNELS_H

#include "qkernels.h"

/* Compressed B layout. Each panel (Kp * nr packed elements, in lb_qpack's order) is cut into
 * chunks of LB_SUB_CHUNK * (8 / bits) elements; chunk byte i, bit field f (bits wide, low field
 * first) holds the chunk's element f * LB_SUB_CHUNK + i as two's complement. Decompressing a
 * chunk is then one load and, per field, a shift left and an arithmetic shift right on whole
 * vectors: no shuffles. The last chunk of a panel is padded with zero fields. */
#define LB_SUB_CHUNK 64

typedef struct lb_subpacked {
  int bits;            /* 4 or 2 */
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
/* Compresses p's packed B (n_panels = Np / nr panels) into bits-wide fields. Every element must
 * fit (lb_sub_bits_for). 0 or LB_ERR_NOMEM; free with lb_subpacked_free. */
int lb_subpack(const lb_qk_shape *s, const lb_qpacked *p, int bits, lb_subpacked *out);
void lb_subpacked_free(lb_subpacked *p);

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
/* lb_qgemm_emit with B read from the compressed panels at bsub (j->b is ignored): per panel of
 * nr columns, decompress it into panel_buf, then run the int8 tiles over rows [row0, row0 +
 * rows). j->Np / nr panels; j->bias, j->mult, j->out, j->res are offset per panel. */
void lb_subgemm_emit(struct lb_lw *L, const lb_qgemm_job *j, const lb_subpacked *sp,
                     LLVMValueRef bsub, LLVMValueRef panel_buf, LLVMValueRef a_pk,
                     LLVMValueRef row0, LLVMValueRef rows);

/* The sub-byte form of one layer's packed weights, for ops_int.c: bits 0 = the layer stays on
 * the int8 kernel. Realized graphs keep i4/i2 weights in i8 containers with values in the
 * narrow range, so the form is chosen from the packed values themselves: lossless by
 * construction, whatever the plan said. LB_SUBBYTE=0 in the environment keeps every layer on
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
