/* Unit tests for shape inference: output dtype/shape per op rule, the exact error messages for
 * inconsistent shapes, and attribute canonicalization. One case table looped with
 * tcase_add_loop_test; each case is a one-node graph built with the IR API. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

#include "../check_main.h"

typedef struct {
  lb_dtype t;
  int rank;
  int64_t d[8];
  const void *data; /* constant data (only where a rule reads it) */
  int absent;
} ts;

typedef struct {
  const char *name;
  lb_op op;
  const char *onnx_op;
  lb_attrs a;
  int n_in;
  ts in[5];
  ts out;          /* expected output (for reshape: also the preset target shape) */
  const char *err; /* expected message (whole), NULL for success */
} scase;

#define D(...) {__VA_ARGS__}
#define F32(r, dims) {LB_DTYPE_F32, r, dims, NULL, 0}
#define T(t, r, dims) {LB_DTYPE_##t, r, dims, NULL, 0}
#define NO {LB_DTYPE_F32, 0, {0}, NULL, 1}
#define OK {LB_DTYPE_F32, 0, {0}, NULL, 0}

static const int64_t idx_bad[2] = {1, 5};

static const scase cases[] = {
    /* conv */
    {"conv_resnet_stem", LB_OP_CONV, "Conv", {.strides = {2, 2}, .pads = {3, 3, 3, 3}}, 3,
     {F32(4, D(1, 3, 224, 224)), F32(4, D(64, 3, 7, 7)), F32(1, D(64))},
     F32(4, D(1, 64, 112, 112)), NULL},
    {"conv_1d", LB_OP_CONV, "Conv", {.n_spatial = 1}, 2,
     {F32(3, D(1, 2, 10)), F32(3, D(4, 2, 3))}, F32(3, D(1, 4, 8)), NULL},
    {"conv_3d_dilated", LB_OP_CONV, "Conv", {.dilations = {1, 2, 3}}, 2,
     {F32(5, D(2, 4, 8, 9, 10)), F32(5, D(6, 2, 3, 3, 3)), },
     OK, "graph.node[0] \"n\" (Conv): input[1]: weight has 2 input channels x 1 groups, but "
         "input[0] has 4 channels"},
    {"conv_3d_grouped", LB_OP_CONV, "Conv", {.dilations = {1, 2, 3}, .group = 2}, 2,
     {F32(5, D(2, 4, 8, 9, 10)), F32(5, D(6, 2, 3, 3, 3))}, F32(5, D(2, 6, 6, 5, 4)), NULL},
    {"conv_depthwise_stride", LB_OP_CONV, "Conv",
     {.group = 32, .strides = {2, 2}, .pads = {1, 1, 1, 1}}, 2,
     {F32(4, D(1, 32, 15, 15)), F32(4, D(32, 1, 3, 3))}, F32(4, D(1, 32, 8, 8)), NULL},
    {"conv_weight_rank", LB_OP_CONV, "Conv", {0}, 2, {F32(4, D(1, 3, 8, 8)), F32(2, D(8, 3))},
     OK, "graph.node[0] \"n\" (Conv): input[1]: expected rank 4, got 2"},
    {"conv_out_channels_vs_group", LB_OP_CONV, "Conv", {.group = 2}, 2,
     {F32(4, D(1, 4, 8, 8)), F32(4, D(5, 2, 3, 3))}, OK,
     "graph.node[0] \"n\" (Conv): input[1]: 5 output channels are not divisible by group 2"},
    {"conv_kernel_too_big", LB_OP_CONV, "Conv", {.pads = {1, 0, 1, 0}}, 2,
     {F32(4, D(1, 1, 2, 2)), F32(4, D(1, 1, 5, 1))}, OK,
     "graph.node[0] \"n\" (Conv): spatial dim 0: input size 2 with pads 1+1 is smaller than the "
     "kernel 5 (dilation 1)"},
    {"conv_kernel_attr_mismatch", LB_OP_CONV, "Conv", {.kernel = {3, 5}}, 2,
     {F32(4, D(1, 1, 8, 8)), F32(4, D(1, 1, 3, 3))}, OK,
     "graph.node[0] \"n\" (Conv): kernel_shape[1] = 5 does not match the weight's 3"},
    {"conv_bias_length", LB_OP_CONV, "Conv", {0}, 3,
     {F32(4, D(1, 1, 4, 4)), F32(4, D(2, 1, 3, 3)), F32(1, D(3))}, OK,
     "graph.node[0] \"n\" (Conv): input[2]: expected f32[2], got f32[3]"},
    {"conv_residual_shape", LB_OP_CONV, "Conv", {0}, 4,
     {F32(4, D(1, 1, 4, 4)), F32(4, D(2, 1, 3, 3)), F32(1, D(2)), F32(4, D(1, 2, 4, 4))}, OK,
     "graph.node[0] \"n\" (Conv): input[3]: expected f32[1,2,2,2], got f32[1,2,4,4]"},
    {"conv_input_rank", LB_OP_CONV, "Conv", {0}, 2, {F32(2, D(3, 4)), F32(2, D(3, 4))}, OK,
     "graph.node[0] \"n\" (Conv): input[0]: expected rank 3 to 5 (N, C, spatial...), got 2"},
    {"conv_int_input", LB_OP_CONV, "Conv", {0}, 2,
     {T(U8, 4, D(1, 1, 4, 4)), F32(4, D(1, 1, 3, 3))}, OK,
     "graph.node[0] \"n\" (Conv): input[0]: expected dtype f32, got u8"},
    /* pooling */
    {"maxpool_floor", LB_OP_MAX_POOL, "MaxPool", {.kernel = {3, 3}, .strides = {2, 2}}, 1,
     {F32(4, D(1, 8, 112, 112))}, F32(4, D(1, 8, 55, 55)), NULL},
    {"maxpool_ceil", LB_OP_MAX_POOL, "MaxPool",
     {.kernel = {3, 3}, .strides = {2, 2}, .ceil_mode = 1}, 1, {F32(4, D(1, 8, 112, 112))},
     F32(4, D(1, 8, 56, 56)), NULL},
    {"maxpool_ceil_drop_last", LB_OP_MAX_POOL, "MaxPool",
     {.kernel = {2}, .strides = {2}, .pads = {0, 1}, .ceil_mode = 1}, 1, {F32(3, D(1, 1, 4))},
     F32(3, D(1, 1, 2)), NULL},
    {"maxpool_ceil_keep_last", LB_OP_MAX_POOL, "MaxPool",
     {.kernel = {3}, .strides = {2}, .pads = {1, 1}, .ceil_mode = 1}, 1, {F32(3, D(1, 1, 6))},
     F32(3, D(1, 1, 4)), NULL},
    {"maxpool_u8", LB_OP_MAX_POOL, "MaxPool", {.kernel = {2, 2}}, 1, {T(U8, 4, D(1, 1, 3, 3))},
     T(U8, 4, D(1, 1, 2, 2)), NULL},
    {"avgpool_u8_refused", LB_OP_AVG_POOL, "AveragePool", {.kernel = {2, 2}}, 1,
     {T(U8, 4, D(1, 1, 3, 3))}, OK,
     "graph.node[0] \"n\" (AveragePool): input[0]: dtype u8 is not supported"},
    {"avgpool_zero_kernel", LB_OP_AVG_POOL, "AveragePool", {.kernel = {2, 0}}, 1,
     {F32(4, D(1, 1, 3, 3))}, OK,
     "graph.node[0] \"n\" (AveragePool): kernel_shape[1] = 0 is out of range"},
    {"avgpool_3d", LB_OP_AVG_POOL, "AveragePool", {.kernel = {2, 2, 2}, .strides = {2, 2, 2}}, 1,
     {F32(5, D(1, 1, 4, 5, 6))}, F32(5, D(1, 1, 2, 2, 3)), NULL},
    {"global_avg_pool", LB_OP_GLOBAL_AVG_POOL, "GlobalAveragePool", {0}, 1,
     {F32(4, D(2, 512, 7, 7))}, F32(4, D(2, 512, 1, 1)), NULL},
    /* gemm and matmul */
    {"gemm_trans", LB_OP_GEMM, "Gemm", {.trans_b = 1}, 3,
     {F32(2, D(1, 512)), F32(2, D(1000, 512)), F32(1, D(1000))}, F32(2, D(1, 1000)), NULL},
    {"gemm_inner", LB_OP_GEMM, "Gemm", {0}, 2, {F32(2, D(2, 3)), F32(2, D(4, 5))}, OK,
     "graph.node[0] \"n\" (Gemm): inner dims do not match: A f32[2,3] (trans_a=0), B f32[4,5] "
     "(trans_b=0)"},
    {"gemm_c_bad", LB_OP_GEMM, "Gemm", {0}, 3,
     {F32(2, D(2, 3)), F32(2, D(3, 4)), F32(1, D(3))}, OK,
     "graph.node[0] \"n\" (Gemm): input[2]: f32[3] does not broadcast to [2,4]"},
    {"gemm_rank", LB_OP_GEMM, "Gemm", {0}, 2, {F32(3, D(1, 2, 3)), F32(2, D(3, 4))}, OK,
     "graph.node[0] \"n\" (Gemm): input[0]: expected rank 2, got 3"},
    {"matmul_batch", LB_OP_MATMUL, "MatMul", {0}, 2,
     {F32(4, D(2, 1, 3, 4)), F32(3, D(5, 4, 6))}, F32(4, D(2, 5, 3, 6)), NULL},
    {"matmul_vec_vec", LB_OP_MATMUL, "MatMul", {0}, 2, {F32(1, D(4)), F32(1, D(4))},
     F32(0, D(0)), NULL},
    {"matmul_vec_batch", LB_OP_MATMUL, "MatMul", {0}, 2, {F32(1, D(3)), F32(3, D(2, 3, 4))},
     F32(2, D(2, 4)), NULL},
    {"matmul_inner", LB_OP_MATMUL, "MatMul", {0}, 2, {F32(2, D(2, 3)), F32(1, D(4))}, OK,
     "graph.node[0] \"n\" (MatMul): inner dims do not match: f32[2,3] x f32[4]"},
    {"matmul_batch_mismatch", LB_OP_MATMUL, "MatMul", {0}, 2,
     {F32(3, D(2, 3, 4)), F32(3, D(3, 4, 5))}, OK,
     "graph.node[0] \"n\" (MatMul): batch dims are not broadcastable: f32[2,3,4] x f32[3,4,5]"},
    /* elementwise */
    {"add_broadcast", LB_OP_ADD, "Add", {0}, 2, {F32(3, D(2, 3, 1)), F32(1, D(4))},
     F32(3, D(2, 3, 4)), NULL},
    {"add_scalar", LB_OP_MUL, "Mul", {0}, 2, {T(I64, 0, D(0)), T(I64, 1, D(3))},
     T(I64, 1, D(3)), NULL},
    {"add_mismatch", LB_OP_ADD, "Add", {0}, 2, {F32(2, D(2, 3)), F32(1, D(4))}, OK,
     "graph.node[0] \"n\" (Add): inputs are not broadcastable: f32[2,3] and f32[4]"},
    {"add_dtype_mismatch", LB_OP_SUB, "Sub", {0}, 2, {F32(1, D(2)), T(I32, 1, D(2))}, OK,
     "graph.node[0] \"n\" (Sub): input[1]: dtype i32 does not match input[0] dtype f32"},
    {"add_act_int", LB_OP_ADD, "Add", {.act = LB_ACT_RELU}, 2, {T(I32, 1, D(2)), T(I32, 1, D(2))},
     OK, "graph.node[0] \"n\" (Add): fused activation needs f32, got i32"},
    {"relu_keeps_dtype", LB_OP_RELU, "Relu", {0}, 1, {T(I8, 2, D(2, 2))}, T(I8, 2, D(2, 2)),
     NULL},
    {"sigmoid_int", LB_OP_SIGMOID, "Sigmoid", {0}, 1, {T(I8, 1, D(2))}, OK,
     "graph.node[0] \"n\" (Sigmoid): input[0]: expected dtype f32, got i8"},
    {"softmax_axis", LB_OP_SOFTMAX, "Softmax", {.axis = 2}, 1, {F32(2, D(2, 3))}, OK,
     "graph.node[0] \"n\" (Softmax): axis 2 is out of range for rank 2"},
    {"batchnorm_channels", LB_OP_BATCHNORM, "BatchNormalization", {0}, 5,
     {F32(4, D(1, 3, 2, 2)), F32(1, D(3)), F32(1, D(3)), F32(1, D(4)), F32(1, D(3))}, OK,
     "graph.node[0] \"n\" (BatchNormalization): input[3]: expected f32[3], got f32[4]"},
    {"reduce_mean_keep", LB_OP_REDUCE_MEAN, "ReduceMean",
     {.n_axes = 2, .axes = {-1, -2}, .keepdims = 1}, 1, {F32(4, D(1, 8, 7, 7))},
     F32(4, D(1, 8, 1, 1)), NULL},
    {"reduce_mean_drop", LB_OP_REDUCE_MEAN, "ReduceMean", {.n_axes = 1, .axes = {1}}, 1,
     {F32(3, D(2, 3, 4))}, F32(2, D(2, 4)), NULL},
    {"reduce_mean_repeat", LB_OP_REDUCE_MEAN, "ReduceMean", {.n_axes = 2, .axes = {1, -2}}, 1,
     {F32(3, D(2, 3, 4))}, OK, "graph.node[0] \"n\" (ReduceMean): axis -2 is repeated"},
    /* data movement */
    {"concat", LB_OP_CONCAT, "Concat", {.axis = -1}, 3,
     {T(U8, 2, D(2, 3)), T(U8, 2, D(2, 5)), T(U8, 2, D(2, 1))}, T(U8, 2, D(2, 9)), NULL},
    {"concat_mismatch", LB_OP_CONCAT, "Concat", {.axis = 1}, 2,
     {F32(2, D(2, 3)), F32(2, D(3, 3))}, OK,
     "graph.node[0] \"n\" (Concat): input[1]: f32[3,3] does not match input[0] f32[2,3] outside "
     "axis 1"},
    {"flatten", LB_OP_FLATTEN, "Flatten", {.axis = 2}, 1, {T(I64, 4, D(2, 3, 4, 5))},
     T(I64, 2, D(6, 20)), NULL},
    {"flatten_end", LB_OP_FLATTEN, "Flatten", {.axis = 4}, 1, {F32(4, D(2, 3, 4, 5))},
     F32(2, D(120, 1)), NULL},
    {"flatten_bad_axis", LB_OP_FLATTEN, "Flatten", {.axis = 5}, 1, {F32(4, D(2, 3, 4, 5))}, OK,
     "graph.node[0] \"n\" (Flatten): axis 5 is out of range for rank 4"},
    {"reshape", LB_OP_RESHAPE, "Reshape", {0}, 1, {T(I8, 2, D(4, 6))}, T(I8, 3, D(2, 3, 4)),
     NULL},
    {"reshape_count", LB_OP_RESHAPE, "Reshape", {0}, 1, {F32(2, D(4, 6))}, F32(2, D(5, 5)),
     "graph.node[0] \"n\" (Reshape): cannot reshape f32[4,6] (24 elements) to f32[5,5] (25 "
     "elements)"},
    {"transpose", LB_OP_TRANSPOSE, "Transpose", {.n_axes = 3, .axes = {0, 2, 1}}, 1,
     {F32(3, D(2, 3, 4))}, F32(3, D(2, 4, 3)), NULL},
    {"transpose_bad_perm", LB_OP_TRANSPOSE, "Transpose", {.n_axes = 3, .axes = {0, 1, 1}}, 1,
     {F32(3, D(2, 3, 4))}, OK, "graph.node[0] \"n\" (Transpose): axis 1 is repeated"},
    {"transpose_sub_byte", LB_OP_TRANSPOSE, "Transpose", {0}, 1, {T(I4, 2, D(2, 3))}, OK,
     "graph.node[0] \"n\" (Transpose): input[0]: sub-byte dtype i4 is not supported"},
    {"squeeze_all", LB_OP_SQUEEZE, "Squeeze", {0}, 1, {F32(4, D(1, 3, 1, 2))}, F32(2, D(3, 2)),
     NULL},
    {"squeeze_not_one", LB_OP_SQUEEZE, "Squeeze", {.n_axes = 1, .axes = {1}}, 1,
     {F32(3, D(1, 3, 1))}, OK, "graph.node[0] \"n\" (Squeeze): cannot squeeze axis 1 of size 3"},
    {"unsqueeze", LB_OP_UNSQUEEZE, "Unsqueeze", {.n_axes = 2, .axes = {0, 3}}, 1,
     {T(I64, 2, D(3, 4))}, T(I64, 4, D(1, 3, 4, 1)), NULL},
    {"pad", LB_OP_PAD, "Pad", {.pads = {1, 2, 3, 4}}, 1, {T(I32, 2, D(2, 3))},
     T(I32, 2, D(6, 9)), NULL},
    {"pad_reflect_too_big", LB_OP_PAD, "Pad", {.pads = {0, 3}, .pad_mode = LB_PAD_REFLECT}, 1,
     {F32(1, D(3))}, OK,
     "graph.node[0] \"n\" (Pad): axis 0: reflect pads 0+3 need a dim larger than 3, got 3"},
    {"gather", LB_OP_GATHER, "Gather", {.axis = 1}, 2, {F32(2, D(5, 4)), T(I64, 2, D(2, 3))},
     F32(3, D(5, 2, 3)), NULL},
    {"gather_const_oob", LB_OP_GATHER, "Gather", {.axis = 0}, 2,
     {F32(2, D(5, 4)), {LB_DTYPE_I64, 1, D(2), idx_bad, 0}}, OK,
     "graph.node[0] \"n\" (Gather): input[1]: index 5 is out of range for axis 0 of size 5"},
    {"gather_float_index", LB_OP_GATHER, "Gather", {0}, 2, {F32(1, D(5)), F32(1, D(2))}, OK,
     "graph.node[0] \"n\" (Gather): input[1]: indices must be i64 or i32, got f32"},
    {"identity_i4", LB_OP_IDENTITY, "Identity", {0}, 1, {T(I4, 1, D(5))}, T(I4, 1, D(5)), NULL},
    {"shape", LB_OP_SHAPE, "Shape", {.start = -3, .end = INT64_MAX}, 1, {F32(4, D(1, 2, 3, 4))},
     T(I64, 1, D(3)), NULL},
    {"shape_empty", LB_OP_SHAPE, "Shape", {.start = 3, .end = 1}, 1, {F32(4, D(1, 2, 3, 4))},
     T(I64, 1, D(0)), NULL},
    /* quantization */
    {"quantize_default_u8", LB_OP_QUANTIZE, "QuantizeLinear", {0}, 2,
     {F32(2, D(2, 3)), F32(0, D(0))}, T(U8, 2, D(2, 3)), NULL},
    {"quantize_i8_per_axis", LB_OP_QUANTIZE, "QuantizeLinear", {.axis = 1}, 3,
     {F32(2, D(2, 3)), F32(1, D(3)), T(I8, 1, D(3))}, T(I8, 2, D(2, 3)), NULL},
    {"quantize_axis_size", LB_OP_QUANTIZE, "QuantizeLinear", {.axis = 0}, 3,
     {F32(2, D(2, 3)), F32(1, D(3)), T(I8, 1, D(3))}, OK,
     "graph.node[0] \"n\" (QuantizeLinear): input[1]: 3 scales for axis 0 of size 2"},
    {"quantize_zp_shape", LB_OP_QUANTIZE, "QuantizeLinear", {0}, 3,
     {F32(2, D(2, 3)), F32(0, D(0)), T(U8, 1, D(2))}, OK,
     "graph.node[0] \"n\" (QuantizeLinear): input[2]: zero point u8[2] does not match scale "
     "f32[]"},
    {"dequantize", LB_OP_DEQUANTIZE, "DequantizeLinear", {0}, 3,
     {T(I8, 2, D(2, 3)), F32(0, D(0)), T(I8, 0, D(0))}, F32(2, D(2, 3)), NULL},
    {"dequantize_zp_dtype", LB_OP_DEQUANTIZE, "DequantizeLinear", {0}, 3,
     {T(I8, 2, D(2, 3)), F32(0, D(0)), T(U8, 0, D(0))}, OK,
     "graph.node[0] \"n\" (DequantizeLinear): input[2]: expected dtype i8, got u8"},
    /* sanity limits: sizes a fuzzed model may declare never overflow the arithmetic */
    {"dim_too_big", LB_OP_RELU, "Relu", {0}, 1, {F32(2, D(1, (int64_t)1 << 45))}, OK,
     "graph.node[0] \"n\" (Relu): input[0]: dim 1 of f32[1,35184372088832] is out of range"},
    {"numel_too_big", LB_OP_RELU, "Relu", {0}, 1, {F32(2, D((int64_t)1 << 30, (int64_t)1 << 30))},
     OK, "graph.node[0] \"n\" (Relu): input[0]: f32[1073741824,1073741824] has too many elements"},
    {"flatten_overflow", LB_OP_FLATTEN, "Flatten", {.axis = 2}, 1,
     {F32(3, D((int64_t)1 << 40, (int64_t)1 << 40, 0))}, OK,
     "graph.node[0] \"n\" (Flatten): output[0]: dim 0 of f32[9223372036854775807,0] is out of "
     "range"},
    {"conv_huge_stride", LB_OP_CONV, "Conv", {.strides = {(int64_t)1 << 40, 1}}, 2,
     {F32(4, D(1, 1, 4, 4)), F32(4, D(1, 1, 1, 1))}, OK,
     "graph.node[0] \"n\" (Conv): stride 1099511627776 or dilation 1 on spatial dim 0 is out of "
     "range"},
    {"reshape_negative", LB_OP_RESHAPE, "Reshape", {0}, 1, {F32(1, D(4))}, F32(2, D(-2, -2)),
     "graph.node[0] \"n\" (Reshape): cannot reshape f32[4] (4 elements) to f32[-2,-2] (-1 "
     "elements)"},
    /* arity and names */
    {"missing_required", LB_OP_CONV, "", {0}, 2, {F32(4, D(1, 1, 3, 3)), NO}, OK,
     "graph.node[0] \"n\" (conv): input[1] is required"},
};

