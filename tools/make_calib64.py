#!/usr/bin/python3
"""Writes tests/models/large/calib64.npy: 64 calibration/evaluation samples [64,3,224,224] f32
for the ResNet-18 / MobileNetV2 precision search (lowbit search --calib, issue 6).

The large models have random weights whose BatchNorm statistics were estimated on N(0,1)
images (tools/make_models.py --large), so their "ImageNet-like" data is that distribution.
Sample i is a perturbed copy of input.npy: sqrt(1 - a^2) * input + a * noise_i with a = 0.6
and noise_i ~ N(0,1) (seed 2): unit variance like the model's data, correlated with the fixed
input (so top-1 agreement is not decided by ties between near-equal logits on pure noise).
Sample 0 is input.npy itself. Re-running gives the same file. Needs numpy (Debian python3).
"""
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LARGE = os.path.join(ROOT, "tests", "models", "large")
N, ALPHA, SEED = 64, 0.6, 2


def main():
    src = os.path.join(LARGE, "input.npy")
    if not os.path.exists(src):
        sys.exit(f"make_calib64: {src} missing (run tools/make_models.py --large first)")
    x = np.load(src).astype(np.float32)
    if x.shape != (1, 3, 224, 224):
        sys.exit(f"make_calib64: {src}: expected [1,3,224,224], got {list(x.shape)}")
    rng = np.random.RandomState(SEED)
    noise = rng.standard_normal((N,) + x.shape[1:]).astype(np.float32)
    out = (np.sqrt(1 - ALPHA**2) * x + ALPHA * noise).astype(np.float32)
    out[0] = x[0]
    dst = os.path.join(LARGE, "calib64.npy")
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        np.save(f, out)
    os.replace(tmp, dst)
    print(f"{dst}: {list(out.shape)} f32, mean {out.mean():.3f}, std {out.std():.3f}")


if __name__ == "__main__":
    main()
