#!/usr/bin/python3
"""Makes the ONNX fixtures of the CLI end-to-end tests (tests/unit/test_cli.c); outputs are
committed next to this script. Deterministic: fixed seed, fixed opset 13.

small_cnn.onnx  x[1,1,8,8] -> Conv(4 filters 3x3, pad 1, bias) -> Relu -> MaxPool 2x2/2
                -> Flatten -> Gemm(64->10, transB) -> y[1,10]
                parameters 4*9+4 + 10*64+10 = 690; MACs 4*8*8*9 + 10*64 = 2944
two_io.onnx     a[2,3], b[2,3] -> sum = a+b, prod = a*b   (two inputs, two outputs)
dw_matmul.onnx  x[1,4,6,6] -> depthwise Conv(3x3, group 4, no bias) -> Reshape [4,16]
                -> MatMul [16,3] -> Add c -> Mul c -> y[4,3]; c[3] is shared by Add and Mul
                layer parameters 36, 48, 3, 3; total 87 (c once); MACs 4*4*4*9 + 4*3*16 = 768
Run: /usr/bin/python3 tests/e2e/make_fixtures.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def small_cnn():
    rng = np.random.RandomState(0)
    w1 = rng.uniform(-1, 1, (4, 1, 3, 3)).astype(np.float32)
    b1 = rng.uniform(-1, 1, (4,)).astype(np.float32)
    w2 = rng.uniform(-0.5, 0.5, (10, 64)).astype(np.float32)
    b2 = rng.uniform(-0.5, 0.5, (10,)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], name="conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"),
                                                   (b2, "b2"))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             producer_name="lowbit-e2e")


def two_io():
    info = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3])
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"], name="add"),
             helper.make_node("Mul", ["a", "b"], ["prod"], name="mul")]
    graph = helper.make_graph(nodes, "two_io", [info("a"), info("b")],
                              [info("sum"), info("prod")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             producer_name="lowbit-e2e")


def dw_matmul():
    rng = np.random.RandomState(1)
    w = rng.uniform(-1, 1, (4, 1, 3, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, (16, 3)).astype(np.float32)
    c = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    shape = np.array([4, 16], dtype=np.int64)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["d"], name="dw", kernel_shape=[3, 3], group=4),
        helper.make_node("Reshape", ["d", "shape"], ["r"], name="reshape"),
        helper.make_node("MatMul", ["r", "b"], ["m"], name="matmul"),
        helper.make_node("Add", ["m", "c"], ["a"], name="add"),
        helper.make_node("Mul", ["a", "c"], ["y"], name="mul"),
    ]
    graph = helper.make_graph(
        nodes, "dw_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (c, "c"),
                                                   (shape, "shape"))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             producer_name="lowbit-e2e")


def main():
    for name, model in (("small_cnn", small_cnn()), ("two_io", two_io()),
                        ("dw_matmul", dw_matmul())):
        onnx.checker.check_model(model)
        path = os.path.join(HERE, name + ".onnx")
        onnx.save(model, path)
        print("wrote", os.path.relpath(path), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
