/* AOT test harness: links with an object from `lowbit compile` and its header, runs the model
 * once and writes the outputs. Built by tests/unit/test_codegen.c with gcc (x86-64) or
 * aarch64-linux-gnu-gcc (run under qemu) as
 *   CC -DLB_HEADER='"m.h"' -DLB_PREFIX=m harness.c m.o -lm
 * Usage: harness IN0.bin ... OUT0.bin ... (raw bytes, sizes from the header's macros). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include LB_HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define SYM(s) CAT(LB_PREFIX, s)

/* Byte sizes of the first few tensors; the harness refuses models with more. */
static const size_t in_bytes[] = {
#if SYM(_NUM_INPUTS) > 0
    SYM(_INPUT0_BYTES),
#endif
#if SYM(_NUM_INPUTS) > 1
    SYM(_INPUT1_BYTES),
#endif
#if SYM(_NUM_INPUTS) > 2
    SYM(_INPUT2_BYTES),
#endif
    0};
static const size_t out_bytes[] = {
#if SYM(_NUM_OUTPUTS) > 0
    SYM(_OUTPUT0_BYTES),
#endif
#if SYM(_NUM_OUTPUTS) > 1
    SYM(_OUTPUT1_BYTES),
#endif
#if SYM(_NUM_OUTPUTS) > 2
    SYM(_OUTPUT2_BYTES),
#endif
    0};
_Static_assert(SYM(_NUM_INPUTS) <= 3 && SYM(_NUM_OUTPUTS) <= 3,
               "harness handles 3 tensors each way");

static void *read_all(const char *path, size_t want) {
  FILE *f = fopen(path, "rb");
  void *p = malloc(want + 1);
  if (!f || !p || fread(p, 1, want + 1, f) != want) {
    fprintf(stderr, "harness: %s: expected exactly %zu bytes\n", path, want);
    exit(2);
  }
  fclose(f);
  return p;
}

int main(int argc, char **argv) {
  int ni = SYM(_NUM_INPUTS), no = SYM(_NUM_OUTPUTS);
  if (argc != 1 + ni + no) {
    fprintf(stderr, "usage: %s IN x %d OUT x %d\n", argv[0], ni, no);
    return 2;
  }
  const void *in[4];
  void *out[4];
  for (int i = 0; i < ni; i++) in[i] = read_all(argv[1 + i], in_bytes[i]);
  for (int i = 0; i < no; i++) out[i] = calloc(1, out_bytes[i] + 1);
  void *ws = aligned_alloc(64, (SYM(_workspace_size)() + 64) / 64 * 64);
  int rc = SYM(_run)(in, out, ws);
  if (rc != 0) {
    fprintf(stderr, "harness: run returned %d\n", rc);
    return 1;
  }
  for (int i = 0; i < no; i++) {
    FILE *f = fopen(argv[1 + ni + i], "wb");
    if (!f || fwrite(out[i], 1, out_bytes[i], f) != out_bytes[i] || fclose(f)) {
      fprintf(stderr, "harness: cannot write %s\n", argv[1 + ni + i]);
      return 1;
    }
  }
  return 0;
}
