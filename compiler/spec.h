/* Target specs: a YAML file per target says what the hardware supports (op x dtype x
 * granularity), its LLVM triple/cpu/features, ISA facts and costs. Validated on load with
 * FILE:LINE:COL errors. The compiler takes every target decision from here; no C code
 * branches on a target's name. (The spec-loader owner extends this header.) */
#ifndef LB_SPEC_H
#define LB_SPEC_H

#include "ir.h"

typedef struct lb_spec lb_spec;

/* Loads a spec by bundled name ("x86-64-avx2"), by file path, or "host" (detects this CPU and
 * passes its real feature string to LLVM). */
int lb_spec_load(const char *name_or_path, lb_spec **out, lb_diag *diag);
void lb_spec_free(lb_spec *s);

/* What codegen needs. Strings are owned by the spec. */
const char *lb_spec_name(const lb_spec *s);
const char *lb_spec_llvm_triple(const lb_spec *s);
const char *lb_spec_llvm_cpu(const lb_spec *s);
const char *lb_spec_llvm_features(const lb_spec *s);
int lb_spec_vector_bits(const lb_spec *s);       /* e.g. 256 for AVX2, 128 for NEON */
int lb_spec_vector_registers(const lb_spec *s);  /* e.g. 16 for AVX2, 32 for AArch64 */
int64_t lb_spec_cache_bytes(const lb_spec *s, int level); /* level 1..3; 0 if absent */
double lb_spec_fp32_peak_macs(const lb_spec *s); /* fp32 MACs per cycle per core */
double lb_spec_clock_ghz(const lb_spec *s);      /* nominal clock, for peak fractions */

#endif
