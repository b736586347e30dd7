/* Ahead-of-time checks shared by the unit tests: emit a graph as an object for a spec, link it
 * with tests/aot/harness.c (gcc, or the AArch64 cross compiler), run the program (natively or
 * under qemu) on input files and read its outputs back. The caller compares them with the
 * interpreter. Scratch files live in a fresh /tmp directory that is removed afterwards. Also
 * load_spec, which every test that compiles for a spec needs. */
#ifndef LB_TESTS_AOT_H
#define LB_TESTS_AOT_H
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "spec.h"
#include "target.h"
#include "tensor_io.h"

/* x86-64 natively; AArch64 under qemu: cortex-a72 for plain NEON, max for dotprod/i8mm. */
typedef struct lb_test_aot_target {
  const char *spec, *cc, *runner;
} lb_test_aot_target;
#define LB_TEST_AOT_X86 {"x86-64-avx2", "gcc", ""}
#define LB_TEST_AOT_NEON {"aarch64-neon", "aarch64-linux-gnu-gcc -static", "qemu-aarch64 -cpu cortex-a72"}
#define LB_TEST_AOT_DOTPROD {"aarch64-dotprod", "aarch64-linux-gnu-gcc -static", "qemu-aarch64 -cpu max"}
#define LB_TEST_AOT_I8MM {"aarch64-i8mm", "aarch64-linux-gnu-gcc -static", "qemu-aarch64 -cpu max"}

/* A bundled spec (or file) by name; the test fails if it does not load. */
static inline lb_spec *load_spec(const char *name) {
  lb_diag d;
  lb_diag_clear(&d);
  lb_spec *s = NULL;
  ck_assert_msg(lb_spec_load(name, &s, &d) == 0, "spec %s: %s", name, d.msg);
  return s;
}

static inline int lb_test_shell(const char *cmd) {
  int rc = system(cmd);
  if (rc != 0) fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
  return rc;
}

/* Runs g compiled for spec on in[] (one per graph input) and reads every graph output into
 * got[] (lb_free each .data). check_obj (may be NULL) sees the object file before it is linked. */
static inline void lb_test_aot_run_checked(const lb_graph *g, const lb_spec *spec,
                                           const lb_test_aot_target *t, const lb_tensor *in,
                                           lb_tensor *got, const char *what,
                                           void (*check_obj)(const char *obj)) {
  char tmpl[] = "/tmp/lb_aot_XXXXXX", obj[600], hdr[600], path[600], cmd[8192];
  char *tmp = mkdtemp(tmpl);
  ck_assert_ptr_nonnull(tmp);
  lb_diag d;
  lb_diag_clear(&d);
  snprintf(obj, sizeof obj, "%s/m.o", tmp);
  snprintf(hdr, sizeof hdr, "%s/m.h", tmp);
  lb_codegen_opts o = {.name = "m"};
  ck_assert_msg(lb_target_emit(g, spec, &o, LB_EMIT_OBJ, obj, hdr, &d) == 0, "%s: %s", what, d.msg);
  if (check_obj) check_obj(obj);
  snprintf(cmd, sizeof cmd,
           "%s -O1 -std=c11 -I%s -DLB_HEADER='\"m.h\"' -DLB_PREFIX=m %s/tests/aot/harness.c %s "
           "-lm -o %s/h",
           t->cc, tmp, LB_SOURCE_DIR, obj, tmp);
  ck_assert_int_eq(lb_test_shell(cmd), 0);
  int n = snprintf(cmd, sizeof cmd, "%s %s/h", t->runner, tmp);
  for (uint32_t i = 0; i < g->n_inputs; i++) {
    snprintf(path, sizeof path, "%s/in%u.bin", tmp, i);
    ck_assert_msg(lb_bin_write(path, &in[i], &d) == 0, "%s", d.msg);
    n += snprintf(cmd + n, sizeof cmd - (size_t)n, " %s", path);
  }
  for (uint32_t i = 0; i < g->n_outputs; i++)
    n += snprintf(cmd + n, sizeof cmd - (size_t)n, " %s/out%u.bin", tmp, i);
  ck_assert_msg(lb_test_shell(cmd) == 0, "%s on %s", what, t->spec);
  for (uint32_t i = 0; i < g->n_outputs; i++) {
    const lb_value *v = &g->values[g->outputs[i]];
    snprintf(path, sizeof path, "%s/out%u.bin", tmp, i);
    ck_assert_msg(lb_bin_read(path, v->dtype, v->rank, v->dims, &got[i], &d) == 0, "%s", d.msg);
  }
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  lb_test_shell(cmd);
}

static inline void lb_test_aot_run(const lb_graph *g, const lb_spec *spec,
                                   const lb_test_aot_target *t, const lb_tensor *in,
                                   lb_tensor *got, const char *what) {
  lb_test_aot_run_checked(g, spec, t, in, got, what, NULL);
}
#endif