/* Field-wise comparison of the attributes rules canonicalize (struct padding is ignored). */
static int same_attrs(const lb_attrs *x, const lb_attrs *y) {
  return x->n_spatial == y->n_spatial && x->group == y->group && x->axis == y->axis &&
         x->n_axes == y->n_axes && x->start == y->start && x->end == y->end &&
         !memcmp(x->kernel, y->kernel, sizeof x->kernel) &&
         !memcmp(x->strides, y->strides, sizeof x->strides) &&
         !memcmp(x->dilations, y->dilations, sizeof x->dilations) &&
         !memcmp(x->pads, y->pads, sizeof x->pads) && !memcmp(x->axes, y->axes, sizeof x->axes);
}

START_TEST(shape_table) {
  const scase *c = &cases[_i];
  lb_graph *g = lb_graph_new("t");
  uint32_t ids[5];
  for (int k = 0; k < c->n_in; k++) {
    const ts *s = &c->in[k];
    char name[16];
    snprintf(name, sizeof name, "in%d", k);
    if (s->absent) {
      ids[k] = LB_NONE;
    } else if (s->data) {
      int64_t n = 1;
      for (int i = 0; i < s->rank; i++) n *= s->d[i];
      ids[k] = lb_graph_add_const(g, name, s->t, s->rank, s->d, s->data, lb_dtype_bytes(s->t, n));
    } else {
      ids[k] = lb_graph_add_value(g, name, s->t, s->rank, s->d);
    }
  }
  int preset = c->op == LB_OP_RESHAPE;
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_BOOL, preset ? c->out.rank : 0, c->out.d);
  uint32_t n = lb_graph_add_node(g, c->op, "n", ids, (uint32_t)c->n_in, &y, 1);
  g->nodes[n].attr = c->a;
  g->nodes[n].onnx_op = c->onnx_op;
  lb_diag diag = {0};
  int rc = lb_infer_node(g, n, &diag);
  if (c->err) {
    ck_assert_msg(rc == LB_ERR_INPUT, "%s: rc %d", c->name, rc);
    ck_assert_str_eq(diag.msg, c->err);
  } else {
    ck_assert_msg(rc == 0, "%s: %s", c->name, diag.msg);
    const lb_value *v = &g->values[y];
    ck_assert_msg(v->dtype == c->out.t, "%s: dtype %s", c->name, lb_dtype_name(v->dtype));
    ck_assert_msg(v->rank == c->out.rank, "%s: rank %d", c->name, v->rank);
    for (int i = 0; i < v->rank; i++)
      ck_assert_msg(v->dims[i] == c->out.d[i], "%s: dim %d = %lld", c->name, i,
                    (long long)v->dims[i]);
    /* canonicalization is idempotent: inferring again gives the same result */
    lb_attrs before = g->nodes[n].attr;
    ck_assert_int_eq(lb_infer_node(g, n, &diag), 0);
    ck_assert_msg(same_attrs(&before, &g->nodes[n].attr), "%s: attrs changed", c->name);
  }
  lb_graph_free(g);
}
END_TEST

