/* A minimal host JIT for the kernel tests and bench_gemm: one LLJIT, one module, O3 with a
 * host target machine. Invariant: every LLVM object created here is disposed in lb_kjit_free
 * or handed to LLVM at a marked point (module -> thread-safe module -> JIT). */
#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <string.h>

#include "kernels.h"

struct lb_kjit {
  LLVMOrcThreadSafeContextRef tsc;
  LLVMOrcLLJITRef jit;
  LLVMModuleRef mod; /* owned until lb_kjit_finish hands it to the JIT */
  char *features;    /* host features (LLVMDisposeMessage) */
};

static int take_error(LLVMErrorRef e, lb_diag *diag, const char *what) {
  if (!e) return LB_OK;
  char *m = LLVMGetErrorMessage(e);
  lb_diag_err(diag, LB_ERR_INTERNAL, "kernel jit: %s: %s", what, m);
  LLVMDisposeErrorMessage(m);
  return LB_ERR_INTERNAL;
}

void lb_kjit_host_cfg(lb_kern_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);
  char *f = LLVMGetHostCPUFeatures();
  int avx2 = strstr(f, "+avx2") != NULL, avx512 = strstr(f, "+avx512f") != NULL;
  int x86 = strstr(f, "+sse2") != NULL; /* SSE-only x86 has 16 xmm registers, AArch64 32 */
  LLVMDisposeMessage(f);
  cfg->vector_bits = avx512 ? 512 : avx2 ? 256 : 128;
  cfg->vector_regs = avx512 ? 32 : x86 ? 16 : 32;
}

int lb_kjit_new(lb_kjit **out, LLVMModuleRef *mod, lb_diag *diag) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  lb_kjit *j = lb_calloc(1, sizeof *j);
  if (!j) return lb_diag_err(diag, LB_ERR_NOMEM, "kernel jit: out of memory");
  j->tsc = LLVMOrcCreateNewThreadSafeContext();
  int rc = take_error(LLVMOrcCreateLLJIT(&j->jit, NULL), diag, "create");
  if (rc) {
    j->jit = NULL;
    lb_kjit_free(j);
    return rc;
  }
  j->features = LLVMGetHostCPUFeatures();
  j->mod = LLVMModuleCreateWithNameInContext("kernels", LLVMOrcThreadSafeContextGetContext(j->tsc));
  LLVMSetTarget(j->mod, LLVMOrcLLJITGetTripleString(j->jit));
  LLVMSetDataLayout(j->mod, LLVMOrcLLJITGetDataLayoutStr(j->jit));
  *out = j;
  *mod = j->mod;
  return LB_OK;
}

/* default<O3> with a host target machine, so the cost model sees the real vector width. */
static int optimize(lb_kjit *j, lb_diag *diag) {
  const char *triple = LLVMOrcLLJITGetTripleString(j->jit);
  LLVMTargetRef t;
  char *err = NULL;
  if (LLVMGetTargetFromTriple(triple, &t, &err)) {
    lb_diag_err(diag, LB_ERR_INTERNAL, "kernel jit: target %s: %s", triple, err);
    LLVMDisposeMessage(err);
    return LB_ERR_INTERNAL;
  }
  char *cpu = LLVMGetHostCPUName();
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(t, triple, cpu, j->features,
                                                    LLVMCodeGenLevelAggressive, LLVMRelocDefault,
                                                    LLVMCodeModelJITDefault);
  LLVMDisposeMessage(cpu);
  LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
  int rc = take_error(LLVMRunPasses(j->mod, "default<O3>", tm, opts), diag, "passes");
  LLVMDisposePassBuilderOptions(opts);
  LLVMDisposeTargetMachine(tm);
  return rc;
}

int lb_kjit_finish(lb_kjit *j, const char *const *syms, void **addrs, int n, lb_diag *diag) {
  char *msg = NULL;
  if (LLVMVerifyModule(j->mod, LLVMReturnStatusAction, &msg)) {
    lb_diag_err(diag, LB_ERR_INTERNAL, "kernel jit: invalid module: %.900s", msg);
    LLVMDisposeMessage(msg);
    return LB_ERR_INTERNAL;
  }
  LLVMDisposeMessage(msg);
  LB_TRY(optimize(j, diag));
  /* Ownership: the module goes to the thread-safe module, which goes to the JIT. */
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(j->mod, j->tsc);
  j->mod = NULL;
  LB_TRY(take_error(LLVMOrcLLJITAddLLVMIRModule(j->jit, LLVMOrcLLJITGetMainJITDylib(j->jit), tsm),
                    diag, "add module"));
  for (int i = 0; i < n; i++) {
    LLVMOrcExecutorAddress a = 0;
    LB_TRY(take_error(LLVMOrcLLJITLookup(j->jit, &a, syms[i]), diag, syms[i]));
    addrs[i] = (void *)(uintptr_t)a;
  }
  return LB_OK;
}

void lb_kjit_free(lb_kjit *j) {
  if (!j) return;
  if (j->mod) LLVMDisposeModule(j->mod);
  if (j->jit) LLVMConsumeError(LLVMOrcDisposeLLJIT(j->jit));
  if (j->tsc) LLVMOrcDisposeThreadSafeContext(j->tsc);
  if (j->features) LLVMDisposeMessage(j->features);
  lb_free(j);
}
