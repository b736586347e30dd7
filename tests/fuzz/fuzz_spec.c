/* libFuzzer target for the spec loader: any bytes either load, or fail with one located line
 * (never a crash, leak or partial spec). A spec that loads must survive `lowbit spec show`:
 * its canonical YAML loads back with the same figures. `extends` by name resolves against the
 * bundled specs/ directory. Seeds: specs/, tests/specs/{good,bad,lib}/ (see tools/check). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

static void check_round_trip(const lb_spec *s) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return;
  lb_spec_write(s, f);
  fclose(f);
  lb_spec *t = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  if (lb_spec_load_buffer(text, len, "<show>", &t, &d) != 0) {
    fprintf(stderr, "show output does not load back: %s\n%s", d.msg, text);
    abort();
  }
  if (strcmp(lb_spec_name(s), lb_spec_name(t)) != 0 ||
      lb_spec_fp32_peak_macs(s) != lb_spec_fp32_peak_macs(t) ||
      lb_spec_int8_peak_macs(s) != lb_spec_int8_peak_macs(t) ||
      lb_spec_cache_bytes(s, 2) != lb_spec_cache_bytes(t, 2) ||
      strcmp(lb_spec_llvm_features(s), lb_spec_llvm_features(t)) != 0)
    abort();
  for (int k = 0; k < LB_SPEC_OPKIND_COUNT; k++) {
    const lb_spec_combo *a, *b;
    size_t n = lb_spec_combos(s, (lb_spec_opkind)k, &a);
    if (n != lb_spec_combos(t, (lb_spec_opkind)k, &b)) abort();
    for (size_t i = 0; i < n; i++)
      if (a[i].act != b[i].act || a[i].macs_per_cycle != b[i].macs_per_cycle ||
          a[i].efficiency != b[i].efficiency || a[i].requant != b[i].requant)
        abort();
  }
  lb_spec_free(t);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lb_spec *s = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_spec_load_buffer((const char *)data, size, "<fuzz>", &s, &d);
  if (rc == 0) {
    check_round_trip(s);
    lb_spec_free(s);
    return 0;
  }
  /* a failure is one non-empty line, and bad input is LB_ERR_INPUT */
  if (s || !d.set || !d.msg[0] || strchr(d.msg, '\n') || rc != LB_ERR_INPUT) {
    fprintf(stderr, "bad failure: rc %d, message '%s'\n", rc, d.msg);
    abort();
  }
  return 0;
}
