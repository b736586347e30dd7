/* libFuzzer target for the .npy reader: any bytes must give a tensor or a one-line error,
 * never a crash, leak or out-of-bounds read. The reader takes a path, so each input is written
 * to a per-process temporary file first. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tensor_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/lowbit-fuzz-npy-%ld.npy", (long)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  lb_tensor t;
  lb_diag diag = {0};
  if (lb_npy_read(path, &t, &diag) == 0) {
    /* a successful read must describe exactly the bytes it returned */
    if (t.rank < 0 || t.rank > LB_MAX_RANK) abort();
    lb_free(t.data);
  } else if (!diag.set) {
    abort(); /* every failure carries a message */
  }
  return 0;
}
