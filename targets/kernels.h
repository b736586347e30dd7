/* fp32 compute kernels of the LLVM backend: a config taken from the spec, compile-time weight
 * packing (pack.c), LLVM emitters specialised by shape (llvm/kernels_*.c) and plain-C scalar
 * references (kernels_ref.c) that the tests use as the oracle. Invariant: an emitted kernel and
 * its _ref compute the same function of the same (unpacked) operands; packing is pure layout. */
#ifndef LB_KERNELS_H
#define LB_KERNELS_H

#include <llvm-c/Core.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"
#include "spec.h"

/* ---- configuration ----------------------------------------------------------------------- */

/* What the emitters need to know about the target. Fill it with lb_kern_cfg_from_spec, or by
 * hand in tests (e.g. vector_bits = 128 on an x86 host: the emitters are width-generic). */
typedef struct lb_kern_cfg {
  int vector_bits;      /* 32 (scalar), 128, 256 or 512 */
  int vector_regs;      /* architectural vector registers: 16 (AVX2), 32 (AVX-512, NEON) */
  int64_t cache[3];     /* L1d, L2, L3 bytes per core (0 = unknown: 32K/1M/8M assumed) */
  const char *isa;      /* symbol token; NULL = from vector_bits: scalar/neon/avx2/avx512 */
  const char *cpu;      /* optional: added as "target-cpu" to every emitted function */
  const char *features; /* optional: added as "target-features" to every emitted function */
} lb_kern_cfg;

/* Copies vector width, registers, caches, cpu and features from the spec (strings stay owned
 * by the spec, so the spec must outlive the cfg). */
void lb_kern_cfg_from_spec(const lb_spec *s, lb_kern_cfg *cfg);
/* LB_ERR_INPUT with a message if the cfg is unusable (vector_bits not 32/128/256/512, ...). */
int lb_kern_cfg_check(const lb_kern_cfg *cfg, lb_diag *diag);
/* GEMM register tile: MR rows x NR columns (NR = floats per packed B panel). AVX2 -> 6x16,
 * AVX-512 -> 12x32, NEON (128-bit, 32 regs) -> 6x16, scalar (16 regs) -> 2x4. */
void lb_kern_gemm_tile(const lb_kern_cfg *cfg, int *mr, int *nr);
const char *lb_kern_isa(const lb_kern_cfg *cfg);

/* ---- compile-time weight packing (pack.c) ------------------------------------------------ */

/* Packed GEMM B: ceil(N/NR) panels, panel p = [K][NR] floats holding columns p*NR.., columns
 * past N zero-filled. Depends only on NR (lb_kern_gemm_tile), so one packed blob serves every
 * M. Sizes are in bytes; SIZE_MAX on overflow. The packed buffer should be 64-byte aligned
 * (not required for correctness). */
size_t lb_pack_gemm_b_size(const lb_kern_cfg *cfg, int64_t k, int64_t n);
/* From row-major B[K][N] (b_is_nk = 0) or from B^T stored as [N][K] (b_is_nk = 1, e.g. ONNX
 * Gemm transB=1 weights, or a conv weight [Cout][Cin] for a 1x1 conv). */
void lb_pack_gemm_b(const lb_kern_cfg *cfg, int64_t k, int64_t n, const float *b, int b_is_nk,
                    float *out);
/* Conv weight OIHW [co][ci][kh][kw] -> packed GEMM B with K = kh*kw*ci in (kh, kw, ci) order,
 * matching the im2col row layout. Size: lb_pack_gemm_b_size(cfg, kh*kw*ci, co). */
void lb_pack_conv_w(const lb_kern_cfg *cfg, const float *w, int64_t co, int64_t ci, int64_t kh,
                    int64_t kw, float *out);
/* Depthwise weight [C][1][KH][KW] -> [KH*KW][C] (tap-major). lb_pack_dw_size returns BYTES
 * (C*KH*KW*4), like lb_pack_gemm_b_size. */
size_t lb_pack_dw_size(int64_t c, int64_t kh, int64_t kw);
void lb_pack_dw_w(const float *w, int64_t c, int64_t kh, int64_t kw, float *out);

/* ---- kernel descriptions ----------------------------------------------------------------- */

/* C[M,N] = act(A[M,K] . B[K,N] + bias[N] + res[M,N]). Leading dims in elements (>= the row
 * length). bias/res are used only if has_bias/has_res. res must not overlap C (C is used as
 * the accumulator between K blocks). B is packed (lb_pack_gemm_b) unless b_rowmajor is set:
 * then it is a run-time row-major [K][ldb] matrix (e.g. MatMul of two activations). */
