#!/usr/bin/python3
"""Makes the test models and data under tests/models/ (run with Debian's /usr/bin/python3).

Default: trains four small classifiers on scikit-learn's digits (80/20 stratified split,
random_state=0, pixels scaled to [0,1]) with fixed seeds on one CPU thread, exports them to
ONNX (opset 13, batch 1, static shapes, BatchNormalization kept as its own node) and writes
PyTorch's outputs on the whole test split next to them.  Re-running gives the same files.
  --large  also makes torchvision resnet18 and mobilenet_v2 (random weights, seed 0, 1x3x224x224)
           with a fixed random input (input.npy), 8 more for calibration (calib.npy) and
           torch's outputs into tests/models/large/ (gitignored).
           Their BatchNorm statistics are re-estimated on 32 random images first: with the
           default init mobilenet_v2's activations shrink ~10x per stage (logits ~1e-9).
digits_ops is a fourth, wide model: most of lowbit's ONNX ops as torch exports them.
Also upgrades the opset<7 tests of Debian's libonnx-testdata node, pytorch-converted and
pytorch-operator suites whose ops are all in lowbit's list to opset 13 with onnx's version
converter, into tests/models/onnx13/<suite>/<test>.onnx (models only; `conformance -m` pairs them
with the suites' own test data), because the importer reads opsets 7 and up.
Files (tests/models/): digits_{mlp,cnn,resnet,ops}.onnx, digits_test_x.npy [N,1,8,8],
digits64_test_x.npy [N,64] (the same, for the MLP), digits16_test_x.npy [N,1,16,16] (bilinear
upsample, for the resnet), digits_test_y.npy [N] int64, <model>_torch_out.npy [N,10] f32, and
digits{,64,16}_calib_x.npy (the same 100 training samples in each shape) for calibration.
"""
import argparse
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "models")
OPSET = 13
ONNX_TESTDATA = "/usr/share/libonnx-testdata/data"
LEGACY_SUITES = ("node", "pytorch-converted", "pytorch-operator")
# The ONNX ops lowbit imports (as in tests/tools/conformance.c).
LOWBIT_OPS = set("""Conv Gemm MatMul Add Sub Mul Div Relu LeakyRelu Clip Sigmoid Tanh HardSigmoid
    HardSwish Softmax MaxPool AveragePool GlobalAveragePool BatchNormalization Concat Flatten
    Reshape Transpose Squeeze Unsqueeze Pad Gather Identity Dropout Constant Shape ReduceMean
    QuantizeLinear DequantizeLinear""".split())


def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


def load_data():
    """Digits as float32 [N,1,8,8] in [0,1], stratified 80/20 split, 100 calibration samples."""
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    calib = xtr[np.random.RandomState(1).permutation(len(xtr))[:100]]
    return xtr, ytr, xte, yte, calib


def up16(x):
    """Bilinear upsample [N,1,8,8] -> [N,1,16,16], done outside the model (no Resize op)."""
    t = F.interpolate(torch.from_numpy(x), size=(16, 16), mode="bilinear", align_corners=False)
    return np.ascontiguousarray(t.numpy().astype(np.float32))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(*conv_bn_relu(1, 8), *conv_bn_relu(8, 16), nn.MaxPool2d(2),
                                 *conv_bn_relu(16, 16), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))

    def forward(self, x):
        return self.net(x)


class Residual(nn.Module):
    """conv-bn-relu-conv-bn plus the input (or a strided 1x1 conv-bn projection), then relu."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (x if self.proj is None else self.proj(x)))


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 (groups=C) + BN + ReLU6, then pointwise 1x1 + BN + ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.b1 = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.b2(self.pw(F.relu6(self.b1(self.dw(x))))))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(1, 8))
        self.r1 = Residual(8, 8, 1)
        self.r2 = Residual(8, 16, 2)
        self.ds = DepthwiseSeparable(16, 24)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.ds(self.r2(self.r1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class Ops(nn.Module):
    """Not a good design, a wide one: most ops of lowbit's list as torch exports them, ending in
    Softmax (so its outputs are probabilities)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.mix = nn.Parameter(torch.randn(16, 12) * 0.3)
        self.fc = nn.Linear(16 * 12, 10)

    def forward(self, x):
        x = F.leaky_relu(self.c1(x), 0.1)
        x = torch.cat([F.avg_pool2d(x, 2), F.max_pool2d(x, 2)], 1)  # Pad+AveragePool, MaxPool
        x = F.hardswish(x) + torch.sigmoid(x) * torch.tanh(x)
        x = (x - x.mean(dim=1, keepdim=True)) / 2.0  # ReduceMean, Sub, Div
        x = F.relu(self.c2(x))
        x = x.view(x.size(0), x.size(1), -1).transpose(1, 2)  # [1,16,16]
        x = torch.clamp(torch.matmul(x, self.mix), -3.0, 3.0)  # MatMul, Clip
        x = F.hardsigmoid(x) * x[:, 0].unsqueeze(1)  # Gather, Unsqueeze
        return F.softmax(self.fc(x.reshape(x.size(0), -1)), dim=1)


