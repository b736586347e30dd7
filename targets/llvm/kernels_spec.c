/* Kernel config from a target spec. Kept apart from kernels_common.c so that users of the
 * emitters who build a config by hand (tests, bench_gemm) do not link the spec loader.
 * Invariant: the cfg borrows the spec's strings; the spec must outlive it. */
#include <string.h>

#include "kernels.h"

void lb_kern_cfg_from_spec(const lb_spec *s, lb_kern_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->vector_bits = lb_spec_vector_bits(s);
  cfg->vector_regs = lb_spec_vector_registers(s);
  for (int i = 0; i < 3; i++) cfg->cache[i] = lb_spec_cache_bytes(s, i + 1);
  cfg->cpu = lb_spec_llvm_cpu(s);
  cfg->features = lb_spec_llvm_features(s);
}