typedef struct lb_gemm_desc {
  int64_t m, n, k;
  int64_t lda, ldc, ldr;
  int has_bias, has_res;
  lb_act act;
  float act_min, act_max; /* LB_ACT_CLIP */
  int b_rowmajor;         /* 0: Bp packed at compile time; 1: plain B with leading dim ldb */
  int64_t ldb;
} lb_gemm_desc;

/* 2-D convolution, NHWC in and out, group 1 (lb_emit_conv_f32) or depthwise with channel
 * multiplier 1 (lb_emit_dwconv_f32, then c_out == c_in). Input pixel stride ldx and output
 * pixel stride ldy let a conv read/write a channel slice of a wider (concat) buffer; 0 means
 * dense (c_in resp. c_out). pads: top, left, bottom, right. oh/ow are derived: call
 * lb_conv_desc_finish after filling the rest. */
typedef struct lb_conv_desc {
  int64_t n, h, w, c_in, c_out;
  int64_t kh, kw, sh, sw, dh, dw;
  int64_t pad_t, pad_l, pad_b, pad_r;
  int64_t ldx, ldy, ldr; /* ldr: residual pixel stride (0 = c_out) */
  int has_bias, has_res;
  lb_act act;
  float act_min, act_max;
  int64_t oh, ow; /* set by lb_conv_desc_finish */
} lb_conv_desc;

/* Computes oh/ow and the default strides; LB_ERR_INPUT if the shape is empty or invalid. */
int lb_conv_desc_finish(lb_conv_desc *d, lb_diag *diag);
/* The GEMM a conv lowers to: M = n*oh*ow, N = c_out, K = kh*kw*c_in. */
void lb_conv_gemm_desc(const lb_conv_desc *d, lb_gemm_desc *g);

/* ---- emitters (targets/llvm/kernels_*.c) ------------------------------------------------- */

/* One emitted kernel. fn lives in the module given to the emitter (external linkage; the
 * caller may make it internal). Its name says dtype, op, tile, ISA and shape, e.g.
 * "lb_f32_f32_gemm_ukernel_6x16__avx2_m3136n64k576_a576c64r0_b1r0_kc576mc900_relu" (kc/mc:
 * the K and M blocks chosen from the caches); emitting the same
 * description twice into one module returns the existing function. scratch_bytes is the
 * workspace the function needs in its scratch argument (0 = pass NULL). */
typedef struct lb_kern_out {
  LLVMValueRef fn;
  size_t scratch_bytes;
} lb_kern_out;

/* void f(const float *A, const float *Bp, const float *bias, const float *res, float *C,
 *        float *scratch)
 * Bp packed by lb_pack_gemm_b (or plain B if b_rowmajor). bias/res may be NULL when unused.
 * To split M across threads, emit a GEMM for a smaller M and offset A, res and C by rows. */
int lb_emit_gemm_f32(LLVMModuleRef mod, const lb_kern_cfg *cfg, const lb_gemm_desc *d,
                     lb_kern_out *out, lb_diag *diag);

/* void f(const float *X, float *cols)
 * X is NHWC (pixel stride ldx); cols is [n*oh*ow][kh*kw*c_in] row-major, zero where the window
 * hits padding. scratch_bytes = 0; the cols buffer itself is the caller's. */
int lb_emit_im2col_f32(LLVMModuleRef mod, const lb_kern_cfg *cfg, const lb_conv_desc *d,
                       lb_kern_out *out, lb_diag *diag);

/* void f(const float *X, const float *Wp, const float *bias, const float *res, float *Y,
 *        float *scratch)
 * Group-1 conv = im2col into scratch + GEMM: in L2-sized blocks of output pixels when the
 * packed weights fit in half of L2, else all pixels at once; 1x1 stride-1 unpadded convs skip
 * im2col and need no scratch. Wp packed by lb_pack_conv_w. scratch_bytes says how much. */
int lb_emit_conv_f32(LLVMModuleRef mod, const lb_kern_cfg *cfg, const lb_conv_desc *d,
                     lb_kern_out *out, lb_diag *diag);

/* Same signature; depthwise (c_out == c_in, multiplier 1), Wp packed by lb_pack_dw_w.
 * bias and residual + act fused; scratch_bytes = 0. At most 64 taps (kh*kw): larger kernels
 * return LB_ERR_INPUT, so take the generic path for them. */
int lb_emit_dwconv_f32(LLVMModuleRef mod, const lb_kern_cfg *cfg, const lb_conv_desc *d,
                       lb_kern_out *out, lb_diag *diag);

/* ---- scalar references (kernels_ref.c); B and weights unpacked, double accumulation ----- */

/* b is row-major [K][N] with leading dim n (ldb when d->b_rowmajor). */
void lb_ref_gemm_f32(const lb_gemm_desc *d, const float *a, const float *b, const float *bias,
                     const float *res, float *c);