/* Attributes come out canonical: n_spatial, kernel, default strides/dilations, axes. */
START_TEST(canonical_attrs) {
  lb_graph *g = lb_graph_new("t");
  int64_t dx[4] = {1, 2, 9, 9}, dw[4] = {4, 2, 3, 1}, dt[3] = {2, 3, 4};
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 4, dx);
  uint32_t w = lb_graph_add_value(g, "w", LB_DTYPE_F32, 4, dw);
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, 0, NULL);
  uint32_t in[2] = {x, w};
  uint32_t n0 = lb_graph_add_node(g, LB_OP_CONV, "c", in, 2, &y, 1);
  uint32_t t = lb_graph_add_value(g, "t", LB_DTYPE_F32, 3, dt);
  uint32_t z = lb_graph_add_value(g, "z", LB_DTYPE_F32, 0, NULL);
  uint32_t n1 = lb_graph_add_node(g, LB_OP_TRANSPOSE, "tr", &t, 1, &z, 1);
  uint32_t s = lb_graph_add_value(g, "s", LB_DTYPE_F32, 0, NULL);
  uint32_t n2 = lb_graph_add_node(g, LB_OP_SOFTMAX, "sm", &t, 1, &s, 1);
  g->nodes[n2].attr.axis = -1;
  lb_diag diag = {0};
  ck_assert_int_eq(lb_infer_shapes(g, &diag), 0);
  const lb_attrs *a = &g->nodes[n0].attr;
  ck_assert_int_eq(a->n_spatial, 2);
  ck_assert_int_eq(a->kernel[0], 3);
  ck_assert_int_eq(a->kernel[1], 1);
  ck_assert_int_eq(a->strides[0] * a->strides[1] * a->dilations[0] * a->dilations[1], 1);
  ck_assert_int_eq(a->group, 1);
  ck_assert_int_eq(g->values[y].dims[2], 7);
  ck_assert_int_eq(g->values[y].dims[3], 9);
  const lb_attrs *p = &g->nodes[n1].attr;
  ck_assert_int_eq(p->n_axes, 3);
  ck_assert_int_eq(p->axes[0], 2);
  ck_assert_int_eq(p->axes[2], 0);
  ck_assert_int_eq(g->values[z].dims[0], 4);
  ck_assert_int_eq(g->nodes[n2].attr.axis, 2);
  lb_graph_free(g);
}
END_TEST

int main(void) {
  const TTest *tests[] = {canonical_attrs};
  TCase *tc;
  Suite *s = lb_test_suite("shape", tests, LB_TEST_N(tests), &tc);
  tcase_add_loop_test(tc, shape_table, 0, LB_TEST_N(cases));
  return lb_test_run(s);
}
