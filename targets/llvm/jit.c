/* In-process execution through ORC LLJIT: the graph is lowered into a module of the JIT's
 * thread-safe context with the spec's target machine (which the JIT then owns), optimised at
 * O3 and looked up by symbol. Host check: a spec runs here only if its triple's architecture
 * is this machine's and every "+feature" it asks for is one the host CPU reports.
 * Invariant: an lb_jit owns its LLJIT and context; lb_jit_free releases both, in that order. */
#include <string.h>

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>

#include "lower.h"

struct lb_jit {
  LLVMOrcThreadSafeContextRef tsc;
  LLVMOrcLLJITRef jit;
  lb_run_fn run;
  lb_step_fn step;
  size_t ws;
  lb_lowered info;
};

static size_t arch_len(const char *triple) {
  const char *d = strchr(triple, '-');
  return d ? (size_t)(d - triple) : strlen(triple);
}

/* Does the comma-separated LLVM feature list have "+name" (name of length n)? */
static int has_feature(const char *list, const char *name, size_t n) {
  for (const char *p = list; p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n + 1 && p[0] == '+' && !strncmp(p + 1, name, n)) return 1;
    p = e ? e + 1 : NULL;
  }
  return 0;
}

int lb_target_host_check(const lb_spec *spec, lb_diag *diag) {
  const char *st = lb_spec_llvm_triple(spec), *feat = lb_spec_llvm_features(spec);
  char *host = LLVMGetDefaultTargetTriple();
  char *hf = LLVMGetHostCPUFeatures();
  int rc = 0;
  size_t a = arch_len(st), b = arch_len(host);
  if (a != b || strncmp(st, host, a))
    rc = lb_diag_err(diag, LB_ERR_INPUT,
                     "spec %s targets %.*s but this machine is %.*s; use "
                     "'lowbit compile' for it (or --spec host)",
                     lb_spec_name(spec), (int)a, st, (int)b, host);
  for (const char *p = feat; !rc && p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > 1 && p[0] == '+' && !has_feature(hf, p + 1, len - 1))
      rc = lb_diag_err(diag, LB_ERR_INPUT,
                       "spec %s needs CPU feature '%.*s', which this machine "
                       "lacks; use --spec host",
                       lb_spec_name(spec), (int)(len - 1), p + 1);
    p = e ? e + 1 : NULL;
  }
  LLVMDisposeMessage(host);
  LLVMDisposeMessage(hf);
  return rc;
}

static int jit_error(lb_diag *diag, LLVMErrorRef err, const char *what) {
  char *m = LLVMGetErrorMessage(err);
  lb_diag_err(diag, LB_ERR_INTERNAL, "JIT %s: %s", what, m);
  LLVMDisposeErrorMessage(m);
  return LB_ERR_INTERNAL;
}

/* Creates the LLJIT on the lowering's target machine (consumed) and adds the module (consumed). */
static int make_jit(lb_jit *j, lb_lw *L, lb_diag *diag) {
  LLVMOrcJITTargetMachineBuilderRef jtmb =
      LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(L->tm);
  L->tm = NULL; /* ownership passed to jtmb */
  LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, jtmb); /* consumes jtmb */
  LLVMErrorRef err = LLVMOrcCreateLLJIT(&j->jit, jb);      /* consumes jb */
  if (err) return jit_error(diag, err, "creation");
  LLVMOrcJITDylibRef main = LLVMOrcLLJITGetMainJITDylib(j->jit);
  LLVMOrcDefinitionGeneratorRef gen; /* resolves libm (expf, tanhf) from this process */
  err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
      &gen, LLVMOrcLLJITGetGlobalPrefix(j->jit), NULL, NULL);
  if (err) return jit_error(diag, err, "process symbols");
  LLVMOrcJITDylibAddGenerator(main, gen); /* main owns gen */
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(L->mod, j->tsc);
  L->mod = NULL;                                        /* ownership passed to tsm */
  err = LLVMOrcLLJITAddLLVMIRModule(j->jit, main, tsm); /* consumes tsm */
  if (err) return jit_error(diag, err, "adding the module");
  return 0;
}

static int lookup(lb_jit *j, const char *prefix, const char *sym, uint64_t *addr, lb_diag *diag) {
  char name[300];
  snprintf(name, sizeof name, "%s_%s", prefix, sym);
  LLVMOrcExecutorAddress a = 0;
  LLVMErrorRef err = LLVMOrcLLJITLookup(j->jit, &a, name);
  if (err) return jit_error(diag, err, "lookup");
  *addr = a;
  return 0;
}