void lb_ref_im2col_f32(const lb_conv_desc *d, const float *x, float *cols);
/* w is OIHW [c_out][c_in][kh][kw]. */
void lb_ref_conv_f32(const lb_conv_desc *d, const float *x, const float *w, const float *bias,
                     const float *res, float *y);
/* w is [C][1][KH][KW]. */
void lb_ref_dwconv_f32(const lb_conv_desc *d, const float *x, const float *w, const float *bias,
                       const float *res, float *y);
/* Applies the fused activation (shared by every _ref). */
float lb_ref_act(lb_act act, float lo, float hi, float x);

/* ---- host JIT for kernel tests and benchmarks (targets/llvm/kernels_jit.c) --------------- */

/* An ORC LLJIT for this machine plus one module to emit kernels into. lb_kjit_finish verifies
 * the module, runs default<O3> with a host target machine, hands it to the JIT and looks up
 * the named symbols. Not the backend's JIT (that is targets/llvm's); just enough for tests. */
typedef struct lb_kjit lb_kjit;
int lb_kjit_new(lb_kjit **out, LLVMModuleRef *mod, lb_diag *diag);
int lb_kjit_finish(lb_kjit *j, const char *const *syms, void **addrs, int n, lb_diag *diag);
void lb_kjit_free(lb_kjit *j);
/* The host's vector width (256 with AVX2, 512 with AVX-512F, 128 otherwise) and features. */
void lb_kjit_host_cfg(lb_kern_cfg *cfg);

/* ---- emitter internals shared by targets/llvm/kernels_*.c (not for other callers) -------- */

/* Symbol name buffers: 21 int64 fields, a 32-char ISA token and the fixed text always fit, so a
 * name is never truncated (two descriptions can never share a name). */
#define LB_KERN_NAME_MAX 768

/* IR-building state for one emitted function. */
typedef struct lb_kir {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMValueRef fn;
  LLVMTypeRef f32, i1, i32, i64, ptr, vec; /* vec = <VW x float> */
  int vw;                                   /* floats per vector */
} lb_kir;

/* A counted loop: for (iv = start; iv < end; iv += step), with n loop-carried values. */
typedef struct lb_kloop {
  LLVMBasicBlockRef head, body, exit;
  LLVMValueRef iv;
  LLVMValueRef carry[64];
  int n_carry;
} lb_kloop;

/* Creates fn (or returns 1 with *existing set if a function of that name exists) and a
 * builder at its entry block; attributes from cfg; params 0..n-1 are pointers, the rest i64/i1
 * as given by types. lb_kir_end disposes the builder. */
int lb_kir_begin(lb_kir *k, LLVMModuleRef mod, const lb_kern_cfg *cfg, const char *name,
                 LLVMTypeRef *params, unsigned n_params, int internal, LLVMValueRef *existing);
void lb_kir_end(lb_kir *k);
LLVMValueRef lb_kir_i64(lb_kir *k, int64_t v);
LLVMValueRef lb_kir_gep(lb_kir *k, LLVMValueRef base, LLVMValueRef idx);      /* float* + idx */
LLVMValueRef lb_kir_gepc(lb_kir *k, LLVMValueRef base, int64_t idx);          /* constant idx */
LLVMValueRef lb_kir_splat(lb_kir *k, LLVMValueRef scalar);
LLVMValueRef lb_kir_vconst(lb_kir *k, float v);
/* Loads/stores the first `lanes` floats at p (lanes == vw: a plain vector access). */
LLVMValueRef lb_kir_vload(lb_kir *k, LLVMValueRef p, int lanes);
void lb_kir_vstore(lb_kir *k, LLVMValueRef v, LLVMValueRef p, int lanes);
LLVMValueRef lb_kir_fma(lb_kir *k, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c);
LLVMValueRef lb_kir_act(lb_kir *k, LLVMValueRef v, lb_act act, float lo, float hi);
LLVMValueRef lb_kir_min64(lb_kir *k, LLVMValueRef a, LLVMValueRef b);
void lb_kloop_begin(lb_kir *k, lb_kloop *l, LLVMValueRef start, LLVMValueRef end,
                    const LLVMValueRef *carry_init, int n_carry);
void lb_kloop_end(lb_kir *k, lb_kloop *l, LLVMValueRef step, const LLVMValueRef *carry_next);
/* Appends "_<act>" (with the clip bounds) to a kernel name. */
void lb_kir_act_suffix(char *buf, size_t cap, lb_act act, float lo, float hi);
/* snprintf into a name buffer; asserts that nothing was cut off. */
void lb_kir_name(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
