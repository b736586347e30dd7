#!/usr/bin/python3
"""Makes the models of the multi-input calibration and QDQ import tests (tests/unit/test_calib_inputs.c,
tests/unit/test_qdq.c) into tests/models/multi/ and tests/models/qdq/. Deterministic (fixed seeds,
opset 13, no training): re-running gives the same files. Run with Debian's /usr/bin/python3.

multi/multi_input.onnx   three inputs of three dtypes:
    image u8 [1,1,8,8] -> Cast(float) -> Mul 1/255 -> Conv 4x3x3 -> Relu -> MaxPool 2 -> Flatten
                       -> Gemm 64->16 -> Relu                                       = a
    ids i64 [1,2] -> Gather(emb [20,8]) -> Flatten                                   = e [1,16]
    aux f32 [1,6] -> Gemm 6->16 -> Relu                                              = b
    y = Gemm 32->5 (Concat(a + e, b))
  with {image,ids,aux}_calib.npy (64 samples) and {image,ids,aux}_test.npy (16 samples).

qdq/*.onnx  QDQ graphs written the way ONNX Runtime's quantize_static writes them (its MinMax
calibration on 32 random samples: activations u8 asymmetric or s8 symmetric, weights s8
symmetric in [-127, 127] per tensor or per channel, biases int32 with scale s_x * s_w):
  qdq_cnn_u8      u8 activations with zero points, per-channel conv and gemm weights (axis 0),
                  int32 biases, Relu folded into the following QuantizeLinear (ORT drops it),
                  DQ -> MaxPool/Flatten -> Q on one scale, a residual Add of two scales,
                  GlobalAveragePool, and a Softmax left fp32 after the last DequantizeLinear.
  qdq_mlp_s8, qdq_mlp_u8  s8 symmetric (int8 zero points) or u8 asymmetric activations:
                  a no-op Cast on the input, DQ -> Relu -> Q kept, an activation scale stored
                  as double behind Cast, a Linear as ORT writes MatMul + Add (per-channel
                  weights along axis 1, Q after the MatMul, the bias an s8 initializer behind
                  DequantizeLinear), DQ -> Clip(0, 6) -> Q, and a MatMul whose fp32 bias
                  reaches its Add through Cast(int32) -> Mul (the Add stays fp32).
  qdq_mixed_nozp  QuantizeLinear/DequantizeLinear without zero points (u8, zero point 0), a
                  Concat whose inputs and output share one scale, a Softmax between QDQ pairs
                  (fp32 island), a Concat of two scales (stays fp32), an integer Add, then
                  GlobalAveragePool -> Flatten -> Gemm with no QuantizeLinear after it.
  qdq_qat_s8      TensorRT-style explicit quantization: Q/DQ on conv/gemm inputs only, f32
                  weights behind QuantizeLinear -> DequantizeLinear (per channel), f32 biases,
                  Conv -> Relu -> MaxPool -> Q and Conv -> Relu -> Flatten -> Q.
  each with NAME_input.npy (8 samples).
qdq/cast_ops.onnx  Cast of constants (f64 -> f32, f32 -> i8 -> f32) and of u8/i8/i32 inputs,
  with cast_ops_in{0,1,2}.npy and numpy's cast_ops_out{0,1,2}.npy; cast_bad_runtime.onnx (a
  run-time f32 -> int8 Cast) and cast_bad_to.onnx (to uint16) must be refused.
qdq/ float16 and 16-bit QDQ (opset 19/21; the references are numpy's ONNX semantics in float32):
  qdq16_mlp       activation_type QUInt16 as ORT writes it: u16 activations (one Q with
                  output_dtype and no zero point), i16 symmetric ones, int8 and int16 weights,
                  int32 biases, the last Q u8; NAME_input.npy, NAME_expected.npy (8 samples).
  qdq16_io        int16 graph input and output around a Gemm.
  qdq16_elem      Q -> DQ pairs alone (u16, per-axis i16, an i16 output, com.microsoft's ops).
  qdq_fp16_cnn    a float16 model quantized with keep_io_types: Casts at the boundary, float16
                  scales and Constant Clip bounds, u8 activations, int8 weights.
  qdq_blocked     a blocked DequantizeLinear (block_size 4) of int8 weights.
  fp16_bad_input, fp16_bad_output, u16_bad_input, blocked_bad: refused forms.
"""
import os

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests", "models")
OPSET = 13


def save_model(path, nodes, inputs, outputs, inits, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="lowbit-make_quant_models")
    m.ir_version = 7
    onnx.checker.check_model(m)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def save_npy(path, arr):
    with open(path, "wb") as f:
        np.save(f, arr)


# ---- the multi-input model ---------------------------------------------------------------------

