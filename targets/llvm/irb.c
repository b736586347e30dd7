/* IR-building helpers shared by every lowering: types per dtype, constants and splats, typed
 * loads/stores, intrinsic calls by name, counted loops and if-blocks on i64, internal step
 * functions, constant blobs, and strided views. Invariant: helpers leave the builder at the
 * point where straight-line code continues (after a loop: its exit block). */
#include <string.h>

#include "lower.h"

LLVMTypeRef lb_lw_type(lb_lw *L, lb_dtype dt) {
  switch (dt) {
  case LB_DTYPE_F32: return L->t_f32;
  case LB_DTYPE_F64: return L->t_f64;
  case LB_DTYPE_I64: return L->t_i64;
  case LB_DTYPE_I32: return L->t_i32;
  case LB_DTYPE_I16: return LLVMInt16TypeInContext(L->ctx);
  case LB_DTYPE_I8:
  case LB_DTYPE_U8:
  case LB_DTYPE_BOOL: return L->t_i8;
  default: return NULL; /* sub-byte dtypes are not addressable per element */
  }
}

LLVMValueRef lb_c64(lb_lw *L, int64_t v) { return LLVMConstInt(L->t_i64, (uint64_t)v, 1); }
LLVMValueRef lb_c32(lb_lw *L, int32_t v) { return LLVMConstInt(L->t_i32, (uint64_t)v, 1); }

LLVMValueRef lb_cf(lb_lw *L, LLVMTypeRef ty, double v) {
  if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind) return LLVMConstReal(ty, v);
  unsigned n = LLVMGetVectorSize(ty);
  LLVMValueRef e[64];
  LB_ASSERT(n <= 64);
  for (unsigned i = 0; i < n; i++) e[i] = LLVMConstReal(LLVMGetElementType(ty), v);
  return LLVMConstVector(e, n);
}

LLVMValueRef lb_ci(lb_lw *L, LLVMTypeRef ty, int64_t v) {
  (void)L;
  if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind) return LLVMConstInt(ty, (uint64_t)v, 1);
  unsigned n = LLVMGetVectorSize(ty);
  LLVMValueRef e[64];
  LB_ASSERT(n <= 64);
  for (unsigned i = 0; i < n; i++) e[i] = LLVMConstInt(LLVMGetElementType(ty), (uint64_t)v, 1);
  return LLVMConstVector(e, n);
}

LLVMValueRef lb_splat(lb_lw *L, LLVMValueRef scalar, int lanes) {
  if (lanes == 1) return scalar;
  LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(scalar), (unsigned)lanes);
  LLVMValueRef v = LLVMBuildInsertElement(L->b, LLVMGetUndef(vt), scalar, lb_c32(L, 0), "");
  LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(L->t_i32, (unsigned)lanes));
  return LLVMBuildShuffleVector(L->b, v, LLVMGetUndef(vt), zeros, "");
}

LLVMValueRef lb_gep(lb_lw *L, LLVMTypeRef ty, LLVMValueRef base, LLVMValueRef idx) {
  return LLVMBuildInBoundsGEP2(L->b, ty, base, &idx, 1, "");
}

LLVMValueRef lb_load(lb_lw *L, LLVMTypeRef ty, LLVMValueRef ptr, unsigned align) {
  LLVMValueRef v = LLVMBuildLoad2(L->b, ty, ptr, "");
  LLVMSetAlignment(v, align);
  return v;
}

void lb_store(lb_lw *L, LLVMValueRef v, LLVMValueRef ptr, unsigned align) {
  LLVMValueRef s = LLVMBuildStore(L->b, v, ptr);
  LLVMSetAlignment(s, align);
}

LLVMValueRef lb_intr(lb_lw *L, const char *name, LLVMTypeRef ty, LLVMValueRef *args, int n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LB_ASSERT(id != 0);
  LLVMTypeRef tys[1] = {ty};
  size_t nt = ty ? 1 : 0;
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(L->mod, id, tys, nt);
  LLVMTypeRef fty = LLVMIntrinsicGetType(L->ctx, id, tys, nt);
  return LLVMBuildCall2(L->b, fty, fn, args, (unsigned)n, "");
}

/* maxnum/minnum: NaN-ignoring like fmaxf; lower to one maxps/fmaxnm. */
LLVMValueRef lb_fmax(lb_lw *L, LLVMValueRef a, LLVMValueRef b) {
  LLVMValueRef x[2] = {a, b};
  return lb_intr(L, "llvm.maxnum", LLVMTypeOf(a), x, 2);
}

LLVMValueRef lb_fmin(lb_lw *L, LLVMValueRef a, LLVMValueRef b) {
  LLVMValueRef x[2] = {a, b};
  return lb_intr(L, "llvm.minnum", LLVMTypeOf(a), x, 2);
}

LLVMValueRef lb_act_apply(lb_lw *L, lb_act act, float lo, float hi, LLVMValueRef x) {
  LLVMTypeRef ty = LLVMTypeOf(x);
  switch (act) {
  case LB_ACT_NONE: return x;
  case LB_ACT_RELU: return lb_fmax(L, x, lb_cf(L, ty, 0.0));
  case LB_ACT_CLIP: return lb_fmin(L, lb_fmax(L, x, lb_cf(L, ty, lo)), lb_cf(L, ty, hi));
  }
  return x;
}