def train(model, x, y, epochs, seed):
    seed_all(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            out = model(xt[idx])
            if isinstance(model, Ops):  # outputs probabilities
                loss = F.nll_loss(torch.log(out.clamp_min(1e-12)), yt[idx])
            else:
                loss = F.cross_entropy(out, yt[idx])
            loss.backward()
            opt.step()
    model.eval()


def export(model, shape, path):
    """Static batch-1 ONNX; PRESERVE keeps BatchNormalization unfused (the model is in eval)."""
    model.eval()
    dummy = torch.zeros(shape, dtype=torch.float32)
    # torch warns about constant folding under PRESERVE; it only matters for training mode.
    warnings.filterwarnings("ignore", message=".*constant folding.*")
    tmp = path + ".tmp"
    torch.onnx.export(model, (dummy,), tmp, input_names=["input"], output_names=["output"],
                      opset_version=OPSET, do_constant_folding=True,
                      training=torch.onnx.TrainingMode.PRESERVE)
    import onnx
    m = onnx.load(tmp)
    onnx.checker.check_model(m)
    os.replace(tmp, path)
    return sorted({n.op_type for n in m.graph.node})


def save_npy(path, arr):
    """Writes a temporary file and renames it: a failed run leaves no partial file."""
    with open(path + ".tmp", "wb") as f:
        np.save(f, arr)
    os.replace(path + ".tmp", path)


def save(name, arr):
    save_npy(os.path.join(OUT, name), arr)


def make_digits():
    os.makedirs(OUT, exist_ok=True)
    xtr, ytr, xte, yte, calib = load_data()
    xtr16, xte16, calib16 = up16(xtr), up16(xte), up16(calib)
    save("digits_test_x.npy", xte)
    save("digits16_test_x.npy", xte16)
    save("digits_test_y.npy", yte)
    save("digits_calib_x.npy", calib)
    save("digits64_test_x.npy", xte.reshape(-1, 64))  # the MLP's input shape, for lowbit run
    save("digits64_calib_x.npy", calib.reshape(-1, 64))
    save("digits16_calib_x.npy", calib16)
    specs = [("digits_mlp", MLP, xtr.reshape(-1, 64), xte.reshape(-1, 64), (1, 64), 30),
             ("digits_cnn", CNN, xtr, xte, (1, 1, 8, 8), 8),
             ("digits_resnet", ResNet, xtr16, xte16, (1, 1, 16, 16), 8),
             ("digits_ops", Ops, xtr, xte, (1, 1, 8, 8), 10)]
    for i, (name, cls, tr, te, shape, epochs) in enumerate(specs):
        seed_all(100 + i)
        model = cls()
        train(model, tr, ytr, epochs, 200 + i)
        with torch.no_grad():
            out = model(torch.from_numpy(te)).numpy().astype(np.float32)
        save(name + "_torch_out.npy", out)
        ops = export(model, shape, os.path.join(OUT, name + ".onnx"))
        acc = float((out.argmax(1) == yte).mean())
        print(f"{name}: test accuracy {acc:.4f} ({len(yte)} samples), ops {' '.join(ops)}")


def bn_restat(model):
    """Sets every BatchNorm's running mean/var to the exact average over 4 random batches."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, 224, 224))
    model.eval()


def make_large():
    import torchvision
    out_dir = os.path.join(OUT, "large")
    os.makedirs(out_dir, exist_ok=True)
    seed_all(0)
    x = torch.randn(1, 3, 224, 224, dtype=torch.float32)
    save_npy(os.path.join(out_dir, "input.npy"), x.numpy())
    seed_all(1)  # a calibration set for the int8 tests: random images like the input
    save_npy(os.path.join(out_dir, "calib.npy"), torch.randn(8, 3, 224, 224).numpy())
    for name in ("resnet18", "mobilenet_v2"):
        seed_all(0)
        model = getattr(torchvision.models, name)(weights=None)
        bn_restat(model)
        with torch.no_grad():
            out = model(x).numpy().astype(np.float32)
        save_npy(os.path.join(out_dir, name + "_torch_out.npy"), out)
        ops = export(model, (1, 3, 224, 224), os.path.join(out_dir, name + ".onnx"))
        print(f"{name}: top-1 class {int(out.argmax())}, ops {' '.join(ops)}")


def make_legacy():
    """Opset<7 tests with only lowbit ops -> opset 13 (IR 7, which opset 13 needs)."""
    import onnx
    from onnx import version_converter
    for suite in LEGACY_SUITES:
        src = os.path.join(ONNX_TESTDATA, suite)
        if not os.path.isdir(src):
            print(f"{src} absent: legacy suite skipped (apt install libonnx-testdata)")
            continue
        dst = os.path.join(OUT, "onnx13", suite)
        os.makedirs(dst, exist_ok=True)
        n = 0
        for test in sorted(os.listdir(src)):
            m = onnx.load(os.path.join(src, test, "model.onnx"))
            opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")),
                        default=OPSET)
            if opset >= 7 or not {x.op_type for x in m.graph.node} <= LOWBIT_OPS:
                continue
            up = version_converter.convert_version(m, OPSET)
            up.ir_version = max(up.ir_version, 7)
            onnx.checker.check_model(up)
            path = os.path.join(dst, test + ".onnx")
            onnx.save(up, path + ".tmp")
            os.replace(path + ".tmp", path)
            n += 1
        print(f"{suite}: {n} opset<7 models upgraded to opset {OPSET}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also make resnet18 and mobilenet_v2")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    make_digits()
    make_legacy()
    if args.large:
        make_large()
    return 0


if __name__ == "__main__":
    sys.exit(main())
