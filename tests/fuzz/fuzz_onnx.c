/* libFuzzer target for the ONNX importer: any byte string must either import into a graph that
 * verifies or fail with a one-line LB_ERR_INPUT/LB_ERR_NOMEM message; never crash, leak or hang.
 * Seeds: tests/onnx_bad (fixtures of tools/make_bad_models.py) and tests/models. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lb_graph *g = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_onnx_load_buffer(data, size, "fuzz.onnx", &g, &d);
  if (rc != 0 && rc != LB_ERR_INPUT && rc != LB_ERR_NOMEM) abort();
  if (rc != 0 && (g != NULL || !d.set || strchr(d.msg, '\n'))) abort();
  if (rc == 0) {
    lb_diag_clear(&d);
    if (lb_graph_verify(g, &d) != 0) abort();
  }
  lb_graph_free(g);
  return 0;
}