void lb_loop_begin(lb_lw *L, lb_loop *lp, LLVMValueRef lo, LLVMValueRef hi, int64_t step) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(L->b);
  lp->header = LLVMAppendBasicBlockInContext(L->ctx, L->fn, "loop");
  lp->body = LLVMAppendBasicBlockInContext(L->ctx, L->fn, "body");
  lp->exit = LLVMAppendBasicBlockInContext(L->ctx, L->fn, "done");
  lp->step = lb_c64(L, step);
  LLVMBuildBr(L->b, lp->header);
  LLVMPositionBuilderAtEnd(L->b, lp->header);
  lp->iv = LLVMBuildPhi(L->b, L->t_i64, "i");
  LLVMAddIncoming(lp->iv, &lo, &pre, 1);
  /* "iv + step <= hi" keeps vector loops from running past the end; step 1 is "iv < hi". */
  LLVMValueRef last = LLVMBuildAdd(L->b, lp->iv, lb_c64(L, step - 1), "");
  LLVMValueRef c = LLVMBuildICmp(L->b, LLVMIntSLT, last, hi, "");
  LLVMBuildCondBr(L->b, c, lp->body, lp->exit);
  LLVMPositionBuilderAtEnd(L->b, lp->body);
}

void lb_loop_end(lb_lw *L, lb_loop *lp) {
  LLVMValueRef next = LLVMBuildNSWAdd(L->b, lp->iv, lp->step, "");
  LLVMBasicBlockRef from = LLVMGetInsertBlock(L->b);
  LLVMBuildBr(L->b, lp->header);
  LLVMAddIncoming(lp->iv, &next, &from, 1);
  LLVMPositionBuilderAtEnd(L->b, lp->exit);
}

LLVMBasicBlockRef lb_if_begin(lb_lw *L, LLVMValueRef cond) {
  LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(L->ctx, L->fn, "then");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(L->ctx, L->fn, "join");
  LLVMBuildCondBr(L->b, cond, then, join);
  LLVMPositionBuilderAtEnd(L->b, then);
  return join;
}

void lb_if_end(lb_lw *L, LLVMBasicBlockRef join) {
  LLVMBuildBr(L->b, join);
  LLVMPositionBuilderAtEnd(L->b, join);
}

LLVMValueRef lb_fn_begin(lb_lw *L, const char *name, int n_ptr_args) {
  LLVMTypeRef params[64];
  LB_ASSERT(n_ptr_args <= 64);
  for (int i = 0; i < n_ptr_args; i++) params[i] = L->t_ptr;
  LLVMTypeRef fty = LLVMFunctionType(L->t_void, params, (unsigned)n_ptr_args, 0);
  LLVMValueRef fn = LLVMAddFunction(L->mod, name, fty);
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(L->ctx, nounwind, 0));
  const char *cpu = lb_spec_llvm_cpu(L->spec), *feat = lb_spec_llvm_features(L->spec);
  if (cpu && *cpu) LLVMAddTargetDependentFunctionAttr(fn, "target-cpu", cpu);
  if (feat && *feat) LLVMAddTargetDependentFunctionAttr(fn, "target-features", feat);
  L->fn = fn;
  LLVMPositionBuilderAtEnd(L->b, LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  return fn;
}

LLVMValueRef lb_const_blob(lb_lw *L, const void *data, size_t len, const char *what) {
  LLVMValueRef init = LLVMConstStringInContext2(L->ctx, data, len, 1);
  char name[96];
  snprintf(name, sizeof name, "lb_const_%d_%s", L->n_globals++, what);
  LLVMValueRef gv = LLVMAddGlobal(L->mod, LLVMTypeOf(init), name);
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
  LLVMSetAlignment(gv, 64);
  return gv;
}

/* ---- views -------------------------------------------------------------------------------- */

void lb_view_strides(lb_view *v, const int *perm) {
  int64_t s = 1;
  for (int p = v->rank - 1; p >= 0; p--) {
    int d = perm ? perm[p] : p;
    v->st[d] = s;
    s *= v->dims[d];
  }
}

lb_view lb_view_broadcast(const lb_view *in, int rank, const int64_t *dims) {
  lb_view o = *in;
  o.rank = rank;
  for (int d = 0; d < rank; d++) {
    int k = d - (rank - in->rank);
    o.dims[d] = dims[d];
    o.st[d] = (k < 0 || in->dims[k] == 1) ? 0 : in->st[k];
  }
  return o;
}

int64_t lb_view_numel(const lb_view *v) {
  int64_t n = 1;
  for (int d = 0; d < v->rank; d++) n *= v->dims[d];
  return n;
}

/* A stack slot in the entry block (so mem2reg promotes it), initialised at the current point. */
LLVMValueRef lb_alloca(lb_lw *L, LLVMTypeRef ty, LLVMValueRef init) {
  LLVMBuilderRef eb = LLVMCreateBuilderInContext(L->ctx);
  LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(L->fn);
  LLVMValueRef first = LLVMGetFirstInstruction(entry);
  if (first)
    LLVMPositionBuilderBefore(eb, first);
  else
    LLVMPositionBuilderAtEnd(eb, entry);
  LLVMValueRef slot = LLVMBuildAlloca(eb, ty, "");
  LLVMDisposeBuilder(eb);
  if (init) LLVMBuildStore(L->b, init, slot);
  return slot;
}
