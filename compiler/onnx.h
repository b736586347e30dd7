/* ONNX import: a ModelProto file into an lb_graph with every tensor's dtype and static shape
 * known, constant subgraphs (torch's Shape->Gather->Unsqueeze->Concat->Reshape chains) folded,
 * Identity/Dropout removed. Errors carry a path: "model.onnx: graph.node[17] "conv1" (Conv): ...". */
#ifndef LB_ONNX_H
#define LB_ONNX_H

#include "ir.h"

/* Reads and imports the model at path.
 * - Accepts IR versions 3 to 11 and default-domain ("" or "ai.onnx") opsets 7 to 21.
 * - Graph inputs need static shapes; initializers (also those listed as inputs) are constants.
 * - Operands that act as attributes (Reshape's shape, Squeeze/Unsqueeze/ReduceMean axes, Clip's
 *   bounds, Pad's pads/value/axes, Dropout's training_mode) must be constant after folding.
 * - A node whose inputs are all constant (and every Shape) becomes a constant, unless its result
 *   exceeds 64 MiB or the fold budget (16x the file size): such nodes stay run-time nodes.
 * - Identity/Dropout outputs alias their input, except a graph output, which keeps an identity
 *   node (so each graph output has its own name). Unused values are compacted away.
 * - Node names are the ONNX names ("op_N" for the N-th node when empty); lb_node.onnx_op is the
 *   ONNX op_type; values carry ONNX names.
 * On failure *out is NULL and diag holds one line "PATH: LOCATION: message" with status
 * LB_ERR_INPUT (bad file) or LB_ERR_NOMEM. */
int lb_onnx_load(const char *path, lb_graph **out, lb_diag *diag);
/* Imports a model from memory; name is used in diagnostics (fuzzer entry point). */
int lb_onnx_load_buffer(const void *buf, size_t len, const char *name, lb_graph **out,
                        lb_diag *diag);
/* Reads a serialized TensorProto (ONNX test data input_N.pb / output_N.pb) into a tensor whose
 * data is lb_malloc'd (lb_free it). Same dtypes and storage forms as initializers. */
int lb_onnx_load_tensor(const char *path, lb_tensor *out, lb_diag *diag);

#endif
