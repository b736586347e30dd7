/* Shared pieces of the fp32 kernel emitters: kernel config checks, the GEMM tile choice, conv
 * shape arithmetic, and small IR-building helpers (typed GEPs, splats, masked vector access,
 * counted loops with loop-carried values). Invariant: every helper leaves the builder at the
 * end of a block that is still open (no terminator), so callers can keep appending. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernels.h"

const char *lb_kern_isa(const lb_kern_cfg *cfg) {
  if (cfg->isa) return cfg->isa;
  switch (cfg->vector_bits) {
  case 128: return "neon";
  case 256: return "avx2";
  case 512: return "avx512";
  default: return "scalar";
  }
}

int lb_kern_cfg_check(const lb_kern_cfg *cfg, lb_diag *diag) {
  int vb = cfg->vector_bits;
  if (vb != 32 && vb != 128 && vb != 256 && vb != 512)
    return lb_diag_err(diag, LB_ERR_INPUT, "kernel config: vector width %d bits is not 32, 128, "
                       "256 or 512", vb);
  if (cfg->isa && strlen(cfg->isa) > 32)
    return lb_diag_err(diag, LB_ERR_INPUT, "kernel config: ISA token '%.40s...' longer than 32",
                       cfg->isa);
  if (cfg->vector_regs < 8 || cfg->vector_regs > 64)
    return lb_diag_err(diag, LB_ERR_INPUT, "kernel config: %d vector registers (expected 8..64)",
                       cfg->vector_regs);
  return LB_OK;
}

/* NV vectors per row of the tile and MR rows so that MR*NV accumulators, NV B vectors and one
 * broadcast A register fit the register file (AVX2: 12 + 2 + 1 = 15 of 16). 128-bit targets
 * with 32 registers take NV = 4 so NR stays 16; MR is capped at 12. */
void lb_kern_gemm_tile(const lb_kern_cfg *cfg, int *mr, int *nr) {
  int vw = cfg->vector_bits / 32;
  int regs = cfg->vector_regs >= 8 ? cfg->vector_regs : 16;
  int nv = (vw <= 4 && regs >= 32) || vw == 1 ? 4 : 2;
  int m = (regs - nv - 1) / nv;
  if (m > 12) m = 12;
  if (m < 1) m = 1;
  *mr = m;
  *nr = nv * vw;
}

int lb_conv_desc_finish(lb_conv_desc *d, lb_diag *diag) {
  if (d->n <= 0 || d->h <= 0 || d->w <= 0 || d->c_in <= 0 || d->c_out <= 0 || d->kh <= 0 ||
      d->kw <= 0 || d->sh <= 0 || d->sw <= 0 || d->dh <= 0 || d->dw <= 0 || d->pad_t < 0 ||
      d->pad_l < 0 || d->pad_b < 0 || d->pad_r < 0)
    return lb_diag_err(diag, LB_ERR_INPUT, "conv: invalid shape (every size, stride and dilation "
                       "must be positive and pads non-negative)");
  int64_t eh = (d->kh - 1) * d->dh + 1, ew = (d->kw - 1) * d->dw + 1;
  int64_t hp = d->h + d->pad_t + d->pad_b, wp = d->w + d->pad_l + d->pad_r;
  if (eh > hp || ew > wp)
    return lb_diag_err(diag, LB_ERR_INPUT, "conv: kernel %lldx%lld (dilated) larger than padded "
                       "input %lldx%lld", (long long)eh, (long long)ew, (long long)hp,
                       (long long)wp);
  d->oh = (hp - eh) / d->sh + 1;
  d->ow = (wp - ew) / d->sw + 1;
  if (!d->ldx) d->ldx = d->c_in;
  if (!d->ldy) d->ldy = d->c_out;
  if (!d->ldr) d->ldr = d->c_out;
  if (d->ldx < d->c_in || d->ldy < d->c_out || d->ldr < d->c_out)
    return lb_diag_err(diag, LB_ERR_INPUT, "conv: pixel stride smaller than the channel count");
  return LB_OK;
}

void lb_conv_gemm_desc(const lb_conv_desc *d, lb_gemm_desc *g) {
  memset(g, 0, sizeof *g);
  g->m = d->n * d->oh * d->ow;
  g->n = d->c_out;
  g->k = d->kh * d->kw * d->c_in;
  g->lda = g->k;
  g->ldc = d->ldy;
  g->ldr = d->ldr;
  g->has_bias = d->has_bias;
  g->has_res = d->has_res;
  g->act = d->act;
  g->act_min = d->act_min;
  g->act_max = d->act_max;
}

void lb_kir_name(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
  LB_ASSERT(n >= 0 && (size_t)n < cap);
}

