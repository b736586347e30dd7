/* The importer's handling of float16 and 16-bit quantization (onnx_wide.c), for onnx_import.c.
 * float16 tensors are held as f32; uint16 tensors as int16 u - 32768 (a "shifted" value, read
 * only by QuantizeLinear/DequantizeLinear, whose results this shift leaves exact). */
#ifndef LB_ONNX_WIDE_H
#define LB_ONNX_WIDE_H

#include "onnx_internal.h"

/* Per import: the value ids holding shifted uint16 data, and what the node being lowered
 * leaves for lb_onnx_wide_after. */
typedef struct lb_onnx_wide {
  uint32_t *u16;
  uint32_t n_u16, cap_u16;
  int out_u16;   /* the node's output is shifted uint16 */
  int fold_q;    /* a 16-bit DequantizeLinear of constants: the folded result keeps (s, z) */
  uint32_t s, z; /* its scale and (shifted or int16) zero point */
  int axis;      /* its axis (-1 per tensor) */
  int z_shift;   /* 32768 for uint16: the zero point's value is z + z_shift */
} lb_onnx_wide;

void lb_onnx_wide_free(lb_onnx_wide *w);
int lb_onnx_wide_is_u16(const lb_onnx_wide *w, uint32_t id);
int lb_onnx_wide_mark(lb_onnx_wide *w, uint32_t id, lb_diag *diag); /* 0 or LB_ERR_NOMEM */

/* lb_onnx_decode_tensor that also takes float16 (to f32) and uint16 (to shifted int16, *u16
 * set). */
int lb_onnx_wide_decode(const Onnx__TensorProto *t, lb_tensor *out, size_t *nbytes, int *u16,
                        lb_diag *diag);
/* A graph input's declared elem_type: a one-line refusal for float16 and uint16, else 0. */
int lb_onnx_wide_io_type(int32_t elem_type, const char *what, lb_diag *diag);

/* Whether an ONNX op of this domain is read as the default domain's (ONNX Runtime's
 * com.microsoft QuantizeLinear/DequantizeLinear, which 16-bit QDQ models below opset 21 use). */
int lb_onnx_wide_domain(const Onnx__NodeProto *np);
/* Checks that shifted uint16 inputs reach only QuantizeLinear/DequantizeLinear. */
int lb_onnx_wide_check_inputs(lb_onnx_ctx *c, const lb_onnx_wide *w, const uint32_t *ids,
                              uint32_t n_in);
/* Lowers the nodes this file owns (Cast to float16, Constant of float16, 16-bit or blocked
 * QuantizeLinear/DequantizeLinear); *done = 0 leaves the node to op->fn. */
int lb_onnx_wide_lower(lb_onnx_ctx *c, lb_onnx_wide *w, const lb_onnx_op *op, const uint32_t *ids,
                       uint32_t n_in, lb_lowering *l, int *done);
/* After the node's output (value id out) exists: marks it uint16, or gives a folded 16-bit
 * DequantizeLinear the quantization parameters of its integers. */
int lb_onnx_wide_after(lb_onnx_ctx *c, lb_onnx_wide *w, uint32_t out);

#endif
