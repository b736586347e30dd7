/* ONNX import: a ModelProto file into an lb_graph with every tensor's dtype and static shape
 * known, constant subgraphs (torch's Shape->Gather->Unsqueeze->Concat->Reshape chains) folded,
 * Identity/Dropout removed. Errors carry a path: "model.onnx: graph.node[17] "conv1" (Conv): ...". */
#ifndef LB_ONNX_H
#define LB_ONNX_H

#include "ir.h"

/* Reads and imports the model at path. */
int lb_onnx_load(const char *path, lb_graph **out, lb_diag *diag);
/* Imports a model from memory; name is used in diagnostics (fuzzer entry point). */
int lb_onnx_load_buffer(const void *buf, size_t len, const char *name, lb_graph **out,
                        lb_diag *diag);
/* Reads a serialized TensorProto (ONNX test data input_N.pb / output_N.pb) into a tensor whose
 * data is lb_malloc'd (lb_free it). */
int lb_onnx_load_tensor(const char *path, lb_tensor *out, lb_diag *diag);

#endif