void lb_kir_act_suffix(char *buf, size_t cap, lb_act act, float lo, float hi) {
  size_t len = strlen(buf);
  if (act == LB_ACT_RELU) {
    lb_kir_name(buf + len, cap - len, "_relu");
  } else if (act == LB_ACT_CLIP) {
    uint32_t a, b;
    memcpy(&a, &lo, 4);
    memcpy(&b, &hi, 4);
    lb_kir_name(buf + len, cap - len, "_clip%08x_%08x", (unsigned)a, (unsigned)b);
  }
}

static void add_str_attr(lb_kir *k, const char *key, const char *val) {
  if (!val || !*val) return;
  LLVMAttributeRef a = LLVMCreateStringAttribute(k->ctx, key, (unsigned)strlen(key), val,
                                                 (unsigned)strlen(val));
  LLVMAddAttributeAtIndex(k->fn, LLVMAttributeFunctionIndex, a);
}

static void add_enum_attr(lb_kir *k, unsigned idx, const char *name) {
  unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
  LLVMAddAttributeAtIndex(k->fn, idx, LLVMCreateEnumAttribute(k->ctx, kind, 0));
}

int lb_kir_begin(lb_kir *k, LLVMModuleRef mod, const lb_kern_cfg *cfg, const char *name,
                 LLVMTypeRef *params, unsigned n_params, int internal, LLVMValueRef *existing) {
  memset(k, 0, sizeof *k);
  k->mod = mod;
  k->ctx = LLVMGetModuleContext(mod);
  k->f32 = LLVMFloatTypeInContext(k->ctx);
  k->i1 = LLVMInt1TypeInContext(k->ctx);
  k->i32 = LLVMInt32TypeInContext(k->ctx);
  k->i64 = LLVMInt64TypeInContext(k->ctx);
  k->ptr = LLVMPointerTypeInContext(k->ctx, 0);
  k->vw = cfg->vector_bits / 32;
  k->vec = LLVMVectorType(k->f32, (unsigned)k->vw);
  LLVMValueRef old = LLVMGetNamedFunction(mod, name);
  if (old) {
    *existing = old;
    return 1;
  }
  for (unsigned i = 0; i < n_params; i++)
    if (!params[i]) params[i] = k->ptr;
  LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(k->ctx), params, n_params, 0);
  k->fn = LLVMAddFunction(mod, name, fty);
  if (internal) LLVMSetLinkage(k->fn, LLVMInternalLinkage);
  add_enum_attr(k, LLVMAttributeFunctionIndex, "nounwind");
  add_str_attr(k, "target-cpu", cfg->cpu);
  add_str_attr(k, "target-features", cfg->features);
  for (unsigned i = 0; i < n_params; i++)
    if (LLVMGetTypeKind(params[i]) == LLVMPointerTypeKind) add_enum_attr(k, i + 1, "nocapture");
  k->b = LLVMCreateBuilderInContext(k->ctx);
  LLVMPositionBuilderAtEnd(k->b, LLVMAppendBasicBlockInContext(k->ctx, k->fn, "entry"));
  return 0;
}

void lb_kir_end(lb_kir *k) {
  if (k->b) LLVMDisposeBuilder(k->b);
  k->b = NULL;
}

LLVMValueRef lb_kir_i64(lb_kir *k, int64_t v) {
  return LLVMConstInt(k->i64, (unsigned long long)v, 1);
}

LLVMValueRef lb_kir_gep(lb_kir *k, LLVMValueRef base, LLVMValueRef idx) {
  return LLVMBuildInBoundsGEP2(k->b, k->f32, base, &idx, 1, "");
}

LLVMValueRef lb_kir_gepc(lb_kir *k, LLVMValueRef base, int64_t idx) {
  if (idx == 0) return base;
  return lb_kir_gep(k, base, lb_kir_i64(k, idx));
}

LLVMValueRef lb_kir_splat(lb_kir *k, LLVMValueRef scalar) {
  LLVMValueRef v = LLVMBuildInsertElement(k->b, LLVMGetPoison(k->vec), scalar,
                                          LLVMConstInt(k->i32, 0, 0), "");
  LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(k->i32, (unsigned)k->vw));
  return LLVMBuildShuffleVector(k->b, v, LLVMGetPoison(k->vec), zeros, "");
}

LLVMValueRef lb_kir_vconst(lb_kir *k, float v) {
  LLVMValueRef s[64];
  for (int i = 0; i < k->vw; i++) s[i] = LLVMConstReal(k->f32, v);
  return LLVMConstVector(s, (unsigned)k->vw);
}

/* Calls an intrinsic overloaded on the given types. */
static LLVMValueRef call_intr(lb_kir *k, const char *name, LLVMTypeRef *tys, unsigned n_tys,
                              LLVMValueRef *args, unsigned n_args) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LB_ASSERT(id != 0);
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(k->mod, id, tys, n_tys);
  LLVMTypeRef ft = LLVMIntrinsicGetType(k->ctx, id, tys, n_tys);
  return LLVMBuildCall2(k->b, ft, f, args, n_args, "");
}