static int compile_into(lb_jit *j, const lb_graph *g, const lb_spec *spec, const lb_codegen_opts *o,
                        lb_diag *diag) {
  lb_lw L;
  LB_TRY(lb_lw_init(&L, LLVMOrcThreadSafeContextGetContext(j->tsc), spec, "lowbit_jit", diag));
  int rc = lb_lower_graph(&L, g, o, &j->info);
  if (!rc) rc = lb_lw_optimize(&L);
  if (!rc) rc = make_jit(j, &L, diag);
  lb_lw_dispose(&L);
  uint64_t a_run = 0, a_ws = 0, a_step = 0;
  if (!rc) rc = lookup(j, o->name, "run", &a_run, diag);
  if (!rc) rc = lookup(j, o->name, "workspace_size", &a_ws, diag);
  if (!rc && o->profile) rc = lookup(j, o->name, "step", &a_step, diag);
  if (rc) return rc;
  /* Converting an executor address to a function pointer is what a JIT is for. */
  j->run = (lb_run_fn)(uintptr_t)a_run;
  j->step = (lb_step_fn)(uintptr_t)a_step;
  j->ws = ((int64_t(*)(void))(uintptr_t)a_ws)();
  return 0;
}

int lb_jit_compile(const lb_graph *g, const lb_spec *spec, const lb_codegen_opts *opts,
                   lb_jit **out, lb_diag *diag) {
  *out = NULL;
  LB_TRY(lb_target_host_check(spec, diag));
  lb_jit *j = lb_calloc(1, sizeof *j);
  if (!j) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  j->tsc = LLVMOrcCreateNewThreadSafeContext();
  lb_codegen_opts o = {.name = opts && opts->name ? opts->name : "model",
                       .profile = opts && opts->profile};
  int rc = compile_into(j, g, spec, &o, diag);
  if (rc) {
    lb_jit_free(j);
    return rc;
  }
  *out = j;
  return 0;
}

void lb_jit_free(lb_jit *j) {
  if (!j) return;
  if (j->jit) {
    LLVMErrorRef err = LLVMOrcDisposeLLJIT(j->jit);
    if (err) LLVMConsumeError(err);
  }
  if (j->tsc) LLVMOrcDisposeThreadSafeContext(j->tsc);
  lb_lowered_free(&j->info);
  lb_free(j);
}

size_t lb_jit_workspace_size(const lb_jit *j) { return j->ws; }
lb_run_fn lb_jit_run_fn(const lb_jit *j) { return j->run; }
lb_step_fn lb_jit_step_fn(const lb_jit *j) { return j->step; }
int lb_jit_step_count(const lb_jit *j) { return j->step ? j->info.n_steps : 0; }

const char *lb_jit_step_name(const lb_jit *j, int step) {
  return step >= 0 && step < j->info.n_steps ? j->info.names[step] : NULL;
}

double lb_jit_step_flops(const lb_jit *j, int step) {
  return step >= 0 && step < j->info.n_steps ? j->info.flops[step] : 0;
}

int lb_jit_run_tensors(const lb_jit *j, const lb_graph *g, const lb_tensor *in, lb_tensor *out,
                       lb_diag *diag) {
  const void **ip = lb_calloc(g->n_inputs + 1, sizeof *ip);
  void **op = lb_calloc(g->n_outputs + 1, sizeof *op);
  char *ws = lb_malloc(j->ws + 64);
  int rc = (!ip || !op || !ws) ? lb_diag_err(diag, LB_ERR_NOMEM, "out of memory") : 0;
  for (uint32_t i = 0; !rc && i < g->n_inputs; i++) {
    const lb_value *v = &g->values[g->inputs[i]];
    if (in[i].dtype != v->dtype || lb_tensor_numel(&in[i]) != lb_value_numel(v))
      rc = lb_diag_err(diag, LB_ERR_INPUT, "input %u (%s): expected %s with %lld elements", i,
                       v->name, lb_dtype_name(v->dtype), (long long)lb_value_numel(v));
    ip[i] = in[i].data;
  }
  for (uint32_t i = 0; !rc && i < g->n_outputs; i++) {
    const lb_value *v = &g->values[g->outputs[i]];
    out[i].dtype = v->dtype, out[i].rank = v->rank;
    memcpy(out[i].dims, v->dims, sizeof out[i].dims);
    out[i].data = op[i] = lb_malloc(lb_dtype_bytes(v->dtype, lb_value_numel(v)) + 1);
    if (!op[i]) rc = lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  }
  if (!rc)
    rc = j->run(ip, op, ws + (64 - (uintptr_t)ws % 64) % 64)
             ? lb_diag_err(diag, LB_ERR_INTERNAL, "generated run failed")
             : 0;
  for (uint32_t i = 0; rc && op && i < g->n_outputs; i++) lb_free(op[i]), out[i].data = NULL;
  lb_free(ip), lb_free(op), lb_free(ws);
  return rc;
}