def multi_input():
    rng = np.random.RandomState(7)
    w = lambda *s: (rng.randn(*s) * (2.0 / np.prod(s[1:])) ** 0.5).astype(np.float32)
    inits = {"inv255": np.array(1 / 255, np.float32), "w1": w(4, 1, 3, 3),
             "b1": (rng.randn(4) * 0.1).astype(np.float32), "w2": w(16, 64),
             "b2": (rng.randn(16) * 0.1).astype(np.float32),
             "emb": (rng.randn(20, 8) * 0.5).astype(np.float32), "w3": w(16, 6),
             "b3": (rng.randn(16) * 0.1).astype(np.float32), "w4": w(5, 32),
             "b4": (rng.randn(5) * 0.1).astype(np.float32)}
    n = helper.make_node
    nodes = [
        n("Cast", ["image"], ["imf"], name="cast", to=TensorProto.FLOAT),
        n("Mul", ["imf", "inv255"], ["x"], name="scale"),
        n("Conv", ["x", "w1", "b1"], ["c1"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Relu", ["c1"], ["r1"], name="relu1"),
        n("MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        n("Flatten", ["p1"], ["f1"], name="flatten1"),
        n("Gemm", ["f1", "w2", "b2"], ["g2"], name="fc_image", transB=1),
        n("Relu", ["g2"], ["a"], name="relu2"),
        n("Gather", ["emb", "ids"], ["ge"], name="embed", axis=0),
        n("Flatten", ["ge"], ["e"], name="flatten2"),
        n("Gemm", ["aux", "w3", "b3"], ["g3"], name="fc_aux", transB=1),
        n("Relu", ["g3"], ["b"], name="relu3"),
        n("Add", ["a", "e"], ["h"], name="add"),
        n("Concat", ["h", "b"], ["cat"], name="concat", axis=1),
        n("Gemm", ["cat", "w4", "b4"], ["y"], name="fc_out", transB=1),
    ]
    vi = helper.make_tensor_value_info
    save_model(os.path.join(MODELS, "multi", "multi_input.onnx"), nodes,
               [vi("image", TensorProto.UINT8, [1, 1, 8, 8]), vi("ids", TensorProto.INT64, [1, 2]),
                vi("aux", TensorProto.FLOAT, [1, 6])],
               [vi("y", TensorProto.FLOAT, [1, 5])],
               [numpy_helper.from_array(v, k) for k, v in inits.items()], "multi_input")
    for kind, count, seed in (("calib", 64, 1), ("test", 16, 2)):
        r = np.random.RandomState(seed)
        save_npy(os.path.join(MODELS, "multi", "image_%s.npy" % kind),
                 r.randint(0, 256, (count, 1, 8, 8)).astype(np.uint8))
        save_npy(os.path.join(MODELS, "multi", "ids_%s.npy" % kind),
                 r.randint(0, 20, (count, 2)).astype(np.int64))
        save_npy(os.path.join(MODELS, "multi", "aux_%s.npy" % kind),
                 r.randn(count, 6).astype(np.float32))


# ---- QDQ graphs as ONNX Runtime writes them ------------------------------------------------------

class QDQ:
    """Builds a QDQ graph node by node next to a float evaluation on a calibration batch
    (MinMax ranges, as ORT's default calibrator)."""

    def __init__(self, act, zero_points=True):
        self.act, self.zp = act, zero_points  # act: "u8" (asymmetric) or "s8" (symmetric)
        self.nodes, self.inits, self.val, self.qparams = [], [], {}, {}

    def node(self, op, ins, outs, **attrs):
        self.nodes.append(helper.make_node(op, ins, outs, name=outs[0] + "_" + op, **attrs))

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def params(self, v):
        lo, hi = min(0.0, float(v.min())), max(0.0, float(v.max()))
        if self.act == "s8":
            return np.float32(max(-lo, hi) / 127 or 1), 0
        s = np.float32((hi - lo) / 255 or 1)
        return s, int(np.clip(np.round(-lo / s), 0, 255))

    def qdq(self, x, params=None, scale_name=None):
        """x -> QuantizeLinear -> DequantizeLinear; returns the DQ output's name."""
        s, z = params if params is not None else self.params(self.val[x])
        self.qparams[x + "_dq"] = (s, z)
        zt = np.uint8 if self.act == "u8" else np.int8
        sn = scale_name or self.init(x + "_scale", np.float32(s))
        ins = [sn] + ([self.init(x + "_zero_point", zt(z))] if self.zp else [])
        self.node("QuantizeLinear", [x] + ins, [x + "_QuantizeLinear_Output"])
        self.node("DequantizeLinear", [x + "_QuantizeLinear_Output"] + ins, [x + "_dq"])
        q = torch.clamp(torch.round(self.val[x] / float(s)) + z, *(0, 255) if self.act == "u8"
                        else (-128, 127))
        self.val[x + "_dq"] = (q - z) * float(s)
        return x + "_dq"

    def weight(self, name, w, axis=None):
        """Symmetric s8 weights in [-127, 127], per tensor or per channel along axis."""
        if axis is None:
            s = np.float32(np.abs(w).max() / 127)
            shape = ()
        else:
            red = tuple(i for i in range(w.ndim) if i != axis)
            s = (np.abs(w).max(axis=red) / 127).astype(np.float32)
            shape = [-1 if i == axis else 1 for i in range(w.ndim)]
        q = np.clip(np.round(w / np.reshape(s, shape)), -127, 127).astype(np.int8)
        ins = [self.init(name + "_quantized", q), self.init(name + "_scale", s),
               self.init(name + "_zero_point", np.zeros(np.shape(s), np.int8))]
        kw = {"axis": axis} if axis is not None else {}
        self.node("DequantizeLinear", ins, [name + "_dq"], **kw)
        return name + "_dq", torch.from_numpy(q.astype(np.float32) * np.reshape(s, shape)), s

    def bias(self, name, b, x_scale, w_scale):
        s = (np.float32(x_scale) * np.asarray(w_scale, np.float32) * np.ones_like(b)).astype(np.float32)
        q = np.round(b / s).astype(np.int32)
        ins = [self.init(name + "_quantized", q), self.init(name + "_scale", s),
               self.init(name + "_zero_point", np.zeros(len(b), np.int32))]
        self.node("DequantizeLinear", ins, [name + "_dq"], axis=0)
        return name + "_dq", torch.from_numpy(q.astype(np.float32) * s)

    def conv(self, x, out, w, b, pads, relu):
        """Conv with per-channel weights and int32 bias; a following Relu is folded into the Q
        range (ORT removes it for asymmetric u8 activations)."""
        sx = float(self.scale_of(x))
        wn, wq, ws = self.weight(out + "_w", w, axis=0)
        ins = [x, wn]
        bq = None
        if b is not None:
            bn, bq = self.bias(out + "_b", b, sx, ws)
            ins.append(bn)
        self.node("Conv", ins, [out], kernel_shape=list(w.shape[2:]), pads=[pads] * 4)
        y = F.conv2d(self.val[x], wq, bq, padding=pads)
        self.val[out] = torch.relu(y) if relu else y
        return out

    def add_pool_flatten(self, a, b, name):
        """Add -> Q -> GlobalAveragePool -> Q -> Flatten -> Q on the pool's parameters."""
        self.node("Add", [a, b], [name])
        self.val[name] = self.val[a] + self.val[b]
        r = self.qdq(name)
        self.node("GlobalAveragePool", [r], ["gap"])
        self.val["gap"] = self.val[r].mean(dim=(2, 3), keepdim=True)
        g = self.qdq("gap")
        self.node("Flatten", [g], ["flat"])
        self.val["flat"] = self.val[g].flatten(1)
        return self.qdq("flat", self.qparams[g])

    def scale_of(self, dq_name):
        for t in self.inits:
            if t.name == dq_name[:-3] + "_scale":
                return numpy_helper.to_array(t)
        raise KeyError(dq_name)

    def save(self, name, inputs, outputs, x):
        path = os.path.join(MODELS, "qdq", name + ".onnx")
        save_model(path, self.nodes, inputs, outputs, self.inits, name)
        save_npy(os.path.join(MODELS, "qdq", name + "_input.npy"), x)


def rand(seed, *shape, lo=None):
    r = np.random.RandomState(seed)
    return (r.uniform(0, 1, shape) if lo == 0 else r.randn(*shape)).astype(np.float32)


def kaiming(rng, *s):
    return (rng.randn(*s) * (2.0 / np.prod(s[1:])) ** 0.5).astype(np.float32)


def qdq_cnn_u8():
    rng = np.random.RandomState(11)
    q = QDQ("u8")
    q.val["x"] = torch.from_numpy(rand(3, 32, 3, 8, 8))
    x = q.qdq("x")
    c1 = q.qdq(q.conv(x, "conv1", kaiming(rng, 8, 3, 3, 3), rng.randn(8).astype(np.float32) * .1,
                      1, True))
    q.node("MaxPool", [c1], ["pool"], kernel_shape=[2, 2], strides=[2, 2])
    q.val["pool"] = F.max_pool2d(q.val[c1], 2)
    p = q.qdq("pool", q.qparams[c1])
    c2 = q.qdq(q.conv(p, "conv2", kaiming(rng, 8, 8, 3, 3), rng.randn(8).astype(np.float32) * .1,
                      1, True))
    f = q.add_pool_flatten(p, c2, "res")
    wn, wq, ws = q.weight("fc_w", kaiming(rng, 10, 8), axis=0)
    bn, bq = q.bias("fc_b", rng.randn(10).astype(np.float32) * .1, q.scale_of(f), ws)
    q.node("Gemm", [f, wn, bn], ["fc"], transB=1)
    q.val["fc"] = q.val[f] @ wq.T + bq
    o = q.qdq("fc")
    q.node("Softmax", [o], ["y"], axis=1)
    vi = helper.make_tensor_value_info
    q.save("qdq_cnn_u8", [vi("x", TensorProto.FLOAT, [1, 3, 8, 8])],
           [vi("y", TensorProto.FLOAT, [1, 10])], rand(4, 8, 3, 8, 8))


def qdq_mlp(act):
    rng = np.random.RandomState(12)
    q = QDQ(act)
    q.node("Cast", ["x"], ["x_cast"], to=TensorProto.FLOAT)
    q.val["x_cast"] = torch.from_numpy(rand(5, 32, 16))
    x = q.qdq("x_cast")
    wn, wq, ws = q.weight("fc1_w", kaiming(rng, 32, 16), axis=0)
    bn, bq = q.bias("fc1_b", rng.randn(32).astype(np.float32) * .1, q.scale_of(x), ws)
    q.node("Gemm", [x, wn, bn], ["fc1"], transB=1)
    q.val["fc1"] = q.val[x] @ wq.T + bq
    h = q.qdq("fc1")
    q.node("Relu", [h], ["relu"])
    q.val["relu"] = torch.relu(q.val[h])
    s, z = q.params(q.val["relu"])  # the scale as ORT computes it, stored as double + Cast
    q.init("relu_scale_f64", np.float64(s))
    q.node("Cast", ["relu_scale_f64"], ["relu_scale"], to=TensorProto.FLOAT)
    r = q.qdq("relu", (s, z), scale_name="relu_scale")
    # a Linear as ORT quantizes MatMul + Add: per-channel weights along axis 1, Q after the
    # MatMul, and the bias an s8 initializer behind its own DequantizeLinear
    wn, wq, ws = q.weight("fc2_w", kaiming(rng, 8, 32).T.copy(), axis=1)
    q.node("MatMul", [r, wn], ["mm"])
    q.val["mm"] = q.val[r] @ wq
    m = q.qdq("mm")
    bn, bq, _ = q.weight("fc2_b", rng.randn(8).astype(np.float32) * .3)
    q.node("Add", [m, bn], ["lin"])
    q.val["lin"] = q.val[m] + bq
    lin = q.qdq("lin")
    q.init("clip_lo", np.float32(0)), q.init("clip_hi", np.float32(6))
    q.node("Clip", [lin, "clip_lo", "clip_hi"], ["clip"])
    q.val["clip"] = torch.clamp(q.val[lin], 0, 6)
    c = q.qdq("clip")
    # MatMul + Add of an fp32 bias reaching it through Cast(int32) -> Mul: the MatMul keeps
    # its int32 accumulator, the Add stays fp32
    wn, wq, ws = q.weight("fc3_w", kaiming(rng, 8, 8), axis=1)
    q.node("MatMul", [c, wn], ["mm3"])
    b = rng.randn(8).astype(np.float32) * .1
    bs = np.float32(np.abs(b).max() / 2 ** 20)
    q.init("fc3_b_int32", np.round(b / bs).astype(np.int32))
    q.init("fc3_b_scale", bs)
    q.node("Cast", ["fc3_b_int32"], ["fc3_b_f"], to=TensorProto.FLOAT)
    q.node("Mul", ["fc3_b_f", "fc3_b_scale"], ["fc3_b"])
    q.node("Add", ["mm3", "fc3_b"], ["out"])
    q.val["out"] = q.val[c] @ wq + torch.from_numpy(np.round(b / bs).astype(np.float32) * bs)
    o = q.qdq("out")
    q.node("Identity", [o], ["y"])
    vi = helper.make_tensor_value_info
    q.save("qdq_mlp_" + act, [vi("x", TensorProto.FLOAT, [1, 16])],
           [vi("y", TensorProto.FLOAT, [1, 8])], rand(6, 8, 16))


def qdq_mixed_nozp():
    rng = np.random.RandomState(13)
    q = QDQ("u8", zero_points=False)
    q.val["x"] = torch.from_numpy(rand(7, 32, 4, 6, 6, lo=0))
    x = q.qdq("x")
    sx = float(q.scale_of(x))
    wa, wqa, wsa = q.weight("ca_w", kaiming(rng, 4, 4, 1, 1))
    q.node("Conv", [x, wa], ["ca"], kernel_shape=[1, 1])
    q.val["ca"] = torch.relu(F.conv2d(q.val[x], wqa))  # relu folded into Q (zero point 0)
    wb, wqb, wsb = q.weight("cb_w", kaiming(rng, 4, 4, 3, 3), axis=0)
    bn, bq = q.bias("cb_b", rng.randn(4).astype(np.float32) * .1, sx, wsb)
    q.node("Conv", [x, wb, bn], ["cb"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    q.val["cb"] = torch.relu(F.conv2d(q.val[x], wqb, bq, padding=1))
    shared, _ = q.params(torch.cat([q.val["ca"], q.val["cb"]], 1))
    q.init("cat_scale", np.float32(shared))
    a = q.qdq("ca", (shared, 0), scale_name="cat_scale")
    b = q.qdq("cb", (shared, 0), scale_name="cat_scale")
    q.node("Concat", [a, b], ["cat"], axis=1)
    q.val["cat"] = torch.cat([q.val[a], q.val[b]], 1)
    cat = q.qdq("cat", (shared, 0), scale_name="cat_scale")
    wc, wqc, wsc = q.weight("cc_w", kaiming(rng, 4, 8, 1, 1), axis=0)
    q.node("Conv", [cat, wc], ["cc"], kernel_shape=[1, 1])
    q.val["cc"] = torch.relu(F.conv2d(q.val[cat], wqc))
    c = q.qdq("cc")
    q.node("Softmax", [c], ["soft"], axis=1)
    q.val["soft"] = torch.softmax(q.val[c], 1)
    s = q.qdq("soft", (np.float32(1 / 255), 0))
    q.node("Concat", [s, a], ["cat2"], axis=1)
    q.val["cat2"] = torch.cat([q.val[s], q.val[a]], 1)
    c2 = q.qdq("cat2")
    f = q.add_pool_flatten(c2, cat, "sum")
    wn, wq, ws = q.weight("fc_w", kaiming(rng, 6, 8), axis=0)
    bn, bq = q.bias("fc_b", rng.randn(6).astype(np.float32) * .1, q.scale_of(f), ws)
    q.node("Gemm", [f, wn, bn], ["y"], transB=1)  # no Q after it: int32 accumulator output
    vi = helper.make_tensor_value_info
    q.save("qdq_mixed_nozp", [vi("x", TensorProto.FLOAT, [1, 4, 6, 6])],
           [vi("y", TensorProto.FLOAT, [1, 6])], rand(8, 8, 4, 6, 6, lo=0))


def qdq_qat_s8():
    """Explicit quantization as TensorRT-style QAT exporters write it: Q/DQ only on the inputs of
    convolutions and gemms (s8 symmetric, per-channel weights as f32 initializers behind
    QuantizeLinear -> DequantizeLinear), fp32 biases, Relu and MaxPool/Flatten after the conv
    before the next input's QuantizeLinear, and no Q after the last gemm."""
    rng = np.random.RandomState(14)
    q = QDQ("s8")
    q.val["x"] = torch.from_numpy(rand(9, 32, 2, 8, 8))

    def qat_weight(name, w, axis):
        s = (np.abs(w).max(axis=tuple(i for i in range(w.ndim) if i != axis)) / 127).astype(np.float32)
        ins = [q.init(name, w), q.init(name + "_scale", s),
               q.init(name + "_zero_point", np.zeros(len(s), np.int8))]
        q.node("QuantizeLinear", ins, [name + "_q"], axis=axis)
        q.node("DequantizeLinear", [name + "_q"] + ins[1:], [name + "_dq"], axis=axis)
        shape = [-1 if i == axis else 1 for i in range(w.ndim)]
        return name + "_dq", torch.from_numpy(np.clip(np.round(w / s.reshape(shape)), -127, 127)
                                              * s.reshape(shape))

    def conv_relu_pool(x, name, cin, cout, pool):
        wn, wq = qat_weight(name + "_w", kaiming(rng, cout, cin, 3, 3), 0)
        b = (rng.randn(cout) * .1).astype(np.float32)
        q.node("Conv", [x, wn, q.init(name + "_b", b)], [name], kernel_shape=[3, 3], pads=[1] * 4)
        q.node("Relu", [name], [name + "_relu"])
        y = torch.relu(F.conv2d(q.val[x], wq, torch.from_numpy(b), padding=1))
        if pool:
            q.node("MaxPool", [name + "_relu"], [name + "_pool"], kernel_shape=[2, 2], strides=[2, 2])
            y = F.max_pool2d(y, 2)
        out = name + ("_pool" if pool else "_relu")
        q.val[out] = y
        return q.qdq(out) if pool else out

    x = q.qdq("x")
    c1 = conv_relu_pool(x, "conv1", 2, 8, True)
    c2 = conv_relu_pool(c1, "conv2", 8, 8, False)
    q.node("Flatten", [c2], ["flat"])
    q.val["flat"] = q.val[c2].flatten(1)
    f = q.qdq("flat")
    wn, wq = qat_weight("fc_w", kaiming(rng, 10, 128), 0)
    b = (rng.randn(10) * .1).astype(np.float32)
    q.node("Gemm", [f, wn, q.init("fc_b", b)], ["y"], transB=1)
    vi = helper.make_tensor_value_info
    q.save("qdq_qat_s8", [vi("x", TensorProto.FLOAT, [1, 2, 8, 8])],
           [vi("y", TensorProto.FLOAT, [1, 10])], rand(10, 8, 2, 8, 8))


def cast_models():
    """Cast as the importer takes it: constants converted (f64 -> f32, f32 -> i8 truncating),
    run-time u8/i8/i32 -> float; with inputs and numpy's outputs. Two refused forms."""
    n, vi = helper.make_node, helper.make_tensor_value_info
    F32, U8, I8, I32 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32
    d = np.array([0.25, -1.5, 3.0], np.float64)
    e = np.array([-1.7, 2.9, 100.5], np.float32)
    nodes = [n("Cast", ["a"], ["af"], to=F32), n("Cast", ["d"], ["df"], to=F32),
             n("Add", ["af", "df"], ["ya"]),
             n("Cast", ["b"], ["bf"], to=F32), n("Cast", ["e"], ["ei"], to=I8),
             n("Cast", ["ei"], ["ef"], to=F32), n("Mul", ["bf", "ef"], ["yb"]),
             n("Cast", ["c"], ["yc"], to=F32), n("Cast", ["yc"], ["yc2"], to=F32),
             n("Identity", ["yc2"], ["yc_out"])]
    save_model(os.path.join(MODELS, "qdq", "cast_ops.onnx"), nodes,
               [vi("a", U8, [2, 3]), vi("b", I8, [2, 3]), vi("c", I32, [2, 3])],
               [vi("ya", F32, [2, 3]), vi("yb", F32, [2, 3]), vi("yc_out", F32, [2, 3])],
               [numpy_helper.from_array(d, "d"), numpy_helper.from_array(e, "e")], "cast_ops")
    a = np.array([[0, 1, 255], [128, 7, 200]], np.uint8)
    b = np.array([[-128, -1, 0], [1, 5, 127]], np.int8)
    c = np.array([[16777217, -3, 0], [2147483647, -2147483648, 123456789]], np.int32)
    outs = (a.astype(np.float32) + d.astype(np.float32),
            b.astype(np.float32) * e.astype(np.int8).astype(np.float32), c.astype(np.float32))
    for i, t in enumerate((a, b, c)):
        save_npy(os.path.join(MODELS, "qdq", "cast_ops_in%d.npy" % i), t)
    for i, t in enumerate(outs):
        save_npy(os.path.join(MODELS, "qdq", "cast_ops_out%d.npy" % i), t)
    for name, to in (("cast_bad_runtime", I8), ("cast_bad_to", TensorProto.UINT16)):
        save_model(os.path.join(MODELS, "qdq", name + ".onnx"),
                   [n("Cast", ["x"], ["y"], name="cast", to=to)], [vi("x", F32, [2])],
                   [vi("y", to, [2])], [], name)


# ---- float16 and 16-bit QDQ ---------------------------------------------------------------------
# References in numpy/torch float32 with ONNX's QuantizeLinear/DequantizeLinear semantics
# (saturate(rint(x / s) + z), (q - z) * s; rint rounds half to even) on the true uint16/int16
# values; float16 scales and constants widened to f32 (as ONNX Runtime's CPU kernels compute).

U16, I16 = (0, 65535), (-32768, 32767)


def q_np(x, s, z, rng_):
    return np.clip(np.rint(np.asarray(x, np.float32) / np.float32(s)) + z, *rng_)


def dq_np(q, s, z):
    return (np.asarray(q, np.float32) - np.float32(z)) * np.float32(s)


def save_opset(path, nodes, inputs, outputs, inits, name, opset, extra=()):
    """Like save_model at a newer opset (ONNX 1.12's checker predates opset 21: not run)."""
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in extra]
    m = helper.make_model(graph, opset_imports=ops, producer_name="lowbit-make_quant_models")
    m.ir_version = 9
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


class Wide:
    """A QDQ graph with 16-bit or float16 parameters, evaluated on a batch next to it."""

    def __init__(self, half=False):
        self.nodes, self.inits, self.half = [], [], half

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def scale(self, name, s):
        """A scale initializer (float16 in a half model); returns (name, the f32 value used)."""
        v = np.asarray(s, np.float16 if self.half else np.float32)
        return self.init(name, v), v.astype(np.float32)

    def qdq(self, x, val, kind, name, zp=True):
        """x -> QuantizeLinear (u8/u16 asymmetric, i16 symmetric) -> DequantizeLinear."""
        lo, hi = min(0.0, float(val.min())), max(0.0, float(val.max()))
        if kind == "i16":
            rng_, zt = I16, np.int16
            s, z = max(-lo, hi) / 32767 or 1, 0
        else:
            rng_, zt = (U16, np.uint16) if kind == "u16" else ((0, 255), np.uint8)
            s = (hi - lo) / rng_[1] or 1
            z = int(np.clip(np.round(-lo / s), *rng_)) if zp else 0
        sn, s = self.scale(name + "_scale", s)
        ins = [x, sn] + ([self.init(name + "_zp", zt(z))] if zp else [])
        kw = {} if zp else {"output_dtype": TensorProto.UINT16}
        self.nodes.append(helper.make_node("QuantizeLinear", ins, [name + "_q"], name=name + "_Q", **kw))
        self.nodes.append(helper.make_node("DequantizeLinear", [name + "_q"] + ins[1:], [name + "_dq"],
                                           name=name + "_DQ"))
        return name + "_dq", dq_np(q_np(val, s, z, rng_), s, z)

    def weight(self, name, w, bits=8, axis=0):
        """Symmetric weights, int8 per channel along axis or int16 per tensor (axis None)."""
        qmax = 127 if bits == 8 else 32767
        red = tuple(i for i in range(w.ndim) if i != axis) if axis is not None else None
        s = np.abs(w).max(axis=red) / qmax
        sn, s = self.scale(name + "_scale", s)
        shape = [-1 if i == axis else 1 for i in range(w.ndim)] if axis is not None else [1] * w.ndim
        q = np.clip(np.rint(w / s.reshape(shape)), -qmax, qmax).astype(np.int8 if bits == 8 else np.int16)
        kw = {"axis": axis} if axis is not None else {}
        ins = [self.init(name + "_quantized", q), sn, self.init(name + "_zp", np.zeros(np.shape(s), q.dtype))]
        self.nodes.append(helper.make_node("DequantizeLinear", ins, [name + "_dq"], name=name + "_DQ", **kw))
        return name + "_dq", q.astype(np.float32) * s.reshape(shape)

    def value(self, name):
        return numpy_helper.to_array(next(t for t in self.inits if t.name == name)).astype(np.float32)

    def bias(self, name, b, x_scale, w_scale):
        """int32 bias on the scale of initializers x_scale * w_scale."""
        sx, sw = self.value(x_scale), self.value(w_scale)
        sn, s = self.scale(name + "_scale", np.float32(sx) * np.asarray(sw, np.float32) * np.ones_like(b))
        q = np.rint(b / s).astype(np.int32)
        ins = [self.init(name + "_quantized", q), sn, self.init(name + "_zp", np.zeros(len(b), np.int32))]
        self.nodes.append(helper.make_node("DequantizeLinear", ins, [name + "_dq"], name=name + "_DQ", axis=0))
        return name + "_dq", q.astype(np.float32) * s

    def node(self, op, ins, out, **kw):
        self.nodes.append(helper.make_node(op, ins, [out], name=out + "_" + op, **kw))
        return out


def qdq16_mlp():
    """16-bit activation QDQ as ONNX Runtime writes it with activation_type QUInt16 (opset 21):
    u16 activations with zero points, a Q with output_dtype uint16 and no zero point, i16
    symmetric activations, int8 per-channel and int16 per-tensor weights, int32 biases, and a
    last layer quantized to u8 (the tolerance of the test: one step of that scale)."""
    rng = np.random.RandomState(21)
    m, vi = Wide(), helper.make_tensor_value_info
    x = (rng.randn(8, 16) * 2).astype(np.float32)
    xd, xv = m.qdq("x", x, "u16", "x")
    w1, w1v = m.weight("fc1_w", kaiming(rng, 32, 16))
    b1, b1v = m.bias("fc1_b", (rng.randn(32) * .1).astype(np.float32), "x_scale", "fc1_w_scale")
    h = m.node("Gemm", [xd, w1, b1], "fc1", transB=1)
    hd, hv = m.qdq(h, xv @ w1v.T + b1v, "u16", "fc1")
    r = m.node("Relu", [hd], "relu")
    rd, rv = m.qdq(r, np.maximum(hv, 0), "u16", "relu", zp=False)
    w2, w2v = m.weight("fc2_w", kaiming(rng, 8, 32).T.copy(), bits=16, axis=None)
    mm = m.node("MatMul", [rd, w2], "mm")
    b2 = (rng.randn(8) * .1).astype(np.float32)
    a = m.node("Add", [mm, m.init("fc2_b", b2)], "add")
    ad, av = m.qdq(a, rv @ w2v + b2, "i16", "add")
    w3, w3v = m.weight("fc3_w", kaiming(rng, 4, 8))
    b3, b3v = m.bias("fc3_b", (rng.randn(4) * .1).astype(np.float32), "add_scale", "fc3_w_scale")
    o = m.node("Gemm", [ad, w3, b3], "fc3", transB=1)
    y, yv = m.qdq(o, av @ w3v.T + b3v, "u8", "out")
    m.node("Identity", [y], "y")
    d = os.path.join(MODELS, "qdq")
    save_opset(os.path.join(d, "qdq16_mlp.onnx"), m.nodes, [vi("x", TensorProto.FLOAT, [1, 16])],
               [vi("y", TensorProto.FLOAT, [1, 4])], m.inits, "qdq16_mlp", 21)
    save_npy(os.path.join(d, "qdq16_mlp_input.npy"), x)
    save_npy(os.path.join(d, "qdq16_mlp_expected.npy"), yv.astype(np.float32))


def qdq16_io():
    """int16 graph input and output: DQ(x i16) -> Gemm (int8 weights, int32 bias) -> Q(i16)."""
    rng = np.random.RandomState(22)
    m, vi = Wide(), helper.make_tensor_value_info
    xi = rng.randint(-3000, 3000, (8, 8)).astype(np.int16)
    sn, sx = m.scale("x_scale", 0.001)
    zn = m.init("x_zp", np.int16(3))
    m.nodes.append(helper.make_node("DequantizeLinear", ["x", sn, zn], ["x_dq"], name="x_DQ"))
    xv = dq_np(xi, sx, 3)
    w, wv = m.weight("fc_w", kaiming(rng, 4, 8))
    b, bv = m.bias("fc_b", (rng.randn(4) * .1).astype(np.float32), "x_scale", "fc_w_scale")
    m.node("Gemm", ["x_dq", w, b], "fc", transB=1)
    yv = xv @ wv.T + bv
    s = np.float32(np.abs(yv).max() / 32767)
    m.nodes.append(helper.make_node("QuantizeLinear", ["fc", m.init("y_scale", s), m.init("y_zp", np.int16(0))],
                                    ["y"], name="y_Q"))
    d = os.path.join(MODELS, "qdq")
    save_opset(os.path.join(d, "qdq16_io.onnx"), m.nodes, [vi("x", TensorProto.INT16, [1, 8])],
               [vi("y", TensorProto.INT16, [1, 4])], m.inits, "qdq16_io", 21)
    save_npy(os.path.join(d, "qdq16_io_input.npy"), xi)
    save_npy(os.path.join(d, "qdq16_io_expected.npy"), q_np(yv, s, 0, I16).astype(np.int16))


def qdq16_elem():
    """Q -> DQ pairs alone, checked element by element in test_qdq.c against constants it repeats:
    y_u16: uint16, scale 2^-6 (ties exact), zero point 40000; y_i16: int16 per axis 1, scale
    0.001 * (j + 1), zero point (j - 6) * 1000; q_i16: int16 output, scale 0.01, zero point -5;
    y_ms: com.microsoft QuantizeLinear/DequantizeLinear, uint16, scale 0.003, zero point 100."""
    m, vi, n = Wide(), helper.make_tensor_value_info, helper.make_node
    j = np.arange(12)
    ins = {"su": np.float32(2 ** -6), "zu": np.uint16(40000),
           "si": (0.001 * (j + 1)).astype(np.float32), "zi": ((j - 6) * 1000).astype(np.int16),
           "sq": np.float32(0.01), "zq": np.int16(-5), "sm": np.float32(0.003), "zm": np.uint16(100)}
    for k, v in ins.items():
        m.init(k, v)
    m.nodes += [n("QuantizeLinear", ["x", "su", "zu"], ["qu"]), n("DequantizeLinear", ["qu", "su", "zu"], ["y_u16"]),
                n("QuantizeLinear", ["x", "si", "zi"], ["qi"], axis=1),
                n("DequantizeLinear", ["qi", "si", "zi"], ["y_i16"], axis=1),
                n("QuantizeLinear", ["x", "sq", "zq"], ["q_i16"]),
                n("QuantizeLinear", ["x", "sm", "zm"], ["qm"], domain="com.microsoft"),
                n("DequantizeLinear", ["qm", "sm", "zm"], ["y_ms"], domain="com.microsoft")]
    x = np.array([[0, 1 / 128, 3 / 128, -5 / 128, 1e4, -1e4, 399.5, -625.25, 0.3, -0.3, 12.345, 700],
                  [2.5, -2.5, 31.99, -33.0, 98.765, -120, 1 / 128 + 1e-3, 0.0045, -0.0015, 327.7, -327.7, 5e-4]],
                 np.float32)
    d = os.path.join(MODELS, "qdq")
    outs = [vi(k, TensorProto.FLOAT, [2, 12]) for k in ("y_u16", "y_i16")] + \
        [vi("q_i16", TensorProto.INT16, [2, 12]), vi("y_ms", TensorProto.FLOAT, [2, 12])]
    save_opset(os.path.join(d, "qdq16_elem.onnx"), m.nodes, [vi("x", TensorProto.FLOAT, [2, 12])], outs,
               m.inits, "qdq16_elem", 21, extra=("com.microsoft",))
    save_npy(os.path.join(d, "qdq16_elem_input.npy"), x)


def qdq_fp16_cnn():
    """A float16 QDQ model as ONNX Runtime quantizes a float16 model converted with
    keep_io_types: Cast to float16 after the input and to float before the output, float16
    scales (activations u8, per-channel int8 weights, int32 biases), Clip bounds as float16
    Constant nodes. The inputs are float16 values (the Cast is exact)."""
    rng = np.random.RandomState(23)
    m, vi, n = Wide(half=True), helper.make_tensor_value_info, helper.make_node
    x = rand(24, 8, 3, 8, 8).astype(np.float16).astype(np.float32)
    m.node("Cast", ["x"], "x16", to=TensorProto.FLOAT16)
    xd, xv = m.qdq("x16", x, "u8", "xq")
    w, wv = m.weight("conv_w", kaiming(rng, 8, 3, 3, 3))
    b, bv = m.bias("conv_b", (rng.randn(8) * .1).astype(np.float32), "xq_scale", "conv_w_scale")
    c = m.node("Conv", [xd, w, b], "conv", kernel_shape=[3, 3], pads=[1] * 4)
    cv = F.conv2d(torch.from_numpy(xv), torch.from_numpy(wv), torch.from_numpy(bv), padding=1).numpy()
    cd, cv = m.qdq(c, cv, "u8", "conv")
    for k, v in (("lo", 0.0), ("hi", 6.0)):
        m.nodes.append(n("Constant", [], [k], name=k, value=numpy_helper.from_array(np.float16(v), k)))
    cl = m.node("Clip", [cd, "lo", "hi"], "clip")
    cld, clv = m.qdq(cl, np.clip(cv, 0, 6), "u8", "clip")
    p = m.node("MaxPool", [cld], "pool", kernel_shape=[2, 2], strides=[2, 2])
    pv = F.max_pool2d(torch.from_numpy(clv), 2).numpy()
    sn = next(t.name for t in m.inits if t.name == "clip_scale")
    zn = next(t.name for t in m.inits if t.name == "clip_zp")
    m.nodes += [n("QuantizeLinear", [p, sn, zn], ["pool_q"]), n("DequantizeLinear", ["pool_q", sn, zn], ["pool_dq"])]
    g = m.node("GlobalAveragePool", ["pool_dq"], "gap")
    gd, gv = m.qdq(g, pv.mean(axis=(2, 3), keepdims=True), "u8", "gap")
    f = m.node("Flatten", [gd], "flat")
    wf, wfv = m.weight("fc_w", kaiming(rng, 10, 8))
    bf, bfv = m.bias("fc_b", (rng.randn(10) * .1).astype(np.float32), "gap_scale", "fc_w_scale")
    o = m.node("Gemm", [f, wf, bf], "fc", transB=1)
    od, ov = m.qdq(o, gv.reshape(-1, 8) @ wfv.T + bfv, "u8", "out")
    m.node("Cast", [od], "y", to=TensorProto.FLOAT)
    d = os.path.join(MODELS, "qdq")
    save_opset(os.path.join(d, "qdq_fp16_cnn.onnx"), m.nodes, [vi("x", TensorProto.FLOAT, [1, 3, 8, 8])],
               [vi("y", TensorProto.FLOAT, [1, 10])], m.inits, "qdq_fp16_cnn", 19)
    save_npy(os.path.join(d, "qdq_fp16_cnn_input.npy"), x)
    save_npy(os.path.join(d, "qdq_fp16_cnn_expected.npy"), ov.astype(np.float32))


def qdq_blocked():
    """Blocked DequantizeLinear (opset 21) of int8 weights: blocks of 4 along axis 0 of a
    [16, 6] MatMul weight with int8 zero points, folded at import."""
    rng = np.random.RandomState(24)
    vi, n = helper.make_tensor_value_info, helper.make_node
    wq = rng.randint(-128, 128, (16, 6)).astype(np.int8)
    s = (rng.uniform(0.5, 2, (4, 6)) / 64).astype(np.float32)
    z = rng.randint(-3, 4, (4, 6)).astype(np.int8)
    inits = [numpy_helper.from_array(a, k) for k, a in (("w_q", wq), ("w_scale", s), ("w_zp", z))]
    nodes = [n("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], axis=0, block_size=4),
             n("MatMul", ["x", "w"], ["y"])]
    x = rand(25, 8, 16)
    wv = (wq.astype(np.float32) - np.repeat(z, 4, axis=0).astype(np.float32)) * np.repeat(s, 4, axis=0)
    d = os.path.join(MODELS, "qdq")
    save_opset(os.path.join(d, "qdq_blocked.onnx"), nodes, [vi("x", TensorProto.FLOAT, [1, 16])],
               [vi("y", TensorProto.FLOAT, [1, 6])], inits, "qdq_blocked", 21)
    save_npy(os.path.join(d, "qdq_blocked_input.npy"), x)
    save_npy(os.path.join(d, "qdq_blocked_expected.npy"), x @ wv)


def wide_refused():
    """Forms refused with a located message: float16 input, float16 output, uint16 input, a
    blocked QuantizeLinear of a run-time tensor."""
    vi, n, d = helper.make_tensor_value_info, helper.make_node, os.path.join(MODELS, "qdq")
    F16, F32, U16_ = TensorProto.FLOAT16, TensorProto.FLOAT, TensorProto.UINT16
    one = lambda k, dt, v: numpy_helper.from_array(np.asarray(v, dt), k)
    cases = {
        "fp16_bad_input": ([n("Cast", ["x"], ["y"], to=F32)], vi("x", F16, [2]), vi("y", F32, [2]), []),
        "fp16_bad_output": ([n("Cast", ["x"], ["y"], to=F16)], vi("x", F32, [2]), vi("y", F16, [2]), []),
        "u16_bad_input": ([n("DequantizeLinear", ["x", "s", "z"], ["y"])], vi("x", U16_, [2]), vi("y", F32, [2]),
                          [one("s", np.float32, 0.5), one("z", np.uint16, 7)]),
        "blocked_bad": ([n("QuantizeLinear", ["x", "s"], ["y"], name="q", axis=0, block_size=2)], vi("x", F32, [4]),
                        vi("y", TensorProto.UINT8, [4]), [one("s", np.float32, [0.5, 0.25])]),
    }
    for name, (nodes, i, o, inits) in cases.items():
        save_opset(os.path.join(d, name + ".onnx"), nodes, [i], [o], inits, name, 21)


def main():
    torch.manual_seed(0)
    multi_input()
    qdq_cnn_u8()
    qdq_mlp("s8")
    qdq_mlp("u8")
    qdq_mixed_nozp()
    qdq_qat_s8()
    cast_models()
    qdq16_mlp()
    qdq16_io()
    qdq16_elem()
    qdq_fp16_cnn()
    qdq_blocked()
    wide_refused()
    print("wrote tests/models/multi/ and tests/models/qdq/")


if __name__ == "__main__":
    main()