static LLVMValueRef lane_mask(lb_kir *k, int lanes) {
  LLVMValueRef m[64];
  for (int i = 0; i < k->vw; i++) m[i] = LLVMConstInt(k->i1, i < lanes, 0);
  return LLVMConstVector(m, (unsigned)k->vw);
}

LLVMValueRef lb_kir_vload(lb_kir *k, LLVMValueRef p, int lanes) {
  if (lanes >= k->vw) {
    LLVMValueRef v = LLVMBuildLoad2(k->b, k->vec, p, "");
    LLVMSetAlignment(v, 4);
    return v;
  }
  LLVMTypeRef tys[2] = {k->vec, k->ptr};
  LLVMValueRef args[4] = {p, LLVMConstInt(k->i32, 4, 0), lane_mask(k, lanes),
                          LLVMConstNull(k->vec)};
  return call_intr(k, "llvm.masked.load", tys, 2, args, 4);
}

void lb_kir_vstore(lb_kir *k, LLVMValueRef v, LLVMValueRef p, int lanes) {
  if (lanes >= k->vw) {
    LLVMSetAlignment(LLVMBuildStore(k->b, v, p), 4);
    return;
  }
  LLVMTypeRef tys[2] = {k->vec, k->ptr};
  LLVMValueRef args[4] = {v, p, LLVMConstInt(k->i32, 4, 0), lane_mask(k, lanes)};
  call_intr(k, "llvm.masked.store", tys, 2, args, 4);
}

LLVMValueRef lb_kir_fma(lb_kir *k, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  LLVMTypeRef ty = LLVMTypeOf(c);
  LLVMValueRef args[3] = {a, b, c};
  return call_intr(k, "llvm.fmuladd", &ty, 1, args, 3);
}

static LLVMValueRef minmax(lb_kir *k, const char *name, LLVMValueRef v, float c) {
  LLVMTypeRef ty = LLVMTypeOf(v);
  LLVMValueRef cv = ty == k->f32 ? LLVMConstReal(k->f32, c) : lb_kir_vconst(k, c);
  LLVMValueRef args[2] = {v, cv};
  return call_intr(k, name, &ty, 1, args, 2);
}

LLVMValueRef lb_kir_act(lb_kir *k, LLVMValueRef v, lb_act act, float lo, float hi) {
  switch (act) {
  case LB_ACT_NONE: return v;
  case LB_ACT_RELU: return minmax(k, "llvm.maxnum", v, 0.0f);
  case LB_ACT_CLIP: return minmax(k, "llvm.minnum", minmax(k, "llvm.maxnum", v, lo), hi);
  }
  LB_ASSERT(!"unknown activation");
}

LLVMValueRef lb_kir_min64(lb_kir *k, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, a, b, ""), a, b, "");
}

void lb_kloop_begin(lb_kir *k, lb_kloop *l, LLVMValueRef start, LLVMValueRef end,
                    const LLVMValueRef *carry_init, int n_carry) {
  LB_ASSERT(n_carry <= 64);
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(k->b);
  l->head = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "head");
  l->body = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "body");
  l->exit = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "exit");
  l->n_carry = n_carry;
  LLVMBuildBr(k->b, l->head);
  LLVMPositionBuilderAtEnd(k->b, l->head);
  l->iv = LLVMBuildPhi(k->b, k->i64, "iv");
  LLVMAddIncoming(l->iv, &start, &pre, 1);
  for (int i = 0; i < n_carry; i++) {
    l->carry[i] = LLVMBuildPhi(k->b, LLVMTypeOf(carry_init[i]), "");
    LLVMValueRef v = carry_init[i];
    LLVMAddIncoming(l->carry[i], &v, &pre, 1);
  }
  LLVMValueRef c = LLVMBuildICmp(k->b, LLVMIntSLT, l->iv, end, "");
  LLVMBuildCondBr(k->b, c, l->body, l->exit);
  LLVMPositionBuilderAtEnd(k->b, l->body);
}

void lb_kloop_end(lb_kir *k, lb_kloop *l, LLVMValueRef step, const LLVMValueRef *carry_next) {
  LLVMBasicBlockRef from = LLVMGetInsertBlock(k->b);
  LLVMValueRef next = LLVMBuildNSWAdd(k->b, l->iv, step, "");
  LLVMAddIncoming(l->iv, &next, &from, 1);
  for (int i = 0; i < l->n_carry; i++) {
    LLVMValueRef v = carry_next[i];
    LLVMAddIncoming(l->carry[i], &v, &from, 1);
  }
  LLVMBuildBr(k->b, l->head);
  LLVMPositionBuilderAtEnd(k->b, l->exit);
}
