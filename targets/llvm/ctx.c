/* The lowering context: creation and disposal of every LLVM object one compilation owns
 * (context, module, builder, target machine), the O3 pipeline with verification around it,
 * and atomic output (temporary file in the destination folder, then rename). Invariant: each
 * LLVMCreate* here has its Dispose in lb_lw_dispose or on the error path right after it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "lower.h"

static void init_targets(void) {
  static int done;
  if (done) return;
  LLVMInitializeAllTargetInfos();
  LLVMInitializeAllTargets();
  LLVMInitializeAllTargetMCs();
  LLVMInitializeAllAsmPrinters();
  LLVMInitializeAllAsmParsers();
  done = 1;
}

static int make_tm(lb_lw *L) {
  const char *triple = lb_spec_llvm_triple(L->spec);
  LLVMTargetRef t;
  char *err = NULL;
  if (LLVMGetTargetFromTriple(triple, &t, &err)) {
    lb_diag_err(L->diag, LB_ERR_INPUT, "spec %s: LLVM triple '%s': %s", lb_spec_name(L->spec),
                triple, err ? err : "unknown target");
    LLVMDisposeMessage(err);
    return LB_ERR_INPUT;
  }
  LLVMDisposeMessage(err);
  LLVMTargetMachineOptionsRef o = LLVMCreateTargetMachineOptions();
  LLVMTargetMachineOptionsSetCPU(o, lb_spec_llvm_cpu(L->spec));
  LLVMTargetMachineOptionsSetFeatures(o, lb_spec_llvm_features(L->spec));
  LLVMTargetMachineOptionsSetCodeGenOptLevel(o, LLVMCodeGenLevelAggressive);
  LLVMTargetMachineOptionsSetRelocMode(o, LLVMRelocPIC);
  L->tm = LLVMCreateTargetMachineWithOptions(t, triple, o);
  LLVMDisposeTargetMachineOptions(o);
  if (!L->tm)
    return lb_diag_err(L->diag, LB_ERR_INPUT, "spec %s: LLVM cannot create a machine for %s",
                       lb_spec_name(L->spec), triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(L->tm);
  char *dl = LLVMCopyStringRepOfTargetData(td);
  LLVMSetDataLayout(L->mod, dl);
  LLVMDisposeMessage(dl);
  LLVMDisposeTargetData(td);
  LLVMSetTarget(L->mod, triple);
  return 0;
}

static void init_types(lb_lw *L) {
  L->t_f32 = LLVMFloatTypeInContext(L->ctx);
  L->t_f64 = LLVMDoubleTypeInContext(L->ctx);
  L->t_i64 = LLVMInt64TypeInContext(L->ctx);
  L->t_i32 = LLVMInt32TypeInContext(L->ctx);
  L->t_i8 = LLVMInt8TypeInContext(L->ctx);
  L->t_i1 = LLVMInt1TypeInContext(L->ctx);
  L->t_ptr = LLVMPointerTypeInContext(L->ctx, 0);
  L->t_void = LLVMVoidTypeInContext(L->ctx);
}

int lb_lw_init(lb_lw *L, LLVMContextRef ctx, const lb_spec *spec, const char *module_name,
               lb_diag *diag) {
  memset(L, 0, sizeof *L);
  init_targets();
  L->spec = spec;
  L->diag = diag;
  lb_kern_cfg_from_spec(spec, &L->kcfg);
  int rc = lb_kern_cfg_check(&L->kcfg, diag);
  if (rc) return rc;
  L->vw = L->kcfg.vector_bits / 32;
  if (L->vw < 1) L->vw = 1;
  L->own_ctx = ctx == NULL;
  L->ctx = ctx ? ctx : LLVMContextCreate();
  L->mod = LLVMModuleCreateWithNameInContext(module_name, L->ctx);
  L->b = LLVMCreateBuilderInContext(L->ctx);
  init_types(L);
  rc = make_tm(L);
  if (rc) lb_lw_dispose(L);
  return rc;
}

void lb_lw_dispose(lb_lw *L) {
  if (L->b) LLVMDisposeBuilder(L->b);
  if (L->mod) LLVMDisposeModule(L->mod);
  if (L->tm) LLVMDisposeTargetMachine(L->tm);
  if (L->own_ctx && L->ctx) LLVMContextDispose(L->ctx);
  memset(L, 0, sizeof *L);
}

static int verify(lb_lw *L, const char *when) {
  char *msg = NULL;
  if (LLVMVerifyModule(L->mod, LLVMReturnStatusAction, &msg)) {
    char *nl = msg ? strchr(msg, '\n') : NULL;
    if (nl) *nl = 0;
    lb_diag_err(L->diag, LB_ERR_INTERNAL, "LLVM module invalid %s: %s", when,
                msg ? msg : "(no message)");
    LLVMDisposeMessage(msg);
    return LB_ERR_INTERNAL;
  }
  LLVMDisposeMessage(msg);
  return 0;
}

int lb_lw_optimize(lb_lw *L) {
  LB_TRY(verify(L, "before optimisation"));
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
  LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
  LLVMPassBuilderOptionsSetLoopUnrolling(po, 1);
  LLVMErrorRef err = LLVMRunPasses(L->mod, "default<O3>", L->tm, po);
  LLVMDisposePassBuilderOptions(po);
  if (err) {
    char *m = LLVMGetErrorMessage(err);
    lb_diag_err(L->diag, LB_ERR_INTERNAL, "LLVM pass pipeline: %s", m);
    LLVMDisposeErrorMessage(m);
    return LB_ERR_INTERNAL;
  }
  return verify(L, "after optimisation");
}

int lb_write_file_atomic(const char *path, const void *data, size_t len, lb_diag *diag) {
  size_t n = strlen(path) + 32;
  char *tmp = lb_malloc(n);
  if (!tmp) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  snprintf(tmp, n, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    lb_free(tmp);
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: cannot create: %s", path, strerror(e));
  }
  mode_t um = umask(0);
  umask(um);
  fchmod(fd, 0666 & ~um); /* mkstemp makes 0600; outputs get the usual permissions */
  FILE *f = fdopen(fd, "wb");
  int ok = f && fwrite(data, 1, len, f) == len;
  if (f)
    ok = (fclose(f) == 0) && ok;
  else
    close(fd);
  if (ok && rename(tmp, path) == 0) {
    lb_free(tmp);
    return 0;
  }
  int e = errno;
  unlink(tmp);
  lb_free(tmp);
  return lb_diag_err(diag, LB_ERR_INPUT, "%s: cannot write: %s", path, strerror(e));
}

int lb_lw_write(lb_lw *L, lb_emit_kind kind, const char *path) {
  if (kind == LB_EMIT_LLVM) {
    char *text = LLVMPrintModuleToString(L->mod);
    int rc = lb_write_file_atomic(path, text, strlen(text), L->diag);
    LLVMDisposeMessage(text);
    return rc;
  }
  char *err = NULL;
  LLVMMemoryBufferRef buf = NULL;
  LLVMCodeGenFileType ft = kind == LB_EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile;
  if (LLVMTargetMachineEmitToMemoryBuffer(L->tm, L->mod, ft, &err, &buf)) {
    lb_diag_err(L->diag, LB_ERR_INTERNAL, "LLVM code generation: %s", err ? err : "failed");
    LLVMDisposeMessage(err);
    return LB_ERR_INTERNAL;
  }
  LLVMDisposeMessage(err);
  int rc = lb_write_file_atomic(path, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf), L->diag);
  LLVMDisposeMemoryBuffer(buf);
  return rc;
}
