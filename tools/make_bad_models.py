#!/usr/bin/python3
"""Writes the ONNX importer's fixtures into tests/onnx_bad/ (run with /usr/bin/python3, which has
Debian's onnx package; the output is deterministic and committed):

  ok_<name>.onnx   valid models that tests/unit/test_onnx.c imports and checks (storage forms,
                   opset-dependent attributes, folding of torch's shape chains, Q/DQ, ...)
  bad_<name>.onnx  malformed models; bad_<name>.txt holds the exact one-line message the importer
                   must print after "<path>: "

Usage: tools/make_bad_models.py [OUTDIR]   (default: tests/onnx_bad next to this script)
"""
import os
import random
import struct
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def model(nodes, inputs, outputs, inits=(), opset=13, ir=7, name="g"):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, producer_name="make_bad_models",
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def vi(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def typed(name, dtype, dims, field, vals):
    """A TensorProto whose data sits in one typed field (not raw_data)."""
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(dims)
    getattr(t, field).extend(vals)
    return t


def node(op, ins, outs, name="", **attrs):
    return helper.make_node(op, ins, outs, name=name, **attrs)


# ---- valid models ---------------------------------------------------------------------------

def ok_torch_chain():
    """torch's dynamic-flatten idiom: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    nodes = [
        node("Shape", ["x"], ["s"], "shape"),
        node("Gather", ["s", "zero"], ["b"], "gather", axis=0),
        node("Unsqueeze", ["b", "axes0"], ["b1"], "unsq"),
        node("Concat", ["b1", "minus1"], ["shp"], "cat", axis=0),
        node("Reshape", ["x", "shp"], ["y"], "reshape"),
        node("Gemm", ["y", "w", "bias"], ["z"], "fc", transB=1, alpha=0.5, beta=2.0),
    ]
    rng = np.random.RandomState(0)
    inits = [const("zero", np.array(0, np.int64)), const("axes0", np.array([0], np.int64)),
             const("minus1", np.array([-1], np.int64)),
             const("w", rng.randn(4, 60).astype(np.float32)),
             const("bias", np.arange(4, dtype=np.float32))]
    return model(nodes, [vi("x", [2, 3, 4, 5])], [vi("z", [2, 4])], inits, opset=13)


def ok_storage():
    """Initializers in every storage form, each exposed as a graph output."""
    inits = [
        const("raw_f32", np.array([1.5, -2.0, 3.25], np.float32)),
        typed("f32", F, [2], "float_data", [0.5, -0.25]),
        typed("f64", TensorProto.DOUBLE, [2], "double_data", [1e-3, 2.5]),
        typed("i64", I64, [3], "int64_data", [-(1 << 40), 0, 7]),
        typed("i32", TensorProto.INT32, [2], "int32_data", [-100000, 100000]),
        typed("i16", TensorProto.INT16, [2], "int32_data", [-300, 300]),
        typed("i8", TensorProto.INT8, [3], "int32_data", [-128, 0, 127]),
        typed("u8", TensorProto.UINT8, [2, 1], "int32_data", [0, 255]),
        typed("b", TensorProto.BOOL, [2], "int32_data", [1, 0]),
        const("raw_i8", np.array([-5, 6], np.int8)),
        const("scalar", np.array(4.0, np.float32)),
        typed("empty", F, [0, 3], "float_data", []),
    ]
    outs = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    return model([], [], outs, inits, opset=13)


def ok_autopad():
    """auto_pad resolved into explicit pads for Conv and MaxPool."""
    rng = np.random.RandomState(1)
    nodes = [
        node("Conv", ["x", "w"], ["c1"], "same_upper", auto_pad="SAME_UPPER", strides=[2, 2]),
        node("Conv", ["x", "w"], ["c2"], "same_lower", auto_pad="SAME_LOWER", strides=[2, 2]),
        node("Conv", ["x", "w"], ["c3"], "valid", auto_pad="VALID"),
        node("MaxPool", ["x"], ["p1"], "pool", auto_pad="SAME_UPPER", kernel_shape=[2, 2],
             strides=[2, 2]),
        node("Conv", ["x", "wg", "bg"], ["c4"], "grouped", group=2, dilations=[2, 1],
             pads=[1, 0, 2, 1]),
    ]
    inits = [const("w", rng.randn(3, 2, 3, 3).astype(np.float32)),
             const("wg", rng.randn(4, 1, 3, 3).astype(np.float32)),
             const("bg", np.zeros(4, np.float32))]
    outs = [vi("c1", [1, 3, 4, 4]), vi("c2", [1, 3, 4, 4]), vi("c3", [1, 3, 6, 5]),
            vi("p1", [1, 2, 4, 4]), vi("c4", [1, 4, 7, 6])]
    return model(nodes, [vi("x", [1, 2, 8, 7])], outs, inits, opset=11)


def ok_opset10():
    """Attribute forms of opsets < 11 / < 13: Clip, Pad, Squeeze, Unsqueeze, Softmax, ReduceMean."""
    nodes = [
        node("Clip", ["x"], ["c"], "clip", min=-1.0, max=2.0),
        node("Pad", ["c"], ["p"], "pad", pads=[0, 1, 0, 2], mode="reflect"),
        node("Unsqueeze", ["p"], ["u"], "unsq", axes=[-1, 0]),
        node("Squeeze", ["u"], ["s"], "sq", axes=[0, 3]),
        node("Softmax", ["s"], ["sm"], "softmax"),
        node("ReduceMean", ["sm"], ["r"], "mean", axes=[-1], keepdims=0),
        node("Flatten", ["x"], ["f"], "flat", axis=0),
    ]
    outs = [vi("r", [3]), vi("f", [1, 12])]
    return model(nodes, [vi("x", [3, 4])], outs, opset=10, ir=5)


def ok_opset13():
    """Input forms of opset >= 11/13 and defaults that changed with the opset."""
    nodes = [
        node("Clip", ["x", "lo", ""], ["c"], "clip"),
        node("Pad", ["c", "pads", "pv"], ["p"], "pad"),
        node("Unsqueeze", ["p", "ax"], ["u"], "unsq"),
        node("Squeeze", ["u"], ["s"], "sq"),
        node("Softmax", ["s"], ["sm"], "softmax"),
        node("Dropout", ["sm"], ["d", "mask"], "drop"),
        node("Identity", ["d"], ["i"], "ident"),
        node("Transpose", ["i"], ["t"], "tr"),
        node("Gather", ["t", "idx"], ["ga"], "gat", axis=-1),
        node("Concat", ["ga", "ga"], ["cc"], "cat", axis=-1),
        node("Identity", ["cc"], ["y"], "out_ident"),
    ]
    inits = [const("lo", np.array(0.25, np.float32)),
             const("pads", np.array([1, 0, 1, 0], np.int64)),
             const("pv", np.array(-1.0, np.float32)),
             const("ax", np.array([0], np.int64)),
             const("idx", np.array([-1, 0], np.int64))]
    return model(nodes, [vi("x", [2, 3])], [vi("y", [3, 4])], inits, opset=13)


def ok_opset18():
    """Pad with an axes input and ReduceMean with an axes input (opset 18)."""
    nodes = [
        node("Pad", ["x", "pads", "", "pax"], ["p"], "pad", mode="edge"),
        node("ReduceMean", ["p", "rax"], ["r"], "mean"),
        node("ReduceMean", ["p"], ["n"], "noop", noop_with_empty_axes=1),
        node("Shape", ["p"], ["sh"], "shape", start=-2),
    ]
    inits = [const("pads", np.array([2, 3], np.int64)), const("pax", np.array([-1], np.int64)),
             const("rax", np.array([0], np.int64))]
    outs = [vi("r", [1, 2, 6]), vi("n", [3, 2, 6]), vi("sh", [2], I64)]
    return model(nodes, [vi("x", [3, 2, 1])], outs, inits, opset=18, ir=8)


def ok_qdq():
    """Per-axis int8 weights dequantized (folded at import), per-tensor uint8 activations."""
    wq = np.array([[[[-3]], [[4]]], [[[127]], [[-128]]]], np.int8)  # [2,2,1,1]
    nodes = [
        node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], "q"),
        node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], "dq"),
        node("DequantizeLinear", ["wq", "ws"], ["w"], "wdq", axis=0),
        node("Conv", ["xd", "w"], ["y"], "conv"),
    ]
    inits = [const("xs", np.array(0.5, np.float32)), const("xz", np.array(128, np.uint8)),
             const("wq", wq), const("ws", np.array([0.5, 0.25], np.float32))]
    return model(nodes, [vi("x", [1, 2, 3, 3])], [vi("y", [1, 2, 3, 3])], inits, opset=13)


def ok_misc():
    """BatchNormalization, pooling variants and activations with their attributes."""
    rng = np.random.RandomState(2)
    nodes = [
        node("BatchNormalization", ["x", "sc", "bi", "mu", "var"], ["bn"], "bn", epsilon=1e-3),
        node("LeakyRelu", ["bn"], ["lr"], "leaky", alpha=0.2),
        node("HardSigmoid", ["lr"], ["hs"], "hsig", alpha=0.25, beta=0.4),
        node("HardSwish", ["hs"], ["hw"], "hswish"),
        node("AveragePool", ["hw"], ["ap"], "avg", kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 1, 1], count_include_pad=1, ceil_mode=1),
        node("MaxPool", ["ap"], ["mp", ""], "max", kernel_shape=[2, 2], dilations=[2, 2]),
        node("GlobalAveragePool", ["mp"], ["gp"], "gap"),
        node("Flatten", ["gp"], ["fl"], "flat"),
        node("MatMul", ["fl", "m"], ["mm"], "mm"),
        node("Sub", ["mm", "one"], ["sb"], "sub"),
        node("Mul", ["sb", "one"], ["ml"], "mul"),
        node("Div", ["ml", "one"], ["dv"], "div"),
        node("Sigmoid", ["dv"], ["sg"], "sig"),
        node("Tanh", ["sg"], ["th"], "tanh"),
        node("Relu", ["th"], ["y"], "relu"),
    ]
    inits = [const("sc", rng.rand(3).astype(np.float32) + 0.5),
             const("bi", rng.randn(3).astype(np.float32)),
             const("mu", rng.randn(3).astype(np.float32)),
             const("var", rng.rand(3).astype(np.float32) + 0.5),
             const("m", rng.randn(3, 5).astype(np.float32)),
             const("one", np.array([1.0], np.float32))]
    return model(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", [1, 5])], inits, opset=14)


def ok_nofold():
    """A constant Pad whose 64 MiB+ result is too large to fold: it stays a run-time node."""
    nodes = [node("Pad", ["c", "pads"], ["p"], "big_pad"),
             node("Add", ["x", "p"], ["y"], "add")]
    inits = [const("c", np.ones((1, 1), np.float32)),
             const("pads", np.array([0, 0, 4096, 4096], np.int64))]
    return model(nodes, [vi("x", [4097, 4097])], [vi("y", [4097, 4097])], inits, opset=13)


# ---- malformed models: (file, expected message after "<path>: ") ------------------------------

def tiny(nodes=None, inputs=None, outputs=None, inits=(), **kw):
    nodes = nodes if nodes is not None else [node("Relu", ["x"], ["y"], "relu")]
    inputs = inputs if inputs is not None else [vi("x", [1, 4])]
    outputs = outputs if outputs is not None else [vi("y", [1, 4])]
    return model(nodes, inputs, outputs, inits, **kw)


def bad_models():
    rng = np.random.RandomState(3)
    w = const("w", rng.randn(64, 16).astype(np.float32))
    big = tiny([node("MatMul", ["x", "w"], ["y"], "mm")], [vi("x", [1, 64])], [vi("y", [1, 16])],
               [w]).SerializeToString()
    out = {}
    out["truncated"] = (big[:len(big) // 2],
                        "not a valid ONNX model: protobuf parse failed (truncated or corrupt "
                        "file)")
    random.seed(4)
    out["garbage"] = (bytes([0x0a, 0xff, 0xff, 0xff, 0x7f]) +
                      bytes(random.randrange(256) for _ in range(300)),
                      "not a valid ONNX model: protobuf parse failed (truncated or corrupt "
                      "file)")
    out["empty"] = (b"", "model has no ir_version (not an ONNX model?)")
    out["unsupported_op"] = (tiny([node("Cos", ["x"], ["y"], "cosine")]),
                             'graph.node[0] "cosine" (Cos): unsupported op Cos (domain "", opset '
                             '13); supported ops (domain ""): ' + SUPPORTED)
    out["custom_domain"] = (tiny([helper.make_node("Relu", ["x"], ["y"], domain="com.acme")]),
                            'graph.node[0] "op_0" (Relu): unsupported op Relu (domain '
                            '"com.acme", opset not imported); supported ops (domain ""): ' + SUPPORTED)
    bad_init = const("w", np.zeros((4, 4), np.float32))
    bad_init.raw_data = bad_init.raw_data[:60]
    out["init_size"] = (tiny([node("MatMul", ["x", "w"], ["y"])], outputs=[vi("y", [1, 4])],
                             inits=[bad_init]),
                        'graph.initializer[0] "w": raw_data has 60 bytes, expected 64')
    out["init_count"] = (tiny(inits=[typed("w", F, [2, 2], "float_data", [1, 2, 3])]),
                         'graph.initializer[0] "w": float_data has 3 elements, expected 4')
    out["int8_range"] = (tiny(inits=[typed("w", TensorProto.INT8, [2], "int32_data", [1, 300])]),
                         'graph.initializer[0] "w": int32_data[1] = 300 out of range for i8')
    out["missing_input"] = (tiny([node("Add", ["x", "nope"], ["y"], "add")]),
                            'graph.node[0] "add" (Add): input[1] "nope" is not a graph input, '
                            'an initializer or the output of an earlier node')
    out["attr_type"] = (tiny([node("Conv", ["x", "w"], ["y"], "conv", group=2.0)],
                             [vi("x", [1, 2, 5, 5])], [vi("y", [1, 2, 3, 3])],
                             [const("w", np.zeros((2, 1, 3, 3), np.float32))]),
                        'graph.node[0] "conv" (Conv): attribute "group": expected INT, got FLOAT')
    out["dynamic_dim"] = (tiny(inputs=[vi("x", ["N", 4])]),
                          'graph.input[0] "x": dim[0] is symbolic ("N"); static shapes are '
                          'required (re-export with fixed sizes)')
    out["reshape_nonconst"] = (tiny([node("Reshape", ["x", "s"], ["y"], "reshape")],
                                    [vi("x", [1, 4]), vi("s", [2], I64)]),
                               'graph.node[0] "reshape" (Reshape): input[1] (shape) "s" must be '
                               'a constant (initializer, Constant, or computable from them at '
                               'import time)')
    f16 = TensorProto()
    f16.name, f16.data_type = "w", TensorProto.FLOAT16
    f16.dims.extend([2])
    f16.raw_data = b"\0\0\0"  # float16 is read (as f32); its storage is checked all the same
    out["dtype_float16"] = (tiny(inits=[f16]),
                            'graph.initializer[0] "w": raw_data has 3 bytes, expected 4')
    unk = typed("w", 99, [1], "float_data", [1.0])
    out["dtype_unknown"] = (tiny(inits=[unk]), 'graph.initializer[0] "w": unknown data type 99')
    out["gemm_rank"] = (tiny([node("Gemm", ["x", "w"], ["y"], "fc")], [vi("x", [1, 2, 4])],
                             [vi("y", [1, 3])],
                             [const("w", np.zeros((4, 3), np.float32))]),
                        'graph.node[0] "fc" (Gemm): input[0]: expected rank 2, got 3')
    out["conv_channels"] = (tiny([node("Conv", ["x", "w"], ["y"], "conv1")],
                                 [vi("x", [1, 3, 5, 5])], [vi("y", [1, 2, 3, 3])],
                                 [const("w", np.zeros((2, 2, 3, 3), np.float32))]),
                            CONV_CHANNELS)
    out["opset_old"] = (tiny(opset=5), "opset 5 is not supported (7 to 21)")
    out["ir_version"] = (tiny(ir=99), "ir_version 99 is not supported (3 to 11)")
    out["dangling_output"] = (tiny(outputs=[vi("zz", [1, 4])]),
                              'graph.output[0] "zz": not produced by any node, input or '
                              'initializer')
    out["maxpool_indices"] = (tiny([node("MaxPool", ["x"], ["y", "idx"], "pool",
                                         kernel_shape=[2])],
                                   [vi("x", [1, 1, 4])], [vi("y", [1, 1, 3])]),
                              'graph.node[0] "pool" (MaxPool): output[1] "idx" (Indices) is '
                              'not supported')
    out["dropout_mask"] = (tiny([node("Dropout", ["x"], ["d", "m"], "drop"),
                                 node("Add", ["d", "m"], ["y"], "add")]),
                           'graph.node[1] "add" (Add): input[1]: dtype bool does not match '
                           'input[0] dtype f32')
    out["softmax_axis"] = (tiny([node("Softmax", ["x"], ["y"], "sm", axis=2)]),
                           'graph.node[0] "sm" (Softmax): attribute "axis" 2 out of range for '
                           'rank 2')
    out["gather_const"] = (tiny([node("Gather", ["d", "i"], ["y"], "gat")],
                                outputs=[vi("y", [2])],
                                inits=[const("d", np.array([1.0, 2.0], np.float32)),
                                       const("i", np.array([0, 5], np.int64))]),
                           GATHER_CONST)
    out["arity"] = (tiny([node("Relu", ["x", "x"], ["y"], "relu")]),
                    'graph.node[0] "relu" (Relu): expected 1 input, got 2')
    out["unknown_attr"] = (tiny([node("Relu", ["x"], ["y"], "relu", alpha=1.0)]),
                           'graph.node[0] "relu" (Relu): attribute "alpha" is not supported by '
                           'Relu')
    out["declared_shape"] = (tiny(outputs=[vi("y", [1, 5])]),
                             'graph.output[0] "y": declared type or shape differs from the '
                             'inferred f32 [1,4]')
    deep = helper.make_graph([node("Relu", ["x"], ["y"])], "inner", [vi("x", [1])],
                             [vi("y", [1])])
    for _ in range(40):
        deep = helper.make_graph([node("If", ["c"], ["y"], then_branch=deep)],
                                 "nest", [], [vi("y", [1])])
    out["nested"] = (model(deep.node, [vi("c", [1], TensorProto.BOOL)], [vi("y", [1])]),
                     "messages nested deeper than 32 levels")
    return out


SUPPORTED = ("Conv Gemm MatMul Add Sub Mul Div Relu LeakyRelu Clip Sigmoid Tanh HardSigmoid "
             "HardSwish Softmax MaxPool AveragePool GlobalAveragePool BatchNormalization Concat "
             "Flatten Reshape Transpose Squeeze Unsqueeze Pad Gather Identity Dropout Constant "
             "Shape ReduceMean QuantizeLinear DequantizeLinear Cast")
# Written by shape inference (compiler/shape.c); the importer keeps its text after the node path.
CONV_CHANNELS = ('graph.node[0] "conv1" (Conv): input[1]: weight has 2 input channels x 1 '
                 'groups, but input[0] has 3 channels')

GATHER_CONST = ('graph.node[0] "gat" (Gather): input[1]: index 5 is out of range for axis 0 of '
                'size 2')


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "onnx_bad")
    os.makedirs(outdir, exist_ok=True)
    for fn in [ok_torch_chain, ok_storage, ok_autopad, ok_opset10, ok_opset13, ok_opset18,
               ok_qdq, ok_misc, ok_nofold]:
        with open(os.path.join(outdir, fn.__name__ + ".onnx"), "wb") as f:
            f.write(fn().SerializeToString())
    for name, (m, msg) in sorted(bad_models().items()):
        data = m if isinstance(m, bytes) else m.SerializeToString()
        with open(os.path.join(outdir, "bad_" + name + ".onnx"), "wb") as f:
            f.write(data)
        with open(os.path.join(outdir, "bad_" + name + ".txt"), "w") as f:
            f.write(msg + "\n")
    print("wrote fixtures to", os.path.normpath(outdir))


if __name__ == "__main__":
    main()
